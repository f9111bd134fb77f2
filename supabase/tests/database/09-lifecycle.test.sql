-- Subscription lifecycle under the test clock: proration (31-day month, leap February, the last
-- second, half-up rounding, a period paid ahead), upgrade orders paid through apply_payment_event,
-- downgrades at the period end, cancel and resume, trials, Razorpay recurring changes, the jobs
-- (every transition and its boundaries, run twice, run late, batches, a failed run), the
-- notifications outbox, and bad inputs.
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
-- Fixtures make one user owner of 23 organizations (past billing_settings.max_owned_organizations,
-- 3 per user); that limit is tested in 01-tenancy-per-person.
select tests.relax_owner_limit();
select plan(166);

-- -------------------------------------------------------------------------------------------------
-- Fixture and helpers
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values
  ('c3333333-0000-4000-8000-000000000001', 'life-owner@test.local'),
  ('c3333333-0000-4000-8000-000000000002', 'life-admin@test.local'),
  ('c3333333-0000-4000-8000-000000000003', 'life-member@test.local'),
  ('c3333333-0000-4000-8000-000000000004', 'life-stranger@test.local');

create function pg_temp.as_owner() returns void language sql as $$
  select tests.as_user('c3333333-0000-4000-8000-000000000001') $$;

/** Pin the test clock. */
create function pg_temp.at(p_time text)
returns void language sql as $$ select set_config('billing.now', p_time, true) $$;

/** An organization `o<n>` with the owner, admin and member above. */
create function pg_temp.org(p_n integer)
returns uuid language sql as $$
  select ('c4000000-0000-4000-8000-' || lpad(p_n::text, 12, '0'))::uuid $$;

create function pg_temp.plan_id(p_code text)
returns uuid language sql as $$ select id from public.billing_plans where code = p_code $$;

/** The live subscription of an organization (or its latest one). */
create function pg_temp.sub(p_org uuid)
returns public.subscriptions language sql as $$
  select * from public.subscriptions where organization_id = p_org
  order by status in ('pending_payment', 'trialing', 'active', 'past_due') desc, created_at desc limit 1 $$;

create function pg_temp.plan_code_of(p_org uuid)
returns text language sql as $$
  select p.code from public.billing_plans p where p.id = (pg_temp.sub(p_org)).plan_id $$;

-- The fixture's subscriptions are inserted directly, so each has a 'created' row by actor 'sql'
-- (the trigger on subscriptions); the history read below is what the functions and jobs recorded.
create function pg_temp.history(p_org uuid)
returns text language sql as $$
  select string_agg(action || '/' || actor_kind, ',' order by effective_at, created_at, action)
  from public.subscription_history where organization_id = p_org and actor_kind <> 'sql' $$;

create function pg_temp.notes(p_org uuid, p_kind text)
returns bigint language sql as $$
  select count(*) from public.notifications where organization_id = p_org and kind = p_kind::public.notification_kind $$;

create temp table lc (key text primary key, val jsonb) on commit drop;
grant all on lc to authenticated, service_role;

insert into public.billing_plans (code, name, tier, interval, price_cents, currency, trial_days, active) values
  ('lc_basic_m', 'LC Basic (monthly)', 'basic', 'month', 49900, 'INR', 7, true),
  ('lc_plus_m', 'LC Plus (monthly)', 'basic', 'month', 59900, 'INR', 0, true),
  ('lc_pro_m', 'LC Pro (monthly)', 'pro', 'month', 99900, 'INR', 14, true),
  ('lc_basic_y', 'LC Basic (yearly)', 'basic', 'year', 499000, 'INR', 0, true),
  ('lc_pro_y', 'LC Pro (yearly)', 'pro', 'year', 999000, 'INR', 0, true),
  ('lc_usd_m', 'LC Pro USD (monthly)', 'pro', 'month', 2000, 'USD', 0, true),
  ('lc_retired', 'LC Retired', 'pro', 'month', 150000, 'INR', 0, false);

insert into public.organizations (id, name)
select pg_temp.org(n), 'Lifecycle org ' || n from generate_series(1, 20) n;

insert into public.organization_members (organization_id, user_id, role)
select pg_temp.org(n), u.id, u.role::public.member_role
from generate_series(1, 20) n
cross join (values ('c3333333-0000-4000-8000-000000000001'::uuid, 'owner'),
                   ('c3333333-0000-4000-8000-000000000002'::uuid, 'admin'),
                   ('c3333333-0000-4000-8000-000000000003'::uuid, 'member')) u(id, role);

