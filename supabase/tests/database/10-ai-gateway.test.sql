-- The AI gateway's SQL: ai_reserve (membership, models, per-user rate limit, cache, prompt quota,
-- token reservation with max_tokens capped), ai_settle, ai_release, the stale-reservation job,
-- the cache purge, bad inputs and grants. Driven by the test clock. The gateway's calls run as
-- service_role with its claims, as the ai-chat function makes them (so the grants are covered);
-- the jobs run as the database owner, as pg_cron does.
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
select tests.relax_owner_limit();
select plan(113);

-- -------------------------------------------------------------------------------------------------
-- Fixture: organization A (owner, admin, member) on a plan with a per-user rate limit of 3 a
-- minute, 4 prompts a day, 1,000 tokens a month and two models; organization B on a plan with
-- 100 tokens, and organization D on the same plan (for the overage section: the reservations B
-- never settles expire counted and fill its month); organization C on a plan that names no AI
-- metric; an outsider.
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values
  ('a8000000-0000-4000-8000-000000000001', 'ai-owner@test.local'),
  ('a8000000-0000-4000-8000-000000000002', 'ai-admin@test.local'),
  ('a8000000-0000-4000-8000-000000000003', 'ai-member@test.local'),
  ('a8000000-0000-4000-8000-000000000004', 'ai-outsider@test.local');
insert into public.organizations (id, name) values
  ('a8000000-0000-4000-8000-0000000000a1', 'AI org A'),
  ('a8000000-0000-4000-8000-0000000000b1', 'AI org B'),
  ('a8000000-0000-4000-8000-0000000000c1', 'AI org C'),
  ('a8000000-0000-4000-8000-0000000000d1', 'AI org D');
insert into public.organization_members (organization_id, user_id, role) values
  ('a8000000-0000-4000-8000-0000000000a1', 'a8000000-0000-4000-8000-000000000001', 'owner'),
  ('a8000000-0000-4000-8000-0000000000a1', 'a8000000-0000-4000-8000-000000000002', 'admin'),
  ('a8000000-0000-4000-8000-0000000000a1', 'a8000000-0000-4000-8000-000000000003', 'member'),
  ('a8000000-0000-4000-8000-0000000000b1', 'a8000000-0000-4000-8000-000000000001', 'owner'),
  ('a8000000-0000-4000-8000-0000000000c1', 'a8000000-0000-4000-8000-000000000001', 'owner'),
  ('a8000000-0000-4000-8000-0000000000d1', 'a8000000-0000-4000-8000-000000000001', 'owner');
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('a8000000-0000-4000-8000-0000000000f1', 'ai_test_a', 'AI test A', 'pro', 'month', 100,
   '{"ai_requests_per_minute": 3, "ai_prompts_per_day": 4, "groq_tokens_per_month": 1000,
     "ai_models": ["m-ok", "m-two"]}'),
  ('a8000000-0000-4000-8000-0000000000f2', 'ai_test_b', 'AI test B', 'pro', 'month', 100,
   '{"ai_requests_per_minute": 100, "ai_prompts_per_day": 100, "groq_tokens_per_month": 100, "ai_models": ["m-ok"]}'),
  ('a8000000-0000-4000-8000-0000000000f3', 'ai_test_c', 'AI test C', 'pro', 'month', 100,
   '{"ai_models": ["m-ok"]}');
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end) values
  ('a8000000-0000-4000-8000-0000000000a1', 'a8000000-0000-4000-8000-0000000000f1', 'active',
   '2026-05-01 00:00+05:30', '2026-06-01 00:00+05:30'),
  ('a8000000-0000-4000-8000-0000000000b1', 'a8000000-0000-4000-8000-0000000000f2', 'active',
   '2026-05-01 00:00+05:30', '2026-06-01 00:00+05:30'),
  ('a8000000-0000-4000-8000-0000000000c1', 'a8000000-0000-4000-8000-0000000000f3', 'active',
   '2026-05-01 00:00+05:30', '2026-06-01 00:00+05:30'),
  ('a8000000-0000-4000-8000-0000000000d1', 'a8000000-0000-4000-8000-0000000000f2', 'active',
   '2026-05-01 00:00+05:30', '2026-06-01 00:00+05:30');

