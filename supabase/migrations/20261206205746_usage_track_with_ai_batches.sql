-- What this migration does: joins two changes made side by side, usage-track and AI batches, in
-- billing.validate_plan_features: a plan's features may carry both `client_metrics` (the metrics a
-- signed-in user may report through usage-track) and `ai_batch` (true or false). No data change.
--
-- usage_track_with_ai_batches: drafted by `npm run db:diff -- usage_track_with_ai_batches` from the difference between the database the
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
    elsif v_key = 'client_metrics' then
      -- The metrics a signed-in user may report through usage-track (billing.track_usage).
      if pg_catalog.jsonb_typeof(v_value) <> 'array'
         or exists (select from pg_catalog.jsonb_array_elements(v_value) m
                    where pg_catalog.jsonb_typeof(m) <> 'string' or m #>> '{}' !~ '^[a-z][a-z0-9_]{0,62}$'
                       or m #>> '{}' ~ '_per_') then
        raise exception 'plan features key "client_metrics": the metrics signed-in users may report must be an array of metric names (lowercase snake_case, such as ["exports"]), got %', v_value
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
