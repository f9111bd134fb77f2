-- Exports of services in foreign currencies, under the pinned test clock: a plan's USD price
-- (public.plan_prices) chosen at checkout gives an order in USD at that price with the exchange
-- rate of its day; a buyer outside India paying it is an export, zero-rated under the LUT of the
-- order's financial year (the invoice carries the ARN, the rate and the INR values, the endorsement
-- line in its document), or, with no LUT for that year (the previous year's does not count, across
-- 31 March in Asia/Kolkata), an export on payment of IGST; the provider's rate at capture replaces
-- the order's; a refund's credit note keeps the invoice's currency and rate; an INR order of a
-- foreign buyer without verified exports stays taxed; an unknown currency, one the provider does
-- not collect and a currency without a rate are refused with nothing written; a renewal a month
-- later keeps the currency; the settings' operator functions check what they record.
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select plan(53);

set local billing.now = '2026-12-10 12:00:00+05:30';

-- The seed's export settings do not apply here: this file records its own.
delete from billing.lut_registrations;
delete from billing.exchange_rates;
delete from public.plan_prices;

insert into auth.users (id, email) values
  ('a1400000-0000-4000-8000-000000000001', 'export-owner@test.local');

insert into public.organizations (id, name, state_code, billing_country, exports_verified, billing_name) values
  ('c1400000-0000-4000-8000-0000000000a1', 'Export LUT', null, 'US', false, 'Globex Corporation'),
  ('c1400000-0000-4000-8000-0000000000a2', 'Export provider rate', null, 'US', false, 'Initech LLC'),
  ('c1400000-0000-4000-8000-0000000000a3', 'Export INR', null, 'US', false, 'Hooli Inc'),
  ('c1400000-0000-4000-8000-0000000000a4', 'Export refused', null, 'US', false, 'Umbrella Corp'),
  ('c1400000-0000-4000-8000-0000000000a5', 'Export next year', null, 'US', false, 'Soylent Corp');
insert into public.organization_members (organization_id, user_id, role)
select o.id, 'a1400000-0000-4000-8000-000000000001', 'owner'
from public.organizations o where o.id::text like 'c1400000-%';

insert into public.billing_plans (id, code, name, tier, interval, price_cents, provider_config) values
  ('b1400000-0000-4000-8000-000000000001', 'x_pro_m', 'X Pro', 'pro', 'month', 99900, '{}'),
  ('b1400000-0000-4000-8000-000000000003', 'x_biz_m', 'X Business', 'enterprise', 'month', 199900, '{}');

-- The seller in Karnataka, 18 % GST on top of the price; Razorpay enabled for USD and EUR, PayU
-- for INR only (the default).
update public.billing_settings
set seller_legal_name = 'Export Test Seller Pvt Ltd', seller_gstin = null, seller_state_code = '29',
    gst_rate_bp = 1800, prices_include_tax = false,
    provider_currencies = '{"payu": ["INR"], "razorpay": ["INR", "USD", "EUR"]}';

-- Prices in other currencies ----------------------------------------------------------------------

insert into public.plan_prices (plan_id, currency, price_cents) values
  ('b1400000-0000-4000-8000-000000000001', 'USD', 1200),
  ('b1400000-0000-4000-8000-000000000001', 'EUR', 1100);

select throws_ok($$insert into public.plan_prices (plan_id, currency, price_cents) values ('b1400000-0000-4000-8000-000000000001', 'INR', 5000)$$,
  '23514', null, 'a plan_prices price in the plan''s own currency is refused');
select throws_ok($$insert into public.plan_prices (plan_id, currency, price_cents) select id, 'USD', 100 from public.billing_plans where tier = 'free' and active$$,
  '23514', null, 'the free plan has no price in another currency');
select throws_ok($$insert into public.plan_prices (plan_id, currency, price_cents) values ('b1400000-0000-4000-8000-000000000001', 'usd', 100)$$,
  '23514', null, 'a currency is three capital letters');

-- Visitors read the prices of the plans they may read.
select tests.as_role('anon');
select is((select array_agg(currency order by currency) from public.plan_prices
           where plan_id = 'b1400000-0000-4000-8000-000000000001'),
  array['EUR', 'USD'], 'a visitor reads the foreign prices of an active public plan');