set local billing.now = '2026-05-10 12:00:30+05:30';

/** ai_reserve for organization A's users, by short name; p_key is expanded to a sha256. */
create function pg_temp.reserve(p_user text, p_model text, p_max integer, p_prompt integer,
                                p_key text default null, p_org text default 'a')
returns setof record language sql as $$
  select * from billing.ai_reserve(
    ('a8000000-0000-4000-8000-0000000000' || p_org || '1')::uuid,
    ('a8000000-0000-4000-8000-00000000000' || case p_user when 'owner' then '1' when 'admin' then '2'
                                                  when 'member' then '3' else '4' end)::uuid,
    p_model, p_max, p_prompt,
    case when p_key is null then null else encode(sha256(convert_to(p_key, 'UTF8')), 'hex') end)
$$;

create temp table r (
  name text primary key, allowed boolean, denial text, request_id text, plan_code text, max_tokens integer,
  reserved_tokens bigint, cached_response jsonb, rate_limit bigint, rate_remaining bigint,
  rate_reset_seconds integer, limit_amount bigint, remaining bigint, retry_after_seconds integer,
  token_limit bigint, token_remaining bigint, token_reset_seconds integer
) on commit drop;

create function pg_temp.take(p_name text, p_user text, p_model text, p_max integer, p_prompt integer,
                             p_key text default null, p_org text default 'a')
returns void language sql as $$
  insert into r select p_name, * from pg_temp.reserve(p_user, p_model, p_max, p_prompt, p_key, p_org) as x(
    allowed boolean, denial text, request_id text, plan_code text, max_tokens integer, reserved_tokens bigint,
    cached_response jsonb, rate_limit bigint, rate_remaining bigint, rate_reset_seconds integer,
    limit_amount bigint, remaining bigint, retry_after_seconds integer,
    token_limit bigint, token_remaining bigint, token_reset_seconds integer)
$$;

create function pg_temp.used(p_metric text, p_org text default 'a')
returns bigint language sql as $$
  select coalesce(sum(q.count), 0)::bigint from public.usage_quotas q
  where q.organization_id = ('a8000000-0000-4000-8000-0000000000' || p_org || '1')::uuid
    and q.metric = p_metric and q.window_unit = case when p_metric = 'groq_tokens' then 'month'
                                                    when p_metric = 'ai_prompts' then 'day'
                                                    else 'minute' end::public.usage_window
    and q.window_start <= billing.now()
    and q.window_start > billing.now() - case when p_metric = 'groq_tokens' then interval '1 month'
                                             when p_metric = 'ai_prompts' then interval '1 day'
                                             else interval '1 minute' end
$$;

create function pg_temp.rid(p_name text) returns text language sql as $$ select request_id from r where name = p_name $$;

grant all on r to service_role;

-- The gateway's role (service_role, with its claims); tests.as_postgres() goes back to the owner for the jobs.
select tests.as_role('service_role');

-- -------------------------------------------------------------------------------------------------
-- Membership and models
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('stranger', 'outsider', 'm-ok', 100, 10);
select is((select denial from r where name = 'stranger'), 'not_a_member', 'a user who is not a member is refused: not_a_member');
select is((select allowed from r where name = 'stranger'), false, 'and not allowed');
select is((select request_id from r where name = 'stranger'), null, 'a stranger gets no request id');
select is((select count(*)::integer from public.ai_requests where user_id = 'a8000000-0000-4000-8000-000000000004'),
  0, 'a stranger''s call is not logged in the organization''s AI requests');

select pg_temp.take('badmodel', 'owner', 'm-bad', 100, 10);
select is((select denial from r where name = 'badmodel'), 'model_not_allowed', 'a model outside the plan''s ai_models is refused');
select is((select plan_code from r where name = 'badmodel'), 'ai_test_a', 'the denial names the plan');
select is((select (rate_limit, rate_remaining, rate_reset_seconds)::text from r where name = 'badmodel'),
  '(3,3,30)', 'and reports the per-user rate window as it stands: 3 of 3 left, resets in 30 s');
