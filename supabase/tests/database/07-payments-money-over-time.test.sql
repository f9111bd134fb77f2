-- Money over time (the upgrade 20261206000200_money_over_time): a Razorpay mandate debit is a
-- renewal however long after checkout it comes, by webhook or by reconciliation, and its refund
-- is credited against its own invoice; nothing is paid back twice (billing.refundable_paise
-- counts refunds recorded, lost disputes, refunds queued, running and pending at the provider; an
-- unknown outcome blocks a new refund); a full refund or lost dispute of a payment credited into
-- an upgrade ends the upgraded period, a partial refund keeps it; an operator's grant cancels the
-- Razorpay mandate; tenants do not read operators' reasons; a failed refund's notification
-- carries its payment and amount. Then, with the test clock letting time pass: a mandate debit of
-- a subscription cancelled here buys nothing whenever it was made; a mandate whose charges buy
-- nothing is cancelled at Razorpay (once, again after a cancel failed for good); a refund whose
-- outcome stays unknown is never failed, until an operator resolves it; stacked spans (an early
-- PayU renewal) and operators' grants and extensions decide what a full refund or lost dispute
-- takes away; autopay drops a scheduled downgrade and a debit never flips the plan; one refund of
-- ours is recorded once under two ids; Razorpay's refund.failed releases the refund. (End to end
-- with the fake Razorpay: tests/money-over-time.test.ts.)
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
select tests.relax_owner_limit();
select plan(119);

-- -------------------------------------------------------------------------------------------------
-- Fixture and helpers
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values ('f1900000-0000-4000-8000-000000000001', 'over-time-owner@test.local');

insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, active) values
  ('mt_rzp_m', 'MT Recurring (monthly)', 'pro', 'month', 49900, 'INR', '{"razorpay": {"plan_id": "plan_mt_m"}}', true),
  ('mt_basic_m', 'MT Basic (monthly)', 'basic', 'month', 49900, 'INR', '{}', true),
  ('mt_pro_m', 'MT Pro (monthly)', 'pro', 'month', 99900, 'INR', '{}', true),
  ('mt_pro_y', 'MT Pro (yearly)', 'pro', 'year', 999000, 'INR', '{}', true);

/** Organization n (owned by the user above). */
create function pg_temp.org(p_n integer)
returns uuid language sql as $$ select ('f1920000-0000-4000-8000-' || lpad(p_n::text, 12, '0'))::uuid $$;

insert into public.organizations (id, name) select pg_temp.org(n), 'Over time ' || n from generate_series(1, 30) n;
insert into public.organization_members (organization_id, user_id, role)
select pg_temp.org(n), 'f1900000-0000-4000-8000-000000000001', 'owner' from generate_series(1, 30) n;

create function pg_temp.at(p_time text)
returns void language sql as $$ select set_config('billing.now', p_time, true) $$;

create function pg_temp.sub(p_org uuid)
returns public.subscriptions language sql as $$
  select * from public.subscriptions where organization_id = p_org
  order by status in ('pending_payment', 'trialing', 'active', 'past_due') desc, created_at desc limit 1 $$;

create temp table mt (key text primary key, val text) on commit drop;
grant all on mt to authenticated;

/** The owner's Razorpay subscription checkout of mt_rzp_m, attached to Razorpay subscription p_psid; its receipt. */
create function pg_temp.rzp_checkout(p_org uuid, p_psid text)
returns text language plpgsql as $$
declare
  v_order_id uuid;
  v_receipt text;
begin
  perform tests.as_user('f1900000-0000-4000-8000-000000000001');
  select c.order_id, c.receipt into v_order_id, v_receipt from public.create_checkout_order(p_org, 'mt_rzp_m', 'razorpay') c;
  perform tests.as_postgres();
  perform billing.attach_provider_checkout(v_order_id, null, p_psid);
  return v_receipt;
end;
$$;

/** A signed subscription.charged of p_psid for payment p_payment, made now, as the adapter sends it. */
create function pg_temp.charged(p_psid text, p_payment text, p_amount bigint)
returns jsonb language sql as $$
  select billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'subscription.charged:' || p_payment, 'event_type', 'subscription.charged',
    'provider_subscription_id', p_psid, 'provider_payment_id', p_payment, 'amount_paise', p_amount, 'currency', 'INR',
    'status', 'active', 'method', 'upi', 'occurred_at', billing.now()::text))) $$;

/** The same, for a debit made at p_paid_at whose webhook arrives now (delayed). */
create function pg_temp.charged_at(p_psid text, p_payment text, p_amount bigint, p_paid_at timestamptz)
returns jsonb language sql as $$
  select billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'subscription.charged:' || p_payment, 'event_type', 'subscription.charged',
    'provider_subscription_id', p_psid, 'provider_payment_id', p_payment, 'amount_paise', p_amount, 'currency', 'INR',
    'status', 'active', 'method', 'upi', 'occurred_at', p_paid_at::text))) $$;

/** The owner cancels p_org's subscription now (false) or at the period end (true). */
create function pg_temp.cancel(p_org uuid, p_at_period_end boolean)
returns text language plpgsql as $$
declare
  v_result text;
begin
  perform tests.as_user('f1900000-0000-4000-8000-000000000001');
  v_result := public.cancel_subscription(p_org, p_at_period_end) ->> 'result';
  perform tests.as_postgres();
  return v_result;
end;
$$;

/** What a captured payment came to: (needs_refund, invoices of it, refund actions of it). */
create function pg_temp.outcome(p_payment text)
returns text language sql as $$
  select row(pe.needs_refund,
             (select count(*) from public.invoices i where i.payment_event_id = pe.id),
             (select count(*) from billing.provider_actions a where a.payment_event_id = pe.id and a.kind = 'refund'))::text
  from public.payment_events pe where pe.provider_payment_id = p_payment and pe.status = 'captured' $$;

/** The cancel actions queued for Razorpay subscription p_psid: at_cycle_end/state, oldest first. */
create function pg_temp.cancels(p_psid text)
returns text language sql as $$
  select coalesce(string_agg((a.payload ->> 'at_cycle_end') || '/' || a.state, ',' order by a.created_at, a.idempotency_key), '')
  from billing.provider_actions a where a.kind = 'cancel' and a.target ->> 'provider_subscription_id' = p_psid $$;

/**
 * A charge of p_psid that reconciliation found (razorpayPaymentEvent: the payment fetched, the
 * first order's receipt, event id payment:<id>:captured), paid at p_paid_at.
 */
create function pg_temp.found(p_receipt text, p_psid text, p_payment text, p_amount bigint, p_paid_at timestamptz)
returns jsonb language sql as $$
  select billing.apply_payment_event(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'payment:' || p_payment || ':captured', 'event_type', 'payment.captured',
    'kind', 'payment_captured', 'subscription_status', null, 'error_reason', null, 'order_ref', p_receipt,
    'provider_order_id', null, 'provider_subscription_id', p_psid, 'provider_payment_id', p_payment,
    'provider_refund_id', null, 'amount_paise', p_amount, 'currency', 'INR', 'status', 'captured', 'method', 'upi',
    'occurred_at', p_paid_at::text, 'payload', jsonb_build_object('source', 'reconcile'))) $$;

/**
 * Months p_from to p_to of p_org's Razorpay subscription p_psid: each month the mandate is debited
 * 5 minutes after the period ends, and the charge arrives by webhook at once, or ('reconcile') is
 * found a day later by reconciliation, which first lists the subscription as due. Each month's
 * answer: the result, or for reconcile the reason it was due and the result.
 */
create function pg_temp.months(p_org uuid, p_psid text, p_receipt text, p_via text, p_from integer, p_to integer)
returns text[] language plpgsql as $$
declare
  v_answers text[] := '{}';
  v_amount bigint := (select o.amount_cents from public.orders o where o.receipt = p_receipt);
  v_paid_at timestamptz;
  v_reason text;