-- Subscriptions (IST periods). o4 (trials) and o16 (free) have none.
insert into public.subscriptions
  (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id) values
  -- o1: upgrade then downgrade in July 2026 (a 31-day month)
  (pg_temp.org(1), pg_temp.plan_id('lc_basic_m'), 'active', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', 'payu', null),
  -- o2: leap February 2028
  (pg_temp.org(2), pg_temp.plan_id('lc_basic_m'), 'active', '2028-02-01 00:00+05:30', '2028-03-01 00:00+05:30', 'payu', null),
  -- o3: cancel at period end, resume, cancel again
  (pg_temp.org(3), pg_temp.plan_id('lc_pro_m'), 'active', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', 'payu', null),
  -- o5: a due subscription after a week with no job run
  (pg_temp.org(5), pg_temp.plan_id('lc_basic_m'), 'active', '2026-06-01 00:00+05:30', '2026-07-01 00:00+05:30', 'payu', null),
  -- o6: a change in the last second of the period
  (pg_temp.org(6), pg_temp.plan_id('lc_basic_m'), 'active', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', 'payu', null),
  -- o7: Razorpay recurring
  (pg_temp.org(7), pg_temp.plan_id('lc_pro_m'), 'active', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', 'razorpay', 'sub_lc_7'),
  -- o8: cancel now
  (pg_temp.org(8), pg_temp.plan_id('lc_pro_m'), 'active', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', 'payu', null),
  -- o9: boundaries of active -> past_due -> expired
  (pg_temp.org(9), pg_temp.plan_id('lc_basic_m'), 'active', '2026-09-01 00:00+05:30', '2026-10-01 00:00+05:30', 'payu', null),
  -- o10, o11: batches (due first of all fixtures)
  (pg_temp.org(10), pg_temp.plan_id('lc_basic_m'), 'active', '2026-04-01 00:00+05:30', '2026-05-01 00:00+05:30', 'payu', null),
  (pg_temp.org(11), pg_temp.plan_id('lc_basic_m'), 'active', '2026-04-01 00:00+05:30', '2026-05-01 00:00+05:30', 'payu', null),
  -- o12: renewal reminders; o13: Razorpay pre-debit notice; o14: dunning
  (pg_temp.org(12), pg_temp.plan_id('lc_basic_m'), 'active', '2026-11-01 00:00+05:30', '2026-12-01 00:00+05:30', 'payu', null),
  (pg_temp.org(13), pg_temp.plan_id('lc_pro_m'), 'active', '2026-11-01 00:00+05:30', '2026-12-01 00:00+05:30', 'razorpay', 'sub_lc_13'),
  (pg_temp.org(14), pg_temp.plan_id('lc_basic_m'), 'active', '2026-11-01 00:00+05:30', '2026-12-01 00:00+05:30', 'payu', null),
  -- o15: two months paid ahead (cycles = 2): the credit covers a cheaper upgrade
  (pg_temp.org(15), pg_temp.plan_id('lc_basic_m'), 'active', '2026-07-01 00:00+05:30', '2026-09-01 00:00+05:30', 'payu', null),
  -- o17: yearly to monthly; o18: a trial in progress; o19: a live subscription (no trial allowed)
  (pg_temp.org(17), pg_temp.plan_id('lc_pro_y'), 'active', '2026-07-01 00:00+05:30', '2027-07-01 00:00+05:30', 'payu', null),
  (pg_temp.org(19), pg_temp.plan_id('lc_basic_m'), 'active', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', 'payu', null);
insert into public.subscriptions
  (organization_id, plan_id, status, current_period_start, current_period_end, trial_end) values
  (pg_temp.org(18), pg_temp.plan_id('lc_pro_m'), 'trialing', '2026-07-01 00:00+05:30', '2026-07-15 00:00+05:30', '2026-07-15 00:00+05:30');

-- -------------------------------------------------------------------------------------------------
-- Lock order: change_plan takes the open upgrade orders before the subscription, like a payment
-- (which holds its order, then locks the subscription). Two real sessions (dblink) on data they
-- can see, committed here and deleted at the end; first in the file, before anything here takes a
-- table lock (the trigger of the failed-run test) that would hold their inserts up.
-- -------------------------------------------------------------------------------------------------

create extension if not exists dblink with schema extensions;
-- lock_timeout is only a safety net against a session left hanging (a deadlock is found within
-- deadlock_timeout): 60 s, since this VM can stall for seconds and change_plan must still be
-- waiting when the payment ends.
create function pg_temp.dsn() returns text language sql as $$
  select format('host=127.0.0.1 port=%s dbname=%s user=postgres password=postgres options=''-c lock_timeout=60s''',
                current_setting('port'), current_database()) $$;
create function pg_temp.lock_fixture_cleanup() returns text language sql as $$
  select dblink_exec(pg_temp.dsn(), $c$
    delete from public.orders where organization_id = 'c5000000-0000-4000-8000-000000000001';
    delete from public.organizations where id = 'c5000000-0000-4000-8000-000000000001';
    delete from auth.users where id = 'c5000000-0000-4000-8000-0000000000a1' $c$) $$;
select pg_temp.lock_fixture_cleanup();
select dblink_exec(pg_temp.dsn(), $c$
  insert into auth.users (id, email) values ('c5000000-0000-4000-8000-0000000000a1', 'life-lock@test.local');
  insert into public.organizations (id, name) values ('c5000000-0000-4000-8000-000000000001', 'Lifecycle lock org');
  insert into public.organization_members (organization_id, user_id, role)
    values ('c5000000-0000-4000-8000-000000000001', 'c5000000-0000-4000-8000-0000000000a1', 'owner');
  -- Without its history row (replica: the trigger on subscriptions does not fire), so that the
  -- cleanup can delete this committed fixture again: history is immutable and restricts it.
  set session_replication_role = replica;
  insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider)
    select 'c5000000-0000-4000-8000-000000000001', p.id, 'active', '2027-05-01 00:00+05:30', '2027-06-01 00:00+05:30', 'payu'
    from public.billing_plans p where p.code = 'basic_monthly';
  set session_replication_role = origin;
  insert into public.orders (organization_id, plan_id, provider, kind, amount_cents, status, expires_at)
    select 'c5000000-0000-4000-8000-000000000001', p.id, 'payu', 'upgrade', 50000, 'pending', '2027-05-11 00:00+05:30'
    from public.billing_plans p where p.code = 'pro_monthly' $c$);

-- The payment: holds the upgrade order's lock.
select dblink_connect('lc_payment', pg_temp.dsn());
select dblink_exec('lc_payment', 'begin');
select * from dblink('lc_payment', $c$select 1 from public.orders
  where organization_id = 'c5000000-0000-4000-8000-000000000001' for update$c$) as t(locked integer);
-- The owner: change_plan to Pro, in another session, waits.
select dblink_connect('lc_change', pg_temp.dsn());
select dblink_exec('lc_change', 'begin');
select * from dblink('lc_change', $c$select set_config('role', 'authenticated', true),
  set_config('request.jwt.claims', '{"sub": "c5000000-0000-4000-8000-0000000000a1", "role": "authenticated"}', true),
  set_config('billing.now', '2027-05-10 00:00+05:30', true)$c$) as t(a text, b text, c text);
select dblink_send_query('lc_change', $c$select public.change_plan('c5000000-0000-4000-8000-000000000001', 'pro_monthly')::text$c$);
do $$
begin
  for i in 1 .. 2400 loop  -- at most 60 s; it exits as soon as change_plan waits
    -- pg_stat_activity is read once per transaction unless the snapshot is cleared: without this,
    -- a first look taken before change_plan started waiting would be all this loop ever sees.
    perform pg_stat_clear_snapshot();
    exit when exists (select 1 from pg_stat_activity a
                      where a.wait_event_type = 'Lock' and a.query like '%public.change_plan(%' and a.pid <> pg_backend_pid());
    perform pg_sleep(0.025);
  end loop;
end;
$$;
select ok(
  exists (select 1 from pg_stat_activity a where a.wait_event_type = 'Lock' and a.query like '%public.change_plan(%'
          and a.pid <> pg_backend_pid()),
  'change_plan waits for the order a payment holds'
);
set local client_min_messages = warning;  -- dblink's notice when the lock is refused (before the fix)
select is(
  (select count(*) from dblink('lc_payment', $c$select 1 from public.subscriptions
    where organization_id = 'c5000000-0000-4000-8000-000000000001' for update nowait$c$, false) as t(locked integer)),
  1::bigint,
  'without holding the subscription: the payment can go on to lock it (no deadlock)'
);
set local client_min_messages = notice;
select dblink_exec('lc_payment', 'rollback');
select is(
  (select r::jsonb ->> 'result' from dblink_get_result('lc_change') as t(r text)),
  'order_created',
  'once the payment is done, change_plan goes on'
);
select * from dblink_get_result('lc_change') as t(r text);  -- the end of its results
select dblink_exec('lc_change', 'rollback');
select dblink_disconnect('lc_change');
select dblink_disconnect('lc_payment');
select pg_temp.lock_fixture_cleanup();


-- -------------------------------------------------------------------------------------------------
-- Proration arithmetic
-- -------------------------------------------------------------------------------------------------

select is(
  (select row(seconds_left, period_seconds, cycles, unused_cents)::text
   from billing.unused_value(49900, 'month', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', '2026-07-17 00:00+05:30')),
  '(1296000,2678400,1,24145)',
  'a 31-day month: 15 of 31 days left of ₹499 is 24145 paise (748500/31 = 24145.16)'
);
select is(
  (select row(seconds_left, period_seconds, cycles, unused_cents)::text
   from billing.unused_value(49900, 'month', '2028-02-01 00:00+05:30', '2028-03-01 00:00+05:30', '2028-02-15 00:00+05:30')),
  '(1296000,2505600,1,25810)',
  'leap February 2028 has 2,505,600 seconds: 15 of 29 days left of ₹499 is 25810 paise'
);
select is(
  (select unused_cents from billing.unused_value(1, 'month', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30',
                                                 '2026-08-01 00:00+05:30'::timestamptz - interval '1339200 seconds')),
  1::bigint,
  'exactly half a paisa rounds up'
);
select is(
  (select unused_cents from billing.unused_value(1, 'month', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30',
                                                 '2026-08-01 00:00+05:30'::timestamptz - interval '1339199 seconds')),
  0::bigint,
  'just under half a paisa rounds down'
);
select is(
  (select row(seconds_left, unused_cents)::text
   from billing.unused_value(49900, 'month', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', '2026-07-31 23:59:59.75+05:30')),
  '(0,0)',
  'a fraction of a second left counts as 0 whole seconds'
);
select is(
  (select row(seconds_left, unused_cents)::text
   from billing.unused_value(49900, 'month', '2026-07-01 00:00+05:30', '2026-08-01 00:00+05:30', '2026-08-05 00:00+05:30')),
  '(0,0)',
  'after the period end nothing is left (never negative)'
);
select is(
  (select row(cycles, unused_cents)::text
   from billing.unused_value(49900, 'month', '2026-07-01 00:00+05:30', '2026-09-01 00:00+05:30', '2026-07-01 00:00+05:30')),
  '(2,99800)',
  'a period with a renewal paid ahead holds two cycles, worth two prices'
);

-- -------------------------------------------------------------------------------------------------
-- billing-expire: boundaries, a week late, twice, batches, a failed run
-- -------------------------------------------------------------------------------------------------

-- o10, o11 are due first (period end 1 May): batches of one.
select pg_temp.at('2026-05-01 00:00:01+05:30');
select is(billing.job_expire(1), 1, 'a batch of 1 changes one subscription');
select is(
  (select count(*) from public.subscriptions where organization_id in (pg_temp.org(10), pg_temp.org(11)) and status = 'past_due'),
  1::bigint,
  'one of the two due subscriptions moved'
);
select is(billing.job_expire(1), 1, 'the next batch takes the other');
select is(billing.job_expire(1), 0, 'then nothing is left');
select throws_ok($$select billing.job_expire(0)$$, '22023', null, 'a batch size of 0 is refused');


-- -------------------------------------------------------------------------------------------------
-- Leap February, monthly to yearly, yearly to monthly, the last second, a credit above the price
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-07-01 00:00+05:30');
select pg_temp.as_owner();
select is(
  (select row(p ->> 'kind', p ->> 'method', (p ->> 'effective_at')::timestamptz)::text
   from public.preview_plan_change(pg_temp.org(17), 'lc_pro_m') p),
  (select row('downgrade', 'scheduled', '2027-07-01 00:00+05:30'::timestamptz)::text),
  'yearly to monthly is a downgrade at the year end, even at a higher price per day'
);
select is(
  (select jsonb_build_object('method', p -> 'method', 'amount_cents', p -> 'amount_cents', 'cycles', p -> 'cycles',
                             'lines', (select jsonb_agg(l -> 'amount_cents') from jsonb_array_elements(p -> 'lines') l))
   from public.preview_plan_change(pg_temp.org(15), 'lc_plus_m') p),
  '{"method": "immediate", "amount_cents": 0, "cycles": 2, "lines": [59900, -99800, 39900]}'::jsonb,
  'a credit above the new price: nothing to pay, the excess shown as not refunded, never negative'
);
select is(public.change_plan(pg_temp.org(15), 'lc_plus_m') ->> 'result', 'changed', 'a charge of 0 switches at once');
select tests.as_postgres();
select is(
  (select row(pg_temp.plan_code_of(pg_temp.org(15)), (pg_temp.sub(pg_temp.org(15))).current_period_end)::text),
  (select row('lc_plus_m', '2026-08-01 00:00+05:30'::timestamptz)::text),
  'with a new monthly period from now, a month on the organization''s calendar (1 July to 1 August IST)'
);
select is(
  (select actor_kind || '/' || action from public.subscription_history
   where organization_id = pg_temp.org(15) and actor_kind <> 'sql'),
  'user/plan_changed',
  'the immediate switch is recorded as the user''s'
);
select pg_temp.as_owner();
set local timezone = 'Asia/Kolkata';
insert into lc values ('o6_tz_kolkata', public.preview_plan_change(pg_temp.org(6), 'lc_pro_m'));
set local timezone = 'America/Los_Angeles';
insert into lc values ('o6_tz_la', public.preview_plan_change(pg_temp.org(6), 'lc_pro_m'));
set local timezone to default;
select tests.as_postgres();
select is(
  (select string_agg(to_char((val ->> 'new_period_end')::timestamptz at time zone 'Asia/Kolkata', 'YYYY-MM-DD HH24:MI'), ','
                     order by key)
   from lc where key like 'o6_tz_%'),
  '2026-08-01 00:00,2026-08-01 00:00',
  'the new period ends a month later in the organization''s time zone, whatever the connection''s TimeZone'
);


-- -------------------------------------------------------------------------------------------------
-- Trials
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-07-01 00:00+05:30');
select tests.as_user('c3333333-0000-4000-8000-000000000003');
select throws_ok($$select public.start_trial(pg_temp.org(4), 'lc_pro_m')$$, '42501', null, 'a plain member cannot start a trial');
select pg_temp.as_owner();
select throws_ok($$select public.start_trial(pg_temp.org(4), 'lc_basic_y')$$, '22023', 'plan "lc_basic_y" has no trial',
                 'a plan with 0 trial days has no trial');
select throws_ok(format($$select public.start_trial(pg_temp.org(4), %L)$$,
                        (select code from public.billing_plans where tier = 'free' and active)),
                 '22023', null, 'the free plan has no trial');
select throws_ok($$select public.start_trial(pg_temp.org(4), 'lc_nope')$$, 'P0002', null, 'an unknown plan has no trial');
select throws_ok($$select public.start_trial(pg_temp.org(19), 'lc_pro_m')$$, '55000', null,
                 'an organization with a live subscription cannot start a trial');
select is(
  (select row(t ->> 'status', (t ->> 'trial_end')::timestamptz)::text from public.start_trial(pg_temp.org(4), 'lc_pro_m') t),
  (select row('trialing', '2026-07-15 00:00+05:30'::timestamptz)::text),
  'a 14-day trial of Pro starts now'
);
select is(public.effective_tier(pg_temp.org(4)), 'pro', 'the trial gives the plan');
select throws_ok($$select public.start_trial(pg_temp.org(4), 'lc_basic_m')$$, '55000', null,
                 'a second trial while one runs is refused');
select tests.as_postgres();


-- o5: due on 1 July, no job ran for a week.
select pg_temp.at('2026-07-08 00:00+05:30');
select is(public.effective_tier(pg_temp.org(5)), 'free', 'a week late, reads already give the free plan (no job needed)');
select is((pg_temp.sub(pg_temp.org(5))).status::text, 'active', 'the row still says active: no job has run');
select ok(billing.job_expire() >= 2, 'the late job runs');
select is(
  (select string_agg(action || '@' || to_char(effective_at at time zone 'Asia/Kolkata', 'MM-DD'), ',' order by effective_at)
   from public.subscription_history where organization_id = pg_temp.org(5) and actor_kind <> 'sql'),
  'past_due@07-01,expired@07-04',
  'one late run records both transitions at the times they were due'
);
select is((pg_temp.sub(pg_temp.org(5))).status::text, 'expired', 'and leaves it expired');

create temp table lc_state on commit drop as
select (select jsonb_agg(to_jsonb(s) - 'updated_at' order by s.id) from public.subscriptions s) as subs,
       (select count(*) from public.subscription_history) as history,
       (select count(*) from public.notifications) as notes;
select is(billing.job_expire(), 0, 'running the job again changes nothing');
select ok(
  (select subs = (select jsonb_agg(to_jsonb(s) - 'updated_at' order by s.id) from public.subscriptions s)
      and history = (select count(*) from public.subscription_history)
      and notes = (select count(*) from public.notifications)
   from lc_state),
  'the second run leaves subscriptions, history and notifications exactly as they were'
);

select is(
  (select row(job_name, rows_affected >= 2, finished_at is not null, error)::text
   from billing.job_runs where job_name = 'billing-expire' and as_of = '2026-07-08 00:00+05:30' order by id limit 1),
  '(billing-expire,t,t,)',
  'each run is logged in billing.job_runs with its rows and no error'
);


-- -------------------------------------------------------------------------------------------------
-- Bad inputs
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-07-10 00:00+05:30');
select pg_temp.as_owner();
select throws_ok($$select public.change_plan(pg_temp.org(3), 'lc_nope')$$, 'P0002', 'no active plan "lc_nope"',
                 'an unknown plan code is refused');
select throws_ok($$select public.preview_plan_change(pg_temp.org(3), 'lc_retired')$$, 'P0002', null,
                 'a retired plan is refused');
select throws_ok($$select public.change_plan(pg_temp.org(3), 'lc_pro_m')$$, '22023',
                 'the organization is already on plan "lc_pro_m"', 'the same plan is refused');
select throws_ok(format($$select public.change_plan(pg_temp.org(3), %L)$$,
                        (select code from public.billing_plans where tier = 'free' and active)),
                 '22023', null, 'the free plan is refused (cancel instead)');
select throws_ok($$select public.change_plan(pg_temp.org(3), 'lc_usd_m')$$, '22023', null,
                 'a plan in another currency is refused');
select throws_ok($$select public.change_plan(pg_temp.org(16), 'lc_pro_m')$$, '55000', null,
                 'an organization on the free plan cannot upgrade through change_plan (checkout buys a plan)');
select throws_ok($$select public.change_plan(pg_temp.org(18), 'lc_basic_y')$$, '55000', null,
                 'a trial cannot change plan (checkout buys one)');
select throws_ok($$select public.change_plan(null, 'lc_basic_m')$$, '42501', null,
                 'a null organization is refused (like an unknown one)');
select tests.as_user('c3333333-0000-4000-8000-000000000003');
select throws_ok($$select public.change_plan(pg_temp.org(3), 'lc_basic_m')$$, '42501', null,
                 'a plain member cannot change the plan');
select throws_ok($$select public.preview_plan_change(pg_temp.org(3), 'lc_basic_m')$$, '42501', null,
                 'a plain member cannot preview');
select throws_ok($$select public.cancel_subscription(pg_temp.org(3))$$, '42501', null,
                 'a plain member cannot cancel');
select tests.as_user('c3333333-0000-4000-8000-000000000004');
select throws_ok($$select public.change_plan(pg_temp.org(3), 'lc_basic_m')$$, '42501', null,
                 'a stranger cannot change the plan');
select throws_ok($$select public.start_trial(pg_temp.org(4), 'lc_pro_m')$$, '42501', null,
                 'a stranger cannot start a trial');
select tests.as_role('authenticated');
select throws_ok($$select public.cancel_subscription(pg_temp.org(3))$$, '42501', 'not signed in',
                 'nobody signed in cannot cancel');
select tests.as_postgres();
select ok(not has_function_privilege('anon', 'public.change_plan(uuid, text, text)', 'execute'), 'anon cannot execute change_plan');
select is(pg_temp.history(pg_temp.org(3)), null, 'the refused calls wrote nothing');


-- Cancel now.
select pg_temp.at('2026-07-10 00:00+05:30');
select tests.as_user('c3333333-0000-4000-8000-000000000002');
select is(public.cancel_subscription(pg_temp.org(8), false) ->> 'status', 'canceled', 'an admin cancels now');
select tests.as_postgres();
select is(public.effective_tier(pg_temp.org(8)), 'free', 'cancelled now: the free plan at once (no refund)');
select is(pg_temp.history(pg_temp.org(8)), 'canceled/user', 'recorded as the user''s cancellation');
select pg_temp.as_owner();
select throws_ok($$select public.cancel_subscription(pg_temp.org(8))$$, '55000', null,
                 'nothing left to cancel');
select tests.as_postgres();


-- -------------------------------------------------------------------------------------------------
-- Cancel and resume
-- -------------------------------------------------------------------------------------------------

select pg_temp.as_owner();
select is(
  (select row(c ->> 'result', c ->> 'status', c ->> 'cancel_at_period_end', (c ->> 'effective_at')::timestamptz)::text
   from public.cancel_subscription(pg_temp.org(3)) c),
  (select row('scheduled', 'active', 'true', '2026-08-01 00:00+05:30'::timestamptz)::text),
  'cancel defaults to the period end'
);
select is(public.cancel_subscription(pg_temp.org(3)) ->> 'result', 'already_scheduled', 'cancelling again changes nothing');
select is(public.effective_tier(pg_temp.org(3)), 'pro', 'the plan stays in effect until the period end');
select throws_ok($$select public.change_plan(pg_temp.org(3), 'lc_basic_m')$$, '55000', null,
                 'no plan change while a cancellation is scheduled');
select pg_temp.at('2026-07-10 00:01+05:30');
select is(public.resume_subscription(pg_temp.org(3)) ->> 'result', 'resumed', 'resume undoes the scheduled cancel');
select throws_ok($$select public.resume_subscription(pg_temp.org(3))$$, '55000', null,
                 'resume with nothing scheduled is refused');
select tests.as_postgres();
select is(
  (select row(s.cancel_at_period_end, s.canceled_at)::text from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(3))).id),
  '(f,)',
  'after resume the subscription renews as before'
);
select pg_temp.at('2026-07-10 00:02+05:30');
select pg_temp.as_owner();
select is(public.cancel_subscription(pg_temp.org(3), true) ->> 'result', 'scheduled', 'cancel again at the period end');
select tests.as_postgres();


-- -------------------------------------------------------------------------------------------------
-- Razorpay recurring: cancel at cycle end and subscribe again
-- -------------------------------------------------------------------------------------------------

select pg_temp.as_owner();
select is(
  (select row(p ->> 'method', p ->> 'amount_cents')::text from public.preview_plan_change(pg_temp.org(7), 'lc_basic_m') p),
  '(cancel_and_resubscribe,49900)',
  'a Razorpay recurring subscription changes by cancel and resubscribe, the new plan in full'
);
insert into lc values ('o7_change', public.change_plan(pg_temp.org(7), 'lc_basic_m'));
select is(
  (select jsonb_build_object('result', val -> 'result', 'action', val #> '{provider_action,action}',
                             'at_cycle_end', val #> '{provider_action,cancel_at_cycle_end}',
                             'id', val #> '{provider_action,provider_subscription_id}', 'checkout', val -> 'checkout')
   from lc where key = 'o7_change'),
  '{"result": "cancel_scheduled", "action": "cancel_subscription", "at_cycle_end": true, "id": "sub_lc_7",
    "checkout": {"plan_code": "lc_basic_m", "provider": "razorpay"}}'::jsonb,
  'the answer says to cancel sub_lc_7 at cycle end and check out the new plan'
);
select is((pg_temp.sub(pg_temp.org(7))).cancel_at_period_end, true, 'our subscription is set to end at the period end');
select throws_ok($$select public.resume_subscription(pg_temp.org(7))$$, '55000', null,
                 'a Razorpay cancellation at cycle end is not resumed here');
select tests.as_postgres();


select pg_temp.at('2026-07-14 23:59:59+05:30');
select billing.job_expire();
select is((pg_temp.sub(pg_temp.org(4))).status::text, 'trialing', 'one second before the trial end it still runs');
select pg_temp.at('2026-07-15 00:00:00+05:30');
select is(public.effective_tier(pg_temp.org(4)), 'free', 'an unpaid trial falls to the free plan at its end');
select billing.job_expire();
select is(
  (select row(s.status, s.ended_at)::text from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(4))).id),
  (select row('expired', '2026-07-15 00:00+05:30'::timestamptz)::text),
  'the job expires the trial at its end'
);
select is(pg_temp.history(pg_temp.org(4)), 'trial_started/user,trial_ended/system', 'history: trial started, trial ended');
select is(pg_temp.notes(pg_temp.org(4), 'trial_ended'), 1::bigint, 'a trial-ended notice is queued');
select pg_temp.as_owner();
select throws_ok($$select public.start_trial(pg_temp.org(4), 'lc_basic_m')$$, '55000',
                 'the organization has already had a trial', 'a trial is once per organization, ever');
select tests.as_postgres();


-- -------------------------------------------------------------------------------------------------
-- Upgrade (31-day month), paid through checkout and apply_payment_event; then a downgrade
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-07-17 00:00+05:30');
select pg_temp.as_owner();
insert into lc values ('o1_preview', public.preview_plan_change(pg_temp.org(1), 'lc_pro_m'));
select tests.as_postgres();

select is(
  (select jsonb_build_object('kind', val -> 'kind', 'method', val -> 'method', 'amount_cents', val -> 'amount_cents',
                             'currency', val -> 'currency', 'seconds_left', val -> 'seconds_left',
                             'period_seconds', val -> 'period_seconds', 'unused_cents', val -> 'unused_cents')
   from lc where key = 'o1_preview'),
  '{"kind": "upgrade", "method": "prorated_order", "amount_cents": 75755, "currency": "INR", "seconds_left": 1296000,
    "period_seconds": 2678400, "unused_cents": 24145}'::jsonb,
  'preview: basic to pro mid-July is an upgrade charging 99900 - 24145 = 75755 paise'
);
select is(
  (select sum((l ->> 'amount_cents')::bigint) from lc, jsonb_array_elements(val -> 'lines') l where key = 'o1_preview'),
  75755::numeric,
  'the preview lines add up to its amount'
);
select is(
  (select (val ->> 'effective_at')::timestamptz from lc where key = 'o1_preview'),
  '2026-07-17 00:00+05:30'::timestamptz,
  'an upgrade takes effect now (when paid)'
);
select is(
  (select count(*) from public.subscription_history where organization_id = pg_temp.org(1) and actor_kind <> 'sql'),
  0::bigint,
  'a preview writes nothing'
);

select tests.as_user('c3333333-0000-4000-8000-000000000002');
select is(
  public.preview_plan_change(pg_temp.org(1), 'lc_pro_m') ->> 'amount_cents',
  '75755',
  'an admin may preview too'
);
insert into lc values ('o1_first_order', public.change_plan(pg_temp.org(1), 'lc_pro_m'));
select pg_temp.as_owner();
insert into lc values ('o1_change', public.change_plan(pg_temp.org(1), 'lc_pro_m'));
select tests.as_postgres();

select is(
  (select (val ->> 'amount_cents')::bigint from lc where key = 'o1_change'),
  (select (val ->> 'amount_cents')::bigint from lc where key = 'o1_preview'),
  'change_plan charges exactly what the preview said'
);
select is(
  (select row(o.kind, o.status, o.taxable_cents, o.amount_cents, p.code)::text
   from public.orders o join public.billing_plans p on p.id = o.plan_id
   where o.id = (select (val ->> 'order_id')::uuid from lc where key = 'o1_change')),
  '(upgrade,created,75755,89391,lc_pro_m)',
  'change_plan creates an upgrade order for the new plan: the prorated amount, plus 18 % GST to pay'
);
select is(
  (select (val ->> 'order_amount_cents')::bigint from lc where key = 'o1_change'),
  89391::bigint,
  'and its answer says what the order charges, tax included'
);
select is(
  (select status from public.orders where id = (select (val ->> 'order_id')::uuid from lc where key = 'o1_first_order')),
  'canceled',
  'a new upgrade order cancels the earlier open one'
);
select is(pg_temp.plan_code_of(pg_temp.org(1)), 'lc_basic_m', 'until paid, the subscription stays on its plan');
select is(public.effective_tier(pg_temp.org(1)), 'basic', 'and the tier in effect is unchanged');

select pg_temp.as_owner();
select throws_ok(
  format($$select * from public.prepare_order_checkout(pg_temp.org(1), %L, 'payu')$$,
         (select val ->> 'order_id' from lc where key = 'o1_first_order')),
  '55000', null,
  'a cancelled upgrade order cannot be checked out'
);
select tests.as_user('c3333333-0000-4000-8000-000000000003');
select throws_ok(
  format($$select * from public.prepare_order_checkout(pg_temp.org(1), %L, 'payu')$$, (select val ->> 'order_id' from lc where key = 'o1_change')),
  '42501', null,
  'a plain member cannot check out the upgrade order'
);
select pg_temp.as_owner();
select throws_ok(
  format($$select * from public.prepare_order_checkout(pg_temp.org(2), %L, 'payu')$$, (select val ->> 'order_id' from lc where key = 'o1_change')),
  '42501', null,
  'an order is checked out only under its own organization'
);
select is(
  (select row(c.status, c.amount_cents, c.plan_code)::text
   from public.prepare_order_checkout(pg_temp.org(1), (select (val ->> 'order_id')::uuid from lc where key = 'o1_change'), 'payu') c),
  '(pending,89391,lc_pro_m)',
  'prepare_order_checkout makes the upgrade order payable through PayU'
);
select tests.as_postgres();

select pg_temp.at('2026-07-17 00:10+05:30');
select is(
  billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', 'lc-o1-paid', 'event_type', 'payment.success',
    'order_ref', (select receipt from public.orders where id = (select (val ->> 'order_id')::uuid from lc where key = 'o1_change')),
    'provider_payment_id', 'lc_pay_o1', 'amount_paise', 89391, 'currency', 'INR'))) ->> 'result',
  'applied',
  'the upgrade order is paid through apply_payment_event'
);
select is(
  (select row(p.code, s.status, s.current_period_start, s.current_period_end)::text
   from public.subscriptions s join public.billing_plans p on p.id = s.plan_id where s.id = (pg_temp.sub(pg_temp.org(1))).id),
  (select row('lc_pro_m', 'active', '2026-07-17 00:10+05:30'::timestamptz, '2026-08-17 00:10+05:30'::timestamptz)::text),
  'when paid, the plan switches and a new monthly period starts at the payment'
);
select is(public.effective_tier(pg_temp.org(1)), 'pro', 'the new tier is in effect at once');

-- Downgrade in the same period.
select pg_temp.at('2026-07-17 00:20+05:30');
select pg_temp.as_owner();
select is(
  (select jsonb_build_object('kind', p -> 'kind', 'method', p -> 'method', 'amount_cents', p -> 'amount_cents',
                             'lines', p -> 'lines', 'effective_at', (p ->> 'effective_at')::timestamptz)
   from public.preview_plan_change(pg_temp.org(1), 'lc_basic_m') p),
  jsonb_build_object('kind', 'downgrade', 'method', 'scheduled', 'amount_cents', 0, 'lines', '[]'::jsonb,
                     'effective_at', '2026-08-17 00:10+05:30'::timestamptz),
  'a downgrade is free and scheduled for the period end'
);
select is(public.change_plan(pg_temp.org(1), 'lc_basic_m') ->> 'result', 'scheduled', 'change_plan schedules the downgrade');
select throws_ok(
  $$select public.change_plan(pg_temp.org(1), 'lc_basic_m')$$,
  '22023', null,
  'scheduling the same downgrade twice is refused'
);
select tests.as_postgres();
select is(
  (select row(p.code, s.pending_plan_effective_at)::text from public.subscriptions s
   join public.billing_plans p on p.id = s.pending_plan_id where s.id = (pg_temp.sub(pg_temp.org(1))).id),
  (select row('lc_basic_m', '2026-08-17 00:10+05:30'::timestamptz)::text),
  'the pending plan and its date are on the subscription'
);
select is(pg_temp.plan_code_of(pg_temp.org(1)), 'lc_pro_m', 'the paid plan stays in effect until the period end');
select is(
  pg_temp.history(pg_temp.org(1)),
  'upgrade_ordered/user,upgrade_ordered/user,plan_changed/provider,downgrade_scheduled/user',
  'history: two upgrade orders (user), the paid switch (provider), the scheduled downgrade (user)'
);


select pg_temp.at('2028-02-15 00:00+05:30');
select pg_temp.as_owner();
select is(
  (select row(p ->> 'kind', p ->> 'amount_cents', p ->> 'period_seconds')::text
   from public.preview_plan_change(pg_temp.org(2), 'lc_pro_m') p),
  '(upgrade,74090,2505600)',
  'leap February: 99900 - 25810 = 74090 paise'
);
select is(
  (select row(p ->> 'kind', p ->> 'amount_cents', (p ->> 'new_period_end')::timestamptz)::text
   from public.preview_plan_change(pg_temp.org(2), 'lc_basic_y') p),
  (select row('upgrade', '473190', '2029-02-15 00:00+05:30'::timestamptz)::text),
  'monthly to yearly is an upgrade even at a lower price per day: 499000 - 25810, a year from the payment'
);


select tests.as_postgres();
select pg_temp.at('2026-07-31 23:59:59+05:30');
select billing.job_expire();
select is((pg_temp.sub(pg_temp.org(3))).status::text, 'active', 'one second before the period end the job leaves it active');

select pg_temp.at('2026-07-31 23:59:59+05:30');
select pg_temp.as_owner();
select is(
  (select row(p ->> 'seconds_left', p ->> 'unused_cents', p ->> 'amount_cents')::text
   from public.preview_plan_change(pg_temp.org(6), 'lc_pro_m') p),
  '(1,0,99900)',
  'in the last second of the period the credit rounds to 0: the full new price'
);
insert into lc values ('o6_change', public.change_plan(pg_temp.org(6), 'lc_pro_m'));
select is(
  (select (val ->> 'amount_cents') || '/' || (select taxable_cents from public.orders o where o.id = (val ->> 'order_id')::uuid)
   from lc where key = 'o6_change'),
  '99900/99900',
  'and change_plan in that second orders exactly that'
);
select pg_temp.at('2026-08-01 00:00:00+05:30');
select throws_ok(
  $$select public.change_plan(pg_temp.org(6), 'lc_pro_m')$$,
  '55000', null,
  'at the period end itself the period is over: no plan change'
);
select throws_ok(
  $$select public.preview_plan_change(pg_temp.org(6), 'lc_pro_m')$$,
  '55000', null,
  'nor a preview'
);
select tests.as_postgres();
select pg_temp.at('2026-08-01 00:00:01+05:30');
select pg_temp.as_owner();
select throws_ok(
  format($$select * from public.prepare_order_checkout(pg_temp.org(6), %L, 'payu')$$,
         (select id from public.orders where organization_id = pg_temp.org(6) and kind = 'upgrade')),
  '55000', null,
  'an upgrade order expires with the period it was priced against'
);


select pg_temp.at('2026-08-01 00:00:01+05:30');
select pg_temp.as_owner();
select throws_ok($$select public.resume_subscription(pg_temp.org(3))$$, '55000', null,
                 'after the period end a cancellation cannot be resumed');
select tests.as_postgres();
select is(public.effective_tier(pg_temp.org(3)), 'free', 'the free plan applies at the period end, before any job runs');

-- A failed run changes nothing and logs the error.
select pg_temp.at('2026-08-01 00:00:01+05:30');
create function pg_temp.refuse() returns trigger language plpgsql as $$
begin
  raise exception 'lifecycle test: refused';
end;
$$;
create trigger lc_refuse before update on public.subscriptions for each row execute function pg_temp.refuse();
set local client_min_messages = error;  -- the job's warning about the failure
select is(billing.job_expire(), null, 'a failing run returns null');
set local client_min_messages = notice;
drop trigger lc_refuse on public.subscriptions;
select is((pg_temp.sub(pg_temp.org(7))).status::text, 'active', 'and changes nothing');
select is(
  (select error from billing.job_runs where job_name = 'billing-expire' order by id desc limit 1),
  'P0001: lifecycle test: refused',
  'its error is in billing.job_runs'
);
select billing.job_expire();
select is((pg_temp.sub(pg_temp.org(7))).status::text, 'canceled', 'the next run does the work (Razorpay change: cancelled at the period end)');

select is(
  (select row(s.status, s.ended_at)::text from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(3))).id),
  (select row('canceled', '2026-08-01 00:00+05:30'::timestamptz)::text),
  'the job cancels it, ended at the period end'
);
select is(
  pg_temp.history(pg_temp.org(3)),
  'cancel_scheduled/user,resumed/user,cancel_scheduled/user,canceled/system',
  'history: cancel, resume, cancel (user), then canceled by the system'
);
select is(pg_temp.notes(pg_temp.org(3), 'subscription_canceled'), 1::bigint, 'a cancellation notice is queued');


