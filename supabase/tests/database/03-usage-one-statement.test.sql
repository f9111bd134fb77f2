-- increment_usage decides the common case in one statement and leaves the rest to
-- billing.increment_usage_general. Under the pinned test clock, the same sequence of calls answers
-- the same through increment_usage as through the general path alone, and leaves the same
-- counters, usage rows, credit charges, quota alerts and balance: several windows (one
-- unlimited), a refusal, retries, a metric the plan does not meter, a release and the request
-- counted anew, a call past the limit paid in credits and one without enough credits; for an
-- active subscription, a trial and a subscription in grace. The checker is shown failing when the
-- general path is given one different quantity.
begin;
set local search_path = public, extensions;
select plan(9);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into public.credit_events (code, name, credits_per_unit) values ('os_call', 'A call past the quota', 2);
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('b3710000-0000-4000-8000-000000000001', 'os_plan', 'OS plan', 'pro', 'month', 99900,
   '{"hits_per_minute": 4, "hits_per_day": 6, "hits_per_month": null,
     "calls_per_day": 3, "calls_overage_event": "os_call", "max_members": 5}');
-- Pairs: a1/b1 active, a2/b2 trialing, a3/b3 in grace (the period ended a day ago; grace 3 days);
-- c1 active, for the broken input.
insert into public.organizations (id, name, timezone)
select o::uuid, 'OS ' || o, 'Asia/Kolkata'
from unnest(array['c3710000-0000-4000-8000-0000000000a1', 'c3710000-0000-4000-8000-0000000000b1',
                  'c3710000-0000-4000-8000-0000000000a2', 'c3710000-0000-4000-8000-0000000000b2',
                  'c3710000-0000-4000-8000-0000000000a3', 'c3710000-0000-4000-8000-0000000000b3',
                  'c3710000-0000-4000-8000-0000000000c1']) o;
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, trial_end)
select o.id, 'b3710000-0000-4000-8000-000000000001', s.status, s.starts, s.ends, s.trial_end
from public.organizations o
join (values ('1', 'active'::public.subscription_status, '2026-12-01 00:00+05:30'::timestamptz,
              '2027-01-01 00:00+05:30'::timestamptz, null::timestamptz),
             ('2', 'trialing', '2026-12-05 00:00+05:30', '2026-12-19 00:00+05:30', '2026-12-19 00:00+05:30'),
             ('3', 'active', '2026-11-09 12:00+05:30', '2026-12-09 12:00+05:30', null)) as s(pair, status, starts, ends, trial_end)
  on right(o.id::text, 1) = s.pair
where o.name like 'OS c3710000%';
select billing.operator_grant_credits(o.id, 5, null, 'one statement test')
from public.organizations o where o.name like 'OS c3710000%';

-- The sequence: (step, operation, metric, quantity, request id); release gives a request back.
create temp table seq (n integer, op text, metric text, qty integer, rid text);
insert into seq values
  (1, 'inc', 'hits', 2, 'r1'), (2, 'inc', 'hits', 3, 'r2'), (3, 'inc', 'hits', 1, null), (4, 'inc', 'hits', 1, 'r1'),
  (5, 'release', null, null, 'r1'), (6, 'inc', 'hits', 2, 'r1'), (7, 'inc', 'hits', 1, 'r4'), (8, 'inc', 'hits', 1, 'r1'),
  (9, 'inc', 'calls', 3, 'c1'), (10, 'inc', 'calls', 1, 'c2'), (11, 'inc', 'calls', 2, 'c3'), (12, 'inc', 'calls', 1, 'c2'),
  (13, 'inc', 'calls', 5, 'c4'), (14, 'inc', 'nothing', 1, 'z'), (15, 'inc', 'nothing', 1, null);

-- Runs the sequence for an organization through increment_usage, or through the general path
-- alone (p_general), one answer a line; p_broken_step gets one more unit (the broken input).
create function pg_temp.run(p_org uuid, p_general boolean, p_broken_step integer default null)
returns text language plpgsql as $$
declare
  s record;
  a record;
  p record;
  v_out text[] := '{}';
begin
  for s in select * from seq order by n loop
    if s.op = 'release' then
      v_out := v_out || (s.n || ' released ' || billing.release_usage(p_org, s.rid));
      continue;
    end if;
    if p_general then
      p := billing.effective_plan(p_org, billing.now());
      a := billing.increment_usage_general(p_org, s.metric, s.qty + (case when s.n = p_broken_step then 1 else 0 end),
                                           s.rid, billing.now(), p.timezone, p.features);
    else
      a := public.increment_usage(p_org, s.metric, s.qty, s.rid);
    end if;
    v_out := v_out || (s.n || ' ' || a.allowed || ' ' || a.used || '/' || coalesce(a.limit_amount::text, 'null')
                       || ' left ' || coalesce(a.remaining::text, 'null') || ' resets ' || coalesce(a.resets_at::text, '-')
                       || ' credits ' || coalesce(a.credits_charged::text, 'null'));
  end loop;
  return array_to_string(v_out, E'\n');
end $$;

