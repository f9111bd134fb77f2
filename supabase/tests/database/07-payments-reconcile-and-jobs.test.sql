-- Reconciliation of provider subscriptions and the job schedule: which Razorpay subscriptions
-- billing.reconcile_due_subscriptions returns (a period end passed, a stored provider state that
-- disagrees; not PayU, not ended ones), fairly and with the charges already known; and
-- billing.schedule_jobs() scheduling every pg_cron job once, however often it runs, leaving the
-- HTTP workers to pg_net (absent here). (End to end, with the fake Razorpay:
-- tests/reconcile-subscriptions.test.ts.)
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select plan(15);

-- -------------------------------------------------------------------------------------------------
-- Fixture: four organizations, each with a Razorpay (or PayU) subscription in a different state
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values ('d1300000-0000-4000-8000-000000000001', 'rs-owner@test.local');
insert into public.billing_plans (id, code, name, tier, interval, price_cents, currency, active)
values ('d1300000-0000-4000-8000-0000000000b1', 't_rs_pro', 'RS Pro', 'pro', 'month', 49900, 'INR', true);
insert into public.organizations (id, name) values
  ('d1300000-0000-4000-8000-0000000000a1', 'RS stale by period'),
  ('d1300000-0000-4000-8000-0000000000a2', 'RS stale by state'),
  ('d1300000-0000-4000-8000-0000000000a3', 'RS fresh'),
  ('d1300000-0000-4000-8000-0000000000a4', 'RS payu'),
  ('d1300000-0000-4000-8000-0000000000a5', 'RS ended');
insert into public.subscriptions
  (id, organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id,
   canceled_at, ended_at)
values
  ('d1300000-0000-4000-8000-0000000000c1', 'd1300000-0000-4000-8000-0000000000a1', 'd1300000-0000-4000-8000-0000000000b1',
   'active', now() - interval '32 days', now() - interval '1 day', 'razorpay', 'sub_rs_period', null, null),
  ('d1300000-0000-4000-8000-0000000000c2', 'd1300000-0000-4000-8000-0000000000a2', 'd1300000-0000-4000-8000-0000000000b1',
   'active', now() - interval '1 day', now() + interval '29 days', 'razorpay', 'sub_rs_state', null, null),
  ('d1300000-0000-4000-8000-0000000000c3', 'd1300000-0000-4000-8000-0000000000a3', 'd1300000-0000-4000-8000-0000000000b1',
   'active', now() - interval '1 day', now() + interval '29 days', 'razorpay', 'sub_rs_fresh', null, null),
  ('d1300000-0000-4000-8000-0000000000c4', 'd1300000-0000-4000-8000-0000000000a4', 'd1300000-0000-4000-8000-0000000000b1',
   'active', now() - interval '32 days', now() - interval '1 day', 'payu', null, null, null),
  ('d1300000-0000-4000-8000-0000000000c5', 'd1300000-0000-4000-8000-0000000000a5', 'd1300000-0000-4000-8000-0000000000b1',
   'canceled', now() - interval '32 days', now() - interval '1 day', 'razorpay', 'sub_rs_ended', now() - interval '2 days',
   now() - interval '2 days');
insert into billing.provider_subscription_states (provider, provider_subscription_id, status, status_at, event_id) values
  ('razorpay', 'sub_rs_state', 'cancelled', now(), 'evt_rs_1'),
  ('razorpay', 'sub_rs_fresh', 'active', now(), 'evt_rs_2');
insert into public.orders (id, organization_id, plan_id, subscription_id, provider, provider_subscription_id, kind,
                           amount_cents, currency, status, paid_at, receipt)
values ('d1300000-0000-4000-8000-0000000000d1', 'd1300000-0000-4000-8000-0000000000a1',
        'd1300000-0000-4000-8000-0000000000b1', 'd1300000-0000-4000-8000-0000000000c1', 'razorpay', 'sub_rs_period',
        'new', 49900, 'INR', 'paid', now(), 'ord_rs_period');
insert into public.payment_events (organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status)
values ('d1300000-0000-4000-8000-0000000000a1', 'd1300000-0000-4000-8000-0000000000d1', 'razorpay', 'pay_rs_1', 49900,
        'INR', 'captured');

create temp table due on commit drop as
  select * from billing.reconcile_due_subscriptions(1000) d where d.provider_subscription_id like 'sub_rs_%';

-- -------------------------------------------------------------------------------------------------
-- billing.reconcile_due_subscriptions
-- -------------------------------------------------------------------------------------------------

