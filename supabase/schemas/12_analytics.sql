-- =================================================================================================
-- supabill: revenue analytics: revenue, GST and MRR per India-time day, from what happened
--
-- Holds:
--   billing.subscription_states            the state each subscription_history row leaves its
--                                          subscription in (plan, status, monthly value)
--   billing.revenue_summary(day)           one India-time day's figures, computed (jsonb), in steps:
--     billing.revenue_payments(start, at)      the payments of the day and the GST of their documents
--     billing.subscription_states_at(at)       every subscription's state (and MRR) at a moment
--     billing.revenue_movements(start, at)     the organizations that can have moved, MRR at both ends
--   billing.revenue_analytics              one stored row per day: that same summary
--   billing.refresh_revenue_analytics(from, to)   fills it (idempotent, backfills missing days)
--   billing.revenue_monthly, billing.revenue_current   monthly rates; the latest stored day
--   role billing_analyst                   reads the three analytics objects, nothing else
--   pg_cron 'billing-analytics-daily'      00:05 IST (18:35 UTC), logged in billing.job_runs
--
-- Money is INR in paise (bigint), everywhere in this module. Its columns carry no `_cents`
-- or `_paise` suffix: every money column and key here is paise, and the summary's keys are the
-- table's column names (the job stores exactly what revenue_summary answers: one computation).
-- Only INR payments and INR plans count; other currencies are left out, not converted.
--
-- The figures come from the two append-only logs, never from the current rows alone, so any past
-- day can be computed again and gives the same answer:
--   * revenue from payment_events: captured and refunded rows by occurred_at (the provider's
--     time of the payment or refund), tax included; the GST in them from the tax documents
--     issued for them (the invoice of a capture, the credit note of a refund: cgst + sgst + igst;
--     0 when none was issued, e.g. before the seller's GST registration was set). net_revenue =
--     gross - refunds - gst. Disputes (chargebacks) are not counted as refunds: they have no
--     credit note, and a won dispute gives the money back.
--   * MRR from subscription_history: a subscription's state at a moment is the one its latest
--     history row (effective_at before that moment; ties by created_at, then id) left it in.
--     Its MRR is its plan's monthly price while active or past_due (a yearly plan counts
--     round_half_up(price / 12)), 0 otherwise (trialing, pending_payment, canceled, expired, a
--     free plan). An organization's MRR is the sum over its subscriptions (at most one is live).
--     Plan prices are read as they are now (history does not log prices): a price changed later
--     changes the MRR of days computed again after the change.
-- The movements of a day compare each organization's MRR at the end of the day before with the
-- end of the day: new (0 -> x, never had MRR before), reactivation (0 -> x, had MRR before),
-- expansion (x -> y > x), contraction (x -> y, 0 < y < x), churned (x -> 0, a positive number).
-- Only organizations with a history row during the day can move, so only they are looked at; the
-- closing MRR is summed over every subscription, and the opening MRR is the closing minus the
-- day's net movement: opening + new + reactivation + expansion - contraction - churned = closing
-- holds by construction (and a check constraint keeps it).
-- A day not over yet is computed up to billing.now() (as_of; complete = false) and stored the
-- same way; the next run computes it again once it is over.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.

-- =================================================================================================
-- 2. Tables and views
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- billing_analyst: reads the analytics, nothing else
-- -------------------------------------------------------------------------------------------------

-- A reporting role for a BI tool or an analyst's login role (grant billing_analyst to <login>):
-- usage on schema billing and select on the three analytics objects below. Aggregates only: no
-- grant on any table with a payment, a person or an organization in it.
do $$
begin
  if not exists (select from pg_catalog.pg_roles r where r.rolname = 'billing_analyst') then
    create role billing_analyst nologin;
  end if;
end;
$$;

comment on role billing_analyst is 'Reads billing.revenue_analytics, billing.revenue_monthly and billing.revenue_current only (aggregates, no customer rows).';

grant usage on schema billing to billing_analyst;

-- -------------------------------------------------------------------------------------------------
-- billing.subscription_states (private view)
-- -------------------------------------------------------------------------------------------------

