-- What this migration does: a provider's period end adopted at the start of a run of periods
-- moves the run's anchor with it (extend_subscription_for_payment), so a Stripe renewal extends
-- the period (the anchor kept at our now, with its fraction of a second, made the next period end
-- a fraction of a second after its start); a payment event may say whether the provider ends the
-- subscription at its period end (validate_payment_event), kept in
-- billing.provider_subscription_states.cancel_at_period_end, and our subscription's
-- cancel_at_period_end follows it when it turns (follow_provider_subscription).
--
-- stripe_renewals_and_provider_cancel_at_period_end: drafted by `npm run db:diff -- stripe_renewals_and_provider_cancel_at_period_end` from the difference between the database the
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

ALTER TABLE "billing"."provider_subscription_states"
  ADD COLUMN "cancel_at_period_end" boolean;

CREATE OR REPLACE FUNCTION billing.extend_subscription_for_payment (
  p_order                    public.orders,
  p_provider_subscription_id text,
  p_event                    jsonb,
  p_payment_event_id         uuid
)
  RETURNS public.subscriptions
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_psid text := p_provider_subscription_id;
  v_interval public.billing_interval;
  v_timezone text;
  v_sub public.subscriptions;
  v_old public.subscriptions;
  v_start timestamptz := v_now;
  v_end timestamptz;
  v_anchor timestamptz;
  v_action text;
begin
  select p.interval into v_interval from public.billing_plans p where p.id = p_order.plan_id;
  select o.timezone into v_timezone from public.organizations o where o.id = p_order.organization_id;
  if v_psid is not null then
    select * into v_old from public.subscriptions s
    where s.provider = p_order.provider and s.provider_subscription_id = v_psid
    for update;
  end if;
  if v_old.id is null then
    select * into v_old from public.subscriptions s
    where s.organization_id = p_order.organization_id
      and s.status in ('pending_payment', 'trialing', 'active', 'past_due')
    for update;
  end if;

  if v_old.id is null then
    v_action := 'activated';
    v_anchor := v_start;
  else
    if v_old.plan_id <> p_order.plan_id then
      v_action := 'plan_changed';
    else
      if v_old.current_period_end is not null and v_old.current_period_end + billing.grace_interval() >= v_now then
        v_start := v_old.current_period_end;
      end if;
      v_action := case when v_old.status = 'pending_payment' or v_old.current_period_end is null then 'activated'
                       else 'renewed' end;
    end if;
    -- Extending from the period end continues the run of periods (its anchor); anything else
    -- starts a new run at v_start.
    v_anchor := case when v_start = v_old.current_period_end then coalesce(v_old.period_anchor, v_start) else v_start end;
  end if;
  v_end := billing.period_end_after(v_start, v_interval, v_timezone, v_anchor);
  -- A provider that bills the period itself (Stripe: the invoice line's period) names its end in
  -- the event: that end is the period, while it is within two days of the one computed here (a
  -- calendar in another time zone); further off, the event is not about this period (a renewal
  -- applied before the one before it) and ours stands.
  if p_event ->> 'period_end' is not null
     and (p_event ->> 'period_end')::timestamptz between v_end - interval '2 days' and v_end + interval '2 days' then
    -- A run that starts here follows the provider's calendar from its first period: the anchor
    -- moves with the end. Kept at our now (with its fraction of a second) while the provider's
    -- periods end on whole seconds, the next period's end would fall a fraction of a second
    -- after its start, and no renewal would ever move the period.
    if v_anchor = v_start then
      v_anchor := v_anchor + ((p_event ->> 'period_end')::timestamptz - v_end);
    end if;
    v_end := (p_event ->> 'period_end')::timestamptz;
  end if;

  perform billing.set_change_context(v_action, 'provider',
    p_reason => pg_catalog.format('%s payment %s captured (%s)', p_order.provider, p_event ->> 'provider_payment_id',
                                  p_event ->> 'event_type'),
    p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'order_id', p_order.id,
                                                'payment_event_id', p_payment_event_id,
                                                'provider_payment_id', p_event ->> 'provider_payment_id',
                                                'period_start', v_start, 'period_end', v_end),
    p_effective_at => v_now);
  if v_old.id is null then
    insert into public.subscriptions
      (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id,
       period_anchor)
    values
      (p_order.organization_id, p_order.plan_id, 'active', v_start, v_end, p_order.provider, v_psid, v_anchor)
    returning * into v_sub;
  else
    update public.subscriptions s
    set plan_id = p_order.plan_id,
        status = case when s.status in ('pending_payment', 'trialing', 'active', 'past_due') then 'active' else s.status end,
        current_period_start = case when v_action = 'plan_changed' or s.current_period_end is null
                                         or s.current_period_end <= v_now
                                    then v_start else s.current_period_start end,
        current_period_end = v_end,
        period_anchor = v_anchor,
        pending_plan_id = case when v_action = 'plan_changed' then null else s.pending_plan_id end,
        pending_plan_effective_at = case when v_action = 'plan_changed' then null else s.pending_plan_effective_at end,
        cancel_at_period_end = false,
        canceled_at = case when v_action = 'plan_changed' then null
                           when s.status in ('canceled', 'expired') then s.canceled_at end,
        ended_at = case when v_action = 'plan_changed' then null else s.ended_at end,
        provider = case when v_psid is not null or s.provider_subscription_id is null then p_order.provider else s.provider end,
        provider_subscription_id = coalesce(v_psid, s.provider_subscription_id)
    where s.id = v_old.id
    returning * into v_sub;
  end if;
  return v_sub;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.follow_provider_subscription (
  p_event                    jsonb,
  p_provider_subscription_id text,
  p_status                   text,
  p_event_at                 timestamp with time zone,
  p_applied_payment          boolean
)
  RETURNS text
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_provider public.payment_provider := (p_event ->> 'provider')::public.payment_provider;
  v_changed boolean := false;
  v_flag boolean := (p_event ->> 'cancel_at_period_end')::boolean;
  v_old_flag boolean;
  v_sub public.subscriptions;
  v_state billing.provider_subscription_states;
