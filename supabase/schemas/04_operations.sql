-- =================================================================================================
-- supabill: operations: the notifications outbox and the job runs every module's jobs use
--
-- The outbox for emails and alerts (public.notifications): the payment path and the jobs of later
-- modules queue rows in the same transaction as the decision; the sender (service_role) claims
-- them with their recipients and what a template needs (billing.claim_notification_deliveries:
-- billing.claim_notifications, billing.notification_recipients, and
-- billing.notification_context in 09_lifecycle, which reads the tables of later modules), sends,
-- and marks them sent (billing.mark_notification_sent). A transient failure is retried after a
-- backoff (billing.retry_notification: 30 s doubling to 1 hour, or the provider's Retry-After
-- when longer) and fails for good at the tenth attempt; a permanent one fails now
-- (billing.mark_notification_failed, notifications.failed_at): the sender never claims it again,
-- and operators see it.
-- The job machinery: billing.run_job runs one batch of any module's job and logs it in
-- billing.job_runs; billing-purge (this module's job) removes what has aged out, sent and failed
-- notifications billing_settings.notification_retention_days after they were sent or failed;
-- billing.jobs lists every module's jobs, one row each, and billing.schedule_jobs schedules them
-- (called once at the end of 12_analytics.sql).
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
 * is unique, so a job run twice (or two paths racing) queues a notification once. Its kind is a
 * public.notification_kind, each with an email template.
 * Owners and admins of the organization can read them.
 */
create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  subscription_id uuid references public.subscriptions (id) on delete set null,
  kind public.notification_kind not null,
  payload jsonb not null default '{}'::jsonb check (jsonb_typeof(payload) = 'object'),
  dedupe_key text not null unique check (length(dedupe_key) between 1 and 300),
  created_at timestamptz not null default billing.now(),
  sent_at timestamptz,
  attempts integer not null default 0 check (attempts >= 0),
  locked_until timestamptz,
  last_error text,
  failed_at timestamptz,
  -- The order rows were queued in: the tie-break of created_at (several events of one transaction,
  -- or of one test-clock instant), so an organization's emails go out in the order of their events.
  seq bigint generated always as identity,
  constraint notifications_sent_or_failed check (sent_at is null or failed_at is null)
);

comment on table public.notifications is 'The outbox of emails and alerts for an organization, sent once by a sender; owners and admins read it.';

/** Foreign keys and the policy column; unsent rows in order, for the sender. */
create index notifications_organization_id_idx on public.notifications (organization_id, created_at);

create index notifications_subscription_id_idx on public.notifications (subscription_id);

grant select on public.notifications to authenticated;

grant select, insert, update, delete on public.notifications to service_role;

alter table public.notifications enable row level security;

comment on column public.notifications.failed_at is
  'When the sender gave up on this notification (the reason is in last_error); null while it is still to be sent or once sent.';

comment on column public.notifications.locked_until is
  'Not claimable before this time: the lease of a sender holding it, or the backoff after a failed attempt.';

create index notifications_due_idx on public.notifications (created_at) where sent_at is null and failed_at is null;

-- -------------------------------------------------------------------------------------------------
-- billing.job_runs (private)
-- -------------------------------------------------------------------------------------------------

/**
 * One row per run of a billing job: when it started and finished (wall clock), the clock it ran
 * at (billing.now(), pinned in tests), its batch size, the rows it changed, and the error when it
 * failed (a failed run changes nothing else). Private (schema billing): service_role reads it.
 * Monthly partitions by as_of (00_foundation.sql): a month is dropped once it ended
 * billing_settings.job_run_retention_days (30) ago, so a run is kept 30 to 61 days.
 */
create table billing.job_runs (
  id bigint generated always as identity,
  job_name text not null check (job_name ~ '^[a-z][a-z0-9-]{0,62}$'),
  as_of timestamptz not null,
  batch_limit integer,
  started_at timestamptz not null default clock_timestamp(),
  finished_at timestamptz,
  rows_affected integer,
  error text,
  -- The partition key is part of every unique key; id alone is unique by its identity sequence.
  constraint job_runs_pkey primary key (id, as_of)
) partition by range (as_of);

create table billing_partitions.job_runs_default partition of billing.job_runs default;

select billing.secure_partition('billing_partitions', 'job_runs_default', 'job_runs');

