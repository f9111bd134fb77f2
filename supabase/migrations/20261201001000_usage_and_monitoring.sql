-- =================================================================================================
-- supabill: usage for the browser, quota alerts, operators' monitoring views, plan embedding
--
--   public.get_usage(org)                                      (members and service_role)
--     for every metered limit of the plan in effect (`<metric>_per_<window>`), the current window:
--     used, limit (null: unlimited), remaining, percent, window start and reset. A thin wrapper
--     over billing.get_usage.
--   quota_threshold notifications
--     billing.apply_usage_delta (replaced; every usage change goes through it) queues one
--     'quota_threshold' notification when a counted call takes a window to or past a threshold
--     of its limit (billing_settings.quota_alert_thresholds, default 75, 90, 100 %), for the
--     windows in billing_settings.quota_alert_windows (default day and month): once per
--     organization, metric, window and threshold (dedupe_key), whatever the concurrency.
--   billing.signature_failures, billing.record_signature_failure(provider, count)
--     webhook deliveries refused for a missing or wrong signature, counted per provider and hour
--     (no bodies are kept); the webhook front calls it.
--   Monitoring views in schema billing (service_role and the DBA only), each saying what to do
--     about a row: failed_deliveries, signature_failures_hourly, unapplied_payments,
--     overdue_orders, job_problems, notification_problems, provider_action_problems,
--     quota_pressure.
--   public.billing_plans(subscriptions), public.pending_plan(subscriptions)
--     computed relationships: subscriptions has two foreign keys to billing_plans (plan_id and
--     pending_plan_id), so PostgREST cannot choose for `select=*,billing_plans(*)` (PGRST201).
--     A function named after the table, taking a subscriptions row, overrides both detected
--     relationships (PostgREST keys a relationship by table and target name, and a computed one
--     with the same key prevails): `billing_plans` is the plan (plan_id), `pending_plan` the
--     scheduled downgrade. The foreign keys stay as they are.
--
-- An upgrade of the usage module (20261120000400_usage.sql) and of the webhook path.
--
-- Sections, in order: 1. types; 2. tables; 3. private functions; 4. policies; 5. public
-- functions; 6. jobs and schedules.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- billing_settings: quota alert thresholds and windows
-- -------------------------------------------------------------------------------------------------

alter table public.billing_settings
  add column quota_alert_thresholds integer[] not null default '{75,90,100}'
    constraint billing_settings_quota_alert_thresholds_range
      check (pg_catalog.cardinality(quota_alert_thresholds) <= 10
             and pg_catalog.array_position(quota_alert_thresholds, null) is null
             and 1 <= all (quota_alert_thresholds) and 100 >= all (quota_alert_thresholds)),
  add column quota_alert_windows public.usage_window[] not null default '{day,month}'
    constraint billing_settings_quota_alert_windows_no_null
      check (pg_catalog.array_position(quota_alert_windows, null) is null);
comment on column public.billing_settings.quota_alert_thresholds is
  'Percentages of a quota window''s limit (1 to 100) at which a quota_threshold notification is queued, once per window. Default {75,90,100}; empty: no alerts.';
comment on column public.billing_settings.quota_alert_windows is
  'The windows that raise quota alerts. Default {day,month}: minute and hour windows reset before anyone could act on an email.';

-- -------------------------------------------------------------------------------------------------
-- billing.signature_failures (private)
-- -------------------------------------------------------------------------------------------------

/**
 * Webhook deliveries refused because their signature was missing or did not match, counted per
 * provider and hour (UTC). Nothing of the request is kept: a flood of forged deliveries costs one
 * counter row per provider and hour. Private (schema billing): service_role reads it.
 */
create table billing.signature_failures (
  provider public.payment_provider not null,
  hour timestamptz not null,
  count bigint not null default 0 check (count >= 0),
  last_at timestamptz not null default now(),
  primary key (provider, hour)
);
revoke all on billing.signature_failures from public;
grant select on billing.signature_failures to service_role;


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- Quota alerts
-- -------------------------------------------------------------------------------------------------

