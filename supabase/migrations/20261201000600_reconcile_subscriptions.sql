-- =================================================================================================
-- supabill: reconciliation covers provider subscriptions; every job scheduled where it runs
--
--   billing.reconcile_due_subscriptions(limit)
--     the Razorpay subscriptions the reconcile function asks Razorpay about: live subscriptions
--     (trialing, active, past_due) with a provider subscription id whose period end passed
--     billing_settings.order_pending_reconcile_after ago without a charge extending it (a lost
--     `subscription.charged`), or whose stored provider state (billing.provider_subscription_states)
--     means another status than ours; fairly across organizations. What Razorpay answers goes
--     through billing.apply_payment_event like any webhook: a charge found is a payment_captured
--     (payment_events dedupe on the payment id, so the period is extended once whichever of the
--     webhook and the reconciliation comes first), a status a subscription_status.
--   billing.schedule_jobs()
--     schedules every pg_cron job of the baseline and, where pg_net is installed, the HTTP
--     workers (reconcile, provider-sync, notifications-send) with the functions URL and the
--     service role key from Vault. Idempotent (cron.schedule upserts by name): run it again after
--     enabling pg_cron or pg_net. Until now a job was only scheduled if its extension existed
--     when its migration ran.
--
-- An upgrade of the payments module (20261120000800_payments.sql): adds two functions and calls
-- the second at the end. Nothing is replaced.
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

