-- =================================================================================================
-- supabill: subscription lifecycle: cancel and resume, plan changes with proration, trials, and the jobs
--
-- What signed-in owners and admins call (supabase-js .rpc; thin public wrappers over billing):
--   cancel_subscription(org, at_period_end default true)   resume_subscription(org)
--   preview_plan_change(org, plan_code)                    change_plan(org, plan_code)
--   start_trial(org, plan_code)                            prepare_order_checkout(org, order, provider)
-- What the jobs call (pg_cron, under stable names; tests call them under the test clock):
--   billing.job_expire, billing.job_renewal_reminders, billing.job_dunning
--
-- The rules:
--   * Upgrade = monthly to yearly, or the same interval at a higher price. It takes effect when
--     paid: change_plan creates an `orders` row (kind 'upgrade') for the prorated charge, checkout
--     pays it (prepare_order_checkout), and billing.apply_payment_event applies it like any order
--     for another plan: the plan switches at once and a new full period of the new plan starts at
--     the payment. A charge of 0 is applied at once, without an order.
--   * Prorated charge = new plan price - unused value of the current period, where
--       unused = round_half_up(cycles x current price x seconds_left / period_seconds)
--     seconds_left = whole seconds from now to current_period_end, period_seconds = the paid
--     period's length in seconds (a 31-day month is 2,678,400 s; February 2028 is 2,505,600 s;
--     the paid period starts at trial_end when a trial was paid before it ended), cycles = how
--     many plan intervals the period holds (1 unless renewals were paid ahead). Never negative,
--     never more than cycles x price: a credit above the new price is not refunded (its own line).
--   * Downgrade = anything else (a cheaper plan, or yearly to monthly): scheduled for the period
--     end in pending_plan_id / pending_plan_effective_at, no refund, applied by billing-expire at
--     the end of the period it was scheduled against, or, when that period was renewed on the
--     same plan meanwhile, at the end of the renewed period (it stays scheduled: the rule is
--     pending_plan_effective_at <= now and current_period_end <= now, as billing.effective_plan reads it).
--   * A Razorpay recurring subscription (provider 'razorpay' with a provider_subscription_id)
--     changes plan by cancelling at cycle end and subscribing again (method
--     'cancel_and_resubscribe'): Razorpay charges the new plan in full; no proration here.
--   * A trial is once per organization and once per person (the calling user never started one
--     in any organization), and only with no live subscription.
--   * Every transition is in subscription_history with its actor (user, system, provider,
--     operator), written by the history trigger of 02_plans from the change context each
--     function sets.
-- Also here: billing.notification_context, what a notification's template needs (it reads the
-- orders, documents and provider actions of the modules before this one; the sender claims it
-- through billing.claim_notification_deliveries, 04_operations).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- None: the lifecycle moves subscriptions (plans module) and orders (orders module), and queues
-- notifications (operations module).

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Locks the organization's open upgrade orders (created or pending), in id order. Callers that
 * also lock the subscription take these first: the payment path (apply_payment_event) holds an
 * order's lock and then locks the subscription, so the same order here cannot deadlock with it.
 */
