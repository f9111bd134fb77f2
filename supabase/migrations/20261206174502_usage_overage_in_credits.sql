-- usage_overage_in_credits: drafted by `npm run db:diff -- usage_overage_in_credits` from the difference between the database the
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
-- What this migration does: usage past a quota paid in credits. A plan with
-- `<metric>_overage_event` lets increment_usage, when it would deny, count the call past the hour,
-- day and month limits and charge the units past the limit to that credit event in the same
-- transaction (billing.count_usage_past_limit); usage_metrics remembers the charge
-- (credit_request_id, credit_units) so release_usage gives the credits back and settle_usage
-- lower gives back those of the units past the limit.
--
-- Why the drops: increment_usage gains a trailing OUT column, credits_charged, and
-- apply_usage_delta a trailing parameter, p_past_limit (default false); Postgres changes neither
-- a function's OUT columns nor its argument list in place. Callers by name or position keep
-- working: the new column is last and the new parameter has a default. Nothing else depends on
-- the two functions (plpgsql bodies are not tracked), and the transaction recreates them with
-- their grants before anyone can call them. The new usage_metrics columns are nullable, so no
-- backfill: existing rows were never paid in credits.

SET local check_function_bodies = off;

DROP FUNCTION "billing"."apply_usage_delta"(uuid, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint);

DROP FUNCTION "public"."increment_usage"(uuid, text, integer, text);

ALTER TABLE "public"."usage_metrics"
  ADD COLUMN "credit_request_id" text;

ALTER TABLE "public"."usage_metrics"
  ADD COLUMN "credit_units" bigint;

