-- =================================================================================================
-- supabill: payments (PayU and Razorpay): provider events applied exactly once, checkout, reconciliation
--
-- One SQL entry point, billing.apply_payment_event(p_event jsonb), receives every provider event
-- (webhooks, PayU's browser return, Razorpay Checkout verification, reconciliation) as the
-- provider-neutral event the Edge Functions' adapters build (supabase/functions/_shared/providers/),
-- and in one transaction records it in billing.webhook_events (once per provider + event_id),
-- matches it to our order, checks amount and currency, records payment_events (once per provider
-- payment + status), moves the order and the subscription (subscription_history is written by the
-- history trigger of 02_plans, from the change context set here) and issues the invoice
-- (billing.issue_documents, 06_invoices). It dispatches on the event's
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
--
-- Also here:
--   * payments that buy nothing: a payment for an order that was superseded, canceled or expired
--     when it was paid, or an upgrade whose quote no longer matches the subscription
--     (billing.order_quote_problem), a second payment of a paid order, a payment after the
--     subscription ended, a mandate debit backing no live subscription: recorded with
--     payment_events.needs_refund and never applied (refunded through 08_provider_actions);
--   * a full refund or a lost dispute takes back what the payment bought (billing.end_paid_period,
--     billing.period_end_without) when billing_settings.full_refund_ends_period; a partial
--     refund keeps it;
--   * disputes (billing.apply_dispute): recorded in payment_events (dispute_opened, dispute_won,
--     dispute_lost) and, when billing_settings.dispute_suspends_subscription, past_due while
--     open, active again when won, ended when lost;
--   * webhook deliveries refused for their signature, counted per provider and hour
--     (billing.signature_failures, billing.record_signature_failure);
--   * reconciliation: billing.reconcile_due_orders, reconcile_due_subscriptions and
--     reconcile_due_refunds hand the reconcile function what to ask the providers about
--     (billing.order_checks and billing.refund_checks remember what was asked).
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
  'subscription_status', 'other', 'dispute_opened', 'dispute_won', 'dispute_lost', 'refund_failed');

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- billing.webhook_events (private)
-- -------------------------------------------------------------------------------------------------

/**
 * The exactly-once guard of provider webhooks: one row per (provider, event_id) ever received,
 * with the id and time of its delivery row in billing.webhook_events. billing.apply_payment_event
 * inserts here first; a repeated event (also a concurrent one, which waits on this key for the
 * first to commit) conflicts and is a duplicate. It holds keys only, kept forever (one small
 * row per event), so a re-delivery is a duplicate even after its delivery's month was dropped
 * (webhook_event_retention_days) and whichever month it comes back in: the deliveries are in
 * monthly partitions, where a unique key can only hold within one month.
 * Private (schema billing): service_role only.
 */
create table billing.webhook_event_keys (
  provider public.payment_provider not null,
  event_id text not null check (length(event_id) between 1 and 300),
  webhook_event_id uuid not null,
  received_at timestamptz not null,
  constraint webhook_event_keys_pkey primary key (provider, event_id)
);

revoke all on billing.webhook_event_keys from public;

grant select, insert, update, delete on billing.webhook_event_keys to service_role;

comment on table billing.webhook_event_keys is
  'The webhook exactly-once guard: every (provider, event_id) received, kept forever, with its delivery row (billing.webhook_events id and received_at).';

/**
 * Every provider webhook delivery, once per (provider, event_id) (billing.webhook_event_keys is
 * the guard). Each is applied in the transaction that records it (public.apply_payment_event), so
 * processed_at is set from the start; last_error says what was not applied, and why.
 * Monthly partitions by received_at (00_foundation.sql); a month is dropped once it ended
 * billing_settings.webhook_event_retention_days ago (null, the default: kept forever).
 * Private (schema billing): service_role only.
 */
create table billing.webhook_events (
  id uuid not null default gen_random_uuid(),
  provider public.payment_provider not null,
  event_id text not null check (length(event_id) between 1 and 300),
  event_type text not null,
  payload jsonb not null,
  received_at timestamptz not null default billing.now(),
  processed_at timestamptz,
  attempts integer not null default 0 check (attempts >= 0),
  last_error text,
  created_at timestamptz not null default now(),
  payload_purged_at timestamptz,
  /** Why a delivery was recorded and not acted on (an event of a kind billing does not handle), else null. */
  ignored_reason text,
  constraint webhook_events_pkey primary key (id, received_at)
) partition by range (received_at);

create table billing_partitions.webhook_events_default partition of billing.webhook_events default;

select billing.secure_partition('billing_partitions', 'webhook_events_default', 'webhook_events');

insert into billing.partitioned_tables (table_name, partition_column, retention_setting, months_ahead)
values ('billing.webhook_events', 'received_at', 'webhook_event_retention_days', 3);

select billing.maintain_partitions();

/** A delivery by its event (a duplicate's attempts; operators' look-ups). */
create index webhook_events_provider_event_idx on billing.webhook_events (provider, event_id);

revoke all on billing.webhook_events from public;

grant select, insert, update, delete on billing.webhook_events to service_role;

comment on column billing.webhook_events.payload_purged_at is
  'When billing-purge replaced the provider payload with {} (null: the payload is as received).';

/** The payloads billing-purge has still to strip, oldest first. */
create index webhook_events_payload_unpurged_idx on billing.webhook_events (received_at)
  where payload_purged_at is null;

comment on column billing.webhook_events.ignored_reason is
  'Set when the event was recorded and acknowledged but not acted on (its kind is other): why.';

/** The ignored deliveries, for operators. */
create index webhook_events_ignored_idx on billing.webhook_events (received_at) where ignored_reason is not null;

-- -------------------------------------------------------------------------------------------------
-- billing.provider_subscription_states (private)
-- -------------------------------------------------------------------------------------------------

/**
 * The provider's latest word on each of its subscriptions (Razorpay `sub_...`, Stripe `sub_...`):
 * the status of the newest event applied and that event's time, and whether the provider will end
 * it at its period end (cancel_at_period_end; null when the provider's events never say). Kept
 * even before our subscription row exists, so events applied in any order end in the same state.
 * Private (schema billing), service_role only.
 */
create table billing.provider_subscription_states (
  provider public.payment_provider not null,
  provider_subscription_id text not null check (length(provider_subscription_id) between 1 and 100),
  status text not null check (status ~ '^[a-z_]{1,32}$'),
  status_at timestamptz not null,
  event_id text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  cancel_at_period_end boolean,
  primary key (provider, provider_subscription_id)
);

revoke all on billing.provider_subscription_states from public;

grant select, insert, update on billing.provider_subscription_states to service_role;

create trigger provider_subscription_states_touch_updated_at
  before update on billing.provider_subscription_states
  for each row execute function billing.touch_updated_at();

/**
 * An organization's customer at a provider that keeps customers (Stripe `cus_...`): made on the
 * organization's first checkout with that provider (with its billing name, email and address) and
 * recorded by billing.attach_provider_checkout; every later checkout reuses it. One per
 * organization and provider, and a provider's customer belongs to one organization. Private
 * (schema billing): service_role only.
 */
create table billing.provider_customers (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  provider public.payment_provider not null,
  provider_customer_id text not null check (provider_customer_id ~ '^[A-Za-z0-9_]{1,255}$'),
  created_at timestamptz not null default now(),
  primary key (organization_id, provider),
  unique (provider, provider_customer_id)
);

revoke all on billing.provider_customers from public;

grant select, insert on billing.provider_customers to service_role;

/**
 * Settings a provider adapter made once and keeps (Stripe: the billing portal configuration it
 * created, when STRIPE_PORTAL_CONFIGURATION is not set), by provider and name. The first value
 * stored stays (billing.keep_provider_setting). Private (schema billing): service_role only.
 */
create table billing.provider_settings (
  provider public.payment_provider not null,
  name text not null check (name ~ '^[a-z][a-z0-9_]{0,63}$'),
  value text not null check (length(value) between 1 and 1000),
  created_at timestamptz not null default now(),
  primary key (provider, name)
);

revoke all on billing.provider_settings from public;

grant select, insert on billing.provider_settings to service_role;

/**
 * Webhook deliveries refused because their signature was missing or did not match, counted per
 * provider and hour (UTC). Nothing of the request is kept: a flood of forged deliveries costs one
 * counter row per provider and hour. Private (schema billing): service_role reads it.
 */
create table billing.signature_failures (
  provider public.payment_provider not null,
  hour timestamptz not null,
  count bigint not null default 0 check (count >= 0),
  last_at timestamptz not null default now(),
  primary key (provider, hour)
);

revoke all on billing.signature_failures from public;

grant select on billing.signature_failures to service_role;

/**
 * When reconciliation last asked a captured payment's provider for its refunds (one row per
 * captured payment_events row, written by billing.reconcile_due_refunds as it hands the payment
 * out). Private: service_role only.
 */
create table billing.refund_checks (
  -- No foreign key (like provider_actions.payment_event_id): payment_events stays truncate-proof by
  -- its own trigger, and a foreign key would answer a TRUNCATE first.
  payment_event_id uuid primary key,
  checked_at timestamptz not null,
  created_at timestamptz not null default now()
);

/** The payments asked longest ago come first. */
create index refund_checks_checked_at_idx on billing.refund_checks (checked_at);

revoke all on billing.refund_checks from public;

grant select, insert, update, delete on billing.refund_checks to service_role;

/**
 * When reconciliation last asked the provider about an order closed without a payment (expired or
 * canceled), written by billing.reconcile_due_orders as it hands the order out. Private:
 * service_role only.
 */
create table billing.order_checks (
  order_id uuid primary key references public.orders (id) on delete cascade,
  checked_at timestamptz not null,
  created_at timestamptz not null default now()
);

revoke all on billing.order_checks from public;

grant select, insert, update, delete on billing.order_checks to service_role;

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
 * integer; currency null or three capital letters; exchange_rate (the provider's rupees per unit
 * of a foreign currency, optional) null or a positive number; occurred_at and period_end null or
 * timestamps; the id fields null or strings; cancel_at_period_end null or a boolean; payload null
 * or an object.
 */
/**
 * The provider a checkout is paid through, from the name a caller gave: any value of
 * public.payment_provider but 'manual' (nobody pays through it), so a new provider is one enum
 * value here too. Raises 22023 naming the accepted values for null, an unknown name and 'manual'.
 */
create function billing.checkout_provider(p_provider text)
returns public.payment_provider
language plpgsql
stable
set search_path = ''
as $$
declare
  v_providers text[] := array(select p::text from pg_catalog.unnest(enum_range(null::public.payment_provider)) p
                              where p <> 'manual');
begin
  if p_provider is null or p_provider <> all (v_providers) then
    raise exception 'provider must be one of %, got %',
      pg_catalog.regexp_replace(pg_catalog.array_to_string(
        array(select pg_catalog.format('"%s"', p) from pg_catalog.unnest(v_providers) p), ', '), ', ([^,]*)$', ' or \1'),
      case when p_provider is null then 'null' else pg_catalog.format('"%s"', p_provider) end
      using errcode = 'invalid_parameter_value';
  end if;
  return p_provider::public.payment_provider;
