-- The provider is told (the upgrade 20261201000400_provider_actions): cancellations, refunds and
-- operators' actions queue provider actions in the same transaction, once per decision; the
-- worker's claim and completion (leases, backoff, Retry-After, exhausted retries, permanent
-- failures with a notification); what owners see; operators' audited actions; bad input.
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
select tests.relax_owner_limit();
select plan(47);

insert into auth.users (id, email) values
  ('e5111111-0000-4000-8000-000000000001', 'actions-owner@test.local'),
  ('e5111111-0000-4000-8000-000000000002', 'actions-member@test.local');

create function pg_temp.org(p_n integer)
returns uuid language sql as $$ select ('e5200000-0000-4000-8000-' || lpad(p_n::text, 12, '0'))::uuid $$;

insert into public.billing_plans (code, name, tier, interval, price_cents, currency, active) values
  ('pa_pro_m', 'PA Pro (monthly)', 'pro', 'month', 99900, 'INR', true),
  ('pa_basic_m', 'PA Basic (monthly)', 'basic', 'month', 49900, 'INR', true);
insert into public.organizations (id, name) select pg_temp.org(n), 'Actions ' || n from generate_series(1, 5) n;
insert into public.organization_members (organization_id, user_id, role)
select pg_temp.org(n), 'e5111111-0000-4000-8000-000000000001', 'owner' from generate_series(1, 5) n;
insert into public.organization_members (organization_id, user_id, role)
values (pg_temp.org(1), 'e5111111-0000-4000-8000-000000000002', 'member');

select set_config('billing.now', '2026-12-01 10:00+05:30', true);
-- Organization 1: a Razorpay recurring subscription; 2: a PayU one; 3: nothing.
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider,
                                  provider_subscription_id)
values (pg_temp.org(1), (select id from public.billing_plans where code = 'pa_pro_m'), 'active',
        '2026-11-20 10:00+05:30', '2026-12-20 10:00+05:30', 'razorpay', 'sub_pa1'),
       (pg_temp.org(2), (select id from public.billing_plans where code = 'pa_pro_m'), 'active',
        '2026-11-20 10:00+05:30', '2026-12-20 10:00+05:30', 'payu', null);

create function pg_temp.actions(p_org uuid)
returns text language sql as $$
  select coalesce(string_agg(kind || '/' || state || '/' || coalesce(payload ->> 'at_cycle_end', payload ->> 'amount_paise', ''),
                             ',' order by created_at, kind), '')
  from billing.provider_actions where organization_id = p_org $$;

-- -------------------------------------------------------------------------------------------------
-- Decisions queue actions, once each
-- -------------------------------------------------------------------------------------------------

select tests.as_user('e5111111-0000-4000-8000-000000000001');
select is(public.cancel_subscription(pg_temp.org(1)) #>> '{provider_action,action}', 'cancel_subscription',
  'an owner cancels a Razorpay recurring subscription at the period end');
select is(public.cancel_subscription(pg_temp.org(1)) ->> 'result', 'already_scheduled', 'and again: already scheduled');
select tests.as_postgres();
select is(pg_temp.actions(pg_temp.org(1)), 'cancel/pending/true',
  'one cancel-at-cycle-end action is queued for Razorpay, however often it is asked');
select ok((select provider_action_id is not null from (select (public.get_provider_actions(pg_temp.org(1))).id as provider_action_id) a),
  'the owner''s answer names a queued action');
select is(
  (select target ->> 'provider_subscription_id' from billing.provider_actions where organization_id = pg_temp.org(1)),
  'sub_pa1', 'the action names the Razorpay subscription');
select set_config('billing.now', '2026-12-19 20:00+05:30', true);
select billing.job_renewal_reminders();
select is((select count(*)::integer from public.notifications where organization_id = pg_temp.org(1) and kind = 'pre_debit_notice'),
  0, 'no pre-debit reminder goes out for a subscription cancelled at the cycle end');
select set_config('billing.now', '2026-12-01 10:00+05:30', true);

select tests.as_user('e5111111-0000-4000-8000-000000000001');
select is(public.cancel_subscription(pg_temp.org(2)) -> 'provider_action', null::jsonb,
  'a subscription we bill ourselves (PayU) has nothing to tell the provider');
select tests.as_postgres();
select is(pg_temp.actions(pg_temp.org(2)), '', 'and queues nothing');

-- -------------------------------------------------------------------------------------------------
-- The worker's claim and completion
-- -------------------------------------------------------------------------------------------------

