// Each invariant of the simulator (scripts/simulate/invariants.ts) is able to fail: fed a
// hand-made broken state it reports the violation, and the same state repaired reports none.
// Pure functions: no stack needed.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  checkAccess,
  checkAll,
  checkCredits,
  checkDiscounts,
  checkHistoryAndMrr,
  checkLedger,
  checkMoneyDocuments,
  checkOutboxes,
  checkUsage,
  emptySnapshot,
  type PaymentEventRow,
  type Snapshot,
} from "../scripts/simulate/invariants.ts";

const ORG = "00000000-0000-4000-8000-00000000000a";
const DAY = 86400e3;

function capture(id: string, payment: string, amount: number, extra: Partial<PaymentEventRow> = {}): PaymentEventRow {
  return {
    id, organization_id: ORG, provider: "razorpay", provider_payment_id: payment, status: "captured",
    amount_cents: amount, needs_refund: false, refund_id: null, captured_payment_event_id: null, ...extra,
  };
}

/** One paid month: a capture at the provider and in our ledger, its invoice, history, MRR, access. */
function paidOrg(): Snapshot {
  const s = emptySnapshot();
  s.provider_captures = [{ provider: "razorpay", payment_id: "pay_1", amount: 49900, at_ms: s.now_ms - 3 * DAY }];
  s.payment_events = [capture("pe1", "pay_1", 49900)];
  s.invoices = [{ id: "inv1", organization_id: ORG, number: "INV/26-27/000001", financial_year: 2026, serial: 1, total_cents: 49900 }];
  s.subscriptions = [{ id: "sub1", organization_id: ORG, status: "active", plan_code: "basic_monthly", plan_id: "plan_b" }];
  s.history = [{ subscription_id: "sub1", organization_id: ORG, action: "activated", new_status: "active", new_plan_id: "plan_b", created_ms: 1 }];
  s.mrr = { analytics: 49900, subscriptions: 49900 };
  s.effective = [{ organization_id: ORG, tier: "basic", plan_code: "basic_monthly" }];
  s.access = [{ organization_id: ORG, tiers: ["basic"], why: "paid basic_monthly until next month" }];
  s.expect_applied = ["pay_1"];
  s.notifications = [{ id: "n1", organization_id: ORG, kind: "payment_captured", state: "sent", attempts: 1, max_attempts: 10, last_error: null, created_ms: s.now_ms - DAY }];
  s.mailbox = [{ id: "m1", idempotency_key: "n1", to: ["billing@example.in"], subject: "Payment received" }];
  return s;
}

Deno.test("a consistent paid organization breaks no invariant", () => {
  assertEquals(checkAll(paidOrg()), []);
});

Deno.test("1: a payment the provider captured and our ledger lacks is reported once the settle time has passed", () => {
  const s = paidOrg();
  s.provider_captures.push({ provider: "payu", payment_id: "txn_lost", amount: 58882, at_ms: s.now_ms - 3 * DAY });
  const found = checkLedger(s);
  assertEquals(found.length, 1);
  assert(found[0].detail.includes("txn_lost") && found[0].detail.includes("no capture"), found[0].detail);
  s.provider_captures[1].at_ms = s.now_ms - 3600e3;
  assertEquals(checkLedger(s), [], "a capture an hour old may still be on its way (reconcile)");
});

