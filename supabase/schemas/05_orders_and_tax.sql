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
--   Exports (supply type 'export'): a buyer outside India paying in a foreign currency, or one
--     whose exports an operator verified (organizations.exports_verified). An export is
--     zero-rated (IGST at 0 %, taxable = total = the price) under the letter of undertaking (LUT)
--     on record for the financial year of the order's date (billing.lut_registrations, its ARN
--     kept on the order); without one it is an export on payment of integrated tax (IGST at the
--     rate, orders.export_with_igst). Any other buyer outside India is taxed at the seller's
--     location.
--   An order in a foreign currency (a plan's public.plan_prices price) records the rupees per
--     unit of billing.exchange_rates in effect when it is created (orders.exchange_rate); none on
--     record refuses the order. The invoice states the INR value at that rate (or the provider's
--     rate at capture), as Rule 46 asks of an invoice in foreign currency.
--   Until the seller's state is set (billing_settings.seller_state_code or seller_gstin) no GST is
--     charged (the order has no supply type) and such an order gets no tax invoice.
--
-- An order holds only while its quote holds: it expires (trigger orders_set_expiry:
-- billing_settings.upgrade_quote_ttl for upgrades, checkout_order_ttl for checkouts), a new
-- checkout or plan change supersedes the organization's open orders (trigger
-- orders_supersede_open), and at most billing_settings.max_open_orders are open at once. A
-- captured payment that buys nothing is recorded with payment_events.needs_refund, which queues
-- its refund at the provider (trigger payment_events_queue_refund, 08_provider_actions).
--
-- Discount codes (billing.discount_codes, made by an operator with billing.create_discount_code)
-- are priced where the price is computed: the order's price is the list price
-- (billing.plan_price_for) less the discount (orders.list_cents, discount_cents), and the tax is
-- computed on what is left, since a discount shown on the invoice is not part of the value of
-- supply. A percentage is round_half_up(list * percent_bps / 10000), a fixed amount at most the
-- list price (a price of 0 is completed at once, without a provider payment). A code is redeemed
-- once per organization's public.discount_redemptions row: reserved when its order is created
-- (under the code's row lock, so the last redemption goes to one buyer), redeemed when the order
-- is paid, released when the order expires, fails or is superseded (trigger
-- orders_settle_discount). A repeating or forever redemption is carried to the organization's
-- later orders of a plan it covers (a renewal through checkout, an upgrade) for its periods, with
-- the terms it was redeemed with.
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
 * provider_plan_id is the recurring plan at the order's provider (Razorpay's plan id, Stripe's
 * price id; null: a one-time payment); provider_customer_id the organization's customer at that
 * provider (billing.provider_customers), null until one was made; buyer_address the
 * organization's billing address {line1, line2, city, postal_code, state_code, country} (what
 * Stripe must hold for export payments from Indian accounts); list_cents and discount_cents the
 * order's list price and discount (a provider that prices recurring charges itself needs them);
 * discount_periods the paid periods the discount covers, this one included
 * (billing.discount_periods_left: null for a forever discount or none).
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
  expires_at timestamptz,
  provider_plan_id text,
  provider_customer_id text,
  buyer_address jsonb,
  list_cents bigint,
  discount_cents bigint,
  discount_periods integer
);

grant usage on type billing.checkout_order to authenticated, service_role;

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- lut_registrations and exchange_rates (private settings of exports)
-- -------------------------------------------------------------------------------------------------

/**
 * The letter of undertaking (LUT) filed for a financial year ('2026-27': 1 April 2026 to 31 March
 * 2027, Asia/Kolkata) to supply exports without payment of integrated tax: arn is the GST ARN of
 * the filing (AA, the state code, the month and year filed, six digits, a check character: 15
 * characters). An export order is zero-rated only when a live row covers the financial year of
 * its date; the order and its invoice keep the ARN (orders.lut_arn, invoices.lut_arn), so a later
 * correction changes no issued invoice. Written only by billing.operator_record_lut, with the
 * operator's reason; a correction supersedes the row (superseded_at), which stays as the record.
 */
create table billing.lut_registrations (
  id uuid primary key default gen_random_uuid(),
  financial_year text not null constraint lut_registrations_financial_year_format
    check (financial_year ~ '^[0-9]{4}-[0-9]{2}$'
           and (pg_catalog.left(financial_year, 4)::integer + 1) % 100 = pg_catalog.right(financial_year, 2)::integer),
  arn text not null constraint lut_registrations_arn_format
    check (arn ~ '^AA(0[1-9]|[12][0-9]|3[0-8]|97|99)(0[1-9]|1[0-2])[0-9]{2}[0-9]{6}[0-9A-Z]$'),
  filed_on date,
  reason text not null check (length(btrim(reason)) between 3 and 500),
  recorded_at timestamptz not null default now(),
  superseded_at timestamptz
);

/** One live LUT per financial year (the look-up of billing.lut_for). */
create unique index lut_registrations_live_idx on billing.lut_registrations (financial_year)
  where superseded_at is null;

revoke all on billing.lut_registrations from public;

grant select, insert, update on billing.lut_registrations to service_role;

/**
 * Rupees per unit of a foreign currency (inr_per_unit: 83.25 for USD means 1 USD = 83.25 INR, so
 * a USD amount in cents times the rate is paise) from effective_from on: an order in that
 * currency records the rate of the latest row at or before its creation (billing.exchange_rate_at).
 * Rows are kept as the record of the rates used; written by billing.operator_set_exchange_rate.
 */
create table billing.exchange_rates (
  id uuid primary key default gen_random_uuid(),
  currency text not null constraint exchange_rates_currency_foreign check (currency ~ '^[A-Z]{3}$' and currency <> 'INR'),
  inr_per_unit numeric(18, 6) not null constraint exchange_rates_rate_positive check (inr_per_unit > 0),
  effective_from timestamptz not null,
  reason text not null check (length(btrim(reason)) between 3 and 500),
  recorded_at timestamptz not null default now(),
  constraint exchange_rates_one_per_moment unique (currency, effective_from)
);

revoke all on billing.exchange_rates from public;

grant select, insert on billing.exchange_rates to service_role;

-- -------------------------------------------------------------------------------------------------
-- discount_codes (private) and discount_redemptions
-- -------------------------------------------------------------------------------------------------

