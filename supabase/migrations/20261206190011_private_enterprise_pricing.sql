-- private_enterprise_pricing: drafted by `npm run db:diff -- private_enterprise_pricing` from the difference between the database the
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
-- What this migration does: private enterprise pricing (issue 25). A plan can be private
-- (billing_plans.private): listed and sold only to the organizations it is assigned to
-- (public.plan_assignments; the plans' policies and billing.require_plan_available in checkout,
-- change_plan and its preview, start_trial). An organization can get a negotiated price for a plan
-- over a validity period under a contract reference (public.price_overrides); every price of an
-- order, a renewal, a proration, a preview or a reminder is read through billing.plan_price_for,
-- and an order keeps the price it was created at. Only operators set them
-- (billing.operator_assign_plan, operator_unassign_plan, operator_set_price_override,
-- operator_end_price_override), each with a reason, written to subscription_history (no
-- subscription row changes: subscription_id null) with the words in billing.operator_notes.
--
-- Nothing added by hand: every existing plan is public (the column's default), no organization
-- has an assignment or an override, so every price read stays the list price it was. No private
-- plan is created here: supabase/seed.sql has the demo's, for the local stack only.

SET local check_function_bodies = off;

DROP POLICY "Signed-in users can read active plans and their organizations' " ON "public"."billing_plans";

DROP POLICY "Visitors can read active plans" ON "public"."billing_plans";

CREATE TABLE "public"."plan_assignments" (
  "id"              uuid                     NOT NULL DEFAULT gen_random_uuid(),
  "organization_id" uuid                     NOT NULL,
  "plan_id"         uuid                     NOT NULL,
  "contract_ref"    text,
  "created_at"      timestamp with time zone NOT NULL DEFAULT now(),
  "ended_at"        timestamp with time zone,
  CONSTRAINT "plan_assignments_contract_ref_check" CHECK (((contract_ref IS NULL) OR ((length(btrim(contract_ref)) >= 1) AND (length(btrim(contract_ref)) <= 200)))),
  CONSTRAINT "plan_assignments_pkey" PRIMARY KEY (id)
);

ALTER TABLE "public"."plan_assignments"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."plan_assignments" FROM "anon";

CREATE TABLE "public"."price_overrides" (
  "id"              uuid                     NOT NULL DEFAULT gen_random_uuid(),
  "organization_id" uuid                     NOT NULL,
  "plan_id"         uuid                     NOT NULL,
  "price_paise"     bigint                   NOT NULL,
  "valid_from"      timestamp with time zone NOT NULL,
  "valid_until"     timestamp with time zone,
  "contract_ref"    text                     NOT NULL,
  "created_at"      timestamp with time zone NOT NULL DEFAULT now(),
  "ended_at"        timestamp with time zone,
  CONSTRAINT "price_overrides_contract_ref_check" CHECK (((length(btrim(contract_ref)) >= 1) AND (length(btrim(contract_ref)) <= 200))),
  CONSTRAINT "price_overrides_period" CHECK (((valid_until IS NULL) OR (valid_until > valid_from))),
  CONSTRAINT "price_overrides_pkey" PRIMARY KEY (id),
  CONSTRAINT "price_overrides_price_positive" CHECK ((price_paise > 0))
);

ALTER TABLE "public"."price_overrides"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."price_overrides" FROM "anon";

ALTER TABLE "public"."billing_plans"
  ADD COLUMN "private" boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION billing.create_checkout_order (
  p_organization_id uuid,
  p_plan_code       text,
  p_provider        text
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

  insert into public.orders
    (organization_id, plan_id, provider, kind, amount_cents, currency, status, created_by, expires_at, metadata)
  values
    (p_organization_id, v_plan.id, p_provider::public.payment_provider, 'new', v_plan.price_cents, v_plan.currency,
     case when p_provider = 'payu' then 'pending' else 'created' end::public.order_status, v_user_id, v_now + interval '1 day',
     pg_catalog.jsonb_build_object('plan_code', v_plan.code, 'recurring', v_rzp_plan is not null)
       || case when v_override.id is not null then pg_catalog.jsonb_build_object(
            'price_override_id', v_override.id, 'contract_ref', v_override.contract_ref,
            'list_price_paise', (select p.price_cents from public.billing_plans p where p.id = v_plan.id))
          else '{}'::jsonb end)
  returning * into v_order;

  return next billing.checkout_answer(v_order, v_user_id, v_rzp_plan);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.dunning_batch (
  p_limit integer
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_grace interval := billing.grace_interval();
  v_n integer;
begin
  with due as (
    select s.id, s.organization_id, s.current_period_end, p.id as plan_id, p.code as plan_code,
           billing.plan_price_for(s.organization_id, p, v_now) as price_cents, p.currency,
           case when v_now < s.current_period_end + interval '2 days' then 1 else 3 end as day
    from public.subscriptions s
    join public.billing_plans p on p.id = s.plan_id
    where s.status in ('active', 'past_due') and not s.cancel_at_period_end
      and s.current_period_end <= v_now and s.current_period_end + v_grace > v_now
  ), fresh as (
    select d.*, pg_catalog.format('dunning_reminder:d%s:%s:%s', d.day, d.id,
                                  extract(epoch from d.current_period_end)::bigint) as dedupe_key
    from due d
  ), queued as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select f.organization_id, f.id, 'dunning_reminder',
           pg_catalog.jsonb_build_object('day', f.day, 'plan_id', f.plan_id, 'plan_code', f.plan_code,
                                         'amount_cents', f.price_cents, 'currency', f.currency,
                                         'period_end', f.current_period_end,
                                         'grace_ends_at', f.current_period_end + v_grace),
           f.dedupe_key
    from fresh f
    where not exists (select 1 from public.notifications n where n.dedupe_key = f.dedupe_key)
    order by f.current_period_end
    limit p_limit
    on conflict (dedupe_key) do nothing
    returning 1
  )
  select count(*) into v_n from queued;
  return v_n;
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
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents
  ) values (
    v_invoice_id, v_org.id, 1, v_plan.id, v_pack.id, v_description,
    v_settings.sac_code, 1,
    case when v_supply_type = 'export' then 0 else v_order.gst_rate_bp end,
    v_tax.cgst_rate_bp, v_tax.sgst_rate_bp, v_tax.igst_rate_bp,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents
  );
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_invoice_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.log_operator_pricing (
  p_organization_id uuid,
  p_action          text,
  p_plan_id         uuid,
  p_reason          text,
  p_metadata        jsonb
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_history_id uuid;
begin
  if p_action not in ('plan_assigned', 'plan_unassigned', 'price_override_set', 'price_override_ended') then
    raise exception 'not an operator pricing action: %', p_action using errcode = 'invalid_parameter_value';
  end if;
  insert into public.subscription_history
    (organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status, new_status,
     actor_kind, actor_id, reason, metadata, effective_at, created_at)
  values
    (p_organization_id, null, p_action, p_plan_id, p_plan_id, null, null,
     'operator', null, 'by an operator', coalesce(p_metadata, '{}'::jsonb), billing.now(), pg_catalog.clock_timestamp())
  returning id into v_history_id;
  insert into billing.operator_notes (history_id, organization_id, reason)
  values (v_history_id, p_organization_id, p_reason);
  return v_history_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.notification_context (
  p_notification_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_note public.notifications;
  v_org public.organizations;
  v_sub public.subscriptions;
  v_plan public.billing_plans;
  v_old public.billing_plans;
  v_settings public.billing_settings;
  v_action billing.provider_actions;
  v_amount bigint;
  v_currency text;
begin
  select * into v_note from public.notifications n where n.id = p_notification_id;
  if not found then
    return null;
  end if;
  select * into v_org from public.organizations o where o.id = v_note.organization_id;
  select * into v_sub from public.subscriptions s where s.id = v_note.subscription_id;
  select * into v_settings from public.billing_settings s limit 1;
  select * into v_plan from public.billing_plans p
  where p.id = coalesce(billing.jsonb_uuid(v_note.payload ->> 'new_plan_id'),
                        billing.jsonb_uuid(v_note.payload ->> 'plan_id'),
                        (select x.id from public.billing_plans x where x.code = v_note.payload ->> 'plan_code'),
                        v_sub.plan_id);
  select * into v_old from public.billing_plans p where p.id = billing.jsonb_uuid(v_note.payload ->> 'old_plan_id');
  if v_note.kind = 'provider_action_failed' and v_note.payload ->> 'kind' = 'refund' then
    select * into v_action from billing.provider_actions a
    where a.id = billing.jsonb_uuid(v_note.payload ->> 'provider_action_id');
  end if;

  if v_note.kind in ('payment_failed', 'payment_disputed', 'payment_captured') and v_note.payload ->> 'amount_cents' ~ '^[0-9]{1,15}$' then
    v_amount := (v_note.payload ->> 'amount_cents')::bigint;
    v_currency := coalesce(v_note.payload ->> 'currency', v_plan.currency, 'INR');
  elsif v_action.id is not null and v_action.payload ->> 'amount_paise' ~ '^[0-9]{1,15}$' then
    v_amount := (v_action.payload ->> 'amount_paise')::bigint;
    v_currency := coalesce(v_action.payload ->> 'currency', 'INR');
  elsif v_plan.id is not null then
    select q.amount_cents into v_amount
    from billing.order_tax_quote(v_org.id,
                                 billing.plan_price_for(v_org.id, v_plan, coalesce(v_sub.current_period_end, billing.now())),
                                 coalesce(v_settings.prices_include_tax, false)
                                 or v_sub.provider_subscription_id is not null, v_plan.currency) q;
    v_currency := v_plan.currency;
  end if;

  return pg_catalog.jsonb_build_object(
    'organization', pg_catalog.jsonb_build_object('id', v_org.id, 'name', v_org.name,
                                                  'billing_name', v_org.billing_name, 'timezone', v_org.timezone),
    'seller_legal_name', v_settings.seller_legal_name,
    'app_success_url', v_settings.app_success_url,
    'plan', case when v_plan.id is not null then pg_catalog.jsonb_build_object(
              'id', v_plan.id, 'code', v_plan.code, 'name', v_plan.name, 'interval', v_plan.interval) end,
    'old_plan', case when v_old.id is not null then pg_catalog.jsonb_build_object(
              'code', v_old.code, 'name', v_old.name) end,
    'amount_cents', v_amount,
    'currency', v_currency,
    'refund', case when v_action.id is not null then pg_catalog.jsonb_build_object(
              'provider_payment_id', v_action.target ->> 'provider_payment_id',
              'amount_cents', v_amount, 'currency', v_currency) end,
    'subscription', case when v_sub.id is not null then pg_catalog.jsonb_build_object(
              'id', v_sub.id, 'status', v_sub.status, 'current_period_end', v_sub.current_period_end,
              'cancel_at_period_end', v_sub.cancel_at_period_end, 'provider', v_sub.provider,
              'provider_subscription_id', v_sub.provider_subscription_id) end);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_assign_plan (
  p_organization_id uuid,
  p_plan_code       text,
  p_reason          text,
  p_contract_ref    text DEFAULT NULL::text
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_plan public.billing_plans := billing.pricing_target(p_organization_id, p_plan_code);
  v_id uuid;
begin
  if v_plan.tier = 'free' or not v_plan.active then
    raise exception 'plan "%" is %: only an active paid plan is assigned', v_plan.code,
      case when v_plan.tier = 'free' then 'the free plan' else 'retired' end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select a.id into v_id from public.plan_assignments a
  where a.organization_id = p_organization_id and a.plan_id = v_plan.id and a.ended_at is null;
  if v_id is not null then
    return v_id;
  end if;
  insert into public.plan_assignments (organization_id, plan_id, contract_ref)
  values (p_organization_id, v_plan.id, nullif(btrim(p_contract_ref), ''))
  returning id into v_id;
  perform billing.log_operator_pricing(p_organization_id, 'plan_assigned', v_plan.id, v_reason,
    pg_catalog.jsonb_build_object('plan_assignment_id', v_id, 'plan_code', v_plan.code,
                                  'contract_ref', nullif(btrim(p_contract_ref), '')));
  return v_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_end_price_override (
  p_price_override_id uuid,
  p_reason            text
)
  RETURNS timestamp WITH time zone
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_override public.price_overrides;
begin
  select * into v_override from public.price_overrides o where o.id = p_price_override_id;
  if v_override.id is null then
    raise exception 'unknown price override %', p_price_override_id using errcode = 'no_data_found';
  end if;
  perform 1 from public.organizations o where o.id = v_override.organization_id for no key update;
  select * into v_override from public.price_overrides o where o.id = p_price_override_id for update;
  if v_override.ended_at is not null or v_override.valid_until <= v_now then
    raise exception 'price override % is already over (%)', v_override.id,
      coalesce(v_override.ended_at, v_override.valid_until)
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  update public.price_overrides o set ended_at = v_now where o.id = v_override.id;
  perform billing.log_operator_pricing(v_override.organization_id, 'price_override_ended', v_override.plan_id, v_reason,
    pg_catalog.jsonb_build_object('price_override_id', v_override.id,
                                  'plan_code', (select p.code from public.billing_plans p where p.id = v_override.plan_id),
                                  'price_paise', v_override.price_paise, 'contract_ref', v_override.contract_ref,
                                  'ended_at', v_now));
  return v_now;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_set_price_override (
  p_organization_id uuid,
  p_plan_code       text,
  p_price_paise     bigint,
  p_valid_from      timestamp with time zone,
  p_valid_until     timestamp with time zone,
  p_contract_ref    text,
  p_reason          text
)
  RETURNS uuid
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_overlap public.price_overrides;
  v_mandate public.subscriptions;
  v_id uuid;
begin
  if p_price_paise is null or p_price_paise <= 0 then
    raise exception 'a price override is a positive number of paise, got %', coalesce(p_price_paise::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_from is null then
    raise exception 'a price override needs valid_from (when it starts)' using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_until is not null and p_valid_until <= p_valid_from then
    raise exception 'a price override must end after it starts: valid_until % is not after valid_from %', p_valid_until, p_valid_from
      using errcode = 'invalid_parameter_value';
  end if;
  if p_valid_until is not null and p_valid_until <= v_now then
    raise exception 'a price override ending at % is already over', p_valid_until using errcode = 'invalid_parameter_value';
  end if;
  if p_contract_ref is null or length(btrim(p_contract_ref)) not between 1 and 200 then
    raise exception 'a price override needs a contract reference of 1 to 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  v_plan := billing.pricing_target(p_organization_id, p_plan_code);
  if v_plan.tier = 'free' or not v_plan.active then
    raise exception 'plan "%" is %: only an active paid plan gets a price override', v_plan.code,
      case when v_plan.tier = 'free' then 'the free plan' else 'retired' end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_mandate from public.subscriptions s
  where s.organization_id = p_organization_id and s.plan_id = v_plan.id
    and s.status in ('trialing', 'active', 'past_due')
    and s.provider = 'razorpay' and s.provider_subscription_id is not null and not s.cancel_at_period_end;
  if v_mandate.id is not null then
    raise exception 'the organization''s subscription on plan "%" renews by Razorpay subscription %, which charges the plan''s own amount: cancel it at the period end first (billing.operator_cancel), then the customer renews through checkout at the override price',
      v_plan.code, v_mandate.provider_subscription_id
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_overlap from public.price_overrides o
  where o.organization_id = p_organization_id and o.plan_id = v_plan.id
    and (o.ended_at is null or o.ended_at > o.valid_from)
    and o.valid_from < coalesce(p_valid_until, 'infinity'::timestamptz)
    and p_valid_from < least(coalesce(o.valid_until, 'infinity'::timestamptz), coalesce(o.ended_at, 'infinity'::timestamptz))
  limit 1;
  if v_overlap.id is not null then
    raise exception 'price override % (contract %) of plan "%" already covers part of that period: end it first (billing.operator_end_price_override)',
      v_overlap.id, v_overlap.contract_ref, v_plan.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  insert into public.price_overrides (organization_id, plan_id, price_paise, valid_from, valid_until, contract_ref)
  values (p_organization_id, v_plan.id, p_price_paise, p_valid_from, p_valid_until, btrim(p_contract_ref))
  returning id into v_id;
  perform billing.log_operator_pricing(p_organization_id, 'price_override_set', v_plan.id, v_reason,
    pg_catalog.jsonb_build_object('price_override_id', v_id, 'plan_code', v_plan.code, 'price_paise', p_price_paise,
                                  'list_price_paise', v_plan.price_cents, 'valid_from', p_valid_from,
                                  'valid_until', p_valid_until, 'contract_ref', btrim(p_contract_ref)));
  return v_id;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_unassign_plan (
  p_organization_id uuid,
  p_plan_code       text,
  p_reason          text
)
  RETURNS boolean
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_reason text := billing.require_operator_reason(p_reason);
  v_plan public.billing_plans := billing.pricing_target(p_organization_id, p_plan_code);
  v_id uuid;
begin
  update public.plan_assignments a set ended_at = billing.now()
  where a.organization_id = p_organization_id and a.plan_id = v_plan.id and a.ended_at is null
  returning a.id into v_id;
  if v_id is null then
    return false;
  end if;
  perform billing.log_operator_pricing(p_organization_id, 'plan_unassigned', v_plan.id, v_reason,
    pg_catalog.jsonb_build_object('plan_assignment_id', v_id, 'plan_code', v_plan.code));
  return true;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.plan_change_quote (
  p_organization_id uuid,
  p_plan_code       text,
  p_at              timestamp with time zone
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
  v_unused := billing.unused_value(v_from.price_cents, v_from.interval, v_paid_start, v_sub.current_period_end, p_at);
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
        'amount_cents', v_to.price_cents),
      pg_catalog.jsonb_build_object(
        'description', pg_catalog.format('Unused time on %s: %s of %s seconds of the current period', v_from.name,
                                         v_unused.seconds_left, v_unused.period_seconds),
        'amount_cents', -v_unused.unused_cents));
    v_amount := v_to.price_cents - v_unused.unused_cents;
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
    'to_price_cents', v_to.price_cents,
    'from_price_cents', v_from.price_cents,
    'to_contract_ref', (billing.price_override_at(p_organization_id, v_to.id, p_at)).contract_ref);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.plan_price_for (
  p_organization_id uuid,
  p_plan            public.billing_plans,
  p_at              timestamp with time zone
)
  RETURNS bigint
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  if p_plan.id is null then
    return p_plan.price_cents;
  end if;
  return coalesce(
    (select o.price_paise from public.price_overrides o
     where o.organization_id = p_organization_id and o.plan_id = p_plan.id
       and o.valid_from <= p_at
       and (o.valid_until is null or p_at < o.valid_until)
       and (o.ended_at is null or p_at < o.ended_at)
     order by o.valid_from desc
     limit 1),
    p_plan.price_cents);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.price_override_at (
  p_organization_id uuid,
  p_plan_id         uuid,
  p_at              timestamp with time zone
)
  RETURNS public.price_overrides
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_override public.price_overrides;
begin
  select * into v_override from public.price_overrides o
  where o.organization_id = p_organization_id and o.plan_id = p_plan_id
    and o.valid_from <= p_at
    and (o.valid_until is null or p_at < o.valid_until)
    and (o.ended_at is null or p_at < o.ended_at)
  order by o.valid_from desc
  limit 1;
  return v_override;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.pricing_target (
  p_organization_id uuid,
  p_plan_code       text,
  OUT               plan public.billing_plans
)
  RETURNS public.billing_plans
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  perform 1 from public.organizations o where o.id = p_organization_id for no key update;
  if not found then
    raise exception 'unknown organization %', p_organization_id using errcode = 'no_data_found';
  end if;
  select * into plan from public.billing_plans p where p.code = p_plan_code;
  if plan.id is null then
    raise exception 'no plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.renewal_reminders_batch (
  p_limit integer
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_n integer;
  v_t integer := 0;
begin
  with due as (
    select s.id, s.organization_id, s.current_period_end, s.provider, s.provider_subscription_id,
           p.id as plan_id, p.code as plan_code, p.name as plan_name,
           billing.plan_price_for(s.organization_id, p, s.current_period_end) as price_cents, p.currency,
           c.code as current_plan_code,
           case
             when s.provider = 'razorpay' and s.provider_subscription_id is not null then 'pre_debit_notice'
             else 'renewal_reminder'
           end as kind,
           case
             when s.provider = 'razorpay' and s.provider_subscription_id is not null then '24h'
             when s.current_period_end <= v_now + interval '1 day' then '1d'
             else '7d'
           end as reminder
    from public.subscriptions s
    join public.billing_plans c on c.id = s.plan_id
    join public.billing_plans p on p.id = coalesce(s.pending_plan_id, s.plan_id)
    where s.status = 'active' and not s.cancel_at_period_end
      and s.current_period_end > v_now and s.current_period_end <= v_now + interval '7 days'
      and (s.provider_subscription_id is null or s.provider <> 'razorpay'
           or s.current_period_end <= v_now + interval '24 hours')
  ), fresh as (
    select d.*, pg_catalog.format('%s:%s:%s:%s', d.kind, d.reminder, d.id,
                                  extract(epoch from d.current_period_end)::bigint) as dedupe_key
    from due d
  ), queued as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select f.organization_id, f.id, f.kind::public.notification_kind,
           pg_catalog.jsonb_build_object(
             'reminder', f.reminder, 'plan_id', f.plan_id, 'plan_code', f.plan_code, 'plan_name', f.plan_name,
             'current_plan_code', f.current_plan_code,
             'amount_cents', f.price_cents, 'currency', f.currency, 'period_end', f.current_period_end,
             'charge_at', case when f.kind = 'pre_debit_notice' then f.current_period_end end,
             'provider_subscription_id', f.provider_subscription_id),
           f.dedupe_key
    from fresh f
    where not exists (select 1 from public.notifications n where n.dedupe_key = f.dedupe_key)
    order by f.current_period_end
    limit p_limit
    on conflict (dedupe_key) do nothing
    returning 1
  )
  select count(*) into v_n from queued;

  if v_n < p_limit then
    with fresh as (
      select s.id, s.organization_id, s.trial_end, p.id as plan_id, p.code as plan_code,
             p.name as plan_name, billing.plan_price_for(s.organization_id, p, s.trial_end) as price_cents, p.currency,
             pg_catalog.format('trial_ending:%s:%s', s.id, extract(epoch from s.trial_end)::bigint) as dedupe_key
      from public.subscriptions s
      join public.billing_plans p on p.id = s.plan_id
      where s.status = 'trialing' and not s.cancel_at_period_end
        and s.trial_end > v_now and s.trial_end <= v_now + interval '3 days'
    ), queued as (
      insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
      select f.organization_id, f.id, 'trial_ending',
             pg_catalog.jsonb_build_object(
               'plan_id', f.plan_id, 'plan_code', f.plan_code, 'plan_name', f.plan_name,
               'amount_cents', f.price_cents, 'currency', f.currency, 'trial_end', f.trial_end),
             f.dedupe_key
      from fresh f
      where not exists (select 1 from public.notifications n where n.dedupe_key = f.dedupe_key)
      order by f.trial_end
      limit p_limit - v_n
      on conflict (dedupe_key) do nothing
      returning 1
    )
    select count(*) into v_t from queued;
  end if;
  return v_n + v_t;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.require_plan_available (
  p_organization_id uuid,
  p_plan            public.billing_plans
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  if p_plan.private and not exists (
    select 1 from public.plan_assignments a
    where a.organization_id = p_organization_id and a.plan_id = p_plan.id and a.ended_at is null
  ) then
    raise exception 'plan "%" is not available to this organization', p_plan.code
      using errcode = 'no_data_found', hint = 'plan_not_available';
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.start_trial (
  p_organization_id uuid,
  p_plan_code       text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_plan public.billing_plans;
  v_sub public.subscriptions;
  v_timezone text;
  v_trial_end timestamptz;
begin
  perform billing.require_role(p_organization_id, billing.managers());
  select * into v_plan from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_plan.id is null then
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found';
  end if;
  perform billing.require_plan_available(p_organization_id, v_plan);
  if v_plan.tier = 'free' or v_plan.price_cents = 0 then
    raise exception 'plan "%" is free: there is nothing to try', v_plan.code using errcode = 'invalid_parameter_value';
  end if;
  if v_plan.trial_days <= 0 then
    raise exception 'plan "%" has no trial', v_plan.code using errcode = 'invalid_parameter_value';
  end if;

  -- One trial per organization: serialize on the organization row.
  select g.timezone into v_timezone from public.organizations g where g.id = p_organization_id for no key update;
  if exists (select 1 from public.subscriptions s
             where s.organization_id = p_organization_id
               and s.status in ('pending_payment', 'trialing', 'active', 'past_due')) then
    raise exception 'the organization already has a subscription: a trial is only for organizations without one'
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if exists (select 1 from public.subscription_history h
             where h.organization_id = p_organization_id and h.action = 'trial_started')
     or exists (select 1 from public.subscriptions s
                where s.organization_id = p_organization_id and s.trial_end is not null) then
    raise exception 'the organization has already had a trial' using errcode = 'object_not_in_prerequisite_state';
  end if;
  -- One trial per person: serialize on the user (after the organization row: every caller takes
  -- them in this order), then look for a trial the user started anywhere.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('trial_started:' || v_user_id::text, 0));
  if exists (select 1 from public.subscription_history h
             where h.actor_id = v_user_id and h.action = 'trial_started' and h.actor_kind = 'user') then
    raise exception 'you have already started a trial: a trial is once per person, in one organization'
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'Buy the plan through checkout instead.';
  end if;

  -- trial_days on the organization's calendar (like periods: independent of the session TimeZone).
  v_trial_end := ((v_now at time zone v_timezone) + pg_catalog.make_interval(days => v_plan.trial_days))
                 at time zone v_timezone;

  perform billing.set_change_context('trial_started', 'user', v_user_id,
    p_reason => pg_catalog.format('%s-day trial of %s', v_plan.trial_days, v_plan.code),
    p_metadata => pg_catalog.jsonb_build_object('trial_end', v_trial_end), p_effective_at => v_now);
  insert into public.subscriptions
    (organization_id, plan_id, status, current_period_start, current_period_end, trial_end)
  values
    (p_organization_id, v_plan.id, 'trialing', v_now, v_trial_end, v_trial_end)
  returning * into v_sub;

  return pg_catalog.jsonb_build_object('subscription_id', v_sub.id, 'status', v_sub.status,
                                       'plan_code', v_plan.code, 'trial_end', v_sub.trial_end);
end;
$function$;

ALTER TABLE "public"."billing_plans"
  ADD CONSTRAINT "billing_plans_free_is_public" CHECK (((tier <> 'free'::public.plan_tier) OR (NOT private)));

ALTER TABLE "public"."plan_assignments"
  ADD CONSTRAINT "plan_assignments_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE "public"."plan_assignments"
  ADD CONSTRAINT "plan_assignments_plan_id_fkey" FOREIGN KEY (plan_id) REFERENCES public.billing_plans(id) ON DELETE RESTRICT;

ALTER TABLE "public"."price_overrides"
  ADD CONSTRAINT "price_overrides_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE "public"."price_overrides"
  ADD CONSTRAINT "price_overrides_plan_id_fkey" FOREIGN KEY (plan_id) REFERENCES public.billing_plans(id) ON DELETE RESTRICT;

CREATE UNIQUE INDEX plan_assignments_live_idx ON public.plan_assignments USING btree (organization_id, plan_id)
  WHERE (ended_at IS NULL);

CREATE INDEX plan_assignments_plan_id_idx ON public.plan_assignments USING btree (plan_id);

CREATE INDEX price_overrides_organization_plan_idx ON public.price_overrides USING btree (organization_id, plan_id, valid_from);

CREATE INDEX price_overrides_plan_id_idx ON public.price_overrides USING btree (plan_id);

CREATE POLICY "Signed-in users can read active plans and their organizations' " ON "public"."billing_plans"
  FOR SELECT
  TO "authenticated"
  USING (((active AND (NOT private)) OR (active AND (id IN ( SELECT a.plan_id
   FROM public.plan_assignments a
  WHERE (a.ended_at IS NULL)))) OR (id IN ( SELECT s.plan_id
   FROM public.subscriptions s)) OR (id IN ( SELECT s.pending_plan_id
   FROM public.subscriptions s
  WHERE (s.pending_plan_id IS NOT NULL)))));

CREATE POLICY "Visitors can read active plans" ON "public"."billing_plans"
  FOR SELECT
  TO "anon"
  USING ((active AND (NOT private)));

CREATE POLICY "Members can read their organization's plan assignments" ON "public"."plan_assignments"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids() AS member_organization_ids)));

