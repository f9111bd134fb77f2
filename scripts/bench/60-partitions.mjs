// Monthly partitions at size. (1) Retention: a month of 5,000,000 rows goes, in a table kept in
// monthly partitions (billing.maintain_partitions: detach and drop, the way billing-partitions
// runs it) beside the DELETE of the same month from an unpartitioned copy with the same indexes
// (the way a purge job deletes). The DELETE runs under a statement timeout (DELETE_CAP_S); when it
// hits it, its time is printed as "> cap" and its rows stay. (2) The expiry job as tables grow:
// billing-expire's time per due subscription with 3,000,000 subscriptions beside 1,000,000 (the
// floor), the same 100,000 due ones (40-lifecycle's setup; the 2,000,000 more are not due), each
// on a cluster of its own. Target: within 1.2x of the floor.
// Correctness after the load (exit 1 when wrong): the rows left are the rows expected (the other
// month's, all of them; none of the dropped month's), and no subscription is left due.
import postgres from "postgres";
import { tempCluster } from "../lib/pg.mjs";
import { setup as lifecycleSetup, ORGS as LIFECYCLE_ORGS } from "./40-lifecycle.mjs";
import { fmt, printTable } from "./lib.mjs";

const MONTH_ROWS = 5_000_000;
const OTHER_ROWS = 500_000;
const DELETE_CAP_S = Number(process.env.BENCH_DELETE_CAP_S ?? 300);
const BIG_ORGS = 3_000_000;
const BATCH = 10_000;

export const about = {
  what: "a month of 5,000,000 rows: partition drop beside DELETE; billing-expire at 3,000,000 subscriptions beside 1,000,000",
  seconds: () => 900,
};

const orgUuid = (expr) => `('00000000-0000-4000-8000-' || lpad((${expr})::text, 12, '0'))::uuid`;

// A table shaped like the log tables that grow with traffic (an id, a time, an organization, a
// small payload), opted in like a module does, and its unpartitioned copy with the same indexes.
// January 2026 is the month that goes: with notification_retention_days (90) as its retention,
// at 2026-05-10 January (ended 02-01, + 90 days = 05-02) is past it and February (05-30) is not.
const tableSetup = `
update cron.job set active = false;
create table billing.bench_events (
  id bigint generated always as identity,
  at timestamptz not null,
  organization_id uuid not null,
  payload jsonb not null,
  primary key (id, at)
) partition by range (at);
create table billing_partitions.bench_events_default partition of billing.bench_events default;
create index bench_events_org_idx on billing.bench_events (organization_id, at);
insert into billing.partitioned_tables (table_name, partition_column, retention_setting, months_ahead)
values ('billing.bench_events', 'at', 'notification_retention_days', 3);
select billing.maintain_partitions('2026-01-15 00:00+00');

insert into billing.bench_events (at, organization_id, payload)
select timestamptz '2026-01-01 00:00+00' + (i % 2678400) * interval '1 second', ${orgUuid("i % 10000")},
       jsonb_build_object('n', i, 'kind', 'call')
from generate_series(1, ${MONTH_ROWS}) i;
insert into billing.bench_events (at, organization_id, payload)
select timestamptz '2026-02-01 00:00+00' + (i % 2419200) * interval '1 second', ${orgUuid("i % 10000")},
       jsonb_build_object('n', i, 'kind', 'call')
from generate_series(1, ${OTHER_ROWS}) i;

create table billing.bench_events_flat (
  id bigint not null,
  at timestamptz not null,
  organization_id uuid not null,
  payload jsonb not null,
  primary key (id, at)
);
insert into billing.bench_events_flat select * from billing.bench_events;
create index bench_events_flat_org_idx on billing.bench_events_flat (organization_id, at);
create index bench_events_flat_at_idx on billing.bench_events_flat (at);
analyze billing.bench_events;
analyze billing.bench_events_flat;
checkpoint;
`;

async function retention(db) {
  const t0 = performance.now();
  await db.psql(["-c", tableSetup]);
  const setupSeconds = (performance.now() - t0) / 1000;
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const [{ january }] = await sql`
      select count(*)::int as january from billing.bench_events where at < '2026-02-01'`;

    // The coming months' partitions first (2026-05-01: January is not yet past its retention),
    // so that the run measured is the drop alone.
    await sql`select billing.maintain_partitions('2026-05-01 00:00+00')`;
    // Ours: the maintenance run that drops January.
    const d0 = performance.now();
    const [{ changed }] = await sql`select billing.maintain_partitions('2026-05-10 00:00+00') as changed`;
    const dropMs = performance.now() - d0;

    // The floor it replaces: DELETE of the same month, under the cap.
    let deleteMs = NaN;
    let capped = false;
    let deleted = 0;
    try {
      await sql.begin(async (tx) => {
        await tx.unsafe(`set local statement_timeout = '${DELETE_CAP_S}s'`);
        const e0 = performance.now();
        const r = await tx`delete from billing.bench_events_flat where at >= '2026-01-01' and at < '2026-02-01'`;
        deleteMs = performance.now() - e0;
        deleted = r.count;
      });
    } catch (e) {
      if (!/statement timeout/.test(String(e?.message))) throw e;
      capped = true;
    }

    const [left] = await sql`
      select (select count(*)::int from billing.bench_events) as partitioned,
             (select count(*)::int from billing.bench_events where at < '2026-02-01') as partitioned_january,
             (select count(*)::int from billing.bench_events_flat) as flat,
             (select count(*)::int from pg_class where relname = 'bench_events_p202601') as january_partition`;
    printTable(`a month of ${MONTH_ROWS.toLocaleString("en-US")} rows goes (beside ${OTHER_ROWS.toLocaleString("en-US")} of the next month; setup ${fmt(setupSeconds, 0)} s)`, [
      { way: "DELETE from an unpartitioned copy (floor)", "rows gone": capped ? 0 : deleted, ms: capped ? `> ${DELETE_CAP_S * 1000} (capped, rolled back)` : fmt(deleteMs, 0), ratio: "1.00", target: "" },
      { way: "billing.maintain_partitions: detach + drop (ours)", "rows gone": january, ms: fmt(dropMs, 0), ratio: capped ? `< ${fmt(dropMs / (DELETE_CAP_S * 1000), 4)}` : fmt(dropMs / deleteMs, 4), target: "a whole month, no DELETE" },
    ]);
    console.log(`(the maintenance run measured changed ${changed} partition(s): January dropped)`);

    const problems = [];
    if (left.partitioned !== OTHER_ROWS) problems.push(`partitioned table has ${left.partitioned} rows, expected ${OTHER_ROWS}`);
    if (left.partitioned_january !== 0) problems.push(`${left.partitioned_january} January rows left in the partitioned table`);
    if (left.january_partition !== 0) problems.push("January's partition still exists");
    if (january !== MONTH_ROWS) problems.push(`January held ${january} rows, expected ${MONTH_ROWS}`);
    if (changed !== 1) problems.push(`the measured maintenance run changed ${changed} partitions, expected 1 (January dropped)`);
    const flatExpected = capped ? MONTH_ROWS + OTHER_ROWS : OTHER_ROWS;
    if (left.flat !== flatExpected) problems.push(`unpartitioned copy has ${left.flat} rows, expected ${flatExpected}`);
    return problems;
  } finally {
    await sql.end();
  }
}

