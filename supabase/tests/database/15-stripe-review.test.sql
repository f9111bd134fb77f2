-- The review of Stripe as the third provider: the one check of a checkout's provider
-- (billing.checkout_provider, built from public.payment_provider like the payment event's), and
-- the SQL findings of the review, each with the case that failed before its fix.
begin;
set local search_path = public, extensions;
select plan(8);

insert into auth.users (id, email) values ('a1500000-0000-4000-8000-000000000001', 'review-owner@test.local');
insert into public.organizations (id, name) values ('c1500000-0000-4000-8000-0000000000a1', 'Review org');
insert into public.organization_members (organization_id, user_id, role)
values ('c1500000-0000-4000-8000-0000000000a1', 'a1500000-0000-4000-8000-000000000001', 'owner');

-- -------------------------------------------------------------------------------------------------
-- One helper decides which providers take a checkout: every value of the enum but 'manual'
-- -------------------------------------------------------------------------------------------------
select is(billing.checkout_provider('stripe'), 'stripe'::public.payment_provider, 'stripe takes a checkout');
select throws_ok($$select billing.checkout_provider(null)$$, '22023',
  'provider must be one of "payu", "razorpay" or "stripe", got null', 'no provider is refused');
select throws_ok($$select billing.checkout_provider('manual')$$, '22023',
  'provider must be one of "payu", "razorpay" or "stripe", got "manual"', 'manual takes no checkout');
select throws_ok($$select billing.checkout_provider('paypal')$$, '22023',
  'provider must be one of "payu", "razorpay" or "stripe", got "paypal"', 'an unknown provider is refused');

select tests.as_user('a1500000-0000-4000-8000-000000000001');
select throws_ok($$select * from public.create_checkout_order('c1500000-0000-4000-8000-0000000000a1', 'pro', 'manual')$$, '22023',
  'provider must be one of "payu", "razorpay" or "stripe", got "manual"', 'create_checkout_order uses the helper');
select throws_ok($$select * from public.create_credit_pack_order('c1500000-0000-4000-8000-0000000000a1', 'x', 'paypal')$$, '22023',
  'provider must be one of "payu", "razorpay" or "stripe", got "paypal"', 'create_credit_pack_order uses the helper');
select throws_ok($$select * from public.prepare_order_checkout('c1500000-0000-4000-8000-0000000000a1', gen_random_uuid(), null)$$, '22023',
  'provider must be one of "payu", "razorpay" or "stripe", got null', 'prepare_order_checkout uses the helper');
select tests.as_postgres();
select is((select count(*)::int from public.orders where organization_id = 'c1500000-0000-4000-8000-0000000000a1'), 0,
  'nothing was written');

select * from finish();
rollback;
