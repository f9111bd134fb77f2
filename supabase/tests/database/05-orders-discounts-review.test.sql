-- Discount codes and private pricing under adversarial use (issue 25): a checkout retried with the
-- same code supersedes the unpaid order; a private plan's price is not previewed by a stranger;
-- the unused value credited on an upgrade never exceeds what was paid; free checkouts cannot be
-- looped to prepay years; a monthly "N periods" code does not discount N years; an upgrade a
-- carried redemption makes free uses one of its periods through an order; a late payment never
-- takes a code past its redemptions.
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select tests.relax_member_limit();
select plan(18);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into auth.users (id, email) values
  ('a2540000-0000-4000-8000-000000000001', 'r4-owner@test.local'),
  ('a2540000-0000-4000-8000-000000000002', 'r4-stranger@test.local');
insert into public.organizations (id, name, state_code, billing_country) values
  ('c2540000-0000-4000-8000-0000000000a1', 'R4 retry', null, 'IN'),
  ('c2540000-0000-4000-8000-0000000000a2', 'R4 prepay', null, 'IN'),
  ('c2540000-0000-4000-8000-0000000000a3', 'R4 stranger', null, 'IN'),
  ('c2540000-0000-4000-8000-0000000000a4', 'R4 free loop', null, 'IN'),
  ('c2540000-0000-4000-8000-0000000000a5', 'R4 monthly to yearly', null, 'IN'),
  ('c2540000-0000-4000-8000-0000000000a6', 'R4 free months to a free year', null, 'IN'),
  ('c2540000-0000-4000-8000-0000000000a7', 'R4 late payer', null, 'IN'),
  ('c2540000-0000-4000-8000-0000000000a8', 'R4 next buyer', null, 'IN');
insert into public.organization_members (organization_id, user_id, role)
select o.id, 'a2540000-0000-4000-8000-000000000001', 'owner'
from public.organizations o where o.id::text like 'c2540000-%' and o.id <> 'c2540000-0000-4000-8000-0000000000a3';
insert into public.organization_members (organization_id, user_id, role) values
  ('c2540000-0000-4000-8000-0000000000a3', 'a2540000-0000-4000-8000-000000000002', 'owner');

insert into public.billing_plans (id, code, name, tier, interval, price_cents, private, provider_config) values
  ('b2540000-0000-4000-8000-000000000001', 'r4_basic_m', 'R4 Basic', 'basic', 'month', 49900, false, '{}'),
  ('b2540000-0000-4000-8000-000000000002', 'r4_pro_m', 'R4 Pro', 'pro', 'month', 99900, false, '{}'),
  ('b2540000-0000-4000-8000-000000000003', 'r4_basic_y', 'R4 Basic yearly', 'basic', 'year', 499000, false, '{}'),
  ('b2540000-0000-4000-8000-000000000004', 'r4_acme_secret', 'Acme Corp contract', 'enterprise', 'month', 777700, true, '{}');

update public.billing_settings
set seller_legal_name = 'R4 Seller', seller_gstin = null, seller_state_code = '29',
    gst_rate_bp = 1800, prices_include_tax = false;

\o /dev/null
select billing.create_discount_code('R4RETRY', '{"percent_bps": 1000}');
select billing.create_discount_code('R4HALF', '{"percent_bps": 5000}');
select billing.create_discount_code('R4FREEFOREVER', '{"percent_bps": 10000, "duration": "forever"}');
select billing.create_discount_code('R4REP3', '{"percent_bps": 5000, "duration": "repeating", "periods": 3}');
select billing.create_discount_code('R4LAST', '{"percent_bps": 1000, "max_redemptions": 1}');
select billing.create_discount_code('R4FREE3', '{"percent_bps": 10000, "duration": "repeating", "periods": 3}');
\o

create function pg_temp.checkout(p_org uuid, p_plan text, p_code text, p_provider text default 'payu')
returns billing.checkout_order language plpgsql as $$
declare
  v_row billing.checkout_order;
begin
  perform tests.as_user('a2540000-0000-4000-8000-000000000001');
  select * into v_row from public.create_checkout_order(p_org, p_plan, p_provider, p_code);
  perform tests.as_postgres();
  return v_row;
end;
$$;
create function pg_temp.refusal(p_org uuid, p_plan text, p_code text) returns text language plpgsql as $$
declare
  v_hint text;
begin
  perform pg_temp.checkout(p_org, p_plan, p_code);
  return 'ok';
exception when others then
  get stacked diagnostics v_hint = pg_exception_hint;
  perform tests.as_postgres();
  return coalesce(nullif(v_hint, ''), sqlerrm);
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

