// Payments end to end through the local functions server, the real database and the fake
// Razorpay / PayU APIs: checkout (PayU, Razorpay one-time and recurring), signed webhooks, the
// Checkout verification, PayU's return POST, reconciliation; exactly-once under concurrency,
// rejected deliveries that change nothing, out-of-order events, checkout refusals.
//
// Signatures here are computed with node:crypto (not our providers/crypto.ts), from the
// documented formulas, so a wrong hash in our code fails these tests.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { adminSql, createUser, env, mintToken, callFunction as call } from "./helpers.ts";
import { payuPost, rzpEvent, rzpPayment, rzpSign, sendPayu, sendRzp } from "./provider-messages.ts";

type Sql = ReturnType<typeof adminSql>;
type Json = Record<string, unknown>;

const sql: Sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

// -------------------------------------------------------------------------------------------------
// Fixture: plans made for this file, an organization with an owner, an admin, a member, a stranger

const suffix = rand();
const PLANS = {
  onetime: `t_pay_once_${suffix}`,
  recurring: `t_pay_rec_${suffix}`,
  inactive: `t_pay_off_${suffix}`,
};
const PRICE = 49900;
// What a one-time order for PRICE charges: the price plus 18 % GST (CGST 4491 + SGST 4491: the
// seller and an organization with no state are both in Karnataka). Razorpay recurring orders
// charge PRICE itself, GST carved out of it (Razorpay's plan amount is fixed).
const TOTAL = 58882;
const RZP_PLAN_ID = `plan_test_${suffix}`;

let plansReady: Promise<void> | undefined;
function ensurePlans(): Promise<void> {
  plansReady ??= (async () => {
    // Tax-exclusive prices at 18 % and a seller in Karnataka (the seed's), whatever ran before.
    await sql`update public.billing_settings
      set gst_rate_bp = 1800, prices_include_tax = false,
          seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
          seller_gstin = case when left(seller_gstin, 2) = '29' then seller_gstin end, seller_state_code = '29'`;
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, active)
      values
        (${PLANS.onetime}, 'Test Basic (monthly)', 'basic', 'month', ${PRICE}, 'INR', '{}'::jsonb, true),
        (${PLANS.recurring}, 'Test Pro (monthly)', 'pro', 'month', ${PRICE}, 'INR',
          ${JSON.stringify({ razorpay: { plan_id: RZP_PLAN_ID } })}::text::jsonb, true),
        (${PLANS.inactive}, 'Test Retired', 'pro', 'month', ${PRICE}, 'INR', '{}'::jsonb, false)`;
  })();
  return plansReady;
}

interface Org {
  id: string;
  owner: string;
  admin: string;
  member: string;
  stranger: string;
}

async function makeOrg(): Promise<Org> {
  await ensurePlans();
  const [owner, admin, member, stranger] = await Promise.all([1, 2, 3, 4].map(() => createUser(sql)));
  const [{ id }] = await sql`insert into public.organizations (name, billing_email)
    values (${`Payments ${rand()}`}, 'billing@example.in') returning id`;
  // Three members in a free organization, past the free plan's max_members (1): these tests are
  // about who may pay, so the fixture skips the limit's trigger (replica mode skips user triggers).
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`insert into public.organization_members (organization_id, user_id, role) values
      (${id}, ${owner}, 'owner'), (${id}, ${admin}, 'admin'), (${id}, ${member}, 'member')`;
  });
  return { id, owner, admin, member, stranger };
}

async function checkout(org: Org, planCode: string, provider: string, user = org.owner) {
  return await call("checkout", {
    token: await mintToken(user),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_id: org.id, plan_code: planCode, provider }),
  });
}

async function entitlements(orgId: string): Promise<Json> {
  const [{ exists }] = await sql`select to_regprocedure('public.get_entitlements(uuid)') is not null as exists`;
  if (exists) {
    const [{ e }] = await sql`select public.get_entitlements(${orgId}) as e`;
    return e;
  }
  const [row] = await sql`select p.code as plan_code, s.status from public.subscriptions s
    join public.billing_plans p on p.id = s.plan_id
    where s.organization_id = ${orgId} and s.status in ('trialing', 'active', 'past_due')`;
  return row ?? { plan_code: "free", status: "free" };
}

/** Every billing row an organization has, for "nothing changed" comparisons. */
async function billingState(orgId: string) {
  const [state] = await sql`select
    (select count(*)::int from public.payment_events where organization_id = ${orgId}) as payment_events,
    (select count(*)::int from public.subscription_history where organization_id = ${orgId}) as history,
    (select coalesce(json_agg(json_build_object('status', s.status, 'end', s.current_period_end) order by s.id), '[]')
       from public.subscriptions s where s.organization_id = ${orgId}) as subscriptions,
    (select coalesce(json_agg(json_build_object('status', o.status) order by o.id), '[]')
       from public.orders o where o.organization_id = ${orgId}) as orders`;
  return state;
}

const webhookCount = async () => (await sql`select count(*)::int as n from billing.webhook_events`)[0].n;

// -------------------------------------------------------------------------------------------------
// Provider objects and the fakes' control API (messages: tests/provider-messages.ts)

function rzpSubscription(id: string, status: string): Json {
  return { id, entity: "subscription", plan_id: RZP_PLAN_ID, status, notes: [] };
}

async function fake(path: string, body?: unknown) {
  const res = await fetch(`${env("FAKE_UPSTREAMS_URL")}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return await res.json();
}

/** A Razorpay one-time checkout for a new organization: the org, our order id, Razorpay's order id. */
async function razorpayOrder() {
  const org = await makeOrg();
  const res = await checkout(org, PLANS.onetime, "razorpay");
  assertEquals(res.status, 200, JSON.stringify(res.body));
  return { org, orderId: res.body.billing_order_id as string, rzpOrderId: res.body.order_id as string, res };
}

/** A Razorpay recurring checkout for a new organization. */
async function razorpaySubscription() {
  const org = await makeOrg();
  const res = await checkout(org, PLANS.recurring, "razorpay");
  assertEquals(res.status, 200, JSON.stringify(res.body));
  return { org, orderId: res.body.billing_order_id as string, subId: res.body.subscription_id as string, res };
}

// -------------------------------------------------------------------------------------------------
// Checkout and the happy paths

Deno.test({
  name: "PayU: checkout returns a signed form for _payment that the fake PayU accepts; its webhook activates the plan",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const res = await checkout(org, PLANS.onetime, "payu", org.admin);
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const fields = res.body.fields as Record<string, string>;
    assertEquals(res.body.action_url, `${env("PAYU_BASE_URL")}/_payment`);
    assertEquals(fields.amount, "588.82");
    assertEquals(fields.surl, `${env("SUPABASE_URL")}/functions/v1/payu-return`);
    assertEquals(fields.furl, `${env("SUPABASE_URL")}/functions/v1/payu-return`);
    assert(fields.txnid.length <= 25);
    assertEquals(fields.email, "billing@example.in");
    const expectedHash = createHash("sha512").update([
      env("PAYU_MERCHANT_KEY"), fields.txnid, fields.amount, fields.productinfo, fields.firstname, fields.email,
      fields.udf1, fields.udf2, fields.udf3, fields.udf4, fields.udf5, "", "", "", "", "", env("PAYU_MERCHANT_SALT"),
    ].join("|")).digest("hex");
    assertEquals(fields.hash, expectedHash);
    const page = await fetch(res.body.action_url as string, { method: "POST", body: new URLSearchParams(fields) });
    await page.body?.cancel();
    assertEquals(page.status, 200);
    const [order] = await sql`select status, amount_cents::int, receipt from public.orders where id = ${res.body.billing_order_id as string}`;
    assertEquals(order, { status: "pending", amount_cents: TOTAL, receipt: fields.txnid });
    assertEquals((await entitlements(org.id)).plan_code, "free");

    const hook = await sendPayu("payu-webhook", payuPost(fields, "success", `mih${rand()}`));
    assertEquals(hook.status, 200, JSON.stringify(hook.body));
    assertEquals(hook.body.result, "applied");
    const e = await entitlements(org.id);
    assertEquals([e.plan_code, e.status], [PLANS.onetime, "active"]);
  },
});

