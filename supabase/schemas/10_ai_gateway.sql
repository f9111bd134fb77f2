-- =================================================================================================
-- supabill: AI gateway: Groq calls reserved, then settled, cached per organization, logged
--
--   billing.ai_reserve(org, user, model, max_tokens, prompt_tokens, cache_key, stream)
--     the one SQL call before the upstream: membership, the plan's models (`ai_models`), the
--     per-user rate limit (`ai_requests_per_<window>`), a cache hit (billing.ai_cache, 24 h), the
--     prompt quota (`ai_prompts_per_<window>`) and a token reservation (`groq_tokens_per_<window>`,
--     with max_tokens capped to what is left), all or nothing; a denial counts nothing (it is logged).
--   billing.ai_settle(request_id, prompt_tokens, completion_tokens, ...)
--     after the call: the reservation becomes the actual usage (billing.settle_usage), the answer is
--     cached, the log row completed.
--   billing.ai_release(request_id, status, error_code, ...)
--     the upstream failed or timed out: the prompt and the tokens are given back (billing.release_usage).
--   billing.ai_release_stale_reservations() / billing.ai_purge_cache()
--     pg_cron jobs `ai-release-stale-reservations` (every minute) and `ai-purge-cache` (hourly),
--     through billing.run_job (operations module): logged in billing.job_runs like the billing jobs.
--
-- Prices: public.ai_model_prices holds each model's paise per million input, output and cached
-- input tokens from a moment on. A call is priced at the row in effect when it was reserved; its
-- exact cost (numeric paise: a short call costs a fraction of a paisa) and that cost rounded up
-- (charged_paise) are on its ai_requests row. The plan may cap the spend (`ai_spend_paise_per_
-- <window>`, the metric `ai_spend_paise`, counted in whole paise like any quota, with its alerts),
-- charge every call to a credit event per paisa (`ai_credit_event`), or charge the calls past the
-- token quota to one (`groq_tokens_overage_event`): the reservation holds the estimate's cost
-- against the cap and in credits under the AI request id, the settlement moves both to the real
-- cost, a release gives both back, an expiry keeps them.
--
-- Every counter goes through billing.apply_usage_delta (the usage module's one mechanism): the
-- org-wide metrics `ai_prompts` and `groq_tokens`, and the per-user request counter, which is the
-- metric `ai_requests_u_<user id hex>` of the organization with the limits of the plan's
-- `ai_requests_per_<window>` keys. The three gateway functions are for service_role only (schema
-- billing): the ai-chat function verifies the user's JWT and passes the user id from its claims (a
-- signed-in user calling them through the API could otherwise settle their own usage at zero).
-- Members read their organization's log, public.ai_requests.
--
-- Lock order. Every path takes one organization's locks in this order, so concurrent calls wait
-- for each other and never deadlock:
--   1. the ai_requests row (settle, release, expire: `for update`; the stale-reservation job with
--      skip locked; a reservation inserts its own row, last, and waits for none),
--   2. the per-user request counter's windows (`ai_requests_u_<user id hex>`; reservations only),
--   3. the `ai_prompts` windows (reservations; a release gives them back),
--   4. the `ai_spend_paise` windows (the spend cap),
--   5. the `groq_tokens` windows,
--   6. the organization's credit lock (billing.lock_credits: consume_credits, settle_credits,
--      release_credits).
-- billing.ai_reserve counts in this order (billing.ai_cost_cap locks the spend windows with a zero
-- change before billing.ai_reserve_tokens, the cost is counted and charged after the tokens);
-- billing.ai_settle settles the spend, then the tokens, then the credits (billing.ai_charge_cost);
-- billing.ai_release gives back through billing.release_usage, which takes the request's metrics
-- in name order (ai_prompts, ai_spend_paise, groq_tokens) and the credits after every window, then
-- public.release_credits; billing.ai_expire and the job change no window and no credits. Within
-- a metric, billing.apply_usage_delta locks the windows in one fixed order. A change here keeps
-- this order (tests/ai-lock-order.test.ts runs reservations, settlements and releases at once).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

/**
 * Where an AI request stands: pending (tokens reserved, upstream in flight), completed, cached
 * (answered from ai_cache), denied (a limit or the model list refused it: nothing counted),
 * upstream_error / upstream_timeout (released, or settled when a stream had begun),
 * client_closed (the client went away mid-stream: what was generated is settled), expired
 * (never settled; released by the ai-release-stale-reservations job).
 */
create type public.ai_request_status as enum (
  'pending', 'completed', 'cached', 'denied', 'upstream_error', 'upstream_timeout', 'client_closed', 'expired'
);

comment on type public.ai_request_status is 'Where an AI request stands: pending (reserved), completed, cached, denied, upstream_error, upstream_timeout, client_closed, expired (never settled: counted at its reservation).';

/**
 * What billing.ai_reserve answers: allowed, or the denial ('not_a_member', 'rate',
 * 'model_not_allowed', 'prompts', 'tokens') with the window that refused (limit_amount, remaining,
 * retry_after_seconds); the request id and plan; max_tokens (capped to what the token quota has
 * left) and reserved_tokens (prompt estimate + max_tokens); a cached answer; the per-user rate
 * window (rate_limit, rate_remaining, rate_reset_seconds).
 */
create type billing.ai_reservation as (
  allowed boolean,
  denial text,
  request_id text,
  plan_code text,
  max_tokens integer,
  reserved_tokens bigint,
  cached_response jsonb,
  rate_limit bigint,
  rate_remaining bigint,
  rate_reset_seconds integer,
  limit_amount bigint,
  remaining bigint,
  retry_after_seconds integer,
  token_limit bigint,
  token_remaining bigint,
  token_reset_seconds integer
);

comment on type billing.ai_reservation is 'What billing.ai_reserve answers: allowed or the denial, request id, plan, capped max_tokens, reserved tokens, a cached answer, the per-user rate window, the refusing limit, and the token quota''s window (token_limit, token_remaining, token_reset_seconds; null when the token step was not reached or the quota is unlimited).';

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- ai_model_prices
-- -------------------------------------------------------------------------------------------------

