-- Nightly AI batches (supabase/schemas/14_ai_batches.sql), under the pinned test clock:
-- public.submit_ai_batch refuses a stranger, a plan without ai_batch, a batch past
-- max_ai_batch_requests and a bad request (naming the first, by its index) or one the quota
-- refuses, with nothing written; a good batch is due at the settings' hour in India time and
-- reserves each request as an interactive call (prompts, the prompt estimate and max_tokens),
-- without the per-user rate limit; the batch price (the factor, or the model's own batch prices);
-- who reads a batch; the worker's functions are service_role's; results read twice settle once.
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select plan(31);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into auth.users (id, email) values
  ('a1400000-0000-4000-8000-000000000001', 'batch-member@test.local'),
  ('a1400000-0000-4000-8000-000000000002', 'batch-stranger@test.local');

insert into public.ai_model_prices (model, effective_from, input_paise_per_million, output_paise_per_million,
                                    cached_input_paise_per_million) values
  ('test-batch-model', '2026-01-01 00:00+05:30', 1000, 2000, 1000);

insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('b1400000-0000-4000-8000-000000000001', 'ab_batch', 'AB Batch', 'pro', 'month', 99900,
   '{"max_members": 5, "ai_batch": true, "max_ai_batch_requests": 3, "ai_requests_per_minute": 1,
     "ai_prompts_per_day": 100, "groq_tokens_per_month": 3000, "ai_models": ["test-batch-model"]}'),
  ('b1400000-0000-4000-8000-000000000002', 'ab_plain', 'AB Plain', 'pro', 'month', 99900,
   '{"max_members": 5, "ai_prompts_per_day": 100, "groq_tokens_per_month": 3000, "ai_models": ["test-batch-model"]}');

insert into public.organizations (id, name, timezone) values
  ('c1400000-0000-4000-8000-0000000000a1', 'AB main', 'Asia/Kolkata'),
  ('c1400000-0000-4000-8000-0000000000a2', 'AB plain', 'Asia/Kolkata');
insert into public.organization_members (organization_id, user_id, role) values
  ('c1400000-0000-4000-8000-0000000000a1', 'a1400000-0000-4000-8000-000000000001', 'member'),
  ('c1400000-0000-4000-8000-0000000000a2', 'a1400000-0000-4000-8000-000000000001', 'member');
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end) values
  ('c1400000-0000-4000-8000-0000000000a1', 'b1400000-0000-4000-8000-000000000001', 'active',
   '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30'),
  ('c1400000-0000-4000-8000-0000000000a2', 'b1400000-0000-4000-8000-000000000002', 'active',
   '2026-12-01 00:00+05:30', '2027-01-01 00:00+05:30');

create function pg_temp.req(p_content text, p_extra jsonb default '{}') returns jsonb language sql as $$
  select jsonb_build_object('model', 'test-batch-model', 'max_tokens', 100,
                            'messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', p_content))) || p_extra $$;
create function pg_temp.written() returns text language sql as $$
  select (select count(*) from public.ai_batches) || ' batches, ' || (select count(*) from public.ai_requests
          where organization_id = 'c1400000-0000-4000-8000-0000000000a1') || ' AI requests, '
         || (select count(*) from public.usage_metrics where organization_id = 'c1400000-0000-4000-8000-0000000000a1')
         || ' usage rows' $$;

-- Refusals, nothing written --------------------------------------------------------------------

select tests.as_user('a1400000-0000-4000-8000-000000000002');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1', jsonb_build_array(pg_temp.req('hi'))) $$,
  '42501', 'submit_ai_batch: not a member of organization c1400000-0000-4000-8000-0000000000a1',
  'a stranger cannot submit a batch');