create temp table claim1 on commit drop as select * from billing.claim_provider_actions(10);
select is((select count(*)::integer from claim1), 1, 'the worker claims the due action');
select is((select count(*)::integer from billing.claim_provider_actions(10)), 0,
  'a second worker gets nothing while the first holds the lease');
select is((select attempts from claim1), 1, 'a claim counts an attempt');
select is(billing.complete_provider_action((select id from claim1), 'retry', null, 'HTTP 500')::text, 'pending',
  'a transient failure puts the action back, to be retried');
select ok(
  (select next_attempt_at between billing.now() + interval '30 seconds' and billing.now() + interval '36 seconds'
   from billing.provider_actions where id = (select id from claim1)),
  'after a backoff of 30 seconds (plus jitter) for the first retry');
select is((select count(*)::integer from billing.claim_provider_actions(10)), 0, 'and it is not claimed before then');
select set_config('billing.now', '2026-12-01 10:01+05:30', true);
create temp table claim2 on commit drop as select * from billing.claim_provider_actions(10);
select is((select attempts from claim2), 2, 'after the backoff it is claimed again: the second attempt');
select is(billing.complete_provider_action((select id from claim2), 'retry', null, 'HTTP 429', 600)::text, 'pending',
  'a 429 puts it back too');
select ok(
  (select next_attempt_at >= billing.now() + interval '600 seconds' from billing.provider_actions where id = (select id from claim2)),
  'honouring the provider''s Retry-After when it is longer than the backoff');
select set_config('billing.now', '2026-12-01 10:20+05:30', true);
create temp table claim3 on commit drop as select * from billing.claim_provider_actions(10);
select is(billing.complete_provider_action((select id from claim3), 'succeeded', '{"status": "cancelled"}')::text, 'succeeded',
  'the provider''s success is recorded');
select is(
  (select row(state, result ->> 'status', last_error is null, completed_at is not null)::text
   from billing.provider_actions where id = (select id from claim3)),
  '(succeeded,cancelled,t,t)', 'with its answer, and done');
select throws_ok(format($$select billing.complete_provider_action(%L, 'succeeded')$$, (select id from claim3)),
  '55000', null, 'an outcome recorded once cannot be recorded again');
select throws_ok(format($$select billing.complete_provider_action(%L, 'maybe')$$, (select id from claim3)),
  '22023', 'provider action outcome must be succeeded, retry or failed, got maybe', 'an unknown outcome is refused');

-- A permanent failure, and retries running out.
select billing.queue_provider_action(pg_temp.org(3), 'razorpay', 'pause', '{"provider_subscription_id": "sub_x"}', '{}',
  'pause:sub_x', 'operator', 'test');
select billing.queue_provider_action(pg_temp.org(3), 'razorpay', 'resume', '{"provider_subscription_id": "sub_y"}', '{}',
  'resume:sub_y', 'operator', 'test');
update billing.provider_actions set max_attempts = 1 where idempotency_key = 'resume:sub_y';
create temp table claim4 on commit drop as select * from billing.claim_provider_actions(10) order by kind;
select is(billing.complete_provider_action((select id from claim4 where kind = 'pause'), 'failed', null,
  'BAD_REQUEST_ERROR: subscription is not active')::text, 'failed', 'a 4xx is a permanent failure');
select is(billing.complete_provider_action((select id from claim4 where kind = 'resume'), 'retry', null, 'timeout')::text,
  'failed', 'a transient failure with no attempts left fails');
select is(
  (select count(*)::integer from public.notifications where organization_id = pg_temp.org(3) and kind = 'provider_action_failed'),
  2, 'each failed action queues a notification for the organization');
select tests.as_user('e5111111-0000-4000-8000-000000000001');
select is(
  (select array_agg(kind || ':' || state || ':' || coalesce(last_error, '') order by kind)
   from public.get_provider_actions(pg_temp.org(3))),
  array['pause:failed:BAD_REQUEST_ERROR: subscription is not active', 'resume:failed:timeout'],
  'owners see their failed actions, with the provider''s message');
select tests.as_user('e5111111-0000-4000-8000-000000000002');
select throws_ok($$select * from public.get_provider_actions(pg_temp.org(1))$$, '42501', null,
  'a plain member cannot read the provider actions');
select tests.as_postgres();
select ok(not has_function_privilege('authenticated', 'billing.claim_provider_actions(integer)', 'execute'),
  'signed-in users cannot claim actions');