/**
 * What a model costs, in paise per million tokens: input (the prompt), output (the answer) and
 * cached input (prompt tokens the provider served from its prompt cache, at most the input price),
 * from `effective_from` until the model's next row. A call is priced at the row in effect when it
 * was reserved (billing.now()), whenever it settles; a request of a nightly batch at the row's
 * batch prices (billing.ai_batch_price). A price change is a new row; a row calls were
 * priced at cannot be deleted (ai_requests refers to it). A DBA edits the rows (service_role);
 * members read them.
 */
create table public.ai_model_prices (
  model text not null check (model ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$'),
  effective_from timestamptz not null,
  input_paise_per_million bigint not null check (input_paise_per_million >= 0),
  output_paise_per_million bigint not null check (output_paise_per_million >= 0),
  cached_input_paise_per_million bigint not null check (cached_input_paise_per_million >= 0),
  created_at timestamptz not null default now(),
  batch_input_paise_per_million bigint check (batch_input_paise_per_million >= 0),
  batch_output_paise_per_million bigint check (batch_output_paise_per_million >= 0),
  primary key (model, effective_from),
  constraint ai_model_prices_cached_not_above_input check (cached_input_paise_per_million <= input_paise_per_million),
  constraint ai_model_prices_batch_both_or_neither
    check ((batch_input_paise_per_million is null) = (batch_output_paise_per_million is null))
);

comment on table public.ai_model_prices is 'AI model prices in paise per million input, output and cached input tokens, each from effective_from until the model''s next row.';

comment on column public.ai_model_prices.batch_input_paise_per_million is
  'The price of a prompt token sent in a nightly batch (Groq''s Batch API), per million; null (with batch_output_paise_per_million): the interactive prices times billing_settings.ai_batch_price_factor.';

grant select on public.ai_model_prices to authenticated;

grant select, insert, update, delete on public.ai_model_prices to service_role;

alter table public.ai_model_prices enable row level security;

-- -------------------------------------------------------------------------------------------------
-- ai_requests
-- -------------------------------------------------------------------------------------------------

/**
 * One row per AI call that reached ai_reserve: who, which model, tokens in (prompt) and out
 * (completion), what was reserved and what was finally counted against the quota, latency,
 * whether the cache answered, the outcome and its error code. `request_id` is also the
 * usage_metrics request id of the call's ai_prompts and groq_tokens rows. Owners and admins of
 * the organization read it; only the gateway (service_role) writes.
 * Monthly partitions by created_at (00_foundation.sql); a month is dropped once it ended
 * billing_settings.ai_request_retention_days ago (null, the default: kept forever). A unique key
 * of a partitioned table holds within one month only, so request_id is unique by how it is made:
 * billing.ai_reserve mints each one from gen_random_uuid() (122 random bits), the only writer;
 * it is looked up through ai_requests_request_id_idx, one probe per partition.
 */
create table public.ai_requests (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  request_id text not null check (request_id ~ '^ai_[0-9a-f]{32}$'),
  model text not null check (length(model) between 1 and 128),
  status public.ai_request_status not null,
  cached boolean not null default false,
  stream boolean not null default false,
  max_tokens integer check (max_tokens > 0),
  reserved_tokens bigint not null default 0 check (reserved_tokens >= 0),
  prompt_tokens integer check (prompt_tokens >= 0),
  completion_tokens integer check (completion_tokens >= 0),
  counted_tokens bigint check (counted_tokens >= 0),
  latency_ms integer check (latency_ms >= 0),
  error_code text check (error_code ~ '^[a-z][a-z0-9_]{0,62}$'),
  cache_key text check (cache_key ~ '^[0-9a-f]{64}$'),
  expires_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  price_effective_from timestamptz,
  cached_prompt_tokens integer check (cached_prompt_tokens >= 0),
  reserved_paise bigint check (reserved_paise >= 0),
  cost_paise numeric(20, 6) check (cost_paise >= 0),
  charged_paise bigint check (charged_paise >= 0),
  batch boolean not null default false,
  constraint ai_requests_pending_expires check (status <> 'pending' or expires_at is not null),
  constraint ai_requests_price_fkey foreign key (model, price_effective_from)
    references public.ai_model_prices (model, effective_from) on delete restrict,
  constraint ai_requests_pkey primary key (id, created_at)
) partition by range (created_at);

create table billing_partitions.ai_requests_default partition of public.ai_requests default;

select billing.secure_partition('billing_partitions', 'ai_requests_default', 'ai_requests');

insert into billing.partitioned_tables (table_name, partition_column, retention_setting, months_ahead)
values ('public.ai_requests', 'created_at', 'ai_request_retention_days', 3);

select billing.maintain_partitions();

comment on table public.ai_requests is 'The AI gateway''s log: one row per request, with its reservation, usage, cost and outcome.';

comment on column public.ai_requests.cost_paise is 'What the call cost at its model''s price in effect when it was reserved (price_effective_from), in paise, exact: a call of a few hundred tokens costs a fraction of a paisa, and the sum of these is what the model provider bills.';

comment on column public.ai_requests.charged_paise is 'cost_paise rounded up to whole paise: what the call was counted at against ai_spend_paise_per_<window> and charged in credits (the credit event''s credits per paisa).';

comment on column public.ai_requests.batch is 'A request of a nightly batch (public.ai_batch_requests): reserved at submission like an interactive call, without the per-user rate limit, and settled at the batch price.';

comment on column public.ai_requests.reserved_paise is 'The reservation''s cost (prompt estimate and max_tokens at the model''s price), rounded up: what was held against the spend cap and in credits until the settlement.';

/** A call by its request id (settle, release, expire, batches). */
create index ai_requests_request_id_idx on public.ai_requests (request_id);

/** Foreign keys and the policy column; an organization's calls in time order. */
create index ai_requests_organization_id_idx on public.ai_requests (organization_id, created_at);

create index ai_requests_user_id_idx on public.ai_requests (user_id);

create index ai_requests_price_idx on public.ai_requests (model, price_effective_from);

/** Reservations still open, for the release job. */
create index ai_requests_pending_expires_at_idx on public.ai_requests (expires_at) where status = 'pending';

grant select on public.ai_requests to authenticated;

grant select, insert, update, delete on public.ai_requests to service_role;

alter table public.ai_requests enable row level security;

-- -------------------------------------------------------------------------------------------------
-- billing.ai_cache (private)
-- -------------------------------------------------------------------------------------------------

/**
 * Answers kept 24 hours per organization, keyed by the sha256 (hex) of the request's canonical
 * JSON (model, messages, temperature, max_tokens). A hit costs no prompt and no tokens (the
 * per-user rate limit still counts it). Private (schema billing): service_role only.
 */
create table billing.ai_cache (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  cache_key text not null check (cache_key ~ '^[0-9a-f]{64}$'),
  model text not null check (length(model) between 1 and 128),
  response jsonb not null check (jsonb_typeof(response) = 'object'),
  prompt_tokens integer not null default 0 check (prompt_tokens >= 0),
  completion_tokens integer not null default 0 check (completion_tokens >= 0),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  primary key (organization_id, cache_key)
);

/** Expired answers, for the purge job. (organization_id leads the primary key.) */
create index ai_cache_expires_at_idx on billing.ai_cache (expires_at);

grant select, insert, update, delete on billing.ai_cache to service_role;

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * The usage metric that counts one user's AI requests in one organization (the per-user rate
 * limit): `ai_requests_u_` and the user id in hex, 46 characters, a valid usage_quotas metric.
 */