select pg_temp.at('2026-08-17 00:10:00+05:30');
select ok(billing.job_expire() >= 1, 'billing-expire runs at the period end');
select is(
  (select row(p.code, s.status, s.pending_plan_id)::text from public.subscriptions s
   join public.billing_plans p on p.id = s.plan_id where s.id = (pg_temp.sub(pg_temp.org(1))).id),
  '(lc_basic_m,past_due,)',
  'at the period end the downgrade is applied and the unpaid period is past due'
);
select is(
  (select string_agg(action || '@' || to_char(effective_at at time zone 'Asia/Kolkata', 'MM-DD HH24:MI'), ',' order by action)
   from public.subscription_history where organization_id = pg_temp.org(1) and actor_kind = 'system'),
  'downgraded@08-17 00:10,past_due@08-17 00:10',
  'the job records the downgrade and the past due at the period end, as the system'
);


-- o9: boundaries.
select pg_temp.at('2026-09-30 23:59:59+05:30');
select billing.job_expire();
select is((pg_temp.sub(pg_temp.org(9))).status::text, 'active', 'active until the last second of the period');
select pg_temp.at('2026-10-01 00:00:00+05:30');
select billing.job_expire();
select is((pg_temp.sub(pg_temp.org(9))).status::text, 'past_due', 'past due at the period end exactly');
select is(
  (select e ->> 'reason' || '/' || (e ->> 'tier') from public.get_entitlements(pg_temp.org(9)) e),
  'grace/basic',
  'past due keeps the plan through the grace days'
);
select pg_temp.at('2026-10-03 23:59:59+05:30');
select billing.job_expire();
select is((pg_temp.sub(pg_temp.org(9))).status::text, 'past_due', 'still past due one second before the grace ends');
select pg_temp.at('2026-10-04 00:00:00+05:30');
select billing.job_expire();
select is(
  (select row(s.status, s.ended_at)::text from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(9))).id),
  (select row('expired', '2026-10-04 00:00+05:30'::timestamptz)::text),
  'expired when the 3 grace days are over'
);
select is(public.effective_tier(pg_temp.org(9)), 'free', 'and the free plan applies');


