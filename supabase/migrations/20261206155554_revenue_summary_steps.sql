-- revenue_summary_steps: drafted by `npm run db:diff -- revenue_summary_steps` from the difference between the database the
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

CREATE OR REPLACE FUNCTION billing.revenue_movements (
  p_start timestamp with time zone,
  p_at    timestamp with time zone
)
  RETURNS TABLE (
    organization_id uuid,
    mrr_before      bigint,
    mrr_after       bigint,
    paid_before     boolean
  )
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return query
  select m.organization_id,
         (select coalesce(sum(x.mrr), 0) from (
            select distinct on (v.subscription_id) v.mrr from billing.subscription_states v
            where v.organization_id = m.organization_id and v.effective_at < p_start and v.subscription_id is not null
            order by v.subscription_id, v.effective_at desc, v.created_at desc, v.id desc) x)::bigint,
         (select coalesce(sum(x.mrr), 0) from (
            select distinct on (v.subscription_id) v.mrr from billing.subscription_states v
            where v.organization_id = m.organization_id and v.effective_at < p_at and v.subscription_id is not null
            order by v.subscription_id, v.effective_at desc, v.created_at desc, v.id desc) x)::bigint,
         exists (select 1 from billing.subscription_states v
                 where v.organization_id = m.organization_id and v.effective_at < p_start and v.mrr > 0)
  from (select distinct h.organization_id
        from public.subscription_history h
        where h.effective_at >= p_start and h.effective_at < p_at) m;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.revenue_payments (
  p_start timestamp with time zone,
  p_at    timestamp with time zone
)
  RETURNS TABLE (
    status    public.payment_status,
    provider  public.payment_provider,
    plan_code text,
    amount    bigint,
    gst       bigint,
    net       bigint
  )
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return query
  select y.status, y.provider, y.plan_code, y.amount,
         case when y.status = 'captured' then 1 else -1 end * y.gst,
         case when y.status = 'captured' then 1 else -1 end * (y.amount - y.gst)
  from (
    select pe.status, pe.provider, pe.amount_cents::bigint as amount,
           coalesce(p.code, '(no plan)') as plan_code,
           coalesce(case when pe.status = 'captured'
                         then (select sum(i.cgst_cents + i.sgst_cents + i.igst_cents) from public.invoices i
                               where i.payment_event_id = pe.id)
                         else (select sum(c.cgst_cents + c.sgst_cents + c.igst_cents) from public.credit_notes c
                               where c.payment_event_id = pe.id)
                    end, 0)::bigint as gst
    from public.payment_events pe
    left join public.orders o on o.id = pe.order_id
    left join public.billing_plans p on p.id = o.plan_id
    where pe.occurred_at >= p_start and pe.occurred_at < p_at
      and pe.status in ('captured', 'refunded') and pe.currency = 'INR'
  ) y;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.revenue_summary (
  p_day date DEFAULT ((billing.now() AT TIME ZONE 'Asia/Kolkata'::text))::date
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  SET jit TO 'off'
  AS $function$
declare
  -- India time: the day boundaries of every figure (IST has no daylight saving).
  c_zone constant text := 'Asia/Kolkata';
  v_now timestamptz := billing.now();
  v_start timestamptz;
  v_end timestamptz;
  v_at timestamptz;
  v_money record;
  v_state record;
  v_moves record;
begin
  -- 1. The day: from its start in India time to its end, or to now while it runs.
  if p_day is null then
    raise exception 'revenue_summary needs a day' using errcode = 'null_value_not_allowed';
  end if;
  v_start := p_day::timestamp at time zone c_zone;
  v_end := (p_day + 1)::timestamp at time zone c_zone;
  if v_start > v_now then
    raise exception 'day % has not begun in India time (now %)', p_day, v_now at time zone c_zone
      using errcode = 'invalid_parameter_value';
  end if;
  v_at := least(v_end, v_now);

  -- 2. Money: the day's captures and refunds, each with the GST of the document issued for it.
  with signed as (
    select * from billing.revenue_payments(v_start, v_at)
  )
  select coalesce(sum(s.amount) filter (where s.status = 'captured'), 0)::bigint as gross,
         coalesce(sum(s.amount) filter (where s.status = 'refunded'), 0)::bigint as refunds,
         coalesce(sum(s.gst), 0)::bigint as gst,
         coalesce((select pg_catalog.jsonb_object_agg(b.plan_code, b.net order by b.plan_code)
                   from (select x.plan_code, sum(x.net)::bigint as net from signed x group by x.plan_code) b), '{}')
           as by_plan,
         coalesce((select pg_catalog.jsonb_object_agg(b.provider, b.net order by b.provider)
                   from (select x.provider, sum(x.net)::bigint as net from signed x group by x.provider) b), '{}')
           as by_provider
  into v_money
  from signed s;

  -- 3. The state at v_at of every subscription, summed by plan and status and by organization.
  with last as (
    select * from billing.subscription_states_at(v_at)
  ), by_plan_status as (
    select l.plan_code, l.status, count(*)::integer as n, sum(l.mrr)::bigint as mrr
    from last l
    group by l.plan_code, l.status
  ), by_org as (
    select l.organization_id, sum(l.mrr) as mrr
    from last l
    where l.mrr > 0
    group by l.organization_id
  )
  select coalesce((select sum(o.mrr) from by_org o), 0)::bigint as mrr,
         (select count(*) from by_org o)::integer as paying_customers,
         coalesce((select sum(b.n) from by_plan_status b where b.status in ('active', 'past_due')), 0)::integer
           as active_subscriptions,
         coalesce((select pg_catalog.jsonb_object_agg(b.plan_code, b.mrr order by b.plan_code)
                   from (select x.plan_code, sum(x.mrr)::bigint as mrr from by_plan_status x
                         group by x.plan_code having sum(x.mrr) > 0) b), '{}') as mrr_by_plan,
         coalesce((select pg_catalog.jsonb_object_agg(b.plan_code, b.statuses order by b.plan_code)
                   from (select x.plan_code, pg_catalog.jsonb_object_agg(x.status, x.n order by x.status) as statuses
                         from by_plan_status x
                         where x.status in ('pending_payment', 'trialing', 'active', 'past_due')
                         group by x.plan_code) b), '{}') as live_by_plan
  into v_state;

  -- 4. The movements of the organizations that can have moved, classified.
  select coalesce(sum(o.mrr_after) filter (where o.mrr_before = 0 and o.mrr_after > 0 and not o.paid_before), 0)::bigint
           as new_mrr,
         count(*) filter (where o.mrr_before = 0 and o.mrr_after > 0 and not o.paid_before)::integer as new_customers,
         coalesce(sum(o.mrr_after) filter (where o.mrr_before = 0 and o.mrr_after > 0 and o.paid_before), 0)::bigint
           as reactivation_mrr,
         count(*) filter (where o.mrr_before = 0 and o.mrr_after > 0 and o.paid_before)::integer as reactivated_customers,
         coalesce(sum(o.mrr_after - o.mrr_before) filter (where o.mrr_before > 0 and o.mrr_after > o.mrr_before), 0)::bigint
           as expansion_mrr,
         coalesce(sum(o.mrr_before - o.mrr_after) filter (where o.mrr_after > 0 and o.mrr_after < o.mrr_before), 0)::bigint
           as contraction_mrr,
         coalesce(sum(o.mrr_before) filter (where o.mrr_before > 0 and o.mrr_after = 0), 0)::bigint as churned_mrr,
         count(*) filter (where o.mrr_before > 0 and o.mrr_after = 0)::integer as churned_customers,
         coalesce(sum(o.mrr_after - o.mrr_before), 0)::bigint as net_mrr
  into v_moves
  from billing.revenue_movements(v_start, v_at) o;

  return pg_catalog.jsonb_build_object(
    'day', p_day,
    'as_of', v_at,
    'complete', v_at = v_end,
    'gross', v_money.gross,
    'refunds', v_money.refunds,
    'gst', v_money.gst,
    'net_revenue', v_money.gross - v_money.refunds - v_money.gst,
    'opening_mrr', v_state.mrr - v_moves.net_mrr,
    'new_mrr', v_moves.new_mrr,
    'reactivation_mrr', v_moves.reactivation_mrr,
    'expansion_mrr', v_moves.expansion_mrr,
    'contraction_mrr', v_moves.contraction_mrr,
    'churned_mrr', v_moves.churned_mrr,
    'mrr', v_state.mrr,
    'arr', 12 * v_state.mrr,
    'opening_customers', v_state.paying_customers - v_moves.new_customers - v_moves.reactivated_customers
                         + v_moves.churned_customers,
    'new_customers', v_moves.new_customers,
    'reactivated_customers', v_moves.reactivated_customers,
    'churned_customers', v_moves.churned_customers,
    'paying_customers', v_state.paying_customers,
    'active_subscriptions', v_state.active_subscriptions,
    'net_revenue_by_plan', v_money.by_plan,
    'net_revenue_by_provider', v_money.by_provider,
    'mrr_by_plan', v_state.mrr_by_plan,
    'live_subscriptions_by_plan', v_state.live_by_plan);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.subscription_states_at (
  p_at timestamp with time zone
)
  RETURNS TABLE (
    subscription_id uuid,
    organization_id uuid,
    plan_code       text,
    status          public.subscription_status,
    mrr             bigint
  )
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  SET jit TO 'off'
  AS $function$
begin
  return query
  select distinct on (v.subscription_id) v.subscription_id, v.organization_id, v.plan_code, v.status, v.mrr
  from billing.subscription_states v
  where v.effective_at < p_at and v.subscription_id is not null
  order by v.subscription_id, v.effective_at desc, v.created_at desc, v.id desc;
end;
$function$;

REVOKE ALL ON FUNCTION "billing"."revenue_movements"(timestamp WITH time zone, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."revenue_movements"(timestamp WITH time zone, timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."revenue_payments"(timestamp WITH time zone, timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."revenue_payments"(timestamp WITH time zone, timestamp WITH time zone) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."subscription_states_at"(timestamp WITH time zone) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."subscription_states_at"(timestamp WITH time zone) TO "service_role";
