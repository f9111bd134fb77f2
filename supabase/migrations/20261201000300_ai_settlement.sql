-- =================================================================================================
-- supabill: AI settlement: an AI call that reached the model is always paid for
--
--   billing.ai_expire(request_id)
--     a reservation never settled (the function crashed, lost the database, or its settlement was
--     refused) expires counted at its reserved amount: status 'expired', counted_tokens the
--     reserved tokens, the prompt and the tokens stay counted (their usage rows become settled).
--     Nothing is given back: the upstream may well have answered, and Groq bills that call.
--   billing.ai_release_stale_reservations()
--     the pg_cron job `ai-release-stale-reservations` (its name is kept) now expires every stale
--     reservation through billing.ai_expire instead of releasing it.
--   billing.ai_release(request_id, status, ...)
--     is for failures before the upstream answered only: it no longer takes status 'expired'.
--
-- An upgrade of the AI gateway module (20261120001000_ai_gateway.sql): replaces two of its
-- functions, adds one, and rewords the status type's description.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

comment on type public.ai_request_status is 'Where an AI request stands: pending (reserved), completed, cached, denied, upstream_error, upstream_timeout, client_closed, expired (never settled: counted at its reservation).';


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- None: the rows keep their shape; an expired row now has counted_tokens = reserved_tokens.


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Expire one reservation never settled, counted at what it reserved: the request's usage rows
 * (ai_prompts and groq_tokens, still 'counted') become 'settled' at their reserved amounts, so
 * the counters keep the prompt and every reserved token; the log row becomes 'expired'
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
      completed_at = v_now,
      expires_at = null
  where r.id = v_request.id;
  return true;
end;
$$;
revoke execute on function billing.ai_expire(text) from public, anon, authenticated;
grant execute on function billing.ai_expire(text) to service_role;

/**
 * Give a reservation back when the upstream never answered: it failed (upstream_error), timed
 * out (upstream_timeout), or the client left before the call was made (client_closed).
 * release_usage returns the prompt and the reserved tokens; the per-user rate count stays (the
 * call was attempted). Once the upstream has answered, the call is settled (billing.ai_settle)
 * or, if that never happens, expires counted (billing.ai_expire): never released. Idempotent:
 * returns false when the request is no longer pending. service_role only.
 */
create or replace function billing.ai_release(
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
  update public.ai_requests r
  set status = p_status,
      error_code = coalesce(p_error_code, p_status::text),
      latency_ms = p_latency_ms,
      counted_tokens = 0,
      completed_at = billing.now(),
      expires_at = null
  where r.id = v_request.id;
  return true;
end;
$$;
revoke execute on function billing.ai_release(text, public.ai_request_status, text, integer) from public, anon, authenticated;
grant execute on function billing.ai_release(text, public.ai_request_status, text, integer) to service_role;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: unchanged.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None: the gateway's functions are service-only.


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

/**
 * Expire reservations never settled (the function crashed, lost the database mid-call, or its
 * settlement was refused), counted at their reserved amounts (billing.ai_expire): every pending
 * ai_requests row past its expires_at (by billing.now()), at most p_limit per run, oldest first,
 * skipping rows a settling call holds. Returns how many expired. (The name is the released
 * one; pg_cron's `ai-release-stale-reservations` keeps calling it through its logged job.)
 */
create or replace function billing.ai_release_stale_reservations(p_limit integer default 1000)
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
