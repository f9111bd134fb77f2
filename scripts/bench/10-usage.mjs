// increment_usage against the floor (the bare single-row upsert), the ceiling for any
// implementation that records a usage row per allowed call (the upsert and that row in one plain
// statement) and a naive read-then-write implementation, 16 clients, for 1,000 organizations
// chosen at random and for one hot one. Then consume_credits (1 credit a call, every organization
// holding plenty) beside increment_usage in the same cases. (get_usage is measured in 12-plan.)
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
  // row" must at least do: the floor's upsert and that row, as one plain SQL statement.
  "bare upsert + usage row (ceiling)": `with c as (
  insert into public.usage_quotas as q (organization_id, metric, window_unit, window_start, count, updated_at)
  values (${orgUuid}, 'api_calls', 'day', date_trunc('day', now()), 1, now())
  on conflict (organization_id, metric, window_unit, window_start)
  do update set count = q.count + excluded.count, updated_at = excluded.updated_at
  returning q.count)
insert into public.usage_metrics (organization_id, metric, amount, window_units, occurred_at, used, limit_amount, resets_at)
select ${orgUuid}, 'api_calls', 1, '{day}', now(), c.count, 1000000000, date_trunc('day', now()) + interval '1 day' from c;`,
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
  seconds: () => 2 * 4 * (seconds() + 2) + 2 * (seconds() + 2) + 2 * 2 * (seconds() + 2) + 20,
};

export default async function bench(db) {
  await db.psql(["-c", setup]);
  await db.psql(["-c", "vacuum analyze", "-c", "checkpoint"]);
  const rows = [];
  for (const [caseName, pick] of Object.entries(cases)) {
    let floor;
    for (const [name, sql] of Object.entries(scripts)) {
      // A short unmeasured run first, so no variant pays for cold caches or the one before it.
      await pgbench(db, pick + sql, { clients: 16, seconds: 2 });
      const r = await pgbench(db, pick + sql, { clients: 16 });
      floor ??= r.tps;
      rows.push({
        case: caseName,
        variant: name,
        tps: fmt(r.tps, 0),
        "p50 ms": fmt(r.p50),
        "p99 ms": fmt(r.p99),
        "ratio to bare upsert": fmt(r.tps / floor),
        failed: r.failed,
      });
    }
  }
  printTable(`increment_usage, one window, 16 clients, ${seconds()} s per run (pgbench)`, rows);

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
