-- discounts_with_price_overrides: drafted by `npm run db:diff -- discounts_with_price_overrides` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.
--
-- What this migration does: discount codes and private enterprise pricing were drafted side by
-- side (20261206190010_discount_codes, 20261206190011_private_enterprise_pricing); the second
-- re-created create_checkout_order and plan_change_quote in their old signatures without the
-- discount. This brings the three functions both touched (create_checkout_order, issue_invoice,
-- plan_change_quote) to their joined bodies: the organization's price (an override) less the
-- discount, the override's contract on the order and the invoice line. Nothing a diff cannot know.

SET local check_function_bodies = off;

DROP FUNCTION "billing"."create_checkout_order"(uuid, text, text);

DROP FUNCTION "billing"."plan_change_quote"(uuid, text, timestamp WITH time zone);

CREATE OR REPLACE FUNCTION billing.create_checkout_order (
  p_organization_id uuid,
  p_plan_code       text,
  p_provider        text,
  p_discount_code   text DEFAULT NULL::text
)
  RETURNS SETOF billing.checkout_order
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_order public.orders;
  v_rzp_plan text;
  v_live public.subscriptions;
  v_live_plan public.billing_plans;
  v_open public.orders;
  v_price jsonb;
  v_discounted boolean;
  v_override public.price_overrides;