Deno.test({
  name: "Razorpay one-time: checkout creates a Razorpay order; a signed order.paid webhook activates the plan",
  ...testOptions,
  fn: async () => {
    const { org, orderId, rzpOrderId, res } = await razorpayOrder();
    assertEquals(res.body.key_id, env("RAZORPAY_KEY_ID"));
    assertEquals([res.body.amount, res.body.currency], [TOTAL, "INR"]);
    assert(/^order_/.test(rzpOrderId));
    const created = (await fake("/__control/razorpay/orders")).orders.find((o: Json) => o.id === rzpOrderId);
    const [order] = await sql`select status, receipt, provider_order_id from public.orders where id = ${orderId}`;
    assertEquals(order, { status: "pending", receipt: created.receipt, provider_order_id: rzpOrderId });
    assertEquals(created.amount, TOTAL);

    const payId = `pay_${rand()}`;
    const hook = await sendRzp(rzpEvent("order.paid", {
      payment: { entity: rzpPayment(payId, TOTAL, { order_id: rzpOrderId }) },
      order: { entity: { ...created, status: "paid", amount_paid: TOTAL } },
    }));
    assertEquals(hook.status, 200, JSON.stringify(hook.body));
    assertEquals(hook.body.result, "applied");
    const e = await entitlements(org.id);
    assertEquals([e.plan_code, e.status], [PLANS.onetime, "active"]);
  },
});