create function billing.lock_open_upgrade_orders(p_organization_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from public.orders o
  where o.organization_id = p_organization_id and o.kind = 'upgrade' and o.status in ('created', 'pending')
  order by o.id
  for update;
end;
$$;
revoke execute on function billing.lock_open_upgrade_orders(uuid) from public;

/** Nominal seconds of a plan interval (365.2425 days a year, a twelfth of it a month). */
create function billing.nominal_seconds(p_interval public.billing_interval)
returns bigint
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_interval when 'month' then 2629746::bigint when 'year' then 31556952::bigint end;
end;
$$;
revoke execute on function billing.nominal_seconds(public.billing_interval) from public;

/**
 * The unused value, in paise, of a paid period at p_at:
 *   round_half_up(cycles x p_price_cents x seconds_left / period_seconds)
 * seconds_left: whole seconds from p_at to the period end (fractions dropped; 0 at or after it);
 * period_seconds: the period's real length (31-day months, 29-day leap Februaries);
 * cycles: how many plan intervals the period holds (a period with a renewal paid ahead holds 2).
 */
create function billing.unused_value(
  p_price_cents bigint,
  p_interval public.billing_interval,
  p_period_start timestamptz,
  p_period_end timestamptz,
  p_at timestamptz,
  out seconds_left bigint,
  out period_seconds bigint,
  out cycles integer,
  out unused_cents bigint
)
language plpgsql
immutable
set search_path = ''
as $$
begin
  period_seconds := floor(extract(epoch from (p_period_end - p_period_start)))::bigint;
  seconds_left := greatest(floor(extract(epoch from (p_period_end - p_at)))::bigint, 0);
  seconds_left := least(seconds_left, period_seconds);
  cycles := greatest(1, round(period_seconds::numeric / billing.nominal_seconds(p_interval)))::integer;
  if period_seconds <= 0 then
    unused_cents := 0;
  else
    -- numeric round() rounds halves away from zero: half up for these non-negative values.
    unused_cents := round(cycles::numeric * p_price_cents * seconds_left / period_seconds)::bigint;
  end if;
end;
$$;
revoke execute on function billing.unused_value(bigint, public.billing_interval, timestamptz, timestamptz, timestamptz) from public;

/** True when moving from plan p_from to plan p_to is an upgrade: monthly to yearly, or the same interval at a higher price. */
create function billing.is_upgrade(p_from public.billing_plans, p_to public.billing_plans)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (p_from.interval = 'month' and p_to.interval = 'year')
      or (p_from.interval = p_to.interval and p_to.price_cents > p_from.price_cents);
end;
$$;
revoke execute on function billing.is_upgrade(public.billing_plans, public.billing_plans) from public;

/** Human-readable rupees for line descriptions: 49900 -> '₹499.00' (other currencies: 'USD 12.00'). */
create function billing.format_money(p_cents bigint, p_currency text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case when p_currency = 'INR' then '₹' else p_currency || ' ' end
         || pg_catalog.to_char(p_cents / 100.0, 'FM999999999990.00');
end;
$$;
revoke execute on function billing.format_money(bigint, text) from public;

/**
 * Refuses a plan change that cannot be quoted, naming why: no paid subscription running (55000:
 * none, pending payment, a trial, or a period that ended), the same plan, a change already
 * scheduled, or another currency than the plan's or the one the subscription is paid in (22023).
 */
create function billing.refuse_plan_change(
  p_sub public.subscriptions,
  p_from public.billing_plans,
  p_to public.billing_plans,
  p_at timestamptz
)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  v_paid_in text;
begin
  if p_sub.id is null or p_sub.status = 'pending_payment' then
    raise exception 'the organization has no paid subscription to change: buy plan "%" through checkout', p_to.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_sub.status = 'trialing' then
    raise exception 'the organization is on a trial: buy plan "%" through checkout (a payment during the trial starts the plan)', p_to.code
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_sub.status = 'past_due' or p_at >= p_sub.current_period_end then
    raise exception 'the current period ended on %: renew it through checkout before changing plan', p_sub.current_period_end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_from.id = p_to.id then
    raise exception 'the organization is already on plan "%"', p_to.code using errcode = 'invalid_parameter_value';
  end if;
  if p_sub.pending_plan_id = p_to.id then
    raise exception 'a change to plan "%" is already scheduled for %', p_to.code, p_sub.pending_plan_effective_at
      using errcode = 'invalid_parameter_value';
  end if;
  if p_from.currency <> p_to.currency then
    raise exception 'plan "%" is in % and the current plan in %: a change cannot switch currency', p_to.code,
      p_to.currency, p_from.currency using errcode = 'invalid_parameter_value';
  end if;
  -- A subscription paid in another currency than its plan's own (a price of public.plan_prices):
  -- upgrades are quoted in the plan's currency, so it changes plan by checking out the new one.
  v_paid_in := (select o.currency from public.orders o
                where o.subscription_id = p_sub.id and o.status = 'paid' and o.kind in ('new', 'renewal')
                order by o.paid_at desc limit 1);
  if v_paid_in <> p_to.currency then
    raise exception 'the subscription is paid in % and plan "%" is quoted in %: a change cannot switch currency (cancel, then check out plan "%" in %)',
      v_paid_in, p_to.code, p_to.currency, p_to.code, v_paid_in using errcode = 'invalid_parameter_value';
  end if;
end;
$$;
revoke execute on function billing.refuse_plan_change(public.subscriptions, public.billing_plans, public.billing_plans,
  timestamptz) from public;

/**
 * The unused value at p_at of the paid period [p_period_start, p_period_end) of subscription p_sub
 * on plan p_plan, at the prices actually paid: billing.unused_value's seconds_left, period_seconds
 * and cycles, and unused_cents summed over the period's cycles (equal shares of its time), each at
 * the period price of the paid order that bought it (metadata.period_price_cents: the list price
 * less any discount) for its unused share. The newest paid orders of the plan (kinds new, renewal,
 * upgrade; by paid_at, then id) pay the last cycles; a cycle no order paid (a trial, a grant) is
 * valued at the oldest of those orders' price, else the organization's list price
 * (billing.plan_price_for). So a discounted month followed by a month prepaid at the list price
 * credits each at its own price, never both at the newest. Rounded half up once; with one price
 * it equals billing.unused_value at that price.
 */
create function billing.paid_unused_value(
  p_sub public.subscriptions,
  p_plan public.billing_plans,
  p_period_start timestamptz,
  p_period_end timestamptz,
  p_at timestamptz,
  out seconds_left bigint,
  out period_seconds bigint,
  out cycles integer,
  out unused_cents bigint
)
language plpgsql
stable
set search_path = ''
as $$
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
$$;
revoke execute on function billing.paid_unused_value(public.subscriptions, public.billing_plans, timestamptz, timestamptz,
  timestamptz) from public;

/**
 * The one quote both preview_plan_change and change_plan use, at p_at: what changing the
 * organization's live subscription to plan p_plan_code means, as jsonb:
 *   {kind: upgrade|downgrade, method: prorated_order|immediate|scheduled|cancel_and_resubscribe,
 *    amount_cents, currency, lines: [{description, amount_cents}] (they add up to amount_cents),
 *    effective_at, seconds_left, period_seconds, cycles, unused_cents, subscription_id,
 *    from_plan_code, to_plan_code, current_period_start, paid_period_start, current_period_end,
 *    new_period_end, to_price_cents, from_price_cents, to_contract_ref}
 * Prices are the organization's (billing.plan_price_for): the new plan's at p_at, the current
 * plan's at the start of its paid period; to_contract_ref names the new plan's price override
 * (null at the list price).
 * The unused value is of the paid part of the period, from paid_period_start (the trial end for a
 * trial paid before it ended, else current_period_start), at the price it was paid
 * (billing.paid_unused_value: each paid cycle at its own price, after its discount). new_period_end is the end of the new plan's
 * first period from effective_at, in the organization's time zone. The new plan's price is the
 * organization's list price (billing.plan_price_for) less a discount (billing.checkout_discount:
 * p_discount_code, or a repeating redemption carried): an upgrade's lines then have a discount
 * line, and the quote adds {list_cents, discount_cents, discount_code, discount (what change_plan
 * reserves)}; period_price_cents is what the new plan's period costs after it. An upgrade with a
 * discount is always a 'prorated_order', even at amount_cents 0 (change_plan then completes the
 * free order at once), never 'immediate': the order records the redemption's period.
 * Errors: P0002 no such active plan; 22023 the free plan, the same plan, another currency, a
 * downgrade already scheduled to that plan, a refused code (HINT discount_*: also a code on a
 * downgrade, which starts at the period end, or on an upgrade the unused value already pays);
 * 55000 no paid subscription running (none, a trial, past due, or the period already over).
 * Stable: it writes nothing, so the preview is exactly what change_plan then does.
 */
create function billing.plan_change_quote(
  p_organization_id uuid,
  p_plan_code text,
  p_at timestamptz,
  p_discount_code text default null
)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
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
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found', hint = 'plan_not_found';
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
$$;
revoke execute on function billing.plan_change_quote(uuid, text, timestamptz, text) from public;

/**
 * What the provider must do when a provider subscription (Razorpay's mandate, Stripe's
 * subscription: provider_subscription_id set) is cancelled here (now, or at the cycle end), as
 * cancel_subscription and change_plan answer it; null for subscriptions we bill ourselves. It is
 * also queued (billing.provider_actions, once per subscription and timing, and for the cycle end
 * once per resume too: a cancellation scheduled again after a resume is a new action; a cancel
 * now is final, one per subscription, the same key as the trigger's), so the provider stops
 * charging: the answer carries the action's id.
 */
create function billing.provider_action(p_sub public.subscriptions, p_at_cycle_end boolean)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_action_id uuid;
  v_resumes integer;
begin
  if p_sub.provider_subscription_id is null or p_sub.provider = 'manual' then
    return null;
  end if;
  select count(*) into v_resumes from billing.provider_actions a
  where a.provider = p_sub.provider and a.kind = 'resume'
    and a.target ->> 'provider_subscription_id' = p_sub.provider_subscription_id;
  v_action_id := billing.queue_provider_action(
    p_sub.organization_id, p_sub.provider, 'cancel',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_sub.provider_subscription_id),
    pg_catalog.jsonb_build_object('at_cycle_end', coalesce(p_at_cycle_end, true)),
    pg_catalog.format('cancel:%s:%s', p_sub.provider_subscription_id,
                      case when coalesce(p_at_cycle_end, true) then 'cycle_end' else 'now' end)
      || case when v_resumes > 0 and coalesce(p_at_cycle_end, true) then pg_catalog.format(':%s', v_resumes) else '' end,
    'user', 'the subscription was cancelled here', p_sub.id);
  return pg_catalog.jsonb_build_object('provider', p_sub.provider, 'action', 'cancel_subscription',
                                       'provider_subscription_id', p_sub.provider_subscription_id,
                                       'cancel_at_cycle_end', coalesce(p_at_cycle_end, true),
                                       'provider_action_id', v_action_id);
end;
$$;
revoke execute on function billing.provider_action(public.subscriptions, boolean) from public;

/**
 * Whether a subscription's cancellation scheduled for the period end can be undone at its
 * provider. Razorpay cannot undo a subscription set to cancel at cycle end (the customer
 * subscribes again); Stripe can (cancel_at_period_end back to false), and a subscription we bill
 * ourselves has nothing to undo there. The one rule SQL keeps about what a provider can do.
 */
create function billing.provider_can_resume(p_sub public.subscriptions)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return p_sub.provider_subscription_id is null or p_sub.provider is distinct from 'razorpay';
end;
$$;
revoke execute on function billing.provider_can_resume(public.subscriptions) from public;

/**
 * Queues the undoing of a provider subscription's scheduled cancellation (a 'resume' action;
 * each resume its own action, so cancel, resume, cancel, resume are four calls in order) and
 * answers it as resume_subscription does; null for subscriptions we bill ourselves.
 */
create function billing.provider_resume_action(p_sub public.subscriptions, p_requested_by text, p_reason text)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_action_id uuid;
  v_resumes integer;
begin
  if p_sub.provider_subscription_id is null or p_sub.provider = 'manual' then
    return null;
  end if;
  select count(*) into v_resumes from billing.provider_actions a
  where a.provider = p_sub.provider and a.kind = 'resume'
    and a.target ->> 'provider_subscription_id' = p_sub.provider_subscription_id;
  v_action_id := billing.queue_provider_action(
    p_sub.organization_id, p_sub.provider, 'resume',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_sub.provider_subscription_id),
    '{}'::jsonb,
    pg_catalog.format('resume:%s:%s', p_sub.provider_subscription_id, v_resumes + 1),
    p_requested_by, p_reason, p_sub.id);
  return pg_catalog.jsonb_build_object('provider', p_sub.provider, 'action', 'resume_subscription',
                                       'provider_subscription_id', p_sub.provider_subscription_id,
                                       'provider_action_id', v_action_id);
