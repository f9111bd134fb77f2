-- What this migration does: the batch function of billing-partitions checks its batch size like
-- every batch function (it was unused: its work is whole partitions), which db lint asks for.
--
-- partition_batch_checks_its_limit: drafted by `npm run db:diff -- partition_batch_checks_its_limit` from the difference between the database the
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

CREATE OR REPLACE FUNCTION billing.maintain_partitions_batch (
  p_limit integer
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  perform billing.check_batch_limit(p_limit);
  return billing.maintain_partitions(billing.now());
end;
$function$;
