-- Subscription history written by the database (the upgrade 20261206000100): a statement-level
-- trigger on subscriptions records every change, whatever made it. A direct write with no change
-- context is recorded as actor 'sql' with an action derived from what changed; a write that
-- changes nothing history-worthy records nothing; each function's change is one row with its
-- action, actor and reason (the context it set just before writing), never two; a batch job
-- writes one row per subscription in one statement; a context labels one statement and never
-- leaks into the next; the intent writer takes only intents; and the revenue analytics see a
-- plan changed in the SQL editor.
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
select tests.relax_owner_limit();
select plan(46);

-- -------------------------------------------------------------------------------------------------
-- Fixture and helpers
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values
  ('f2111111-0000-4000-8000-000000000001', 'history-owner@test.local');

insert into public.billing_plans (code, name, tier, interval, price_cents, currency, trial_days, active) values
  ('sh_basic_m', 'SH Basic (monthly)', 'basic', 'month', 49900, 'INR', 0, true),
  ('sh_pro_m', 'SH Pro (monthly)', 'pro', 'month', 99900, 'INR', 14, true),
  ('sh_pro_y', 'SH Pro (yearly)', 'pro', 'year', 999000, 'INR', 0, true);

/** Organization n, owned by the user above. */
create function pg_temp.org(p_n integer)
returns uuid language sql as $$ select ('f2000000-0000-4000-8000-' || lpad(p_n::text, 12, '0'))::uuid $$;

insert into public.organizations (id, name) select pg_temp.org(n), 'History ' || n from generate_series(1, 20) n;
insert into public.organization_members (organization_id, user_id, role)
select pg_temp.org(n), 'f2111111-0000-4000-8000-000000000001', 'owner' from generate_series(1, 20) n;

create function pg_temp.at(p_time text)
returns void language sql as $$ select set_config('billing.now', p_time, true) $$;

create function pg_temp.plan_id(p_code text)
returns uuid language sql as $$ select id from public.billing_plans where code = p_code $$;

create function pg_temp.as_owner() returns void language sql as $$
  select tests.as_user('f2111111-0000-4000-8000-000000000001') $$;

/** The organization's latest subscription. */
create function pg_temp.sub(p_org uuid)
returns public.subscriptions language sql as $$
  select * from public.subscriptions where organization_id = p_org order by created_at desc limit 1 $$;

/** An active subscription on p_plan, written directly (recorded as 'created' by 'sql'). */
create function pg_temp.subscribe(p_org uuid, p_plan text, p_start text, p_end text)
returns uuid language sql as $$
  insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider)
  values (p_org, pg_temp.plan_id(p_plan), 'active', p_start::timestamptz, p_end::timestamptz, 'payu')
  returning id $$;

/** The organization's history, in the order it was written: action/actor_kind, comma-separated. */
create function pg_temp.history(p_org uuid)
returns text language sql as $$
  select string_agg(action || '/' || actor_kind, ',' order by created_at, id)
  from public.subscription_history where organization_id = p_org $$;

/** The organization's latest history row. */
create function pg_temp.last(p_org uuid)
returns public.subscription_history language sql as $$
  select * from public.subscription_history where organization_id = p_org order by created_at desc, id desc limit 1 $$;

/** A PayU success for the order with this receipt, as the adapter sends it. */
create function pg_temp.payu_paid(p_receipt text)
returns jsonb language sql as $$
  select billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', p_receipt || ':success', 'event_type', 'payment.success', 'order_ref', p_receipt,
    'provider_payment_id', p_receipt, 'amount_paise', (select amount_cents from public.orders where receipt = p_receipt),
    'currency', 'INR'))) $$;

/** The owner's checkout of p_plan through PayU; its receipt. */
create function pg_temp.checkout(p_org uuid, p_plan text)
returns text language plpgsql as $$
declare
  v_receipt text;
begin
  perform pg_temp.as_owner();
  select c.receipt into v_receipt from public.create_checkout_order(p_org, p_plan, 'payu') c;
  perform tests.as_postgres();
  return v_receipt;
end;
$$;

select pg_temp.at('2026-12-01 10:00+05:30');

-- -------------------------------------------------------------------------------------------------
-- The trigger and what it records as history-worthy
-- -------------------------------------------------------------------------------------------------

