-- Per-person limits: the organizations one user may own (create_organization, an owner added or
-- promoted, a direct insert), one trial per person, the test clock only the database can enable,
-- and webhook payloads stripped by billing-purge while their event ids still deduplicate.
-- (Concurrent creations at the limit are tested with real connections in tests/tenancy.test.ts.)
begin;
set local search_path = public, extensions;
-- Several members in free organizations (the free plan allows 1); the owner limit is not relaxed.
select tests.relax_member_limit();
select plan(42);

-- -------------------------------------------------------------------------------------------------
-- Fixture
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values
  ('d1100000-0000-4000-8000-000000000001', 'pp-founder@test.local'),
  ('d1100000-0000-4000-8000-000000000002', 'pp-other@test.local'),
  ('d1100000-0000-4000-8000-000000000003', 'pp-colleague@test.local');

create temp table pp (key text primary key, id uuid) on commit drop;
grant select, insert on pp to authenticated;

/** Creates an organization as the user and remembers it under p_key. */
create function pg_temp.create_as(p_user uuid, p_key text, p_name text)
returns uuid language plpgsql as $$
declare
  v_id uuid;
begin
  perform tests.as_user(p_user);
  v_id := public.create_organization(p_name);
  perform tests.as_postgres();
  insert into pp values (p_key, v_id);
  return v_id;
end;
$$;

create function pg_temp.org(p_key text)
returns uuid language sql as $$ select id from pp where key = p_key $$;

-- -------------------------------------------------------------------------------------------------
-- The settings
-- -------------------------------------------------------------------------------------------------

select is(
  (select row(max_owned_organizations, webhook_payload_retention_days)::text from public.billing_settings),
  '(3,90)',
  'a user may own 3 organizations and webhook payloads are kept 90 days by default'
);
select throws_ok(
  $$update public.billing_settings set max_owned_organizations = 0$$,
  '23514', null,
  'max_owned_organizations must be at least 1 (null: no limit)'
);
select throws_ok(
  $$update public.billing_settings set webhook_payload_retention_days = 0$$,
  '23514', null,
  'webhook_payload_retention_days must be between 1 and 3650'
);

-- -------------------------------------------------------------------------------------------------
-- Organizations per user
-- -------------------------------------------------------------------------------------------------

select lives_ok(
  $$select pg_temp.create_as('d1100000-0000-4000-8000-000000000001', 'a', 'PP A');
    select pg_temp.create_as('d1100000-0000-4000-8000-000000000001', 'b', 'PP B');
    select pg_temp.create_as('d1100000-0000-4000-8000-000000000001', 'c', 'PP C')$$,
  'a user creates three organizations'
);
select tests.as_user('d1100000-0000-4000-8000-000000000001');
select throws_ok(
  $$select public.create_organization('PP D')$$,
  '23514',
  'max_owned_organizations limit reached: a user may own at most 3 organizations and user d1100000-0000-4000-8000-000000000001 already owns 3',
  'the fourth organization of one user is refused, with a message naming the limit'
);
select tests.as_postgres();
select is(
  (select count(*)::int from public.organizations where name = 'PP D'),
  0,
  'the refused organization was not created'
);

-- Another user's organization: the founder cannot become its owner either.
select pg_temp.create_as('d1100000-0000-4000-8000-000000000002', 'other', 'PP Other');
select tests.as_user('d1100000-0000-4000-8000-000000000002');
select throws_ok(
  format($$select public.add_organization_member(%L, 'd1100000-0000-4000-8000-000000000001', 'owner')$$, pg_temp.org('other')),
  '23514',
  'max_owned_organizations limit reached: a user may own at most 3 organizations and user d1100000-0000-4000-8000-000000000001 already owns 3',
  'a user at the limit cannot be added as owner of another organization'
);
select lives_ok(
  format($$select public.add_organization_member(%L, 'd1100000-0000-4000-8000-000000000001', 'admin')$$, pg_temp.org('other')),
  'a user at the limit can still join another organization as admin'
);
select throws_ok(
  format($$select public.set_member_role(%L, 'd1100000-0000-4000-8000-000000000001', 'owner')$$, pg_temp.org('other')),
  '23514', null,
  'nor be promoted to owner there'
);
select tests.as_postgres();
select is(
  (select role::text from public.organization_members
   where organization_id = pg_temp.org('other') and user_id = 'd1100000-0000-4000-8000-000000000001'),
  'admin',
  'the refused promotion left the admin an admin'
);
select throws_ok(
  format($$insert into public.organization_members (organization_id, user_id, role)
           values (%L, 'd1100000-0000-4000-8000-000000000003', 'member');
           update public.organization_members set role = 'owner'
           where organization_id = %1$L and user_id = 'd1100000-0000-4000-8000-000000000001'$$, pg_temp.org('other')),
  '23514', null,
  'the service side is held to the limit too (a direct update as the table owner)'
);
select lives_ok(
  format($$update public.organization_members set role = 'member'
           where organization_id = %1$L and user_id = 'd1100000-0000-4000-8000-000000000001';
           update public.organization_members set role = 'admin'
           where organization_id = %1$L and user_id = 'd1100000-0000-4000-8000-000000000001'$$, pg_temp.org('other')),
  'a change that does not make an owner passes at the limit'
);

