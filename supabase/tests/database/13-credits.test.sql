-- Credits (supabase/schemas/13_credits.sql), under the pinned test clock: a plan's credits granted
-- once per paid period and lapsing exactly at its end; precedence across purchase, subscription,
-- promotion and operator grants; all or nothing; a request id charged once; release after the
-- grant lapsed; revoke after a partial spend; settle up and down; the low-balance warning once per
-- crossing; a plan change mid-period; the operator grant; who may read and who may write; bad
-- input refused with nothing written. After each part, billing.credit_ledger_problems() is empty:
-- every grant's ledger rows sum to its remaining and every organization's last balance_after is
-- the sum of its grants. (32 parallel connections: tests/credits.test.ts.)
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select plan(96);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into auth.users (id, email) values
  ('a2400000-0000-4000-8000-000000000001', 'credits-owner@test.local'),
  ('a2400000-0000-4000-8000-000000000002', 'credits-stranger@test.local');

insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('b2400000-0000-4000-8000-000000000001', 'cr_basic', 'CR Basic', 'basic', 'month', 49900,
   '{"credits_per_period": 100, "credits_low_threshold": 50}'),
  ('b2400000-0000-4000-8000-000000000002', 'cr_pro', 'CR Pro', 'pro', 'month', 99900,
   '{"credits_per_period": 300, "credits_low_threshold": 50}');

insert into public.organizations (id, name, timezone) values
  ('c2400000-0000-4000-8000-0000000000a1', 'CR main', 'Asia/Kolkata'),
  ('c2400000-0000-4000-8000-0000000000a2', 'CR other', 'Asia/Kolkata');
insert into public.organization_members (organization_id, user_id, role) values
  ('c2400000-0000-4000-8000-0000000000a1', 'a2400000-0000-4000-8000-000000000001', 'owner'),
  ('c2400000-0000-4000-8000-0000000000a2', 'a2400000-0000-4000-8000-000000000002', 'owner');

create function pg_temp.ok_ledger() returns text language sql as $$
  select coalesce(string_agg(problem, '; '), '') from billing.credit_ledger_problems()
  where organization_id in ('c2400000-0000-4000-8000-0000000000a1', 'c2400000-0000-4000-8000-0000000000a2',
                            'c2400000-0000-4000-8000-0000000000a3') $$;
create function pg_temp.balance() returns bigint language sql as $$
  select billing.available_credits('c2400000-0000-4000-8000-0000000000a1') $$;
create function pg_temp.grants_of(p_source text) returns text language sql as $$
  select coalesce(string_agg(g.amount || '/' || g.remaining, ' ' order by g.effective_from, g.expires_at nulls last, g.amount), '')
  from public.credit_grants g
  where g.organization_id = 'c2400000-0000-4000-8000-0000000000a1' and g.source::text = p_source $$;
create function pg_temp.ledger_rows() returns bigint language sql as $$
  select count(*) from public.credit_ledger where organization_id = 'c2400000-0000-4000-8000-0000000000a1' $$;

-- A plan's credits, once per paid period ---------------------------------------------------------

insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end) values
  ('d2400000-0000-4000-8000-000000000001', 'c2400000-0000-4000-8000-0000000000a1', 'b2400000-0000-4000-8000-000000000001',
   'pending_payment', null, null);
select is(pg_temp.grants_of('subscription'), '', 'a subscription waiting for its payment has no credits');

update public.subscriptions set status = 'active', current_period_start = '2026-12-01 00:00+05:30',
       current_period_end = '2027-01-01 00:00+05:30'
where id = 'd2400000-0000-4000-8000-000000000001';
select is(pg_temp.grants_of('subscription'), '100/100', 'activation grants the plan''s credits_per_period');
select is((select expires_at from public.credit_grants where source = 'subscription'
           and organization_id = 'c2400000-0000-4000-8000-0000000000a1'),
          '2027-01-01 00:00+05:30'::timestamptz, 'they lapse at the period''s end');
select is((select kind::text || ' ' || amount || ' ' || balance_after from public.credit_ledger
           where organization_id = 'c2400000-0000-4000-8000-0000000000a1'), 'granted 100 100',
          'the ledger has the grant and the balance after it');