select is(
  (select string_agg(t.tgname || ':' || case when t.tgtype & 1 = 1 then 'row' else 'statement' end
                     || ':' || coalesce(t.tgoldtable, '-') || ':' || coalesce(t.tgnewtable, '-'), ',' order by t.tgname)
   from pg_trigger t where t.tgrelid = 'public.subscriptions'::regclass and t.tgname like 'subscriptions_history_%'),
  'subscriptions_history_insert:statement:-:new_rows,subscriptions_history_update:statement:old_rows:new_rows',
  'history is written by statement-level triggers on subscriptions, with transition tables'
);
select is(
  (select string_agg(c.column_name, ',' order by c.column_name) from information_schema.columns c
   where c.table_schema = 'public' and c.table_name = 'subscriptions'),
  'cancel_at_period_end,canceled_at,created_at,current_period_end,current_period_start,ended_at,id,organization_id,'
  || 'pending_plan_effective_at,pending_plan_id,period_anchor,plan_id,provider,provider_subscription_id,status,'
  || 'trial_end,updated_at',
  'every column of subscriptions is either compared by the trigger or bookkeeping (a new column must be added to one)'
);
select ok(
  not exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
              where n.nspname = 'billing' and p.proname in ('log_subscription_change', 'log_subscription_changes')),
  'the old writers billing.log_subscription_change(s) are gone: the trigger is the one writer of changes'
);

-- -------------------------------------------------------------------------------------------------
-- A direct write in the SQL editor (postgres, no context): actor 'sql'
-- -------------------------------------------------------------------------------------------------

select pg_temp.subscribe(pg_temp.org(1), 'sh_basic_m', '2026-12-01 10:00+05:30', '2027-01-01 10:00+05:30');
select is(
  (select row(h.action, h.actor_kind, h.actor_id, h.old_plan_id, h.new_plan_id, h.old_status, h.new_status,
              h.metadata, h.effective_at)::text
   from public.subscription_history h where h.organization_id = pg_temp.org(1)),
  row('created', 'sql', null::uuid, null::uuid, pg_temp.plan_id('sh_basic_m'), null::public.subscription_status,
      'active'::public.subscription_status, '{"db_role": "postgres"}'::jsonb, '2026-12-01 10:00+05:30'::timestamptz)::text,
  'a subscription inserted directly is recorded: created by sql, with the role, at billing.now()'
);

update public.subscriptions set plan_id = pg_temp.plan_id('sh_pro_m') where organization_id = pg_temp.org(1);
select is(
  (select row(h.action, h.actor_kind, h.old_plan_id, h.new_plan_id, h.old_status, h.new_status, h.metadata)::text
   from pg_temp.last(pg_temp.org(1)) h),
  row('plan_changed', 'sql', pg_temp.plan_id('sh_basic_m'), pg_temp.plan_id('sh_pro_m'),
      'active'::public.subscription_status, 'active'::public.subscription_status,
      '{"db_role": "postgres", "changed": ["plan_id"]}'::jsonb)::text,
  'a direct update of the plan as postgres is recorded: plan_changed by sql, old and new plan, what changed'
);
select is((select count(*)::integer from public.subscription_history where organization_id = pg_temp.org(1)), 2,
  'one row per change, no more');

update public.subscriptions set status = status, updated_at = now() + interval '1 minute',
                                period_anchor = '2026-12-01 10:00+05:30'
where organization_id = pg_temp.org(1);
select is((select count(*)::integer from public.subscription_history where organization_id = pg_temp.org(1)), 2,
  'an update that changes nothing history-worthy (same status, updated_at, period_anchor) writes nothing');

