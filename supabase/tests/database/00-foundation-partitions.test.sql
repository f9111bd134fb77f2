-- Monthly partitions (billing.partitioned_tables, billing.maintain_partitions): a registered table
-- gets its current and coming months' partitions, rows its default partition caught move into
-- the partition of their month when it is made, whole months past retention are detached and
-- dropped (never a DELETE), a second run changes nothing, moving the test clock runs it (logged
-- like the other jobs), and a table registered wrongly is refused with the reason.
begin;
set local search_path = public, extensions;
select plan(22);

-- A table of this test, opted in the way a module does (00_foundation.sql's header); the tables
-- the modules register are left out here, so the counts below are this table's.
delete from billing.partitioned_tables;
create table billing.pt_events (
  id bigint generated always as identity,
  at timestamptz not null,
  note text not null check (note <> ''),
  primary key (id, at)
) partition by range (at);
create table billing.pt_events_default partition of billing.pt_events default;
insert into billing.partitioned_tables (table_name, partition_column, retention_setting, months_ahead)
values ('billing.pt_events', 'at', 'notification_retention_days', 2);

create function pg_temp.parts() returns text language sql as $$
  select coalesce(string_agg(c.relname::text, ',' order by c.relname), '')
  from pg_inherits i join pg_class c on c.oid = i.inhrelid
  where i.inhparent = 'billing.pt_events'::regclass
$$;
create function pg_temp.where_is(p_note text) returns text language sql as $$
  select string_agg(e.tableoid::regclass::text, ',') from billing.pt_events e where e.note = p_note
$$;

-- Create ahead -------------------------------------------------------------------------------------
-- A row of a month with no partition yet: the default partition takes it (an insert never fails).
insert into billing.pt_events (at, note) values ('2027-06-10 08:00+00', 'june'), ('2040-01-01 00:00+00', 'far');
select is(pg_temp.where_is('june'), 'billing.pt_events_default', 'a row with no partition for its month lands in the default partition');

select is(billing.maintain_partitions('2027-01-31 23:59:59+00'), 5,
  'at 2027-01-31 23:59 UTC: January and the 2 months after it, and the 2 months the default holds rows of');
select is(pg_temp.parts(),
  'pt_events_default,pt_events_p202701,pt_events_p202702,pt_events_p202703,pt_events_p202706,pt_events_p204001',
  'partitions <table>_pYYYYMM beside the default');
select is(pg_get_expr(c.relpartbound, c.oid), 'FOR VALUES FROM (''2027-01-01 00:00:00+00'') TO (''2027-02-01 00:00:00+00'')',
  'a partition is one UTC month')
from pg_class c where c.oid = 'billing_partitions.pt_events_p202701'::regclass;

-- Move from default -----------------------------------------------------------------------------
select is(pg_temp.where_is('june'), 'billing_partitions.pt_events_p202706', 'the default''s row moved into the partition of its month');
select is((select count(*)::int from billing.pt_events_default), 0, 'the default partition is left empty');
select is((select count(*)::int from billing.pt_events), 2, 'no row lost or doubled by the move');
select ok(
  (select count(*) = 1 from pg_indexes where schemaname = 'billing_partitions' and tablename = 'pt_events_p202706' and indexdef like '%(id, at)%'),
  'a made partition has the parent''s primary key');
select throws_ok($$insert into billing_partitions.pt_events_p202701 (id, at, note) values (1, '2027-01-02', '')$$, '23514', null,
  'and its checks');
select ok(
  not has_table_privilege('service_role', 'billing_partitions.pt_events_p202701', 'select')
  and not has_table_privilege('authenticated', 'billing_partitions.pt_events_p202701', 'select'),
  'a partition grants nothing to the API roles');

-- Idempotent ----------------------------------------------------------------------------------------
select is(billing.maintain_partitions('2027-01-31 23:59:59+00'), 0, 'a second run at the same time changes nothing');
select is(pg_temp.parts(),
  'pt_events_default,pt_events_p202701,pt_events_p202702,pt_events_p202703,pt_events_p202706,pt_events_p204001',
  'and leaves the same partitions');

-- Drop past retention -----------------------------------------------------------------------------
insert into billing.pt_events (at, note) values ('2027-01-05 00:00+00', 'jan'), ('2027-02-28 23:00+00', 'feb'),
  ('2027-03-01 00:00+00', 'mar');
-- A DELETE from January's partition would raise: retention must drop the table, never delete rows.
create trigger no_delete before delete on billing_partitions.pt_events_p202701
  for each row execute function billing.reject_change();
update public.billing_settings set notification_retention_days = 31;
-- At 2027-04-01 12:00 UTC: January ended 2027-02-01 (+31 days = 03-04: past); February ended 03-01
-- (+31 = 04-01 00:00: past); March ends 04-01 (+31 = 05-02: kept). April, May are made.
select is(billing.maintain_partitions('2027-04-01 12:00+00'), 4, 'two months past retention dropped, two months ahead made');
select is(pg_temp.parts(),
  'pt_events_default,pt_events_p202703,pt_events_p202704,pt_events_p202705,pt_events_p202706,pt_events_p204001',
  'January and February are gone, March (ended 0.5 days ago) and later stay');
select is((select string_agg(note, ',' order by at) from billing.pt_events), 'mar,june,far',
  'their rows went with them; the others are kept');
select is((select count(*)::int from pg_class where relname in ('pt_events_p202701', 'pt_events_p202702')), 0,
  'the dropped partitions no longer exist (detached and dropped)');

-- Clock moved ahead -------------------------------------------------------------------------------
update public.billing_settings set notification_retention_days = 3650;
insert into billing.test_clock (simulated_at) values ('2029-05-10 10:00+05:30')
  on conflict (id) do update set simulated_at = excluded.simulated_at;
select is(pg_temp.parts(),
  'pt_events_default,pt_events_p202703,pt_events_p202704,pt_events_p202705,pt_events_p202706,pt_events_p202905,pt_events_p202906,pt_events_p202907,pt_events_p204001',
  'moving the test clock two years ahead makes that month''s partitions');
select is(
  (select jsonb_build_object('as_of', r.as_of, 'rows', r.rows_affected, 'error', r.error)
   from billing.job_runs r where r.job_name = 'billing-partitions' order by r.id desc limit 1),
  jsonb_build_object('as_of', '2029-05-10 10:00+05:30'::timestamptz, 'rows', 3, 'error', null),
  'logged in billing.job_runs like the other jobs, at the clock''s time');
insert into billing.pt_events (note, at) values ('now', billing.now());
select is(pg_temp.where_is('now'), 'billing_partitions.pt_events_p202905', 'a row stamped billing.now() goes to its month''s partition');

-- Broken input -----------------------------------------------------------------------------------
create table billing.pt_plain (at timestamptz not null);
insert into billing.partitioned_tables (table_name, partition_column) values ('billing.pt_plain', 'at');
select throws_ok($$select billing.maintain_partitions('2029-05-10 00:00+00')$$, '42P16',
  'billing.partitioned_tables: billing.pt_plain is not partitioned by range on its timestamptz column at',
  'a registered table that is not partitioned is refused, naming it');
select is(billing.job_maintain_partitions(), null, 'the job fails without changing anything');
delete from billing.partitioned_tables where table_name = 'billing.pt_plain';
update billing.partitioned_tables set retention_setting = 'no_such_days' where table_name = 'billing.pt_events';
select throws_ok($$select billing.maintain_partitions('2029-05-10 00:00+00')$$, '42703',
  'billing.partitioned_tables: billing.pt_events names retention setting no_such_days, not an integer column of public.billing_settings',
  'a retention setting billing_settings does not have is refused, naming it');

select * from finish();
rollback;
