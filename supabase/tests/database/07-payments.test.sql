-- Payments: billing.apply_payment_event (exactly once per event and per payment, amount and
-- currency checks, unknown orders, order and subscription moves, extensions, refunds, Razorpay
-- subscription events, arrival order, bad input), create_checkout_order, attach / cancel, and
-- reconcile_due_orders. The clock is pinned with billing.now.
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
-- Fixtures make one user owner of four organizations (past billing_settings.max_owned_organizations,
-- 3 per user); that limit is tested in 01-tenancy-per-person.
select tests.relax_owner_limit();
select plan(119);

-- -------------------------------------------------------------------------------------------------
-- Fixture and helpers
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values
  ('c5555555-0000-4000-8000-000000000001', 'pay-owner@test.local'),
  ('c5555555-0000-4000-8000-000000000002', 'pay-member@test.local'),
  ('c5555555-0000-4000-8000-000000000003', 'pay-stranger@test.local');

insert into public.organizations (id, name, billing_email) values
  ('c5000000-0000-4000-8000-00000000000a', 'Payments org A', 'a@pay.test'),
  ('c5000000-0000-4000-8000-00000000000b', 'Payments org B', 'b@pay.test'),
  ('c5000000-0000-4000-8000-00000000000c', 'Payments org C', 'c@pay.test'),
  ('c5000000-0000-4000-8000-00000000000d', 'Payments org D', 'd@pay.test'),
  ('c5000000-0000-4000-8000-00000000000e', 'Payments org E', 'e@pay.test'),
  ('c5000000-0000-4000-8000-00000000000f', 'Payments org F', 'f@pay.test'),
  ('c5000000-0000-4000-8000-000000000010', 'Payments org G', 'g@pay.test'),
  ('c5000000-0000-4000-8000-000000000011', 'Payments org H', 'h@pay.test'),
  ('c5000000-0000-4000-8000-000000000012', 'Payments org I', 'i@pay.test');

insert into public.organization_members (organization_id, user_id, role) values
  ('c5000000-0000-4000-8000-00000000000a', 'c5555555-0000-4000-8000-000000000001', 'owner'),
  ('c5000000-0000-4000-8000-00000000000a', 'c5555555-0000-4000-8000-000000000002', 'member'),
  ('c5000000-0000-4000-8000-00000000000d', 'c5555555-0000-4000-8000-000000000001', 'owner'),
  ('c5000000-0000-4000-8000-00000000000f', 'c5555555-0000-4000-8000-000000000001', 'owner'),
  ('c5000000-0000-4000-8000-000000000010', 'c5555555-0000-4000-8000-000000000001', 'owner');

insert into public.billing_plans (id, code, name, tier, interval, price_cents, currency, provider_config, active) values
  ('c5100000-0000-4000-8000-000000000001', 'p5_month', 'P5 monthly', 'basic', 'month', 50000, 'INR', '{}', true),
  ('c5100000-0000-4000-8000-000000000002', 'p5_year', 'P5 yearly', 'pro', 'year', 500000, 'INR',
   '{"razorpay": {"plan_id": "plan_p5_year"}}', true),
  ('c5100000-0000-4000-8000-000000000003', 'p5_retired', 'P5 retired', 'pro', 'month', 50000, 'INR', '{}', false),
  ('c5100000-0000-4000-8000-000000000004', 'p5_usd', 'P5 dollars', 'pro', 'month', 5000, 'USD', '{}', true);

-- The seller (Karnataka) and tax-exclusive prices at 18 % GST, whatever the seed set: an order
-- inserted with the price 50000 charges 59000 (CGST 4500 + SGST 4500 for a buyer with no state);
-- Razorpay recurring orders carve the GST out of the plan's amount, so they charge 500000.
update public.billing_settings
set seller_legal_name = 'Payments Test Seller Pvt Ltd', seller_gstin = null, seller_state_code = '29',
    gst_rate_bp = 1800, prices_include_tax = false, grace_days = 3;

-- Orders: A pays P5 monthly through PayU (twice, for the extension), B through Razorpay,
-- C has a Razorpay subscription, D and E have subscriptions that get events in opposite orders.
insert into public.orders (id, organization_id, plan_id, provider, receipt, provider_order_id, provider_subscription_id,
                           amount_cents, currency, status) values
  ('c5200000-0000-4000-8000-000000000001', 'c5000000-0000-4000-8000-00000000000a', 'c5100000-0000-4000-8000-000000000001',
   'payu', 'p5_txn_a1', null, null, 50000, 'INR', 'pending'),
  ('c5200000-0000-4000-8000-000000000002', 'c5000000-0000-4000-8000-00000000000a', 'c5100000-0000-4000-8000-000000000001',
   'payu', 'p5_txn_a2', null, null, 50000, 'INR', 'pending'),
  ('c5200000-0000-4000-8000-000000000003', 'c5000000-0000-4000-8000-00000000000b', 'c5100000-0000-4000-8000-000000000001',
   'razorpay', 'p5_rcpt_b1', 'order_p5b1', null, 50000, 'INR', 'pending'),
  ('c5200000-0000-4000-8000-000000000004', 'c5000000-0000-4000-8000-00000000000c', 'c5100000-0000-4000-8000-000000000002',
   'razorpay', 'p5_rcpt_c1', null, 'sub_p5c', 500000, 'INR', 'pending'),
  ('c5200000-0000-4000-8000-000000000005', 'c5000000-0000-4000-8000-00000000000d', 'c5100000-0000-4000-8000-000000000002',
   'razorpay', 'p5_rcpt_d1', null, 'sub_p5d', 500000, 'INR', 'pending'),
  ('c5200000-0000-4000-8000-000000000006', 'c5000000-0000-4000-8000-00000000000e', 'c5100000-0000-4000-8000-000000000002',
   'razorpay', 'p5_rcpt_e1', null, 'sub_p5e', 500000, 'INR', 'pending'),
  ('c5200000-0000-4000-8000-000000000009', 'c5000000-0000-4000-8000-000000000010', 'c5100000-0000-4000-8000-000000000002',
   'razorpay', 'p5_rcpt_g1', null, 'sub_p5g', 500000, 'INR', 'pending'),
  ('c5200000-0000-4000-8000-00000000000a', 'c5000000-0000-4000-8000-000000000011', 'c5100000-0000-4000-8000-000000000001',
   'payu', 'p5_txn_h1', null, null, 50000, 'INR', 'pending'),
  ('c5200000-0000-4000-8000-00000000000b', 'c5000000-0000-4000-8000-000000000012', 'c5100000-0000-4000-8000-000000000001',
   'payu', 'p5_txn_i1', null, null, 50000, 'INR', 'pending');