-- The renewal delivered three times: the same period, so one grant.
set local billing.now = '2027-01-01 00:00:05+05:30';
update public.subscriptions set current_period_start = '2027-01-01 00:00+05:30', current_period_end = '2027-02-01 00:00+05:30'
where id = 'd2400000-0000-4000-8000-000000000001';
update public.subscriptions set current_period_start = '2027-01-01 00:00+05:30', current_period_end = '2027-02-01 00:00+05:30'
where id = 'd2400000-0000-4000-8000-000000000001';
update public.subscriptions set status = 'active', updated_at = now()
where id = 'd2400000-0000-4000-8000-000000000001';
select is(pg_temp.grants_of('subscription'), '100/100 100/100', 'a renewal delivered three times grants the new period once');
select is(pg_temp.balance(), 100::bigint, 'the old period''s credits lapsed at its end: only the new period''s count');
select is(pg_temp.ok_ledger(), '', 'ledger = grants (the lapsed grant is not expired into the ledger yet)');
select is(billing.expire_credits_batch(100), 1, 'the expiry job expires the lapsed grant''s organization');
select is((select amount from public.credit_ledger where organization_id = 'c2400000-0000-4000-8000-0000000000a1'
           and kind = 'expired'), -100::bigint, 'what was left of it is expired in the ledger');
select is(billing.expire_credits_batch(100), 0, 'run again, it expires nothing more');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the expiry');

-- A plan change mid-period: an upgrade tops up to the new plan's credits, a downgrade takes nothing.
update public.subscriptions set plan_id = 'b2400000-0000-4000-8000-000000000002'
where id = 'd2400000-0000-4000-8000-000000000001';
select is(pg_temp.grants_of('subscription'), '100/0 100/100 200/200', 'an upgrade mid-period grants the difference (300 - 100)');
update public.subscriptions set plan_id = 'b2400000-0000-4000-8000-000000000001'
where id = 'd2400000-0000-4000-8000-000000000001';
select is(pg_temp.grants_of('subscription'), '100/0 100/100 200/200', 'a downgrade mid-period takes nothing back');
update public.subscriptions set plan_id = 'b2400000-0000-4000-8000-000000000002'
where id = 'd2400000-0000-4000-8000-000000000001';
select is(pg_temp.grants_of('subscription'), '100/0 100/100 200/200', 'and upgrading again grants nothing more: 300 this period already');

-- The same through the payment path: a Razorpay subscription's first charge activates it, and its
-- second month's debit arrives three times (the webhook twice, then reconciliation's find under
-- another event id): one renewal, one grant for the new period.
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features, provider_config) values
  ('b2400000-0000-4000-8000-000000000003', 'cr_rzp_m', 'CR Razorpay', 'basic', 'month', 49900,
   '{"credits_per_period": 100}', '{"razorpay": {"plan_id": "plan_cr_m"}}');
insert into public.organizations (id, name, timezone) values ('c2400000-0000-4000-8000-0000000000a3', 'CR razorpay', 'Asia/Kolkata');
insert into public.organization_members (organization_id, user_id, role) values
  ('c2400000-0000-4000-8000-0000000000a3', 'a2400000-0000-4000-8000-000000000001', 'owner');
create temp table cr (key text primary key, val text) on commit drop;
grant all on cr to authenticated;
set local billing.now = '2027-01-05 10:00:00+05:30';
select tests.as_user('a2400000-0000-4000-8000-000000000001');
insert into cr select 'order', order_id::text from public.create_checkout_order('c2400000-0000-4000-8000-0000000000a3', 'cr_rzp_m', 'razorpay');
select tests.as_postgres();
select billing.attach_provider_checkout((select val::uuid from cr where key = 'order'), null, 'sub_cr_1');
insert into cr select 'amount', amount_cents::text from public.orders where id = (select val::uuid from cr where key = 'order');
insert into cr select 'receipt', receipt from public.orders where id = (select val::uuid from cr where key = 'order');
create function pg_temp.charged(p_payment text) returns jsonb language sql as $$
  select billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'subscription.charged:' || p_payment, 'event_type', 'subscription.charged',
    'provider_subscription_id', 'sub_cr_1', 'provider_payment_id', p_payment,
    'amount_paise', (select val::bigint from cr where key = 'amount'), 'currency', 'INR',
    'status', 'active', 'method', 'upi', 'occurred_at', billing.now()::text))) $$;
