-- =================================================================================================
-- supabill: provider actions: a transactional outbox of what the payment provider must do, and
-- operators' audited actions
--
-- A decision the payment provider must carry out (cancel a Razorpay subscription now or at the
-- cycle end, pause, resume, change its plan, refund a payment, fetch a payment's confirmed id) is
-- a row of billing.provider_actions written in the same transaction as the decision, with an
-- idempotency key. The provider-sync function (service key) claims due rows
-- (billing.claim_provider_actions, `for update skip locked`, a lease), calls the provider with
-- the key, and records the outcome (billing.complete_provider_action): success, a transient
-- failure retried with exponential backoff and jitter (or the provider's Retry-After) up to
-- max_attempts, or a permanent failure, which owners and admins see
-- (public.get_provider_actions) and which queues a notification. Nothing here calls a provider:
-- SQL never does HTTP inside a transaction.
--
-- Who writes actions:
--   * billing.provider_action (02_plans / 09_lifecycle: cancel_subscription and change_plan call
--     it for a Razorpay recurring subscription) queues the cancellation it describes;
--   * a captured payment recorded with needs_refund (it bought nothing) queues its refund
--     (trigger payment_events_queue_refund, 05_orders_and_tax);
--   * the end of a paid period by a full refund or a lost dispute cancels the Razorpay
--     subscription now, so no further charge comes (trigger subscriptions_queue_provider_cancel,
--     02_plans);
--   * the operators' functions (billing.operator_*; postgres and service_role only, each with a
--     reason, each in subscription_history with actor 'operator').
-- A refund the provider reports failed (billing.apply_refund_failed) and an operator's resolution
-- of a refund whose outcome is unknown (billing.operator_resolve_refund) are here too.
--
-- Sections, in order: 1. types; 2. tables; 3. private functions; 4. policies; 5. public
-- functions; 6. jobs and schedules.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

/** What a provider must do. */
create type billing.provider_action_kind as enum ('cancel', 'pause', 'resume', 'change_plan', 'refund', 'fetch_payment');

/** Where a provider action stands: pending (due at next_attempt_at), running (claimed), succeeded, failed. */
create type billing.provider_action_state as enum ('pending', 'running', 'succeeded', 'failed');

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

/**
 * The outbox of calls a provider must receive. target: the provider's ids the call is about
 * (provider_subscription_id, provider_payment_id, provider_order_id, order_ref); payload: what the
 * kind needs (cancel: at_cycle_end; change_plan: razorpay_plan_id, at_cycle_end; refund:
 * amount_paise, currency, refund_id (our reference: PayU's token, Razorpay's receipt), reason).
 * idempotency_key is unique: the same decision taken twice queues one action. result is what
 * the provider answered; last_error why it has not succeeded. Private (schema billing):
 * service_role reads and writes it; owners and admins read theirs through
 * public.get_provider_actions.
 */
create table billing.provider_actions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  subscription_id uuid references public.subscriptions (id) on delete set null,
  -- No foreign key (like invoices.payment_event_id): payment_events stays truncate-proof by its own
  -- trigger, and a foreign key would answer a TRUNCATE first.
  payment_event_id uuid,
  provider public.payment_provider not null,
  kind billing.provider_action_kind not null,
  target jsonb not null default '{}'::jsonb check (jsonb_typeof(target) = 'object'),
  payload jsonb not null default '{}'::jsonb check (jsonb_typeof(payload) = 'object'),
  idempotency_key text not null unique check (length(idempotency_key) between 1 and 200),
  state billing.provider_action_state not null default 'pending',
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null default 8 check (max_attempts between 1 and 50),
  next_attempt_at timestamptz not null default billing.now(),
  locked_until timestamptz,
  last_error text,
  result jsonb,
  requested_by public.actor_kind not null default 'system' check (requested_by <> 'sql'),
  reason text,
  created_at timestamptz not null default billing.now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,
  -- The order actions were queued in: the tie-break of created_at and next_attempt_at (several
  -- actions of one transaction, or of one test-clock instant), so a subscription's actions reach
  -- the provider in the order they were decided (an upgrade's price switch before the downgrade
  -- scheduled after it), and the latest one is the one the provider holds.
  seq bigint generated always as identity,
  constraint provider_actions_completed_when_done
    check ((state in ('succeeded', 'failed')) = (completed_at is not null))
);

/** Due actions for the worker; an organization's actions; the subscription and payment ids. */
create index provider_actions_due_idx on billing.provider_actions (next_attempt_at) where state in ('pending', 'running');

create index provider_actions_organization_id_idx on billing.provider_actions (organization_id, created_at);

create index provider_actions_subscription_id_idx on billing.provider_actions (subscription_id);

create index provider_actions_payment_event_id_idx on billing.provider_actions (payment_event_id);

revoke all on billing.provider_actions from public;

grant select, insert, update on billing.provider_actions to service_role;

create trigger provider_actions_touch_updated_at
  before update on billing.provider_actions
  for each row execute function billing.touch_updated_at();

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Queues a provider action once per idempotency key (the same decision taken twice is one
 * action); returns its id, the existing one's for a repeat.
 */