begin
  for i in p_from .. p_to loop
    v_paid_at := (pg_temp.sub(p_org)).current_period_end + interval '5 minutes';
    if p_via = 'webhook' then
      perform pg_temp.at(v_paid_at::text);
      v_answers := v_answers || (pg_temp.charged(p_psid, pg_temp.pay(p_psid, i), v_amount) ->> 'result');
    else
      perform pg_temp.at((v_paid_at + interval '1 day')::text);
      select d.reason into v_reason from billing.reconcile_due_subscriptions(1000) d where d.provider_subscription_id = p_psid;
      v_answers := v_answers || (coalesce(v_reason, 'not due') || '/'
                                 || (pg_temp.found(p_receipt, p_psid, pg_temp.pay(p_psid, i), v_amount, v_paid_at) ->> 'result'));
    end if;
  end loop;
  return v_answers;
end;
$$;

/** The payment id of month n of a subscription (0: the first charge). */
create function pg_temp.pay(p_psid text, p_n integer)
returns text language sql as $$ select 'pay_' || p_psid || '_' || p_n $$;

/** A Razorpay event about payment p_payment (refunds and disputes), with its neutral kind. */
create function pg_temp.rzp(p_event_id text, p_kind text, p_payment text, p_amount bigint, p_extra jsonb default '{}')
returns jsonb language sql as $$
  select billing.apply_payment_event(jsonb_build_object(
    'provider', 'razorpay', 'event_id', p_event_id, 'event_type', 'test.' || p_kind, 'kind', p_kind,
    'provider_payment_id', p_payment, 'amount_paise', p_amount, 'currency', 'INR') || p_extra) $$;

/** What the checkout order with receipt mt.key charges. */
create function pg_temp.price(p_key text)
returns bigint language sql as $$
  select amount_cents from public.orders where receipt = (select val from mt where key = p_key) $$;

create function pg_temp.captured(p_payment text)
returns public.payment_events language sql as $$
  select * from public.payment_events where provider_payment_id = p_payment and status = 'captured' $$;

-- -------------------------------------------------------------------------------------------------
-- A mandate debit is a renewal, one month and twelve months after checkout: by webhook
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-01-31 10:00+05:30');
insert into mt values ('r1', pg_temp.rzp_checkout(pg_temp.org(1), 'sub_mt1'));
select is(pg_temp.charged('sub_mt1', pg_temp.pay('sub_mt1', 0),
                          (select amount_cents from public.orders where receipt = (select val from mt where key = 'r1'))) ->> 'result',
  'applied', 'the first charge of the Razorpay subscription is applied at checkout');
select is((pg_temp.sub(pg_temp.org(1))).current_period_end, '2026-02-28 10:00+05:30'::timestamptz,
  'the first period runs to 28 February (anchored on the 31st)');

select is(pg_temp.months(pg_temp.org(1), 'sub_mt1', (select val from mt where key = 'r1'), 'webhook', 1, 1), array['applied'],
  'the debit a month after checkout, long after the checkout order''s quote expired, is applied');
select is(
  (select row(s.status, s.current_period_end, s.plan_id = o.plan_id)::text
   from public.subscriptions s, public.orders o where s.id = (pg_temp.sub(pg_temp.org(1))).id and o.receipt = (select val from mt where key = 'r1')),
  row('active'::subscription_status, '2026-03-31 10:00+05:30'::timestamptz, true)::text,
  'the period is extended from its end, keeping its anchor day (31 March)');
select is(
  (select row(o.kind, o.status, o.subscription_id = (pg_temp.sub(pg_temp.org(1))).id,
              (select count(*) from public.invoices i where i.order_id = o.id and i.payment_event_id = pe.id))::text
   from public.payment_events pe join public.orders o on o.id = pe.order_id
   where pe.provider_payment_id = pg_temp.pay('sub_mt1', 1) and pe.status = 'captured'),
  '(renewal,paid,t,1)', 'the debit has its own paid renewal order, with its own GST invoice');
select is(
  (select row(needs_refund, details ->> 'not_applied')::text from pg_temp.captured(pg_temp.pay('sub_mt1', 1))),
  '(f,)', 'and is not marked for refund');

select is(pg_temp.months(pg_temp.org(1), 'sub_mt1', (select val from mt where key = 'r1'), 'webhook', 2, 12),
  array_fill('applied'::text, array[11]), 'every monthly debit up to twelve months after checkout is applied');
select is((pg_temp.sub(pg_temp.org(1))).current_period_end, '2027-02-28 10:00+05:30'::timestamptz,
  'thirteen months paid: the period ends on 28 February 2027');
select is(
  (select row(count(*) filter (where o.kind = 'renewal'), count(i.id), count(*) filter (where pe.needs_refund))::text
   from public.payment_events pe join public.orders o on o.id = pe.order_id
   left join public.invoices i on i.payment_event_id = pe.id
   where pe.organization_id = pg_temp.org(1) and pe.status = 'captured'),
  '(12,13,0)', 'twelve renewal orders, thirteen invoices, nothing to refund');
select is((select count(*)::integer from billing.provider_actions where organization_id = pg_temp.org(1)), 0,
  'and no refund is queued at Razorpay');

-- A renewal's refund is credited against the renewal's own invoice.
select pg_temp.at('2027-02-05 10:00+05:30');
select is(pg_temp.rzp('mt_rf_r12', 'refund_processed', pg_temp.pay('sub_mt1', 12), pg_temp.price('r1'), '{"provider_refund_id": "rfnd_mt_r12"}') ->> 'result',
  'applied', 'the last renewal is refunded in full');
select is(
  (select i.order_id from public.credit_notes c join public.invoices i on i.id = c.invoice_id
   where c.payment_event_id = (select id from public.payment_events where details ->> 'refund_id' = 'rfnd_mt_r12')),
  (select order_id from pg_temp.captured(pg_temp.pay('sub_mt1', 12))),
  'its credit note is against the renewal''s own invoice');
select isnt(
  (select order_id from pg_temp.captured(pg_temp.pay('sub_mt1', 12))),
  (select id from public.orders where receipt = (select val from mt where key = 'r1')),
  'not the first month''s');
select is((pg_temp.sub(pg_temp.org(1))).status, 'canceled'::subscription_status,
  'a full refund of the latest renewal ends the period it paid for');

-- -------------------------------------------------------------------------------------------------
-- The same debits found by reconciliation (their webhooks lost)
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-01-31 10:00+05:30');
insert into mt values ('r2', pg_temp.rzp_checkout(pg_temp.org(2), 'sub_mt2'));
select is(pg_temp.charged('sub_mt2', pg_temp.pay('sub_mt2', 0),
                          (select amount_cents from public.orders where receipt = (select val from mt where key = 'r2'))) ->> 'result',
  'applied', 'a second subscription''s first charge is applied');
select is(pg_temp.months(pg_temp.org(2), 'sub_mt2', (select val from mt where key = 'r2'), 'reconcile', 1, 1),
  array['period_ended/applied'], 'a month later reconciliation finds the lost debit and it is applied');
select is((pg_temp.sub(pg_temp.org(2))).current_period_end, '2026-03-31 10:00+05:30'::timestamptz,
  'extended from the period end, not from when it was found');
select is(pg_temp.months(pg_temp.org(2), 'sub_mt2', (select val from mt where key = 'r2'), 'reconcile', 2, 12),
  array_fill('period_ended/applied'::text, array[11]), 'and so is every month up to twelve months after checkout');
select is(
  (select row(s.status, s.current_period_end,
              (select count(*) from public.orders o where o.organization_id = pg_temp.org(2) and o.kind = 'renewal' and o.status = 'paid'),
              (select count(*) from public.invoices i where i.organization_id = pg_temp.org(2)),
              (select count(*) from public.payment_events pe where pe.organization_id = pg_temp.org(2) and pe.needs_refund))::text
   from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(2))).id),
  row('active'::subscription_status, '2027-02-28 10:00+05:30'::timestamptz, 12, 13, 0)::text,
  'active until 28 February 2027, twelve paid renewal orders, thirteen invoices, nothing to refund');
