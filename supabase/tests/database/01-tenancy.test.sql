-- Tenancy and catalog rules: organization RPCs (owners, admins, the last owner), plan features
-- validation, the free plan, one live subscription per organization, immutable audit logs, the
-- test clock, the plan's max_members, and the function hygiene rules (search_path, EXECUTE
-- grants, no sql-language functions).
begin;
set local search_path = public, extensions;
-- Fixtures below put several members in free organizations; the member limit (free allows 1)
-- is tested at the end of this file.
select tests.relax_member_limit();
select plan(78);

-- -------------------------------------------------------------------------------------------------
-- Fixture and helpers
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values
  ('b2222222-0000-4000-8000-000000000001', 'ten-owner@test.local'),
  ('b2222222-0000-4000-8000-000000000002', 'ten-admin@test.local'),
  ('b2222222-0000-4000-8000-000000000003', 'ten-member@test.local'),
  ('b2222222-0000-4000-8000-000000000004', 'ten-second-owner@test.local'),
  ('b2222222-0000-4000-8000-000000000005', 'ten-stranger@test.local');

create temp table ten (key text primary key, id uuid) on commit drop;
grant select on ten to authenticated, service_role;

-- -------------------------------------------------------------------------------------------------
-- create_organization
-- -------------------------------------------------------------------------------------------------

select tests.as_role('authenticated');
select throws_ok(
  $$select public.create_organization('Nobody''s org')$$,
  '42501', 'not signed in',
  'create_organization refuses a caller who is not signed in'
);
select tests.as_postgres();

select ok(
  not has_function_privilege('anon', 'public.create_organization(text)', 'execute'),
  'anon cannot execute create_organization'
);

select tests.as_user('b2222222-0000-4000-8000-000000000001');
select throws_ok(
  $$select public.create_organization('   ')$$,
  '22023', 'organization name must be 1 to 200 characters',
  'create_organization rejects a blank name'
);
select tests.as_postgres();

select tests.as_user('b2222222-0000-4000-8000-000000000001');
create temp table ten_created on commit drop as select public.create_organization('  Tenancy Test Org  ') as id;
select tests.as_postgres();
insert into ten select 'org', id from ten_created;

select is(
  (select name from public.organizations where id = (select id from ten where key = 'org')),
  'Tenancy Test Org',
  'create_organization creates the organization with the trimmed name and returns its id'
);
select is(
  (select role::text from public.organization_members
   where organization_id = (select id from ten where key = 'org')
     and user_id = 'b2222222-0000-4000-8000-000000000001'),
  'owner',
  'the caller of create_organization becomes its owner'
);

-- -------------------------------------------------------------------------------------------------
-- add_organization_member, set_member_role, remove_organization_member
-- -------------------------------------------------------------------------------------------------

select tests.as_user('b2222222-0000-4000-8000-000000000001');
select lives_ok(
  $$select public.add_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000002', 'admin');
    select public.add_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000003')$$,
  'an owner adds an admin, and a member with the default role'
);
select throws_ok(
  $$select public.add_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000003', 'admin')$$,
  '23505', 'user b2222222-0000-4000-8000-000000000003 is already a member of the organization',
  'adding an existing member is refused'
);
select tests.as_postgres();

select is(
  (select role::text from public.organization_members
   where organization_id = (select id from ten where key = 'org')
     and user_id = 'b2222222-0000-4000-8000-000000000003'),
  'member',
  'add_organization_member defaults the role to member'
);

