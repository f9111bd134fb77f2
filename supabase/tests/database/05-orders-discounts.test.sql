-- Discount codes (billing.create_discount_code, deactivate_discount_code, checkout_discount,
-- reserve_discount, preview_checkout, create_checkout_order and change_plan with a code), under
-- the pinned test clock: every key of a spec is checked and named; percentage and fixed
-- discounts on monthly and yearly plans rounded to the paisa, taxed on the discounted value
-- within the seller's state, in another state and for an export, with the invoice line showing
-- the list price, the discount and the taxable value; a fixed discount above the price makes a
-- free order completed at once with its zero invoice; a repeating code for 3 periods then the
-- full price; a forever code; expiry at the boundary; plan scoping; first purchase only; the
-- per-organization limit; the last redemption, released when its order is superseded; the order
-- keeps the terms of its creation; a Razorpay subscription plan refuses codes; proration after
-- a discounted period credits the price paid; every refusal writes no order; members read their
-- redemptions and never the codes.
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select tests.relax_member_limit();
select plan(74);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into auth.users (id, email) values
  ('a2510000-0000-4000-8000-000000000001', 'disc-owner@test.local'),
  ('a2510000-0000-4000-8000-000000000002', 'disc-member@test.local'),
  ('a2510000-0000-4000-8000-000000000003', 'disc-stranger@test.local');

insert into public.organizations (id, name, state_code, billing_country, exports_verified) values
  ('c2510000-0000-4000-8000-0000000000a1', 'Disc intra', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000a2', 'Disc inter', '27', 'IN', false),
  ('c2510000-0000-4000-8000-0000000000a3', 'Disc export', null, 'US', true),
  ('c2510000-0000-4000-8000-0000000000a4', 'Disc yearly fixed', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000a5', 'Disc free', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000a6', 'Disc repeating', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000a7', 'Disc forever', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000a8', 'Disc fresh', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000a9', 'Disc last one', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000aa', 'Disc last two', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000ab', 'Disc proration', null, 'IN', false),
  ('c2510000-0000-4000-8000-0000000000ac', 'Disc kept terms', null, 'IN', false);
insert into public.organization_members (organization_id, user_id, role)
select o.id, 'a2510000-0000-4000-8000-000000000001', 'owner'
from public.organizations o where o.id::text like 'c2510000-%';
insert into public.organization_members (organization_id, user_id, role) values
  ('c2510000-0000-4000-8000-0000000000a1', 'a2510000-0000-4000-8000-000000000002', 'member');

insert into public.billing_plans (id, code, name, tier, interval, price_cents, provider_config) values
  ('b2510000-0000-4000-8000-000000000001', 'd_basic_m', 'D Basic', 'basic', 'month', 49900, '{}'),
  ('b2510000-0000-4000-8000-000000000002', 'd_basic_y', 'D Basic yearly', 'basic', 'year', 499000, '{}'),
  ('b2510000-0000-4000-8000-000000000003', 'd_pro_m', 'D Pro', 'pro', 'month', 99900, '{}'),
  ('b2510000-0000-4000-8000-000000000004', 'd_rzp_m', 'D Autopay', 'basic', 'month', 49900,
   '{"razorpay": {"plan_id": "plan_disc_test"}}');

-- The seller in Karnataka, 18 % GST on top of the price.
update public.billing_settings
set seller_legal_name = 'Discount Test Seller Pvt Ltd', seller_gstin = null, seller_state_code = '29',
    gst_rate_bp = 1800, prices_include_tax = false;
-- The seller's LUT for 2026-27: the export here is zero-rated under it.
delete from billing.lut_registrations;
select billing.operator_record_lut('2026-27', 'AA2903260012345', '2026-03-20', 'LUT for the discount tests');

create function pg_temp.checkout(p_org uuid, p_plan text, p_code text, p_provider text default 'payu')
returns billing.checkout_order language plpgsql as $$
declare
  v_row billing.checkout_order;
begin
  perform tests.as_user('a2510000-0000-4000-8000-000000000001');
  select * into v_row from public.create_checkout_order(p_org, p_plan, p_provider, p_code);
  perform tests.as_postgres();
  return v_row;
end;
$$;
-- The refusal's HINT (the checkout error code), or 'ok'.
create function pg_temp.refusal(p_org uuid, p_plan text, p_code text, p_provider text default 'payu')
returns text language plpgsql as $$
declare
  v_hint text;
begin
  perform pg_temp.checkout(p_org, p_plan, p_code, p_provider);
  return 'ok';
exception when others then
  get stacked diagnostics v_hint = pg_exception_hint;
  perform tests.as_postgres();
  return coalesce(nullif(v_hint, ''), sqlerrm);
end;
$$;
create function pg_temp.preview(p_org uuid, p_plan text, p_code text) returns jsonb language plpgsql as $$
declare
  v jsonb;
begin
  perform tests.as_user('a2510000-0000-4000-8000-000000000001');
  v := public.preview_checkout(p_org, p_plan, p_code);
  perform tests.as_postgres();
  return v;
end;
$$;
create function pg_temp.pay(p_receipt text) returns jsonb language plpgsql as $$
declare
  v_order public.orders;
  v_result jsonb;
begin
  select * into v_order from public.orders where receipt = p_receipt;
  perform tests.as_role('service_role');
  v_result := billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'payu', 'event_id', p_receipt || ':success', 'event_type', 'payment.success', 'order_ref', p_receipt,
    'provider_order_id', null, 'provider_payment_id', 'pay_' || p_receipt, 'provider_subscription_id', null,
    'provider_refund_id', null, 'amount_paise', v_order.amount_cents, 'currency', 'INR', 'status', null,
    'method', 'upi', 'occurred_at', null, 'payload', '{}'::jsonb)));
  perform tests.as_postgres();
  return v_result;