create function billing.ai_rate_metric(p_user_id uuid)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return 'ai_requests_u_' || pg_catalog.replace(p_user_id::text, '-', '');
end;
$$;
revoke execute on function billing.ai_rate_metric(uuid) from public;
grant execute on function billing.ai_rate_metric(uuid) to service_role;

/** Whole seconds from p_now until p_at, at least 1: a denial's retry-after or a window's reset. */
create function billing.ai_seconds_until(p_at timestamptz, p_now timestamptz)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
begin
  return greatest(1, pg_catalog.ceil(extract(epoch from p_at - p_now)))::integer;
end;
$$;
revoke execute on function billing.ai_seconds_until(timestamptz, timestamptz) from public;
grant execute on function billing.ai_seconds_until(timestamptz, timestamptz) to service_role;

/** The price of p_model in effect at p_at: its row with the latest effective_from at or before p_at (none: all null). */
create function billing.ai_model_price(p_model text, p_at timestamptz)
returns public.ai_model_prices
language plpgsql
stable
set search_path = ''
as $$
declare
  v_price public.ai_model_prices;
begin
  select p.* into v_price from public.ai_model_prices p
  where p.model = p_model and p.effective_from <= p_at
  order by p.effective_from desc
  limit 1;
  return v_price;
end;
$$;
revoke execute on function billing.ai_model_price(text, timestamptz) from public;
grant execute on function billing.ai_model_price(text, timestamptz) to service_role;

/**
 * What a call costs at p_price, in paise, exact: prompt tokens not served from the provider's
 * cache at the input price, cached ones (at most the prompt) at the cached input price, answer
 * tokens at the output price, per million.
 */
create function billing.ai_cost_paise(
  p_price public.ai_model_prices,
  p_prompt_tokens bigint,
  p_completion_tokens bigint,
  p_cached_tokens bigint default 0
)
returns numeric
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_cached bigint := least(greatest(coalesce(p_cached_tokens, 0), 0), p_prompt_tokens);
begin
  return ((p_prompt_tokens - v_cached)::numeric * p_price.input_paise_per_million
          + v_cached::numeric * p_price.cached_input_paise_per_million
          + p_completion_tokens::numeric * p_price.output_paise_per_million) / 1000000;
end;
$$;
revoke execute on function billing.ai_cost_paise(public.ai_model_prices, bigint, bigint, bigint) from public;
grant execute on function billing.ai_cost_paise(public.ai_model_prices, bigint, bigint, bigint) to service_role;

/**
 * p_price as a nightly batch pays it: the row's batch prices when it has them (the cached input
 * price at most the batch input price), else each price times billing_settings.ai_batch_price_factor
 * (0.5 by default), rounded up to whole paise per million.
 */
create function billing.ai_batch_price(p_price public.ai_model_prices)
returns public.ai_model_prices
language plpgsql
stable
set search_path = ''
as $$
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
$$;
revoke execute on function billing.ai_batch_price(public.ai_model_prices) from public;
grant execute on function billing.ai_batch_price(public.ai_model_prices) to service_role;

/**
 * The most answer tokens a call of p_prompt_tokens can have at p_price within p_paise (the prompt
 * at the input price, the answer at the output price; rounded up, the cost stays within p_paise);
 * null for no budget (p_paise null), -1 when not even the prompt fits, 131072 (the most max_tokens
 * takes) when answer tokens are free.
 */
create function billing.ai_affordable_tokens(p_price public.ai_model_prices, p_prompt_tokens bigint, p_paise bigint)
returns bigint
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_left numeric;
begin
  if p_paise is null then
    return null;
  end if;
  v_left := p_paise::numeric * 1000000 - p_prompt_tokens::numeric * p_price.input_paise_per_million;
  if v_left < 0 then
    return -1;
  end if;
  if p_price.output_paise_per_million = 0 then
    return 131072;
  end if;
  return least(pg_catalog.floor(v_left / p_price.output_paise_per_million), 131072)::bigint;
end;
$$;
revoke execute on function billing.ai_affordable_tokens(public.ai_model_prices, bigint, bigint) from public;
grant execute on function billing.ai_affordable_tokens(public.ai_model_prices, bigint, bigint) to service_role;

-- -------------------------------------------------------------------------------------------------
-- The gateway (service_role)
-- -------------------------------------------------------------------------------------------------

/**
 * Refuses bad arguments of billing.ai_reserve (22023, naming the argument): both ids, a model
 * name, max_tokens 1 to 131072 when given, a prompt estimate 1 to 1000000, a sha256 cache key.
 */
