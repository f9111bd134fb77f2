-- Usage and monitoring (20261201001000_usage_and_monitoring): public.get_usage for members and
-- service_role; quota_threshold notifications at 75/90/100 % once per window and threshold, the
-- next window anew (pinned test clock); the signature failure counter; each monitoring view shows
-- the case built here and nothing for a clean organization; the frontend's queries (the
-- subscription with its plan through the computed relationship, payment history with invoices,
-- get_usage) as a signed-in member. (500 concurrent calls: tests/usage-alerts.test.ts.)
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
select tests.relax_owner_limit();
select plan(68);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into auth.users (id, email) values
  ('a1700000-0000-4000-8000-000000000001', 'usage-owner@test.local'),
  ('a1700000-0000-4000-8000-000000000002', 'usage-member@test.local'),
  ('a1700000-0000-4000-8000-000000000003', 'usage-stranger@test.local');

insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('b1700000-0000-4000-8000-000000000001', 'um_pro', 'UM Pro', 'pro', 'month', 99900,
   '{"bursts_per_minute": 1000, "bursts_per_day": 20, "bursts_per_month": 1000, "uploads_per_day": null,
     "ai_requests_per_minute": 10, "max_members": 10, "api_access": true}');

-- Organization a1: the one under test; a2: clean (never used, nothing wrong); a3: the stranger's.
insert into public.organizations (id, name, timezone) values
  ('c1700000-0000-4000-8000-0000000000a1', 'UM busy', 'Asia/Kolkata'),
  ('c1700000-0000-4000-8000-0000000000a2', 'UM clean', 'Asia/Kolkata'),
  ('c1700000-0000-4000-8000-0000000000a3', 'UM other', 'Asia/Kolkata');
insert into public.organization_members (organization_id, user_id, role) values
  ('c1700000-0000-4000-8000-0000000000a1', 'a1700000-0000-4000-8000-000000000001', 'owner'),
  ('c1700000-0000-4000-8000-0000000000a1', 'a1700000-0000-4000-8000-000000000002', 'member'),
  ('c1700000-0000-4000-8000-0000000000a2', 'a1700000-0000-4000-8000-000000000001', 'owner'),
  ('c1700000-0000-4000-8000-0000000000a3', 'a1700000-0000-4000-8000-000000000003', 'owner');
insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end) values
  ('d1700000-0000-4000-8000-000000000001', 'c1700000-0000-4000-8000-0000000000a1', 'b1700000-0000-4000-8000-000000000001',
   'active', '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30'),
  ('d1700000-0000-4000-8000-000000000002', 'c1700000-0000-4000-8000-0000000000a2', 'b1700000-0000-4000-8000-000000000001',
   'active', '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30'),
  ('d1700000-0000-4000-8000-000000000003', 'c1700000-0000-4000-8000-0000000000a3', 'b1700000-0000-4000-8000-000000000001',
   'active', '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30');

create function pg_temp.alerts(p_org text) returns text language sql as $$
  select coalesce(string_agg((n.payload ->> 'window') || ':' || (n.payload ->> 'threshold'), ','
                             order by n.payload ->> 'window_start', (n.payload ->> 'threshold')::int), '')
  from public.notifications n
  where n.organization_id = ('c1700000-0000-4000-8000-0000000000' || p_org)::uuid and n.kind = 'quota_threshold' $$;

-- get_usage ----------------------------------------------------------------------------------------

select is((select count(*)::int from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 14, null)
           where allowed), 1, 'fixture: 14 bursts counted (70 % of the day)');

select tests.as_user('a1700000-0000-4000-8000-000000000002');
select is(
  (select string_agg(metric || '/' || window_unit || '/' || scope || '/' || used || '/' || coalesce(limit_amount::text, '-') || '/'
                     || coalesce(remaining::text, '-') || '/' || coalesce(percent::text, '-'), ' ' order by metric, window_unit)
   from public.get_usage('c1700000-0000-4000-8000-0000000000a1')),
  'ai_requests/minute/user/0/10/10/0.0 bursts/minute/organization/14/1000/986/1.4 bursts/day/organization/14/20/6/70.0 bursts/month/organization/14/1000/986/1.4 uploads/day/organization/0/-/-/-',
  'a member sees every metered limit: used, limit, remaining, percent (1 decimal), unlimited as null, the per-user AI limit as their own');