select is(pg_temp.charged('sub_mt2', pg_temp.pay('sub_mt2', 12), pg_temp.price('r2')) ->> 'result', 'duplicate',
  'the lost webhook arriving after all is a duplicate');

-- -------------------------------------------------------------------------------------------------
-- Nothing is paid back twice
-- -------------------------------------------------------------------------------------------------

-- A lost dispute: nothing is left to refund.
select pg_temp.at('2026-03-01 10:00+05:30');
insert into mt values ('r3', pg_temp.rzp_checkout(pg_temp.org(3), 'sub_mt3'));
select pg_temp.charged('sub_mt3', pg_temp.pay('sub_mt3', 0), pg_temp.price('r3')) ->> 'result';
select is(pg_temp.rzp('mt_dp3', 'dispute_lost', pg_temp.pay('sub_mt3', 0), pg_temp.price('r3'), '{"provider_dispute_id": "disp_mt3"}') ->> 'result',
  'applied', 'a chargeback of the payment is lost');
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt3', 0))), 0::bigint,
  'after a lost dispute nothing is left to refund');
select throws_ok(
  format($$select billing.operator_refund(%L, null, 'customer asked for a refund')$$, (pg_temp.captured(pg_temp.pay('sub_mt3', 0))).id),
  '22023', null, 'so an operator''s refund of the charged-back payment is refused');

-- Refunds queued, running, pending at the provider, retrying.
select pg_temp.at('2026-03-01 10:00+05:30');
insert into mt values ('r4', pg_temp.rzp_checkout(pg_temp.org(4), 'sub_mt4'));
select pg_temp.charged('sub_mt4', pg_temp.pay('sub_mt4', 0), pg_temp.price('r4')) ->> 'result';
insert into mt values ('p4', (pg_temp.captured(pg_temp.pay('sub_mt4', 0))).id::text);
insert into mt values ('a1', billing.operator_refund((select val::uuid from mt where key = 'p4'), 10000, 'goodwill partial refund'));
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt4', 0))), 39900::bigint,
  'a queued refund counts against what can be refunded');
create temp table claim_a1 on commit drop as select * from billing.claim_provider_actions(100) where organization_id = pg_temp.org(4);
select is((select state::text from billing.provider_actions where id = (select val::uuid from mt where key = 'a1')), 'running',
  'the worker claims it');
select throws_like(
  format($$select billing.operator_refund(%L, 1000, 'another refund')$$, (select val from mt where key = 'p4')),
  format('refund action %s of payment %s has an unknown outcome (running%%', (select val from mt where key = 'a1'), pg_temp.pay('sub_mt4', 0)),
  'while its outcome is unknown (claimed), a new refund of the payment is refused, naming the action');
select is(billing.complete_provider_action((select val::uuid from mt where key = 'a1'), 'succeeded',
  '{"provider_refund_id": "rfnd_mt4_a", "status": "pending", "amount_paise": 10000}')::text, 'succeeded',
  'Razorpay accepts the refund as pending (no refund event yet)');
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt4', 0))), 39900::bigint,
  'a refund the provider holds as pending still counts');
insert into mt values ('a2', billing.operator_refund((select val::uuid from mt where key = 'p4'), 20000, 'second partial refund'));
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt4', 0))), 19900::bigint,
  'once the outcome is known a new refund may be queued, and counts');
select is(pg_temp.rzp('mt_rf4_a', 'refund_processed', pg_temp.pay('sub_mt4', 0), 10000, '{"provider_refund_id": "rfnd_mt4_a"}') ->> 'result',
  'applied', 'the pending refund''s refund.processed is applied, not counted against itself');
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt4', 0))), 19900::bigint,
  'recorded now instead of pending: what is left is the same');
select is(pg_temp.rzp('mt_rf4_dash', 'refund_processed', pg_temp.pay('sub_mt4', 0), 39901, '{"provider_refund_id": "rfnd_mt4_x"}') ->> 'result',
  'mismatch', 'a refund above what is left of the capture once refunds recorded are taken off is a mismatch for the operator');
select throws_ok(
  format($$select billing.operator_refund(%L, 19901, 'too much')$$, (select val from mt where key = 'p4')),
  '22023', format('refund of 19901 paise: payment %s has 19900 paise left to refund (refunds recorded, queued or pending at the provider, and lost disputes count)',
                  pg_temp.pay('sub_mt4', 0)),
  'an operator cannot refund more than is left');
create temp table claim_a2 on commit drop as select * from billing.claim_provider_actions(100) where organization_id = pg_temp.org(4);
select is(billing.complete_provider_action((select val::uuid from mt where key = 'a2'), 'retry', null, 'timeout')::text, 'pending',
  'the second refund times out: put back to retry');
select throws_like(
  format($$select billing.operator_refund(%L, 100, 'a third refund')$$, (select val from mt where key = 'p4')),
  format('refund action %s of payment %s has an unknown outcome (pending, 1 attempt(s), last error: timeout)%%',
         (select val from mt where key = 'a2'), pg_temp.pay('sub_mt4', 0)),
  'a retry after an unknown outcome blocks a new refund too');
select is(pg_temp.rzp('mt_rf4_b', 'refund_processed', pg_temp.pay('sub_mt4', 0), 20000,
                      jsonb_build_object('provider_refund_id', 'rfnd_mt4_b',
                                         'payload', jsonb_build_object('action_id', (select val from mt where key = 'a2')))) ->> 'result',
  'applied', 'the retried refund''s own confirmation is applied');

-- Owners see the actions, never the operator's words; a failed refund's email has what it needs.
select tests.as_user('f1900000-0000-4000-8000-000000000001');
select is(
  (select array_agg(distinct coalesce(reason, '')) from public.get_provider_actions(pg_temp.org(4))),
  array['requested by an operator'], 'owners read that an operator asked, not the operator''s reason');
select tests.as_postgres();
update billing.provider_actions set next_attempt_at = billing.now() where id = (select val::uuid from mt where key = 'a2');
create temp table claim_a2b on commit drop as
  select * from billing.claim_provider_actions(100) where organization_id = pg_temp.org(4);
select billing.complete_provider_action((select val::uuid from mt where key = 'a2'), 'failed', null, 'refund refused');
select is(
  (select billing.notification_context(n.id) -> 'refund' from public.notifications n
   where n.organization_id = pg_temp.org(4) and n.kind = 'provider_action_failed'),
  jsonb_build_object('provider_payment_id', pg_temp.pay('sub_mt4', 0), 'amount_cents', 20000, 'currency', 'INR'),
  'a failed refund''s notification context names the payment and the amount');

-- -------------------------------------------------------------------------------------------------
-- Access never outlasts what was paid for: a payment credited into an upgrade
-- -------------------------------------------------------------------------------------------------

/** Basic paid through Razorpay on 1 March, then upgraded to Pro on 11 March (the Basic payment's unused value credited), paid with PayU. */
create function pg_temp.upgraded(p_org uuid, p_n integer)
returns void language plpgsql as $$
declare
  v_change jsonb;
  v_receipt text;
