-- =================================================================================================
-- supabill: payments (PayU and Razorpay): checkout orders, provider events applied exactly once,
-- reconciliation
--
-- One SQL entry point, public.apply_payment_event(p_event jsonb), receives every provider event
-- (webhooks, PayU's browser return, Razorpay Checkout verification, reconciliation) as the
-- NormalizedEvent the Edge Functions build (supabase/functions/_shared/providers/types.ts), and in
-- one transaction records it in webhook_events (once per provider + event_id), matches it to our
-- order, checks amount and currency, records payment_events (once per provider payment + status),
-- moves the order and the subscription, writes subscription_history and issues the invoice.
--
-- Sections, in order: 1. columns and indexes on the tenancy tables; 2. tables; 3. helper
-- functions; 4. public functions; 5. the reconciliation job.
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
--   * a Razorpay subscription's status follows the newest provider event (by the event's own
--     time), kept in billing.provider_subscription_states, so a late `pending` never undoes a
--     newer `charged`, and a `cancelled` that arrives before the first `charged` still wins. Our
--     subscription row is moved only by an event that changed that stored state (or that created
--     or extended the row), and an ended subscription is never made live again by a provider
--     state older than its end: a late event cannot undo a cancellation made on our side;
--   * a refund is checked against what was captured: refunds above it are a 'mismatch'
--     (recorded, no credit note);
--   * checkout never changes plan (that is change_plan: upgrades prorated, downgrades at the
--     period end) and never opens a second Razorpay subscription.
--
-- Tax: the amount an order charges includes GST. The invoices migration (0500) quotes it on every
-- insert into orders (billing.quote_order_tax); the code here inserts the plan's price.
-- =================================================================================================


-- =================================================================================================
-- 1. Columns and indexes on the tenancy tables
-- =================================================================================================

/**
 * orders.provider_subscription_id: the Razorpay subscription (`sub_...`) a recurring checkout
 * created. The first order of a provider subscription (kind 'new') owns it; renewal orders made
 * for later charges carry it too.
 */
alter table public.orders add column provider_subscription_id text
  check (provider_subscription_id is null or length(provider_subscription_id) between 1 and 100);

/** One checkout order per provider subscription. */
create unique index orders_provider_subscription_new_idx on public.orders (provider, provider_subscription_id)
  where kind = 'new' and provider_subscription_id is not null;
/** Renewal orders of a provider subscription. */
create index orders_provider_subscription_id_idx on public.orders (provider_subscription_id)
  where provider_subscription_id is not null;

/**
 * A provider payment is recorded once per state (authorized, captured, failed, mismatch): the
 * webhook, the Checkout verification, PayU's return POST and reconciliation all race to this row.
 */
create unique index payment_events_payment_status_idx on public.payment_events (provider, provider_payment_id, status)
  where status <> 'refunded';
/** A refund is recorded once (several partial refunds of one payment each have their own id). */
create unique index payment_events_refund_idx on public.payment_events (provider, (details ->> 'refund_id'))
  where status = 'refunded';


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

/**
 * The provider's latest word on each of its subscriptions (Razorpay `sub_...`): the status of the
 * newest event applied and that event's time. Kept even before our subscription row exists, so
 * events applied in any order end in the same state. Private (schema billing), service_role only.
 */