-- What a direct update is recorded as, change by change.
update public.subscriptions set status = 'past_due' where organization_id = pg_temp.org(1);
update public.subscriptions set status = 'active' where organization_id = pg_temp.org(1);
update public.subscriptions set cancel_at_period_end = true, canceled_at = billing.now() where organization_id = pg_temp.org(1);
update public.subscriptions set cancel_at_period_end = false, canceled_at = null where organization_id = pg_temp.org(1);
update public.subscriptions set pending_plan_id = pg_temp.plan_id('sh_basic_m'), pending_plan_effective_at = current_period_end
where organization_id = pg_temp.org(1);
update public.subscriptions set pending_plan_id = null, pending_plan_effective_at = null where organization_id = pg_temp.org(1);
update public.subscriptions set current_period_end = current_period_end + interval '7 days' where organization_id = pg_temp.org(1);
update public.subscriptions set provider_subscription_id = 'payu_ref_1' where organization_id = pg_temp.org(1);
update public.subscriptions set status = 'canceled', ended_at = billing.now() where organization_id = pg_temp.org(1);
select is(
  pg_temp.history(pg_temp.org(1)),
  'created/sql,plan_changed/sql,past_due/sql,reactivated/sql,cancel_scheduled/sql,resumed/sql,'
  || 'downgrade_scheduled/sql,pending_plan_cleared/sql,period_changed/sql,updated/sql,canceled/sql',
  'direct updates get an action derived from what changed: status, cancel flag, pending plan, period, anything else'
);
select is(
  (select h.new_plan_id from public.subscription_history h
   where h.organization_id = pg_temp.org(1) and h.action = 'downgrade_scheduled'),
  pg_temp.plan_id('sh_basic_m'),
  'a scheduled downgrade keeps the meaning analytics read: new_plan_id is the plan asked for'
);

-- One statement over three subscriptions, as service_role.
select pg_temp.subscribe(pg_temp.org(n), 'sh_basic_m', '2026-12-01 10:00+05:30', '2027-01-01 10:00+05:30')
from generate_series(2, 4) n;
select tests.as_role('service_role');
update public.subscriptions set current_period_end = current_period_end + interval '1 day'
where organization_id in (pg_temp.org(2), pg_temp.org(3), pg_temp.org(4));
select tests.as_postgres();
select is(
  (select row(count(*), count(distinct h.subscription_id), min(h.metadata ->> 'db_role'), count(distinct h.cmin::text))::text
   from public.subscription_history h
   where h.organization_id in (pg_temp.org(2), pg_temp.org(3), pg_temp.org(4)) and h.action = 'period_changed'),
  '(3,3,service_role,1)',
  'a direct update of three subscriptions by service_role: three rows, written by one statement, with the role'
);

-- -------------------------------------------------------------------------------------------------
-- The change context: one statement, then gone
-- -------------------------------------------------------------------------------------------------

-- A context holds for the client command that set it: set and write in one DO block, as our
-- functions do in one call.
do $$
begin
  perform billing.set_change_context('period_extended', 'operator', null, 'goodwill after an outage',
                                     '{"ticket": "T-1"}'::jsonb);
  update public.subscriptions set current_period_end = current_period_end + interval '3 days'
  where organization_id = 'f2000000-0000-4000-8000-000000000002';
  update public.subscriptions set current_period_end = current_period_end + interval '3 days'
  where organization_id = 'f2000000-0000-4000-8000-000000000002';
end $$;
select is(
  (select string_agg(h.action || '/' || h.actor_kind || '/' || coalesce(h.reason, '-') || '/' || h.metadata::text, ','
                     order by h.created_at)
   from public.subscription_history h where h.organization_id = pg_temp.org(2) and h.action <> 'created'),
  'period_changed/sql/-/{"changed": ["current_period_end"], "db_role": "service_role"},'
  || 'period_extended/operator/by an operator/{"ticket": "T-1"},'
  || 'period_changed/sql/-/{"changed": ["current_period_end"], "db_role": "postgres"}',
  'a context labels the next write only: the following statement of the same transaction is recorded as sql'
);
select is(current_setting('billing.change_context', true), '', 'and the setting is cleared once taken');

do $$
begin
  perform billing.set_change_context('canceled', 'operator', null, 'never applied');
  update public.subscriptions set status = status where organization_id = 'f2000000-0000-4000-8000-000000000003';
  update public.subscriptions set cancel_at_period_end = true where organization_id = 'f2000000-0000-4000-8000-000000000003';
end $$;
select is(
  (select h.action || '/' || h.actor_kind from pg_temp.last(pg_temp.org(3)) h),
  'cancel_scheduled/sql',
  'a write that changes nothing still takes the context: it does not label a later change'
);

insert into public.organizations (id, name) select pg_temp.org(n), 'History ' || n from generate_series(21, 25) n;
insert into public.organization_members (organization_id, user_id, role)
select pg_temp.org(n), 'f2111111-0000-4000-8000-000000000001', 'owner' from generate_series(21, 25) n;
select pg_temp.at('2027-01-01 10:00+05:30');
select pg_temp.subscribe(pg_temp.org(n), 'sh_basic_m', '2027-01-01 10:00+05:30', '2027-02-01 10:00+05:30')
from generate_series(21, 22) n;