end;
$$;
revoke execute on function billing.provider_resume_action(public.subscriptions, text, text) from public;

/**
 * Queues the plan change a provider subscription (provider_subscription_id set; Razorpay's
 * recurring subscriptions change plan by cancel and resubscribe instead) must carry out so its
 * later charges are ours: a 'change_plan' action whose payload names the new plan and the amount
 * each renewal charges from now on (price_amount: the new plan's price for the organization for
 * the period, its discount carried, GST included as in every price of a provider subscription:
 * what a renewal order of it is priced at; the provider's own coupon comes off with the switch,
 * as this price already carries the discount), and:
 *   an upgrade paid by a prorated order (p_order): the order's receipt (order_ref), id and amount,
 *     charged by the provider at once (Stripe: an invoice item for our amount, an invoice paid
 *     now), and the new period's end (period_end: the next charge comes then);
 *   an upgrade with nothing to pay: period_end only;
 *   a downgrade scheduled for the period end (at_cycle_end true): the price changes without a
 *     charge, so the renewal at the period end charges the new plan's amount.
 * Returns {provider, action: 'change_plan', provider_subscription_id, provider_action_id}.
 */
create function billing.provider_plan_change_action(
  p_sub public.subscriptions,
  p_to public.billing_plans,
  p_quote jsonb,
  p_order public.orders
)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_at_end boolean := p_quote ->> 'method' = 'scheduled';
  v_price bigint;
  v_action_id uuid;
begin
  if p_sub.provider_subscription_id is null or p_sub.provider = 'manual' then
    return null;
  end if;
  -- A provider subscription's price carries its GST (as its first order and its renewals do):
  -- the period's price is what each renewal charges, tax included, never the price plus tax.
  select q.amount_cents into v_price
  from billing.order_tax_quote(p_sub.organization_id, (p_quote ->> 'period_price_cents')::bigint, true, p_to.currency) q;
  v_action_id := billing.queue_provider_action(
    p_sub.organization_id, p_sub.provider, 'change_plan',
    pg_catalog.jsonb_build_object('provider_subscription_id', p_sub.provider_subscription_id,
                                  'order_ref', p_order.receipt),
    pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'plan_code', p_to.code, 'plan_name', p_to.name, 'interval', p_to.interval, 'currency', p_to.currency,
      'price_amount', v_price, 'at_cycle_end', v_at_end,
      'provider_price_id', p_to.provider_config -> p_sub.provider::text ->> 'price_id',
      'period_end', case when not v_at_end then extract(epoch from (p_quote ->> 'new_period_end')::timestamptz)::bigint end,
      'order_id', p_order.id, 'order_ref', p_order.receipt, 'amount_paise', p_order.amount_cents)),
    pg_catalog.format('change_plan:%s:%s', p_sub.provider_subscription_id,
                      coalesce(p_order.id::text,
                               pg_catalog.format('%s:%s', p_to.code, extract(epoch from billing.now())::bigint))),
    'user', pg_catalog.format('plan change to %s (%s)', p_to.code, p_quote ->> 'method'), p_sub.id);
  return pg_catalog.jsonb_build_object('provider', p_sub.provider, 'action', 'change_plan',
                                       'provider_subscription_id', p_sub.provider_subscription_id,
                                       'provider_action_id', v_action_id);
end;
$$;
revoke execute on function billing.provider_plan_change_action(public.subscriptions, public.billing_plans, jsonb, public.orders) from public;

/**
 * AFTER UPDATE OF pending_plan_id on subscriptions: a scheduled downgrade dropped without taking
 * effect (a cancellation, a new plan change, an operator, the first charge of a mandate; the plan
 * unchanged, the subscription still live) whose provider's price was already switched to it (the
 * latest change_plan action of the provider subscription, not failed, is for the dropped plan:
 * Stripe's, queued by change_plan) has that price put back: a change_plan action to the plan in
 * effect at its price for the organization now (billing.checkout_discount: a carried discount
 * too, with tax), so the provider's next renewal charges the plan we still bill, not the dropped one.
 */
create function billing.restore_provider_plan()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_plan public.billing_plans;
  v_dropped text;
begin
  select p.code into v_dropped from public.billing_plans p where p.id = old.pending_plan_id;
  if (select a.payload ->> 'plan_code'
      from billing.provider_actions a
      where a.kind = 'change_plan' and a.provider = new.provider and a.state <> 'failed'
        and a.target ->> 'provider_subscription_id' = new.provider_subscription_id
      order by a.created_at desc, a.seq desc
      limit 1) is distinct from v_dropped then
    return null;
  end if;
  select * into v_plan from public.billing_plans p where p.id = new.plan_id;
  perform billing.provider_plan_change_action(
    new, v_plan,
    pg_catalog.jsonb_build_object(
      'method', 'scheduled',
      'period_price_cents',
      (billing.checkout_discount(new.organization_id, v_plan, null, billing.now(), false) ->> 'price_cents')::bigint),
    null);
  return null;
end;
$$;
revoke execute on function billing.restore_provider_plan() from public;

create trigger subscriptions_restore_provider_plan
  after update of pending_plan_id on public.subscriptions
  for each row
  when (old.pending_plan_id is not null and new.pending_plan_id is null and new.plan_id = old.plan_id
        and new.provider_subscription_id is not null and new.provider <> 'manual'
        and new.status in ('trialing', 'active', 'past_due'))
  execute function billing.restore_provider_plan();

