-- What this migration does: Stripe's provider actions. Cancelling, resuming and changing the plan
-- of any provider subscription (provider_subscription_id set, not only Razorpay's) queues the
-- provider action (billing.provider_action, provider_resume_action, provider_plan_change_action;
-- billing.provider_can_resume keeps Razorpay's rule that its scheduled cancellation cannot be
-- undone); an upgrade of a Stripe subscription is charged by Stripe (match_order finds the upgrade
-- order by our receipt on the subscription's invoice; prepare_order_checkout refuses it);
-- reconcile_due_subscriptions and the cancel-now trigger cover every provider subscription;
-- billing.provider_settings keeps what an adapter made once (Stripe's portal configuration);
-- public.get_billing_portal_customer answers an organization's customer for the billing portal.
-- No data changes.
-- stripe_provider_actions: drafted by `npm run db:diff -- stripe_provider_actions` from the difference between the database the
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

DROP TRIGGER "subscriptions_queue_provider_cancel" ON "public"."subscriptions";

CREATE TABLE "billing"."provider_settings" (
  "provider"   public.payment_provider  NOT NULL,
  "name"       text                     NOT NULL,
  "value"      text                     NOT NULL,
  "created_at" timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "provider_settings_name_check" CHECK ((name ~ '^[a-z][a-z0-9_]{0,63}$'::text)),
  CONSTRAINT "provider_settings_pkey" PRIMARY KEY (PROVIDER, name),
  CONSTRAINT "provider_settings_value_check" CHECK (((length(value) >= 1) AND (length(value) <= 1000)))
);

ALTER TABLE "billing"."provider_settings"
  ENABLE ROW LEVEL SECURITY;

CREATE OR REPLACE FUNCTION billing.billing_portal_customer (
  p_organization_id uuid,
  p_provider        text
)
  RETURNS text
  LANGUAGE plpgsql
  STABLE
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_customer text;
begin
  perform billing.require_user();
  perform billing.require_role(p_organization_id, billing.managers(), 'open the billing portal');
  if p_provider is null or p_provider <> all (pg_catalog.enum_range(null::public.payment_provider)::text[]) then
    raise exception 'no payment provider named %', coalesce(p_provider, 'null') using errcode = 'invalid_parameter_value';
  end if;
  select pc.provider_customer_id into v_customer from billing.provider_customers pc
  where pc.organization_id = p_organization_id and pc.provider = p_provider::public.payment_provider;
  if v_customer is null then
    raise exception 'the organization has no % customer: it has not checked out with %', p_provider, p_provider
      using errcode = 'no_data_found';
  end if;
  return v_customer;
end;
$function$;

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
       case when (v_quote ->> 'amount_cents')::bigint = 0 then 'manual'
            when v_sub.provider <> 'manual' then v_sub.provider else 'payu' end::public.payment_provider,
       'upgrade', (v_quote ->> 'amount_cents')::bigint, v_to.currency,
       case when (v_quote ->> 'amount_cents')::bigint = 0 then 'pending' else 'created' end::public.order_status, v_user_id,
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
      select * into v_order from public.orders o where o.id = v_order.id;
    end if;
    if v_order.amount_cents = 0 then
      -- Free (a carried discount, the unused value paying the rest): completed now, as a free checkout.
      v_order := billing.complete_free_order(v_order);
      return (v_quote - 'discount') || pg_catalog.jsonb_build_object(
        'result', 'changed', 'order_id', v_order.id, 'receipt', v_order.receipt, 'order_amount_cents', 0);
    end if;
    -- An intent: the subscription is untouched until the order is paid.
    perform billing.log_subscription_intent(v_sub.id, 'upgrade_ordered', v_to.id, 'user', v_user_id,
      p_reason => pg_catalog.format('upgrade to %s ordered: %s to pay', v_to.code,
                                    billing.format_money(v_order.amount_cents, v_order.currency)),
      p_metadata => pg_catalog.jsonb_build_object('order_id', v_order.id, 'amount_cents', v_order.amount_cents));
    -- A provider subscription (Stripe) is charged the order by its provider, not through checkout.
    return (v_quote - 'discount') || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'result', 'order_created', 'order_id', v_order.id, 'receipt', v_order.receipt,
      'order_amount_cents', v_order.amount_cents, 'order_expires_at', v_order.expires_at,
      'provider_action', billing.provider_plan_change_action(v_sub, v_to, v_quote, v_order)));

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
    return v_quote || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('result', 'changed',
      'provider_action', billing.provider_plan_change_action(v_sub, v_to, v_quote, null)));

  elsif v_method = 'scheduled' then
    perform billing.set_change_context('downgrade_scheduled', 'user', v_user_id,
      p_reason => pg_catalog.format('downgrade to %s at the period end (no refund)', v_to.code),
      p_metadata => pg_catalog.jsonb_build_object('effective_at', v_sub.current_period_end,
                                                  'replaced_pending_plan_id', v_sub.pending_plan_id),
      p_effective_at => v_now);
    update public.subscriptions s
    set pending_plan_id = v_to.id, pending_plan_effective_at = s.current_period_end
    where s.id = v_sub.id;
    return v_quote || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('result', 'scheduled',
      'provider_action', billing.provider_plan_change_action(v_sub, v_to, v_quote, null)));

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