end;
$$;
revoke execute on function billing.checkout_provider(text) from public;
grant execute on function billing.checkout_provider(text) to service_role;

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
                                 'occurred_at', 'period_end'] loop
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
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'exchange_rate'), 'null') <> 'null'
     and (case when pg_catalog.jsonb_typeof(p_event -> 'exchange_rate') = 'number'
               then (p_event ->> 'exchange_rate')::numeric not between 0.000001 and 999999999999
               else true end) then
    raise exception 'payment event: exchange_rate must be a positive number of rupees per unit of the currency, got %', p_event -> 'exchange_rate'
      using errcode = 'invalid_parameter_value';
  end if;
  foreach v_field in array array['occurred_at', 'period_end'] loop
    if p_event ->> v_field is not null then
      begin
        perform (p_event ->> v_field)::timestamptz;
      exception
        when data_exception then
          raise exception 'payment event: % must be an ISO 8601 timestamp, got "%"', v_field, p_event ->> v_field
            using errcode = 'invalid_parameter_value';
      end;
    end if;
  end loop;
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'cancel_at_period_end'), 'null') not in ('null', 'boolean') then
    raise exception 'payment event: cancel_at_period_end must be true, false or null, got %', p_event -> 'cancel_at_period_end'
      using errcode = 'invalid_parameter_value';
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
  if v_target in ('trialing', 'active') and v_sub.status = 'past_due' and v_sub.cancel_at_period_end
     and v_sub.current_period_end <= v_now then
    -- Cancelled at a period end that has passed: it is over (the jobs record its end at that
    -- period end); the provider's status does not make it active again after it.
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

  perform billing.set_change_context(
    case p_provider_status when 'completed' then 'completed' when 'paused' then 'paused'
      else case v_target when 'active' then 'reactivated' when 'past_due' then 'past_due'
                         when 'canceled' then 'canceled' else 'expired' end end,
    'provider',
    p_reason => pg_catalog.format('%s %s', p_event ->> 'provider', p_event ->> 'event_type'),
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'provider_status', p_provider_status,
                                                'provider_subscription_id', v_sub.provider_subscription_id),
    p_effective_at => v_now);
  -- Active again after its past due (a dispute, a failed debit) is not a resumption: a cancel
  -- scheduled at the period end stands; only an ended subscription made active again drops it.
  update public.subscriptions s
  set status = v_target,
      cancel_at_period_end = case when p_provider_status = 'completed' then true
                                  when v_target = 'active' and s.status in ('canceled', 'expired') then false
                                  else s.cancel_at_period_end end,
      canceled_at = case when v_target = 'canceled' then coalesce(s.canceled_at, v_now)
                         when v_target = 'active' and s.status in ('canceled', 'expired') then null
                         else s.canceled_at end,
      ended_at = case when v_target in ('canceled', 'expired') then coalesce(s.ended_at, v_now)
                      when v_target in ('active', 'past_due') then null else s.ended_at end
  where s.id = v_sub.id;
  return true;
end;
$$;
revoke execute on function billing.sync_provider_status(uuid, text, timestamptz, jsonb) from public;
grant execute on function billing.sync_provider_status(uuid, text, timestamptz, jsonb) to service_role;

/**
 * The order a provider event is about, without locking it: an upgrade order named by our
 * reference on an event of its subscription (charged by the provider on the subscription), else by
 * the provider's order id (set by our server when it created the Razorpay order), else by the provider subscription id (the first
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
  -- An upgrade order the provider charged on the subscription itself (Stripe: an invoice carrying
  -- our receipt in its metadata): the order named, not the subscription's first order, as long as
  -- it upgrades the subscription that provider subscription backs (money charged to one
  -- organization's subscription never pays another's order).
  if v_ref is not null and v_subscription_id is not null then
    select o.* into v_order from public.orders o
    join public.subscriptions s on s.id = o.subscription_id
    where o.provider = v_provider and o.receipt = v_ref and o.kind = 'upgrade'
      and s.provider = v_provider and s.provider_subscription_id = v_subscription_id;
    if found then
      return v_order;
    end if;
  end if;
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
 * Periods are added on the organization's calendar from the run's anchor
 * (subscriptions.period_anchor), so the day of the month never drifts; an event's period_end (the
 * provider's own period, Stripe's invoice line) replaces the computed end when within two days of it. The history row is the
 * trigger's, from the change context set here (actor 'provider').
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
  v_anchor timestamptz;
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
    v_anchor := v_start;
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
    -- Extending from the period end continues the run of periods (its anchor); anything else
    -- starts a new run at v_start.
    v_anchor := case when v_start = v_old.current_period_end then coalesce(v_old.period_anchor, v_start) else v_start end;
  end if;
  v_end := billing.period_end_after(v_start, v_interval, v_timezone, v_anchor);
  -- A provider that bills the period itself (Stripe: the invoice line's period) names its end in
  -- the event: that end is the period, while it is within two days of the one computed here (a
  -- calendar in another time zone); further off, the event is not about this period (a renewal
  -- applied before the one before it) and ours stands.
  if p_event ->> 'period_end' is not null
     and (p_event ->> 'period_end')::timestamptz between v_end - interval '2 days' and v_end + interval '2 days' then
    -- A run that starts here follows the provider's calendar from its first period: the anchor
    -- moves with the end. Kept at our now (with its fraction of a second) while the provider's
    -- periods end on whole seconds, the next period's end would fall a fraction of a second
    -- after its start, and no renewal would ever move the period.
    if v_anchor = v_start then
      v_anchor := v_anchor + ((p_event ->> 'period_end')::timestamptz - v_end);
    end if;
    v_end := (p_event ->> 'period_end')::timestamptz;
  end if;

  perform billing.set_change_context(v_action, 'provider',
    p_reason => pg_catalog.format('%s payment %s captured (%s)', p_order.provider, p_event ->> 'provider_payment_id',
                                  p_event ->> 'event_type'),
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'order_id', p_order.id,
                                                'payment_event_id', p_payment_event_id,
                                                'provider_payment_id', p_event ->> 'provider_payment_id',
                                                'period_start', v_start, 'period_end', v_end),
    p_effective_at => v_now);
  if v_old.id is null then
    insert into public.subscriptions
      (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id,
       period_anchor)
    values
      (p_order.organization_id, p_order.plan_id, 'active', v_start, v_end, p_order.provider, v_psid, v_anchor)
    returning * into v_sub;
  else
    update public.subscriptions s
    set plan_id = p_order.plan_id,
        status = case when s.status in ('pending_payment', 'trialing', 'active', 'past_due') then 'active' else s.status end,
        current_period_start = case when v_action = 'plan_changed' or s.current_period_end is null
                                         or s.current_period_end <= v_now
                                    then v_start else s.current_period_start end,
        current_period_end = v_end,
        period_anchor = v_anchor,
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
  return v_sub;
end;
$$;
revoke execute on function billing.extend_subscription_for_payment(public.orders, text, jsonb, uuid) from public;
grant execute on function billing.extend_subscription_for_payment(public.orders, text, jsonb, uuid) to service_role;

/**
 * What a later debit of the provider subscription that order p_order started is for (p_order: the
 * paid first order of the subscription): p_order's amount while its discount runs (no discount, a
 * forever one, or a repeating one with fewer paid orders carrying it than its periods), else its
 * list price (an order of a provider subscription is priced gross: its list is what a period
 * costs without the discount). Once a plan change was carried out at the provider (the latest
 * succeeded change_plan action of that provider subscription since p_order: an upgrade or a
 * downgrade that switched the provider's price, Stripe's), a debit is for that plan at the price
 * the action set, without p_order's discount. A debit for another amount is a mismatch. Answers
 * the amount, whether the debit carries p_order's discount, and the plan it pays for.
 */