-- -------------------------------------------------------------------------------------------------
-- Renewal reminders, pre-debit notice, dunning
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-11-23 23:59:59+05:30');
select billing.job_renewal_reminders();
select is(pg_temp.notes(pg_temp.org(12), 'renewal_reminder'), 0::bigint, 'no reminder more than 7 days before the period end');
select pg_temp.at('2026-11-24 00:00:00+05:30');
select billing.job_renewal_reminders();
select is(pg_temp.notes(pg_temp.org(12), 'renewal_reminder'), 1::bigint, 'the 7-day reminder 7 days before');
select is(pg_temp.notes(pg_temp.org(13), 'pre_debit_notice'), 0::bigint, 'no pre-debit notice 7 days before a Razorpay charge');
select is(pg_temp.notes(pg_temp.org(13), 'renewal_reminder'), 0::bigint, 'and no renewal reminder for a recurring subscription');
select pg_temp.at('2026-11-27 00:00:00+05:30');
select is(billing.job_renewal_reminders(), 0, 'running reminders again later in the week queues nothing new');
select pg_temp.at('2026-11-30 00:00:00+05:30');
select billing.job_renewal_reminders();
select billing.job_renewal_reminders();
select is(pg_temp.notes(pg_temp.org(12), 'renewal_reminder'), 2::bigint, 'the 1-day reminder 1 day before, once');
select is(pg_temp.notes(pg_temp.org(13), 'pre_debit_notice'), 1::bigint, 'the pre-debit notice 24 hours before the Razorpay charge, once');
select is(
  (select payload ->> 'amount_cents' || ' ' || (payload ->> 'charge_at')::timestamptz from public.notifications
   where organization_id = pg_temp.org(13) and kind = 'pre_debit_notice'),
  '99900 ' || '2026-12-01 00:00+05:30'::timestamptz,
  'the pre-debit notice names the amount and the charge time'
);