select is((select (token_limit, token_remaining, token_reset_seconds)::text from r where name = 'badmodel'), '(,,)',
  'a denial before the token step reports no token window');
select is((select count(*)::integer from public.usage_quotas
           where organization_id = 'a8000000-0000-4000-8000-0000000000a1'), 0,
  'the model denial changed no counter (not even the rate counter it passed)');
select is((select count(*)::integer from public.usage_metrics
           where organization_id = 'a8000000-0000-4000-8000-0000000000a1'), 0, 'and wrote no usage event');
select is((select (status, error_code, cached, reserved_tokens)::text from public.ai_requests
           where request_id = pg_temp.rid('badmodel')), '(denied,model_not_allowed,f,0)',
  'the denial is logged with status denied and the code model_not_allowed');

-- -------------------------------------------------------------------------------------------------
-- Reservations, capping, too little left
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('r1', 'owner', 'm-ok', 100, 10, 'request one');
select is((select allowed from r where name = 'r1'), true, 'a member on the plan, an allowed model, room in every quota: reserved');
select matches(pg_temp.rid('r1'), '^ai_[0-9a-f]{32}$', 'the reservation has a request id');
select is((select (max_tokens, reserved_tokens)::text from r where name = 'r1'), '(100,110)',
  'max_tokens as asked (100) and prompt estimate + max_tokens reserved (110)');
select is((select (rate_limit, rate_remaining, rate_reset_seconds)::text from r where name = 'r1'), '(3,2,30)',
  'the per-user rate window after the call: 2 of 3 left, resets at the next minute');
select is(pg_temp.used('groq_tokens'), 110::bigint, '110 tokens are counted for the month');
select is((select (token_limit, token_remaining, token_reset_seconds)::text from r where name = 'r1'),
  (select (1000, 890, extract(epoch from '2026-06-01 00:00+05:30'::timestamptz - '2026-05-10 12:00:30+05:30'::timestamptz)::integer)::text),
  'the reservation reports the token window: limit 1000, 890 left after it, resets when the month turns');
select is(pg_temp.used('ai_prompts'), 1::bigint, 'one prompt is counted for the day');
select is(pg_temp.used(billing.ai_rate_metric('a8000000-0000-4000-8000-000000000001')), 1::bigint,
  'one request is counted for the owner in this minute');
select is((select string_agg(metric || ':' || amount || ':' || state, ',' order by metric) from public.usage_metrics
           where request_id = pg_temp.rid('r1')), 'ai_prompts:1:counted,groq_tokens:110:counted',
  'the prompt and the tokens are usage events under the request id (so settle and release find them)');
select is((select (status, max_tokens, reserved_tokens, expires_at)::text from public.ai_requests
           where request_id = pg_temp.rid('r1')),
  (select ('pending', 100, 110, '2026-05-10 12:15:30+05:30'::timestamptz)::text),
  'the log row is pending and expires 15 minutes later');

select pg_temp.take('r2', 'owner', 'm-two', 2000, 40);
select is((select (allowed, max_tokens, reserved_tokens)::text from r where name = 'r2'), '(t,850,890)',
  'max_tokens is capped to what the quota has left after the prompt estimate: 1000 - 110 - 40 = 850');
select is(pg_temp.used('groq_tokens'), 1000::bigint, 'the month''s tokens are now exactly at the limit');

select pg_temp.take('r3', 'owner', 'm-ok', 100, 10);
select is((select (allowed, denial)::text from r where name = 'r3'), '(f,tokens)', 'with nothing left the call is refused: tokens');
select is((select (limit_amount, remaining)::text from r where name = 'r3'), '(1000,0)', 'the denial reports the limit and 0 left');
select is((select (token_limit, token_remaining)::text from r where name = 'r3'), '(1000,0)',
  'and the token window as it stands');
