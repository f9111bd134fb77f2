-- What this migration does: billing.provider_customers (an organization's customer at Stripe);
-- billing.checkout_order carries the provider's recurring plan (Razorpay plan or Stripe price),
-- the organization's customer there, its billing address and the order's list price and
-- discount; attach_provider_checkout records the customer; checkout, upgrade and credit pack
-- orders accept provider 'stripe'; a payment event may name the provider's period end.
--
-- stripe_customers_and_checkout: drafted by `npm run db:diff -- stripe_customers_and_checkout` from the difference between the database the
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

DROP FUNCTION "billing"."attach_provider_checkout"(uuid, text, text);

CREATE TABLE "billing"."provider_customers" (
  "organization_id"      uuid                     NOT NULL,
  "provider"             public.payment_provider  NOT NULL,
  "provider_customer_id" text                     NOT NULL,
  "created_at"           timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "provider_customers_pkey" PRIMARY KEY (organization_id, PROVIDER),
  CONSTRAINT "provider_customers_provider_customer_id_check" CHECK ((provider_customer_id ~ '^[A-Za-z0-9_]{1,255}$'::text)),
  CONSTRAINT "provider_customers_provider_provider_customer_id_key" UNIQUE (PROVIDER, provider_customer_id)
);

ALTER TABLE "billing"."provider_customers"
  ENABLE ROW LEVEL SECURITY;

-- In the order of the type's definition (05_orders_and_tax.sql): checkout_answer builds it by position.
ALTER TYPE "billing"."checkout_order" ADD ATTRIBUTE "provider_plan_id" text CASCADE;
ALTER TYPE "billing"."checkout_order" ADD ATTRIBUTE "provider_customer_id" text CASCADE;
ALTER TYPE "billing"."checkout_order" ADD ATTRIBUTE "buyer_address" jsonb CASCADE;
ALTER TYPE "billing"."checkout_order" ADD ATTRIBUTE "list_cents" bigint CASCADE;
ALTER TYPE "billing"."checkout_order" ADD ATTRIBUTE "discount_cents" bigint CASCADE;





CREATE OR REPLACE FUNCTION billing.attach_provider_checkout (
  p_order_id                 uuid,
  p_provider_order_id        text,
  p_provider_subscription_id text DEFAULT NULL::text,
  p_provider_customer_id     text DEFAULT NULL::text
)
  RETURNS public.orders
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.checkout_answer (
  p_order            public.orders,
  p_user_id          uuid,
  p_razorpay_plan_id text
)
  RETURNS billing.checkout_order
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
    p_order.discount_cents)::billing.checkout_order;
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
  v_override public.price_overrides;
begin
  if p_provider is null or p_provider not in ('payu', 'razorpay', 'stripe') then
    raise exception 'provider must be "payu", "razorpay" or "stripe"' using errcode = 'invalid_parameter_value';
  end if;
  perform billing.require_role(p_organization_id, billing.managers(), 'buy a plan');
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found', hint = 'plan_not_found';
  end if;
  perform billing.require_plan_available(p_organization_id, v_plan);
  -- The organization's price now (its price override, else the list price): the order keeps it.
  v_override := billing.price_override_at(p_organization_id, v_plan.id, v_now);
  v_plan.price_cents := billing.plan_price_for(p_organization_id, v_plan, v_now);
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
  -- The plan's recurring plan at the provider (Razorpay's plan id, Stripe's price id): with one the
  -- checkout is a provider subscription (a mandate) that renews by itself; without, a one-time
  -- payment renewed through checkout.
  v_rzp_plan := case p_provider
                  when 'razorpay' then nullif(v_plan.provider_config #>> '{razorpay,plan_id}', '')
                  when 'stripe' then nullif(v_plan.provider_config #>> '{stripe,price_id}', '') end;
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
  if p_provider is null or p_provider not in ('payu', 'razorpay', 'stripe') then
    raise exception 'provider must be "payu", "razorpay" or "stripe"' using errcode = 'invalid_parameter_value';
  end if;
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

CREATE OR REPLACE FUNCTION billing.extend_subscription_for_payment (
  p_order                    public.orders,
  p_provider_subscription_id text,
  p_event                    jsonb,
  p_payment_event_id         uuid
)
  RETURNS public.subscriptions
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
  if p_provider is null or p_provider not in ('payu', 'razorpay', 'stripe') then
    raise exception 'provider must be "payu", "razorpay" or "stripe"' using errcode = 'invalid_parameter_value';
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
  if p_provider = 'payu' and v_order.currency <> 'INR' then
    raise exception 'order % is in %: PayU accepts only INR', v_order.receipt, v_order.currency
      using errcode = 'object_not_in_prerequisite_state';
  end if;
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
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'payload'), 'null') not in ('null', 'object') then
    raise exception 'payment event: payload must be an object or null' using errcode = 'invalid_parameter_value';
  end if;
end;
$function$;

ALTER TABLE "billing"."provider_customers"
  ADD CONSTRAINT "provider_customers_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

REVOKE ALL ON FUNCTION "billing"."attach_provider_checkout"(uuid, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."attach_provider_checkout"(uuid, text, text, text) TO "service_role";

GRANT INSERT, SELECT ON TABLE "billing"."provider_customers" TO "service_role";
