-- =================================================================================================
-- supabill: subscription history written by the database (an upgrade): every change of a
-- subscription is in subscription_history, whatever made it
--
-- A statement-level trigger on public.subscriptions (AFTER INSERT and AFTER UPDATE, with
-- transition tables) writes one subscription_history row per subscription the statement
-- created or changed, in one insert per statement. What the row says comes from the change
-- context, a transaction-local setting (billing.change_context) that our functions set just
-- before they write, through billing.set_change_context(action, actor_kind, actor_id, reason,
-- metadata, effective_at, when_due). The trigger takes the context and clears it, so it labels
-- exactly one statement that writes rows: it never leaks into a later write of the same
-- transaction. The context also records the client command that set it (statement_timestamp):
-- a context left over from an earlier command (its write rolled back to a savepoint, or a
-- statement that wrote no row) labels nothing and is dropped.
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
-- (updated_at, created_at, period_anchor): plan, status, period, trial end, the cancel flag and
-- times, the pending plan, the provider and its subscription id. An UPDATE that changes none
-- of them writes nothing.
--
-- The row's columns keep their meanings: old and new plan and status are the row before and
-- after the change, except that a 'downgrade_scheduled' row's new_plan_id is the plan asked for
-- (pending_plan_id), as billing.subscription_states reads it; effective_at is billing.now(), or
-- the context's effective_at, or (when_due, for the jobs) the time each row's change fell due
-- (an end at ended_at, past_due at the period end, a due downgrade at the later of its date and
-- the period end); created_at is the wall clock of the write
-- (clock_timestamp), so two changes of one transaction at the same effective_at keep their order.
--
-- One writer per change: the functions that change a subscription no longer write history
-- themselves (billing.log_subscription_change and billing.log_subscription_changes are
-- dropped). An intent that changes no subscription row (an upgrade ordered: an order is created,
-- the subscription is untouched until it is paid) is written by billing.log_subscription_intent,
-- which accepts only the intent actions (billing.subscription_intent_actions) and changes no
-- subscription; billing.set_change_context refuses those actions. So the trigger and the intent
-- writer never write for the same change.
--
-- Sections, in order: 1. types; 2. tables; 3. private functions (the context, the trigger, the
-- functions that now set the context); 4. policies; 5. public functions; 6. jobs (the
-- billing-expire steps, set-based: one context per statement).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None (billing.subscription_change, the argument of the dropped writer, is dropped in section 3).

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- subscription_history: 'sql' is an actor (a write with no change context).
alter table public.subscription_history drop constraint subscription_history_actor_kind_check;
alter table public.subscription_history add constraint subscription_history_actor_kind_check
  check (actor_kind in ('user', 'system', 'provider', 'operator', 'sql'));
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

-- -------------------------------------------------------------------------------------------------
-- The change context
-- -------------------------------------------------------------------------------------------------

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
  if p_actor_kind is null or p_actor_kind not in ('user', 'system', 'provider', 'operator', 'sql') then
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

-- -------------------------------------------------------------------------------------------------
-- What changed
-- -------------------------------------------------------------------------------------------------

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

-- -------------------------------------------------------------------------------------------------
-- The trigger: subscription_history from every write of subscriptions
-- -------------------------------------------------------------------------------------------------

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
           coalesce(v_context ->> 'actor_kind', 'sql'), (v_context ->> 'actor_id')::uuid, v_reason,
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
           coalesce(v_context ->> 'actor_kind', 'sql'), (v_context ->> 'actor_id')::uuid, v_reason,
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

create trigger subscriptions_history_insert
  after insert on public.subscriptions
  referencing new table as new_rows
  for each statement execute function billing.record_subscription_history();

create trigger subscriptions_history_update
  after update on public.subscriptions
  referencing old table as old_rows new table as new_rows
  for each statement execute function billing.record_subscription_history();

-- -------------------------------------------------------------------------------------------------
-- The intent writer
-- -------------------------------------------------------------------------------------------------

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
     p_actor_kind, p_actor_id, p_reason, coalesce(p_metadata, '{}'::jsonb), billing.now(), pg_catalog.clock_timestamp());
end;
$$;
revoke execute on function billing.log_subscription_intent(uuid, text, uuid, text, uuid, text, jsonb) from public;
grant execute on function billing.log_subscription_intent(uuid, text, uuid, text, uuid, text, jsonb) to service_role;

-- -------------------------------------------------------------------------------------------------
-- The functions that change subscriptions: the change context, right before the write
-- -------------------------------------------------------------------------------------------------

/**
 * Moves our subscription row to what the provider's latest status means (see
 * subscription_status_for), writing subscription_history. p_status_at is the provider's time of
 * that status. No-op when nothing changes; when the subscription has ended (canceled, expired)
 * and the provider status is not newer than its end (a late event must not undo a cancellation
 * made here); or when the change would make a second live subscription for the organization
 * (then returns false).
 */