create function billing.ai_check_reserve_arguments(
  p_organization_id uuid,
  p_user_id uuid,
  p_model text,
  p_max_tokens integer,
  p_prompt_tokens integer,
  p_cache_key text
)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_organization_id is null or p_user_id is null then
    raise exception 'ai_reserve: organization id and user id are required' using errcode = 'invalid_parameter_value';
  end if;
  if p_model is null or p_model !~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$' then
    raise exception 'ai_reserve: model "%" is not a valid model name', p_model using errcode = 'invalid_parameter_value';
  end if;
  if p_max_tokens is not null and (p_max_tokens < 1 or p_max_tokens > 131072) then
    raise exception 'ai_reserve: max_tokens must be 1 to 131072, got %', p_max_tokens using errcode = 'invalid_parameter_value';
  end if;
  if p_prompt_tokens is null or p_prompt_tokens < 1 or p_prompt_tokens > 1000000 then
    raise exception 'ai_reserve: prompt token estimate must be 1 to 1000000, got %', coalesce(p_prompt_tokens::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_cache_key is not null and p_cache_key !~ '^[0-9a-f]{64}$' then
    raise exception 'ai_reserve: cache key must be a sha256 in lowercase hex' using errcode = 'invalid_parameter_value';
  end if;
end;
$$;
revoke execute on function billing.ai_check_reserve_arguments(uuid, uuid, text, integer, integer, text) from public;
grant execute on function billing.ai_check_reserve_arguments(uuid, uuid, text, integer, integer, text) to service_role;

/**
 * The windows (minute to month) each AI metric has in a plan's features, and the per-user rate
 * limits renamed to the user's own counter (billing.ai_rate_metric), as billing.apply_usage_delta
 * takes them. spend_units: the windows of the spend cap (`ai_spend_paise_per_<window>`); unlike
 * the other AI metrics, a plan without one has no cap.
 */
create function billing.ai_plan_windows(
  p_features jsonb,
  p_user_id uuid,
  out rate_metric text,
  out rate_units public.usage_window[],
  out rate_features jsonb,
  out prompt_units public.usage_window[],
  out token_units public.usage_window[],
  out spend_units public.usage_window[]
)
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_unit public.usage_window;
begin
  rate_metric := billing.ai_rate_metric(p_user_id);
  rate_units := '{}';
  rate_features := '{}'::jsonb;
  prompt_units := '{}';
  token_units := '{}';
  spend_units := '{}';
  foreach v_unit in array enum_range(null::public.usage_window) loop
    if p_features ? ('ai_requests_per_' || v_unit::text) then
      rate_units := rate_units || v_unit;
      rate_features := rate_features || pg_catalog.jsonb_build_object(
        rate_metric || '_per_' || v_unit::text, p_features -> ('ai_requests_per_' || v_unit::text));
    end if;
    if p_features ? ('ai_prompts_per_' || v_unit::text) then
      prompt_units := prompt_units || v_unit;
    end if;
    if p_features ? ('groq_tokens_per_' || v_unit::text) then
      token_units := token_units || v_unit;
    end if;
    if p_features ? ('ai_spend_paise_per_' || v_unit::text) then
      spend_units := spend_units || v_unit;
    end if;
  end loop;
end;
$$;
revoke execute on function billing.ai_plan_windows(jsonb, uuid) from public;
grant execute on function billing.ai_plan_windows(jsonb, uuid) to service_role;

/**
 * p_reservation refused for p_denial ('prompts' or 'tokens') by the window that refused: its
 * limit, what remains (as the caller reports it) and when it resets. With no window (p_resets_at
 * null: the plan does not
 * name the metric, limit 0) it resets when the month turns, p_month_end.
 */
create function billing.ai_denied(
  p_reservation billing.ai_reservation,
  p_denial text,
  p_limit bigint,
  p_remaining bigint,
  p_resets_at timestamptz,
  p_month_end timestamptz,
  p_now timestamptz
)
returns billing.ai_reservation
language plpgsql
immutable
set search_path = ''
as $$
begin
  p_reservation.denial := p_denial;
  p_reservation.limit_amount := coalesce(p_limit, 0);
  p_reservation.remaining := coalesce(p_remaining, 0);
  p_reservation.retry_after_seconds := billing.ai_seconds_until(coalesce(p_resets_at, p_month_end), p_now);
  return p_reservation;
end;
$$;
revoke execute on function billing.ai_denied(billing.ai_reservation, text, bigint, bigint, timestamptz, timestamptz,
  timestamptz) from public;
grant execute on function billing.ai_denied(billing.ai_reservation, text, bigint, bigint, timestamptz, timestamptz,
  timestamptz) to service_role;

/**
 * Counts one usage of `p_metric` in p_units and records its usage_metrics row under the
 * reservation's request id; the answer of billing.apply_usage_delta (a refusal writes nothing).
 * p_is_reservation: the amount is a worst case settled later (tokens, spend), so it does not alert.
 */
create function billing.ai_count(
  p_organization_id uuid,
  p_user_id uuid,
  p_request_id text,
  p_metric text,
  p_units public.usage_window[],
  p_now timestamptz,
  p_timezone text,
  p_features jsonb,
  p_amount bigint,
  p_is_reservation boolean default false,
  out allowed boolean,
  out used bigint,
  out limit_amount bigint,
  out remaining bigint,
  out resets_at timestamptz
)
language plpgsql
set search_path = ''
as $$
begin
  -- A reservation is a worst case, not use: it never alerts (its settlement does).
  select d.allowed, d.used, d.limit_amount, d.remaining, d.resets_at
  into allowed, used, limit_amount, remaining, resets_at
  from billing.apply_usage_delta(p_organization_id, p_metric, p_units, p_now, p_timezone, p_features, p_amount,
                                 p_settled => case when p_is_reservation then 0 end) d;
  if allowed then
    insert into public.usage_metrics (organization_id, user_id, metric, amount, request_id, window_units,
                                      occurred_at, used, limit_amount, resets_at)
    values (p_organization_id, p_user_id, p_metric, p_amount, p_request_id, p_units, p_now,
            ai_count.used, ai_count.limit_amount, ai_count.resets_at);
  end if;
end;
$$;
revoke execute on function billing.ai_count(uuid, uuid, text, text, public.usage_window[], timestamptz, text, jsonb,
  bigint, boolean) from public;
grant execute on function billing.ai_count(uuid, uuid, text, text, public.usage_window[], timestamptz, text, jsonb,
  bigint, boolean) to service_role;

/**
 * Step 1 of billing.ai_reserve: the per-user rate limit. Counts the request in the user's own
 * counter and reports its window; denial 'rate' when it is full (or the plan has no window).
 */
create function billing.ai_take_rate(
  p_reservation billing.ai_reservation,
  p_organization_id uuid,
  p_rate_metric text,
  p_rate_units public.usage_window[],
  p_rate_features jsonb,
  p_now timestamptz,
  p_timezone text,
  p_month_end timestamptz
)
returns billing.ai_reservation
language plpgsql
set search_path = ''
as $$
declare
  v_rate record;
begin
  if p_rate_units = '{}' then
    p_reservation.rate_limit := 0;
    p_reservation.rate_remaining := 0;
    p_reservation.rate_reset_seconds := billing.ai_seconds_until(p_month_end, p_now);
    p_reservation.denial := 'rate';
    return p_reservation;
  end if;
  v_rate := billing.apply_usage_delta(p_organization_id, p_rate_metric, p_rate_units, p_now, p_timezone,
                                      p_rate_features, 1);
  p_reservation.rate_limit := v_rate.limit_amount;
  p_reservation.rate_remaining := v_rate.remaining;
  p_reservation.rate_reset_seconds := billing.ai_seconds_until(v_rate.resets_at, p_now);
  if not v_rate.allowed then
    p_reservation.denial := 'rate';
  end if;
  return p_reservation;
end;
$$;
revoke execute on function billing.ai_take_rate(billing.ai_reservation, uuid, text, public.usage_window[], jsonb,
  timestamptz, text, timestamptz) from public;
grant execute on function billing.ai_take_rate(billing.ai_reservation, uuid, text, public.usage_window[], jsonb,
  timestamptz, text, timestamptz) to service_role;

/**
 * Step 3 of billing.ai_reserve: a live billing.ai_cache answer for p_cache_key. On a hit the
 * reservation is allowed with cached_response (no prompt, no tokens are counted) and the request
 * is logged as 'cached'; otherwise p_reservation comes back as it was.
 */
create function billing.ai_cached_answer(
  p_reservation billing.ai_reservation,
  p_organization_id uuid,
  p_user_id uuid,
  p_model text,
  p_cache_key text,
  p_stream boolean,
  p_now timestamptz
)
returns billing.ai_reservation
language plpgsql
set search_path = ''
as $$
declare
  v_cache billing.ai_cache;
begin
  select * into v_cache from billing.ai_cache c
  where c.organization_id = p_organization_id and c.cache_key = p_cache_key and c.expires_at > p_now;
  if not found then
    return p_reservation;
  end if;
  p_reservation.allowed := true;
  p_reservation.cached_response := v_cache.response;
  insert into public.ai_requests (organization_id, user_id, request_id, model, status, cached, stream,
                                  prompt_tokens, completion_tokens, counted_tokens, latency_ms, cache_key, completed_at,
                                  cost_paise, charged_paise)
  values (p_organization_id, p_user_id, p_reservation.request_id, p_model, 'cached', true, coalesce(p_stream, false),
          v_cache.prompt_tokens, v_cache.completion_tokens, 0, 0, p_cache_key, p_now, 0, 0);
  return p_reservation;
end;
$$;
revoke execute on function billing.ai_cached_answer(billing.ai_reservation, uuid, uuid, text, text, boolean, timestamptz)
  from public;
grant execute on function billing.ai_cached_answer(billing.ai_reservation, uuid, uuid, text, text, boolean, timestamptz)
  to service_role;

/**
 * Step 5 of billing.ai_reserve: the token reservation. Locks the token windows (a zero change),
 * sees what is left, caps max_tokens to it, then takes prompt estimate + max_tokens (it fits:
 * the rows are locked). Denial 'tokens' when not even a short answer fits, or, with
 * p_all_or_none (the plan pays for tokens past the quota in credits), when the whole request
 * does not fit. Reports the tightest token window: its limit, what is left (after this
 * reservation; on a denial as it stands) and the seconds until it resets.
 */
create function billing.ai_reserve_tokens(
  p_reservation billing.ai_reservation,
  p_organization_id uuid,
  p_user_id uuid,
  p_units public.usage_window[],
  p_now timestamptz,
  p_timezone text,
  p_features jsonb,
  p_month_end timestamptz,
  p_prompt_tokens integer,
  p_requested integer,
  p_all_or_none boolean default false
)
returns billing.ai_reservation
language plpgsql
set search_path = ''
as $$
declare
  c_min_answer_tokens constant integer := 16;
  v_answer record;
  v_available bigint;
begin
  if p_units = '{}' then
    p_reservation.token_limit := 0;
    p_reservation.token_remaining := 0;
    p_reservation.token_reset_seconds := billing.ai_seconds_until(p_month_end, p_now);
    return billing.ai_denied(p_reservation, 'tokens', 0, 0, null, p_month_end, p_now);
  end if;
  v_answer := billing.apply_usage_delta(p_organization_id, 'groq_tokens', p_units, p_now, p_timezone, p_features, 0);
  -- Unlimited (a null limit): no token window to report.
  if v_answer.limit_amount is not null then
    p_reservation.token_limit := v_answer.limit_amount;
    p_reservation.token_remaining := greatest(v_answer.remaining, 0);
    p_reservation.token_reset_seconds := billing.ai_seconds_until(v_answer.resets_at, p_now);
  end if;
  v_available := coalesce(v_answer.remaining - p_prompt_tokens, p_requested);
  if v_available < (case when p_all_or_none then p_requested else least(c_min_answer_tokens, p_requested) end) then
    return billing.ai_denied(p_reservation, 'tokens', v_answer.limit_amount, greatest(v_answer.remaining, 0),
                             v_answer.resets_at, p_month_end, p_now);
  end if;
  p_reservation.max_tokens := least(p_requested, v_available)::integer;
  p_reservation.reserved_tokens := p_prompt_tokens + p_reservation.max_tokens;
  v_answer := billing.ai_count(p_organization_id, p_user_id, p_reservation.request_id, 'groq_tokens', p_units, p_now,
                               p_timezone, p_features, p_reservation.reserved_tokens, p_is_reservation => true);
  if not v_answer.allowed then
    -- Cannot happen while the windows are locked; refuse rather than pass the limit.
    return billing.ai_denied(p_reservation, 'tokens', v_answer.limit_amount, greatest(v_answer.remaining, 0),
                             v_answer.resets_at, p_month_end, p_now);
  end if;
  if v_answer.limit_amount is not null then
    p_reservation.token_remaining := greatest(v_answer.remaining, 0);
  end if;
  return p_reservation;
end;
$$;
revoke execute on function billing.ai_reserve_tokens(billing.ai_reservation, uuid, uuid, public.usage_window[],
  timestamptz, text, jsonb, timestamptz, integer, integer, boolean) from public;
grant execute on function billing.ai_reserve_tokens(billing.ai_reservation, uuid, uuid, public.usage_window[],
  timestamptz, text, jsonb, timestamptz, integer, integer, boolean) to service_role;
comment on function billing.ai_reserve_tokens(billing.ai_reservation, uuid, uuid, public.usage_window[],
  timestamptz, text, jsonb, timestamptz, integer, integer, boolean) is 'Step 5 of billing.ai_reserve: reserve prompt estimate + max_tokens (capped to what is left) of groq_tokens, or deny ''tokens''; reports the token window (token_limit, token_remaining, token_reset_seconds).';

/**
 * Step 4 of billing.ai_reserve: what the call may cost. With a spend cap
 * (`ai_spend_paise_per_<window>`, metric `ai_spend_paise`) or a credit event p_event to charge,
 * the model needs a price at p_now (else denial 'model_not_priced'), and max_tokens (p_requested)
 * is capped to what the cap's remainder, then the organization's credits (their balance now,
 * at the event's credits per paisa), can pay for with the prompt estimate: denial 'spend' or
 * 'credits' when not even a short answer (16 tokens, or p_requested if smaller) fits. Counts
 * nothing: billing.ai_reserve holds the cost once the tokens are reserved.
 */
create function billing.ai_cost_cap(
  p_reservation billing.ai_reservation,
  p_organization_id uuid,
  p_price public.ai_model_prices,
  p_spend_units public.usage_window[],
  p_event text,
  p_now timestamptz,
  p_timezone text,
  p_features jsonb,
  p_month_end timestamptz,
  p_prompt_tokens integer,
  p_requested integer
)
returns billing.ai_reservation
language plpgsql
set search_path = ''
as $$
declare
  c_min_answer_tokens constant integer := 16;
  v_answer record;
  v_event record;
  v_balance bigint;
  v_afford bigint;
begin
  p_reservation.max_tokens := p_requested;
  if p_spend_units = '{}' and p_event is null then
    return p_reservation;
  end if;
  if p_price.model is null then
    p_reservation.denial := 'model_not_priced';
    return p_reservation;
  end if;
  if p_spend_units <> '{}' then
    v_answer := billing.apply_usage_delta(p_organization_id, 'ai_spend_paise', p_spend_units, p_now, p_timezone,
                                          p_features, 0);
    v_afford := billing.ai_affordable_tokens(p_price, p_prompt_tokens, greatest(v_answer.remaining, 0));
    if v_afford < least(c_min_answer_tokens, p_requested) then
      return billing.ai_denied(p_reservation, 'spend', v_answer.limit_amount, greatest(v_answer.remaining, 0),
                               v_answer.resets_at, p_month_end, p_now);
    end if;
    p_reservation.max_tokens := least(p_reservation.max_tokens, coalesce(v_afford, p_requested))::integer;
  end if;
  if p_event is not null then
    select e.* into v_event from public.credit_events e where e.code = p_event and e.active;
    v_balance := billing.available_credits(p_organization_id);
    if v_event.code is not null then
      v_afford := billing.ai_affordable_tokens(p_price, p_prompt_tokens,
                                               pg_catalog.floor(v_balance / v_event.credits_per_unit)::bigint);
    end if;
    if v_event.code is null or v_afford < least(c_min_answer_tokens, p_requested) then
      p_reservation.denial := 'credits';
      p_reservation.limit_amount := null;
      p_reservation.remaining := v_balance;
      p_reservation.retry_after_seconds := null;
      return p_reservation;
    end if;
    p_reservation.max_tokens := least(p_reservation.max_tokens, v_afford)::integer;
  end if;
  return p_reservation;
end;
$$;
revoke execute on function billing.ai_cost_cap(billing.ai_reservation, uuid, public.ai_model_prices,
  public.usage_window[], text, timestamptz, text, jsonb, timestamptz, integer, integer) from public;
grant execute on function billing.ai_cost_cap(billing.ai_reservation, uuid, public.ai_model_prices,
  public.usage_window[], text, timestamptz, text, jsonb, timestamptz, integer, integer) to service_role;

/**
 * Reserve one AI call for p_user_id in p_organization_id, or say why not, in one atomic step.
 * In order: the user must be a member (else denial 'not_a_member', not logged); the per-user
 * rate limit counts the call ('rate', billing.ai_take_rate); p_model must be in the plan's
 * `ai_models` array ('model_not_allowed'); a live ai_cache row for p_cache_key answers at once
 * (cached_response, no prompt, no tokens); the prompt quota counts 1 ('prompts'); what the call
 * may cost caps max_tokens (p_max_tokens, default 1024) to what the spend cap and the credits of
 * `ai_credit_event` can pay for ('model_not_priced', 'spend', 'credits'; billing.ai_cost_cap); the
 * token quota reserves p_prompt_tokens (the caller's estimate) + max_tokens, with max_tokens
 * capped to what the quota has left ('tokens' when less than 16, or than p_max_tokens if
 * smaller, is left for the answer; billing.ai_reserve_tokens). When the plan names
 * `groq_tokens_overage_event`, a call the token quota cannot hold whole runs on that event's
 * credits instead (unless `ai_credit_event` already pays for it), its tokens not counted. Then
 * the reservation's cost (the model's price in effect now, rounded up to paise) is counted in
 * `ai_spend_paise` and charged in credits under the request id (public.consume_credits). A denial changes no
 * counter (the counting block raises SBAI0, which undoes it); it is logged in ai_requests (status
 * denied) unless the caller is not a member. A metric the plan does not name has limit 0. Returns
 * the reservation (request_id, capped max_tokens, reserved_tokens), the per-user rate window after
 * this call (as it stands on a denial), and for a denial the refusing limit, what is left of it
 * and the seconds until its window resets. The reservation expires after 15 minutes
 * (billing.ai_release_stale_reservations). With p_batch (a request of a nightly batch, reserved by
 * public.submit_ai_batch) the per-user rate limit is not taken, the token quota must hold the
 * whole request (max_tokens is not lowered: nobody reads a batch's answer in time to ask again;
 * 'tokens' otherwise), the row is marked batch, and the reservation lasts 4 days (its worker
 * settles or releases it). service_role only.
 */
create function billing.ai_reserve(
  p_organization_id uuid,
  p_user_id uuid,
  p_model text,
  p_max_tokens integer,
  p_prompt_tokens integer,
  p_cache_key text default null,
  p_stream boolean default false,
  p_batch boolean default false
)
returns billing.ai_reservation
language plpgsql
volatile
set search_path = ''
as $$
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
                                       v_overage_event is not null or coalesce(p_batch, false));
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
                                     v_windows.spend_units, v_now, v_plan.timezone, v_features, v_reserved_paise,
                                     p_is_reservation => true);
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
$$;
revoke execute on function billing.ai_reserve(uuid, uuid, text, integer, integer, text, boolean, boolean) from public, anon, authenticated;
grant execute on function billing.ai_reserve(uuid, uuid, text, integer, integer, text, boolean, boolean) to service_role;

