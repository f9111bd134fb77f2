-- Credit packs (public.credit_packs, billing.create_credit_pack_order, grant_pack_credits,
-- revoke_pack_credits), under the pinned test clock: the catalog refuses a free or empty pack;
-- checkout refuses a member, a stranger, an unknown or retired pack and a bad provider with
-- nothing written; a pack order supersedes open pack orders and leaves a plan order alone; its
-- captured payment grants the credits and issues the GST invoice naming the pack in the same
-- transaction (a grant that cannot be made records nothing), with no subscription; delivered
-- three ways it grants once; a payment after the quote expired grants nothing; a full refund
-- after a partial spend revokes exactly the unspent part; partial refunds revoke their share
-- rounded up, capped at what remains, also through an operator's refund; the pack's validity
-- lapses; a lost dispute revokes what remains. The credit notes say what was revoked and credit
-- the GST as any refund. After each part, billing.credit_ledger_problems() is empty.
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select tests.relax_member_limit();
select plan(74);

set local billing.now = '2026-12-10 12:00:00+05:30';

insert into auth.users (id, email) values
  ('a2410000-0000-4000-8000-000000000001', 'packs-owner@test.local'),
  ('a2410000-0000-4000-8000-000000000002', 'packs-member@test.local'),
  ('a2410000-0000-4000-8000-000000000003', 'packs-stranger@test.local');

insert into public.organizations (id, name, billing_email) values
  ('c2410000-0000-4000-8000-0000000000a1', 'Packs main', 'main@packs.test'),
  ('c2410000-0000-4000-8000-0000000000a2', 'Packs razorpay', 'rzp@packs.test'),
  ('c2410000-0000-4000-8000-0000000000a3', 'Packs lapse', 'lapse@packs.test');
insert into public.organization_members (organization_id, user_id, role) values
  ('c2410000-0000-4000-8000-0000000000a1', 'a2410000-0000-4000-8000-000000000001', 'owner'),
  ('c2410000-0000-4000-8000-0000000000a1', 'a2410000-0000-4000-8000-000000000002', 'member'),
  ('c2410000-0000-4000-8000-0000000000a2', 'a2410000-0000-4000-8000-000000000001', 'owner'),
  ('c2410000-0000-4000-8000-0000000000a3', 'a2410000-0000-4000-8000-000000000001', 'owner');

insert into public.billing_plans (id, code, name, tier, interval, price_cents) values
  ('b2410000-0000-4000-8000-000000000001', 'pk_basic', 'PK Basic', 'basic', 'month', 49900);

insert into public.credit_packs (id, code, name, credits, price_paise, validity, active) values
  ('e2410000-0000-4000-8000-000000000001', 'pk_100', 'PK 100', 100, 10000, interval '30 days', true),
  ('e2410000-0000-4000-8000-000000000002', 'pk_1000', 'PK 1000', 1000, 50000, null, true),
  ('e2410000-0000-4000-8000-000000000003', 'pk_retired', 'PK retired', 10, 1000, null, false);

-- The seller (Karnataka), 18 % GST on top of the price: a pack of 10000 paise charges 11800
-- (CGST 900 + SGST 900), one of 50000 charges 59000.
update public.billing_settings
set seller_legal_name = 'Packs Test Seller Pvt Ltd', seller_gstin = null, seller_state_code = '29',
    gst_rate_bp = 1800, prices_include_tax = false;

create function pg_temp.ev(p_provider text, p_event_id text, p_type text, p_ref text, p_payment_id text,
                           p_amount bigint, p_extra jsonb default '{}') returns jsonb language sql as $$
  select jsonb_build_object(
    'provider', p_provider, 'event_id', p_event_id, 'event_type', p_type, 'order_ref', p_ref,
    'provider_order_id', null, 'provider_payment_id', p_payment_id, 'provider_subscription_id', null,
    'provider_refund_id', null, 'amount_paise', p_amount, 'currency', 'INR', 'status', null,
    'method', 'upi', 'occurred_at', null, 'payload', '{}'::jsonb) || p_extra $$;
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
create function pg_temp.buy(p_user uuid, p_org uuid, p_pack text, p_provider text) returns billing.checkout_order
language plpgsql as $$
declare
  v_row billing.checkout_order;
