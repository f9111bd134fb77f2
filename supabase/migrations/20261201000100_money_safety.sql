-- =================================================================================================
-- supabill: money safety at the borders (an upgrade of the baseline)
--
-- What a payment may buy, and what ends it again:
--   * An order holds only while its quote holds: it expires (billing_settings.upgrade_quote_ttl
--     for upgrades, default 30 minutes; checkout_order_ttl for checkouts, default 24 hours), a
--     new checkout or plan change supersedes the organization's open orders, and at most
--     billing_settings.max_open_orders are open at once (default 3). A payment captured for an
--     order that was superseded, canceled or expired when it was paid, or whose upgrade quote no
--     longer matches the subscription, is recorded and never applied: its payment_events row
--     has needs_refund (for owners, operators and the provider actions to come). So is every
--     other captured payment that buys nothing (a second payment of a paid order, a payment
--     after the subscription ended).
--   * INR supplies are taxed: an order is an export (zero-rated) only when it is paid in a
--     foreign currency, or an operator verified the organization's exports
--     (organizations.exports_verified). Otherwise a buyer outside India is taxed at the
--     seller's location.
--   * A full refund of the payment that paid the current period ends it (the free plan applies,
--     with history and a notification) when billing_settings.full_refund_ends_period (default
--     on); a partial refund keeps it. Disputes are recorded (payment_events dispute_opened,
--     dispute_won, dispute_lost) and, when billing_settings.dispute_suspends_subscription
--     (default on), move the subscription: past_due while open, back to active when won, ended
--     when lost; each step in subscription_history with actor 'provider'.
--   * Periods keep their anchor day: subscriptions.period_anchor is where a run of periods
--     started, and each period ends a whole number of intervals after it (31 Jan, 28 Feb,
--     31 Mar, 30 Apr; a 29 February yearly subscription renews on 28 February and on 29 February
--     in leap years).
--   * Reconciliation takes due orders fairly: each organization's oldest first, round by round.
--
-- Sections, in order: 1. types; 2. tables; 3. private functions; 4. policies; 5. public
-- functions; 6. jobs and schedules.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- A dispute's steps, as payment states and as the neutral kinds the adapters send. (A new enum
-- value cannot be used in the transaction that adds it: nothing below uses them outside
-- function bodies.)
alter type public.payment_status add value if not exists 'dispute_opened';
alter type public.payment_status add value if not exists 'dispute_won';
alter type public.payment_status add value if not exists 'dispute_lost';
alter type billing.provider_event_kind add value if not exists 'dispute_opened';
alter type billing.provider_event_kind add value if not exists 'dispute_won';
alter type billing.provider_event_kind add value if not exists 'dispute_lost';


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

alter table public.billing_settings
  add column upgrade_quote_ttl interval not null default interval '30 minutes'
    check (upgrade_quote_ttl between interval '1 minute' and interval '7 days'),
  add column checkout_order_ttl interval not null default interval '24 hours'
    check (checkout_order_ttl between interval '5 minutes' and interval '30 days'),
  add column max_open_orders integer not null default 3 check (max_open_orders between 1 and 100),
  add column full_refund_ends_period boolean not null default true,
  add column dispute_suspends_subscription boolean not null default true;
comment on column public.billing_settings.upgrade_quote_ttl is 'How long an upgrade order''s prorated quote may be paid.';
comment on column public.billing_settings.checkout_order_ttl is 'How long a checkout order may be paid.';
comment on column public.billing_settings.max_open_orders is 'At most this many open (unpaid, unexpired) orders per organization.';
comment on column public.billing_settings.full_refund_ends_period is 'Whether a full refund of the payment that paid the current period ends it.';
comment on column public.billing_settings.dispute_suspends_subscription is 'Whether a dispute moves the subscription (past_due while open, ended when lost).';

alter table public.organizations
  add column exports_verified boolean not null default false;
comment on column public.organizations.exports_verified is
  'Set by an operator who verified that the buyer''s INR payments are an export of services (a foreign establishment, and RBI permission for INR): only then is an INR order zero-rated.';

alter table public.subscriptions
  add column period_anchor timestamptz;