/**
 * A discount code: exactly one of percent_bps (1-10000, of the list price) or amount_paise (a
 * fixed amount off an INR price, at most the price); duration once (the first paid period),
 * repeating (the first `periods` paid periods) or forever; valid in [valid_from, valid_until);
 * at most max_redemptions redemptions in all and max_per_organization per organization (null: no
 * limit); plans: the plan codes it applies to (null: every plan); first_purchase_only: only for an
 * organization that never paid an order. Codes are unique whatever their case. Never listed to
 * members (schema billing); written by billing.create_discount_code and
 * billing.deactivate_discount_code. redemptions_ended_at: set when the code was ended with its
 * redemptions (billing.deactivate_discount_code(..., p_end_redemptions => true)): from then on no
 * repeating or forever redemption of it carries to a new order.
 */
create table billing.discount_codes (
  id uuid primary key default gen_random_uuid(),
  code text not null check (code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{2,39}$'),
  percent_bps integer check (percent_bps between 1 and 10000),
  amount_paise bigint check (amount_paise > 0),
  duration public.discount_duration not null default 'once',
  periods integer check (periods between 1 and 1200),
  valid_from timestamptz,
  valid_until timestamptz,
  max_redemptions integer check (max_redemptions > 0),
  max_per_organization integer default 1 check (max_per_organization > 0),
  plans text[] check (cardinality(plans) > 0),
  first_purchase_only boolean not null default false,
  active boolean not null default true,
  deactivated_at timestamptz,
  deactivated_reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  redemptions_ended_at timestamptz,
  constraint discount_codes_one_kind check ((percent_bps is null) <> (amount_paise is null)),
  constraint discount_codes_periods_when_repeating check ((duration = 'repeating') = (periods is not null)),
  constraint discount_codes_validity check (valid_until is null or valid_from is null or valid_until > valid_from)
);

comment on table billing.discount_codes is 'Discount codes: their terms, validity and limits (never listed to members).';

/** Codes are unique whatever their case. */
create unique index discount_codes_code_idx on billing.discount_codes (lower(code));

grant select, insert, update, delete on billing.discount_codes to service_role;

create trigger discount_codes_touch_updated_at
  before update on billing.discount_codes
  for each row execute function billing.touch_updated_at();

/**
 * One organization's use of a discount code: reserved with the order that first used it
 * (order_id), redeemed when that order is paid, released when it expires, fails or is superseded.
 * terms: the code's terms when it was reserved (percent_bps or amount_paise, duration, periods,
 * plans, and interval: the billing interval of the plan it was redeemed on), which its orders keep
 * whatever happens to the code later. A repeating or forever redemption also discounts the later
 * orders that carry it (orders.discount_redemption_id), on plans of that interval only.
 * Members read their organization's; written only by the checkout functions.
 */
create table public.discount_redemptions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  discount_code_id uuid not null references billing.discount_codes (id) on delete restrict,
  code text not null,
  order_id uuid not null,
  status public.discount_redemption_status not null default 'reserved',
  terms jsonb not null check (jsonb_typeof(terms) = 'object'),
  created_at timestamptz not null default billing.now(),
  redeemed_at timestamptz,
  released_at timestamptz,
  constraint discount_redemptions_order_unique unique (order_id)
);

comment on table public.discount_redemptions is 'An organization''s use of a discount code: reserved, redeemed when paid, released when its order closes unpaid.';

/** The redemptions of a code that count, and an organization's. */
create index discount_redemptions_code_idx on public.discount_redemptions (discount_code_id, status);

create index discount_redemptions_organization_id_idx on public.discount_redemptions (organization_id, created_at);

grant select on public.discount_redemptions to authenticated;

grant select, insert, update, delete on public.discount_redemptions to service_role;

