-- Money safety at the borders (the upgrade 20261201000100_money_safety): a payment buys what was
-- quoted only while the quote holds (stacked superseded upgrade orders, a late and an expired
-- quote, a quote the subscription moved away from, superseded checkouts, the open-order cap),
-- fair reconciliation, INR supplies taxed, full refunds and disputes that change access, and
-- periods that keep their anchor day.
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
select tests.relax_owner_limit();
select plan(53);

-- -------------------------------------------------------------------------------------------------
-- Fixture and helpers
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values
  ('e1111111-0000-4000-8000-000000000001', 'safety-owner@test.local');

insert into public.billing_plans (code, name, tier, interval, price_cents, currency, active) values
  ('ms_basic_m', 'MS Basic (monthly)', 'basic', 'month', 49900, 'INR', true),
  ('ms_pro_m', 'MS Pro (monthly)', 'pro', 'month', 99900, 'INR', true),
  ('ms_pro_y', 'MS Pro (yearly)', 'pro', 'year', 999000, 'INR', true);

/** Organization n (owned by the user above). */
create function pg_temp.org(p_n integer)
returns uuid language sql as $$ select ('e2000000-0000-4000-8000-' || lpad(p_n::text, 12, '0'))::uuid $$;

insert into public.organizations (id, name) select pg_temp.org(n), 'Safety ' || n from generate_series(1, 12) n;
insert into public.organization_members (organization_id, user_id, role)
select pg_temp.org(n), 'e1111111-0000-4000-8000-000000000001', 'owner' from generate_series(1, 12) n;

create function pg_temp.at(p_time text)
returns void language sql as $$ select set_config('billing.now', p_time, true) $$;

create function pg_temp.plan_id(p_code text)
returns uuid language sql as $$ select id from public.billing_plans where code = p_code $$;

create function pg_temp.sub(p_org uuid)
returns public.subscriptions language sql as $$
  select * from public.subscriptions where organization_id = p_org
  order by status in ('pending_payment', 'trialing', 'active', 'past_due') desc, created_at desc limit 1 $$;

/** An active subscription on p_plan for the period given. */
create function pg_temp.subscribe(p_org uuid, p_plan text, p_start text, p_end text)
returns void language sql as $$
  insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider)
  values (p_org, pg_temp.plan_id(p_plan), 'active', p_start::timestamptz, p_end::timestamptz, 'payu') $$;

/** A PayU success for the order with this receipt, as the adapter sends it (the txnid is the payment). */
create function pg_temp.payu_paid(p_receipt text)
returns jsonb language sql as $$
  select billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', p_receipt || ':success', 'event_type', 'payment.success', 'order_ref', p_receipt,
    'provider_payment_id', p_receipt, 'amount_paise', (select amount_cents from public.orders where receipt = p_receipt),
    'currency', 'INR'))) $$;

/** A Razorpay event about payment p_payment (refunds and disputes), with its neutral kind. */
create function pg_temp.rzp(p_event_id text, p_kind text, p_payment text, p_amount bigint, p_extra jsonb default '{}')
returns jsonb language sql as $$
  select billing.apply_payment_event(jsonb_build_object(
    'provider', 'razorpay', 'event_id', p_event_id, 'event_type', 'test.' || p_kind, 'kind', p_kind,
    'provider_payment_id', p_payment, 'amount_paise', p_amount, 'currency', 'INR') || p_extra) $$;

/** Owner's upgrade order of organization p_org to p_plan, made payable through PayU; its receipt. */
create function pg_temp.upgrade_order(p_org uuid, p_plan text)
returns text language plpgsql as $$
declare
  v_change jsonb;
  v_receipt text;
begin
  perform tests.as_user('e1111111-0000-4000-8000-000000000001');
  v_change := public.change_plan(p_org, p_plan);
  select c.receipt into v_receipt from public.prepare_order_checkout(p_org, (v_change ->> 'order_id')::uuid, 'payu') c;
  perform tests.as_postgres();
  return v_receipt;