create table billing.provider_subscription_states (
  provider text not null check (provider in ('payu', 'razorpay')),
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
alter table billing.provider_subscription_states enable row level security;

create trigger provider_subscription_states_touch_updated_at
  before update on billing.provider_subscription_states
  for each row execute function billing.touch_updated_at();


-- =================================================================================================
-- 3. Helper functions
-- =================================================================================================

/** One billing period of a plan interval. */
create function billing.interval_length(p_interval public.billing_interval)
returns interval
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_interval when 'month' then interval '1 month' when 'year' then interval '1 year' end;
end;
$$;
revoke execute on function billing.interval_length(public.billing_interval) from public;
grant execute on function billing.interval_length(public.billing_interval) to service_role;

/**
 * The end of one plan interval from p_start, counted on the organization's calendar: months and
 * years are added to the local date and time in p_timezone, so the answer does not depend on the
 * connection's TimeZone (1 July 00:00 IST + 1 month is 1 August 00:00 IST, whatever the session).
 */
create function billing.period_end_after(
  p_start timestamptz,
  p_interval public.billing_interval,
  p_timezone text
)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
begin
  return ((p_start at time zone p_timezone) + billing.interval_length(p_interval)) at time zone p_timezone;
end;
$$;
revoke execute on function billing.period_end_after(timestamptz, public.billing_interval, text) from public;
grant execute on function billing.period_end_after(timestamptz, public.billing_interval, text) to service_role;

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
 * provider payu|razorpay; event_id and event_type non-empty; amount_paise null or a non-negative
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
begin
  if p_event is null or pg_catalog.jsonb_typeof(p_event) <> 'object' then
    raise exception 'payment event must be a JSON object' using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(p_event ->> 'provider', '') not in ('payu', 'razorpay') then
    raise exception 'payment event: provider must be "payu" or "razorpay", got %', coalesce(p_event -> 'provider', 'null'::jsonb)
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
                                 'provider_refund_id', 'status', 'method', 'currency', 'occurred_at'] loop
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
 * The hook through which a paid order gets its tax invoice (and, with p_refund_amount_cents, a
 * refund its credit note). Here it issues nothing: the invoices migration (20261120000500)
 * replaces it with the function that does, so payments work before and after that migration
 * with no check at run time. Its contract, for any replacement: never fail the payment; an error
 * (say, the seller's details are not set yet) comes back in `error`, which the caller records in
 * webhook_events.last_error.
 */
create function billing.issue_documents(
  p_order_id uuid,
  p_payment_event_id uuid,
  p_refund_amount_cents bigint default null,
  p_refund_reason text default null,
  p_refund_event_id uuid default null,
  out invoice_id uuid,
  out credit_note_id uuid,
  out error text
)
language plpgsql
set search_path = ''
as $$
begin
  invoice_id := null;
  credit_note_id := null;
  error := null;
end;
$$;
revoke execute on function billing.issue_documents(uuid, uuid, bigint, text, uuid) from public;
grant execute on function billing.issue_documents(uuid, uuid, bigint, text, uuid) to service_role;

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

  insert into public.subscription_history
    (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status, new_status,
     actor_kind, reason, metadata, effective_at)
  values
    (v_sub.organization_id, v_sub.id,
     case p_provider_status when 'completed' then 'completed' when 'paused' then 'paused'
       else case v_target when 'active' then 'reactivated' when 'past_due' then 'past_due'
                          when 'canceled' then 'canceled' else 'expired' end end,
     v_sub.plan_id, v_sub.plan_id, v_sub.status, v_target,
     'provider',
     pg_catalog.format('%s %s', p_event ->> 'provider', p_event ->> 'event_type'),
     pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'provider_status', p_provider_status,
                                   'provider_subscription_id', v_sub.provider_subscription_id),
     v_now);
  return true;
end;
$$;
revoke execute on function billing.sync_provider_status(uuid, text, timestamptz, jsonb) from public;
grant execute on function billing.sync_provider_status(uuid, text, timestamptz, jsonb) to service_role;

/**
 * Applies a captured payment to an order (locked by the caller): records payment_events
 * 'captured' once, marks the order paid, starts or extends the subscription, writes history and
 * issues the invoice. For a provider subscription whose first order is already paid, each new
 * charge gets a renewal order of its own (so it gets its own invoice). A payment for a
 * subscription that ended (canceled or expired) before the payment was made is only recorded
 * (result 'recorded': nothing extended, no history, no invoice). Periods are added in the
 * organization's time zone. Returns the result object.
 */
