-- =================================================================================================
-- supabill upgrade: per-person limits, a test clock only the database can enable, payload retention
--
-- An upgrade of the released baseline (it alters and replaces baseline objects; it owns nothing
-- else). Three rules:
--
-- 1. One free tier per person, not per organization created. billing_settings.max_owned_organizations
--    (default 3, null for no limit) caps the organizations one user owns (an `owner` membership).
--    A trigger on organization_members keeps it on every path that makes someone owner:
--    create_organization (which also checks before it creates anything), add_organization_member
--    (..., 'owner'), set_member_role(..., 'owner'), and direct writes on the service side. Writes
--    for one user serialize on an advisory lock keyed on the user id, so two concurrent creations
--    at the limit cannot both pass. Ownerships already above a lowered limit stay (like max_members).
--    A trial is once per person as well as once per organization: start_trial refuses a user who
--    started a trial in any organization before (subscription_history 'trial_started' by that actor).
-- 2. The test clock: billing.now() honours a pinned `billing.now` only when the DATABASE enables the
--    test clock (`alter database ... set billing.test_clock = 'on'`, read from pg_db_role_setting);
--    a session's own `set billing.test_clock = 'on'` no longer counts. Unpinned, it returns now()
--    before reading any catalog.
-- 3. Provider payloads (billing.webhook_events.payload, which carry buyers' names, emails and
--    phone numbers) are stripped by billing-purge after billing_settings.webhook_payload_retention_days
--    (default 90); provider, event_id, event_type and the times stay, so a re-delivered event is still
--    a duplicate. payload_purged_at records when.
--
-- Same conventions and section order as the baseline modules (see the foundation's banner).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- billing_settings: the two new settings
-- -------------------------------------------------------------------------------------------------

alter table public.billing_settings
  add column max_owned_organizations integer default 3
    constraint billing_settings_max_owned_organizations_positive check (max_owned_organizations >= 1),
  add column webhook_payload_retention_days integer not null default 90
    constraint billing_settings_webhook_payload_retention_days_range
      check (webhook_payload_retention_days between 1 and 3650);
comment on column public.billing_settings.max_owned_organizations is
  'How many organizations one user may own (owner memberships); null for no limit. Default 3.';
comment on column public.billing_settings.webhook_payload_retention_days is
  'Days a provider webhook payload is kept before billing-purge strips it (the event id stays for deduplication). Default 90.';

-- -------------------------------------------------------------------------------------------------
-- billing.webhook_events: when the payload was stripped
-- -------------------------------------------------------------------------------------------------

alter table billing.webhook_events add column payload_purged_at timestamptz;
comment on column billing.webhook_events.payload_purged_at is
  'When billing-purge replaced the provider payload with {} (null: the payload is as received).';

/** The payloads billing-purge has still to strip, oldest first. */
create index webhook_events_payload_unpurged_idx on billing.webhook_events (received_at)
  where payload_purged_at is null;

-- -------------------------------------------------------------------------------------------------
-- subscription_history: trials by the user who started them
-- -------------------------------------------------------------------------------------------------

/** The trials a user started, for start_trial's once-per-person rule. */
create index subscription_history_trial_actor_idx on public.subscription_history (actor_id)
  where action = 'trial_started';

-- -------------------------------------------------------------------------------------------------
-- organization_members: the owner limit
-- -------------------------------------------------------------------------------------------------

/**
 * Serializes ownership changes of p_user_id (an advisory lock until the transaction ends) and
 * refuses (23514, naming the limit) when the user would own more than
 * billing_settings.max_owned_organizations: p_adding is how many owner memberships are about to be
 * written: 1 before create_organization inserts, 0 from the trigger (whose row is already counted).
 * A null limit (or no settings row) allows any number.
 */
create function billing.check_owned_organizations(p_user_id uuid, p_adding integer)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_limit integer;
  v_owned integer;
begin
  if p_user_id is null or p_adding is null or p_adding not in (0, 1) then
    raise exception 'check_owned_organizations needs a user and 0 or 1 memberships to add' using errcode = 'invalid_parameter_value';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('organization_owner:' || p_user_id::text, 0));
  select s.max_owned_organizations into v_limit from public.billing_settings s;
  if v_limit is null then
    return;
  end if;
  select count(*) into v_owned
  from public.organization_members m
  where m.user_id = p_user_id and m.role = 'owner';
  if v_owned + p_adding > v_limit then
    raise exception 'max_owned_organizations limit reached: a user may own at most % organizations and user % already owns %',
      v_limit, p_user_id, v_owned + p_adding - 1  -- without the one being added
      using errcode = 'check_violation',
            hint = 'Make another member owner of one of them and leave it, or ask an operator to raise billing_settings.max_owned_organizations.';
  end if;
