// Nightly AI batches end to end, through the functions server (the ai-batch worker) and the fake
// Groq Batch API (tests/fakes/groq-batches.ts): submitted and reserved as a member, uploaded at the
// settings' hour (the database's test clock), answered after a delay (the fakes' clock), settled
// per request at the batch price with one failed line released, the notification queued; a kill -9
// of the worker between Groq's batch and our record leaves one batch at Groq, recovered by its
// metadata and settled once; an expired batch run once more, then released with nothing charged.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type postgres from "npm:postgres@4.2.0";
import { estimatePromptTokens, parseChatBody } from "../supabase/functions/ai-chat/request.ts";
import { adminSql, createUser, env, fakeControl, functionsUrl } from "./helpers.ts";

const testOptions = { sanitizeOps: false, sanitizeResources: false };
const sql = adminSql();
const MODEL = "llama-3.1-8b-instant";
// The seed's price of MODEL (paise per million): 430 input, 688 output; a batch pays half, rounded up.
const BATCH_INPUT = 215;
const BATCH_OUTPUT = 344;
type Json = Record<string, unknown>;

async function worker(): Promise<Json> {
  const key = JSON.parse(env("SUPABASE_SECRET_KEYS")).default as string;
  const res = await fetch(functionsUrl("ai-batch"), {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: "{}",
  });
  const body = await res.json();
  assertEquals(res.status, 200, JSON.stringify(body));
  return body;
}

/** The database's clock (billing.now() of every connection) and the fakes' clock at `at`; null: real time. */
async function clockAt(at: Date | null) {
  if (at === null) {
    await sql`delete from billing.test_clock`;
    await fakeControl("/__control/clock", { at: null });
    return;
  }
  await sql`insert into billing.test_clock (simulated_at) values (${at}) on conflict (id)
    do update set simulated_at = excluded.simulated_at, updated_at = now()`;
  await fakeControl("/__control/clock", { at: at.toISOString() });
}

