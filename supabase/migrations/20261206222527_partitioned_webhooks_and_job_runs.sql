-- What this migration does: keeps billing.job_runs and billing.webhook_events in monthly partitions
-- (job runs by as_of, dropped a month at a time after billing_settings.job_run_retention_days,
-- replacing billing-purge's DELETE; webhook deliveries by received_at, kept forever unless
-- webhook_event_retention_days says otherwise), with their rows; moves the webhook exactly-once
-- guard to billing.webhook_event_keys (one key per provider event, kept forever), since a unique
-- key of a partitioned table holds within one month only; adds the retention settings; puts every
-- partition in schema billing_partitions (out of the API, the types and the schema diffs).
--
-- partitioned_webhooks_and_job_runs: drafted by `npm run db:diff -- partitioned_webhooks_and_job_runs` from the difference between the database the
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

DROP VIEW "billing"."failed_deliveries";

DROP VIEW "billing"."job_problems";

DROP VIEW "billing"."unapplied_payments";

-- By hand: the diff would drop the tables and their rows. Instead the old tables are renamed out
-- of the way (with the indexes and the sequence whose names the new tables take), their rows are
-- copied into the partitioned tables at the end of this file, then they are dropped.
ALTER TABLE "billing"."job_runs" RENAME TO "job_runs_unpartitioned";
ALTER TABLE "billing"."job_runs_unpartitioned" DROP CONSTRAINT "job_runs_pkey";
DROP INDEX "billing"."job_runs_job_name_idx";
DROP INDEX "billing"."job_runs_started_at_idx";
ALTER SEQUENCE "billing"."job_runs_id_seq" RENAME TO "job_runs_unpartitioned_id_seq";

ALTER TABLE "billing"."webhook_events" RENAME TO "webhook_events_unpartitioned";
ALTER TABLE "billing"."webhook_events_unpartitioned" DROP CONSTRAINT "webhook_events_pkey";
ALTER TABLE "billing"."webhook_events_unpartitioned" DROP CONSTRAINT "webhook_events_provider_event_unique";
DROP INDEX "billing"."webhook_events_payload_unpurged_idx";
DROP INDEX "billing"."webhook_events_ignored_idx";

-- By hand: the schema of every table's partitions (a diff of public and billing does not see it).
create schema billing_partitions;

revoke all on schema billing_partitions from public;

comment on schema billing_partitions is 'The partitions of supabill''s monthly-partitioned tables (billing.maintain_partitions). Query the parent tables.';

CREATE TABLE "billing"."job_runs" (
  "id"            bigint                   GENERATED ALWAYS AS IDENTITY NOT NULL,
  "job_name"      text                     NOT NULL,
  "as_of"         timestamp with time zone NOT NULL,
  "batch_limit"   integer,
  "started_at"    timestamp with time zone NOT NULL,
  "finished_at"   timestamp with time zone,
  "rows_affected" integer,
  "error"         text
) PARTITION BY RANGE (as_of);

CREATE TABLE "billing"."webhook_event_keys" (
  "provider"         public.payment_provider  NOT NULL,
  "event_id"         text                     NOT NULL,
  "webhook_event_id" uuid                     NOT NULL,
  "received_at"      timestamp with time zone NOT NULL,
  CONSTRAINT "webhook_event_keys_event_id_check" CHECK (((length(event_id) >= 1) AND (length(event_id) <= 300))),
  CONSTRAINT "webhook_event_keys_pkey" PRIMARY KEY (PROVIDER, event_id)
);

CREATE TABLE "billing"."webhook_events" (
  "id"                uuid                     NOT NULL,
  "provider"          public.payment_provider  NOT NULL,
  "event_id"          text                     NOT NULL,
  "event_type"        text                     NOT NULL,
  "payload"           jsonb                    NOT NULL,
  "received_at"       timestamp with time zone NOT NULL,
  "processed_at"      timestamp with time zone,
  "attempts"          integer                  NOT NULL,
  "last_error"        text,
  "created_at"        timestamp with time zone NOT NULL,
  "payload_purged_at" timestamp with time zone,
  "ignored_reason"    text
) PARTITION BY RANGE (received_at);

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "job_run_retention_days" integer NOT NULL DEFAULT 30;

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "webhook_event_retention_days" integer;

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "ai_request_retention_days" integer;

