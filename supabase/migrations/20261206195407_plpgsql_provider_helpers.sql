-- What this migration does: billing.provider_can_resume and billing.provider_setting in plpgsql,
-- as every function here is (an sql-language function with SET search_path is planned on every
-- call). Same results. No data changes.
-- plpgsql_provider_helpers: drafted by `npm run db:diff -- plpgsql_provider_helpers` from the difference between the database the
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

DROP FUNCTION "billing"."provider_can_resume"(public.subscriptions);

DROP FUNCTION "billing"."provider_setting"(public.payment_provider, text);

CREATE OR REPLACE FUNCTION billing.provider_can_resume (
  p_sub public.subscriptions
)
  RETURNS boolean
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
begin
  return p_sub.provider_subscription_id is null or p_sub.provider is distinct from 'razorpay';
end;
$function$;

CREATE OR REPLACE FUNCTION billing.provider_setting (
  p_provider public.payment_provider,
  p_name     text
)
  RETURNS text
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return (select ps.value from billing.provider_settings ps where ps.provider = p_provider and ps.name = p_name);
end;
$function$;

REVOKE ALL ON FUNCTION "billing"."provider_can_resume"(public.subscriptions) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."provider_setting"(public.payment_provider, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."provider_setting"(public.payment_provider, text) TO "service_role";
