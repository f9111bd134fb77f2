// Reconciliation of one due order (reconcile/reconcile.ts reconcileOrder) and of one stale
// subscription (reconcileSubscription) in-process, with the provider API and the SQL entry point
// injected: what is asked, what is applied, what is skipped and why.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createProviderRegistry } from "../supabase/functions/_shared/providers/registry.ts";
import type { NormalizedEvent } from "../supabase/functions/_shared/providers/types.ts";
import {
  type DueOrder,
  type DueSubscription,
  reconcileOrder,
  reconcileSubscription,
  reconcileSummary,
} from "../supabase/functions/reconcile/reconcile.ts";

const env = (name: string) =>
  ({ RAZORPAY_KEY_ID: "rzp_test_k", RAZORPAY_KEY_SECRET: "s", RAZORPAY_API_BASE: "http://razorpay.invalid/v1" })[name];

function recorder() {
  const applied: NormalizedEvent[] = [];
  const urls: string[] = [];
  const fetchStub = ((input: string | URL | Request) => {
    urls.push(String(input));
    return Promise.resolve(Response.json({
      entity: "collection",
      count: 1,
      items: [{
        id: "pay_1", entity: "payment", amount: 49900, currency: "INR", status: "captured",
        order_id: "order_1", method: "upi", notes: [], created_at: 1767000000,
      }],
    }));
  }) as typeof fetch;
  const registry = createProviderRegistry(env, { fetch: fetchStub });
  return {
    applied,
    urls,
    /** The built-in adapters over the fake Razorpay API above. */
    adapterOf: (name: string) => registry.get(name),
    apply: (event: NormalizedEvent) => {
      applied.push(event);
      return Promise.resolve({ result: "applied" as const, order_status: "paid" });
    },
  };
}

const order = (extra: Partial<DueOrder>): DueOrder => ({
  order_id: crypto.randomUUID(),
  provider: "razorpay",
  receipt: "ord_r_1",
  provider_order_id: null,
  ...extra,
});

Deno.test("a Razorpay subscription order is skipped with a reason, not reported as not_found, and nothing is asked", async () => {
  const r = recorder();
  const outcomes = [
    await reconcileOrder(order({ provider_subscription_id: "sub_1" }), r),
    await reconcileOrder(order({}), r),
  ];
  assertEquals([r.urls, r.applied.length], [[], 0]);
  assertEquals(outcomes.map((o) => typeof o.skipped === "string" && o.skipped.length > 0), [true, true]);
  const summary = reconcileSummary(outcomes);
  assertEquals([summary.checked, summary.not_found, summary.skipped, summary.errors], [2, 0, 2, 0]);
});

Deno.test("a Razorpay order's payments are fetched and each is applied once", async () => {
  const r = recorder();
  const outcome = await reconcileOrder(order({ provider_order_id: "order_1" }), r);
  assertEquals(r.urls, ["http://razorpay.invalid/v1/orders/order_1/payments"]);
  assertEquals(r.applied.map((e) => [e.event_id, e.provider_order_id, e.order_ref]), [["payment:pay_1:captured", "order_1", "ord_r_1"]]);
  assertEquals(r.applied.map((e) => [e.kind, e.subscription_status, e.error_reason]), [["payment_captured", null, null]]);
  assertEquals([outcome.results, outcome.order_status, outcome.skipped], [["applied"], "paid", undefined]);
  const summary = reconcileSummary([outcome, { order_id: "x", provider: "payu", results: [] }]);
  assertEquals([summary.applied, summary.not_found, summary.skipped], [1, 1, 0]);
});

// -------------------------------------------------------------------------------------------------
// Subscriptions (reconcileSubscription): the subscription, its invoices, each unknown paid charge

