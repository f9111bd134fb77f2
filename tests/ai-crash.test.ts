// The database crashes while Groq answers: `kill -9` of the postmaster of a cluster of this test's
// own (scripts/lib/pg.mjs, never the shared test cluster), with an ai-chat handler in a process
// of its own pointed at it and the fake Groq answering slowly. After a restart the reservation is
// still counted, and the stale job expires it counted: the call Groq answered is paid for.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import postgres from "npm:postgres@4.2.0";
import { tempCluster } from "../scripts/lib/pg.mjs";
import { mintToken } from "./helpers.ts";
import { groqControl } from "./ai-fixtures.ts";

const testOptions = { sanitizeOps: false, sanitizeResources: false };
const MODEL = "llama-3.1-8b-instant";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Until fn() stops throwing (or `ms` pass: then its last error). */
async function retry<T>(fn: () => Promise<T>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > end) throw e;
      await sleep(200);
    }
  }
}

Deno.test("kill -9 of the postmaster while Groq answers: after the restart the reservation is counted, and expires counted", testOptions, async () => {
  const db = await tempCluster("ai-crash");
  let child: Deno.ChildProcess | undefined;
  let sql: postgres.Sql | undefined;
  try {
    await db.init();
    await db.start();
    await db.prepare({ seed: false });
    const connect = () => postgres(db.url, { max: 2, prepare: false, onnotice: () => {} });
    sql = connect();

    const user = crypto.randomUUID();
    const org = crypto.randomUUID();
    await sql`insert into auth.users (id, email, role, aud) values (${user}, 'crash@test.local', 'authenticated', 'authenticated')`;
    const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, features)
      values ('t_ai_crash', 't_ai_crash', 'pro', 'month', 100, ${JSON.stringify({
      max_members: 10,
      ai_requests_per_minute: 100,
      ai_prompts_per_day: 100,
      groq_tokens_per_month: 100000,
      ai_models: [MODEL],
    })}::text::jsonb) returning id`;
    await sql`insert into public.organizations (id, name) values (${org}, 'crash org')`;
    await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
      values (${org}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
    await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${user}, 'owner')`;

    await groqControl({ reset: true });
    await groqControl({ latency_ms: 3000 });
    const token = await mintToken(user);
    const script = `
      const { handler } = await import(${JSON.stringify(new URL("../supabase/functions/ai-chat/handler.ts", import.meta.url).href)});
      const res = await handler(new Request("http://local/functions/v1/ai-chat", {
        method: "POST",
        headers: { authorization: "Bearer ${token}", "x-organization-id": "${org}", "content-type": "application/json" },
        body: JSON.stringify({ model: "${MODEL}", messages: [{ role: "user", content: "crash the database" }] }),
      }));
      console.log(JSON.stringify({ status: res.status }));
      Deno.exit(0);
    `;
    child = new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: { SUPABASE_DB_URL: db.url, SUPABILL_LOG: "off" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();

    // The reservation is committed, then Groq works on it for 3 s: kill the postmaster meanwhile.
    const pending = await retry(async () => {
      const [row] = await sql!`select request_id, reserved_tokens::int from public.ai_requests where organization_id = ${org}`;
      if (!row) throw new Error("no reservation yet");
      return row;
    }, 10_000);
    await sleep(300);
    const postmaster = Number(fs.readFileSync(path.join(db.data, "postmaster.pid"), "utf8").split("\n")[0]);
    Deno.kill(postmaster, "SIGKILL");
    await sql.end({ timeout: 0 }).catch(() => {});
    sql = undefined;

    const out = await child.output();
    child = undefined;
    const answer = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop() as string);
    assertEquals(answer.status, 200, "the client got Groq's answer (its settlement could not be recorded)");
    await groqControl({ reset: true });

    // Restart (the orphaned backends exit when they notice the postmaster is gone).
    await retry(() => db.start());
    sql = connect();
    const usage = async () => {
      const [u] = await sql!`select
          (select status::text from public.ai_requests where request_id = ${pending.request_id}) as status,
          (select counted_tokens::int from public.ai_requests where request_id = ${pending.request_id}) as counted_tokens,
          (select coalesce(sum(count), 0)::int from public.usage_quotas where organization_id = ${org}
             and metric = 'groq_tokens' and window_unit = 'month') as tokens,
          (select coalesce(sum(count), 0)::int from public.usage_quotas where organization_id = ${org}
             and metric = 'ai_prompts' and window_unit = 'day') as prompts`;
      return u;
    };
    assertEquals(await retry(usage), { status: "pending", counted_tokens: null, tokens: pending.reserved_tokens, prompts: 1 },
      "after the restart the reservation is still pending and counted");

    const expired = await sql.begin(async (tx) => {
      await tx`select set_config('billing.now', (now() + interval '16 minutes')::text, true)`;
      const [{ n }] = await tx`select billing.job_ai_release_stale_reservations() as n`;
      return n;
    });
    assertEquals(expired, 1, "the stale job takes it 16 minutes later");
    assertEquals(await usage(), {
      status: "expired",
      counted_tokens: pending.reserved_tokens,
      tokens: pending.reserved_tokens,
      prompts: 1,
    }, "expired, counted at its reservation: the tokens and the prompt stay counted");
  } finally {
    try {
      child?.kill("SIGKILL");
    } catch {
      // already gone
    }
    await sql?.end({ timeout: 0 }).catch(() => {});
    await groqControl({ reset: true }).catch(() => {});
    await db.remove();
  }
});