end;
$$;
create function pg_temp.line_of(p_receipt text) returns public.invoice_lines language sql as $$
  select l.* from public.invoice_lines l join public.invoices i on i.id = l.invoice_id
  join public.orders o on o.id = i.order_id where o.receipt = p_receipt $$;
create function pg_temp.orders_of(p_org uuid) returns bigint language sql as $$
  select count(*) from public.orders where organization_id = p_org $$;
create function pg_temp.spec_error(p_code text, p_spec jsonb) returns text language plpgsql as $$
begin
  perform billing.create_discount_code(p_code, p_spec);
  return 'created';
exception when others then
  return sqlerrm;
end;
$$;

-- Creating codes: every key checked, the bad one named ----------------------------------------

select alike(pg_temp.spec_error('BAD1', '{"percent_bps": 1000, "percnt": 1}'), 'percnt: unknown key%', 'an unknown key is named');
select alike(pg_temp.spec_error('BAD2', '{"percent_bps": 1000, "amount_paise": 100}'), 'percent_bps or amount_paise%', 'a percentage and an amount together are refused');
select alike(pg_temp.spec_error('BAD3', '{"percent_bps": 0}'), 'percent_bps:%', 'a percentage of 0 is refused');
select alike(pg_temp.spec_error('BAD4', '{"percent_bps": 10.5}'), 'percent_bps:%', 'a fractional basis point is refused');
select alike(pg_temp.spec_error('BAD5', '{"amount_paise": -5}'), 'amount_paise:%', 'a negative amount is refused');
select alike(pg_temp.spec_error('BAD6', '{"percent_bps": 100, "duration": "repeating"}'), 'periods:%', 'repeating needs periods');
select alike(pg_temp.spec_error('BAD7', '{"percent_bps": 100, "duration": "weekly"}'), 'duration:%', 'an unknown duration is refused');
select alike(pg_temp.spec_error('BAD8', '{"percent_bps": 100, "plans": ["no_such_plan"]}'), 'plans: no plan "no_such_plan"', 'an unknown plan is named');
select alike(pg_temp.spec_error('BAD9', '{"percent_bps": 100, "valid_from": "2027-01-01", "valid_until": "2026-01-01"}'), 'valid_until:%', 'an end before the start is refused');
select alike(pg_temp.spec_error('BADA', '{"percent_bps": 100, "valid_until": "tomorrow-ish"}'), 'valid_until:%', 'a bad timestamp is named');
select alike(pg_temp.spec_error('BADB', '{"percent_bps": 100, "max_redemptions": 0}'), 'max_redemptions:%', 'a limit of 0 is refused');
select alike(pg_temp.spec_error('BADC', '{"percent_bps": 100, "first_purchase_only": "yes"}'), 'first_purchase_only:%', 'a non-boolean flag is refused');
select alike(pg_temp.spec_error('no', '{"percent_bps": 100}'), 'code:%', 'a too short code is refused');