alter table public.discount_redemptions enable row level security;

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
 * A discounted order: list_cents is the price before the discount (the prorated price of an
 * upgrade), discount_cents the discount, discount_redemption_id the redemption it used; the price
 * taxed is list_cents - discount_cents, and metadata.period_price_cents is what the period it buys
 * costs after the discount (proration uses it). amount_cents is 0 only for an order whose discount
 * covers its whole price, completed without a provider payment.
 * An order in a foreign currency: exchange_rate, the rupees per unit of billing.exchange_rates in
 * effect when it was created (the invoice may use the provider's rate at capture instead). An
 * export (supply_type 'export'): lut_arn, the ARN of the LUT it is zero-rated under, or
 * export_with_igst, true when no LUT covered its financial year and it pays IGST at the rate.
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
  amount_cents bigint not null check (amount_cents >= 0),
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
  list_cents bigint check (list_cents >= 0),
  discount_cents bigint not null default 0 check (discount_cents >= 0),
  discount_redemption_id uuid references public.discount_redemptions (id),
  exchange_rate numeric(18, 6) constraint orders_exchange_rate_positive check (exchange_rate > 0),
  lut_arn text,
  export_with_igst boolean not null default false,
  constraint orders_export_tax_known check (
    (supply_type is distinct from 'export' and lut_arn is null and not export_with_igst)
    or (supply_type = 'export' and not (lut_arn is not null and export_with_igst))),
  constraint orders_discount_within_list check (discount_cents = 0 or discount_cents <= list_cents),
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

create index orders_discount_redemption_id_idx on public.orders (discount_redemption_id)
  where discount_redemption_id is not null;

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

/**
 * AFTER UPDATE OF status on orders: the redemption an order reserved is redeemed when the order
 * is paid and released when it expires, fails or is canceled (superseded).
 */
create function billing.settle_discount_redemption()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status = 'paid' then
    update public.discount_redemptions r
    set status = 'redeemed', redeemed_at = billing.now()
    where r.order_id = new.id and r.status = 'reserved';
  elsif new.status in ('expired', 'failed', 'canceled') then
    update public.discount_redemptions r
    set status = 'released', released_at = billing.now()
    where r.order_id = new.id and r.status = 'reserved';
  end if;
  return null;
end;
$$;
revoke execute on function billing.settle_discount_redemption() from public;

create trigger orders_settle_discount
  after update of status on public.orders
  for each row when (old.status is distinct from new.status and new.discount_redemption_id is not null)
  execute function billing.settle_discount_redemption();

-- -------------------------------------------------------------------------------------------------
-- The tax quote of an order (the trigger functions orders attach)
-- -------------------------------------------------------------------------------------------------

/**
 * The tax on one line (see the rounding rule in the banner): p_amount_cents is the taxable value
 * when p_includes_tax is false and the gross when it is true. supply_type export is zero-rated;
 * 'export_with_igst' (an export without an LUT: not a supply type, the way its tax is computed)
 * pays IGST at the rate, as an inter-state supply does.
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
  elsif p_supply_type in ('inter_state', 'export_with_igst') then
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
 * order's currency, with the LUT of an export) and sets amount_cents to the total payable. An
 * order in a foreign currency gets the exchange rate in effect now (billing.exchange_rate_at:
 * refused, 55000 HINT exchange_rate_missing, when none is on record). Whatever code inserts the order
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
  -- An order in a foreign currency keeps the exchange rate of its day (refused without one).
  if new.currency <> 'INR' then
    new.exchange_rate := coalesce(new.exchange_rate, billing.exchange_rate_at(new.currency, billing.now()));
  end if;
  select * into v_quote from billing.order_tax_quote(new.organization_id, new.amount_cents, v_includes, new.currency);
  new.lut_arn := v_quote.lut_arn;
  new.export_with_igst := coalesce(v_quote.export_with_igst, false);
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
 * How many paid periods the discount of order p_order covers, counting p_order's own: 1 for a
 * once code, the periods a repeating redemption has left (its periods less the paid orders
 * carrying it, other than p_order), null for a forever redemption or an order without a discount.
 * A provider that charges a subscription itself (Stripe) is told this, so its coupon ends when
 * ours does.
 */
create function billing.discount_periods_left(p_order public.orders)
returns integer
language plpgsql
stable
set search_path = ''
as $$
declare
  v_terms jsonb;
begin
  if p_order.discount_redemption_id is null or p_order.discount_cents = 0 then
    return null;
  end if;
  select r.terms into v_terms from public.discount_redemptions r where r.id = p_order.discount_redemption_id;
  return case v_terms ->> 'duration'
    when 'once' then 1
    when 'repeating' then greatest((v_terms ->> 'periods')::integer
      - (select count(*)::integer from public.orders o
         where o.discount_redemption_id = p_order.discount_redemption_id and o.status = 'paid' and o.id <> p_order.id), 1)
  end;
end;
$$;
revoke execute on function billing.discount_periods_left(public.orders) from public;
grant execute on function billing.discount_periods_left(public.orders) to service_role;

/**
 * The checkout answer for an order the user p_user_id is about to pay: the buyer's email is the
 * organization's billing email, else the user's; the name is the user's full name, else the
 * billing or organization name (60 characters at most, what PayU takes). A recurring Razorpay
 * checkout (p_razorpay_plan_id) charges the plan's razorpay.total_count times (default 120
 * monthly or 10 yearly charges: ten years). A credit pack order has no plan: plan_name is the
 * pack's name (what the buyer sees at the provider), plan_code and plan_interval are null.
 * p_razorpay_plan_id is the order's recurring plan at its provider (Razorpay's plan id, Stripe's
 * price id), whichever provider: razorpay_plan_id carries it for Razorpay only.
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
    v_plan.code, coalesce(v_plan.name, v_pack.name), v_plan.interval,
    case when p_order.provider = 'razorpay' then p_razorpay_plan_id end,
    case when p_razorpay_plan_id is not null and p_order.provider = 'razorpay' then
      coalesce((v_plan.provider_config #>> '{razorpay,total_count}')::integer,
               case v_plan.interval when 'year' then 10 else 120 end) end,
    coalesce(v_org.billing_email, v_user.email::text),
    left(coalesce(nullif(btrim(v_user.raw_user_meta_data ->> 'full_name'), ''), v_org.billing_name, v_org.name), 60),
    p_order.expires_at,
    p_razorpay_plan_id,
    (select pc.provider_customer_id from billing.provider_customers pc
     where pc.organization_id = p_order.organization_id and pc.provider = p_order.provider),
    pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'name', coalesce(v_org.billing_name, v_org.name), 'line1', v_org.billing_address_line1,
      'line2', v_org.billing_address_line2, 'city', v_org.billing_city, 'postal_code', v_org.billing_postal_code,
      'state_code', v_org.state_code, 'country', v_org.billing_country)),
    coalesce(p_order.list_cents, p_order.amount_cents),
    p_order.discount_cents,
    billing.discount_periods_left(p_order))::billing.checkout_order;
end;
$$;
revoke execute on function billing.checkout_answer(public.orders, uuid, text) from public;
grant execute on function billing.checkout_answer(public.orders, uuid, text) to service_role;

/**
 * The live LUT (billing.lut_registrations) of the financial year p_at falls in (1 April to 31
 * March, Asia/Kolkata), or a row of nulls: an export of that date is zero-rated only under it.
 */
create function billing.lut_for(p_at timestamptz)
returns billing.lut_registrations
language plpgsql
stable
set search_path = ''
as $$
declare
  v_fy integer := billing.financial_year(p_at);
  v_lut billing.lut_registrations;
begin
  select * into v_lut from billing.lut_registrations l
  where l.financial_year = v_fy::text || '-' || pg_catalog.lpad(((v_fy + 1) % 100)::text, 2, '0')
    and l.superseded_at is null;
  return v_lut;
end;
$$;
revoke execute on function billing.lut_for(timestamptz) from public;
grant execute on function billing.lut_for(timestamptz) to service_role;

/**
 * Rupees per unit of p_currency at p_at: the latest billing.exchange_rates row effective at or
 * before p_at; 1 for INR. None on record: 55000 HINT 'exchange_rate_missing' (an order in that
 * currency cannot state its INR value, so it is not made).
 */
create function billing.exchange_rate_at(p_currency text, p_at timestamptz)
returns numeric
language plpgsql
stable
set search_path = ''
as $$
declare
  v_rate numeric;
begin
  if p_currency = 'INR' then
    return 1;
  end if;
  select r.inr_per_unit into v_rate from billing.exchange_rates r
  where r.currency = p_currency and r.effective_from <= p_at
  order by r.effective_from desc
  limit 1;
  if v_rate is null then
    raise exception 'no exchange rate for % on record at %: an operator records one with billing.operator_set_exchange_rate', p_currency, p_at
      using errcode = 'object_not_in_prerequisite_state', hint = 'exchange_rate_missing';
  end if;
  return v_rate;
end;
$$;
revoke execute on function billing.exchange_rate_at(text, timestamptz) from public;
grant execute on function billing.exchange_rate_at(text, timestamptz) to service_role;

/**
 * A provider collects an order in p_currency only when billing_settings.provider_currencies
 * names that currency for it (a provider not named: INR only). Refused before any provider call:
 * 55000 HINT 'currency_not_accepted'. 'manual' (an order a discount made free) takes any.
 */
create function billing.require_provider_currency(p_provider text, p_currency text)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  v_accepted jsonb;
begin
  if p_provider = 'manual' then
    return;
  end if;
  select coalesce(s.provider_currencies -> p_provider, '["INR"]'::jsonb) into v_accepted
  from public.billing_settings s where s.id;
  if not coalesce(v_accepted, '["INR"]'::jsonb) ? p_currency then
    raise exception '% does not collect % here (it collects %): choose another provider or currency', p_provider, p_currency,
      (select pg_catalog.string_agg(c, ', ') from pg_catalog.jsonb_array_elements_text(coalesce(v_accepted, '["INR"]'::jsonb)) c)
      using errcode = 'object_not_in_prerequisite_state', hint = 'currency_not_accepted';
  end if;
end;
$$;
revoke execute on function billing.require_provider_currency(text, text) from public;
grant execute on function billing.require_provider_currency(text, text) to service_role;

/**
 * The GST quote of an order of p_price_cents in p_currency: taxable value, total payable, rate,
 * supply type and place of supply. Place of supply is the buyer's state (from its GSTIN, or its
 * state code), else the seller's location. An export of services is zero-rated only when the
 * buyer is outside India AND it pays in foreign currency (convertible foreign exchange) or an
 * operator verified its exports (organizations.exports_verified, for the cases the RBI permits
 * INR); an INR payment through an Indian gateway by a buyer who typed a foreign address is taxed
 * at the seller's location. An export is zero-rated under the LUT on record for the financial
 * year of now (lut_arn, billing.lut_for), else it pays IGST at the rate (export_with_igst). No GST
 * before the seller's state is set.
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
  out prices_include_tax boolean,
  out lut_arn text,
  out export_with_igst boolean
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
  export_with_igst := false;
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
    lut_arn := (billing.lut_for(billing.now())).arn;
    export_with_igst := lut_arn is null;
  else
    place_of_supply_state_code := coalesce(v_org.state_code, v_seller_state);
    supply_type := case when place_of_supply_state_code = v_seller_state then 'intra_state' else 'inter_state' end;
  end if;
  select * into v_tax from billing.compute_line_tax(p_price_cents, gst_rate_bp,
    case when export_with_igst then 'export_with_igst' else supply_type end, prices_include_tax);
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

-- -------------------------------------------------------------------------------------------------
-- Discount codes
-- -------------------------------------------------------------------------------------------------

/**
 * Refuses a discount code: 22023 with the refusal's name in the HINT (discount_invalid,
 * discount_expired, discount_exhausted, discount_not_applicable, discount_already_used), which
 * checkout answers as its error code.
 */
create function billing.refuse_discount(p_hint text, p_message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception '%', p_message using errcode = 'invalid_parameter_value', hint = p_hint;
end;
$$;
revoke execute on function billing.refuse_discount(text, text) from public;

/** The terms of a code that a redemption keeps: kind and amount, duration, periods, plans. */
create function billing.discount_terms(p_code billing.discount_codes)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'code', p_code.code, 'percent_bps', p_code.percent_bps, 'amount_paise', p_code.amount_paise,
    'duration', p_code.duration, 'periods', p_code.periods, 'plans', pg_catalog.to_jsonb(p_code.plans)));
