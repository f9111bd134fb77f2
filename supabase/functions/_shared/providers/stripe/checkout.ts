// Stripe checkout: the organization's customer (made on its first Stripe checkout), a coupon for a
// discount we priced, and the Checkout Session for one of our orders.
//
// The amount is always ours: the line item is `price_data` with our order's amount (GST, price
// overrides and discounts are decided in SQL; a catalog price at Stripe knows none of them), and
// Stripe's amount_total is checked against the order before the buyer sees the session.
//   * mode=subscription for a plan with provider_config.stripe.price_id (SQL hands it over as
//     provider_plan_id; it is kept in the metadata, naming the catalog entry the plan stands for):
//     a recurring price_data of the plan's interval. Every charge of the subscription is then our
//     order's amount, which is what SQL expects of each renewal (a renewal order carries the
//     first order's amount, and a charge for another amount is a mismatch).
//   * mode=payment otherwise (a plan without a price id, an upgrade order, a credit pack).
//   * A discounted order: the line is the order's amount plus the discount, and the discount is
//     one coupon (amount_off, our currency) made for this order, so the buyer sees the discount.
//     A payment: `once` (a repeating code's next period is another checkout, carrying the
//     redemption with a coupon of its own). A subscription: as long as our discount runs, so
//     every renewal Stripe charges is the renewal order SQL makes (billing.mandate_debit_amount):
//     `once` for one period, `repeating` for `discount_periods` periods (in months: a yearly
//     plan's period is 12), `forever` for a forever code.
//   Either way amount_total = our order's amount_cents exactly.
// Idempotency keys: the customer's from the organization id and the details sent, the coupon's
// and the session's from our order id, so a retried checkout never makes a second customer, coupon or session.

import { sha256Hex } from "../../crypto.ts";
import { type EnvGetter, readEnv } from "../../env.ts";
import {
  type Checkout,
  type CheckoutContext,
  type CheckoutOrder,
  type CheckoutOrderRow,
  ProviderError,
  type StartedCheckout,
} from "../types.ts";
import { checkStripeId, type StripeClient, type StripeObject, type StripeParams } from "./client.ts";
import { isObject, str } from "./read.ts";

export function createStripeCheckout(_order: CheckoutOrder, _client: StripeClient): Promise<Checkout> {
  // Stripe's checkout needs what only our order row carries (customer, interval, discount).
  return Promise.reject(new ProviderError(400, "invalid_input", "a Stripe checkout starts from an order (startCheckout)"));
}

/** The organization's billing address as Stripe's address hash (country and state as given). */
function stripeAddress(address: unknown): StripeParams | undefined {
  if (!isObject(address)) return undefined;
  const a: StripeParams = {
    line1: str(address.line1) ?? undefined,
    line2: str(address.line2) ?? undefined,
    city: str(address.city) ?? undefined,
    postal_code: str(address.postal_code) ?? undefined,
    state: str(address.state_code) ?? undefined,
    country: str(address.country) ?? undefined,
  };
  return Object.values(a).some((v) => v !== undefined) ? a : undefined;
}

/**
 * The adapter's startCheckout: the customer (when the organization has none at Stripe), the coupon
 * (a discounted order) and the session; refuses a session whose amount is not our order's.
 */
