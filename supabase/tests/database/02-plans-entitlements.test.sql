-- Entitlements computed on read and atomic usage counting, driven by the test clock.
begin;
set local search_path = public, extensions;
select plan(88);

-- Fixture: a paid plan with several windows for one metric, an organization in IST, its owner,
-- and an outsider.
insert into auth.users (id, email) values
  ('e4000000-0000-4000-8000-000000000001', 'ent-owner@test.local'),
  ('e4000000-0000-4000-8000-000000000002', 'ent-outsider@test.local');
insert into public.organizations (id, name) values
  ('e4000000-0000-4000-8000-0000000000a1', 'Entitlements org'),
  ('e4000000-0000-4000-8000-0000000000b1', 'Entitlements other org');
insert into public.organization_members (organization_id, user_id, role) values
  ('e4000000-0000-4000-8000-0000000000a1', 'e4000000-0000-4000-8000-000000000001', 'owner'),
  ('e4000000-0000-4000-8000-0000000000b1', 'e4000000-0000-4000-8000-000000000002', 'owner');
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('e4000000-0000-4000-8000-0000000000c1', 'ent_pro', 'Entitlements Pro', 'pro', 'month', 99900,
   '{"widgets_per_minute": 3, "widgets_per_day": 5, "calls_per_month": 10, "free_calls_per_day": null,
     "max_watchlists": 2, "premium_tools": ["x"]}');

create temp table sub_fixture (id uuid) on commit drop;

-- Helper: give the organization one subscription in a given state (the same row, rewritten: a
-- subscription has history from its creation, so it cannot be deleted).
create function pg_temp.subscribe(p_status public.subscription_status, p_start timestamptz, p_end timestamptz,
                                  p_trial_end timestamptz default null, p_cancel_at_end boolean default false)
returns void language sql as $$
  insert into public.subscriptions as s (id, organization_id, plan_id, status, current_period_start, current_period_end,
                                         trial_end, cancel_at_period_end, canceled_at)
  values ('e4000000-0000-4000-8000-0000000000d1', 'e4000000-0000-4000-8000-0000000000a1',
          'e4000000-0000-4000-8000-0000000000c1', p_status, p_start, p_end,
          p_trial_end, p_cancel_at_end, case when p_status = 'canceled' or p_cancel_at_end then p_start end)
  on conflict (id) do update
  set status = excluded.status, current_period_start = excluded.current_period_start,
      current_period_end = excluded.current_period_end, trial_end = excluded.trial_end,
      cancel_at_period_end = excluded.cancel_at_period_end, canceled_at = excluded.canceled_at;
$$;

create function pg_temp.ent() returns jsonb language sql as $$
  select public.get_entitlements('e4000000-0000-4000-8000-0000000000a1')
$$;

-- ------------------------------------------------------------------------------------------------
-- effective_tier / get_entitlements
-- ------------------------------------------------------------------------------------------------

select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'free',
  'an organization without a subscription is on the free tier');
select is(pg_temp.ent() ->> 'reason', 'free', 'and get_entitlements says why: free');
select is(pg_temp.ent() ->> 'plan_code', 'free', 'and names the free plan');

-- Trial: 2026-03-01 to trial end 2026-03-08 10:00 IST.
select pg_temp.subscribe('trialing', '2026-03-01 10:00+05:30', '2026-03-08 10:00+05:30', '2026-03-08 10:00+05:30');
set local billing.now = '2026-03-08 09:59:59+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'a trial gives the paid plan before its end');
select is(pg_temp.ent() ->> 'reason', 'trial', 'and the reason is trial');
set local billing.now = '2026-03-08 10:00:00+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'free', 'a trial that ended unpaid falls to free at once (no grace)');
select is(pg_temp.ent() ->> 'reason', 'expired', 'and the reason is expired');

-- Active period 2026-01-31 to 2026-02-28 (IST), grace 3 days.
select pg_temp.subscribe('active', '2026-01-31 00:00+05:30', '2026-02-28 00:00+05:30');
set local billing.now = '2026-02-27 23:59:59+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'an active subscription gives the paid plan inside its period');
select is(pg_temp.ent() ->> 'reason', 'active', 'reason active inside the period');
select is((pg_temp.ent() ->> 'in_grace')::boolean, false, 'not in grace inside the period');
select is((pg_temp.ent() ->> 'current_period_end')::timestamptz, '2026-02-28 00:00+05:30'::timestamptz,
  'get_entitlements reports the period end');