end;
$$;
revoke execute on function billing.discount_terms(billing.discount_codes) from public;

/**
 * The discount, in paise, that terms p_terms take off a price of p_price_cents: a percentage
 * rounded half up to the paisa, or a fixed amount at most the price.
 */
create function billing.discount_amount(p_terms jsonb, p_price_cents bigint)
returns bigint
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_terms is null or p_price_cents is null or p_price_cents <= 0 then
    return 0;
  end if;
  if p_terms ? 'percent_bps' then
    return least(p_price_cents,
                 billing.div_round_half_up(p_price_cents::numeric * (p_terms ->> 'percent_bps')::integer, 10000));
  end if;
  return least(p_price_cents, coalesce((p_terms ->> 'amount_paise')::bigint, 0));
end;
$$;
revoke execute on function billing.discount_amount(jsonb, bigint) from public;
grant execute on function billing.discount_amount(jsonb, bigint) to service_role;

/**
 * The redemptions of code p_code_id that count at p_at (of organization p_organization_id when
 * given): redeemed ones, and reserved ones whose order is still open and unexpired.
 */
create function billing.discount_redemptions_counted(p_code_id uuid, p_organization_id uuid, p_at timestamptz)
returns integer
language plpgsql
stable
set search_path = ''
as $$
begin
  return (
    select count(*)::integer
    from public.discount_redemptions r
    left join public.orders o on o.id = r.order_id
    where r.discount_code_id = p_code_id
      and (p_organization_id is null or r.organization_id = p_organization_id)
      and (r.status = 'redeemed'
           or (r.status = 'reserved' and o.status in ('created', 'pending')
               and (o.expires_at is null or o.expires_at > p_at))));
end;
$$;
revoke execute on function billing.discount_redemptions_counted(uuid, uuid, timestamptz) from public;

/**
 * Refuses code p_code for organization p_organization_id when its limits are reached (see
 * billing.refuse_discount). p_superseding: the check before a new plan order is created, which
 * supersedes the organization's open plan orders with no payment in flight
 * (billing.supersede_open_orders) and so releases their reservations: those reservations do not
 * count against it (a buyer checking out again after abandoning a payment is not refused
 * discount_already_used). billing.reserve_discount checks again without it, once they are released.
 */
create function billing.check_discount_limits(
  p_code billing.discount_codes,
  p_organization_id uuid,
  p_at timestamptz,
  p_superseding boolean default false
)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  v_superseded integer := 0;
begin
  if coalesce(p_superseding, false) then
    select count(*)::integer into v_superseded
    from public.discount_redemptions r
    join public.orders o on o.id = r.order_id
    where r.discount_code_id = p_code.id and r.organization_id = p_organization_id and r.status = 'reserved'
      and o.organization_id = p_organization_id and o.kind in ('new', 'upgrade')
      and o.status in ('created', 'pending') and (o.expires_at is null or o.expires_at > p_at)
      and not exists (select 1 from public.payment_events pe where pe.order_id = o.id);
  end if;
  if p_code.max_per_organization is not null
     and billing.discount_redemptions_counted(p_code.id, p_organization_id, p_at) - v_superseded
         >= p_code.max_per_organization then
    perform billing.refuse_discount('discount_already_used',
      pg_catalog.format('discount code %s was already used by this organization (%s time(s) allowed)',
                        p_code.code, p_code.max_per_organization));
  end if;
  if p_code.max_redemptions is not null
     and billing.discount_redemptions_counted(p_code.id, null, p_at) - v_superseded >= p_code.max_redemptions then
    perform billing.refuse_discount('discount_exhausted',
      pg_catalog.format('discount code %s has no redemptions left (%s in all)', p_code.code, p_code.max_redemptions));
  end if;