create function billing.mandate_debit_amount(
  p_order public.orders,
  out amount_cents bigint,
  out discounted boolean,
  out plan_id uuid
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_terms jsonb;
  v_change jsonb;
begin
  discounted := false;
  amount_cents := p_order.amount_cents;
  plan_id := p_order.plan_id;
  select a.payload into v_change
  from billing.provider_actions a
  where a.kind = 'change_plan' and a.state = 'succeeded' and a.provider = p_order.provider
    and a.target ->> 'provider_subscription_id' = p_order.provider_subscription_id
    and a.created_at >= p_order.created_at and a.payload ? 'price_amount'
  order by a.created_at desc, a.seq desc
  limit 1;
  if v_change is not null then
    amount_cents := (v_change ->> 'price_amount')::bigint;
    select p.id into plan_id from public.billing_plans p where p.code = v_change ->> 'plan_code';
    plan_id := coalesce(plan_id, p_order.plan_id);
    return;
  end if;
  if p_order.discount_redemption_id is null or p_order.discount_cents = 0 then
    return;
  end if;
  select r.terms into v_terms from public.discount_redemptions r where r.id = p_order.discount_redemption_id;
  discounted := v_terms ->> 'duration' = 'forever'
    or (v_terms ->> 'duration' = 'repeating'
        and (select count(*) from public.orders o
             where o.discount_redemption_id = p_order.discount_redemption_id and o.status = 'paid')
            < (v_terms ->> 'periods')::integer);
  if not discounted then
    amount_cents := coalesce(p_order.list_cents, p_order.amount_cents + p_order.discount_cents);
  end if;
end;
$$;
revoke execute on function billing.mandate_debit_amount(public.orders) from public;
grant execute on function billing.mandate_debit_amount(public.orders) to service_role;

/**
 * Applies a captured payment to an order (locked by the caller): records payment_events
 * 'captured' once, marks the order paid, starts or extends the subscription
 * (billing.extend_subscription_for_payment) and issues the invoice.
 * A later charge of a provider subscription whose first order is paid (a mandate debit) is a
 * renewal, whenever it comes: it gets a renewal order of its own (so its own invoice) and extends
 * the subscription that provider subscription backs from its period end; no quote or expiry
 * check applies to it. It buys nothing when no subscription here is backed by that provider
 * subscription any more (an operator's grant or a plan change replaced it), or the subscription
 * was cancelled or expired here, or cancelled here at its period end, whenever the debit was
 * made (a debit made before a cancel and delivered after it, or made for a period the customer
 * chose not to have, is refunded: a debit only ever buys the next period, never a cancelled one;
 * when Razorpay itself ended its subscription, a debit made before that still counts), or the
 * subscription is on another plan than the mandate's (refunded and marked needs_review in its
 * details: a debit never changes the plan). The first charge of a provider subscription drops a
 * plan change scheduled on the subscription it attaches to (history 'pending_plan_cleared').
 * Any other payment buys nothing when its order's quote no longer held when it was paid
 * (billing.order_quote_problem), its subscription ended before it, or its one-time order was
 * already paid. A payment that buys nothing is only recorded, with needs_refund (result
 * 'recorded': nothing extended, no history, no invoice). A provider subscription (Razorpay's,
 * Stripe's) whose charge bought nothing and that backs no live subscription here is cancelled at
 * the provider now (billing.stop_unbacked_mandate). A credit pack order changes no subscription: its payment
 * marks the order paid, grants the pack's credits (billing.grant_pack_credits, once per payment)
 * and issues the invoice, in this transaction. Returns the result object.
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
  v_renewal boolean;
  v_ended boolean;
  v_problem text;
  v_review boolean := false;
  v_ended_by_provider boolean;
  v_documents record;
  v_grant record;
  v_debit record;
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
  -- A later charge of a provider subscription whose first order is paid: a mandate debit.
  v_renewal := v_order.status = 'paid' and v_psid is not null;
  -- A mandate debit of a subscription cancelled here (now or at its period end: by its owner, an
  -- operator, the jobs, a refund) buys nothing, whenever it was made: it can only buy the next
  -- period, which was given up here. Razorpay's own end of its subscription (its cancelled or
  -- completed event) is part of the mandate's sequence: a debit made before it still counts, so
  -- events delivered in any order end in the same state. Any other payment counts when it was
  -- made before the subscription ended (delivered late).
  if v_renewal and v_sub.id is not null and (v_sub.status in ('canceled', 'expired') or v_sub.cancel_at_period_end) then
    select h.actor_kind = 'provider' and h.metadata ? 'provider_status' into v_ended_by_provider
    from public.subscription_history h
    where h.subscription_id = v_sub.id
      and (h.new_status in ('canceled', 'expired') or h.action in ('cancel_scheduled', 'completed'))
    order by h.effective_at desc, h.created_at desc
    limit 1;
  end if;
  v_ended := v_sub.id is not null
             and ((v_renewal and not coalesce(v_ended_by_provider, false)
                   and (v_sub.status in ('canceled', 'expired') or v_sub.cancel_at_period_end))
                  or (v_sub.status in ('canceled', 'expired')
                      and v_paid_at > coalesce(v_sub.ended_at, v_sub.canceled_at, '-infinity'::timestamptz)));

  if v_ended and v_sub.status not in ('canceled', 'expired') then
    v_problem := pg_catalog.format('debit of %s subscription %s, cancelled at its period end (%s): refund',
                                   v_order.provider, v_psid, v_sub.current_period_end);
  elsif v_ended then
    v_problem := pg_catalog.format('payment for an ended subscription (%s since %s): refund or reactivate',
                                   v_sub.status, coalesce(v_sub.ended_at, v_sub.canceled_at));
  elsif v_renewal and v_sub.id is null then
    v_problem := pg_catalog.format('charge of %s subscription %s, which no longer backs a subscription here (replaced by a grant or a plan change): refund',
                                   v_order.provider, v_psid);
  elsif v_renewal and v_sub.plan_id is distinct from (billing.mandate_debit_amount(v_order)).plan_id
        and v_sub.pending_plan_id is distinct from (billing.mandate_debit_amount(v_order)).plan_id then
    -- The mandate pays for another plan than the subscription is on, or is to move to (a plan
    -- change made outside the mandate; one carried out at the provider moved the mandate with it:
    -- billing.mandate_debit_amount): a debit never changes the plan by itself.
    v_review := true;
    v_problem := pg_catalog.format('debit of %s subscription %s for plan %s, but the subscription is on plan %s: refunded; needs review (cancel the mandate, or move the subscription to its plan)',
                                   v_order.provider, v_psid,
                                   (select p.code from public.billing_plans p where p.id = (billing.mandate_debit_amount(v_order)).plan_id),
                                   (select p.code from public.billing_plans p where p.id = v_sub.plan_id));
  elsif not v_renewal then
    -- A payment buys what was quoted only while the quote holds (superseded, canceled, expired,
    -- or an upgrade whose subscription moved on): recorded for refund, never applied.
    v_problem := billing.order_quote_problem(v_order, v_paid_at);
    -- A code's limits hold however late a payment is delivered (billing.claim_discount_on_capture).
    if v_problem is null then
      v_problem := billing.claim_discount_on_capture(v_order);
    end if;
  end if;

  -- A mandate debit that buys the next period: its own renewal order, for the plan and at the
  -- amount the debit is for (a scheduled downgrade carried out at the provider: the new plan, which
  -- the renewal then puts in effect), carrying the first order's discount while it runs (so its
  -- invoice shows it, and it counts as one of a repeating discount's periods).
  if v_problem is null and v_renewal then
    v_debit := billing.mandate_debit_amount(v_order);
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, provider_subscription_id, kind,
       amount_cents, currency, status, metadata, list_cents, discount_cents, discount_redemption_id)
    values
      (v_order.organization_id, v_debit.plan_id, v_sub.id, v_order.provider, v_psid, 'renewal',
       v_debit.amount_cents, v_order.currency, 'pending',
       pg_catalog.jsonb_build_object('first_order_id', v_order.id, 'provider_payment_id', v_payment_id)
         || case when v_debit.discounted and v_order.metadata ? 'discount_code'
                 then pg_catalog.jsonb_build_object('discount_code', v_order.metadata ->> 'discount_code')
                 else '{}'::jsonb end,
       case when v_debit.discounted then v_order.list_cents end,
       case when v_debit.discounted then v_order.discount_cents else 0 end,
       case when v_debit.discounted then v_order.discount_redemption_id end)
    returning * into v_order;
  end if;

  v_payment_event_id := billing.record_payment_event(
    v_order.organization_id, v_order.id, v_order.provider, v_payment_id, (p_event ->> 'amount_paise')::bigint,
    p_event ->> 'currency', 'captured', p_event ->> 'method', null,
    pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                  'provider_order_id', p_event ->> 'provider_order_id',
                                  'provider_subscription_id', v_psid)
      -- The provider's exchange rate of a foreign-currency payment: the invoice states the INR
      -- value at it (billing.issue_invoice) instead of the rate the order recorded.
      || case when v_order.currency <> 'INR' and p_event ? 'exchange_rate'
                   and pg_catalog.jsonb_typeof(p_event -> 'exchange_rate') = 'number'
              then pg_catalog.jsonb_build_object('exchange_rate', p_event -> 'exchange_rate') else '{}'::jsonb end
      || case when v_ended and v_sub.status in ('canceled', 'expired')
                   and v_paid_at > coalesce(v_sub.ended_at, v_sub.canceled_at, '-infinity'::timestamptz)
              then pg_catalog.jsonb_build_object('not_applied', 'subscription ended before the payment')
              when v_problem is not null then pg_catalog.jsonb_build_object('not_applied', v_problem)
              else '{}'::jsonb end
      || case when v_review then pg_catalog.jsonb_build_object('needs_review', true) else '{}'::jsonb end,
    v_paid_at,
    v_problem is not null or v_order.status = 'paid');
  if v_problem is not null then
    perform billing.stop_unbacked_mandate(v_order.organization_id, v_order.provider, v_psid, v_problem, v_sub.id);
    return pg_catalog.jsonb_build_object(
      'result', 'recorded', 'reason', v_problem, 'needs_refund', true,
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
                                         'needs_refund', true, 'payment_event_id', v_payment_event_id);
  end if;

  -- A credit pack buys credits, not a period: the order is paid, the credits granted and the
  -- invoice issued, all in this transaction; no subscription changes.
  if v_order.kind = 'credit_pack' then
    update public.orders o set status = 'paid', paid_at = billing.now()
    where o.id = v_order.id
    returning * into v_order;
    select g.id, g.amount, g.expires_at into v_grant from billing.grant_pack_credits(v_order, v_payment_event_id) g;
    select * into v_documents from billing.issue_documents(v_order.id, v_payment_event_id) d;
    return pg_catalog.jsonb_build_object(
      'result', 'applied', 'order_id', v_order.id, 'order_status', v_order.status,
      'payment_event_id', v_payment_event_id, 'credit_grant_id', v_grant.id, 'credits', v_grant.amount,
      'credits_expire_at', v_grant.expires_at, 'invoice_id', v_documents.invoice_id,
      'invoice_error', v_documents.error);
  end if;

  v_sub := billing.extend_subscription_for_payment(v_order, v_psid, p_event, v_payment_event_id);
  -- The first charge of a provider subscription starts autopay of its plan: a plan change
  -- scheduled before (a downgrade) is dropped, as the mandate keeps debiting this plan; the
  -- customer changes plan through the mandate from now on (cancel and resubscribe).
  if not v_renewal and v_psid is not null and v_sub.pending_plan_id is not null
     and v_sub.provider_subscription_id = v_psid then
    perform billing.set_change_context('pending_plan_cleared', 'provider',
      p_reason => pg_catalog.format('autopay of this plan started (%s subscription %s): the scheduled change is dropped',
                                    v_order.provider, v_psid),
      p_metadata => pg_catalog.jsonb_build_object('dropped_plan_id', v_sub.pending_plan_id,
                                                  'dropped_effective_at', v_sub.pending_plan_effective_at,
                                                  'payment_event_id', v_payment_event_id, 'order_id', v_order.id));
    update public.subscriptions s set pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id
    returning * into v_sub;
  end if;
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
 * The limits of the discount code order p_order reserved, checked again when its payment is
 * captured, under a lock on the code's row (the lock checkout takes to reserve): a payment made
 * before the order expired can be delivered after it, when the reservation no longer counted and
 * another buyer took the last redemption. Counting every other redemption that counts now
 * (redeemed, or reserved on an open unexpired order), a code at max_redemptions, or at the
 * organization's max_per_organization, answers why (the payment is then recorded for refund,
 * never applied at the discount); otherwise null, and a reservation released meanwhile (the order
 * expired) is reserved again, so paying the order redeems it. Orders carrying an earlier
 * redemption (a renewal) and orders without a discount: null.
 */
create function billing.claim_discount_on_capture(p_order public.orders)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_redemption public.discount_redemptions;
  v_code billing.discount_codes;
  v_all integer;
  v_own integer;
begin
  if p_order.discount_redemption_id is null then
    return null;
  end if;
  select * into v_redemption from public.discount_redemptions r
  where r.id = p_order.discount_redemption_id and r.order_id = p_order.id;
  if v_redemption.id is null or v_redemption.status = 'redeemed' then
    return null;
  end if;
  select * into v_code from billing.discount_codes c where c.id = v_redemption.discount_code_id for update;
  select count(*)::integer, (count(*) filter (where r.organization_id = p_order.organization_id))::integer
  into v_all, v_own
  from public.discount_redemptions r
  left join public.orders o on o.id = r.order_id
  where r.discount_code_id = v_code.id and r.id <> v_redemption.id
    and (r.status = 'redeemed'
         or (r.status = 'reserved' and o.status in ('created', 'pending') and (o.expires_at is null or o.expires_at > v_now)));
  if v_code.max_redemptions is not null and v_all >= v_code.max_redemptions then
    return pg_catalog.format('discount code %s reached its %s redemption(s) before the payment of order %s was delivered: refund',
                             v_code.code, v_code.max_redemptions, p_order.receipt);
  end if;
  if v_code.max_per_organization is not null and v_own >= v_code.max_per_organization then
    return pg_catalog.format('discount code %s was already used by this organization (%s time(s) allowed) before the payment of order %s was delivered: refund',
                             v_code.code, v_code.max_per_organization, p_order.receipt);
  end if;
  if v_redemption.status = 'released' then
    update public.discount_redemptions r set status = 'reserved', released_at = null where r.id = v_redemption.id;
  end if;
  return null;
end;
$$;
revoke execute on function billing.claim_discount_on_capture(public.orders) from public;
grant execute on function billing.claim_discount_on_capture(public.orders) to service_role;

/**
 * Refunds are matched through the payment they refund: a refund of a captured payment is
 * recorded once per refund id and once per refund action of ours (billing.refund_action_for:
 * the same refund under our token and under the provider's id is one refund) ('refunded',
 * details.action_id), with its credit note against the invoice of that
 * payment's order (a payment that bought nothing had no invoice: no credit note). One that does
 * not fit is a 'mismatch', recorded for an operator and never credited: no amount, another
 * currency, or more than is left of the capture once refunds recorded and lost disputes are
 * taken off. Refunds still in flight (queued, running or pending at the provider) do not count
 * here: the provider reports money that has left, so it is recorded, whichever action of ours
 * held it (billing.refundable_paise, which counts them, is what an operator may still queue). A
 * full refund of the payment
 * takes away what that payment bought (billing.end_paid_period, when
 * billing_settings.full_refund_ends_period); a partial refund keeps it. A refund of a credit pack
 * payment takes back the unspent credits it bought (billing.revoke_pack_credits: all that
 * remains for a full refund, the refund's share rounded up for a partial one), and its credit
 * note says how many ("Credits revoked: N of M (K already used)"); the GST is credited as for
 * any refund. Returns the result object; `last_error` says what was not applied.
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
  v_lost bigint;
  v_left bigint;
  v_error text;
  v_payment_event_id uuid;
  v_documents record;
  v_ended_subscription_id uuid;
  v_action_id uuid;
  v_credits_note text;
  v_credits_revoked bigint;
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
  select coalesce(sum(pe.amount_cents), 0) into v_lost from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'dispute_lost';
  -- One refund of ours is one refund, whatever id it comes under (PayU: our token when provider-sync
  -- got no request id, the request id when reconcile lists it).
  v_action_id := billing.refund_action_for(v_captured, p_event);
  if exists (select 1 from public.payment_events pe
             where pe.provider = v_provider and pe.status = 'refunded'
               and (pe.details ->> 'refund_id' = v_refund_id
                    or (v_action_id is not null and pe.provider_payment_id = v_payment_id
                        and pe.details ->> 'action_id' = v_action_id::text))) then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;

  -- What the provider can still have refunded: refunds recorded and lost disputes only (money in
  -- flight at the provider is not gone until it reports it: this report is that).
  v_left := greatest(v_captured.amount_cents - v_refunded - v_lost, 0);
  if v_amount is null or v_amount = 0 or v_currency is distinct from v_captured.currency then
    v_error := pg_catalog.format('refund %s: amount %s %s does not fit payment %s (%s %s)', v_refund_id,
                                 coalesce(v_amount::text, 'null'), coalesce(v_currency, 'null'),
                                 v_payment_id, v_captured.amount_cents, v_captured.currency);
  elsif v_refunded + v_amount > v_captured.amount_cents then
    v_error := pg_catalog.format('refund %s: refunds of payment %s would reach %s, above the %s captured', v_refund_id,
                                 v_payment_id, v_refunded + v_amount, v_captured.amount_cents);
  elsif v_amount > v_left then
    v_error := pg_catalog.format('refund %s of %s paise: payment %s has %s paise left once refunds recorded and lost disputes are taken off',
                                 v_refund_id, v_amount, v_payment_id, v_left);
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
    if v_payment_event_id is null then
      -- This refund id is already in the ledger (a mismatch is recorded once, by its refund id).
      return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                           'order_id', v_order.id, 'order_status', v_order.status);
    end if;
    return pg_catalog.jsonb_build_object('result', 'mismatch', 'reason', v_error, 'last_error', v_error,
                                         'order_id', v_order.id, 'order_status', v_order.status,
                                         'payment_event_id', v_payment_event_id);
  end if;

  v_payment_event_id := billing.record_payment_event(
    v_captured.organization_id, v_captured.order_id, v_provider, v_payment_id, v_amount, v_currency, 'refunded',
    null, null,
    pg_catalog.jsonb_build_object('refund_id', v_refund_id, 'event_id', p_event ->> 'event_id',
                                  'captured_payment_event_id', v_captured.id, 'action_id', v_action_id),
    p_event_at);
  if v_payment_event_id is null then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;
  -- The credit note goes against the invoice of the payment refunded. A payment that bought
  -- nothing (needs_refund) has none: its order's invoice, if any, is another payment's.
  -- A credit pack's unspent credits go back with the money (before the credit note, which names
  -- them). A payment that bought nothing granted nothing.
  if v_order.kind = 'credit_pack' and not v_captured.needs_refund then
    select c.note, c.revoked into v_credits_note, v_credits_revoked
    from billing.revoke_pack_credits(v_captured, v_amount, v_refunded + v_lost,
                                     pg_catalog.format('%s refund %s', v_provider, v_refund_id)) c;
  end if;
  if not v_captured.needs_refund then
    select * into v_documents
    from billing.issue_documents(v_captured.order_id, v_captured.id, v_amount,
                                 pg_catalog.format('%s refund %s', v_provider, v_refund_id)
                                   || coalesce('. ' || v_credits_note, ''), v_payment_event_id) d;
  else
    -- No documents; the record is still read below (an unassigned record cannot be, and the
    -- refund of a payment that bought nothing could then never be recorded).
    select null::uuid as invoice_id, null::uuid as credit_note_id, null::text as error into v_documents;
  end if;
  -- A full refund takes away what the payment bought (billing.end_paid_period).
  if v_refunded + v_amount = v_captured.amount_cents
     and coalesce((select s.full_refund_ends_period from public.billing_settings s where s.id), true) then
    v_ended_subscription_id := billing.end_paid_period(
      v_captured, 'refunded', pg_catalog.format('payment %s refunded in full (%s)', v_payment_id, v_refund_id),
      'subscription_refunded', p_event);
  end if;
  return pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id,
                                       'invoice_id', v_documents.invoice_id, 'credit_note_id', v_documents.credit_note_id,
                                       'order_id', v_order.id, 'order_status', v_order.status,
                                       'subscription_id', v_ended_subscription_id,
                                       'credits_revoked', v_credits_revoked,
                                       'last_error', v_documents.error);
end;
$$;
revoke execute on function billing.apply_refund(jsonb, timestamptz) from public;
grant execute on function billing.apply_refund(jsonb, timestamptz) to service_role;

/**
 * A captured payment whose amount or currency differs from what it should be (p_expected_cents: the
 * order's amount, or for a later debit of a provider subscription billing.mandate_debit_amount, the
 * list price once a discount ran out): recorded as a 'mismatch' for an operator, never applied.
 */
create function billing.record_amount_mismatch(p_order public.orders, p_event jsonb, p_event_at timestamptz,
                                               p_expected_cents bigint)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_amount bigint := (p_event ->> 'amount_paise')::bigint;
  v_currency text := p_event ->> 'currency';
  v_error text := pg_catalog.format('amount mismatch for order %s: expected %s %s, got %s %s', p_order.receipt,
                                    p_expected_cents, p_order.currency, coalesce(v_amount::text, 'null'),
                                    coalesce(v_currency, 'null'));
begin
  return pg_catalog.jsonb_build_object(
    'result', 'mismatch', 'reason', v_error, 'last_error', v_error,
    'payment_event_id', billing.record_payment_event(
      p_order.organization_id, p_order.id, p_order.provider, p_event ->> 'provider_payment_id', coalesce(v_amount, 0),
      coalesce(v_currency, p_order.currency), 'mismatch', p_event ->> 'method', v_error,
      pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                    'expected_amount', p_expected_cents, 'expected_currency', p_order.currency,
                                    'amount', v_amount, 'currency', v_currency),
      p_event_at));
