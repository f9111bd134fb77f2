-- billing.track_usage (the usage-track endpoint's one SQL call), under the pinned test clock: the
-- same sequence of calls answers the same through a batch as through increment_usage one call at
-- a time (windows, refusals, the tightest window, credits past a limit, duplicates), and leaves
-- the same counters, usage rows, credit charges and quota alerts; a batch sent again counts
-- nothing; a released request counts anew; a late event counts in its own day window; a signed-in
-- user's report is limited to members and the plan's client_metrics; client_metrics and
-- usage_late_horizon are validated. (Through the functions server and real concurrency:
-- tests/usage-track.test.ts.)
begin;
set local search_path = public, extensions;
select plan(17);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into public.credit_events (code, name, credits_per_unit) values ('tk_call', 'A call past the quota', 2);
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('b2710000-0000-4000-8000-000000000001', 'tk_plan', 'TK plan', 'pro', 'month', 99900,
   '{"hits_per_minute": 4, "hits_per_day": 6, "hits_per_month": null,
     "calls_per_day": 3, "calls_overage_event": "tk_call",
     "exports_per_day": 10, "client_metrics": ["exports"], "max_members": 5}');
insert into public.organizations (id, name, timezone) values
  ('c2710000-0000-4000-8000-0000000000a1', 'TK one by one', 'Asia/Kolkata'),
  ('c2710000-0000-4000-8000-0000000000b1', 'TK batch', 'Asia/Kolkata');
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
select o, 'b2710000-0000-4000-8000-000000000001', 'active', '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30'
from unnest(array['c2710000-0000-4000-8000-0000000000a1', 'c2710000-0000-4000-8000-0000000000b1']::uuid[]) o;
select billing.operator_grant_credits(o, 5, null, 'track test')
from unnest(array['c2710000-0000-4000-8000-0000000000a1', 'c2710000-0000-4000-8000-0000000000b1']::uuid[]) o;

-- The sequence: (metric, quantity, request id).
create temp table seq (n integer, metric text, qty integer, rid text);
insert into seq values
  (1, 'hits', 2, 'r1'), (2, 'hits', 3, 'r2'), (3, 'hits', 2, 'r3'), (4, 'hits', 1, 'r1'), (5, 'hits', 1, 'r4'),
  (6, 'calls', 3, 'c1'), (7, 'calls', 1, 'c2'), (8, 'calls', 2, 'c3'), (9, 'calls', 1, 'c2'), (10, 'nothing', 1, 'z');

create function pg_temp.answer(allowed boolean, used bigint, lim bigint, remaining bigint, resets timestamptz, credits bigint)
returns text language sql as $$
  select allowed || ' ' || used || '/' || coalesce(lim::text, 'null') || ' left ' || coalesce(remaining::text, 'null')
         || ' resets ' || coalesce(resets::text, '-') || ' credits ' || coalesce(credits::text, 'null') $$;
create function pg_temp.batch(p_org text) returns jsonb language sql as $$
  select jsonb_agg(jsonb_build_object('organization_id', p_org, 'metric', s.metric, 'quantity', s.qty, 'request_id', s.rid)
                   order by s.n) from seq s $$;
create function pg_temp.state(p_org text) returns text language sql as $$
  select concat_ws(' | ',
    (select string_agg(q.metric || ' ' || q.window_unit || ' ' || q.window_start || '=' || q.count, ', '
                       order by q.metric, q.window_unit, q.window_start)
     from public.usage_quotas q where q.organization_id = p_org::uuid),
    (select string_agg(m.metric || ' ' || m.request_id || ' ' || m.amount || ' used ' || m.used || ' units '
                       || coalesce(m.credit_units::text, '-') || ' ' || m.state, ', ' order by m.metric, m.request_id)
     from public.usage_metrics m where m.organization_id = p_org::uuid),
    (select string_agg(c.quantity || 'x' || c.event_code || '=' || c.credits, ', ' order by c.request_id)
     from public.credit_charges c where c.organization_id = p_org::uuid),
    (select string_agg((n.payload ->> 'metric') || ' ' || (n.payload ->> 'window') || ' ' || (n.payload ->> 'threshold'), ', '
                       order by n.payload ->> 'metric', n.payload ->> 'window', (n.payload ->> 'threshold')::int)
     from public.notifications n where n.organization_id = p_org::uuid and n.kind = 'quota_threshold'),
    billing.available_credits(p_org::uuid)::text) $$;

-- One call at a time through increment_usage, and the same as one batch.
create temp table one_by_one as
select s.n, pg_temp.answer(i.allowed, i.used, i.limit_amount, i.remaining, i.resets_at, i.credits_charged) as answer
from seq s cross join lateral public.increment_usage('c2710000-0000-4000-8000-0000000000a1', s.metric, s.qty, s.rid) i
order by s.n;
create temp table batched as
select t.ordinal as n, pg_temp.answer(t.allowed, t.used, t.limit_amount, t.remaining, t.resets_at, t.credits_charged) as answer,
       t.duplicate, t.error
from billing.track_usage(pg_temp.batch('c2710000-0000-4000-8000-0000000000b1')) t;

select is((select string_agg(answer, E'\n' order by n) from batched),
          (select string_agg(answer, E'\n' order by n) from one_by_one),
          'a batch answers each event as increment_usage answers the same calls one at a time');
select is((select string_agg(answer, E'\n' order by n) from batched where n in (2, 5, 8)),
          E'false 2/4 left 2 resets 2026-12-10 06:31:00+00 credits 0\n'
          'false 4/4 left 0 resets 2026-12-10 06:31:00+00 credits 0\n'
          'false 4/3 left 0 resets 2026-12-10 18:30:00+00 credits 0',
          'the refusals: a minute window too full, then full, then too few credits past the day limit');
select is((select answer from batched where n = 7), 'true 4/3 left 0 resets 2026-12-10 18:30:00+00 credits 2',
          'a call past the day limit paid in credits');
select is((select string_agg(n || ' ' || duplicate || ' ' || coalesce(error, '-'), ', ' order by n) from batched),
          '1 false -, 2 false -, 3 false -, 4 true -, 5 false -, 6 false -, 7 false -, 8 false -, 9 true -, 10 false unknown_metric',
          'the repeated request ids are duplicates; a metric the plan does not meter is named');
select is(replace(pg_temp.state('c2710000-0000-4000-8000-0000000000b1'), 'c2710000-0000-4000-8000-0000000000b1', ''),
          replace(pg_temp.state('c2710000-0000-4000-8000-0000000000a1'), 'c2710000-0000-4000-8000-0000000000a1', ''),
          'the same counters, usage rows, credit charges, quota alerts and balance');
select is(pg_temp.state('c2710000-0000-4000-8000-0000000000b1'),
  'calls day 2026-12-09 18:30:00+00=4, hits minute 2026-12-10 06:30:00+00=4, hits day 2026-12-09 18:30:00+00=4, hits month 2026-11-30 18:30:00+00=4'
  || ' | calls c1 3 used 3 units - counted, calls c2 1 used 4 units 1 counted, hits r1 2 used 2 units - counted, hits r3 2 used 4 units - counted'
  || ' | 1xtk_call=2 | calls day 100 | 3',
  'what the batch left, exactly');

-- Sent again: every counted event is a duplicate with its first answer, nothing changes.
create temp table before_again as select pg_temp.state('c2710000-0000-4000-8000-0000000000b1') as s;
create temp table again as
select t.ordinal as n, pg_temp.answer(t.allowed, t.used, t.limit_amount, t.remaining, t.resets_at, t.credits_charged) as answer,
       t.duplicate
from billing.track_usage(pg_temp.batch('c2710000-0000-4000-8000-0000000000b1')) t;
select is((select string_agg(n::text, ',' order by n) from again a where a.duplicate), '1,3,4,6,7,9',
          'sent again: the counted events are duplicates');
select is((select string_agg(a.answer, E'\n' order by a.n) from again a join batched b using (n) where a.duplicate),
          (select string_agg(b.answer, E'\n' order by b.n) from again a join batched b using (n) where a.duplicate),
          'each with its first answer');
select is(pg_temp.state('c2710000-0000-4000-8000-0000000000b1'), (select s from before_again), 'and nothing changed');

-- A released request counts anew.
select is(billing.release_usage('c2710000-0000-4000-8000-0000000000b1', 'r1'), 1, 'r1 released');
select is((select allowed || ' ' || used || ' ' || duplicate from billing.track_usage(
             '[{"organization_id": "c2710000-0000-4000-8000-0000000000b1", "metric": "hits", "quantity": 2, "request_id": "r1"}]')),
          'true 4 false', 'a released request sent again counts anew');

-- A late event counts in the day window of its occurred_at (yesterday, Kolkata time).
select is((select allowed || ' ' || used from billing.track_usage(
             '[{"organization_id": "c2710000-0000-4000-8000-0000000000b1", "metric": "exports", "quantity": 3,
                "request_id": "late", "occurred_at": "2026-12-09T09:00:00+05:30"}]')),
          'true 3', 'a late event inside the horizon is counted');
select is((select string_agg(q.window_start || '=' || q.count, ', ') from public.usage_quotas q
           where q.organization_id = 'c2710000-0000-4000-8000-0000000000b1' and q.metric = 'exports'),
          '2026-12-08 18:30:00+00=3', 'in the day window it belongs to');

-- A signed-in user: a member, one event, a metric of client_metrics.
insert into auth.users (id, email, role, aud) values
  ('d2710000-0000-4000-8000-000000000001', 'tk-user@test.local', 'authenticated', 'authenticated');
insert into public.organization_members (organization_id, user_id, role) values
  ('c2710000-0000-4000-8000-0000000000b1', 'd2710000-0000-4000-8000-000000000001', 'member');
select throws_ok($$select * from billing.track_usage(
    '[{"organization_id": "c2710000-0000-4000-8000-0000000000a1", "metric": "exports", "quantity": 1, "request_id": "u1"}]',
    'd2710000-0000-4000-8000-000000000001')$$, '42501', null, 'a user cannot report for an organization of someone else');
select throws_ok($$select * from billing.track_usage(
    '[{"organization_id": "c2710000-0000-4000-8000-0000000000b1", "metric": "hits", "quantity": 1, "request_id": "u1"}]',
    'd2710000-0000-4000-8000-000000000001')$$, '42501', null, 'nor a metric outside client_metrics');

-- Validation of the plan feature and the setting.
select throws_ok($$update public.billing_plans set features = features || '{"client_metrics": "exports"}' where code = 'tk_plan'$$,
                 '22023', null, 'client_metrics must be an array of metric names');
select throws_ok($$update public.billing_settings set usage_late_horizon = interval '0 seconds' where id$$,
                 '23514', null, 'usage_late_horizon must be at least a minute');

select * from finish();
rollback;
