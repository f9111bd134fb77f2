-- =================================================================================================
-- supabill: payments (PayU and Razorpay): provider events applied exactly once, checkout, reconciliation
--
-- One SQL entry point, billing.apply_payment_event(p_event jsonb), receives every provider event
-- (webhooks, PayU's browser return, Razorpay Checkout verification, reconciliation) as the
-- provider-neutral event the Edge Functions' adapters build (supabase/functions/_shared/providers/),
-- and in one transaction records it in billing.webhook_events (once per provider + event_id),
-- matches it to our order, checks amount and currency, records payment_events (once per provider
-- payment + status), moves the order and the subscription, writes subscription_history and issues
-- the invoice (billing.issue_documents of the invoices module). It dispatches on the event's
-- neutral `kind`; nothing here reads a provider's payload or its event names.
--
-- Ordering rules, whatever order events arrive in:
--   * a payment is applied once: payment_events is unique per (provider, provider payment id,
--     status), so the webhook, the verify call and the PayU return race to one row;
--   * a captured payment is never undone by a failure; an order never goes from paid to failed;
--   * a payment extends the subscription by one interval: from the current period end while the
--     subscription runs (or is in grace, billing.grace_interval()), from now after it ended.
--     Months and years are added on the organization's calendar (its time zone), never the
--     connection's. Extensions add up, so charges applied in any order end at the same period end;
--   * a payment made after its subscription ended (canceled or expired) is recorded, not applied:
--     result 'recorded', nothing extended, no history; refund it or reactivate by hand;
--   * a provider subscription's status follows the newest provider event (by the event's own
--     time), kept in billing.provider_subscription_states, so a late `pending` never undoes a
--     newer `charged`, and a `cancelled` that arrives before the first `charged` still wins. Our
--     subscription row is moved only by an event that changed that stored state (or that created
--     or extended the row), and an ended subscription is never made live again by a provider
--     state older than its end: a late event cannot undo a cancellation made on our side;
--   * a refund is checked against what was captured: refunds above it are a 'mismatch'
--     (recorded, no credit note);
--   * checkout never changes plan (that is change_plan: upgrades prorated, downgrades at the
--     period end) and never opens a second Razorpay subscription.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

/**
 * What a provider event means, whichever provider sent it (the adapters map their own event
 * names to these): a payment captured, failed, authorized or pending at the provider, a refund
 * processed, a provider subscription's new status, or anything else (recorded and ignored).
 */
create type billing.provider_event_kind as enum (
  'payment_captured', 'payment_failed', 'payment_authorized', 'payment_pending', 'refund_processed',
  'subscription_status', 'other'
);

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- billing.webhook_events (private)
-- -------------------------------------------------------------------------------------------------

/**
 * Every provider webhook delivery, recorded once per (provider, event_id): the exactly-once
 * guard. Each is applied in the transaction that records it (public.apply_payment_event), so
 * processed_at is set from the start; last_error says what was not applied, and why.
 * Private (schema billing): service_role only.
 */
create table billing.webhook_events (
  id uuid primary key default gen_random_uuid(),
  provider public.payment_provider not null,
  event_id text not null check (length(event_id) between 1 and 300),
  event_type text not null,
  payload jsonb not null,
  received_at timestamptz not null default billing.now(),
  processed_at timestamptz,
  attempts integer not null default 0 check (attempts >= 0),
  last_error text,
  created_at timestamptz not null default now(),
  constraint webhook_events_provider_event_unique unique (provider, event_id)
);
revoke all on billing.webhook_events from public;
grant select, insert, update, delete on billing.webhook_events to service_role;

-- -------------------------------------------------------------------------------------------------
-- billing.provider_subscription_states (private)
-- -------------------------------------------------------------------------------------------------

/**
 * The provider's latest word on each of its subscriptions (Razorpay `sub_...`): the status of the
 * newest event applied and that event's time. Kept even before our subscription row exists, so
 * events applied in any order end in the same state. Private (schema billing), service_role only.
 */
create table billing.provider_subscription_states (
  provider public.payment_provider not null,
  provider_subscription_id text not null check (length(provider_subscription_id) between 1 and 100),
  status text not null check (status ~ '^[a-z_]{1,32}$'),
  status_at timestamptz not null,
  event_id text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (provider, provider_subscription_id)
);
revoke all on billing.provider_subscription_states from public;
grant select, insert, update on billing.provider_subscription_states to service_role;

create trigger provider_subscription_states_touch_updated_at
  before update on billing.provider_subscription_states
  for each row execute function billing.touch_updated_at();


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * What a provider subscription status means for our subscription: Razorpay `active` -> active,
 * `pending`/`halted`/`paused` -> past_due (the plan stays in effect only through the grace
 * period), `cancelled` -> canceled, `completed` -> expired once the paid period is over (until
 * then it stays active, set to end at the period end), `expired` -> expired. Null: no change
 * (`created`, `authenticated`, anything unknown).
 */
create function billing.subscription_status_for(
  p_provider_status text,
  p_current_period_end timestamptz,
  p_now timestamptz
)
returns public.subscription_status
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_provider_status
    when 'active' then 'active'::public.subscription_status
    when 'pending' then 'past_due'
    when 'halted' then 'past_due'
    when 'paused' then 'past_due'
    when 'cancelled' then 'canceled'
    when 'expired' then 'expired'
    when 'completed' then
      case when p_current_period_end is not null and p_current_period_end > p_now
        then 'active'::public.subscription_status else 'expired' end
  end;
end;
$$;
revoke execute on function billing.subscription_status_for(text, timestamptz, timestamptz) from public;
grant execute on function billing.subscription_status_for(text, timestamptz, timestamptz) to service_role;

/**
 * Validates a NormalizedEvent (jsonb) and raises a clear error (22023) naming the bad field:
 * provider a payment provider (not 'manual'); event_id and event_type non-empty; kind a
 * billing.provider_event_kind; amount_paise null or a non-negative
 * integer; currency null or three capital letters; occurred_at null or a timestamp; the id fields
 * null or strings; payload null or an object.
 */
create function billing.validate_payment_event(p_event jsonb)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  v_field text;
  v_providers text[] := array(select p::text from pg_catalog.unnest(enum_range(null::public.payment_provider)) p
                              where p <> 'manual');