Deno.test({
  name: "Razorpay recurring: checkout creates a subscription; razorpay-verify and subscription.charged apply the payment once",
  ...testOptions,
  fn: async () => {
    const { org, orderId, subId, res } = await razorpaySubscription();
    assert(/^sub_/.test(subId));
    assertEquals(res.body.key_id, env("RAZORPAY_KEY_ID"));
    const created = (await fake("/__control/razorpay/orders")).subscriptions.find((s: Json) => s.id === subId);
    assertEquals(created.plan_id, RZP_PLAN_ID);

    const payId = `pay_${rand()}`;
    await fake("/__control/razorpay/payments", rzpPayment(payId, PRICE, { invoice_id: `inv_${rand()}` }));
    const signature = createHmac("sha256", env("RAZORPAY_KEY_SECRET")).update(`${payId}|${subId}`).digest("hex");
    const token = await mintToken(org.owner);
    const verify = await call("razorpay-verify", {
      token,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ billing_order_id: orderId, razorpay_payment_id: payId, razorpay_signature: signature }),
    });
    assertEquals(verify.status, 200, JSON.stringify(verify.body));
    assertEquals([verify.body.result, verify.body.order_status, verify.body.subscription_status], [
      "applied",
      "paid",
      "active",
    ]);

    const hook = await sendRzp(rzpEvent("subscription.charged", {
      subscription: { entity: { ...rzpSubscription(subId, "active"), notes: created.notes } },
      payment: { entity: rzpPayment(payId, PRICE) },
    }));
    assertEquals(hook.status, 200, JSON.stringify(hook.body));
    assertEquals(hook.body.result, "duplicate");
    const [counts] = await sql`select
      (select count(*)::int from public.payment_events where organization_id = ${org.id} and status = 'captured') as payments,
      (select count(*)::int from public.subscription_history where organization_id = ${org.id}) as history,
      (select s.provider_subscription_id from public.subscriptions s where s.organization_id = ${org.id}) as sub`;
    assertEquals(counts, { payments: 1, history: 1, sub: subId });
    const e = await entitlements(org.id);
    assertEquals([e.plan_code, e.status], [PLANS.recurring, "active"]);

    // A forged Checkout signature is refused and applies nothing.
    const forged = await call("razorpay-verify", {
      token,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ billing_order_id: orderId, razorpay_payment_id: `pay_${rand()}`, razorpay_signature: signature }),
    });
    assertEquals([forged.status, forged.body.code], [400, "invalid_signature"]);
    // A stranger cannot even see the order.
    const stranger = await call("razorpay-verify", {
      token: await mintToken(org.stranger),
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ billing_order_id: orderId, razorpay_payment_id: payId, razorpay_signature: signature }),
    });
    assertEquals([stranger.status, stranger.body.code], [404, "order_not_found"]);
  },
});

Deno.test({
  name: "Razorpay: the webhook first, then razorpay-verify for the same payment: applied once",
  ...testOptions,
  fn: async () => {
    const { org, orderId, rzpOrderId } = await razorpayOrder();
    const payId = `pay_${rand()}`;
    await fake("/__control/razorpay/payments", rzpPayment(payId, TOTAL, { order_id: rzpOrderId }));
    const hook = await sendRzp(rzpEvent("payment.captured", {
      payment: { entity: rzpPayment(payId, TOTAL, { order_id: rzpOrderId }) },
    }));
    assertEquals(hook.body.result, "applied");
    const before = await billingState(org.id);
    const signature = createHmac("sha256", env("RAZORPAY_KEY_SECRET")).update(`${rzpOrderId}|${payId}`).digest("hex");
    const verify = await call("razorpay-verify", {
      token: await mintToken(org.member),
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ billing_order_id: orderId, razorpay_payment_id: payId, razorpay_signature: signature }),
    });
    assertEquals(verify.status, 200, JSON.stringify(verify.body));
    assertEquals([verify.body.result, verify.body.order_status], ["duplicate", "paid"]);
    assertEquals(await billingState(org.id), before);
  },
});

Deno.test({
  name: "Razorpay: a refund.processed webhook is recorded against its payment",
  ...testOptions,
  fn: async () => {
    const { org, rzpOrderId } = await razorpayOrder();
    const payId = `pay_${rand()}`;
    await sendRzp(rzpEvent("payment.captured", { payment: { entity: rzpPayment(payId, TOTAL, { order_id: rzpOrderId }) } }));
    const refund = { id: `rfnd_${rand()}`, entity: "refund", amount: 10000, currency: "INR", payment_id: payId, status: "processed" };
    const first = await sendRzp(rzpEvent("refund.processed", { refund: { entity: refund }, payment: { entity: rzpPayment(payId, TOTAL) } }));
    const again = await sendRzp(rzpEvent("refund.processed", { refund: { entity: refund } }));
    assertEquals([first.body.result, again.body.result], ["applied", "duplicate"]);
    const rows = await sql`select provider_payment_id, amount_cents::int, details ->> 'refund_id' as refund_id
      from public.payment_events where organization_id = ${org.id} and status = 'refunded'`;
    assertEquals(rows.map((r) => ({ ...r })), [{ provider_payment_id: payId, amount_cents: 10000, refund_id: refund.id }]);
  },
});