select is(pg_temp.ent() -> 'features' ->> 'widgets_per_day', '5', 'get_entitlements reports the plan features');

set local billing.now = '2026-02-28 00:00:00+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'at the period end the paid plan is kept in grace');
select is((pg_temp.ent() ->> 'in_grace')::boolean, true, 'in_grace is true after the period end');
select is(pg_temp.ent() ->> 'reason', 'grace', 'reason grace');
select is((pg_temp.ent() ->> 'grace_ends_at')::timestamptz, '2026-03-03 00:00+05:30'::timestamptz,
  'grace ends 3 days (the setting) after the period end');

set local billing.now = '2026-03-02 23:59:59+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'one second before the grace ends: still paid');
set local billing.now = '2026-03-03 00:00:00+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'free', 'when the grace ends: free, with no cron job having run');
select is(pg_temp.ent() ->> 'reason', 'expired', 'reason expired once the grace is over');

update public.billing_settings set grace_days = 5;
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'the grace period is a setting (5 days keeps the plan)');
update public.billing_settings set grace_days = 3;

-- past_due (set by a job or a failed recurring charge) inside grace, and after it.
select pg_temp.subscribe('past_due', '2026-01-31 00:00+05:30', '2026-02-28 00:00+05:30');
set local billing.now = '2026-03-01 12:00:00+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'past_due inside grace keeps the paid plan');
set local billing.now = '2026-03-04 00:00:00+05:30';
select is(pg_temp.ent() ->> 'reason', 'past_due', 'past_due after grace: free, reason past_due');
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'free', 'past_due after grace is the free tier');

-- Cancelled by the user at period end: paid until the end, no grace.
select pg_temp.subscribe('active', '2026-01-31 00:00+05:30', '2026-02-28 00:00+05:30', null, true);
set local billing.now = '2026-02-27 12:00:00+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'a cancel at period end keeps the plan until the end');
set local billing.now = '2026-02-28 00:00:01+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'free', 'a user-cancelled subscription gets no grace');
select is(pg_temp.ent() ->> 'reason', 'canceled', 'reason canceled');

-- Cancelled immediately.
select pg_temp.subscribe('canceled', '2026-01-31 00:00+05:30', '2026-02-28 00:00+05:30');
set local billing.now = '2026-02-10 00:00:00+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'free', 'an immediately cancelled subscription is free at once');

-- Who may ask.
select pg_temp.subscribe('active', '2026-01-31 00:00+05:30', '2026-02-28 00:00+05:30');
set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"e4000000-0000-4000-8000-000000000001","role":"authenticated"}', true);
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'a member can read their organization''s tier');
select is((select count(*)::int from public.organization_entitlements), 1, 'the organization_entitlements view shows a member their organization only');
select is((select tier from public.organization_entitlements), 'pro', 'and the view agrees with effective_tier');
select set_config('request.jwt.claims', '{"sub":"e4000000-0000-4000-8000-000000000002","role":"authenticated"}', true);
select throws_ok($$select public.get_entitlements('e4000000-0000-4000-8000-0000000000a1')$$, '42501', null,
  'a non-member gets an error, not another tenant''s entitlements');
select throws_ok($$select public.effective_tier('e4000000-0000-4000-8000-0000000000a1')$$, '42501', null,
  'a non-member cannot read another tenant''s tier');
select throws_ok($$select * from public.increment_usage('e4000000-0000-4000-8000-0000000000b1', 'widgets')$$, '42501', null,
  'signed-in users cannot call increment_usage');
reset role;
select set_config('request.jwt.claims', '', true);
select throws_ok($$select public.get_entitlements('e4000000-0000-4000-8000-00000000ffff')$$, '42501', null,
  'an unknown organization gets the same error as a foreign one');
set local role service_role;
select set_config('request.jwt.claims', '{"role":"service_role"}', true);
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'service_role reads any organization''s tier');
select throws_ok($$select public.effective_tier('e4000000-0000-4000-8000-00000000ffff')$$, '42501', null,
  'service_role gets the same error for an organization that does not exist');
reset role;
select set_config('request.jwt.claims', '', true);

-- ------------------------------------------------------------------------------------------------
-- increment_usage
-- ------------------------------------------------------------------------------------------------

