-- unused_value_per_paid_order: drafted by `npm run db:diff -- unused_value_per_paid_order` from the difference between the database the
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
-- What this migration does: the unused value credited on an upgrade multiplied the newest paid
-- order's period price by the cycles of the paid period, so a month paid at 50 % followed by a
-- month prepaid at the list price was credited as two months at the list price (more than was
-- paid). billing.paid_unused_value replaces billing.paid_period_price: it values each cycle of the
-- period at the price of the paid order that bought it (the newest orders pay the last cycles, by
-- paid_at then id), for its own unused share of time, rounded once; with one price it is what
-- billing.unused_value gave. No data changes.

SET local check_function_bodies = off;

DROP FUNCTION "billing"."paid_period_price"(public.subscriptions, public.billing_plans, timestamp WITH time zone);

CREATE OR REPLACE FUNCTION billing.paid_unused_value (
  p_sub          public.subscriptions,
  p_plan         public.billing_plans,
  p_period_start timestamp with time zone,
  p_period_end   timestamp with time zone,
  p_at           timestamp with time zone,
  OUT            seconds_left bigint,
  OUT            period_seconds bigint,
  OUT            cycles integer,
  OUT            unused_cents bigint
)
  RETURNS record
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_time record;
  v_prices bigint[];
  v_count integer;
  v_fallback bigint;
  v_elapsed numeric;
  v_lo numeric;
  v_hi numeric;
  v_sum numeric := 0;
  v_index integer;
begin
  v_time := billing.unused_value(0, p_plan.interval, p_period_start, p_period_end, p_at);
  seconds_left := v_time.seconds_left;
  period_seconds := v_time.period_seconds;
  cycles := v_time.cycles;
  unused_cents := 0;
  if period_seconds <= 0 then
    return;
  end if;
  select pg_catalog.array_agg(x.price order by x.paid_at, x.id) into v_prices
  from (select (o.metadata ->> 'period_price_cents')::bigint as price, o.paid_at, o.id
        from public.orders o
        where o.subscription_id = p_sub.id and o.plan_id = p_plan.id and o.status = 'paid'
          and o.kind in ('new', 'renewal', 'upgrade')
        order by o.paid_at desc, o.id desc
        limit cycles) x;
  v_count := coalesce(pg_catalog.array_length(v_prices, 1), 0);
  v_fallback := coalesce(v_prices[1], billing.plan_price_for(p_sub.organization_id, p_plan, p_at));
  v_elapsed := period_seconds - seconds_left;
  for k in 0 .. cycles - 1 loop
    v_lo := (k::numeric * period_seconds) / cycles;
    v_hi := ((k + 1)::numeric * period_seconds) / cycles;
    v_index := v_count - (cycles - 1 - k);
    v_sum := v_sum + coalesce(case when v_index >= 1 then v_prices[v_index] end, v_fallback)
                     * greatest(0, v_hi - greatest(v_lo, v_elapsed));
  end loop;
  -- numeric round() rounds halves away from zero: half up for these non-negative values.
  unused_cents := round(v_sum * cycles / period_seconds)::bigint;
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
  v_unused := billing.paid_unused_value(v_sub, v_from, v_paid_start, v_sub.current_period_end, p_at);
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
    -- A discount on the new plan (a carried repeating or forever redemption: a code typed is
    -- refused above when nothing is left to pay) is used by an order, even one the unused value
    -- makes free: the order counts as one of the redemption's periods and gets its invoice.
    v_method := case when v_amount > 0 or v_discount ? 'discount' then 'prorated_order' else 'immediate' end;
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

REVOKE ALL
  ON FUNCTION "billing"."paid_unused_value"(public.subscriptions, public.billing_plans, timestamp WITH time zone, timestamp WITH time zone, timestamp WITH time zone)
  FROM PUBLIC;
