-- What this migration does: billing.provider_customers and billing.provider_settings without row
-- level security, like every other table of the private billing schema (PostgREST never exposes
-- it; grants keep it to service_role): RLS with no policy was only an advisor warning. No data changes.
-- billing_tables_without_rls: drafted by `npm run db:diff -- billing_tables_without_rls` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.

ALTER TABLE "billing"."provider_customers"
  DISABLE ROW LEVEL SECURITY;

ALTER TABLE "billing"."provider_settings"
  DISABLE ROW LEVEL SECURITY;
