// The AI gateway's added latency: 50 concurrent clients call the fake Groq directly (the floor),
// then the same requests through POST /functions/v1/ai-chat (JWT check, one SQL call to
// reserve, the upstream call, one SQL call to settle), then a request the cache answers. The
// fake Groq answers after BENCH_AI_UPSTREAM_MS (default 100 ms, a fast real model), so the
// difference between the two runs is what the gateway adds. Each run is BENCH_AI_REQUESTS
// requests (default 3,000). Targets: added p50 <= 2 ms, added p99 <= 10 ms.
import path from "node:path";
import postgres from "postgres";
import { loadOrCreateKeys, userToken } from "../lib/keys.mjs";
import { startLocalStack } from "../lib/stack.mjs";
import { closedLoop, dbPoolSize, fmt, percentile, post, printTable } from "./lib.mjs";

const REQUESTS = Number(process.env.BENCH_AI_REQUESTS ?? 3000);
const CLIENTS = 50;
const UPSTREAM_MS = Number(process.env.BENCH_AI_UPSTREAM_MS ?? 100);
const MODEL = "llama-3.1-8b-instant";

/** What `npm run bench` says before the section runs: what it measures and about how long it takes. */
export const about = { what: "ai-chat's added latency over calling the fake Groq directly, and a cached answer", seconds: () => 60 };

export default async function ai(db) {
  const keys = await loadOrCreateKeys(path.join(db.dir, "keys.json"));
  const { env, providers, fakesUrl: fakes } = await startLocalStack({
    db,
    keys,
    extraEnv: { SUPABILL_DB_POOL_SIZE: String(dbPoolSize()) },
  });

  const sql = postgres(db.url, { max: 2, prepare: false, onnotice: () => {} });
  const org = "00000000-0000-4000-8000-0000000a1030";
  const user = "00000000-0000-4000-8000-0000000b1030";
  try {
    await sql`insert into public.billing_plans (id, code, name, tier, interval, price_cents, features)
      values ('00000000-0000-4000-8000-00000000b030', 'bench_ai', 'Bench AI', 'pro', 'month', 99900,
              ${JSON.stringify({
                ai_requests_per_minute: null,
                ai_prompts_per_day: null,
                groq_tokens_per_month: null,
                ai_models: [MODEL],
                max_members: 10,
              })}::text::jsonb)`;
    await sql`insert into public.organizations (id, name) values (${org}, 'Bench AI org')`;
    await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
      values (${org}, '00000000-0000-4000-8000-00000000b030', 'active', now() - interval '1 day', now() + interval '29 days')`;
    await sql`insert into auth.users (id, email, role, aud) values (${user}, 'bench-ai@test.local', 'authenticated', 'authenticated')`;
    await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${user}, 'owner')`;
  } finally {
    await sql.end();
  }
  const token = await userToken(keys, user);
  await fetch(`${fakes}/__control/groq`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ reset: true, latency_ms: UPSTREAM_MS }),
  }).then((r) => r.arrayBuffer());

  const body = (i, tag) =>
    JSON.stringify({ model: MODEL, messages: [{ role: "user", content: `Bench question ${tag} ${i}` }], max_tokens: 64 });
  const direct = (tag) => (i) =>
    post(`${fakes}/openai/v1/chat/completions`, {
      "content-type": "application/json",
      authorization: `Bearer ${providers.GROQ_API_KEY}`,
    }, body(i, tag));
  const gateway = (tag) => (i) =>
    post(`${env.SUPABASE_URL}/functions/v1/ai-chat`, {
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
      "x-organization-id": org,
    }, body(i, tag));

  // Warm up both paths (connections, JIT), then measure.
  await closedLoop(200, CLIENTS, direct("warm"));
  await closedLoop(200, CLIENTS, gateway("warm"));
  const floor = await closedLoop(REQUESTS, CLIENTS, direct("d"));
  const miss = await closedLoop(REQUESTS, CLIENTS, gateway("g"));
  // Cache hits: one request answered once, then asked REQUESTS times (the upstream is not called).
  await closedLoop(1, 1, gateway("hot"));
  const hit = await closedLoop(REQUESTS, CLIENTS, () => gateway("hot")(0));
  // The same with one client at a time: what the gateway adds to a request when the machine is
  // not saturated by 50 clients, the client, the functions server and Postgres sharing 2 cores.
  const floor1 = await closedLoop(300, 1, direct("d1"));
  const miss1 = await closedLoop(300, 1, gateway("g1"));

  const p = (r, q) => percentile(r.latencies, q);
  const row = (name, r, added, base = floor) => ({
    path: name,
    requests: r.latencies.length,
    statuses: Object.entries(r.statuses).map(([s, n]) => `${s}x${n}`).join(" "),
    "req/s": fmt(r.perSecond, 0),
    "p50 ms": fmt(p(r, 50)),
    "p99 ms": fmt(p(r, 99)),
    "added p50 ms": added ? fmt(p(r, 50) - p(base, 50)) : "-",
    "added p99 ms": added ? fmt(p(r, 99) - p(base, 99)) : "-",
  });
  printTable(`AI gateway: ${CLIENTS} concurrent clients, fake Groq answering in ${UPSTREAM_MS} ms (targets: added p50 <= 2 ms, p99 <= 10 ms)`, [
    row("fake Groq directly (floor)", floor, false),
    row("ai-chat, cache miss (reserve + Groq + settle)", miss, true),
    row("ai-chat, cache hit (one SQL call, no Groq)", hit, false),
  ]);
  printTable(`The same with 1 client (300 requests each)`, [
    row("fake Groq directly (floor)", floor1, false),
    row("ai-chat, cache miss (reserve + Groq + settle)", miss1, true, floor1),
  ]);
  const addedP50 = p(miss, 50) - p(floor, 50);
  const addedP99 = p(miss, 99) - p(floor, 99);
  console.log(`\nadded p50 ${fmt(addedP50)} ms (${addedP50 <= 2 ? "meets" : "misses"} the 2 ms target), ` +
    `added p99 ${fmt(addedP99)} ms (${addedP99 <= 10 ? "meets" : "misses"} the 10 ms target)`);
}
