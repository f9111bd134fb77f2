-- =================================================================================================
-- supabill: plans: the plan catalog, subscriptions, their history, and the plan in effect
--
-- The catalog of what is sold: plans (billing_plans), their prices in other currencies than
-- their own (plan_prices, chosen at checkout: billing.plan_in_currency), and credit packs
-- (credit_packs, credits bought once, INR; the credits module grants them when their payment is
-- captured).
--
-- Enterprise pricing: a private plan (billing_plans.private) is listed and sold only to the
-- organizations it is assigned to (plan_assignments; billing.require_plan_available), and an
-- organization may pay a negotiated price for a plan over a validity period under a contract
-- (price_overrides). billing.plan_price_for is the one place a plan's price for an organization at
-- a time is read. Operators write both (billing.operator_assign_plan, operator_set_price_override
-- and their ends, 08_provider_actions).
--
-- The plan catalog (entitlements in `features`), each organization's subscription, the
-- append-only subscription_history, and the plan in effect, computed on read from the
-- subscription row and billing.now(): billing.effective_plan_rows (the rules, one SQL query the
-- planner inlines into get_entitlements, effective_tier, get_usage and organization_entitlements)
-- and billing.effective_plan (the same as one record, for plpgsql callers). No read depends on a
-- cron job having run.
--
-- Periods end a whole number of plan intervals after the anchor of their run
-- (subscriptions.period_anchor) on the organization's calendar (organizations.timezone),
-- whatever the connection's TimeZone: billing.period_end_after.
--
-- Subscription history is written by the database: a statement-level trigger on
-- public.subscriptions (AFTER INSERT and AFTER UPDATE, with transition tables,
-- billing.record_subscription_history) writes one subscription_history row per subscription the
-- statement created or changed. What the row says comes from the change context, a
-- transaction-local setting (billing.change_context) that our functions set just before they
-- write, through billing.set_change_context(action, actor_kind, actor_id, reason, metadata,
-- effective_at, when_due). The trigger takes the context and clears it, so it labels exactly one
-- statement.
--
-- A write with no context (an UPDATE in the SQL editor, a script) is recorded too, with actor
-- 'sql', the database role in metadata.db_role, the columns that changed in metadata.changed,
-- and an action derived from what changed (billing.subscription_change_action):
--   a new row 'created'; a plan change 'plan_changed'; else a status change 'canceled',
--   'expired', 'past_due', 'activated' (to active from pending_payment or trialing),
--   'reactivated' (to active from past_due, canceled or expired) or 'status_changed'; else
--   cancel_at_period_end 'cancel_scheduled' / 'resumed'; else a pending plan set
--   'downgrade_scheduled' or cleared 'pending_plan_cleared'; else a period or trial end
--   'period_changed'; else 'updated'.
-- What is history-worthy: a new row, and a change of any column but the bookkeeping ones
-- (updated_at, created_at, period_anchor). An UPDATE that changes none of them writes nothing.
--
-- The row's columns: old and new plan and status are the row before and after the change,
-- except that a 'downgrade_scheduled' row's new_plan_id is the plan asked for (pending_plan_id),
-- as billing.subscription_states reads it; effective_at is billing.now(), or the context's
-- effective_at, or (when_due, for the jobs) the time each row's change fell due; created_at is
-- the wall clock of the write (clock_timestamp), so two changes of one transaction at the same
-- effective_at keep their order.
--
-- One writer per change: an intent that changes no subscription row (an upgrade ordered: an
-- order is created, the subscription is untouched until it is paid) is written by
-- billing.log_subscription_intent, which accepts only the intent actions
-- (billing.subscription_intent_actions); billing.set_change_context refuses those actions. An
-- operator's own words for a change are kept in billing.operator_notes, out of the history
-- members read.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.

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
  tier public.plan_tier not null,
  interval public.billing_interval not null default 'month',
  price_cents bigint not null check (price_cents >= 0),
  currency text not null default 'INR' check (currency ~ '^[A-Z]{3}$'),
  trial_days integer not null default 0 check (trial_days between 0 and 365),
  features jsonb not null default '{}'::jsonb,
  provider_config jsonb not null default '{}'::jsonb check (jsonb_typeof(provider_config) = 'object'),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  private boolean not null default false,
  constraint billing_plans_free_is_free check (tier <> 'free' or price_cents = 0),
  constraint billing_plans_free_is_public check (tier <> 'free' or not private)
);

comment on table public.billing_plans is 'The plan catalog: price, interval, trial days and entitlements (features), one active free plan.';

comment on column public.billing_plans.private is
  'A private plan (enterprise pricing) is listed and sold only to the organizations it is assigned to (public.plan_assignments); the free plan is never private.';

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
revoke execute on function billing.is_non_negative_integer(jsonb) from public;
grant execute on function billing.is_non_negative_integer(jsonb) to service_role;

/**
 * Validates a plan's features object; the error names the offending key.
 * `<metric>_per_<minute|hour|day|month>`: non-negative integer or null. `max_<thing>`:
 * non-negative integer. Any other `*_per_*` suffix is an unknown window and is rejected.
 * Credits: `credits_per_period` and `credits_low_threshold`, non-negative integers;
 * `<metric>_overage_event`, the code of a credit event (public.credit_events) that pays for usage
 * past the metric's limit; `ai_credit_event`, the credit event every AI call is charged to, per
 * paisa of its cost (the AI gateway module). `ai_batch`: a boolean, whether members may submit
 * nightly AI batches (public.submit_ai_batch; `max_ai_batch_requests` caps a batch's size).
 */
