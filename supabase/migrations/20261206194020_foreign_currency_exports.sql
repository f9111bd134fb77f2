-- What this migration does: foreign-currency prices and exports of services. A plan's prices in
-- other currencies (public.plan_prices, chosen at checkout by the new p_currency argument of
-- create_checkout_order and preview_checkout; renewals keep the subscription's currency); the
-- currencies each provider collects (billing_settings.provider_currencies: PayU and Razorpay INR);
-- the seller's LUT per financial year (billing.lut_registrations, billing.operator_record_lut) and
-- exchange rates (billing.exchange_rates, billing.operator_set_exchange_rate). An export is
-- zero-rated only under the LUT of its order's financial year, else it pays IGST
-- (orders.lut_arn, export_with_igst); an order in a foreign currency records its rate
-- (orders.exchange_rate), and its invoice and credit notes the rate and the INR values
-- (invoices.lut_arn, export_with_igst, exchange_rate, exchange_rate_source, inr_taxable_paise,
-- inr_total_paise; credit_notes.exchange_rate, inr_*). Rows already there keep their meaning: an
-- export order or invoice from before has lut_arn null and export_with_igst false (zero-rated, as
-- it was issued), and an invoice from before has no INR value; nothing is backfilled.
--
-- foreign_currency_exports: drafted by `npm run db:diff -- foreign_currency_exports` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.

SET local check_function_bodies = off;

ALTER TABLE "public"."invoices"
  DROP CONSTRAINT "invoices_tax_matches_supply";

DROP FUNCTION "billing"."create_checkout_order"(uuid, text, text, text);

DROP FUNCTION "billing"."order_tax_quote"(uuid, bigint, boolean, text);

DROP FUNCTION "billing"."preview_checkout"(uuid, text, text);

DROP FUNCTION "public"."create_checkout_order"(uuid, text, text, text);

DROP FUNCTION "public"."preview_checkout"(uuid, text, text);

CREATE TABLE "billing"."exchange_rates" (
  "id"             uuid                     NOT NULL DEFAULT gen_random_uuid(),
  "currency"       text                     NOT NULL,
  "inr_per_unit"   numeric(18,6)            NOT NULL,
  "effective_from" timestamp with time zone NOT NULL,
  "reason"         text                     NOT NULL,
  "recorded_at"    timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "exchange_rates_currency_foreign" CHECK (((currency ~ '^[A-Z]{3}$'::text) AND (currency <> 'INR'::text))),
  CONSTRAINT "exchange_rates_one_per_moment" UNIQUE (currency, effective_from),
  CONSTRAINT "exchange_rates_pkey" PRIMARY KEY (id),
  CONSTRAINT "exchange_rates_rate_positive" CHECK ((inr_per_unit > (0)::numeric)),
  CONSTRAINT "exchange_rates_reason_check" CHECK (((length(btrim(reason)) >= 3) AND (length(btrim(reason)) <= 500)))
);

CREATE TABLE "billing"."lut_registrations" (
  "id"             uuid                     NOT NULL DEFAULT gen_random_uuid(),
  "financial_year" text                     NOT NULL,
  "arn"            text                     NOT NULL,
  "filed_on"       date,
  "reason"         text                     NOT NULL,
  "recorded_at"    timestamp with time zone NOT NULL DEFAULT now(),
  "superseded_at"  timestamp with time zone,
  CONSTRAINT "lut_registrations_arn_format" CHECK ((arn ~ '^AA(0[1-9]|[12][0-9]|3[0-8]|97|99)(0[1-9]|1[0-2])[0-9]{2}[0-9]{6}[0-9A-Z]$'::text)),
  CONSTRAINT "lut_registrations_financial_year_format"
    CHECK (((financial_year ~ '^[0-9]{4}-[0-9]{2}$'::text) AND (((("left"(financial_year, 4))::integer + 1) % 100) = ("right"(financial_year, 2))::integer))),
  CONSTRAINT "lut_registrations_pkey" PRIMARY KEY (id),
  CONSTRAINT "lut_registrations_reason_check" CHECK (((length(btrim(reason)) >= 3) AND (length(btrim(reason)) <= 500)))
);

CREATE TABLE "public"."plan_prices" (
  "plan_id"     uuid                     NOT NULL,
  "currency"    text                     NOT NULL,
  "price_cents" bigint                   NOT NULL,
  "created_at"  timestamp with time zone NOT NULL DEFAULT now(),
  "updated_at"  timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "plan_prices_currency_code" CHECK ((currency ~ '^[A-Z]{3}$'::text)),
  CONSTRAINT "plan_prices_pkey" PRIMARY KEY (plan_id, currency),
  CONSTRAINT "plan_prices_price_positive" CHECK ((price_cents > 0))
);

ALTER TABLE "public"."plan_prices"
  ENABLE ROW LEVEL SECURITY;

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "provider_currencies" jsonb NOT NULL DEFAULT '{"payu": ["INR"], "razorpay": ["INR"]}'::jsonb;

ALTER TABLE "public"."credit_notes"
  ADD COLUMN "exchange_rate" numeric(18,6);

ALTER TABLE "public"."credit_notes"
  ADD COLUMN "inr_taxable_paise" bigint;

ALTER TABLE "public"."credit_notes"
  ADD COLUMN "inr_total_paise" bigint;

ALTER TABLE "public"."invoices"
  ADD COLUMN "lut_arn" text;

ALTER TABLE "public"."invoices"
  ADD COLUMN "export_with_igst" boolean NOT NULL DEFAULT false;

ALTER TABLE "public"."invoices"
  ADD COLUMN "exchange_rate" numeric(18,6);

ALTER TABLE "public"."invoices"
  ADD COLUMN "exchange_rate_source" text;

ALTER TABLE "public"."invoices"
  ADD COLUMN "inr_taxable_paise" bigint;

ALTER TABLE "public"."invoices"
  ADD COLUMN "inr_total_paise" bigint;

ALTER TABLE "public"."orders"
  ADD COLUMN "exchange_rate" numeric(18,6);

ALTER TABLE "public"."orders"
  ADD COLUMN "lut_arn" text;

ALTER TABLE "public"."orders"
  ADD COLUMN "export_with_igst" boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION billing.apply_captured_payment (
  p_order    public.orders,
  p_event    jsonb,
  p_event_at timestamp with time zone
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
  elsif v_renewal and v_sub.plan_id is distinct from v_order.plan_id then
    -- The mandate pays for another plan than the subscription is on (a plan change made outside
    -- the mandate): a debit never changes the plan by itself.
    v_review := true;
    v_problem := pg_catalog.format('debit of %s subscription %s for plan %s, but the subscription is on plan %s: refunded; needs review (cancel the mandate, or move the subscription to its plan)',
                                   v_order.provider, v_psid,
                                   (select p.code from public.billing_plans p where p.id = v_order.plan_id),
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

  -- A mandate debit that buys the next period: its own renewal order.
  if v_problem is null and v_renewal then
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, provider_subscription_id, kind,
       amount_cents, currency, status, metadata)
    values
      (v_order.organization_id, v_order.plan_id, v_sub.id, v_order.provider, v_psid, 'renewal',
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
$function$;

CREATE OR REPLACE FUNCTION billing.check_plan_price()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_plan public.billing_plans;
begin
  select * into v_plan from public.billing_plans p where p.id = new.plan_id;
  if v_plan.tier = 'free' or v_plan.price_cents = 0 then
    raise exception 'plan "%" is free: it has no prices in other currencies', v_plan.code
      using errcode = 'check_violation';
  end if;
  if new.currency = v_plan.currency then
    raise exception 'plan "%" is priced in % by its price_cents: a price in plan_prices is in another currency', v_plan.code, new.currency
      using errcode = 'check_violation';
  end if;
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.checkout_currency (
  p_organization_id uuid,
  p_plan            public.billing_plans,
  p_currency        text
)
  RETURNS text
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.compute_line_tax (
  p_amount_cents bigint,
  p_gst_rate_bp  integer,
  p_supply_type  text,
  p_includes_tax boolean,
  OUT            taxable_cents bigint,
  OUT            cgst_rate_bp integer,
  OUT            sgst_rate_bp integer,
  OUT            igst_rate_bp integer,
  OUT            cgst_cents bigint,
  OUT            sgst_cents bigint,
  OUT            igst_cents bigint,
  OUT            total_cents bigint
)
  RETURNS record
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.create_checkout_order (
  p_organization_id uuid,
  p_plan_code       text,
  p_provider        text,
  p_discount_code   text DEFAULT NULL::text,
  p_currency        text DEFAULT NULL::text
)
  RETURNS SETOF billing.checkout_order
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
  if p_provider is null or p_provider not in ('payu', 'razorpay') then
    raise exception 'provider must be "payu" or "razorpay"' using errcode = 'invalid_parameter_value';
  end if;
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
  -- A Razorpay subscription charges its plan's INR amount: a price in another currency is paid
  -- as one-time orders (renewed through checkout).
  v_rzp_plan := case when p_provider = 'razorpay'
                      and v_plan.currency = (select p.currency from public.billing_plans p where p.id = v_plan.id)
                     then nullif(v_plan.provider_config #>> '{razorpay,plan_id}', '') end;
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

  -- The price: the organization's list price less a discount (a code given, refused with its
  -- reason; or a repeating redemption carried to this renewal), before any order exists.
  v_price := billing.checkout_discount(p_organization_id, v_plan, p_discount_code, v_now, v_rzp_plan is not null);
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
$function$;

CREATE OR REPLACE FUNCTION billing.exchange_rate_at (
  p_currency text,
  p_at       timestamp with time zone
)
  RETURNS numeric
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.export_endorsement (
  p_invoice public.invoices
)
  RETURNS text
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
begin
  if p_invoice.supply_type is distinct from 'export' then
    return null;
  end if;
  if p_invoice.export_with_igst then
    return 'SUPPLY MEANT FOR EXPORT ON PAYMENT OF INTEGRATED TAX';
  end if;
  return 'SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX'
    || coalesce(', LUT ARN ' || p_invoice.lut_arn, '');
end;
$function$;

CREATE OR REPLACE FUNCTION billing.issue_credit_note (
  p_invoice_id       uuid,
  p_amount_cents     bigint,
  p_reason           text,
  p_payment_event_id uuid   DEFAULT NULL::uuid,
  p_kind             text   DEFAULT 'refund'::text
)
  RETURNS uuid
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_invoice public.invoices%rowtype;
  v_settings public.billing_settings%rowtype;
  v_credit_note_id uuid;
  v_credited record;
  v_remaining bigint;
  v_split record;
  v_now timestamptz := billing.now();
  v_financial_year integer := billing.financial_year(v_now);
  v_serial bigint;
begin
  if p_kind is null or p_kind not in ('refund', 'void') then
    raise exception 'credit note kind must be refund or void, got %', p_kind using errcode = 'invalid_parameter_value';
  end if;
  if p_reason is null or length(btrim(p_reason)) not between 1 and 500 then
    raise exception 'a credit note needs a reason of 1 to 500 characters' using errcode = 'invalid_parameter_value';
  end if;
  if p_amount_cents is null or p_amount_cents <= 0 then
    raise exception 'credit note amount must be a positive number of paise, got %', p_amount_cents
      using errcode = 'invalid_parameter_value';
  end if;

  -- Serializes credit notes of one invoice, so two refunds cannot both pass the remaining check.
  select * into v_invoice from public.invoices i where i.id = p_invoice_id for update;
  if not found then
    raise exception 'invoice % does not exist', p_invoice_id using errcode = 'no_data_found';
  end if;

  if p_payment_event_id is not null then
    select c.id into v_credit_note_id from public.credit_notes c where c.payment_event_id = p_payment_event_id;
    if found then
      return v_credit_note_id;
    end if;
    if not exists (
      select 1 from public.payment_events e where e.id = p_payment_event_id and e.order_id = v_invoice.order_id
    ) then
      -- Also catches an event that does not exist (payment_event_id has no foreign key).
      raise exception 'payment event % is not a payment of invoice %''s order', p_payment_event_id, v_invoice.invoice_number
        using errcode = 'invalid_parameter_value';
    end if;
  end if;

  select
    coalesce(sum(c.taxable_cents), 0)::bigint as taxable_cents,
    coalesce(sum(c.cgst_cents), 0)::bigint as cgst_cents,
    coalesce(sum(c.sgst_cents), 0)::bigint as sgst_cents,
    coalesce(sum(c.igst_cents), 0)::bigint as igst_cents,
    coalesce(sum(c.total_cents), 0)::bigint as total_cents
  into v_credited
  from public.credit_notes c
  where c.invoice_id = p_invoice_id;

  v_remaining := v_invoice.total_cents - v_credited.total_cents;
  if p_amount_cents > v_remaining then
    raise exception 'credit note amount % exceeds the remaining creditable amount % of invoice %',
      p_amount_cents, v_remaining, v_invoice.invoice_number
      using errcode = 'invalid_parameter_value';
  end if;

  v_split := billing.credit_note_split(v_invoice, v_credited.total_cents, v_credited.cgst_cents, v_credited.sgst_cents,
                                       v_credited.igst_cents, p_amount_cents);

  select * into v_settings from public.billing_settings s where s.id;
  v_serial := billing.next_serial('credit_note', v_financial_year);

  perform pg_catalog.set_config('billing.issuing', 'credit_notes', true);
  insert into public.credit_notes (
    organization_id, invoice_id, payment_event_id, credit_note_number, financial_year, serial,
    issued_at, credit_note_date, kind, reason, currency,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents,
    exchange_rate, inr_taxable_paise, inr_total_paise
  ) values (
    v_invoice.organization_id, v_invoice.id, p_payment_event_id,
    billing.format_document_number(v_settings.credit_note_prefix, v_financial_year, v_serial), v_financial_year, v_serial,
    v_now, (v_now at time zone 'Asia/Kolkata')::date, p_kind::public.credit_note_kind, btrim(p_reason), v_invoice.currency,
    v_split.taxable_cents, v_split.cgst_cents, v_split.sgst_cents, v_split.igst_cents, p_amount_cents,
    -- A credit note of an invoice in a foreign currency is converted at the invoice's rate.
    v_invoice.exchange_rate,
    billing.div_round_half_up(v_split.taxable_cents * v_invoice.exchange_rate, 1),
    billing.div_round_half_up(p_amount_cents * v_invoice.exchange_rate, 1)
  )
  returning id into v_credit_note_id;
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_credit_note_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.issue_invoice (
  p_order_id         uuid,
  p_payment_event_id uuid
)
  RETURNS uuid
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_order public.orders%rowtype;
  v_settings public.billing_settings%rowtype;
  v_org public.organizations%rowtype;
  v_plan public.billing_plans%rowtype;
  v_pack public.credit_packs%rowtype;
  v_description text;
  v_invoice_id uuid;
  v_seller_state text;
  v_supply_type text;
  v_place_of_supply text;
  v_tax record;
  v_now timestamptz := billing.now();
  v_financial_year integer := billing.financial_year(v_now);
  v_serial bigint;
  v_rate numeric;
  v_rate_source text;
begin
  select * into v_order from public.orders o where o.id = p_order_id for update;
  if not found then
    raise exception 'order % does not exist', p_order_id using errcode = 'no_data_found';
  end if;

  select i.id into v_invoice_id from public.invoices i where i.order_id = p_order_id;
  if found then
    return v_invoice_id;
  end if;

  if p_payment_event_id is not null and not exists (
    select 1 from public.payment_events e
    where e.id = p_payment_event_id and e.order_id = p_order_id and e.status = 'captured'
  ) then
    raise exception 'payment event % is not a captured payment of order %', p_payment_event_id, p_order_id
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_settings from public.billing_settings s where s.id;
  v_seller_state := coalesce(v_settings.seller_state_code, pg_catalog.left(v_settings.seller_gstin, 2));
  if v_settings.seller_legal_name is null or v_seller_state is null then
    raise exception 'billing_settings.seller_legal_name and seller_state_code (or seller_gstin) must be set before invoices can be issued'
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  select * into strict v_org from public.organizations o where o.id = v_order.organization_id;
  -- What the order sold, as its line says it: a plan, or a credit pack with its credits.
  if v_order.credit_pack_id is not null then
    select * into strict v_pack from public.credit_packs cp where cp.id = v_order.credit_pack_id;
    v_description := pg_catalog.format('%s - credit pack (%s credits%s)', v_pack.name,
      coalesce(v_order.metadata ->> 'credits', v_pack.credits::text),
      case when v_order.metadata ->> 'credit_validity' is not null
           then ', valid for ' || (v_order.metadata ->> 'credit_validity') else '' end);
  else
    select * into strict v_plan from public.billing_plans p where p.id = v_order.plan_id;
    v_description := v_plan.name || case v_order.kind
      when 'renewal' then ' - subscription renewal'
      when 'upgrade' then ' - plan upgrade (prorated)'
      else ' - subscription'
    end;
    -- A price negotiated under a contract (a price override, billing.plan_price_for): named on the line.
    if coalesce(v_order.metadata ->> 'contract_ref', v_order.metadata #>> '{quote,to_contract_ref}') is not null then
      v_description := v_description || pg_catalog.format(' (contract price, %s)',
        coalesce(v_order.metadata ->> 'contract_ref', v_order.metadata #>> '{quote,to_contract_ref}'));
    end if;
  end if;

  -- The tax is the order's quote (billing.quote_order_tax), recomputed the same way: the invoice
  -- total is what the order charged, whatever changed in the settings or the profile since.
  if v_order.supply_type is null or v_order.taxable_cents is null then
    raise exception 'order % was priced without GST (the seller''s state was not set when it was created): no tax invoice', v_order.receipt
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  v_supply_type := v_order.supply_type;
  v_place_of_supply := v_order.place_of_supply_state_code;
  select * into v_tax
  from billing.compute_line_tax(case when v_order.prices_include_tax then v_order.amount_cents else v_order.taxable_cents end,
                                v_order.gst_rate_bp,
                                case when v_order.export_with_igst then 'export_with_igst' else v_supply_type end,
                                v_order.prices_include_tax);
  -- A foreign currency: the provider's rate of this payment when its event carried one, else the
  -- rate the order recorded; the INR values are fixed here with the invoice. (An order made
  -- before rates were recorded has none: its invoice states no INR value.)
  if v_order.currency <> 'INR' then
    select (e.details ->> 'exchange_rate')::numeric into v_rate
    from public.payment_events e where e.id = p_payment_event_id and e.details ? 'exchange_rate';
    v_rate_source := case when v_rate is not null then 'provider' when v_order.exchange_rate is not null then 'order' end;
    v_rate := coalesce(v_rate, v_order.exchange_rate);
  end if;
  if v_tax.total_cents <> v_order.amount_cents then
    raise exception 'order % charges % but its tax quote totals %', v_order.receipt, v_order.amount_cents, v_tax.total_cents
      using errcode = 'data_exception';
  end if;

  v_serial := billing.next_serial('invoice', v_financial_year);

  perform pg_catalog.set_config('billing.issuing', 'invoices', true);
  insert into public.invoices (
    organization_id, order_id, payment_event_id, invoice_number, financial_year, serial,
    issued_at, invoice_date, currency, supply_type, place_of_supply_state_code, buyer_gstin,
    seller, buyer, prices_include_tax,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents,
    lut_arn, export_with_igst, exchange_rate, exchange_rate_source, inr_taxable_paise, inr_total_paise
  ) values (
    v_org.id, v_order.id, p_payment_event_id,
    billing.format_document_number(v_settings.invoice_prefix, v_financial_year, v_serial), v_financial_year, v_serial,
    v_now, (v_now at time zone 'Asia/Kolkata')::date, v_order.currency, v_supply_type::public.supply_type, v_place_of_supply, v_org.gstin,
    billing.invoice_party(v_settings.seller_legal_name, v_settings.seller_gstin, v_seller_state,
                          v_settings.seller_address_line1, v_settings.seller_address_line2, v_settings.seller_city,
                          v_settings.seller_postal_code, 'IN', v_settings.seller_email),
    billing.invoice_party(coalesce(v_org.billing_name, v_org.name), v_org.gstin, v_org.state_code,
                          v_org.billing_address_line1, v_org.billing_address_line2, v_org.billing_city,
                          v_org.billing_postal_code, v_org.billing_country, v_org.billing_email),
    v_order.prices_include_tax,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents,
    v_order.lut_arn, v_order.export_with_igst, v_rate, v_rate_source,
    billing.div_round_half_up(v_tax.taxable_cents * v_rate, 1), billing.div_round_half_up(v_tax.total_cents * v_rate, 1)
  )
  returning id into v_invoice_id;

  perform pg_catalog.set_config('billing.issuing', 'invoice_lines', true);
  insert into public.invoice_lines (
    invoice_id, organization_id, line_number, plan_id, credit_pack_id, description, sac_code, quantity,
    gst_rate_bp, cgst_rate_bp, sgst_rate_bp, igst_rate_bp,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents,
    list_cents, discount_cents, discount_code
  ) values (
    v_invoice_id, v_org.id, 1, v_plan.id, v_pack.id, v_description,
    v_settings.sac_code, 1,
    case when v_supply_type = 'export' and not v_order.export_with_igst then 0 else v_order.gst_rate_bp end,
    v_tax.cgst_rate_bp, v_tax.sgst_rate_bp, v_tax.igst_rate_bp,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents,
    v_order.list_cents, v_order.discount_cents, v_order.metadata ->> 'discount_code'
  );
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_invoice_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.lut_for (
  p_at timestamp with time zone
)
  RETURNS billing.lut_registrations
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_fy integer := billing.financial_year(p_at);
  v_lut billing.lut_registrations;
begin
  select * into v_lut from billing.lut_registrations l
  where l.financial_year = v_fy::text || '-' || pg_catalog.lpad(((v_fy + 1) % 100)::text, 2, '0')
    and l.superseded_at is null;
  return v_lut;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_record_lut (
  p_financial_year text,
  p_arn            text,
  p_filed_on       date,
  p_reason         text
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_arn text := pg_catalog.upper(btrim(coalesce(p_arn, '')));
  v_live billing.lut_registrations;
  v_id uuid;
begin
  if p_financial_year is null or p_financial_year !~ '^[0-9]{4}-[0-9]{2}$'
     or (pg_catalog.left(p_financial_year, 4)::integer + 1) % 100 <> pg_catalog.right(p_financial_year, 2)::integer then
    raise exception 'a financial year is written like 2026-27 (1 April 2026 to 31 March 2027), got "%"', coalesce(p_financial_year, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if v_arn !~ '^AA(0[1-9]|[12][0-9]|3[0-8]|97|99)(0[1-9]|1[0-2])[0-9]{2}[0-9]{6}[0-9A-Z]$' then
    raise exception 'an LUT''s ARN is 15 characters: AA, the state code, the month and year filed (MMYY), six digits and a check character (e.g. AA2903260012345), got "%"', left(coalesce(p_arn, 'null'), 40)
      using errcode = 'invalid_parameter_value';
  end if;
  if p_filed_on is not null and p_filed_on > (billing.now() at time zone 'Asia/Kolkata')::date then
    raise exception 'an LUT filed on % is in the future', p_filed_on using errcode = 'invalid_parameter_value';
  end if;
  select * into v_live from billing.lut_registrations l
  where l.financial_year = p_financial_year and l.superseded_at is null
  for update;
  if v_live.arn = v_arn then
    return v_live.id;
  end if;
  update billing.lut_registrations l set superseded_at = billing.now() where l.id = v_live.id;
  insert into billing.lut_registrations (financial_year, arn, filed_on, reason, recorded_at)
  values (p_financial_year, v_arn, p_filed_on, v_reason, billing.now())
  returning id into v_id;
  return v_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_set_exchange_rate (
  p_currency       text,
  p_inr_per_unit   numeric,
  p_effective_from timestamp with time zone,
  p_reason         text
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_from timestamptz := coalesce(p_effective_from, billing.now());
  v_id uuid;
begin
  if p_currency is null or p_currency !~ '^[A-Z]{3}$' or p_currency = 'INR' then
    raise exception 'an exchange rate is for a foreign currency (three capital letters, not INR), got "%"', left(coalesce(p_currency, 'null'), 10)
      using errcode = 'invalid_parameter_value';
  end if;
  if p_inr_per_unit is null or p_inr_per_unit <= 0 or p_inr_per_unit >= 1000000000000 then
    raise exception 'an exchange rate is a positive number of rupees per unit of %, got %', p_currency, coalesce(p_inr_per_unit::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if exists (select 1 from billing.exchange_rates r where r.currency = p_currency and r.effective_from = v_from) then
    raise exception 'a rate for % is already recorded from %: record the next one from a later moment', p_currency, v_from
      using errcode = 'invalid_parameter_value';
  end if;
  insert into billing.exchange_rates (currency, inr_per_unit, effective_from, reason, recorded_at)
  values (p_currency, p_inr_per_unit, v_from, v_reason, billing.now())
  returning id into v_id;
  return v_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.order_tax_quote (
  p_organization_id uuid,
  p_price_cents     bigint,
  p_includes_tax    boolean,
  p_currency        text,
  OUT               taxable_cents bigint,
  OUT               amount_cents bigint,
  OUT               gst_rate_bp integer,
  OUT               supply_type text,
  OUT               place_of_supply_state_code text,
  OUT               prices_include_tax boolean,
  OUT               lut_arn text,
  OUT               export_with_igst boolean
)
  RETURNS record
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.plan_in_currency (
  p_plan     public.billing_plans,
  p_currency text
)
  RETURNS public.billing_plans
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_plan public.billing_plans := p_plan;
  v_price bigint;
begin
  if p_currency is null or p_currency = p_plan.currency then
    return v_plan;
  end if;
  select pp.price_cents into v_price from public.plan_prices pp where pp.plan_id = p_plan.id and pp.currency = p_currency;
  if v_price is null then
    raise exception 'plan "%" is not offered in "%"%', p_plan.code, left(p_currency, 10),
      coalesce(' (it is: ' || (select pg_catalog.string_agg(c, ', ' order by c)
                               from (select p_plan.currency as c
                                     union all
                                     select pp.currency from public.plan_prices pp where pp.plan_id = p_plan.id) x) || ')', '')
      using errcode = 'invalid_parameter_value', hint = 'currency_not_offered';
  end if;
  v_plan.currency := p_currency;
  v_plan.price_cents := v_price;
  return v_plan;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.plan_price_for (
  p_organization_id uuid,
  p_plan            public.billing_plans,
  p_at              timestamp with time zone
)
  RETURNS bigint
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  if p_plan.id is null then
    return p_plan.price_cents;
  end if;
  -- A plan priced in another currency (billing.plan_in_currency): its plan_prices price; an
  -- override is in the plan's own currency.
  if p_plan.currency is distinct from (select p.currency from public.billing_plans p where p.id = p_plan.id) then
    return p_plan.price_cents;
  end if;
  return coalesce((billing.price_override_at(p_organization_id, p_plan.id, p_at)).price_paise, p_plan.price_cents);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.prepare_order_checkout (
  p_organization_id uuid,
  p_order_id        uuid,
  p_provider        text
)
  RETURNS SETOF billing.checkout_order
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_order public.orders;
  v_sub public.subscriptions;
begin
  if p_provider is null or p_provider not in ('payu', 'razorpay') then
    raise exception 'provider must be "payu" or "razorpay"' using errcode = 'invalid_parameter_value';
  end if;
  perform billing.require_role(p_organization_id, billing.managers());
  select * into v_order from public.orders o
  where o.id = p_order_id and o.organization_id = p_organization_id
  for update;
  if v_order.id is null then
    raise exception 'only owners and admins of the organization can pay its orders' using errcode = 'insufficient_privilege';
  end if;
  if v_order.kind <> 'upgrade' or v_order.status not in ('created', 'pending') or v_order.provider_order_id is not null
     or exists (select 1 from public.payment_events pe where pe.order_id = v_order.id) then
    raise exception 'order % is not an open upgrade order (status %)', v_order.receipt, v_order.status
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_order.expires_at <= v_now then
    raise exception 'upgrade order % expired at %: preview the change again', v_order.receipt, v_order.expires_at
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id;
  if v_sub.id is null or v_sub.status not in ('active', 'past_due')
     or v_sub.plan_id is distinct from (v_order.metadata ->> 'from_plan_id')::uuid
     or v_sub.current_period_end is distinct from (v_order.metadata ->> 'quoted_period_end')::timestamptz then
    raise exception 'upgrade order % no longer matches the subscription: preview the change again', v_order.receipt
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform billing.require_provider_currency(p_provider, v_order.currency);
  if p_provider = 'razorpay' and v_order.amount_cents < 100 then
    raise exception 'order % is for less than Razorpay''s minimum of 100 paise: pay it with PayU', v_order.receipt
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  update public.orders o
  set provider = p_provider::public.payment_provider,
      status = case when p_provider = 'payu' then 'pending' else 'created' end::public.order_status
  where o.id = v_order.id
  returning * into v_order;

  return next billing.checkout_answer(v_order, v_user_id, null);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.preview_checkout (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text,
  p_currency        text DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_plan public.billing_plans;
  v_price jsonb;
  v_quote record;
  v_tax record;
  v_rate numeric;
begin
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
  v_price := billing.checkout_discount(p_organization_id, v_plan, p_discount_code, billing.now(), false);
  select * into v_quote from billing.order_tax_quote(
    p_organization_id, (v_price ->> 'price_cents')::bigint,
    coalesce((select s.prices_include_tax from public.billing_settings s where s.id), false), v_plan.currency);
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
$function$;

CREATE OR REPLACE FUNCTION billing.quote_order_tax()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.refuse_plan_change (
  p_sub  public.subscriptions,
  p_from public.billing_plans,
  p_to   public.billing_plans,
  p_at   timestamp with time zone
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_paid_in text;
begin
  if p_sub.id is null or p_sub.status = 'pending_payment' then
    raise exception 'the organization has no paid subscription to change: buy plan "%" through checkout', p_to.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_sub.status = 'trialing' then
    raise exception 'the organization is on a trial: buy plan "%" through checkout (a payment during the trial starts the plan)', p_to.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_sub.status = 'past_due' or p_at >= p_sub.current_period_end then
    raise exception 'the current period ended on %: renew it through checkout before changing plan', p_sub.current_period_end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_from.id = p_to.id then
    raise exception 'the organization is already on plan "%"', p_to.code using errcode = 'invalid_parameter_value';
  end if;
  if p_sub.pending_plan_id = p_to.id then
    raise exception 'a change to plan "%" is already scheduled for %', p_to.code, p_sub.pending_plan_effective_at
      using errcode = 'invalid_parameter_value';
  end if;
  if p_from.currency <> p_to.currency then
    raise exception 'plan "%" is in % and the current plan in %: a change cannot switch currency', p_to.code,
      p_to.currency, p_from.currency using errcode = 'invalid_parameter_value';
  end if;
  -- A subscription paid in another currency than its plan's own (a price of public.plan_prices):
  -- upgrades are quoted in the plan's currency, so it changes plan by checking out the new one.
  v_paid_in := (select o.currency from public.orders o
                where o.subscription_id = p_sub.id and o.status = 'paid' and o.kind in ('new', 'renewal')
                order by o.paid_at desc limit 1);
  if v_paid_in <> p_to.currency then
    raise exception 'the subscription is paid in % and plan "%" is quoted in %: a change cannot switch currency (cancel, then check out plan "%" in %)',
      v_paid_in, p_to.code, p_to.currency, p_to.code, v_paid_in using errcode = 'invalid_parameter_value';
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.require_provider_currency (
  p_provider text,
  p_currency text
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.validate_payment_event (
  p_event jsonb
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'exchange_rate'), 'null') <> 'null'
     and (case when pg_catalog.jsonb_typeof(p_event -> 'exchange_rate') = 'number'
               then (p_event ->> 'exchange_rate')::numeric not between 0.000001 and 999999999999
               else true end) then
    raise exception 'payment event: exchange_rate must be a positive number of rupees per unit of the currency, got %', p_event -> 'exchange_rate'
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
$function$;

CREATE OR REPLACE FUNCTION public.create_checkout_order (
  p_organization_id uuid,
  p_plan_code       text,
  p_provider        text,
  p_discount_code   text DEFAULT NULL::text,
  p_currency        text DEFAULT NULL::text
)
  RETURNS SETOF billing.checkout_order
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return query select * from billing.create_checkout_order(p_organization_id, p_plan_code, p_provider, p_discount_code, p_currency);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text, text) FROM PUBLIC, "anon";

CREATE OR REPLACE FUNCTION public.credit_note_document (
  p_credit_note_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_note public.credit_notes%rowtype;
  v_invoice public.invoices%rowtype;
  v_line public.invoice_lines%rowtype;
begin
  select * into v_note from public.credit_notes c where c.id = p_credit_note_id;
  if not found then
    raise exception 'credit note % not found', p_credit_note_id using errcode = 'no_data_found';
  end if;
  select * into v_invoice from public.invoices i where i.id = v_note.invoice_id;
  if not found then
    raise exception 'the invoice of credit note % is not visible', p_credit_note_id using errcode = 'no_data_found';
  end if;
  select * into v_line from public.invoice_lines l where l.invoice_id = v_invoice.id order by l.line_number limit 1;

  return pg_catalog.jsonb_build_object(
    'document_type', 'credit_note',
    'title', 'Credit Note',
    'credit_note_id', v_note.id,
    'credit_note_number', v_note.credit_note_number,
    'credit_note_date', v_note.credit_note_date,
    'issued_at', v_note.issued_at,
    'financial_year', billing.financial_year_label(v_note.financial_year),
    'kind', v_note.kind,
    'reason', v_note.reason,
    'invoice', pg_catalog.jsonb_build_object(
      'invoice_id', v_invoice.id,
      'invoice_number', v_invoice.invoice_number,
      'invoice_date', v_invoice.invoice_date
    ),
    'currency', v_note.currency,
    'reverse_charge', false,
    'supply_type', v_invoice.supply_type,
    'endorsement', billing.export_endorsement(v_invoice),
    'lut_arn', v_invoice.lut_arn,
    'inr_value', case when v_note.exchange_rate is not null then pg_catalog.jsonb_build_object(
      'exchange_rate', v_note.exchange_rate,
      'taxable_paise', v_note.inr_taxable_paise, 'tax_paise', v_note.inr_total_paise - v_note.inr_taxable_paise,
      'total_paise', v_note.inr_total_paise) end,
    'seller', v_invoice.seller
      || pg_catalog.jsonb_build_object('state_name', billing.gst_state_name(v_invoice.seller ->> 'state_code')),
    'buyer', v_invoice.buyer
      || pg_catalog.jsonb_build_object('state_name', billing.gst_state_name(v_invoice.buyer ->> 'state_code')),
    'place_of_supply', pg_catalog.jsonb_build_object(
      'state_code', v_invoice.place_of_supply_state_code,
      'state_name', case when v_invoice.supply_type = 'export' then 'Outside India'
                         else billing.gst_state_name(v_invoice.place_of_supply_state_code) end
    ),
    'lines', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'line_number', 1,
      'description', coalesce(v_line.description, 'Credit against invoice ' || v_invoice.invoice_number),
      'sac_code', v_line.sac_code,
      'quantity', 1,
      'gst_rate_bp', v_line.gst_rate_bp,
      'cgst_rate_bp', v_line.cgst_rate_bp,
      'sgst_rate_bp', v_line.sgst_rate_bp,
      'igst_rate_bp', v_line.igst_rate_bp,
      'taxable_cents', v_note.taxable_cents,
      'cgst_cents', v_note.cgst_cents,
      'sgst_cents', v_note.sgst_cents,
      'igst_cents', v_note.igst_cents,
      'total_cents', v_note.total_cents
    )),
    'totals', pg_catalog.jsonb_build_object(
      'taxable_cents', v_note.taxable_cents,
      'cgst_cents', v_note.cgst_cents,
      'sgst_cents', v_note.sgst_cents,
      'igst_cents', v_note.igst_cents,
      'tax_cents', v_note.cgst_cents + v_note.sgst_cents + v_note.igst_cents,
      'total_cents', v_note.total_cents
    ),
    'amount_in_words', case when v_note.currency = 'INR' then billing.amount_in_words(v_note.total_cents) end
  );
end;
$function$;

CREATE OR REPLACE FUNCTION public.invoice_document (
  p_invoice_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_invoice public.invoices%rowtype;
  v_lines jsonb;
  v_credit_notes jsonb;
  v_credited bigint;
begin
  select * into v_invoice from public.invoices i where i.id = p_invoice_id;
  if not found then
    raise exception 'invoice % not found', p_invoice_id using errcode = 'no_data_found';
  end if;

  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'line_number', l.line_number,
           'description', l.description,
           'sac_code', l.sac_code,
           'quantity', l.quantity,
           'gst_rate_bp', l.gst_rate_bp,
           'cgst_rate_bp', l.cgst_rate_bp,
           'sgst_rate_bp', l.sgst_rate_bp,
           'igst_rate_bp', l.igst_rate_bp,
           'taxable_cents', l.taxable_cents,
           'cgst_cents', l.cgst_cents,
           'sgst_cents', l.sgst_cents,
           'igst_cents', l.igst_cents,
           'total_cents', l.total_cents
         ) || case when l.list_cents is not null
                   then pg_catalog.jsonb_build_object('list_cents', l.list_cents, 'discount_cents', l.discount_cents,
                                                      'discount_code', l.discount_code)
                   else '{}'::jsonb end
         order by l.line_number), '[]'::jsonb)
  into v_lines
  from public.invoice_lines l
  where l.invoice_id = p_invoice_id;

  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'credit_note_number', c.credit_note_number,
           'credit_note_date', c.credit_note_date,
           'kind', c.kind,
           'reason', c.reason,
           'taxable_cents', c.taxable_cents,
           'cgst_cents', c.cgst_cents,
           'sgst_cents', c.sgst_cents,
           'igst_cents', c.igst_cents,
           'total_cents', c.total_cents
         ) order by c.serial), '[]'::jsonb),
         coalesce(sum(c.total_cents), 0)
  into v_credit_notes, v_credited
  from public.credit_notes c
  where c.invoice_id = p_invoice_id;

  return pg_catalog.jsonb_build_object(
    'document_type', 'tax_invoice',
    'title', case when v_invoice.supply_type = 'export' and v_invoice.export_with_igst
                  then 'Tax Invoice (supply meant for export on payment of IGST)'
                  when v_invoice.supply_type = 'export'
                  then 'Tax Invoice (supply meant for export under LUT without payment of IGST)'
                  else 'Tax Invoice' end,
    'endorsement', billing.export_endorsement(v_invoice),
    'lut_arn', v_invoice.lut_arn,
    'inr_value', case when v_invoice.exchange_rate is not null then pg_catalog.jsonb_build_object(
      'exchange_rate', v_invoice.exchange_rate, 'exchange_rate_source', v_invoice.exchange_rate_source,
      'taxable_paise', v_invoice.inr_taxable_paise, 'tax_paise', v_invoice.inr_total_paise - v_invoice.inr_taxable_paise,
      'total_paise', v_invoice.inr_total_paise) end,
    'invoice_id', v_invoice.id,
    'invoice_number', v_invoice.invoice_number,
    'invoice_date', v_invoice.invoice_date,
    'issued_at', v_invoice.issued_at,
    'financial_year', billing.financial_year_label(v_invoice.financial_year),
    'order_id', v_invoice.order_id,
    'currency', v_invoice.currency,
    'reverse_charge', false,
    'supply_type', v_invoice.supply_type,
    'prices_include_tax', v_invoice.prices_include_tax,
    'seller', v_invoice.seller
      || pg_catalog.jsonb_build_object('state_name', billing.gst_state_name(v_invoice.seller ->> 'state_code')),
    'buyer', v_invoice.buyer
      || pg_catalog.jsonb_build_object('state_name', billing.gst_state_name(v_invoice.buyer ->> 'state_code')),
    'place_of_supply', pg_catalog.jsonb_build_object(
      'state_code', v_invoice.place_of_supply_state_code,
      'state_name', case when v_invoice.supply_type = 'export' then 'Outside India'
                         else billing.gst_state_name(v_invoice.place_of_supply_state_code) end
    ),
    'lines', v_lines,
    'totals', pg_catalog.jsonb_build_object(
      'taxable_cents', v_invoice.taxable_cents,
      'cgst_cents', v_invoice.cgst_cents,
      'sgst_cents', v_invoice.sgst_cents,
      'igst_cents', v_invoice.igst_cents,
      'tax_cents', v_invoice.cgst_cents + v_invoice.sgst_cents + v_invoice.igst_cents,
      'total_cents', v_invoice.total_cents
    ),
    'amount_in_words', case when v_invoice.currency = 'INR' then billing.amount_in_words(v_invoice.total_cents) end,
    'credit_notes', v_credit_notes,
    'credited_cents', v_credited,
    'outstanding_cents', v_invoice.total_cents - v_credited
  );
end;
$function$;

CREATE OR REPLACE FUNCTION public.preview_checkout (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text,
  p_currency        text DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return billing.preview_checkout(p_organization_id, p_plan_code, p_discount_code, p_currency);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."preview_checkout"(uuid, text, text, text) FROM PUBLIC, "anon";

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_provider_currencies_shape"
    CHECK
    (((jsonb_typeof(provider_currencies) = 'object'::text) AND (NOT jsonb_path_exists(provider_currencies, 'strict $.*?(@.type() != "array")'::jsonpath)) AND (NOT
    jsonb_path_exists(provider_currencies, 'strict $.*[*]?(!(@ like_regex "^[A-Z]{3}$"))'::jsonpath, '{}'::jsonb, true))));

ALTER TABLE "public"."credit_notes"
  ADD CONSTRAINT "credit_notes_exchange_rate_positive" CHECK ((exchange_rate > (0)::numeric));

ALTER TABLE "public"."credit_notes"
  ADD CONSTRAINT "credit_notes_inr_taxable_not_negative" CHECK ((inr_taxable_paise >= 0));

ALTER TABLE "public"."credit_notes"
  ADD CONSTRAINT "credit_notes_inr_total_not_negative" CHECK ((inr_total_paise >= 0));

ALTER TABLE "public"."credit_notes"
  ADD CONSTRAINT "credit_notes_inr_value_with_rate" CHECK ((((exchange_rate IS NULL) = (inr_total_paise IS NULL)) AND ((exchange_rate IS NULL) = (inr_taxable_paise IS NULL))));

ALTER TABLE "public"."invoices"
  ADD CONSTRAINT "invoices_exchange_rate_positive" CHECK ((exchange_rate > (0)::numeric));

ALTER TABLE "public"."invoices"
  ADD CONSTRAINT "invoices_exchange_rate_source_known" CHECK ((exchange_rate_source = ANY (ARRAY['order'::text, 'provider'::text])));

ALTER TABLE "public"."invoices"
  ADD CONSTRAINT "invoices_export_fields_only_on_exports" CHECK (((supply_type = 'export'::public.supply_type) OR ((lut_arn IS NULL) AND (NOT export_with_igst))));

ALTER TABLE "public"."invoices"
  ADD CONSTRAINT "invoices_inr_taxable_not_negative" CHECK ((inr_taxable_paise >= 0));

ALTER TABLE "public"."invoices"
  ADD CONSTRAINT "invoices_inr_total_not_negative" CHECK ((inr_total_paise >= 0));

ALTER TABLE "public"."invoices"
  ADD CONSTRAINT "invoices_inr_value_with_rate"
    CHECK
    ((((exchange_rate IS NULL) = (inr_total_paise IS NULL)) AND ((exchange_rate IS NULL) = (inr_taxable_paise IS NULL)) AND ((exchange_rate IS NULL) = (exchange_rate_source IS
    NULL))));

ALTER TABLE "public"."invoices"
  ADD CONSTRAINT "invoices_tax_matches_supply" CHECK (
CASE supply_type
    WHEN 'intra_state'::public.supply_type THEN ((igst_cents = 0) AND (cgst_cents = sgst_cents) AND (place_of_supply_state_code IS NOT NULL))
    WHEN 'inter_state'::public.supply_type THEN ((cgst_cents = 0) AND (sgst_cents = 0) AND (place_of_supply_state_code IS NOT NULL))
    ELSE ((cgst_cents = 0) AND (sgst_cents = 0) AND (place_of_supply_state_code IS NULL) AND (export_with_igst OR (igst_cents = 0)) AND (NOT (export_with_igst AND (lut_arn IS
      NOT NULL))))
END);

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_exchange_rate_positive" CHECK ((exchange_rate > (0)::numeric));

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_export_tax_known"
    CHECK
    ((((supply_type IS DISTINCT FROM 'export'::public.supply_type) AND (lut_arn IS NULL) AND (NOT export_with_igst)) OR ((supply_type = 'export'::public.supply_type) AND (NOT
    ((lut_arn IS NOT NULL) AND export_with_igst)))));

ALTER TABLE "public"."plan_prices"
  ADD CONSTRAINT "plan_prices_plan_id_fkey" FOREIGN KEY (plan_id) REFERENCES public.billing_plans(id) ON DELETE CASCADE;

CREATE UNIQUE INDEX lut_registrations_live_idx ON billing.lut_registrations USING btree (financial_year)
  WHERE (superseded_at IS NULL);

CREATE TRIGGER plan_prices_check
  BEFORE INSERT OR UPDATE ON public.plan_prices
  FOR EACH ROW
  EXECUTE FUNCTION billing.check_plan_price();

CREATE TRIGGER plan_prices_touch_updated_at
  BEFORE UPDATE ON public.plan_prices
  FOR EACH ROW
  EXECUTE FUNCTION billing.touch_updated_at();

CREATE POLICY "Plan prices are readable with their plan" ON "public"."plan_prices"
  FOR SELECT
  TO "anon", "authenticated"
  USING ((plan_id IN ( SELECT p.id
   FROM public.billing_plans p)));

COMMENT ON COLUMN "public"."billing_settings"."provider_currencies" IS 'The currencies each payment provider collects here, by provider name: {"payu": ["INR"], "razorpay": ["INR"]}. A provider not named collects INR only. Checkout refuses an order in another currency before any provider call (HINT currency_not_accepted); add a currency when the provider account is enabled for it.';

COMMENT ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text, text) IS 'Starts a checkout: the signed-in owner or admin of the organization buys an active paid plan through a provider, with an optional discount code and currency (a price of public.plan_prices; null: the plan''s own).';

COMMENT ON FUNCTION "public"."preview_checkout"(uuid, text, text, text) IS 'What checkout would charge now for a plan, with an optional discount code and currency (null: the plan''s own, or a renewal''s): list, discount, taxable value, tax and total in the currency''s minor unit.';

COMMENT ON TABLE "public"."plan_prices" IS 'A plan''s prices in other currencies than its own (minor units, before GST), which checkout may choose.';

REVOKE ALL ON FUNCTION "billing"."check_plan_price"() FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."checkout_currency"(uuid, public.billing_plans, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."checkout_currency"(uuid, public.billing_plans, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."create_checkout_order"(uuid, text, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."create_checkout_order"(uuid, text, text, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "billing"."exchange_rate_at"(text, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."exchange_rate_at"(text, timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."export_endorsement"(public.invoices) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."export_endorsement"(public.invoices) TO "authenticated", "service_role";

REVOKE ALL ON FUNCTION "billing"."lut_for"(timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."lut_for"(timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."operator_record_lut"(text, text, date, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."operator_record_lut"(text, text, date, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."operator_set_exchange_rate"(text, numeric, timestamp WITH time zone, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."operator_set_exchange_rate"(text, numeric, timestamp WITH time zone, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."order_tax_quote"(uuid, bigint, boolean, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."order_tax_quote"(uuid, bigint, boolean, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."plan_in_currency"(public.billing_plans, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."plan_in_currency"(public.billing_plans, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."preview_checkout"(uuid, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."preview_checkout"(uuid, text, text, text) TO "authenticated", "service_role";

REVOKE ALL ON FUNCTION "billing"."require_provider_currency"(text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."require_provider_currency"(text, text) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text, text) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."preview_checkout"(uuid, text, text, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text, text) TO "service_role";

GRANT INSERT, SELECT ON TABLE "billing"."exchange_rates" TO "service_role";

GRANT INSERT, SELECT, UPDATE ON TABLE "billing"."lut_registrations" TO "service_role";

REVOKE ALL ON TABLE "public"."plan_prices" FROM "anon";

GRANT SELECT ON TABLE "public"."plan_prices" TO "anon";

REVOKE ALL ON TABLE "public"."plan_prices" FROM "authenticated";

GRANT SELECT ON TABLE "public"."plan_prices" TO "authenticated";

REVOKE ALL ON TABLE "public"."plan_prices" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."plan_prices" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."plan_prices" TO "service_role";