begin
  if p_event is null or pg_catalog.jsonb_typeof(p_event) <> 'object' then
    raise exception 'payment event must be a JSON object' using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(p_event ->> 'provider', '') <> all (v_providers) then
    raise exception 'payment event: provider must be %, got %',
      pg_catalog.regexp_replace(pg_catalog.array_to_string(
        array(select pg_catalog.format('"%s"', p) from pg_catalog.unnest(v_providers) p), ', '), ', ([^,]*)$', ' or \1'),
      coalesce(p_event -> 'provider', 'null'::jsonb)
      using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(p_event ->> 'kind', '') <> all (enum_range(null::billing.provider_event_kind)::text[]) then
    raise exception 'payment event: kind must be one of %, got %',
      pg_catalog.array_to_string(enum_range(null::billing.provider_event_kind)::text[], ', '),
      coalesce(p_event -> 'kind', 'null'::jsonb)
      using errcode = 'invalid_parameter_value';
  end if;
  foreach v_field in array array['event_id', 'event_type'] loop
    if pg_catalog.jsonb_typeof(p_event -> v_field) is distinct from 'string'
       or length(p_event ->> v_field) not between 1 and 300 then
      raise exception 'payment event: % is required (a string of 1 to 300 characters)', v_field
        using errcode = 'invalid_parameter_value';
    end if;
  end loop;
  foreach v_field in array array['order_ref', 'provider_order_id', 'provider_payment_id', 'provider_subscription_id',
                                 'provider_refund_id', 'status', 'subscription_status', 'error_reason', 'method', 'currency',
                                 'occurred_at'] loop
    if coalesce(pg_catalog.jsonb_typeof(p_event -> v_field), 'null') not in ('null', 'string') then
      raise exception 'payment event: % must be a string or null', v_field using errcode = 'invalid_parameter_value';
    end if;
  end loop;
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'amount_paise'), 'null') <> 'null'
     and not billing.is_non_negative_integer(p_event -> 'amount_paise') then
    raise exception 'payment event: amount_paise must be a non-negative integer of paise, got %', p_event -> 'amount_paise'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_event ->> 'currency' is not null and p_event ->> 'currency' !~ '^[A-Z]{3}$' then
    raise exception 'payment event: currency must be three capital letters, got "%"', p_event ->> 'currency'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_event ->> 'occurred_at' is not null then
    begin
      perform (p_event ->> 'occurred_at')::timestamptz;
    exception
      when data_exception then
        raise exception 'payment event: occurred_at must be an ISO 8601 timestamp, got "%"', p_event ->> 'occurred_at'
          using errcode = 'invalid_parameter_value';
    end;
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'payload'), 'null') not in ('null', 'object') then
    raise exception 'payment event: payload must be an object or null' using errcode = 'invalid_parameter_value';
  end if;
end;
$$;
revoke execute on function billing.validate_payment_event(jsonb) from public;
grant execute on function billing.validate_payment_event(jsonb) to service_role;

/**
 * Moves our subscription row to what the provider's latest status means (see
 * subscription_status_for), writing subscription_history. p_status_at is the provider's time of
 * that status. No-op when nothing changes; when the subscription has ended (canceled, expired)
 * and the provider status is not newer than its end (a late event must not undo a cancellation
 * made here); or when the change would make a second live subscription for the organization
 * (then returns false).
 */
create function billing.sync_provider_status(
  p_subscription_id uuid,
  p_provider_status text,
  p_status_at timestamptz,
  p_event jsonb
)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_target public.subscription_status;
begin
  select * into v_sub from public.subscriptions s where s.id = p_subscription_id for update;
  v_target := billing.subscription_status_for(p_provider_status, v_sub.current_period_end, v_now);
  if v_target is null then
    return true;
  end if;
  if p_provider_status = 'completed' and v_target = 'active' then
    -- No more charges will come: the paid period runs out, then the subscription ends.
    if v_sub.status = 'active' and v_sub.cancel_at_period_end then
      return true;
    end if;
  elsif v_target = v_sub.status then
    return true;
  end if;
  if v_target in ('trialing', 'active', 'past_due') and v_sub.status in ('canceled', 'expired')
     and p_status_at <= coalesce(v_sub.ended_at, v_sub.canceled_at, '-infinity'::timestamptz) then
    -- The provider said so before the subscription ended here: the end stands.
    return true;
  end if;
  if v_target in ('trialing', 'active', 'past_due') and v_sub.status not in ('pending_payment', 'trialing', 'active', 'past_due')
     and exists (select 1 from public.subscriptions s
                 where s.organization_id = v_sub.organization_id and s.id <> v_sub.id
                   and s.status in ('pending_payment', 'trialing', 'active', 'past_due')) then
    return false;
  end if;
  if v_target in ('active', 'past_due') and v_sub.current_period_end is null then
    -- Nothing paid yet: the first charge will set the period.
    return true;
  end if;

  update public.subscriptions s
  set status = v_target,
      cancel_at_period_end = case when p_provider_status = 'completed' then true
                                  when v_target = 'active' then false else s.cancel_at_period_end end,
      canceled_at = case when v_target = 'canceled' then coalesce(s.canceled_at, v_now)
                         when v_target = 'active' then null else s.canceled_at end,
      ended_at = case when v_target in ('canceled', 'expired') then coalesce(s.ended_at, v_now)
                      when v_target in ('active', 'past_due') then null else s.ended_at end
  where s.id = v_sub.id;

  perform billing.log_subscription_change(v_sub.organization_id, v_sub.id,
    case p_provider_status when 'completed' then 'completed' when 'paused' then 'paused'
      else case v_target when 'active' then 'reactivated' when 'past_due' then 'past_due'
                         when 'canceled' then 'canceled' else 'expired' end end,
    v_sub.plan_id, v_sub.plan_id, v_sub.status, v_target, 'provider',
    p_reason => pg_catalog.format('%s %s', p_event ->> 'provider', p_event ->> 'event_type'),
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'provider_status', p_provider_status,
                                                'provider_subscription_id', v_sub.provider_subscription_id),
    p_effective_at => v_now);
  return true;
end;
$$;
revoke execute on function billing.sync_provider_status(uuid, text, timestamptz, jsonb) from public;
grant execute on function billing.sync_provider_status(uuid, text, timestamptz, jsonb) to service_role;

/**
 * The order a provider event is about, without locking it: by the provider's order id (set by our
 * server when it created the Razorpay order), else by the provider subscription id (the first
 * order of that subscription), else by our reference (PayU txnid, Razorpay receipt or notes) as
 * long as the event names no other provider order or subscription than the one on that order.
 */
create function billing.match_order(p_event jsonb)
returns public.orders
language plpgsql
stable
set search_path = ''
as $$
declare
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_provider_order_id text := p_event ->> 'provider_order_id';
  v_subscription_id text := p_event ->> 'provider_subscription_id';
  v_ref text := p_event ->> 'order_ref';
  v_order public.orders;
