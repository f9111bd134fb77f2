-- credits_one_read_per_charge: drafted by `npm run db:diff -- credits_one_read_per_charge` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.
--
-- What this migration does: fewer statements under the organization's credit lock. consume_credits
-- writes its charge (claiming the request id on the unique index) before taking the lock, then
-- reads the organization's grants once (what the ledger holds, what can be drawn, whether any
-- lapsed) instead of asking the last ledger row, expiring and summing in three statements; a charge
-- the balance cannot cover is deleted again, so nothing is written. draw_credits writes its ledger
-- rows itself with the balance the caller passes. record_credit_movement loses the parameter only
-- the old draw used. Nothing a diff cannot know.

SET local check_function_bodies = off;

DROP FUNCTION "billing"."draw_credits"(public.credit_charges, bigint);

DROP FUNCTION "billing"."record_credit_movement"(public.credit_grants, public.credit_movement, bigint, public.credit_charges, public.actor_kind, text, bigint);

CREATE OR REPLACE FUNCTION billing.adjust_charge (
  p_function        text,
  p_organization_id uuid,
  p_request_id      text,
  p_credits         bigint,
  OUT               charged boolean,
  OUT               credits bigint,
  OUT               balance bigint,
  OUT               charge_id uuid,
  OUT               grants jsonb
)
  RETURNS record
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_charge public.credit_charges;
  v_delta bigint;