begin
  perform tests.as_user(p_user);
  select * into v_row from public.create_credit_pack_order(p_org, p_pack, p_provider);
  perform tests.as_postgres();
  return v_row;
end;
$$;
create function pg_temp.ok_ledger() returns text language sql as $$
  select coalesce(string_agg(problem, '; '), '') from billing.credit_ledger_problems()
  where organization_id::text like 'c2410000-%' $$;
create function pg_temp.balance(p_org uuid) returns bigint language sql as $$
  select billing.available_credits(p_org) $$;
create function pg_temp.order_of(p_receipt text) returns public.orders language sql as $$
  select * from public.orders where receipt = p_receipt $$;
create function pg_temp.grant_of(p_order uuid) returns public.credit_grants language sql as $$
  select * from public.credit_grants where order_id = p_order $$;
create function pg_temp.note_of(p_refund_id text) returns public.credit_notes language sql as $$
  select c.* from public.credit_notes c
  join public.payment_events pe on pe.id = c.payment_event_id
  where pe.details ->> 'refund_id' = p_refund_id $$;

-- The catalog refuses what it must not sell ----------------------------------------------------

select throws_ok($$insert into public.credit_packs (code, name, credits, price_paise) values ('pk_free', 'Free credits', 100, 0)$$,
  '23514', null, 'a free pack is refused (repeated free checkouts would be unlimited credits)');
select throws_ok($$insert into public.credit_packs (code, name, credits, price_paise) values ('pk_empty', 'No credits', 0, 100)$$,
  '23514', null, 'a pack of no credits is refused');
select throws_ok($$insert into public.credit_packs (code, name, credits, price_paise, currency) values ('pk_usd', 'Dollars', 10, 100, 'USD')$$,
  '23514', null, 'a pack is sold in INR');
select throws_ok($$insert into public.credit_packs (code, name, credits, price_paise, validity) values ('pk_neg', 'Past', 10, 100, '-1 day')$$,
  '23514', null, 'a validity is a positive interval');
select tests.as_user('a2410000-0000-4000-8000-000000000001');
select throws_ok($$insert into public.credit_packs (code, name, credits, price_paise) values ('pk_mine', 'Mine', 10, 100)$$,
  '42501', null, 'a signed-in user cannot write the catalog');
select tests.as_postgres();
select throws_ok($$insert into public.orders (organization_id, plan_id, credit_pack_id, provider, kind, amount_cents)
  values ('c2410000-0000-4000-8000-0000000000a1', 'b2410000-0000-4000-8000-000000000001', 'e2410000-0000-4000-8000-000000000001', 'payu', 'credit_pack', 100)$$,
  '23514', null, 'an order buys a plan or a pack, not both');
select throws_ok($$insert into public.orders (organization_id, provider, kind, amount_cents)
  values ('c2410000-0000-4000-8000-0000000000a1', 'payu', 'credit_pack', 100)$$,
  '23514', null, 'a credit pack order names its pack');

-- Checkout: who may buy, and what -----------------------------------------------------------------

select throws_ok($$select pg_temp.buy('a2410000-0000-4000-8000-000000000002', 'c2410000-0000-4000-8000-0000000000a1', 'pk_100', 'payu')$$,
  '42501', null, 'a member who is not an owner or admin cannot buy credits');
select throws_ok($$select pg_temp.buy('a2410000-0000-4000-8000-000000000003', 'c2410000-0000-4000-8000-0000000000a1', 'pk_100', 'payu')$$,
  '42501', null, 'a stranger cannot buy credits for the organization');
select throws_ok($$select pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a1', 'pk_nope', 'payu')$$,
  'P0002', 'no active credit pack "pk_nope"', 'an unknown pack is not found');
select throws_ok($$select pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a1', 'pk_retired', 'payu')$$,
  'P0002', 'no active credit pack "pk_retired"', 'a retired pack is not found');
select throws_ok($$select pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a1', 'pk_100', 'paypal')$$,
  '22023', null, 'an unknown provider is refused');