/** A normalized event (the shape the Edge Functions send). */
create function pg_temp.ev(
  p_provider text, p_event_id text, p_type text, p_ref text, p_payment_id text,
  p_amount bigint, p_currency text default 'INR', p_extra jsonb default '{}'
) returns jsonb language sql as $$
  select jsonb_build_object(
    'provider', p_provider, 'event_id', p_event_id, 'event_type', p_type, 'order_ref', p_ref,
    'provider_order_id', null, 'provider_payment_id', p_payment_id, 'provider_subscription_id', null,
    'provider_refund_id', null, 'amount_paise', p_amount, 'currency', p_currency, 'status', null,
    'method', 'upi', 'occurred_at', null, 'payload', '{}'::jsonb) || p_extra
$$;

/** Applies an event as service_role (the only role allowed) and returns the result's `result`. */
create function pg_temp.apply(p_event jsonb) returns text language plpgsql as $$
declare
  v_result jsonb;
begin
  perform tests.as_role('service_role');
  v_result := billing.apply_payment_event(tests.adapted(p_event));
  perform tests.as_postgres();
  return v_result ->> 'result';
end;
$$;

/** A Razorpay subscription event for sub `p_sub` at unix-ish offset p_at (seconds after a base time). */
create function pg_temp.sub_ev(p_event_id text, p_type text, p_sub text, p_at integer, p_payment_id text default null)
returns jsonb language sql as $$
  select pg_temp.ev('razorpay', p_event_id, p_type, null, p_payment_id, case when p_payment_id is null then null else 500000 end,
                    case when p_payment_id is null then null else 'INR' end,
                    jsonb_build_object('provider_subscription_id', p_sub,
                                       'occurred_at', (timestamptz '2026-01-01 00:00+00' + make_interval(secs => p_at))::text))
$$;

create function pg_temp.sub_of(p_org uuid) returns public.subscriptions language sql as $$
  select * from public.subscriptions where organization_id = p_org
  order by status in ('pending_payment', 'trialing', 'active', 'past_due') desc, current_period_end desc nulls last limit 1
$$;

/** create_checkout_order as the owner: 'ok', or the error's SQLSTATE and HINT. */
create function pg_temp.checkout_outcome(p_org uuid, p_plan text, p_provider text) returns text language plpgsql as $$
declare
  v_state text;
  v_hint text;
begin
  perform tests.as_user('c5555555-0000-4000-8000-000000000001');
  perform public.create_checkout_order(p_org, p_plan, p_provider);
  perform tests.as_postgres();
  return 'ok';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_hint = pg_exception_hint;
  perform tests.as_postgres();
  return v_state || ' ' || coalesce(nullif(v_hint, ''), '-');
end;
$$;

set local billing.now = '2026-01-10 12:00+05:30';

-- -------------------------------------------------------------------------------------------------
-- Who may call what
-- -------------------------------------------------------------------------------------------------

select ok(not has_function_privilege('authenticated', 'billing.apply_payment_event(jsonb)', 'execute'),
  'signed-in users cannot call apply_payment_event');
select ok(not has_function_privilege('anon', 'billing.apply_payment_event(jsonb)', 'execute'),
  'anon cannot call apply_payment_event');
select ok(has_function_privilege('service_role', 'billing.apply_payment_event(jsonb)', 'execute'),
  'service_role can call apply_payment_event');
select ok(not has_function_privilege('anon', 'public.create_checkout_order(uuid,text,text,text,text)', 'execute'),
  'anon cannot create checkout orders');
select ok(not has_function_privilege('authenticated', 'billing.attach_provider_checkout(uuid,text,text,text,text)', 'execute')
          and not has_function_privilege('authenticated', 'billing.cancel_checkout_order(uuid,text)', 'execute')
          and not has_function_privilege('authenticated', 'billing.reconcile_due_orders(integer)', 'execute'),
  'signed-in users cannot attach, cancel or reconcile orders');

-- -------------------------------------------------------------------------------------------------
-- Bad input raises a clear error and records nothing
-- -------------------------------------------------------------------------------------------------

