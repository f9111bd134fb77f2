-- =================================================================================================
-- supabill: money over time (an upgrade of the payments, money safety and provider actions modules)
--
--   * A debit of a provider subscription is a renewal. A later charge of a provider-managed
--     subscription whose first order is paid gets its own renewal order and GST invoice and
--     extends the period from its end, however long after checkout it comes (webhook or
--     reconciliation). The quote and expiry checks protect what a buyer was quoted at checkout
--     and never apply to a mandate debit. A charge of a provider subscription that no longer
--     backs a subscription here (an operator's grant or a plan change replaced it), or of a
--     cancelled subscription (now or at its period end, whenever the debit was made), buys
--     nothing and is refunded; a Razorpay subscription whose charges buy nothing and that backs
--     no live subscription is cancelled at Razorpay now.
--   * Nothing is paid back twice. billing.refundable_paise is what can still be refunded of a
--     captured payment: captured minus refunds recorded, lost disputes, refunds queued or
--     running at the outbox and refunds the provider holds as pending. Operators' refunds and the
--     automatic refund of a payment that bought nothing use it. A refund the provider reports is
--     recorded against the capture minus refunds recorded and lost disputes only (the money has
--     left: refunds still in flight do not make it a mismatch). A refund action whose outcome is
--     unknown (claimed, or retrying after a failed attempt) blocks a new refund of the same payment and keeps its money held; it is never failed by
--     retries running out, only by the provider's answer or an operator who looked
--     (billing.operator_resolve_refund).
--   * A refund is credited against the invoice of the payment it refunds; a payment that bought
--     nothing had no invoice, and its refund issues no credit note.
--   * Access never outlasts what was paid for. A full refund or a lost dispute takes away the
--     unused part of the span the payment bought (recorded with its history row), or of the
--     upgrade its unused value was credited into: later paid spans move up, and when nothing paid
--     is left access ends now; the next paid period then runs a full interval from the new end.
--     A span is taken back once (a refund, then a lost dispute of the same payment, take it
--     once), and a span a later plan change replaced is not taken back. An operator's grant
--     after the payment stands; an extension keeps its days, and the payment's unused span is
--     still taken back. A partial refund keeps the period.
--   * An operator's grant replaces the provider's mandate: a Razorpay subscription the grant
--     switches is cancelled at Razorpay now (through the outbox) and detached from the granted
--     subscription, so nothing is debited during or after the grant.
--   * Tenants never read an operator's free-text reason: public.get_provider_actions shows a
--     fixed text for actions an operator asked for.
--   * A failed refund's notification carries the refund (payment and amount), so its email
--     renders without a plan.
--
-- Sections, in order: 1. types; 2. tables; 3. private functions; 4. policies; 5. public
-- functions; 6. jobs and schedules.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

/** A refund the provider reports failed (Razorpay refund.failed): billing.apply_refund_failed. */
alter type billing.provider_event_kind add value if not exists 'refund_failed';


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- None.


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- What can still be refunded
-- -------------------------------------------------------------------------------------------------

/**
 * What can still be refunded of a captured payment, in paise (never below 0): the amount
 * captured minus
 *   refunds recorded (payment_events 'refunded' of the same provider payment),
 *   lost disputes (payment_events 'dispute_lost': the money went back by chargeback),
 *   refund actions of the payment not yet done (billing.provider_actions 'pending' or 'running'),
 *   refund actions the provider accepted as pending (succeeded, with the provider's refund id
 *   and a status other than 'processed'),
 * each only while its refund is not recorded (under the provider's refund id, or matched to the
 * action: payment_events details.action_id). A refund action whose outcome is unknown stays
 * pending (billing.complete_provider_action), so it counts until someone knows.
 * p_except_action_id leaves one refund action out: the one whose refund is being recorded.
 */
create function billing.refundable_paise(p_captured public.payment_events, p_except_action_id uuid default null)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_settled bigint;
  v_in_flight bigint;
begin
  if p_captured.id is null or p_captured.status is distinct from 'captured' then
    return 0;
  end if;
  select coalesce(sum(pe.amount_cents), 0) into v_settled
  from public.payment_events pe
  where pe.provider = p_captured.provider and pe.provider_payment_id = p_captured.provider_payment_id
    and pe.status in ('refunded', 'dispute_lost');
  select coalesce(sum((a.payload ->> 'amount_paise')::bigint), 0) into v_in_flight
  from billing.provider_actions a
  where a.payment_event_id = p_captured.id and a.kind = 'refund'
    and a.id is distinct from p_except_action_id
    and (a.state in ('pending', 'running')
         or (a.state = 'succeeded' and a.result ->> 'provider_refund_id' is not null
             and a.result ->> 'status' is distinct from 'processed'))
    -- Its refund recorded already (under the provider's id, or matched to the action): settled.
    -- (The payment's refund rows only: the provider payment index finds them.)
    and not exists (select 1 from public.payment_events r
                    where r.provider = p_captured.provider and r.provider_payment_id = p_captured.provider_payment_id
                      and r.status = 'refunded'
                      and (r.details ->> 'refund_id' = a.result ->> 'provider_refund_id'
                           or r.details ->> 'action_id' = a.id::text));
  return greatest(p_captured.amount_cents - v_settled - v_in_flight, 0);
end;
$$;
revoke execute on function billing.refundable_paise(public.payment_events, uuid) from public, anon, authenticated;
grant execute on function billing.refundable_paise(public.payment_events, uuid) to service_role;

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
create or replace function billing.complete_provider_action(
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
 * AFTER INSERT on payment_events: a captured payment recorded with needs_refund (it bought
 * nothing) queues its refund at the provider, once per payment, for what can still be refunded
 * (billing.refundable_paise; nothing when that is 0).
 */
create or replace function billing.queue_needs_refund()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_amount bigint := billing.refundable_paise(new);
begin
  if v_amount <= 0 then
    return null;
  end if;
  perform billing.queue_provider_action(
    new.organization_id, new.provider, 'refund',
    pg_catalog.jsonb_build_object('provider_payment_id', new.provider_payment_id,
                                  'order_ref', (select o.receipt from public.orders o where o.id = new.order_id)),
    pg_catalog.jsonb_build_object('amount_paise', v_amount, 'currency', new.currency,
                                  'refund_id', 'rf_' || pg_catalog.replace(new.id::text, '-', ''),
                                  'reason', coalesce(new.details ->> 'not_applied', 'the payment bought nothing')),
    pg_catalog.format('refund:%s', new.id),
    'system', coalesce(new.details ->> 'not_applied', 'the payment bought nothing'), null, new.id);
  return null;
end;
$$;
revoke execute on function billing.queue_needs_refund() from public;

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
create or replace function billing.operator_refund(p_payment_event_id uuid, p_amount_cents bigint, p_reason text)
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

-- -------------------------------------------------------------------------------------------------
-- A debit of a provider subscription is a renewal
-- -------------------------------------------------------------------------------------------------

/**
 * A Razorpay subscription whose charge bought nothing here (p_reason) is cancelled at Razorpay
 * now, through the outbox, when it backs no live subscription here (none, or a cancelled or
 * expired one: its debits would be refunded every month) and Razorpay has not ended it
 * (billing.provider_subscription_states). Queued once: nothing when a cancel-now of it is pending,
 * running or done; again when every earlier cancel-now failed for good. Returns the action's id,
 * or null when nothing was queued. Other providers have no mandate: nothing.
 */
create function billing.stop_unbacked_mandate(
  p_organization_id uuid,
  p_provider public.payment_provider,
  p_provider_subscription_id text,
  p_reason text,
  p_subscription_id uuid default null
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_failed integer;
begin
  if p_provider is distinct from 'razorpay' or p_provider_subscription_id is null
     or exists (select 1 from public.subscriptions s
                where s.provider = p_provider and s.provider_subscription_id = p_provider_subscription_id
                  and s.status in ('pending_payment', 'trialing', 'active', 'past_due'))
     or exists (select 1 from billing.provider_subscription_states st
                where st.provider = p_provider and st.provider_subscription_id = p_provider_subscription_id
                  and st.status in ('cancelled', 'completed', 'expired'))
     or exists (select 1 from billing.provider_actions a
                where a.provider = p_provider and a.kind = 'cancel'
                  and a.target ->> 'provider_subscription_id' = p_provider_subscription_id
                  and a.payload ->> 'at_cycle_end' = 'false' and a.state <> 'failed') then
    return null;
  end if;
  select count(*) into v_failed from billing.provider_actions a
  where a.provider = p_provider and a.kind = 'cancel'
    and a.target ->> 'provider_subscription_id' = p_provider_subscription_id
    and a.payload ->> 'at_cycle_end' = 'false' and a.state = 'failed';
  return billing.queue_provider_action(
    p_organization_id, p_provider, 'cancel',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_provider_subscription_id),
    pg_catalog.jsonb_build_object('at_cycle_end', false),
    pg_catalog.format('cancel:%s:now:unbacked:%s', p_provider_subscription_id, v_failed),
    'system', pg_catalog.format('its charges buy nothing here: %s', p_reason), p_subscription_id);
end;
$$;
revoke execute on function billing.stop_unbacked_mandate(uuid, public.payment_provider, text, text, uuid) from public, anon, authenticated;
grant execute on function billing.stop_unbacked_mandate(uuid, public.payment_provider, text, text, uuid) to service_role;

/**
 * Applies a captured payment to an order (locked by the caller): records payment_events
 * 'captured' once, marks the order paid, starts or extends the subscription
 * (billing.extend_subscription_for_payment) and issues the invoice.
 * A later charge of a provider subscription whose first order is paid (a mandate debit) is a
 * renewal, whenever it comes: it gets a renewal order of its own (so its own invoice) and extends
 * the subscription that provider subscription backs from its period end; no quote or expiry
 * check applies to it. It buys nothing when no subscription here is backed by that provider
 * subscription any more (an operator's grant or a plan change replaced it), or the subscription
 * was cancelled or expired here, or cancelled here at its period end, whenever the debit was
 * made (a debit made before a cancel and delivered after it, or made for a period the customer
 * chose not to have, is refunded: a debit only ever buys the next period, never a cancelled one;
 * when Razorpay itself ended its subscription, a debit made before that still counts), or the
 * subscription is on another plan than the mandate's (refunded and marked needs_review in its
 * details: a debit never changes the plan). The first charge of a provider subscription drops a
 * plan change scheduled on the subscription it attaches to (history 'pending_plan_cleared').
 * Any other payment buys nothing when its order's quote no longer held when it was paid
 * (billing.order_quote_problem), its subscription ended before it, or its one-time order was
 * already paid. A payment that buys nothing is only recorded, with needs_refund (result
 * 'recorded': nothing extended, no history, no invoice). A Razorpay subscription whose charge
 * bought nothing and that backs no live subscription here is cancelled at Razorpay now
 * (billing.stop_unbacked_mandate). Returns the result object.
 */
create or replace function billing.apply_captured_payment(p_order public.orders, p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_order public.orders := p_order;
  v_sub public.subscriptions;
  v_payment_event_id uuid;
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_psid text := coalesce(p_event ->> 'provider_subscription_id', p_order.provider_subscription_id);
  v_paid_at timestamptz := coalesce(p_event_at, billing.now());
  v_renewal boolean;
  v_ended boolean;
  v_problem text;
  v_review boolean := false;
  v_ended_by_provider boolean;
  v_documents record;
begin
  -- The same payment came another way first (webhook vs verify vs PayU return): nothing to do.
  if exists (select 1 from public.payment_events pe
             where pe.provider = v_order.provider and pe.provider_payment_id = v_payment_id and pe.status = 'captured') then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'payment already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;

  -- The subscription this payment is for, when the order names one (a provider subscription, an
  -- upgrade or renewal order): if it ended before the payment was made, the payment is recorded
  -- and nothing else happens (a late charge after a cancellation made here, an upgrade paid after
  -- the cancel). Payments made before the end (delivered late) still count.
  if v_psid is not null then
    select * into v_sub from public.subscriptions s
    where s.provider = v_order.provider and s.provider_subscription_id = v_psid
    for update;
  end if;
  if v_sub.id is null and v_order.subscription_id is not null and v_order.kind in ('upgrade', 'renewal') then
    select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id for update;
  end if;
  -- A later charge of a provider subscription whose first order is paid: a mandate debit.
  v_renewal := v_order.status = 'paid' and v_psid is not null;
  -- A mandate debit of a subscription cancelled here (now or at its period end: by its owner, an
  -- operator, the jobs, a refund) buys nothing, whenever it was made: it can only buy the next
  -- period, which was given up here. Razorpay's own end of its subscription (its cancelled or
  -- completed event) is part of the mandate's sequence: a debit made before it still counts, so
  -- events delivered in any order end in the same state. Any other payment counts when it was
  -- made before the subscription ended (delivered late).
  if v_renewal and v_sub.id is not null and (v_sub.status in ('canceled', 'expired') or v_sub.cancel_at_period_end) then
    select h.actor_kind = 'provider' and h.metadata ? 'provider_status' into v_ended_by_provider
    from public.subscription_history h
    where h.subscription_id = v_sub.id
      and (h.new_status in ('canceled', 'expired') or h.action in ('cancel_scheduled', 'completed'))
    order by h.effective_at desc, h.created_at desc
    limit 1;
  end if;
  v_ended := v_sub.id is not null
             and ((v_renewal and not coalesce(v_ended_by_provider, false)
                   and (v_sub.status in ('canceled', 'expired') or v_sub.cancel_at_period_end))
                  or (v_sub.status in ('canceled', 'expired')
                      and v_paid_at > coalesce(v_sub.ended_at, v_sub.canceled_at, '-infinity'::timestamptz)));

  if v_ended and v_sub.status not in ('canceled', 'expired') then
    v_problem := pg_catalog.format('debit of %s subscription %s, cancelled at its period end (%s): refund',
                                   v_order.provider, v_psid, v_sub.current_period_end);
  elsif v_ended then
    v_problem := pg_catalog.format('payment for an ended subscription (%s since %s): refund or reactivate',
                                   v_sub.status, coalesce(v_sub.ended_at, v_sub.canceled_at));
  elsif v_renewal and v_sub.id is null then
    v_problem := pg_catalog.format('charge of %s subscription %s, which no longer backs a subscription here (replaced by a grant or a plan change): refund',
                                   v_order.provider, v_psid);
  elsif v_renewal and v_sub.plan_id is distinct from v_order.plan_id then
    -- The mandate pays for another plan than the subscription is on (a plan change made outside
    -- the mandate): a debit never changes the plan by itself.
    v_review := true;
    v_problem := pg_catalog.format('debit of %s subscription %s for plan %s, but the subscription is on plan %s: refunded; needs review (cancel the mandate, or move the subscription to its plan)',
                                   v_order.provider, v_psid,
                                   (select p.code from public.billing_plans p where p.id = v_order.plan_id),
                                   (select p.code from public.billing_plans p where p.id = v_sub.plan_id));
  elsif not v_renewal then
    -- A payment buys what was quoted only while the quote holds (superseded, canceled, expired,
    -- or an upgrade whose subscription moved on): recorded for refund, never applied.
    v_problem := billing.order_quote_problem(v_order, v_paid_at);
  end if;

  -- A mandate debit that buys the next period: its own renewal order.
  if v_problem is null and v_renewal then
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, provider_subscription_id, kind,
       amount_cents, currency, status, metadata)
    values
      (v_order.organization_id, v_order.plan_id, v_sub.id, v_order.provider, v_psid, 'renewal',
       v_order.amount_cents, v_order.currency, 'pending',
       pg_catalog.jsonb_build_object('first_order_id', v_order.id, 'provider_payment_id', v_payment_id))
    returning * into v_order;
  end if;

  v_payment_event_id := billing.record_payment_event(
    v_order.organization_id, v_order.id, v_order.provider, v_payment_id, (p_event ->> 'amount_paise')::bigint,
    p_event ->> 'currency', 'captured', p_event ->> 'method', null,
    pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                  'provider_order_id', p_event ->> 'provider_order_id',
                                  'provider_subscription_id', v_psid)
      || case when v_ended and v_sub.status in ('canceled', 'expired')
                   and v_paid_at > coalesce(v_sub.ended_at, v_sub.canceled_at, '-infinity'::timestamptz)
              then pg_catalog.jsonb_build_object('not_applied', 'subscription ended before the payment')
              when v_problem is not null then pg_catalog.jsonb_build_object('not_applied', v_problem)
              else '{}'::jsonb end
      || case when v_review then pg_catalog.jsonb_build_object('needs_review', true) else '{}'::jsonb end,
    v_paid_at,
    v_problem is not null or v_order.status = 'paid');
  if v_problem is not null then
    perform billing.stop_unbacked_mandate(v_order.organization_id, v_order.provider, v_psid, v_problem, v_sub.id);
    return pg_catalog.jsonb_build_object(
      'result', 'recorded', 'reason', v_problem, 'needs_refund', true,
      'payment_event_id', v_payment_event_id, 'order_id', v_order.id, 'order_status', v_order.status,
      'subscription_id', v_sub.id, 'subscription_status', v_sub.status, 'current_period_end', v_sub.current_period_end);
  end if;
  if v_payment_event_id is null then
    -- Unreachable while callers hold the order lock; kept as the last guard.
    raise exception 'payment % was recorded concurrently', v_payment_id using errcode = 'serialization_failure';
  end if;
  if v_order.status = 'paid' then
    -- A second payment for a one-time order that is already paid: recorded, nothing extended.
    return pg_catalog.jsonb_build_object('result', 'recorded', 'reason', 'order already paid: refund the extra payment',
                                         'needs_refund', true, 'payment_event_id', v_payment_event_id);
  end if;

  v_sub := billing.extend_subscription_for_payment(v_order, v_psid, p_event, v_payment_event_id);
  -- The first charge of a provider subscription starts autopay of its plan: a plan change
  -- scheduled before (a downgrade) is dropped, as the mandate keeps debiting this plan; the
  -- customer changes plan through the mandate from now on (cancel and resubscribe).
  if not v_renewal and v_psid is not null and v_sub.pending_plan_id is not null
     and v_sub.provider_subscription_id = v_psid then
    perform billing.set_change_context('pending_plan_cleared', 'provider',
      p_reason => pg_catalog.format('autopay of this plan started (%s subscription %s): the scheduled change is dropped',
                                    v_order.provider, v_psid),
      p_metadata => pg_catalog.jsonb_build_object('dropped_plan_id', v_sub.pending_plan_id,
                                                  'dropped_effective_at', v_sub.pending_plan_effective_at,
                                                  'payment_event_id', v_payment_event_id, 'order_id', v_order.id));
    update public.subscriptions s set pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id
    returning * into v_sub;
  end if;
  update public.orders o
  set status = 'paid', paid_at = billing.now(), subscription_id = v_sub.id,
      provider_subscription_id = case when o.kind = 'new' and o.provider_subscription_id is null
                                      then v_psid else o.provider_subscription_id end
  where o.id = v_order.id
  returning * into v_order;
  select * into v_documents from billing.issue_documents(v_order.id, v_payment_event_id) d;

  return pg_catalog.jsonb_build_object(
    'result', 'applied', 'order_id', v_order.id, 'order_status', v_order.status,
    'payment_event_id', v_payment_event_id, 'subscription_id', v_sub.id, 'subscription_status', v_sub.status,
    'current_period_end', v_sub.current_period_end, 'invoice_id', v_documents.invoice_id,
    'invoice_error', v_documents.error);
end;
$$;
revoke execute on function billing.apply_captured_payment(public.orders, jsonb, timestamptz) from public;
grant execute on function billing.apply_captured_payment(public.orders, jsonb, timestamptz) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Refunds and disputes: what the current period stands on
-- -------------------------------------------------------------------------------------------------

/**
 * The period end of subscription p_subscription_id once what captured payment p_payment_event_id
 * bought is taken away (its full refund, or a lost dispute); null when nothing changes. A value
 * at or before now means nothing paid is left: access ends now.
 * What a payment bought is its span, [period_start, period_end) of the history row its
 * application wrote (billing.extend_subscription_for_payment: metadata payment_event_id,
 * period_start, period_end). The part of the span not yet used, from the later of its start and
 * now to its end, is taken off the current period end, so the spans after it (other payments)
 * move up: a span wholly in the future shortens the period by its length (an unused early
 * renewal), the current span ends access now when it is the last one and otherwise lets the
 * next paid span start now, a span already used changes nothing (unless it is the last one and
 * the period is over: access ends now). A payment whose unused value was credited into an
 * upgrade (an upgrade order whose quote credited unused time: the payment applied before it)
 * bought that upgrade's span, directly or through a chain of upgrades.
 * A span is taken back at most once: nothing changes when a take-back (a history row 'refunded'
 * or 'dispute_lost' with metadata period_end_before, written by billing.end_paid_period) already
 * names this payment or the payment carrying its value (metadata payment_event_id,
 * span_payment_event_id), so a lost dispute after a full refund of the same payment takes nothing
 * more. A span that a later plan change replaced (a 'plan_changed' span row whose period_start
 * falls inside it and is not its end: the new plan's period started then) is no longer in the
 * current period: nothing to take back.
 * Nothing changes when an operator granted a plan after the payment ('plan_granted'): the period
 * stands on the grant, not on any payment. An operator's extension after the payment keeps its
 * own days (they are part of the current period end the unused span is taken off), and the
 * payment's unused span is still taken back. A payment with no span (it bought nothing, or was
 * applied before spans were recorded) ends access now only when it is the latest payment applied
 * to the subscription.
 */
create function billing.period_end_without(p_subscription_id uuid, p_payment_event_id uuid)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_payment public.payment_events;
  v_next public.payment_events;
  v_next_order public.orders;
  v_span public.subscription_history;
  v_start timestamptz;
  v_end timestamptz;
begin
  select * into v_sub from public.subscriptions s where s.id = p_subscription_id;
  select * into v_payment from public.payment_events pe
  where pe.id = p_payment_event_id and pe.status = 'captured' and not pe.needs_refund;
  if v_sub.id is null or v_payment.id is null then
    return null;
  end if;
  -- The payment carrying its value: itself, or the upgrade its unused value was credited into.
  loop
    select pe.* into v_next from public.payment_events pe
    join public.orders o on o.id = pe.order_id
    where o.subscription_id = p_subscription_id and pe.status = 'captured' and not pe.needs_refund
      and (pe.occurred_at, pe.created_at) > (v_payment.occurred_at, v_payment.created_at)
    order by pe.occurred_at, pe.created_at
    limit 1;
    exit when v_next.id is null;
    select * into v_next_order from public.orders o where o.id = v_next.order_id;
    exit when v_next_order.kind is distinct from 'upgrade'
              or coalesce((v_next_order.metadata #>> '{quote,unused_cents}')::bigint, 0) <= 0;
    v_payment := v_next;
  end loop;

  select h.* into v_span from public.subscription_history h
  where h.subscription_id = p_subscription_id and h.metadata ->> 'payment_event_id' = v_payment.id::text
    and h.metadata ? 'period_start' and h.metadata ? 'period_end'
  order by h.effective_at desc, h.created_at desc
  limit 1;
  -- Taken back already (a full refund, then a lost dispute of the same payment): at most once.
  if exists (select 1 from public.subscription_history h
             where h.subscription_id = p_subscription_id and h.action in ('refunded', 'dispute_lost')
               and h.metadata ? 'period_end_before'
               and (h.metadata ->> 'payment_event_id' in (p_payment_event_id::text, v_payment.id::text)
                    or h.metadata ->> 'span_payment_event_id' = v_payment.id::text)) then
    return null;
  end if;
  -- An operator's grant after the payment: the period stands on the grant, not on a payment. (An
  -- extension keeps its days: the unused span is taken off the extended end below.)
  if exists (select 1 from public.subscription_history h
             where h.subscription_id = p_subscription_id and h.actor_kind = 'operator'
               and h.action = 'plan_granted'
               and h.effective_at >= coalesce(v_span.effective_at, v_payment.occurred_at)) then
    return null;
  end if;
  if v_span.id is null then
    return case when v_next.id is null then v_now end;
  end if;
  v_start := (v_span.metadata ->> 'period_start')::timestamptz;
  v_end := (v_span.metadata ->> 'period_end')::timestamptz;
  -- Replaced by a later plan change that started inside the span: no longer in the current period.
  if exists (select 1 from public.subscription_history h
             where h.subscription_id = p_subscription_id and h.action = 'plan_changed'
               and h.metadata ? 'period_start'
               and (h.effective_at, h.created_at) > (v_span.effective_at, v_span.created_at)
               and (h.metadata ->> 'period_start')::timestamptz >= v_start
               and (h.metadata ->> 'period_start')::timestamptz < v_end) then
    return null;
  end if;
  if v_end <= v_now then
    -- Used up already: it matters only when nothing was paid after it (the period is over).
    return case when v_end >= v_sub.current_period_end then v_now end;
  end if;
  return v_sub.current_period_end - (v_end - greatest(v_start, v_now));
end;
$$;
revoke execute on function billing.period_end_without(uuid, uuid) from public, anon, authenticated;
grant execute on function billing.period_end_without(uuid, uuid) to service_role;

/**
 * Takes away what p_captured (a captured payment, refunded in full or charged back) bought from
 * the live subscription it was applied to (billing.period_end_without): when nothing paid is
 * left the subscription is canceled now (the free plan applies), with a history row (the
 * trigger's: actor 'provider', p_action, p_reason) and a notification of kind p_notification,
 * once per payment; when other payments' spans remain, its current_period_end moves back by the
 * unused part of the payment's span (history p_action, metadata period_end_before) and the run
 * of periods starts again at the new end (period_anchor), so the next paid period is a full one.
 * The take-back's history row names the payment (payment_event_id) and the payment whose span it
 * took (span_payment_event_id: itself, or the upgrade its value was credited into), so it is
 * taken back at most once. Returns the subscription changed, or null when nothing changed (a
 * span already used or already taken back, an operator's grant after the payment, a
 * subscription already over).
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
  v_end timestamptz;
  v_span_payment public.payment_events;
  v_next public.payment_events;
begin
  select s.* into v_sub from public.subscriptions s
  join public.orders o on o.subscription_id = s.id
  where o.id = p_captured.order_id and s.status in ('trialing', 'active', 'past_due')
  for update of s;
  if v_sub.id is null then
    return null;
  end if;
  v_end := billing.period_end_without(v_sub.id, p_captured.id);
  if v_end is null or v_end >= v_sub.current_period_end then
    return null;
  end if;
  -- The payment whose span is taken (the chain billing.period_end_without walks): itself, or the
  -- upgrade its unused value was credited into. Recorded, so the span is taken back once.
  v_span_payment := p_captured;
  loop
    select pe.* into v_next from public.payment_events pe
    join public.orders o on o.id = pe.order_id
    where o.subscription_id = v_sub.id and pe.status = 'captured' and not pe.needs_refund
      and (pe.occurred_at, pe.created_at) > (v_span_payment.occurred_at, v_span_payment.created_at)
    order by pe.occurred_at, pe.created_at
    limit 1;
    exit when v_next.id is null
              or not exists (select 1 from public.orders o where o.id = v_next.order_id and o.kind = 'upgrade'
                               and coalesce((o.metadata #>> '{quote,unused_cents}')::bigint, 0) > 0);
    v_span_payment := v_next;
  end loop;

  perform billing.set_change_context(p_action, 'provider',
    p_reason => p_reason,
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                                'payment_event_id', p_captured.id,
                                                'span_payment_event_id', v_span_payment.id,
                                                'period_end_before', v_sub.current_period_end),
    p_effective_at => v_now);
  if v_end > v_now then
    -- Other payments' spans remain: the period is shorter by what this payment had left, and the
    -- next paid period runs a full interval from the new end (a new anchor).
    update public.subscriptions s set current_period_end = v_end, period_anchor = v_end where s.id = v_sub.id;
    return v_sub.id;
  end if;
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
revoke execute on function billing.end_paid_period(public.payment_events, text, text, text, jsonb) from public;
grant execute on function billing.end_paid_period(public.payment_events, text, text, text, jsonb) to service_role;

/**
 * Refunds are matched through the payment they refund: a refund of a captured payment is
 * recorded once per refund id and once per refund action of ours (billing.refund_action_for:
 * the same refund under our token and under the provider's id is one refund) ('refunded',
 * details.action_id), with its credit note against the invoice of that
 * payment's order (a payment that bought nothing had no invoice: no credit note). One that does
 * not fit is a 'mismatch', recorded for an operator and never credited: no amount, another
 * currency, or more than is left of the capture once refunds recorded and lost disputes are
 * taken off. Refunds still in flight (queued, running or pending at the provider) do not count
 * here: the provider reports money that has left, so it is recorded, whichever action of ours
 * held it (billing.refundable_paise, which counts them, is what an operator may still queue). A
 * full refund of the payment
 * takes away what that payment bought (billing.end_paid_period, when
 * billing_settings.full_refund_ends_period); a partial refund keeps it. Returns the result
 * object; `last_error` says what was not applied.
 */
create or replace function billing.apply_refund(p_event jsonb, p_event_at timestamptz)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_amount bigint := (p_event ->> 'amount_paise')::bigint;
  v_currency text := p_event ->> 'currency';
  v_refund_id text := coalesce(p_event ->> 'provider_refund_id', p_event ->> 'event_id');
  v_captured public.payment_events;
  v_order public.orders;
  v_refunded bigint;
  v_lost bigint;
  v_left bigint;
  v_error text;
  v_payment_event_id uuid;
  v_documents record;
  v_ended_subscription_id uuid;
  v_action_id uuid;
begin
  select * into v_captured from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'captured'
  order by pe.created_at
  limit 1;
  if v_captured.id is null then
    v_error := pg_catalog.format('unknown payment %s for refund %s', coalesce(v_payment_id, '(none)'),
                                 coalesce(p_event ->> 'provider_refund_id', '(none)'));
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error, 'last_error', v_error);
  end if;

  select * into v_order from public.orders o where o.id = v_captured.order_id for update;
  select coalesce(sum(pe.amount_cents), 0) into v_refunded from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'refunded';
  select coalesce(sum(pe.amount_cents), 0) into v_lost from public.payment_events pe
  where pe.provider = v_provider and pe.provider_payment_id = v_payment_id and pe.status = 'dispute_lost';
  -- One refund of ours is one refund, whatever id it comes under (PayU: our token when provider-sync
  -- got no request id, the request id when reconcile lists it).
  v_action_id := billing.refund_action_for(v_captured, p_event);
  if exists (select 1 from public.payment_events pe
             where pe.provider = v_provider and pe.status = 'refunded'
               and (pe.details ->> 'refund_id' = v_refund_id
                    or (v_action_id is not null and pe.provider_payment_id = v_payment_id
                        and pe.details ->> 'action_id' = v_action_id::text))) then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;

  -- What the provider can still have refunded: refunds recorded and lost disputes only (money in
  -- flight at the provider is not gone until it reports it: this report is that).
  v_left := greatest(v_captured.amount_cents - v_refunded - v_lost, 0);
  if v_amount is null or v_amount = 0 or v_currency is distinct from v_captured.currency then
    v_error := pg_catalog.format('refund %s: amount %s %s does not fit payment %s (%s %s)', v_refund_id,
                                 coalesce(v_amount::text, 'null'), coalesce(v_currency, 'null'),
                                 v_payment_id, v_captured.amount_cents, v_captured.currency);
  elsif v_refunded + v_amount > v_captured.amount_cents then
    v_error := pg_catalog.format('refund %s: refunds of payment %s would reach %s, above the %s captured', v_refund_id,
                                 v_payment_id, v_refunded + v_amount, v_captured.amount_cents);
  elsif v_amount > v_left then
    v_error := pg_catalog.format('refund %s of %s paise: payment %s has %s paise left once refunds recorded and lost disputes are taken off',
                                 v_refund_id, v_amount, v_payment_id, v_left);
  end if;
  if v_error is not null then
    -- Recorded for the operator, never credited: no refund row (it would count against the
    -- captured amount), no credit note.
    v_payment_event_id := billing.record_payment_event(
      v_captured.organization_id, v_captured.order_id, v_provider, v_payment_id, coalesce(v_amount, 0),
      coalesce(v_currency, v_captured.currency), 'mismatch', null, v_error,
      pg_catalog.jsonb_build_object('refund_id', v_refund_id, 'event_id', p_event ->> 'event_id',
                                    'event_type', p_event ->> 'event_type',
                                    'captured_payment_event_id', v_captured.id, 'refunded_before', v_refunded),
      p_event_at);
    if v_payment_event_id is null then
      -- This refund id is already in the ledger (a mismatch is recorded once, by its refund id).
      return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                           'order_id', v_order.id, 'order_status', v_order.status);
    end if;
    return pg_catalog.jsonb_build_object('result', 'mismatch', 'reason', v_error, 'last_error', v_error,
                                         'order_id', v_order.id, 'order_status', v_order.status,
                                         'payment_event_id', v_payment_event_id);
  end if;

  v_payment_event_id := billing.record_payment_event(
    v_captured.organization_id, v_captured.order_id, v_provider, v_payment_id, v_amount, v_currency, 'refunded',
    null, null,
    pg_catalog.jsonb_build_object('refund_id', v_refund_id, 'event_id', p_event ->> 'event_id',
                                  'captured_payment_event_id', v_captured.id, 'action_id', v_action_id),
    p_event_at);
  if v_payment_event_id is null then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'refund already recorded',
                                         'order_id', v_order.id, 'order_status', v_order.status);
  end if;
  -- The credit note goes against the invoice of the payment refunded. A payment that bought
  -- nothing (needs_refund) has none: its order's invoice, if any, is another payment's.
  if not v_captured.needs_refund then
    select * into v_documents
    from billing.issue_documents(v_captured.order_id, v_captured.id, v_amount,
                                 pg_catalog.format('%s refund %s', v_provider, v_refund_id), v_payment_event_id) d;
  end if;
  -- A full refund takes away what the payment bought (billing.end_paid_period).
  if v_refunded + v_amount = v_captured.amount_cents
     and coalesce((select s.full_refund_ends_period from public.billing_settings s where s.id), true) then
    v_ended_subscription_id := billing.end_paid_period(
      v_captured, 'refunded', pg_catalog.format('payment %s refunded in full (%s)', v_payment_id, v_refund_id),
      'subscription_refunded', p_event);
  end if;
  return pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id,
                                       'invoice_id', v_documents.invoice_id, 'credit_note_id', v_documents.credit_note_id,
                                       'order_id', v_order.id, 'order_status', v_order.status,
                                       'subscription_id', v_ended_subscription_id,
                                       'last_error', v_documents.error);
