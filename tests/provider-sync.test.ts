// The provider-sync worker end to end: decisions queue provider actions the way the product takes
// them (an owner's public.cancel_subscription, an operator's billing.operator_refund), the worker
// carries them out against the fake Razorpay and PayU APIs through the local functions server,
// and the fakes' call logs prove what reached the provider and how often. Also in-process: an
// unknown kind and a timeout, through the adapters over the same fakes.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createRazorpayAdapter } from "../supabase/functions/_shared/providers/razorpay/index.ts";
import type { ProviderAction } from "../supabase/functions/_shared/providers/types.ts";
import { outcomeOf } from "../supabase/functions/provider-sync/sync.ts";
import { adminSql, createUser, env, mintToken, callFunction as call } from "./helpers.ts";
import { payuPost, rzpEvent, rzpPayment, sendPayu, sendRzp } from "./provider-messages.ts";

type Json = Record<string, unknown>;

const sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

// -------------------------------------------------------------------------------------------------
// Fixture: plans of this file, organizations with an owner

const suffix = rand();
const PLANS = { onetime: `t_sync_once_${suffix}`, recurring: `t_sync_rec_${suffix}` };
const PRICE = 49900;
/** A one-time order for PRICE: the price plus 18 % GST (seller and buyer in Karnataka). */
const TOTAL = 58882;
const RZP_PLAN_ID = `plan_sync_${suffix}`;

let plansReady: Promise<void> | undefined;
function ensurePlans(): Promise<void> {
  plansReady ??= (async () => {
    await sql`update public.billing_settings
      set gst_rate_bp = 1800, prices_include_tax = false,
          seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
          seller_gstin = case when left(seller_gstin, 2) = '29' then seller_gstin end, seller_state_code = '29'`;
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, active)
      values
        (${PLANS.onetime}, 'Sync Basic (monthly)', 'basic', 'month', ${PRICE}, 'INR', '{}'::jsonb, true),
        (${PLANS.recurring}, 'Sync Pro (monthly)', 'pro', 'month', ${PRICE}, 'INR',
          ${JSON.stringify({ razorpay: { plan_id: RZP_PLAN_ID } })}::text::jsonb, true)`;
  })();
  return plansReady;
}

async function makeOrg(): Promise<{ id: string; owner: string }> {
  await ensurePlans();
  const owner = await createUser(sql);
  const [{ id }] = await sql`insert into public.organizations (name, billing_email)
    values (${`Sync ${rand()}`}, 'billing@example.in') returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${id}, ${owner}, 'owner')`;
  return { id, owner };
}

const json = (body: unknown) => ({ headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

async function fake(path: string, body?: unknown) {
  const res = await fetch(`${env("FAKE_UPSTREAMS_URL")}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return await res.json();
}

interface Call {
  route: string;
  path: string;
  body: Json;
  idempotency_key: string | null;
  receipt: string | null;
  token: string | null;
  status: number | null;
}
/** The fake's recorded calls of routes starting with `route`, for which `match` holds. */
async function calls(route: string, match: (c: Call) => boolean = () => true): Promise<Call[]> {
  return ((await fake(`/__control/calls?route=${encodeURIComponent(route)}`)).calls as Call[]).filter(match);
}

/** One worker call with the service role key. */
const worker = () => call("provider-sync", { token: env("SUPABASE_SERVICE_ROLE_KEY"), ...json({}) });

/** Runs the worker until it claims nothing (what earlier test files queued included). */
async function drain() {
  for (let i = 0; i < 50; i++) {
    const r = await worker();
    assertEquals(r.status, 200, JSON.stringify(r.body));
    if (r.body.claimed === 0) return;
  }
  throw new Error("the queue did not drain");
}

async function actionsOf(orgId: string, kind?: string) {
  return await sql`select id, kind::text, state::text, attempts, max_attempts, next_attempt_at, last_error, result,
      target, payload, idempotency_key, next_attempt_at - now() as wait
    from billing.provider_actions where organization_id = ${orgId} and (${kind ?? null}::text is null or kind::text = ${kind ?? null})
    order by created_at`;
}

/** Makes an action due now (the worker runs its own transactions, so the test moves the action, not the clock). */
const makeDue = (id: string) => sql`update billing.provider_actions set next_attempt_at = now() - interval '1 second' where id = ${id}`;

