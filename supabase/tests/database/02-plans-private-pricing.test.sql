-- Private enterprise pricing (public.plan_assignments, public.price_overrides,
-- billing.plan_price_for, billing.require_plan_available, billing.operator_assign_plan,
-- operator_unassign_plan, operator_set_price_override, operator_end_price_override), under the
-- pinned test clock: a private plan is invisible to anon and to other organizations and visible
-- to the one it is assigned to; checkout, start_trial, change_plan and its preview of it are
-- refused for an organization it is not assigned to as an unknown plan is (P0002, HINT plan_not_found) with nothing
-- written; an override prices the order (GST on it) and its invoice, from valid_from to a second
-- before valid_until; a renewal by checkout inside the period is at the override price, one at
-- valid_until at the list price; proration reads the overridden prices of both plans; an order
-- keeps the price it was created at; a Razorpay recurring plan is sold as one-time orders while an
-- override holds, and an override is refused over a live Razorpay mandate; the operators'
-- functions need a reason and write the history (their words in billing.operator_notes).
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select tests.relax_member_limit();
select plan(58);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into auth.users (id, email) values
  ('a2500000-0000-4000-8000-000000000001', 'ent-owner-a@test.local'),
  ('a2500000-0000-4000-8000-000000000002', 'ent-owner-b@test.local'),
  ('a2500000-0000-4000-8000-000000000003', 'ent-member-a@test.local');

-- A: the enterprise customer (Karnataka, like the seller: CGST + SGST); B: another organization;
-- C: on a Razorpay mandate; D: buys a Razorpay recurring plan at an override; E: upgrades.
insert into public.organizations (id, name, billing_email, state_code) values
  ('c2500000-0000-4000-8000-0000000000a1', 'Ent A', 'a@ent.test', '29'),
  ('c2500000-0000-4000-8000-0000000000b1', 'Ent B', 'b@ent.test', '29'),
  ('c2500000-0000-4000-8000-0000000000c1', 'Ent C', 'c@ent.test', '29'),
  ('c2500000-0000-4000-8000-0000000000d1', 'Ent D', 'd@ent.test', '29'),
  ('c2500000-0000-4000-8000-0000000000e1', 'Ent E', 'e@ent.test', '29');
insert into public.organization_members (organization_id, user_id, role) values
  ('c2500000-0000-4000-8000-0000000000a1', 'a2500000-0000-4000-8000-000000000001', 'owner'),
  ('c2500000-0000-4000-8000-0000000000a1', 'a2500000-0000-4000-8000-000000000003', 'member'),
  ('c2500000-0000-4000-8000-0000000000b1', 'a2500000-0000-4000-8000-000000000002', 'owner'),
  ('c2500000-0000-4000-8000-0000000000c1', 'a2500000-0000-4000-8000-000000000001', 'owner'),
  ('c2500000-0000-4000-8000-0000000000d1', 'a2500000-0000-4000-8000-000000000001', 'owner'),
  ('c2500000-0000-4000-8000-0000000000e1', 'a2500000-0000-4000-8000-000000000001', 'owner');

insert into public.billing_plans (id, code, name, tier, interval, price_cents, trial_days, private, provider_config) values
  ('b2500000-0000-4000-8000-000000000001', 'ent_private', 'Ent Private', 'enterprise', 'month', 500000, 14, true, '{}'),
  ('b2500000-0000-4000-8000-000000000002', 'pp_basic', 'PP Basic', 'basic', 'month', 49900, 7, false, '{}'),
  ('b2500000-0000-4000-8000-000000000003', 'pp_pro', 'PP Pro', 'pro', 'month', 99900, 0, false,
   '{"razorpay": {"plan_id": "plan_pp_pro"}}');

-- The seller (Karnataka), 18 % GST on top of the price.
update public.billing_settings
set seller_legal_name = 'Ent Test Seller Pvt Ltd', seller_gstin = null, seller_state_code = '29',
    gst_rate_bp = 1800, prices_include_tax = false;

