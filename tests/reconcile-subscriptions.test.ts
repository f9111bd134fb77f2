// Reconciliation of Razorpay subscriptions end to end (the reconcile function, the real database,
// the fake Razorpay): a renewal whose subscription.charged webhook was never delivered is
// recovered once (period extended once, an invoice issued) and the late webhook is a duplicate; a
// subscription Razorpay cancelled becomes canceled; only the service role may ask, and a refused
// call fetches nothing.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHmac } from "node:crypto";
import { adminSql, createUser, env, mintToken, callFunction as call, fakeControl as fake } from "./helpers.ts";

type Json = Record<string, unknown>;

const sql = adminSql(4);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

const suffix = rand();
const PLAN = `t_rsub_${suffix}`;
const RZP_PLAN_ID = `plan_rsub_${suffix}`;
// A Razorpay recurring plan charges its price itself (GST carved out of it).
const PRICE = 49900;

let planReady: Promise<void> | undefined;
function ensurePlan(): Promise<void> {
  planReady ??= (async () => {
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, active)
      values (${PLAN}, 'Test Reconciled Pro (monthly)', 'pro', 'month', ${PRICE}, 'INR',
              ${JSON.stringify({ razorpay: { plan_id: RZP_PLAN_ID } })}::text::jsonb, true)`;
  })();
  return planReady;
}

const fakeCalls = async (route: string): Promise<number> => (await fake("/__control/stats")).calls[route] ?? 0;

function sendWebhook(event: string, payload: Json) {
  const raw = JSON.stringify({
    entity: "event", account_id: "acc_test", event, contains: Object.keys(payload), payload,
    created_at: Math.floor(Date.now() / 1000),
  });
  return call("razorpay-webhook", {
    headers: {
      "content-type": "application/json",
      "x-razorpay-signature": createHmac("sha256", env("RAZORPAY_WEBHOOK_SECRET")).update(raw).digest("hex"),
      "x-razorpay-event-id": `evt_${rand()}`,
    },
    body: raw,
  });
}

const reconcile = () => call("reconcile", { token: env("SUPABASE_SERVICE_ROLE_KEY") });

/**
 * A new organization paying a Razorpay subscription: checkout, the first charge at the fake, and
 * razorpay-verify applying it. Then its period is moved a month back, so it ended a day ago (within
 * the grace period) as if a month had passed.
 */
async function paidSubscription() {
  await ensurePlan();
  const owner = await createUser(sql);
  const [{ id: orgId }] = await sql`insert into public.organizations (name, billing_email)
    values (${`Reconciled ${rand()}`}, 'billing@example.in') returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${orgId}, ${owner}, 'owner')`;
  const token = await mintToken(owner);
  const checkout = await call("checkout", {
    token,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_id: orgId, plan_code: PLAN, provider: "razorpay" }),
  });
  assertEquals(checkout.status, 200, JSON.stringify(checkout.body));
  const subId = checkout.body.subscription_id as string;
  const first = await fake("/__control/razorpay/subscriptions/charge", { subscription_id: subId, amount: PRICE });
  const payId = first.payment.id as string;
  const verify = await call("razorpay-verify", {
    token,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      billing_order_id: checkout.body.billing_order_id,
      razorpay_payment_id: payId,
      razorpay_signature: createHmac("sha256", env("RAZORPAY_KEY_SECRET")).update(`${payId}|${subId}`).digest("hex"),
    }),
  });
  assertEquals([verify.status, verify.body.result], [200, "applied"], JSON.stringify(verify.body));
  await sql`update public.subscriptions
    set current_period_start = current_period_start - interval '1 month' - interval '1 day',
        current_period_end = current_period_start - interval '1 day',
        period_anchor = current_period_start - interval '1 month' - interval '1 day'
    where organization_id = ${orgId}`;
  return { orgId, subId };
}

async function state(orgId: string) {
  const [row] = await sql`select s.status::text, s.current_period_end,
      (select count(*)::int from public.payment_events pe
       where pe.organization_id = ${orgId} and pe.status = 'captured') as captured,
      (select count(*)::int from public.invoices i where i.organization_id = ${orgId}) as invoices,
      (select count(*)::int from public.subscription_history h
       where h.organization_id = ${orgId} and h.action = 'renewed') as renewals
    from public.subscriptions s where s.organization_id = ${orgId}`;
  return row;
}

Deno.test({
  name: "reconcile recovers a renewal whose subscription.charged never arrived: extended once, invoiced, the late webhook a duplicate",
  ...testOptions,
  fn: async () => {
    const { orgId, subId } = await paidSubscription();
    const before = await state(orgId);
    const [{ expected }] = await sql`select billing.period_end_after(s.current_period_end, 'month', o.timezone,
        s.period_anchor) as expected
      from public.subscriptions s join public.organizations o on o.id = s.organization_id
      where s.organization_id = ${orgId}`;
    const [due] = await sql`select reason, known_payment_ids from billing.reconcile_due_subscriptions(1000)
      where provider_subscription_id = ${subId}`;
    assertEquals(due.reason, "period_ended");
    assertEquals(due.known_payment_ids.length, 1);

    // Razorpay charged the renewal; its webhook is lost.
    const renewal = await fake("/__control/razorpay/subscriptions/charge", { subscription_id: subId, amount: PRICE });
    const res = await reconcile();
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const summary = res.body.subscriptions as Json;
    const mine = (summary.items as Json[]).find((o) => o.provider_subscription_id === subId);
    assert(mine, JSON.stringify(summary));
    assertEquals([mine.kinds, mine.results, mine.subscription_status], [
      ["payment_captured", "subscription_status"],
      ["applied", "applied"],
      "active",
    ]);
    const after = await state(orgId);
    assertEquals(
      [after.status, after.current_period_end.toISOString(), after.captured, after.invoices, after.renewals],
      ["active", expected.toISOString(), before.captured + 1, before.invoices + 1, before.renewals + 1],
    );

    // The webhook arrives after all: another event id, the same payment: a duplicate.
    const hook = await sendWebhook("subscription.charged", {
      subscription: { entity: { ...renewal.subscription, status: "active" } },
      payment: { entity: renewal.payment },
    });
    assertEquals([hook.status, hook.body.result], [200, "duplicate"], JSON.stringify(hook.body));
    const late = await state(orgId);
    assertEquals(
      [late.current_period_end.toISOString(), late.captured, late.invoices, late.renewals],
      [expected.toISOString(), after.captured, after.invoices, after.renewals],
    );

    // Nothing is left to ask about this subscription.
    const again = await reconcile();
    assert(!((again.body.subscriptions as Json).items as Json[]).some((o) => o.provider_subscription_id === subId));
  },
});

Deno.test({
  name: "reconcile: a subscription Razorpay says is cancelled becomes canceled, once",
  ...testOptions,
  fn: async () => {
    const { orgId, subId } = await paidSubscription();
    await fake("/__control/razorpay/subscriptions", {
      id: subId,
      status: "cancelled",
      ended_at: Math.floor(Date.now() / 1000),
    });
    const res = await reconcile();
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const mine = ((res.body.subscriptions as Json).items as Json[]).find((o) => o.provider_subscription_id === subId);
    assert(mine, JSON.stringify(res.body.subscriptions));
    assertEquals([mine.kinds, mine.results, mine.subscription_status], [["subscription_status"], ["applied"], "canceled"]);
    const after = await state(orgId);
    assertEquals([after.status, after.invoices], ["canceled", 1]);
    const [history] = await sql`select action, actor_kind::text from public.subscription_history
      where organization_id = ${orgId} order by created_at desc, id desc limit 1`;
    assertEquals({ ...history }, { action: "canceled", actor_kind: "provider" });
    const again = await reconcile();
    assert(!((again.body.subscriptions as Json).items as Json[]).some((o) => o.provider_subscription_id === subId));
  },
});

Deno.test({
  name: "reconcile without the service role key: 401 or 403, and nothing is asked of Razorpay",
  ...testOptions,
  fn: async () => {
    const { subId } = await paidSubscription();
    await fake("/__control/razorpay/subscriptions/charge", { subscription_id: subId, amount: PRICE });
    const fetched = async () =>
      (await fakeCalls("razorpay.subscriptions.fetch")) + (await fakeCalls("razorpay.invoices.list")) +
      (await fakeCalls("razorpay.payments.fetch"));
    const before = await fetched();
    const user = await createUser(sql);
    const cases: [string, Promise<{ status: number; body: Json }>, number][] = [
      ["no token", call("reconcile", {}), 401],
      ["a malformed token", call("reconcile", { token: "not-a-jwt" }), 401],
      ["the anon key", call("reconcile", { token: env("SUPABASE_ANON_KEY") }), 403],
      ["a user's token", call("reconcile", { token: await mintToken(user) }), 403],
    ];
    for (const [name, promise, status] of cases) {
      const r = await promise;
      assertEquals(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
    }
    const bad = await call("reconcile", {
      token: env("SUPABASE_SERVICE_ROLE_KEY"),
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ limit: 0 }),
    });
    assertEquals([bad.status, bad.body.code], [400, "invalid_input"]);
    assertEquals(await fetched(), before, "a refused call asks Razorpay nothing");
    const [due] = await sql`select count(*)::int as n from billing.reconcile_due_subscriptions(1000)
      where provider_subscription_id = ${subId}`;
    assertEquals(due.n, 1, "the subscription is still due");
    await assertRejects(sql`select * from billing.reconcile_due_subscriptions(0)`, /p_limit must be between 1 and 1000/);
  },
});

async function assertRejects(p: Promise<unknown>, pattern: RegExp) {
  try {
    await p;
  } catch (e) {
    assert(pattern.test((e as Error).message), (e as Error).message);
    return;
  }
  throw new Error("expected a rejection");
}

Deno.test({ name: "close the test database connection", ...testOptions, fn: () => sql.end() });