select tests.as_user('b2222222-0000-4000-8000-000000000003');
select throws_ok(
  $$select public.add_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000005')$$,
  '42501', 'only owners and admins of the organization can do this',
  'a plain member cannot add members'
);
select throws_ok(
  $$select public.set_member_role((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000003', 'admin')$$,
  '42501', 'only owners and admins of the organization can do this',
  'a plain member cannot promote themselves'
);
select tests.as_postgres();

select tests.as_user('b2222222-0000-4000-8000-000000000005');
select throws_ok(
  $$select public.remove_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000003')$$,
  '42501', 'only owners and admins of the organization can do this',
  'a stranger cannot remove members of another organization'
);
select throws_ok(
  $$select public.set_member_role((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000003', 'admin')$$,
  '42501', 'only owners and admins of the organization can do this',
  'a stranger cannot change roles in another organization'
);
select tests.as_postgres();

-- Admins cannot touch owners.
select tests.as_user('b2222222-0000-4000-8000-000000000002');
select throws_ok(
  $$select public.add_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000005', 'owner')$$,
  '42501', 'only an owner can add an owner',
  'an admin cannot add an owner'
);
select throws_ok(
  $$select public.remove_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000001')$$,
  '42501', 'an admin cannot remove an owner',
  'an admin cannot remove an owner'
);
select throws_ok(
  $$select public.set_member_role((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000001', 'member')$$,
  '42501', 'only an owner can change an owner''s role or make someone owner',
  'an admin cannot demote an owner'
);
select throws_ok(
  $$select public.set_member_role((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000003', 'owner')$$,
  '42501', 'only an owner can change an owner''s role or make someone owner',
  'an admin cannot make someone owner'
);
select lives_ok(
  $$select public.add_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000005', 'member');
    select public.set_member_role((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000005', 'admin');
    select public.set_member_role((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000005', 'member')$$,
  'an admin adds a member and changes a non-owner''s role'
);
select throws_ok(
  $$select public.remove_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000004')$$,
  'P0002', 'user b2222222-0000-4000-8000-000000000004 is not a member of the organization',
  'removing someone who is not a member is refused'
);
select tests.as_postgres();

-- A member may leave on their own.
select tests.as_user('b2222222-0000-4000-8000-000000000005');
select lives_ok(
  $$select public.remove_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000005')$$,
  'a member can leave an organization'
);
select tests.as_postgres();
select is_empty(
  $$select 1 from public.organization_members
    where organization_id = (select id from ten where key = 'org') and user_id = 'b2222222-0000-4000-8000-000000000005'$$,
  'the member who left is no longer a member'
);

-- The last owner.
select tests.as_user('b2222222-0000-4000-8000-000000000001');
select throws_ok(
  $$select public.set_member_role((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000001', 'admin')$$,
  '23514', format('cannot remove or demote the last owner of organization %s', (select id from ten where key = 'org')),
  'the last owner cannot demote themselves'
);
select throws_ok(
  $$select public.remove_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000001')$$,
  '23514', format('cannot remove or demote the last owner of organization %s', (select id from ten where key = 'org')),
  'the last owner cannot leave'
);
select tests.as_postgres();

select throws_ok(
  format($$delete from public.organization_members where organization_id = %L and role = 'owner'$$,
    (select id from ten where key = 'org')),
  '23514', format('cannot remove or demote the last owner of organization %s', (select id from ten where key = 'org')),
  'the table owner cannot delete the last owner directly either (the rule is a trigger)'
);
select throws_ok(
  format($$update public.organization_members set role = 'member' where organization_id = %L$$,
    (select id from ten where key = 'org')),
  '23514', format('cannot remove or demote the last owner of organization %s', (select id from ten where key = 'org')),
  'demoting every member at once cannot remove the last owner'
);
select tests.as_role('service_role');
select throws_ok(
  format($$delete from public.organization_members where organization_id = %L and user_id = 'b2222222-0000-4000-8000-000000000001'$$,
    (select id from ten where key = 'org')),
  '23514', format('cannot remove or demote the last owner of organization %s', (select id from ten where key = 'org')),
  'service_role cannot delete the last owner directly'
);
select tests.as_postgres();

select tests.as_user('b2222222-0000-4000-8000-000000000001');
select lives_ok(
  $$select public.add_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000004', 'owner');
    select public.remove_organization_member((select id from ten where key = 'org'), 'b2222222-0000-4000-8000-000000000001')$$,
  'an owner can add a second owner and then leave'
);
select tests.as_postgres();

select results_eq(
  format($$select user_id from public.organization_members where organization_id = %L and role = 'owner'$$,
    (select id from ten where key = 'org')),
  $$values ('b2222222-0000-4000-8000-000000000004'::uuid)$$,
  'the second owner is now the only owner'
);

select lives_ok(
  format($$delete from public.organizations where id = %L$$, (select id from ten where key = 'org')),
  'deleting an organization (without billing history) removes it together with its owner membership'
);
select is_empty(
  format($$select 1 from public.organization_members where organization_id = %L$$, (select id from ten where key = 'org')),
  'the deleted organization''s memberships are gone'
);

-- -------------------------------------------------------------------------------------------------
-- Plan features validation
-- -------------------------------------------------------------------------------------------------

select lives_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features) values
    ('ten_valid', 'Valid', 'pro', 100,
     '{"ai_prompts_per_minute": 5, "ai_prompts_per_day": 500, "ai_tokens_per_month": null,
       "max_watchlists": 0, "api_access": true, "support_level": "priority", "premium_tools": ["a"]}')$$,
  'valid features are accepted: metered integers and null, max_ integers, flags and lists'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features)
    values ('ten_bad', 'Bad', 'pro', 100, '{"ai_prompts_per_day": -1}')$$,
  '22023', 'plan features key "ai_prompts_per_day": a metered limit must be a non-negative integer or null, got -1',
  'a negative metered limit is rejected, naming the key'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features)
    values ('ten_bad', 'Bad', 'pro', 100, '{"ai_prompts_per_minute": 2.5}')$$,
  '22023', 'plan features key "ai_prompts_per_minute": a metered limit must be a non-negative integer or null, got 2.5',
  'a non-integer metered limit is rejected, naming the key'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features)
    values ('ten_bad', 'Bad', 'pro', 100, '{"ai_prompts_per_hour": "10"}')$$,
  '22023', 'plan features key "ai_prompts_per_hour": a metered limit must be a non-negative integer or null, got "10"',
  'a metered limit given as a string is rejected, naming the key'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features)
    values ('ten_bad', 'Bad', 'pro', 100, '{"max_watchlists": "3"}')$$,
  '22023', 'plan features key "max_watchlists": a count limit must be a non-negative integer, got "3"',
  'a string max_ limit is rejected, naming the key'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features)
    values ('ten_bad', 'Bad', 'pro', 100, '{"max_watchlists": -1}')$$,
  '22023', 'plan features key "max_watchlists": a count limit must be a non-negative integer, got -1',
  'a negative max_ limit is rejected, naming the key'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features)
    values ('ten_bad', 'Bad', 'pro', 100, '{"max_watchlists": null}')$$,
  '22023', 'plan features key "max_watchlists": a count limit must be a non-negative integer, got null',
  'a null max_ limit is rejected (only metered limits may be unlimited)'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features)
    values ('ten_bad', 'Bad', 'pro', 100, '{"ai_prompts_per_week": 10}')$$,
  '22023', 'plan features key "ai_prompts_per_week": unknown window "week" (use minute, hour, day or month)',
  'an unknown window name is rejected, naming the key'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, features)
    values ('ten_bad', 'Bad', 'pro', 100, '["ai_prompts_per_day"]')$$,
  '22023', 'plan features must be a JSON object',
  'features that are not a JSON object are rejected'
);
select throws_ok(
  $$update public.billing_plans set features = features || '{"ai_prompts_per_day": -5}' where code = 'ten_valid'$$,
  '22023', 'plan features key "ai_prompts_per_day": a metered limit must be a non-negative integer or null, got -5',
  'features are validated on update too'
);

-- -------------------------------------------------------------------------------------------------
-- The free plan
-- -------------------------------------------------------------------------------------------------

update public.billing_plans set active = false where tier = 'free';
select lives_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents) values ('ten_free', 'Free', 'free', 0)$$,
  'an active free plan priced 0 is accepted'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents) values ('ten_free_2', 'Free 2', 'free', 0)$$,
  '23505', null,
  'a second active free plan is refused'
);
select lives_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, active) values ('ten_free_old', 'Old free', 'free', 0, false)$$,
  'an inactive free plan may exist beside the active one'
);
select throws_ok(
  $$insert into public.billing_plans (code, name, tier, price_cents, active) values ('ten_free_paid', 'Paid free', 'free', 100, false)$$,
  '23514', null,
  'a free plan must cost 0'
);

