-- =================================================================================================
-- supabill: the provider is told (an upgrade of the baseline): a transactional outbox of provider
-- actions, and operators' audited actions
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
--   * billing.provider_action, which cancel_subscription and change_plan already call for a
--     Razorpay recurring subscription, now also queues the cancellation it describes;
--   * a captured payment recorded with needs_refund (it bought nothing) queues its refund;
--   * the end of a paid period by a full refund or a lost dispute cancels the Razorpay
--     subscription now, so no further charge comes;
--   * the operators' functions (billing.operator_*; postgres and service_role only, each with a
--     reason, each in subscription_history with actor 'operator').
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
  requested_by text not null default 'system' check (requested_by in ('user', 'system', 'provider', 'operator')),
  reason text,
  created_at timestamptz not null default billing.now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz,
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
     p_idempotency_key, coalesce(p_requested_by, 'system'), p_reason, p_subscription_id, p_payment_event_id)
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
 * What the provider must do when a Razorpay recurring subscription is cancelled here (now, or at
 * the cycle end), as cancel_subscription and change_plan answer it; null for subscriptions we
 * bill ourselves. It is also queued (billing.provider_actions, once per subscription and
 * timing), so Razorpay stops the mandate's debits: the answer carries the action's id.
 */
create or replace function billing.provider_action(p_sub public.subscriptions, p_at_cycle_end boolean)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_action_id uuid;
begin
  if p_sub.provider is distinct from 'razorpay' or p_sub.provider_subscription_id is null then
    return null;
  end if;
  v_action_id := billing.queue_provider_action(
    p_sub.organization_id, p_sub.provider, 'cancel',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_sub.provider_subscription_id),
    pg_catalog.jsonb_build_object('at_cycle_end', coalesce(p_at_cycle_end, true)),
    pg_catalog.format('cancel:%s:%s', p_sub.provider_subscription_id,
                      case when coalesce(p_at_cycle_end, true) then 'cycle_end' else 'now' end),
    'user', 'the subscription was cancelled here', p_sub.id);
  return pg_catalog.jsonb_build_object('provider', 'razorpay', 'action', 'cancel_subscription',
                                       'provider_subscription_id', p_sub.provider_subscription_id,
                                       'cancel_at_cycle_end', coalesce(p_at_cycle_end, true),
                                       'provider_action_id', v_action_id);
end;
$$;

/**
 * The backoff before attempt p_attempt + 1 of an outbox's work (provider actions, notifications):
 * 30 s doubled each attempt, at most an hour, plus up to a fifth of it at random (so workers that
 * failed together do not retry together); the provider's Retry-After when it gave one and it is
 * longer (at most a day).
 */
create function billing.retry_backoff(p_attempt integer, p_retry_after_seconds integer)
returns interval
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_seconds double precision := least(30 * power(2, greatest(coalesce(p_attempt, 1) - 1, 0)), 3600);
begin
  v_seconds := v_seconds * (1 + pg_catalog.random() / 5);
  return pg_catalog.make_interval(secs => greatest(v_seconds, least(coalesce(p_retry_after_seconds, 0), 86400)));
end;
$$;
revoke execute on function billing.retry_backoff(integer, integer) from public;
grant execute on function billing.retry_backoff(integer, integer) to service_role;

/**
 * For the provider-sync worker (service_role): claims up to p_limit due actions (pending with
 * next_attempt_at reached, or running with an expired lease: a worker that died), oldest first,
 * skipping rows another worker holds (`for update skip locked`). A claim is a 5-minute lease and
 * counts an attempt. Concurrent workers never get the same action.
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
      where (a.state = 'pending' and a.next_attempt_at <= v_now)
         or (a.state = 'running' and a.locked_until <= v_now)
      order by a.next_attempt_at
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
 * after billing.retry_backoff, or failed once max_attempts are used) or 'failed' (a
 * permanent failure, p_error the provider's message). A failed action queues a
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
    when p_outcome = 'retry' and v_action.attempts < v_action.max_attempts then 'pending'
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

/**
 * AFTER INSERT on payment_events: a captured payment recorded with needs_refund (it bought
 * nothing) queues its refund at the provider, in full, once per payment.
 */