begin
  if v_provider_order_id is not null then
    select * into v_order from public.orders o where o.provider = v_provider and o.provider_order_id = v_provider_order_id;
    if found then
      return v_order;
    end if;
  end if;
  if v_subscription_id is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.provider_subscription_id = v_subscription_id and o.kind = 'new';
    if found then
      return v_order;
    end if;
  end if;
  if v_ref is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.receipt = v_ref
      and (o.provider_order_id is null or v_provider_order_id is null or o.provider_order_id = v_provider_order_id or o.provider_subscription_id is not null)
      and (o.provider_subscription_id is null or v_subscription_id is null or o.provider_subscription_id = v_subscription_id);
    if found then
      return v_order;
    end if;
  end if;
  return null;
end;
$$;
revoke execute on function billing.match_order(jsonb) from public;
grant execute on function billing.match_order(jsonb) to service_role;

/**
 * Starts or extends the subscription a captured payment of p_order pays for (locked here):
 *   none yet: a new active subscription, one period from now ('activated');
 *   on another plan: the paid plan takes effect now, for one full period ('plan_changed');
 *   on the same plan: extended from the period end while it runs or is in grace, else from now
 *   ('renewed', or 'activated' for a subscription that never had a period).
 * Periods are added on the organization's calendar. Writes the subscription_history row.
 */
create function billing.extend_subscription_for_payment(
  p_order public.orders,
  p_provider_subscription_id text,
  p_event jsonb,
  p_payment_event_id uuid
)
returns public.subscriptions
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_psid text := p_provider_subscription_id;
  v_interval public.billing_interval;
  v_timezone text;
  v_sub public.subscriptions;
  v_old public.subscriptions;
  v_start timestamptz := v_now;
  v_end timestamptz;
  v_action text;
begin
  select p.interval into v_interval from public.billing_plans p where p.id = p_order.plan_id;
  select o.timezone into v_timezone from public.organizations o where o.id = p_order.organization_id;
  if v_psid is not null then
    select * into v_old from public.subscriptions s
    where s.provider = p_order.provider and s.provider_subscription_id = v_psid
    for update;
  end if;
  if v_old.id is null then
    select * into v_old from public.subscriptions s
    where s.organization_id = p_order.organization_id
      and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
    for update;
  end if;

  if v_old.id is null then
    v_action := 'activated';
    v_end := billing.period_end_after(v_start, v_interval, v_timezone);
    insert into public.subscriptions
      (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id)
    values
      (p_order.organization_id, p_order.plan_id, 'active', v_start, v_end, p_order.provider, v_psid)
    returning * into v_sub;
  else
    if v_old.plan_id <> p_order.plan_id then
      v_action := 'plan_changed';
    else
      if v_old.current_period_end is not null and v_old.current_period_end + billing.grace_interval() >= v_now then
        v_start := v_old.current_period_end;
      end if;
      v_action := case when v_old.status = 'pending_payment' or v_old.current_period_end is null then 'activated'
                       else 'renewed' end;
    end if;
    v_end := billing.period_end_after(v_start, v_interval, v_timezone);
    update public.subscriptions s
    set plan_id = p_order.plan_id,
        status = case when s.status in ('pending_payment', 'trialing', 'active', 'past_due') then 'active' else s.status end,
        current_period_start = case when v_action = 'plan_changed' or s.current_period_end is null
                                         or s.current_period_end <= v_now
                                    then v_start else s.current_period_start end,
        current_period_end = v_end,
        pending_plan_id = case when v_action = 'plan_changed' then null else s.pending_plan_id end,
        pending_plan_effective_at = case when v_action = 'plan_changed' then null else s.pending_plan_effective_at end,
        cancel_at_period_end = false,
        canceled_at = case when v_action = 'plan_changed' then null
                           when s.status in ('canceled', 'expired') then s.canceled_at end,
        ended_at = case when v_action = 'plan_changed' then null else s.ended_at end,
        provider = case when v_psid is not null or s.provider_subscription_id is null then p_order.provider else s.provider end,
        provider_subscription_id = coalesce(v_psid, s.provider_subscription_id)
    where s.id = v_old.id
    returning * into v_sub;
  end if;

  perform billing.log_subscription_change(
    p_order.organization_id, v_sub.id, v_action, v_old.plan_id, v_sub.plan_id, v_old.status, v_sub.status, 'provider',
    p_reason => pg_catalog.format('%s payment %s captured (%s)', p_order.provider, p_event ->> 'provider_payment_id',
                                  p_event ->> 'event_type'),
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'order_id', p_order.id,
                                                'payment_event_id', p_payment_event_id,
                                                'provider_payment_id', p_event ->> 'provider_payment_id',
                                                'period_start', v_start, 'period_end', v_end),
    p_effective_at => v_now);
  return v_sub;
end;
$$;
revoke execute on function billing.extend_subscription_for_payment(public.orders, text, jsonb, uuid) from public;
grant execute on function billing.extend_subscription_for_payment(public.orders, text, jsonb, uuid) to service_role;

/**
 * Applies a captured payment to an order (locked by the caller): records payment_events
 * 'captured' once, marks the order paid, starts or extends the subscription
 * (billing.extend_subscription_for_payment) and issues the invoice. For a provider subscription
 * whose first order is already paid, each new charge gets a renewal order of its own (so it gets
 * its own invoice). A payment for a subscription that ended (canceled or expired) before the
 * payment was made is only recorded (result 'recorded': nothing extended, no history, no
 * invoice), and so is a second payment of a one-time order. Returns the result object.
 */
