// The AI gateway end to end: POST /functions/v1/ai-chat through the local functions server, the
// real database and the fake Groq (tests/fakes/upstreams.ts). Every error path, the cache, the
// per-user rate limit and the quotas, streaming settlement, a client that leaves mid-stream,
// release on upstream failure, single flight, and concurrency against the quotas. groq-sdk is
// used both as the gateway's own client (inside the function) and as a client of our endpoint.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import Groq from "npm:groq-sdk@1.6.0";
import { adminSql, afterResponses, createUser, env, functionsUrl, mintToken } from "./helpers.ts";
import { type AiTenant, aiTenant, groqControl } from "./ai-fixtures.ts";

type Sql = ReturnType<typeof adminSql>;
type Json = Record<string, unknown>;

const sql: Sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const url = () => functionsUrl("ai-chat");
const MODEL = "llama-3.1-8b-instant";
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

// -------------------------------------------------------------------------------------------------
// Fixture helpers

type Tenant = AiTenant;

/** A fresh organization with an owner, on an active plan with the given features (and room for 10 members). */
const tenant = (features: Json) => aiTenant(sql, "t_ai", features);

const roomy = (extra: Json = {}) => ({
  ai_requests_per_minute: 1000,
  ai_prompts_per_day: 10000,
  groq_tokens_per_month: 10_000_000,
  ai_models: [MODEL],
  ...extra,
});

function chat(t: Tenant, body: unknown, init: { token?: string | null; org?: string | null; signal?: AbortSignal } = {}) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  const token = init.token === undefined ? t.token : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const org = init.org === undefined ? t.org : init.org;
  if (org !== null) headers["x-organization-id"] = org;
  return fetch(url(), {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: init.signal,
  });
}

const ask = (content: string, extra: Json = {}) => ({ model: MODEL, messages: [{ role: "user", content }], ...extra });

