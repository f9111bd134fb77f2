// Stripe provider actions (the provider-sync worker): cancel now or at the period end, resume,
// change plan, refund and fetch payment through the API, and the look-up of a refund an earlier
// attempt may have made (docs/providers.md).
//
//   cancel        at_cycle_end false: DELETE /v1/subscriptions/:id; true: POST /v1/subscriptions/:id
//                 cancel_at_period_end=true
//   resume        POST /v1/subscriptions/:id cancel_at_period_end=false (Stripe can undo it)
//   change_plan   the subscription's price switched to ours (price_data of price_amount, the
//                 plan's interval, our discount in it: the subscription's coupon, if any, deleted
//                 after), proration_behavior=none (the proration is ours); an upgrade
//                 with an order is paid first: an invoice item of the order's amount, an invoice
//                 of it (pending_invoice_items_behavior=include) paid now (its invoice.paid names
//                 our order, metadata.order_ref, and captures it), and only once it is paid the
//                 switch. An upgrade starts a new period here, so trial_end = the new period's end
//                 moves Stripe's next charge there without charging (Stripe's way to move a
//                 billing date).
//   refund        POST /v1/refunds {payment_intent, amount, metadata.refund_id, metadata.action_id},
//                 Idempotency-Key = our refund id
//   fetch_payment GET /v1/payment_intents/:id, as the payment_captured event the webhook makes
// Every POST carries an Idempotency-Key derived from the action's, so a retry within Stripe's 24 h
// gets the first answer; a refund is looked up by metadata.refund_id before any retry
// (lookupStripeAction), which does not depend on those 24 h.

import {
  type ActionOutcome,
  actionOutcomeOf,
  type NormalizedEvent,
  type ProviderAction,
  ProviderError,
  unixToIso,
  unsupportedAction,
} from "../types.ts";
import { checkStripeId, type StripeClient, type StripeList, type StripeObject } from "./client.ts";
import { idOf, isObject, listData, metadataOf, str } from "./read.ts";

/** A refund as the event that records it (kind refund_processed), the id charge.refunded's refresh gives too. */
export function stripeRefundEvent(
  refund: Record<string, unknown>,
  context: { order_ref: string | null; provider_subscription_id: string | null },
  source: Record<string, unknown>,
): NormalizedEvent {
  const id = String(refund.id);
  return {
    provider: "stripe",
    // The same id whichever way the refund is found (webhook refund.updated, charge.refunded,
    // provider-sync, reconcile): payment_events dedupe on the provider refund id.
    event_id: `refund:${id}:succeeded`,
    event_type: "refund.succeeded",
    kind: "refund_processed",
    subscription_status: null,
    error_reason: null,
    order_ref: context.order_ref,
    provider_order_id: null,
    provider_payment_id: idOf(refund.payment_intent),
    provider_subscription_id: context.provider_subscription_id,
    provider_refund_id: id,
    provider_dispute_id: null,
    amount_paise: typeof refund.amount === "number" ? refund.amount : null,
    currency: str(refund.currency)?.toUpperCase() ?? null,
    status: "succeeded",
    method: null,
    occurred_at: unixToIso(refund.created),
    payload: { ...source, refund },
  };
}

function refundContext(action: ProviderAction) {
  return {
    order_ref: action.target.order_ref ?? null,
    provider_subscription_id: action.target.provider_subscription_id ?? null,
  };
}

/** A refund Stripe answered or listed for an action -> the outcome to record. */
function refundOutcome(refund: Record<string, unknown>, action: ProviderAction, foundBy: string | null): ActionOutcome {
  const amount = action.payload?.amount_paise;
  const paymentId = action.target.provider_payment_id;
  const result = {
    provider_refund_id: refund.id,
    status: refund.status,
    amount_paise: refund.amount,
    currency: refund.currency,
    refund_id: metadataOf(refund).refund_id ?? null,
    ...(foundBy ? { found_by: foundBy } : {}),
  };
  if (idOf(refund.payment_intent) !== paymentId || refund.amount !== amount) {
    return {
      outcome: "failed",
      error: `Stripe refunded ${refund.amount} of ${idOf(refund.payment_intent)}, not ${amount} of ${paymentId}`,
      result,
    };
  }
  if (refund.status === "failed" || refund.status === "canceled") {
    return { outcome: "failed", error: `Stripe reports refund ${refund.id} as ${refund.status}`, result };
  }
  // pending / requires_action: accepted, not yet made; its refund.updated webhook (or reconcile) records it.
  return refund.status === "succeeded"
    ? {
      outcome: "succeeded",
      result,
      events: [stripeRefundEvent(refund, refundContext(action), { source: "provider-sync", action_id: action.id })],
    }
    : { outcome: "succeeded", result };
}

