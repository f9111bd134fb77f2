// Usage for the browser, quota alerts and the signature failure counter, end to end: 500
// concurrent increment_usage calls as service_role (what `supabase.rpc('increment_usage', ...)`
// with the service key runs) queue exactly one quota_threshold notification per threshold;
// get_usage through supabase-js as a signed-in member; the alert's email through
// notifications-send and the fake email API; a webhook with a bad signature counted per hour.
//
// The local stack ships no PostgREST, so supabase-js's `.rpc()` is pointed (its `fetch` option) at
// the stand-in for it, tests/fakes/postgrest.mjs (the demo's too): it verifies the caller's JWT,
// runs what PostgREST runs for it as that role with its claims, and answers as PostgREST does.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import postgres from "npm:postgres@4.2.0";
import { restFetch } from "./fakes/postgrest.mjs";
import type { Database } from "../supabase/functions/_shared/database.types.ts";
import { adminSql, apiUrl, createUser, env, functionsUrl, mintToken } from "./helpers.ts";

const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 12);

/** An organization on a fresh plan with `features`, active for the current period, and its owner. */
async function orgWithPlan(sql: postgres.Sql, features: Record<string, unknown>) {
  const code = `alerts_${rand()}`;
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, price_cents, features)
    values (${code}, ${`Alerts ${code}`}, 'pro', 100000, ${sql.json({ max_members: 10, ...features } as postgres.JSONValue)})
    returning id`;
  const [{ id: org }] = await sql`insert into public.organizations (name) values (${code}) returning id`;
  await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${org}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
  const ownerEmail = `owner-${code}@alerts.test`;
  const owner = await createUser(sql, ownerEmail);
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${owner}, 'owner')`;
  return { org: org as string, owner, ownerEmail, planName: `Alerts ${code}` };
}