/**
 * The state each subscription_history row leaves its subscription in: the plan in effect, the
 * status, and the monthly recurring value in paise that state counts for (mrr). Rows that only
 * record an intent keep the plan running: 'upgrade_ordered' (the order is not paid yet) and
 * 'downgrade_scheduled' (it applies at the period end, logged then as 'downgraded'); their
 * new_plan_id is the plan asked for. mrr: the plan's price while active or past_due, a yearly
 * plan's round_half_up(price / 12) (the integer form of billing.div_round_half_up, inline because
 * this runs for every history row), 0 in any other status and for non-INR plans.
 * The one place the revenue module reads a subscription's state from its history.
 */
create view billing.subscription_states
with (security_invoker = true)
as
select h.id, h.organization_id, h.subscription_id, h.effective_at, h.created_at, h.action,
       st.plan_id, h.new_status as status, p.code as plan_code,
       case
         when h.new_status in ('active', 'past_due') and p.currency = 'INR' then
           case p.interval when 'year' then (2 * p.price_cents + 12) / 24 else p.price_cents end
         else 0
       end::bigint as mrr
from public.subscription_history h
cross join lateral (
  select case when h.action in ('upgrade_ordered', 'downgrade_scheduled') then coalesce(h.old_plan_id, h.new_plan_id)
              else coalesce(h.new_plan_id, h.old_plan_id) end as plan_id
) st
left join public.billing_plans p on p.id = st.plan_id;

comment on view billing.subscription_states is 'The plan, status and monthly recurring value (paise) each subscription_history row leaves its subscription in.';

revoke all on billing.subscription_states from public;

grant select on billing.subscription_states to service_role;

-- -------------------------------------------------------------------------------------------------
-- billing.revenue_analytics (private)
-- -------------------------------------------------------------------------------------------------

/**
 * One row per India-time (Asia/Kolkata) day: billing.revenue_summary(day), stored by
 * billing.refresh_revenue_analytics (column names are the summary's keys). Every money column is
 * bigint paise (INR). Aggregates only, no customer rows: billing_analyst reads it.
 */
create table billing.revenue_analytics (
  day date primary key,
  as_of timestamptz not null,
  complete boolean not null,
  gross bigint not null check (gross >= 0),
  refunds bigint not null check (refunds >= 0),
  gst bigint not null,
  net_revenue bigint not null,
  opening_mrr bigint not null check (opening_mrr >= 0),
  new_mrr bigint not null check (new_mrr >= 0),
  reactivation_mrr bigint not null check (reactivation_mrr >= 0),
  expansion_mrr bigint not null check (expansion_mrr >= 0),
  contraction_mrr bigint not null check (contraction_mrr >= 0),
  churned_mrr bigint not null check (churned_mrr >= 0),
  mrr bigint not null check (mrr >= 0),
  arr bigint not null,
  opening_customers integer not null check (opening_customers >= 0),
  new_customers integer not null check (new_customers >= 0),
  reactivated_customers integer not null check (reactivated_customers >= 0),
  churned_customers integer not null check (churned_customers >= 0),
  paying_customers integer not null check (paying_customers >= 0),
  active_subscriptions integer not null check (active_subscriptions >= 0),
  net_revenue_by_plan jsonb not null check (jsonb_typeof(net_revenue_by_plan) = 'object'),
  net_revenue_by_provider jsonb not null check (jsonb_typeof(net_revenue_by_provider) = 'object'),
  mrr_by_plan jsonb not null check (jsonb_typeof(mrr_by_plan) = 'object'),
  live_subscriptions_by_plan jsonb not null check (jsonb_typeof(live_subscriptions_by_plan) = 'object'),
  computed_at timestamptz not null default clock_timestamp(),
  constraint revenue_analytics_net_adds_up check (net_revenue = gross - refunds - gst),
  constraint revenue_analytics_mrr_moves_add_up
    check (opening_mrr + new_mrr + reactivation_mrr + expansion_mrr - contraction_mrr - churned_mrr = mrr),
  constraint revenue_analytics_arr check (arr = 12 * mrr),
  constraint revenue_analytics_customers_add_up
    check (opening_customers + new_customers + reactivated_customers - churned_customers = paying_customers)
);

comment on table billing.revenue_analytics is 'Revenue, GST and MRR per India-time day (all money in paise): what billing.revenue_summary(day) answers, stored by billing.refresh_revenue_analytics.';

comment on column billing.revenue_analytics.day is 'The India-time (Asia/Kolkata) day.';