end;
$$;
revoke execute on function billing.check_owned_organizations(uuid, integer) from public;

/**
 * Keeps billing_settings.max_owned_organizations whoever writes the membership: an AFTER trigger,
 * so it counts only rows really written (an insert that ON CONFLICT skips is not counted) and
 * fires for an insert as owner and a promotion to owner; a demotion or any other change passes.
 * Security definer: it counts every owner membership of the user, which the caller's row level
 * security may hide (the same reason as billing.enforce_max_count).
 */
create function billing.enforce_owner_limit()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.role = 'owner' and (tg_op = 'INSERT' or old.role <> 'owner') then
    perform billing.check_owned_organizations(new.user_id, 0);
  end if;
  return null;
end;
$$;
revoke execute on function billing.enforce_owner_limit() from public;

create trigger organization_members_owner_limit
  after insert or update of role on public.organization_members
  for each row execute function billing.enforce_owner_limit();


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * The test clock: now(), unless the transaction pins `billing.now`
 * (`set local billing.now = '2026-03-31 23:59:00+05:30'`) AND the database enables the test
 * clock: `billing.test_clock = 'on'` in the database's own settings (pg_db_role_setting for this
 * database and every role, as `alter database ... set billing.test_clock = 'on'` writes it; the
 * local stack and the test cluster do, a hosted project never). A session or a role cannot enable
 * it (`set billing.test_clock = 'on'` is not read), so nobody can move a production clock. When
 * nothing is pinned (the production path) it returns now() before reading any catalog.
 */
create or replace function billing.now()
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  v_pinned text := pg_catalog.current_setting('billing.now', true);
begin
  if v_pinned is null or v_pinned = '' then
    return pg_catalog.now();
  end if;
  if not exists (
    select 1
    from pg_catalog.pg_db_role_setting s
    join pg_catalog.pg_database d on d.oid = s.setdatabase
    where d.datname = pg_catalog.current_database()
      and s.setrole = 0
      and 'billing.test_clock=on' = any (s.setconfig)
  ) then
    return pg_catalog.now();
  end if;
  return v_pinned::timestamptz;
end;
$$;

-- -------------------------------------------------------------------------------------------------
-- Implementations of the public functions (security definer; their wrappers are in section 5)
-- -------------------------------------------------------------------------------------------------

/**
 * Creates an organization with the signed-in user as its owner; returns its id. Refused (23514)
 * when the user already owns billing_settings.max_owned_organizations organizations; concurrent
 * creations by one user serialize on the user (billing.check_owned_organizations), and the owner
 * trigger checks the membership again.
 * Security definer: signed-in users have no insert grant on organizations or
 * organization_members; this function is the one way in.
 */
create or replace function billing.create_organization(p_name text)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_organization_id uuid;
begin
  if p_name is null or length(btrim(p_name)) not between 1 and 200 then
    raise exception 'organization name must be 1 to 200 characters'
      using errcode = 'invalid_parameter_value';
  end if;
  perform billing.check_owned_organizations(v_user_id, 1);

  insert into public.organizations (name)
  values (btrim(p_name))
  returning id into v_organization_id;

  insert into public.organization_members (organization_id, user_id, role)
  values (v_organization_id, v_user_id, 'owner');

  return v_organization_id;
end;
$$;

/**
 * Starts a free trial of a paid plan for its trial_days: once per organization, ever (any earlier
 * trial counts, even one that was cancelled), once per person (the calling user has never started
 * a trial in any organization), and only with no live subscription. An unpaid trial falls to the
 * free plan at its end (billing-expire records it); a payment during the trial starts the plan
 * from the trial end. Owners and admins.
 * Returns {subscription_id, status: 'trialing', plan_code, trial_end}.
 * Errors: 42501; P0002 unknown plan; 22023 free plan or no trial days; 55000 a live subscription,
 * a trial already used by the organization, or one already started by the user.
 * Security definer: signed-in users have no write grant on subscriptions or their history.
 */
