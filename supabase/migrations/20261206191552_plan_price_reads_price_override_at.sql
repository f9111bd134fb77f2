-- plan_price_reads_price_override_at: drafted by `npm run db:diff -- plan_price_reads_price_override_at` from the difference between the database the
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
-- What this migration does: billing.plan_price_for reads the override through
-- billing.price_override_at instead of a copy of its query, so the rule of which override is in
-- effect is written once; price_override_at is granted to authenticated like plan_price_for (row
-- level security shows a member only its own organization's overrides). No behaviour change.

SET local check_function_bodies = off;

CREATE OR REPLACE FUNCTION billing.plan_price_for (
  p_organization_id uuid,
  p_plan            public.billing_plans,
  p_at              timestamp with time zone
)
  RETURNS bigint
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  if p_plan.id is null then
    return p_plan.price_cents;
  end if;
  return coalesce((billing.price_override_at(p_organization_id, p_plan.id, p_at)).price_paise, p_plan.price_cents);
end;
$function$;

REVOKE ALL ON FUNCTION "billing"."price_override_at"(uuid, uuid, timestamp WITH time zone) FROM "authenticated";

GRANT EXECUTE ON FUNCTION "billing"."price_override_at"(uuid, uuid, timestamp WITH time zone) TO "authenticated";
