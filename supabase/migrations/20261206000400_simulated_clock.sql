-- =================================================================================================
-- supabill upgrade: a shared simulated clock for the test clusters
--
-- An upgrade of the released baseline (it replaces billing.now(); it owns billing.test_clock and
-- billing.simulated_now()). One rule:
--
-- billing.now() can follow one simulated time that every connection sees, so a simulation moves
-- days for the functions, the workers and the jobs at once, not only for a transaction that pins
-- `billing.now`. Where the DATABASE enables the test clock (`alter database ... set
-- billing.test_clock = 'on'`, read from pg_db_role_setting, as before), the time is, in order:
--   1. the transaction's pin (`set local billing.now = '...'`), as before;
--   2. the one row of billing.test_clock, when it exists;
--   3. now().
-- Without the database setting (every hosted project) it is now(), whatever the pin or the table
-- hold. The production cost stays one current_setting: billing.test_clock is looked at first, and
-- only where it reads 'on' are the pin, the table and the catalog read.
--
-- Same conventions and section order as the baseline modules (see the foundation's banner).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

/**
 * The simulated time of a test cluster: at most one row (id is always true). Written by the
 * simulator (`npm run simulate`) as postgres, one simulated day at a time; read by
 * billing.simulated_now() only where the database enables the test clock. Private: no API role
 * reads or writes it.
 */
create table billing.test_clock (
  id boolean primary key default true check (id),
  simulated_at timestamptz not null,
  updated_at timestamptz not null default pg_catalog.now()
);
revoke all on table billing.test_clock from public, anon, authenticated, service_role;
comment on table billing.test_clock is
  'The simulated time of a test cluster (one row at most); billing.now() follows it only where the database sets billing.test_clock = on. Never used on a hosted project.';


-- =================================================================================================
-- 3. Helper functions
-- =================================================================================================

/**
 * The test clock's time, or null for "use now()": the transaction's pinned `billing.now`, else the
 * row of billing.test_clock, each only where the database itself sets billing.test_clock = on (a
 * session's or a role's own setting does not count). Called by billing.now() only after the
 * setting reads 'on', so a hosted project never runs it.
 * Security definer: billing.now() runs as the signed-in user inside RLS-checked functions, and
 * neither that user nor service_role may read billing.test_clock.
 */
create function billing.simulated_now()
returns timestamptz
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_pinned text := pg_catalog.current_setting('billing.now', true);
  v_at timestamptz;
begin
  if v_pinned is null or v_pinned = '' then
    select c.simulated_at into v_at from billing.test_clock c;
    if v_at is null then
      return null;
    end if;
  end if;
  if not exists (
    select 1
    from pg_catalog.pg_db_role_setting s
    join pg_catalog.pg_database d on d.oid = s.setdatabase
    where d.datname = pg_catalog.current_database()
      and s.setrole = 0
      and 'billing.test_clock=on' = any (s.setconfig)
  ) then
    return null;
  end if;
  return coalesce(nullif(v_pinned, '')::timestamptz, v_at);
end;
$$;
revoke execute on function billing.simulated_now() from public;
grant execute on function billing.simulated_now() to authenticated, service_role;
comment on function billing.simulated_now() is
  'The test clock: the pinned billing.now, else billing.test_clock, else null; only where the database enables billing.test_clock.';

/**
 * The clock of every time-dependent rule: now(), unless the database enables the test clock; then
 * the transaction's pin, else the simulated time of billing.test_clock, else now() (see
 * billing.simulated_now). Unset (a hosted project), it costs one current_setting.
 */
create or replace function billing.now()
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  if pg_catalog.current_setting('billing.test_clock', true) is distinct from 'on' then
    return pg_catalog.now();
  end if;
  return coalesce(billing.simulated_now(), pg_catalog.now());
end;
$$;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: billing.test_clock is private (schema billing, no grants).


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None.
