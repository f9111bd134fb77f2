-- The plan in effect, written once as an SQL query (billing.effective_plan_rows), pinned to the
-- rules as they were written before, in plpgsql (kept below as a test-only reference): every
-- organization in every state, at clock positions across trial end, period end, grace end and a
-- due downgrade, gets the same answer from the query, from billing.effective_plan, and from
-- effective_tier, get_entitlements, organization_entitlements and get_usage.
begin;
set local search_path = public, extensions;
select plan(16);

-- The reference: billing.effective_plan as it was in plpgsql, two queries and variables.
create function pg_temp.old_effective_plan(
  p_organization_id uuid, p_at timestamptz,
  out organization_id uuid, out timezone text, out plan_id uuid, out plan_code text, out tier text,
  out features jsonb, out reason text, out in_grace boolean, out subscription_id uuid,
  out subscription_status public.subscription_status, out current_period_end timestamptz,
  out grace_ends_at timestamptz)
language plpgsql stable set search_path = '' as $$
declare
  v_trial_end timestamptz;
  v_cancel_at_period_end boolean;
  v_paid_plan_id uuid;
  v_grace interval;
  v_paid boolean;
  v_paid_code text;
  v_paid_tier text;
  v_paid_features jsonb;
  v_free_id uuid;
  v_free_code text;
  v_free_tier text;
  v_free_features jsonb;
begin
  select o.id, o.timezone, s.id, s.status, p.id, s.current_period_end, s.trial_end, s.cancel_at_period_end,
         billing.grace_interval(),
         p.code, p.tier, p.features, f.id, f.code, f.tier, f.features
  into organization_id, timezone, subscription_id, subscription_status, v_paid_plan_id, current_period_end,
       v_trial_end, v_cancel_at_period_end, v_grace, v_paid_code, v_paid_tier, v_paid_features,
       v_free_id, v_free_code, v_free_tier, v_free_features
  from public.organizations o
  left join public.subscriptions s
    on s.organization_id = o.id and s.status in ('trialing', 'active', 'past_due')
  left join public.billing_plans p
    on p.id = case when s.pending_plan_id is not null and s.pending_plan_effective_at <= p_at
                        and s.current_period_end <= p_at
                   then s.pending_plan_id else s.plan_id end
  left join public.billing_plans f on f.tier = 'free' and f.active
  where o.id = p_organization_id;
  if not found then
    return;
  end if;
  if subscription_id is null then
    select s.id, s.status, s.plan_id, s.current_period_end
    into subscription_id, subscription_status, v_paid_plan_id, current_period_end
    from public.subscriptions s
    where s.organization_id = p_organization_id and s.status in ('canceled', 'expired')
    order by s.created_at desc
    limit 1;
  end if;
  reason := case
    when subscription_id is null then 'free'
    when subscription_status = 'trialing' then
      case when p_at < coalesce(v_trial_end, current_period_end) then 'trial' else 'expired' end
    when subscription_status in ('active', 'past_due') then
      case
        when p_at < current_period_end then subscription_status::text
        when v_cancel_at_period_end then 'canceled'
        when p_at < current_period_end + v_grace then 'grace'
        when subscription_status = 'past_due' then 'past_due'
        else 'expired'
      end
    when subscription_status = 'canceled' then 'canceled'
    else 'expired'
  end;
  v_paid := reason in ('trial', 'active', 'grace') or (reason = 'past_due' and p_at < current_period_end);
  in_grace := v_paid and reason = 'grace';
  if subscription_status in ('active', 'past_due') then
    grace_ends_at := current_period_end + v_grace;
  end if;
  if v_paid then
    plan_id := v_paid_plan_id; plan_code := v_paid_code; tier := v_paid_tier; features := v_paid_features;
  else
    plan_id := v_free_id; plan_code := v_free_code; tier := v_free_tier; features := v_free_features;
  end if;
end;
$$;

