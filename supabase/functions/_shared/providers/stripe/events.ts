// Stripe's event vocabulary: what each event means for billing, as a NormalizedEvent
// (normalizeStripe), and the refresh of a subscription event from the subscription as Stripe has
// it now (refreshStripeEvent). Filled in by the webhook work; the foundation records every
// signed event as `other`.

import type { NormalizedEvent, NormalizeResult, ProviderSubscriptionStatus, VerifiedWebhook, EventKind } from "../types.ts";
import { unixToIso } from "../types.ts";
import type { StripeClient } from "./client.ts";
import { isObject, str } from "./read.ts";

/** What each Stripe event type means for billing; any other type is `other`. */
export const STRIPE_EVENT_KINDS: Readonly<Record<string, EventKind>> = {};

/** Stripe's subscription statuses in neutral words (null: says nothing we act on). */
export const STRIPE_SUBSCRIPTION_STATUS: Readonly<Record<string, ProviderSubscriptionStatus>> = {
  active: "active",
  trialing: "active",
  past_due: "pending",
  unpaid: "halted",
  paused: "paused",
  canceled: "cancelled",
  incomplete_expired: "expired",
};

export function normalizeStripe(webhook: VerifiedWebhook): NormalizeResult {
  const body = webhook.payload;
  const type = str(body.type);
  if (!type || !webhook.event_id || !isObject(body.data)) {
    return { ok: false, code: "malformed_body", message: "type, id and data are required" };
  }
  const event: NormalizedEvent = {
    provider: "stripe",
    event_id: webhook.event_id,
    event_type: type,
    kind: "other",
    subscription_status: null,
    error_reason: null,
    order_ref: null,
    provider_order_id: null,
    provider_payment_id: null,
    provider_subscription_id: null,
    provider_refund_id: null,
    amount_paise: null,
    currency: null,
    status: null,
    method: null,
    occurred_at: unixToIso(body.created),
    payload: body,
  };
  return { ok: true, event };
}

export function refreshStripeEvent(event: NormalizedEvent, _client: StripeClient): Promise<NormalizedEvent> {
  return Promise.resolve(event);
}
