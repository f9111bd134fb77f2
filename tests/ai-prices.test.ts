// AI calls priced per model and charged in credits, end to end: ai-chat through the local functions
// server, the real database and the fake Groq, called with the openai and groq-sdk clients. Past
// its token quota a plan naming groq_tokens_overage_event answers on credits while they last, then
// 429 insufficient_credits; a spend cap answers 429 ai_spend_cap_reached and alerts once per
// threshold; tools and a response_format schema are part of the reservation; an upstream timeout
// charges the prompt. Prices are the seed's (public.ai_model_prices).
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import Groq from "npm:groq-sdk@1.6.0";
import OpenAI from "npm:openai@7.59.0";
import { adminSql, afterResponses, fakeControl, functionsUrl } from "./helpers.ts";
import { type AiTenant, aiTenant } from "./ai-fixtures.ts";

type Json = Record<string, unknown>;

const sql = adminSql(4);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const base = () => functionsUrl("ai-chat");
const MODEL = "llama-3.1-8b-instant";
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

type Tenant = AiTenant;

/** A fresh organization with an owner on an active plan with these features, and `credits` operator credits. */
async function tenant(features: Json, credits = 0): Promise<Tenant> {
  const t = await aiTenant(sql, "t_aip", { ai_requests_per_minute: 1000, ai_prompts_per_day: 10000, ai_models: [MODEL], ...features });
  if (credits > 0) await sql`select billing.operator_grant_credits(${t.org}, ${credits}, null, 'ai-prices test')`;
  return t;
}

const openaiOf = (t: Tenant) =>
  new OpenAI({ baseURL: base(), apiKey: t.token, defaultHeaders: { "x-organization-id": t.org }, maxRetries: 0 });
const groqOf = (t: Tenant) =>
  new Groq({ baseURL: base(), apiKey: t.token, defaultHeaders: { "x-organization-id": t.org }, maxRetries: 0 });

async function balance(org: string): Promise<number> {
  await afterResponses(); // ai-chat settles after it answers
  const [{ n }] = await sql`select billing.available_credits(${org})::int as n`;
  return n;
}

async function used(org: string, metric: string): Promise<number> {
  await afterResponses(); // ai-chat settles after it answers
  const [{ n }] = await sql`select coalesce(sum(count), 0)::int as n from public.usage_quotas
    where organization_id = ${org} and metric = ${metric} and window_unit = 'month'
      and window_start <= now() and window_start > now() - interval '1 month'`;
  return n;
}

async function rows(org: string) {
  await afterResponses(); // ai-chat settles after it answers
  return await sql`select status::text, error_code, reserved_tokens::int, prompt_tokens, completion_tokens,
      counted_tokens::int, reserved_paise::int, cost_paise::text, charged_paise::int
    from public.ai_requests where organization_id = ${org} order by created_at, id`;
}

async function ledgerProblems(org: string): Promise<number> {
  await afterResponses(); // ai-chat settles after it answers
  const [{ n }] = await sql`select count(*)::int as n from billing.credit_ledger_problems() where organization_id = ${org}`;
  return n;
}

/** The error a promise rejects with (fails when it resolves): status, OpenAI's error code and type, headers. */
async function rejection(p: Promise<unknown>): Promise<{ status?: number; code?: unknown; type?: unknown; headers?: Headers }> {
  try {
    await p;
  } catch (e) {
    // openai sets code and type on the error; groq-sdk keeps them in its `error` (the body's envelope).
    const err = e as { status?: number; code?: unknown; type?: unknown; headers?: Headers; error?: Json };
    assert(err.status !== undefined, `an API error, not ${e}`);
    return { status: err.status, code: err.code ?? err.error?.code, type: err.type ?? err.error?.type, headers: err.headers };
  }
  throw new Error("expected the call to fail");
}

Deno.test("past the token quota the openai client is answered on credits while they last, then 429 insufficient_credits", testOptions, async () => {
  await fakeControl("/__control/groq", { reset: true });
  const t = await tenant({ groq_tokens_per_month: 200, groq_tokens_overage_event: "ai_inference" }, 2);
  const openai = openaiOf(t);
  const ask = (max_tokens: number) =>
    openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: `quota ${rand()}` }], max_tokens });

  await ask(16);
  assertEquals([await used(t.org, "groq_tokens"), await balance(t.org)], [20, 2], "within the quota: tokens, no credits");
  // 92 + 16 bytes of prompt estimate + 100 answer tokens do not fit in the 180 tokens left.
  const a = await ask(100);
  const b = await ask(100);
  assert(a.choices[0].message.content && b.choices[0].message.content, "both answered");
  assertEquals([await used(t.org, "groq_tokens"), await balance(t.org)], [20, 0],
    "past the quota: no tokens counted, one credit (one paisa) each");
  const err = await rejection(ask(100));
  assertEquals([err.status, err.code, err.type], [429, "insufficient_credits", "insufficient_quota"]);
  assertEquals(err.headers?.get("x-should-retry"), "false", "the client is told not to retry");

  const log = await rows(t.org);
  assertEquals(log.map((r) => [r.status, r.error_code, r.counted_tokens > 0, r.charged_paise]),
    [["completed", null, true, 1], ["completed", null, false, 1], ["completed", null, false, 1], ["denied", "insufficient_credits", false, null]]);
  const [{ charged }] = await sql`select coalesce(sum(charged), 0)::int as charged from public.credit_charges
    where organization_id = ${t.org} and event_code = 'ai_inference'`;
  assertEquals(charged, 2, "two charges, one credit each");
  assertEquals(await ledgerProblems(t.org), 0, "the ledger agrees");
});

