// The plan in effect at 1,000,000 subscriptions spread over every state the rules know (trial,
// trial over, active, past_due in its period, grace, grace over, cancel at period end, a due
// downgrade, canceled, expired, no subscription). pgbench, 16 clients, a random organization per
// call, as postgres, prepared statements (as PostgREST sends them), a 2 s warm-up then the run:
// the floor (the same join as one plain SQL statement, no rules, no caller check) beside
// billing.effective_plan, effective_tier and get_entitlements; get_usage beside get_entitlements;
// and, in the same run, the previous plpgsql implementation (two queries and variables, taken from
// the pgTAP file that pins the rules to it) behind effective_tier and get_entitlements, as an A/B.
// Targets: get_entitlements >= 0.6 and effective_tier >= 0.7 of the floor, get_usage >= 0.7 of
// get_entitlements. After the load: every answer for a sample of organizations in every state
// equals the previous implementation's (the section fails otherwise), and EXPLAIN (ANALYZE,
// BUFFERS) of the lookup, to show where the time goes.
import fs from "node:fs";
import path from "node:path";
import postgres from "postgres";
import { root } from "../lib/run.mjs";
import { fmt, pgbench, printTable, seconds } from "./lib.mjs";

const ORGS = 1_000_000;
const orgUuid = (expr) => `('00000000-0000-4000-8000-' || lpad((${expr})::text, 12, '0'))::uuid`;

// States by b = i % 20, so a random organization lands in each with its share: 0-9 active inside
// the period, 10 trialing, 11 trial ended 1 hour ago, 12 past_due inside the period, 13 active
// ended 1 day ago (grace), 14 past_due ended 5 days ago (grace over), 15 cancel at period end,
// ended 1 hour ago, 16 a downgrade pro -> basic due 1 hour ago, 17 canceled, 18 expired, 19 no
// subscription.
const setup = `
-- pg_cron must not run the jobs behind the benchmark's back.
update cron.job set active = false where jobname like 'billing-%';

insert into public.billing_plans (id, code, name, tier, interval, price_cents, trial_days, features) values
  ('00000000-0000-4000-8000-00000000b121', 'bench_basic', 'Bench Basic', 'basic', 'month', 49900, 7,
   '{"api_calls_per_day": 1000, "ai_prompts_per_minute": 10, "ai_prompts_per_day": 100,
     "groq_tokens_per_month": 1000000, "ai_requests_per_minute": 10, "max_watchlists": 10}'),
  ('00000000-0000-4000-8000-00000000b122', 'bench_pro', 'Bench Pro', 'pro', 'month', 99900, 7,
   '{"api_calls_per_day": 100000, "ai_prompts_per_minute": 30, "ai_prompts_per_day": 500,
     "groq_tokens_per_month": 10000000, "ai_requests_per_minute": 10, "max_watchlists": 50, "max_members": 20,
     "api_access": true, "support_level": "priority", "premium_tools": ["screener", "backtester", "alerts"]}');

insert into public.organizations (id, name)
select ${orgUuid("i")}, 'bench org ' || i from generate_series(1, ${ORGS}) i;

insert into public.subscriptions
  (organization_id, plan_id, status, current_period_start, current_period_end, trial_end, cancel_at_period_end,
   canceled_at, pending_plan_id, pending_plan_effective_at)
select ${orgUuid("i")},
       case when b = 16 or i % 3 = 0 then '00000000-0000-4000-8000-00000000b122'::uuid
            else '00000000-0000-4000-8000-00000000b121'::uuid end,
       (case when b in (10, 11) then 'trialing' when b in (12, 14) then 'past_due' when b = 17 then 'canceled'
             when b = 18 then 'expired' else 'active' end)::public.subscription_status,
       e - interval '1 month', e,
       case when b in (10, 11) then e end,
       b = 15,
       case when b in (15, 17) then e - interval '10 days' end,
       case when b = 16 then '00000000-0000-4000-8000-00000000b121'::uuid end,
       case when b = 16 then e end
from generate_series(1, ${ORGS}) i
cross join lateral (select i % 20 as b) g
cross join lateral (select case
  when b in (11, 15, 16) then now() - interval '1 hour'
  when b = 13 then now() - interval '1 day'
  when b in (14, 17, 18) then now() - interval '5 days'
  else now() + make_interval(secs => 3600 + (i % 2500000)) end as e) p
where b <> 19;

analyze public.organizations;
analyze public.subscriptions;
analyze public.billing_plans;
`;

