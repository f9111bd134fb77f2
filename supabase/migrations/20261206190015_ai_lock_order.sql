-- ai_lock_order: drafted by `npm run db:diff -- ai_lock_order` from the difference between the database the
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
-- What this migration does: one lock order for the AI gateway (the banner of
-- supabase/schemas/10_ai_gateway.sql): ai_spend_paise windows, then groq_tokens windows, then the
-- organization's credit lock. billing.ai_reserve already locked the spend cap's windows before the
-- token windows, but billing.ai_settle settled groq_tokens first and ai_spend_paise second (in
-- billing.ai_charge_cost), so concurrent reservations and settlements of one organization with a
-- spend cap and a token quota deadlocked (40P01; a review saw 128 of 240 pairs fail). ai_settle
-- now settles the spend cap, then the tokens, then the credits; ai_charge_cost keeps the credit
-- charge alone. billing.release_usage releases the credits after every metric's windows (it took
-- the credit lock between two metrics of one request). No data changes.

SET local check_function_bodies = off;

CREATE OR REPLACE FUNCTION billing.ai_charge_cost (
  p_request public.ai_requests,
  p_paise   bigint
)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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

CREATE OR REPLACE FUNCTION billing.release_usage (
  p_organization_id uuid,
  p_request_id      text
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_metric record;
  v_tz text;
  v_released integer := 0;
  v_credit_request_ids text[] := '{}'::text[];
  v_credit_request_id text;
begin
  if p_organization_id is null or p_request_id is null then
    raise exception 'release_usage: organization id and request id are required'
      using errcode = 'invalid_parameter_value';
  end if;
  select o.timezone into v_tz from public.organizations o where o.id = p_organization_id;
  if not found then
    raise exception 'release_usage: unknown organization %', p_organization_id using errcode = 'no_data_found';
  end if;
  for v_metric in
    select m.* from public.usage_metrics m
    where m.organization_id = p_organization_id and m.request_id = p_request_id and m.state <> 'released'
    order by m.metric
    for update
  loop
    perform billing.apply_usage_delta(p_organization_id, v_metric.metric, v_metric.window_units,
                                      v_metric.occurred_at, v_tz, '{}'::jsonb, -v_metric.amount);
    if v_metric.credit_units > 0 then
      v_credit_request_ids := v_credit_request_ids || v_metric.credit_request_id;
    end if;
    update public.usage_metrics m
    set state = 'released', amount = 0, credit_units = case when m.credit_units is not null then 0 end
    where m.id = v_metric.id;
    v_released := v_released + 1;
  end loop;
  -- The credits after every window: the credit lock comes last.
  foreach v_credit_request_id in array v_credit_request_ids loop
    perform public.release_credits(p_organization_id, v_credit_request_id);
  end loop;
  return v_released;
end;
$function$;
