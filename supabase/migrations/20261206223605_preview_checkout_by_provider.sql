-- What this migration does: preview_checkout takes the provider (p_provider, optional): through a
-- provider that would make the checkout a provider subscription (a Razorpay plan, a Stripe price)
-- the preview carves the GST out of the price as the order will, and refuses a code on a Razorpay
-- subscription as checkout does. Which provider plan a checkout subscribes to is one function,
-- billing.checkout_provider_plan, that create_checkout_order and the preview share.
-- preview_checkout_by_provider: drafted by `npm run db:diff -- preview_checkout_by_provider` from the difference between the database the
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

DROP FUNCTION "billing"."preview_checkout"(uuid, text, text, text);

DROP FUNCTION "public"."preview_checkout"(uuid, text, text, text);

CREATE OR REPLACE FUNCTION billing.checkout_provider_plan (
  p_organization_id uuid,
  p_plan            public.billing_plans,
  p_provider        public.payment_provider,
  p_at              timestamp with time zone
)
  RETURNS text
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return case
    when p_plan.currency is distinct from (select p.currency from public.billing_plans p where p.id = p_plan.id) then null
    when exists (
      select 1 from public.price_overrides o
      where o.organization_id = p_organization_id and o.plan_id = p_plan.id
        and (o.valid_until is null or o.valid_until > p_at) and (o.ended_at is null or o.ended_at > p_at)
    ) then null
    else case p_provider
           when 'razorpay' then nullif(p_plan.provider_config #>> '{razorpay,plan_id}', '')
           when 'stripe' then nullif(p_plan.provider_config #>> '{stripe,price_id}', '') end
  end;
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
  v_rzp_plan := billing.checkout_provider_plan(p_organization_id, v_plan, p_provider::public.payment_provider, v_now);

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
$function$;

CREATE OR REPLACE FUNCTION billing.preview_checkout (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text,
  p_currency        text DEFAULT NULL::text,
  p_provider        text DEFAULT NULL::text
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
$function$;

CREATE OR REPLACE FUNCTION public.preview_checkout (
  p_organization_id uuid,
  p_plan_code       text,
  p_discount_code   text DEFAULT NULL::text,
  p_currency        text DEFAULT NULL::text,
  p_provider        text DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return billing.preview_checkout(p_organization_id, p_plan_code, p_discount_code, p_currency, p_provider);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."preview_checkout"(uuid, text, text, text, text) FROM PUBLIC, "anon";

COMMENT ON FUNCTION "public"."preview_checkout"(uuid, text, text, text, text) IS 'What checkout would charge now for a plan, with an optional discount code, currency (null: the plan''s own, or a renewal''s) and provider (null: a one-time payment; a provider subscription carries its GST in the price): list, discount, taxable value, tax and total in the currency''s minor unit.';

REVOKE ALL ON FUNCTION "billing"."checkout_provider_plan"(uuid, public.billing_plans, public.payment_provider, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."checkout_provider_plan"(uuid, public.billing_plans, public.payment_provider, timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."preview_checkout"(uuid, text, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."preview_checkout"(uuid, text, text, text, text) TO "authenticated", "service_role";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."preview_checkout"(uuid, text, text, text, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text, text, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."preview_checkout"(uuid, text, text, text, text) TO "service_role";
