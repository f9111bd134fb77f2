-- period_credits_follow_paid_spans: drafted by `npm run db:diff -- period_credits_follow_paid_spans` from the difference between the database the
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
-- What this migration does (a review of the credits found each with a reproduction): a plan's
-- credits follow the paid spans. A renewal paid before the period ended stacks a period on it and
-- now gets that period's credits (it got none: the grant was keyed on the unchanged period start);
-- a new run of periods (an upgrade that starts a new period) cuts the previous span's credits at
-- its start instead of stacking old and new; a subscription that stops running (a full refund, a
-- lost dispute, a cancel now) cuts its credits now (they were kept). billing.cut_period_credits
-- takes the credit lock before it touches grants. A grant's expiry may equal its start (a span
-- cut before it began is never live). consume_credits charges a request id sent again after its
-- release anew instead of answering the released charge as charged.

SET local check_function_bodies = off;

ALTER TABLE "public"."credit_grants"
  DROP CONSTRAINT "credit_grants_expiry_after_start";

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
    if v_charge.charged = 0 then
      -- Sent again after it was released: charged anew, as a released usage request is counted anew.
      select a.charged, a.credits, a.balance, a.charge_id, a.grants into charged, credits, balance, charge_id, grants
      from billing.adjust_charge('consume_credits', p_organization_id, p_request_id, v_charge.credits) a;
      return;
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

CREATE OR REPLACE FUNCTION billing.cut_period_credits (
  p_subscription public.subscriptions,
  p_at           timestamp with time zone
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  perform billing.lock_credits(p_subscription.organization_id);
  update public.credit_grants g set expires_at = greatest(p_at, g.effective_from)
  where g.subscription_id = p_subscription.id and g.source = 'subscription' and g.expired_at is null
    and (g.expires_at is null or g.expires_at > p_at);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.grant_period_credits()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_context text := pg_catalog.current_setting('billing.change_context', true);
  v_action text;
  v_span_start timestamptz := new.current_period_start;
  v_per_period bigint;
  v_granted bigint;
  v_running constant public.subscription_status[] := '{trialing,active,past_due}';
begin
  if coalesce(v_context, '') <> ''
     and (v_context::jsonb ->> 'command_at')::timestamptz = pg_catalog.statement_timestamp() then
    v_action := v_context::jsonb ->> 'action';
  end if;
  if tg_op = 'UPDATE' then
    if old.status = any (v_running) and not (new.status = any (v_running)) then
      perform billing.cut_period_credits(new, billing.now());
      return null;
    elsif new.current_period_start is distinct from old.current_period_start and new.current_period_start is not null then
      perform billing.cut_period_credits(old, new.current_period_start);
    elsif new.current_period_end < old.current_period_end then
      perform billing.cut_period_credits(new, new.current_period_end);
    elsif new.current_period_end > old.current_period_end then
      if v_action = 'renewed' then
        v_span_start := old.current_period_end;
      else
        perform billing.lock_credits(new.organization_id);
        update public.credit_grants g set expires_at = new.current_period_end
        where g.subscription_id = new.id and g.source = 'subscription' and g.expired_at is null
          and g.expires_at = old.current_period_end;
      end if;
    end if;
  end if;
  if new.status <> 'active' or v_span_start is null or new.current_period_end is null
     or new.current_period_end <= billing.now() then
    return null;
  end if;
  select (p.features ->> 'credits_per_period')::bigint into v_per_period
  from public.billing_plans p where p.id = new.plan_id;
  if coalesce(v_per_period, 0) <= 0 then
    return null;
  end if;
  select coalesce(sum(g.amount), 0) into v_granted
  from public.credit_grants g
  where g.subscription_id = new.id and g.period_start = v_span_start and g.source = 'subscription';
  if v_granted >= v_per_period then
    return null;
  end if;
  perform billing.add_credit_grant(new.organization_id, 'subscription', v_per_period - v_granted,
    p_expires_at => new.current_period_end,
    p_reason => 'credits of the period',
    p_dedupe_key => pg_catalog.format('period:%s:%s:%s', new.id, extract(epoch from v_span_start), new.plan_id),
    p_subscription_id => new.id,
    p_period_start => v_span_start,
    p_effective_from => v_span_start);
  return null;
end;
$function$;

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_expiry_after_start" CHECK (((expires_at IS NULL) OR (expires_at >= effective_from)));

REVOKE ALL ON FUNCTION "billing"."cut_period_credits"(public.subscriptions, timestamp WITH time zone) FROM PUBLIC;
