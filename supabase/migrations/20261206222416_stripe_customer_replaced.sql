-- What this migration does: a Stripe customer deleted in Stripe's dashboard no longer fails every
-- later checkout of its organization: the checkout makes a new customer and
-- billing.attach_provider_checkout records it in the deleted one's place (p_replaces_customer_id,
-- compare and replace), so service_role may now update billing.provider_customers.
-- stripe_customer_replaced: drafted by `npm run db:diff -- stripe_customer_replaced` from the difference between the database the
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

DROP FUNCTION "billing"."attach_provider_checkout"(uuid, text, text, text);

CREATE OR REPLACE FUNCTION billing.attach_provider_checkout (
  p_order_id                 uuid,
  p_provider_order_id        text,
  p_provider_subscription_id text DEFAULT NULL::text,
  p_provider_customer_id     text DEFAULT NULL::text,
  p_replaces_customer_id     text DEFAULT NULL::text
)
  RETURNS public.orders
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_order public.orders;
begin
  if (p_provider_order_id is null) = (p_provider_subscription_id is null) then
    raise exception 'exactly one of the provider order id and the provider subscription id is required'
      using errcode = 'invalid_parameter_value';
  end if;
  update public.orders o
  set provider_order_id = p_provider_order_id,
      provider_subscription_id = p_provider_subscription_id,
      status = 'pending'
  where o.id = p_order_id and o.status = 'created'
  returning * into v_order;
  if v_order.id is null then
    raise exception 'order % is not a checkout waiting for its provider order', p_order_id
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if p_provider_customer_id is not null and p_replaces_customer_id is not null then
    -- Compare and replace: only the customer found gone is replaced, so two checkouts that both
    -- found it gone cannot swap the organization between two new customers.
    update billing.provider_customers pc
    set provider_customer_id = p_provider_customer_id
    where pc.organization_id = v_order.organization_id and pc.provider = v_order.provider
      and pc.provider_customer_id = p_replaces_customer_id;
  elsif p_provider_customer_id is not null then
    insert into billing.provider_customers (organization_id, provider, provider_customer_id)
    values (v_order.organization_id, v_order.provider, p_provider_customer_id)
    on conflict (organization_id, provider) do nothing;
  end if;
  return v_order;
end;
$function$;

REVOKE ALL ON FUNCTION "billing"."attach_provider_checkout"(uuid, text, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."attach_provider_checkout"(uuid, text, text, text, text) TO "service_role";

REVOKE ALL ON TABLE "billing"."provider_customers" FROM "service_role";

GRANT INSERT, SELECT, UPDATE ON TABLE "billing"."provider_customers" TO "service_role";