CREATE OR REPLACE FUNCTION billing.apply_usage_delta (
  p_organization_id uuid,
  p_metric          text,
  p_units           public.usage_window[],
  p_at              timestamp with time zone,
  p_timezone        text,
  p_features        jsonb,
  p_delta           bigint,
  p_past_limit      boolean                            DEFAULT false,
  OUT               allowed boolean,
  OUT               used bigint,
  OUT               limit_amount bigint,
  OUT               remaining bigint,
  OUT               resets_at timestamp with time zone
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_local timestamp := p_at at time zone p_timezone;
  v_n integer := pg_catalog.cardinality(p_units);
  v_starts timestamptz[] := '{}'::timestamptz[];
  v_ends timestamptz[] := '{}'::timestamptz[];
  v_limits bigint[] := '{}'::bigint[];
  v_counts bigint[] := '{}'::bigint[];
  v_inserted boolean[] := '{}'::boolean[];
  v_count bigint;
  v_was_inserted boolean;
  v_done integer := 0;
begin
  for i in 1 .. v_n loop
    v_starts[i] := pg_catalog.date_trunc(p_units[i]::text, v_local) at time zone p_timezone;
    v_ends[i] := (pg_catalog.date_trunc(p_units[i]::text, v_local) + ('1 ' || p_units[i]::text)::interval)
                 at time zone p_timezone;
    -- A window the features do not name allows nothing (a null value is unlimited).
    v_limits[i] := case when p_features ? (p_metric || '_per_' || p_units[i]::text)
                        then (p_features ->> (p_metric || '_per_' || p_units[i]::text))::bigint
                        else 0 end;
  end loop;

  for i in 1 .. v_n loop
    exit when p_delta > 0 and p_delta > coalesce(v_limits[i], p_delta) and not (p_past_limit and p_units[i] <> 'minute');
    insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
    values (p_organization_id, p_metric, p_units[i], v_starts[i], greatest(p_delta, 0), pg_catalog.now())
    on conflict (organization_id, metric, window_unit, window_start) do update
      set count = greatest(q.count + p_delta, 0),
          updated_at = excluded.updated_at
      where p_delta <= 0 or v_limits[i] is null or q.count + p_delta <= v_limits[i]
         or (p_past_limit and p_units[i] <> 'minute')
    returning q.count, q.xmax = 0 into v_count, v_was_inserted;
    exit when not found;
    v_counts[i] := v_count;
    v_inserted[i] := v_was_inserted;
    v_done := i;
  end loop;
  allowed := v_done = v_n;

  if not allowed then
    -- Put back the windows that accepted: rows this call created go, the others get their count back.
    for i in 1 .. v_done loop
      if v_inserted[i] then
        delete from public.usage_quotas q
        where q.organization_id = p_organization_id and q.metric = p_metric
          and q.window_unit = p_units[i] and q.window_start = v_starts[i];
      else
        update public.usage_quotas q
        set count = q.count - p_delta
        where q.organization_id = p_organization_id and q.metric = p_metric
          and q.window_unit = p_units[i] and q.window_start = v_starts[i]
        returning q.count into v_count;
      end if;
      v_counts[i] := case when v_inserted[i] then 0 else v_count end;
    end loop;
    -- The windows not reached: their counts as they stand.
    for i in v_done + 1 .. v_n loop
      select q.count into v_count
      from public.usage_quotas q
      where q.organization_id = p_organization_id and q.metric = p_metric
        and q.window_unit = p_units[i] and q.window_start = v_starts[i];
      v_counts[i] := coalesce(v_count, 0);
      v_count := null;
    end loop;
  elsif p_delta > 0 then
    -- Quota alerts: only a change across a whole percent of a limit can cross a threshold.
    for i in 1 .. v_n loop
      if v_limits[i] > 0
         and pg_catalog.floor(v_counts[i] * 100.0 / v_limits[i])
             > pg_catalog.floor((v_counts[i] - p_delta) * 100.0 / v_limits[i]) then
        perform billing.queue_quota_alerts(p_organization_id, p_metric, p_units[i], v_starts[i], v_ends[i],
                                           v_counts[i] - p_delta, v_counts[i], v_limits[i]);
      end if;
    end loop;
  end if;

  for i in 1 .. v_n loop
    if i = 1 or (v_limits[i] is not null and (limit_amount is null or v_limits[i] - v_counts[i] < remaining)) then
      used := v_counts[i];
      limit_amount := v_limits[i];
      remaining := v_limits[i] - v_counts[i];
      resets_at := v_ends[i];
    end if;
  end loop;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.count_usage_past_limit (
  p_organization_id   uuid,
  p_metric            text,
  p_units             public.usage_window[],
  p_at                timestamp with time zone,
  p_timezone          text,
  p_features          jsonb,
  p_amount            bigint,
  p_event             text,
  p_credit_request_id text,
  OUT                 allowed boolean,
  OUT                 used bigint,
  OUT                 limit_amount bigint,
  OUT                 remaining bigint,
  OUT                 resets_at timestamp with time zone,
  OUT                 units bigint,
  OUT                 credits bigint
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_counted record;
  v_charge record;
begin
  allowed := false;
  if not exists (select from public.credit_events e where e.code = p_event and e.active) then
    return;
  end if;
  begin
    v_counted := billing.apply_usage_delta(p_organization_id, p_metric, p_units, p_at, p_timezone, p_features,
                                           p_amount, p_past_limit => true);
    if not v_counted.allowed then
      -- A minute window refused: apply_usage_delta changed nothing.
      return;
    end if;
    units := least(p_amount, greatest(-v_counted.remaining, 0));
    credits := 0;
    if units > 0 then
      v_charge := billing.consume_credits(p_organization_id, p_event, units, p_credit_request_id);
      if not v_charge.charged then
        raise exception 'usage past the limit not paid' using errcode = 'SB001';
      end if;
      credits := v_charge.credits;
    end if;
  exception when sqlstate 'SB001' then
    units := null;
    credits := null;
    return;
  end;
  allowed := true;
  used := v_counted.used;
  limit_amount := v_counted.limit_amount;
  remaining := case when v_counted.remaining < 0 then 0 else v_counted.remaining end;
  resets_at := v_counted.resets_at;
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
      perform public.release_credits(p_organization_id, v_metric.credit_request_id);
    end if;
    update public.usage_metrics m
    set state = 'released', amount = 0, credit_units = case when m.credit_units is not null then 0 end
    where m.id = v_metric.id;
    v_released := v_released + 1;
  end loop;
  return v_released;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.settle_usage (
  p_organization_id uuid,
  p_request_id      text,
  p_actual_amount   bigint,
  p_metric          text                               DEFAULT NULL::text,
  OUT               allowed boolean,
  OUT               used bigint,
  OUT               limit_amount bigint,
  OUT               remaining bigint,
  OUT               resets_at timestamp with time zone
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_metric record;
  v_plan record;
  v_answer record;
  v_matches integer;
  v_units bigint;
  v_charge record;
begin
  if p_actual_amount is null or p_actual_amount < 0 then
    raise exception 'settle_usage: actual amount must be zero or more, got %', coalesce(p_actual_amount::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  select count(*) into v_matches
  from public.usage_metrics m
  where m.organization_id = p_organization_id and m.request_id = p_request_id
    and (p_metric is null or m.metric = p_metric);
  if v_matches = 0 then
    raise exception 'settle_usage: no counted request % for organization %', p_request_id, p_organization_id
      using errcode = 'no_data_found';
  elsif v_matches > 1 then
    raise exception 'settle_usage: request % was counted under several metrics: name one', p_request_id
      using errcode = 'invalid_parameter_value';
  end if;

  select m.* into v_metric
  from public.usage_metrics m
  where m.organization_id = p_organization_id and m.request_id = p_request_id
    and (p_metric is null or m.metric = p_metric)
  for update;
  if v_metric.state = 'released' then
    raise exception 'settle_usage: request % was released', p_request_id
      using errcode = 'invalid_parameter_value';
  end if;

  v_plan := billing.effective_plan(p_organization_id, billing.now());
  v_answer := billing.apply_usage_delta(p_organization_id, v_metric.metric, v_metric.window_units,
                                        v_metric.occurred_at, v_plan.timezone, v_plan.features,
                                        p_actual_amount - v_metric.amount);
  if v_answer.allowed then
    v_units := v_metric.credit_units;
    if v_units > 0 and p_actual_amount < v_metric.amount then
      v_units := greatest(v_units - (v_metric.amount - p_actual_amount), 0);
      select c.credits, c.quantity into v_charge from public.credit_charges c
      where c.organization_id = p_organization_id and c.request_id = v_metric.credit_request_id;
      perform billing.settle_credits(p_organization_id, v_metric.credit_request_id,
                                     pg_catalog.ceil(v_charge.credits::numeric * v_units / v_charge.quantity)::bigint);
    end if;
    update public.usage_metrics m
    set amount = p_actual_amount, state = 'settled', credit_units = v_units,
        used = v_answer.used, limit_amount = v_answer.limit_amount, resets_at = v_answer.resets_at
    where m.id = v_metric.id;
  end if;
  allowed := v_answer.allowed;
  used := v_answer.used;
  limit_amount := v_answer.limit_amount;
  remaining := v_answer.remaining;
  resets_at := v_answer.resets_at;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.usage_credit_request_id (
  p_metric  text,
  p_request text,
  p_recount boolean
)
  RETURNS text
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_id text := 'usage:' || p_metric || ':' || p_request;
begin
  if p_recount then
    v_id := v_id || ':' || gen_random_uuid()::text;
  end if;
  if length(v_id) > 200 then
    v_id := 'usage:' || pg_catalog.md5(v_id);
  end if;
  return v_id;
end;
$function$;

CREATE OR REPLACE FUNCTION public.increment_usage (
  p_organization_id uuid,
  p_metric          text,
  p_amount          integer                            DEFAULT 1,
  p_request_id      text                               DEFAULT NULL::text,
  OUT               allowed boolean,
  OUT               used bigint,
  OUT               limit_amount bigint,
  OUT               remaining bigint,
  OUT               resets_at timestamp with time zone,
  OUT               credits_charged bigint
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_plan record;
  v_unit public.usage_window;
  v_units public.usage_window[] := '{}'::public.usage_window[];
  v_metric_id uuid;
  v_recount boolean := false;
  v_answer record;
  v_credit_request_id text;
  v_credit_units bigint;
  v_paid record;
begin
  credits_charged := 0;
  if p_amount is null or p_amount <= 0 then
    raise exception 'increment_usage: amount must be a positive integer, got %', coalesce(p_amount::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_metric is null or p_metric !~ '^[a-z][a-z0-9_]{0,62}$' or p_metric ~ '_per_' then
    raise exception 'increment_usage: metric name "%" is not valid: use lowercase snake_case such as ai_prompts (the plan key is <metric>_per_<window>)', p_metric
      using errcode = 'invalid_parameter_value';
  end if;
  if p_request_id is not null and (length(p_request_id) = 0 or length(p_request_id) > 200) then
    raise exception 'increment_usage: request id must be 1 to 200 characters'
      using errcode = 'invalid_parameter_value';
  end if;

  v_plan := billing.effective_plan(p_organization_id, v_now);
  if v_plan.organization_id is null then
    raise exception 'increment_usage: unknown organization %', p_organization_id
      using errcode = 'no_data_found';
  end if;

  foreach v_unit in array '{minute,hour,day,month}'::public.usage_window[] loop
    if v_plan.features ? (p_metric || '_per_' || v_unit::text) then
      v_units := v_units || v_unit;
    end if;
  end loop;
  if v_units = '{}' then
    -- Not in the plan: denied with limit 0.
    allowed := false;
    used := 0;
    limit_amount := 0;
    remaining := 0;
    return;
  end if;

  if p_request_id is not null then
    -- Claim the request id first: a concurrent duplicate waits here, then sees the first answer.
    insert into public.usage_metrics (organization_id, metric, amount, request_id, window_units, occurred_at)
    values (p_organization_id, p_metric, p_amount, p_request_id, v_units, v_now)
    on conflict (organization_id, metric, request_id) where request_id is not null do nothing
    returning id into v_metric_id;
    if v_metric_id is null then
      -- A retry: the first answer, unless that request was released since (then it counts anew).
      select m.id, m.state = 'released', m.used, m.limit_amount,
             case when m.limit_amount < m.used then 0 else m.limit_amount - m.used end, m.resets_at, m.credit_request_id
      into v_metric_id, v_recount, used, limit_amount, remaining, resets_at, v_credit_request_id
      from public.usage_metrics m
      where m.organization_id = p_organization_id and m.metric = p_metric and m.request_id = p_request_id
      for update;
      if not v_recount then
        allowed := true;
        if v_credit_request_id is not null then
          select c.charged into credits_charged from public.credit_charges c
          where c.organization_id = p_organization_id and c.request_id = v_credit_request_id;
        end if;
        return;
      end if;
    end if;
  end if;

  v_answer := billing.apply_usage_delta(p_organization_id, p_metric, v_units, v_now, v_plan.timezone,
                                        v_plan.features, p_amount);
  allowed := v_answer.allowed;
  used := v_answer.used;
  limit_amount := v_answer.limit_amount;
  -- Never below 0 (a count past the limit: paid in credits, or a plan with a lower limit).
  remaining := case when v_answer.remaining < 0 then 0 else v_answer.remaining end;
  resets_at := v_answer.resets_at;
  v_credit_request_id := null;
  if not allowed and v_plan.features ? (p_metric || '_overage_event') then
    -- Past the limit: paid in credits if the organization has them.
    if v_metric_id is null then
      v_metric_id := gen_random_uuid();
    end if;
    v_credit_request_id := billing.usage_credit_request_id(p_metric, coalesce(p_request_id, v_metric_id::text), v_recount);
    v_paid := billing.count_usage_past_limit(p_organization_id, p_metric, v_units, v_now, v_plan.timezone,
                                             v_plan.features, p_amount, v_plan.features ->> (p_metric || '_overage_event'),
                                             v_credit_request_id);
    if v_paid.allowed then
      allowed := true;
      used := v_paid.used;
      limit_amount := v_paid.limit_amount;
      remaining := v_paid.remaining;
      resets_at := v_paid.resets_at;
      credits_charged := v_paid.credits;
      if v_paid.units > 0 then
        v_credit_units := v_paid.units;
      else
        v_credit_request_id := null;
      end if;
    else
      v_credit_request_id := null;
    end if;
  end if;
  if not allowed then
    -- Nothing counted: a fresh claim goes; a released request stays released.
    delete from public.usage_metrics m where m.id = v_metric_id and p_request_id is not null and not v_recount;
  elsif p_request_id is not null then
    update public.usage_metrics m
    set amount = p_amount, state = 'counted', window_units = v_units, occurred_at = v_now,
        used = increment_usage.used, limit_amount = increment_usage.limit_amount, resets_at = increment_usage.resets_at,
        credit_request_id = coalesce(v_credit_request_id, m.credit_request_id),
        credit_units = case when v_credit_request_id is not null then v_credit_units else m.credit_units end
    where m.id = v_metric_id;
  else
    insert into public.usage_metrics
      (id, organization_id, metric, amount, window_units, occurred_at, used, limit_amount, resets_at,
       credit_request_id, credit_units)
    values (coalesce(v_metric_id, gen_random_uuid()), p_organization_id, p_metric, p_amount, v_units, v_now,
            increment_usage.used, increment_usage.limit_amount, increment_usage.resets_at, v_credit_request_id,
            v_credit_units);
  end if;
end;
$function$;

REVOKE ALL ON FUNCTION "public"."increment_usage"(uuid, text, integer, text) FROM PUBLIC, "anon", "authenticated";

ALTER TABLE "public"."usage_metrics"
  ADD CONSTRAINT "usage_metrics_credit_units_check" CHECK ((credit_units >= 0));

COMMENT ON FUNCTION "public"."increment_usage"(uuid, text, integer, text) IS 'Counts usage in every window of a metric, all or nothing; a repeated request id is counted once; past a limit, a plan''s <metric>_overage_event pays in credits (credits_charged). service_role only.';

REVOKE ALL ON FUNCTION "billing"."apply_usage_delta"(uuid, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, boolean) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."apply_usage_delta"(uuid, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, boolean) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."count_usage_past_limit"(uuid, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."count_usage_past_limit"(uuid, text, public.usage_window[], timestamp WITH time zone, text, jsonb, bigint, text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."usage_credit_request_id"(text, text, boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION "public"."increment_usage"(uuid, text, integer, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."increment_usage"(uuid, text, integer, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."increment_usage"(uuid, text, integer, text) TO "service_role";
