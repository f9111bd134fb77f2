-- Rows loaded on the previous release (the migrations up to LAST_RELEASED_MIGRATION of
-- scripts/lib/upgrade.mjs) before the newer migrations are applied (the current seed comes after
-- them: it may name what the release lacks, so the plans here are the fixture's own), by
-- the upgrade check of npm test. They touch the tables later migrations are likely to change:
-- subscriptions with their history (written by that release's history trigger, labelled by
-- billing.set_change_context), orders paid and expired, captured and refunded payments, an
-- invoice, refund actions pending and done, notifications sent and waiting, usage counters and
-- metered events, AI requests settled and pending, a webhook delivery billing ignored. Written in
-- that release's columns only; supabase/tests/upgrade/checks.sql finds them after the upgrade,
-- and the pgTAP suite then runs over them. When a release is cut, load this file on it
-- (npm test does) and fix what it no longer accepts.
-- Ids: organization n is 'f0000000-0000-4000-8000-00000000000n', its subscription 'f1...n'.
\set ON_ERROR_STOP on
begin;

-- The seller, as a deployed project has set it (invoices need it).
update public.billing_settings
set seller_legal_name = 'Upgrade Fixture Private Limited', seller_state_code = '29',
    seller_gstin = '29AAGCU1234K1Z' || billing.gstin_check_char('29AAGCU1234K1Z');

insert into public.billing_plans (code, name, tier, interval, price_cents, features) values
  ('upgrade_basic_monthly', 'Upgrade Basic (monthly)', 'basic', 'month', 49900, '{"ai_prompts_per_day": 100, "max_members": 3}'),
  ('upgrade_pro_monthly', 'Upgrade Pro (monthly)', 'pro', 'month', 99900, '{"ai_prompts_per_day": 500, "max_members": 20}'),
  ('upgrade_basic_yearly', 'Upgrade Basic (yearly)', 'basic', 'year', 499000, '{"ai_prompts_per_day": 100, "max_members": 3}');

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
from (values (1, 'upgrade_basic_monthly', 'upgrade_basic_monthly', 'active'),
             (2, 'upgrade_basic_monthly', 'upgrade_pro_monthly', 'active'),
             (3, 'upgrade_pro_monthly', 'upgrade_pro_monthly', 'canceled'),
             (4, 'upgrade_basic_yearly', 'upgrade_basic_yearly', 'past_due'),
             (5, 'upgrade_pro_monthly', 'upgrade_pro_monthly', 'trialing')) c(n, first_plan, plan, status);

-- Each subscription starts (one history row), and 2, 3 and 4 change 40 days later (one more), in
-- the release's own way: the history trigger writes the rows, dated and labelled by the context.
do $$
declare
  s record;
begin
  for s in select * from fx_sub order by n loop
    perform billing.set_change_context('activated', 'system', null, 'fixture start', '{}', s.started);
    insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end,
                                      trial_end, provider, provider_subscription_id, period_anchor)
    values (s.id, s.org, s.first_plan, case when s.status = 'trialing' then 'trialing' else 'active' end::public.subscription_status,
            s.started + interval '1 month', s.started + interval '2 months',
            case when s.status = 'trialing' then s.started + interval '2 months' end,
            case when s.n = 2 then 'razorpay' else 'payu' end::public.payment_provider,
            case when s.n = 2 then 'sub_upgrade_fixture_2' end, s.started);
    if s.n in (2, 3, 4) then
      perform billing.set_change_context(case s.n when 2 then 'upgraded' when 3 then 'canceled' else 'past_due' end,
                                         case s.n when 2 then 'user' else 'system' end, null, 'fixture change', '{}',
                                         s.started + interval '40 days');
      update public.subscriptions
      set plan_id = s.plan, status = s.status,
          canceled_at = case when s.status = 'canceled' then s.started + interval '40 days' end,
          ended_at = case when s.status = 'canceled' then s.started + interval '40 days' end
      where id = s.id;
    end if;
  end loop;
end;
$$;

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

-- An invoice for organization 1's payment (its number from the release's gapless counter).
select billing.issue_invoice('f2000000-0000-4000-8000-000000000001', 'f3000000-0000-4000-8000-000000000001');

-- Usage: the counters of a day and a month for organizations 1 and 2, and the metered events
-- that counted them (one settled, one released).
insert into public.usage_quotas (organization_id, metric, window_unit, window_start, count)
select ('f0000000-0000-4000-8000-00000000000' || n)::uuid, 'ai_prompts', u.unit::public.usage_window, u.start, 3 * n
from generate_series(1, 2) n,
     (values ('day', timestamptz '2026-11-10 00:00+05:30'), ('month', timestamptz '2026-11-01 00:00+05:30')) u(unit, start);
insert into public.usage_metrics (organization_id, metric, amount, request_id, occurred_at, window_units, state, used,
                                  limit_amount, resets_at)
select ('f0000000-0000-4000-8000-00000000000' || n)::uuid, 'ai_prompts', 3 * n, 'upgrade_fx_usage_' || n,
       timestamptz '2026-11-10 12:00+05:30', '{day,month}', case n when 1 then 'settled' else 'released' end::public.usage_state,
       3 * n, 100, timestamptz '2026-11-11 00:00+05:30'
from generate_series(1, 2) n;

-- AI requests: one completed and settled, one still reserved (pending, to expire).
insert into public.ai_requests (organization_id, request_id, model, status, max_tokens, reserved_tokens, prompt_tokens,
                                completion_tokens, counted_tokens, latency_ms, expires_at, completed_at, created_at)
values
  ('f0000000-0000-4000-8000-000000000001', 'ai_' || repeat('f1', 16), 'llama-3.1-8b-instant', 'completed', 256, 256, 40, 60,
   100, 420, null, timestamptz '2026-11-10 12:00:01+05:30', timestamptz '2026-11-10 12:00+05:30'),
  ('f0000000-0000-4000-8000-000000000002', 'ai_' || repeat('f2', 16), 'llama-3.1-8b-instant', 'pending', 512, 512, null, null,
   null, null, timestamptz '2026-11-10 12:05+05:30', null, timestamptz '2026-11-10 12:00+05:30');

-- A webhook delivery of an event billing does not act on, marked ignored as this release marks it.
insert into billing.webhook_events (provider, event_id, event_type, payload, received_at, processed_at, attempts,
                                    ignored_reason)
values ('razorpay', 'evt_upgrade_fx_1', 'invoice.paid', '{"kind": "other"}', timestamptz '2026-10-05 10:00+05:30',
        timestamptz '2026-10-05 10:00+05:30', 1, 'event type invoice.paid is not one billing acts on');

commit;
