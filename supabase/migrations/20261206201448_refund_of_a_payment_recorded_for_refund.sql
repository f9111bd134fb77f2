-- What this migration does: billing.apply_refund no longer fails on the refund of a payment
-- recorded for refund (needs_refund: it bought nothing, so it has no invoice to credit). Its answer
-- read the documents record, never assigned on that path, so the refund raised "record
-- v_documents is not assigned yet" and the refund the provider made never reached the ledger
-- (found by the simulator: a Stripe upgrade charged after its quote expired, refunded).
-- refund_of_a_payment_recorded_for_refund: drafted by `npm run db:diff -- refund_of_a_payment_recorded_for_refund` from the difference between the database the
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
    -- No documents, but the answer below reads them: a record never assigned would raise, and
    -- the refund the provider made would never reach the ledger.
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