create function billing.queue_provider_action(
  p_organization_id uuid,
  p_provider public.payment_provider,
  p_kind billing.provider_action_kind,
  p_target jsonb,
  p_payload jsonb,
  p_idempotency_key text,
  p_requested_by text default 'system',
  p_reason text default null,
  p_subscription_id uuid default null,
  p_payment_event_id uuid default null
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
begin
  if p_provider = 'manual' then
    raise exception 'provider action %: a manual payment has no provider to tell', p_kind
      using errcode = 'invalid_parameter_value';
  end if;
  insert into billing.provider_actions
    (organization_id, provider, kind, target, payload, idempotency_key, requested_by, reason, subscription_id,
     payment_event_id)
  values
    (p_organization_id, p_provider, p_kind, coalesce(p_target, '{}'::jsonb), coalesce(p_payload, '{}'::jsonb),
     p_idempotency_key, coalesce(p_requested_by, 'system')::public.actor_kind, p_reason, p_subscription_id, p_payment_event_id)
  on conflict (idempotency_key) do nothing
  returning id into v_id;
  if v_id is null then
    select a.id into v_id from billing.provider_actions a where a.idempotency_key = p_idempotency_key;
  end if;
  return v_id;
end;
$$;
revoke execute on function billing.queue_provider_action(uuid, public.payment_provider, billing.provider_action_kind, jsonb,
  jsonb, text, text, text, uuid, uuid) from public;
grant execute on function billing.queue_provider_action(uuid, public.payment_provider, billing.provider_action_kind, jsonb,
  jsonb, text, text, text, uuid, uuid) to service_role;

/**
 * For the provider-sync worker (service_role): claims up to p_limit due actions (pending with
 * next_attempt_at reached, or running with an expired lease: a worker that died), oldest first
 * (seq breaks ties), skipping rows another worker holds (`for update skip locked`) and an action
 * of a provider subscription with an earlier action still pending or running (they reach the
 * provider in order, one at a time). A claim is a 5-minute lease and counts an attempt.
 * Concurrent workers never get the same action.
 */
create function billing.claim_provider_actions(p_limit integer default 20)
returns setof billing.provider_actions
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
      select a.id from billing.provider_actions a
      where ((a.state = 'pending' and a.next_attempt_at <= v_now)
             or (a.state = 'running' and a.locked_until <= v_now))
        -- One provider subscription's actions one at a time, in the order they were queued: a
        -- worker runs its batch concurrently, and the last price switch to reach the provider is
        -- the price it charges, so a later action waits for the earlier ones to be done.
        and not exists (
          select 1 from billing.provider_actions e
          where e.organization_id = a.organization_id and e.provider = a.provider and e.seq < a.seq
            and e.state in ('pending', 'running')
            and e.target ->> 'provider_subscription_id' = a.target ->> 'provider_subscription_id')
      order by a.next_attempt_at, a.seq
      limit p_limit
      for update skip locked
    )
    update billing.provider_actions a
    set state = 'running', attempts = a.attempts + 1, locked_until = v_now + interval '5 minutes'
    from claimed c
    where a.id = c.id
    returning a.*;
end;
$$;
revoke execute on function billing.claim_provider_actions(integer) from public, anon, authenticated;
grant execute on function billing.claim_provider_actions(integer) to service_role;

/**
 * Records what the provider answered a claimed action (service_role): p_outcome 'succeeded'
 * (p_result the provider's answer), 'retry' (a transient failure: network, 5xx, 429; due again
 * after billing.retry_backoff, or failed once max_attempts are used) or 'failed' (a permanent
 * failure, p_error the provider's message). A refund is never failed on a retry: its outcome is
 * unknown (the provider may hold it), so it stays pending and is asked again past max_attempts
 * (every attempt after the first asks the provider first), its money held
 * (billing.refundable_paise) and a new refund of the payment refused, until the provider answers
 * or an operator resolves it (billing.operator_resolve_refund). A failed action queues a
 * 'provider_action_failed' notification for the organization. Returns the new state. Refused
 * (55000) for an action that is not running (already recorded, or never claimed).
 */
create function billing.complete_provider_action(
  p_id uuid,
  p_outcome text,
  p_result jsonb default null,
  p_error text default null,
  p_retry_after_seconds integer default null
)
returns billing.provider_action_state
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_action billing.provider_actions;
  v_state billing.provider_action_state;