create or replace function billing.sync_provider_status(
  p_subscription_id uuid,
  p_provider_status text,
  p_status_at timestamptz,
  p_event jsonb
)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_target public.subscription_status;
begin
  select * into v_sub from public.subscriptions s where s.id = p_subscription_id for update;
  v_target := billing.subscription_status_for(p_provider_status, v_sub.current_period_end, v_now);
  if v_target is null then
    return true;
  end if;
  if p_provider_status = 'completed' and v_target = 'active' then
    -- No more charges will come: the paid period runs out, then the subscription ends.
    if v_sub.status = 'active' and v_sub.cancel_at_period_end then
      return true;
    end if;
  elsif v_target = v_sub.status then
    return true;
  end if;
  if v_target in ('trialing', 'active', 'past_due') and v_sub.status in ('canceled', 'expired')
     and p_status_at <= coalesce(v_sub.ended_at, v_sub.canceled_at, '-infinity'::timestamptz) then
    -- The provider said so before the subscription ended here: the end stands.
    return true;
  end if;
  if v_target in ('trialing', 'active', 'past_due') and v_sub.status not in ('pending_payment', 'trialing', 'active', 'past_due')
     and exists (select 1 from public.subscriptions s
                 where s.organization_id = v_sub.organization_id and s.id <> v_sub.id
                   and s.status in ('pending_payment', 'trialing', 'active', 'past_due')) then
    return false;
  end if;
  if v_target in ('active', 'past_due') and v_sub.current_period_end is null then
    -- Nothing paid yet: the first charge will set the period.
    return true;
  end if;

  perform billing.set_change_context(
    case p_provider_status when 'completed' then 'completed' when 'paused' then 'paused'
      else case v_target when 'active' then 'reactivated' when 'past_due' then 'past_due'
                         when 'canceled' then 'canceled' else 'expired' end end,
    'provider',
    p_reason => pg_catalog.format('%s %s', p_event ->> 'provider', p_event ->> 'event_type'),
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'provider_status', p_provider_status,
                                                'provider_subscription_id', v_sub.provider_subscription_id),
    p_effective_at => v_now);
  update public.subscriptions s
  set status = v_target,
      cancel_at_period_end = case when p_provider_status = 'completed' then true
                                  when v_target = 'active' then false else s.cancel_at_period_end end,
      canceled_at = case when v_target = 'canceled' then coalesce(s.canceled_at, v_now)
                         when v_target = 'active' then null else s.canceled_at end,
      ended_at = case when v_target in ('canceled', 'expired') then coalesce(s.ended_at, v_now)
                      when v_target in ('active', 'past_due') then null else s.ended_at end
  where s.id = v_sub.id;
  return true;
end;
$$;

/**
 * Cancels the organization's subscription: at the period end (default; the plan stays in effect
 * until then and resume_subscription can undo it), or now (p_at_period_end = false; the free plan
 * applies at once, no refund). A subscription whose period is already over is cancelled now.
 * A scheduled downgrade and open upgrade orders are dropped. Owners and admins.
 * Returns {subscription_id, status, cancel_at_period_end, effective_at, result, provider_action}
 * (provider_action: what to do at Razorpay for a recurring subscription).
 * Errors: 42501 not an owner or admin; 55000 nothing to cancel.
 * Security definer: signed-in users have no write grant on subscriptions or their history.
 */
create or replace function billing.cancel_subscription(p_organization_id uuid, p_at_period_end boolean default true)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_new public.subscriptions;
  v_at_end boolean := coalesce(p_at_period_end, true);
begin
  perform billing.require_role(p_organization_id, billing.managers());
  -- The open upgrade orders first, then the subscription: the payment path's lock order.
  perform billing.lock_open_upgrade_orders(p_organization_id);
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  if v_sub.id is null then
    raise exception 'the organization has no subscription to cancel' using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_sub.current_period_end is null or v_sub.current_period_end <= v_now then
    v_at_end := false;
  end if;

  if v_at_end and v_sub.cancel_at_period_end then
    return pg_catalog.jsonb_build_object(
      'result', 'already_scheduled', 'subscription_id', v_sub.id, 'status', v_sub.status,
      'cancel_at_period_end', true, 'effective_at', v_sub.current_period_end,
      'provider_action', billing.provider_action(v_sub, true));
  end if;

  perform billing.cancel_open_upgrade_orders(p_organization_id, 'subscription cancelled');

  if v_at_end then
    perform billing.set_change_context('cancel_scheduled', 'user', v_user_id,
      p_reason => 'cancellation requested for the period end',
      p_metadata => pg_catalog.jsonb_build_object('cancel_at', v_sub.current_period_end,
                                                  'dropped_pending_plan_id', v_sub.pending_plan_id),
      p_effective_at => v_now);
    update public.subscriptions s
    set cancel_at_period_end = true, canceled_at = v_now, pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id
    returning * into v_new;
  else
    perform billing.set_change_context('canceled', 'user', v_user_id,
      p_reason => 'cancelled now by the user (no refund)',
      p_metadata => pg_catalog.jsonb_build_object('dropped_pending_plan_id', v_sub.pending_plan_id),
      p_effective_at => v_now);
    update public.subscriptions s
    set status = 'canceled', cancel_at_period_end = false, canceled_at = v_now, ended_at = v_now,
        pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id
    returning * into v_new;
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    values (v_sub.organization_id, v_sub.id, 'subscription_canceled',
            pg_catalog.jsonb_build_object('plan_id', v_sub.plan_id, 'ended_at', v_now),
            pg_catalog.format('subscription_canceled:%s', v_sub.id))
    on conflict (dedupe_key) do nothing;
  end if;

  return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'result', case when v_at_end then 'scheduled' else 'canceled' end,
    'subscription_id', v_new.id, 'status', v_new.status, 'cancel_at_period_end', v_new.cancel_at_period_end,
    'effective_at', case when v_at_end then v_sub.current_period_end else v_now end,
    'provider_action', billing.provider_action(v_sub, v_at_end)));