select is(
  (select jsonb_object_agg(provider_subscription_id, reason) from due),
  '{"sub_rs_period": "period_ended", "sub_rs_state": "state_disagrees"}'::jsonb,
  'a period end passed, or a stored provider state that disagrees: due; fresh, PayU and ended subscriptions: not'
);
select is(
  (select row(receipt, known_payment_ids, provider_status, status)::text from due where provider_subscription_id = 'sub_rs_period'),
  row('ord_rs_period', array['pay_rs_1'], null::text, 'active')::text,
  'each row carries the first order''s receipt and the payments already captured'
);
select is(
  (select provider_status from due where provider_subscription_id = 'sub_rs_state'), 'cancelled',
  'and the provider state we stored'
);
select throws_ok('select * from billing.reconcile_due_subscriptions(0)', '22023', 'p_limit must be between 1 and 1000',
                 'a limit below 1 is refused');
select throws_ok('select * from billing.reconcile_due_subscriptions(null)', '22023', 'p_limit must be between 1 and 1000',
                 'so is a null limit');
select ok(
  not has_function_privilege('authenticated', 'billing.reconcile_due_subscriptions(integer)', 'execute')
  and has_function_privilege('service_role', 'billing.reconcile_due_subscriptions(integer)', 'execute'),
  'service_role only'
);

-- -------------------------------------------------------------------------------------------------
-- billing.schedule_jobs
-- -------------------------------------------------------------------------------------------------

create temp table first_run on commit drop as select * from billing.schedule_jobs();
create temp table second_run on commit drop as select * from billing.schedule_jobs();

select is(
  (select jsonb_object_agg(job, state) from second_run),
  '{"billing-expire": "scheduled", "billing-renewal-reminders": "scheduled", "billing-dunning": "scheduled",
    "billing-purge": "scheduled", "billing-partitions": "scheduled", "billing-analytics-daily": "scheduled", "ai-release-stale-reservations": "scheduled", "ai-purge-cache": "scheduled", "credits-expire": "scheduled",
    "supabill-reconcile-orders": "skipped", "supabill-provider-sync": "skipped",
    "supabill-notifications-send": "skipped", "supabill-ai-batch": "skipped"}'::jsonb,
  'every pg_cron job is scheduled; without pg_net the HTTP workers are skipped'
);
select ok(
  (select bool_and(detail like 'pg_net is not installed%') from second_run where state = 'skipped'),
  'each skipped worker says why and what to do'
);
select is(
  (select count(*)::int from cron.job where jobname in (select job from second_run where state = 'scheduled')),
  (select count(*)::int from billing.jobs where active and command is not null),
  'each scheduled job exists once in cron.job, however often schedule_jobs runs'
);
select is(
  (select count(*)::int from cron.job c join billing.jobs j on j.name = c.jobname
   where j.schedule = c.schedule and j.command = c.command),
  (select count(*)::int from billing.jobs where active and command is not null),
  'cron.job has each SQL job of billing.jobs with its schedule and command'
);
select is(
  (select jsonb_object_agg(jobname, schedule || ' ' || command) from cron.job
   where jobname in ('billing-expire', 'ai-purge-cache')),
  '{"billing-expire": "*/5 * * * * select billing.job_expire()",
    "ai-purge-cache": "17 * * * * select billing.job_ai_purge_cache()"}'::jsonb,
  'with the schedules and commands of the released migrations'
);
select is((select count(*)::int from first_run), (select count(*)::int from second_run), 'both runs say the same');
insert into billing.jobs (name, schedule, command, doc)
values ('test-one-row-job', '0 0 1 1 *', 'select 1', 'a job added as one row');
update billing.jobs set active = false where name = 'ai-purge-cache';
create temp table third_run on commit drop as select * from billing.schedule_jobs();
select is(
  (select jsonb_object_agg(job, state) from third_run where job in ('test-one-row-job', 'ai-purge-cache')),
  '{"test-one-row-job": "scheduled", "ai-purge-cache": "unscheduled"}'::jsonb,
  'adding a job is one row of billing.jobs; an inactive row is unscheduled'
);
select is(
  (select array_agg(jobname::text order by jobname) from cron.job where jobname in ('test-one-row-job', 'ai-purge-cache')),
  array['test-one-row-job']::text[],
  'cron.job follows billing.jobs'
);
select ok(
  not has_function_privilege('service_role', 'billing.schedule_jobs()', 'execute')
  and not has_function_privilege('authenticated', 'billing.schedule_jobs()', 'execute'),
  'schedule_jobs is for postgres only'
);

select * from finish();
rollback;