/**
 * Settles the usage row of p_metric counted under p_request_id at p_actual; if that does not fit
 * the windows, at the reservation plus what is left of them; at worst at the reservation
 * (p_reserved, which always fits). counted: the amount settled; remaining: the window's remainder.
 */
create function billing.ai_settle_metric(
  p_organization_id uuid,
  p_request_id text,
  p_metric text,
  p_actual bigint,
  p_reserved bigint,
  out counted bigint,
  out remaining bigint
)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_answer record;
begin
  counted := p_actual;
  v_answer := billing.settle_usage(p_organization_id, p_request_id, counted, p_metric);
  if not v_answer.allowed then
    counted := p_reserved + greatest(coalesce(v_answer.remaining, 0), 0);
    v_answer := billing.settle_usage(p_organization_id, p_request_id, counted, p_metric);
    if not v_answer.allowed then
      counted := p_reserved;
      v_answer := billing.settle_usage(p_organization_id, p_request_id, counted, p_metric);
    end if;
  end if;
  remaining := v_answer.remaining;
end;
$$;
revoke execute on function billing.ai_settle_metric(uuid, text, text, bigint, bigint) from public;
grant execute on function billing.ai_settle_metric(uuid, text, text, bigint, bigint) to service_role;

/**
 * Charges a call's cost, p_paise (whole paise, as counted against the spend cap by
 * billing.ai_settle), to the credit charge held under its request id (billing.settle_credits at
 * the event's credits per paisa; when the balance cannot cover a cost above the reservation, the
 * charge takes what is left of it). The last step of a settlement: it takes the organization's
 * credit lock, which comes after every usage window (the lock order of this module's banner).
 * Returns the credits the charge holds after it (null without a charge).
 */