/**
 * The previous implementation, for the A/B and the check: billing.effective_plan as it was in
 * plpgsql, read from the pgTAP file that keeps it as the reference (one copy), and the public
 * functions over it as they were.
 */
function previousImplementation() {
  const test = fs.readFileSync(
    path.join(root, "supabase", "tests", "database", "02-plans-effective-plan-rules.test.sql"),
    "utf8",
  );
  const body = /create function pg_temp\.old_effective_plan\([\s\S]*?\n\$\$;\n/.exec(test)?.[0];
  if (!body) throw new Error("the reference pg_temp.old_effective_plan is missing from 02-plans-effective-plan-rules.test.sql");
  return `
create schema bench;
${body.replace("pg_temp.old_effective_plan", "bench.old_effective_plan")}
create function bench.old_effective_tier(p_organization_id uuid) returns text
language plpgsql stable set search_path = '' as $$
declare
  e record;
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  e := bench.old_effective_plan(p_organization_id, billing.now());
  return coalesce(e.tier, 'free');
end;
$$;
create function bench.old_get_entitlements(p_organization_id uuid) returns jsonb
language plpgsql stable set search_path = '' as $$
declare
  e record;
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  e := bench.old_effective_plan(p_organization_id, billing.now());
  return pg_catalog.jsonb_build_object(
    'organization_id', e.organization_id, 'plan_code', e.plan_code, 'tier', coalesce(e.tier, 'free'),
    'status', coalesce(e.subscription_status::text, 'free'), 'reason', e.reason, 'in_grace', e.in_grace,
    'current_period_end', e.current_period_end, 'grace_ends_at', e.grace_ends_at,
    'features', coalesce(e.features, '{}'::jsonb), 'credits', billing.available_credits(p_organization_id));
end;
$$;
`;
}

const org = orgUuid(":org");
const floorSql = `select coalesce(p.tier, f.tier)
from public.organizations o
left join public.subscriptions s on s.organization_id = o.id and s.status in ('trialing', 'active', 'past_due')
left join public.billing_plans p on p.id = s.plan_id
left join public.billing_plans f on f.tier = 'free' and f.active
where o.id = ${org};`;

// [name, sql, the measure it is compared with, target ratio]
const measures = [
  ["plain lookup (floor)", floorSql, null, null],
  ["billing.effective_plan(org, now())", `select plan_code from billing.effective_plan(${org}, now());`, "plain lookup (floor)", null],
  ["public.effective_tier(org)", `select public.effective_tier(${org});`, "plain lookup (floor)", 0.7],
  ["previous effective_tier (plpgsql rules)", `select bench.old_effective_tier(${org});`, "plain lookup (floor)", null],
  ["public.get_entitlements(org)", `select public.get_entitlements(${org});`, "plain lookup (floor)", 0.6],
  ["previous get_entitlements (plpgsql rules)", `select bench.old_get_entitlements(${org});`, "plain lookup (floor)", null],
  ["public.get_usage(org)", `select * from public.get_usage(${org});`, "public.get_entitlements(org)", 0.7],
];

/** What `npm run bench` says before the section runs: what it measures and about how long it takes. */
export const about = {
  what: "the plan in effect at 1,000,000 subscriptions: effective_tier, get_entitlements, get_usage beside the plain lookup",
  seconds: () => 150 + measures.length * (seconds() + 4),
};

export default async function bench(db) {
  const t0 = performance.now();
  await db.psql(["-c", setup]);
  await db.psql(["-c", previousImplementation()]);
  await db.psql(["-c", "vacuum analyze", "-c", "checkpoint"]);
  const setupSeconds = (performance.now() - t0) / 1000;

  const pick = `\\set org random(1, ${ORGS})\n`;
  const results = {};
  const rows = [];
  for (const [name, sql, floorName, target] of measures) {
    await pgbench(db, pick + sql + "\n", { clients: 16, seconds: 2, mode: "prepared" });
    const r = await pgbench(db, pick + sql + "\n", { clients: 16, mode: "prepared" });
    results[name] = r;
    const floor = floorName ? results[floorName] : null;
    rows.push({
      measure: name,
      "beside": floorName ?? "",
      "floor calls/s": floor ? fmt(floor.tps, 0) : "",
      "ours calls/s": fmt(r.tps, 0),
      ratio: floor ? fmt(r.tps / floor.tps) : "1.00",
      target: target ? `>= ${target}` : "",
      "p50 ms": fmt(r.p50),
      "p99 ms": fmt(r.p99),
      failed: r.failed,
    });
  }
  const load = fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  printTable(
    `the plan in effect at ${ORGS.toLocaleString("en-US")} subscriptions (setup ${fmt(setupSeconds, 1)} s), random org, 16 clients, ` +
      `${seconds()} s each (pgbench, prepared statements, as postgres); load average after: ${load}`,
    rows,
  );

  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    // Where the time goes: the lookup effective_tier runs (the rules inlined), for one
    // organization in a grace with a due downgrade, and the previous implementation's call.
    const explain = async (query) =>
      (await sql.unsafe(`explain (analyze, buffers, timing) ${query}`)).map((r) => r["QUERY PLAN"]).join("\n");
    const graceOrg = `('00000000-0000-4000-8000-' || lpad('16', 12, '0'))::uuid`;
    console.log("\nEXPLAIN (ANALYZE, BUFFERS): the rules inlined (what effective_tier, get_entitlements and get_usage run)\n");
    console.log(await explain(`select coalesce(e.tier, 'free') from billing.effective_plan_rows(${graceOrg}, now()) e`));
    console.log("\nEXPLAIN (ANALYZE, BUFFERS): the floor\n");
    console.log(await explain(floorSql.replace(org, graceOrg).replace(/;$/, "")));

    // Correctness after the load: a sample of 200 organizations per state, every answer of ours
    // against the previous implementation's.
    const [{ sample, mismatches, reasons }] = await sql.unsafe(`
      with sample as (
        select ${orgUuid("b + 20 * k")} as id
        from generate_series(1, 20) b cross join generate_series(1000, 1199) k
      ),
      answers as (
        select s.id, r.reason,
               to_jsonb(e) is distinct from to_jsonb(r)
               or (select to_jsonb(n) from billing.effective_plan_rows(s.id, billing.now()) n) is distinct from to_jsonb(r)
               or public.effective_tier(s.id) is distinct from coalesce(r.tier, 'free')
               or public.get_entitlements(s.id) is distinct from bench.old_get_entitlements(s.id) as wrong
        from sample s
        cross join lateral bench.old_effective_plan(s.id, billing.now()) r
        cross join lateral billing.effective_plan(s.id, billing.now()) e
      )
      select count(*)::int as sample, count(*) filter (where wrong)::int as mismatches,
             string_agg(distinct reason, ', ' order by reason) as reasons
      from answers`);
    console.log(`\ncheck: ${sample} organizations (200 per state), reasons ${reasons}: ${mismatches} answers differ from the previous implementation`);
    if (sample !== 4000 || mismatches !== 0 || reasons !== "active, canceled, expired, free, grace, past_due, trial") {
      throw new Error(`the plan in effect is wrong after the load: ${mismatches} of ${sample} differ (reasons ${reasons})`);
    }
  } finally {
    await sql.end();
  }
}
