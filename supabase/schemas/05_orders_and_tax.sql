-- =================================================================================================
-- supabill: orders and tax: checkout orders, their GST quote, and the payment events log
--
-- An order is what we expect a provider to collect; every provider payment is matched to one and
-- its amount and currency checked. The tax is fixed on the ORDER when it is created (the trigger
-- billing.quote_order_tax, whatever code inserts it: checkout, change_plan, renewal orders), so
-- the amount charged and the invoice total are the same number, always. payment_events is the
-- append-only log of what providers told us about payments, written only through
-- billing.record_payment_event.
--
-- Tax is rounded once per line and per tax component, half up:
--   tax-exclusive prices (the default): taxable = the price;
--     each component (CGST, SGST or IGST) = round_half_up(taxable * component_rate_bp / 10000);
--     total payable = taxable + components.
--   tax-inclusive prices (billing_settings.prices_include_tax): the price is the gross;
--     each component = round_half_up(gross * component_rate_bp / (10000 + gst_rate_bp));
--     taxable = gross - components, total payable = the price.
--   Razorpay recurring orders are always tax-inclusive: Razorpay charges the amount of its plan
--     (the plan's price_cents) whoever the buyer is, so the GST is carved out of that amount.
--   CGST and SGST are each half the GST rate, so they are always equal.
--   Exports are zero-rated (IGST at 0 %, taxable = total = the price): a buyer outside India
--     paying in a foreign currency, or one whose exports an operator verified
--     (organizations.exports_verified). Any other buyer outside India is taxed at the seller's
--     location.
--   Until the seller's state is set (billing_settings.seller_state_code or seller_gstin) no GST is
--     charged (the order has no supply type) and such an order gets no tax invoice.
--
-- An order holds only while its quote holds: it expires (trigger orders_set_expiry:
-- billing_settings.upgrade_quote_ttl for upgrades, checkout_order_ttl for checkouts), a new
-- checkout or plan change supersedes the organization's open orders (trigger
-- orders_supersede_open), and at most billing_settings.max_open_orders are open at once. A
-- captured payment that buys nothing is recorded with payment_events.needs_refund, which queues
-- its refund at the provider (trigger payment_events_queue_refund, 08_provider_actions).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- The closed sets of orders and payments (payment_provider, order_kind, order_status,
-- payment_status) are foundation types.

/**
 * What a browser needs to pay an order, as create_checkout_order and prepare_order_checkout
 * answer it (billing.checkout_answer builds it): the order, its plan, the Razorpay plan and
 * charge count of a recurring checkout, and the buyer's email and name for the provider's form.
 */
create type billing.checkout_order as (
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
);

grant usage on type billing.checkout_order to authenticated, service_role;

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- orders
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

/**
 * AFTER INSERT on orders (new, upgrade and credit pack orders a user asked for: checkout and
 * change_plan set created_by; an operator's order does not): the new order supersedes the
 * organization's other open orders of its kind (a plan order the other plan orders, a credit pack
 * order the other credit pack orders), which are canceled (a payment that still arrives for one
 * is recorded for refund, never applied). Orders with a payment in flight (a payment event
 * recorded, or locked by the payment path right now) are left alone. Then at most
 * billing_settings.max_open_orders, of all three kinds, may stay open (55000 otherwise, hint
 * 'too_many_open_orders').
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
    where x.organization_id = new.organization_id and x.id <> new.id
      and (x.kind = 'credit_pack') = (new.kind = 'credit_pack') and x.kind in ('new', 'upgrade', 'credit_pack')
      and x.status in ('created', 'pending')
      and not exists (select 1 from public.payment_events pe where pe.order_id = x.id)
    for update skip locked);

  select count(*) into v_open from public.orders o
  where o.organization_id = new.organization_id and o.kind in ('new', 'upgrade', 'credit_pack')
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

/**
 * A checkout intent: what we expect a provider to collect. `receipt` is our reference (PayU
 * `txnid`, Razorpay `receipt`); `provider_order_id` is the provider's (Razorpay `order_...`).
 * Every provider payment is matched to an order and its amount and currency checked.
 * provider_subscription_id: the Razorpay subscription (`sub_...`) a recurring checkout created;
 * the first order of a provider subscription (kind 'new') owns it, and renewal orders made for
 * later charges carry it too. The GST quote, set once on insert by billing.quote_order_tax:
 * taxable_cents (the taxable value), gst_rate_bp, supply_type (intra_state, inter_state or export;
 * null when the seller's state was not set, then no GST is charged), place_of_supply_state_code
 * and prices_include_tax (whether the price was the gross). amount_cents is the total payable.
 * An order buys a plan (plan_id) or, kind 'credit_pack', a credit pack (credit_pack_id; the
 * credits and validity it was sold with are in metadata: `credits`, `credit_validity`).
 */