create function billing.apply_captured_payment(p_order public.orders, p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_order public.orders := p_order;
  v_sub public.subscriptions;
  v_payment_event_id uuid;
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_psid text := coalesce(p_event ->> 'provider_subscription_id', p_order.provider_subscription_id);
  v_paid_at timestamptz := coalesce(p_event_at, billing.now());
  v_ended boolean;
  v_documents record;
begin
  -- The same payment came another way first (webhook vs verify vs PayU return): nothing to do.
  if exists (select 1 from public.payment_events pe
             where pe.provider = v_order.provider and pe.provider_payment_id = v_payment_id and pe.status = 'captured') then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'payment already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;

  -- The subscription this payment is for, when the order names one (a provider subscription, an
  -- upgrade or renewal order): if it ended before the payment was made, the payment is recorded
  -- and nothing else happens (a late charge after a cancellation made here, an upgrade paid after
  -- the cancel). Payments made before the end (delivered late) still count.
  if v_psid is not null then
    select * into v_sub from public.subscriptions s
    where s.provider = v_order.provider and s.provider_subscription_id = v_psid
    for update;
  end if;
  if v_sub.id is null and v_order.subscription_id is not null and v_order.kind in ('upgrade', 'renewal') then
    select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id for update;
  end if;
  v_ended := v_sub.id is not null and v_sub.status in ('canceled', 'expired')
             and v_paid_at > coalesce(v_sub.ended_at, v_sub.canceled_at, '-infinity'::timestamptz);

  -- A later charge of a provider subscription whose first order is paid: a renewal order.
  if not v_ended and v_order.status = 'paid' and v_psid is not null then
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, provider_subscription_id, kind,
       amount_cents, currency, status, metadata)
    values
      (v_order.organization_id, v_order.plan_id, v_order.subscription_id, v_order.provider, v_psid, 'renewal',
       v_order.amount_cents, v_order.currency, 'pending',
       pg_catalog.jsonb_build_object('first_order_id', v_order.id, 'provider_payment_id', v_payment_id))
    returning * into v_order;
  end if;

  v_payment_event_id := billing.record_payment_event(
    v_order.organization_id, v_order.id, v_order.provider, v_payment_id, (p_event ->> 'amount_paise')::bigint,
    p_event ->> 'currency', 'captured', p_event ->> 'method', null,
    pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                  'provider_order_id', p_event ->> 'provider_order_id',
                                  'provider_subscription_id', v_psid)
      || case when v_ended then pg_catalog.jsonb_build_object('not_applied', 'subscription ended before the payment')
              else '{}'::jsonb end,
    v_paid_at);
  if v_ended then
    return pg_catalog.jsonb_build_object(
      'result', 'recorded',
      'reason', pg_catalog.format('payment for an ended subscription (%s since %s): refund or reactivate', v_sub.status,
                                  coalesce(v_sub.ended_at, v_sub.canceled_at)),
      'payment_event_id', v_payment_event_id, 'order_id', v_order.id, 'order_status', v_order.status,
      'subscription_id', v_sub.id, 'subscription_status', v_sub.status, 'current_period_end', v_sub.current_period_end);
  end if;
  if v_payment_event_id is null then
    -- Unreachable while callers hold the order lock; kept as the last guard.
    raise exception 'payment % was recorded concurrently', v_payment_id using errcode = 'serialization_failure';
  end if;
  if v_order.status = 'paid' then
    -- A second payment for a one-time order that is already paid: recorded, nothing extended.
    return pg_catalog.jsonb_build_object('result', 'recorded', 'reason', 'order already paid: refund the extra payment',
                                         'payment_event_id', v_payment_event_id);
  end if;

  v_sub := billing.extend_subscription_for_payment(v_order, v_psid, p_event, v_payment_event_id);
  update public.orders o
  set status = 'paid', paid_at = billing.now(), subscription_id = v_sub.id,
      provider_subscription_id = case when o.kind = 'new' and o.provider_subscription_id is null
                                      then v_psid else o.provider_subscription_id end
  where o.id = v_order.id
  returning * into v_order;
  select * into v_documents from billing.issue_documents(v_order.id, v_payment_event_id) d;

  return pg_catalog.jsonb_build_object(
    'result', 'applied', 'order_id', v_order.id, 'order_status', v_order.status,
    'payment_event_id', v_payment_event_id, 'subscription_id', v_sub.id, 'subscription_status', v_sub.status,
    'current_period_end', v_sub.current_period_end, 'invoice_id', v_documents.invoice_id,
    'invoice_error', v_documents.error);
end;
$$;
revoke execute on function billing.apply_captured_payment(public.orders, jsonb, timestamptz) from public;
grant execute on function billing.apply_captured_payment(public.orders, jsonb, timestamptz) to service_role;

/**
 * Refunds are matched through the payment they refund: a refund of a captured payment is
 * recorded once per refund id ('refunded', with its credit note); one that does not fit what was
 * captured (no amount, another currency, refunds above the capture) is a 'mismatch', recorded
 * for an operator and never credited. Returns the result object; `last_error` says what was not
 * applied.
 */
create function billing.apply_refund(p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_amount bigint := (p_event ->> 'amount_paise')::bigint;
  v_currency text := p_event ->> 'currency';
  v_refund_id text := coalesce(p_event ->> 'provider_refund_id', p_event ->> 'event_id');
  v_captured public.payment_events;
  v_order public.orders;
  v_refunded bigint;
  v_error text;
  v_payment_event_id uuid;
  v_documents record;
begin
  select * into v_captured from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'captured'
  order by pe.created_at
  limit 1;
  if v_captured.id is null then
    v_error := pg_catalog.format('unknown payment %s for refund %s', coalesce(v_payment_id, '(none)'),
                                 coalesce(p_event ->> 'provider_refund_id', '(none)'));
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error, 'last_error', v_error);
  end if;

  select * into v_order from public.orders o where o.id = v_captured.order_id for update;
  select coalesce(sum(pe.amount_cents), 0) into v_refunded from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'refunded';
  if exists (select 1 from public.payment_events pe
             where pe.provider = v_provider and pe.status = 'refunded' and pe.details ->> 'refund_id' = v_refund_id) then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;

  if v_amount is null or v_amount = 0 or v_currency is distinct from v_captured.currency then
    v_error := pg_catalog.format('refund %s: amount %s %s does not fit payment %s (%s %s)', v_refund_id,
                                 coalesce(v_amount::text, 'null'), coalesce(v_currency, 'null'),
                                 v_payment_id, v_captured.amount_cents, v_captured.currency);
  elsif v_refunded + v_amount > v_captured.amount_cents then
    v_error := pg_catalog.format('refund %s: refunds of payment %s would reach %s, above the %s captured', v_refund_id,
                                 v_payment_id, v_refunded + v_amount, v_captured.amount_cents);
  end if;
  if v_error is not null then
    -- Recorded for the operator, never credited: no refund row (it would count against the
    -- captured amount), no credit note.
    v_payment_event_id := billing.record_payment_event(
      v_captured.organization_id, v_captured.order_id, v_provider, v_payment_id, coalesce(v_amount, 0),
      coalesce(v_currency, v_captured.currency), 'mismatch', null, v_error,
      pg_catalog.jsonb_build_object('refund_id', v_refund_id, 'event_id', p_event ->> 'event_id',
                                    'event_type', p_event ->> 'event_type',
                                    'captured_payment_event_id', v_captured.id, 'refunded_before', v_refunded),
      p_event_at);
    return pg_catalog.jsonb_build_object('result', 'mismatch', 'reason', v_error, 'last_error', v_error,
                                         'order_id', v_order.id, 'order_status', v_order.status,
                                         'payment_event_id', v_payment_event_id);
  end if;

  v_payment_event_id := billing.record_payment_event(
    v_captured.organization_id, v_captured.order_id, v_provider, v_payment_id, v_amount, v_currency, 'refunded',
    null, null,
    pg_catalog.jsonb_build_object('refund_id', v_refund_id, 'event_id', p_event ->> 'event_id',
                                  'captured_payment_event_id', v_captured.id),
    p_event_at);
  if v_payment_event_id is null then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;
  select * into v_documents
  from billing.issue_documents(v_captured.order_id, v_captured.id, v_amount,
                               pg_catalog.format('%s refund %s', v_provider, v_refund_id), v_payment_event_id) d;
  return pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id,
                                       'invoice_id', v_documents.invoice_id, 'credit_note_id', v_documents.credit_note_id,
                                       'order_id', v_order.id, 'order_status', v_order.status,
                                       'last_error', v_documents.error);