begin
  if p_provider is null or p_provider not in ('payu', 'razorpay') then
    raise exception 'provider must be "payu" or "razorpay"' using errcode = 'invalid_parameter_value';
  end if;
  perform billing.require_role(p_organization_id, billing.managers(), 'buy a plan');
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  perform billing.require_plan_available(p_organization_id, v_plan);
  -- The organization's price now (its price override, else the list price): the order keeps it.
  v_override := billing.price_override_at(p_organization_id, v_plan.id, v_now);
  v_plan.price_cents := billing.plan_price_for(p_organization_id, v_plan, v_now);
  if v_plan.price_cents <= 0 or v_plan.tier = 'free' then
    raise exception 'plan "%" is free: there is nothing to pay', v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_provider = 'payu' and v_plan.currency <> 'INR' then
    raise exception 'plan "%" is in %: PayU accepts only INR', v_plan.code, v_plan.currency
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_provider = 'razorpay' and v_plan.price_cents < 100 then
    raise exception 'plan "%" costs less than Razorpay''s minimum of 100 paise', v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  -- One checkout of an organization at a time (the payment path takes the same lock), so the
  -- checks below see what a concurrent checkout or payment wrote.
  perform 1 from public.organizations o where o.id = p_organization_id for no key update;
  v_rzp_plan := case when p_provider = 'razorpay' then nullif(v_plan.provider_config #>> '{razorpay,plan_id}', '') end;
  -- Razorpay charges a subscription its plan's own amount: while a price override of the plan is
  -- current or to come, the organization buys it as one-time Razorpay orders (renewed through
  -- checkout), never a mandate at the list price.
  if v_rzp_plan is not null and exists (
    select 1 from public.price_overrides o
    where o.organization_id = p_organization_id and o.plan_id = v_plan.id
      and (o.valid_until is null or o.valid_until > v_now) and (o.ended_at is null or o.ended_at > v_now)
  ) then
    v_rzp_plan := null;
  end if;

  select * into v_live from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due');
  if v_live.status in ('active', 'past_due') and v_live.plan_id <> v_plan.id
     and not (v_rzp_plan is not null and v_live.provider = 'razorpay' and v_live.provider_subscription_id is not null
              and v_live.cancel_at_period_end) then
    select * into v_live_plan from public.billing_plans p where p.id = v_live.plan_id;
    raise exception 'the organization is on plan "%" until %: use change_plan to switch to "%" (upgrades are prorated, downgrades start at the period end)',
      v_live_plan.code, v_live.current_period_end, v_plan.code
      using errcode = 'object_not_in_prerequisite_state', hint = 'use_change_plan';
  end if;
  select * into v_open from public.orders o
  where o.organization_id = p_organization_id and o.kind = 'new' and o.status in ('created', 'pending')
    and (o.provider_subscription_id is not null or o.metadata ->> 'recurring' = 'true')
    and (o.expires_at is null or o.expires_at > v_now)
  order by o.created_at desc
  limit 1;
  if v_open.id is not null then
    raise exception 'a Razorpay subscription checkout (order %) is still open until %: complete it, or use change_plan once it is paid',
      v_open.receipt, v_open.expires_at
      using errcode = 'object_not_in_prerequisite_state', hint = 'recurring_subscription_exists';
  end if;
  if v_rzp_plan is not null and v_live.provider = 'razorpay' and v_live.provider_subscription_id is not null
     and not v_live.cancel_at_period_end then
    raise exception 'the organization''s Razorpay subscription % renews automatically: a second one would charge twice (use change_plan to switch plans)',
      v_live.provider_subscription_id
      using errcode = 'object_not_in_prerequisite_state', hint = 'recurring_subscription_exists';
  end if;

  -- The price: the organization's list price less a discount (a code given, refused with its
  -- reason; or a repeating redemption carried to this renewal), before any order exists.
  v_price := billing.checkout_discount(p_organization_id, v_plan, p_discount_code, v_now, v_rzp_plan is not null);
  v_discounted := v_price ? 'terms';
  if p_provider = 'razorpay' and (v_price ->> 'price_cents')::bigint between 1 and 99 then
    perform billing.refuse_discount('discount_not_applicable',
      pg_catalog.format('with discount code %s plan "%s" costs less than Razorpay''s minimum of 100 paise: pay with PayU',
                        v_price ->> 'code', v_plan.code));
  end if;

  -- A price of 0 (a discount covering it) is completed below, without a provider.
  insert into public.orders
    (organization_id, plan_id, provider, kind, amount_cents, currency, status, created_by, expires_at, metadata,
     list_cents, discount_cents, discount_redemption_id)
  values
    (p_organization_id, v_plan.id,
     case when (v_price ->> 'price_cents')::bigint = 0 then 'manual' else p_provider end::public.payment_provider,
     'new', (v_price ->> 'price_cents')::bigint, v_plan.currency,
     case when p_provider = 'payu' or (v_price ->> 'price_cents')::bigint = 0 then 'pending' else 'created' end::public.order_status,
     v_user_id, v_now + interval '1 day',
     pg_catalog.jsonb_build_object('plan_code', v_plan.code, 'recurring', v_rzp_plan is not null,
                                   'period_price_cents', (v_price ->> 'price_cents')::bigint)
       || case when v_discounted then pg_catalog.jsonb_build_object('discount_code', v_price ->> 'code', 'discount_terms', v_price -> 'terms')
               else '{}'::jsonb end
       || case when v_override.id is not null then pg_catalog.jsonb_build_object(
            'price_override_id', v_override.id, 'contract_ref', v_override.contract_ref,
            'list_price_paise', (select p.price_cents from public.billing_plans p where p.id = v_plan.id))
          else '{}'::jsonb end,
     case when v_discounted then (v_price ->> 'list_cents')::bigint end,
     case when v_discounted then (v_price ->> 'discount_cents')::bigint else 0 end,
     (v_price ->> 'redemption_id')::uuid)
  returning * into v_order;
  if v_discounted then
    perform billing.reserve_discount(v_order, v_price);
    select * into v_order from public.orders o where o.id = v_order.id;
  end if;
  if v_order.amount_cents = 0 then
    v_order := billing.complete_free_order(v_order);
  end if;

  return next billing.checkout_answer(v_order, v_user_id, v_rzp_plan);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.issue_invoice (
  p_order_id         uuid,
  p_payment_event_id uuid
)
  RETURNS uuid
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_order public.orders%rowtype;
  v_settings public.billing_settings%rowtype;
  v_org public.organizations%rowtype;
  v_plan public.billing_plans%rowtype;
  v_pack public.credit_packs%rowtype;
  v_description text;
  v_invoice_id uuid;
  v_seller_state text;
  v_supply_type text;
  v_place_of_supply text;
  v_tax record;
  v_now timestamptz := billing.now();
  v_financial_year integer := billing.financial_year(v_now);
  v_serial bigint;