select tests.as_role('service_role');
select throws_ok($$select billing.apply_payment_event(tests.adapted('[1]'))$$, '22023', 'payment event must be a JSON object',
  'an event that is not an object is refused');
select throws_ok($$select billing.apply_payment_event(tests.adapted(pg_temp.ev('paypal', 'e1', 'payment.success', 'x', 'm', 1)))$$,
  '22023', 'payment event: provider must be "payu", "razorpay" or "stripe", got "paypal"', 'an unknown provider is refused');
select throws_ok($$select billing.apply_payment_event(tests.adapted(pg_temp.ev('payu', 'e1', 'payment.success', 'x', 'm', 1) - 'event_id'))$$,
  '22023', 'payment event: event_id is required (a string of 1 to 300 characters)', 'a missing event_id is refused');
select throws_ok($$select billing.apply_payment_event(tests.adapted(pg_temp.ev('payu', 'e1', 'payment.success', 'x', 'm', 1) - 'event_type'))$$,
  '22023', 'payment event: event_type is required (a string of 1 to 300 characters)', 'a missing event_type is refused');
select throws_ok($$select billing.apply_payment_event(tests.adapted(pg_temp.ev('payu', 'e1', 'payment.success', 'x', 'm', 1)
                     || '{"amount_paise": 499.5}'))$$,
  '22023', 'payment event: amount_paise must be a non-negative integer of paise, got 499.5', 'a fractional amount is refused');
select throws_ok($$select billing.apply_payment_event(tests.adapted(pg_temp.ev('payu', 'e1', 'payment.success', 'x', 'm', 1)
                     || '{"amount_paise": "49900"}'))$$,
  '22023', 'payment event: amount_paise must be a non-negative integer of paise, got "49900"', 'an amount given as a string is refused');
select throws_ok($$select billing.apply_payment_event(tests.adapted(pg_temp.ev('payu', 'e1', 'payment.success', 'x', 'm', 1, 'inr')))$$,
  '22023', 'payment event: currency must be three capital letters, got "inr"', 'a malformed currency is refused');
select throws_ok($$select billing.apply_payment_event(tests.adapted(pg_temp.ev('payu', 'e1', 'payment.success', 'x', 'm', 1)
                     || '{"occurred_at": "yesterday-ish"}'))$$,
  '22023', 'payment event: occurred_at must be an ISO 8601 timestamp, got "yesterday-ish"', 'a malformed time is refused');
select throws_ok($$select billing.apply_payment_event(tests.adapted(pg_temp.ev('payu', 'e1', 'payment.success', 'x', 'm', 1)
                     || '{"cancel_at_period_end": "yes"}'))$$,
  '22023', 'payment event: cancel_at_period_end must be true, false or null, got "yes"', 'a cancel_at_period_end that is not a boolean is refused');
select tests.as_postgres();
select is((select count(*)::integer from billing.webhook_events where event_id = 'e1'), 0,
  'refused events are not recorded');

-- -------------------------------------------------------------------------------------------------
-- Happy path, duplicates
-- -------------------------------------------------------------------------------------------------

select is(pg_temp.apply(pg_temp.ev('payu', 'p5_txn_a1:mih_a1:success', 'payment.success', 'p5_txn_a1', 'mih_a1', 59000)),
  'applied', 'a PayU success for the order''s amount is applied');
select is((select status from public.orders where id = 'c5200000-0000-4000-8000-000000000001'), 'paid',
  'the order is paid');
