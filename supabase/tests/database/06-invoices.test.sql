-- GST invoices: GSTIN validation, the billing profile RPC, intra-state (CGST + SGST), inter-state
-- (IGST) and export (zero-rated) invoices, tax-inclusive carve-out, half-up rounding on odd
-- paise, gapless numbering across the financial year boundary in IST (also after a rollback),
-- immutability, credit notes (refund, idempotency, limits, void), invoice_document and its
-- access rules, and the amount in words.
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();
select plan(96);

-- -------------------------------------------------------------------------------------------------
-- Fixture and helpers
-- -------------------------------------------------------------------------------------------------

/** A paid order for an organization at the price `p_amount` paise (the trigger adds the GST quote); returns its id. */
create function pg_temp.paid_order(p_organization_id uuid, p_amount bigint)
returns uuid
language sql
as $$
  insert into public.orders (organization_id, plan_id, provider, amount_cents, status, paid_at)
  values (p_organization_id, 'c7000000-0000-4000-8000-000000000001', 'manual', p_amount, 'paid', now())
  returning id
$$;

/** Issues the invoice of a new paid order; returns the invoice id. */
create function pg_temp.invoice_for(p_organization_id uuid, p_amount bigint)
returns uuid
language sql
as $$
  select billing.issue_invoice(pg_temp.paid_order(p_organization_id, p_amount), null)
$$;

create temp table inv (key text primary key, id uuid) on commit drop;
grant select on inv to authenticated, service_role;
grant insert on inv to service_role;

-- Every invoice here is issued at a pinned time in financial year 2026-27.
set local billing.now = '2026-11-20 12:00:00+05:30';

update public.billing_settings
set seller_legal_name = 'Supabill Technologies Pvt Ltd',
    seller_gstin = '29AAGCB7383J1Z4',
    seller_state_code = '29',
    seller_address_line1 = '1 MG Road',
    seller_city = 'Bengaluru',
    seller_postal_code = '560001',
    invoice_prefix = 'SB',
    credit_note_prefix = 'SB/CN',
    gst_rate_bp = 1800,
    prices_include_tax = false;
-- The seller's LUT for 2026-27 (replacing any the seed recorded): the exports here are zero-rated
-- under it (an export without one pays IGST: 14-exports).
delete from billing.lut_registrations;
select billing.operator_record_lut('2026-27', 'AA2903260012345', '2026-03-20', 'LUT for the invoice tests');

insert into auth.users (id, email) values
  ('b7000000-0000-4000-8000-000000000001', 'inv-owner@test.local'),
  ('b7000000-0000-4000-8000-000000000002', 'inv-admin@test.local'),
  ('b7000000-0000-4000-8000-000000000003', 'inv-member@test.local'),
  ('b7000000-0000-4000-8000-000000000004', 'inv-stranger@test.local');

insert into public.billing_plans (id, code, name, tier, interval, price_cents) values
  ('c7000000-0000-4000-8000-000000000001', 'inv_test_plan', 'Invoice Test Plan', 'pro', 'month', 1050),
  ('c7000000-0000-4000-8000-000000000002', 'inv_test_plan_big', 'Invoice Test Plan Big', 'pro', 'month', 100000);

