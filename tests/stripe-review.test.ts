// Findings of the review of Stripe as the third provider, each reproduced end to end (the real
// database, the functions server, the fake Stripe) and kept as the test that failed before its fix:
//   F1 a cancel_at_period_end set in Stripe's portal while past due survives the retried renewal;
//   F2 a renewal charged another amount is a mismatch naming what the renewal should cost
//      (billing.mandate_debit_amount), not the first order's amount;
//   F3 an upgrade whose payment Stripe declines leaves Stripe's price alone (paid first, switched after);
//   F4 a Stripe subscription whose charge bought nothing here (its order closed) is cancelled at Stripe;
//   F5 two partial refunds of one charge, only charge.refunded delivered and late: both recorded once;
//   F6 the Checkout Session closes when our order expires;
//   F7 a checkout retried after the billing address changed makes a customer (no idempotency 400);
//   F8 an invoice of one organization's subscription naming another's upgrade order never pays it.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { adminSql, callFunction as call, env, fakeControl as fake, mintToken } from "./helpers.ts";
import { allOk, asOwner, calls, karnatakaOrg, sellerInKarnataka, setClock, subOf, underClock, WEBHOOK } from "./stripe-fixtures.ts";
import { createStripeClient } from "../supabase/functions/_shared/providers/stripe/index.ts";