create function pg_temp.ev(p_event_id text, p_ref text, p_payment_id text, p_amount bigint) returns jsonb
language sql as $$
  select jsonb_build_object(
    'provider', 'payu', 'event_id', p_event_id, 'event_type', 'payment.success', 'order_ref', p_ref,
    'provider_order_id', null, 'provider_payment_id', p_payment_id, 'provider_subscription_id', null,
    'provider_refund_id', null, 'amount_paise', p_amount, 'currency', 'INR', 'status', null,
    'method', 'upi', 'occurred_at', null, 'payload', '{}'::jsonb) $$;
create function pg_temp.apply(p_event jsonb) returns jsonb language plpgsql as $$
declare
  v_result jsonb;
begin
  perform tests.as_role('service_role');
  v_result := billing.apply_payment_event(tests.adapted(p_event));
  perform tests.as_postgres();
  return v_result;
end;
$$;
create function pg_temp.buy(p_user uuid, p_org uuid, p_plan text, p_provider text) returns billing.checkout_order
language plpgsql as $$
declare
  v_row billing.checkout_order;
begin
  perform tests.as_user(p_user);
  select * into v_row from public.create_checkout_order(p_org, p_plan, p_provider);
  perform tests.as_postgres();
  return v_row;
end;
$$;
-- What a statement run as p_user is refused with: 'SQLSTATE HINT: message'.
create function pg_temp.refusal(p_user uuid, p_sql text) returns text language plpgsql as $$
declare
  v_hint text;
begin
  perform tests.as_user(p_user);
  begin
    execute p_sql;
  exception when others then
    get stacked diagnostics v_hint = pg_exception_hint;
    perform tests.as_postgres();
    return sqlstate || ' ' || coalesce(nullif(v_hint, ''), '-') || ': ' || sqlerrm;
  end;
  perform tests.as_postgres();
  return 'no error';
end;
$$;
create function pg_temp.visible(p_role text, p_user uuid, p_code text) returns bigint language plpgsql as $$
declare
  v_n bigint;
begin
  if p_user is null then
    perform tests.as_role(p_role);
  else
    perform tests.as_user(p_user);
  end if;
  select count(*) into v_n from public.billing_plans where code = p_code;
  perform tests.as_postgres();
  return v_n;
end;
$$;
create function pg_temp.order_of(p_receipt text) returns public.orders language sql as $$
  select * from public.orders where receipt = p_receipt $$;
create function pg_temp.price(p_org uuid, p_code text, p_at timestamptz) returns bigint language sql as $$
  select billing.plan_price_for(p_org, p, p_at) from public.billing_plans p where p.code = p_code $$;

-- Operators say why ---------------------------------------------------------------------------------

select throws_ok($$select billing.operator_assign_plan('c2500000-0000-4000-8000-0000000000a1', 'ent_private', ' ')$$,
  '22023', 'an operator action needs a reason of 3 to 500 characters', 'assigning a plan needs a reason');
select throws_ok($$select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 39900,
    '2026-12-10 12:00:00+05:30', '2027-01-10 12:00:00+05:30', 'ACME-1', null)$$,
  '22023', 'an operator action needs a reason of 3 to 500 characters', 'setting a price override needs a reason');
select throws_ok($$select billing.operator_unassign_plan('c2500000-0000-4000-8000-0000000000a1', 'ent_private', '')$$,
  '22023', null, 'ending an assignment needs a reason');
select throws_ok($$select billing.operator_end_price_override(gen_random_uuid(), 'x')$$,
  '22023', null, 'ending a price override needs a reason');
select tests.as_user('a2500000-0000-4000-8000-000000000001');
select throws_ok($$select billing.operator_assign_plan('c2500000-0000-4000-8000-0000000000a1', 'ent_private', 'I want it')$$,
  '42501', null, 'a signed-in owner cannot assign a plan to their organization');
