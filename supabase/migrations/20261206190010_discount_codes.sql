-- discount_codes: drafted by `npm run db:diff -- discount_codes` from the difference between the database the
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
-- What this migration does: discount codes (issue 25). billing.discount_codes (operators create
-- and end them with billing.create_discount_code and billing.deactivate_discount_code; members
-- never list them), public.discount_redemptions (members read their organization's: reserved with
-- the order, redeemed when it is paid, released when it closes unpaid, trigger
-- orders_settle_discount), the price of an order as the list price (billing.plan_price_for, a
-- plain plan price here; private pricing replaces its body) less the discount, taxed on what is
-- left (orders.list_cents, discount_cents, discount_redemption_id; invoice_lines.list_cents,
-- discount_cents, discount_code), checkout, preview_checkout, change_plan and preview_plan_change
-- with an optional code, proration at the price the period was paid (billing.paid_period_price),
-- and orders and invoices of 0 for a discount that covers the whole price.
--
-- What a diff cannot know: no backfill is needed. Orders and invoice lines made before have no
-- discount (list_cents null, discount_cents 0), and the proration of a period paid before this
-- migration falls back to the plan's price, as it was computed before. The signatures of
-- create_checkout_order, change_plan, preview_plan_change and plan_change_quote gain a last
-- argument with a default: callers that pass the old arguments call the new functions unchanged.

SET local check_function_bodies = off;

ALTER TABLE "public"."invoices"
  DROP CONSTRAINT "invoices_total_cents_check";

ALTER TABLE "public"."orders"
  DROP CONSTRAINT "orders_amount_cents_check";

DROP FUNCTION "billing"."change_plan"(uuid, text);

DROP FUNCTION "billing"."create_checkout_order"(uuid, text, text);

DROP FUNCTION "billing"."plan_change_quote"(uuid, text, timestamp WITH time zone);

DROP FUNCTION "billing"."preview_plan_change"(uuid, text);

DROP FUNCTION "public"."change_plan"(uuid, text);

DROP FUNCTION "public"."create_checkout_order"(uuid, text, text);

DROP FUNCTION "public"."preview_plan_change"(uuid, text);