async function checkout(org: { id: string; owner: string }, planCode: string, provider: string) {
  const res = await call("checkout", {
    token: await mintToken(org.owner),
    ...json({ organization_id: org.id, plan_code: planCode, provider }),
  });
  assertEquals(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

/** An organization whose Razorpay recurring subscription is active here and at the fake Razorpay. */
async function razorpaySubscriber() {
  const org = await makeOrg();
  const res = await checkout(org, PLANS.recurring, "razorpay");
  const subId = res.subscription_id as string;
  const payId = `pay_${rand()}`;
  await fake("/__control/razorpay/payments", rzpPayment(payId, PRICE, { invoice_id: `inv_${rand()}` }));
  const signature = createHmac("sha256", env("RAZORPAY_KEY_SECRET")).update(`${payId}|${subId}`).digest("hex");
  const verify = await call("razorpay-verify", {
    token: await mintToken(org.owner),
    ...json({ billing_order_id: res.billing_order_id, razorpay_payment_id: payId, razorpay_signature: signature }),
  });
  assertEquals([verify.status, verify.body.subscription_status], [200, "active"], JSON.stringify(verify.body));
  // Razorpay activates the subscription once the mandate is authorised and charged.
  await fake("/__control/razorpay/subscriptions", { id: subId, status: "active" });
  return { org, subId };
}

/** public.cancel_subscription as the signed-in owner (as PostgREST runs an RPC). */
async function ownerCancels(org: { id: string; owner: string }, atPeriodEnd = true) {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${JSON.stringify({ sub: org.owner, role: "authenticated" })}, true)`;
    const [{ r }] = await tx`select public.cancel_subscription(${org.id}, ${atPeriodEnd}) as r`;
    return r as Json;
  });
}

async function entitlements(orgId: string): Promise<Json> {
  const [{ e }] = await sql`select public.get_entitlements(${orgId}) as e`;
  return e;
}

// -------------------------------------------------------------------------------------------------

Deno.test({
  name: "provider-sync: without the service key 401 or 403, and nothing is claimed or sent",
  ...testOptions,
  fn: async () => {
    await drain();
    const { org, subId } = await razorpaySubscriber();
    await ownerCancels(org);
    const before = (await calls("razorpay.")).length + (await calls("payu.")).length;
    const noToken = await call("provider-sync", json({}));
    const user = await call("provider-sync", { token: await mintToken(org.owner), ...json({}) });
    const anon = await call("provider-sync", { token: env("SUPABASE_ANON_KEY"), ...json({}) });
    const forged = await call("provider-sync", {
      token: `${env("SUPABASE_SERVICE_ROLE_KEY").slice(0, -4)}AAAA`,
      ...json({}),
    });
    assertEquals([noToken.status, user.status, anon.status, forged.status], [401, 403, 403, 401]);
    assertEquals((await calls("razorpay.")).length + (await calls("payu.")).length, before, "nothing reached a fake");
    assertEquals((await actionsOf(org.id)).map((a) => [a.kind, a.state, a.attempts]), [["cancel", "pending", 0]]);
    assertEquals((await calls("razorpay.subscriptions.cancel", (c) => c.path.includes(subId))).length, 0);
    await drain();
  },
});

Deno.test({
  name: "provider-sync: an owner's cancel at cycle end reaches Razorpay exactly once with 10 workers at once; the webhook completes it",
  ...testOptions,
  fn: async () => {
    await drain();
    const { org, subId } = await razorpaySubscriber();
    const answer = await ownerCancels(org);
    assert(answer.provider_action && typeof (answer.provider_action as Json).provider_action_id === "string");
    const runs = await Promise.all(Array.from({ length: 10 }, () => worker()));
    assertEquals(runs.map((r) => r.status), Array(10).fill(200));
    const mine = runs.flatMap((r) => (r.body.actions as Json[]).filter((a) => a.id === (answer.provider_action as Json).provider_action_id));
    assertEquals(mine.map((a) => [a.kind, a.state]), [["cancel", "succeeded"]], "one worker got it");
    const sent = await calls("razorpay.subscriptions.cancel", (c) => c.path.includes(subId));
    assertEquals(sent.map((c) => [c.path, c.body, c.status]), [[`/v1/subscriptions/${subId}/cancel`, { cancel_at_cycle_end: 1 }, 200]]);
    const [action] = await actionsOf(org.id, "cancel");
    assertEquals([action.state, action.attempts, action.last_error, action.result.provider_subscription_id], [
      "succeeded", 1, null, subId,
    ]);
    // More workers later send nothing more.
    await worker();
    assertEquals((await calls("razorpay.subscriptions.cancel", (c) => c.path.includes(subId))).length, 1);
    // Razorpay cancels at the cycle end and says so: the subscription ends here.
    const hook = await sendRzp(rzpEvent("subscription.cancelled", {
      subscription: { entity: { id: subId, entity: "subscription", plan_id: RZP_PLAN_ID, status: "cancelled", notes: [] } },
    }));
    assertEquals(hook.status, 200, JSON.stringify(hook.body));
    const [sub] = await sql`select status from public.subscriptions where organization_id = ${org.id}`;
    assertEquals(sub.status, "canceled");
  },
});

Deno.test({
  name: "provider-sync: three 500s then success: one effective call, attempts recorded, the backoff respected",
  ...testOptions,
  fn: async () => {
    await drain();
    const { org, subId } = await razorpaySubscriber();
    await ownerCancels(org);
    await fake("/__control/razorpay", { fail_status: 500, fail_count: 3, fail_routes: [subId] });
    try {
      for (let attempt = 1; attempt <= 3; attempt++) {
        await worker();
        const [a] = await actionsOf(org.id, "cancel");
        assertEquals([a.state, a.attempts], ["pending", attempt]);
        assert(/500/.test(a.last_error), a.last_error);
        // Backoff: 30 s doubled per attempt, up to a fifth more (jitter).
        const waitMs = new Date(a.next_attempt_at).getTime() - Date.now();
        const base = 30_000 * 2 ** (attempt - 1);
        assert(waitMs > base - 5_000 && waitMs <= base * 1.2 + 1_000, `attempt ${attempt}: waits ${waitMs} ms`);
        // Not due yet: a worker now sends nothing.
        await worker();
        assertEquals((await calls("razorpay.subscriptions.cancel", (c) => c.path.includes(subId))).length, attempt);
        await makeDue(a.id);
      }
      await worker();
    } finally {
      await fake("/__control/razorpay", { reset: true });
    }
    const sent = await calls("razorpay.subscriptions.cancel", (c) => c.path.includes(subId));
    assertEquals(sent.map((c) => c.status), [500, 500, 500, 200]);
    const [a] = await actionsOf(org.id, "cancel");
    assertEquals([a.state, a.attempts, a.last_error], ["succeeded", 4, null]);
  },
});

Deno.test({
  name: "provider-sync: a 429 waits for its Retry-After",
  ...testOptions,
  fn: async () => {
    await drain();
    const { org, subId } = await razorpaySubscriber();
    await ownerCancels(org);
    await fake("/__control/razorpay", { fail_status: 429, fail_count: 1, fail_retry_after: 900, fail_routes: [subId] });
    try {
      await worker();
    } finally {
      await fake("/__control/razorpay", { reset: true });
    }
    const [a] = await actionsOf(org.id, "cancel");
    assertEquals([a.state, a.attempts], ["pending", 1]);
    const waitS = (new Date(a.next_attempt_at).getTime() - Date.now()) / 1000;
    assert(waitS > 890 && waitS <= 901, `waits ${waitS} s`);
  },
});

Deno.test({
  name: "provider-sync: a 400 fails the action with Razorpay's message; the owner sees it and a notification is queued",
  ...testOptions,
  fn: async () => {
    await drain();
    const { org, subId } = await razorpaySubscriber();
    await ownerCancels(org);
    const message = "Subscription is not cancellable in expired status.";
    await fake("/__control/razorpay", { fail_status: 400, fail_count: 1, fail_message: message, fail_routes: [subId] });
    try {
      await worker();
    } finally {
      await fake("/__control/razorpay", { reset: true });
    }
    const [a] = await actionsOf(org.id, "cancel");
    assertEquals([a.state, a.attempts], ["failed", 1]);
    assert(a.last_error.includes(message), a.last_error);
    // Not tried again.
    await makeDue(a.id);
    await worker();
    assertEquals((await calls("razorpay.subscriptions.cancel", (c) => c.path.includes(subId))).length, 1);
    const seen = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
        set_config('request.jwt.claims', ${JSON.stringify({ sub: org.owner, role: "authenticated" })}, true)`;
      const [{ r }] = await tx`select public.get_provider_actions(${org.id}) as r`;
      return r;
    });
    assert(JSON.stringify(seen).includes(message), JSON.stringify(seen));
    const notes = await sql`select payload from public.notifications
      where organization_id = ${org.id} and kind = 'provider_action_failed'`;
    assertEquals(notes.length, 1);
    assertEquals(notes[0].payload.provider_action_id, a.id);
  },
});