select tests.as_postgres();

-- A private plan: seen and bought only where it is assigned -------------------------------------

select is(array[pg_temp.visible('anon', null, 'ent_private'),
                pg_temp.visible('authenticated', 'a2500000-0000-4000-8000-000000000001', 'ent_private'),
                pg_temp.visible('anon', null, 'pp_basic')],
          array[0, 0, 1]::bigint[], 'before any assignment nobody reads the private plan; anon reads a public one');
select isnt(billing.operator_assign_plan('c2500000-0000-4000-8000-0000000000a1', 'ent_private', 'enterprise deal, ticket 25', 'ACME-MSA'),
            null, 'an operator assigns the private plan to organization A');
select is(billing.operator_assign_plan('c2500000-0000-4000-8000-0000000000a1', 'ent_private', 'again, by mistake'),
          (select id from public.plan_assignments where organization_id = 'c2500000-0000-4000-8000-0000000000a1' and ended_at is null),
          'assigning it again returns the live assignment');
select is(array[pg_temp.visible('anon', null, 'ent_private'),
                pg_temp.visible('authenticated', 'a2500000-0000-4000-8000-000000000002', 'ent_private'),
                pg_temp.visible('authenticated', 'a2500000-0000-4000-8000-000000000001', 'ent_private'),
                pg_temp.visible('authenticated', 'a2500000-0000-4000-8000-000000000003', 'ent_private')],
          array[0, 0, 1, 1]::bigint[],
          'anon and the owner of B do not read the private plan; the owner and a member of A do');
select tests.as_user('a2500000-0000-4000-8000-000000000003');
select is((select contract_ref from public.plan_assignments), 'ACME-MSA', 'a member of A reads A''s assignment');
select tests.as_user('a2500000-0000-4000-8000-000000000002');
select is((select count(*) from public.plan_assignments), 0::bigint, 'the owner of B reads no assignment');
select tests.as_postgres();

select is(pg_temp.refusal('a2500000-0000-4000-8000-000000000002',
            $$select * from public.create_checkout_order('c2500000-0000-4000-8000-0000000000b1', 'ent_private', 'payu')$$),
          'P0002 plan_not_found: no active plan "ent_private"',
          'checkout of the private plan for B is refused as an unknown plan: plan_not_found');
select is(pg_temp.refusal('a2500000-0000-4000-8000-000000000002',
            $$select public.start_trial('c2500000-0000-4000-8000-0000000000b1', 'ent_private')$$),
          'P0002 plan_not_found: no active plan "ent_private"',
          '... and so is a trial of it');
select is(pg_temp.refusal('a2500000-0000-4000-8000-000000000002',
            $$select public.preview_plan_change('c2500000-0000-4000-8000-0000000000b1', 'ent_private')$$),
          'P0002 plan_not_found: no active plan "ent_private"',
          '... and a preview of a change to it');
select is(pg_temp.refusal('a2500000-0000-4000-8000-000000000002',
            $$select public.change_plan('c2500000-0000-4000-8000-0000000000b1', 'ent_private')$$),
          'P0002 plan_not_found: no active plan "ent_private"',
          '... and a change to it');
select is((select array[(select count(*) from public.orders where organization_id = 'c2500000-0000-4000-8000-0000000000b1'),
                        (select count(*) from public.subscriptions where organization_id = 'c2500000-0000-4000-8000-0000000000b1'),
                        (select count(*) from public.subscription_history where organization_id = 'c2500000-0000-4000-8000-0000000000b1')]),
          array[0, 0, 0]::bigint[], 'the refusals wrote nothing for B');
select * from pg_temp.buy('a2500000-0000-4000-8000-000000000001', 'c2500000-0000-4000-8000-0000000000a1', 'ent_private', 'payu') \gset priv_
select is(array[:'priv_plan_code', :'priv_amount_cents'], array['ent_private', '590000'],
          'A checks out the private plan assigned to it, at its list price plus GST');