export async function startStripeCheckout(
  order: CheckoutOrderRow,
  context: CheckoutContext,
  client: StripeClient,
  env: EnvGetter = () => undefined,
): Promise<StartedCheckout> {
  const amount = Number(order.amount_cents);
  if (!Number.isSafeInteger(amount) || amount < 1) {
    throw new ProviderError(400, "invalid_amount", "a Stripe checkout is for a positive integer amount");
  }
  const currency = order.currency.toLowerCase();
  const metadata: Record<string, string> = {
    order_ref: order.receipt,
    order_id: order.order_id,
    organization_id: context.organization_id,
    ...(order.plan_code ? { plan_code: order.plan_code } : {}),
    ...(order.provider_plan_id ? { stripe_price_id: order.provider_plan_id } : {}),
  };

  // The customer: made once per organization (the key is the organization's), with the billing
  // name, email and address Indian Stripe accounts must send for export payments. One deleted in
  // Stripe's dashboard would fail every later checkout of the organization ("No such customer"):
  // a new one is made in its place, and recorded as replacing it.
  let customerId = order.provider_customer_id;
  let madeCustomer: string | null = null;
  let replacesCustomer: string | null = null;
  if (customerId && !(await customerLive(client, customerId))) {
    replacesCustomer = customerId;
    customerId = null;
  }
  if (!customerId) {
    const address = isObject(order.buyer_address) ? order.buyer_address : {};
    const params: StripeParams = {
      name: str(address.name) ?? order.buyer_name,
      email: order.buyer_email ?? undefined,
      address: stripeAddress(address),
      metadata: { organization_id: context.organization_id },
    };
    // The key names the organization and what is sent: a retry with the same details gets the
    // customer Stripe already made, and one after the billing details changed (a buyer fixing the
    // address Stripe asked for) makes a customer with the new details instead of Stripe's 400
    // idempotency_error for 24 hours. An earlier customer never recorded here is never used.
    // A replacement's key names the customer it replaces: the first key would give back the deleted one.
    const digest = (await sha256Hex(JSON.stringify(params))).slice(0, 16);
    const after = replacesCustomer ? `-after-${replacesCustomer}` : "";
    const customer = await client.createCustomer(params, `supabill-customer-${context.organization_id}-${digest}${after}`);
    customerId = customer.id;
    madeCustomer = customer.id;
  }

  const recurring = order.provider_plan_id !== null && order.plan_interval !== null;
  const discount = Math.max(0, Number(order.discount_cents ?? 0));
  let coupon: string | null = null;
  if (discount > 0) {
    const periods = order.discount_periods === null ? null : Number(order.discount_periods);
    const months = order.plan_interval === "year" ? 12 : 1;
    const duration = !recurring || periods === 1
      ? { duration: "once" }
      : periods === null
      ? { duration: "forever" }
      : { duration: "repeating", duration_in_months: periods * months };
    const made = await client.createCoupon({
      amount_off: discount,
      currency,
      ...duration,
      max_redemptions: 1,
      name: `Discount on ${order.receipt}`.slice(0, 40),
      metadata: { order_ref: order.receipt, order_id: order.order_id },
    }, `supabill-coupon-${order.order_id}`);
    coupon = made.id;
  }

  // The session closes when our order does (Stripe takes 30 minutes to 24 hours from now): a
  // session left open after the order expired, or after a new plan change superseded it, could
  // still take money that buys nothing (refunded, but taken).
  const nowSeconds = Math.floor(Date.now() / 1000);
  const orderEnds = Math.floor(new Date(order.expires_at).getTime() / 1000);
  const expiresAt = Math.min(
    Math.max(Number.isFinite(orderEnds) ? orderEnds : nowSeconds + 86400, nowSeconds + 30 * 60 + 60),
    nowSeconds + 86400 - 60,
  );

  const back = readEnv(env, "APP_URL") ?? context.functionUrl("health");
  const sep = back.includes("?") ? "&" : "?";
  const session = await client.createCheckoutSession({
    mode: recurring ? "subscription" : "payment",
    customer: customerId,
    client_reference_id: order.receipt,
    metadata,
    line_items: [{
      quantity: 1,
      price_data: {
        currency,
        unit_amount: amount + discount,
        product_data: { name: order.plan_name },
        ...(recurring ? { recurring: { interval: order.plan_interval } } : {}),
      },
    }],
    ...(coupon ? { discounts: [{ coupon }] } : {}),
    ...(recurring ? { subscription_data: { metadata } } : { payment_intent_data: { metadata } }),
    expires_at: expiresAt,
    success_url: `${back}${sep}checkout=success&order=${encodeURIComponent(order.receipt)}`,
    cancel_url: `${back}${sep}checkout=canceled&order=${encodeURIComponent(order.receipt)}`,
  }, `supabill-checkout-${order.order_id}`);

  const url = str(session.url);
  if (!url || session.amount_total !== amount || str(session.currency)?.toLowerCase() !== currency) {
    throw new ProviderError(502, "invalid_upstream_response", "Stripe created a session for another amount");
  }
  return {
    answer: { session_id: session.id, url, amount, currency: order.currency, mode: session.mode },
    attach: {
      provider_order_id: session.id,
      provider_subscription_id: null,
      provider_customer_id: madeCustomer,
      replaces_customer_id: replacesCustomer,
    },
  };
}

/** Whether Stripe still has the customer: a deleted one answers `deleted: true`, an unknown one 404. */
async function customerLive(client: StripeClient, id: string): Promise<boolean> {
  try {
    const customer = await client.call<StripeObject>("GET", `/v1/customers/${checkStripeId(id)}`);
    return customer.deleted !== true;
  } catch (e) {
    if (e instanceof ProviderError && e.upstream_status === 404) return false;
    throw e;
  }
}
