-- =================================================================================================
-- supabill: usage: metered quotas and count limits
--
--   increment_usage(org, metric, amount, request_id)      (the fixed contract; service_role)
--     checks every window of the metric in the plan in effect and counts in all of them, or in
--     none; a retried request_id returns its first answer and is counted once. Past a limit, a
--     plan's `<metric>_overage_event` pays in credits (billing.count_usage_past_limit).
--   billing.track_usage(events, user)                      (service_role; the usage-track function)
--     a batch of up to 1,000 events applied set-based, each answered as increment_usage would,
--     counted once per request id however often the batch is retried; late events within
--     billing_settings.usage_late_horizon count in their own windows.
--   billing.settle_usage / billing.release_usage           (service_role)
--     turn a counted request (a reservation) into its actual amount, or undo it.
--   billing.enforce_max_count()
--     the trigger app tables attach to enforce a `max_<thing>` count limit; this module attaches it
--     to organization_members (max_members) and to the demo table watchlists (max_watchlists).
--   public.get_usage(org)                                  (members and service_role)
--     for every metered limit of the plan in effect, the current window: used, limit (null:
--     unlimited), remaining, percent, window start and reset (billing.get_usage).
-- Every usage change goes through one mechanism, billing.apply_usage_delta. A counted call that
-- takes a window to or past a threshold of its limit (billing_settings.quota_alert_thresholds,
-- default 75, 90, 100 %; windows in billing_settings.quota_alert_windows, default day and month)
-- queues one 'quota_threshold' notification (billing.queue_quota_alerts): once per organization,
-- metric, window and threshold, whatever the concurrency.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- The windows of a metered limit (public.usage_window) are a foundation type.

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- usage_quotas
-- -------------------------------------------------------------------------------------------------

/**
 * Usage counters: how much of `metric` an organization used in one window (minute, hour, day,
 * month) starting at `window_start` (the organization's local day/month start). The hot counter
 * row: its updated_at is set by increment_usage itself, so the counter pays for no row trigger.
 */
create table public.usage_quotas (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  metric text not null check (metric ~ '^[a-z][a-z0-9_]{0,62}$'),
  window_unit public.usage_window not null,
  window_start timestamptz not null,
  count bigint not null default 0 check (count >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, metric, window_unit, window_start)
);

comment on table public.usage_quotas is 'Usage counters per organization, metric and window (minute, hour, day, month).';

/** Old windows, for purging. (organization_id leads the primary key.) */
create index usage_quotas_window_start_idx on public.usage_quotas (window_start);

grant select on public.usage_quotas to authenticated;

grant select, insert, update, delete on public.usage_quotas to service_role;

alter table public.usage_quotas enable row level security;

-- -------------------------------------------------------------------------------------------------
-- usage_metric_catalog
-- -------------------------------------------------------------------------------------------------

/**
 * What a metric is called where people read it (quota emails, usage pages): `groq_tokens` is
 * "AI tokens". A DBA edits it (service_role); members read it. A metric without a row is shown
 * by its code with spaces for underscores (billing.metric_display_name).
 */
create table public.usage_metric_catalog (
  metric text primary key check (metric ~ '^[a-z][a-z0-9_]{0,62}$'),
  display_name text not null check (length(btrim(display_name)) between 1 and 60),
  created_at timestamptz not null default now()
);

comment on table public.usage_metric_catalog is 'Display names of usage metrics for emails and usage pages; a DBA edits it.';

grant select on public.usage_metric_catalog to authenticated;

grant select, insert, update, delete on public.usage_metric_catalog to service_role;

alter table public.usage_metric_catalog enable row level security;

insert into public.usage_metric_catalog (metric, display_name) values
  ('groq_tokens', 'AI tokens'),
  ('ai_prompts', 'AI prompts'),
  ('ai_requests', 'AI requests'),
  ('ai_spend_paise', 'AI spend');

-- -------------------------------------------------------------------------------------------------
-- usage_metrics
-- -------------------------------------------------------------------------------------------------

/**
 * Raw usage events, one per counted request. `request_id` is the caller's idempotency key: a
 * retried request is counted once per (organization, metric). Each remembers the windows it was
 * counted in, its state (counted, settled, released) and the first answer it got, so a retry
 * returns the same answer.
 * Every allowed call writes a row, so the row costs as little as the rules allow: the one index
 * is the idempotency key, no checks (increment_usage, track_usage and the AI gateway validate
 * before they write), no foreign keys (each would run a lookup and take a KEY SHARE lock on the
 * organization or user row per call, which under concurrency on one organization becomes
 * multixact contention; the caller has already found the organization), rows go with their
 * organization by the trigger below, and user_id is a plain attribute that outlives the user
 * (like the actor of subscription_history). `id` names a row without a request id (the credit
 * charge of such a call); nothing looks a row up by it on a hot path, so it has no index.
 * Rows are appended; only settle_usage, release_usage and the AI gateway's settlement change one
 * (state, amount, answer), none of them an indexed column, so such an update is a HOT update on
 * the page the row was appended to.
 *
 * Monthly partitions (billing.partitioned_tables) on claimed_month: the UTC month (its first
 * instant) in which the request was first claimed, by billing.now(), never updated. Not
 * occurred_at: a late event or a retry may carry another time, and a released request counted
 * anew keeps its row. A unique index must include the partition key, so the idempotency key is
 * unique per month, and a request id is claimed once across months thus: every claim first looks
 * the key up in every month (increment_usage, increment_usage_general, track_usage: one probe of
 * each partition's index, by its prefix) and inserts in the current month only when no month has
 * it; two copies claiming in the same month meet on the unique index; two copies on either side
 * of a month boundary (the first within billing.usage_request_locks' margin of it) take an
 * advisory lock on the key first, so the second waits for the first and then finds its row.
 * Dedupe of a request id is guaranteed while its row is kept: forever by default, or
 * billing_settings.usage_metrics_retention_days after its month ends (the partition is dropped).
 */
create table public.usage_metrics (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  metric text not null,
  amount bigint not null,
  request_id text,
  metadata jsonb not null default '{}'::jsonb,
  occurred_at timestamptz not null default billing.now(),
  created_at timestamptz not null default now(),
  window_units public.usage_window[] not null default '{}',
  state public.usage_state not null default 'counted',
  used bigint,
  limit_amount bigint,
  resets_at timestamptz,
  -- Usage past the limit paid in credits (the plan's <metric>_overage_event): the credit charge's
  -- request id and how many of `amount` it paid for (0 once released).
  credit_request_id text,
  credit_units bigint,
  claimed_month timestamptz not null default pg_catalog.date_trunc('month', billing.now(), 'UTC')
) partition by range (claimed_month);

comment on table public.usage_metrics is 'Raw usage events: one per counted request, with its idempotency key and state; monthly partitions on claimed_month.';

/**
 * The only index: a request is counted once per organization and metric (rows without a request
 * id never conflict: nulls are distinct), per month of claim (the partition key; across months,
 * see above). Its prefixes serve the policy column (organization_id), the lookups of a request id
 * across metrics (settle_usage, release_usage, the AI gateway) and the delete of an
 * organization's rows.
 */
create unique index usage_metrics_request_unique on public.usage_metrics (organization_id, request_id, metric, claimed_month);

/** Rows no monthly partition takes (billing.maintain_partitions moves them into their month). */
create table billing_partitions.usage_metrics_default partition of public.usage_metrics default;

select billing.secure_partition('billing_partitions', 'usage_metrics_default', 'usage_metrics');

insert into billing.partitioned_tables (table_name, partition_column, retention_setting, months_ahead)
values ('public.usage_metrics', 'claimed_month', 'usage_metrics_retention_days', 3);

select billing.maintain_partitions();

grant select on public.usage_metrics to authenticated;

grant select, insert, update, delete on public.usage_metrics to service_role;

alter table public.usage_metrics enable row level security;

/** Usage rows go with their organization (usage_metrics has no foreign key, see above). */
create function billing.delete_organization_usage()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  delete from public.usage_metrics m where m.organization_id = old.id;
  return old;
end;
$$;
revoke execute on function billing.delete_organization_usage() from public;

create trigger organizations_delete_usage
  after delete on public.organizations
  for each row execute function billing.delete_organization_usage();

-- -------------------------------------------------------------------------------------------------
-- watchlists (a demo app table with a count limit)
-- -------------------------------------------------------------------------------------------------

/**
 * A demo app table with a count limit (`max_watchlists`), to show how app tables attach
 * billing.enforce_max_count(). Members manage their organization's watchlists.
 */
create table public.watchlists (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  created_at timestamptz not null default now()
);

comment on table public.watchlists is 'A demo app table whose rows are limited by the plan''s max_watchlists.';

/** Foreign keys and the policy column. */
create index watchlists_organization_id_idx on public.watchlists (organization_id);

create index watchlists_created_by_idx on public.watchlists (created_by);

-- Members rename watchlists; a watchlist never moves to another organization or author.
grant select, insert, delete on public.watchlists to authenticated;

grant update (name) on public.watchlists to authenticated;

grant select, insert, update, delete on public.watchlists to service_role;

alter table public.watchlists enable row level security;

-- -------------------------------------------------------------------------------------------------
-- Count limits: the trigger function, attached to organization_members and watchlists
-- -------------------------------------------------------------------------------------------------

/**
 * Trigger for app tables with an organization_id: refuses an insert (or a move to another
 * organization) that takes the organization past the count limit TG_ARGV[0] (e.g.
 * 'max_watchlists') of its plan in effect. A plan without the key allows none. An AFTER row
 * trigger, so it sees only rows really written: an insert that ON CONFLICT skips, or that a
 * unique key refuses with its own error, is not counted, and an update that leaves the row in
 * its organization never passes. Writes for one organization and table serialize on an
 * advisory lock, so concurrent inserts never pass the limit.
 *   create trigger watchlists_max_count after insert or update of organization_id on public.watchlists
 *     for each row execute function billing.enforce_max_count('max_watchlists');
 * Security definer: counts every row of the organization, which the inserting user's RLS may hide.
 */
create function billing.enforce_max_count()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_key text := tg_argv[0];
  v_features jsonb;
  v_limit bigint;
  v_count bigint;
begin
  if v_key is null or v_key !~ '^max_[a-z][a-z0-9_]*$' then
    raise exception 'enforce_max_count needs a max_<thing> feature key as its argument' using errcode = 'invalid_parameter_value';
  end if;
  select e.features into v_features from billing.effective_plan(new.organization_id, billing.now()) e
  where e.organization_id is not null;
  if not found then
    raise exception 'unknown organization %', new.organization_id using errcode = 'foreign_key_violation';
  end if;
  v_limit := coalesce((v_features ->> v_key)::bigint, 0);
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended(tg_table_schema || '.' || tg_table_name || ':' || new.organization_id::text, 0));
  -- The count includes this row: it has been written.
  execute pg_catalog.format('select count(*) from %I.%I where organization_id = $1', tg_table_schema, tg_table_name)
    into v_count using new.organization_id;
  if v_count > v_limit then
    raise exception '% limit reached: the plan allows % and the organization has %', v_key, v_limit, v_count - 1
      using errcode = 'check_violation', hint = 'Upgrade the plan to add more.';
  end if;
  return null;
