-- What this migration does: the rules of the plan in effect are one SQL query,
-- billing.effective_plan_rows, which the planner inlines into its callers (no SET clause, so it
-- may be inlined: the exception to set search_path, explained on the function).
-- get_entitlements, effective_tier, get_usage and the organization_entitlements view read it in
-- one query; billing.effective_plan keeps its arguments and columns and returns its one row.
-- The view is dropped and created again because its function changed. No data changes.
--
-- effective_plan_inlined: drafted by `npm run db:diff -- effective_plan_inlined` from the difference between the database the
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

DROP VIEW "public"."organization_entitlements";

CREATE OR REPLACE FUNCTION billing.effective_plan (
  p_organization_id uuid,
  p_at              timestamp with time zone,
  OUT               organization_id uuid,
  OUT               timezone text,
  OUT               plan_id uuid,
  OUT               plan_code text,
  OUT               tier text,
  OUT               features jsonb,
  OUT               reason text,
  OUT               in_grace boolean,
  OUT               subscription_id uuid,
  OUT               subscription_status public.subscription_status,
  OUT               current_period_end timestamp with time zone,
  OUT               grace_ends_at timestamp with time zone
)
  RETURNS record
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  select e.organization_id, e.timezone, e.plan_id, e.plan_code, e.tier, e.features, e.reason, e.in_grace,
         e.subscription_id, e.subscription_status, e.current_period_end, e.grace_ends_at
  into organization_id, timezone, plan_id, plan_code, tier, features, reason, in_grace,
       subscription_id, subscription_status, current_period_end, grace_ends_at
  from billing.effective_plan_rows(p_organization_id, p_at) e;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.effective_plan_rows (
  p_organization_id uuid,
  p_at              timestamp with time zone
)
  RETURNS TABLE (
    organization_id     uuid,
    timezone            text,
    plan_id             uuid,
    plan_code           text,
    tier                text,
    features            jsonb,
    reason              text,
    in_grace            boolean,
    subscription_id     uuid,
    subscription_status public.subscription_status,
    current_period_end  timestamp with time zone,
    grace_ends_at       timestamp with time zone
  )
  LANGUAGE sql
  STABLE
  AS $function$
  select o.id, o.timezone,
         coalesce(p.id, f.id), coalesce(p.code, f.code), coalesce(p.tier::pg_catalog.text, f.tier::pg_catalog.text),
         coalesce(p.features, f.features),
         case when o.id is not null then coalesce(s.reason, 'free') end,
         case when o.id is not null then coalesce(s.paid and s.reason = 'grace', false) end,
         s.id, s.status, s.current_period_end, s.grace_ends_at
  from (select) as one
  left join public.organizations o on o.id = p_organization_id
  -- The live subscription (a unique index keeps it to one), else the latest that ended, with what
  -- it means at p_at: computed here, once, for the one row kept.
  left join lateral (
    select s.id, s.status, s.plan_id, s.current_period_end, s.pending_plan_id, s.pending_plan_effective_at,
           g.grace_ends_at, r.reason,
           -- 'past_due' inside the period keeps the plan; after the period it means the grace ran out.
           r.reason in ('trial', 'active', 'grace') or (r.reason = 'past_due' and p_at < s.current_period_end) as paid
    from public.subscriptions s
    -- The grace setting is read (an InitPlan) only by a row that needs it.
    cross join lateral (
      select case when s.status in ('active', 'past_due')
                  then s.current_period_end + (select billing.grace_interval()) end as grace_ends_at
    ) g
    cross join lateral (
      select case
        when s.status = 'trialing' then
          case when p_at < coalesce(s.trial_end, s.current_period_end) then 'trial' else 'expired' end
        when s.status in ('active', 'past_due') then
          case
            when p_at < s.current_period_end then s.status::pg_catalog.text
            when s.cancel_at_period_end then 'canceled'
            when p_at < g.grace_ends_at then 'grace'
            when s.status = 'past_due' then 'past_due'
            else 'expired'
          end
        when s.status = 'canceled' then 'canceled'
        else 'expired'
      end as reason
    ) r
    where s.organization_id = o.id and s.status in ('trialing', 'active', 'past_due', 'canceled', 'expired')
    order by s.status in ('trialing', 'active', 'past_due') desc, s.created_at desc
    limit 1
  ) s on true
  -- One plan row, by its primary key (the paid plan, or the pending one once due) or the one
  -- active free plan (its unique index); the subqueries keep each an index lookup.
  left join lateral (
    select p.id, p.code, p.tier, p.features
    from public.billing_plans p
    where s.paid
      and p.id = case when s.pending_plan_id is not null and s.pending_plan_effective_at <= p_at
                           and s.current_period_end <= p_at
                      then s.pending_plan_id else s.plan_id end
    limit 1
  ) p on true
  left join lateral (
    select f.id, f.code, f.tier, f.features
    from public.billing_plans f
    where o.id is not null and not coalesce(s.paid, false) and f.tier = 'free' and f.active
    limit 1
  ) f on true
$function$;