select lives_ok($$select billing.create_discount_code('FEST1234', '{"percent_bps": 1234}')$$, 'a percentage code');
select throws_ok($$select billing.create_discount_code('fest1234', '{"percent_bps": 10}')$$, '23505', null,
  'codes are unique whatever their case');
\o /dev/null
select billing.create_discount_code('FLAT100', '{"amount_paise": 10000, "max_per_organization": null}');
\o
\o /dev/null
select billing.create_discount_code('BIGFREE', '{"amount_paise": 10000000}');
\o
\o /dev/null
select billing.create_discount_code('REP3', '{"percent_bps": 5000, "duration": "repeating", "periods": 3}');
\o
\o /dev/null
select billing.create_discount_code('FOREVER20', '{"percent_bps": 2000, "duration": "forever"}');
\o
\o /dev/null
select billing.create_discount_code('PROONLY', '{"percent_bps": 2500, "plans": ["d_pro_m"], "max_per_organization": 5}');
\o
\o /dev/null
select billing.create_discount_code('FIRSTBUY', '{"percent_bps": 1000, "first_purchase_only": true}');
\o
\o /dev/null
select billing.create_discount_code('ENDSSOON', '{"percent_bps": 1000, "valid_until": "2026-12-10T13:00:00+05:30"}');
\o
\o /dev/null
select billing.create_discount_code('LASTONE', '{"percent_bps": 1000, "max_redemptions": 1}');
\o
\o /dev/null
select billing.create_discount_code('HALF', '{"percent_bps": 5000}');
\o
\o /dev/null
select billing.create_discount_code('KEEP', '{"percent_bps": 1000}');
\o

select tests.as_user('a2510000-0000-4000-8000-000000000001');
select throws_ok($$select billing.create_discount_code('MINE', '{"percent_bps": 100}')$$, '42501', null,
  'a signed-in user cannot create codes');
select throws_ok($$select * from billing.discount_codes$$, '42501', null, 'a signed-in user cannot list the codes');
select tests.as_postgres();

-- Percentage and fixed, monthly and yearly, intra-state, inter-state and export ------------------

select is(pg_temp.preview('c2510000-0000-4000-8000-0000000000a1', 'd_basic_m', 'fest1234'),
  '{"plan_code": "d_basic_m", "currency": "INR", "code": "FEST1234", "list_paise": 49900, "discount_paise": 6158,
    "taxable_paise": 43742, "cgst_paise": 3937, "sgst_paise": 3937, "igst_paise": 0, "total_paise": 51616,
    "prices_include_tax": false, "supply_type": "intra_state"}'::jsonb,
  'preview: 12.34 % of 499.00 is 61.58 (61.5766 rounded half up), CGST and SGST on the 437.42 left');
select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000a1', 'd_basic_m', 'FEST1234') \gset a1_
select is(:'a1_amount_cents'::bigint, 51616::bigint, 'the order charges exactly the preview''s total');
select is((select array[list_cents, discount_cents, taxable_cents] from public.orders where receipt = :'a1_receipt'),
  array[49900, 6158, 43742]::bigint[], 'the order keeps the list price, the discount and the taxable value');
select is((select status::text from public.discount_redemptions where order_id = :'a1_order_id'), 'reserved',
  'the redemption is reserved with the order');
select is(pg_temp.pay(:'a1_receipt') ->> 'result', 'applied', 'the discounted payment applies');
select is((select array[list_cents, discount_cents, taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents]
           from pg_temp.line_of(:'a1_receipt')),
  array[49900, 6158, 43742, 3937, 3937, 0, 51616]::bigint[],
  'intra-state invoice line: list price, discount, taxable value, CGST and SGST on it, the total charged');
select is((select discount_code from pg_temp.line_of(:'a1_receipt')), 'FEST1234', 'the line names the code');
select is((select status::text from public.discount_redemptions where order_id = :'a1_order_id'), 'redeemed',
  'the redemption counts once paid');
select is(pg_temp.refusal('c2510000-0000-4000-8000-0000000000a1', 'd_basic_m', 'FEST1234'), 'discount_already_used',
  'the same organization cannot use it twice (max_per_organization 1)');

select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000a2', 'd_basic_y', 'FEST1234') \gset a2_
select is(:'a2_amount_cents'::bigint, 516159::bigint, 'yearly, inter-state: 4990.00 - 615.77, IGST 787.36');
\o /dev/null
select pg_temp.pay(:'a2_receipt');
\o
select is((select array[list_cents, discount_cents, taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents]
           from pg_temp.line_of(:'a2_receipt')),
  array[499000, 61577, 437423, 0, 0, 78736, 516159]::bigint[], 'inter-state invoice line: IGST on the discounted value');