select is((select retry_after_seconds from r where name = 'r3'),
  extract(epoch from '2026-06-01 00:00+05:30'::timestamptz - '2026-05-10 12:00:30+05:30'::timestamptz)::integer,
  'retry after the month resets (local midnight of 1 June)');
select is((select rate_remaining from r where name = 'r3'), 1::bigint, 'the rate window is reported as it stands (1 left)');
select is(pg_temp.used('ai_prompts'), 2::bigint, 'the token denial put back its prompt');
select is(pg_temp.used(billing.ai_rate_metric('a8000000-0000-4000-8000-000000000001')), 2::bigint,
  'and its rate count');
select is((select error_code from public.ai_requests where request_id = pg_temp.rid('r3')), 'token_quota_exceeded',
  'the denial is logged as token_quota_exceeded');

-- -------------------------------------------------------------------------------------------------
-- Settle and release
-- -------------------------------------------------------------------------------------------------

select is(
  (select (settled, status, counted_tokens, remaining)::text
   from billing.ai_settle(pg_temp.rid('r1'), 9, 21, 120, 'completed', '{"id": "cmpl-1", "choices": []}')),
  '(t,completed,30,80)', 'settling r1 at its actual 9 + 21 tokens gives back 80 of the 110 reserved');
select is(pg_temp.used('groq_tokens'), 920::bigint, 'the month now counts 920 tokens');
select is((select (status, prompt_tokens, completion_tokens, counted_tokens, latency_ms, expires_at)::text
           from public.ai_requests where request_id = pg_temp.rid('r1')), '(completed,9,21,30,120,)',
  'the log row has the tokens in and out, what was counted and the latency; no expiry any more');
select is((select string_agg(metric || ':' || amount || ':' || state, ',' order by metric) from public.usage_metrics
           where request_id = pg_temp.rid('r1')), 'ai_prompts:1:settled,groq_tokens:30:settled',
  'both usage events are settled');
select is((select response ->> 'id' from billing.ai_cache
           where cache_key = encode(sha256(convert_to('request one', 'UTF8')), 'hex')), 'cmpl-1',
  'the answer is cached under the reservation''s cache key');
select is((select expires_at from billing.ai_cache where cache_key = encode(sha256(convert_to('request one', 'UTF8')), 'hex')),
  '2026-05-11 12:00:30+05:30'::timestamptz, 'for 24 hours');
select is((select (settled, status, counted_tokens)::text from billing.ai_settle(pg_temp.rid('r1'), 50, 50)),
  '(f,completed,30)', 'settling again changes nothing (idempotent)');
select is(pg_temp.used('groq_tokens'), 920::bigint, 'the month still counts 920 tokens');

select is(billing.ai_release(pg_temp.rid('r2'), 'upstream_error', 'upstream_error', 15), true,
  'releasing r2 (the upstream failed) succeeds');
select is(pg_temp.used('groq_tokens'), 30::bigint, 'its 890 reserved tokens are given back');
select is(pg_temp.used('ai_prompts'), 1::bigint, 'and its prompt');
select is(pg_temp.used(billing.ai_rate_metric('a8000000-0000-4000-8000-000000000001')), 2::bigint,
  'the per-user rate count stays: the call was made');
select is((select (status, error_code, counted_tokens, latency_ms)::text from public.ai_requests
           where request_id = pg_temp.rid('r2')), '(upstream_error,upstream_error,0,15)', 'the log row says why');
select is(billing.ai_release(pg_temp.rid('r2'), 'upstream_error'), false, 'releasing again changes nothing');
select is((select (settled, status)::text from billing.ai_settle(pg_temp.rid('r2'), 1, 1)), '(f,upstream_error)',
  'a released request cannot be settled');
select is(pg_temp.used('groq_tokens'), 30::bigint, 'and the tokens are unchanged');