Deno.test({
  name: "provider-sync: an operator refunds a Razorpay payment: one refund call, the credit note, the full-refund rule; the webhook is a duplicate",
  ...testOptions,
  fn: async () => {
    await drain();
    const org = await makeOrg();
    const res = await checkout(org, PLANS.onetime, "razorpay");
    const payId = `pay_${rand()}`;
    const payment = rzpPayment(payId, TOTAL, { order_id: res.order_id });
    await fake("/__control/razorpay/payments", payment);
    const paid = await sendRzp(rzpEvent("payment.captured", { payment: { entity: payment } }));
    assertEquals(paid.body.result, "applied", JSON.stringify(paid.body));
    assertEquals((await entitlements(org.id)).plan_code, PLANS.onetime);
    const [pe] = await sql`select id from public.payment_events where organization_id = ${org.id} and status = 'captured'`;
    const [{ id: actionId }] = await sql`select billing.operator_refund(${pe.id}, null, 'customer asked, ticket 42') as id`;

    const run = await worker();
    const mine = (run.body.actions as Json[]).find((a) => a.id === actionId)!;
    assertEquals([mine.state, mine.applied], ["succeeded", ["applied"]], JSON.stringify(mine));
    const sent = await calls("razorpay.payments.refund", (c) => c.path.includes(payId));
    const [action] = await actionsOf(org.id, "refund");
    assertEquals(sent.length, 1);
    assertEquals([sent[0].body.amount, sent[0].receipt], [TOTAL, action.payload.refund_id]);
    assert(sent[0].idempotency_key && sent[0].idempotency_key.length >= 10);
    const [row] = await sql`select
      (select count(*)::int from public.payment_events where organization_id = ${org.id} and status = 'refunded') as refunds,
      (select count(*)::int from public.credit_notes where organization_id = ${org.id}) as credit_notes`;
    assertEquals({ ...row }, { refunds: 1, credit_notes: 1 });
    const e = await entitlements(org.id);
    assertEquals([e.tier, e.reason], ["free", "canceled"], "a full refund ends the paid period");

    // Razorpay's refund.processed webhook for the same refund arrives later: nothing twice.
    const refund = (await fake("/__control/razorpay/orders")).refunds.find((r: Json) => r.payment_id === payId);
    const hook = await sendRzp(rzpEvent("refund.processed", { refund: { entity: refund }, payment: { entity: payment } }));
    assertEquals([hook.status, hook.body.result], [200, "duplicate"], JSON.stringify(hook.body));
    const [after] = await sql`select
      (select count(*)::int from public.payment_events where organization_id = ${org.id} and status = 'refunded') as refunds,
      (select count(*)::int from public.credit_notes where organization_id = ${org.id}) as credit_notes`;
    assertEquals({ ...after }, { refunds: 1, credit_notes: 1 });
  },
});

