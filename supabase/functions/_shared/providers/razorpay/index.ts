// Razorpay: the adapter the registry holds, assembled from the parts in this folder:
//
//   events.ts     what each Razorpay event means for billing; payments and refunds as events
//   signature.ts  the webhook HMAC (with secret rotation) and the Checkout payment signature
//   webhook.ts    a webhook verified, then normalized
//   client.ts     the API client (orders, subscriptions, payments, invoices, refunds) over fetch
//   checkout.ts   the order or subscription for Checkout.js, and its signature checked
//   reconcile.ts  what Razorpay says about an order, a subscription or a payment's refunds
//   actions.ts    the provider actions (cancel, pause, resume, change plan, refund, fetch payment)
//                 and the look-up of an earlier refund attempt (docs/providers.md)
//   read.ts       reading Razorpay's JSON
//
// Env: RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET (API + checkout signature), RAZORPAY_WEBHOOK_SECRET
// (webhook HMAC; comma-separated to accept several during rotation, e.g. "new,old"),
// RAZORPAY_API_BASE (default https://api.razorpay.com/v1).

import { type EnvGetter, type ProviderAdapter, requireEnv } from "../types.ts";
import { lookupRazorpayAction, performRazorpayAction } from "./actions.ts";
import { createRazorpayCheckout, startRazorpayCheckout, verifyRazorpayCheckoutSignature } from "./checkout.ts";
import { createRazorpayClient } from "./client.ts";
import { razorpayPaymentEvent } from "./events.ts";
import { razorpayRefundsOf, reconcileRazorpayOrder, reconcileRazorpaySubscription } from "./reconcile.ts";
import { normalizeRazorpay, RAZORPAY_MAX_BODY_BYTES, verifyRazorpayWebhook } from "./webhook.ts";

export { lookupRazorpayAction, performRazorpayAction } from "./actions.ts";
export { createRazorpayCheckout, startRazorpayCheckout, verifyRazorpayCheckoutSignature } from "./checkout.ts";
export {
  createRazorpayClient,
  RAZORPAY_DEFAULT_API_BASE,
  type RazorpayApiClient,
  type RazorpayClient,
  razorpayIdempotencyKey,
  type RazorpayInvoice,
  type RazorpayOrder,
  type RazorpayPayment,
  type RazorpayRefund,
  type RazorpaySubscription,
} from "./client.ts";
export {
  RAZORPAY_EVENT_KINDS,
  RAZORPAY_SUBSCRIPTION_STATUS,
  razorpayEventKind,
  razorpayPaymentEvent,
  razorpayRefundEvent,
  type RefundContext,
} from "./events.ts";
export {
  razorpayRefundsOf,
  razorpaySubscriptionStatusEvent,
  reconcileRazorpayOrder,
  reconcileRazorpaySubscription,
} from "./reconcile.ts";
export { type CheckoutIds, verifyPaymentSignature, verifyWebhookSignature, webhookSecrets } from "./signature.ts";
export { normalizeRazorpay, RAZORPAY_MAX_BODY_BYTES, verifyRazorpayWebhook } from "./webhook.ts";

/**
 * The Razorpay adapter. Configuration is read from `env` at each call; `fetch` replaces the global
 * one for the API client.
 */
export function createRazorpayAdapter(
  env: EnvGetter,
  options: { fetch?: typeof fetch; timeoutMs?: number } = {},
): ProviderAdapter {
  const client = () => createRazorpayClient(env, { fetch: options.fetch, timeoutMs: options.timeoutMs });
  return {
    name: "razorpay",
    maxWebhookBytes: RAZORPAY_MAX_BODY_BYTES,
    verifyWebhook: (raw, headers) => verifyRazorpayWebhook(raw, headers, env),
    normalize: normalizeRazorpay,
    createCheckout: (order) => createRazorpayCheckout(order, env, client()),
    assertCheckoutConfigured() {
      requireEnv(env, "RAZORPAY_KEY_ID");
      requireEnv(env, "RAZORPAY_KEY_SECRET");
    },
    startCheckout: (order, context) => startRazorpayCheckout(order, context, env, client()),
    reconcileOrder: (order) => reconcileRazorpayOrder(client(), order),
    async reconcileSubscription(subscription) {
      return { events: await reconcileRazorpaySubscription(client(), subscription) };
    },
    verifyCheckoutSignature: (order, paymentId, signature) =>
      verifyRazorpayCheckoutSignature(order, paymentId, signature, env),
    async fetchPaymentEvent(paymentId, order, source) {
      return razorpayPaymentEvent(await client().fetchPayment(paymentId), order, source);
    },
    performAction: (action) => performRazorpayAction(action, client()),
    lookupAction: (action) => lookupRazorpayAction(action, client()),
    listRefunds: (payment) => razorpayRefundsOf(client(), payment),
  };
}
