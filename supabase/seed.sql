-- Demo data for the local stack (runs once after the migrations on a fresh database; every insert
-- is `on conflict do nothing`, so running it again changes nothing).
--
-- Plans: Free, Basic and Pro (monthly and yearly), INR, prices in paise; Pro (monthly) also in USD
-- and EUR (public.plan_prices), with the exchange rates and the seller's LUT of the current
-- financial year, so a buyer abroad paying in USD is a zero-rated export.
-- Credit packs: 1,000 credits for ₹499 and 5,000 for ₹1,999 (before GST), valid for a year.
-- Discount codes: DIWALI20 (20 % off any plan, once) and LAUNCH500 (₹500 off Pro, the first three
-- periods, for a first purchase).
-- A demo owner (demo@supabill.local) and the demo organization.

-- -------------------------------------------------------------------------------------------------
-- Credit events (what a unit of an action costs; plans may name them, so they come first)
-- -------------------------------------------------------------------------------------------------

insert into public.credit_events (code, name, credits_per_unit)
values
  ('api_call_basic', 'A basic API call', 1),
  ('ai_inference', 'AI inference, per paisa of model cost', 1)
on conflict (code) do nothing;

-- -------------------------------------------------------------------------------------------------
-- AI model prices (paise per million tokens; demo figures near Groq's list prices in rupees; the
-- models have no discount for cached input)
-- -------------------------------------------------------------------------------------------------

insert into public.ai_model_prices
  (model, effective_from, input_paise_per_million, output_paise_per_million, cached_input_paise_per_million)
values
  ('llama-3.1-8b-instant', '2026-01-01 00:00:00+05:30', 430, 688, 430),
  ('llama-3.3-70b-versatile', '2026-01-01 00:00:00+05:30', 5074, 6794, 5074)
on conflict (model, effective_from) do nothing;

-- -------------------------------------------------------------------------------------------------
-- Plans
-- -------------------------------------------------------------------------------------------------

insert into public.billing_plans
  (code, name, description, tier, interval, price_cents, currency, trial_days, features, provider_config)
values
  (
    'free', 'Free', 'For trying things out.', 'free', 'month', 0, 'INR', 0,
    '{
      "ai_requests_per_minute": 10,
      "ai_prompts_per_minute": 5,
      "ai_prompts_per_day": 20,
      "groq_tokens_per_month": 50000,
      "max_watchlists": 3,
      "max_members": 1,
      "api_access": false,
      "support_level": "community",
      "premium_tools": [],
      "ai_models": ["llama-3.1-8b-instant"],
      "report_exports_per_day": 5,
      "client_metrics": ["report_exports"]
    }'::jsonb,
    '{}'::jsonb
  ),
  (
    'basic_monthly', 'Basic (monthly)', 'For individuals who use it every day.', 'basic', 'month', 49900, 'INR', 7,
    '{
      "ai_requests_per_minute": 10,
      "ai_prompts_per_minute": 10,
      "ai_prompts_per_day": 100,
      "groq_tokens_per_month": 1000000,
      "max_watchlists": 10,
      "max_members": 3,
      "api_access": false,
      "support_level": "email",
      "premium_tools": ["screener"],
      "ai_models": ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"],
      "credits_per_period": 1000,
      "credits_low_threshold": 100
    }'::jsonb,
    '{"razorpay": {"plan_id": "plan_basic_monthly_demo"}, "stripe": {"price_id": "price_basic_monthly_demo"}}'::jsonb
  ),
  (
    'basic_yearly', 'Basic (yearly)', 'Basic, billed yearly: two months free.', 'basic', 'year', 499000, 'INR', 0,
    '{
      "ai_requests_per_minute": 10,
      "ai_prompts_per_minute": 10,
      "ai_prompts_per_day": 100,
      "groq_tokens_per_month": 1000000,
      "max_watchlists": 10,
      "max_members": 3,
      "api_access": false,
      "support_level": "email",
      "premium_tools": ["screener"],
      "ai_models": ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"],
      "credits_per_period": 12000,
      "credits_low_threshold": 100
    }'::jsonb,
    '{"razorpay": {"plan_id": "plan_basic_yearly_demo"}, "stripe": {"price_id": "price_basic_yearly_demo"}}'::jsonb
  ),
  (
    'pro_monthly', 'Pro (monthly)', 'For teams and heavy users.', 'pro', 'month', 99900, 'INR', 7,
    '{
      "ai_requests_per_minute": 10,
      "ai_prompts_per_minute": 30,
      "ai_prompts_per_day": 500,
      "groq_tokens_per_month": 10000000,
      "max_watchlists": 50,
      "max_members": 20,
      "api_access": true,
      "support_level": "priority",
      "premium_tools": ["screener", "backtester", "alerts"],
      "ai_models": ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"],
      "credits_per_period": 5000,
      "credits_low_threshold": 500,
      "report_exports_per_day": 200,
      "client_metrics": ["report_exports"]
    }'::jsonb,
    '{"razorpay": {"plan_id": "plan_pro_monthly_demo"}, "stripe": {"price_id": "price_pro_monthly_demo"}}'::jsonb
  ),
  (
    'pro_yearly', 'Pro (yearly)', 'Pro, billed yearly: two months free.', 'pro', 'year', 999000, 'INR', 0,
    '{
      "ai_requests_per_minute": 10,
      "ai_prompts_per_minute": 30,
      "ai_prompts_per_day": 500,
      "groq_tokens_per_month": 10000000,
      "max_watchlists": 50,
      "max_members": 20,
      "api_access": true,
      "support_level": "priority",
      "premium_tools": ["screener", "backtester", "alerts"],
      "ai_models": ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"],
      "credits_per_period": 60000,
      "credits_low_threshold": 500
    }'::jsonb,
    '{"razorpay": {"plan_id": "plan_pro_yearly_demo"}, "stripe": {"price_id": "price_pro_yearly_demo"}}'::jsonb
  )