-- -------------------------------------------------------------------------------------------------
-- One live subscription per organization
-- -------------------------------------------------------------------------------------------------

insert into public.organizations (id, name) values ('cccccccc-0000-4000-8000-00000000000c', 'Subscriber');
insert into ten select 'plan', id from public.billing_plans where code = 'ten_valid';

select lives_ok(
  $$insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values ('cccccccc-0000-4000-8000-00000000000c', (select id from ten where key = 'plan'), 'active', '2026-01-01', '2026-02-01')$$,
  'an organization can have an active subscription'
);
select throws_ok(
  $$insert into public.subscriptions (organization_id, plan_id, status)
    values ('cccccccc-0000-4000-8000-00000000000c', (select id from ten where key = 'plan'), 'pending_payment')$$,
  '23505', null,
  'a second live subscription (pending_payment) is refused'
);
select throws_ok(
  $$insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, trial_end)
    values ('cccccccc-0000-4000-8000-00000000000c', (select id from ten where key = 'plan'), 'trialing', '2026-01-01', '2026-01-08', '2026-01-08')$$,
  '23505', null,
  'a second live subscription (trialing) is refused'
);
select lives_ok(
  $$insert into public.subscriptions (organization_id, plan_id, status)
    values ('cccccccc-0000-4000-8000-00000000000c', (select id from ten where key = 'plan'), 'canceled')$$,
  'ended subscriptions (canceled) may exist beside the live one'
);
select lives_ok(
  $$update public.subscriptions set status = 'expired'
      where organization_id = 'cccccccc-0000-4000-8000-00000000000c' and status = 'active';
    insert into public.subscriptions (organization_id, plan_id, status)
    values ('cccccccc-0000-4000-8000-00000000000c', (select id from ten where key = 'plan'), 'pending_payment')$$,
  'once the live subscription has ended, a new one can start'
);