end;
$$;
revoke execute on function billing.record_amount_mismatch(public.orders, jsonb, timestamptz, bigint) from public;
grant execute on function billing.record_amount_mismatch(public.orders, jsonb, timestamptz, bigint) to service_role;

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
  values (p_order.organization_id, p_order.subscription_id, 'payment_failed',
          pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'order_id', p_order.id, 'receipt', p_order.receipt, 'amount_cents', v_amount,
            'currency', v_currency, 'provider', p_order.provider,
            'provider_payment_id', v_payment_id, 'error_reason', v_reason,
            'plan_code', (select p.code from public.billing_plans p where p.id = p_order.plan_id),
            'credit_pack_name', (select cp.name from public.credit_packs cp where cp.id = p_order.credit_pack_id))),
          pg_catalog.format('payment_failed:%s:%s', p_order.provider, v_payment_id),
          billing.now())
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
 * since (a cancellation by the user). The event's cancel_at_period_end (a provider that says it:
 * Stripe's customer portal) is kept with the status; when the newest event turns it, a live
 * subscription here follows: set ('cancel_scheduled', which queues the cancellation_scheduled
 * notification) or cleared ('resumed'), actor 'provider'. A flag that did not turn is never
 * re-applied, so it does not undo a cancellation made here that the provider has not carried out
 * yet; but a provider's flag still set is set again on ours when this event's payment or status
 * turn cleared it (a renewal paid after the flag was set while past due). Returns an error to
 * record, or null.
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
  v_flag boolean := (p_event ->> 'cancel_at_period_end')::boolean;
  v_old_flag boolean;
  v_sub public.subscriptions;
  v_synced public.subscriptions;
  v_state billing.provider_subscription_states;
begin
  if p_status is not null then
    select st.cancel_at_period_end into v_old_flag from billing.provider_subscription_states st
    where st.provider = v_provider and st.provider_subscription_id = p_provider_subscription_id
    for update;
    insert into billing.provider_subscription_states as st
      (provider, provider_subscription_id, status, status_at, event_id, cancel_at_period_end)
    values (v_provider, p_provider_subscription_id, p_status, p_event_at, p_event ->> 'event_id', v_flag)
    on conflict (provider, provider_subscription_id) do update
      set status = excluded.status, status_at = excluded.status_at, event_id = excluded.event_id,
          cancel_at_period_end = coalesce(excluded.cancel_at_period_end, st.cancel_at_period_end)
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
  if v_sub.id is null or v_state.status is null then
    return null;
  end if;
  if not billing.sync_provider_status(v_sub.id, v_state.status, v_state.status_at, p_event) then
    return pg_catalog.format('subscription %s not moved to %s: the organization has another live subscription',
                             p_provider_subscription_id, v_state.status);
  end if;
  select * into v_synced from public.subscriptions s where s.id = v_sub.id for update;
  if not (coalesce(v_changed, false) and v_flag is not null and v_flag is distinct from coalesce(v_old_flag, false))
     and v_state.cancel_at_period_end and not v_synced.cancel_at_period_end
     and (p_applied_payment or v_synced.status is distinct from v_sub.status) then
    -- The provider still ends it at its period end, and this event's payment (a renewal extends
    -- and clears the flag) or status turn (past due back to active) cleared ours: a flag set in
    -- the provider's portal while past due survives the retried payment.
    v_flag := true;
    v_changed := true;
    v_old_flag := false;
  end if;
  -- The provider turned its end at the period end (this event is its newest word): ours follows.
  if coalesce(v_changed, false) and v_flag is not null and v_flag is distinct from coalesce(v_old_flag, false) then
    select * into v_sub from public.subscriptions s where s.id = v_sub.id for update;
    if v_sub.status in ('trialing', 'active', 'past_due') and v_sub.cancel_at_period_end is distinct from v_flag then
      perform billing.set_change_context(case when v_flag then 'cancel_scheduled' else 'resumed' end, 'provider',
        p_reason => pg_catalog.format('%s %s: %s', p_event ->> 'provider', p_event ->> 'event_type',
                                      case when v_flag then 'the provider ends it at its period end'
                                           else 'the provider no longer ends it at its period end' end),
        p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'provider_status', v_state.status,
                                                    'provider_subscription_id', p_provider_subscription_id,
                                                    'cancel_at_period_end', v_flag),
        p_effective_at => billing.now());
      update public.subscriptions s set cancel_at_period_end = v_flag where s.id = v_sub.id;
    end if;
  end if;
  return null;
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
  v_expected bigint;
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
  elsif v_kind = 'payment_captured'
        and exists (select 1 from public.payment_events pe
                    where pe.provider = v_order.provider and pe.provider_payment_id = p_event ->> 'provider_payment_id'
                      and pe.status = 'captured') then
    -- The same payment came another way first (Stripe's invoice.paid before the
    -- checkout.session.completed of a subscription's first payment, or after it): a duplicate,
    -- before the amount check, which would take the order, now paid, for a renewal's and call a
    -- discounted first payment a mismatch.
    v_status := case when v_psid is not null then p_event ->> 'subscription_status' end;
    v_result := pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'payment already recorded',
                                              'order_id', v_order.id, 'order_status', v_order.status);
  elsif v_kind = 'payment_captured' then
    -- A later debit of a paid provider subscription (a renewal) is for what the next period
    -- costs (billing.mandate_debit_amount: a repeating discount runs out); anything else for
    -- the order's amount.
    v_expected := case when v_order.status = 'paid' and v_psid is not null
                       then (billing.mandate_debit_amount(v_order)).amount_cents else v_order.amount_cents end;
    if (p_event ->> 'amount_paise')::bigint is distinct from v_expected
       or p_event ->> 'currency' is distinct from v_order.currency then
      v_result := billing.record_amount_mismatch(v_order, p_event, p_event_at, v_expected);
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
 *    subscription_status, error_reason, method, occurred_at, period_end, cancel_at_period_end, payload}
 * `kind` decides what happens (the provider's own event_type is only recorded):
 *   payment_captured, payment_failed, payment_authorized, payment_pending, subscription_status:
 *     the matched order's event (billing.apply_order_event);
 *   refund_processed: payment_events 'refunded' against the captured payment, credit note
 *     (billing.apply_refund);
 *   refund_failed: the refund the provider reports failed (billing.apply_refund_failed);
 *   dispute_opened, dispute_won, dispute_lost: billing.apply_dispute;
 *   other: recorded and acknowledged ('ignored'), the delivery's ignored_reason saying why.
 * In one transaction: records the delivery in billing.webhook_events, already processed (a
 * repeated provider + event_id, also a concurrent one, is acknowledged with result 'duplicate'
 * and changes nothing else), applies the event, and keeps the handler's last_error on the
 * delivery. Bad input raises 22023 naming the field (billing.validate_payment_event).
 * Returns the handler's result object with webhook_event_id.
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
  v_received_at timestamptz;
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
  -- An event billing does not act on (kind other) is marked with why, so an operator can tell
  -- "received and ignored" from "applied".
  -- The key first (billing.webhook_event_keys, never dropped): the delivery rows are in monthly
  -- partitions, where a unique key holds within a month only.
  insert into billing.webhook_event_keys (provider, event_id, webhook_event_id, received_at)
  values (v_provider, p_event ->> 'event_id', pg_catalog.gen_random_uuid(), v_now)
  on conflict (provider, event_id) do nothing
  returning webhook_event_id into v_webhook_id;
  if v_webhook_id is null then
    -- Its delivery row may be gone (webhook_event_retention_days): the key still answers.
    select k.webhook_event_id, k.received_at into v_webhook_id, v_received_at
    from billing.webhook_event_keys k
    where k.provider = v_provider and k.event_id = p_event ->> 'event_id';
    update billing.webhook_events w set attempts = w.attempts + 1
    where w.id = v_webhook_id and w.received_at = v_received_at;
    v_order := billing.match_order(p_event);
    return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'result', 'duplicate', 'webhook_event_id', v_webhook_id, 'reason', 'event already received',
      'order_id', v_order.id, 'order_status', v_order.status));
  end if;

  insert into billing.webhook_events (id, provider, event_id, event_type, payload, received_at, processed_at, attempts,
                                      ignored_reason)
  values (v_webhook_id, v_provider, p_event ->> 'event_id', p_event ->> 'event_type', p_event, v_now, v_now, 1,
          case when p_event ->> 'kind' = 'other'
            then pg_catalog.format('event type %s is not one billing acts on', p_event ->> 'event_type') end);

  v_result := case p_event ->> 'kind'
    when 'other' then pg_catalog.jsonb_build_object(
      'result', 'ignored', 'reason', pg_catalog.format('event type %s is not handled', p_event ->> 'event_type'))
    when 'refund_processed' then billing.apply_refund(p_event, v_event_at)
    when 'refund_failed' then billing.apply_refund_failed(p_event, v_event_at)
    when 'dispute_opened' then billing.apply_dispute(p_event, v_event_at)
    when 'dispute_won' then billing.apply_dispute(p_event, v_event_at)
    when 'dispute_lost' then billing.apply_dispute(p_event, v_event_at)
    else billing.apply_order_event(p_event, v_event_at)
  end;

  update billing.webhook_events w set last_error = v_result ->> 'last_error'
  where w.id = v_webhook_id and w.received_at = v_now and v_result ->> 'last_error' is not null;
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
 * The price is the organization's at the time (billing.plan_price_for: a price override, else
 * the plan's price); the order keeps it, with the override and its contract in its metadata. A
 * private plan not assigned to the organization is refused as an unknown plan is (P0002, HINT
 * 'plan_not_found').
 * Checkout buys a first plan or renews the plan in effect; it never changes plan. Refused (55000)
 * with HINT 'use_change_plan' while a subscription is active or past due on another plan (except
 * change_plan's 'cancel_and_resubscribe': a Razorpay subscription set to cancel at the period
 * end, replaced by a new Razorpay subscription), and with HINT 'recurring_subscription_exists'
 * while a Razorpay subscription checkout is still open, or when buying a Razorpay subscription
 * while one renews automatically.
 * p_discount_code: an optional discount code (billing.checkout_discount): the order is priced at
 * the list price less the discount, the code reserved with it (billing.reserve_discount); without
 * one, a repeating or forever redemption of the organization covering the plan is carried to this
 * order (a renewal through checkout). An order whose discount covers the whole price is completed
 * at once (billing.complete_free_order: status 'paid', amount 0, provider 'manual'). A renewal
 * that would be free or is at a price override is refused (55000, HINT 'paid_ahead') while the
 * plan is already paid more than one period (plus the grace days) ahead of now, so free
 * checkouts cannot be repeated to prepay years.
 * p_currency: the plan's price in another currency (public.plan_prices; null: the plan's own, or
 * for a renewal the currency of the order that started the subscription, billing.checkout_currency).
 * Such an order carries no price override, is a one-time payment (never a Razorpay
 * subscription, which charges its INR plan), records the exchange rate of the day and is an
 * export for a buyer outside India. Refused before any order: a currency the plan is not offered
 * in (22023 HINT 'currency_not_offered'), one the provider does not collect here
 * (billing.require_provider_currency: 55000 HINT 'currency_not_accepted'), a renewal in another
 * currency than its subscription's (55000 HINT 'subscription_currency'), no exchange rate on
 * record (55000 HINT 'exchange_rate_missing').
 * Errors: 42501 not signed in / not an owner or admin; 22023 bad provider, or a refused code
 * (HINT discount_invalid, discount_expired, discount_exhausted, discount_not_applicable,
 * discount_already_used; no order is created); P0002 no such active plan; 55000 the plan is free
 * or cannot be paid through the provider, or as above.
 * Security definer: signed-in users have no insert grant on orders, and the buyer's email comes
 * from auth.users.
 */
