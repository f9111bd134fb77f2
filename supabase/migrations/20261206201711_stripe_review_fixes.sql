-- What this migration does: fixes from the review of Stripe as the third provider.
--   * billing.follow_provider_subscription: a provider's cancel_at_period_end still set is set
--     again on ours when the event's payment or status turn cleared it (a flag set in Stripe's
--     portal while past due was lost when the retried renewal was paid).
--   * billing.record_amount_mismatch takes the amount expected (apply_order_event passes
--     billing.mandate_debit_amount for a renewal), so a renewal's mismatch names what the
--     renewal should have cost, not the first order's amount.
--   * billing.apply_order_event: a captured payment already recorded is a duplicate before the
--     amount check (a discounted first payment delivered again as checkout.session.completed
--     after invoice.paid was recorded as a false mismatch).
--   * billing.stop_unbacked_mandate: any provider subscription whose charge bought nothing and
--     that backs nothing here is cancelled at its provider (Stripe's too, not only Razorpay's).
--   * billing.match_order: an upgrade order named on a provider subscription's invoice matches
--     only when it upgrades the subscription that provider subscription backs.
--   * billing.apply_refund: the refund of a payment that bought nothing (needs_refund) is
--     recorded (it read an unassigned record and failed, so the refund the provider made was
--     never recorded and its action retried until it failed).
-- stripe_review_fixes: drafted by `npm run db:diff -- stripe_review_fixes` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.

SET local check_function_bodies = off;

DROP FUNCTION "billing"."record_amount_mismatch"(public.orders, jsonb, timestamp WITH time zone);

