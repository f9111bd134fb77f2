// Credits under real concurrency: 32 parallel connections against one organization's balance.
// consume_credits never overdraws and a request id is charged once however many times it is sent
// at once; usage past a quota paid in credits (increment_usage with `<metric>_overage_event`)
// charges exactly what the balance holds and counts exactly the calls it allowed. After each,
// billing.credit_ledger_problems() is empty: every grant's ledger sums to its remaining and the
// last balance_after is the organization's balance.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { adminSql, env } from "./helpers.ts";

const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 12);

/** A credit event at 1 credit a unit, and a fresh organization on a plan with `features` (the event's code as `{event}`). */
async function orgWithCredits(sql: postgres.Sql, credits: number, features: Record<string, unknown> = {}) {
  const event = `cc_${rand()}`;
  await sql`insert into public.credit_events (code, name, credits_per_unit) values (${event}, ${`Test ${event}`}, 1)`;
  const resolved = JSON.parse(JSON.stringify(features).replaceAll("{event}", event));
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, price_cents, features)
    values (${event}, ${event}, 'pro', 100000, ${sql.json(resolved as postgres.JSONValue)}) returning id`;
  const [{ id: org }] = await sql`insert into public.organizations (name) values (${event}) returning id`;
  await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${org}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
  await sql`select billing.operator_grant_credits(${org}, ${credits}, null, 'concurrency test')`;
  return { org: org as string, event };
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

/** The balance three ways (live grants, the ledger's last row) and the ledger's problems. */
async function books(sql: postgres.Sql, org: string) {
  const [row] = await sql`select billing.available_credits(${org})::int as available,
    billing.credit_ledger_balance(${org})::int as ledger,
    (select count(*)::int from billing.credit_ledger_problems() p where p.organization_id = ${org}) as problems`;
  return row;
}

Deno.test("5,000 consumptions of 1 credit from 32 connections against 1,000 credits charge exactly 1,000", async () => {
  const sql = adminSql();
  try {
    const { org, event } = await orgWithCredits(sql, 1000);
    const started = performance.now();
    const answers = await fanOut(32, 5000, async (pool) => {
      const [row] = await pool`select charged, credits, balance from public.consume_credits(${org}, ${event}, 1, null)`;
      return row;
    });
    console.log(`  5,000 consume_credits over 32 connections: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const charged = answers.filter((a) => a.charged);
    assertEquals(charged.length, 1000, "exactly the balance is charged");
    assertEquals(charged.reduce((s, a) => s + Number(a.credits), 0), 1000);
    assertEquals(answers.every((a) => Number(a.balance) >= 0), true, "no answer shows a negative balance");
    assertEquals(await books(sql, org), { available: 0, ledger: 0, problems: 0 });
    const [{ n }] = await sql`select count(*)::int as n from public.credit_charges where organization_id = ${org}`;
    assertEquals(n, 1000, "one charge per charged call, none for a refused one");
  } finally {
    await sql.end();
  }
});

Deno.test("every consumption sent twice at once under its request id: still 1,000 charged, each request id once", async () => {
  const sql = adminSql();
  try {
    const { org, event } = await orgWithCredits(sql, 1000);
    const started = performance.now();
    const answers = await fanOut(32, 10_000, async (pool, i) => {
      const id = `cr-${i % 5000}`;
      const [row] = await pool`select charged, charge_id from public.consume_credits(${org}, ${event}, 1, ${id})`;
      return { id, charged: row.charged as boolean, chargeId: row.charge_id as string | null };
    });
    console.log(`  10,000 consume_credits (5,000 request ids twice) over 32 connections: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const byId = new Map<string, { charged: boolean; chargeId: string | null }[]>();
    for (const a of answers) byId.set(a.id, [...(byId.get(a.id) ?? []), a]);
    const chargedIds = [...byId.values()].filter((pair) => pair.some((a) => a.charged));
    assertEquals(chargedIds.length, 1000, "1,000 request ids charged");
    assertEquals(
      chargedIds.every(([a, b]) => a.charged && b.charged && a.chargeId === b.chargeId),
      true,
      "both deliveries of a charged request id answer the same charge",
    );
    assertEquals(await books(sql, org), { available: 0, ledger: 0, problems: 0 });
    const [{ n, ids, consumed }] = await sql`select count(*)::int as n, count(distinct request_id)::int as ids,
      (select -sum(amount)::int from public.credit_ledger where organization_id = ${org} and kind = 'consumed') as consumed
      from public.credit_charges where organization_id = ${org}`;
    assertEquals([n, ids, consumed], [1000, 1000, 1000], "each request id charged once, 1,000 credits in all");
  } finally {
    await sql.end();
  }
});

Deno.test("usage past a full quota from 32 connections, each request sent twice: exactly 100 credits' worth with 100 left", async () => {
  const sql = adminSql();
  try {
    const { org } = await orgWithCredits(sql, 100, { bursts_per_day: 50, bursts_per_month: null, bursts_overage_event: "{event}" });
    const [{ allowed: filled }] = await sql`select allowed from public.increment_usage(${org}, 'bursts', 50, 'fill')`;
    assertEquals(filled, true, "the quota is full");
    const started = performance.now();
    const answers = await fanOut(32, 2000, async (pool, i) => {
      const id = `ov-${i % 1000}`;
      const [row] = await pool`select allowed, credits_charged from public.increment_usage(${org}, 'bursts', 1, ${id})`;
      return { id, allowed: row.allowed as boolean, credits: Number(row.credits_charged) };
    });
    console.log(`  2,000 increment_usage past the quota (1,000 request ids twice) over 32 connections: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const byId = new Map<string, { allowed: boolean; credits: number }[]>();
    for (const a of answers) byId.set(a.id, [...(byId.get(a.id) ?? []), a]);
    const allowedIds = [...byId.values()].filter((pair) => pair.some((a) => a.allowed));
    assertEquals(allowedIds.length, 100, "100 requests allowed past the quota");
    assertEquals(
      allowedIds.every(([a, b]) => a.allowed && b.allowed && a.credits === 1 && b.credits === 1),
      true,
      "both deliveries of an allowed request answer allowed, 1 credit",
    );
    assertEquals(
      answers.filter((a) => !a.allowed).every((a) => a.credits === 0),
      true,
      "a denied call charged nothing",
    );
    assertEquals(await books(sql, org), { available: 0, ledger: 0, problems: 0 });
    const [{ count }] = await sql`select count from public.usage_quotas
      where organization_id = ${org} and metric = 'bursts' and window_unit = 'day'`;
    assertEquals(Number(count), 150, "the counter holds the quota and the 100 calls paid in credits");
    const [{ rows, units, charges }] = await sql`select count(*)::int as rows, sum(credit_units)::int as units,
      (select count(*)::int from public.credit_charges c where c.organization_id = ${org}) as charges
      from public.usage_metrics where organization_id = ${org} and request_id like 'ov-%'`;
    assertEquals([rows, units, charges], [100, 100, 100], "one usage row and one charge per allowed request");
  } finally {
    await sql.end();
  }
});