end;
$$;
revoke execute on function billing.apply_refund(jsonb, timestamptz) from public;
grant execute on function billing.apply_refund(jsonb, timestamptz) to service_role;

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

/**
 * THE entry point for provider events (service_role only), as in the money safety module, now
 * also dispatching a refund the provider reports failed (refund_failed:
 * billing.apply_refund_failed).
 */
create or replace function billing.apply_payment_event(p_event jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_provider public.payment_provider;
  v_event_at timestamptz;
  v_webhook_id uuid;
  v_order public.orders;
  v_result jsonb;
begin
  perform billing.validate_payment_event(p_event);
  v_provider := (p_event ->> 'provider')::public.payment_provider;
  v_event_at := coalesce((p_event ->> 'occurred_at')::timestamptz, v_now);

  -- Record the delivery once, already marked processed: it is applied in this transaction, so
  -- nobody ever sees it unprocessed (a failure rolls the record back with the rest, and the
  -- provider's retry starts again); later steps only add last_error. A duplicate (also a
  -- concurrent one, which waits here for the first to commit) is acknowledged without effect.
  insert into billing.webhook_events (provider, event_id, event_type, payload, received_at, processed_at, attempts)
  values (v_provider, p_event ->> 'event_id', p_event ->> 'event_type', p_event, v_now, v_now, 1)
  on conflict (provider, event_id) do nothing
  returning id into v_webhook_id;
  if v_webhook_id is null then
    update billing.webhook_events w set attempts = w.attempts + 1
    where w.provider = v_provider and w.event_id = p_event ->> 'event_id'
    returning w.id into v_webhook_id;
    v_order := billing.match_order(p_event);
    return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'result', 'duplicate', 'webhook_event_id', v_webhook_id, 'reason', 'event already received',
      'order_id', v_order.id, 'order_status', v_order.status));
  end if;

  v_result := case p_event ->> 'kind'
    when 'other' then pg_catalog.jsonb_build_object(
      'result', 'ignored', 'reason', pg_catalog.format('event type %s is not handled', p_event ->> 'event_type'))
    when 'refund_processed' then billing.apply_refund(p_event, v_event_at)
    when 'refund_failed' then billing.apply_refund_failed(p_event, v_event_at)
    when 'dispute_opened' then billing.apply_dispute(p_event, v_event_at)
    when 'dispute_won' then billing.apply_dispute(p_event, v_event_at)
    when 'dispute_lost' then billing.apply_dispute(p_event, v_event_at)
    else billing.apply_order_event(p_event, v_event_at)
  end;

  update billing.webhook_events w set last_error = v_result ->> 'last_error'
  where w.id = v_webhook_id and v_result ->> 'last_error' is not null;
  return pg_catalog.jsonb_strip_nulls((v_result - 'last_error')
                                      || pg_catalog.jsonb_build_object('webhook_event_id', v_webhook_id));
