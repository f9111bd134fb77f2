-- credits_hot_path: drafted by `npm run db:diff -- credits_hot_path` from the difference between the database the
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
-- What this migration does: consume_credits' hot path, measured against increment_usage by
-- `npm run bench -- 10-usage`. A draw's update of a grant's `remaining` becomes a HOT update
-- (credit_grants_live_idx is no longer partial on remaining); draw_credits returns the grants it
-- drew (no second pass over the charge's ledger rows) and gives each ledger row its balance
-- (record_credit_movement's new p_balance_after, instead of reading the ledger's last row);
-- consume_credits reads the balance once; queue_credits_low looks up the plan in effect only
-- when the balance falls under the highest threshold any plan or the settings set.
--
-- Why the drops: draw_credits' return type and record_credit_movement's argument list change,
-- which Postgres does not do in place; both are private, called only from plpgsql bodies of this
-- module, and recreated in the same transaction. The index is rebuilt once (a small table).

SET local check_function_bodies = off;

DROP INDEX "public"."credit_grants_live_idx";

DROP FUNCTION "billing"."draw_credits"(public.credit_charges, bigint);

DROP FUNCTION "billing"."record_credit_movement"(public.credit_grants, public.credit_movement, bigint, public.credit_charges, public.actor_kind, text);

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
  v_event public.credit_events;
  v_charge public.credit_charges;
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

  perform billing.lock_credits(p_organization_id);
  if p_request_id is not null then
    select c.* into v_charge from public.credit_charges c
    where c.organization_id = p_organization_id and c.request_id = p_request_id;
    if v_charge.id is not null then
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
  end if;

  perform billing.expire_lapsed_grants(p_organization_id);
  balance := billing.available_credits(p_organization_id);
  if balance < credits then
    charged := false;
    grants := '[]'::jsonb;
    return;
  end if;
  insert into public.credit_charges (organization_id, request_id, event_code, quantity, credits, charged)
  values (p_organization_id, p_request_id, p_event, p_quantity, credits, credits)
  returning * into v_charge;
  grants := billing.draw_credits(v_charge, credits);
  charged := true;
  balance := balance - credits;
  charge_id := v_charge.id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.draw_credits (
  p_charge  public.credit_charges,
  p_credits bigint
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_order public.credit_source[] := (select s.credit_source_order from public.billing_settings s where s.id);
  v_before bigint := billing.credit_ledger_balance(p_charge.organization_id);
  v_left bigint := p_credits;
  v_take bigint;
  v_grant public.credit_grants;
  v_ledger_id bigint;
  v_drawn jsonb := '[]'::jsonb;
begin
  for v_grant in
    select g.* from public.credit_grants g
    where g.organization_id = p_charge.organization_id and g.remaining > 0
      and g.effective_from <= v_now and (g.expires_at is null or g.expires_at > v_now)
    order by pg_catalog.array_position(v_order, g.source), g.priority, g.expires_at nulls last, g.created_at, g.id
    for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants g set remaining = g.remaining - v_take where g.id = v_grant.id
    returning g.* into v_grant;
    v_left := v_left - v_take;
    v_ledger_id := billing.record_credit_movement(v_grant, 'consumed', -v_take, p_charge,
                                                  p_balance_after => v_before - (p_credits - v_left));
    v_drawn := v_drawn || pg_catalog.jsonb_build_object('grant_id', v_grant.id, 'source', v_grant.source,
                                                        'credits', v_take);
  end loop;
  if v_left > 0 then
    raise exception 'draw_credits: % credits short for charge %', v_left, p_charge.id
      using errcode = 'check_violation';
  end if;
  perform billing.queue_credits_low(p_charge.organization_id, v_before, v_before - p_credits, v_ledger_id);
  return v_drawn;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.queue_credits_low (
  p_organization_id uuid,
  p_before          bigint,
  p_after           bigint,
  p_ledger_id       bigint
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_threshold bigint;
begin
  if p_after >= p_before then
    return;
  end if;
  select greatest(s.credits_low_threshold,
                  (select max((p.features ->> 'credits_low_threshold')::bigint) from public.billing_plans p
                   where p.features ? 'credits_low_threshold'))
  into v_threshold
  from public.billing_settings s where s.id;
  if v_threshold is null or p_after >= v_threshold then
    return;
  end if;
  v_threshold := billing.credits_low_threshold(p_organization_id);
  if v_threshold is null or not (p_before >= v_threshold and p_after < v_threshold) then
    return;
  end if;
  insert into public.notifications (organization_id, kind, payload, dedupe_key)
  values (p_organization_id, 'credits_low',
          pg_catalog.jsonb_build_object('balance', p_after, 'threshold', v_threshold),
          pg_catalog.format('credits_low:%s:%s', p_organization_id, p_ledger_id))
  on conflict (dedupe_key) do nothing;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.record_credit_movement (
  p_grant         public.credit_grants,
  p_kind          public.credit_movement,
  p_amount        bigint,
  p_charge        public.credit_charges  DEFAULT NULL::public.credit_charges,
  p_actor_kind    public.actor_kind      DEFAULT 'system'::public.actor_kind,
  p_reason        text                   DEFAULT NULL::text,
  p_balance_after bigint                 DEFAULT NULL::bigint
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
          coalesce(p_balance_after, billing.credit_ledger_balance(p_grant.organization_id) + p_amount),
          p_charge.id, p_charge.request_id, p_charge.event_code, p_actor_kind,
          coalesce((select auth.uid())::text, session_user::text), p_reason)
  returning id into v_id;
  return v_id;
end;
$function$;

CREATE INDEX credit_grants_live_idx ON public.credit_grants USING btree (organization_id, expires_at, created_at);

REVOKE ALL ON FUNCTION "billing"."draw_credits"(public.credit_charges, bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."record_credit_movement"(public.credit_grants, public.credit_movement, bigint, public.credit_charges, public.actor_kind, text, bigint) FROM PUBLIC;