select pg_temp.at('2026-12-01 01:00+05:30');
select billing.job_dunning();
select billing.job_dunning();
select is(pg_temp.notes(pg_temp.org(14), 'dunning_reminder'), 1::bigint, 'day 1 of past due: one dunning reminder, even run twice');
select pg_temp.at('2026-12-02 23:00+05:30');
select billing.job_dunning();
select is(pg_temp.notes(pg_temp.org(14), 'dunning_reminder'), 1::bigint, 'nothing new on day 2');
select pg_temp.at('2026-12-03 01:00+05:30');
select billing.job_dunning();
select is(
  (select string_agg(payload ->> 'day', ',' order by created_at) from public.notifications
   where organization_id = pg_temp.org(14) and kind = 'dunning_reminder'),
  '1,3',
  'day 3 of past due: the second reminder'
);
select pg_temp.at('2026-12-04 01:00+05:30');
select billing.job_dunning();
select is(pg_temp.notes(pg_temp.org(14), 'dunning_reminder'), 2::bigint, 'no reminder once the grace is over');

-- -------------------------------------------------------------------------------------------------
-- Notifications: the payment path, RLS, claim and mark sent
-- -------------------------------------------------------------------------------------------------

insert into public.orders (organization_id, plan_id, provider, receipt, amount_cents, status)
values (pg_temp.org(14), pg_temp.plan_id('lc_basic_m'), 'payu', 'lc_fail_order', 49900, 'pending');
select is(
  billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', 'lc-fail-1', 'event_type', 'payment.failure', 'order_ref', 'lc_fail_order',
    'provider_payment_id', 'lc_pay_fail', 'amount_paise', (select amount_cents from public.orders where receipt = 'lc_fail_order'), 'currency', 'INR'))) ->> 'result',
  'applied',
  'a failed payment is applied'
);
select is(pg_temp.notes(pg_temp.org(14), 'payment_failed'), 1::bigint, 'and queues a payment-failed notice');