end;
$$;

/** Owner's checkout of p_plan; its receipt. */
create function pg_temp.checkout(p_org uuid, p_plan text, p_provider text default 'payu')
returns text language plpgsql as $$
declare
  v_receipt text;
begin
  perform tests.as_user('e1111111-0000-4000-8000-000000000001');
  select c.receipt into v_receipt from public.create_checkout_order(p_org, p_plan, p_provider) c;
  perform tests.as_postgres();
  return v_receipt;
end;
$$;

create temp table ms (key text primary key, val text) on commit drop;
grant all on ms to authenticated;

-- -------------------------------------------------------------------------------------------------
-- Stacked superseded upgrade orders: only the open one is applied
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-12-01 00:00+05:30');
select pg_temp.subscribe(pg_temp.org(1), 'ms_basic_m', '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30');
select pg_temp.at('2026-12-01 00:01+05:30');
insert into ms values ('o1_a', pg_temp.upgrade_order(pg_temp.org(1), 'ms_pro_m'));
insert into ms values ('o1_b', pg_temp.upgrade_order(pg_temp.org(1), 'ms_pro_m'));
insert into ms values ('o1_c', pg_temp.upgrade_order(pg_temp.org(1), 'ms_pro_m'));
select pg_temp.at('2026-12-01 00:05+05:30');
select is(
  (select array_agg(pg_temp.payu_paid(val) ->> 'result' order by key) from ms where key like 'o1_%'),
  array['recorded', 'recorded', 'applied'],
  'three superseded upgrade orders paid at once: only the open one is applied, the others are recorded'
);
select is(
  (select array_agg(needs_refund order by occurred_at, created_at) from public.payment_events
   where organization_id = pg_temp.org(1) and status = 'captured'),
  array[true, true, false],
  'the superseded payments are marked needs_refund, the applied one is not'
);
select is(
  (select row(p.code, s.current_period_end)::text from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
   where s.id = (pg_temp.sub(pg_temp.org(1))).id),
  row('ms_pro_m', '2027-01-01 00:05+05:30'::timestamptz)::text,
  'one Pro month, not three'
);
select is((select count(*)::integer from public.invoices where organization_id = pg_temp.org(1)), 1,
  'one invoice: nothing is invoiced for a payment that bought nothing');
select is(
  (select last_error from billing.webhook_events where event_id = (select val from ms where key = 'o1_a') || ':success'),
  format('order %s was canceled before it was paid (superseded by a new plan change)', (select val from ms where key = 'o1_a')),
  'the delivery says why the payment was not applied'
);

-- -------------------------------------------------------------------------------------------------
-- A late, an expired and a stale quote
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-12-01 00:00+05:30');
select pg_temp.subscribe(pg_temp.org(2), 'ms_basic_m', '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30');
insert into ms values ('o2', pg_temp.upgrade_order(pg_temp.org(2), 'ms_pro_m'));
select is(
  (select expires_at from public.orders where receipt = (select val from ms where key = 'o2')),
  '2026-12-01 00:30+05:30'::timestamptz,
  'an upgrade quote holds for billing_settings.upgrade_quote_ttl (30 minutes)'
);
select pg_temp.at('2026-12-01 00:31+05:30');
select is(pg_temp.payu_paid((select val from ms where key = 'o2')) ->> 'result', 'recorded',
  'an upgrade paid after its quote expired is recorded, not applied');
select is(
  (select row(p.code, s.current_period_end)::text from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
   where s.id = (pg_temp.sub(pg_temp.org(2))).id),
  row('ms_basic_m', '2027-01-01 00:00+05:30'::timestamptz)::text,
  'and the subscription is as it was'
);
-- Its refund (provider-sync's of a payment that bought nothing, or the provider's event of it) is
-- recorded: a refund row and no credit note (it was never invoiced), not an error about the
-- documents it has none of.
select is(
  billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', (select val from ms where key = 'o2') || ':refund', 'event_type', 'refund.processed',
    'kind', 'refund_processed', 'provider_payment_id', (select val from ms where key = 'o2'),
    'provider_refund_id', 'payu_rf_o2', 'amount_paise', (select amount_cents from public.orders where receipt = (select val from ms where key = 'o2')),
    'currency', 'INR'))) ->> 'result',
  'applied', 'the refund of the payment recorded for refund is applied');