-- The history: members read who did what; the operator's words stay private.
select is((select array[action, actor_kind::text, reason, new_plan_id::text, metadata ->> 'contract_ref', coalesce(subscription_id::text, '-')]
           from public.subscription_history where organization_id = 'c2500000-0000-4000-8000-0000000000a1' and action = 'plan_assigned'),
          array['plan_assigned', 'operator', 'by an operator', 'b2500000-0000-4000-8000-000000000001', 'ACME-MSA', '-'],
          'the assignment is in A''s history: actor operator, reason "by an operator", no subscription row');
select is((select n.reason from billing.operator_notes n join public.subscription_history h on h.id = n.history_id
           where h.organization_id = 'c2500000-0000-4000-8000-0000000000a1' and h.action = 'plan_assigned'),
          'enterprise deal, ticket 25', 'the operator''s reason is in billing.operator_notes');
select is((select count(*) from public.subscription_history
           where organization_id = 'c2500000-0000-4000-8000-0000000000a1' and action = 'plan_assigned'), 1::bigint,
          'assigning it again wrote no second history row');

-- Price overrides: validation ---------------------------------------------------------------------

select throws_ok($$select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 0,
    '2026-12-10 12:00:00+05:30', null, 'ACME-1', 'contract')$$,
  '22023', null, 'an override of 0 paise is refused');
select throws_ok($$select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 39900,
    '2026-12-10 12:00:00+05:30', '2026-12-10 12:00:00+05:30', 'ACME-1', 'contract')$$,
  '22023', null, 'an override must end after it starts');
select throws_ok($$select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 39900,
    '2026-11-01 00:00:00+05:30', '2026-12-01 00:00:00+05:30', 'ACME-1', 'contract')$$,
  '22023', null, 'an override already over is refused');
select throws_ok($$select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 39900,
    '2026-12-10 12:00:00+05:30', null, ' ', 'contract')$$,
  '22023', null, 'an override needs a contract reference');
select throws_ok($$select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000a1', 'pp_nope', 39900,
    '2026-12-10 12:00:00+05:30', null, 'ACME-1', 'contract')$$,
  'P0002', 'no plan "pp_nope"', 'an unknown plan is refused');

-- A's override of PP Basic: 399 rupees a month for a month ---------------------------------------

select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 39900,
  '2026-12-10 12:00:00+05:30', '2027-01-10 12:00:00+05:30', 'ACME-2026-01', 'signed order form, ticket 26') as ovr_a \gset
select throws_ok($$select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 29900,
    '2027-01-01 00:00:00+05:30', null, 'ACME-2', 'a second one')$$,
  '55000', null, 'an override overlapping a live one of the same plan is refused');
select is(array[pg_temp.price('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', '2026-12-10 11:59:59+05:30'),
                pg_temp.price('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', '2026-12-10 12:00:00+05:30'),
                pg_temp.price('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', '2027-01-10 11:59:59+05:30'),
                pg_temp.price('c2500000-0000-4000-8000-0000000000a1', 'pp_basic', '2027-01-10 12:00:00+05:30'),
                pg_temp.price('c2500000-0000-4000-8000-0000000000b1', 'pp_basic', '2026-12-20 12:00:00+05:30'),
                pg_temp.price('c2500000-0000-4000-8000-0000000000a1', 'pp_pro', '2026-12-20 12:00:00+05:30')],
          array[49900, 39900, 39900, 49900, 49900, 99900]::bigint[],
          'plan_price_for: the list price a second before valid_from, the override from it to a second before valid_until, the list price at it; other organizations and plans at list');
select tests.as_user('a2500000-0000-4000-8000-000000000003');
select is((select array[price_paise::text, contract_ref] from public.price_overrides), array['39900', 'ACME-2026-01'],
          'a member of A reads A''s override: the price and the contract');