CREATE POLICY "Members can read their organization's price overrides" ON "public"."price_overrides"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids() AS member_organization_ids)));

COMMENT ON COLUMN "public"."billing_plans"."private" IS 'A private plan (enterprise pricing) is listed and sold only to the organizations it is assigned to (public.plan_assignments); the free plan is never private.';

COMMENT ON TABLE "public"."plan_assignments" IS 'Which organizations may see and buy a private plan; set by operators, a live one has no ended_at.';

COMMENT ON TABLE "public"."price_overrides" IS 'An organization''s negotiated price for a plan over a validity period, under a contract reference; set by operators.';

REVOKE ALL ON FUNCTION "billing"."log_operator_pricing"(uuid, text, uuid, text, jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."log_operator_pricing"(uuid, text, uuid, text, jsonb) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."operator_assign_plan"(uuid, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."operator_assign_plan"(uuid, text, text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."operator_end_price_override"(uuid, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."operator_end_price_override"(uuid, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."operator_set_price_override"(uuid, text, bigint, timestamp WITH time zone, timestamp WITH time zone, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."operator_set_price_override"(uuid, text, bigint, timestamp WITH time zone, timestamp WITH time zone, text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."operator_unassign_plan"(uuid, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."operator_unassign_plan"(uuid, text, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."plan_price_for"(uuid, public.billing_plans, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."plan_price_for"(uuid, public.billing_plans, timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."price_override_at"(uuid, uuid, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."price_override_at"(uuid, uuid, timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."pricing_target"(uuid, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."pricing_target"(uuid, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."require_plan_available"(uuid, public.billing_plans) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."require_plan_available"(uuid, public.billing_plans) TO "service_role";

REVOKE ALL ON TABLE "public"."plan_assignments" FROM "authenticated";

GRANT SELECT ON TABLE "public"."plan_assignments" TO "authenticated";

REVOKE ALL ON TABLE "public"."plan_assignments" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."plan_assignments" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."plan_assignments" TO "service_role";

REVOKE ALL ON TABLE "public"."price_overrides" FROM "authenticated";

GRANT SELECT ON TABLE "public"."price_overrides" TO "authenticated";

REVOKE ALL ON TABLE "public"."price_overrides" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."price_overrides" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."price_overrides" TO "service_role";
