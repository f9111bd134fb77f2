// Razorpay reconciliation: what Razorpay says about one of our orders, subscriptions or captured
// payments when a webhook may have been lost, as the events to apply.

import {
  type NormalizedEvent,
  type ProviderOrderRef,
  type ProviderPaymentRef,
  type ProviderRefund,
  type ProviderSubscriptionRef,
  type ProviderSubscriptionStatus,
  type ReconcileFinding,
  unixToIso,
} from "../types.ts";
import type { RazorpayApiClient, RazorpayClient, RazorpayRefund, RazorpaySubscription } from "./client.ts";
import { razorpayPaymentEvent, razorpayRefundEvent, type RefundContext } from "./events.ts";
import { notesOf, str } from "./read.ts";

/**
 * The adapter's reconcileOrder: the payments Razorpay holds for our order's Razorpay order, each
 * as the event that records it.
 */
export async function reconcileRazorpayOrder(client: RazorpayClient, order: ProviderOrderRef): Promise<ReconcileFinding> {
  // A subscription checkout has no Razorpay order to ask about: its webhooks settle it, and
  // reconcileSubscription asks about the subscription once it looks stale.
  if (!order.provider_order_id) {
    return {
      skipped: order.provider_subscription_id
        ? "a Razorpay subscription: settled by its webhooks, reconciled as a subscription when stale"
        : "no Razorpay order id attached",
    };
  }
  const payments = await client.fetchOrderPayments(order.provider_order_id);
  return {
    events: payments.map((payment) =>
      razorpayPaymentEvent(
        payment,
        { receipt: order.receipt, provider_order_id: order.provider_order_id, provider_subscription_id: null },
        "reconcile",
      )
    ),
  };
}

/** Razorpay subscription statuses that say something about ours (created, authenticated: nothing yet). */
const RAZORPAY_FETCHED_STATUS: Readonly<Record<string, ProviderSubscriptionStatus>> = {
  active: "active",
  pending: "pending",
  halted: "halted",
  paused: "paused",
  cancelled: "cancelled",
  completed: "completed",
  expired: "expired",
};

/**
 * A Razorpay subscription fetched from the API as a subscription_status event: its status as
 * Razorpay states it at `answeredAt` (the time we asked, which is the event's time: this is the
 * provider's newest word). Null for statuses that say nothing about ours.
 */
export function razorpaySubscriptionStatusEvent(
  sub: RazorpaySubscription,
  ref: ProviderSubscriptionRef,
  answeredAt: Date,
): NormalizedEvent | null {
  const status = Object.hasOwn(RAZORPAY_FETCHED_STATUS, sub.status) ? RAZORPAY_FETCHED_STATUS[sub.status] : null;
  if (!status) return null;
  const at = Math.floor(answeredAt.getTime() / 1000);
  return {
    provider: "razorpay",
    event_id: `subscription.fetched:${sub.id}:${sub.status}:${at}`,
    event_type: `subscription.${sub.status}`,
    kind: "subscription_status",
    subscription_status: status,
    error_reason: null,
    order_ref: ref.receipt,
    provider_order_id: null,
    provider_payment_id: null,
    provider_subscription_id: sub.id,
    provider_refund_id: null,
    amount_paise: null,
    currency: null,
    status: sub.status,
    method: null,
    occurred_at: unixToIso(at),
    payload: { source: "reconcile", subscription: sub },
  };
}

/**
 * What Razorpay says about one of our subscriptions: GET /subscriptions/:id for its status, GET
 * /invoices?subscription_id=:id for its charges (a paid invoice names its payment), and GET
 * /payments/:id for each paid charge we do not know yet (its amount, currency and status). The
 * charges come first, oldest first, then the status when it differs from the one stored.
 */
export async function reconcileRazorpaySubscription(
  client: RazorpayClient,
  ref: ProviderSubscriptionRef,
  now: () => Date = () => new Date(),
): Promise<NormalizedEvent[]> {
  const sub = await client.fetchSubscription(ref.provider_subscription_id);
  const answeredAt = now();
  const known = new Set(ref.known_payment_ids);
  const invoices = (await client.fetchSubscriptionInvoices(ref.provider_subscription_id))
    .filter((i) => i.status === "paid" && typeof i.payment_id === "string" && !known.has(i.payment_id))
    .sort((a, b) => (a.paid_at ?? 0) - (b.paid_at ?? 0));
  const events: NormalizedEvent[] = [];
  const orderRef: ProviderOrderRef = {
    receipt: ref.receipt ?? "",
    provider_order_id: null,
    provider_subscription_id: ref.provider_subscription_id,
  };
  for (const paymentId of new Set(invoices.map((i) => i.payment_id as string))) {
    const event = razorpayPaymentEvent(await client.fetchPayment(paymentId), orderRef, "reconcile");
    events.push({ ...event, order_ref: ref.receipt });
  }
  const status = razorpaySubscriptionStatusEvent(sub, ref, answeredAt);
  if (status && status.status !== ref.provider_status) events.push(status);
  return events;
}


/** Our reference of a Razorpay refund: its receipt, or notes.refund_id (both set by our refund actions). */
function refundReference(refund: RazorpayRefund): string | null {
  return str(refund.receipt) ?? str(notesOf(refund as Record<string, unknown>).refund_id);
}

/** The refunds Razorpay holds for one of our payments (reconcile), each with the event that records it. */
export async function razorpayRefundsOf(client: RazorpayApiClient, payment: ProviderPaymentRef): Promise<ProviderRefund[]> {
  const context: RefundContext = {
    order_ref: payment.order_ref,
    provider_order_id: payment.provider_order_id,
    provider_subscription_id: payment.provider_subscription_id,
  };
  return (await client.fetchPaymentRefunds(payment.provider_payment_id)).map((refund) => ({
    provider_refund_id: refund.id,
    reference: refundReference(refund),
    amount_paise: refund.amount,
    status: String(refund.status).toLowerCase(),
    event: refund.status === "processed" ? razorpayRefundEvent(refund, context, { source: "reconcile" }) : null,
  }));
}