ALTER TABLE "billing"."job_runs"
  ALTER COLUMN "started_at" SET DEFAULT clock_timestamp();

ALTER TABLE "billing"."webhook_events"
  ALTER COLUMN "attempts" SET DEFAULT 0;

ALTER TABLE "billing"."webhook_events"
  ALTER COLUMN "created_at" SET DEFAULT now();

ALTER TABLE "billing"."webhook_events"
  ALTER COLUMN "id" SET DEFAULT gen_random_uuid();

CREATE OR REPLACE FUNCTION billing.apply_payment_event (
  p_event jsonb
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_provider public.payment_provider;
  v_event_at timestamptz;
  v_webhook_id uuid;
  v_received_at timestamptz;
  v_order public.orders;
  v_result jsonb;
begin
  perform billing.validate_payment_event(p_event);
  v_provider := (p_event ->> 'provider')::public.payment_provider;
  v_event_at := coalesce((p_event ->> 'occurred_at')::timestamptz, v_now);

  -- Record the delivery once, already marked processed: it is applied in this transaction, so
  -- nobody ever sees it unprocessed (a failure rolls the record back with the rest, and the
  -- provider's retry starts again); later steps only add last_error. A duplicate (also a
  -- concurrent one, which waits here for the first to commit) is acknowledged without effect.
  -- An event billing does not act on (kind other) is marked with why, so an operator can tell
  -- "received and ignored" from "applied".
  -- The key first (billing.webhook_event_keys, never dropped): the delivery rows are in monthly
  -- partitions, where a unique key holds within a month only.
  insert into billing.webhook_event_keys (provider, event_id, webhook_event_id, received_at)
  values (v_provider, p_event ->> 'event_id', pg_catalog.gen_random_uuid(), v_now)
  on conflict (provider, event_id) do nothing
  returning webhook_event_id into v_webhook_id;
  if v_webhook_id is null then
    -- Its delivery row may be gone (webhook_event_retention_days): the key still answers.
    select k.webhook_event_id, k.received_at into v_webhook_id, v_received_at
    from billing.webhook_event_keys k
    where k.provider = v_provider and k.event_id = p_event ->> 'event_id';
    update billing.webhook_events w set attempts = w.attempts + 1
    where w.id = v_webhook_id and w.received_at = v_received_at;
    v_order := billing.match_order(p_event);
    return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'result', 'duplicate', 'webhook_event_id', v_webhook_id, 'reason', 'event already received',
      'order_id', v_order.id, 'order_status', v_order.status));
  end if;

  insert into billing.webhook_events (id, provider, event_id, event_type, payload, received_at, processed_at, attempts,
                                      ignored_reason)
  values (v_webhook_id, v_provider, p_event ->> 'event_id', p_event ->> 'event_type', p_event, v_now, v_now, 1,
          case when p_event ->> 'kind' = 'other'
            then pg_catalog.format('event type %s is not one billing acts on', p_event ->> 'event_type') end);

  v_result := case p_event ->> 'kind'
    when 'other' then pg_catalog.jsonb_build_object(
      'result', 'ignored', 'reason', pg_catalog.format('event type %s is not handled', p_event ->> 'event_type'))
    when 'refund_processed' then billing.apply_refund(p_event, v_event_at)
    when 'refund_failed' then billing.apply_refund_failed(p_event, v_event_at)
    when 'dispute_opened' then billing.apply_dispute(p_event, v_event_at)
    when 'dispute_won' then billing.apply_dispute(p_event, v_event_at)
    when 'dispute_lost' then billing.apply_dispute(p_event, v_event_at)
    else billing.apply_order_event(p_event, v_event_at)
  end;

  update billing.webhook_events w set last_error = v_result ->> 'last_error'
  where w.id = v_webhook_id and w.received_at = v_now and v_result ->> 'last_error' is not null;
  return pg_catalog.jsonb_strip_nulls((v_result - 'last_error')
                                      || pg_catalog.jsonb_build_object('webhook_event_id', v_webhook_id));