select is((select array[window_start, resets_at] from public.get_usage('c1700000-0000-4000-8000-0000000000a1')
           where metric = 'bursts' and window_unit = 'day'),
          array['2026-12-10 00:00+05:30', '2026-12-11 00:00+05:30']::timestamptz[],
          'the day window starts and resets at midnight on the organization''s clock');
select is((select resets_at from public.get_usage('c1700000-0000-4000-8000-0000000000a1') where metric = 'bursts' and window_unit = 'month'),
          '2027-01-01 00:00+05:30'::timestamptz, 'the month window resets on the 1st, local time');
select throws_ok($$select * from public.get_usage('c1700000-0000-4000-8000-0000000000a3')$$, '42501',
                 'not a member of organization c1700000-0000-4000-8000-0000000000a3',
                 'another organization: the siblings'' error');
select throws_ok($$select * from public.get_usage('c1700000-0000-4000-8000-0000000000ff')$$, '42501',
                 'not a member of organization c1700000-0000-4000-8000-0000000000ff',
                 'an organization that does not exist: the same error, nothing leaks');
select tests.as_role('anon');
select throws_ok($$select * from public.get_usage('c1700000-0000-4000-8000-0000000000a1')$$, '42501', null,
                 'anon cannot call get_usage');
select tests.as_role('service_role');
select is((select string_agg(metric || '/' || window_unit || '/' || used, ' ' order by metric, window_unit)
           from public.get_usage('c1700000-0000-4000-8000-0000000000a1')),
          'bursts/minute/14 bursts/day/14 bursts/month/14 uploads/day/0',
          'service_role sees the organization''s limits (no per-user row: it is nobody)');
select tests.as_postgres();
select is((select percent from public.get_usage('c1700000-0000-4000-8000-0000000000a2') where metric = 'bursts' and window_unit = 'day'),
          0.0, 'a clean organization: 0 used, 0.0 %');
select is((select used from public.get_usage('c1700000-0000-4000-8000-0000000000a1') where metric = 'bursts' and window_unit = 'minute'),
          14::bigint, 'the minute window counted too');
select ok(not has_function_privilege('anon', 'billing.get_usage(uuid)', 'execute')
          and not (select prosecdef from pg_proc where oid = 'public.get_usage(uuid)'::regprocedure)
          and (select prosecdef from pg_proc where oid = 'billing.get_usage(uuid)'::regprocedure),
          'public.get_usage is a security invoker wrapper over the security definer billing.get_usage; anon executes neither');

-- quota alerts -------------------------------------------------------------------------------------

select is(pg_temp.alerts('a1'), '', '70 % of the day: no alert');
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 1, null)), true, '15th burst');
select is(pg_temp.alerts('a1'), 'day:75', 'the call that reaches 75 % of the day queues one alert');
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 1, null)), true, '16th burst');
select is(pg_temp.alerts('a1'), 'day:75', 'a call past 75 % but below 90 % queues nothing');
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 4, null)), true,
          '4 more: from 80 % to 100 % in one call');
select is(pg_temp.alerts('a1'), 'day:75,day:100', 'a call crossing 90 and 100 at once queues one alert, for 100 %');
select is((select payload from public.notifications where organization_id = 'c1700000-0000-4000-8000-0000000000a1'
             and kind = 'quota_threshold' and payload ->> 'threshold' = '100'),
          jsonb_build_object('metric', 'bursts', 'window', 'day', 'threshold', 100, 'used', 20, 'limit', 20,
                             'window_start', '2026-12-10 00:00+05:30'::timestamptz, 'resets_at', '2026-12-11 00:00+05:30'::timestamptz,
                             'plan_code', 'um_pro'),
          'the payload: metric, window, threshold, used, limit, window start, reset, plan');