comment on column billing.revenue_analytics.as_of is 'The moment the closing figures hold at: the end of the day, or when it was computed while the day ran.';

comment on column billing.revenue_analytics.complete is 'False for a day computed before it ended (figures up to as_of); the next run computes it again.';

comment on column billing.revenue_analytics.gross is 'Paise captured during the day (payment_events captured, INR), GST included.';

comment on column billing.revenue_analytics.refunds is 'Paise refunded during the day (payment_events refunded, INR), GST included.';

comment on column billing.revenue_analytics.gst is 'The GST in the day''s captures (their invoices) minus the GST in its refunds (their credit notes), paise.';

comment on column billing.revenue_analytics.net_revenue is 'gross - refunds - gst, paise.';

comment on column billing.revenue_analytics.opening_mrr is 'MRR at the end of the day before, paise.';

comment on column billing.revenue_analytics.new_mrr is 'MRR of organizations going from 0 that never had MRR before, paise.';

comment on column billing.revenue_analytics.reactivation_mrr is 'MRR of organizations going from 0 that had MRR before, paise.';

comment on column billing.revenue_analytics.expansion_mrr is 'MRR added by organizations whose MRR grew from above 0, paise.';

comment on column billing.revenue_analytics.contraction_mrr is 'MRR lost by organizations whose MRR shrank but stayed above 0, paise.';

comment on column billing.revenue_analytics.churned_mrr is 'MRR lost by organizations whose MRR fell to 0 (positive, subtracted), paise.';

comment on column billing.revenue_analytics.mrr is 'Closing MRR at as_of, paise: opening + new + reactivation + expansion - contraction - churned.';

comment on column billing.revenue_analytics.arr is '12 x mrr, paise.';

comment on column billing.revenue_analytics.opening_customers is 'Organizations with MRR at the end of the day before.';

comment on column billing.revenue_analytics.new_customers is 'Organizations counted in new_mrr.';

comment on column billing.revenue_analytics.reactivated_customers is 'Organizations counted in reactivation_mrr.';

comment on column billing.revenue_analytics.churned_customers is 'Organizations counted in churned_mrr.';

comment on column billing.revenue_analytics.paying_customers is 'Organizations with MRR at as_of.';

comment on column billing.revenue_analytics.active_subscriptions is 'Subscriptions active or past_due at as_of (any plan).';

comment on column billing.revenue_analytics.net_revenue_by_plan is 'net_revenue by plan code (of the payment''s order), paise.';

comment on column billing.revenue_analytics.net_revenue_by_provider is 'net_revenue by payment provider, paise.';

comment on column billing.revenue_analytics.mrr_by_plan is 'Closing MRR by plan code, paise (plans with MRR only).';

comment on column billing.revenue_analytics.live_subscriptions_by_plan is 'Live subscriptions at as_of by plan code and status: {"pro": {"active": 3, "trialing": 1}}.';

comment on column billing.revenue_analytics.computed_at is 'When the row was computed (wall clock).';

revoke all on billing.revenue_analytics from public;

grant select on billing.revenue_analytics to service_role, billing_analyst;

-- -------------------------------------------------------------------------------------------------
-- billing.revenue_monthly, billing.revenue_current (views over the stored days)
-- -------------------------------------------------------------------------------------------------

/**
 * Per India-time month, from the stored days: opening MRR (of the month's first stored day),
 * closing MRR (of its last), the month's movements and revenue, and the rates:
 *   logo_churn_rate          = churned customers / customers at the start
 *   gross_revenue_churn_rate = (churned + contraction) / opening MRR
 *   net_revenue_churn_rate   = (churned + contraction - expansion) / opening MRR (negative: the
 *                              customers there at the start grew their MRR)
 *   arpa                     = closing MRR / paying customers at the end (paise, half up)
 * Rates are fractions (0.05 = 5 %), rounded to 4 places, null when the start is 0. days counts
 * the stored days; complete is false while a day of the month is missing or partial.
 */