select tests.as_postgres();
update public.billing_plans set private = true where code = 'x_pro_m';
select tests.as_role('anon');
select is((select count(*) from public.plan_prices where plan_id = 'b1400000-0000-4000-8000-000000000001'),
  0::bigint, 'a private plan''s prices are hidden with the plan');
select tests.as_postgres();
update public.billing_plans set private = false where code = 'x_pro_m';

-- The settings: an LUT per financial year, exchange rates ----------------------------------------

select throws_ok($$select billing.operator_record_lut('2026-27', 'AA29032600123', '2026-03-20', 'LUT filed')$$,
  '22023', null, 'an ARN of 13 characters is refused');
select throws_ok($$select billing.operator_record_lut('2026-27', 'AB2903260012345', '2026-03-20', 'LUT filed')$$,
  '22023', null, 'an ARN not starting with AA is refused');
select throws_ok($$select billing.operator_record_lut('2026-28', 'AA2903260012345', '2026-03-20', 'LUT filed')$$,
  '22023', null, 'a financial year is two consecutive years');
select throws_ok($$select billing.operator_record_lut('2026-27', 'AA2903260012345', '2026-03-20', '')$$,
  '22023', null, 'recording an LUT needs a reason');
select isnt(billing.operator_record_lut('2026-27', 'aa2903260012345', '2026-03-20', 'LUT for 2026-27 filed in March'), null,
  'the LUT of 2026-27 is recorded (the ARN in capitals)');
select is(billing.operator_record_lut('2026-27', 'AA2903260012345', '2026-03-20', 'again'),
  (select id from billing.lut_registrations where financial_year = '2026-27'),
  'recording the same ARN again is a no-op');
select is((select array[arn, reason] from billing.lut_registrations where superseded_at is null),
  array['AA2903260012345', 'LUT for 2026-27 filed in March'], 'the LUT is kept with the operator''s reason');

select throws_ok($$select billing.operator_set_exchange_rate('INR', 1, null, 'rupee')$$,
  '22023', null, 'INR has no exchange rate');
select throws_ok($$select billing.operator_set_exchange_rate('USD', 0, null, 'zero')$$,
  '22023', null, 'a rate is positive');
select isnt(billing.operator_set_exchange_rate('USD', 84.123456, '2026-12-01 00:00+05:30', 'reference rate of 1 December'), null,
  'a USD rate is recorded');
select isnt(billing.operator_set_exchange_rate('USD', 90, '2026-12-20 00:00+05:30', 'a rate from later this month'), null,
  'a later USD rate is recorded');
select is(billing.exchange_rate_at('USD', billing.now()), 84.123456,
  'the rate of an order is the latest at or before its date, not a later one');

create function pg_temp.checkout(p_org uuid, p_provider text, p_currency text)
returns public.orders language plpgsql as $$
declare
  v_row billing.checkout_order;
  v_order public.orders;
begin
  perform tests.as_user('a1400000-0000-4000-8000-000000000001');
  select * into v_row from public.create_checkout_order(p_org, 'x_pro_m', p_provider, null, p_currency);
  perform tests.as_postgres();
  select * into v_order from public.orders where id = v_row.order_id;
  return v_order;
end;
$$;
-- The refusal's HINT (the checkout error code), or 'ok'.
create function pg_temp.refusal(p_org uuid, p_provider text, p_currency text)
returns text language plpgsql as $$
declare
  v_hint text;
begin
  perform pg_temp.checkout(p_org, p_provider, p_currency);
  return 'ok';
exception when others then
  get stacked diagnostics v_hint = pg_exception_hint;
  perform tests.as_postgres();
  return coalesce(nullif(v_hint, ''), sqlerrm);
end;
$$;
-- A Razorpay order attached and captured as the payment path does it; p_extra adds to the event.
create function pg_temp.pay(p_order public.orders, p_extra jsonb default '{}') returns jsonb language plpgsql as $$
declare
  v_result jsonb;
begin
  perform tests.as_role('service_role');
  perform billing.attach_provider_checkout(p_order.id, 'order_' || p_order.receipt);
  v_result := billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'evt_' || p_order.receipt, 'event_type', 'payment.captured', 'order_ref', null,
    'provider_order_id', 'order_' || p_order.receipt, 'provider_payment_id', 'pay_' || p_order.receipt,
    'provider_subscription_id', null, 'provider_refund_id', null, 'amount_paise', p_order.amount_cents,
    'currency', p_order.currency, 'status', null, 'method', 'card', 'occurred_at', null, 'payload', '{}'::jsonb) || p_extra));
  perform tests.as_postgres();
  return v_result;