async function stats(): Promise<{ calls: Record<string, number>; last: Record<string, Json> }> {
  const res = await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/stats`);
  return await res.json();
}
const groqCalls = async () => (await stats()).calls["groq.chat"] ?? 0;

async function used(org: string, metric: string): Promise<number> {
  await afterResponses(); // ai-chat settles after it answers
  const [{ n }] = await sql`select coalesce(sum(count), 0)::int as n from public.usage_quotas
    where organization_id = ${org} and metric = ${metric} and window_start <= now()
      and window_start > now() - case window_unit when 'minute' then interval '1 minute' when 'hour' then interval '1 hour'
                                                  when 'day' then interval '1 day' else interval '1 month' end`;
  return n;
}

async function logRows(org: string) {
  await afterResponses(); // ai-chat settles after it answers
  return await sql`select status::text, cached, stream, max_tokens, reserved_tokens::int, prompt_tokens, completion_tokens,
      counted_tokens::int, error_code, request_id
    from public.ai_requests where organization_id = ${org} order by created_at, id`;
}

/** Wait until the current minute has at least `seconds` left (per-minute windows in a test). */
async function roomInMinute(seconds = 15) {
  const left = 60 - new Date().getUTCSeconds();
  if (left < seconds) await new Promise((r) => setTimeout(r, left * 1000 + 200));
}

async function body(res: Response): Promise<Json> {
  return await res.json() as Json;
}

/** SSE `data:` payloads of a whole event stream. */
function events(text: string): string[] {
  return text.split("\n\n").map((e) => e.trim()).filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
}

async function pollUntil<T>(fn: () => Promise<T | undefined>, what: string, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// -------------------------------------------------------------------------------------------------
// Refusals before anything is counted or sent upstream

Deno.test("authentication, header and body errors are refused before the database or Groq", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy());
  const before = await groqCalls();

  let res = await chat(t, ask("hi"), { token: null });
  assertEquals(res.status, 401, "no token: 401");
  await res.body?.cancel();
  res = await chat(t, ask("hi"), { token: "not.a.jwt" });
  assertEquals(res.status, 401, "a bad token: 401");
  await res.body?.cancel();
  res = await chat(t, ask("hi"), { token: await mintToken(t.owner, { role: "anon" }) });
  assertEquals([res.status, (await body(res)).code], [401, "not_a_user"], "an anon token is not a user");

  res = await chat(t, ask("hi"), { org: null });
  assertEquals([res.status, (await body(res)).code], [400, "missing_organization_id"]);
  res = await chat(t, ask("hi"), { org: "acme" });
  assertEquals([res.status, (await body(res)).code], [400, "invalid_organization_id"]);

  for (
    const [bad, why] of [
      ["{not json", "malformed JSON"],
      [[1, 2], "an array"],
      [{ model: MODEL }, "no messages"],
      [{ model: MODEL, messages: [] }, "empty messages"],
      [{ model: MODEL, messages: [{ role: "wizard", content: "x" }] }, "an unknown role"],
      [{ model: MODEL, messages: [{ role: "user", content: 42 }] }, "non-text content"],
      [{ model: "", messages: [{ role: "user", content: "x" }] }, "an empty model"],
      [{ ...ask("x"), temperature: 3 }, "temperature out of range"],
      [{ ...ask("x"), max_tokens: 0 }, "max_tokens 0"],
      [{ ...ask("x"), max_tokens: 1.5 }, "a fractional max_tokens"],
      [{ ...ask("x"), stream: "yes" }, "a non-boolean stream"],
      [{ ...ask("x"), tools: [] }, "an unsupported field"],
    ] as [unknown, string][]
  ) {
    res = await chat(t, typeof bad === "string" ? bad : JSON.stringify(bad));
    assertEquals([res.status, (await body(res)).code], [400, "invalid_body"], why);
  }
  res = await chat(t, ask("x".repeat(200 * 1024)));
  assertEquals([res.status, (await body(res)).code], [413, "body_too_large"], "a body over 128 KiB");
  res = await fetch(url(), { headers: { authorization: `Bearer ${t.token}` } });
  assertEquals(res.status, 405, "GET is not allowed");
  await res.body?.cancel();

  assertEquals(await groqCalls(), before, "none of these reached Groq");
  assertEquals((await logRows(t.org)).length, 0, "and none was logged or counted");
  assertEquals(await used(t.org, "ai_prompts"), 0);
});

Deno.test("a non-member gets 403 not_a_member; a model outside the plan 403 model_not_allowed", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy({ ai_requests_per_minute: 7 }));
  const stranger = await tenant(roomy());
  const before = await groqCalls();

  let res = await chat(t, ask("hi"), { token: stranger.token });
  assertEquals([res.status, (await body(res)).code], [403, "not_a_member"]);

  await roomInMinute();
  res = await chat(t, ask("hi", { model: "llama-3.3-70b-versatile" }));
  const b = await body(res);
  assertEquals([res.status, b.code], [403, "model_not_allowed"]);
  assert(String(b.upgrade).includes("Upgrade"), "the refusal carries an upgrade hint");
  assertEquals(res.headers.get("x-ratelimit-limit"), "7", "rate-limit headers on a model refusal too");
  assertEquals(res.headers.get("x-ratelimit-remaining"), "7", "and the refusal did not count");
  assert(Number(res.headers.get("x-ratelimit-reset")) >= 1, "x-ratelimit-reset is seconds to the window's end");

  assertEquals(await groqCalls(), before, "neither reached Groq");
  const rows = await logRows(t.org);
  assertEquals(rows.map((r) => [r.status, r.error_code]), [["denied", "model_not_allowed"]], "the model refusal is logged");
  assertEquals((await logRows(stranger.org)).length, 0, "the stranger's attempt is logged nowhere");
});

// -------------------------------------------------------------------------------------------------
// Completions, settlement, cache

Deno.test("a completion is reserved, sent, settled at Groq's usage and logged; the same request is then a cache hit", testOptions, async () => {
  await groqControl({ reset: true });
  await roomInMinute();
  const t = await tenant(roomy({ ai_requests_per_minute: 10 }));
  const before = await groqCalls();
  const request = ask(`What is GST? ${rand()}`, { temperature: 0.2, max_tokens: 100 });

  let res = await chat(t, request);
  const first = await body(res);
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("x-cache"), "miss");
  assertEquals(res.headers.get("x-ratelimit-limit"), "10");
  assertEquals(res.headers.get("x-ratelimit-remaining"), "9");
  const usage = first.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  assertEquals(usage.completion_tokens, 16, "the fake's reply");
  assertEquals(await groqCalls(), before + 1, "one upstream call");
  const sent = (await stats()).last["groq.chat"];
  assertEquals(sent.max_completion_tokens, 100, "max_tokens went upstream as asked (nothing to cap)");
  assertEquals(sent.temperature, 0.2);

  assertEquals(await used(t.org, "groq_tokens"), usage.total_tokens, "the month counts exactly Groq's total_tokens");
  assertEquals(await used(t.org, "ai_prompts"), 1, "and one prompt");
  let rows = await logRows(t.org);
  assertEquals(rows.length, 1);
  assertEquals(
    [rows[0].status, rows[0].cached, rows[0].prompt_tokens, rows[0].completion_tokens, rows[0].counted_tokens, rows[0].request_id],
    ["completed", false, usage.prompt_tokens, 16, usage.total_tokens, res.headers.get("x-request-id")],
    "the log has tokens in and out, what was counted, and the request id of the answer",
  );
  assert(rows[0].reserved_tokens > usage.total_tokens, "more was reserved than spent, and given back");

  res = await chat(t, request);
  const second = await body(res);
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("x-cache"), "hit", "the same request again is a cache hit");
  assertEquals(second, first, "with the same answer");
  assertEquals(res.headers.get("x-ratelimit-remaining"), "8", "which still counts against the per-user rate limit");
  assertEquals(await groqCalls(), before + 1, "without calling Groq");
  assertEquals(await used(t.org, "groq_tokens"), usage.total_tokens, "without spending tokens");
  assertEquals(await used(t.org, "ai_prompts"), 1, "or a prompt");
  rows = await logRows(t.org);
  assertEquals([rows[1].status, rows[1].cached, rows[1].counted_tokens], ["cached", true, 0], "the hit is logged as cached");

  res = await chat(t, { ...request, temperature: 0.3 });
  assertEquals(res.headers.get("x-cache"), "miss", "a different parameter is a different request");
  await res.body?.cancel();

  const other = await tenant(roomy());
  res = await chat(other, request);
  assertEquals(res.headers.get("x-cache"), "miss", "another organization never gets this organization's cache");
  await res.body?.cancel();
  assertEquals(await groqCalls(), before + 3);
});

Deno.test("the groq-sdk client can use the gateway as its base URL, streaming or not", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy());
  const client = new Groq({
    apiKey: t.token,
    baseURL: url(),
    maxRetries: 0,
    defaultHeaders: { "x-organization-id": t.org },
  });
  const completion = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: `Hello through the SDK ${rand()}` }],
  });
  assertEquals(completion.choices[0].message.content?.startsWith("This is a fake Groq reply"), true);
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: `Stream through the SDK ${rand()}` }],
    stream: true,
  });
  let text = "";
  let finalUsage: unknown;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    finalUsage ??= chunk.x_groq?.usage;
  }
  assert(text.startsWith("This is a fake Groq reply"), "the SDK reads the relayed stream");
  assert(finalUsage, "and sees Groq's usage on the final chunk");
  try {
    await client.chat.completions.create({ model: "llama-3.3-70b-versatile", messages: [{ role: "user", content: "x" }] });
    throw new Error("expected a refusal");
  } catch (e) {
    assertEquals((e as { status?: number }).status, 403, "the SDK sees our 403 as an APIError");
  }
  const rows = await logRows(t.org);
  assertEquals(rows.map((r) => [r.status, r.stream]), [["completed", false], ["completed", true], ["denied", false]]);
});

// -------------------------------------------------------------------------------------------------
// Limits

Deno.test("the per-user rate limit: 429 rate_limited with Retry-After; another user of the organization is not limited", testOptions, async () => {
  await groqControl({ reset: true });
  await roomInMinute(20);
  const t = await tenant(roomy({ ai_requests_per_minute: 2 }));
  const colleague = await createUser(sql);
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${t.org}, ${colleague}, 'member')`;
  for (let i = 0; i < 2; i++) {
    const res = await chat(t, ask(`rate ${i} ${rand()}`));
    assertEquals(res.status, 200);
    await res.body?.cancel();
  }
  const before = await groqCalls();
  const res = await chat(t, ask(`rate 3 ${rand()}`));
  const b = await body(res);
  assertEquals([res.status, b.code, b.limit], [429, "rate_limited", "rate"]);
  const retry = Number(res.headers.get("retry-after"));
  assert(retry >= 1 && retry <= 60, `Retry-After is the seconds to the minute's end (${retry})`);
  assertEquals(res.headers.get("x-ratelimit-remaining"), "0");
  assertEquals(res.headers.get("x-ratelimit-reset"), String(retry));
  assert(String(b.upgrade).length > 0, "an upgrade hint");
  assertEquals(await groqCalls(), before, "a refused call never reaches Groq");
  assertEquals(await used(t.org, "ai_prompts"), 2, "and counts no prompt");

  const other = await chat(t, ask(`colleague ${rand()}`), { token: await mintToken(colleague) });
  assertEquals(other.status, 200, "the limit is per user");
  assertEquals(other.headers.get("x-ratelimit-remaining"), "1");
  await other.body?.cancel();
});