end;
$$;

/**
 * Undoes a cancellation scheduled for the period end, while the period still runs. Owners and
 * admins. Returns {result: 'resumed', subscription_id, status, current_period_end}.
 * Errors: 42501; 55000 no scheduled cancellation, the period already over, or a Razorpay
 * recurring subscription (its cancellation at Razorpay cannot be undone here: subscribe again).
 * Security definer: signed-in users have no write grant on subscriptions or their history.
 */
create or replace function billing.resume_subscription(p_organization_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
begin
  perform billing.require_role(p_organization_id, billing.managers());
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  if v_sub.id is null or not v_sub.cancel_at_period_end then
    raise exception 'the organization has no cancellation scheduled to undo' using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_sub.current_period_end <= v_now then
    raise exception 'the period ended on %: the cancellation has taken effect; buy a plan through checkout', v_sub.current_period_end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_sub.provider = 'razorpay' and v_sub.provider_subscription_id is not null then
    raise exception 'Razorpay subscription % is set to cancel at cycle end at Razorpay: subscribe again through checkout', v_sub.provider_subscription_id
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  perform billing.set_change_context('resumed', 'user', v_user_id, p_reason => 'scheduled cancellation undone',
    p_effective_at => v_now);
  update public.subscriptions s set cancel_at_period_end = false, canceled_at = null where s.id = v_sub.id;

  return pg_catalog.jsonb_build_object('result', 'resumed', 'subscription_id', v_sub.id, 'status', v_sub.status,
                                       'current_period_end', v_sub.current_period_end);
end;
$$;

/**
 * Changes the organization's plan (owners and admins), exactly as preview_plan_change says:
 *   upgrade, method 'prorated_order': an order (kind 'upgrade', the new plan, amount_cents) is
 *     created; pay it through checkout with {order_id} (prepare_order_checkout). When paid,
 *     apply_payment_event switches the plan and starts a new period. Earlier open upgrade orders
 *     are cancelled. Answer: the quote + {result: 'order_created', order_id, receipt,
 * order_amount_cents
 *     (what the order charges: the quote's amount plus tax, set by the orders_quote_tax trigger),
 * order_expires_at};
 *   upgrade, method 'immediate' (charge 0): switched now, new period from now ({result: 'changed'});
 *   downgrade, method 'scheduled': pending_plan_id set for the period end ({result: 'scheduled'});
 *   Razorpay recurring, method 'cancel_and_resubscribe': the subscription is set to cancel at the
 *     period end ({result: 'cancel_scheduled', provider_action, checkout: {plan_code, provider}}).
 * Errors: 42501; P0002 unknown plan; 22023 free plan, same plan, other currency, already
 * scheduled; 55000 no paid subscription running, a cancellation scheduled (resume first).
 * Security definer: signed-in users have no write grant on subscriptions, history or orders.
 */
create or replace function billing.change_plan(p_organization_id uuid, p_plan_code text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_quote jsonb;
  v_sub public.subscriptions;
  v_to public.billing_plans;
  v_order public.orders;
  v_method text;
begin
  perform billing.require_role(p_organization_id, billing.managers());
  -- The open upgrade orders first, then the live subscription (the payment path's lock order:
  -- it holds an order and then locks the subscription); then quote against what is locked.
  perform billing.lock_open_upgrade_orders(p_organization_id);
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  v_quote := billing.plan_change_quote(p_organization_id, p_plan_code, v_now);
  v_method := v_quote ->> 'method';
  select * into v_to from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_sub.cancel_at_period_end and v_method <> 'cancel_and_resubscribe' then
    raise exception 'a cancellation is scheduled for %: resume the subscription before changing plan', v_sub.current_period_end
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  if v_method = 'prorated_order' then
    perform billing.cancel_open_upgrade_orders(p_organization_id, 'superseded by a new plan change');
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, kind, amount_cents, currency, status, created_by,
       expires_at, metadata)
    values
      (p_organization_id, v_to.id, v_sub.id,
       case when v_sub.provider in ('payu', 'razorpay') then v_sub.provider else 'payu' end,
       'upgrade', (v_quote ->> 'amount_cents')::bigint, v_to.currency, 'created', v_user_id,
       least(v_now + interval '1 day', v_sub.current_period_end),
       pg_catalog.jsonb_build_object('plan_code', v_to.code, 'recurring', false, 'quote', v_quote,
                                     'from_plan_id', v_sub.plan_id, 'quoted_period_end', v_sub.current_period_end))
    returning * into v_order;
    -- An intent: the subscription is untouched until the order is paid.
    perform billing.log_subscription_intent(v_sub.id, 'upgrade_ordered', v_to.id, 'user', v_user_id,
      p_reason => pg_catalog.format('upgrade to %s ordered: %s to pay', v_to.code,
                                    billing.format_money(v_order.amount_cents, v_order.currency)),
      p_metadata => pg_catalog.jsonb_build_object('order_id', v_order.id, 'amount_cents', v_order.amount_cents));
    return v_quote || pg_catalog.jsonb_build_object('result', 'order_created', 'order_id', v_order.id,
                                                    'receipt', v_order.receipt, 'order_amount_cents', v_order.amount_cents,
                                                    'order_expires_at', v_order.expires_at);

  elsif v_method = 'immediate' then
    perform billing.cancel_open_upgrade_orders(p_organization_id, 'superseded by a new plan change');
    perform billing.set_change_context('plan_changed', 'user', v_user_id,
      p_reason => 'upgrade with nothing to pay: the unused value covers the new plan', p_metadata => v_quote,
      p_effective_at => v_now);
    update public.subscriptions s
    set plan_id = v_to.id, current_period_start = v_now,
        current_period_end = (v_quote ->> 'new_period_end')::timestamptz,
        pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id;
    return v_quote || pg_catalog.jsonb_build_object('result', 'changed');

  elsif v_method = 'scheduled' then
    perform billing.set_change_context('downgrade_scheduled', 'user', v_user_id,
      p_reason => pg_catalog.format('downgrade to %s at the period end (no refund)', v_to.code),
      p_metadata => pg_catalog.jsonb_build_object('effective_at', v_sub.current_period_end,
                                                  'replaced_pending_plan_id', v_sub.pending_plan_id),
      p_effective_at => v_now);
    update public.subscriptions s
    set pending_plan_id = v_to.id, pending_plan_effective_at = s.current_period_end
    where s.id = v_sub.id;
    return v_quote || pg_catalog.jsonb_build_object('result', 'scheduled');

  else
    -- cancel_and_resubscribe (Razorpay recurring). Already cancelling: nothing changes, nothing is recorded.
    perform billing.set_change_context('cancel_scheduled', 'user', v_user_id,
      p_reason => pg_catalog.format('plan change to %s: Razorpay subscription cancels at cycle end, new subscription to follow',
                                    v_to.code),
      p_metadata => pg_catalog.jsonb_build_object('to_plan_id', v_to.id, 'method', 'cancel_and_resubscribe'),
      p_effective_at => v_now);
    update public.subscriptions s
    set cancel_at_period_end = true, canceled_at = v_now, pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id and not s.cancel_at_period_end;
    return v_quote || pg_catalog.jsonb_build_object(
      'result', 'cancel_scheduled',
      'provider_action', billing.provider_action(v_sub, true),
      'checkout', pg_catalog.jsonb_build_object('plan_code', v_to.code, 'provider', 'razorpay'));
  end if;
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

  perform billing.set_change_context('trial_started', 'user', v_user_id,
    p_reason => pg_catalog.format('%s-day trial of %s', v_plan.trial_days, v_plan.code),
    p_metadata => pg_catalog.jsonb_build_object('trial_end', v_trial_end), p_effective_at => v_now);
  insert into public.subscriptions
    (organization_id, plan_id, status, current_period_start, current_period_end, trial_end)
  values
    (p_organization_id, v_plan.id, 'trialing', v_now, v_trial_end, v_trial_end)
  returning * into v_sub;

  return pg_catalog.jsonb_build_object('subscription_id', v_sub.id, 'status', v_sub.status,
                                       'plan_code', v_plan.code, 'trial_end', v_sub.trial_end);
end;
$$;

/**
 * Starts or extends the subscription a captured payment of p_order pays for (locked here):
 *   none yet: a new active subscription, one period from now ('activated');
 *   on another plan: the paid plan takes effect now, for one full period ('plan_changed');
 *   on the same plan: extended from the period end while it runs or is in grace, else from now
 *   ('renewed', or 'activated' for a subscription that never had a period).
 * Periods are added on the organization's calendar from the run's anchor
 * (subscriptions.period_anchor), so the day of the month never drifts. The history row is the
 * trigger's, from the change context set here (actor 'provider').
 */
create or replace function billing.extend_subscription_for_payment(
  p_order public.orders,
  p_provider_subscription_id text,
  p_event jsonb,
  p_payment_event_id uuid
)
returns public.subscriptions
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_psid text := p_provider_subscription_id;
  v_interval public.billing_interval;
  v_timezone text;
  v_sub public.subscriptions;
  v_old public.subscriptions;
  v_start timestamptz := v_now;
  v_end timestamptz;
  v_anchor timestamptz;
  v_action text;
begin
  select p.interval into v_interval from public.billing_plans p where p.id = p_order.plan_id;
  select o.timezone into v_timezone from public.organizations o where o.id = p_order.organization_id;
  if v_psid is not null then
    select * into v_old from public.subscriptions s
    where s.provider = p_order.provider and s.provider_subscription_id = v_psid
    for update;
  end if;
  if v_old.id is null then
    select * into v_old from public.subscriptions s
    where s.organization_id = p_order.organization_id
      and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
    for update;
  end if;

  if v_old.id is null then
    v_action := 'activated';
    v_anchor := v_start;
  else
    if v_old.plan_id <> p_order.plan_id then
      v_action := 'plan_changed';
    else
      if v_old.current_period_end is not null and v_old.current_period_end + billing.grace_interval() >= v_now then
        v_start := v_old.current_period_end;
      end if;
      v_action := case when v_old.status = 'pending_payment' or v_old.current_period_end is null then 'activated'
                       else 'renewed' end;
    end if;
    -- Extending from the period end continues the run of periods (its anchor); anything else
    -- starts a new run at v_start.
    v_anchor := case when v_start = v_old.current_period_end then coalesce(v_old.period_anchor, v_start) else v_start end;
  end if;
  v_end := billing.period_end_after(v_start, v_interval, v_timezone, v_anchor);

  perform billing.set_change_context(v_action, 'provider',
    p_reason => pg_catalog.format('%s payment %s captured (%s)', p_order.provider, p_event ->> 'provider_payment_id',
                                  p_event ->> 'event_type'),
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'order_id', p_order.id,
                                                'payment_event_id', p_payment_event_id,
                                                'provider_payment_id', p_event ->> 'provider_payment_id',
                                                'period_start', v_start, 'period_end', v_end),
    p_effective_at => v_now);
  if v_old.id is null then
    insert into public.subscriptions
      (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id,
       period_anchor)
    values
      (p_order.organization_id, p_order.plan_id, 'active', v_start, v_end, p_order.provider, v_psid, v_anchor)
    returning * into v_sub;
  else
    update public.subscriptions s
    set plan_id = p_order.plan_id,
        status = case when s.status in ('pending_payment', 'trialing', 'active', 'past_due') then 'active' else s.status end,
        current_period_start = case when v_action = 'plan_changed' or s.current_period_end is null
                                         or s.current_period_end <= v_now
                                    then v_start else s.current_period_start end,
        current_period_end = v_end,
        period_anchor = v_anchor,
        pending_plan_id = case when v_action = 'plan_changed' then null else s.pending_plan_id end,
        pending_plan_effective_at = case when v_action = 'plan_changed' then null else s.pending_plan_effective_at end,
        cancel_at_period_end = false,
        canceled_at = case when v_action = 'plan_changed' then null
                           when s.status in ('canceled', 'expired') then s.canceled_at end,
        ended_at = case when v_action = 'plan_changed' then null else s.ended_at end,
        provider = case when v_psid is not null or s.provider_subscription_id is null then p_order.provider else s.provider end,
        provider_subscription_id = coalesce(v_psid, s.provider_subscription_id)
    where s.id = v_old.id
    returning * into v_sub;
  end if;
  return v_sub;
