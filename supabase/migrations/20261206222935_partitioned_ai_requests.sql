-- What this migration does: keeps public.ai_requests (the AI gateway's log, one row per call) in
-- monthly partitions by created_at, with its rows; kept forever unless
-- billing_settings.ai_request_retention_days says otherwise. request_id stays unique by how
-- billing.ai_reserve makes it (a unique key of a partitioned table holds within a month only)
-- and is looked up through an index; public.ai_batch_requests.request_id is no longer a foreign
-- key to it (it would have to carry created_at and would stop a month from being dropped).
--
-- partitioned_ai_requests: drafted by `npm run db:diff -- partitioned_ai_requests` from the difference between the database the
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

ALTER TABLE "public"."ai_batch_requests"
  DROP CONSTRAINT "ai_batch_requests_request_id_fkey";

DROP FUNCTION "billing"."ai_charge_cost"(public.ai_requests, bigint);

-- By hand: the diff would drop the table and its rows. Instead the old table is renamed out of
-- the way (with the indexes whose names the new table takes; its policy goes with it), its rows
-- are copied into the partitioned table at the end of this file, then it is dropped.
ALTER TABLE "public"."ai_requests" RENAME TO "ai_requests_unpartitioned";
ALTER TABLE "public"."ai_requests_unpartitioned" DROP CONSTRAINT "ai_requests_pkey";
ALTER TABLE "public"."ai_requests_unpartitioned" DROP CONSTRAINT "ai_requests_request_id_key";
DROP INDEX "public"."ai_requests_organization_id_idx";
DROP INDEX "public"."ai_requests_user_id_idx";
DROP INDEX "public"."ai_requests_price_idx";
DROP INDEX "public"."ai_requests_pending_expires_at_idx";

CREATE TABLE "public"."ai_requests" (
  "id"                   uuid                     NOT NULL,
  "organization_id"      uuid                     NOT NULL,
  "user_id"              uuid,
  "request_id"           text                     NOT NULL,
  "model"                text                     NOT NULL,
  "status"               public.ai_request_status NOT NULL,
  "cached"               boolean                  NOT NULL,
  "stream"               boolean                  NOT NULL,
  "max_tokens"           integer,
  "reserved_tokens"      bigint                   NOT NULL,
  "prompt_tokens"        integer,
  "completion_tokens"    integer,
  "counted_tokens"       bigint,
  "latency_ms"           integer,
  "error_code"           text,
  "cache_key"            text,
  "expires_at"           timestamp with time zone,
  "completed_at"         timestamp with time zone,
  "created_at"           timestamp with time zone NOT NULL,
  "price_effective_from" timestamp with time zone,
  "cached_prompt_tokens" integer,
  "reserved_paise"       bigint,
  "cost_paise"           numeric(20,6),
  "charged_paise"        bigint,
  "batch"                boolean                  NOT NULL
) PARTITION BY RANGE (created_at);

ALTER TABLE "public"."ai_requests"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."ai_requests" FROM "anon";

ALTER TABLE "public"."ai_requests"
  ALTER COLUMN "batch" SET DEFAULT false;

ALTER TABLE "public"."ai_requests"
  ALTER COLUMN "cached" SET DEFAULT false;

ALTER TABLE "public"."ai_requests"
  ALTER COLUMN "created_at" SET DEFAULT now();

ALTER TABLE "public"."ai_requests"
  ALTER COLUMN "id" SET DEFAULT gen_random_uuid();

ALTER TABLE "public"."ai_requests"
  ALTER COLUMN "reserved_tokens" SET DEFAULT 0;

ALTER TABLE "public"."ai_requests"
  ALTER COLUMN "stream" SET DEFAULT false;

CREATE OR REPLACE FUNCTION billing.ai_charge_cost (
  p_request public.ai_requests,
  p_paise   bigint
)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_charge record;
  v_per_unit numeric;
  v_answer record;
begin
  select c.* into v_charge from public.credit_charges c
  where c.organization_id = p_request.organization_id and c.request_id = p_request.request_id;
  if v_charge.id is null then
    return null;
  end if;
  select e.credits_per_unit into v_per_unit from public.credit_events e where e.code = v_charge.event_code;
  v_answer := billing.settle_credits(p_request.organization_id, p_request.request_id,
                                     pg_catalog.ceil(p_paise * v_per_unit)::bigint);
  if not v_answer.charged then
    v_answer := billing.settle_credits(p_request.organization_id, p_request.request_id,
                                       v_charge.charged + billing.available_credits(p_request.organization_id));
  end if;
  return v_answer.credits;
end;
$function$;

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_cache_key_check" CHECK ((cache_key ~ '^[0-9a-f]{64}$'::text));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_cached_prompt_tokens_check" CHECK ((cached_prompt_tokens >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_charged_paise_check" CHECK ((charged_paise >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_completion_tokens_check" CHECK ((completion_tokens >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_cost_paise_check" CHECK ((cost_paise >= (0)::numeric));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_counted_tokens_check" CHECK ((counted_tokens >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_error_code_check" CHECK ((error_code ~ '^[a-z][a-z0-9_]{0,62}$'::text));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_latency_ms_check" CHECK ((latency_ms >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_max_tokens_check" CHECK ((max_tokens > 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_model_check" CHECK (((length(model) >= 1) AND (length(model) <= 128)));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_pending_expires" CHECK (((status <> 'pending'::public.ai_request_status) OR (expires_at IS NOT NULL)));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_pkey" PRIMARY KEY (id, created_at);

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_price_fkey" FOREIGN KEY (model, price_effective_from) REFERENCES public.ai_model_prices(model, effective_from) ON DELETE RESTRICT;

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_prompt_tokens_check" CHECK ((prompt_tokens >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_request_id_check" CHECK ((request_id ~ '^ai_[0-9a-f]{32}$'::text));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_reserved_paise_check" CHECK ((reserved_paise >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_reserved_tokens_check" CHECK ((reserved_tokens >= 0));

ALTER TABLE "public"."ai_requests"
  ADD CONSTRAINT "ai_requests_user_id_fkey" FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE SET NULL;

-- By hand: the default partition (in billing_partitions, which the diff does not see) before the
-- indexes, which are then made on every partition (not ON ONLY the parent), in the schema's order.
create table billing_partitions.ai_requests_default partition of public.ai_requests default;

select billing.secure_partition('billing_partitions', 'ai_requests_default', 'ai_requests');

CREATE INDEX ai_requests_request_id_idx ON public.ai_requests USING btree (request_id);

CREATE INDEX ai_requests_organization_id_idx ON public.ai_requests USING btree (organization_id, created_at);

CREATE INDEX ai_requests_user_id_idx ON public.ai_requests USING btree (user_id);

CREATE INDEX ai_requests_price_idx ON public.ai_requests USING btree (model, price_effective_from);

CREATE INDEX ai_requests_pending_expires_at_idx ON public.ai_requests USING btree (expires_at)
  WHERE (status = 'pending'::public.ai_request_status);

CREATE POLICY "Owners and admins can read their organization's AI requests" ON "public"."ai_requests"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids(ARRAY['owner'::text, 'admin'::text]) AS member_organization_ids)));

COMMENT ON COLUMN "public"."ai_requests"."batch" IS 'A request of a nightly batch (public.ai_batch_requests): reserved at submission like an interactive call, without the per-user rate limit, and settled at the batch price.';

COMMENT ON COLUMN "public"."ai_requests"."charged_paise" IS 'cost_paise rounded up to whole paise: what the call was counted at against ai_spend_paise_per_<window> and charged in credits (the credit event''s credits per paisa).';

COMMENT ON COLUMN "public"."ai_requests"."cost_paise" IS 'What the call cost at its model''s price in effect when it was reserved (price_effective_from), in paise, exact: a call of a few hundred tokens costs a fraction of a paisa, and the sum of these is what the model provider bills.';

COMMENT ON COLUMN "public"."ai_requests"."reserved_paise" IS 'The reservation''s cost (prompt estimate and max_tokens at the model''s price), rounded up: what was held against the spend cap and in credits until the settlement.';

COMMENT ON TABLE "public"."ai_requests" IS 'The AI gateway''s log: one row per request, with its reservation, usage, cost and outcome.';

REVOKE ALL ON FUNCTION "billing"."ai_charge_cost"(public.ai_requests, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."ai_charge_cost"(public.ai_requests, bigint) TO "service_role";

REVOKE ALL ON TABLE "public"."ai_requests" FROM "authenticated";

GRANT SELECT ON TABLE "public"."ai_requests" TO "authenticated";

REVOKE ALL ON TABLE "public"."ai_requests" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."ai_requests" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."ai_requests" TO "service_role";

-- By hand: the table is registered (data, which a diff does not see), the rows copied over (into
-- the default partition, from which billing.maintain_partitions moves each month into its
-- partition), and the old table dropped.
insert into billing.partitioned_tables (table_name, partition_column, retention_setting, months_ahead)
values ('public.ai_requests', 'created_at', 'ai_request_retention_days', 3);

insert into public.ai_requests (id, organization_id, user_id, request_id, model, status, cached, stream, max_tokens,
  reserved_tokens, prompt_tokens, completion_tokens, counted_tokens, latency_ms, error_code, cache_key, expires_at,
  completed_at, created_at, price_effective_from, cached_prompt_tokens, reserved_paise, cost_paise, charged_paise, batch)
select id, organization_id, user_id, request_id, model, status, cached, stream, max_tokens,
  reserved_tokens, prompt_tokens, completion_tokens, counted_tokens, latency_ms, error_code, cache_key, expires_at,
  completed_at, created_at, price_effective_from, cached_prompt_tokens, reserved_paise, cost_paise, charged_paise, batch
from public.ai_requests_unpartitioned;

drop table public.ai_requests_unpartitioned;

select billing.maintain_partitions();
