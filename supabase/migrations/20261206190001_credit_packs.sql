-- credit_packs: drafted by `npm run db:diff -- credit_packs` from the difference between the database the
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
-- What this migration does: credit packs for sale (issue 24, credits). public.credit_packs
-- (declared in supabase/schemas/02_plans.sql beside billing_plans: the catalog of what is sold),
-- read by visitors and members like plans, written by service_role and the DBA; an order may now
-- buy a pack instead of a plan (orders.credit_pack_id, plan_id nullable, kind 'credit_pack' added
-- by 20261206190000_credit_pack_order_kind, which must run first); checkout's SQL side
-- (create_credit_pack_order); the captured payment of a pack order grants its credits and issues
-- its invoice in one transaction (apply_captured_payment, grant_pack_credits, issue_invoice's line
-- names the pack, invoice_lines.credit_pack_id); a refund or a lost dispute takes back the unspent
-- credits and the credit note says how many (apply_refund, apply_dispute, revoke_pack_credits);
-- pack orders supersede open pack orders and count towards max_open_orders
-- (supersede_open_orders); a failed pack payment's notification names the pack.
--
-- Nothing added by hand: no backfill is needed, since every existing order buys a plan and so
-- already satisfies orders_buys_a_plan_or_a_pack (plan_id set, credit_pack_id null, kind not
-- 'credit_pack'). No pack is created here: a deployed project inserts its own rows into
-- public.credit_packs (supabase/seed.sql has the demo's two, for the local stack only).

SET local check_function_bodies = off;

DROP TRIGGER "orders_supersede_open" ON "public"."orders";

CREATE TABLE "public"."credit_packs" (
  "id"          uuid                     NOT NULL DEFAULT gen_random_uuid(),
  "code"        text                     NOT NULL,
  "name"        text                     NOT NULL,
  "description" text,
  "credits"     bigint                   NOT NULL,
  "price_paise" bigint                   NOT NULL,
  "currency"    text                     NOT NULL DEFAULT 'INR'::text,
  "validity"    interval,
  "active"      boolean                  NOT NULL DEFAULT true,
  "created_at"  timestamp with time zone NOT NULL DEFAULT now(),
  "updated_at"  timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "credit_packs_code_check" CHECK ((code ~ '^[a-z][a-z0-9_]{0,63}$'::text)),
  CONSTRAINT "credit_packs_code_key" UNIQUE (code),
  CONSTRAINT "credit_packs_credits_positive" CHECK (((credits > 0) AND (credits <= '1000000000000'::bigint))),
  CONSTRAINT "credit_packs_currency_inr" CHECK ((currency = 'INR'::text)),
  CONSTRAINT "credit_packs_name_check" CHECK (((length(btrim(name)) >= 1) AND (length(btrim(name)) <= 200))),
  CONSTRAINT "credit_packs_pkey" PRIMARY KEY (id),
  CONSTRAINT "credit_packs_price_positive" CHECK ((price_paise > 0)),
  CONSTRAINT "credit_packs_validity_positive" CHECK (((validity IS NULL) OR (validity > '00:00:00'::interval)))
);

ALTER TABLE "public"."credit_packs"
  ENABLE ROW LEVEL SECURITY;

ALTER TABLE "public"."invoice_lines"
  ADD COLUMN "credit_pack_id" uuid;

ALTER TABLE "public"."orders"
  ADD COLUMN "credit_pack_id" uuid;

ALTER TABLE "public"."orders"
  ALTER COLUMN "plan_id" DROP NOT NULL;

CREATE OR REPLACE FUNCTION billing.apply_captured_payment (
  p_order    public.orders,
  p_event    jsonb,
  p_event_at timestamp with time zone
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
  v_grant record;
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

  -- A credit pack buys credits, not a period: the order is paid, the credits granted and the
  -- invoice issued, all in this transaction; no subscription changes.
  if v_order.kind = 'credit_pack' then
    update public.orders o set status = 'paid', paid_at = billing.now()
    where o.id = v_order.id
    returning * into v_order;
    select g.id, g.amount, g.expires_at into v_grant from billing.grant_pack_credits(v_order, v_payment_event_id) g;
    select * into v_documents from billing.issue_documents(v_order.id, v_payment_event_id) d;
    return pg_catalog.jsonb_build_object(
      'result', 'applied', 'order_id', v_order.id, 'order_status', v_order.status,
      'payment_event_id', v_payment_event_id, 'credit_grant_id', v_grant.id, 'credits', v_grant.amount,
      'credits_expire_at', v_grant.expires_at, 'invoice_id', v_documents.invoice_id,
      'invoice_error', v_documents.error);
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
$function$;

CREATE OR REPLACE FUNCTION billing.apply_dispute (
  p_event    jsonb,
  p_event_at timestamp with time zone
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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

  -- A lost dispute of a credit pack payment takes back what remains of its credits, like a full
  -- refund (the money went back by chargeback).
  if v_kind = 'dispute_lost' and v_order.kind = 'credit_pack' then
    perform billing.revoke_pack_credits(v_captured, null, null,
      pg_catalog.format('dispute %s of payment %s lost', p_event ->> 'provider_dispute_id', v_payment_id));
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
$function$;

CREATE OR REPLACE FUNCTION billing.apply_payment_failure (
  p_order    public.orders,
  p_event    jsonb,
  p_event_at timestamp with time zone
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_payment_id text := p_event ->> 'provider_payment_id';
  v_amount bigint := coalesce((p_event ->> 'amount_paise')::bigint, p_order.amount_cents);
  v_currency text := coalesce(p_event ->> 'currency', p_order.currency);
  v_reason text := coalesce(p_event ->> 'error_reason', p_event ->> 'status');
  v_payment_event_id uuid;
begin
  v_payment_event_id := billing.record_payment_event(
    p_order.organization_id, p_order.id, p_order.provider, v_payment_id, v_amount, v_currency, 'failed',
    p_event ->> 'method', v_reason,
    pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'event_type', p_event ->> 'event_type'),
    p_event_at);
  if v_payment_event_id is null then
    return pg_catalog.jsonb_build_object('result', 'duplicate', 'reason', 'failure already recorded');
  end if;
  update public.orders o set status = 'failed'
  where o.id = p_order.id and o.status in ('created', 'pending');
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key, created_at)
  values (p_order.organization_id, p_order.subscription_id, 'payment_failed',
          pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'order_id', p_order.id, 'receipt', p_order.receipt, 'amount_cents', v_amount,
            'currency', v_currency, 'provider', p_order.provider,
            'provider_payment_id', v_payment_id, 'error_reason', v_reason,
            'plan_code', (select p.code from public.billing_plans p where p.id = p_order.plan_id),
            'credit_pack_name', (select cp.name from public.credit_packs cp where cp.id = p_order.credit_pack_id))),
          pg_catalog.format('payment_failed:%s:%s', p_order.provider, v_payment_id),
          billing.now())
  on conflict (dedupe_key) do nothing;
  return pg_catalog.jsonb_build_object('result', 'applied', 'payment_event_id', v_payment_event_id);
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