CREATE OR REPLACE FUNCTION billing.get_usage (
  p_organization_id uuid
)
  RETURNS TABLE (
    metric       text,
    window_unit  public.usage_window,
    scope        text,
    used         bigint,
    limit_amount bigint,
    remaining    bigint,
    percent      numeric,
    window_start timestamp with time zone,
    resets_at    timestamp with time zone
  )
  LANGUAGE plpgsql
  STABLE
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_user uuid := auth.uid();
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  return query
    -- The plan lookup once (the rules of billing.effective_plan_rows, inlined), then the plan's
    -- keys: they are validated on write (billing.validate_plan_features), so a key ending in
    -- _per_<window> is a metered limit: plain string tests, far cheaper than a regexp. Each
    -- window's counter is one primary-key lookup (an organization has a row per minute window).
    with plan as materialized (
      select e.timezone, e.features, v_now at time zone e.timezone as local
      from billing.effective_plan_rows(p_organization_id, v_now) e
    ),
    windows as materialized (
      select k.metric, k.unit::public.usage_window as unit, k.lim,
             case when k.metric = 'ai_requests' then 'user' else 'organization' end as scope,
             case when k.metric = 'ai_requests' then billing.ai_rate_metric(v_user) else k.metric end as counter,
             pg_catalog.date_trunc(k.unit, k.local) at time zone k.timezone as starts,
             (pg_catalog.date_trunc(k.unit, k.local) + ('1 ' || k.unit)::interval) at time zone k.timezone as ends
      from (
        select pl.timezone, pl.local, pg_catalog.left(f.key, -5 - pg_catalog.length(u.unit)) as metric, u.unit,
               case when pg_catalog.jsonb_typeof(f.value) = 'number' then (f.value #>> '{}')::bigint end as lim
        from plan pl
        cross join lateral pg_catalog.jsonb_each(pl.features) f
        cross join lateral (
          select case when f.key like '%\_per\_minute' then 'minute' when f.key like '%\_per\_hour' then 'hour'
                      when f.key like '%\_per\_day' then 'day' when f.key like '%\_per\_month' then 'month' end as unit
          offset 0) u
        where u.unit is not null
      ) k
      where k.metric <> 'ai_requests' or v_user is not null
    )
    select w.metric, w.unit, w.scope, c.used, w.lim,
           case when w.lim is not null then greatest(w.lim - c.used, 0) end,
           case when w.lim is null then null::numeric
                when w.lim = 0 then 100.0
                else pg_catalog.round(c.used * 100.0 / w.lim, 1) end,
           w.starts, w.ends
    from windows w
    cross join lateral (
      select coalesce((select q.count from public.usage_quotas q
                       where q.organization_id = p_organization_id and q.metric = w.counter
                         and q.window_unit = w.unit and q.window_start = w.starts), 0)::bigint as used) c
    order by w.metric, w.unit;
end;
$function$;

CREATE OR REPLACE FUNCTION public.effective_tier (
  p_organization_id uuid
)
  RETURNS text
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
begin
  -- As get_entitlements: the membership check first (a one-time filter), then the rules inlined.
  return (select coalesce(e.tier, 'free') from billing.effective_plan_rows(p_organization_id, v_now) e
          where billing.require_role(p_organization_id, enum_range(null::public.member_role)) is not null);
end;
$function$;

CREATE OR REPLACE FUNCTION public.get_entitlements (
  p_organization_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
begin
  -- One query: the membership check is a one-time filter evaluated before anything is read (it
  -- raises for a non-member), then the rules (billing.effective_plan_rows) inlined.
  return (
    select pg_catalog.jsonb_build_object(
      'organization_id', e.organization_id,
      'plan_code', e.plan_code,
      'tier', coalesce(e.tier, 'free'),
      'status', coalesce(e.subscription_status::text, 'free'),
      'reason', e.reason,
      'in_grace', e.in_grace,
      'current_period_end', e.current_period_end,
      'grace_ends_at', e.grace_ends_at,
      'features', coalesce(e.features, '{}'::jsonb),
      'credits', billing.available_credits(p_organization_id))
    from billing.effective_plan_rows(p_organization_id, v_now) e
    where billing.require_role(p_organization_id, enum_range(null::public.member_role)) is not null);
end;
$function$;

CREATE VIEW "public"."organization_entitlements" WITH (security_invoker=true) AS  SELECT e.organization_id,
    e.plan_code,
    COALESCE(e.tier, 'free'::text) AS tier,
    COALESCE((e.subscription_status)::text, 'free'::text) AS status,
    e.reason,
    e.in_grace,
    e.current_period_end,
    e.grace_ends_at,
    COALESCE(e.features, '{}'::jsonb) AS features
   FROM (public.organizations o
     CROSS JOIN LATERAL billing.effective_plan_rows(o.id, billing.now()) e(organization_id, timezone, plan_id, plan_code, tier, features, reason, in_grace, subscription_id, subscription_status, current_period_end, grace_ends_at));

REVOKE ALL ON TABLE "public"."organization_entitlements" FROM "anon";

COMMENT ON VIEW "public"."organization_entitlements" IS 'The entitlements of every organization the caller is a member of.';

REVOKE ALL ON FUNCTION "billing"."effective_plan_rows"(uuid, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."effective_plan_rows"(uuid, timestamp WITH time zone) TO "authenticated", "service_role";

REVOKE ALL ON TABLE "public"."organization_entitlements" FROM "authenticated";

GRANT SELECT ON TABLE "public"."organization_entitlements" TO "authenticated";

REVOKE ALL ON TABLE "public"."organization_entitlements" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."organization_entitlements" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."organization_entitlements" TO "service_role";