CREATE OR REPLACE FUNCTION billing.keep_provider_setting (
  p_provider public.payment_provider,
  p_name     text,
  p_value    text
)
  RETURNS text
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  insert into billing.provider_settings (provider, name, value) values (p_provider, p_name, p_value)
  on conflict (provider, name) do nothing;
  return (select ps.value from billing.provider_settings ps where ps.provider = p_provider and ps.name = p_name);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.match_order (
  p_event jsonb
)
  RETURNS public.orders
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_provider_order_id text := p_event ->> 'provider_order_id';
  v_subscription_id text := p_event ->> 'provider_subscription_id';
  v_ref text := p_event ->> 'order_ref';
  v_order public.orders;
begin
  -- An upgrade order the provider charged on the subscription itself (Stripe: an invoice carrying
  -- our receipt in its metadata): the order named, not the subscription's first order.
  if v_ref is not null and v_subscription_id is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.receipt = v_ref and o.kind = 'upgrade';
    if found then
      return v_order;
    end if;
  end if;
  if v_provider_order_id is not null then
    select * into v_order from public.orders o where o.provider = v_provider and o.provider_order_id = v_provider_order_id;
    if found then
      return v_order;
    end if;
  end if;
  if v_subscription_id is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.provider_subscription_id = v_subscription_id and o.kind = 'new';
    if found then
      return v_order;
    end if;
  end if;
  if v_ref is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.receipt = v_ref
      and (o.provider_order_id is null or v_provider_order_id is null or o.provider_order_id = v_provider_order_id or o.provider_subscription_id is not null)
      and (o.provider_subscription_id is null or v_subscription_id is null or o.provider_subscription_id = v_subscription_id);
    if found then
      return v_order;
    end if;
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_grant_plan (
  p_organization_id uuid,
  p_plan_code       text,
  p_until           timestamp with time zone,
  p_reason          text
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_sub public.subscriptions;
  v_new public.subscriptions;
  v_mandate boolean;
begin
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  if v_plan.tier = 'free' then
    raise exception 'plan "%" is the free plan: there is nothing to grant', v_plan.code using errcode = 'invalid_parameter_value';
  end if;
  if p_until is null or p_until <= v_now or p_until > v_now + interval '5 years' then
    raise exception 'a grant ends after now and within five years, got %', p_until using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from public.organizations o where o.id = p_organization_id for no key update) then
    raise exception 'organization % does not exist', p_organization_id using errcode = 'no_data_found';
  end if;
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  v_mandate := v_sub.provider_subscription_id is not null and v_sub.provider <> 'manual';
  perform billing.set_change_context('plan_granted', 'operator',
    p_reason => v_reason,
    p_metadata => pg_catalog.jsonb_build_object('until', p_until, 'plan_code', v_plan.code,
                                                'mandate_cancelled', case when v_mandate then v_sub.provider_subscription_id end));
  if v_sub.id is null then
    insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider,
                                      period_anchor)
    values (p_organization_id, v_plan.id, 'active', v_now, p_until, 'manual', v_now)
    returning * into v_new;
  else
    update public.subscriptions s
    set plan_id = v_plan.id, status = 'active', current_period_start = v_now, current_period_end = p_until,
        period_anchor = v_now, pending_plan_id = null, pending_plan_effective_at = null, cancel_at_period_end = false,
        canceled_at = null,
        provider = case when v_mandate then 'manual' else s.provider end,
        provider_subscription_id = case when v_mandate then null else s.provider_subscription_id end
    where s.id = v_sub.id
    returning * into v_new;
  end if;
  -- The mandate stops now, unless Razorpay already ended it.
  if v_mandate and not exists (
       select 1 from billing.provider_subscription_states st
       where st.provider = v_sub.provider and st.provider_subscription_id = v_sub.provider_subscription_id
         and st.status in ('cancelled', 'completed', 'expired')) then
    perform billing.queue_provider_action(
      p_organization_id, v_sub.provider, 'cancel',
      pg_catalog.jsonb_build_object('provider_subscription_id', v_sub.provider_subscription_id),
      pg_catalog.jsonb_build_object('at_cycle_end', false),
      pg_catalog.format('cancel:%s:now', v_sub.provider_subscription_id),
      'operator', v_reason, v_new.id);
  end if;
  return v_new.id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_resume (
  p_organization_id uuid,
  p_reason          text
)
  RETURNS public.subscription_status
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_sub public.subscriptions := billing.live_subscription_for_operator(p_organization_id);
begin
  if not v_sub.cancel_at_period_end or v_sub.current_period_end <= billing.now() then
    raise exception 'organization % has no cancellation scheduled to undo', p_organization_id
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if not billing.provider_can_resume(v_sub) then
    raise exception '% subscription % is being cancelled at %: the customer subscribes again through checkout',
      pg_catalog.initcap(v_sub.provider::text), v_sub.provider_subscription_id, pg_catalog.initcap(v_sub.provider::text) using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform billing.set_change_context('resumed', 'operator', p_reason => v_reason);
  update public.subscriptions s set cancel_at_period_end = false, canceled_at = null where s.id = v_sub.id;
  perform billing.provider_resume_action(v_sub, 'operator', v_reason);
  return v_sub.status;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_set_price_override (
  p_organization_id uuid,
  p_plan_code       text,
  p_price_paise     bigint,
  p_valid_from      timestamp with time zone,
  p_valid_until     timestamp with time zone,
  p_contract_ref    text,
  p_reason          text
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_overlap public.price_overrides;
  v_mandate public.subscriptions;
  v_id uuid;
begin
  if p_price_paise is null or p_price_paise <= 0 then
    raise exception 'a price override is a positive number of paise, got %', coalesce(p_price_paise::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_from is null then
    raise exception 'a price override needs valid_from (when it starts)' using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_until is not null and p_valid_until <= p_valid_from then
    raise exception 'a price override must end after it starts: valid_until % is not after valid_from %', p_valid_until, p_valid_from
      using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_until is not null and p_valid_until <= v_now then
    raise exception 'a price override ending at % is already over', p_valid_until using errcode = 'invalid_parameter_value';
  end if;
  if p_contract_ref is null or length(btrim(p_contract_ref)) not between 1 and 200 then
    raise exception 'a price override needs a contract reference of 1 to 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  v_plan := billing.pricing_target(p_organization_id, p_plan_code);
  if v_plan.tier = 'free' or not v_plan.active then
    raise exception 'plan "%" is %: only an active paid plan gets a price override', v_plan.code,
      case when v_plan.tier = 'free' then 'the free plan' else 'retired' end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_mandate from public.subscriptions s
  where s.organization_id = p_organization_id and s.plan_id = v_plan.id
    and s.status in ('trialing', 'active', 'past_due')
    and s.provider_subscription_id is not null and not s.cancel_at_period_end;
  if v_mandate.id is not null then
    raise exception 'the organization''s subscription on plan "%" renews by % subscription %, which charges its own amount: cancel it at the period end first (billing.operator_cancel), then the customer renews through checkout at the override price',
      v_plan.code, pg_catalog.initcap(v_mandate.provider::text), v_mandate.provider_subscription_id
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_overlap from public.price_overrides o
  where o.organization_id = p_organization_id and o.plan_id = v_plan.id
    and (o.ended_at is null or o.ended_at > o.valid_from)
    and o.valid_from < coalesce(p_valid_until, 'infinity'::timestamptz)
    and p_valid_from < least(coalesce(o.valid_until, 'infinity'::timestamptz), coalesce(o.ended_at, 'infinity'::timestamptz))
  limit 1;
  if v_overlap.id is not null then
    raise exception 'price override % (contract %) of plan "%" already covers part of that period: end it first (billing.operator_end_price_override)',
      v_overlap.id, v_overlap.contract_ref, v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  insert into public.price_overrides (organization_id, plan_id, price_paise, valid_from, valid_until, contract_ref)
  values (p_organization_id, v_plan.id, p_price_paise, p_valid_from, p_valid_until, btrim(p_contract_ref))
  returning id into v_id;
  perform billing.log_operator_pricing(p_organization_id, 'price_override_set', v_plan.id, v_reason,
    pg_catalog.jsonb_build_object('price_override_id', v_id, 'plan_code', v_plan.code, 'price_paise', p_price_paise,
                                  'list_price_paise', v_plan.price_cents, 'valid_from', p_valid_from,
                                  'valid_until', p_valid_until, 'contract_ref', btrim(p_contract_ref)));
  return v_id;
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

CREATE OR REPLACE FUNCTION billing.provider_action (
  p_sub          public.subscriptions,
  p_at_cycle_end boolean
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_action_id uuid;
  v_resumes integer;
begin
  if p_sub.provider_subscription_id is null or p_sub.provider = 'manual' then
    return null;
  end if;
  select count(*) into v_resumes from billing.provider_actions a
  where a.provider = p_sub.provider and a.kind = 'resume'
    and a.target ->> 'provider_subscription_id' = p_sub.provider_subscription_id;
  v_action_id := billing.queue_provider_action(
    p_sub.organization_id, p_sub.provider, 'cancel',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_sub.provider_subscription_id),
    pg_catalog.jsonb_build_object('at_cycle_end', coalesce(p_at_cycle_end, true)),
    pg_catalog.format('cancel:%s:%s', p_sub.provider_subscription_id,
                      case when coalesce(p_at_cycle_end, true) then 'cycle_end' else 'now' end)
      || case when v_resumes > 0 then pg_catalog.format(':%s', v_resumes) else '' end,
    'user', 'the subscription was cancelled here', p_sub.id);
  return pg_catalog.jsonb_build_object('provider', p_sub.provider, 'action', 'cancel_subscription',
                                       'provider_subscription_id', p_sub.provider_subscription_id,
                                       'cancel_at_cycle_end', coalesce(p_at_cycle_end, true),
                                       'provider_action_id', v_action_id);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.provider_can_resume (
  p_sub public.subscriptions
)
  RETURNS boolean
  LANGUAGE sql
  IMMUTABLE
  SET search_path TO ''
RETURN (((p_sub).provider_subscription_id IS NULL) OR ((p_sub).provider IS DISTINCT FROM 'razorpay'::public.payment_provider));

CREATE OR REPLACE FUNCTION billing.provider_plan_change_action (
  p_sub   public.subscriptions,
  p_to    public.billing_plans,
  p_quote jsonb,
  p_order public.orders
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_at_end boolean := p_quote ->> 'method' = 'scheduled';
  v_price bigint;
  v_action_id uuid;
begin
  if p_sub.provider_subscription_id is null or p_sub.provider = 'manual' then
    return null;
  end if;
  select q.amount_cents into v_price
  from billing.order_tax_quote(p_sub.organization_id, (p_quote ->> 'period_price_cents')::bigint,
                               coalesce((select st.prices_include_tax from public.billing_settings st where st.id), false),
                               p_to.currency) q;
  v_action_id := billing.queue_provider_action(
    p_sub.organization_id, p_sub.provider, 'change_plan',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_sub.provider_subscription_id,
                                  'order_ref', p_order.receipt),
    pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'plan_code', p_to.code, 'plan_name', p_to.name, 'interval', p_to.interval, 'currency', p_to.currency,
      'price_amount', v_price, 'at_cycle_end', v_at_end,
      'provider_price_id', p_to.provider_config -> p_sub.provider::text ->> 'price_id',
      'period_end', case when not v_at_end then extract(epoch from (p_quote ->> 'new_period_end')::timestamptz)::bigint end,
      'order_id', p_order.id, 'order_ref', p_order.receipt, 'amount_paise', p_order.amount_cents)),
    pg_catalog.format('change_plan:%s:%s', p_sub.provider_subscription_id,
                      coalesce(p_order.id::text,
                               pg_catalog.format('%s:%s', p_to.code, extract(epoch from billing.now())::bigint))),
    'user', pg_catalog.format('plan change to %s (%s)', p_to.code, p_quote ->> 'method'), p_sub.id);
  return pg_catalog.jsonb_build_object('provider', p_sub.provider, 'action', 'change_plan',
                                       'provider_subscription_id', p_sub.provider_subscription_id,
                                       'provider_action_id', v_action_id);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.provider_resume_action (
  p_sub          public.subscriptions,
  p_requested_by text,
  p_reason       text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_action_id uuid;
  v_resumes integer;
begin
  if p_sub.provider_subscription_id is null or p_sub.provider = 'manual' then
    return null;
  end if;
  select count(*) into v_resumes from billing.provider_actions a
  where a.provider = p_sub.provider and a.kind = 'resume'
    and a.target ->> 'provider_subscription_id' = p_sub.provider_subscription_id;
  v_action_id := billing.queue_provider_action(
    p_sub.organization_id, p_sub.provider, 'resume',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_sub.provider_subscription_id),
    '{}'::jsonb,
    pg_catalog.format('resume:%s:%s', p_sub.provider_subscription_id, v_resumes + 1),
    p_requested_by, p_reason, p_sub.id);
  return pg_catalog.jsonb_build_object('provider', p_sub.provider, 'action', 'resume_subscription',
                                       'provider_subscription_id', p_sub.provider_subscription_id,
                                       'provider_action_id', v_action_id);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.provider_setting (
  p_provider public.payment_provider,
  p_name     text
)
  RETURNS text
  LANGUAGE sql
  STABLE
  SET search_path TO ''
