// ai-chat answers first and settles after (_shared/after-response.ts): through the functions
// server, the real database and the fake Groq. The settlement is held back by a trigger that waits
// for an advisory lock this test holds, so "the response arrived before the settlement committed"
// is observed, not timed. Then: the call is settled exactly once at the fake's token counts; a
// functions server killed (kill -9) between the response and the settlement leaves the
// reservation counted and the stale job expires it once; a server stopped with SIGTERM finishes
// the settlement before it exits; the cache entry written after the response answers the next
// call; the reservation and the settlement are each one round trip to the database.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { adminSql, functionsUrl } from "./helpers.ts";
import { type AiTenant, aiTenant, groqControl } from "./ai-fixtures.ts";

type Json = Record<string, unknown>;

const sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const MODEL = "llama-3.1-8b-instant";
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Tenant = AiTenant;

const tenant = () =>
  aiTenant(sql, "t_aar", {
    ai_requests_per_minute: 1000,
    ai_prompts_per_day: 10000,
    groq_tokens_per_month: 10_000_000,
    ai_models: [MODEL],
  });

const ask = (content: string, extra: Json = {}) => ({
  model: MODEL,
  messages: [{ role: "user", content }],
  ...extra,
});

function chat(t: Tenant, body: unknown, base = functionsUrl("ai-chat")) {
  return fetch(base, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${t.token}`,
      "x-organization-id": t.org,
    },
    body: JSON.stringify(body),
    // Without the change under test the answer waits for the held settlement: fail, do not hang.
    signal: AbortSignal.timeout(15_000),
  });
}

async function used(org: string, metric: string): Promise<number> {
  const [{ n }] = await sql`select coalesce(sum(count), 0)::int as n from public.usage_quotas
    where organization_id = ${org} and metric = ${metric} and window_unit::text = case ${metric} when 'groq_tokens' then 'month' else 'day' end`;
  return n;
}

async function row(requestId: string) {
  const [r] =
    await sql`select status::text, reserved_tokens::int, prompt_tokens, completion_tokens, counted_tokens::int, error_code
    from public.ai_requests where request_id = ${requestId}`;
  return r;
}

async function pollUntil<T>(fn: () => Promise<T | undefined>, what: string, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The stale-reservation job as pg_cron runs it, under the test clock `minutes` from now. */
async function staleJobIn(minutes: number): Promise<number> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('billing.now', (now() + make_interval(mins => ${minutes}))::text, true)`;
    const [{ n }] = await tx`select billing.job_ai_release_stale_reservations() as n`;
    return n as number;
  });
}

/**
 * Hold back every settlement of the organization's calls: a trigger on ai_requests waits for an
 * advisory lock that a connection of this test holds until release() (then the trigger is gone).
 */
async function holdSettlements(org: string) {
  const key = Math.floor(Math.random() * 2 ** 31);
  const fn = `test_hold_settle_${rand()}`;
  const holder = await sql.reserve();
  await holder`select pg_advisory_lock(${key})`;
  await sql.unsafe(`create function public.${fn}() returns trigger language plpgsql set search_path = '' as $$
    begin perform pg_catalog.pg_advisory_xact_lock(${key}); return new; end; $$`);
  await sql.unsafe(`create trigger ${fn} before update on public.ai_requests for each row
    when (old.organization_id = '${org}' and new.status <> 'pending') execute function public.${fn}()`);
  let released = false;
  return {
    /** End the database sessions waiting here (a settlement sent by a process that has died since). */
    async abandonWaiting(): Promise<number> {
      const [{ n }] =
        await sql`select count(pg_catalog.pg_terminate_backend(l.pid))::int as n from pg_catalog.pg_locks l
        where l.locktype = 'advisory' and not l.granted and l.classid = 0 and l.objid = ${key} and l.objsubid = 1`;
      return n;
    },
    async release() {
      if (released) return;
      released = true;
      await holder`select pg_advisory_unlock(${key})`;
      holder.release();
      await sql.unsafe(`drop trigger if exists ${fn} on public.ai_requests`);
      await sql.unsafe(`drop function if exists public.${fn}()`);
    },
  };
}