function subscriptionRecorder(status: string) {
  const applied: NormalizedEvent[] = [];
  const urls: string[] = [];
  const fetchStub = ((input: string | URL | Request) => {
    const url = String(input);
    urls.push(url);
    const path = url.replace("http://razorpay.invalid/v1", "");
    if (path === "/subscriptions/sub_1") {
      return Promise.resolve(Response.json({ id: "sub_1", entity: "subscription", plan_id: "plan_1", status, notes: [] }));
    }
    if (path === "/invoices?subscription_id=sub_1") {
      return Promise.resolve(Response.json({
        entity: "collection",
        count: 4,
        items: [
          { id: "inv_3", entity: "invoice", subscription_id: "sub_1", payment_id: "pay_3", status: "paid", paid_at: 1767000300 },
          { id: "inv_4", entity: "invoice", subscription_id: "sub_1", payment_id: null, status: "issued", paid_at: null },
          { id: "inv_2", entity: "invoice", subscription_id: "sub_1", payment_id: "pay_2", status: "paid", paid_at: 1767000200 },
          { id: "inv_1", entity: "invoice", subscription_id: "sub_1", payment_id: "pay_1", status: "paid", paid_at: 1767000100 },
        ],
      }));
    }
    const id = path.replace("/payments/", "");
    return Promise.resolve(Response.json({
      id, entity: "payment", amount: 49900, currency: "INR", status: "captured", order_id: null, method: "upi",
      notes: [], created_at: 1767000000,
    }));
  }) as typeof fetch;
  const registry = createProviderRegistry(env, { fetch: fetchStub });
  return {
    applied,
    urls,
    adapterOf: (name: string) => registry.get(name),
    apply: (event: NormalizedEvent) => {
      applied.push(event);
      return Promise.resolve({ result: "applied" as const, subscription_status: "active" });
    },
  };
}

const dueSubscription = (extra: Partial<DueSubscription>): DueSubscription => ({
  subscription_id: crypto.randomUUID(),
  provider: "razorpay",
  provider_subscription_id: "sub_1",
  reason: "period_ended",
  receipt: "ord_s_1",
  provider_status: "active",
  known_payment_ids: ["pay_1"],
  ...extra,
});

Deno.test("a stale Razorpay subscription: the unknown paid charges are applied oldest first, the status only when it changed", async () => {
  const r = subscriptionRecorder("active");
  const outcome = await reconcileSubscription(dueSubscription({}), r);
  const base = "http://razorpay.invalid/v1";
  assertEquals(r.urls, [
    `${base}/subscriptions/sub_1`,
    `${base}/invoices?subscription_id=sub_1`,
    `${base}/payments/pay_2`,
    `${base}/payments/pay_3`,
  ]);
  assertEquals(r.applied.map((e) => [e.kind, e.event_id, e.provider_payment_id, e.provider_subscription_id, e.order_ref]), [
    ["payment_captured", "payment:pay_2:captured", "pay_2", "sub_1", "ord_s_1"],
    ["payment_captured", "payment:pay_3:captured", "pay_3", "sub_1", "ord_s_1"],
  ]);
  assertEquals(r.applied.map((e) => e.provider_order_id), [null, null]);
  assertEquals([outcome.kinds, outcome.results, outcome.error], [["payment_captured", "payment_captured"], ["applied", "applied"], undefined]);
});

Deno.test("a Razorpay subscription cancelled at Razorpay: a subscription_status event with Razorpay's status", async () => {
  const r = subscriptionRecorder("cancelled");
  await reconcileSubscription(dueSubscription({ known_payment_ids: ["pay_1", "pay_2", "pay_3"] }), r);
  assertEquals(r.applied.map((e) => [e.kind, e.subscription_status, e.event_type, e.provider_subscription_id]), [
    ["subscription_status", "cancelled", "subscription.cancelled", "sub_1"],
  ]);
  assert(/^subscription\.fetched:sub_1:cancelled:\d+$/.test(r.applied[0].event_id));
  assert(r.applied[0].occurred_at !== null);
  // Razorpay's created / authenticated say nothing about ours; a provider without subscriptions is skipped.
  const quiet = subscriptionRecorder("authenticated");
  await reconcileSubscription(dueSubscription({ known_payment_ids: ["pay_1", "pay_2", "pay_3"], provider_status: null }), quiet);
  assertEquals(quiet.applied, []);
  const payu = await reconcileSubscription(dueSubscription({ provider: "payu" }), quiet);
  assert(typeof payu.skipped === "string" && payu.skipped.length > 0);
  const unknown = await reconcileSubscription(dueSubscription({ provider: "paypal" }), quiet);
  assertEquals(unknown.error, "provider_not_registered");
});

Deno.test("a malformed subscription id is refused before anything is fetched", async () => {
  const r = subscriptionRecorder("active");
  const outcome = await reconcileSubscription(dueSubscription({ provider_subscription_id: "sub_1/../x" }), r);
  assertEquals([outcome.error, r.urls], ["invalid_input", []]);
});
