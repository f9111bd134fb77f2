// What the AI gateway's tests share: an organization on a plan of its own with the features a
// test needs, and the fake Groq's control API.
import { ok as assert } from "node:assert/strict";
import type postgres from "npm:postgres@4.2.0";
import { createUser, env, mintToken } from "./helpers.ts";

type Json = Record<string, unknown>;

export type AiTenant = { org: string; owner: string; token: string };

/**
 * A new organization subscribed (active for the month) to a pro plan of its own, code `<prefix>_<random>`,
 * whose features are `features` (max_members 10 unless given), with an owner and the owner's token.
 */
export async function aiTenant(sql: postgres.Sql, prefix: string, features: Json): Promise<AiTenant> {
  const code = `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  const plan = { max_members: 10, ...features };
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, features)
    values (${code}, ${code}, 'pro', 'month', 100, ${JSON.stringify(plan)}::text::jsonb) returning id`;
  const [{ id: org }] = await sql`insert into public.organizations (name) values (${code}) returning id`;
  await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
    values (${org}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
  const owner = await createUser(sql);
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${owner}, 'owner')`;
  return { org, owner, token: await mintToken(owner) };
}

/** The fake Groq's control API (tests/fakes/upstreams.ts): delays, failures, a reset. */
export async function groqControl(body: Json): Promise<void> {
  const res = await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/groq`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert(res.ok, `fake control answered ${res.status}`);
  await res.body?.cancel();
}
