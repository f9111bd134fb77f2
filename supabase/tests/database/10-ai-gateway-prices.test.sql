-- AI calls priced per model (public.ai_model_prices) and charged in credits: the cost on the log
-- row at the price in effect when the call was reserved (a price change mid-day), the reservation,
-- settlement, release and expiry moving credits and the spend cap exactly, the ledger in
-- agreement, the spend cap's refusal and its alerts once per crossing, credits running out, and
-- a plan paying for tokens past its quota in credits. Driven by the test clock; the gateway's
-- calls run as service_role, the expiry job as the database owner.
begin;
set local search_path = public, extensions;
set local timezone = 'Asia/Kolkata';
select plan(54);

-- -------------------------------------------------------------------------------------------------
-- Fixture: one owner; organizations P (credits for every call, a spend cap of ₹100 a month),
-- Q (only the cap, ₹10), R (credits for every call, 100 credits), S (200 tokens a month, then
-- credits); models m-priced (two prices, the second from noon), m-cheap (a fraction of a paisa a
-- call) and m-unpriced (no price).
-- -------------------------------------------------------------------------------------------------

set local billing.now = '2026-05-12 09:00:00+05:30';

insert into public.credit_events (code, name, credits_per_unit) values ('ai_cost_test', 'AI cost, per paisa', 1)
on conflict (code) do nothing;
insert into public.ai_model_prices (model, effective_from, input_paise_per_million, output_paise_per_million,
                                    cached_input_paise_per_million) values
  ('m-priced', '2026-05-12 00:00:00+05:30', 1000000, 2000000, 500000),
  ('m-priced', '2026-05-12 12:00:00+05:30', 3000000, 4000000, 1500000),
  ('m-cheap', '2026-05-01 00:00:00+05:30', 430, 688, 430);

select tests.relax_owner_limit();
insert into auth.users (id, email) values ('a2000000-0000-4000-8000-000000000001', 'ai-prices@test.local');
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('a2000000-0000-4000-8000-0000000000f1', 'ai_prices_p', 'AI prices P', 'pro', 'month', 100,
   '{"ai_requests_per_minute": 1000, "ai_prompts_per_day": 1000, "groq_tokens_per_month": 1000000,
     "ai_models": ["m-priced", "m-cheap", "m-unpriced"], "ai_credit_event": "ai_cost_test",
     "ai_spend_paise_per_month": 10000}'),
  ('a2000000-0000-4000-8000-0000000000f2', 'ai_prices_q', 'AI prices Q', 'pro', 'month', 100,
   '{"ai_requests_per_minute": 1000, "ai_prompts_per_day": 1000, "groq_tokens_per_month": 1000000,
     "ai_models": ["m-priced"], "ai_spend_paise_per_month": 1000}'),
  ('a2000000-0000-4000-8000-0000000000f3', 'ai_prices_r', 'AI prices R', 'pro', 'month', 100,
   '{"ai_requests_per_minute": 1000, "ai_prompts_per_day": 1000, "groq_tokens_per_month": 1000000,
     "ai_models": ["m-priced"], "ai_credit_event": "ai_cost_test"}'),
  ('a2000000-0000-4000-8000-0000000000f4', 'ai_prices_s', 'AI prices S', 'pro', 'month', 100,
   '{"ai_requests_per_minute": 1000, "ai_prompts_per_day": 1000, "groq_tokens_per_month": 200,
     "ai_models": ["m-priced"], "groq_tokens_overage_event": "ai_cost_test"}');
insert into public.organizations (id, name)
select ('a2000000-0000-4000-8000-0000000000e' || n)::uuid, 'AI prices ' || n from generate_series(1, 4) n;
insert into public.organization_members (organization_id, user_id, role)
select ('a2000000-0000-4000-8000-0000000000e' || n)::uuid, 'a2000000-0000-4000-8000-000000000001', 'owner'
from generate_series(1, 4) n;
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
select ('a2000000-0000-4000-8000-0000000000e' || n)::uuid, ('a2000000-0000-4000-8000-0000000000f' || n)::uuid,
       'active', '2026-05-01 00:00+05:30', '2026-06-01 00:00+05:30'
from generate_series(1, 4) n;
select billing.operator_grant_credits('a2000000-0000-4000-8000-0000000000e1', 5000, null, 'AI prices test P');
select billing.operator_grant_credits('a2000000-0000-4000-8000-0000000000e3', 100, null, 'AI prices test R');
select billing.operator_grant_credits('a2000000-0000-4000-8000-0000000000e4', 1000, null, 'AI prices test S');

create temp table r (name text primary key, request_id text, allowed boolean, denial text, max_tokens integer,
                     reserved_tokens bigint, remaining bigint) on commit drop;
