-- Webhook deliveries and job runs in monthly partitions: a provider event is applied once however
-- many months apart it is delivered again (billing.webhook_event_keys, not the partitioned
-- deliveries, is the exactly-once guard), also across a month boundary and after its delivery's
-- month was dropped by retention; deliveries are kept forever by default; job runs go a whole
-- month at a time once the month ended job_run_retention_days ago, never row by row.
begin;
set local search_path = public, extensions;
select plan(17);

create function pg_temp.event(p_id text)
returns jsonb language sql as $$
  select tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', p_id, 'event_type', 'settlement.processed',
    'payload', jsonb_build_object('email', 'buyer@example.in')))
$$;
create function pg_temp.at(p_at timestamptz) returns void language sql as $$
  select set_config('billing.now', p_at::text, true);
  select billing.maintain_partitions();
$$;
create function pg_temp.delivery(p_id text) returns text language sql as $$
  select string_agg(w.tableoid::regclass::text || ':' || w.attempts, ',') from billing.webhook_events w where w.event_id = p_id
$$;

-- Exactly once across a month boundary ---------------------------------------------------------
select pg_temp.at('2030-01-31 23:59:00+00');
create temp table first on commit drop as select billing.apply_payment_event(pg_temp.event('wp_evt_1')) as r;
select is((select r ->> 'result' from first), 'ignored', 'the first delivery is recorded (January 2030)');
select is(pg_temp.delivery('wp_evt_1'), 'billing_partitions.webhook_events_p203001:1', 'in January''s partition');

select pg_temp.at('2030-02-01 00:01:00+00');
create temp table second on commit drop as select billing.apply_payment_event(pg_temp.event('wp_evt_1')) as r;
select is((select r ->> 'result' from second), 'duplicate', 'delivered again two minutes later, in February: a duplicate');
select is((select r ->> 'webhook_event_id' from second), (select r ->> 'webhook_event_id' from first),
  'naming the first delivery');
select is(pg_temp.delivery('wp_evt_1'), 'billing_partitions.webhook_events_p203001:2',
  'no second row in February''s partition; the attempt is counted on the first');

-- Months later, kept forever by default --------------------------------------------------------
select pg_temp.at('2031-04-10 00:00:00+00');
select is(billing.apply_payment_event(pg_temp.event('wp_evt_1')) ->> 'result', 'duplicate',
  'fifteen months later: still a duplicate');
select is(pg_temp.delivery('wp_evt_1'), 'billing_partitions.webhook_events_p203001:3',
  'and with no retention setting (the default) the delivery of January 2030 is kept');

-- Past retention: the month is dropped, the key stays --------------------------------------------
update public.billing_settings set webhook_event_retention_days = 30;
select pg_temp.at('2031-04-10 00:00:00+00');
select is((select count(*)::int from pg_class where relname = 'webhook_events_p203001'), 0,
  'with webhook_event_retention_days = 30, January 2030''s deliveries are dropped with their partition');
select is(pg_temp.delivery('wp_evt_1'), null, 'the delivery row is gone');
select is(
  (select jsonb_build_object('result', r ->> 'result', 'same', r ->> 'webhook_event_id' = (select f.r ->> 'webhook_event_id' from first f))
   from (select billing.apply_payment_event(pg_temp.event('wp_evt_1')) as r) x),
  '{"result": "duplicate", "same": true}'::jsonb,
  'a re-delivery after its month was dropped is still a duplicate, naming the first delivery''s id');
select is(pg_temp.delivery('wp_evt_1'), null, 'and is not stored again');
select is(billing.apply_payment_event(pg_temp.event('wp_evt_2')) ->> 'result', 'ignored', 'a new event is recorded');
select is(pg_temp.delivery('wp_evt_2'), 'billing_partitions.webhook_events_p203104:1', 'in the current month''s partition');

-- Job runs: a whole month, once it ended job_run_retention_days ago -------------------------------
select pg_temp.at('2032-01-15 00:00:00+00');
select billing.job_purge();
-- A run whose wall-clock start is 40 days old: billing-purge no longer deletes job runs.
insert into billing.job_runs (job_name, as_of, started_at) values ('wp-old-run', '2032-01-15 00:00+00', clock_timestamp() - interval '40 days');
select billing.purge_batch(1000);
select is((select string_agg(distinct r.tableoid::regclass::text, ',') from billing.job_runs r where r.as_of = '2032-01-15 00:00+00'),
  'billing_partitions.job_runs_p203201', 'job runs of January 2032 are in its partition, billing-purge deletes none of them');
-- January ended 2032-02-01; +30 days = 2032-03-02 00:00.
select pg_temp.at('2032-03-01 23:59:00+00');
select is((select count(*)::int from billing.job_runs where as_of = '2032-01-15 00:00+00'), 2,
  'kept until the month ended 30 days ago');
select pg_temp.at('2032-03-02 00:00:00+00');
select is((select count(*)::int from billing.job_runs where as_of = '2032-01-15 00:00+00'), 0,
  'then dropped with the partition');
select is((select count(*)::int from pg_class where relname = 'job_runs_p203201'), 0, 'January 2032''s partition is gone');

select * from finish();
rollback;