Deno.test({
  name: "Razorpay: a full refund of the payment that paid the period ends it, through the webhook; a partial one keeps it",
  ...testOptions,
  fn: async () => {
    const { org, rzpOrderId } = await razorpayOrder();
    const payId = `pay_${rand()}`;
    await sendRzp(rzpEvent("payment.captured", { payment: { entity: rzpPayment(payId, TOTAL, { order_id: rzpOrderId }) } }));
    assertEquals((await entitlements(org.id)).plan_code, PLANS.onetime);
    const refund = (id: string, amount: number) =>
      sendRzp(rzpEvent("refund.processed", {
        refund: { entity: { id, entity: "refund", amount, currency: "INR", payment_id: payId, status: "processed" } },
      }));
    assertEquals((await refund(`rfnd_${rand()}`, 1000)).body.result, "applied");
    assertEquals((await entitlements(org.id)).plan_code, PLANS.onetime, "a partial refund keeps the plan");
    assertEquals((await refund(`rfnd_${rand()}`, TOTAL - 1000)).body.result, "applied");
    const e = await entitlements(org.id);
    assertEquals([e.tier, e.reason], ["free", "canceled"], "the full refund ends the paid period");
    const [row] = await sql`select
      (select count(*)::int from public.subscription_history where organization_id = ${org.id} and action = 'refunded'
         and actor_kind = 'provider') as history,
      (select count(*)::int from public.notifications where organization_id = ${org.id} and kind = 'subscription_refunded') as notes,
      (select count(*)::int from public.credit_notes where organization_id = ${org.id}) as credit_notes`;
    assertEquals({ ...row }, { history: 1, notes: 1, credit_notes: 2 });
  },
});

Deno.test({
  name: "Razorpay: a dispute puts the subscription past due, a won one restores it, a lost one ends it; each step once",
  ...testOptions,
  fn: async () => {
    const subscriptionOf = async (orgId: string) =>
      (await sql`select status::text from public.subscriptions where organization_id = ${orgId}`)[0]?.status;
    const run = async (outcome: "won" | "lost") => {
      const { org, rzpOrderId } = await razorpayOrder();
      const payId = `pay_${rand()}`;
      await sendRzp(rzpEvent("payment.captured", { payment: { entity: rzpPayment(payId, TOTAL, { order_id: rzpOrderId }) } }));
      const dispute = (status: string) => ({
        payment: { entity: rzpPayment(payId, TOTAL) },
        dispute: { entity: { id: `disp_${payId}`, entity: "dispute", payment_id: payId, amount: TOTAL, currency: "INR", status } },
      });
      const opened = rzpEvent("payment.dispute.created", dispute("open"));
      assertEquals((await sendRzp(opened)).body.result, "applied");
      assertEquals((await sendRzp(opened)).body.result, "duplicate", "a redelivery is a duplicate");
      assertEquals(await subscriptionOf(org.id), "past_due");
      const closed = await sendRzp(rzpEvent(`payment.dispute.${outcome}`, dispute(outcome)));
      assertEquals(closed.body.result, "applied");
      return org.id;
    };
    const won = await run("won");
    assertEquals(await subscriptionOf(won), "active", "a won dispute restores the subscription");
    const lost = await run("lost");
    assertEquals(await subscriptionOf(lost), "canceled", "a lost dispute ends it");
    assertEquals((await entitlements(lost)).tier, "free");
    const history = await sql`select action, actor_kind from public.subscription_history where organization_id = ${lost}
      and action like 'dispute%' order by effective_at, action`;
    assertEquals(history.map((h) => `${h.action}/${h.actor_kind}`), ["dispute_opened/provider", "dispute_lost/provider"]);
  },
});

Deno.test({
  name: "PayU: 20 superseded checkouts paid at the same moment apply none; only the open checkout is applied",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const forms: Record<string, string>[] = [];
    for (let i = 0; i < 21; i++) {
      const res = await checkout(org, PLANS.onetime, "payu");
      assertEquals(res.status, 200, JSON.stringify(res.body));
      forms.push(res.body.fields as Record<string, string>);
    }
    const superseded = forms.slice(0, 20);
    const answers = await Promise.all(superseded.map((f) => sendPayu("payu-webhook", payuPost(f, "success", `mih${rand()}`))));
    assertEquals(answers.map((a) => a.status), Array(20).fill(200));
    assertEquals(answers.map((a) => a.body.result), Array(20).fill("recorded"));
    assertEquals((await entitlements(org.id)).tier, "free", "no superseded payment bought anything");
    const last = await sendPayu("payu-webhook", payuPost(forms[20], "success", `mih${rand()}`));
    assertEquals(last.body.result, "applied");
    const [row] = await sql`select
      (select count(*)::int from public.payment_events where organization_id = ${org.id} and needs_refund) as to_refund,
      (select count(*)::int from public.payment_events where organization_id = ${org.id} and not needs_refund) as applied,
      (select count(*)::int from public.subscription_history where organization_id = ${org.id}) as history,
      (select count(*)::int from public.invoices where organization_id = ${org.id}) as invoices`;
    assertEquals({ ...row }, { to_refund: 20, applied: 1, history: 1, invoices: 1 });
  },
});

// -------------------------------------------------------------------------------------------------
// Exactly once under concurrency