create or replace function billing.start_trial(p_organization_id uuid, p_plan_code text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_sub public.subscriptions;
  v_timezone text;
  v_trial_end timestamptz;
begin
  perform billing.require_role(p_organization_id, billing.managers());
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  if v_plan.tier = 'free' or v_plan.price_cents = 0 then
    raise exception 'plan "%" is free: there is nothing to try', v_plan.code using errcode = 'invalid_parameter_value';
  end if;
  if v_plan.trial_days <= 0 then
    raise exception 'plan "%" has no trial', v_plan.code using errcode = 'invalid_parameter_value';
  end if;

  -- One trial per organization: serialize on the organization row.
  select g.timezone into v_timezone from public.organizations g where g.id = p_organization_id for no key update;
  if exists (select 1 from public.subscriptions s
             where s.organization_id = p_organization_id
               and s.status in ('pending_payment', 'trialing', 'active', 'past_due')) then
    raise exception 'the organization already has a subscription: a trial is only for organizations without one'
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if exists (select 1 from public.subscription_history h
             where h.organization_id = p_organization_id and h.action = 'trial_started')
     or exists (select 1 from public.subscriptions s
                where s.organization_id = p_organization_id and s.trial_end is not null) then
    raise exception 'the organization has already had a trial' using errcode = 'object_not_in_prerequisite_state';
  end if;
  -- One trial per person: serialize on the user (after the organization row: every caller takes
  -- them in this order), then look for a trial the user started anywhere.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('trial_started:' || v_user_id::text, 0));
  if exists (select 1 from public.subscription_history h
             where h.actor_id = v_user_id and h.action = 'trial_started' and h.actor_kind = 'user') then
    raise exception 'you have already started a trial: a trial is once per person, in one organization'
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'Buy the plan through checkout instead.';
  end if;

  -- trial_days on the organization's calendar (like periods: independent of the session TimeZone).
  v_trial_end := ((v_now at time zone v_timezone) + pg_catalog.make_interval(days => v_plan.trial_days))
                 at time zone v_timezone;

  insert into public.subscriptions
    (organization_id, plan_id, status, current_period_start, current_period_end, trial_end)
  values
    (p_organization_id, v_plan.id, 'trialing', v_now, v_trial_end, v_trial_end)
  returning * into v_sub;
  perform billing.log_subscription_change(p_organization_id, v_sub.id, 'trial_started', null, v_plan.id, null,
    'trialing', 'user', v_user_id,
    p_reason => pg_catalog.format('%s-day trial of %s', v_plan.trial_days, v_plan.code),
    p_metadata => pg_catalog.jsonb_build_object('trial_end', v_sub.trial_end), p_effective_at => v_now);

  return pg_catalog.jsonb_build_object('subscription_id', v_sub.id, 'status', v_sub.status,
                                       'plan_code', v_plan.code, 'trial_end', v_sub.trial_end);
end;
$$;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: the tables changed here keep their policies.

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

comment on function public.create_organization(text) is
  'Creates an organization with the signed-in user as its owner; returns its id. A user owns at most billing_settings.max_owned_organizations organizations.';
comment on function public.add_organization_member(uuid, uuid, public.member_role) is
  'Adds a user to an organization: owners and admins, and only an owner adds an owner (who may own at most billing_settings.max_owned_organizations organizations).';
comment on function public.set_member_role(uuid, uuid, public.member_role) is
  'Changes a member''s role: owners and admins (an admin neither changes an owner''s role nor makes an owner); the last owner stays; a new owner may own at most billing_settings.max_owned_organizations organizations.';
comment on function public.start_trial(uuid, text) is
  'Starts a free trial of a paid plan: once per organization and once per person, and only without a live subscription. Owners and admins.';


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

/**
 * billing-purge, one batch (p_limit rows per kind): usage counters whose window ended more than
 * p_usage_retention ago (default 35 days; raw usage_metrics events are kept), notifications sent
 * more than 90 days ago, job runs older than 30 days, and provider webhook payloads received more
 * than billing_settings.webhook_payload_retention_days ago (default 90): the payload becomes {} and
 * payload_purged_at is set, while provider, event_id, event_type and the times stay, so a
 * re-delivery is still a duplicate. (The AI gateway's module purges its own cache with its own
 * job, ai-purge-cache.)
 */
create or replace function billing.purge_batch(
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

  delete from billing.job_runs r
  where r.id in (select x.id from billing.job_runs x where x.started_at < pg_catalog.clock_timestamp() - interval '30 days'
                 limit p_limit);
  return v_total;
end;
$$;