create table public.orders (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  plan_id uuid references public.billing_plans (id) on delete restrict,
  subscription_id uuid references public.subscriptions (id) on delete set null,
  provider public.payment_provider not null,
  receipt text not null unique
    default ('ord_' || left(replace(gen_random_uuid()::text, '-', ''), 20))
    check (receipt ~ '^[A-Za-z0-9_-]{1,40}$'),
  provider_order_id text,
  kind public.order_kind not null default 'new',
  amount_cents bigint not null check (amount_cents > 0),
  currency text not null default 'INR' check (currency ~ '^[A-Z]{3}$'),
  status public.order_status not null default 'created',
  created_by uuid references auth.users (id) on delete set null,
  paid_at timestamptz,
  expires_at timestamptz,
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  provider_subscription_id text
    check (provider_subscription_id is null or length(provider_subscription_id) between 1 and 100),
  taxable_cents bigint check (taxable_cents >= 0),
  gst_rate_bp integer check (gst_rate_bp between 0 and 2800),
  supply_type public.supply_type,
  place_of_supply_state_code text check (place_of_supply_state_code ~ '^[0-9]{2}$'),
  prices_include_tax boolean,
  credit_pack_id uuid references public.credit_packs (id) on delete restrict,
  constraint orders_taxable_within_amount check (taxable_cents <= amount_cents),
  constraint orders_provider_order_unique unique (provider, provider_order_id),
  constraint orders_paid_at_when_paid check (status <> 'paid' or paid_at is not null),
  constraint orders_buys_a_plan_or_a_pack check (
    case when kind = 'credit_pack' then credit_pack_id is not null and plan_id is null
         else credit_pack_id is null and plan_id is not null end)
);

comment on table public.orders is 'A checkout intent: what a provider is expected to collect for a plan or a credit pack, with its GST quote.';

/** Foreign keys; an organization's orders in time order; open orders to reconcile. */
create index orders_organization_id_idx on public.orders (organization_id, created_at);

create index orders_plan_id_idx on public.orders (plan_id);

create index orders_credit_pack_id_idx on public.orders (credit_pack_id) where credit_pack_id is not null;

create index orders_subscription_id_idx on public.orders (subscription_id);

create index orders_created_by_idx on public.orders (created_by);

create index orders_status_created_at_idx on public.orders (status, created_at)
  where status in ('created', 'pending');
/**
 * The orders closed without a payment, by when their quote ran out (billing.reconcile_due_orders
 * reads the last three days of them): an index scan, however many orders closed long ago.
 */
create index orders_closed_unpaid_idx on public.orders ((coalesce(expires_at, created_at)))
  where status in ('expired', 'canceled') and paid_at is null;

/** One checkout order per provider subscription; renewal orders of a provider subscription. */
create unique index orders_provider_subscription_new_idx on public.orders (provider, provider_subscription_id)
  where kind = 'new' and provider_subscription_id is not null;

create index orders_provider_subscription_id_idx on public.orders (provider_subscription_id)
  where provider_subscription_id is not null;

grant select on public.orders to authenticated;

grant select, insert, update, delete on public.orders to service_role;

alter table public.orders enable row level security;

create trigger orders_touch_updated_at
  before update on public.orders
  for each row execute function billing.touch_updated_at();

-- -------------------------------------------------------------------------------------------------
-- The tax quote of an order (the trigger functions orders attach)
-- -------------------------------------------------------------------------------------------------

/**
 * The tax on one line (see the rounding rule in the banner): p_amount_cents is the taxable value
 * when p_includes_tax is false and the gross when it is true. supply_type export is zero-rated.
 */
