-- What this migration does: nightly AI batches (supabase/schemas/14_ai_batches.sql): the tables
-- public.ai_batches and public.ai_batch_requests, public.submit_ai_batch and public.get_ai_batch,
-- the worker's functions (claim, record the upload, settle, retry or release); batch prices on
-- public.ai_model_prices and billing_settings.ai_batch_price_factor / ai_batch_hour_ist;
-- billing.ai_reserve takes p_batch (no per-user rate limit, a 4-day reservation) and
-- billing.ai_settle prices a batch request at the batch price; the plan feature ai_batch.
--
-- ai_batches: drafted by `npm run db:diff -- ai_batches` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.

SET local check_function_bodies = off;

DROP FUNCTION "billing"."ai_reserve"(uuid, uuid, text, integer, integer, text, boolean);

CREATE TABLE "public"."ai_batch_requests" (
  "request_id"      text    NOT NULL,
  "batch_id"        uuid    NOT NULL,
  "organization_id" uuid    NOT NULL,
  "position"        integer NOT NULL,
  "request"         jsonb   NOT NULL,
  "max_tokens"      integer NOT NULL,
  CONSTRAINT "ai_batch_requests_batch_id_position_key" UNIQUE (batch_id, "position"),
  CONSTRAINT "ai_batch_requests_max_tokens_check" CHECK ((max_tokens > 0)),
  CONSTRAINT "ai_batch_requests_pkey" PRIMARY KEY (request_id),
  CONSTRAINT "ai_batch_requests_position_check" CHECK (("position" >= 1)),
  CONSTRAINT "ai_batch_requests_request_check" CHECK ((jsonb_typeof(request) = 'object'::text))
);

ALTER TABLE "public"."ai_batch_requests"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."ai_batch_requests" FROM "anon";

CREATE TABLE "public"."ai_batches" (
  "id"              uuid NOT NULL DEFAULT gen_random_uuid(),
  "organization_id" uuid NOT NULL,
  "user_id"         uuid,
  CONSTRAINT "ai_batches_pkey" PRIMARY KEY (id)
);

ALTER TABLE "public"."ai_batches"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."ai_batches" FROM "anon";

ALTER TABLE "public"."ai_model_prices"
  ADD COLUMN "batch_input_paise_per_million" bigint;

ALTER TABLE "public"."ai_model_prices"
  ADD COLUMN "batch_output_paise_per_million" bigint;

ALTER TABLE "public"."ai_requests"
  ADD COLUMN "batch" boolean NOT NULL DEFAULT false;

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "ai_batch_hour_ist" integer NOT NULL DEFAULT 2;

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "ai_batch_price_factor" numeric(4,3) NOT NULL DEFAULT 0.5;

CREATE TYPE "public"."ai_batch_request_state" AS ENUM (
  'reserved',
  'settled',
  'failed',
  'released'
);

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "state" public.ai_batch_request_state NOT NULL DEFAULT 'reserved'::public.ai_batch_request_state;

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "answer" jsonb;

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "prompt_tokens" integer;

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "completion_tokens" integer;

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "cost_paise" numeric(20,6);

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "charged_paise" bigint;

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "error_code" text;

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "settled_at" timestamp WITH time zone;

CREATE TYPE "public"."ai_batch_state" AS ENUM (
  'queued',
  'uploading',
  'submitted',
  'completed',
  'released'
);

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "state" public.ai_batch_state NOT NULL DEFAULT 'queued'::public.ai_batch_state;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "request_count" integer NOT NULL;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "due_at" timestamp WITH time zone NOT NULL;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "run" integer NOT NULL DEFAULT 0;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "groq_batch_id" text;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "input_file_id" text;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "output_file_id" text;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "error_file_id" text;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "groq_status" text;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "settled_count" integer;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "failed_count" integer;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "charged_paise" bigint;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "locked_until" timestamp WITH time zone;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "last_error" text;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "submitted_at" timestamp WITH time zone;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "completed_at" timestamp WITH time zone;

ALTER TABLE "public"."ai_batches"
  ADD COLUMN "created_at" timestamp WITH time zone NOT NULL DEFAULT now();

CREATE OR REPLACE FUNCTION billing.ai_batch_due_at (
  p_at timestamp with time zone
)
  RETURNS timestamp WITH time zone
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_hour integer := coalesce((select s.ai_batch_hour_ist from public.billing_settings s where s.id), 2);
  v_due timestamp := pg_catalog.date_trunc('day', p_at at time zone 'Asia/Kolkata') + pg_catalog.make_interval(hours => v_hour);