Deno.test({
  name: "the same webhook delivered 50 times at once (and 20 more under other, unsigned event ids) is one delivery, one payment, one history row, one period",
  ...testOptions,
  fn: async () => {
    const { org, rzpOrderId } = await razorpayOrder();
    const payId = `pay_${rand()}`;
    const body = rzpEvent("payment.captured", { payment: { entity: rzpPayment(payId, TOTAL, { order_id: rzpOrderId }) } });
    const eventId = `evt_${rand()}`;
    const deliveries = [
      ...Array.from({ length: 50 }, () => sendRzp(body, { eventId })),
      ...Array.from({ length: 20 }, () => sendRzp(body)),
    ];
    const results = await Promise.all(deliveries);
    assert(results.every((r) => r.status === 200), JSON.stringify(results.find((r) => r.status !== 200)?.body));
    assertEquals(results.filter((r) => r.body.result === "applied").length, 1);
    const [counts] = await sql`select
      (select count(*)::int from public.payment_events where organization_id = ${org.id}) as payments,
      (select count(*)::int from public.subscription_history where organization_id = ${org.id}) as history,
      (select count(*)::int from billing.webhook_events where payload ->> 'provider_payment_id' = ${payId}) as deliveries,
      (select attempts from billing.webhook_events where payload ->> 'provider_payment_id' = ${payId}) as attempts,
      (select current_period_end = current_period_start + interval '1 month' from public.subscriptions
        where organization_id = ${org.id}) as one_month`;
    // The x-razorpay-event-id header is not signed: the delivery's identity is the signed body's.
    assertEquals(counts, { payments: 1, history: 1, deliveries: 1, attempts: 70, one_month: true });
  },
});

Deno.test({
  name: "PayU: the browser's return POST racing its webhook applies once, and the browser is sent to the app",
  ...testOptions,
  fn: async () => {
    await sql`update public.billing_settings set app_success_url = 'https://app.example.in/billing/success',
      app_failure_url = 'https://app.example.in/billing/failure'`;
    const org = await makeOrg();
    const res = await checkout(org, PLANS.onetime, "payu");
    const fields = res.body.fields as Record<string, string>;
    const post = payuPost(fields, "success", `mih${rand()}`);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => sendPayu(i % 2 ? "payu-webhook" : "payu-return", post)),
    );
    const returns = results.filter((_, i) => i % 2 === 0);
    for (const r of returns) {
      assertEquals(r.status, 303);
      assertEquals(
        r.headers.get("location"),
        `https://app.example.in/billing/success?order=${fields.txnid}&status=paid`,
      );
    }
    assert(results.filter((_, i) => i % 2 === 1).every((r) => r.status === 200));
    const [counts] = await sql`select
      (select count(*)::int from public.payment_events where organization_id = ${org.id}) as payments,
      (select count(*)::int from public.subscription_history where organization_id = ${org.id}) as history`;
    assertEquals(counts, { payments: 1, history: 1 });

    // A failed payment returns the browser to the failure URL.
    const other = await checkout(org, PLANS.onetime, "payu");
    const failed = await sendPayu("payu-return", payuPost(other.body.fields as Record<string, string>, "failure", `mih${rand()}`));
    assertEquals(failed.status, 303);
    assert(failed.headers.get("location")!.startsWith("https://app.example.in/billing/failure?"));
  },
});

// -------------------------------------------------------------------------------------------------
// Deliveries that must change nothing