begin
  perform pg_temp.at('2026-03-01 10:00+05:30');
  insert into public.orders (organization_id, plan_id, provider, receipt, provider_order_id, amount_cents, status)
  values (p_org, (select id from public.billing_plans where code = 'mt_basic_m'), 'razorpay', 'mt_up_' || p_n,
          'order_mt_up_' || p_n, 49900, 'pending');
  perform billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'mt_up_paid_' || p_n, 'event_type', 'order.paid', 'order_ref', 'mt_up_' || p_n,
    'provider_order_id', 'order_mt_up_' || p_n, 'provider_payment_id', 'pay_mt_up_' || p_n,
    'amount_paise', (select amount_cents from public.orders where receipt = 'mt_up_' || p_n), 'currency', 'INR')));
  perform pg_temp.at('2026-03-11 10:00+05:30');
  perform tests.as_user('f1900000-0000-4000-8000-000000000001');
  v_change := public.change_plan(p_org, 'mt_pro_m');
  select c.receipt into v_receipt from public.prepare_order_checkout(p_org, (v_change ->> 'order_id')::uuid, 'payu') c;
  perform tests.as_postgres();
  perform billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', v_receipt || ':success', 'event_type', 'payment.success', 'order_ref', v_receipt,
    'provider_payment_id', v_receipt, 'amount_paise', (select amount_cents from public.orders where receipt = v_receipt),
    'currency', 'INR')));
  perform pg_temp.at('2026-03-12 10:00+05:30');
end;
$$;

select pg_temp.upgraded(pg_temp.org(5), 5);
select pg_temp.upgraded(pg_temp.org(6), 6);
select pg_temp.upgraded(pg_temp.org(7), 7);
select is(
  (select array_agg(public.effective_tier(pg_temp.org(n)) order by n) from generate_series(5, 7) n),
  array['pro', 'pro', 'pro'], 'three organizations upgraded to Pro, each with the Basic payment''s unused value as credit');
select ok(
  (select bool_and((o.metadata #>> '{quote,unused_cents}')::bigint > 0) from public.orders o
   where o.organization_id in (pg_temp.org(5), pg_temp.org(6), pg_temp.org(7)) and o.kind = 'upgrade' and o.status = 'paid'),
  'each upgrade order credited unused Basic time');
select is(pg_temp.rzp('mt_rf5', 'refund_processed', 'pay_mt_up_5', (pg_temp.captured('pay_mt_up_5')).amount_cents,
                      '{"provider_refund_id": "rfnd_mt_up_5"}') ->> 'result',
  'applied', 'the credited Basic payment is refunded in full');
select is(
  (select row(s.status, public.effective_tier(pg_temp.org(5)))::text from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(5))).id),
  '(canceled,free)', 'the upgraded period it helped pay for ends now: the free plan applies');
select is(pg_temp.rzp('mt_dp6', 'dispute_lost', 'pay_mt_up_6', (pg_temp.captured('pay_mt_up_6')).amount_cents,
                      '{"provider_dispute_id": "disp_mt_up_6"}') ->> 'result',
  'applied', 'a chargeback of the credited Basic payment is lost');
select is(
  (select row(s.status, public.effective_tier(pg_temp.org(6)))::text from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(6))).id),
  '(canceled,free)', 'a lost dispute ends the upgraded period the same way');
select is(pg_temp.rzp('mt_rf7', 'refund_processed', 'pay_mt_up_7', 10000, '{"provider_refund_id": "rfnd_mt_up_7"}') ->> 'result',
  'applied', 'a part of the credited Basic payment is refunded');
select is(
  (select row(s.status, public.effective_tier(pg_temp.org(7)))::text from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(7))).id),
  '(active,pro)', 'a partial refund keeps the upgraded period');

-- -------------------------------------------------------------------------------------------------
-- An operator's grant over a running Razorpay mandate
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-03-01 10:00+05:30');
insert into mt values ('r8', pg_temp.rzp_checkout(pg_temp.org(8), 'sub_mt8'));
select pg_temp.charged('sub_mt8', pg_temp.pay('sub_mt8', 0), pg_temp.price('r8')) ->> 'result';
select pg_temp.at('2026-03-10 10:00+05:30');
select billing.operator_grant_plan(pg_temp.org(8), 'mt_pro_y', '2027-03-10 10:00+05:30', 'comp for the March outage');
select is(
  (select string_agg(kind || '/' || state || '/' || (payload ->> 'at_cycle_end') || '/' || (target ->> 'provider_subscription_id'), ',')
   from billing.provider_actions where organization_id = pg_temp.org(8)),
  'cancel/pending/false/sub_mt8', 'the grant cancels the Razorpay mandate now, through the outbox');
select is(
  (select row(p.code, s.status, s.provider, s.provider_subscription_id, s.current_period_end)::text
   from public.subscriptions s join public.billing_plans p on p.id = s.plan_id where s.id = (pg_temp.sub(pg_temp.org(8))).id),
  row('mt_pro_y', 'active'::subscription_status, 'manual'::payment_provider, null::text, '2027-03-10 10:00+05:30'::timestamptz)::text,
  'the granted subscription no longer follows the mandate');
select pg_temp.at('2026-04-01 10:05+05:30');
select is(pg_temp.charged('sub_mt8', pg_temp.pay('sub_mt8', 1), pg_temp.price('r8')) ->> 'result', 'recorded',
  'a debit that still comes buys nothing');
select is(
  (select row(p.code, s.current_period_end, (select needs_refund from pg_temp.captured(pg_temp.pay('sub_mt8', 1))))::text
   from public.subscriptions s join public.billing_plans p on p.id = s.plan_id where s.id = (pg_temp.sub(pg_temp.org(8))).id),
  row('mt_pro_y', '2027-03-10 10:00+05:30'::timestamptz, true)::text,
  'the grant stands and the debit is marked for refund');

-- -------------------------------------------------------------------------------------------------
-- A mandate debit of a cancelled subscription buys nothing, whenever it was made
-- -------------------------------------------------------------------------------------------------

-- Past due at the period end, the owner cancels now; the debit made before the cancel arrives after.
select pg_temp.at('2026-01-10 10:00+05:30');
insert into mt values ('r9', pg_temp.rzp_checkout(pg_temp.org(9), 'sub_mt9'));
select pg_temp.charged('sub_mt9', pg_temp.pay('sub_mt9', 0), pg_temp.price('r9')) ->> 'result';
select pg_temp.at('2026-02-10 11:00+05:30');
select billing.job_expire() is not null;
select pg_temp.at('2026-02-10 12:00+05:30');
select is(pg_temp.cancel(pg_temp.org(9), false), 'canceled', 'a past-due subscription is cancelled now by its owner');
select pg_temp.at('2026-02-10 14:00+05:30');
select is(pg_temp.charged_at('sub_mt9', pg_temp.pay('sub_mt9', 1), pg_temp.price('r9'), '2026-02-10 10:05+05:30') ->> 'result',
  'recorded', 'a debit made before the cancel-now and delivered after buys nothing');
select is(
  (select row(s.status, s.current_period_end, public.effective_tier(pg_temp.org(9)), pg_temp.outcome(pg_temp.pay('sub_mt9', 1)))::text
   from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(9))).id),
  row('canceled'::subscription_status, '2026-02-10 10:00+05:30'::timestamptz, 'free', '(t,0,1)')::text,
  'the cancelled subscription is not extended; the debit has no invoice and is refunded');

-- Cancelled at the period end; a debit made just before the period ended arrives after the job ended it.
select pg_temp.at('2026-01-10 10:00+05:30');
insert into mt values ('r10', pg_temp.rzp_checkout(pg_temp.org(10), 'sub_mt10'));
select pg_temp.charged('sub_mt10', pg_temp.pay('sub_mt10', 0), pg_temp.price('r10')) ->> 'result';
select pg_temp.at('2026-01-20 10:00+05:30');
select is(pg_temp.cancel(pg_temp.org(10), true), 'scheduled', 'another owner cancels at the period end');
select pg_temp.at('2026-02-10 11:00+05:30');
select billing.job_expire() is not null;
select is((pg_temp.sub(pg_temp.org(10))).status, 'canceled'::subscription_status, 'the job ends it at the period end');
select pg_temp.at('2026-02-10 14:00+05:30');
select is(pg_temp.charged_at('sub_mt10', pg_temp.pay('sub_mt10', 1), pg_temp.price('r10'), '2026-02-10 09:55+05:30') ->> 'result',
  'recorded', 'a debit made before the period ended, for a period the owner chose not to have, buys nothing');
