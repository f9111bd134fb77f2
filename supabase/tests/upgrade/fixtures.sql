-- Rows loaded on the previous release (the migrations up to LAST_RELEASED_MIGRATION of
-- scripts/lib/upgrade.mjs, then supabase/seed.sql) before the newer migrations are applied, by
-- the upgrade check of npm test. They touch what the newer migrations change: subscriptions with
-- their history (written as the previous release wrote it, before the history trigger), captured
-- and refunded payments, orders paid and expired, refund actions pending and done, notifications
-- sent and waiting, a webhook delivery billing ignored. Written in that release's columns only;
-- supabase/tests/upgrade/checks.sql finds them after the upgrade.
-- Ids: organization n is 'f0000000-0000-4000-8000-00000000000n', its subscription 'f1...n'.
\set ON_ERROR_STOP on
begin;

insert into public.organizations (id, name, billing_name, billing_email, state_code, timezone)
select ('f0000000-0000-4000-8000-00000000000' || n)::uuid, 'Upgrade fixture ' || n, 'Upgrade fixture ' || n || ' Pvt Ltd',
       'billing' || n || '@upgrade.example', '29', 'Asia/Kolkata'
from generate_series(1, 5) n;

-- 1 active monthly, 2 upgraded basic -> pro, 3 canceled, 4 past due yearly, 5 trialing.
create temp table fx_sub on commit drop as
select n, ('f0000000-0000-4000-8000-00000000000' || n)::uuid as org, ('f1000000-0000-4000-8000-00000000000' || n)::uuid as id,
       (select id from public.billing_plans where code = c.first_plan) as first_plan,
       (select id from public.billing_plans where code = c.plan) as plan,
       c.status::public.subscription_status as status,
       timestamptz '2026-10-01 10:00+05:30' + (n || ' days')::interval as started
from (values (1, 'basic_monthly', 'basic_monthly', 'active'), (2, 'basic_monthly', 'pro_monthly', 'active'),
             (3, 'pro_monthly', 'pro_monthly', 'canceled'), (4, 'basic_yearly', 'basic_yearly', 'past_due'),
             (5, 'pro_monthly', 'pro_monthly', 'trialing')) c(n, first_plan, plan, status);

insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end, trial_end,
                                  canceled_at, ended_at, provider, provider_subscription_id, period_anchor)
select s.id, s.org, s.plan, s.status, s.started + interval '1 month', s.started + interval '2 months',
       case when s.status = 'trialing' then s.started + interval '2 months' end,
       case when s.status = 'canceled' then s.started + interval '40 days' end,
       case when s.status = 'canceled' then s.started + interval '40 days' end,
       case when s.n = 2 then 'razorpay' else 'payu' end::public.payment_provider,
       case when s.n = 2 then 'sub_upgrade_fixture_2' end, s.started
from fx_sub s;

-- The history the previous release wrote (billing.log_subscription_change): a start, then the change.
insert into public.subscription_history (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status,
                                         new_status, actor_kind, reason, effective_at)
select s.org, s.id, 'activated', null, s.first_plan, null::public.subscription_status,
       case when s.status = 'trialing' then 'trialing' else 'active' end::public.subscription_status, 'system', 'fixture start',
       s.started
from fx_sub s
union all
select s.org, s.id, case s.n when 2 then 'upgraded' when 3 then 'canceled' when 4 then 'past_due' end, s.first_plan, s.plan,
       'active'::public.subscription_status, s.status, case s.n when 2 then 'user' else 'system' end, 'fixture change', s.started + interval '40 days'
from fx_sub s where s.n in (2, 3, 4);

-- Orders: paid ones for the first period, and two that expired unpaid (the closed orders the
-- reconciliation of closed orders looks at).
insert into public.orders (id, organization_id, plan_id, subscription_id, provider, receipt, kind, amount_cents, status, paid_at,
                           expires_at, created_at)