create function billing.apply_captured_payment(p_order public.orders, p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_order public.orders := p_order;
  v_plan public.billing_plans;
  v_sub public.subscriptions;
  v_payment_event_id uuid;
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_psid text := coalesce(p_event ->> 'provider_subscription_id', p_order.provider_subscription_id);
  v_grace interval;
  v_start timestamptz;
  v_end timestamptz;
  v_action text;
  v_old_status public.subscription_status;
  v_old_plan uuid;
  v_invoice_id uuid;
  v_invoice_error text;
  v_timezone text;
  v_paid_at timestamptz := coalesce(p_event_at, billing.now());
  v_ended boolean;
begin
  select * into v_plan from public.billing_plans p where p.id = v_order.plan_id;
  v_grace := billing.grace_interval();
  select g.timezone into v_timezone from public.organizations g where g.id = v_order.organization_id;
  v_timezone := coalesce(v_timezone, 'Asia/Kolkata');

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

  insert into public.payment_events
    (organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status, method, details, occurred_at)
  values
    (v_order.organization_id, v_order.id, v_order.provider, v_payment_id,
     (p_event ->> 'amount_paise')::bigint, p_event ->> 'currency', 'captured', p_event ->> 'method',
     pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                   'provider_order_id', p_event ->> 'provider_order_id',
                                   'provider_subscription_id', v_psid)
       || case when v_ended then pg_catalog.jsonb_build_object('not_applied', 'subscription ended before the payment')
               else '{}'::jsonb end,
     v_paid_at)
  on conflict (provider, provider_payment_id, status) where status <> 'refunded' do nothing
  returning id into v_payment_event_id;
  if v_ended then
    return pg_catalog.jsonb_build_object(
      'result', 'recorded',
      'reason', pg_catalog.format('payment for an ended subscription (%s since %s): refund or reactivate', v_sub.status,
                                  coalesce(v_sub.ended_at, v_sub.canceled_at)),
      'payment_event_id', v_payment_event_id,
      'order_id', v_order.id,
      'order_status', v_order.status,
      'subscription_id', v_sub.id,
      'subscription_status', v_sub.status,
      'current_period_end', v_sub.current_period_end);
  end if;
  if v_payment_event_id is null then
    -- Unreachable while callers hold the order lock; kept as the last guard.
    raise exception 'payment % was recorded concurrently', v_payment_id using errcode = 'serialization_failure';
  end if;
  v_sub := null;

  if v_order.status = 'paid' then
    -- A second payment for a one-time order that is already paid: recorded, nothing extended.
    return pg_catalog.jsonb_build_object('result', 'recorded', 'reason', 'order already paid: refund the extra payment',
                                         'payment_event_id', v_payment_event_id);
  end if;

  -- The subscription this payment is for.
  if v_psid is not null then
    select * into v_sub from public.subscriptions s
    where s.provider = v_order.provider and s.provider_subscription_id = v_psid
    for update;
  end if;
  if v_sub.id is null then
    select * into v_sub from public.subscriptions s
    where s.organization_id = v_order.organization_id
      and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
    for update;
  end if;
  v_old_status := v_sub.status;
  v_old_plan := v_sub.plan_id;

  if v_sub.id is null then
    v_action := 'activated';
    v_start := v_now;
    v_end := billing.period_end_after(v_start, v_plan.interval, v_timezone);
    insert into public.subscriptions
      (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id)
    values
      (v_order.organization_id, v_order.plan_id, 'active', v_start, v_end, v_order.provider, v_psid)
    returning * into v_sub;
  elsif v_sub.plan_id <> v_order.plan_id then
    -- Another plan: the paid plan takes effect now, for one full period.
    v_action := 'plan_changed';
    v_start := v_now;
    v_end := billing.period_end_after(v_start, v_plan.interval, v_timezone);
    update public.subscriptions s
    set plan_id = v_order.plan_id,
        status = case when s.status in ('pending_payment', 'trialing', 'active', 'past_due') then 'active' else s.status end,
        current_period_start = v_start,
        current_period_end = v_end,
        pending_plan_id = null,
        pending_plan_effective_at = null,
        cancel_at_period_end = false,
        canceled_at = null,
        ended_at = null,
        provider = case when v_psid is not null or s.provider_subscription_id is null then v_order.provider else s.provider end,
        provider_subscription_id = coalesce(v_psid, s.provider_subscription_id)
    where s.id = v_sub.id
    returning * into v_sub;
  else
    -- The same plan: extend from the period end while it runs or is in grace, else start now.
    if v_sub.current_period_end is not null and v_sub.current_period_end + v_grace >= v_now then
      v_start := v_sub.current_period_end;
    else
      v_start := v_now;
    end if;
    v_end := billing.period_end_after(v_start, v_plan.interval, v_timezone);
    v_action := case when v_sub.status = 'pending_payment' or v_sub.current_period_end is null then 'activated'
                     else 'renewed' end;
    update public.subscriptions s
    set status = case when s.status in ('pending_payment', 'trialing', 'active', 'past_due') then 'active' else s.status end,
        current_period_start = case when s.current_period_end is null or s.current_period_end <= v_now
                                    then v_start else s.current_period_start end,
        current_period_end = v_end,
        cancel_at_period_end = false,
        canceled_at = case when s.status in ('canceled', 'expired') then s.canceled_at end,
        provider = case when v_psid is not null or s.provider_subscription_id is null then v_order.provider else s.provider end,
        provider_subscription_id = coalesce(v_psid, s.provider_subscription_id)
    where s.id = v_sub.id
    returning * into v_sub;
  end if;

  insert into public.subscription_history
    (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status, new_status,
     actor_kind, reason, metadata, effective_at)
  values
    (v_order.organization_id, v_sub.id, v_action, v_old_plan, v_sub.plan_id, v_old_status, v_sub.status,
     'provider',
     pg_catalog.format('%s payment %s captured (%s)', v_order.provider, v_payment_id, p_event ->> 'event_type'),
     pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'order_id', v_order.id,
                                   'payment_event_id', v_payment_event_id, 'provider_payment_id', v_payment_id,
                                   'period_start', v_start, 'period_end', v_end),
     v_now);

  update public.orders o
  set status = 'paid', paid_at = v_now, subscription_id = v_sub.id
  where o.id = v_order.id
  returning * into v_order;
  if v_order.kind = 'new' and v_order.provider_subscription_id is null and v_psid is not null then
    update public.orders o set provider_subscription_id = v_psid where o.id = v_order.id;
  end if;

  select d.invoice_id, d.error into v_invoice_id, v_invoice_error
  from billing.issue_documents(v_order.id, v_payment_event_id) d;

  select * into v_sub from public.subscriptions s where s.id = v_sub.id;
  return pg_catalog.jsonb_build_object(
    'result', 'applied',
    'order_id', v_order.id,
    'order_status', v_order.status,
    'payment_event_id', v_payment_event_id,
    'subscription_id', v_sub.id,
    'subscription_status', v_sub.status,
    'current_period_end', v_sub.current_period_end,
    'invoice_id', v_invoice_id,
    'invoice_error', v_invoice_error
  );
