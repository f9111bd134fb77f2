// Razorpay checkout: the order (or subscription) created for Checkout.js, the answer the checkout
// function returns, and the Checkout handler's signature checked against our own ids.

import {
  type Checkout,
  type CheckoutContext,
  type CheckoutOrder,
  type CheckoutOrderRow,
  type EnvGetter,
  ProviderError,
  type ProviderOrderRef,
  requireEnv,
  type StartedCheckout,
} from "../types.ts";
import { createRazorpayClient, type RazorpayClient } from "./client.ts";
import { type CheckoutIds, verifyPaymentSignature } from "./signature.ts";

/** Creates the Razorpay order (or subscription, with `razorpay_plan_id`) and returns Checkout.js options. */
export async function createRazorpayCheckout(
  order: CheckoutOrder,
  env: EnvGetter,
  client: RazorpayClient = createRazorpayClient(env),
): Promise<Checkout> {
  const keyId = requireEnv(env, "RAZORPAY_KEY_ID");
  requireEnv(env, "RAZORPAY_KEY_SECRET");
  const notes: Record<string, string> = { ...(order.notes ?? {}), order_ref: order.order_ref };
  if (Object.keys(notes).length > 15) throw new ProviderError(400, "invalid_input", "at most 15 notes");
  const prefill = {
    name: order.buyer.firstname,
    email: order.buyer.email,
    ...(order.buyer.phone ? { contact: order.buyer.phone } : {}),
  };
  const common = {
    key: keyId,
    amount: order.amount_paise,
    currency: order.currency,
    description: order.plan_name,
  };
  if (order.razorpay_plan_id) {
    if (!Number.isSafeInteger(order.total_count) || (order.total_count ?? 0) < 1) {
      throw new ProviderError(400, "invalid_input", "total_count is required for a subscription");
    }
    const sub = await client.createSubscription({
      plan_id: order.razorpay_plan_id,
      total_count: order.total_count!,
      notes,
    });
    return {
      provider: "razorpay",
      kind: "razorpay_checkout",
      options: { ...common, subscription_id: sub.id, prefill, notes },
    };
  }
  const created = await client.createOrder({
    amount: order.amount_paise,
    currency: order.currency,
    receipt: order.order_ref,
    notes,
  });
  return {
    provider: "razorpay",
    kind: "razorpay_checkout",
    // Razorpay's own answer, not our request: the caller compares them (another amount or currency).
    options: { ...common, order_id: created.id, amount: created.amount, currency: created.currency, prefill, notes },
  };
}

/**
 * The adapter's startCheckout: our order row as a Razorpay checkout, checked against Razorpay's
 * answer (an order for another amount or currency is refused), and the ids to attach to the order.
 */
export async function startRazorpayCheckout(
  order: CheckoutOrderRow,
  context: CheckoutContext,
  env: EnvGetter,
  client: RazorpayClient,
): Promise<StartedCheckout> {
  const amount = Number(order.amount_cents);
  const checkout = await createRazorpayCheckout({
    order_ref: order.receipt,
    amount_paise: amount,
    currency: order.currency,
    plan_name: order.plan_name,
    buyer: { firstname: order.buyer_name, email: order.buyer_email ?? "" },
    // A credit pack order has no plan code: its notes carry the organization and our receipt.
    notes: { organization_id: context.organization_id, ...(order.plan_code ? { plan_code: order.plan_code } : {}) },
    // A plan with a Razorpay plan id is paid as a subscription of as many charges as SQL says.
    ...(order.razorpay_plan_id
      ? { razorpay_plan_id: order.razorpay_plan_id, total_count: order.razorpay_total_count ?? undefined }
      : {}),
  }, env, client);
  if (checkout.provider !== "razorpay") throw new Error("unexpected checkout kind");
  const o = checkout.options;
  if (!o.subscription_id && (o.amount !== amount || o.currency !== order.currency)) {
    throw new ProviderError(502, "invalid_upstream_response", "Razorpay created an order for another amount");
  }
  return {
    answer: {
      key_id: o.key,
      ...(o.subscription_id ? { subscription_id: o.subscription_id } : { order_id: o.order_id }),
      amount: o.amount,
      currency: o.currency,
      checkout_options: o,
    },
    attach: { provider_order_id: o.order_id ?? null, provider_subscription_id: o.subscription_id ?? null },
  };
}

/** The adapter's verifyCheckoutSignature: the ids are our order's, never the browser's. */
export function verifyRazorpayCheckoutSignature(
  order: ProviderOrderRef,
  paymentId: string,
  signature: string,
  env: EnvGetter,
): Promise<boolean> {
  const keySecret = requireEnv(env, "RAZORPAY_KEY_SECRET");
  const ids: CheckoutIds = order.provider_subscription_id
    ? { subscription_id: order.provider_subscription_id, payment_id: paymentId }
    : { order_id: order.provider_order_id ?? "", payment_id: paymentId };
  return verifyPaymentSignature(ids, signature, keySecret);
}
