-- What this migration does: a plan change carried out at the provider moves the mandate with it.
-- Stripe's upgrades and downgrades switch the subscription's price (a change_plan action), so
-- Stripe's next renewal charges the new plan at the action's price; billing.mandate_debit_amount
-- still expected the first order's plan and amount, so every renewal after a plan change was
-- recorded as an amount mismatch (or refunded for review as a debit for another plan): the
-- customer paid and lost the plan. mandate_debit_amount now answers the plan too (out plan_id:
-- the latest succeeded change_plan action's plan and price_amount, without the first order's
-- discount), a renewal may pay for the plan the subscription is scheduled to move to (its
-- renewal order is for that plan, which the renewal puts in effect), and a capture already
-- recorded is a duplicate before its amount is compared (Stripe's checkout.session.completed after
-- a subscription's first invoice.paid, with a once discount, was recorded as a mismatch).
-- Found by the simulator running Stripe customers.
-- provider_plan_changes_move_the_mandate: drafted by `npm run db:diff -- provider_plan_changes_move_the_mandate` from the difference between the database the
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

DROP FUNCTION "billing"."mandate_debit_amount"(public.orders);

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
  elsif v_renewal and v_sub.plan_id is distinct from (billing.mandate_debit_amount(v_order)).plan_id
        and v_sub.pending_plan_id is distinct from (billing.mandate_debit_amount(v_order)).plan_id then
    -- The mandate pays for another plan than the subscription is on, or is to move to (a plan
    -- change made outside the mandate; one carried out at the provider moved the mandate with it:
    -- billing.mandate_debit_amount): a debit never changes the plan by itself.
    v_review := true;
    v_problem := pg_catalog.format('debit of %s subscription %s for plan %s, but the subscription is on plan %s: refunded; needs review (cancel the mandate, or move the subscription to its plan)',
                                   v_order.provider, v_psid,
                                   (select p.code from public.billing_plans p where p.id = (billing.mandate_debit_amount(v_order)).plan_id),
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

  -- A mandate debit that buys the next period: its own renewal order, for the plan and at the
  -- amount the debit is for (a scheduled downgrade carried out at the provider: the new plan, which
  -- the renewal then puts in effect), carrying the first order's discount while it runs (so its
  -- invoice shows it, and it counts as one of a repeating discount's periods).
  if v_problem is null and v_renewal then
    v_debit := billing.mandate_debit_amount(v_order);
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, provider_subscription_id, kind,
       amount_cents, currency, status, metadata, list_cents, discount_cents, discount_redemption_id)
    values
      (v_order.organization_id, v_debit.plan_id, v_sub.id, v_order.provider, v_psid, 'renewal',
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

CREATE OR REPLACE FUNCTION billing.apply_order_event (
  p_event    jsonb,
  p_event_at timestamp with time zone
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_kind text := p_event ->> 'kind';
  v_psid text := p_event ->> 'provider_subscription_id';
  v_status text;
  v_order public.orders;
  v_sub public.subscriptions;
  v_result jsonb;
  v_error text;
begin
  v_order := billing.match_order(p_event);
  if v_order.id is null then
    v_error := pg_catalog.format('no order matches %s event %s (order_ref %s, provider order %s, subscription %s)',
                                 p_event ->> 'provider', p_event ->> 'event_id', coalesce(p_event ->> 'order_ref', '-'),
                                 coalesce(p_event ->> 'provider_order_id', '-'), coalesce(v_psid, '-'));
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error, 'last_error', v_error);
  end if;
  select * into v_order from public.orders o where o.id = v_order.id for update;
  perform 1 from public.organizations o where o.id = v_order.organization_id for no key update;
  v_psid := coalesce(v_psid, v_order.provider_subscription_id);

  if v_kind in ('payment_captured', 'payment_failed', 'payment_authorized') and p_event ->> 'provider_payment_id' is null then
    v_error := pg_catalog.format('%s event %s names no payment', p_event ->> 'provider', p_event ->> 'event_id');
    v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);
  elsif v_kind = 'payment_captured'
        and exists (select 1 from public.payment_events pe
                    where pe.provider = v_order.provider and pe.provider_payment_id = p_event ->> 'provider_payment_id'
                      and pe.status = 'captured') then
    -- The same payment came another way first (Stripe's checkout.session.completed after the
    -- invoice.paid of a subscription's first invoice): a duplicate, before its amount is compared
    -- with what a later debit would be for (a once discount's first payment is not a mismatch).
    v_result := pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'payment already recorded',
                                              'order_id', v_order.id, 'order_status', v_order.status);
  elsif v_kind = 'payment_captured' then
    -- A later debit of a paid provider subscription (a renewal) is for what the next period
    -- costs (billing.mandate_debit_amount: a repeating discount runs out); anything else for
    -- the order's amount.
    if (p_event ->> 'amount_paise')::bigint is distinct from
         (case when v_order.status = 'paid' and v_psid is not null
               then (billing.mandate_debit_amount(v_order)).amount_cents else v_order.amount_cents end)
       or p_event ->> 'currency' is distinct from v_order.currency then
      v_result := billing.record_amount_mismatch(v_order, p_event, p_event_at);
    else
      v_status := case when v_psid is not null then p_event ->> 'subscription_status' end;
      v_result := billing.apply_captured_payment(v_order, p_event || pg_catalog.jsonb_build_object(
                    'provider_subscription_id', v_psid), p_event_at);
      v_error := coalesce(v_result ->> 'invoice_error',
                          case when v_result ->> 'result' = 'recorded' then v_result ->> 'reason' end);
    end if;
  elsif v_kind = 'payment_failed' then
    v_result := billing.apply_payment_failure(v_order, p_event, p_event_at);
  elsif v_kind = 'payment_authorized' then
    v_result := pg_catalog.jsonb_build_object('payment_event_id', billing.record_payment_event(
      v_order.organization_id, v_order.id, v_order.provider, p_event ->> 'provider_payment_id',
      coalesce((p_event ->> 'amount_paise')::bigint, 0), coalesce(p_event ->> 'currency', v_order.currency),
      'authorized', p_event ->> 'method', null,
      pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type'),
      p_event_at));
    v_result := v_result || pg_catalog.jsonb_build_object(
      'result', case when v_result ->> 'payment_event_id' is null then 'duplicate' else 'recorded' end);
    update public.orders o set status = 'pending' where o.id = v_order.id and o.status = 'created';
  elsif v_kind = 'payment_pending' then
    update public.orders o set status = 'pending' where o.id = v_order.id and o.status = 'created';
    v_result := pg_catalog.jsonb_build_object('result', 'recorded', 'reason', 'payment pending at the provider');
  elsif v_psid is null then
    -- subscription_status
    v_error := pg_catalog.format('%s event %s names no subscription', p_event ->> 'provider', p_event ->> 'event_id');
    v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);
  else
    v_status := p_event ->> 'subscription_status';
    v_result := pg_catalog.jsonb_build_object('result', 'applied');
  end if;

  if v_psid is not null and v_result ->> 'result' in ('applied', 'duplicate') then
    v_error := coalesce(billing.follow_provider_subscription(
      p_event, v_psid, v_status, p_event_at,
      v_kind = 'payment_captured' and v_result ->> 'result' = 'applied'), v_error);
  end if;

  select * into v_order from public.orders o where o.id = coalesce((v_result ->> 'order_id')::uuid, v_order.id);
  if v_psid is not null then
    select * into v_sub from public.subscriptions s
    where s.provider = v_order.provider and s.provider_subscription_id = v_psid;
  end if;
  if v_sub.id is null then
    select * into v_sub from public.subscriptions s
    where s.id = coalesce((v_result ->> 'subscription_id')::uuid, v_order.subscription_id);
  end if;
  return v_result || pg_catalog.jsonb_build_object(
    'order_id', v_order.id, 'order_status', v_order.status, 'subscription_id', v_sub.id,
    'subscription_status', v_sub.status, 'current_period_end', v_sub.current_period_end,
    'reason', coalesce(v_result ->> 'reason', v_error),
    'last_error', coalesce(v_result ->> 'last_error', v_error));
end;
$function$;

CREATE OR REPLACE FUNCTION billing.mandate_debit_amount (
  p_order public.orders,
  OUT     amount_cents bigint,
  OUT     discounted boolean,
  OUT     plan_id uuid
)
  RETURNS record
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_terms jsonb;
  v_change jsonb;
begin
  discounted := false;
  amount_cents := p_order.amount_cents;
  plan_id := p_order.plan_id;
  select a.payload into v_change
  from billing.provider_actions a
  where a.kind = 'change_plan' and a.state = 'succeeded' and a.provider = p_order.provider
    and a.target ->> 'provider_subscription_id' = p_order.provider_subscription_id
    and a.created_at >= p_order.created_at and a.payload ? 'price_amount'
  order by a.created_at desc, a.id desc
  limit 1;
  if v_change is not null then
    amount_cents := (v_change ->> 'price_amount')::bigint;
    select p.id into plan_id from public.billing_plans p where p.code = v_change ->> 'plan_code';
    plan_id := coalesce(plan_id, p_order.plan_id);
    return;
  end if;
  if p_order.discount_redemption_id is null or p_order.discount_cents = 0 then
    return;
  end if;
  select r.terms into v_terms from public.discount_redemptions r where r.id = p_order.discount_redemption_id;
  discounted := v_terms ->> 'duration' = 'forever'
    or (v_terms ->> 'duration' = 'repeating'
        and (select count(*) from public.orders o
             where o.discount_redemption_id = p_order.discount_redemption_id and o.status = 'paid')
            < (v_terms ->> 'periods')::integer);
  if not discounted then
    amount_cents := coalesce(p_order.list_cents, p_order.amount_cents + p_order.discount_cents);
  end if;
end;
$function$;

REVOKE ALL ON FUNCTION "billing"."mandate_debit_amount"(public.orders) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."mandate_debit_amount"(public.orders) TO "service_role";
