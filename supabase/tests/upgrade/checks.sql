-- Run by the upgrade check of npm test (scripts/lib/upgrade.mjs) on the database built from the
-- previous release, supabase/seed.sql and supabase/tests/upgrade/fixtures.sql, once the newer
-- migrations are applied: one row (check, ok, detail) per check; a check fails when ok is not true.
-- First a change the newer release's history trigger must log (checked last): organization 1
-- cancels at the period end.
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
         (select count(*) from public.billing_plans) as plans
)
select 'the fixture rows are all there (5 organizations and subscriptions, 8 history rows before the upgrade, 6 orders, 5 payments, '
         || '2 refund actions, 2 notifications, 1 webhook delivery) and the seed''s 5 plans',
       (orgs, subs, history, orders, expired, payments, refunds, notifications, webhooks, plans)
         = (5, 5, 8, 6, 2, 5, 2, 2, 1, 5),
       format('organizations %s, subscriptions %s, history %s, orders %s (expired %s), payments %s, refund actions %s, '
              || 'notifications %s, webhooks %s, plans %s',
              orgs, subs, history, orders, expired, payments, refunds, notifications, webhooks, plans)
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
-- the MRR then (organizations 1 and 2 on basic_monthly, 4 past due on basic_yearly, half up of
-- 499000 / 12 = 41583; 3 canceled that day, 5 trialing).
select 'revenue_summary computes a day of the fixture rows (MRR 49900 + 99900 + 41583, a refund of 117882)',
       (x ->> 'mrr')::bigint = 49900 + 99900 + 41583 and (x ->> 'refunds')::bigint = 117882,
       x::text
from (select billing.revenue_summary(date '2026-11-14') as x) s
union all
select 'a change to a subscription from the previous release is logged by the history trigger',
       (select count(*) from public.subscription_history where subscription_id = 'f1000000-0000-4000-8000-000000000001') = 2,
       (select string_agg(action, ', ' order by created_at) from public.subscription_history
        where subscription_id = 'f1000000-0000-4000-8000-000000000001');