begin
  if p_status is not null then
    select st.cancel_at_period_end into v_old_flag from billing.provider_subscription_states st
    where st.provider = v_provider and st.provider_subscription_id = p_provider_subscription_id
    for update;
    insert into billing.provider_subscription_states as st
      (provider, provider_subscription_id, status, status_at, event_id, cancel_at_period_end)
    values (v_provider, p_provider_subscription_id, p_status, p_event_at, p_event ->> 'event_id', v_flag)
    on conflict (provider, provider_subscription_id) do update
      set status = excluded.status, status_at = excluded.status_at, event_id = excluded.event_id,
          cancel_at_period_end = coalesce(excluded.cancel_at_period_end, st.cancel_at_period_end)
      where st.status_at <= excluded.status_at
    returning true into v_changed;
  end if;
  if not (coalesce(v_changed, false) or p_applied_payment) then
    return null;
  end if;
  select * into v_sub from public.subscriptions s
  where s.provider = v_provider and s.provider_subscription_id = p_provider_subscription_id;
  select * into v_state from billing.provider_subscription_states st
  where st.provider = v_provider and st.provider_subscription_id = p_provider_subscription_id;
  if v_sub.id is null or v_state.status is null then
    return null;
  end if;
  if not billing.sync_provider_status(v_sub.id, v_state.status, v_state.status_at, p_event) then
    return pg_catalog.format('subscription %s not moved to %s: the organization has another live subscription',
                             p_provider_subscription_id, v_state.status);
  end if;
  -- The provider turned its end at the period end (this event is its newest word): ours follows.
  if coalesce(v_changed, false) and v_flag is not null and v_flag is distinct from coalesce(v_old_flag, false) then
    select * into v_sub from public.subscriptions s where s.id = v_sub.id for update;
    if v_sub.status in ('trialing', 'active', 'past_due') and v_sub.cancel_at_period_end is distinct from v_flag then
      perform billing.set_change_context(case when v_flag then 'cancel_scheduled' else 'resumed' end, 'provider',
        p_reason => pg_catalog.format('%s %s: %s', p_event ->> 'provider', p_event ->> 'event_type',
                                      case when v_flag then 'the provider ends it at its period end'
                                           else 'the provider no longer ends it at its period end' end),
        p_metadata => pg_catalog.jsonb_build_object('event_id', p_event ->> 'event_id', 'provider_status', v_state.status,
                                                    'provider_subscription_id', p_provider_subscription_id,
                                                    'cancel_at_period_end', v_flag),
        p_effective_at => billing.now());
      update public.subscriptions s set cancel_at_period_end = v_flag where s.id = v_sub.id;
    end if;
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.validate_payment_event (
  p_event jsonb
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_field text;
  v_providers text[] := array(select p::text from pg_catalog.unnest(enum_range(null::public.payment_provider)) p
                              where p <> 'manual');
begin
  if p_event is null or pg_catalog.jsonb_typeof(p_event) <> 'object' then
    raise exception 'payment event must be a JSON object' using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(p_event ->> 'provider', '') <> all (v_providers) then
    raise exception 'payment event: provider must be %, got %',
      pg_catalog.regexp_replace(pg_catalog.array_to_string(
        array(select pg_catalog.format('"%s"', p) from pg_catalog.unnest(v_providers) p), ', '), ', ([^,]*)$', ' or \1'),
      coalesce(p_event -> 'provider', 'null'::jsonb)
      using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(p_event ->> 'kind', '') <> all (enum_range(null::billing.provider_event_kind)::text[]) then
    raise exception 'payment event: kind must be one of %, got %',
      pg_catalog.array_to_string(enum_range(null::billing.provider_event_kind)::text[], ', '),
      coalesce(p_event -> 'kind', 'null'::jsonb)
      using errcode = 'invalid_parameter_value';
  end if;
  foreach v_field in array array['event_id', 'event_type'] loop
    if pg_catalog.jsonb_typeof(p_event -> v_field) is distinct from 'string'
       or length(p_event ->> v_field) not between 1 and 300 then
      raise exception 'payment event: % is required (a string of 1 to 300 characters)', v_field
        using errcode = 'invalid_parameter_value';
    end if;
  end loop;
  foreach v_field in array array['order_ref', 'provider_order_id', 'provider_payment_id', 'provider_subscription_id',
                                 'provider_refund_id', 'status', 'subscription_status', 'error_reason', 'method', 'currency',
                                 'occurred_at', 'period_end'] loop
    if coalesce(pg_catalog.jsonb_typeof(p_event -> v_field), 'null') not in ('null', 'string') then
      raise exception 'payment event: % must be a string or null', v_field using errcode = 'invalid_parameter_value';
    end if;
  end loop;
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'amount_paise'), 'null') <> 'null'
     and not billing.is_non_negative_integer(p_event -> 'amount_paise') then
    raise exception 'payment event: amount_paise must be a non-negative integer of paise, got %', p_event -> 'amount_paise'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_event ->> 'currency' is not null and p_event ->> 'currency' !~ '^[A-Z]{3}$' then
    raise exception 'payment event: currency must be three capital letters, got "%"', p_event ->> 'currency'
      using errcode = 'invalid_parameter_value';
  end if;
  foreach v_field in array array['occurred_at', 'period_end'] loop
    if p_event ->> v_field is not null then
      begin
        perform (p_event ->> v_field)::timestamptz;
      exception
        when data_exception then
          raise exception 'payment event: % must be an ISO 8601 timestamp, got "%"', v_field, p_event ->> v_field
            using errcode = 'invalid_parameter_value';
      end;
    end if;
  end loop;
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'cancel_at_period_end'), 'null') not in ('null', 'boolean') then
    raise exception 'payment event: cancel_at_period_end must be true, false or null, got %', p_event -> 'cancel_at_period_end'
      using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(pg_catalog.jsonb_typeof(p_event -> 'payload'), 'null') not in ('null', 'object') then
    raise exception 'payment event: payload must be an object or null' using errcode = 'invalid_parameter_value';
  end if;
end;
$function$;
