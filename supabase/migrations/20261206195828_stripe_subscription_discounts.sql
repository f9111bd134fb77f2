-- What this migration does: a Stripe subscription checkout takes a discount code (only a Razorpay
-- subscription, which charges its plan's own amount, refuses one again); billing.checkout_order
-- carries discount_periods (billing.discount_periods_left) so Stripe's coupon lasts as long as our
-- discount; a later debit of a provider subscription is for billing.mandate_debit_amount (the
-- first order's amount while its discount runs, else its list price), checked by apply_order_event
-- and charged on the renewal order, which carries the discount while it runs;
-- billing.provider_customers no longer enables row level security without a policy (a private
-- table, as the other billing tables: service_role only).
--
-- stripe_subscription_discounts: drafted by `npm run db:diff -- stripe_subscription_discounts` from the difference between the database the
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

ALTER TABLE "billing"."provider_customers"
  DISABLE ROW LEVEL SECURITY;

ALTER TYPE "billing"."checkout_order" ADD ATTRIBUTE "discount_periods" integer CASCADE;

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
    p_order.discount_cents,
    billing.discount_periods_left(p_order))::billing.checkout_order;
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
    -- The order this checkout creates supersedes the organization's open plan orders: their
    -- reservations of the code do not count here (billing.reserve_discount checks again).
    perform billing.check_discount_limits(v_code, p_organization_id, p_at, true);
    -- The billing interval of the plan it is redeemed on: its periods are of that length, so it
    -- carries only to plans of the same interval (a monthly "3 periods" is not 3 years).
    v_terms := billing.discount_terms(v_code) || pg_catalog.jsonb_build_object('interval', p_plan.interval);
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
      and (not r.terms ? 'interval' or r.terms ->> 'interval' = p_plan.interval::text)
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

CREATE OR REPLACE FUNCTION billing.discount_periods_left (
  p_order public.orders
)
  RETURNS integer
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_terms jsonb;
begin
  if p_order.discount_redemption_id is null or p_order.discount_cents = 0 then
    return null;
  end if;
  select r.terms into v_terms from public.discount_redemptions r where r.id = p_order.discount_redemption_id;
  return case v_terms ->> 'duration'
    when 'once' then 1
    when 'repeating' then greatest((v_terms ->> 'periods')::integer
      - (select count(*)::integer from public.orders o
         where o.discount_redemption_id = p_order.discount_redemption_id and o.status = 'paid' and o.id <> p_order.id), 1)
  end;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.mandate_debit_amount (
  p_order public.orders,
  OUT     amount_cents bigint,
  OUT     discounted boolean
)
  RETURNS record
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_terms jsonb;
begin
  discounted := false;
  amount_cents := p_order.amount_cents;
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

REVOKE ALL ON FUNCTION "billing"."discount_periods_left"(public.orders) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."discount_periods_left"(public.orders) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."mandate_debit_amount"(public.orders) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."mandate_debit_amount"(public.orders) TO "service_role";
