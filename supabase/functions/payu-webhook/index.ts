// POST /functions/v1/payu-webhook (verify_jwt = false): PayU's server-to-server payment webhook,
// application/x-www-form-urlencoded. The reverse hash over the posted values is the only gate and
// is checked before anything is written. PayU sends no event id: the event is keyed on
// txnid:mihpayid:status, the same key as the browser's return POST (payu-return), so whichever
// arrives second changes nothing. One SQL call applies it (public.apply_payment_event).
import { handle, json } from "../_shared/http.ts";
import { applyPaymentEvent, verifiedPayuEvent } from "../_shared/payments.ts";

Deno.serve(handle("payu-webhook", async (req) => {
  const event = await verifiedPayuEvent(req);
  const result = await applyPaymentEvent(event);
  return json({ received: true, result: result.result });
}));