-- -------------------------------------------------------------------------------------------------
-- The cache and the per-user rate limit
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('hit', 'owner', 'm-ok', 100, 10, 'request one');
select is((select (allowed, cached_response ->> 'id', reserved_tokens, max_tokens)::text from r where name = 'hit'),
  '(t,cmpl-1,,)', 'the same request again is answered from the cache, with nothing reserved');
select is(pg_temp.used('groq_tokens'), 30::bigint, 'a cache hit spends no tokens');
select is(pg_temp.used('ai_prompts'), 1::bigint, 'and no prompt');
select is((select rate_remaining from r where name = 'hit'), 0::bigint, 'but counts against the per-user rate limit (0 left)');
select is((select (token_limit, token_remaining, token_reset_seconds)::text from r where name = 'hit'), '(,,)',
  'a cache hit does not look at the token quota (no token window)');
select is((select (status, cached, prompt_tokens, completion_tokens, counted_tokens)::text from public.ai_requests
           where request_id = pg_temp.rid('hit')), '(cached,t,9,21,0)', 'the hit is logged as cached, with the cached tokens');

select pg_temp.take('rate', 'owner', 'm-ok', 100, 10, 'request one');
select is((select (allowed, denial, rate_limit, rate_remaining, rate_reset_seconds)::text from r where name = 'rate'),
  '(f,rate,3,0,30)', 'the owner''s 4th request in the minute is refused: rate, retry in 30 s');
select is(pg_temp.used(billing.ai_rate_metric('a8000000-0000-4000-8000-000000000001')), 3::bigint,
  'the refused request is not counted');
select is((select error_code from public.ai_requests where request_id = pg_temp.rid('rate')), 'rate_limited',
  'and is logged as rate_limited');

select pg_temp.take('m1', 'member', 'm-ok', 5, 3);
select is((select allowed from r where name = 'm1'), true, 'another user of the same organization has a rate window of their own');
select is((select rate_remaining from r where name = 'm1'), 2::bigint, 'starting at 3, now 2 left');
select pg_temp.take('m2', 'member', 'm-ok', 5, 3);
select pg_temp.take('m3', 'member', 'm-ok', 5, 3);
select is(pg_temp.used('ai_prompts'), 4::bigint, 'the organization has used its 4 prompts of the day');
select pg_temp.take('prompts', 'admin', 'm-ok', 5, 3);
select is((select (allowed, denial, limit_amount, remaining)::text from r where name = 'prompts'), '(f,prompts,4,0)',
  'a fifth prompt in the day is refused for everyone: prompts');
select is((select retry_after_seconds from r where name = 'prompts'), 43170,
  'retry after local midnight (11 h 59 min 30 s)');
select is(pg_temp.used(billing.ai_rate_metric('a8000000-0000-4000-8000-000000000002')), 0::bigint,
  'the admin''s refused call left no rate count');
select is((select count(*)::integer from public.usage_quotas
           where metric = billing.ai_rate_metric('a8000000-0000-4000-8000-000000000002')), 0,
  'nor a counter row');
select is((select error_code from public.ai_requests where request_id = pg_temp.rid('prompts')), 'prompt_quota_exceeded',
  'the denial is logged as prompt_quota_exceeded');

-- -------------------------------------------------------------------------------------------------
-- Too little left to answer; metrics the plan does not name
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('b1', 'owner', 'm-ok', 5, 90, null, 'b');
select is((select (allowed, max_tokens, reserved_tokens)::text from r where name = 'b1'), '(t,5,95)',
  'a small answer (max_tokens 5) fits in what is left after a large prompt');
select pg_temp.take('b2', 'owner', 'm-ok', null, 1, null, 'b');
select is((select (allowed, denial, remaining)::text from r where name = 'b2'), '(f,tokens,5)',
  'with 5 tokens left, less than the 16 an answer needs: refused as tokens');
select is(pg_temp.used('groq_tokens', 'b'), 95::bigint, 'and nothing more was counted');
select pg_temp.take('b3', 'owner', 'm-ok', 4, 2, null, 'b');
select is((select (allowed, denial)::text from r where name = 'b3'), '(f,tokens)',
  'asking for 4 tokens when 3 are left beyond the prompt estimate is refused (less than asked, and under 16)');
