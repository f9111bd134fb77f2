// Subscription lifecycle at size: 1,000,000 organizations with a subscription each, 100,000 of
// them due. billing-expire brings every due subscription to its right state, called the way
// pg_cron calls it: one batch of 10,000 per transaction (billing.job_expire(10000)), repeated
// until it returns 0; the time includes the subscription_history row of every transition and the
// notifications. Target: the job under 10 s. (The plan lookups at this size are measured in
// 12-plan.)
import postgres from "postgres";
import { fmt, printTable } from "./lib.mjs";

export const ORGS = 1_000_000;
const BATCH = 10_000;
const orgUuid = (expr) => `('00000000-0000-4000-8000-' || lpad((${expr})::text, 12, '0'))::uuid`;

// Who is due, and what the job must make of them (ranges of i; every other subscription runs).
const groups = [
  { name: "active, ended 1 day ago", from: 900_001, to: 920_000, expect: "past_due" },
  { name: "active, ended 8 days ago (no job ran)", from: 920_001, to: 940_000, expect: "expired (past_due, then expired)" },
  { name: "past_due, grace over", from: 940_001, to: 970_000, expect: "expired" },
  { name: "cancel at period end, ended 1 hour ago", from: 970_001, to: 980_000, expect: "canceled" },
  { name: "downgrade pro -> basic due 1 hour ago", from: 980_001, to: 990_000, expect: "past_due on basic (downgraded, then past_due)" },
  { name: "trial ended 1 hour ago", from: 990_001, to: 1_000_000, expect: "expired" },
];

export const setup = `
-- pg_cron must not run the job behind the benchmark's back.
update cron.job set active = false where jobname like 'billing-%';

insert into public.billing_plans (id, code, name, tier, interval, price_cents, trial_days, features) values
  ('00000000-0000-4000-8000-00000000b401', 'bench_basic', 'Bench Basic', 'basic', 'month', 49900, 7, '{"api_calls_per_day": 1000}'),
  ('00000000-0000-4000-8000-00000000b402', 'bench_pro', 'Bench Pro', 'pro', 'month', 99900, 7, '{"api_calls_per_day": 100000}');

insert into public.organizations (id, name)
select ${orgUuid("i")}, 'bench org ' || i from generate_series(1, ${ORGS}) i;

insert into public.subscriptions
  (organization_id, plan_id, status, current_period_start, current_period_end, trial_end, cancel_at_period_end,
   pending_plan_id, pending_plan_effective_at, provider)
select ${orgUuid("i")},
       case when i between 980001 and 990000 or i % 3 = 0 then '00000000-0000-4000-8000-00000000b402'::uuid
            else '00000000-0000-4000-8000-00000000b401'::uuid end,
       (case when i between 940001 and 970000 then 'past_due'
             when i > 990000 then 'trialing'
             else 'active' end)::public.subscription_status,
       e - interval '1 month', e,
       case when i > 990000 then e end,
       i between 970001 and 980000,
       case when i between 980001 and 990000 then '00000000-0000-4000-8000-00000000b401'::uuid end,
       case when i between 980001 and 990000 then e end,
       'payu'
from generate_series(1, ${ORGS}) i
cross join lateral (select case
  when i <= 900000 then now() + make_interval(secs => 3600 + (i % 2500000))
  when i <= 920000 then now() - interval '1 day'
  when i <= 940000 then now() - interval '8 days'
  when i <= 970000 then now() - interval '5 days'
  else now() - interval '1 hour' end as e) p;

analyze public.organizations;
analyze public.subscriptions;
`;

// The due organizations are the ids from 900,001 up (uuid order matches the zero-padded numbers).
const stateQuery = `
select g.name, string_agg(distinct s.status || ' on ' || p.code, ', ') as state, count(*) as n
from public.subscriptions s
join public.billing_plans p on p.id = s.plan_id
join (values ${groups.map((g) => `('${g.name.replace(/'/g, "''")}', ${g.from}, ${g.to})`).join(", ")}) g(name, lo, hi)
  on right(s.organization_id::text, 12)::int between g.lo and g.hi
where s.organization_id >= ${orgUuid(groups[0].from)}
group by g.name, g.lo order by g.lo`;

/** What `npm run bench` says before the section runs: what it measures and about how long it takes. */
export const about = { what: "billing-expire over 1,000,000 subscriptions", seconds: () => 150 };

export default async function bench(db) {
  const t0 = performance.now();
  await db.psql(["-c", setup]);
  const setupSeconds = (performance.now() - t0) / 1000;

  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const [{ due }] = await sql`
      select count(*)::int as due from public.subscriptions
      where (status in ('active', 'trialing', 'past_due') and current_period_end <= now())`;

    // The setup's inserts have their history already (a 'created' row each, by the trigger on
    // subscriptions): the job's rows are what it adds.
    const [{ historyBefore }] = await sql`select count(*)::int as "historyBefore" from public.subscription_history`;

    // (1) The expire job, one batch per transaction, until nothing is left.
    const batches = [];
    const start = performance.now();
    for (;;) {
      const b0 = performance.now();
      const [{ n }] = await sql`select billing.job_expire(${BATCH}) as n`;
      if (n === null) throw new Error("billing.job_expire failed: see billing.job_runs");
      batches.push({ n, ms: performance.now() - b0 });
      if (n === 0) break;
    }
    const jobSeconds = (performance.now() - start) / 1000;
    const changes = batches.reduce((a, b) => a + b.n, 0);
    const [{ history }] = await sql`select count(*)::int as history from public.subscription_history`;
    const [{ notes }] = await sql`select count(*)::int as notes from public.notifications`;
    const [{ left }] = await sql`
      select count(*)::int as left from public.subscriptions
      where (status = 'active' and current_period_end <= now())
         or (status = 'trialing' and trial_end <= now())
         or (status = 'past_due' and current_period_end <= now() - interval '3 days')
         or (pending_plan_id is not null and pending_plan_effective_at <= now())`;
    const states = await sql.unsafe(stateQuery);

    printTable(`billing-expire over ${ORGS.toLocaleString("en-US")} subscriptions (setup ${fmt(setupSeconds, 1)} s)`, [{
      "due subscriptions": due,
      "batches of 10,000": batches.length - 1,
      "transitions (rows changed)": changes,
      "history rows written": history - historyBefore,
      "notifications queued": notes,
      "total s": fmt(jobSeconds),
      "slowest batch ms": fmt(Math.max(...batches.map((b) => b.ms)), 0),
      "still due after": left,
      "target": "< 10 s",
    }]);
    printTable("states after the job", states.map((r) => ({
      group: r.name,
      subscriptions: Number(r.n),
      "state now": r.state,
      expected: groups.find((g) => g.name === r.name).expect,
    })));
  } finally {
    await sql.end();
  }
}
