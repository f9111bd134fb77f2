// PayU webhooks (the server-to-server POST and the browser's surl/furl POST: same fields, same
// hash): the form verified by its reverse hash (verifyPayuWebhook), then mapped to the
// NormalizedEvent the SQL entry point takes (normalizePayu), also for verify_payment's answers.

import {
  type EnvGetter,
  type NormalizedEvent,
  type NormalizeResult,
  type VerifiedWebhook,
  type VerifyResult,
} from "../types.ts";
import { rupeesToPaise } from "./amounts.ts";
import { type PayuConfig, payuConfig } from "./client.ts";
import { PAYU_EVENT_KINDS } from "./events.ts";
import { nonEmpty, payuTimeToIso } from "./read.ts";
import { verifyReverseHash } from "./signature.ts";

/** Largest PayU POST accepted (payu-webhook, payu-return). */
export const PAYU_MAX_BODY_BYTES = 64 * 1024;

const STATUS = /^[a-z_]{1,32}$/i;

/** Verifies a form-encoded PayU POST. Never throws. */
export async function verifyPayuWebhook(raw: string, env: EnvGetter): Promise<VerifyResult> {
  let config: PayuConfig;
  try {
    config = payuConfig(env);
  } catch (e) {
    return { ok: false, code: "provider_not_configured", message: (e as Error).message };
  }
  let form: URLSearchParams;
  try {
    form = new URLSearchParams(raw);
  } catch {
    return { ok: false, code: "malformed_body", message: "body is not form-encoded" };
  }
  // One value per field, and the hash is checked over exactly the values the payload carries:
  // with a repeated field, a hash over one copy would vouch for another (a signed failure with
  // `&status=success` appended).
  const payload: Record<string, string> = Object.create(null);
  for (const [k, v] of form) {
    if (Object.hasOwn(payload, k)) {
      return { ok: false, code: "malformed_body", message: `field ${k} appears more than once` };
    }
    payload[k] = v;
  }
  if (!payload.hash) return { ok: false, code: "missing_signature", message: "hash field is missing" };
  if (!(await verifyReverseHash(payload, config.key, config.salt))) {
    return { ok: false, code: "invalid_signature", message: "hash does not match" };
  }
  for (const name of ["txnid", "status", "amount"]) {
    if (!payload[name]) return { ok: false, code: "malformed_body", message: `${name} is missing` };
  }
  return { ok: true, webhook: { provider: "payu", payload, event_id: null } };
}

/**
 * Maps a PayU transaction to a NormalizedEvent. Never throws. Only what PayU signed decides what
 * happened: a posted form (the webhook, or the browser's return, `source` "posted") is signed by
 * the reverse hash over status, udf1..5, email, firstname, productinfo, amount, txnid and key,
 * so the event is `${txnid}:${status}` (a txnid is captured once), its payment is the txnid, and
 * its time is our receipt time (occurred_at null); mihpayid, addedon and mode are whoever posted
 * the form's word and are only kept in the payload. An answer of PayU's verify_payment API
 * (`source` "api", fetched by us with our key) is PayU's own word: its addedon is the event time.
 */
export function normalizePayu(webhook: VerifiedWebhook, source: "posted" | "api" = "posted"): NormalizeResult {
  const p = webhook.payload;
  const txnid = nonEmpty(p.txnid);
  const status = nonEmpty(p.status)?.trim();
  if (!txnid || !status) {
    return { ok: false, code: "malformed_body", message: "txnid and status are required" };
  }
  const amountText = nonEmpty(p.amount) ?? nonEmpty(p.amt) ?? nonEmpty(p.transaction_amount);
  let amount_paise: number | null = null;
  if (amountText !== null) {
    try {
      amount_paise = rupeesToPaise(amountText);
    } catch {
      return { ok: false, code: "invalid_amount", message: "amount is malformed" };
    }
  }
  // A status PayU signed that we do not know (any text) is recorded as `other` and acknowledged:
  // its key keeps letters, digits and _ only, so it stays a key.
  const lower = STATUS.test(status)
    ? status.toLowerCase()
    : status.toLowerCase().replace(/[^a-z0-9_]+/g, "_").slice(0, 32) || "unknown";
  const kind = (Object.hasOwn(PAYU_EVENT_KINDS, lower) ? PAYU_EVENT_KINDS[lower] : null) ?? "other";
  const event: NormalizedEvent = {
    provider: "payu",
    event_id: `${txnid}:${lower}`,
    event_type: `payment.${lower}`,
    kind,
    subscription_status: null,
    error_reason: kind === "payment_failed" ? (nonEmpty(p.error_Message) ?? lower) : null,
    order_ref: txnid,
    provider_order_id: null,
    provider_payment_id: txnid,
    provider_subscription_id: null,
    provider_refund_id: null,
    amount_paise,
    currency: "INR",
    status: lower,
    method: source === "api" ? nonEmpty(p.mode) : null,
    occurred_at: source === "api" ? payuTimeToIso(nonEmpty(p.addedon)) : null,
    payload: p,
  };
  return { ok: true, event };
}