/** The refunds Stripe holds for a PaymentIntent (every page). */
export async function stripeRefundsOf(client: StripeClient, paymentIntent: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let after: string | undefined;
  for (let page = 0; page < 20; page++) {
    const list = await client.call<StripeList>("GET", "/v1/refunds", {
      payment_intent: checkStripeId(paymentIntent),
      limit: 100,
      ...(after ? { starting_after: after } : {}),
    });
    const data = listData(list);
    out.push(...data);
    if (!list.has_more || data.length === 0) break;
    after = String(data[data.length - 1].id);
  }
  return out;
}

/**
 * What Stripe already holds under a refund action's reference (provider-sync, before carrying it
 * out again): the PaymentIntent's refunds, the one whose metadata.refund_id is ours. null when
 * there is none. Never throws.
 */
export async function lookupStripeAction(action: ProviderAction, client: StripeClient): Promise<ActionOutcome | null> {
  if (action.kind !== "refund") return null;
  const paymentId = str(action.target?.provider_payment_id);
  const refundId = str(action.payload?.refund_id);
  if (!paymentId || !refundId) return null;
  try {
    const mine = (await stripeRefundsOf(client, paymentId)).find((r) => metadataOf(r).refund_id === refundId);
    return mine ? refundOutcome(mine, action, "refunds.list") : null;
  } catch (e) {
    const o = actionOutcomeOf(e);
    // Not knowing is never a failure: the action waits until Stripe can be asked.
    return {
      outcome: "retry",
      error: `Stripe could not be asked about the earlier attempt: ${o.outcome === "succeeded" ? "no answer" : o.error}`,
      ...(o.outcome === "retry" ? { retryAfterSeconds: o.retryAfterSeconds } : {}),
    };
  }
}

function subscriptionResult(sub: StripeObject): Record<string, unknown> {
  const item = listData(sub.items)[0];
  return {
    provider_subscription_id: sub.id,
    status: sub.status,
    cancel_at_period_end: sub.cancel_at_period_end ?? null,
    price_id: idOf(item?.price),
    current_period_end: item?.current_period_end ?? null,
  };
}

const positiveInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v > 0;