/** Cancels the organization's open upgrade orders that nothing has paid (a new quote, or a cancel, supersedes them). */
create function billing.cancel_open_upgrade_orders(p_organization_id uuid, p_reason text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_count integer;
begin
  update public.orders o
  set status = 'canceled',
      metadata = o.metadata || pg_catalog.jsonb_build_object('canceled_reason', p_reason)
  where o.organization_id = p_organization_id and o.kind = 'upgrade' and o.status in ('created', 'pending')
    and not exists (select 1 from public.payment_events pe where pe.order_id = o.id);
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;
revoke execute on function billing.cancel_open_upgrade_orders(uuid, text) from public;

-- -------------------------------------------------------------------------------------------------
-- Implementations of the public functions (security definer; their wrappers are in section 5)
-- -------------------------------------------------------------------------------------------------

/**
 * Cancels the organization's subscription: at the period end (default; the plan stays in effect
 * until then and resume_subscription can undo it), or now (p_at_period_end = false; the free plan
 * applies at once, no refund). A subscription whose period is already over is cancelled now.
 * A scheduled downgrade and open upgrade orders are dropped. Owners and admins.
 * Returns {subscription_id, status, cancel_at_period_end, effective_at, result, provider_action}
 * (provider_action: what to do at Razorpay for a recurring subscription).
 * Errors: 42501 not an owner or admin; 55000 nothing to cancel.
 * Security definer: signed-in users have no write grant on subscriptions or their history.
 */
create function billing.cancel_subscription(p_organization_id uuid, p_at_period_end boolean default true)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
  v_new public.subscriptions;
  v_at_end boolean := coalesce(p_at_period_end, true);
begin
  perform billing.require_role(p_organization_id, billing.managers());
  -- The open upgrade orders first, then the subscription: the payment path's lock order.
  perform billing.lock_open_upgrade_orders(p_organization_id);
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  if v_sub.id is null then
    raise exception 'the organization has no subscription to cancel' using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_sub.current_period_end is null or v_sub.current_period_end <= v_now then
    v_at_end := false;
  end if;

  if v_at_end and v_sub.cancel_at_period_end then
    return pg_catalog.jsonb_build_object(
      'result', 'already_scheduled', 'subscription_id', v_sub.id, 'status', v_sub.status,
      'cancel_at_period_end', true, 'effective_at', v_sub.current_period_end,
      'provider_action', billing.provider_action(v_sub, true));
  end if;

  perform billing.cancel_open_upgrade_orders(p_organization_id, 'subscription cancelled');

  if v_at_end then
    perform billing.set_change_context('cancel_scheduled', 'user', v_user_id,
      p_reason => 'cancellation requested for the period end',
      p_metadata => pg_catalog.jsonb_build_object('cancel_at', v_sub.current_period_end,
                                                  'dropped_pending_plan_id', v_sub.pending_plan_id),
      p_effective_at => v_now);
    update public.subscriptions s
    set cancel_at_period_end = true, canceled_at = v_now, pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id
    returning * into v_new;
  else
    perform billing.set_change_context('canceled', 'user', v_user_id,
      p_reason => 'cancelled now by the user (no refund)',
      p_metadata => pg_catalog.jsonb_build_object('dropped_pending_plan_id', v_sub.pending_plan_id),
      p_effective_at => v_now);
    update public.subscriptions s
    set status = 'canceled', cancel_at_period_end = false, canceled_at = v_now, ended_at = v_now,
        pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id
    returning * into v_new;
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    values (v_sub.organization_id, v_sub.id, 'subscription_canceled',
            pg_catalog.jsonb_build_object('plan_id', v_sub.plan_id, 'ended_at', v_now),
            pg_catalog.format('subscription_canceled:%s', v_sub.id))
    on conflict (dedupe_key) do nothing;
  end if;

  return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'result', case when v_at_end then 'scheduled' else 'canceled' end,
    'subscription_id', v_new.id, 'status', v_new.status, 'cancel_at_period_end', v_new.cancel_at_period_end,
    'effective_at', case when v_at_end then v_sub.current_period_end else v_now end,
    'provider_action', billing.provider_action(v_sub, v_at_end)));
end;
$$;
revoke execute on function billing.cancel_subscription(uuid, boolean) from public, anon;
grant execute on function billing.cancel_subscription(uuid, boolean) to authenticated;

/**
 * Undoes a cancellation scheduled for the period end, while the period still runs. Owners and
 * admins. Returns {result: 'resumed', subscription_id, status, current_period_end}.
 * A provider subscription whose provider can undo its cancellation (billing.provider_can_resume:
 * Stripe) is resumed there too (a queued 'resume' action, in the answer as provider_action).
 * Errors: 42501; 55000 no scheduled cancellation, the period already over, or a Razorpay
 * recurring subscription (its cancellation at Razorpay cannot be undone here: subscribe again).
 * Security definer: signed-in users have no write grant on subscriptions or their history.
 */
create function billing.resume_subscription(p_organization_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_sub public.subscriptions;
begin
  perform billing.require_role(p_organization_id, billing.managers());
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  if v_sub.id is null or not v_sub.cancel_at_period_end then
    raise exception 'the organization has no cancellation scheduled to undo' using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_sub.current_period_end <= v_now then
    raise exception 'the period ended on %: the cancellation has taken effect; buy a plan through checkout', v_sub.current_period_end
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if not billing.provider_can_resume(v_sub) then
    raise exception '% subscription % is set to cancel at cycle end at %, which cannot undo it: subscribe again through checkout',
      pg_catalog.initcap(v_sub.provider::text), v_sub.provider_subscription_id, pg_catalog.initcap(v_sub.provider::text)
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  perform billing.set_change_context('resumed', 'user', v_user_id, p_reason => 'scheduled cancellation undone',
    p_effective_at => v_now);
  update public.subscriptions s set cancel_at_period_end = false, canceled_at = null where s.id = v_sub.id;

  return pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'result', 'resumed', 'subscription_id', v_sub.id, 'status', v_sub.status,
    'current_period_end', v_sub.current_period_end,
    'provider_action', billing.provider_resume_action(v_sub, 'user', 'the scheduled cancellation was undone here')));
end;
$$;
revoke execute on function billing.resume_subscription(uuid) from public, anon;
grant execute on function billing.resume_subscription(uuid) to authenticated;

/**
 * What change_plan would do now, and charge: the quote of billing.plan_change_quote (kind,
 * method, amount_cents, currency, lines, effective_at, seconds_left, ...). Writes nothing.
 * Owners and admins. Errors as change_plan.
 * Security definer: reads the subscription and plans whatever the caller's RLS shows.
 */
create function billing.preview_plan_change(p_organization_id uuid, p_plan_code text, p_discount_code text default null)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform billing.require_role(p_organization_id, billing.managers());
  return billing.plan_change_quote(p_organization_id, p_plan_code, billing.now(), p_discount_code);
end;
$$;
revoke execute on function billing.preview_plan_change(uuid, text, text) from public, anon;
grant execute on function billing.preview_plan_change(uuid, text, text) to authenticated;

/**
 * Changes the organization's plan (owners and admins), exactly as preview_plan_change says:
 *   upgrade, method 'prorated_order': an order (kind 'upgrade', the new plan, amount_cents) is
 *     created; pay it through checkout with {order_id} (prepare_order_checkout). When paid,
 *     apply_payment_event switches the plan and starts a new period. Earlier open upgrade orders
 *     are cancelled. Answer: the quote + {result: 'order_created', order_id, receipt,
 * order_amount_cents
 *     (what the order charges: the quote's amount plus tax, set by the orders_quote_tax trigger),
 * order_expires_at};
 *     An order at 0 (a carried redemption's discount, with the unused value paying the rest) is
 *     completed at once like a free checkout (billing.complete_free_order: the plan switches, the
 *     redemption uses a period, a zero-value invoice is issued): {result: 'changed', order_id, ...};
 *   upgrade, method 'immediate' (charge 0, no discount): switched now, new period from now ({result: 'changed'});
 *   downgrade, method 'scheduled': pending_plan_id set for the period end ({result: 'scheduled'});
 *   Razorpay recurring, method 'cancel_and_resubscribe': the subscription is set to cancel at the
 *     period end ({result: 'cancel_scheduled', provider_action, checkout: {plan_code, provider}}).
 *   Any other provider subscription (Stripe) follows the same rules, and the provider is told in
 *   a queued 'change_plan' action (billing.provider_plan_change_action, in the answer as
 *   provider_action): the upgrade order is charged by the provider itself, not through checkout;
 *   a downgrade or a free upgrade changes the provider's price without a charge.
 * Errors: 42501; P0002 unknown plan; 22023 free plan, same plan, other currency, already
 * scheduled; 55000 no paid subscription running, a cancellation scheduled (resume first).
 * Security definer: signed-in users have no write grant on subscriptions, history or orders.
 */
