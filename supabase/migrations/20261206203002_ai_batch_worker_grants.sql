-- What this migration does: the ai-batch worker (service_role) may run billing.lock_ai_batch_requests
-- and billing.queue_ai_batch_completed, which billing.settle_ai_batch and billing.ai_batch_run_failed call.
--
-- ai_batch_worker_grants: drafted by `npm run db:diff -- ai_batch_worker_grants` from the difference between the database the
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

REVOKE ALL ON FUNCTION "billing"."lock_ai_batch_requests"(uuid) FROM "service_role";

GRANT EXECUTE ON FUNCTION "billing"."lock_ai_batch_requests"(uuid) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."queue_ai_batch_completed"(public.ai_batches) FROM "service_role";

GRANT EXECUTE ON FUNCTION "billing"."queue_ai_batch_completed"(public.ai_batches) TO "service_role";