select is((select dedupe_key from public.notifications where organization_id = 'c1700000-0000-4000-8000-0000000000a1'
             and kind = 'quota_threshold' and payload ->> 'threshold' = '75'),
          'quota_threshold:c1700000-0000-4000-8000-0000000000a1:bursts:day:'
            || extract(epoch from '2026-12-10 00:00+05:30'::timestamptz)::bigint || ':75',
          'deduplicated per organization, metric, window, window start and threshold');
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 1, null)), false,
          'the 21st burst is refused');
select is(pg_temp.alerts('a1'), 'day:75,day:100', 'a refused call queues nothing');
select is((select count(*)::int from public.notifications where organization_id = 'c1700000-0000-4000-8000-0000000000a1'
             and kind = 'quota_threshold' and payload ->> 'window' in ('minute', 'month')), 0,
          'minute and month windows far from their limits: nothing');

-- Usage that falls back (a reservation settled lower) and rises again does not alert twice.
select billing.release_usage('c1700000-0000-4000-8000-0000000000a1', 'x-none');
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a2', 'bursts', 16, 'um-r1')), true,
          'clean-org fixture for settle: 16 of 20 (80 %)');
select is(pg_temp.alerts('a2'), 'day:75', 'reaching 80 % alerts 75');
select is((select allowed from billing.settle_usage('c1700000-0000-4000-8000-0000000000a2', 'um-r1', 10)), true,
          'settled to 10 (50 %)');
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a2', 'bursts', 6, null)), true,
          'and back to 80 %');
select is(pg_temp.alerts('a2'), 'day:75', 'crossing 75 % again in the same window: still one alert');
select is((select allowed from billing.settle_usage('c1700000-0000-4000-8000-0000000000a2', 'um-r1', 13)), true,
          'a settlement higher than the reservation (10 to 13: 95 %) counts like an increment');
select is(pg_temp.alerts('a2'), 'day:75,day:90', 'and alerts 90');

-- The next window alerts anew.
set local billing.now = '2026-12-11 09:00:00+05:30';
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 15, null)), true,
          'the next day: 15 bursts (75 %) in one call');
select is(pg_temp.alerts('a1'), 'day:75,day:100,day:75', 'the new day window queues its own 75 % alert');

-- Settings: thresholds and windows.
update public.billing_settings set quota_alert_thresholds = '{90,95}', quota_alert_windows = '{month}';
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 3, null)), true,
          'the day to 90 %');
select is(pg_temp.alerts('a1'), 'day:75,day:100,day:75', 'with alerts for month windows only, the day crossing 90 % queues nothing');
update public.billing_settings set quota_alert_windows = '{day}';
select is((select allowed from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 1, null)), true,
          'the day to 95 %');
select is(pg_temp.alerts('a1'), 'day:75,day:100,day:75,day:95', 'with thresholds {90,95} on day windows: 95 % alerts');
select throws_ok($$update public.billing_settings set quota_alert_thresholds = '{0,101}'$$, '23514', null,
                 'a threshold outside 1..100 is refused');
update public.billing_settings set quota_alert_thresholds = '{}';
select is((select count(*)::int from public.increment_usage('c1700000-0000-4000-8000-0000000000a1', 'bursts', 1, null) where allowed),
          1, 'with no thresholds the call still counts (the day full)');
select is(pg_temp.alerts('a1'), 'day:75,day:100,day:75,day:95', 'and queues nothing');
update public.billing_settings set quota_alert_thresholds = '{75,90,100}', quota_alert_windows = '{day,month}';

-- The AI gateway's per-user request counter never alerts (a person's rate limit, not the quota).
select is(billing.queue_quota_alerts('c1700000-0000-4000-8000-0000000000a1', billing.ai_rate_metric('a1700000-0000-4000-8000-000000000001'),
                                     'day', billing.now(), billing.now() + interval '1 day', 0, 10, 10), 0,
          'a per-user AI request counter queues nothing');

-- The email's kind has a template and goes to the billing audience.
select is(billing.notification_audience('quota_threshold'), 'billing', 'quota_threshold goes to the billing email, else owners and admins');