select pg_temp.take('b4', 'owner', 'm-ok', 3, 2, null, 'b');
select is((select (allowed, max_tokens, reserved_tokens)::text from r where name = 'b4'), '(t,3,5)',
  'a request that fits exactly what is left (2 + 3 = 5) is reserved');
select pg_temp.take('b5', 'owner', 'm-ok', 1, 1, null, 'b');
select is((select (allowed, denial, remaining)::text from r where name = 'b5'), '(f,tokens,0)',
  'with nothing left beyond the prompt estimate (less than prompt + 1), refused');

select pg_temp.take('c1', 'owner', 'm-ok', 10, 1, null, 'c');
select is((select (allowed, denial, rate_limit, rate_remaining)::text from r where name = 'c1'), '(f,rate,0,0)',
  'a plan without ai_requests_per_<window> allows no request (limit 0)');
update public.billing_plans set features = features || '{"ai_requests_per_minute": null}'
where code = 'ai_test_c';
select pg_temp.take('c2', 'owner', 'm-ok', 10, 1, null, 'c');
select is((select (allowed, denial, limit_amount)::text from r where name = 'c2'), '(f,prompts,0)',
  'an unlimited rate (null) but no ai_prompts key: refused as prompts, limit 0');
select is((select (rate_limit, rate_remaining)::text from r where name = 'c2'), '(,)', 'an unlimited rate window has no limit to report');
update public.billing_plans set features = features || '{"ai_prompts_per_day": null}' where code = 'ai_test_c';
select pg_temp.take('c3', 'owner', 'm-ok', 10, 1, null, 'c');
select is((select (allowed, denial, limit_amount)::text from r where name = 'c3'), '(f,tokens,0)',
  'no groq_tokens key: refused as tokens, limit 0');
update public.billing_plans set features = features || '{"groq_tokens_per_month": null}' where code = 'ai_test_c';
select pg_temp.take('c4', 'owner', 'm-ok', 10, 1, null, 'c');
select is((select (allowed, max_tokens, reserved_tokens)::text from r where name = 'c4'), '(t,10,11)',
  'unlimited tokens: max_tokens is not capped');

-- -------------------------------------------------------------------------------------------------
-- The stale-reservation job and the cache purge (as pg_cron runs them: the owner, billing.run_job)
-- -------------------------------------------------------------------------------------------------

select tests.as_postgres();
select is(billing.job_ai_release_stale_reservations(), 0, 'before their expiry no reservation is released');
set local billing.now = '2026-05-10 12:16:00+05:30';
select is(billing.job_ai_release_stale_reservations(), 6,
  'after 15 minutes the 6 reservations never settled (m1-m3, b1, b4, c4) expire');
select is(
  (select (rows_affected, error, finished_at is not null)::text from billing.job_runs
   where job_name = 'ai-release-stale-reservations' and as_of = '2026-05-10 12:16:00+05:30'),
  '(6,,t)',
  'the run is logged in billing.job_runs like the billing jobs'
);
select is((select count(*)::integer from public.ai_requests where status = 'pending'
           and organization_id = 'a8000000-0000-4000-8000-0000000000a1'), 0, 'none of A''s is left pending');
select is((select (status, error_code)::text from public.ai_requests where request_id = pg_temp.rid('m1')),
  '(expired,reservation_expired)', 'an expired reservation says so');
select is(pg_temp.used('groq_tokens', 'b'), 100::bigint,
  'B''s reserved tokens stay counted (95 + 5: an expired reservation is counted, never given back)');
select is(pg_temp.used('ai_prompts'), 4::bigint, 'A keeps the prompts of its expired calls as well as of its settled one');
select is(billing.job_ai_release_stale_reservations(), 0, 'running the job again changes nothing (idempotent)');
select tests.as_role('service_role');
select is((select (settled, status)::text from billing.ai_settle(pg_temp.rid('m1'), 3, 5)), '(f,expired)',
  'a late settlement of an expired reservation changes nothing');