select is((select count(*) from public.orders where organization_id = 'c2410000-0000-4000-8000-0000000000a1'), 0::bigint,
  'the refusals wrote no order');

-- A plan checkout, then two pack checkouts: the second pack order supersedes the first, not the plan's.
select tests.as_user('a2410000-0000-4000-8000-000000000001');
select receipt as plan_receipt from public.create_checkout_order('c2410000-0000-4000-8000-0000000000a1', 'pk_basic', 'payu') \gset
select tests.as_postgres();
select receipt as first_receipt from pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a1', 'pk_100', 'payu') \gset
select * from pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a1', 'pk_100', 'payu') \gset pk_
select is(array[:'pk_plan_name', :'pk_status', :'pk_amount_cents', (select count(*)::text from pg_temp.order_of(:'pk_receipt') o where o.plan_id is not null)],
          array['PK 100', 'pending', '11800', '0'],
          'the checkout answer names the pack, payable at once through PayU, GST on top; no plan');
select is((select array[kind::text, credit_pack_id::text, coalesce(plan_id::text, '-'), taxable_cents::text,
                        metadata ->> 'credits', metadata ->> 'credit_validity']
           from pg_temp.order_of(:'pk_receipt')),
          array['credit_pack', 'e2410000-0000-4000-8000-000000000001', '-', '10000', '100', '30 days'],
          'the order is a credit pack order with its GST quote and the credits and validity sold');
select is((pg_temp.order_of(:'first_receipt')).status::text, 'canceled', 'a new pack checkout supersedes the open pack order');
select is((pg_temp.order_of(:'plan_receipt')).status::text, 'pending', '... and leaves the open plan order alone');

-- The captured payment: credits and invoice together --------------------------------------------

select is(pg_temp.apply(pg_temp.ev('payu', 'pk-a:success', 'payment.success', :'pk_receipt', 'mihpay_a', 11800)) ->> 'result',
          'applied', 'the pack''s captured payment is applied');
select is((select array[source::text, amount::text, remaining::text, expires_at::text, reason]
           from pg_temp.grant_of(:'pk_order_id'::uuid)),
          array['purchase', '100', '100', '2027-01-09 06:30:00+00', 'credit pack pk_100 (order ' || :'pk_receipt' || ')'],
          'it grants the pack''s credits, source purchase, lapsing 30 days after the payment');
select is((select g.payment_event_id from pg_temp.grant_of(:'pk_order_id'::uuid) g),
          (select pe.id from public.payment_events pe where pe.provider_payment_id = 'mihpay_a' and pe.status = 'captured'),
          'the grant names the captured payment');
select is((select g.dedupe_key from pg_temp.grant_of(:'pk_order_id'::uuid) g),
          (select 'purchase:' || pe.id from public.payment_events pe where pe.provider_payment_id = 'mihpay_a' and pe.status = 'captured'),
          'its dedupe key is the payment event');
select is((select array[l.description, l.credit_pack_id::text, l.taxable_cents::text, l.cgst_cents::text, l.sgst_cents::text, l.total_cents::text]
           from public.invoice_lines l join public.invoices i on i.id = l.invoice_id where i.order_id = :'pk_order_id'::uuid),
          array['PK 100 - credit pack (100 credits, valid for 30 days)', 'e2410000-0000-4000-8000-000000000001',
                '10000', '900', '900', '11800'],
          'the GST invoice''s line names the pack and its credits; the tax is the order''s quote');
select is((select array[(pg_temp.order_of(:'pk_receipt')).status::text, (select count(*)::text from public.subscriptions
                          where organization_id = 'c2410000-0000-4000-8000-0000000000a1')]),
          array['paid', '0'], 'the order is paid; no subscription was created or changed');
select is((select payload ->> 'credit_pack_name' || ' ' || (payload ->> 'credits') from public.notifications
           where organization_id = 'c2410000-0000-4000-8000-0000000000a1' and kind = 'payment_captured'),
          'PK 100 100', 'the payment_captured notification names the pack and its credits');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 100::bigint, 'the balance is the pack''s credits');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the purchase');