grant all on r to service_role;

/** ai_reserve in organization p_org (1 to 4) of p_model: p_max tokens for the answer, p_prompt the estimate. */
create function pg_temp.take(p_name text, p_org integer, p_model text, p_max integer, p_prompt integer)
returns void language sql as $$
  insert into r select p_name, x.request_id, x.allowed, x.denial, x.max_tokens, x.reserved_tokens, x.remaining
  from billing.ai_reserve(('a2000000-0000-4000-8000-0000000000e' || p_org)::uuid,
                          'a2000000-0000-4000-8000-000000000001', p_model, p_max, p_prompt) x
$$;
create function pg_temp.rid(p_name text) returns text language sql as $$ select request_id from r where name = p_name $$;
create function pg_temp.org(p_org integer) returns uuid language sql as $$
  select ('a2000000-0000-4000-8000-0000000000e' || p_org)::uuid $$;
create function pg_temp.balance(p_org integer) returns bigint language sql as $$
  select billing.available_credits(pg_temp.org(p_org)) $$;
create function pg_temp.used(p_org integer, p_metric text) returns bigint language sql as $$
  select coalesce(sum(q.count), 0)::bigint from public.usage_quotas q
  where q.organization_id = pg_temp.org(p_org) and q.metric = p_metric and q.window_unit = 'month'
    and q.window_start <= billing.now() and q.window_start > billing.now() - interval '1 month' $$;
create function pg_temp.row_of(p_name text) returns text language sql as $$
  select (status, reserved_paise, cost_paise, charged_paise, price_effective_from)::text
  from public.ai_requests where request_id = pg_temp.rid(p_name) $$;
create function pg_temp.alerts(p_org integer) returns text language sql as $$
  select coalesce(string_agg(n.payload ->> 'threshold', ',' order by (n.payload ->> 'threshold')::int), '')
  from public.notifications n
  where n.organization_id = pg_temp.org(p_org) and n.kind = 'quota_threshold' and n.payload ->> 'metric' = 'ai_spend_paise' $$;

select tests.as_role('service_role');

-- -------------------------------------------------------------------------------------------------
-- P: the reservation holds the estimate's cost in credits and against the cap; the settlement
-- moves both to the real cost
-- -------------------------------------------------------------------------------------------------

set local billing.now = '2026-05-12 10:00:00+05:30';
select pg_temp.take('p1', 1, 'm-priced', 100, 50);
select is((select (allowed, max_tokens, reserved_tokens)::text from r where name = 'p1'), '(t,100,150)',
  'P reserves 50 + 100 tokens');
select is(pg_temp.row_of('p1'), '(pending,250,,,"2026-05-12 00:00:00+05:30")',
  'the reservation''s cost, 50 x 1 + 100 x 2 paise, at the price in effect at 10:00');
select is((pg_temp.balance(1), pg_temp.used(1, 'ai_spend_paise'))::text, '(4750,250)',
  'it holds 250 credits and 250 paise of the spend cap');
select is((select (charged, credits, event_code)::text from public.credit_charges where request_id = pg_temp.rid('p1')),
  '(250,250,ai_cost_test)', 'one credit charge under the AI request id');

select is((select (settled, counted_tokens)::text from billing.ai_settle(pg_temp.rid('p1'), 40, 30, 5, 'completed', null, 10)),
  '(t,70)', 'settled at 40 prompt tokens (10 of them cached) and 30 answer tokens');
select is(pg_temp.row_of('p1'), '(completed,250,95.000000,95,"2026-05-12 00:00:00+05:30")',
  'cost 30 x 1 + 10 x 0.5 + 30 x 2 = 95 paise on the log row');
select is((pg_temp.balance(1), pg_temp.used(1, 'ai_spend_paise'))::text, '(4905,95)',
  'the settlement gives back 155 credits and 155 paise of the cap');
select is((select cached_prompt_tokens from public.ai_requests where request_id = pg_temp.rid('p1')), 10,
  'the cached prompt tokens are on the log row');

-- -------------------------------------------------------------------------------------------------
-- A price change at noon: a call is priced when it is reserved, whenever it settles
-- -------------------------------------------------------------------------------------------------

set local billing.now = '2026-05-12 11:59:00+05:30';
select pg_temp.take('p2', 1, 'm-priced', 100, 50);
set local billing.now = '2026-05-12 12:01:00+05:30';
select is((select settled from billing.ai_settle(pg_temp.rid('p2'), 40, 30)), true, 'reserved at 11:59, settled at 12:01');
select is(pg_temp.row_of('p2'), '(completed,250,100.000000,100,"2026-05-12 00:00:00+05:30")',
  'at the morning price: 40 x 1 + 30 x 2 = 100 paise');