CREATE OR REPLACE FUNCTION billing.apply_order_event (
  p_event    jsonb,
  p_event_at timestamp with time zone
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_kind text := p_event ->> 'kind';
  v_psid text := p_event ->> 'provider_subscription_id';
  v_status text;
  v_order public.orders;
  v_sub public.subscriptions;
  v_result jsonb;
  v_error text;
  v_expected bigint;
begin
  v_order := billing.match_order(p_event);
  if v_order.id is null then
    v_error := pg_catalog.format('no order matches %s event %s (order_ref %s, provider order %s, subscription %s)',
                                 p_event ->> 'provider', p_event ->> 'event_id', coalesce(p_event ->> 'order_ref', '-'),
                                 coalesce(p_event ->> 'provider_order_id', '-'), coalesce(v_psid, '-'));
    return pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error, 'last_error', v_error);
  end if;
  select * into v_order from public.orders o where o.id = v_order.id for update;
  perform 1 from public.organizations o where o.id = v_order.organization_id for no key update;
  v_psid := coalesce(v_psid, v_order.provider_subscription_id);

  if v_kind in ('payment_captured', 'payment_failed', 'payment_authorized') and p_event ->> 'provider_payment_id' is null then
    v_error := pg_catalog.format('%s event %s names no payment', p_event ->> 'provider', p_event ->> 'event_id');
    v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);
  elsif v_kind = 'payment_captured'
        and exists (select 1 from public.payment_events pe
                    where pe.provider = v_order.provider and pe.provider_payment_id = p_event ->> 'provider_payment_id'
                      and pe.status = 'captured') then
    -- The same payment came another way first (Stripe's invoice.paid before the
    -- checkout.session.completed of a subscription's first payment): a duplicate, before the
    -- amount check, which would take the order, now paid, for a renewal's and call a discounted
    -- first payment a mismatch.
    v_result := pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'payment already recorded');
  elsif v_kind = 'payment_captured' then
    -- A later debit of a paid provider subscription (a renewal) is for what the next period
    -- costs (billing.mandate_debit_amount: a repeating discount runs out); anything else for
    -- the order's amount.
    v_expected := case when v_order.status = 'paid' and v_psid is not null
                       then (billing.mandate_debit_amount(v_order)).amount_cents else v_order.amount_cents end;
    if (p_event ->> 'amount_paise')::bigint is distinct from v_expected
       or p_event ->> 'currency' is distinct from v_order.currency then
      v_result := billing.record_amount_mismatch(v_order, p_event, p_event_at, v_expected);
    else
      v_status := case when v_psid is not null then p_event ->> 'subscription_status' end;
      v_result := billing.apply_captured_payment(v_order, p_event || pg_catalog.jsonb_build_object(
                    'provider_subscription_id', v_psid), p_event_at);
      v_error := coalesce(v_result ->> 'invoice_error',
                          case when v_result ->> 'result' = 'recorded' then v_result ->> 'reason' end);
    end if;
  elsif v_kind = 'payment_failed' then
    v_result := billing.apply_payment_failure(v_order, p_event, p_event_at);
  elsif v_kind = 'payment_authorized' then
    v_result := pg_catalog.jsonb_build_object('payment_event_id', billing.record_payment_event(
      v_order.organization_id, v_order.id, v_order.provider, p_event ->> 'provider_payment_id',
      coalesce((p_event ->> 'amount_paise')::bigint, 0), coalesce(p_event ->> 'currency', v_order.currency),
      'authorized', p_event ->> 'method', null,
      pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type'),
      p_event_at));
    v_result := v_result || pg_catalog.jsonb_build_object(
      'result', case when v_result ->> 'payment_event_id' is null then 'duplicate' else 'recorded' end);
    update public.orders o set status = 'pending' where o.id = v_order.id and o.status = 'created';
  elsif v_kind = 'payment_pending' then
    update public.orders o set status = 'pending' where o.id = v_order.id and o.status = 'created';
    v_result := pg_catalog.jsonb_build_object('result', 'recorded', 'reason', 'payment pending at the provider');
  elsif v_psid is null then
    -- subscription_status
    v_error := pg_catalog.format('%s event %s names no subscription', p_event ->> 'provider', p_event ->> 'event_id');
    v_result := pg_catalog.jsonb_build_object('result', 'unmatched', 'reason', v_error);
  else
    v_status := p_event ->> 'subscription_status';
    v_result := pg_catalog.jsonb_build_object('result', 'applied');
  end if;

  if v_psid is not null and v_result ->> 'result' in ('applied', 'duplicate') then
    v_error := coalesce(billing.follow_provider_subscription(
      p_event, v_psid, v_status, p_event_at,
      v_kind = 'payment_captured' and v_result ->> 'result' = 'applied'), v_error);
  end if;

  select * into v_order from public.orders o where o.id = coalesce((v_result ->> 'order_id')::uuid, v_order.id);
  if v_psid is not null then
    select * into v_sub from public.subscriptions s
    where s.provider = v_order.provider and s.provider_subscription_id = v_psid;
  end if;
  if v_sub.id is null then
    select * into v_sub from public.subscriptions s
    where s.id = coalesce((v_result ->> 'subscription_id')::uuid, v_order.subscription_id);
  end if;
  return v_result || pg_catalog.jsonb_build_object(
    'order_id', v_order.id, 'order_status', v_order.status, 'subscription_id', v_sub.id,
    'subscription_status', v_sub.status, 'current_period_end', v_sub.current_period_end,
    'reason', coalesce(v_result ->> 'reason', v_error),
    'last_error', coalesce(v_result ->> 'last_error', v_error));
end;
$function$;

