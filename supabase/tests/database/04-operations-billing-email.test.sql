-- A billing email is confirmed before it receives billing mail: update_billing_profile with a new
-- address queues one confirmation (to that address only, the token kept out of the payload),
-- billing kinds go to the owners and admins until confirm_billing_email accepts the token; an
-- unknown, superseded or expired token is refused naming why; the same address saved again keeps
-- its confirmation; a row written by the service is trusted. (End to end, with the fake email
-- API: tests/customer-emails.test.ts.)
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select tests.relax_member_limit();
select plan(17);

set local billing.now = '2026-12-10 10:00:00+05:30';
insert into auth.users (id, email) values
  ('d1600000-0000-4000-8000-000000000001', 'be-owner@test.local'),
  ('d1600000-0000-4000-8000-000000000002', 'be-admin@test.local');
insert into public.organizations (id, name, billing_email) values
  ('d1600000-0000-4000-8000-0000000000a1', 'BE org', null),
  ('d1600000-0000-4000-8000-0000000000a2', 'BE imported', 'imported@be.test');
insert into public.organization_members (organization_id, user_id, role) values
  ('d1600000-0000-4000-8000-0000000000a1', 'd1600000-0000-4000-8000-000000000001', 'owner'),
  ('d1600000-0000-4000-8000-0000000000a1', 'd1600000-0000-4000-8000-000000000002', 'admin');

create function pg_temp.save(p_email text) returns void language sql as $$
  select tests.as_user('d1600000-0000-4000-8000-000000000001');
  select billing.update_billing_profile('d1600000-0000-4000-8000-0000000000a1', 'BE Private Limited', p_email,
                                        null, 'MG Road', null, 'Bengaluru', '29', '560001', 'IN');
  select tests.as_postgres();
$$;
create function pg_temp.queue(p_key text) returns void language sql as $$
  insert into public.notifications (organization_id, kind, payload, dedupe_key)
  values ('d1600000-0000-4000-8000-0000000000a1', 'payment_failed', '{}', p_key);
$$;
create function pg_temp.to(p_key text) returns text[] language sql as $$
  select billing.notification_recipients((select n.id from public.notifications n where n.dedupe_key = p_key));
$$;
create function pg_temp.token(p_email text) returns text language sql as $$
  select c.token from billing.billing_email_confirmations c
  where c.organization_id = 'd1600000-0000-4000-8000-0000000000a1' and c.email = p_email;
$$;

select pg_temp.save('Accounts@BE.test');
select is((select (billing_email, billing_email_confirmed_at is null)::text from public.organizations
           where id = 'd1600000-0000-4000-8000-0000000000a1'),
          '(Accounts@BE.test,t)', 'a new billing email is unconfirmed');
select is((select array_agg(payload ->> 'email') from public.notifications
           where organization_id = 'd1600000-0000-4000-8000-0000000000a1' and kind = 'billing_email_confirmation'),
          array['Accounts@BE.test'], 'one confirmation is queued');
select is(billing.notification_recipients((select id from public.notifications
           where organization_id = 'd1600000-0000-4000-8000-0000000000a1' and kind = 'billing_email_confirmation')),
          array['accounts@be.test'], 'it goes to the address being confirmed, only');
select ok((select not (payload::text like '%' || pg_temp.token('Accounts@BE.test') || '%') from public.notifications
           where organization_id = 'd1600000-0000-4000-8000-0000000000a1' and kind = 'billing_email_confirmation'),
          'the payload (which owners and admins read) does not carry the token');
select pg_temp.queue('be:1');
select is(pg_temp.to('be:1'),
          array['be-admin@test.local', 'be-owner@test.local'], 'until it is confirmed, billing mail goes to owners and admins');
select is((billing.notification_context((select id from public.notifications
           where organization_id = 'd1600000-0000-4000-8000-0000000000a1' and kind = 'billing_email_confirmation'))
           -> 'confirmation' ->> 'token'), pg_temp.token('Accounts@BE.test'), 'the sender reads the token from the context');

select tests.as_role('anon');
select throws_ok($$select public.confirm_billing_email('nope')$$, '42501', null,
                 'anon cannot call confirm_billing_email (the email''s link is the billing-email-confirm function)');
select tests.as_user('d1600000-0000-4000-8000-000000000002');
select throws_ok($$select public.confirm_billing_email('nope')$$, 'P0002', 'this confirmation link is not valid',
                 'an unknown token is refused');
select tests.as_postgres();

-- A newer address supersedes the first link. (The tokens are read as postgres, kept in settings
-- the signed-in user can read.)
select pg_temp.save('finance@be.test');
select set_config('be.first', pg_temp.token('Accounts@BE.test'), true), set_config('be.second', pg_temp.token('finance@be.test'), true);
select tests.as_user('d1600000-0000-4000-8000-000000000002');
select throws_ok(format('select public.confirm_billing_email(%L)', current_setting('be.first')), '22023',
                 'superseded: the billing email was changed after this link was sent; use the newest link',
                 'the link of an address no longer in use is refused');
select tests.as_postgres();

-- Three days later the link has expired.
set local billing.now = '2026-12-13 10:00:01+05:30';
select tests.as_user('d1600000-0000-4000-8000-000000000002');
select throws_ok(format('select public.confirm_billing_email(%L)', current_setting('be.second')), '22023', null,
                 'an expired link is refused');
select tests.as_postgres();
set local billing.now = '2026-12-13 09:00:00+05:30';
select tests.as_user('d1600000-0000-4000-8000-000000000002');
select is((public.confirm_billing_email(current_setting('be.second')) ->> 'billing_email'), 'finance@be.test',
          'within three days, whoever holds the token confirms it');
select tests.as_postgres();
select ok((select billing_email_confirmed_at = '2026-12-13 09:00:00+05:30' from public.organizations
           where id = 'd1600000-0000-4000-8000-0000000000a1'), 'confirmed at the time of the click');
select pg_temp.queue('be:2');
select is(pg_temp.to('be:2'), array['finance@be.test'], 'then billing mail goes to it');

-- Saving the profile with the same address (another case) keeps the confirmation, queues nothing.
select pg_temp.save('FINANCE@be.test');
select ok((select billing_email_confirmed_at is not null from public.organizations
           where id = 'd1600000-0000-4000-8000-0000000000a1'), 'the same address saved again stays confirmed');
select is((select count(*)::int from public.notifications
           where organization_id = 'd1600000-0000-4000-8000-0000000000a1' and kind = 'billing_email_confirmation'), 2,
          'and no new confirmation is queued');

select is(billing.notification_recipients((select id from public.notifications limit 0)), null, 'unknown: null');
insert into public.notifications (id, organization_id, kind, payload, dedupe_key) values
  ('d1600000-0000-4000-8000-0000000000c9', 'd1600000-0000-4000-8000-0000000000a2', 'payment_failed', '{}', 'be:3');
select is(billing.notification_recipients('d1600000-0000-4000-8000-0000000000c9'), array['imported@be.test'],
          'a billing email the service wrote directly is trusted');

select * from finish();
rollback;
