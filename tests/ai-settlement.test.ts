// An AI call that reached the model is always paid for: through the local functions server, the
// real database and the fake Groq. A function that dies while Groq answers leaves its reservation
// counted, and the stale job expires it counted; a settlement the database refuses never leads
// to a release; a completion with U+0000 settles and is cached; a signed Razorpay webhook with
// U+0000 is recorded; the prompt estimate bounds Groq's count, so concurrent requests whose
// prompts tokenize worse than 4 bytes a token never spend past the plan's groq_tokens limit.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHmac } from "node:crypto";
import Razorpay from "npm:razorpay@2.9.8";
import { adminSql, afterResponses, env, functionsUrl } from "./helpers.ts";
import { type AiTenant, aiTenant, groqControl } from "./ai-fixtures.ts";

type Json = Record<string, unknown>;

const sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const MODEL = "llama-3.1-8b-instant";
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

type Tenant = AiTenant;

const tenant = (features: Json = {}) =>
  aiTenant(sql, "t_ais", {
    ai_requests_per_minute: 1000,
    ai_prompts_per_day: 10000,
    groq_tokens_per_month: 10_000_000,
    ai_models: [MODEL],
    ...features,
  });

const ask = (content: string, extra: Json = {}) => ({ model: MODEL, messages: [{ role: "user", content }], ...extra });

function chat(t: Tenant, body: unknown) {
  return fetch(functionsUrl("ai-chat"), {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${t.token}`, "x-organization-id": t.org },
    body: JSON.stringify(body),
  });
}

async function used(org: string, metric: string): Promise<number> {
  await afterResponses(); // ai-chat settles after it answers
  const [{ n }] = await sql`select coalesce(sum(count), 0)::int as n from public.usage_quotas
    where organization_id = ${org} and metric = ${metric} and window_start <= now()
      and window_start > now() - case window_unit when 'minute' then interval '1 minute' when 'hour' then interval '1 hour'
                                                  when 'day' then interval '1 day' else interval '1 month' end`;
  return n;
}

async function rows(org: string) {
  await afterResponses(); // ai-chat settles after it answers
  return await sql`select status::text, reserved_tokens::int, prompt_tokens, completion_tokens, counted_tokens::int,
      error_code, request_id
    from public.ai_requests where organization_id = ${org} order by created_at, id`;
}

/** The stale-reservation job as pg_cron runs it, under the test clock `minutes` from now. */
async function staleJobIn(minutes: number): Promise<number> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('billing.now', (now() + make_interval(mins => ${minutes}))::text, true)`;
    const [{ n }] = await tx`select billing.job_ai_release_stale_reservations() as n`;
    return n as number;
  });
}