CREATE OR REPLACE FUNCTION billing.apply_refund (
  p_event    jsonb,
  p_event_at timestamp with time zone
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
  v_credits_note text;
  v_credits_revoked bigint;
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
  -- A credit pack's unspent credits go back with the money (before the credit note, which names
  -- them). A payment that bought nothing granted nothing.
  if v_order.kind = 'credit_pack' and not v_captured.needs_refund then
    select c.note, c.revoked into v_credits_note, v_credits_revoked
    from billing.revoke_pack_credits(v_captured, v_amount, v_refunded + v_lost,
                                     pg_catalog.format('%s refund %s', v_provider, v_refund_id)) c;
  end if;
  if not v_captured.needs_refund then
    select * into v_documents
    from billing.issue_documents(v_captured.order_id, v_captured.id, v_amount,
                                 pg_catalog.format('%s refund %s', v_provider, v_refund_id)
                                   || coalesce('. ' || v_credits_note, ''), v_payment_event_id) d;
  else
    -- No documents; the record is still read below (an unassigned record cannot be, and the
    -- refund of a payment that bought nothing could then never be recorded).
    select null::uuid as invoice_id, null::uuid as credit_note_id, null::text as error into v_documents;
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
                                       'credits_revoked', v_credits_revoked,
                                       'last_error', v_documents.error);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.follow_provider_subscription (
  p_event                    jsonb,
  p_provider_subscription_id text,
  p_status                   text,
  p_event_at                 timestamp with time zone,
  p_applied_payment          boolean
)
  RETURNS text
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_changed boolean := false;
  v_flag boolean := (p_event ->> 'cancel_at_period_end')::boolean;
  v_old_flag boolean;
  v_sub public.subscriptions;
  v_synced public.subscriptions;
  v_state billing.provider_subscription_states;
begin
  if p_status is not null then
    select st.cancel_at_period_end into v_old_flag from billing.provider_subscription_states st
    where st.provider = v_provider and st.provider_subscription_id = p_provider_subscription_id
    for update;
    insert into billing.provider_subscription_states as st
      (provider, provider_subscription_id, status, status_at, event_id, cancel_at_period_end)
    values (v_provider, p_provider_subscription_id, p_status, p_event_at, p_event ->> 'event_id', v_flag)
    on conflict (provider, provider_subscription_id) do update
      set status = excluded.status, status_at = excluded.status_at, event_id = excluded.event_id,
          cancel_at_period_end = coalesce(excluded.cancel_at_period_end, st.cancel_at_period_end)
      where st.status_at <= excluded.status_at
    returning true into v_changed;
  end if;
  if not (coalesce(v_changed, false) or p_applied_payment) then
    return null;
  end if;
  select * into v_sub from public.subscriptions s
  where s.provider = v_provider and s.provider_subscription_id = p_provider_subscription_id;
  select * into v_state from billing.provider_subscription_states st
  where st.provider = v_provider and st.provider_subscription_id = p_provider_subscription_id;
  if v_sub.id is null or v_state.status is null then
    return null;
  end if;
  if not billing.sync_provider_status(v_sub.id, v_state.status, v_state.status_at, p_event) then
    return pg_catalog.format('subscription %s not moved to %s: the organization has another live subscription',
                             p_provider_subscription_id, v_state.status);
  end if;
  select * into v_synced from public.subscriptions s where s.id = v_sub.id for update;
  if not (coalesce(v_changed, false) and v_flag is not null and v_flag is distinct from coalesce(v_old_flag, false))
     and v_state.cancel_at_period_end and not v_synced.cancel_at_period_end
     and (p_applied_payment or v_synced.status is distinct from v_sub.status) then
    -- The provider still ends it at its period end, and this event's payment (a renewal extends
    -- and clears the flag) or status turn (past due back to active) cleared ours: a flag set in
    -- the provider's portal while past due survives the retried payment.
    v_flag := true;
    v_changed := true;
    v_old_flag := false;
  end if;
  -- The provider turned its end at the period end (this event is its newest word): ours follows.
  if coalesce(v_changed, false) and v_flag is not null and v_flag is distinct from coalesce(v_old_flag, false) then
    select * into v_sub from public.subscriptions s where s.id = v_sub.id for update;
    if v_sub.status in ('trialing', 'active', 'past_due') and v_sub.cancel_at_period_end is distinct from v_flag then
      perform billing.set_change_context(case when v_flag then 'cancel_scheduled' else 'resumed' end, 'provider',
        p_reason => pg_catalog.format('%s %s: %s', p_event ->> 'provider', p_event ->> 'event_type',
                                      case when v_flag then 'the provider ends it at its period end'
                                           else 'the provider no longer ends it at its period end' end),
        p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'provider_status', v_state.status,
                                                    'provider_subscription_id', p_provider_subscription_id,
                                                    'cancel_at_period_end', v_flag),
        p_effective_at => billing.now());
      update public.subscriptions s set cancel_at_period_end = v_flag where s.id = v_sub.id;
    end if;
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.match_order (
  p_event jsonb
)
  RETURNS public.orders
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_provider_order_id text := p_event ->> 'provider_order_id';
  v_subscription_id text := p_event ->> 'provider_subscription_id';
  v_ref text := p_event ->> 'order_ref';
  v_order public.orders;
