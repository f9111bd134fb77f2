// POST /functions/v1/razorpay-webhook (verify_jwt = false): Razorpay's webhooks. The signature
// (X-Razorpay-Signature, HMAC-SHA256 of the raw body with RAZORPAY_WEBHOOK_SECRET) is the only
// gate and is checked on the raw bytes before anything is parsed; x-razorpay-event-id is the
// idempotency key. One SQL call applies the event (billing.apply_payment_event), so the answer
// comes well inside Razorpay's 5 seconds. 200 {received, result} for every verified event, also
// duplicates, unknown types and mismatches (recorded; a retry would not change them).
import { providers } from "../_shared/providers/registry.ts";
import { webhookHandler } from "../_shared/webhook.ts";

export const handler = webhookHandler(providers.require("razorpay"));
