// POST /functions/v1/razorpay-webhook (verify_jwt = false): Razorpay's webhooks. The signature
// (X-Razorpay-Signature, HMAC-SHA256 of the raw body with RAZORPAY_WEBHOOK_SECRET) is the only
// gate and is checked on the raw bytes before anything is parsed; x-razorpay-event-id is the
// idempotency key. One SQL call applies the event (public.apply_payment_event), so the answer
// comes well inside Razorpay's 5 seconds. 200 {received, result} for every verified event, also
// duplicates, unknown types and mismatches (recorded; a retry would not change them).
import { handle, HttpError, json, readText } from "../_shared/http.ts";
import { applyPaymentEvent, env, webhookError } from "../_shared/payments.ts";
import { normalizeRazorpay, verifyRazorpayWebhook } from "../_shared/providers/razorpay.ts";

const MAX_BODY_BYTES = 256 * 1024;

Deno.serve(handle("razorpay-webhook", async (req) => {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const raw = await readText(req, MAX_BODY_BYTES);
  if (raw === "") throw webhookError("empty_body", "the body is empty");
  const verified = await verifyRazorpayWebhook(raw, req.headers, env);
  if (!verified.ok) throw webhookError(verified.code, verified.message);
  const normalized = normalizeRazorpay(verified.webhook);
  if (!normalized.ok) throw webhookError(normalized.code, normalized.message);
  const result = await applyPaymentEvent(normalized.event);
  return json({ received: true, result: result.result });
}));