Deno.test({
  name: "forged, tampered, re-serialised, malformed, empty and 2 MB deliveries get a 4xx and change no billing row",
  ...testOptions,
  fn: async () => {
    const { org, rzpOrderId } = await razorpayOrder();
    const payu = await checkout(org, PLANS.onetime, "payu");
    const fields = payu.body.fields as Record<string, string>;
    const before = await billingState(org.id);
    const hooksBefore = await webhookCount();

    const event = rzpEvent("payment.captured", { payment: { entity: rzpPayment(`pay_${rand()}`, TOTAL, { order_id: rzpOrderId }) } });
    const raw = JSON.stringify(event);
    const tampered = JSON.stringify({
      ...event,
      payload: { payment: { entity: rzpPayment(`pay_${rand()}`, 100, { order_id: rzpOrderId }) } },
    });
    const good = payuPost(fields, "success", `mih${rand()}`);
    const cases: [string, Promise<{ status: number; body: Json }>, number][] = [
      ["razorpay: forged signature", sendRzp(raw, { signature: "0".repeat(64) }), 401],
      ["razorpay: signed with another secret", sendRzp(raw, { signature: rzpSign(raw, "not-the-secret") }), 401],
      ["razorpay: tampered amount", sendRzp(tampered, { signedRaw: raw }), 401],
      ["razorpay: body re-serialised after signing", sendRzp(JSON.stringify(event, null, 2), { signedRaw: raw }), 401],
      ["razorpay: malformed JSON (signed)", sendRzp("{\"event\": ", {}), 400],
      ["razorpay: no signature header", call("razorpay-webhook", { body: raw, headers: { "x-razorpay-event-id": "evt_x" } }), 401],
      ["razorpay: empty body", sendRzp(""), 400],
      ["razorpay: 2 MB body", sendRzp("x".repeat(2 * 1024 * 1024)), 413],
      ["payu: forged hash", sendPayu("payu-webhook", { ...good, hash: "0".repeat(128) }), 401],
      ["payu: tampered amount", sendPayu("payu-webhook", { ...good, amount: "1.00" }), 401],
      ["payu return: tampered status", sendPayu("payu-return", { ...payuPost(fields, "failure", "mih1"), status: "success" }), 401],
      ["payu: malformed form", sendPayu("payu-webhook", "%%%&&&==%zz"), 401],
      ["payu: JSON instead of a form", sendPayu("payu-webhook", JSON.stringify(good)), 401],
      ["payu: empty body", sendPayu("payu-webhook", ""), 400],
      ["payu: 2 MB body", sendPayu("payu-webhook", `a=${"x".repeat(2 * 1024 * 1024)}`), 413],
    ];
    for (const [name, promise, status] of cases) {
      const r = await promise;
      assertEquals(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
      assertEquals(typeof r.body.code, "string", `${name} answers with a code`);
    }
    assertEquals(await billingState(org.id), before);
    assertEquals(await webhookCount(), hooksBefore);
  },
});

Deno.test({
  name: "a signed payment with another amount or currency is recorded as a mismatch and activates nothing",
  ...testOptions,
  fn: async () => {
    const { org, orderId, rzpOrderId } = await razorpayOrder();
    const low = await sendRzp(rzpEvent("payment.captured", {
      payment: { entity: rzpPayment(`pay_${rand()}`, TOTAL - 100, { order_id: rzpOrderId }) },
    }));
    const usd = await sendRzp(rzpEvent("payment.captured", {
      payment: { entity: rzpPayment(`pay_${rand()}`, TOTAL, { order_id: rzpOrderId, currency: "USD" }) },
    }));
    assertEquals([low.status, low.body.result, usd.status, usd.body.result], [200, "mismatch", 200, "mismatch"]);
    const rows = await sql`select status from public.payment_events where order_id = ${orderId}`;
    assertEquals(rows.map((r) => r.status), ["mismatch", "mismatch"]);
    const [order] = await sql`select status from public.orders where id = ${orderId}`;
    assertEquals(order.status, "pending");
    assertEquals((await entitlements(org.id)).plan_code, "free");
    const errors = await sql`select last_error from billing.webhook_events
      where payload ->> 'provider_order_id' = ${rzpOrderId} order by received_at`;
    assert(errors.every((e) => /amount mismatch/.test(e.last_error)));
  },
});

Deno.test({
  name: "an unknown event type is acknowledged and recorded, and changes nothing else",
  ...testOptions,
  fn: async () => {
    const { org, rzpOrderId } = await razorpayOrder();
    const before = await billingState(org.id);
    const eventId = `evt_${rand()}`;
    const paymentId = `pay_${rand()}`;
    const res = await sendRzp(rzpEvent("payment.downtime.started", {
      payment: { entity: rzpPayment(paymentId, TOTAL, { order_id: rzpOrderId }) },
    }), { eventId });
    assertEquals([res.status, res.body.result], [200, "ignored"]);
    const [row] = await sql`select event_type, processed_at is not null as processed from billing.webhook_events
      where provider = 'razorpay' and payload ->> 'provider_payment_id' = ${paymentId}`;
    assertEquals({ ...row }, { event_type: "payment.downtime.started", processed: true });
    assertEquals(await billingState(org.id), before);
  },
});

// -------------------------------------------------------------------------------------------------
// Order of arrival

async function subscriptionOutcome(orgId: string) {
  const [s] = await sql`select s.status, s.current_period_end = s.current_period_start + interval '2 months' as two_months,
      (select count(*)::int from public.payment_events pe where pe.organization_id = ${orgId} and pe.status = 'captured') as payments
    from public.subscriptions s where s.organization_id = ${orgId}`;
  return s ? { ...s } : null;
}

Deno.test({
  name: "Razorpay subscription events delivered in reverse order end in the same state as in order",
  ...testOptions,
  fn: async () => {
    const t0 = Math.floor(Date.now() / 1000) - 1000;
    const sequences: Record<string, (subId: string) => Json[]> = {
      "charged, pending, charged, halted, cancelled": (subId) => [
        rzpEvent("subscription.charged", { subscription: { entity: rzpSubscription(subId, "active") }, payment: { entity: rzpPayment(`pay_${rand()}`, PRICE) } }, t0 + 1),
        rzpEvent("subscription.pending", { subscription: { entity: rzpSubscription(subId, "pending") } }, t0 + 2),
        rzpEvent("subscription.charged", { subscription: { entity: rzpSubscription(subId, "active") }, payment: { entity: rzpPayment(`pay_${rand()}`, PRICE) } }, t0 + 3),
        rzpEvent("subscription.halted", { subscription: { entity: rzpSubscription(subId, "halted") } }, t0 + 4),
        rzpEvent("subscription.cancelled", { subscription: { entity: rzpSubscription(subId, "cancelled") } }, t0 + 5),
      ],
      "activated, charged, pending, charged": (subId) => [
        rzpEvent("subscription.activated", { subscription: { entity: rzpSubscription(subId, "active") } }, t0 + 1),
        rzpEvent("subscription.charged", { subscription: { entity: rzpSubscription(subId, "active") }, payment: { entity: rzpPayment(`pay_${rand()}`, PRICE) } }, t0 + 2),
        rzpEvent("subscription.pending", { subscription: { entity: rzpSubscription(subId, "pending") } }, t0 + 3),
        rzpEvent("subscription.charged", { subscription: { entity: rzpSubscription(subId, "active") }, payment: { entity: rzpPayment(`pay_${rand()}`, PRICE) } }, t0 + 4),
      ],
    };
    const expected: Record<string, string> = {
      "charged, pending, charged, halted, cancelled": "canceled",
      "activated, charged, pending, charged": "active",
    };
    for (const [name, make] of Object.entries(sequences)) {
      const inOrder = await razorpaySubscription();
      const reversed = await razorpaySubscription();
      const eventsA = make(inOrder.subId);
      // The same events (same payment ids) for the other subscription.
      const eventsB = JSON.parse(JSON.stringify(eventsA).replaceAll(inOrder.subId, reversed.subId)) as Json[];
      const payIds = new Map<string, string>();
      const eventsBFresh = JSON.parse(JSON.stringify(eventsB).replace(/pay_[A-Za-z0-9]+/g, (m) => {
        if (!payIds.has(m)) payIds.set(m, `pay_${rand()}`);
        return payIds.get(m)!;
      })) as Json[];
      for (const e of eventsA) assertEquals((await sendRzp(e)).status, 200);
      for (const e of [...eventsBFresh].reverse()) assertEquals((await sendRzp(e)).status, 200);
      const a = await subscriptionOutcome(inOrder.org.id);
      const b = await subscriptionOutcome(reversed.org.id);
      assertEquals(a, b, name);
      assertEquals(a?.status, expected[name], name);
      assertEquals(a?.two_months, true, name);
    }
  },
});

Deno.test({
  name: "PayU: a failure delivered after the success never takes the order or the plan back",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const res = await checkout(org, PLANS.onetime, "payu");
    const fields = res.body.fields as Record<string, string>;
    const mihpayid = `mih${rand()}`;
    assertEquals((await sendPayu("payu-webhook", payuPost(fields, "success", mihpayid))).body.result, "applied");
    assertEquals((await sendPayu("payu-webhook", payuPost(fields, "failure", mihpayid))).status, 200);
    const [order] = await sql`select status from public.orders where id = ${res.body.billing_order_id as string}`;
    assertEquals(order.status, "paid");
    assertEquals((await entitlements(org.id)).plan_code, PLANS.onetime);
  },
});