create function billing.ai_charge_cost(p_request public.ai_requests, p_paise bigint)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_charge record;
  v_per_unit numeric;
  v_answer record;
begin
  select c.* into v_charge from public.credit_charges c
  where c.organization_id = p_request.organization_id and c.request_id = p_request.request_id;
  if v_charge.id is null then
    return null;
  end if;
  select e.credits_per_unit into v_per_unit from public.credit_events e where e.code = v_charge.event_code;
  v_answer := billing.settle_credits(p_request.organization_id, p_request.request_id,
                                     pg_catalog.ceil(p_paise * v_per_unit)::bigint);
  if not v_answer.charged then
    v_answer := billing.settle_credits(p_request.organization_id, p_request.request_id,
                                       v_charge.charged + billing.available_credits(p_request.organization_id));
  end if;
  return v_answer.credits;
end;
$$;
revoke execute on function billing.ai_charge_cost(public.ai_requests, bigint) from public;
grant execute on function billing.ai_charge_cost(public.ai_requests, bigint) to service_role;

/**
 * Settle a reservation at the tokens actually used (prompt + completion, from the upstream's
 * usage; for a stream cut short, what was generated): settle_usage on groq_tokens gives back the
 * unused part. Should the actual exceed the reservation and the quota's remainder (the prompt
 * estimate was low), the quota is filled to its limit and no further: the log keeps the true
 * numbers, counted_tokens what was counted. The cost (cost_paise, at the price in effect when the
 * call was reserved, p_cached_tokens of the prompt at the cached input price) is settled the same
 * way, rounded up to paise (charged_paise), against the spend cap (before the tokens) and, last,
 * the call's credit charge (billing.ai_charge_cost): the lock order of the module's banner. Completes the log row with p_status (completed,
 * client_closed, or upstream_error / upstream_timeout for a stream that failed after it began)
 * and, for a completed call with a cache key, caches p_response for 24 hours. Idempotent: a
 * request no longer pending is left as it is (settled = false). service_role only.
 */