Deno.test("the prompt quota: 429 prompt_quota_exceeded with Retry-After to local midnight", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy({ ai_prompts_per_day: 1 }));
  let res = await chat(t, ask(`one ${rand()}`));
  assertEquals(res.status, 200);
  await res.body?.cancel();
  res = await chat(t, ask(`two ${rand()}`));
  const b = await body(res);
  assertEquals([res.status, b.code, b.limit, b.limit_amount, b.remaining], [429, "prompt_quota_exceeded", "prompts", 1, 0]);
  const retry = Number(res.headers.get("retry-after"));
  assert(retry >= 1 && retry <= 86400, "Retry-After is within the day");
  assert(res.headers.has("x-ratelimit-limit"), "rate-limit headers on a quota refusal too");
  const rows = await logRows(t.org);
  assertEquals(rows.map((r) => r.error_code), [null, "prompt_quota_exceeded"]);
});

Deno.test("the token quota: max_tokens is capped to what is left, then 429 token_quota_exceeded", testOptions, async () => {
  await groqControl({ reset: true });
  // "cap me" is 6 bytes: the estimate (an upper bound) is 6 + 4 ("user") + 8 + 64 = 82 tokens; the fake counts 2.
  const t = await tenant(roomy({ groq_tokens_per_month: 116 }));
  let res = await chat(t, ask("cap me", { max_tokens: 100 }));
  assertEquals(res.status, 200);
  const first = await body(res);
  assertEquals((await stats()).last["groq.chat"].max_completion_tokens, 34, "max_tokens capped to 116 - 82 = 34");
  const spent = (first.usage as { total_tokens: number }).total_tokens;
  assertEquals(spent, 2 + 16);
  assertEquals(await used(t.org, "groq_tokens"), 18, "settled at the actual 18");

  res = await chat(t, ask("cap me", { max_tokens: 100 }));
  assertEquals(res.headers.get("x-cache"), "miss", "a capped answer is not cached (it may be cut short)");
  await res.body?.cancel();
  assertEquals(await used(t.org, "groq_tokens"), 36);

  res = await chat(t, ask("cap me", { max_tokens: 100 }));
  const b = await body(res);
  assertEquals([res.status, b.code, b.limit, b.limit_amount, b.remaining], [429, "token_quota_exceeded", "tokens", 116, 80],
    "80 tokens left is less than the prompt's bound (82): too little to answer");
  assert(Number(res.headers.get("retry-after")) >= 1);
  assertEquals(await used(t.org, "groq_tokens"), 36, "the refusal counted nothing");
  assertEquals(await used(t.org, "ai_prompts"), 2, "not even a prompt");
});