insert into billing.partitioned_tables (table_name, partition_column, retention_setting, months_ahead)
values ('billing.job_runs', 'as_of', 'job_run_retention_days', 3);

select billing.maintain_partitions();

/** A job's runs, newest first; old runs, for purging. */
create index job_runs_job_name_idx on billing.job_runs (job_name, started_at);

create index job_runs_started_at_idx on billing.job_runs (started_at);

revoke all on billing.job_runs from public;

grant select on billing.job_runs to service_role;

/**
 * Every scheduled job, one row each: its pg_cron name, its cron schedule (UTC), and what it runs:
 * a SQL command (the job functions) or the edge function an HTTP worker POSTs (pg_net). Inactive
 * rows are unscheduled. billing.schedule_jobs reads it, so adding a job is one row here (and the
 * same insert in a migration), then `select billing.schedule_jobs()`. For postgres only.
 */
create table billing.jobs (
  name text primary key check (name ~ '^[a-z][a-z0-9-]{0,62}$'),
  schedule text not null check (schedule ~ '^\S+( \S+){4}$'),
  command text check (length(command) between 1 and 1000),
  worker text check (worker ~ '^[a-z][a-z0-9-]{0,62}$'),
  active boolean not null default true,
  doc text not null check (length(doc) between 1 and 500),
  constraint jobs_command_or_worker check ((command is null) <> (worker is null))
);

revoke all on billing.jobs from public;