create function billing.queue_needs_refund()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform billing.queue_provider_action(
    new.organization_id, new.provider, 'refund',
    pg_catalog.jsonb_build_object('provider_payment_id', new.provider_payment_id,
                                  'order_ref', (select o.receipt from public.orders o where o.id = new.order_id)),
    pg_catalog.jsonb_build_object('amount_paise', new.amount_cents, 'currency', new.currency,
                                  'refund_id', 'rf_' || pg_catalog.replace(new.id::text, '-', ''),
                                  'reason', coalesce(new.details ->> 'not_applied', 'the payment bought nothing')),
    pg_catalog.format('refund:%s', new.id),
    'system', coalesce(new.details ->> 'not_applied', 'the payment bought nothing'), null, new.id);
  return null;
end;
$$;
revoke execute on function billing.queue_needs_refund() from public;

create trigger payment_events_queue_refund
  after insert on public.payment_events
  for each row when (new.needs_refund and new.status = 'captured' and new.provider <> 'manual')
  execute function billing.queue_needs_refund();

/**
 * AFTER UPDATE OF status on subscriptions: a Razorpay recurring subscription that ends here
 * before the provider ended it (a full refund, a lost dispute, an operator's cancellation now)
 * is cancelled at Razorpay now, so the mandate is not debited again. A subscription that ended
 * because Razorpay said so (its stored provider state is cancelled, completed or expired) is
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

create trigger subscriptions_queue_provider_cancel
  after update of status on public.subscriptions
  for each row
  when (new.status in ('canceled', 'expired') and old.status in ('trialing', 'active', 'past_due')
        and new.provider = 'razorpay' and new.provider_subscription_id is not null
        and not old.cancel_at_period_end)
  execute function billing.queue_provider_cancel();

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

/**
 * Refunds a captured payment at its provider, in full (p_amount_cents null) or in part, through
 * the outbox; the provider's confirmation (its refund webhook, or the refund in its API answer)
 * records the refund and its credit note, and the access rule of a full refund applies then.
 * Refused: an unknown or uncaptured payment, an amount above what is left to refund (counting
 * refunds recorded and refunds queued), a manual payment. Returns the action's id.
 */
create function billing.operator_refund(p_payment_event_id uuid, p_amount_cents bigint, p_reason text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_captured public.payment_events;
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
  select v_captured.amount_cents
         - coalesce((select sum(pe.amount_cents) from public.payment_events pe
                     where pe.provider = v_captured.provider and pe.provider_payment_id = v_captured.provider_payment_id
                       and pe.status = 'refunded'), 0)
         - coalesce((select sum((a.payload ->> 'amount_paise')::bigint) from billing.provider_actions a
                     where a.payment_event_id = v_captured.id and a.kind = 'refund' and a.state in ('pending', 'running')), 0)
  into v_left;
  v_amount := coalesce(p_amount_cents, v_left);
  if v_amount <= 0 or v_amount > v_left then
    raise exception 'refund of % paise: payment % has % paise left to refund', v_amount, v_captured.provider_payment_id, v_left
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
 * most a year), with history (actor 'operator'). Returns the new period end.
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
  update public.subscriptions s set current_period_end = s.current_period_end + p_interval,
         status = case when s.status = 'past_due' and s.current_period_end + p_interval > billing.now() then 'active'
                       else s.status end
  where s.id = v_sub.id
  returning s.current_period_end into v_end;
  perform billing.log_subscription_change(v_sub.organization_id, v_sub.id, 'period_extended', v_sub.plan_id, v_sub.plan_id,
    v_sub.status, (select s.status from public.subscriptions s where s.id = v_sub.id), 'operator',
    p_reason => v_reason,
    p_metadata => pg_catalog.jsonb_build_object('extended_by', p_interval::text, 'old_period_end', v_sub.current_period_end,
                                                'new_period_end', v_end));
  return v_end;