Deno.test({
  name: "provider-sync: an operator refunds a PayU payment: verify_payment for the mihpayid, one cancel_refund_transaction with our token, the credit note",
  ...testOptions,
  fn: async () => {
    await drain();
    const org = await makeOrg();
    const res = await checkout(org, PLANS.onetime, "payu");
    const fields = res.fields as Record<string, string>;
    const mihpayid = String(Date.now()).slice(-10) + String(Math.floor(Math.random() * 1000));
    const hook = await sendPayu("payu-webhook", payuPost(fields, "success", mihpayid));
    assertEquals(hook.body.result, "applied", JSON.stringify(hook.body));
    await fake("/__control/payu/transactions", {
      [fields.txnid]: { mihpayid, status: "success", unmappedstatus: "captured", amt: fields.amount, mode: "UPI",
        addedon: "2026-12-01 10:00:00", productinfo: fields.productinfo, firstname: fields.firstname, email: fields.email },
    });
    const [pe] = await sql`select id from public.payment_events where organization_id = ${org.id} and status = 'captured'`;
    const [{ id: actionId }] = await sql`select billing.operator_refund(${pe.id}, null, 'duplicate charge, ticket 43') as id`;

    const run = await worker();
    const mine = (run.body.actions as Json[]).find((a) => a.id === actionId)!;
    assertEquals([mine.state, mine.applied], ["succeeded", ["applied"]], JSON.stringify(mine));
    const [action] = await actionsOf(org.id, "refund");
    const verifies = await calls("payu.verify_payment", (c) => c.body.var1 === fields.txnid);
    const refunds = await calls("payu.cancel_refund_transaction", (c) => c.body.var1 === mihpayid);
    assertEquals(verifies.length, 1);
    assertEquals(refunds.map((c) => [c.token, c.body.var3]), [[action.payload.refund_id, fields.amount]]);
    assertEquals([action.state, action.result.mihpayid], ["succeeded", mihpayid]);
    const [row] = await sql`select
      (select count(*)::int from public.payment_events where organization_id = ${org.id} and status = 'refunded') as refunds,
      (select count(*)::int from public.credit_notes where organization_id = ${org.id}) as credit_notes`;
    assertEquals({ ...row }, { refunds: 1, credit_notes: 1 });
    const e = await entitlements(org.id);
    assertEquals([e.tier, e.reason], ["free", "canceled"], "a full refund ends the paid period");
  },
});