type Json = Record<string, unknown>;
const sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
const suffix = rand();
const PLANS = { basic: `t_srv_b_${suffix}`, pro: `t_srv_p_${suffix}` };
const BASIC = 49900; // a plan renewed by a provider subscription: its price, GST carved out
const json = (body: unknown) => ({ headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const stripe = () =>
  createStripeClient((n) =>
    ({ STRIPE_SECRET_KEY: env("STRIPE_SECRET_KEY"), STRIPE_API_BASE: env("STRIPE_API_BASE") } as Record<string, string>)[n]
  );

let ready: Promise<void> | undefined;
function ensureFixtures(): Promise<void> {
  ready ??= (async () => {
    await sellerInKarnataka(sql);
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, features, active) values
      (${PLANS.basic}, 'Review basic', 'basic', 'month', 49900, 'INR', ${sql.json({ stripe: { price_id: `price_rb_${suffix}` } })}, ${sql.json({ max_members: 5 })}, true),
      (${PLANS.pro}, 'Review pro', 'pro', 'month', 99900, 'INR', ${sql.json({ stripe: { price_id: `price_rp_${suffix}` } })}, ${sql.json({ max_members: 5 })}, true)`;
  })();
  return ready;
}

async function makeOrg() {
  await ensureFixtures();
  return await karnatakaOrg(sql, `Stripe review ${rand()}`);
}

async function checkout(org: { id: string; owner: string }, body: Json) {
  return await call("checkout", {
    token: await mintToken(org.owner),
    ...json({ organization_id: org.id, provider: "stripe", ...body }),
  });
}

/** An organization subscribed monthly through Stripe Checkout, paid. */
async function subscriber(plan = PLANS.basic, body: Json = {}) {
  const org = await makeOrg();
  const res = await checkout(org, { plan_code: plan, ...body });
  assertEquals(res.status, 200, JSON.stringify(res.body));
  allOk(await fake("/__control/stripe/checkout/complete", { session_id: res.body.session_id, deliver: { url: WEBHOOK() } }));
  const sub = await subOf(sql, org.id);
  assertEquals(sub.status, "active");
  return { org, sub, subId: sub.provider_subscription_id as string, order: res.body };
}

/** Stripe's next charge of the subscription at `at` (its retry: the open invoice), delivered. */
async function renew(subId: string, at: number, outcome: "paid" | "failed" = "paid") {
  await setClock(sql, at);
  return allOk(await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId, outcome, deliver: { url: WEBHOOK() } }));
}

/** Runs provider-sync until nothing is claimed; answers the organization's actions. */
async function sync(orgId: string) {
  for (let i = 0; i < 20; i++) {
    const r = await call("provider-sync", { token: env("SUPABASE_SERVICE_ROLE_KEY"), ...json({}) });
    assertEquals(r.status, 200, JSON.stringify(r.body));
    if (r.body.claimed === 0) break;
  }
  return await sql`select id, kind::text, state::text, last_error, payload, idempotency_key, requested_by
    from billing.provider_actions where organization_id = ${orgId} order by created_at`;
}

const history = (subId: string) =>
  sql`select action, new_status, actor_kind::text as actor from public.subscription_history
      where subscription_id = ${subId} order by created_at, effective_at`.then((r) => r.map((h) => [h.action, h.new_status, h.actor]));

Deno.test({
  name: "F1 Stripe cancel at period end set in the portal while past due survives the retried renewal payment",
  ...testOptions,
  fn: () =>
    underClock(sql, async () => {
      const { org, sub: first, subId } = await subscriber();
      const end = new Date(first.current_period_end).getTime();
      await renew(subId, end + 3600e3, "failed");
      assertEquals((await subOf(sql, org.id)).status, "past_due");
      // The customer sets cancel at period end in Stripe's portal while the renewal is unpaid.
      allOk(await fake("/__control/stripe/subscriptions/update", {
        subscription_id: subId, cancel_at_period_end: true, deliver: { url: WEBHOOK() },
      }));
      let sub = await subOf(sql, org.id);
      assertEquals([sub.status, sub.cancel_at_period_end], ["past_due", true]);
      // Stripe's retry pays the open invoice: the period moves on, and Stripe still ends it then.
      await renew(subId, end + 2 * 86400e3, "paid");
      const atStripe = await stripe().retrieveSubscription(subId);
      assertEquals(atStripe.cancel_at_period_end, true);
      sub = await subOf(sql, org.id);
      assertEquals([sub.status, sub.cancel_at_period_end], ["active", true]);
      assert(new Date(sub.current_period_end).getTime() > end + 27 * 86400e3, "the renewal extended the period");
      assertEquals(await history(sub.id), [
        ["activated", "active", "provider"],
        ["past_due", "past_due", "provider"],
        ["cancel_scheduled", "past_due", "provider"],
        ["renewed", "active", "provider"],
        ["cancel_scheduled", "active", "provider"],
      ]);
      const [renewal] = await sql`select status::text from public.orders where organization_id = ${org.id} and kind = 'renewal'`;
      assertEquals(renewal.status, "paid");
    }),
});

Deno.test({
  name: "F2 Stripe renewal charged another amount after a once code ran out: the mismatch names the renewal's amount (the list price), not the first order's",
  ...testOptions,
  fn: () =>
    underClock(sql, async () => {
      const code = `TR${rand().toUpperCase()}`;
      await sql`select billing.create_discount_code(${code}, ${sql.json({ percent_bps: 2500, duration: "once" })})`;
      const { org, sub, subId, order } = await subscriber(PLANS.basic, { discount_code: code });
      assertEquals(order.amount_cents, 37425); // 49900 less 25%
      // Stripe's price changed behind our back (a dashboard edit): the next charge is 40000.
      const client = stripe();
      const atStripe = await client.retrieveSubscription(subId);
      const item = ((atStripe.items as Json).data as Json[])[0];
      await client.call("POST", `/v1/subscriptions/${subId}`, {
        items: [{ id: item.id, price_data: { currency: "inr", unit_amount: 40000, product: (item.price as Json).product, recurring: { interval: "month" } } }],
        proration_behavior: "none",
      });
      const deliveries = await renew(subId, new Date(sub.current_period_end).getTime() + 3600e3);
      const paid = deliveries.find((d) => d.type === "invoice.paid")!;
      assertEquals((paid.body as Json).result, "mismatch");
      const [mismatch] = await sql`select o.receipt, pe.amount_cents::int as amount, pe.error_reason,
          (pe.details ->> 'expected_amount')::int as expected
        from public.payment_events pe join public.orders o on o.id = pe.order_id
        where pe.organization_id = ${org.id} and pe.status = 'mismatch' and pe.details ->> 'event_type' = 'invoice.paid'`;
      assertEquals([mismatch.amount, mismatch.expected], [40000, BASIC]);
      assertEquals(mismatch.error_reason, `amount mismatch for order ${mismatch.receipt}: expected ${BASIC} INR, got 40000 INR`);
    }),
});

Deno.test({
  name: "F3 Stripe upgrade whose payment is declined: the action fails, Stripe's price is not switched (the next renewal charges the old plan), our order unpaid",
  ...testOptions,
  fn: () =>
    underClock(sql, async () => {
      const { org, subId } = await subscriber(PLANS.basic);
      const [{ r }] = await asOwner(sql, org, (tx) => tx`select public.change_plan(${org.id}, ${PLANS.pro}) as r`);
      const orderId = (r as Json).order_id as string;
      // The card declines the upgrade invoice as Stripe does: the invoice is finalized, stays open, 402.
      await fake("/__control/stripe", { decline_invoice_pay: 1 });
      const actions = await sync(org.id);
      const change = actions.find((a) => a.kind === "change_plan")!;
      assertEquals(change.state, "failed");
      assert(String(change.last_error).includes("Your card was declined."), String(change.last_error));
      const key = change.idempotency_key as string;
      assertEquals((await calls("invoices.pay", (c) => c.idempotency_key === `${key}:pay`)).map((c) => c.status), [402]);
      assertEquals(await calls("subscriptions.update", (c) => c.idempotency_key === `${key}:subscription`), []);
      // The declined invoice is voided, so nobody can pay it later from the hosted invoice page or the portal.
      const [voided] = await calls("invoices.void", (c) => c.idempotency_key === `${key}:void`);
      assertEquals(voided?.status, 200);
      const invoiceId = voided.path.split("/").at(-2)!;
      const invoice = await stripe().call<Json>("GET", `/v1/invoices/${invoiceId}`);
      assertEquals([invoice.status, invoice.amount_paid, (invoice.metadata as Json).order_ref], ["void", 0, change.payload.order_ref]);
      // Stripe's next renewal still charges the plan we bill, and nothing of the upgrade.
      const renewed = await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId });
      assertEquals((renewed.invoice as Json).amount_paid, BASIC);
      const [o] = await sql`select status::text from public.orders where id = ${orderId}`;
      assertEquals(o.status, "created");
      assertEquals((await subOf(sql, org.id)).plan_code, PLANS.basic);
    }),
});

Deno.test({
  name: "F3 Stripe upgrade whose invoice Stripe refuses to make: the invoice item left pending is deleted, so the next renewal does not charge it",
  ...testOptions,
  fn: () =>
    underClock(sql, async () => {
      const { org, subId } = await subscriber(PLANS.basic);
      await asOwner(sql, org, (tx) => tx`select public.change_plan(${org.id}, ${PLANS.pro}) as r`);
      await fake("/__control/stripe", {
        fail_status: 400, fail_count: 1, fail_message: "Invalid request.", fail_routes: ["invoices.create"],
      });
      const change = (await sync(org.id)).find((a) => a.kind === "change_plan")!;
      assertEquals(change.state, "failed");
      const key = change.idempotency_key as string;
      const [made] = await calls("invoiceitems.create", (c) => c.idempotency_key === `${key}:invoiceitem`);
      assertEquals(made?.status, 200);
      // The item it made is gone from Stripe (the fake holds no invoice item of this action any more).
      const items = ((await fake("/__control/stripe/state")).objects as Json[])
        .filter((o) => o.object === "invoiceitem" && (o.metadata as Json)?.action_id === change.id);
      assertEquals(items, []);
      assertEquals((await calls("invoiceitems.delete")).filter((c) => c.status === 200).length >= 1, true);
      const renewed = await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId });
      assertEquals((renewed.invoice as Json).amount_paid, BASIC, "the renewal charges the plan alone");
    }),
});

Deno.test({
  name: "F4 Stripe subscription checkout paid after our order closed: the charge bought nothing, so it is refunded and the subscription Stripe started is cancelled at Stripe (it would charge every month)",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const res = await checkout(org, { plan_code: PLANS.basic });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    // Our order closes while the buyer still has the session open (superseded, or its quote expired).
    await sql`update public.orders set status = 'canceled', metadata = metadata || '{"canceled_reason": "superseded"}'
      where id = ${res.body.billing_order_id as string}`;
    const paid = allOk(await fake("/__control/stripe/checkout/complete", { session_id: res.body.session_id, deliver: { url: WEBHOOK() } }));
    assertEquals((paid.find((d) => d.type === "invoice.paid")!.body as Json).result, "recorded");
    const [captured] = await sql`select provider_payment_id, needs_refund, details ->> 'provider_subscription_id' as sub
      from public.payment_events where organization_id = ${org.id} and status = 'captured'`;
    assertEquals(captured.needs_refund, true);
    const subId = captured.sub as string;
    assertEquals(await sql`select 1 from public.subscriptions where organization_id = ${org.id}`.then((r) => r.length), 0);
    const actions = await sync(org.id);
    assertEquals(actions.map((a) => [a.kind, a.state, a.idempotency_key, a.payload.at_cycle_end ?? null]).filter((a) => a[0] === "cancel"), [
      ["cancel", "succeeded", `cancel:${subId}:now:unbacked:0`, false],
    ]);
    assertEquals(actions.filter((a) => a.kind === "refund").map((a) => [a.state, a.payload.amount_paise]), [["succeeded", BASIC]]);
    assertEquals((await calls("subscriptions.cancel", (c) => c.path.endsWith(subId))).map((c) => c.status), [200]);
    assertEquals((await stripe().retrieveSubscription(subId)).status, "canceled");
    // The refund Stripe made is recorded once (F10: the refund of a payment that bought nothing
    // failed to apply, so it was never recorded and its action retried until it failed).
    const refunded = await sql`select amount_cents::int as amount, details ->> 'refund_id' as refund_id from public.payment_events
      where organization_id = ${org.id} and status = 'refunded'`;
    assertEquals(refunded.map((x) => x.amount), [BASIC]);
    assertEquals((await sql`select 1 from public.credit_notes where organization_id = ${org.id}`).length, 0);
  },
});

Deno.test({
  name: "F5 Stripe two partial refunds of one charge, only charge.refunded delivered, newest first: each refund recorded once, two credit notes",
  ...testOptions,
  fn: () =>
    underClock(sql, async () => {
      const { org } = await subscriber();
      const [captured] = await sql`select provider_payment_id from public.payment_events
        where organization_id = ${org.id} and status = 'captured'`;
      const t = Date.now();
      const ids: string[] = [];
      for (const [i, amount] of [[0, 1000], [1, 2000]]) {
        await setClock(sql, t + i * 120e3);
        const made = await fake("/__control/stripe/refunds", { payment_intent: captured.provider_payment_id, amount });
        ids.push(...(made.events as Json[]).filter((e) => e.type === "charge.refunded").map((e) => String(e.id)));
      }
      assertEquals(ids.length, 2);
      allOk(await fake("/__control/stripe/deliver", { event_ids: ids, url: WEBHOOK(), reverse: true, duplicate: true }));
      const refunds = await sql`select amount_cents::int as amount from public.payment_events
        where organization_id = ${org.id} and status = 'refunded' order by amount_cents`;
      assertEquals(refunds.map((x) => x.amount), [1000, 2000]);
      const notes = await sql`select total_cents::int as total from public.credit_notes where organization_id = ${org.id} order by total_cents`;
      assertEquals(notes.map((n) => n.total), [1000, 2000]);
    }),
});

Deno.test({
  name: "F6 Stripe Checkout Session expires when our order does",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const res = await checkout(org, { plan_code: PLANS.basic });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const [order] = await sql`select expires_at from public.orders where id = ${res.body.billing_order_id as string}`;
    const session = (await calls("checkout.sessions.create")).at(-1)!;
    // Our order's end, within Stripe's 24 hours from now less a minute's margin for clock skew.
    const orderEnds = Math.floor(new Date(order.expires_at).getTime() / 1000);
    const expiresAt = Number(session.body.expires_at);
    assert(expiresAt <= orderEnds && expiresAt >= orderEnds - 120, `${expiresAt} vs ${orderEnds}`);
    const atStripe = await stripe().retrieveCheckoutSession(String(res.body.session_id));
    assertEquals(atStripe.expires_at, expiresAt);
  },
});

Deno.test({
  name: "F7 Stripe checkout retried after a 500 and a change of billing address: a customer with the new address, no idempotency_error",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    try {
      await fake("/__control/stripe", { fail_status: 500, fail_count: 1, fail_routes: ["checkout.sessions.create"] });
      const failed = await checkout(org, { plan_code: PLANS.basic });
      assertEquals([failed.status, failed.body.code], [502, "upstream_error"]);
    } finally {
      await fake("/__control/stripe", { fail_status: null, fail_routes: null });
    }
    await sql`update public.organizations set billing_address_line1 = '2 Brigade Road' where id = ${org.id}`;
    const retried = await checkout(org, { plan_code: PLANS.basic });
    assertEquals(retried.status, 200, JSON.stringify(retried.body));
    const made = await calls("customers.create", (c) => String(c.idempotency_key).startsWith(`supabill-customer-${org.id}-`));
    assertEquals(made.map((c) => [c.status, (c.body.address as Json).line1]), [[200, "1 MG Road"], [200, "2 Brigade Road"]]);
    assert(made[0].idempotency_key !== made[1].idempotency_key);
    const [pc] = await sql`select provider_customer_id from billing.provider_customers where organization_id = ${org.id}`;
    const customer = await stripe().call("GET", `/v1/customers/${pc.provider_customer_id}`);
    assertEquals((customer.address as Json).line1, "2 Brigade Road");
  },
});

Deno.test({
  name: "F8 Stripe invoice of one organization's subscription naming another organization's upgrade order: recorded as a mismatch of the subscription's own order, the other order unpaid",
  ...testOptions,
  fn: async () => {
    const a = await subscriber(PLANS.basic);
    const b = await subscriber(PLANS.basic);
    const [{ r }] = await asOwner(sql, b.org, (tx) => tx`select public.change_plan(${b.org.id}, ${PLANS.pro}) as r`);
    const [upgrade] = await sql`select id, receipt, amount_cents::int as amount from public.orders where id = ${(r as Json).order_id as string}`;
    // A's subscription charged an invoice carrying B's upgrade receipt (a dashboard copy, a bug).
    const client = stripe();
    const customer = String((await client.retrieveSubscription(a.subId)).customer);
    const from = ((await fake("/__control/stripe/state")).events as Json[]).length;
    const metadata = { order_ref: upgrade.receipt };
    await client.call("POST", "/v1/invoiceitems", { customer, subscription: a.subId, amount: upgrade.amount, currency: "inr", metadata });
    const invoice = await client.call("POST", "/v1/invoices", {
      customer, subscription: a.subId, pending_invoice_items_behavior: "include", auto_advance: false, metadata,
    });
    await client.call("POST", `/v1/invoices/${invoice.id}/pay`, {});
    const events = ((await fake("/__control/stripe/state")).events as Json[]).slice(from);
    const delivered = allOk(await fake("/__control/stripe/deliver", { event_ids: events.map((e) => e.id), url: WEBHOOK() }));
    const paid = delivered.find((d) => d.type === "invoice.paid")!;
    assertEquals((paid.body as Json).result, "mismatch");
    const [bOrder] = await sql`select status::text from public.orders where id = ${upgrade.id}`;
    assertEquals(bOrder.status, "created");
    assertEquals((await subOf(sql, b.org.id)).plan_code, PLANS.basic);
    const aMismatch = await sql`select amount_cents::int as amount from public.payment_events
      where organization_id = ${a.org.id} and status = 'mismatch'`;
    assertEquals(aMismatch.map((m) => m.amount), [upgrade.amount]);
    assertEquals((await sql`select 1 from public.payment_events where organization_id = ${b.org.id} and status = 'captured'`).length, 1);
  },
});

Deno.test({
  name: "F9 Stripe discounted subscription whose invoice.paid arrives before checkout.session.completed: the second delivery of the same payment is a duplicate, not a mismatch",
  ...testOptions,
  fn: async () => {
    const code = `TR${rand().toUpperCase()}`;
    await sql`select billing.create_discount_code(${code}, ${sql.json({ percent_bps: 2500, duration: "once" })})`;
    const org = await makeOrg();
    const res = await checkout(org, { plan_code: PLANS.basic, discount_code: code });
    assertEquals([res.status, res.body.amount_cents], [200, 37425], JSON.stringify(res.body));
    const paid = allOk(await fake("/__control/stripe/checkout/complete", {
      session_id: res.body.session_id, deliver: { url: WEBHOOK(), types: ["invoice.paid", "checkout.session.completed"] },
    }));
    assertEquals(paid.map((d) => [d.type, (d.body as Json).result]), [
      ["invoice.paid", "applied"],
      ["checkout.session.completed", "duplicate"],
    ]);
    const rows = await sql`select status::text, amount_cents::int as amount from public.payment_events where organization_id = ${org.id}`;
    assertEquals([...rows], [{ status: "captured", amount: 37425 }]);
  },
});

Deno.test({ name: "stripe review: close the connection", ...testOptions, fn: () => sql.end() });
