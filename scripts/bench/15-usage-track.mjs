// usage-track beside increment_usage, in the same run: events per second ingested through
// POST /functions/v1/usage-track (the functions server: HTTP, the key check, JSON, one SQL call to
// billing.track_usage) in batches of 1,000 events, against single increment_usage calls per second
// (pgbench, 16 clients, the SQL alone: no HTTP at all, so the comparison favours the single calls).
// Target: usage-track at least 3 times the single calls' rate. Two cases, as in 10-usage: events of
// 1,000 organizations at random, and of one hot organization. Each event has its own request id;
// after the measured runs, some batches are sent again three times concurrently (retries), then
// the exactly-once check: every counter equals the number of distinct request ids sent to it.
import path from "node:path";
import postgres from "postgres";
import { loadOrCreateKeys } from "../lib/keys.mjs";
import { startLocalStack } from "../lib/stack.mjs";
import { closedLoop, dbPoolSize, fmt, percentile, pgbench, post, printTable, seconds } from "./lib.mjs";

const ORGS = 1000;
const BATCH = 1000;
const BATCHES = Number(process.env.BENCH_USAGE_TRACK_BATCHES ?? 40);
const CLIENTS = 4;
const RETRIED = 10;
const orgId = (i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;

/** What `npm run bench` says before the section runs: what it measures and about how long it takes. */
export const about = {
  what: "usage-track (batches of 1,000 events, through the functions server) beside single increment_usage calls",
  seconds: () => 2 * (seconds() + 2) + 60,
};

export default async function usageTrack(db) {
  const sql = postgres(db.url, { max: 2, prepare: false, onnotice: () => {} });
  try {
    await sql.unsafe(`
      insert into public.billing_plans (id, code, name, tier, price_cents, features)
      values ('00000000-0000-4000-8000-00000000b015', 'bench_track', 'Bench track', 'pro', 99900,
              '{"api_calls_per_day": 1000000000, "events_per_day": 1000000000}');
      insert into public.organizations (id, name)
      select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'bench org ' || i
      from generate_series(1, ${ORGS}) i;
      insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
      select id, '00000000-0000-4000-8000-00000000b015', 'active', now() - interval '1 day', now() + interval '29 days'
      from public.organizations where name like 'bench org %';`);
    await sql.unsafe("vacuum analyze");
  } finally {
    await sql.end();
  }
  const keys = await loadOrCreateKeys(path.join(db.dir, "keys.json"));
  const { env } = await startLocalStack({ db, keys, extraEnv: { SUPABILL_DB_POOL_SIZE: String(dbPoolSize()) } });
  const url = `${env.SUPABASE_URL}/functions/v1/usage-track`;
  const headers = { "content-type": "application/json", apikey: JSON.parse(env.SUPABASE_SECRET_KEYS).default };

  const cases = {
    "(a) 1,000 orgs at random": { pgbench: "\\set org random(1, 1000)\n", org: () => 1 + Math.floor(Math.random() * ORGS) },
    "(b) one hot org": { pgbench: "\\set org 1\n", org: () => 1 },
  };
  const single = `select * from public.increment_usage(('00000000-0000-4000-8000-' || lpad(:org::text, 12, '0'))::uuid, 'api_calls', 1, null);`;
  const rows = [];
  const sent = []; // every batch body sent, for the retries
  let problems = 0;
  for (const [caseName, c] of Object.entries(cases)) {
    await pgbench(db, c.pgbench + single, { clients: 16, seconds: 2 });
    const r = await pgbench(db, c.pgbench + single, { clients: 16 });
    const tag = caseName.slice(1, 2);
    const body = (b) =>
      JSON.stringify({
        events: Array.from({ length: BATCH }, (_, i) => ({
          organization_id: orgId(c.org()),
          metric: "events",
          quantity: 1,
          request_id: `${tag}-${b}-${i}`,
        })),
      });
    const bodies = Array.from({ length: BATCHES + 4 }, (_, b) => body(b));
    sent.push(...bodies);
    const call = (b) =>
      post(url, headers, bodies[b]).then((res) => {
        if (res.status !== 200) problems++;
        else if (JSON.parse(res.text).results.some((x) => x.allowed !== true)) problems++;
        return res;
      });
    // Warm up on 4 batches of their own, then measure.
    await closedLoop(4, CLIENTS, (i) => call(BATCHES + i));
    const t = await closedLoop(BATCHES, CLIENTS, call);
    const eventsPerSecond = t.perSecond * BATCH;
    rows.push({
      case: caseName,
      "increment_usage calls/s (pgbench, 16 clients)": fmt(r.tps, 0),
      [`usage-track events/s (${CLIENTS} clients x ${BATCH}-event batches)`]: fmt(eventsPerSecond, 0),
      "batch p50 ms": fmt(percentile(t.latencies, 50)),
      "batch p99 ms": fmt(percentile(t.latencies, 99)),
      "ratio (target 3)": fmt(eventsPerSecond / r.tps),
    });
  }
  printTable(`usage-track beside single increment_usage calls, ${seconds()} s pgbench runs, ${BATCHES} batches per case`, rows);

  // Retries: some batches of each case sent again, three copies at once.
  const retried = [...sent.slice(0, RETRIED), ...sent.slice(BATCHES + 4, BATCHES + 4 + RETRIED)];
  await Promise.all(retried.flatMap((b) => [post(url, headers, b), post(url, headers, b), post(url, headers, b)]));

  // Exactly once: each organization's counter equals the distinct request ids sent for it.
  const expected = new Map();
  const ids = new Set();
  for (const b of sent) {
    for (const e of JSON.parse(b).events) {
      if (ids.has(e.request_id)) continue;
      ids.add(e.request_id);
      expected.set(e.organization_id, (expected.get(e.organization_id) ?? 0) + 1);
    }
  }
  const check = postgres(db.url, { max: 1, prepare: false, onnotice: () => {} });
  try {
    const counts = await check`select organization_id::text as org, sum(count)::int as n from public.usage_quotas
      where metric = 'events' and window_unit = 'day' group by organization_id`;
    const [{ n: rowsCounted }] = await check`select count(*)::int as n from public.usage_metrics where metric = 'events'`;
    let wrong = 0;
    for (const { org, n } of counts) if (expected.get(org) !== n) wrong++;
    if (counts.length !== expected.size) wrong++;
    console.log(`\nexactly once: ${ids.size} distinct request ids sent (${retried.length} batches sent three more times), ` +
      `${rowsCounted} usage rows, ${wrong} organizations whose counter differs from their distinct request ids` +
      `${problems ? `, ${problems} batches not answered 200 with every event allowed` : ""}`);
    if (wrong || rowsCounted !== ids.size || problems) throw new Error("usage-track counted an event other than once");
  } finally {
    await check.end();
  }
}
