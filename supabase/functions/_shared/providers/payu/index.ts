// PayU India (hosted checkout): the adapter the registry holds, assembled from the parts in this
// folder:
//
//   amounts.ts    integer paise <-> PayU's rupee strings
//   signature.ts  the request hash, the reverse hash of a posted answer, the command API hash
//   client.ts     configuration, and the command API (one command posted with its hash)
//   events.ts     what each PayU status means for billing; a PayU refund as an event
//   webhook.ts    a posted form verified by its reverse hash, then normalized
//   checkout.ts   the hosted checkout's form and the checkout function's answer
//   reconcile.ts  what PayU says about an order (verify_payment) or a payment's refunds
//   actions.ts    the provider actions (refund, fetch payment) and the look-up of an earlier
//                 refund attempt (docs/providers.md)
//   read.ts       reading PayU's answers: strings, ids, India-time timestamps, the txnid
//
// Env: PAYU_MERCHANT_KEY, PAYU_MERCHANT_SALT, PAYU_BASE_URL (default https://test.payu.in; live
// checkout is https://secure.payu.in and the live command API https://info.payu.in: set
// PAYU_API_BASE_URL for the latter, it defaults to PAYU_BASE_URL).

import { type EnvGetter, type ProviderAdapter } from "../types.ts";
import { lookupPayuAction, performPayuAction } from "./actions.ts";
import { createPayuCheckout, startPayuCheckout } from "./checkout.ts";
import { payuConfig } from "./client.ts";
import { payuRefundsOf, verifyPayuPayment } from "./reconcile.ts";
import { normalizePayu, PAYU_MAX_BODY_BYTES, verifyPayuWebhook } from "./webhook.ts";

export { lookupPayuAction, payuActionStatus, performPayuAction } from "./actions.ts";
export { paiseToRupees, rupeesToPaise } from "./amounts.ts";
export { buyerFirstname, createPayuCheckout, startPayuCheckout } from "./checkout.ts";
export { PAYU_DEFAULT_BASE_URL, payuCommand, type PayuConfig, payuConfig } from "./client.ts";
export { PAYU_EVENT_KINDS, type PayuRefundFacts, payuRefundEvent, payuRefundFailed } from "./events.ts";
export { payuTimeToIso } from "./read.ts";
export { listPayuRefunds, payuRefundsOf, verifyPayuPayment } from "./reconcile.ts";
export { commandHash, type PayuRequestParams, requestHash, reverseHash, verifyReverseHash } from "./signature.ts";
export { normalizePayu, PAYU_MAX_BODY_BYTES, verifyPayuWebhook } from "./webhook.ts";

/** The PayU adapter. Configuration is read from `env` at each call; `fetch` replaces the global one. */
export function createPayuAdapter(
  env: EnvGetter,
  options: { fetch?: typeof fetch; timeoutMs?: number } = {},
): ProviderAdapter {
  return {
    name: "payu",
    maxWebhookBytes: PAYU_MAX_BODY_BYTES,
    verifyWebhook: (raw, _headers) => verifyPayuWebhook(raw, env),
    normalize: normalizePayu,
    createCheckout: (order) => createPayuCheckout(order, env),
    assertCheckoutConfigured() {
      payuConfig(env);
    },
    startCheckout: (order, context) => startPayuCheckout(order, context, env),
    async reconcileOrder(order) {
      const event = await verifyPayuPayment(order.receipt, env, { fetch: options.fetch });
      return { events: event ? [event] : [] };
    },
    performAction: (action) => performPayuAction(action, env, options),
    lookupAction: (action) => lookupPayuAction(action, env, options),
    listRefunds: (payment) => payuRefundsOf(payment, env, options),
  };
}