Deno.test("500 concurrent increments crossing 75, 90 and 100 % queue exactly three alerts", testOptions, async () => {
  const sql = adminSql();
  try {
    const { org } = await orgWithPlan(sql, { bursts_per_day: 400, bursts_per_minute: null });
    const pool = postgres(env("SUPABASE_DB_URL"), { max: 32, prepare: false, onnotice: () => {} });
    let answers: boolean[];
    try {
      answers = await Promise.all(Array.from({ length: 500 }, () =>
        pool.begin(async (tx) => {
          await tx`select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
          const [row] = await tx`select allowed from public.increment_usage(${org}, 'bursts', 1, null)`;
          return row.allowed as boolean;
        })
      ));
    } finally {
      await pool.end();
    }
    assertEquals(answers.filter(Boolean).length, 400, "the limit holds");
    const alerts = await sql`select payload from public.notifications
      where organization_id = ${org} and kind = 'quota_threshold' order by (payload ->> 'threshold')::int`;
    assertEquals(
      alerts.map((a) => [a.payload.window, a.payload.threshold, a.payload.used, a.payload.limit]),
      [["day", 75, 300, 400], ["day", 90, 360, 400], ["day", 100, 400, 400]],
      "one alert per threshold, queued by the call that reached it",
    );
    const [{ unlimited }] = await sql`select count(*)::int as unlimited from public.notifications
      where organization_id = ${org} and kind = 'quota_threshold' and payload ->> 'window' = 'minute'`;
    assertEquals(unlimited, 0, "an unlimited window never alerts");
  } finally {
    await sql.end();
  }
});

Deno.test("get_usage through supabase-js as a member: every window of the plan; a stranger gets 403 42501", testOptions, async () => {
  const sql = adminSql();
  try {
    const { org, owner } = await orgWithPlan(sql, { pings_per_day: 50, pings_per_month: null, ai_requests_per_minute: 5 });
    const [{ allowed }] = await sql`select allowed from public.increment_usage(${org}, 'pings', 12, null)`;
    assertEquals(allowed, true);
    const rest = restFetch({ apiUrl: apiUrl(), sql, jwks: JSON.parse(env("SUPABASE_JWKS")) });
    const member = createClient<Database>(apiUrl(), env("SUPABASE_ANON_KEY"), {
      accessToken: async () => await mintToken(owner),
      global: { fetch: rest },
    });
    const { data, error } = await member.rpc("get_usage", { p_organization_id: org });
    assertEquals(error, null);
    assert(data);
    assertEquals(
      data.map((r) => [r.metric, r.window_unit, r.scope, r.used, r.limit_amount, r.remaining, r.percent]),
      [
        ["ai_requests", "minute", "user", 0, 5, 5, 0],
        ["pings", "day", "organization", 12, 50, 38, 24],
        ["pings", "month", "organization", 12, null, null, null],
      ],
    );
    const day = data.find((r) => r.window_unit === "day")!;
    assert(new Date(day.resets_at).getTime() > Date.now(), "resets in the future");
    assertEquals(new Date(day.resets_at).getTime() - new Date(day.window_start).getTime(), 86_400_000);

    const stranger = createClient<Database>(apiUrl(), env("SUPABASE_ANON_KEY"), {
      accessToken: async () => await mintToken(await createUser(sql)),
      global: { fetch: rest },
    });
    const denied = await stranger.rpc("get_usage", { p_organization_id: org });
    assertEquals([denied.status, denied.error?.code, denied.error?.message], [403, "42501", `not a member of organization ${org}`]);
  } finally {
    await sql.end();
  }
});

Deno.test("a quota alert is emailed to the organization through notifications-send", testOptions, async () => {
  const sql = adminSql();
  try {
    const { org, ownerEmail, planName } = await orgWithPlan(sql, { pings_per_day: 8 });
    await sql`select * from public.increment_usage(${org}, 'pings', 6, null)`;
    const [note] = await sql`select id from public.notifications where organization_id = ${org} and kind = 'quota_threshold'`;
    assert(note, "75 % of 8 reached: queued");
    const headers = { "content-type": "application/json", authorization: `Bearer ${env("SUPABASE_SERVICE_ROLE_KEY")}` };
    for (let i = 0; i < 20; i++) {
      const res = await fetch(functionsUrl("notifications-send"), { method: "POST", headers, body: JSON.stringify({ limit: 1000 }) });
      const body = await res.json();
      assertEquals(res.status, 200, JSON.stringify(body));
      if (body.claimed === 0) break;
    }
    const [row] = await sql`select sent_at, last_error from public.notifications where id = ${note.id}`;
    assert(row.sent_at !== null, `sent: ${row.last_error}`);
    const { emails } = await (await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/email`)).json();
    const mine = (emails as { idempotency_key: string; to: string[]; subject: string; text: string }[])
      .filter((e) => e.idempotency_key === note.id);
    assertEquals(mine.length, 1);
    assertEquals(mine[0].to, [ownerEmail.toLowerCase()]);
    assert(mine[0].subject.includes("75% of its pings for this day"), mine[0].subject);
    assert(mine[0].text.includes(`6 of the 8 pings the ${planName} plan allows per day`), mine[0].text);
  } finally {
    await sql.end();
  }
});

Deno.test("a webhook refused for its signature is counted for its provider and hour, nothing else kept", testOptions, async () => {
  const sql = adminSql();
  try {
    const count = async () => {
      const [{ n }] = await sql`select coalesce(sum(count), 0)::int as n from billing.signature_failures_hourly
        where provider = 'razorpay' and hour = date_trunc('hour', now(), 'UTC')`;
      return n as number;
    };
    const before = await count();
    const res = await fetch(functionsUrl("razorpay-webhook"), {
      method: "POST",
      headers: { "content-type": "application/json", "x-razorpay-event-id": `evt_sig_${rand()}` },
      body: JSON.stringify({ event: "payment.captured", note: "forged" }),
    });
    const body = await res.json();
    assertEquals([res.status, body.code], [401, "missing_signature"]);
    assertEquals(await count(), before + 1);
    const forged = await fetch(functionsUrl("razorpay-webhook"), {
      method: "POST",
      headers: { "content-type": "application/json", "x-razorpay-signature": "0".repeat(64) },
      body: JSON.stringify({ event: "payment.captured" }),
    });
    await forged.body?.cancel();
    assertEquals(forged.status, 401);
    assertEquals(await count(), before + 2);
    const [{ kept }] = await sql`select count(*)::int as kept from billing.webhook_events where payload::text like '%forged%'`;
    assertEquals(kept, 0, "the refused body is not stored");
  } finally {
    await sql.end();
  }
});