RETURN (SELECT ps.value FROM billing.provider_settings ps WHERE ((ps.provider = provider_setting.p_provider) AND (ps.name = provider_setting.p_name)));

CREATE OR REPLACE FUNCTION billing.reconcile_due_subscriptions (
  p_limit integer DEFAULT 50
)
  RETURNS TABLE (
    subscription_id          uuid,
    organization_id          uuid,
    provider                 text,
    provider_subscription_id text,
    status                   text,
    current_period_end       timestamp with time zone,
    provider_status          text,
    receipt                  text,
    known_payment_ids        text[],
    reason                   text
  )
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_after interval;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  select s.order_pending_reconcile_after into v_after from public.billing_settings s;
  v_after := coalesce(v_after, interval '15 minutes');

  return query
    select d.id, d.organization_id, d.provider::text, d.provider_subscription_id, d.status::text,
           d.current_period_end, d.provider_status, d.receipt, d.known_payment_ids, d.reason
    from (
      select s.id, s.organization_id, s.provider, s.provider_subscription_id, s.status, s.current_period_end,
             st.status as provider_status,
             (select o.receipt from public.orders o
              where o.provider = s.provider and o.provider_subscription_id = s.provider_subscription_id
                and o.kind = 'new'
              order by o.created_at limit 1) as receipt,
             array(select distinct pe.provider_payment_id from public.payment_events pe
                   join public.orders o on o.id = pe.order_id
                   where pe.provider = s.provider and pe.status = 'captured'
                     and pe.provider_payment_id is not null
                     and (o.subscription_id = s.id or o.provider_subscription_id = s.provider_subscription_id)
                   order by 1) as known_payment_ids,
             case when s.current_period_end <= v_now - v_after then 'period_ended' else 'state_disagrees' end as reason,
             pg_catalog.row_number() over (partition by s.organization_id order by s.current_period_end, s.id) as round
      from public.subscriptions s
      left join billing.provider_subscription_states st
        on st.provider = s.provider and st.provider_subscription_id = s.provider_subscription_id
      where s.provider_subscription_id is not null
        and s.provider <> 'manual'
        and s.status in ('trialing', 'active', 'past_due')
        and (s.current_period_end <= v_now - v_after
             or billing.subscription_status_for(st.status, s.current_period_end, v_now) is distinct from s.status
                and billing.subscription_status_for(st.status, s.current_period_end, v_now) is not null)
    ) d
    order by d.round, d.current_period_end, d.id
    limit p_limit;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.resume_subscription (
  p_organization_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
begin
  perform billing.require_role(p_organization_id, billing.managers());
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  if v_sub.id is null or not v_sub.cancel_at_period_end then
    raise exception 'the organization has no cancellation scheduled to undo' using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_sub.current_period_end <= v_now then
    raise exception 'the period ended on %: the cancellation has taken effect; buy a plan through checkout', v_sub.current_period_end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if not billing.provider_can_resume(v_sub) then
    raise exception '% subscription % is set to cancel at cycle end at %, which cannot undo it: subscribe again through checkout',
      pg_catalog.initcap(v_sub.provider::text), v_sub.provider_subscription_id, pg_catalog.initcap(v_sub.provider::text)
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  perform billing.set_change_context('resumed', 'user', v_user_id, p_reason => 'scheduled cancellation undone',
    p_effective_at => v_now);
  update public.subscriptions s set cancel_at_period_end = false, canceled_at = null where s.id = v_sub.id;

  return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'result', 'resumed', 'subscription_id', v_sub.id, 'status', v_sub.status,
    'current_period_end', v_sub.current_period_end,
    'provider_action', billing.provider_resume_action(v_sub, 'user', 'the scheduled cancellation was undone here')));
