// Revenue analytics at size: 1,000,000 subscriptions with about 1,500,000 subscription_history
// rows and 3,000,000 payment events spread over the last year. Times one day of the daily job
// (billing.refresh_revenue_analytics(day, day): revenue_summary and the stored row) beside a
// floor: the plain aggregates a DBA would write for the same figures, without the movements,
// the GST documents or the intent rule: the day's captured and refunded amounts by plan and
// provider, and every subscription's latest state (distinct on) summed by plan and status.
// Target: job <= 2 x floor. Each is run 3 times, the median reported.
import postgres from "postgres";
import { check, fmt, measures, printTable } from "./lib.mjs";

const SUBS = 1_000_000;
const EVENTS = 3_000_000;
const RUNS = 3;
const uuid = (prefix, expr) => `('${prefix}-0000-4000-8000-' || lpad((${expr})::text, 12, '0'))::uuid`;
const org = (expr) => uuid("00000000", expr);
const sub = (expr) => uuid("00000001", expr);
const ord = (expr) => uuid("00000002", expr);
// Four plans; a subscription's plan and times follow from its number i (no random(): the same
// data every run).
const plans = ["b501", "b502", "b503", "b504"].map((s) => `'00000000-0000-4000-8000-00000000${s}'::uuid`);
const planOf = (expr) => `(array[${plans.join(", ")}])[1 + (${expr}) % 4]`;