on conflict (code) do nothing;

-- A private plan (enterprise pricing): listed and sold only to the organizations it is assigned
-- to (public.plan_assignments; the demo organization below). Yearly, bought through checkout.
insert into public.billing_plans
  (code, name, description, tier, interval, price_cents, currency, trial_days, features, provider_config, private)
values
  (
    'enterprise_yearly', 'Enterprise (yearly)', 'For organizations with a contract: private, assigned by us.',
    'enterprise', 'year', 4999000, 'INR', 0,
    '{
      "ai_requests_per_minute": 60,
      "ai_prompts_per_minute": 60,
      "ai_prompts_per_day": null,
      "groq_tokens_per_month": 100000000,
      "max_watchlists": 500,
      "max_members": 200,
      "api_access": true,
      "support_level": "dedicated",
      "premium_tools": ["screener", "backtester", "alerts"],
      "ai_models": ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"],
      "credits_per_period": 600000,
      "credits_low_threshold": 5000
    }'::jsonb,
    '{}'::jsonb,
    true
  )
on conflict (code) do nothing;

-- -------------------------------------------------------------------------------------------------
-- Exports: Pro (monthly) in USD and EUR, the rates, the LUT of the current financial year
-- -------------------------------------------------------------------------------------------------

-- $12.00 and EUR 11.00 a month (cents, before GST).
insert into public.plan_prices (plan_id, currency, price_cents)
select p.id, x.currency, x.price_cents
from public.billing_plans p
cross join (values ('USD', 1200::bigint), ('EUR', 1100::bigint)) as x(currency, price_cents)
where p.code = 'pro_monthly'
on conflict do nothing;

-- Demo rates (rupees per unit) from the start of the financial year; an operator records the
-- day's rate with billing.operator_set_exchange_rate.
select billing.operator_set_exchange_rate(x.currency, x.rate,
         make_timestamptz(billing.financial_year(now()), 4, 1, 0, 0, 0, 'Asia/Kolkata'), 'demo rate (seed)')
from (values ('USD', 84.00), ('EUR', 91.50)) as x(currency, rate)
where not exists (select 1 from billing.exchange_rates r where r.currency = x.currency);