end;
$$;
create function pg_temp.invoice_of(p_order_id uuid) returns public.invoices language sql as $$
  select * from public.invoices where order_id = p_order_id $$;
create function pg_temp.orders_of(p_org uuid) returns bigint language sql as $$
  select count(*) from public.orders where organization_id = p_org $$;
create temp table ord (key text primary key, id uuid);

-- Refusals: nothing written ------------------------------------------------------------------------

select is(pg_temp.refusal('c1400000-0000-4000-8000-0000000000a4', 'razorpay', 'GBP'), 'currency_not_offered',
  'a currency the plan has no price in is refused: currency_not_offered');
select is(pg_temp.refusal('c1400000-0000-4000-8000-0000000000a4', 'payu', 'USD'), 'currency_not_accepted',
  'PayU collects INR only here: a USD checkout through it is refused before any provider call');
select is(pg_temp.refusal('c1400000-0000-4000-8000-0000000000a4', 'razorpay', 'EUR'), 'exchange_rate_missing',
  'a currency with no exchange rate on record is refused: exchange_rate_missing');
select is(pg_temp.orders_of('c1400000-0000-4000-8000-0000000000a4'), 0::bigint, 'the refused checkouts wrote no order');
select tests.as_user('a1400000-0000-4000-8000-000000000001');
select throws_ok($$select public.preview_checkout('c1400000-0000-4000-8000-0000000000a4', 'x_pro_m', null, 'EUR')$$,
  '55000', null, 'the preview refuses a currency without a rate too');
select tests.as_postgres();

-- A USD export under the LUT ---------------------------------------------------------------------

select tests.as_user('a1400000-0000-4000-8000-000000000001');
select is((select array[p ->> 'currency', p ->> 'list_paise', p ->> 'igst_paise', p ->> 'total_paise', p ->> 'supply_type', p ->> 'lut_arn', p ->> 'exchange_rate']
           from public.preview_checkout('c1400000-0000-4000-8000-0000000000a1', 'x_pro_m', null, 'USD') p),
  array['USD', '1200', '0', '1200', 'export', 'AA2903260012345', '84.123456'],
  'the preview in USD: $12.00, zero-rated under the LUT, at the rate of the day');
select tests.as_postgres();

insert into ord select 'lut', (pg_temp.checkout('c1400000-0000-4000-8000-0000000000a1', 'razorpay', 'USD')).id;
select is((select row(currency, amount_cents, taxable_cents, supply_type, lut_arn, export_with_igst, exchange_rate)::text
           from public.orders where id = (select id from ord where key = 'lut')),
  '(USD,1200,1200,export,AA2903260012345,f,84.123456)',
  'the USD order: $12.00 from plan_prices, an export zero-rated under the LUT, the rate recorded');
select is(pg_temp.pay((select o from public.orders o where id = (select id from ord where key = 'lut'))) ->> 'result', 'applied',
  'its USD payment is applied');
select is((select row(currency, supply_type, taxable_cents, igst_cents, total_cents, lut_arn, export_with_igst,
                      exchange_rate, exchange_rate_source, inr_taxable_paise, inr_total_paise)::text
           from pg_temp.invoice_of((select id from ord where key = 'lut'))),
  '(USD,export,1200,0,1200,AA2903260012345,f,84.123456,order,100948,100948)',
  'the invoice: USD 12.00, IGST 0, the ARN, the order''s rate and the INR value 1200 x 84.123456 = 1009.48');
select is((select array[igst_rate_bp, gst_rate_bp] from public.invoice_lines
           where invoice_id = (pg_temp.invoice_of((select id from ord where key = 'lut'))).id),
  array[0, 0], 'the zero-rated line has IGST at 0 %');
select is((select public.invoice_document((pg_temp.invoice_of((select id from ord where key = 'lut'))).id) ->> 'endorsement'),
  'SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX, LUT ARN AA2903260012345',
  'the invoice document carries the LUT endorsement with its ARN');
select is((select public.invoice_document((pg_temp.invoice_of((select id from ord where key = 'lut'))).id) -> 'inr_value'),
  '{"tax_paise": 0, "total_paise": 100948, "exchange_rate": 84.123456, "taxable_paise": 100948, "exchange_rate_source": "order"}'::jsonb,
  'the invoice document carries the rate and the INR values');