select is(
  (select array_agg(row(status, amount_cents = (select amount_cents from public.orders where receipt = (select val from ms where key = 'o2')))::text order by status)
   from public.payment_events where provider_payment_id = (select val from ms where key = 'o2')),
  array['(captured,t)', '(refunded,t)'], 'the payment and its refund, in full, are in the ledger');
select is((select count(*)::integer from public.credit_notes where organization_id = pg_temp.org(2)), 0,
  'no credit note: the payment was never invoiced');

-- The quote matched basic until 2027-01-01; the job then marks it past due: paying a month-old
-- order must not give the whole unused credit again.
update public.billing_settings set upgrade_quote_ttl = interval '7 days';
select pg_temp.at('2026-12-31 23:50+05:30');
insert into ms values ('o3', pg_temp.upgrade_order(pg_temp.org(2), 'ms_pro_m'));
select pg_temp.at('2027-01-02 00:00+05:30');
select billing.job_expire();
select is(pg_temp.payu_paid((select val from ms where key = 'o3')) ->> 'result', 'recorded',
  'an upgrade paid after its subscription moved on (past due, the quoted period over) is recorded');
select is(
  (select needs_refund from public.payment_events where provider_payment_id = (select val from ms where key = 'o3')),
  true, 'and marked for refund');
update public.billing_settings set upgrade_quote_ttl = interval '30 minutes';

-- A cancel scheduled at the period end survives a past due: the provider's subscription active
-- again (Razorpay's subscription.active after a dispute moved ours to past_due) is not a resumption.
insert into public.organizations (id, name) values (pg_temp.org(13), 'Safety 13');
insert into public.organization_members (organization_id, user_id, role)
values (pg_temp.org(13), 'e1111111-0000-4000-8000-000000000001', 'owner');
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider,
                                  provider_subscription_id, cancel_at_period_end, canceled_at)
values (pg_temp.org(13), pg_temp.plan_id('ms_basic_m'), 'past_due', '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30',
        'razorpay', 'sub_ms13', true, '2026-12-05 00:00+05:30');
select pg_temp.at('2026-12-20 00:00+05:30');
select ok(billing.sync_provider_status((pg_temp.sub(pg_temp.org(13))).id, 'active', '2026-12-20 00:00+05:30'::timestamptz,
                                       '{"provider": "razorpay", "event_type": "subscription.active", "event_id": "ms13_active"}'),
  'the provider''s active status is applied to the past-due subscription');
select is(
  (select row(status, cancel_at_period_end, canceled_at = '2026-12-05 00:00+05:30'::timestamptz)::text
   from public.subscriptions where organization_id = pg_temp.org(13)),
  '(active,t,t)', 'active again, its cancel at the period end still scheduled: no access past the period it cancelled');
-- Past due again and past the period end it was cancelled at: the provider's active status (a
-- reconcile after the period end, before the jobs ended it) does not make it active again.
update public.subscriptions set status = 'past_due' where organization_id = pg_temp.org(13);
select pg_temp.at('2027-01-01 12:00+05:30');
select ok(billing.sync_provider_status((pg_temp.sub(pg_temp.org(13))).id, 'active', '2027-01-01 12:00+05:30'::timestamptz,
                                       '{"provider": "razorpay", "event_type": "subscription.active", "event_id": "ms13_active_2"}'),
  'the provider''s active status after the cancelled period end is taken');
select is(
  (select row(s.status, (select count(*) from public.subscription_history h where h.subscription_id = s.id
                                                                              and h.action = 'reactivated'))::text
   from public.subscriptions s where s.organization_id = pg_temp.org(13)),
  '(past_due,1)', 'and changes nothing: no reactivation after the period it was cancelled at (the jobs end it there)');