create function billing.change_plan(p_organization_id uuid, p_plan_code text, p_discount_code text default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_quote jsonb;
  v_sub public.subscriptions;
  v_to public.billing_plans;
  v_order public.orders;
  v_method text;
begin
  perform billing.require_role(p_organization_id, billing.managers());
  -- The open upgrade orders first, then the live subscription (the payment path's lock order:
  -- it holds an order and then locks the subscription); then quote against what is locked.
  perform billing.lock_open_upgrade_orders(p_organization_id);
  select * into v_sub from public.subscriptions s
  where s.organization_id = p_organization_id and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
  for update;
  v_quote := billing.plan_change_quote(p_organization_id, p_plan_code, v_now, p_discount_code);
  v_method := v_quote ->> 'method';
  select * into v_to from public.billing_plans p where p.code = p_plan_code and p.active;
  if v_sub.cancel_at_period_end and v_method <> 'cancel_and_resubscribe' then
    raise exception 'a cancellation is scheduled for %: resume the subscription before changing plan', v_sub.current_period_end
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  if v_method = 'prorated_order' then
    perform billing.cancel_open_upgrade_orders(p_organization_id, 'superseded by a new plan change');
    insert into public.orders
      (organization_id, plan_id, subscription_id, provider, kind, amount_cents, currency, status, created_by,
       expires_at, metadata, list_cents, discount_cents, discount_redemption_id)
    values
      (p_organization_id, v_to.id, v_sub.id,
       case when (v_quote ->> 'amount_cents')::bigint = 0 then 'manual'
            when v_sub.provider <> 'manual' then v_sub.provider else 'payu' end::public.payment_provider,
       'upgrade', (v_quote ->> 'amount_cents')::bigint, v_to.currency,
       case when (v_quote ->> 'amount_cents')::bigint = 0 then 'pending' else 'created' end::public.order_status, v_user_id,
       least(v_now + interval '1 day', v_sub.current_period_end),
       pg_catalog.jsonb_build_object('plan_code', v_to.code, 'recurring', false, 'quote', v_quote - 'discount',
                                     'from_plan_id', v_sub.plan_id, 'quoted_period_end', v_sub.current_period_end,
                                     'period_price_cents', (v_quote ->> 'period_price_cents')::bigint)
         || case when v_quote ? 'discount'
                 then pg_catalog.jsonb_build_object('discount_code', v_quote ->> 'discount_code',
                                                    'discount_terms', v_quote #> '{discount,terms}')
                 else '{}'::jsonb end,
       case when v_quote ? 'discount' then (v_quote ->> 'amount_cents')::bigint + (v_quote ->> 'discount_cents')::bigint end,
       coalesce((v_quote ->> 'discount_cents')::bigint, 0),
       (v_quote #>> '{discount,redemption_id}')::uuid)
    returning * into v_order;
    if v_quote ? 'discount' then
      perform billing.reserve_discount(v_order, v_quote -> 'discount');
      select * into v_order from public.orders o where o.id = v_order.id;
    end if;
    if v_order.amount_cents = 0 then
      -- Free (a carried discount, the unused value paying the rest): completed now, as a free checkout.
      v_order := billing.complete_free_order(v_order);
      return (v_quote - 'discount') || pg_catalog.jsonb_build_object(
        'result', 'changed', 'order_id', v_order.id, 'receipt', v_order.receipt, 'order_amount_cents', 0);
    end if;
    -- An intent: the subscription is untouched until the order is paid.
    perform billing.log_subscription_intent(v_sub.id, 'upgrade_ordered', v_to.id, 'user', v_user_id,
      p_reason => pg_catalog.format('upgrade to %s ordered: %s to pay', v_to.code,
                                    billing.format_money(v_order.amount_cents, v_order.currency)),
      p_metadata => pg_catalog.jsonb_build_object('order_id', v_order.id, 'amount_cents', v_order.amount_cents));
    -- A provider subscription (Stripe) is charged the order by its provider, not through checkout.
    return (v_quote - 'discount') || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'result', 'order_created', 'order_id', v_order.id, 'receipt', v_order.receipt,
      'order_amount_cents', v_order.amount_cents, 'order_expires_at', v_order.expires_at,
      'provider_action', billing.provider_plan_change_action(v_sub, v_to, v_quote, v_order)));

  elsif v_method = 'immediate' then
    perform billing.cancel_open_upgrade_orders(p_organization_id, 'superseded by a new plan change');
    perform billing.set_change_context('plan_changed', 'user', v_user_id,
      p_reason => 'upgrade with nothing to pay: the unused value covers the new plan', p_metadata => v_quote,
      p_effective_at => v_now);
    update public.subscriptions s
    set plan_id = v_to.id, current_period_start = v_now,
        current_period_end = (v_quote ->> 'new_period_end')::timestamptz,
        pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id;
    return v_quote || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('result', 'changed',
      'provider_action', billing.provider_plan_change_action(v_sub, v_to, v_quote, null)));

  elsif v_method = 'scheduled' then
    perform billing.set_change_context('downgrade_scheduled', 'user', v_user_id,
      p_reason => pg_catalog.format('downgrade to %s at the period end (no refund)', v_to.code),
      p_metadata => pg_catalog.jsonb_build_object('effective_at', v_sub.current_period_end,
                                                  'replaced_pending_plan_id', v_sub.pending_plan_id),
      p_effective_at => v_now);
    update public.subscriptions s
    set pending_plan_id = v_to.id, pending_plan_effective_at = s.current_period_end
    where s.id = v_sub.id;
    return v_quote || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('result', 'scheduled',
      'provider_action', billing.provider_plan_change_action(v_sub, v_to, v_quote, null)));

  else
    -- cancel_and_resubscribe (Razorpay recurring). Already cancelling: nothing changes, nothing is recorded.
    perform billing.set_change_context('cancel_scheduled', 'user', v_user_id,
      p_reason => pg_catalog.format('plan change to %s: Razorpay subscription cancels at cycle end, new subscription to follow',
                                    v_to.code),
      p_metadata => pg_catalog.jsonb_build_object('to_plan_id', v_to.id, 'method', 'cancel_and_resubscribe'),
      p_effective_at => v_now);
    update public.subscriptions s
    set cancel_at_period_end = true, canceled_at = v_now, pending_plan_id = null, pending_plan_effective_at = null
    where s.id = v_sub.id and not s.cancel_at_period_end;
    return v_quote || pg_catalog.jsonb_build_object(
      'result', 'cancel_scheduled',
      'provider_action', billing.provider_action(v_sub, true),
      'checkout', pg_catalog.jsonb_build_object('plan_code', v_to.code, 'provider', 'razorpay'));
  end if;