select tests.as_user('c3333333-0000-4000-8000-000000000003');
select is((select count(*) from public.notifications where organization_id = pg_temp.org(14)), 0::bigint,
          'a plain member does not see billing notifications');
select tests.as_user('c3333333-0000-4000-8000-000000000002');
select is((select count(*) from public.notifications where organization_id = pg_temp.org(14)), 5::bigint,
          'an admin sees them (two renewal reminders, two dunning reminders, the failed payment)');
select throws_ok($$select * from billing.claim_notifications(10)$$, '42501', null, 'a signed-in user cannot claim notifications');
select tests.as_role('service_role');
insert into lc select 'claim1', jsonb_agg(c.id) from billing.claim_notifications(1000) c;
select ok((select jsonb_array_length(val) from lc where key = 'claim1') >= 3, 'service_role claims the unsent notifications');
select is((select count(*) from billing.claim_notifications(1000)), 0::bigint, 'claimed rows are not handed out twice');
select is(billing.mark_notification_sent((select (val ->> 0)::uuid from lc where key = 'claim1')), true, 'mark_notification_sent marks one sent');
select is(billing.mark_notification_sent((select (val ->> 0)::uuid from lc where key = 'claim1')), false, 'and only once');
select pg_temp.at('2026-12-04 01:05:01+05:30');
select is((select count(*) from billing.claim_notifications(1000)),
          (select jsonb_array_length(val) - 1 from lc where key = 'claim1')::bigint,
          'an unsent claim is handed out again after its 5-minute lease');