-- Plans: pro, and basic (the downgrade's target).
insert into public.billing_plans (id, code, name, tier, interval, price_cents, features) values
  ('e7000000-0000-4000-8000-00000000c001', 'rules_pro', 'Rules Pro', 'pro', 'month', 99900,
   '{"calls_per_day": 100, "calls_per_month": 1000, "seats_per_month": null}'),
  ('e7000000-0000-4000-8000-00000000c002', 'rules_basic', 'Rules Basic', 'basic', 'month', 49900,
   '{"calls_per_day": 10}');

-- Three organizations per state, their times 0, 1 and 2 days apart. T0 = 2026-05-01 00:00 UTC; an
-- organization's period ends at e = T0 + 5 days + k days; grace (3 days) ends at e + 3 days.
create temp table rules_orgs (id uuid primary key, state text, k integer, known boolean) on commit drop;
insert into rules_orgs
select ('e7000000-0000-4000-8000-' || lpad((st.n * 10 + k)::text, 12, '0'))::uuid, st.state, k, st.state <> 'unknown'
from (values (1, 'none'), (2, 'trial'), (3, 'trial ends before period'), (4, 'trial, cancel at period end'),
             (5, 'active'), (6, 'active, cancel at period end'), (7, 'past_due'), (8, 'past_due, cancel at period end'),
             (9, 'downgrade due at period end'), (10, 'downgrade due 2 days after period end'),
             (11, 'past_due, downgrade due at period end'), (12, 'canceled'), (13, 'expired'),
             (14, 'canceled, then expired'), (15, 'expired, then canceled'), (16, 'expired, then active'),
             (17, 'pending_payment'), (18, 'canceled, then pending_payment'), (19, 'unknown')) st(n, state)
cross join generate_series(0, 2) k;

insert into public.organizations (id, name)
select id, 'rules ' || state || ' ' || k from rules_orgs where known;

-- sub(state, status, plan, created_at offset, trial end, cancel flag, pending plan, pending at).
insert into public.subscriptions
  (organization_id, plan_id, status, current_period_start, current_period_end, trial_end, cancel_at_period_end,
   canceled_at, pending_plan_id, pending_plan_effective_at, created_at)
select o.id, case when x.basic then 'e7000000-0000-4000-8000-00000000c002'::uuid
                  else 'e7000000-0000-4000-8000-00000000c001'::uuid end,
       x.status::public.subscription_status, e - interval '1 month', e, e + x.trial, x.cancel,
       case when x.status = 'canceled' or x.cancel then e - interval '10 days' end,
       case when x.pending is not null then 'e7000000-0000-4000-8000-00000000c002'::uuid end, e + x.pending,
       '2026-03-01 00:00+00'::timestamptz + x.created
from rules_orgs o
cross join lateral (select '2026-05-06 00:00+00'::timestamptz + make_interval(days => o.k) as e) t
join (values
  ('trial', 'trialing', false, interval '0', false, null::interval, interval '0'),
  ('trial ends before period', 'trialing', false, interval '-2 days', false, null, interval '0'),
  ('trial, cancel at period end', 'trialing', false, interval '0', true, null, interval '0'),
  ('active', 'active', false, null, false, null, interval '0'),
  ('active, cancel at period end', 'active', false, null, true, null, interval '0'),
  ('past_due', 'past_due', false, null, false, null, interval '0'),
  ('past_due, cancel at period end', 'past_due', false, null, true, null, interval '0'),
  ('downgrade due at period end', 'active', false, null, false, interval '0', interval '0'),
  ('downgrade due 2 days after period end', 'active', false, null, false, interval '2 days', interval '0'),
  ('past_due, downgrade due at period end', 'past_due', false, null, false, interval '0', interval '0'),
  ('canceled', 'canceled', false, null, false, null, interval '0'),
  ('expired', 'expired', false, null, false, null, interval '0'),
  ('canceled, then expired', 'canceled', true, null, false, null, interval '0'),
  ('canceled, then expired', 'expired', false, null, false, null, interval '1 day'),
  ('expired, then canceled', 'expired', false, null, false, null, interval '0'),
  ('expired, then canceled', 'canceled', true, null, false, null, interval '1 day'),
  ('expired, then active', 'expired', true, null, false, null, interval '0'),
  ('expired, then active', 'active', false, null, false, null, interval '1 day'),
  ('pending_payment', 'pending_payment', false, null, false, null, interval '0'),
  ('canceled, then pending_payment', 'canceled', false, null, false, null, interval '0'),
  ('canceled, then pending_payment', 'pending_payment', true, null, false, null, interval '1 day')
) x(state, status, basic, trial, cancel, pending, created) on x.state = o.state;

-- Clock positions: T0, around the shortened trial's end (T0 + 3 days), around each period end
-- (T0 + 5, 6, 7 days), the late downgrade, around each grace end (T0 + 8, 9, 10 days), long after.
create temp table rules_clock (at timestamptz primary key) on commit drop;
insert into rules_clock
select '2026-05-01 00:00+00'::timestamptz + d::interval
from unnest(array['0', '3 days -1 second', '3 days', '5 days -1 second', '5 days', '5 days 12 hours', '6 days',
                  '7 days', '7 days 1 second', '8 days -1 second', '8 days', '9 days', '9 days 1 second',
                  '10 days', '10 days 12 hours', '40 days']) d;

-- The query and the reference, column for column, for every organization at every position.
create function pg_temp.mismatches() returns table (org text, at timestamptz, ours jsonb, reference jsonb)
language sql as $$
  select o.state || ' ' || o.k, c.at, pg_catalog.to_jsonb(n), pg_catalog.to_jsonb(r)
  from rules_orgs o
  cross join rules_clock c
  cross join lateral billing.effective_plan_rows(o.id, c.at) n
  cross join lateral pg_temp.old_effective_plan(o.id, c.at) r
  where pg_catalog.to_jsonb(n) is distinct from pg_catalog.to_jsonb(r)
     or pg_catalog.to_jsonb(billing.effective_plan(o.id, c.at)) is distinct from pg_catalog.to_jsonb(r)
  order by 1, 2
$$;

-- The public readers under the test clock (pinned at each position in turn), against the
-- reference: effective_tier, get_entitlements (but credits), the view and get_usage's windows.
create function pg_temp.public_mismatches()
returns table (org text, at timestamptz, reader text, ours text, reference text)
language plpgsql as $$
declare
  c record;
begin
  for c in select k.at from rules_clock k order by k.at loop
    perform pg_catalog.set_config('billing.now', c.at::text, true);
    return query
      with ref as (
        select o.id, o.state || ' ' || o.k as org, r.*
        from rules_orgs o cross join lateral pg_temp.old_effective_plan(o.id, c.at) r
        where o.known
      ),
      answers as (
        select ref.org, 'effective_tier' as reader, public.effective_tier(ref.id) as ours,
               coalesce(ref.tier, 'free') as reference
        from ref
        union all
        select ref.org, 'get_entitlements',
               (public.get_entitlements(ref.id) - 'credits')::text,
               pg_catalog.jsonb_build_object(
                 'organization_id', ref.organization_id, 'plan_code', ref.plan_code,
                 'tier', coalesce(ref.tier, 'free'), 'status', coalesce(ref.subscription_status::text, 'free'),
                 'reason', ref.reason, 'in_grace', ref.in_grace, 'current_period_end', ref.current_period_end,
                 'grace_ends_at', ref.grace_ends_at, 'features', coalesce(ref.features, '{}'::jsonb))::text
        from ref
        union all
        select ref.org, 'organization_entitlements',
               (select pg_catalog.to_jsonb(v) from public.organization_entitlements v where v.organization_id = ref.id)::text,
               pg_catalog.jsonb_build_object(
                 'organization_id', ref.organization_id, 'plan_code', ref.plan_code,
                 'tier', coalesce(ref.tier, 'free'), 'status', coalesce(ref.subscription_status::text, 'free'),
                 'reason', ref.reason, 'in_grace', ref.in_grace, 'current_period_end', ref.current_period_end,
                 'grace_ends_at', ref.grace_ends_at, 'features', coalesce(ref.features, '{}'::jsonb))::text
        from ref
        union all
        -- get_usage as postgres (no signed-in user): every metered limit but the per-user
        -- ai_requests ones, with its limit.
        select ref.org, 'get_usage',
               (select pg_catalog.string_agg(u.metric || '_per_' || u.window_unit || '=' || coalesce(u.limit_amount::text, 'null'), ','
                                             order by u.metric || '_per_' || u.window_unit)
                from public.get_usage(ref.id) u),
               (select pg_catalog.string_agg(f.key || '=' || coalesce(f.value #>> '{}', 'null'), ',' order by f.key)
                  from pg_catalog.jsonb_each(ref.features) f
                 where f.key ~ '_per_(minute|hour|day|month)$' and f.key !~ '^ai_requests_per_')
        from ref
      )
      select a.org, c.at, a.reader, a.ours, a.reference from answers a
      where a.ours is distinct from a.reference;
  end loop;
end;
$$;

-- The cases are there: every reason at some position, the downgrade and the grace.
select is(
  (select pg_catalog.array_agg(distinct r.reason order by r.reason)
   from rules_orgs o cross join rules_clock c cross join lateral pg_temp.old_effective_plan(o.id, c.at) r),
  array['active', 'canceled', 'expired', 'free', 'grace', 'past_due', 'trial', null],
  'the fixture reaches every reason (and nulls for unknown organizations)');

select is(
  (select pg_catalog.count(*)::integer from rules_orgs o cross join rules_clock c
   cross join lateral billing.effective_plan_rows(o.id, c.at) n),
  57 * 16, 'one row per organization and position, unknown organizations included');

select is_empty('select * from pg_temp.mismatches()',
  'effective_plan_rows and effective_plan answer as the reference for every organization at every position (grace 3 days)');

select is_empty('select * from pg_temp.public_mismatches()',
  'effective_tier, get_entitlements, organization_entitlements and get_usage answer as the reference at every position');

-- A few answers by hand, so the reference itself is pinned.
select is((select to_jsonb(n) - 'organization_id' - 'subscription_id' - 'features' - 'timezone' - 'plan_id'
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000090', '2026-05-06 00:00+00') n),
  '{"plan_code": "rules_basic", "tier": "basic", "reason": "grace", "in_grace": true,
    "subscription_status": "active", "current_period_end": "2026-05-06T00:00:00+00:00",
    "grace_ends_at": "2026-05-09T00:00:00+00:00"}'::jsonb,
  'a downgrade due at the period end counts from that moment: the basic plan in grace');
select is((select n.plan_code || ' ' || n.reason
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000100', '2026-05-07 00:00+00') n),
  'rules_pro grace', 'a downgrade due 2 days after the period end is not yet counted 1 day after it');
select is((select n.plan_code || ' ' || n.reason
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000100', '2026-05-08 00:00+00') n),
  'rules_basic grace', 'and is from the moment it is due');
select is((select n.plan_code || ' ' || n.reason
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000060', '2026-05-06 00:00+00') n),
  'free canceled', 'cancel at period end: free at the period end, no grace');
select is((select n.plan_code || ' ' || n.reason || ' ' || n.in_grace
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000070', '2026-05-05 23:59:59+00') n),
  'rules_pro past_due false', 'past_due inside the period keeps the plan');
select is((select n.plan_code || ' ' || n.reason
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000070', '2026-05-09 00:00+00') n),
  'free past_due', 'past_due after the grace: free, and past_due says why');
select is((select n.plan_code || ' ' || n.reason
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000030', '2026-05-04 00:00+00') n),
  'free expired', 'a trial ended before its period end: free at once');
select is((select n.subscription_status::text || ' ' || n.reason
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000140', '2026-05-01 00:00+00') n),
  'expired expired', 'no live subscription: the latest that ended says why');
select is((select pg_catalog.to_jsonb(n) from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000190', '2026-05-01 00:00+00') n),
  (select pg_catalog.jsonb_object_agg(k, null) from unnest(array['organization_id', 'timezone', 'plan_id', 'plan_code', 'tier',
    'features', 'reason', 'in_grace', 'subscription_id', 'subscription_status', 'current_period_end', 'grace_ends_at']) k),
  'an unknown organization: one row of nulls');

-- The exception to set search_path pays for itself only if the planner inlines the function:
-- no Function Scan of it in the plan of a caller's query.
create function pg_temp.plan_of(p_query text) returns text language plpgsql as $$
declare
  v_line text;
  v_plan text := '';
begin
  for v_line in execute 'explain (costs off) ' || p_query loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  return v_plan;
end;
$$;
select unalike(pg_temp.plan_of($q$select coalesce(e.tier, 'free') from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000050', now()) e$q$),
  '%Function Scan on effective_plan_rows%', 'effective_plan_rows is inlined into the query that reads it');

-- The grace setting is read, not assumed: 5 days.
update public.billing_settings set grace_days = 5;
select is_empty('select * from pg_temp.mismatches()',
  'with 5 days of grace: effective_plan_rows and effective_plan answer as the reference at every position');
select is((select n.reason || ' ' || n.grace_ends_at
           from billing.effective_plan_rows('e7000000-0000-4000-8000-000000000050', '2026-05-10 00:00+00') n),
  'grace 2026-05-11 00:00:00+00', 'and grace runs 5 days');

select * from finish();
rollback;