end;
$$;

/**
 * Ends the paid period that p_captured (a captured payment) paid for, when it is the latest
 * payment applied to a live subscription: the subscription is canceled now (the free plan
 * applies), with a subscription_history row (the trigger's: actor 'provider', p_action, p_reason) and a
 * notification of kind p_notification, once per payment. Returns the subscription ended, or null
 * when there was nothing to end (an older payment, a subscription already over).
 */
create or replace function billing.end_paid_period(
  p_captured public.payment_events,
  p_action text,
  p_reason text,
  p_notification text,
  p_event jsonb
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_latest uuid;
begin
  select s.* into v_sub from public.subscriptions s
  join public.orders o on o.subscription_id = s.id
  where o.id = p_captured.order_id and s.status in ('trialing', 'active', 'past_due')
  for update of s;
  if v_sub.id is null then
    return null;
  end if;
  select pe.id into v_latest from public.payment_events pe
  join public.orders o on o.id = pe.order_id
  where o.subscription_id = v_sub.id and pe.status = 'captured' and not pe.needs_refund
  order by pe.occurred_at desc, pe.created_at desc
  limit 1;
  if v_latest is distinct from p_captured.id then
    return null;
  end if;

  perform billing.set_change_context(p_action, 'provider',
    p_reason => p_reason,
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                                'payment_event_id', p_captured.id),
    p_effective_at => v_now);
  update public.subscriptions s
  set status = 'canceled', cancel_at_period_end = false, canceled_at = coalesce(s.canceled_at, v_now), ended_at = v_now,
      pending_plan_id = null, pending_plan_effective_at = null
  where s.id = v_sub.id;
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  values (v_sub.organization_id, v_sub.id, p_notification,
          pg_catalog.jsonb_build_object('plan_id', v_sub.plan_id, 'ended_at', v_now, 'reason', p_reason,
                                        'provider_payment_id', p_captured.provider_payment_id),
          pg_catalog.format('%s:%s:%s', p_notification, v_sub.id, p_captured.id))
  on conflict (dedupe_key) do nothing;
  return v_sub.id;
