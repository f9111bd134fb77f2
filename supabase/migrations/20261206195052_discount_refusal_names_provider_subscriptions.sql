-- What this migration does: billing.checkout_discount's refusal of a code on a recurring provider
-- checkout names provider subscriptions (Razorpay, Stripe), not Razorpay alone: a Stripe
-- subscription checkout is refused a code the same way (each renewal is a debit of the plan's full
-- amount, which a once or repeating code's later periods would not match).
--
-- discount_refusal_names_provider_subscriptions: drafted by `npm run db:diff -- discount_refusal_names_provider_subscriptions` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.

SET local check_function_bodies = off;

CREATE OR REPLACE FUNCTION billing.checkout_discount (
  p_organization_id uuid,
  p_plan            public.billing_plans,
  p_code            text,
  p_at              timestamp with time zone,
  p_recurring       boolean                  DEFAULT false
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_list bigint := billing.plan_price_for(p_organization_id, p_plan, p_at);
  v_code billing.discount_codes;
  v_redemption public.discount_redemptions;
  v_terms jsonb;
  v_discount bigint := 0;
begin
  if nullif(btrim(coalesce(p_code, '')), '') is not null then
    select * into v_code from billing.discount_codes c where lower(c.code) = lower(btrim(p_code));
    if v_code.id is null then
      perform billing.refuse_discount('discount_invalid', pg_catalog.format('no discount code "%s"', left(btrim(p_code), 40)));
    end if;
    if not v_code.active then
      perform billing.refuse_discount('discount_expired',
        pg_catalog.format('discount code %s has ended (%s)', v_code.code, coalesce(v_code.deactivated_reason, 'deactivated')));
    end if;
    if v_code.valid_from is not null and p_at < v_code.valid_from then
      perform billing.refuse_discount('discount_invalid',
        pg_catalog.format('discount code %s is valid from %s', v_code.code, v_code.valid_from));
    end if;
    if v_code.valid_until is not null and p_at >= v_code.valid_until then
      perform billing.refuse_discount('discount_expired',
        pg_catalog.format('discount code %s expired at %s', v_code.code, v_code.valid_until));
    end if;
    if v_code.plans is not null and not (p_plan.code = any (v_code.plans)) then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('discount code %s applies only to the plans %s, not to %s', v_code.code,
                          pg_catalog.array_to_string(v_code.plans, ', '), p_plan.code));
    end if;
    if coalesce(p_recurring, false) then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('plan %s renews as a provider subscription (Razorpay, Stripe), whose renewals charge the plan''s full amount: discount code %s cannot apply to it (pay with PayU)',
                          p_plan.code, v_code.code));
    end if;
    if v_code.amount_paise is not null and p_plan.currency <> 'INR' then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('discount code %s is an amount in INR and plan %s is priced in %s', v_code.code, p_plan.code, p_plan.currency));
    end if;
    if v_code.first_purchase_only and exists (
      select 1 from public.orders o where o.organization_id = p_organization_id and o.status = 'paid') then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('discount code %s is for a first purchase only, and this organization has paid before', v_code.code));
    end if;
    -- The order this checkout creates supersedes the organization's open plan orders: their
    -- reservations of the code do not count here (billing.reserve_discount checks again).
    perform billing.check_discount_limits(v_code, p_organization_id, p_at, true);
    -- The billing interval of the plan it is redeemed on: its periods are of that length, so it
    -- carries only to plans of the same interval (a monthly "3 periods" is not 3 years).
    v_terms := billing.discount_terms(v_code) || pg_catalog.jsonb_build_object('interval', p_plan.interval);
  elsif not coalesce(p_recurring, false) then
    select r.* into v_redemption
    from public.discount_redemptions r
    where r.organization_id = p_organization_id and r.status = 'redeemed'
      and r.terms ->> 'duration' in ('repeating', 'forever')
      and (not r.terms ? 'plans' or r.terms -> 'plans' ? p_plan.code)
      and (r.terms ->> 'duration' = 'forever'
           or (select count(*) from public.orders o where o.discount_redemption_id = r.id and o.status = 'paid')
              < (r.terms ->> 'periods')::integer)
      and (not r.terms ? 'amount_paise' or p_plan.currency = 'INR')
      and (not r.terms ? 'interval' or r.terms ->> 'interval' = p_plan.interval::text)
      and not exists (select 1 from billing.discount_codes c
                      where c.id = r.discount_code_id and c.redemptions_ended_at is not null)
    order by r.created_at desc
    limit 1;
    v_terms := v_redemption.terms;
  end if;
  v_discount := billing.discount_amount(v_terms, v_list);
  return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'list_cents', v_list, 'discount_cents', v_discount, 'price_cents', v_list - v_discount,
    'code_id', v_code.id, 'redemption_id', v_redemption.id, 'terms', v_terms,
    'code', coalesce(v_code.code, v_terms ->> 'code')));
end;
$function$;