select tests.as_postgres();

-- -------------------------------------------------------------------------------------------------
-- o21: a downgrade scheduled, then the current plan renewed: the paid month is kept (2027)
-- -------------------------------------------------------------------------------------------------

insert into public.billing_plans (code, name, tier, interval, price_cents, currency, trial_days, active) values
  ('lc_trial30_m', 'LC Trial30 (monthly)', 'basic', 'month', 49900, 'INR', 30, true);
insert into public.organizations (id, name)
select pg_temp.org(n), 'Lifecycle org ' || n from generate_series(21, 23) n;
insert into public.organization_members (organization_id, user_id, role)
select pg_temp.org(n), 'c3333333-0000-4000-8000-000000000001', 'owner' from generate_series(21, 23) n;
insert into public.subscriptions
  (organization_id, plan_id, status, current_period_start, current_period_end, provider) values
  (pg_temp.org(21), pg_temp.plan_id('lc_pro_m'), 'active', '2027-07-01 00:00+05:30', '2027-08-01 00:00+05:30', 'payu'),
  (pg_temp.org(23), pg_temp.plan_id('lc_basic_m'), 'active', '2028-02-01 00:00+05:30', '2028-03-01 00:00+05:30', 'payu');

select pg_temp.at('2027-07-10 00:00+05:30');
select pg_temp.as_owner();
select is(public.change_plan(pg_temp.org(21), 'lc_basic_m') ->> 'result', 'scheduled',
          'o21 schedules a downgrade from Pro to Basic for 1 August');
select tests.as_postgres();
select pg_temp.at('2027-07-28 12:00+05:30');
insert into public.orders (organization_id, plan_id, provider, receipt, amount_cents, status)
values (pg_temp.org(21), pg_temp.plan_id('lc_pro_m'), 'payu', 'lc_o21_renewal', 99900, 'pending');
select is(
  billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', 'lc-o21-renewal', 'event_type', 'payment.success', 'order_ref', 'lc_o21_renewal',
    'provider_payment_id', 'lc_pay_o21', 'amount_paise', (select amount_cents from public.orders where receipt = 'lc_o21_renewal'), 'currency', 'INR'))) ->> 'result',
  'applied',
  'then pays the Pro renewal (GST included) on 28 July'
);
select is((pg_temp.sub(pg_temp.org(21))).current_period_end, '2027-09-01 00:00+05:30'::timestamptz,
          'which extends the Pro period to 1 September');
select pg_temp.at('2027-08-01 00:00:01+05:30');
select billing.job_expire();
select is(
  (select row(p.code, q.code, s.status)::text from public.subscriptions s
   join public.billing_plans p on p.id = s.plan_id join public.billing_plans q on q.id = s.pending_plan_id
   where s.id = (pg_temp.sub(pg_temp.org(21))).id),
  '(lc_pro_m,lc_basic_m,active)',
  'on 1 August the job keeps the Pro month that was paid for; the downgrade stays scheduled'
);
select is(public.effective_tier(pg_temp.org(21)), 'pro', 'and Pro is in effect');
select pg_temp.at('2027-08-25 00:00+05:30');
select billing.job_renewal_reminders();
select is(
  (select string_agg(concat_ws('/', payload ->> 'plan_code', payload ->> 'amount_cents', payload ->> 'current_plan_code'), ',')
   from public.notifications where organization_id = pg_temp.org(21) and kind = 'renewal_reminder'),
  'lc_basic_m/49900/lc_pro_m',
  'the renewal reminder quotes the scheduled plan (Basic, 499) that follows the Pro period'
);
select pg_temp.at('2027-09-01 00:00+05:30');
select billing.job_expire();
select is(
  (select row(p.code, s.status, s.pending_plan_id)::text from public.subscriptions s
   join public.billing_plans p on p.id = s.plan_id where s.id = (pg_temp.sub(pg_temp.org(21))).id),
  '(lc_basic_m,past_due,)',
  'at the end of the renewed period the downgrade applies (and the unpaid period is past due)'
);
select is(
  (select string_agg(to_char(effective_at at time zone 'Asia/Kolkata', 'YYYY-MM-DD HH24:MI'), ',')
   from public.subscription_history where organization_id = pg_temp.org(21) and action = 'downgraded'),
  '2027-09-01 00:00',
  'the downgrade is recorded at the time it was due: the end of the renewed period'
);


