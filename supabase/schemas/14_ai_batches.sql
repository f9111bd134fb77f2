-- =================================================================================================
-- supabill: nightly AI batches through Groq's Batch API, metered like every other AI call
--
--   public.submit_ai_batch(org, requests)   a member (the plan's `ai_batch`) submits up to
--     `max_ai_batch_requests` chat requests, each validated as ai-chat validates it and reserved
--     as an interactive call reserves it (billing.ai_reserve with p_batch: prompts, worst-case
--     tokens, spend, credits), all or nothing; answers the batch id. Due at the next
--     billing_settings.ai_batch_hour_ist (India time).
--   the ai-batch worker (service key; pg_cron job `supabill-ai-batch`, the local ticker):
--     billing.claim_ai_batches leases due batches; the worker uploads the JSONL (custom_id = each
--     request's AI request id), creates the Groq batch with metadata {supabill_batch_id,
--     supabill_run} and records both ids (billing.record_ai_batch_upload); later polls, and on
--     completion hands every result line to billing.settle_ai_batch, which settles each request
--     once at the batch price (billing.ai_settle, billing.ai_batch_price) and releases the ones
--     that failed (billing.ai_release). A Groq batch that expired, failed or was cancelled is run
--     once more, then released (billing.ai_batch_run_failed): never charged.
--   public.get_ai_batch(batch)   members read its state and answers.
--
-- Safety. The claim is a lease (locked_until): one worker at a time. A batch claimed in state
-- 'uploading' had an earlier attempt whose outcome is unknown (the worker died between the upload
-- and the record): the worker lists Groq's batches and adopts the one whose metadata names this
-- batch and run before it uploads anything again. billing.settle_ai_batch settles only a
-- submitted batch and only requests still reserved: a result file read twice settles nothing twice.
--
-- Lock order: the ai_batches row first, then (settlement, release) every request's ai_requests
-- row in request id order, then the AI gateway's order for each request (10_ai_gateway.sql).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

/**
 * Where a batch stands: queued (reserved, waiting for its hour, or for its second run), uploading
 * (claimed; the upload's outcome is unknown until recorded), submitted (at Groq, polled),
 * completed (every request settled or released), released (Groq failed it twice: every
 * reservation given back).
 */
create type public.ai_batch_state as enum ('queued', 'uploading', 'submitted', 'completed', 'released');

comment on type public.ai_batch_state is 'Where an AI batch stands: queued, uploading (outcome unknown until recorded), submitted (at Groq), completed, released (never charged).';

/** Where one request of a batch stands: reserved, settled (answered), failed (released), released (the batch was). */
create type public.ai_batch_request_state as enum ('reserved', 'settled', 'failed', 'released');

comment on type public.ai_batch_request_state is 'Where a request of an AI batch stands: reserved, settled (answered and charged), failed (released), released (with its batch).';

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- ai_batches
-- -------------------------------------------------------------------------------------------------

/**
 * One nightly batch of chat requests: who submitted it, when it is due (the settings' hour in
 * India time), its run at Groq (run 1, or 2 after an expired or failed run), Groq's batch and
 * file ids, the worker's lease, and the counts once done. Members of the organization read it;
 * only the functions of this module write.
 */
create table public.ai_batches (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  state public.ai_batch_state not null default 'queued',
  request_count integer not null check (request_count > 0),
  due_at timestamptz not null,
  run integer not null default 0 check (run between 0 and 2),
  groq_batch_id text unique check (length(groq_batch_id) between 1 and 200),
  input_file_id text check (length(input_file_id) between 1 and 200),
  output_file_id text check (length(output_file_id) between 1 and 200),
  error_file_id text check (length(error_file_id) between 1 and 200),
  groq_status text check (length(groq_status) between 1 and 40),
  settled_count integer check (settled_count >= 0),
  failed_count integer check (failed_count >= 0),
  charged_paise bigint check (charged_paise >= 0),
  locked_until timestamptz,
  last_error text check (length(last_error) <= 1000),
  submitted_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  constraint ai_batches_submitted_has_groq_batch check (state <> 'submitted' or groq_batch_id is not null)
);

comment on table public.ai_batches is 'Nightly AI batches: requests reserved at submission, sent to Groq''s Batch API at the settings'' hour, settled per request at the batch price.';

/** Foreign keys and the policy column; batches the worker has to look at. */
create index ai_batches_organization_id_idx on public.ai_batches (organization_id, created_at);

create index ai_batches_user_id_idx on public.ai_batches (user_id);

create index ai_batches_open_idx on public.ai_batches (due_at) where state in ('queued', 'uploading', 'submitted');

grant select on public.ai_batches to authenticated;

grant select, insert, update, delete on public.ai_batches to service_role;

alter table public.ai_batches enable row level security;

-- -------------------------------------------------------------------------------------------------
-- ai_batch_requests
-- -------------------------------------------------------------------------------------------------

/**
 * One request of a batch: its place, the validated chat body, its AI request (the reservation,
 * public.ai_requests; its request id is the JSONL line's custom_id), the tokens reserved for the
 * answer, and once done the answer, the tokens and the cost at the batch price. Members read it.
 * request_id names the ai_requests row billing.submit_ai_batch reserves in the same transaction;
 * it is not a foreign key: ai_requests is in monthly partitions, where a key would have to carry
 * its created_at and would stop a month past ai_request_retention_days from being dropped. Both
 * rows go with their organization.
 */
create table public.ai_batch_requests (
  request_id text primary key,
  batch_id uuid not null references public.ai_batches (id) on delete cascade,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  position integer not null check (position >= 1),
  request jsonb not null check (jsonb_typeof(request) = 'object'),
  max_tokens integer not null check (max_tokens > 0),
  state public.ai_batch_request_state not null default 'reserved',
  answer jsonb check (jsonb_typeof(answer) = 'object'),
  prompt_tokens integer check (prompt_tokens >= 0),
  completion_tokens integer check (completion_tokens >= 0),
  cost_paise numeric(20, 6) check (cost_paise >= 0),
  charged_paise bigint check (charged_paise >= 0),
  error_code text check (length(error_code) between 1 and 100),
  settled_at timestamptz,
  created_at timestamptz not null default now(),
  unique (batch_id, position)
);

comment on table public.ai_batch_requests is 'The requests of an AI batch, each with its reservation (public.ai_requests, custom_id = request_id), its answer, tokens and cost at the batch price.';

create index ai_batch_requests_organization_id_idx on public.ai_batch_requests (organization_id);

grant select on public.ai_batch_requests to authenticated;

grant select, insert, update, delete on public.ai_batch_requests to service_role;

alter table public.ai_batch_requests enable row level security;

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/** When a batch submitted at p_at is due: the first ai_batch_hour_ist:00 in Asia/Kolkata after p_at. */
create function billing.ai_batch_due_at(p_at timestamptz)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  v_hour integer := coalesce((select s.ai_batch_hour_ist from public.billing_settings s where s.id), 2);
  v_due timestamp := pg_catalog.date_trunc('day', p_at at time zone 'Asia/Kolkata') + pg_catalog.make_interval(hours => v_hour);
begin
  if v_due <= p_at at time zone 'Asia/Kolkata' then
    v_due := v_due + interval '1 day';
  end if;
  return v_due at time zone 'Asia/Kolkata';
end;
$$;
revoke execute on function billing.ai_batch_due_at(timestamptz) from public;
grant execute on function billing.ai_batch_due_at(timestamptz) to service_role;

/**
 * The prompt token estimate of one chat body, as ai-chat's estimatePromptTokens counts it (an
 * upper bound: UTF-8 bytes of each message's text, role and name, 8 tokens a message, 64 a
 * request; tool calls, tools, tool_choice and a response format's schema as the bytes of their
 * JSON, with 64 for the tools and 64 for a format). JSON is measured as jsonb's text, which has a
 * space after every colon and comma: at least as long as JavaScript's, so still an upper bound.
 */
create function billing.ai_batch_prompt_tokens(p_body jsonb)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_tokens bigint := 64;
  v_message jsonb;
  v_content jsonb;
  v_text text;
begin
  for v_message in select m from pg_catalog.jsonb_array_elements(p_body -> 'messages') as m loop
    v_content := v_message -> 'content';
    v_text := case pg_catalog.jsonb_typeof(v_content)
                when 'string' then v_content #>> '{}'
                when 'array' then (select pg_catalog.string_agg(p ->> 'text', '' order by o)
                                   from pg_catalog.jsonb_array_elements(v_content) with ordinality as x(p, o))
                else '' end;
    v_tokens := v_tokens + pg_catalog.octet_length(coalesce(v_text, '')) + pg_catalog.octet_length(v_message ->> 'role')
                + pg_catalog.octet_length(coalesce(v_message ->> 'name', '')) + 8;
    if pg_catalog.jsonb_typeof(v_message -> 'tool_calls') = 'array' then
      v_tokens := v_tokens + pg_catalog.octet_length((v_message -> 'tool_calls')::text);
    end if;
    if pg_catalog.jsonb_typeof(v_message -> 'tool_call_id') = 'string' then
      v_tokens := v_tokens + pg_catalog.octet_length(v_message ->> 'tool_call_id');
    end if;
  end loop;
  if pg_catalog.jsonb_typeof(p_body -> 'tools') = 'array' then
    v_tokens := v_tokens + pg_catalog.octet_length((p_body -> 'tools')::text) + 64;
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'tool_choice'), 'null') <> 'null' then
    v_tokens := v_tokens + case when pg_catalog.jsonb_typeof(p_body -> 'tool_choice') = 'string'
                                then pg_catalog.octet_length(p_body ->> 'tool_choice')
                                else pg_catalog.octet_length((p_body -> 'tool_choice')::text) end;
  end if;
  if p_body #>> '{response_format,type}' = 'json_schema' then
    v_tokens := v_tokens + pg_catalog.octet_length((p_body -> 'response_format')::text) + 64;
  elsif p_body #>> '{response_format,type}' = 'json_object' then
    v_tokens := v_tokens + 64;
  end if;
  return least(v_tokens, 1000000)::integer;
