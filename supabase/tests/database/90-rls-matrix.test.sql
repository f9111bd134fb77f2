-- RLS and grants, proven by a full matrix: every table in public x {anon, authenticated
-- non-member, member, admin, owner, service_role} x {select, insert, update, delete}, all from
-- ONE table of expectations (rls_expectations below). A table in public without expectations
-- fails the test. Each operation runs the way PostgREST runs a request (`set local role` plus
-- `request.jwt.claims`) inside a subtransaction that is rolled back, so cells do not interact.
--
-- Outcomes: select -> 'rows' (the target row is visible), 'none' (no rows), 'error' (refused);
-- insert/update/delete -> 'ok' (a row changed), 'none' (nothing changed), 'error' (refused).
begin;
set local search_path = public, extensions;
select tests.relax_member_limit();

-- -------------------------------------------------------------------------------------------------
-- Fixture: organization A (owner, admin, member) and organization B, whose owner is the
-- "outsider": signed in, not a member of A, and a member of another tenant (cross-tenant).
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, email) values
  ('a1111111-0000-4000-8000-000000000001', 'rls-owner@test.local'),
  ('a1111111-0000-4000-8000-000000000002', 'rls-admin@test.local'),
  ('a1111111-0000-4000-8000-000000000003', 'rls-member@test.local'),
  ('a1111111-0000-4000-8000-000000000004', 'rls-outsider@test.local'),
  ('a1111111-0000-4000-8000-000000000005', 'rls-spare@test.local');

insert into public.organizations (id, name) values
  ('aaaaaaaa-0000-4000-8000-00000000000a', 'RLS org A'),
  ('bbbbbbbb-0000-4000-8000-00000000000b', 'RLS org B');

insert into public.organization_members (organization_id, user_id, role) values
  ('aaaaaaaa-0000-4000-8000-00000000000a', 'a1111111-0000-4000-8000-000000000001', 'owner'),
  ('aaaaaaaa-0000-4000-8000-00000000000a', 'a1111111-0000-4000-8000-000000000002', 'admin'),
  ('aaaaaaaa-0000-4000-8000-00000000000a', 'a1111111-0000-4000-8000-000000000003', 'member'),
  ('bbbbbbbb-0000-4000-8000-00000000000b', 'a1111111-0000-4000-8000-000000000004', 'owner');

insert into public.billing_plans (id, code, name, tier, interval, price_cents, active) values
  ('c0000000-0000-4000-8000-000000000001', 'rls_target', 'RLS target plan', 'basic', 'month', 100, true),
  ('c0000000-0000-4000-8000-000000000002', 'rls_paid', 'RLS paid plan', 'pro', 'month', 200, true),
  ('c0000000-0000-4000-8000-000000000003', 'rls_retired', 'RLS retired plan', 'pro', 'month', 300, false);

