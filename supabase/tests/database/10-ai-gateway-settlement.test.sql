-- AI settlement (migration 20261201000300_ai_settlement.sql): a reservation never settled expires
-- counted at what it reserved (billing.ai_expire, through the job ai-release-stale-reservations),
-- its prompt and tokens are never given back; a settlement the database refuses leaves the
-- reservation counted; ai_release no longer takes 'expired'. Driven by the test clock; the
-- gateway's calls run as service_role, the job as the database owner, as pg_cron runs it.
begin;
set local search_path = public, extensions;
select plan(22);

-- -------------------------------------------------------------------------------------------------
-- Fixture: organization E (one owner) on a plan with 10 prompts a day and 1,000 tokens a month.
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values ('a1000000-0000-4000-8000-000000000001', 'ai-settle@test.local');
insert into public.organizations (id, name) values ('a1000000-0000-4000-8000-0000000000e1', 'AI settlement org E');
insert into public.organization_members (organization_id, user_id, role)
values ('a1000000-0000-4000-8000-0000000000e1', 'a1000000-0000-4000-8000-000000000001', 'owner');
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('a1000000-0000-4000-8000-0000000000f1', 'ai_settle_e', 'AI settlement E', 'pro', 'month', 100,
   '{"ai_requests_per_minute": 100, "ai_prompts_per_day": 10, "groq_tokens_per_month": 1000, "ai_models": ["m-ok"]}');
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
values ('a1000000-0000-4000-8000-0000000000e1', 'a1000000-0000-4000-8000-0000000000f1', 'active',
        '2026-05-01 00:00+05:30', '2026-06-01 00:00+05:30');

set local billing.now = '2026-05-12 10:00:00+05:30';

create temp table r (name text primary key, request_id text, reserved_tokens bigint) on commit drop;
grant all on r to service_role;

/** ai_reserve for E's owner: p_max tokens for the answer, p_prompt the prompt's estimate. */
create function pg_temp.take(p_name text, p_max integer, p_prompt integer) returns void language sql as $$
  insert into r select p_name, x.request_id, x.reserved_tokens
  from billing.ai_reserve('a1000000-0000-4000-8000-0000000000e1', 'a1000000-0000-4000-8000-000000000001', 'm-ok',
                          p_max, p_prompt) x
$$;
create function pg_temp.rid(p_name text) returns text language sql as $$ select request_id from r where name = p_name $$;
create function pg_temp.used(p_metric text) returns bigint language sql as $$
  select coalesce(sum(q.count), 0)::bigint from public.usage_quotas q
  where q.organization_id = 'a1000000-0000-4000-8000-0000000000e1' and q.metric = p_metric
    and q.window_unit = case when p_metric = 'groq_tokens' then 'month' else 'day' end::public.usage_window
    and q.window_start <= billing.now()
    and q.window_start > billing.now() - case when p_metric = 'groq_tokens' then interval '1 month' else interval '1 day' end
$$;
create function pg_temp.states(p_name text) returns text language sql as $$
  select string_agg(m.metric || ':' || m.state || ':' || m.amount, ',' order by m.metric)
  from public.usage_metrics m where m.request_id = pg_temp.rid(p_name)
$$;

select tests.as_role('service_role');

-- -------------------------------------------------------------------------------------------------
-- Reserved, never settled (the function crashed after Groq answered): expires counted
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('lost', 100, 20);
select is((select reserved_tokens from r where name = 'lost'), 120::bigint, 'E reserves 20 + 100 tokens');
select is((pg_temp.used('groq_tokens'), pg_temp.used('ai_prompts'))::text, '(120,1)',
  'the reservation counts its tokens and one prompt');
select is(billing.ai_expire(pg_temp.rid('lost')), false, 'ai_expire leaves a reservation alone before its expiry');

select tests.as_postgres();
set local billing.now = '2026-05-12 10:14:59+05:30';
select is(billing.job_ai_release_stale_reservations(), 0, 'the job leaves it alone before 15 minutes');
set local billing.now = '2026-05-12 10:16:00+05:30';
select is(billing.job_ai_release_stale_reservations(), 1, 'after 15 minutes the job expires it');
select is((select (status, error_code, reserved_tokens, counted_tokens, completed_at is not null, expires_at)::text
           from public.ai_requests where request_id = pg_temp.rid('lost')),
  '(expired,reservation_expired,120,120,t,)',
  'status expired, counted at its reserved amount (counted_tokens = reserved_tokens)');
select is(pg_temp.used('groq_tokens'), 120::bigint, 'the tokens stay counted: nothing is given back');
select is(pg_temp.used('ai_prompts'), 1::bigint, 'the prompt stays counted');
select is(pg_temp.states('lost'), 'ai_prompts:settled:1,groq_tokens:settled:120',
  'its usage rows are settled at their reserved amounts, not released');
select is(billing.job_ai_release_stale_reservations(), 0, 'running the job again changes nothing');
select is(pg_temp.used('groq_tokens'), 120::bigint, 'and counts nothing twice');

select tests.as_role('service_role');
select is((select (settled, status, counted_tokens)::text from billing.ai_settle(pg_temp.rid('lost'), 5, 10)),
  '(f,expired,120)', 'a late settlement changes nothing and says what was counted');
select is(billing.ai_release(pg_temp.rid('lost'), 'upstream_error'), false, 'nor can the expired call be released');
select is(pg_temp.used('groq_tokens'), 120::bigint, 'it stays counted at 120');

-- -------------------------------------------------------------------------------------------------
-- A settlement the database refuses leaves the reservation counted, and it expires counted
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('refused', 50, 10);
select throws_ok(format($$select * from billing.ai_settle(%L, 10, 20, 5, 'completed', '[1]'::jsonb)$$,
                        pg_temp.rid('refused')),
  '22023', 'ai_settle: the response must be a JSON object', 'a settlement the database refuses raises');
select is((select (status, counted_tokens)::text from public.ai_requests where request_id = pg_temp.rid('refused')),
  '(pending,)', 'and leaves the reservation pending');
select is(pg_temp.used('groq_tokens'), 180::bigint, 'with its 60 reserved tokens still counted');
select tests.as_postgres();
set local billing.now = '2026-05-12 10:40:00+05:30';
select is(billing.job_ai_release_stale_reservations(), 1, 'the job expires it');
select is((pg_temp.used('groq_tokens'), pg_temp.used('ai_prompts'))::text, '(180,2)',
  'counted: its 60 tokens and its prompt are kept');

-- -------------------------------------------------------------------------------------------------
-- Bad inputs and grants
-- -------------------------------------------------------------------------------------------------

select tests.as_role('service_role');
select throws_ok($$select billing.ai_release('ai_00000000000000000000000000000000', 'expired')$$,
  '22023', 'ai_release: status must be upstream_error, upstream_timeout or client_closed, got expired',
  'ai_release no longer takes expired: an expiry is counted, never released');
select throws_ok($$select billing.ai_expire('ai_00000000000000000000000000000000')$$,
  'P0002', 'ai_expire: no AI request ai_00000000000000000000000000000000', 'ai_expire rejects an unknown request');
select ok(not has_function_privilege('authenticated', 'billing.ai_expire(text)', 'execute')
          and has_function_privilege('service_role', 'billing.ai_expire(text)', 'execute'),
  'ai_expire is for service_role (and the job), not for signed-in users');

select * from finish();
rollback;
