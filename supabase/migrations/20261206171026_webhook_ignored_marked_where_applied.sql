-- webhook_ignored_marked_where_applied: drafted by `npm run db:diff -- webhook_ignored_marked_where_applied` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.
--
-- Why: whether a delivery is ignored was decided twice: billing.apply_payment_event answers
-- 'ignored' for an event of kind other, and a BEFORE INSERT trigger on billing.webhook_events
-- (webhook_events_mark_ignored) set ignored_reason from the same kind in the payload. The one
-- place that applies provider events now writes ignored_reason with the delivery it records, with
-- the same text, and the trigger and its function go. apply_payment_event is the only writer of
-- deliveries, so nothing else loses the mark. No data change: rows already marked keep their
-- reason, and the ones not marked were not of kind other.

SET local check_function_bodies = off;

DROP TRIGGER "webhook_events_mark_ignored" ON "billing"."webhook_events";

DROP FUNCTION "billing"."mark_ignored_webhook_event"();

CREATE OR REPLACE FUNCTION billing.apply_payment_event (
  p_event jsonb
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
  -- An event billing does not act on (kind other) is marked with why, so an operator can tell
  -- "received and ignored" from "applied".
  insert into billing.webhook_events (provider, event_id, event_type, payload, received_at, processed_at, attempts,
                                      ignored_reason)
  values (v_provider, p_event ->> 'event_id', p_event ->> 'event_type', p_event, v_now, v_now, 1,
          case when p_event ->> 'kind' = 'other'
            then pg_catalog.format('event type %s is not one billing acts on', p_event ->> 'event_type') end)
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
$function$;
