-- Revenue analytics: a hand-written 60-day history (1 October to 29 November 2026, India time)
-- of ten organizations: new, upgrade, a downgrade at the period end, cancel at the period end,
-- cancel now and come back, a full and a partial refund, a yearly plan, a trial that converts,
-- a free organization, past due then expired, and intents that change nothing (a scheduled
-- downgrade, a scheduled cancellation, an upgrade ordered but unpaid). History is written as in
-- production: each change is a write of the subscription row under a change context (the trigger
-- on subscriptions writes the row), the unpaid upgrade by the intent writer
-- (billing.log_subscription_intent); payments by billing.record_payment_event, and
-- their GST documents by billing.issue_invoice and billing.issue_credit_note, under the test
-- clock. The daily job fills billing.revenue_analytics; every figure is compared with a table
-- of expected values worked out by hand (paise). Then: the movements add up every day, a day
-- computed again gives the same row, a deleted day comes back, revenue_summary is the stored
-- row, the monthly and current views, bad input, the schedule and who may read what.
begin;
set local search_path = public, extensions;
select tests.relax_owner_limit();
select plan(41);

-- -------------------------------------------------------------------------------------------------
-- Fixture helpers
-- -------------------------------------------------------------------------------------------------

/** Day n of the fixture: day 1 = 2026-10-01, day 60 = 2026-11-29 (India time). */
create function pg_temp.d(p_n integer) returns date language sql as $$ select '2026-09-30'::date + p_n $$;

/** A moment of day n, India time. */
create function pg_temp.at(p_n integer, p_time text default '10:00') returns timestamptz language sql as $$
  select (pg_temp.d(p_n) + p_time::time)::timestamp at time zone 'Asia/Kolkata' $$;

create function pg_temp.org(p_n integer) returns uuid language sql as $$
  select ('d1800000-0000-4000-8000-' || lpad(p_n::text, 12, '0'))::uuid $$;

/** Subscription k of organization n. */
create function pg_temp.sub(p_n integer, p_k integer default 1) returns uuid language sql as $$
  select ('d1800000-0000-4000-800' || p_k || '-' || lpad(p_n::text, 12, '0'))::uuid $$;

create function pg_temp.plan(p_code text) returns uuid language sql as $$
  select id from public.billing_plans where code = p_code $$;

/**
 * A change at day n, p_time, as it happens in production: the subscription row is written under a
 * change context (p_action, the system) and the trigger writes its history row. No old status: the
 * subscription starts (insert); a scheduled cancellation or downgrade sets the cancel flag or the
 * pending plan; anything else moves plan and status and starts a period there. The upgrade ordered
 * changes no row: the intent writer records it.
 */
create function pg_temp.log(p_org integer, p_k integer, p_action text, p_old text, p_new text,
                            p_old_status public.subscription_status, p_new_status public.subscription_status,
                            p_day integer, p_time text default '10:00')
returns void language plpgsql as $$
declare
  v_at timestamptz := pg_temp.at(p_day, p_time);
begin
  perform set_config('billing.now', v_at::text, true);
  if p_action = 'upgrade_ordered' then
    perform billing.log_subscription_intent(pg_temp.sub(p_org, p_k), p_action, pg_temp.plan(p_new), 'system');
    return;
  end if;
  perform billing.set_change_context(p_action, 'system');
  if p_old_status is null then
    insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end,
                                      trial_end)
    values (pg_temp.sub(p_org, p_k), pg_temp.org(p_org), pg_temp.plan(p_new), p_new_status, v_at,
            v_at + interval '1 month', case when p_new_status = 'trialing' then v_at + interval '14 days' end);
  elsif p_action = 'cancel_scheduled' then
    update public.subscriptions set cancel_at_period_end = true, canceled_at = v_at where id = pg_temp.sub(p_org, p_k);
  elsif p_action = 'downgrade_scheduled' then
    update public.subscriptions set pending_plan_id = pg_temp.plan(p_new), pending_plan_effective_at = current_period_end
    where id = pg_temp.sub(p_org, p_k);
  else
    update public.subscriptions
    set plan_id = pg_temp.plan(p_new), status = p_new_status, current_period_start = v_at,
        current_period_end = v_at + interval '1 month', cancel_at_period_end = false,
        pending_plan_id = null, pending_plan_effective_at = null,
        ended_at = case when p_new_status in ('canceled', 'expired') then v_at end
    where id = pg_temp.sub(p_org, p_k);
  end if;