/** Runs fn as the signed-in user, as PostgREST does. */
function asUser<T>(user: string, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
                    set_config('request.jwt.claims', ${JSON.stringify({ sub: user, role: "authenticated" })}, true)`;
    return await fn(tx);
  }) as Promise<T>;
}

async function submit(user: string, org: string, requests: unknown[]): Promise<string> {
  const [{ id }] = await asUser(user, (tx) =>
    tx`select public.submit_ai_batch(${org}, ${JSON.stringify(requests)}::text::jsonb) as id`
  );
  return id as string;
}

/** An organization on a plan with nightly batches (and a per-user rate limit of 1 a minute, which batches do not take). */
async function setup(label: string) {
  const user = await createUser(sql);
  const stranger = await createUser(sql);
  const code = `t_aib_${label}_${crypto.randomUUID().slice(0, 8)}`;
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, features)
    values (${code}, ${code}, 'pro', 'month', 100, ${JSON.stringify({
    max_members: 10,
    ai_batch: true,
    max_ai_batch_requests: 50,
    ai_requests_per_minute: 1,
    ai_prompts_per_day: 1000,
    groq_tokens_per_month: 10_000_000,
    ai_models: [MODEL],
  })}::text::jsonb) returning id`;
  const [{ id: org }] = await sql`insert into public.organizations (name) values (${code}) returning id`;
  await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${org}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${user}, 'member')`;
  return { user, stranger, org: org as string };
}

const question = (i: number) => `Question number ${i}: is this signal worth a second look?`;
const body = (i: number) => ({ model: MODEL, messages: [{ role: "user", content: question(i) }], max_tokens: 100 });
/** ai-chat's estimate: 64 a request, the bytes of the text and role, 8 a message. */
const estimate = (i: number) => 64 + new TextEncoder().encode(question(i)).length + 4 + 8;
/** The fake's count: ceil(characters / 4); its answer is 16 tokens. */
const promptTokens = (i: number) => Math.ceil(question(i).length / 4);

/** A test that failed half way leaves no batch for the next test's worker to find. */
async function closeOpenBatches() {
  await sql`delete from public.ai_batches where state in ('queued', 'uploading', 'submitted')`;
}

async function dueAt(batch: string): Promise<Date> {
  const [{ due_at }] = await sql`select due_at from public.ai_batches where id = ${batch}`;
  return due_at as Date;
}

Deno.test("a nightly batch of 50: reserved at submission, uploaded at the hour, settled per request at the batch price, one failed line released, one notification", testOptions, async () => {
  try {
    const { user, stranger, org } = await setup("fifty");
    await fakeControl("/__control/reset", {});
    await fakeControl("/__control/groq/batches", { completion_delay_ms: 3_600_000, fail_lines: [7] });
    const batch = await submit(user, org, Array.from({ length: 50 }, (_, i) => body(i)));

    // Reserved now, one AI request each, as an interactive call reserves (without the rate limit).
    const reserved = await sql`select r.position, a.status::text, a.batch, a.reserved_tokens::int, a.max_tokens
      from public.ai_batch_requests r join public.ai_requests a using (request_id)
      where r.batch_id = ${batch} order by r.position`;
    assertEquals(reserved.map((r) => [r.position, r.status, r.batch, r.reserved_tokens, r.max_tokens]),
      Array.from({ length: 50 }, (_, i) => [i + 1, "pending", true, estimate(i) + 100, 100]));
    const counted = async () => (await sql`select metric, state::text as state, sum(amount)::int as amount from public.usage_metrics
      where organization_id = ${org} group by 1, 2 order by 1, 2`).map((r) => [r.metric, r.state, r.amount]);
    const reservedTokens = Array.from({ length: 50 }, (_, i) => estimate(i) + 100).reduce((a, b) => a + b);
    assertEquals(await counted(), [["ai_prompts", "counted", 50], ["groq_tokens", "counted", reservedTokens]]);

    // Not due before the night's hour; due at it.
    assertEquals((await worker()).claimed, 0);
    const due = await dueAt(batch);
    await clockAt(new Date(due.getTime() + 60_000));
    const first = await worker();
    assertEquals([first.claimed, first.uploaded], [1, 1]);

    const fake = await fakeControl("/__control/groq/batches");
    assertEquals(fake.batches.length, 1);
    const [groqBatch] = fake.batches;
    assertEquals([groqBatch.metadata, groqBatch.completion_window, groqBatch.endpoint],
      [{ supabill_batch_id: batch, supabill_run: "1" }, "24h", "/v1/chat/completions"]);
    const input = await (await fetch(`${env("FAKE_UPSTREAMS_URL")}/openai/v1/files/${groqBatch.input_file_id}/content`, {
      headers: { authorization: `Bearer ${env("GROQ_API_KEY")}` },
    })).text();
    const lines = input.trim().split("\n").map((l) => JSON.parse(l));
    const ids = (await sql`select request_id from public.ai_batch_requests where batch_id = ${batch} order by position`)
      .map((r) => r.request_id);
    assertEquals(lines.map((l) => [l.custom_id, l.method, l.url, l.body.max_completion_tokens, l.body.messages[0].content]),
      ids.map((id, i) => [id, "POST", "/v1/chat/completions", 100, question(i)]));

    // Groq is still working: polled, nothing settled.
    assertEquals((await worker()).waiting, 1);
    await clockAt(new Date(due.getTime() + 2 * 3_600_000));
    const done = await worker();
    assertEquals([done.settled, (done.batches as Json[])[0].settled, (done.batches as Json[])[0].failed], [1, 49, 1],
      JSON.stringify(done));

    const rows = await sql`select r.position, r.state::text, a.status::text, a.prompt_tokens, a.completion_tokens,
        a.counted_tokens::int, a.cost_paise::text, a.charged_paise::int, r.error_code
      from public.ai_batch_requests r join public.ai_requests a using (request_id)
      where r.batch_id = ${batch} order by r.position`;
    const cost = (i: number) => (promptTokens(i) * BATCH_INPUT + 16 * BATCH_OUTPUT) / 1_000_000;
    assertEquals(rows.map((r) => [r.position, r.state, r.status, r.prompt_tokens, r.completion_tokens, r.counted_tokens,
      Number(r.cost_paise), r.charged_paise, r.error_code]),
      Array.from({ length: 50 }, (_, i) => i === 6
        ? [7, "failed", "upstream_error", null, null, 0, 0, 0, "groq_400"]
        : [i + 1, "settled", "completed", promptTokens(i), 16, promptTokens(i) + 16, cost(i), Math.ceil(cost(i)), null]));
    const settledTokens = Array.from({ length: 50 }, (_, i) => i === 6 ? 0 : promptTokens(i) + 16).reduce((a, b) => a + b);
    assertEquals(await counted(), [
      ["ai_prompts", "released", 0],
      ["ai_prompts", "settled", 49],
      ["groq_tokens", "released", 0],
      ["groq_tokens", "settled", settledTokens],
    ]);

    const notes = await sql`select kind::text, payload from public.notifications where organization_id = ${org}`;
    const charged = Array.from({ length: 50 }, (_, i) => i === 6 ? 0 : Math.ceil(cost(i))).reduce((a, b) => a + b);
    assertEquals(notes.map((n) => [n.kind, n.payload.batch_id, n.payload.state, n.payload.requests, n.payload.settled,
      n.payload.failed, n.payload.charged_paise]), [["ai_batch_completed", batch, "completed", 50, 49, 1, charged]]);

    // The member reads the answers; a stranger learns nothing.
    const answer = (await asUser(user, (tx) => tx`select public.get_ai_batch(${batch}) as b`))[0].b;
    assertEquals([answer.state, answer.settled, answer.failed, answer.charged_paise, answer.requests.length], ["completed", 49, 1, charged, 50]);
    assertEquals([answer.requests[0].state, answer.requests[0].answer.role, typeof answer.requests[0].answer.content],
      ["settled", "assistant", "string"]);
    assertEquals(answer.requests[6].state, "failed");
    const refused = await asUser(stranger, (tx) => tx`select public.get_ai_batch(${batch})`).then(() => "ok", (e) => e.code);
    assertEquals(refused, "P0002");

    // Nothing left to do; the results read again settle nothing.
    assertEquals((await worker()).claimed, 0);
    const [again] = await sql`select * from billing.settle_ai_batch(${batch}, 1, '[]'::jsonb)`;
    assertEquals([again.settled, again.failed], [0, 0]);
    assertEquals((await sql`select count(*)::int as n from public.notifications where organization_id = ${org}`)[0].n, 1);
  } finally {
    await closeOpenBatches();
    await clockAt(null);
    await fakeControl("/__control/reset", {});
  }
});

Deno.test("kill -9 of the worker between Groq's batch and our record: one batch at Groq, recovered by its metadata, settled once", testOptions, async () => {
  let child: Deno.ChildProcess | undefined;
  try {
    const { user, org } = await setup("crash");
    await fakeControl("/__control/reset", {});
    // Groq makes the batch, then takes 30 s to answer: the worker dies waiting.
    await fakeControl("/__control/groq/batches", { create_hang_ms: 30_000, completion_delay_ms: 0 });
    const batch = await submit(user, org, [body(1), body(2), body(3)]);
    const due = await dueAt(batch);
    await clockAt(new Date(due.getTime() + 60_000));

    const key = JSON.parse(env("SUPABASE_SECRET_KEYS")).default as string;
    const script = `
      const { handler } = await import(${JSON.stringify(new URL("../supabase/functions/ai-batch/handler.ts", import.meta.url).href)});
      await handler(new Request("http://local/functions/v1/ai-batch", {
        method: "POST", headers: { authorization: "Bearer ${key}", "content-type": "application/json" }, body: "{}",
      }));
    `;
    child = new Deno.Command(Deno.execPath(), { args: ["eval", script], stdout: "null", stderr: "null" }).spawn();
    for (let i = 0; ; i++) {
      const fake = await fakeControl("/__control/groq/batches");
      if (fake.batches.length === 1) break;
      assert(i < 300, "the worker never created the Groq batch");
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill("SIGKILL");
    await child.status;
    child = undefined;
    const [between] = await sql`select state::text, run, groq_batch_id from public.ai_batches where id = ${batch}`;
    assertEquals([between.state, between.run, between.groq_batch_id], ["uploading", 1, null]);

    // Leased: nothing happens until the lease runs out; then the worker asks Groq first.
    await fakeControl("/__control/groq/batches", { create_hang_ms: 0 });
    assertEquals((await worker()).claimed, 0);
    await clockAt(new Date(due.getTime() + 10 * 60_000));
    const recovered = await worker();
    assertEquals([recovered.claimed, recovered.recovered, recovered.uploaded], [1, 1, 0], JSON.stringify(recovered));
    const settled = await worker();
    assertEquals([settled.settled, (settled.batches as Json[])[0].settled], [1, 3]);

    const fake = await fakeControl("/__control/groq/batches");
    assertEquals([fake.batches.length, fake.files.filter((f: Json) => f.purpose === "batch").length], [1, 1]);
    assertEquals(fake.calls.map((c: Json) => c.route),
      ["files.post", "batches.post", "batches.get", "batches.get", "files.get/content"]);
    const [row] = await sql`select state::text, groq_batch_id, settled_count, failed_count from public.ai_batches where id = ${batch}`;
    assertEquals([row.state, row.groq_batch_id, row.settled_count, row.failed_count], ["completed", fake.batches[0].id, 3, 0]);
    const usage = await sql`select metric, state::text, count(*)::int as n from public.usage_metrics
      where organization_id = ${org} group by 1, 2 order by 1, 2`;
    assertEquals(usage.map((u) => [u.metric, u.state, u.n]), [["ai_prompts", "settled", 3], ["groq_tokens", "settled", 3]]);
  } finally {
    await closeOpenBatches();
    if (child) {
      child.kill("SIGKILL");
      await child.status;
    }
    await clockAt(null);
    await fakeControl("/__control/reset", {});
  }
});

Deno.test("a batch Groq expires is run once more, then released: nothing charged, the notification says so", testOptions, async () => {
  try {
    const { user, org } = await setup("expired");
    await fakeControl("/__control/reset", {});
    await fakeControl("/__control/groq/batches", { outcome: "expired", completion_delay_ms: 0 });
    const batch = await submit(user, org, [body(1), body(2)]);
    const due = await dueAt(batch);
    await clockAt(new Date(due.getTime() + 60_000));

    const steps = [];
    for (let i = 0; i < 4; i++) {
      const r = await worker();
      steps.push([r.uploaded, r.retried, r.released]);
    }
    assertEquals(steps, [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]);
    const fake = await fakeControl("/__control/groq/batches");
    assertEquals(fake.batches.map((b: Json) => [b.status, (b.metadata as Json).supabill_run]),
      [["expired", "1"], ["expired", "2"]]);

    const rows = await sql`select r.state::text, a.status::text, a.counted_tokens::int, a.charged_paise::int, r.error_code
      from public.ai_batch_requests r join public.ai_requests a using (request_id) where r.batch_id = ${batch}`;
    assertEquals(rows.map((r) => [r.state, r.status, r.counted_tokens, r.charged_paise, r.error_code]),
      [["released", "upstream_error", 0, 0, "batch_expired"], ["released", "upstream_error", 0, 0, "batch_expired"]]);
    const usage = await sql`select metric, state::text, sum(amount)::int as amount from public.usage_metrics
      where organization_id = ${org} group by 1, 2 order by 1, 2`;
    assertEquals(usage.map((u) => [u.metric, u.state, u.amount]), [["ai_prompts", "released", 0], ["groq_tokens", "released", 0]]);
    const notes = await sql`select payload from public.notifications where organization_id = ${org} and kind = 'ai_batch_completed'`;
    assertEquals(notes.map((n) => [n.payload.state, n.payload.settled, n.payload.failed, n.payload.charged_paise]),
      [["released", 0, 2, 0]]);
  } finally {
    await closeOpenBatches();
    await clockAt(null);
    await fakeControl("/__control/reset", {});
  }
});

// The batch's SQL checks agree with ai-chat's parser on what is a valid request (the batch refuses
// stream, which ai-chat takes), and its prompt estimate is ai-chat's (at least, for tools' JSON).
Deno.test("submit_ai_batch validates as ai-chat validates, and estimates the prompt as ai-chat does", testOptions, async () => {
  const m = (content: unknown, extra: Json = {}) => ({ role: "user", content, ...extra });
  const bodies: Json[] = [
    { model: MODEL, messages: [m("hi")] },
    { model: MODEL, messages: [m("hi")], max_tokens: 0 },
    { model: MODEL, messages: [m("hi")], max_tokens: 131073 },
    { model: MODEL, messages: [m("hi")], max_tokens: 5, max_completion_tokens: 6 },
    { model: MODEL, messages: [m("hi")], max_completion_tokens: 7 },
    { model: MODEL, messages: [] },
    { model: MODEL, messages: [m(42)] },
    { model: MODEL, messages: [m([{ type: "text", text: "a" }, { type: "text", text: "b" }])] },
    { model: MODEL, messages: [m([{ type: "image_url", image_url: "x" }])] },
    { model: MODEL, messages: [{ role: "robot", content: "x" }] },
    { model: MODEL, messages: [m("x", { name: "bad name" })] },
    { model: MODEL, messages: [m("x", { extra: 1 })] },
    { model: MODEL, messages: [{ role: "tool", content: "x" }] },
    { model: MODEL, messages: [{ role: "tool", content: "x", tool_call_id: "call_1" }] },
    { model: MODEL, messages: [m("hi")], temperature: 2.5 },
    { model: MODEL, messages: [m("hi")], top_p: 0.5, frequency_penalty: -2, presence_penalty: 2 },
    { model: MODEL, messages: [m("hi")], n: 2 },
    { model: MODEL, messages: [m("hi")], stop: ["a", "b", "c", "d", "e"] },
    { model: MODEL, messages: [m("hi")], stop: "END", seed: 7, user: "u1" },
    { model: MODEL, messages: [m("hi")], logprobs: true },
    { model: MODEL, messages: [m("hi")], tool_choice: "auto" },
    { model: MODEL, messages: [m("hi")], tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }], tool_choice: { type: "function", function: { name: "f" } } },
    { model: MODEL, messages: [m("hi")], response_format: { type: "json_object" } },
    { model: MODEL, messages: [m("hi")], response_format: { type: "xml" } },
    { model: "bad model!", messages: [m("hi")] },
  ];
  for (const b of bodies) {
    let ts = "ok";
    try {
      parseChatBody(b);
    } catch (e) {
      ts = `refused: ${(e as Error).message}`;
    }
    const [{ problem }] = await sql`select billing.ai_batch_request_problem(${JSON.stringify(b)}::text::jsonb,
      ${JSON.stringify([MODEL])}::text::jsonb) as problem`;
    assertEquals(problem === null, ts === "ok", `${JSON.stringify(b)}: ai-chat ${ts}, batch ${problem ?? "ok"}`);
  }
  for (const b of bodies.filter((x) => x.model === MODEL)) {
    let chat;
    try {
      chat = parseChatBody(b);
    } catch {
      continue;
    }
    const [{ n }] = await sql`select billing.ai_batch_prompt_tokens(${JSON.stringify(b)}::text::jsonb) as n`;
    if (b.tools || b.response_format) assert(n >= estimatePromptTokens(chat), `${JSON.stringify(b)}: ${n}`);
    else assertEquals(n, estimatePromptTokens(chat), JSON.stringify(b));
  }
});

Deno.test("cleanup", testOptions, async () => {
  await sql.end();
});