set local billing.now = '2026-02-10 12:00:10+05:30';
create function pg_temp.inc(p_metric text, p_amount integer default 1, p_request text default null)
returns text language sql as $$
  select row(allowed, used, limit_amount, remaining, resets_at)::text
  from public.increment_usage('e4000000-0000-4000-8000-0000000000a1', p_metric, p_amount, p_request)
$$;
create function pg_temp.window_count(p_metric text, p_unit public.usage_window, p_start timestamptz)
returns bigint language sql as $$
  select count from public.usage_quotas
  where organization_id = 'e4000000-0000-4000-8000-0000000000a1' and metric = p_metric
    and window_unit = p_unit and window_start = p_start
$$;
create function pg_temp.counts(p_metric text) returns text language sql as $$
  select coalesce(string_agg(window_unit || '=' || count, ',' order by window_unit, window_start), '')
  from public.usage_quotas where organization_id = 'e4000000-0000-4000-8000-0000000000a1' and metric = p_metric
$$;

select is(pg_temp.inc('widgets'), '(t,1,3,2,"2026-02-10 06:31:00+00")',
  'the first call is allowed and reports the tightest window (minute: limit 3, resets at the next minute)');
select is(pg_temp.counts('widgets'), 'minute=1,day=1', 'every window of the metric is counted');
select is(pg_temp.inc('widgets', 2), '(t,3,3,0,"2026-02-10 06:31:00+00")', 'a call that exactly fits is allowed');
select is(pg_temp.inc('widgets'), '(f,3,3,0,"2026-02-10 06:31:00+00")', 'one more in the same minute is denied');
select is(pg_temp.counts('widgets'), 'minute=3,day=3', 'a denied call changes nothing');
select is((select count(*)::int from public.usage_metrics where organization_id = 'e4000000-0000-4000-8000-0000000000a1'),
  2, 'each allowed call records one usage_metrics row; the denied one none');

set local billing.now = '2026-02-10 12:01:00+05:30';
select is(pg_temp.inc('widgets', 2), '(t,5,5,0,"2026-02-10 18:30:00+00")',
  'in the next minute the day window (5) becomes the tightest and resets at IST midnight');
select is(pg_temp.counts('widgets'), 'minute=3,minute=2,day=5', 'a new minute window starts; the day window carries on');
set local billing.now = '2026-02-10 12:02:00+05:30';
select is(pg_temp.inc('widgets'), '(f,5,5,0,"2026-02-10 18:30:00+00")',
  'the minute has room but the day does not: denied (all windows together)');
select is((select count from public.usage_quotas where organization_id = 'e4000000-0000-4000-8000-0000000000a1'
           and metric = 'widgets' and window_unit = 'minute' and window_start = '2026-02-10 12:02+05:30'), null::bigint,
  'the denied call left no counter row behind in the window that had room');

set local billing.now = '2026-02-10 23:59:59+05:30';
select is((select allowed from public.increment_usage('e4000000-0000-4000-8000-0000000000a1', 'widgets')), false, 'one second before IST midnight the day is still full');
set local billing.now = '2026-02-11 00:00:00+05:30';
select is(pg_temp.inc('widgets'), '(t,1,3,2,"2026-02-10 18:31:00+00")', 'at IST midnight (18:30 UTC) a new day window starts');

-- Month windows: 31 January to February, local to the organization.
set local billing.now = '2026-01-31 23:59:00+05:30';
select is(pg_temp.inc('calls', 9), '(t,9,10,1,"2026-01-31 18:30:00+00")',
  'a month window on 31 January resets at 1 February 00:00 IST');
set local billing.now = '2026-02-01 00:00:00+05:30';
select is(pg_temp.inc('calls', 9), '(t,9,10,1,"2026-02-28 18:30:00+00")',
  'on 1 February a new month window starts and resets at 1 March 00:00 IST');
select is((select allowed from public.increment_usage('e4000000-0000-4000-8000-0000000000a1', 'calls', 2)), false, 'more than the month allows is denied');

update public.organizations set timezone = 'America/New_York' where id = 'e4000000-0000-4000-8000-0000000000a1';
select is((select resets_at from public.increment_usage('e4000000-0000-4000-8000-0000000000a1', 'calls', 1)), '2026-02-01 05:00:00+00'::timestamptz,
  'windows follow the organization''s own timezone (New York: still January there, resets at its midnight)');