-- A context whose write was rolled back to a savepoint does not label a later command's write.
do $$
begin
  perform billing.set_change_context('plan_granted', 'operator', p_reason => 'private words');
  begin
    update public.subscriptions set current_period_end = current_period_end + interval '1 day'
    where organization_id = 'f2000000-0000-4000-8000-000000000021';
    raise exception 'failed after the write';
  exception when others then null;
  end;
end $$;
update public.subscriptions set status = 'canceled', ended_at = billing.now(), canceled_at = billing.now()
where organization_id = pg_temp.org(22);
select is((select h.action || '/' || h.actor_kind from pg_temp.last(pg_temp.org(22)) h), 'canceled/sql',
  'a later command''s direct write is recorded as sql, not under the context of a write that was rolled back');

-- A context set by one command labels nothing in the next.
select billing.set_change_context('period_extended', 'operator', p_reason => 'set, then nothing');
update public.subscriptions set current_period_end = current_period_end + interval '1 day'
where organization_id = pg_temp.org(21);
select is((select h.action || '/' || h.actor_kind from pg_temp.last(pg_temp.org(21)) h), 'period_changed/sql',
  'a context set by an earlier command is dropped: the write is recorded as sql');

-- An upsert that inserts carries its context (its UPDATE half wrote no row and leaves it).
do $$
begin
  perform billing.set_change_context('plan_granted', 'operator', p_reason => 'private words');
  insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider)
  values ('f2000000-0000-4000-8000-000000000023', (select id from public.billing_plans where code = 'sh_pro_m'), 'active',
          billing.now(), billing.now() + interval '6 months', 'manual')
  on conflict (organization_id) where status in ('pending_payment', 'trialing', 'active', 'past_due')
  do update set plan_id = excluded.plan_id;
end $$;
select is((select string_agg(h.action || '/' || h.actor_kind, ',') from public.subscription_history h
           where h.organization_id = pg_temp.org(23)),
  'plan_granted/operator', 'an upsert that inserts carries the context it was given');

-- A statement that matches no row leaves the context for the next write of the same command.
do $$
begin
  perform billing.set_change_context('period_extended', 'operator', p_reason => 'goodwill');
  update public.subscriptions set current_period_end = current_period_end + interval '1 day' where false;
  update public.subscriptions set current_period_end = current_period_end + interval '1 day'
  where organization_id = 'f2000000-0000-4000-8000-000000000022';
end $$;
select is((select h.action || '/' || h.actor_kind from pg_temp.last(pg_temp.org(22)) h), 'period_extended/operator',
  'a statement that wrote no row does not take the context: the write after it in the same command carries it');

select throws_ok($$select billing.set_change_context('upgrade_ordered', 'user')$$, '22023', null,
  'an intent cannot be a change context (only billing.log_subscription_intent writes intents)');
select throws_ok($$select billing.set_change_context('canceled', 'robot')$$, '22023', null,
  'an unknown actor kind is refused');
select throws_ok($$select billing.set_change_context('Canceled!', 'user')$$, '22023', null,
  'an action that is not snake_case is refused');
select throws_ok($$select billing.set_change_context('canceled', 'user', p_metadata => '[1]')$$, '22023', null,
  'metadata that is not an object is refused');
select throws_ok(format($$select billing.log_subscription_intent(%L, 'plan_changed', %L, 'user')$$,
                        (pg_temp.sub(pg_temp.org(3))).id, pg_temp.plan_id('sh_pro_m')),
  '22023', null, 'the intent writer refuses a change (the trigger records changes)');

select throws_ok(format($$update public.subscription_history set reason = 'edited' where organization_id = %L$$, pg_temp.org(1)),
  '42501', null, 'subscription_history stays immutable: no update');
select throws_ok(format($$delete from public.subscription_history where organization_id = %L$$, pg_temp.org(1)),
  '42501', null, 'and no delete');
select throws_ok(format($$delete from public.subscriptions where organization_id = %L$$, pg_temp.org(1)),
  '23503', null, 'a subscription with history cannot be deleted (its history restricts it)');

-- -------------------------------------------------------------------------------------------------
-- Our functions: one row per change, with their action, actor and reason
-- -------------------------------------------------------------------------------------------------

