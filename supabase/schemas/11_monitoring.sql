-- =================================================================================================
-- supabill: monitoring: operators' views of what needs attention
--
-- Views in schema billing (service_role and the DBA only, security invoker), each saying what to
-- do about a row: failed_deliveries, signature_failures_hourly, unapplied_payments,
-- overdue_orders, job_problems, notification_problems, provider_action_problems,
-- quota_pressure. They read the tables of the other modules and write nothing.
--
-- Sections, in order: 1. types; 2. tables and views; 3. private functions; 4. policies; 5. public
-- functions; 6. jobs and schedules.
-- =================================================================================================


-- =================================================================================================
-- 2. Views
-- =================================================================================================

/** Webhook deliveries recorded with an error: what the provider told us that was not applied. */
create view billing.failed_deliveries
with (security_invoker = true)
as
select w.id as webhook_event_id, w.provider, w.event_id, w.event_type, w.payload ->> 'kind' as kind,
       w.payload ->> 'order_ref' as order_ref, w.payload ->> 'provider_payment_id' as provider_payment_id,
       w.received_at, w.attempts, w.last_error
from billing.webhook_events w
where w.last_error is not null;

comment on view billing.failed_deliveries is
  'Webhook events recorded with last_error (not applied). Read last_error; fix the order, setting or provider config it names, then apply the payment by hand or refund it (see unapplied_payments).';

/** Signature failures per provider and hour, newest first. */
create view billing.signature_failures_hourly
with (security_invoker = true)
as
select f.provider, f.hour, f.count, f.last_at
from billing.signature_failures f;

comment on view billing.signature_failures_hourly is
  'Webhook deliveries refused for a missing or wrong signature, per provider and hour. A steady count after a key rotation: update the webhook secret; a burst from nowhere: someone is probing the endpoint (rate-limit or block at the edge).';

/**
 * Payments a provider took that bought nothing: captured with needs_refund (a stale or superseded
 * quote, an order already paid, a subscription that had ended) and not yet refunded in full, a
 * 'mismatch' (amount or currency not the order's, a refund above the capture), and captured
 * payments no order matches (only in webhook_events).
 */
create view billing.unapplied_payments
with (security_invoker = true)
as
select 'needs_refund'::text as problem, pe.organization_id, pe.order_id, pe.provider, pe.provider_payment_id,
       pe.amount_cents, pe.currency, pe.occurred_at,
       coalesce(pe.details ->> 'not_applied', pe.error_reason) as detail,
       (select a.state::text from billing.provider_actions a
        where a.payment_event_id = pe.id and a.kind = 'refund' order by a.created_at desc limit 1) as refund_action_state
from public.payment_events pe
where pe.needs_refund and pe.status = 'captured'
  and coalesce((select sum(r.amount_cents) from public.payment_events r
                where r.provider = pe.provider and r.provider_payment_id = pe.provider_payment_id
                  and r.status = 'refunded'), 0) < pe.amount_cents
union all
select 'mismatch', pe.organization_id, pe.order_id, pe.provider, pe.provider_payment_id, pe.amount_cents, pe.currency,
       pe.occurred_at, pe.error_reason, null
from public.payment_events pe
where pe.status = 'mismatch'
union all
select 'unknown_order', null, null, w.provider, w.payload ->> 'provider_payment_id',
       case when w.payload ->> 'amount_paise' ~ '^[0-9]{1,15}$' then (w.payload ->> 'amount_paise')::bigint end,
       w.payload ->> 'currency', w.received_at, w.last_error, null
from billing.webhook_events w
where w.last_error is not null and w.payload ->> 'kind' = 'payment_captured'
  and not exists (select 1 from public.payment_events pe
                  where pe.provider = w.provider and pe.provider_payment_id = w.payload ->> 'provider_payment_id');

comment on view billing.unapplied_payments is
  'Money taken that bought nothing: needs_refund (refund it: billing.operator_refund, or check refund_action_state), mismatch (compare with the order, refund or apply by hand), unknown_order (find the order at the provider; refund if none).';

/** Open checkout orders past the time reconciliation should have settled them. */
create view billing.overdue_orders
with (security_invoker = true)
as
select o.id as order_id, o.organization_id, o.receipt, o.provider, o.provider_order_id, o.status, o.amount_cents,
       o.currency, o.created_at, o.expires_at,
       billing.now() - o.created_at as pending_for,
       o.expires_at is not null and o.expires_at < billing.now() as past_expiry
from public.orders o
cross join public.billing_settings s
where s.id and o.status in ('created', 'pending')
  and (o.created_at <= billing.now() - s.order_pending_reconcile_after
       or (o.expires_at is not null and o.expires_at < billing.now()));

comment on view billing.overdue_orders is
  'Checkout orders still open past order_pending_reconcile_after or their expiry. Many or old rows: the reconcile worker is not running (see job_problems) or cannot reach the provider; check the order at the provider.';

/**
 * Jobs whose latest run failed (with the number of failed runs since its last success) or that
 * started and never finished.
 */