update public.organizations set timezone = 'Asia/Kolkata' where id = 'e4000000-0000-4000-8000-0000000000a1';

-- Unlimited and not included.
select is(pg_temp.inc('free_calls', 1000), '(t,1000,,,"2026-02-01 18:30:00+00")',
  'a null limit is unlimited and still counted');
select is(pg_temp.inc('gadgets'), '(f,0,0,0,)', 'a metric the plan does not include is denied with limit 0');
select is(pg_temp.counts('gadgets'), '', 'and nothing is counted for it');

-- Idempotent retries.
set local billing.now = '2026-02-15 10:00:00+05:30';
select is(pg_temp.inc('widgets', 2, 'req-1'), '(t,2,3,1,"2026-02-15 04:31:00+00")', 'a call with a request id is counted');
select is(pg_temp.inc('widgets', 2, 'req-1'), '(t,2,3,1,"2026-02-15 04:31:00+00")', 'its retry returns the first answer');
select is(pg_temp.window_count('widgets', 'minute', '2026-02-15 10:00+05:30'), 2::bigint, 'and is counted once');
select is((select count(*)::int from public.usage_metrics where request_id = 'req-1'), 1, 'one usage_metrics row for the request id');

-- Settle and release.
select is((select row(allowed, used) from billing.settle_usage('e4000000-0000-4000-8000-0000000000a1', 'req-1', 1))::text,
  '(t,1)', 'settling lower gives the difference back');
select is((select row(allowed, used) from billing.settle_usage('e4000000-0000-4000-8000-0000000000a1', 'req-1', 1))::text,
  '(t,1)', 'settling again to the same amount changes nothing');
select is((select row(allowed, used) from billing.settle_usage('e4000000-0000-4000-8000-0000000000a1', 'req-1', 3))::text,
  '(t,3)', 'settling higher within the remaining quota is taken');
select is((select row(allowed, used) from billing.settle_usage('e4000000-0000-4000-8000-0000000000a1', 'req-1', 4))::text,
  '(f,3)', 'settling higher than the remaining quota is refused and changes nothing');
select is(billing.release_usage('e4000000-0000-4000-8000-0000000000a1', 'req-1'), 1, 'release undoes a counted request');
select is(pg_temp.window_count('widgets', 'minute', '2026-02-15 10:00+05:30'), 0::bigint, 'and gives its amount back');
select is(billing.release_usage('e4000000-0000-4000-8000-0000000000a1', 'req-1'), 0, 'releasing again changes nothing');
select throws_ok($$select * from billing.settle_usage('e4000000-0000-4000-8000-0000000000a1', 'req-1', 1)$$, '22023', null,
  'a released request cannot be settled');
select throws_ok($$select * from billing.settle_usage('e4000000-0000-4000-8000-0000000000a1', 'nope', 1)$$, 'P0002', null,
  'settling an unknown request id is an error');
select is(pg_temp.inc('widgets', 2, 'req-1'), '(t,2,3,1,"2026-02-15 04:31:00+00")',
  'a released request id that is retried is counted anew (never an uncounted "allowed")');
select is(pg_temp.window_count('widgets', 'minute', '2026-02-15 10:00+05:30'), 2::bigint, 'and its amount is in the counter again');
update public.billing_plans set features = features - 'widgets_per_minute' - 'widgets_per_day'
where id = 'e4000000-0000-4000-8000-0000000000c1';
select is((select allowed from billing.settle_usage('e4000000-0000-4000-8000-0000000000a1', 'req-1', 3)), false,
  'settling higher after the plan dropped the metric is refused (a missing key is limit 0, not unlimited)');
update public.billing_plans set features = features || '{"widgets_per_minute": 3, "widgets_per_day": 5}'
where id = 'e4000000-0000-4000-8000-0000000000c1';

-- Bad input.
select throws_ok($$select * from public.increment_usage('e4000000-0000-4000-8000-0000000000a1', 'widgets', 0)$$, '22023',
  'increment_usage: amount must be a positive integer, got 0', 'amount 0 is refused with a clear message');
select throws_ok($$select * from public.increment_usage('e4000000-0000-4000-8000-0000000000a1', 'widgets', -5)$$, '22023', null,
  'a negative amount is refused');