-- Handing one organization over frees a place.
select tests.as_user('d1100000-0000-4000-8000-000000000001');
select lives_ok(
  format($$select public.add_organization_member(%1$L, 'd1100000-0000-4000-8000-000000000003', 'owner');
           select public.set_member_role(%1$L, 'd1100000-0000-4000-8000-000000000001', 'admin')$$, pg_temp.org('c')),
  'the founder makes a colleague owner of PP C and steps down to admin'
);
select tests.as_postgres();
select lives_ok(
  $$select pg_temp.create_as('d1100000-0000-4000-8000-000000000001', 'd', 'PP D')$$,
  'then the founder owns two and may create a third again'
);
select tests.as_user('d1100000-0000-4000-8000-000000000003');
select throws_ok(
  format($$select public.set_member_role(%L, 'd1100000-0000-4000-8000-000000000001', 'owner')$$, pg_temp.org('c')),
  '23514', null,
  'and, owning three again, the founder cannot be made owner of PP C again'
);
select tests.as_postgres();

-- The setting decides.
update public.billing_settings set max_owned_organizations = 1;
select tests.as_user('d1100000-0000-4000-8000-000000000002');
select throws_ok(
  $$select public.create_organization('PP Other 2')$$,
  '23514',
  'max_owned_organizations limit reached: a user may own at most 1 organizations and user d1100000-0000-4000-8000-000000000002 already owns 1',
  'a lower max_owned_organizations takes effect at once'
);
select tests.as_postgres();
select is(
  (select count(*)::int from public.organization_members
   where user_id = 'd1100000-0000-4000-8000-000000000001' and role = 'owner'),
  3,
  'ownerships above a lowered limit stay'
);
update public.billing_settings set max_owned_organizations = null;
select lives_ok(
  $$select pg_temp.create_as('d1100000-0000-4000-8000-000000000001', 'e', 'PP E')$$,
  'a null max_owned_organizations allows any number'
);
update public.billing_settings set max_owned_organizations = 3;

-- -------------------------------------------------------------------------------------------------
-- One trial per person
-- -------------------------------------------------------------------------------------------------

insert into public.billing_plans (code, name, tier, interval, price_cents, currency, trial_days, active)
values ('pp_pro_m', 'PP Pro (monthly)', 'pro', 'month', 99900, 'INR', 14, true);

select tests.as_user('d1100000-0000-4000-8000-000000000001');
select is(
  public.start_trial(pg_temp.org('a'), 'pp_pro_m') ->> 'status',
  'trialing',
  'the founder starts a trial in the first organization'
);
select throws_ok(
  format($$select public.start_trial(%L, 'pp_pro_m')$$, pg_temp.org('b')),
  '55000', 'you have already started a trial: a trial is once per person, in one organization',
  'a second organization of the same user cannot start a trial'
);
select throws_ok(
  format($$select public.start_trial(%L, 'pp_pro_m')$$, pg_temp.org('other')),
  '55000', 'you have already started a trial: a trial is once per person, in one organization',
  'nor can the same user start one as admin of somebody else''s organization'
);
select throws_ok(
  format($$select public.start_trial(%L, 'pp_pro_m')$$, pg_temp.org('a')),
  '55000', 'the organization already has a subscription: a trial is only for organizations without one',
  'the organization rules still answer first for the organization that has the trial'
);
select tests.as_postgres();
select is(
  (select count(*)::int from public.subscriptions where organization_id in (pg_temp.org('b'), pg_temp.org('other'))),
  0,
  'the refused trials created nothing'
);
select tests.as_user('d1100000-0000-4000-8000-000000000002');
select is(
  public.start_trial(pg_temp.org('other'), 'pp_pro_m') ->> 'status',
  'trialing',
  'a person who never had a trial still gets one'
);
select tests.as_postgres();

-- -------------------------------------------------------------------------------------------------
-- The test clock: only the database's own setting enables it
-- -------------------------------------------------------------------------------------------------

select ok(
  exists (select 1 from pg_catalog.pg_db_role_setting s join pg_catalog.pg_database d on d.oid = s.setdatabase
          where d.datname = current_database() and s.setrole = 0 and 'billing.test_clock=on' = any (s.setconfig)),
  'the test database enables the test clock at database level (scripts/sql/local-settings.sql)'
);
set local billing.now = '2030-05-05 10:00:00+05:30';
select is(billing.now(), '2030-05-05 10:00:00+05:30'::timestamptz, 'with the database setting the pinned time is honoured');