create view billing.job_problems
with (security_invoker = true)
as
with latest as (
  select distinct on (r.job_name) r.*
  from billing.job_runs r
  order by r.job_name, r.started_at desc, r.id desc
)
select l.job_name,
       case when l.error is not null then 'failing' else 'stuck' end as problem,
       l.id as run_id, l.started_at, l.finished_at, l.as_of, l.error,
       (select count(*) from billing.job_runs f
        where f.job_name = l.job_name and f.error is not null
          and f.started_at > coalesce((select max(ok.started_at) from billing.job_runs ok
                                       where ok.job_name = l.job_name and ok.error is null and ok.finished_at is not null),
                                      '-infinity'::timestamptz)) as failed_runs,
       (select max(ok.finished_at) from billing.job_runs ok
        where ok.job_name = l.job_name and ok.error is null and ok.finished_at is not null) as last_success_at
from latest l
where l.error is not null
   or (l.finished_at is null and l.started_at < pg_catalog.clock_timestamp() - interval '15 minutes');

comment on view billing.job_problems is
  'Jobs whose latest run failed (read error, fix the cause; the job runs again on its schedule) or started over 15 minutes ago and never finished (look for a blocked session in pg_stat_activity).';

/** Notifications that failed for good, are retrying after errors, or are overdue unsent. */
create view billing.notification_problems
with (security_invoker = true)
as
select n.id as notification_id, n.organization_id, n.kind,
       case when n.failed_at is not null then 'failed'
            when n.last_error is not null then 'retrying'
            else 'unsent' end as problem,
       n.created_at, n.attempts, n.locked_until, n.failed_at, n.last_error
from public.notifications n
where n.sent_at is null
  and (n.failed_at is not null or n.last_error is not null or n.created_at < billing.now() - interval '15 minutes');

comment on view billing.notification_problems is
  'Notifications not delivered: failed (read last_error: fix the address, EMAIL_FROM or template, then queue again), retrying (the provider is failing: check Resend), unsent for over 15 minutes (notifications-send is not being called).';

/** Provider actions that failed for good, are retrying after errors, or are overdue. */
create view billing.provider_action_problems
with (security_invoker = true)
as
select a.id as provider_action_id, a.organization_id, a.provider, a.kind, a.state,
       case when a.state = 'failed' then 'failed'
            when a.last_error is not null then 'retrying'
            else 'overdue' end as problem,
       a.attempts, a.max_attempts, a.next_attempt_at, a.last_error, a.target, a.created_at
from billing.provider_actions a
where a.state = 'failed'
   or (a.state in ('pending', 'running')
       and (a.last_error is not null or a.next_attempt_at < billing.now() - interval '15 minutes'));

comment on view billing.provider_action_problems is
  'Provider actions the provider has not confirmed: failed (do it by hand in the provider dashboard, then record it), retrying (read last_error), overdue (provider-sync is not being called).';

/**
 * Organizations using at least the lowest alert threshold (75 % by default) of a quota window
 * now: the current window's count against the plan in effect.
 */
create view billing.quota_pressure
with (security_invoker = true)
as
select q.organization_id, o.name as organization_name, e.plan_code, q.metric, q.window_unit,
       q.count as used, l.lim as limit_amount, pg_catalog.round(q.count * 100.0 / l.lim, 1) as percent,
       q.window_start,
       ((q.window_start at time zone o.timezone) + ('1 ' || q.window_unit::text)::interval) at time zone o.timezone
         as resets_at
from public.usage_quotas q
join public.organizations o on o.id = q.organization_id
cross join lateral billing.effective_plan_rows(o.id, billing.now()) e
cross join lateral (
  select case when pg_catalog.jsonb_typeof(e.features -> (q.metric || '_per_' || q.window_unit::text)) = 'number'
              then (e.features ->> (q.metric || '_per_' || q.window_unit::text))::bigint end as lim
) l
where q.window_start > billing.now() - interval '32 days'
  and q.window_start = pg_catalog.date_trunc(q.window_unit::text, billing.now() at time zone o.timezone)
                       at time zone o.timezone
  and l.lim > 0
  and q.count * 100.0 >= l.lim * coalesce((select min(t) from public.billing_settings s,
                                           pg_catalog.unnest(s.quota_alert_thresholds) t where s.id), 75);

comment on view billing.quota_pressure is
  'Organizations at or above the lowest alert threshold (75 % by default) of a quota window now: offer an upgrade before the limit refuses their calls.';

revoke all on billing.failed_deliveries, billing.signature_failures_hourly, billing.unapplied_payments,
  billing.overdue_orders, billing.job_problems, billing.notification_problems, billing.provider_action_problems,
  billing.quota_pressure from public, anon, authenticated;

grant select on billing.failed_deliveries, billing.signature_failures_hourly, billing.unapplied_payments,
  billing.overdue_orders, billing.job_problems, billing.notification_problems, billing.provider_action_problems,
  billing.quota_pressure to service_role;