/** change_plan: the invoice item (an upgrade's order), the price switch, the invoice paid now. */
async function changePlan(action: ProviderAction, subId: string, client: StripeClient): Promise<ActionOutcome> {
  const p = action.payload ?? {};
  const key = action.idempotency_key;
  const currency = str(p.currency)?.toLowerCase();
  const interval = str(p.interval);
  if (!positiveInt(p.price_amount) || !currency || !interval) {
    return { outcome: "failed", error: "a Stripe change_plan needs payload.price_amount, currency and interval" };
  }
  const orderRef = str(p.order_ref);
  if (orderRef !== null && !positiveInt(p.amount_paise)) {
    return { outcome: "failed", error: "a Stripe upgrade needs payload.amount_paise (positive integer paise)" };
  }
  const sub = await client.retrieveSubscription(subId);
  const item = listData(sub.items)[0];
  const itemId = str(item?.id);
  const customer = idOf(sub.customer);
  if (!itemId || !customer) return { outcome: "failed", error: `Stripe subscription ${subId} has no item or customer` };
  const metadata = { order_ref: orderRef ?? "", plan_code: str(p.plan_code) ?? "", action_id: action.id };

  // An upgrade is paid before Stripe's price is switched: a declined payment (Stripe answers 402 and
  // the action fails) leaves the subscription on the price it had, so the next renewal still
  // charges the plan we still bill, and our upgrade order expires unpaid. The invoice is made
  // without automatic collection (auto_advance false): Stripe does not retry it later on its own;
  // once declined it is voided, so nobody pays it later either.
  let paid: StripeObject | null = null;
  let invoiceItem: StripeObject | null = null;
  if (orderRef !== null) {
    let invoice: StripeObject | null = null;
    try {
      invoiceItem = await client.call("POST", "/v1/invoiceitems", {
        customer,
        subscription: subId,
        amount: p.amount_paise,
        currency,
        description: `Upgrade to ${str(p.plan_name) ?? str(p.plan_code) ?? "a new plan"} (${orderRef})`,
        metadata,
      }, { idempotencyKey: `${key}:invoiceitem` });
      invoice = await client.call<StripeObject>("POST", "/v1/invoices", {
        customer,
        subscription: subId,
        pending_invoice_items_behavior: "include",
        auto_advance: false,
        metadata,
      }, { idempotencyKey: `${key}:invoice` });
      paid = await client.call<StripeObject>("POST", `/v1/invoices/${checkStripeId(invoice.id)}/pay`, {}, {
        idempotencyKey: `${key}:pay`,
      });
    } catch (e) {
      // A final refusal (a declined card, a request Stripe will not take) ends this upgrade; a
      // transient error is retried under the same keys, so nothing is undone for it.
      if (actionOutcomeOf(e).outcome === "failed") await undoUpgradeCharge(client, invoiceItem?.id, invoice?.id, key);
      throw e;
    }
    if (paid.status !== "paid") {
      await undoUpgradeCharge(client, invoiceItem?.id, paid.id, key);
      return {
        outcome: "failed",
        error: `Stripe did not collect the upgrade invoice ${paid.id} (status ${String(paid.status)}): the price is not switched`,
        result: { invoice_item_id: invoiceItem?.id ?? null, invoice_id: paid.id, invoice_status: paid.status },
      };
    }
  }
  const updated = await client.call<StripeObject>("POST", `/v1/subscriptions/${checkStripeId(subId)}`, {
    items: [{
      id: itemId,
      price_data: {
        currency,
        unit_amount: p.price_amount,
        product: idOf(at(item, "price", "product")) ?? undefined,
        recurring: { interval },
      },
    }],
    proration_behavior: "none",
    ...(typeof p.period_end === "number" && p.at_cycle_end !== true ? { trial_end: p.period_end } : {}),
    metadata: { plan_code: str(p.plan_code) ?? "" },
  }, { idempotencyKey: `${key}:subscription` });
  // Our price already carries the organization's discount: the coupon the checkout put on the
  // subscription comes off, or Stripe would take it off again from every later invoice. (A retry
  // finds it gone: 404, nothing left to do.)
  if (sub.discount || (Array.isArray(sub.discounts) && sub.discounts.length > 0)) {
    try {
      await client.call("DELETE", `/v1/subscriptions/${checkStripeId(subId)}/discount`);
    } catch (e) {
      if (!(e instanceof ProviderError && e.upstream_status === 404)) throw e;
    }
  }
  const result: Record<string, unknown> = subscriptionResult(updated);
  if (paid === null) return { outcome: "succeeded", result };
  return {
    outcome: "succeeded",
    result: {
      ...result,
      invoice_item_id: invoiceItem?.id ?? null,
      invoice_id: paid.id,
      invoice_status: paid.status,
      amount_paid: paid.amount_paid ?? null,
    },
  };
}

/**
 * Undoes what a refused upgrade left at Stripe, so that nobody is charged later for an upgrade that
 * did not happen: an open invoice (the declined attempt finalized it) could still be paid from the
 * hosted invoice page or the portal, so it is voided; a draft is deleted; and an invoice item left
 * pending (no invoice took it, or its draft was deleted) would be charged by the subscription's next
 * invoice, so it is deleted. A paid or already void invoice is left as it is.
 */
async function undoUpgradeCharge(client: StripeClient, itemId: unknown, invoiceId: unknown, key: string): Promise<void> {
  if (typeof invoiceId === "string") {
    const invoice = await client.call<StripeObject>("GET", `/v1/invoices/${checkStripeId(invoiceId)}`);
    if (invoice.status === "open") {
      await client.call("POST", `/v1/invoices/${checkStripeId(invoiceId)}/void`, {}, { idempotencyKey: `${key}:void` });
      return;
    }
    if (invoice.status !== "draft") return;
    await client.call("DELETE", `/v1/invoices/${checkStripeId(invoiceId)}`);
  }
  if (typeof itemId === "string") {
    const item = await client.call<StripeObject>("GET", `/v1/invoiceitems/${checkStripeId(itemId)}`);
    if (item.invoice === null || item.invoice === undefined) {
      await client.call("DELETE", `/v1/invoiceitems/${checkStripeId(itemId)}`);
    }
  }
}

function at(v: unknown, ...path: string[]): unknown {
  let cur: unknown = v;
  for (const k of path) cur = isObject(cur) ? cur[k] : null;
  return cur ?? null;
}