select ('f2000000-0000-4000-8000-00000000000' || s.n)::uuid, s.org, s.first_plan, s.id,
       case when s.n = 2 then 'razorpay' else 'payu' end::public.payment_provider, 'upgrade_fx_paid_' || s.n, 'new'::public.order_kind,
       (select p.price_cents from public.billing_plans p where p.id = s.first_plan), 'paid'::public.order_status, s.started,
       s.started + interval '1 day', s.started - interval '5 minutes'
from fx_sub s where s.n <> 5
union all
select ('f2100000-0000-4000-8000-00000000000' || s.n)::uuid, s.org, s.plan, s.id, 'payu', 'upgrade_fx_expired_' || s.n,
       'renewal', (select p.price_cents from public.billing_plans p where p.id = s.plan), 'expired', null,
       s.started + interval '31 days', s.started + interval '30 days'
from fx_sub s where s.n in (1, 3);

-- Payments: a capture for each paid order, and a refund of organization 3's.
insert into public.payment_events (id, organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status,
                                   details, occurred_at)
select ('f3000000-0000-4000-8000-00000000000' || s.n)::uuid, s.org, ('f2000000-0000-4000-8000-00000000000' || s.n)::uuid,
       case when s.n = 2 then 'razorpay' else 'payu' end::public.payment_provider, 'pay_upgrade_fx_' || s.n,
       (select o.amount_cents from public.orders o where o.id = ('f2000000-0000-4000-8000-00000000000' || s.n)::uuid), 'INR',
       'captured'::public.payment_status, '{}'::jsonb, s.started
from fx_sub s where s.n <> 5
union all
select 'f3100000-0000-4000-8000-000000000003', s.org, 'f2000000-0000-4000-8000-000000000003', 'payu', 'pay_upgrade_fx_3',
       (select o.amount_cents from public.orders o where o.id = 'f2000000-0000-4000-8000-000000000003'), 'INR', 'refunded',
       '{"refund_id": "rfnd_upgrade_fx_3"}', s.started + interval '41 days'
from fx_sub s where s.n = 3;

-- Refund actions: organization 3's refund done, a second one for organization 1 still waiting.
insert into billing.provider_actions (organization_id, subscription_id, payment_event_id, provider, kind, target, payload,
                                      idempotency_key, state, attempts, result, requested_by, reason, completed_at)
values
  ('f0000000-0000-4000-8000-000000000003', 'f1000000-0000-4000-8000-000000000003', 'f3000000-0000-4000-8000-000000000003',
   'payu', 'refund', '{"payment_id": "pay_upgrade_fx_3"}', '{"amount_paise": 117882}', 'upgrade_fx_refund_3', 'succeeded', 1,
   '{"provider_refund_id": "rfnd_upgrade_fx_3"}', 'operator', 'fixture refund', timestamptz '2026-11-13 10:00+05:30'),
  ('f0000000-0000-4000-8000-000000000001', 'f1000000-0000-4000-8000-000000000001', 'f3000000-0000-4000-8000-000000000001',
   'payu', 'refund', '{"payment_id": "pay_upgrade_fx_1"}', '{"amount_paise": 1000}', 'upgrade_fx_refund_1', 'pending', 0,
   '{}', 'operator', 'fixture partial refund', null);

-- Notifications: one sent, one waiting.
insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key, sent_at)
values
  ('f0000000-0000-4000-8000-000000000001', 'f1000000-0000-4000-8000-000000000001', 'payment_captured', '{}', 'upgrade_fx_captured_1',
   timestamptz '2026-10-02 10:01+05:30'),
  ('f0000000-0000-4000-8000-000000000003', 'f1000000-0000-4000-8000-000000000003', 'subscription_canceled', '{}',
   'upgrade_fx_canceled_3', null);

-- A webhook delivery of an event billing does not act on (the newer release marks such rows).
insert into billing.webhook_events (provider, event_id, event_type, payload, processed_at)
values ('razorpay', 'evt_upgrade_fx_1', 'invoice.paid', '{"kind": "other"}', timestamptz '2026-10-05 10:00+05:30');

commit;