end;
$$;
revoke execute on function billing.apply_captured_payment(public.orders, jsonb, timestamptz) from public;
grant execute on function billing.apply_captured_payment(public.orders, jsonb, timestamptz) to service_role;

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
  v_provider text := p_event ->> 'provider';
  v_poid text := p_event ->> 'provider_order_id';
  v_psid text := p_event ->> 'provider_subscription_id';
  v_ref text := p_event ->> 'order_ref';
  v_order public.orders;
begin
  if v_poid is not null then
    select * into v_order from public.orders o where o.provider = v_provider and o.provider_order_id = v_poid;
    if found then
      return v_order;
    end if;
  end if;
  if v_psid is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.provider_subscription_id = v_psid and o.kind = 'new';
    if found then
      return v_order;
    end if;
  end if;
  if v_ref is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.receipt = v_ref
      and (o.provider_order_id is null or v_poid is null or o.provider_order_id = v_poid or o.provider_subscription_id is not null)
      and (o.provider_subscription_id is null or v_psid is null or o.provider_subscription_id = v_psid);
    if found then
      return v_order;
    end if;
  end if;
  return null;
end;
$$;
revoke execute on function billing.match_order(jsonb) from public;
grant execute on function billing.match_order(jsonb) to service_role;

/** The provider subscription status a Razorpay subscription event stands for (null: not one). */
create function billing.provider_status_of_event(p_event_type text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_event_type
    when 'subscription.activated' then 'active'
    when 'subscription.charged' then 'active'
    when 'subscription.resumed' then 'active'
    when 'subscription.pending' then 'pending'
    when 'subscription.halted' then 'halted'
    when 'subscription.paused' then 'paused'
    when 'subscription.cancelled' then 'cancelled'
    when 'subscription.completed' then 'completed'
  end;
end;
$$;
revoke execute on function billing.provider_status_of_event(text) from public;
grant execute on function billing.provider_status_of_event(text) to service_role;


-- =================================================================================================
-- 4. Public functions
-- =================================================================================================

/**
 * THE entry point for provider events (service_role only): webhooks, PayU's return POST,
 * Razorpay Checkout verification and reconciliation all call it with a NormalizedEvent:
 *   {provider, event_id, event_type, order_ref, provider_order_id, provider_payment_id,
 *    provider_subscription_id, provider_refund_id, amount_paise, currency, status, method,
 *    occurred_at, payload}
 * In one transaction: records the event in webhook_events (a repeated provider + event_id is
 * acknowledged with result 'duplicate' and changes nothing else), locks the matched order (events
 * for one order are applied one at a time), checks amount and currency against it, and applies:
 *   payments captured (PayU success; Razorpay payment.captured, order.paid, subscription.charged,
 *     invoice.paid): payment_events 'captured' once per provider payment, order paid, subscription
 *     started or extended, subscription_history, the invoice (billing.issue_documents);
 *   payments failed: payment_events 'failed', order failed unless already paid;
 *   payment.authorized / PayU pending: recorded, the order stays open;
 *   refund.processed: payment_events 'refunded' against the captured payment, credit note;
 *   Razorpay subscription.* events: the subscription follows the newest provider status.
 * Unknown event types are recorded and acknowledged ('ignored'). A mismatch ('mismatch') or an
 * order or payment we do not know ('unmatched') is recorded in webhook_events.last_error (and
 * payment_events 'mismatch') and activates nothing. Bad input raises 22023 naming the field.
 * Returns {result, webhook_event_id, order_id, order_status, payment_event_id, subscription_id,
 * subscription_status, current_period_end, invoice_id, reason} (keys present when they apply).
 */
create function public.apply_payment_event(p_event jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_provider text;
  v_event_id text;
  v_type text;
  v_event_at timestamptz;
  v_amount bigint;
  v_currency text;
  v_payment_id text;
  v_psid text;
  v_action text;
  v_provider_status text;
  v_webhook_id uuid;
  v_order public.orders;
  v_cap public.payment_events;
  v_sub public.subscriptions;
  v_result jsonb := '{}'::jsonb;
  v_error text;
  v_payment_event_id uuid;
  v_refund_id text;
  v_refunded bigint;
  v_invoice_id uuid;
  v_credit_note_id uuid;
  v_state_changed boolean;
  v_state_at timestamptz;
begin
  perform billing.validate_payment_event(p_event);
  v_provider := p_event ->> 'provider';
  v_event_id := p_event ->> 'event_id';
  v_type := p_event ->> 'event_type';
  v_event_at := coalesce((p_event ->> 'occurred_at')::timestamptz, v_now);
  v_amount := (p_event ->> 'amount_paise')::bigint;
  v_currency := p_event ->> 'currency';
  v_payment_id := p_event ->> 'provider_payment_id';
  v_psid := p_event ->> 'provider_subscription_id';

  -- 1. Record the delivery once, already marked processed: it is applied in this transaction, so
  --    nobody ever sees it unprocessed (a failure rolls the record back with the rest, and the
  --    provider's retry starts again); later steps only add last_error. A duplicate (also a
  --    concurrent one, which waits here for the first to commit) is acknowledged without effect.
  insert into public.webhook_events (provider, event_id, event_type, payload, received_at, processed_at, attempts)
  values (v_provider, v_event_id, v_type, p_event, v_now, v_now, 1)
  on conflict (provider, event_id) do nothing
  returning id into v_webhook_id;
  if v_webhook_id is null then
    update public.webhook_events w set attempts = w.attempts + 1
    where w.provider = v_provider and w.event_id = v_event_id
    returning w.id into v_webhook_id;
    v_order := billing.match_order(p_event);
    return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'result', 'duplicate', 'webhook_event_id', v_webhook_id, 'reason', 'event already received',
      'order_id', v_order.id, 'order_status', v_order.status));
  end if;

  -- 2. What kind of event it is.
  v_action := case
    when v_provider = 'payu' then
      case v_type when 'payment.success' then 'captured' when 'payment.failure' then 'failed'
                  when 'payment.pending' then 'pending' end
    when v_type in ('payment.captured', 'order.paid', 'subscription.charged') then 'captured'
    when v_type = 'invoice.paid' and v_payment_id is not null then 'captured'
    when v_type = 'payment.authorized' then 'authorized'
    when v_type = 'payment.failed' then 'failed'
    when v_type = 'refund.processed' then 'refund'
    when billing.provider_status_of_event(v_type) is not null then 'subscription'
  end;

  if v_action is null then
    return pg_catalog.jsonb_build_object('result', 'ignored', 'webhook_event_id', v_webhook_id,
                                         'reason', pg_catalog.format('event type %s is not handled', v_type));
  end if;

  -- 3. Refunds are matched through the payment they refund.
  if v_action = 'refund' then
    if v_payment_id is not null then
      select * into v_cap from public.payment_events pe
      where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'captured'
      order by pe.created_at
      limit 1;
    end if;
    if v_cap.id is null then
      v_error := pg_catalog.format('unknown payment %s for refund %s', coalesce(v_payment_id, '(none)'),
                                   coalesce(p_event ->> 'provider_refund_id', '(none)'));
      v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);
    else
      select * into v_order from public.orders o where o.id = v_cap.order_id for update;
      v_refund_id := coalesce(p_event ->> 'provider_refund_id', v_event_id);
      select coalesce(sum(pe.amount_cents), 0) into v_refunded from public.payment_events pe
      where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'refunded';
      if exists (select 1 from public.payment_events pe
                 where pe.provider = v_provider and pe.status = 'refunded' and pe.details ->> 'refund_id' = v_refund_id) then
        v_result := pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                                  'order_id', v_order.id, 'order_status', v_order.status);
      elsif v_amount is null or v_amount = 0 or v_currency is distinct from v_cap.currency
         or v_refunded + v_amount > v_cap.amount_cents then
        v_error := case
          when v_amount is null or v_amount = 0 or v_currency is distinct from v_cap.currency then
            pg_catalog.format('refund %s: amount %s %s does not fit payment %s (%s %s)', v_refund_id,
                              coalesce(v_amount::text, 'null'), coalesce(v_currency, 'null'),
                              v_payment_id, v_cap.amount_cents, v_cap.currency)
          else pg_catalog.format('refund %s: refunds of payment %s would reach %s, above the %s captured', v_refund_id,
                                 v_payment_id, v_refunded + v_amount, v_cap.amount_cents) end;
        -- Recorded for the operator, never credited: no refund row (it would count against the
        -- captured amount), no credit note.
        insert into public.payment_events
          (organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status, error_reason,
           details, occurred_at)
        values
          (v_cap.organization_id, v_cap.order_id, v_provider, v_payment_id, coalesce(v_amount, 0),
           coalesce(v_currency, v_cap.currency), 'mismatch', v_error,
           pg_catalog.jsonb_build_object('refund_id', v_refund_id, 'event_id', v_event_id, 'event_type', v_type,
                                         'captured_payment_event_id', v_cap.id, 'refunded_before', v_refunded),
           v_event_at)
        on conflict (provider, provider_payment_id, status) where status <> 'refunded' do nothing
        returning id into v_payment_event_id;
        v_result := pg_catalog.jsonb_build_object('result', 'mismatch', 'reason', v_error, 'order_id', v_order.id,
                                                  'order_status', v_order.status, 'payment_event_id', v_payment_event_id);
      else
        insert into public.payment_events
          (organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status, details, occurred_at)
        values
          (v_cap.organization_id, v_cap.order_id, v_provider, v_payment_id, v_amount, v_currency, 'refunded',
           pg_catalog.jsonb_build_object('refund_id', v_refund_id, 'event_id', v_event_id,
                                         'captured_payment_event_id', v_cap.id),
           v_event_at)
        on conflict (provider, (details ->> 'refund_id')) where status = 'refunded' do nothing
        returning id into v_payment_event_id;
        if v_payment_event_id is null then
          v_result := pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded');
        else
          select d.invoice_id, d.credit_note_id, coalesce(v_error || '; ' || d.error, v_error, d.error)
          into v_invoice_id, v_credit_note_id, v_error
          from billing.issue_documents(v_cap.order_id, v_cap.id, v_amount,
                 pg_catalog.format('%s refund %s', v_provider, v_refund_id), v_payment_event_id) d;
          v_result := pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id,
                                                    'invoice_id', v_invoice_id, 'credit_note_id', v_credit_note_id);
        end if;
        v_result := v_result || pg_catalog.jsonb_build_object('order_id', v_order.id, 'order_status', v_order.status);
      end if;
    end if;
    update public.webhook_events w set last_error = v_error where w.id = v_webhook_id and v_error is not null;
    return pg_catalog.jsonb_strip_nulls(v_result || pg_catalog.jsonb_build_object('webhook_event_id', v_webhook_id));
  end if;

  -- 4. Everything else is about one of our orders: match it and lock it (then its organization,
  --    so two orders of one organization cannot both start a subscription).
  v_order := billing.match_order(p_event);
  if v_order.id is null then
    v_error := pg_catalog.format('no order matches %s event %s (order_ref %s, provider order %s, subscription %s)',
                                 v_provider, v_event_id, coalesce(p_event ->> 'order_ref', '-'),
                                 coalesce(p_event ->> 'provider_order_id', '-'), coalesce(v_psid, '-'));
    update public.webhook_events w set last_error = v_error where w.id = v_webhook_id and v_error is not null;
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'webhook_event_id', v_webhook_id, 'reason', v_error);
  end if;
  select * into v_order from public.orders o where o.id = v_order.id for update;
  perform 1 from public.organizations g where g.id = v_order.organization_id for no key update;
  v_psid := coalesce(v_psid, v_order.provider_subscription_id);

  if v_action in ('captured', 'failed', 'authorized') and v_payment_id is null then
    v_error := pg_catalog.format('%s event %s names no payment', v_provider, v_event_id);
    v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);

  elsif v_action = 'captured' then
    if v_amount is distinct from v_order.amount_cents or v_currency is distinct from v_order.currency then
      v_error := pg_catalog.format('amount mismatch for order %s: expected %s %s, got %s %s', v_order.receipt,
                                   v_order.amount_cents, v_order.currency, coalesce(v_amount::text, 'null'),
                                   coalesce(v_currency, 'null'));
      insert into public.payment_events
        (organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status, method,
         error_reason, details, occurred_at)
      values
        (v_order.organization_id, v_order.id, v_provider, v_payment_id, coalesce(v_amount, 0),
         coalesce(v_currency, v_order.currency), 'mismatch', p_event ->> 'method', v_error,
         pg_catalog.jsonb_build_object('event_id', v_event_id, 'event_type', v_type,
                                       'expected_amount', v_order.amount_cents, 'expected_currency', v_order.currency,
                                       'amount', v_amount, 'currency', v_currency),
         v_event_at)
      on conflict (provider, provider_payment_id, status) where status <> 'refunded' do nothing
      returning id into v_payment_event_id;
      v_result := pg_catalog.jsonb_build_object('result', 'mismatch', 'reason', v_error,
                                                'payment_event_id', v_payment_event_id);
    else
      if v_type = 'subscription.charged' and v_psid is not null then
        v_provider_status := 'active';
      end if;
      v_result := billing.apply_captured_payment(v_order, p_event || pg_catalog.jsonb_build_object(
                    'provider_subscription_id', v_psid), v_event_at);
      v_error := coalesce(v_result ->> 'invoice_error', case when v_result ->> 'result' = 'recorded' then v_result ->> 'reason' end);
    end if;

  elsif v_action = 'failed' then
    insert into public.payment_events
      (organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status, method,
       error_reason, details, occurred_at)
    values
      (v_order.organization_id, v_order.id, v_provider, v_payment_id, coalesce(v_amount, v_order.amount_cents),
       coalesce(v_currency, v_order.currency), 'failed', p_event ->> 'method',
       coalesce(p_event #>> '{payload,payload,payment,entity,error_description}', p_event #>> '{payload,error_Message}',
                p_event ->> 'status'),
       pg_catalog.jsonb_build_object('event_id', v_event_id, 'event_type', v_type),
       v_event_at)
    on conflict (provider, provider_payment_id, status) where status <> 'refunded' do nothing
    returning id into v_payment_event_id;
    if v_payment_event_id is null then
      v_result := pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'failure already recorded');
    else
      -- A paid order stays paid: a failure never undoes a capture, whatever the arrival order.
      update public.orders o set status = 'failed'
      where o.id = v_order.id and o.status in ('created', 'pending');
      v_result := pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id);
    end if;

  elsif v_action = 'authorized' then
    insert into public.payment_events
      (organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status, method, details, occurred_at)
    values
      (v_order.organization_id, v_order.id, v_provider, v_payment_id, coalesce(v_amount, 0),
       coalesce(v_currency, v_order.currency), 'authorized', p_event ->> 'method',
       pg_catalog.jsonb_build_object('event_id', v_event_id, 'event_type', v_type), v_event_at)
    on conflict (provider, provider_payment_id, status) where status <> 'refunded' do nothing
    returning id into v_payment_event_id;
    update public.orders o set status = 'pending' where o.id = v_order.id and o.status = 'created';
    v_result := pg_catalog.jsonb_build_object('result', case when v_payment_event_id is null then 'duplicate' else 'recorded' end,
                                              'payment_event_id', v_payment_event_id);

  elsif v_action = 'pending' then
    update public.orders o set status = 'pending' where o.id = v_order.id and o.status = 'created';
    v_result := pg_catalog.jsonb_build_object('result', 'recorded', 'reason', 'payment pending at the provider');

  else
    -- A Razorpay subscription event.
    if v_psid is null then
      v_error := pg_catalog.format('%s event %s names no subscription', v_provider, v_event_id);
      v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);
    else
      v_provider_status := billing.provider_status_of_event(v_type);
      v_result := pg_catalog.jsonb_build_object('result', 'applied');
    end if;
  end if;

  -- 5. A provider subscription's status follows its newest event (by the provider's event time).
  --    Our row follows the stored state only when this event changed it, or created or extended
  --    the row: an older event (whatever arrives late) never re-applies a state, so it cannot
  --    undo what happened here since (a cancellation by the user).
  if v_provider_status is not null and v_psid is not null
     and v_result ->> 'result' in ('applied', 'duplicate') then
    insert into billing.provider_subscription_states as st (provider, provider_subscription_id, status, status_at, event_id)
    values (v_provider, v_psid, v_provider_status, v_event_at, v_event_id)
    on conflict (provider, provider_subscription_id) do update
      set status = excluded.status, status_at = excluded.status_at, event_id = excluded.event_id
      where st.status_at <= excluded.status_at
    returning true into v_state_changed;
  end if;
  if v_psid is not null and (coalesce(v_state_changed, false)
                             or (v_action = 'captured' and v_result ->> 'result' = 'applied')) then
    select * into v_sub from public.subscriptions s where s.provider = v_provider and s.provider_subscription_id = v_psid;
    select st.status, st.status_at into v_provider_status, v_state_at from billing.provider_subscription_states st
    where st.provider = v_provider and st.provider_subscription_id = v_psid;
    if v_sub.id is not null and v_provider_status is not null then
      if not billing.sync_provider_status(v_sub.id, v_provider_status, v_state_at, p_event) then
        v_error := pg_catalog.format('subscription %s not moved to %s: the organization has another live subscription',
                                     v_psid, v_provider_status);
      end if;
    end if;
  end if;

  -- 6. Done: note what went wrong, if anything, on the delivery and answer with where things stand.
  update public.webhook_events w set last_error = v_error where w.id = v_webhook_id and v_error is not null;
  select * into v_order from public.orders o where o.id = coalesce((v_result ->> 'order_id')::uuid, v_order.id);
  if v_sub.id is null then
    select * into v_sub from public.subscriptions s
    where s.id = coalesce((v_result ->> 'subscription_id')::uuid, v_order.subscription_id);
  else
    select * into v_sub from public.subscriptions s where s.id = v_sub.id;
  end if;
  return pg_catalog.jsonb_strip_nulls(v_result || pg_catalog.jsonb_build_object(
    'webhook_event_id', v_webhook_id,
    'order_id', v_order.id,
    'order_status', v_order.status,
    'subscription_id', v_sub.id,
    'subscription_status', v_sub.status,
    'current_period_end', v_sub.current_period_end,
    'reason', coalesce(v_result ->> 'reason', v_error)));