begin
  if v_due <= p_at at time zone 'Asia/Kolkata' then
    v_due := v_due + interval '1 day';
  end if;
  return v_due at time zone 'Asia/Kolkata';
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_batch_lines (
  p_batch_id uuid
)
  RETURNS TABLE (
    custom_id text,
    body      jsonb
  )
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return query
  select r.request_id, (r.request - 'max_tokens' - 'max_completion_tokens')
                       || pg_catalog.jsonb_build_object('max_completion_tokens', r.max_tokens)
  from public.ai_batch_requests r
  where r.batch_id = p_batch_id and r.state = 'reserved'
  order by r.position;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_batch_price (
  p_price public.ai_model_prices
)
  RETURNS public.ai_model_prices
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_factor numeric := coalesce((select s.ai_batch_price_factor from public.billing_settings s where s.id), 0.5);
begin
  if p_price.model is null then
    return p_price;
  end if;
  if p_price.batch_input_paise_per_million is not null then
    p_price.input_paise_per_million := p_price.batch_input_paise_per_million;
    p_price.output_paise_per_million := p_price.batch_output_paise_per_million;
  else
    p_price.input_paise_per_million := pg_catalog.ceil(p_price.input_paise_per_million * v_factor)::bigint;
    p_price.output_paise_per_million := pg_catalog.ceil(p_price.output_paise_per_million * v_factor)::bigint;
  end if;
  p_price.cached_input_paise_per_million := least(pg_catalog.ceil(p_price.cached_input_paise_per_million * v_factor)::bigint,
                                                  p_price.input_paise_per_million);
  return p_price;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_batch_prompt_tokens (
  p_body jsonb
)
  RETURNS integer
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.ai_batch_request_problem (
  p_body   jsonb,
  p_models jsonb
)
  RETURNS text
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.ai_batch_run_failed (
  p_batch_id    uuid,
  p_run         integer,
  p_groq_status text
)
  RETURNS public.ai_batch_state
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
    return 'queued';
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
  return 'released';
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_batch_wait (
  p_batch_id    uuid,
  p_groq_status text DEFAULT NULL::text,
  p_error       text DEFAULT NULL::text
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  update public.ai_batches b
  set groq_status = coalesce(pg_catalog.left(p_groq_status, 40), b.groq_status),
      last_error = pg_catalog.left(p_error, 1000),
      locked_until = case when b.state = 'submitted' then null else b.locked_until end
  where b.id = p_batch_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_reserve (
  p_organization_id uuid,
  p_user_id         uuid,
  p_model           text,
  p_max_tokens      integer,
  p_prompt_tokens   integer,
  p_cache_key       text    DEFAULT NULL::text,
  p_stream          boolean DEFAULT false,
  p_batch           boolean DEFAULT false
)
  RETURNS billing.ai_reservation
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  c_default_max_tokens constant integer := 1024;
  c_reservation_ttl constant interval := interval '15 minutes';
  -- A batch waits for the night's hour (a day at most), then up to two runs of Groq's 24-hour
  -- window: its worker settles or releases it well within this.
  c_batch_reservation_ttl constant interval := interval '4 days';
  v_now timestamptz := billing.now();
  v_r billing.ai_reservation;
  v_plan record;
  v_features jsonb;
  v_windows record;
  v_month_end timestamptz;
  v_answer record;
  v_price public.ai_model_prices;
  v_event text;
  v_overage_event text;
  v_reserved_paise bigint;
  v_charge record;
begin
  perform billing.ai_check_reserve_arguments(p_organization_id, p_user_id, p_model, p_max_tokens, p_prompt_tokens,
                                             p_cache_key);
  -- Not a member (or no such organization): nothing is read or written for a stranger.
  if not exists (select 1 from public.organization_members m
                 where m.organization_id = p_organization_id and m.user_id = p_user_id) then
    v_r.allowed := false;
    v_r.denial := 'not_a_member';
    return v_r;
  end if;

  v_plan := billing.effective_plan(p_organization_id, v_now);
  v_features := coalesce(v_plan.features, '{}'::jsonb);
  v_windows := billing.ai_plan_windows(v_features, p_user_id);
  v_r.plan_code := v_plan.plan_code;
  v_event := v_features ->> 'ai_credit_event';
  v_overage_event := v_features ->> 'groq_tokens_overage_event';
  v_r.request_id := 'ai_' || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '');
  -- A metric the plan does not name has limit 0 and no window: retry when the month turns.
  v_month_end := (pg_catalog.date_trunc('month', v_now at time zone v_plan.timezone) + interval '1 month')
                 at time zone v_plan.timezone;

  begin
    -- The per-user rate limit guards the interactive upstream; a batch request never calls it.
    if not coalesce(p_batch, false) then
      v_r := billing.ai_take_rate(v_r, p_organization_id, v_windows.rate_metric, v_windows.rate_units,
                                  v_windows.rate_features, v_now, v_plan.timezone, v_month_end);
    end if;
    if v_r.denial is null and not coalesce(v_features -> 'ai_models' @> pg_catalog.to_jsonb(p_model), false) then
      v_r.denial := 'model_not_allowed';
    end if;
    if v_r.denial is null and p_cache_key is not null then
      v_r := billing.ai_cached_answer(v_r, p_organization_id, p_user_id, p_model, p_cache_key, p_stream, v_now);
      if v_r.allowed then
        return v_r;
      end if;
    end if;
    if v_r.denial is null and v_windows.prompt_units = '{}' then
      v_r := billing.ai_denied(v_r, 'prompts', 0, 0, null, v_month_end, v_now);
    elsif v_r.denial is null then
      v_answer := billing.ai_count(p_organization_id, p_user_id, v_r.request_id, 'ai_prompts', v_windows.prompt_units,
                                   v_now, v_plan.timezone, v_features, 1);
      if not v_answer.allowed then
        v_r := billing.ai_denied(v_r, 'prompts', v_answer.limit_amount, v_answer.remaining, v_answer.resets_at,
                                 v_month_end, v_now);
      end if;
    end if;
    if v_r.denial is null then
      v_price := billing.ai_model_price(p_model, v_now);
      v_r := billing.ai_cost_cap(v_r, p_organization_id, v_price, v_windows.spend_units, v_event, v_now,
                                 v_plan.timezone, v_features, v_month_end, p_prompt_tokens,
                                 coalesce(p_max_tokens, c_default_max_tokens));
    end if;
    if v_r.denial is null then
      v_r := billing.ai_reserve_tokens(v_r, p_organization_id, p_user_id, v_windows.token_units, v_now, v_plan.timezone,
                                       v_features, v_month_end, p_prompt_tokens, v_r.max_tokens,
                                       v_overage_event is not null);
      if v_r.denial = 'tokens' and v_overage_event is not null then
        -- Past the token quota, the call runs on credits: its tokens are not counted against the quota.
        v_r.denial := null;
        v_r.limit_amount := null;
        v_r.remaining := null;
        v_r.retry_after_seconds := null;
        if v_event is null then
          v_event := v_overage_event;
          v_r := billing.ai_cost_cap(v_r, p_organization_id, v_price, v_windows.spend_units, v_event, v_now,
                                     v_plan.timezone, v_features, v_month_end, p_prompt_tokens, v_r.max_tokens);
        end if;
        v_r.reserved_tokens := p_prompt_tokens + v_r.max_tokens;
      end if;
    end if;
    if v_r.denial is null and v_price.model is not null then
      -- Hold the reservation's cost against the spend cap and in credits, under the request id.
      v_reserved_paise := pg_catalog.ceil(billing.ai_cost_paise(v_price, p_prompt_tokens, v_r.max_tokens))::bigint;
      if v_windows.spend_units <> '{}' then
        v_answer := billing.ai_count(p_organization_id, p_user_id, v_r.request_id, 'ai_spend_paise',
                                     v_windows.spend_units, v_now, v_plan.timezone, v_features, v_reserved_paise);
        if not v_answer.allowed then
          v_r := billing.ai_denied(v_r, 'spend', v_answer.limit_amount, greatest(v_answer.remaining, 0),
                                   v_answer.resets_at, v_month_end, v_now);
        end if;
      end if;
      if v_r.denial is null and v_event is not null and v_reserved_paise > 0 then
        v_charge := billing.consume_credits(p_organization_id, v_event, v_reserved_paise, v_r.request_id);
        if not v_charge.charged then
          v_r.denial := 'credits';
          v_r.remaining := v_charge.balance;
        end if;
      end if;
    end if;
    if v_r.denial is not null then
      raise exception using errcode = 'SBAI0';
    end if;
    v_r.allowed := true;
  exception
    when sqlstate 'SBAI0' then
      -- Every count of this request is undone, the rate counter's too: report its window as it stands.
      v_r.allowed := false;
      v_r.max_tokens := null;
      v_r.reserved_tokens := null;
      if v_r.denial <> 'rate' and v_r.rate_remaining is not null then
        v_r.rate_remaining := v_r.rate_remaining + 1;
      end if;
  end;

  insert into public.ai_requests (organization_id, user_id, request_id, model, status, stream, max_tokens,
                                  reserved_tokens, error_code, cache_key, expires_at, completed_at,
                                  price_effective_from, reserved_paise, batch)
  values (p_organization_id, p_user_id, v_r.request_id, p_model,
          case when v_r.allowed then 'pending' else 'denied' end::public.ai_request_status,
          coalesce(p_stream, false), v_r.max_tokens, coalesce(v_r.reserved_tokens, 0),
          case v_r.denial
            when 'rate' then 'rate_limited'
            when 'model_not_allowed' then 'model_not_allowed'
            when 'prompts' then 'prompt_quota_exceeded'
            when 'tokens' then 'token_quota_exceeded'
            when 'spend' then 'ai_spend_cap_reached'
            when 'credits' then 'insufficient_credits'
            when 'model_not_priced' then 'model_not_priced'
          end,
          p_cache_key,
          case when v_r.allowed then v_now + case when coalesce(p_batch, false) then c_batch_reservation_ttl
                                                  else c_reservation_ttl end end,
          case when not v_r.allowed then v_now end,
          case when v_r.allowed then v_price.effective_from end,
          case when v_r.allowed then v_reserved_paise end,
          coalesce(p_batch, false));
  return v_r;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_settle (
  p_request_id        text,
  p_prompt_tokens     integer,
  p_completion_tokens integer,
  p_latency_ms        integer                         DEFAULT NULL::integer,
  p_status            public.ai_request_status        DEFAULT 'completed'::public.ai_request_status,
  p_response          jsonb                           DEFAULT NULL::jsonb,
  p_cached_tokens     integer                         DEFAULT 0,
  OUT                 settled boolean,
  OUT                 status public.ai_request_status,
  OUT                 counted_tokens bigint,
  OUT                 remaining bigint
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_request public.ai_requests;
  v_answer record;
  v_target bigint;
  v_now timestamptz := billing.now();
  v_price public.ai_model_prices;
  v_cost numeric;
  v_paise bigint;
begin
  if p_request_id is null then
    raise exception 'ai_settle: request id is required' using errcode = 'invalid_parameter_value';
  end if;
  if p_prompt_tokens is null or p_prompt_tokens < 0 or p_completion_tokens is null or p_completion_tokens < 0
     or p_cached_tokens is null or p_cached_tokens < 0 then
    raise exception 'ai_settle: token counts must be zero or more' using errcode = 'invalid_parameter_value';
  end if;
  if p_latency_ms is not null and p_latency_ms < 0 then
    raise exception 'ai_settle: latency must be zero or more' using errcode = 'invalid_parameter_value';
  end if;
  if p_status is null or p_status not in ('completed', 'client_closed', 'upstream_error', 'upstream_timeout') then
    raise exception 'ai_settle: status must be completed, client_closed, upstream_error or upstream_timeout, got %',
      coalesce(p_status::text, 'null') using errcode = 'invalid_parameter_value';
  end if;
  if p_response is not null and pg_catalog.jsonb_typeof(p_response) <> 'object' then
    raise exception 'ai_settle: the response must be a JSON object' using errcode = 'invalid_parameter_value';
  end if;

  select r.* into v_request from public.ai_requests r where r.request_id = p_request_id for update;
  if not found then
    raise exception 'ai_settle: no AI request %', p_request_id using errcode = 'no_data_found';
  end if;
  status := v_request.status;
  if v_request.status <> 'pending' then
    settled := false;
    counted_tokens := v_request.counted_tokens;
    return;
  end if;

  -- In the lock order of the module's banner: the spend cap's windows, the token windows, then
  -- the credit lock (as billing.ai_reserve and billing.release_usage take them).
  -- The cost at the price the call was reserved at: counted against the spend cap (never past it).
  if v_request.price_effective_from is not null then
    select p.* into v_price from public.ai_model_prices p
    where p.model = v_request.model and p.effective_from = v_request.price_effective_from;
    if v_request.batch then
      v_price := billing.ai_batch_price(v_price);
    end if;
    v_cost := billing.ai_cost_paise(v_price, p_prompt_tokens, p_completion_tokens, p_cached_tokens);
    v_paise := pg_catalog.ceil(v_cost)::bigint;
    if exists (select from public.usage_metrics m where m.organization_id = v_request.organization_id
                 and m.metric = 'ai_spend_paise' and m.request_id = p_request_id) then
      v_paise := (billing.ai_settle_metric(v_request.organization_id, p_request_id, 'ai_spend_paise', v_paise,
                                           coalesce(v_request.reserved_paise, 0))).counted;
    end if;
  end if;
  -- The actual usage; if it does not fit, what is left; at worst the reservation (always fits).
  -- A call past the token quota on credits counted no tokens.
  v_target := 0;
  if exists (select from public.usage_metrics m where m.organization_id = v_request.organization_id
               and m.metric = 'groq_tokens' and m.request_id = p_request_id) then
    v_target := p_prompt_tokens::bigint + p_completion_tokens;
    v_answer := billing.ai_settle_metric(v_request.organization_id, p_request_id, 'groq_tokens', v_target,
                                         v_request.reserved_tokens);
    v_target := v_answer.counted;
    remaining := v_answer.remaining;
  end if;
  -- Last, the credits: the cost as counted, charged to the call's credit charge.
  if v_request.price_effective_from is not null then
    perform billing.ai_charge_cost(v_request, v_paise);
  end if;
  update public.usage_metrics m set state = 'settled'
  where m.organization_id = v_request.organization_id and m.metric = 'ai_prompts'
    and m.request_id = p_request_id and m.state = 'counted';

  update public.ai_requests r
  set status = p_status,
      prompt_tokens = p_prompt_tokens,
      completion_tokens = p_completion_tokens,
      cached_prompt_tokens = least(p_cached_tokens, p_prompt_tokens),
      counted_tokens = v_target,
      cost_paise = v_cost,
      charged_paise = v_paise,
      latency_ms = p_latency_ms,
      error_code = case p_status
                     when 'upstream_error' then 'upstream_error'
                     when 'upstream_timeout' then 'upstream_timeout'
                     when 'client_closed' then 'client_closed'
                   end,
      completed_at = v_now,
      expires_at = null
  where r.id = v_request.id;

  if p_status = 'completed' and p_response is not null and v_request.cache_key is not null then
    insert into billing.ai_cache as c (organization_id, cache_key, model, response, prompt_tokens, completion_tokens,
                                      created_at, expires_at)
    values (v_request.organization_id, v_request.cache_key, v_request.model, p_response, p_prompt_tokens,
            p_completion_tokens, v_now, v_now + interval '24 hours')
    on conflict (organization_id, cache_key) do update
      set model = excluded.model, response = excluded.response, prompt_tokens = excluded.prompt_tokens,
          completion_tokens = excluded.completion_tokens, created_at = excluded.created_at,
          expires_at = excluded.expires_at;
  end if;

  settled := true;
  status := p_status;
  counted_tokens := v_target;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.claim_ai_batches (
  p_limit integer DEFAULT 5
)
  RETURNS TABLE (
    id              uuid,
    organization_id uuid,
    state           public.ai_batch_state,
    run             integer,
    groq_batch_id   text,
    recover         boolean
  )
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.get_ai_batch (
  p_batch_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.lock_ai_batch_requests (
  p_batch_id uuid
)
  RETURNS SETOF text
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return query
  select a.request_id from public.ai_requests a
  where a.request_id in (select r.request_id from public.ai_batch_requests r
                         where r.batch_id = p_batch_id and r.state = 'reserved')
  order by a.request_id
  for update;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.queue_ai_batch_completed (
  p_batch public.ai_batches
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  insert into public.notifications (organization_id, kind, payload, dedupe_key)
  values (p_batch.organization_id, 'ai_batch_completed',
          pg_catalog.jsonb_build_object('batch_id', p_batch.id, 'state', p_batch.state, 'requests', p_batch.request_count,
                                        'settled', p_batch.settled_count, 'failed', p_batch.failed_count,
                                        'charged_paise', p_batch.charged_paise, 'submitted_at', p_batch.created_at),
          'ai_batch_completed:' || p_batch.id)
  on conflict (dedupe_key) do nothing;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.record_ai_batch_upload (
  p_batch_id      uuid,
  p_run           integer,
  p_groq_batch_id text,
  p_input_file_id text
)
  RETURNS boolean
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.settle_ai_batch (
  p_batch_id       uuid,
  p_run            integer,
  p_results        jsonb,
  p_output_file_id text            DEFAULT NULL::text,
  p_error_file_id  text            DEFAULT NULL::text,
  OUT              settled integer,
  OUT              failed integer
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.submit_ai_batch (
  p_organization_id uuid,
  p_requests        jsonb
)
  RETURNS uuid
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
    v_max_tokens := coalesce(nullif(v_body -> 'max_tokens', 'null'::jsonb), v_body -> 'max_completion_tokens') #>> '{}';
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
$function$;

CREATE OR REPLACE FUNCTION billing.validate_plan_features (
  p_features jsonb
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_key text;
  v_value jsonb;
  v_window text;
begin
  if p_features is null or pg_catalog.jsonb_typeof(p_features) <> 'object' then
    raise exception 'plan features must be a JSON object'
      using errcode = 'invalid_parameter_value';
  end if;

  for v_key, v_value in select e.key, e.value from pg_catalog.jsonb_each(p_features) as e loop
    if v_key in ('credits_per_period', 'credits_low_threshold') then
      if not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a number of credits must be a non-negative integer, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key = 'ai_batch' then
      if pg_catalog.jsonb_typeof(v_value) <> 'boolean' then
        raise exception 'plan features key "ai_batch": whether nightly AI batches are included must be true or false, got %', v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key = 'ai_credit_event' then
      if pg_catalog.jsonb_typeof(v_value) <> 'string'
         or not exists (select from public.credit_events e where e.code = v_value #>> '{}') then
        raise exception 'plan features key "ai_credit_event": the credit event every AI call is charged to, per paisa of its cost, must name a credit event (public.credit_events), got %', v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '_overage_event$' then
      if v_key !~ '^[a-z][a-z0-9_]*_overage_event$' or pg_catalog.jsonb_typeof(v_value) <> 'string' then
        raise exception 'plan features key "%": an overage is <metric>_overage_event naming a credit event, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
      if not exists (select from public.credit_events e where e.code = v_value #>> '{}') then
        raise exception 'plan features key "%": no credit event "%" (public.credit_events)', v_key, v_value #>> '{}'
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '_per_[^_]+$' then
      v_window := pg_catalog.substring(v_key, '_per_([^_]+)$');
      if v_key !~ '^[a-z][a-z0-9_]*_per_[a-z]+$' then
        raise exception 'plan features key "%": a metered limit is <metric>_per_<window> in lowercase snake_case', v_key
          using errcode = 'invalid_parameter_value';
      end if;
      if v_window not in ('minute', 'hour', 'day', 'month') then
        raise exception 'plan features key "%": unknown window "%" (use minute, hour, day or month)', v_key, v_window
          using errcode = 'invalid_parameter_value';
      end if;
      if pg_catalog.jsonb_typeof(v_value) <> 'null' and not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a metered limit must be a non-negative integer or null, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '^max_' then
      if v_key !~ '^max_[a-z][a-z0-9_]*$' then
        raise exception 'plan features key "%": a count limit is max_<thing> in lowercase snake_case', v_key
          using errcode = 'invalid_parameter_value';
      end if;
      if not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a count limit must be a non-negative integer, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    end if;
  end loop;
end;
$function$;

CREATE OR REPLACE FUNCTION public.get_ai_batch (
  p_batch_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return billing.get_ai_batch(p_batch_id);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."get_ai_batch"(uuid) FROM PUBLIC, "anon";

CREATE OR REPLACE FUNCTION public.submit_ai_batch (
  p_organization_id uuid,
  p_requests        jsonb
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return billing.submit_ai_batch(p_organization_id, p_requests);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."submit_ai_batch"(uuid, jsonb) FROM PUBLIC, "anon";

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_answer_check" CHECK ((jsonb_typeof(answer) = 'object'::text));

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_charged_paise_check" CHECK ((charged_paise >= 0));

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_completion_tokens_check" CHECK ((completion_tokens >= 0));

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_cost_paise_check" CHECK ((cost_paise >= (0)::numeric));

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_error_code_check" CHECK (((length(error_code) >= 1) AND (length(error_code) <= 100)));

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_prompt_tokens_check" CHECK ((prompt_tokens >= 0));

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_request_id_fkey" FOREIGN KEY (request_id) REFERENCES public.ai_requests(request_id) ON DELETE CASCADE;

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_charged_paise_check" CHECK ((charged_paise >= 0));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_error_file_id_check" CHECK (((length(error_file_id) >= 1) AND (length(error_file_id) <= 200)));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_failed_count_check" CHECK ((failed_count >= 0));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_groq_batch_id_check" CHECK (((length(groq_batch_id) >= 1) AND (length(groq_batch_id) <= 200)));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_groq_batch_id_key" UNIQUE (groq_batch_id);

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_groq_status_check" CHECK (((length(groq_status) >= 1) AND (length(groq_status) <= 40)));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_input_file_id_check" CHECK (((length(input_file_id) >= 1) AND (length(input_file_id) <= 200)));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_last_error_check" CHECK ((length(last_error) <= 1000));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_output_file_id_check" CHECK (((length(output_file_id) >= 1) AND (length(output_file_id) <= 200)));

ALTER TABLE "public"."ai_batch_requests"
  ADD CONSTRAINT "ai_batch_requests_batch_id_fkey" FOREIGN KEY (batch_id) REFERENCES public.ai_batches(id) ON DELETE CASCADE;

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_request_count_check" CHECK ((request_count > 0));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_run_check" CHECK (((run >= 0) AND (run <= 2)));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_settled_count_check" CHECK ((settled_count >= 0));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_submitted_has_groq_batch" CHECK (((state <> 'submitted'::public.ai_batch_state) OR (groq_batch_id IS NOT NULL)));

ALTER TABLE "public"."ai_batches"
  ADD CONSTRAINT "ai_batches_user_id_fkey" FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE SET NULL;

ALTER TABLE "public"."ai_model_prices"
  ADD CONSTRAINT "ai_model_prices_batch_both_or_neither" CHECK (((batch_input_paise_per_million IS NULL) = (batch_output_paise_per_million IS NULL)));

ALTER TABLE "public"."ai_model_prices"
  ADD CONSTRAINT "ai_model_prices_batch_input_paise_per_million_check" CHECK ((batch_input_paise_per_million >= 0));

ALTER TABLE "public"."ai_model_prices"
  ADD CONSTRAINT "ai_model_prices_batch_output_paise_per_million_check" CHECK ((batch_output_paise_per_million >= 0));

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_ai_batch_hour_ist_range" CHECK (((ai_batch_hour_ist >= 0) AND (ai_batch_hour_ist <= 23)));

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_ai_batch_price_factor_range" CHECK (((ai_batch_price_factor > (0)::numeric) AND (ai_batch_price_factor <= (1)::numeric)));

CREATE INDEX ai_batch_requests_organization_id_idx ON public.ai_batch_requests USING btree (organization_id);

CREATE INDEX ai_batches_open_idx ON public.ai_batches USING btree (due_at)
  WHERE (state = ANY (ARRAY['queued'::public.ai_batch_state, 'uploading'::public.ai_batch_state, 'submitted'::public.ai_batch_state]));

CREATE INDEX ai_batches_organization_id_idx ON public.ai_batches USING btree (organization_id, created_at);

CREATE INDEX ai_batches_user_id_idx ON public.ai_batches USING btree (user_id);

CREATE POLICY "Members can read their organization's AI batch requests" ON "public"."ai_batch_requests"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids() AS member_organization_ids)));

CREATE POLICY "Members can read their organization's AI batches" ON "public"."ai_batches"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids() AS member_organization_ids)));

COMMENT ON COLUMN "public"."ai_model_prices"."batch_input_paise_per_million" IS 'The price of a prompt token sent in a nightly batch (Groq''s Batch API), per million; null (with batch_output_paise_per_million): the interactive prices times billing_settings.ai_batch_price_factor.';

COMMENT ON COLUMN "public"."ai_requests"."batch" IS 'A request of a nightly batch (public.ai_batch_requests): reserved at submission like an interactive call, without the per-user rate limit, and settled at the batch price.';

COMMENT ON COLUMN "public"."billing_settings"."ai_batch_hour_ist" IS 'The hour (0 to 23, India time) at which submitted AI batches are sent to Groq: a batch is due at the first such hour after its submission.';

COMMENT ON COLUMN "public"."billing_settings"."ai_batch_price_factor" IS 'What a request of a nightly AI batch pays of its model''s interactive price (0.5: half), for models whose price row has no batch prices of its own.';

COMMENT ON FUNCTION "public"."get_ai_batch"(uuid) IS 'An AI batch''s state, counts, and each request''s answer, tokens and cost at the batch price; members of its organization.';

COMMENT ON FUNCTION "public"."submit_ai_batch"(uuid, jsonb) IS 'Submits a nightly AI batch of chat requests for a member (plan feature ai_batch, at most max_ai_batch_requests), each reserved now, all or nothing; answers the batch id.';

COMMENT ON TABLE "public"."ai_batch_requests" IS 'The requests of an AI batch, each with its reservation (public.ai_requests, custom_id = request_id), its answer, tokens and cost at the batch price.';

COMMENT ON TABLE "public"."ai_batches" IS 'Nightly AI batches: requests reserved at submission, sent to Groq''s Batch API at the settings'' hour, settled per request at the batch price.';

COMMENT ON TYPE "public"."ai_batch_request_state" IS 'Where a request of an AI batch stands: reserved, settled (answered and charged), failed (released), released (with its batch).';

COMMENT ON TYPE "public"."ai_batch_state" IS 'Where an AI batch stands: queued, uploading (outcome unknown until recorded), submitted (at Groq), completed, released (never charged).';

REVOKE ALL ON FUNCTION "billing"."ai_batch_due_at"(timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_batch_due_at"(timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_batch_lines"(uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_batch_lines"(uuid) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_batch_price"(public.ai_model_prices) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_batch_price"(public.ai_model_prices) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_batch_prompt_tokens"(jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_batch_prompt_tokens"(jsonb) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_batch_request_problem"(jsonb, jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_batch_request_problem"(jsonb, jsonb) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_batch_run_failed"(uuid, integer, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_batch_run_failed"(uuid, integer, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_batch_wait"(uuid, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_batch_wait"(uuid, text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_reserve"(uuid, uuid, text, integer, integer, text, boolean, boolean) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_reserve"(uuid, uuid, text, integer, integer, text, boolean, boolean) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."claim_ai_batches"(integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."claim_ai_batches"(integer) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."get_ai_batch"(uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."get_ai_batch"(uuid) TO "authenticated";

REVOKE ALL ON FUNCTION "billing"."lock_ai_batch_requests"(uuid) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."queue_ai_batch_completed"(public.ai_batches) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."record_ai_batch_upload"(uuid, integer, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."record_ai_batch_upload"(uuid, integer, text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."settle_ai_batch"(uuid, integer, jsonb, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."settle_ai_batch"(uuid, integer, jsonb, text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."submit_ai_batch"(uuid, jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."submit_ai_batch"(uuid, jsonb) TO "authenticated";

GRANT EXECUTE ON FUNCTION "public"."get_ai_batch"(uuid) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."get_ai_batch"(uuid) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."get_ai_batch"(uuid) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."get_ai_batch"(uuid) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."submit_ai_batch"(uuid, jsonb) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."submit_ai_batch"(uuid, jsonb) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."submit_ai_batch"(uuid, jsonb) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."submit_ai_batch"(uuid, jsonb) TO "service_role";

REVOKE ALL ON TABLE "public"."ai_batch_requests" FROM "authenticated";

GRANT SELECT ON TABLE "public"."ai_batch_requests" TO "authenticated";

REVOKE ALL ON TABLE "public"."ai_batch_requests" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."ai_batch_requests" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."ai_batch_requests" TO "service_role";

REVOKE ALL ON TABLE "public"."ai_batches" FROM "authenticated";

GRANT SELECT ON TABLE "public"."ai_batches" TO "authenticated";

REVOKE ALL ON TABLE "public"."ai_batches" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."ai_batches" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."ai_batches" TO "service_role";

-- By hand: the worker's job (a row of billing.jobs: data, which a diff does not see), scheduled
-- like the others.
insert into billing.jobs (name, schedule, command, worker, doc) values
  ('supabill-ai-batch', '*/10 * * * *', null, 'ai-batch',
   'POST /ai-batch: uploads AI batches due at the settings'' hour (India time), polls Groq, settles the results.');

select billing.schedule_jobs();
