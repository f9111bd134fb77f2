-- Run by the upgrade check of npm test (scripts/lib/upgrade.mjs) on the database built from the
-- previous release, supabase/seed.sql and supabase/tests/upgrade/fixtures.sql, once the newer
-- migrations are applied: one row (check, ok, detail) per check; a check fails when ok is not true.
-- The pgTAP suite runs after it, over the same rows. First a change the history trigger must
-- still log (checked last): organization 1 cancels at the period end.
update public.subscriptions set cancel_at_period_end = true where id = 'f1000000-0000-4000-8000-000000000001';

with fx as (
  select (select count(*) from public.organizations where id::text like 'f0000000-%') as orgs,
         (select count(*) from public.subscriptions where id::text like 'f1000000-%') as subs,
         (select count(*) from public.subscription_history where subscription_id::text like 'f1000000-%'
                                                  and reason like 'fixture %') as history,
         (select count(*) from public.orders where receipt like 'upgrade_fx_%') as orders,
         (select count(*) from public.orders where receipt like 'upgrade_fx_expired_%' and status = 'expired') as expired,
         (select count(*) from public.payment_events where provider_payment_id like 'pay_upgrade_fx_%') as payments,
         (select count(*) from billing.provider_actions where idempotency_key like 'upgrade_fx_refund_%') as refunds,
         (select count(*) from public.notifications where dedupe_key like 'upgrade_fx_%') as notifications,
         (select count(*) from billing.webhook_events where event_id = 'evt_upgrade_fx_1') as webhooks,
         (select count(*) from public.invoices where order_id = 'f2000000-0000-4000-8000-000000000001') as invoices,
         (select count(*) from public.usage_quotas where organization_id::text like 'f0000000-%') as quotas,
         (select count(*) from public.usage_metrics where request_id like 'upgrade_fx_usage_%') as metered,
         (select count(*) from public.ai_requests where organization_id::text like 'f0000000-%') as ai,
         (select count(*) from public.billing_plans where code like 'upgrade_%') as plans
)
select 'the fixture rows are all there (5 organizations and subscriptions, 8 history rows before the upgrade, 6 orders, 5 payments, '
         || '2 refund actions, 2 notifications, 1 webhook delivery, 1 invoice, 4 usage counters, 2 metered events, '
         || '2 AI requests, 3 plans)',
       (orgs, subs, history, orders, expired, payments, refunds, notifications, webhooks, invoices, quotas, metered, ai, plans)
         = (5, 5, 8, 6, 2, 5, 2, 2, 1, 1, 4, 2, 2, 3),
       format('organizations %s, subscriptions %s, history %s, orders %s (expired %s), payments %s, refund actions %s, '
              || 'notifications %s, webhooks %s, invoices %s, usage counters %s, metered events %s, AI requests %s, plans %s',
              orgs, subs, history, orders, expired, payments, refunds, notifications, webhooks, invoices, quotas, metered, ai,
              plans)
from fx
union all
select 'each fixture subscription has a history row, and its latest one leaves it in its own plan and status',
       count(*) = 5 and bool_and(st.plan_id = s.plan_id and st.status = s.status),
       coalesce(string_agg(s.id || ': ' || coalesce(st.status::text, 'no history'), ', ')
                  filter (where st.plan_id is distinct from s.plan_id or st.status is distinct from s.status), '')
from public.subscriptions s
left join lateral (select v.plan_id, v.status from billing.subscription_states v where v.subscription_id = s.id
                   order by v.effective_at desc, v.created_at desc, v.id desc limit 1) st on true
where s.id::text like 'f1000000-%'
union all
-- The newer code runs on the older rows: the revenue of the day organization 3 was refunded and
-- the MRR then (organizations 1 and 2 on the monthly plans, 4 past due on the yearly one, half up of
-- 499000 / 12 = 41583; 3 canceled that day, 5 trialing).
select 'revenue_summary computes a day of the fixture rows (MRR 49900 + 99900 + 41583, a refund of 117882)',
       (x ->> 'mrr')::bigint = 49900 + 99900 + 41583 and (x ->> 'refunds')::bigint = 117882,
       x::text
from (select billing.revenue_summary(date '2026-11-14') as x) s
union all
select 'the invoice keeps its number, and its total is the order''s amount',
       i.invoice_number ~ '^[A-Z0-9/-]{1,16}$' and i.total_cents = o.amount_cents,
       format('%s: total %s, order %s', i.invoice_number, i.total_cents, o.amount_cents)
from public.invoices i join public.orders o on o.id = i.order_id
where i.order_id = 'f2000000-0000-4000-8000-000000000001'
union all
-- pg_cron runs in this database: ai-release-stale-reservations may have expired the pending one.
select 'usage counters and AI requests keep their figures (counters 3 and 6, 100 tokens counted, 512 reserved)',
       q.counts = '3,3,6,6' and a.requests in ('completed:100:256,pending:-:512', 'completed:100:256,expired:512:512'),
       format('counters %s, AI requests %s', q.counts, a.requests)
from (select string_agg(count::text, ',' order by organization_id, window_unit) as counts from public.usage_quotas
      where organization_id::text like 'f0000000-%') q,
     (select string_agg(status || ':' || coalesce(counted_tokens::text, '-') || ':' || reserved_tokens, ',' order by request_id)
               as requests
      from public.ai_requests where organization_id::text like 'f0000000-%') a
union all
select 'the webhook delivery the previous release marked ignored still says why',
       coalesce(ignored_reason like '%invoice.paid%', false),
       coalesce(ignored_reason, 'no ignored_reason')
from billing.webhook_events where event_id = 'evt_upgrade_fx_1'
union all
-- Counted by action: pg_cron runs in this database on real time, and once the real date is past the
-- fixture's period end (December 2026) its job_expire adds past_due and expired rows of its own.
select 'a change to a subscription from the previous release is logged by the history trigger',
       (select count(*) filter (where action = 'cancel_scheduled') = 1 and count(*) filter (where action = 'activated') = 1
        from public.subscription_history where subscription_id = 'f1000000-0000-4000-8000-000000000001'),
       (select string_agg(action, ', ' order by created_at) from public.subscription_history
        where subscription_id = 'f1000000-0000-4000-8000-000000000001')
union all
select 'the settings row the previous release kept gains Stripe''s currencies and keeps PayU''s and Razorpay''s',
       provider_currencies = '{"payu": ["INR"], "razorpay": ["INR"], "stripe": ["INR", "USD", "EUR", "GBP"]}'::jsonb,
       provider_currencies::text
from public.billing_settings where id;