begin
  select * into v_order from public.orders o where o.id = p_order_id for update;
  if not found then
    raise exception 'order % does not exist', p_order_id using errcode = 'no_data_found';
  end if;

  select i.id into v_invoice_id from public.invoices i where i.order_id = p_order_id;
  if found then
    return v_invoice_id;
  end if;

  if p_payment_event_id is not null and not exists (
    select 1 from public.payment_events e
    where e.id = p_payment_event_id and e.order_id = p_order_id and e.status = 'captured'
  ) then
    raise exception 'payment event % is not a captured payment of order %', p_payment_event_id, p_order_id
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_settings from public.billing_settings s where s.id;
  v_seller_state := coalesce(v_settings.seller_state_code, pg_catalog.left(v_settings.seller_gstin, 2));
  if v_settings.seller_legal_name is null or v_seller_state is null then
    raise exception 'billing_settings.seller_legal_name and seller_state_code (or seller_gstin) must be set before invoices can be issued'
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  select * into strict v_org from public.organizations o where o.id = v_order.organization_id;
  -- What the order sold, as its line says it: a plan, or a credit pack with its credits.
  if v_order.credit_pack_id is not null then
    select * into strict v_pack from public.credit_packs cp where cp.id = v_order.credit_pack_id;
    v_description := pg_catalog.format('%s - credit pack (%s credits%s)', v_pack.name,
      coalesce(v_order.metadata ->> 'credits', v_pack.credits::text),
      case when v_order.metadata ->> 'credit_validity' is not null
           then ', valid for ' || (v_order.metadata ->> 'credit_validity') else '' end);
  else
    select * into strict v_plan from public.billing_plans p where p.id = v_order.plan_id;
    v_description := v_plan.name || case v_order.kind
      when 'renewal' then ' - subscription renewal'
      when 'upgrade' then ' - plan upgrade (prorated)'
      else ' - subscription'
    end;
    -- A price negotiated under a contract (a price override, billing.plan_price_for): named on the line.
    if coalesce(v_order.metadata ->> 'contract_ref', v_order.metadata #>> '{quote,to_contract_ref}') is not null then
      v_description := v_description || pg_catalog.format(' (contract price, %s)',
        coalesce(v_order.metadata ->> 'contract_ref', v_order.metadata #>> '{quote,to_contract_ref}'));
    end if;
  end if;

  -- The tax is the order's quote (billing.quote_order_tax), recomputed the same way: the invoice
  -- total is what the order charged, whatever changed in the settings or the profile since.
  if v_order.supply_type is null or v_order.taxable_cents is null then
    raise exception 'order % was priced without GST (the seller''s state was not set when it was created): no tax invoice', v_order.receipt
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  v_supply_type := v_order.supply_type;
  v_place_of_supply := v_order.place_of_supply_state_code;
  select * into v_tax
  from billing.compute_line_tax(case when v_order.prices_include_tax then v_order.amount_cents else v_order.taxable_cents end,
                                v_order.gst_rate_bp, v_supply_type, v_order.prices_include_tax);
  if v_tax.total_cents <> v_order.amount_cents then
    raise exception 'order % charges % but its tax quote totals %', v_order.receipt, v_order.amount_cents, v_tax.total_cents
      using errcode = 'data_exception';
  end if;

  v_serial := billing.next_serial('invoice', v_financial_year);

  perform pg_catalog.set_config('billing.issuing', 'invoices', true);
  insert into public.invoices (
    organization_id, order_id, payment_event_id, invoice_number, financial_year, serial,
    issued_at, invoice_date, currency, supply_type, place_of_supply_state_code, buyer_gstin,
    seller, buyer, prices_include_tax,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents
  ) values (
    v_org.id, v_order.id, p_payment_event_id,
    billing.format_document_number(v_settings.invoice_prefix, v_financial_year, v_serial), v_financial_year, v_serial,
    v_now, (v_now at time zone 'Asia/Kolkata')::date, v_order.currency, v_supply_type::public.supply_type, v_place_of_supply, v_org.gstin,
    billing.invoice_party(v_settings.seller_legal_name, v_settings.seller_gstin, v_seller_state,
                          v_settings.seller_address_line1, v_settings.seller_address_line2, v_settings.seller_city,
                          v_settings.seller_postal_code, 'IN', v_settings.seller_email),
    billing.invoice_party(coalesce(v_org.billing_name, v_org.name), v_org.gstin, v_org.state_code,
                          v_org.billing_address_line1, v_org.billing_address_line2, v_org.billing_city,
                          v_org.billing_postal_code, v_org.billing_country, v_org.billing_email),
    v_order.prices_include_tax,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents
  )
  returning id into v_invoice_id;

  perform pg_catalog.set_config('billing.issuing', 'invoice_lines', true);
  insert into public.invoice_lines (
    invoice_id, organization_id, line_number, plan_id, credit_pack_id, description, sac_code, quantity,
    gst_rate_bp, cgst_rate_bp, sgst_rate_bp, igst_rate_bp,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents,
    list_cents, discount_cents, discount_code
  ) values (
    v_invoice_id, v_org.id, 1, v_plan.id, v_pack.id, v_description,
    v_settings.sac_code, 1,
    case when v_supply_type = 'export' then 0 else v_order.gst_rate_bp end,
    v_tax.cgst_rate_bp, v_tax.sgst_rate_bp, v_tax.igst_rate_bp,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents,
    v_order.list_cents, v_order.discount_cents, v_order.metadata ->> 'discount_code'
  );
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_invoice_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.plan_change_quote (
  p_organization_id uuid,
  p_plan_code       text,
  p_at              timestamp with time zone,
  p_discount_code   text                     DEFAULT NULL::text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_sub public.subscriptions;
  v_from public.billing_plans;
  v_to public.billing_plans;
  v_unused record;
  v_kind text;
  v_method text;
  v_amount bigint := 0;
  v_lines jsonb := '[]'::jsonb;
  v_effective_at timestamptz;
  v_recurring boolean;
  v_paid_start timestamptz;
  v_timezone text;
  v_price jsonb;
  v_to_price bigint;
  v_discount jsonb := '{}'::jsonb;
begin
  select * into v_to from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_to.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  perform billing.require_plan_available(p_organization_id, v_to);
  if v_to.tier = 'free' or v_to.price_cents = 0 then
    raise exception 'plan "%" is the free plan: to move to it, cancel the subscription (cancel_subscription)', v_to.code
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due');
  select * into v_from from public.billing_plans p where p.id = v_sub.plan_id;
  perform billing.refuse_plan_change(v_sub, v_from, v_to, p_at);

  -- The organization's prices (billing.plan_price_for: a price override, else the list price):
  -- the new plan's now, the current plan's as it was when its paid period started. From here on
  -- price_cents of both records is what this organization pays.
  v_paid_start := greatest(v_sub.current_period_start, coalesce(v_sub.trial_end, v_sub.current_period_start));
  v_to.price_cents := billing.plan_price_for(p_organization_id, v_to, p_at);
  v_from.price_cents := billing.plan_price_for(p_organization_id, v_from, v_paid_start);

  v_kind := case when billing.is_upgrade(v_from, v_to) then 'upgrade' else 'downgrade' end;
  v_recurring := v_sub.provider = 'razorpay' and v_sub.provider_subscription_id is not null;
  -- The paid part of the period: a trial paid before its end keeps current_period_start at the
  -- trial start and runs its first paid period from trial_end (apply_captured_payment extends from
  -- the period end), so trial days are not paid time. From there, unused <= cycles x price.
  v_unused := billing.unused_value(billing.paid_period_price(v_sub, v_from, p_at), v_from.interval, v_paid_start,
                                  v_sub.current_period_end, p_at);
  if v_kind = 'downgrade' and not v_recurring and nullif(btrim(coalesce(p_discount_code, '')), '') is not null then
    perform billing.refuse_discount('discount_not_applicable',
      pg_catalog.format('a downgrade to %s starts at the period end: use the code when paying for it', v_to.code));
  end if;
  v_price := billing.checkout_discount(p_organization_id, v_to, p_discount_code, p_at, v_recurring);
  v_to_price := (v_price ->> 'price_cents')::bigint;
  if v_price ? 'terms' and v_kind = 'upgrade' and not v_recurring then
    v_discount := pg_catalog.jsonb_build_object(
      'list_cents', (v_price ->> 'list_cents')::bigint, 'discount_cents', (v_price ->> 'discount_cents')::bigint,
      'discount_code', v_price ->> 'code', 'discount', v_price);
  end if;
  select g.timezone into v_timezone from public.organizations g where g.id = p_organization_id;

  if v_recurring then
    -- Razorpay charges a subscription's plan in full: cancel this one at cycle end, buy the new one.
    v_method := 'cancel_and_resubscribe';
    v_amount := v_to.price_cents;
    v_effective_at := case when v_kind = 'upgrade' then p_at else v_sub.current_period_end end;
    v_lines := pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'description', pg_catalog.format('%s, first charge of a new Razorpay subscription (%s per %s)',
                                       v_to.name, billing.format_money(v_to.price_cents, v_to.currency), v_to.interval),
      'amount_cents', v_to.price_cents));
  elsif v_kind = 'upgrade' then
    v_effective_at := p_at;
    v_lines := pg_catalog.jsonb_build_array(
      pg_catalog.jsonb_build_object(
        'description', pg_catalog.format('%s, one %s from the payment', v_to.name, v_to.interval),
        'amount_cents', (v_price ->> 'list_cents')::bigint))
      || case when v_discount ? 'discount' then pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
           'description', pg_catalog.format('Discount %s', v_price ->> 'code'),
           'amount_cents', -(v_price ->> 'discount_cents')::bigint)) else '[]'::jsonb end
      || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'description', pg_catalog.format('Unused time on %s: %s of %s seconds of the current period', v_from.name,
                                         v_unused.seconds_left, v_unused.period_seconds),
        'amount_cents', -v_unused.unused_cents));
    v_amount := v_to_price - v_unused.unused_cents;
    if v_amount <= 0 and v_price ? 'code_id' then
      perform billing.refuse_discount('discount_not_applicable',
        pg_catalog.format('the unused value of %s already pays for %s: nothing is left for code %s to discount',
                          v_from.code, v_to.code, v_price ->> 'code'));
    end if;
    if v_amount < 0 then
      v_lines := v_lines || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'description', 'Credit above the new plan''s price (not refunded)',
        'amount_cents', -v_amount));
      v_amount := 0;
    end if;
    v_method := case when v_amount > 0 then 'prorated_order' else 'immediate' end;
  else
    v_method := 'scheduled';
    v_effective_at := v_sub.current_period_end;
  end if;

  return pg_catalog.jsonb_build_object(
    'kind', v_kind,
    'method', v_method,
    'amount_cents', v_amount,
    'currency', v_to.currency,
    'lines', v_lines,
    'effective_at', v_effective_at,
    'seconds_left', v_unused.seconds_left,
    'period_seconds', v_unused.period_seconds,
    'cycles', v_unused.cycles,
    'unused_cents', v_unused.unused_cents,
    'subscription_id', v_sub.id,
    'from_plan_code', v_from.code,
    'to_plan_code', v_to.code,
    'current_period_start', v_sub.current_period_start,
    'paid_period_start', v_paid_start,
    'current_period_end', v_sub.current_period_end,
    'new_period_end', billing.period_end_after(v_effective_at, v_to.interval, v_timezone),
    'period_price_cents', v_to_price,
    'to_price_cents', v_to.price_cents,
    'from_price_cents', v_from.price_cents,
    'to_contract_ref', (billing.price_override_at(p_organization_id, v_to.id, p_at)).contract_ref) || v_discount;
end;
$function$;