end;
$$;
revoke execute on function billing.apply_refund(jsonb, timestamptz) from public;
grant execute on function billing.apply_refund(jsonb, timestamptz) to service_role;

/**
 * A captured payment whose amount or currency differs from its order: recorded as a 'mismatch'
 * for an operator, never applied.
 */
create function billing.record_amount_mismatch(p_order public.orders, p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_amount bigint := (p_event ->> 'amount_paise')::bigint;
  v_currency text := p_event ->> 'currency';
  v_error text := pg_catalog.format('amount mismatch for order %s: expected %s %s, got %s %s', p_order.receipt,
                                    p_order.amount_cents, p_order.currency, coalesce(v_amount::text, 'null'),
                                    coalesce(v_currency, 'null'));
begin
  return pg_catalog.jsonb_build_object(
    'result', 'mismatch', 'reason', v_error, 'last_error', v_error,
    'payment_event_id', billing.record_payment_event(
      p_order.organization_id, p_order.id, p_order.provider, p_event ->> 'provider_payment_id', coalesce(v_amount, 0),
      coalesce(v_currency, p_order.currency), 'mismatch', p_event ->> 'method', v_error,
      pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                    'expected_amount', p_order.amount_cents, 'expected_currency', p_order.currency,
                                    'amount', v_amount, 'currency', v_currency),
      p_event_at));
end;
$$;
revoke execute on function billing.record_amount_mismatch(public.orders, jsonb, timestamptz) from public;
grant execute on function billing.record_amount_mismatch(public.orders, jsonb, timestamptz) to service_role;

/**
 * A failed payment: recorded once per provider payment, the order failed unless it is paid (a
 * failure never undoes a capture, whatever the arrival order), and a 'payment_failed'
 * notification queued for the organization.
 */
create function billing.apply_payment_failure(p_order public.orders, p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_amount bigint := coalesce((p_event ->> 'amount_paise')::bigint, p_order.amount_cents);
  v_currency text := coalesce(p_event ->> 'currency', p_order.currency);
  v_reason text := coalesce(p_event ->> 'error_reason', p_event ->> 'status');
  v_payment_event_id uuid;
begin
  v_payment_event_id := billing.record_payment_event(
    p_order.organization_id, p_order.id, p_order.provider, v_payment_id, v_amount, v_currency, 'failed',
    p_event ->> 'method', v_reason,
    pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type'),
    p_event_at);
  if v_payment_event_id is null then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'failure already recorded');
  end if;
  update public.orders o set status = 'failed'
  where o.id = p_order.id and o.status in ('created', 'pending');
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key, created_at)
  select p_order.organization_id, p_order.subscription_id, 'payment_failed',
         pg_catalog.jsonb_build_object('order_id', p_order.id, 'receipt', p_order.receipt, 'amount_cents', v_amount,
                                       'currency', v_currency, 'provider', p_order.provider,
                                       'provider_payment_id', v_payment_id, 'error_reason', v_reason,
                                       'plan_code', p.code),
         pg_catalog.format('payment_failed:%s:%s', p_order.provider, v_payment_id),
         billing.now()
  from public.billing_plans p where p.id = p_order.plan_id
  on conflict (dedupe_key) do nothing;
  return pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id);
end;
$$;
revoke execute on function billing.apply_payment_failure(public.orders, jsonb, timestamptz) from public;
grant execute on function billing.apply_payment_failure(public.orders, jsonb, timestamptz) to service_role;

/**
 * A provider subscription's status follows its newest event (by the provider's event time), kept
 * in billing.provider_subscription_states. Our row follows the stored state only when this event
 * changed it (p_status not null), or created or extended the row (p_applied_payment): an older
 * event (whatever arrives late) never re-applies a state, so it cannot undo what happened here
 * since (a cancellation by the user). Returns an error to record, or null.
 */