do $$ begin execute format('alter database %I reset billing.test_clock', current_database()); end $$;
select is(billing.now(), now(), 'without the database setting the pinned time is ignored');
set local billing.test_clock = 'on';
select is(billing.now(), now(), 'a session''s own billing.test_clock = on is ignored too');
do $$ begin execute format('alter role authenticated in database %I set billing.test_clock = ''on''', current_database()); end $$;
select tests.as_user('d1100000-0000-4000-8000-000000000001');
select is(billing.now(), now(), 'and so is a setting for one role in the database');
select tests.as_postgres();
do $$ begin execute format('alter role authenticated in database %I reset billing.test_clock', current_database()); end $$;
do $$ begin execute format('alter database %I set billing.test_clock = ''on''', current_database()); end $$;
select is(billing.now(), '2030-05-05 10:00:00+05:30'::timestamptz, 'the database setting back: the pin is honoured again');
set local billing.now = '';
reset billing.test_clock; -- back to the database's own setting (billing.now() reads it first)

-- -------------------------------------------------------------------------------------------------
-- Webhook payloads: stripped after the retention, the event id still deduplicates
-- -------------------------------------------------------------------------------------------------

create function pg_temp.event(p_id text)
returns jsonb language sql as $$
  select tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', p_id, 'event_type', 'settlement.processed',
    'payload', jsonb_build_object('email', 'buyer@example.in', 'contact', '+919999999999')))
$$;

create function pg_temp.stored(p_id text)
returns text language sql as $$
  select row(w.provider, w.event_id, w.event_type, w.payload, w.payload_purged_at, w.attempts)::text
  from billing.webhook_events w where w.event_id = p_id
$$;

select set_config('billing.now', '2030-01-01 00:00:00+00', true);
select is(billing.apply_payment_event(pg_temp.event('pp_evt_old')) ->> 'result', 'ignored', 'an old event is recorded');
select set_config('billing.now', '2030-03-01 00:00:00+00', true);
select is(billing.apply_payment_event(pg_temp.event('pp_evt_new')) ->> 'result', 'ignored', 'a recent event is recorded');

-- 2030-04-02: the old event is 91 days old, the recent one 32.
select set_config('billing.now', '2030-04-02 00:00:00+00', true);
select cmp_ok(billing.job_purge(), '>=', 1, 'billing-purge runs');
select is(
  pg_temp.stored('pp_evt_old'),
  '(razorpay,pp_evt_old,settlement.processed,{},"2030-04-02 00:00:00+00",1)',
  'a payload past the retention is stripped and the time recorded; provider, event id and type stay'
);
select is(
  (select payload #>> '{payload,email}' from billing.webhook_events where event_id = 'pp_evt_new'),
  'buyer@example.in',
  'a payload inside the retention is kept'
);
select is(
  (select received_at from billing.webhook_events where event_id = 'pp_evt_old'),
  '2030-01-01 00:00:00+00'::timestamptz,
  'the stripped event keeps its receipt time'
);
select is(
  billing.apply_payment_event(pg_temp.event('pp_evt_old')) ->> 'result',
  'duplicate',
  'the stripped event, delivered again, is still a duplicate'
);
select is(
  (select row(payload, attempts)::text from billing.webhook_events where event_id = 'pp_evt_old'),
  '({},2)',
  'the re-delivery counts an attempt and does not store the payload again'
);
select set_config('billing.now', '2030-04-03 00:00:00+00', true);
select billing.job_purge();
select is(
  (select payload_purged_at from billing.webhook_events where event_id = 'pp_evt_old'),
  '2030-04-02 00:00:00+00'::timestamptz,
  'a second run leaves a stripped event alone (idempotent)'
);

-- The retention is the setting; a batch strips at most p_limit payloads.
select set_config('billing.now', '2030-03-01 00:00:00+00', true);
select billing.apply_payment_event(pg_temp.event('pp_evt_new_2'));
update public.billing_settings set webhook_payload_retention_days = 10;
select set_config('billing.now', '2030-04-03 00:00:00+00', true);
select cmp_ok(billing.purge_batch(1), '>=', 1, 'a batch of one');
select is(
  (select count(*)::int from billing.webhook_events where event_id like 'pp_evt_new%' and payload_purged_at is not null),
  1,
  'a batch strips at most p_limit payloads'
);
select billing.purge_batch(100);
select is(
  (select count(*)::int from billing.webhook_events where event_id like 'pp_evt_new%' and payload = '{}'),
  2,
  'a shorter webhook_payload_retention_days strips the newer payloads too'
);

select * from finish();
rollback;