select ok(not has_function_privilege('anon', 'public.get_provider_actions(uuid)', 'execute'),
  'visitors cannot read provider actions');

-- -------------------------------------------------------------------------------------------------
-- Money: refunds of payments that bought nothing, and the end of a paid period
-- -------------------------------------------------------------------------------------------------

insert into public.orders (id, organization_id, plan_id, provider, receipt, provider_order_id, amount_cents, status)
values ('e5300000-0000-4000-8000-000000000004', pg_temp.org(4), (select id from public.billing_plans where code = 'pa_basic_m'),
        'razorpay', 'pa_rcpt_4', 'order_pa4', 49900, 'pending');
select billing.apply_payment_event(tests.adapted(jsonb_build_object(
  'provider', 'razorpay', 'event_id', 'pa_paid_4', 'event_type', 'order.paid', 'order_ref', 'pa_rcpt_4',
  'provider_order_id', 'order_pa4', 'provider_payment_id', 'pay_pa4', 'amount_paise',
  (select amount_cents from public.orders where receipt = 'pa_rcpt_4'), 'currency', 'INR')));
select billing.apply_payment_event(tests.adapted(jsonb_build_object(
  'provider', 'razorpay', 'event_id', 'pa_paid_4_again', 'event_type', 'payment.captured', 'order_ref', 'pa_rcpt_4',
  'provider_order_id', 'order_pa4', 'provider_payment_id', 'pay_pa4_extra', 'amount_paise',
  (select amount_cents from public.orders where receipt = 'pa_rcpt_4'), 'currency', 'INR')));
select is(pg_temp.actions(pg_temp.org(4)), 'refund/pending/' || (select amount_cents from public.orders where receipt = 'pa_rcpt_4'),
  'a second payment of a paid order (needs_refund) queues its refund at the provider, in full');

-- Operator refunds: what is left, and no more.
select throws_ok(
  format($$select billing.operator_refund(%L, 1000, 'no')$$,
         (select id from public.payment_events where provider_payment_id = 'pay_pa4' and status = 'captured')),
  '22023', 'an operator action needs a reason of 3 to 500 characters', 'an operator refund needs a reason');
select ok(billing.operator_refund((select id from public.payment_events where provider_payment_id = 'pay_pa4' and status = 'captured'),
  20000, 'goodwill: outage on 30 November') is not null, 'an operator refunds part of a payment through the outbox');
select throws_ok(
  format($$select billing.operator_refund(%L, %s, 'the rest and more')$$,
         (select id from public.payment_events where provider_payment_id = 'pay_pa4' and status = 'captured'),
         (select amount_cents from public.orders where receipt = 'pa_rcpt_4')),
  '22023', null, 'a refund above what is left to refund (counting queued refunds) is refused');
select ok(billing.operator_refund((select id from public.payment_events where provider_payment_id = 'pay_pa4' and status = 'captured'),
  null, 'the rest, at the customer''s request') is not null, 'the rest is refunded with a null amount');
select is(
  (select sum((payload ->> 'amount_paise')::bigint) from billing.provider_actions a
   join public.payment_events pe on pe.id = a.payment_event_id where pe.provider_payment_id = 'pay_pa4'),
  (select amount_cents from public.orders where receipt = 'pa_rcpt_4')::numeric,
  'the two queued refunds add up to the payment');
select throws_ok($$select billing.operator_refund('00000000-0000-4000-8000-000000000000', 100, 'a reason')$$,
  'P0002', null, 'a refund of an unknown payment is refused');
select ok(not has_function_privilege('authenticated', 'billing.operator_refund(uuid, bigint, text)', 'execute'),
  'signed-in users cannot run operator refunds');

