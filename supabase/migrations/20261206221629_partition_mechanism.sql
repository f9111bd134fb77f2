-- What this migration does: adds the monthly partition mechanism (billing.partitioned_tables, the
-- registry of tables kept in monthly partitions; billing.maintain_partitions, which creates the
-- coming months' partitions, moves rows out of a table's default partition and drops partitions
-- past retention; the daily job billing-partitions; maintenance whenever billing.test_clock moves).
-- No table is registered yet.
-- partition_mechanism: drafted by `npm run db:diff -- partition_mechanism` from the difference between the database the
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

CREATE TABLE "billing"."partitioned_tables" (
  "table_name"        text    NOT NULL,
  "partition_column"  name    NOT NULL,
  "retention_setting" name,
  "months_ahead"      integer NOT NULL DEFAULT 3,
  CONSTRAINT "partitioned_tables_months_ahead_range" CHECK (((months_ahead >= 0) AND (months_ahead <= 24))),
  CONSTRAINT "partitioned_tables_pkey" PRIMARY KEY (table_name),
  CONSTRAINT "partitioned_tables_table_name_qualified" CHECK ((table_name ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$'::text))
);

CREATE OR REPLACE FUNCTION billing.job_maintain_partitions()
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return billing.run_job('billing-partitions', 'billing.maintain_partitions_batch(integer)', 1);
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
  v_default name;
  v_columns text;
  v_retention_days integer;
  v_month timestamptz;
  v_months timestamptz[];
  v_partition name;
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
    v_default := v_name || '_default';
    if pg_catalog.to_regclass(pg_catalog.format('%I.%I', v_schema, v_default)) is null then
      execute pg_catalog.format('create table %I.%I partition of %I.%I default', v_schema, v_default, v_schema, v_name);
      perform billing.secure_partition(v_schema, v_default, v_name);
      v_changed := v_changed + 1;
    end if;
    select pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' order by a.attnum) into v_columns
    from pg_catalog.pg_attribute a
    where a.attrelid = v_parent and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';

    -- The months to have: from the current one to months_ahead after it, and those in the default.
    execute pg_catalog.format(
      'select pg_catalog.array_agg(distinct pg_catalog.date_trunc(''month'', d.%I, ''UTC'')) from %I.%I d',
      v_table.partition_column, v_schema, v_default) into v_months;
    v_months := coalesce(v_months, '{}') || array(
      select v_current + pg_catalog.make_interval(months => i) from pg_catalog.generate_series(0, v_table.months_ahead) i);
    for v_month in select distinct m from pg_catalog.unnest(v_months) m order by m loop
      v_partition := v_name || '_p' || pg_catalog.to_char(v_month at time zone 'UTC', 'YYYYMM');
      continue when pg_catalog.to_regclass(pg_catalog.format('%I.%I', v_schema, v_partition)) is not null;
      execute pg_catalog.format(
        'create table %I.%I (like %I.%I including defaults including constraints including generated including storage)',
        v_schema, v_partition, v_schema, v_name);
      execute pg_catalog.format(
        'with moved as (delete from %1$I.%2$I where %3$I >= %4$L and %3$I < %5$L returning *) '
        'insert into %1$I.%6$I (%7$s) select %7$s from moved',
        v_schema, v_default, v_table.partition_column, v_month,
        v_month + interval '1 month', v_partition, v_columns);
      execute pg_catalog.format('alter table %I.%I attach partition %I.%I for values from (%L) to (%L)',
        v_schema, v_name, v_schema, v_partition, v_month, v_month + interval '1 month');
      perform billing.secure_partition(v_schema, v_partition, v_name);
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
      for v_partition in
        select c.relname
        from pg_catalog.pg_inherits i
        join pg_catalog.pg_class c on c.oid = i.inhrelid
        where i.inhparent = v_parent
          and c.relname ~ ('^' || v_name || '_p[0-9]{6}$')
          and pg_catalog.to_date(pg_catalog.right(c.relname, 6), 'YYYYMM')::timestamp at time zone 'UTC'
              + interval '1 month' + pg_catalog.make_interval(days => v_retention_days) <= p_at
        order by c.relname
      loop
        execute pg_catalog.format('alter table %I.%I detach partition %I.%I', v_schema, v_name, v_schema, v_partition);
        execute pg_catalog.format('drop table %I.%I', v_schema, v_partition);
        v_changed := v_changed + 1;
      end loop;
    end if;
  end loop;
  return v_changed;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.maintain_partitions_batch (
  p_limit integer
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return billing.maintain_partitions(billing.now());
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
begin
  execute pg_catalog.format('revoke all on table %I.%I from public, anon, authenticated, service_role', p_schema, p_partition);
  if p_schema = 'public' then
    execute pg_catalog.format('alter table %I.%I enable row level security', p_schema, p_partition);
  end if;
  execute pg_catalog.format('comment on table %I.%I is %L', p_schema, p_partition,
    pg_catalog.format('A partition of %s.%s (billing.maintain_partitions): query the parent.', p_schema, p_parent));
end;
$function$;

CREATE OR REPLACE FUNCTION billing.test_clock_moved()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  perform billing.job_maintain_partitions();
  return null;
end;
$function$;

CREATE TRIGGER test_clock_moved
  AFTER INSERT OR UPDATE ON billing.test_clock
  FOR EACH ROW
  EXECUTE FUNCTION billing.test_clock_moved();

COMMENT ON TABLE "billing"."partitioned_tables" IS 'The tables kept in monthly partitions by billing.maintain_partitions: partition column, retention setting (days, a billing_settings column; null: forever), months created ahead.';

REVOKE ALL ON FUNCTION "billing"."job_maintain_partitions"() FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."maintain_partitions"(timestamp WITH time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."maintain_partitions_batch"(integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."secure_partition"(name, name, name) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."test_clock_moved"() FROM PUBLIC;

-- By hand: the job (a row of billing.jobs: data, which a diff does not see), scheduled like the others.
insert into billing.jobs (name, schedule, command, worker, doc) values
  ('billing-partitions', '20 0 * * *', 'select billing.job_maintain_partitions()', null,
   'Creates the coming months'' partitions and drops those past retention (billing.maintain_partitions).');

select billing.schedule_jobs();
