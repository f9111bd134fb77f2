// usage_metrics is partitioned by the month a request id is claimed in, and its unique index is
// per month: a copy of a request claiming just after midnight of the 1st while the first copy,
// claimed just before it, is still in flight must wait for it and answer its answer, not count
// again in the new month. Connections on either side of the boundary (each pins billing.now for
// its session), concurrently: one copy held open until the other is seen waiting, then 200
// request ids each sent from both months at once, through increment_usage and usage-track's SQL.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { adminSql, env } from "./helpers.ts";

const testOptions = { sanitizeOps: false, sanitizeResources: false };
const JANUARY = "2027-01-31 23:59:50+00";
const FEBRUARY = "2027-02-01 00:00:10+00";

/** A pool whose every connection sees billing.now() at `at`. */
const poolAt = (at: string, max: number) =>
  postgres(env("SUPABASE_DB_URL"), { max, prepare: false, onnotice: () => {}, connection: { "billing.now": at } });

/** A fresh organization (UTC) on a plan metering hits per day, subscribed over the boundary. */
async function org(sql: postgres.Sql): Promise<string> {
  const code = `part_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, price_cents, features)
    values (${code}, ${code}, 'pro', 100000, '{"hits_per_day": 1000000, "hits_per_month": null}') returning id`;
  const [{ id }] = await sql`insert into public.organizations (name, timezone) values (${code}, 'UTC') returning id`;
  await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${id}, ${planId}, 'active', '2027-01-15 00:00+00', '2027-03-15 00:00+00')`;
  return id;
}

/** Counters by day, and usage rows per request id. */
async function counted(sql: postgres.Sql, orgId: string) {
  const days = await sql`select to_char(window_start at time zone 'UTC', 'MM-DD') as day, count::int as n
    from public.usage_quotas where organization_id = ${orgId} and window_unit = 'day' order by 1`;
  const [{ rows, ids, months }] = await sql`select count(*)::int as rows, count(distinct request_id)::int as ids,
      string_agg(distinct to_char(claimed_month at time zone 'UTC', 'YYYY-MM'), ',') as months
    from public.usage_metrics where organization_id = ${orgId}`;
  return { days: Object.fromEntries(days.map((d) => [d.day, d.n])), rows, ids, months };
}

Deno.test("a copy claiming after midnight of the 1st waits for the copy claimed before it, then answers its answer", testOptions, async () => {
  const sql = adminSql();
  const jan = poolAt(JANUARY, 1);
  const feb = poolAt(FEBRUARY, 1);
  try {
    const orgId = await org(sql);
    const held = await jan.reserve();
    await held`begin`;
    const [first] = await held`select allowed, used::int, resets_at from public.increment_usage(${orgId}, 'hits', 3, 'held')`;
    let settled = false;
    const second = feb`select allowed, used::int, resets_at from public.increment_usage(${orgId}, 'hits', 3, 'held')`
      .then((r) => (settled = true, r[0]));
    // The February copy waits on the key's advisory lock while January's transaction is open.
    let waiting = 0;
    for (let i = 0; i < 100 && waiting === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      [{ waiting }] = await sql`select count(*)::int as waiting from pg_locks where locktype = 'advisory' and not granted`;
    }
    assertEquals(waiting, 1, "the February copy waits on the advisory lock");
    assertEquals(settled, false);
    await held`commit`;
    held.release();
    assertEquals(await second, first, "it answers the January copy's answer");
    assertEquals(await counted(sql, orgId), { days: { "01-31": 3 }, rows: 1, ids: 1, months: "2027-01" });
  } finally {
    await Promise.all([sql.end(), jan.end(), feb.end()]);
  }
});

Deno.test("200 request ids sent from both sides of the boundary at once, and through usage-track: each counted once", testOptions, async () => {
  const sql = adminSql();
  const jan = poolAt(JANUARY, 8);
  const feb = poolAt(FEBRUARY, 8);
  try {
    const orgId = await org(sql);
    const ids = Array.from({ length: 200 }, (_, i) => `both-${i}`);
    const batch = JSON.stringify(ids.map((id) => ({ organization_id: orgId, metric: "hits", quantity: 1, request_id: id })));
    const answers = await Promise.all([
      ...ids.map((id) => jan`select allowed from public.increment_usage(${orgId}, 'hits', 1, ${id})`),
      ...ids.map((id) => feb`select allowed from public.increment_usage(${orgId}, 'hits', 1, ${id})`),
      feb`select count(*) filter (where allowed)::int as allowed from billing.track_usage(${batch}::text::jsonb)`,
    ]);
    assert(answers.slice(0, 400).every((r) => r[0].allowed === true), "every call allowed");
    const c = await counted(sql, orgId);
    assertEquals(c.rows, 200, "one usage row per request id");
    assertEquals(c.ids, 200);
    assertEquals((c.days["01-31"] ?? 0) + (c.days["02-01"] ?? 0), 200, `each counted once: ${JSON.stringify(c.days)}`);
  } finally {
    await Promise.all([sql.end(), jan.end(), feb.end()]);
  }
});