-- A lost dispute ends a Razorpay recurring subscription: Razorpay is told to stop now. (The
-- fixture's period, which no payment bought, has run out: the charge pays the current period.)
update public.subscriptions set cancel_at_period_end = false, canceled_at = null, current_period_end = billing.now()
where organization_id = pg_temp.org(1);
insert into public.orders (organization_id, plan_id, subscription_id, provider, receipt, provider_subscription_id,
                           amount_cents, status, kind)
values (pg_temp.org(1), (select id from public.billing_plans where code = 'pa_pro_m'),
        (select id from public.subscriptions where organization_id = pg_temp.org(1)), 'razorpay', 'pa_rcpt_1', 'sub_pa1', 99900,
        'pending', 'new');
select billing.apply_payment_event(tests.adapted(jsonb_build_object(
  'provider', 'razorpay', 'event_id', 'pa_charged_1', 'event_type', 'subscription.charged', 'order_ref', 'pa_rcpt_1',
  'provider_subscription_id', 'sub_pa1', 'provider_payment_id', 'pay_pa1',
  'amount_paise', (select amount_cents from public.orders where receipt = 'pa_rcpt_1'), 'currency', 'INR')));
select billing.apply_payment_event(jsonb_build_object(
  'provider', 'razorpay', 'event_id', 'pa_dispute_lost', 'event_type', 'payment.dispute.lost', 'kind', 'dispute_lost',
  'provider_payment_id', 'pay_pa1', 'provider_dispute_id', 'disp_pa1', 'amount_paise', 100, 'currency', 'INR'));
select is(
  (select count(*)::integer from billing.provider_actions
   where organization_id = pg_temp.org(1) and kind = 'cancel' and payload ->> 'at_cycle_end' = 'false'),
  1, 'a Razorpay subscription ended here by a lost dispute is cancelled at Razorpay now');

-- -------------------------------------------------------------------------------------------------
-- Operators' other actions, audited
-- -------------------------------------------------------------------------------------------------

select is(billing.operator_extend_period(pg_temp.org(2), interval '7 days', 'compensation for downtime'),
  '2026-12-27 10:00+05:30'::timestamptz, 'an operator extends a period by a week');
select throws_ok($$select billing.operator_extend_period(pg_temp.org(2), interval '-1 day', 'oops')$$, '22023', null,
  'a negative extension is refused');
select ok(billing.operator_grant_plan(pg_temp.org(5), 'pa_pro_m', '2027-03-01 00:00+05:30', 'partner programme') is not null,
  'an operator grants a plan until a date');
select is(public.effective_tier(pg_temp.org(5)), 'pro', 'the grant is in effect');
select is(billing.operator_cancel(pg_temp.org(5), false, 'partner left')::text, 'canceled', 'an operator cancels now');
select is(
  (select string_agg(h.action || '/' || h.actor_kind || '/' || h.reason || '/' || n.reason, ',' order by h.created_at, h.action)
   from public.subscription_history h join billing.operator_notes n on n.history_id = h.id
   where h.organization_id = pg_temp.org(5)),
  'plan_granted/operator/by an operator/partner programme,canceled/operator/by an operator/partner left',
  'each operator action is in the history, in the order they happened; its reason in the private operator notes');

-- One provider subscription's actions reach the provider one at a time, in the order queued:
-- two price switches queued at the same instant (an upgrade, then a downgrade) are claimed one
-- after the other, the upgrade first, whatever their ids; another subscription's action is not held.
insert into public.organizations (id, name) values (pg_temp.org(6), 'Actions 6');
select billing.queue_provider_action(pg_temp.org(6), 'stripe', 'change_plan', '{"provider_subscription_id": "sub_pa_seq"}',
  '{"plan_code": "pa_pro_m"}', 'pa_seq:1');
select billing.queue_provider_action(pg_temp.org(6), 'stripe', 'change_plan', '{"provider_subscription_id": "sub_pa_seq"}',
  '{"plan_code": "pa_basic_m"}', 'pa_seq:2');
select billing.queue_provider_action(pg_temp.org(6), 'stripe', 'cancel', '{"provider_subscription_id": "sub_pa_other"}',
  '{"at_cycle_end": true}', 'pa_seq:3');
create temp table claim_seq1 on commit drop as
  select * from billing.claim_provider_actions(100) where organization_id = pg_temp.org(6);
select is((select string_agg(idempotency_key, ',' order by idempotency_key) from claim_seq1), 'pa_seq:1,pa_seq:3',
  'the first price switch and the other subscription''s action are claimed; the second switch waits');
select is((select count(*)::integer from billing.claim_provider_actions(100) where organization_id = pg_temp.org(6)), 0,
  'while the first is running, the second is not claimed');
select is(billing.complete_provider_action((select id from claim_seq1 where idempotency_key = 'pa_seq:1'), 'succeeded', '{}')::text,
  'succeeded', 'the first switch succeeds');
select is((select string_agg(idempotency_key, ',') from billing.claim_provider_actions(100) where organization_id = pg_temp.org(6)),
  'pa_seq:2', 'then the second is claimed');

select * from finish();
rollback;