CREATE OR REPLACE FUNCTION billing.checkout_answer (
  p_order            public.orders,
  p_user_id          uuid,
  p_razorpay_plan_id text
)
  RETURNS billing.checkout_order
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_plan public.billing_plans;
  v_pack public.credit_packs;
  v_org public.organizations;
  v_user auth.users;
begin
  select * into v_plan from public.billing_plans p where p.id = p_order.plan_id;
  select * into v_pack from public.credit_packs cp where cp.id = p_order.credit_pack_id;
  select * into v_org from public.organizations o where o.id = p_order.organization_id;
  select * into v_user from auth.users u where u.id = p_user_id;
  return row(
    p_order.id, p_order.receipt, p_order.status::text, p_order.amount_cents, p_order.currency,
    v_plan.code, coalesce(v_plan.name, v_pack.name), v_plan.interval, p_razorpay_plan_id,
    case when p_razorpay_plan_id is not null then
      coalesce((v_plan.provider_config #>> '{razorpay,total_count}')::integer,
               case v_plan.interval when 'year' then 10 else 120 end) end,
    coalesce(v_org.billing_email, v_user.email::text),
    left(coalesce(nullif(btrim(v_user.raw_user_meta_data ->> 'full_name'), ''), v_org.billing_name, v_org.name), 60),
    p_order.expires_at)::billing.checkout_order;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.create_credit_pack_order (
  p_organization_id  uuid,
  p_credit_pack_code text,
  p_provider         text
)
  RETURNS SETOF billing.checkout_order
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_pack public.credit_packs;
  v_order public.orders;
begin
  if p_provider is null or p_provider not in ('payu', 'razorpay') then
    raise exception 'provider must be "payu" or "razorpay"' using errcode = 'invalid_parameter_value';
  end if;
  perform billing.require_role(p_organization_id, billing.managers(), 'buy credits');
  select * into v_pack from public.credit_packs cp where cp.code = p_credit_pack_code and cp.active;
  if v_pack.id is null then
    raise exception 'no active credit pack "%"', coalesce(p_credit_pack_code, '') using errcode = 'no_data_found';
  end if;
  if p_provider = 'razorpay' and v_pack.price_paise < 100 then
    raise exception 'credit pack "%" costs less than Razorpay''s minimum of 100 paise', v_pack.code
      using errcode = 'object_not_in_prerequisite_state', hint = 'credit_pack_not_purchasable';
  end if;

  -- One checkout of an organization at a time (the payment path takes the same lock).
  perform 1 from public.organizations o where o.id = p_organization_id for no key update;
  insert into public.orders
    (organization_id, credit_pack_id, provider, kind, amount_cents, currency, status, created_by, expires_at, metadata)
  values
    (p_organization_id, v_pack.id, p_provider::public.payment_provider, 'credit_pack', v_pack.price_paise, v_pack.currency,
     case when p_provider = 'payu' then 'pending' else 'created' end::public.order_status, v_user_id, v_now + interval '1 day',
     pg_catalog.jsonb_build_object('credit_pack_code', v_pack.code, 'credits', v_pack.credits,
                                   'credit_validity', v_pack.validity::text))
  returning * into v_order;

  return next billing.checkout_answer(v_order, v_user_id, null);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.grant_pack_credits (
  p_order            public.orders,
  p_payment_event_id uuid
)
  RETURNS public.credit_grants
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_pack public.credit_packs;
  v_credits bigint;
  v_validity interval;
  v_paid_at timestamptz := coalesce(p_order.paid_at, billing.now());
begin
  if p_order.kind <> 'credit_pack' or p_order.credit_pack_id is null then
    raise exception 'order % is not a credit pack order', p_order.receipt using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from public.payment_events pe
                 where pe.id = p_payment_event_id and pe.order_id = p_order.id and pe.status = 'captured') then
    raise exception 'payment event % is not a captured payment of order %', p_payment_event_id, p_order.receipt
      using errcode = 'invalid_parameter_value';
  end if;
  select * into strict v_pack from public.credit_packs cp where cp.id = p_order.credit_pack_id;
  -- What the buyer was sold at checkout, whatever the pack says now.
  if p_order.metadata ? 'credits' then
    v_credits := (p_order.metadata ->> 'credits')::bigint;
    v_validity := (p_order.metadata ->> 'credit_validity')::interval;
  else
    v_credits := v_pack.credits;
    v_validity := v_pack.validity;
  end if;
  return billing.add_credit_grant(p_order.organization_id, 'purchase', v_credits,
    p_expires_at => v_paid_at + v_validity,
    p_reason => pg_catalog.format('credit pack %s (order %s)', v_pack.code, p_order.receipt),
    p_dedupe_key => pg_catalog.format('purchase:%s', p_payment_event_id),
    p_actor_kind => 'provider',
    p_order_id => p_order.id,
    p_payment_event_id => p_payment_event_id,
    p_effective_from => v_paid_at);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.issue_invoice (
  p_order_id         uuid,
  p_payment_event_id uuid
)
  RETURNS uuid
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_order public.orders%rowtype;
  v_settings public.billing_settings%rowtype;
  v_org public.organizations%rowtype;
  v_plan public.billing_plans%rowtype;
  v_pack public.credit_packs%rowtype;
  v_description text;
  v_invoice_id uuid;
  v_seller_state text;
  v_supply_type text;
  v_place_of_supply text;
  v_tax record;
  v_now timestamptz := billing.now();
  v_financial_year integer := billing.financial_year(v_now);
  v_serial bigint;
