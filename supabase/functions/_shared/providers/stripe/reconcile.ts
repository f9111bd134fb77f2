// Stripe reconciliation: what Stripe says about one of our orders, subscriptions or captured
// payments when a webhook may have been lost, as the events the webhooks would have made (the same
// event ids where the event is the same thing: a refund is `refund:<re_...>:succeeded` however it
// is found), applied through the same SQL entry point, so nothing is applied twice.
//
//   an order      GET /v1/checkout/sessions/:id (the session we attached as provider_order_id):
//                 complete and paid -> payment_captured (a subscription's first invoice's
//                 PaymentIntent, as the webhook's refresh finds it); expired or open -> nothing
//                 (the order expires here as any unpaid checkout does)
//   a subscription GET /v1/subscriptions/:id and GET /v1/invoices?subscription=: each paid invoice
//                 whose PaymentIntent we do not know -> payment_captured with its line's period end
//                 (a lost renewal), oldest first; then the subscription's status when it differs
//   a payment's refunds  GET /v1/refunds?payment_intent=

import {
  type NormalizedEvent,
  type ProviderOrderRef,
  type ProviderPaymentRef,
  type ProviderRefund,
  type ProviderSubscriptionRef,
  type ReconcileFinding,
  unixToIso,
} from "../types.ts";
import { stripeRefundEvent, stripeRefundsOf } from "./actions.ts";
import { checkStripeId, type StripeClient, type StripeList, type StripeObject } from "./client.ts";
import { normalizeStripe, refreshStripeEvent, STRIPE_SUBSCRIPTION_STATUS } from "./events.ts";
import { listData, metadataOf, str } from "./read.ts";

/** A Stripe object fetched now, as the event Stripe would have sent about it (then normalized and refreshed). */
async function asEvent(type: string, object: StripeObject, client: StripeClient, id: string): Promise<NormalizedEvent | null> {
  const normalized = normalizeStripe({
    provider: "stripe",
    event_id: id,
    payload: { id, object: "event", type, created: object.created ?? null, data: { object }, source: "reconcile" },
  });
  if (!normalized.ok || normalized.event.kind === "other") return null;
  const event = await refreshStripeEvent(normalized.event, client);
  return event.kind === "other" ? null : event;
}

export async function reconcileStripeOrder(client: StripeClient, order: ProviderOrderRef): Promise<ReconcileFinding> {
  if (!order.provider_order_id || !order.provider_order_id.startsWith("cs_")) {
    return { skipped: "no Stripe Checkout Session attached" };
  }
  const session = await client.retrieveCheckoutSession(checkStripeId(order.provider_order_id));
  if (session.status !== "complete" || session.payment_status !== "paid") return { events: [] };
  // The same id as the webhook's checkout.session.completed would dedupe on is not known here;
  // the payment itself dedupes (provider, PaymentIntent, captured).
  const event = await asEvent("checkout.session.completed", session, client, `reconcile:${session.id}:paid`);
  return { events: event ? [event] : [] };
}

export async function reconcileStripeSubscription(
  client: StripeClient,
  ref: ProviderSubscriptionRef,
  now: () => Date = () => new Date(),
): Promise<ReconcileFinding> {
  const sub = await client.retrieveSubscription(checkStripeId(ref.provider_subscription_id));
  const answeredAt = Math.floor(now().getTime() / 1000);
  const invoices = listData(
    await client.call<StripeList>("GET", "/v1/invoices", {
      subscription: ref.provider_subscription_id,
      status: "paid",
      limit: 100,
      expand: ["data.payments"],
    }),
  ).filter((i) => i.status === "paid").sort((a, b) => Number(a.created) - Number(b.created));
  const known = new Set(ref.known_payment_ids);
  const events: NormalizedEvent[] = [];
  for (const invoice of invoices) {
    const event = await asEvent("invoice.paid", invoice as StripeObject, client, `reconcile:${String(invoice.id)}:paid`);
    if (!event || !event.provider_payment_id || known.has(event.provider_payment_id)) continue;
    known.add(event.provider_payment_id);
    events.push({ ...event, order_ref: event.order_ref ?? ref.receipt });
  }
  const status = typeof sub.status === "string" && Object.hasOwn(STRIPE_SUBSCRIPTION_STATUS, sub.status)
    ? STRIPE_SUBSCRIPTION_STATUS[sub.status]
    : null;
  if (status && sub.status !== ref.provider_status) {
    events.push({
      provider: "stripe",
      event_id: `subscription.fetched:${sub.id}:${String(sub.status)}:${answeredAt}`,
      event_type: "customer.subscription.fetched",
      kind: "subscription_status",
      subscription_status: status,
      error_reason: null,
      order_ref: str(metadataOf(sub).order_ref) ?? ref.receipt,
      provider_order_id: null,
      provider_payment_id: null,
      provider_subscription_id: sub.id,
      provider_refund_id: null,
      provider_dispute_id: null,
      amount_paise: null,
      currency: null,
      status: str(sub.status),
      method: null,
      occurred_at: unixToIso(answeredAt),
      payload: { source: "reconcile", current_subscription: sub },
    });
  }
  return { events };
}

export async function stripeRefundsForPayment(client: StripeClient, payment: ProviderPaymentRef): Promise<ProviderRefund[]> {
  if (!payment.provider_payment_id.startsWith("pi_")) return [];
  const context = { order_ref: payment.order_ref, provider_subscription_id: payment.provider_subscription_id };
  return (await stripeRefundsOf(client, payment.provider_payment_id)).map((refund) => ({
    provider_refund_id: String(refund.id),
    reference: str(metadataOf(refund).refund_id),
    amount_paise: Number(refund.amount),
    status: String(refund.status).toLowerCase(),
    event: refund.status === "succeeded" ? stripeRefundEvent(refund, context, { source: "reconcile" }) : null,
  }));
}