comment on column public.subscriptions.period_anchor is
  'Where the current run of periods started: each period ends a whole number of plan intervals after it, so the day of the month never drifts.';

alter table public.payment_events
  add column needs_refund boolean not null default false;
comment on column public.payment_events.needs_refund is
  'A captured payment that bought nothing (a stale or superseded quote, an order already paid, an ended subscription): to refund.';
/** Payments waiting for a refund, for operators and the provider actions. */
create index payment_events_needs_refund_idx on public.payment_events (created_at) where needs_refund;

-- -------------------------------------------------------------------------------------------------
-- orders: an expiry and one open quote at a time
-- -------------------------------------------------------------------------------------------------

/**
 * BEFORE INSERT on orders: an order may be paid until its quote expires, at most the setting's
 * time from now (upgrade_quote_ttl for upgrades, checkout_order_ttl for new orders; an earlier
 * expiry the inserting code gives stands). Renewal orders record a charge the provider already
 * made: no expiry.
 */
create function billing.set_order_expiry()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_ttl interval;
begin
  if new.kind = 'renewal' then
    return new;
  end if;
  select case when new.kind = 'upgrade' then s.upgrade_quote_ttl else s.checkout_order_ttl end
  into v_ttl from public.billing_settings s where s.id;
  new.expires_at := least(coalesce(new.expires_at, 'infinity'::timestamptz),
                          billing.now() + coalesce(v_ttl, interval '24 hours'));
  return new;
end;
$$;
revoke execute on function billing.set_order_expiry() from public;

create trigger orders_set_expiry
  before insert on public.orders
  for each row execute function billing.set_order_expiry();

/**
 * AFTER INSERT on orders (new and upgrade orders a user asked for: checkout and change_plan set
 * created_by; an operator's order does not): the new order supersedes the organization's other
 * open orders, which are canceled (a payment that still arrives for one is recorded for
 * refund, never applied). Orders with a payment in flight (a payment event recorded, or locked
 * by the payment path right now) are left alone. Then at most billing_settings.max_open_orders
 * may stay open (55000 otherwise, hint 'too_many_open_orders').
 */
create function billing.supersede_open_orders()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_open integer;
  v_max integer;
begin
  update public.orders o
  set status = 'canceled',
      metadata = o.metadata || pg_catalog.jsonb_build_object('canceled_reason',
                   pg_catalog.format('superseded by order %s', new.receipt), 'superseded_by', new.id)
  where o.id in (
    select x.id from public.orders x
    where x.organization_id = new.organization_id and x.id <> new.id and x.kind in ('new', 'upgrade')
      and x.status in ('created', 'pending')
      and not exists (select 1 from public.payment_events pe where pe.order_id = x.id)
    for update skip locked);

  select count(*) into v_open from public.orders o
  where o.organization_id = new.organization_id and o.kind in ('new', 'upgrade')
    and o.status in ('created', 'pending') and (o.expires_at is null or o.expires_at > v_now);
  select s.max_open_orders into v_max from public.billing_settings s where s.id;
  if v_open > coalesce(v_max, 3) then
    raise exception 'too many open orders: the organization would have %, and billing_settings.max_open_orders allows %; pay or let one expire first',
      v_open, coalesce(v_max, 3)
      using errcode = 'object_not_in_prerequisite_state', hint = 'too_many_open_orders';
  end if;
  return null;
end;
$$;
revoke execute on function billing.supersede_open_orders() from public;

create trigger orders_supersede_open
  after insert on public.orders
  for each row when (new.kind in ('new', 'upgrade') and new.created_by is not null)
  execute function billing.supersede_open_orders();


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- Periods keep their anchor day
-- -------------------------------------------------------------------------------------------------

/**
 * The end of the period that starts at p_start, counted on the organization's calendar from the
 * anchor of its run of periods: the first p_anchor + n intervals (n >= 1) after p_start. Months
 * are added to the anchor, never to the last period end, so a run anchored on the 31st ends on
 * 28 February, then 31 March; a 29 February yearly run ends on 28 February, and on 29 February in
 * leap years. A missing anchor, or one after p_start, anchors the run at p_start.
 */
