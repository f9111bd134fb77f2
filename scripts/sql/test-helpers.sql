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
 * back); the limit itself is tested in 01-tenancy.
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

/**
 * Fixtures make one user owner of many organizations, while billing_settings allows 3 per user.
 * Lifts max_owned_organizations (null: no limit) for the current transaction (the test file rolls
 * it back); the limit itself is tested in 01-tenancy-per-person.
 */
create or replace function tests.relax_owner_limit()
returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.billing_settings set max_owned_organizations = null;
end;
$$;
comment on function tests.relax_owner_limit() is
  'Lifts billing_settings.max_owned_organizations so fixtures can make one user owner of many organizations (run as postgres).';

revoke all on function tests.as_user(uuid), tests.as_role(text), tests.as_postgres(), tests.relax_member_limit(),
  tests.relax_owner_limit()
  from public;
grant execute on function tests.as_user(uuid), tests.as_role(text), tests.as_postgres()
  to anon, authenticated, service_role;

/**
 * A provider event as the Edge Functions' adapters hand it to billing.apply_payment_event: the
 * given event plus its neutral `kind`, `subscription_status` and `error_reason`, derived from the
 * provider's event_type the way supabase/functions/_shared/providers/ maps them (the Deno tests
 * check those adapters against the providers' SDKs, and tests/adapted.test.ts checks this copy
 * against the adapters' own tables, so it cannot drift; here the SQL is tested alone). Keys the
 * event already has are kept, so a test can pass its own kind.
 */
create or replace function tests.adapted(p_event jsonb)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_type text := p_event ->> 'event_type';
  v_status text := case v_type
    when 'subscription.activated' then 'active' when 'subscription.resumed' then 'active'
    when 'subscription.charged' then 'active' when 'subscription.pending' then 'pending'
    when 'subscription.halted' then 'halted' when 'subscription.paused' then 'paused'
    when 'subscription.cancelled' then 'cancelled' when 'subscription.completed' then 'completed' end;
  v_kind text := case
    when p_event ->> 'provider' = 'payu' then
      case v_type when 'payment.success' then 'payment_captured' when 'payment.failure' then 'payment_failed'
                  when 'payment.pending' then 'payment_pending' else 'other' end
    when v_type in ('payment.captured', 'order.paid', 'subscription.charged') then 'payment_captured'
    when v_type = 'invoice.paid' and p_event ->> 'provider_payment_id' is not null then 'payment_captured'
    when v_type = 'payment.authorized' then 'payment_authorized'
    when v_type = 'payment.failed' then 'payment_failed'
    when v_type = 'refund.processed' then 'refund_processed'
    when v_type = 'refund.failed' then 'refund_failed'
    when v_type = 'payment.dispute.created' then 'dispute_opened'
    when v_type = 'payment.dispute.won' then 'dispute_won'
    when v_type = 'payment.dispute.lost' then 'dispute_lost'
    when v_status is not null then 'subscription_status'
    else 'other' end;
begin
  if p_event is null or pg_catalog.jsonb_typeof(p_event) <> 'object' then
    return p_event;
  end if;
  return pg_catalog.jsonb_build_object(
    'kind', v_kind,
    'subscription_status', v_status,
    'error_reason', case when v_kind = 'payment_failed' then
      coalesce(p_event #>> '{payload,payload,payment,entity,error_description}', p_event #>> '{payload,error_Message}',
               p_event ->> 'status') end) || p_event;
end;
$$;
comment on function tests.adapted(jsonb) is
  'A provider event with the neutral kind, subscription_status and error_reason its adapter would add.';
grant execute on function tests.adapted(jsonb) to anon, authenticated, service_role;