select tests.as_user('a2500000-0000-4000-8000-000000000002');
select is((select count(*) from public.price_overrides), 0::bigint, 'the owner of B reads no override');
select tests.as_postgres();
select is((select array[h.action, h.reason, h.metadata ->> 'price_paise', h.metadata ->> 'list_price_paise', h.metadata ->> 'contract_ref', n.reason]
           from public.subscription_history h join billing.operator_notes n on n.history_id = h.id
           where h.organization_id = 'c2500000-0000-4000-8000-0000000000a1' and h.action = 'price_override_set'),
          array['price_override_set', 'by an operator', '39900', '49900', 'ACME-2026-01', 'signed order form, ticket 26'],
          'the override is in A''s history with its terms; the reason in operator_notes');

-- The checkout, its GST and its invoice at the override price.
select * from pg_temp.buy('a2500000-0000-4000-8000-000000000001', 'c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 'payu') \gset a1_
select is((select array[amount_cents::text, taxable_cents::text, supply_type::text, metadata ->> 'contract_ref',
                        metadata ->> 'price_override_id', metadata ->> 'list_price_paise']
           from pg_temp.order_of(:'a1_receipt')),
          array['47082', '39900', 'intra_state', 'ACME-2026-01', :'ovr_a', '49900'],
          'the order is priced at the override: taxable 39900, 18 % GST on it, 47082 to pay; the override named');
select is((pg_temp.order_of(:'priv_receipt')).status::text, 'canceled', 'the new checkout superseded the private plan''s open order');
select is(pg_temp.apply(pg_temp.ev('ent-a1', :'a1_receipt', 'mihpay_ent_a1', 47082)) ->> 'result', 'applied',
          'its payment of 47082 is applied');
select is((select array[l.description, l.taxable_cents::text, l.cgst_cents::text, l.sgst_cents::text, l.igst_cents::text, l.total_cents::text]
           from public.invoice_lines l join public.invoices i on i.id = l.invoice_id where i.order_id = :'a1_order_id'::uuid),
          array['PP Basic - subscription (contract price, ACME-2026-01)', '39900', '3591', '3591', '0', '47082'],
          'the invoice line shows the contract price, CGST and SGST on it, the total charged');
select is((select array[status::text, current_period_end::text] from public.subscriptions
           where organization_id = 'c2500000-0000-4000-8000-0000000000a1'),
          array['active', '2027-01-10 06:30:00+00'], 'A is on PP Basic for a month');

-- Proration on A's overridden period: the preview credits the price A paid, not the list price.
set local billing.now = '2026-12-25 12:00:00+05:30';
select tests.as_user('a2500000-0000-4000-8000-000000000001');
select is((select array[q ->> 'from_price_cents', q ->> 'to_price_cents', q ->> 'seconds_left', q ->> 'period_seconds',
                        q ->> 'unused_cents', q ->> 'amount_cents']
           from public.preview_plan_change('c2500000-0000-4000-8000-0000000000a1', 'pp_pro') q),
          array['39900', '99900', '1382400', '2678400', '20594', '79306'],
          'an upgrade from the overridden plan credits round(39900 x 16/31 days) = 20594: 79306 to pay');
select tests.as_postgres();

-- A renewal by checkout inside the override's period is at the override price ...
set local billing.now = '2027-01-09 12:00:00+05:30';
select * from pg_temp.buy('a2500000-0000-4000-8000-000000000001', 'c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 'payu') \gset a2_
select is(array[:'a2_amount_cents', (pg_temp.order_of(:'a2_receipt')).taxable_cents::text], array['47082', '39900'],
          'a renewal checkout a day before the override ends is at the override price');
select is(pg_temp.apply(pg_temp.ev('ent-a2', :'a2_receipt', 'mihpay_ent_a2', 47082)) ->> 'result', 'applied',
          'the renewal''s payment is applied');
select is((select current_period_end::text from public.subscriptions where organization_id = 'c2500000-0000-4000-8000-0000000000a1'),
          '2027-02-10 06:30:00+00', '... and extends the period by a month');
select is((select l.taxable_cents from public.invoice_lines l join public.invoices i on i.id = l.invoice_id
           where i.order_id = :'a2_order_id'::uuid), 39900::bigint, 'the renewal''s invoice is at the override price');
-- ... and one at valid_until at the list price.
set local billing.now = '2027-01-10 12:00:00+05:30';
select * from pg_temp.buy('a2500000-0000-4000-8000-000000000001', 'c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 'payu') \gset a3_
select is(array[:'a3_amount_cents', coalesce((pg_temp.order_of(:'a3_receipt')).metadata ->> 'contract_ref', '-')],
          array['58882', '-'], 'a renewal checkout at valid_until is at the list price (49900 + GST), no contract');
set local billing.now = '2027-01-10 11:59:59+05:30';
select * from pg_temp.buy('a2500000-0000-4000-8000-000000000001', 'c2500000-0000-4000-8000-0000000000a1', 'pp_basic', 'payu') \gset a4_
select is(:'a4_amount_cents'::bigint, 47082::bigint, '... and one a second before it at the override price');

-- Ending an assignment: the plan disappears for A and cannot be bought again.
set local billing.now = '2027-01-11 12:00:00+05:30';
select is(billing.operator_unassign_plan('c2500000-0000-4000-8000-0000000000a1', 'ent_private', 'contract not renewed'), true,
          'an operator ends A''s assignment');
select is(billing.operator_unassign_plan('c2500000-0000-4000-8000-0000000000a1', 'ent_private', 'contract not renewed'), false,
          'ending it again changes nothing');
select is(pg_temp.visible('authenticated', 'a2500000-0000-4000-8000-000000000001', 'ent_private'), 0::bigint,
          'the owner of A no longer reads the private plan');
select is(pg_temp.refusal('a2500000-0000-4000-8000-000000000001',
            $$select * from public.create_checkout_order('c2500000-0000-4000-8000-0000000000a1', 'ent_private', 'payu')$$),
          'P0002 plan_not_found: no active plan "ent_private"',
          '... nor buys it');
select is((select array_agg(action order by created_at) from public.subscription_history
           where organization_id = 'c2500000-0000-4000-8000-0000000000a1' and actor_kind = 'operator'),
          array['plan_assigned', 'price_override_set', 'plan_unassigned'],
          'A''s history has each operator pricing change once');

-- Razorpay: an override is refused over a live mandate; a recurring plan sells one-time orders ---

set local billing.now = '2026-12-10 12:00:00+05:30';
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id)
values ('c2500000-0000-4000-8000-0000000000c1', 'b2500000-0000-4000-8000-000000000003', 'active',
        '2026-12-01 00:00:00+05:30', '2027-01-01 00:00:00+05:30', 'razorpay', 'sub_ent_c');
select throws_like($$select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000c1', 'pp_pro', 79900,
    '2026-12-10 12:00:00+05:30', null, 'C-1', 'contract')$$,
  '%renews by Razorpay subscription sub_ent_c%', 'an override is refused while a Razorpay mandate renews the plan at its own amount');
select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000d1', 'pp_pro', 79900,
  '2026-12-10 12:00:00+05:30', null, 'D-1', 'contract D') as ovr_d \gset