create function pg_temp.period_grants() returns text language sql as $$
  select coalesce(string_agg(to_char(g.period_start at time zone 'Asia/Kolkata', 'MM-DD') || ':' || g.amount, ' '
                             order by g.period_start), '')
  from public.credit_grants g where g.organization_id = 'c2400000-0000-4000-8000-0000000000a3' and g.source = 'subscription' $$;
select pg_temp.charged('pay_cr_1');
select is(pg_temp.period_grants(), '01-05:100', 'the first charge activates the subscription and grants its period''s credits');
set local billing.now = '2027-02-05 10:05:00+05:30';
select pg_temp.charged('pay_cr_2');
select pg_temp.charged('pay_cr_2');
select billing.apply_payment_event(jsonb_build_object(
  'provider', 'razorpay', 'event_id', 'payment:pay_cr_2:captured', 'event_type', 'payment.captured',
  'kind', 'payment_captured', 'subscription_status', null, 'error_reason', null,
  'order_ref', (select val from cr where key = 'receipt'), 'provider_order_id', null, 'provider_subscription_id', 'sub_cr_1',
  'provider_payment_id', 'pay_cr_2', 'provider_refund_id', null, 'amount_paise', (select val::bigint from cr where key = 'amount'),
  'currency', 'INR', 'status', 'captured', 'method', 'upi', 'occurred_at', billing.now()::text,
  'payload', jsonb_build_object('source', 'reconcile')));
select is(pg_temp.period_grants(), '01-05:100 02-05:100', 'the renewal delivered three times grants its period once');
select is((select count(*) from public.credit_ledger l join public.credit_grants g on g.id = l.grant_id
           where g.organization_id = 'c2400000-0000-4000-8000-0000000000a3' and l.kind = 'granted'), 2::bigint,
          'two granted rows in the ledger, no more');
select is((select count(*) from public.invoices where organization_id = 'c2400000-0000-4000-8000-0000000000a3'), 2::bigint,
          'fixture: two invoices, one per payment (the renewal was applied once)');
set local billing.now = '2027-01-01 00:00:05+05:30';

-- Precedence --------------------------------------------------------------------------------------

select billing.add_credit_grant('c2400000-0000-4000-8000-0000000000a1', 'purchase', 40, null, 'pack', 'test:purchase:1');
select billing.add_credit_grant('c2400000-0000-4000-8000-0000000000a2', 'operator', 5, null, 'the other organization''s', 'test:other:1');
select billing.operator_grant_credits('c2400000-0000-4000-8000-0000000000a1', 30, null, 'goodwill after an outage');
select billing.operator_grant_credits('c2400000-0000-4000-8000-0000000000a1', 20, '2027-01-20 00:00+05:30', 'launch promotion', 'promotion');
select billing.operator_grant_credits('c2400000-0000-4000-8000-0000000000a1', 25, '2027-01-10 00:00+05:30', 'early promotion', 'promotion');
select is(pg_temp.balance(), 415::bigint, 'balance: 300 subscription + 40 purchase + 30 operator + 45 promotion');
select is((billing.add_credit_grant('c2400000-0000-4000-8000-0000000000a1', 'purchase', 40, null, 'pack', 'test:purchase:1')).id,
          (select id from public.credit_grants where dedupe_key = 'test:purchase:1'), 'a grant with a dedupe key already used returns the first grant');
select is(pg_temp.balance(), 415::bigint, '... and grants nothing more');

select is((select array[credits, balance]::bigint[] from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 50, 'p-1')),
          array[50, 365]::bigint[], 'a charge of 50: charged, balance after');
select is((select string_agg(x ->> 'source' || ':' || (x ->> 'credits'), ' ')
           from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 50, 'p-1') c,
                jsonb_array_elements(c.grants) x),
          'purchase:40 subscription:10', 'purchased credits first, then the subscription''s (the retry answers the same)');
select is(pg_temp.balance(), 365::bigint, 'the retry charged nothing');
select is((select array[credits, balance]::bigint[] from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 300, 'p-2')),
          array[300, 65]::bigint[], 'the rest of the subscription credits and into the promotions');
select is(pg_temp.grants_of('promotion'), '25/15 20/20', 'among promotions, the earliest expiry first (10 of the one lapsing on 10 January)');
select is(pg_temp.grants_of('operator'), '30/30', 'operator grants come last');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the charges');

-- The setting changes the order.
update public.billing_settings set credit_source_order = '{operator,promotion,subscription,purchase}';
select is((select grants -> 0 ->> 'source' from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 5, 'p-3')),
          'operator', 'billing_settings.credit_source_order puts operator grants first');