select is((select row(status, plan_id, current_period_start, current_period_end)::text
           from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000a')),
  row('active'::subscription_status, 'c5100000-0000-4000-8000-000000000001'::uuid,
      '2026-01-10 12:00+05:30'::timestamptz, '2026-02-10 12:00+05:30'::timestamptz)::text,
  'the subscription is active on the plan for one month from now');
select is((select row(action, new_status, actor_kind)::text from public.subscription_history
           where organization_id = 'c5000000-0000-4000-8000-00000000000a'),
  '(activated,active,provider)', 'one history row: activated by the provider');
select is((select row(status, amount_cents, currency)::text from public.payment_events
           where provider_payment_id = 'mih_a1'), '(captured,59000,INR)', 'the captured payment is recorded');
select ok((select processed_at is not null from billing.webhook_events where event_id = 'p5_txn_a1:mih_a1:success'),
  'the event is marked processed');

select is(pg_temp.apply(pg_temp.ev('payu', 'p5_txn_a1:mih_a1:success', 'payment.success', 'p5_txn_a1', 'mih_a1', 59000)),
  'duplicate', 'the same event again is a duplicate');
select is(pg_temp.apply(pg_temp.ev('payu', 'another-way:mih_a1', 'payment.success', 'p5_txn_a1', 'mih_a1', 59000)),
  'duplicate', 'the same payment under another event id is a duplicate too');
select is((select row((select count(*) from public.payment_events where organization_id = 'c5000000-0000-4000-8000-00000000000a'),
                      (select count(*) from public.subscription_history where organization_id = 'c5000000-0000-4000-8000-00000000000a'),
                      (select current_period_end from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000a')))::text),
  row(1, 1, '2026-02-10 12:00+05:30'::timestamptz)::text,
  'duplicates add no payment, no history and no extension');
select is((select attempts from billing.webhook_events where event_id = 'p5_txn_a1:mih_a1:success'), 2,
  'a duplicate delivery is counted in attempts');

-- -------------------------------------------------------------------------------------------------
-- Captured never goes back to failed
-- -------------------------------------------------------------------------------------------------

select is(pg_temp.apply(pg_temp.ev('payu', 'p5_txn_a1:mih_a1:failure', 'payment.failure', 'p5_txn_a1', 'mih_a1', 59000)),
  'applied', 'a failure arriving after the success is recorded');
select is((select status from public.orders where id = 'c5200000-0000-4000-8000-000000000001'), 'paid',
  'the paid order stays paid');
select is((select status from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000a')), 'active'::subscription_status,
  'the subscription stays active');

-- -------------------------------------------------------------------------------------------------
-- Extension: from the period end while active, from now after expiry
-- -------------------------------------------------------------------------------------------------

set local billing.now = '2026-01-20 12:00+05:30';
select is(pg_temp.apply(pg_temp.ev('payu', 'p5_txn_a2:mih_a2:success', 'payment.success', 'p5_txn_a2', 'mih_a2', 59000)),
  'applied', 'a second payment while active is applied');
select is((select row(current_period_start, current_period_end)::text from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000a')),
  row('2026-01-10 12:00+05:30'::timestamptz, '2026-03-10 12:00+05:30'::timestamptz)::text,
  'a payment while active extends from the current period end, by one month');
select is((select action from public.subscription_history
           where organization_id = 'c5000000-0000-4000-8000-00000000000a' order by effective_at desc limit 1),
  'renewed', 'the extension is in the history as renewed');

-- B: paid, then expired long ago, then pays again: the new period starts now.
set local billing.now = '2026-01-10 12:00+05:30';
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_b1', 'payment.captured', null, 'pay_b1', 59000, 'INR',
                                   '{"provider_order_id": "order_p5b1"}')),
  'applied', 'a Razorpay payment.captured matched by the provider order id is applied');
update public.subscriptions set status = 'expired', ended_at = '2026-02-13 12:00+05:30'
where organization_id = 'c5000000-0000-4000-8000-00000000000b';
-- The order is made after the subscription expired (an order's quote expires: one made before
-- the clock moved on would be paid too late).
set local billing.now = '2026-04-01 09:00+05:30';
insert into public.orders (id, organization_id, plan_id, provider, receipt, provider_order_id, amount_cents, status)
values ('c5200000-0000-4000-8000-000000000007', 'c5000000-0000-4000-8000-00000000000b',
        'c5100000-0000-4000-8000-000000000001', 'razorpay', 'p5_rcpt_b2', 'order_p5b2', 50000, 'pending');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_b2', 'order.paid', 'p5_rcpt_b2', 'pay_b2', 59000, 'INR',
                                   '{"provider_order_id": "order_p5b2"}')),
  'applied', 'a payment after expiry is applied');
select is((select row(status, current_period_start, current_period_end)::text from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000b')),
  row('active'::subscription_status, '2026-04-01 09:00+05:30'::timestamptz, '2026-05-01 09:00+05:30'::timestamptz)::text,
  'after expiry the new period starts now');
select is((select count(*)::integer from public.subscriptions where organization_id = 'c5000000-0000-4000-8000-00000000000b'), 2,
  'the expired subscription is kept; a new one is live');

-- -------------------------------------------------------------------------------------------------
-- Mismatches and unknown orders: recorded, nothing activated
-- -------------------------------------------------------------------------------------------------

insert into public.orders (id, organization_id, plan_id, provider, receipt, amount_cents, status)
values ('c5200000-0000-4000-8000-000000000008', 'c5000000-0000-4000-8000-00000000000e',
        'c5100000-0000-4000-8000-000000000001', 'payu', 'p5_txn_e_mis', 50000, 'pending');
select is(pg_temp.apply(pg_temp.ev('payu', 'mis:1', 'payment.success', 'p5_txn_e_mis', 'mih_mis1', 100)),
  'mismatch', 'a payment for another amount is a mismatch');
select is(pg_temp.apply(pg_temp.ev('payu', 'mis:2', 'payment.success', 'p5_txn_e_mis', 'mih_mis2', 50000, 'USD')),
  'mismatch', 'a payment in another currency is a mismatch');
select is(pg_temp.apply(pg_temp.ev('payu', 'mis:3', 'payment.success', 'p5_txn_e_mis', 'mih_mis3', null)),
  'mismatch', 'a payment without an amount is a mismatch');
select is((select array_agg(status::text order by provider_payment_id) from public.payment_events where order_id = 'c5200000-0000-4000-8000-000000000008'),
  array['mismatch', 'mismatch', 'mismatch'], 'each mismatch is recorded in payment_events');
select is((select last_error from billing.webhook_events where event_id = 'mis:1'),
  'amount mismatch for order p5_txn_e_mis: expected 59000 INR, got 100 INR', 'the mismatch is explained in webhook_events.last_error');
select is((select status from public.orders where id = 'c5200000-0000-4000-8000-000000000008'), 'pending',
  'the order stays pending after mismatches');
select is((select count(*)::integer from public.subscriptions where organization_id = 'c5000000-0000-4000-8000-00000000000e'), 0,
  'a mismatch activates nothing');
select is(pg_temp.apply(pg_temp.ev('payu', 'nobody:1', 'payment.success', 'no_such_txn', 'mih_nobody', 50000)),
  'unmatched', 'a payment for an unknown order is unmatched');
select ok((select last_error like 'no order matches payu event nobody:1%' and processed_at is not null
           from billing.webhook_events where event_id = 'nobody:1'),
  'the unknown order is recorded in webhook_events.last_error and acknowledged');
select is((select count(*)::integer from public.payment_events where provider_payment_id = 'mih_nobody'), 0,
  'an unmatched payment records no payment event');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_other_order', 'payment.captured', 'p5_rcpt_b2', 'pay_other', 50000, 'INR',
                                   '{"provider_order_id": "order_someone_else"}')),
  'unmatched', 'our receipt in the notes of a payment for another Razorpay order matches nothing');