insert into public.subscriptions
  (id, organization_id, plan_id, status, current_period_start, current_period_end, ended_at) values
  ('d0000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'c0000000-0000-4000-8000-000000000002', 'active', '2026-01-01', '2026-02-01', null),
  ('d0000000-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'c0000000-0000-4000-8000-000000000003', 'expired', '2025-01-01', '2025-02-01', '2025-02-04'),
  ('d0000000-0000-4000-8000-000000000003', 'bbbbbbbb-0000-4000-8000-00000000000b',
   'c0000000-0000-4000-8000-000000000002', 'active', '2026-01-01', '2026-02-01', null);

insert into public.subscription_history (id, organization_id, subscription_id, action, new_plan_id, new_status) values
  ('e0000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'd0000000-0000-4000-8000-000000000002', 'expired', 'c0000000-0000-4000-8000-000000000003', 'expired'),
  ('e0000000-0000-4000-8000-000000000002', 'bbbbbbbb-0000-4000-8000-00000000000b',
   'd0000000-0000-4000-8000-000000000003', 'activated', 'c0000000-0000-4000-8000-000000000002', 'active');

insert into public.orders (id, organization_id, plan_id, provider, receipt, amount_cents, status, paid_at) values
  ('f0000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'c0000000-0000-4000-8000-000000000002', 'razorpay', 'rls_target_order', 200, 'created', null),
  ('f0000000-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'c0000000-0000-4000-8000-000000000002', 'razorpay', 'rls_paid_order', 200, 'paid', '2026-01-01'),
  ('f0000000-0000-4000-8000-000000000003', 'bbbbbbbb-0000-4000-8000-00000000000b',
   'c0000000-0000-4000-8000-000000000002', 'payu', 'rls_b_order', 200, 'created', null);

-- Private enterprise pricing: a private plan assigned to organization A, and A's price override.
insert into public.billing_plans (id, code, name, tier, interval, price_cents, active, private) values
  ('c0000000-0000-4000-8000-000000000004', 'rls_private', 'RLS private plan', 'enterprise', 'month', 400, true, true);
insert into public.plan_assignments (id, organization_id, plan_id, contract_ref) values
  ('c0000000-0000-4000-8000-0000000000a1', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'c0000000-0000-4000-8000-000000000004', 'RLS-1');
insert into public.price_overrides (id, organization_id, plan_id, price_paise, valid_from, contract_ref) values
  ('c0000000-0000-4000-8000-0000000000a2', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'c0000000-0000-4000-8000-000000000004', 390, '2026-01-01', 'RLS-1');

-- A price in another currency of the target plan.
insert into public.plan_prices (plan_id, currency, price_cents) values
  ('c0000000-0000-4000-8000-000000000001', 'USD', 2);

-- Credit packs: one on sale, and a retired one organization A ordered (a member of A still reads it).
insert into public.credit_packs (id, code, name, credits, price_paise, active) values
  ('c0000000-0000-4000-8000-0000000000c1', 'rls_pack', 'RLS pack', 10, 100, true),
  ('c0000000-0000-4000-8000-0000000000c2', 'rls_pack_retired', 'RLS retired pack', 10, 100, false);
insert into public.orders (id, organization_id, credit_pack_id, kind, provider, receipt, amount_cents, status) values
  ('f0000000-0000-4000-8000-0000000000c1', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'c0000000-0000-4000-8000-0000000000c2', 'credit_pack', 'payu', 'rls_pack_order', 100, 'canceled');

insert into public.payment_events
  (id, organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status) values
  ('f1000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'f0000000-0000-4000-8000-000000000002', 'razorpay', 'pay_rls_a', 200, 'INR', 'captured');

-- An invoice (and its line) for A's paid order, and a credit note against it.
update public.billing_settings set seller_legal_name = 'RLS Seller Pvt Ltd', seller_state_code = '29';
do $$
begin
  perform billing.issue_invoice('f0000000-0000-4000-8000-000000000002', 'f1000000-0000-4000-8000-000000000001');
  perform billing.issue_credit_note(
    (select id from public.invoices where order_id = 'f0000000-0000-4000-8000-000000000002'), 50, 'RLS fixture refund');
end;
$$;

insert into billing.webhook_events (id, provider, event_id, event_type, payload) values
  ('f2000000-0000-4000-8000-000000000001', 'razorpay', 'evt_rls_1', 'payment.captured', '{}');

insert into public.usage_quotas (organization_id, metric, window_unit, window_start, count) values
  ('aaaaaaaa-0000-4000-8000-00000000000a', 'ai_prompts', 'day', '2026-01-01 00:00+05:30', 3),
  ('bbbbbbbb-0000-4000-8000-00000000000b', 'ai_prompts', 'day', '2026-01-01 00:00+05:30', 4);

insert into public.usage_metrics (id, organization_id, metric, amount, request_id) values
  ('f3000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a', 'ai_prompts', 1, 'req-rls-a'),
  ('f3000000-0000-4000-8000-000000000002', 'bbbbbbbb-0000-4000-8000-00000000000b', 'ai_prompts', 1, 'req-rls-b');

insert into public.watchlists (id, organization_id, name) values
  ('f4000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a', 'RLS watchlist A'),
  ('f4000000-0000-4000-8000-000000000002', 'bbbbbbbb-0000-4000-8000-00000000000b', 'RLS watchlist B');

-- Notifications (the outbox of the lifecycle migration): one per organization.
insert into public.notifications (id, organization_id, kind, dedupe_key) values
  ('f5000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a', 'renewal_reminder', 'rls-notification-a'),
  ('f5000000-0000-4000-8000-000000000002', 'bbbbbbbb-0000-4000-8000-00000000000b', 'renewal_reminder', 'rls-notification-b');

-- AI gateway: one logged AI request per organization, one cached answer for A.
insert into public.ai_requests (id, organization_id, user_id, request_id, model, status) values
  ('f6000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'a1111111-0000-4000-8000-000000000003', 'ai_' || repeat('a', 32), 'llama-3.1-8b-instant', 'completed'),
  ('f6000000-0000-4000-8000-000000000002', 'bbbbbbbb-0000-4000-8000-00000000000b',
   'a1111111-0000-4000-8000-000000000004', 'ai_' || repeat('b', 32), 'llama-3.1-8b-instant', 'completed');
insert into billing.ai_cache (organization_id, cache_key, model, response, expires_at) values
  ('aaaaaaaa-0000-4000-8000-00000000000a', repeat('a', 64), 'llama-3.1-8b-instant', '{}', now() + interval '1 day');
-- AI batches: one per organization, each with one request (its AI request above), and a spare
-- AI request of A for the insert.
insert into public.ai_requests (id, organization_id, user_id, request_id, model, status) values
  ('f6000000-0000-4000-8000-000000000003', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'a1111111-0000-4000-8000-000000000003', 'ai_' || repeat('d', 32), 'llama-3.1-8b-instant', 'completed');
insert into public.ai_batches (id, organization_id, request_count, due_at) values
  ('f7000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a', 1, now()),
  ('f7000000-0000-4000-8000-000000000002', 'bbbbbbbb-0000-4000-8000-00000000000b', 1, now());
insert into public.ai_batch_requests (request_id, batch_id, organization_id, position, request, max_tokens) values
  ('ai_' || repeat('a', 32), 'f7000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a', 1, '{}', 1),
  ('ai_' || repeat('b', 32), 'f7000000-0000-4000-8000-000000000002', 'bbbbbbbb-0000-4000-8000-00000000000b', 1, '{}', 1);
insert into public.ai_model_prices (model, effective_from, input_paise_per_million, output_paise_per_million,
                                    cached_input_paise_per_million)
values ('rls-model', '2026-01-01 00:00+05:30', 1, 2, 1);

-- Credits: a grant and a charge in each organization (through the functions: nobody inserts them
-- directly), and an event no charge uses.
select billing.add_credit_grant('aaaaaaaa-0000-4000-8000-00000000000a', 'operator', 10, null, 'RLS fixture', 'rls-grant-a');
select billing.add_credit_grant('bbbbbbbb-0000-4000-8000-00000000000b', 'operator', 10, null, 'RLS fixture', 'rls-grant-b');
select public.consume_credits('aaaaaaaa-0000-4000-8000-00000000000a', 'api_call_basic', 1, 'rls-charge-a');
select public.consume_credits('bbbbbbbb-0000-4000-8000-00000000000b', 'api_call_basic', 1, 'rls-charge-b');
insert into public.credit_events (code, name, credits_per_unit) values ('rls_event', 'RLS fixture', 1);

-- -------------------------------------------------------------------------------------------------
-- Who acts: one row per role of the matrix.
-- -------------------------------------------------------------------------------------------------

create temp table rls_actors (
  actor text primary key,
  description text not null,
  db_role text not null,
  claims text not null,
  ordinal integer not null
) on commit drop;

insert into rls_actors values
  ('anon', 'anon', 'anon', '{"role":"anon"}', 1),
  ('outsider', 'a signed-in non-member (owner of organization B)', 'authenticated',
   '{"sub":"a1111111-0000-4000-8000-000000000004","role":"authenticated"}', 2),
  ('member', 'a member of organization A', 'authenticated',
   '{"sub":"a1111111-0000-4000-8000-000000000003","role":"authenticated"}', 3),
  ('admin', 'an admin of organization A', 'authenticated',
   '{"sub":"a1111111-0000-4000-8000-000000000002","role":"authenticated"}', 4),
  ('owner', 'an owner of organization A', 'authenticated',
   '{"sub":"a1111111-0000-4000-8000-000000000001","role":"authenticated"}', 5),
  ('service_role', 'service_role', 'service_role', '{"role":"service_role"}', 6);

-- A discount code (private) and organization A's redemption of it, with its order.
insert into billing.discount_codes (id, code, percent_bps) values
  ('f7000000-0000-4000-8000-0000000000c1', 'RLSCODE', 1000),
  ('f7000000-0000-4000-8000-0000000000c2', 'RLSUNUSED', 500);
insert into public.discount_redemptions (id, organization_id, discount_code_id, code, order_id, terms) values
  ('f7000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a',
   'f7000000-0000-4000-8000-0000000000c1', 'RLSCODE', 'f0000000-0000-4000-8000-000000000001', '{"percent_bps": 1000}');

-- -------------------------------------------------------------------------------------------------
-- What each command does on each table: the target row (one row of organization A, or a global
-- row) and a valid row to insert for organization A.
-- -------------------------------------------------------------------------------------------------

create temp table rls_targets (
  table_name text primary key,
  target text not null,
  insert_sql text not null
) on commit drop;

insert into rls_targets values
  ('organizations', $$id = 'aaaaaaaa-0000-4000-8000-00000000000a'$$,
   $$insert into public.organizations (name) values ('Inserted by the RLS matrix')$$),
  ('organization_members',
   $$organization_id = 'aaaaaaaa-0000-4000-8000-00000000000a' and user_id = 'a1111111-0000-4000-8000-000000000003'$$,
   $$insert into public.organization_members (organization_id, user_id, role)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'a1111111-0000-4000-8000-000000000005', 'member')$$),
  ('billing_plans', $$id = 'c0000000-0000-4000-8000-000000000001'$$,
   $$insert into public.billing_plans (code, name, tier, price_cents) values ('rls_inserted', 'Inserted', 'basic', 100)$$),
  ('plan_prices', $$plan_id = 'c0000000-0000-4000-8000-000000000001' and currency = 'USD'$$,
   $$insert into public.plan_prices (plan_id, currency, price_cents) values ('c0000000-0000-4000-8000-000000000002', 'EUR', 3)$$),
  ('credit_packs', $$code = 'rls_pack'$$,
   $$insert into public.credit_packs (code, name, credits, price_paise) values ('rls_inserted', 'Inserted', 10, 100)$$),
  ('plan_assignments', $$id = 'c0000000-0000-4000-8000-0000000000a1'$$,
   $$insert into public.plan_assignments (organization_id, plan_id)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'c0000000-0000-4000-8000-000000000001')$$),
  ('price_overrides', $$id = 'c0000000-0000-4000-8000-0000000000a2'$$,
   $$insert into public.price_overrides (organization_id, plan_id, price_paise, valid_from, contract_ref)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'c0000000-0000-4000-8000-000000000002', 150, '2026-01-01', 'RLS-2')$$),
  ('subscriptions', $$id = 'd0000000-0000-4000-8000-000000000001'$$,
   $$insert into public.subscriptions (organization_id, plan_id, status)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'c0000000-0000-4000-8000-000000000002', 'canceled')$$),
  ('subscription_history', $$id = 'e0000000-0000-4000-8000-000000000001'$$,
   $$insert into public.subscription_history (organization_id, action)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'note')$$),
  ('orders', $$id = 'f0000000-0000-4000-8000-000000000001'$$,
   $$insert into public.orders (organization_id, plan_id, provider, amount_cents)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'c0000000-0000-4000-8000-000000000002', 'payu', 200)$$),
  ('payment_events', $$id = 'f1000000-0000-4000-8000-000000000001'$$,
   $$insert into public.payment_events (organization_id, provider, provider_payment_id, amount_cents, currency, status)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'payu', 'pay_rls_inserted', 200, 'INR', 'failed')$$),
  ('billing.webhook_events', $$id = 'f2000000-0000-4000-8000-000000000001'$$,
   $$insert into billing.webhook_events (provider, event_id, event_type, payload)
     values ('payu', 'evt_rls_inserted', 'payment.success', '{}')$$),
  ('usage_quotas',
   $$organization_id = 'aaaaaaaa-0000-4000-8000-00000000000a' and metric = 'ai_prompts'$$,
   $$insert into public.usage_quotas (organization_id, metric, window_unit, window_start, count)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'ai_prompts', 'day', '2026-01-02 00:00+05:30', 1)$$),
  ('usage_metric_catalog', $$metric = 'groq_tokens'$$,
   $$insert into public.usage_metric_catalog (metric, display_name) values ('rls_inserted', 'Inserted')$$),
  ('usage_metrics', $$id = 'f3000000-0000-4000-8000-000000000001'$$,
   $$insert into public.usage_metrics (organization_id, metric, amount)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'ai_prompts', 1)$$),
  ('invoices', $$order_id = 'f0000000-0000-4000-8000-000000000002'$$,
   $$insert into public.invoices (organization_id, order_id, invoice_number, financial_year, serial, issued_at,
       invoice_date, currency, supply_type, place_of_supply_state_code, seller, buyer, prices_include_tax,
       taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'f0000000-0000-4000-8000-000000000001', 'RLS/26-27/99999',
       2026, 99999, now(), current_date, 'INR', 'intra_state', '29', '{}', '{}', false, 200, 18, 18, 0, 236)$$),
  ('invoice_lines', $$organization_id = 'aaaaaaaa-0000-4000-8000-00000000000a' and line_number = 1$$,
   $$insert into public.invoice_lines (invoice_id, organization_id, line_number, description, sac_code,
       gst_rate_bp, cgst_rate_bp, sgst_rate_bp, igst_rate_bp, taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents)
     select id, organization_id, 2, 'Inserted', '998314', 1800, 900, 900, 0, 100, 9, 9, 0, 118
     from public.invoices where order_id = 'f0000000-0000-4000-8000-000000000002'$$),
  ('credit_notes', $$organization_id = 'aaaaaaaa-0000-4000-8000-00000000000a'$$,
   $$insert into public.credit_notes (organization_id, invoice_id, credit_note_number, financial_year, serial,
       issued_at, credit_note_date, kind, reason, currency, taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents)
     select organization_id, id, 'RLSCN/26-27/9999', 2026, 9999, now(), current_date, 'refund', 'Inserted', 'INR',
       10, 0, 0, 0, 10
     from public.invoices where order_id = 'f0000000-0000-4000-8000-000000000002'$$),
  ('billing_settings', $$id$$,
   $$insert into public.billing_settings (id) values (true)$$),
  ('watchlists', $$id = 'f4000000-0000-4000-8000-000000000001'$$,
   $$insert into public.watchlists (organization_id, name) values ('aaaaaaaa-0000-4000-8000-00000000000a', 'Inserted')$$),
  ('notifications', $$id = 'f5000000-0000-4000-8000-000000000001'$$,
   $$insert into public.notifications (organization_id, kind, dedupe_key)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'renewal_reminder', 'rls-notification-inserted')$$),
  ('ai_requests', $$id = 'f6000000-0000-4000-8000-000000000001'$$,
   $$insert into public.ai_requests (organization_id, request_id, model, status)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'ai_' || repeat('c', 32), 'llama-3.1-8b-instant', 'completed')$$),
  ('billing.ai_cache', $$organization_id = 'aaaaaaaa-0000-4000-8000-00000000000a' and cache_key = repeat('a', 64)$$,
   $$insert into billing.ai_cache (organization_id, cache_key, model, response, expires_at)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', repeat('c', 64), 'llama-3.1-8b-instant', '{}', now())$$),
  ('ai_batches', $$id = 'f7000000-0000-4000-8000-000000000001'$$,
   $$insert into public.ai_batches (organization_id, request_count, due_at)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 1, now())$$),
  ('ai_batch_requests', $$request_id = 'ai_' || repeat('a', 32)$$,
   $$insert into public.ai_batch_requests (request_id, batch_id, organization_id, position, request, max_tokens)
     values ('ai_' || repeat('d', 32), 'f7000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-00000000000a', 2, '{}', 1)$$),
  ('ai_model_prices', $$model = 'rls-model'$$,
   $$insert into public.ai_model_prices (model, effective_from, input_paise_per_million, output_paise_per_million,
                                         cached_input_paise_per_million)
     values ('rls-model', '2026-02-01 00:00+05:30', 1, 2, 1)$$),
  ('credit_events', $$code = 'rls_event'$$,
   $$insert into public.credit_events (code, name, credits_per_unit) values ('rls_inserted', 'Inserted', 1)$$),
  ('credit_grants', $$dedupe_key = 'rls-grant-a'$$,
   $$insert into public.credit_grants (organization_id, source, amount, remaining)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'operator', 1000, 1000)$$),
  ('credit_charges', $$request_id = 'rls-charge-a'$$,
   $$insert into public.credit_charges (organization_id, event_code, quantity, credits, charged)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'api_call_basic', 1, 1, 1)$$),
  ('discount_redemptions', $$id = 'f7000000-0000-4000-8000-000000000001'$$,
   $$insert into public.discount_redemptions (organization_id, discount_code_id, code, order_id, terms)
     values ('aaaaaaaa-0000-4000-8000-00000000000a', 'f7000000-0000-4000-8000-0000000000c1', 'RLSCODE',
             'f0000000-0000-4000-8000-000000000002', '{}')$$),
  ('billing.discount_codes', $$id = 'f7000000-0000-4000-8000-0000000000c2'$$,
   $$insert into billing.discount_codes (code, amount_paise) values ('RLSINSERTED', 100)$$),
  ('credit_ledger', $$request_id = 'rls-charge-a'$$,
   $$insert into public.credit_ledger (organization_id, grant_id, kind, amount, balance_after)
     select organization_id, id, 'granted', 1000, 1009 from public.credit_grants where dedupe_key = 'rls-grant-a'$$);

