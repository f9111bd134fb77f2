// Money over time end to end (the real functions, the real database, the fake Razorpay): a Razorpay
// mandate debit one month and twelve months after checkout is a renewal, whether its signed
// subscription.charged arrives or reconcile finds it: applied (period extended from its end, a
// renewal order and its invoice), never recorded for refund. And a refund that failed for good is
// emailed to the owners with its payment and amount (it has no plan).
import { deepStrictEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import { createHmac } from "node:crypto";
import { type Delivery, renderNotification } from "../supabase/functions/notifications-send/templates.ts";
import { adminSql, createUser, env, mintToken, callFunction as call, fakeControl as fake } from "./helpers.ts";

type Json = Record<string, unknown>;

const sql = adminSql(4);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

const suffix = rand();
const PLAN = `t_mot_${suffix}`;
const RZP_PLAN_ID = `plan_mot_${suffix}`;
// A Razorpay recurring plan charges its price itself (GST carved out of it).
const PRICE = 49900;

let planReady: Promise<void> | undefined;
function ensurePlan(): Promise<void> {
  planReady ??= (async () => {
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, provider_config, active)
      values (${PLAN}, 'Test Over Time Pro (monthly)', 'pro', 'month', ${PRICE}, 'INR',
              ${JSON.stringify({ razorpay: { plan_id: RZP_PLAN_ID } })}::text::jsonb, true)`;
  })();
  return planReady;
}

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
 * A new organization paying a Razorpay subscription (checkout, the first charge at the fake,
 * razorpay-verify applying it), then `months` months pass: the checkout order (created, expiring a
 * day later, paid) moves back that many months, and the subscription's current period is the
 * month that ended a day ago (within the grace period), as if every earlier debit had renewed it.
 */
async function subscriptionMonthsOld(months: number) {
  await ensurePlan();
  const owner = await createUser(sql);
  const [{ id: orgId }] = await sql`insert into public.organizations (name, billing_email)
    values (${`Over time ${rand()}`}, 'billing@example.in') returning id`;
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
  const back = `${months} months`;
  await sql`update public.orders
    set created_at = created_at - ${back}::interval, expires_at = expires_at - ${back}::interval,
        paid_at = paid_at - ${back}::interval
    where organization_id = ${orgId}`;
  await sql`update public.subscriptions
    set current_period_start = current_period_start - interval '1 month' - interval '1 day',
        current_period_end = current_period_start - interval '1 day',
        period_anchor = current_period_start - ${back}::interval - interval '1 day'
    where organization_id = ${orgId}`;
  const [{ expired }] = await sql`select bool_and(expires_at < now() - interval '25 days') as expired
    from public.orders where organization_id = ${orgId}`;
  assert(expired, "the checkout order's quote expired long before the renewal");
  return { orgId, subId };
}

async function state(orgId: string) {
  const [row] = await sql`select s.status::text, s.current_period_end,
      (select count(*)::int from public.payment_events pe
       where pe.organization_id = ${orgId} and pe.status = 'captured') as captured,
      (select count(*)::int from public.payment_events pe
       where pe.organization_id = ${orgId} and pe.needs_refund) as to_refund,
      (select count(*)::int from public.invoices i where i.organization_id = ${orgId}) as invoices,
      (select count(*)::int from public.orders o
       where o.organization_id = ${orgId} and o.kind = 'renewal' and o.status = 'paid') as renewal_orders,
      (select count(*)::int from billing.provider_actions a
       where a.organization_id = ${orgId} and a.kind = 'refund') as refunds_queued,
      (select billing.period_end_after(s.current_period_end, 'month', o.timezone, s.period_anchor)
       from public.organizations o where o.id = s.organization_id) as next_end
    from public.subscriptions s where s.organization_id = ${orgId}`;
  return row;
}

function assertRenewed(before: Json, after: Json) {
  assertEquals(
    [after.status, (after.current_period_end as Date).toISOString(), after.captured, after.invoices, after.renewal_orders],
    ["active", (before.next_end as Date).toISOString(), (before.captured as number) + 1, (before.invoices as number) + 1, 1],
  );
  assertEquals([after.to_refund, after.refunds_queued], [0, 0], "nothing recorded for refund, no refund queued");
}

for (const months of [1, 12]) {
  Deno.test({
    name: `a Razorpay debit ${months} month(s) after checkout, by its signed subscription.charged: a renewal, applied, not refunded`,
    ...testOptions,
    fn: async () => {
      const { orgId, subId } = await subscriptionMonthsOld(months);
      const before = await state(orgId);
      const renewal = await fake("/__control/razorpay/subscriptions/charge", { subscription_id: subId, amount: PRICE });
      const hook = await sendWebhook("subscription.charged", {
        subscription: { entity: { ...renewal.subscription, status: "active" } },
        payment: { entity: renewal.payment },
      });
      assertEquals([hook.status, hook.body.result], [200, "applied"], JSON.stringify(hook.body));
      assertRenewed(before, await state(orgId));
    },
  });

  Deno.test({
    name: `a Razorpay debit ${months} month(s) after checkout whose webhook was lost, found by reconcile: a renewal, applied, not refunded`,
    ...testOptions,
    fn: async () => {
      const { orgId, subId } = await subscriptionMonthsOld(months);
      const before = await state(orgId);
      await fake("/__control/razorpay/subscriptions/charge", { subscription_id: subId, amount: PRICE });
      const res = await reconcile();
      assertEquals(res.status, 200, JSON.stringify(res.body));
      const mine = ((res.body.subscriptions as Json).items as Json[]).find((o) => o.provider_subscription_id === subId);
      assert(mine, JSON.stringify(res.body.subscriptions));
      assertEquals([(mine.kinds as string[])[0], (mine.results as string[])[0]], ["payment_captured", "applied"],
        JSON.stringify(mine));
      assertRenewed(before, await state(orgId));
    },
  });
}

// -------------------------------------------------------------------------------------------------
// A refund that failed for good is emailed with its payment and amount
// -------------------------------------------------------------------------------------------------

Deno.test("the provider_action_failed email of a refund renders from its payment and amount, without a plan", () => {
  const delivery: Delivery = {
    id: crypto.randomUUID(),
    organization_id: crypto.randomUUID(),
    subscription_id: null,
    kind: "provider_action_failed",
    payload: {
      provider_action_id: crypto.randomUUID(),
      provider: "razorpay",
      kind: "refund",
      target: { provider_payment_id: "pay_mot_1", order_ref: "ord_1" },
      error: "Razorpay answered 400: The refund amount provided is greater than amount captured",
    },
    attempts: 0,
    recipients: ["owner@example.in"],
    context: {
      organization: { name: "Acme", timezone: "Asia/Kolkata" },
      plan: null,
      amount_cents: 123456,
      currency: "INR",
      refund: { provider_payment_id: "pay_mot_1", amount_cents: 123456, currency: "INR" },
    },
  };
  const email = renderNotification(delivery);
  assertEquals(email.subject, "Refund failed at razorpay: ₹1,234.56 of payment pay_mot_1");
  assert(email.text.includes("We tried to refund ₹1,234.56 of payment pay_mot_1 of Acme at razorpay"), email.text);
  assert(email.text.includes("greater than amount captured"), email.text);
  assert(email.html.includes("pay_mot_1"), email.html);
  // A cancel still needs its plan.
  assertThrows(() => renderNotification({ ...delivery, payload: { ...delivery.payload, kind: "cancel" }, context: {} }),
    /needs the plan/);
});

Deno.test({
  name: "notifications-send: a refund that failed for good reaches the owners, with its payment and amount",
  ...testOptions,
  fn: async () => {
    const ownerEmail = `owner-${rand()}@mot.test`;
    const owner = await createUser(sql, ownerEmail);
    const [{ id: orgId }] = await sql`insert into public.organizations (name) values (${`Refunds ${rand()}`}) returning id`;
    await sql`insert into public.organization_members (organization_id, user_id, role) values (${orgId}, ${owner}, 'owner')`;
    const paymentId = `pay_mot_${rand()}`;
    const [{ id: actionId }] = await sql`select billing.queue_provider_action(${orgId}, 'razorpay', 'refund',
        ${JSON.stringify({ provider_payment_id: paymentId })}::text::jsonb,
        ${JSON.stringify({ amount_paise: 58882, currency: "INR", refund_id: `rf_${rand()}`, reason: "private words" })}::text::jsonb,
        ${`refund:mot:${rand()}`}, 'operator', 'private words') as id`;
    // Claimed by this test alone (not every due action), then refused for good.
    await sql`update billing.provider_actions set state = 'running', attempts = 1, locked_until = now() + interval '5 minutes'
      where id = ${actionId}`;
    await sql`select billing.complete_provider_action(${actionId}, 'failed', null,
      'Razorpay answered 400: The refund amount provided is greater than amount captured')`;
    const [note] = await sql`select id from public.notifications
      where organization_id = ${orgId} and kind = 'provider_action_failed'`;
    assert(note, "a provider_action_failed notification is queued");

    for (let i = 0; i < 20; i++) {
      const r = await call("notifications-send", {
        token: env("SUPABASE_SERVICE_ROLE_KEY"),
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ limit: 1000 }),
      });
      assertEquals(r.status, 200, JSON.stringify(r.body));
      if (r.body.claimed === 0) break;
    }
    const [row] = await sql`select sent_at, failed_at, last_error from public.notifications where id = ${note.id}`;
    assertEquals([row.sent_at !== null, row.failed_at, row.last_error], [true, null, null], JSON.stringify(row));
    const inbox = await (await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/email`)).json();
    const mine = (inbox.emails as { to: string[]; subject: string; text: string }[])
      .filter((e) => e.to.includes(ownerEmail));
    assertEquals(mine.length, 1);
    assertEquals(mine[0].subject, `Refund failed at razorpay: ₹588.82 of payment ${paymentId}`);
    assert(!mine[0].text.includes("private words"), "the operator's reason is not in the email");
  },
});
