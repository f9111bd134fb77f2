-- refund_mismatches_by_refund_id: drafted by `npm run db:diff -- refund_mismatches_by_refund_id` from the difference between the database the
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
-- Why: a refund the provider made that is more than the payment had left is recorded as a
-- 'mismatch' for an operator. Refund mismatches were unique per payment like a payment's states,
-- so a second one of the same payment (two dashboard refunds after a chargeback) was dropped and
-- the ledger lost a refund the provider made (found by the simulator, seed 60). They are now
-- unique by the provider's refund id, like applied refunds. No data change is needed: a payment
-- had at most one refund mismatch, with its own refund id.

DROP INDEX "public"."payment_events_payment_status_idx";

DROP INDEX "public"."payment_events_refund_idx";

CREATE UNIQUE INDEX payment_events_payment_status_idx ON public.payment_events USING btree (PROVIDER, provider_payment_id, status)
  WHERE ((status <> 'refunded'::public.payment_status) AND (NOT ((status = 'mismatch'::public.payment_status) AND (details ? 'refund_id'::text))));

CREATE UNIQUE INDEX payment_events_refund_idx ON public.payment_events USING btree (PROVIDER, ((details ->> 'refund_id'::text)))
  WHERE ((status = 'refunded'::public.payment_status) OR ((status = 'mismatch'::public.payment_status) AND (details ? 'refund_id'::text)));
