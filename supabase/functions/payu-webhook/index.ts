// POST /functions/v1/payu-webhook (verify_jwt = false): PayU's server-to-server payment webhook,
// application/x-www-form-urlencoded. The reverse hash over the posted values is the only gate and
// is checked before anything is written. PayU sends no event id: the event is keyed on
// txnid:mihpayid:status, the same key as the browser's return POST (payu-return), so whichever
// arrives second changes nothing. One SQL call applies it (public.apply_payment_event).
import { handle, HttpError, json, readText } from "../_shared/http.ts";
import { applyPaymentEvent, env, webhookError } from "../_shared/payments.ts";
import { normalizePayu, verifyPayuWebhook } from "../_shared/providers/payu.ts";

const MAX_BODY_BYTES = 64 * 1024;

Deno.serve(handle("payu-webhook", async (req) => {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const raw = await readText(req, MAX_BODY_BYTES);
  if (raw === "") throw webhookError("empty_body", "the body is empty");
  const verified = await verifyPayuWebhook(raw, env);
  if (!verified.ok) throw webhookError(verified.code, verified.message);
  const normalized = normalizePayu(verified.webhook);
  if (!normalized.ok) throw webhookError(normalized.code, normalized.message);
  const result = await applyPaymentEvent(normalized.event);
  return json({ received: true, result: result.result });
}));
