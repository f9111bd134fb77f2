-- ai_model_prices: drafted by `npm run db:diff -- ai_model_prices` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.
--
-- What this migration does: AI calls priced per model, in paise, and charged in credits
-- (supabase/schemas/10_ai_gateway.sql). public.ai_model_prices (paise per million input, output
-- and cached input tokens, from effective_from); ai_requests gains the price the call was reserved
-- at, its reserved, exact (cost_paise) and charged cost, and its cached prompt tokens;
-- billing.ai_reserve caps max_tokens to what the spend cap (ai_spend_paise_per_<window>, metric
-- ai_spend_paise) and the credits of the plan's ai_credit_event can pay for, runs calls past the
-- token quota on credits when the plan names groq_tokens_overage_event, and holds the cost;
-- ai_settle (new last argument p_cached_tokens, default 0), ai_release and ai_expire settle,
-- give back or keep it; the plan feature key ai_credit_event is validated; service_role may
-- execute billing.adjust_charge, without which billing.settle_credits and
-- public.release_credits, both granted to service_role, failed for it.
--
-- Nothing added by hand. No backfill: the calls logged before this migration had no price, so
-- their cost columns stay null (unknown), not 0. The prices themselves are data a diff does not
-- carry: supabase/seed.sql has demo prices for the local stack; a deployed project inserts its own
-- rows into public.ai_model_prices. Until it does, plans without a spend cap or ai_credit_event
-- run as before (no cost recorded), and plans with one refuse the unpriced model
-- (model_not_priced).

SET local check_function_bodies = off;

DROP FUNCTION "billing"."ai_plan_windows"(jsonb, uuid);

DROP FUNCTION "billing"."ai_reserve_tokens"(billing.ai_reservation, uuid, uuid, public.usage_window[], timestamp WITH time zone, text, jsonb, timestamp
  WITH time zone, integer, integer);

DROP FUNCTION "billing"."ai_settle"(text, integer, integer, integer, public.ai_request_status, jsonb);

