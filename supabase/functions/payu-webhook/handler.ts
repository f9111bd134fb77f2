// POST /functions/v1/payu-webhook (verify_jwt = false): PayU's server-to-server payment webhook,
// application/x-www-form-urlencoded. The reverse hash over the posted values is the only gate and
// is checked before anything is written. PayU sends no event id: the event is keyed on
// txnid:mihpayid:status, the same key as the browser's return POST (payu-return), so whichever
// arrives second changes nothing. One SQL call applies it (billing.apply_payment_event).
import { providers } from "../_shared/providers/registry.ts";
import { webhookHandler } from "../_shared/webhook.ts";

export const handler = webhookHandler(providers.require("payu"));
