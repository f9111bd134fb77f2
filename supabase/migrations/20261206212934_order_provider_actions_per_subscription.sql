-- What this migration does: provider actions get a queue order (seq, an identity) and one
-- provider subscription's actions are claimed one at a time in that order. Two change_plan
-- actions of one subscription (an upgrade, then a downgrade) queued at the same instant ran
-- concurrently in a worker's batch, so Stripe could end on either price, and the plan a renewal
-- paid for (billing.mandate_debit_amount: the latest change_plan) was picked by a random id:
-- the renewal was refused as a mismatch. Rows already queued are numbered in no particular order
-- (they were queued at distinct times in production; created_at still orders them first).
--
-- order_provider_actions_per_subscription: drafted by `npm run db:diff -- order_provider_actions_per_subscription` from the difference between the database the
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

ALTER TABLE "billing"."provider_actions"
  ADD COLUMN "seq" bigint GENERATED ALWAYS AS IDENTITY NOT NULL;

CREATE OR REPLACE FUNCTION billing.claim_provider_actions (
  p_limit integer DEFAULT 20
)
  RETURNS SETOF billing.provider_actions
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'p_limit must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  return query
    with claimed as (
      select a.id from billing.provider_actions a
      where ((a.state = 'pending' and a.next_attempt_at <= v_now)
             or (a.state = 'running' and a.locked_until <= v_now))
        -- One provider subscription's actions one at a time, in the order they were queued: a
        -- worker runs its batch concurrently, and the last price switch to reach the provider is
        -- the price it charges, so a later action waits for the earlier ones to be done.
        and not exists (
          select 1 from billing.provider_actions e
          where e.organization_id = a.organization_id and e.provider = a.provider and e.seq < a.seq
            and e.state in ('pending', 'running')
            and e.target ->> 'provider_subscription_id' = a.target ->> 'provider_subscription_id')
      order by a.next_attempt_at, a.seq
      limit p_limit
      for update skip locked
    )
    update billing.provider_actions a
    set state = 'running', attempts = a.attempts + 1, locked_until = v_now + interval '5 minutes'
    from claimed c
    where a.id = c.id
    returning a.*;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.mandate_debit_amount (
  p_order public.orders,
  OUT     amount_cents bigint,
  OUT     discounted boolean,
  OUT     plan_id uuid
)
  RETURNS record
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_terms jsonb;
  v_change jsonb;
begin
  discounted := false;
  amount_cents := p_order.amount_cents;
  plan_id := p_order.plan_id;
  select a.payload into v_change
  from billing.provider_actions a
  where a.kind = 'change_plan' and a.state = 'succeeded' and a.provider = p_order.provider
    and a.target ->> 'provider_subscription_id' = p_order.provider_subscription_id
    and a.created_at >= p_order.created_at and a.payload ? 'price_amount'
  order by a.created_at desc, a.seq desc
  limit 1;
  if v_change is not null then
    amount_cents := (v_change ->> 'price_amount')::bigint;
    select p.id into plan_id from public.billing_plans p where p.code = v_change ->> 'plan_code';
    plan_id := coalesce(plan_id, p_order.plan_id);
    return;
  end if;
  if p_order.discount_redemption_id is null or p_order.discount_cents = 0 then
    return;
  end if;
  select r.terms into v_terms from public.discount_redemptions r where r.id = p_order.discount_redemption_id;
  discounted := v_terms ->> 'duration' = 'forever'
    or (v_terms ->> 'duration' = 'repeating'
        and (select count(*) from public.orders o
             where o.discount_redemption_id = p_order.discount_redemption_id and o.status = 'paid')
            < (v_terms ->> 'periods')::integer);
  if not discounted then
    amount_cents := coalesce(p_order.list_cents, p_order.amount_cents + p_order.discount_cents);
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.restore_provider_plan()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;
