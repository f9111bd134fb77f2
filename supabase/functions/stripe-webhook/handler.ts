// POST /functions/v1/stripe-webhook (verify_jwt = false): Stripe's webhooks. The signature
// (Stripe-Signature: t=<seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with STRIPE_WEBHOOK_SECRET>,
// any v1 matching, t within 300 s of now) is the only gate and is checked on the raw bytes before
// anything is parsed; the event id (evt_...) is the idempotency key. A subscription event is
// completed from the subscription as Stripe has it now (the adapter's refresh), so events arriving
// out of order or in the same second apply the current state. One SQL call applies the event
// (billing.apply_payment_event). 200 {received, result} for every verified event, also duplicates,
// event types we do not act on and mismatches (recorded; a retry would not change them); a 5xx
// when Stripe could not be asked or the database is unreachable, so Stripe delivers again.
import { providers } from "../_shared/providers/registry.ts";
import { webhookHandler } from "../_shared/webhook.ts";

export const handler = webhookHandler(providers.require("stripe"));