create view billing.revenue_monthly
with (security_invoker = true)
as
with m as (
  select date_trunc('month', r.day)::date as month,
         count(*)::integer as days,
         bool_and(r.complete) as complete_days,
         (array_agg(r.opening_mrr order by r.day))[1] as opening_mrr,
         (array_agg(r.mrr order by r.day desc))[1] as closing_mrr,
         sum(r.new_mrr)::bigint as new_mrr,
         sum(r.reactivation_mrr)::bigint as reactivation_mrr,
         sum(r.expansion_mrr)::bigint as expansion_mrr,
         sum(r.contraction_mrr)::bigint as contraction_mrr,
         sum(r.churned_mrr)::bigint as churned_mrr,
         (array_agg(r.opening_customers order by r.day))[1] as opening_customers,
         (array_agg(r.paying_customers order by r.day desc))[1] as closing_customers,
         sum(r.new_customers)::integer as new_customers,
         sum(r.reactivated_customers)::integer as reactivated_customers,
         sum(r.churned_customers)::integer as churned_customers,
         sum(r.gross)::bigint as gross,
         sum(r.refunds)::bigint as refunds,
         sum(r.gst)::bigint as gst,
         sum(r.net_revenue)::bigint as net_revenue
  from billing.revenue_analytics r
  group by 1
)
select m.month, m.days,
       m.complete_days and m.days = extract(day from (m.month + interval '1 month' - interval '1 day'))::integer as complete,
       m.opening_mrr, m.new_mrr, m.reactivation_mrr, m.expansion_mrr, m.contraction_mrr, m.churned_mrr,
       m.closing_mrr, 12 * m.closing_mrr as closing_arr,
       m.opening_customers, m.new_customers, m.reactivated_customers, m.churned_customers, m.closing_customers,
       round(m.churned_customers::numeric / nullif(m.opening_customers, 0), 4) as logo_churn_rate,
       round((m.churned_mrr + m.contraction_mrr)::numeric / nullif(m.opening_mrr, 0), 4) as gross_revenue_churn_rate,
       round((m.churned_mrr + m.contraction_mrr - m.expansion_mrr)::numeric / nullif(m.opening_mrr, 0), 4)
         as net_revenue_churn_rate,
       round(m.closing_mrr::numeric / nullif(m.closing_customers, 0))::bigint as arpa,
       m.gross, m.refunds, m.gst, m.net_revenue
from m;

comment on view billing.revenue_monthly is 'Per India-time month (paise): opening and closing MRR, movements, logo and revenue churn rates, ARPA, revenue and GST, from billing.revenue_analytics.';

revoke all on billing.revenue_monthly from public;

grant select on billing.revenue_monthly to service_role, billing_analyst;

/**
 * Today's figures as last stored: the latest day in billing.revenue_analytics (today's row, as of
 * the job's last run, once the daily job has run today; complete = false while the day runs).
 * For figures as of this moment, service_role runs select billing.revenue_summary().
 */
create view billing.revenue_current
with (security_invoker = true)
as
select r.*
from billing.revenue_analytics r
order by r.day desc
limit 1;

comment on view billing.revenue_current is 'The latest stored day of billing.revenue_analytics (today''s row once the daily job ran today; paise).';

revoke all on billing.revenue_current from public;

grant select on billing.revenue_current to service_role, billing_analyst;

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * The state of every subscription at p_at: the one its latest subscription_history row before
 * p_at (ties by created_at, then id) left it in, from billing.subscription_states: its
 * organization, plan code, status and monthly recurring value in paise (mrr). One row per
 * subscription with history before p_at. Part of billing.revenue_summary (the closing figures).
 * jit = off: the latest-state pass over the whole history is costed high enough to be JIT
 * compiled, which costs more than it saves (see billing.revenue_summary). plpgsql, not sql, so
 * p_at is planned as the value it is.
 */
create function billing.subscription_states_at(p_at timestamptz)
returns table (subscription_id uuid, organization_id uuid, plan_code text, status public.subscription_status, mrr bigint)
language plpgsql
stable
set search_path = ''
set jit = off
as $$
begin
  return query
  select distinct on (v.subscription_id) v.subscription_id, v.organization_id, v.plan_code, v.status, v.mrr
  from billing.subscription_states v
  where v.effective_at < p_at and v.subscription_id is not null
  order by v.subscription_id, v.effective_at desc, v.created_at desc, v.id desc;
end;
$$;
revoke execute on function billing.subscription_states_at(timestamptz) from public, anon, authenticated;
grant execute on function billing.subscription_states_at(timestamptz) to service_role;