end;
$$;

/**
 * A captured payment at day n, 11:00: an order of p_kind for the plan at p_price (tax-exclusive;
 * the orders trigger adds the GST), its capture for the order's total, and, when p_invoice, the
 * tax invoice issued then. Returns the payment event id.
 */
create function pg_temp.pay(p_org integer, p_day integer, p_plan text, p_price bigint, p_provider public.payment_provider,
                            p_kind public.order_kind default 'new', p_invoice boolean default true)
returns uuid language plpgsql as $$
declare
  v_order public.orders;
  v_event uuid;
begin
  perform set_config('billing.now', pg_temp.at(p_day, '11:00')::text, true);
  insert into public.orders (organization_id, plan_id, provider, kind, amount_cents, currency, status, paid_at)
  values (pg_temp.org(p_org), pg_temp.plan(p_plan), p_provider, p_kind, p_price, 'INR', 'paid', pg_temp.at(p_day, '11:00'))
  returning * into v_order;
  v_event := billing.record_payment_event(v_order.organization_id, v_order.id, p_provider,
    format('pay_ra_%s_%s', p_org, p_day), v_order.amount_cents, 'INR', 'captured', p_occurred_at => pg_temp.at(p_day, '11:00'));
  if p_invoice then
    perform billing.issue_invoice(v_order.id, v_event);
  end if;
  return v_event;
end;
$$;

/** A refund of p_amount of a captured payment at day n, 15:00, with its credit note. */
create function pg_temp.refund(p_captured uuid, p_day integer, p_amount bigint)
returns void language plpgsql as $$
declare
  v_captured public.payment_events;
  v_event uuid;
begin
  perform set_config('billing.now', pg_temp.at(p_day, '15:00')::text, true);
  select * into v_captured from public.payment_events where id = p_captured;
  v_event := billing.record_payment_event(v_captured.organization_id, v_captured.order_id, v_captured.provider,
    v_captured.provider_payment_id, p_amount, 'INR', 'refunded',
    p_details => jsonb_build_object('refund_id', 'rfnd_' || v_captured.provider_payment_id),
    p_occurred_at => pg_temp.at(p_day, '15:00'));
  perform billing.issue_credit_note((select i.id from public.invoices i where i.payment_event_id = p_captured), p_amount,
                                    'refund', v_event);
end;
$$;

-- -------------------------------------------------------------------------------------------------
-- Fixture: plans, ten organizations, their subscriptions and history (change by change), money
-- -------------------------------------------------------------------------------------------------