-- -------------------------------------------------------------------------------------------------
-- Immutable audit logs
-- -------------------------------------------------------------------------------------------------

insert into public.subscription_history (organization_id, action, new_status)
values ('cccccccc-0000-4000-8000-00000000000c', 'activated', 'active');
insert into public.payment_events (organization_id, provider, provider_payment_id, amount_cents, currency, status)
values ('cccccccc-0000-4000-8000-00000000000c', 'razorpay', 'pay_ten_1', 100, 'INR', 'captured');

select throws_ok(
  $$update public.subscription_history set reason = 'rewritten'$$,
  '42501', 'public.subscription_history is an append-only audit log: UPDATE is not allowed',
  'the table owner (postgres) cannot update subscription_history'
);
select throws_ok(
  $$delete from public.subscription_history$$,
  '42501', 'public.subscription_history is an append-only audit log: DELETE is not allowed',
  'the table owner (postgres) cannot delete from subscription_history'
);
select throws_ok(
  $$truncate public.subscription_history$$,
  '42501', 'public.subscription_history is an append-only audit log: TRUNCATE is not allowed',
  'the table owner (postgres) cannot truncate subscription_history'
);
select throws_ok(
  $$update public.payment_events set amount_cents = 1$$,
  '42501', 'public.payment_events is an append-only audit log: UPDATE is not allowed',
  'the table owner (postgres) cannot update payment_events'
);
select throws_ok(
  $$delete from public.payment_events$$,
  '42501', 'public.payment_events is an append-only audit log: DELETE is not allowed',
  'the table owner (postgres) cannot delete from payment_events'
);
select throws_ok(
  $$truncate public.payment_events$$,
  '42501', 'public.payment_events is an append-only audit log: TRUNCATE is not allowed',
  'the table owner (postgres) cannot truncate payment_events'
);

