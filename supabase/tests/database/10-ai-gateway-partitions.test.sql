-- The AI gateway's log (public.ai_requests) in monthly partitions by created_at: a request is found
-- by its request id whichever month holds it (settling, releasing or expiring one reserved just
-- before a month boundary works after it), a second expiry across the boundary changes nothing,
-- the request id names one row, and a month past ai_request_retention_days is dropped whole
-- while the next month stays; by default nothing is dropped.
begin;
set local search_path = public, extensions;
select plan(10);

insert into public.organizations (id, name) values ('a1a1a1a1-0000-4000-8000-000000000001', 'Partitioned AI org');
select billing.maintain_partitions('2027-01-15 00:00+00');

insert into public.ai_requests (organization_id, request_id, model, status, reserved_tokens, reserved_paise, expires_at, created_at)
values ('a1a1a1a1-0000-4000-8000-000000000001', 'ai_' || repeat('a', 32), 'llama-test', 'pending', 700, 12,
        '2027-02-01 00:09:59+00', '2027-01-31 23:59:59+00'),
       ('a1a1a1a1-0000-4000-8000-000000000001', 'ai_' || repeat('b', 32), 'llama-test', 'pending', 300, 5,
        '2027-02-01 00:10:01+00', '2027-02-01 00:00:01+00');

create function pg_temp.where_is(p_request_id text) returns text language sql as $$
  select string_agg(r.tableoid::regclass::text || ':' || r.status, ',') from public.ai_requests r where r.request_id = p_request_id
$$;

select is(pg_temp.where_is('ai_' || repeat('a', 32)), 'billing_partitions.ai_requests_p202701:pending',
  'a call reserved one second before February is in January''s partition');
select is(pg_temp.where_is('ai_' || repeat('b', 32)), 'billing_partitions.ai_requests_p202702:pending',
  'one reserved a second after midnight in February''s');

-- After the boundary: the January reservation is found by its id and expired.
select set_config('billing.now', '2027-02-01 00:30:00+00', true);
select is(billing.ai_expire('ai_' || repeat('a', 32)), true, 'expiring January''s reservation in February finds it');
select is(pg_temp.where_is('ai_' || repeat('a', 32)), 'billing_partitions.ai_requests_p202701:expired',
  'it is expired in place: one row, in its own month');
select set_config('billing.now', '2027-03-01 00:30:00+00', true);
select is(billing.ai_expire('ai_' || repeat('a', 32)), false, 'expiring it again a month later changes nothing');
select is(billing.ai_expire('ai_' || repeat('b', 32)), true, 'February''s is expired too');

-- Retention: nothing by default; a setting drops whole months.
select billing.maintain_partitions('2030-01-01 00:00+00');
select is((select count(*)::int from public.ai_requests where organization_id = 'a1a1a1a1-0000-4000-8000-000000000001'), 2,
  'with ai_request_retention_days unset (the default) three years later both are kept');
update public.billing_settings set ai_request_retention_days = 1;
-- January ended 2027-02-01 (+1 day: 02-02, past at 03-01 12:00); February ended 03-01 (+1 day: 03-02, not yet).
select billing.maintain_partitions('2027-03-01 12:00+00');
select is(pg_temp.where_is('ai_' || repeat('a', 32)), null, 'with a retention of 1 day, January''s month is dropped');
select is(pg_temp.where_is('ai_' || repeat('b', 32)), 'billing_partitions.ai_requests_p202702:expired', 'February''s stays');
select throws_ok($$select billing.ai_expire('ai_' || repeat('a', 32))$$, 'P0002',
  'ai_expire: no AI request ai_' || repeat('a', 32), 'a dropped request is not found, and says so');

select * from finish();
rollback;
