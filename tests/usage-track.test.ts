// usage-track through the functions server: batches counted exactly once under concurrent
// retries, bad events answered one by one while the good ones apply, what a signed-in user may
// report, and late events inside and outside billing_settings.usage_late_horizon.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { adminSql, callFunction, createUser, env, mintToken } from "./helpers.ts";

const secretKey = () => JSON.parse(env("SUPABASE_SECRET_KEYS")).default as string;

type Result = Record<string, unknown>;

/** POST a body to usage-track with the secret key (or `token`): status, code and results. */
async function track(body: unknown, { token, raw }: { token?: string; raw?: string } = {}) {
  const res = await callFunction("usage-track", {
    headers: { "content-type": "application/json", ...(token ? {} : { apikey: secretKey() }) },
    token,
    body: raw ?? JSON.stringify(body),
  });
  return {
    status: res.status,
    code: res.body.code as string | undefined,
    results: res.body.results as Result[] | undefined,
  };
}

/** A fresh organization on a fresh plan with the given features, active for the current period. */
async function orgWithPlan(sql: postgres.Sql, features: Record<string, unknown>): Promise<string> {
  const code = `track_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, price_cents, features)
    values (${code}, ${code}, 'pro', 100000, ${sql.json(features as postgres.JSONValue)}) returning id`;
  const [{ id: orgId }] = await sql`insert into public.organizations (name) values (${code}) returning id`;
  await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${orgId}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
  return orgId;
}

/** The organization's counters: "metric unit" -> count, for every window. */
async function counters(sql: postgres.Sql, org: string) {
  const rows = await sql`select metric || ' ' || window_unit::text || ' ' ||
      to_char(window_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI') as key, count::int as count
    from public.usage_quotas where organization_id = ${org} order by metric, window_unit, window_start`;
  return rows.map((r) => `${r.key}=${r.count}`);
}

/** The organization's usage rows: [metric, request_id, amount, used]. */
async function usageRows(sql: postgres.Sql, org: string) {
  const rows = await sql`select metric, request_id, amount::int, used::int, user_id from public.usage_metrics
    where organization_id = ${org} order by metric, request_id`;
  return rows.map((r) => [r.metric, r.request_id, r.amount, r.used, r.user_id]);
}

Deno.test("a batch of 1,000 events sent three times concurrently, after a part of it was applied, counts each event once", async () => {
  const sql = adminSql();
  try {
    const org = await orgWithPlan(sql, { clicks_per_day: 1_000_000, clicks_per_month: null });
    const events = Array.from({ length: 1000 }, (_, i) => ({
      organization_id: org,
      metric: "clicks",
      quantity: (i % 3) + 1,
      request_id: `click-${i}`,
    }));
    const total = events.reduce((s, e) => s + e.quantity, 0);
    const firstPart = events.slice(0, 300);
    const before = await track({ events: firstPart });
    assertEquals([before.status, before.results!.every((r) => r.allowed === true && r.duplicate === false)], [200, true]);

    const copies = await Promise.all([1, 2, 3].map(() => track({ events })));
    assertEquals(copies.map((c) => c.status), [200, 200, 200]);
    for (let i = 0; i < events.length; i++) {
      const answers = copies.map((c) => c.results![i]);
      const fresh = answers.filter((a) => a.duplicate === false).length;
      // The part applied before is a duplicate in every copy; the rest is applied by exactly one.
      assertEquals({ i, fresh }, { i, fresh: i < 300 ? 0 : 1 });
      const strip = (a: Result) => ({ ...a, duplicate: undefined });
      assertEquals(answers.map(strip), [strip(answers[0]), strip(answers[0]), strip(answers[0])]);
      assertEquals(answers[0].allowed, true);
    }
    // The first part answers what it answered the first time.
    for (let i = 0; i < 300; i++) {
      assertEquals({ ...copies[0].results![i], duplicate: false }, before.results![i]);
    }
    const [day] = await sql`select count::int as count from public.usage_quotas
      where organization_id = ${org} and metric = 'clicks' and window_unit = 'day'`;
    const [month] = await sql`select count::int as count from public.usage_quotas
      where organization_id = ${org} and metric = 'clicks' and window_unit = 'month'`;
    const [rows] = await sql`select count(*)::int as n, count(distinct request_id)::int as ids, sum(amount)::int as amount
      from public.usage_metrics where organization_id = ${org}`;
    assertEquals([day.count, month.count, rows], [total, total, { n: 1000, ids: 1000, amount: total }]);
    // The last event's answer counts everything before it.
    assertEquals(copies.map((c) => c.results![999].used).filter((u) => u !== undefined)[0], total);

    // A fourth retry changes nothing and answers duplicates only.
    const again = await track({ events });
    assertEquals(again.results!.every((r) => r.duplicate === true), true);
    const [dayAfter] = await sql`select count::int as count from public.usage_quotas
      where organization_id = ${org} and metric = 'clicks' and window_unit = 'day'`;
    assertEquals(dayAfter.count, total);
  } finally {
    await sql.end();
  }
});