begin
  select * into v_order from public.orders o where o.id = p_order_id for update;
  if not found then
    raise exception 'order % does not exist', p_order_id using errcode = 'no_data_found';
  end if;

  select i.id into v_invoice_id from public.invoices i where i.order_id = p_order_id;
  if found then
    return v_invoice_id;
  end if;

  if p_payment_event_id is not null and not exists (
    select 1 from public.payment_events e
    where e.id = p_payment_event_id and e.order_id = p_order_id and e.status = 'captured'
  ) then
    raise exception 'payment event % is not a captured payment of order %', p_payment_event_id, p_order_id
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_settings from public.billing_settings s where s.id;
  v_seller_state := coalesce(v_settings.seller_state_code, pg_catalog.left(v_settings.seller_gstin, 2));
  if v_settings.seller_legal_name is null or v_seller_state is null then
    raise exception 'billing_settings.seller_legal_name and seller_state_code (or seller_gstin) must be set before invoices can be issued'
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  select * into strict v_org from public.organizations o where o.id = v_order.organization_id;
  -- What the order sold, as its line says it: a plan, or a credit pack with its credits.
  if v_order.credit_pack_id is not null then
    select * into strict v_pack from public.credit_packs cp where cp.id = v_order.credit_pack_id;
    v_description := pg_catalog.format('%s - credit pack (%s credits%s)', v_pack.name,
      coalesce(v_order.metadata ->> 'credits', v_pack.credits::text),
      case when v_order.metadata ->> 'credit_validity' is not null
           then ', valid for ' || (v_order.metadata ->> 'credit_validity') else '' end);
  else
    select * into strict v_plan from public.billing_plans p where p.id = v_order.plan_id;
    v_description := v_plan.name || case v_order.kind
      when 'renewal' then ' - subscription renewal'
      when 'upgrade' then ' - plan upgrade (prorated)'
      else ' - subscription'
    end;
  end if;

  -- The tax is the order's quote (billing.quote_order_tax), recomputed the same way: the invoice
  -- total is what the order charged, whatever changed in the settings or the profile since.
  if v_order.supply_type is null or v_order.taxable_cents is null then
    raise exception 'order % was priced without GST (the seller''s state was not set when it was created): no tax invoice', v_order.receipt
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  v_supply_type := v_order.supply_type;
  v_place_of_supply := v_order.place_of_supply_state_code;
  select * into v_tax
  from billing.compute_line_tax(case when v_order.prices_include_tax then v_order.amount_cents else v_order.taxable_cents end,
                                v_order.gst_rate_bp, v_supply_type, v_order.prices_include_tax);
  if v_tax.total_cents <> v_order.amount_cents then
    raise exception 'order % charges % but its tax quote totals %', v_order.receipt, v_order.amount_cents, v_tax.total_cents
      using errcode = 'data_exception';
  end if;

  v_serial := billing.next_serial('invoice', v_financial_year);

  perform pg_catalog.set_config('billing.issuing', 'invoices', true);
  insert into public.invoices (
    organization_id, order_id, payment_event_id, invoice_number, financial_year, serial,
    issued_at, invoice_date, currency, supply_type, place_of_supply_state_code, buyer_gstin,
    seller, buyer, prices_include_tax,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents
  ) values (
    v_org.id, v_order.id, p_payment_event_id,
    billing.format_document_number(v_settings.invoice_prefix, v_financial_year, v_serial), v_financial_year, v_serial,
    v_now, (v_now at time zone 'Asia/Kolkata')::date, v_order.currency, v_supply_type::public.supply_type, v_place_of_supply, v_org.gstin,
    billing.invoice_party(v_settings.seller_legal_name, v_settings.seller_gstin, v_seller_state,
                          v_settings.seller_address_line1, v_settings.seller_address_line2, v_settings.seller_city,
                          v_settings.seller_postal_code, 'IN', v_settings.seller_email),
    billing.invoice_party(coalesce(v_org.billing_name, v_org.name), v_org.gstin, v_org.state_code,
                          v_org.billing_address_line1, v_org.billing_address_line2, v_org.billing_city,
                          v_org.billing_postal_code, v_org.billing_country, v_org.billing_email),
    v_order.prices_include_tax,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents
  )
  returning id into v_invoice_id;

  perform pg_catalog.set_config('billing.issuing', 'invoice_lines', true);
  insert into public.invoice_lines (
    invoice_id, organization_id, line_number, plan_id, credit_pack_id, description, sac_code, quantity,
    gst_rate_bp, cgst_rate_bp, sgst_rate_bp, igst_rate_bp,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents
  ) values (
    v_invoice_id, v_org.id, 1, v_plan.id, v_pack.id, v_description,
    v_settings.sac_code, 1,
    case when v_supply_type = 'export' then 0 else v_order.gst_rate_bp end,
    v_tax.cgst_rate_bp, v_tax.sgst_rate_bp, v_tax.igst_rate_bp,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents
  );
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_invoice_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.queue_payment_captured()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  select new.organization_id, o.subscription_id, 'payment_captured',
         pg_catalog.jsonb_build_object(
           'invoice_id', new.id, 'invoice_number', new.invoice_number, 'invoice_date', new.invoice_date,
           'order_id', o.id, 'receipt', o.receipt, 'plan_id', o.plan_id,
           'amount_cents', new.total_cents, 'currency', new.currency, 'paid_at', new.issued_at)
         || case when o.credit_pack_id is not null then pg_catalog.jsonb_build_object(
              'credit_pack_id', o.credit_pack_id,
              'credit_pack_name', (select cp.name from public.credit_packs cp where cp.id = o.credit_pack_id),
              'credits', (o.metadata ->> 'credits')::bigint) else '{}'::jsonb end,
         pg_catalog.format('payment_captured:%s', new.id)
  from public.orders o
  where o.id = new.order_id
  on conflict (dedupe_key) do nothing;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.revoke_pack_credits (
  p_captured     public.payment_events,
  p_amount       bigint,
  p_taken_before bigint,
  p_reason       text,
  OUT            grant_id uuid,
  OUT            revoked bigint,
  OUT            granted bigint,
  OUT            used bigint,
  OUT            note text
)
  RETURNS record
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_grant public.credit_grants;
  v_want bigint;
  v_expired bigint;