end;
$$;
revoke execute on function billing.enforce_max_count() from public;

create trigger watchlists_max_count
  after insert or update of organization_id on public.watchlists
  for each row execute function billing.enforce_max_count('max_watchlists');

-- The plan's max_members (every seed plan sets it; free allows 1, the owner who created the
-- organization, so the free plan must allow at least 1). Members already there stay when a plan
-- with a lower limit takes effect.
create trigger organization_members_max_count
  after insert or update of organization_id on public.organization_members
  for each row execute function billing.enforce_max_count('max_members');

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

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
 * Quota alerts: an applied positive change that takes a window's count across a
 * whole percent of its limit calls billing.queue_quota_alerts. The counter row is locked until
 * commit, so exactly one call sees each crossing; every other call pays two comparisons.
 * p_past_limit (usage paid in credits, billing.count_usage_past_limit): the hour, day and month
 * windows count past their limits; a minute window is a rate limit and still refuses.
 * p_settled: how much of the change is settled use, which is what quota alerts count (null: all
 * of p_delta). A reservation (the AI gateway's worst case) passes 0, so it never alerts; its
 * settlement (billing.settle_usage) passes the actual amount, and the alert compares the
 * window's count before and after that settled amount.
 */
create function billing.apply_usage_delta(
  p_organization_id uuid,
  p_metric text,
  p_units public.usage_window[],
  p_at timestamptz,
  p_timezone text,
  p_features jsonb,
  p_delta bigint,
  p_past_limit boolean default false,
  p_settled bigint default null,
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
  v_n integer;
  v_starts timestamptz[] := '{}'::timestamptz[];
  v_ends timestamptz[] := '{}'::timestamptz[];
  v_limits bigint[] := '{}'::bigint[];
  v_counts bigint[] := '{}'::bigint[];
  v_inserted boolean[] := '{}'::boolean[];
  v_count bigint;
  v_was_inserted boolean;
  v_done integer := 0;
  v_settled bigint;
begin
  -- The windows and their limits (a window the features do not name allows nothing; a null value
  -- is unlimited), in window order.
  select pg_catalog.array_agg(w.unit order by w.unit), pg_catalog.array_agg(w.starts order by w.unit),
         pg_catalog.array_agg(w.ends order by w.unit), pg_catalog.array_agg(w.lim order by w.unit)
  into p_units, v_starts, v_ends, v_limits
  from billing.usage_windows(p_metric, p_units, p_at, p_timezone, p_features) w;
  p_units := coalesce(p_units, '{}'::public.usage_window[]);
  v_n := pg_catalog.cardinality(p_units);

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
  elsif coalesce(p_settled, p_delta) > 0 then
    -- Quota alerts on settled use: only a change across a whole percent of a limit can cross a
    -- threshold.
    v_settled := coalesce(p_settled, p_delta);
    for i in 1 .. v_n loop
      if v_limits[i] > 0
         and pg_catalog.floor(v_counts[i] * 100.0 / v_limits[i])
             > pg_catalog.floor((v_counts[i] - v_settled) * 100.0 / v_limits[i]) then
        perform billing.queue_quota_alerts(p_organization_id, p_metric, p_units[i], v_starts[i], v_ends[i],
                                           v_counts[i] - v_settled, v_counts[i], v_limits[i]);
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
revoke execute on function billing.apply_usage_delta(uuid, text, public.usage_window[], timestamptz, text, jsonb, bigint, boolean, bigint) from public;
grant execute on function billing.apply_usage_delta(uuid, text, public.usage_window[], timestamptz, text, jsonb, bigint, boolean, bigint) to service_role;

/**
 * The windows of p_metric that contain p_at on the organization's clock (p_timezone), minute to
 * month: each unit of p_units, or with p_units null every window the plan's features name
 * (`<metric>_per_<unit>`); its start, its end, and its limit in p_features (null: unlimited; a
 * window the features do not name allows nothing, 0). The one place the window arithmetic and
 * the limit lookup live for increment_usage and apply_usage_delta (track_usage still computes its
 * windows in its own statement, the same arithmetic: left to share).
 */
create function billing.usage_windows(
  p_metric text,
  p_units public.usage_window[],
  p_at timestamptz,
  p_timezone text,
  p_features jsonb
)
returns table (unit public.usage_window, starts timestamptz, ends timestamptz, lim bigint)
language plpgsql
stable
set search_path = ''
as $$
begin
  return query
    select x.u,
           pg_catalog.date_trunc(x.u::text, p_at at time zone p_timezone) at time zone p_timezone,
           (pg_catalog.date_trunc(x.u::text, p_at at time zone p_timezone) + ('1 ' || x.u::text)::interval)
             at time zone p_timezone,
           case when p_features ? (p_metric || '_per_' || x.u::text)
                then (p_features ->> (p_metric || '_per_' || x.u::text))::bigint else 0 end
    from pg_catalog.unnest('{minute,hour,day,month}'::public.usage_window[]) as x(u)
    where case when p_units is null then coalesce(p_features ? (p_metric || '_per_' || x.u::text), false)
               else x.u = any (p_units) end
    order by x.u;
end;
$$;
revoke execute on function billing.usage_windows(text, public.usage_window[], timestamptz, text, jsonb) from public;
grant execute on function billing.usage_windows(text, public.usage_window[], timestamptz, text, jsonb) to service_role;

/**
 * Puts back what one change of p_delta did to the counters of the windows p_units starting at
 * p_starts, where p_counts is not null (the windows it changed): a row it created (p_inserted)
 * goes, the others get their count back. The caller still holds the rows' locks, so nobody saw
 * the change.
 */
create function billing.put_back_usage(
  p_organization_id uuid,
  p_metric text,
  p_units public.usage_window[],
  p_starts timestamptz[],
  p_inserted boolean[],
  p_counts bigint[],
  p_delta bigint
)
returns void
language plpgsql
volatile
set search_path = ''
as $$
begin
  delete from public.usage_quotas q
  using unnest(p_units, p_starts, p_inserted, p_counts) as u(unit, starts, inserted, count)
  where u.count is not null and u.inserted
    and q.organization_id = p_organization_id and q.metric = p_metric
    and q.window_unit = u.unit and q.window_start = u.starts;
  update public.usage_quotas q
  set count = q.count - p_delta
  from unnest(p_units, p_starts, p_inserted, p_counts) as u(unit, starts, inserted, count)
  where u.count is not null and not u.inserted
    and q.organization_id = p_organization_id and q.metric = p_metric
    and q.window_unit = u.unit and q.window_start = u.starts;
end;
$$;
revoke execute on function billing.put_back_usage(uuid, text, public.usage_window[], timestamptz[], boolean[], bigint[],
  bigint) from public;
grant execute on function billing.put_back_usage(uuid, text, public.usage_window[], timestamptz[], boolean[], bigint[],
  bigint) to service_role;

/**
 * Claims of request ids (p_organization_ids, p_request_ids, p_metrics, side by side) at p_at:
 * within 10 minutes of a UTC month's start or end, each key's transaction advisory lock, in hash
 * order (so two batches never wait on each other in a cycle); elsewhere nothing. usage_metrics is
 * partitioned by the month of claim and its unique index is per month, so two copies of a request
 * claiming on either side of a boundary do not meet on it: the lock makes the second wait for the
 * first, then (in its next statement) find the first's row. The margin assumes a claim's
 * transaction is shorter than 10 minutes. Keys with a null part are skipped.
 */
create function billing.usage_request_locks(
  p_at timestamptz,
  p_organization_ids uuid[],
  p_request_ids text[],
  p_metrics text[]
)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_month timestamptz := pg_catalog.date_trunc('month', p_at, 'UTC');
  v_key bigint;
begin
  if p_at - v_month >= interval '10 minutes'
     and (v_month + interval '1 month') - p_at > interval '10 minutes' then
    return;
  end if;
  for v_key in
    select distinct pg_catalog.hashtextextended('usage_request:' || u.org::text || ':' || u.rid || ':' || u.metric, 0) as h
    from unnest(p_organization_ids, p_request_ids, p_metrics) as u(org, rid, metric)
    where u.org is not null and u.rid is not null and u.metric is not null
    order by h
  loop
    perform pg_catalog.pg_advisory_xact_lock(v_key);
  end loop;
end;
$$;
revoke execute on function billing.usage_request_locks(timestamptz, uuid[], text[], text[]) from public;
grant execute on function billing.usage_request_locks(timestamptz, uuid[], text[], text[]) to service_role;

/**
 * increment_usage's general path, for what its one statement does not decide: a window refused
 * (denied, or counted past the limit and paid in credits with `<metric>_overage_event`), a
 * released request counted anew. The same answers as increment_usage on the same inputs (pgTAP
 * pins them), through billing.apply_usage_delta. p_now, p_timezone and p_features: the call's
 * time and the organization's plan in effect. A request id is claimed first (its usage row
 * inserted before the decision), so a concurrent duplicate waits, then answers the first answer.
 */
create function billing.increment_usage_general(
  p_organization_id uuid,
  p_metric text,
  p_amount integer,
  p_request_id text,
  p_now timestamptz,
  p_timezone text,
  p_features jsonb,
  out allowed boolean,
  out used bigint,
  out limit_amount bigint,
  out remaining bigint,
  out resets_at timestamptz,
  out credits_charged bigint
)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_units public.usage_window[];
  v_metric_id uuid;
  v_recount boolean := false;
  v_answer record;
  v_credit_request_id text;
  v_credit_units bigint;
  v_paid record;
begin
  credits_charged := 0;
  select coalesce(pg_catalog.array_agg(w.unit order by w.unit), '{}'::public.usage_window[]) into v_units
  from billing.usage_windows(p_metric, null, p_now, p_timezone, p_features) w;
  if v_units = '{}' then
    -- Not in the plan: denied with limit 0.
    allowed := false;
    used := 0;
    limit_amount := 0;
    remaining := 0;
    return;
  end if;

  if p_request_id is not null then
    -- Claim the request id first, unless a month has it: a concurrent duplicate waits here, then
    -- sees the first answer.
    insert into public.usage_metrics (organization_id, metric, amount, request_id, window_units, occurred_at,
                                      claimed_month)
    select p_organization_id, p_metric, p_amount, p_request_id, v_units, p_now,
           pg_catalog.date_trunc('month', p_now, 'UTC')
    where not exists (select from public.usage_metrics m
                      where m.organization_id = p_organization_id and m.request_id = p_request_id
                        and m.metric = p_metric)
    on conflict (organization_id, request_id, metric, claimed_month) do nothing
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

  v_answer := billing.apply_usage_delta(p_organization_id, p_metric, v_units, p_now, p_timezone,
                                        p_features, p_amount);
  allowed := v_answer.allowed;
  used := v_answer.used;
  limit_amount := v_answer.limit_amount;
  -- Never below 0 (a count past the limit: paid in credits, or a plan with a lower limit).
  remaining := case when v_answer.remaining < 0 then 0 else v_answer.remaining end;
  resets_at := v_answer.resets_at;
  v_credit_request_id := null;
  if not allowed and p_features ? (p_metric || '_overage_event') then
    -- Past the limit: paid in credits if the organization has them.
    if v_metric_id is null then
      v_metric_id := gen_random_uuid();
    end if;
    v_credit_request_id := billing.usage_credit_request_id(p_metric, coalesce(p_request_id, v_metric_id::text), v_recount);
    v_paid := billing.count_usage_past_limit(p_organization_id, p_metric, v_units, p_now, p_timezone,
                                             p_features, p_amount, p_features ->> (p_metric || '_overage_event'),
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
    delete from public.usage_metrics m
    where m.organization_id = p_organization_id and m.request_id = p_request_id and m.metric = p_metric
      and not v_recount;
  elsif p_request_id is not null then
    update public.usage_metrics m
    set amount = p_amount, state = 'counted', window_units = v_units, occurred_at = p_now,
        used = increment_usage_general.used, limit_amount = increment_usage_general.limit_amount, resets_at = increment_usage_general.resets_at,
        credit_request_id = coalesce(v_credit_request_id, m.credit_request_id),
        credit_units = case when v_credit_request_id is not null then v_credit_units else m.credit_units end
    where m.organization_id = p_organization_id and m.request_id = p_request_id and m.metric = p_metric;
  else
    insert into public.usage_metrics
      (id, organization_id, metric, amount, window_units, occurred_at, used, limit_amount, resets_at,
       credit_request_id, credit_units, claimed_month)
    values (coalesce(v_metric_id, gen_random_uuid()), p_organization_id, p_metric, p_amount, v_units, p_now,
            increment_usage_general.used, increment_usage_general.limit_amount, increment_usage_general.resets_at, v_credit_request_id,
            v_credit_units, pg_catalog.date_trunc('month', p_now, 'UTC'));
  end if;
end;
$$;
revoke execute on function billing.increment_usage_general(uuid, text, integer, text, timestamptz, text, jsonb) from public;
grant execute on function billing.increment_usage_general(uuid, text, integer, text, timestamptz, text, jsonb) to service_role;

/**
 * The request id of the credit charge that pays a usage request's units past the limit:
 * `usage:<metric>:<request id>` (the usage row's id for a call without one), so a retry finds the
 * same charge; a request counted again after its release gets a charge of its own (a random
 * suffix). Hashed when longer than a credit request id may be (200 characters).
 */
create function billing.usage_credit_request_id(p_metric text, p_request text, p_recount boolean)
returns text
language plpgsql
volatile
set search_path = ''
as $$
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
$$;
revoke execute on function billing.usage_credit_request_id(text, text, boolean) from public;

/**
 * Usage past a limit paid in credits: called by increment_usage when the plan names an
 * `<metric>_overage_event` and the call was denied. Counts p_amount past the hour, day and month
 * limits (billing.apply_usage_delta with p_past_limit; a minute window is a rate limit and still
 * refuses), then charges the units past the limit (those beyond the tightest window's limit, at
 * most p_amount) to the credit event under p_credit_request_id (billing.consume_credits), all in
 * one subtransaction: when the credits do not cover it, or the event is inactive, nothing is
 * counted, charged or alerted and allowed is false. The counter rows are locked from the count to
 * the commit, so the units past the limit are exact under concurrency and no two calls pay for the
 * same unit; the credit lock is taken after them (usage first, credits second, as in
 * release_usage). Answers the tightest window (remaining never below 0), the units paid and the
 * credits charged.
 */
create function billing.count_usage_past_limit(
  p_organization_id uuid,
  p_metric text,
  p_units public.usage_window[],
  p_at timestamptz,
  p_timezone text,
  p_features jsonb,
  p_amount bigint,
  p_event text,
  p_credit_request_id text,
  out allowed boolean,
  out used bigint,
  out limit_amount bigint,
  out remaining bigint,
  out resets_at timestamptz,
  out units bigint,
  out credits bigint
)
language plpgsql
volatile
set search_path = ''
as $$
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
$$;
revoke execute on function billing.count_usage_past_limit(uuid, text, public.usage_window[], timestamptz, text, jsonb,
  bigint, text, text) from public;
grant execute on function billing.count_usage_past_limit(uuid, text, public.usage_window[], timestamptz, text, jsonb,
  bigint, text, text) to service_role;

/**
 * Turn a counted request into its actual amount (a reservation settled): lower gives back the
 * difference, higher is taken only if it fits every window's remaining quota (else allowed =
 * false and nothing changes). Counted in the windows of the original request. Idempotent:
 * settling again to the same amount changes nothing. p_metric is needed only when the request
 * id was counted under several metrics. A request whose units past the limit were paid in
 * credits: the units given back are those past the limit first (the last counted), and their
 * credits go back to the grants (billing.settle_credits, in proportion to the charge's price);
 * settling higher is never paid in credits.
 */
create function billing.settle_usage(
  p_organization_id uuid,
  p_request_id text,
  p_actual_amount bigint,
  p_metric text default null,
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
                                        p_actual_amount - v_metric.amount,
                                        -- Settled use grows by the amount settled (a row settled
                                        -- before: by what this settlement adds).
                                        p_settled => case when v_metric.state = 'settled' then p_actual_amount - v_metric.amount
                                                          else p_actual_amount end);
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
    where m.organization_id = p_organization_id and m.request_id = p_request_id and m.metric = v_metric.metric;
  end if;
  allowed := v_answer.allowed;
  used := v_answer.used;
  limit_amount := v_answer.limit_amount;
  remaining := v_answer.remaining;
  resets_at := v_answer.resets_at;
end;
$$;
revoke execute on function billing.settle_usage(uuid, text, bigint, text) from public;
grant execute on function billing.settle_usage(uuid, text, bigint, text) to service_role;

/**
 * Undo a counted request (its upstream call failed): every metric counted under the request id
 * gives its amount back to the windows it was counted in, and the credits that paid for its units
 * past the limit back to their grants (public.release_credits). Idempotent: returns the number of
 * metrics released by this call (0 when already released or unknown). Locks in the usage order:
 * the metrics' windows in metric name order, then, after all of them, the credit lock (usage
 * first, credits second, as increment_usage and the AI gateway take them).
 */
create function billing.release_usage(p_organization_id uuid, p_request_id text)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
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
    where m.organization_id = p_organization_id and m.request_id = p_request_id and m.metric = v_metric.metric;
    v_released := v_released + 1;
  end loop;
  -- The credits after every window: the credit lock comes last.
  foreach v_credit_request_id in array v_credit_request_ids loop
    perform public.release_credits(p_organization_id, v_credit_request_id);
  end loop;
  return v_released;
end;
$$;
revoke execute on function billing.release_usage(uuid, text) from public;
grant execute on function billing.release_usage(uuid, text) to service_role;

/**
 * usage-track's counters write (billing.track_usage): sets each counter to p_after where it
 * differs from p_before (the caller holds the rows' locks, so absolute values are exact; with
 * p_write false the caller has written them already) and
 * queues the quota alerts of the thresholds crossed between the two, as apply_usage_delta does for
 * one change: a rise across a whole percent of a limit calls billing.queue_quota_alerts.
 */
create function billing.write_usage_counters(
  p_organization_ids uuid[],
  p_metrics text[],
  p_units public.usage_window[],
  p_starts timestamptz[],
  p_ends timestamptz[],
  p_limits bigint[],
  p_before bigint[],
  p_after bigint[],
  p_write boolean default true
)
returns void
language plpgsql
volatile
set search_path = ''
as $$
begin
  if p_write then
    update public.usage_quotas q
    set count = u.after, updated_at = pg_catalog.now()
    from unnest(p_organization_ids, p_metrics, p_units, p_starts, p_before, p_after)
      as u(organization_id, metric, unit, starts, before, after)
    where u.after <> u.before
      and q.organization_id = u.organization_id and q.metric = u.metric
      and q.window_unit = u.unit and q.window_start = u.starts;
  end if;
  perform billing.queue_quota_alerts(u.organization_id, u.metric, u.unit, u.starts, u.ends, u.before, u.after, u.lim)
  from unnest(p_organization_ids, p_metrics, p_units, p_starts, p_ends, p_limits, p_before, p_after)
    as u(organization_id, metric, unit, starts, ends, lim, before, after)
  where u.lim > 0 and u.after > u.before
    and pg_catalog.floor(u.after * 100.0 / u.lim) > pg_catalog.floor(u.before * 100.0 / u.lim);
end;
$$;
revoke execute on function billing.write_usage_counters(uuid[], text[], public.usage_window[], timestamptz[],
  timestamptz[], bigint[], bigint[], bigint[], boolean) from public;

/**
 * A batch of usage events (usage-track), applied in a few set-based statements and answered one
 * row per event, in order. p_events is a JSON array of at most 1,000 objects
 * {organization_id, metric, quantity, request_id, occurred_at?}.
 *
 * Each event is answered as increment_usage would answer it (the same windows, limits, tightest
 * window, credits past a limit with `<metric>_overage_event`, quota alerts), applied in the order
 * of the batch: a refused event counts nothing and does not take quota from the events after it.
 * An event that cannot be applied answers an error code for itself alone, and the others apply:
 *   invalid_event (not an object), unknown_organization, invalid_metric (not a metric name),
 *   unknown_metric (the plan in effect meters no such metric: denied with limit 0, as
 *   increment_usage denies it), invalid_quantity (an integer from 1 to 2147483647),
 *   missing_request_id (absent, not a string, or not 1 to 200 characters), invalid_occurred_at,
 *   event_in_future (more than 5 minutes ahead; within 5 minutes it counts now: clock skew),
 *   late_event_closed (older than billing_settings.usage_late_horizon).
 *
 * Exactly once: an event is counted once per (organization, metric, request id), as increment_usage
 * counts a request id. A request id already counted answers the answer stored with its usage row
 * when it was counted (duplicate = true), however often the batch is retried and whatever part of
 * it succeeded before; a request id repeated inside the batch answers its first event's answer. A
 * refused event leaves no row, so a retry is decided again (as increment_usage). A released
 * request (billing.release_usage) counts anew.
 *
 * Late events: an event counts in the windows that contain its occurred_at (on the organization's
 * clock) under the plan in effect now, while occurred_at is within the horizon. There is no
 * usage-based invoice, so no window is closed by an invoice: the horizon is the only rule.
 *
 * Locks, so that concurrent copies of a batch (and increment_usage, release_usage) cannot
 * deadlock: first the request ids, claimed by inserting their usage rows in key order (a
 * concurrent copy waits on the first key it shares, then finds it counted); then every counter row
 * the batch touches, in key order (organization, metric, window, window start: increment_usage's
 * order); then credits, last. The decisions are made in memory over the locked counts; the counters
 * are written with one statement (and before a credit charge, which reads them).
 *
 * p_user_id: a signed-in user's report (the usage-track function passes the JWT's subject): one
 * event, for an organization the user is a member of, of a metric in the plan's `client_metrics`
 * feature; anything else raises insufficient_privilege (42501). service_role only.
 */
create function billing.track_usage(p_events jsonb, p_user_id uuid default null)
returns table (
  ordinal integer,
  allowed boolean,
  used bigint,
  limit_amount bigint,
  remaining bigint,
  resets_at timestamptz,
  credits_charged bigint,
  duplicate boolean,
  error text
)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_horizon interval;
  v_n integer;
  -- Per event, by its position in the batch.
  e_org uuid[]; e_metric text[]; e_qty bigint[]; e_rid text[]; e_at timestamptz[]; e_err text[];
  e_tz text[]; e_features jsonb[]; e_units text[];
  e_first integer[];
  e_row uuid[]; e_fresh boolean[];
  e_allowed boolean[]; e_used bigint[]; e_limit bigint[]; e_remaining bigint[]; e_resets timestamptz[];
  e_credits bigint[]; e_dup boolean[]; e_credit_rid text[]; e_credit_units bigint[];
  -- Per event window: slot (i - 1) * 4 + j (j: minute, hour, day, month) holds the counter index.
  w_k integer[];
  -- Per counter, by its index in key order.
  c_org uuid[]; c_metric text[]; c_unit public.usage_window[]; c_start timestamptz[]; c_end timestamptz[];
  c_limit bigint[]; c_count bigint[]; c_saved bigint[]; c_inserted boolean[]; c_delta bigint[];
  v_written boolean;
  v_ks integer[];
  v_ss integer[];
  v_fits boolean;
  v_k integer;
  v_best integer;
  v_event text;
  v_paid record;
begin
  if p_events is null or pg_catalog.jsonb_typeof(p_events) <> 'array' then
    raise exception 'track_usage: events must be a JSON array' using errcode = 'invalid_parameter_value';
  end if;
  v_n := pg_catalog.jsonb_array_length(p_events);
  if v_n > 1000 then
    raise exception 'track_usage: at most 1,000 events per batch, got %', v_n using errcode = 'invalid_parameter_value';
  end if;
  if v_n = 0 then
    return;
  end if;
  if p_user_id is not null and v_n <> 1 then
    raise exception 'track_usage: a signed-in user reports one event at a time, got %', v_n
      using errcode = 'invalid_parameter_value';
  end if;
  select s.usage_late_horizon into v_horizon from public.billing_settings s where s.id;
  v_horizon := coalesce(v_horizon, interval '48 hours');

  -- 1. Parse and validate every event, with its organization's plan in effect (once per organization).
  with ev as (
    select x.ord::integer as ord, x.v,
           case when pg_catalog.jsonb_typeof(x.v) = 'object' then x.v end as o
    from pg_catalog.jsonb_array_elements(p_events) with ordinality as x(v, ord)
  ), parsed as (
    select ev.ord, ev.o,
           case when pg_catalog.jsonb_typeof(ev.o -> 'organization_id') = 'string'
                 and ev.o ->> 'organization_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                then (ev.o ->> 'organization_id')::uuid end as org,
           case when pg_catalog.jsonb_typeof(ev.o -> 'metric') = 'string'
                 and ev.o ->> 'metric' ~ '^[a-z][a-z0-9_]{0,62}$' and ev.o ->> 'metric' !~ '_per_'
                then ev.o ->> 'metric' end as metric,
           case when pg_catalog.jsonb_typeof(ev.o -> 'quantity') = 'number'
                 and (ev.o ->> 'quantity') ~ '^[0-9]{1,10}$' and (ev.o ->> 'quantity')::bigint between 1 and 2147483647
                then (ev.o ->> 'quantity')::bigint end as qty,
           case when pg_catalog.jsonb_typeof(ev.o -> 'request_id') = 'string'
                 and pg_catalog.length(ev.o ->> 'request_id') between 1 and 200
                then ev.o ->> 'request_id' end as rid,
           case when ev.o -> 'occurred_at' is null or pg_catalog.jsonb_typeof(ev.o -> 'occurred_at') = 'null' then v_now
                when pg_catalog.jsonb_typeof(ev.o -> 'occurred_at') = 'string'
                 and ev.o ->> 'occurred_at' ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$'
                then (ev.o ->> 'occurred_at')::timestamptz end as at
    from ev
  ), orgs as (
    select o.org, p.organization_id is not null as known, p.timezone, p.features
    from (select distinct parsed.org from parsed where parsed.org is not null) o
    -- One plan lookup for every organization of the batch, in this query (the rules inlined).
    cross join lateral billing.effective_plan_rows(o.org, v_now) p
  )
  select pg_catalog.array_agg(p.org order by p.ord),
         pg_catalog.array_agg(p.metric order by p.ord),
         pg_catalog.array_agg(p.qty order by p.ord),
         pg_catalog.array_agg(p.rid order by p.ord),
         pg_catalog.array_agg(least(p.at, v_now) order by p.ord),
         pg_catalog.array_agg(o.timezone order by p.ord),
         pg_catalog.array_agg(o.features order by p.ord),
         pg_catalog.array_agg(
           case when p.o is null then 'invalid_event'
                when p.org is null or not coalesce(o.known, false) then 'unknown_organization'
                when p.metric is null then 'invalid_metric'
                when p.qty is null then 'invalid_quantity'
                when p.rid is null then 'missing_request_id'
                when p.at is null then 'invalid_occurred_at'
                when p.at > v_now + interval '5 minutes' then 'event_in_future'
                when p.at < v_now - v_horizon then 'late_event_closed'
                when not (o.features ? (p.metric || '_per_minute') or o.features ? (p.metric || '_per_hour')
                          or o.features ? (p.metric || '_per_day') or o.features ? (p.metric || '_per_month'))
                  then 'unknown_metric'
           end order by p.ord)
  into e_org, e_metric, e_qty, e_rid, e_at, e_tz, e_features, e_err
  from parsed p
  left join orgs o on o.org = p.org;

  if p_user_id is not null then
    if e_org[1] is not null and not exists (
         select from public.organization_members m where m.organization_id = e_org[1] and m.user_id = p_user_id) then
      raise exception 'track_usage: the user is not a member of organization %', e_org[1]
        using errcode = 'insufficient_privilege';
    end if;
    if e_metric[1] is not null and e_features[1] is not null
       and not coalesce(e_features[1] -> 'client_metrics' ? e_metric[1], false) then
      raise exception 'track_usage: the plan does not let signed-in users report "%" (its client_metrics feature)', e_metric[1]
        using errcode = 'insufficient_privilege';
    end if;
  end if;

  -- Answers start empty; a request id repeated in the batch points at its first event.
  e_allowed := pg_catalog.array_fill(null::boolean, array[v_n]);
  e_used := pg_catalog.array_fill(null::bigint, array[v_n]);
  e_limit := e_used; e_remaining := e_used; e_credits := e_used; e_credit_units := e_used;
  e_resets := pg_catalog.array_fill(null::timestamptz, array[v_n]);
  e_credit_rid := pg_catalog.array_fill(null::text, array[v_n]);
  e_dup := pg_catalog.array_fill(false, array[v_n]);
  e_row := pg_catalog.array_fill(null::uuid, array[v_n]);
  e_fresh := pg_catalog.array_fill(false, array[v_n]);
  select pg_catalog.array_agg(f.first order by f.ord) into e_first
  from (
    select u.ord::integer as ord,
           case when u.err is null then pg_catalog.min(u.ord) over (partition by u.org, u.metric, u.rid, u.err is null) end::integer as first
    from unnest(e_org, e_metric, e_rid, e_err) with ordinality as u(org, metric, rid, err, ord)
  ) f;

  -- 2. Claim the request ids: a usage row per first event whose key no month has, inserted in the
  -- current month in key order. A concurrent copy of the batch waits here on the first key it
  -- shares, then finds the key taken; near a month boundary the keys are locked first (a copy
  -- claiming in the other month waits; see the table).
  perform billing.usage_request_locks(v_now, e_org, e_rid, e_metric);
  with ins as (
    insert into public.usage_metrics (organization_id, user_id, metric, amount, request_id, occurred_at, claimed_month)
    select u.org, p_user_id, u.metric, u.qty, u.rid, u.at, pg_catalog.date_trunc('month', v_now, 'UTC')
    from unnest(e_org, e_metric, e_qty, e_rid, e_at, e_err, e_first) with ordinality as u(org, metric, qty, rid, at, err, first, ord)
    where u.err is null and u.first = u.ord
      and not exists (select from public.usage_metrics m
                      where m.organization_id = u.org and m.request_id = u.rid and m.metric = u.metric)
    order by u.org, u.metric, u.rid
    on conflict (organization_id, request_id, metric, claimed_month) do nothing
    returning usage_metrics.id, usage_metrics.organization_id, usage_metrics.metric, usage_metrics.request_id
  )
  select pg_catalog.array_agg(ins.id order by u.ord)
  into e_row
  from unnest(e_org, e_metric, e_rid, e_err, e_first) with ordinality as u(org, metric, rid, err, first, ord)
  left join ins on ins.organization_id = u.org and ins.metric = u.metric and ins.request_id = u.rid
                and u.err is null and u.first = u.ord;
  for i in 1 .. v_n loop
    e_fresh[i] := e_row[i] is not null;
  end loop;

  -- Keys already counted: their stored answer (a released one counts anew, in its own row).
  for v_paid in
    select u.ord::integer as ord, m.id, m.state, m.used, m.limit_amount, m.resets_at, c.charged
    from unnest(e_org, e_metric, e_rid, e_err, e_first, e_row) with ordinality as u(org, metric, rid, err, first, row_id, ord)
    join public.usage_metrics m on m.organization_id = u.org and m.metric = u.metric and m.request_id = u.rid
    left join public.credit_charges c on c.organization_id = m.organization_id and c.request_id = m.credit_request_id
    where u.err is null and u.first = u.ord and u.row_id is null
    order by u.org, u.metric, u.rid
    for update of m
  loop
    e_row[v_paid.ord] := v_paid.id;
    if v_paid.state <> 'released' then
      e_dup[v_paid.ord] := true;
      e_allowed[v_paid.ord] := true;
      e_used[v_paid.ord] := v_paid.used;
      e_limit[v_paid.ord] := v_paid.limit_amount;
      e_remaining[v_paid.ord] := case when v_paid.limit_amount < v_paid.used then 0 else v_paid.limit_amount - v_paid.used end;
      e_resets[v_paid.ord] := v_paid.resets_at;
      e_credits[v_paid.ord] := coalesce(v_paid.charged, 0);
    end if;
  end loop;

  -- 3. The windows of the events to decide, and their counters, locked in key order.
  with ev as (
    select u.ord::integer as ord, u.org, u.metric, u.at, u.tz, u.features
    from unnest(e_org, e_metric, e_at, e_tz, e_features, e_err, e_first, e_dup, e_row)
      with ordinality as u(org, metric, at, tz, features, err, first, dup, row_id, ord)
    where u.err is null and u.first = u.ord and not u.dup and u.row_id is not null
  ), w as (
    select ev.ord, wu.j::integer as j, ev.org, ev.metric, wu.unit,
           pg_catalog.date_trunc(wu.unit::text, ev.at at time zone ev.tz) at time zone ev.tz as starts,
           (pg_catalog.date_trunc(wu.unit::text, ev.at at time zone ev.tz) + ('1 ' || wu.unit::text)::interval)
             at time zone ev.tz as ends,
           (ev.features ->> (ev.metric || '_per_' || wu.unit::text))::bigint as lim
    from ev
    cross join lateral unnest('{minute,hour,day,month}'::public.usage_window[]) with ordinality as wu(unit, j)
    where ev.features ? (ev.metric || '_per_' || wu.unit::text)
  ), ranked as (
    select w.*, pg_catalog.dense_rank() over (order by w.org, w.metric, w.unit, w.starts)::integer as k from w
  ), slots as (
    select pg_catalog.array_agg(r.k order by r.ord, r.j) as ks, pg_catalog.array_agg((r.ord - 1) * 4 + r.j order by r.ord, r.j) as ss
    from ranked r
  ), per_event as (
    select r.ord, pg_catalog.array_agg(r.unit order by r.j)::text as units from ranked r group by r.ord
  ), counters as (
    select distinct on (r.k) r.k, r.org, r.metric, r.unit, r.starts, r.ends, r.lim from ranked r order by r.k
  )
  select pg_catalog.array_agg(c.org order by c.k), pg_catalog.array_agg(c.metric order by c.k),
         pg_catalog.array_agg(c.unit order by c.k), pg_catalog.array_agg(c.starts order by c.k),
         pg_catalog.array_agg(c.ends order by c.k), pg_catalog.array_agg(c.lim order by c.k),
         (select s.ks from slots s), (select s.ss from slots s),
         (select pg_catalog.array_agg(pe.units order by g.i)
          from pg_catalog.generate_series(1, v_n) g(i) left join per_event pe on pe.ord = g.i)
  into c_org, c_metric, c_unit, c_start, c_end, c_limit, v_ks, v_ss, e_units
  from counters c;
  -- Each event window's counter index, by slot.
  w_k := pg_catalog.array_fill(null::integer, array[v_n * 4]);
  for i in 1 .. coalesce(pg_catalog.cardinality(v_ss), 0) loop
    w_k[v_ss[i]] := v_ks[i];
  end loop;
  c_delta := pg_catalog.array_fill(0::bigint, array[coalesce(pg_catalog.cardinality(c_org), 0)]);
  for i in 1 .. v_n loop
    continue when e_err[i] is not null or e_first[i] <> i or e_dup[i] or e_row[i] is null;
    for j in 1 .. 4 loop
      v_k := w_k[(i - 1) * 4 + j];
      continue when v_k is null;
      c_delta[v_k] := c_delta[v_k] + e_qty[i];
    end loop;
  end loop;

  -- The usual case first: every event fits. Each counter gets the batch's total in one upsert, in
  -- key order (which also locks it); if any counter passes its limit, the subtransaction is undone
  -- and the events are decided one by one below. The counters' answers are matched back by key
  -- through a JSON object, not a join: the planner cannot size a RETURNING list.
  v_written := false;
  if c_org is not null then
    begin
      with up as (
        insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
        select u.org, u.metric, u.unit, u.starts, u.delta, pg_catalog.now()
        from unnest(c_org, c_metric, c_unit, c_start, c_delta) with ordinality as u(org, metric, unit, starts, delta, k)
        order by u.k
        on conflict (organization_id, metric, window_unit, window_start) do update
          set count = q.count + excluded.count, updated_at = excluded.updated_at
        returning q.organization_id::text || q.metric || q.window_unit::text || q.window_start::text as key, q.count
      ), answers as (
        select pg_catalog.jsonb_object_agg(up.key, up.count) as m from up
      )
      select pg_catalog.array_agg((a.m ->> (u.org::text || u.metric || u.unit::text || u.starts::text))::bigint - u.delta
                                  order by u.k)
      into c_count
      from answers a, unnest(c_org, c_metric, c_unit, c_start, c_delta) with ordinality as u(org, metric, unit, starts, delta, k);
      if exists (select from unnest(c_count, c_delta, c_limit) as u(before, delta, lim) where u.before + u.delta > u.lim) then
        raise exception 'a counter passes its limit' using errcode = 'SB002';
      end if;
      v_written := true;
    exception when sqlstate 'SB002' then
      v_written := false;
    end;
  end if;
  c_inserted := pg_catalog.array_fill(false, array[coalesce(pg_catalog.cardinality(c_org), 0)]);
  if not v_written then
    -- Lock every counter in key order (a row this batch creates starts at 0), and read its count.
    with locked as (
      insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
      select u.org, u.metric, u.unit, u.starts, 0, pg_catalog.now()
      from unnest(c_org, c_metric, c_unit, c_start) with ordinality as u(org, metric, unit, starts, k)
      order by u.k
      on conflict (organization_id, metric, window_unit, window_start) do update set count = q.count
      returning q.organization_id::text || q.metric || q.window_unit::text || q.window_start::text as key,
                pg_catalog.jsonb_build_array(q.count, q.xmax = 0) as answer
    ), answers as (
      select pg_catalog.jsonb_object_agg(l.key, l.answer) as m from locked l
    )
    select pg_catalog.array_agg((a.m -> (u.org::text || u.metric || u.unit::text || u.starts::text) ->> 0)::bigint order by u.k),
           pg_catalog.array_agg((a.m -> (u.org::text || u.metric || u.unit::text || u.starts::text) ->> 1)::boolean order by u.k)
    into c_count, c_inserted
    from answers a, unnest(c_org, c_metric, c_unit, c_start) with ordinality as u(org, metric, unit, starts, k);
  end if;
  c_saved := c_count;

  -- 4. Decide each event in order over the locked counts, as apply_usage_delta would.
  for i in 1 .. v_n loop
    continue when e_err[i] is not null or e_first[i] <> i or e_dup[i] or e_row[i] is null;
    v_fits := true;
    for j in 1 .. 4 loop
      v_k := w_k[(i - 1) * 4 + j];
      continue when v_k is null;
      if c_limit[v_k] is not null and c_count[v_k] + e_qty[i] > c_limit[v_k] then
        v_fits := false;
      end if;
    end loop;
    if v_fits then
      for j in 1 .. 4 loop
        v_k := w_k[(i - 1) * 4 + j];
        continue when v_k is null;
        c_count[v_k] := c_count[v_k] + e_qty[i];
      end loop;
      e_allowed[i] := true;
      e_credits[i] := 0;
    else
      e_allowed[i] := false;
      v_event := e_features[i] ->> (e_metric[i] || '_overage_event');
      if v_event is not null then
        -- Past the limit, paid in credits: billing.count_usage_past_limit reads and writes the
        -- counters itself, so the counts decided so far are written first.
        perform billing.write_usage_counters(c_org, c_metric, c_unit, c_start, c_end, c_limit, c_saved, c_count);
        c_saved := c_count;
        e_credit_rid[i] := billing.usage_credit_request_id(e_metric[i], e_rid[i], not e_fresh[i]);
        v_paid := billing.count_usage_past_limit(
          e_org[i], e_metric[i],
          e_units[i]::public.usage_window[],
          e_at[i], e_tz[i], e_features[i], e_qty[i], v_event, e_credit_rid[i]);
        if v_paid.allowed then
          for j in 1 .. 4 loop
            v_k := w_k[(i - 1) * 4 + j];
            continue when v_k is null;
            c_count[v_k] := c_count[v_k] + e_qty[i];
          end loop;
          c_saved := c_count;
          e_allowed[i] := true;
          e_used[i] := v_paid.used;
          e_limit[i] := v_paid.limit_amount;
          e_remaining[i] := v_paid.remaining;
          e_resets[i] := v_paid.resets_at;
          e_credits[i] := v_paid.credits;
          if v_paid.units > 0 then
            e_credit_units[i] := v_paid.units;
          else
            e_credit_rid[i] := null;
          end if;
          continue;
        end if;
        e_credit_rid[i] := null;
      end if;
    end if;
    -- The tightest window after the event (refused: as it stands): least remaining, unlimited
    -- windows last, the shortest window first on ties.
    v_best := null;
    for j in 1 .. 4 loop
      v_k := w_k[(i - 1) * 4 + j];
      continue when v_k is null;
      if v_best is null or (c_limit[v_k] is not null
           and (c_limit[v_best] is null or c_limit[v_k] - c_count[v_k] < c_limit[v_best] - c_count[v_best])) then
        v_best := v_k;
      end if;
    end loop;
    e_used[i] := c_count[v_best];
    e_limit[i] := c_limit[v_best];
    e_remaining[i] := greatest(c_limit[v_best] - c_count[v_best], 0);
    e_resets[i] := c_end[v_best];
  end loop;

  -- 5. Write: the counters, the rows of the counted events (their answer, for retries), and no row
  -- for a refused one (a released one stays released).
  perform billing.write_usage_counters(c_org, c_metric, c_unit, c_start, c_end, c_limit, c_saved, c_count,
                                       p_write => not v_written);
  delete from public.usage_quotas q
  using unnest(c_org, c_metric, c_unit, c_start, c_count, c_inserted) as u(org, metric, unit, starts, count, inserted)
  where u.inserted and u.count = 0
    and q.organization_id = u.org and q.metric = u.metric and q.window_unit = u.unit and q.window_start = u.starts
    and q.count = 0;
  update public.usage_metrics m
  set amount = u.qty, state = 'counted', occurred_at = u.at, user_id = coalesce(p_user_id, m.user_id),
      window_units = u.units::public.usage_window[],
      used = u.used, limit_amount = u.lim, resets_at = u.resets,
      credit_request_id = coalesce(u.crid, m.credit_request_id),
      credit_units = case when u.crid is not null then u.cunits else m.credit_units end
  from unnest(e_org, e_metric, e_rid, e_row, e_qty, e_at, e_units, e_used, e_limit, e_resets, e_credit_rid,
              e_credit_units, e_allowed, e_dup)
    as u(org, metric, rid, row_id, qty, at, units, used, lim, resets, crid, cunits, allowed, dup)
  where m.organization_id = u.org and m.request_id = u.rid and m.metric = u.metric
    and u.row_id is not null and u.allowed and not u.dup;
  delete from public.usage_metrics m
  using unnest(e_org, e_metric, e_rid, e_row, e_fresh, e_allowed) as u(org, metric, rid, row_id, fresh, allowed)
  where m.organization_id = u.org and m.request_id = u.rid and m.metric = u.metric
    and u.row_id is not null and u.fresh and not u.allowed;

  return query
    select u.ord::integer,
           coalesce(e_allowed[u.first], case when u.err = 'unknown_metric' then false end),
           coalesce(e_used[u.first], case when u.err = 'unknown_metric' then 0::bigint end),
           coalesce(e_limit[u.first], case when u.err = 'unknown_metric' then 0::bigint end),
           coalesce(e_remaining[u.first], case when u.err = 'unknown_metric' then 0::bigint end),
           e_resets[u.first],
           coalesce(e_credits[u.first], case when u.err is null or u.err = 'unknown_metric' then 0::bigint end),
           u.err is null and (e_dup[u.first] or u.first <> u.ord),
           u.err
    from unnest(e_err, e_first) with ordinality as u(err, first, ord)
    order by u.ord;
end;
$$;
revoke execute on function billing.track_usage(jsonb, uuid) from public;
grant execute on function billing.track_usage(jsonb, uuid) to service_role;

/**
 * Queues one 'quota_threshold' notification when a change of one window's settled count from
 * p_before to p_after crossed alert thresholds (billing_settings) upwards (p_before below t % of
 * p_limit, p_after at or above it), in a window that alerts: one email for the highest threshold
 * crossed, whose figures (used = p_after) are true for it, and none when an alert at that
 * threshold or a higher one was already queued for this window (a count that fell back and rose
 * again, or the lower thresholds a jump skipped). Deduplicated per organization, metric, window,
 * window start and threshold; the next window alerts anew. The AI gateway's per-user request
 * counters (`ai_requests_u_<user>`) are a rate limit of one person, not the organization's quota:
 * they never alert. The payload names the plan in effect (plan_code) for the email. Returns the
 * notifications queued (0 or 1).
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
    and not exists (
      select from public.notifications n
      where n.organization_id = p_organization_id and n.kind = 'quota_threshold'
        and n.payload ->> 'metric' = p_metric and n.payload ->> 'window' = p_unit::text
        and (n.payload ->> 'window_start')::timestamptz = p_window_start
        and (n.payload ->> 'threshold')::numeric >= t.threshold)
  order by t.threshold desc
  limit 1
  on conflict (dedupe_key) do nothing;
  get diagnostics v_n = row_count;
  return v_n;
end;
$$;
revoke execute on function billing.queue_quota_alerts(uuid, text, public.usage_window, timestamptz, timestamptz, bigint,
  bigint, bigint) from public, anon, authenticated;
grant execute on function billing.queue_quota_alerts(uuid, text, public.usage_window, timestamptz, timestamptz, bigint,
  bigint, bigint) to service_role;

/** A metric's display name (public.usage_metric_catalog), else its code with spaces for underscores. */
create function billing.metric_display_name(p_metric text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce((select c.display_name from public.usage_metric_catalog c where c.metric = p_metric),
                  pg_catalog.replace(p_metric, '_', ' '));
end;
$$;
revoke execute on function billing.metric_display_name(text) from public, anon, authenticated;
grant execute on function billing.metric_display_name(text) to service_role;

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
  v_now timestamptz := billing.now();
  v_user uuid := auth.uid();
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  return query
    -- The plan lookup once (the rules of billing.effective_plan_rows, inlined), then the plan's
    -- keys: they are validated on write (billing.validate_plan_features), so a key ending in
    -- _per_<window> is a metered limit: plain string tests, far cheaper than a regexp. Each
    -- window's counter is one primary-key lookup (an organization has a row per minute window).
    with plan as materialized (
      select e.timezone, e.features, v_now at time zone e.timezone as local
      from billing.effective_plan_rows(p_organization_id, v_now) e
    ),
    windows as materialized (
      select k.metric, k.unit::public.usage_window as unit, k.lim,
             case when k.metric = 'ai_requests' then 'user' else 'organization' end as scope,
             case when k.metric = 'ai_requests' then billing.ai_rate_metric(v_user) else k.metric end as counter,
             pg_catalog.date_trunc(k.unit, k.local) at time zone k.timezone as starts,
             (pg_catalog.date_trunc(k.unit, k.local) + ('1 ' || k.unit)::interval) at time zone k.timezone as ends
      from (
        select pl.timezone, pl.local, pg_catalog.left(f.key, -5 - pg_catalog.length(u.unit)) as metric, u.unit,
               case when pg_catalog.jsonb_typeof(f.value) = 'number' then (f.value #>> '{}')::bigint end as lim
        from plan pl
        cross join lateral pg_catalog.jsonb_each(pl.features) f
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

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** usage_quotas: members read their organization's counters. */
create policy "Members can read their organization's usage quotas"
  on public.usage_quotas for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** usage_metric_catalog: anyone signed in reads the display names. */
create policy "Signed-in users can read metric display names"
  on public.usage_metric_catalog for select to authenticated
  using (true);

/** usage_metrics: members read their organization's usage events. */
create policy "Members can read their organization's usage metrics"
  on public.usage_metrics for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

-- webhook_events: no policies. Only service_role (which bypasses RLS) has grants.

create policy "Members can read their organization's watchlists"
  on public.watchlists for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

create policy "Members can add watchlists to their organization"
  on public.watchlists for insert to authenticated
  with check (organization_id in (select billing.member_organization_ids())
              and created_by = (select auth.uid()));

create policy "Members can rename their organization's watchlists"
  on public.watchlists for update to authenticated
  using (organization_id in (select billing.member_organization_ids()))
  with check (organization_id in (select billing.member_organization_ids()));

create policy "Members can delete their organization's watchlists"
  on public.watchlists for delete to authenticated
  using (organization_id in (select billing.member_organization_ids()));

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * Count p_amount of p_metric for the organization, in every window its plan in effect limits
 * (`<metric>_per_<minute|hour|day|month>`, local to the organization's timezone), or in none:
 * allowed only if all fit. A metric the plan does not name is denied with limit 0. A repeated
 * p_request_id returns the first answer and is counted once. Reports the tightest window.
 * Past a limit, a plan with `<metric>_overage_event` pays in credits: the units past the limit are
 * charged to that credit event in the same transaction (billing.count_usage_past_limit) and the
 * call is allowed and counted past the limit (remaining 0); credits_charged says how many credits
 * it cost (0 when none). Without enough credits it is denied as without the key.
 *
 * The common case (every window fits, the request id is new) is one statement: the plan in
 * effect, the stored answer of a retry, the windows (billing.usage_windows), one conditional
 * upsert of every window's counter (in window order, so concurrent calls lock them in the same
 * order) and the usage row, written only when every window accepted. Anything else is decided by
 * billing.increment_usage_general, after the windows this statement changed are put back (their
 * row locks are still held, so nobody saw them): a refused window (denial, or credits past the
 * limit), a released request counted anew. A concurrent duplicate of the request id waits on
 * the counter rows (the same organization, metric and windows), then finds the row taken: it puts
 * its windows back and answers the stored answer.
 */
create function public.increment_usage(
  p_organization_id uuid,
  p_metric text,
  p_amount integer default 1,
  p_request_id text default null,
  out allowed boolean,
  out used bigint,
  out limit_amount bigint,
  out remaining bigint,
  out resets_at timestamptz,
  out credits_charged bigint
)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_known boolean;
  v_tz text;
  v_features jsonb;
  v_stored boolean;
  v_released boolean;
  v_credit_request_id text;
  v_windows integer;
  v_units public.usage_window[];
  v_starts timestamptz[];
  v_ends timestamptz[];
  v_limits bigint[];
  v_counts bigint[];
  v_inserted boolean[];
  v_written boolean;
  v_stored_used bigint;
  v_stored_limit bigint;
  v_stored_resets timestamptz;
  v_general record;
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
  if p_request_id is not null then
    -- Near a month boundary: a copy of the request claiming in the other month waits (see the table).
    perform billing.usage_request_locks(v_now, array[p_organization_id], array[p_request_id], array[p_metric]);
  end if;

  with p as materialized (
    -- The plan's rules inlined into this statement (billing.effective_plan_rows, one lookup).
    select e.organization_id, e.timezone, e.features from billing.effective_plan_rows(p_organization_id, v_now) e
  ), r as materialized (
    -- In every month (one row per request id across months: see the table).
    select m.state = 'released' as released, m.used, m.limit_amount, m.resets_at, m.credit_request_id
    from public.usage_metrics m
    where p_request_id is not null
      and m.organization_id = p_organization_id and m.request_id = p_request_id and m.metric = p_metric
  ), w as materialized (
    select w.unit, w.starts, w.ends, w.lim
    from p cross join lateral billing.usage_windows(p_metric, null, v_now, p.timezone, p.features) w
    where p.organization_id is not null and not exists (select from r)
  ), up as (
    insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
    select p_organization_id, p_metric, w.unit, w.starts, p_amount, pg_catalog.now()
    from w
    where w.lim is null or p_amount <= w.lim
    order by w.unit
    on conflict (organization_id, metric, window_unit, window_start) do update
      set count = q.count + excluded.count, updated_at = excluded.updated_at
      where q.count + excluded.count <= coalesce((select w.lim from w where w.unit = excluded.window_unit),
                                                 q.count + excluded.count)
    returning q.window_unit, q.count, q.xmax = 0 as inserted
  ), ans as (
    -- The tightest window: least remaining, unlimited windows last, the shortest first on ties.
    select up.count as used, w.lim, w.ends
    from up join w on w.unit = up.window_unit
    where (select count(*) from up) = (select count(*) from w)
    order by w.lim - up.count nulls last, w.unit
    limit 1
  ), ins as (
    insert into public.usage_metrics
      (id, organization_id, user_id, metric, amount, request_id, metadata, occurred_at, created_at, window_units,
       state, used, limit_amount, resets_at, credit_request_id, credit_units, claimed_month)
    select gen_random_uuid(), p_organization_id, null, p_metric, p_amount, p_request_id, '{}'::jsonb, v_now,
           pg_catalog.now(), (select pg_catalog.array_agg(w.unit order by w.unit) from w), 'counted',
           ans.used, ans.lim, ans.ends, null, null, pg_catalog.date_trunc('month', v_now, 'UTC')
    from ans
    on conflict (organization_id, request_id, metric, claimed_month) do nothing
    returning 1
  )
  select p.organization_id is not null, p.timezone, p.features,
         exists (select from r), (select r.released from r),
         (select r.used from r), (select r.limit_amount from r), (select r.resets_at from r),
         (select r.credit_request_id from r),
         (select count(*) from w)::integer,
         (select pg_catalog.array_agg(w.unit order by w.unit) from w),
         (select pg_catalog.array_agg(w.starts order by w.unit) from w),
         (select pg_catalog.array_agg(w.ends order by w.unit) from w),
         (select pg_catalog.array_agg(w.lim order by w.unit) from w),
         (select pg_catalog.array_agg(up.count order by w.unit) from w left join up on up.window_unit = w.unit),
         (select pg_catalog.array_agg(up.inserted order by w.unit) from w left join up on up.window_unit = w.unit),
         (select ans.used from ans), (select ans.lim from ans), (select ans.ends from ans),
         exists (select from ins)
  into v_known, v_tz, v_features, v_stored, v_released, v_stored_used, v_stored_limit, v_stored_resets,
       v_credit_request_id, v_windows, v_units, v_starts, v_ends, v_limits, v_counts, v_inserted,
       used, limit_amount, resets_at, v_written
  from p;

  if not v_known then
    raise exception 'increment_usage: unknown organization %', p_organization_id
      using errcode = 'no_data_found';
  end if;

  if v_written then
    allowed := true;
    remaining := case when limit_amount - used < 0 then 0 else limit_amount - used end;
    perform billing.queue_quota_alerts(p_organization_id, p_metric, v_units[i], v_starts[i], v_ends[i],
                                       v_counts[i] - p_amount, v_counts[i], v_limits[i])
    from pg_catalog.generate_series(1, v_windows) i
    where v_limits[i] > 0
      and pg_catalog.floor(v_counts[i] * 100.0 / v_limits[i])
          > pg_catalog.floor((v_counts[i] - p_amount) * 100.0 / v_limits[i]);
    return;
  end if;

  if not v_stored and v_windows > 0 then
    -- Not counted: a window refused, or a concurrent duplicate wrote the row first. Put back the
    -- windows the statement changed (rows it created go) before anyone can see them.
    perform billing.put_back_usage(p_organization_id, p_metric, v_units, v_starts, v_inserted, v_counts, p_amount);
    if pg_catalog.array_position(v_counts, null) is null and p_request_id is not null then
      select true, m.state = 'released', m.used, m.limit_amount, m.resets_at, m.credit_request_id
      into v_stored, v_released, v_stored_used, v_stored_limit, v_stored_resets, v_credit_request_id
      from public.usage_metrics m
      where m.organization_id = p_organization_id and m.request_id = p_request_id and m.metric = p_metric;
      v_stored := coalesce(v_stored, false);
    end if;
  end if;

  if v_stored and not v_released then
    -- A retry: the first answer.
    allowed := true;
    used := v_stored_used;
    limit_amount := v_stored_limit;
    remaining := case when v_stored_limit < v_stored_used then 0 else v_stored_limit - v_stored_used end;
    resets_at := v_stored_resets;
    if v_credit_request_id is not null then
      select c.charged into credits_charged from public.credit_charges c
      where c.organization_id = p_organization_id and c.request_id = v_credit_request_id;
    end if;
    return;
  end if;

  if v_windows = 0 and not v_stored then
    -- Not in the plan: denied with limit 0.
    allowed := false;
    used := 0;
    limit_amount := 0;
    remaining := 0;
    resets_at := null;
    return;
  end if;

  v_general := billing.increment_usage_general(p_organization_id, p_metric, p_amount, p_request_id, v_now, v_tz,
                                               v_features);
  allowed := v_general.allowed;
  used := v_general.used;
  limit_amount := v_general.limit_amount;
  remaining := v_general.remaining;
  resets_at := v_general.resets_at;
  credits_charged := v_general.credits_charged;
end;
$$;
revoke execute on function public.increment_usage(uuid, text, integer, text) from public;
grant execute on function public.increment_usage(uuid, text, integer, text) to service_role;
comment on function public.increment_usage(uuid, text, integer, text) is 'Counts usage in every window of a metric, all or nothing; a repeated request id is counted once; past a limit, a plan''s <metric>_overage_event pays in credits (credits_charged). service_role only.';

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
