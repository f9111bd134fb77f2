// increment_usage and count limits under real concurrency: many connections, one organization.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { adminSql, env } from "./helpers.ts";

/** A fresh organization on a plan with the given features, active for the current period. */
async function orgWithPlan(sql: postgres.Sql, features: Record<string, unknown>): Promise<string> {
  const code = `usage_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, price_cents, features)
    values (${code}, ${code}, 'pro', 100000, ${sql.json(features as postgres.JSONValue)}) returning id`;
  const [{ id: orgId }] = await sql`insert into public.organizations (name) values (${code}) returning id`;
  await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${orgId}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
  return orgId;
}

/** Run `total` tasks over `connections` parallel connections. */
async function fanOut<T>(connections: number, total: number, task: (sql: postgres.Sql, i: number) => Promise<T>) {
  const pool = postgres(env("SUPABASE_DB_URL"), { max: connections, prepare: false, onnotice: () => {} });
  try {
    return await Promise.all(Array.from({ length: total }, (_, i) => task(pool, i)));
  } finally {
    await pool.end();
  }
}

Deno.test("32 connections firing 5,000 increments at a limit of 1,000 get exactly 1,000 allowed", async () => {
  const sql = adminSql();
  try {
    const org = await orgWithPlan(sql, { bursts_per_day: 1000 });
    const answers = await fanOut(32, 5000, async (pool) => {
      const [row] = await pool`select allowed from public.increment_usage(${org}, 'bursts', 1, null)`;
      return row.allowed as boolean;
    });
    assertEquals(answers.filter(Boolean).length, 1000);
    const [{ count }] = await sql`select count from public.usage_quotas where organization_id = ${org} and metric = 'bursts'`;
    assertEquals(Number(count), 1000);
    const [{ n }] = await sql`select count(*)::int as n from public.usage_metrics where organization_id = ${org}`;
    assertEquals(n, 1000);
  } finally {
    await sql.end();
  }
});

Deno.test("every request sent twice under one request id is still counted once, 1,000 in all", async () => {
  const sql = adminSql();
  try {
    const org = await orgWithPlan(sql, { bursts_per_day: 1000 });
    const answers = await fanOut(32, 10_000, async (pool, i) => {
      const id = `req-${i % 5000}`;
      const [row] = await pool`select allowed, used from public.increment_usage(${org}, 'bursts', 1, ${id})`;
      return { id, allowed: row.allowed as boolean };
    });
    const byId = new Map<string, boolean[]>();
    for (const a of answers) byId.set(a.id, [...(byId.get(a.id) ?? []), a.allowed]);
    const allowedIds = [...byId.values()].filter((pair) => pair.includes(true));
    assertEquals(allowedIds.length, 1000);
    assertEquals(allowedIds.every(([a, b]) => a === b), true, "both deliveries of a counted request get the same answer");
    const [{ count }] = await sql`select count from public.usage_quotas where organization_id = ${org} and metric = 'bursts'`;
    assertEquals(Number(count), 1000);
    const [{ n }] = await sql`select count(distinct request_id)::int as n from public.usage_metrics where organization_id = ${org}`;
    assertEquals(n, 1000);
  } finally {
    await sql.end();
  }
});

Deno.test("several windows under concurrency: no window passes its limit and all stay equal", async () => {
  const sql = adminSql();
  try {
    const org = await orgWithPlan(sql, { pings_per_hour: 300, pings_per_day: 200, pings_per_month: 250 });
    const answers = await fanOut(32, 1000, async (pool) => {
      const [row] = await pool`select allowed from public.increment_usage(${org}, 'pings', 1, null)`;
      return row.allowed as boolean;
    });
    assertEquals(answers.filter(Boolean).length, 200);
    const rows = await sql`select window_unit::text as unit, count from public.usage_quotas
      where organization_id = ${org} and metric = 'pings' order by window_unit`;
    assertEquals(rows.map((r) => [r.unit, Number(r.count)]), [["hour", 200], ["day", 200], ["month", 200]]);
  } finally {
    await sql.end();
  }
});

Deno.test("concurrent inserts against max_watchlists never exceed it", async () => {
  const sql = adminSql();
  try {
    const org = await orgWithPlan(sql, { max_watchlists: 5 });
    const results = await fanOut(16, 64, async (pool, i) => {
      try {
        await pool`insert into public.watchlists (organization_id, name) values (${org}, ${`list ${i}`})`;
        return "ok";
      } catch (e) {
        return (e as { code?: string }).code;
      }
    });
    assertEquals(results.filter((r) => r === "ok").length, 5);
    assertEquals(results.filter((r) => r !== "ok").every((c) => c === "23514"), true);
    const [{ n }] = await sql`select count(*)::int as n from public.watchlists where organization_id = ${org}`;
    assertEquals(n, 5);
  } finally {
    await sql.end();
  }
});