begin
  select g.* into v_grant from public.credit_grants g
  where g.payment_event_id = p_captured.id and g.source = 'purchase'
  order by g.created_at
  limit 1;
  if v_grant.id is null then
    return;
  end if;
  perform billing.lock_credits(v_grant.organization_id);
  perform billing.expire_lapsed_grants(v_grant.organization_id);
  select g.* into v_grant from public.credit_grants g where g.id = v_grant.id;
  if p_amount is null or coalesce(p_taken_before, 0) + p_amount >= p_captured.amount_cents then
    v_want := v_grant.remaining;
  else
    v_want := least(pg_catalog.ceil(v_grant.amount::numeric * p_amount / p_captured.amount_cents)::bigint,
                    v_grant.remaining);
  end if;
  grant_id := v_grant.id;
  granted := v_grant.amount;
  revoked := billing.revoke_credits(v_grant.id, v_want, p_reason, 'provider');
  select coalesce(-sum(l.amount) filter (where l.kind in ('consumed', 'released')), 0)::bigint,
         coalesce(-sum(l.amount) filter (where l.kind = 'expired'), 0)::bigint
  into used, v_expired
  from public.credit_ledger l
  where l.grant_id = v_grant.id;
  note := pg_catalog.format('Credits revoked: %s of %s (%s already used%s)', revoked, granted, used,
                            case when v_expired > 0 then pg_catalog.format(', %s expired', v_expired) else '' end);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.supersede_open_orders()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_open integer;
  v_max integer;