end;
$$;

/**
 * A dispute (chargeback) of a captured payment: each step is recorded once in payment_events
 * (dispute_opened, dispute_won, dispute_lost, with the dispute id) and, when
 * billing_settings.dispute_suspends_subscription, moves the subscription the payment paid for:
 * an active one goes past_due while the dispute is open ('dispute_opened'), back to active when
 * it is won while its period runs ('dispute_won'), and a lost dispute of the payment that paid
 * the current period ends it like a full refund ('dispute_lost'). Owners get a notification when
 * a dispute opens. Returns the result object.
 */
create or replace function billing.apply_dispute(p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_kind text := p_event ->> 'kind';
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_captured public.payment_events;
  v_order public.orders;
  v_sub public.subscriptions;
  v_payment_event_id uuid;
  v_error text;
begin
  select * into v_captured from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'captured'
  order by pe.created_at
  limit 1;
  if v_captured.id is null then
    v_error := pg_catalog.format('unknown payment %s for dispute %s', coalesce(v_payment_id, '(none)'),
                                 coalesce(p_event ->> 'provider_dispute_id', '(none)'));
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error, 'last_error', v_error);
  end if;
  select * into v_order from public.orders o where o.id = v_captured.order_id for update;
  v_payment_event_id := billing.record_payment_event(
    v_captured.organization_id, v_captured.order_id, v_provider, v_payment_id,
    coalesce((p_event ->> 'amount_paise')::bigint, v_captured.amount_cents), coalesce(p_event ->> 'currency', v_captured.currency),
    v_kind::public.payment_status, null, p_event ->> 'status',
    pg_catalog.jsonb_build_object('dispute_id', p_event ->> 'provider_dispute_id', 'event_id', p_event ->> 'event_id',
                                  'event_type', p_event ->> 'event_type', 'captured_payment_event_id', v_captured.id),
    p_event_at);
  if v_payment_event_id is null then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'dispute step already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;

  if coalesce((select s.dispute_suspends_subscription from public.billing_settings s where s.id), true) then
    select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id for update;
    if v_kind = 'dispute_lost' then
      perform billing.end_paid_period(v_captured, 'dispute_lost',
        pg_catalog.format('dispute %s of payment %s lost', p_event ->> 'provider_dispute_id', v_payment_id),
        'subscription_disputed', p_event);
    elsif v_sub.id is not null and ((v_kind = 'dispute_opened' and v_sub.status = 'active')
          or (v_kind = 'dispute_won' and v_sub.status = 'past_due' and v_sub.current_period_end > v_now)) then
      perform billing.set_change_context(v_kind, 'provider',
        p_reason => pg_catalog.format('dispute %s of payment %s: %s', p_event ->> 'provider_dispute_id', v_payment_id,
                                      p_event ->> 'event_type'),
        p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'payment_event_id', v_payment_event_id),
        p_effective_at => v_now);
      update public.subscriptions s
      set status = case when v_kind = 'dispute_opened' then 'past_due' else 'active' end::public.subscription_status
      where s.id = v_sub.id;
    end if;
  end if;
  if v_kind = 'dispute_opened' then
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    values (v_captured.organization_id, v_order.subscription_id, 'payment_disputed',
            pg_catalog.jsonb_build_object('provider_payment_id', v_payment_id, 'dispute_id', p_event ->> 'provider_dispute_id',
                                          'amount_cents', coalesce((p_event ->> 'amount_paise')::bigint, v_captured.amount_cents),
                                          'currency', v_captured.currency),
            pg_catalog.format('payment_disputed:%s:%s', v_provider, v_payment_id))
    on conflict (dedupe_key) do nothing;
  end if;
  select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id;
  return pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id,
                                       'order_id', v_order.id, 'order_status', v_order.status,
                                       'subscription_id', v_sub.id, 'subscription_status', v_sub.status,
                                       'current_period_end', v_sub.current_period_end);