update public.billing_settings set credit_source_order = default;
select throws_ok($$update public.billing_settings set credit_source_order = '{purchase,subscription}'$$, '23514', null,
                 'the order must name every source once');

-- All or nothing, idempotency, bad input ----------------------------------------------------------

select is((select array[charged::int, credits, balance] from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 61, 'too-much')),
          array[0, 61, 60]::bigint[], 'a charge over the balance: not charged, the credits it needed and the balance');
select is((select count(*) from public.credit_charges where request_id = 'too-much'), 0::bigint, 'a refused charge writes nothing');
select throws_ok($$select * from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 2, 'p-1')$$,
                 '22023', 'consume_credits: request id p-1 was charged for 50 x api_call_basic already',
                 'a request id reused for another charge is refused');
create temporary table rows_before as select pg_temp.ledger_rows() as n;
select throws_ok($$select * from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'no_such_event', 1, null)$$,
                 '22023', 'consume_credits: unknown or inactive credit event "no_such_event"', 'an unknown event is refused');
update public.credit_events set active = false where code = 'ai_inference';
select throws_ok($$select * from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'ai_inference', 1, null)$$,
                 '22023', 'consume_credits: unknown or inactive credit event "ai_inference"', 'an inactive event is refused');
update public.credit_events set active = true where code = 'ai_inference';
select throws_ok($$select * from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 0, null)$$,
                 '22023', 'consume_credits: quantity must be a positive integer, got 0', 'a quantity of 0 is refused');
select throws_ok($$select * from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', -3, null)$$,
                 '22023', 'consume_credits: quantity must be a positive integer, got -3', 'a negative quantity is refused');
select throws_ok($$select * from public.consume_credits('c2400000-0000-4000-8000-0000000000ff', 'api_call_basic', 1, null)$$,
                 'P0002', 'consume_credits: unknown organization c2400000-0000-4000-8000-0000000000ff', 'an unknown organization is refused');
select throws_ok($$select * from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 1, '')$$,
                 '22023', 'consume_credits: request id must be 1 to 200 characters', 'an empty request id is refused');
select is(pg_temp.ledger_rows(), (select n from rows_before), 'nothing was written by the refused calls');
select throws_ok($$insert into public.credit_events (code, name, credits_per_unit) values ('free_lunch', 'Free', 0)$$,
                 '23514', null, 'a credit event must cost more than 0');
select throws_ok($$insert into public.credit_events (code, name, credits_per_unit) values ('Bad Code', 'Bad', 1)$$,
                 '23514', null, 'a credit event code is snake_case');

-- Settle and release ------------------------------------------------------------------------------

select is((select array[credits, balance] from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 20, 'ai-1')),
          array[20, 40]::bigint[], 'a reservation of 20');
select is((select array[credits, balance] from billing.settle_credits('c2400000-0000-4000-8000-0000000000a1', 'ai-1', 12)),
          array[12, 48]::bigint[], 'settled at 12: 8 come back');
select is((select array[charged::int, credits, balance] from billing.settle_credits('c2400000-0000-4000-8000-0000000000a1', 'ai-1', 70)),
          array[0, 12, 48]::bigint[], 'settling above what the balance covers changes nothing and says so');
select is((select array[credits, balance] from billing.settle_credits('c2400000-0000-4000-8000-0000000000a1', 'ai-1', 15)),
          array[15, 45]::bigint[], 'settling up draws the difference');
select is((select array[credits, balance] from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'ai-1')),
          array[0, 60]::bigint[], 'release gives all of it back');
select is((select array[credits, balance] from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'ai-1')),
          array[0, 60]::bigint[], 'a second release gives nothing more');
select throws_ok($$select * from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'never-charged')$$,
                 'P0002', null, 'releasing a request id that was never charged is an error');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after settle and release');

-- Release after the grant lapsed: what comes back lapses too.
select is((select grants -> 0 ->> 'source' from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 10, 'late-1')),
          'promotion', 'fixture: 10 drawn from the promotion lapsing on 10 January');
set local billing.now = '2027-01-10 00:00:00+05:30';
select is((select array[credits, balance] from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'late-1')),
          array[0, 45]::bigint[], 'released after its grant lapsed: the balance does not grow (25 operator, 20 promotion credits)');
