-- =================================================================================================
-- supabill: plans: the plan catalog, subscriptions, their history, and the plan in effect
--
-- The plan catalog (entitlements in `features`), each organization's subscription, the
-- append-only subscription_history (written only through billing.log_subscription_changes), and
-- the plan in effect, computed on read from the subscription row and billing.now():
-- billing.effective_plan, behind get_entitlements, effective_tier and organization_entitlements.
-- No read depends on a cron job having run.
--
-- Periods end one plan interval later on the organization's calendar (organizations.timezone),
-- whatever the connection's TimeZone: billing.period_end_after.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

/** One subscription_history row, as billing.log_subscription_changes takes it. */
create type billing.subscription_change as (
  organization_id uuid,
  subscription_id uuid,
  action text,
  old_plan_id uuid,
  new_plan_id uuid,
  old_status public.subscription_status,
  new_status public.subscription_status,
  actor_kind text,
  actor_id uuid,
  reason text,
  metadata jsonb,
  effective_at timestamptz
);

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- billing_plans
-- -------------------------------------------------------------------------------------------------

/**
 * The plan catalog. Entitlements live in `features`: `<metric>_per_<window>` metered
 * limits (non-negative integer, or null for unlimited), `max_<thing>` count limits (non-negative
 * integer), anything else a flag or list. At most one active free plan, and it costs nothing.
 */
create table public.billing_plans (
  id uuid primary key default gen_random_uuid(),
  code text not null unique check (code ~ '^[a-z][a-z0-9_]{0,63}$'),
  name text not null check (length(btrim(name)) between 1 and 200),
  description text,
  tier text not null check (tier in ('free', 'basic', 'pro', 'enterprise')),
  interval public.billing_interval not null default 'month',
  price_cents bigint not null check (price_cents >= 0),
  currency text not null default 'INR' check (currency ~ '^[A-Z]{3}$'),
  trial_days integer not null default 0 check (trial_days between 0 and 365),
  features jsonb not null default '{}'::jsonb,
  provider_config jsonb not null default '{}'::jsonb check (jsonb_typeof(provider_config) = 'object'),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint billing_plans_free_is_free check (tier <> 'free' or price_cents = 0)
);
comment on table public.billing_plans is 'The plan catalog: price, interval, trial days and entitlements (features), one active free plan.';

/** At most one active free plan: the plan in effect for every organization without a paid one. */
create unique index billing_plans_one_active_free_idx on public.billing_plans (tier)
  where tier = 'free' and active;

/** The policy column. */
create index billing_plans_active_idx on public.billing_plans (active);
grant select on public.billing_plans to anon, authenticated;
grant select, insert, update, delete on public.billing_plans to service_role;
alter table public.billing_plans enable row level security;

/**
 * True when a JSON value is a plain non-negative integer that fits bigint (so `(v ->> k)::bigint`
 * always works): 5 and 0 are; -1, 2.5, 1.0, "5" and null are not.
 */
