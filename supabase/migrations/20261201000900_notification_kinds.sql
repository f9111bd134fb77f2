-- =================================================================================================
-- supabill: the last notification kinds: payment captured, trial ending, cancellation scheduled
--
--   payment_captured
--     queued when an invoice is issued (AFTER INSERT on public.invoices: every invoice is a
--     captured payment of an order), once per invoice; the payload carries the invoice id and
--     number, and the sender attaches the invoice PDF.
--   trial_ending
--     queued by billing-renewal-reminders (billing.renewal_reminders_batch, replaced) in the 3 days
--     before a trial ends, for a trial not set to cancel, once per trial (subscription and
--     trial end).
--   cancellation_scheduled
--     queued when a live subscription is set to cancel at its period end (AFTER UPDATE OF
--     cancel_at_period_end, false to true), once per subscription and period end; the
--     confirmation when it ends is the existing subscription_canceled.
--   billing.notification_context (replaced)
--     a payment_captured's amount is the payload's (the invoice total), like payment_failed's.
--
-- All three go to the billing audience (billing.notification_audience is unchanged: billing email,
-- else owners and admins). An upgrade of the lifecycle module (20261120000900_lifecycle.sql) and of
-- 20261201000700_notification_delivery.sql.
--
-- Sections, in order: 1. types; 2. tables; 3. private functions; 4. policies; 5. public
-- functions; 6. jobs and schedules.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- None (triggers in section 3).


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * AFTER INSERT on invoices: a 'payment_captured' notification for the invoice's organization and
 * the order's subscription, deduplicated per invoice ('payment_captured:<invoice id>').
 */
create function billing.queue_payment_captured()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  select new.organization_id, o.subscription_id, 'payment_captured',
         pg_catalog.jsonb_build_object(
           'invoice_id', new.id, 'invoice_number', new.invoice_number, 'invoice_date', new.invoice_date,
           'order_id', o.id, 'receipt', o.receipt, 'plan_id', o.plan_id,
           'amount_cents', new.total_cents, 'currency', new.currency, 'paid_at', new.issued_at),
         pg_catalog.format('payment_captured:%s', new.id)
  from public.orders o
  where o.id = new.order_id
  on conflict (dedupe_key) do nothing;
  return null;
end;
$$;
revoke execute on function billing.queue_payment_captured() from public;

create trigger invoices_queue_payment_captured
  after insert on public.invoices
  for each row execute function billing.queue_payment_captured();

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

create trigger subscriptions_queue_cancellation_scheduled
  after update of cancel_at_period_end on public.subscriptions
  for each row
  when (new.cancel_at_period_end and not old.cancel_at_period_end
        and new.status in ('trialing', 'active', 'past_due') and new.current_period_end is not null)
  execute function billing.queue_cancellation_scheduled();

/**
 * billing-renewal-reminders, one batch: for subscriptions we bill ourselves (no provider
 * subscription), active and not cancelling, a 'renewal_reminder' 7 days before the period end
 * (sent from 7 days down to 1 day before) and another 1 day before (the last 24 hours); for
 * Razorpay recurring subscriptions, the 'pre_debit_notice' in the 24 hours before the charge.
 * The plan and amount quoted are the renewal's: the pending plan when a downgrade is scheduled
 * (it applies at this period end), with current_plan_code the plan running now.
 * Deduplicated per subscription, reminder and period end.
 * Then, within what is left of p_limit, a 'trial_ending' for each trial not set to cancel whose
 * trial ends in the next 3 days, deduplicated per subscription and trial end.
 */
create or replace function billing.renewal_reminders_batch(p_limit integer)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_n integer;
  v_t integer := 0;