select is((select string_agg(kind::text || ' ' || amount, ', ' order by id) from public.credit_ledger
           where request_id = 'late-1'), 'consumed -10, released 10, expired -10',
          'the ledger shows the credits coming back and lapsing again');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after a release into a lapsed grant');

-- Expiry exactly at the period end.
set local billing.now = '2027-01-31 23:59:59+05:30';
select is((select sum(remaining) from public.credit_grants where source = 'subscription'
           and organization_id = 'c2400000-0000-4000-8000-0000000000a1' and expires_at > billing.now()),
          0::numeric, 'fixture: the period''s subscription credits were spent');
select billing.add_credit_grant('c2400000-0000-4000-8000-0000000000a1', 'promotion', 7, '2027-02-01 00:00+05:30', 'lapses with the period', 'test:edge');
select is(pg_temp.balance(), 32::bigint, 'a second before the end, credits lapsing at the end can be spent');
set local billing.now = '2027-02-01 00:00:00+05:30';
select is(pg_temp.balance(), 25::bigint, 'at the end, they cannot');
select is((select charged from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 26, null)), false,
          'and a charge cannot draw them');
set local billing.now = '2027-02-01 00:00:01+05:30';
select is(pg_temp.balance(), 25::bigint, 'a second after, neither');

-- Revoke after a partial spend.
select billing.add_credit_grant('c2400000-0000-4000-8000-0000000000a1', 'purchase', 40, null, 'pack 2', 'test:purchase:2');
select is((select charged from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 25, 'rv-1')), true,
          'fixture: 25 spent of a 40-credit pack');
select is(billing.revoke_credits((select id from public.credit_grants where dedupe_key = 'test:purchase:2'), 40, 'refunded'),
          15::bigint, 'a revoke takes the unspent 15 only');
select is(pg_temp.balance(), 25::bigint, 'the balance loses the 15');
select is((select array[credits, balance] from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'rv-1')),
          array[0, 25]::bigint[], 'credits released into a revoked grant are revoked again');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after revoke');

-- A revoke while the grant's credits are out in a charge not settled yet: a full revoke takes them
-- as they come back, a partial one its share of them, so a release never refills a refunded grant.
select billing.add_credit_grant('c2400000-0000-4000-8000-0000000000a1', 'purchase', 100, null, 'pack 3', 'test:purchase:3');
select is((select charged from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 100, 'out-1')), true,
          'fixture: all 100 of a pack out in a reservation');
select is(billing.revoke_credits((select id from public.credit_grants where dedupe_key = 'test:purchase:3'), 100, 'refunded in full'),
          0::bigint, 'a full revoke takes nothing now: the grant holds nothing');
select is((select array[credits, balance] from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'out-1')),
          array[0, 25]::bigint[], 'the release gives the balance nothing: the 100 coming back are revoked');
select is((select remaining from public.credit_grants where dedupe_key = 'test:purchase:3'), 0::bigint, 'the refunded pack stays empty');
select billing.add_credit_grant('c2400000-0000-4000-8000-0000000000a1', 'purchase', 1000, null, 'pack 4', 'test:purchase:4');
select is((select charged from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 900, 'out-2')), true,
          'fixture: 900 of a 1,000-credit pack out in a reservation');
select is(billing.revoke_credits((select id from public.credit_grants where dedupe_key = 'test:purchase:4'), 500, 'refunded in half'),
          100::bigint, 'a revoke of half takes the 100 it holds now');
select is((select array[credits, balance] from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'out-2')),
          array[0, 525]::bigint[], 'the release gives back 500: the other 400 of the half are revoked as they come');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after revokes owed');

-- Low balance: once per crossing ------------------------------------------------------------------

select is((select count(*) from public.notifications where kind = 'credits_low'
           and organization_id = 'c2400000-0000-4000-8000-0000000000a1'), 3::bigint,
          'charges crossed under 50 three times (ai-1: 60 -> 40; rv-1: 65 -> 40; out-1: 125 -> 25); a settle from 48 to 45 and lapses are no crossing');
select is((select count(*) from public.notifications where kind = 'credits_low'
           and organization_id = 'c2400000-0000-4000-8000-0000000000a1'
           and (payload ->> 'balance')::bigint < 50), 3::bigint, 'each names the balance under the threshold');