select tests.as_role('service_role');
select throws_ok(
  $$update public.subscription_history set reason = 'rewritten'$$,
  '42501', 'public.subscription_history is an append-only audit log: UPDATE is not allowed',
  'service_role cannot update subscription_history'
);
select throws_ok(
  $$delete from public.subscription_history$$,
  '42501', 'public.subscription_history is an append-only audit log: DELETE is not allowed',
  'service_role cannot delete from subscription_history'
);
select throws_ok(
  $$update public.payment_events set status = 'refunded'$$,
  '42501', 'public.payment_events is an append-only audit log: UPDATE is not allowed',
  'service_role cannot update payment_events'
);
select throws_ok(
  $$delete from public.payment_events$$,
  '42501', 'public.payment_events is an append-only audit log: DELETE is not allowed',
  'service_role cannot delete from payment_events'
);
select lives_ok(
  $$insert into public.payment_events (organization_id, provider, provider_payment_id, amount_cents, currency, status)
    values ('cccccccc-0000-4000-8000-00000000000c', 'razorpay', 'pay_ten_1', 100, 'INR', 'refunded')$$,
  'service_role can append to payment_events'
);
select tests.as_postgres();

select is(
  (select count(*)::integer from public.payment_events where provider_payment_id = 'pay_ten_1'),
  2,
  'both payment events are still there, unchanged in number'
);

-- -------------------------------------------------------------------------------------------------
-- The test clock
-- -------------------------------------------------------------------------------------------------

select is(billing.now(), now(), 'billing.now() is now() when the transaction sets no clock');

set local billing.now = '2026-03-31 23:59:00+05:30';
select is(billing.now(), '2026-03-31 23:59:00+05:30'::timestamptz, 'billing.now() returns the pinned time when billing.now is set');
select is(
  (select (billing.now() at time zone 'Asia/Kolkata')::date),
  '2026-03-31'::date,
  'the pinned time is the last minute of 31 March in India'
);

set local billing.now = '';
select is(billing.now(), now(), 'billing.now() falls back to now() when the setting is emptied');

-- -------------------------------------------------------------------------------------------------
-- max_members: the plan in effect limits an organization's members
-- -------------------------------------------------------------------------------------------------

-- Back to the seed's free plan: one member, the owner who created the organization.
update public.billing_plans set features = features || '{"max_members": 1}' where tier = 'free';
select tests.as_user('b2222222-0000-4000-8000-000000000001');
select public.create_organization('Limited org');
select tests.as_postgres();
insert into ten select 'limited', o.id from public.organizations o where o.name = 'Limited org';
select is(
  (select count(*)::int from public.organization_members where organization_id = (select id from ten where key = 'limited')),
  1,
  'the creator of a free organization is its one member'
);
select tests.as_user('b2222222-0000-4000-8000-000000000001');
select throws_ok(
  format($$select public.add_organization_member(%L, 'b2222222-0000-4000-8000-000000000002')$$,
         (select id from ten where key = 'limited')),
  '23514', 'max_members limit reached: the plan allows 1 and the organization has 1',
  'the free plan refuses a second member, with a message naming the limit'
);
select throws_ok(
  format($$select public.add_organization_member(%L, 'b2222222-0000-4000-8000-000000000001')$$,
         (select id from ten where key = 'limited')),
  '23505', 'user b2222222-0000-4000-8000-000000000001 is already a member of the organization',
  'adding an existing member to a full organization says so, not that the limit is reached'
);
select tests.as_postgres();
select is(
  (select count(*)::int from public.organization_members where organization_id = (select id from ten where key = 'limited')),
  1,
  'the refused member was not added'
);
select lives_ok(
  format($$insert into public.organization_members (organization_id, user_id, role)
           values (%L, 'b2222222-0000-4000-8000-000000000001', 'owner') on conflict do nothing$$,
         (select id from ten where key = 'limited')),
  'an insert that ON CONFLICT skips is not counted (the seed can run again)'
);
select lives_ok(
  format($$update public.organization_members set organization_id = organization_id where organization_id = %L$$,
         (select id from ten where key = 'limited')),
  'an update that leaves members in their full organization passes'
);
-- A paid plan with three members: three fit, the fourth is refused.
insert into public.billing_plans (id, code, name, tier, price_cents, features)
values ('b2222222-0000-4000-8000-0000000000a3', 'ten_team', 'Team', 'basic', 49900, '{"max_members": 3}');
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
values ((select id from ten where key = 'limited'), 'b2222222-0000-4000-8000-0000000000a3', 'active',
        now() - interval '1 day', now() + interval '29 days');