select tests.as_user('a1400000-0000-4000-8000-000000000001');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a2', jsonb_build_array(pg_temp.req('hi'))) $$,
  '42501', 'submit_ai_batch: the plan does not include AI batches (feature ai_batch)',
  'a plan without ai_batch refuses');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('a'), pg_temp.req('b'), pg_temp.req('c'), pg_temp.req('d'))) $$,
  '22023', 'submit_ai_batch: 4 requests, the plan allows at most 3 in a batch (max_ai_batch_requests)',
  'more than max_ai_batch_requests is refused');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1', '[]') $$,
  '22023', 'submit_ai_batch: requests must be a non-empty array of chat requests', 'an empty batch is refused');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('a'), pg_temp.req('b', '{"max_tokens": 0}'), pg_temp.req('c', '{"top_p": 7}'))) $$,
  '22023', 'submit_ai_batch: request 1: max_tokens must be an integer from 1 to 131072',
  'a bad max_tokens names the first bad request by its index');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('a', '{"model": "llama-3.3-70b-versatile"}'))) $$,
  '22023', 'submit_ai_batch: request 0: model "llama-3.3-70b-versatile" is not in the plan''s ai_models',
  'a model the plan does not list is refused');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('a', '{"stream": true}'))) $$,
  '22023', 'submit_ai_batch: request 0: unsupported field "stream"', 'a batch request is never streamed');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('a', '{"messages": []}'))) $$,
  '22023', 'submit_ai_batch: request 0: messages must be an array of 1 to 256 messages', 'messages must not be empty');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('a', '{"messages": [{"role": "robot", "content": "x"}]}'))) $$,
  '22023', 'submit_ai_batch: request 0: messages[0].role must be system, user, assistant or tool', 'roles are checked');
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('a', '{"temperature": 3}'))) $$,
  '22023', 'submit_ai_batch: request 0: temperature must be a number from 0 to 2', 'number ranges are checked');
-- The token quota (3000 a month) holds two requests of 100 + estimate, not three of 1000.
select throws_ok($$ select public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('a', '{"max_tokens": 1000}'), pg_temp.req('b', '{"max_tokens": 1000}'),
                      pg_temp.req('c', '{"max_tokens": 1000}'))) $$,
  '23514', 'submit_ai_batch: request 2 refused: tokens', 'a request the token quota cannot hold refuses the whole batch');
select tests.as_postgres();
select is(pg_temp.written(), '0 batches, 0 AI requests, 0 usage rows', 'a refused batch writes nothing');

-- A good batch -----------------------------------------------------------------------------------

select tests.as_user('a1400000-0000-4000-8000-000000000001');
select lives_ok($$ select set_config('ab.batch', public.submit_ai_batch('c1400000-0000-4000-8000-0000000000a1',
    jsonb_build_array(pg_temp.req('hello'), pg_temp.req('good night', '{"max_tokens": 50}')))::text, true) $$,
  'a member submits two requests');
select tests.as_postgres();
select is((select state::text || ' ' || request_count || ' ' || due_at from public.ai_batches),
  'queued 2 ' || '2026-12-11 02:00+05:30'::timestamptz, 'queued, due at 02:00 India time, the first such hour after now');
select is((select string_agg(a.reserved_tokens || '/' || a.max_tokens || '/' || a.status || '/' || a.batch || '/' || a.reserved_paise, ' ' order by r.position)
           from public.ai_batch_requests r join public.ai_requests a using (request_id)),
  (64 + 5 + 4 + 8 + 100) || '/100/pending/true/1 ' || (64 + 10 + 4 + 8 + 50) || '/50/pending/true/1',
  'each request reserved: the prompt estimate (as ai-chat counts it) and max_tokens, its cost at the full price');
select is((select string_agg(metric || ' ' || amount, ', ' order by metric, amount) from public.usage_metrics
           where organization_id = 'c1400000-0000-4000-8000-0000000000a1'),
  'ai_prompts 1, ai_prompts 1, groq_tokens 136, groq_tokens 181',
  'prompts and tokens counted; the per-user rate limit (1 a minute) is not taken');
select is((select expires_at from public.ai_requests where batch limit 1), '2026-12-14 12:00+05:30'::timestamptz,
  'a batch reservation lasts 4 days');