set local billing.now = '2026-05-12 13:00:00+05:30';
select pg_temp.take('p3', 1, 'm-priced', 100, 50);
select is(pg_temp.row_of('p3'), '(pending,550,,,"2026-05-12 12:00:00+05:30")',
  'reserved at 13:00 at the noon price: 50 x 3 + 100 x 4 = 550 paise');
select is((select settled from billing.ai_settle(pg_temp.rid('p3'), 40, 30)), true, 'settled');
select is(pg_temp.row_of('p3'), '(completed,550,240.000000,240,"2026-05-12 12:00:00+05:30")',
  'at the noon price: 40 x 3 + 30 x 4 = 240 paise');
select is((pg_temp.balance(1), pg_temp.used(1, 'ai_spend_paise'))::text, '(4565,435)',
  'credits and the cap hold the three calls: 95 + 100 + 240');

-- -------------------------------------------------------------------------------------------------
-- Release, a fraction of a paisa, an unpriced model, expiry
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('p4', 1, 'm-priced', 100, 50);
select is((pg_temp.balance(1), pg_temp.used(1, 'ai_spend_paise'))::text, '(4015,985)', 'a reservation holds 550');
select is(billing.ai_release(pg_temp.rid('p4'), 'upstream_error'), true, 'released (Groq failed)');
select is((pg_temp.balance(1), pg_temp.used(1, 'ai_spend_paise'))::text, '(4565,435)',
  'the release gives every credit and paisa back');
select is(pg_temp.row_of('p4'), '(upstream_error,550,0.000000,0,"2026-05-12 12:00:00+05:30")', 'cost 0');
select is((select charged from public.credit_charges where request_id = pg_temp.rid('p4')), 0::bigint,
  'the charge holds nothing');

select pg_temp.take('p5', 1, 'm-cheap', 16, 100);
select is((select settled from billing.ai_settle(pg_temp.rid('p5'), 100, 16)), true, 'a call on m-cheap settled');
select is(pg_temp.row_of('p5'), '(completed,1,0.054008,1,"2026-05-01 00:00:00+05:30")',
  'its cost is kept exact (100 x 430 + 16 x 688 per million = 0.054008 paise), charged as 1 paisa');

select pg_temp.take('p6', 1, 'm-unpriced', 100, 50);
select is((select (allowed, denial)::text from r where name = 'p6'), '(f,model_not_priced)',
  'a model without a price cannot be charged: refused');
select is((select (status, error_code)::text from public.ai_requests where request_id = pg_temp.rid('p6')),
  '(denied,model_not_priced)', 'and logged with its code');

select pg_temp.take('p7', 1, 'm-priced', 100, 50);
select tests.as_postgres();
set local billing.now = '2026-05-12 13:16:00+05:30';
select is(billing.job_ai_release_stale_reservations(), 1, 'a reservation never settled expires');
select is(pg_temp.row_of('p7'), '(expired,550,550.000000,550,"2026-05-12 12:00:00+05:30")',
  'counted at its reservation''s cost');
select is((pg_temp.balance(1), pg_temp.used(1, 'ai_spend_paise'))::text, '(4014,986)',
  'its 550 credits and paise stay charged (436 + 550)');
select tests.as_role('service_role');

-- -------------------------------------------------------------------------------------------------
-- The spend cap: refused with its code, max_tokens capped to it, alerts once per crossing
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('p8', 1, 'm-priced', 131072, 5000);
select is((select (allowed, denial, remaining)::text from r where name = 'p8'), '(f,spend,9014)',
  'a prompt that alone costs more than the cap has left is refused: spend');
select is((select error_code from public.ai_requests where request_id = pg_temp.rid('p8')), 'ai_spend_cap_reached',
  'logged as ai_spend_cap_reached');

select pg_temp.take('q1', 2, 'm-priced', 100, 100);
select is((select reserved_paise from public.ai_requests where request_id = pg_temp.rid('q1')), 700::bigint,
  'Q reserves 700 of its 1000 paise');
select is(pg_temp.alerts(2), '', '70 %: no alert');
select is((select settled from billing.ai_settle(pg_temp.rid('q1'), 100, 50)), true, 'settled at 500');
select pg_temp.take('q2', 2, 'm-priced', 50, 50);
select is((pg_temp.used(2, 'ai_spend_paise'), pg_temp.alerts(2))::text, '(850,"")', '85 % with a reservation: a reservation never alerts');
select is((select settled from billing.ai_settle(pg_temp.rid('q2'), 50, 0)), true, 'settled lower, at 150: 650');
select pg_temp.take('q3', 2, 'm-priced', 50, 50);
select is((pg_temp.used(2, 'ai_spend_paise'), pg_temp.alerts(2))::text, '(1000,"")',
  '100 % with a reservation: still no alert (settled use is 65 %)');