create function billing.ai_settle(
  p_request_id text,
  p_prompt_tokens integer,
  p_completion_tokens integer,
  p_latency_ms integer default null,
  p_status public.ai_request_status default 'completed',
  p_response jsonb default null,
  p_cached_tokens integer default 0,
  out settled boolean,
  out status public.ai_request_status,
  out counted_tokens bigint,
  out remaining bigint
)
language plpgsql
volatile
set search_path = ''
as $$
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
$$;
revoke execute on function billing.ai_settle(text, integer, integer, integer, public.ai_request_status, jsonb, integer) from public, anon, authenticated;
grant execute on function billing.ai_settle(text, integer, integer, integer, public.ai_request_status, jsonb, integer) to service_role;

/**
 * Give a reservation back when the upstream never answered: it failed (upstream_error), timed
 * out (upstream_timeout), or the client left before the call was made (client_closed).
 * release_usage returns the prompt, the reserved tokens and the reserved spend, release_credits the
 * credits charged (cost 0); the per-user rate count stays (the
 * call was attempted). Once the upstream has answered, the call is settled (billing.ai_settle)
 * or, if that never happens, expires counted (billing.ai_expire): never released. Idempotent:
 * returns false when the request is no longer pending. service_role only.
 */
create function billing.ai_release(
  p_request_id text,
  p_status public.ai_request_status default 'upstream_error',
  p_error_code text default null,
  p_latency_ms integer default null
)
returns boolean
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_request public.ai_requests;
begin
  if p_request_id is null then
    raise exception 'ai_release: request id is required' using errcode = 'invalid_parameter_value';
  end if;
  if p_status is null or p_status not in ('upstream_error', 'upstream_timeout', 'client_closed') then
    raise exception 'ai_release: status must be upstream_error, upstream_timeout or client_closed, got %',
      coalesce(p_status::text, 'null') using errcode = 'invalid_parameter_value';
  end if;
  if p_error_code is not null and p_error_code !~ '^[a-z][a-z0-9_]{0,62}$' then
    raise exception 'ai_release: error code must be lowercase snake_case' using errcode = 'invalid_parameter_value';
  end if;
  if p_latency_ms is not null and p_latency_ms < 0 then
    raise exception 'ai_release: latency must be zero or more' using errcode = 'invalid_parameter_value';
  end if;

  select r.* into v_request from public.ai_requests r where r.request_id = p_request_id for update;
  if not found then
    raise exception 'ai_release: no AI request %', p_request_id using errcode = 'no_data_found';
  end if;
  if v_request.status <> 'pending' then
    return false;
  end if;

  perform billing.release_usage(v_request.organization_id, p_request_id);
  if exists (select from public.credit_charges c
             where c.organization_id = v_request.organization_id and c.request_id = p_request_id) then
    perform public.release_credits(v_request.organization_id, p_request_id);
  end if;
  update public.ai_requests r
  set status = p_status,
      error_code = coalesce(p_error_code, p_status::text),
      latency_ms = p_latency_ms,
      counted_tokens = 0,
      cost_paise = case when v_request.price_effective_from is not null then 0 end,
      charged_paise = case when v_request.price_effective_from is not null then 0 end,
      completed_at = billing.now(),
      expires_at = null
  where r.id = v_request.id;
  return true;
