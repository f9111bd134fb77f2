-- =================================================================================================
-- supabill: tenancy, plan catalog, subscriptions and audit
--
-- Organizations and their members, the billing settings, the plan catalog (with entitlements in
-- `features`), subscriptions, the immutable audit logs (subscription_history, payment_events),
-- checkout orders, provider webhook events and usage counters. Private helpers live in schema
-- `billing`, which PostgREST does not expose.
--
-- Sections, in order: 1. schema, types and the test clock; 2. tables (each with grants, row level
-- security and triggers); 3. helper functions; 4. policies; 5. public functions.
--
-- Access in short: anon reads active plans; signed-in users read their own organizations' rows
-- (and the billing settings); every write by a signed-in user goes through a SQL function;
-- webhook_events is service_role only. service_role bypasses RLS and gets explicit grants.
--
-- Every function in these migrations is plpgsql, one-liners too: each sets search_path = ''
-- (DESIGN section 6), and a sql-language function with a SET clause is never inlined and plans
-- its body again on every call (80 to 100 us for is_member here), while plpgsql keeps its plans.
-- =================================================================================================


-- =================================================================================================
-- 1. Schema, types and the test clock
-- =================================================================================================

/** Private billing objects: helpers, trigger functions. Not exposed through the API. */
create schema if not exists billing;
revoke all on schema billing from public;
-- Policies call billing.* helpers as the querying role, so signed-in users need usage.
grant usage on schema billing to authenticated, service_role;

/** A member's role in an organization. */
create type public.member_role as enum ('owner', 'admin', 'member');

/** How often a plan bills. */
create type public.billing_interval as enum ('month', 'year');

/** Subscription lifecycle: pending_payment -> trialing | active -> past_due -> expired; canceled. */
create type public.subscription_status as enum (
  'pending_payment', 'trialing', 'active', 'past_due', 'canceled', 'expired'
);

/** The window of a metered limit (`<metric>_per_<window>` in plan features). */
create type public.usage_window as enum ('minute', 'hour', 'day', 'month');

/**
 * The test clock: now() unless the transaction pins `billing.now`
 * (`set local billing.now = '2026-03-31 23:59:00+05:30'`). Every time-dependent rule reads it.
 */
create function billing.now()
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce(nullif(pg_catalog.current_setting('billing.now', true), '')::timestamptz, pg_catalog.now());
end;
$$;
revoke execute on function billing.now() from public;
grant execute on function billing.now() to authenticated, service_role;


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- Trigger functions shared by several tables (defined first so tables can attach them)
-- -------------------------------------------------------------------------------------------------

/** Keeps `updated_at` current on every update. */
create function billing.touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end;
$$;
revoke execute on function billing.touch_updated_at() from public;

/** Rejects an unknown time zone name with a clear error (used for `timezone` columns). */
create function billing.check_timezone()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_zone text := pg_catalog.to_jsonb(new) ->> tg_argv[0];
begin
  perform pg_catalog.timezone(v_zone, pg_catalog.now());
  return new;
exception
  when invalid_parameter_value then
    raise exception '%.%: unknown time zone "%"', tg_table_name, tg_argv[0], v_zone
      using errcode = 'invalid_parameter_value',
            hint = 'Use an IANA name such as Asia/Kolkata.';
end;
$$;
revoke execute on function billing.check_timezone() from public;

/**
 * Makes a table append-only: UPDATE, DELETE and TRUNCATE raise for every role. The error says
 * what the rows are (TG_ARGV[0], default 'is an append-only audit log') and, when given, how to
 * correct one instead (TG_ARGV[1], the hint). The audit logs here and the issued GST documents
 * of the invoices migration use it.
 */
create function billing.reject_change()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_message text := pg_catalog.format('%s.%s %s: %s is not allowed', tg_table_schema, tg_table_name,
                                      coalesce(tg_argv[0], 'is an append-only audit log'), tg_op);
begin
  if tg_argv[1] is null then
    raise exception using message = v_message, errcode = 'insufficient_privilege';
  end if;
  raise exception using message = v_message, errcode = 'insufficient_privilege', hint = tg_argv[1];
end;
$$;
revoke execute on function billing.reject_change() from public;

-- -------------------------------------------------------------------------------------------------
-- billing_settings
-- -------------------------------------------------------------------------------------------------