/**
 * The organizations whose MRR can have moved between p_start and p_at (those with a
 * subscription_history row in [p_start, p_at)), each with its MRR at both ends, paise: the sum
 * over its subscriptions of the mrr of the state each was in then (as billing.subscription_states_at
 * gives it, for one organization): mrr_before at p_start, mrr_after at p_at; and whether it ever
 * had MRR before p_start (paid_before: a reactivation, not a new customer). Part of
 * billing.revenue_summary (the movements). plpgsql, not sql, so the moments are planned as the
 * values they are (a sql function would plan them as unknown parameters, which is slower here).
 */
create function billing.revenue_movements(p_start timestamptz, p_at timestamptz)
returns table (organization_id uuid, mrr_before bigint, mrr_after bigint, paid_before boolean)
language plpgsql
stable
set search_path = ''
as $$
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
$$;
revoke execute on function billing.revenue_movements(timestamptz, timestamptz) from public, anon, authenticated;
grant execute on function billing.revenue_movements(timestamptz, timestamptz) to service_role;

/**
 * The payments of [p_start, p_at) and their documents: every INR payment_events row captured or
 * refunded then (by occurred_at), with its provider, the plan code of its order ('(no plan)'
 * without one), its amount (paise, GST included, positive) and the GST of the document issued for
 * it (the invoice of a capture, the credit note of a refund: cgst + sgst + igst; 0 when none),
 * and its net (amount - gst), both signed: negative for a refund. Part of billing.revenue_summary
 * (the revenue figures).
 */
create function billing.revenue_payments(p_start timestamptz, p_at timestamptz)
returns table (status public.payment_status, provider public.payment_provider, plan_code text, amount bigint,
               gst bigint, net bigint)
language plpgsql
stable
set search_path = ''
as $$
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
$$;
revoke execute on function billing.revenue_payments(timestamptz, timestamptz) from public, anon, authenticated;
grant execute on function billing.revenue_payments(timestamptz, timestamptz) to service_role;

/**
 * One India-time day's revenue, GST and MRR figures (see the banner), as jsonb whose keys are the
 * columns of billing.revenue_analytics (computed_at aside): day, as_of, complete, gross, refunds,
 * gst, net_revenue, opening_mrr, new_mrr, reactivation_mrr, expansion_mrr, contraction_mrr,
 * churned_mrr, mrr, arr, the customer counts, active_subscriptions and the breakdowns. All money
 * in paise. A day not over yet is computed up to billing.now(). Writes nothing.
 * The steps, each a function of its own:
 *   1. the day's bounds in India time, up to now (here);
 *   2. the payments and their documents: billing.revenue_payments, summed and broken down;
 *   3. every subscription's state at the close: billing.subscription_states_at, summed by
 *      organization (MRR, paying customers) and by plan and status;
 *   4. the movements: billing.revenue_movements, classified as new, reactivation, expansion,
 *      contraction or churn; the opening figures are the closing ones less the day's net movement.
 * Errors: 22004 no day; 22023 a day that has not begun.
 * jit = off: the planner's cost estimate of the latest-state pass over the history is high enough
 * to JIT-compile it, which took about 3 of the 5.7 s of a day at 1,000,000 subscriptions.
 */
create function billing.revenue_summary(p_day date default (billing.now() at time zone 'Asia/Kolkata')::date)
returns jsonb
language plpgsql
stable
set search_path = ''
set jit = off
as $$
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
$$;
revoke execute on function billing.revenue_summary(date) from public, anon, authenticated;
grant execute on function billing.revenue_summary(date) to service_role;

/**
 * Stores billing.revenue_summary(day) in billing.revenue_analytics for each day asked, replacing
 * a stored row (idempotent: the same day computed again gives the same row, computed_at aside).
 * Which days:
 *   p_from given: every day from p_from to p_to (default today, India time);
 *   p_from null:  every day missing from the first history row or payment up to p_to, and the
 *                 latest stored day again (it may have been stored while it ran), so a late or
 *                 skipped run catches up, and a deleted day comes back.
 * Today's row is partial (complete = false, figures up to billing.now()). Oldest first, at most
 * p_limit days (null: all). Returns the days written. For postgres and the daily job.
 * Errors: 22023 p_to in the future, p_from after p_to, p_limit below 1.
 */
create function billing.refresh_revenue_analytics(p_from date default null, p_to date default null,
                                                  p_limit integer default null)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  c_zone constant text := 'Asia/Kolkata';
  v_today date := (billing.now() at time zone c_zone)::date;
  v_to date := coalesce(p_to, v_today);
  v_first date;
  v_last date;
  v_day date;
  v_n integer := 0;