end;
$$;
revoke execute on function public.apply_payment_event(jsonb) from public, anon, authenticated;
grant execute on function public.apply_payment_event(jsonb) to service_role;

/**
 * Starts a checkout: the signed-in owner or admin of the organization buys an active paid plan
 * through a provider. Creates the order and returns what the checkout function needs; its
 * amount_cents is the total payable, GST included (quoted by the invoices migration's trigger on
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
create function public.create_checkout_order(p_organization_id uuid, p_plan_code text, p_provider text)
returns table (
  order_id uuid,
  receipt text,
  status text,
  amount_cents bigint,
  currency text,
  plan_code text,
  plan_name text,
  plan_interval public.billing_interval,
  razorpay_plan_id text,
  razorpay_total_count integer,
  buyer_email text,
  buyer_name text,
  expires_at timestamptz
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_org public.organizations;
  v_user auth.users;
  v_order public.orders;
  v_rzp_plan text;
  v_live public.subscriptions;
  v_live_plan public.billing_plans;
  v_open public.orders;
begin
  if p_provider is null or p_provider not in ('payu', 'razorpay') then
    raise exception 'provider must be "payu" or "razorpay"' using errcode = 'invalid_parameter_value';
  end if;
  if p_organization_id is null or not exists (
    select 1 from public.organization_members m
    where m.organization_id = p_organization_id and m.user_id = v_user_id and m.role in ('owner', 'admin')
  ) then
    raise exception 'only owners and admins of the organization can buy a plan'
      using errcode = 'insufficient_privilege';
  end if;
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
  select * into v_org from public.organizations g where g.id = p_organization_id for no key update;
  select * into v_user from auth.users u where u.id = v_user_id;
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
    (p_organization_id, v_plan.id, p_provider, 'new', v_plan.price_cents, v_plan.currency,
     case when p_provider = 'payu' then 'pending' else 'created' end, v_user_id, v_now + interval '1 day',
     pg_catalog.jsonb_build_object('plan_code', v_plan.code, 'recurring', v_rzp_plan is not null))
  returning * into v_order;

  return query select
    v_order.id, v_order.receipt, v_order.status, v_order.amount_cents, v_order.currency,
    v_plan.code, v_plan.name, v_plan.interval, v_rzp_plan,
    case when v_rzp_plan is null then null
         else coalesce((v_plan.provider_config #>> '{razorpay,total_count}')::integer,
                       case v_plan.interval when 'year' then 10 else 120 end) end,
    coalesce(v_org.billing_email, v_user.email::text),
    left(coalesce(nullif(btrim(v_user.raw_user_meta_data ->> 'full_name'), ''), v_org.billing_name, v_org.name), 60),
    v_order.expires_at;
end;
$$;
revoke execute on function public.create_checkout_order(uuid, text, text) from public, anon;
grant execute on function public.create_checkout_order(uuid, text, text) to authenticated;

/**
 * Attaches the provider's order (Razorpay `order_...`) or subscription (`sub_...`) to a 'created'
 * checkout order and makes it payable ('pending'). service_role only (the checkout function).
 */
