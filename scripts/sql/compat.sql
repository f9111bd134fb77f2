-- Supabase compatibility layer for the local stack (not a migration).
-- Creates only what is missing, so it is a no-op on a real Supabase database, and defines
-- the objects the way Supabase does: roles, the auth schema and its helpers, the
-- extensions schema. Run as a superuser by scripts/lib/pg.mjs before migrations.

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit password 'postgres';
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pgtap with schema extensions;
-- pg_cron can live in one database of a cluster only (cron.database_name, `postgres` here); the
-- other databases of a local cluster (those `npm run db:diff` builds) go without it, as the
-- migrations allow.
do $$
begin
  if current_database() = current_setting('cron.database_name', true) then
    create extension if not exists pg_cron with schema pg_catalog;
  end if;
end
$$;

grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to service_role;
alter default privileges in schema public grant all on sequences to service_role;
alter default privileges in schema public grant all on functions to service_role;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create table if not exists auth.users (
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255) unique,
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  raw_app_meta_data jsonb default '{}'::jsonb,
  raw_user_meta_data jsonb default '{}'::jsonb,
  is_anonymous boolean not null default false,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
grant select on auth.users to service_role;

-- As Supabase defines them: read the claims PostgREST (or our functions) put in
-- request.jwt.claims, with the older per-claim settings as a fallback. Each is created
-- only when missing.
do $$
declare
  fn record;
begin
  for fn in
    select * from (values
      ('uid', 'uuid', 'sub'),
      ('role', 'text', 'role'),
      ('email', 'text', 'email')
    ) as t(name, returns, claim)
  loop
    if to_regprocedure(format('auth.%I()', fn.name)) is null then
      execute format($f$
        create function auth.%1$I() returns %2$s
        language sql stable
        as $body$
          select coalesce(
            nullif(current_setting('request.jwt.claim.%3$s', true), ''),
            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> %3$L)
          )::%2$s
        $body$
      $f$, fn.name, fn.returns, fn.claim);
    end if;
  end loop;
  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
    language sql stable
    as $body$
      select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
      )::jsonb
    $body$;
  end if;
end
$$;

grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
  to anon, authenticated, service_role;

-- Supabase's default search_path, so extension functions (pgtap) resolve unqualified.
alter database :"DBNAME" set search_path to "$user", public, extensions;