// -------------------------------------------------------------------------------------------------
// Upstream failures

Deno.test("an upstream error is 502 upstream_error, tried once, and the reservation is released", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy());
  await groqControl({ fail_status: 500, fail_count: 1 });
  const before = await groqCalls();
  let res = await chat(t, ask(`fails ${rand()}`));
  const b = await body(res);
  assertEquals([res.status, b.code], [502, "upstream_error"]);
  assert(res.headers.has("x-ratelimit-limit"), "rate-limit headers on a 502");
  assertEquals(await groqCalls(), before + 1, "no retry: exactly one upstream call");
  assertEquals(await used(t.org, "groq_tokens"), 0, "the reserved tokens are given back");
  assertEquals(await used(t.org, "ai_prompts"), 0, "and the prompt");
  let rows = await logRows(t.org);
  assertEquals([rows[0].status, rows[0].error_code, rows[0].counted_tokens], ["upstream_error", "upstream_error", 0]);

  await groqControl({ fail_status: 503, fail_count: 1 });
  res = await chat(t, ask(`stream fails ${rand()}`, { stream: true }));
  assertEquals([res.status, (await body(res)).code], [502, "upstream_error"], "a stream that cannot start: 502 too");
  assertEquals(await used(t.org, "groq_tokens"), 0);
  rows = await logRows(t.org);
  assertEquals(rows[1].status, "upstream_error");
});