-- Delivered again, by the return POST's key, by reconciliation: granted once.
select is(pg_temp.apply(pg_temp.ev('payu', 'pk-a:success', 'payment.success', :'pk_receipt', 'mihpay_a', 11800)) ->> 'result',
          'duplicate', 'the same delivery again is a duplicate');
select is(pg_temp.apply(pg_temp.ev('payu', 'pk-a:return', 'payment.success', :'pk_receipt', 'mihpay_a', 11800)) ->> 'result',
          'duplicate', 'the same payment under another event id is a duplicate');
select is(pg_temp.apply(pg_temp.ev('payu', 'payment:mihpay_a:success', 'payment.success', :'pk_receipt', 'mihpay_a', 11800)) ->> 'result',
          'duplicate', 'the reconcile path''s event of it is a duplicate');
select is((select count(*) from public.credit_grants where order_id = :'pk_order_id'::uuid), 1::bigint,
          'delivered three more times, the payment granted once');
select is((select count(*) from public.invoices where order_id = :'pk_order_id'::uuid), 1::bigint, '... with one invoice');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 100::bigint, 'the balance did not move');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the duplicates');

-- A payment whose grant cannot be made is not recorded at all (one transaction).
select * from pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a3', 'pk_100', 'payu') \gset bad_
update public.orders set metadata = metadata || '{"credits": 0}' where id = :'bad_order_id'::uuid;
select throws_ok(format($$select pg_temp.apply(pg_temp.ev('payu', 'pk-bad:success', 'payment.success', %L, 'mihpay_bad', 11800))$$, :'bad_receipt'),
  '22023', null, 'a grant that cannot be made fails the payment''s transaction');
select is((select array[(select count(*) from public.payment_events where provider_payment_id = 'mihpay_bad')::text,
                        (pg_temp.order_of(:'bad_receipt')).status::text,
                        (select count(*) from public.invoices where order_id = :'bad_order_id'::uuid)::text]),
          array['0', 'pending', '0'], '... nothing of it was written: no payment, no paid order, no invoice (the provider retries)');
update public.orders set status = 'canceled' where id = :'bad_order_id'::uuid;

-- A payment after the quote expired is recorded for refund and grants nothing.
select * from pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a3', 'pk_100', 'payu') \gset late_
set local billing.now = '2026-12-12 12:00:00+05:30';
select is(pg_temp.apply(pg_temp.ev('payu', 'pk-late:success', 'payment.success', :'late_receipt', 'mihpay_late', 11800)) ->> 'result',
          'recorded', 'a capture after the order''s quote expired is recorded, not applied');
select is((select array[(select count(*) from public.credit_grants where order_id = :'late_order_id'::uuid)::text,
                        (select needs_refund::text from public.payment_events where provider_payment_id = 'mihpay_late')]),
          array['0', 'true'], '... it grants nothing and is marked for refund');
set local billing.now = '2026-12-10 13:00:00+05:30';

-- A full refund after a partial spend ------------------------------------------------------------

select is((select credits from public.consume_credits('c2410000-0000-4000-8000-0000000000a1', 'api_call_basic', 30, 'pk-spend-1')),
          30::bigint, '30 of the pack''s 100 credits are spent');
select is(pg_temp.apply(pg_temp.ev('payu', 'pk-a:refund', 'refund', :'pk_receipt', 'mihpay_a', 11800,
                                   '{"kind": "refund_processed", "provider_refund_id": "pk-rf-a"}')) ->> 'credits_revoked',
          '70', 'a full refund revokes exactly the unspent 70');
select is((select array[remaining::text, (revoked_at is not null)::text] from pg_temp.grant_of(:'pk_order_id'::uuid)),
          array['0', 'true'], 'nothing remains of the grant, which is marked revoked');
select is((select l.amount from public.credit_ledger l join public.credit_grants g on g.id = l.grant_id
           where g.order_id = :'pk_order_id'::uuid and l.kind = 'revoked'), -70::bigint, 'the ledger has one revoked row of 70');
select is((pg_temp.note_of('pk-rf-a')).reason, 'payu refund pk-rf-a. Credits revoked: 70 of 100 (30 already used)',
          'the credit note says what was revoked and what was already used');