async function pollUntil<T>(fn: () => Promise<T | undefined>, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Prompts and tokens of an organization's call: [groq_tokens, ai_prompts]. */
const counted = async (org: string) => [await used(org, "groq_tokens"), await used(org, "ai_prompts")];

// -------------------------------------------------------------------------------------------------
// Never settled: the function died while Groq answered

Deno.test("a function killed while Groq answers leaves the reservation counted; the stale job expires it counted", testOptions, async () => {
  await groqControl({ reset: true });
  await groqControl({ latency_ms: 3000 });
  const t = await tenant();
  // The handler in a process of its own, killed (SIGKILL) while the fake Groq is still answering.
  const script = `
    const { handler } = await import(${JSON.stringify(new URL("../supabase/functions/ai-chat/handler.ts", import.meta.url).href)});
    await handler(new Request("http://local/functions/v1/ai-chat", {
      method: "POST",
      headers: { authorization: "Bearer ${t.token}", "x-organization-id": "${t.org}", "content-type": "application/json" },
      body: JSON.stringify({ model: "${MODEL}", messages: [{ role: "user", content: "die mid-call ${rand()}" }] }),
    }));
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env: { SUPABILL_LOG: "off" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const row = await pollUntil(async () => (await rows(t.org))[0], "the reservation");
    assertEquals(row.status, "pending");
    await new Promise((r) => setTimeout(r, 300)); // Groq is now working on it
    child.kill("SIGKILL");
    await child.status;
    await groqControl({ reset: true });

    const reserved = row.reserved_tokens;
    assertEquals(await counted(t.org), [reserved, 1], "while pending, the reservation is counted");
    assertEquals(await staleJobIn(5), 0, "before 15 minutes nothing expires");
    assert(await staleJobIn(16) >= 1, "16 minutes later the job expires it");
    const [after] = await rows(t.org);
    assertEquals([after.status, after.error_code, after.counted_tokens], ["expired", "reservation_expired", reserved],
      "expired, counted at its reserved amount");
    assertEquals(await counted(t.org), [reserved, 1], "the tokens and the prompt stay counted: never released");
    const states = await sql`select metric, state from public.usage_metrics where request_id = ${row.request_id} order by metric`;
    assertEquals(states.map((s) => `${s.metric}:${s.state}`), ["ai_prompts:settled", "groq_tokens:settled"]);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await groqControl({ reset: true });
  }
});

// -------------------------------------------------------------------------------------------------
// A settlement the database refuses

Deno.test("a settlement the database refuses is never followed by a release: the 200 leaves the call counted", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant();
  // The database refuses to complete this organization's log rows (a trigger that raises), as it
  // would refuse a settlement for any reason of its own; everything else works.
  const fn = `test_refuse_settle_${rand()}`;
  await sql.unsafe(`create function public.${fn}() returns trigger language plpgsql set search_path = '' as $$
    begin raise exception 'settlement refused by the database (test)'; end; $$`);
  await sql.unsafe(`create trigger ${fn} before update on public.ai_requests for each row
    when (old.organization_id = '${t.org}' and new.status <> 'pending') execute function public.${fn}()`);
  try {
    for (const stream of [false, true]) {
      const res = await chat(t, ask(`refused ${stream} ${rand()}`, { stream }));
      const text = await res.text();
      assertEquals(res.status, 200, `the answer was generated and is delivered (stream ${stream})`);
      assert(text.includes("fake"), "with the completion");
    }
    const pending = await rows(t.org);
    assertEquals(pending.map((r) => r.status), ["pending", "pending"], "the settlements were refused: still pending");
    const reserved = pending.reduce((n, r) => n + r.reserved_tokens, 0);
    assertEquals(await counted(t.org), [reserved, 2], "and still counted at what they reserved, nothing released");
  } finally {
    await sql.unsafe(`drop trigger if exists ${fn} on public.ai_requests`);
    await sql.unsafe(`drop function if exists public.${fn}()`);
  }
  const reserved = (await rows(t.org)).reduce((n, r) => n + r.reserved_tokens, 0);
  assert(await staleJobIn(16) >= 2, "the stale job takes them");
  const after = await rows(t.org);
  assertEquals(after.map((r) => [r.status, r.counted_tokens]), after.map((r) => ["expired", r.reserved_tokens]),
    "expired, each counted at its reservation");
  assertEquals(await counted(t.org), [reserved, 2], "the tokens and prompts stay counted");
});

Deno.test("a cache entry the database refuses does not cost the settlement: settled at Groq's usage, not cached", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant();
  const fn = `test_refuse_cache_${rand()}`;
  await sql.unsafe(`create function public.${fn}() returns trigger language plpgsql set search_path = '' as $$
    begin raise exception 'cache entry refused by the database (test)'; end; $$`);
  await sql.unsafe(`create trigger ${fn} before insert on billing.ai_cache for each row
    when (new.organization_id = '${t.org}') execute function public.${fn}()`);
  try {
    for (const stream of [false, true]) {
      const res = await chat(t, ask(`no cache ${stream} ${rand()}`, { stream }));
      assertEquals(res.status, 200);
      await res.text();
    }
    await afterResponses(); // the settlements (and their refused cache entries) before the trigger goes
  } finally {
    await sql.unsafe(`drop trigger if exists ${fn} on billing.ai_cache`);
    await sql.unsafe(`drop function if exists public.${fn}()`);
  }
  const log = await rows(t.org);
  assertEquals(log.map((r) => r.status), ["completed", "completed"], "both settled (the last try without the cache entry)");
  assertEquals(log.map((r) => r.counted_tokens), log.map((r) => r.prompt_tokens + r.completion_tokens), "at Groq's usage");
  assertEquals(await used(t.org, "groq_tokens"), log.reduce((n, r) => n + r.counted_tokens, 0));
  const [{ n }] = await sql`select count(*)::int as n from billing.ai_cache where organization_id = ${t.org}`;
  assertEquals(n, 0, "and nothing was cached");
});

// -------------------------------------------------------------------------------------------------
// U+0000

Deno.test("a completion containing U+0000 settles and is cached (U+FFFD stored), streaming or not", testOptions, async () => {
  await groqControl({ reset: true });
  await groqControl({ reply_suffix: " nul:\u0000:end" });
  try {
    const t = await tenant();
    const request = ask(`echo a NUL ${rand()}`);
    let res = await chat(t, request);
    const first = await res.json();
    assertEquals(res.status, 200);
    assert((first.choices[0].message.content as string).endsWith(" nul:\u0000:end"), "the client gets Groq's text as it is");
    const stream = await chat(t, ask(`stream a NUL ${rand()}`, { stream: true }));
    assertEquals(stream.status, 200);
    assert((await stream.text()).includes("\\u0000"), "the stream relays it too");

    const log = await rows(t.org);
    assertEquals(log.map((r) => r.status), ["completed", "completed"], "both settled");
    assertEquals(log.map((r) => r.counted_tokens), log.map((r) => r.prompt_tokens + r.completion_tokens),
      "at Groq's usage");
    assertEquals(await used(t.org, "groq_tokens"), log.reduce((n, r) => n + r.counted_tokens, 0));
    const cache = await sql`select response -> 'choices' -> 0 -> 'message' ->> 'content' as content
      from billing.ai_cache where organization_id = ${t.org}`;
    assertEquals(cache.length, 2, "both answers are cached");
    for (const c of cache) assert((c.content as string).endsWith(" nul:\uFFFD:end"), "with U+FFFD for U+0000");

    res = await chat(t, request);
    assertEquals(res.headers.get("x-cache"), "hit", "the same request is then a cache hit");
    assert(((await res.json()).choices[0].message.content as string).endsWith(" nul:\uFFFD:end"));
  } finally {
    await groqControl({ reset: true });
  }
});

Deno.test("a correctly signed Razorpay webhook whose body contains U+0000 is answered 2xx and recorded", testOptions, async () => {
  const eventId = `evt_${rand()}`;
  const payId = `pay_${rand()}`;
  const raw = JSON.stringify({
    entity: "event",
    account_id: "acc_test",
    event: "payment.captured",
    contains: ["payment"],
    payload: {
      payment: {
        entity: {
          id: payId,
          entity: "payment",
          amount: 49900,
          currency: "INR",
          status: "captured",
          order_id: `order_${rand()}`,
          method: "upi",
          captured: true,
          notes: { comment: "hello\u0000" },
          created_at: Math.floor(Date.now() / 1000),
        },
      },
    },
    created_at: Math.floor(Date.now() / 1000),
  });
  assert(raw.includes("\\u0000"), "the body carries the escape jsonb refuses");
  const secret = env("RAZORPAY_WEBHOOK_SECRET");
  const signature = createHmac("sha256", secret).update(raw).digest("hex");
  assert(Razorpay.validateWebhookSignature(raw, signature, secret), "signed as Razorpay signs (its SDK agrees)");
  for (const attempt of [1, 2]) {
    const res = await fetch(functionsUrl("razorpay-webhook"), {
      method: "POST",
      headers: { "content-type": "application/json", "x-razorpay-signature": signature, "x-razorpay-event-id": eventId },
      body: raw,
    });
    const text = await res.text();
    assert(res.status >= 200 && res.status < 300, `delivery ${attempt} answered ${res.status}: ${text}`);
  }
  // The delivery's identity is its signed body (the event id header is not signed).
  const recorded = await sql`select payload::text as payload from billing.webhook_events
    where provider = 'razorpay' and payload ->> 'provider_payment_id' = ${payId}`;
  assertEquals(recorded.length, 1, "recorded once in billing.webhook_events (the retry is a duplicate)");
  assert(recorded[0].payload.includes(payId), "with the event's payload");
  assert(recorded[0].payload.includes("hello\uFFFD"), "U+0000 stored as U+FFFD");
});

// -------------------------------------------------------------------------------------------------
// The estimate is an upper bound

Deno.test("the estimate bounds Groq's count: concurrent prompts that tokenize at a token a byte never pass groq_tokens", testOptions, async () => {
  await groqControl({ reset: true });
  // The fake counts a token per UTF-8 byte + 4 per message: a 3-byte-a-character script costs
  // about 3 tokens a character, 12 times the old estimate of a token per 4 bytes.
  await groqControl({ prompt_tokens_per: "byte", latency_ms: 300 });
  try {
    const budget = 1000;
    const t = await tenant({ groq_tokens_per_month: budget });
    const answers = await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const res = await chat(t, ask(`${"न".repeat(40)} q${String(i).padStart(3, "0")}`, { max_tokens: 16 }));
      const b = await res.json();
      return res.status === 200 ? (b.usage as { total_tokens: number; prompt_tokens: number }) : `${res.status} ${b.code}`;
    }));
    const answered = answers.filter((a): a is { total_tokens: number; prompt_tokens: number } => typeof a === "object");
    assert(answered.length >= 1, "some are answered");
    assert(answered.every((a) => a.prompt_tokens === 40 * 3 + 5 + 4), "the fake counted a token per byte");
    assertEquals(answers.filter((a) => typeof a === "string").every((a) => a === "429 token_quota_exceeded"), true);
    const spent = answered.reduce((n, a) => n + a.total_tokens, 0);
    assert(spent <= budget, `tokens Groq counted (${spent}) never pass the budget (${budget})`);
    const log = await rows(t.org);
    const done = log.filter((r) => r.status === "completed");
    assertEquals(done.length, answered.length);
    for (const r of done) {
      assert(r.reserved_tokens >= r.prompt_tokens + r.completion_tokens, "each reservation bounded the actual use");
      assertEquals(r.counted_tokens, r.prompt_tokens + r.completion_tokens, "so each is counted in full");
    }
    assertEquals(await used(t.org, "groq_tokens"), spent, "the counter equals what Groq counted");
  } finally {
    await groqControl({ reset: true });
  }
});

Deno.test({ name: "close the test database connection (ai-settlement)", ...testOptions, fn: async () => await sql.end() });