begin
  if v_to > v_today then
    raise exception 'p_to % is after today (% in India time)', v_to, v_today using errcode = 'invalid_parameter_value';
  end if;
  if p_from > v_to then
    raise exception 'p_from % is after p_to %', p_from, v_to using errcode = 'invalid_parameter_value';
  end if;
  if p_limit < 1 then
    raise exception 'p_limit must be at least 1, got %', p_limit using errcode = 'invalid_parameter_value';
  end if;
  if p_from is null then
    select (least((select min(h.effective_at) from public.subscription_history h),
                  (select min(pe.occurred_at) from public.payment_events pe where pe.status in ('captured', 'refunded')))
            at time zone c_zone)::date
    into v_first;
    select max(r.day) into v_last from billing.revenue_analytics r where r.day <= v_to;
  end if;

  for v_day in
    select d.day from (
      select g.day::date as day
      from pg_catalog.generate_series(coalesce(p_from, least(v_first, v_to), v_to), v_to, interval '1 day') g(day)
    ) d
    where p_from is not null
       or d.day = v_last
       or not exists (select 1 from billing.revenue_analytics r where r.day = d.day)
    order by d.day
    limit p_limit
  loop
    insert into billing.revenue_analytics
    select (r).*
    from (select pg_catalog.jsonb_populate_record(null::billing.revenue_analytics,
                                                  billing.revenue_summary(v_day)
                                                  || pg_catalog.jsonb_build_object('computed_at', pg_catalog.clock_timestamp())) as r) x
    on conflict (day) do update set
      as_of = excluded.as_of, complete = excluded.complete, gross = excluded.gross, refunds = excluded.refunds,
      gst = excluded.gst, net_revenue = excluded.net_revenue, opening_mrr = excluded.opening_mrr,
      new_mrr = excluded.new_mrr, reactivation_mrr = excluded.reactivation_mrr,
      expansion_mrr = excluded.expansion_mrr, contraction_mrr = excluded.contraction_mrr,
      churned_mrr = excluded.churned_mrr, mrr = excluded.mrr, arr = excluded.arr,
      opening_customers = excluded.opening_customers, new_customers = excluded.new_customers,
      reactivated_customers = excluded.reactivated_customers, churned_customers = excluded.churned_customers,
      paying_customers = excluded.paying_customers, active_subscriptions = excluded.active_subscriptions,
      net_revenue_by_plan = excluded.net_revenue_by_plan, net_revenue_by_provider = excluded.net_revenue_by_provider,
      mrr_by_plan = excluded.mrr_by_plan, live_subscriptions_by_plan = excluded.live_subscriptions_by_plan,
      computed_at = excluded.computed_at;
    v_n := v_n + 1;
  end loop;
  return v_n;
end;
$$;
revoke execute on function billing.refresh_revenue_analytics(date, date, integer)
  from public, anon, authenticated, service_role, billing_analyst;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: the analytics are private tables and views in billing (no row level security, no API grant).

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- None: analytics are for the service side and billing_analyst, not the API.


-- =================================================================================================
-- 6. Jobs and schedules
-- =================================================================================================

/** billing-analytics-daily, one batch: refresh_revenue_analytics for the missing days (and the latest), at most p_limit days. */
create function billing.revenue_analytics_batch(p_limit integer)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.refresh_revenue_analytics(null, null, p_limit);
end;
$$;
revoke execute on function billing.revenue_analytics_batch(integer)
  from public, anon, authenticated, service_role, billing_analyst;

/** pg_cron 'billing-analytics-daily': see billing.revenue_analytics_batch. Returns the days written. */
create function billing.job_revenue_analytics(p_limit integer default 3660)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('billing-analytics-daily', 'billing.revenue_analytics_batch(integer)', p_limit);
end;
$$;
revoke execute on function billing.job_revenue_analytics(integer)
  from public, anon, authenticated, service_role, billing_analyst;

-- =================================================================================================
-- 6. Jobs and schedules (of every module)
-- =================================================================================================

-- Schedule every job of every module that this database can run (the rows of billing.jobs in
-- 04_operations). Outside public and billing: pg_cron's own table.
select billing.schedule_jobs();