end;
$$;
revoke execute on function billing.apply_payment_event(jsonb) from public, anon, authenticated;
grant execute on function billing.apply_payment_event(jsonb) to service_role;

-- -------------------------------------------------------------------------------------------------
-- Operators' grants replace the provider's mandate
-- -------------------------------------------------------------------------------------------------

/**
 * Grants an organization a paid plan until p_until (a comp), without a payment: its live
 * subscription is switched to the plan for a period ending then, or a new one starts (provider
 * 'manual'). A live subscription backed by a Razorpay mandate is detached from it (provider
 * 'manual', no provider subscription id) and the mandate is cancelled at Razorpay now through
 * the outbox, so the customer is not debited during or after the grant (a debit that still comes
 * buys nothing and is refunded); after the grant the customer subscribes again through checkout.
 * With history (actor 'operator'). Returns the subscription id.
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
  v_mandate := v_sub.provider = 'razorpay' and v_sub.provider_subscription_id is not null;
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

-- -------------------------------------------------------------------------------------------------
-- What tenants and their emails see
-- -------------------------------------------------------------------------------------------------

/**
 * The organization's provider actions that are pending, running or failed (what the provider has
 * not yet confirmed, and what it refused), newest first, for its owners and admins and
 * service_role. reason is why the system queued the action; for an action an operator asked
 * for it is the fixed text 'requested by an operator' (the operator's own words stay private).
 * Security definer: billing.provider_actions is private; this shows a tenant only its own rows,
 * and only these columns.
 */
