-- What this migration does: joins two changes made side by side, Stripe as a provider and prices
-- in other currencies. billing.create_checkout_order and prepare_order_checkout take p_currency and
-- accept Stripe (the 4-argument create_checkout_order is dropped); a price in another currency than
-- the plan's own is paid as one-time orders with every provider (a mandate debits the plan's
-- currency); a payment event may carry exchange_rate, period_end and cancel_at_period_end
-- together; Stripe collects INR, USD, EUR and GBP by default (billing_settings.provider_currencies),
-- and the settings row gets the Stripe entry when it has none.
--
-- stripe_with_exports: drafted by `npm run db:diff -- stripe_with_exports` from the difference between the database the
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

DROP FUNCTION "billing"."create_checkout_order"(uuid, text, text, text);

ALTER TABLE "public"."billing_settings"
  ALTER COLUMN "provider_currencies" SET DEFAULT '{"payu": ["INR"], "stripe": ["INR", "USD", "EUR", "GBP"], "razorpay": ["INR"]}'::jsonb;

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

  -- A mandate debit that buys the next period: its own renewal order, at the amount the debit is
  -- for, carrying the first order's discount while it runs (so its invoice shows it, and it
  -- counts as one of a repeating discount's periods).
  if v_problem is null and v_renewal then
    v_debit := billing.mandate_debit_amount(v_order);
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, provider_subscription_id, kind,
       amount_cents, currency, status, metadata, list_cents, discount_cents, discount_redemption_id)
    values
      (v_order.organization_id, v_order.plan_id, v_sub.id, v_order.provider, v_psid, 'renewal',
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
  if p_provider is null or p_provider not in ('payu', 'razorpay', 'stripe') then
    raise exception 'provider must be "payu", "razorpay" or "stripe"' using errcode = 'invalid_parameter_value';
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
$function$;

COMMENT ON COLUMN "public"."billing_settings"."provider_currencies" IS 'The currencies each payment provider collects here, by provider name (default {"payu": ["INR"], "razorpay": ["INR"], "stripe": ["INR", "USD", "EUR", "GBP"]}). A provider not named collects INR only. Checkout refuses an order in another currency before any provider call (HINT currency_not_accepted); add a currency when the provider account is enabled for it.';

-- The settings row predates the default: Stripe collects what the default says unless an operator
-- already named its currencies.
UPDATE "public"."billing_settings"
SET "provider_currencies" = "provider_currencies" || '{"stripe": ["INR", "USD", "EUR", "GBP"]}'::jsonb
WHERE NOT "provider_currencies" ? 'stripe';
