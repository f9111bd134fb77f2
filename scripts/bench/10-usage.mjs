// increment_usage against the floor (the bare single-row upsert), the ceiling for any
// implementation that records a usage row per allowed call (the upsert and an append to
// usage_metrics, a table with only the idempotency index, in one plain statement) and a naive
// read-then-write implementation, 16 clients, for 1,000 organizations chosen at random and for
// one hot one. Targets: ours at least 0.8 of the ceiling, p99 at most 1.5 times the ceiling's.
// Then increment_usage on an empty usage_metrics beside the same with 20,000,000 existing rows
// (one INSERT ... SELECT into the partitions): target 0.9; the counters are checked after it.
// Then consume_credits (1 credit a call, every organization holding plenty) beside
// increment_usage in the same cases. (get_usage is measured in 12-plan.)
import { fmt, pgbench, printTable, seconds } from "./lib.mjs";

const ORGS = 1000;
const orgUuid = `('00000000-0000-4000-8000-' || lpad(:org::text, 12, '0'))::uuid`;

const setup = `
insert into public.billing_plans (id, code, name, tier, price_cents, features)
values ('00000000-0000-4000-8000-00000000b001', 'bench_pro', 'Bench Pro', 'pro', 99900,
        '{"api_calls_per_day": 1000000000}');
insert into public.organizations (id, name)
select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'bench org ' || i
from generate_series(1, ${ORGS}) i;
insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
select id, '00000000-0000-4000-8000-00000000b001', 'active', now() - interval '1 day', now() + interval '29 days'
from public.organizations where name like 'bench org %';
insert into public.credit_events (code, name, credits_per_unit) values ('bench_call', 'Bench call', 1);
select billing.operator_grant_credits(id, 1000000000000, null, 'bench credits')
from public.organizations where name like 'bench org %';

create schema bench;
-- The naive shape many projects start from: read the plan, read the counter, compare, then
-- upsert, as separate statements (a race lets concurrent calls pass the limit).
create function bench.naive_increment_usage(p_organization_id uuid, p_metric text, p_amount integer default 1)
returns boolean language plpgsql as $$
declare
  v_features jsonb;
  v_limit bigint;
  v_used bigint;
  v_start timestamptz := date_trunc('day', now());
begin
  select p.features into v_features
  from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
  where s.organization_id = p_organization_id and s.status = 'active'
  limit 1;
  if v_features is null then
    select p.features into v_features from public.billing_plans p where p.tier = 'free' and p.active;
  end if;
  v_limit := (v_features ->> (p_metric || '_per_day'))::bigint;
  select q.count into v_used from public.usage_quotas q
  where q.organization_id = p_organization_id and q.metric = p_metric and q.window_unit = 'day'
    and q.window_start = v_start;
  if coalesce(v_used, 0) + p_amount > v_limit then
    return false;
  end if;
  insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count)
  values (p_organization_id, p_metric, 'day', v_start, p_amount)
  on conflict (organization_id, metric, window_unit, window_start)
  do update set count = q.count + excluded.count, updated_at = now();
  return true;
end $$;
`;

const scripts = {
  "bare upsert (floor)": `insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
values (${orgUuid}, 'api_calls', 'day', date_trunc('day', now()), 1, now())
on conflict (organization_id, metric, window_unit, window_start)
do update set count = q.count + excluded.count, updated_at = excluded.updated_at;`,
  // What any increment_usage that keeps its promise "each allowed call records a usage_metrics
  // row" must at least do: the floor's upsert and an append of that row to usage_metrics (monthly
  // partitions, one index: the idempotency key), as one plain SQL statement.
  "bare upsert + usage row (ceiling)": `with c as (
  insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
  values (${orgUuid}, 'api_calls', 'day', date_trunc('day', now()), 1, now())
  on conflict (organization_id, metric, window_unit, window_start)
  do update set count = q.count + excluded.count, updated_at = excluded.updated_at
  returning q.count)
insert into public.usage_metrics (organization_id, metric, amount, window_units, occurred_at, used, limit_amount, resets_at,
  claimed_month)
select ${orgUuid}, 'api_calls', 1, '{day}', now(), c.count, 1000000000, date_trunc('day', now()) + interval '1 day',
  date_trunc('month', now(), 'UTC') from c;`,
  "naive increment_usage": `select bench.naive_increment_usage(${orgUuid}, 'api_calls', 1);`,
  "increment_usage (ours)": `select * from public.increment_usage(${orgUuid}, 'api_calls', 1, null);`,
};

const cases = {
  "(a) 1,000 orgs at random": "\\set org random(1, 1000)\n",
  "(b) one hot org": "\\set org 1\n",
};

/** What `npm run bench` says before the section runs: what it measures and about how long it takes. */
export const about = {
  what: "increment_usage against a bare upsert, its ceiling and a naive version; consume_credits beside increment_usage, 16 clients",
  // Making the 20,000,000 usage rows took 1,541 s on the loaded 2-core machine.
  seconds: () => 2 * 4 * (seconds() + 2) + 2 * (seconds() + 2) + 2 * (seconds() + 2) + 2 * 2 * (seconds() + 2) + 1500,
};

/** One measured pgbench run after a short unmeasured one (no variant pays for cold caches or the one before it). */
async function measure(db, script) {
  await pgbench(db, script, { clients: 16, seconds: 2 });
  return pgbench(db, script, { clients: 16 });
}