end;
$$;

/**
 * Extends the organization's live subscription by p_interval (a goodwill extension; positive, at
 * most a year), with history (actor 'operator'). The run of periods starts again at the new end
 * (period_anchor), so the next paid period is a full interval from it. Returns the new period end.
 */
create or replace function billing.operator_extend_period(p_organization_id uuid, p_interval interval, p_reason text)
returns timestamptz
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_sub public.subscriptions;
  v_end timestamptz;
begin
  if p_interval is null or p_interval <= interval '0' or p_interval > interval '1 year' then
    raise exception 'an extension must be positive and at most a year, got %', p_interval using errcode = 'invalid_parameter_value';
  end if;
  v_sub := billing.live_subscription_for_operator(p_organization_id);
  perform billing.set_change_context('period_extended', 'operator',
    p_reason => v_reason,
    p_metadata => pg_catalog.jsonb_build_object('extended_by', p_interval::text, 'old_period_end', v_sub.current_period_end,
                                                'new_period_end', v_sub.current_period_end + p_interval));
  update public.subscriptions s set current_period_end = s.current_period_end + p_interval,
         period_anchor = s.current_period_end + p_interval,
         status = case when s.status = 'past_due' and s.current_period_end + p_interval > billing.now() then 'active'
                       else s.status end
  where s.id = v_sub.id
  returning s.current_period_end into v_end;
  return v_end;
end;
$$;

/**
 * Grants an organization a paid plan until p_until (a comp), without a payment: its live
 * subscription is switched to the plan for a period ending then, or a new one starts (provider
 * 'manual'). With history (actor 'operator'). Returns the subscription id.
 */