select is((select array[taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents] from pg_temp.note_of('pk-rf-a')),
          array[10000, 900, 900, 0, 11800]::bigint[], 'its GST is the invoice''s, as for any full refund');
select is((select (public.credit_note_document(c.id) ->> 'reason') from pg_temp.note_of('pk-rf-a') c),
          'payu refund pk-rf-a. Credits revoked: 70 of 100 (30 already used)', 'the credit note document (the PDF) carries it');
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a1'), 0::bigint, 'the balance is 0');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the full refund');

-- Partial refunds through Razorpay: the share rounded up, capped at what remains ------------------

select * from pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a2', 'pk_1000', 'razorpay') \gset rz_
select is(array[:'rz_status', :'rz_amount_cents', (select coalesce(metadata ->> 'recurring', 'false') from pg_temp.order_of(:'rz_receipt'))], array['created', '59000', 'false'],
          'a Razorpay pack checkout is a one-time order (no Razorpay plan), payable once attached');
select tests.as_role('service_role');
select billing.attach_provider_checkout(:'rz_order_id'::uuid, 'order_pk_rz1');
select tests.as_postgres();
select is(pg_temp.apply(pg_temp.ev('razorpay', 'pk-rz:captured', 'payment.captured', :'rz_receipt', 'pay_pk_rz1', 59000,
                                   '{"provider_order_id": "order_pk_rz1"}')) ->> 'result', 'applied', 'the Razorpay capture is applied');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'pk-rz:paid', 'order.paid', :'rz_receipt', 'pay_pk_rz1', 59000,
                                   '{"provider_order_id": "order_pk_rz1"}')) ->> 'result', 'duplicate', 'order.paid of the same payment is a duplicate');
select is((select array[amount, remaining] from pg_temp.grant_of(:'rz_order_id'::uuid)), array[1000, 1000]::bigint[],
          'one grant of 1000, never lapsing');
select is((select expires_at from pg_temp.grant_of(:'rz_order_id'::uuid)), null, 'a pack without validity never lapses');
select is((select credits from public.consume_credits('c2410000-0000-4000-8000-0000000000a2', 'api_call_basic', 100, 'pk-spend-2')),
          100::bigint, '100 credits are spent');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'pk-rz:refund1', 'refund.processed', :'rz_receipt', 'pay_pk_rz1', 20000,
                                   '{"provider_refund_id": "rfnd_pk_1"}')) ->> 'credits_revoked',
          '339', 'a refund of 20000 of 59000 paise revokes 339 of 1000 credits (338.98 rounded up)');
select is((pg_temp.note_of('rfnd_pk_1')).reason, 'razorpay refund rfnd_pk_1. Credits revoked: 339 of 1000 (100 already used)',
          'the partial refund''s credit note says so');
select is((select array[taxable_cents, cgst_cents, sgst_cents, total_cents] from pg_temp.note_of('rfnd_pk_1')),
          array[16950, 1525, 1525, 20000]::bigint[], 'its GST is the invoice''s share, as for any partial refund');
select is((select credits from public.consume_credits('c2410000-0000-4000-8000-0000000000a2', 'api_call_basic', 500, 'pk-spend-3')),
          500::bigint, '500 more are spent: 61 remain');

-- An operator's refund of 10000 more: its share would be 170, capped at the 61 that remain.
select billing.operator_refund((select id from public.payment_events where provider_payment_id = 'pay_pk_rz1' and status = 'captured'),
                               10000, 'customer asked for part back') as action_id \gset
select is(pg_temp.apply(pg_temp.ev('razorpay', 'pk-rz:refund2', 'refund.processed', :'rz_receipt', 'pay_pk_rz1', 10000,
                                   jsonb_build_object('provider_refund_id', 'rfnd_pk_2', 'payload', jsonb_build_object('action_id', :'action_id')))) ->> 'credits_revoked',
          '61', 'the operator''s refund, once the provider reports it, revokes its share capped at what remains');
select is((pg_temp.note_of('rfnd_pk_2')).reason, 'razorpay refund rfnd_pk_2. Credits revoked: 61 of 1000 (600 already used)',
          '... and its credit note says so');
