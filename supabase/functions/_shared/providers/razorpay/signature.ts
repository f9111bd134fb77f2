// Razorpay's signatures: the webhook HMAC (several secrets accepted during rotation) and the
// Checkout handler's payment signature.

import { hmacSha256Hex, timingSafeEqual } from "../../crypto.ts";
import type { EnvGetter } from "../types.ts";

/**
 * The accepted webhook secrets: RAZORPAY_WEBHOOK_SECRET split on commas, trimmed, blanks dropped.
 * During rotation set it to "new,old" and remove the old one once Razorpay signs with the new one.
 */
export function webhookSecrets(env: EnvGetter): string[] {
  return (env("RAZORPAY_WEBHOOK_SECRET") ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** True when `signature` is HMAC-SHA256(secret, raw) for any of `secrets`. Checks every secret. */
export async function verifyWebhookSignature(
  raw: string,
  signature: string,
  secrets: string[],
): Promise<boolean> {
  let ok = false;
  for (const secret of secrets) {
    // No short-circuit: the time taken does not say which secret matched.
    if (timingSafeEqual(await hmacSha256Hex(secret, raw), signature)) ok = true;
  }
  return ok;
}

export type CheckoutIds =
  | { order_id: string; payment_id: string }
  | { subscription_id: string; payment_id: string };

/**
 * Checkout handler signature, HMAC-SHA256 with the API key secret over `order_id|payment_id`
 * (orders) or `payment_id|subscription_id` (subscriptions). Pass the ids from our DB.
 */
export async function verifyPaymentSignature(
  ids: CheckoutIds,
  signature: string,
  keySecret: string,
): Promise<boolean> {
  if (!keySecret) return false;
  const message = "order_id" in ids
    ? `${ids.order_id}|${ids.payment_id}`
    : `${ids.payment_id}|${ids.subscription_id}`;
  return timingSafeEqual(await hmacSha256Hex(keySecret, message), signature);
}