-- The user: a trial, then cancel at the period end and resume, a downgrade, an upgrade ordered.
select pg_temp.at('2026-12-01 10:00+05:30');
select pg_temp.as_owner();
select public.start_trial(pg_temp.org(5), 'sh_pro_m');
select tests.as_postgres();
select is(
  (select row(h.action, h.actor_kind, h.actor_id, h.reason, h.new_status, (h.metadata ->> 'trial_end')::timestamptz)::text
   from pg_temp.last(pg_temp.org(5)) h),
  row('trial_started', 'user', 'f2111111-0000-4000-8000-000000000001'::uuid, '14-day trial of sh_pro_m',
      'trialing'::public.subscription_status, '2026-12-15 10:00+05:30'::timestamptz)::text,
  'start_trial: one trial_started row by the user, with the reason and the trial end'
);

select pg_temp.subscribe(pg_temp.org(6), 'sh_pro_m', '2026-12-01 10:00+05:30', '2027-01-01 10:00+05:30');
select pg_temp.as_owner();
select public.cancel_subscription(pg_temp.org(6));
select public.resume_subscription(pg_temp.org(6));
select public.change_plan(pg_temp.org(6), 'sh_basic_m');
select tests.as_postgres();
select is(
  (select string_agg(h.action || '/' || h.actor_kind || '/' || coalesce(h.reason, '-'), ',' order by h.created_at)
   from public.subscription_history h where h.organization_id = pg_temp.org(6)),
  'created/sql/-,cancel_scheduled/user/cancellation requested for the period end,'
  || 'resumed/user/scheduled cancellation undone,'
  || 'downgrade_scheduled/user/downgrade to sh_basic_m at the period end (no refund)',
  'cancel_subscription, resume_subscription, change_plan (downgrade): exactly one row each, by the user'
);
select is(
  (select row(h.old_plan_id, h.new_plan_id, h.actor_id)::text from pg_temp.last(pg_temp.org(6)) h),
  row(pg_temp.plan_id('sh_pro_m'), pg_temp.plan_id('sh_basic_m'), 'f2111111-0000-4000-8000-000000000001'::uuid)::text,
  'the scheduled downgrade names the plan running and the plan asked for, and who asked'
);

select pg_temp.subscribe(pg_temp.org(7), 'sh_basic_m', '2026-12-01 10:00+05:30', '2027-01-01 10:00+05:30');
create temp table sh (key text primary key, val jsonb) on commit drop;
grant all on sh to authenticated;
select pg_temp.as_owner();
insert into sh values ('upgrade', public.change_plan(pg_temp.org(7), 'sh_pro_m'));
select tests.as_postgres();
select is(
  (select row(h.action, h.actor_kind, h.old_plan_id, h.new_plan_id, h.old_status, h.new_status,
              h.metadata ->> 'order_id')::text
   from pg_temp.last(pg_temp.org(7)) h),
  row('upgrade_ordered', 'user', pg_temp.plan_id('sh_basic_m'), pg_temp.plan_id('sh_pro_m'),
      'active'::public.subscription_status, 'active'::public.subscription_status,
      (select val ->> 'order_id' from sh where key = 'upgrade'))::text,
  'change_plan (upgrade): the order is an intent, written by the intent writer: the plan running, the plan asked for'
);
select is(
  (select count(*)::integer from public.subscription_history where organization_id = pg_temp.org(7)), 2,
  'and only that row: the subscription is untouched, so the trigger writes nothing'
);

select pg_temp.as_owner();
select public.cancel_subscription(pg_temp.org(7), false);
select tests.as_postgres();
select is(
  (select h.action || '/' || h.actor_kind || '/' || h.old_status || '/' || h.new_status || '/' || h.reason
   from pg_temp.last(pg_temp.org(7)) h),
  'canceled/user/active/canceled/cancelled now by the user (no refund)',
  'cancel_subscription now: one canceled row by the user'
);

