-- =================================================================================================
-- supabill: notification delivery: who an email goes to, what it needs, retries and giving up
--
--   public.notifications.failed_at
--     a notification that will never be sent (a permanent provider error, no recipient, a
--     template that cannot render, or ten failed attempts) is marked failed with its reason in
--     last_error; the sender no longer claims it, and operators see it.
--   billing.notification_recipients(notification id)
--     the addresses a notification goes to: the organization's billing email when set, otherwise
--     the emails of its owners and admins (auth.users); kinds for owners only
--     (billing.notification_audience) go to the owners' emails whatever the billing email.
--   billing.claim_notification_deliveries(limit)
--     billing.claim_notifications plus the recipients and what a template needs (organization,
--     time zone, plan, amount payable, merchant name, app URL): one call for the sender.
--   billing.retry_notification(id, error, retry after), billing.mark_notification_failed(id, error)
--     a transient failure is retried after a backoff (30 s doubling to 1 hour, or the provider's
--     Retry-After when longer), and fails for good at the tenth attempt; a permanent one fails now.
--   billing.claim_notifications, billing.mark_notification_sent (replaced)
--     the claim skips failed rows and gives up on rows whose ten leases ran out; a send error
--     given to mark_notification_sent is now a retry after the backoff, not at once.
--   billing.purge_batch (replaced)
--     sent and failed notifications are deleted billing_settings.notification_retention_days
--     (default 90) after they were sent or failed; everything else it did stays as it was.
--
-- An upgrade of the operations module (20261120000500_operations.sql) and of
-- 20261201000200_per_person_limits.sql's billing.purge_batch.
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

-- -------------------------------------------------------------------------------------------------
-- notifications: failed for good
-- -------------------------------------------------------------------------------------------------

alter table public.notifications
  add column failed_at timestamptz,
  add constraint notifications_sent_or_failed check (sent_at is null or failed_at is null);
comment on column public.notifications.failed_at is
  'When the sender gave up on this notification (the reason is in last_error); null while it is still to be sent or once sent.';
comment on column public.notifications.locked_until is
  'Not claimable before this time: the lease of a sender holding it, or the backoff after a failed attempt.';

/** The rows a sender may claim, oldest first (replaces the index over unsent rows). */
drop index public.notifications_unsent_idx;
create index notifications_due_idx on public.notifications (created_at) where sent_at is null and failed_at is null;

-- -------------------------------------------------------------------------------------------------
-- billing_settings: how long sent and failed notifications are kept
-- -------------------------------------------------------------------------------------------------

alter table public.billing_settings
  add column notification_retention_days integer not null default 90
    constraint billing_settings_notification_retention_days_range
      check (notification_retention_days between 1 and 3650);
comment on column public.billing_settings.notification_retention_days is
  'Days a sent or failed notification is kept before billing-purge deletes it. Default 90.';


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Who a kind of notification is for: 'owners' (the organization's owners only, whatever its
 * billing email: a provider action that failed, a dispute) or 'billing' (the billing email when
 * set, else owners and admins).
 */