-- A plain checkout holds for 24 hours.
select pg_temp.at('2026-12-01 10:00+05:30');
insert into ms values ('o4', pg_temp.checkout(pg_temp.org(3), 'ms_basic_m'));
select is(
  (select expires_at from public.orders where receipt = (select val from ms where key = 'o4')),
  '2026-12-02 10:00+05:30'::timestamptz,
  'a checkout order holds for billing_settings.checkout_order_ttl (24 hours)'
);
select pg_temp.at('2026-12-02 10:01+05:30');
select is(pg_temp.payu_paid((select val from ms where key = 'o4')) ->> 'result', 'recorded',
  'a checkout paid after its order expired is recorded, not applied');
select is(public.effective_tier(pg_temp.org(3)), 'free', 'and buys nothing');

-- -------------------------------------------------------------------------------------------------
-- A new checkout supersedes the open ones; at most a few open orders
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-12-05 10:00+05:30');
insert into ms values ('o5_a', pg_temp.checkout(pg_temp.org(4), 'ms_basic_m'));
insert into ms values ('o5_b', pg_temp.checkout(pg_temp.org(4), 'ms_basic_m', 'razorpay'));
select is(
  (select array_agg(status::text order by provider) from public.orders where organization_id = pg_temp.org(4)),
  array['canceled', 'created'],
  'a second checkout supersedes the first'
);
select is(pg_temp.payu_paid((select val from ms where key = 'o5_a')) ->> 'result', 'recorded',
  'the superseded checkout, paid anyway, is recorded for refund');

-- An order with a payment in flight is not superseded, and counts toward the cap.
update public.billing_settings set max_open_orders = 1;
select pg_temp.at('2026-12-06 10:00+05:30');
insert into ms values ('o6_a', pg_temp.checkout(pg_temp.org(5), 'ms_basic_m'));
select billing.apply_payment_event(jsonb_build_object(
  'provider', 'payu', 'event_id', (select val from ms where key = 'o6_a') || ':pending', 'event_type', 'payment.pending',
  'kind', 'payment_authorized', 'order_ref', (select val from ms where key = 'o6_a'),
  'provider_payment_id', (select val from ms where key = 'o6_a'), 'amount_paise', 58882, 'currency', 'INR'));
select tests.as_user('e1111111-0000-4000-8000-000000000001');
select throws_ok($$select * from public.create_checkout_order(pg_temp.org(5), 'ms_basic_m', 'payu')$$,
  '55000', 'too many open orders: the organization would have 2, and billing_settings.max_open_orders allows 1; pay or let one expire first',
  'past billing_settings.max_open_orders a checkout is refused, naming the limit');
select tests.as_postgres();
select is((select count(*)::integer from public.orders where organization_id = pg_temp.org(5)), 1,
  'and no order is created');
update public.billing_settings set max_open_orders = 3;