-- None: reconciliation reads subscriptions, payment_events and provider_subscription_states.


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Reconciliation of provider subscriptions (service_role only; the reconcile function asks the
 * provider about what this returns and applies the answer through billing.apply_payment_event):
 * up to p_limit live Razorpay subscriptions (trialing, active, past_due, with a
 * provider_subscription_id) that look stale:
 *   'period_ended'     current_period_end is more than billing_settings.order_pending_reconcile_after
 *                      in the past: the renewal charge, if Razorpay made one, never reached us;
 *   'state_disagrees'  the provider's stored state (billing.provider_subscription_states) means
 *                      another status than ours (billing.subscription_status_for).
 * Fairly across organizations: each organization's most overdue first, round by round. Each row
 * carries what the provider adapter needs to build events SQL can match (the receipt of the
 * subscription's first order) and the provider payment ids already captured for it, so only
 * charges we do not know are fetched. p_limit from 1 to 1000 (else 22023).
 */
create function billing.reconcile_due_subscriptions(p_limit integer default 50)
returns table (
  subscription_id uuid,
  organization_id uuid,
  provider text,
  provider_subscription_id text,
  status text,
  current_period_end timestamptz,
  provider_status text,
  receipt text,
  known_payment_ids text[],
  reason text
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_after interval;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  select s.order_pending_reconcile_after into v_after from public.billing_settings s;
  v_after := coalesce(v_after, interval '15 minutes');

  return query
    select d.id, d.organization_id, d.provider::text, d.provider_subscription_id, d.status::text,
           d.current_period_end, d.provider_status, d.receipt, d.known_payment_ids, d.reason
    from (
      select s.id, s.organization_id, s.provider, s.provider_subscription_id, s.status, s.current_period_end,
             st.status as provider_status,
             (select o.receipt from public.orders o
              where o.provider = s.provider and o.provider_subscription_id = s.provider_subscription_id
                and o.kind = 'new'
              order by o.created_at limit 1) as receipt,
             array(select distinct pe.provider_payment_id from public.payment_events pe
                   join public.orders o on o.id = pe.order_id
                   where pe.provider = s.provider and pe.status = 'captured'
                     and pe.provider_payment_id is not null
                     and (o.subscription_id = s.id or o.provider_subscription_id = s.provider_subscription_id)
                   order by 1) as known_payment_ids,
             case when s.current_period_end <= v_now - v_after then 'period_ended' else 'state_disagrees' end as reason,
             pg_catalog.row_number() over (partition by s.organization_id order by s.current_period_end, s.id) as round
      from public.subscriptions s
      left join billing.provider_subscription_states st
        on st.provider = s.provider and st.provider_subscription_id = s.provider_subscription_id
      where s.provider = 'razorpay'
        and s.provider_subscription_id is not null
        and s.status in ('trialing', 'active', 'past_due')
        and (s.current_period_end <= v_now - v_after
             or billing.subscription_status_for(st.status, s.current_period_end, v_now) is distinct from s.status
                and billing.subscription_status_for(st.status, s.current_period_end, v_now) is not null)
    ) d
    order by d.round, d.current_period_end, d.id
    limit p_limit;
end;
$$;
revoke execute on function billing.reconcile_due_subscriptions(integer) from public, anon, authenticated;
grant execute on function billing.reconcile_due_subscriptions(integer) to service_role;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None new.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None new.


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

/**
 * Schedules every job where it can run, and says what it did: one row per job (job, schedule,
 * state 'scheduled' or 'skipped', and why). Idempotent (cron.schedule upserts by job name), so
 * run it again after enabling pg_cron or pg_net (hosted Supabase: Database > Extensions):
 *   pg_cron: billing-expire, billing-renewal-reminders, billing-dunning, billing-purge,
 *            ai-release-stale-reservations, ai-purge-cache (the SQL jobs);
 *   pg_cron and pg_net: the HTTP workers supabill-reconcile-orders (POST /reconcile),
 *            supabill-provider-sync (POST /provider-sync), supabill-notifications-send
 *            (POST /notifications-send), each with the functions URL and the service role key
 *            read from Vault at every run (secrets 'supabill_functions_url' and
 *            'supabill_service_role_key'; without them the job selects nothing and calls nothing).
 * Without pg_cron nothing is scheduled (run the job functions and POST the workers from your own
 * scheduler). For postgres (the SQL editor, migrations) only.
 */
create function billing.schedule_jobs()
returns table (job text, schedule text, state text, detail text)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_cron boolean := exists (select from pg_catalog.pg_extension e where e.extname = 'pg_cron');
  v_net boolean := exists (select from pg_catalog.pg_extension e where e.extname = 'pg_net');
  v_vault boolean := pg_catalog.to_regclass('vault.decrypted_secrets') is not null;
  v_job record;
begin
  for v_job in
    select j.name, j.cron, j.command, j.worker
    from (values
      ('billing-expire', '*/5 * * * *', 'select billing.job_expire()', null),
      ('billing-renewal-reminders', '15 * * * *', 'select billing.job_renewal_reminders()', null),
      ('billing-dunning', '30 4 * * *', 'select billing.job_dunning()', null),
      ('billing-purge', '45 3 * * *', 'select billing.job_purge()', null),
      ('ai-release-stale-reservations', '* * * * *', 'select billing.job_ai_release_stale_reservations()', null),
      ('ai-purge-cache', '17 * * * *', 'select billing.job_ai_purge_cache()', null),
      ('supabill-reconcile-orders', '*/10 * * * *', null, 'reconcile'),
      ('supabill-provider-sync', '* * * * *', null, 'provider-sync'),
      ('supabill-notifications-send', '* * * * *', null, 'notifications-send')
    ) as j(name, cron, command, worker)
  loop
    job := v_job.name;
    schedule := v_job.cron;
    if not v_cron then
      state := 'skipped';
      detail := 'pg_cron is not installed: enable it, then run select billing.schedule_jobs()';
    elsif v_job.worker is not null and not v_net then
      state := 'skipped';
      detail := pg_catalog.format('pg_net is not installed: POST /functions/v1/%s from another scheduler, '
                                  'or enable pg_net and run select billing.schedule_jobs()', v_job.worker);
    else
      perform cron.schedule(v_job.name, v_job.cron, coalesce(v_job.command, pg_catalog.format($job$
        select net.http_post(
          url := u.decrypted_secret || %L,
          headers := jsonb_build_object('content-type', 'application/json',
                                        'authorization', 'Bearer ' || k.decrypted_secret),
          body := '{}'::jsonb,
          timeout_milliseconds := 60000
        )
        from vault.decrypted_secrets u, vault.decrypted_secrets k
        where u.name = 'supabill_functions_url' and k.name = 'supabill_service_role_key'
      $job$, '/' || v_job.worker)));
      state := 'scheduled';
      detail := case
        when v_job.worker is null then v_job.command
        when v_vault then pg_catalog.format('POST /functions/v1/%s with the URL and key from Vault', v_job.worker)
        else pg_catalog.format('POST /functions/v1/%s: Vault is not installed, so the job calls nothing until '
                               'the secrets supabill_functions_url and supabill_service_role_key exist', v_job.worker)
      end;
    end if;
    return next;
  end loop;
end;
$$;
revoke execute on function billing.schedule_jobs() from public, anon, authenticated, service_role;

-- Schedule what this database can run now; run it again after enabling an extension.
select billing.schedule_jobs();
