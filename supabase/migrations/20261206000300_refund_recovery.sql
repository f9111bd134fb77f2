-- =================================================================================================
-- supabill: refunds the provider made are recorded once, and every signed event is acknowledged
-- (an upgrade of the baseline)
--
-- Our ledger equals the provider's. A refund can reach the provider and never reach our books: the
-- worker dies after the call, the connection applying the answer drops, a timeout hides an accepted
-- refund, or someone refunds in the provider's dashboard. The provider-sync worker asks the
-- provider first on any attempt after the first (the adapter's lookupAction: PayU's refunds of the
-- txnid matched on our token, Razorpay's refunds of the payment matched on our receipt); this
-- module adds the other half, the reconcile pass over recent captured payments
-- (billing.reconcile_due_refunds): the reconcile function lists each one's refunds at its provider
-- and records the ones we lack through billing.apply_payment_event, which records a refund once per
-- provider refund id.
--
-- Every signed event is acknowledged: one we do not act on (Razorpay's settlement.processed,
-- payment.downtime.started, token.confirmed, a PayU status we do not know) is recorded in
-- billing.webhook_events like any other, marked with why it was ignored (ignored_reason), and
-- answered 200, so the provider stops retrying it and never disables the webhook.
--
-- Sections, in order: 1. tables; 2. private functions; 3. triggers.
-- =================================================================================================


-- =================================================================================================
-- 1. Tables
-- =================================================================================================

/**
 * When reconciliation last asked a captured payment's provider for its refunds (one row per
 * captured payment_events row, written by billing.reconcile_due_refunds as it hands the payment
 * out). Private: service_role only.
 */
create table billing.refund_checks (
  -- No foreign key (like provider_actions.payment_event_id): payment_events stays truncate-proof by
  -- its own trigger, and a foreign key would answer a TRUNCATE first.
  payment_event_id uuid primary key,
  checked_at timestamptz not null,
  created_at timestamptz not null default now()
);
/** The payments asked longest ago come first. */
create index refund_checks_checked_at_idx on billing.refund_checks (checked_at);
revoke all on billing.refund_checks from public;
grant select, insert, update, delete on billing.refund_checks to service_role;

/** Why a delivery was recorded and not acted on (an event of a kind billing does not handle), else null. */
alter table billing.webhook_events add column ignored_reason text;
comment on column billing.webhook_events.ignored_reason is
  'Set when the event was recorded and acknowledged but not acted on (its kind is other): why.';
/** The ignored deliveries, for operators. */
create index webhook_events_ignored_idx on billing.webhook_events (received_at) where ignored_reason is not null;


-- =================================================================================================
-- 2. Private functions
-- =================================================================================================

/**
 * Reconciliation of refunds, step one (service_role only; the reconcile function asks the
 * providers about what this returns): up to p_limit captured provider payments of the last
 * p_window whose refunds were never asked about, or not for p_every, never-asked first, then the
 * longest ago. Each payment handed out is marked asked now (billing.refund_checks), so the next
 * run moves on to others. Returns the payment, our order's references and the provider refund ids
 * already recorded for it as refunds (a refund recorded as a mismatch is not known: it is asked
 * about again and recorded once it fits).
 */
create function billing.reconcile_due_refunds(
  p_limit integer default 50,
  p_window interval default interval '30 days',
  p_every interval default interval '6 hours'
)
returns table (
  payment_event_id uuid,
  provider text,
  provider_payment_id text,
  receipt text,
  provider_order_id text,
  provider_subscription_id text,
  known_refund_ids text[]
)
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  if p_window is null or p_window <= interval '0' or p_every is null or p_every < interval '0' then
    raise exception 'p_window must be positive and p_every not negative' using errcode = 'invalid_parameter_value';
  end if;
  return query
    with due as (
      select pe.id, pe.provider, pe.provider_payment_id, pe.order_id
      from public.payment_events pe
      left join billing.refund_checks c on c.payment_event_id = pe.id
      where pe.status = 'captured'
        and pe.provider <> 'manual'
        and pe.occurred_at >= v_now - p_window
        and (c.checked_at is null or c.checked_at <= v_now - p_every)
      order by c.checked_at nulls first, pe.occurred_at desc
      limit p_limit
    ),
    marked as (
      insert into billing.refund_checks as rc (payment_event_id, checked_at)
      select d.id, v_now from due d
      on conflict on constraint refund_checks_pkey do update set checked_at = excluded.checked_at
      returning rc.payment_event_id
    )
    select d.id, d.provider::text, d.provider_payment_id, o.receipt, o.provider_order_id, o.provider_subscription_id,
           coalesce((select pg_catalog.array_agg(distinct r.details ->> 'refund_id')
                     from public.payment_events r
                     where r.provider = d.provider and r.provider_payment_id = d.provider_payment_id
                       and r.status = 'refunded' and r.details ->> 'refund_id' is not null),
                    '{}'::text[])
    from due d
    join marked m on m.payment_event_id = d.id
    left join public.orders o on o.id = d.order_id;
end;
$$;
revoke execute on function billing.reconcile_due_refunds(integer, interval, interval) from public, anon, authenticated;
grant execute on function billing.reconcile_due_refunds(integer, interval, interval) to service_role;

/**
 * BEFORE INSERT on billing.webhook_events: a delivery whose event billing does not act on (kind
 * other) is marked with why, so an operator can tell "received and ignored" from "applied".
 */
create function billing.mark_ignored_webhook_event()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.ignored_reason := pg_catalog.format('event type %s is not one billing acts on', new.event_type);
  return new;
end;
$$;
revoke execute on function billing.mark_ignored_webhook_event() from public;


-- =================================================================================================
-- 3. Triggers
-- =================================================================================================

create trigger webhook_events_mark_ignored
  before insert on billing.webhook_events
  for each row when (new.payload ->> 'kind' = 'other')
  execute function billing.mark_ignored_webhook_event();
