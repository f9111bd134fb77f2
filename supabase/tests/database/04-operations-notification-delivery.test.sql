-- Notification delivery: recipients (billing email, else owners and admins; owners-only kinds),
-- the failed state, backoff on a transient failure and giving up at the tenth attempt, and the
-- purge of sent and failed rows after billing_settings.notification_retention_days. (End to end,
-- with the fake email API: tests/notifications-send.test.ts.)
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select tests.relax_member_limit();
select plan(16);

insert into auth.users (id, email) values
  ('d1500000-0000-4000-8000-000000000001', 'ND-Owner@test.local'),
  ('d1500000-0000-4000-8000-000000000002', 'nd-admin@test.local'),
  ('d1500000-0000-4000-8000-000000000003', 'nd-member@test.local');
insert into public.organizations (id, name, billing_email) values
  ('d1500000-0000-4000-8000-0000000000a1', 'ND plain', null),
  ('d1500000-0000-4000-8000-0000000000a2', 'ND billed', 'accounts@nd.test'),
  ('d1500000-0000-4000-8000-0000000000a3', 'ND nobody', null);
insert into public.organization_members (organization_id, user_id, role) values
  ('d1500000-0000-4000-8000-0000000000a1', 'd1500000-0000-4000-8000-000000000001', 'owner'),
  ('d1500000-0000-4000-8000-0000000000a1', 'd1500000-0000-4000-8000-000000000002', 'admin'),
  ('d1500000-0000-4000-8000-0000000000a1', 'd1500000-0000-4000-8000-000000000003', 'member'),
  ('d1500000-0000-4000-8000-0000000000a2', 'd1500000-0000-4000-8000-000000000001', 'owner'),
  ('d1500000-0000-4000-8000-0000000000a3', 'd1500000-0000-4000-8000-000000000003', 'member');
insert into public.notifications (id, organization_id, kind, payload, dedupe_key) values
  ('d1500000-0000-4000-8000-0000000000c1', 'd1500000-0000-4000-8000-0000000000a1', 'payment_failed', '{}', 'nd:1'),
  ('d1500000-0000-4000-8000-0000000000c2', 'd1500000-0000-4000-8000-0000000000a2', 'payment_failed', '{}', 'nd:2'),
  ('d1500000-0000-4000-8000-0000000000c3', 'd1500000-0000-4000-8000-0000000000a2', 'provider_action_failed', '{}', 'nd:3'),
  ('d1500000-0000-4000-8000-0000000000c4', 'd1500000-0000-4000-8000-0000000000a3', 'payment_failed', '{}', 'nd:4');

select is(billing.notification_recipients('d1500000-0000-4000-8000-0000000000c1'),
          array['nd-admin@test.local', 'nd-owner@test.local'], 'no billing email: owners and admins, lower-cased, not members');
select is(billing.notification_recipients('d1500000-0000-4000-8000-0000000000c2'),
          array['accounts@nd.test'], 'the billing email when set');
select is(billing.notification_recipients('d1500000-0000-4000-8000-0000000000c3'),
          array['nd-owner@test.local'], 'an owners-only kind goes to the owners whatever the billing email');
select is(billing.notification_recipients('d1500000-0000-4000-8000-0000000000c4'), '{}'::text[], 'nobody to reach: empty');
select is(billing.notification_recipients(gen_random_uuid()), null, 'unknown notification: null');

select tests.as_role('authenticated');
select throws_ok($$select billing.notification_recipients('d1500000-0000-4000-8000-0000000000c1')$$, '42501', null,
                 'a signed-in user cannot read recipients');
select throws_ok($$select billing.mark_notification_failed('d1500000-0000-4000-8000-0000000000c1', 'x')$$, '42501', null,
                 'nor mark one failed');
select tests.as_role('service_role');

-- A transient failure backs off; a permanent one fails for good.
update public.notifications set attempts = 0, locked_until = null where dedupe_key like 'nd:%';
select ok((select count(*) from billing.claim_notification_deliveries(1000) d where d.id = 'd1500000-0000-4000-8000-0000000000c1') = 1,
          'claimed with its recipients');
select is(billing.retry_notification('d1500000-0000-4000-8000-0000000000c1', 'resend 500'), 'retry', 'a transient failure is a retry');
select ok((select locked_until >= billing.now() + interval '29 seconds' from public.notifications where id = 'd1500000-0000-4000-8000-0000000000c1'),
          'after a backoff of 30 seconds, not at once');
select is(billing.mark_notification_failed('d1500000-0000-4000-8000-0000000000c2', 'resend 422 validation_error'), true, 'failed for good');
select is(billing.mark_notification_sent('d1500000-0000-4000-8000-0000000000c2'), false, 'a failed notification is never marked sent');
update public.notifications set locked_until = null where dedupe_key like 'nd:%';
select ok(not exists (select 1 from billing.claim_notifications(1000) c where c.id = 'd1500000-0000-4000-8000-0000000000c2'),
          'and never claimed again');

-- The tenth failed attempt gives up.
update public.notifications set attempts = 10, locked_until = null where id = 'd1500000-0000-4000-8000-0000000000c3';
select is(billing.retry_notification('d1500000-0000-4000-8000-0000000000c3', 'resend 503'), 'failed', 'the tenth attempt fails for good');
select tests.as_postgres();

-- Retention: sent and failed rows older than notification_retention_days go; newer and unsent stay.
update public.billing_settings set notification_retention_days = 30;
update public.notifications set failed_at = now() - interval '31 days' where id = 'd1500000-0000-4000-8000-0000000000c2';
update public.notifications set sent_at = now() - interval '31 days', failed_at = null where id = 'd1500000-0000-4000-8000-0000000000c4';
update public.notifications set failed_at = now() - interval '29 days' where id = 'd1500000-0000-4000-8000-0000000000c3';
select billing.purge_batch(1000);
select is((select array_agg(dedupe_key order by dedupe_key) from public.notifications where dedupe_key like 'nd:%'),
          array['nd:1', 'nd:3'], 'sent and failed rows past the retention are purged, the others stay');
select col_default_is('public', 'billing_settings', 'notification_retention_days', '90', 'the retention defaults to 90 days');

select * from finish();
rollback;
