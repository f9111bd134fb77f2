-- Credits across the payment paths, as an adversarial review reproduced them (each failed on the
-- first version): credits coming back to a pack after a partial refund stay (only the refunded
-- share is revoked); a renewal paid before the period ended gets its period's credits; a
-- subscription refunded in full keeps none of its period's credits; a request id sent again
-- after its release is charged; an upgrade that starts a new period leaves the new plan's
-- credits, not old and new stacked. Under the test clock, through the real payment functions.
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select tests.relax_member_limit();
select plan(12);

set local billing.now = '2027-01-05 10:00:00+05:30';

insert into auth.users (id, email) values ('a2990000-0000-4000-8000-000000000001', 'rv3-owner@test.local');
insert into public.organizations (id, name, billing_email, timezone) values
  ('c2990000-0000-4000-8000-0000000000a1', 'RV3 pack', 'a1@rv3.test', 'Asia/Kolkata'),
  ('c2990000-0000-4000-8000-0000000000a2', 'RV3 early renewal', 'a2@rv3.test', 'Asia/Kolkata'),
  ('c2990000-0000-4000-8000-0000000000a3', 'RV3 refunded sub', 'a3@rv3.test', 'Asia/Kolkata'),
  ('c2990000-0000-4000-8000-0000000000a4', 'RV3 retry', 'a4@rv3.test', 'Asia/Kolkata'),
  ('c2990000-0000-4000-8000-0000000000a5', 'RV3 upgrade', 'a5@rv3.test', 'Asia/Kolkata');
insert into public.organization_members (organization_id, user_id, role)
select o.id, 'a2990000-0000-4000-8000-000000000001', 'owner' from public.organizations o where o.id::text like 'c2990000-%';

insert into public.billing_plans (id, code, name, tier, interval, price_cents, features, provider_config) values
  ('b2990000-0000-4000-8000-000000000001', 'rv3_rzp', 'RV3 Razorpay', 'basic', 'month', 49900,
   '{"credits_per_period": 100}', '{"razorpay": {"plan_id": "plan_rv3_m"}}'),
  ('b2990000-0000-4000-8000-000000000002', 'rv3_payu', 'RV3 PayU', 'basic', 'month', 49900,
   '{"credits_per_period": 100}', '{}'),
  ('b2990000-0000-4000-8000-000000000003', 'rv3_payu_pro', 'RV3 PayU Pro', 'pro', 'month', 99900,
   '{"credits_per_period": 300}', '{}');
insert into public.credit_packs (id, code, name, credits, price_paise, validity, active) values
  ('e2990000-0000-4000-8000-000000000001', 'rv3_1000', 'RV3 1000', 1000, 50000, null, true);
update public.billing_settings
set seller_legal_name = 'RV3 Seller Pvt Ltd', seller_gstin = null, seller_state_code = '29',
    gst_rate_bp = 1800, prices_include_tax = false;

create temp table kv (key text primary key, val text) on commit drop;
grant all on kv to authenticated, service_role;
create function pg_temp.ev(p_provider text, p_event_id text, p_type text, p_ref text, p_payment_id text,
                           p_amount bigint, p_extra jsonb default '{}') returns jsonb language sql as $$
  select jsonb_build_object(
    'provider', p_provider, 'event_id', p_event_id, 'event_type', p_type, 'order_ref', p_ref,
    'provider_order_id', null, 'provider_payment_id', p_payment_id, 'provider_subscription_id', null,
    'provider_refund_id', null, 'amount_paise', p_amount, 'currency', 'INR', 'status', null,
    'method', 'upi', 'occurred_at', null, 'payload', '{}'::jsonb) || p_extra $$;
create function pg_temp.apply(p_event jsonb) returns jsonb language plpgsql as $$
declare v_result jsonb;
begin
  perform tests.as_role('service_role');
  v_result := billing.apply_payment_event(tests.adapted(p_event));
  perform tests.as_postgres();
  return v_result;