select tests.as_postgres();
select is(billing.job_ai_purge_cache(), 0, 'the purge leaves answers younger than 24 hours');
-- In C (no prompt or token limit left to matter: A's prompts of the day are all counted by now).
insert into billing.ai_cache (organization_id, cache_key, model, response, expires_at)
values ('a8000000-0000-4000-8000-0000000000c1', encode(sha256(convert_to('old request', 'UTF8')), 'hex'), 'm-ok',
        '{"id": "cmpl-old"}', '2026-05-10 12:00:00+05:30');
select tests.as_role('service_role');
select pg_temp.take('expired-hit', 'owner', 'm-ok', 10, 1, 'old request', 'c');
select is((select (allowed, cached_response)::text from r where name = 'expired-hit'), '(t,)',
  'an expired answer still in the table is not served: the call is reserved instead');
select tests.as_postgres();
select is(billing.job_ai_purge_cache(), 1, 'the purge deletes an expired answer');
set local billing.now = '2026-05-11 12:00:31+05:30';
select tests.as_role('service_role');
select pg_temp.take('stale', 'owner', 'm-ok', 10, 1, 'request one');
select is((select (allowed, cached_response)::text from r where name = 'stale'), '(t,)',
  'after 24 hours the cached answer is no longer served');
select tests.as_postgres();
select is(billing.job_ai_purge_cache(), 1, 'and the purge removes it');
select is(billing.job_ai_purge_cache(), 0, 'running the purge again deletes nothing');
select is(
  -- The runs of this test's clock: where pg_cron runs (the upgrade check runs this suite on such a
  -- database) its own purge may log a run in between, as of the real time, after the pinned one.
  (select string_agg(rows_affected::text, ',' order by id) from billing.job_runs
   where job_name = 'ai-purge-cache' and as_of <= billing.now()),
  '0,1,1,0',
  'each purge is logged in billing.job_runs'
);

select is((select schedule || ' ' || command from cron.job where jobname = 'ai-release-stale-reservations'),
  '* * * * * select billing.job_ai_release_stale_reservations()',
  'pg_cron runs ai-release-stale-reservations every minute, through its logged job');
select is((select command from cron.job where jobname = 'ai-purge-cache'), 'select billing.job_ai_purge_cache()',
  'pg_cron runs ai-purge-cache through its logged job');

-- -------------------------------------------------------------------------------------------------
-- Actual usage above the reservation (the prompt estimate was low): D, on B's plan of 100 tokens a
-- month, on 31 May
-- -------------------------------------------------------------------------------------------------

set local billing.now = '2026-05-31 12:00:00+05:30';
select tests.as_role('service_role');
select pg_temp.take('bx1', 'owner', 'm-ok', 50, 10, null, 'd');
select pg_temp.take('bx2', 'owner', 'm-ok', 20, 10, null, 'd');
select is((select string_agg((allowed, reserved_tokens)::text, ',' order by name) from r where name in ('bx1', 'bx2')),
  '(t,60),(t,30)', 'D reserves 60 and 30 tokens (90 of its 100)');
select is(
  (select (settled, counted_tokens, remaining)::text from billing.ai_settle(pg_temp.rid('bx1'), 10, 60)),
  '(t,70,0)',
  'a call that used 70 tokens, 10 more than its 60 reserved, is counted at 70 while that fits (the month is now full)'
);
select is(pg_temp.used('groq_tokens', 'd'), 100::bigint, 'the month counts 100 of 100 tokens');
select is(
  (select (settled, counted_tokens)::text from billing.ai_settle(pg_temp.rid('bx2'), 10, 40)),
  '(t,30)',
  'a call that used 50 of a 30-token reservation with nothing left is counted at the limit: its 30'
);
select is(pg_temp.used('groq_tokens', 'd'), 100::bigint, 'the quota is filled to its limit and no further');
select is((select (status, prompt_tokens, completion_tokens, counted_tokens)::text from public.ai_requests
           where request_id = pg_temp.rid('bx2')), '(completed,10,40,30)',
  'the log keeps the true tokens (10 + 40) and what was counted (30)');