end;
$$;
revoke execute on function billing.ai_batch_prompt_tokens(jsonb) from public;
grant execute on function billing.ai_batch_prompt_tokens(jsonb) to service_role;

/**
 * What is wrong with one chat body of a batch, as ai-chat's parseChatBody says it (null: nothing):
 * only its fields (no stream: a batch is never streamed), a model name the plan's `ai_models`
 * lists, 1 to 256 messages of a known role with text content (null only beside tool_calls),
 * names, tool call ids, the number ranges (temperature 0-2, top_p 0-1, the penalties -2 to 2),
 * max_tokens / max_completion_tokens 1 to 131072 and agreeing, n 1, stop, seed, user, and the
 * outer shape of tools, tool_choice and response_format (Groq checks their inner JSON schemas; a
 * line it refuses comes back in the error file and is released).
 */
create function billing.ai_batch_request_problem(p_body jsonb, p_models jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key text;
  v_message jsonb;
  v_i integer := 0;
  v_name text;
  v_max jsonb;
  v_range record;
begin
  if pg_catalog.jsonb_typeof(p_body) is distinct from 'object' then
    return 'must be a chat request object';
  end if;
  for v_key in select k from pg_catalog.jsonb_object_keys(p_body) as k loop
    if v_key not in ('model', 'messages', 'temperature', 'max_tokens', 'max_completion_tokens', 'top_p', 'stop', 'seed',
                     'user', 'response_format', 'n', 'frequency_penalty', 'presence_penalty', 'tools', 'tool_choice',
                     'parallel_tool_calls') then
      return pg_catalog.format('unsupported field "%s"', v_key);
    end if;
  end loop;
  if pg_catalog.jsonb_typeof(p_body -> 'model') is distinct from 'string'
     or p_body ->> 'model' !~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$' then
    return 'model must be a model name such as llama-3.1-8b-instant';
  end if;
  if not coalesce(p_models @> pg_catalog.jsonb_build_array(p_body ->> 'model'), false) then
    return pg_catalog.format('model "%s" is not in the plan''s ai_models', p_body ->> 'model');
  end if;
  if pg_catalog.jsonb_typeof(p_body -> 'messages') is distinct from 'array'
     or pg_catalog.jsonb_array_length(p_body -> 'messages') not between 1 and 256 then
    return 'messages must be an array of 1 to 256 messages';
  end if;
  for v_message in select m from pg_catalog.jsonb_array_elements(p_body -> 'messages') as m loop
    if pg_catalog.jsonb_typeof(v_message) is distinct from 'object' then
      return pg_catalog.format('messages[%s] must be an object', v_i);
    end if;
    for v_key in select k from pg_catalog.jsonb_object_keys(v_message) as k loop
      if v_key not in ('role', 'content', 'name', 'tool_calls', 'tool_call_id') then
        return pg_catalog.format('messages[%s]: unsupported field "%s"', v_i, v_key);
      end if;
    end loop;
    if coalesce(v_message ->> 'role', '') not in ('system', 'user', 'assistant', 'tool')
       or pg_catalog.jsonb_typeof(v_message -> 'role') <> 'string' then
      return pg_catalog.format('messages[%s].role must be system, user, assistant or tool', v_i);
    end if;
    if coalesce(pg_catalog.jsonb_typeof(v_message -> 'tool_calls'), 'null') <> 'null' and (
         v_message ->> 'role' <> 'assistant' or pg_catalog.jsonb_typeof(v_message -> 'tool_calls') <> 'array'
         or pg_catalog.jsonb_array_length(v_message -> 'tool_calls') not between 1 and 128) then
      return pg_catalog.format('messages[%s].tool_calls must be 1 to 128 tool calls of an assistant message', v_i);
    end if;
    if (v_message ->> 'role' = 'tool') <> (coalesce(pg_catalog.jsonb_typeof(v_message -> 'tool_call_id'), 'null') <> 'null')
       or (v_message ->> 'role' = 'tool' and (pg_catalog.jsonb_typeof(v_message -> 'tool_call_id') <> 'string'
                                            or pg_catalog.length(v_message ->> 'tool_call_id') not between 1 and 256)) then
      return pg_catalog.format('messages[%s].tool_call_id must name the tool call a tool message answers, and only there', v_i);
    end if;
    if not (pg_catalog.jsonb_typeof(v_message -> 'content') = 'string'
            or (coalesce(pg_catalog.jsonb_typeof(v_message -> 'content'), 'null') = 'null'
                and pg_catalog.jsonb_typeof(v_message -> 'tool_calls') = 'array')
            or (pg_catalog.jsonb_typeof(v_message -> 'content') = 'array'
                and pg_catalog.jsonb_array_length(v_message -> 'content') > 0
                and not exists (select from pg_catalog.jsonb_array_elements(v_message -> 'content') as p
                                where pg_catalog.jsonb_typeof(p) <> 'object' or p ->> 'type' is distinct from 'text'
                                   or pg_catalog.jsonb_typeof(p -> 'text') is distinct from 'string'
                                   or (select count(*) from pg_catalog.jsonb_object_keys(p)) <> 2))) then
      return pg_catalog.format('messages[%s].content must be a string or an array of text parts', v_i);
    end if;
    v_name := v_message ->> 'name';
    if v_message ? 'name' and (pg_catalog.jsonb_typeof(v_message -> 'name') <> 'string' or v_name !~ '^[A-Za-z0-9_-]{1,64}$') then
      return pg_catalog.format('messages[%s].name must be 1 to 64 letters, digits, _ or -', v_i);
    end if;
    v_i := v_i + 1;
  end loop;
  for v_range in select * from (values ('temperature', 0, 2), ('top_p', 0, 1), ('frequency_penalty', -2, 2),
                                       ('presence_penalty', -2, 2)) as r(name, low, high) loop
    if coalesce(pg_catalog.jsonb_typeof(p_body -> v_range.name), 'null') <> 'null'
       and (pg_catalog.jsonb_typeof(p_body -> v_range.name) <> 'number'
            or (p_body ->> v_range.name)::numeric not between v_range.low and v_range.high) then
      return pg_catalog.format('%s must be a number from %s to %s', v_range.name, v_range.low, v_range.high);
    end if;
  end loop;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'max_tokens'), 'null') <> 'null'
     and coalesce(pg_catalog.jsonb_typeof(p_body -> 'max_completion_tokens'), 'null') <> 'null'
     and p_body -> 'max_tokens' <> p_body -> 'max_completion_tokens' then
    return 'max_tokens and max_completion_tokens disagree';
  end if;
  v_max := coalesce(nullif(p_body -> 'max_tokens', 'null'::jsonb), p_body -> 'max_completion_tokens');
  if coalesce(pg_catalog.jsonb_typeof(v_max), 'null') <> 'null'
     and (pg_catalog.jsonb_typeof(v_max) <> 'number' or (v_max #>> '{}') !~ '^[0-9]{1,6}$'
          or (v_max #>> '{}')::integer not between 1 and 131072) then
    return 'max_tokens must be an integer from 1 to 131072';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'n'), 'null') <> 'null' and p_body -> 'n' <> '1'::jsonb then
    return 'n must be 1: one choice per request';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'stop'), 'null') <> 'null' and not (
       (pg_catalog.jsonb_typeof(p_body -> 'stop') = 'string' and p_body ->> 'stop' <> '')
       or (pg_catalog.jsonb_typeof(p_body -> 'stop') = 'array' and pg_catalog.jsonb_array_length(p_body -> 'stop') between 1 and 4
           and not exists (select from pg_catalog.jsonb_array_elements(p_body -> 'stop') as x
                           where pg_catalog.jsonb_typeof(x) <> 'string' or x #>> '{}' = ''))) then
    return 'stop must be a non-empty string or an array of 1 to 4 of them';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'seed'), 'null') <> 'null'
     and (p_body ->> 'seed') !~ '^-?[0-9]{1,16}$' then
    return 'seed must be an integer';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'user'), 'null') <> 'null'
     and (pg_catalog.jsonb_typeof(p_body -> 'user') <> 'string' or pg_catalog.length(p_body ->> 'user') > 256) then
    return 'user must be a string of at most 256 characters';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'tools'), 'null') <> 'null' and (
       pg_catalog.jsonb_typeof(p_body -> 'tools') <> 'array' or pg_catalog.jsonb_array_length(p_body -> 'tools') not between 1 and 128
       or exists (select from pg_catalog.jsonb_array_elements(p_body -> 'tools') as t
                  where t ->> 'type' is distinct from 'function' or pg_catalog.jsonb_typeof(t -> 'function') <> 'object'
                     or coalesce(t #>> '{function,name}', '') !~ '^[A-Za-z0-9_-]{1,64}$')) then
    return 'tools must be an array of 1 to 128 functions {type: "function", function: {name, ...}}';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'tool_choice'), 'null') <> 'null' and (
       coalesce(pg_catalog.jsonb_typeof(p_body -> 'tools'), 'null') = 'null'
       or not (p_body ->> 'tool_choice' in ('none', 'auto', 'required')
               or (p_body -> 'tools') @> pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'function', pg_catalog.jsonb_build_object('name', p_body #>> '{tool_choice,function,name}'))))) then
    return 'tool_choice must be none, auto, required or a function naming one of the tools';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'parallel_tool_calls'), 'null') <> 'null'
     and (pg_catalog.jsonb_typeof(p_body -> 'parallel_tool_calls') <> 'boolean'
          or coalesce(pg_catalog.jsonb_typeof(p_body -> 'tools'), 'null') = 'null') then
    return 'parallel_tool_calls must be a boolean, with tools';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_body -> 'response_format'), 'null') <> 'null' and (
       pg_catalog.jsonb_typeof(p_body -> 'response_format') <> 'object'
       or coalesce(p_body #>> '{response_format,type}', '') not in ('text', 'json_object', 'json_schema')
       or (p_body #>> '{response_format,type}' = 'json_schema'
           and coalesce(p_body #>> '{response_format,json_schema,name}', '') !~ '^[A-Za-z0-9_-]{1,64}$')) then
    return 'response_format must be {"type": "text" | "json_object" | "json_schema"} (json_schema with a name)';
  end if;
  return null;
end;
$$;
revoke execute on function billing.ai_batch_request_problem(jsonb, jsonb) from public;
grant execute on function billing.ai_batch_request_problem(jsonb, jsonb) to service_role;

/** Queues the batch's one ai_batch_completed notification (its counts and what it was charged). */
create function billing.queue_ai_batch_completed(p_batch public.ai_batches)
returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into public.notifications (organization_id, kind, payload, dedupe_key)
  values (p_batch.organization_id, 'ai_batch_completed',
          pg_catalog.jsonb_build_object('batch_id', p_batch.id, 'state', p_batch.state, 'requests', p_batch.request_count,
                                        'settled', p_batch.settled_count, 'failed', p_batch.failed_count,
                                        'charged_paise', p_batch.charged_paise, 'submitted_at', p_batch.created_at),
          'ai_batch_completed:' || p_batch.id)
  on conflict (dedupe_key) do nothing;
end;
$$;
revoke execute on function billing.queue_ai_batch_completed(public.ai_batches) from public;
grant execute on function billing.queue_ai_batch_completed(public.ai_batches) to service_role;

/**
 * Submits a batch for the signed-in member (see public.submit_ai_batch): checks, then reserves each
 * request with billing.ai_reserve (p_batch) in order. Any problem raises, naming the first bad
 * request (detail: its index from 0), and nothing is written. Security definer: the reservations
 * are the gateway's service-only functions; who may call is checked here.
 */
create function billing.submit_ai_batch(p_organization_id uuid, p_requests jsonb)
returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
  v_now timestamptz := billing.now();
  v_plan record;
  v_features jsonb;
  v_max bigint;
  v_count integer;
  v_batch_id uuid := pg_catalog.gen_random_uuid();
  v_body jsonb;
  v_i integer;
  v_problem text;
  v_max_tokens integer;
  v_r billing.ai_reservation;
  v_due timestamptz;
begin
  if v_user is null or p_organization_id is null or not exists (
       select from public.organization_members m where m.organization_id = p_organization_id and m.user_id = v_user) then
    raise exception 'submit_ai_batch: not a member of organization %', p_organization_id
      using errcode = 'insufficient_privilege', hint = 'not_a_member';
  end if;
  v_plan := billing.effective_plan(p_organization_id, v_now);
  v_features := coalesce(v_plan.features, '{}'::jsonb);
  if v_features -> 'ai_batch' is distinct from 'true'::jsonb then
    raise exception 'submit_ai_batch: the plan does not include AI batches (feature ai_batch)'
      using errcode = 'insufficient_privilege', hint = 'ai_batch_not_in_plan';
  end if;
  v_max := coalesce((v_features ->> 'max_ai_batch_requests')::bigint, 0);
  if pg_catalog.jsonb_typeof(p_requests) is distinct from 'array' or pg_catalog.jsonb_array_length(p_requests) = 0 then
    raise exception 'submit_ai_batch: requests must be a non-empty array of chat requests'
      using errcode = 'invalid_parameter_value', hint = 'invalid_batch';
  end if;
  v_count := pg_catalog.jsonb_array_length(p_requests);
  if v_count > v_max then
    raise exception 'submit_ai_batch: % requests, the plan allows at most % in a batch (max_ai_batch_requests)', v_count, v_max
      using errcode = 'invalid_parameter_value', hint = 'batch_too_large';
  end if;
  -- Every request is checked before any is reserved.
  for v_body, v_i in select r, o - 1 from pg_catalog.jsonb_array_elements(p_requests) with ordinality as x(r, o) loop
    v_problem := billing.ai_batch_request_problem(v_body, v_features -> 'ai_models');
    if v_problem is not null then
      raise exception 'submit_ai_batch: request %: %', v_i, v_problem
        using errcode = 'invalid_parameter_value', detail = pg_catalog.format('request %s', v_i), hint = 'invalid_request';
    end if;
  end loop;

  v_due := billing.ai_batch_due_at(v_now);
  insert into public.ai_batches (id, organization_id, user_id, request_count, due_at, created_at)
  values (v_batch_id, p_organization_id, v_user, v_count, v_due, v_now);
  for v_body, v_i in select r, o - 1 from pg_catalog.jsonb_array_elements(p_requests) with ordinality as x(r, o) loop
    v_max_tokens := (coalesce(nullif(v_body -> 'max_tokens', 'null'::jsonb), v_body -> 'max_completion_tokens') #>> '{}')::integer;
    v_r := billing.ai_reserve(p_organization_id, v_user, v_body ->> 'model', v_max_tokens,
                              billing.ai_batch_prompt_tokens(v_body), null, false, true);
    if not v_r.allowed then
      raise exception 'submit_ai_batch: request % refused: %', v_i, v_r.denial
        using errcode = 'check_violation', detail = pg_catalog.format('request %s', v_i),
              hint = case v_r.denial
                       when 'prompts' then 'prompt_quota_exceeded'
                       when 'tokens' then 'token_quota_exceeded'
                       when 'spend' then 'ai_spend_cap_reached'
                       when 'credits' then 'insufficient_credits'
                       else v_r.denial end;
    end if;
    insert into public.ai_batch_requests (request_id, batch_id, organization_id, position, request, max_tokens)
    values (v_r.request_id, v_batch_id, p_organization_id, v_i + 1, v_body, v_r.max_tokens);
  end loop;
  return v_batch_id;
end;
$$;
revoke execute on function billing.submit_ai_batch(uuid, jsonb) from public, anon;
grant execute on function billing.submit_ai_batch(uuid, jsonb) to authenticated;

/**
 * A batch with its requests and answers, for a member of its organization (else, as for an
 * unknown id, no_data_found: a stranger learns nothing). Security definer, checking the member.
 */
create function billing.get_ai_batch(p_batch_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_batch public.ai_batches;
begin
  select b.* into v_batch from public.ai_batches b where b.id = p_batch_id;
  if v_batch.id is null or not exists (
       select from public.organization_members m
       where m.organization_id = v_batch.organization_id and m.user_id = (select auth.uid())) then
    raise exception 'get_ai_batch: no AI batch %', p_batch_id using errcode = 'no_data_found', hint = 'not_found';
  end if;
  return pg_catalog.jsonb_build_object(
    'id', v_batch.id, 'organization_id', v_batch.organization_id, 'state', v_batch.state,
    'request_count', v_batch.request_count, 'due_at', v_batch.due_at, 'run', v_batch.run,
    'submitted_at', v_batch.submitted_at, 'completed_at', v_batch.completed_at,
    'settled', v_batch.settled_count, 'failed', v_batch.failed_count, 'charged_paise', v_batch.charged_paise,
    'requests', coalesce((
      select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'position', r.position, 'request_id', r.request_id, 'model', r.request ->> 'model', 'state', r.state,
               'answer', r.answer #> '{choices,0,message}', 'prompt_tokens', r.prompt_tokens,
               'completion_tokens', r.completion_tokens, 'cost_paise', r.cost_paise, 'charged_paise', r.charged_paise,
               'error', r.error_code) order by r.position)
      from public.ai_batch_requests r where r.batch_id = v_batch.id), '[]'::jsonb));
end;
$$;
revoke execute on function billing.get_ai_batch(uuid) from public, anon;
grant execute on function billing.get_ai_batch(uuid) to authenticated;

-- -------------------------------------------------------------------------------------------------
-- The worker (service_role)
-- -------------------------------------------------------------------------------------------------

/**
 * Leases up to p_limit batches the worker has to act on, for 5 minutes (for update skip locked:
 * concurrent workers never get the same batch): queued ones that are due (they become
 * 'uploading', run + 1), uploading ones whose lease ran out (recover: an earlier upload's outcome
 * is unknown, so Groq is asked first), and submitted ones to poll.
 */
create function billing.claim_ai_batches(p_limit integer default 5)
returns table (id uuid, organization_id uuid, state public.ai_batch_state, run integer, groq_batch_id text,
               recover boolean)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
begin
  return query
  with due as (
    select b.id, b.state as was from public.ai_batches b
    where ((b.state = 'queued' and b.due_at <= v_now) or b.state in ('uploading', 'submitted'))
      and (b.locked_until is null or b.locked_until <= v_now)
    order by b.due_at, b.id
    limit greatest(coalesce(p_limit, 5), 0)
    for update skip locked)
  update public.ai_batches b
  set state = case when due.was = 'queued' then 'uploading'::public.ai_batch_state else b.state end,
      run = case when due.was = 'queued' then b.run + 1 else b.run end,
      locked_until = v_now + interval '5 minutes'
  from due
  where b.id = due.id
  returning b.id, b.organization_id, b.state, b.run, b.groq_batch_id, due.was = 'uploading';
end;
$$;
revoke execute on function billing.claim_ai_batches(integer) from public;
grant execute on function billing.claim_ai_batches(integer) to service_role;

/**
 * The JSONL lines of a batch's upload, in order: custom_id (the AI request id) and the body,
 * its max_tokens replaced by max_completion_tokens as reserved (as ai-chat sends it).
 */
create function billing.ai_batch_lines(p_batch_id uuid)
returns table (custom_id text, body jsonb)
language plpgsql
stable
set search_path = ''
as $$
begin
  return query
  select r.request_id, (r.request - 'max_tokens' - 'max_completion_tokens')
                       || pg_catalog.jsonb_build_object('max_completion_tokens', r.max_tokens)
  from public.ai_batch_requests r
  where r.batch_id = p_batch_id and r.state = 'reserved'
  order by r.position;
end;
$$;
revoke execute on function billing.ai_batch_lines(uuid) from public;
grant execute on function billing.ai_batch_lines(uuid) to service_role;

/**
 * Records the Groq batch (and its input file) of run p_run: the batch becomes 'submitted' and its
 * lease ends. Returns false, changing nothing, when the batch is not uploading that run (already
 * recorded: the same ids again are a no-op).
 */
create function billing.record_ai_batch_upload(p_batch_id uuid, p_run integer, p_groq_batch_id text, p_input_file_id text)
returns boolean
language plpgsql
volatile
set search_path = ''
as $$
begin
  if p_groq_batch_id is null or p_input_file_id is null then
    raise exception 'record_ai_batch_upload: the Groq batch id and input file id are required'
      using errcode = 'invalid_parameter_value';
  end if;
  update public.ai_batches b
  set state = 'submitted', groq_batch_id = p_groq_batch_id, input_file_id = p_input_file_id,
      submitted_at = billing.now(), locked_until = null, last_error = null
  where b.id = p_batch_id and b.state = 'uploading' and b.run = p_run;
  return found;
end;
$$;
revoke execute on function billing.record_ai_batch_upload(uuid, integer, text, text) from public;
grant execute on function billing.record_ai_batch_upload(uuid, integer, text, text) to service_role;

/**
 * The worker is done with the batch for now: still running at Groq (p_groq_status), or a call
 * failed (p_error). The lease ends when the batch is submitted (poll again next run); an uploading
 * batch keeps it until it runs out, then is recovered by asking Groq first.
 */
create function billing.ai_batch_wait(p_batch_id uuid, p_groq_status text default null, p_error text default null)
returns void
language plpgsql
volatile
set search_path = ''
as $$
begin
  update public.ai_batches b
  set groq_status = coalesce(pg_catalog.left(p_groq_status, 40), b.groq_status),
      last_error = pg_catalog.left(p_error, 1000),
      locked_until = case when b.state = 'submitted' then null else b.locked_until end
  where b.id = p_batch_id;
end;
$$;
revoke execute on function billing.ai_batch_wait(uuid, text, text) from public;
grant execute on function billing.ai_batch_wait(uuid, text, text) to service_role;

/**
 * Locks every still-reserved request row of a batch (public.ai_requests, in request id order:
 * the AI gateway's first lock, taken for all of them before any window) and returns their ids.
 */
create function billing.lock_ai_batch_requests(p_batch_id uuid)
returns setof text
language plpgsql
volatile
set search_path = ''
as $$
begin
  return query
  select a.request_id from public.ai_requests a
  where a.request_id in (select r.request_id from public.ai_batch_requests r
                         where r.batch_id = p_batch_id and r.state = 'reserved')
  order by a.request_id
  for update;
end;
$$;
revoke execute on function billing.lock_ai_batch_requests(uuid) from public;
grant execute on function billing.lock_ai_batch_requests(uuid) to service_role;

/**
 * Groq's run p_run of the batch ended without results (expired, failed or cancelled: p_groq_status).
 * After run 1 the batch is queued again, due now; after run 2 every reservation is given back
 * (billing.ai_release: nothing is charged), the batch is 'released' and its notification queued.
 * Returns the state it is left in; changes nothing unless the batch is submitted in that run.
 */
create function billing.ai_batch_run_failed(p_batch_id uuid, p_run integer, p_groq_status text)
returns public.ai_batch_state
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_batch public.ai_batches;
  v_request_id text;
  v_now timestamptz := billing.now();
begin
  select b.* into v_batch from public.ai_batches b where b.id = p_batch_id for update;
  if v_batch.id is null or v_batch.state <> 'submitted' or v_batch.run <> p_run then
    return v_batch.state;
  end if;
  if v_batch.run < 2 then
    update public.ai_batches b
    set state = 'queued', due_at = v_now, groq_batch_id = null, input_file_id = null, groq_status = p_groq_status,
        locked_until = null,
        last_error = pg_catalog.format('run %s: Groq batch %s %s', v_batch.run, v_batch.groq_batch_id, p_groq_status)
    where b.id = p_batch_id;
    return 'queued'::public.ai_batch_state;
  end if;
  for v_request_id in select * from billing.lock_ai_batch_requests(p_batch_id) loop
    perform billing.ai_release(v_request_id, 'upstream_error', 'batch_' || pg_catalog.lower(p_groq_status));
  end loop;
  update public.ai_batch_requests r
  set state = 'released', error_code = 'batch_' || pg_catalog.lower(p_groq_status), cost_paise = 0, charged_paise = 0,
      settled_at = v_now
  where r.batch_id = p_batch_id and r.state = 'reserved';
  update public.ai_batches b
  set state = 'released', groq_status = p_groq_status, settled_count = 0, failed_count = b.request_count,
      charged_paise = 0, completed_at = v_now, locked_until = null,
      last_error = pg_catalog.format('run %s: Groq batch %s %s', v_batch.run, v_batch.groq_batch_id, p_groq_status)
  where b.id = p_batch_id
  returning b.* into v_batch;
  perform billing.queue_ai_batch_completed(v_batch);
  return 'released'::public.ai_batch_state;
end;
$$;
revoke execute on function billing.ai_batch_run_failed(uuid, integer, text) from public;
grant execute on function billing.ai_batch_run_failed(uuid, integer, text) to service_role;

/**
 * Settles a completed Groq batch from its result lines, p_results: an array of {custom_id, ok,
 * prompt_tokens, completion_tokens, cached_tokens, answer, error} (the output file's lines ok,
 * the error file's not). Each request still reserved is settled once: a line that is ok at its
 * tokens (billing.ai_settle: the batch price), anything else (an error line, or no line) released
 * (billing.ai_release). The batch becomes 'completed' with its counts and what it was charged, and
 * its notification is queued. Settles nothing unless the batch is submitted in run p_run: results
 * read twice settle nothing twice. Returns how many were settled and failed by this call.
 */
create function billing.settle_ai_batch(
  p_batch_id uuid,
  p_run integer,
  p_results jsonb,
  p_output_file_id text default null,
  p_error_file_id text default null,
  out settled integer,
  out failed integer
)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_batch public.ai_batches;
  v_request_id text;
  v_line jsonb;
  v_row public.ai_requests;
  v_now timestamptz := billing.now();
begin
  settled := 0;
  failed := 0;
  if pg_catalog.jsonb_typeof(p_results) is distinct from 'array' then
    raise exception 'settle_ai_batch: results must be an array' using errcode = 'invalid_parameter_value';
  end if;
  select b.* into v_batch from public.ai_batches b where b.id = p_batch_id for update;
  if v_batch.id is null or v_batch.state <> 'submitted' or v_batch.run <> p_run then
    return;
  end if;
  for v_request_id in select * from billing.lock_ai_batch_requests(p_batch_id) loop
    select x into v_line from pg_catalog.jsonb_array_elements(p_results) as x
    where x ->> 'custom_id' = v_request_id
    order by (x ->> 'ok')::boolean desc nulls last
    limit 1;
    if coalesce((v_line ->> 'ok')::boolean, false) then
      perform billing.ai_settle(v_request_id, (v_line ->> 'prompt_tokens')::integer,
                                (v_line ->> 'completion_tokens')::integer, null, 'completed', null,
                                coalesce((v_line ->> 'cached_tokens')::integer, 0));
      select a.* into v_row from public.ai_requests a where a.request_id = v_request_id;
      update public.ai_batch_requests r
      set state = 'settled', answer = v_line -> 'answer', prompt_tokens = v_row.prompt_tokens,
          completion_tokens = v_row.completion_tokens, cost_paise = v_row.cost_paise,
          charged_paise = v_row.charged_paise, settled_at = v_now
      where r.request_id = v_request_id;
      settled := settled + 1;
    else
      perform billing.ai_release(v_request_id, 'upstream_error', 'batch_request_failed');
      update public.ai_batch_requests r
      set state = 'failed', error_code = pg_catalog.left(coalesce(v_line ->> 'error', 'no_result'), 100),
          cost_paise = 0, charged_paise = 0, settled_at = v_now
      where r.request_id = v_request_id;
      failed := failed + 1;
    end if;
  end loop;
  update public.ai_batches b
  set state = 'completed', groq_status = 'completed', output_file_id = p_output_file_id, error_file_id = p_error_file_id,
      settled_count = (select count(*) from public.ai_batch_requests r where r.batch_id = b.id and r.state = 'settled'),
      failed_count = (select count(*) from public.ai_batch_requests r where r.batch_id = b.id and r.state <> 'settled'),
      charged_paise = (select coalesce(sum(r.charged_paise), 0) from public.ai_batch_requests r where r.batch_id = b.id),
      completed_at = v_now, locked_until = null, last_error = null
  where b.id = p_batch_id
  returning b.* into v_batch;
  perform billing.queue_ai_batch_completed(v_batch);
end;
$$;
revoke execute on function billing.settle_ai_batch(uuid, integer, jsonb, text, text) from public;
grant execute on function billing.settle_ai_batch(uuid, integer, jsonb, text, text) to service_role;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

create policy "Members can read their organization's AI batches"
  on public.ai_batches for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

create policy "Members can read their organization's AI batch requests"
  on public.ai_batch_requests for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * Submits a nightly AI batch: a member of the organization whose plan has `ai_batch`, up to the
 * plan's `max_ai_batch_requests` chat requests (ai-chat's fields, no stream), each reserved now
 * as an interactive call is (prompts, worst-case tokens, spend, credits), all or nothing; a
 * refusal names the first bad request (detail "request <index>", hint a code: not_a_member,
 * ai_batch_not_in_plan, invalid_batch, batch_too_large, invalid_request, or the quota refused).
 * Answers the batch id. A thin wrapper of billing.submit_ai_batch.
 */
create function public.submit_ai_batch(p_organization_id uuid, p_requests jsonb)
returns uuid
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return billing.submit_ai_batch(p_organization_id, p_requests);
end;
$$;
revoke execute on function public.submit_ai_batch(uuid, jsonb) from public, anon;
grant execute on function public.submit_ai_batch(uuid, jsonb) to authenticated;
comment on function public.submit_ai_batch(uuid, jsonb) is 'Submits a nightly AI batch of chat requests for a member (plan feature ai_batch, at most max_ai_batch_requests), each reserved now, all or nothing; answers the batch id.';

/** A batch's state, counts and each request's answer, tokens and cost; members of its organization. */
create function public.get_ai_batch(p_batch_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return billing.get_ai_batch(p_batch_id);
end;
$$;
revoke execute on function public.get_ai_batch(uuid) from public, anon;
grant execute on function public.get_ai_batch(uuid) to authenticated;
comment on function public.get_ai_batch(uuid) is 'An AI batch''s state, counts, and each request''s answer, tokens and cost at the batch price; members of its organization.';

-- =================================================================================================
-- 6. Jobs
-- =================================================================================================

-- The worker runs every 10 minutes: batches are uploaded when due (the settings' hour in India
-- time), and submitted ones are polled until Groq has their results.
insert into billing.jobs (name, schedule, command, worker, doc) values
  ('supabill-ai-batch', '*/10 * * * *', null, 'ai-batch',
   'POST /ai-batch: uploads AI batches due at the settings'' hour (India time), polls Groq, settles the results.');