Deno.test("an upstream timeout is 504 upstream_timeout and the reservation is settled at the prompt (handler in-process)", testOptions, async () => {
  const { aiChat } = await import("../supabase/functions/ai-chat/handler.ts");
  const { handle } = await import("../supabase/functions/_shared/http.ts");
  await groqControl({ reset: true });
  const t = await tenant(roomy());
  // Groq answers after 5 s, the gateway gives up after 300 ms: any answer well before 5 s came from
  // the timeout (the bound is loose so a loaded 2-core machine does not flake).
  await groqControl({ latency_ms: 5000 });
  try {
    const overrides: Record<string, string> = { AI_UPSTREAM_TIMEOUT_MS: "300" };
    const handler = handle("ai-chat", (req) => aiChat(req, (name) => overrides[name] ?? Deno.env.get(name)));
    const started = performance.now();
    const res = await handler(new Request(url(), {
      method: "POST",
      headers: { authorization: `Bearer ${t.token}`, "x-organization-id": t.org, "content-type": "application/json" },
      body: JSON.stringify(ask(`slow ${rand()}`)),
    }));
    const b = await res.json();
    assertEquals([res.status, b.code], [504, "upstream_timeout"]);
    assert(performance.now() - started < 3000, "answered at the timeout, not when Groq finally answered");
    const rows = await logRows(t.org);
    assertEquals([rows[0].status, rows[0].error_code, rows[0].completion_tokens], ["upstream_timeout", "upstream_timeout", 0]);
    // Groq may have read the prompt before the gateway stopped waiting: it stays counted (the
    // estimate, an upper bound); the answer's reserved tokens come back.
    assertEquals(await used(t.org, "groq_tokens"), rows[0].prompt_tokens, "the prompt stays counted");
    assert(rows[0].prompt_tokens > 0 && rows[0].counted_tokens === rows[0].prompt_tokens);
  } finally {
    await groqControl({ reset: true });
  }
});

