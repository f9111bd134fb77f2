// ai-chat as a drop-in OpenAI endpoint, checked with the official openai client pointed at it
// (baseURL <functions url>/ai-chat, the user's JWT as the API key, x-organization-id as a default
// header) against the local functions server, the real database and the fake Groq: completions
// and streams with usage, OpenAI's error envelope and the error classes the client picks from it,
// retries the client does not make on a used-up quota, the rate-limit headers, the request fields
// passed on to Groq and into the cache key, the model list and the routes.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import OpenAI from "npm:openai@7.59.0";
import { adminSql, env, functionsUrl, mintToken } from "./helpers.ts";
import { type AiTenant, aiTenant } from "./ai-fixtures.ts";

type Json = Record<string, unknown>;

const sql = adminSql(4);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const base = () => functionsUrl("ai-chat");
const MODEL = "llama-3.1-8b-instant";
const OTHER_MODEL = "llama-3.3-70b-versatile";
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

type Tenant = AiTenant;

/** A fresh organization with an owner, on an active plan with these features. */
const tenant = (features: Json) => aiTenant(sql, "t_oa", features);

const roomy = (extra: Json = {}) => ({
  ai_requests_per_minute: 1000,
  ai_prompts_per_day: 10000,
  groq_tokens_per_month: 10_000_000,
  ai_models: [MODEL],
  ...extra,
});

/** The openai client as a user of the organization; `calls` counts the HTTP requests it makes. */
function client(t: Tenant, opts: { maxRetries?: number; token?: string } = {}) {
  const calls = { n: 0 };
  const openai = new OpenAI({
    baseURL: base(),
    apiKey: opts.token ?? t.token,
    defaultHeaders: { "x-organization-id": t.org },
    ...(opts.maxRetries !== undefined ? { maxRetries: opts.maxRetries } : {}),
    fetch: (input: string | URL | Request, init?: RequestInit) => {
      calls.n++;
      return fetch(input, init);
    },
  });
  return { openai, calls };
}

/** Wait until the current minute has at least `seconds` left (per-minute windows in a test). */
async function roomInMinute(seconds = 15) {
  const left = 60 - new Date().getUTCSeconds();
  if (left < seconds) await new Promise((r) => setTimeout(r, left * 1000 + 200));
}

const say = (content: string) => [{ role: "user" as const, content }];

/** The error a promise rejects with (fails when it resolves). */
async function rejection(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await p;
  } catch (e) {
    assert(e instanceof OpenAI.APIError, `an APIError, not ${e}`);
    return e;
  }
  throw new Error("expected the call to fail");
}

