// Razorpay's event vocabulary (what each event means for billing) and the NormalizedEvents made
// from objects fetched from the API (a payment, a processed refund), whoever fetched them: Checkout
// verification, reconciliation, the provider actions. Webhook bodies are read in webhook.ts.

import {
  type EventKind,
  type NormalizedEvent,
  type PaymentSource,
  type ProviderOrderRef,
  type ProviderSubscriptionStatus,
  unixToIso,
} from "../types.ts";
import type { RazorpayPayment, RazorpayRefund } from "./client.ts";
import { str } from "./read.ts";

/** What each Razorpay event means for billing; any other event is `other`. */
export const RAZORPAY_EVENT_KINDS: Readonly<Record<string, EventKind>> = {
  "payment.captured": "payment_captured",
  "order.paid": "payment_captured",
  "subscription.charged": "payment_captured",
  // invoice.paid: payment_captured only when it names a payment (razorpayEventKind).
  "invoice.paid": "payment_captured",
  "payment.authorized": "payment_authorized",
  "payment.failed": "payment_failed",
  "refund.processed": "refund_processed",
  // A refund Razorpay could not make: the refund action it carries out fails (apply_refund_failed).
  "refund.failed": "refund_failed",
  "subscription.activated": "subscription_status",
  "subscription.resumed": "subscription_status",
  "subscription.pending": "subscription_status",
  "subscription.halted": "subscription_status",
  "subscription.paused": "subscription_status",
  "subscription.cancelled": "subscription_status",
  "subscription.completed": "subscription_status",
  // A dispute (chargeback): open while Razorpay and the bank decide; `closed` is read from the
  // dispute's own status (razorpayEventKind).
  "payment.dispute.created": "dispute_opened",
  "payment.dispute.won": "dispute_won",
  "payment.dispute.lost": "dispute_lost",
};

/** The provider subscription status a Razorpay event stands for (null: it says nothing about one). */
export const RAZORPAY_SUBSCRIPTION_STATUS: Readonly<Record<string, ProviderSubscriptionStatus>> = {
  "subscription.activated": "active",
  "subscription.charged": "active",
  "subscription.resumed": "active",
  "subscription.pending": "pending",
  "subscription.halted": "halted",
  "subscription.paused": "paused",
  "subscription.cancelled": "cancelled",
  "subscription.completed": "completed",
};

/** The kind of a Razorpay event, given whether it names a payment id. */
export function razorpayEventKind(eventType: string, paymentId: string | null, disputeStatus: string | null = null): EventKind {
  if (eventType === "invoice.paid" && paymentId === null) return "other";
  // A closed dispute the merchant did not win (accepted, or closed for the customer) is lost.
  if (eventType === "payment.dispute.closed") return disputeStatus === "won" ? "dispute_won" : "dispute_lost";
  return Object.hasOwn(RAZORPAY_EVENT_KINDS, eventType) ? RAZORPAY_EVENT_KINDS[eventType] : "other";
}


/** The provider subscription status a Razorpay event type stands for, or null. */
export function subscriptionStatusOf(eventType: string): ProviderSubscriptionStatus | null {
  return Object.hasOwn(RAZORPAY_SUBSCRIPTION_STATUS, eventType) ? RAZORPAY_SUBSCRIPTION_STATUS[eventType] : null;
}

/**
 * A Razorpay payment fetched from the API (Checkout verification, reconciliation) as the event
 * the SQL entry point takes. Its event id names the payment and its state, so the verify call and
 * reconciliation seeing the same state dedupe on the recorded deliveries; a webhook for the same
 * payment dedupes on payment_events (provider, payment id, status).
 */
export function razorpayPaymentEvent(
  payment: RazorpayPayment,
  order: ProviderOrderRef,
  source: PaymentSource,
): NormalizedEvent {
  const status = typeof payment.status === "string" ? payment.status : "unknown";
  const eventType = `payment.${status}`;
  const kind = razorpayEventKind(eventType, payment.id);
  return {
    provider: "razorpay",
    event_id: `payment:${payment.id}:${status}`,
    event_type: eventType,
    kind,
    subscription_status: null,
    error_reason: kind === "payment_failed" ? (str(payment.error_description) ?? status) : null,
    order_ref: order.receipt,
    provider_order_id: order.provider_subscription_id ? null : order.provider_order_id,
    provider_payment_id: payment.id,
    provider_subscription_id: order.provider_subscription_id,
    provider_refund_id: null,
    amount_paise: Number.isSafeInteger(payment.amount) ? payment.amount : null,
    currency: typeof payment.currency === "string" ? payment.currency : null,
    status,
    method: typeof payment.method === "string" ? payment.method : null,
    occurred_at: unixToIso(payment.created_at),
    payload: { source, payment },
  };
}

/** Our order's references a refund event carries (so it matches our order). */
export interface RefundContext {
  order_ref: string | null;
  provider_order_id: string | null;
  provider_subscription_id: string | null;
}

/**
 * A confirmed (processed) Razorpay refund as the event the SQL entry point takes, whoever found it
 * (the worker's call, its look-up, reconcile): one event id per refund.
 */
export function razorpayRefundEvent(
  refund: RazorpayRefund,
  context: RefundContext,
  payload: Record<string, unknown>,
): NormalizedEvent {
  return {
    provider: "razorpay",
    // The refund and its state: the refund.processed webhook for the same refund dedupes on the
    // refund id in payment_events (billing.apply_refund), so it is a duplicate when it arrives.
    event_id: `refund:${refund.id}:processed`,
    event_type: "refund.processed",
    kind: "refund_processed",
    subscription_status: null,
    error_reason: null,
    order_ref: context.order_ref,
    provider_order_id: context.provider_order_id,
    provider_payment_id: refund.payment_id,
    provider_subscription_id: context.provider_subscription_id,
    provider_refund_id: refund.id,
    amount_paise: Number.isSafeInteger(refund.amount) ? refund.amount : null,
    currency: typeof refund.currency === "string" ? refund.currency : null,
    status: "processed",
    method: null,
    occurred_at: unixToIso(refund.created_at),
    payload: { ...payload, refund },
  };
}
