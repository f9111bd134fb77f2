// Stripe: the adapter the registry holds, assembled from the parts in this folder:
//
//   webhook.ts    a webhook verified (Stripe-Signature) and parsed
//   events.ts     what each Stripe event means for billing, as a NormalizedEvent, and the
//                 refresh of subscription events from the subscription as Stripe has it now
//   signature.ts  the Stripe-Signature scheme (several secrets during a roll, 300 s tolerance)
//   client.ts     the API client over fetch (form-encoded, Bearer, Stripe-Version pinned)
//   checkout.ts   the customer, the coupon and the Checkout Session for one of our orders
//   actions.ts    provider actions (cancel, resume, change plan, refund, fetch payment) and the
//                 look-up of a refund an earlier attempt may have made
//   reconcile.ts  what Stripe says about an order, a subscription or a payment's refunds
//   portal.ts     the customer portal session (and the portal configuration, made once)
//   read.ts       reading Stripe's JSON
//
// Env: STRIPE_SECRET_KEY (API), STRIPE_WEBHOOK_SECRET (the endpoint's whsec_...; comma-separated
// to accept several during a roll), STRIPE_API_BASE (default https://api.stripe.com),
// STRIPE_PORTAL_CONFIGURATION (optional bpc_...: the portal configuration to use; without it one is
// made and kept).

import { type EnvGetter, type ProviderAdapter, requireEnv } from "../types.ts";
import { lookupStripeAction, performStripeAction, stripePaymentIntentEvent } from "./actions.ts";
import { createStripeCheckout, startStripeCheckout } from "./checkout.ts";
import { checkStripeId, createStripeClient, type StripeObject } from "./client.ts";
import { createStripePortalSession } from "./portal.ts";
import { reconcileStripeOrder, reconcileStripeSubscription, stripeRefundsForPayment } from "./reconcile.ts";
import { normalizeStripe, refreshStripeEvent } from "./events.ts";
import { STRIPE_MAX_BODY_BYTES, verifyStripeWebhook } from "./webhook.ts";

export {
  checkStripeId,
  createStripeClient,
  STRIPE_API_VERSION,
  STRIPE_DEFAULT_API_BASE,
  STRIPE_ID,
  type StripeClient,
  stripeForm,
  type StripeList,
  type StripeObject,
  type StripeParams,
} from "./client.ts";
export { createStripeCheckout, startStripeCheckout } from "./checkout.ts";
export {
  lookupStripeAction,
  performStripeAction,
  stripePaymentIntentEvent,
  stripeRefundEvent,
  stripeRefundsOf,
} from "./actions.ts";
export { createStripePortalSession, STRIPE_PORTAL_FEATURES, STRIPE_PORTAL_SETTING } from "./portal.ts";
export { reconcileStripeOrder, reconcileStripeSubscription, stripeRefundsForPayment } from "./reconcile.ts";
export { normalizeStripe, refreshStripeEvent, STRIPE_EVENT_KINDS, STRIPE_SUBSCRIPTION_STATUS } from "./events.ts";
export {
  parseStripeSignature,
  signStripePayload,
  STRIPE_SIGNATURE_TOLERANCE_SECONDS,
  stripeWebhookSecrets,
  verifyStripeSignature,
} from "./signature.ts";
export { STRIPE_MAX_BODY_BYTES, verifyStripeWebhook } from "./webhook.ts";

/**
 * The Stripe adapter. Configuration is read from `env` at each call; `fetch` replaces the global
 * one for the API client.
 */
export function createStripeAdapter(
  env: EnvGetter,
  options: { fetch?: typeof fetch; timeoutMs?: number } = {},
): ProviderAdapter {
  const client = () => createStripeClient(env, { fetch: options.fetch, timeoutMs: options.timeoutMs });
  return {
    name: "stripe",
    maxWebhookBytes: STRIPE_MAX_BODY_BYTES,
    verifyWebhook: (raw, headers) => verifyStripeWebhook(raw, headers, env),
    normalize: normalizeStripe,
    refresh: (event) => refreshStripeEvent(event, client()),
    createCheckout: (order) => createStripeCheckout(order, client()),
    assertCheckoutConfigured() {
      requireEnv(env, "STRIPE_SECRET_KEY");
    },
    startCheckout: (order, context) => startStripeCheckout(order, context, client(), env),
    reconcileOrder: (order) => reconcileStripeOrder(client(), order),
    reconcileSubscription: (sub) => reconcileStripeSubscription(client(), sub),
    listRefunds: (payment) => stripeRefundsForPayment(client(), payment),
    async fetchPaymentEvent(paymentId, order, source) {
      const pi = await client().call<StripeObject>("GET", `/v1/payment_intents/${checkStripeId(paymentId)}`);
      return stripePaymentIntentEvent(pi, order.receipt || null, order.provider_subscription_id, source);
    },
    performAction: (action) => performStripeAction(action, client()),
    lookupAction: (action) => lookupStripeAction(action, client()),
    createPortalSession: (customerId, returnUrl, settings) =>
      createStripePortalSession(customerId, returnUrl, settings, client(), env),
  };
}