/** The chat bodies the fake Groq received whose last message contains `marker`. */
async function received(marker: string): Promise<Json[]> {
  const res = await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/groq/requests`);
  const { requests } = await res.json() as { requests: Json[] };
  return requests.filter((r) => JSON.stringify(r.messages ?? "").includes(marker));
}

async function aiRows(org: string) {
  return await sql`select status::text, error_code, reserved_tokens::int from public.ai_requests
    where organization_id = ${org} order by created_at, id`;
}

/** A raw request to ai-chat (for what the client would not send). */
function raw(t: Tenant, path: string, init: { method?: string; body?: unknown; org?: string | null; token?: string } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${init.token ?? t.token}`, "content-type": "application/json" };
  const org = init.org === undefined ? t.org : init.org;
  if (org !== null) headers["x-organization-id"] = org;
  return fetch(`${base()}${path}`, {
    method: init.method ?? "POST",
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
}

// -------------------------------------------------------------------------------------------------

Deno.test("a completion through the openai client: the answer with usage, and the rate-limit headers under OpenAI's names", testOptions, async () => {
  await roomInMinute();
  const t = await tenant(roomy({ ai_requests_per_minute: 1000, groq_tokens_per_month: 50_000 }));
  const { openai, calls } = client(t);
  const marker = `plain ${rand()}`;
  const { data, response } = await openai.chat.completions.create({ model: MODEL, messages: say(marker), max_tokens: 50 })
    .withResponse();
  assert(data.choices[0].message.content?.startsWith("This is a fake Groq reply"), "the fake's reply");
  assert(data.usage, "usage is present");
  assertEquals(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
  assertEquals(calls.n, 1);

  const h = (name: string) => response.headers.get(name);
  assertEquals(h("x-cache"), "miss");
  assert(/^ai_[0-9a-f]{32}$/.test(h("x-request-id") ?? ""), "the request id");
  for (const what of ["limit", "remaining", "reset"]) {
    assertEquals(h(`x-ratelimit-${what}-requests`), h(`x-ratelimit-${what}`), `x-ratelimit-${what}-requests = x-ratelimit-${what}`);
  }
  assertEquals([h("x-ratelimit-limit-requests"), h("x-ratelimit-remaining-requests")], ["1000", "999"]);
  const [row] = await aiRows(t.org);
  assertEquals(h("x-ratelimit-limit-tokens"), "50000", "the organization's token quota");
  assertEquals(h("x-ratelimit-remaining-tokens"), String(50_000 - row.reserved_tokens), "what is left after this call's reservation");
  const reset = Number(h("x-ratelimit-reset-tokens"));
  assert(reset >= 1 && reset <= 31 * 86400, `the token window resets within the month (${reset} s)`);

  // A cache hit spends no tokens and does not look at the token quota: no token headers.
  const again = await openai.chat.completions.create({ model: MODEL, messages: say(marker), max_tokens: 50 }).withResponse();
  assertEquals(again.response.headers.get("x-cache"), "hit");
  assertEquals(again.data, data, "the same answer");
  assertEquals(again.response.headers.get("x-ratelimit-remaining-requests"), "998");
  assertEquals(again.response.headers.get("x-ratelimit-limit-tokens"), null);
});

Deno.test("a stream through the openai client: chunks assembled, and the usage chunk when stream_options.include_usage", testOptions, async () => {
  const t = await tenant(roomy());
  const { openai } = client(t);
  const marker = `stream ${rand()}`;
  const collect = async (includeUsage: boolean) => {
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: say(marker),
      stream: true,
      ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    return chunks;
  };

  const chunks = await collect(true);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert(text.startsWith("This is a fake Groq reply"), "the content arrives in pieces");
  const last = chunks.at(-1)!;
  assertEquals(last.choices, [], "the last chunk has no choices");
  assert(last.usage, "and the usage");
  assertEquals(last.usage.completion_tokens, 16);
  assertEquals(last.usage.total_tokens, last.usage.prompt_tokens + 16);
  assertEquals(chunks.filter((c) => c.choices.length === 0).length, 1, "one usage chunk");
  const sent = await received(marker);
  assertEquals(sent.length, 1);
  assertEquals("stream_options" in sent[0], false, "stream_options is ai-chat's to honour, not sent upstream");

  // The same request again is a cache hit, replayed as a stream, with the usage chunk too.
  const replay = await collect(true);
  assertEquals(replay.map((c) => c.choices[0]?.delta?.content ?? "").join(""), text);
  assertEquals(replay.at(-1)!.choices, []);
  assertEquals(replay.at(-1)!.usage?.total_tokens, last.usage.total_tokens);
  // Without include_usage there is no usage-only chunk.
  assertEquals((await collect(false)).filter((c) => c.choices.length === 0).length, 0);
  assertEquals((await received(marker)).length, 1, "both replays came from the cache");
});

Deno.test("a used-up quota is a 429 the openai client tries exactly once (x-should-retry: false), with OpenAI's envelope", testOptions, async () => {
  const t = await tenant(roomy({ ai_prompts_per_day: 1 }));
  const { openai, calls } = client(t); // maxRetries: the client's default (2)
  await openai.chat.completions.create({ model: MODEL, messages: say(`first ${rand()}`) });
  calls.n = 0;
  const e = await rejection(openai.chat.completions.create({ model: MODEL, messages: say(`second ${rand()}`) }));
  assert(e instanceof OpenAI.RateLimitError, "a RateLimitError");
  assertEquals([e.status, e.code, e.type, e.param], [429, "prompt_quota_exceeded", "insufficient_quota", null]);
  assertEquals(e.headers?.get("x-should-retry"), "false");
  assert(Number(e.headers?.get("retry-after")) >= 1, "Retry-After still says when the quota resets");
  assertEquals(calls.n, 1, "one HTTP request: the client did not retry");
  const rows = await aiRows(t.org);
  assertEquals(rows.map((r) => [r.status, r.error_code]), [["completed", null], ["denied", "prompt_quota_exceeded"]],
    "and ai-chat saw exactly one attempt");

  // Our own fields stay beside the envelope.
  const res = await raw(t, "/chat/completions", { body: { model: MODEL, messages: say(`third ${rand()}`) } });
  const body = await res.json();
  assertEquals([res.status, body.code, body.limit, body.limit_amount, body.remaining], [429, "prompt_quota_exceeded", "prompts", 1, 0]);
  assertEquals(body.error, { message: body.message, type: "insufficient_quota", code: "prompt_quota_exceeded", param: null });
  assert(String(body.upgrade).includes("Upgrade"));
});

Deno.test("the token quota is insufficient_quota too; the per-user rate limit is rate_limit_error, left to the client to retry", testOptions, async () => {
  const t = await tenant(roomy({ groq_tokens_per_month: 50 }));
  const { openai, calls } = client(t);
  const e = await rejection(openai.chat.completions.create({ model: MODEL, messages: say(`tokens ${rand()}`) }));
  assertEquals([e.status, e.code, e.type], [429, "token_quota_exceeded", "insufficient_quota"]);
  assertEquals(calls.n, 1, "tried once");
  assertEquals(e.headers?.get("x-ratelimit-limit-tokens"), "50", "the token headers on a token denial");
  assertEquals(e.headers?.get("x-ratelimit-remaining-tokens"), "50");

  await roomInMinute();
  const limited = await tenant(roomy({ ai_requests_per_minute: 1 }));
  const c = client(limited, { maxRetries: 0 });
  await c.openai.chat.completions.create({ model: MODEL, messages: say(`rate ${rand()}`) });
  const r = await rejection(c.openai.chat.completions.create({ model: MODEL, messages: say(`rate ${rand()}`) }));
  assertEquals([r.status, r.code, r.type], [429, "rate_limited", "rate_limit_error"]);
  assertEquals(r.headers?.get("x-should-retry"), null, "no retry veto: the window resets within the minute");
  assertEquals(r.headers?.get("retry-after"), r.headers?.get("x-ratelimit-reset-requests"));
  assertEquals(r.headers?.get("x-ratelimit-remaining-requests"), "0");
});

Deno.test("refusals the client cannot retry away: 403 model_not_allowed and not_a_member are PermissionDeniedError", testOptions, async () => {
  const t = await tenant(roomy());
  const { openai, calls } = client(t);
  const e = await rejection(openai.chat.completions.create({ model: OTHER_MODEL, messages: say("x") }));
  assert(e instanceof OpenAI.PermissionDeniedError, "a PermissionDeniedError");
  assertEquals([e.status, e.code, e.type, e.param], [403, "model_not_allowed", "permission_error", "model"]);
  assertEquals(e.headers?.get("x-should-retry"), "false");
  assertEquals(calls.n, 1);

  const stranger = await tenant(roomy());
  const s = client(t, { token: stranger.token });
  const n = await rejection(s.openai.chat.completions.create({ model: MODEL, messages: say("x") }));
  assert(n instanceof OpenAI.PermissionDeniedError);
  assertEquals([n.code, n.type, n.headers?.get("x-should-retry")], ["not_a_member", "permission_error", "false"]);
  const m = await rejection(s.openai.models.list());
  assertEquals([m.status, m.code], [403, "not_a_member"], "the model list is for members too");
});

Deno.test("bad fields are 400 BadRequestError invalid_body naming the field (param), and never reach Groq", testOptions, async () => {
  const t = await tenant(roomy());
  const { openai } = client(t);
  const marker = `bad ${rand()}`;
  const e = await rejection(openai.chat.completions.create({ model: MODEL, messages: say(marker), n: 2 }));
  assert(e instanceof OpenAI.BadRequestError, "a BadRequestError");
  assertEquals([e.status, e.code, e.type, e.param], [400, "invalid_body", "invalid_request_error", "n"]);
  assert(e.message.includes("n must be 1"), e.message);

  const ask = { model: MODEL, messages: say(marker) };
  for (
    const [bad, param] of [
      [{ top_p: 1.5 }, "top_p"],
      [{ top_p: "0.5" }, "top_p"],
      [{ stop: ["a", "b", "c", "d", "e"] }, "stop"],
      [{ stop: [""] }, "stop"],
      [{ stop: [1] }, "stop"],
      [{ stop: [] }, "stop"],
      [{ seed: 1.5 }, "seed"],
      [{ seed: "7" }, "seed"],
      [{ user: 42 }, "user"],
      [{ user: "u".repeat(257) }, "user"],
      [{ response_format: { type: "xml" } }, "response_format"],
      [{ response_format: "json_object" }, "response_format"],
      [{ response_format: { type: "json_object", extra: 1 } }, "response_format"],
      [{ response_format: { type: "json_schema" } }, "response_format"],
      [{ response_format: { type: "json_schema", json_schema: { name: "bad name!" } } }, "response_format"],
      [{ frequency_penalty: 2.5 }, "frequency_penalty"],
      [{ presence_penalty: -3 }, "presence_penalty"],
      [{ n: 0 }, "n"],
      [{ stream_options: { include_usage: true } }, "stream_options"],
      [{ stream: true, stream_options: { include_usage: "yes" } }, "stream_options"],
      [{ stream: true, stream_options: { other: true } }, "stream_options"],
      [{ temperature: 3 }, "temperature"],
      [{ logprobs: true }, "logprobs"],
      [{ tools: [] }, "tools"],
      [{ messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
    ] as [Json, string][]
  ) {
    const res = await raw(t, "/chat/completions", { body: { ...ask, ...bad } });
    const body = await res.json();
    assertEquals([res.status, body.code, body.error?.code, body.error?.type, body.error?.param],
      [400, "invalid_body", "invalid_body", "invalid_request_error", param], JSON.stringify(bad));
    assertEquals(body.error.message, body.message);
  }
  assertEquals(await received(marker), [], "none reached Groq");
  assertEquals((await aiRows(t.org)).length, 0, "and none was counted or logged");
});

Deno.test("the new fields are passed to Groq as given, and those that change the answer are part of the cache key", testOptions, async () => {
  const t = await tenant(roomy());
  const { openai } = client(t);
  const marker = `fields ${rand()}`;
  const fields = {
    top_p: 0.9,
    stop: ["\n\n", "END"],
    seed: 42,
    user: "end-user-7",
    response_format: { type: "json_object" as const },
    frequency_penalty: 0.5,
    presence_penalty: -0.5,
  };
  const first = await openai.chat.completions.create({ model: MODEL, messages: say(marker), n: 1, ...fields }).withResponse();
  assertEquals(first.response.headers.get("x-cache"), "miss");
  let sent = await received(marker);
  assertEquals(sent.length, 1);
  for (const [k, v] of Object.entries(fields)) assertEquals(sent[0][k], v, `${k} went to Groq as given`);
  assertEquals("n" in sent[0], false, "n (always 1) is left to Groq's default");

  const stop = await openai.chat.completions.create({ model: MODEL, messages: say(marker), ...fields, stop: "END" });
  assertEquals((await received(marker)).at(-1)!.stop, ["END"], "a single stop string goes as a one-element array");
  assert(stop.choices.length === 1);

  const hit = await openai.chat.completions.create({ model: MODEL, messages: say(marker), ...fields, user: "someone-else" })
    .withResponse();
  assertEquals(hit.response.headers.get("x-cache"), "hit", "user does not change the answer: the same cache entry");
  sent = await received(marker);
  assertEquals(sent.length, 2, "so it did not reach Groq");
  for (
    const change of [{ top_p: 0.8 }, { stop: ["STOP"] }, { seed: 43 }, { response_format: { type: "text" as const } },
      { frequency_penalty: 0.4 }, { presence_penalty: 0 }]
  ) {
    const res = await openai.chat.completions.create({ model: MODEL, messages: say(marker), ...fields, ...change }).withResponse();
    assertEquals(res.response.headers.get("x-cache"), "miss", `${JSON.stringify(change)} is a different request`);
  }
  assertEquals((await received(marker)).length, 8);

  // json_schema is passed through as given.
  const schema = { name: "answer", schema: { type: "object", properties: { a: { type: "string" } } }, strict: true };
  await openai.chat.completions.create({ model: MODEL, messages: say(`${marker} schema`), response_format: { type: "json_schema", json_schema: schema } });
  assertEquals((await received(`${marker} schema`))[0].response_format, { type: "json_schema", json_schema: schema });
});

Deno.test("models.list() lists exactly the models of the organization's plan", testOptions, async () => {
  const t = await tenant(roomy({ ai_models: [MODEL, "openai/gpt-oss-20b"] }));
  const { openai } = client(t);
  const page = await openai.models.list();
  assertEquals(page.data.map((m) => m.id).sort(), [MODEL, "openai/gpt-oss-20b"].sort());
  for (const m of page.data) {
    assertEquals([m.object, typeof m.created, m.owned_by], ["model", "number", "groq"]);
  }
  const res = await raw(t, "/models", { method: "GET" });
  const body = await res.json();
  assertEquals(body.object, "list");

  const none = await tenant(roomy({ ai_models: [] }));
  assertEquals((await client(none).openai.models.list()).data, [], "a plan without models lists none");

  let r = await raw(t, "/models", { method: "GET", org: null });
  assertEquals([r.status, (await r.json()).error.code], [400, "missing_organization_id"]);
  r = await raw(t, "/models", { method: "GET", org: "acme" });
  assertEquals([r.status, (await r.json()).error.code], [400, "invalid_organization_id"]);
  r = await raw(t, "/models", { method: "GET", org: crypto.randomUUID() });
  assertEquals([r.status, (await r.json()).code], [403, "not_a_member"], "an unknown organization: not a member");
});

Deno.test("routes: the bare URL and /chat/completions chat, /models lists; other paths 404, other methods 405", testOptions, async () => {
  const t = await tenant(roomy());
  const ask = { model: MODEL, messages: say(`route ${rand()}`) };
  for (const path of ["", "/chat/completions", "/chat/completions/", "/openai/v1/chat/completions"]) {
    const res = await raw(t, path, { body: ask });
    assertEquals(res.status, 200, `POST ${path || "/"}`);
    await res.body?.cancel();
  }
  for (const [method, path, status, code] of [
    ["GET", "/chat/completions", 405, "method_not_allowed"],
    ["GET", "", 405, "method_not_allowed"],
    ["POST", "/models", 405, "method_not_allowed"],
    ["POST", "/completions", 404, "not_found"],
    ["GET", "/models/llama-3.1-8b-instant", 404, "not_found"],
    ["POST", "/v1/chat/completions", 404, "not_found"],
  ] as [string, string, number, string][]) {
    const res = await raw(t, path, { method, body: method === "POST" ? ask : undefined });
    const body = await res.json();
    assertEquals([res.status, body.code, body.error?.code], [status, code, code], `${method} ${path}`);
    assertEquals(body.error.type, status === 404 ? "not_found_error" : "invalid_request_error");
  }
  const res = await raw(t, "/models", { method: "POST", body: {} });
  assertEquals(res.headers.get("allow"), "GET");
  await res.body?.cancel();
  const groqModels = await raw(t, "/openai/v1/models", { method: "GET" });
  assertEquals([groqModels.status, ((await groqModels.json()).data as Json[]).map((m) => m.id)], [200, [MODEL]],
    "groq-sdk's model path");
});

Deno.test("every ai-chat error has the envelope: the 401 of a token that is not a user's, a 413, and a 502", testOptions, async () => {
  const t = await tenant(roomy());
  const anon = await mintToken(t.owner, { role: "anon" });
  let res = await raw(t, "/chat/completions", { token: anon, body: { model: MODEL, messages: say("x") } });
  let body = await res.json();
  assertEquals([res.status, body.code], [401, "not_a_user"]);
  assertEquals(body.error, { message: body.message, type: "authentication_error", code: "not_a_user", param: null });
  const e = await rejection(client(t, { token: anon }).openai.models.list());
  assert(e instanceof OpenAI.AuthenticationError);
  assertEquals(e.code, "not_a_user");

  res = await raw(t, "/chat/completions", { body: { model: MODEL, messages: say("x".repeat(200 * 1024)) } });
  body = await res.json();
  assertEquals([res.status, body.error.code, body.error.type], [413, "body_too_large", "invalid_request_error"]);

  await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/groq`, {
    method: "POST",
    body: JSON.stringify({ fail_status: 500, fail_count: 1 }),
  }).then((r) => r.body?.cancel());
  const { openai, calls } = client(t, { maxRetries: 0 });
  const u = await rejection(openai.chat.completions.create({ model: MODEL, messages: say(`fail ${rand()}`) }));
  assert(u instanceof OpenAI.InternalServerError);
  assertEquals([u.status, u.code, u.type], [502, "upstream_error", "api_error"]);
  assertEquals(calls.n, 1);
});

Deno.test("CORS lets a browser read the rate-limit, request id, cache and retry headers", testOptions, async () => {
  const res = await fetch(base(), { method: "OPTIONS" });
  await res.body?.cancel();
  const exposed = (res.headers.get("access-control-expose-headers") ?? "").split(/,\s*/);
  for (
    const h of ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
      "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "x-ratelimit-limit",
      "x-request-id", "x-cache", "retry-after", "x-should-retry"]
  ) {
    assert(exposed.includes(h), `${h} is exposed`);
  }
});

Deno.test({ name: "close the test database connection", ...testOptions, fn: async () => await sql.end() });