create or replace function billing.operator_grant_plan(p_organization_id uuid, p_plan_code text, p_until timestamptz, p_reason text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_sub public.subscriptions;
  v_new public.subscriptions;
begin
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  if v_plan.tier = 'free' then
    raise exception 'plan "%" is the free plan: there is nothing to grant', v_plan.code using errcode = 'invalid_parameter_value';
  end if;
  if p_until is null or p_until <= v_now or p_until > v_now + interval '5 years' then
    raise exception 'a grant ends after now and within five years, got %', p_until using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from public.organizations o where o.id = p_organization_id for no key update) then
    raise exception 'organization % does not exist', p_organization_id using errcode = 'no_data_found';
  end if;
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  perform billing.set_change_context('plan_granted', 'operator',
    p_reason => v_reason, p_metadata => pg_catalog.jsonb_build_object('until', p_until, 'plan_code', v_plan.code));
  if v_sub.id is null then
    insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider,
                                      period_anchor)
    values (p_organization_id, v_plan.id, 'active', v_now, p_until, 'manual', v_now)
    returning * into v_new;
  else
    update public.subscriptions s
    set plan_id = v_plan.id, status = 'active', current_period_start = v_now, current_period_end = p_until,
        period_anchor = v_now, pending_plan_id = null, pending_plan_effective_at = null, cancel_at_period_end = false,
        canceled_at = null
    where s.id = v_sub.id
    returning * into v_new;
  end if;
  return v_new.id;
end;
$$;

/**
 * Cancels the organization's live subscription now (p_at_period_end false: the free plan at
 * once) or at its period end, with history (actor 'operator'); a Razorpay recurring subscription
 * is cancelled at Razorpay the same way (billing.provider_action). Returns the subscription's
 * status.
 */
create or replace function billing.operator_cancel(p_organization_id uuid, p_at_period_end boolean, p_reason text)
returns public.subscription_status
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_sub public.subscriptions := billing.live_subscription_for_operator(p_organization_id);
  v_at_end boolean := coalesce(p_at_period_end, true) and v_sub.current_period_end > v_now;
  v_status public.subscription_status := case when v_at_end then v_sub.status else 'canceled' end;
begin
  perform billing.provider_action(v_sub, v_at_end);
  perform billing.set_change_context(case when v_at_end then 'cancel_scheduled' else 'canceled' end, 'operator',
    p_reason => v_reason);
  update public.subscriptions s
  set status = v_status, cancel_at_period_end = v_at_end, canceled_at = v_now,
      ended_at = case when v_at_end then null else v_now end, pending_plan_id = null, pending_plan_effective_at = null
  where s.id = v_sub.id;
  return v_status;
end;
$$;

/**
 * Undoes a cancellation scheduled for the period end, while the period still runs, with history
 * (actor 'operator'). A Razorpay recurring subscription set to cancel at Razorpay is refused
 * (its mandate is being cancelled there: the customer subscribes again).
 */
create or replace function billing.operator_resume(p_organization_id uuid, p_reason text)
returns public.subscription_status
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_sub public.subscriptions := billing.live_subscription_for_operator(p_organization_id);
begin
  if not v_sub.cancel_at_period_end or v_sub.current_period_end <= billing.now() then
    raise exception 'organization % has no cancellation scheduled to undo', p_organization_id
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_sub.provider = 'razorpay' and v_sub.provider_subscription_id is not null then
    raise exception 'Razorpay subscription % is being cancelled at Razorpay: the customer subscribes again through checkout',
      v_sub.provider_subscription_id using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform billing.set_change_context('resumed', 'operator', p_reason => v_reason);
  update public.subscriptions s set cancel_at_period_end = false, canceled_at = null where s.id = v_sub.id;
  return v_sub.status;
end;
$$;

-- -------------------------------------------------------------------------------------------------
-- The old writer, replaced by the trigger and the intent writer
-- -------------------------------------------------------------------------------------------------

drop function billing.log_subscription_change(uuid, uuid, text, uuid, uuid, public.subscription_status,
  public.subscription_status, text, uuid, text, jsonb, timestamptz);