/**
 * The billing settings: one row (id = true), edited by operators in the SQL editor.
 * grace_days: how long a paid plan stays in effect after current_period_end (DESIGN 5).
 * seller_*: the seller printed on GST invoices. order_pending_reconcile_after: when a checkout
 * order still pending is asked about at the provider.
 */
create table public.billing_settings (
  id boolean primary key default true constraint billing_settings_singleton check (id),
  grace_days integer not null default 3 check (grace_days between 0 and 365),
  seller_legal_name text check (seller_legal_name is null or length(btrim(seller_legal_name)) > 0),
  seller_gstin text check (seller_gstin ~ '^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$'),
  seller_state_code text check (seller_state_code ~ '^[0-9]{2}$'),
  invoice_prefix text not null default 'INV' check (invoice_prefix ~ '^[A-Z0-9][A-Z0-9/-]{0,9}$'),
  default_currency text not null default 'INR' check (default_currency ~ '^[A-Z]{3}$'),
  default_timezone text not null default 'Asia/Kolkata',
  app_success_url text check (app_success_url ~ '^https?://'),
  app_failure_url text check (app_failure_url ~ '^https?://'),
  order_pending_reconcile_after interval not null default interval '15 minutes'
    check (order_pending_reconcile_after > interval '0'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint billing_settings_gstin_matches_state
    check (seller_gstin is null or seller_state_code is null or left(seller_gstin, 2) = seller_state_code)
);
grant select on public.billing_settings to authenticated;
grant select, insert, update, delete on public.billing_settings to service_role;
alter table public.billing_settings enable row level security;

create trigger billing_settings_touch_updated_at
  before update on public.billing_settings
  for each row execute function billing.touch_updated_at();

create trigger billing_settings_check_timezone
  before insert or update of default_timezone on public.billing_settings
  for each row execute function billing.check_timezone('default_timezone');

/**
 * The grace period after a period end (billing_settings.grace_days; 3 days when the settings
 * row is missing). The one place every rule reads it from.
 */
create function billing.grace_interval()
returns interval
language plpgsql
stable
set search_path = ''
as $$
begin
  return pg_catalog.make_interval(days => coalesce((select s.grace_days from public.billing_settings s), 3));
end;
$$;
revoke execute on function billing.grace_interval() from public;
grant execute on function billing.grace_interval() to authenticated, service_role;

insert into public.billing_settings (id) values (true);

-- -------------------------------------------------------------------------------------------------
-- organizations
-- -------------------------------------------------------------------------------------------------

/** A tenant: the customer that subscribes, with its GST billing details. */
create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) between 1 and 200),
  billing_name text check (billing_name is null or length(btrim(billing_name)) between 1 and 200),
  billing_email text check (billing_email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  gstin text check (gstin ~ '^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$'),
  state_code text check (state_code ~ '^[0-9]{2}$'),
  timezone text not null default 'Asia/Kolkata',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint organizations_gstin_matches_state
    check (gstin is null or state_code is null or left(gstin, 2) = state_code)
);
grant select on public.organizations to authenticated;
grant select, insert, update, delete on public.organizations to service_role;
alter table public.organizations enable row level security;

create trigger organizations_touch_updated_at
  before update on public.organizations
  for each row execute function billing.touch_updated_at();

create trigger organizations_check_timezone
  before insert or update of timezone on public.organizations
  for each row execute function billing.check_timezone('timezone');

-- -------------------------------------------------------------------------------------------------
-- organization_members
-- -------------------------------------------------------------------------------------------------

/** Who belongs to an organization, and as what. Every organization keeps at least one owner. */
create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.member_role not null default 'member',
  created_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);
/** Memberships by user: the foreign key, and the lookup every policy makes. */
create index organization_members_user_id_idx on public.organization_members (user_id);
grant select on public.organization_members to authenticated;
grant select, insert, update, delete on public.organization_members to service_role;
alter table public.organization_members enable row level security;

/**
 * Keeps the last owner: an owner row may be deleted or demoted only while another owner remains.
 * Locks the organization row first, so two concurrent removals of two owners cannot both pass.
 * Allowed when the organization itself is being deleted (its row is gone). Membership rows never
 * move between users or organizations.
 * Security definer: it must lock the organization row and count every owner whatever the
 * caller's privileges (service_role, a security-definer RPC, a cascade from auth.users).
 */
