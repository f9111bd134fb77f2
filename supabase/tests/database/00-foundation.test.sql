-- The local stack's Supabase compatibility layer behaves as Supabase's does.
begin;
select plan(9);

select is(
  (select extnamespace::regnamespace::text from pg_extension where extname = 'pgtap'),
  'extensions',
  'pgtap lives in schema extensions'
);
select is(
  (select extnamespace::regnamespace::text from pg_extension where extname = 'pg_cron'),
  'pg_catalog',
  'pg_cron is installed in pg_catalog, as on Supabase'
);

select set_config('request.jwt.claims',
  '{"sub":"6d1b3c9e-2f4a-4b8e-9c1d-0a2b3c4d5e6f","role":"authenticated","email":"a@b.in"}', true);
select is(auth.uid(), '6d1b3c9e-2f4a-4b8e-9c1d-0a2b3c4d5e6f'::uuid, 'auth.uid() returns the sub of request.jwt.claims');
select is(auth.role(), 'authenticated', 'auth.role() returns the role of request.jwt.claims');
select is(auth.jwt() ->> 'email', 'a@b.in', 'auth.jwt() returns the whole claims object');

select set_config('request.jwt.claims', '', true);
select is(auth.uid(), null, 'auth.uid() is null when there are no claims');

select ok(
  (select rolbypassrls from pg_roles where rolname = 'service_role'),
  'service_role bypasses RLS'
);

select isnt(
  cron.schedule('stack-test-job', '*/5 * * * *', 'select 1'),
  null::bigint,
  'cron.schedule works in the test database'
);
select is(
  (select schedule from cron.job where jobname = 'stack-test-job'),
  '*/5 * * * *',
  'the scheduled job is stored in cron.job'
);

select * from finish();
rollback;