select is((select row(status, currency, amount_cents)::text from public.payment_events
           where order_id = (select id from ord where key = 'lut') and status = 'captured'),
  '(captured,USD,1200)', 'the payment is recorded in USD');
select is((select array_agg(h.action || ':' || coalesce(h.new_status::text, '') order by h.created_at)
           from public.subscription_history h where h.organization_id = 'c1400000-0000-4000-8000-0000000000a1'),
  array['activated:active'], 'the subscription history records the subscription the export bought');

-- The refund's credit note keeps the invoice's currency and rate.
select is((select billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'evt_rf_lut', 'event_type', 'refund.processed', 'order_ref', null,
    'provider_order_id', null, 'provider_payment_id', 'pay_' || o.receipt, 'provider_subscription_id', null,
    'provider_refund_id', 'rfnd_lut', 'amount_paise', 500, 'currency', 'USD', 'status', null, 'method', null,
    'occurred_at', null, 'payload', '{}'::jsonb))) ->> 'result'
  from public.orders o where o.id = (select id from ord where key = 'lut')), 'applied', 'a refund of $5.00 is applied');
select is((select row(c.currency, c.taxable_cents, c.igst_cents, c.total_cents, c.exchange_rate, c.inr_taxable_paise, c.inr_total_paise)::text
           from public.credit_notes c where c.invoice_id = (pg_temp.invoice_of((select id from ord where key = 'lut'))).id),
  '(USD,500,0,500,84.123456,42062,42062)',
  'its credit note: USD 5.00 at the invoice''s rate, INR 500 x 84.123456 = 420.62');