-- signature failures -------------------------------------------------------------------------------

select is(billing.record_signature_failure('payu') and billing.record_signature_failure('payu'), true, 'two PayU signature failures counted');
select is(billing.record_signature_failure('nope'), false, 'an unknown provider name is not counted');
select throws_ok($$select billing.record_signature_failure('payu', 0)$$, '22023', null, 'a count below 1 is refused');
select is((select count from billing.signature_failures_hourly where provider = 'payu'
             and hour = date_trunc('hour', billing.now(), 'UTC')), 2::bigint,
          'signature_failures_hourly: 2 for PayU this hour');
select is((select count(*)::int from billing.signature_failures_hourly where provider = 'razorpay'), 0, 'none for Razorpay');

-- monitoring views ---------------------------------------------------------------------------------

insert into billing.webhook_events (provider, event_id, event_type, payload, received_at, processed_at, attempts, last_error) values
  ('razorpay', 'evt_um_bad', 'payment.captured',
   '{"kind": "payment_captured", "provider_payment_id": "pay_um_lost", "amount_paise": 99900, "currency": "INR"}',
   billing.now(), billing.now(), 1, 'no order matches razorpay event evt_um_bad'),
  ('razorpay', 'evt_um_ok', 'payment.captured', '{"kind": "payment_captured", "provider_payment_id": "pay_um_ok"}',
   billing.now(), billing.now(), 1, null);
select is((select string_agg(event_id, ',') from billing.failed_deliveries where event_id like 'evt_um_%'), 'evt_um_bad',
          'failed_deliveries: the event recorded with an error, not the one applied');

insert into public.orders (id, organization_id, plan_id, provider, amount_cents, status, created_at) values
  ('e1700000-0000-4000-8000-000000000001', 'c1700000-0000-4000-8000-0000000000a1', 'b1700000-0000-4000-8000-000000000001',
   'payu', 117882, 'pending', billing.now() - interval '2 hours'),
  ('e1700000-0000-4000-8000-000000000002', 'c1700000-0000-4000-8000-0000000000a1', 'b1700000-0000-4000-8000-000000000001',
   'payu', 117882, 'pending', billing.now() - interval '1 minute');
select billing.record_payment_event('c1700000-0000-4000-8000-0000000000a1', 'e1700000-0000-4000-8000-000000000001', 'payu',
  'pay_um_refund', 117882, 'INR', 'captured', null, null, '{"not_applied": "order already paid: refund the extra payment"}',
  billing.now(), true);
select billing.record_payment_event('c1700000-0000-4000-8000-0000000000a1', 'e1700000-0000-4000-8000-000000000001', 'payu',
  'pay_um_mismatch', 100, 'INR', 'mismatch', null, 'amount mismatch for order x: expected 117882 INR, got 100 INR');
select is((select string_agg(problem || ':' || provider_payment_id, ',' order by problem)
           from billing.unapplied_payments where organization_id = 'c1700000-0000-4000-8000-0000000000a1' or provider_payment_id = 'pay_um_lost'),
          'mismatch:pay_um_mismatch,needs_refund:pay_um_refund,unknown_order:pay_um_lost',
          'unapplied_payments: needs_refund, mismatch and a capture no order matches');
select is((select detail from billing.unapplied_payments where provider_payment_id = 'pay_um_refund'),
          'order already paid: refund the extra payment', 'with what was not applied');
select billing.record_payment_event('c1700000-0000-4000-8000-0000000000a1', 'e1700000-0000-4000-8000-000000000001', 'payu',
  'pay_um_refund', 117882, 'INR', 'refunded', null, null, '{"refund_id": "rfnd_um_1"}');
select is((select count(*)::int from billing.unapplied_payments where provider_payment_id = 'pay_um_refund'), 0,
          'refunded in full: no longer listed');

select is((select string_agg(order_id::text, ',') from billing.overdue_orders where organization_id = 'c1700000-0000-4000-8000-0000000000a1'),
          'e1700000-0000-4000-8000-000000000001', 'overdue_orders: the order pending for 2 hours, not the one a minute old');