select public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 1, null);
select is((select count(*) from public.notifications where kind = 'credits_low'
           and organization_id = 'c2400000-0000-4000-8000-0000000000a1'), 3::bigint, 'a charge above it queues nothing');

-- Operator grants ---------------------------------------------------------------------------------

select throws_ok($$select billing.operator_grant_credits('c2400000-0000-4000-8000-0000000000a1', 10, null, '')$$,
                 '22023', 'an operator action needs a reason of 3 to 500 characters', 'an operator grant needs a reason');
select throws_ok($$select billing.operator_grant_credits('c2400000-0000-4000-8000-0000000000a1', 10, '2027-01-01', 'late')$$,
                 '22023', null, 'an expiry in the past is refused');
select throws_ok($$select billing.operator_grant_credits('c2400000-0000-4000-8000-0000000000a1', 0, null, 'zero')$$,
                 '22023', null, 'zero credits are refused');
select throws_ok($$select billing.operator_grant_credits('c2400000-0000-4000-8000-0000000000a1', 10, null, 'purchase?', 'purchase')$$,
                 '22023', 'an operator grants operator or promotion credits, not purchase', 'an operator cannot fake a purchase');
select is((select actor_kind::text || ' ' || reason from public.credit_ledger where organization_id = 'c2400000-0000-4000-8000-0000000000a1'
           and kind = 'granted' and reason = 'goodwill after an outage'), 'operator goodwill after an outage',
          'the ledger names the operator and the reason');

-- Who reads, who writes ---------------------------------------------------------------------------

select tests.as_user('a2400000-0000-4000-8000-000000000001');
select is((select (public.get_credit_balance('c2400000-0000-4000-8000-0000000000a1') ->> 'balance')::bigint), 524::bigint,
          'a member reads the balance');
select is((select array[(b -> 'by_source' ->> 'purchase')::bigint, (b -> 'by_source' ->> 'operator')::bigint]
           from public.get_credit_balance('c2400000-0000-4000-8000-0000000000a1') b), array[499, 25]::bigint[],
          '... by source (the last charge was drawn from the purchase, first in precedence)');
select is((public.get_entitlements('c2400000-0000-4000-8000-0000000000a1') ->> 'credits')::bigint, 524::bigint,
          'get_entitlements includes the credits');
select is((select count(*) from public.credit_ledger where organization_id = 'c2400000-0000-4000-8000-0000000000a2'), 0::bigint,
          'a member does not read another organization''s ledger (it has a row)');
select throws_ok($$select public.get_credit_balance('c2400000-0000-4000-8000-0000000000a2')$$, '42501', null,
                 'not another organization''s balance');
select throws_ok($$select * from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 1, null)$$,
                 '42501', null, 'a member cannot charge credits');
select throws_ok($$update public.credit_grants set remaining = 1000$$, '42501', null, 'a member cannot write grants');
select throws_ok($$select * from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'p-1')$$,
                 '42501', null, 'a member cannot release a charge');
select tests.as_role('service_role');
select is((select array[charged::int, credits] from public.consume_credits('c2400000-0000-4000-8000-0000000000a1', 'api_call_basic', 4, 'svc-1')),
          array[1, 4]::bigint[], 'service_role charges');
select is((select credits from billing.settle_credits('c2400000-0000-4000-8000-0000000000a1', 'svc-1', 3)), 3::bigint,
          'service_role settles');
select is((select credits from public.release_credits('c2400000-0000-4000-8000-0000000000a1', 'svc-1')), 0::bigint,
          'service_role releases');
select is((public.get_credit_balance('c2400000-0000-4000-8000-0000000000a1') ->> 'balance')::bigint, 524::bigint,
          'service_role reads the balance, back where it was');
select is((billing.operator_grant_credits('c2400000-0000-4000-8000-0000000000a1', 10, null, 'granted by a back office')).amount,
          10::bigint, 'service_role runs an operator grant (billing.require_operator_reason is granted to it)');
select throws_ok($$insert into public.credit_grants (organization_id, source, amount, remaining)
                   values ('c2400000-0000-4000-8000-0000000000a1', 'operator', 1000, 1000)$$, '42501', null,
                 'service_role cannot write a grant by hand either: only through the functions');
select tests.as_postgres();
select throws_ok($$update public.credit_ledger set amount = 0$$, '42501', null, 'the ledger is append-only');
select is(pg_temp.ok_ledger(), '', 'ledger = grants at the end');

select * from finish();
rollback;
