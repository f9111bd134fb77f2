-- usage_metrics in monthly partitions (claimed_month, the UTC month a request was first claimed),
-- under the pinned test clock: a request claimed just before midnight of the 1st and retried just
-- after it, through increment_usage and usage-track (billing.track_usage), is counted once and
-- answered its first answer; a late event is claimed in the month it arrives and counts in its own
-- windows; a request released in the next month counts anew in its one row; settle_usage finds a
-- row of the month before; claims near a boundary take the key's advisory lock, claims mid-month
-- take none; with a retention set, a month past it is dropped and a retry of its request id counts
-- anew. (Concurrent claims on either side of the boundary: tests/usage-partitions.test.ts.)
begin;
set local search_path = public, extensions;
select plan(19);

insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('b3720000-0000-4000-8000-000000000001', 'pm_plan', 'PM plan', 'pro', 'month', 99900,
   '{"hits_per_day": 100, "hits_per_month": 1000, "max_members": 5}');
insert into public.organizations (id, name, timezone) values
  ('c3720000-0000-4000-8000-0000000000a1', 'PM org', 'UTC');
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
values ('c3720000-0000-4000-8000-0000000000a1', 'b3720000-0000-4000-8000-000000000001', 'active',
        '2027-01-15 00:00+00', '2027-06-15 00:00+00');

create function pg_temp.inc(p_amount integer, p_rid text) returns text language sql as $$
  select i.allowed || ' ' || i.used || '/' || i.limit_amount || ' left ' || i.remaining || ' resets ' || i.resets_at
  from public.increment_usage('c3720000-0000-4000-8000-0000000000a1', 'hits', p_amount, p_rid) i $$;
create function pg_temp.track(p_events jsonb) returns text language sql as $$
  select string_agg(t.allowed || ' ' || t.used || '/' || t.limit_amount || ' resets ' || t.resets_at
                    || ' duplicate ' || t.duplicate || coalesce(' ' || t.error, ''), '; ' order by t.ordinal)
  from billing.track_usage(p_events) t $$;
create function pg_temp.counters() returns text language sql as $$
  select string_agg(q.window_unit || ' ' || to_char(q.window_start at time zone 'UTC', 'MM-DD') || '=' || q.count, ', '
                    order by q.window_unit, q.window_start)
  from public.usage_quotas q where q.organization_id = 'c3720000-0000-4000-8000-0000000000a1' $$;
create function pg_temp.rows(p_rid text) returns text language sql as $$
  select coalesce(string_agg((select c.relname::text from pg_class c where c.oid = m.tableoid) || ' ' || m.amount || ' ' || m.state, ', '), 'none')
  from public.usage_metrics m
  where m.organization_id = 'c3720000-0000-4000-8000-0000000000a1' and m.request_id = p_rid $$;
create function pg_temp.advisory_locks() returns integer language sql as $$
  select count(*)::integer from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() $$;

-- Two minutes before midnight of February 1st (UTC): January's month.
set local billing.now = '2027-01-31 23:58:00+00';
select billing.maintain_partitions(billing.now()) > 0 as made \gset
select pg_temp.advisory_locks() as before \gset
select is(pg_temp.inc(2, 'x1'), 'true 2/100 left 98 resets 2027-02-01 00:00:00+00', 'counted in January');
select is(pg_temp.rows('x1'), 'usage_metrics_p202701 2 counted', 'its row is in January''s partition');
select is(pg_temp.advisory_locks(), :before + 1, 'a claim within 10 minutes of the month end takes its key''s advisory lock');

-- One minute after midnight: February.
set local billing.now = '2027-02-01 00:01:00+00';
select is(pg_temp.inc(2, 'x1'), 'true 2/100 left 98 resets 2027-02-01 00:00:00+00',
          'retried in February: the first answer');
select is(pg_temp.track(jsonb_build_array(jsonb_build_object(
            'organization_id', 'c3720000-0000-4000-8000-0000000000a1', 'metric', 'hits', 'quantity', 2, 'request_id', 'x1'))),
          'true 2/100 resets 2027-02-01 00:00:00+00 duplicate true', 'retried through usage-track in February: a duplicate');
select is(pg_temp.rows('x1'), 'usage_metrics_p202701 2 counted', 'still one row, January''s');
select is(pg_temp.counters(), 'day 01-31=2, month 01-01=2', 'counted once: nothing in February''s windows');

-- A late event (January 31st 23:30) arriving in February: claimed in February, counted in January's windows.
select is(pg_temp.track(jsonb_build_array(jsonb_build_object(
            'organization_id', 'c3720000-0000-4000-8000-0000000000a1', 'metric', 'hits', 'quantity', 3,
            'request_id', 'late1', 'occurred_at', '2027-01-31T23:30:00Z'))),
          'true 5/100 resets 2027-02-01 00:00:00+00 duplicate false', 'a late event counts in its own day');
select is(pg_temp.rows('late1'), 'usage_metrics_p202702 3 counted', 'claimed in February''s partition');
select is(pg_temp.inc(3, 'late1'), 'true 5/100 left 95 resets 2027-02-01 00:00:00+00',
          'its retry through increment_usage: the first answer');
select is(pg_temp.counters(), 'day 01-31=5, month 01-01=5', 'January''s windows hold both, once');

-- Released in February, counted anew in February, in its one January row; settled in February.
select is(billing.release_usage('c3720000-0000-4000-8000-0000000000a1', 'x1'), 1, 'released');
select is(pg_temp.inc(2, 'x1'), 'true 2/100 left 98 resets 2027-02-02 00:00:00+00', 'counted anew in February''s windows');
select is((select s.allowed || ' ' || s.used from billing.settle_usage('c3720000-0000-4000-8000-0000000000a1', 'x1', 1) s),
          'true 1', 'settled in February');
select is(pg_temp.rows('x1') || ' | ' || pg_temp.counters(),
          'usage_metrics_p202701 1 settled | day 01-31=3, day 02-01=1, month 01-01=3, month 02-01=1',
          'one row still, and every window counted what it should');

-- Mid-month, claims take no advisory lock; near the next boundary they do.
set local billing.now = '2027-02-15 12:00:00+00';
select pg_temp.advisory_locks() as before \gset
select pg_temp.inc(1, 'mid') as ignored \gset
select is(pg_temp.advisory_locks(), :before, 'a claim mid-month takes no advisory lock');
set local billing.now = '2027-03-01 00:09:00+00';
select pg_temp.inc(1, 'near') as ignored \gset
select is(pg_temp.advisory_locks(), :before + 1, 'a claim 9 minutes into a month takes one');

-- Retention: 31 days after its month ends, a month of rows goes (the partition dropped), and with it
-- the dedupe of its request ids.
update public.billing_settings set usage_metrics_retention_days = 31 where id;
set local billing.now = '2027-04-15 12:00:00+00';
select billing.maintain_partitions(billing.now()) > 0 as made \gset
select is(pg_temp.rows('x1') || ' | ' || pg_temp.rows('late1') || ' | ' || pg_temp.rows('near'),
          'none | none | usage_metrics_p202703 1 counted', 'January and February dropped, March kept');
select is(pg_temp.inc(2, 'x1') || ' | ' || pg_temp.rows('x1'),
          'true 2/100 left 98 resets 2027-04-16 00:00:00+00 | usage_metrics_p202704 2 counted',
          'a retry of a request id whose row was dropped counts anew');

select * from finish();
rollback;