Deno.test({
  name: "provider-sync: an action its provider cannot carry out fails with a clear reason and nothing is sent",
  ...testOptions,
  fn: async () => {
    await drain();
    const org = await makeOrg();
    // A PayU checkout is a one-time payment: there is no PayU subscription to pause.
    const [{ id }] = await sql`select billing.queue_provider_action(${org.id}, 'payu', 'pause',
      '{"provider_subscription_id": "none"}'::jsonb, '{}'::jsonb, ${`test:pause:${rand()}`}) as id`;
    const before = (await calls("payu.")).length;
    await worker();
    const [a] = await actionsOf(org.id);
    assertEquals([a.id, a.state, a.last_error], [id, "failed", "payu cannot carry out a pause action"]);
    assertEquals((await calls("payu.")).length, before);
  },
});

Deno.test({
  name: "provider-sync in-process: an unknown kind is refused before any adapter is asked",
  ...testOptions,
  fn: async () => {
    const sent: string[] = [];
    const adapter = createRazorpayAdapter(
      (n) => ({ RAZORPAY_KEY_ID: "rzp_test_k", RAZORPAY_KEY_SECRET: "s", RAZORPAY_API_BASE: "http://razorpay.invalid/v1" })[n],
      { fetch: ((input: string | URL | Request) => (sent.push(String(input)), Promise.reject(new Error("no")))) as typeof fetch },
    );
    const action: ProviderAction = {
      id: crypto.randomUUID(), organization_id: crypto.randomUUID(), provider: "razorpay", kind: "void_order",
      target: { provider_order_id: "order_1" }, payload: {}, idempotency_key: "k", attempts: 1,
    };
    assertEquals(await outcomeOf(action, () => adapter), {
      outcome: "failed",
      error: 'unknown provider action kind "void_order": nothing was sent',
    });
    assertEquals(await adapter.performAction!(action), { outcome: "failed", error: 'unknown provider action kind "void_order"' });
    assertEquals(sent, []);
  },
});

Deno.test({
  name: "provider-sync in-process: a Razorpay call that times out is a retry, and the fake recorded it",
  ...testOptions,
  fn: async () => {
    const subId = `sub_${rand()}`;
    await fake("/__control/razorpay/subscriptions", { id: subId, status: "active" });
    await fake("/__control/razorpay", { fail_status: 504, fail_count: 1, fail_hang_ms: 1500, fail_routes: [subId] });
    try {
      const adapter = createRazorpayAdapter((n) =>
        ({
          RAZORPAY_KEY_ID: env("RAZORPAY_KEY_ID"),
          RAZORPAY_KEY_SECRET: env("RAZORPAY_KEY_SECRET"),
          RAZORPAY_API_BASE: `${env("FAKE_UPSTREAMS_URL")}/v1`,
        })[n], { timeoutMs: 200 });
      const outcome = await adapter.performAction!({
        id: crypto.randomUUID(), organization_id: crypto.randomUUID(), provider: "razorpay", kind: "pause",
        target: { provider_subscription_id: subId }, payload: {}, idempotency_key: `pause:${subId}`, attempts: 1,
      });
      assertEquals(outcome, { outcome: "retry", error: "Razorpay did not answer in time", retryAfterSeconds: null });
      assertEquals((await calls("razorpay.subscriptions.pause", (c) => c.path.includes(subId))).length, 1);
    } finally {
      await fake("/__control/razorpay", { reset: true });
    }
  },
});

Deno.test({ name: "close the test database connection", ...testOptions, fn: () => sql.end() });