end;
$function$;

CREATE OR REPLACE FUNCTION billing.maintain_partitions (
  p_at timestamp with time zone DEFAULT billing.now()
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_table billing.partitioned_tables;
  v_parent regclass;
  v_schema name;
  v_name name;
  v_default regclass;
  v_exists boolean;
  v_columns text;
  v_retention_days integer;
  v_month timestamptz;
  v_months timestamptz[];
  v_partition name;
  v_partition_schema name;
  v_changed integer := 0;
  v_current timestamptz := pg_catalog.date_trunc('month', p_at, 'UTC');
begin
  if p_at is null then
    raise exception 'maintain_partitions: p_at is null' using errcode = 'invalid_parameter_value';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('billing.maintain_partitions'));
  for v_table in select * from billing.partitioned_tables t order by t.table_name loop
    v_parent := pg_catalog.to_regclass(v_table.table_name);
    if v_parent is null then
      raise exception 'billing.partitioned_tables: table % does not exist', v_table.table_name
        using errcode = 'undefined_table';
    end if;
    if not exists (
      select from pg_catalog.pg_partitioned_table pt
      join pg_catalog.pg_attribute a on a.attrelid = pt.partrelid and a.attnum = pt.partattrs[0]
      where pt.partrelid = v_parent and pt.partstrat = 'r' and pt.partnatts = 1
        and a.attname = v_table.partition_column and a.atttypid = 'timestamptz'::regtype
    ) then
      raise exception 'billing.partitioned_tables: % is not partitioned by range on its timestamptz column %',
        v_table.table_name, v_table.partition_column
        using errcode = 'invalid_table_definition',
              hint = 'Declare it "partition by range (<column>)" with a default partition; see 00_foundation.sql.';
    end if;
    if v_table.retention_setting is not null and not exists (
      select from pg_catalog.pg_attribute a
      where a.attrelid = 'public.billing_settings'::regclass and a.attname = v_table.retention_setting
        and a.atttypid = 'integer'::regtype and not a.attisdropped
    ) then
      raise exception 'billing.partitioned_tables: % names retention setting %, not an integer column of public.billing_settings',
        v_table.table_name, v_table.retention_setting
        using errcode = 'undefined_column';
    end if;
    select n.nspname, c.relname into v_schema, v_name
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.oid = v_parent;
    -- The default partition, wherever it was declared; made in billing_partitions when missing.
    select nullif(pt.partdefid, 0)::regclass into v_default
    from pg_catalog.pg_partitioned_table pt where pt.partrelid = v_parent;
    if v_default is null then
      execute pg_catalog.format('create table billing_partitions.%I partition of %I.%I default',
                                v_name || '_default', v_schema, v_name);
      perform billing.secure_partition('billing_partitions', v_name || '_default', v_name);
      v_default := pg_catalog.format('billing_partitions.%I', v_name || '_default')::regclass;
      v_changed := v_changed + 1;
    end if;
    select pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' order by a.attnum) into v_columns
    from pg_catalog.pg_attribute a
    where a.attrelid = v_parent and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';

    -- The months to have: from the current one to months_ahead after it, and those in the default.
    execute pg_catalog.format(
      'select pg_catalog.array_agg(distinct pg_catalog.date_trunc(''month'', d.%I, ''UTC'')) from %s d',
      v_table.partition_column, v_default) into v_months;
    v_months := coalesce(v_months, '{}') || array(
      select v_current + pg_catalog.make_interval(months => i) from pg_catalog.generate_series(0, v_table.months_ahead) i);
    for v_month in select distinct m from pg_catalog.unnest(v_months) m order by m loop
      v_partition := v_name || '_p' || pg_catalog.to_char(v_month at time zone 'UTC', 'YYYYMM');
      select exists (select from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
                     where i.inhparent = v_parent and c.relname = v_partition) into v_exists;
      continue when v_exists;
      execute pg_catalog.format(
        'create table billing_partitions.%I (like %I.%I including defaults including constraints including generated including storage)',
        v_partition, v_schema, v_name);
      execute pg_catalog.format(
        'with moved as (delete from %1$s where %2$I >= %3$L and %2$I < %4$L returning *) '
        'insert into billing_partitions.%5$I (%6$s) select %6$s from moved',
        v_default, v_table.partition_column, v_month, v_month + interval '1 month', v_partition, v_columns);
      execute pg_catalog.format('alter table %I.%I attach partition billing_partitions.%I for values from (%L) to (%L)',
        v_schema, v_name, v_partition, v_month, v_month + interval '1 month');
      perform billing.secure_partition('billing_partitions', v_partition, v_name);
      v_changed := v_changed + 1;
    end loop;

    -- Past retention: whole months, detached then dropped.
    if v_table.retention_setting is not null then
      execute pg_catalog.format('select s.%I from public.billing_settings s', v_table.retention_setting)
        into v_retention_days;
    else
      v_retention_days := null;
    end if;
    if v_retention_days is not null then
      for v_partition, v_partition_schema in
        select c.relname, c.relnamespace::regnamespace::name
        from pg_catalog.pg_inherits i
        join pg_catalog.pg_class c on c.oid = i.inhrelid
        where i.inhparent = v_parent
          and c.relname ~ ('^' || v_name || '_p[0-9]{6}$')
          and pg_catalog.to_date(pg_catalog.right(c.relname, 6), 'YYYYMM')::timestamp at time zone 'UTC'
              + interval '1 month' + pg_catalog.make_interval(days => v_retention_days) <= p_at
        order by c.relname
      loop
        execute pg_catalog.format('alter table %I.%I detach partition %I.%I', v_schema, v_name, v_partition_schema, v_partition);
        execute pg_catalog.format('drop table %I.%I', v_partition_schema, v_partition);
        v_changed := v_changed + 1;
      end loop;
    end if;
  end loop;
  return v_changed;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.purge_batch (
  p_limit           integer,
  p_usage_retention interval DEFAULT '35 days'::interval
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_payload_retention interval := pg_catalog.make_interval(
    days => coalesce((select s.webhook_payload_retention_days from public.billing_settings s), 90));
  v_notification_retention interval := pg_catalog.make_interval(
    days => coalesce((select s.notification_retention_days from public.billing_settings s), 90));
  v_total integer := 0;
  v_n integer;
begin
  -- Counters: the window ends at window_start + its unit; keep it p_usage_retention past that.
  delete from public.usage_quotas q
  where (q.organization_id, q.metric, q.window_unit, q.window_start) in (
    select u.organization_id, u.metric, u.window_unit, u.window_start
    from public.usage_quotas u
    where u.window_start < v_now - p_usage_retention - interval '1 minute'
      and u.window_start + ('1 ' || u.window_unit::text)::interval + p_usage_retention <= v_now
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  -- Notifications done with (sent, or given up on) once their retention has passed.
  delete from public.notifications n
  where n.id in (
    select x.id from public.notifications x
    where (x.sent_at < v_now - v_notification_retention or x.failed_at < v_now - v_notification_retention)
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  -- Provider payloads (personal data of buyers): stripped once, the delivery record kept.
  update billing.webhook_events w
  set payload = '{}'::jsonb, payload_purged_at = v_now
  where w.id in (
    select x.id from billing.webhook_events x
    where x.payload_purged_at is null and x.received_at < v_now - v_payload_retention
    order by x.received_at
    limit p_limit
    for update skip locked);
  get diagnostics v_n = row_count;
  v_total := v_total + v_n;

  -- Job runs go a whole month at a time (billing.maintain_partitions, job_run_retention_days).
  return v_total;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.secure_partition (
  p_schema    name,
  p_partition name,
  p_parent    name
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_parent text := coalesce(
    (select i.inhparent::regclass::text from pg_catalog.pg_inherits i
     where i.inhrelid = pg_catalog.format('%I.%I', p_schema, p_partition)::regclass),
    p_parent);
begin
  execute pg_catalog.format('revoke all on table %I.%I from public, anon, authenticated, service_role', p_schema, p_partition);
  if p_schema = 'public' then
    execute pg_catalog.format('alter table %I.%I enable row level security', p_schema, p_partition);
  end if;
  execute pg_catalog.format('comment on table %I.%I is %L', p_schema, p_partition,
    pg_catalog.format('A partition of %s (billing.maintain_partitions): query the parent.', v_parent));
end;
$function$;

ALTER TABLE "billing"."job_runs"
  ADD CONSTRAINT "job_runs_job_name_check" CHECK ((job_name ~ '^[a-z][a-z0-9-]{0,62}$'::text));

ALTER TABLE "billing"."job_runs"
  ADD CONSTRAINT "job_runs_pkey" PRIMARY KEY (id, as_of);

ALTER TABLE "billing"."webhook_events"
  ADD CONSTRAINT "webhook_events_attempts_check" CHECK ((attempts >= 0));

ALTER TABLE "billing"."webhook_events"
  ADD CONSTRAINT "webhook_events_event_id_check" CHECK (((length(event_id) >= 1) AND (length(event_id) <= 300)));

ALTER TABLE "billing"."webhook_events"
  ADD CONSTRAINT "webhook_events_pkey" PRIMARY KEY (id, received_at);

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_ai_request_retention_days_range" CHECK (((ai_request_retention_days >= 1) AND (ai_request_retention_days <= 36500)));

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_job_run_retention_days_range" CHECK (((job_run_retention_days >= 1) AND (job_run_retention_days <= 3650)));

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_webhook_event_retention_days_range" CHECK (((webhook_event_retention_days >= 1) AND (webhook_event_retention_days <= 36500)));

CREATE VIEW "billing"."failed_deliveries" WITH (security_invoker=true) AS  SELECT w.id AS webhook_event_id,
    w.provider,
    w.event_id,
    w.event_type,
    (w.payload ->> 'kind'::text) AS kind,
    (w.payload ->> 'order_ref'::text) AS order_ref,
    (w.payload ->> 'provider_payment_id'::text) AS provider_payment_id,
    w.received_at,
    w.attempts,
    w.last_error
   FROM billing.webhook_events w
  WHERE (w.last_error IS NOT NULL);

CREATE VIEW "billing"."job_problems" WITH (security_invoker=true) AS  WITH latest AS (
         SELECT DISTINCT ON (r.job_name) r.id,
            r.job_name,
            r.as_of,
            r.batch_limit,
            r.started_at,
            r.finished_at,
            r.rows_affected,
            r.error
           FROM billing.job_runs r
          ORDER BY r.job_name, r.started_at DESC, r.id DESC
        )
 SELECT l.job_name,
        CASE
            WHEN (l.error IS NOT NULL) THEN 'failing'::text
            ELSE 'stuck'::text
        END AS problem,
    l.id AS run_id,
    l.started_at,
    l.finished_at,
    l.as_of,
    l.error,
    ( SELECT count(*) AS count
           FROM billing.job_runs f
          WHERE ((f.job_name = l.job_name) AND (f.error IS NOT NULL) AND (f.started_at > COALESCE(( SELECT max(ok.started_at) AS max
                   FROM billing.job_runs ok
                  WHERE ((ok.job_name = l.job_name) AND (ok.error IS NULL) AND (ok.finished_at IS NOT NULL))), '-infinity'::timestamp with time zone)))) AS failed_runs,
    ( SELECT max(ok.finished_at) AS max
           FROM billing.job_runs ok
          WHERE ((ok.job_name = l.job_name) AND (ok.error IS NULL) AND (ok.finished_at IS NOT NULL))) AS last_success_at
   FROM latest l
  WHERE ((l.error IS NOT NULL) OR ((l.finished_at IS NULL) AND (l.started_at < (clock_timestamp() - '00:15:00'::interval))));

CREATE VIEW "billing"."unapplied_payments" WITH (security_invoker=true) AS  SELECT 'needs_refund'::text AS problem,
    pe.organization_id,
    pe.order_id,
    pe.provider,
    pe.provider_payment_id,
    pe.amount_cents,
    pe.currency,
    pe.occurred_at,
    COALESCE((pe.details ->> 'not_applied'::text), pe.error_reason) AS detail,
    ( SELECT (a.state)::text AS state
           FROM billing.provider_actions a
          WHERE ((a.payment_event_id = pe.id) AND (a.kind = 'refund'::billing.provider_action_kind))
          ORDER BY a.created_at DESC
         LIMIT 1) AS refund_action_state
   FROM public.payment_events pe
  WHERE (pe.needs_refund AND (pe.status = 'captured'::public.payment_status) AND (COALESCE(( SELECT sum(r.amount_cents) AS sum
           FROM public.payment_events r
          WHERE ((r.provider = pe.provider) AND (r.provider_payment_id = pe.provider_payment_id) AND (r.status = 'refunded'::public.payment_status))), (0)::numeric) < (pe.amount_cents)::numeric))
UNION ALL
 SELECT 'mismatch'::text AS problem,
    pe.organization_id,
    pe.order_id,
    pe.provider,
    pe.provider_payment_id,
    pe.amount_cents,
    pe.currency,
    pe.occurred_at,
    pe.error_reason AS detail,
    NULL::text AS refund_action_state
   FROM public.payment_events pe
  WHERE (pe.status = 'mismatch'::public.payment_status)
UNION ALL
 SELECT 'unknown_order'::text AS problem,
    NULL::uuid AS organization_id,
    NULL::uuid AS order_id,
    w.provider,
    (w.payload ->> 'provider_payment_id'::text) AS provider_payment_id,
        CASE
            WHEN ((w.payload ->> 'amount_paise'::text) ~ '^[0-9]{1,15}$'::text) THEN ((w.payload ->> 'amount_paise'::text))::bigint
            ELSE NULL::bigint
        END AS amount_cents,
    (w.payload ->> 'currency'::text) AS currency,
    w.received_at AS occurred_at,
    w.last_error AS detail,
    NULL::text AS refund_action_state
   FROM billing.webhook_events w
  WHERE ((w.last_error IS NOT NULL) AND ((w.payload ->> 'kind'::text) = 'payment_captured'::text) AND (NOT (EXISTS ( SELECT 1
           FROM public.payment_events pe
          WHERE ((pe.provider = w.provider) AND (pe.provider_payment_id = (w.payload ->> 'provider_payment_id'::text)))))));

-- By hand: the default partitions (in billing_partitions, which the diff does not see) before
-- the indexes, which are then made on every partition (not ON ONLY the parent).
create table billing_partitions.job_runs_default partition of billing.job_runs default;

select billing.secure_partition('billing_partitions', 'job_runs_default', 'job_runs');

CREATE INDEX job_runs_job_name_idx ON billing.job_runs USING btree (job_name, started_at);

CREATE INDEX job_runs_started_at_idx ON billing.job_runs USING btree (started_at);

create table billing_partitions.webhook_events_default partition of billing.webhook_events default;

select billing.secure_partition('billing_partitions', 'webhook_events_default', 'webhook_events');

CREATE INDEX webhook_events_provider_event_idx ON billing.webhook_events USING btree (provider, event_id);

CREATE INDEX webhook_events_payload_unpurged_idx ON billing.webhook_events USING btree (received_at)
  WHERE (payload_purged_at IS NULL);

CREATE INDEX webhook_events_ignored_idx ON billing.webhook_events USING btree (received_at)
  WHERE (ignored_reason IS NOT NULL);

COMMENT ON COLUMN "billing"."webhook_events"."ignored_reason" IS 'Set when the event was recorded and acknowledged but not acted on (its kind is other): why.';

COMMENT ON COLUMN "billing"."webhook_events"."payload_purged_at" IS 'When billing-purge replaced the provider payload with {} (null: the payload is as received).';

COMMENT ON COLUMN "public"."billing_settings"."ai_request_retention_days" IS 'Days the AI gateway''s log (public.ai_requests) is kept: a month of requests is dropped once it ended this long ago. Null (default): kept forever.';

COMMENT ON COLUMN "public"."billing_settings"."job_run_retention_days" IS 'Days billing.job_runs keeps a job run: a month of runs is dropped once it ended this long ago (monthly partitions). Default 30.';

COMMENT ON COLUMN "public"."billing_settings"."webhook_event_retention_days" IS 'Days a provider webhook delivery (billing.webhook_events) is kept: a month of deliveries is dropped once it ended this long ago. Null (default): kept forever. Its event id stays in billing.webhook_event_keys either way, so a re-delivery is still a duplicate.';

COMMENT ON TABLE "billing"."webhook_event_keys" IS 'The webhook exactly-once guard: every (provider, event_id) received, kept forever, with its delivery row (billing.webhook_events id and received_at).';

COMMENT ON VIEW "billing"."failed_deliveries" IS 'Webhook events recorded with last_error (not applied). Read last_error; fix the order, setting or provider config it names, then apply the payment by hand or refund it (see unapplied_payments).';

COMMENT ON VIEW "billing"."job_problems" IS 'Jobs whose latest run failed (read error, fix the cause; the job runs again on its schedule) or started over 15 minutes ago and never finished (look for a blocked session in pg_stat_activity).';

COMMENT ON VIEW "billing"."unapplied_payments" IS 'Money taken that bought nothing: needs_refund (refund it: billing.operator_refund, or check refund_action_state), mismatch (compare with the order, refund or apply by hand), unknown_order (find the order at the provider; refund if none).';

GRANT SELECT ON TABLE "billing"."job_runs" TO "service_role";

GRANT DELETE, INSERT, SELECT, UPDATE ON TABLE "billing"."webhook_event_keys" TO "service_role";

GRANT DELETE, INSERT, SELECT, UPDATE ON TABLE "billing"."webhook_events" TO "service_role";

GRANT SELECT ON TABLE "billing"."failed_deliveries" TO "service_role";

GRANT SELECT ON TABLE "billing"."job_problems" TO "service_role";

GRANT SELECT ON TABLE "billing"."unapplied_payments" TO "service_role";

ALTER TABLE "billing"."webhook_events"
  ALTER COLUMN "received_at" SET DEFAULT billing.now();

-- By hand: the partitioned tables are registered (data, which a diff does not see), the rows
-- copied over (into the default partitions, from which billing.maintain_partitions moves each
-- month into its partition), the webhook keys filled from the deliveries (so every event received
-- before this release is still a duplicate), and the old tables dropped.
insert into billing.partitioned_tables (table_name, partition_column, retention_setting, months_ahead) values
  ('billing.job_runs', 'as_of', 'job_run_retention_days', 3),
  ('billing.webhook_events', 'received_at', 'webhook_event_retention_days', 3);

insert into billing.job_runs (id, job_name, as_of, batch_limit, started_at, finished_at, rows_affected, error)
overriding system value
select id, job_name, as_of, batch_limit, started_at, finished_at, rows_affected, error
from billing.job_runs_unpartitioned;

select pg_catalog.setval(pg_catalog.pg_get_serial_sequence('billing.job_runs', 'id'),
                         coalesce((select max(id) from billing.job_runs_unpartitioned), 0) + 1, false);

insert into billing.webhook_events (id, provider, event_id, event_type, payload, received_at, processed_at, attempts,
                                    last_error, created_at, payload_purged_at, ignored_reason)
select id, provider, event_id, event_type, payload, received_at, processed_at, attempts,
       last_error, created_at, payload_purged_at, ignored_reason
from billing.webhook_events_unpartitioned;

insert into billing.webhook_event_keys (provider, event_id, webhook_event_id, received_at)
select provider, event_id, id, received_at from billing.webhook_events_unpartitioned;

drop table billing.job_runs_unpartitioned;
drop table billing.webhook_events_unpartitioned;

select billing.maintain_partitions();