select is(
  (select row(s.status, s.current_period_end, pg_temp.outcome(pg_temp.pay('sub_mt10', 1)))::text
   from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(10))).id),
  row('canceled'::subscription_status, '2026-02-10 10:00+05:30'::timestamptz, '(t,0,1)')::text,
  'it stays cancelled; the debit is refunded, with no invoice');

-- Cancelled at the period end, still running: a debit (Razorpay not told yet) does not undo the cancel.
select pg_temp.at('2026-01-10 10:00+05:30');
insert into mt values ('r11', pg_temp.rzp_checkout(pg_temp.org(11), 'sub_mt11'));
select pg_temp.charged('sub_mt11', pg_temp.pay('sub_mt11', 0), pg_temp.price('r11')) ->> 'result';
select pg_temp.at('2026-01-20 10:00+05:30');
select pg_temp.cancel(pg_temp.org(11), true);
select pg_temp.at('2026-02-10 10:05+05:30');
select is(pg_temp.charged('sub_mt11', pg_temp.pay('sub_mt11', 1), pg_temp.price('r11')) ->> 'result', 'recorded',
  'a debit of a subscription cancelled at the period end buys nothing, before the job ran too');
select is(
  (select row(s.status, s.cancel_at_period_end, s.current_period_end, pg_temp.outcome(pg_temp.pay('sub_mt11', 1)))::text
   from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(11))).id),
  row('active'::subscription_status, true, '2026-02-10 10:00+05:30'::timestamptz, '(t,0,1)')::text,
  'the cancellation stands, the period is not extended, the debit is refunded');

-- -------------------------------------------------------------------------------------------------
-- A mandate whose charges buy nothing is cancelled at Razorpay
-- -------------------------------------------------------------------------------------------------

-- The first charge came after the checkout's quote expired: refunded, and the mandate stopped.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('r12', pg_temp.rzp_checkout(pg_temp.org(12), 'sub_mt12'));
select pg_temp.at('2026-01-03 10:00+05:30');
select is(pg_temp.charged('sub_mt12', pg_temp.pay('sub_mt12', 0), pg_temp.price('r12')) ->> 'result', 'recorded',
  'a first charge after the quote expired buys nothing');
select is(pg_temp.cancels('sub_mt12'), 'false/pending', 'and the Razorpay subscription is cancelled now, through the outbox');
select pg_temp.at('2026-02-03 10:05+05:30');
select is(pg_temp.charged('sub_mt12', pg_temp.pay('sub_mt12', 1), pg_temp.price('r12')) ->> 'result', 'recorded',
  'a debit a month later buys nothing either');
select is(pg_temp.cancels('sub_mt12'), 'false/pending', 'the cancel is queued once');
update billing.provider_actions set next_attempt_at = billing.now()
where kind = 'cancel' and target ->> 'provider_subscription_id' = 'sub_mt12';
create temp table claim_c12 on commit drop as select * from billing.claim_provider_actions(100) where organization_id = pg_temp.org(12);
select is(billing.complete_provider_action((select id from claim_c12 where kind = 'cancel'), 'failed', null, 'bad request')::text,
  'failed', 'Razorpay refuses the cancel for good');
select pg_temp.at('2026-03-03 10:05+05:30');
select pg_temp.charged('sub_mt12', pg_temp.pay('sub_mt12', 2), pg_temp.price('r12')) ->> 'result';
select is(pg_temp.cancels('sub_mt12'), 'false/failed,false/pending', 'the next debit queues the cancel again');
insert into billing.provider_subscription_states (provider, provider_subscription_id, status, status_at, event_id)
values ('razorpay', 'sub_mt12', 'cancelled', billing.now(), 'evt_mt12_cancelled')
on conflict (provider, provider_subscription_id) do update set status = excluded.status;
update billing.provider_actions set state = 'failed', completed_at = billing.now()
where kind = 'cancel' and target ->> 'provider_subscription_id' = 'sub_mt12' and state = 'pending';
select pg_temp.at('2026-04-03 10:05+05:30');
select pg_temp.charged('sub_mt12', pg_temp.pay('sub_mt12', 3), pg_temp.price('r12')) ->> 'result';
select is(pg_temp.cancels('sub_mt12'), 'false/failed,false/failed', 'once Razorpay has ended it nothing more is queued');
select is(
  (select array_agg(pg_temp.outcome(pg_temp.pay('sub_mt12', n)) order by n) from generate_series(0, 3) n),
  array_fill('(t,0,1)'::text, array[4]), 'every charge is refunded, none invoiced');

-- A debit of the cancelled subscription above (org 9): its owner's cancel-now is already queued.
select is(pg_temp.cancels('sub_mt9'), 'false/pending', 'a mandate already being cancelled is not cancelled twice');

-- -------------------------------------------------------------------------------------------------
-- A refund whose outcome stays unknown is never failed: the money stays held until someone knows
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('r13', pg_temp.rzp_checkout(pg_temp.org(13), 'sub_mt13'));
select pg_temp.charged('sub_mt13', pg_temp.pay('sub_mt13', 0), pg_temp.price('r13')) ->> 'result';
insert into mt values ('p13', (pg_temp.captured(pg_temp.pay('sub_mt13', 0))).id::text);
insert into mt values ('a13', billing.operator_refund((select val::uuid from mt where key = 'p13'), 20000, 'goodwill'));
/** Claims action mt.p_key and records p_n attempts whose outcome is unknown (retry); the state left. */
create function pg_temp.unknown_attempts(p_key text, p_n integer)
returns text language plpgsql as $$
declare
  v_id uuid := (select val::uuid from mt where key = p_key);
  v_state text;
begin
  for i in 1 .. p_n loop
    update billing.provider_actions set next_attempt_at = billing.now() where id = v_id;
    perform 1 from billing.claim_provider_actions(1000) c where c.id = v_id;
    v_state := billing.complete_provider_action(v_id, 'retry', null,
      case when i % 2 = 0 then 'Razorpay could not be asked about the earlier attempt: timeout' else 'timeout' end);
  end loop;
  return v_state;
end;
$$;
select is(pg_temp.unknown_attempts('a13', 10), 'pending',
  'a refund whose outcome stays unknown past max_attempts is still pending, never failed');
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt13', 0))), pg_temp.price('r13') - 20000,
  'its amount still counts as in flight');
select throws_ok(
  format($$select billing.operator_refund(%L, 20000, 'the refund failed, refund again')$$, (select val from mt where key = 'p13')),
  '55000', null, 'so a second refund of the same money is refused');
select throws_ok(
  format($$select billing.operator_resolve_refund(%L, false, '')$$, (select val from mt where key = 'a13')),
  '22023', null, 'resolving needs a reason');
select throws_ok(
  format($$select billing.operator_resolve_refund(%L, true, 'seen in the dashboard')$$, (select val from mt where key = 'a13')),
  '22023', null, 'resolving as refunded needs the provider''s refund id');
select is(billing.operator_resolve_refund((select val::uuid from mt where key = 'a13'), false,
                                          'Razorpay dashboard: no refund of the payment, ticket 88')::text, 'failed',
  'an operator who saw no refund at Razorpay resolves it as not refunded');
select is(
  (select row(state, last_error like 'not refunded at the provider, per an operator:%', result ->> 'resolved_by')::text
   from billing.provider_actions where id = (select val::uuid from mt where key = 'a13')),
  '(failed,t,operator)', 'the action says who resolved it and what they saw');
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt13', 0))), pg_temp.price('r13'),
  'only then is the money released');
select throws_ok(
  format($$select billing.operator_resolve_refund(%L, false, 'again')$$, (select val from mt where key = 'a13')),
  '55000', null, 'a resolved refund cannot be resolved again');
