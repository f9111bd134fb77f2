// Stripe's event vocabulary: what each event means for billing, as a NormalizedEvent
// (normalizeStripe), and the refresh of an event from Stripe's API as it is now
// (refreshStripeEvent), because Stripe's events are snapshots delivered in any order (many share a
// second; retries come for three days).
//
// One payment id convention: provider_payment_id is the PaymentIntent (`pi_...`), the id refunds,
// charges and disputes name, so checkout.session.completed and invoice.paid for the same first
// payment dedupe in payment_events (provider, payment id, status).
//   checkout.session.completed, .async_payment_succeeded  payment_captured (mode payment: the
//       session's PaymentIntent; mode subscription: its first invoice, fetched), or
//       payment_pending while an async payment is unpaid
//   checkout.session.async_payment_failed                 payment_failed
//   invoice.paid        payment_captured: the first charge of our order (billing_reason
//       subscription_create) or a renewal (subscription_cycle; SQL tells them apart by the order),
//       our order from the subscription's metadata, the period end from the invoice line
//   invoice.payment_failed                                payment_failed (the dunning notification;
//       Stripe's own retries continue; past_due comes from the subscription's status)
//   customer.subscription.created, .updated, .deleted, .paused, .resumed  subscription_status, from the
//       subscription fetched now (never from the snapshot): its status and cancel_at_period_end
//   charge.refunded     refund_processed: the charge's newest succeeded refund made by the event's
//       time (fetched), so each partial refund's own event records it
//   refund.created, refund.updated                        refund_processed (succeeded), refund_failed
//       (failed or canceled); pending refunds wait for their update
//   charge.dispute.created                                dispute_opened
//   charge.dispute.closed                                 dispute_won or dispute_lost (by its status)
//   anything else signed                                  other: recorded and acknowledged

import {
  type EventKind,
  type NormalizedEvent,
  type NormalizeResult,
  type ProviderSubscriptionStatus,
  unixToIso,
  type VerifiedWebhook,
} from "../types.ts";
import type { StripeClient, StripeObject } from "./client.ts";
import { at, idOf, isObject, listData, metadataOf, str } from "./read.ts";

/** What each Stripe event type means for billing, before the object's own state is read. */
export const STRIPE_EVENT_KINDS: Readonly<Record<string, EventKind>> = {
  "checkout.session.completed": "payment_captured",
  "checkout.session.async_payment_succeeded": "payment_captured",
  "checkout.session.async_payment_failed": "payment_failed",
  "invoice.paid": "payment_captured",
  "invoice.payment_failed": "payment_failed",
  "customer.subscription.created": "subscription_status",
  "customer.subscription.updated": "subscription_status",
  "customer.subscription.deleted": "subscription_status",
  "customer.subscription.paused": "subscription_status",
  "customer.subscription.resumed": "subscription_status",
  "charge.refunded": "refund_processed",
  "refund.created": "refund_processed",
  "refund.updated": "refund_processed",
  "charge.dispute.created": "dispute_opened",
  "charge.dispute.closed": "dispute_lost",
};

/** Stripe's subscription statuses in neutral words (absent: says nothing we act on, e.g. incomplete). */
export const STRIPE_SUBSCRIPTION_STATUS: Readonly<Record<string, ProviderSubscriptionStatus>> = {
  active: "active",
  trialing: "active",
  past_due: "pending",
  unpaid: "halted",
  paused: "paused",
  canceled: "cancelled",
  incomplete_expired: "expired",
};

function subscriptionStatus(status: unknown): ProviderSubscriptionStatus | null {
  return typeof status === "string" && Object.hasOwn(STRIPE_SUBSCRIPTION_STATUS, status)
    ? STRIPE_SUBSCRIPTION_STATUS[status]
    : null;
}

class BadAmount extends Error {}

function amountOf(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new BadAmount();
  return v;
}

const upper = (v: unknown) => str(v)?.toUpperCase() ?? null;

/** The invoice's PaymentIntent: its default payment in the `payments` list (when present). */
function invoicePaymentIntent(invoice: Record<string, unknown>): string | null {
  const payments = listData(invoice.payments);
  const chosen = payments.find((p) => p.is_default === true) ?? payments[payments.length - 1];
  return chosen ? idOf(at(chosen, "payment", "payment_intent")) : null;
}