/** The counters of api_calls equal the usage rows of api_calls, per organization (each allowed call counted once and recorded once). */
async function countersMatchRows(db, since) {
  const { stdout } = await db.psql(["-At", "-c", `
    select count(*) from (
      select organization_id, sum(count) as n from public.usage_quotas
      where metric = 'api_calls' and window_unit = 'day' and updated_at >= '${since}' group by organization_id) q
    full join (
      select organization_id, count(*) as n from public.usage_metrics
      where metric = 'api_calls' and request_id is null and created_at >= '${since}' group by organization_id) m
      using (organization_id)
    where q.n is distinct from m.n`]);
  return Number(stdout.trim());
}

export default async function bench(db) {
  await db.psql(["-c", setup]);
  // This month's and the coming months' partitions, so rows do not land in the default one.
  await db.psql(["-c", "select billing.maintain_partitions()"]);
  await db.psql(["-c", "vacuum analyze", "-c", "checkpoint"]);
  const rows = [];
  for (const [caseName, pick] of Object.entries(cases)) {
    const r = {};
    for (const [name, sql] of Object.entries(scripts)) r[name] = await measure(db, pick + sql);
    const floor = r["bare upsert (floor)"];
    const ceiling = r["bare upsert + usage row (ceiling)"];
    for (const [name, m] of Object.entries(r)) {
      const ours = name === "increment_usage (ours)";
      rows.push({
        case: caseName,
        variant: name,
        tps: fmt(m.tps, 0),
        "p50 ms": fmt(m.p50),
        "p99 ms": fmt(m.p99),
        "/ floor": fmt(m.tps / floor.tps),
        "/ ceiling (target >= 0.8)": ours ? fmt(m.tps / ceiling.tps) : "",
        "p99 / ceiling p99 (target <= 1.5)": ours ? fmt(m.p99 / ceiling.p99) : "",
        failed: m.failed,
      });
    }
  }
  printTable(`increment_usage, one window, 16 clients, ${seconds()} s per run (pgbench)`, rows);

  // Existing usage rows: increment_usage on an empty usage_metrics, then with 20,000,000 rows
  // (request ids, spread over the 1,000 organizations, in this month's partition, where ours
  // appends), generated by one INSERT ... SELECT in key order.
  const ours = `select * from public.increment_usage(${orgUuid}, 'api_calls', 1, null);`;
  const pick = cases["(a) 1,000 orgs at random"];
  const existing = Number(process.env.BENCH_USAGE_ROWS ?? 20_000_000);
  await db.psql(["-c", "truncate public.usage_metrics, public.usage_quotas", "-c", "vacuum analyze public.usage_metrics"]);
  const { stdout: since } = await db.psql(["-At", "-c", "select now()"]);
  const empty = await measure(db, pick + ours);
  const started = Date.now();
  await db.psql(["-c", `
    insert into public.usage_metrics (organization_id, metric, amount, request_id, window_units, occurred_at, used,
      limit_amount, resets_at, claimed_month)
    select ('00000000-0000-4000-8000-' || lpad((1 + o)::text, 12, '0'))::uuid, 'api_calls', 1,
           'gen-' || lpad(r::text, 9, '0'), '{day}', now(), r, 1000000000, now(), date_trunc('month', now(), 'UTC')
    from generate_series(0, ${ORGS - 1}) o, generate_series(1, ${existing} / ${ORGS}) r`,
    "-c", "vacuum analyze public.usage_metrics", "-c", "checkpoint"]);
  const generated = (Date.now() - started) / 1000;
  const full = await measure(db, pick + ours);
  printTable(`increment_usage with existing usage rows, 1,000 orgs at random, 16 clients, ${seconds()} s per run`, [
    { "usage rows": "0 (floor)", tps: fmt(empty.tps, 0), "p50 ms": fmt(empty.p50), "p99 ms": fmt(empty.p99), ratio: "1.00", target: "" },
    {
      "usage rows": `${existing.toLocaleString("en-US")} (made in ${fmt(generated, 0)} s)`,
      tps: fmt(full.tps, 0),
      "p50 ms": fmt(full.p50),
      "p99 ms": fmt(full.p99),
      ratio: fmt(full.tps / empty.tps),
      target: ">= 0.9",
    },
  ]);
  // Each allowed call counted once and recorded once (the generated rows have request ids).
  const off = await countersMatchRows(db, since.trim());
  if (off !== 0) throw new Error(`${off} organizations whose api_calls counter differs from their usage rows`);
  await db.psql(["-c", "truncate public.usage_metrics", "-c", "vacuum analyze public.usage_metrics"]);

  // consume_credits beside increment_usage, measured again here, one after the other in each case.
  const credits = {
    "increment_usage (baseline)": `select * from public.increment_usage(${orgUuid}, 'api_calls', 1, null);`,
    consume_credits: `select * from public.consume_credits(${orgUuid}, 'bench_call', 1, null);`,
  };
  const creditRows = [];
  for (const [caseName, pick] of Object.entries(cases)) {
    let baseline;
    for (const [name, sql] of Object.entries(credits)) {
      await pgbench(db, pick + sql, { clients: 16, seconds: 2 });
      const r = await pgbench(db, pick + sql, { clients: 16 });
      baseline ??= r.tps;
      creditRows.push({
        case: caseName,
        variant: name,
        tps: fmt(r.tps, 0),
        "p50 ms": fmt(r.p50),
        "p99 ms": fmt(r.p99),
        "ratio to increment_usage": fmt(r.tps / baseline),
        failed: r.failed,
      });
    }
  }
  printTable(`consume_credits beside increment_usage, 16 clients, ${seconds()} s per run (pgbench)`, creditRows);
  // The books still balance after the load.
  const { stdout } = await db.psql(["-At", "-c", "select count(*) from billing.credit_ledger_problems()"]);
  if (stdout.trim() !== "0") throw new Error(`credit_ledger_problems() found ${stdout.trim()} problems after the credits benchmark`);
}
