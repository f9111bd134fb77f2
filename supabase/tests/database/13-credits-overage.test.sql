-- Usage past a quota paid in credits (public.increment_usage with a plan's
-- `<metric>_overage_event`), under the pinned test clock: at a full quota with credits the call is
-- allowed, counted past the limit and charged for the units past it, and the ledger says so;
-- without credits (or with too few) it is denied and nothing is written; a retried request id is
-- charged once; release_usage gives the credits back and a request counted again after its
-- release pays again; settle_usage lower gives back the credits of the units past the limit; a
-- minute window stays a rate limit; a plan without the key denies as before. After each part,
-- billing.credit_ledger_problems() is empty. (Real parallel connections: tests/credits.test.ts.)
begin;
set local search_path = public, extensions;
select plan(46);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into public.credit_events (code, name, credits_per_unit) values
  ('ov_call', 'An API call past the quota', 2),
  ('ov_off', 'An event switched off', 1);

insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('b2410000-0000-4000-8000-000000000001', 'ov_paid', 'OV paid', 'pro', 'month', 99900,
   '{"calls_per_day": 5, "calls_per_month": 1000, "calls_overage_event": "ov_call",
     "taps_per_minute": 2, "taps_per_day": 100, "taps_overage_event": "ov_call",
     "offs_per_day": 1, "offs_overage_event": "ov_off",
     "plain_per_day": 1}');

insert into public.organizations (id, name, timezone) values
  ('c2410000-0000-4000-8000-0000000000a1', 'OV main', 'Asia/Kolkata'),
  ('c2410000-0000-4000-8000-0000000000a2', 'OV broke', 'Asia/Kolkata');
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
select o, 'b2410000-0000-4000-8000-000000000001', 'active', '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30'
from unnest(array['c2410000-0000-4000-8000-0000000000a1', 'c2410000-0000-4000-8000-0000000000a2']::uuid[]) o;
update public.credit_events set active = false where code = 'ov_off';

create function pg_temp.inc(p_org text, p_metric text, p_amount integer, p_request text)
returns text language sql as $$
  select allowed || ' ' || used || '/' || limit_amount || ' left ' || remaining || ' credits ' || coalesce(credits_charged::text, 'null')
  from public.increment_usage(p_org::uuid, p_metric, p_amount, p_request) $$;
create function pg_temp.balance(p_org text) returns bigint language sql as $$
  select billing.available_credits(p_org::uuid) $$;
create function pg_temp.ok_ledger() returns text language sql as $$
  select coalesce(string_agg(problem, '; '), '') from billing.credit_ledger_problems()
  where organization_id in ('c2410000-0000-4000-8000-0000000000a1', 'c2410000-0000-4000-8000-0000000000a2') $$;
create function pg_temp.day_count(p_org text, p_metric text) returns bigint language sql as $$
  select coalesce((select q.count from public.usage_quotas q where q.organization_id = p_org::uuid and q.metric = p_metric
                   and q.window_unit = 'day'), 0) $$;
create function pg_temp.charges(p_org text) returns text language sql as $$
  select coalesce(string_agg(c.request_id || ' ' || c.quantity || 'x' || c.event_code || '=' || c.credits || ' charged ' || c.charged,
                             '; ' order by c.created_at, c.request_id), '')
  from public.credit_charges c where c.organization_id = p_org::uuid $$;

-- Without credits: denied as without the key, nothing written ---------------------------------

select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 5, 'fill'), 'true 5/5 left 0 credits 0',
          'within the quota: allowed, no credits');
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 1, 'nocredit'), 'false 5/5 left 0 credits 0',
          'at a full quota without credits: denied');
select is(pg_temp.day_count('c2410000-0000-4000-8000-0000000000a1', 'calls'), 5::bigint, 'nothing counted');
select is((select count(*)::int from public.usage_metrics where request_id = 'nocredit'), 0, 'no usage row for the denied call');
select is(pg_temp.charges('c2410000-0000-4000-8000-0000000000a1'), '', 'no charge');

-- With credits: allowed past the limit, charged for the units past it -------------------------

select billing.operator_grant_credits('c2410000-0000-4000-8000-0000000000a1', 20, null, 'overage test credits');
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 3, 'over-1'), 'true 8/5 left 0 credits 6',
          'at a full quota with credits: allowed, 3 units past the limit at 2 credits');
select is(pg_temp.day_count('c2410000-0000-4000-8000-0000000000a1', 'calls'), 8::bigint, 'counted past the limit');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 14::bigint, 'the credits are drawn');
select is((select string_agg(kind || ' ' || amount || ' ' || balance_after || ' ' || request_id || ' ' || event_code, '; ' order by id)
           from public.credit_ledger where organization_id = 'c2410000-0000-4000-8000-0000000000a1' and kind <> 'granted'),
          'consumed -6 14 usage:calls:over-1 ov_call', 'the ledger names the usage request and the event');
select is((select state || ' ' || amount || ' ' || credit_units || ' ' || credit_request_id from public.usage_metrics
           where request_id = 'over-1'), 'counted 3 3 usage:calls:over-1', 'the usage row says which units credits paid for');

-- A retried request id is charged once.
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 3, 'over-1'), 'true 8/5 left 0 credits 6',
          'a retry: the first answer');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 14::bigint, 'a retry is not charged again');