Deno.test("an unreachable database is 503 database_unavailable and Groq is never called (handler in another process)", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy());
  const before = await groqCalls();
  // A port nobody listens on: bind one, note it, close it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const script = `
    const { handler: aiChatHandler } = await import(${JSON.stringify(new URL("../supabase/functions/ai-chat/handler.ts", import.meta.url).href)});
    const res = await aiChatHandler(new Request("http://local/functions/v1/ai-chat", {
      method: "POST",
      headers: { authorization: "Bearer ${t.token}", "x-organization-id": "${t.org}", "content-type": "application/json" },
      body: JSON.stringify({ model: "${MODEL}", messages: [{ role: "user", content: "no database" }] }),
    }));
    console.log(JSON.stringify({ status: res.status, body: await res.json() }));
    Deno.exit(0);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env: { SUPABASE_DB_URL: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`, SUPABILL_LOG: "off" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert(out.success, `the in-process handler ran: ${new TextDecoder().decode(out.stderr)}`);
  const answer = JSON.parse(text.split("\n").pop() as string);
  assertEquals([answer.status, answer.body.code], [503, "database_unavailable"]);
  assertEquals(await groqCalls(), before, "no unmetered call reached Groq");
});

// -------------------------------------------------------------------------------------------------
// Streaming

Deno.test("a stream is relayed as server-sent events and settled at the usage of Groq's final chunk", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy());
  const request = ask(`Stream it ${rand()}`, { stream: true, max_tokens: 200 });
  let res = await chat(t, request);
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type")?.startsWith("text/event-stream"), true);
  assertEquals(res.headers.get("x-cache"), "miss");
  assert(res.headers.has("x-ratelimit-remaining"), "rate-limit headers on a stream");
  const data = events(await res.text());
  assertEquals(data.at(-1), "[DONE]", "ends with data: [DONE]");
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert(text.startsWith("This is a fake Groq reply"), "the content arrives in pieces");
  assertEquals(chunks.length, 18, "the role chunk, 16 pieces and the final chunk");
  const usage = chunks.at(-1).x_groq.usage;
  assertEquals(usage.completion_tokens, 16);

  // logRows waits for the settlement the server finishes after the body ended.
  const rows = await logRows(t.org);
  assertEquals([rows[0].status, rows[0].stream, rows[0].completion_tokens, rows[0].counted_tokens],
    ["completed", true, 16, usage.total_tokens]);
  assertEquals(await used(t.org, "groq_tokens"), usage.total_tokens);

  const before = await groqCalls();
  res = await chat(t, request);
  assertEquals(res.headers.get("x-cache"), "hit", "a finished stream is cached");
  const replay = events(await res.text());
  assertEquals(replay.at(-1), "[DONE]");
  assertEquals(replay.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta?.content ?? "").join(""), text,
    "and replayed as a stream with the same content");
  res = await chat(t, { ...request, stream: false });
  assertEquals(res.headers.get("x-cache"), "hit", "the same request without stream is the same cache entry");
  assertEquals(((await body(res)).choices as Json[])[0], { index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" });
  assertEquals(await groqCalls(), before, "neither replay called Groq");
});

Deno.test("a client that disconnects mid-stream still settles what was generated, and Groq is stopped", testOptions, async () => {
  await groqControl({ reset: true });
  await groqControl({ stream_chunk_delay_ms: 40, reply_tokens: 60 });
  try {
    const t = await tenant(roomy());
    const abort = new AbortController();
    const res = await chat(t, ask(`Leave early ${rand()}`, { stream: true }), { signal: abort.signal });
    assertEquals(res.status, 200);
    const reader = res.body!.getReader();
    let seen = "";
    while (!seen.includes('"content":"This"')) {
      const { value } = await reader.read();
      seen += new TextDecoder().decode(value);
    }
    abort.abort();
    await reader.cancel().catch(() => {});

    const row = await pollUntil(async () => {
      const [r] = await logRows(t.org);
      return r && r.status !== "pending" ? r : undefined;
    }, "the settlement after the disconnect");
    assertEquals(row.status, "client_closed");
    assert(row.completion_tokens >= 1 && row.completion_tokens < 60,
      `the completion tokens seen before the disconnect are counted (${row.completion_tokens} of 60)`);
    assertEquals(row.counted_tokens, row.prompt_tokens + row.completion_tokens);
    assertEquals(await used(t.org, "groq_tokens"), row.counted_tokens, "and only those are spent");
    assertEquals(await used(t.org, "ai_prompts"), 1, "the prompt was used");
    const [{ n }] = await sql`select count(*)::int as n from billing.ai_cache where organization_id = ${t.org}`;
    assertEquals(n, 0, "a stream cut short is not cached");
  } finally {
    await groqControl({ reset: true });
  }
});

// -------------------------------------------------------------------------------------------------
// Single flight and concurrency

Deno.test("identical requests in flight together go upstream once; the others are answered from its cache entry", testOptions, async () => {
  await groqControl({ reset: true });
  await groqControl({ latency_ms: 300 });
  try {
    const t = await tenant(roomy());
    const before = await groqCalls();
    const request = ask(`Only once ${rand()}`);
    const answers = await Promise.all(Array.from({ length: 20 }, async () => {
      const res = await chat(t, request);
      return { status: res.status, cache: res.headers.get("x-cache"), body: await body(res) };
    }));
    assertEquals(answers.map((a) => a.status), Array(20).fill(200));
    assertEquals(await groqCalls(), before + 1, "Groq was called once for 20 identical requests");
    assertEquals(answers.filter((a) => a.cache === "miss").length, 1);
    for (const a of answers) assertEquals(a.body, answers[0].body, "everyone got the same answer");
    const rows = await logRows(t.org);
    assertEquals(rows.filter((r) => r.status === "completed").length, 1);
    assertEquals(rows.filter((r) => r.status === "cached").length, 19);
    assertEquals(await used(t.org, "ai_prompts"), 1, "one prompt spent");
  } finally {
    await groqControl({ reset: true });
  }
});

Deno.test("200 concurrent requests with 50 prompts left: exactly 50 reach Groq, 150 get 429", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy({ ai_prompts_per_day: 50 }));
  const before = await groqCalls();
  const statuses = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
    const res = await chat(t, ask(`concurrent ${i} ${rand()}`));
    const b = await body(res);
    return res.status === 429 ? `429 ${b.code}` : String(res.status);
  }));
  assertEquals(statuses.filter((s) => s === "200").length, 50);
  assertEquals(statuses.filter((s) => s === "429 prompt_quota_exceeded").length, 150);
  assertEquals(await groqCalls(), before + 50, "exactly 50 upstream calls");
  assertEquals(await used(t.org, "ai_prompts"), 50);
});

Deno.test("50 concurrent requests on a token budget for about 10 answers never spend past it", testOptions, async () => {
  await groqControl({ reset: true });
  // Groq is slow enough that every request reserves (or is refused) before the first settles.
  await groqControl({ latency_ms: 2000 });
  try {
    // Each request: prompt estimate 11 + 4 + 8 + 64 = 87, reserved 87 + 16 = 103 (10 fit in 1030),
    // actual 3 + 16 = 19 tokens.
    const budget = 1030;
    const t = await tenant(roomy({ groq_tokens_per_month: budget }));
    const before = await groqCalls();
    const answers = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const res = await chat(t, ask(`budget q${String(i).padStart(3, "0")}`, { max_tokens: 16 }));
      const b = await body(res);
      return res.status === 200 ? (b.usage as { total_tokens: number }).total_tokens : `${res.status} ${b.code}`;
    }));
    const answered = answers.filter((a): a is number => typeof a === "number");
    assertEquals(answers.filter((a) => typeof a !== "number").every((a) => a === "429 token_quota_exceeded"), true);
    assert(answered.length >= 8 && answered.length <= 10, `about 10 answered (${answered.length})`);
    const spent = answered.reduce((a, b) => a + b, 0);
    assert(spent <= budget, `tokens spent (${spent}) never exceed the budget`);
    assertEquals(await used(t.org, "groq_tokens"), spent, "the counter equals what Groq reported");
    assertEquals(await groqCalls(), before + answered.length, "one upstream call per answer");
    const [{ pending }] = await sql`select count(*)::int as pending from public.ai_requests
      where organization_id = ${t.org} and status = 'pending'`;
    assertEquals(pending, 0, "no reservation left open");
  } finally {
    await groqControl({ reset: true });
  }
});

Deno.test("owners and admins read the organization's AI requests; plain members read none", testOptions, async () => {
  await groqControl({ reset: true });
  const t = await tenant(roomy());
  const member = await createUser(sql);
  const admin = await createUser(sql);
  await sql`insert into public.organization_members (organization_id, user_id, role)
    values (${t.org}, ${member}, 'member'), (${t.org}, ${admin}, 'admin')`;
  const res = await chat(t, ask(`visible ${rand()}`), { token: await mintToken(member) });
  assertEquals(res.status, 200, "a plain member may use the gateway");
  await res.body?.cancel();
  const visible = async (user: string) =>
    await sql.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
        set_config('request.jwt.claims', ${JSON.stringify({ sub: user, role: "authenticated" })}, true)`;
      const [{ n }] = await tx`select count(*)::int as n from public.ai_requests where organization_id = ${t.org}`;
      return n;
    });
  assertEquals(await visible(t.owner), 1, "the owner reads the log");
  assertEquals(await visible(admin), 1, "an admin reads the log");
  assertEquals(await visible(member), 0, "the member who made the call does not");
});

Deno.test({ name: "close the test database connection", ...testOptions, fn: async () => await sql.end() });
