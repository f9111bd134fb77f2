-- =================================================================================================
-- supabill: operations: the notifications outbox and the job runs every module's jobs use
--
-- The outbox for emails and alerts (public.notifications): the payment path and the jobs of later
-- modules queue rows in the same transaction as the decision; a sender (service_role) claims them
-- (billing.claim_notifications), sends, and marks them sent (billing.mark_notification_sent).
-- The job machinery: billing.run_job runs one batch of any module's job and logs it in
-- billing.job_runs; billing-purge (this module's job) removes what has aged out.
--
-- Each job: one batch of at most p_limit changes per call, row locks taken with
-- `for update skip locked` (two runs at once share the work), idempotent (a second run finds
-- nothing left to do; notifications are deduplicated by key), correct when late (transitions are
-- recorded at the time they were due), and logged in billing.job_runs. Returns the rows changed,
-- or null when the run failed (the error is in job_runs and the run changed nothing). pg_cron calls
-- them under stable names; tests call them directly under the test clock.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- notifications (outbox)
-- -------------------------------------------------------------------------------------------------

/**
 * The outbox for emails and alerts: the jobs and the payment path queue rows, a sender claims
 * them (claim_notifications), sends, and marks them sent (mark_notification_sent). `dedupe_key`
 * is unique, so a job run twice (or two paths racing) queues a notification once. Kinds queued:
 * renewal_reminder, pre_debit_notice, dunning_reminder, payment_failed, trial_ended,
 * subscription_canceled, subscription_expired, plan_downgraded.
 * Owners and admins of the organization can read them.
 */
create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  subscription_id uuid references public.subscriptions (id) on delete set null,
  kind text not null check (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
  payload jsonb not null default '{}'::jsonb check (jsonb_typeof(payload) = 'object'),
  dedupe_key text not null unique check (length(dedupe_key) between 1 and 300),
  created_at timestamptz not null default billing.now(),
  sent_at timestamptz,
  attempts integer not null default 0 check (attempts >= 0),
  locked_until timestamptz,
  last_error text
);
comment on table public.notifications is 'The outbox of emails and alerts for an organization, sent once by a sender; owners and admins read it.';

/** Foreign keys and the policy column; unsent rows in order, for the sender. */
create index notifications_organization_id_idx on public.notifications (organization_id, created_at);
create index notifications_subscription_id_idx on public.notifications (subscription_id);

create index notifications_unsent_idx on public.notifications (created_at) where sent_at is null;
grant select on public.notifications to authenticated;
grant select, insert, update, delete on public.notifications to service_role;
alter table public.notifications enable row level security;

-- -------------------------------------------------------------------------------------------------
-- billing.job_runs (private)
-- -------------------------------------------------------------------------------------------------

/**
 * One row per run of a billing job: when it started and finished (wall clock), the clock it ran
 * at (billing.now(), pinned in tests), its batch size, the rows it changed, and the error when it
 * failed (a failed run changes nothing else). Private (schema billing): service_role reads it.
 */
create table billing.job_runs (
  id bigint generated always as identity primary key,
  job_name text not null check (job_name ~ '^[a-z][a-z0-9-]{0,62}$'),
  as_of timestamptz not null,
  batch_limit integer,
  started_at timestamptz not null default clock_timestamp(),
  finished_at timestamptz,
  rows_affected integer,
  error text
);

/** A job's runs, newest first; old runs, for purging. */
create index job_runs_job_name_idx on billing.job_runs (job_name, started_at);
create index job_runs_started_at_idx on billing.job_runs (started_at);
revoke all on billing.job_runs from public;
grant select on billing.job_runs to service_role;


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/** Starts a job run in billing.job_runs; returns its id. */
create function billing.job_started(p_job_name text, p_limit integer)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into billing.job_runs (job_name, as_of, batch_limit, started_at)
  values (p_job_name, billing.now(), p_limit, pg_catalog.clock_timestamp())
  returning id into v_id;
  return v_id;
end;
$$;
revoke execute on function billing.job_started(text, integer) from public;

/** Ends a job run: rows changed, or the error. */
create function billing.job_finished(p_run_id bigint, p_rows integer, p_error text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  update billing.job_runs
  set finished_at = pg_catalog.clock_timestamp(), rows_affected = p_rows, error = p_error
  where id = p_run_id;
end;
$$;
revoke execute on function billing.job_finished(bigint, integer, text) from public;

/** Rejects a batch size outside 1..1,000,000. */
create function billing.check_batch_limit(p_limit integer)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_limit is null or p_limit not between 1 and 1000000 then
    raise exception 'batch limit must be between 1 and 1000000, got %', coalesce(p_limit::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
end;
$$;
revoke execute on function billing.check_batch_limit(integer) from public;

/**
 * Runs one batch of a job and logs it in billing.job_runs: p_batch is the job's batch function
 * (first argument the batch size, any others defaulted; returns the rows it changed), called
 * with p_limit. Every module's jobs use it (the AI gateway's too). A failure is caught: its changes
 * are undone,
 * the error is logged, a warning raised and null returned.
 */
create function billing.run_job(p_job_name text, p_batch regprocedure, p_limit integer)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_schema name;
  v_function name;
  v_run_id bigint;
  v_rows integer;
begin
  perform billing.check_batch_limit(p_limit);
  select n.nspname, f.proname into v_schema, v_function
  from pg_catalog.pg_proc f join pg_catalog.pg_namespace n on n.oid = f.pronamespace
  where f.oid = p_batch and f.pronargs >= 1 and f.pronargs - f.pronargdefaults <= 1
    and f.proargtypes[0] = 'integer'::regtype and f.prorettype = 'integer'::regtype;
  if v_function is null then
    raise exception 'job "%": % is not a batch function (integer, ...defaults) returning integer', p_job_name, p_batch
      using errcode = 'invalid_parameter_value';
  end if;
  v_run_id := billing.job_started(p_job_name, p_limit);
  begin
    execute pg_catalog.format('select %I.%I($1)', v_schema, v_function) into v_rows using p_limit;
  exception
    when others then
      perform billing.job_finished(v_run_id, null, pg_catalog.format('%s: %s', sqlstate, sqlerrm));
      raise warning 'job % failed: % (%)', p_job_name, sqlerrm, sqlstate;
      return null;
  end;
  perform billing.job_finished(v_run_id, v_rows, null);
  return v_rows;
end;
$$;
revoke execute on function billing.run_job(text, regprocedure, integer) from public;

/**
 * For a notification sender (service_role): claims up to p_limit unsent notifications, oldest
 * first, skipping rows another sender holds (for update skip locked). A claim is a 5-minute lease
 * (locked_until) and counts an attempt; a row not marked sent by then is claimed again. Rows that
 * failed 10 times are left for an operator.
 */
create function billing.claim_notifications(p_limit integer default 100)
returns setof public.notifications
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  return query
    with claimed as (
      select n.id from public.notifications n
      where n.sent_at is null and n.attempts < 10 and (n.locked_until is null or n.locked_until <= v_now)
      order by n.created_at
      limit p_limit
      for update skip locked
    )
    update public.notifications n
    set attempts = n.attempts + 1, locked_until = v_now + interval '5 minutes'
    from claimed c
    where n.id = c.id
    returning n.*;
end;
$$;
revoke execute on function billing.claim_notifications(integer) from public, anon, authenticated;
grant execute on function billing.claim_notifications(integer) to service_role;

/**
 * Marks a claimed notification sent (p_error null) or records why sending failed (the row is
 * claimable again at once). Returns false when the notification is unknown or already sent.
 * service_role only.
 */
create function billing.mark_notification_sent(p_id uuid, p_error text default null)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if p_error is null then
    update public.notifications n set sent_at = billing.now(), locked_until = null, last_error = null
    where n.id = p_id and n.sent_at is null;
  else
    update public.notifications n set locked_until = null, last_error = left(p_error, 2000)
    where n.id = p_id and n.sent_at is null;
  end if;
  return found;
end;
$$;
revoke execute on function billing.mark_notification_sent(uuid, text) from public, anon, authenticated;
grant execute on function billing.mark_notification_sent(uuid, text) to service_role;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** notifications: owners and admins read their organization's (members do not: billing mail). */
create policy "Owners and admins can read their organization's notifications"
  on public.notifications for select to authenticated
  using (organization_id in (select billing.member_organization_ids(array['owner', 'admin'])));


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None: the sender's functions are service-only (billing.claim_notifications, billing.mark_notification_sent).

-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

/**
 * billing-purge, one batch (p_limit rows per kind): usage counters whose window ended more than
 * p_usage_retention ago (default 35 days; raw usage_metrics events are kept), notifications sent
 * more than 90 days ago, and job runs older than 30 days. (The AI gateway's module purges its
 * own cache with its own job, ai-purge-cache.)
 */
create function billing.purge_batch(
  p_limit integer,
  p_usage_retention interval default interval '35 days'
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_total integer := 0;
  v_n integer;
begin
  -- Counters: the window ends at window_start + its unit; keep it p_usage_retention past that.
  delete from public.usage_quotas q
  where (q.organization_id, q.metric, q.window_unit, q.window_start) in (
    select u.organization_id, u.metric, u.window_unit, u.window_start
    from public.usage_quotas u
    where u.window_start < v_now - p_usage_retention - interval '1 minute'
      and u.window_start + ('1 ' || u.window_unit::text)::interval + p_usage_retention <= v_now
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  delete from public.notifications n
  where n.id in (
    select x.id from public.notifications x
    where x.sent_at is not null and x.sent_at < v_now - interval '90 days'
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  delete from billing.job_runs r
  where r.id in (select x.id from billing.job_runs x where x.started_at < pg_catalog.clock_timestamp() - interval '30 days'
                 limit p_limit);
  return v_total;
end;
$$;
revoke execute on function billing.purge_batch(integer, interval) from public;

/** pg_cron 'billing-purge': see billing.purge_batch. Returns the rows deleted. */
create function billing.job_purge(p_limit integer default 10000)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('billing-purge', 'billing.purge_batch(integer, interval)', p_limit);
end;
$$;
revoke execute on function billing.job_purge(integer) from public;

-- billing-purge daily at 03:45 UTC. Without pg_cron nothing is scheduled: call billing.job_purge
-- from any scheduler. cron.schedule upserts by name, so re-running this is harmless.
do $$
begin
  if exists (select from pg_catalog.pg_extension where extname = 'pg_cron') then
    perform cron.schedule('billing-purge', '45 3 * * *', 'select billing.job_purge()');
  end if;
end;
$$;