end $$;
create function pg_temp.bal(p_org uuid) returns bigint language sql as $$ select billing.available_credits(p_org) $$;
create function pg_temp.ok_ledger() returns text language sql as $$
  select coalesce(string_agg(problem, '; '), '') from billing.credit_ledger_problems() where organization_id::text like 'c2990000-%' $$;

-- 1. A partial refund of a pack marks the grant revoked: credits of an in-flight charge released
--    afterwards are revoked again, though only the refund's share was taken back.
select tests.as_user('a2990000-0000-4000-8000-000000000001');
insert into kv select 'pack_receipt', receipt from public.create_credit_pack_order('c2990000-0000-4000-8000-0000000000a1', 'rv3_1000', 'payu');
select tests.as_postgres();
select pg_temp.apply(pg_temp.ev('payu', 'rv3-p:success', 'payment.success', (select val from kv where key = 'pack_receipt'), 'mihpay_rv3_p', 59000));
select is(pg_temp.bal('c2990000-0000-4000-8000-0000000000a1'), 1000::bigint, 'fixture: the pack granted 1000');
select charged from public.consume_credits('c2990000-0000-4000-8000-0000000000a1', 'api_call_basic', 500, 'rv3-inflight');
select is(pg_temp.apply(pg_temp.ev('payu', 'rv3-p:refund', 'refund', (select val from kv where key = 'pack_receipt'), 'mihpay_rv3_p', 5900,
                                   '{"kind": "refund_processed", "provider_refund_id": "rv3-rf-10pc"}')) ->> 'credits_revoked',
          '100', 'fixture: a 10 % refund revokes its share, 100 credits');
select charged from public.release_credits('c2990000-0000-4000-8000-0000000000a1', 'rv3-inflight');
select is(pg_temp.bal('c2990000-0000-4000-8000-0000000000a1'), 900::bigint,
          'after a 10 % refund, releasing a 500-credit charge gives the 500 back (900 left, not 400)');
select is(pg_temp.ok_ledger(), '', 'ledger = grants');

-- 2. A renewal paid before the period ends (Razorpay debits a few minutes early, or the event is
--    delivered before our period end) keeps current_period_start: the renewed period gets no credits.
select tests.as_user('a2990000-0000-4000-8000-000000000001');
insert into kv select 'rzp_order', order_id::text from public.create_checkout_order('c2990000-0000-4000-8000-0000000000a2', 'rv3_rzp', 'razorpay');
select tests.as_postgres();
select billing.attach_provider_checkout((select val::uuid from kv where key = 'rzp_order'), null, 'sub_rv3_1');
create function pg_temp.charged(p_payment text) returns jsonb language sql as $$
  select billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'subscription.charged:' || p_payment, 'event_type', 'subscription.charged',
    'provider_subscription_id', 'sub_rv3_1', 'provider_payment_id', p_payment,
    'amount_paise', (select amount_cents from public.orders where id = (select val::uuid from kv where key = 'rzp_order')),
    'currency', 'INR', 'status', 'active', 'method', 'upi', 'occurred_at', billing.now()::text))) $$;
select pg_temp.charged('pay_rv3_1');
select charged from public.consume_credits('c2990000-0000-4000-8000-0000000000a2', 'api_call_basic', 100, 'rv3-jan');
set local billing.now = '2027-02-05 09:55:00+05:30';
select is(pg_temp.charged('pay_rv3_2') ->> 'result', 'applied', 'fixture: the second debit, 5 minutes before the period end, renews');
set local billing.now = '2027-02-06 10:00:00+05:30';
select is(pg_temp.bal('c2990000-0000-4000-8000-0000000000a2'), 100::bigint,
          'the renewed period has its 100 credits (paid 5 minutes before the end)');