end;
$$;
revoke execute on function billing.check_discount_limits(billing.discount_codes, uuid, timestamptz, boolean) from public;

/**
 * The price of one period of plan p_plan for organization p_organization_id at p_at, with its
 * discount: {list_cents (billing.plan_price_for), discount_cents, price_cents (list - discount: the
 * price taxed), code_id and terms (a code given, to reserve), redemption_id and terms (a repeating
 * or forever redemption of the organization carried to this order), code}. A code given
 * (p_code, any case) is checked and refused with billing.refuse_discount: unknown
 * (discount_invalid; also before valid_from), deactivated or at or after valid_until
 * (discount_expired), for another plan, a Razorpay recurring checkout (Razorpay charges its plan's
 * amount: no offer is configured through our adapter), a fixed amount on a non-INR plan, or a
 * first-purchase code for an organization that paid before (discount_not_applicable), its limits
 * reached (discount_already_used, discount_exhausted; checked again under the code's lock when it
 * is reserved). Without a code, the organization's newest redeemed repeating or forever redemption
 * covering the plan, of the billing interval it was redeemed on (terms.interval), with periods
 * left (paid orders carrying it), applies, unless its code was
 * ended with its redemptions (discount_codes.redemptions_ended_at). Writes nothing.
 */
create function billing.checkout_discount(
  p_organization_id uuid,
  p_plan public.billing_plans,
  p_code text,
  p_at timestamptz,
  p_recurring boolean default false
)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_list bigint := billing.plan_price_for(p_organization_id, p_plan, p_at);
  v_code billing.discount_codes;
  v_redemption public.discount_redemptions;
  v_terms jsonb;
  v_discount bigint := 0;
begin
  if nullif(btrim(coalesce(p_code, '')), '') is not null then
    select * into v_code from billing.discount_codes c where lower(c.code) = lower(btrim(p_code));
    if v_code.id is null then
      perform billing.refuse_discount('discount_invalid', pg_catalog.format('no discount code "%s"', left(btrim(p_code), 40)));
    end if;
    if not v_code.active then
      perform billing.refuse_discount('discount_expired',
        pg_catalog.format('discount code %s has ended (%s)', v_code.code, coalesce(v_code.deactivated_reason, 'deactivated')));
    end if;
    if v_code.valid_from is not null and p_at < v_code.valid_from then
      perform billing.refuse_discount('discount_invalid',
        pg_catalog.format('discount code %s is valid from %s', v_code.code, v_code.valid_from));
    end if;
    if v_code.valid_until is not null and p_at >= v_code.valid_until then
      perform billing.refuse_discount('discount_expired',
        pg_catalog.format('discount code %s expired at %s', v_code.code, v_code.valid_until));
    end if;
    if v_code.plans is not null and not (p_plan.code = any (v_code.plans)) then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('discount code %s applies only to the plans %s, not to %s', v_code.code,
                          pg_catalog.array_to_string(v_code.plans, ', '), p_plan.code));
    end if;
    if coalesce(p_recurring, false) then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('plan %s renews as a Razorpay subscription, which charges its plan''s full amount: discount code %s cannot apply to it (pay with PayU)',
                          p_plan.code, v_code.code));
    end if;
    if v_code.amount_paise is not null and p_plan.currency <> 'INR' then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('discount code %s is an amount in INR and plan %s is priced in %s', v_code.code, p_plan.code, p_plan.currency));
    end if;
    if v_code.first_purchase_only and exists (
      select 1 from public.orders o where o.organization_id = p_organization_id and o.status = 'paid') then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('discount code %s is for a first purchase only, and this organization has paid before', v_code.code));
    end if;
    -- The order this checkout creates supersedes the organization's open plan orders: their
    -- reservations of the code do not count here (billing.reserve_discount checks again).
    perform billing.check_discount_limits(v_code, p_organization_id, p_at, true);
    -- The billing interval of the plan it is redeemed on: its periods are of that length, so it
    -- carries only to plans of the same interval (a monthly "3 periods" is not 3 years).
    v_terms := billing.discount_terms(v_code) || pg_catalog.jsonb_build_object('interval', p_plan.interval);
  elsif not coalesce(p_recurring, false) then
    select r.* into v_redemption
    from public.discount_redemptions r
    where r.organization_id = p_organization_id and r.status = 'redeemed'
      and r.terms ->> 'duration' in ('repeating', 'forever')
      and (not r.terms ? 'plans' or r.terms -> 'plans' ? p_plan.code)
      and (r.terms ->> 'duration' = 'forever'
           or (select count(*) from public.orders o where o.discount_redemption_id = r.id and o.status = 'paid')
              < (r.terms ->> 'periods')::integer)
      and (not r.terms ? 'amount_paise' or p_plan.currency = 'INR')
      and (not r.terms ? 'interval' or r.terms ->> 'interval' = p_plan.interval::text)
      and not exists (select 1 from billing.discount_codes c
                      where c.id = r.discount_code_id and c.redemptions_ended_at is not null)
    order by r.created_at desc
    limit 1;
    v_terms := v_redemption.terms;
  end if;
  v_discount := billing.discount_amount(v_terms, v_list);
  return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'list_cents', v_list, 'discount_cents', v_discount, 'price_cents', v_list - v_discount,
    'code_id', v_code.id, 'redemption_id', v_redemption.id, 'terms', v_terms,
    'code', coalesce(v_code.code, v_terms ->> 'code')));
end;
$$;
revoke execute on function billing.checkout_discount(uuid, public.billing_plans, text, timestamptz, boolean) from public;
grant execute on function billing.checkout_discount(uuid, public.billing_plans, text, timestamptz, boolean) to service_role;