insert into billing.jobs (name, schedule, command, worker, doc) values
  ('billing-expire', '*/5 * * * *', 'select billing.job_expire()', null,
   'Subscriptions whose trial, period or grace ended move on (billing.expire_batch).'),
  ('billing-renewal-reminders', '15 * * * *', 'select billing.job_renewal_reminders()', null,
   'Queues renewal reminders and pre-debit notices (billing.renewal_reminders_batch).'),
  ('billing-dunning', '30 4 * * *', 'select billing.job_dunning()', null,
   'Queues the reminders of past-due subscriptions (billing.dunning_batch).'),
  ('billing-purge', '45 3 * * *', 'select billing.job_purge()', null,
   'Removes what has aged out (billing.purge_batch).'),
  ('billing-partitions', '20 0 * * *', 'select billing.job_maintain_partitions()', null,
   'Creates the coming months'' partitions and drops those past retention (billing.maintain_partitions).'),
  ('billing-analytics-daily', '35 18 * * *', 'select billing.job_revenue_analytics()', null,
   'At 00:05 IST: computes yesterday''s revenue row again, once it is over, and starts today''s.'),
  ('ai-release-stale-reservations', '* * * * *', 'select billing.job_ai_release_stale_reservations()', null,
   'Releases AI reservations whose call never settled (billing.job_ai_release_stale_reservations).'),
  ('ai-purge-cache', '17 * * * *', 'select billing.job_ai_purge_cache()', null,
   'Removes expired AI cache entries (billing.ai_purge_cache).'),
  ('supabill-reconcile-orders', '*/10 * * * *', null, 'reconcile',
   'POST /reconcile: asks the provider about orders and refunds still open.'),
  ('supabill-provider-sync', '* * * * *', null, 'provider-sync',
   'POST /provider-sync: sends the queued provider actions.'),
  ('supabill-notifications-send', '* * * * *', null, 'notifications-send',
   'POST /notifications-send: sends the queued notifications.');

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
 * For a notification sender (service_role): claims up to p_limit notifications due, oldest first,
 * skipping rows another sender holds (for update skip locked): not sent, not failed, and not held
 * (locked_until, a lease or a backoff, in the past), and with no earlier notification of the same
 * organization held (so its emails go out in order). A claim is a 5-minute lease and counts an
 * attempt; a row not marked sent by then is claimed again. A row whose 10 attempts are used up and
 * whose last lease ran out is marked failed ('gave up after 10 attempts') instead.
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
  update public.notifications n
  set failed_at = v_now, locked_until = null,
      last_error = left(pg_catalog.format('gave up after %s attempts%s', n.attempts,
                                          ': ' || n.last_error), 2000)
  where n.id in (
    select x.id from public.notifications x
    where x.sent_at is null and x.failed_at is null and x.attempts >= 10
      and (x.locked_until is null or x.locked_until <= v_now)
    limit p_limit
    for update skip locked);
  return query
    with claimed as (
      select n.id from public.notifications n
      where n.sent_at is null and n.failed_at is null and n.attempts < 10
        and (n.locked_until is null or n.locked_until <= v_now)
        -- An organization's emails go in the order of their events: one waits while an earlier
        -- one of its organization is held (another sender's lease, or a backoff).
        and not exists (
          select from public.notifications e
          where e.organization_id = n.organization_id and e.sent_at is null and e.failed_at is null
            and (e.created_at, e.seq) < (n.created_at, n.seq) and e.locked_until > v_now)
      order by n.created_at, n.seq
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
 * Marks a claimed notification sent (p_error null), or records a failed attempt
 * (billing.retry_notification: claimable again after the backoff, failed at the 10th attempt).
 * Returns false when the notification is unknown, already sent or failed. service_role only.
 */
create function billing.mark_notification_sent(p_id uuid, p_error text default null)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if p_error is null then
    update public.notifications n set sent_at = billing.now(), locked_until = null, last_error = null
    where n.id = p_id and n.sent_at is null and n.failed_at is null;
    return found;
  end if;
  return billing.retry_notification(p_id, p_error) is not null;
end;
$$;
revoke execute on function billing.mark_notification_sent(uuid, text) from public, anon, authenticated;
grant execute on function billing.mark_notification_sent(uuid, text) to service_role;

/**
 * Who a kind of notification is for: 'owners' (the organization's owners only, whatever its
 * billing email: a provider action that failed, a dispute), 'confirmation' (the address being
 * confirmed, payload.email, only) or 'billing' (the billing email when set and confirmed, else
 * owners and admins).
 */
create function billing.notification_audience(p_kind public.notification_kind)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case when p_kind in ('provider_action_failed', 'payment_disputed', 'subscription_disputed')
              then 'owners'
              when p_kind = 'billing_email_confirmation' then 'confirmation'
              else 'billing' end;
end;
$$;
revoke execute on function billing.notification_audience(public.notification_kind) from public, anon, authenticated;
grant execute on function billing.notification_audience(public.notification_kind) to service_role;

/** A text that is a uuid, as a uuid; null for anything else (payload values read by the sender). */
create function billing.jsonb_uuid(p_text text)
returns uuid
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case when p_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then p_text::uuid end;
end;
$$;
revoke execute on function billing.jsonb_uuid(text) from public, anon, authenticated;
grant execute on function billing.jsonb_uuid(text) to service_role;

/**
 * The email addresses a notification goes to, lower-cased, distinct and sorted: for the 'billing'
 * audience the organization's billing_email when set and confirmed, otherwise the emails of its owners and
 * admins; for 'owners' the owners' emails; for 'confirmation' the address being confirmed
 * (billing.notification_audience). Users without an email
 * are skipped. An empty array when nobody can be reached; null for an unknown notification.
 * service_role only.
 */
create function billing.notification_recipients(p_notification_id uuid)
returns text[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_note public.notifications;
  v_org public.organizations;
  v_roles public.member_role[];
begin
  select * into v_note from public.notifications n where n.id = p_notification_id;
  if not found then
    return null;
  end if;
  select * into v_org from public.organizations o where o.id = v_note.organization_id;
  if billing.notification_audience(v_note.kind) = 'confirmation' then
    return case when v_note.payload ->> 'email' ~ '^[^@[:space:]]+@[^@[:space:]]+$'
                then array[lower(btrim(v_note.payload ->> 'email'))] else '{}'::text[] end;
  elsif billing.notification_audience(v_note.kind) = 'billing' then
    if nullif(btrim(v_org.billing_email), '') is not null and v_org.billing_email_confirmed_at is not null then
      return array[lower(btrim(v_org.billing_email))];
    end if;
    v_roles := array['owner', 'admin']::public.member_role[];
  else
    v_roles := array['owner']::public.member_role[];
  end if;
  return coalesce((
    select array_agg(distinct lower(btrim(u.email)) order by lower(btrim(u.email)))
    from public.organization_members m
    join auth.users u on u.id = m.user_id
    where m.organization_id = v_note.organization_id and m.role = any (v_roles)
      and nullif(btrim(u.email), '') is not null), '{}'::text[]);
end;
$$;
revoke execute on function billing.notification_recipients(uuid) from public, anon, authenticated;
grant execute on function billing.notification_recipients(uuid) to service_role;

/**
 * For the notifications-send function (service_role): claims up to p_limit due notifications
 * (billing.claim_notifications) and returns each with its recipients
 * (billing.notification_recipients) and what its template needs (billing.notification_context).
 */
create function billing.claim_notification_deliveries(p_limit integer default 100)
returns table (
  id uuid,
  organization_id uuid,
  subscription_id uuid,
  kind public.notification_kind,
  payload jsonb,
  dedupe_key text,
  created_at timestamptz,
  attempts integer,
  recipients text[],
  context jsonb
)
language plpgsql
set search_path = ''
as $$
begin
  return query
  select c.id, c.organization_id, c.subscription_id, c.kind, c.payload, c.dedupe_key, c.created_at, c.attempts,
           billing.notification_recipients(c.id), billing.notification_context(c.id)
    from billing.claim_notifications(p_limit) c
    order by c.created_at, c.seq;
end;
$$;
revoke execute on function billing.claim_notification_deliveries(integer) from public, anon, authenticated;
grant execute on function billing.claim_notification_deliveries(integer) to service_role;

/**
 * A claimed notification's attempt failed for a reason that may pass (network, the provider's
 * 5xx or 429): it is claimable again after billing.retry_backoff(attempts,
 * p_retry_after_seconds), the same backoff as the provider actions', or, when that was its 10th attempt, marked failed with the error.
 * Returns the notification's state: 'retry', 'failed', or null when it is unknown, sent or failed.
 * service_role only.
 */
create function billing.retry_notification(p_id uuid, p_error text, p_retry_after_seconds integer default null)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_state text;
begin
  update public.notifications n
  set locked_until = case when n.attempts < 10
                          then v_now + billing.retry_backoff(n.attempts, p_retry_after_seconds) end,
      failed_at = case when n.attempts >= 10 then v_now end,
      last_error = left(coalesce(p_error, 'failed'), 2000)
  where n.id = p_id and n.sent_at is null and n.failed_at is null
  returning case when n.failed_at is null then 'retry' else 'failed' end into v_state;
  return v_state;
end;
$$;
revoke execute on function billing.retry_notification(uuid, text, integer) from public, anon, authenticated;
grant execute on function billing.retry_notification(uuid, text, integer) to service_role;

/**
 * Marks a notification failed for good (a permanent provider error, no recipient, a template that
 * cannot render): it is never claimed again and p_error (required) is kept in last_error for
 * operators. Returns false when it is unknown, sent or already failed. service_role only.
 */
create function billing.mark_notification_failed(p_id uuid, p_error text)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if nullif(btrim(p_error), '') is null then
    raise exception 'a failed notification needs a reason' using errcode = 'invalid_parameter_value';
  end if;
  update public.notifications n
  set failed_at = billing.now(), locked_until = null, last_error = left(p_error, 2000)
  where n.id = p_id and n.sent_at is null and n.failed_at is null;
  return found;
end;
$$;
revoke execute on function billing.mark_notification_failed(uuid, text) from public, anon, authenticated;
grant execute on function billing.mark_notification_failed(uuid, text) to service_role;

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
 * or failed more than billing_settings.notification_retention_days ago (default 90), and
 * provider webhook payloads received more than
 * billing_settings.webhook_payload_retention_days ago (default 90): the payload becomes {} and
 * payload_purged_at is set, while provider, event_id, event_type and the times stay, so a
 * re-delivery is still a duplicate. (The AI gateway's module purges its own cache with its own
 * job, ai-purge-cache; job runs, like every monthly-partitioned table, go a month at a time with
 * billing-partitions.)
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
  v_payload_retention interval := pg_catalog.make_interval(
    days => coalesce((select s.webhook_payload_retention_days from public.billing_settings s), 90));
  v_notification_retention interval := pg_catalog.make_interval(
    days => coalesce((select s.notification_retention_days from public.billing_settings s), 90));
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

  -- Notifications done with (sent, or given up on) once their retention has passed.
  delete from public.notifications n
  where n.id in (
    select x.id from public.notifications x
    where (x.sent_at < v_now - v_notification_retention or x.failed_at < v_now - v_notification_retention)
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  -- Provider payloads (personal data of buyers): stripped once, the delivery record kept.
  update billing.webhook_events w
  set payload = '{}'::jsonb, payload_purged_at = v_now
  where w.id in (
    select x.id from billing.webhook_events x
    where x.payload_purged_at is null and x.received_at < v_now - v_payload_retention
    order by x.received_at
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  -- Job runs go a whole month at a time (billing.maintain_partitions, job_run_retention_days).
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

/**
 * The batch function of the job billing-partitions: billing.maintain_partitions at billing.now().
 * Its work is whole partitions, not rows, so it ignores p_limit (which run_job requires).
 */
create function billing.maintain_partitions_batch(p_limit integer)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.maintain_partitions(billing.now());
end;
$$;
revoke execute on function billing.maintain_partitions_batch(integer) from public;

/**
 * pg_cron 'billing-partitions' (daily) and every move of billing.test_clock: monthly partitions
 * (billing.maintain_partitions, 00_foundation), logged in billing.job_runs. Returns the partitions
 * created and dropped, or null when the run failed (the error is in job_runs).
 */
create function billing.job_maintain_partitions()
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('billing-partitions', 'billing.maintain_partitions_batch(integer)', 1);
end;
$$;
revoke execute on function billing.job_maintain_partitions() from public;

/**
 * Schedules every active job of billing.jobs where it can run, unschedules the inactive ones, and
 * says what it did: one row per job (job, schedule, state 'scheduled', 'skipped' or
 * 'unscheduled', and why). Idempotent (cron.schedule upserts by job name), so run it again after
 * enabling pg_cron or pg_net (hosted Supabase: Database > Extensions) or changing billing.jobs.
 * A job with a command runs it with pg_cron; a worker job needs pg_net too, and POSTs
 * /functions/v1/<worker> with the functions URL and the service role key read from Vault at every
 * run (secrets 'supabill_functions_url' and 'supabill_service_role_key'; without them the job
 * selects nothing and calls nothing). Without pg_cron nothing is scheduled (run the job functions
 * and POST the workers from your own scheduler). For postgres (the SQL editor, migrations) only.
 */
create function billing.schedule_jobs()
returns table (job text, schedule text, state text, detail text)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_cron boolean := exists (select from pg_catalog.pg_extension e where e.extname = 'pg_cron');
  v_net boolean := exists (select from pg_catalog.pg_extension e where e.extname = 'pg_net');
  v_vault boolean := pg_catalog.to_regclass('vault.decrypted_secrets') is not null;
  v_job billing.jobs;
begin
  for v_job in select * from billing.jobs j order by j.name
  loop
    job := v_job.name;
    schedule := v_job.schedule;
    if not v_cron then
      state := 'skipped';
      detail := 'pg_cron is not installed: enable it, then run select billing.schedule_jobs()';
    elsif not v_job.active then
      -- cron.job is read dynamically: this function is created before pg_cron may be installed.
      execute 'select cron.unschedule(j.jobid) from cron.job j where j.jobname = $1' using v_job.name;
      state := 'unscheduled';
      detail := 'inactive in billing.jobs';
    elsif v_job.worker is not null and not v_net then
      state := 'skipped';
      detail := pg_catalog.format('pg_net is not installed: POST /functions/v1/%s from another scheduler, '
                                  'or enable pg_net and run select billing.schedule_jobs()', v_job.worker);
    else
      perform cron.schedule(v_job.name, v_job.schedule, coalesce(v_job.command, pg_catalog.format($job$
        select net.http_post(
          url := u.decrypted_secret || %L,
          headers := jsonb_build_object('content-type', 'application/json',
                                        'authorization', 'Bearer ' || k.decrypted_secret),
          body := '{}'::jsonb,
          timeout_milliseconds := 60000
        )
        from vault.decrypted_secrets u, vault.decrypted_secrets k
        where u.name = 'supabill_functions_url' and k.name = 'supabill_service_role_key'
      $job$, '/' || v_job.worker)));
      state := 'scheduled';
      detail := case
        when v_job.worker is null then v_job.command
        when v_vault then pg_catalog.format('POST /functions/v1/%s with the URL and key from Vault', v_job.worker)
        else pg_catalog.format('POST /functions/v1/%s: Vault is not installed, so the job calls nothing until '
                               'the secrets supabill_functions_url and supabill_service_role_key exist', v_job.worker)
      end;
    end if;
    return next;
  end loop;
end;
$$;
revoke execute on function billing.schedule_jobs() from public, anon, authenticated, service_role;