/** billing-expire until nothing is due, one batch of 10,000 per transaction (as 40-lifecycle). */
async function expire(db, extraOrgs) {
  const t0 = performance.now();
  await db.psql(["-c", lifecycleSetup]);
  if (extraOrgs > 0) {
    // More subscriptions, none of them due: ends spread over the coming month, like the not-due
    // ones of the setup.
    await db.psql(["-c", `
insert into public.organizations (id, name)
select ${orgUuid("i")}, 'bench org ' || i from generate_series(${LIFECYCLE_ORGS + 1}, ${LIFECYCLE_ORGS + extraOrgs}) i;
insert into public.subscriptions
  (organization_id, plan_id, status, current_period_start, current_period_end, provider)
select ${orgUuid("i")},
       case when i % 3 = 0 then '00000000-0000-4000-8000-00000000b402'::uuid else '00000000-0000-4000-8000-00000000b401'::uuid end,
       'active', e - interval '1 month', e, 'payu'
from generate_series(${LIFECYCLE_ORGS + 1}, ${LIFECYCLE_ORGS + extraOrgs}) i
cross join lateral (select now() + make_interval(secs => 3600 + (i % 2500000)) as e) p;
analyze public.organizations;
analyze public.subscriptions;
checkpoint;`]);
  }
  const setupSeconds = (performance.now() - t0) / 1000;
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const [{ subs, due }] = await sql`
      select count(*)::int as subs,
             (count(*) filter (where status in ('active', 'trialing', 'past_due') and current_period_end <= now()))::int as due
      from public.subscriptions`;
    const start = performance.now();
    let changes = 0;
    for (;;) {
      const [{ n }] = await sql`select billing.job_expire(${BATCH}) as n`;
      if (n === null) throw new Error("billing.job_expire failed: see billing.job_runs");
      changes += n;
      if (n === 0) break;
    }
    const ms = performance.now() - start;
    const [{ left }] = await sql`
      select count(*)::int as left from public.subscriptions
      where (status = 'active' and current_period_end <= now())
         or (status = 'trialing' and trial_end <= now())
         or (status = 'past_due' and current_period_end <= now() - interval '3 days')
         or (pending_plan_id is not null and pending_plan_effective_at <= now())`;
    return { subs, due, changes, ms, left, setupSeconds };
  } finally {
    await sql.end();
  }
}

export default async function bench(db) {
  const problems = await retention(db);

  const small = await expire(db, 0);
  const big = await (async () => {
    const other = await tempCluster("bench3m");
    try {
      await other.init();
      await other.start();
      await other.prepare();
      return await expire(other, BIG_ORGS - LIFECYCLE_ORGS);
    } finally {
      await other.remove();
    }
  })();
  const perDue = (r) => (r.ms * 1000) / r.due;
  printTable("billing-expire, time per due subscription (100,000 due; batches of 10,000)", [
    { subscriptions: small.subs, due: small.due, transitions: small.changes, "job s": fmt(small.ms / 1000), "us per due": fmt(perDue(small), 1), ratio: "1.00 (floor)", target: "", "setup s": fmt(small.setupSeconds, 0) },
    { subscriptions: big.subs, due: big.due, transitions: big.changes, "job s": fmt(big.ms / 1000), "us per due": fmt(perDue(big), 1), ratio: fmt(perDue(big) / perDue(small)), target: "<= 1.20", "setup s": fmt(big.setupSeconds, 0) },
  ]);
  for (const r of [small, big]) {
    if (r.left !== 0) problems.push(`${r.left} subscriptions still due after the job at ${r.subs} subscriptions`);
  }
  if (small.due !== big.due || small.changes !== big.changes) {
    problems.push(`the two sizes did different work: ${small.due}/${small.changes} due/transitions beside ${big.due}/${big.changes}`);
  }
  if (problems.length) {
    console.error(`WRONG:\n  ${problems.join("\n  ")}`);
    process.exitCode = 1;
  } else {
    console.log("\ncorrect: the rows left are the rows expected, and no subscription is left due");
  }
}