create function billing.compute_line_tax(
  p_amount_cents bigint,
  p_gst_rate_bp integer,
  p_supply_type text,
  p_includes_tax boolean,
  out taxable_cents bigint,
  out cgst_rate_bp integer,
  out sgst_rate_bp integer,
  out igst_rate_bp integer,
  out cgst_cents bigint,
  out sgst_cents bigint,
  out igst_cents bigint,
  out total_cents bigint
)
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_denominator numeric := case when p_includes_tax then 10000 + p_gst_rate_bp else 10000 end;
begin
  if p_amount_cents is null or p_amount_cents < 0 then
    raise exception 'a line amount must be a non-negative number of paise, got %', p_amount_cents
      using errcode = 'invalid_parameter_value';
  end if;
  cgst_rate_bp := 0;
  sgst_rate_bp := 0;
  igst_rate_bp := 0;
  cgst_cents := 0;
  sgst_cents := 0;
  igst_cents := 0;
  if p_supply_type = 'intra_state' then
    cgst_rate_bp := p_gst_rate_bp / 2;
    sgst_rate_bp := p_gst_rate_bp / 2;
    cgst_cents := billing.div_round_half_up(p_amount_cents::numeric * cgst_rate_bp, v_denominator);
    sgst_cents := billing.div_round_half_up(p_amount_cents::numeric * sgst_rate_bp, v_denominator);
  elsif p_supply_type = 'inter_state' then
    igst_rate_bp := p_gst_rate_bp;
    igst_cents := billing.div_round_half_up(p_amount_cents::numeric * igst_rate_bp, v_denominator);
  elsif p_supply_type is distinct from 'export' then
    raise exception 'unknown supply type %', p_supply_type using errcode = 'invalid_parameter_value';
  end if;

  if p_includes_tax then
    taxable_cents := p_amount_cents - cgst_cents - sgst_cents - igst_cents;
    total_cents := p_amount_cents;
  else
    taxable_cents := p_amount_cents;
    total_cents := p_amount_cents + cgst_cents + sgst_cents + igst_cents;
  end if;
end;
$$;
revoke execute on function billing.compute_line_tax(bigint, integer, text, boolean) from public;
grant execute on function billing.compute_line_tax(bigint, integer, text, boolean) to service_role;

/**
 * BEFORE INSERT on orders: the inserted amount_cents is the price (tax-exclusive, or the gross
 * when billing_settings.prices_include_tax, or for a Razorpay recurring order: one with a provider
 * subscription or metadata.recurring = true); stores the quote (billing.order_tax_quote, in the
 * order's currency) and sets amount_cents to the total payable. Whatever code inserts the order
 * (checkout, change_plan, renewals, operators) gets the same tax.
 */
create function billing.quote_order_tax()
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
revoke execute on function billing.quote_order_tax() from public;

create trigger orders_quote_tax
  before insert on public.orders
  for each row execute function billing.quote_order_tax();

create trigger orders_set_expiry
  before insert on public.orders
  for each row execute function billing.set_order_expiry();

create trigger orders_supersede_open
  after insert on public.orders
  for each row when (new.kind in ('new', 'upgrade', 'credit_pack') and new.created_by is not null)
  execute function billing.supersede_open_orders();

-- -------------------------------------------------------------------------------------------------
-- payment_events (immutable)
-- -------------------------------------------------------------------------------------------------

/**
 * AFTER INSERT on payment_events: a captured payment recorded with needs_refund (it bought
 * nothing) queues its refund at the provider, once per payment, for what can still be refunded
 * (billing.refundable_paise; nothing when that is 0).
 */
create function billing.queue_needs_refund()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_amount bigint := billing.refundable_paise(new);
begin
  if v_amount <= 0 then
    return null;
  end if;
  perform billing.queue_provider_action(
    new.organization_id, new.provider, 'refund',
    pg_catalog.jsonb_build_object('provider_payment_id', new.provider_payment_id,
                                  'order_ref', (select o.receipt from public.orders o where o.id = new.order_id)),
    pg_catalog.jsonb_build_object('amount_paise', v_amount, 'currency', new.currency,
                                  'refund_id', 'rf_' || pg_catalog.replace(new.id::text, '-', ''),
                                  'reason', coalesce(new.details ->> 'not_applied', 'the payment bought nothing')),
    pg_catalog.format('refund:%s', new.id),
    'system', coalesce(new.details ->> 'not_applied', 'the payment bought nothing'), null, new.id);
  return null;
end;
$$;
revoke execute on function billing.queue_needs_refund() from public;

/**
 * Append-only log of what providers told us about payments: one row per observed state of a
 * provider payment (authorized, captured, failed, refunded) or a mismatch against our order.
 * order_id is null only when a payment could not be matched to any order. UPDATE, DELETE and
 * TRUNCATE raise.
 */
create table public.payment_events (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete restrict,
  order_id uuid references public.orders (id) on delete restrict,
  provider public.payment_provider not null,
  provider_payment_id text not null check (length(provider_payment_id) between 1 and 200),
  amount_cents bigint not null check (amount_cents >= 0),
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  status public.payment_status not null,
  method text,
  error_reason text,
  details jsonb not null default '{}'::jsonb check (jsonb_typeof(details) = 'object'),
  occurred_at timestamptz not null default billing.now(),
  created_at timestamptz not null default now(),
  needs_refund boolean not null default false
);

comment on table public.payment_events is 'Append-only log of what providers told us about payments (authorized, captured, failed, refunded, mismatch).';

