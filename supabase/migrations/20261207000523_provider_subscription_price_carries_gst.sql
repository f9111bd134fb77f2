-- What this migration does: the price a plan change sets on a provider subscription (Stripe's
-- change_plan price_amount, what each later renewal charges and our renewal order expects) carries
-- its GST, as the subscription's first order and its renewals do; it was the price plus GST, so a
-- subscription that changed plan renewed 18 % dearer than one bought at that plan. Actions
-- already carried out keep their price until the next plan change.
-- provider_subscription_price_carries_gst: drafted by `npm run db:diff -- provider_subscription_price_carries_gst` from the difference between the database the
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

CREATE OR REPLACE FUNCTION billing.provider_plan_change_action (
  p_sub   public.subscriptions,
  p_to    public.billing_plans,
  p_quote jsonb,
  p_order public.orders
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;