/** The event an invoice stands for (invoice.paid, invoice.payment_failed). */
function invoiceFields(invoice: Record<string, unknown>): Partial<NormalizedEvent> {
  const details = at(invoice, "parent", "subscription_details");
  const line = listData(invoice.lines)[0];
  return {
    // Our order's reference on the invoice itself (an upgrade Stripe charges on the subscription),
    // else the subscription's (its first order: a renewal).
    order_ref: str(metadataOf(invoice).order_ref) ?? str(metadataOf(isObject(details) ? details : null).order_ref),
    provider_subscription_id: idOf(at(details, "subscription")),
    provider_payment_id: invoicePaymentIntent(invoice),
    currency: upper(invoice.currency),
    status: str(invoice.status),
    period_end: unixToIso(at(line, "period", "end")),
  };
}

function base(body: Record<string, unknown>, eventId: string, type: string, kind: EventKind): NormalizedEvent {
  return {
    provider: "stripe",
    event_id: eventId.slice(0, 300),
    event_type: type.slice(0, 300),
    kind,
    subscription_status: null,
    error_reason: null,
    order_ref: null,
    provider_order_id: null,
    provider_payment_id: null,
    provider_subscription_id: null,
    provider_refund_id: null,
    provider_dispute_id: null,
    amount_paise: null,
    currency: null,
    status: null,
    method: null,
    occurred_at: unixToIso(body.created),
    payload: body,
  };
}

/** Maps a verified Stripe event to a NormalizedEvent (refresh completes what needs the API). Never throws. */
export function normalizeStripe(webhook: VerifiedWebhook): NormalizeResult {
  const body = webhook.payload;
  const type = str(body.type);
  const object = at(body, "data", "object");
  if (!type || !webhook.event_id || !isObject(object)) {
    return { ok: false, code: "malformed_body", message: "type, id and data.object are required" };
  }
  const kind: EventKind = Object.hasOwn(STRIPE_EVENT_KINDS, type) ? STRIPE_EVENT_KINDS[type] : "other";
  const e = base(body, webhook.event_id, type, kind);
  try {
    if (type.startsWith("checkout.session.")) {
      const mode = str(object.mode);
      Object.assign(e, {
        order_ref: str(object.client_reference_id) ?? str(metadataOf(object).order_ref),
        provider_order_id: str(object.id),
        provider_subscription_id: idOf(object.subscription),
        provider_payment_id: idOf(object.payment_intent),
        amount_paise: amountOf(object.amount_total),
        currency: upper(object.currency),
        status: str(object.payment_status),
      });
      if (kind === "payment_captured" && object.payment_status !== "paid") {
        // An async method (a bank debit) the buyer started: the money is not there yet.
        e.kind = mode === "payment" ? "payment_pending" : "other";
      }
      if (kind === "payment_failed") e.error_reason = "async payment failed";
    } else if (type.startsWith("invoice.")) {
      Object.assign(e, invoiceFields(object));
      e.amount_paise = amountOf(kind === "payment_failed" ? object.amount_due : object.amount_paid);
      if (kind === "payment_captured" && (e.amount_paise === 0 || e.provider_subscription_id === null)) {
        e.kind = "other"; // a zero invoice (a trial) or one outside a subscription buys nothing here
      }
      if (kind === "payment_failed") {
        e.error_reason = str(at(object, "last_finalization_error", "message")) ?? "invoice payment failed";
      }
    } else if (type.startsWith("customer.subscription.")) {
      Object.assign(e, {
        order_ref: str(metadataOf(object).order_ref),
        provider_subscription_id: str(object.id),
        status: str(object.status),
        subscription_status: subscriptionStatus(object.status),
      });
    } else if (type === "charge.refunded") {
      Object.assign(e, {
        provider_payment_id: idOf(object.payment_intent),
        currency: upper(object.currency),
        status: "refunded",
        order_ref: str(metadataOf(object).order_ref),
      });
    } else if (type === "refund.created" || type === "refund.updated") {
      const status = str(object.status);
      e.kind = status === "succeeded" ? "refund_processed" : status === "failed" || status === "canceled"
        ? "refund_failed"
        : "other";
      Object.assign(e, {
        provider_payment_id: idOf(object.payment_intent),
        provider_refund_id: str(object.id),
        amount_paise: amountOf(object.amount),
        currency: upper(object.currency),
        status,
        error_reason: e.kind === "refund_failed" ? (str(object.failure_reason) ?? status) : null,
      });
    } else if (type.startsWith("charge.dispute.")) {
      const status = str(object.status);
      if (type === "charge.dispute.closed") e.kind = status === "won" ? "dispute_won" : "dispute_lost";
      Object.assign(e, {
        provider_payment_id: idOf(object.payment_intent),
        provider_dispute_id: str(object.id),
        amount_paise: amountOf(object.amount),
        currency: upper(object.currency),
        status,
      });
    }
  } catch (err) {
    if (err instanceof BadAmount) return { ok: false, code: "invalid_amount", message: "amount is not integer minor units" };
    return { ok: false, code: "malformed_body", message: "event could not be read" };
  }
  // An ignored event's fields are kept only when the SQL entry point can store them as they are.
  if (e.kind === "other" && e.currency !== null && !/^[A-Z]{3}$/.test(e.currency)) e.currency = null;
  return { ok: true, event: e };
}

