-- Shared pgTAP helpers (not a migration). scripts/test.mjs applies this file to the throwaway
-- test database after the migrations and the seed, before pg_prove runs; the dev database never
-- has schema `tests`. Helpers that only one test file uses stay in that file (pg_temp).
--
-- The role switches use set_config(..., true), so they last until the test file's transaction
-- ends, exactly like `set local role`. They are security invoker on purpose (a security definer
-- function may not change the role), and anon, authenticated and service_role can execute them,
-- so a test can switch from one API role to another, or back to postgres, while it acts as one.

create schema if not exists tests;
comment on schema tests is 'pgTAP helpers shared by supabase/tests/database (test database only).';
revoke all on schema tests from public;
grant usage on schema tests to anon, authenticated, service_role;

/** Act as a signed-in user, the way PostgREST does (role + request.jwt.claims). */
create or replace function tests.as_user(p_user_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('role', 'authenticated', true);
  perform pg_catalog.set_config('request.jwt.claims',
    pg_catalog.json_build_object('sub', p_user_id, 'role', 'authenticated')::text, true);
end;
$$;
comment on function tests.as_user(uuid) is
  'Acts as the signed-in user p_user_id: role authenticated and the claims PostgREST would send, until the transaction ends.';

/** Act as a database role with the claims PostgREST would send for it (no user). */
create or replace function tests.as_role(p_role text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('role', p_role, true);
  perform pg_catalog.set_config('request.jwt.claims', pg_catalog.json_build_object('role', p_role)::text, true);
end;
$$;
comment on function tests.as_role(text) is
  'Acts as the database role p_role (anon, authenticated, service_role) with claims that name only the role, until the transaction ends.';

/** Back to the table owner (postgres), with no claims. */
create or replace function tests.as_postgres()
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform pg_catalog.set_config('role', 'none', true);
  perform pg_catalog.set_config('request.jwt.claims', '', true);
end;
$$;
comment on function tests.as_postgres() is
  'Back to the session user (postgres, the table owner) with no claims.';

/**
 * Fixtures put several members in free organizations, while the free plan allows one member.
 * Lifts the free plan's max_members to 100 for the current transaction (the test file rolls it
 * back); the limit itself is tested in 03-tenancy.
 */
create or replace function tests.relax_member_limit()
returns void
language sql
set search_path = ''
as $$
  update public.billing_plans set features = features || '{"max_members": 100}' where tier = 'free';
$$;
comment on function tests.relax_member_limit() is
  'Lifts the free plan''s max_members to 100 so fixtures can put several members in a free organization (run as postgres).';

revoke all on function tests.as_user(uuid), tests.as_role(text), tests.as_postgres(), tests.relax_member_limit()
  from public;
grant execute on function tests.as_user(uuid), tests.as_role(text), tests.as_postgres()
  to anon, authenticated, service_role;