end;
$$;
revoke execute on function billing.change_plan(uuid, text, text) from public, anon;
grant execute on function billing.change_plan(uuid, text, text) to authenticated;

/**
 * Makes an open upgrade order (from change_plan) payable through a provider: the checkout
 * function calls it, as the user, when its body names {order_id} instead of {plan_code}. Sets
 * the provider and answers with the same columns as create_checkout_order. Refused (55000) when
 * the order is paid, cancelled, expired, already attached to a provider order, or stale (the
 * subscription changed plan or period since the quote: preview again).
 * Errors: 42501 not an owner or admin of the order's organization (or no such order); 22023 bad
 * provider; 55000 as above or the provider cannot take the amount.
 * Security definer: signed-in users have no update grant on orders.
 */
create function billing.prepare_order_checkout(p_organization_id uuid, p_order_id uuid, p_provider text)
returns setof billing.checkout_order
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_order public.orders;
  v_sub public.subscriptions;
begin
  perform billing.checkout_provider(p_provider);
  perform billing.require_role(p_organization_id, billing.managers());
  select * into v_order from public.orders o
  where o.id = p_order_id and o.organization_id = p_organization_id
  for update;
  if v_order.id is null then
    raise exception 'only owners and admins of the organization can pay its orders' using errcode = 'insufficient_privilege';
  end if;
  if v_order.kind <> 'upgrade' or v_order.status not in ('created', 'pending') or v_order.provider_order_id is not null
     or exists (select 1 from public.payment_events pe where pe.order_id = v_order.id) then
    raise exception 'order % is not an open upgrade order (status %)', v_order.receipt, v_order.status
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_order.expires_at <= v_now then
    raise exception 'upgrade order % expired at %: preview the change again', v_order.receipt, v_order.expires_at
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if exists (select 1 from billing.provider_actions a where a.kind = 'change_plan' and a.payload ->> 'order_id' = v_order.id::text) then
    raise exception 'upgrade order % is charged by the provider of the subscription (%), not through checkout', v_order.receipt, v_order.provider
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  select * into v_sub from public.subscriptions s where s.id = v_order.subscription_id;
  if v_sub.id is null or v_sub.status not in ('active', 'past_due')
     or v_sub.plan_id is distinct from (v_order.metadata ->> 'from_plan_id')::uuid
     or v_sub.current_period_end is distinct from (v_order.metadata ->> 'quoted_period_end')::timestamptz then
    raise exception 'upgrade order % no longer matches the subscription: preview the change again', v_order.receipt
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform billing.require_provider_currency(p_provider, v_order.currency);
  if p_provider = 'razorpay' and v_order.amount_cents < 100 then
    raise exception 'order % is for less than Razorpay''s minimum of 100 paise: pay it with PayU', v_order.receipt
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  update public.orders o
  set provider = p_provider::public.payment_provider,
      status = case when p_provider = 'payu' then 'pending' else 'created' end::public.order_status
  where o.id = v_order.id
  returning * into v_order;

  return next billing.checkout_answer(v_order, v_user_id, null);
end;
$$;
revoke execute on function billing.prepare_order_checkout(uuid, uuid, text) from public, anon;
grant execute on function billing.prepare_order_checkout(uuid, uuid, text) to authenticated;

/**
 * Starts a free trial of a paid plan for its trial_days: once per organization, ever (any earlier
 * trial counts, even one that was cancelled), once per person (the calling user has never started
 * a trial in any organization), and only with no live subscription. An unpaid trial falls to the
 * free plan at its end (billing-expire records it); a payment during the trial starts the plan
 * from the trial end. Owners and admins.
 * Returns {subscription_id, status: 'trialing', plan_code, trial_end}.
 * Errors: 42501; P0002 unknown plan; 22023 free plan or no trial days; 55000 a live subscription,
 * a trial already used by the organization, or one already started by the user.
 * Security definer: signed-in users have no write grant on subscriptions or their history.
 */
create function billing.start_trial(p_organization_id uuid, p_plan_code text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
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
    raise exception 'no active plan "%"', coalesce(p_plan_code, '') using errcode = 'no_data_found', hint = 'plan_not_found';
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
$$;
revoke execute on function billing.start_trial(uuid, text) from public, anon;
grant execute on function billing.start_trial(uuid, text) to authenticated;

/**
 * What a template needs besides the payload, as one object:
 *   organization {id, name, billing_name, timezone}, seller_legal_name, app_success_url,
 *   plan {id, code, name, interval} (the payload's new_plan_id, plan_id or plan_code, else the
 *   subscription's plan), old_plan {code, name} (plan_downgraded),
 *   amount_cents and currency: for a payment_failed, payment_disputed or payment_captured the
 *   payload's amount (what the payment was); for a provider_action_failed of a refund the
 *   refund's amount (the action's payload); else the plan's price as payable, GST included the
 *   way an order of it would be (billing.order_tax_quote; a provider subscription's price
 *   includes tax; the reminders' payload amount_cents is the plan's price before tax),
 *   refund {provider_payment_id, amount_cents, currency} for a provider_action_failed of a refund,
 *   subscription {id, status, current_period_start, current_period_end, cancel_at_period_end,
 *   provider, provider_subscription_id},
 *   greeting_name: the recipient's name (auth user metadata full_name or name) when the email
 *   goes to one person whose name is known, else null,
 *   metric_name: a quota_threshold's metric display name (billing.metric_display_name),
 *   receipt {method, provider, provider_payment_id}: how a payment_captured was paid,
 *   confirmation {email, token, expires_at}: a billing_email_confirmation's link (private table).
 * Null for an unknown notification. service_role only.
 */
create function billing.notification_context(p_notification_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
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
  v_recipients text[];
  v_greeting text;
  v_receipt jsonb;
  v_confirmation billing.billing_email_confirmations;
begin
  select * into v_note from public.notifications n where n.id = p_notification_id;
  if not found then
    return null;
  end if;
  -- The greeting: the person's name when the email goes to one person whose name we know.
  v_recipients := billing.notification_recipients(p_notification_id);
  if pg_catalog.cardinality(v_recipients) = 1 then
    select nullif(btrim(coalesce(u.raw_user_meta_data ->> 'full_name', u.raw_user_meta_data ->> 'name')), '')
    into v_greeting
    from auth.users u where lower(btrim(u.email)) = v_recipients[1]
    order by u.created_at limit 1;
  end if;
  if v_note.kind = 'payment_captured' then
    -- The receipt: how it was paid and the period it paid for.
    select pg_catalog.jsonb_build_object(
             'method', pe.method, 'provider', pe.provider, 'provider_payment_id', pe.provider_payment_id)
    into v_receipt
    from public.invoices i join public.payment_events pe on pe.id = i.payment_event_id
    where i.id = billing.jsonb_uuid(v_note.payload ->> 'invoice_id');
  end if;
  if v_note.kind = 'billing_email_confirmation' then
    select * into v_confirmation from billing.billing_email_confirmations c
    where c.id = billing.jsonb_uuid(v_note.payload ->> 'confirmation_id');
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
    'greeting_name', v_greeting,
    'metric_name', case when v_note.kind = 'quota_threshold'
                        then billing.metric_display_name(v_note.payload ->> 'metric') end,
    'receipt', v_receipt,
    'confirmation', case when v_confirmation.id is not null then pg_catalog.jsonb_build_object(
              'email', v_confirmation.email, 'token', v_confirmation.token,
              'expires_at', v_confirmation.expires_at) end,
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
              'current_period_start', v_sub.current_period_start,
              'cancel_at_period_end', v_sub.cancel_at_period_end, 'provider', v_sub.provider,
              'provider_subscription_id', v_sub.provider_subscription_id) end);