const setup = `
update cron.job set active = false where jobname like 'billing-%';
-- A bulk seed: no per-row triggers (tax quote, append-only guards), no foreign key checks, and
-- the secondary indexes of the three big tables built after the load (as pg_restore does), which
-- takes a minute off the setup; they are the migrations' indexes, recreated from their definitions.
set session_replication_role = replica;
set maintenance_work_mem = '256MB';
create temp table bench_index as
select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as definition
from pg_index i
where i.indrelid in ('public.payment_events'::regclass, 'public.subscription_history'::regclass, 'public.orders'::regclass)
  and not exists (select from pg_constraint c where c.conindid = i.indexrelid);
do $$
declare
  v_name text;
begin
  for v_name in select name from bench_index loop
    execute 'drop index ' || v_name;
  end loop;
end;
$$;

insert into public.billing_plans (id, code, name, tier, interval, price_cents) values
  (${plans[0]}, 'bench_basic_m', 'Bench Basic', 'basic', 'month', 49900),
  (${plans[1]}, 'bench_pro_m', 'Bench Pro', 'pro', 'month', 99900),
  (${plans[2]}, 'bench_basic_y', 'Bench Basic yearly', 'basic', 'year', 499000),
  (${plans[3]}, 'bench_pro_y', 'Bench Pro yearly', 'pro', 'year', 999000);

insert into public.organizations (id, name) select ${org("i")}, 'bench org ' || i from generate_series(1::bigint, ${SUBS}) i;

-- Started at a moment of the last year; half of them changed once later: canceled (20 %), upgraded
-- (15 %), downgraded (10 %), past due (5 %); 5 % began with a trial.
create temp table bench_sub on commit drop as
select i, now() - interval '365 days' + make_interval(secs => (i * 7919) % 31536000) as started,
       case when i % 20 = 0 then 'trialing' else 'active' end::public.subscription_status as first_status,
       case when i % 100 < 20 then 'canceled' when i % 100 < 35 then 'plan_changed' when i % 100 < 45 then 'downgraded'
            when i % 100 < 50 then 'past_due' end as change
from generate_series(1::bigint, ${SUBS}) i;

insert into public.subscriptions (id, organization_id, plan_id, status, current_period_start, current_period_end, trial_end,
                                  provider)
select ${sub("i")}, ${org("i")}, ${planOf("i")},
       case change when 'canceled' then 'canceled' when 'past_due' then 'past_due' else first_status end::public.subscription_status,
       started, started + interval '1 month', started + interval '1 month', 'payu'
from bench_sub;

insert into public.subscription_history (id, organization_id, subscription_id, action, old_plan_id, new_plan_id, old_status,
                                         new_status, effective_at)
select ${uuid("00000003", "i")}, ${org("i")}, ${sub("i")}, 'activated', null, ${planOf("i")}, null, first_status, started from bench_sub
union all
select ${uuid("00000004", "i")}, ${org("i")}, ${sub("i")}, change, ${planOf("i")},
       case change when 'plan_changed' then ${planOf("i + 1")} when 'downgraded' then ${planOf("i + 3")} else ${planOf("i")} end,
       first_status,
       case change when 'canceled' then 'canceled' when 'past_due' then 'past_due' else first_status end::public.subscription_status,
       least(started + make_interval(secs => (i * 104729) % 15552000), now() - interval '1 minute')
from bench_sub where change is not null;

insert into public.orders (id, receipt, organization_id, plan_id, subscription_id, provider, amount_cents, status, paid_at)
select ${ord("i")}, 'ord_bench_' || lpad(i::text, 7, '0'), ${org("i")}, ${planOf("i")}, ${sub("i")}, case when i % 3 = 0 then 'razorpay' else 'payu' end::public.payment_provider,
       58882, 'paid', started
from bench_sub;

-- Three payments a subscription: 97 % captured, 3 % refunded (of the same payment id).
insert into public.payment_events (id, organization_id, order_id, provider, provider_payment_id, amount_cents, currency, status,
                                   details, occurred_at)
select ${uuid("00000005", "n")}, ${org("s")}, ${ord("s")}, case when s % 3 = 0 then 'razorpay' else 'payu' end::public.payment_provider,
       'pay_' || (case when n % 100 < 3 then n - 1 else n end), 58882, 'INR',
       case when n % 100 < 3 then 'refunded' else 'captured' end::public.payment_status,
       case when n % 100 < 3 then jsonb_build_object('refund_id', 'rfnd_' || n) else '{}'::jsonb end,
       now() - interval '365 days' + make_interval(secs => (n * 15485863) % 31536000)
from generate_series(1::bigint, ${EVENTS}) n
cross join lateral (select 1 + (n - 1) % ${SUBS} as s) x;

do $$
declare
  v_definition text;
begin
  for v_definition in select definition from bench_index loop
    execute v_definition;
  end loop;
end;
$$;
set session_replication_role = origin;
drop table bench_sub;
analyze public.subscription_history;
analyze public.payment_events;
analyze public.orders;
analyze public.subscriptions;
`;

// The floor: what a DBA would write for the day's figures by hand.
const floorSql = (day) => `
with bounds as (
  select '${day}'::date::timestamp at time zone 'Asia/Kolkata' as t0,
         ('${day}'::date + 1)::timestamp at time zone 'Asia/Kolkata' as t1
), money as (
  select p.code, pe.provider, sum(pe.amount_cents) filter (where pe.status = 'captured') as captured,
         sum(pe.amount_cents) filter (where pe.status = 'refunded') as refunded
  from public.payment_events pe
  join public.orders o on o.id = pe.order_id
  join public.billing_plans p on p.id = o.plan_id
  cross join bounds b
  where pe.occurred_at >= b.t0 and pe.occurred_at < b.t1 and pe.status in ('captured', 'refunded')
  group by p.code, pe.provider
), latest as (
  select distinct on (h.subscription_id) h.new_plan_id, h.new_status
  from public.subscription_history h cross join bounds b
  where h.effective_at < b.t1
  order by h.subscription_id, h.effective_at desc
), states as (
  select p.code, l.new_status, count(*) as n,
         sum(case when l.new_status in ('active', 'past_due')
                  then case p.interval when 'year' then p.price_cents / 12 else p.price_cents end else 0 end) as mrr
  from latest l join public.billing_plans p on p.id = l.new_plan_id
  group by p.code, l.new_status
)
select (select jsonb_agg(m) from money m) as money, (select jsonb_agg(s) from states s) as states`;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** What `npm run bench` says before the section runs: what it measures and about how long it takes. */
export const about = {
  what: `one day of billing-analytics-daily over ${SUBS.toLocaleString("en-US")} subscriptions and ` +
    `${EVENTS.toLocaleString("en-US")} payment events, beside a hand-written aggregate`,
  seconds: () => 100,
};