// -------------------------------------------------------------------------------------------------
// Checkout refusals

Deno.test({
  name: "checkout refuses bad requests with a 4xx and a code, and creates no order",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const ownerToken = await mintToken(org.owner);
    const post = async (body: unknown, token: string | null = ownerToken) =>
      await call("checkout", {
        token: token ?? undefined,
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
    const base = { organization_id: org.id, plan_code: PLANS.onetime, provider: "payu" };
    const cases: [string, Promise<{ status: number; body: Json }>, number, string][] = [
      ["the free plan", post({ ...base, plan_code: "free" }), 409, "plan_not_purchasable"],
      ["an inactive plan", post({ ...base, plan_code: PLANS.inactive }), 404, "plan_not_found"],
      ["an unknown plan", post({ ...base, plan_code: "no_such_plan" }), 404, "plan_not_found"],
      ["a non-member", post(base, await mintToken(org.stranger)), 403, "forbidden"],
      ["a member who is not an admin", post(base, await mintToken(org.member)), 403, "forbidden"],
      ["an unknown provider", post({ ...base, provider: "paypal" }), 400, "invalid_provider"],
      ["no organization", post({ plan_code: PLANS.onetime, provider: "payu" }), 400, "invalid_input"],
      ["no plan", post({ organization_id: org.id, provider: "razorpay" }), 400, "invalid_input"],
      ["no provider", post({ organization_id: org.id, plan_code: PLANS.onetime }), 400, "invalid_provider"],
      ["malformed JSON", post("{"), 400, "malformed_json"],
      ["no token", post(base, null), 401, "missing_authorization"],
      ["an anon key", post(base, env("SUPABASE_ANON_KEY")), 401, "not_a_user"],
    ];
    for (const [name, promise, status, code] of cases) {
      const r = await promise;
      assertEquals([r.status, r.body.code], [status, code], `${name}: ${JSON.stringify(r.body)}`);
    }
    const [{ n }] = await sql`select count(*)::int as n from public.orders where organization_id = ${org.id}`;
    assertEquals(n, 0);
  },
});

Deno.test({
  name: "checkout charges the price plus GST, and the invoice of the payment totals exactly what was captured",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const res = await checkout(org, PLANS.onetime, "payu");
    assertEquals(res.status, 200, JSON.stringify(res.body));
    assertEquals([res.body.amount_cents, (res.body.fields as Record<string, string>).amount], [TOTAL, "588.82"]);
    const hook = await sendPayu("payu-webhook", payuPost(res.body.fields as Record<string, string>, "success", `mih${rand()}`));
    assertEquals([hook.status, hook.body.result], [200, "applied"], JSON.stringify(hook.body));
    const [row] = await sql`select pe.amount_cents::int as captured, i.taxable_cents::int as taxable,
        (i.cgst_cents + i.sgst_cents + i.igst_cents)::int as tax, i.total_cents::int as total
      from public.payment_events pe join public.invoices i on i.order_id = pe.order_id
      where pe.order_id = ${res.body.billing_order_id as string} and pe.status = 'captured'`;
    assertEquals({ ...row }, { captured: TOTAL, taxable: PRICE, tax: TOTAL - PRICE, total: TOTAL });
  },
});