end;
$function$;

CREATE OR REPLACE FUNCTION public.get_billing_portal_customer (
  p_organization_id uuid,
  p_provider        text
)
  RETURNS text
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return billing.billing_portal_customer(p_organization_id, p_provider);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."get_billing_portal_customer"(uuid, text) FROM PUBLIC, "anon";

CREATE TRIGGER subscriptions_queue_provider_cancel
  AFTER UPDATE OF status ON public.subscriptions
  FOR EACH ROW
  WHEN
    (((new.status = ANY (ARRAY['canceled'::public.subscription_status, 'expired'::public.subscription_status])) AND (old.status = ANY (ARRAY['trialing'::public.subscription_status,
    'active'::public.subscription_status, 'past_due'::public.subscription_status])) AND (new.provider_subscription_id IS NOT NULL) AND (NOT old.cancel_at_period_end)))
  EXECUTE FUNCTION billing.queue_provider_cancel();

COMMENT ON FUNCTION "public"."get_billing_portal_customer"(uuid, text) IS 'The organization''s customer at a provider, for its billing portal (owners and admins).';

REVOKE ALL ON FUNCTION "billing"."billing_portal_customer"(uuid, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."billing_portal_customer"(uuid, text) TO "authenticated";

REVOKE ALL ON FUNCTION "billing"."keep_provider_setting"(public.payment_provider, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."keep_provider_setting"(public.payment_provider, text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."provider_can_resume"(public.subscriptions) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."provider_plan_change_action"(public.subscriptions, public.billing_plans, jsonb, public.orders) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."provider_resume_action"(public.subscriptions, text, text) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."provider_setting"(public.payment_provider, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."provider_setting"(public.payment_provider, text) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."get_billing_portal_customer"(uuid, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."get_billing_portal_customer"(uuid, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."get_billing_portal_customer"(uuid, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."get_billing_portal_customer"(uuid, text) TO "service_role";

GRANT INSERT, SELECT ON TABLE "billing"."provider_settings" TO "service_role";
