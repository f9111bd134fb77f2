-- discount_prepay_cap: drafted by `npm run db:diff -- discount_prepay_cap` from the difference between the database the
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
-- What this migration does: free checkouts could be looped. Under a 100 % forever code (or a
-- repeating one) each checkout without a code carried the redemption, was completed at once and
-- extended the period by one more, so 24 checkouts took two free years; a price override could be
-- prepaid for years the same way before its contract ended. billing.create_checkout_order now
-- refuses a renewal that would be free, or is at a price override, while the plan is already paid
-- more than one period (plus the grace days) ahead of now (55000, HINT paid_ahead; checkout
-- answers 409 paid_ahead). And an operator can stop an abused code's redemptions:
-- billing.deactivate_discount_code takes p_end_redemptions (default false, the old behaviour),
-- which sets the new column discount_codes.redemptions_ended_at; billing.checkout_discount no
-- longer carries a redemption of such a code. The old two-argument function is dropped (the new
-- one is called the same way). No data changes: no code has ended its redemptions yet.

SET local check_function_bodies = off;

DROP FUNCTION "billing"."deactivate_discount_code"(text, text);

ALTER TABLE "billing"."discount_codes"
  ADD COLUMN "redemptions_ended_at" timestamp WITH time zone;

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
  if p_provider is null or p_provider not in ('payu', 'razorpay') then
    raise exception 'provider must be "payu" or "razorpay"' using errcode = 'invalid_parameter_value';
  end if;
  perform billing.require_role(p_organization_id, billing.managers(), 'buy a plan');
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
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
  v_rzp_plan := case when p_provider = 'razorpay' then nullif(v_plan.provider_config #>> '{razorpay,plan_id}', '') end;
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

CREATE OR REPLACE FUNCTION billing.deactivate_discount_code (
  p_code            text,
  p_reason          text,
  p_end_redemptions boolean DEFAULT false
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
$function$;

REVOKE ALL ON FUNCTION "billing"."deactivate_discount_code"(text, text, boolean) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."deactivate_discount_code"(text, text, boolean) TO "service_role";
