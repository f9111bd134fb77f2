// PayU India (hosted checkout): request hash, reverse hash, command API hash, amount formatting,
// webhook verification / normalization, checkout form, the command API client (verify_payment,
// cancel_refund_transaction, getAllRefundsFromTxnIds, check_action_status) and the provider actions
// (refund, fetch payment, and the look-up of a refund an earlier attempt made; docs/providers.md).
//
// Env: PAYU_MERCHANT_KEY, PAYU_MERCHANT_SALT, PAYU_BASE_URL (default https://test.payu.in; live
// checkout is https://secure.payu.in and the live command API https://info.payu.in: set
// PAYU_API_BASE_URL for the latter, it defaults to PAYU_BASE_URL).

import { sha512Hex, timingSafeEqual } from "../crypto.ts";
import {
  type ActionOutcome,
  actionOutcomeOf,
  type Checkout,
  type CheckoutOrder,
  type EnvGetter,
  type EventKind,
  envUrl,
  networkError,
  type NormalizedEvent,
  type NormalizeResult,
  type ProviderAction,
  type ProviderAdapter,
  ProviderError,
  type ProviderPaymentRef,
  type ProviderRefund,
  requireEnv,
  retryAfterSeconds,
  type StartedCheckout,
  unsupportedAction,
  type VerifiedWebhook,
  type VerifyResult,
} from "./types.ts";

export const PAYU_DEFAULT_BASE_URL = "https://test.payu.in";
const DEFAULT_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------------
// Amounts

/** Integer paise -> PayU's 2-decimal rupee string: 49900 -> "499.00". Throws on non-integers/negatives. */
export function paiseToRupees(paise: number): string {
  if (!Number.isSafeInteger(paise) || paise < 0) {
    throw new ProviderError(400, "invalid_amount", `amount must be a non-negative integer of paise`);
  }
  const rupees = Math.floor(paise / 100);
  const rest = paise % 100;
  return `${rupees}.${String(rest).padStart(2, "0")}`;
}