/**
 * Reserves the code of p_discount (billing.checkout_discount's answer, with a code_id) for order
 * p_order just created: locks the code's row (so two buyers racing for its last redemption are
 * served one after the other: one gets it), checks its limits again (the order's own insert has
 * already superseded the organization's older open orders and released their redemptions),
 * records the redemption with the terms and links it to the order. A carried redemption (no
 * code_id) was set on the order when it was inserted: nothing to reserve. Returns the
 * redemption's id, or null.
 */
create function billing.reserve_discount(p_order public.orders, p_discount jsonb)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_code billing.discount_codes;
  v_id uuid;
begin
  if p_discount ->> 'code_id' is null then
    return (p_discount ->> 'redemption_id')::uuid;
  end if;
  select * into v_code from billing.discount_codes c where c.id = (p_discount ->> 'code_id')::uuid for update;
  if not v_code.active then
    perform billing.refuse_discount('discount_expired', pg_catalog.format('discount code %s has ended', v_code.code));
  end if;
  perform billing.check_discount_limits(v_code, p_order.organization_id, billing.now());
  insert into public.discount_redemptions (organization_id, discount_code_id, code, order_id, terms)
  values (p_order.organization_id, v_code.id, v_code.code, p_order.id, p_discount -> 'terms')
  returning id into v_id;
  update public.orders o set discount_redemption_id = v_id where o.id = p_order.id;
  return v_id;
end;
$$;
revoke execute on function billing.reserve_discount(public.orders, jsonb) from public;

/**
 * Completes an order whose discount covers its whole price (amount_cents 0): no provider can
 * collect nothing, so its zero payment is recorded here (provider 'manual', payment id
 * `free_<receipt>`) and applied like any captured payment: the order is paid, the subscription
 * starts or is extended, the redemption is redeemed and the zero-value invoice issued. Returns
 * the order as it now is.
 */
create function billing.complete_free_order(p_order public.orders)
returns public.orders
language plpgsql
set search_path = ''
as $$
declare
  v_order public.orders;
begin
  if p_order.amount_cents <> 0 then
    raise exception 'order % charges %: only a free order is completed without a payment', p_order.receipt, p_order.amount_cents
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_order from public.orders o where o.id = p_order.id for update;
  perform billing.apply_captured_payment(v_order, pg_catalog.jsonb_build_object(
    'provider', 'manual', 'event_id', 'free:' || v_order.receipt, 'event_type', 'discount.free_order',
    'kind', 'payment_captured', 'provider_payment_id', 'free_' || v_order.receipt, 'amount_paise', 0,
    'currency', v_order.currency, 'method', 'discount', 'order_ref', v_order.receipt), billing.now());
  select * into v_order from public.orders o where o.id = p_order.id;
  return v_order;
end;
$$;
revoke execute on function billing.complete_free_order(public.orders) from public;
grant execute on function billing.complete_free_order(public.orders) to service_role;

/**
 * Creates discount code p_code (postgres and service_role: an operator in the SQL editor) from
 * p_spec, an object with exactly one of percent_bps (1-10000) or amount_paise (> 0), and
 * optionally duration ('once', the default; 'repeating' with periods; 'forever'), valid_from and
 * valid_until (timestamps), max_redemptions and max_per_organization (positive integers, or null
 * for no limit; max_per_organization defaults to 1), plans (an array of existing plan codes;
 * absent: every plan), first_purchase_only (boolean). Every key is checked and an error (22023)
 * names the bad one; a code that exists in any case is refused (23505). Returns the code's row.
 */
create function billing.create_discount_code(p_code text, p_spec jsonb)
returns billing.discount_codes
language plpgsql
set search_path = ''
as $$
declare
  v_key text;
  v_allowed text[] := array['percent_bps', 'amount_paise', 'duration', 'periods', 'valid_from', 'valid_until',
                            'max_redemptions', 'max_per_organization', 'plans', 'first_purchase_only'];
  v_row billing.discount_codes;
  v_plan text;
