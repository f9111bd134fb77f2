-- What this migration does: adds 'stripe' to public.payment_provider, alone in its migration (a new
-- enum value cannot be used in the transaction that adds it; what uses it comes in later migrations).
--
-- stripe_payment_provider: drafted by `npm run db:diff -- stripe_payment_provider` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.

ALTER TYPE "public"."payment_provider" ADD VALUE 'stripe' AFTER 'manual';