create function billing.follow_provider_subscription(
  p_event jsonb,
  p_provider_subscription_id text,
  p_status text,
  p_event_at timestamptz,
  p_applied_payment boolean
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_changed boolean := false;
  v_sub public.subscriptions;
  v_state billing.provider_subscription_states;
begin
  if p_status is not null then
    insert into billing.provider_subscription_states as st (provider, provider_subscription_id, status, status_at, event_id)
    values (v_provider, p_provider_subscription_id, p_status, p_event_at, p_event ->> 'event_id')
    on conflict (provider, provider_subscription_id) do update
      set status = excluded.status, status_at = excluded.status_at, event_id = excluded.event_id
      where st.status_at <= excluded.status_at
    returning true into v_changed;
  end if;
  if not (coalesce(v_changed, false) or p_applied_payment) then
    return null;
  end if;
  select * into v_sub from public.subscriptions s
  where s.provider = v_provider and s.provider_subscription_id = p_provider_subscription_id;
  select * into v_state from billing.provider_subscription_states st
  where st.provider = v_provider and st.provider_subscription_id = p_provider_subscription_id;
  if v_sub.id is null or v_state.status is null
     or billing.sync_provider_status(v_sub.id, v_state.status, v_state.status_at, p_event) then
    return null;
  end if;
  return pg_catalog.format('subscription %s not moved to %s: the organization has another live subscription',
                           p_provider_subscription_id, v_state.status);
end;
$$;
revoke execute on function billing.follow_provider_subscription(jsonb, text, text, timestamptz, boolean) from public;
grant execute on function billing.follow_provider_subscription(jsonb, text, text, timestamptz, boolean) to service_role;

/**
 * An event about one of our orders (every kind but refunds): matches the order and locks it (then
 * its organization, so two orders of one organization cannot both start a subscription), applies
 * the event by its kind, lets a provider subscription follow its newest status, and answers with
 * where the order and the subscription stand.
 */
create function billing.apply_order_event(p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_kind text := p_event ->> 'kind';
  v_psid text := p_event ->> 'provider_subscription_id';
  v_status text;
  v_order public.orders;
  v_sub public.subscriptions;
  v_result jsonb;
  v_error text;
begin
  v_order := billing.match_order(p_event);
  if v_order.id is null then
    v_error := pg_catalog.format('no order matches %s event %s (order_ref %s, provider order %s, subscription %s)',
                                 p_event ->> 'provider', p_event ->> 'event_id', coalesce(p_event ->> 'order_ref', '-'),
                                 coalesce(p_event ->> 'provider_order_id', '-'), coalesce(v_psid, '-'));
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error, 'last_error', v_error);
  end if;
  select * into v_order from public.orders o where o.id = v_order.id for update;
  perform 1 from public.organizations o where o.id = v_order.organization_id for no key update;
  v_psid := coalesce(v_psid, v_order.provider_subscription_id);

  if v_kind in ('payment_captured', 'payment_failed', 'payment_authorized') and p_event ->> 'provider_payment_id' is null then
    v_error := pg_catalog.format('%s event %s names no payment', p_event ->> 'provider', p_event ->> 'event_id');
    v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);
  elsif v_kind = 'payment_captured' then
    if (p_event ->> 'amount_paise')::bigint is distinct from v_order.amount_cents
       or p_event ->> 'currency' is distinct from v_order.currency then
      v_result := billing.record_amount_mismatch(v_order, p_event, p_event_at);
    else
      v_status := case when v_psid is not null then p_event ->> 'subscription_status' end;
      v_result := billing.apply_captured_payment(v_order, p_event || pg_catalog.jsonb_build_object(
                    'provider_subscription_id', v_psid), p_event_at);
      v_error := coalesce(v_result ->> 'invoice_error',
                          case when v_result ->> 'result' = 'recorded' then v_result ->> 'reason' end);
    end if;
  elsif v_kind = 'payment_failed' then
    v_result := billing.apply_payment_failure(v_order, p_event, p_event_at);
  elsif v_kind = 'payment_authorized' then
    v_result := pg_catalog.jsonb_build_object('payment_event_id', billing.record_payment_event(
      v_order.organization_id, v_order.id, v_order.provider, p_event ->> 'provider_payment_id',
      coalesce((p_event ->> 'amount_paise')::bigint, 0), coalesce(p_event ->> 'currency', v_order.currency),
      'authorized', p_event ->> 'method', null,
      pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type'),
      p_event_at));
    v_result := v_result || pg_catalog.jsonb_build_object(
      'result', case when v_result ->> 'payment_event_id' is null then 'duplicate' else 'recorded' end);
    update public.orders o set status = 'pending' where o.id = v_order.id and o.status = 'created';
  elsif v_kind = 'payment_pending' then
    update public.orders o set status = 'pending' where o.id = v_order.id and o.status = 'created';
    v_result := pg_catalog.jsonb_build_object('result', 'recorded', 'reason', 'payment pending at the provider');
  elsif v_psid is null then
    -- subscription_status
    v_error := pg_catalog.format('%s event %s names no subscription', p_event ->> 'provider', p_event ->> 'event_id');
    v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);
  else
    v_status := p_event ->> 'subscription_status';
    v_result := pg_catalog.jsonb_build_object('result', 'applied');
  end if;

  if v_psid is not null and v_result ->> 'result' in ('applied', 'duplicate') then
    v_error := coalesce(billing.follow_provider_subscription(
      p_event, v_psid, v_status, p_event_at,
      v_kind = 'payment_captured' and v_result ->> 'result' = 'applied'), v_error);
  end if;

  select * into v_order from public.orders o where o.id = coalesce((v_result ->> 'order_id')::uuid, v_order.id);
  if v_psid is not null then
    select * into v_sub from public.subscriptions s
    where s.provider = v_order.provider and s.provider_subscription_id = v_psid;
  end if;
  if v_sub.id is null then
    select * into v_sub from public.subscriptions s
    where s.id = coalesce((v_result ->> 'subscription_id')::uuid, v_order.subscription_id);
  end if;
  return v_result || pg_catalog.jsonb_build_object(
    'order_id', v_order.id, 'order_status', v_order.status, 'subscription_id', v_sub.id,
    'subscription_status', v_sub.status, 'current_period_end', v_sub.current_period_end,
    'reason', coalesce(v_result ->> 'reason', v_error),
    'last_error', coalesce(v_result ->> 'last_error', v_error));
end;
$$;
revoke execute on function billing.apply_order_event(jsonb, timestamptz) from public;
grant execute on function billing.apply_order_event(jsonb, timestamptz) to service_role;

/**
 * THE entry point for provider events (service_role only): webhooks, PayU's return POST,
 * Razorpay Checkout verification and reconciliation all call it with the provider-neutral event
 * the Edge Functions' adapters build:
 *   {provider, event_id, event_type, kind, order_ref, provider_order_id, provider_payment_id,
 *    provider_subscription_id, provider_refund_id, amount_paise, currency, status,
 *    subscription_status, error_reason, method, occurred_at, payload}
 * `kind` decides what happens (the provider's own event_type is only recorded):
 *   payment_captured: payment_events 'captured' once per provider payment, order paid,
 *     subscription started or extended, subscription_history, the invoice;
 *   payment_failed: payment_events 'failed', order failed unless already paid, a notification;
 *   payment_authorized / payment_pending: recorded, the order stays open;
 *   refund_processed: payment_events 'refunded' against the captured payment, credit note;
 *   subscription_status: a provider subscription follows its newest status (subscription_status);
 *   other: recorded and acknowledged ('ignored').
 * In one transaction: records the delivery in billing.webhook_events (a repeated provider +
 * event_id is acknowledged with result 'duplicate' and changes nothing else), locks the matched
 * order (events for one order are applied one at a time), checks amount and currency against it,
 * and applies it. A mismatch ('mismatch') or an order or payment we do not know ('unmatched') is
 * recorded in webhook_events.last_error (and payment_events 'mismatch') and activates nothing.
 * Bad input raises 22023 naming the field.
 * Returns {result, webhook_event_id, order_id, order_status, payment_event_id, subscription_id,
 * subscription_status, current_period_end, invoice_id, reason} (keys present when they apply).
 */
