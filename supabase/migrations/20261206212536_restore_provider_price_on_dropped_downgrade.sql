-- What this migration does: a scheduled downgrade of a provider subscription (Stripe) dropped
-- without taking effect (a cancellation at the period end, a new plan change, an operator) puts
-- the provider's price back: the change_plan action that scheduled it had already switched
-- Stripe's price to the lower plan, so its renewal charged the dropped plan while we still bill
-- the current one (the debit sent for review and refunded, the plan lost). A trigger on
-- subscriptions queues a change_plan action back to the plan in effect.
--
-- restore_provider_price_on_dropped_downgrade: drafted by `npm run db:diff -- restore_provider_price_on_dropped_downgrade` from the difference between the database the
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

CREATE OR REPLACE FUNCTION billing.restore_provider_plan()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_plan public.billing_plans;
  v_dropped text;
begin
  select p.code into v_dropped from public.billing_plans p where p.id = old.pending_plan_id;
  if (select a.payload ->> 'plan_code'
      from billing.provider_actions a
      where a.kind = 'change_plan' and a.provider = new.provider and a.state <> 'failed'
        and a.target ->> 'provider_subscription_id' = new.provider_subscription_id
      order by a.created_at desc, a.id desc
      limit 1) is distinct from v_dropped then
    return null;
  end if;
  select * into v_plan from public.billing_plans p where p.id = new.plan_id;
  perform billing.provider_plan_change_action(
    new, v_plan,
    pg_catalog.jsonb_build_object(
      'method', 'scheduled',
      'period_price_cents',
      (billing.checkout_discount(new.organization_id, v_plan, null, billing.now(), false) ->> 'price_cents')::bigint),
    null);
  return null;
end;
$function$;

CREATE TRIGGER subscriptions_restore_provider_plan
  AFTER UPDATE OF pending_plan_id ON public.subscriptions
  FOR EACH ROW
  WHEN (((old.pending_plan_id IS NOT NULL) AND (new.pending_plan_id IS NULL) AND (new.plan_id = old.plan_id) AND (new.provider_subscription_id IS
    NOT NULL) AND (new.provider <> 'manual'::public.payment_provider) AND
    (new.status = ANY (ARRAY['trialing'::public.subscription_status, 'active'::public.subscription_status, 'past_due'::public.subscription_status]))))
  EXECUTE FUNCTION billing.restore_provider_plan();

REVOKE ALL ON FUNCTION "billing"."restore_provider_plan"() FROM PUBLIC;