Deno.test("1: Stripe's money is the fake Stripe's charges and refunds, by PaymentIntent: one missing, one under another provider, a refund short", () => {
  const s = paidOrg();
  const stripe = (payment: string, amount: number, extra: Partial<PaymentEventRow> = {}) =>
    capture(`pe_${payment}_${extra.status ?? "c"}`, payment, amount, { provider: "stripe", ...extra });
  s.provider_captures.push(
    { provider: "stripe", payment_id: "pi_ok", amount: 58882, at_ms: s.now_ms - 5 * DAY },
    { provider: "stripe", payment_id: "pi_lost", amount: 58882, at_ms: s.now_ms - 5 * DAY },
    { provider: "stripe", payment_id: "pi_other", amount: 1000, at_ms: s.now_ms - 5 * DAY },
  );
  s.provider_refunds.push({ provider: "stripe", payment_id: "pi_ok", refund_id: "re_1", amount: 5000, at_ms: s.now_ms - 5 * DAY });
  // pi_other recorded as a Razorpay payment: not Stripe's capture, and a capture Razorpay never made.
  s.payment_events.push(stripe("pi_ok", 58882), stripe("pi_ok", 4000, { status: "refunded", refund_id: "re_1", captured_payment_event_id: "pe_pi_ok_c" }),
    capture("pe_x", "pi_other", 1000));
  const details = () => checkLedger(s).map((x) => x.detail).join("\n");
  assert(details().includes("stripe captured 58882 paise as pi_lost"), details());
  assert(details().includes("stripe captured 1000 paise as pi_other"), details());
  assert(details().includes("razorpay:pi_other (1000 paise) that the provider never made"), details());
  assert(details().includes("stripe:pi_ok: the provider refunded 5000 paise, our ledger has 4000"), details());
  s.payment_events = s.payment_events.filter((e) => e.id !== "pe_x" && e.status !== "refunded");
  s.payment_events.push(stripe("pi_lost", 58882), stripe("pi_other", 1000),
    stripe("pi_ok", 5000, { status: "refunded", refund_id: "re_1", captured_payment_event_id: "pe_pi_ok_c" }));
  assertEquals(checkLedger(s), []);
});

Deno.test("5: an operator refund made twice at Stripe (two refunds carrying our refund id) is reported", () => {
  const s = paidOrg();
  s.provider_calls = [
    { route: "stripe.refunds.create", action_key: "stripe refund rf_1", status: 200 },
    { route: "stripe.invoices.pay", action_key: "stripe invoice paid for ord_1", status: 200 },
  ];
  assertEquals(checkOutboxes(s), []);
  s.provider_calls.push({ route: "stripe.refunds.create", action_key: "stripe refund rf_1", status: 200 });
  const found = checkOutboxes(s);
  assertEquals(found.map((x) => x.detail), ["the provider carried out stripe refund rf_1 2 times"]);
});

Deno.test("1: a capture recorded twice, one the provider never made, and a refund we record but the provider did not do", () => {
  const s = paidOrg();
  s.payment_events.push(capture("pe2", "pay_1", 49900), capture("pe3", "pay_ghost", 100));
  s.payment_events.push({ ...capture("pe4", "pay_1", 10000), status: "refunded", refund_id: "rfnd_x", captured_payment_event_id: "pe1" });
  const details = checkLedger(s).map((x) => x.detail).join("\n");
  assert(details.includes("recorded 2 times"), details);
  assert(details.includes("pay_ghost") && details.includes("never made"), details);
  assert(details.includes("we recorded 10000 paise refunded, the provider refunded 0"), details);
});

Deno.test("1: a provider refund held as a mismatch is in our ledger; one missing is reported", () => {
  const s = paidOrg();
  s.provider_refunds = [{ provider: "razorpay", payment_id: "pay_1", refund_id: "rfnd_1", amount: 9980, at_ms: s.now_ms - 5 * DAY }];
  const details = () => checkLedger(s).map((x) => x.detail).join("\n");
  assert(details().includes("the provider refunded 9980 paise, our ledger has 0"), details());
  s.payment_events.push({ ...capture("pe5", "pay_1", 9980), status: "mismatch", refund_id: "rfnd_1", captured_payment_event_id: "pe1" });
  assertEquals(checkLedger(s), [], "a refund recorded as a mismatch (held for an operator) is recorded");
  assertEquals(checkMoneyDocuments(s), [], "and, with no credit note, counts on neither side of money = documents");
});

Deno.test("2: a credit note with no refund breaks money = documents", () => {
  const s = paidOrg();
  s.credit_notes = [{ id: "cn1", organization_id: ORG, number: "CN/26-27/0000001", financial_year: 2026, serial: 1, total_cents: 49900, invoice_id: "inv1" }];
  const found = checkMoneyDocuments(s);
  assertEquals(found.map((x) => [x.invariant, x.organization_id, x.detail]), [
    ["2 money equals documents", ORG, "captured - refunded = 49900 paise, invoices - credit notes = 0 paise"],
  ]);
});

Deno.test("2: a gap in the invoice numbers of a financial year", () => {
  const s = paidOrg();
  s.provider_captures.push({ provider: "razorpay", payment_id: "pay_2", amount: 100, at_ms: s.now_ms });
  s.payment_events.push(capture("pe2", "pay_2", 100));
  s.invoices.push({ id: "inv3", organization_id: ORG, number: "INV/26-27/000003", financial_year: 2026, serial: 3, total_cents: 100 });
  const found = checkMoneyDocuments(s);
  assertEquals(found.length, 1);
  assert(found[0].detail.includes("not gapless"), found[0].detail);
});

