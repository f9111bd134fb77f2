-- carried_discount_upgrade_order: drafted by `npm run db:diff -- carried_discount_upgrade_order` from the difference between the database the
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
-- What this migration does: an upgrade that a carried repeating or forever redemption makes free
-- (its discount, with the unused value of the current period, pays the whole new plan) was quoted
-- 'immediate' and applied with no order: the redemption used none of its periods and the
-- subscription got a full new period each time, so "3 free months" could run for years by
-- changing plan. billing.plan_change_quote now answers 'prorated_order' for any upgrade with a
-- discount, and billing.change_plan completes an order at 0 at once (billing.complete_free_order,
-- provider 'manual'): it records the redemption's period and gets a zero-value invoice. No data
-- changes.

SET local check_function_bodies = off;

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
            when v_sub.provider in ('payu', 'razorpay') then v_sub.provider else 'payu' end::public.payment_provider,
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
  perform billing.require_plan_available(p_organization_id, v_to);
  if v_to.tier = 'free' or v_to.price_cents = 0 then
    raise exception 'plan "%" is the free plan: to move to it, cancel the subscription (cancel_subscription)', v_to.code
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due');
  select * into v_from from public.billing_plans p where p.id = v_sub.plan_id;
  perform billing.refuse_plan_change(v_sub, v_from, v_to, p_at);

  -- The organization's prices (billing.plan_price_for: a price override, else the list price):
  -- the new plan's now, the current plan's as it was when its paid period started. From here on
  -- price_cents of both records is what this organization pays.
  v_paid_start := greatest(v_sub.current_period_start, coalesce(v_sub.trial_end, v_sub.current_period_start));
  v_to.price_cents := billing.plan_price_for(p_organization_id, v_to, p_at);
  v_from.price_cents := billing.plan_price_for(p_organization_id, v_from, v_paid_start);

  v_kind := case when billing.is_upgrade(v_from, v_to) then 'upgrade' else 'downgrade' end;
  v_recurring := v_sub.provider = 'razorpay' and v_sub.provider_subscription_id is not null;
  -- The paid part of the period: a trial paid before its end keeps current_period_start at the
  -- trial start and runs its first paid period from trial_end (apply_captured_payment extends from
  -- the period end), so trial days are not paid time. From there, unused <= cycles x price.
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
    -- A discount on the new plan (a carried repeating or forever redemption: a code typed is
    -- refused above when nothing is left to pay) is used by an order, even one the unused value
    -- makes free: the order counts as one of the redemption's periods and gets its invoice.
    v_method := case when v_amount > 0 or v_discount ? 'discount' then 'prorated_order' else 'immediate' end;
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
    'period_price_cents', v_to_price,
    'to_price_cents', v_to.price_cents,
    'from_price_cents', v_from.price_cents,
    'to_contract_ref', (billing.price_override_at(p_organization_id, v_to.id, p_at)).contract_ref) || v_discount;
end;
$function$;