create function billing.notification_audience(p_kind text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case when p_kind in ('provider_action_failed', 'payment_disputed', 'subscription_disputed')
              then 'owners' else 'billing' end;
end;
$$;
revoke execute on function billing.notification_audience(text) from public, anon, authenticated;
grant execute on function billing.notification_audience(text) to service_role;

/** A text that is a uuid, as a uuid; null for anything else (payload values read by the sender). */
create function billing.jsonb_uuid(p_text text)
returns uuid
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case when p_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then p_text::uuid end;
end;
$$;
revoke execute on function billing.jsonb_uuid(text) from public, anon, authenticated;
grant execute on function billing.jsonb_uuid(text) to service_role;

/**
 * The email addresses a notification goes to, lower-cased, distinct and sorted: for the 'billing'
 * audience the organization's billing_email when set, otherwise the emails of its owners and
 * admins; for 'owners' the owners' emails (billing.notification_audience). Users without an email
 * are skipped. An empty array when nobody can be reached; null for an unknown notification.
 * service_role only.
 */
create function billing.notification_recipients(p_notification_id uuid)
returns text[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_note public.notifications;
  v_org public.organizations;
  v_roles public.member_role[];
begin
  select * into v_note from public.notifications n where n.id = p_notification_id;
  if not found then
    return null;
  end if;
  select * into v_org from public.organizations o where o.id = v_note.organization_id;
  if billing.notification_audience(v_note.kind) = 'billing' then
    if nullif(btrim(v_org.billing_email), '') is not null then
      return array[lower(btrim(v_org.billing_email))];
    end if;
    v_roles := array['owner', 'admin']::public.member_role[];
  else
    v_roles := array['owner']::public.member_role[];
  end if;
  return coalesce((
    select array_agg(distinct lower(btrim(u.email)) order by lower(btrim(u.email)))
    from public.organization_members m
    join auth.users u on u.id = m.user_id
    where m.organization_id = v_note.organization_id and m.role = any (v_roles)
      and nullif(btrim(u.email), '') is not null), '{}'::text[]);
end;
$$;
revoke execute on function billing.notification_recipients(uuid) from public, anon, authenticated;
grant execute on function billing.notification_recipients(uuid) to service_role;

/**
 * What a template needs besides the payload, as one object:
 *   organization {id, name, billing_name, timezone}, seller_legal_name, app_success_url,
 *   plan {id, code, name, interval} (the payload's new_plan_id, plan_id or plan_code, else the
 *   subscription's plan), old_plan {code, name} (plan_downgraded),
 *   amount_cents and currency: for a payment_failed or payment_disputed the payload's amount (what
 *   the payment was), else the plan's price as payable, GST included the way an order of it would
 *   be (billing.order_tax_quote; a provider subscription's price includes tax; the reminders'
 *   payload amount_cents is the plan's price before tax),
 *   subscription {id, status, current_period_end, cancel_at_period_end, provider,
 *   provider_subscription_id}.
 * Null for an unknown notification. service_role only.
 */
create function billing.notification_context(p_notification_id uuid)
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

  if v_note.kind in ('payment_failed', 'payment_disputed') and v_note.payload ->> 'amount_cents' ~ '^[0-9]{1,15}$' then
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


/**
 * For a notification sender (service_role): claims up to p_limit notifications due, oldest first,
 * skipping rows another sender holds (for update skip locked): not sent, not failed, and not held
 * (locked_until, a lease or a backoff, in the past). A claim is a 5-minute lease and counts an
 * attempt; a row not marked sent by then is claimed again. A row whose 10 attempts are used up and
 * whose last lease ran out is marked failed ('gave up after 10 attempts') instead.
 */
create or replace function billing.claim_notifications(p_limit integer default 100)
returns setof public.notifications
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  update public.notifications n
  set failed_at = v_now, locked_until = null,
      last_error = left(pg_catalog.format('gave up after %s attempts%s', n.attempts,
                                          ': ' || n.last_error), 2000)
  where n.id in (
    select x.id from public.notifications x
    where x.sent_at is null and x.failed_at is null and x.attempts >= 10
      and (x.locked_until is null or x.locked_until <= v_now)
    limit p_limit
    for update skip locked);
  return query
    with claimed as (
      select n.id from public.notifications n
      where n.sent_at is null and n.failed_at is null and n.attempts < 10
        and (n.locked_until is null or n.locked_until <= v_now)
      order by n.created_at
      limit p_limit
      for update skip locked
    )
    update public.notifications n
    set attempts = n.attempts + 1, locked_until = v_now + interval '5 minutes'
    from claimed c
    where n.id = c.id
    returning n.*;
end;
$$;

/**
 * For the notifications-send function (service_role): claims up to p_limit due notifications
 * (billing.claim_notifications) and returns each with its recipients
 * (billing.notification_recipients) and what its template needs (billing.notification_context).
 */
create function billing.claim_notification_deliveries(p_limit integer default 100)
returns table (
  id uuid,
  organization_id uuid,
  subscription_id uuid,
  kind text,
  payload jsonb,
  dedupe_key text,
  created_at timestamptz,
  attempts integer,
  recipients text[],
  context jsonb
)
language plpgsql
set search_path = ''
as $$
begin
  return query
  select c.id, c.organization_id, c.subscription_id, c.kind, c.payload, c.dedupe_key, c.created_at, c.attempts,
           billing.notification_recipients(c.id), billing.notification_context(c.id)
    from billing.claim_notifications(p_limit) c
    order by c.created_at, c.id;
end;
$$;
revoke execute on function billing.claim_notification_deliveries(integer) from public, anon, authenticated;
grant execute on function billing.claim_notification_deliveries(integer) to service_role;

/**
 * A claimed notification's attempt failed for a reason that may pass (network, the provider's
 * 5xx or 429): it is claimable again after billing.retry_backoff(attempts,
 * p_retry_after_seconds), the same backoff as the provider actions', or, when that was its 10th attempt, marked failed with the error.
 * Returns the notification's state: 'retry', 'failed', or null when it is unknown, sent or failed.
 * service_role only.
 */
create function billing.retry_notification(p_id uuid, p_error text, p_retry_after_seconds integer default null)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_state text;
begin
  update public.notifications n
  set locked_until = case when n.attempts < 10
                          then v_now + billing.retry_backoff(n.attempts, p_retry_after_seconds) end,
      failed_at = case when n.attempts >= 10 then v_now end,
      last_error = left(coalesce(p_error, 'failed'), 2000)
  where n.id = p_id and n.sent_at is null and n.failed_at is null
  returning case when n.failed_at is null then 'retry' else 'failed' end into v_state;
  return v_state;
end;
$$;
revoke execute on function billing.retry_notification(uuid, text, integer) from public, anon, authenticated;
grant execute on function billing.retry_notification(uuid, text, integer) to service_role;

/**
 * Marks a notification failed for good (a permanent provider error, no recipient, a template that
 * cannot render): it is never claimed again and p_error (required) is kept in last_error for
 * operators. Returns false when it is unknown, sent or already failed. service_role only.
 */
create function billing.mark_notification_failed(p_id uuid, p_error text)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if nullif(btrim(p_error), '') is null then
    raise exception 'a failed notification needs a reason' using errcode = 'invalid_parameter_value';
  end if;
  update public.notifications n
  set failed_at = billing.now(), locked_until = null, last_error = left(p_error, 2000)
  where n.id = p_id and n.sent_at is null and n.failed_at is null;
  return found;
end;
$$;
revoke execute on function billing.mark_notification_failed(uuid, text) from public, anon, authenticated;
grant execute on function billing.mark_notification_failed(uuid, text) to service_role;

/**
 * Marks a claimed notification sent (p_error null), or records a failed attempt
 * (billing.retry_notification: claimable again after the backoff, failed at the 10th attempt).
 * Returns false when the notification is unknown, already sent or failed. service_role only.
 */
create or replace function billing.mark_notification_sent(p_id uuid, p_error text default null)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if p_error is null then
    update public.notifications n set sent_at = billing.now(), locked_until = null, last_error = null
    where n.id = p_id and n.sent_at is null and n.failed_at is null;
    return found;
  end if;
  return billing.retry_notification(p_id, p_error) is not null;
end;
$$;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: notifications keep their policy (owners and admins read their organization's).


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None: delivery is service-only.


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

/**
 * billing-purge, one batch (p_limit rows per kind): usage counters whose window ended more than
 * p_usage_retention ago (default 35 days; raw usage_metrics events are kept), notifications sent
 * or failed more than billing_settings.notification_retention_days ago (default 90), job runs
 * older than 30 days, and provider webhook payloads received more than
 * billing_settings.webhook_payload_retention_days ago (default 90): the payload becomes {} and
 * payload_purged_at is set, while provider, event_id, event_type and the times stay, so a
 * re-delivery is still a duplicate. (The AI gateway's module purges its own cache with its own
 * job, ai-purge-cache.)
 */
create or replace function billing.purge_batch(
  p_limit integer,
  p_usage_retention interval default interval '35 days'
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_payload_retention interval := pg_catalog.make_interval(
    days => coalesce((select s.webhook_payload_retention_days from public.billing_settings s), 90));
  v_notification_retention interval := pg_catalog.make_interval(
    days => coalesce((select s.notification_retention_days from public.billing_settings s), 90));
  v_total integer := 0;
  v_n integer;
begin
  -- Counters: the window ends at window_start + its unit; keep it p_usage_retention past that.
  delete from public.usage_quotas q
  where (q.organization_id, q.metric, q.window_unit, q.window_start) in (
    select u.organization_id, u.metric, u.window_unit, u.window_start
    from public.usage_quotas u
    where u.window_start < v_now - p_usage_retention - interval '1 minute'
      and u.window_start + ('1 ' || u.window_unit::text)::interval + p_usage_retention <= v_now
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  -- Notifications done with (sent, or given up on) once their retention has passed.
  delete from public.notifications n
  where n.id in (
    select x.id from public.notifications x
    where (x.sent_at < v_now - v_notification_retention or x.failed_at < v_now - v_notification_retention)
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  -- Provider payloads (personal data of buyers): stripped once, the delivery record kept.
  update billing.webhook_events w
  set payload = '{}'::jsonb, payload_purged_at = v_now
  where w.id in (
    select x.id from billing.webhook_events x
    where x.payload_purged_at is null and x.received_at < v_now - v_payload_retention
    order by x.received_at
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  delete from billing.job_runs r
  where r.id in (select x.id from billing.job_runs x where x.started_at < pg_catalog.clock_timestamp() - interval '30 days'
                 limit p_limit);
  return v_total;
end;
$$;