insert into billing.job_runs (job_name, as_of, batch_limit, started_at, finished_at, rows_affected, error) values
  ('um-test-job', billing.now(), 10, clock_timestamp() - interval '2 hours', clock_timestamp() - interval '2 hours', 3, null),
  ('um-test-job', billing.now(), 10, clock_timestamp() - interval '1 hour', clock_timestamp() - interval '1 hour', null, 'XX000: boom'),
  ('um-test-job', billing.now(), 10, clock_timestamp() - interval '30 minutes', clock_timestamp() - interval '30 minutes', null, 'XX000: boom again'),
  ('um-stuck-job', billing.now(), 10, clock_timestamp() - interval '1 hour', null, null, null),
  ('um-fine-job', billing.now(), 10, clock_timestamp() - interval '1 hour', clock_timestamp() - interval '1 hour', 0, null);
select is((select string_agg(job_name || ':' || problem || ':' || failed_runs, ',' order by job_name)
           from billing.job_problems where job_name like 'um-%'),
          'um-stuck-job:stuck:0,um-test-job:failing:2', 'job_problems: the failing job (2 failures since its last success) and the stuck one');

insert into public.notifications (organization_id, kind, payload, dedupe_key, created_at, attempts, failed_at, last_error) values
  ('c1700000-0000-4000-8000-0000000000a1', 'payment_failed', '{}', 'um-failed-1', billing.now(), 1, billing.now(), 'no recipient');
select is((select string_agg(kind || ':' || problem, ',') from billing.notification_problems
           where organization_id = 'c1700000-0000-4000-8000-0000000000a1' and problem <> 'unsent'),
          'payment_failed:failed', 'notification_problems: the failed notification');
select is((select count(*)::int from billing.notification_problems
           where organization_id = 'c1700000-0000-4000-8000-0000000000a1' and problem = 'unsent'), 2,
          'and yesterday''s unsent quota alerts, not the fresh ones');
set local billing.now = '2026-12-11 10:00:00+05:30';
select is((select count(*)::int from billing.notification_problems
           where organization_id = 'c1700000-0000-4000-8000-0000000000a1' and problem = 'unsent'), 4,
          'an hour later today''s unsent quota alerts are overdue too');

insert into billing.provider_actions (organization_id, provider, kind, idempotency_key, state, attempts, last_error, completed_at) values
  ('c1700000-0000-4000-8000-0000000000a1', 'razorpay', 'cancel', 'um-action-1', 'failed', 8, 'HTTP 400', billing.now()),
  ('c1700000-0000-4000-8000-0000000000a1', 'razorpay', 'refund', 'um-action-2', 'succeeded', 1, null, billing.now());
select is((select string_agg(kind || ':' || problem, ',') from billing.provider_action_problems
           where provider_action_id in (select id from billing.provider_actions where idempotency_key like 'um-action-%')),
          'cancel:failed', 'provider_action_problems: the failed action, not the one that succeeded');

select is((select string_agg(metric || '/' || window_unit || '/' || percent, ',' order by window_unit)
           from billing.quota_pressure where organization_id = 'c1700000-0000-4000-8000-0000000000a1'),
          'bursts/day/100.0', 'quota_pressure: the day window full now (the month at 4 % is not listed)');

select is(
  (select count(*)::int from (
     select organization_id from billing.unapplied_payments union all
     select organization_id from billing.overdue_orders union all
     select organization_id from billing.notification_problems union all
     select organization_id from billing.provider_action_problems union all
     select organization_id from billing.quota_pressure) x
   where x.organization_id = 'c1700000-0000-4000-8000-0000000000a3'),
  0, 'a clean organization appears in none of the organization views');
select is((select count(*)::int from billing.quota_pressure where organization_id = 'c1700000-0000-4000-8000-0000000000a2'), 0,
          'the yesterday-heavy organization is not under pressure today');