/**
 * The event completed from Stripe's API as it is now:
 *   a subscription event, and every event naming a subscription: the subscription's current
 *   status (and our order ref from its metadata), whatever order the events came in;
 *   an invoice without its payments list, or a subscription checkout: the invoice fetched with its
 *   payments, for the PaymentIntent (and the period end);
 *   charge.refunded: the charge's newest succeeded refund made by the event's time.
 * Events of other kinds are returned as they are. Throws ProviderError when Stripe cannot be asked.
 */
export async function refreshStripeEvent(event: NormalizedEvent, client: StripeClient): Promise<NormalizedEvent> {
  const e: NormalizedEvent = { ...event };
  if (e.kind === "other" || e.kind === "payment_pending") return e;

  if (e.event_type === "charge.refunded") {
    const charge = at(e.payload, "data", "object");
    const chargeId = isObject(charge) ? str(charge.id) : null;
    if (!chargeId) return { ...e, kind: "other" };
    const refunds = await client.call<{ data?: unknown }>("GET", "/v1/refunds", { charge: chargeId, limit: 100 });
    // The refund this event is about: the newest succeeded one made by the event's time. A later
    // refund of the same charge has its own charge.refunded; picking it here would make this
    // delivery a duplicate of that one and lose the earlier refund when its events come late.
    const eventAt = typeof e.payload.created === "number" ? e.payload.created : Infinity;
    const newest = listData(refunds)
      .filter((r) => r.status === "succeeded" && Number(r.created) <= eventAt)
      .sort((a, b) => Number(b.created) - Number(a.created))[0];
    if (!newest) return { ...e, kind: "other" };
    return {
      ...e,
      provider_refund_id: str(newest.id),
      provider_payment_id: idOf(newest.payment_intent) ?? e.provider_payment_id,
      amount_paise: typeof newest.amount === "number" ? newest.amount : null,
      currency: upper(newest.currency) ?? e.currency,
      status: "succeeded",
    };
  }

  // A subscription checkout's payment is its first invoice's.
  const invoiceId = e.event_type.startsWith("checkout.session.") && e.provider_subscription_id
    ? idOf(at(e.payload, "data", "object", "invoice"))
    : e.event_type.startsWith("invoice.") && e.provider_payment_id === null
    ? idOf(at(e.payload, "data", "object", "id"))
    : null;
  if (invoiceId) {
    const invoice: StripeObject = await client.retrieveInvoice(invoiceId, ["payments"]);
    const fields = invoiceFields(invoice);
    e.provider_payment_id = fields.provider_payment_id ?? null;
    e.period_end = fields.period_end ?? null;
    if (e.event_type.startsWith("checkout.session.")) {
      e.amount_paise = typeof invoice.amount_paid === "number" ? invoice.amount_paid : e.amount_paise;
      if (invoice.status !== "paid") return { ...e, kind: "other" };
    }
    if (!e.provider_payment_id) return { ...e, kind: "other" };
  }

  if (e.provider_subscription_id) {
    const sub = await client.retrieveSubscription(e.provider_subscription_id);
    e.subscription_status = subscriptionStatus(sub.status);
    e.cancel_at_period_end = typeof sub.cancel_at_period_end === "boolean" ? sub.cancel_at_period_end : null;
    e.order_ref = e.order_ref ?? str(metadataOf(sub).order_ref);
    if (e.kind === "subscription_status") {
      // Whatever order they arrive in, every subscription event applies the status Stripe has now.
      e.status = str(sub.status);
      e.payload = { ...e.payload, current_subscription: sub };
    }
  }
  return e;
}