-- The figures are those of a business of these ten organizations only. A database with rows in it
-- (the upgrade check of npm test runs this suite over a previous release's rows) has other
-- organizations whose subscriptions, payments and GST documents would count too: this transaction
-- (rolled back at the end) sets their rows aside first. The append-only guards of these tables are
-- triggers, off for these statements only (session_replication_role).
set local session_replication_role = replica;
delete from public.subscription_history where organization_id <> all (array(select pg_temp.org(n) from generate_series(1, 10) n));
delete from public.payment_events where organization_id <> all (array(select pg_temp.org(n) from generate_series(1, 10) n));
delete from public.credit_notes where organization_id <> all (array(select pg_temp.org(n) from generate_series(1, 10) n));
delete from public.invoices where organization_id <> all (array(select pg_temp.org(n) from generate_series(1, 10) n));
delete from billing.revenue_analytics;
set local session_replication_role = origin;

-- Basic 499 a month, Pro 999 a month, Team yearly 11,999.94 (MRR 1,199,994 / 12 = 99,999.5 -> 100,000).
insert into public.billing_plans (code, name, tier, interval, price_cents, currency, active) values
  ('ra_basic_m', 'RA Basic', 'basic', 'month', 49900, 'INR', true),
  ('ra_pro_m', 'RA Pro', 'pro', 'month', 99900, 'INR', true),
  ('ra_team_y', 'RA Team (yearly)', 'enterprise', 'year', 1199994, 'INR', true);

-- The seller is in Karnataka (29, the seed): organizations without a state pay CGST + SGST;
-- o7 is in Maharashtra (27) and pays IGST.
insert into public.organizations (id, name, state_code)
select pg_temp.org(n), 'RA org ' || n, case when n = 7 then '27' end from generate_series(1, 10) n;

-- The subscriptions are created by their first change below (o4 has two: cancelled, then back).

-- History (day, what happens to the MRR in paise):
select pg_temp.log(1, 1, 'activated', null, 'ra_basic_m', null, 'active', 1);                -- d1  o1 new 49,900
select pg_temp.log(9, 1, 'activated', null, 'free', null, 'active', 1, '12:00');              -- d1  o9 free: 0
select pg_temp.log(2, 1, 'activated', null, 'ra_pro_m', null, 'active', 2);                  -- d2  o2 new 99,900
select pg_temp.log(3, 1, 'activated', null, 'ra_basic_m', null, 'active', 3);                -- d3  o3 new 49,900
select pg_temp.log(8, 1, 'trial_started', null, 'ra_pro_m', null, 'trialing', 4);            -- d4  o8 trial: 0
select pg_temp.log(4, 1, 'activated', null, 'ra_pro_m', null, 'active', 5);                  -- d5  o4 new 99,900
select pg_temp.log(7, 1, 'activated', null, 'ra_team_y', null, 'active', 6);                 -- d6  o7 new 100,000
select pg_temp.log(10, 1, 'activated', null, 'ra_basic_m', null, 'active', 7);               -- d7  o10 new 49,900
select pg_temp.log(5, 1, 'activated', null, 'ra_basic_m', null, 'active', 8);                -- d8  o5 new 49,900
select pg_temp.log(6, 1, 'activated', null, 'ra_pro_m', null, 'active', 9);                  -- d9  o6 new 99,900
select pg_temp.log(3, 1, 'cancel_scheduled', 'ra_basic_m', 'ra_basic_m', 'active', 'active', 10); -- d10 intent: 0
select pg_temp.log(5, 1, 'refunded', 'ra_basic_m', 'ra_basic_m', 'active', 'canceled', 12, '15:00'); -- d12 o5 churn 49,900
select pg_temp.log(4, 1, 'canceled', 'ra_pro_m', 'ra_pro_m', 'active', 'canceled', 15);     -- d15 o4 churn 99,900
select pg_temp.log(8, 1, 'activated', 'ra_pro_m', 'ra_pro_m', 'trialing', 'active', 18, '11:00'); -- d18 o8 new 99,900
select pg_temp.log(1, 1, 'plan_changed', 'ra_basic_m', 'ra_pro_m', 'active', 'active', 20, '11:00'); -- d20 o1 expansion 50,000
select pg_temp.log(2, 1, 'downgrade_scheduled', 'ra_pro_m', 'ra_basic_m', 'active', 'active', 25); -- d25 intent: 0
select pg_temp.log(1, 1, 'renewed', 'ra_pro_m', 'ra_pro_m', 'active', 'active', 32, '11:00');  -- d32 renewal: 0
select pg_temp.log(2, 1, 'downgraded', 'ra_pro_m', 'ra_basic_m', 'active', 'active', 33, '00:00'); -- d33 o2 contraction 50,000 (at midnight)
select pg_temp.log(2, 1, 'renewed', 'ra_basic_m', 'ra_basic_m', 'active', 'active', 33, '11:00');
select pg_temp.log(3, 1, 'canceled', 'ra_basic_m', 'ra_basic_m', 'active', 'canceled', 34, '00:00'); -- d34 o3 churn 49,900
select pg_temp.log(10, 1, 'past_due', 'ra_basic_m', 'ra_basic_m', 'active', 'past_due', 38, '00:00'); -- d38 past due still counts
select pg_temp.log(4, 2, 'activated', null, 'ra_basic_m', null, 'active', 40, '11:00');      -- d40 o4 reactivation 49,900
select pg_temp.log(10, 1, 'expired', 'ra_basic_m', 'ra_basic_m', 'past_due', 'expired', 41, '00:00'); -- d41 o10 churn 49,900
select pg_temp.log(1, 1, 'upgrade_ordered', 'ra_pro_m', 'ra_team_y', 'active', 'active', 50); -- d50 intent (unpaid): 0
select pg_temp.log(6, 1, 'canceled', 'ra_pro_m', 'ra_pro_m', 'active', 'canceled', 55, '23:59'); -- d55 o6 churn 99,900 (last minute)

-- Money (intra-state: CGST 9 % + SGST 9 %; o7 inter-state: IGST 18 %):
create temp table pe (key text primary key, id uuid) on commit drop;
insert into pe values
  ('o1', pg_temp.pay(1, 1, 'ra_basic_m', 49900, 'payu')),                      -- 58,882 (GST 8,982)
  ('o2', pg_temp.pay(2, 2, 'ra_pro_m', 99900, 'razorpay')),                    -- 117,882 (GST 17,982)
  ('o3', pg_temp.pay(3, 3, 'ra_basic_m', 49900, 'payu')),
  ('o4', pg_temp.pay(4, 5, 'ra_pro_m', 99900, 'razorpay')),
  ('o7', pg_temp.pay(7, 6, 'ra_team_y', 1199994, 'razorpay')),                 -- 1,415,993 (IGST 215,999)
  ('o10', pg_temp.pay(10, 7, 'ra_basic_m', 49900, 'manual', p_invoice => false)), -- 58,882, no invoice: GST 0
  ('o5', pg_temp.pay(5, 8, 'ra_basic_m', 49900, 'payu')),
  ('o6', pg_temp.pay(6, 9, 'ra_pro_m', 99900, 'razorpay')),
  ('o8', pg_temp.pay(8, 18, 'ra_pro_m', 99900, 'payu')),
  ('o1 upgrade', pg_temp.pay(1, 20, 'ra_pro_m', 35000, 'payu', 'upgrade')),    -- 41,300 (GST 6,300)
  ('o1 renewal', pg_temp.pay(1, 32, 'ra_pro_m', 99900, 'payu', 'renewal')),
  ('o2 renewal', pg_temp.pay(2, 33, 'ra_basic_m', 49900, 'razorpay', 'renewal')),
  ('o4 again', pg_temp.pay(4, 40, 'ra_basic_m', 49900, 'payu'));
select pg_temp.refund((select id from pe where key = 'o5'), 12, 58882);  -- full: credit note GST 8,982
select pg_temp.refund((select id from pe where key = 'o6'), 14, 20000);  -- partial: GST 2 x round(20,000 x 8,991 / 117,882) = 3,050

-- -------------------------------------------------------------------------------------------------
-- Expected figures, by hand (paise)
-- -------------------------------------------------------------------------------------------------

-- Closing MRR, paying organizations, active or past_due subscriptions (o9's free one included):
-- one row per run of days with the same figures, days 1 to 60.
create temp table expected_mrr (from_day integer, to_day integer, mrr bigint, paying integer, active integer) on commit drop;
insert into expected_mrr values
  (1, 1, 49900, 1, 2),
  (2, 2, 149800, 2, 3),
  (3, 4, 199700, 3, 4),
  (5, 5, 299600, 4, 5),
  (6, 6, 399600, 5, 6),
  (7, 7, 449500, 6, 7),
  (8, 8, 499400, 7, 8),
  (9, 11, 599300, 8, 9),
  (12, 14, 549400, 7, 8),
  (15, 17, 449500, 6, 7),
  (18, 19, 549400, 7, 8),
  (20, 32, 599400, 7, 8),
  (33, 33, 549400, 7, 8),
  (34, 39, 499500, 6, 7),
  (40, 40, 549400, 7, 8),
  (41, 54, 499500, 6, 7),
  (55, 60, 399600, 5, 6);

-- The days something happens (every other day: zeros).
create temp table expected_day (
  day integer, gross bigint, refunds bigint, gst bigint, net_revenue bigint,
  new_mrr bigint, reactivation_mrr bigint, expansion_mrr bigint, contraction_mrr bigint, churned_mrr bigint,
  new_customers integer, reactivated_customers integer, churned_customers integer
) on commit drop;
insert into expected_day values
  (1, 58882, 0, 8982, 49900, 49900, 0, 0, 0, 0, 1, 0, 0),
  (2, 117882, 0, 17982, 99900, 99900, 0, 0, 0, 0, 1, 0, 0),
  (3, 58882, 0, 8982, 49900, 49900, 0, 0, 0, 0, 1, 0, 0),
  (5, 117882, 0, 17982, 99900, 99900, 0, 0, 0, 0, 1, 0, 0),
  (6, 1415993, 0, 215999, 1199994, 100000, 0, 0, 0, 0, 1, 0, 0),
  (7, 58882, 0, 0, 58882, 49900, 0, 0, 0, 0, 1, 0, 0),
  (8, 58882, 0, 8982, 49900, 49900, 0, 0, 0, 0, 1, 0, 0),
  (9, 117882, 0, 17982, 99900, 99900, 0, 0, 0, 0, 1, 0, 0),
  (12, 0, 58882, -8982, -49900, 0, 0, 0, 0, 49900, 0, 0, 1),
  (14, 0, 20000, -3050, -16950, 0, 0, 0, 0, 0, 0, 0, 0),
  (15, 0, 0, 0, 0, 0, 0, 0, 0, 99900, 0, 0, 1),
  (18, 117882, 0, 17982, 99900, 99900, 0, 0, 0, 0, 1, 0, 0),
  (20, 41300, 0, 6300, 35000, 0, 0, 50000, 0, 0, 0, 0, 0),
  (32, 117882, 0, 17982, 99900, 0, 0, 0, 0, 0, 0, 0, 0),
  (33, 58882, 0, 8982, 49900, 0, 0, 0, 50000, 0, 0, 0, 0),
  (34, 0, 0, 0, 0, 0, 0, 0, 0, 49900, 0, 0, 1),
  (40, 58882, 0, 8982, 49900, 0, 49900, 0, 0, 0, 0, 1, 0),
  (41, 0, 0, 0, 0, 0, 0, 0, 0, 49900, 0, 0, 1),
  (55, 0, 0, 0, 0, 0, 0, 0, 0, 99900, 0, 0, 1);

-- -------------------------------------------------------------------------------------------------
-- The daily job, from nothing stored: every day from the first history row up to today
-- -------------------------------------------------------------------------------------------------

-- Today is 30 November (day 61), 12:00 IST: its row is partial.
select set_config('billing.now', pg_temp.at(61, '12:00')::text, true);

select is(billing.job_revenue_analytics(), 61, 'the daily job writes every day from the first history row (1 October) to today');
select is(
  (select row(rows_affected, error, as_of)::text from billing.job_runs where job_name = 'billing-analytics-daily'
   order by id desc limit 1),
  row(61, null::text, pg_temp.at(61, '12:00'))::text,
  'and is logged in billing.job_runs like the other jobs'
);

select results_eq(
  $$ select r.day, r.mrr, r.paying_customers, r.active_subscriptions from billing.revenue_analytics r
     where r.day between pg_temp.d(1) and pg_temp.d(60) order by r.day $$,
  $$ select pg_temp.d(n), e.mrr, e.paying, e.active
     from expected_mrr e cross join lateral generate_series(e.from_day, e.to_day) n order by n $$,
  'closing MRR, paying customers and active subscriptions of all 60 days are the hand-worked ones'
);
select results_eq(
  $$ select r.day, r.gross, r.refunds, r.gst, r.net_revenue, r.new_mrr, r.reactivation_mrr, r.expansion_mrr,
            r.contraction_mrr, r.churned_mrr, r.new_customers, r.reactivated_customers, r.churned_customers
     from billing.revenue_analytics r where r.day between pg_temp.d(1) and pg_temp.d(60) order by r.day $$,
  $$ select pg_temp.d(n), coalesce(e.gross, 0), coalesce(e.refunds, 0), coalesce(e.gst, 0), coalesce(e.net_revenue, 0),
            coalesce(e.new_mrr, 0), coalesce(e.reactivation_mrr, 0), coalesce(e.expansion_mrr, 0),
            coalesce(e.contraction_mrr, 0), coalesce(e.churned_mrr, 0), coalesce(e.new_customers, 0),
            coalesce(e.reactivated_customers, 0), coalesce(e.churned_customers, 0)
     from generate_series(1, 60) n left join expected_day e on e.day = n order by n $$,
  'revenue, GST and the MRR movements of every day are the hand-worked ones (zeros on quiet days)'
);
-- The figures add up because the table refuses a row where they do not: each row below is a stored
-- day (day 20) copied to another day with one figure off by one paisa or one customer, and must be
-- refused by the check constraint named (a constraint dropped or loosened lets it in; one that
-- checks something else names another constraint). The unaltered copy goes in first.
create function pg_temp.store_day_20_with(p_column text, p_delta bigint) returns void language sql as $$
  insert into billing.revenue_analytics
  select (jsonb_populate_record(null::billing.revenue_analytics,
                                to_jsonb(r) || jsonb_build_object('day', date '2000-01-01',
                                                                  p_column, (to_jsonb(r) ->> p_column)::bigint + p_delta))).*
  from billing.revenue_analytics r where r.day = pg_temp.d(20);
$$;
select lives_ok($$select pg_temp.store_day_20_with('mrr', 0)$$, 'the same day copied unaltered is stored');
delete from billing.revenue_analytics where day = date '2000-01-01';
select throws_ok($$select pg_temp.store_day_20_with('opening_mrr', 1)$$, '23514',
  'new row for relation "revenue_analytics" violates check constraint "revenue_analytics_mrr_moves_add_up"',
  'a day whose MRR movements do not add up (opening + new + reactivation + expansion - contraction - churned <> closing) is refused');
select throws_ok($$select pg_temp.store_day_20_with('arr', 1)$$, '23514',
  'new row for relation "revenue_analytics" violates check constraint "revenue_analytics_arr"',
  'a day whose arr is not 12 x mrr is refused');
select throws_ok($$select pg_temp.store_day_20_with('net_revenue', 1)$$, '23514',
  'new row for relation "revenue_analytics" violates check constraint "revenue_analytics_net_adds_up"',
  'a day whose net revenue is not gross - refunds - gst is refused');
select throws_ok($$select pg_temp.store_day_20_with('opening_customers', 1)$$, '23514',
  'new row for relation "revenue_analytics" violates check constraint "revenue_analytics_customers_add_up"',
  'a day whose customers do not add up (opening + new + reactivated - churned <> paying) is refused');
delete from billing.revenue_analytics where day = date '2000-01-01'; -- let in by a missing constraint
select is_empty(
  $$ select r.day from billing.revenue_analytics r
     left join billing.revenue_analytics p on p.day = r.day - 1
     where r.opening_mrr <> coalesce(p.mrr, 0) or r.opening_customers <> coalesce(p.paying_customers, 0) $$,
  'every day opens with the MRR and the paying customers the day before closed with'
);
select is(
  (select row(r.complete, r.as_of)::text from billing.revenue_analytics r where r.day = pg_temp.d(61)),
  row(false, pg_temp.at(61, '12:00'))::text,
  'today''s row is partial: figures up to now'
);
select ok(
  (select bool_and(r.complete and r.as_of = pg_temp.at(r.day - pg_temp.d(0) + 1, '00:00'))
   from billing.revenue_analytics r where r.day <= pg_temp.d(60)),
  'past days are complete, as of their end (the next India midnight)'
);

-- Breakdowns.
select is(
  (select jsonb_build_array(r.net_revenue_by_plan, r.net_revenue_by_provider) from billing.revenue_analytics r
   where r.day = pg_temp.d(6)),
  '[{"ra_team_y": 1199994}, {"razorpay": 1199994}]'::jsonb,
  'net revenue by plan and by provider: the yearly plan paid with IGST'
);
select is(
  (select jsonb_build_array(r.net_revenue_by_plan, r.net_revenue_by_provider) from billing.revenue_analytics r
   where r.day = pg_temp.d(14)),
  '[{"ra_pro_m": -16950}, {"razorpay": -16950}]'::jsonb,
  'a partial refund: its net (without the GST of its credit note) is taken from its plan and provider'
);
select is(
  (select r.net_revenue_by_provider from billing.revenue_analytics r where r.day = pg_temp.d(7)),
  '{"manual": 58882}'::jsonb,
  'a payment with no tax invoice counts no GST'
);
select is(
  (select r.live_subscriptions_by_plan from billing.revenue_analytics r where r.day = pg_temp.d(4)),
  '{"free": {"active": 1}, "ra_basic_m": {"active": 2}, "ra_pro_m": {"active": 1, "trialing": 1}}'::jsonb,
  'live subscriptions by plan and status: the trial counts there, not in MRR'
);
select is(
  (select r.live_subscriptions_by_plan from billing.revenue_analytics r where r.day = pg_temp.d(39)),
  '{"free": {"active": 1}, "ra_basic_m": {"active": 1, "past_due": 1}, "ra_pro_m": {"active": 3}, "ra_team_y": {"active": 1}}'::jsonb,
  'past_due is live and still counts (o10 on day 39); ended subscriptions are not listed'
);
select is(
  (select r.mrr_by_plan from billing.revenue_analytics r where r.day = pg_temp.d(60)),
  '{"ra_basic_m": 99800, "ra_pro_m": 199800, "ra_team_y": 100000}'::jsonb,
  'MRR by plan; a yearly plan counts round_half_up(1,199,994 / 12) = 100,000'
);

-- -------------------------------------------------------------------------------------------------
-- Idempotent; late; backfills what is missing
-- -------------------------------------------------------------------------------------------------

create temp table before_rows on commit drop as select * from billing.revenue_analytics;

select is(billing.refresh_revenue_analytics(pg_temp.d(20), pg_temp.d(20)), 1, 'one day computed again');
select is(
  (select to_jsonb(r) - 'computed_at' from billing.revenue_analytics r where r.day = pg_temp.d(20)),
  (select to_jsonb(b) - 'computed_at' from before_rows b where b.day = pg_temp.d(20)),
  'gives the same row'
);
select ok(
  (select r.computed_at > b.computed_at from billing.revenue_analytics r join before_rows b using (day)
   where r.day = pg_temp.d(20)),
  'only computed_at changes'
);

delete from billing.revenue_analytics where day in (pg_temp.d(30), pg_temp.d(45), pg_temp.d(61));
select is(billing.job_revenue_analytics(), 4,
          'after days were lost the job writes the missing ones (days 30, 45 and today) and the latest stored one (day 60) again');
select is_empty(
  $$ select to_jsonb(b) - 'computed_at' from before_rows b
     except select to_jsonb(r) - 'computed_at' from billing.revenue_analytics r $$,
  'the days written back are the ones lost'
);
select is((select count(*)::integer from billing.revenue_analytics), 61, 'no day twice');

-- Run late: two days later (2 December, 00:05 IST) the job stores yesterday complete and today.
select set_config('billing.now', pg_temp.at(63, '00:05')::text, true);
select is(billing.job_revenue_analytics(), 3, 'a job two days late catches up: 30 November again, 1 and 2 December');
select is(
  (select string_agg(r.day || ':' || r.complete, ',' order by r.day) from billing.revenue_analytics r where r.day > pg_temp.d(60)),
  '2026-11-30:true,2026-12-01:true,2026-12-02:false',
  'the days it ran late for are complete now, today is partial'
);
select set_config('billing.now', pg_temp.at(61, '12:00')::text, true);
delete from billing.revenue_analytics where day > pg_temp.d(61);
select billing.refresh_revenue_analytics(pg_temp.d(61));

-- -------------------------------------------------------------------------------------------------
-- revenue_summary, the views, bad input, the schedule
-- -------------------------------------------------------------------------------------------------

select is(
  billing.revenue_summary(pg_temp.d(33)),
  (select to_jsonb(r) - 'computed_at' from billing.revenue_analytics r where r.day = pg_temp.d(33)),
  'revenue_summary(day) is the stored row (one computation)'
);
select ok(
  billing.revenue_summary() ?& array['mrr', 'arr', 'net_revenue', 'active_subscriptions', 'new_mrr', 'expansion_mrr',
                                     'contraction_mrr', 'churned_mrr', 'reactivation_mrr', 'opening_mrr', 'gst',
                                     'refunds', 'gross', 'net_revenue_by_plan', 'live_subscriptions_by_plan']
  and (billing.revenue_summary() ->> 'day')::date = pg_temp.d(61),
  'revenue_summary() is today''s, with every key'
);

select results_eq(
  $$ select month, days, complete, opening_mrr, closing_mrr, new_mrr, reactivation_mrr, expansion_mrr, contraction_mrr,
            churned_mrr, opening_customers, churned_customers, closing_customers, logo_churn_rate,
            gross_revenue_churn_rate, net_revenue_churn_rate, arpa, gross, refunds, gst, net_revenue
     from billing.revenue_monthly order by month $$,
  $$ values
     ('2026-10-01'::date, 31, true, 0::bigint, 599400::bigint, 699200::bigint, 0::bigint, 50000::bigint, 0::bigint,
      149800::bigint, 0, 2, 7, null::numeric, null::numeric, null::numeric, 85629::bigint,
      2164349::bigint, 78882::bigint, 309141::bigint, 1776326::bigint),
     ('2026-11-01'::date, 30, false, 599400::bigint, 399600::bigint, 0::bigint, 49900::bigint, 0::bigint, 50000::bigint,
      199700::bigint, 7, 3, 5, 0.4286, 0.4166, 0.4166, 79920::bigint,
      235646::bigint, 0::bigint, 35946::bigint, 199700::bigint) $$,
  'monthly: opening and closing MRR, movements, logo churn 3/7, gross revenue churn (199,700 + 50,000) / 599,400, ARPA, revenue'
);
select is(
  (select row(day, complete, mrr)::text from billing.revenue_current),
  row(pg_temp.d(61), false, 399600::bigint)::text,
  'revenue_current: today''s stored row'
);

select throws_ok('select billing.revenue_summary(null)', '22004', 'revenue_summary needs a day', 'no day: refused');
select throws_ok(format('select billing.revenue_summary(%L)', pg_temp.d(62)), '22023', null,
                 'a day that has not begun: refused');
select throws_ok(format('select billing.refresh_revenue_analytics(null, %L)', pg_temp.d(62)), '22023', null,
                 'refresh up to a future day: refused');
select throws_ok(format('select billing.refresh_revenue_analytics(%L, %L)', pg_temp.d(10), pg_temp.d(9)), '22023', null,
                 'refresh from after to: refused');

select is(
  (select schedule || ' ' || command from cron.job where jobname = 'billing-analytics-daily'),
  '35 18 * * * select billing.job_revenue_analytics()',
  'billing-analytics-daily runs at 00:05 IST through pg_cron'
);

-- -------------------------------------------------------------------------------------------------
-- Who may read what
-- -------------------------------------------------------------------------------------------------

select is_empty(
  $$ select r.role || ' ' || o.obj from (values ('anon'), ('authenticated')) r(role)
     cross join (values ('billing.revenue_analytics'), ('billing.revenue_monthly'), ('billing.revenue_current'),
                        ('billing.subscription_states')) o(obj)
     where has_table_privilege(r.role, o.obj, 'select')
     union all
     select r.role || ' ' || f.fn from (values ('anon'), ('authenticated'), ('billing_analyst')) r(role)
     cross join (values ('billing.revenue_summary(date)'), ('billing.refresh_revenue_analytics(date, date, integer)'),
                        ('billing.job_revenue_analytics(integer)')) f(fn)
     where has_function_privilege(r.role, f.fn, 'execute') $$,
  'anon and authenticated read none of the analytics; they and billing_analyst execute none of the functions'
);
select tests.as_role('authenticated');
select throws_ok('select * from billing.revenue_current', '42501', null, 'a signed-in user cannot read the analytics');
select tests.as_postgres();

select tests.as_role('service_role');
select is((billing.revenue_summary(pg_temp.d(20)) ->> 'mrr')::bigint, 599400::bigint,
          'service_role computes the summary with its own grants');
select tests.as_postgres();

-- billing_analyst has no usage on pgTAP's schema: it records what it could read, postgres asserts.
create temp table analyst_reads (what text primary key, answer text) on commit drop;
grant all on analyst_reads to billing_analyst;
set local role billing_analyst;
do $$
declare
  v_what text;
begin
  insert into analyst_reads values ('analytics',
    row((select count(*) from billing.revenue_analytics), (select count(*) from billing.revenue_monthly),
        (select mrr from billing.revenue_current))::text);
  foreach v_what in array array['select count(*) from public.payment_events', 'select count(*) from public.subscriptions',
                                'select count(*) from billing.webhook_events',
                                'select count(*) from billing.subscription_states',
                                'select billing.revenue_summary()', 'select billing.refresh_revenue_analytics()'] loop
    begin
      execute v_what;
      insert into analyst_reads values (v_what, 'allowed');
    exception when insufficient_privilege then
      insert into analyst_reads values (v_what, sqlstate);
    end;
  end loop;
end;
$$;
reset role;
select is((select answer from analyst_reads where what = 'analytics'), row(61, 2, 399600)::text,
          'billing_analyst reads the table and both views');
select is(
  (select jsonb_object_agg(what, answer) from analyst_reads where what <> 'analytics'),
  '{"select count(*) from public.payment_events": "42501", "select count(*) from public.subscriptions": "42501",
    "select count(*) from billing.webhook_events": "42501", "select count(*) from billing.subscription_states": "42501",
    "select billing.revenue_summary()": "42501", "select billing.refresh_revenue_analytics()": "42501"}'::jsonb,
  'and nothing else: not payment_events, subscriptions, webhook_events or the history view; it cannot compute or refresh'
);
select is_empty(
  $$ select o.obj from (values ('public.payment_events'), ('public.subscriptions'), ('public.subscription_history'),
                               ('public.invoices'), ('public.orders'), ('public.organizations'), ('billing.webhook_events'),
                               ('billing.subscription_states'), ('billing.job_runs')) o(obj)
     where has_table_privilege('billing_analyst', o.obj, 'select') $$,
  'billing_analyst has no select on any table with customer rows'
);

select * from finish();
rollback;
