// Stripe webhooks: the signed body verified and parsed (verifyStripeWebhook); the mapping to the
// NormalizedEvent the SQL entry point takes is in events.ts.

import type { EnvGetter, VerifyResult } from "../types.ts";
import { isObject, str } from "./read.ts";
import { stripeWebhookSecrets, verifyStripeSignature } from "./signature.ts";

/** Largest Stripe webhook body accepted (an event with an invoice and its lines is a few tens of KB). */
export const STRIPE_MAX_BODY_BYTES = 512 * 1024;

/**
 * Verifies `Stripe-Signature` over the raw body (any v1 matching any secret, within the
 * tolerance), then parses it. Never throws. `nowSeconds` is for tests.
 */
export async function verifyStripeWebhook(
  raw: string,
  headers: Headers,
  env: EnvGetter,
  nowSeconds?: number,
): Promise<VerifyResult> {
  const secrets = stripeWebhookSecrets(env);
  if (secrets.length === 0) {
    return { ok: false, code: "provider_not_configured", message: "STRIPE_WEBHOOK_SECRET is not set" };
  }
  const header = headers.get("stripe-signature");
  if (!header) return { ok: false, code: "missing_signature", message: "Stripe-Signature is missing" };
  const check = await verifyStripeSignature(raw, header, secrets, nowSeconds);
  if (!check.ok) {
    const message = check.reason === "outside_tolerance"
      ? "the signature's timestamp is outside the tolerance (300 s)"
      : check.reason === "no_v1"
      ? "Stripe-Signature has no v1 signature"
      : check.reason === "malformed"
      ? "Stripe-Signature is malformed"
      : "signature does not match";
    return { ok: false, code: "invalid_signature", message };
  }
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return { ok: false, code: "malformed_body", message: "body is not JSON" };
  }
  if (!isObject(body) || body.object !== "event" || typeof body.type !== "string" || !isObject(body.data)) {
    return { ok: false, code: "malformed_body", message: "body is not a Stripe event" };
  }
  const eventId = str(body.id);
  if (!eventId) return { ok: false, code: "missing_event_id", message: "the event has no id" };
  return { ok: true, webhook: { provider: "stripe", payload: body, event_id: eventId } };
}