create or replace function billing.get_provider_actions(p_organization_id uuid)
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
 * What a template needs besides the payload, as one object:
 *   organization {id, name, billing_name, timezone}, seller_legal_name, app_success_url,
 *   plan {id, code, name, interval} (the payload's new_plan_id, plan_id or plan_code, else the
 *   subscription's plan), old_plan {code, name} (plan_downgraded),
 *   amount_cents and currency: for a payment_failed, payment_disputed or payment_captured the
 *   payload's amount (what the payment was); for a provider_action_failed of a refund the
 *   refund's amount (the action's payload); else the plan's price as payable, GST included the
 *   way an order of it would be (billing.order_tax_quote; a provider subscription's price
 *   includes tax; the reminders' payload amount_cents is the plan's price before tax),
 *   refund {provider_payment_id, amount_cents, currency} for a provider_action_failed of a refund,
 *   subscription {id, status, current_period_end, cancel_at_period_end, provider,
 *   provider_subscription_id}.
 * Null for an unknown notification. service_role only.
 */
create or replace function billing.notification_context(p_notification_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_note public.notifications;
  v_org public.organizations;
  v_sub public.subscriptions;
  v_plan public.billing_plans;
  v_old public.billing_plans;
  v_settings public.billing_settings;
  v_action billing.provider_actions;
  v_amount bigint;
  v_currency text;
begin
  select * into v_note from public.notifications n where n.id = p_notification_id;
  if not found then
    return null;
  end if;
  select * into v_org from public.organizations o where o.id = v_note.organization_id;
  select * into v_sub from public.subscriptions s where s.id = v_note.subscription_id;
  select * into v_settings from public.billing_settings s limit 1;
  select * into v_plan from public.billing_plans p
  where p.id = coalesce(billing.jsonb_uuid(v_note.payload ->> 'new_plan_id'),
                        billing.jsonb_uuid(v_note.payload ->> 'plan_id'),
                        (select x.id from public.billing_plans x where x.code = v_note.payload ->> 'plan_code'),
                        v_sub.plan_id);
  select * into v_old from public.billing_plans p where p.id = billing.jsonb_uuid(v_note.payload ->> 'old_plan_id');
  if v_note.kind = 'provider_action_failed' and v_note.payload ->> 'kind' = 'refund' then
    select * into v_action from billing.provider_actions a
    where a.id = billing.jsonb_uuid(v_note.payload ->> 'provider_action_id');
  end if;

  if v_note.kind in ('payment_failed', 'payment_disputed', 'payment_captured') and v_note.payload ->> 'amount_cents' ~ '^[0-9]{1,15}$' then
    v_amount := (v_note.payload ->> 'amount_cents')::bigint;
    v_currency := coalesce(v_note.payload ->> 'currency', v_plan.currency, 'INR');
  elsif v_action.id is not null and v_action.payload ->> 'amount_paise' ~ '^[0-9]{1,15}$' then
    v_amount := (v_action.payload ->> 'amount_paise')::bigint;
    v_currency := coalesce(v_action.payload ->> 'currency', 'INR');
  elsif v_plan.id is not null then
    select q.amount_cents into v_amount
    from billing.order_tax_quote(v_org.id, v_plan.price_cents,
                                 coalesce(v_settings.prices_include_tax, false)
                                 or v_sub.provider_subscription_id is not null, v_plan.currency) q;
    v_currency := v_plan.currency;
  end if;

  return pg_catalog.jsonb_build_object(
    'organization', pg_catalog.jsonb_build_object('id', v_org.id, 'name', v_org.name,
                                                  'billing_name', v_org.billing_name, 'timezone', v_org.timezone),
    'seller_legal_name', v_settings.seller_legal_name,
    'app_success_url', v_settings.app_success_url,
    'plan', case when v_plan.id is not null then pg_catalog.jsonb_build_object(
              'id', v_plan.id, 'code', v_plan.code, 'name', v_plan.name, 'interval', v_plan.interval) end,
    'old_plan', case when v_old.id is not null then pg_catalog.jsonb_build_object(
              'code', v_old.code, 'name', v_old.name) end,
    'amount_cents', v_amount,
    'currency', v_currency,
    'refund', case when v_action.id is not null then pg_catalog.jsonb_build_object(
              'provider_payment_id', v_action.target ->> 'provider_payment_id',
              'amount_cents', v_amount, 'currency', v_currency) end,
    'subscription', case when v_sub.id is not null then pg_catalog.jsonb_build_object(
              'id', v_sub.id, 'status', v_sub.status, 'current_period_end', v_sub.current_period_end,
              'cancel_at_period_end', v_sub.cancel_at_period_end, 'provider', v_sub.provider,
              'provider_subscription_id', v_sub.provider_subscription_id) end);
end;
$$;
revoke execute on function billing.notification_context(uuid) from public, anon, authenticated;
grant execute on function billing.notification_context(uuid) to service_role;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None new.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None new: public.get_provider_actions keeps its signature; billing.get_provider_actions above
-- does the work.


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

-- None new.