-- A demo LUT for the current financial year (ARN AA, Karnataka 29, filed in April, a serial):
-- exports are zero-rated under it (billing.operator_record_lut; docs/invoices.md).
select billing.operator_record_lut(
  fy::text || '-' || lpad(((fy + 1) % 100)::text, 2, '0'),
  'AA2904' || lpad((fy % 100)::text, 2, '0') || '000001Z',
  make_date(fy, 4, 1), 'demo LUT (seed)')
from (select billing.financial_year(now()) as fy) y
where not exists (select 1 from billing.lut_registrations l
                  where l.financial_year = y.fy::text || '-' || lpad(((y.fy + 1) % 100)::text, 2, '0'));

-- -------------------------------------------------------------------------------------------------
-- Credit packs (bought once at checkout; prices in paise before GST)
-- -------------------------------------------------------------------------------------------------

insert into public.credit_packs (code, name, description, credits, price_paise, currency, validity)
values
  ('credits_1000', '1,000 credits', 'A top-up for a busy month.', 1000, 49900, 'INR', interval '1 year'),
  ('credits_5000', '5,000 credits', 'Five times the credits for four times the price.', 5000, 199900, 'INR', interval '1 year')
on conflict (code) do nothing;

-- -------------------------------------------------------------------------------------------------
-- Discount codes (billing.create_discount_code checks the spec; created once)
-- -------------------------------------------------------------------------------------------------

select billing.create_discount_code('DIWALI20', '{"percent_bps": 2000, "max_redemptions": 1000}')
where not exists (select 1 from billing.discount_codes c where lower(c.code) = 'diwali20');
select billing.create_discount_code('LAUNCH500',
  '{"amount_paise": 50000, "duration": "repeating", "periods": 3, "plans": ["pro_monthly"], "first_purchase_only": true}')
where not exists (select 1 from billing.discount_codes c where lower(c.code) = 'launch500');

-- -------------------------------------------------------------------------------------------------
-- Demo owner and organization (fixed ids, so scripts and docs can refer to them)
-- -------------------------------------------------------------------------------------------------

insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
values (
  'd0d0d0d0-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'demo@supabill.local', now(),
  '{"provider": "email", "providers": ["email"]}'::jsonb, '{"full_name": "Demo Owner"}'::jsonb
)
on conflict (id) do nothing;

insert into public.organizations (id, name, billing_name, billing_email, state_code, timezone)
values (
  'd0d0d0d0-0000-4000-8000-0000000000a1', 'Demo Organization', 'Demo Organization Pvt Ltd',
  'demo@supabill.local', '29', 'Asia/Kolkata'
)
on conflict (id) do nothing;

insert into public.organization_members (organization_id, user_id, role)
values ('d0d0d0d0-0000-4000-8000-0000000000a1', 'd0d0d0d0-0000-4000-8000-000000000001', 'owner')
on conflict (organization_id, user_id) do nothing;

-- The demo organization may see and buy the private Enterprise plan (an operator does this with
-- billing.operator_assign_plan, which also writes the history; docs/operations.md).
insert into public.plan_assignments (organization_id, plan_id, contract_ref)
select 'd0d0d0d0-0000-4000-8000-0000000000a1', p.id, 'DEMO-ENT-001'
from public.billing_plans p
where p.code = 'enterprise_yearly'
  and not exists (select 1 from public.plan_assignments a
                  where a.organization_id = 'd0d0d0d0-0000-4000-8000-0000000000a1' and a.plan_id = p.id and a.ended_at is null);

-- The seller on the demo's GST invoices (Karnataka). A real deployment sets its own.
update public.billing_settings
set seller_legal_name = 'Supabill Demo Private Limited',
    seller_gstin = '29AAGCS1234K1Z' || billing.gstin_check_char('29AAGCS1234K1Z'),
    seller_state_code = '29',
    seller_address_line1 = '100 Residency Road',
    seller_city = 'Bengaluru',
    seller_postal_code = '560025',
    seller_email = 'billing@supabill.local',
    app_success_url = 'http://127.0.0.1:3000/billing/success',
    app_failure_url = 'http://127.0.0.1:3000/billing/failure'
where id;
