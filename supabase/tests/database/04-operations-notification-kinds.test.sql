-- The notification kinds of 20261201000900_notification_kinds.sql, under the test clock:
-- payment_captured once per issued invoice; trial_ending in the 3 days before a trial ends, once
-- per trial, not for a trial set to cancel nor earlier; cancellation_scheduled when
-- cancel_at_period_end goes false to true on a live subscription, once per period end. (The
-- emails, and the invoice PDF attached: tests/notifications-send.test.ts.)
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
select plan(18);

set local billing.now = '2026-12-01 12:00:00+05:30';

update public.billing_settings
set seller_legal_name = 'Supabill Kinds Pvt Ltd', seller_gstin = '29AAGCB7383J1Z4', seller_state_code = '29',
    gst_rate_bp = 1800, prices_include_tax = false;

insert into public.billing_plans (id, code, name, tier, interval, price_cents) values
  ('c1600000-0000-4000-8000-000000000001', 'nk_test_plan', 'Kinds Test Plan', 'pro', 'month', 99900);
insert into public.organizations (id, name, state_code) values
  ('d1600000-0000-4000-8000-0000000000a1', 'NK paid', '29'),
  ('d1600000-0000-4000-8000-0000000000a2', 'NK trial soon', '29'),
  ('d1600000-0000-4000-8000-0000000000a3', 'NK trial later', '29'),
  ('d1600000-0000-4000-8000-0000000000a4', 'NK trial cancelling', '29'),
  ('d1600000-0000-4000-8000-0000000000a5', 'NK cancelling', '29');

create function pg_temp.count(p_org text, p_kind text) returns integer language sql as $$
  select count(*)::integer from public.notifications
  where organization_id = ('d1600000-0000-4000-8000-0000000000' || p_org)::uuid and kind = p_kind::public.notification_kind $$;

-- payment_captured -----------------------------------------------------------------------------

insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end) values
  ('e1600000-0000-4000-8000-000000000001', 'd1600000-0000-4000-8000-0000000000a1', 'c1600000-0000-4000-8000-000000000001',
   'active', billing.now(), billing.now() + interval '30 days');
insert into public.orders (id, organization_id, plan_id, subscription_id, provider, amount_cents, status, paid_at) values
  ('f1600000-0000-4000-8000-000000000001', 'd1600000-0000-4000-8000-0000000000a1', 'c1600000-0000-4000-8000-000000000001',
   'e1600000-0000-4000-8000-000000000001', 'manual', 99900, 'paid', now());
select is(pg_temp.count('a1', 'payment_captured'), 0, 'no payment_captured before the invoice');
select billing.issue_invoice('f1600000-0000-4000-8000-000000000001', null);
select is(pg_temp.count('a1', 'payment_captured'), 1, 'issuing the invoice queues payment_captured');
select is((select n.payload ->> 'invoice_id' from public.notifications n
           where n.organization_id = 'd1600000-0000-4000-8000-0000000000a1' and n.kind = 'payment_captured'),
          (select i.id::text from public.invoices i where i.order_id = 'f1600000-0000-4000-8000-000000000001'),
          'its payload carries the invoice id');
select is((select n.payload ->> 'invoice_number' = i.invoice_number and n.subscription_id = 'e1600000-0000-4000-8000-000000000001'
                  and n.dedupe_key = 'payment_captured:' || i.id
           from public.notifications n, public.invoices i
           where n.organization_id = 'd1600000-0000-4000-8000-0000000000a1' and n.kind = 'payment_captured'
             and i.order_id = 'f1600000-0000-4000-8000-000000000001'),
          true, 'and the invoice number, the subscription, a dedupe key per invoice');
select billing.issue_invoice('f1600000-0000-4000-8000-000000000001', null);
select is(pg_temp.count('a1', 'payment_captured'), 1, 'issuing again (idempotent) queues nothing more');
select is((billing.notification_context((select n.id from public.notifications n
            where n.organization_id = 'd1600000-0000-4000-8000-0000000000a1' and n.kind = 'payment_captured')) ->> 'amount_cents')::bigint,
          (select i.total_cents from public.invoices i where i.order_id = 'f1600000-0000-4000-8000-000000000001'),
          'the context amount is the invoice total');

-- trial_ending ---------------------------------------------------------------------------------

insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end, trial_end, cancel_at_period_end) values
  ('e1600000-0000-4000-8000-000000000002', 'd1600000-0000-4000-8000-0000000000a2', 'c1600000-0000-4000-8000-000000000001',
   'trialing', billing.now() - interval '11 days', billing.now() + interval '5 days', billing.now() + interval '5 days', false),
  ('e1600000-0000-4000-8000-000000000003', 'd1600000-0000-4000-8000-0000000000a3', 'c1600000-0000-4000-8000-000000000001',
   'trialing', billing.now(), billing.now() + interval '14 days', billing.now() + interval '14 days', false),
  ('e1600000-0000-4000-8000-000000000004', 'd1600000-0000-4000-8000-0000000000a4', 'c1600000-0000-4000-8000-000000000001',
   'trialing', billing.now() - interval '12 days', billing.now() + interval '2 days', billing.now() + interval '2 days', true);

select billing.renewal_reminders_batch(1000);
select is(pg_temp.count('a2', 'trial_ending'), 0, 'a trial ending in 5 days: not yet');

set local billing.now = '2026-12-03 13:00:00+05:30';
select billing.renewal_reminders_batch(1000);
select is(pg_temp.count('a2', 'trial_ending'), 1, '3 days before the trial ends: trial_ending queued');
select is((select n.payload ->> 'trial_end' is not null and n.subscription_id = 'e1600000-0000-4000-8000-000000000002'
           from public.notifications n where n.organization_id = 'd1600000-0000-4000-8000-0000000000a2' and n.kind = 'trial_ending'),
          true, 'with the trial end and the subscription');
select is(pg_temp.count('a3', 'trial_ending'), 0, 'a trial ending in 12 days: not queued');
select is(pg_temp.count('a4', 'trial_ending'), 0, 'a trial set to cancel: not queued');

set local billing.now = '2026-12-05 12:00:00+05:30';
select billing.renewal_reminders_batch(1000);
select is(pg_temp.count('a2', 'trial_ending'), 1, 'the next days: still once per trial');

-- cancellation_scheduled -----------------------------------------------------------------------

set local billing.now = '2026-12-01 12:00:00+05:30';
insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end) values
  ('e1600000-0000-4000-8000-000000000005', 'd1600000-0000-4000-8000-0000000000a5', 'c1600000-0000-4000-8000-000000000001',
   'active', billing.now(), billing.now() + interval '30 days');
update public.subscriptions set updated_at = now() where id = 'e1600000-0000-4000-8000-000000000005';
select is(pg_temp.count('a5', 'cancellation_scheduled'), 0, 'not cancelling: nothing queued');
update public.subscriptions set cancel_at_period_end = true where id = 'e1600000-0000-4000-8000-000000000005';
select is(pg_temp.count('a5', 'cancellation_scheduled'), 1, 'set to cancel at the period end: cancellation_scheduled queued');
select is((select (n.payload ->> 'period_end')::timestamptz = s.current_period_end
           from public.notifications n join public.subscriptions s on s.id = n.subscription_id
           where n.organization_id = 'd1600000-0000-4000-8000-0000000000a5' and n.kind = 'cancellation_scheduled'),
          true, 'with the period end it ends at');
update public.subscriptions set cancel_at_period_end = false where id = 'e1600000-0000-4000-8000-000000000005';
update public.subscriptions set cancel_at_period_end = true where id = 'e1600000-0000-4000-8000-000000000005';
select is(pg_temp.count('a5', 'cancellation_scheduled'), 1, 'resumed and cancelled again in the same period: still once');
update public.subscriptions set cancel_at_period_end = false,
  current_period_start = billing.now() + interval '30 days', current_period_end = billing.now() + interval '60 days'
where id = 'e1600000-0000-4000-8000-000000000005';
update public.subscriptions set cancel_at_period_end = true where id = 'e1600000-0000-4000-8000-000000000005';
select is(pg_temp.count('a5', 'cancellation_scheduled'), 2, 'a new period set to cancel: queued again');
update public.subscriptions set cancel_at_period_end = true where id = 'e1600000-0000-4000-8000-000000000005';
select is(pg_temp.count('a5', 'cancellation_scheduled'), 2, 'true to true: nothing more');

select * from finish();
rollback;
