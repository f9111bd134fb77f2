// Reconciliation of one due order (reconcile/reconcile.ts reconcileOrder) in-process, with the
// provider API and the SQL entry point injected: what is asked, what is applied, what is skipped
// and why.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createProviderRegistry } from "../supabase/functions/_shared/providers/registry.ts";
import type { NormalizedEvent } from "../supabase/functions/_shared/providers/types.ts";
import { type DueOrder, reconcileOrder, reconcileSummary } from "../supabase/functions/reconcile/reconcile.ts";

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