-- -------------------------------------------------------------------------------------------------
-- Refunds, unknown event types
-- -------------------------------------------------------------------------------------------------

select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_rf1', 'refund.processed', null, 'pay_b1', 20000, 'INR',
                                   '{"provider_refund_id": "rfnd_1"}')),
  'applied', 'a refund of a captured payment is applied');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_rf1_again', 'refund.processed', null, 'pay_b1', 20000, 'INR',
                                   '{"provider_refund_id": "rfnd_1"}')),
  'duplicate', 'the same refund under another event id is a duplicate');
select is((select row(order_id, amount_cents, details ->> 'refund_id')::text from public.payment_events
           where provider_payment_id = 'pay_b1' and status = 'refunded'),
  row('c5200000-0000-4000-8000-000000000003'::uuid, 20000, 'rfnd_1')::text,
  'the refund is recorded once, against its payment and order');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_rf_big', 'refund.processed', null, 'pay_b1', 39001, 'INR',
                                   '{"provider_refund_id": "rfnd_big"}')),
  'mismatch', 'a refund that would take the refunds of a payment above what was captured (20000 + 39001 > 59000) is a mismatch');
select is((select row(pe.status, pe.amount_cents, pe.details ->> 'refund_id',
                      (select count(*) from public.credit_notes c where c.payment_event_id = pe.id))::text
           from public.payment_events pe where pe.provider_payment_id = 'pay_b1' and pe.details ->> 'refund_id' = 'rfnd_big'),
  '(mismatch,39001,rfnd_big,0)', 'the oversized refund is recorded as a mismatch, with no credit note');
select is((select sum(amount_cents)::bigint from public.payment_events where provider_payment_id = 'pay_b1' and status = 'refunded'),
  20000::bigint, 'it does not count as refunded');
select ok((select last_error like 'refund rfnd_big: refunds of payment pay_b1 would reach 59001, above the 59000 captured%'
           from billing.webhook_events where event_id = 'evt_rf_big'), 'the mismatch is explained in webhook_events.last_error');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_rf_rest', 'refund.processed', null, 'pay_b1', 39000, 'INR',
                                   '{"provider_refund_id": "rfnd_rest"}')),
  'applied', 'a refund of exactly what is left is applied');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_rf_big2', 'refund.processed', null, 'pay_b1', 100, 'INR',
                                   '{"provider_refund_id": "rfnd_big2"}')),
  'mismatch', 'a second refund beyond what was captured is a mismatch too');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_rf_big2_again', 'refund.processed', null, 'pay_b1', 100, 'INR',
                                   '{"provider_refund_id": "rfnd_big2"}')),
  'duplicate', 'the same refund under another event id is a duplicate');
select is((select array_agg(details ->> 'refund_id' order by details ->> 'refund_id') from public.payment_events
           where provider_payment_id = 'pay_b1' and status = 'mismatch'),
  array['rfnd_big', 'rfnd_big2'], 'each refund the provider made is in the ledger once, by its refund id, the second mismatch too');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_rf_unknown', 'refund.processed', null, 'pay_unknown', 100, 'INR',
                                   '{"provider_refund_id": "rfnd_2"}')),
  'unmatched', 'a refund of an unknown payment is unmatched');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'evt_settlement', 'settlement.processed', null, 'pay_b1', 50000)),
  'ignored', 'an unknown event type is acknowledged as ignored');
select ok((select processed_at is not null and last_error is null from billing.webhook_events where event_id = 'evt_settlement'),
  'the ignored event is recorded');

-- -------------------------------------------------------------------------------------------------
-- Razorpay subscription events
-- -------------------------------------------------------------------------------------------------

set local billing.now = '2026-01-10 12:00+05:30';
select is(pg_temp.apply(pg_temp.sub_ev('evt_c1', 'subscription.charged', 'sub_p5c', 10, 'pay_c1')), 'applied',
  'subscription.charged for a known subscription is applied');
