-- The simulated clock: billing.now() follows the one row of billing.test_clock, for every
-- connection and role, only where the database itself enables the test clock; a transaction's
-- pin wins over it; a session's own `billing.test_clock = on` enables nothing; no API role can
-- read or move it.
begin;
set local search_path = public, extensions;
select plan(13);

select ok(
  exists (select 1 from pg_catalog.pg_db_role_setting s join pg_catalog.pg_database d on d.oid = s.setdatabase
          where d.datname = current_database() and s.setrole = 0 and 'billing.test_clock=on' = any (s.setconfig)),
  'the test database enables the test clock at database level (scripts/sql/local-settings.sql)'
);
select is(billing.now(), now(), 'with no simulated time and no pin, billing.now() is now()');

insert into billing.test_clock (simulated_at) values ('2027-02-28 23:30:00+05:30');
select is(billing.now(), '2027-02-28 23:30:00+05:30'::timestamptz, 'the table clock is followed where the database enables the test clock');

select tests.as_user('d0d0d0d0-0000-4000-8000-000000000001');
select is(billing.now(), '2027-02-28 23:30:00+05:30'::timestamptz, 'a signed-in user''s functions see the same simulated time');
select throws_ok('select * from billing.test_clock', '42501', null, 'a signed-in user cannot read the clock');
select tests.as_role('service_role');
select is(billing.now(), '2027-02-28 23:30:00+05:30'::timestamptz, 'so does the service role');
select throws_ok($$update billing.test_clock set simulated_at = now()$$, '42501', null, 'the service role cannot move it');
select tests.as_postgres();

set local billing.now = '2030-05-05 10:00:00+05:30';
select is(billing.now(), '2030-05-05 10:00:00+05:30'::timestamptz, 'a transaction''s pin wins over the table clock');
set local billing.now = '';

update billing.test_clock set simulated_at = '2027-03-01 00:30:00+05:30';
select is(billing.now(), '2027-03-01 00:30:00+05:30'::timestamptz, 'moving the row moves the clock');

select throws_ok($$insert into billing.test_clock (id, simulated_at) values (false, now())$$, '23514', null,
  'the clock has one row at most');

do $$ begin execute format('alter database %I reset billing.test_clock', current_database()); end $$;
select is(billing.now(), now(), 'without the database setting the table clock is ignored');
set local billing.test_clock = 'on';
select is(billing.now(), now(), 'a session-level billing.test_clock = on alone does not enable it');
set local billing.now = '2030-05-05 10:00:00+05:30';
select is(billing.now(), now(), 'nor does it enable a pin');
set local billing.now = '';
set local billing.test_clock = '';
do $$ begin execute format('alter database %I set billing.test_clock = ''on''', current_database()); end $$;

select * from finish();
rollback;