begin
  update public.orders o
  set status = 'canceled',
      metadata = o.metadata || pg_catalog.jsonb_build_object('canceled_reason',
                   pg_catalog.format('superseded by order %s', new.receipt), 'superseded_by', new.id)
  where o.id in (
    select x.id from public.orders x
    where x.organization_id = new.organization_id and x.id <> new.id
      and (x.kind = 'credit_pack') = (new.kind = 'credit_pack') and x.kind in ('new', 'upgrade', 'credit_pack')
      and x.status in ('created', 'pending')
      and not exists (select 1 from public.payment_events pe where pe.order_id = x.id)
    for update skip locked);

  select count(*) into v_open from public.orders o
  where o.organization_id = new.organization_id and o.kind in ('new', 'upgrade', 'credit_pack')
    and o.status in ('created', 'pending') and (o.expires_at is null or o.expires_at > v_now);
  select s.max_open_orders into v_max from public.billing_settings s where s.id;
  if v_open > coalesce(v_max, 3) then
    raise exception 'too many open orders: the organization would have %, and billing_settings.max_open_orders allows %; pay or let one expire first',
      v_open, coalesce(v_max, 3)
      using errcode = 'object_not_in_prerequisite_state', hint = 'too_many_open_orders';
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION public.create_credit_pack_order (
  p_organization_id  uuid,
  p_credit_pack_code text,
  p_provider         text
)
  RETURNS SETOF billing.checkout_order
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return query select * from billing.create_credit_pack_order(p_organization_id, p_credit_pack_code, p_provider);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."create_credit_pack_order"(uuid, text, text) FROM PUBLIC, "anon";

