// Stripe provider actions end to end (the real database, the functions server, the fake Stripe):
// a decision here queues an action; provider-sync carries it out at the fake with the right
// parameters and keys; the events Stripe makes come back through stripe-webhook without double
// effects. Cancel now and at the period end, resume, an upgrade Stripe charges on the
// subscription (invoice item + invoice paid -> our upgrade order captured), a downgrade's price
// switch, operator refunds (Idempotency-Key = our refund id; an answer lost after Stripe made the
// refund is looked up, never made twice; 429 waits), reconcile (a lost renewal, a dashboard
// refund), and the billing portal.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { adminSql, callFunction as call, createUser, env, fakeControl as fake, mintToken } from "./helpers.ts";
import { asOwner, calls, karnatakaOrg, sellerInKarnataka, setClock, subOf, WEBHOOK } from "./stripe-fixtures.ts";

type Json = Record<string, unknown>;
const sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
const suffix = rand();
const PLANS = { basic: `t_sa_b_${suffix}`, pro: `t_sa_p_${suffix}` };
const json = (body: unknown) => ({ headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

let ready: Promise<void> | undefined;
function ensureFixtures(): Promise<void> {
  ready ??= (async () => {
    await sellerInKarnataka(sql);
    await sql`update public.billing_settings set app_success_url = 'https://app.example.in/billing/done'`;
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, features, active) values
      (${PLANS.basic}, 'Stripe basic', 'basic', 'month', 49900, 'INR', ${sql.json({ stripe: { price_id: `price_b_${suffix}` } })}, ${sql.json({ max_members: 5 })}, true),
      (${PLANS.pro}, 'Stripe pro', 'pro', 'month', 99900, 'INR', ${sql.json({ stripe: { price_id: `price_p_${suffix}` } })}, ${sql.json({ max_members: 5 })}, true)`;
  })();
  return ready;
}

async function makeOrg() {
  await ensureFixtures();
  return await karnatakaOrg(sql, `Stripe actions ${rand()}`);
}

/** An organization subscribed monthly through Stripe Checkout, paid. */
async function subscriber(plan = PLANS.basic, discountCode?: string) {
  const org = await makeOrg();
  const res = await call("checkout", {
    token: await mintToken(org.owner),
    ...json({ organization_id: org.id, provider: "stripe", plan_code: plan, discount_code: discountCode }),
  });
  assertEquals(res.status, 200, JSON.stringify(res.body));
  const paid = await fake("/__control/stripe/checkout/complete", { session_id: res.body.session_id, deliver: { url: WEBHOOK() } });
  for (const d of paid.deliveries as Json[]) assertEquals(d.status, 200, JSON.stringify(d));
  const sub = await subOf(sql, org.id);
  assertEquals(sub.status, "active");
  return { org, sub, subId: sub.provider_subscription_id as string };
}

const worker = () => call("provider-sync", { token: env("SUPABASE_SERVICE_ROLE_KEY"), ...json({}) });
const reconcile = () => call("reconcile", { token: env("SUPABASE_SERVICE_ROLE_KEY") });

/** Runs provider-sync until the organization's actions are all done or waiting; returns their rows. */
async function sync(orgId: string) {
  for (let i = 0; i < 20; i++) {
    const r = await worker();
    assertEquals(r.status, 200, JSON.stringify(r.body));
    if (r.body.claimed === 0) break;
  }
  return await actionsOf(orgId);
}

const actionsOf = (orgId: string) =>
  sql`select id, kind::text, state::text, attempts, last_error, result, target, payload, idempotency_key, next_attempt_at
    from billing.provider_actions where organization_id = ${orgId} order by created_at`;

const makeDue = (id: string) => sql`update billing.provider_actions set next_attempt_at = now() - interval '1 second' where id = ${id}`;

async function eventCount(): Promise<number> {
  return ((await fake("/__control/stripe/state")).events as Json[]).length;
}

/** Delivers the events Stripe made since `from` (an index into its event list) to stripe-webhook. */
async function deliverSince(from: number, extra: Json = {}) {
  const events = ((await fake("/__control/stripe/state")).events as Json[]).slice(from);
  const answer = await fake("/__control/stripe/deliver", { event_ids: events.map((e) => e.id), url: WEBHOOK(), ...extra });
  for (const d of answer.deliveries as Json[]) assertEquals(d.status, 200, JSON.stringify(d));
  return answer.deliveries as Json[];
}

const history = (subId: string) =>
  sql`select action from public.subscription_history where subscription_id = ${subId} order by created_at, id`;

Deno.test({
  name: "Stripe cancel at the period end, resume, cancel again, then cancel now: each one call with its key; the webhooks change nothing twice",
  ...testOptions,
  fn: async () => {
    const { org, sub, subId } = await subscriber();
    const from = await eventCount();
    const first = await asOwner(sql, org, (tx) => tx`select public.cancel_subscription(${org.id}, true) as r`);
    assertEquals(((first[0].r as Json).provider_action as Json).provider, "stripe");
    let actions = await sync(org.id);
    assertEquals(actions.map((a) => [a.kind, a.state, a.idempotency_key]), [["cancel", "succeeded", `cancel:${subId}:cycle_end`]]);
    let sent = await calls("subscriptions.update", (c) => String(c.path).includes(subId));
    assertEquals(sent.map((c) => [c.body, c.idempotency_key, c.status]), [[{ cancel_at_period_end: "true" }, `cancel:${subId}:cycle_end`, 200]]);
    // Stripe's customer.subscription.updated (delivered twice) leaves our scheduled cancel as it is.
    await deliverSince(from, { duplicate: true });
    let now = await subOf(sql, org.id);
    assertEquals([now.status, now.cancel_at_period_end], ["active", true]);

    // Resume: Stripe can undo it; one resume action.
    const resumed = await asOwner(sql, org, (tx) => tx`select public.resume_subscription(${org.id}) as r`);
    assertEquals(((resumed[0].r as Json).provider_action as Json).action, "resume_subscription");
    actions = await sync(org.id);
    assertEquals(actions.map((a) => [a.kind, a.state, a.idempotency_key]), [
      ["cancel", "succeeded", `cancel:${subId}:cycle_end`],
      ["resume", "succeeded", `resume:${subId}:1`],
    ]);
    sent = await calls("subscriptions.update", (c) => String(c.path).includes(subId));
    assertEquals(sent.at(-1)!.body, { cancel_at_period_end: "false" });
    const state = (await fake("/__control/stripe/state")).objects as Json[];
    assertEquals(state.find((o) => o.id === subId)!.cancel_at_period_end, false);
    now = await subOf(sql, org.id);
    assertEquals(now.cancel_at_period_end, false);

    // Scheduled again after the resume: a new action (a new key), not the first one's replay.
    await asOwner(sql, org, (tx) => tx`select public.cancel_subscription(${org.id}, true) as r`);
    actions = await sync(org.id);
    assertEquals(actions.at(-1)!.idempotency_key, `cancel:${subId}:cycle_end:1`);
    assertEquals(actions.at(-1)!.state, "succeeded");

    // Now: DELETE, and customer.subscription.deleted (twice) ends nothing twice.
    const mark = await eventCount();
    await asOwner(sql, org, (tx) => tx`select public.cancel_subscription(${org.id}, false) as r`);
    actions = await sync(org.id);
    assertEquals(actions.at(-1)!.kind, "cancel");
    assertEquals([actions.at(-1)!.state, actions.at(-1)!.idempotency_key], ["succeeded", `cancel:${subId}:now`]);
    const deleted = await calls("subscriptions.cancel", (c) => String(c.path).includes(subId));
    assertEquals(deleted.map((c) => [c.method, c.status]), [["DELETE", 200]]);
    await deliverSince(mark, { duplicate: true });
    now = await subOf(sql, org.id);
    assertEquals(now.status, "canceled");
    assertEquals((await history(sub.id)).map((h) => h.action).filter((a) => a === "canceled").length, 1);
    const [n] = await sql`select count(*)::int as n from public.notifications where organization_id = ${org.id} and kind = 'subscription_canceled'`;
    assertEquals(n.n, 1);
    // Nothing more is queued (the trigger's cancel-now is the same key as the user's).
    assertEquals((await actionsOf(org.id)).filter((a) => a.kind === "cancel").length, 3);
  },
});

Deno.test({
  name: "Stripe upgrade: our prorated order charged by Stripe (invoice item, price switched with proration none, invoice paid): order captured, plan switched, invoiced",
  ...testOptions,
  fn: async () => {
    const { org, sub, subId } = await subscriber(PLANS.basic);
    const from = await eventCount();
    const [{ r }] = await asOwner(sql, org, (tx) => tx`select public.change_plan(${org.id}, ${PLANS.pro}) as r`);
    const quote = r as Json;
    assertEquals([quote.result, quote.method, (quote.provider_action as Json).action], ["order_created", "prorated_order", "change_plan"]);
    const [order] = await sql`select id, receipt, status, amount_cents::int as amount, provider::text from public.orders where id = ${quote.order_id as string}`;
    assertEquals([order.status, order.provider], ["created", "stripe"]);
    // Paying it through checkout too is refused: Stripe charges it.
    const twice = await call("checkout", { token: await mintToken(org.owner), ...json({ organization_id: org.id, provider: "stripe", order_id: order.id }) });
    assertEquals([twice.status, twice.body.code], [409, "plan_not_purchasable"]);
    assert(/charged by the provider/.test(String(twice.body.message)), JSON.stringify(twice.body));

    const actions = await sync(org.id);
    const change = actions.find((a) => a.kind === "change_plan")!;
    assertEquals(change.state, "succeeded", String(change.last_error));
    const key = change.idempotency_key as string;
    assertEquals(key, `change_plan:${subId}:${order.id}`);
    const item = (await calls("invoiceitems.create")).filter((c) => c.idempotency_key === `${key}:invoiceitem`);
    assertEquals(item.length, 1);
    assertEquals([item[0].body.amount, item[0].body.currency, item[0].body.subscription, (item[0].body.metadata as Json).order_ref],
      [String(order.amount), "inr", subId, order.receipt]);
    const update = (await calls("subscriptions.update")).find((c) => c.idempotency_key === `${key}:subscription`)!;
    const price = ((update.body.items as Json[])[0].price_data as Json);
    // The price each renewal charges from now on: the pro plan, its GST carved out as at checkout (99900).
    assertEquals([update.body.proration_behavior, price.unit_amount, (price.recurring as Json).interval], ["none", "99900", "month"]);
    assert(Number(update.body.trial_end) > Date.now() / 1000 + 27 * 86400, "the next charge moves to our new period's end");
    const invoice = (await calls("invoices.create")).find((c) => c.idempotency_key === `${key}:invoice`)!;
    assertEquals([invoice.body.pending_invoice_items_behavior, (invoice.body.metadata as Json).order_ref], ["include", order.receipt]);
    assertEquals((await calls("invoices.pay")).filter((c) => c.idempotency_key === `${key}:pay`).length, 1);

    // Stripe's events (invoice.paid naming our upgrade order), delivered twice.
    const delivered = await deliverSince(from, { duplicate: true });
    const paid = delivered.filter((d) => d.type === "invoice.paid").map((d) => (d.body as Json).result);
    assertEquals(paid, ["applied", "duplicate"]);
    const [after] = await sql`select status from public.orders where id = ${order.id}`;
    assertEquals(after.status, "paid");
    const now = await subOf(sql, org.id);
    assertEquals([now.plan_code, now.status], [PLANS.pro, "active"]);
    const invoices = await sql`select i.total_cents::int as total from public.invoices i where i.order_id = ${order.id}`;
    assertEquals(invoices.map((i) => i.total), [order.amount]);
    const captured = await sql`select count(*)::int as n from public.payment_events where order_id = ${order.id} and status = 'captured'`;
    assertEquals(captured[0].n, 1);
    assert((await history(sub.id)).some((h) => h.action === "plan_changed"));

    // Stripe's next renewal charges the new price: a renewal of the Pro plan, applied (not a
    // mismatch against the first Basic order, not refunded for review).
    const renewed = await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId, deliver: { url: WEBHOOK() } });
    for (const d of renewed.deliveries as Json[]) assertEquals(d.status, 200, JSON.stringify(d));
    assertEquals((renewed.invoice as Json).amount_paid, 99900);
    const renewals = await sql`select o.status, p.code, o.amount_cents::int as amount from public.orders o
      join public.billing_plans p on p.id = o.plan_id where o.organization_id = ${org.id} and o.kind = 'renewal'`;
    assertEquals([...renewals], [{ status: "paid", code: PLANS.pro, amount: 99900 }]);
    const odd = await sql`select status, needs_refund from public.payment_events
      where organization_id = ${org.id} and (status = 'mismatch' or needs_refund)`;
    assertEquals([...odd], []);
    const renewedSub = await subOf(sql, org.id);
    assertEquals([renewedSub.plan_code, renewedSub.status], [PLANS.pro, "active"]);
    assert(new Date(renewedSub.current_period_end) > new Date(now.current_period_end), "the renewal moved the period on");
  },
});

Deno.test({
  name: "Stripe downgrade of a subscription with a forever discount: the new price carries the discount, Stripe's coupon comes off, the renewal charges it once and keeps the plan paid",
  ...testOptions,
  fn: async () => {
    const code = `TSA${crypto.randomUUID().replaceAll("-", "").slice(0, 8).toUpperCase()}`;
    await sql`select billing.create_discount_code(${code}, ${sql.json({ percent_bps: 500, duration: "forever" })})`;
    const { org, subId } = await subscriber(PLANS.pro, code);
    await asOwner(sql, org, (tx) => tx`select public.change_plan(${org.id}, ${PLANS.basic}) as r`);
    const change = (await sync(org.id)).find((a) => a.kind === "change_plan")!;
    // Basic less 5 %, its GST carved out as in every price of a provider subscription.
    assertEquals([change.state, change.payload.price_amount], ["succeeded", 47405]);
    assertEquals((await calls("subscriptions.discount.delete", (c) => c.path.includes(subId))).map((c) => c.status), [200]);
    const renewed = await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId, deliver: { url: WEBHOOK() } });
    assertEquals((renewed.invoice as Json).amount_paid, 47405, "the discount once, not twice");
    for (const d of renewed.deliveries as Json[]) assertEquals(d.status, 200, JSON.stringify(d));
    const odd = await sql`select status, needs_refund from public.payment_events
      where organization_id = ${org.id} and (status = 'mismatch' or needs_refund)`;
    assertEquals([...odd], [], "no mismatch: the renewal is the amount we expect");
    const sub = await subOf(sql, org.id);
    assertEquals([sub.plan_code, sub.status], [PLANS.basic, "active"]);
  },
});

Deno.test({
  name: "Stripe downgrade at the period end: Stripe's price switched without a charge (proration none), so the renewal charges the new plan",
  ...testOptions,
  fn: async () => {
    const { org, subId } = await subscriber(PLANS.pro);
    const [{ r }] = await asOwner(sql, org, (tx) => tx`select public.change_plan(${org.id}, ${PLANS.basic}) as r`);
    assertEquals([(r as Json).result, (r as Json).method], ["scheduled", "scheduled"]);
    const actions = await sync(org.id);
    const change = actions.find((a) => a.kind === "change_plan")!;
    assertEquals([change.state, change.payload.at_cycle_end, change.payload.price_amount], ["succeeded", true, 49900]);
    const key = change.idempotency_key as string;
    assertEquals((await calls("invoiceitems.create")).filter((c) => String(c.idempotency_key).startsWith(key)).length, 0);
    const update = (await calls("subscriptions.update")).find((c) => c.idempotency_key === `${key}:subscription`)!;
    assertEquals(update.body.proration_behavior, "none");
    assertEquals(update.body.trial_end, undefined);
    // Stripe's next invoice (the renewal) is at the new price, and buys the Basic plan here: its
    // renewal order is for Basic at that price, applied, the scheduled downgrade in effect.
    const renewed = await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId, deliver: { url: WEBHOOK() } });
    assertEquals((renewed.invoice as Json).amount_paid, 49900);
    for (const d of renewed.deliveries as Json[]) assertEquals(d.status, 200, JSON.stringify(d));
    const renewals = await sql`select o.status, p.code, o.amount_cents::int as amount from public.orders o
      join public.billing_plans p on p.id = o.plan_id where o.organization_id = ${org.id} and o.kind = 'renewal'`;
    assertEquals([...renewals], [{ status: "paid", code: PLANS.basic, amount: 49900 }]);
    const odd = await sql`select status, needs_refund from public.payment_events
      where organization_id = ${org.id} and (status = 'mismatch' or needs_refund)`;
    assertEquals([...odd], []);
    const sub = await subOf(sql, org.id);
    assertEquals([sub.plan_code, sub.status, sub.pending_plan_id], [PLANS.basic, "active", null]);
    const [inv] = await sql`select i.total_cents::int as total from public.invoices i join public.orders o on o.id = i.order_id
      where o.organization_id = ${org.id} and o.kind = 'renewal'`;
    assertEquals(inv.total, 49900);
  },
});

Deno.test({
  name: "Stripe upgrade then downgrade under the test clock: the renewal at the period end puts Basic in effect to Stripe's line end, and the next renewal a month later moves the period on again",
  ...testOptions,
  fn: async () => {
    try {
      // Basic, upgraded to Pro (Stripe charges our prorated order; the next charge moves to our
      // new period's end), then a downgrade back to Basic scheduled for that end.
      const { org, subId } = await subscriber(PLANS.basic);
      const from = await eventCount();
      await setClock(sql, Date.now() + 5 * 86400e3 + 123);
      await asOwner(sql, org, (tx) => tx`select public.change_plan(${org.id}, ${PLANS.pro}) as r`);
      await sync(org.id);
      await deliverSince(from);
      assertEquals((await subOf(sql, org.id)).plan_code, PLANS.pro);
      await asOwner(sql, org, (tx) => tx`select public.change_plan(${org.id}, ${PLANS.basic}) as r`);
      await sync(org.id);
      const ends: number[] = [];
      for (let i = 0; i < 2; i++) {
        const sub = await subOf(sql, org.id);
        await setClock(sql, new Date(sub.current_period_end).getTime() + 3600e3);
        const renewed = await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId, deliver: { url: WEBHOOK() } });
        for (const d of renewed.deliveries as Json[]) assertEquals(d.status, 200, JSON.stringify(d));
        const line = ((((renewed.invoice as Json).lines as Json).data as Json[])[0]).period as Json;
        const after = await subOf(sql, org.id);
        assertEquals([after.plan_code, after.status, new Date(after.current_period_end).getTime()],
          [PLANS.basic, "active", Number(line.end) * 1000], `renewal ${i + 1}`);
        ends.push(Number(line.end) * 1000);
      }
      const days = (ends[1] - ends[0]) / 86400e3;
      assert(days >= 28 && days <= 31, String(days));
    } finally {
      await setClock(sql, null);
    }
  },
});

Deno.test({
  name: "Stripe downgrade scheduled, then cancelled at the period end and resumed: Stripe's price is put back to the plan in effect, and the renewal charges it and renews it",
  ...testOptions,
  fn: async () => {
    try {
      const { org, subId } = await subscriber(PLANS.pro);
      const t0 = Date.now();
      await setClock(sql, t0 + 2 * 86400e3);
      await asOwner(sql, org, (tx) => tx`select public.change_plan(${org.id}, ${PLANS.basic}) as r`);
      await sync(org.id);
      await setClock(sql, t0 + 3 * 86400e3);
      // The cancellation drops the scheduled downgrade; Stripe's price was already switched to Basic.
      await asOwner(sql, org, (tx) => tx`select public.cancel_subscription(${org.id}, true) as r`);
      await setClock(sql, t0 + 4 * 86400e3);
      await asOwner(sql, org, (tx) => tx`select public.resume_subscription(${org.id}) as r`);
      const actions = await sync(org.id);
      const restoreKey = `change_plan:${subId}:${PLANS.pro}:${Math.round((t0 + 3 * 86400e3) / 1000)}`;
      // The cancellation and the price put back are queued in one transaction (either order at Stripe).
      assertEquals(actions.map((a) => [a.idempotency_key, a.kind, a.state, a.payload.plan_code ?? null,
        a.payload.price_amount ?? null, a.payload.at_cycle_end ?? null]).sort((x, y) => String(x[0]) < String(y[0]) ? -1 : 1), [
        [`cancel:${subId}:cycle_end`, "cancel", "succeeded", null, null, true],
        [`change_plan:${subId}:${PLANS.basic}:${Math.round((t0 + 2 * 86400e3) / 1000)}`, "change_plan", "succeeded",
          PLANS.basic, 49900, true],
        [restoreKey, "change_plan", "succeeded", PLANS.pro, 99900, true],
        [`resume:${subId}:1`, "resume", "succeeded", null, null, null],
      ]);
      // Stripe's price is Pro's again (99900, GST carved out as at checkout), switched without a charge.
      const update = (await calls("subscriptions.update")).filter((c) => c.idempotency_key === `${restoreKey}:subscription`);
      assertEquals(update.length, 1);
      const price = (update[0].body.items as Json[])[0].price_data as Json;
      assertEquals([update[0].body.proration_behavior, price.unit_amount, update[0].body.trial_end],
        ["none", "99900", undefined]);
      assertEquals((await calls("invoiceitems.create")).filter((c) => String(c.idempotency_key).startsWith(restoreKey)), []);
      // The renewal at the period end charges Pro and renews Pro: nothing to review, nothing refunded.
      const before = await subOf(sql, org.id);
      assertEquals([before.plan_code, before.pending_plan_id, before.cancel_at_period_end], [PLANS.pro, null, false]);
      await setClock(sql, new Date(before.current_period_end).getTime() + 3600e3);
      const renewed = await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId, deliver: { url: WEBHOOK() } });
      for (const d of renewed.deliveries as Json[]) assertEquals(d.status, 200, JSON.stringify(d));
      assertEquals((renewed.invoice as Json).amount_paid, 99900);
      const renewals = await sql`select o.status::text, p.code, o.amount_cents::int as amount from public.orders o
        join public.billing_plans p on p.id = o.plan_id where o.organization_id = ${org.id} and o.kind = 'renewal'`;
      assertEquals([...renewals], [{ status: "paid", code: PLANS.pro, amount: 99900 }]);
      const odd = await sql`select status::text, needs_refund from public.payment_events
        where organization_id = ${org.id} and (status <> 'captured' or needs_refund)`;
      assertEquals([...odd], []);
      const line = ((((renewed.invoice as Json).lines as Json).data as Json[])[0]).period as Json;
      const after = await subOf(sql, org.id);
      assertEquals([after.plan_code, after.status, new Date(after.current_period_end).getTime()],
        [PLANS.pro, "active", Number(line.end) * 1000]);
    } finally {
      await setClock(sql, null);
    }
  },
});

/** A paid subscriber's captured payment event. */
async function capturedOf(orgId: string) {
  const [pe] = await sql`select id, provider_payment_id, amount_cents::int as amount from public.payment_events
    where organization_id = ${orgId} and status = 'captured' order by created_at limit 1`;
  return pe;
}

Deno.test({
  name: "Stripe operator refund: Idempotency-Key = our refund id; the answer lost after Stripe made it -> looked up, one refund, one credit note",
  ...testOptions,
  fn: async () => {
    const { org } = await subscriber();
    const pe = await capturedOf(org.id);
    const [{ id: actionId }] = await sql`select billing.operator_refund(${pe.id}, 5000, 'goodwill, ticket 7') as id`;
    await fake("/__control/stripe", { fail_status: 500, fail_count: 1, fail_after: true, fail_routes: ["refunds.create"] });
    try {
      await worker();
      let [a] = await sql`select state::text, attempts, last_error from billing.provider_actions where id = ${actionId}`;
      assertEquals([a.state, a.attempts], ["pending", 1]);
      await makeDue(actionId);
      await worker();
      [a] = await sql`select state::text, attempts, last_error, result from billing.provider_actions where id = ${actionId}`;
      assertEquals([a.state, a.attempts, (a.result as Json).found_by], ["succeeded", 2, "refunds.list"]);
    } finally {
      await fake("/__control/stripe", { reset: false, fail_status: null, fail_after: false, fail_routes: null });
    }
    const [action] = await sql`select payload from billing.provider_actions where id = ${actionId}`;
    const sent = await calls("refunds.create", (c) => c.body.payment_intent === pe.provider_payment_id);
    assertEquals(sent.map((c) => [c.idempotency_key, c.body.amount, (c.body.metadata as Json).refund_id, c.status]),
      [[action.payload.refund_id, "5000", action.payload.refund_id, 500]]);
    // The retry asked first (refunds.list by payment_intent) and did not refund again.
    assert((await calls("refunds.list", (c) => c.body.payment_intent === pe.provider_payment_id)).length >= 1);
    const refunds = ((await fake("/__control/stripe/state")).objects as Json[])
      .filter((o) => o.object === "refund" && o.payment_intent === pe.provider_payment_id);
    assertEquals(refunds.length, 1);
    const notes = await sql`select total_cents::int as total from public.credit_notes where organization_id = ${org.id}`;
    assertEquals(notes.length, 1);
    // Stripe's own events for it (refund.created, charge.refunded) are duplicates.
    const events = ((await fake("/__control/stripe/state")).events as Json[])
      .filter((e) => ["refund.created", "charge.refunded"].includes(String(e.type)) &&
        ((e.data as Json).object as Json).payment_intent === pe.provider_payment_id);
    const answer = await fake("/__control/stripe/deliver", { event_ids: events.map((e) => e.id), url: WEBHOOK() });
    for (const d of answer.deliveries as Json[]) assertEquals(d.status, 200, JSON.stringify(d));
    assertEquals((await sql`select id from public.credit_notes where organization_id = ${org.id}`).length, 1);
    const [rows] = await sql`select count(*)::int as n from public.payment_events where organization_id = ${org.id} and status = 'refunded'`;
    assertEquals(rows.n, 1);
  },
});

Deno.test({
  name: "Stripe refund answered 429 with Retry-After: retried after it, then made once",
  ...testOptions,
  fn: async () => {
    const { org } = await subscriber();
    const pe = await capturedOf(org.id);
    const [{ id: actionId }] = await sql`select billing.operator_refund(${pe.id}, 1000, 'rate limited') as id`;
    await fake("/__control/stripe", { fail_status: 429, fail_count: 1, fail_retry_after: 600, fail_routes: ["refunds.create"] });
    try {
      await worker();
    } finally {
      await fake("/__control/stripe", { fail_status: null, fail_routes: null });
    }
    let [a] = await sql`select state::text, attempts, next_attempt_at from billing.provider_actions where id = ${actionId}`;
    assertEquals([a.state, a.attempts], ["pending", 1]);
    const waitS = (new Date(a.next_attempt_at).getTime() - Date.now()) / 1000;
    assert(waitS > 590 && waitS <= 601, `waits ${waitS} s`);
    await makeDue(actionId);
    await worker();
    [a] = await sql`select state::text, attempts from billing.provider_actions where id = ${actionId}`;
    assertEquals([a.state, a.attempts], ["succeeded", 2]);
    const made = ((await fake("/__control/stripe/state")).objects as Json[])
      .filter((o) => o.object === "refund" && o.payment_intent === pe.provider_payment_id);
    assertEquals(made.map((r) => r.amount), [1000]);
  },
});

Deno.test({
  name: "Stripe reconcile: a refund made in the dashboard whose webhook was lost is recorded once",
  ...testOptions,
  fn: async () => {
    const { org } = await subscriber();
    const pe = await capturedOf(org.id);
    // Made at Stripe, never delivered.
    const made = await fake("/__control/stripe/refunds", { payment_intent: pe.provider_payment_id, amount: 2000 });
    const res = await reconcile();
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const mine = ((res.body.refunds as Json).items as Json[]).find((i) => i.provider_payment_id === pe.provider_payment_id);
    assertEquals(mine?.results, ["applied"], JSON.stringify(mine));
    const [row] = await sql`select details ->> 'refund_id' as provider_refund_id, amount_cents::int as amount from public.payment_events
      where organization_id = ${org.id} and status = 'refunded'`;
    assertEquals([row.provider_refund_id, row.amount], [(made.refund as Json).id, 2000]);
    assertEquals((await sql`select id from public.credit_notes where organization_id = ${org.id}`).length, 1);
    // Asked again: nothing new.
    const again = await reconcile();
    const twice = ((again.body.refunds as Json).items as Json[]).find((i) => i.provider_payment_id === pe.provider_payment_id);
    assertEquals(twice?.results ?? [], []);
  },
});

Deno.test({
  name: "Stripe reconcile: the subscription asked when it looks stale; a paid invoice we never heard of is captured once",
  ...testOptions,
  fn: async () => {
    const { org, sub, subId } = await subscriber();
    // A renewal paid at Stripe whose webhooks were lost.
    const renewed = await fake("/__control/stripe/subscriptions/renew", { subscription_id: subId });
    const pi = (((renewed.invoice as Json).payments as Json).data as Json[])[0].payment as Json;
    // Make the subscription look stale (its period ended here).
    await sql`update public.subscriptions set current_period_start = now() - interval '31 days', current_period_end = now() - interval '1 hour' where id = ${sub.id}`;
    const res = await reconcile();
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const mine = ((res.body.subscriptions as Json).items as Json[]).find((i) => i.provider_subscription_id === subId) as Json;
    assert(mine, JSON.stringify(res.body.subscriptions));
    assertEquals(mine.error, undefined, JSON.stringify(mine));
    assertEquals((mine.kinds as string[])[0], "payment_captured", JSON.stringify(mine));
    const captured = await sql`select provider_payment_id from public.payment_events
      where organization_id = ${org.id} and status = 'captured' and provider_payment_id = ${pi.payment_intent as string}`;
    assertEquals(captured.length, 1);
  },
});

Deno.test({
  name: "billing-portal: an owner gets the fake's session URL under our configuration (plan switching off, cancel at period end), made once",
  ...testOptions,
  fn: async () => {
    const { org } = await subscriber();
    const token = await mintToken(org.owner);
    const res = await call("billing-portal", { token, ...json({ organization_id: org.id, return_url: "https://app.example.in/settings" }) });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const sessions = await calls("billing_portal.sessions.create");
    const last = sessions.at(-1)!;
    const [pc] = await sql`select provider_customer_id from billing.provider_customers where organization_id = ${org.id}`;
    assertEquals([last.body.customer, last.body.return_url], [pc.provider_customer_id, "https://app.example.in/settings"]);
    const session = ((await fake("/__control/stripe/state")).objects as Json[]).find((o) => o.object === "billing_portal.session" && o.customer === pc.provider_customer_id)!;
    assertEquals(res.body.url, session.url);
    assert(String(res.body.url).startsWith("https://billing.stripe.com/p/session/"));
    // One configuration, kept: its features as sent.
    const [kept] = await sql`select value from billing.provider_settings where provider = 'stripe' and name = 'portal_configuration'`;
    assertEquals(last.body.configuration, kept.value);
    const configs = await calls("billing_portal.configurations.create");
    const made = configs.filter((c) => c.status === 200);
    assert(made.length >= 1);
    const features = made[0].body.features as Json;
    assertEquals((features.subscription_update as Json).enabled, "false");
    assertEquals([(features.subscription_cancel as Json).enabled, (features.subscription_cancel as Json).mode], ["true", "at_period_end"]);
    assertEquals([(features.payment_method_update as Json).enabled, (features.invoice_history as Json).enabled], ["true", "true"]);
    // A second portal: no new configuration.
    const before = configs.length;
    const again = await call("billing-portal", { token, ...json({ organization_id: org.id }) });
    assertEquals(again.status, 200, JSON.stringify(again.body));
    assertEquals((await calls("billing_portal.configurations.create")).length, before);
    assertEquals((await calls("billing_portal.sessions.create")).at(-1)!.body.return_url, "https://app.example.in/billing/done");
  },
});

Deno.test({
  name: "billing-portal refusals: a non-member 403, a member who is not an admin 403, no Stripe customer 404, a foreign return_url 400; nothing sent",
  ...testOptions,
  fn: async () => {
    const { org } = await subscriber(PLANS.basic);
    const member = await createUser(sql);
    await sql`insert into public.organization_members (organization_id, user_id, role) values (${org.id}, ${member}, 'member')`;
    const before = (await calls("billing_portal.")).length;
    const stranger = await createUser(sql);
    const ask = async (user: string, body: Json) => await call("billing-portal", { token: await mintToken(user), ...json(body) });
    const out = await ask(stranger, { organization_id: org.id });
    assertEquals([out.status, out.body.code], [403, "forbidden"]);
    const plain = await ask(member, { organization_id: org.id });
    assertEquals([plain.status, plain.body.code], [403, "forbidden"]);
    const fresh = await makeOrg();
    const none = await ask(fresh.owner, { organization_id: fresh.id });
    assertEquals([none.status, none.body.code], [404, "no_provider_customer"]);
    const evil = await ask(org.owner, { organization_id: org.id, return_url: "https://evil.example.com/phish" });
    assertEquals([evil.status, evil.body.code], [400, "invalid_return_url"]);
    const noUser = await call("billing-portal", json({ organization_id: org.id }));
    assertEquals(noUser.status, 401);
    assertEquals((await calls("billing_portal.")).length, before);
  },
});