-- F1. A buyer who abandons the payment page and checks out again with the same code -------------
-- docs/discounts.md: a reservation is "released when the order ... is superseded by a newer
-- checkout". The newer checkout with the same code is refused before it can supersede anything.
select * from pg_temp.checkout('c2540000-0000-4000-8000-0000000000a1', 'r4_basic_m', 'R4RETRY') \gset f1_
select is(pg_temp.refusal('c2540000-0000-4000-8000-0000000000a1', 'r4_basic_m', 'r4retry'), 'ok',
  'F1: checking out again with the same code supersedes the unpaid order instead of refusing discount_already_used');
select is((select array_agg(r.status::text order by r.status::text) from public.discount_redemptions r
           where r.organization_id = 'c2540000-0000-4000-8000-0000000000a1'), array['released', 'reserved'],
  'F1: ... the first order''s reservation is released, the new order holds the only one');

-- F2. Private plan through preview_checkout --------------------------------------------------------
create function pg_temp.stranger_preview() returns text language plpgsql as $$
declare
  v jsonb;
  v_hint text;
begin
  perform tests.as_user('a2540000-0000-4000-8000-000000000002');
  v := public.preview_checkout('c2540000-0000-4000-8000-0000000000a3', 'r4_acme_secret', null);
  perform tests.as_postgres();
  return v::text;
exception when others then
  get stacked diagnostics v_hint = pg_exception_hint;
  perform tests.as_postgres();
  return coalesce(nullif(v_hint, ''), sqlerrm);
end;
$$;
select is(pg_temp.stranger_preview(), 'plan_not_found',
  'F2: preview_checkout of a private plan for an organization it is not assigned to is refused as an unknown plan (no name, no price)');

-- F3. Prepaying at full price after a discounted period, then upgrading: the unused value -------
-- credits both periods at the newest order's price, more than was paid for them.
select * from pg_temp.checkout('c2540000-0000-4000-8000-0000000000a2', 'r4_basic_m', 'R4HALF') \gset f3a_
select is(pg_temp.pay(:'f3a_receipt') ->> 'result', 'applied', 'F3 setup: a first month at 50 % off');
set local billing.now = '2026-12-10 12:05:00+05:30';
select * from pg_temp.checkout('c2540000-0000-4000-8000-0000000000a2', 'r4_basic_m', null) \gset f3b_
select is(pg_temp.pay(:'f3b_receipt') ->> 'result', 'applied', 'F3 setup: the next month prepaid at the list price');
create function pg_temp.upgrade_quote() returns jsonb language plpgsql as $$
declare v jsonb;
begin
  perform tests.as_user('a2540000-0000-4000-8000-000000000001');
  v := public.preview_plan_change('c2540000-0000-4000-8000-0000000000a2', 'r4_pro_m');
  perform tests.as_postgres();
  return v;
end;
$$;
set local billing.now = '2026-12-10 12:10:00+05:30';
select cmp_ok((pg_temp.upgrade_quote() ->> 'unused_cents')::bigint, '<=', (24950 + 49900)::bigint,
  'F3: the unused value credited never exceeds what was paid for the periods (24950 + 49900 paise before tax)');

set local billing.now = '2026-12-10 12:00:00+05:30';

-- F4. A forever 100 % code: checkout loops of free orders ------------------------------------------
select * from pg_temp.checkout('c2540000-0000-4000-8000-0000000000a4', 'r4_basic_m', 'R4FREEFOREVER') \gset f4_
select is(:'f4_status'::text, 'paid'::text, 'F4 setup: the free order is paid at once');
select is(pg_temp.refusal('c2540000-0000-4000-8000-0000000000a4', 'r4_basic_m', null), 'ok',
  'F4: the next free period may be prepaid (the plan is paid one period ahead then)');
select is(array_agg(distinct r), array['paid_ahead'],
  'F4: a free checkout while the plan is paid more than one period ahead is refused (paid_ahead)')
from (select pg_temp.refusal('c2540000-0000-4000-8000-0000000000a4', 'r4_basic_m', null) as r
      from generate_series(1, 23)) x;
select cmp_ok((select current_period_end from public.subscriptions
               where organization_id = 'c2540000-0000-4000-8000-0000000000a4' and status = 'active'),
  '<=', '2027-03-10 12:00:00+05:30'::timestamptz,
  'F4: free checkouts cannot be looped to prepay years of the plan (25 free orders in a row)');