create function billing.period_end_after(
  p_start timestamptz,
  p_interval public.billing_interval,
  p_timezone text,
  p_anchor timestamptz
)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_anchor timestamp := (case when p_anchor is null or p_anchor > p_start then p_start else p_anchor end)
                        at time zone p_timezone;
  v_start timestamp := p_start at time zone p_timezone;
  v_step interval := billing.interval_length(p_interval);
  v_n integer;
  v_end timestamp;
begin
  -- Whole intervals from the anchor to the start, by the calendar (at most one too many or few).
  v_n := case p_interval
    when 'year' then extract(year from v_start)::integer - extract(year from v_anchor)::integer
    else (extract(year from v_start)::integer - extract(year from v_anchor)::integer) * 12
         + extract(month from v_start)::integer - extract(month from v_anchor)::integer
  end;
  v_n := greatest(v_n - 1, 1);
  loop
    v_end := v_anchor + v_n * v_step;
    exit when v_end > v_start;
    v_n := v_n + 1;
  end loop;
  return v_end at time zone p_timezone;
end;
$$;
revoke execute on function billing.period_end_after(timestamptz, public.billing_interval, text, timestamptz) from public;
grant execute on function billing.period_end_after(timestamptz, public.billing_interval, text, timestamptz) to service_role;