select * from pg_temp.buy('a2500000-0000-4000-8000-000000000001', 'c2500000-0000-4000-8000-0000000000d1', 'pp_pro', 'razorpay') \gset d1_
select is(array[:'d1_amount_cents', (pg_temp.order_of(:'d1_receipt')).metadata ->> 'recurring',
                (pg_temp.order_of(:'d1_receipt')).metadata ->> 'contract_ref'],
          array['94282', 'false', 'D-1'],
          'a Razorpay checkout of a recurring plan at an override is a one-time order at the override price (79900 + GST), no mandate');
select lives_ok(format($$select billing.operator_end_price_override(%L, 'contract cancelled')$$, :'ovr_d'),
                'an operator ends D''s override');
select is(array[(pg_temp.order_of(:'d1_receipt')).amount_cents::text, (pg_temp.order_of(:'d1_receipt')).status::text,
                pg_temp.price('c2500000-0000-4000-8000-0000000000d1', 'pp_pro', '2026-12-10 12:00:00+05:30')::text],
          array['94282', 'created', '99900'],
          'the order keeps the price it was created at; new prices are the list price again');
select throws_ok(format($$select billing.operator_end_price_override(%L, 'again')$$, :'ovr_d'),
  '55000', null, 'an override already ended cannot be ended again');