/** Foreign keys; an organization's payments in time order; a provider payment's events. */
create index payment_events_organization_id_idx on public.payment_events (organization_id, occurred_at);

create index payment_events_order_id_idx on public.payment_events (order_id);

create index payment_events_provider_payment_idx on public.payment_events (provider, provider_payment_id);

/**
 * A provider payment is recorded once per state (authorized, captured, failed, mismatch): the
 * webhook, the Checkout verification, PayU's return POST and reconciliation all race to this row.
 * A refund is recorded once by its provider refund id, applied ('refunded') or held for an
 * operator ('mismatch': more than the payment had left); several refunds of one payment each
 * have their own id.
 */
create unique index payment_events_payment_status_idx on public.payment_events (provider, provider_payment_id, status)
  where status <> 'refunded' and not (status = 'mismatch' and details ? 'refund_id');

create unique index payment_events_refund_idx on public.payment_events (provider, (details ->> 'refund_id'))
  where status = 'refunded' or (status = 'mismatch' and details ? 'refund_id');

grant select on public.payment_events to authenticated;

grant select, insert, update, delete on public.payment_events to service_role;

alter table public.payment_events enable row level security;

create trigger payment_events_immutable
  before update or delete on public.payment_events
  for each row execute function billing.reject_change();

create trigger payment_events_no_truncate
  before truncate on public.payment_events
  for each statement execute function billing.reject_change();

comment on column public.payment_events.needs_refund is
  'A captured payment that bought nothing (a stale or superseded quote, an order already paid, an ended subscription): to refund.';

/** Payments waiting for a refund, for operators and the provider actions. */
create index payment_events_needs_refund_idx on public.payment_events (created_at) where needs_refund;

create trigger payment_events_queue_refund
  after insert on public.payment_events
  for each row when (new.needs_refund and new.status = 'captured' and new.provider <> 'manual')
  execute function billing.queue_needs_refund();

/** The captures and refunds of one day, and the first one. */
create index payment_events_money_occurred_at_idx on public.payment_events (occurred_at)
  where status in ('captured', 'refunded');

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * The checkout answer for an order the user p_user_id is about to pay: the buyer's email is the
 * organization's billing email, else the user's; the name is the user's full name, else the
 * billing or organization name (60 characters at most, what PayU takes). A recurring Razorpay
 * checkout (p_razorpay_plan_id) charges the plan's razorpay.total_count times (default 120
 * monthly or 10 yearly charges: ten years). A credit pack order has no plan: plan_name is the
 * pack's name (what the buyer sees at the provider), plan_code and plan_interval are null.
 */
create function billing.checkout_answer(p_order public.orders, p_user_id uuid, p_razorpay_plan_id text)
returns billing.checkout_order
language plpgsql
stable
set search_path = ''
as $$
declare
  v_plan public.billing_plans;
  v_pack public.credit_packs;
  v_org public.organizations;
  v_user auth.users;
begin
  select * into v_plan from public.billing_plans p where p.id = p_order.plan_id;
  select * into v_pack from public.credit_packs cp where cp.id = p_order.credit_pack_id;
  select * into v_org from public.organizations o where o.id = p_order.organization_id;
  select * into v_user from auth.users u where u.id = p_user_id;
  return row(
    p_order.id, p_order.receipt, p_order.status::text, p_order.amount_cents, p_order.currency,
    v_plan.code, coalesce(v_plan.name, v_pack.name), v_plan.interval, p_razorpay_plan_id,
    case when p_razorpay_plan_id is not null then
      coalesce((v_plan.provider_config #>> '{razorpay,total_count}')::integer,
               case v_plan.interval when 'year' then 10 else 120 end) end,
    coalesce(v_org.billing_email, v_user.email::text),
    left(coalesce(nullif(btrim(v_user.raw_user_meta_data ->> 'full_name'), ''), v_org.billing_name, v_org.name), 60),
    p_order.expires_at)::billing.checkout_order;
end;
$$;
revoke execute on function billing.checkout_answer(public.orders, uuid, text) from public;
grant execute on function billing.checkout_answer(public.orders, uuid, text) to service_role;

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

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** orders: members read their organization's. */
create policy "Members can read their organization's orders"
  on public.orders for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/**
 * credit_packs, signed in: the packs on sale plus any retired pack one of the user's
 * organizations ordered (declared here, where orders exists; the subquery runs under orders' own
 * policy).
 */
create policy "Signed-in users can read active and ordered credit packs"
  on public.credit_packs for select to authenticated
  using (
    active
    or id in (select o.credit_pack_id from public.orders o where o.credit_pack_id is not null)
  );

/** payment_events: members read their organization's. */
create policy "Members can read their organization's payment events"
  on public.payment_events for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));
