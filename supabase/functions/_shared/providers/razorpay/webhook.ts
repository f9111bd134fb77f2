// Razorpay webhooks: the signed body verified and parsed (verifyRazorpayWebhook), then mapped to
// the NormalizedEvent the SQL entry point takes (normalizeRazorpay).

import {
  type EnvGetter,
  type NormalizedEvent,
  type NormalizeResult,
  unixToIso,
  type VerifiedWebhook,
  type VerifyResult,
} from "../types.ts";
import { razorpayEventKind, subscriptionStatusOf } from "./events.ts";
import { isObject, notesOf, str } from "./read.ts";
import { verifyWebhookSignature, webhookSecrets } from "./signature.ts";

/** Largest Razorpay webhook body accepted. */
export const RAZORPAY_MAX_BODY_BYTES = 256 * 1024;

/** Verifies `X-Razorpay-Signature` over the raw body, then parses it. Never throws. */
export async function verifyRazorpayWebhook(
  raw: string,
  headers: Headers,
  env: EnvGetter,
): Promise<VerifyResult> {
  const secrets = webhookSecrets(env);
  if (secrets.length === 0) {
    return { ok: false, code: "provider_not_configured", message: "RAZORPAY_WEBHOOK_SECRET is not set" };
  }
  const signature = headers.get("x-razorpay-signature");
  if (!signature) return { ok: false, code: "missing_signature", message: "X-Razorpay-Signature is missing" };
  if (!(await verifyWebhookSignature(raw, signature, secrets))) {
    return { ok: false, code: "invalid_signature", message: "signature does not match" };
  }
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return { ok: false, code: "malformed_body", message: "body is not JSON" };
  }
  if (!isObject(body) || typeof body.event !== "string" || !isObject(body.payload)) {
    return { ok: false, code: "malformed_body", message: "body is not a Razorpay event" };
  }
  const eventId = headers.get("x-razorpay-event-id");
  if (!eventId) return { ok: false, code: "missing_event_id", message: "x-razorpay-event-id is missing" };
  return { ok: true, webhook: { provider: "razorpay", payload: body, event_id: eventId } };
}

function entity(payload: Record<string, unknown>, name: string): Record<string, unknown> | null {
  const wrapper = payload[name];
  if (!isObject(wrapper)) return null;
  return isObject(wrapper.entity) ? wrapper.entity : null;
}

class BadAmount extends Error {}

function amountOf(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new BadAmount();
  return v;
}

/** Maps a verified Razorpay event to a NormalizedEvent. Never throws. */
export function normalizeRazorpay(webhook: VerifiedWebhook): NormalizeResult {
  const body = webhook.payload;
  const eventType = str(body.event);
  if (!eventType || !isObject(body.payload)) {
    return { ok: false, code: "malformed_body", message: "event and payload are required" };
  }
  if (!webhook.event_id) return { ok: false, code: "missing_event_id", message: "event id is missing" };
  const p = body.payload;
  const payment = entity(p, "payment");
  const order = entity(p, "order");
  const refund = entity(p, "refund");
  const subscription = entity(p, "subscription");
  const invoice = entity(p, "invoice");
  const dispute = entity(p, "dispute");
  const kind = dispute ? "dispute" : eventType.split(".")[0];

  try {
    let amount: number | null;
    let currency: string | null;
    let status: string | null;
    if (kind === "dispute") {
      amount = amountOf(dispute?.amount);
      currency = str(dispute?.currency);
      status = str(dispute?.status);
    } else if (kind === "refund") {
      amount = amountOf(refund?.amount);
      currency = str(refund?.currency);
      status = str(refund?.status);
    } else if (kind === "subscription") {
      amount = amountOf(payment?.amount);
      currency = str(payment?.currency);
      status = str(subscription?.status);
    } else if (kind === "invoice") {
      amount = amountOf(invoice?.amount_paid ?? payment?.amount);
      currency = str(invoice?.currency) ?? str(payment?.currency);
      status = str(invoice?.status);
    } else {
      amount = amountOf(payment?.amount ?? order?.amount);
      currency = str(payment?.currency) ?? str(order?.currency);
      status = str(payment?.status) ?? str(order?.status);
    }
    const orderRef = str(order?.receipt) ?? str(invoice?.receipt) ??
      [order, payment, subscription, invoice, refund].map((e) => str(notesOf(e).order_ref)).find((v) => v) ??
      null;
    const paymentId = str(payment?.id) ?? str(dispute?.payment_id) ?? str(refund?.payment_id) ??
      str(invoice?.payment_id);
    let eventKind = razorpayEventKind(eventType, paymentId, str(dispute?.status));
    // The identity of the event, from the signed body: what happened, to which entity, when.
    const entityId = [dispute, refund, payment, invoice, subscription, order].map((e) => str(e?.id)).find((v) => v);
    if (!entityId || typeof body.created_at !== "number") {
      // A signed event naming none of the entities we read (settlement.processed,
      // payment.downtime.started, token.confirmed, ...) or without created_at: recorded as `other`
      // and acknowledged, keyed on its own entity's id when it has one, else on Razorpay's event id.
      eventKind = "other";
    }
    const otherId = Object.keys(p).sort().map((name) => str(entity(p, name)?.id)).find((v) => v);
    const eventId = entityId && typeof body.created_at === "number"
      ? `${eventType}:${entityId}:${body.created_at}`
      : `${eventType}:${otherId ?? webhook.event_id}:${typeof body.created_at === "number" ? body.created_at : "event"}`;
    const event: NormalizedEvent = {
      provider: "razorpay",
      event_id: eventId.slice(0, 300),
      event_type: eventType.slice(0, 300),
      kind: eventKind,
      subscription_status: subscriptionStatusOf(eventType),
      error_reason: eventKind === "payment_failed" ? (str(payment?.error_description) ?? status) : null,
      order_ref: orderRef,
      provider_order_id: str(order?.id) ?? str(payment?.order_id) ?? str(invoice?.order_id),
      provider_payment_id: paymentId,
      provider_subscription_id: str(subscription?.id) ?? str(invoice?.subscription_id),
      provider_refund_id: str(refund?.id),
      provider_dispute_id: str(dispute?.id),
      amount_paise: amount,
      // An ignored event's fields are kept only when the SQL entry point can store them as they are.
      currency: eventKind !== "other" || (currency !== null && /^[A-Z]{3}$/.test(currency)) ? currency : null,
      status,
      method: str(payment?.method),
      occurred_at: unixToIso(body.created_at),
      payload: body,
    };
    return { ok: true, event };
  } catch (e) {
    if (e instanceof BadAmount) {
      return { ok: false, code: "invalid_amount", message: "amount is not integer paise" };
    }
    return { ok: false, code: "malformed_body", message: "event could not be read" };
  }
}