-- -------------------------------------------------------------------------------------------------
-- o22: a trial paid before its end: proration counts only the paid time (2027-28)
-- -------------------------------------------------------------------------------------------------

-- A trial is once per person, and the owner started o4's: o22's own admin starts this one.
insert into auth.users (id, email) values ('c3333333-0000-4000-8000-000000000022', 'life-o22-admin@test.local');
insert into public.organization_members (organization_id, user_id, role)
values (pg_temp.org(22), 'c3333333-0000-4000-8000-000000000022', 'admin');
select pg_temp.at('2027-12-01 00:00+05:30');
select tests.as_user('c3333333-0000-4000-8000-000000000022');
select is(public.start_trial(pg_temp.org(22), 'lc_trial30_m') ->> 'status', 'trialing', 'o22 starts a 30-day trial on 1 December');
select tests.as_postgres();
select pg_temp.at('2027-12-20 00:00+05:30');
insert into public.orders (organization_id, plan_id, provider, receipt, amount_cents, status)
values (pg_temp.org(22), pg_temp.plan_id('lc_trial30_m'), 'payu', 'lc_o22_paid', 49900, 'pending');
select is(
  billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', 'lc-o22-paid', 'event_type', 'payment.success', 'order_ref', 'lc_o22_paid',
    'provider_payment_id', 'lc_pay_o22', 'amount_paise', (select amount_cents from public.orders where receipt = 'lc_o22_paid'), 'currency', 'INR'))) ->> 'result',
  'applied',
  'and pays one month (499 + GST) on 20 December, during the trial'
);
select is(
  (select row(s.status, s.current_period_start, s.trial_end, s.current_period_end)::text
   from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(22))).id),
  (select row('active', '2027-12-01 00:00+05:30'::timestamptz, '2027-12-31 00:00+05:30'::timestamptz,
              '2028-01-31 00:00+05:30'::timestamptz)::text),
  'the paid month runs from the trial end (31 December) to 31 January; the period still starts at the trial start'
);
select pg_temp.as_owner();
select is(
  (select jsonb_build_object('unused_cents', p -> 'unused_cents', 'amount_cents', p -> 'amount_cents', 'cycles', p -> 'cycles')
   from public.preview_plan_change(pg_temp.org(22), 'lc_pro_m') p),
  '{"unused_cents": 49900, "amount_cents": 50000, "cycles": 1}'::jsonb,
  'during the trial days the whole paid month is unused: the credit is what was paid (499), no more'
);
select pg_temp.at('2027-12-31 00:00+05:30');
select is(
  (select jsonb_build_object('seconds_left', p -> 'seconds_left', 'period_seconds', p -> 'period_seconds',
                             'cycles', p -> 'cycles', 'unused_cents', p -> 'unused_cents',
                             'paid_period_start', (p ->> 'paid_period_start')::timestamptz)
   from public.preview_plan_change(pg_temp.org(22), 'lc_pro_m') p),
  jsonb_build_object('seconds_left', 2678400, 'period_seconds', 2678400, 'cycles', 1, 'unused_cents', 49900,
                     'paid_period_start', '2027-12-31 00:00+05:30'::timestamptz),
  'at the first paid second the paid period (31 days, 1 cycle) is all left: the credit is 499, not 2 x 499 x 31/61'
);
select pg_temp.at('2028-01-15 12:00+05:30');
select is(
  (select (p ->> 'unused_cents')::bigint from public.preview_plan_change(pg_temp.org(22), 'lc_pro_m') p),
  24950::bigint,
  'half-way through the paid month (15.5 of 31 days left) the credit is half of what was paid'
);
select tests.as_postgres();


-- -------------------------------------------------------------------------------------------------
-- o23: the jobs read the grace period from billing.grace_interval(), the one place (2028)
-- -------------------------------------------------------------------------------------------------

create or replace function billing.grace_interval() returns interval language sql stable set search_path = ''
as $$ select interval '1 day' $$;
select pg_temp.at('2028-03-01 12:00+05:30');
select billing.job_dunning();
select is(
  (select string_agg((payload ->> 'grace_ends_at')::timestamptz::text, ',') from public.notifications
   where organization_id = pg_temp.org(23) and kind = 'dunning_reminder'),
  '2028-03-02 00:00+05:30'::timestamptz::text,
  'with a 1-day grace period, dunning says the grace ends a day after the period end'
);
select pg_temp.at('2028-03-02 00:00+05:30');
select billing.job_expire();
select is(
  (select row(s.status, s.ended_at)::text from public.subscriptions s where s.id = (pg_temp.sub(pg_temp.org(23))).id),
  (select row('expired', '2028-03-02 00:00+05:30'::timestamptz)::text),
  'and billing-expire expires the subscription when that day is over'
);


-- -------------------------------------------------------------------------------------------------
-- billing-purge and the schedules
-- -------------------------------------------------------------------------------------------------

insert into public.usage_quotas (organization_id, metric, window_unit, window_start, count) values
  (pg_temp.org(16), 'lc_metric', 'day', '2026-05-01 00:00+05:30', 1),
  (pg_temp.org(16), 'lc_metric', 'day', '2026-06-20 00:00+05:30', 1),
  (pg_temp.org(16), 'lc_metric', 'month', '2026-05-01 00:00+05:30', 1),
  (pg_temp.org(16), 'lc_metric', 'month', '2026-06-01 00:00+05:30', 1);
select pg_temp.at('2026-07-10 00:00+05:30');
select billing.job_purge();
select is(
  (select string_agg(window_unit || '@' || to_char(window_start at time zone 'Asia/Kolkata', 'MM-DD'), ',' order by window_unit, window_start)
   from public.usage_quotas where organization_id = pg_temp.org(16)),
  'day@06-20,month@06-01',
  'purge drops counters whose window ended more than 35 days ago, and keeps the rest'
);

select is(
  (select jsonb_object_agg(jobname, schedule || ' ' || command) from cron.job where jobname like 'billing-%'),
  '{"billing-expire": "*/5 * * * * select billing.job_expire()",
    "billing-renewal-reminders": "15 * * * * select billing.job_renewal_reminders()",
    "billing-dunning": "30 4 * * * select billing.job_dunning()",
    "billing-purge": "45 3 * * * select billing.job_purge()",
    "billing-partitions": "20 0 * * * select billing.job_maintain_partitions()",
    "billing-analytics-daily": "35 18 * * * select billing.job_revenue_analytics()"}'::jsonb,
  'the billing jobs are scheduled in pg_cron under their stable names'
);
select ok(
  not has_function_privilege('authenticated', 'billing.job_expire(integer)', 'execute')
  and not has_function_privilege('service_role', 'billing.job_expire(integer)', 'execute'),
  'the job functions are for pg_cron (the owner), not for API roles'
);

select * from finish();
rollback;