create function billing.protect_last_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and (new.organization_id <> old.organization_id or new.user_id <> old.user_id) then
    raise exception 'a membership cannot move to another organization or user'
      using errcode = 'check_violation';
  end if;

  if old.role <> 'owner' or (tg_op = 'UPDATE' and new.role = 'owner') then
    return case when tg_op = 'DELETE' then old else new end;
  end if;

  perform 1 from public.organizations o where o.id = old.organization_id for update;
  if not found then
    -- The organization is being deleted: its memberships go with it.
    return case when tg_op = 'DELETE' then old else new end;
  end if;

  if not exists (
    select 1
    from public.organization_members m
    where m.organization_id = old.organization_id
      and m.role = 'owner'
      and m.user_id <> old.user_id
  ) then
    raise exception 'cannot remove or demote the last owner of organization %', old.organization_id
      using errcode = 'check_violation',
            hint = 'Make another member owner first.';
  end if;

  return case when tg_op = 'DELETE' then old else new end;
end;
$$;
revoke execute on function billing.protect_last_owner() from public;

create trigger organization_members_protect_last_owner
  before update or delete on public.organization_members
  for each row execute function billing.protect_last_owner();

-- -------------------------------------------------------------------------------------------------
-- billing_plans
-- -------------------------------------------------------------------------------------------------

/**
 * The plan catalog. Entitlements live in `features` (DESIGN 4): `<metric>_per_<window>` metered
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
  provider text check (provider in ('payu', 'razorpay', 'manual')),
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

-- -------------------------------------------------------------------------------------------------
-- orders
-- -------------------------------------------------------------------------------------------------

/**
 * A checkout intent: what we expect a provider to collect. `receipt` is our reference (PayU
 * `txnid`, Razorpay `receipt`); `provider_order_id` is the provider's (Razorpay `order_...`).
 * Every provider payment is matched to an order and its amount and currency checked.
 */
create table public.orders (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  plan_id uuid not null references public.billing_plans (id) on delete restrict,
  subscription_id uuid references public.subscriptions (id) on delete set null,
  provider text not null check (provider in ('payu', 'razorpay', 'manual')),
  receipt text not null unique
    default ('ord_' || left(replace(gen_random_uuid()::text, '-', ''), 20))
    check (receipt ~ '^[A-Za-z0-9_-]{1,40}$'),
  provider_order_id text,
  kind text not null default 'new' check (kind in ('new', 'renewal', 'upgrade')),
  amount_cents bigint not null check (amount_cents > 0),
  currency text not null default 'INR' check (currency ~ '^[A-Z]{3}$'),
  status text not null default 'created'
    check (status in ('created', 'pending', 'paid', 'failed', 'expired', 'canceled')),
  created_by uuid references auth.users (id) on delete set null,
  paid_at timestamptz,
  expires_at timestamptz,
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint orders_provider_order_unique unique (provider, provider_order_id),
  constraint orders_paid_at_when_paid check (status <> 'paid' or paid_at is not null)
);
/** Foreign keys; an organization's orders in time order; open orders to reconcile. */
create index orders_organization_id_idx on public.orders (organization_id, created_at);
create index orders_plan_id_idx on public.orders (plan_id);
create index orders_subscription_id_idx on public.orders (subscription_id);
create index orders_created_by_idx on public.orders (created_by);
create index orders_status_created_at_idx on public.orders (status, created_at)
  where status in ('created', 'pending');
grant select on public.orders to authenticated;
grant select, insert, update, delete on public.orders to service_role;
alter table public.orders enable row level security;

create trigger orders_touch_updated_at
  before update on public.orders
  for each row execute function billing.touch_updated_at();

-- -------------------------------------------------------------------------------------------------
-- payment_events (immutable)
-- -------------------------------------------------------------------------------------------------

/**
 * Append-only log of what providers told us about payments: one row per observed state of a
 * provider payment (authorized, captured, failed, refunded) or a mismatch against our order.
 * order_id is null only when a payment could not be matched to any order. UPDATE, DELETE and
 * TRUNCATE raise.
 */
