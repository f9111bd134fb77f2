-- What this migration does: a billing email is confirmed through its link, the
-- billing-email-confirm function (no account needed; it calls billing.confirm_billing_email as
-- the service), so anon loses execute on confirm_billing_email: anon has no usage on schema
-- billing, so the public wrapper could not have worked for it anyway. Signed-in users keep
-- public.confirm_billing_email for an app's own confirmation page.
-- customer_emails_confirm_function: drafted by `npm run db:diff -- customer_emails_confirm_function` from the difference between the database the
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

REVOKE ALL ON FUNCTION "billing"."confirm_billing_email"(text) FROM "anon";

REVOKE ALL ON FUNCTION "public"."confirm_billing_email"(text) FROM "anon";

COMMENT ON FUNCTION "public"."confirm_billing_email"(text) IS 'Confirms a billing email with its link''s token, for an app''s signed-in page (the email''s link, the billing-email-confirm function, needs no account); until then billing emails go to owners and admins.';