end;
$$;
revoke execute on function billing.operator_extend_period(uuid, interval, text) from public, anon, authenticated;
grant execute on function billing.operator_extend_period(uuid, interval, text) to service_role;

/**
 * Grants an organization a paid plan until p_until (a comp), without a payment: its live
 * subscription is switched to the plan for a period ending then, or a new one starts (provider
 * 'manual'). With history (actor 'operator'). Returns the subscription id.
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
  perform billing.log_subscription_change(p_organization_id, v_new.id, 'plan_granted', v_sub.plan_id, v_plan.id,
    v_sub.status, 'active', 'operator',
    p_reason => v_reason, p_metadata => pg_catalog.jsonb_build_object('until', p_until, 'plan_code', v_plan.code));
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
  update public.subscriptions s
  set status = v_status, cancel_at_period_end = v_at_end, canceled_at = v_now,
      ended_at = case when v_at_end then null else v_now end, pending_plan_id = null, pending_plan_effective_at = null
  where s.id = v_sub.id;
  perform billing.log_subscription_change(v_sub.organization_id, v_sub.id,
    case when v_at_end then 'cancel_scheduled' else 'canceled' end, v_sub.plan_id, v_sub.plan_id, v_sub.status, v_status,
    'operator', p_reason => v_reason);
  return v_status;
end;
$$;
revoke execute on function billing.operator_cancel(uuid, boolean, text) from public, anon, authenticated;
grant execute on function billing.operator_cancel(uuid, boolean, text) to service_role;

/**
 * Undoes a cancellation scheduled for the period end, while the period still runs, with history
 * (actor 'operator'). A Razorpay recurring subscription set to cancel at Razorpay is refused
 * (its mandate is being cancelled there: the customer subscribes again).
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
  if v_sub.provider = 'razorpay' and v_sub.provider_subscription_id is not null then
    raise exception 'Razorpay subscription % is being cancelled at Razorpay: the customer subscribes again through checkout',
      v_sub.provider_subscription_id using errcode = 'object_not_in_prerequisite_state';
  end if;
  update public.subscriptions s set cancel_at_period_end = false, canceled_at = null where s.id = v_sub.id;
  perform billing.log_subscription_change(v_sub.organization_id, v_sub.id, 'resumed', v_sub.plan_id, v_sub.plan_id,
    v_sub.status, v_sub.status, 'operator', p_reason => v_reason);
  return v_sub.status;
end;
$$;
revoke execute on function billing.operator_resume(uuid, text) from public, anon, authenticated;
grant execute on function billing.operator_resume(uuid, text) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Implementation of the public function (security definer; its wrapper is in section 5)
-- -------------------------------------------------------------------------------------------------

/**
 * The organization's provider actions that are pending, running or failed (what the provider has
 * not yet confirmed, and what it refused), newest first, for its owners and admins and
 * service_role. Security definer: billing.provider_actions is private; this shows a tenant only
 * its own rows, and only these columns.
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
    select a.id, a.provider, a.kind::text, a.state::text, a.attempts, a.next_attempt_at, a.last_error, a.reason,
           a.created_at, a.completed_at
    from billing.provider_actions a
    where a.organization_id = p_organization_id and a.state in ('pending', 'running', 'failed')
    order by a.created_at desc
    limit 200;
end;
$$;
revoke execute on function billing.get_provider_actions(uuid) from public, anon;
grant execute on function billing.get_provider_actions(uuid) to authenticated, service_role;


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


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

-- The provider-sync worker is an Edge Function; where pg_net exists it is scheduled with the other
-- HTTP workers (see billing.schedule_jobs).