Deno.test({
  name: "checkout answers 409 use_change_plan for another plan while a subscription runs, and recurring_subscription_exists for a second Razorpay subscription",
  ...testOptions,
  fn: async () => {
    // An organization on the one-time plan: buying the recurring (other) plan is a plan change.
    const org = await makeOrg();
    const paid = await checkout(org, PLANS.onetime, "payu");
    const hook = await sendPayu("payu-webhook", payuPost(paid.body.fields as Record<string, string>, "success", `mih${rand()}`));
    assertEquals(hook.body.result, "applied");
    const other = await checkout(org, PLANS.recurring, "razorpay");
    assertEquals([other.status, other.body.code], [409, "use_change_plan"], JSON.stringify(other.body));
    assert(/change_plan/.test(String(other.body.message ?? other.body.error ?? JSON.stringify(other.body))));
    const renew = await checkout(org, PLANS.onetime, "payu");
    assertEquals(renew.status, 200, "the plan in effect can still be renewed");

    // A Razorpay subscription checkout still open: no second one (and no other checkout).
    const { org: rec } = await razorpaySubscription();
    const again = await checkout(rec, PLANS.recurring, "razorpay");
    assertEquals([again.status, again.body.code], [409, "recurring_subscription_exists"], JSON.stringify(again.body));
    const [{ n }] = await sql`select count(*)::int as n from public.orders where organization_id = ${rec.id}`;
    assertEquals(n, 1);
  },
});

Deno.test({
  name: "when the Razorpay API fails during checkout, the order is canceled, never left payable",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    await fake("/__control/razorpay", { fail_status: 500, fail_count: 1 });
    try {
      const res = await checkout(org, PLANS.onetime, "razorpay");
      assertEquals([res.status, res.body.code], [502, "upstream_error"]);
    } finally {
      await fake("/__control/razorpay", { reset: true });
    }
    const rows = await sql`select status from public.orders where organization_id = ${org.id}`;
    assertEquals(rows.map((r) => r.status), ["canceled"]);
  },
});

// -------------------------------------------------------------------------------------------------
// Reconciliation

Deno.test({
  name: "reconcile (service role only) recovers lost PayU and Razorpay webhooks through verify_payment and the order's payments",
  ...testOptions,
  fn: async () => {
    const payuOrg = await makeOrg();
    const payu = await checkout(payuOrg, PLANS.onetime, "payu");
    const fields = payu.body.fields as Record<string, string>;
    const rzp = await razorpayOrder();
    // Both orders have waited longer than order_pending_reconcile_after.
    await sql`update public.orders set created_at = now() - interval '1 hour'
      where id in (${payu.body.billing_order_id as string}, ${rzp.orderId})`;
    await fake("/__control/payu/transactions", {
      [fields.txnid]: {
        mihpayid: `mih${rand()}`, status: "success", unmappedstatus: "captured", amt: "588.82",
        transaction_amount: "588.82", mode: "UPI", productinfo: fields.productinfo, firstname: fields.firstname,
        email: fields.email, udf1: fields.udf1, addedon: "2026-01-10 10:00:00",
      },
    });
    await fake("/__control/razorpay/payments", rzpPayment(`pay_${rand()}`, TOTAL, { order_id: rzp.rzpOrderId }));

    const asUser = await call("reconcile", { token: await mintToken(payuOrg.owner) });
    assertEquals([asUser.status, asUser.body.code], [403, "forbidden"]);
    const asAnon = await call("reconcile", { token: env("SUPABASE_ANON_KEY") });
    assertEquals([asAnon.status, asAnon.body.code], [403, "forbidden"]);
    const noToken = await call("reconcile", {});
    assertEquals(noToken.status, 401);

    const res = await call("reconcile", { token: env("SUPABASE_SERVICE_ROLE_KEY") });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const outcomes = res.body.orders as Json[];
    const mine = outcomes.filter((o) => o.order_id === payu.body.billing_order_id || o.order_id === rzp.orderId);
    assertEquals(mine.map((o) => o.order_status), ["paid", "paid"]);
    assertEquals((await entitlements(payuOrg.id)).plan_code, PLANS.onetime);
    assertEquals((await entitlements(rzp.org.id)).plan_code, PLANS.onetime);

    // A second run finds nothing left to do.
    const again = await call("reconcile", { token: env("SUPABASE_SERVICE_ROLE_KEY") });
    assert(!(again.body.orders as Json[]).some((o) => o.order_id === rzp.orderId));
  },
});

Deno.test({ name: "close the test database connection", ...testOptions, fn: () => sql.end() });