-- -------------------------------------------------------------------------------------------------
-- Reconciliation takes due orders fairly across organizations
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-12-07 10:00+05:30');
-- Seven old open orders of organization 6 (an operator's, so none supersedes another), then one of 7.
insert into public.orders (organization_id, plan_id, provider, receipt, amount_cents, status, created_at)
select pg_temp.org(6), pg_temp.plan_id('ms_basic_m'), 'payu', 'ms_fair_6_' || n, 49900, 'pending',
       '2026-12-07 09:00+05:30'::timestamptz + n * interval '1 second'
from generate_series(1, 7) n;
insert into public.orders (organization_id, plan_id, provider, receipt, amount_cents, status, created_at)
values (pg_temp.org(7), pg_temp.plan_id('ms_basic_m'), 'payu', 'ms_fair_7', 49900, 'pending', '2026-12-07 09:30+05:30');
select is(
  (select array_agg(d.receipt order by d.n) from billing.reconcile_due_orders(1000)
     with ordinality as d(order_id, provider, receipt, provider_order_id, amount_cents, currency, created_at, n)
   where d.receipt like 'ms_fair_%'),
  array['ms_fair_6_1', 'ms_fair_7', 'ms_fair_6_2', 'ms_fair_6_3', 'ms_fair_6_4', 'ms_fair_6_5', 'ms_fair_6_6', 'ms_fair_6_7'],
  'reconciliation takes each organization''s oldest due order first, so one organization cannot crowd out another'
);

-- -------------------------------------------------------------------------------------------------
-- INR supplies are taxed
-- -------------------------------------------------------------------------------------------------

-- The seller's LUT for 2026-27 and a USD rate: the exports here are zero-rated under it, and an
-- order in USD records its rate (without one it is refused: 14-exports).
delete from billing.lut_registrations;
delete from billing.exchange_rates;
select billing.operator_record_lut('2026-27', 'AA2903260012345', '2026-03-20', 'LUT for the money-safety tests');
select billing.operator_set_exchange_rate('USD', 84, '2026-12-01 00:00+05:30', 'rate for the money-safety tests');
update public.organizations set billing_country = 'US' where id in (pg_temp.org(8), pg_temp.org(9));
update public.organizations set exports_verified = true where id = pg_temp.org(9);
select pg_temp.at('2026-12-08 10:00+05:30');
select pg_temp.checkout(pg_temp.org(8), 'ms_basic_m');
select is(
  (select row(supply_type, taxable_cents, amount_cents, currency)::text from public.orders where organization_id = pg_temp.org(8)),
  '(intra_state,49900,58882,INR)',
  'a buyer who typed a foreign country but pays INR is taxed at the seller''s location'
);
select pg_temp.checkout(pg_temp.org(9), 'ms_basic_m');
select is(
  (select row(supply_type, taxable_cents, amount_cents)::text from public.orders where organization_id = pg_temp.org(9)),
  '(export,49900,49900)',
  'with exports verified by an operator, the INR order is a zero-rated export'
);
insert into public.orders (organization_id, plan_id, provider, amount_cents, currency, status)
values (pg_temp.org(8), pg_temp.plan_id('ms_basic_m'), 'manual', 60000, 'USD', 'pending');
select is(
  (select row(supply_type, amount_cents)::text from public.orders where organization_id = pg_temp.org(8) and currency = 'USD'),
  '(export,60000)',
  'an order paid in foreign currency by a buyer abroad is an export'
);
select ok(
  not exists (select 1 from pg_catalog.pg_attribute a
              where a.attrelid = 'public.organizations'::regclass and a.attname = 'exports_verified'
                and has_column_privilege('authenticated', a.attrelid, a.attname, 'update')),
  'a signed-in user cannot set exports_verified'
);

-- -------------------------------------------------------------------------------------------------
-- Refunds and disputes change access
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-12-10 10:00+05:30');
insert into public.orders (id, organization_id, plan_id, provider, receipt, provider_order_id, amount_cents, status)
values ('e3000000-0000-4000-8000-000000000010', pg_temp.org(10), pg_temp.plan_id('ms_pro_m'), 'razorpay', 'ms_rf_10',
        'order_ms10', 99900, 'pending'),
       ('e3000000-0000-4000-8000-000000000011', pg_temp.org(11), pg_temp.plan_id('ms_pro_m'), 'razorpay', 'ms_rf_11',
        'order_ms11', 99900, 'pending'),
       ('e3000000-0000-4000-8000-000000000012', pg_temp.org(12), pg_temp.plan_id('ms_pro_m'), 'razorpay', 'ms_rf_12',
        'order_ms12', 99900, 'pending');
select billing.apply_payment_event(tests.adapted(jsonb_build_object(
  'provider', 'razorpay', 'event_id', 'ms_paid_' || n, 'event_type', 'order.paid', 'order_ref', 'ms_rf_' || n,
  'provider_order_id', 'order_ms' || n, 'provider_payment_id', 'pay_ms' || n,
  'amount_paise', (select amount_cents from public.orders where receipt = 'ms_rf_' || n), 'currency', 'INR')))
from generate_series(10, 12) n;
select is(
  (select array_agg(public.effective_tier(pg_temp.org(n)) order by n) from generate_series(10, 12) n),
  array['pro', 'pro', 'pro'], 'three organizations paid for Pro');

select pg_temp.at('2026-12-11 10:00+05:30');
select is(pg_temp.rzp('ms_rf_part', 'refund_processed', 'pay_ms10', 10000, '{"provider_refund_id": "rfnd_ms_a"}') ->> 'result',
  'applied', 'a partial refund is applied');
select is(public.effective_tier(pg_temp.org(10)), 'pro', 'a partial refund keeps the paid period');
select is(pg_temp.rzp('ms_rf_rest', 'refund_processed', 'pay_ms10',
                      (select amount_cents - 10000 from public.orders where receipt = 'ms_rf_10'),
                      '{"provider_refund_id": "rfnd_ms_b"}') ->> 'result',
  'applied', 'the rest of the payment is refunded');
select is(public.effective_tier(pg_temp.org(10)), 'free', 'a full refund of the payment that paid the period ends it');
select is(
  (select row(action, old_status, new_status, actor_kind)::text from public.subscription_history
   where organization_id = pg_temp.org(10) and action = 'refunded'),
  '(refunded,active,canceled,provider)',
  'the end is in the history, by the provider'
);
select is(
  (select count(*)::integer from public.notifications where organization_id = pg_temp.org(10) and kind = 'subscription_refunded'),
  1, 'and the owners are told');
select is((select count(*)::integer from public.credit_notes where organization_id = pg_temp.org(10)), 2,
  'each refund still has its credit note');

select is(pg_temp.rzp('ms_dp_open', 'dispute_opened', 'pay_ms11', 118, '{"provider_dispute_id": "disp_ms11"}') ->> 'result',
  'applied', 'a dispute is recorded');
select is(((pg_temp.sub(pg_temp.org(11))).status)::text, 'past_due', 'an open dispute puts the subscription past due');
select is(pg_temp.rzp('ms_dp_open_again', 'dispute_opened', 'pay_ms11', 118, '{"provider_dispute_id": "disp_ms11"}') ->> 'result',
  'duplicate', 'the same dispute step again is a duplicate');
select is(pg_temp.rzp('ms_dp_won', 'dispute_won', 'pay_ms11', 118, '{"provider_dispute_id": "disp_ms11"}') ->> 'result',
  'applied', 'a won dispute is recorded');
select is(((pg_temp.sub(pg_temp.org(11))).status)::text, 'active', 'and the subscription is active again');
select is(
  (select string_agg(action || '/' || actor_kind, ',' order by id_order) from (
     select action, actor_kind, row_number() over (order by effective_at, action = 'dispute_won', action <> 'activated') as id_order
     from public.subscription_history where organization_id = pg_temp.org(11)) h),
  'activated/provider,dispute_opened/provider,dispute_won/provider',
  'each dispute step is in the history, by the provider'
);
select is(pg_temp.rzp('ms_dp_open12', 'dispute_opened', 'pay_ms12', 99900, '{"provider_dispute_id": "disp_ms12"}') ->> 'result',
  'applied', 'another dispute opens');
select is(pg_temp.rzp('ms_dp_lost12', 'dispute_lost', 'pay_ms12', 99900, '{"provider_dispute_id": "disp_ms12"}') ->> 'result',
  'applied', 'and is lost');
select is(
  (select row(s.status, public.effective_tier(pg_temp.org(12)))::text from public.subscriptions s
   where s.id = (pg_temp.sub(pg_temp.org(12))).id),
  '(canceled,free)',
  'a lost dispute ends the paid period'
);
select is(
  (select array_agg(status::text order by created_at) from public.payment_events where organization_id = pg_temp.org(12)),
  array['captured', 'dispute_opened', 'dispute_lost'],
  'the payment''s dispute steps are in payment_events'
);
select is(pg_temp.rzp('ms_dp_unknown', 'dispute_opened', 'pay_nobody', 100) ->> 'result', 'unmatched',
  'a dispute of an unknown payment is recorded as unmatched');

-- -------------------------------------------------------------------------------------------------
-- Periods keep their anchor day
-- -------------------------------------------------------------------------------------------------

select is(
  (with recursive p(n, start_at, end_at) as (
     select 1, '2027-01-31 10:00+05:30'::timestamptz,
            billing.period_end_after('2027-01-31 10:00+05:30', 'month', 'Asia/Kolkata', '2027-01-31 10:00+05:30')
     union all
     select n + 1, end_at, billing.period_end_after(end_at, 'month', 'Asia/Kolkata', '2027-01-31 10:00+05:30')
     from p where n < 14)
   select array_agg(to_char(end_at at time zone 'Asia/Kolkata', 'MM-DD') order by n) from p),
  array['02-28', '03-31', '04-30', '05-31', '06-30', '07-31', '08-31', '09-30', '10-31', '11-30', '12-31', '01-31',
        '02-29', '03-31'],
  'a run of monthly periods anchored on the 31st ends on each month''s last day and on the 31st again, for 14 months'
);
select is(
  (with recursive p(n, end_at) as (
     select 1, billing.period_end_after('2028-02-29 10:00+05:30', 'year', 'Asia/Kolkata', '2028-02-29 10:00+05:30')
     union all
     select n + 1, billing.period_end_after(end_at, 'year', 'Asia/Kolkata', '2028-02-29 10:00+05:30') from p where n < 4)
   select array_agg(to_char(end_at at time zone 'Asia/Kolkata', 'YYYY-MM-DD') order by n) from p),
  array['2029-02-28', '2030-02-28', '2031-02-28', '2032-02-29'],
  'a yearly run anchored on 29 February renews on 28 February, and on 29 February in leap years'
);

-- Through the payment path: a subscription started on 31 January and renewed by three payments.
select pg_temp.at('2027-01-31 10:00+05:30');
insert into public.orders (organization_id, plan_id, provider, receipt, provider_order_id, amount_cents, status)
select pg_temp.org(3), pg_temp.plan_id('ms_basic_m'), 'razorpay', 'ms_anchor_' || n, 'order_anchor_' || n, 49900, 'pending'
from generate_series(1, 4) n;
select billing.apply_payment_event(tests.adapted(jsonb_build_object(
  'provider', 'razorpay', 'event_id', 'ms_anchor_paid_' || n, 'event_type', 'order.paid', 'order_ref', 'ms_anchor_' || n,
  'provider_order_id', 'order_anchor_' || n, 'provider_payment_id', 'pay_anchor_' || n,
  'amount_paise', (select amount_cents from public.orders where receipt = 'ms_anchor_' || n), 'currency', 'INR')))
from generate_series(1, 4) n;
select is(
  (select array_agg(to_char((h.metadata ->> 'period_end')::timestamptz at time zone 'Asia/Kolkata', 'MM-DD') order by h.created_at)
   from public.subscription_history h where h.organization_id = pg_temp.org(3) and h.actor_kind = 'provider'),
  array['02-28', '03-31', '04-30', '05-31'],
  'payments extend a subscription started on 31 January to 28 February, 31 March, 30 April and 31 May'
);
select is(((pg_temp.sub(pg_temp.org(3))).period_anchor), '2027-01-31 10:00+05:30'::timestamptz,
  'the anchor is stored on the subscription');

-- needs_refund is visible to the organization's members.
select tests.as_user('e1111111-0000-4000-8000-000000000001');
select is(
  (select count(*)::integer from public.payment_events where organization_id = pg_temp.org(1) and needs_refund),
  2, 'owners read which of their payments are to be refunded');
select tests.as_postgres();

select * from finish();
rollback;