CREATE TABLE "public"."ai_model_prices" (
  "model"                          text                     NOT NULL,
  "effective_from"                 timestamp with time zone NOT NULL,
  "input_paise_per_million"        bigint                   NOT NULL,
  "output_paise_per_million"       bigint                   NOT NULL,
  "cached_input_paise_per_million" bigint                   NOT NULL,
  "created_at"                     timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "ai_model_prices_cached_input_paise_per_million_check" CHECK ((cached_input_paise_per_million >= 0)),
  CONSTRAINT "ai_model_prices_cached_not_above_input" CHECK ((cached_input_paise_per_million <= input_paise_per_million)),
  CONSTRAINT "ai_model_prices_input_paise_per_million_check" CHECK ((input_paise_per_million >= 0)),
  CONSTRAINT "ai_model_prices_model_check" CHECK ((model ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$'::text)),
  CONSTRAINT "ai_model_prices_output_paise_per_million_check" CHECK ((output_paise_per_million >= 0)),
  CONSTRAINT "ai_model_prices_pkey" PRIMARY KEY (model, effective_from)
);

ALTER TABLE "public"."ai_model_prices"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."ai_model_prices" FROM "anon";

ALTER TABLE "public"."ai_requests"
  ADD COLUMN "price_effective_from" timestamp WITH time zone;

ALTER TABLE "public"."ai_requests"
  ADD COLUMN "cached_prompt_tokens" integer;

ALTER TABLE "public"."ai_requests"
  ADD COLUMN "reserved_paise" bigint;

ALTER TABLE "public"."ai_requests"
  ADD COLUMN "cost_paise" numeric(20,6);

ALTER TABLE "public"."ai_requests"
  ADD COLUMN "charged_paise" bigint;

CREATE OR REPLACE FUNCTION billing.ai_affordable_tokens (
  p_price         public.ai_model_prices,
  p_prompt_tokens bigint,
  p_paise         bigint
)
  RETURNS bigint
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.ai_cached_answer (
  p_reservation     billing.ai_reservation,
  p_organization_id uuid,
  p_user_id         uuid,
  p_model           text,
  p_cache_key       text,
  p_stream          boolean,
  p_now             timestamp with time zone
)
  RETURNS billing.ai_reservation
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.ai_charge_cost (
  p_request public.ai_requests,
  p_paise   bigint
)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_paise bigint := p_paise;
  v_charge record;
  v_per_unit numeric;
  v_answer record;
begin
  if exists (select from public.usage_metrics m where m.organization_id = p_request.organization_id
               and m.metric = 'ai_spend_paise' and m.request_id = p_request.request_id) then
    v_paise := (billing.ai_settle_metric(p_request.organization_id, p_request.request_id, 'ai_spend_paise', p_paise,
                                         coalesce(p_request.reserved_paise, 0))).counted;
  end if;
  select c.* into v_charge from public.credit_charges c
  where c.organization_id = p_request.organization_id and c.request_id = p_request.request_id;
  if v_charge.id is not null then
    select e.credits_per_unit into v_per_unit from public.credit_events e where e.code = v_charge.event_code;
    v_answer := billing.settle_credits(p_request.organization_id, p_request.request_id,
                                       pg_catalog.ceil(v_paise * v_per_unit)::bigint);
    if not v_answer.charged then
      perform billing.settle_credits(p_request.organization_id, p_request.request_id,
                                     v_charge.charged + billing.available_credits(p_request.organization_id));
    end if;
  end if;
  return v_paise;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_cost_cap (
  p_reservation     billing.ai_reservation,
  p_organization_id uuid,
  p_price           public.ai_model_prices,
  p_spend_units     public.usage_window[],
  p_event           text,
  p_now             timestamp with time zone,
  p_timezone        text,
  p_features        jsonb,
  p_month_end       timestamp with time zone,
  p_prompt_tokens   integer,
  p_requested       integer
)
  RETURNS billing.ai_reservation
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.ai_cost_paise (
  p_price             public.ai_model_prices,
  p_prompt_tokens     bigint,
  p_completion_tokens bigint,
  p_cached_tokens     bigint                 DEFAULT 0
)
  RETURNS numeric
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
declare
  v_cached bigint := least(greatest(coalesce(p_cached_tokens, 0), 0), p_prompt_tokens);
begin
  return ((p_prompt_tokens - v_cached)::numeric * p_price.input_paise_per_million
          + v_cached::numeric * p_price.cached_input_paise_per_million
          + p_completion_tokens::numeric * p_price.output_paise_per_million) / 1000000;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_expire (
  p_request_id text
)
  RETURNS boolean
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.ai_model_price (
  p_model text,
  p_at    timestamp with time zone
)
  RETURNS public.ai_model_prices
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_price public.ai_model_prices;
begin
  select p.* into v_price from public.ai_model_prices p
  where p.model = p_model and p.effective_from <= p_at
  order by p.effective_from desc
  limit 1;
  return v_price;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_plan_windows (
  p_features jsonb,
  p_user_id  uuid,
  OUT        rate_metric text,
  OUT        rate_units public.usage_window[],
  OUT        rate_features jsonb,
  OUT        prompt_units public.usage_window[],
  OUT        token_units public.usage_window[],
  OUT        spend_units public.usage_window[]
)
  RETURNS record
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.ai_release (
  p_request_id text,
  p_status     public.ai_request_status DEFAULT 'upstream_error'::public.ai_request_status,
  p_error_code text                     DEFAULT NULL::text,
  p_latency_ms integer                  DEFAULT NULL::integer
)
  RETURNS boolean
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.ai_reserve (
  p_organization_id uuid,
  p_user_id         uuid,
  p_model           text,
  p_max_tokens      integer,
  p_prompt_tokens   integer,
  p_cache_key       text    DEFAULT NULL::text,
  p_stream          boolean DEFAULT false
)
  RETURNS billing.ai_reservation
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  c_default_max_tokens constant integer := 1024;
  c_reservation_ttl constant interval := interval '15 minutes';
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
    v_r := billing.ai_take_rate(v_r, p_organization_id, v_windows.rate_metric, v_windows.rate_units,
                                v_windows.rate_features, v_now, v_plan.timezone, v_month_end);
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
                                  price_effective_from, reserved_paise)
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
          case when v_r.allowed then v_now + c_reservation_ttl end,
          case when not v_r.allowed then v_now end,
          case when v_r.allowed then v_price.effective_from end,
          case when v_r.allowed then v_reserved_paise end);
  return v_r;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.ai_reserve_tokens (
  p_reservation     billing.ai_reservation,
  p_organization_id uuid,
  p_user_id         uuid,
  p_units           public.usage_window[],
  p_now             timestamp with time zone,
  p_timezone        text,
  p_features        jsonb,
  p_month_end       timestamp with time zone,
  p_prompt_tokens   integer,
  p_requested       integer,
  p_all_or_none     boolean                  DEFAULT false
)
  RETURNS billing.ai_reservation
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
                               p_timezone, p_features, p_reservation.reserved_tokens);
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
  -- The cost at the price the call was reserved at: counted against the spend cap, charged in credits.
  if v_request.price_effective_from is not null then
    select p.* into v_price from public.ai_model_prices p
    where p.model = v_request.model and p.effective_from = v_request.price_effective_from;
    v_cost := billing.ai_cost_paise(v_price, p_prompt_tokens, p_completion_tokens, p_cached_tokens);
    v_paise := billing.ai_charge_cost(v_request, pg_catalog.ceil(v_cost)::bigint);
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