insert into mt values ('a13b', billing.operator_refund((select val::uuid from mt where key = 'p13'), 20000, 'goodwill, again'));
select is(pg_temp.unknown_attempts('a13b', 3), 'pending', 'the new refund''s outcome is unknown too');
select is(billing.operator_resolve_refund((select val::uuid from mt where key = 'a13b'), true,
                                          'Razorpay dashboard shows rfnd_mt13 processed', 'rfnd_mt13')::text, 'succeeded',
  'an operator who saw the refund at Razorpay resolves it as refunded, with its id');
select is(
  (select row(amount_cents, details ->> 'refund_id')::text from public.payment_events
   where provider_payment_id = pg_temp.pay('sub_mt13', 0) and status = 'refunded'),
  '(20000,rfnd_mt13)', 'the refund is recorded under the provider''s refund id');
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt13', 0))), pg_temp.price('r13') - 20000,
  'and counts once');
select is(pg_temp.rzp('mt_rf13', 'refund_processed', pg_temp.pay('sub_mt13', 0), 20000, '{"provider_refund_id": "rfnd_mt13"}') ->> 'result',
  'duplicate', 'its webhook arriving later is a duplicate');

-- -------------------------------------------------------------------------------------------------
-- Access follows the spans payments bought: stacked periods, operators' grants and extensions
-- -------------------------------------------------------------------------------------------------

/** The owner's PayU checkout of p_plan, paid now; the payment id (PayU: the receipt). */
create function pg_temp.payu_paid(p_org uuid, p_plan text)
returns text language plpgsql as $$
declare
  v_receipt text;
begin
  perform tests.as_user('f1900000-0000-4000-8000-000000000001');
  select c.receipt into v_receipt from public.create_checkout_order(p_org, p_plan, 'payu') c;
  perform tests.as_postgres();
  perform billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', v_receipt || ':success', 'event_type', 'payment.success', 'order_ref', v_receipt,
    'provider_payment_id', v_receipt, 'amount_paise', (select amount_cents from public.orders where receipt = v_receipt),
    'currency', 'INR')));
  return v_receipt;
end;
$$;
/** A PayU refund (p_kind refund_processed) or lost dispute (dispute_lost) of all of payment p_payment. */
create function pg_temp.payu_back(p_kind text, p_payment text)
returns text language sql as $$
  select billing.apply_payment_event(jsonb_build_object(
    'provider', 'payu', 'event_id', p_kind || ':' || p_payment, 'event_type', 'test.' || p_kind, 'kind', p_kind,
    'provider_payment_id', p_payment, 'amount_paise', (pg_temp.captured(p_payment)).amount_cents, 'currency', 'INR',
    'provider_refund_id', 'rf_' || p_payment, 'provider_dispute_id', 'dp_' || p_payment)) ->> 'result' $$;
/** p_org's subscription as (status, current_period_end, effective tier). */
create function pg_temp.access(p_org uuid)
returns text language sql as $$
  select row(s.status, s.current_period_end, public.effective_tier(p_org))::text
  from public.subscriptions s where s.id = (pg_temp.sub(p_org)).id $$;

-- January paid on 1 January, February paid early on 20 January: two stacked spans.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('p14a', pg_temp.payu_paid(pg_temp.org(14), 'mt_basic_m'));
select pg_temp.at('2026-01-20 10:00+05:30');
insert into mt values ('p14b', pg_temp.payu_paid(pg_temp.org(14), 'mt_basic_m'));
select is(pg_temp.access(pg_temp.org(14)), row('active'::subscription_status, '2026-03-01 10:00+05:30'::timestamptz, 'basic')::text,
  'a PayU renewal paid early stacks February after January');
select pg_temp.at('2026-01-25 10:00+05:30');
select is(pg_temp.payu_back('dispute_lost', (select val from mt where key = 'p14a')), 'applied', 'the January payment is charged back');
select is(pg_temp.access(pg_temp.org(14)), row('active'::subscription_status, '2026-02-22 10:00+05:30'::timestamptz, 'basic')::text,
  'what January had left (7 days) is taken away: February''s month, paid for, now runs from today');
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('p15a', pg_temp.payu_paid(pg_temp.org(15), 'mt_basic_m'));
select pg_temp.at('2026-01-20 10:00+05:30');
insert into mt values ('p15b', pg_temp.payu_paid(pg_temp.org(15), 'mt_basic_m'));
select pg_temp.at('2026-01-21 10:00+05:30');
select is(pg_temp.payu_back('refund_processed', (select val from mt where key = 'p15b')), 'applied', 'the unused early renewal is refunded in full');
select is(pg_temp.access(pg_temp.org(15)), row('active'::subscription_status, '2026-02-01 10:00+05:30'::timestamptz, 'basic')::text,
  'its span, wholly in the future, is taken off the end: January, paid for, stands');
select pg_temp.at('2026-01-22 10:00+05:30');
select is(pg_temp.payu_back('refund_processed', (select val from mt where key = 'p15a')), 'applied', 'then January is refunded in full');
select is(pg_temp.access(pg_temp.org(15)), row('canceled'::subscription_status, '2026-02-01 10:00+05:30'::timestamptz, 'free')::text,
  'nothing paid is left: access ends now');

-- An operator's grant after the payment: the period stands on the grant.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('p16', pg_temp.payu_paid(pg_temp.org(16), 'mt_basic_m'));
select pg_temp.at('2026-01-10 10:00+05:30');
select billing.operator_grant_plan(pg_temp.org(16), 'mt_pro_m', '2026-07-10 10:00+05:30', 'comp for an outage') is not null;
select pg_temp.at('2026-01-12 10:00+05:30');
select is(pg_temp.payu_back('refund_processed', (select val from mt where key = 'p16')), 'applied',
  'the payment made before a grant is refunded in full');
select is(pg_temp.access(pg_temp.org(16)), row('active'::subscription_status, '2026-07-10 10:00+05:30'::timestamptz, 'pro')::text,
  'the grant stands: the period no longer stands on that payment');
-- An operator's extension after the payment: the same.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('p17', pg_temp.payu_paid(pg_temp.org(17), 'mt_basic_m'));
select pg_temp.at('2026-01-10 10:00+05:30');
select billing.operator_extend_period(pg_temp.org(17), interval '7 days', 'outage on 9 January') is not null;
select pg_temp.at('2026-01-12 10:00+05:30');
select is(pg_temp.payu_back('dispute_lost', (select val from mt where key = 'p17')), 'applied',
  'the payment made before an extension is charged back');
select is(pg_temp.access(pg_temp.org(17)), row('active'::subscription_status, '2026-01-19 10:00+05:30'::timestamptz, 'basic')::text,
  'the extension keeps its 7 days, and what the payment had left (20 days) is taken back');

-- -------------------------------------------------------------------------------------------------
-- A downgrade scheduled before autopay started is dropped; a debit never flips the plan
-- -------------------------------------------------------------------------------------------------

insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, active) values
  ('mt_rzp_basic', 'MT Recurring Basic (monthly)', 'basic', 'month', 29900, 'INR', '{"razorpay": {"plan_id": "plan_mt_b"}}', true);
/** p_org's subscription as (plan code, pending plan code, status, current_period_end). */
create function pg_temp.plan_of(p_org uuid)
returns text language sql as $$
  select row(p.code, pp.code, s.status, s.current_period_end)::text
  from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
  left join public.billing_plans pp on pp.id = s.pending_plan_id
  where s.id = (pg_temp.sub(p_org)).id $$;

select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('p18', pg_temp.payu_paid(pg_temp.org(18), 'mt_rzp_m'));
select pg_temp.at('2026-01-05 10:00+05:30');
select tests.as_user('f1900000-0000-4000-8000-000000000001');
select is(public.change_plan(pg_temp.org(18), 'mt_rzp_basic') ->> 'result', 'scheduled',
  'a downgrade is scheduled on a subscription paid with PayU');