select is((select count(*) from public.credit_grants where organization_id = 'c2990000-0000-4000-8000-0000000000a2'
           and source = 'subscription'), 2::bigint, 'two paid periods, two period grants');

-- 3. A full refund of the only payment cancels the subscription now (billing.end_paid_period),
--    but the period's credits stay spendable until the old period end.
set local billing.now = '2027-01-05 10:00:00+05:30';
select tests.as_user('a2990000-0000-4000-8000-000000000001');
insert into kv select 'payu_receipt', receipt from public.create_checkout_order('c2990000-0000-4000-8000-0000000000a3', 'rv3_payu', 'payu');
select tests.as_postgres();
select pg_temp.apply(pg_temp.ev('payu', 'rv3-s:success', 'payment.success', (select val from kv where key = 'payu_receipt'), 'mihpay_rv3_s',
                                (select amount_cents from public.orders where receipt = (select val from kv where key = 'payu_receipt'))));
select is(pg_temp.bal('c2990000-0000-4000-8000-0000000000a3'), 100::bigint, 'fixture: the paid period granted 100');
set local billing.now = '2027-01-06 10:00:00+05:30';
select pg_temp.apply(pg_temp.ev('payu', 'rv3-s:refund', 'refund', (select val from kv where key = 'payu_receipt'), 'mihpay_rv3_s',
                                (select amount_cents from public.orders where receipt = (select val from kv where key = 'payu_receipt')),
                                '{"kind": "refund_processed", "provider_refund_id": "rv3-rf-sub"}'));
select is((select status::text from public.subscriptions where organization_id = 'c2990000-0000-4000-8000-0000000000a3'),
          'canceled', 'fixture: the full refund ended the subscription now');
select is(pg_temp.bal('c2990000-0000-4000-8000-0000000000a3'), 0::bigint,
          'a subscription refunded in full keeps none of its period''s credits');

-- 4. A request id charged, released, then sent again answers charged = true without charging.
select billing.operator_grant_credits('c2990000-0000-4000-8000-0000000000a4', 10, null, 'rv3 fixture');
select charged from public.consume_credits('c2990000-0000-4000-8000-0000000000a4', 'api_call_basic', 5, 'rv3-retry');
select charged from public.release_credits('c2990000-0000-4000-8000-0000000000a4', 'rv3-retry');
select is((select array[charged::text, balance::text] from public.consume_credits('c2990000-0000-4000-8000-0000000000a4', 'api_call_basic', 5, 'rv3-retry')),
          array['true', '5'], 'a released request sent again and answered charged is charged (balance 5, not 10)');

-- 5. A paid upgrade starts a new period (extend_subscription_for_payment 'plan_changed': period
--    start = now): the new plan's full credits are granted and the old period's stay live to the old end.
set local billing.now = '2027-01-05 10:00:00+05:30';
select tests.as_user('a2990000-0000-4000-8000-000000000001');
insert into kv select 'up_receipt', receipt from public.create_checkout_order('c2990000-0000-4000-8000-0000000000a5', 'rv3_payu', 'payu');
select tests.as_postgres();
select pg_temp.apply(pg_temp.ev('payu', 'rv3-u:success', 'payment.success', (select val from kv where key = 'up_receipt'), 'mihpay_rv3_u',
                                (select amount_cents from public.orders where receipt = (select val from kv where key = 'up_receipt'))));
set local billing.now = '2027-01-20 10:00:00+05:30';
update public.subscriptions set plan_id = 'b2990000-0000-4000-8000-000000000003', current_period_start = billing.now(),
       current_period_end = '2027-02-20 10:00:00+05:30'
where organization_id = 'c2990000-0000-4000-8000-0000000000a5';
select is(pg_temp.bal('c2990000-0000-4000-8000-0000000000a5'), 300::bigint,
          'after an upgrade that starts a new period the balance is the new plan''s 300 (docs: an upgrade tops up to the new plan''s credits)');

select * from finish();
rollback;