create table public.payment_events (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete restrict,
  order_id uuid references public.orders (id) on delete restrict,
  provider text not null check (provider in ('payu', 'razorpay', 'manual')),
  provider_payment_id text not null check (length(provider_payment_id) between 1 and 200),
  amount_cents bigint not null check (amount_cents >= 0),
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  status text not null check (status in ('authorized', 'captured', 'failed', 'refunded', 'mismatch')),
  method text,
  error_reason text,
  details jsonb not null default '{}'::jsonb check (jsonb_typeof(details) = 'object'),
  occurred_at timestamptz not null default billing.now(),
  created_at timestamptz not null default now()
);
/** Foreign keys; an organization's payments in time order; a provider payment's events. */
create index payment_events_organization_id_idx on public.payment_events (organization_id, occurred_at);
create index payment_events_order_id_idx on public.payment_events (order_id);
create index payment_events_provider_payment_idx on public.payment_events (provider, provider_payment_id);
grant select on public.payment_events to authenticated;
grant select, insert, update, delete on public.payment_events to service_role;
alter table public.payment_events enable row level security;

create trigger payment_events_immutable
  before update or delete on public.payment_events
  for each row execute function billing.reject_change();

create trigger payment_events_no_truncate
  before truncate on public.payment_events
  for each statement execute function billing.reject_change();

-- -------------------------------------------------------------------------------------------------
-- webhook_events
-- -------------------------------------------------------------------------------------------------

/**
 * Every provider webhook delivery, recorded once per (provider, event_id): the exactly-once
 * guard. Each is applied in the transaction that records it (public.apply_payment_event), so
 * processed_at is set from the start; last_error says what was not applied, and why.
 * service_role only; never exposed to anon or signed-in users.
 */
create table public.webhook_events (
  id uuid primary key default gen_random_uuid(),
  provider text not null check (provider in ('payu', 'razorpay', 'manual')),
  event_id text not null check (length(event_id) between 1 and 300),
  event_type text not null,
  payload jsonb not null,
  received_at timestamptz not null default billing.now(),
  processed_at timestamptz,
  attempts integer not null default 0 check (attempts >= 0),
  last_error text,
  created_at timestamptz not null default now(),
  constraint webhook_events_provider_event_unique unique (provider, event_id)
);
grant select, insert, update, delete on public.webhook_events to service_role;
alter table public.webhook_events enable row level security;

-- -------------------------------------------------------------------------------------------------
-- usage_quotas
-- -------------------------------------------------------------------------------------------------

/**
 * Usage counters: how much of `metric` an organization used in one window (minute, hour, day,
 * month) starting at `window_start` (the organization's local day/month start).
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
/** Old windows, for purging. (organization_id leads the primary key.) */
create index usage_quotas_window_start_idx on public.usage_quotas (window_start);
grant select on public.usage_quotas to authenticated;
grant select, insert, update, delete on public.usage_quotas to service_role;
alter table public.usage_quotas enable row level security;

create trigger usage_quotas_touch_updated_at
  before update on public.usage_quotas
  for each row execute function billing.touch_updated_at();

-- -------------------------------------------------------------------------------------------------
-- usage_metrics
-- -------------------------------------------------------------------------------------------------

/**
 * Raw usage events. `request_id` is the caller's idempotency key: a retried request is counted
 * once per (organization, metric).
 */
create table public.usage_metrics (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  metric text not null check (metric ~ '^[a-z][a-z0-9_]{0,62}$'),
  amount bigint not null check (amount > 0),
  request_id text check (length(request_id) between 1 and 200),
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  occurred_at timestamptz not null default billing.now(),
  created_at timestamptz not null default now(),
  constraint usage_metrics_request_unique unique (organization_id, metric, request_id)
);
/** Foreign keys; an organization's usage in time order. */
create index usage_metrics_organization_id_idx on public.usage_metrics (organization_id, occurred_at);
create index usage_metrics_user_id_idx on public.usage_metrics (user_id);
grant select on public.usage_metrics to authenticated;
grant select, insert, update, delete on public.usage_metrics to service_role;
alter table public.usage_metrics enable row level security;


-- =================================================================================================
-- 3. Helper functions
-- =================================================================================================

/**
 * The organizations the signed-in user belongs to, optionally only those where the user has one
 * of `p_roles`. Used by policies as `organization_id in (select billing.member_organization_ids())`,
 * which Postgres evaluates once per query.
 * Security definer: it reads organization_members, whose own policy calls it; as invoker that
 * would recurse through RLS.
 */