create function public.attach_provider_checkout(
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
revoke execute on function public.attach_provider_checkout(uuid, text, text) from public, anon, authenticated;
grant execute on function public.attach_provider_checkout(uuid, text, text) to service_role;

/**
 * Cancels a checkout order that never reached the buyer (the provider call failed), with the
 * reason in metadata. Only an order that is still open and has no payment recorded; a paid order
 * is never touched. service_role only.
 */
create function public.cancel_checkout_order(p_order_id uuid, p_reason text)
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
revoke execute on function public.cancel_checkout_order(uuid, text) from public, anon, authenticated;
grant execute on function public.cancel_checkout_order(uuid, text) to service_role;

/**
 * Reconciliation, step one (service_role only; the reconcile function asks the providers about
 * what this returns): expires checkout orders past their expires_at that are still open (a
 * payment that arrives later is still applied: it pays an expired order), then returns up to
 * p_limit open orders pending longer than billing_settings.order_pending_reconcile_after, oldest
 * first. Orders with a Razorpay subscription are left to its webhooks.
 */
create function public.reconcile_due_orders(p_limit integer default 50)
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
    select o.id, o.provider, o.receipt, o.provider_order_id, o.amount_cents, o.currency, o.created_at
    from public.orders o
    where o.status = 'pending'
      and o.created_at <= v_now - v_after
      and o.provider_subscription_id is null
      and (o.provider = 'payu' or o.provider_order_id is not null)
    order by o.created_at
    limit p_limit;
end;
$$;
revoke execute on function public.reconcile_due_orders(integer) from public, anon, authenticated;
grant execute on function public.reconcile_due_orders(integer) to service_role;


-- =================================================================================================
-- 5. The reconciliation job
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