select throws_ok($$select * from public.increment_usage('e4000000-0000-4000-8000-00000000ffff', 'widgets')$$, 'P0002',
  'increment_usage: unknown organization e4000000-0000-4000-8000-00000000ffff', 'an unknown organization is an error');
select throws_ok($$select * from public.increment_usage('e4000000-0000-4000-8000-0000000000a1', 'Widgets!')$$, '22023', null,
  'a metric name of the wrong format is an error');
select throws_ok($$select * from public.increment_usage('e4000000-0000-4000-8000-0000000000a1', 'widgets_per_day')$$, '22023', null,
  'a feature key is not a metric name');

-- ------------------------------------------------------------------------------------------------
-- Count limits: max_watchlists on the demo watchlists table.
-- ------------------------------------------------------------------------------------------------

set local billing.now = '2026-02-15 10:00:00+05:30';
insert into public.watchlists (organization_id, name) values ('e4000000-0000-4000-8000-0000000000a1', 'one');
insert into public.watchlists (organization_id, name) values ('e4000000-0000-4000-8000-0000000000a1', 'two');
select throws_ok($$insert into public.watchlists (organization_id, name) values ('e4000000-0000-4000-8000-0000000000a1', 'three')$$,
  '23514', 'max_watchlists limit reached: the plan allows 2 and the organization has 2',
  'a third watchlist passes max_watchlists = 2 and is refused');
update public.billing_plans set features = features - 'max_watchlists' where id = 'e4000000-0000-4000-8000-0000000000c1';
select throws_ok($$insert into public.watchlists (organization_id, name) values ('e4000000-0000-4000-8000-0000000000a1', 'three')$$,
  '23514', null, 'a plan without the max_ key allows none');
update public.billing_plans set features = features || '{"max_watchlists": 10}' where id = 'e4000000-0000-4000-8000-0000000000c1';
select lives_ok($$insert into public.watchlists (organization_id, name) values ('e4000000-0000-4000-8000-0000000000a1', 'three')$$,
  'a higher max_ limit in the plan allows more at once');

set local role authenticated;
select set_config('request.jwt.claims', '{"sub":"e4000000-0000-4000-8000-000000000001","role":"authenticated"}', true);
select lives_ok($$insert into public.watchlists (organization_id, name) values ('e4000000-0000-4000-8000-0000000000a1', 'mine')$$,
  'a member adds a watchlist through RLS');
select throws_ok($$insert into public.watchlists (organization_id, name) values ('e4000000-0000-4000-8000-0000000000b1', 'theirs')$$,
  '42501', null, 'a member cannot add a watchlist to another organization');
select throws_ok($$insert into public.watchlists (organization_id, name, created_by)
                   values ('e4000000-0000-4000-8000-0000000000a1', 'spoofed', 'e4000000-0000-4000-8000-000000000002')$$,
  '42501', null, 'a member cannot add a watchlist in another user''s name');
select lives_ok($$update public.watchlists set name = 'renamed' where name = 'mine'$$, 'a member renames a watchlist');
select is((select count(*)::int from public.watchlists where name = 'renamed'), 1, 'and the new name is stored');
select throws_ok($$update public.watchlists set organization_id = 'e4000000-0000-4000-8000-0000000000b1' where name = 'renamed'$$,
  '42501', null, 'a member cannot move a watchlist to another organization');
reset role;

-- A downgrade scheduled for the period end applies on read once due, before any job runs.
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('e4000000-0000-4000-8000-0000000000c2', 'ent_basic', 'Entitlements Basic', 'basic', 'month', 49900, '{}');
select pg_temp.subscribe('active', '2026-01-31 00:00+05:30', '2026-02-28 00:00+05:30');
update public.subscriptions
set pending_plan_id = 'e4000000-0000-4000-8000-0000000000c2', pending_plan_effective_at = '2026-02-28 00:00+05:30'
where organization_id = 'e4000000-0000-4000-8000-0000000000a1';
set local billing.now = '2026-02-27 23:59:59+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'pro', 'a scheduled downgrade waits for the period end');
set local billing.now = '2026-02-28 00:00:00+05:30';
select is(public.effective_tier('e4000000-0000-4000-8000-0000000000a1'), 'basic',
  'at the period end the downgraded plan applies, with no job having run');
select is(pg_temp.ent() ->> 'reason', 'grace', 'and an unpaid renewal of the downgraded plan is in grace');

select * from finish();
rollback;