begin
  -- An upgrade order the provider charged on the subscription itself (Stripe: an invoice carrying
  -- our receipt in its metadata): the order named, not the subscription's first order, as long as
  -- it upgrades the subscription that provider subscription backs (money charged to one
  -- organization's subscription never pays another's order).
  if v_ref is not null and v_subscription_id is not null then
    select o.* into v_order from public.orders o
    join public.subscriptions s on s.id = o.subscription_id
    where o.provider = v_provider and o.receipt = v_ref and o.kind = 'upgrade'
      and s.provider = v_provider and s.provider_subscription_id = v_subscription_id;
    if found then
      return v_order;
    end if;
  end if;
  if v_provider_order_id is not null then
    select * into v_order from public.orders o where o.provider = v_provider and o.provider_order_id = v_provider_order_id;
    if found then
      return v_order;
    end if;
  end if;
  if v_subscription_id is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.provider_subscription_id = v_subscription_id and o.kind = 'new';
    if found then
      return v_order;
    end if;
  end if;
  if v_ref is not null then
    select * into v_order from public.orders o
    where o.provider = v_provider and o.receipt = v_ref
      and (o.provider_order_id is null or v_provider_order_id is null or o.provider_order_id = v_provider_order_id or o.provider_subscription_id is not null)
      and (o.provider_subscription_id is null or v_subscription_id is null or o.provider_subscription_id = v_subscription_id);
    if found then
      return v_order;
    end if;
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.record_amount_mismatch (
  p_order          public.orders,
  p_event          jsonb,
  p_event_at       timestamp with time zone,
  p_expected_cents bigint
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_amount bigint := (p_event ->> 'amount_paise')::bigint;
  v_currency text := p_event ->> 'currency';
  v_error text := pg_catalog.format('amount mismatch for order %s: expected %s %s, got %s %s', p_order.receipt,
                                    p_expected_cents, p_order.currency, coalesce(v_amount::text, 'null'),
                                    coalesce(v_currency, 'null'));
begin
  return pg_catalog.jsonb_build_object(
    'result', 'mismatch', 'reason', v_error, 'last_error', v_error,
    'payment_event_id', billing.record_payment_event(
      p_order.organization_id, p_order.id, p_order.provider, p_event ->> 'provider_payment_id', coalesce(v_amount, 0),
      coalesce(v_currency, p_order.currency), 'mismatch', p_event ->> 'method', v_error,
      pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type',
                                    'expected_amount', p_expected_cents, 'expected_currency', p_order.currency,
                                    'amount', v_amount, 'currency', v_currency),
      p_event_at));
end;
$function$;

CREATE OR REPLACE FUNCTION billing.stop_unbacked_mandate (
  p_organization_id          uuid,
  p_provider                 public.payment_provider,
  p_provider_subscription_id text,
  p_reason                   text,
  p_subscription_id          uuid                    DEFAULT NULL::uuid
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_failed integer;
begin
  if p_provider is null or p_provider = 'manual' or p_provider_subscription_id is null
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
$function$;

REVOKE ALL ON FUNCTION "billing"."record_amount_mismatch"(public.orders, jsonb, timestamp WITH time zone, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."record_amount_mismatch"(public.orders, jsonb, timestamp WITH time zone, bigint) TO "service_role";