create function billing.create_checkout_order(
  p_organization_id uuid,
  p_plan_code text,
  p_provider text,
  p_discount_code text default null,
  p_currency text default null
)
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
  v_price jsonb;
  v_discounted boolean;
  v_override public.price_overrides;
begin
  perform billing.checkout_provider(p_provider);
  perform billing.require_role(p_organization_id, billing.managers(), 'buy a plan');
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found', hint = 'plan_not_found';
  end if;
  perform billing.require_plan_available(p_organization_id, v_plan);
  if v_plan.price_cents <= 0 or v_plan.tier = 'free' then
    raise exception 'plan "%" is free: there is nothing to pay', v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  -- The currency (a price in plan_prices, or the plan's own) and whether the provider collects it.
  v_plan := billing.plan_in_currency(v_plan, billing.checkout_currency(p_organization_id, v_plan, p_currency));
  perform billing.require_provider_currency(p_provider, v_plan.currency);
  if v_plan.currency <> 'INR' then
    perform billing.exchange_rate_at(v_plan.currency, v_now);
  end if;
  -- The organization's price now (its price override, else the list price): the order keeps it.
  -- An override is in the plan's own currency: none applies to a price in another one.
  if v_plan.currency = (select p.currency from public.billing_plans p where p.id = v_plan.id) then
    v_override := billing.price_override_at(p_organization_id, v_plan.id, v_now);
  end if;
  v_plan.price_cents := billing.plan_price_for(p_organization_id, v_plan, v_now);
  if v_plan.price_cents <= 0 then
    raise exception 'plan "%" is free: there is nothing to pay', v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_provider = 'razorpay' and v_plan.price_cents < 100 then
    raise exception 'plan "%" costs less than Razorpay''s minimum of 100 paise', v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  -- One checkout of an organization at a time (the payment path takes the same lock), so the
  -- checks below see what a concurrent checkout or payment wrote.
  perform 1 from public.organizations o where o.id = p_organization_id for no key update;
  -- The plan's recurring plan at the provider (Razorpay's plan id, Stripe's price id): with one the
  -- checkout is a provider subscription (a mandate) that renews by itself; without, a one-time
  -- payment renewed through checkout. A price in another currency than the plan's own is always
  -- paid as one-time orders (renewed through checkout): a mandate's debits are in the plan's currency.
  v_rzp_plan := case when v_plan.currency = (select p.currency from public.billing_plans p where p.id = v_plan.id)
                     then case p_provider
                            when 'razorpay' then nullif(v_plan.provider_config #>> '{razorpay,plan_id}', '')
                            when 'stripe' then nullif(v_plan.provider_config #>> '{stripe,price_id}', '') end end;
  -- Razorpay charges a subscription its plan's own amount: while a price override of the plan is
  -- current or to come, the organization buys it as one-time Razorpay orders (renewed through
  -- checkout), never a mandate at the list price.
  if v_rzp_plan is not null and exists (
    select 1 from public.price_overrides o
    where o.organization_id = p_organization_id and o.plan_id = v_plan.id
      and (o.valid_until is null or o.valid_until > v_now) and (o.ended_at is null or o.ended_at > v_now)
  ) then
    v_rzp_plan := null;
  end if;

  select * into v_live from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due');
  if v_live.status in ('active', 'past_due') and v_live.plan_id <> v_plan.id
     and not (v_rzp_plan is not null and v_live.provider in ('razorpay', 'stripe') and v_live.provider_subscription_id is not null
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
    raise exception 'a subscription checkout (order %) is still open until %: complete it, or use change_plan once it is paid',
      v_open.receipt, v_open.expires_at
      using errcode = 'object_not_in_prerequisite_state', hint = 'recurring_subscription_exists';
  end if;
  if v_rzp_plan is not null and v_live.provider in ('razorpay', 'stripe') and v_live.provider_subscription_id is not null
     and not v_live.cancel_at_period_end then
    raise exception 'the organization''s % subscription % renews automatically: a second one would charge twice (use change_plan to switch plans)',
      v_live.provider, v_live.provider_subscription_id
      using errcode = 'object_not_in_prerequisite_state', hint = 'recurring_subscription_exists';
  end if;

  -- The price: the organization's list price less a discount (a code given, refused with its
  -- reason; or a repeating redemption carried to this renewal), before any order exists.
  -- Razorpay charges a subscription its plan's own amount, so no discount applies to one; Stripe
  -- charges the amount and the coupon checkout gives it (billing.mandate_debit_amount).
  v_price := billing.checkout_discount(p_organization_id, v_plan, p_discount_code, v_now,
                                       p_provider = 'razorpay' and v_rzp_plan is not null);
  v_discounted := v_price ? 'terms';
  -- Prepaying a free order (a discount covering the price) or a negotiated price: only while the
  -- plan is paid at most one period ahead (and the grace days), so free checkouts cannot be
  -- repeated to take years of the plan, nor a contract price be locked in for years.
  if v_live.status in ('active', 'past_due') and v_live.plan_id = v_plan.id
     and ((v_price ->> 'price_cents')::bigint = 0 or v_override.id is not null)
     and v_live.current_period_end > billing.period_end_after(
           v_now, v_plan.interval, (select g.timezone from public.organizations g where g.id = p_organization_id))
         + billing.grace_interval() then
    raise exception 'plan "%" is paid until %, more than one % ahead: a free order or a negotiated price is paid at most one period ahead (check out again later)',
      v_plan.code, v_live.current_period_end, v_plan.interval
      using errcode = 'object_not_in_prerequisite_state', hint = 'paid_ahead';
  end if;
  if p_provider = 'razorpay' and (v_price ->> 'price_cents')::bigint between 1 and 99 then
    perform billing.refuse_discount('discount_not_applicable',
      pg_catalog.format('with discount code %s plan "%s" costs less than Razorpay''s minimum of 100 paise: pay with PayU',
                        v_price ->> 'code', v_plan.code));
  end if;

  -- A price of 0 (a discount covering it) is completed below, without a provider.
  insert into public.orders
    (organization_id, plan_id, provider, kind, amount_cents, currency, status, created_by, expires_at, metadata,
     list_cents, discount_cents, discount_redemption_id)
  values
    (p_organization_id, v_plan.id,
     case when (v_price ->> 'price_cents')::bigint = 0 then 'manual' else p_provider end::public.payment_provider,
     'new', (v_price ->> 'price_cents')::bigint, v_plan.currency,
     case when p_provider = 'payu' or (v_price ->> 'price_cents')::bigint = 0 then 'pending' else 'created' end::public.order_status,
     v_user_id, v_now + interval '1 day',
     pg_catalog.jsonb_build_object('plan_code', v_plan.code, 'recurring', v_rzp_plan is not null,
                                   'period_price_cents', (v_price ->> 'price_cents')::bigint)
       || case when v_discounted then pg_catalog.jsonb_build_object('discount_code', v_price ->> 'code', 'discount_terms', v_price -> 'terms')
               else '{}'::jsonb end
       || case when v_override.id is not null then pg_catalog.jsonb_build_object(
            'price_override_id', v_override.id, 'contract_ref', v_override.contract_ref,
            'list_price_paise', (select p.price_cents from public.billing_plans p where p.id = v_plan.id))
          else '{}'::jsonb end,
     case when v_discounted then (v_price ->> 'list_cents')::bigint end,
     case when v_discounted then (v_price ->> 'discount_cents')::bigint else 0 end,
     (v_price ->> 'redemption_id')::uuid)
  returning * into v_order;
  if v_discounted then
    perform billing.reserve_discount(v_order, v_price);
    select * into v_order from public.orders o where o.id = v_order.id;
  end if;
  if v_order.amount_cents = 0 then
    v_order := billing.complete_free_order(v_order);
  end if;

  return next billing.checkout_answer(v_order, v_user_id, v_rzp_plan);
end;
$$;
revoke execute on function billing.create_checkout_order(uuid, text, text, text, text) from public, anon;
grant execute on function billing.create_checkout_order(uuid, text, text, text, text) to authenticated;

-- -------------------------------------------------------------------------------------------------
-- Service-side functions of checkout and reconciliation (service_role)
-- -------------------------------------------------------------------------------------------------

/**
 * Attaches the provider's order (Razorpay `order_...`, Stripe's Checkout Session `cs_...`) or
 * subscription (`sub_...`) to a 'created' checkout order and makes it payable ('pending'); with
 * p_provider_customer_id, records the organization's customer at the order's provider
 * (billing.provider_customers; an organization keeps its first one). service_role only (the
 * checkout function).
 */
create function billing.attach_provider_checkout(
  p_order_id uuid,
  p_provider_order_id text,
  p_provider_subscription_id text default null,
  p_provider_customer_id text default null
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
  if p_provider_customer_id is not null then
    insert into billing.provider_customers (organization_id, provider, provider_customer_id)
    values (v_order.organization_id, v_order.provider, p_provider_customer_id)
    on conflict (organization_id, provider) do nothing;
  end if;
  return v_order;
end;
$$;
revoke execute on function billing.attach_provider_checkout(uuid, text, text, text) from public, anon, authenticated;
grant execute on function billing.attach_provider_checkout(uuid, text, text, text) to service_role;

/** A provider's kept setting (billing.provider_settings), or null. service_role only. */
create function billing.provider_setting(p_provider public.payment_provider, p_name text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return (select ps.value from billing.provider_settings ps where ps.provider = p_provider and ps.name = p_name);
end;
$$;
revoke execute on function billing.provider_setting(public.payment_provider, text) from public, anon, authenticated;
grant execute on function billing.provider_setting(public.payment_provider, text) to service_role;

/**
 * Keeps a provider's setting once: stores p_value unless a value is stored already, and returns
 * the stored one (two workers that each made one: both use the first). service_role only.
 */
create function billing.keep_provider_setting(p_provider public.payment_provider, p_name text, p_value text)
returns text
language plpgsql
set search_path = ''
as $$
begin
  insert into billing.provider_settings (provider, name, value) values (p_provider, p_name, p_value)
  on conflict (provider, name) do nothing;
  return (select ps.value from billing.provider_settings ps where ps.provider = p_provider and ps.name = p_name);
end;
$$;
revoke execute on function billing.keep_provider_setting(public.payment_provider, text, text) from public, anon, authenticated;
grant execute on function billing.keep_provider_setting(public.payment_provider, text, text) to service_role;

/**
 * The organization's customer at p_provider, for its billing portal (the billing-portal
 * function, as the signed-in user): owners and admins only, as for checkout (the portal shows
 * the payment method and invoices, and cancels). Errors: 42501 not an owner or admin; 22023 no
 * such provider; P0002 the organization has no customer at that provider (it never checked out
 * with it).
 * Security definer: billing.provider_customers is private.
 */
create function billing.billing_portal_customer(p_organization_id uuid, p_provider text)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_customer text;
begin
  perform billing.require_user();
  perform billing.require_role(p_organization_id, billing.managers(), 'open the billing portal');
  if p_provider is null or p_provider <> all (pg_catalog.enum_range(null::public.payment_provider)::text[]) then
    raise exception 'no payment provider named %', coalesce(p_provider, 'null') using errcode = 'invalid_parameter_value';
  end if;
  select pc.provider_customer_id into v_customer from billing.provider_customers pc
  where pc.organization_id = p_organization_id and pc.provider = p_provider::public.payment_provider;
  if v_customer is null then
    raise exception 'the organization has no % customer: it has not checked out with %', p_provider, p_provider
      using errcode = 'no_data_found';
  end if;
  return v_customer;
end;
$$;
revoke execute on function billing.billing_portal_customer(uuid, text) from public, anon;
grant execute on function billing.billing_portal_customer(uuid, text) to authenticated;

/**
 * The organization's customer at a provider, for its billing portal. Owners and admins. A thin
 * wrapper: billing.billing_portal_customer does the work and checks who is calling.
 */
create function public.get_billing_portal_customer(p_organization_id uuid, p_provider text)
returns text
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return billing.billing_portal_customer(p_organization_id, p_provider);
end;
$$;
revoke execute on function public.get_billing_portal_customer(uuid, text) from public, anon;
grant execute on function public.get_billing_portal_customer(uuid, text) to authenticated;
comment on function public.get_billing_portal_customer(uuid, text) is 'The organization''s customer at a provider, for its billing portal (owners and admins).';

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
 * Reconciliation of checkout orders, step one (service_role only; the reconcile function asks the
 * providers about what this returns). Expires open orders whose quote ran out, then hands out up
 * to p_limit orders to ask about:
 *   pending orders older than billing_settings.order_pending_reconcile_after, every run;
 *   orders closed without a payment (expired or canceled) whose quote was made in the last three
 *   days, each at most every six hours (marked in billing.order_checks as handed out), since
 *   their payment may have been made before the close and its webhook lost.
 * Round by round: every organization's oldest due order, then every organization's second, so
 * one organization's many orders cannot crowd out another's. Orders of provider subscriptions are
 * reconciled with their subscription, not here.
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
  v_closed_window constant interval := interval '3 days';
  v_closed_every constant interval := interval '6 hours';
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  select s.order_pending_reconcile_after into v_after from public.billing_settings s;
  v_after := coalesce(v_after, interval '15 minutes');

  update public.orders o set status = 'expired'
  where o.status in ('created', 'pending') and o.expires_at < v_now;

  return query
    with due as (
      select o.id, o.provider, o.receipt, o.provider_order_id, o.amount_cents, o.currency, o.created_at,
             o.status = 'pending' as open,
             pg_catalog.row_number() over (partition by o.organization_id order by o.created_at) as round
      from public.orders o
      left join billing.order_checks c on c.order_id = o.id
      where o.provider_subscription_id is null
        and (o.provider = 'payu' or o.provider_order_id is not null)
        and ((o.status = 'pending' and o.created_at <= v_now - v_after)
             or (o.status in ('expired', 'canceled') and o.paid_at is null
                 and coalesce(o.expires_at, o.created_at) >= v_now - v_closed_window
                 and (c.checked_at is null or c.checked_at <= v_now - v_closed_every)))
      order by round, o.created_at
      limit p_limit
    ),
    marked as (
      insert into billing.order_checks as oc (order_id, checked_at)
      select d.id, v_now from due d where not d.open
      on conflict on constraint order_checks_pkey do update set checked_at = excluded.checked_at
      returning oc.order_id
    )
    select d.id, d.provider::text, d.receipt, d.provider_order_id, d.amount_cents, d.currency, d.created_at
    from due d
    where d.open or exists (select 1 from marked m where m.order_id = d.id)
    order by d.round, d.created_at;
end;
$$;
revoke execute on function billing.reconcile_due_orders(integer) from public, anon, authenticated;
grant execute on function billing.reconcile_due_orders(integer) to service_role;

/**
 * Why a payment made at p_paid_at may not be applied to p_order as quoted, or null when it may:
 * the order was canceled (superseded by a newer checkout or plan change, or closed by the
 * checkout function), its quote expired before the payment, or, for an upgrade, the
 * subscription no longer is what the quote priced (another plan or period end, no longer
 * running, or the quoted period over). Renewal orders record a charge the provider made: always
 * fine.
 */
create function billing.order_quote_problem(p_order public.orders, p_paid_at timestamptz)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  v_sub public.subscriptions;
begin
  if p_order.kind = 'renewal' then
    return null;
  end if;
  if p_order.status = 'canceled' then
    return pg_catalog.format('order %s was canceled before it was paid (%s)', p_order.receipt,
                             coalesce(p_order.metadata ->> 'canceled_reason', 'no reason recorded'));
  end if;
  if p_order.expires_at is not null and p_paid_at > p_order.expires_at then
    return pg_catalog.format('the quote of order %s expired at %s, before the payment at %s', p_order.receipt,
                             p_order.expires_at, p_paid_at);
  end if;
  if p_order.kind = 'upgrade' then
    select * into v_sub from public.subscriptions s where s.id = p_order.subscription_id;
    if v_sub.id is null or v_sub.status not in ('active', 'past_due')
       or v_sub.plan_id is distinct from (p_order.metadata ->> 'from_plan_id')::uuid
       or v_sub.current_period_end is distinct from (p_order.metadata ->> 'quoted_period_end')::timestamptz
       or p_paid_at >= v_sub.current_period_end then
      return pg_catalog.format('upgrade order %s no longer matches the subscription it was quoted for', p_order.receipt);
    end if;
  end if;
  return null;
end;
$$;
revoke execute on function billing.order_quote_problem(public.orders, timestamptz) from public;
grant execute on function billing.order_quote_problem(public.orders, timestamptz) to service_role;

/**
 * Takes away what p_captured (a captured payment, refunded in full or charged back) bought from
 * the live subscription it was applied to (billing.period_end_without): when nothing paid is
 * left the subscription is canceled now (the free plan applies), with a history row (the
 * trigger's: actor 'provider', p_action, p_reason) and a notification of kind p_notification,
 * once per payment; when other payments' spans remain, its current_period_end moves back by the
 * unused part of the payment's span (history p_action, metadata period_end_before) and the run
 * of periods starts again at the new end (period_anchor), so the next paid period is a full one.
 * The take-back's history row names the payment (payment_event_id) and the payment whose span it
 * took (span_payment_event_id: itself, or the upgrade its value was credited into), so it is
 * taken back at most once. Returns the subscription changed, or null when nothing changed (a
 * span already used or already taken back, an operator's grant after the payment, a
 * subscription already over).
 */
create function billing.end_paid_period(
  p_captured public.payment_events,
  p_action text,
  p_reason text,
  p_notification text,
  p_event jsonb
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_end timestamptz;
  v_span_payment public.payment_events;
  v_next public.payment_events;
begin
  select s.* into v_sub from public.subscriptions s
  join public.orders o on o.subscription_id = s.id
  where o.id = p_captured.order_id and s.status in ('trialing', 'active', 'past_due')
  for update of s;
  if v_sub.id is null then
    return null;
  end if;
  v_end := billing.period_end_without(v_sub.id, p_captured.id);
  if v_end is null or v_end >= v_sub.current_period_end then
    return null;
  end if;
  -- The payment whose span is taken (the chain billing.period_end_without walks): itself, or the
  -- upgrade its unused value was credited into. Recorded, so the span is taken back once.
  v_span_payment := p_captured;
  loop
    select pe.* into v_next from public.payment_events pe
    join public.orders o on o.id = pe.order_id
    where o.subscription_id = v_sub.id and pe.status = 'captured' and not pe.needs_refund
      and (pe.occurred_at, pe.created_at) > (v_span_payment.occurred_at, v_span_payment.created_at)
    order by pe.occurred_at, pe.created_at
    limit 1;
    exit when v_next.id is null
              or not exists (select 1 from public.orders o where o.id = v_next.order_id and o.kind = 'upgrade'
                               and coalesce((o.metadata #>> '{quote,unused_cents}')::bigint, 0) > 0);
    v_span_payment := v_next;
  end loop;

  perform billing.set_change_context(p_action, 'provider',
    p_reason => p_reason,
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                                'payment_event_id', p_captured.id,
                                                'span_payment_event_id', v_span_payment.id,
                                                'period_end_before', v_sub.current_period_end),
    p_effective_at => v_now);
  if v_end > v_now then
    -- Other payments' spans remain: the period is shorter by what this payment had left, and the
    -- next paid period runs a full interval from the new end (a new anchor).
    update public.subscriptions s set current_period_end = v_end, period_anchor = v_end where s.id = v_sub.id;
    return v_sub.id;
  end if;
  update public.subscriptions s
  set status = 'canceled', cancel_at_period_end = false, canceled_at = coalesce(s.canceled_at, v_now), ended_at = v_now,
      pending_plan_id = null, pending_plan_effective_at = null
  where s.id = v_sub.id;
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  values (v_sub.organization_id, v_sub.id, p_notification::public.notification_kind,
          pg_catalog.jsonb_build_object('plan_id', v_sub.plan_id, 'ended_at', v_now, 'reason', p_reason,
                                        'provider_payment_id', p_captured.provider_payment_id),
          pg_catalog.format('%s:%s:%s', p_notification, v_sub.id, p_captured.id))
  on conflict (dedupe_key) do nothing;
  return v_sub.id;
end;
$$;
revoke execute on function billing.end_paid_period(public.payment_events, text, text, text, jsonb) from public;
grant execute on function billing.end_paid_period(public.payment_events, text, text, text, jsonb) to service_role;

/**
 * A dispute (chargeback) of a captured payment: each step is recorded once in payment_events
 * (dispute_opened, dispute_won, dispute_lost, with the dispute id) and, when
 * billing_settings.dispute_suspends_subscription, moves the subscription the payment paid for:
 * an active one goes past_due while the dispute is open ('dispute_opened'), back to active when
 * it is won while its period runs ('dispute_won'), and a lost dispute of the payment that paid
 * the current period ends it like a full refund ('dispute_lost'). Owners get a notification when
 * a dispute opens. Returns the result object.
 */
create function billing.apply_dispute(p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_kind text := p_event ->> 'kind';
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_captured public.payment_events;
  v_order public.orders;
  v_sub public.subscriptions;
  v_payment_event_id uuid;
  v_error text;
begin
  select * into v_captured from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'captured'
  order by pe.created_at
  limit 1;
  if v_captured.id is null then
    v_error := pg_catalog.format('unknown payment %s for dispute %s', coalesce(v_payment_id, '(none)'),
                                 coalesce(p_event ->> 'provider_dispute_id', '(none)'));
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error, 'last_error', v_error);
  end if;
  select * into v_order from public.orders o where o.id = v_captured.order_id for update;
  v_payment_event_id := billing.record_payment_event(
    v_captured.organization_id, v_captured.order_id, v_provider, v_payment_id,
    coalesce((p_event ->> 'amount_paise')::bigint, v_captured.amount_cents), coalesce(p_event ->> 'currency', v_captured.currency),
    v_kind::public.payment_status, null, p_event ->> 'status',
    pg_catalog.jsonb_build_object('dispute_id', p_event ->> 'provider_dispute_id', 'event_id', p_event ->> 'event_id',
                                  'event_type', p_event ->> 'event_type', 'captured_payment_event_id', v_captured.id),
    p_event_at);
  if v_payment_event_id is null then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'dispute step already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;

  -- A lost dispute of a credit pack payment takes back what remains of its credits, like a full
  -- refund (the money went back by chargeback).
  if v_kind = 'dispute_lost' and v_order.kind = 'credit_pack' then
    perform billing.revoke_pack_credits(v_captured, null, null,
      pg_catalog.format('dispute %s of payment %s lost', p_event ->> 'provider_dispute_id', v_payment_id));
  end if;
  if coalesce((select s.dispute_suspends_subscription from public.billing_settings s where s.id), true) then
    select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id for update;
    if v_kind = 'dispute_lost' then
      perform billing.end_paid_period(v_captured, 'dispute_lost',
        pg_catalog.format('dispute %s of payment %s lost', p_event ->> 'provider_dispute_id', v_payment_id),
        'subscription_disputed', p_event);
    elsif v_sub.id is not null and ((v_kind = 'dispute_opened' and v_sub.status = 'active')
          or (v_kind = 'dispute_won' and v_sub.status = 'past_due' and v_sub.current_period_end > v_now)) then
      perform billing.set_change_context(v_kind, 'provider',
        p_reason => pg_catalog.format('dispute %s of payment %s: %s', p_event ->> 'provider_dispute_id', v_payment_id,
                                      p_event ->> 'event_type'),
        p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'payment_event_id', v_payment_event_id),
        p_effective_at => v_now);
      update public.subscriptions s
      set status = case when v_kind = 'dispute_opened' then 'past_due' else 'active' end::public.subscription_status
      where s.id = v_sub.id;
    end if;
  end if;
  if v_kind = 'dispute_opened' then
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    values (v_captured.organization_id, v_order.subscription_id, 'payment_disputed',
            pg_catalog.jsonb_build_object('provider_payment_id', v_payment_id, 'dispute_id', p_event ->> 'provider_dispute_id',
                                          'amount_cents', coalesce((p_event ->> 'amount_paise')::bigint, v_captured.amount_cents),
                                          'currency', v_captured.currency),
            pg_catalog.format('payment_disputed:%s:%s', v_provider, v_payment_id))
    on conflict (dedupe_key) do nothing;
  end if;
  select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id;
  return pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id,
                                       'order_id', v_order.id, 'order_status', v_order.status,
                                       'subscription_id', v_sub.id, 'subscription_status', v_sub.status,
                                       'current_period_end', v_sub.current_period_end);
end;
$$;
revoke execute on function billing.apply_dispute(jsonb, timestamptz) from public;
grant execute on function billing.apply_dispute(jsonb, timestamptz) to service_role;

/**
 * Reconciliation of provider subscriptions (service_role only; the reconcile function asks the
 * provider about what this returns and applies the answer through billing.apply_payment_event):
 * up to p_limit live Razorpay subscriptions (trialing, active, past_due, with a
 * provider_subscription_id) that look stale:
 *   'period_ended'     current_period_end is more than billing_settings.order_pending_reconcile_after
 *                      in the past: the renewal charge, if Razorpay made one, never reached us;
 *   'state_disagrees'  the provider's stored state (billing.provider_subscription_states) means
 *                      another status than ours (billing.subscription_status_for).
 * Fairly across organizations: each organization's most overdue first, round by round. Each row
 * carries what the provider adapter needs to build events SQL can match (the receipt of the
 * subscription's first order) and the provider payment ids already captured for it, so only
 * charges we do not know are fetched. p_limit from 1 to 1000 (else 22023).
 */
create function billing.reconcile_due_subscriptions(p_limit integer default 50)
returns table (
  subscription_id uuid,
  organization_id uuid,
  provider text,
  provider_subscription_id text,
  status text,
  current_period_end timestamptz,
  provider_status text,
  receipt text,
  known_payment_ids text[],
  reason text
)
language plpgsql
stable
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

  return query
    select d.id, d.organization_id, d.provider::text, d.provider_subscription_id, d.status::text,
           d.current_period_end, d.provider_status, d.receipt, d.known_payment_ids, d.reason
    from (
      select s.id, s.organization_id, s.provider, s.provider_subscription_id, s.status, s.current_period_end,
             st.status as provider_status,
             (select o.receipt from public.orders o
              where o.provider = s.provider and o.provider_subscription_id = s.provider_subscription_id
                and o.kind = 'new'
              order by o.created_at limit 1) as receipt,
             array(select distinct pe.provider_payment_id from public.payment_events pe
                   join public.orders o on o.id = pe.order_id
                   where pe.provider = s.provider and pe.status = 'captured'
                     and pe.provider_payment_id is not null
                     and (o.subscription_id = s.id or o.provider_subscription_id = s.provider_subscription_id)
                   order by 1) as known_payment_ids,
             case when s.current_period_end <= v_now - v_after then 'period_ended' else 'state_disagrees' end as reason,
             pg_catalog.row_number() over (partition by s.organization_id order by s.current_period_end, s.id) as round
      from public.subscriptions s
      left join billing.provider_subscription_states st
        on st.provider = s.provider and st.provider_subscription_id = s.provider_subscription_id
      where s.provider_subscription_id is not null
        and s.provider <> 'manual'
        and s.status in ('trialing', 'active', 'past_due')
        and (s.current_period_end <= v_now - v_after
             or billing.subscription_status_for(st.status, s.current_period_end, v_now) is distinct from s.status
                and billing.subscription_status_for(st.status, s.current_period_end, v_now) is not null)
    ) d
    order by d.round, d.current_period_end, d.id
    limit p_limit;
end;
$$;
revoke execute on function billing.reconcile_due_subscriptions(integer) from public, anon, authenticated;
grant execute on function billing.reconcile_due_subscriptions(integer) to service_role;

/**
 * Counts p_count webhook deliveries refused for their signature (missing or wrong) against
 * p_provider in the current hour; one upsert, nothing of the requests kept. The webhook front
 * sends its refusals batched (at most one call in flight per function instance), so a flood of
 * forged deliveries costs one connection, not one write each. A name that is not a
 * public.payment_provider is not counted (returns false); p_count outside 1 to 1,000,000 raises.
 */
create function billing.record_signature_failure(p_provider text, p_count integer default 1)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if p_count is null or p_count not between 1 and 1000000 then
    raise exception 'record_signature_failure: p_count must be from 1 to 1000000, got %', p_count
      using errcode = '22023';
  end if;
  if p_provider is null or not (p_provider = any (enum_range(null::public.payment_provider)::text[])) then
    return false;
  end if;
  insert into billing.signature_failures as f (provider, hour, count, last_at)
  values (p_provider::public.payment_provider, pg_catalog.date_trunc('hour', billing.now(), 'UTC'), p_count, billing.now())
  on conflict (provider, hour) do update set count = f.count + excluded.count, last_at = excluded.last_at;
  return true;
end;
$$;
revoke execute on function billing.record_signature_failure(text, integer) from public, anon, authenticated;
grant execute on function billing.record_signature_failure(text, integer) to service_role;

/**
 * What can still be refunded of a captured payment, in paise (never below 0): the amount
 * captured minus
 *   refunds recorded (payment_events 'refunded' of the same provider payment),
 *   lost disputes (payment_events 'dispute_lost': the money went back by chargeback),
 *   refund actions of the payment not yet done (billing.provider_actions 'pending' or 'running'),
 *   refund actions the provider accepted as pending (succeeded, with the provider's refund id
 *   and a status other than 'processed'),
 * each only while its refund is not recorded (under the provider's refund id, or matched to the
 * action: payment_events details.action_id). A refund action whose outcome is unknown stays
 * pending (billing.complete_provider_action), so it counts until someone knows.
 * p_except_action_id leaves one refund action out: the one whose refund is being recorded.
 */
create function billing.refundable_paise(p_captured public.payment_events, p_except_action_id uuid default null)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_settled bigint;
  v_in_flight bigint;
begin
  if p_captured.id is null or p_captured.status is distinct from 'captured' then
    return 0;
  end if;
  select coalesce(sum(pe.amount_cents), 0) into v_settled
  from public.payment_events pe
  where pe.provider = p_captured.provider and pe.provider_payment_id = p_captured.provider_payment_id
    and pe.status in ('refunded', 'dispute_lost');
  select coalesce(sum((a.payload ->> 'amount_paise')::bigint), 0) into v_in_flight
  from billing.provider_actions a
  where a.payment_event_id = p_captured.id and a.kind = 'refund'
    and a.id is distinct from p_except_action_id
    and (a.state in ('pending', 'running')
         or (a.state = 'succeeded' and a.result ->> 'provider_refund_id' is not null
             and a.result ->> 'status' is distinct from 'processed'))
    -- Its refund recorded already (under the provider's id, or matched to the action): settled.
    -- (The payment's refund rows only: the provider payment index finds them.)
    and not exists (select 1 from public.payment_events r
                    where r.provider = p_captured.provider and r.provider_payment_id = p_captured.provider_payment_id
                      and r.status = 'refunded'
                      and (r.details ->> 'refund_id' = a.result ->> 'provider_refund_id'
                           or r.details ->> 'action_id' = a.id::text));
  return greatest(p_captured.amount_cents - v_settled - v_in_flight, 0);
end;
$$;
revoke execute on function billing.refundable_paise(public.payment_events, uuid) from public, anon, authenticated;
grant execute on function billing.refundable_paise(public.payment_events, uuid) to service_role;

/**
 * A provider subscription (Razorpay's, Stripe's: any p_provider_subscription_id) whose charge
 * bought nothing here (p_reason) is cancelled at the provider now, through the outbox, when it
 * backs no live subscription here (none, or a cancelled or expired one: its debits would be
 * refunded every period) and the provider has not ended it (billing.provider_subscription_states).
 * Queued once: nothing when a cancel-now of it is pending, running or done; again when every
 * earlier cancel-now failed for good. Returns the action's id, or null when nothing was queued
 * (also for a payment of no provider subscription).
 */
create function billing.stop_unbacked_mandate(
  p_organization_id uuid,
  p_provider public.payment_provider,
  p_provider_subscription_id text,
  p_reason text,
  p_subscription_id uuid default null
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_failed integer;
begin
  if p_provider is null or p_provider = 'manual' or p_provider_subscription_id is null
     or exists (select 1 from public.subscriptions s
                where s.provider = p_provider and s.provider_subscription_id = p_provider_subscription_id
                  and s.status in ('pending_payment', 'trialing', 'active', 'past_due'))
     or exists (select 1 from billing.provider_subscription_states st
                where st.provider = p_provider and st.provider_subscription_id = p_provider_subscription_id
                  and st.status in ('cancelled', 'completed', 'expired'))
     or exists (select 1 from billing.provider_actions a
                where a.provider = p_provider and a.kind = 'cancel'
                  and a.target ->> 'provider_subscription_id' = p_provider_subscription_id
                  and a.payload ->> 'at_cycle_end' = 'false' and a.state <> 'failed') then
    return null;
  end if;
  select count(*) into v_failed from billing.provider_actions a
  where a.provider = p_provider and a.kind = 'cancel'
    and a.target ->> 'provider_subscription_id' = p_provider_subscription_id
    and a.payload ->> 'at_cycle_end' = 'false' and a.state = 'failed';
  return billing.queue_provider_action(
    p_organization_id, p_provider, 'cancel',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_provider_subscription_id),
    pg_catalog.jsonb_build_object('at_cycle_end', false),
    pg_catalog.format('cancel:%s:now:unbacked:%s', p_provider_subscription_id, v_failed),
    'system', pg_catalog.format('its charges buy nothing here: %s', p_reason), p_subscription_id);
end;
$$;
revoke execute on function billing.stop_unbacked_mandate(uuid, public.payment_provider, text, text, uuid) from public, anon, authenticated;
grant execute on function billing.stop_unbacked_mandate(uuid, public.payment_provider, text, text, uuid) to service_role;

/**
 * The period end of subscription p_subscription_id once what captured payment p_payment_event_id
 * bought is taken away (its full refund, or a lost dispute); null when nothing changes. A value
 * at or before now means nothing paid is left: access ends now.
 * What a payment bought is its span, [period_start, period_end) of the history row its
 * application wrote (billing.extend_subscription_for_payment: metadata payment_event_id,
 * period_start, period_end). The part of the span not yet used, from the later of its start and
 * now to its end, is taken off the current period end, so the spans after it (other payments)
 * move up: a span wholly in the future shortens the period by its length (an unused early
 * renewal), the current span ends access now when it is the last one and otherwise lets the
 * next paid span start now, a span already used changes nothing (unless it is the last one and
 * the period is over: access ends now). A payment whose unused value was credited into an
 * upgrade (an upgrade order whose quote credited unused time: the payment applied before it)
 * bought that upgrade's span, directly or through a chain of upgrades.
 * A span is taken back at most once: nothing changes when a take-back (a history row 'refunded'
 * or 'dispute_lost' with metadata period_end_before, written by billing.end_paid_period) already
 * names this payment or the payment carrying its value (metadata payment_event_id,
 * span_payment_event_id), so a lost dispute after a full refund of the same payment takes nothing
 * more. A span that a later plan change replaced (a 'plan_changed' span row whose period_start
 * falls inside it and is not its end: the new plan's period started then) is no longer in the
 * current period: nothing to take back.
 * Nothing changes when an operator granted a plan after the payment ('plan_granted'): the period
 * stands on the grant, not on any payment. An operator's extension after the payment keeps its
 * own days (they are part of the current period end the unused span is taken off), and the
 * payment's unused span is still taken back. A payment with no span (it bought nothing, or was
 * applied before spans were recorded) ends access now only when it is the latest payment applied
 * to the subscription.
 */
create function billing.period_end_without(p_subscription_id uuid, p_payment_event_id uuid)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_payment public.payment_events;
  v_next public.payment_events;
  v_next_order public.orders;
  v_span public.subscription_history;
  v_start timestamptz;
  v_end timestamptz;
begin
  select * into v_sub from public.subscriptions s where s.id = p_subscription_id;
  select * into v_payment from public.payment_events pe
  where pe.id = p_payment_event_id and pe.status = 'captured' and not pe.needs_refund;
  if v_sub.id is null or v_payment.id is null then
    return null;
  end if;
  -- The payment carrying its value: itself, or the upgrade its unused value was credited into.
  loop
    select pe.* into v_next from public.payment_events pe
    join public.orders o on o.id = pe.order_id
    where o.subscription_id = p_subscription_id and pe.status = 'captured' and not pe.needs_refund
      and (pe.occurred_at, pe.created_at) > (v_payment.occurred_at, v_payment.created_at)
    order by pe.occurred_at, pe.created_at
    limit 1;
    exit when v_next.id is null;
    select * into v_next_order from public.orders o where o.id = v_next.order_id;
    exit when v_next_order.kind is distinct from 'upgrade'
              or coalesce((v_next_order.metadata #>> '{quote,unused_cents}')::bigint, 0) <= 0;
    v_payment := v_next;
  end loop;

  select h.* into v_span from public.subscription_history h
  where h.subscription_id = p_subscription_id and h.metadata ->> 'payment_event_id' = v_payment.id::text
    and h.metadata ? 'period_start' and h.metadata ? 'period_end'
  order by h.effective_at desc, h.created_at desc
  limit 1;
  -- Taken back already (a full refund, then a lost dispute of the same payment): at most once.
  if exists (select 1 from public.subscription_history h
             where h.subscription_id = p_subscription_id and h.action in ('refunded', 'dispute_lost')
               and h.metadata ? 'period_end_before'
               and (h.metadata ->> 'payment_event_id' in (p_payment_event_id::text, v_payment.id::text)
                    or h.metadata ->> 'span_payment_event_id' = v_payment.id::text)) then
    return null;
  end if;
  -- An operator's grant after the payment: the period stands on the grant, not on a payment. (An
  -- extension keeps its days: the unused span is taken off the extended end below.)
  if exists (select 1 from public.subscription_history h
             where h.subscription_id = p_subscription_id and h.actor_kind = 'operator'
               and h.action = 'plan_granted'
               and h.effective_at >= coalesce(v_span.effective_at, v_payment.occurred_at)) then
    return null;
  end if;
  if v_span.id is null then
    return case when v_next.id is null then v_now end;
  end if;
  v_start := (v_span.metadata ->> 'period_start')::timestamptz;
  v_end := (v_span.metadata ->> 'period_end')::timestamptz;
  -- Replaced by a later plan change that started inside the span: no longer in the current period.
  if exists (select 1 from public.subscription_history h
             where h.subscription_id = p_subscription_id and h.action = 'plan_changed'
               and h.metadata ? 'period_start'
               and (h.effective_at, h.created_at) > (v_span.effective_at, v_span.created_at)
               and (h.metadata ->> 'period_start')::timestamptz >= v_start
               and (h.metadata ->> 'period_start')::timestamptz < v_end) then
    return null;
  end if;
  if v_end <= v_now then
    -- Used up already: it matters only when nothing was paid after it (the period is over).
    return case when v_end >= v_sub.current_period_end then v_now end;
  end if;
  return v_sub.current_period_end - (v_end - greatest(v_start, v_now));
end;
$$;
revoke execute on function billing.period_end_without(uuid, uuid) from public, anon, authenticated;
grant execute on function billing.period_end_without(uuid, uuid) to service_role;

/**
 * Reconciliation of refunds, step one (service_role only; the reconcile function asks the
 * providers about what this returns): up to p_limit captured provider payments of the last
 * p_window whose refunds were never asked about, or not for p_every, never-asked first, then the
 * longest ago. Each payment handed out is marked asked now (billing.refund_checks), so the next
 * run moves on to others. Returns the payment, our order's references and the provider refund ids
 * already recorded for it as refunds (a refund recorded as a mismatch is not known: it is asked
 * about again and recorded once it fits).
 */
create function billing.reconcile_due_refunds(
  p_limit integer default 50,
  p_window interval default interval '30 days',
  p_every interval default interval '6 hours'
)
returns table (
  payment_event_id uuid,
  provider text,
  provider_payment_id text,
  receipt text,
  provider_order_id text,
  provider_subscription_id text,
  known_refund_ids text[]
)
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  if p_window is null or p_window <= interval '0' or p_every is null or p_every < interval '0' then
    raise exception 'p_window must be positive and p_every not negative' using errcode = 'invalid_parameter_value';
  end if;
  return query
    with due as (
      select pe.id, pe.provider, pe.provider_payment_id, pe.order_id
      from public.payment_events pe
      left join billing.refund_checks c on c.payment_event_id = pe.id
      where pe.status = 'captured'
        and pe.provider <> 'manual'
        and pe.occurred_at >= v_now - p_window
        and (c.checked_at is null or c.checked_at <= v_now - p_every)
      order by c.checked_at nulls first, pe.occurred_at desc
      limit p_limit
    ),
    marked as (
      insert into billing.refund_checks as rc (payment_event_id, checked_at)
      select d.id, v_now from due d
      on conflict on constraint refund_checks_pkey do update set checked_at = excluded.checked_at
      returning rc.payment_event_id
    )
    select d.id, d.provider::text, d.provider_payment_id, o.receipt, o.provider_order_id, o.provider_subscription_id,
           coalesce((select pg_catalog.array_agg(distinct r.details ->> 'refund_id')
                     from public.payment_events r
                     where r.provider = d.provider and r.provider_payment_id = d.provider_payment_id
                       and r.status = 'refunded' and r.details ->> 'refund_id' is not null),
                    '{}'::text[])
    from due d
    join marked m on m.payment_event_id = d.id
    left join public.orders o on o.id = d.order_id;
end;
$$;
revoke execute on function billing.reconcile_due_refunds(integer, interval, interval) from public, anon, authenticated;
grant execute on function billing.reconcile_due_refunds(integer, interval, interval) to service_role;

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
create function public.create_checkout_order(
  p_organization_id uuid,
  p_plan_code text,
  p_provider text,
  p_discount_code text default null,
  p_currency text default null
)
returns setof billing.checkout_order
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return query select * from billing.create_checkout_order(p_organization_id, p_plan_code, p_provider, p_discount_code, p_currency);
end;
$$;
revoke execute on function public.create_checkout_order(uuid, text, text, text, text) from public, anon;
grant execute on function public.create_checkout_order(uuid, text, text, text, text) to authenticated;
comment on function public.create_checkout_order(uuid, text, text, text, text) is 'Starts a checkout: the signed-in owner or admin of the organization buys an active paid plan through a provider, with an optional discount code and currency (a price of public.plan_prices; null: the plan''s own).';