Deno.test("2: a capture recorded for refund and its refund need no documents", () => {
  const s = paidOrg();
  s.provider_captures.push({ provider: "razorpay", payment_id: "pay_late", amount: 49900, at_ms: s.now_ms - 3 * DAY });
  s.provider_refunds.push({ provider: "razorpay", payment_id: "pay_late", refund_id: "rfnd_1", amount: 49900, at_ms: s.now_ms - 3 * DAY });
  s.payment_events.push(capture("pe2", "pay_late", 49900, { needs_refund: true }));
  s.payment_events.push({ ...capture("pe3", "pay_late", 49900), status: "refunded", refund_id: "rfnd_1", captured_payment_event_id: "pe2" });
  assertEquals(checkAll(s), []);
});

Deno.test("3: a plan in effect that was not paid for", () => {
  const s = paidOrg();
  s.effective = [{ organization_id: ORG, tier: "pro", plan_code: "pro_monthly" }];
  const found = checkAccess(s);
  assertEquals(found.length, 1);
  assert(found[0].detail.startsWith("effective plan pro_monthly (tier pro), but what it paid for gives basic"), found[0].detail);
});

Deno.test("3: a renewal that must extend the period is recorded for refund, and then refunded unasked", () => {
  const s = paidOrg();
  s.expect_applied.push("pay_renewal");
  s.payment_events.push(capture("pe2", "pay_renewal", 49900, { needs_refund: true }));
  s.payment_events.push({ ...capture("pe3", "pay_renewal", 49900), status: "refunded", refund_id: "rfnd_2", captured_payment_event_id: "pe2" });
  const details = checkAccess(s).map((x) => x.detail);
  assertEquals(details.length, 2, details.join("\n"));
  assert(details[0].includes("a paid period is lost"), details[0]);
  assert(details[1].includes("refunded (49900 paise) though nobody asked"), details[1]);
});

Deno.test("4: a state change without its history row, and MRR that disagrees with the subscriptions", () => {
  const s = paidOrg();
  s.subscriptions[0].status = "canceled";
  s.mrr = { analytics: 49900, subscriptions: 0 };
  const details = checkHistoryAndMrr(s).map((x) => x.detail);
  assertEquals(details.length, 2, details.join("\n"));
  assert(details[0].includes("a change without its history row"), details[0]);
  assert(details[1].includes("mrr is 49900"), details[1]);
  const t = paidOrg();
  t.history = [];
  assert(checkHistoryAndMrr(t)[0].detail.includes("with no history row"));
});

Deno.test("5: an email sent twice, an action carried out twice, an action past its retry budget", () => {
  const s = paidOrg();
  s.mailbox.push({ id: "m2", idempotency_key: "n1", to: ["billing@example.in"], subject: "Payment received" });
  s.provider_calls = [
    { route: "razorpay.payments.refund", action_key: "refund rf_1", status: 200 },
    { route: "razorpay.payments.refund", action_key: "refund rf_1", status: 200 },
  ];
  s.provider_actions = [{ id: "a1", organization_id: ORG, kind: "refund", state: "pending", attempts: 9, max_attempts: 8, last_error: "503", created_ms: s.now_ms - DAY }];
  const details = checkOutboxes(s).map((x) => x.detail);
  assertEquals(details.length, 3, details.join("\n"));
  assert(details.some((d) => d.includes("email n1 was sent 2 times")));
  assert(details.some((d) => d.includes("carried out refund rf_1 2 times")));
  assert(details.some((d) => d.includes("still pending after 9 attempts")));
  s.at_least_once = ["n1"];
  assert(checkOutboxes(s).some((x) => x.detail.includes("email n1 was sent 2 times")), "the mailbox holds one email per key, even after a crash");
});