select is(pg_temp.day_count('c2410000-0000-4000-8000-0000000000a1', 'calls'), 8::bigint, 'nor counted again');
select is(pg_temp.charges('c2410000-0000-4000-8000-0000000000a1'), 'usage:calls:over-1 3xov_call=6 charged 6', 'one charge');

-- A call without a request id pays too, under its usage row's id.
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 1, null), 'true 9/5 left 0 credits 2',
          'no request id: allowed and charged');
select is((select c.request_id from public.credit_charges c
           join public.usage_metrics m on m.credit_request_id = c.request_id and m.organization_id = c.organization_id
           where m.organization_id = 'c2410000-0000-4000-8000-0000000000a1' and m.request_id is null and m.credit_units = 1),
          (select 'usage:calls:' || m.id from public.usage_metrics m
           where m.organization_id = 'c2410000-0000-4000-8000-0000000000a1' and m.request_id is null and m.credit_units = 1),
          'its charge is named after the usage row');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the overage charges');

-- Too few credits for the whole call: denied, nothing charged, nothing counted.
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 7, 'too-big'), 'false 9/5 left 0 credits 0',
          '7 units at 2 credits = 14 > 12 left: denied');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 12::bigint, 'nothing drawn');
select is(pg_temp.day_count('c2410000-0000-4000-8000-0000000000a1', 'calls'), 9::bigint, 'nothing counted');
select is((select count(*)::int from public.notifications where organization_id = 'c2410000-0000-4000-8000-0000000000a1'
           and kind = 'quota_threshold' and (payload ->> 'used')::int > 9), 0, 'no quota alert from the denied call');

-- Release gives the credits back ----------------------------------------------------------------

select is(billing.release_usage('c2410000-0000-4000-8000-0000000000a1', 'over-1'), 1, 'release_usage releases the request');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 18::bigint, 'its 6 credits are back');
select is(pg_temp.day_count('c2410000-0000-4000-8000-0000000000a1', 'calls'), 6::bigint, 'its 3 units are given back');
select is((select kind || ' ' || amount || ' ' || request_id from public.credit_ledger
           where organization_id = 'c2410000-0000-4000-8000-0000000000a1' order by id desc limit 1),
          'released 6 usage:calls:over-1', 'the ledger has the release');
select is(billing.release_usage('c2410000-0000-4000-8000-0000000000a1', 'over-1'), 0, 'a second release does nothing');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 18::bigint, 'and gives nothing more back');
-- The released request sent again is counted anew and pays again, under a charge of its own.
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 3, 'over-1'), 'true 9/5 left 0 credits 6',
          'a released request sent again is counted anew and pays for its 3 units past the limit again');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 12::bigint, 'its credits are drawn again');
select is((select count(*)::int from public.credit_charges where organization_id = 'c2410000-0000-4000-8000-0000000000a1'
           and request_id like 'usage:calls:over-1:%' and charged = 6), 1, 'under a charge of its own');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after release and recount');

-- settle_usage lower gives back the credits of the units past the limit ---------------------------

select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 4, 'reserve'), 'true 13/5 left 0 credits 8',
          'a reservation of 4 past the limit: 8 credits');
select is((select allowed from billing.settle_usage('c2410000-0000-4000-8000-0000000000a1', 'reserve', 1)), true,
          'settled at 1');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 10::bigint,
          '3 units given back: their 6 credits are back, 1 unit still paid');
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'calls', 4, 'reserve'), 'true 10/5 left 0 credits 2',
          'a retry after the settlement answers what is still charged');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the settlement');

-- A minute window is a rate limit: credits never buy past it -------------------------------------

select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'taps', 2, null), 'true 2/2 left 0 credits 0', 'two taps this minute');
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'taps', 1, null), 'false 2/2 left 0 credits 0',
          'the third in the same minute is denied, credits or not');

-- An inactive event and a plan without the key deny as before -------------------------------------

select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'offs', 2, null), 'false 0/1 left 1 credits 0',
          'an inactive overage event: denied');
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a1', 'plain', 2, null), 'false 0/1 left 1 credits 0',
          'no overage key: denied');
select is(pg_temp.charges('c2410000-0000-4000-8000-0000000000a2'), '', 'another organization is never charged');
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a2', 'calls', 6, null), 'false 0/5 left 5 credits 0',
          'an organization without credits: denied past the limit');
-- A call that crosses the limit pays only for its units past it.
select billing.operator_grant_credits('c2410000-0000-4000-8000-0000000000a2', 10, null, 'overage test credits');
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a2', 'calls', 4, null), 'true 4/5 left 1 credits 0', '4 of 5');
select is(pg_temp.inc('c2410000-0000-4000-8000-0000000000a2', 'calls', 3, 'cross'), 'true 7/5 left 0 credits 4',
          '3 more: 1 within the quota, 2 past it at 2 credits');
select is(pg_temp.charges('c2410000-0000-4000-8000-0000000000a2'), 'usage:calls:cross 2xov_call=4 charged 4',
          'the charge is for the 2 units past the limit');
select is(pg_temp.ok_ledger(), '', 'ledger = grants at the end');

select * from finish();
rollback;