select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000a3', 'd_basic_m', 'FLAT100') \gset a3_
\o /dev/null
select pg_temp.pay(:'a3_receipt');
\o
select is((select array[list_cents, discount_cents, taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents]
           from pg_temp.line_of(:'a3_receipt')),
  array[49900, 10000, 39900, 0, 0, 0, 39900]::bigint[], 'export invoice line: a fixed 100.00 off, zero-rated');

select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000a4', 'd_basic_y', 'FLAT100') \gset a4_
select is(:'a4_amount_cents'::bigint, 577020::bigint, 'a fixed discount on a yearly plan, intra-state');

-- A fixed discount above the price: a free order, completed at once, with its zero invoice -------

select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000a5', 'd_basic_m', 'BIGFREE') \gset a5_
select is(array[:'a5_status', :'a5_amount_cents'], array['paid', '0'], 'the discount floors at zero: paid at once, nothing to charge');
select is((select array[provider::text, discount_cents::text, list_cents::text] from public.orders where receipt = :'a5_receipt'),
  array['manual', '49900', '49900'], 'no provider collects it; the discount is the whole list price');
select is((select array[total_cents, list_cents, discount_cents] from pg_temp.line_of(:'a5_receipt')),
  array[0, 49900, 49900]::bigint[], 'its invoice has a value of zero and shows the discount');
select is((select status::text from public.subscriptions where organization_id = 'c2510000-0000-4000-8000-0000000000a5'),
  'active', 'the plan runs');

-- Repeating for 3 periods, then the full price; forever -------------------------------------------

select is(array(
  select pg_temp.pay((pg_temp.checkout('c2510000-0000-4000-8000-0000000000a6', 'd_basic_m', case when n = 1 then 'REP3' end)).receipt) ->> 'result'
  from generate_series(1, 4) n), array['applied', 'applied', 'applied', 'applied'], 'four periods bought, the code given once');
select is(array(select amount_cents from public.orders where organization_id = 'c2510000-0000-4000-8000-0000000000a6' order by created_at, amount_cents),
  array[29442, 29442, 29442, 58882]::bigint[], 'the renewals carry the 50 % for 3 periods, then the full price');
select is(pg_temp.preview('c2510000-0000-4000-8000-0000000000a6', 'd_basic_m', null) ->> 'discount_paise', '0',
  'after its 3 periods nothing is carried');
select is(array(
  select (pg_temp.checkout('c2510000-0000-4000-8000-0000000000a7', 'd_basic_m', case when n = 1 then 'forever20' end)).amount_cents
  from generate_series(1, 1) n), array[47106]::bigint[], 'a forever code');
\o /dev/null
select pg_temp.pay(receipt) from public.orders where organization_id = 'c2510000-0000-4000-8000-0000000000a7';
\o
select is(array(
  select pg_temp.pay((pg_temp.checkout('c2510000-0000-4000-8000-0000000000a7', 'd_basic_m', null)).receipt) #>> '{result}'
  from generate_series(1, 3) n), array['applied', 'applied', 'applied'], 'three renewals');
select is(array(select distinct amount_cents from public.orders where organization_id = 'c2510000-0000-4000-8000-0000000000a7'),
  array[47106]::bigint[], 'every period is discounted');

-- Validity, scope, first purchase, and no order on a refusal ------------------------------------

select is(pg_temp.refusal('c2510000-0000-4000-8000-0000000000a8', 'd_basic_m', 'NOSUCHCODE'), 'discount_invalid', 'an unknown code');
select is(pg_temp.refusal('c2510000-0000-4000-8000-0000000000a8', 'd_basic_m', 'PROONLY'), 'discount_not_applicable', 'a code for another plan');
select is(pg_temp.refusal('c2510000-0000-4000-8000-0000000000a8', 'd_rzp_m', 'FEST1234', 'razorpay'), 'discount_not_applicable',
  'a Razorpay subscription charges its plan''s full amount: refused with a reason');
select is(pg_temp.refusal('c2510000-0000-4000-8000-0000000000a1', 'd_basic_m', 'FIRSTBUY'), 'discount_not_applicable',
  'first purchase only: an organization that paid before');
set local billing.now = '2026-12-10 12:59:59+05:30';
select is(pg_temp.preview('c2510000-0000-4000-8000-0000000000a8', 'd_basic_m', 'ENDSSOON') ->> 'discount_paise', '4990',
  'a second before valid_until the code applies');