CREATE TABLE "billing"."discount_codes" (
  "id"           uuid    NOT NULL DEFAULT gen_random_uuid(),
  "code"         text    NOT NULL,
  "percent_bps"  integer,
  "amount_paise" bigint,
  CONSTRAINT "discount_codes_amount_paise_check" CHECK ((amount_paise > 0)),
  CONSTRAINT "discount_codes_code_check" CHECK ((code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{2,39}$'::text)),
  CONSTRAINT "discount_codes_one_kind" CHECK (((percent_bps IS NULL) <> (amount_paise IS NULL))),
  CONSTRAINT "discount_codes_percent_bps_check" CHECK (((percent_bps >= 1) AND (percent_bps <= 10000))),
  CONSTRAINT "discount_codes_pkey" PRIMARY KEY (id)
);

CREATE TABLE "public"."discount_redemptions" (
  "id"               uuid NOT NULL DEFAULT gen_random_uuid(),
  "organization_id"  uuid NOT NULL,
  "discount_code_id" uuid NOT NULL,
  "code"             text NOT NULL,
  "order_id"         uuid NOT NULL,
  CONSTRAINT "discount_redemptions_order_unique" UNIQUE (order_id),
  CONSTRAINT "discount_redemptions_pkey" PRIMARY KEY (id)
);

ALTER TABLE "public"."discount_redemptions"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."discount_redemptions" FROM "anon";

ALTER TABLE "public"."invoice_lines"
  ADD COLUMN "list_cents" bigint;

ALTER TABLE "public"."invoice_lines"
  ADD COLUMN "discount_cents" bigint NOT NULL DEFAULT 0;

ALTER TABLE "public"."invoice_lines"
  ADD COLUMN "discount_code" text;

ALTER TABLE "public"."orders"
  ADD COLUMN "list_cents" bigint;

ALTER TABLE "public"."orders"
  ADD COLUMN "discount_cents" bigint NOT NULL DEFAULT 0;

ALTER TABLE "public"."orders"
  ADD COLUMN "discount_redemption_id" uuid;

CREATE TYPE "public"."discount_duration" AS ENUM (
  'once',
  'repeating',
  'forever'
);

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "duration" public.discount_duration NOT NULL DEFAULT 'once'::public.discount_duration;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "periods" integer;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "valid_from" timestamp WITH time zone;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "valid_until" timestamp WITH time zone;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "max_redemptions" integer;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "max_per_organization" integer DEFAULT 1;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "plans" text[];

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "first_purchase_only" boolean NOT NULL DEFAULT false;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "active" boolean NOT NULL DEFAULT true;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "deactivated_at" timestamp WITH time zone;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "deactivated_reason" text;

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "created_at" timestamp WITH time zone NOT NULL DEFAULT now();

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "updated_at" timestamp WITH time zone NOT NULL DEFAULT now();

CREATE TYPE "public"."discount_redemption_status" AS ENUM (
  'reserved',
  'redeemed',
  'released'
);

ALTER TABLE "public"."discount_redemptions"
  ADD COLUMN "status" public.discount_redemption_status NOT NULL DEFAULT 'reserved'::public.discount_redemption_status;

ALTER TABLE "public"."discount_redemptions"
  ADD COLUMN "terms" jsonb NOT NULL;

-- Declared before redeemed_at and released_at, as the schema has it (the diff put it last).
ALTER TABLE "public"."discount_redemptions"
  ADD COLUMN "created_at" timestamp WITH time zone NOT NULL DEFAULT billing.now();

ALTER TABLE "public"."discount_redemptions"
  ADD COLUMN "redeemed_at" timestamp WITH time zone;

ALTER TABLE "public"."discount_redemptions"
  ADD COLUMN "released_at" timestamp WITH time zone;

CREATE OR REPLACE FUNCTION billing.change_plan (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_quote jsonb;
  v_sub public.subscriptions;
  v_to public.billing_plans;
  v_order public.orders;
  v_method text;
begin
  perform billing.require_role(p_organization_id, billing.managers());
  -- The open upgrade orders first, then the live subscription (the payment path's lock order:
  -- it holds an order and then locks the subscription); then quote against what is locked.
  perform billing.lock_open_upgrade_orders(p_organization_id);
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  v_quote := billing.plan_change_quote(p_organization_id, p_plan_code, v_now, p_discount_code);
  v_method := v_quote ->> 'method';
  select * into v_to from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_sub.cancel_at_period_end and v_method <> 'cancel_and_resubscribe' then
    raise exception 'a cancellation is scheduled for %: resume the subscription before changing plan', v_sub.current_period_end
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  if v_method = 'prorated_order' then
    perform billing.cancel_open_upgrade_orders(p_organization_id, 'superseded by a new plan change');
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, kind, amount_cents, currency, status, created_by,
       expires_at, metadata, list_cents, discount_cents, discount_redemption_id)
    values
      (p_organization_id, v_to.id, v_sub.id,
       case when v_sub.provider in ('payu', 'razorpay') then v_sub.provider else 'payu' end,
       'upgrade', (v_quote ->> 'amount_cents')::bigint, v_to.currency, 'created', v_user_id,
       least(v_now + interval '1 day', v_sub.current_period_end),
       pg_catalog.jsonb_build_object('plan_code', v_to.code, 'recurring', false, 'quote', v_quote - 'discount',
                                     'from_plan_id', v_sub.plan_id, 'quoted_period_end', v_sub.current_period_end,
                                     'period_price_cents', (v_quote ->> 'period_price_cents')::bigint)
         || case when v_quote ? 'discount'
                 then pg_catalog.jsonb_build_object('discount_code', v_quote ->> 'discount_code',
                                                    'discount_terms', v_quote #> '{discount,terms}')
                 else '{}'::jsonb end,
       case when v_quote ? 'discount' then (v_quote ->> 'amount_cents')::bigint + (v_quote ->> 'discount_cents')::bigint end,
       coalesce((v_quote ->> 'discount_cents')::bigint, 0),
       (v_quote #>> '{discount,redemption_id}')::uuid)
    returning * into v_order;
    if v_quote ? 'discount' then
      perform billing.reserve_discount(v_order, v_quote -> 'discount');
    end if;
    -- An intent: the subscription is untouched until the order is paid.
    perform billing.log_subscription_intent(v_sub.id, 'upgrade_ordered', v_to.id, 'user', v_user_id,
      p_reason => pg_catalog.format('upgrade to %s ordered: %s to pay', v_to.code,
                                    billing.format_money(v_order.amount_cents, v_order.currency)),
      p_metadata => pg_catalog.jsonb_build_object('order_id', v_order.id, 'amount_cents', v_order.amount_cents));
    return (v_quote - 'discount') || pg_catalog.jsonb_build_object('result', 'order_created', 'order_id', v_order.id,
                                                    'receipt', v_order.receipt, 'order_amount_cents', v_order.amount_cents,
                                                    'order_expires_at', v_order.expires_at);

  elsif v_method = 'immediate' then
    perform billing.cancel_open_upgrade_orders(p_organization_id, 'superseded by a new plan change');
    perform billing.set_change_context('plan_changed', 'user', v_user_id,
      p_reason => 'upgrade with nothing to pay: the unused value covers the new plan', p_metadata => v_quote,
      p_effective_at => v_now);
    update public.subscriptions s
    set plan_id = v_to.id, current_period_start = v_now,
        current_period_end = (v_quote ->> 'new_period_end')::timestamptz,
        pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id;
    return v_quote || pg_catalog.jsonb_build_object('result', 'changed');

  elsif v_method = 'scheduled' then
    perform billing.set_change_context('downgrade_scheduled', 'user', v_user_id,
      p_reason => pg_catalog.format('downgrade to %s at the period end (no refund)', v_to.code),
      p_metadata => pg_catalog.jsonb_build_object('effective_at', v_sub.current_period_end,
                                                  'replaced_pending_plan_id', v_sub.pending_plan_id),
      p_effective_at => v_now);
    update public.subscriptions s
    set pending_plan_id = v_to.id, pending_plan_effective_at = s.current_period_end
    where s.id = v_sub.id;
    return v_quote || pg_catalog.jsonb_build_object('result', 'scheduled');

  else
    -- cancel_and_resubscribe (Razorpay recurring). Already cancelling: nothing changes, nothing is recorded.
    perform billing.set_change_context('cancel_scheduled', 'user', v_user_id,
      p_reason => pg_catalog.format('plan change to %s: Razorpay subscription cancels at cycle end, new subscription to follow',
                                    v_to.code),
      p_metadata => pg_catalog.jsonb_build_object('to_plan_id', v_to.id, 'method', 'cancel_and_resubscribe'),
      p_effective_at => v_now);
    update public.subscriptions s
    set cancel_at_period_end = true, canceled_at = v_now, pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id and not s.cancel_at_period_end;
    return v_quote || pg_catalog.jsonb_build_object(
      'result', 'cancel_scheduled',
      'provider_action', billing.provider_action(v_sub, true),
      'checkout', pg_catalog.jsonb_build_object('plan_code', v_to.code, 'provider', 'razorpay'));
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.check_discount_limits (
  p_code            billing.discount_codes,
  p_organization_id uuid,
  p_at              timestamp with time zone
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  if p_code.max_per_organization is not null
     and billing.discount_redemptions_counted(p_code.id, p_organization_id, p_at) >= p_code.max_per_organization then
    perform billing.refuse_discount('discount_already_used',
      pg_catalog.format('discount code %s was already used by this organization (%s time(s) allowed)',
                        p_code.code, p_code.max_per_organization));
  end if;
  if p_code.max_redemptions is not null
     and billing.discount_redemptions_counted(p_code.id, null, p_at) >= p_code.max_redemptions then
    perform billing.refuse_discount('discount_exhausted',
      pg_catalog.format('discount code %s has no redemptions left (%s in all)', p_code.code, p_code.max_redemptions));
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.checkout_discount (
  p_organization_id uuid,
  p_plan            public.billing_plans,
  p_code            text,
  p_at              timestamp with time zone,
  p_recurring       boolean                  DEFAULT false
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
    perform billing.check_discount_limits(v_code, p_organization_id, p_at);
    v_terms := billing.discount_terms(v_code);
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
$function$;

CREATE OR REPLACE FUNCTION billing.complete_free_order (
  p_order public.orders
)
  RETURNS public.orders
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.create_checkout_order (
  p_organization_id uuid,
  p_plan_code       text,
  p_provider        text,
  p_discount_code   text DEFAULT NULL::text
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

  -- The price: the organization's list price less a discount (a code given, refused with its
  -- reason; or a repeating redemption carried to this renewal), before any order exists.
  v_price := billing.checkout_discount(p_organization_id, v_plan, p_discount_code, v_now, v_rzp_plan is not null);
  v_discounted := v_price ? 'terms';
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

CREATE OR REPLACE FUNCTION billing.create_discount_code (
  p_code text,
  p_spec jsonb
)
  RETURNS billing.discount_codes
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.deactivate_discount_code (
  p_code   text,
  p_reason text
)
  RETURNS billing.discount_codes
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_row billing.discount_codes;
begin
  if nullif(btrim(coalesce(p_reason, '')), '') is null then
    raise exception 'a reason is required to end a discount code' using errcode = 'invalid_parameter_value';
  end if;
  update billing.discount_codes c
  set active = false, deactivated_at = coalesce(c.deactivated_at, billing.now()), deactivated_reason = btrim(p_reason)
  where lower(c.code) = lower(btrim(p_code))
  returning * into v_row;
  if v_row.id is null then
    raise exception 'no discount code "%"', coalesce(p_code, '') using errcode = 'no_data_found';
  end if;
  return v_row;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.discount_amount (
  p_terms       jsonb,
  p_price_cents bigint
)
  RETURNS bigint
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.discount_redemptions_counted (
  p_code_id         uuid,
  p_organization_id uuid,
  p_at              timestamp with time zone
)
  RETURNS integer
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.discount_terms (
  p_code billing.discount_codes
)
  RETURNS jsonb
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
begin
  return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'code', p_code.code, 'percent_bps', p_code.percent_bps, 'amount_paise', p_code.amount_paise,
    'duration', p_code.duration, 'periods', p_code.periods, 'plans', pg_catalog.to_jsonb(p_code.plans)));
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
                                v_order.gst_rate_bp, v_supply_type, v_order.prices_include_tax);
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
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents
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
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents
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
    case when v_supply_type = 'export' then 0 else v_order.gst_rate_bp end,
    v_tax.cgst_rate_bp, v_tax.sgst_rate_bp, v_tax.igst_rate_bp,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents,
    v_order.list_cents, v_order.discount_cents, v_order.metadata ->> 'discount_code'
  );
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_invoice_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.paid_period_price (
  p_sub  public.subscriptions,
  p_plan public.billing_plans,
  p_at   timestamp with time zone
)
  RETURNS bigint
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_price bigint;
begin
  select (o.metadata ->> 'period_price_cents')::bigint into v_price
  from public.orders o
  where o.subscription_id = p_sub.id and o.plan_id = p_plan.id and o.status = 'paid'
    and o.kind in ('new', 'renewal', 'upgrade')
  order by o.paid_at desc
  limit 1;
  return coalesce(v_price, billing.plan_price_for(p_sub.organization_id, p_plan, p_at));
end;
$function$;

CREATE OR REPLACE FUNCTION billing.plan_change_quote (
  p_organization_id uuid,
  p_plan_code       text,
  p_at              timestamp with time zone,
  p_discount_code   text                     DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_sub public.subscriptions;
  v_from public.billing_plans;
  v_to public.billing_plans;
  v_unused record;
  v_kind text;
  v_method text;
  v_amount bigint := 0;
  v_lines jsonb := '[]'::jsonb;
  v_effective_at timestamptz;
  v_recurring boolean;
  v_paid_start timestamptz;
  v_timezone text;
  v_price jsonb;
  v_to_price bigint;
  v_discount jsonb := '{}'::jsonb;
begin
  select * into v_to from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_to.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  if v_to.tier = 'free' or v_to.price_cents = 0 then
    raise exception 'plan "%" is the free plan: to move to it, cancel the subscription (cancel_subscription)', v_to.code
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due');
  select * into v_from from public.billing_plans p where p.id = v_sub.plan_id;
  perform billing.refuse_plan_change(v_sub, v_from, v_to, p_at);

  v_kind := case when billing.is_upgrade(v_from, v_to) then 'upgrade' else 'downgrade' end;
  v_recurring := v_sub.provider = 'razorpay' and v_sub.provider_subscription_id is not null;
  -- The paid part of the period: a trial paid before its end keeps current_period_start at the
  -- trial start and runs its first paid period from trial_end (apply_captured_payment extends from
  -- the period end), so trial days are not paid time. From there, unused <= cycles x price.
  v_paid_start := greatest(v_sub.current_period_start, coalesce(v_sub.trial_end, v_sub.current_period_start));
  v_unused := billing.unused_value(billing.paid_period_price(v_sub, v_from, p_at), v_from.interval, v_paid_start,
                                  v_sub.current_period_end, p_at);
  if v_kind = 'downgrade' and not v_recurring and nullif(btrim(coalesce(p_discount_code, '')), '') is not null then
    perform billing.refuse_discount('discount_not_applicable',
      pg_catalog.format('a downgrade to %s starts at the period end: use the code when paying for it', v_to.code));
  end if;
  v_price := billing.checkout_discount(p_organization_id, v_to, p_discount_code, p_at, v_recurring);
  v_to_price := (v_price ->> 'price_cents')::bigint;
  if v_price ? 'terms' and v_kind = 'upgrade' and not v_recurring then
    v_discount := pg_catalog.jsonb_build_object(
      'list_cents', (v_price ->> 'list_cents')::bigint, 'discount_cents', (v_price ->> 'discount_cents')::bigint,
      'discount_code', v_price ->> 'code', 'discount', v_price);
  end if;
  select g.timezone into v_timezone from public.organizations g where g.id = p_organization_id;

  if v_recurring then
    -- Razorpay charges a subscription's plan in full: cancel this one at cycle end, buy the new one.
    v_method := 'cancel_and_resubscribe';
    v_amount := v_to.price_cents;
    v_effective_at := case when v_kind = 'upgrade' then p_at else v_sub.current_period_end end;
    v_lines := pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'description', pg_catalog.format('%s, first charge of a new Razorpay subscription (%s per %s)',
                                       v_to.name, billing.format_money(v_to.price_cents, v_to.currency), v_to.interval),
      'amount_cents', v_to.price_cents));
  elsif v_kind = 'upgrade' then
    v_effective_at := p_at;
    v_lines := pg_catalog.jsonb_build_array(
      pg_catalog.jsonb_build_object(
        'description', pg_catalog.format('%s, one %s from the payment', v_to.name, v_to.interval),
        'amount_cents', (v_price ->> 'list_cents')::bigint))
      || case when v_discount ? 'discount' then pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
           'description', pg_catalog.format('Discount %s', v_price ->> 'code'),
           'amount_cents', -(v_price ->> 'discount_cents')::bigint)) else '[]'::jsonb end
      || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'description', pg_catalog.format('Unused time on %s: %s of %s seconds of the current period', v_from.name,
                                         v_unused.seconds_left, v_unused.period_seconds),
        'amount_cents', -v_unused.unused_cents));
    v_amount := v_to_price - v_unused.unused_cents;
    if v_amount <= 0 and v_price ? 'code_id' then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('the unused value of %s already pays for %s: nothing is left for code %s to discount',
                          v_from.code, v_to.code, v_price ->> 'code'));
    end if;
    if v_amount < 0 then
      v_lines := v_lines || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'description', 'Credit above the new plan''s price (not refunded)',
        'amount_cents', -v_amount));
      v_amount := 0;
    end if;
    v_method := case when v_amount > 0 then 'prorated_order' else 'immediate' end;
  else
    v_method := 'scheduled';
    v_effective_at := v_sub.current_period_end;
  end if;

  return pg_catalog.jsonb_build_object(
    'kind', v_kind,
    'method', v_method,
    'amount_cents', v_amount,
    'currency', v_to.currency,
    'lines', v_lines,
    'effective_at', v_effective_at,
    'seconds_left', v_unused.seconds_left,
    'period_seconds', v_unused.period_seconds,
    'cycles', v_unused.cycles,
    'unused_cents', v_unused.unused_cents,
    'subscription_id', v_sub.id,
    'from_plan_code', v_from.code,
    'to_plan_code', v_to.code,
    'current_period_start', v_sub.current_period_start,
    'paid_period_start', v_paid_start,
    'current_period_end', v_sub.current_period_end,
    'new_period_end', billing.period_end_after(v_effective_at, v_to.interval, v_timezone),
    'period_price_cents', v_to_price) || v_discount;
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
  -- One price for every organization at every time: the plan's list price (the organization and
  -- the time are read so a per-organization price can replace this body without new callers).
  perform p_organization_id, p_at;
  return p_plan.price_cents;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.preview_checkout (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text
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
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role), 'preview a checkout');
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  if v_plan.price_cents <= 0 or v_plan.tier = 'free' then
    raise exception 'plan "%" is free: there is nothing to pay', v_plan.code using errcode = 'object_not_in_prerequisite_state';
  end if;
  v_price := billing.checkout_discount(p_organization_id, v_plan, p_discount_code, billing.now(), false);
  select * into v_quote from billing.order_tax_quote(
    p_organization_id, (v_price ->> 'price_cents')::bigint,
    coalesce((select s.prices_include_tax from public.billing_settings s where s.id), false), v_plan.currency);
  if v_quote.supply_type is not null then
    select * into v_tax from billing.compute_line_tax(
      case when v_quote.prices_include_tax then v_quote.amount_cents else v_quote.taxable_cents end,
      v_quote.gst_rate_bp, v_quote.supply_type, v_quote.prices_include_tax);
  end if;
  return pg_catalog.jsonb_build_object(
    'plan_code', v_plan.code, 'currency', v_plan.currency, 'code', v_price ->> 'code',
    'list_paise', (v_price ->> 'list_cents')::bigint, 'discount_paise', (v_price ->> 'discount_cents')::bigint,
    'taxable_paise', v_quote.taxable_cents, 'cgst_paise', coalesce(v_tax.cgst_cents, 0),
    'sgst_paise', coalesce(v_tax.sgst_cents, 0), 'igst_paise', coalesce(v_tax.igst_cents, 0),
    'total_paise', v_quote.amount_cents, 'prices_include_tax', v_quote.prices_include_tax,
    'supply_type', v_quote.supply_type);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.preview_plan_change (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
begin
  perform billing.require_role(p_organization_id, billing.managers());
  return billing.plan_change_quote(p_organization_id, p_plan_code, billing.now(), p_discount_code);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.refuse_discount (
  p_hint    text,
  p_message text
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  raise exception '%', p_message using errcode = 'invalid_parameter_value', hint = p_hint;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.reserve_discount (
  p_order    public.orders,
  p_discount jsonb
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.settle_discount_redemption()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.change_plan (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return billing.change_plan(p_organization_id, p_plan_code, p_discount_code);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."change_plan"(uuid, text, text) FROM PUBLIC, "anon";

CREATE OR REPLACE FUNCTION public.create_checkout_order (
  p_organization_id uuid,
  p_plan_code       text,
  p_provider        text,
  p_discount_code   text DEFAULT NULL::text
)
  RETURNS SETOF billing.checkout_order
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return query select * from billing.create_checkout_order(p_organization_id, p_plan_code, p_provider, p_discount_code);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text) FROM PUBLIC, "anon";

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
    'title', case when v_invoice.supply_type = 'export'
                  then 'Tax Invoice (supply meant for export under LUT without payment of IGST)'
                  else 'Tax Invoice' end,
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
  p_discount_code   text DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return billing.preview_checkout(p_organization_id, p_plan_code, p_discount_code);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."preview_checkout"(uuid, text, text) FROM PUBLIC, "anon";

CREATE OR REPLACE FUNCTION public.preview_plan_change (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return billing.preview_plan_change(p_organization_id, p_plan_code, p_discount_code);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."preview_plan_change"(uuid, text, text) FROM PUBLIC, "anon";

ALTER TABLE "billing"."discount_codes"
  ADD CONSTRAINT "discount_codes_max_per_organization_check" CHECK ((max_per_organization > 0));

ALTER TABLE "billing"."discount_codes"
  ADD CONSTRAINT "discount_codes_max_redemptions_check" CHECK ((max_redemptions > 0));

ALTER TABLE "billing"."discount_codes"
  ADD CONSTRAINT "discount_codes_periods_check" CHECK (((periods >= 1) AND (periods <= 1200)));

ALTER TABLE "billing"."discount_codes"
  ADD CONSTRAINT "discount_codes_periods_when_repeating" CHECK (((duration = 'repeating'::public.discount_duration) = (periods IS NOT NULL)));

ALTER TABLE "billing"."discount_codes"
  ADD CONSTRAINT "discount_codes_plans_check" CHECK ((cardinality(plans) > 0));

ALTER TABLE "billing"."discount_codes"
  ADD CONSTRAINT "discount_codes_validity" CHECK (((valid_until IS NULL) OR (valid_from IS NULL) OR (valid_until > valid_from)));

ALTER TABLE "public"."discount_redemptions"
  ADD CONSTRAINT "discount_redemptions_discount_code_id_fkey" FOREIGN KEY (discount_code_id) REFERENCES billing.discount_codes(id) ON DELETE RESTRICT;

ALTER TABLE "public"."discount_redemptions"
  ADD CONSTRAINT "discount_redemptions_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE "public"."discount_redemptions"
  ADD CONSTRAINT "discount_redemptions_terms_check" CHECK ((jsonb_typeof(terms) = 'object'::text));

ALTER TABLE "public"."invoice_lines"
  ADD CONSTRAINT "invoice_lines_discount_cents_check" CHECK ((discount_cents >= 0));

ALTER TABLE "public"."invoice_lines"
  ADD CONSTRAINT "invoice_lines_discount_within_list" CHECK (((discount_cents = 0) OR (discount_cents <= list_cents)));

ALTER TABLE "public"."invoice_lines"
  ADD CONSTRAINT "invoice_lines_list_cents_check" CHECK ((list_cents >= 0));

ALTER TABLE "public"."invoices"
  ADD CONSTRAINT "invoices_total_cents_check" CHECK ((total_cents >= 0));

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_amount_cents_check" CHECK ((amount_cents >= 0));

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_discount_cents_check" CHECK ((discount_cents >= 0));

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_discount_redemption_id_fkey" FOREIGN KEY (discount_redemption_id) REFERENCES public.discount_redemptions(id);

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_discount_within_list" CHECK (((discount_cents = 0) OR (discount_cents <= list_cents)));

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_list_cents_check" CHECK ((list_cents >= 0));

CREATE UNIQUE INDEX discount_codes_code_idx ON billing.discount_codes USING btree (lower(code));

CREATE INDEX discount_redemptions_code_idx ON public.discount_redemptions USING btree (discount_code_id, status);

CREATE INDEX orders_discount_redemption_id_idx ON public.orders USING btree (discount_redemption_id)
  WHERE (discount_redemption_id IS NOT NULL);

CREATE TRIGGER discount_codes_touch_updated_at
  BEFORE UPDATE ON billing.discount_codes
  FOR EACH ROW
  EXECUTE FUNCTION billing.touch_updated_at();

CREATE TRIGGER orders_settle_discount
  AFTER UPDATE OF status ON public.orders
  FOR EACH ROW
  WHEN (((old.status IS DISTINCT FROM new.status) AND (new.discount_redemption_id IS NOT NULL)))
  EXECUTE FUNCTION billing.settle_discount_redemption();

CREATE POLICY "Members can read their organization's discount redemptions" ON "public"."discount_redemptions"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids() AS member_organization_ids)));

COMMENT ON FUNCTION "public"."change_plan"(uuid, text, text) IS 'Changes the organization''s plan: an upgrade is a prorated order to pay (applied at once when nothing is due), a downgrade is scheduled for the period end. Owners and admins.';

COMMENT ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text) IS 'Starts a checkout: the signed-in owner or admin of the organization buys an active paid plan through a provider, with an optional discount code.';