export default async function bench(db) {
  const t0 = performance.now();
  await db.psql(["-v", "ON_ERROR_STOP=1", "-c", setup]);
  const setupSeconds = (performance.now() - t0) / 1000;

  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const [{ day, history, events }] = await sql`
      select ((now() at time zone 'Asia/Kolkata')::date - 30)::text as day,
             (select count(*)::int from public.subscription_history) as history,
             (select count(*)::int from public.payment_events) as events`;
    const time = async (query) => {
      const ms = [];
      for (let i = 0; i < RUNS; i++) {
        const s = performance.now();
        await sql.unsafe(query);
        ms.push(performance.now() - s);
      }
      return median(ms);
    };
    const floorMs = await time(floorSql(day));
    const jobMs = await time(`select billing.refresh_revenue_analytics('${day}', '${day}')`);
    const [row] = await sql`
      select mrr, opening_mrr, new_mrr, expansion_mrr, contraction_mrr, churned_mrr, reactivation_mrr,
             gross, refunds, active_subscriptions, paying_customers
      from billing.revenue_analytics where day = ${day}::date`;
    const [{ moved }] = await sql`
      select count(distinct organization_id)::int as moved from public.subscription_history
      where effective_at >= ${day}::date::timestamp at time zone 'Asia/Kolkata'
        and effective_at < (${day}::date + 1)::timestamp at time zone 'Asia/Kolkata'`;

    measures(`one day (${day}) of billing-analytics-daily: ${history.toLocaleString("en-US")} history rows, ` +
      `${events.toLocaleString("en-US")} payment events (setup ${fmt(setupSeconds, 1)} s, median of ${RUNS}); floor: ` +
      "sum(...) group by plan and provider + distinct on latest state by plan and status", [
      { measure: "billing.refresh_revenue_analytics(day, day)", unit: "ms", floor: floorMs, ours: jobMs, target: { ratio: 2 }, digits: 0 },
    ]);
    printTable("the stored row (paise)", [{
      ...Object.fromEntries(Object.entries(row).map(([k, v]) => [k, String(v)])),
      "organizations that moved": moved,
    }]);

    // Wrong figures are worse than slow ones: the stored row against the floor's plain sums (the
    // bench's plans and payments are all INR) and against the movements identity.
    const [floorRow] = await sql.unsafe(floorSql(day));
    const sum = (list, key) => (list ?? []).reduce((n, r) => n + Number(r[key] ?? 0), 0);
    const money = { gross: sum(floorRow.money, "captured"), refunds: sum(floorRow.money, "refunded") };
    check(
      "the stored gross and refunds equal the floor's sums of the day's captured and refunded payments",
      Number(row.gross) === money.gross && Number(row.refunds) === money.refunds,
      `stored ${row.gross} / ${row.refunds}, floor ${money.gross} / ${money.refunds}`,
    );
    const closing = Number(row.opening_mrr) + Number(row.new_mrr) + Number(row.reactivation_mrr) +
      Number(row.expansion_mrr) - Number(row.contraction_mrr) - Number(row.churned_mrr);
    check("opening MRR + the day's movements = closing MRR", closing === Number(row.mrr), `${closing} against ${row.mrr}`);
    check("the day has payments and movements to count", money.gross > 0 && moved > 0, `gross ${money.gross}, ${moved} organizations moved`);
  } finally {
    await sql.end();
  }
}
