// The AI gateway's lock order (the banner of supabase/schemas/10_ai_gateway.sql): every path
// takes one organization's locks in one order, so concurrent calls wait, never deadlock (40P01).
// Found in review: billing.ai_reserve locked the ai_spend_paise windows before the groq_tokens
// windows while billing.ai_settle settled groq_tokens first, then ai_spend_paise: 16 connections
// reserving and settling for one organization with a spend cap and a token quota deadlocked in
// about half of their pairs. The second test adds the credit lock (`ai_credit_event`) and releases.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { adminSql, env } from "./helpers.ts";

const MODEL = "llama-3.3-70b-versatile";
const WORKERS = 16;
const ROUNDS = 10;
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 12);

/** An organization on a plan with `features`, WORKERS members and `credits` operator credits. */
async function organization(sql: postgres.Sql, features: Record<string, unknown>, credits = 0) {
  const code = `lo_${rand()}`;
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, price_cents, features)
    values (${code}, ${code}, 'pro', 100000, ${sql.json({ ai_models: [MODEL], max_members: 100, ...features })})
    returning id`;
  const [{ id: org }] = await sql`insert into public.organizations (name) values (${code}) returning id`;
  await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${org}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
  const users: string[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const [{ id }] = await sql`insert into auth.users (id, email) values (gen_random_uuid(), ${`${code}-${i}@t.local`})
      returning id`;
    await sql`insert into public.organization_members (organization_id, user_id, role)
      values (${org}, ${id}, ${i === 0 ? "owner" : "member"})`;
    users.push(id);
  }
  if (credits > 0) await sql`select billing.operator_grant_credits(${org}, ${credits}, null, 'ai lock order test')`;
  return { org: org as string, users };
}

/**
 * WORKERS connections, each ROUNDS times: reserve a call, then settle it (or, with `release`,
 * every third call is released as an upstream error). Returns the SQLSTATE of every failure.
 */
async function hammer(org: string, users: string[], release = false): Promise<string[]> {
  const pool = postgres(env("SUPABASE_DB_URL"), { max: WORKERS, prepare: false, onnotice: () => {} });
  const errors: string[] = [];
  try {
    await Promise.all(users.map(async (user, u) => {
      for (let n = 0; n < ROUNDS; n++) {
        try {
          const [r] = await pool`select allowed, denial, request_id from billing.ai_reserve(${org}, ${user}, ${MODEL}, 256, 100)`;
          if (!r.allowed) {
            errors.push(`denied: ${r.denial}`);
            continue;
          }
          if (release && (u + n) % 3 === 0) {
            await pool`select billing.ai_release(${r.request_id}, 'upstream_error')`;
          } else {
            await pool`select settled from billing.ai_settle(${r.request_id}, 100, 200)`;
          }
        } catch (e) {
          errors.push((e as { code?: string }).code ?? String(e));
        }
      }
    }));
  } finally {
    await pool.end();
  }
  return errors;
}

const HIGH = {
  ai_requests_per_minute: 100000, ai_prompts_per_month: 100000000, groq_tokens_per_month: 100000000000,
  ai_spend_paise_per_month: 100000000000,
};

Deno.test("AI reservations and settlements of one organization with a spend cap and a token quota never deadlock", async () => {
  const sql = adminSql();
  try {
    const { org, users } = await organization(sql, HIGH);
    const errors = await hammer(org, users);
    assertEquals(errors, [], `${errors.filter((c) => c === "40P01").length} deadlocks`);
    const [{ pending }] = await sql`select count(*)::int as pending from public.ai_requests
      where organization_id = ${org} and status = 'pending'`;
    assertEquals(pending, 0);
  } finally {
    await sql.end();
  }
});

Deno.test("AI reservations, settlements and releases charged in credits under a spend cap never deadlock", async () => {
  const sql = adminSql();
  try {
    const { org, users } = await organization(sql, {
      ...HIGH, groq_tokens_per_day: 100000000000, ai_spend_paise_per_day: 100000000000,
      ai_credit_event: "ai_inference",
    }, 100000000);
    const errors = await hammer(org, users, true);
    assertEquals(errors, [], `${errors.filter((c) => c === "40P01").length} deadlocks`);
    const [{ pending }] = await sql`select count(*)::int as pending from public.ai_requests
      where organization_id = ${org} and status = 'pending'`;
    assertEquals(pending, 0);
    const problems = await sql`select * from billing.credit_ledger_problems()`;
    assertEquals(problems.length, 0);
  } finally {
    await sql.end();
  }
});