select ok((select bool_and(coalesce(btrim(obj_description(c.oid, 'pg_class')), '') <> ''
                           and not has_table_privilege('authenticated', c.oid, 'select')
                           and not has_table_privilege('anon', c.oid, 'select')
                           and has_table_privilege('service_role', c.oid, 'select'))
           from pg_class c
           where c.oid in ('billing.failed_deliveries'::regclass, 'billing.signature_failures_hourly'::regclass,
                           'billing.unapplied_payments'::regclass, 'billing.overdue_orders'::regclass,
                           'billing.job_problems'::regclass, 'billing.notification_problems'::regclass,
                           'billing.provider_action_problems'::regclass, 'billing.quota_pressure'::regclass)),
          'every monitoring view has a comment, and only service_role (not anon or authenticated) reads it');

-- frontend queries ---------------------------------------------------------------------------------

-- How PostgREST resolves `subscriptions?select=*,billing_plans(*)`: relationships keyed by (table,
-- target name), from foreign keys and from computed relationships (a function of one table-row
-- argument returning a table's rows), the computed one prevailing for the same key.
create temp view pg_temp.embeddings as
  select 'fk' as source, c.conname::text as name, c.conrelid::regclass::text as from_table,
         c.confrelid::regclass::text as target, c.confrelid::regclass::text as target_table, false as to_one_declared
  from pg_constraint c where c.contype = 'f'
  union all
  select 'computed', p.proname::text, a.typrelid::regclass::text, p.pronamespace::regnamespace::text || '.' || p.proname,
         r.typrelid::regclass::text, (not p.proretset or p.prorows = 1)
  from pg_proc p
  join pg_type a on a.oid = p.proargtypes[0] and a.typrelid <> 0
  join pg_type r on r.oid = p.prorettype and r.typrelid <> 0
  where p.pronargs = 1;
select is((select count(*)::int from pg_temp.embeddings where source = 'fk' and from_table = 'subscriptions' and target = 'billing_plans'),
          2, 'subscriptions keeps its two foreign keys to billing_plans (plan_id, pending_plan_id): ambiguous on their own');
select is((select count(*)::int from pg_temp.embeddings
           where from_table = 'subscriptions' and target = 'public.billing_plans' and source = 'computed'
             and target_table = 'billing_plans' and to_one_declared),
          1, 'one computed to-one relationship named billing_plans overrides them: billing_plans(*) resolves to one');
select is((select count(*)::int from pg_temp.embeddings
           where from_table = 'subscriptions' and target = 'public.pending_plan' and target_table = 'billing_plans' and to_one_declared),
          1, 'and pending_plan(*) embeds the scheduled downgrade');

-- What `supabase.from('subscriptions').select('*, billing_plans!inner(*)')` runs for a member.
select tests.as_user('a1700000-0000-4000-8000-000000000002');
select is((select string_agg(s.organization_id::text || ':' || p.code, ',')
           from public.subscriptions s
           join lateral public.billing_plans(s) p on true),
          'c1700000-0000-4000-8000-0000000000a1:um_pro', 'a member gets their subscription with its plan, nobody else''s');
select is((select count(*)::int from public.subscriptions s left join lateral public.pending_plan(s) p on true where p.id is not null), 0,
          'no downgrade scheduled: pending_plan is empty');
-- The billing page's payment history: orders with their invoices (and credit notes).
select is((select string_agg(o.id::text || ':' || o.status || ':' || coalesce(i.invoice_number, '-'), ',' order by o.created_at)
           from public.orders o left join public.invoices i on i.order_id = o.id
           where o.organization_id = 'c1700000-0000-4000-8000-0000000000a1'),
          'e1700000-0000-4000-8000-000000000001:pending:-,e1700000-0000-4000-8000-000000000002:pending:-',
          'payment history: the organization''s orders, none invoiced yet');
select is((select count(*)::int from public.payment_events where organization_id = 'c1700000-0000-4000-8000-0000000000a1'), 3,
          'and its payment events');
select tests.as_user('a1700000-0000-4000-8000-000000000003');
select is((select count(*)::int from public.orders where organization_id = 'c1700000-0000-4000-8000-0000000000a1'), 0,
          'a stranger sees no orders of the organization');
select tests.as_postgres();

select * from finish();
rollback;