-- -------------------------------------------------------------------------------------------------
-- Bad inputs and grants
-- -------------------------------------------------------------------------------------------------

select throws_ok($$select * from billing.ai_reserve(null, 'a8000000-0000-4000-8000-000000000001', 'm-ok', 10, 1)$$,
  '22023', 'ai_reserve: organization id and user id are required', 'ai_reserve needs an organization');
select throws_ok($$select * from billing.ai_reserve('a8000000-0000-4000-8000-0000000000a1', 'a8000000-0000-4000-8000-000000000001', 'bad model!', 10, 1)$$,
  '22023', 'ai_reserve: model "bad model!" is not a valid model name', 'ai_reserve rejects a malformed model name');
select throws_ok($$select * from billing.ai_reserve('a8000000-0000-4000-8000-0000000000a1', 'a8000000-0000-4000-8000-000000000001', 'm-ok', 0, 1)$$,
  '22023', 'ai_reserve: max_tokens must be 1 to 131072, got 0', 'ai_reserve rejects max_tokens 0');
select throws_ok($$select * from billing.ai_reserve('a8000000-0000-4000-8000-0000000000a1', 'a8000000-0000-4000-8000-000000000001', 'm-ok', 10, 0)$$,
  '22023', 'ai_reserve: prompt token estimate must be 1 to 1000000, got 0', 'ai_reserve rejects a prompt estimate of 0');
select throws_ok($$select * from billing.ai_reserve('a8000000-0000-4000-8000-0000000000a1', 'a8000000-0000-4000-8000-000000000001', 'm-ok', 10, 1, 'not-a-hash')$$,
  '22023', 'ai_reserve: cache key must be a sha256 in lowercase hex', 'ai_reserve rejects a cache key that is not a sha256');
select throws_ok($$select * from billing.ai_settle(pg_temp.rid('c4'), -1, 0)$$,
  '22023', 'ai_settle: token counts must be zero or more', 'ai_settle rejects negative tokens');
select throws_ok($$select * from billing.ai_settle(pg_temp.rid('c4'), 1, 1, 5, 'cached')$$,
  '22023', 'ai_settle: status must be completed, client_closed, upstream_error or upstream_timeout, got cached',
  'ai_settle rejects a status that is not an outcome of a call');
select throws_ok($$select * from billing.ai_settle('ai_00000000000000000000000000000000', 1, 1)$$,
  'P0002', 'ai_settle: no AI request ai_00000000000000000000000000000000', 'ai_settle rejects an unknown request');
select throws_ok($$select billing.ai_release(pg_temp.rid('c4'), 'completed')$$,
  '22023', 'ai_release: status must be upstream_error, upstream_timeout or client_closed, got completed',
  'ai_release rejects a status that is not a failure');
select throws_ok($$select billing.ai_release(pg_temp.rid('c4'), 'upstream_error', 'Bad Code')$$,
  '22023', 'ai_release: error code must be lowercase snake_case', 'ai_release rejects a malformed error code');

select ok(not has_function_privilege('authenticated',
  'billing.ai_reserve(uuid, uuid, text, integer, integer, text, boolean, boolean)', 'execute'),
  'signed-in users cannot call ai_reserve (it trusts the user id it is given)');
select ok(not has_function_privilege('authenticated',
  'billing.ai_settle(text, integer, integer, integer, public.ai_request_status, jsonb, integer)', 'execute'),
  'signed-in users cannot settle their own usage');
select ok(not has_function_privilege('authenticated',
  'billing.ai_release(text, public.ai_request_status, text, integer)', 'execute'),
  'signed-in users cannot release reservations');
select ok(has_function_privilege('service_role',
  'billing.ai_reserve(uuid, uuid, text, integer, integer, text, boolean, boolean)', 'execute'),
  'service_role (the ai-chat function) can call ai_reserve');

select * from finish();
rollback;