select is(billing.ai_release(pg_temp.rid('q3'), 'upstream_error'), true, 'released: back to 650');
select pg_temp.take('q4', 2, 'm-priced', 1000, 50);
select is((select (allowed, max_tokens)::text from r where name = 'q4'), '(t,50)',
  'max_tokens is capped to what the cap can pay: (350 - 150) / 4 = 50');
select is((pg_temp.used(2, 'ai_spend_paise'), pg_temp.alerts(2))::text, '(1000,"")',
  'reserved to the cap again: no alert');
select is((select settled from billing.ai_settle(pg_temp.rid('q4'), 1000, 50)), true, 'q4 settled at its whole reservation');
select is((pg_temp.used(2, 'ai_spend_paise'), pg_temp.alerts(2))::text, '(1000,100)',
  'settled use from 65 % to 100 %: one alert, for 100 %');
select pg_temp.take('q5', 2, 'm-priced', 16, 1);
select is((select (allowed, denial)::text from r where name = 'q5'), '(f,spend)', 'the cap is reached: refused');

-- -------------------------------------------------------------------------------------------------
-- Credits run out
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('r1', 3, 'm-priced', 1000, 10);
select is((select (allowed, max_tokens)::text from r where name = 'r1'), '(t,17)',
  'R''s 100 credits pay for 10 prompt tokens and 17 answer tokens: max_tokens capped');
select is(pg_temp.balance(3), 2::bigint, 'the reservation holds 30 + 68 credits');
select pg_temp.take('r2', 3, 'm-priced', 100, 10);
select is((select (allowed, denial, remaining)::text from r where name = 'r2'), '(f,credits,2)',
  'with 2 credits left: refused, credits, the balance as remaining');
select is((select error_code from public.ai_requests where request_id = pg_temp.rid('r2')), 'insufficient_credits',
  'logged as insufficient_credits');

-- -------------------------------------------------------------------------------------------------
-- S: past its 200 tokens a month, calls run on credits
-- -------------------------------------------------------------------------------------------------

select pg_temp.take('s1', 4, 'm-priced', 100, 50);
select is((select settled from billing.ai_settle(pg_temp.rid('s1'), 50, 50)), true, 'within the quota: 100 tokens');
select is((pg_temp.used(4, 'groq_tokens'), pg_temp.balance(4),
           (select count(*) from public.credit_charges where request_id = pg_temp.rid('s1')))::text, '(100,1000,0)',
  'counted against the quota, no credits');
select pg_temp.take('s2', 4, 'm-priced', 100, 50);
select is((select (allowed, max_tokens, reserved_tokens)::text from r where name = 's2'), '(t,100,150)',
  'a call the quota cannot hold whole is allowed, uncapped');
select is((pg_temp.used(4, 'groq_tokens'), pg_temp.balance(4))::text, '(100,450)',
  'its tokens are not counted; 550 credits are held');
select is((select (settled, counted_tokens)::text from billing.ai_settle(pg_temp.rid('s2'), 50, 20)), '(t,0)',
  'settled: no tokens counted');
select is((pg_temp.used(4, 'groq_tokens'), pg_temp.balance(4), pg_temp.row_of('s2'))::text,
  '(100,770,"(completed,550,230.000000,230,""2026-05-12 12:00:00+05:30"")")', 'charged its cost: 150 + 80 credits');
select pg_temp.take('s3', 4, 'm-priced', 100, 50);
select pg_temp.take('s4', 4, 'm-priced', 100, 50);
select is((select string_agg(coalesce(denial, 'ok:' || max_tokens), ',' order by name) from r where name in ('s3', 's4')),
  'ok:100,ok:17', 'while credits last, then capped to them');
select pg_temp.take('s5', 4, 'm-priced', 100, 50);
select is((select (allowed, denial)::text from r where name = 's5'), '(f,credits)', 'then refused: credits');

-- -------------------------------------------------------------------------------------------------
-- The ledger agrees; the plan feature is checked
-- -------------------------------------------------------------------------------------------------

select tests.as_postgres();
select is_empty('select * from billing.credit_ledger_problems()', 'the credit ledger agrees with the grants');
select throws_ok($$update public.billing_plans set features = features || '{"ai_credit_event": "no_such_event"}'
                   where code = 'ai_prices_p'$$, '22023', null, 'ai_credit_event must name a credit event');

select * from finish();
rollback;