Deno.test("a spend cap answers groq-sdk 429 ai_spend_cap_reached and alerts once, for the highest threshold crossed", testOptions, async () => {
  await fakeControl("/__control/groq", { reset: true });
  const t = await tenant({ groq_tokens_per_month: 1_000_000, ai_spend_paise_per_month: 1 });
  const groq = groqOf(t);
  const ask = () =>
    groq.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: `cap ${rand()}` }], max_tokens: 16 });
  await ask();
  assertEquals(await used(t.org, "ai_spend_paise"), 1, "the call cost a fraction of a paisa, counted as 1");
  const err = await rejection(ask());
  assertEquals([err.status, err.code], [429, "ai_spend_cap_reached"]);
  assertEquals(err.headers?.get("x-should-retry"), "false");
  assert(Number(err.headers?.get("retry-after")) > 0, "retry-after: when the month turns");
  const alerts = await sql`select payload ->> 'threshold' as threshold from public.notifications
    where organization_id = ${t.org} and kind = 'quota_threshold' and payload ->> 'metric' = 'ai_spend_paise'
    order by (payload ->> 'threshold')::int`;
  assertEquals(alerts.map((a) => a.threshold), ["100"], "one settlement from 0 to 100 %: one alert, for 100 %");
  const log = await rows(t.org);
  assertEquals([log[0].charged_paise, Number(log[0].cost_paise) > 0 && Number(log[0].cost_paise) < 1], [1, true],
    "the exact cost is kept beside the paisa charged");
});

Deno.test("tools and a response_format schema are reserved with the messages, and reach Groq", testOptions, async () => {
  await fakeControl("/__control/groq", { reset: true });
  const t = await tenant({ groq_tokens_per_month: 1_000_000 });
  const openai = openaiOf(t);
  const messages = [{ role: "user" as const, content: `weather ${rand()}` }];
  const tools = [{
    type: "function" as const,
    function: {
      name: "get_weather",
      description: "The weather now in a city, with the temperature in degrees Celsius and the chance of rain.",
      parameters: {
        type: "object",
        properties: { city: { type: "string", description: "The city's name" }, units: { type: "string", enum: ["c", "f"] } },
        required: ["city"],
      },
    },
  }];
  const schema = {
    type: "object",
    properties: { summary: { type: "string" }, temperature: { type: "number" } },
    required: ["summary"],
  };
  await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 32 });
  await openai.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 32,
    tools,
    tool_choice: "auto",
    response_format: { type: "json_schema", json_schema: { name: "weather", schema } },
  });
  const [bare, rich] = await rows(t.org);
  const extra = new TextEncoder().encode(JSON.stringify(tools)).length +
    new TextEncoder().encode(JSON.stringify(schema)).length;
  assert(rich.reserved_tokens - bare.reserved_tokens >= extra,
    `the tools and the schema (${extra} bytes) are reserved: ${bare.reserved_tokens} then ${rich.reserved_tokens}`);
  const { requests } = await fakeControl("/__control/groq/requests");
  const last = requests[requests.length - 1] as Json;
  assertEquals([last.tools, last.tool_choice], [tools, "auto"], "Groq gets the tools as given");
});

Deno.test("an upstream timeout charges the prompt (in credits and tokens), not nothing (handler in-process)", testOptions, async () => {
  const { aiChat } = await import("../supabase/functions/ai-chat/handler.ts");
  const { handle } = await import("../supabase/functions/_shared/http.ts");
  await fakeControl("/__control/groq", { reset: true });
  const t = await tenant({ groq_tokens_per_month: 1_000_000, ai_credit_event: "ai_inference" }, 10);
  await fakeControl("/__control/groq", { latency_ms: 5000 });
  try {
    const overrides: Record<string, string> = { AI_UPSTREAM_TIMEOUT_MS: "300" };
    const handler = handle("ai-chat", (req) => aiChat(req, (name) => overrides[name] ?? Deno.env.get(name)));
    const res = await handler(new Request(base(), {
      method: "POST",
      headers: { authorization: `Bearer ${t.token}`, "x-organization-id": t.org, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: `slow ${rand()}` }] }),
    }));
    assertEquals([res.status, (await res.json()).code], [504, "upstream_timeout"]);
    const [row] = await rows(t.org);
    assertEquals([row.status, row.error_code, row.completion_tokens], ["upstream_timeout", "upstream_timeout", 0]);
    assert(row.prompt_tokens > 0 && row.counted_tokens === row.prompt_tokens, "settled at the prompt's estimate");
    assertEquals(await used(t.org, "groq_tokens"), row.prompt_tokens, "the prompt's tokens stay counted");
    assert(row.charged_paise >= 1 && row.charged_paise < row.reserved_paise + 1, "charged the prompt's cost");
    assertEquals(await balance(t.org), 10 - row.charged_paise, "in credits");
    assertEquals(await ledgerProblems(t.org), 0);
  } finally {
    await fakeControl("/__control/groq", { reset: true });
  }
});