const RUPEES = /^(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?$/;

/**
 * A rupee decimal string -> integer paise, parsed from the digits (never through a float):
 * "499.00" -> 49900, "499" -> 49900, "499.5" -> 49950. Rejects signs, exponents, more than two
 * decimals, leading zeros, blanks. Throws ProviderError("invalid_amount").
 */
export function rupeesToPaise(rupees: string): number {
  const m = typeof rupees === "string" ? RUPEES.exec(rupees) : null;
  if (!m) throw new ProviderError(400, "invalid_amount", `malformed rupee amount`);
  const whole = Number(m[1]);
  const fraction = Number((m[2] ?? "").padEnd(2, "0"));
  return whole * 100 + fraction;
}

// ---------------------------------------------------------------------------------------------------
// Hashes

export interface PayuRequestParams {
  txnid: string;
  amount: string;
  productinfo: string;
  firstname: string;
  email: string;
  udf1?: string;
  udf2?: string;
  udf3?: string;
  udf4?: string;
  udf5?: string;
}

/** sha512(key|txnid|amount|productinfo|firstname|email|udf1|udf2|udf3|udf4|udf5||||||SALT). */
export function requestHash(params: PayuRequestParams, key: string, salt: string): Promise<string> {
  const p = params;
  const s = [
    key,
    p.txnid,
    p.amount,
    p.productinfo,
    p.firstname,
    p.email,
    p.udf1 ?? "",
    p.udf2 ?? "",
    p.udf3 ?? "",
    p.udf4 ?? "",
    p.udf5 ?? "",
    "",
    "",
    "",
    "",
    "",
    salt,
  ].join("|");
  return sha512Hex(s);
}

type Posted = URLSearchParams | Record<string, string | undefined>;

function field(posted: Posted, name: string): string | undefined {
  return posted instanceof URLSearchParams ? (posted.get(name) ?? undefined) : posted[name];
}

/**
 * Reverse (response) hash over the values exactly as posted:
 * sha512([additionalCharges|]SALT|status||||||udf5|udf4|udf3|udf2|udf1|email|firstname|productinfo|amount|txnid|key).
 * `additionalCharges` or `additional_charges`, when present in the POST, is prefixed.
 */
export function reverseHash(posted: Posted, key: string, salt: string): Promise<string> {
  const f = (name: string) => field(posted, name) ?? "";
  const parts = [
    salt,
    f("status"),
    "",
    "",
    "",
    "",
    "",
    f("udf5"),
    f("udf4"),
    f("udf3"),
    f("udf2"),
    f("udf1"),
    f("email"),
    f("firstname"),
    f("productinfo"),
    f("amount"),
    f("txnid"),
    key,
  ];
  const charges = field(posted, "additionalCharges") ?? field(posted, "additional_charges");
  if (charges !== undefined) parts.unshift(charges);
  return sha512Hex(parts.join("|"));
}

/** True when the posted `hash` equals the reverse hash (constant-time comparison). */
export async function verifyReverseHash(posted: Posted, key: string, salt: string): Promise<boolean> {
  const given = field(posted, "hash");
  if (!given) return false;
  return timingSafeEqual(await reverseHash(posted, key, salt), given);
}

/** Command API hash: sha512(key|command|var1|SALT). */
export function commandHash(key: string, command: string, var1: string, salt: string): Promise<string> {
  return sha512Hex(`${key}|${command}|${var1}|${salt}`);
}

// ---------------------------------------------------------------------------------------------------
// Configuration

export interface PayuConfig {
  key: string;
  salt: string;
  baseUrl: string;
  apiBaseUrl: string;
}

/** Reads PAYU_MERCHANT_KEY, PAYU_MERCHANT_SALT, PAYU_BASE_URL, PAYU_API_BASE_URL; throws provider_not_configured. */
export function payuConfig(env: EnvGetter): PayuConfig {
  const baseUrl = envUrl(env, "PAYU_BASE_URL", PAYU_DEFAULT_BASE_URL);
  return {
    key: requireEnv(env, "PAYU_MERCHANT_KEY"),
    salt: requireEnv(env, "PAYU_MERCHANT_SALT"),
    baseUrl,
    apiBaseUrl: envUrl(env, "PAYU_API_BASE_URL", baseUrl),
  };
}

// ---------------------------------------------------------------------------------------------------
// Webhooks (server-to-server POST and the browser's surl/furl POST: same fields, same hash)

const STATUS = /^[a-z_]{1,32}$/i;

/** PayU `addedon` ("2024-07-01 12:34:56", India time) -> ISO UTC, else null. */
export function payuTimeToIso(value: string | undefined | null): string | null {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$/.exec(value ?? "");
  if (!m) return null;
  const d = new Date(`${m[1]}T${m[2]}+05:30`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function nonEmpty(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

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

/** What a PayU transaction status means for billing (any other status is `other`). */
export const PAYU_EVENT_KINDS: Readonly<Record<string, EventKind>> = {
  success: "payment_captured",
  failure: "payment_failed",
  pending: "payment_pending",
};

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

// ---------------------------------------------------------------------------------------------------
// Checkout

const TXNID = /^[A-Za-z0-9_\-]{1,25}$/;

/** Builds the form the browser POSTs to `${PAYU_BASE_URL}/_payment`. Throws ProviderError. */
export async function createPayuCheckout(order: CheckoutOrder, env: EnvGetter): Promise<Checkout> {
  const config = payuConfig(env);
  if (!TXNID.test(order.order_ref)) {
    throw new ProviderError(400, "invalid_input", "txnid must be 1-25 characters of A-Z a-z 0-9 _ -");
  }
  if (order.currency !== "INR") throw new ProviderError(400, "invalid_input", "PayU accepts only INR");
  if (!order.surl || !order.furl) throw new ProviderError(400, "invalid_input", "surl and furl are required");
  if (order.amount_paise <= 0) throw new ProviderError(400, "invalid_amount", "amount must be positive");
  const udf = order.udf ?? [];
  if (udf.length > 5) throw new ProviderError(400, "invalid_input", "at most five udf values");
  const params: PayuRequestParams = {
    txnid: order.order_ref,
    amount: paiseToRupees(order.amount_paise),
    productinfo: order.plan_name,
    firstname: order.buyer.firstname,
    email: order.buyer.email,
    udf1: udf[0] ?? "",
    udf2: udf[1] ?? "",
    udf3: udf[2] ?? "",
    udf4: udf[3] ?? "",
    udf5: udf[4] ?? "",
  };
  // A pipe inside a hashed field would shift the other fields: refuse it rather than sign ambiguity.
  for (const [name, value] of Object.entries(params)) {
    if (typeof value !== "string" || value.includes("|")) {
      throw new ProviderError(400, "invalid_input", `${name} must be a string without '|'`);
    }
  }
  const hash = await requestHash(params, config.key, config.salt);
  const fields: Record<string, string> = {
    key: config.key,
    txnid: params.txnid,
    amount: params.amount,
    productinfo: params.productinfo,
    firstname: params.firstname,
    email: params.email,
    phone: order.buyer.phone ?? "",
    surl: order.surl,
    furl: order.furl,
    udf1: params.udf1!,
    udf2: params.udf2!,
    udf3: params.udf3!,
    udf4: params.udf4!,
    udf5: params.udf5!,
    hash,
  };
  return { provider: "payu", kind: "form_post", action_url: `${config.baseUrl}/_payment`, fields };
}

// ---------------------------------------------------------------------------------------------------
// Command API: verify_payment (reconciliation when a webhook was lost), cancel_refund_transaction

/**
 * One command of PayU's command API: a form POST to `${PAYU_API_BASE_URL}/merchant/postservice.php?form=2`
 * with key, command, var1.. and hash = sha512(key|command|var1|SALT); returns the parsed JSON answer.
 * Throws ProviderError: no answer (timeout, unreachable), non-2xx (upstream_error with the status
 * and its Retry-After), non-JSON (invalid_upstream_response).
 */
export async function payuCommand(
  command: string,
  vars: { var1: string; var2?: string; var3?: string },
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<Record<string, unknown>> {
  const config = payuConfig(env);
  const form: Record<string, string> = { key: config.key, command, var1: vars.var1 };
  if (vars.var2 !== undefined) form.var2 = vars.var2;
  if (vars.var3 !== undefined) form.var3 = vars.var3;
  form.hash = await commandHash(config.key, command, vars.var1, config.salt);
  const doFetch = options.fetch ?? fetch;
  let res: Response;
  let text: string;
  try {
    res = await doFetch(`${config.apiBaseUrl}/merchant/postservice.php?form=2`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams(form),
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
    text = await res.text();
  } catch (e) {
    throw networkError(e, "PayU");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const msg = (json as { msg?: unknown })?.msg;
    throw new ProviderError(
      502,
      "upstream_error",
      `PayU answered ${res.status}${typeof msg === "string" && msg !== "" ? `: ${msg}` : ""}`,
      res.status,
      null,
      retryAfterSeconds(res.headers.get("retry-after")),
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ProviderError(502, "invalid_upstream_response", "PayU answered with non-JSON");
  }
  return json as Record<string, unknown>;
}

/**
 * Asks PayU for the state of `txnid` and returns it as a NormalizedEvent (the same event_id a webhook
 * for the same state would have, so the SQL entry point dedupes them), or null when PayU does not
 * know the txnid. Throws ProviderError.
 */
export async function verifyPayuPayment(
  txnid: string,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<NormalizedEvent | null> {
  payuConfig(env);
  if (!TXNID.test(txnid)) throw new ProviderError(400, "invalid_input", "malformed txnid");
  const json = await payuCommand("verify_payment", { var1: txnid }, env, options);
  const details = (json as { transaction_details?: unknown })?.transaction_details;
  const entry = details && typeof details === "object"
    ? (details as Record<string, unknown>)[txnid]
    : undefined;
  if (!entry || typeof entry !== "object") {
    const msg = (json as { msg?: unknown })?.msg;
    throw new ProviderError(
      502,
      "invalid_upstream_response",
      `PayU verify_payment gave no entry for the txnid${typeof msg === "string" ? `: ${msg}` : ""}`,
    );
  }
  const tx = entry as Record<string, unknown>;
  if (tx.status === "Not Found" || tx.mihpayid === "Not Found") return null;
  const payload: Record<string, unknown> = { ...tx, txnid: nonEmpty(tx.txnid) ?? txnid };
  const normalized = normalizePayu({ provider: "payu", payload, event_id: null }, "api");
  if (!normalized.ok) {
    throw new ProviderError(502, "invalid_upstream_response", `PayU entry: ${normalized.message}`);
  }
  return normalized.event;
}

// ---------------------------------------------------------------------------------------------------

/** Largest PayU POST accepted (payu-webhook, payu-return). */
export const PAYU_MAX_BODY_BYTES = 64 * 1024;

/** PayU's firstname: letters, digits, spaces and . ' - only (no '|', which would shift the hash). */
export function buyerFirstname(name: string): string {
  return name.replace(/[^\p{L}\p{N} .'-]/gu, "").trim().slice(0, 60) || "Customer";
}

/** The PayU adapter. Configuration is read from `env` at each call; `fetch` replaces the global one. */
export function createPayuAdapter(
  env: EnvGetter,
  options: { fetch?: typeof fetch; timeoutMs?: number } = {},
): ProviderAdapter {
  return {
    name: "payu",
    maxWebhookBytes: PAYU_MAX_BODY_BYTES,
    verifyWebhook: (raw, _headers) => verifyPayuWebhook(raw, env),
    normalize: normalizePayu,
    createCheckout: (order) => createPayuCheckout(order, env),
    assertCheckoutConfigured() {
      payuConfig(env);
    },
    async startCheckout(order, context): Promise<StartedCheckout> {
      // The browser comes back to payu-return after paying (surl) or failing (furl).
      const returnUrl = context.functionUrl("payu-return");
      const checkout = await createPayuCheckout({
        order_ref: order.receipt,
        amount_paise: Number(order.amount_cents),
        currency: order.currency,
        plan_name: order.plan_name,
        buyer: { firstname: buyerFirstname(order.buyer_name), email: order.buyer_email ?? "" },
        surl: returnUrl,
        furl: returnUrl,
        udf: [order.order_id],
      }, env);
      if (checkout.provider !== "payu") throw new Error("unexpected checkout kind");
      return { answer: { action_url: checkout.action_url, fields: checkout.fields }, attach: null };
    },
    async reconcileOrder(order) {
      const event = await verifyPayuPayment(order.receipt, env, { fetch: options.fetch });
      return { events: event ? [event] : [] };
    },
    performAction: (action) => performPayuAction(action, env, options),
    lookupAction: (action) => lookupPayuAction(action, env, options),
    listRefunds: (payment) => payuRefundsOf(payment, env, options),
  };
}

// ---------------------------------------------------------------------------------------------------
// Provider actions: a PayU checkout is a one-time payment, so refunds and payment look-ups only

/** One PayU refund, as its answers name it (cancel_refund_transaction, getAllRefundsFromTxnIds). */
export interface PayuRefundFacts {
  /** PayU's request id of the refund. */
  request_id: string;
  /** Our token (var2 of cancel_refund_transaction), or null when PayU names none. */
  token: string | null;
  amount_paise: number;
  /** PayU's status of the refund, lowercased: queued, success, failure, in progress, requested, pending. */
  status: string;
  /** When PayU created it (ISO, from its India-time RefundCreationDate), or null. */
  created_at: string | null;
}

/**
 * A refund PayU holds as the event the SQL entry point takes. Its event id and refund id are PayU's
 * request id whatever the source (the worker's own call, its look-up after a lost answer,
 * reconcile), so each refund is recorded once (billing.apply_refund dedupes on the refund id).
 */
export function payuRefundEvent(txnid: string, refund: PayuRefundFacts, payload: Record<string, unknown>): NormalizedEvent {
  return {
    provider: "payu",
    // "queued" is the first state of every PayU refund: one record whatever state it reached since.
    event_id: `refund:${refund.request_id}:queued`,
    event_type: `refund.${refund.status.replace(/[^a-z_]+/g, "_")}`,
    kind: "refund_processed",
    subscription_status: null,
    error_reason: null,
    order_ref: txnid,
    provider_order_id: null,
    // Our payment id for PayU is the txnid (mihpayid is outside the reverse hash).
    provider_payment_id: txnid,
    provider_subscription_id: null,
    provider_refund_id: refund.request_id,
    amount_paise: refund.amount_paise,
    currency: "INR",
    status: refund.status,
    method: null,
    occurred_at: refund.created_at,
    payload: { token: refund.token, ...payload },
  };
}

/** A PayU refund status that means the refund did not happen (no money moved). */
export function payuRefundFailed(status: string): boolean {
  return /^fail/.test(status) || status === "cancelled";
}

function idText(v: unknown): string | null {
  return typeof v === "string" && v.trim() !== "" ? v.trim() : typeof v === "number" && Number.isFinite(v) ? String(v) : null;
}

/** A PayU answer of status 0 that refuses the request itself (key, hash, parameters), not "nothing found". */
const REFUSED_REQUEST = /hash|key|parameter|command|access|authori[sz]/i;

/**
 * Every refund PayU holds for the payment of `txnid`: getAllRefundsFromTxnIds (var1 = txnid),
 * whose "Refund Details" maps each mihpayid to its refunds (RequestID, RefundToken, Amount,
 * Status, RefundCreationDate). An answer of status 0 is "none" unless it refuses the request
 * itself (key, hash, parameters: ProviderError). Throws ProviderError.
 */
export async function listPayuRefunds(
  txnid: string,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<(PayuRefundFacts & { mihpayid: string | null })[]> {
  if (!TXNID.test(txnid)) throw new ProviderError(400, "invalid_input", "malformed txnid");
  const json = await payuCommand("getAllRefundsFromTxnIds", { var1: txnid }, env, options);
  const msg = nonEmpty(json.msg) ?? "";
  if (Number(json.status) !== 1) {
    if (REFUSED_REQUEST.test(msg)) {
      throw new ProviderError(502, "invalid_upstream_response", `PayU refused getAllRefundsFromTxnIds: ${msg}`);
    }
    return [];
  }
  const details = json["Refund Details"];
  if (typeof details !== "object" || details === null || Array.isArray(details)) {
    throw new ProviderError(502, "invalid_upstream_response", "PayU getAllRefundsFromTxnIds gave no Refund Details");
  }
  const refunds: (PayuRefundFacts & { mihpayid: string | null })[] = [];
  for (const [mihpayid, list] of Object.entries(details as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    for (const entry of list) {
      if (typeof entry !== "object" || entry === null) continue;
      const r = entry as Record<string, unknown>;
      const requestId = idText(r.RequestID);
      const status = nonEmpty(r.Status)?.trim().toLowerCase();
      let amount: number;
      try {
        amount = rupeesToPaise(String(r.Amount ?? "").trim());
      } catch {
        throw new ProviderError(502, "invalid_upstream_response", `PayU listed refund ${requestId} with a malformed amount`);
      }
      if (!requestId || !status) {
        throw new ProviderError(502, "invalid_upstream_response", "PayU listed a refund without RequestID or Status");
      }
      refunds.push({
        mihpayid: idText(r.PayuID) ?? mihpayid,
        request_id: requestId,
        token: idText(r.RefundToken),
        amount_paise: amount,
        status,
        created_at: payuTimeToIso(nonEmpty(r.RefundCreationDate)),
      });
    }
  }
  return refunds;
}

/**
 * The current status of one PayU request (a refund) by its request id: check_action_status
 * (var1 = request id), whose transaction_details maps the request id to the request's details;
 * null when PayU knows no such request. Throws ProviderError.
 */
export async function payuActionStatus(
  requestId: string,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<{ status: string; amount_paise: number | null; token: string | null; mihpayid: string | null } | null> {
  const json = await payuCommand("check_action_status", { var1: requestId }, env, options);
  const msg = nonEmpty(json.msg) ?? "";
  const details = json.transaction_details;
  const outer = typeof details === "object" && details !== null ? (details as Record<string, unknown>)[requestId] : undefined;
  const inner = typeof outer === "object" && outer !== null ? (outer as Record<string, unknown>)[requestId] : undefined;
  if (Number(json.status) !== 1 || typeof inner !== "object" || inner === null) {
    if (REFUSED_REQUEST.test(msg)) {
      throw new ProviderError(502, "invalid_upstream_response", `PayU refused check_action_status: ${msg}`);
    }
    return null;
  }
  const r = inner as Record<string, unknown>;
  const status = nonEmpty(r.status)?.trim().toLowerCase();
  if (!status) throw new ProviderError(502, "invalid_upstream_response", "PayU check_action_status gave no status");
  let amount: number | null = null;
  try {
    amount = rupeesToPaise(String(r.amt ?? "").trim());
  } catch {
    amount = null;
  }
  return { status, amount_paise: amount, token: idText(r.token), mihpayid: idText(r.mihpayid) };
}

/** The refunds PayU holds for one of our payments (reconcile), each with the event that records it. */
export async function payuRefundsOf(
  payment: ProviderPaymentRef,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<ProviderRefund[]> {
  const txnid = payment.provider_payment_id;
  return (await listPayuRefunds(txnid, env, options)).map((r) => ({
    provider_refund_id: r.request_id,
    reference: r.token,
    amount_paise: r.amount_paise,
    status: r.status,
    event: payuRefundFailed(r.status)
      ? null
      : payuRefundEvent(txnid, r, { source: "reconcile", mihpayid: r.mihpayid, listed: r }),
  }));
}

/**
 * What PayU already holds under a refund action's token (provider-sync, before carrying it out
 * again): getAllRefundsFromTxnIds for the txnid, the refund whose RefundToken is ours, then
 * check_action_status for its current state. null when PayU lists none under the token. Never throws.
 */
export async function lookupPayuAction(
  action: ProviderAction,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<ActionOutcome | null> {
  if (action.kind !== "refund") return null;
  const txnid = nonEmpty(action.target?.provider_payment_id) ?? nonEmpty(action.target?.order_ref);
  const token = nonEmpty(action.payload?.refund_id);
  // Without them nothing can have been sent: performPayuAction fails the action with its reason.
  if (!txnid || !TXNID.test(txnid) || !token) return null;
  try {
    const mine = (await listPayuRefunds(txnid, env, options)).find((r) => r.token === token);
    if (!mine) return null;
    const current = await payuActionStatus(mine.request_id, env, options);
    const refund: PayuRefundFacts = { ...mine, status: current?.status ?? mine.status };
    const result = {
      txnid,
      mihpayid: mine.mihpayid,
      token,
      request_id: refund.request_id,
      amount_paise: refund.amount_paise,
      status: refund.status,
      found_by: "getAllRefundsFromTxnIds",
    };
    if (payuRefundFailed(refund.status)) {
      return { outcome: "failed", error: `PayU reports the refund under token ${token} as ${refund.status}`, result };
    }
    return {
      outcome: "succeeded",
      result,
      events: [payuRefundEvent(txnid, refund, { source: "provider-sync", action_id: action.id, mihpayid: mine.mihpayid })],
    };
  } catch (e) {
    const o = actionOutcomeOf(e);
    // Not knowing is never a failure: the action waits until PayU can be asked.
    return {
      outcome: "retry",
      error: `PayU could not be asked about the earlier attempt: ${o.outcome === "succeeded" ? "no answer" : o.error}`,
      ...(o.outcome === "retry" ? { retryAfterSeconds: o.retryAfterSeconds } : {}),
    };
  }
}

/**
 * Carries out one action at PayU. Never throws. refund: verify_payment (var1 = txnid) for the
 * payment's confirmed mihpayid, then cancel_refund_transaction (var1 = mihpayid, var2 = our refund
 * id as the token, var3 = the amount in rupees); PayU's acceptance (status 1) is applied as the
 * refund (PayU's refund callbacks carry no hash). fetch_payment: verify_payment.
 */
export async function performPayuAction(
  action: ProviderAction,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<ActionOutcome> {
  const txnid = nonEmpty(action.target?.provider_payment_id) ?? nonEmpty(action.target?.order_ref);
  const p = action.payload ?? {};
  try {
    if (action.kind === "fetch_payment" || action.kind === "refund") {
      if (!txnid) return { outcome: "failed", error: `a PayU ${action.kind} needs target.provider_payment_id (the txnid)` };
      if (!TXNID.test(txnid)) return { outcome: "failed", error: "malformed PayU txnid" };
    }
    if (action.kind === "fetch_payment") {
      const event = await verifyPayuPayment(txnid!, env, options);
      if (!event) return { outcome: "failed", error: `PayU does not know txnid ${txnid}` };
      return {
        outcome: "succeeded",
        result: { txnid, mihpayid: event.payload.mihpayid ?? null, status: event.status, amount_paise: event.amount_paise },
        events: [event],
      };
    }
    if (action.kind !== "refund") return unsupportedAction("payu", action.kind);

    const amount = p.amount_paise;
    const token = nonEmpty(p.refund_id);
    if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount <= 0) {
      return { outcome: "failed", error: "a PayU refund needs payload.amount_paise (positive integer paise)" };
    }
    if (!token) return { outcome: "failed", error: "a PayU refund needs payload.refund_id (the token)" };
    if (typeof p.currency === "string" && p.currency !== "INR") {
      return { outcome: "failed", error: `PayU refunds are INR only, got ${p.currency}` };
    }
    const payment = await verifyPayuPayment(txnid!, env, options);
    if (!payment) return { outcome: "failed", error: `PayU does not know txnid ${txnid}` };
    const mihpayid = nonEmpty(payment.payload.mihpayid) ??
      (typeof payment.payload.mihpayid === "number" ? String(payment.payload.mihpayid) : null);
    if (payment.status !== "success" || !mihpayid) {
      return { outcome: "failed", error: `PayU reports txnid ${txnid} as ${payment.status}: not refundable` };
    }
    const answer = await payuCommand(
      "cancel_refund_transaction",
      { var1: mihpayid, var2: token, var3: paiseToRupees(amount) },
      env,
      options,
    );
    const result = { txnid, mihpayid, token, amount_paise: amount, answer };
    if (Number(answer.status) !== 1) {
      const msg = nonEmpty(answer.msg) ?? "no message";
      if (/already been processed/i.test(msg)) {
        // PayU holds a request under our token: an earlier attempt reached it. Never a failure;
        // the next attempt asks PayU for it first (lookupPayuAction) and records it.
        return { outcome: "retry", error: `PayU already holds a refund under token ${token}: ${msg}`, result };
      }
      return { outcome: "failed", error: `PayU refused the refund: ${msg}`, result };
    }
    // PayU's request id names the refund; our token when PayU names none.
    const requestId = idText(answer.request_id) ?? idText(answer.txn_update_id) ?? token;
    const refund: PayuRefundFacts = { request_id: requestId, token, amount_paise: amount, status: "queued", created_at: null };
    return {
      outcome: "succeeded",
      result,
      events: [payuRefundEvent(txnid!, refund, { source: "provider-sync", action_id: action.id, answer })],
    };
  } catch (e) {
    return actionOutcomeOf(e);
  }
}