select tests.as_user('b2222222-0000-4000-8000-000000000001');
select lives_ok(
  format($$select public.add_organization_member(%1$L, 'b2222222-0000-4000-8000-000000000002');
           select public.add_organization_member(%1$L, 'b2222222-0000-4000-8000-000000000003')$$,
         (select id from ten where key = 'limited')),
  'a plan with max_members 3 takes the second and third member'
);
select throws_ok(
  format($$select public.add_organization_member(%L, 'b2222222-0000-4000-8000-000000000004')$$,
         (select id from ten where key = 'limited')),
  '23514', 'max_members limit reached: the plan allows 3 and the organization has 3',
  'and refuses the fourth'
);
select tests.as_postgres();
-- The subscription ends: the free plan applies again, and the members already there stay.
update public.subscriptions set status = 'expired', ended_at = now()
where organization_id = (select id from ten where key = 'limited');
select is(
  (select count(*)::int from public.organization_members where organization_id = (select id from ten where key = 'limited')),
  3,
  'members stay when a plan with a lower limit takes effect'
);
select throws_ok(
  format($$insert into public.organization_members (organization_id, user_id, role)
           values (%L, 'b2222222-0000-4000-8000-000000000004', 'member')$$,
         (select id from ten where key = 'limited')),
  '23514', 'max_members limit reached: the plan allows 1 and the organization has 3',
  'but no one is added past the limit, not even by a direct insert as the table owner'
);

-- -------------------------------------------------------------------------------------------------
-- Function hygiene: every function in public and billing pins search_path and is not
-- executable by PUBLIC. One exception, on purpose: billing.effective_plan_rows, the rules of the
-- plan in effect, is an sql function with no SET clause so that the planner inlines it into its
-- callers (it never inlines a function with one); its comment says why that is safe.
-- -------------------------------------------------------------------------------------------------

select is_empty(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc p
    where p.pronamespace in ('public'::regnamespace, 'billing'::regnamespace)
      and not coalesce(p.proconfig @> array['search_path=""'], false)
      and p.oid <> 'billing.effective_plan_rows(uuid, timestamptz)'::regprocedure$$,
  'every function in public and billing sets search_path = '''''
);
select is_empty(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc p
    where p.pronamespace in ('public'::regnamespace, 'billing'::regnamespace)
      and (p.proacl is null or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0 and a.privilege_type = 'EXECUTE'))$$,
  'no function in public or billing is executable by PUBLIC'
);
select is_empty(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc p
    where p.pronamespace in ('public'::regnamespace, 'billing'::regnamespace)
      and p.prolang = (select l.oid from pg_catalog.pg_language l where l.lanname = 'sql')
      and p.oid <> 'billing.effective_plan_rows(uuid, timestamptz)'::regprocedure$$,
  'no function in public or billing is sql-language (with SET search_path it would be planned on every call)'
);
select is(
  (select provolatile::text from pg_catalog.pg_proc where oid = 'billing.now()'::regprocedure),
  's',
  'billing.now() is stable'
);

select * from finish();
rollback;
