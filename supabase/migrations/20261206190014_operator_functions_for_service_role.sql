-- operator_functions_for_service_role: drafted by `npm run db:diff -- operator_functions_for_service_role` from the difference between the database the
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
-- What this migration does: service_role may run billing.require_operator_reason, which every
-- billing.operator_* function calls first; without it they worked only as postgres (the SQL
-- editor), while they are granted to service_role and documented for it.

SET local check_function_bodies = off;

REVOKE ALL ON FUNCTION "billing"."require_operator_reason"(text) FROM "service_role";

GRANT EXECUTE ON FUNCTION "billing"."require_operator_reason"(text) TO "service_role";