/** Carries out one action at Stripe. Never throws. */
export async function performStripeAction(action: ProviderAction, client: StripeClient): Promise<ActionOutcome> {
  const p = action.payload ?? {};
  const subId = str(action.target?.provider_subscription_id);
  const paymentId = str(action.target?.provider_payment_id);
  const needs = (what: string): ActionOutcome => ({ outcome: "failed", error: `a Stripe ${action.kind} needs ${what}` });
  const key = action.idempotency_key;
  try {
    switch (action.kind) {
      case "cancel": {
        if (!subId) return needs("target.provider_subscription_id");
        if (typeof p.at_cycle_end !== "boolean") return needs("payload.at_cycle_end (boolean)");
        const sub = p.at_cycle_end
          ? await client.call<StripeObject>("POST", `/v1/subscriptions/${checkStripeId(subId)}`, {
            cancel_at_period_end: true,
          }, { idempotencyKey: key })
          : await client.call<StripeObject>("DELETE", `/v1/subscriptions/${checkStripeId(subId)}`);
        return { outcome: "succeeded", result: subscriptionResult(sub) };
      }
      case "resume": {
        if (!subId) return needs("target.provider_subscription_id");
        const sub = await client.call<StripeObject>("POST", `/v1/subscriptions/${checkStripeId(subId)}`, {
          cancel_at_period_end: false,
        }, { idempotencyKey: key });
        return { outcome: "succeeded", result: subscriptionResult(sub) };
      }
      case "change_plan":
        if (!subId) return needs("target.provider_subscription_id");
        return await changePlan(action, subId, client);
      case "refund": {
        if (!paymentId) return needs("target.provider_payment_id");
        const amount = p.amount_paise;
        const refundId = str(p.refund_id);
        if (!positiveInt(amount)) return needs("payload.amount_paise (positive integer paise)");
        if (!refundId) return needs("payload.refund_id");
        const metadata: Record<string, string> = { refund_id: refundId, action_id: action.id };
        if (typeof p.reason === "string" && p.reason !== "") metadata.reason = p.reason.slice(0, 500);
        const refund = await client.call<StripeObject>("POST", "/v1/refunds", {
          payment_intent: checkStripeId(paymentId),
          amount,
          metadata,
        }, { idempotencyKey: refundId });
        return refundOutcome(refund, action, null);
      }
      case "fetch_payment": {
        if (!paymentId) return needs("target.provider_payment_id");
        const pi = await client.call<StripeObject>("GET", `/v1/payment_intents/${checkStripeId(paymentId)}`);
        const event = stripePaymentIntentEvent(pi, action.target.order_ref ?? null, action.target.provider_subscription_id ?? null, "provider-sync");
        return {
          outcome: "succeeded",
          result: { provider_payment_id: pi.id, status: pi.status, amount_paise: pi.amount_received ?? null },
          events: [event],
        };
      }
      default:
        return unsupportedAction("stripe", action.kind);
    }
  } catch (e) {
    return actionOutcomeOf(e);
  }
}

/** A PaymentIntent fetched from the API as the event SQL takes (captured when it succeeded). */
export function stripePaymentIntentEvent(
  pi: Record<string, unknown>,
  orderRef: string | null,
  subscriptionId: string | null,
  source: string,
): NormalizedEvent {
  const succeeded = pi.status === "succeeded";
  const failed = pi.status === "requires_payment_method" && isObject(pi.last_payment_error);
  return {
    provider: "stripe",
    event_id: `payment_intent.${String(pi.status)}:${String(pi.id)}`,
    event_type: `payment_intent.${String(pi.status)}`,
    kind: succeeded ? "payment_captured" : failed ? "payment_failed" : "other",
    subscription_status: null,
    error_reason: failed ? (str(at(pi, "last_payment_error", "message")) ?? "payment failed") : null,
    order_ref: orderRef ?? str(metadataOf(pi).order_ref),
    provider_order_id: null,
    provider_payment_id: str(pi.id),
    provider_subscription_id: subscriptionId,
    provider_refund_id: null,
    provider_dispute_id: null,
    amount_paise: typeof pi.amount_received === "number" && succeeded ? pi.amount_received : typeof pi.amount === "number" ? pi.amount : null,
    currency: str(pi.currency)?.toUpperCase() ?? null,
    status: str(pi.status),
    method: null,
    occurred_at: unixToIso(pi.created),
    payload: { source, payment_intent: pi },
  };
}