\o /dev/null
select billing.deactivate_discount_code('r4freeforever', 'abused', p_end_redemptions => true);
\o
create function pg_temp.renewal_preview(p_org uuid) returns jsonb language plpgsql as $$
declare v jsonb;
begin
  perform tests.as_user('a2540000-0000-4000-8000-000000000001');
  v := public.preview_checkout(p_org, 'r4_basic_m', null);
  perform tests.as_postgres();
  return v;
end;
$$;
select is(pg_temp.renewal_preview('c2540000-0000-4000-8000-0000000000a4') ->> 'discount_paise', '0',
  'F4: a code ended with its redemptions no longer carries to the next checkout');

-- F5. A "3 periods" repeating code bought on a monthly plan carried to a yearly plan ---------------
select * from pg_temp.checkout('c2540000-0000-4000-8000-0000000000a5', 'r4_basic_m', 'R4REP3') \gset f5_
select is(pg_temp.pay(:'f5_receipt') ->> 'result', 'applied', 'F5 setup: a month at 50 % under a 3-period code');
create function pg_temp.to_yearly() returns jsonb language plpgsql as $$
declare v jsonb;
begin
  perform tests.as_user('a2540000-0000-4000-8000-000000000001');
  v := public.preview_plan_change('c2540000-0000-4000-8000-0000000000a5', 'r4_basic_y');
  perform tests.as_postgres();
  return v;
end;
$$;
select cmp_ok(coalesce((pg_temp.to_yearly() ->> 'discount_cents')::bigint, 0), '<=', (2 * 24950)::bigint,
  'F5: a 3-period code bought on a monthly plan discounts the yearly plan by at most its two monthly periods left');

-- F6. "3 free months" (a repeating 100 % code) turned into free years: an upgrade the carried
-- redemption makes free must go through an order that uses one of the code's periods (it was
-- applied at once, 'immediate', with no order, so no period was consumed and it could repeat).
select * from pg_temp.checkout('c2540000-0000-4000-8000-0000000000a6', 'r4_basic_m', 'R4FREE3') \gset f6_
select is(:'f6_status'::text, 'paid'::text, 'F6 setup: the first free month');
create function pg_temp.change_to_yearly() returns jsonb language plpgsql as $$
declare v jsonb;
begin
  perform tests.as_user('a2540000-0000-4000-8000-000000000001');
  v := public.change_plan('c2540000-0000-4000-8000-0000000000a6', 'r4_pro_m');
  perform tests.as_postgres();
  return v;
end;
$$;
select diag(pg_temp.change_to_yearly()::text);
select cmp_ok((select current_period_end from public.subscriptions
               where organization_id = 'c2540000-0000-4000-8000-0000000000a6' and status = 'active'),
  '<=', '2027-03-10 12:00:00+05:30'::timestamptz,
  'F6: a code for 3 free monthly periods never pays for more than 3 months of service');
select is((select (count(*) filter (where o.status = 'paid'))::int from public.orders o
           where o.organization_id = 'c2540000-0000-4000-8000-0000000000a6'
             and o.discount_redemption_id is not null), 2,
  'F6: the free upgrade consumed one of the code''s periods (an order records it)');

-- F7. The last redemption, an order paid a second before its expiry and delivered late ----------
-- The first buyer pays at 23:59:59 of its quote; the webhook arrives after the expiry, when the
-- next buyer already holds the last redemption (the first one's no longer counts). Both orders
-- are then paid at the discount.
set local billing.now = '2026-12-10 12:00:00+05:30';
select * from pg_temp.checkout('c2540000-0000-4000-8000-0000000000a7', 'r4_basic_m', 'R4LAST') \gset f7a_
set local billing.now = '2026-12-11 12:00:30+05:30';
select * from pg_temp.checkout('c2540000-0000-4000-8000-0000000000a8', 'r4_basic_m', 'R4LAST') \gset f7b_
select is(pg_temp.pay(:'f7b_receipt') ->> 'result', 'applied', 'F7 setup: the next buyer pays the last redemption');
create function pg_temp.pay_at(p_receipt text, p_at timestamptz) returns jsonb language plpgsql as $$
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
    'method', 'upi', 'occurred_at', p_at, 'payload', '{}'::jsonb)));
  perform tests.as_postgres();
  return v_result;
end;
$$;
select diag(pg_temp.pay_at(:'f7a_receipt', '2026-12-11 11:59:59+05:30')::text);
select is((select count(*)::int from public.discount_redemptions r where r.code = 'R4LAST' and r.status = 'redeemed'), 1,
  'F7: a code with one redemption is redeemed at most once, however late a payment is delivered');
select * from finish();
rollback;