COMMENT ON FUNCTION "public"."preview_checkout"(uuid, text, text) IS 'What checkout would charge now for a plan, with an optional discount code: list, discount, taxable value, tax and total in paise.';

COMMENT ON FUNCTION "public"."preview_plan_change"(uuid, text, text) IS 'What change_plan would do now, and what it would charge; writes nothing. Owners and admins.';

COMMENT ON TABLE "billing"."discount_codes" IS 'Discount codes: their terms, validity and limits (never listed to members).';

COMMENT ON TABLE "public"."discount_redemptions" IS 'An organization''s use of a discount code: reserved, redeemed when paid, released when its order closes unpaid.';

REVOKE ALL ON FUNCTION "billing"."change_plan"(uuid, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."change_plan"(uuid, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "billing"."check_discount_limits"(billing.discount_codes, uuid, timestamp WITH time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."checkout_discount"(uuid, public.billing_plans, text, timestamp WITH time zone, boolean) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."checkout_discount"(uuid, public.billing_plans, text, timestamp WITH time zone, boolean) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."complete_free_order"(public.orders) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."complete_free_order"(public.orders) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."create_checkout_order"(uuid, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."create_checkout_order"(uuid, text, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "billing"."create_discount_code"(text, jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."create_discount_code"(text, jsonb) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."deactivate_discount_code"(text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."deactivate_discount_code"(text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."discount_amount"(jsonb, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."discount_amount"(jsonb, bigint) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."discount_redemptions_counted"(uuid, uuid, timestamp WITH time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."discount_terms"(billing.discount_codes) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."paid_period_price"(public.subscriptions, public.billing_plans, timestamp WITH time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."plan_change_quote"(uuid, text, timestamp WITH time zone, text) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."plan_price_for"(uuid, public.billing_plans, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."plan_price_for"(uuid, public.billing_plans, timestamp WITH time zone) TO "authenticated", "service_role";

REVOKE ALL ON FUNCTION "billing"."preview_checkout"(uuid, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."preview_checkout"(uuid, text, text) TO "authenticated", "service_role";

REVOKE ALL ON FUNCTION "billing"."preview_plan_change"(uuid, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."preview_plan_change"(uuid, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "billing"."refuse_discount"(text, text) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."reserve_discount"(public.orders, jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."settle_discount_redemption"() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "public"."change_plan"(uuid, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."change_plan"(uuid, text, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."change_plan"(uuid, text, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."change_plan"(uuid, text, text) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."create_checkout_order"(uuid, text, text, text) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."preview_checkout"(uuid, text, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."preview_plan_change"(uuid, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."preview_plan_change"(uuid, text, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."preview_plan_change"(uuid, text, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."preview_plan_change"(uuid, text, text) TO "service_role";

GRANT DELETE, INSERT, SELECT, UPDATE ON TABLE "billing"."discount_codes" TO "service_role";

REVOKE ALL ON TABLE "public"."discount_redemptions" FROM "authenticated";

GRANT SELECT ON TABLE "public"."discount_redemptions" TO "authenticated";

REVOKE ALL ON TABLE "public"."discount_redemptions" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."discount_redemptions" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."discount_redemptions" TO "service_role";

CREATE INDEX discount_redemptions_organization_id_idx ON public.discount_redemptions USING btree (organization_id, created_at);