/** One plan interval after p_start: a run of periods anchored at p_start. */
create or replace function billing.period_end_after(
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
  return billing.period_end_after(p_start, p_interval, p_timezone, p_start);
end;
$$;

-- -------------------------------------------------------------------------------------------------
-- INR supplies are taxed
-- -------------------------------------------------------------------------------------------------

drop function billing.order_tax_quote(uuid, bigint, boolean);

/**
 * The GST quote of an order of p_price_cents in p_currency: taxable value, total payable, rate,
 * supply type and place of supply. Place of supply is the buyer's state (from its GSTIN, or its
 * state code), else the seller's location. An export of services is zero-rated only when the
 * buyer is outside India AND it pays in foreign currency (convertible foreign exchange) or an
 * operator verified its exports (organizations.exports_verified, for the cases the RBI permits
 * INR); an INR payment through an Indian gateway by a buyer who typed a foreign address is taxed
 * at the seller's location. No GST before the seller's state is set.
 */
create function billing.order_tax_quote(
  p_organization_id uuid,
  p_price_cents bigint,
  p_includes_tax boolean,
  p_currency text,
  out taxable_cents bigint,
  out amount_cents bigint,
  out gst_rate_bp integer,
  out supply_type text,
  out place_of_supply_state_code text,
  out prices_include_tax boolean
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_settings public.billing_settings%rowtype;
  v_org public.organizations%rowtype;
  v_seller_state text;
  v_tax record;
begin
  select * into v_settings from public.billing_settings s where s.id;
  select * into v_org from public.organizations o where o.id = p_organization_id;
  v_seller_state := coalesce(v_settings.seller_state_code, pg_catalog.left(v_settings.seller_gstin, 2));
  prices_include_tax := coalesce(p_includes_tax, false);
  gst_rate_bp := coalesce(v_settings.gst_rate_bp, 0);
  if v_seller_state is null then
    -- No GST registration on record: nothing is charged on top, no tax invoice can be issued.
    taxable_cents := p_price_cents;
    amount_cents := p_price_cents;
    gst_rate_bp := 0;
    return;
  end if;
  if coalesce(v_org.billing_country, 'IN') <> 'IN'
     and (p_currency is distinct from 'INR' or coalesce(v_org.exports_verified, false)) then
    supply_type := 'export';
  else
    place_of_supply_state_code := coalesce(v_org.state_code, v_seller_state);
    supply_type := case when place_of_supply_state_code = v_seller_state then 'intra_state' else 'inter_state' end;
  end if;
  select * into v_tax from billing.compute_line_tax(p_price_cents, gst_rate_bp, supply_type, prices_include_tax);
  taxable_cents := v_tax.taxable_cents;
  amount_cents := v_tax.total_cents;
end;
$$;
revoke execute on function billing.order_tax_quote(uuid, bigint, boolean, text) from public;
grant execute on function billing.order_tax_quote(uuid, bigint, boolean, text) to service_role;

/**
 * BEFORE INSERT on orders: the inserted amount_cents is the price (tax-exclusive, or the gross
 * when billing_settings.prices_include_tax, or for a Razorpay recurring order: one with a provider
 * subscription or metadata.recurring = true); stores the quote (billing.order_tax_quote, in the
 * order's currency) and sets amount_cents to the total payable. Whatever code inserts the order
 * (checkout, change_plan, renewals, operators) gets the same tax.
 */
create or replace function billing.quote_order_tax()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_quote record;
  v_includes boolean;
begin
  v_includes := coalesce((select s.prices_include_tax from public.billing_settings s where s.id), false)
    or new.provider_subscription_id is not null
    or coalesce(new.metadata ->> 'recurring', '') = 'true';
  select * into v_quote from billing.order_tax_quote(new.organization_id, new.amount_cents, v_includes, new.currency);
  new.taxable_cents := v_quote.taxable_cents;
  new.amount_cents := v_quote.amount_cents;
  new.gst_rate_bp := v_quote.gst_rate_bp;
  new.supply_type := v_quote.supply_type;
  new.place_of_supply_state_code := v_quote.place_of_supply_state_code;
  new.prices_include_tax := v_quote.prices_include_tax;
  return new;
end;
$$;

-- -------------------------------------------------------------------------------------------------
-- Payment events that bought nothing are marked for refund
-- -------------------------------------------------------------------------------------------------

drop function billing.record_payment_event(uuid, uuid, public.payment_provider, text, bigint, text,
  public.payment_status, text, text, jsonb, timestamptz);

/**
 * Records what a provider told us about a payment: the one place payment_events rows are
 * written. A state already recorded (the same provider payment and status, or the same refund
 * id) is not written again: returns null then, else the new row's id. p_needs_refund marks a
 * captured payment that bought nothing.
 */
create function billing.record_payment_event(
  p_organization_id uuid,
  p_order_id uuid,
  p_provider public.payment_provider,
  p_provider_payment_id text,
  p_amount_cents bigint,
  p_currency text,
  p_status public.payment_status,
  p_method text default null,
  p_error_reason text default null,
  p_details jsonb default '{}'::jsonb,
  p_occurred_at timestamptz default null,
  p_needs_refund boolean default false
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
begin
  insert into public.payment_events
    (organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status, method,
     error_reason, details, occurred_at, needs_refund)
  values
    (p_organization_id, p_order_id, p_provider, p_provider_payment_id, p_amount_cents, p_currency, p_status, p_method,
     p_error_reason, coalesce(p_details, '{}'::jsonb), coalesce(p_occurred_at, billing.now()),
     coalesce(p_needs_refund, false))
  on conflict do nothing
  returning id into v_id;
  return v_id;
end;
$$;
revoke execute on function billing.record_payment_event(uuid, uuid, public.payment_provider, text, bigint, text,
  public.payment_status, text, text, jsonb, timestamptz, boolean) from public;
grant execute on function billing.record_payment_event(uuid, uuid, public.payment_provider, text, bigint, text,
  public.payment_status, text, text, jsonb, timestamptz, boolean) to service_role;

-- -------------------------------------------------------------------------------------------------
-- A payment buys what was quoted, only while the quote holds
-- -------------------------------------------------------------------------------------------------

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


-- -------------------------------------------------------------------------------------------------
-- Captured payments: the quote check, needs_refund, anchored periods
-- -------------------------------------------------------------------------------------------------

/**
 * Starts or extends the subscription a captured payment of p_order pays for (locked here):
 *   none yet: a new active subscription, one period from now ('activated');
 *   on another plan: the paid plan takes effect now, for one full period ('plan_changed');
 *   on the same plan: extended from the period end while it runs or is in grace, else from now
 *   ('renewed', or 'activated' for a subscription that never had a period).
 * Periods are added on the organization's calendar from the run's anchor
 * (subscriptions.period_anchor), so the day of the month never drifts. Writes the
 * subscription_history row.
 */
create or replace function billing.extend_subscription_for_payment(
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
    v_end := billing.period_end_after(v_start, v_interval, v_timezone, v_anchor);
    insert into public.subscriptions
      (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id,
       period_anchor)
    values
      (p_order.organization_id, p_order.plan_id, 'active', v_start, v_end, p_order.provider, v_psid, v_anchor)
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
    -- Extending from the period end continues the run of periods (its anchor); anything else
    -- starts a new run at v_start.
    v_anchor := case when v_start = v_old.current_period_end then coalesce(v_old.period_anchor, v_start) else v_start end;
    v_end := billing.period_end_after(v_start, v_interval, v_timezone, v_anchor);
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


/**
 * Applies a captured payment to an order (locked by the caller): records payment_events
 * 'captured' once, marks the order paid, starts or extends the subscription
 * (billing.extend_subscription_for_payment) and issues the invoice. For a provider subscription
 * whose first order is already paid, each new charge gets a renewal order of its own (so it gets
 * its own invoice). A payment that buys nothing is only recorded, with needs_refund (result
 * 'recorded': nothing extended, no history, no invoice): its order's quote no longer held when it
 * was paid (billing.order_quote_problem), its subscription ended before it, or its one-time
 * order was already paid. Returns the result object.
 */
create or replace function billing.apply_captured_payment(p_order public.orders, p_event jsonb, p_event_at timestamptz)
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
  v_problem text;
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
  -- A payment buys what was quoted only while the quote holds (superseded, canceled, expired,
  -- or an upgrade whose subscription moved on): recorded for refund, never applied.
  v_problem := case when v_ended then pg_catalog.format('payment for an ended subscription (%s since %s): refund or reactivate',
                                                        v_sub.status, coalesce(v_sub.ended_at, v_sub.canceled_at))
                    else billing.order_quote_problem(v_order, v_paid_at) end;

  -- A later charge of a provider subscription whose first order is paid: a renewal order.
  if v_problem is null and v_order.status = 'paid' and v_psid is not null then
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
              when v_problem is not null then pg_catalog.jsonb_build_object('not_applied', v_problem)
              else '{}'::jsonb end,
    v_paid_at,
    v_problem is not null or v_order.status = 'paid');
  if v_problem is not null then
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


-- -------------------------------------------------------------------------------------------------
-- Refunds and disputes change access
-- -------------------------------------------------------------------------------------------------

/**
 * Ends the paid period that p_captured (a captured payment) paid for, when it is the latest
 * payment applied to a live subscription: the subscription is canceled now (the free plan
 * applies), with a subscription_history row (actor 'provider', p_action, p_reason) and a
 * notification of kind p_notification, once per payment. Returns the subscription ended, or null
 * when there was nothing to end (an older payment, a subscription already over).
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
  v_latest uuid;
begin
  select s.* into v_sub from public.subscriptions s
  join public.orders o on o.subscription_id = s.id
  where o.id = p_captured.order_id and s.status in ('trialing', 'active', 'past_due')
  for update of s;
  if v_sub.id is null then
    return null;
  end if;
  select pe.id into v_latest from public.payment_events pe
  join public.orders o on o.id = pe.order_id
  where o.subscription_id = v_sub.id and pe.status = 'captured' and not pe.needs_refund
  order by pe.occurred_at desc, pe.created_at desc
  limit 1;
  if v_latest is distinct from p_captured.id then
    return null;
  end if;

  update public.subscriptions s
  set status = 'canceled', cancel_at_period_end = false, canceled_at = coalesce(s.canceled_at, v_now), ended_at = v_now,
      pending_plan_id = null, pending_plan_effective_at = null
  where s.id = v_sub.id;
  perform billing.log_subscription_change(v_sub.organization_id, v_sub.id, p_action, v_sub.plan_id, v_sub.plan_id,
    v_sub.status, 'canceled', 'provider',
    p_reason => p_reason,
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                                'payment_event_id', p_captured.id),
    p_effective_at => v_now);
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  values (v_sub.organization_id, v_sub.id, p_notification,
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

  if coalesce((select s.dispute_suspends_subscription from public.billing_settings s where s.id), true) then
    select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id for update;
    if v_kind = 'dispute_lost' then
      perform billing.end_paid_period(v_captured, 'dispute_lost',
        pg_catalog.format('dispute %s of payment %s lost', p_event ->> 'provider_dispute_id', v_payment_id),
        'subscription_disputed', p_event);
    elsif v_sub.id is not null and ((v_kind = 'dispute_opened' and v_sub.status = 'active')
          or (v_kind = 'dispute_won' and v_sub.status = 'past_due' and v_sub.current_period_end > v_now)) then
      update public.subscriptions s
      set status = case when v_kind = 'dispute_opened' then 'past_due' else 'active' end::public.subscription_status
      where s.id = v_sub.id;
      perform billing.log_subscription_change(v_sub.organization_id, v_sub.id, v_kind, v_sub.plan_id, v_sub.plan_id,
        v_sub.status, case when v_kind = 'dispute_opened' then 'past_due' else 'active' end::public.subscription_status,
        'provider',
        p_reason => pg_catalog.format('dispute %s of payment %s: %s', p_event ->> 'provider_dispute_id', v_payment_id,
                                      p_event ->> 'event_type'),
        p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'payment_event_id', v_payment_event_id),
        p_effective_at => v_now);
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
 * Refunds are matched through the payment they refund: a refund of a captured payment is
 * recorded once per refund id ('refunded', with its credit note); one that does not fit what was
 * captured (no amount, another currency, refunds above the capture) is a 'mismatch', recorded
 * for an operator and never credited. A full refund of the payment that paid the current period
 * ends that period (billing.end_paid_period, when billing_settings.full_refund_ends_period); a
 * partial refund keeps it. Returns the result object; `last_error` says what was not applied.
 */
create or replace function billing.apply_refund(p_event jsonb, p_event_at timestamptz)
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
  v_ended_subscription_id uuid;
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
  -- A full refund of the payment that paid the current period takes that period away.
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
                                       'last_error', v_documents.error);
end;
$$;


/**
 * THE entry point for provider events (service_role only), as in the payments module, now also
 * dispatching the dispute kinds (dispute_opened, dispute_won, dispute_lost: billing.apply_dispute).
 */
create or replace function billing.apply_payment_event(p_event jsonb)
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
    when 'dispute_opened' then billing.apply_dispute(p_event, v_event_at)
    when 'dispute_won' then billing.apply_dispute(p_event, v_event_at)
    when 'dispute_lost' then billing.apply_dispute(p_event, v_event_at)
    else billing.apply_order_event(p_event, v_event_at)
  end;

  update billing.webhook_events w set last_error = v_result ->> 'last_error'
  where w.id = v_webhook_id and v_result ->> 'last_error' is not null;
  return pg_catalog.jsonb_strip_nulls((v_result - 'last_error')
                                      || pg_catalog.jsonb_build_object('webhook_event_id', v_webhook_id));
end;
$$;


/**
 * Reconciliation, step one (service_role only; the reconcile function asks the providers about
 * what this returns): expires checkout orders past their expires_at that are still open, then
 * returns up to p_limit open orders pending longer than
 * billing_settings.order_pending_reconcile_after, fairly across organizations (each
 * organization's oldest first, round by round). Orders with a Razorpay subscription are left to
 * its webhooks.
 */
create or replace function billing.reconcile_due_orders(p_limit integer default 50)
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

  -- Round by round: every organization's oldest due order, then every organization's second,
  -- and so on, so one organization's many open orders cannot crowd out another's.
  return query
    select d.id, d.provider::text, d.receipt, d.provider_order_id, d.amount_cents, d.currency, d.created_at
    from (
      select o.*, pg_catalog.row_number() over (partition by o.organization_id order by o.created_at) as round
      from public.orders o
      where o.status = 'pending'
        and o.created_at <= v_now - v_after
        and o.provider_subscription_id is null
        and (o.provider = 'payu' or o.provider_order_id is not null)
    ) d
    order by d.round, d.created_at
    limit p_limit;
end;
$$;



-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None new: needs_refund is a column of payment_events, which members already read.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None new.


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

-- None new: reconciliation (billing.reconcile_due_orders) keeps its schedule.