begin
  perform billing.check_credit_request_id(p_function, p_request_id);
  if p_request_id is null then
    raise exception '%: a request id is required', p_function using errcode = 'invalid_parameter_value';
  end if;
  if p_credits is null or p_credits < 0 then
    raise exception '%: credits must be zero or more, got %', p_function, coalesce(p_credits::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  perform billing.lock_credits(p_organization_id);
  select c.* into v_charge from public.credit_charges c
  where c.organization_id = p_organization_id and c.request_id = p_request_id
  for update;
  if v_charge.id is null then
    raise exception '%: no charge with request id % for organization %', p_function, p_request_id, p_organization_id
      using errcode = 'no_data_found';
  end if;
  perform billing.expire_lapsed_grants(p_organization_id);
  v_delta := p_credits - v_charge.charged;
  charged := true;
  if v_delta < 0 then
    perform billing.return_credits(v_charge, -v_delta);
  elsif v_delta > 0 then
    if billing.available_credits(p_organization_id) < v_delta then
      charged := false;
    else
      perform billing.draw_credits(v_charge, v_delta, billing.credit_ledger_balance(p_organization_id));
    end if;
  end if;
  if charged and v_delta <> 0 then
    update public.credit_charges c set charged = p_credits, updated_at = pg_catalog.now() where c.id = v_charge.id
    returning c.* into v_charge;
  end if;
  credits := v_charge.charged;
  balance := billing.available_credits(p_organization_id);
  charge_id := v_charge.id;
  grants := billing.charge_grants(v_charge.id);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.consume_credits (
  p_organization_id uuid,
  p_event           text,
  p_quantity        bigint,
  p_request_id      text,
  OUT               charged boolean,
  OUT               credits bigint,
  OUT               balance bigint,
  OUT               charge_id uuid,
  OUT               grants jsonb
)
  RETURNS record
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_event public.credit_events;
  v_charge public.credit_charges;
  v_held bigint;
  v_lapsed boolean;
begin
  if p_quantity is null or p_quantity <= 0 then
    raise exception 'consume_credits: quantity must be a positive integer, got %', coalesce(p_quantity::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  perform billing.check_credit_request_id('consume_credits', p_request_id);
  select e.* into v_event from public.credit_events e where e.code = p_event;
  if v_event.code is null or not v_event.active then
    raise exception 'consume_credits: unknown or inactive credit event "%"', p_event
      using errcode = 'invalid_parameter_value', hint = 'the events are the active rows of public.credit_events';
  end if;
  if not exists (select from public.organizations o where o.id = p_organization_id) then
    raise exception 'consume_credits: unknown organization %', p_organization_id using errcode = 'no_data_found';
  end if;
  credits := pg_catalog.ceil(p_quantity * v_event.credits_per_unit)::bigint;

  -- The charge is written before the organization's credit lock is taken, so the lock is held for
  -- the draw alone. A request id claims its charge here: a concurrent duplicate waits on the
  -- unique index until the first commits, then answers the first charge.
  insert into public.credit_charges as c (organization_id, request_id, event_code, quantity, credits, charged)
  values (p_organization_id, p_request_id, p_event, p_quantity, credits, credits)
  on conflict (organization_id, request_id) where request_id is not null do nothing
  returning c.* into v_charge;
  if v_charge.id is null then
    select c.* into v_charge from public.credit_charges c
    where c.organization_id = p_organization_id and c.request_id = p_request_id;
    if v_charge.event_code <> p_event or v_charge.quantity <> p_quantity then
      raise exception 'consume_credits: request id % was charged for % x % already', p_request_id,
        v_charge.quantity, v_charge.event_code using errcode = 'invalid_parameter_value';
    end if;
    -- A retry: the first answer, charged once.
    charged := true;
    credits := v_charge.credits;
    balance := billing.available_credits(p_organization_id);
    charge_id := v_charge.id;
    grants := billing.charge_grants(v_charge.id);
    return;
  end if;

  perform billing.lock_credits(p_organization_id);
  -- One read of the grants holding credits: what the ledger holds, what can be drawn now, and
  -- whether any lapsed (then it is expired into the ledger first).
  select coalesce(sum(g.remaining), 0),
         coalesce(sum(g.remaining) filter (where g.effective_from <= v_now and (g.expires_at is null or g.expires_at > v_now)), 0),
         coalesce(bool_or(g.expires_at <= v_now), false)
  into v_held, balance, v_lapsed
  from public.credit_grants g
  where g.organization_id = p_organization_id and g.remaining > 0;
  if v_lapsed then
    v_held := v_held - billing.expire_lapsed_grants(p_organization_id);
  end if;
  if balance < credits then
    -- Not charged: the charge goes, so nothing is written (a retry may charge when credits came).
    delete from public.credit_charges c where c.id = v_charge.id;
    charged := false;
    charge_id := null;
    grants := '[]'::jsonb;
    return;
  end if;
  grants := billing.draw_credits(v_charge, credits, v_held);
  charged := true;
  balance := balance - credits;
  charge_id := v_charge.id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.draw_credits (
  p_charge  public.credit_charges,
  p_credits bigint,
  p_held    bigint
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_order public.credit_source[] := (select s.credit_source_order from public.billing_settings s where s.id);
  v_actor text := coalesce((select auth.uid())::text, session_user::text);
  v_left bigint := p_credits;
  v_take bigint;
  v_grant record;
  v_ledger_id bigint;
  v_drawn jsonb := '[]'::jsonb;
begin
  for v_grant in
    select g.id, g.source, g.remaining from public.credit_grants g
    where g.organization_id = p_charge.organization_id and g.remaining > 0
      and g.effective_from <= v_now and (g.expires_at is null or g.expires_at > v_now)
    order by pg_catalog.array_position(v_order, g.source), g.priority, g.expires_at nulls last, g.created_at, g.id
    for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants g set remaining = g.remaining - v_take where g.id = v_grant.id;
    v_left := v_left - v_take;
    insert into public.credit_ledger
      (organization_id, grant_id, kind, amount, balance_after, charge_id, request_id, event_code, actor)
    values (p_charge.organization_id, v_grant.id, 'consumed', -v_take, p_held - (p_credits - v_left),
            p_charge.id, p_charge.request_id, p_charge.event_code, v_actor)
    returning id into v_ledger_id;
    v_drawn := v_drawn || pg_catalog.jsonb_build_object('grant_id', v_grant.id, 'source', v_grant.source,
                                                        'credits', v_take);
  end loop;
  if v_left > 0 then
    raise exception 'draw_credits: % credits short for charge %', v_left, p_charge.id
      using errcode = 'check_violation';
  end if;
  perform billing.queue_credits_low(p_charge.organization_id, p_held, p_held - p_credits, v_ledger_id);
  return v_drawn;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.record_credit_movement (
  p_grant      public.credit_grants,
  p_kind       public.credit_movement,
  p_amount     bigint,
  p_charge     public.credit_charges  DEFAULT NULL::public.credit_charges,
  p_actor_kind public.actor_kind      DEFAULT 'system'::public.actor_kind,
  p_reason     text                   DEFAULT NULL::text
)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_id bigint;
begin
  insert into public.credit_ledger
    (organization_id, grant_id, kind, amount, balance_after, charge_id, request_id, event_code,
     actor_kind, actor, reason)
  values (p_grant.organization_id, p_grant.id, p_kind, p_amount,
          billing.credit_ledger_balance(p_grant.organization_id) + p_amount,
          p_charge.id, p_charge.request_id, p_charge.event_code, p_actor_kind,
          coalesce((select auth.uid())::text, session_user::text), p_reason)
  returning id into v_id;
  return v_id;
end;
$function$;

REVOKE ALL ON FUNCTION "billing"."draw_credits"(public.credit_charges, bigint, bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."record_credit_movement"(public.credit_grants, public.credit_movement, bigint, public.credit_charges, public.actor_kind, text) FROM PUBLIC;