select tests.as_postgres();
select pg_temp.at('2026-01-06 10:00+05:30');
insert into mt values ('r18', pg_temp.rzp_checkout(pg_temp.org(18), 'sub_mt18'));
select is(pg_temp.charged('sub_mt18', pg_temp.pay('sub_mt18', 0), pg_temp.price('r18')) ->> 'result', 'applied',
  'then the owner starts autopay of the current plan with Razorpay');
select is(pg_temp.plan_of(pg_temp.org(18)),
  row('mt_rzp_m', null::text, 'active'::subscription_status, '2026-03-01 10:00+05:30'::timestamptz)::text,
  'the mandate''s plan replaces the scheduled downgrade, which is dropped');
select is((select array_agg(action order by effective_at, created_at) from public.subscription_history
           where organization_id = pg_temp.org(18) and action in ('downgrade_scheduled', 'pending_plan_cleared')),
  array['downgrade_scheduled', 'pending_plan_cleared'], 'with history');
select pg_temp.at('2026-03-01 10:01+05:30');
select billing.job_expire() is not null;
select pg_temp.at('2026-03-01 10:05+05:30');
select is(pg_temp.charged('sub_mt18', pg_temp.pay('sub_mt18', 1), pg_temp.price('r18')) ->> 'result', 'applied',
  'the next debit renews');
select is(pg_temp.plan_of(pg_temp.org(18)),
  row('mt_rzp_m', null::text, 'active'::subscription_status, '2026-04-01 10:00+05:30'::timestamptz)::text,
  'the plan the mandate pays for, with no flip');

-- A debit whose plan is not the subscription's (changed by hand) is refunded for review, not applied.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('r19', pg_temp.rzp_checkout(pg_temp.org(19), 'sub_mt19'));
select pg_temp.charged('sub_mt19', pg_temp.pay('sub_mt19', 0), pg_temp.price('r19')) ->> 'result';
update public.subscriptions set plan_id = (select id from public.billing_plans where code = 'mt_rzp_basic')
where id = (pg_temp.sub(pg_temp.org(19))).id;
select pg_temp.at('2026-02-01 10:05+05:30');
select is(pg_temp.charged('sub_mt19', pg_temp.pay('sub_mt19', 1), pg_temp.price('r19')) ->> 'result', 'recorded',
  'a debit for another plan than the subscription''s is not applied');
select is(
  (select row(pg_temp.plan_of(pg_temp.org(19)), pg_temp.outcome(pg_temp.pay('sub_mt19', 1)),
              (pg_temp.captured(pg_temp.pay('sub_mt19', 1))).details ->> 'needs_review')::text),
  row(row('mt_rzp_basic', null::text, 'active'::subscription_status, '2026-02-01 10:00+05:30'::timestamptz)::text,
      '(t,0,1)', 'true')::text,
  'the plan is not flipped; the debit is refunded and marked for an operator''s review');

-- -------------------------------------------------------------------------------------------------
-- One refund of ours is recorded once, whatever id it comes under; a refund that failed is released
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('p20', pg_temp.payu_paid(pg_temp.org(20), 'mt_basic_m'));
insert into mt values ('a20', billing.operator_refund((pg_temp.captured((select val from mt where key = 'p20'))).id, 10000, 'partial'));
insert into mt values ('t20', (select payload ->> 'refund_id' from billing.provider_actions where id = (select val::uuid from mt where key = 'a20')));
select is(billing.apply_payment_event(jsonb_build_object(
    'provider', 'payu', 'event_id', 'refund:' || (select val from mt where key = 't20') || ':queued', 'event_type', 'refund.queued',
    'kind', 'refund_processed', 'provider_payment_id', (select val from mt where key = 'p20'), 'amount_paise', 10000, 'currency', 'INR',
    'provider_refund_id', (select val from mt where key = 't20'),
    'payload', jsonb_build_object('source', 'provider-sync', 'action_id', (select val from mt where key = 'a20'),
                                  'token', (select val from mt where key = 't20')))) ->> 'result',
  'applied', 'provider-sync records a PayU refund under our token (PayU gave no request id)');
select is(billing.apply_payment_event(jsonb_build_object(
    'provider', 'payu', 'event_id', 'refund:7800456:queued', 'event_type', 'refund.queued',
    'kind', 'refund_processed', 'provider_payment_id', (select val from mt where key = 'p20'), 'amount_paise', 10000, 'currency', 'INR',
    'provider_refund_id', '7800456',
    'payload', jsonb_build_object('source', 'reconcile', 'token', (select val from mt where key = 't20')))) ->> 'result',
  'duplicate', 'reconcile finding the same refund under PayU''s request id records nothing more');
select is(
  (select row((select count(*) from public.payment_events where organization_id = pg_temp.org(20) and status = 'refunded'),
              (select count(*) from public.credit_notes where organization_id = pg_temp.org(20)),
              billing.refundable_paise(pg_temp.captured((select val from mt where key = 'p20'))))::text),
  row(1, 1, (pg_temp.captured((select val from mt where key = 'p20'))).amount_cents - 10000)::text,
  'one refund row, one credit note, the 10000 counted once');

select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('r21', pg_temp.rzp_checkout(pg_temp.org(21), 'sub_mt21'));
select pg_temp.charged('sub_mt21', pg_temp.pay('sub_mt21', 0), pg_temp.price('r21')) ->> 'result';
insert into mt values ('a21', billing.operator_refund((pg_temp.captured(pg_temp.pay('sub_mt21', 0))).id, 10000, 'goodwill'));
create temp table claim_a21 on commit drop as select * from billing.claim_provider_actions(100) where organization_id = pg_temp.org(21);
select billing.complete_provider_action((select val::uuid from mt where key = 'a21'), 'succeeded',
  '{"provider_refund_id": "rfnd_mt21", "status": "pending", "amount_paise": 10000}');
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt21', 0))), pg_temp.price('r21') - 10000,
  'Razorpay holds the refund as pending: it counts');
select is(pg_temp.rzp('mt_rff21', 'refund_failed', pg_temp.pay('sub_mt21', 0), 10000,
                      '{"provider_refund_id": "rfnd_mt21", "event_type": "refund.failed"}') ->> 'result',
  'applied', 'Razorpay''s refund.failed is applied');
select is(
  (select row(a.state, a.result ->> 'status', a.last_error like 'razorpay reports refund rfnd_mt21 failed%',
              exists (select 1 from public.notifications n where n.kind = 'provider_action_failed'
                      and n.payload ->> 'provider_action_id' = a.id::text))::text
   from billing.provider_actions a where a.id = (select val::uuid from mt where key = 'a21')),
  '(failed,failed,t,t)', 'the refund action is failed, and the owners are told');
select is(billing.refundable_paise(pg_temp.captured(pg_temp.pay('sub_mt21', 0))), pg_temp.price('r21'),
  'the failed refund no longer counts as in flight');

-- -------------------------------------------------------------------------------------------------
-- Take-backs: once per payment, the next period a full one, replaced spans, extensions
-- -------------------------------------------------------------------------------------------------

-- A full refund and then a lost dispute of the same payment take its span once.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('f1a', pg_temp.payu_paid(pg_temp.org(22), 'mt_basic_m'));
select pg_temp.at('2026-01-10 10:00+05:30');
insert into mt values ('f1b', pg_temp.payu_paid(pg_temp.org(22), 'mt_basic_m'));
select pg_temp.at('2026-01-15 10:00+05:30');
select pg_temp.payu_back('refund_processed', (select val from mt where key = 'f1a'));
select pg_temp.payu_back('dispute_lost', (select val from mt where key = 'f1a'));
select is((pg_temp.sub(pg_temp.org(22))).current_period_end, '2026-02-12 10:00+05:30'::timestamptz,
  'a lost dispute after a full refund of the same payment takes nothing more (February stays paid)');