Deno.test("5: a second accepted send only for a notification whose sender died after the send", () => {
  const s = paidOrg();
  s.email_calls = [
    { idempotency_key: "n1", status: 200 },
    { idempotency_key: "n1", status: 200 },
  ];
  const details = checkOutboxes(s).map((x) => x.detail);
  assertEquals(details.length, 1, details.join("\n"));
  assert(details[0].includes("accepted notification n1 2 times"), details[0]);
  // The documented case: the sender was killed after the API accepted n1; sent again, one email.
  s.at_least_once = ["n1"];
  assertEquals(checkOutboxes(s), [], "the documented at-least-once case is allowed");
  // ... and only that notification: another one accepted twice still breaks it.
  s.notifications.push({ ...s.notifications[0], id: "n2" });
  s.email_calls.push({ idempotency_key: "n2", status: 200 }, { idempotency_key: "n2", status: 503 }, { idempotency_key: "n2", status: 200 });
  const other = checkOutboxes(s).map((x) => x.detail);
  assertEquals(other.length, 1, other.join("\n"));
  assert(other[0].includes("accepted notification n2 2 times"), other[0]);
  // A failed attempt followed by a success is one send.
  s.email_calls = [{ idempotency_key: "n2", status: 503 }, { idempotency_key: "n2", status: 200 }];
  assertEquals(checkOutboxes(s), []);
});

Deno.test("6: a quota over its limit and a request id counted twice", () => {
  const s = paidOrg();
  s.usage_calls = [
    { organization_id: ORG, metric: "ai_prompts", request_id: "r1", amount: 1, allowed: true, used: 1, limit_amount: 1, window_day: "2027-01-01" },
    { organization_id: ORG, metric: "ai_prompts", request_id: "r2", amount: 1, allowed: true, used: 2, limit_amount: 1, window_day: "2027-01-01" },
    { organization_id: ORG, metric: "ai_prompts", request_id: "r1", amount: 1, allowed: true, used: 2, limit_amount: 1, window_day: "2027-01-01" },
  ];
  s.usage_rows = [{ organization_id: ORG, metric: "ai_prompts", window_day: "2027-01-01", count: 3 }];
  const details = checkUsage(s).map((x) => x.detail);
  assertEquals(details.length, 3, details.join("\n"));
  assert(details[0].includes("r2 was allowed at 2 of a limit of 1"));
  assert(details[2].includes("the counter holds 3, the distinct allowed requests add up to 2"));
});

/** Credits of one organization in order: a 100-credit period grant, 30 spent under request c1. */
function creditedOrg(): Snapshot {
  const s = paidOrg();
  s.credit_grants = [{ id: "g1", organization_id: ORG, source: "subscription", amount: 100, remaining: 70, expires_ms: s.now_ms + 20 * DAY }];
  s.credit_charges = [{ organization_id: ORG, request_id: "c1", charged: 30 }];
  s.credit_calls = [{ organization_id: ORG, request_id: "c1", credits: 30, released: false }];
  s.credit_periods = [
    { organization_id: ORG, subscription_id: "sub1", period_start: "2027-01-01", granted: 100, most: 100, current: false, per_period: 0 },
    { organization_id: ORG, subscription_id: "sub1", period_start: "now", granted: 100, most: 2147483647, current: true, per_period: 100 },
  ];
  return s;
}

Deno.test("7: credits in order report nothing", () => {
  assertEquals(checkCredits(creditedOrg()), []);
  assertEquals(checkAll(creditedOrg()), []);
});

Deno.test("7: a ledger that disagrees, a grant below zero, a lapsed grant the job left", () => {
  const s = creditedOrg();
  s.credit_problems = [{ organization_id: ORG, grant_id: "g1", problem: "grant remaining 70, ledger sum 100" }];
  s.credit_grants.push({ id: "g2", organization_id: ORG, source: "purchase", amount: 10, remaining: -1, expires_ms: null });
  s.credit_grants.push({ id: "g3", organization_id: ORG, source: "promotion", amount: 10, remaining: 4, expires_ms: s.now_ms - 2 * DAY });
  const details = checkCredits(s).map((x) => x.detail);
  assertEquals(details.length, 3, details.join("\n"));
  assert(details[0].includes("grant remaining 70, ledger sum 100"));
  assert(details[1].includes("grant g2 holds -1 of 10"));
  assert(details[2].includes("promotion grant g3 lapsed") && details[2].includes("still holds 4"));
});

