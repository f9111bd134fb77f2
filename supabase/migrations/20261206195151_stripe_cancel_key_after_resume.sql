-- What this migration does: a cancel-now of a provider subscription keeps one key per
-- subscription (cancel:<id>:now, the same as the end-of-status trigger's) after a resume; only a
-- cancellation at the cycle end, which a resume undoes, gets a new key per resume. No data changes.
-- stripe_cancel_key_after_resume: drafted by `npm run db:diff -- stripe_cancel_key_after_resume` from the difference between the database the
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

CREATE OR REPLACE FUNCTION billing.provider_action (
  p_sub          public.subscriptions,
  p_at_cycle_end boolean
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_action_id uuid;
  v_resumes integer;
begin
  if p_sub.provider_subscription_id is null or p_sub.provider = 'manual' then
    return null;
  end if;
  select count(*) into v_resumes from billing.provider_actions a
  where a.provider = p_sub.provider and a.kind = 'resume'
    and a.target ->> 'provider_subscription_id' = p_sub.provider_subscription_id;
  v_action_id := billing.queue_provider_action(
    p_sub.organization_id, p_sub.provider, 'cancel',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_sub.provider_subscription_id),
    pg_catalog.jsonb_build_object('at_cycle_end', coalesce(p_at_cycle_end, true)),
    pg_catalog.format('cancel:%s:%s', p_sub.provider_subscription_id,
                      case when coalesce(p_at_cycle_end, true) then 'cycle_end' else 'now' end)
      || case when v_resumes > 0 and coalesce(p_at_cycle_end, true) then pg_catalog.format(':%s', v_resumes) else '' end,
    'user', 'the subscription was cancelled here', p_sub.id);
  return pg_catalog.jsonb_build_object('provider', p_sub.provider, 'action', 'cancel_subscription',
                                       'provider_subscription_id', p_sub.provider_subscription_id,
                                       'cancel_at_cycle_end', coalesce(p_at_cycle_end, true),
                                       'provider_action_id', v_action_id);
end;
$function$;