ALTER TABLE "public"."invoice_lines"
  ADD CONSTRAINT "invoice_lines_credit_pack_id_fkey" FOREIGN KEY (credit_pack_id) REFERENCES public.credit_packs(id) ON DELETE RESTRICT;

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_buys_a_plan_or_a_pack" CHECK (
CASE
    WHEN (kind = 'credit_pack'::public.order_kind) THEN ((credit_pack_id IS NOT NULL) AND (plan_id IS NULL))
    ELSE ((credit_pack_id IS NULL) AND (plan_id IS NOT NULL))
END);

ALTER TABLE "public"."orders"
  ADD CONSTRAINT "orders_credit_pack_id_fkey" FOREIGN KEY (credit_pack_id) REFERENCES public.credit_packs(id) ON DELETE RESTRICT;

CREATE INDEX credit_packs_active_idx ON public.credit_packs USING btree (active);

CREATE INDEX invoice_lines_credit_pack_id_idx ON public.invoice_lines USING btree (credit_pack_id)
  WHERE (credit_pack_id IS NOT NULL);

CREATE INDEX orders_credit_pack_id_idx ON public.orders USING btree (credit_pack_id)
  WHERE (credit_pack_id IS NOT NULL);

CREATE TRIGGER credit_packs_touch_updated_at
  BEFORE UPDATE ON public.credit_packs
  FOR EACH ROW
  EXECUTE FUNCTION billing.touch_updated_at();

CREATE TRIGGER orders_supersede_open
  AFTER INSERT ON public.orders
  FOR EACH ROW
  WHEN (((new.kind = ANY (ARRAY['new'::public.order_kind, 'upgrade'::public.order_kind, 'credit_pack'::public.order_kind])) AND (new.created_by IS NOT NULL)))
  EXECUTE FUNCTION billing.supersede_open_orders();

CREATE POLICY "Signed-in users can read active and ordered credit packs" ON "public"."credit_packs"
  FOR SELECT
  TO "authenticated"
  USING ((active OR (id IN ( SELECT o.credit_pack_id
   FROM public.orders o
  WHERE (o.credit_pack_id IS NOT NULL)))));

CREATE POLICY "Visitors can read active credit packs" ON "public"."credit_packs"
  FOR SELECT
  TO "anon"
  USING (active);

COMMENT ON FUNCTION "public"."create_credit_pack_order"(uuid, text, text) IS 'Starts the checkout of a credit pack: the signed-in owner or admin of the organization buys an active pack once, through a provider.';

COMMENT ON TABLE "public"."credit_packs" IS 'Credit packs for sale: credits for a price in paise (INR), with an optional validity after which they lapse.';

COMMENT ON TABLE "public"."orders" IS 'A checkout intent: what a provider is expected to collect for a plan or a credit pack, with its GST quote.';

COMMENT ON TYPE "public"."order_kind" IS 'What an order buys: new (a first plan), renewal (a provider subscription charge), upgrade (a prorated plan change), credit_pack (credits bought once).';

REVOKE ALL ON FUNCTION "billing"."create_credit_pack_order"(uuid, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."create_credit_pack_order"(uuid, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "billing"."grant_pack_credits"(public.orders, uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."grant_pack_credits"(public.orders, uuid) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."revoke_pack_credits"(public.payment_events, bigint, bigint, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."revoke_pack_credits"(public.payment_events, bigint, bigint, text) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."create_credit_pack_order"(uuid, text, text) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."create_credit_pack_order"(uuid, text, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."create_credit_pack_order"(uuid, text, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."create_credit_pack_order"(uuid, text, text) TO "service_role";

REVOKE ALL ON TABLE "public"."credit_packs" FROM "anon";

GRANT SELECT ON TABLE "public"."credit_packs" TO "anon";

REVOKE ALL ON TABLE "public"."credit_packs" FROM "authenticated";

GRANT SELECT ON TABLE "public"."credit_packs" TO "authenticated";

REVOKE ALL ON TABLE "public"."credit_packs" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."credit_packs" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."credit_packs" TO "service_role";