select is((select row(status, provider, provider_subscription_id, current_period_end)::text from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000c')),
  row('active'::subscription_status, 'razorpay', 'sub_p5c', '2027-01-10 12:00+05:30'::timestamptz)::text,
  'the first charge activates the yearly plan for a year, linked to the Razorpay subscription');
select is(pg_temp.apply(pg_temp.sub_ev('evt_c2', 'subscription.pending', 'sub_p5c', 20)), 'applied',
  'subscription.pending is applied');
select is((select status from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000c')), 'past_due'::subscription_status,
  'pending -> past_due');
select is(pg_temp.apply(pg_temp.sub_ev('evt_c_old', 'subscription.activated', 'sub_p5c', 15)), 'applied',
  'an older subscription.activated is acknowledged');
select is((select status from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000c')), 'past_due'::subscription_status,
  'an event older than the last applied one does not move the status back');
select is(pg_temp.apply(pg_temp.sub_ev('evt_c3', 'subscription.charged', 'sub_p5c', 30, 'pay_c2')), 'applied',
  'the next charge is applied');
select is((select row(status, current_period_end)::text from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000c')),
  row('active'::subscription_status, '2028-01-10 12:00+05:30'::timestamptz)::text,
  'charged -> active, extended by another year');
select is((select count(*)::integer from public.orders where provider_subscription_id = 'sub_p5c' and kind = 'renewal' and status = 'paid'), 1,
  'the second charge has a paid renewal order of its own');
select is(pg_temp.apply(pg_temp.sub_ev('evt_c4', 'subscription.halted', 'sub_p5c', 40)), 'applied', 'subscription.halted is applied');
select is((select status from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000c')), 'past_due'::subscription_status,
  'halted -> past_due');
select is(pg_temp.apply(pg_temp.sub_ev('evt_c5', 'subscription.cancelled', 'sub_p5c', 50)), 'applied', 'subscription.cancelled is applied');
select is((select row(status, canceled_at)::text from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000c')),
  row('canceled'::subscription_status, '2026-01-10 12:00+05:30'::timestamptz)::text, 'cancelled -> canceled, now');

-- Out of order: D gets charged, pending, charged, cancelled in order; E the same in reverse.
select is(array[
  pg_temp.apply(pg_temp.sub_ev('evt_d1', 'subscription.charged', 'sub_p5d', 10, 'pay_d1')),
  pg_temp.apply(pg_temp.sub_ev('evt_d2', 'subscription.pending', 'sub_p5d', 20)),
  pg_temp.apply(pg_temp.sub_ev('evt_d3', 'subscription.charged', 'sub_p5d', 30, 'pay_d2')),
  pg_temp.apply(pg_temp.sub_ev('evt_d4', 'subscription.resumed', 'sub_p5d', 40)),
  pg_temp.apply(pg_temp.sub_ev('evt_e4', 'subscription.resumed', 'sub_p5e', 40)),
  pg_temp.apply(pg_temp.sub_ev('evt_e3', 'subscription.charged', 'sub_p5e', 30, 'pay_e2')),
  pg_temp.apply(pg_temp.sub_ev('evt_e2', 'subscription.pending', 'sub_p5e', 20)),
  pg_temp.apply(pg_temp.sub_ev('evt_e1', 'subscription.charged', 'sub_p5e', 10, 'pay_e1'))
], array_fill('applied'::text, array[8]), 'D''s events in order and E''s in reverse are all applied');
select is((select row(status, current_period_start, current_period_end)::text from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000e')),
          (select row(status, current_period_start, current_period_end)::text from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000d')),
  'charged events (and the status events between them) applied in reverse order end in the same state');
select is((select row(status, current_period_end)::text from pg_temp.sub_of('c5000000-0000-4000-8000-00000000000e')),
  row('active'::subscription_status, '2028-01-10 12:00+05:30'::timestamptz)::text,
  'that state is active with two years paid');

-- -------------------------------------------------------------------------------------------------
-- Checkout orders
-- -------------------------------------------------------------------------------------------------

select tests.as_user('c5555555-0000-4000-8000-000000000001');
create temp table p5_checkout on commit drop as
  select * from public.create_checkout_order('c5000000-0000-4000-8000-00000000000f', 'p5_year', 'razorpay');
create temp table p5_checkout_payu on commit drop as
  select * from public.create_checkout_order('c5000000-0000-4000-8000-00000000000a', 'p5_month', 'payu');
select tests.as_postgres();
select is((select row(status, amount_cents, currency, razorpay_plan_id, razorpay_total_count, buyer_email)::text from p5_checkout),
  row('created', 500000::bigint, 'INR', 'plan_p5_year', 10, 'f@pay.test')::text,
  'an owner''s Razorpay checkout order waits for its provider subscription, with the plan''s amount and Razorpay plan');
select is((select row(o.amount_cents, o.taxable_cents, o.supply_type, o.prices_include_tax)::text
           from public.orders o where o.id = (select order_id from p5_checkout)),
  '(500000,423728,intra_state,t)',
  'a Razorpay recurring order charges the plan''s amount, GST carved out of it (500000 x 900 / 11800 = 38135.6 -> 38136 each)');
select is((select row(c.amount_cents, o.taxable_cents, o.supply_type, o.prices_include_tax)::text
           from p5_checkout_payu c join public.orders o on o.id = c.order_id),
  '(59000,50000,intra_state,f)',
  'a one-time checkout for the plan in effect (a renewal) is allowed and charges the price plus 18 % GST');
select ok((select length(receipt) <= 25 from p5_checkout), 'the receipt fits PayU''s 25-character txnid');

-- Checkout never changes plan, and never opens a second Razorpay subscription.
select is(pg_temp.checkout_outcome('c5000000-0000-4000-8000-00000000000a', 'p5_year', 'payu'), '55000 use_change_plan',
  'an active subscription on another plan: checkout refuses (55000) and says to use change_plan');
select tests.as_user('c5555555-0000-4000-8000-000000000001');
select throws_like($$select public.create_checkout_order('c5000000-0000-4000-8000-00000000000a', 'p5_year', 'razorpay')$$,
  '%use change_plan%', 'the message names change_plan');
select tests.as_postgres();
select is(pg_temp.checkout_outcome('c5000000-0000-4000-8000-00000000000f', 'p5_year', 'razorpay'), '55000 recurring_subscription_exists',
  'while a Razorpay subscription checkout is open, a second one is refused');
select is(pg_temp.checkout_outcome('c5000000-0000-4000-8000-00000000000f', 'p5_month', 'payu'), '55000 recurring_subscription_exists',
  'and so is any other checkout (both could end up charged)');
select is(pg_temp.checkout_outcome('c5000000-0000-4000-8000-00000000000d', 'p5_year', 'razorpay'), '55000 recurring_subscription_exists',
  'a live Razorpay subscription that renews by itself refuses a second one on the same plan');
select is(pg_temp.checkout_outcome('c5000000-0000-4000-8000-00000000000d', 'p5_year', 'payu'), 'ok',
  'a one-time payment for the plan in effect is still allowed (it extends the period)');
update public.subscriptions set cancel_at_period_end = true where provider_subscription_id = 'sub_p5d';
select is(pg_temp.checkout_outcome('c5000000-0000-4000-8000-00000000000d', 'p5_month', 'payu'), '55000 use_change_plan',
  'a Razorpay subscription set to cancel at the period end still refuses a one-time checkout for another plan');
update public.billing_plans set provider_config = '{"razorpay": {"plan_id": "plan_p5_month"}}'
where id = 'c5100000-0000-4000-8000-000000000001';
select is(pg_temp.checkout_outcome('c5000000-0000-4000-8000-00000000000d', 'p5_month', 'razorpay'), 'ok',
  'but after change_plan''s cancel-and-resubscribe (cancel at period end) a new Razorpay subscription may be bought');
update public.billing_plans set provider_config = '{}' where id = 'c5100000-0000-4000-8000-000000000001';

select tests.as_user('c5555555-0000-4000-8000-000000000002');
select throws_ok($$select public.create_checkout_order('c5000000-0000-4000-8000-00000000000a', 'p5_month', 'payu')$$,
  '42501', 'only owners and admins of the organization can buy a plan', 'a plain member cannot check out');
select tests.as_postgres();
select tests.as_user('c5555555-0000-4000-8000-000000000001');
select throws_ok($$select public.create_checkout_order('c5000000-0000-4000-8000-00000000000a', 'p5_retired', 'payu')$$,
  'P0002', 'no active plan "p5_retired"', 'an inactive plan cannot be bought');
select throws_ok($$select public.create_checkout_order('c5000000-0000-4000-8000-00000000000a', 'p5_usd', 'payu')$$,
  '55000', 'payu does not collect USD here (it collects INR): choose another provider or currency', 'PayU refuses a plan in another currency');
select tests.as_postgres();
select is((select count(*)::integer from public.orders where organization_id = 'c5000000-0000-4000-8000-00000000000a'), 3,
  'refused checkouts create no order (A has its two orders and the renewal checkout)');

-- -------------------------------------------------------------------------------------------------
-- Reconciliation candidates
-- -------------------------------------------------------------------------------------------------

update public.orders set created_at = '2026-01-10 11:00+05:30', expires_at = '2026-01-11 11:00+05:30'
where id = 'c5200000-0000-4000-8000-000000000008';
select tests.as_role('service_role');
create temp table p5_due on commit drop as select * from billing.reconcile_due_orders(100);
select tests.as_postgres();
select ok((select bool_or(order_id = 'c5200000-0000-4000-8000-000000000008') from p5_due),
  'a PayU order pending for an hour is due for reconciliation');
set local billing.now = '2026-01-12 12:00+05:30';
select tests.as_role('service_role');
select is((select count(*)::integer from billing.reconcile_due_orders(100) where order_id = 'c5200000-0000-4000-8000-000000000008'), 1,
  'once past expires_at it is expired and still asked about: its payment may have been made before, the webhook lost');
select is((select count(*)::integer from billing.reconcile_due_orders(100) where order_id = 'c5200000-0000-4000-8000-000000000008'), 0,
  'a closed order is asked about at most every six hours');
select tests.as_postgres();
select is((select status from public.orders where id = 'c5200000-0000-4000-8000-000000000008'), 'expired',
  'and it is expired');
set local billing.now = '2026-01-12 18:30+05:30';
select tests.as_role('service_role');
select is((select count(*)::integer from billing.reconcile_due_orders(100) where order_id = 'c5200000-0000-4000-8000-000000000008'), 1,
  'six hours later it is asked about again');
set local billing.now = '2026-01-14 12:00+05:30';
select is((select count(*)::integer from billing.reconcile_due_orders(100) where order_id = 'c5200000-0000-4000-8000-000000000008'), 0,
  'three days after its quote expired it is no longer asked about');
select tests.as_postgres();

-- -------------------------------------------------------------------------------------------------
-- A late provider event never undoes a cancellation made here; payments after the end are recorded
-- -------------------------------------------------------------------------------------------------

set local billing.now = '2026-01-10 12:00+05:30';
select is(pg_temp.apply(pg_temp.sub_ev('evt_g1', 'subscription.charged', 'sub_p5g', 10, 'pay_g1')), 'applied',
  'G: the first charge of sub_p5g activates it');
select tests.as_user('c5555555-0000-4000-8000-000000000001');
select is(public.cancel_subscription('c5000000-0000-4000-8000-000000000010', false) ->> 'result', 'canceled',
  'G''s owner cancels immediately, on our side');
select tests.as_postgres();
select is(pg_temp.apply(pg_temp.sub_ev('evt_g0', 'subscription.activated', 'sub_p5g', 5)), 'applied',
  'a subscription.activated from before the charge arrives late and is acknowledged');
select is((select status from pg_temp.sub_of('c5000000-0000-4000-8000-000000000010')), 'canceled'::subscription_status,
  'the late event does not bring the cancelled subscription back');
select is(public.effective_tier('c5000000-0000-4000-8000-000000000010'), 'free', 'and the organization stays on the free tier');
select is(pg_temp.apply(pg_temp.sub_ev('evt_g_dup', 'subscription.charged', 'sub_p5g', 11, 'pay_g1')), 'duplicate',
  'a second delivery of the first charge under another event id is a duplicate');
select is((select status from pg_temp.sub_of('c5000000-0000-4000-8000-000000000010')), 'canceled'::subscription_status,
  'and does not reactivate it either');

create temp table p5_g_before on commit drop as
  select (select current_period_end from pg_temp.sub_of('c5000000-0000-4000-8000-000000000010')) as period_end,
         (select count(*) from public.subscription_history where organization_id = 'c5000000-0000-4000-8000-000000000010') as history,
         (select count(*) from public.orders where organization_id = 'c5000000-0000-4000-8000-000000000010') as orders;
create temp table p5_g_late on commit drop as
  select billing.apply_payment_event(tests.adapted(pg_temp.sub_ev('evt_g2', 'subscription.charged', 'sub_p5g', 20 * 86400, 'pay_g2'))) as r;
select is((select r ->> 'result' from p5_g_late), 'recorded',
  'a charge made after the subscription ended (20 January) is recorded, not applied');
select ok((select r ->> 'reason' like 'payment for an ended subscription (canceled since %): refund or reactivate' from p5_g_late),
  'the answer says why and what to do');
select is((select row(s.status, s.current_period_end = b.period_end)::text
           from pg_temp.sub_of('c5000000-0000-4000-8000-000000000010') s, p5_g_before b),
  '(canceled,t)', 'the ended subscription is neither extended nor reactivated');
select is((select row((select count(*) from public.subscription_history where organization_id = 'c5000000-0000-4000-8000-000000000010') - b.history,
                      (select count(*) from public.orders where organization_id = 'c5000000-0000-4000-8000-000000000010') - b.orders)::text
           from p5_g_before b),
  '(0,0)', 'no history row claims a renewal and no renewal order is made');
select is((select status from public.payment_events where provider_payment_id = 'pay_g2'), 'captured',
  'the money is recorded as captured, for a refund');
select is((select details ->> 'not_applied' from public.payment_events where provider_payment_id = 'pay_g2'),
  'subscription ended before the payment', 'and its row says it was not applied');
select is((select details ->> 'not_applied' from public.payment_events where provider_payment_id = 'pay_g1'),
  null, 'a charge that was applied carries no such mark');
select ok((select last_error like 'payment for an ended subscription%' from billing.webhook_events where event_id = 'evt_g2'),
  'and the reason is in webhook_events.last_error');

-- -------------------------------------------------------------------------------------------------
-- Periods are counted on the organization's calendar, whatever the connection's TimeZone
-- -------------------------------------------------------------------------------------------------

set local timezone = 'UTC';
set local billing.now = '2026-07-01 00:00+05:30';
select is(pg_temp.apply(pg_temp.ev('payu', 'p5_txn_h1:mih_h1:success', 'payment.success', 'p5_txn_h1', 'mih_h1', 59000)),
  'applied', 'H pays for a month at midnight IST on 1 July, on a connection in UTC');
select is((select current_period_end from pg_temp.sub_of('c5000000-0000-4000-8000-000000000011')),
  '2026-08-01 00:00+05:30'::timestamptz, 'the month ends at midnight IST on 1 August (not 31 July)');
set local timezone = 'Asia/Kolkata';

-- -------------------------------------------------------------------------------------------------
-- The grace period is billing.grace_interval(): 3 days even without a settings row
-- -------------------------------------------------------------------------------------------------

insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider)
values ('c5000000-0000-4000-8000-000000000012', 'c5100000-0000-4000-8000-000000000001', 'past_due',
        '2026-06-01 00:00+05:30', '2026-07-01 00:00+05:30', 'payu');
delete from public.billing_settings;
set local billing.now = '2026-07-03 00:00+05:30';
select is(pg_temp.apply(pg_temp.ev('payu', 'p5_txn_i1:mih_i1:success', 'payment.success', 'p5_txn_i1', 'mih_i1', 59000)),
  'applied', 'I pays its order (quoted before the settings row went) two days after its period ended');
select is((select row(status, current_period_end)::text from pg_temp.sub_of('c5000000-0000-4000-8000-000000000012')),
  row('active'::subscription_status, '2026-08-01 00:00+05:30'::timestamptz)::text,
  'inside the default 3-day grace the month is added to the period end, not to now');

-- Every delivery above was applied in the transaction that recorded it. The deliveries above are
-- the ones created in this test's transaction (created_at is now()): a database with rows in it
-- (the upgrade check of npm test) has others.
select ok((select count(*) > 20 from billing.webhook_events where created_at = now()), 'the deliveries above are recorded');
select is((select count(*)::int from billing.webhook_events where created_at = now() and processed_at is distinct from received_at), 0,
  'every recorded delivery is marked processed, at the time it was received (the same transaction)');

select * from finish();
rollback;