select is((select array[d ->> 'endorsement', d #>> '{inr_value,total_paise}']
           from public.credit_note_document((select c.id from public.credit_notes c
             where c.invoice_id = (pg_temp.invoice_of((select id from ord where key = 'lut'))).id)) d),
  array['SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX, LUT ARN AA2903260012345', '42062'],
  'the credit note document carries the endorsement and its INR value');

-- The provider's rate at capture replaces the order's.
insert into ord select 'provider_rate', (pg_temp.checkout('c1400000-0000-4000-8000-0000000000a2', 'razorpay', 'USD')).id;
select throws_ok($$select billing.validate_payment_event('{"provider": "razorpay", "event_id": "e", "event_type": "payment.captured", "kind": "payment_captured", "exchange_rate": "85"}')$$,
  '22023', null, 'a provider exchange rate is a number');
select is(pg_temp.pay((select o from public.orders o where id = (select id from ord where key = 'provider_rate')),
                      '{"exchange_rate": 85.5}') ->> 'result', 'applied', 'a payment with the provider''s rate is applied');
select is((select row(exchange_rate, exchange_rate_source, inr_taxable_paise, inr_total_paise)::text
           from pg_temp.invoice_of((select id from ord where key = 'provider_rate'))),
  '(85.500000,provider,102600,102600)', 'the invoice uses the provider''s rate: 1200 x 85.5 = 1026.00');

-- An INR order of a buyer abroad without verified exports stays taxed ----------------------------

insert into ord select 'inr', (pg_temp.checkout('c1400000-0000-4000-8000-0000000000a3', 'payu', null)).id;
select is((select row(currency, amount_cents, supply_type, lut_arn, export_with_igst, exchange_rate)::text
           from public.orders where id = (select id from ord where key = 'inr')),
  '(INR,117882,intra_state,,f,)',
  'an INR order of a buyer abroad is taxed at the seller''s location: 999.00 + 18 % = 1178.82, no LUT, no rate');

-- Renewal a month later keeps the currency --------------------------------------------------------

set local billing.now = '2027-01-08 12:00:00+05:30';
insert into ord select 'renewal', (pg_temp.checkout('c1400000-0000-4000-8000-0000000000a1', 'razorpay', null)).id;
select is((select row(currency, amount_cents, exchange_rate, lut_arn)::text from public.orders where id = (select id from ord where key = 'renewal')),
  '(USD,1200,90.000000,AA2903260012345)',
  'a renewal a month later without a currency is in USD, the subscription''s, at the rate of its own day');
select is(pg_temp.refusal('c1400000-0000-4000-8000-0000000000a1', 'razorpay', 'INR'), 'subscription_currency',
  'a renewal in another currency than its subscription''s is refused');
select tests.as_user('a1400000-0000-4000-8000-000000000001');
select throws_like($$select public.preview_plan_change('c1400000-0000-4000-8000-0000000000a1', 'x_biz_m')$$,
  'the subscription is paid in USD and plan "x_biz_m" is quoted in INR%', 'an upgrade quoted in INR is refused to a subscription paid in USD');
select tests.as_postgres();

-- Across 31 March: the LUT of 2026-27 does not cover 2027-28 --------------------------------------

set local billing.now = '2027-03-31 23:59:00+05:30';
select tests.as_user('a1400000-0000-4000-8000-000000000001');
select is((select array[p ->> 'supply_type', p ->> 'lut_arn', p ->> 'igst_paise', p ->> 'total_paise']
           from public.preview_checkout('c1400000-0000-4000-8000-0000000000a5', 'x_pro_m', null, 'USD') p),
  array['export', 'AA2903260012345', '0', '1200'], 'on 31 March 23:59 in Kolkata the export is still zero-rated under the 2026-27 LUT');
select tests.as_postgres();

set local billing.now = '2027-04-01 00:00:00+05:30';
select isnt(billing.operator_set_exchange_rate('USD', 85, '2027-04-01 00:00+05:30', 'reference rate of 1 April'), null,
  'a rate for the new year');
insert into ord select 'igst', (pg_temp.checkout('c1400000-0000-4000-8000-0000000000a5', 'razorpay', 'USD')).id;
select is((select row(currency, amount_cents, taxable_cents, supply_type, lut_arn, export_with_igst, exchange_rate)::text
           from public.orders where id = (select id from ord where key = 'igst')),
  '(USD,1416,1200,export,,t,85.000000)',
  'on 1 April with no LUT for 2027-28 the export pays IGST: 12.00 + 18 % = 14.16');
select is(pg_temp.pay((select o from public.orders o where id = (select id from ord where key = 'igst'))) ->> 'result', 'applied',
  'its payment is applied');
select is((select row(supply_type, taxable_cents, igst_cents, total_cents, lut_arn, export_with_igst, inr_taxable_paise, inr_total_paise)::text
           from pg_temp.invoice_of((select id from ord where key = 'igst'))),
  '(export,1200,216,1416,,t,102000,120360)',
  'the invoice: an export with IGST 2.16, no ARN, INR 1020.00 taxable and 1203.60 in all at 85');
select is((select array[igst_rate_bp, gst_rate_bp] from public.invoice_lines
           where invoice_id = (pg_temp.invoice_of((select id from ord where key = 'igst'))).id),
  array[1800, 1800], 'its line has IGST at 18 %');
select is((select array[d ->> 'endorsement', d ->> 'title', d #>> '{inr_value,tax_paise}']
           from public.invoice_document((pg_temp.invoice_of((select id from ord where key = 'igst'))).id) d),
  array['SUPPLY MEANT FOR EXPORT ON PAYMENT OF INTEGRATED TAX', 'Tax Invoice (supply meant for export on payment of IGST)', '18360'],
  'its document says so, with the IGST in INR');

-- Recording the LUT of 2027-28 zero-rates the orders made from then on; a correction supersedes.
select isnt(billing.operator_record_lut('2027-28', 'AA2904270000017', '2027-04-01', 'LUT for 2027-28'), null,
  'the LUT of 2027-28 is recorded');
select isnt(billing.operator_record_lut('2027-28', 'AA2904270000025', '2027-04-01', 'ARN mistyped: corrected'), null,
  'a corrected ARN for the same year is recorded');
select is((select array_agg(arn || ':' || (superseded_at is null)::text order by recorded_at, arn) from billing.lut_registrations where financial_year = '2027-28'),
  array['AA2904270000017:false', 'AA2904270000025:true'], 'the correction supersedes the first row, which stays');
select tests.as_user('a1400000-0000-4000-8000-000000000001');
select is((select array[p ->> 'lut_arn', p ->> 'total_paise']
           from public.preview_checkout('c1400000-0000-4000-8000-0000000000a5', 'x_pro_m', null, 'USD') p),
  array['AA2904270000025', '1200'], 'a new order is zero-rated under the corrected LUT');
select tests.as_postgres();
select is((select row(lut_arn, igst_cents)::text from pg_temp.invoice_of((select id from ord where key = 'igst'))),
  '(,216)', 'the invoice issued before keeps what it was issued with');

select * from finish();
rollback;
