-- What this migration does: joins two sets of fixes made side by side (the Stripe review's and
-- the simulator's) in billing.apply_order_event: a capture already recorded is a duplicate before
-- its amount is compared, keeps the event's subscription status, and answers with its order.
-- No data change.
--
-- stripe_review_with_simulator_fixes: drafted by `npm run db:diff -- stripe_review_with_simulator_fixes` from the difference between the database the
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
  v_expected bigint;
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
    -- The same payment came another way first (Stripe's invoice.paid before the
    -- checkout.session.completed of a subscription's first payment, or after it): a duplicate,
    -- before the amount check, which would take the order, now paid, for a renewal's and call a
    -- discounted first payment a mismatch.
    v_status := case when v_psid is not null then p_event ->> 'subscription_status' end;
    v_result := pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'payment already recorded',
                                              'order_id', v_order.id, 'order_status', v_order.status);
  elsif v_kind = 'payment_captured' then
    -- A later debit of a paid provider subscription (a renewal) is for what the next period
    -- costs (billing.mandate_debit_amount: a repeating discount runs out); anything else for
    -- the order's amount.
    v_expected := case when v_order.status = 'paid' and v_psid is not null
                       then (billing.mandate_debit_amount(v_order)).amount_cents else v_order.amount_cents end;
    if (p_event ->> 'amount_paise')::bigint is distinct from v_expected
       or p_event ->> 'currency' is distinct from v_order.currency then
      v_result := billing.record_amount_mismatch(v_order, p_event, p_event_at, v_expected);
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