-- What an organization's calls left: counters, usage rows, credit charges, quota alerts, balance.
create function pg_temp.state(p_org uuid) returns text language sql as $$
  select concat_ws(' | ',
    (select string_agg(q.metric || ' ' || q.window_unit || ' ' || q.window_start || '=' || q.count, ', '
                       order by q.metric, q.window_unit, q.window_start)
     from public.usage_quotas q where q.organization_id = p_org),
    (select string_agg(m.metric || ' ' || coalesce(m.request_id, '-') || ' ' || m.amount || ' used ' || m.used || '/'
                       || coalesce(m.limit_amount::text, 'null') || ' ' || m.resets_at || ' ' || m.window_units::text
                       || ' units ' || coalesce(m.credit_units::text, '-') || ' ' || m.state || ' at ' || m.occurred_at,
                       ', ' order by m.metric, m.request_id, m.state)
     from public.usage_metrics m where m.organization_id = p_org),
    (select string_agg(c.quantity || 'x' || c.event_code || '=' || c.credits || ' ' || c.charged, ', ' order by c.request_id)
     from public.credit_charges c where c.organization_id = p_org),
    (select string_agg((n.payload ->> 'metric') || ' ' || (n.payload ->> 'window') || ' ' || (n.payload ->> 'threshold')
                       || ' used ' || (n.payload ->> 'used'), ', '
                       order by n.payload ->> 'metric', n.payload ->> 'window', (n.payload ->> 'threshold')::int)
     from public.notifications n where n.organization_id = p_org and n.kind = 'quota_threshold'),
    billing.available_credits(p_org)::text) $$;

create temp table runs as
select o.pair, pg_temp.run(('c3710000-0000-4000-8000-0000000000a' || o.pair)::uuid, false) as fast,
       pg_temp.run(('c3710000-0000-4000-8000-0000000000b' || o.pair)::uuid, true) as general
from (values ('1'), ('2'), ('3')) o(pair);

select is((select fast from runs where pair = '1'), (select general from runs where pair = '1'),
          'active: increment_usage answers every call as the general path does');
select is(pg_temp.state('c3710000-0000-4000-8000-0000000000a1'),
          replace(pg_temp.state('c3710000-0000-4000-8000-0000000000b1'), '-0000000000b1', '-0000000000a1'),
          'active: the same counters, usage rows, credit charges, quota alerts and balance');
select is((select fast from runs where pair = '2'), (select general from runs where pair = '2'),
          'trialing: the same answers');
select is(pg_temp.state('c3710000-0000-4000-8000-0000000000a2'),
          replace(pg_temp.state('c3710000-0000-4000-8000-0000000000b2'), '-0000000000b2', '-0000000000a2'),
          'trialing: the same state');
select is((select fast from runs where pair = '3'), (select general from runs where pair = '3'),
          'in grace: the same answers');
select is(pg_temp.state('c3710000-0000-4000-8000-0000000000a3'),
          replace(pg_temp.state('c3710000-0000-4000-8000-0000000000b3'), '-0000000000b3', '-0000000000a3'),
          'in grace: the same state');

-- The answers themselves, exactly (active).
select is((select fast from runs where pair = '1'),
  E'1 true 2/4 left 2 resets 2026-12-10 06:31:00+00 credits 0\n'
  '2 false 2/4 left 2 resets 2026-12-10 06:31:00+00 credits 0\n'
  '3 true 3/4 left 1 resets 2026-12-10 06:31:00+00 credits 0\n'
  '4 true 2/4 left 2 resets 2026-12-10 06:31:00+00 credits 0\n'
  '5 released 1\n'
  '6 true 3/4 left 1 resets 2026-12-10 06:31:00+00 credits 0\n'
  '7 true 4/4 left 0 resets 2026-12-10 06:31:00+00 credits 0\n'
  '8 true 3/4 left 1 resets 2026-12-10 06:31:00+00 credits 0\n'
  '9 true 3/3 left 0 resets 2026-12-10 18:30:00+00 credits 0\n'
  '10 true 4/3 left 0 resets 2026-12-10 18:30:00+00 credits 2\n'
  '11 false 4/3 left 0 resets 2026-12-10 18:30:00+00 credits 0\n'
  '12 true 4/3 left 0 resets 2026-12-10 18:30:00+00 credits 2\n'
  '13 false 4/3 left 0 resets 2026-12-10 18:30:00+00 credits 0\n'
  '14 false 0/0 left 0 resets - credits 0\n'
  '15 false 0/0 left 0 resets - credits 0',
  'the answers: a minute window refuses, retries answer their first answer, a released request counts anew, credits past the day limit');
select is(pg_temp.state('c3710000-0000-4000-8000-0000000000a1'),
  'calls day 2026-12-09 18:30:00+00=4, hits minute 2026-12-10 06:30:00+00=4, hits day 2026-12-09 18:30:00+00=4, '
  || 'hits month 2026-11-30 18:30:00+00=4'
  || ' | calls c1 3 used 3/3 2026-12-10 18:30:00+00 {day} units - counted at 2026-12-10 06:30:00+00, '
  || 'calls c2 1 used 4/3 2026-12-10 18:30:00+00 {day} units 1 counted at 2026-12-10 06:30:00+00, '
  || 'hits r1 2 used 3/4 2026-12-10 06:31:00+00 {minute,day,month} units - counted at 2026-12-10 06:30:00+00, '
  || 'hits r4 1 used 4/4 2026-12-10 06:31:00+00 {minute,day,month} units - counted at 2026-12-10 06:30:00+00, '
  || 'hits - 1 used 3/4 2026-12-10 06:31:00+00 {minute,day,month} units - counted at 2026-12-10 06:30:00+00'
  || ' | 1xos_call=2 2 | calls day 100 used 3 | 3',
  'what the calls left, exactly');

-- The checker fails on a broken input: the general path given one more unit at step 7.
select isnt(pg_temp.run('c3710000-0000-4000-8000-0000000000c1', true, 7), (select fast from runs where pair = '1'),
            'a general path given a different quantity answers differently: the comparison can fail');

select * from finish();
rollback;