-- -------------------------------------------------------------------------------------------------
-- THE expectations: table x command -> outcome for each role.
-- -------------------------------------------------------------------------------------------------

create temp table rls_expectations (
  table_name text not null,
  command text not null check (command in ('select', 'insert', 'update', 'delete')),
  anon text not null,
  outsider text not null,
  member text not null,
  admin text not null,
  owner text not null,
  service_role text not null,
  primary key (table_name, command)
) on commit drop;

insert into rls_expectations values
  --  table                    command    anon     outsider member  admin   owner   service_role
  ('organizations',          'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('organizations',          'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('organizations',          'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  -- organization A has immutable audit rows (subscription_history, payment_events) that
  -- restrict its deletion: even service_role cannot delete an organization with billing history.
  ('organizations',          'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  ('organization_members',   'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('organization_members',   'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('organization_members',   'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('organization_members',   'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  ('billing_plans',          'select', 'rows',  'rows',  'rows',  'rows',  'rows',  'rows'),
  ('billing_plans',          'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing_plans',          'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing_plans',          'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- A plan's prices in other currencies: read with the plan, written by the service side.
  ('plan_prices',            'select', 'rows',  'rows',  'rows',  'rows',  'rows',  'rows'),
  ('plan_prices',            'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('plan_prices',            'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('plan_prices',            'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  ('credit_packs',           'select', 'rows',  'rows',  'rows',  'rows',  'rows',  'rows'),
  ('credit_packs',           'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('credit_packs',           'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('credit_packs',           'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- Private pricing: members read their organization's assignments and overrides; only the
  -- service side (the operators' functions) writes them.
  ('plan_assignments',       'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('plan_assignments',       'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('plan_assignments',       'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('plan_assignments',       'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  ('price_overrides',        'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('price_overrides',        'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('price_overrides',        'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('price_overrides',        'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  ('subscriptions',          'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('subscriptions',          'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('subscriptions',          'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  -- every subscription has history from its creation (written by the trigger on subscriptions),
  -- which restricts its deletion: even service_role cannot delete a subscription.
  ('subscriptions',          'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  -- immutable: update and delete fail for service_role too
  ('subscription_history',   'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('subscription_history',   'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('subscription_history',   'update', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('subscription_history',   'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  ('orders',                 'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('orders',                 'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('orders',                 'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('orders',                 'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- immutable: update and delete fail for service_role too
  ('payment_events',         'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('payment_events',         'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('payment_events',         'update', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('payment_events',         'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  -- service_role only
  ('billing.webhook_events', 'select', 'error', 'error', 'error', 'error', 'error', 'rows'),
  ('billing.webhook_events', 'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing.webhook_events', 'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing.webhook_events', 'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  ('usage_quotas',           'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('usage_quotas',           'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('usage_quotas',           'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('usage_quotas',           'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- metric display names: everyone signed in reads them; a DBA (service_role) edits them
  ('usage_metric_catalog',   'select', 'error', 'rows',  'rows',  'rows',  'rows',  'rows'),
  ('usage_metric_catalog',   'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('usage_metric_catalog',   'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('usage_metric_catalog',   'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  ('usage_metrics',          'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('usage_metrics',          'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('usage_metrics',          'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('usage_metrics',          'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- issued tax documents: members read; inserts only through the issuing functions (the direct
  -- insert is refused even to service_role); immutable, so update and delete fail for everyone
  ('invoices',               'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('invoices',               'insert', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('invoices',               'update', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('invoices',               'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  ('invoice_lines',          'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('invoice_lines',          'insert', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('invoice_lines',          'update', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('invoice_lines',          'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  ('credit_notes',           'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('credit_notes',           'insert', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('credit_notes',           'update', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('credit_notes',           'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  -- one row (id = true): a second row is refused even to service_role
  ('billing_settings',       'select', 'error', 'rows',  'rows',  'rows',  'rows',  'rows'),
  ('billing_settings',       'insert', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('billing_settings',       'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing_settings',       'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- a demo app table: members manage their organization's rows directly (max_watchlists applies)
  ('watchlists',             'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('watchlists',             'insert', 'error', 'error', 'ok',    'ok',    'ok',    'ok'),
  -- members may update only the name (column grant); the matrix's generic update touches
  -- created_at, which nobody but service_role may change
  ('watchlists',             'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('watchlists',             'delete', 'error', 'none',  'ok',    'ok',    'ok',    'ok'),

  -- the notifications outbox: owners and admins read their organization's (billing mail is not
  -- for every member); only the jobs, the payment path and the sender (service_role) write
  ('notifications',          'select', 'error', 'none',  'none',  'rows',  'rows',  'rows'),
  ('notifications',          'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('notifications',          'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('notifications',          'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- the AI request log: owners and admins read their organization's; only the gateway writes
  ('ai_requests',            'select', 'error', 'none',  'none',  'rows',  'rows',  'rows'),
  ('ai_requests',            'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_requests',            'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_requests',            'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- nightly AI batches: every member reads their organization's; only the batch functions write
  ('ai_batches',             'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('ai_batches',             'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_batches',             'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_batches',             'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_batch_requests',      'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('ai_batch_requests',      'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_batch_requests',      'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_batch_requests',      'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- the AI answer cache: service_role only
  ('billing.ai_cache',       'select', 'error', 'error', 'error', 'error', 'error', 'rows'),
  ('billing.ai_cache',       'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing.ai_cache',       'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing.ai_cache',       'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- credit events: a price list every signed-in user reads; a DBA (or service_role) edits it
  ('ai_model_prices',        'select', 'error', 'rows',  'rows',  'rows',  'rows',  'rows'),
  ('ai_model_prices',        'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_model_prices',        'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('ai_model_prices',        'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('credit_events',          'select', 'error', 'rows',  'rows',  'rows',  'rows',  'rows'),
  ('credit_events',          'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('credit_events',          'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('credit_events',          'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),

  -- credit grants, charges and the ledger: members read their organization's; nobody writes them
  -- but the credit functions (security definer), so a direct write fails for service_role too
  ('credit_grants',          'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('credit_grants',          'insert', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('credit_grants',          'update', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('credit_grants',          'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  ('credit_charges',         'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('credit_charges',         'insert', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('credit_charges',         'update', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('credit_charges',         'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  ('credit_ledger',          'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('credit_ledger',          'insert', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('credit_ledger',          'update', 'error', 'error', 'error', 'error', 'error', 'error'),
  ('credit_ledger',          'delete', 'error', 'error', 'error', 'error', 'error', 'error'),

  -- Members read their organization's redemptions, written only by the checkout functions; the
  -- codes themselves are never listed to anyone but the service.
  ('discount_redemptions',   'select', 'error', 'none',  'rows',  'rows',  'rows',  'rows'),
  ('discount_redemptions',   'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('discount_redemptions',   'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('discount_redemptions',   'delete', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing.discount_codes', 'select', 'error', 'error', 'error', 'error', 'error', 'rows'),
  ('billing.discount_codes', 'insert', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing.discount_codes', 'update', 'error', 'error', 'error', 'error', 'error', 'ok'),
  ('billing.discount_codes', 'delete', 'error', 'error', 'error', 'error', 'error', 'ok');

-- -------------------------------------------------------------------------------------------------
-- The runner: act as a role, run one statement, report the outcome, roll it back.
-- -------------------------------------------------------------------------------------------------

create function pg_temp.rls_try(p_role text, p_claims text, p_sql text, p_is_select boolean,
                                out outcome text, out detail text)
language plpgsql
as $$
declare
  v_count bigint;
begin
  begin
    perform set_config('role', p_role, true);
    perform set_config('request.jwt.claims', p_claims, true);
    if p_is_select then
      execute p_sql into v_count;
    else
      execute p_sql;
      get diagnostics v_count = row_count;
    end if;
    -- Undo the statement (and the role switch) by failing the subtransaction on purpose.
    raise exception using errcode = 'SBRLS', message = v_count::text;
  exception
    when sqlstate 'SBRLS' then
      outcome := case
        when sqlerrm::bigint = 0 then 'none'
        when p_is_select then 'rows'
        else 'ok'
      end;
      detail := sqlerrm || ' row(s)';
    when others then
      outcome := 'error';
      detail := sqlstate || ': ' || sqlerrm;
  end;
end;
$$;

/** A target's table: public.<name>, or the schema-qualified name of an internal table. */
create function pg_temp.rls_table(p_table text)
returns text
language sql
immutable
as $$
  select case when p_table like '%.%' then p_table else 'public.' || quote_ident(p_table) end
$$;

/** How many rows a target picks, as the table owner (no RLS). */
create function pg_temp.rls_target_count(p_table text, p_target text)
returns bigint
language plpgsql
as $$
declare
  v_count bigint;
begin
  execute format('select count(*) from %s where %s', pg_temp.rls_table(p_table), p_target) into v_count;
  return v_count;
end;
$$;

create temp table rls_results on commit drop as
select
  e.table_name,
  e.command,
  a.actor,
  a.description,
  a.ordinal,
  case a.actor
    when 'anon' then e.anon
    when 'outsider' then e.outsider
    when 'member' then e.member
    when 'admin' then e.admin
    when 'owner' then e.owner
    when 'service_role' then e.service_role
  end as expected,
  r.outcome,
  r.detail
from rls_expectations e
join rls_targets t using (table_name)
cross join rls_actors a
cross join lateral pg_temp.rls_try(
  a.db_role,
  a.claims,
  case e.command
    when 'select' then format('select count(*) from %s where %s', pg_temp.rls_table(e.table_name), t.target)
    when 'insert' then t.insert_sql
    when 'update' then format('update %s set created_at = created_at where %s', pg_temp.rls_table(e.table_name), t.target)
    when 'delete' then format('delete from %s where %s', pg_temp.rls_table(e.table_name), t.target)
  end,
  e.command = 'select'
) r;

-- -------------------------------------------------------------------------------------------------
-- Assertions
-- -------------------------------------------------------------------------------------------------

select plan(
  5
  + (select count(*)::integer from rls_targets)
  + (select count(*)::integer from rls_results)
  + 15
);

select set_eq(
  $$select tablename::text from pg_catalog.pg_tables where schemaname = 'public'$$,
  $$select distinct table_name from rls_expectations where table_name not like '%.%'$$,
  'every table in public has RLS expectations, and every expectation names a table in public'
);

select set_eq(
  $$select distinct table_name from rls_expectations where table_name like '%.%'$$,
  $$values ('billing.webhook_events'), ('billing.ai_cache'), ('billing.discount_codes')$$,
  'the internal tables that hold tenant or provider data are in the matrix too: no API role reaches them'
);

select is(
  (select count(*)::integer from (
     select table_name from rls_expectations group by table_name having count(*) <> 4
   ) incomplete),
  0,
  'every table has exactly one expectation per command (select, insert, update, delete)'
);

select set_eq(
  $$select table_name from rls_targets$$,
  $$select distinct table_name from rls_expectations$$,
  'every table in the expectations has a target row and an insert statement'
);

select is_empty(
  $$select c.relname from pg_catalog.pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relrowsecurity$$,
  'row level security is enabled on every table in public'
);

-- The targets are real: each picks exactly one fixture row, so 'none' can only mean RLS hid it.
select is(
  pg_temp.rls_target_count(t.table_name, t.target),
  1::bigint,
  format('the fixture has exactly one target row in public.%s', t.table_name)
)
from rls_targets t
order by t.table_name;

select is(
  r.outcome,
  r.expected,
  format('%s: %s on public.%s %s', r.description, r.command, r.table_name,
    case r.expected
      when 'rows' then 'returns the target row'
      when 'none' then case when r.command = 'select' then 'returns no rows' else 'changes no rows' end
      when 'ok' then 'succeeds'
      when 'error' then 'is refused'
    end)
  || case when r.outcome is distinct from r.expected then ' [got: ' || r.detail || ']' else '' end
)
from rls_results r
order by r.table_name, array_position(array['select', 'insert', 'update', 'delete'], r.command), r.ordinal;

-- -------------------------------------------------------------------------------------------------
-- Cross-tenant and catalog details the matrix does not show
-- -------------------------------------------------------------------------------------------------

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000004","role":"authenticated"}',
     $$select count(*) from public.subscriptions where organization_id = 'bbbbbbbb-0000-4000-8000-00000000000b'$$, true)).outcome,
  'rows',
  'the outsider does see the subscription of their own organization B'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000004","role":"authenticated"}',
     $$select count(*) from public.subscriptions$$, true)).detail,
  '1 row(s)',
  'the outsider sees exactly one subscription in total: their own organization''s'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000001","role":"authenticated"}',
     $$select count(*) from public.organizations$$, true)).detail,
  '1 row(s)',
  'the owner of A sees exactly one organization: A'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000003","role":"authenticated"}',
     $$select count(*) from public.organization_members$$, true)).detail,
  '3 row(s)',
  'a member of A sees the three memberships of A and none of B'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000003","role":"authenticated"}',
     $$select count(*) from public.usage_quotas where organization_id = 'bbbbbbbb-0000-4000-8000-00000000000b'$$, true)).outcome,
  'none',
  'a member of A reads none of B''s usage counters'
);

select is(
  (pg_temp.rls_try('anon', '{"role":"anon"}',
     $$select count(*) from public.billing_plans where code = 'rls_retired'$$, true)).outcome,
  'none',
  'anon cannot read an inactive plan'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000003","role":"authenticated"}',
     $$select count(*) from public.billing_plans where code = 'rls_retired'$$, true)).outcome,
  'rows',
  'a member of A can read the retired plan one of A''s subscriptions is on'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000004","role":"authenticated"}',
     $$select count(*) from public.billing_plans where code = 'rls_retired'$$, true)).outcome,
  'none',
  'the outsider cannot read a retired plan only organization A is on'
);

select is(
  (pg_temp.rls_try('anon', '{"role":"anon"}',
     $$select count(*) from public.billing_plans where code = 'rls_private'$$, true)).outcome,
  'none',
  'anon cannot read a private plan'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000004","role":"authenticated"}',
     $$select count(*) from public.billing_plans where code = 'rls_private'$$, true)).outcome,
  'none',
  'the outsider cannot read a private plan assigned only to organization A'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000003","role":"authenticated"}',
     $$select count(*) from public.billing_plans where code = 'rls_private'$$, true)).outcome,
  'rows',
  'a member of A reads the private plan assigned to A'
);

select is(
  (pg_temp.rls_try('anon', '{"role":"anon"}',
     $$select count(*) from public.credit_packs where code = 'rls_pack_retired'$$, true)).outcome,
  'none',
  'anon cannot read a retired credit pack'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000003","role":"authenticated"}',
     $$select count(*) from public.credit_packs where code = 'rls_pack_retired'$$, true)).outcome,
  'rows',
  'a member of A can read the retired credit pack one of A''s orders bought'
);

select is(
  (pg_temp.rls_try('authenticated', '{"sub":"a1111111-0000-4000-8000-000000000004","role":"authenticated"}',
     $$select count(*) from public.credit_packs where code = 'rls_pack_retired'$$, true)).outcome,
  'none',
  'the outsider cannot read a retired credit pack only organization A ordered'
);

select is(
  (pg_temp.rls_try('authenticated', '{"role":"authenticated"}',
     $$select count(*) from public.organizations$$, true)).outcome,
  'none',
  'a token without a subject (auth.uid() is null) reads no organizations'
);

select * from finish();
rollback;
