-- What this migration does: one check of a checkout's provider, billing.checkout_provider (every
-- value of public.payment_provider but 'manual', built from the enum; 22023 naming them for null,
-- unknown and 'manual'), used by create_checkout_order, prepare_order_checkout and
-- create_credit_pack_order instead of three hand-written lists, so a new provider is one enum value.
-- checkout_provider_helper: drafted by `npm run db:diff -- checkout_provider_helper` from the difference between the database the
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

CREATE OR REPLACE FUNCTION billing.checkout_provider (
  p_provider text
)
  RETURNS public.payment_provider
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.create_credit_pack_order (
  p_organization_id  uuid,
  p_credit_pack_code text,
  p_provider         text
)
  RETURNS SETOF billing.checkout_order
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_pack public.credit_packs;
  v_order public.orders;
begin
  perform billing.checkout_provider(p_provider);
  perform billing.require_role(p_organization_id, billing.managers(), 'buy credits');
  select * into v_pack from public.credit_packs cp where cp.code = p_credit_pack_code and cp.active;
  if v_pack.id is null then
    raise exception 'no active credit pack "%"', coalesce(p_credit_pack_code, '') using errcode = 'no_data_found';
  end if;
  if p_provider = 'razorpay' and v_pack.price_paise < 100 then
    raise exception 'credit pack "%" costs less than Razorpay''s minimum of 100 paise', v_pack.code
      using errcode = 'object_not_in_prerequisite_state', hint = 'credit_pack_not_purchasable';
  end if;

  -- One checkout of an organization at a time (the payment path takes the same lock).
  perform 1 from public.organizations o where o.id = p_organization_id for no key update;
  insert into public.orders
    (organization_id, credit_pack_id, provider, kind, amount_cents, currency, status, created_by, expires_at, metadata)
  values
    (p_organization_id, v_pack.id, p_provider::public.payment_provider, 'credit_pack', v_pack.price_paise, v_pack.currency,
     case when p_provider = 'payu' then 'pending' else 'created' end::public.order_status, v_user_id, v_now + interval '1 day',
     pg_catalog.jsonb_build_object('credit_pack_code', v_pack.code, 'credits', v_pack.credits,
                                   'credit_validity', v_pack.validity::text))
  returning * into v_order;

  return next billing.checkout_answer(v_order, v_user_id, null);
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
  perform billing.checkout_provider(p_provider);
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
  if exists (select 1 from billing.provider_actions a where a.kind = 'change_plan' and a.payload ->> 'order_id' = v_order.id::text) then
    raise exception 'upgrade order % is charged by the provider of the subscription (%), not through checkout', v_order.receipt, v_order.provider
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

REVOKE ALL ON FUNCTION "billing"."checkout_provider"(text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."checkout_provider"(text) TO "service_role";