select is((select array_agg(h.action || ':' || n.reason order by h.created_at)
           from public.subscription_history h join billing.operator_notes n on n.history_id = h.id
           where h.organization_id = 'c2500000-0000-4000-8000-0000000000d1'),
          array['price_override_set:contract D', 'price_override_ended:contract cancelled'],
          'setting and ending the override are in D''s history with the operator''s words');
select * from pg_temp.buy('a2500000-0000-4000-8000-000000000001', 'c2500000-0000-4000-8000-0000000000d1', 'pp_pro', 'razorpay') \gset d2_
select is(array[:'d2_razorpay_plan_id', :'d2_amount_cents']::text[], array['plan_pp_pro', '99900'],
          'once the override ended, the plan is sold as a Razorpay subscription again (GST inside the plan''s amount)');

-- An upgrade priced with an override on the new plan ---------------------------------------------

insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end, provider)
values ('c2500000-0000-4000-8000-0000000000e1', 'b2500000-0000-4000-8000-000000000002', 'active',
        '2026-12-01 00:00:00+05:30', '2027-01-01 00:00:00+05:30', 'payu');
select billing.operator_set_price_override('c2500000-0000-4000-8000-0000000000e1', 'pp_pro', 79900,
  '2026-12-01 00:00:00+05:30', '2027-12-01 00:00:00+05:30', 'E-1', 'annual contract') as ovr_e \gset
select tests.as_user('a2500000-0000-4000-8000-000000000001');
select public.change_plan('c2500000-0000-4000-8000-0000000000e1', 'pp_pro') as e_change \gset
select tests.as_postgres();
select is((select array[q ->> 'method', q ->> 'to_price_cents', q ->> 'from_price_cents', q ->> 'unused_cents',
                        q ->> 'amount_cents', q #>> '{lines,0,amount_cents}', q ->> 'to_contract_ref']
           from (select :'e_change'::jsonb as q) x),
          array['prorated_order', '79900', '49900', '34608', '45292', '79900', 'E-1'],
          'the upgrade charges the override of the new plan less the unused list price of the old: 79900 - 34608');
select is((select array[taxable_cents::text, amount_cents::text] from public.orders where id = (:'e_change'::jsonb ->> 'order_id')::uuid),
          array['45292', '53444'], 'the upgrade order: taxable 45292, GST on it');
select tests.as_user('a2500000-0000-4000-8000-000000000001');
select receipt as e_receipt from public.prepare_order_checkout('c2500000-0000-4000-8000-0000000000e1',
  (:'e_change'::jsonb ->> 'order_id')::uuid, 'payu') \gset
select tests.as_postgres();
select is(pg_temp.apply(pg_temp.ev('ent-e1', :'e_receipt', 'mihpay_ent_e1', 53444)) ->> 'result', 'applied',
          'the upgrade''s payment is applied');
select is((select l.description from public.invoice_lines l join public.invoices i on i.id = l.invoice_id
           where i.order_id = (:'e_change'::jsonb ->> 'order_id')::uuid),
          'PP Pro - plan upgrade (prorated) (contract price, E-1)', 'the upgrade''s invoice names the contract');

select * from finish();
rollback;