-- Karnataka (the seller's state), Maharashtra, the United States, and Indian with no state.
insert into public.organizations (id, name, billing_name, gstin, billing_country) values
  ('a7000000-0000-4000-8000-000000000001', 'Intra', 'Intra Buyer Pvt Ltd', '29ABCDE1234F1ZW', 'IN'),
  ('a7000000-0000-4000-8000-000000000002', 'Inter', 'Inter Buyer LLP', '27AAPFU0939F1ZV', 'IN'),
  ('a7000000-0000-4000-8000-000000000003', 'Export', 'Export Buyer Inc', null, 'US'),
  ('a7000000-0000-4000-8000-000000000004', 'Stateless', 'Stateless Buyer', null, 'IN');
-- The US buyer's exports are verified by an operator: its INR orders are an export of services
-- (an unverified foreign buyer paying INR is taxed: 07-payments-money-safety).
update public.organizations set exports_verified = true where id = 'a7000000-0000-4000-8000-000000000003';

insert into public.organization_members (organization_id, user_id, role) values
  ('a7000000-0000-4000-8000-000000000002', 'b7000000-0000-4000-8000-000000000001', 'owner'),
  ('a7000000-0000-4000-8000-000000000002', 'b7000000-0000-4000-8000-000000000002', 'admin'),
  ('a7000000-0000-4000-8000-000000000002', 'b7000000-0000-4000-8000-000000000003', 'member'),
  ('a7000000-0000-4000-8000-000000000001', 'b7000000-0000-4000-8000-000000000004', 'owner');

-- Serials already used in the two financial years this file touches (normally none).
create temp table inv_base on commit drop as
select fy as financial_year,
       coalesce((select c.last_number from billing.invoice_counters c
                 where c.series = 'invoice' and c.financial_year = fy), 0) as last_number
from unnest(array[2026, 2027]) as fy;

-- -------------------------------------------------------------------------------------------------
-- GSTIN validation
-- -------------------------------------------------------------------------------------------------

select is(billing.gstin_check_char('27AAPFU0939F1Z'), 'V',
  'the mod-36 check character of 27AAPFU0939F1Z is V');
select ok(public.is_valid_gstin('27AAPFU0939F1ZV'), 'a real-format GSTIN with the right check character (27AAPFU0939F1ZV) is valid');
select ok(public.is_valid_gstin('29AAGCB7383J1Z4'), 'another valid GSTIN (Karnataka, 29AAGCB7383J1Z4) is valid');
select ok(public.is_valid_gstin('99AAPFU0939F1ZK') and public.is_valid_gstin('97AAPFU0939F1ZO'),
  'state codes 99 (centre) and 97 (other territory) are accepted');
select ok(not public.is_valid_gstin(null), 'a null GSTIN is not valid');
select is(billing.gstin_problem('27AAPFU0939F1Z'), 'GSTIN must be 15 characters, got 14',
  'a 14-character GSTIN is refused for its length');
select is(billing.gstin_problem('40AAPFU0939F1ZV'), 'GSTIN state code "40" is not a GST state code (01-38, 97 or 99)',
  'a GSTIN with state code 40 is refused for its state code');
select is(billing.gstin_problem('00AAPFU0939F1ZV'), 'GSTIN state code "00" is not a GST state code (01-38, 97 or 99)',
  'a GSTIN with state code 00 is refused for its state code');
select is(billing.gstin_problem('27AAPF10939F1ZV'), 'GSTIN characters 3-12 "AAPF10939F" are not a PAN (5 letters, 4 digits, 1 letter)',
  'a GSTIN whose characters 3-12 are not a PAN is refused');
select is(billing.gstin_problem('27AAPFU0939F0ZV'), 'GSTIN 13th character (entity number) must be 1-9 or A-Z',
  'a GSTIN with entity number 0 is refused');
select is(billing.gstin_problem('27AAPFU0939F1YV'), 'GSTIN 14th character must be Z',
  'a GSTIN whose 14th character is not Z is refused');
select is(billing.gstin_problem('27AAPFU0939F1ZA'), 'GSTIN check character is "A", expected "V"',
  'a GSTIN with a wrong check character is refused, naming the expected one');
select is(billing.gstin_problem('27aapfu0939f1zv'), 'GSTIN may contain only digits and capital letters',
  'gstin_problem does not silently accept lowercase (the RPC normalizes first)');
select throws_ok(
  $$update public.organizations set gstin = '27AAPFU0939F1ZA' where id = 'a7000000-0000-4000-8000-000000000002'$$,
  '23514', null,
  'the organizations table itself refuses a GSTIN with a wrong check character'
);
select throws_ok(
  $$update public.billing_settings set invoice_prefix = 'TOOLONG'$$,
  '23514', null,
  'an invoice prefix longer than 5 characters is refused (numbers must fit 16 characters)'
);
select is(
  (select state_code from public.organizations where id = 'a7000000-0000-4000-8000-000000000002'),
  '27',
  'the state code (place of supply) is derived from the GSTIN'
);

-- -------------------------------------------------------------------------------------------------
-- update_billing_profile
-- -------------------------------------------------------------------------------------------------

select tests.as_user('b7000000-0000-4000-8000-000000000001');
select lives_ok(
  $$select public.update_billing_profile('a7000000-0000-4000-8000-000000000002', 'Inter Buyer LLP',
      'accounts@inter.test', ' 27aapfu0939f1zv ', '12 Nariman Point', null, 'Mumbai', null, '400021', 'in')$$,
  'an owner updates the billing profile with a lowercase, space-padded GSTIN'
);
select tests.as_postgres();
select is(
  (select array[gstin, state_code, billing_city, billing_postal_code, billing_country]
   from public.organizations where id = 'a7000000-0000-4000-8000-000000000002'),
  array['27AAPFU0939F1ZV', '27', 'Mumbai', '400021', 'IN'],
  'the profile is stored normalized, with the state code derived from the GSTIN'
);

select tests.as_user('b7000000-0000-4000-8000-000000000002');
select lives_ok(
  $$select public.update_billing_profile('a7000000-0000-4000-8000-000000000002', 'Inter Buyer LLP',
      'accounts@inter.test', '27AAPFU0939F1ZV', '12 Nariman Point', null, 'Mumbai', '27', '400021')$$,
  'an admin updates the billing profile (a matching state code is accepted)'
);
select throws_ok(
  $$select public.update_billing_profile('a7000000-0000-4000-8000-000000000002', 'Inter Buyer LLP',
      null, '27AAPFU0939F1ZA')$$,
  '22023', 'GSTIN check character is "A", expected "V"',
  'the RPC names the problem with a bad GSTIN'
);
select throws_ok(
  $$select public.update_billing_profile('a7000000-0000-4000-8000-000000000002', 'Inter Buyer LLP',
      null, '27AAPFU0939F1ZV', null, null, null, '29')$$,
  '22023', 'state code 29 does not match the GSTIN''s state code 27',
  'the RPC refuses a state code that contradicts the GSTIN'
);
select throws_ok(
  $$select public.update_billing_profile('a7000000-0000-4000-8000-000000000002', 'Inter Buyer LLP',
      null, '27AAPFU0939F1ZV', null, null, null, null, null, 'US')$$,
  '22023', 'a buyer outside India (country US) has no GSTIN or GST state code',
  'the RPC refuses a GSTIN for a buyer outside India'
);
select throws_ok(
  $$select public.update_billing_profile('a7000000-0000-4000-8000-000000000002', 'Inter Buyer LLP',
      null, null, null, null, null, '27', '4000')$$,
  '22023', 'postal code "4000" is not an Indian PIN code (6 digits)',
  'the RPC refuses an Indian postal code that is not a 6-digit PIN'
);
select tests.as_postgres();

select tests.as_user('b7000000-0000-4000-8000-000000000003');
select throws_ok(
  $$select public.update_billing_profile('a7000000-0000-4000-8000-000000000002', 'Hijacked')$$,
  '42501', 'only owners and admins of the organization can update its billing profile',
  'a plain member cannot update the billing profile'
);
select tests.as_postgres();

-- -------------------------------------------------------------------------------------------------
-- Intra-state, inter-state, export; rounding on odd paise
-- -------------------------------------------------------------------------------------------------

insert into inv values ('intra', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000001', 1050));
insert into inv values ('inter', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000002', 1025));
insert into inv values ('export', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000003', 100000));
insert into inv values ('stateless', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000004', 1000));

select is(
  (select array[taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents] from public.invoices
   where id = (select id from inv where key = 'intra')),
  array[1050, 95, 95, 0, 1240]::bigint[],
  'intra-state: 9 % CGST and 9 % SGST of 1050 paise are 94.5 each, rounded half up to 95; total 1240'
);
select is(
  (select array[o.taxable_cents, o.amount_cents] from public.orders o join public.invoices i on i.order_id = o.id
   where i.id = (select id from inv where key = 'intra')),
  array[1050, 1240]::bigint[],
  'the order for a price of 1050 paise charges those 1240, GST included: what the invoice says'
);
select is(
  (select array[supply_type::text, place_of_supply_state_code] from public.invoices where id = (select id from inv where key = 'intra')),
  array['intra_state', '29'],
  'a buyer in the seller''s state is an intra-state supply with place of supply 29'
);
select is(
  (select array[cgst_rate_bp, sgst_rate_bp, igst_rate_bp, gst_rate_bp] from public.invoice_lines
   where invoice_id = (select id from inv where key = 'intra')),
  array[900, 900, 0, 1800],
  'the intra-state line splits 18 % into CGST 9 % and SGST 9 %'
);
select is(
  (select sac_code from public.invoice_lines where invoice_id = (select id from inv where key = 'intra')),
  '998314',
  'the line carries the SAC code from the settings'
);
select is(
  (select array[taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents] from public.invoices
   where id = (select id from inv where key = 'inter')),
  array[1025, 0, 0, 185, 1210]::bigint[],
  'inter-state: 18 % IGST of 1025 paise is 184.5, rounded half up to 185; no CGST or SGST'
);
select is(
  (select array[supply_type::text, place_of_supply_state_code, buyer_gstin] from public.invoices
   where id = (select id from inv where key = 'inter')),
  array['inter_state', '27', '27AAPFU0939F1ZV'],
  'a Maharashtra buyer of a Karnataka seller is inter-state, place of supply 27, with the buyer GSTIN'
);
select is(
  (select array[taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents] from public.invoices
   where id = (select id from inv where key = 'export')),
  array[100000, 0, 0, 0, 100000]::bigint[],
  'export: a buyer outside India is zero-rated, the total is the price'
);
select is(
  (select i.supply_type || ' ' || coalesce(i.place_of_supply_state_code, 'none') || ' ' || l.gst_rate_bp || ' ' || l.igst_rate_bp
   from public.invoices i join public.invoice_lines l on l.invoice_id = i.id
   where i.id = (select id from inv where key = 'export')),
  'export none 0 0',
  'the export invoice has no place-of-supply state and an IGST rate of 0'
);
select is(
  (select supply_type || ' ' || place_of_supply_state_code || ' ' || cgst_cents || ' ' || sgst_cents
   from public.invoices where id = (select id from inv where key = 'stateless')),
  'intra_state 29 90 90',
  'a buyer with no state on record is supplied at the seller''s location (CGST + SGST)'
);

-- Idempotency and the payment event check.
select is(
  billing.issue_invoice((select order_id from public.invoices where id = (select id from inv where key = 'intra')), null),
  (select id from inv where key = 'intra'),
  'issuing again for the same order returns the existing invoice'
);
select is(
  (select count(*)::integer from public.invoices
   where order_id = (select order_id from public.invoices where id = (select id from inv where key = 'intra'))),
  1,
  'an order has exactly one invoice'
);
insert into public.payment_events (id, organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status)
select 'e7000000-0000-4000-8000-000000000001', 'a7000000-0000-4000-8000-000000000001',
       pg_temp.paid_order('a7000000-0000-4000-8000-000000000001', 500), 'manual', 'pay_inv_failed', 500, 'INR', 'failed';
select throws_ok(
  $$select billing.issue_invoice(
      (select order_id from public.payment_events where id = 'e7000000-0000-4000-8000-000000000001'),
      'e7000000-0000-4000-8000-000000000001')$$,
  '22023', null,
  'an invoice is not issued against a payment event that is not a capture'
);
select throws_ok(
  $$select billing.issue_invoice('00000000-0000-4000-8000-000000000000', null)$$,
  'P0002', 'order 00000000-0000-4000-8000-000000000000 does not exist',
  'issuing for an unknown order names the order'
);

-- -------------------------------------------------------------------------------------------------
-- Tax-inclusive prices
-- -------------------------------------------------------------------------------------------------

update public.billing_settings set prices_include_tax = true;
insert into inv values ('incl_intra', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000001', 100000));
insert into inv values ('incl_inter', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000002', 11800));
insert into inv values ('incl_export', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000003', 100000));
update public.billing_settings set prices_include_tax = false;

select is(
  (select array[taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents] from public.invoices
   where id = (select id from inv where key = 'incl_intra')),
  array[84746, 7627, 7627, 0, 100000]::bigint[],
  'tax-inclusive intra-state: CGST = SGST = round(100000 x 900 / 11800) = 7627, taxable is the rest'
);
select is(
  (select total_cents from public.invoices where id = (select id from inv where key = 'incl_intra')),
  (select o.amount_cents from public.orders o join public.invoices i on i.order_id = o.id
   where i.id = (select id from inv where key = 'incl_intra')),
  'with tax-inclusive prices the total payable equals exactly what was charged'
);
select is(
  (select array[taxable_cents, igst_cents, total_cents] from public.invoices where id = (select id from inv where key = 'incl_inter')),
  array[10000, 1800, 11800]::bigint[],
  'tax-inclusive inter-state: 118.00 carves into 100.00 taxable and 18.00 IGST'
);
select is(
  (select array[taxable_cents, igst_cents, total_cents] from public.invoices where id = (select id from inv where key = 'incl_export')),
  array[100000, 0, 100000]::bigint[],
  'tax-inclusive export: nothing is carved out of a zero-rated price'
);
select ok(
  (select prices_include_tax from public.invoices where id = (select id from inv where key = 'incl_intra'))
  and not (select prices_include_tax from public.invoices where id = (select id from inv where key = 'intra')),
  'each invoice records whether its price included tax'
);

-- -------------------------------------------------------------------------------------------------
-- Numbering
-- -------------------------------------------------------------------------------------------------

select is(
  (select invoice_number from public.invoices where id = (select id from inv where key = 'intra')),
  'SB/26-27/' || lpad(((select last_number from inv_base where financial_year = 2026) + 1)::text, 7, '0'),
  'the first invoice of FY 2026-27 is SB/26-27/<next serial>, padded to 16 characters'
);
select is(
  (select array_agg(serial order by serial) from public.invoices
   where id in (select id from inv) and financial_year = 2026),
  (select array_agg(g::bigint) from generate_series(
     (select last_number from inv_base where financial_year = 2026) + 1,
     (select last_number from inv_base where financial_year = 2026) + 7) g),
  'the seven invoices issued so far have consecutive serials'
);
select is_empty(
  $$select invoice_number from public.invoices where invoice_number !~ '^[A-Z0-9/-]{1,16}$'$$,
  'every invoice number has at most 16 letters, digits, - and /'
);

-- A rolled-back issue gives its number back.
do $$
begin
  begin
    perform pg_temp.invoice_for('a7000000-0000-4000-8000-000000000001', 700);
    raise exception 'roll this invoice back';
  exception when raise_exception then
    null;
  end;
end;
$$;
insert into inv values ('after_rollback', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000001', 700));
select is(
  (select serial from public.invoices where id = (select id from inv where key = 'after_rollback')),
  (select last_number from inv_base where financial_year = 2026) + 8,
  'an invoice rolled back with its (sub)transaction leaves no gap: the next one takes its serial'
);

set local billing.now = '2027-03-31 23:59:59+05:30';
insert into inv values ('fy_last', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000001', 1000));
set local billing.now = '2027-04-01 00:00:00+05:30';
insert into inv values ('fy_first', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000001', 1000));
set local billing.now = '2026-11-20 12:00:00+05:30';

select is(
  (select invoice_number || ' ' || invoice_date from public.invoices where id = (select id from inv where key = 'fy_last')),
  'SB/26-27/' || lpad(((select last_number from inv_base where financial_year = 2026) + 9)::text, 7, '0') || ' 2027-03-31',
  'an invoice at 23:59:59 IST on 31 March 2027 continues FY 2026-27, dated 31 March'
);
select is(
  (select invoice_number || ' ' || invoice_date from public.invoices where id = (select id from inv where key = 'fy_first')),
  'SB/27-28/' || lpad(((select last_number from inv_base where financial_year = 2027) + 1)::text, 7, '0') || ' 2027-04-01',
  'an invoice at 00:00 IST on 1 April 2027 starts FY 2027-28 at serial 1 (18:30 UTC the day before)'
);

-- -------------------------------------------------------------------------------------------------
-- The invoice total is the amount charged
-- -------------------------------------------------------------------------------------------------

-- Through the payment path: the invoice total equals the captured amount, for tax-exclusive and
-- tax-inclusive prices, intra-state, inter-state and export, one-time and Razorpay recurring.
create temp table inv_paid (key text primary key, order_id uuid, captured bigint, result jsonb) on commit drop;
grant select, insert on inv_paid to authenticated;
create function pg_temp.pay(p_key text, p_org uuid, p_price bigint, p_psid text default null) returns void language plpgsql as $$
declare
  v_order public.orders;
  v_result jsonb;
begin
  insert into public.orders (organization_id, plan_id, provider, provider_subscription_id, amount_cents, status)
  values (p_org, 'c7000000-0000-4000-8000-000000000001', 'razorpay', p_psid, p_price, 'pending')
  returning * into v_order;
  v_result := billing.apply_payment_event(tests.adapted(jsonb_build_object(
    'provider', 'razorpay', 'event_id', 'evt_inv_' || p_key, 'event_type', 'payment.captured',
    'order_ref', v_order.receipt, 'provider_payment_id', 'pay_inv_' || p_key,
    'amount_paise', v_order.amount_cents, 'currency', 'INR')));
  insert into inv_paid values (p_key, v_order.id, v_order.amount_cents, v_result);
end;
$$;
select pg_temp.pay('excl_intra', 'a7000000-0000-4000-8000-000000000001', 49900);
select pg_temp.pay('excl_inter', 'a7000000-0000-4000-8000-000000000002', 49900);
select pg_temp.pay('excl_export', 'a7000000-0000-4000-8000-000000000003', 49900);
select pg_temp.pay('excl_recurring', 'a7000000-0000-4000-8000-000000000004', 49900, 'sub_inv_recurring');
update public.billing_settings set prices_include_tax = true;
select pg_temp.pay('incl_intra', 'a7000000-0000-4000-8000-000000000001', 49900);
select pg_temp.pay('incl_inter', 'a7000000-0000-4000-8000-000000000002', 49901);
update public.billing_settings set prices_include_tax = false;

select is(
  (select array_agg(p.key || ' ' || (p.result ->> 'result') || ' ' || p.captured || ' ' || coalesce(i.total_cents::text, 'no invoice')
                    order by p.key)
   from inv_paid p left join public.invoices i on i.order_id = p.order_id),
  array['excl_export applied 49900 49900', 'excl_inter applied 58882 58882', 'excl_intra applied 58882 58882',
        'excl_recurring applied 49900 49900', 'incl_inter applied 49901 49901', 'incl_intra applied 49900 49900'],
  'the invoice total equals the captured payment amount: tax-exclusive 499.00 charges 588.82 (export 499.00, Razorpay recurring 499.00 with GST inside), tax-inclusive charges the price'
);
select is(
  (select array[i.taxable_cents, i.cgst_cents, i.sgst_cents, i.igst_cents, i.total_cents]
   from inv_paid p join public.invoices i on i.order_id = p.order_id where p.key = 'excl_recurring'),
  array[42288, 3806, 3806, 0, 49900]::bigint[],
  'a Razorpay recurring charge of 49900 is tax-inclusive: CGST = SGST = round(49900 x 900 / 11800) = 3806'
);
select is(
  (select (select sum(pe.amount_cents) from public.payment_events pe where pe.order_id = p.order_id and pe.status = 'captured')
          - i.total_cents
   from inv_paid p join public.invoices i on i.order_id = p.order_id where p.key = 'excl_intra'),
  0::numeric,
  'the captured payment event and the invoice agree to the paisa'
);

-- The quote is fixed on the order: a later change of the buyer's state does not change the
-- invoice of an order already priced (the total is what the buyer was asked to pay).
insert into inv_paid (key, order_id, captured)
select 'moved', pg_temp.paid_order('a7000000-0000-4000-8000-000000000004', 50), null;
update public.organizations set state_code = '27' where id = 'a7000000-0000-4000-8000-000000000004';
select billing.issue_invoice((select order_id from inv_paid where key = 'moved'), null);
select is(
  (select row(i.supply_type, i.total_cents, o.amount_cents)::text
   from inv_paid p join public.orders o on o.id = p.order_id join public.invoices i on i.order_id = o.id
   where p.key = 'moved'),
  '(intra_state,60,60)',
  'an order quoted intra-state (50 + 5 + 5 paise) is invoiced as quoted after the buyer moves state (IGST would be 9)'
);
update public.organizations set state_code = null where id = 'a7000000-0000-4000-8000-000000000004';

-- An upgrade order from change_plan (lifecycle migration, unchanged) gets the same quote: the
-- prorated amount is the taxable value, GST is added on top.
select tests.as_user('b7000000-0000-4000-8000-000000000001');
insert into inv_paid (key, order_id, result)
select 'upgrade', (r ->> 'order_id')::uuid, r
from (select public.change_plan('a7000000-0000-4000-8000-000000000002', 'inv_test_plan_big') as r) c;
select tests.as_postgres();
select is(
  (select row(o.kind, o.taxable_cents = (p.result ->> 'amount_cents')::bigint,
              o.amount_cents - o.taxable_cents = billing.div_round_half_up(o.taxable_cents * 1800, 10000), o.supply_type)::text
   from inv_paid p join public.orders o on o.id = p.order_id where p.key = 'upgrade'),
  '(upgrade,t,t,inter_state)',
  'change_plan''s upgrade order: the quoted prorated amount is taxable, 18 % IGST is added to what it charges'
);

-- -------------------------------------------------------------------------------------------------
-- Immutability and the issuing-function guard
-- -------------------------------------------------------------------------------------------------

select throws_ok(
  $$update public.invoices set total_cents = 1 where id = (select id from inv where key = 'intra')$$,
  '42501', null,
  'an issued invoice cannot be updated, even by the table owner'
);
select throws_ok(
  $$delete from public.invoices where id = (select id from inv where key = 'intra')$$,
  '42501', null,
  'an issued invoice cannot be deleted, even by the table owner'
);
select throws_ok(
  $$update public.invoice_lines set description = 'changed' where invoice_id = (select id from inv where key = 'intra')$$,
  '42501', null,
  'an invoice line cannot be updated'
);
select throws_ok(
  $$delete from public.invoice_lines where invoice_id = (select id from inv where key = 'intra')$$,
  '42501', null,
  'an invoice line cannot be deleted'
);
select tests.as_role('service_role');
select throws_ok(
  $$update public.invoices set buyer = '{}' where id = (select id from inv where key = 'intra')$$,
  '42501', null,
  'service_role cannot update an issued invoice either'
);
select throws_ok(
  $$insert into public.invoices (organization_id, order_id, invoice_number, financial_year, serial, issued_at,
      invoice_date, currency, supply_type, place_of_supply_state_code, seller, buyer, prices_include_tax,
      taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents)
    values ('a7000000-0000-4000-8000-000000000001', (select id from public.orders limit 1), 'SB/26-27/9999999',
      2026, 9999999, now(), current_date, 'INR', 'intra_state', '29', '{}', '{}', false, 100, 9, 9, 0, 118)$$,
  '42501', 'rows of public.invoices are created only by billing.issue_invoice and billing.issue_credit_note',
  'a direct insert into invoices is refused: numbers and tax come only from the issuing function'
);
select tests.as_postgres();

-- -------------------------------------------------------------------------------------------------
-- Credit notes
-- -------------------------------------------------------------------------------------------------

insert into public.payment_events (id, organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status)
values ('e7000000-0000-4000-8000-000000000002', 'a7000000-0000-4000-8000-000000000001',
        (select order_id from public.invoices where id = (select id from inv where key = 'intra')),
        'manual', 'pay_inv_refund', 620, 'INR', 'refunded');

insert into inv values ('refund', billing.issue_credit_note(
  (select id from inv where key = 'intra'), 620, 'Partial refund', 'e7000000-0000-4000-8000-000000000002'));

select is(
  (select array[taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents] from public.credit_notes
   where id = (select id from inv where key = 'refund')),
  array[524, 48, 48, 0, 620]::bigint[],
  'a refund of half the invoice credits CGST and SGST in proportion (47.5 rounded half up to 48 each)'
);
select matches(
  (select credit_note_number from public.credit_notes where id = (select id from inv where key = 'refund')),
  '^SB/CN/26-27/[0-9]{4}$',
  'the credit note is numbered in its own series SB/CN/26-27/nnnn (16 characters)'
);
select is(
  (select invoice_id from public.credit_notes where id = (select id from inv where key = 'refund')),
  (select id from inv where key = 'intra'),
  'the credit note references its invoice'
);
select is(
  billing.issue_credit_note((select id from inv where key = 'intra'), 620, 'Partial refund', 'e7000000-0000-4000-8000-000000000002'),
  (select id from inv where key = 'refund'),
  'issuing again for the same refund event returns the existing credit note'
);
select throws_ok(
  $$select billing.issue_credit_note((select id from inv where key = 'intra'), 621, 'Too much')$$,
  '22023', 'credit note amount 621 exceeds the remaining creditable amount 620 of invoice '
    || (select invoice_number from public.invoices where id = (select id from inv where key = 'intra')),
  'a credit note beyond the invoice''s remaining creditable amount is refused, naming both amounts'
);
select throws_ok(
  $$select billing.issue_credit_note((select id from inv where key = 'intra'), 0, 'Nothing')$$,
  '22023', 'credit note amount must be a positive number of paise, got 0',
  'a credit note for zero is refused'
);
select throws_ok(
  $$delete from public.credit_notes where id = (select id from inv where key = 'refund')$$,
  '42501', null,
  'an issued credit note cannot be deleted'
);
select throws_ok(
  $$truncate public.credit_notes$$,
  '42501', null,
  'credit notes cannot be truncated'
);

select tests.as_role('service_role');
insert into inv values ('void', billing.void_invoice((select id from inv where key = 'intra'), 'Order cancelled'));
select tests.as_postgres();

select is(
  (select kind || ' ' || total_cents from public.credit_notes where id = (select id from inv where key = 'void')),
  'void 620',
  'voiding credits the remaining 620 paise with a void credit note'
);
select is(
  (select array[sum(taxable_cents), sum(cgst_cents), sum(sgst_cents), sum(igst_cents), sum(total_cents)]
   from public.credit_notes where invoice_id = (select id from inv where key = 'intra')),
  (select array[taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents]::numeric[]
   from public.invoices where id = (select id from inv where key = 'intra')),
  'after the void, the credit notes add up to the invoice exactly, component by component'
);
select ok(
  exists (select 1 from public.invoices where id = (select id from inv where key = 'intra')),
  'a voided invoice is still there (voiding never deletes)'
);
select tests.as_role('service_role');
select throws_ok(
  $$select billing.void_invoice((select id from inv where key = 'intra'), 'Again')$$,
  '22023', 'invoice ' || (select id from inv where key = 'intra') || ' is already fully credited',
  'a fully credited invoice cannot be voided again'
);
select tests.as_postgres();
select ok(
  not has_function_privilege('authenticated', 'billing.void_invoice(uuid, text)', 'execute'),
  'signed-in users cannot void invoices (service_role only)'
);

-- Rounding never piles up: 177 credit notes of 7 paise, then the last paisa, against an invoice
-- of 1240 (CGST 95, SGST 95); and 1240 credit notes of 1 paisa against another.
insert into inv values ('small', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000004', 1050));
insert into inv values ('tiny', pg_temp.invoice_for('a7000000-0000-4000-8000-000000000004', 1050));
select lives_ok(
  $q$do $d$ begin
    for k in 1..177 loop
      perform billing.issue_credit_note((select id from inv where key = 'small'), 7, 'Refund part ' || k);
    end loop;
  end $d$$q$,
  '177 credit notes of 7 paise are issued'
);
select is(
  (select array[sum(cgst_cents), sum(sgst_cents), sum(total_cents)] from public.credit_notes
   where invoice_id = (select id from inv where key = 'small')),
  array[95, 95, 1239]::numeric[],
  'after 1239 of 1240 paise credited, CGST and SGST credited are round(1239 x 95 / 1240) = 95 each, never above the invoice''s'
);
select lives_ok(
  $$select billing.issue_credit_note((select id from inv where key = 'small'), 1, 'Last paisa')$$,
  'the last paisa is credited'
);
select lives_ok(
  $q$do $d$ begin
    for k in 1..1240 loop
      perform billing.issue_credit_note((select id from inv where key = 'tiny'), 1, 'Paisa ' || k);
    end loop;
  end $d$$q$,
  '1240 credit notes of 1 paisa are issued'
);
select is(
  (select array_agg(x order by k) from (
     select i.key as k, array[sum(c.taxable_cents) - n.taxable_cents, sum(c.cgst_cents) - n.cgst_cents,
                              sum(c.sgst_cents) - n.sgst_cents, sum(c.total_cents) - n.total_cents]::text as x
     from inv i join public.invoices n on n.id = i.id join public.credit_notes c on c.invoice_id = n.id
     where i.key in ('small', 'tiny')
     group by i.key, n.taxable_cents, n.cgst_cents, n.sgst_cents, n.total_cents) d),
  array['{0,0,0,0}', '{0,0,0,0}'],
  'fully credited, the credit notes net every component of both invoices to exactly zero'
);

-- -------------------------------------------------------------------------------------------------
-- invoice_document and access
-- -------------------------------------------------------------------------------------------------

select tests.as_user('b7000000-0000-4000-8000-000000000003');
create temp table inv_doc on commit drop as
select public.invoice_document((select id from inv where key = 'inter')) as doc;
select is(
  (select count(*)::integer from public.invoices),
  4,
  'a member sees only their own organization''s four invoices (two issued directly, two through payments)'
);
select throws_ok(
  $$select public.invoice_document((select id from inv where key = 'intra'))$$,
  'P0002', null,
  'a member of another organization gets "invoice not found" for an invoice that is not theirs'
);
select tests.as_postgres();

select is(
  (select doc ->> 'invoice_number' from inv_doc),
  (select invoice_number from public.invoices where id = (select id from inv where key = 'inter')),
  'a member reads the document of their organization''s invoice'
);
select is(
  (select array[doc #>> '{seller,gstin}', doc #>> '{seller,state_name}', doc #>> '{buyer,gstin}',
                doc #>> '{place_of_supply,state_code}', doc #>> '{place_of_supply,state_name}'] from inv_doc),
  array['29AAGCB7383J1Z4', 'Karnataka', '27AAPFU0939F1ZV', '27', 'Maharashtra'],
  'the document has both GSTINs and the place of supply with its state name'
);
select is(
  (select array[jsonb_array_length(doc -> 'lines')::text, doc #>> '{lines,0,sac_code}', doc #>> '{totals,igst_cents}',
                doc #>> '{totals,total_cents}'] from inv_doc),
  array['1', '998314', '185', '1210'],
  'the document has the line with its SAC code, the tax split and the totals'
);
select is(
  (select doc ->> 'amount_in_words' from inv_doc),
  'Rupees Twelve and Ten Paise Only',
  'the document gives the total in words'
);
select is(
  (public.invoice_document((select id from inv where key = 'export')) #>> '{place_of_supply,state_name}'),
  'Outside India',
  'an export invoice''s place of supply is outside India'
);
select ok(
  not has_function_privilege('anon', 'public.invoice_document(uuid)', 'execute'),
  'anon cannot call invoice_document'
);
select tests.as_user('b7000000-0000-4000-8000-000000000001');
select is(
  (select count(*)::integer from public.credit_notes),
  0,
  'the owner of another organization sees none of the credit notes of the intra-state buyer'
);
select tests.as_postgres();
select tests.as_user('b7000000-0000-4000-8000-000000000004');
select is(
  (select count(*)::integer from public.credit_notes),
  2,
  'the intra-state buyer''s owner sees its two credit notes'
);
select tests.as_postgres();

-- -------------------------------------------------------------------------------------------------
-- Amount in words
-- -------------------------------------------------------------------------------------------------

select is(billing.amount_in_words(0), 'Rupees Zero Only', '0 paise is Rupees Zero Only');
select is(billing.amount_in_words(100), 'Rupees One Only', '1 rupee is Rupees One Only');
select is(billing.amount_in_words(11), 'Rupees Zero and Eleven Paise Only', '11 paise names the paise only after zero rupees');
select is(billing.amount_in_words(10000000), 'Rupees One Lakh Only', '1,00,000 rupees is One Lakh');
select is(billing.amount_in_words(1000000000), 'Rupees One Crore Only', '1,00,00,000 rupees is One Crore');
select is(
  billing.amount_in_words(12345678999),
  'Rupees Twelve Crore Thirty-Four Lakh Fifty-Six Thousand Seven Hundred Eighty-Nine and Ninety-Nine Paise Only',
  '12,34,56,789.99 rupees in crore, lakh, thousand and hundred, compound tens hyphenated'
);
select is(
  billing.amount_in_words(1234567890),
  'Rupees One Crore Twenty-Three Lakh Forty-Five Thousand Six Hundred Seventy-Eight and Ninety Paise Only',
  '1,23,45,678.90 rupees matches the documented example'
);
select throws_ok(
  $$select billing.amount_in_words(-1)$$,
  '22023', null,
  'a negative amount has no words'
);

select * from finish();
rollback;
