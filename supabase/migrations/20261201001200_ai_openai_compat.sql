-- =================================================================================================
-- supabill: AI gateway, OpenAI compatibility: the token quota's window in the reservation
--
--   billing.ai_reservation (three attributes added at the end)
--     token_limit, token_remaining, token_reset_seconds: the organization's groq_tokens quota
--     (its tightest window) as the reservation saw it, so ai-chat can send OpenAI's
--     x-ratelimit-*-tokens headers next to the per-user request headers. Set whenever the
--     reservation reached the token step: every call that goes upstream (what is left after its
--     reservation) and a 'tokens' denial (as it stands); null otherwise (a cache hit spends no
--     tokens and never locks the organization's token rows; an earlier denial never got there) and
--     for an unlimited quota.
--   billing.ai_reserve_tokens (replaced)
--     fills them; what it reserves and refuses is unchanged.
--
-- An upgrade of the AI gateway module (20261120001000_ai_gateway.sql).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

alter type billing.ai_reservation
  add attribute token_limit bigint,
  add attribute token_remaining bigint,
  add attribute token_reset_seconds integer;
comment on type billing.ai_reservation is 'What billing.ai_reserve answers: allowed or the denial, request id, plan, capped max_tokens, reserved tokens, a cached answer, the per-user rate window, the refusing limit, and the token quota''s window (token_limit, token_remaining, token_reset_seconds; null when the token step was not reached or the quota is unlimited).';


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- None.


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Step 5 of billing.ai_reserve: the token reservation. Locks the token windows (a zero change),
 * sees what is left, caps max_tokens to it, then takes prompt estimate + max_tokens (it fits:
 * the rows are locked). Denial 'tokens' when not even a short answer fits. Reports the tightest
 * token window: its limit, what is left (after this reservation; on a denial as it stands) and
 * the seconds until it resets.
 */
create or replace function billing.ai_reserve_tokens(
  p_reservation billing.ai_reservation,
  p_organization_id uuid,
  p_user_id uuid,
  p_units public.usage_window[],
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
  if v_available < least(c_min_answer_tokens, p_requested) then
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
$$;
revoke execute on function billing.ai_reserve_tokens(billing.ai_reservation, uuid, uuid, public.usage_window[],
  timestamptz, text, jsonb, timestamptz, integer, integer) from public;
grant execute on function billing.ai_reserve_tokens(billing.ai_reservation, uuid, uuid, public.usage_window[],
  timestamptz, text, jsonb, timestamptz, integer, integer) to service_role;
comment on function billing.ai_reserve_tokens(billing.ai_reservation, uuid, uuid, public.usage_window[],
  timestamptz, text, jsonb, timestamptz, integer, integer) is 'Step 5 of billing.ai_reserve: reserve prompt estimate + max_tokens (capped to what is left) of groq_tokens, or deny ''tokens''; reports the token window (token_limit, token_remaining, token_reset_seconds).';


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None: ai-chat's model list reads public.get_entitlements as the user (features -> ai_models).