Deno.test("a batch with bad events applies the good ones and names the bad, each in its place", async () => {
  const sql = adminSql();
  try {
    const org = await orgWithPlan(sql, { views_per_minute: 100, views_per_day: 5 });
    const nobody = crypto.randomUUID();
    const ev = (over: Record<string, unknown>) => ({ organization_id: org, metric: "views", quantity: 1, ...over });
    const { status, code, results } = await track({
      events: [
        ev({ request_id: "a", quantity: 2 }),
        ev({ request_id: "b", organization_id: nobody }),
        ev({ request_id: "c", organization_id: "not-a-uuid" }),
        ev({ request_id: "d", metric: "Views!" }),
        ev({ request_id: "e", metric: "downloads" }),
        ev({ request_id: "f", quantity: 0 }),
        ev({ request_id: "g", quantity: 1.5 }),
        ev({ request_id: "h", quantity: "2" }),
        ev({}),
        ev({ request_id: "" }),
        ev({ request_id: "a", quantity: 2 }),
        ev({ request_id: "i", occurred_at: "yesterday" }),
        "not an event",
        ev({ request_id: "j", quantity: 2 }),
        ev({ request_id: "k", quantity: 2 }),
        ev({ request_id: "l", quantity: 1 }),
      ],
    });
    assertEquals([status, code], [200, undefined]);
    const [{ resets }] = await sql`select to_json(date_trunc('day', billing.now() at time zone o.timezone)
        at time zone o.timezone + interval '1 day') #>> '{}' as resets from public.organizations o where o.id = ${org}`;
    const iso = new Date(resets).toISOString();
    const norm = (r: Result) => ({ ...r, ...(r.resets_at ? { resets_at: new Date(r.resets_at as string).toISOString() } : {}) });
    const ok = (used: number, duplicate = false) => ({
      allowed: true, used, limit_amount: 5, remaining: 5 - used, resets_at: iso, credits_charged: 0, duplicate,
    });
    assertEquals(results!.map(norm), [
      ok(2),
      { error: "unknown_organization" },
      { error: "unknown_organization" },
      { error: "invalid_metric" },
      { allowed: false, used: 0, limit_amount: 0, remaining: 0, credits_charged: 0, error: "unknown_metric" },
      { error: "invalid_quantity" },
      { error: "invalid_quantity" },
      { error: "invalid_quantity" },
      { error: "missing_request_id" },
      { error: "missing_request_id" },
      ok(2, true),
      { error: "invalid_occurred_at" },
      { error: "invalid_event" },
      ok(4),
      // Refused (4 + 2 > 5): nothing counted, and the next event still fits.
      { allowed: false, used: 4, limit_amount: 5, remaining: 1, resets_at: iso, credits_charged: 0, duplicate: false },
      ok(5),
    ]);
    assertEquals(await usageRows(sql, org), [["views", "a", 2, 2, null], ["views", "j", 2, 4, null], ["views", "l", 1, 5, null]]);
    const counts = await counters(sql, org);
    assertEquals(counts.map((c) => c.replace(/ \S+=/, "=")), ["views minute=5", "views day=5"]);

    // The refused event, sent again once there is room, is decided again: still refused here.
    const retry = await track({ events: [ev({ request_id: "k", quantity: 2 })] });
    assertEquals(retry.results!.map((r) => [r.allowed, r.duplicate]), [[false, false]]);

    // Errors of the whole request write nothing.
    const tooMany = Array.from({ length: 1001 }, (_, i) => ev({ request_id: `x${i}` }));
    assertEquals(
      [
        await track({ events: tooMany }),
        await track({ events: { request_id: "x" } }),
        await track(null, { raw: "{not json" }),
        await track({}),
        await track({ events: [ev({ request_id: "z", occurred_at: "2026-02-30T10:00:00Z" })] }),
      ].map((r) => `${r.status} ${r.code}`),
      ["400 too_many_events", "400 invalid_input", "400 malformed_json", "400 invalid_input", "400 invalid_occurred_at"],
    );
    const noKey = await callFunction("usage-track", { body: JSON.stringify({ events: [ev({ request_id: "y" })] }) });
    const publishable = await callFunction("usage-track", {
      headers: { apikey: JSON.parse(env("SUPABASE_PUBLISHABLE_KEYS")).default },
      body: JSON.stringify({ events: [ev({ request_id: "y" })] }),
    });
    assertEquals([`${noKey.status} ${noKey.body.code}`, `${publishable.status} ${publishable.body.code}`], [
      "401 missing_authorization",
      "403 forbidden",
    ]);
    assertEquals((await usageRows(sql, org)).length, 3);
  } finally {
    await sql.end();
  }
});