select is(pg_temp.apply(pg_temp.ev('razorpay', 'pk-rz:refund3', 'refund.processed', :'rz_receipt', 'pay_pk_rz1', 29000,
                                   '{"provider_refund_id": "rfnd_pk_3"}')) ->> 'credits_revoked',
          '0', 'the refund of the rest revokes nothing more: all that remained is gone');
select is((select array[(select count(*) from public.credit_notes c join public.invoices i on i.id = c.invoice_id
                         where i.order_id = :'rz_order_id'::uuid), (select remaining from pg_temp.grant_of(:'rz_order_id'::uuid))]),
          array[3, 0]::bigint[], 'three credit notes, nothing left of the grant');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the partial refunds');

-- The pack's validity lapses; a refund after it revokes nothing -------------------------------------

select * from pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a3', 'pk_100', 'payu') \gset lp_
select is(pg_temp.apply(pg_temp.ev('payu', 'pk-lp:success', 'payment.success', :'lp_receipt', 'mihpay_lp', 11800)) ->> 'result',
          'applied', 'another pack is bought');
select is((select credits from public.consume_credits('c2410000-0000-4000-8000-0000000000a3', 'api_call_basic', 10, 'pk-spend-4')),
          10::bigint, '10 of it are spent');
set local billing.now = '2027-01-09 13:00:01+05:30';
select is(pg_temp.balance('c2410000-0000-4000-8000-0000000000a3'), 0::bigint, '30 days after the payment, its credits lapsed');
select is((select charged from public.consume_credits('c2410000-0000-4000-8000-0000000000a3', 'api_call_basic', 1, 'pk-spend-5')),
          false, 'nothing can be spent from it');
select is(pg_temp.apply(pg_temp.ev('payu', 'pk-lp:refund', 'refund', :'lp_receipt', 'mihpay_lp', 11800,
                                   '{"kind": "refund_processed", "provider_refund_id": "pk-rf-lp"}')) ->> 'credits_revoked',
          '0', 'a refund after the lapse revokes nothing');
select is((pg_temp.note_of('pk-rf-lp')).reason, 'payu refund pk-rf-lp. Credits revoked: 0 of 100 (10 already used, 90 expired)',
          'the credit note says the credits had expired');
select is(pg_temp.ok_ledger(), '', 'ledger = grants after the lapse');

-- A lost dispute takes back what remains ------------------------------------------------------------

select * from pg_temp.buy('a2410000-0000-4000-8000-000000000001', 'c2410000-0000-4000-8000-0000000000a2', 'pk_1000', 'payu') \gset dp_
select is(pg_temp.apply(pg_temp.ev('payu', 'pk-dp:success', 'payment.success', :'dp_receipt', 'mihpay_dp', 59000)) ->> 'result',
          'applied', 'a pack is bought');
select is(pg_temp.apply(pg_temp.ev('payu', 'pk-dp:lost', 'dispute', :'dp_receipt', 'mihpay_dp', 59000,
                                   '{"kind": "dispute_lost", "provider_dispute_id": "disp_pk"}')) ->> 'result',
          'applied', 'its payment''s dispute is lost');
select is((select array[remaining, (select count(*) from public.credit_ledger l where l.grant_id = g.id and l.kind = 'revoked')]
           from pg_temp.grant_of(:'dp_order_id'::uuid) g), array[0, 1]::bigint[], 'the lost dispute revoked all 1000 credits');

-- Who reads the packs ----------------------------------------------------------------------------------

update public.credit_packs set active = false where code = 'pk_100';
select tests.as_user('a2410000-0000-4000-8000-000000000001');
select is((select array_agg(code order by code) from public.credit_packs where code like 'pk_%'), array['pk_100', 'pk_1000'],
          'an owner reads the packs on sale and the retired pack its organization ordered');
select tests.as_user('a2410000-0000-4000-8000-000000000003');
select is((select array_agg(code order by code) from public.credit_packs where code like 'pk_%'), array['pk_1000'],
          'a stranger reads only the packs on sale');
select tests.as_postgres();

select is((select count(*) from billing.credit_ledger_problems()), 0::bigint, 'the credit ledger agrees with the grants everywhere');

select * from finish();
rollback;