end;
$$;
revoke execute on function billing.notification_context(uuid) from public, anon, authenticated;
grant execute on function billing.notification_context(uuid) to service_role;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: the lifecycle's tables belong to other modules.

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * Cancels the organization's subscription at the period end (default) or now. Owners and admins.
 * A thin wrapper: billing.cancel_subscription does the work and checks who is calling.
 */
create function public.cancel_subscription(p_organization_id uuid, p_at_period_end boolean default true)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return billing.cancel_subscription(p_organization_id, p_at_period_end);
end;
$$;
revoke execute on function public.cancel_subscription(uuid, boolean) from public, anon;
grant execute on function public.cancel_subscription(uuid, boolean) to authenticated;
comment on function public.cancel_subscription(uuid, boolean) is 'Cancels the organization''s subscription at the period end (default) or now. Owners and admins.';

/**
 * Undoes a cancellation scheduled for the period end, while the period still runs.
 * A thin wrapper: billing.resume_subscription does the work and checks who is calling.
 */
create function public.resume_subscription(p_organization_id uuid)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return billing.resume_subscription(p_organization_id);
end;
$$;
revoke execute on function public.resume_subscription(uuid) from public, anon;
grant execute on function public.resume_subscription(uuid) to authenticated;
comment on function public.resume_subscription(uuid) is 'Undoes a cancellation scheduled for the period end, while the period still runs.';

/**
 * What change_plan would do now, and what it would charge; writes nothing. Owners and admins.
 * A thin wrapper: billing.preview_plan_change does the work and checks who is calling.
 */
create function public.preview_plan_change(p_organization_id uuid, p_plan_code text, p_discount_code text default null)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return billing.preview_plan_change(p_organization_id, p_plan_code, p_discount_code);
end;
$$;
revoke execute on function public.preview_plan_change(uuid, text, text) from public, anon;
grant execute on function public.preview_plan_change(uuid, text, text) to authenticated;
comment on function public.preview_plan_change(uuid, text, text) is 'What change_plan would do now, and what it would charge; writes nothing. Owners and admins.';

/**
 * Changes the organization's plan: an upgrade is a prorated order to pay (applied at once when
 * nothing is due), a downgrade is scheduled for the period end. Owners and admins.
 * A thin wrapper: billing.change_plan does the work and checks who is calling.
 */
create function public.change_plan(p_organization_id uuid, p_plan_code text, p_discount_code text default null)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return billing.change_plan(p_organization_id, p_plan_code, p_discount_code);
end;
$$;
revoke execute on function public.change_plan(uuid, text, text) from public, anon;
grant execute on function public.change_plan(uuid, text, text) to authenticated;
comment on function public.change_plan(uuid, text, text) is 'Changes the organization''s plan: an upgrade is a prorated order to pay (applied at once when nothing is due), a downgrade is scheduled for the period end. Owners and admins.';

/**
 * Makes an open upgrade order from change_plan payable through a provider (the checkout function
 * calls it as the user).
 * A thin wrapper: billing.prepare_order_checkout does the work and checks who is calling.
 */
create function public.prepare_order_checkout(p_organization_id uuid, p_order_id uuid, p_provider text)
returns setof billing.checkout_order
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return query select * from billing.prepare_order_checkout(p_organization_id, p_order_id, p_provider);
end;
$$;
revoke execute on function public.prepare_order_checkout(uuid, uuid, text) from public, anon;
grant execute on function public.prepare_order_checkout(uuid, uuid, text) to authenticated;
comment on function public.prepare_order_checkout(uuid, uuid, text) is 'Makes an open upgrade order from change_plan payable through a provider (the checkout function calls it as the user).';

/**
 * Starts a free trial of a paid plan: once per organization, and only without a live subscription.
 * Owners and admins.
 * A thin wrapper: billing.start_trial does the work and checks who is calling.
 */
create function public.start_trial(p_organization_id uuid, p_plan_code text)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return billing.start_trial(p_organization_id, p_plan_code);
end;
$$;
revoke execute on function public.start_trial(uuid, text) from public, anon;
grant execute on function public.start_trial(uuid, text) to authenticated;
comment on function public.start_trial(uuid, text) is
  'Starts a free trial of a paid plan: once per organization and once per person, and only without a live subscription. Owners and admins.';

-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

-- See the operations module for what every job does the same way (batches, locks, logging).

/**
 * billing-expire, step (1): Scheduled cancellations. Returns the subscriptions moved.
 */