Deno.test("a signed-in user reports single events of client_metrics for an organization of theirs, nothing else", async () => {
  const sql = adminSql();
  try {
    const features = { max_members: 5, exports_per_day: 10, secrets_per_day: 10, client_metrics: ["exports"] };
    const mine = await orgWithPlan(sql, features);
    const theirs = await orgWithPlan(sql, features);
    const user = await createUser(sql);
    await sql`insert into public.organization_members (organization_id, user_id, role) values (${mine}, ${user}, 'member')`;
    const token = await mintToken(user);
    const ev = (org: string, metric: string, rid: string) => ({ organization_id: org, metric, quantity: 1, request_id: rid });

    const allowed = await track({ events: [ev(mine, "exports", "u1")] }, { token });
    assertEquals([allowed.status, allowed.results!.map((r) => [r.allowed, r.used, r.limit_amount])], [200, [[true, 1, 10]]]);
    const results = [
      await track({ events: [ev(mine, "secrets", "u2")] }, { token }),
      await track({ events: [ev(theirs, "exports", "u3")] }, { token }),
      await track({ events: [ev(mine, "exports", "u4"), ev(mine, "exports", "u5")] }, { token }),
    ];
    assertEquals(results.map((r) => `${r.status} ${r.code}`), ["403 forbidden", "403 forbidden", "400 single_event_only"]);
    assertEquals(await usageRows(sql, mine), [["exports", "u1", 1, 1, user]]);
    assertEquals(await usageRows(sql, theirs), []);

    // The seed's Pro plan lets clients report report_exports (the README's example).
    const [{ ok }] = await sql`select features -> 'client_metrics' = '["report_exports"]'::jsonb
      and features ? 'report_exports_per_day' as ok from public.billing_plans where code = 'pro_monthly'`;
    assertEquals(ok, true);
  } finally {
    await sql.end();
  }
});

Deno.test("late events count in the window they belong to inside the horizon, and are refused outside it", async () => {
  const sql = adminSql();
  try {
    const org = await orgWithPlan(sql, { reports_per_day: 100 });
    const [{ now }] = await sql`select billing.now() as now`;
    const at = (hours: number) => new Date(new Date(now).getTime() - hours * 3600_000).toISOString();
    const ev = (rid: string, hoursAgo: number) => ({
      organization_id: org, metric: "reports", quantity: 1, request_id: rid, occurred_at: at(hoursAgo),
    });
    const dayOf = async (hoursAgo: number) => {
      const [{ d }] = await sql`select to_char((date_trunc('day', ${at(hoursAgo)}::timestamptz at time zone o.timezone)
          at time zone o.timezone) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI') as d
        from public.organizations o where o.id = ${org}`;
      return d as string;
    };
    const first = await track({ events: [ev("now", 0), ev("yesterday", 25), ev("two-days", 47), ev("too-late", 49)] });
    assertEquals(first.results!.map((r) => r.error ?? r.used), [1, 1, 1, "late_event_closed"]);
    const future = await track({
      events: [{ organization_id: org, metric: "reports", quantity: 1, request_id: "f", occurred_at: at(-1) }],
    });
    assertEquals(future.results!.map((r) => r.error), ["event_in_future"]);
    // Each counted event is in the day window of its occurred_at.
    const expected = new Map<string, number>();
    for (const h of [0, 25, 47]) {
      const d = await dayOf(h);
      expected.set(d, (expected.get(d) ?? 0) + 1);
    }
    assertEquals(
      await counters(sql, org),
      [...expected.entries()].sort().map(([d, n]) => `reports day ${d}=${n}`),
    );

    // A longer horizon lets the same event in.
    await sql`update public.billing_settings set usage_late_horizon = interval '72 hours' where id`;
    try {
      const later = await track({ events: [ev("too-late", 49)] });
      assertEquals(later.results!.map((r) => [r.allowed, r.used, r.error]), [[true, 1 + (expected.get(await dayOf(49)) ?? 0), undefined]]);
    } finally {
      await sql`update public.billing_settings set usage_late_horizon = interval '48 hours' where id`;
    }
  } finally {
    await sql.end();
  }
});