/** The body of an answer: the completion, or for a stream the usage of its last chunk. */
async function usageOf(
  res: Response,
  stream: boolean,
): Promise<{ prompt_tokens: number; completion_tokens: number }> {
  const text = await res.text();
  if (!stream) {
    return (JSON.parse(text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
  }
  const chunks = text.split("\n\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)));
  assert(text.trimEnd().endsWith("data: [DONE]"), "the stream ended with [DONE]");
  return chunks.findLast((c) => c.usage).usage;
}

// -------------------------------------------------------------------------------------------------
// Settled after the response, exactly once

for (const stream of [false, true]) {
  Deno.test(
    `the answer arrives before the settlement commits, then it is settled once at Groq's count (stream ${stream})`,
    testOptions,
    async () => {
      await groqControl({ reset: true });
      const t = await tenant();
      const hold = await holdSettlements(t.org);
      try {
        const res = await chat(t, ask(`after the response ${stream} ${rand()}`, { stream }));
        assertEquals(res.status, 200);
        const requestId = res.headers.get("x-request-id") as string;
        const usage = await usageOf(res, stream);
        const reserved = (await row(requestId)).reserved_tokens;
        assertEquals(
          (await row(requestId)).status,
          "pending",
          "the whole answer arrived while the settlement waits",
        );
        assertEquals(
          [await used(t.org, "groq_tokens"), await used(t.org, "ai_prompts")],
          [reserved, 1],
          "counted at the reservation meanwhile",
        );
        await hold.release();
        const settled = await pollUntil(async () => {
          const r = await row(requestId);
          return r.status === "pending" ? undefined : r;
        }, "the settlement");
        const tokens = usage.prompt_tokens + usage.completion_tokens;
        assertEquals(settled, {
          status: "completed",
          reserved_tokens: reserved,
          prompt_tokens: usage.prompt_tokens,
          completion_tokens: usage.completion_tokens,
          counted_tokens: tokens,
          error_code: null,
        });
        assertEquals(
          [await used(t.org, "groq_tokens"), await used(t.org, "ai_prompts")],
          [tokens, 1],
          "Groq's count, once",
        );
        const states =
          await sql`select metric, state, amount::int from public.usage_metrics where request_id = ${requestId} order by metric`;
        assertEquals(states.map((s) => `${s.metric}:${s.state}:${s.amount}`), [
          "ai_prompts:settled:1",
          `groq_tokens:settled:${tokens}`,
        ]);
        assertEquals(await staleJobIn(16), 0, "nothing is left for the stale job");
      } finally {
        await hold.release();
      }
    },
  );
}

// -------------------------------------------------------------------------------------------------
// A functions server of this test's own: killed, or stopped, between the response and the settlement

async function ownServer(): Promise<{ url: string; child: Deno.ChildProcess }> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", new URL("../scripts/functions-server.ts", import.meta.url).pathname],
    env: { ...Deno.env.toObject(), SUPABILL_API_PORT: String(port), SUPABILL_LOG: "off" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}/functions/v1/ai-chat`;
  await pollUntil(
    async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/`);
        await res.body?.cancel();
        return true;
      } catch {
        return undefined;
      }
    },
    "the functions server",
    60_000,
  );
  return { url, child };
}

