-- What this migration does: joins two changes made side by side, AI batches and the customer
-- emails, in billing.ai_reserve: a reservation (interactive or for a batch request) takes its spend
-- window without queueing a quota alert (p_is_reservation); the settlement alerts on settled use.
-- No data change.
--
-- ai_batches_with_customer_emails: drafted by `npm run db:diff -- ai_batches_with_customer_emails` from the difference between the database the
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
$function$;