begin
  if p_code is null or btrim(p_code) !~ '^[A-Za-z0-9][A-Za-z0-9_-]{2,39}$' then
    raise exception 'code: 3-40 letters, digits, "_" or "-", starting with a letter or digit (got "%")', coalesce(p_code, '')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_spec is null or pg_catalog.jsonb_typeof(p_spec) <> 'object' then
    raise exception 'spec: a JSON object is required' using errcode = 'invalid_parameter_value';
  end if;
  for v_key in select k from pg_catalog.jsonb_object_keys(p_spec) k loop
    if not (v_key = any (v_allowed)) then
      raise exception '%: unknown key (allowed: %)', v_key, pg_catalog.array_to_string(v_allowed, ', ')
        using errcode = 'invalid_parameter_value';
    end if;
  end loop;
  if (p_spec ? 'percent_bps') = (p_spec ? 'amount_paise') then
    raise exception 'percent_bps or amount_paise: exactly one is required' using errcode = 'invalid_parameter_value';
  end if;
  if p_spec ? 'percent_bps' and (pg_catalog.jsonb_typeof(p_spec -> 'percent_bps') <> 'number'
     or (p_spec ->> 'percent_bps')::numeric not between 1 and 10000
     or (p_spec ->> 'percent_bps')::numeric <> trunc((p_spec ->> 'percent_bps')::numeric)) then
    raise exception 'percent_bps: an integer from 1 to 10000 basis points (10000 = 100 %%), got %', p_spec -> 'percent_bps'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_spec ? 'amount_paise' and not (billing.is_non_negative_integer(p_spec -> 'amount_paise')
     and (p_spec ->> 'amount_paise')::numeric > 0) then
    raise exception 'amount_paise: a positive integer number of paise, got %', p_spec -> 'amount_paise'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_spec ? 'duration' and coalesce(p_spec ->> 'duration', '') not in ('once', 'repeating', 'forever') then
    raise exception 'duration: "once", "repeating" or "forever", got %', p_spec -> 'duration'
      using errcode = 'invalid_parameter_value';
  end if;
  if (p_spec ->> 'duration' = 'repeating') <> (p_spec ? 'periods') then
    raise exception 'periods: required with duration "repeating", and only with it' using errcode = 'invalid_parameter_value';
  end if;
  if p_spec ? 'periods' and not (billing.is_non_negative_integer(p_spec -> 'periods')
     and (p_spec ->> 'periods')::numeric between 1 and 1200) then
    raise exception 'periods: an integer from 1 to 1200, got %', p_spec -> 'periods' using errcode = 'invalid_parameter_value';
  end if;
  foreach v_key in array array['valid_from', 'valid_until'] loop
    if p_spec ? v_key and pg_catalog.jsonb_typeof(p_spec -> v_key) <> 'null' then
      begin
        if pg_catalog.jsonb_typeof(p_spec -> v_key) <> 'string' then
          raise exception using errcode = 'invalid_datetime_format';
        end if;
        perform (p_spec ->> v_key)::timestamptz;
      exception when others then
        raise exception '%: a timestamp such as "2026-12-31T18:30:00Z", got %', v_key, p_spec -> v_key
          using errcode = 'invalid_parameter_value';
      end;
    end if;
  end loop;
  if (p_spec ->> 'valid_until')::timestamptz <= (p_spec ->> 'valid_from')::timestamptz then
    raise exception 'valid_until: must be after valid_from' using errcode = 'invalid_parameter_value';
  end if;
  foreach v_key in array array['max_redemptions', 'max_per_organization'] loop
    if p_spec ? v_key and pg_catalog.jsonb_typeof(p_spec -> v_key) <> 'null'
       and not (billing.is_non_negative_integer(p_spec -> v_key) and (p_spec ->> v_key)::numeric between 1 and 2147483647) then
      raise exception '%: a positive integer, or null for no limit, got %', v_key, p_spec -> v_key
        using errcode = 'invalid_parameter_value';
    end if;
  end loop;
  if p_spec ? 'plans' then
    if pg_catalog.jsonb_typeof(p_spec -> 'plans') <> 'array' or pg_catalog.jsonb_array_length(p_spec -> 'plans') = 0 then
      raise exception 'plans: a non-empty array of plan codes (leave it out for every plan), got %', p_spec -> 'plans'
        using errcode = 'invalid_parameter_value';
    end if;
    for v_plan in select pg_catalog.jsonb_array_elements_text(p_spec -> 'plans') loop
      if not exists (select 1 from public.billing_plans p where p.code = v_plan) then
        raise exception 'plans: no plan "%"', v_plan using errcode = 'invalid_parameter_value';
      end if;
    end loop;
  end if;
  if p_spec ? 'first_purchase_only' and pg_catalog.jsonb_typeof(p_spec -> 'first_purchase_only') <> 'boolean' then
    raise exception 'first_purchase_only: true or false, got %', p_spec -> 'first_purchase_only'
      using errcode = 'invalid_parameter_value';
  end if;
  if exists (select 1 from billing.discount_codes c where lower(c.code) = lower(btrim(p_code))) then
    raise exception 'code: "%" exists already (codes are unique whatever their case)', btrim(p_code)
      using errcode = 'unique_violation';
  end if;

  insert into billing.discount_codes
    (code, percent_bps, amount_paise, duration, periods, valid_from, valid_until, max_redemptions,
     max_per_organization, plans, first_purchase_only)
  values
    (btrim(p_code), (p_spec ->> 'percent_bps')::integer, (p_spec ->> 'amount_paise')::bigint,
     coalesce(p_spec ->> 'duration', 'once')::public.discount_duration, (p_spec ->> 'periods')::integer,
     (p_spec ->> 'valid_from')::timestamptz, (p_spec ->> 'valid_until')::timestamptz,
     (p_spec ->> 'max_redemptions')::integer,
     case when p_spec ? 'max_per_organization' then (p_spec ->> 'max_per_organization')::integer else 1 end,
     case when p_spec ? 'plans' then array(select pg_catalog.jsonb_array_elements_text(p_spec -> 'plans')) end,
     coalesce((p_spec ->> 'first_purchase_only')::boolean, false))
  returning * into v_row;
  return v_row;
end;
$$;
revoke execute on function billing.create_discount_code(text, jsonb) from public, anon, authenticated;
grant execute on function billing.create_discount_code(text, jsonb) to service_role;

/**
 * Ends discount code p_code (any case; postgres and service_role) with a reason: no new order
 * can use it (discount_expired). Orders already created keep their price. By default redemptions
 * already made keep their terms (a repeating one runs its periods, a forever one runs on); with
 * p_end_redemptions they end too (redemptions_ended_at): no redemption of the code carries to a
 * later order, which is then at the organization's price (a code leaked or abused). Errors: 22023
 * no reason, P0002 no such code. Returns the code's row.
 */
create function billing.deactivate_discount_code(p_code text, p_reason text, p_end_redemptions boolean default false)
returns billing.discount_codes
language plpgsql
set search_path = ''
as $$
declare
  v_row billing.discount_codes;
begin
  if nullif(btrim(coalesce(p_reason, '')), '') is null then
    raise exception 'a reason is required to end a discount code' using errcode = 'invalid_parameter_value';
  end if;
  update billing.discount_codes c
  set active = false, deactivated_at = coalesce(c.deactivated_at, billing.now()), deactivated_reason = btrim(p_reason),
      redemptions_ended_at = case when coalesce(p_end_redemptions, false)
                                  then coalesce(c.redemptions_ended_at, billing.now()) else c.redemptions_ended_at end
  where lower(c.code) = lower(btrim(p_code))
  returning * into v_row;
  if v_row.id is null then
    raise exception 'no discount code "%"', coalesce(p_code, '') using errcode = 'no_data_found';
  end if;
  return v_row;
end;
$$;
revoke execute on function billing.deactivate_discount_code(text, text, boolean) from public, anon, authenticated;
grant execute on function billing.deactivate_discount_code(text, text, boolean) to service_role;

/**
 * The currency a checkout of plan p_plan is in: p_currency, or (null) the currency of the order
 * that started the organization's live subscription on that plan, so its renewals keep it, or the
 * plan's own. A renewal in another currency than its subscription's is refused (55000 HINT
 * 'subscription_currency'); the currency must be one the plan is offered in
 * (billing.plan_in_currency).
 */