create function billing.apply_payment_event(p_event jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_provider public.payment_provider;
  v_event_at timestamptz;
  v_webhook_id uuid;
  v_order public.orders;
  v_result jsonb;
begin
  perform billing.validate_payment_event(p_event);
  v_provider := (p_event ->> 'provider')::public.payment_provider;
  v_event_at := coalesce((p_event ->> 'occurred_at')::timestamptz, v_now);

  -- Record the delivery once, already marked processed: it is applied in this transaction, so
  -- nobody ever sees it unprocessed (a failure rolls the record back with the rest, and the
  -- provider's retry starts again); later steps only add last_error. A duplicate (also a
  -- concurrent one, which waits here for the first to commit) is acknowledged without effect.
  insert into billing.webhook_events (provider, event_id, event_type, payload, received_at, processed_at, attempts)
  values (v_provider, p_event ->> 'event_id', p_event ->> 'event_type', p_event, v_now, v_now, 1)
  on conflict (provider, event_id) do nothing
  returning id into v_webhook_id;
  if v_webhook_id is null then
    update billing.webhook_events w set attempts = w.attempts + 1
    where w.provider = v_provider and w.event_id = p_event ->> 'event_id'
    returning w.id into v_webhook_id;
    v_order := billing.match_order(p_event);
    return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'result', 'duplicate', 'webhook_event_id', v_webhook_id, 'reason', 'event already received',
      'order_id', v_order.id, 'order_status', v_order.status));
  end if;

  v_result := case p_event ->> 'kind'
    when 'other' then pg_catalog.jsonb_build_object(
      'result', 'ignored', 'reason', pg_catalog.format('event type %s is not handled', p_event ->> 'event_type'))
    when 'refund_processed' then billing.apply_refund(p_event, v_event_at)
    else billing.apply_order_event(p_event, v_event_at)
  end;

  update billing.webhook_events w set last_error = v_result ->> 'last_error'
  where w.id = v_webhook_id and v_result ->> 'last_error' is not null;
  return pg_catalog.jsonb_strip_nulls((v_result - 'last_error')
                                      || pg_catalog.jsonb_build_object('webhook_event_id', v_webhook_id));
end;
$$;
revoke execute on function billing.apply_payment_event(jsonb) from public, anon, authenticated;
grant execute on function billing.apply_payment_event(jsonb) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Implementations of the public functions (security definer; their wrappers are in section 5)
-- -------------------------------------------------------------------------------------------------

/**
 * Starts a checkout: the signed-in owner or admin of the organization buys an active paid plan
 * through a provider. Creates the order and returns what the checkout function needs; its
 * amount_cents is the total payable, GST included (quoted by the orders module's trigger on
 * orders: the plan's price plus GST, or with GST carved out of it for tax-inclusive prices and
 * Razorpay recurring plans). PayU orders are payable at once ('pending'); Razorpay orders stay
 * 'created' until the Razorpay order or subscription is attached (attach_provider_checkout), so an
 * order whose provider call failed can never be paid.
 * Checkout buys a first plan or renews the plan in effect; it never changes plan. Refused (55000)
 * with HINT 'use_change_plan' while a subscription is active or past due on another plan (except
 * change_plan's 'cancel_and_resubscribe': a Razorpay subscription set to cancel at the period
 * end, replaced by a new Razorpay subscription), and with HINT 'recurring_subscription_exists'
 * while a Razorpay subscription checkout is still open, or when buying a Razorpay subscription
 * while one renews automatically.
 * Errors: 42501 not signed in / not an owner or admin; 22023 bad provider; P0002 no such active
 * plan; 55000 the plan is free or cannot be paid through the provider, or as above.
 * Security definer: signed-in users have no insert grant on orders, and the buyer's email comes
 * from auth.users.
 */
create function billing.create_checkout_order(p_organization_id uuid, p_plan_code text, p_provider text)
returns setof billing.checkout_order
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_order public.orders;
  v_rzp_plan text;
  v_live public.subscriptions;
  v_live_plan public.billing_plans;
  v_open public.orders;