Deno.test("7: a request charged twice, or holding other than the model's credits", () => {
  const s = creditedOrg();
  s.credit_charges.push({ organization_id: ORG, request_id: "c1", charged: 30 });
  assert(checkCredits(s).some((x) => x.detail.includes("request c1 is 2 charges, not one")));
  const t = creditedOrg();
  t.credit_calls[0].released = true;
  assert(checkCredits(t).some((x) => x.detail.includes("request c1 holds 30 credits, the model 0")));
  const u = creditedOrg();
  u.credit_charges = [];
  assert(checkCredits(u).some((x) => x.detail.includes("request c1 is 0 charges")));
});

Deno.test("7: a period granted twice, or a running period without its credits", () => {
  const s = creditedOrg();
  s.credit_periods[0].granted = 200;
  assert(checkCredits(s).some((x) => x.detail.includes("was granted 200 credits, its plans give at most 100")));
  const t = creditedOrg();
  t.credit_periods[1].granted = 0;
  assert(checkCredits(t).some((x) => x.detail.includes("paid span running now has 0 credits, its plan gives 100")));
});

Deno.test("7: a refunded pack that keeps more than its share not refunded", () => {
  const s = creditedOrg();
  s.pack_grants = [{ organization_id: ORG, grant_id: "gp", amount: 1000, remaining: 700, captured: 58882, refunded: 29441 }];
  assert(checkCredits(s).some((x) => x.detail.includes("pack grant gp holds 700 credits after 29441 of 58882 paise were refunded (at most 500)")));
  s.pack_grants[0].remaining = 500;
  assertEquals(checkCredits(s), []);
  s.pack_grants[0].refunded = 58882;
  assert(checkCredits(s).some((x) => x.detail.includes("(at most 0)")));
});

/**
 * A paid month at 20 % off (SAVE20, once) and a free month (FREE600, ₹600 off a ₹499 plan, its
 * zero payment recorded as provider manual), each with its redemption, order, quote and invoice.
 */
function discountedOrg(): Snapshot {
  const s = paidOrg();
  s.discount_specs = [
    { code: "SAVE20", percent_bps: 2000, duration: "once", max_redemptions: 1 },
    { code: "FREE600", amount_paise: 60000, duration: "once", max_per_organization: 2 },
  ];
  // 49900 - 9980 = 39920 taxable, + 18 % GST (3593 + 3593) = 47106.
  s.provider_captures = [{ provider: "razorpay", payment_id: "pay_1", amount: 47106, at_ms: s.now_ms - 3 * DAY }];
  s.payment_events = [capture("pe1", "pay_1", 47106), capture("pe2", "free_ord_2", 0, { provider: "manual" })];
  s.invoices = [
    { id: "inv1", organization_id: ORG, number: "INV/26-27/000001", financial_year: 2026, serial: 1, total_cents: 47106 },
    { id: "inv2", organization_id: ORG, number: "INV/26-27/000002", financial_year: 2026, serial: 2, total_cents: 0 },
  ];
  s.expect_applied = ["pay_1", "free_ord_2"];
  s.discount_redemptions = [
    { id: "r1", organization_id: ORG, code: "SAVE20", status: "redeemed", order_id: "o1", order_status: "paid", order_expires_ms: null },
    { id: "r2", organization_id: ORG, code: "FREE600", status: "redeemed", order_id: "o2", order_status: "paid", order_expires_ms: null },
  ];
  const order = { organization_id: ORG, kind: "new", status: "paid", plan_code: "basic_monthly", prices_include_tax: false };
  s.plan_orders = [
    { ...order, id: "o1", list_cents: 49900, discount_cents: 9980, taxable_cents: 39920, amount_cents: 47106, discount_redemption_id: "r1", invoice_total: 47106, captured: 47106 },
    { ...order, id: "o2", list_cents: 49900, discount_cents: 49900, taxable_cents: 0, amount_cents: 0, discount_redemption_id: "r2", invoice_total: 0, captured: 0 },
  ];
  s.checkout_quotes = [
    { organization_id: ORG, order_id: "o1", code: "save20", list_paise: 49900, discount_paise: 9980, taxable_paise: 39920, total_paise: 47106 },
    { organization_id: ORG, order_id: "o2", code: "FREE600", list_paise: 49900, discount_paise: 49900, taxable_paise: 0, total_paise: 0 },
  ];
  return s;
}

Deno.test("8: a discounted and a free order, redeemed within their limits, break no invariant", () => {
  assertEquals(checkAll(discountedOrg()), []);
});