create function billing.is_non_negative_integer(p_value jsonb)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when pg_catalog.jsonb_typeof(p_value) = 'number' and (p_value #>> '{}') ~ '^[0-9]{1,19}$'
      then (p_value #>> '{}')::numeric <= 9223372036854775807
    else false
  end;
end;
$$;

/**
 * Validates a plan's features object; the error names the offending key.
 * `<metric>_per_<minute|hour|day|month>`: non-negative integer or null. `max_<thing>`:
 * non-negative integer. Any other `*_per_*` suffix is an unknown window and is rejected.
 */
create function billing.validate_plan_features(p_features jsonb)
returns void
language plpgsql
immutable
set search_path = ''
as $$
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
    if v_key ~ '_per_[^_]+$' then
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
$$;

revoke execute on function billing.is_non_negative_integer(jsonb) from public;
revoke execute on function billing.validate_plan_features(jsonb) from public;
grant execute on function billing.is_non_negative_integer(jsonb) to service_role;
grant execute on function billing.validate_plan_features(jsonb) to service_role;

/** Trigger: validate `features` on every insert and update of a plan. */
create function billing.check_plan_features()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform billing.validate_plan_features(new.features);
  return new;
end;
$$;
revoke execute on function billing.check_plan_features() from public;

create trigger billing_plans_check_features
  before insert or update of features on public.billing_plans
  for each row execute function billing.check_plan_features();

create trigger billing_plans_touch_updated_at
  before update on public.billing_plans
  for each row execute function billing.touch_updated_at();

-- -------------------------------------------------------------------------------------------------
-- subscriptions
-- -------------------------------------------------------------------------------------------------

/**
 * An organization's subscription to a plan. At most one live subscription (pending_payment,
 * trialing, active, past_due) per organization. `pending_plan_id` is a downgrade scheduled for
 * `pending_plan_effective_at` (the period end).
 */
create table public.subscriptions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  plan_id uuid not null references public.billing_plans (id) on delete restrict,
  status public.subscription_status not null default 'pending_payment',
  current_period_start timestamptz,
  current_period_end timestamptz,
  trial_end timestamptz,
  cancel_at_period_end boolean not null default false,
  canceled_at timestamptz,
  ended_at timestamptz,
  provider public.payment_provider,
  provider_subscription_id text,
  pending_plan_id uuid references public.billing_plans (id) on delete restrict,
  pending_plan_effective_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint subscriptions_period_order
    check (current_period_end is null or current_period_start is null or current_period_end > current_period_start),
  constraint subscriptions_period_when_running
    check (status not in ('trialing', 'active', 'past_due')
           or (current_period_start is not null and current_period_end is not null)),
  constraint subscriptions_trial_end_when_trialing
    check (status <> 'trialing' or trial_end is not null),
  constraint subscriptions_pending_change_complete
    check ((pending_plan_id is null) = (pending_plan_effective_at is null)),
  constraint subscriptions_provider_id_needs_provider
    check (provider_subscription_id is null or provider is not null),
  constraint subscriptions_provider_subscription_unique unique (provider, provider_subscription_id)
);
comment on table public.subscriptions is 'An organization''s subscription to a plan; at most one live one per organization.';

/** At most one live subscription per organization. */
create unique index subscriptions_one_live_per_organization_idx on public.subscriptions (organization_id)
  where status in ('pending_payment', 'trialing', 'active', 'past_due');

/** Foreign keys, and due subscriptions for the billing jobs. */
create index subscriptions_organization_id_idx on public.subscriptions (organization_id);
create index subscriptions_plan_id_idx on public.subscriptions (plan_id);

create index subscriptions_pending_plan_id_idx on public.subscriptions (pending_plan_id)
  where pending_plan_id is not null;
create index subscriptions_status_period_end_idx on public.subscriptions (status, current_period_end);
grant select on public.subscriptions to authenticated;
grant select, insert, update, delete on public.subscriptions to service_role;
alter table public.subscriptions enable row level security;

/** Scheduled downgrades coming due. */
create index subscriptions_pending_plan_due_idx on public.subscriptions (pending_plan_effective_at)
  where pending_plan_id is not null;
/** Trials coming to an end. */
create index subscriptions_trial_end_idx on public.subscriptions (trial_end)
  where status = 'trialing';

create trigger subscriptions_touch_updated_at
  before update on public.subscriptions
  for each row execute function billing.touch_updated_at();

-- -------------------------------------------------------------------------------------------------
-- subscription_history (immutable)
-- -------------------------------------------------------------------------------------------------

/**
 * Append-only log of every subscription change: who (actor) did what (action) from which plan
 * and status to which, why, and when it took effect. UPDATE, DELETE and TRUNCATE raise.
 * actor_id has no foreign key on purpose: the audit row outlives the user.
 */
create table public.subscription_history (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete restrict,
  subscription_id uuid references public.subscriptions (id) on delete restrict,
  action text not null check (action ~ '^[a-z][a-z_]{0,62}$'),
  old_plan_id uuid references public.billing_plans (id) on delete restrict,
  new_plan_id uuid references public.billing_plans (id) on delete restrict,
  old_status public.subscription_status,
  new_status public.subscription_status,
  actor_kind text not null default 'system' check (actor_kind in ('user', 'system', 'provider', 'operator')),
  actor_id uuid,
  reason text,
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  effective_at timestamptz not null default billing.now(),
  created_at timestamptz not null default now()
);
comment on table public.subscription_history is 'Append-only log of every subscription change: who did what, from which plan and status to which, and when.';

/** Foreign keys; an organization's history in time order. */
create index subscription_history_organization_id_idx on public.subscription_history (organization_id, effective_at);
create index subscription_history_subscription_id_idx on public.subscription_history (subscription_id);

create index subscription_history_old_plan_id_idx on public.subscription_history (old_plan_id);
create index subscription_history_new_plan_id_idx on public.subscription_history (new_plan_id);
grant select on public.subscription_history to authenticated;
grant select, insert, update, delete on public.subscription_history to service_role;
alter table public.subscription_history enable row level security;

create trigger subscription_history_immutable
  before update or delete on public.subscription_history
  for each row execute function billing.reject_change();

create trigger subscription_history_no_truncate
  before truncate on public.subscription_history
  for each statement execute function billing.reject_change();


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Writes subscription_history rows: the one place they are written. Set-based, so the jobs log a
 * whole batch in one statement; billing.log_subscription_change is the one-row form. Returns the
 * rows written.
 */
create function billing.log_subscription_changes(p_changes billing.subscription_change[])
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_n integer;
begin
  insert into public.subscription_history
    (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status, new_status,
     actor_kind, actor_id, reason, metadata, effective_at)
  select c.organization_id, c.subscription_id, c.action, c.old_plan_id, c.new_plan_id, c.old_status, c.new_status,
         coalesce(c.actor_kind, 'system'), c.actor_id, c.reason, coalesce(c.metadata, '{}'::jsonb),
         coalesce(c.effective_at, billing.now())
  from pg_catalog.unnest(p_changes) c;
  get diagnostics v_n = row_count;
  return v_n;
end;
$$;
revoke execute on function billing.log_subscription_changes(billing.subscription_change[]) from public;
grant execute on function billing.log_subscription_changes(billing.subscription_change[]) to service_role;

/** One subscription_history row (see billing.log_subscription_changes). */
create function billing.log_subscription_change(
  p_organization_id uuid,
  p_subscription_id uuid,
  p_action text,
  p_old_plan_id uuid,
  p_new_plan_id uuid,
  p_old_status public.subscription_status,
  p_new_status public.subscription_status,
  p_actor_kind text,
  p_actor_id uuid default null,
  p_reason text default null,
  p_metadata jsonb default '{}'::jsonb,
  p_effective_at timestamptz default null
)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform billing.log_subscription_changes(array[row(
    p_organization_id, p_subscription_id, p_action, p_old_plan_id, p_new_plan_id, p_old_status, p_new_status,
    p_actor_kind, p_actor_id, p_reason, p_metadata, p_effective_at)::billing.subscription_change]);
end;
$$;
revoke execute on function billing.log_subscription_change(uuid, uuid, text, uuid, uuid, public.subscription_status,
  public.subscription_status, text, uuid, text, jsonb, timestamptz) from public;
grant execute on function billing.log_subscription_change(uuid, uuid, text, uuid, uuid, public.subscription_status,
  public.subscription_status, text, uuid, text, jsonb, timestamptz) to service_role;

/** One billing period of a plan interval. */
create function billing.interval_length(p_interval public.billing_interval)
returns interval
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_interval when 'month' then interval '1 month' when 'year' then interval '1 year' end;
end;
$$;
revoke execute on function billing.interval_length(public.billing_interval) from public;
grant execute on function billing.interval_length(public.billing_interval) to service_role;

/**
 * The end of one plan interval from p_start, counted on the organization's calendar: months and
 * years are added to the local date and time in p_timezone, so the answer does not depend on the
 * connection's TimeZone (1 July 00:00 IST + 1 month is 1 August 00:00 IST, whatever the session).
 */
create function billing.period_end_after(
  p_start timestamptz,
  p_interval public.billing_interval,
  p_timezone text
)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
begin
  return ((p_start at time zone p_timezone) + billing.interval_length(p_interval)) at time zone p_timezone;
end;
$$;
revoke execute on function billing.period_end_after(timestamptz, public.billing_interval, text) from public;
grant execute on function billing.period_end_after(timestamptz, public.billing_interval, text) to service_role;

/**
 * The plan in effect for an organization at p_at (callers pass billing.now()), and why. Reads the
 * organization's
 * latest subscription (a live one first):
 *   trialing before trial end                  -> the paid plan, reason 'trial'
 *   active or past_due inside the period       -> the paid plan, reason 'active' / 'past_due'
 *   after the period end, within grace days    -> the paid plan, in_grace, reason 'grace'
 *     (not for trials, and not when the user cancelled at period end)
 *   otherwise                                  -> the free plan, reason 'expired', 'past_due'
 *                                                 (grace over, still unpaid), 'canceled' or 'free'
 * All nulls for an unknown organization. It sits on the hot path of increment_usage: a few
 * index lookups with cached plans, one row out.
 */
create function billing.effective_plan(
  p_organization_id uuid,
  p_at timestamptz,
  out organization_id uuid,
  out timezone text,
  out plan_id uuid,
  out plan_code text,
  out tier text,
  out features jsonb,
  out reason text,
  out in_grace boolean,
  out subscription_id uuid,
  out subscription_status public.subscription_status,
  out current_period_end timestamptz,
  out grace_ends_at timestamptz
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_trial_end timestamptz;
  v_cancel_at_period_end boolean;
  v_paid_plan_id uuid;
  v_grace interval;
  v_paid boolean;
  v_paid_code text;
  v_paid_tier text;
  v_paid_features jsonb;
  v_free_id uuid;
  v_free_code text;
  v_free_tier text;
  v_free_features jsonb;
begin
  -- One lookup for the common path: the organization, its live subscription (at most one, by a
  -- unique index) with its plan, the free plan, and the grace setting. A downgrade scheduled for
  -- the period end counts from the moment it is due (the period it was scheduled against has
  -- ended), whether or not the job has applied it yet.
  select o.id, o.timezone, s.id, s.status, p.id, s.current_period_end, s.trial_end, s.cancel_at_period_end,
         billing.grace_interval(),
         p.code, p.tier, p.features, f.id, f.code, f.tier, f.features
  into organization_id, timezone, subscription_id, subscription_status, v_paid_plan_id, current_period_end,
       v_trial_end, v_cancel_at_period_end, v_grace, v_paid_code, v_paid_tier, v_paid_features,
       v_free_id, v_free_code, v_free_tier, v_free_features
  from public.organizations o
  left join public.subscriptions s
    on s.organization_id = o.id and s.status in ('trialing', 'active', 'past_due')
  left join public.billing_plans p
    on p.id = case when s.pending_plan_id is not null and s.pending_plan_effective_at <= p_at
                        and s.current_period_end <= p_at
                   then s.pending_plan_id else s.plan_id end
  left join public.billing_plans f on f.tier = 'free' and f.active
  where o.id = p_organization_id;
  if not found then
    return;
  end if;
  if subscription_id is null then
    -- No live one: the latest that ended says why the plan is free.
    select s.id, s.status, s.plan_id, s.current_period_end
    into subscription_id, subscription_status, v_paid_plan_id, current_period_end
    from public.subscriptions s
    where s.organization_id = p_organization_id and s.status in ('canceled', 'expired')
    order by s.created_at desc
    limit 1;
  end if;

  reason := case
    when subscription_id is null then 'free'
    when subscription_status = 'trialing' then
      case when p_at < coalesce(v_trial_end, current_period_end) then 'trial' else 'expired' end
    when subscription_status in ('active', 'past_due') then
      case
        when p_at < current_period_end then subscription_status::text
        when v_cancel_at_period_end then 'canceled'
        when p_at < current_period_end + v_grace then 'grace'
        when subscription_status = 'past_due' then 'past_due'
        else 'expired'
      end
    when subscription_status = 'canceled' then 'canceled'
    else 'expired'
  end;
  -- 'past_due' inside the period keeps the plan; after the period it means the grace ran out.
  v_paid := reason in ('trial', 'active', 'grace') or (reason = 'past_due' and p_at < current_period_end);
  in_grace := v_paid and reason = 'grace';
  if subscription_status in ('active', 'past_due') then
    grace_ends_at := current_period_end + v_grace;
  end if;

  if v_paid then
    plan_id := v_paid_plan_id;
    plan_code := v_paid_code;
    tier := v_paid_tier;
    features := v_paid_features;
  else
    plan_id := v_free_id;
    plan_code := v_free_code;
    tier := v_free_tier;
    features := v_free_features;
  end if;
end;
$$;
revoke execute on function billing.effective_plan(uuid, timestamptz) from public;
grant execute on function billing.effective_plan(uuid, timestamptz) to authenticated, service_role;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** billing_plans: visitors (anon) see the active catalog. */
create policy "Visitors can read active plans"
  on public.billing_plans for select to anon
  using (active);

/**
 * billing_plans, signed in: the active catalog plus any retired plan one of the user's
 * organizations is (or will be) on. The subquery runs under subscriptions' own policy.
 */
create policy "Signed-in users can read active plans and their organizations' plans"
  on public.billing_plans for select to authenticated
  using (
    active
    or id in (select s.plan_id from public.subscriptions s)
    or id in (select s.pending_plan_id from public.subscriptions s where s.pending_plan_id is not null)
  );

/** subscriptions: members read their organization's. */
create policy "Members can read their organization's subscriptions"
  on public.subscriptions for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** subscription_history: members read their organization's. */
create policy "Members can read their organization's subscription history"
  on public.subscription_history for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * What an organization may use now: plan code and name, tier, subscription status, why
 * (trial|active|grace|past_due|expired|canceled|free), in_grace, current_period_end,
 * grace_ends_at and the plan's features. For members of the organization and service_role.
 */
create function public.get_entitlements(p_organization_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  e record;
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  e := billing.effective_plan(p_organization_id, billing.now());
  return pg_catalog.jsonb_build_object(
    'organization_id', e.organization_id,
    'plan_code', e.plan_code,
    'tier', coalesce(e.tier, 'free'),
    'status', coalesce(e.subscription_status::text, 'free'),
    'reason', e.reason,
    'in_grace', e.in_grace,
    'current_period_end', e.current_period_end,
    'grace_ends_at', e.grace_ends_at,
    'features', coalesce(e.features, '{}'::jsonb));
end;
$$;
revoke execute on function public.get_entitlements(uuid) from public;
grant execute on function public.get_entitlements(uuid) to authenticated, service_role;
comment on function public.get_entitlements(uuid) is 'What an organization may use now: plan, tier, status, reason, grace and features. Members and service_role.';

/** The tier code in effect now (free|basic|pro|enterprise). Members and service_role. */
create function public.effective_tier(p_organization_id uuid)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  e record;
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  e := billing.effective_plan(p_organization_id, billing.now());
  return coalesce(e.tier, 'free');
end;
$$;
revoke execute on function public.effective_tier(uuid) from public;
grant execute on function public.effective_tier(uuid) to authenticated, service_role;
comment on function public.effective_tier(uuid) is 'The tier in effect now (free, basic, pro or enterprise). Members and service_role.';

/** Entitlements of every organization the caller can see (members: their own). */
create view public.organization_entitlements
with (security_invoker = true)
as
select e.organization_id, e.plan_code, coalesce(e.tier, 'free') as tier,
       coalesce(e.subscription_status::text, 'free') as status, e.reason, e.in_grace,
       e.current_period_end, e.grace_ends_at, coalesce(e.features, '{}'::jsonb) as features
from public.organizations o
cross join lateral billing.effective_plan(o.id, billing.now()) e;
grant select on public.organization_entitlements to authenticated, service_role;
comment on view public.organization_entitlements is 'The entitlements of every organization the caller is a member of.';