-- After a take-back the next paid month is a full month from the new end.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('f2a', pg_temp.payu_paid(pg_temp.org(23), 'mt_basic_m'));
select pg_temp.at('2026-01-10 10:00+05:30');
insert into mt values ('f2b', pg_temp.payu_paid(pg_temp.org(23), 'mt_basic_m'));
select pg_temp.at('2026-01-15 10:00+05:30');
select pg_temp.payu_back('refund_processed', (select val from mt where key = 'f2a'));
select pg_temp.at('2026-02-10 10:00+05:30');
insert into mt values ('f2c', pg_temp.payu_paid(pg_temp.org(23), 'mt_basic_m'));
select is((pg_temp.sub(pg_temp.org(23))).current_period_end, '2026-03-12 10:00+05:30'::timestamptz,
  'a month paid after the period was shortened buys a month (12 Feb -> 12 Mar), not 17 days');

-- After an operator's extension the next paid month is a full month from the extended end.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('f2d', pg_temp.payu_paid(pg_temp.org(24), 'mt_basic_m'));
select pg_temp.at('2026-01-05 10:00+05:30');
select billing.operator_extend_period(pg_temp.org(24), interval '3 days', 'outage on 4 January') is not null;
select pg_temp.at('2026-01-20 10:00+05:30');
insert into mt values ('f2e', pg_temp.payu_paid(pg_temp.org(24), 'mt_basic_m'));
select is((pg_temp.sub(pg_temp.org(24))).current_period_end, '2026-03-04 10:00+05:30'::timestamptz,
  'a month paid after an extension buys a month from the extended end (4 Feb -> 4 Mar)');

-- A refund of the old plan's payment, whose span a plan change (cancel and resubscribe) replaced.
insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, active) values
  ('rv_rzp_b', 'RV Recurring Basic', 'basic', 'month', 29900, 'INR', '{"razorpay": {"plan_id": "plan_rv_b"}}', true);
create function pg_temp.rzp_checkout2(p_org uuid, p_plan text, p_psid text)
returns text language plpgsql as $$
declare v_order_id uuid; v_receipt text;
begin
  perform tests.as_user('f1900000-0000-4000-8000-000000000001');
  select c.order_id, c.receipt into v_order_id, v_receipt from public.create_checkout_order(p_org, p_plan, 'razorpay') c;
  perform tests.as_postgres();
  perform billing.attach_provider_checkout(v_order_id, null, p_psid);
  return v_receipt;
end; $$;
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('f3r1', pg_temp.rzp_checkout(pg_temp.org(25), 'sub_rv1'));
select pg_temp.charged('sub_rv1', 'pay_rv1_0', pg_temp.price('f3r1'));
select pg_temp.at('2026-01-15 10:00+05:30');
select tests.as_user('f1900000-0000-4000-8000-000000000001');
select public.change_plan(pg_temp.org(25), 'rv_rzp_b');
select tests.as_postgres();
insert into mt values ('f3r2', pg_temp.rzp_checkout2(pg_temp.org(25), 'rv_rzp_b', 'sub_rv2'));
select pg_temp.charged('sub_rv2', 'pay_rv2_0', pg_temp.price('f3r2'));
select pg_temp.at('2026-01-20 10:00+05:30');
select pg_temp.rzp('rv_rf_old', 'refund_processed', 'pay_rv1_0', pg_temp.price('f3r1'), '{"provider_refund_id": "rfnd_rv_old"}');
select is((pg_temp.sub(pg_temp.org(25))).current_period_end, '2026-02-15 10:00+05:30'::timestamptz,
  'refunding the old plan''s payment (its span replaced by the new plan, no credit) leaves the new plan''s paid month');

-- A one-day goodwill extension does not make a lost dispute of a yearly payment take nothing.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('f4', pg_temp.payu_paid(pg_temp.org(26), 'mt_pro_y'));
select pg_temp.at('2026-01-05 10:00+05:30');
select billing.operator_extend_period(pg_temp.org(26), interval '1 day', 'one hour outage') is not null;
select pg_temp.at('2026-01-06 10:00+05:30');
select pg_temp.payu_back('dispute_lost', (select val from mt where key = 'f4'));
select is(pg_temp.access(pg_temp.org(26)), row('active'::subscription_status, '2026-01-07 10:00+05:30'::timestamptz, 'pro')::text,
  'the chargeback of the year takes the year back; only the one-day extension stands');

-- -------------------------------------------------------------------------------------------------
-- Refunds the provider reports, and what operators may resolve
-- -------------------------------------------------------------------------------------------------

-- An action never sent cannot be resolved as refunded at the provider.
select pg_temp.at('2026-01-01 10:00+05:30');
insert into mt values ('r1p', pg_temp.payu_paid(pg_temp.org(27), 'mt_basic_m'));
insert into mt values ('r1a', billing.operator_refund((pg_temp.captured((select val from mt where key = 'r1p'))).id, null, 'asked')::text);
select throws_ok(format('select billing.operator_resolve_refund(%L::uuid, true, %L, %L)',
                        (select val from mt where key = 'r1a'), 'saw it', 'made_up_1'), '55000', null,
  'an action never attempted cannot be resolved as refunded at the provider');

-- A resolve(false) that was wrong: the refund PayU made is recorded when it is reported, though a
-- second refund of the payment is in flight; that second one then fails at PayU.
insert into mt values ('r2p', pg_temp.payu_paid(pg_temp.org(28), 'mt_basic_m'));
insert into mt values ('r2a', billing.operator_refund((pg_temp.captured((select val from mt where key = 'r2p'))).id, null, 'asked')::text);
select count(*) from billing.claim_provider_actions(1000);
select billing.complete_provider_action((select val from mt where key = 'r2a')::uuid, 'retry', null, 'timeout');
select billing.operator_resolve_refund((select val from mt where key = 'r2a')::uuid, false, 'not in the dashboard yet');
insert into mt values ('r2b', billing.operator_refund((pg_temp.captured((select val from mt where key = 'r2p'))).id, null, 'again')::text);
select is(billing.apply_payment_event(jsonb_build_object('provider', 'payu', 'event_id', 'rv_late_r2a', 'event_type', 'refund',
  'kind', 'refund_processed', 'provider_payment_id', (select val from mt where key = 'r2p'), 'provider_refund_id', '98765',
  'amount_paise', (pg_temp.captured((select val from mt where key = 'r2p'))).amount_cents, 'currency', 'INR',
  'payload', jsonb_build_object('token', (select payload ->> 'refund_id' from billing.provider_actions where id = (select val from mt where key = 'r2a')::uuid))))
  ->> 'result', 'applied', 'a refund PayU reports is recorded though another refund of the payment is in flight');
select is(billing.refundable_paise(pg_temp.captured((select val from mt where key = 'r2p'))), 0::bigint,
  'nothing is left for an operator to queue');
select count(*) from billing.claim_provider_actions(1000);
select billing.complete_provider_action((select val from mt where key = 'r2b')::uuid, 'failed', null, 'PayU: amount exceeds what can be refunded');
select is(billing.refundable_paise(pg_temp.captured((select val from mt where key = 'r2p'))), 0::bigint,
  'the refund PayU made is in the books (nothing left to refund) after the second one fails, not a mismatch nobody revisits');

-- Reconciliation asks again about a refund recorded as a mismatch: it is not a known refund.
insert into mt values ('r3p', pg_temp.payu_paid(pg_temp.org(29), 'mt_basic_m'));
select is(billing.apply_payment_event(jsonb_build_object('provider', 'payu', 'event_id', 'rv_mm', 'event_type', 'refund',
  'kind', 'refund_processed', 'provider_payment_id', (select val from mt where key = 'r3p'), 'provider_refund_id', 'rf_mm',
  'amount_paise', 100, 'currency', 'USD')) ->> 'result',
  'mismatch', 'a refund in another currency is a mismatch');
select is((select known_refund_ids from billing.reconcile_due_refunds(1000) d where d.provider_payment_id = (select val from mt where key = 'r3p')),
  '{}'::text[], 'reconciliation does not count it as a known refund: it asks about it again');

select * from finish();
rollback;