create function billing.expire_scheduled_cancellations(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('canceled', 'system', p_reason => 'cancelled at the period end, as requested',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
  select s.id, s.status as old_status from public.subscriptions s
  where s.status in ('trialing', 'active', 'past_due') and s.cancel_at_period_end and s.current_period_end <= v_now
  order by s.current_period_end
  limit p_limit
  for update skip locked
  ), moved as (
  update public.subscriptions s
  set status = 'canceled', ended_at = s.current_period_end, canceled_at = coalesce(s.canceled_at, s.current_period_end),
      pending_plan_id = null, pending_plan_effective_at = null
  where s.id = any (array(select d.id from due d))
  returning s.id, s.organization_id, s.plan_id, s.current_period_end
  ), note as (
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  select m.organization_id, m.id, 'subscription_canceled',
         pg_catalog.jsonb_build_object('plan_id', m.plan_id, 'ended_at', m.current_period_end),
         'subscription_canceled:' || m.id
  from moved m
  on conflict (dedupe_key) do nothing
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;
revoke execute on function billing.expire_scheduled_cancellations(integer, timestamptz, jsonb) from public;

/**
 * billing-expire, step (2): Downgrades due: the pending plan replaces the current one (the period
 * is not extended: renewing it is a payment for the new plan). Due once the period it was
 * scheduled against has ended: pending_plan_effective_at <= now and current_period_end <= now (a
 * renewal of the current plan paid meanwhile moves it to the end of the renewed period; the same
 * rule billing.effective_plan reads). Recorded at the time it was due, the later of the two.
 * Returns the subscriptions moved.
 */
create function billing.apply_due_downgrades(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('downgraded', 'system', p_reason => 'scheduled downgrade applied at the period end',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
    select s.id, s.plan_id as old_plan_id,
           greatest(s.pending_plan_effective_at, s.current_period_end) as due_at
    from public.subscriptions s
    where s.pending_plan_id is not null and s.pending_plan_effective_at <= v_now and s.current_period_end <= v_now
      and s.status in ('active', 'past_due')
    order by s.pending_plan_effective_at
    limit p_limit
    for update skip locked
  ), moved as (
    update public.subscriptions s
    set plan_id = s.pending_plan_id, pending_plan_id = null, pending_plan_effective_at = null
    where s.id = any (array(select d.id from due d))
    returning s.id, s.organization_id, s.plan_id, s.status
  ), note as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select m.organization_id, m.id, 'plan_downgraded',
           pg_catalog.jsonb_build_object('old_plan_id', d.old_plan_id, 'new_plan_id', m.plan_id,
                                         'effective_at', d.due_at),
           pg_catalog.format('plan_downgraded:%s:%s', m.id, extract(epoch from d.due_at)::bigint)
    from moved m join due d on d.id = m.id
    on conflict (dedupe_key) do nothing
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;
revoke execute on function billing.apply_due_downgrades(integer, timestamptz, jsonb) from public;

/**
 * billing-expire, step (3): Trials that ended unpaid: the free plan applies. Returns the
 * subscriptions moved.
 */
create function billing.end_unpaid_trials(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('trial_ended', 'system', p_reason => 'trial ended unpaid: the free plan applies',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
    select s.id from public.subscriptions s
    where s.status = 'trialing' and s.trial_end <= v_now and not s.cancel_at_period_end
    order by s.trial_end
    limit p_limit
    for update skip locked
  ), moved as (
    update public.subscriptions s set status = 'expired', ended_at = s.trial_end
    where s.id = any (array(select d.id from due d))
    returning s.id, s.organization_id, s.plan_id, s.trial_end
  ), note as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select m.organization_id, m.id, 'trial_ended',
           pg_catalog.jsonb_build_object('plan_id', m.plan_id, 'trial_end', m.trial_end),
           'trial_ended:' || m.id
    from moved m
    on conflict (dedupe_key) do nothing
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;
revoke execute on function billing.end_unpaid_trials(integer, timestamptz, jsonb) from public;

/**
 * billing-expire, step (4): Periods that ended unpaid: past due (the plan stays through the grace
 * days). Returns the subscriptions moved.
 */
create function billing.mark_past_due(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('past_due', 'system', p_reason => 'period ended unpaid',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
    select s.id from public.subscriptions s
    where s.status = 'active' and s.current_period_end <= v_now and not s.cancel_at_period_end
    order by s.current_period_end
    limit p_limit
    for update skip locked
  ), moved as (
    update public.subscriptions s set status = 'past_due'
    where s.id = any (array(select d.id from due d))
    returning s.id, s.organization_id, s.plan_id, s.current_period_end
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;
revoke execute on function billing.mark_past_due(integer, timestamptz, jsonb) from public;

/**
 * billing-expire, step (5): Grace over: expired (the free plan applies). Returns the subscriptions
 * moved.
 */
create function billing.expire_after_grace(p_limit integer, p_now timestamptz, p_job jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := p_now;
  v_grace interval := billing.grace_interval();
  v_job jsonb := p_job;
  v_n integer;
begin
  perform billing.set_change_context('expired', 'system', p_reason => 'grace period over, still unpaid: the free plan applies',
                                     p_metadata => v_job, p_effective_at => v_now, p_when_due => true);
  with due as (
    select s.id from public.subscriptions s
    where s.status = 'past_due' and s.current_period_end <= v_now - v_grace and not s.cancel_at_period_end
      and s.provider_subscription_id is null
    order by s.current_period_end
    limit p_limit
    for update skip locked
  ), moved as (
    update public.subscriptions s set status = 'expired', ended_at = s.current_period_end + v_grace
    where s.id = any (array(select d.id from due d))
    returning s.id, s.organization_id, s.plan_id, s.current_period_end
  ), note as (
    insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    select m.organization_id, m.id, 'subscription_expired',
           pg_catalog.jsonb_build_object('plan_id', m.plan_id, 'period_end', m.current_period_end,
                                         'ended_at', m.current_period_end + v_grace),
           pg_catalog.format('subscription_expired:%s:%s', m.id, extract(epoch from m.current_period_end)::bigint)
    from moved m
    on conflict (dedupe_key) do nothing
  )
  -- The history rows are the trigger's (one per subscription moved, from the context above).
  select count(*)::integer into v_n from moved m;
  return v_n;
end;
$$;
revoke execute on function billing.expire_after_grace(integer, timestamptz, jsonb) from public;

/**
 * billing-expire, one batch: (1) cancellations scheduled for the period end -> canceled;
 * (2) downgrades due (their date and the period end both passed) -> the pending plan; (3) trials
 * past trial_end -> expired (free plan);
 * (4) active past the period end -> past_due; (5) past_due past the grace days -> expired
 * (not Razorpay recurring subscriptions: their end is the provider's, through its events).
 * A subscription a week overdue goes through (4) and (5) in one run.
 */
create function billing.expire_batch(p_limit integer)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_job jsonb := pg_catalog.jsonb_build_object('job', 'billing-expire', 'ran_at', v_now);
  v_left integer := p_limit;
begin
  v_left := v_left - billing.expire_scheduled_cancellations(v_left, v_now, v_job);
  if v_left > 0 then
    v_left := v_left - billing.apply_due_downgrades(v_left, v_now, v_job);
  end if;
  if v_left > 0 then
    v_left := v_left - billing.end_unpaid_trials(v_left, v_now, v_job);
  end if;
  if v_left > 0 then
    v_left := v_left - billing.mark_past_due(v_left, v_now, v_job);
  end if;
  if v_left > 0 then
    v_left := v_left - billing.expire_after_grace(v_left, v_now, v_job);
  end if;
  return p_limit - v_left;
end;
$$;
revoke execute on function billing.expire_batch(integer) from public;

/**
 * billing-renewal-reminders, one batch: for subscriptions we bill ourselves (no provider
 * subscription), active and not cancelling, a 'renewal_reminder' 7 days before the period end
 * (sent from 7 days down to 1 day before) and another 1 day before (the last 24 hours); for
 * Razorpay recurring subscriptions, the 'pre_debit_notice' in the 24 hours before the charge.
 * The plan and amount quoted are the renewal's: the pending plan when a downgrade is scheduled
 * (it applies at this period end), with current_plan_code the plan running now.
 * Deduplicated per subscription, reminder and period end.
 * Then, within what is left of p_limit, a 'trial_ending' for each trial not set to cancel whose
 * trial ends in the next 3 days, deduplicated per subscription and trial end.
 */
create function billing.renewal_reminders_batch(p_limit integer)
returns integer
language plpgsql
set search_path = ''
as $$
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
$$;
revoke execute on function billing.renewal_reminders_batch(integer) from public;

/**
 * billing-dunning, one batch: a 'dunning_reminder' on day 1 of an unpaid period end (the first
 * two days after it) and on day 3 (from two days after it until the grace ends), for active or
 * past_due subscriptions not cancelling. Decided by time, so it does not wait for billing-expire.
 * Deduplicated per subscription, day and period end.
 */
create function billing.dunning_batch(p_limit integer)
returns integer
language plpgsql
set search_path = ''
as $$
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
$$;
revoke execute on function billing.dunning_batch(integer) from public;

/** pg_cron 'billing-expire': see billing.expire_batch. Returns the subscriptions changed. */
create function billing.job_expire(p_limit integer default 10000)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('billing-expire', 'billing.expire_batch(integer)', p_limit);
end;
$$;
revoke execute on function billing.job_expire(integer) from public;

/** pg_cron 'billing-renewal-reminders': see billing.renewal_reminders_batch. Returns the notifications queued. */
create function billing.job_renewal_reminders(p_limit integer default 10000)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('billing-renewal-reminders', 'billing.renewal_reminders_batch(integer)', p_limit);
end;
$$;
revoke execute on function billing.job_renewal_reminders(integer) from public;

/** pg_cron 'billing-dunning': see billing.dunning_batch. Returns the notifications queued. */
create function billing.job_dunning(p_limit integer default 10000)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('billing-dunning', 'billing.dunning_batch(integer)', p_limit);
end;
$$;
revoke execute on function billing.job_dunning(integer) from public;