/**
 * Queues a 'quota_threshold' notification for each alert threshold (billing_settings) that a
 * change of one window's count from p_before to p_after crossed upwards (p_before below t % of
 * p_limit, p_after at or above it), when the window is one that alerts. A change that crosses two
 * thresholds at once queues both (each is its own email: "75 %" then "90 %"). Deduplicated per
 * organization, metric, window, window start and threshold, so a count that falls back and rises
 * again (a reservation settled lower) does not alert twice; the next window alerts anew. The
 * AI gateway's per-user request counters (`ai_requests_u_<user>`) are a rate limit of one
 * person, not the organization's quota: they never alert. The payload names the plan in effect
 * (plan_code) for the email. Returns the notifications queued.
 */
create function billing.queue_quota_alerts(
  p_organization_id uuid,
  p_metric text,
  p_unit public.usage_window,
  p_window_start timestamptz,
  p_resets_at timestamptz,
  p_before bigint,
  p_after bigint,
  p_limit bigint
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_n integer;
  v_plan_code text;
begin
  if p_metric ~ '^ai_requests_u_[0-9a-f]{32}$' or p_limit is null or p_limit <= 0
     or not exists (select 1 from public.billing_settings s, pg_catalog.unnest(s.quota_alert_thresholds) as t(threshold)
                    where s.id and p_unit = any (s.quota_alert_windows)
                      and p_before::numeric * 100 < t.threshold::numeric * p_limit
                      and p_after::numeric * 100 >= t.threshold::numeric * p_limit) then
    return 0;
  end if;
  -- The plan whose limit was reached, so the email can name it.
  v_plan_code := (billing.effective_plan(p_organization_id, billing.now())).plan_code;
  insert into public.notifications (organization_id, kind, payload, dedupe_key)
  select p_organization_id, 'quota_threshold',
         pg_catalog.jsonb_build_object(
           'metric', p_metric, 'window', p_unit, 'threshold', t.threshold, 'used', p_after, 'limit', p_limit,
           'window_start', p_window_start, 'resets_at', p_resets_at, 'plan_code', v_plan_code),
         pg_catalog.format('quota_threshold:%s:%s:%s:%s:%s', p_organization_id, p_metric, p_unit,
                           extract(epoch from p_window_start)::bigint, t.threshold)
  from public.billing_settings s
  cross join lateral pg_catalog.unnest(s.quota_alert_thresholds) as t(threshold)
  where s.id and p_unit = any (s.quota_alert_windows)
    and p_before::numeric * 100 < t.threshold::numeric * p_limit
    and p_after::numeric * 100 >= t.threshold::numeric * p_limit
  order by t.threshold
  on conflict (dedupe_key) do nothing;
  get diagnostics v_n = row_count;
  return v_n;
end;
$$;
revoke execute on function billing.queue_quota_alerts(uuid, text, public.usage_window, timestamptz, timestamptz, bigint,
  bigint, bigint) from public, anon, authenticated;
grant execute on function billing.queue_quota_alerts(uuid, text, public.usage_window, timestamptz, timestamptz, bigint,
  bigint, bigint) to service_role;

/**
 * The one mechanism every usage change goes through: add p_delta to the metric's counters in
 * the windows p_units (minute to month) that contain p_at, on the organization's local clock.
 * A positive delta is applied only if it fits every window's limit in p_features (a null limit
 * is unlimited): each window is one conditional upsert, in a fixed order (so concurrent calls
 * lock rows in the same order and never deadlock); if a window refuses, the windows already
 * changed are put back before anyone can see them (their row locks are still held). Concurrent
 * calls serialize on the counter rows, so no limit is ever passed. Reports whether the change
 * was applied, and the tightest window after it (or, when refused, as it stands): least
 * remaining, unlimited windows last, the shortest window first on ties.
 * Quota alerts (this upgrade): an applied positive change that takes a window's count across a
 * whole percent of its limit calls billing.queue_quota_alerts. The counter row is locked until
 * commit, so exactly one call sees each crossing; every other call pays two comparisons.
 */
create or replace function billing.apply_usage_delta(
  p_organization_id uuid,
  p_metric text,
  p_units public.usage_window[],
  p_at timestamptz,
  p_timezone text,
  p_features jsonb,
  p_delta bigint,
  out allowed boolean,
  out used bigint,
  out limit_amount bigint,
  out remaining bigint,
  out resets_at timestamptz
)
language plpgsql
volatile
set search_path = ''
as $$
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
    exit when p_delta > 0 and p_delta > coalesce(v_limits[i], p_delta);
    insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
    values (p_organization_id, p_metric, p_units[i], v_starts[i], greatest(p_delta, 0), pg_catalog.now())
    on conflict (organization_id, metric, window_unit, window_start) do update
      set count = greatest(q.count + p_delta, 0),
          updated_at = excluded.updated_at
      where p_delta <= 0 or v_limits[i] is null or q.count + p_delta <= v_limits[i]
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
$$;

-- -------------------------------------------------------------------------------------------------
-- Signature failures
-- -------------------------------------------------------------------------------------------------

/**
 * Counts p_count webhook deliveries refused for their signature (missing or wrong) against
 * p_provider in the current hour; one upsert, nothing of the requests kept. The webhook front
 * sends its refusals batched (at most one call in flight per function instance), so a flood of
 * forged deliveries costs one connection, not one write each. A name that is not a
 * public.payment_provider is not counted (returns false); p_count outside 1 to 1,000,000 raises.
 */
create function billing.record_signature_failure(p_provider text, p_count integer default 1)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if p_count is null or p_count not between 1 and 1000000 then
    raise exception 'record_signature_failure: p_count must be from 1 to 1000000, got %', p_count
      using errcode = '22023';
  end if;
  if p_provider is null or not (p_provider = any (enum_range(null::public.payment_provider)::text[])) then
    return false;
  end if;
  insert into billing.signature_failures as f (provider, hour, count, last_at)
  values (p_provider::public.payment_provider, pg_catalog.date_trunc('hour', billing.now(), 'UTC'), p_count, billing.now())
  on conflict (provider, hour) do update set count = f.count + excluded.count, last_at = excluded.last_at;
  return true;
end;
$$;
revoke execute on function billing.record_signature_failure(text, integer) from public, anon, authenticated;
grant execute on function billing.record_signature_failure(text, integer) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Implementation of public.get_usage (security definer; its wrapper is in section 5)
-- -------------------------------------------------------------------------------------------------

/**
 * The organization's usage now, for its members and service_role: one row per metered limit of
 * the plan in effect (`<metric>_per_<window>` in its features), ordered by metric and window:
 * used in the current window (on the organization's clock), the limit (null: unlimited),
 * remaining (null when unlimited; never below 0), percent of the limit used (1 decimal; null
 * when unlimited; 100 for a limit of 0), the window's start and when it resets. scope is
 * 'organization', or 'user' for the AI gateway's per-user request limit (`ai_requests_per_*`),
 * which reports the signed-in caller's own counter and is left out for service_role (no user).
 * Security definer: reads the counters after billing.require_role has checked the caller.
 */
create function billing.get_usage(p_organization_id uuid)
returns table (
  metric text,
  window_unit public.usage_window,
  scope text,
  used bigint,
  limit_amount bigint,
  remaining bigint,
  percent numeric,
  window_start timestamptz,
  resets_at timestamptz
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_plan record;
  v_local timestamp;
  v_user uuid := auth.uid();
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  v_plan := billing.effective_plan(p_organization_id, billing.now());
  v_local := billing.now() at time zone v_plan.timezone;
  return query
    -- The plan's keys are validated on write (billing.validate_plan_features), so a key ending in
    -- _per_<window> is a metered limit: plain string tests, far cheaper than a regexp. Each
    -- window's counter is one primary-key lookup (an organization has a row per minute window).
    with windows as materialized (
      select k.metric, k.unit::public.usage_window as unit, k.lim,
             case when k.metric = 'ai_requests' then 'user' else 'organization' end as scope,
             case when k.metric = 'ai_requests' then billing.ai_rate_metric(v_user) else k.metric end as counter,
             pg_catalog.date_trunc(k.unit, v_local) at time zone v_plan.timezone as starts,
             (pg_catalog.date_trunc(k.unit, v_local) + ('1 ' || k.unit)::interval) at time zone v_plan.timezone as ends
      from (
        select pg_catalog.left(f.key, -5 - pg_catalog.length(u.unit)) as metric, u.unit,
               case when pg_catalog.jsonb_typeof(f.value) = 'number' then (f.value #>> '{}')::bigint end as lim
        from pg_catalog.jsonb_each(v_plan.features) f
        cross join lateral (
          select case when f.key like '%\_per\_minute' then 'minute' when f.key like '%\_per\_hour' then 'hour'
                      when f.key like '%\_per\_day' then 'day' when f.key like '%\_per\_month' then 'month' end as unit
          offset 0) u
        where u.unit is not null
      ) k
      where k.metric <> 'ai_requests' or v_user is not null
    )
    select w.metric, w.unit, w.scope, c.used, w.lim,
           case when w.lim is not null then greatest(w.lim - c.used, 0) end,
           case when w.lim is null then null::numeric
                when w.lim = 0 then 100.0
                else pg_catalog.round(c.used * 100.0 / w.lim, 1) end,
           w.starts, w.ends
    from windows w
    cross join lateral (
      select coalesce((select q.count from public.usage_quotas q
                       where q.organization_id = p_organization_id and q.metric = w.counter
                         and q.window_unit = w.unit and q.window_start = w.starts), 0)::bigint as used) c
    order by w.metric, w.unit;
end;
$$;
revoke execute on function billing.get_usage(uuid) from public, anon;
grant execute on function billing.get_usage(uuid) to authenticated, service_role;


-- -------------------------------------------------------------------------------------------------
-- Monitoring views (private: service_role and the DBA read them; each comment says what to do)
-- -------------------------------------------------------------------------------------------------

/** Webhook deliveries recorded with an error: what the provider told us that was not applied. */
create view billing.failed_deliveries
with (security_invoker = true)
as
select w.id as webhook_event_id, w.provider, w.event_id, w.event_type, w.payload ->> 'kind' as kind,
       w.payload ->> 'order_ref' as order_ref, w.payload ->> 'provider_payment_id' as provider_payment_id,
       w.received_at, w.attempts, w.last_error
from billing.webhook_events w
where w.last_error is not null;
comment on view billing.failed_deliveries is
  'Webhook events recorded with last_error (not applied). Read last_error; fix the order, setting or provider config it names, then apply the payment by hand or refund it (see unapplied_payments).';

/** Signature failures per provider and hour, newest first. */
create view billing.signature_failures_hourly
with (security_invoker = true)
as
select f.provider, f.hour, f.count, f.last_at
from billing.signature_failures f;
comment on view billing.signature_failures_hourly is
  'Webhook deliveries refused for a missing or wrong signature, per provider and hour. A steady count after a key rotation: update the webhook secret; a burst from nowhere: someone is probing the endpoint (rate-limit or block at the edge).';

/**
 * Payments a provider took that bought nothing: captured with needs_refund (a stale or superseded
 * quote, an order already paid, a subscription that had ended) and not yet refunded in full, a
 * 'mismatch' (amount or currency not the order's, a refund above the capture), and captured
 * payments no order matches (only in webhook_events).
 */
create view billing.unapplied_payments
with (security_invoker = true)
as
select 'needs_refund'::text as problem, pe.organization_id, pe.order_id, pe.provider, pe.provider_payment_id,
       pe.amount_cents, pe.currency, pe.occurred_at,
       coalesce(pe.details ->> 'not_applied', pe.error_reason) as detail,
       (select a.state::text from billing.provider_actions a
        where a.payment_event_id = pe.id and a.kind = 'refund' order by a.created_at desc limit 1) as refund_action_state
from public.payment_events pe
where pe.needs_refund and pe.status = 'captured'
  and coalesce((select sum(r.amount_cents) from public.payment_events r
                where r.provider = pe.provider and r.provider_payment_id = pe.provider_payment_id
                  and r.status = 'refunded'), 0) < pe.amount_cents
union all
select 'mismatch', pe.organization_id, pe.order_id, pe.provider, pe.provider_payment_id, pe.amount_cents, pe.currency,
       pe.occurred_at, pe.error_reason, null
from public.payment_events pe
where pe.status = 'mismatch'
union all
select 'unknown_order', null, null, w.provider, w.payload ->> 'provider_payment_id',
       case when w.payload ->> 'amount_paise' ~ '^[0-9]{1,15}$' then (w.payload ->> 'amount_paise')::bigint end,
       w.payload ->> 'currency', w.received_at, w.last_error, null
from billing.webhook_events w
where w.last_error is not null and w.payload ->> 'kind' = 'payment_captured'
  and not exists (select 1 from public.payment_events pe
                  where pe.provider = w.provider and pe.provider_payment_id = w.payload ->> 'provider_payment_id');
comment on view billing.unapplied_payments is
  'Money taken that bought nothing: needs_refund (refund it: billing.operator_refund, or check refund_action_state), mismatch (compare with the order, refund or apply by hand), unknown_order (find the order at the provider; refund if none).';

/** Open checkout orders past the time reconciliation should have settled them. */
create view billing.overdue_orders
with (security_invoker = true)
as
select o.id as order_id, o.organization_id, o.receipt, o.provider, o.provider_order_id, o.status, o.amount_cents,
       o.currency, o.created_at, o.expires_at,
       billing.now() - o.created_at as pending_for,
       o.expires_at is not null and o.expires_at < billing.now() as past_expiry
from public.orders o
cross join public.billing_settings s
where s.id and o.status in ('created', 'pending')
  and (o.created_at <= billing.now() - s.order_pending_reconcile_after
       or (o.expires_at is not null and o.expires_at < billing.now()));
comment on view billing.overdue_orders is
  'Checkout orders still open past order_pending_reconcile_after or their expiry. Many or old rows: the reconcile worker is not running (see job_problems) or cannot reach the provider; check the order at the provider.';

/**
 * Jobs whose latest run failed (with the number of failed runs since its last success) or that
 * started and never finished.
 */
create view billing.job_problems
with (security_invoker = true)
as
with latest as (
  select distinct on (r.job_name) r.*
  from billing.job_runs r
  order by r.job_name, r.started_at desc, r.id desc
)
select l.job_name,
       case when l.error is not null then 'failing' else 'stuck' end as problem,
       l.id as run_id, l.started_at, l.finished_at, l.as_of, l.error,
       (select count(*) from billing.job_runs f
        where f.job_name = l.job_name and f.error is not null
          and f.started_at > coalesce((select max(ok.started_at) from billing.job_runs ok
                                       where ok.job_name = l.job_name and ok.error is null and ok.finished_at is not null),
                                      '-infinity'::timestamptz)) as failed_runs,
       (select max(ok.finished_at) from billing.job_runs ok
        where ok.job_name = l.job_name and ok.error is null and ok.finished_at is not null) as last_success_at
from latest l
where l.error is not null
   or (l.finished_at is null and l.started_at < pg_catalog.clock_timestamp() - interval '15 minutes');
comment on view billing.job_problems is
  'Jobs whose latest run failed (read error, fix the cause; the job runs again on its schedule) or started over 15 minutes ago and never finished (look for a blocked session in pg_stat_activity).';

/** Notifications that failed for good, are retrying after errors, or are overdue unsent. */
create view billing.notification_problems
with (security_invoker = true)
as
select n.id as notification_id, n.organization_id, n.kind,
       case when n.failed_at is not null then 'failed'
            when n.last_error is not null then 'retrying'
            else 'unsent' end as problem,
       n.created_at, n.attempts, n.locked_until, n.failed_at, n.last_error
from public.notifications n
where n.sent_at is null
  and (n.failed_at is not null or n.last_error is not null or n.created_at < billing.now() - interval '15 minutes');
comment on view billing.notification_problems is
  'Notifications not delivered: failed (read last_error: fix the address, EMAIL_FROM or template, then queue again), retrying (the provider is failing: check Resend), unsent for over 15 minutes (notifications-send is not being called).';

/** Provider actions that failed for good, are retrying after errors, or are overdue. */
create view billing.provider_action_problems
with (security_invoker = true)
as
select a.id as provider_action_id, a.organization_id, a.provider, a.kind, a.state,
       case when a.state = 'failed' then 'failed'
            when a.last_error is not null then 'retrying'
            else 'overdue' end as problem,
       a.attempts, a.max_attempts, a.next_attempt_at, a.last_error, a.target, a.created_at
from billing.provider_actions a
where a.state = 'failed'
   or (a.state in ('pending', 'running')
       and (a.last_error is not null or a.next_attempt_at < billing.now() - interval '15 minutes'));
comment on view billing.provider_action_problems is
  'Provider actions the provider has not confirmed: failed (do it by hand in the provider dashboard, then record it), retrying (read last_error), overdue (provider-sync is not being called).';

/**
 * Organizations using at least the lowest alert threshold (75 % by default) of a quota window
 * now: the current window's count against the plan in effect.
 */
create view billing.quota_pressure
with (security_invoker = true)
as
select q.organization_id, o.name as organization_name, e.plan_code, q.metric, q.window_unit,
       q.count as used, l.lim as limit_amount, pg_catalog.round(q.count * 100.0 / l.lim, 1) as percent,
       q.window_start,
       ((q.window_start at time zone o.timezone) + ('1 ' || q.window_unit::text)::interval) at time zone o.timezone
         as resets_at
from public.usage_quotas q
join public.organizations o on o.id = q.organization_id
cross join lateral billing.effective_plan(o.id, billing.now()) e
cross join lateral (
  select case when pg_catalog.jsonb_typeof(e.features -> (q.metric || '_per_' || q.window_unit::text)) = 'number'
              then (e.features ->> (q.metric || '_per_' || q.window_unit::text))::bigint end as lim
) l
where q.window_start > billing.now() - interval '32 days'
  and q.window_start = pg_catalog.date_trunc(q.window_unit::text, billing.now() at time zone o.timezone)
                       at time zone o.timezone
  and l.lim > 0
  and q.count * 100.0 >= l.lim * coalesce((select min(t) from public.billing_settings s,
                                           pg_catalog.unnest(s.quota_alert_thresholds) t where s.id), 75);
comment on view billing.quota_pressure is
  'Organizations at or above the lowest alert threshold (75 % by default) of a quota window now: offer an upgrade before the limit refuses their calls.';

revoke all on billing.failed_deliveries, billing.signature_failures_hourly, billing.unapplied_payments,
  billing.overdue_orders, billing.job_problems, billing.notification_problems, billing.provider_action_problems,
  billing.quota_pressure from public, anon, authenticated;
grant select on billing.failed_deliveries, billing.signature_failures_hourly, billing.unapplied_payments,
  billing.overdue_orders, billing.job_problems, billing.notification_problems, billing.provider_action_problems,
  billing.quota_pressure to service_role;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: billing.signature_failures and the monitoring views are private (no grants to the API
-- roles); get_usage checks its caller itself.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * The organization's usage now: per metered limit of the plan in effect, used, limit, remaining,
 * percent and reset. A thin wrapper: billing.get_usage does the work and checks who is calling.
 */
create function public.get_usage(p_organization_id uuid)
returns table (
  metric text,
  window_unit public.usage_window,
  scope text,
  used bigint,
  limit_amount bigint,
  remaining bigint,
  percent numeric,
  window_start timestamptz,
  resets_at timestamptz
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return query select * from billing.get_usage(p_organization_id);
end;
$$;
revoke execute on function public.get_usage(uuid) from public, anon;
grant execute on function public.get_usage(uuid) to authenticated, service_role;
comment on function public.get_usage(uuid) is
  'The organization''s usage now: per metered limit of the plan in effect, used, limit (null: unlimited), remaining, percent and when the window resets. Members and service_role.';

/**
 * Computed relationship (PostgREST): a subscription's plan, plan_id. Named after the table so
 * `subscriptions?select=*,billing_plans(*)` (and `billing_plans!inner(*)`) resolve to it instead
 * of failing between the two foreign keys. Security invoker: billing_plans' own policy applies.
 */
create function public.billing_plans(p_subscription public.subscriptions)
returns setof public.billing_plans
rows 1
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return query select p.* from public.billing_plans p where p.id = p_subscription.plan_id;
end;
$$;
revoke execute on function public.billing_plans(public.subscriptions) from public, anon;
grant execute on function public.billing_plans(public.subscriptions) to authenticated, service_role;
comment on function public.billing_plans(public.subscriptions) is
  'The plan a subscription is on (plan_id): the relationship PostgREST embeds as billing_plans(...) from subscriptions.';

/**
 * Computed relationship (PostgREST): a subscription's scheduled downgrade, pending_plan_id (none
 * when nothing is scheduled): `subscriptions?select=*,pending_plan(*)`.
 */
create function public.pending_plan(p_subscription public.subscriptions)
returns setof public.billing_plans
rows 1
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return query select p.* from public.billing_plans p where p.id = p_subscription.pending_plan_id;
end;
$$;
revoke execute on function public.pending_plan(public.subscriptions) from public, anon;
grant execute on function public.pending_plan(public.subscriptions) to authenticated, service_role;
comment on function public.pending_plan(public.subscriptions) is
  'The plan a subscription is scheduled to move to at its period end (pending_plan_id), embedded as pending_plan(...) from subscriptions.';


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

-- None: the monitoring views are read by operators; nothing runs on a clock here.
