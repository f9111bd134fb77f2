-- What this migration does: public.ai_batch_requests gains created_at (as every public table has),
-- and billing.ai_batch_run_failed and billing.submit_ai_batch cast explicitly (supabase db lint).
--
-- ai_batches_lint_and_created_at: drafted by `npm run db:diff -- ai_batches_lint_and_created_at` from the difference between the database the
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

ALTER TABLE "public"."ai_batch_requests"
  ADD COLUMN "created_at" timestamp WITH time zone NOT NULL DEFAULT now();

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
$function$;