drop function billing.log_subscription_changes(billing.subscription_change[]);
drop type billing.subscription_change;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: subscription_history keeps its policy (members read their organization's rows).

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None: the public wrappers call the billing functions above unchanged.

-- =================================================================================================
-- 6. Jobs
-- =================================================================================================

-- The billing-expire steps: each sets one context for its one statement (action, actor 'system',
-- the run in metadata, each row dated when its change fell due); the trigger writes one row per
-- subscription moved, in one insert.

/**
 * billing-expire, step (1): Scheduled cancellations. Returns the subscriptions moved.
 */
create or replace function billing.expire_scheduled_cancellations(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('canceled', 'system', p_reason => 'cancelled at the period end, as requested',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
  select s.id, s.status as old_status from public.subscriptions s
  where s.status in ('trialing', 'active', 'past_due') and s.cancel_at_period_end and s.current_period_end <= v_now
  order by s.current_period_end
  limit p_limit
  for update skip locked
  ), moved as (
  update public.subscriptions s
  set status = 'canceled', ended_at = s.current_period_end, canceled_at = coalesce(s.canceled_at, s.current_period_end),
      pending_plan_id = null, pending_plan_effective_at = null
  where s.id = any (array(select d.id from due d))
  returning s.id, s.organization_id, s.plan_id, s.current_period_end
  ), note as (
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  select m.organization_id, m.id, 'subscription_canceled',
         pg_catalog.jsonb_build_object('plan_id', m.plan_id, 'ended_at', m.current_period_end),
         'subscription_canceled:' || m.id
  from moved m
  on conflict (dedupe_key) do nothing
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;

/**
 * billing-expire, step (2): Downgrades due: the pending plan replaces the current one (the period
 * is not extended: renewing it is a payment for the new plan). Due once the period it was
 * scheduled against has ended: pending_plan_effective_at <= now and current_period_end <= now (a
 * renewal of the current plan paid meanwhile moves it to the end of the renewed period; the same
 * rule billing.effective_plan reads). Recorded at the time it was due, the later of the two.
 * Returns the subscriptions moved.
 */
create or replace function billing.apply_due_downgrades(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('downgraded', 'system', p_reason => 'scheduled downgrade applied at the period end',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
    select s.id, s.plan_id as old_plan_id,
           greatest(s.pending_plan_effective_at, s.current_period_end) as due_at
    from public.subscriptions s
    where s.pending_plan_id is not null and s.pending_plan_effective_at <= v_now and s.current_period_end <= v_now
      and s.status in ('active', 'past_due')
    order by s.pending_plan_effective_at
    limit p_limit
    for update skip locked
  ), moved as (
    update public.subscriptions s
    set plan_id = s.pending_plan_id, pending_plan_id = null, pending_plan_effective_at = null
    where s.id = any (array(select d.id from due d))
    returning s.id, s.organization_id, s.plan_id, s.status
  ), note as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select m.organization_id, m.id, 'plan_downgraded',
           pg_catalog.jsonb_build_object('old_plan_id', d.old_plan_id, 'new_plan_id', m.plan_id,
                                         'effective_at', d.due_at),
           pg_catalog.format('plan_downgraded:%s:%s', m.id, extract(epoch from d.due_at)::bigint)
    from moved m join due d on d.id = m.id
    on conflict (dedupe_key) do nothing
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;

/**
 * billing-expire, step (3): Trials that ended unpaid: the free plan applies. Returns the
 * subscriptions moved.
 */
create or replace function billing.end_unpaid_trials(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('trial_ended', 'system', p_reason => 'trial ended unpaid: the free plan applies',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
    select s.id from public.subscriptions s
    where s.status = 'trialing' and s.trial_end <= v_now and not s.cancel_at_period_end
    order by s.trial_end
    limit p_limit
    for update skip locked
  ), moved as (
    update public.subscriptions s set status = 'expired', ended_at = s.trial_end
    where s.id = any (array(select d.id from due d))
    returning s.id, s.organization_id, s.plan_id, s.trial_end
  ), note as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select m.organization_id, m.id, 'trial_ended',
           pg_catalog.jsonb_build_object('plan_id', m.plan_id, 'trial_end', m.trial_end),
           'trial_ended:' || m.id
    from moved m
    on conflict (dedupe_key) do nothing
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;

/**
 * billing-expire, step (4): Periods that ended unpaid: past due (the plan stays through the grace
 * days). Returns the subscriptions moved.
 */
create or replace function billing.mark_past_due(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('past_due', 'system', p_reason => 'period ended unpaid',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
    select s.id from public.subscriptions s
    where s.status = 'active' and s.current_period_end <= v_now and not s.cancel_at_period_end
    order by s.current_period_end
    limit p_limit
    for update skip locked
  ), moved as (
    update public.subscriptions s set status = 'past_due'
    where s.id = any (array(select d.id from due d))
    returning s.id, s.organization_id, s.plan_id, s.current_period_end
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;

/**
 * billing-expire, step (5): Grace over: expired (the free plan applies). Returns the subscriptions
 * moved.
 */
create or replace function billing.expire_after_grace(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_grace interval := billing.grace_interval();
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('expired', 'system', p_reason => 'grace period over, still unpaid: the free plan applies',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
    select s.id from public.subscriptions s
    where s.status = 'past_due' and s.current_period_end <= v_now - v_grace and not s.cancel_at_period_end
      and s.provider_subscription_id is null
    order by s.current_period_end
    limit p_limit
    for update skip locked
  ), moved as (
    update public.subscriptions s set status = 'expired', ended_at = s.current_period_end + v_grace
    where s.id = any (array(select d.id from due d))
    returning s.id, s.organization_id, s.plan_id, s.current_period_end
  ), note as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select m.organization_id, m.id, 'subscription_expired',
           pg_catalog.jsonb_build_object('plan_id', m.plan_id, 'period_end', m.current_period_end,
                                         'ended_at', m.current_period_end + v_grace),
           pg_catalog.format('subscription_expired:%s:%s', m.id, extract(epoch from m.current_period_end)::bigint)
    from moved m
    on conflict (dedupe_key) do nothing
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;