set local billing.now = '2026-12-10 13:00:00+05:30';
select is(pg_temp.refusal('c2510000-0000-4000-8000-0000000000a8', 'd_basic_m', 'ENDSSOON'), 'discount_expired',
  'at valid_until it has expired');
set local billing.now = '2026-12-10 12:00:00+05:30';
select is(pg_temp.orders_of('c2510000-0000-4000-8000-0000000000a8'), 0::bigint, 'no refusal created an order');
select is(pg_temp.preview('c2510000-0000-4000-8000-0000000000a8', 'd_pro_m', 'PROONLY') ->> 'discount_paise', '24975',
  'the code applies to its plan');
select is((pg_temp.checkout('c2510000-0000-4000-8000-0000000000a8', 'd_basic_m', 'FIRSTBUY')).amount_cents, 52994::bigint,
  'first purchase only: a fresh organization gets it');

-- The last redemption, and a superseded order releases it ---------------------------------------

select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000a9', 'd_basic_m', 'LASTONE') \gset a9_
select is(pg_temp.refusal('c2510000-0000-4000-8000-0000000000aa', 'd_basic_m', 'LASTONE'), 'discount_exhausted',
  'the one redemption is reserved by an open order');
select is(pg_temp.orders_of('c2510000-0000-4000-8000-0000000000aa'), 0::bigint, 'no order for the refused buyer');
select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000a9', 'd_basic_m', null) \gset a9b_
select is((select status::text from public.discount_redemptions where order_id = :'a9_order_id'), 'released',
  'a new checkout supersedes the order: its redemption is released');
select is((pg_temp.checkout('c2510000-0000-4000-8000-0000000000aa', 'd_basic_m', 'LASTONE')).amount_cents, 52994::bigint,
  'the released redemption goes to the next buyer');
-- A payment that raced: the superseded order is paid after its redemption went to the next buyer.
select is(pg_temp.pay(:'a9_receipt') ->> 'result', 'recorded',
  'a payment of the superseded discounted order is recorded, not applied');
select is((select array[count(*) filter (where pe.needs_refund), count(*) filter (where not pe.needs_refund)]
           from public.payment_events pe join public.orders o on o.id = pe.order_id where o.receipt = :'a9_receipt'),
          array[1, 0]::bigint[], '... its one payment event needs a refund');
select is((select count(*) from public.discount_redemptions r where lower(r.code) = 'lastone' and r.status <> 'released'), 1::bigint,
  'the code still has one redemption out: the limit holds');

-- The order keeps the terms it was created with ----------------------------------------------------

select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000ac', 'd_basic_m', 'KEEP') \gset ac_
\o /dev/null
select billing.deactivate_discount_code('keep', 'festival over');
\o
select is(pg_temp.pay(:'ac_receipt') ->> 'result', 'applied', 'a code ended after the order was made: the order is paid at its price');
select is((select array[discount_cents, amount_cents] from public.orders where receipt = :'ac_receipt'), array[4990, 52994]::bigint[],
  'with the discount it was created with');
select is(pg_temp.refusal('c2510000-0000-4000-8000-0000000000a8', 'd_basic_m', 'KEEP'), 'discount_expired', 'an ended code is refused');

-- Proration after a discounted period credits the price paid -----------------------------------

select * from pg_temp.checkout('c2510000-0000-4000-8000-0000000000ab', 'd_basic_m', 'HALF') \gset ab_
\o /dev/null
select pg_temp.pay(:'ab_receipt');
\o
set local billing.now = '2026-12-20 12:00:00+05:30';
select tests.as_user('a2510000-0000-4000-8000-000000000001');
select public.change_plan('c2510000-0000-4000-8000-0000000000ab', 'd_pro_m', 'PROONLY') as q \gset
select tests.as_postgres();
select is((:'q'::jsonb ->> 'unused_cents')::bigint,
  (select (billing.unused_value(24950, 'month', s.current_period_start, s.current_period_end, billing.now())).unused_cents
   from public.subscriptions s where s.organization_id = 'c2510000-0000-4000-8000-0000000000ab'),
  'the unused value is of the 249.50 paid, not the 499.00 list price');
select is((:'q'::jsonb ->> 'amount_cents')::bigint, 99900 - 24975 - (:'q'::jsonb ->> 'unused_cents')::bigint,
  'the upgrade: the new list price, less its discount, less the unused value');