begin
  if p_provider is null or p_provider not in ('payu', 'razorpay') then
    raise exception 'provider must be "payu" or "razorpay"' using errcode = 'invalid_parameter_value';
  end if;
  perform billing.require_role(p_organization_id, billing.managers(), 'buy a plan');
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  if v_plan.price_cents <= 0 or v_plan.tier = 'free' then
    raise exception 'plan "%" is free: there is nothing to pay', v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_provider = 'payu' and v_plan.currency <> 'INR' then
    raise exception 'plan "%" is in %: PayU accepts only INR', v_plan.code, v_plan.currency
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_provider = 'razorpay' and v_plan.price_cents < 100 then
    raise exception 'plan "%" costs less than Razorpay''s minimum of 100 paise', v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  -- One checkout of an organization at a time (the payment path takes the same lock), so the
  -- checks below see what a concurrent checkout or payment wrote.
  perform 1 from public.organizations o where o.id = p_organization_id for no key update;
  v_rzp_plan := case when p_provider = 'razorpay' then nullif(v_plan.provider_config #>> '{razorpay,plan_id}', '') end;

  select * into v_live from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due');
  if v_live.status in ('active', 'past_due') and v_live.plan_id <> v_plan.id
     and not (v_rzp_plan is not null and v_live.provider = 'razorpay' and v_live.provider_subscription_id is not null
              and v_live.cancel_at_period_end) then
    select * into v_live_plan from public.billing_plans p where p.id = v_live.plan_id;
    raise exception 'the organization is on plan "%" until %: use change_plan to switch to "%" (upgrades are prorated, downgrades start at the period end)',
      v_live_plan.code, v_live.current_period_end, v_plan.code
      using errcode = 'object_not_in_prerequisite_state', hint = 'use_change_plan';
  end if;
  select * into v_open from public.orders o
  where o.organization_id = p_organization_id and o.kind = 'new' and o.status in ('created', 'pending')
    and (o.provider_subscription_id is not null or o.metadata ->> 'recurring' = 'true')
    and (o.expires_at is null or o.expires_at > v_now)
  order by o.created_at desc
  limit 1;
  if v_open.id is not null then
    raise exception 'a Razorpay subscription checkout (order %) is still open until %: complete it, or use change_plan once it is paid',
      v_open.receipt, v_open.expires_at
      using errcode = 'object_not_in_prerequisite_state', hint = 'recurring_subscription_exists';
  end if;
  if v_rzp_plan is not null and v_live.provider = 'razorpay' and v_live.provider_subscription_id is not null
     and not v_live.cancel_at_period_end then
    raise exception 'the organization''s Razorpay subscription % renews automatically: a second one would charge twice (use change_plan to switch plans)',
      v_live.provider_subscription_id
      using errcode = 'object_not_in_prerequisite_state', hint = 'recurring_subscription_exists';
  end if;

  insert into public.orders
    (organization_id, plan_id, provider, kind, amount_cents, currency, status, created_by, expires_at, metadata)
  values
    (p_organization_id, v_plan.id, p_provider::public.payment_provider, 'new', v_plan.price_cents, v_plan.currency,
     case when p_provider = 'payu' then 'pending' else 'created' end::public.order_status, v_user_id, v_now + interval '1 day',
     pg_catalog.jsonb_build_object('plan_code', v_plan.code, 'recurring', v_rzp_plan is not null))
  returning * into v_order;

  return next billing.checkout_answer(v_order, v_user_id, v_rzp_plan);
end;
$$;
revoke execute on function billing.create_checkout_order(uuid, text, text) from public, anon;
grant execute on function billing.create_checkout_order(uuid, text, text) to authenticated;

-- -------------------------------------------------------------------------------------------------
-- Service-side functions of checkout and reconciliation (service_role)
-- -------------------------------------------------------------------------------------------------

/**
 * Attaches the provider's order (Razorpay `order_...`) or subscription (`sub_...`) to a 'created'
 * checkout order and makes it payable ('pending'). service_role only (the checkout function).
 */
create function billing.attach_provider_checkout(
  p_order_id uuid,
  p_provider_order_id text,
  p_provider_subscription_id text default null
)
returns public.orders
language plpgsql
set search_path = ''
as $$
declare
  v_order public.orders;
begin
  if (p_provider_order_id is null) = (p_provider_subscription_id is null) then
    raise exception 'exactly one of the provider order id and the provider subscription id is required'
      using errcode = 'invalid_parameter_value';
  end if;
  update public.orders o
  set provider_order_id = p_provider_order_id,
      provider_subscription_id = p_provider_subscription_id,
      status = 'pending'
  where o.id = p_order_id and o.status = 'created'
  returning * into v_order;
  if v_order.id is null then
    raise exception 'order % is not a checkout waiting for its provider order', p_order_id
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  return v_order;
end;
$$;
revoke execute on function billing.attach_provider_checkout(uuid, text, text) from public, anon, authenticated;
grant execute on function billing.attach_provider_checkout(uuid, text, text) to service_role;

/**
 * Cancels a checkout order that never reached the buyer (the provider call failed), with the
 * reason in metadata. Only an order that is still open and has no payment recorded; a paid order
 * is never touched. service_role only.
 */
create function billing.cancel_checkout_order(p_order_id uuid, p_reason text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.orders o
  set status = 'canceled',
      metadata = o.metadata || pg_catalog.jsonb_build_object('canceled_reason', left(coalesce(p_reason, ''), 500))
  where o.id = p_order_id and o.status in ('created', 'pending')
    and not exists (select 1 from public.payment_events pe where pe.order_id = o.id);
end;
$$;
revoke execute on function billing.cancel_checkout_order(uuid, text) from public, anon, authenticated;
grant execute on function billing.cancel_checkout_order(uuid, text) to service_role;

/**
 * Reconciliation, step one (service_role only; the reconcile function asks the providers about
 * what this returns): expires checkout orders past their expires_at that are still open (a
 * payment that arrives later is still applied: it pays an expired order), then returns up to
 * p_limit open orders pending longer than billing_settings.order_pending_reconcile_after, oldest
 * first. Orders with a Razorpay subscription are left to its webhooks.
 */
create function billing.reconcile_due_orders(p_limit integer default 50)
returns table (
  order_id uuid,
  provider text,
  receipt text,
  provider_order_id text,
  amount_cents bigint,
  currency text,
  created_at timestamptz
)
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_after interval;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  select s.order_pending_reconcile_after into v_after from public.billing_settings s;
  v_after := coalesce(v_after, interval '15 minutes');

  update public.orders o set status = 'expired'
  where o.status in ('created', 'pending') and o.expires_at < v_now;

  return query
    select o.id, o.provider::text, o.receipt, o.provider_order_id, o.amount_cents, o.currency, o.created_at
    from public.orders o
    where o.status = 'pending'
      and o.created_at <= v_now - v_after
      and o.provider_subscription_id is null
      and (o.provider = 'payu' or o.provider_order_id is not null)
    order by o.created_at
    limit p_limit;
end;
$$;
revoke execute on function billing.reconcile_due_orders(integer) from public, anon, authenticated;
grant execute on function billing.reconcile_due_orders(integer) to service_role;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: webhook deliveries and provider states are private (schema billing).

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * Starts a checkout: the signed-in owner or admin of the organization buys an active paid plan
 * through a provider.
 * A thin wrapper: billing.create_checkout_order does the work and checks who is calling.
 */
create function public.create_checkout_order(p_organization_id uuid, p_plan_code text, p_provider text)
returns setof billing.checkout_order
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return query select * from billing.create_checkout_order(p_organization_id, p_plan_code, p_provider);
end;
$$;
revoke execute on function public.create_checkout_order(uuid, text, text) from public, anon;
grant execute on function public.create_checkout_order(uuid, text, text) to authenticated;
comment on function public.create_checkout_order(uuid, text, text) is 'Starts a checkout: the signed-in owner or admin of the organization buys an active paid plan through a provider.';


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

-- Where pg_net is installed (hosted Supabase: Database > Extensions), pg_cron calls the reconcile
-- function every 10 minutes with the URL and service role key from Supabase Vault:
--   select vault.create_secret('https://<ref>.supabase.co/functions/v1', 'supabill_functions_url');
--   select vault.create_secret('<service role key>', 'supabill_service_role_key');
-- Without those secrets the job selects nothing and calls nothing. Without pg_net (the local
-- stack) nothing is scheduled: call POST /functions/v1/reconcile with the service role key.
do $$
begin
  if exists (select from pg_catalog.pg_extension where extname = 'pg_net')
     and exists (select from pg_catalog.pg_extension where extname = 'pg_cron') then
    perform cron.schedule(
      'supabill-reconcile-orders',
      '*/10 * * * *',
      $job$
        select net.http_post(
          url := u.decrypted_secret || '/reconcile',
          headers := jsonb_build_object('content-type', 'application/json',
                                        'authorization', 'Bearer ' || k.decrypted_secret),
          body := '{}'::jsonb,
          timeout_milliseconds := 60000
        )
        from vault.decrypted_secrets u, vault.decrypted_secrets k
        where u.name = 'supabill_functions_url' and k.name = 'supabill_service_role_key'
      $job$
    );
  end if;
end;
$$;
