-- What this migration does: billing.sync_provider_status no longer makes a past-due subscription
-- active again once the period end it was cancelled at has passed (a Razorpay subscription.active
-- read by reconcile after that end, before the jobs ended it): the jobs record its end at the
-- period end, so the reactivation's later history row made the revenue analytics count a
-- canceled subscription's MRR (found by the simulator).
-- no_reactivation_after_a_cancelled_period_end: drafted by `npm run db:diff -- no_reactivation_after_a_cancelled_period_end` from the difference between the database the
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

CREATE OR REPLACE FUNCTION billing.sync_provider_status (
  p_subscription_id uuid,
  p_provider_status text,
  p_status_at       timestamp with time zone,
  p_event           jsonb
)
  RETURNS boolean
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_target public.subscription_status;
begin
  select * into v_sub from public.subscriptions s where s.id = p_subscription_id for update;
  v_target := billing.subscription_status_for(p_provider_status, v_sub.current_period_end, v_now);
  if v_target is null then
    return true;
  end if;
  if p_provider_status = 'completed' and v_target = 'active' then
    -- No more charges will come: the paid period runs out, then the subscription ends.
    if v_sub.status = 'active' and v_sub.cancel_at_period_end then
      return true;
    end if;
  elsif v_target = v_sub.status then
    return true;
  end if;
  if v_target in ('trialing', 'active') and v_sub.status = 'past_due' and v_sub.cancel_at_period_end
     and v_sub.current_period_end <= v_now then
    -- Cancelled at a period end that has passed: it is over (the jobs record its end at that
    -- period end); the provider's status does not make it active again after it.
    return true;
  end if;
  if v_target in ('trialing', 'active', 'past_due') and v_sub.status in ('canceled', 'expired')
     and p_status_at <= coalesce(v_sub.ended_at, v_sub.canceled_at, '-infinity'::timestamptz) then
    -- The provider said so before the subscription ended here: the end stands.
    return true;
  end if;
  if v_target in ('trialing', 'active', 'past_due') and v_sub.status not in ('pending_payment', 'trialing', 'active', 'past_due')
     and exists (select 1 from public.subscriptions s
                 where s.organization_id = v_sub.organization_id and s.id <> v_sub.id
                   and s.status in ('pending_payment', 'trialing', 'active', 'past_due')) then
    return false;
  end if;
  if v_target in ('active', 'past_due') and v_sub.current_period_end is null then
    -- Nothing paid yet: the first charge will set the period.
    return true;
  end if;

  perform billing.set_change_context(
    case p_provider_status when 'completed' then 'completed' when 'paused' then 'paused'
      else case v_target when 'active' then 'reactivated' when 'past_due' then 'past_due'
                         when 'canceled' then 'canceled' else 'expired' end end,
    'provider',
    p_reason => pg_catalog.format('%s %s', p_event ->> 'provider', p_event ->> 'event_type'),
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'provider_status', p_provider_status,
                                                'provider_subscription_id', v_sub.provider_subscription_id),
    p_effective_at => v_now);
  -- Active again after its past due (a dispute, a failed debit) is not a resumption: a cancel
  -- scheduled at the period end stands; only an ended subscription made active again drops it.
  update public.subscriptions s
  set status = v_target,
      cancel_at_period_end = case when p_provider_status = 'completed' then true
                                  when v_target = 'active' and s.status in ('canceled', 'expired') then false
                                  else s.cancel_at_period_end end,
      canceled_at = case when v_target = 'canceled' then coalesce(s.canceled_at, v_now)
                         when v_target = 'active' and s.status in ('canceled', 'expired') then null
                         else s.canceled_at end,
      ended_at = case when v_target in ('canceled', 'expired') then coalesce(s.ended_at, v_now)
                      when v_target in ('active', 'past_due') then null else s.ended_at end
  where s.id = v_sub.id;
  return true;
end;
$function$;