select is((select array[list_cents - discount_cents, taxable_cents, (metadata ->> 'period_price_cents')::bigint]
           from public.orders where id = (:'q'::jsonb ->> 'order_id')::uuid),
  array[(:'q'::jsonb ->> 'amount_cents')::bigint, (:'q'::jsonb ->> 'amount_cents')::bigint, 74925::bigint],
  'the upgrade order is taxed on the prorated discounted price and remembers the period''s price');
select is((select r.status::text from public.discount_redemptions r join public.orders o on o.discount_redemption_id = r.id
           where o.id = (:'q'::jsonb ->> 'order_id')::uuid), 'reserved', 'the upgrade order reserved the code');

-- Who reads redemptions ----------------------------------------------------------------------------

select tests.as_user('a2510000-0000-4000-8000-000000000002');
select is((select count(*) from public.discount_redemptions), 1::bigint, 'a member reads the organization''s redemption');
select is(public.preview_checkout('c2510000-0000-4000-8000-0000000000a1', 'd_pro_m', 'PROONLY') ->> 'discount_paise', '24975',
  'a member may preview');
select tests.as_user('a2510000-0000-4000-8000-000000000003');
select is((select count(*) from public.discount_redemptions), 0::bigint, 'a stranger reads none');
select throws_ok($$select public.preview_checkout('c2510000-0000-4000-8000-0000000000a1', 'd_basic_m', null)$$, '42501', null,
  'a stranger cannot preview');
select tests.as_postgres();

-- The preview of a provider's checkout ----------------------------------------------------------
-- A plan with a recurring plan at Razorpay is a Razorpay subscription when bought through Razorpay:
-- its price carries its GST (carved out), so the preview without a provider (a one-time payment,
-- GST on top) would show another total than the one charged.

insert into public.organizations (id, name, state_code, billing_country, exports_verified) values
  ('c2510000-0000-4000-8000-0000000000ad', 'Disc preview by provider', null, 'IN', false);
insert into public.organization_members (organization_id, user_id, role) values
  ('c2510000-0000-4000-8000-0000000000ad', 'a2510000-0000-4000-8000-000000000001', 'owner');
select tests.as_user('a2510000-0000-4000-8000-000000000001');
select public.preview_checkout('c2510000-0000-4000-8000-0000000000ad', 'd_rzp_m', p_provider => 'razorpay') as rzp \gset
select public.preview_checkout('c2510000-0000-4000-8000-0000000000ad', 'd_rzp_m', p_provider => 'payu') as payu \gset
select public.preview_checkout('c2510000-0000-4000-8000-0000000000ad', 'd_rzp_m') as plain \gset
select tests.as_postgres();
select is(array[(:'rzp'::jsonb ->> 'total_paise')::bigint, (:'rzp'::jsonb ->> 'taxable_paise')::bigint],
  array[49900, 42288]::bigint[], 'through Razorpay: the price is the total, its GST carved out (42288 + 2 x 3806)');
select is((:'rzp'::jsonb ->> 'prices_include_tax')::boolean, true, 'and the preview says the price includes tax');
select is(:'payu'::jsonb, :'plain'::jsonb, 'through PayU (one-time): the same as no provider');
select is((:'payu'::jsonb ->> 'total_paise')::bigint, 58882::bigint, 'a one-time payment: GST on top');
select (pg_temp.checkout('c2510000-0000-4000-8000-0000000000ad', 'd_rzp_m', null, 'razorpay')).order_id as o \gset
select is((select array[amount_cents, taxable_cents] from public.orders where id = :'o'),
  array[(:'rzp'::jsonb ->> 'total_paise')::bigint, (:'rzp'::jsonb ->> 'taxable_paise')::bigint],
  'the Razorpay checkout charges what its preview said');
select tests.as_user('a2510000-0000-4000-8000-000000000001');
select throws_ok($$select public.preview_checkout('c2510000-0000-4000-8000-0000000000ad', 'd_rzp_m', 'FEST1234', p_provider => 'razorpay')$$,
  '22023', null, 'a code on a Razorpay subscription is refused in the preview, as at checkout (discount_not_applicable)');
select throws_ok($$select public.preview_checkout('c2510000-0000-4000-8000-0000000000ad', 'd_rzp_m', p_provider => 'paypal')$$,
  '22023', null, 'an unknown provider is refused, naming the ones there are');
select tests.as_postgres();

select * from finish();
rollback;