select is(billing.ai_batch_prompt_tokens('{"messages": [{"role": "user", "content": "héllo", "name": "ab"}]}'),
  64 + 6 + 4 + 2 + 8, 'the estimate counts UTF-8 bytes, the role and the name');

-- Who reads it ------------------------------------------------------------------------------------

select tests.as_user('a1400000-0000-4000-8000-000000000001');
select is((select public.get_ai_batch(current_setting('ab.batch')::uuid) ->> 'state'), 'queued', 'a member reads the batch');
select is((select count(*) from public.ai_batch_requests)::int, 2, 'and its requests');
select tests.as_user('a1400000-0000-4000-8000-000000000002');
select throws_ok($$ select public.get_ai_batch(current_setting('ab.batch')::uuid) $$, 'P0002',
  'get_ai_batch: no AI batch ' || current_setting('ab.batch'), 'a stranger is told there is no such batch');
select is((select count(*) from public.ai_batches)::int, 0, 'and reads no batch');
select tests.as_postgres();
select ok(not has_function_privilege('authenticated', 'billing.settle_ai_batch(uuid, integer, jsonb, text, text)', 'execute')
          and not has_function_privilege('authenticated', 'billing.claim_ai_batches(integer)', 'execute'),
  'only the worker settles and claims');

-- The batch price -------------------------------------------------------------------------------

select is((select (b).input_paise_per_million || '/' || (b).output_paise_per_million || '/' || (b).cached_input_paise_per_million
           from (select billing.ai_batch_price(p) as b from public.ai_model_prices p where p.model = 'test-batch-model') x),
  '500/1000/500', 'without batch prices: the interactive prices times ai_batch_price_factor (0.5)');
update public.billing_settings set ai_batch_price_factor = 0.25;
select is((select (billing.ai_batch_price(p)).output_paise_per_million from public.ai_model_prices p where p.model = 'test-batch-model'),
  500::bigint, 'the factor is a setting');
update public.ai_model_prices set batch_input_paise_per_million = 300, batch_output_paise_per_million = 600
where model = 'test-batch-model';
select is((select (b).input_paise_per_million || '/' || (b).output_paise_per_million || '/' || (b).cached_input_paise_per_million
           from (select billing.ai_batch_price(p) as b from public.ai_model_prices p where p.model = 'test-batch-model') x),
  '300/600/250', 'a model''s own batch prices win (cached input at most the batch input price)');
update public.billing_settings set ai_batch_price_factor = 0.5;

-- Settled once ----------------------------------------------------------------------------------

set local billing.now = '2026-12-11 02:01:00+05:30';
select is((select count(*) from billing.claim_ai_batches(5))::int, 1, 'due at the hour: claimed');
select ok(billing.record_ai_batch_upload(current_setting('ab.batch')::uuid, 1, 'batch_ab', 'file_ab'), 'the upload recorded');
select is((select settled || '/' || failed from billing.settle_ai_batch(current_setting('ab.batch')::uuid, 1,
    (select jsonb_agg(jsonb_build_object('custom_id', request_id, 'ok', true, 'prompt_tokens', 10, 'completion_tokens', 20,
                                         'answer', '{}'::jsonb)) from public.ai_batch_requests))),
  '2/0', 'both settled');
select is((select string_agg(cost_paise::text || '/' || charged_paise, ' ') from public.ai_requests where batch),
  '0.015000/1 0.015000/1', 'at the model''s batch prices: 10 x 300 + 20 x 600 per million');
select is((select settled || '/' || failed from billing.settle_ai_batch(current_setting('ab.batch')::uuid, 1,
    (select jsonb_agg(jsonb_build_object('custom_id', request_id, 'ok', true, 'prompt_tokens', 99, 'completion_tokens', 99))
     from public.ai_batch_requests))),
  '0/0', 'results read again settle nothing');

select * from finish();
rollback;