begin
  with due as (
    select s.id, s.organization_id, s.current_period_end, s.provider, s.provider_subscription_id,
           p.id as plan_id, p.code as plan_code, p.name as plan_name, p.price_cents, p.currency,
           c.code as current_plan_code,
           case
             when s.provider = 'razorpay' and s.provider_subscription_id is not null then 'pre_debit_notice'
             else 'renewal_reminder'
           end as kind,
           case
             when s.provider = 'razorpay' and s.provider_subscription_id is not null then '24h'
             when s.current_period_end <= v_now + interval '1 day' then '1d'
             else '7d'
           end as reminder
    from public.subscriptions s
    join public.billing_plans c on c.id = s.plan_id
    join public.billing_plans p on p.id = coalesce(s.pending_plan_id, s.plan_id)
    where s.status = 'active' and not s.cancel_at_period_end
      and s.current_period_end > v_now and s.current_period_end <= v_now + interval '7 days'
      and (s.provider_subscription_id is null or s.provider <> 'razorpay'
           or s.current_period_end <= v_now + interval '24 hours')
  ), fresh as (
    select d.*, pg_catalog.format('%s:%s:%s:%s', d.kind, d.reminder, d.id,
                                  extract(epoch from d.current_period_end)::bigint) as dedupe_key
    from due d
  ), queued as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select f.organization_id, f.id, f.kind,
           pg_catalog.jsonb_build_object(
             'reminder', f.reminder, 'plan_id', f.plan_id, 'plan_code', f.plan_code, 'plan_name', f.plan_name,
             'current_plan_code', f.current_plan_code,
             'amount_cents', f.price_cents, 'currency', f.currency, 'period_end', f.current_period_end,
             'charge_at', case when f.kind = 'pre_debit_notice' then f.current_period_end end,
             'provider_subscription_id', f.provider_subscription_id),
           f.dedupe_key
    from fresh f
    where not exists (select 1 from public.notifications n where n.dedupe_key = f.dedupe_key)
    order by f.current_period_end
    limit p_limit
    on conflict (dedupe_key) do nothing
    returning 1
  )
  select count(*) into v_n from queued;

  if v_n < p_limit then
    with fresh as (
      select s.id, s.organization_id, s.trial_end, p.id as plan_id, p.code as plan_code,
             p.name as plan_name, p.price_cents, p.currency,
             pg_catalog.format('trial_ending:%s:%s', s.id, extract(epoch from s.trial_end)::bigint) as dedupe_key
      from public.subscriptions s
      join public.billing_plans p on p.id = s.plan_id
      where s.status = 'trialing' and not s.cancel_at_period_end
        and s.trial_end > v_now and s.trial_end <= v_now + interval '3 days'
    ), queued as (
      insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
      select f.organization_id, f.id, 'trial_ending',
             pg_catalog.jsonb_build_object(
               'plan_id', f.plan_id, 'plan_code', f.plan_code, 'plan_name', f.plan_name,
               'amount_cents', f.price_cents, 'currency', f.currency, 'trial_end', f.trial_end),
             f.dedupe_key
      from fresh f
      where not exists (select 1 from public.notifications n where n.dedupe_key = f.dedupe_key)
      order by f.trial_end
      limit p_limit - v_n
      on conflict (dedupe_key) do nothing
      returning 1
    )
    select count(*) into v_t from queued;
  end if;
  return v_n + v_t;
end;
$$;
revoke execute on function billing.renewal_reminders_batch(integer) from public;


/**
 * What a template needs besides the payload, as one object:
 *   organization {id, name, billing_name, timezone}, seller_legal_name, app_success_url,
 *   plan {id, code, name, interval} (the payload's new_plan_id, plan_id or plan_code, else the
 *   subscription's plan), old_plan {code, name} (plan_downgraded),
 *   amount_cents and currency: for a payment_failed, payment_disputed or payment_captured the
 *   payload's amount (what the payment was), else the plan's price as payable, GST included the way an order of it would
 *   be (billing.order_tax_quote; a provider subscription's price includes tax; the reminders'
 *   payload amount_cents is the plan's price before tax),
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

  if v_note.kind in ('payment_failed', 'payment_disputed', 'payment_captured') and v_note.payload ->> 'amount_cents' ~ '^[0-9]{1,15}$' then
    v_amount := (v_note.payload ->> 'amount_cents')::bigint;
    v_currency := coalesce(v_note.payload ->> 'currency', v_plan.currency, 'INR');
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

-- None.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None.


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

-- None: trial_ending rides on the existing billing-renewal-reminders job.