create function billing.validate_plan_features(p_features jsonb)
returns void
language plpgsql
stable
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
    if v_key in ('credits_per_period', 'credits_low_threshold') then
      if not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a number of credits must be a non-negative integer, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key = 'ai_batch' then
      if pg_catalog.jsonb_typeof(v_value) <> 'boolean' then
        raise exception 'plan features key "ai_batch": whether nightly AI batches are included must be true or false, got %', v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key = 'ai_credit_event' then
      if pg_catalog.jsonb_typeof(v_value) <> 'string'
         or not exists (select from public.credit_events e where e.code = v_value #>> '{}') then
        raise exception 'plan features key "ai_credit_event": the credit event every AI call is charged to, per paisa of its cost, must name a credit event (public.credit_events), got %', v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key = 'client_metrics' then
      -- The metrics a signed-in user may report through usage-track (billing.track_usage).
      if pg_catalog.jsonb_typeof(v_value) <> 'array'
         or exists (select from pg_catalog.jsonb_array_elements(v_value) m
                    where pg_catalog.jsonb_typeof(m) <> 'string' or m #>> '{}' !~ '^[a-z][a-z0-9_]{0,62}$'
                       or m #>> '{}' ~ '_per_') then
        raise exception 'plan features key "client_metrics": the metrics signed-in users may report must be an array of metric names (lowercase snake_case, such as ["exports"]), got %', v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '_overage_event$' then
      if v_key !~ '^[a-z][a-z0-9_]*_overage_event$' or pg_catalog.jsonb_typeof(v_value) <> 'string' then
        raise exception 'plan features key "%": an overage is <metric>_overage_event naming a credit event, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
      if not exists (select from public.credit_events e where e.code = v_value #>> '{}') then
        raise exception 'plan features key "%": no credit event "%" (public.credit_events)', v_key, v_value #>> '{}'
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '_per_[^_]+$' then
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
revoke execute on function billing.validate_plan_features(jsonb) from public;
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
-- credit_packs
-- -------------------------------------------------------------------------------------------------

/**
 * Credit packs for sale: `credits` for `price_paise` (before GST, INR), bought once through
 * checkout (an order of kind 'credit_pack'); its captured payment grants the credits (source
 * 'purchase'), lapsing `validity` after the payment, or never when null. A pack is never free
 * (repeated free checkouts would be unlimited credits). Retire a pack with active = false: orders
 * and invoices keep referring to it.
 */
create table public.credit_packs (
  id uuid primary key default gen_random_uuid(),
  code text not null unique check (code ~ '^[a-z][a-z0-9_]{0,63}$'),
  name text not null check (length(btrim(name)) between 1 and 200),
  description text,
  credits bigint not null
    constraint credit_packs_credits_positive check (credits > 0 and credits <= 1000000000000),
  price_paise bigint not null constraint credit_packs_price_positive check (price_paise > 0),
  currency text not null default 'INR' constraint credit_packs_currency_inr check (currency = 'INR'),
  validity interval constraint credit_packs_validity_positive check (validity is null or validity > interval '0'),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.credit_packs is 'Credit packs for sale: credits for a price in paise (INR), with an optional validity after which they lapse.';

/** The policy column. */
create index credit_packs_active_idx on public.credit_packs (active);

grant select on public.credit_packs to anon, authenticated;

grant select, insert, update, delete on public.credit_packs to service_role;

alter table public.credit_packs enable row level security;

create trigger credit_packs_touch_updated_at
  before update on public.credit_packs
  for each row execute function billing.touch_updated_at();

-- -------------------------------------------------------------------------------------------------
-- plan_prices (a plan's prices in other currencies)
-- -------------------------------------------------------------------------------------------------

/**
 * BEFORE INSERT OR UPDATE on plan_prices: a price in another currency belongs to a paid plan and
 * is in a currency other than the plan's own (its price_cents is that one). A cross-table rule,
 * so a trigger and not a check.
 */
create function billing.check_plan_price()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_plan public.billing_plans;
begin
  select * into v_plan from public.billing_plans p where p.id = new.plan_id;
  if v_plan.tier = 'free' or v_plan.price_cents = 0 then
    raise exception 'plan "%" is free: it has no prices in other currencies', v_plan.code
      using errcode = 'check_violation';
  end if;
  if new.currency = v_plan.currency then
    raise exception 'plan "%" is priced in % by its price_cents: a price in plan_prices is in another currency', v_plan.code, new.currency
      using errcode = 'check_violation';
  end if;
  return new;
end;
$$;
revoke execute on function billing.check_plan_price() from public;

/**
 * A plan's price in another currency than its own (billing_plans.currency, priced by
 * price_cents): price_cents in the minor unit of `currency` (cents for USD and EUR), before GST.
 * Checkout may choose one of them (public.create_checkout_order's p_currency); the order, its
 * renewals and its invoice are then in that currency. A price override (price_overrides) is in
 * the plan's own currency and does not apply to these prices. Readable as the plan is;
 * written by service_role and operators (the SQL editor).
 */
create table public.plan_prices (
  plan_id uuid not null references public.billing_plans (id) on delete cascade,
  currency text not null constraint plan_prices_currency_code check (currency ~ '^[A-Z]{3}$'),
  price_cents bigint not null constraint plan_prices_price_positive check (price_cents > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (plan_id, currency)
);

comment on table public.plan_prices is 'A plan''s prices in other currencies than its own (minor units, before GST), which checkout may choose.';

grant select on public.plan_prices to anon, authenticated;

grant select, insert, update, delete on public.plan_prices to service_role;

alter table public.plan_prices enable row level security;

create trigger plan_prices_check
  before insert or update on public.plan_prices
  for each row execute function billing.check_plan_price();

create trigger plan_prices_touch_updated_at
  before update on public.plan_prices
  for each row execute function billing.touch_updated_at();

-- -------------------------------------------------------------------------------------------------
-- plan_assignments and price_overrides (private enterprise pricing)
-- -------------------------------------------------------------------------------------------------

/**
 * The organizations a private plan is sold to: a live assignment (ended_at null) lets the
 * organization's members read the plan and buy it (checkout, change_plan, start_trial). Written
 * only by billing.operator_assign_plan and ended by billing.operator_unassign_plan (ended_at; the
 * row stays as the record). A subscription already running on the plan keeps it to its period
 * end; the organization cannot buy it again once the assignment ended.
 */
create table public.plan_assignments (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  plan_id uuid not null references public.billing_plans (id) on delete restrict,
  contract_ref text check (contract_ref is null or length(btrim(contract_ref)) between 1 and 200),
  created_at timestamptz not null default now(),
  ended_at timestamptz
);

comment on table public.plan_assignments is 'Which organizations may see and buy a private plan; set by operators, a live one has no ended_at.';

/** One live assignment per organization and plan; the policy's and the checks' look-up. */
create unique index plan_assignments_live_idx on public.plan_assignments (organization_id, plan_id)
  where ended_at is null;

create index plan_assignments_plan_id_idx on public.plan_assignments (plan_id);

grant select on public.plan_assignments to authenticated;

grant select, insert, update, delete on public.plan_assignments to service_role;

alter table public.plan_assignments enable row level security;

/**
 * A negotiated price (paise, before GST, in the plan's currency) an organization pays for a plan
 * (public or private) from valid_from (inclusive) until valid_until (exclusive; null: no end),
 * under a contract (contract_ref). billing.plan_price_for reads it wherever a price is computed:
 * checkout and renewal orders, proration, previews, reminders. An order keeps the price it was
 * created at. Ended early by billing.operator_end_price_override (ended_at: it applies before
 * that time only). Written only by operators (billing.operator_set_price_override); the live
 * periods of one organization and plan never overlap.
 */
create table public.price_overrides (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  plan_id uuid not null references public.billing_plans (id) on delete restrict,
  price_paise bigint not null constraint price_overrides_price_positive check (price_paise > 0),
  valid_from timestamptz not null,
  valid_until timestamptz,
  contract_ref text not null check (length(btrim(contract_ref)) between 1 and 200),
  created_at timestamptz not null default now(),
  ended_at timestamptz,
  constraint price_overrides_period check (valid_until is null or valid_until > valid_from)
);

comment on table public.price_overrides is 'An organization''s negotiated price for a plan over a validity period, under a contract reference; set by operators.';

/** The price look-up: an organization's overrides of a plan, by start. */
create index price_overrides_organization_plan_idx on public.price_overrides (organization_id, plan_id, valid_from);

create index price_overrides_plan_id_idx on public.price_overrides (plan_id);

grant select on public.price_overrides to authenticated;

grant select, insert, update, delete on public.price_overrides to service_role;

alter table public.price_overrides enable row level security;

-- -------------------------------------------------------------------------------------------------
-- subscriptions
-- -------------------------------------------------------------------------------------------------

/**
 * AFTER UPDATE OF status on subscriptions: a provider subscription (Razorpay's mandate, Stripe's
 * subscription) that ends here before the provider ended it (a full refund, a lost dispute, an
 * operator's cancellation now) is cancelled at the provider now, so it is not charged again. A
 * subscription that ended because the provider said so (its stored provider state is cancelled, completed or expired) is
 * left alone, and so is one that runs out at its cycle end (that was queued when it was
 * scheduled).
 */
create function billing.queue_provider_cancel()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if exists (select 1 from billing.provider_subscription_states st
             where st.provider = new.provider and st.provider_subscription_id = new.provider_subscription_id
               and st.status in ('cancelled', 'completed', 'expired')) then
    return null;
  end if;
  perform billing.queue_provider_action(
    new.organization_id, new.provider, 'cancel',
    pg_catalog.jsonb_build_object('provider_subscription_id', new.provider_subscription_id),
    pg_catalog.jsonb_build_object('at_cycle_end', false),
    pg_catalog.format('cancel:%s:now', new.provider_subscription_id),
    'system', pg_catalog.format('the subscription ended here (%s)', new.status), new.id);
  return null;
end;
$$;
revoke execute on function billing.queue_provider_cancel() from public;

/**
 * AFTER UPDATE OF cancel_at_period_end on subscriptions, false to true on a live subscription: a
 * 'cancellation_scheduled' notification, deduplicated per subscription and period end.
 */
create function billing.queue_cancellation_scheduled()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  values (new.organization_id, new.id, 'cancellation_scheduled',
          pg_catalog.jsonb_build_object('plan_id', new.plan_id, 'period_end', new.current_period_end,
                                        'status', new.status),
          pg_catalog.format('cancellation_scheduled:%s:%s', new.id,
                            extract(epoch from new.current_period_end)::bigint))
  on conflict (dedupe_key) do nothing;
  return null;
end;
$$;
revoke execute on function billing.queue_cancellation_scheduled() from public;

/**
 * AFTER INSERT and AFTER UPDATE on public.subscriptions, once per statement (transition tables
 * new_rows, old_rows): one subscription_history row per subscription created, or changed in a
 * history-worthy column (every column but updated_at, created_at and period_anchor), in one
 * insert. Labelled by the change context (billing.take_change_context: taken and cleared here);
 * without one, actor 'sql' and an action derived from what changed
 * (billing.subscription_change_action), with metadata {db_role, changed}. See the banner for the
 * columns' meanings. A statement that wrote no row leaves the context (it has nothing to label):
 * an INSERT ... ON CONFLICT DO UPDATE fires both triggers, and the one whose transition table
 * holds the row takes it.
 */
create function billing.record_subscription_history()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_context jsonb;
  v_now timestamptz := billing.now();
  v_at timestamptz;
  v_when_due boolean;
  v_operator boolean;
  v_reason text;
begin
  -- No row written (an UPDATE that matched none, the UPDATE half of an upsert that inserted): the
  -- context is left for the statement that writes.
  if not exists (select 1 from new_rows) then
    return null;
  end if;
  v_context := billing.take_change_context();
  v_at := coalesce((v_context ->> 'effective_at')::timestamptz, v_now);
  v_when_due := coalesce((v_context ->> 'when_due')::boolean, false);
  -- An operator's own words stay private (billing.operator_notes); members read who acted.
  v_operator := coalesce(v_context ->> 'actor_kind' = 'operator', false);
  v_reason := case when v_operator then 'by an operator' else v_context ->> 'reason' end;
  if tg_op = 'INSERT' then
    with written as (
    insert into public.subscription_history
      (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status, new_status,
       actor_kind, actor_id, reason, metadata, effective_at, created_at)
    select n.organization_id, n.id, coalesce(v_context ->> 'action', 'created'), null, n.plan_id, null, n.status,
           coalesce(v_context ->> 'actor_kind', 'sql')::public.actor_kind, (v_context ->> 'actor_id')::uuid, v_reason,
           coalesce(v_context -> 'metadata',
                    pg_catalog.jsonb_build_object('db_role', current_user)),
           v_at, pg_catalog.clock_timestamp()
    from new_rows n
    returning id, organization_id
    )
    insert into billing.operator_notes (history_id, organization_id, reason)
    select w.id, w.organization_id, v_context ->> 'reason' from written w where v_operator;
  else
    with written as (
    insert into public.subscription_history
      (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status, new_status,
       actor_kind, actor_id, reason, metadata, effective_at, created_at)
    select c.organization_id, c.id, c.action, c.old_plan_id,
           case when c.action = 'downgrade_scheduled' then coalesce(c.pending_plan_id, c.plan_id) else c.plan_id end,
           c.old_status, c.status,
           coalesce(v_context ->> 'actor_kind', 'sql')::public.actor_kind, (v_context ->> 'actor_id')::uuid, v_reason,
           coalesce(v_context -> 'metadata',
                    pg_catalog.jsonb_build_object('db_role', current_user,
                                                  'changed', c.changed)),
           c.effective_at, pg_catalog.clock_timestamp()
    from (
      select n.organization_id, n.id, n.plan_id, n.pending_plan_id, n.status,
             o.plan_id as old_plan_id, o.status as old_status,
             coalesce(v_context ->> 'action', billing.subscription_change_action(o, n)) as action,
             case when v_context is null then billing.subscription_changed_columns(o, n) end as changed,
             case when not v_when_due then v_at
                  -- When the change fell due (the jobs): an end at ended_at, past_due at the period
                  -- end, a scheduled downgrade at the later of its date and the period end.
                  else least(v_at, coalesce(case
                    when n.status is distinct from o.status and n.status in ('canceled', 'expired') then n.ended_at
                    when n.status is distinct from o.status and n.status = 'past_due' then n.current_period_end
                    when n.plan_id is distinct from o.plan_id and n.plan_id = o.pending_plan_id then
                      greatest(o.pending_plan_effective_at, o.current_period_end)
                  end, v_at))
             end as effective_at
      from old_rows o
      join new_rows n on n.id = o.id
      -- History-worthy: every column but updated_at, created_at and period_anchor (bookkeeping).
      -- 02-plans-subscription-history.test.sql fails when a column is added to subscriptions and not here.
      where (o.organization_id, o.plan_id, o.status, o.current_period_start, o.current_period_end, o.trial_end,
             o.cancel_at_period_end, o.canceled_at, o.ended_at, o.provider, o.provider_subscription_id,
             o.pending_plan_id, o.pending_plan_effective_at)
            is distinct from
            (n.organization_id, n.plan_id, n.status, n.current_period_start, n.current_period_end, n.trial_end,
             n.cancel_at_period_end, n.canceled_at, n.ended_at, n.provider, n.provider_subscription_id,
             n.pending_plan_id, n.pending_plan_effective_at)
    ) c
    returning id, organization_id
    )
    insert into billing.operator_notes (history_id, organization_id, reason)
    select w.id, w.organization_id, v_context ->> 'reason' from written w where v_operator;
  end if;
  return null;
end;
$$;
revoke execute on function billing.record_subscription_history() from public;

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
  period_anchor timestamptz,
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

comment on column public.subscriptions.period_anchor is
  'Where the current run of periods started: each period ends a whole number of plan intervals after it, so the day of the month never drifts.';

create trigger subscriptions_queue_provider_cancel
  after update of status on public.subscriptions
  for each row
  when (new.status in ('canceled', 'expired') and old.status in ('trialing', 'active', 'past_due')
        and new.provider_subscription_id is not null
        and not old.cancel_at_period_end)
  execute function billing.queue_provider_cancel();

create trigger subscriptions_queue_cancellation_scheduled
  after update of cancel_at_period_end on public.subscriptions
  for each row
  when (new.cancel_at_period_end and not old.cancel_at_period_end
        and new.status in ('trialing', 'active', 'past_due') and new.current_period_end is not null)
  execute function billing.queue_cancellation_scheduled();

create trigger subscriptions_history_insert
  after insert on public.subscriptions
  referencing new table as new_rows
  for each statement execute function billing.record_subscription_history();

create trigger subscriptions_history_update
  after update on public.subscriptions
  referencing old table as old_rows new table as new_rows
  for each statement execute function billing.record_subscription_history();

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
  actor_kind public.actor_kind not null default 'system',
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

/** The trials a user started, for start_trial's once-per-person rule. */
create index subscription_history_trial_actor_idx on public.subscription_history (actor_id)
  where action = 'trial_started';

-- -------------------------------------------------------------------------------------------------
-- Indexes the daily computation reads by time
-- -------------------------------------------------------------------------------------------------

/** The history rows of one day (the organizations whose MRR can have moved), and the first one. */
create index subscription_history_effective_at_idx on public.subscription_history (effective_at);

comment on column public.subscription_history.actor_kind is
  'Who made the change: user (actor_id), system (a job), provider (a payment provider''s event), operator, or sql (a write with no change context: the SQL editor, a script; metadata.db_role says which role).';

/**
 * An operator's own words for a change (the reason given to billing.operator_*), kept out of
 * public.subscription_history, which members read: there the reason says 'by an operator'. One
 * row per history row of actor 'operator', written by the history trigger. Private: service_role
 * and the SQL editor only; immutable like the history it annotates.
 */
create table billing.operator_notes (
  -- No foreign key: subscription_history stays truncate-proof by its own trigger, and a foreign
  -- key would answer a TRUNCATE first. Rows are written only with their history row.
  history_id uuid primary key,
  organization_id uuid not null references public.organizations (id) on delete restrict,
  reason text not null,
  created_at timestamptz not null default now()
);

create index operator_notes_organization_id_idx on billing.operator_notes (organization_id);

revoke all on billing.operator_notes from public;

grant select, insert on billing.operator_notes to service_role;

create trigger operator_notes_immutable
  before update or delete on billing.operator_notes
  for each row execute function billing.reject_change();

create trigger operator_notes_no_truncate
  before truncate on billing.operator_notes
  for each statement execute function billing.reject_change();

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

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

/** One plan interval after p_start: a run of periods anchored at p_start. */
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
  return billing.period_end_after(p_start, p_interval, p_timezone, p_start);
end;
$$;
revoke execute on function billing.period_end_after(timestamptz, public.billing_interval, text) from public;
grant execute on function billing.period_end_after(timestamptz, public.billing_interval, text) to service_role;

/**
 * The plan in effect for an organization at p_at (callers pass billing.now()), and why: the rules,
 * written once. The organization's live subscription (trialing, active, past_due; at most one),
 * else its latest canceled or expired one, says:
 *   trialing before trial end                  -> the paid plan, reason 'trial'
 *   active or past_due inside the period       -> the paid plan, reason 'active' / 'past_due'
 *   after the period end, within grace days    -> the paid plan, in_grace, reason 'grace'
 *     (billing.grace_interval; not for trials, and not when the user cancelled at period end)
 *   otherwise                                  -> the free plan, reason 'expired', 'past_due'
 *                                                 (grace over, still unpaid), 'canceled' or 'free'
 * A downgrade scheduled for the period end counts from the moment it is due (the period it was
 * scheduled against has ended), whether or not the job has applied it yet. Always one row: all
 * nulls for an unknown organization.
 *
 * One SQL query, so the planner inlines it into the query that calls it in FROM
 * (get_entitlements, effective_tier, get_usage, organization_entitlements, billing.effective_plan):
 * no function call, one plan for the caller's whole statement. The exception to the rule that
 * every function sets search_path: PostgreSQL never inlines a function that has a SET clause.
 * Without one, its body is parsed in the caller's context, so every table and function in it is
 * schema-qualified; its operators (=, <, <=, +, in) are left bare because they are the built-in
 * ones of built-in types (uuid, timestamptz, interval, text, boolean, our enums): pg_catalog is
 * searched first unless a search_path names it after another schema, our functions run with
 * search_path '' (pg_catalog only), and the API roles cannot create operators in a schema that
 * comes first. Security invoker like its callers; not security definer, which would stop the
 * inlining too. Recorded as the one accepted `supabase db advisors` finding (scripts/test.mjs)
 * and the one exception of the function hygiene tests (01-tenancy.test.sql).
 */
create function billing.effective_plan_rows(p_organization_id uuid, p_at timestamptz)
returns table (
  organization_id uuid,
  timezone text,
  plan_id uuid,
  plan_code text,
  tier text,
  features jsonb,
  reason text,
  in_grace boolean,
  subscription_id uuid,
  subscription_status public.subscription_status,
  current_period_end timestamptz,
  grace_ends_at timestamptz
)
language sql
stable
as $$
  select o.id, o.timezone,
         coalesce(p.id, f.id), coalesce(p.code, f.code), coalesce(p.tier::pg_catalog.text, f.tier::pg_catalog.text),
         coalesce(p.features, f.features),
         case when o.id is not null then coalesce(s.reason, 'free') end,
         case when o.id is not null then coalesce(s.paid and s.reason = 'grace', false) end,
         s.id, s.status, s.current_period_end, s.grace_ends_at
  from (select) as one
  left join public.organizations o on o.id = p_organization_id
  -- The live subscription (a unique index keeps it to one), else the latest that ended, with what
  -- it means at p_at: computed here, once, for the one row kept.
  left join lateral (
    select s.id, s.status, s.plan_id, s.current_period_end, s.pending_plan_id, s.pending_plan_effective_at,
           g.grace_ends_at, r.reason,
           -- 'past_due' inside the period keeps the plan; after the period it means the grace ran out.
           r.reason in ('trial', 'active', 'grace') or (r.reason = 'past_due' and p_at < s.current_period_end) as paid
    from public.subscriptions s
    -- The grace setting is read (an InitPlan) only by a row that needs it.
    cross join lateral (
      select case when s.status in ('active', 'past_due')
                  then s.current_period_end + (select billing.grace_interval()) end as grace_ends_at
    ) g
    cross join lateral (
      select case
        when s.status = 'trialing' then
          case when p_at < coalesce(s.trial_end, s.current_period_end) then 'trial' else 'expired' end
        when s.status in ('active', 'past_due') then
          case
            when p_at < s.current_period_end then s.status::pg_catalog.text
            when s.cancel_at_period_end then 'canceled'
            when p_at < g.grace_ends_at then 'grace'
            when s.status = 'past_due' then 'past_due'
            else 'expired'
          end
        when s.status = 'canceled' then 'canceled'
        else 'expired'
      end as reason
    ) r
    where s.organization_id = o.id and s.status in ('trialing', 'active', 'past_due', 'canceled', 'expired')
    order by s.status in ('trialing', 'active', 'past_due') desc, s.created_at desc
    limit 1
  ) s on true
  -- One plan row, by its primary key (the paid plan, or the pending one once due) or the one
  -- active free plan (its unique index); the subqueries keep each an index lookup.
  left join lateral (
    select p.id, p.code, p.tier, p.features
    from public.billing_plans p
    where s.paid
      and p.id = case when s.pending_plan_id is not null and s.pending_plan_effective_at <= p_at
                           and s.current_period_end <= p_at
                      then s.pending_plan_id else s.plan_id end
    limit 1
  ) p on true
  left join lateral (
    select f.id, f.code, f.tier, f.features
    from public.billing_plans f
    where o.id is not null and not coalesce(s.paid, false) and f.tier = 'free' and f.active
    limit 1
  ) f on true
$$;
revoke execute on function billing.effective_plan_rows(uuid, timestamptz) from public;
grant execute on function billing.effective_plan_rows(uuid, timestamptz) to authenticated, service_role;

/**
 * The plan in effect for an organization at p_at, as one record (billing.effective_plan_rows has
 * the rules): for plpgsql callers (`v := billing.effective_plan(...)`, `from
 * billing.effective_plan(...) e`). All nulls for an unknown organization. plpgsql keeps the plan
 * of its one query, in which the rules are inlined.
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
begin
  select e.organization_id, e.timezone, e.plan_id, e.plan_code, e.tier, e.features, e.reason, e.in_grace,
         e.subscription_id, e.subscription_status, e.current_period_end, e.grace_ends_at
  into organization_id, timezone, plan_id, plan_code, tier, features, reason, in_grace,
       subscription_id, subscription_status, current_period_end, grace_ends_at
  from billing.effective_plan_rows(p_organization_id, p_at) e;
end;
$$;
revoke execute on function billing.effective_plan(uuid, timestamptz) from public;
grant execute on function billing.effective_plan(uuid, timestamptz) to authenticated, service_role;

/**
 * The end of the period that starts at p_start, counted on the organization's calendar from the
 * anchor of its run of periods: the first p_anchor + n intervals (n >= 1) after p_start. Months
 * are added to the anchor, never to the last period end, so a run anchored on the 31st ends on
 * 28 February, then 31 March; a 29 February yearly run ends on 28 February, and on 29 February in
 * leap years. A missing anchor, or one after p_start, anchors the run at p_start.
 */
create function billing.period_end_after(
  p_start timestamptz,
  p_interval public.billing_interval,
  p_timezone text,
  p_anchor timestamptz
)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_anchor timestamp := (case when p_anchor is null or p_anchor > p_start then p_start else p_anchor end)
                        at time zone p_timezone;
  v_start timestamp := p_start at time zone p_timezone;
  v_step interval := billing.interval_length(p_interval);
  v_n integer;
  v_end timestamp;
begin
  -- Whole intervals from the anchor to the start, by the calendar (at most one too many or few).
  v_n := case p_interval
    when 'year' then extract(year from v_start)::integer - extract(year from v_anchor)::integer
    else (extract(year from v_start)::integer - extract(year from v_anchor)::integer) * 12
         + extract(month from v_start)::integer - extract(month from v_anchor)::integer
  end;
  v_n := greatest(v_n - 1, 1);
  loop
    v_end := v_anchor + v_n * v_step;
    exit when v_end > v_start;
    v_n := v_n + 1;
  end loop;
  return v_end at time zone p_timezone;
end;
$$;
revoke execute on function billing.period_end_after(timestamptz, public.billing_interval, text, timestamptz) from public;
grant execute on function billing.period_end_after(timestamptz, public.billing_interval, text, timestamptz) to service_role;

/**
 * The list price in paise (before GST, in the plan's currency) organization p_organization_id pays
 * for plan p_plan at p_at: its price override for that plan in effect then (valid_from <= p_at <
 * valid_until, and before ended_at), else the plan's price_cents. A plan row priced in another
 * currency by billing.plan_in_currency is at its plan_prices price (no override applies). Every price of an order, a
 * renewal, a proration, a preview or a reminder is read through it; an order stores the amount
 * it was created at, so a later override changes no open order.
 */
create function billing.plan_price_for(p_organization_id uuid, p_plan public.billing_plans, p_at timestamptz)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_plan.id is null then
    return p_plan.price_cents;
  end if;
  -- A plan priced in another currency (billing.plan_in_currency): its plan_prices price; an
  -- override is in the plan's own currency.
  if p_plan.currency is distinct from (select p.currency from public.billing_plans p where p.id = p_plan.id) then
    return p_plan.price_cents;
  end if;
  return coalesce((billing.price_override_at(p_organization_id, p_plan.id, p_at)).price_paise, p_plan.price_cents);
end;
$$;
revoke execute on function billing.plan_price_for(uuid, public.billing_plans, timestamptz) from public;
grant execute on function billing.plan_price_for(uuid, public.billing_plans, timestamptz) to authenticated, service_role;

/**
 * Plan p_plan as it is sold in p_currency: the row itself for null or the plan's own currency,
 * else the row with currency and price_cents replaced by its public.plan_prices price. Refused
 * with 22023 HINT 'currency_not_offered' for a currency the plan has no price in.
 */
create function billing.plan_in_currency(p_plan public.billing_plans, p_currency text)
returns public.billing_plans
language plpgsql
stable
set search_path = ''
as $$
declare
  v_plan public.billing_plans := p_plan;
  v_price bigint;
begin
  if p_currency is null or p_currency = p_plan.currency then
    return v_plan;
  end if;
  select pp.price_cents into v_price from public.plan_prices pp where pp.plan_id = p_plan.id and pp.currency = p_currency;
  if v_price is null then
    raise exception 'plan "%" is not offered in "%"%', p_plan.code, left(p_currency, 10),
      coalesce(' (it is: ' || (select pg_catalog.string_agg(c, ', ' order by c)
                               from (select p_plan.currency as c
                                     union all
                                     select pp.currency from public.plan_prices pp where pp.plan_id = p_plan.id) x) || ')', '')
      using errcode = 'invalid_parameter_value', hint = 'currency_not_offered';
  end if;
  v_plan.currency := p_currency;
  v_plan.price_cents := v_price;
  return v_plan;
end;
$$;
revoke execute on function billing.plan_in_currency(public.billing_plans, text) from public;
grant execute on function billing.plan_in_currency(public.billing_plans, text) to service_role;

/**
 * The price override of plan p_plan_id in effect for the organization at p_at, or none (a row
 * of nulls): what billing.plan_price_for reads, for the order's metadata (override id, contract).
 */
create function billing.price_override_at(p_organization_id uuid, p_plan_id uuid, p_at timestamptz)
returns public.price_overrides
language plpgsql
stable
set search_path = ''
as $$
declare
  v_override public.price_overrides;
begin
  select * into v_override from public.price_overrides o
  where o.organization_id = p_organization_id and o.plan_id = p_plan_id
    and o.valid_from <= p_at
    and (o.valid_until is null or p_at < o.valid_until)
    and (o.ended_at is null or p_at < o.ended_at)
  order by o.valid_from desc
  limit 1;
  return v_override;
end;
$$;
revoke execute on function billing.price_override_at(uuid, uuid, timestamptz) from public;
grant execute on function billing.price_override_at(uuid, uuid, timestamptz) to authenticated, service_role;

/**
 * Refuses a private plan to an organization it is not assigned to (no live
 * public.plan_assignments row) exactly as an unknown or inactive plan is: P0002 with HINT
 * 'plan_not_found' and the message 'no active plan "<code>"', so a stranger cannot tell a private
 * plan from a code that does not exist.
 * Public plans pass. Called by checkout, change_plan (and its preview) and start_trial before
 * they write anything.
 */
create function billing.require_plan_available(p_organization_id uuid, p_plan public.billing_plans)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_plan.private and not exists (
    select 1 from public.plan_assignments a
    where a.organization_id = p_organization_id and a.plan_id = p_plan.id and a.ended_at is null
  ) then
    raise exception 'no active plan "%"', p_plan.code using errcode = 'no_data_found', hint = 'plan_not_found';
  end if;
end;
$$;
revoke execute on function billing.require_plan_available(uuid, public.billing_plans) from public;
grant execute on function billing.require_plan_available(uuid, public.billing_plans) to service_role;

/** The actions that record an intent, not a change of the subscription row (billing.log_subscription_intent). */
create function billing.subscription_intent_actions()
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array['upgrade_ordered']::text[];
end;
$$;
revoke execute on function billing.subscription_intent_actions() from public;
grant execute on function billing.subscription_intent_actions() to service_role;

/**
 * Labels the next write of public.subscriptions in this transaction: the history rows the
 * trigger writes for it carry this action, actor, reason and metadata, dated p_effective_at
 * (default billing.now()), or, with p_when_due, each at the time its change fell due (the jobs:
 * an end at ended_at, past_due at the period end, a due downgrade at the later of its date and
 * the period end; never after p_effective_at). The context is a transaction-local setting
 * (billing.change_context), taken and cleared by the first statement after it that writes a
 * subscription row, even one that changes nothing history-worthy (a statement that matches no
 * row, like the UPDATE half of an upsert that inserts, leaves it for the next): call it right
 * before the write. It holds for the client command that set it only (its statement_timestamp):
 * set in one command, it labels nothing in the next (set it and write in one function call or
 * DO block). Limitation: within one command, a write rolled back to a savepoint after taking it
 * restores it (set_config is transactional), so the command's next write would take it: our
 * functions set a context right before each write. A later call replaces it. Intent actions are
 * refused (they change no row: billing.log_subscription_intent).
 * Errors: 22023 a bad action, actor kind or metadata.
 */
create function billing.set_change_context(
  p_action text,
  p_actor_kind text,
  p_actor_id uuid default null,
  p_reason text default null,
  p_metadata jsonb default '{}'::jsonb,
  p_effective_at timestamptz default null,
  p_when_due boolean default false
)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_action is null or p_action !~ '^[a-z][a-z_]{0,62}$' then
    raise exception 'change context: action must be lowercase snake_case, got %', coalesce(p_action, '(null)')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_action = any (billing.subscription_intent_actions()) then
    raise exception 'change context: % is an intent that changes no subscription: write it with billing.log_subscription_intent', p_action
      using errcode = 'invalid_parameter_value';
  end if;
  if p_actor_kind is null or p_actor_kind <> all (pg_catalog.enum_range(null::public.actor_kind)::text[]) then
    raise exception 'change context: actor kind must be user, system, provider, operator or sql, got %', coalesce(p_actor_kind, '(null)')
      using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_metadata), 'object') <> 'object' then
    raise exception 'change context: metadata must be an object' using errcode = 'invalid_parameter_value';
  end if;
  perform pg_catalog.set_config('billing.change_context', pg_catalog.jsonb_build_object(
    'action', p_action, 'actor_kind', p_actor_kind, 'actor_id', p_actor_id, 'reason', p_reason,
    'metadata', coalesce(p_metadata, '{}'::jsonb), 'effective_at', p_effective_at,
    'when_due', coalesce(p_when_due, false), 'command_at', pg_catalog.statement_timestamp())::text, true);
end;
$$;
revoke execute on function billing.set_change_context(text, text, uuid, text, jsonb, timestamptz, boolean) from public;
grant execute on function billing.set_change_context(text, text, uuid, text, jsonb, timestamptz, boolean) to service_role;

/**
 * The change context set for this write (billing.set_change_context), or null when none is set
 * or it was set by an earlier client command (another statement_timestamp); either way it is
 * cleared, so it labels one statement only.
 */
create function billing.take_change_context()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_context text := pg_catalog.current_setting('billing.change_context', true);
begin
  if coalesce(v_context, '') = '' then
    return null;
  end if;
  perform pg_catalog.set_config('billing.change_context', '', true);
  if (v_context::jsonb ->> 'command_at')::timestamptz is distinct from pg_catalog.statement_timestamp() then
    return null;
  end if;
  return v_context::jsonb;
end;
$$;
revoke execute on function billing.take_change_context() from public;
grant execute on function billing.take_change_context() to service_role;

/**
 * The history-worthy columns that differ between two versions of a subscription row, sorted
 * (metadata.changed of a change with no context): every column but the bookkeeping ones
 * (updated_at, created_at, period_anchor). The trigger compares the same columns, listed.
 */
create function billing.subscription_changed_columns(p_old public.subscriptions, p_new public.subscriptions)
returns text[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_old jsonb := pg_catalog.to_jsonb(p_old);
begin
  return (select coalesce(pg_catalog.array_agg(n.key order by n.key), '{}'::text[])
          from pg_catalog.jsonb_each(pg_catalog.to_jsonb(p_new) - array['updated_at', 'created_at', 'period_anchor']) n
          where n.value is distinct from v_old -> n.key);
end;
$$;
revoke execute on function billing.subscription_changed_columns(public.subscriptions, public.subscriptions) from public;
grant execute on function billing.subscription_changed_columns(public.subscriptions, public.subscriptions) to service_role;

/**
 * The action a change with no context is recorded under, from what changed (p_old null: a new
 * row): 'created'; 'plan_changed'; a status change: 'canceled', 'expired', 'past_due',
 * 'activated' (to active from pending_payment or trialing), 'reactivated' (to active from
 * past_due, canceled or expired), else 'status_changed'; 'cancel_scheduled' / 'resumed' (the
 * cancel flag); 'downgrade_scheduled' / 'pending_plan_cleared' (the pending plan);
 * 'period_changed' (period or trial end); else 'updated'. The first that applies.
 */
create function billing.subscription_change_action(p_old public.subscriptions, p_new public.subscriptions)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case
    when p_old.id is null then 'created'
    when p_new.plan_id is distinct from p_old.plan_id then 'plan_changed'
    when p_new.status is distinct from p_old.status then
      case
        when p_new.status in ('canceled', 'expired', 'past_due') then p_new.status::text
        when p_new.status = 'active' and p_old.status in ('pending_payment', 'trialing') then 'activated'
        when p_new.status = 'active' then 'reactivated'
        else 'status_changed'
      end
    when p_new.cancel_at_period_end and not p_old.cancel_at_period_end then 'cancel_scheduled'
    when p_old.cancel_at_period_end and not p_new.cancel_at_period_end then 'resumed'
    when p_new.pending_plan_id is distinct from p_old.pending_plan_id
      or p_new.pending_plan_effective_at is distinct from p_old.pending_plan_effective_at then
      case when p_new.pending_plan_id is null then 'pending_plan_cleared' else 'downgrade_scheduled' end
    when (p_new.current_period_start, p_new.current_period_end, p_new.trial_end)
         is distinct from (p_old.current_period_start, p_old.current_period_end, p_old.trial_end) then 'period_changed'
    else 'updated'
  end;
end;
$$;
revoke execute on function billing.subscription_change_action(public.subscriptions, public.subscriptions) from public;
grant execute on function billing.subscription_change_action(public.subscriptions, public.subscriptions) to service_role;

/**
 * Writes one subscription_history row for an intent that changes no subscription row (an action
 * of billing.subscription_intent_actions: 'upgrade_ordered'): the subscription's plan and status
 * as both old and new, new_plan_id the plan asked for (p_plan_id). Every other action is
 * refused: changes are written by the trigger, from the change context.
 * Errors: 22023 not an intent action; P0002 no such subscription.
 */
create function billing.log_subscription_intent(
  p_subscription_id uuid,
  p_action text,
  p_plan_id uuid,
  p_actor_kind text,
  p_actor_id uuid default null,
  p_reason text default null,
  p_metadata jsonb default '{}'::jsonb
)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_sub public.subscriptions;
begin
  if p_action is null or not p_action = any (billing.subscription_intent_actions()) then
    raise exception 'subscription intent: % is not an intent (%): a change is recorded by the trigger on subscriptions',
      coalesce(p_action, '(null)'), pg_catalog.array_to_string(billing.subscription_intent_actions(), ', ')
      using errcode = 'invalid_parameter_value';
  end if;
  select * into v_sub from public.subscriptions s where s.id = p_subscription_id;
  if v_sub.id is null then
    raise exception 'subscription intent: no subscription %', p_subscription_id using errcode = 'no_data_found';
  end if;
  insert into public.subscription_history
    (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status, new_status,
     actor_kind, actor_id, reason, metadata, effective_at, created_at)
  values
    (v_sub.organization_id, v_sub.id, p_action, v_sub.plan_id, p_plan_id, v_sub.status, v_sub.status,
     p_actor_kind::public.actor_kind, p_actor_id, p_reason, coalesce(p_metadata, '{}'::jsonb), billing.now(), pg_catalog.clock_timestamp());
end;
$$;
revoke execute on function billing.log_subscription_intent(uuid, text, uuid, text, uuid, text, jsonb) from public;
grant execute on function billing.log_subscription_intent(uuid, text, uuid, text, uuid, text, jsonb) to service_role;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** billing_plans: visitors (anon) see the active public catalog (never a private plan). */
create policy "Visitors can read active plans"
  on public.billing_plans for select to anon
  using (active and not private);

/**
 * billing_plans, signed in: the active public catalog, the active private plans assigned to one
 * of the user's organizations, plus any plan one of them is (or will be) on. The subqueries run
 * under plan_assignments' and subscriptions' own policies.
 */
create policy "Signed-in users can read active plans and their organizations' plans"
  on public.billing_plans for select to authenticated
  using (
    (active and not private)
    or (active and id in (select a.plan_id from public.plan_assignments a where a.ended_at is null))
    or id in (select s.plan_id from public.subscriptions s)
    or id in (select s.pending_plan_id from public.subscriptions s where s.pending_plan_id is not null)
  );

/** plan_prices: whoever may read the plan (the subquery runs under billing_plans' own policies). */
create policy "Plan prices are readable with their plan"
  on public.plan_prices for select to anon, authenticated
  using (plan_id in (select p.id from public.billing_plans p));

/** plan_assignments: members read their organization's. */
create policy "Members can read their organization's plan assignments"
  on public.plan_assignments for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** price_overrides: members read their organization's (the price, its validity, the contract). */
create policy "Members can read their organization's price overrides"
  on public.price_overrides for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** credit_packs: visitors (anon) see the packs on sale. */
create policy "Visitors can read active credit packs"
  on public.credit_packs for select to anon
  using (active);

-- credit_packs, signed in: the policy is declared with orders (05_orders_and_tax), which it reads.

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
  v_now timestamptz := billing.now();
begin
  -- One query: the membership check is a one-time filter evaluated before anything is read (it
  -- raises for a non-member), then the rules (billing.effective_plan_rows) inlined.
  return (
    select pg_catalog.jsonb_build_object(
      'organization_id', e.organization_id,
      'plan_code', e.plan_code,
      'tier', coalesce(e.tier, 'free'),
      'status', coalesce(e.subscription_status::text, 'free'),
      'reason', e.reason,
      'in_grace', e.in_grace,
      'current_period_end', e.current_period_end,
      'grace_ends_at', e.grace_ends_at,
      'features', coalesce(e.features, '{}'::jsonb),
      'credits', billing.available_credits(p_organization_id))
    from billing.effective_plan_rows(p_organization_id, v_now) e
    where billing.require_role(p_organization_id, enum_range(null::public.member_role)) is not null);
end;
$$;
revoke execute on function public.get_entitlements(uuid) from public;
grant execute on function public.get_entitlements(uuid) to authenticated, service_role;
comment on function public.get_entitlements(uuid) is 'What an organization may use now: plan, tier, status, reason, grace, features and the credits it can spend. Members and service_role.';

/** The tier code in effect now (free|basic|pro|enterprise). Members and service_role. */
create function public.effective_tier(p_organization_id uuid)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
begin
  -- As get_entitlements: the membership check first (a one-time filter), then the rules inlined.
  return (select coalesce(e.tier, 'free') from billing.effective_plan_rows(p_organization_id, v_now) e
          where billing.require_role(p_organization_id, enum_range(null::public.member_role)) is not null);
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
cross join lateral billing.effective_plan_rows(o.id, billing.now()) e;

grant select on public.organization_entitlements to authenticated, service_role;

comment on view public.organization_entitlements is 'The entitlements of every organization the caller is a member of.';

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