create function billing.checkout_currency(p_organization_id uuid, p_plan public.billing_plans, p_currency text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  v_started text;
begin
  if p_currency is not null and p_currency !~ '^[A-Z]{3}$' then
    raise exception 'currency must be three capital letters (an ISO 4217 code such as USD), got "%"', left(p_currency, 10)
      using errcode = 'invalid_parameter_value', hint = 'currency_not_offered';
  end if;
  select o.currency into v_started
  from public.subscriptions s
  join public.orders o on o.subscription_id = s.id and o.status = 'paid' and o.kind in ('new', 'renewal')
  where s.organization_id = p_organization_id and s.plan_id = p_plan.id
    and s.status in ('trialing', 'active', 'past_due')
  order by o.paid_at, o.created_at
  limit 1;
  if p_currency is not null and v_started is not null and p_currency <> v_started then
    raise exception 'the organization''s subscription on plan "%" is paid in %: its renewals are in % too', p_plan.code, v_started, v_started
      using errcode = 'object_not_in_prerequisite_state', hint = 'subscription_currency';
  end if;
  return coalesce(p_currency, v_started, p_plan.currency);
end;
$$;
revoke execute on function billing.checkout_currency(uuid, public.billing_plans, text) from public;
grant execute on function billing.checkout_currency(uuid, public.billing_plans, text) to service_role;

/**
 * What checkout would charge now for plan p_plan_code (members of the organization), exactly as
 * the order will be: {plan_code, currency, code, list_paise, discount_paise, taxable_paise,
 * cgst_paise, sgst_paise, igst_paise, total_paise, prices_include_tax, supply_type} and, when
 * there is one, lut_arn (an export zero-rated under it) and exchange_rate. Amounts are in the
 * minor unit of the currency: paise, or cents of a p_currency price from public.plan_prices,
 * chosen as checkout chooses it (billing.checkout_currency). The price is
 * billing.checkout_discount's (a code given, or a repeating redemption carried), taxed by
 * billing.order_tax_quote and split by billing.compute_line_tax as the order and its invoice are.
 * p_provider (null: a one-time payment, as PayU's) quotes the checkout that provider would make:
 * a provider subscription (billing.checkout_provider_plan: Razorpay's plan, Stripe's price)
 * charges the price with its GST carved out, and a Razorpay subscription takes no discount (it
 * charges its plan's own amount). Refusals as create_checkout_order: an unknown provider (22023), an unknown
 * or inactive plan, or a private plan not assigned to the organization (billing.require_plan_available),
 * both P0002 HINT 'plan_not_found' alike; a currency the plan is not offered in (22023 HINT
 * 'currency_not_offered'); no exchange rate for it (55000 HINT 'exchange_rate_missing'). Writes
 * nothing. Security definer: members cannot read the codes.
 */
create function billing.preview_checkout(p_organization_id uuid, p_plan_code text, p_discount_code text default null,
                                         p_currency text default null, p_provider text default null)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_plan public.billing_plans;
  v_price jsonb;
  v_quote record;
  v_tax record;
  v_rate numeric;
  v_provider public.payment_provider;
  v_provider_plan text;
begin
  if p_provider is not null then
    v_provider := billing.checkout_provider(p_provider);
  end if;
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role), 'preview a checkout');
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found', hint = 'plan_not_found';
  end if;
  perform billing.require_plan_available(p_organization_id, v_plan);
  if v_plan.price_cents <= 0 or v_plan.tier = 'free' then
    raise exception 'plan "%" is free: there is nothing to pay', v_plan.code using errcode = 'object_not_in_prerequisite_state';
  end if;
  v_plan := billing.plan_in_currency(v_plan, billing.checkout_currency(p_organization_id, v_plan, p_currency));
  if v_plan.currency <> 'INR' then
    v_rate := billing.exchange_rate_at(v_plan.currency, billing.now());
  end if;
  if v_provider is not null then
    v_provider_plan := billing.checkout_provider_plan(p_organization_id, v_plan, v_provider, billing.now());
  end if;
  v_price := billing.checkout_discount(p_organization_id, v_plan, p_discount_code, billing.now(),
                                       v_provider = 'razorpay' and v_provider_plan is not null);
  select * into v_quote from billing.order_tax_quote(
    p_organization_id, (v_price ->> 'price_cents')::bigint,
    coalesce((select s.prices_include_tax from public.billing_settings s where s.id), false) or v_provider_plan is not null,
    v_plan.currency);
  if v_quote.supply_type is not null then
    select * into v_tax from billing.compute_line_tax(
      case when v_quote.prices_include_tax then v_quote.amount_cents else v_quote.taxable_cents end,
      v_quote.gst_rate_bp, case when v_quote.export_with_igst then 'export_with_igst' else v_quote.supply_type end,
      v_quote.prices_include_tax);
  end if;
  return pg_catalog.jsonb_build_object(
    'plan_code', v_plan.code, 'currency', v_plan.currency, 'code', v_price ->> 'code',
    'list_paise', (v_price ->> 'list_cents')::bigint, 'discount_paise', (v_price ->> 'discount_cents')::bigint,
    'taxable_paise', v_quote.taxable_cents, 'cgst_paise', coalesce(v_tax.cgst_cents, 0),
    'sgst_paise', coalesce(v_tax.sgst_cents, 0), 'igst_paise', coalesce(v_tax.igst_cents, 0),
    'total_paise', v_quote.amount_cents, 'prices_include_tax', v_quote.prices_include_tax,
    'supply_type', v_quote.supply_type)
    -- An export's LUT and a foreign currency's rate, only when there is one.
    || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lut_arn', v_quote.lut_arn, 'exchange_rate', v_rate));
end;
$$;
revoke execute on function billing.preview_checkout(uuid, text, text, text, text) from public, anon;
grant execute on function billing.preview_checkout(uuid, text, text, text, text) to authenticated, service_role;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** discount_redemptions: members read their organization's. */
create policy "Members can read their organization's discount redemptions"
  on public.discount_redemptions for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

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

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * What checkout would charge now for a plan, with an optional discount code, currency and
 * provider (members of the organization): list, discount, taxable value, CGST, SGST, IGST and
 * total in the currency's minor unit. A thin wrapper: billing.preview_checkout does the work and
 * checks who is calling.
 */
create function public.preview_checkout(p_organization_id uuid, p_plan_code text, p_discount_code text default null,
                                        p_currency text default null, p_provider text default null)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return billing.preview_checkout(p_organization_id, p_plan_code, p_discount_code, p_currency, p_provider);
end;
$$;
revoke execute on function public.preview_checkout(uuid, text, text, text, text) from public, anon;
grant execute on function public.preview_checkout(uuid, text, text, text, text) to authenticated;
comment on function public.preview_checkout(uuid, text, text, text, text) is 'What checkout would charge now for a plan, with an optional discount code, currency (null: the plan''s own, or a renewal''s) and provider (null: a one-time payment; a provider subscription carries its GST in the price): list, discount, taxable value, tax and total in the currency''s minor unit.';