begin
  if p_outcome is null or p_outcome not in ('succeeded', 'retry', 'failed') then
    raise exception 'provider action outcome must be succeeded, retry or failed, got %', coalesce(p_outcome, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  select * into v_action from billing.provider_actions a where a.id = p_id for update;
  if v_action.id is null then
    raise exception 'provider action % does not exist', p_id using errcode = 'no_data_found';
  end if;
  if v_action.state <> 'running' then
    raise exception 'provider action % is %, not running: its outcome is already recorded', p_id, v_action.state
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  v_state := case
    when p_outcome = 'succeeded' then 'succeeded'
    when p_outcome = 'retry' and (v_action.kind = 'refund' or v_action.attempts < v_action.max_attempts) then 'pending'
    else 'failed' end::billing.provider_action_state;
  update billing.provider_actions a
  set state = v_state,
      result = coalesce(p_result, a.result),
      last_error = case when v_state = 'succeeded' then null
                        else left(coalesce(p_error, 'no reason given'), 2000) end,
      locked_until = null,
      next_attempt_at = case when v_state = 'pending'
                             then v_now + billing.retry_backoff(a.attempts, p_retry_after_seconds)
                             else a.next_attempt_at end,
      completed_at = case when v_state in ('succeeded', 'failed') then v_now end
  where a.id = p_id;
  if v_state = 'failed' then
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    values (v_action.organization_id, v_action.subscription_id, 'provider_action_failed',
            pg_catalog.jsonb_build_object('provider_action_id', v_action.id, 'provider', v_action.provider,
                                          'kind', v_action.kind, 'target', v_action.target,
                                          'attempts', v_action.attempts, 'error', left(coalesce(p_error, ''), 500)),
            pg_catalog.format('provider_action_failed:%s', v_action.id))
    on conflict (dedupe_key) do nothing;
  end if;
  return v_state;
end;
$$;
revoke execute on function billing.complete_provider_action(uuid, text, jsonb, text, integer) from public, anon, authenticated;
grant execute on function billing.complete_provider_action(uuid, text, jsonb, text, integer) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Operators' actions (postgres and service_role only; each needs a reason and is audited)
-- -------------------------------------------------------------------------------------------------

/** The operator's reason, or an error: every operator action says why. */
create function billing.require_operator_reason(p_reason text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_reason is null or length(btrim(p_reason)) not between 3 and 500 then
    raise exception 'an operator action needs a reason of 3 to 500 characters' using errcode = 'invalid_parameter_value';
  end if;
  return btrim(p_reason);
end;
$$;
revoke execute on function billing.require_operator_reason(text) from public;
grant execute on function billing.require_operator_reason(text) to service_role;

/**
 * Refunds a captured payment at its provider, in full (p_amount_cents null: what is left) or in
 * part, through the outbox; the provider's confirmation (its refund webhook, or the refund in its
 * API answer) records the refund and its credit note, and the access rule of a full refund
 * applies then. Refused: an unknown or uncaptured payment; a refund action of the payment whose
 * outcome is unknown (55000, naming the action: wait until provider-sync records what the
 * provider did); an amount above what can still be refunded (billing.refundable_paise: refunds
 * recorded, lost disputes, refunds queued, running or pending at the provider count); a manual
 * payment. Returns the action's id.
 */
create function billing.operator_refund(p_payment_event_id uuid, p_amount_cents bigint, p_reason text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_captured public.payment_events;
  v_unresolved billing.provider_actions;
  v_left bigint;
  v_amount bigint;
  v_n integer;
begin
  select * into v_captured from public.payment_events pe where pe.id = p_payment_event_id and pe.status = 'captured';
  if v_captured.id is null then
    raise exception 'payment event % is not a captured payment', p_payment_event_id using errcode = 'no_data_found';
  end if;
  -- One refund decision at a time per payment, so two operators cannot both refund the rest.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('operator_refund:' || v_captured.id::text, 0));
  v_unresolved := billing.unresolved_refund_action(v_captured);
  if v_unresolved.id is not null then
    raise exception 'refund action % of payment % has an unknown outcome (%, % attempt(s)%): the provider may have refunded it',
      v_unresolved.id, v_captured.provider_payment_id, v_unresolved.state, v_unresolved.attempts,
      coalesce(', last error: ' || v_unresolved.last_error, '')
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'wait until provider-sync records what the provider did with it, then refund what is left';
  end if;
  v_left := billing.refundable_paise(v_captured);
  v_amount := coalesce(p_amount_cents, v_left);
  if v_amount <= 0 or v_amount > v_left then
    raise exception 'refund of % paise: payment % has % paise left to refund (refunds recorded, queued or pending at the provider, and lost disputes count)',
      v_amount, v_captured.provider_payment_id, v_left
      using errcode = 'invalid_parameter_value';
  end if;
  select count(*) into v_n from billing.provider_actions a where a.payment_event_id = v_captured.id and a.kind = 'refund';
  return billing.queue_provider_action(
    v_captured.organization_id, v_captured.provider, 'refund',
    pg_catalog.jsonb_build_object('provider_payment_id', v_captured.provider_payment_id,
                                  'order_ref', (select o.receipt from public.orders o where o.id = v_captured.order_id)),
    pg_catalog.jsonb_build_object('amount_paise', v_amount, 'currency', v_captured.currency,
                                  'refund_id', pg_catalog.format('rf_%s_%s', pg_catalog.replace(v_captured.id::text, '-', ''), v_n + 1),
                                  'reason', v_reason),
    pg_catalog.format('refund:%s:%s', v_captured.id, v_n + 1),
    'operator', v_reason, null, v_captured.id);
end;
$$;
revoke execute on function billing.operator_refund(uuid, bigint, text) from public, anon, authenticated;
grant execute on function billing.operator_refund(uuid, bigint, text) to service_role;

/** The organization's live subscription, locked, or an error naming the organization. */
create function billing.live_subscription_for_operator(p_organization_id uuid)
returns public.subscriptions
language plpgsql
set search_path = ''
as $$
declare
  v_sub public.subscriptions;
begin
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('trialing', 'active', 'past_due')
  for update;
  if v_sub.id is null then
    raise exception 'organization % has no live subscription', p_organization_id using errcode = 'no_data_found';
  end if;
  return v_sub;
end;
$$;
revoke execute on function billing.live_subscription_for_operator(uuid) from public;

/**
 * Extends the organization's live subscription by p_interval (a goodwill extension; positive, at
 * most a year), with history (actor 'operator'). The run of periods starts again at the new end
 * (period_anchor), so the next paid period is a full interval from it. Returns the new period end.
 */
create function billing.operator_extend_period(p_organization_id uuid, p_interval interval, p_reason text)
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
revoke execute on function billing.operator_extend_period(uuid, interval, text) from public, anon, authenticated;
grant execute on function billing.operator_extend_period(uuid, interval, text) to service_role;

/**
 * Grants an organization a paid plan until p_until (a comp), without a payment: its live
 * subscription is switched to the plan for a period ending then, or a new one starts (provider
 * 'manual'). A live subscription backed by a Razorpay mandate is detached from it (provider
 * 'manual', no provider subscription id) and the mandate is cancelled at Razorpay now through
 * the outbox, so the customer is not debited during or after the grant (a debit that still comes
 * buys nothing and is refunded); after the grant the customer subscribes again through checkout.
 * With history (actor 'operator'). Returns the subscription id.
 */
create function billing.operator_grant_plan(p_organization_id uuid, p_plan_code text, p_until timestamptz, p_reason text)
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
  v_mandate boolean;
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
  v_mandate := v_sub.provider_subscription_id is not null and v_sub.provider <> 'manual';
  perform billing.set_change_context('plan_granted', 'operator',
    p_reason => v_reason,
    p_metadata => pg_catalog.jsonb_build_object('until', p_until, 'plan_code', v_plan.code,
                                                'mandate_cancelled', case when v_mandate then v_sub.provider_subscription_id end));
  if v_sub.id is null then
    insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider,
                                      period_anchor)
    values (p_organization_id, v_plan.id, 'active', v_now, p_until, 'manual', v_now)
    returning * into v_new;
  else
    update public.subscriptions s
    set plan_id = v_plan.id, status = 'active', current_period_start = v_now, current_period_end = p_until,
        period_anchor = v_now, pending_plan_id = null, pending_plan_effective_at = null, cancel_at_period_end = false,
        canceled_at = null,
        provider = case when v_mandate then 'manual' else s.provider end,
        provider_subscription_id = case when v_mandate then null else s.provider_subscription_id end
    where s.id = v_sub.id
    returning * into v_new;
  end if;
  -- The mandate stops now, unless Razorpay already ended it.
  if v_mandate and not exists (
       select 1 from billing.provider_subscription_states st
       where st.provider = v_sub.provider and st.provider_subscription_id = v_sub.provider_subscription_id
         and st.status in ('cancelled', 'completed', 'expired')) then
    perform billing.queue_provider_action(
      p_organization_id, v_sub.provider, 'cancel',
      pg_catalog.jsonb_build_object('provider_subscription_id', v_sub.provider_subscription_id),
      pg_catalog.jsonb_build_object('at_cycle_end', false),
      pg_catalog.format('cancel:%s:now', v_sub.provider_subscription_id),
      'operator', v_reason, v_new.id);
  end if;
  return v_new.id;
end;
$$;
revoke execute on function billing.operator_grant_plan(uuid, text, timestamptz, text) from public, anon, authenticated;
grant execute on function billing.operator_grant_plan(uuid, text, timestamptz, text) to service_role;

/**
 * Cancels the organization's live subscription now (p_at_period_end false: the free plan at
 * once) or at its period end, with history (actor 'operator'); a Razorpay recurring subscription
 * is cancelled at Razorpay the same way (billing.provider_action). Returns the subscription's
 * status.
 */
create function billing.operator_cancel(p_organization_id uuid, p_at_period_end boolean, p_reason text)
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
revoke execute on function billing.operator_cancel(uuid, boolean, text) from public, anon, authenticated;
grant execute on function billing.operator_cancel(uuid, boolean, text) to service_role;

/**
 * Undoes a cancellation scheduled for the period end, while the period still runs, with history
 * (actor 'operator'); a provider subscription is resumed at its provider too (a queued 'resume'
 * action). A Razorpay recurring subscription set to cancel at Razorpay is refused
 * (billing.provider_can_resume: its mandate is being cancelled there; the customer subscribes again).
 */
create function billing.operator_resume(p_organization_id uuid, p_reason text)
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
  if not billing.provider_can_resume(v_sub) then
    raise exception '% subscription % is being cancelled at %: the customer subscribes again through checkout',
      pg_catalog.initcap(v_sub.provider::text), v_sub.provider_subscription_id, pg_catalog.initcap(v_sub.provider::text) using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform billing.set_change_context('resumed', 'operator', p_reason => v_reason);
  update public.subscriptions s set cancel_at_period_end = false, canceled_at = null where s.id = v_sub.id;
  perform billing.provider_resume_action(v_sub, 'operator', v_reason);
  return v_sub.status;
end;
$$;
revoke execute on function billing.operator_resume(uuid, text) from public, anon, authenticated;
grant execute on function billing.operator_resume(uuid, text) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Operators' enterprise pricing: private plans assigned to organizations, price overrides
-- -------------------------------------------------------------------------------------------------

/**
 * Records an operator's pricing decision in public.subscription_history (what members read: the
 * action, the plan, the terms in metadata, reason 'by an operator', actor 'operator'), with the
 * operator's own words in billing.operator_notes. No subscription row changes, so the row names
 * no subscription (subscription_id null: the revenue module, which reads subscription states,
 * skips it) and no status. Actions: plan_assigned, plan_unassigned, price_override_set,
 * price_override_ended.
 */
create function billing.log_operator_pricing(
  p_organization_id uuid,
  p_action text,
  p_plan_id uuid,
  p_reason text,
  p_metadata jsonb
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_history_id uuid;
begin
  if p_action not in ('plan_assigned', 'plan_unassigned', 'price_override_set', 'price_override_ended') then
    raise exception 'not an operator pricing action: %', p_action using errcode = 'invalid_parameter_value';
  end if;
  insert into public.subscription_history
    (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status, new_status,
     actor_kind, actor_id, reason, metadata, effective_at, created_at)
  values
    (p_organization_id, null, p_action, p_plan_id, p_plan_id, null, null,
     'operator', null, 'by an operator', coalesce(p_metadata, '{}'::jsonb), billing.now(), pg_catalog.clock_timestamp())
  returning id into v_history_id;
  insert into billing.operator_notes (history_id, organization_id, reason)
  values (v_history_id, p_organization_id, p_reason);
  return v_history_id;
end;
$$;
revoke execute on function billing.log_operator_pricing(uuid, text, uuid, text, jsonb) from public, anon, authenticated;
grant execute on function billing.log_operator_pricing(uuid, text, uuid, text, jsonb) to service_role;

/**
 * The organization (locked for no key update, the lock checkout takes, so a pricing change and a
 * checkout of the organization serialize) and the plan by code, or P0002 naming the unknown one.
 */
create function billing.pricing_target(p_organization_id uuid, p_plan_code text, out plan public.billing_plans)
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from public.organizations o where o.id = p_organization_id for no key update;
  if not found then
    raise exception 'unknown organization %', p_organization_id using errcode = 'no_data_found';
  end if;
  select * into plan from public.billing_plans p where p.code = p_plan_code;
  if plan.id is null then
    raise exception 'no plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
end;
$$;
revoke execute on function billing.pricing_target(uuid, text) from public, anon, authenticated;
grant execute on function billing.pricing_target(uuid, text) to service_role;

/**
 * Assigns a plan (usually a private one: public.billing_plans.private) to an organization: its
 * members then read the plan and may buy it. Idempotent: an assignment already live is returned
 * as it is. History 'plan_assigned' (actor operator; the reason in billing.operator_notes).
 * postgres and service_role. Returns the assignment's id.
 * Errors: 22023 no reason; P0002 unknown organization or plan; 55000 the free plan or a retired one.
 */
create function billing.operator_assign_plan(
  p_organization_id uuid,
  p_plan_code text,
  p_reason text,
  p_contract_ref text default null
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_plan public.billing_plans := billing.pricing_target(p_organization_id, p_plan_code);
  v_id uuid;
begin
  if v_plan.tier = 'free' or not v_plan.active then
    raise exception 'plan "%" is %: only an active paid plan is assigned', v_plan.code,
      case when v_plan.tier = 'free' then 'the free plan' else 'retired' end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select a.id into v_id from public.plan_assignments a
  where a.organization_id = p_organization_id and a.plan_id = v_plan.id and a.ended_at is null;
  if v_id is not null then
    return v_id;
  end if;
  insert into public.plan_assignments (organization_id, plan_id, contract_ref)
  values (p_organization_id, v_plan.id, nullif(btrim(p_contract_ref), ''))
  returning id into v_id;
  perform billing.log_operator_pricing(p_organization_id, 'plan_assigned', v_plan.id, v_reason,
    pg_catalog.jsonb_build_object('plan_assignment_id', v_id, 'plan_code', v_plan.code,
                                  'contract_ref', nullif(btrim(p_contract_ref), '')));
  return v_id;
end;
$$;
revoke execute on function billing.operator_assign_plan(uuid, text, text, text) from public, anon, authenticated;
grant execute on function billing.operator_assign_plan(uuid, text, text, text) to service_role;

/**
 * Ends an organization's live assignment of a plan now: it no longer sees the plan (unless a
 * subscription of it is on the plan) nor buys it; a subscription running on it keeps it until
 * its period end. History 'plan_unassigned'. Returns false when there was no live assignment.
 */
create function billing.operator_unassign_plan(p_organization_id uuid, p_plan_code text, p_reason text)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_plan public.billing_plans := billing.pricing_target(p_organization_id, p_plan_code);
  v_id uuid;
begin
  update public.plan_assignments a set ended_at = billing.now()
  where a.organization_id = p_organization_id and a.plan_id = v_plan.id and a.ended_at is null
  returning a.id into v_id;
  if v_id is null then
    return false;
  end if;
  perform billing.log_operator_pricing(p_organization_id, 'plan_unassigned', v_plan.id, v_reason,
    pg_catalog.jsonb_build_object('plan_assignment_id', v_id, 'plan_code', v_plan.code));
  return true;
end;
$$;
revoke execute on function billing.operator_unassign_plan(uuid, text, text) from public, anon, authenticated;
grant execute on function billing.operator_unassign_plan(uuid, text, text) to service_role;

/**
 * Gives an organization a negotiated price for a plan (public or private): p_price_paise before
 * GST, in the plan's currency, from p_valid_from (inclusive) until p_valid_until (exclusive; null:
 * until ended), under contract p_contract_ref. Orders created in that period (checkout, renewal
 * by checkout, upgrades' proration, previews) are priced at it (billing.plan_price_for); orders
 * already created keep their price. A Razorpay recurring plan (provider_config.razorpay.plan_id)
 * is sold to the organization as one-time Razorpay orders while an override of it is current or
 * to come (Razorpay charges a subscription its plan's own amount), so it renews through checkout;
 * refused (55000) while the organization's subscription on the plan renews by a Razorpay mandate:
 * cancel it at the period end first (billing.operator_cancel), then the customer renews through
 * checkout at the override price. History 'price_override_set'. Returns the override's id.
 * Errors: 22023 no reason, a price that is not positive, a period that is empty or already over,
 * no contract reference; P0002 unknown organization or plan; 55000 the free plan, a retired plan,
 * a live Razorpay mandate on the plan, or an override of the same plan overlapping the period
 * (end it first: billing.operator_end_price_override).
 */
create function billing.operator_set_price_override(
  p_organization_id uuid,
  p_plan_code text,
  p_price_paise bigint,
  p_valid_from timestamptz,
  p_valid_until timestamptz,
  p_contract_ref text,
  p_reason text
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_overlap public.price_overrides;
  v_mandate public.subscriptions;
  v_id uuid;
begin
  if p_price_paise is null or p_price_paise <= 0 then
    raise exception 'a price override is a positive number of paise, got %', coalesce(p_price_paise::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_from is null then
    raise exception 'a price override needs valid_from (when it starts)' using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_until is not null and p_valid_until <= p_valid_from then
    raise exception 'a price override must end after it starts: valid_until % is not after valid_from %', p_valid_until, p_valid_from
      using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_until is not null and p_valid_until <= v_now then
    raise exception 'a price override ending at % is already over', p_valid_until using errcode = 'invalid_parameter_value';
  end if;
  if p_contract_ref is null or length(btrim(p_contract_ref)) not between 1 and 200 then
    raise exception 'a price override needs a contract reference of 1 to 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  v_plan := billing.pricing_target(p_organization_id, p_plan_code);
  if v_plan.tier = 'free' or not v_plan.active then
    raise exception 'plan "%" is %: only an active paid plan gets a price override', v_plan.code,
      case when v_plan.tier = 'free' then 'the free plan' else 'retired' end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_mandate from public.subscriptions s
  where s.organization_id = p_organization_id and s.plan_id = v_plan.id
    and s.status in ('trialing', 'active', 'past_due')
    and s.provider_subscription_id is not null and not s.cancel_at_period_end;
  if v_mandate.id is not null then
    raise exception 'the organization''s subscription on plan "%" renews by % subscription %, which charges its own amount: cancel it at the period end first (billing.operator_cancel), then the customer renews through checkout at the override price',
      v_plan.code, pg_catalog.initcap(v_mandate.provider::text), v_mandate.provider_subscription_id
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_overlap from public.price_overrides o
  where o.organization_id = p_organization_id and o.plan_id = v_plan.id
    and (o.ended_at is null or o.ended_at > o.valid_from)
    and o.valid_from < coalesce(p_valid_until, 'infinity'::timestamptz)
    and p_valid_from < least(coalesce(o.valid_until, 'infinity'::timestamptz), coalesce(o.ended_at, 'infinity'::timestamptz))
  limit 1;
  if v_overlap.id is not null then
    raise exception 'price override % (contract %) of plan "%" already covers part of that period: end it first (billing.operator_end_price_override)',
      v_overlap.id, v_overlap.contract_ref, v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  insert into public.price_overrides (organization_id, plan_id, price_paise, valid_from, valid_until, contract_ref)
  values (p_organization_id, v_plan.id, p_price_paise, p_valid_from, p_valid_until, btrim(p_contract_ref))
  returning id into v_id;
  perform billing.log_operator_pricing(p_organization_id, 'price_override_set', v_plan.id, v_reason,
    pg_catalog.jsonb_build_object('price_override_id', v_id, 'plan_code', v_plan.code, 'price_paise', p_price_paise,
                                  'list_price_paise', v_plan.price_cents, 'valid_from', p_valid_from,
                                  'valid_until', p_valid_until, 'contract_ref', btrim(p_contract_ref)));
  return v_id;
end;
$$;
revoke execute on function billing.operator_set_price_override(uuid, text, bigint, timestamptz, timestamptz, text, text) from public, anon, authenticated;
grant execute on function billing.operator_set_price_override(uuid, text, bigint, timestamptz, timestamptz, text, text) to service_role;

/**
 * Ends a price override now (ended_at): from now on the organization pays the list price (or
 * another override), and one that had not started never applies. Orders already created keep
 * their price. History 'price_override_ended'. Returns when it ended.
 * Errors: 22023 no reason; P0002 unknown override; 55000 already over or ended.
 */
create function billing.operator_end_price_override(p_price_override_id uuid, p_reason text)
returns timestamptz
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_override public.price_overrides;
begin
  select * into v_override from public.price_overrides o where o.id = p_price_override_id;
  if v_override.id is null then
    raise exception 'unknown price override %', p_price_override_id using errcode = 'no_data_found';
  end if;
  perform 1 from public.organizations o where o.id = v_override.organization_id for no key update;
  select * into v_override from public.price_overrides o where o.id = p_price_override_id for update;
  if v_override.ended_at is not null or v_override.valid_until <= v_now then
    raise exception 'price override % is already over (%)', v_override.id,
      coalesce(v_override.ended_at, v_override.valid_until)
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  update public.price_overrides o set ended_at = v_now where o.id = v_override.id;
  perform billing.log_operator_pricing(v_override.organization_id, 'price_override_ended', v_override.plan_id, v_reason,
    pg_catalog.jsonb_build_object('price_override_id', v_override.id,
                                  'plan_code', (select p.code from public.billing_plans p where p.id = v_override.plan_id),
                                  'price_paise', v_override.price_paise, 'contract_ref', v_override.contract_ref,
                                  'ended_at', v_now));
  return v_now;
end;
$$;
revoke execute on function billing.operator_end_price_override(uuid, text) from public, anon, authenticated;
grant execute on function billing.operator_end_price_override(uuid, text) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Implementation of the public function (security definer; its wrapper is in section 5)
-- -------------------------------------------------------------------------------------------------

/**
 * The organization's provider actions that are pending, running or failed (what the provider has
 * not yet confirmed, and what it refused), newest first, for its owners and admins and
 * service_role. reason is why the system queued the action; for an action an operator asked
 * for it is the fixed text 'requested by an operator' (the operator's own words stay private).
 * Security definer: billing.provider_actions is private; this shows a tenant only its own rows,
 * and only these columns.
 */
create function billing.get_provider_actions(p_organization_id uuid)
returns table (
  id uuid,
  provider public.payment_provider,
  kind text,
  state text,
  attempts integer,
  next_attempt_at timestamptz,
  last_error text,
  reason text,
  created_at timestamptz,
  completed_at timestamptz
)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform billing.require_role(p_organization_id, billing.managers(), 'read its provider actions');
  return query
    select a.id, a.provider, a.kind::text, a.state::text, a.attempts, a.next_attempt_at, a.last_error,
           case when a.requested_by = 'operator' then 'requested by an operator' else a.reason end,
           a.created_at, a.completed_at
    from billing.provider_actions a
    where a.organization_id = p_organization_id and a.state in ('pending', 'running', 'failed')
    order by a.created_at desc
    limit 200;
end;
$$;
revoke execute on function billing.get_provider_actions(uuid) from public, anon;
grant execute on function billing.get_provider_actions(uuid) to authenticated, service_role;

/**
 * The refund action of a captured payment whose outcome is unknown, or null: one a worker has
 * claimed ('running'), or one put back to retry after an attempt that failed ('pending' with an
 * attempt made), since the provider may have refunded it. Oldest first.
 */
create function billing.unresolved_refund_action(p_captured public.payment_events)
returns billing.provider_actions
language plpgsql
stable
set search_path = ''
as $$
declare
  v_action billing.provider_actions;
begin
  select * into v_action from billing.provider_actions a
  where a.payment_event_id = p_captured.id and a.kind = 'refund'
    and (a.state = 'running' or (a.state = 'pending' and a.attempts > 0))
  order by a.created_at
  limit 1;
  return v_action;
end;
$$;
revoke execute on function billing.unresolved_refund_action(public.payment_events) from public, anon, authenticated;
grant execute on function billing.unresolved_refund_action(public.payment_events) to service_role;

/**
 * An operator resolves a refund action that is not done (pending or retrying; one a worker holds
 * now is refused until its lease ends), after looking at the provider's dashboard: p_refunded
 * false, the provider holds no refund of it (the action fails, the owners are told, and its money
 * can be refunded again); p_refunded true, the provider made it under p_provider_refund_id (the
 * refund is recorded now, once per refund id, with its credit note and the access rule of a full
 * refund, through billing.apply_payment_event; the action succeeds). p_reason (required) says
 * what they saw. Refused: not a refund action (P0002), resolved already or held by a worker
 * (55000), p_refunded true for an action never sent (no attempt made: 55000), a refund id
 * missing or a recorded refund that does not fit (22023). Returns the action's new state.
 */
create function billing.operator_resolve_refund(
  p_action_id uuid,
  p_refunded boolean,
  p_reason text,
  p_provider_refund_id text default null
)
returns billing.provider_action_state
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_action billing.provider_actions;
  v_applied jsonb;
begin
  select * into v_action from billing.provider_actions a where a.id = p_action_id and a.kind = 'refund' for update;
  if v_action.id is null then
    raise exception 'provider action % is not a refund action', p_action_id using errcode = 'no_data_found';
  end if;
  if v_action.state not in ('pending', 'running') or (v_action.state = 'running' and v_action.locked_until > v_now) then
    raise exception 'refund action % is %: %', p_action_id, v_action.state,
      case when v_action.state = 'running' then 'provider-sync is asking the provider now, try again after its lease'
           else 'its outcome is already recorded' end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_refunded and v_action.attempts = 0 then
    raise exception 'refund action % was never sent to the provider (no attempt made): the provider cannot have made it',
      p_action_id
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'resolve it as not refunded to drop it, or let provider-sync send it';
  end if;
  if p_refunded is null or (p_refunded and coalesce(pg_catalog.btrim(p_provider_refund_id), '') = '') then
    raise exception 'say whether the provider refunded it, and if it did, its refund id'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_refunded then
    v_applied := billing.apply_payment_event(pg_catalog.jsonb_build_object(
      'provider', v_action.provider, 'event_id', pg_catalog.format('operator:%s:refunded', v_action.id),
      'event_type', 'operator.refund_resolved', 'kind', 'refund_processed',
      'provider_payment_id', v_action.target ->> 'provider_payment_id',
      'provider_refund_id', pg_catalog.btrim(p_provider_refund_id),
      'amount_paise', (v_action.payload ->> 'amount_paise')::bigint, 'currency', v_action.payload ->> 'currency',
      'status', 'processed', 'occurred_at', v_now,
      'payload', pg_catalog.jsonb_build_object('source', 'operator', 'action_id', v_action.id)));
    if v_applied ->> 'result' not in ('applied', 'duplicate') then
      raise exception 'refund % of action % cannot be recorded: %', p_provider_refund_id, p_action_id,
        coalesce(v_applied ->> 'last_error', v_applied ->> 'reason', v_applied ->> 'result')
        using errcode = 'invalid_parameter_value';
    end if;
  end if;
  update billing.provider_actions a
  set state = case when p_refunded then 'succeeded' else 'failed' end::billing.provider_action_state,
      result = coalesce(a.result, '{}'::jsonb)
               || pg_catalog.jsonb_build_object('resolved_by', 'operator', 'refunded', p_refunded,
                                                'resolution', v_reason, 'resolved_at', v_now)
               || case when p_refunded then pg_catalog.jsonb_build_object(
                    'provider_refund_id', pg_catalog.btrim(p_provider_refund_id), 'status', 'processed')
                  else '{}'::jsonb end,
      last_error = case when p_refunded then null
                        else left('not refunded at the provider, per an operator: ' || v_reason, 2000) end,
      locked_until = null,
      completed_at = v_now
  where a.id = v_action.id;
  if not p_refunded then
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    values (v_action.organization_id, v_action.subscription_id, 'provider_action_failed',
            pg_catalog.jsonb_build_object('provider_action_id', v_action.id, 'provider', v_action.provider,
                                          'kind', v_action.kind, 'target', v_action.target,
                                          'attempts', v_action.attempts, 'error', 'the provider did not make this refund'),
            pg_catalog.format('provider_action_failed:%s', v_action.id))
    on conflict (dedupe_key) do nothing;
  end if;
  return case when p_refunded then 'succeeded' else 'failed' end::billing.provider_action_state;
end;
$$;
revoke execute on function billing.operator_resolve_refund(uuid, boolean, text, text) from public, anon, authenticated;
grant execute on function billing.operator_resolve_refund(uuid, boolean, text, text) to service_role;

/**
 * The refund action a refund event of p_captured carries out, or null (a refund made in the
 * provider's dashboard): the action the event names (provider-sync's events carry payload
 * action_id; a Razorpay refund carries notes.action_id and our refund id as its receipt; a PayU
 * refund our token), or the action whose provider refund id is the event's.
 */
create function billing.refund_action_for(p_captured public.payment_events, p_event jsonb)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  v_ids text[] := array[p_event #>> '{payload,action_id}', p_event #>> '{payload,payload,refund,entity,notes,action_id}'];
  v_refs text[] := array[p_event #>> '{payload,token}', p_event #>> '{payload,payload,refund,entity,receipt}',
                         p_event #>> '{payload,payload,refund,entity,notes,refund_id}'];
  v_id uuid;
begin
  select a.id into v_id from billing.provider_actions a
  where a.payment_event_id = p_captured.id and a.kind = 'refund'
    and (a.id::text = any (v_ids)
         or a.payload ->> 'refund_id' = any (v_refs)
         or a.result ->> 'provider_refund_id' = p_event ->> 'provider_refund_id')
  order by a.created_at
  limit 1;
  return v_id;
end;
$$;
revoke execute on function billing.refund_action_for(public.payment_events, jsonb) from public, anon, authenticated;
grant execute on function billing.refund_action_for(public.payment_events, jsonb) to service_role;

/**
 * A refund the provider reports failed (Razorpay refund.failed, kind refund_failed): the refund
 * action of ours it carries out (billing.refund_action_for) fails, unless already failed or its
 * refund is recorded (a processed refund does not fail), with a 'provider_action_failed'
 * notification for the owners; a refund the provider had accepted as pending then stops counting
 * as in flight (billing.refundable_paise), so what it was for can be refunded again. A failed
 * refund we did not ask for (the provider's dashboard) changes nothing; it is recorded with the
 * delivery. Returns the result object.
 */
create function billing.apply_refund_failed(p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_refund_id text := p_event ->> 'provider_refund_id';
  v_captured public.payment_events;
  v_action billing.provider_actions;
  v_error text;
begin
  select * into v_captured from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = p_event ->> 'provider_payment_id' and pe.status = 'captured'
  order by pe.created_at
  limit 1;
  if v_captured.id is null then
    v_error := pg_catalog.format('unknown payment %s for failed refund %s', coalesce(p_event ->> 'provider_payment_id', '(none)'),
                                 coalesce(v_refund_id, '(none)'));
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error, 'last_error', v_error);
  end if;
  select * into v_action from billing.provider_actions a
  where a.id = billing.refund_action_for(v_captured, p_event)
  for update;
  if v_action.id is null then
    return pg_catalog.jsonb_build_object('result', 'ignored',
      'reason', pg_catalog.format('refund %s failed; no refund of ours', coalesce(v_refund_id, '(none)')),
      'payment_event_id', v_captured.id);
  end if;
  if v_action.state = 'failed'
     or exists (select 1 from public.payment_events r
                where r.provider = v_provider and r.provider_payment_id = v_captured.provider_payment_id
                  and r.status = 'refunded'
                  and (r.details ->> 'refund_id' = v_refund_id or r.details ->> 'action_id' = v_action.id::text)) then
    return pg_catalog.jsonb_build_object('result', 'ignored',
      'reason', pg_catalog.format('refund action %s is %s', v_action.id,
                                  case when v_action.state = 'failed' then 'failed already' else 'recorded as refunded' end),
      'payment_event_id', v_captured.id);
  end if;
  v_error := pg_catalog.format('%s reports refund %s failed (%s)', v_provider, coalesce(v_refund_id, '(no id)'),
                               coalesce(p_event ->> 'error_reason', p_event ->> 'status', 'no reason given'));
  update billing.provider_actions a
  set state = 'failed',
      result = coalesce(a.result, '{}'::jsonb)
               || pg_catalog.jsonb_build_object('status', 'failed', 'provider_refund_id', coalesce(v_refund_id, a.result ->> 'provider_refund_id'),
                                                'failed_event_id', p_event ->> 'event_id', 'failed_at', p_event_at),
      last_error = left(v_error, 2000), locked_until = null, completed_at = v_now
  where a.id = v_action.id;
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  values (v_action.organization_id, v_action.subscription_id, 'provider_action_failed',
          pg_catalog.jsonb_build_object('provider_action_id', v_action.id, 'provider', v_action.provider,
                                        'kind', v_action.kind, 'target', v_action.target,
                                        'attempts', v_action.attempts, 'error', left(v_error, 500)),
          pg_catalog.format('provider_action_failed:%s', v_action.id))
  on conflict (dedupe_key) do nothing;
  return pg_catalog.jsonb_build_object('result', 'applied', 'reason', v_error, 'provider_action_id', v_action.id,
                                       'payment_event_id', v_captured.id);
end;
$$;
revoke execute on function billing.apply_refund_failed(jsonb, timestamptz) from public;
grant execute on function billing.apply_refund_failed(jsonb, timestamptz) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Operators' export settings: the LUT of a financial year, exchange rates
-- -------------------------------------------------------------------------------------------------

/**
 * Records the letter of undertaking filed for a financial year ('2026-27'; p_arn its GST ARN, 15
 * characters: AA, state code, month and year filed, six digits, a check character), with the
 * operator's reason kept on the row: exports whose order falls in that year are zero-rated under
 * it from now on (orders already created keep their quote). Idempotent for the same ARN; another
 * ARN for a year already recorded supersedes the row (superseded_at; it stays as the record, and
 * invoices keep the ARN they were issued with). These are the seller's settings, of no
 * organization, so the rows themselves are the history (no subscription_history row).
 * Errors: 22023 no reason, a malformed year or ARN, a filing date in the future. Returns the row's id.
 */
create function billing.operator_record_lut(p_financial_year text, p_arn text, p_filed_on date, p_reason text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_arn text := pg_catalog.upper(btrim(coalesce(p_arn, '')));
  v_live billing.lut_registrations;
  v_id uuid;
begin
  if p_financial_year is null or p_financial_year !~ '^[0-9]{4}-[0-9]{2}$'
     or (pg_catalog.left(p_financial_year, 4)::integer + 1) % 100 <> pg_catalog.right(p_financial_year, 2)::integer then
    raise exception 'a financial year is written like 2026-27 (1 April 2026 to 31 March 2027), got "%"', coalesce(p_financial_year, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if v_arn !~ '^AA(0[1-9]|[12][0-9]|3[0-8]|97|99)(0[1-9]|1[0-2])[0-9]{2}[0-9]{6}[0-9A-Z]$' then
    raise exception 'an LUT''s ARN is 15 characters: AA, the state code, the month and year filed (MMYY), six digits and a check character (e.g. AA2903260012345), got "%"', left(coalesce(p_arn, 'null'), 40)
      using errcode = 'invalid_parameter_value';
  end if;
  if p_filed_on is not null and p_filed_on > (billing.now() at time zone 'Asia/Kolkata')::date then
    raise exception 'an LUT filed on % is in the future', p_filed_on using errcode = 'invalid_parameter_value';
  end if;
  select * into v_live from billing.lut_registrations l
  where l.financial_year = p_financial_year and l.superseded_at is null
  for update;
  if v_live.arn = v_arn then
    return v_live.id;
  end if;
  update billing.lut_registrations l set superseded_at = billing.now() where l.id = v_live.id;
  insert into billing.lut_registrations (financial_year, arn, filed_on, reason, recorded_at)
  values (p_financial_year, v_arn, p_filed_on, v_reason, billing.now())
  returning id into v_id;
  return v_id;
end;
$$;
revoke execute on function billing.operator_record_lut(text, text, date, text) from public, anon, authenticated;
grant execute on function billing.operator_record_lut(text, text, date, text) to service_role;

/**
 * Records the rupees per unit of a foreign currency (p_inr_per_unit: 83.25 for 1 USD = 83.25
 * INR) from p_effective_from on (null: now), with the operator's reason kept on the row: orders
 * in that currency created from then on record it (billing.exchange_rate_at). Rates are never
 * changed, only followed by later ones: orders and invoices keep the rate they were made at.
 * Errors: 22023 no reason, INR or a malformed currency, a rate that is not positive, a moment
 * that already has a rate. Returns the row's id.
 */
create function billing.operator_set_exchange_rate(p_currency text, p_inr_per_unit numeric, p_effective_from timestamptz,
                                                   p_reason text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_from timestamptz := coalesce(p_effective_from, billing.now());
  v_id uuid;
begin
  if p_currency is null or p_currency !~ '^[A-Z]{3}$' or p_currency = 'INR' then
    raise exception 'an exchange rate is for a foreign currency (three capital letters, not INR), got "%"', left(coalesce(p_currency, 'null'), 10)
      using errcode = 'invalid_parameter_value';
  end if;
  if p_inr_per_unit is null or p_inr_per_unit <= 0 or p_inr_per_unit >= 1000000000000 then
    raise exception 'an exchange rate is a positive number of rupees per unit of %, got %', p_currency, coalesce(p_inr_per_unit::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if exists (select 1 from billing.exchange_rates r where r.currency = p_currency and r.effective_from = v_from) then
    raise exception 'a rate for % is already recorded from %: record the next one from a later moment', p_currency, v_from
      using errcode = 'invalid_parameter_value';
  end if;
  insert into billing.exchange_rates (currency, inr_per_unit, effective_from, reason, recorded_at)
  values (p_currency, p_inr_per_unit, v_from, v_reason, billing.now())
  returning id into v_id;
  return v_id;
end;
$$;
revoke execute on function billing.operator_set_exchange_rate(text, numeric, timestamptz, text) from public, anon, authenticated;
grant execute on function billing.operator_set_exchange_rate(text, numeric, timestamptz, text) to service_role;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: billing.provider_actions is private; tenants read theirs through public.get_provider_actions.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * The organization's provider actions not yet confirmed, or refused (owners and admins).
 * A thin wrapper: billing.get_provider_actions does the work and checks who is calling.
 */
create function public.get_provider_actions(p_organization_id uuid)
returns table (
  id uuid,
  provider public.payment_provider,
  kind text,
  state text,
  attempts integer,
  next_attempt_at timestamptz,
  last_error text,
  reason text,
  created_at timestamptz,
  completed_at timestamptz
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return query select * from billing.get_provider_actions(p_organization_id);
end;
$$;
revoke execute on function public.get_provider_actions(uuid) from public, anon;
grant execute on function public.get_provider_actions(uuid) to authenticated, service_role;
comment on function public.get_provider_actions(uuid) is
  'The organization''s provider actions (cancellations, refunds, ...) pending at the provider or refused by it. Owners and admins.';