Deno.test("8: a code redeemed beyond max_redemptions, or beyond its per-organization limit, is reported", () => {
  const s = discountedOrg();
  const OTHER = "00000000-0000-4000-8000-00000000000b";
  // A second organization's reservation of SAVE20 (max 1) on an open, unexpired order counts.
  s.discount_redemptions.push({ id: "r3", organization_id: OTHER, code: "SAVE20", status: "reserved", order_id: "o3", order_status: "pending", order_expires_ms: s.now_ms + 3600e3 });
  let found = checkDiscounts(s);
  assertEquals(found.length, 1);
  assert(found[0].detail.includes("SAVE20 counts 2 redemptions, its max_redemptions is 1"), found[0].detail);
  s.discount_redemptions[2].order_expires_ms = s.now_ms - 3600e3;
  assertEquals(checkDiscounts(s), [], "a reservation whose order expired no longer counts");
  s.discount_redemptions[2].status = "released";
  s.discount_redemptions.push(
    { id: "r4", organization_id: ORG, code: "FREE600", status: "redeemed", order_id: "o4", order_status: "paid", order_expires_ms: null },
    { id: "r5", organization_id: ORG, code: "free600", status: "redeemed", order_id: "o5", order_status: "paid", order_expires_ms: null },
  );
  found = checkDiscounts(s);
  assertEquals(found.length, 1);
  assert(found[0].detail.includes("FREE600 counts 3 redemptions for this organization, 2 allowed"), found[0].detail);
});

Deno.test("8: a once code discounting two paid orders (a renewal carried it) is reported", () => {
  const s = discountedOrg();
  s.plan_orders.push({ ...s.plan_orders[0], id: "o6", invoice_total: 47106, captured: 47106 });
  const found = checkDiscounts(s);
  assertEquals(found.length, 1);
  assert(found[0].detail.includes("redemption r1 of SAVE20 (once) discounted 2 paid orders, at most 1"), found[0].detail);
});

Deno.test("8: an order priced otherwise than its code, its quote or its tax base says is reported", () => {
  let s = discountedOrg();
  s.plan_orders[0].discount_cents = 9979; // 20 % of 49900 is 9980
  s.plan_orders[0].taxable_cents = 39921;
  let found = checkDiscounts(s);
  assert(found.some((x) => x.detail.includes("SAVE20 takes 9980 paise off 49900, the order 9979")), JSON.stringify(found));
  assert(found.some((x) => x.detail.includes("preview_checkout quoted")), JSON.stringify(found));
  s = discountedOrg();
  s.plan_orders[0].taxable_cents = 49900; // taxed on the list price, not on what is left
  found = checkDiscounts(s);
  assert(found.some((x) => x.detail.includes("list 49900 - discount 9980 = 39920, taxed on 49900")), JSON.stringify(found));
  s = discountedOrg();
  s.checkout_quotes[0].total_paise = 47105;
  found = checkDiscounts(s);
  assertEquals(found.length, 1);
  assert(found[0].detail.includes("preview_checkout quoted"), found[0].detail);
});

Deno.test("8: a paid discounted order whose invoice is not what was captured, and a free order still charging, are reported", () => {
  let s = discountedOrg();
  s.plan_orders[0].invoice_total = 58882; // invoiced at the list price
  let found = checkDiscounts(s);
  assert(found.some((x) => x.detail.includes("charges 47106, its invoice totals 58882")), JSON.stringify(found));
  assert(found.some((x) => x.detail.includes("47106 paise captured, its invoice totals 58882")), JSON.stringify(found));
  s = discountedOrg();
  s.plan_orders[1].amount_cents = 100;
  found = checkDiscounts(s);
  assert(found.some((x) => x.detail.includes("the discount covers the price, yet it charges 100")), JSON.stringify(found));
  s = discountedOrg();
  s.plan_orders[1].invoice_total = null;
  found = checkDiscounts(s);
  assert(found.some((x) => x.detail.includes("was paid and has no invoice")), JSON.stringify(found));
});

Deno.test("1: a free order's zero manual payment needs no provider; a manual payment of money is reported", () => {
  const s = discountedOrg();
  assertEquals(checkLedger(s), []);
  s.payment_events[1].amount_cents = 100;
  const found = checkLedger(s);
  assertEquals(found.length, 1);
  assert(found[0].detail.includes("manual payment free_ord_2 of 100 paise"), found[0].detail);
});