create function billing.member_organization_ids(p_roles text[] default null)
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return query
  select m.organization_id
    from public.organization_members m
    where m.user_id = (select auth.uid())
      and (p_roles is null or m.role::text = any (p_roles));
end;
$$;
revoke execute on function billing.member_organization_ids(text[]) from public;
grant execute on function billing.member_organization_ids(text[]) to authenticated, service_role;

/**
 * True when the signed-in user is a member of the organization.
 * Security definer: reads organization_members without going through its RLS (no recursion).
 */
create function billing.is_member(p_organization_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (
    select 1
    from public.organization_members m
    where m.organization_id = p_organization_id
      and m.user_id = (select auth.uid())
  );
end;
$$;
revoke execute on function billing.is_member(uuid) from public;
grant execute on function billing.is_member(uuid) to authenticated, service_role;

/**
 * True when the signed-in user has one of `p_roles` (owner, admin, member) in the organization.
 * Security definer: reads organization_members without going through its RLS (no recursion).
 */
create function billing.has_role(p_organization_id uuid, p_roles text[])
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (
    select 1
    from public.organization_members m
    where m.organization_id = p_organization_id
      and m.user_id = (select auth.uid())
      and m.role::text = any (p_roles)
  );
end;
$$;
revoke execute on function billing.has_role(uuid, text[]) from public;
grant execute on function billing.has_role(uuid, text[]) to authenticated, service_role;

/** The signed-in user's id, or an error (42501) when nobody is signed in. */
create function billing.require_user()
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  v_user_id uuid := auth.uid();
begin
  if v_user_id is null then
    raise exception 'not signed in' using errcode = 'insufficient_privilege';
  end if;
  return v_user_id;
end;
$$;
revoke execute on function billing.require_user() from public;

/**
 * The signed-in user's role in the organization; an error unless it is owner or admin.
 * The same error for "no such organization" and "not a member", so nothing leaks.
 */
create function billing.require_manager(p_organization_id uuid)
returns public.member_role
language plpgsql
stable
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_role public.member_role;
begin
  select m.role into v_role
  from public.organization_members m
  where m.organization_id = p_organization_id
    and m.user_id = v_user_id;
  if v_role is null or v_role not in ('owner', 'admin') then
    raise exception 'only owners and admins of the organization can do this'
      using errcode = 'insufficient_privilege';
  end if;
  return v_role;
end;
$$;
revoke execute on function billing.require_manager(uuid) from public;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** billing_settings: readable by every signed-in user (seller details, grace days). */
create policy "Signed-in users can read the billing settings"
  on public.billing_settings for select to authenticated
  using (true);

/** organizations: members read their own. */
create policy "Members can read their organizations"
  on public.organizations for select to authenticated
  using (id in (select billing.member_organization_ids()));

/** organization_members: a user reads their own memberships and their co-members. */
create policy "Members can read the members of their organizations"
  on public.organization_members for select to authenticated
  using (
    user_id = (select auth.uid())
    or organization_id in (select billing.member_organization_ids())
  );

/** billing_plans: everyone sees the active catalog. */
create policy "Anyone can read active plans"
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

/** orders: members read their organization's. */
create policy "Members can read their organization's orders"
  on public.orders for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** payment_events: members read their organization's. */
create policy "Members can read their organization's payment events"
  on public.payment_events for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** usage_quotas: members read their organization's counters. */
create policy "Members can read their organization's usage quotas"
  on public.usage_quotas for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** usage_metrics: members read their organization's usage events. */
create policy "Members can read their organization's usage metrics"
  on public.usage_metrics for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

-- webhook_events: no policies. Only service_role (which bypasses RLS) has grants.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * Creates an organization with the signed-in user as its owner; returns its id.
 * Security definer: signed-in users have no insert grant on organizations or
 * organization_members; this function is the one way in.
 */
create function public.create_organization(p_name text)
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

  insert into public.organizations (name)
  values (btrim(p_name))
  returning id into v_organization_id;

  insert into public.organization_members (organization_id, user_id, role)
  values (v_organization_id, v_user_id, 'owner');

  return v_organization_id;
end;
$$;
revoke execute on function public.create_organization(text) from public, anon;
grant execute on function public.create_organization(text) to authenticated, service_role;

/**
 * Adds a user to an organization. Owners and admins only; only an owner can add an owner.
 * Security definer: signed-in users have no write grant on organization_members.
 */
create function public.add_organization_member(
  p_organization_id uuid,
  p_user_id uuid,
  p_role public.member_role default 'member'
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_caller_role public.member_role := billing.require_manager(p_organization_id);
begin
  if p_user_id is null or p_role is null then
    raise exception 'user and role are required' using errcode = 'invalid_parameter_value';
  end if;
  if p_role = 'owner' and v_caller_role <> 'owner' then
    raise exception 'only an owner can add an owner' using errcode = 'insufficient_privilege';
  end if;
  if not exists (select 1 from auth.users u where u.id = p_user_id) then
    raise exception 'no such user %', p_user_id using errcode = 'no_data_found';
  end if;

  insert into public.organization_members (organization_id, user_id, role)
  values (p_organization_id, p_user_id, p_role)
  on conflict (organization_id, user_id) do nothing;
  if not found then
    raise exception 'user % is already a member of the organization', p_user_id
      using errcode = 'unique_violation', hint = 'Use set_member_role to change a member''s role.';
  end if;
end;
$$;
revoke execute on function public.add_organization_member(uuid, uuid, public.member_role) from public, anon;
grant execute on function public.add_organization_member(uuid, uuid, public.member_role) to authenticated, service_role;

/**
 * Removes a member. Owners and admins may remove others (an admin never an owner); any member
 * may remove themselves (leave). The last owner can never be removed (enforced by a trigger).
 * Security definer: signed-in users have no write grant on organization_members.
 */
create function public.remove_organization_member(p_organization_id uuid, p_user_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_caller_id uuid := billing.require_user();
  v_caller_role public.member_role;
  v_target_role public.member_role;
begin
  if p_user_id is distinct from v_caller_id then
    v_caller_role := billing.require_manager(p_organization_id);
  end if;

  select m.role into v_target_role
  from public.organization_members m
  where m.organization_id = p_organization_id and m.user_id = p_user_id
  for update;
  if v_target_role is null then
    if p_user_id = v_caller_id then
      -- Not a member of it: same answer as for a stranger's organization.
      raise exception 'only owners and admins of the organization can do this'
        using errcode = 'insufficient_privilege';
    end if;
    raise exception 'user % is not a member of the organization', p_user_id using errcode = 'no_data_found';
  end if;
  if v_target_role = 'owner' and v_caller_role = 'admin' then
    raise exception 'an admin cannot remove an owner' using errcode = 'insufficient_privilege';
  end if;

  delete from public.organization_members m
  where m.organization_id = p_organization_id and m.user_id = p_user_id;
end;
$$;
revoke execute on function public.remove_organization_member(uuid, uuid) from public, anon;
grant execute on function public.remove_organization_member(uuid, uuid) to authenticated, service_role;

/**
 * Changes a member's role. Owners and admins only; an admin can neither change an owner's role
 * nor make anyone owner. The last owner can never be demoted (enforced by a trigger).
 * Security definer: signed-in users have no write grant on organization_members.
 */
create function public.set_member_role(p_organization_id uuid, p_user_id uuid, p_role public.member_role)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_caller_role public.member_role := billing.require_manager(p_organization_id);
  v_target_role public.member_role;
begin
  if p_role is null then
    raise exception 'role is required' using errcode = 'invalid_parameter_value';
  end if;

  select m.role into v_target_role
  from public.organization_members m
  where m.organization_id = p_organization_id and m.user_id = p_user_id
  for update;
  if v_target_role is null then
    raise exception 'user % is not a member of the organization', p_user_id using errcode = 'no_data_found';
  end if;
  if v_caller_role = 'admin' and (v_target_role = 'owner' or p_role = 'owner') then
    raise exception 'only an owner can change an owner''s role or make someone owner'
      using errcode = 'insufficient_privilege';
  end if;

  update public.organization_members m
  set role = p_role
  where m.organization_id = p_organization_id and m.user_id = p_user_id
    and m.role <> p_role;
end;
$$;
revoke execute on function public.set_member_role(uuid, uuid, public.member_role) from public, anon;
grant execute on function public.set_member_role(uuid, uuid, public.member_role) to authenticated, service_role;
