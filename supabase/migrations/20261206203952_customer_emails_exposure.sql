-- What this migration does: follows up customer_emails with what the checks asked for.
--   - public.confirm_billing_email becomes a security invoker wrapper over the security definer
--     billing.confirm_billing_email (no security definer function anon can run in public).
--   - billing.metric_display_name is plpgsql (no sql-language function with a search_path).
--   - billing.billing_email_confirmations has no RLS flag (a private table: service_role only,
--     like the other tables of billing).
--   - billing.settle_usage: settling a row settled before alerts on what the settlement adds.
-- customer_emails_exposure: drafted by `npm run db:diff -- customer_emails_exposure` from the difference between the database the
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

DROP FUNCTION "billing"."metric_display_name"(text);

ALTER TABLE "billing"."billing_email_confirmations"
  DISABLE ROW LEVEL SECURITY;

CREATE OR REPLACE FUNCTION billing.confirm_billing_email (
  p_token text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_c billing.billing_email_confirmations;
  v_org public.organizations;
begin
  select * into v_c from billing.billing_email_confirmations c where c.token = btrim(coalesce(p_token, '')) for update;
  if not found then
    raise exception 'this confirmation link is not valid' using errcode = 'no_data_found';
  end if;
  select * into v_org from public.organizations o where o.id = v_c.organization_id for update;
  if lower(v_org.billing_email) is distinct from lower(v_c.email) then
    raise exception 'superseded: the billing email was changed after this link was sent; use the newest link'
      using errcode = 'invalid_parameter_value';
  end if;
  if v_c.confirmed_at is null then
    if v_c.expires_at <= billing.now() then
      raise exception 'expired: this confirmation link expired at %; save the billing email again for a new link',
        v_c.expires_at using errcode = 'invalid_parameter_value';
    end if;
    update billing.billing_email_confirmations c set confirmed_at = billing.now() where c.id = v_c.id
    returning * into v_c;
    update public.organizations o set billing_email_confirmed_at = v_c.confirmed_at
    where o.id = v_org.id and o.billing_email_confirmed_at is null;
  end if;
  return pg_catalog.jsonb_build_object('organization_id', v_org.id, 'billing_email', v_org.billing_email,
                                       'confirmed_at', v_c.confirmed_at);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.metric_display_name (
  p_metric text
)
  RETURNS text
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return coalesce((select c.display_name from public.usage_metric_catalog c where c.metric = p_metric),
                  pg_catalog.replace(p_metric, '_', ' '));
end;
$function$;

CREATE OR REPLACE FUNCTION billing.settle_usage (
  p_organization_id uuid,
  p_request_id      text,
  p_actual_amount   bigint,
  p_metric          text                               DEFAULT NULL::text,
  OUT               allowed boolean,
  OUT               used bigint,
  OUT               limit_amount bigint,
  OUT               remaining bigint,
  OUT               resets_at timestamp with time zone
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_metric record;
  v_plan record;
  v_answer record;
  v_matches integer;
  v_units bigint;
  v_charge record;
begin
  if p_actual_amount is null or p_actual_amount < 0 then
    raise exception 'settle_usage: actual amount must be zero or more, got %', coalesce(p_actual_amount::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  select count(*) into v_matches
  from public.usage_metrics m
  where m.organization_id = p_organization_id and m.request_id = p_request_id
    and (p_metric is null or m.metric = p_metric);
  if v_matches = 0 then
    raise exception 'settle_usage: no counted request % for organization %', p_request_id, p_organization_id
      using errcode = 'no_data_found';
  elsif v_matches > 1 then
    raise exception 'settle_usage: request % was counted under several metrics: name one', p_request_id
      using errcode = 'invalid_parameter_value';
  end if;

  select m.* into v_metric
  from public.usage_metrics m
  where m.organization_id = p_organization_id and m.request_id = p_request_id
    and (p_metric is null or m.metric = p_metric)
  for update;
  if v_metric.state = 'released' then
    raise exception 'settle_usage: request % was released', p_request_id
      using errcode = 'invalid_parameter_value';
  end if;

  v_plan := billing.effective_plan(p_organization_id, billing.now());
  v_answer := billing.apply_usage_delta(p_organization_id, v_metric.metric, v_metric.window_units,
                                        v_metric.occurred_at, v_plan.timezone, v_plan.features,
                                        p_actual_amount - v_metric.amount,
                                        -- Settled use grows by the amount settled (a row settled
                                        -- before: by what this settlement adds).
                                        p_settled => case when v_metric.state = 'settled' then p_actual_amount - v_metric.amount
                                                          else p_actual_amount end);
  if v_answer.allowed then
    v_units := v_metric.credit_units;
    if v_units > 0 and p_actual_amount < v_metric.amount then
      v_units := greatest(v_units - (v_metric.amount - p_actual_amount), 0);
      select c.credits, c.quantity into v_charge from public.credit_charges c
      where c.organization_id = p_organization_id and c.request_id = v_metric.credit_request_id;
      perform billing.settle_credits(p_organization_id, v_metric.credit_request_id,
                                     pg_catalog.ceil(v_charge.credits::numeric * v_units / v_charge.quantity)::bigint);
    end if;
    update public.usage_metrics m
    set amount = p_actual_amount, state = 'settled', credit_units = v_units,
        used = v_answer.used, limit_amount = v_answer.limit_amount, resets_at = v_answer.resets_at
    where m.id = v_metric.id;
  end if;
  allowed := v_answer.allowed;
  used := v_answer.used;
  limit_amount := v_answer.limit_amount;
  remaining := v_answer.remaining;
  resets_at := v_answer.resets_at;
end;
$function$;

CREATE OR REPLACE FUNCTION public.confirm_billing_email (
  p_token text
)
  RETURNS jsonb
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return billing.confirm_billing_email(p_token);
end;
$function$;

REVOKE ALL ON FUNCTION "billing"."confirm_billing_email"(text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."confirm_billing_email"(text) TO "anon", "authenticated", "service_role";

REVOKE ALL ON FUNCTION "billing"."metric_display_name"(text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."metric_display_name"(text) TO "service_role";