CREATE OR REPLACE FUNCTION billing.ai_settle_metric (
  p_organization_id uuid,
  p_request_id      text,
  p_metric          text,
  p_actual          bigint,
  p_reserved        bigint,
  OUT               counted bigint,
  OUT               remaining bigint
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_cached_prompt_tokens_check" CHECK ((cached_prompt_tokens >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_charged_paise_check" CHECK ((charged_paise >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_cost_paise_check" CHECK ((cost_paise >= (0)::numeric));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_price_fkey" FOREIGN KEY (model, price_effective_from) REFERENCES public.ai_model_prices(model, effective_from) ON DELETE RESTRICT;

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_reserved_paise_check" CHECK ((reserved_paise >= 0));

CREATE INDEX ai_requests_price_idx ON public.ai_requests USING btree (model, price_effective_from);

CREATE POLICY "Signed-in users can read the AI model prices" ON "public"."ai_model_prices"
  FOR SELECT
  TO "authenticated"
  USING (true);

COMMENT ON COLUMN "public"."ai_requests"."charged_paise" IS 'cost_paise rounded up to whole paise: what the call was counted at against ai_spend_paise_per_<window> and charged in credits (the credit event''s credits per paisa).';

COMMENT ON COLUMN "public"."ai_requests"."cost_paise" IS 'What the call cost at its model''s price in effect when it was reserved (price_effective_from), in paise, exact: a call of a few hundred tokens costs a fraction of a paisa, and the sum of these is what the model provider bills.';

COMMENT ON COLUMN "public"."ai_requests"."reserved_paise" IS 'The reservation''s cost (prompt estimate and max_tokens at the model''s price), rounded up: what was held against the spend cap and in credits until the settlement.';

COMMENT ON FUNCTION "billing"."ai_reserve_tokens"(billing.ai_reservation, uuid, uuid, public.usage_window[], timestamp with time zone, text, jsonb, timestamp
  with time zone, integer, integer, boolean) IS 'Step 5 of billing.ai_reserve: reserve prompt estimate + max_tokens (capped to what is left) of groq_tokens, or deny ''tokens''; reports the token window (token_limit, token_remaining, token_reset_seconds).';

COMMENT ON TABLE "public"."ai_model_prices" IS 'AI model prices in paise per million input, output and cached input tokens, each from effective_from until the model''s next row.';

COMMENT ON TABLE "public"."ai_requests" IS 'The AI gateway''s log: one row per request, with its reservation, usage, cost and outcome.';

REVOKE ALL ON FUNCTION "billing"."adjust_charge"(text, uuid, text, bigint) FROM "service_role";

GRANT EXECUTE ON FUNCTION "billing"."adjust_charge"(text, uuid, text, bigint) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_affordable_tokens"(public.ai_model_prices, bigint, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_affordable_tokens"(public.ai_model_prices, bigint, bigint) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_charge_cost"(public.ai_requests, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_charge_cost"(public.ai_requests, bigint) TO "service_role";

REVOKE ALL
  ON FUNCTION "billing"."ai_cost_cap"(billing.ai_reservation, uuid, public.ai_model_prices, public.usage_window[], text, timestamp WITH time zone, text, jsonb, timestamp
    WITH time zone, integer, integer)
  FROM PUBLIC;

GRANT EXECUTE
  ON FUNCTION "billing"."ai_cost_cap"(billing.ai_reservation, uuid, public.ai_model_prices, public.usage_window[], text, timestamp WITH time zone, text, jsonb, timestamp
    WITH time zone, integer, integer)
  TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_cost_paise"(public.ai_model_prices, bigint, bigint, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_cost_paise"(public.ai_model_prices, bigint, bigint, bigint) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_model_price"(text, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_model_price"(text, timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_plan_windows"(jsonb, uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_plan_windows"(jsonb, uuid) TO "service_role";

REVOKE ALL
  ON FUNCTION "billing"."ai_reserve_tokens"(billing.ai_reservation, uuid, uuid, public.usage_window[], timestamp WITH time zone, text, jsonb, timestamp
    WITH time zone, integer, integer, boolean)
  FROM PUBLIC;

GRANT EXECUTE
  ON FUNCTION "billing"."ai_reserve_tokens"(billing.ai_reservation, uuid, uuid, public.usage_window[], timestamp WITH time zone, text, jsonb, timestamp
    WITH time zone, integer, integer, boolean)
  TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_settle"(text, integer, integer, integer, public.ai_request_status, jsonb, integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_settle"(text, integer, integer, integer, public.ai_request_status, jsonb, integer) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."ai_settle_metric"(uuid, text, text, bigint, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_settle_metric"(uuid, text, text, bigint, bigint) TO "service_role";

REVOKE ALL ON TABLE "public"."ai_model_prices" FROM "authenticated";

GRANT SELECT ON TABLE "public"."ai_model_prices" TO "authenticated";

REVOKE ALL ON TABLE "public"."ai_model_prices" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."ai_model_prices" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."ai_model_prices" TO "service_role";