Deno.test(
  "kill -9 of the functions server after the answer, before the settlement: counted at the reservation, expired once by the stale job",
  testOptions,
  async () => {
    await groqControl({ reset: true });
    const t = await tenant();
    const { url, child } = await ownServer();
    const hold = await holdSettlements(t.org);
    try {
      const res = await chat(t, ask(`killed after the answer ${rand()}`), url);
      assertEquals(res.status, 200);
      const requestId = res.headers.get("x-request-id") as string;
      await res.text();
      const reserved = (await row(requestId)).reserved_tokens;
      child.kill("SIGKILL");
      await child.status;
      // The settlement was sent before the kill and waits in the database; a backend whose client
      // is gone would commit it all the same once the lock is free, so end it: what a crash before
      // the settlement reached the database leaves behind.
      assertEquals(
        await pollUntil(async () => (await hold.abandonWaiting()) || undefined, "the waiting settlement"),
        1,
      );
      await hold.release();
      await sleep(300);
      assertEquals((await row(requestId)).status, "pending", "the settlement died with the server");
      assertEquals(
        [await used(t.org, "groq_tokens"), await used(t.org, "ai_prompts")],
        [reserved, 1],
        "the reservation stays counted",
      );
      assertEquals(await staleJobIn(5), 0, "before 15 minutes nothing expires");
      assertEquals(await staleJobIn(16), 1, "16 minutes later the job expires it");
      assertEquals(await staleJobIn(17), 0, "once");
      assertEquals(await row(requestId), {
        status: "expired",
        reserved_tokens: reserved,
        prompt_tokens: null,
        completion_tokens: null,
        counted_tokens: reserved,
        error_code: "reservation_expired",
      });
      assertEquals(
        [await used(t.org, "groq_tokens"), await used(t.org, "ai_prompts")],
        [reserved, 1],
        "counted at the reservation, never released",
      );
    } finally {
      await hold.release();
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  },
);

Deno.test(
  "SIGTERM to the functions server after the answer: it waits for the settlement, then exits",
  testOptions,
  async () => {
    await groqControl({ reset: true });
    const t = await tenant();
    const { url, child } = await ownServer();
    const hold = await holdSettlements(t.org);
    try {
      const res = await chat(t, ask(`stopped after the answer ${rand()}`), url);
      assertEquals(res.status, 200);
      const requestId = res.headers.get("x-request-id") as string;
      const usage = await usageOf(res, false);
      child.kill("SIGTERM");
      let exited = false;
      const status = child.status.then((s) => {
        exited = true;
        return s;
      });
      await sleep(500);
      assertEquals(exited, false, "still running: its settlement is pending");
      assertEquals((await row(requestId)).status, "pending");
      await hold.release();
      assertEquals((await status).code, 0, "exits once the settlement is done");
      const r = await row(requestId);
      assertEquals([r.status, r.counted_tokens], [
        "completed",
        usage.prompt_tokens + usage.completion_tokens,
      ]);
    } finally {
      await hold.release();
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  },
);

// -------------------------------------------------------------------------------------------------
// The cache entry, written after the response, answers the next call

Deno.test("the cache entry written after the answer serves the next call", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant();
  const hold = await holdSettlements(t.org);
  const body = ask(`cached after the response ${rand()}`);
  try {
    const first = await chat(t, body);
    assertEquals([first.status, first.headers.get("x-cache")], [200, "miss"]);
    const completion = await first.json();
    const [{ n }] =
      await sql`select count(*)::int as n from billing.ai_cache where organization_id = ${t.org}`;
    assertEquals(n, 0, "not cached before the settlement commits");
    await hold.release();
    await pollUntil(async () => {
      const [{ n }] =
        await sql`select count(*)::int as n from billing.ai_cache where organization_id = ${t.org}`;
      return n === 1 ? true : undefined;
    }, "the cache entry");
    const second = await chat(t, body);
    assertEquals([second.status, second.headers.get("x-cache")], [200, "hit"]);
    assertEquals(await second.json(), completion);
  } finally {
    await hold.release();
  }
});

Deno.test(
  "asked again as soon as the answer arrives (stream, then not): the second call waits for the settlement and hits the cache",
  testOptions,
  async () => {
    await groqControl({ reset: true });
    const t = await tenant();
    for (const stream of [false, true]) {
      const body = ask(`asked again at once ${stream} ${rand()}`);
      const first = await chat(t, { ...body, stream });
      assertEquals([first.status, first.headers.get("x-cache")], [200, "miss"]);
      await first.text();
      const second = await chat(t, body);
      assertEquals(
        [second.status, second.headers.get("x-cache")],
        [200, "hit"],
        `after a ${stream ? "stream" : "completion"}`,
      );
      await second.text();
    }
    const [{ calls }] =
      await sql`select count(*)::int as calls from public.ai_requests where organization_id = ${t.org} and not cached`;
    assertEquals(calls, 2, "Groq was asked twice, once per prompt");
  },
);

// -------------------------------------------------------------------------------------------------
// Round trips to the database

/**
 * A script, in a process of its own, that points the functions' pool at a TCP proxy counting
 * round trips (each time the client speaks after the server did) and prints how many one
 * reservation and one settlement took, after a warm-up call that opens the connection.
 */
const roundTripScript = (t: Tenant) => `
  const upstream = new URL(Deno.env.get("SUPABASE_DB_URL"));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let trips = 0;
  (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: upstream.hostname, port: Number(upstream.port) });
      let last = "server";
      const pump = async (from, to, side) => {
        const buf = new Uint8Array(65536);
        for (;;) {
          const n = await from.read(buf).catch(() => null);
          if (n === null) break;
          if (side === "client" && last === "server") trips++;
          last = side;
          await to.write(buf.subarray(0, n));
        }
        try { to.close(); } catch {}
      };
      pump(client, server, "client");
      pump(server, client, "server");
    }
  })();
  const proxied = new URL(upstream);
  proxied.port = String(listener.addr.port);
  Deno.env.set("SUPABILL_DB_URL", proxied.href);
  Deno.env.set("SUPABILL_DB_POOL_SIZE", "1");
  const { reserve, settle } = await import(${
  JSON.stringify(new URL("../supabase/functions/ai-chat/gateway.ts", import.meta.url).href)
});
  const claims = { sub: "${t.owner}", role: "authenticated" };
  const chat = (i) => ({ model: "${MODEL}", messages: [{ role: "user", content: "trips " + i }], max_tokens: 16, stream: false });
  const key = (i) => (i + "${rand()}").padEnd(64, "0").replace(/[^0-9a-f]/g, "a").slice(0, 64);
  const warm = await reserve(claims, "${t.org}", chat(0), 8, key(0));
  await settle({ requestId: warm.request_id, promptTokens: 3, completionTokens: 4, latencyMs: 1, status: "completed", response: null });
  trips = 0;
  const r = await reserve(claims, "${t.org}", chat(1), 8, key(1));
  const reserveTrips = trips;
  trips = 0;
  const ok = await settle({ requestId: r.request_id, promptTokens: 3, completionTokens: 4, latencyMs: 1, status: "completed", response: { id: "x" } });
  console.log(JSON.stringify({ allowed: r.allowed, settled: ok, reserve: reserveTrips, settle: trips }));
  Deno.exit(0);
`;

Deno.test(
  "a reservation is one round trip to the database, and so is its settlement",
  testOptions,
  async () => {
    const t = await tenant();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", roundTripScript(t)],
      env: { SUPABILL_LOG: "off" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    assert(out.success, new TextDecoder().decode(out.stderr));
    assertEquals(JSON.parse(text.split("\n").pop() as string), {
      allowed: true,
      settled: true,
      reserve: 1,
      settle: 1,
    });
  },
);
