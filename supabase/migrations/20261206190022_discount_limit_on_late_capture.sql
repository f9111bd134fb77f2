-- discount_limit_on_late_capture: drafted by `npm run db:diff -- discount_limit_on_late_capture` from the difference between the database the
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
-- What this migration does: a payment made before its order expired but delivered after it could
-- push a code past max_redemptions: once expired, the order's reservation no longer counted,
-- another buyer took the last redemption, and the late payment was still applied at the
-- discount. billing.apply_captured_payment now asks billing.claim_discount_on_capture, which
-- locks the code's row and counts every other redemption that counts: at the code's limit (or the
-- organization's), the payment is recorded for refund and never applied; otherwise a reservation
-- released meanwhile is reserved again so paying redeems it. No data changes.

SET local check_function_bodies = off;

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

CREATE OR REPLACE FUNCTION billing.claim_discount_on_capture (
  p_order public.orders
)
  RETURNS text
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_redemption public.discount_redemptions;
  v_code billing.discount_codes;
  v_all integer;
  v_own integer;
begin
  if p_order.discount_redemption_id is null then
    return null;
  end if;
  select * into v_redemption from public.discount_redemptions r
  where r.id = p_order.discount_redemption_id and r.order_id = p_order.id;
  if v_redemption.id is null or v_redemption.status = 'redeemed' then
    return null;
  end if;
  select * into v_code from billing.discount_codes c where c.id = v_redemption.discount_code_id for update;
  select count(*)::integer, (count(*) filter (where r.organization_id = p_order.organization_id))::integer
  into v_all, v_own
  from public.discount_redemptions r
  left join public.orders o on o.id = r.order_id
  where r.discount_code_id = v_code.id and r.id <> v_redemption.id
    and (r.status = 'redeemed'
         or (r.status = 'reserved' and o.status in ('created', 'pending') and (o.expires_at is null or o.expires_at > v_now)));
  if v_code.max_redemptions is not null and v_all >= v_code.max_redemptions then
    return pg_catalog.format('discount code %s reached its %s redemption(s) before the payment of order %s was delivered: refund',
                             v_code.code, v_code.max_redemptions, p_order.receipt);
  end if;
  if v_code.max_per_organization is not null and v_own >= v_code.max_per_organization then
    return pg_catalog.format('discount code %s was already used by this organization (%s time(s) allowed) before the payment of order %s was delivered: refund',
                             v_code.code, v_code.max_per_organization, p_order.receipt);
  end if;
  if v_redemption.status = 'released' then
    update public.discount_redemptions r set status = 'reserved', released_at = null where r.id = v_redemption.id;
  end if;
  return null;
end;
$function$;

REVOKE ALL ON FUNCTION "billing"."claim_discount_on_capture"(public.orders) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."claim_discount_on_capture"(public.orders) TO "service_role";