end;
$$;
revoke execute on function billing.ai_release(text, public.ai_request_status, text, integer) from public, anon, authenticated;
grant execute on function billing.ai_release(text, public.ai_request_status, text, integer) to service_role;

/**
 * Expire one reservation never settled, counted at what it reserved: the request's usage rows
 * (ai_prompts and groq_tokens, still 'counted') become 'settled' at their reserved amounts, so
 * the counters keep the prompt, every reserved token and the reserved spend, and the credit charge
 * stays as reserved (cost_paise = charged_paise = reserved_paise); the log row becomes 'expired'
 * (error_code reservation_expired) with counted_tokens = reserved_tokens. The reservation is an
 * upper bound of the call (the prompt estimate bounds the prompt, max_tokens the answer), so an
 * expired call is never counted below what it cost. Returns false, changing nothing, for a request
 * no longer pending or not yet past its expires_at (by billing.now()). service_role only.
 */
create function billing.ai_expire(p_request_id text)
returns boolean
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_request public.ai_requests;
  v_now timestamptz := billing.now();
begin
  if p_request_id is null then
    raise exception 'ai_expire: request id is required' using errcode = 'invalid_parameter_value';
  end if;
  select r.* into v_request from public.ai_requests r where r.request_id = p_request_id for update;
  if not found then
    raise exception 'ai_expire: no AI request %', p_request_id using errcode = 'no_data_found';
  end if;
  if v_request.status <> 'pending' or v_request.expires_at > v_now then
    return false;
  end if;

  update public.usage_metrics m set state = 'settled'
  where m.organization_id = v_request.organization_id and m.request_id = p_request_id and m.state = 'counted';
  update public.ai_requests r
  set status = 'expired',
      error_code = 'reservation_expired',
      counted_tokens = v_request.reserved_tokens,
      cost_paise = v_request.reserved_paise,
      charged_paise = v_request.reserved_paise,
      completed_at = v_now,
      expires_at = null
  where r.id = v_request.id;
  return true;
end;
$$;
revoke execute on function billing.ai_expire(text) from public, anon, authenticated;
grant execute on function billing.ai_expire(text) to service_role;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

create policy "Owners and admins can read their organization's AI requests"
  on public.ai_requests for select to authenticated
  using (organization_id in (select billing.member_organization_ids(array['owner', 'admin'])));

create policy "Signed-in users can read the AI model prices"
  on public.ai_model_prices for select to authenticated
  using (true);

-- ai_cache: no policies. Only service_role (which bypasses RLS) has grants.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None: the gateway's functions are service-only (section 3); members read public.ai_requests.

-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

/**
 * Expire reservations never settled (the function crashed, lost the database mid-call, or its
 * settlement was refused), counted at their reserved amounts (billing.ai_expire): every pending
 * ai_requests row past its expires_at (by billing.now()), at most p_limit per run, oldest first,
 * skipping rows a settling call holds. Returns how many expired. pg_cron's
 * `ai-release-stale-reservations` calls it through its logged job (the name says release; what
 * it does is expire).
 */
create function billing.ai_release_stale_reservations(p_limit integer default 1000)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_request record;
  v_expired integer := 0;
begin
  for v_request in
    select r.request_id
    from public.ai_requests r
    where r.status = 'pending' and r.expires_at <= billing.now()
    order by r.expires_at
    limit greatest(coalesce(p_limit, 1000), 0)
    for update skip locked
  loop
    if billing.ai_expire(v_request.request_id) then
      v_expired := v_expired + 1;
    end if;
  end loop;
  return v_expired;
end;
$$;
revoke execute on function billing.ai_release_stale_reservations(integer) from public;
grant execute on function billing.ai_release_stale_reservations(integer) to service_role;

/**
 * Delete cached answers past their expiry (by billing.now()), at most p_limit per run, skipping
 * rows another call holds. Returns how many went.
 */
create function billing.ai_purge_cache(p_limit integer default 10000)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_deleted integer;
begin
  delete from billing.ai_cache c
  where (c.organization_id, c.cache_key) in (
    select x.organization_id, x.cache_key from billing.ai_cache x
    where x.expires_at <= billing.now()
    order by x.expires_at
    limit greatest(coalesce(p_limit, 10000), 0)
    for update skip locked);
  get diagnostics v_deleted = row_count;
  return v_deleted;
end;
$$;
revoke execute on function billing.ai_purge_cache(integer) from public;
grant execute on function billing.ai_purge_cache(integer) to service_role;

/**
 * pg_cron 'ai-release-stale-reservations': one batch of billing.ai_release_stale_reservations,
 * logged in billing.job_runs like the billing jobs (billing.run_job: a failed run changes
 * nothing, is logged, and returns null).
 */
create function billing.job_ai_release_stale_reservations(p_limit integer default 1000)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('ai-release-stale-reservations', 'billing.ai_release_stale_reservations(integer)', p_limit);
end;
$$;
revoke execute on function billing.job_ai_release_stale_reservations(integer) from public;

/** pg_cron 'ai-purge-cache': one batch of billing.ai_purge_cache, logged the same way. */
create function billing.job_ai_purge_cache(p_limit integer default 10000)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('ai-purge-cache', 'billing.ai_purge_cache(integer)', p_limit);
end;
$$;
revoke execute on function billing.job_ai_purge_cache(integer) from public;