-- The provider: a payment starts a subscription, a dispute moves it, a lost dispute ends it.
select pg_temp.at('2026-12-02 10:00+05:30');
insert into sh values ('o8', to_jsonb(pg_temp.checkout(pg_temp.org(8), 'sh_basic_m')));
select pg_temp.payu_paid((select val #>> '{}' from sh where key = 'o8'));
select is(
  (select row(h.action, h.actor_kind, h.new_status, h.metadata ->> 'order_id' is not null)::text
   from public.subscription_history h where h.organization_id = pg_temp.org(8)),
  row('activated', 'provider', 'active'::public.subscription_status, true)::text,
  'a captured payment (extend_subscription_for_payment): one activated row by the provider, with the order'
);
select billing.apply_dispute(jsonb_build_object('provider', 'payu', 'kind', 'dispute_opened', 'event_id', 'sh_d1',
  'event_type', 'test.dispute_opened', 'provider_payment_id', (select val #>> '{}' from sh where key = 'o8'),
  'provider_dispute_id', 'disp_1'), billing.now());
select billing.apply_dispute(jsonb_build_object('provider', 'payu', 'kind', 'dispute_lost', 'event_id', 'sh_d2',
  'event_type', 'test.dispute_lost', 'provider_payment_id', (select val #>> '{}' from sh where key = 'o8'),
  'provider_dispute_id', 'disp_1'), billing.now());
select is(
  (select string_agg(h.action || '/' || h.actor_kind || '/' || h.old_status || '>' || h.new_status, ',' order by h.created_at)
   from public.subscription_history h where h.organization_id = pg_temp.org(8) and h.action <> 'activated'),
  'dispute_opened/provider/active>past_due,dispute_lost/provider/past_due>canceled',
  'apply_dispute and end_paid_period: one row each, by the provider'
);

select pg_temp.subscribe(pg_temp.org(9), 'sh_basic_m', '2026-12-01 10:00+05:30', '2027-01-01 10:00+05:30');
update public.subscriptions set provider = 'razorpay', provider_subscription_id = 'sub_sh_9' where organization_id = pg_temp.org(9);
select billing.sync_provider_status((pg_temp.sub(pg_temp.org(9))).id, 'halted', billing.now(),
  '{"provider": "razorpay", "event_type": "subscription.halted", "event_id": "sh_e9"}');
select is(
  (select string_agg(h.action || '/' || h.actor_kind || '/' || coalesce(h.reason, '-') || '/'
                     || coalesce(h.metadata ->> 'event_id', '-'), ',' order by h.created_at)
   from public.subscription_history h where h.organization_id = pg_temp.org(9)),
  'created/sql/-/-,updated/sql/-/-,past_due/provider/razorpay subscription.halted/sh_e9',
  'sync_provider_status: one row by the provider, with the event'
);

-- The operator.
select pg_temp.subscribe(pg_temp.org(15), 'sh_basic_m', '2026-12-01 10:00+05:30', '2027-01-01 10:00+05:30');
select billing.operator_extend_period(pg_temp.org(15), interval '7 days', 'compensation for downtime');
select billing.operator_cancel(pg_temp.org(15), true, 'customer asked by phone');
select billing.operator_resume(pg_temp.org(15), 'customer changed their mind');
select billing.operator_grant_plan(pg_temp.org(15), 'sh_pro_m', '2027-06-01 00:00+05:30', 'partner programme');
select billing.operator_cancel(pg_temp.org(15), false, 'partner left');
select is(
  (select string_agg(h.action || '/' || h.actor_kind || '/' || n.reason, ',' order by h.created_at)
   from public.subscription_history h join billing.operator_notes n on n.history_id = h.id
   where h.organization_id = pg_temp.org(15) and h.actor_kind = 'operator'),
  'period_extended/operator/compensation for downtime,cancel_scheduled/operator/customer asked by phone,'
  || 'resumed/operator/customer changed their mind,plan_granted/operator/partner programme,'
  || 'canceled/operator/partner left',
  'operator_extend_period, operator_cancel, operator_resume, operator_grant_plan: one row each, the operator''s words in billing.operator_notes'
);
select is(
  (select string_agg(distinct h.reason, ',') from public.subscription_history h
   where h.organization_id = pg_temp.org(15) and h.actor_kind = 'operator'),
  'by an operator',
  'the history members read says an operator acted, never the operator''s own words'
);
select throws_ok(
  format($$update billing.operator_notes set reason = 'edited' where organization_id = %L$$, pg_temp.org(15)),
  '42501', null, 'an operator note cannot be edited'
);
select is(
  (select count(*)::integer from public.subscription_history where organization_id = pg_temp.org(15)),
  6,
  'and nothing else: the created row (sql) and five operator rows'
);

-- -------------------------------------------------------------------------------------------------
-- A batch job: N subscriptions, N rows, one statement
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2026-12-01 10:00+05:30');
select pg_temp.subscribe(pg_temp.org(n), 'sh_basic_m', '2026-11-' || lpad((n - 9)::text, 2, '0') || ' 00:00+05:30',
                         '2026-12-' || lpad((n - 9)::text, 2, '0') || ' 00:00+05:30')
from generate_series(10, 14) n;
-- The jobs are global: in a database with rows in it (the upgrade check of npm test) they move
-- other organizations' subscriptions due then too. What a job returns, less the other
-- subscriptions whose status it changed, is what it did to these five.
create temp table others_before (id uuid, status public.subscription_status);
create function pg_temp.snapshot_others() returns void language sql as $$
  delete from others_before;
  insert into others_before
  select s.id, s.status from public.subscriptions s
  where s.organization_id not in (select pg_temp.org(n) from generate_series(10, 14) n);
$$;
create function pg_temp.moved_elsewhere() returns integer language sql as $$
  select count(*)::integer from others_before b join public.subscriptions s on s.id = b.id where s.status is distinct from b.status
$$;
select pg_temp.at('2026-12-06 10:00+05:30');
select pg_temp.snapshot_others();
create temp table job_moved as select billing.mark_past_due(100, billing.now(), '{"job": "test"}') as moved;
select is((select moved from job_moved) - pg_temp.moved_elsewhere(), 5, 'the past-due step moves five subscriptions');
select is(
  (select row(count(*), count(distinct h.cmin::text), min(h.actor_kind), min(h.reason), min(h.metadata::text))::text
   from public.subscription_history h
   where h.organization_id in (select pg_temp.org(n) from generate_series(10, 14) n) and h.action = 'past_due'),
  '(5,1,system,"period ended unpaid","{""job"": ""test""}")',
  'five past_due rows by the system, written by one statement, with the run in metadata'
);
select is(
  (select string_agg(to_char(h.effective_at at time zone 'Asia/Kolkata', 'MM-DD'), ',' order by h.effective_at)
   from public.subscription_history h
   where h.organization_id in (select pg_temp.org(n) from generate_series(10, 14) n) and h.action = 'past_due'),
  '12-01,12-02,12-03,12-04,12-05',
  'each dated when it fell due: its own period end'
);
select pg_temp.at('2026-12-10 10:00+05:30');
select pg_temp.snapshot_others();
truncate job_moved;
insert into job_moved select billing.job_expire();
select is((select moved from job_moved) - pg_temp.moved_elsewhere(), 5, 'billing-expire moves them on after the grace days');
select is(
  (select row(count(*), count(distinct h.cmin::text), min(h.actor_kind))::text
   from public.subscription_history h
   where h.organization_id in (select pg_temp.org(n) from generate_series(10, 14) n) and h.action = 'expired'),
  '(5,1,system)',
  'five expired rows, one statement, and no other row: the job is the only writer of its change'
);

-- -------------------------------------------------------------------------------------------------
-- Revenue analytics see a plan changed in the SQL editor
-- -------------------------------------------------------------------------------------------------

select pg_temp.at('2027-03-10 10:00+05:30');
select pg_temp.subscribe(pg_temp.org(20), 'sh_basic_m', '2027-03-10 10:00+05:30', '2027-04-10 10:00+05:30');
select pg_temp.at('2027-03-11 12:00+05:30');
update public.subscriptions set plan_id = pg_temp.plan_id('sh_pro_m') where organization_id = pg_temp.org(20);
select pg_temp.at('2027-03-12 12:00+05:30');
select is(
  (select row(s ->> 'new_mrr', s ->> 'new_customers', s ->> 'expansion_mrr')::text
   from billing.revenue_summary('2027-03-10') s),
  row('49900', '1', '0')::text,
  'the day a subscription is inserted directly, the analytics count it: new MRR of 49,900 paise'
);
select is(
  (select row(s ->> 'new_mrr', s ->> 'expansion_mrr', s ->> 'contraction_mrr', s ->> 'churned_mrr')::text
   from billing.revenue_summary('2027-03-11') s),
  row('0', '50000', '0', '0')::text,
  'the day its plan is changed by a direct update: an expansion of 50,000 paise (Basic to Pro)'
);
select is(
  ((billing.revenue_summary('2027-03-11') ->> 'mrr')::bigint - (billing.revenue_summary('2027-03-10') ->> 'mrr')::bigint),
  50000::bigint,
  'and the closing MRR moves by the same amount'
);

select * from finish();
rollback;
