// Razorpay: webhook signature (with secret rotation), checkout signature, event normalization, a
// small API client (orders, subscriptions, payments, refunds) over fetch, and the provider actions
// (cancel, pause, resume, change plan, refund, fetch payment; docs/providers.md).
//
// Env: RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET (API + checkout signature), RAZORPAY_WEBHOOK_SECRET
// (webhook HMAC; comma-separated to accept several during rotation, e.g. "new,old"),
// RAZORPAY_API_BASE (default https://api.razorpay.com/v1).

import { hmacSha256Hex, timingSafeEqual } from "../crypto.ts";
import {
  type ActionOutcome,
  actionOutcomeOf,
  type Checkout,
  type CheckoutOrder,
  type EnvGetter,
  envUrl,
  type EventKind,
  networkError,
  type NormalizedEvent,
  type NormalizeResult,
  type ProviderAdapter,
  type PaymentSource,
  type ProviderAction,
  ProviderError,
  type ProviderOrderRef,
  type ProviderPaymentRef,
  type ProviderRefund,
  type ProviderSubscriptionRef,
  type ProviderSubscriptionStatus,
  requireEnv,
  retryAfterSeconds,
  type StartedCheckout,
  unixToIso,
  unsupportedAction,
  type VerifiedWebhook,
  type VerifyResult,
} from "./types.ts";

export const RAZORPAY_DEFAULT_API_BASE = "https://api.razorpay.com/v1";
const DEFAULT_TIMEOUT_MS = 10_000;

/** Largest Razorpay webhook body accepted. */
export const RAZORPAY_MAX_BODY_BYTES = 256 * 1024;

/** What each Razorpay event means for billing; any other event is `other`. */
export const RAZORPAY_EVENT_KINDS: Readonly<Record<string, EventKind>> = {
  "payment.captured": "payment_captured",
  "order.paid": "payment_captured",
  "subscription.charged": "payment_captured",
  // invoice.paid: payment_captured only when it names a payment (razorpayEventKind).
  "invoice.paid": "payment_captured",
  "payment.authorized": "payment_authorized",
  "payment.failed": "payment_failed",
  "refund.processed": "refund_processed",
  // A refund Razorpay could not make: the refund action it carries out fails (apply_refund_failed).
  "refund.failed": "refund_failed",
  "subscription.activated": "subscription_status",
  "subscription.resumed": "subscription_status",
  "subscription.pending": "subscription_status",
  "subscription.halted": "subscription_status",
  "subscription.paused": "subscription_status",
  "subscription.cancelled": "subscription_status",
  "subscription.completed": "subscription_status",
  // A dispute (chargeback): open while Razorpay and the bank decide; `closed` is read from the
  // dispute's own status (razorpayEventKind).
  "payment.dispute.created": "dispute_opened",
  "payment.dispute.won": "dispute_won",
  "payment.dispute.lost": "dispute_lost",
};

/** The provider subscription status a Razorpay event stands for (null: it says nothing about one). */
export const RAZORPAY_SUBSCRIPTION_STATUS: Readonly<Record<string, ProviderSubscriptionStatus>> = {
  "subscription.activated": "active",
  "subscription.charged": "active",
  "subscription.resumed": "active",
  "subscription.pending": "pending",
  "subscription.halted": "halted",
  "subscription.paused": "paused",
  "subscription.cancelled": "cancelled",
  "subscription.completed": "completed",
};

/** The kind of a Razorpay event, given whether it names a payment id. */
export function razorpayEventKind(eventType: string, paymentId: string | null, disputeStatus: string | null = null): EventKind {
  if (eventType === "invoice.paid" && paymentId === null) return "other";
  // A closed dispute the merchant did not win (accepted, or closed for the customer) is lost.
  if (eventType === "payment.dispute.closed") return disputeStatus === "won" ? "dispute_won" : "dispute_lost";
  return Object.hasOwn(RAZORPAY_EVENT_KINDS, eventType) ? RAZORPAY_EVENT_KINDS[eventType] : "other";
}

function subscriptionStatusOf(eventType: string): ProviderSubscriptionStatus | null {
  return Object.hasOwn(RAZORPAY_SUBSCRIPTION_STATUS, eventType) ? RAZORPAY_SUBSCRIPTION_STATUS[eventType] : null;
}

// ---------------------------------------------------------------------------------------------------
// Signatures

/**
 * The accepted webhook secrets: RAZORPAY_WEBHOOK_SECRET split on commas, trimmed, blanks dropped.
 * During rotation set it to "new,old" and remove the old one once Razorpay signs with the new one.
 */
export function webhookSecrets(env: EnvGetter): string[] {
  return (env("RAZORPAY_WEBHOOK_SECRET") ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** True when `signature` is HMAC-SHA256(secret, raw) for any of `secrets`. Checks every secret. */
export async function verifyWebhookSignature(
  raw: string,
  signature: string,
  secrets: string[],
): Promise<boolean> {
  let ok = false;
  for (const secret of secrets) {
    // No short-circuit: the time taken does not say which secret matched.
    if (timingSafeEqual(await hmacSha256Hex(secret, raw), signature)) ok = true;
  }
  return ok;
}

export type CheckoutIds =
  | { order_id: string; payment_id: string }
  | { subscription_id: string; payment_id: string };

/**
 * Checkout handler signature, HMAC-SHA256 with the API key secret over `order_id|payment_id`
 * (orders) or `payment_id|subscription_id` (subscriptions). Pass the ids from our DB.
 */
export async function verifyPaymentSignature(
  ids: CheckoutIds,
  signature: string,
  keySecret: string,
): Promise<boolean> {
  if (!keySecret) return false;
  const message = "order_id" in ids
    ? `${ids.order_id}|${ids.payment_id}`
    : `${ids.payment_id}|${ids.subscription_id}`;
  return timingSafeEqual(await hmacSha256Hex(keySecret, message), signature);
}

// ---------------------------------------------------------------------------------------------------
// Webhooks

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

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

function str(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

/** `notes` is `[]` when empty and an object otherwise. */
function notesOf(e: Record<string, unknown> | null): Record<string, unknown> {
  return e && isObject(e.notes) ? e.notes : {};
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

// ---------------------------------------------------------------------------------------------------
// API client

export interface RazorpayOrder {
  id: string;
  entity: "order";
  amount: number;
  currency: string;
  receipt: string | null;
  status: string;
  notes: Record<string, string> | [];
  [k: string]: unknown;
}

export interface RazorpaySubscription {
  id: string;
  entity: "subscription";
  plan_id: string;
  status: string;
  total_count: number;
  notes: Record<string, string> | [];
  [k: string]: unknown;
}

export interface RazorpayPayment {
  id: string;
  entity: "payment";
  amount: number;
  currency: string;
  status: string;
  order_id: string | null;
  method: string | null;
  captured?: boolean;
  error_description?: string | null;
  notes: Record<string, string> | [];
  created_at: number;
  [k: string]: unknown;
}

/** A Razorpay invoice (each charge of a subscription has one), as much as reconciliation reads. */
export interface RazorpayInvoice {
  id: string;
  entity: "invoice";
  subscription_id: string | null;
  payment_id: string | null;
  /** draft, issued, partially_paid, paid, expired, cancelled, deleted. */
  status: string;
  paid_at: number | null;
  [k: string]: unknown;
}

export interface RazorpayRefund {
  id: string;
  entity: "refund";
  amount: number;
  currency: string;
  payment_id: string;
  /** `pending` until the money moves, then `processed` (or `failed`). */
  status: string;
  receipt: string | null;
  notes: Record<string, string> | [];
  created_at: number;
  [k: string]: unknown;
}

export interface RazorpayClient {
  createOrder(input: {
    amount: number;
    currency: string;
    receipt: string;
    notes?: Record<string, string>;
  }): Promise<RazorpayOrder>;
  createSubscription(input: {
    plan_id: string;
    total_count: number;
    notes?: Record<string, string>;
  }): Promise<RazorpaySubscription>;
  fetchPayment(id: string): Promise<RazorpayPayment>;
  fetchOrderPayments(orderId: string): Promise<RazorpayPayment[]>;
  /** GET /subscriptions/:id. */
  fetchSubscription(id: string): Promise<RazorpaySubscription>;
  /** GET /invoices?subscription_id=:id: the subscription's invoices (one per charge). */
  fetchSubscriptionInvoices(subscriptionId: string): Promise<RazorpayInvoice[]>;
}

/** The client with the calls the provider actions make (subscriptions and refunds). */
export interface RazorpayApiClient extends RazorpayClient {
  /** POST /subscriptions/:id/cancel with cancel_at_cycle_end 1 (at the cycle end) or 0 (now). */
  cancelSubscription(id: string, atCycleEnd: boolean): Promise<RazorpaySubscription>;
  /** POST /subscriptions/:id/pause {pause_at: "now"}. */
  pauseSubscription(id: string): Promise<RazorpaySubscription>;
  /** POST /subscriptions/:id/resume {resume_at: "now"}. */
  resumeSubscription(id: string): Promise<RazorpaySubscription>;
  /** PATCH /subscriptions/:id {plan_id, schedule_change_at: "cycle_end" | "now"}. */
  updateSubscriptionPlan(id: string, planId: string, atCycleEnd: boolean): Promise<RazorpaySubscription>;
  /**
   * POST /payments/:id/refund {amount, receipt, notes} with the X-Refund-Idempotency header: a
   * retry with the same key and body answers the same refund instead of refunding twice.
   */
  refundPayment(
    paymentId: string,
    input: { amount: number; receipt: string; notes?: Record<string, string>; idempotencyKey: string },
  ): Promise<RazorpayRefund>;
  /** GET /payments/:id/refunds?count=100: the payment's refunds, newest first. */
  fetchPaymentRefunds(paymentId: string): Promise<RazorpayRefund[]>;
}

const ID = /^[A-Za-z0-9_]{1,64}$/;

/**
 * Razorpay API client over fetch with HTTP Basic auth. Reads RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET,
 * RAZORPAY_API_BASE when called (missing keys -> provider_not_configured). Non-2xx answers throw
 * ProviderError("upstream_error") carrying Razorpay's status and error code.
 */
export function createRazorpayClient(
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): RazorpayApiClient {
  async function call<T>(
    method: "GET" | "POST" | "PATCH",
    path: string,
    body?: unknown,
    extraHeaders: Record<string, string> = {},
  ): Promise<T> {
    const keyId = requireEnv(env, "RAZORPAY_KEY_ID");
    const keySecret = requireEnv(env, "RAZORPAY_KEY_SECRET");
    const base = envUrl(env, "RAZORPAY_API_BASE", RAZORPAY_DEFAULT_API_BASE);
    const headers: Record<string, string> = {
      authorization: `Basic ${btoa(`${keyId}:${keySecret}`)}`,
      accept: "application/json",
    };
    if (body !== undefined) headers["content-type"] = "application/json";
    Object.assign(headers, extraHeaders);
    let res: Response;
    try {
      res = await (options.fetch ?? fetch)(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
    } catch (e) {
      throw networkError(e, "Razorpay");
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw networkError(e, "Razorpay");
    }
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // handled below
    }
    if (!res.ok) {
      const err = isObject(json) && isObject(json.error) ? json.error : {};
      throw new ProviderError(
        502,
        "upstream_error",
        `Razorpay answered ${res.status}${typeof err.description === "string" ? `: ${err.description}` : ""}`,
        res.status,
        typeof err.code === "string" ? err.code : null,
        retryAfterSeconds(res.headers.get("retry-after")),
      );
    }
    if (!isObject(json)) {
      throw new ProviderError(502, "invalid_upstream_response", "Razorpay answered non-JSON");
    }
    return json as T;
  }

  function checkId(id: string): string {
    if (!ID.test(id)) throw new ProviderError(400, "invalid_input", "malformed Razorpay id");
    return id;
  }

  return {
    createOrder(input) {
      if (!Number.isSafeInteger(input.amount) || input.amount < 100) {
        return Promise.reject(
          new ProviderError(400, "invalid_amount", "amount must be integer paise >= 100"),
        );
      }
      if (input.receipt.length > 40) {
        return Promise.reject(
          new ProviderError(400, "invalid_input", "receipt must be at most 40 characters"),
        );
      }
      return call<RazorpayOrder>("POST", "/orders", {
        amount: input.amount,
        currency: input.currency,
        receipt: input.receipt,
        notes: input.notes ?? {},
      });
    },
    createSubscription(input) {
      return call<RazorpaySubscription>("POST", "/subscriptions", {
        plan_id: input.plan_id,
        total_count: input.total_count,
        notes: input.notes ?? {},
      });
    },
    async fetchPayment(id) {
      return await call<RazorpayPayment>("GET", `/payments/${checkId(id)}`);
    },
    async fetchOrderPayments(orderId) {
      const list = await call<{ items?: unknown }>("GET", `/orders/${checkId(orderId)}/payments`);
      if (!Array.isArray(list.items)) {
        throw new ProviderError(502, "invalid_upstream_response", "Razorpay collection has no items");
      }
      return list.items as RazorpayPayment[];
    },
    async fetchSubscription(id) {
      const sub = await call<RazorpaySubscription>("GET", `/subscriptions/${checkId(id)}`);
      if (sub.id !== id || typeof sub.status !== "string") {
        throw new ProviderError(502, "invalid_upstream_response", "Razorpay answered another subscription");
      }
      return sub;
    },
    async fetchSubscriptionInvoices(subscriptionId) {
      const list = await call<{ items?: unknown }>(
        "GET",
        `/invoices?subscription_id=${encodeURIComponent(checkId(subscriptionId))}`,
      );
      if (!Array.isArray(list.items)) {
        throw new ProviderError(502, "invalid_upstream_response", "Razorpay collection has no items");
      }
      // Only this subscription's invoices count, whatever else the answer holds.
      return (list.items as RazorpayInvoice[]).filter((i) => isObject(i) && i.subscription_id === subscriptionId);
    },
    async cancelSubscription(id, atCycleEnd) {
      return await call<RazorpaySubscription>("POST", `/subscriptions/${checkId(id)}/cancel`, {
        cancel_at_cycle_end: atCycleEnd ? 1 : 0,
      });
    },
    async pauseSubscription(id) {
      return await call<RazorpaySubscription>("POST", `/subscriptions/${checkId(id)}/pause`, { pause_at: "now" });
    },
    async resumeSubscription(id) {
      return await call<RazorpaySubscription>("POST", `/subscriptions/${checkId(id)}/resume`, { resume_at: "now" });
    },
    async updateSubscriptionPlan(id, planId, atCycleEnd) {
      return await call<RazorpaySubscription>("PATCH", `/subscriptions/${checkId(id)}`, {
        plan_id: checkId(planId),
        schedule_change_at: atCycleEnd ? "cycle_end" : "now",
      });
    },
    async refundPayment(paymentId, input) {
      if (!Number.isSafeInteger(input.amount) || input.amount < 100) {
        throw new ProviderError(400, "invalid_amount", "a Razorpay refund is integer paise >= 100");
      }
      if (input.receipt.length > 40) {
        throw new ProviderError(400, "invalid_input", "receipt must be at most 40 characters");
      }
      if (!IDEMPOTENCY_KEY.test(input.idempotencyKey)) {
        throw new ProviderError(400, "invalid_input", "the idempotency key must be 10+ characters of A-Z a-z 0-9 _ -");
      }
      return await call<RazorpayRefund>(
        "POST",
        `/payments/${checkId(paymentId)}/refund`,
        { amount: input.amount, receipt: input.receipt, notes: input.notes ?? {} },
        { "x-refund-idempotency": input.idempotencyKey },
      );
    },
    async fetchPaymentRefunds(paymentId) {
      const list = await call<{ items?: unknown }>("GET", `/payments/${checkId(paymentId)}/refunds?count=100`);
      if (!Array.isArray(list.items)) {
        throw new ProviderError(502, "invalid_upstream_response", "Razorpay collection has no items");
      }
      // Only this payment's refunds count, whatever else the answer holds.
      return (list.items as RazorpayRefund[]).filter((r) => isObject(r) && r.payment_id === paymentId);
    },
  };
}

/** What Razorpay accepts in X-Refund-Idempotency: at least 10 letters, digits, hyphens, underscores. */
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{10,128}$/;

/**
 * The X-Refund-Idempotency value for an action: its idempotency key when Razorpay accepts it as is,
 * else the hex SHA-256 of it (stable across retries, so a retry never refunds twice).
 */
export async function razorpayIdempotencyKey(key: string): Promise<string> {
  if (IDEMPOTENCY_KEY.test(key)) return key;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------------------
// Checkout

/** Creates the Razorpay order (or subscription, with `razorpay_plan_id`) and returns Checkout.js options. */
export async function createRazorpayCheckout(
  order: CheckoutOrder,
  env: EnvGetter,
  client: RazorpayClient = createRazorpayClient(env),
): Promise<Checkout> {
  const keyId = requireEnv(env, "RAZORPAY_KEY_ID");
  requireEnv(env, "RAZORPAY_KEY_SECRET");
  const notes: Record<string, string> = { ...(order.notes ?? {}), order_ref: order.order_ref };
  if (Object.keys(notes).length > 15) throw new ProviderError(400, "invalid_input", "at most 15 notes");
  const prefill = {
    name: order.buyer.firstname,
    email: order.buyer.email,
    ...(order.buyer.phone ? { contact: order.buyer.phone } : {}),
  };
  const common = {
    key: keyId,
    amount: order.amount_paise,
    currency: order.currency,
    description: order.plan_name,
  };
  if (order.razorpay_plan_id) {
    if (!Number.isSafeInteger(order.total_count) || (order.total_count ?? 0) < 1) {
      throw new ProviderError(400, "invalid_input", "total_count is required for a subscription");
    }
    const sub = await client.createSubscription({
      plan_id: order.razorpay_plan_id,
      total_count: order.total_count!,
      notes,
    });
    return {
      provider: "razorpay",
      kind: "razorpay_checkout",
      options: { ...common, subscription_id: sub.id, prefill, notes },
    };
  }
  const created = await client.createOrder({
    amount: order.amount_paise,
    currency: order.currency,
    receipt: order.order_ref,
    notes,
  });
  return {
    provider: "razorpay",
    kind: "razorpay_checkout",
    // Razorpay's own answer, not our request: the caller compares them (another amount or currency).
    options: { ...common, order_id: created.id, amount: created.amount, currency: created.currency, prefill, notes },
  };
}

// ---------------------------------------------------------------------------------------------------

/**
 * A Razorpay payment fetched from the API (Checkout verification, reconciliation) as the event
 * the SQL entry point takes. Its event id names the payment and its state, so the verify call and
 * reconciliation seeing the same state dedupe on the recorded deliveries; a webhook for the same
 * payment dedupes on payment_events (provider, payment id, status).
 */
export function razorpayPaymentEvent(
  payment: RazorpayPayment,
  order: ProviderOrderRef,
  source: PaymentSource,
): NormalizedEvent {
  const status = typeof payment.status === "string" ? payment.status : "unknown";
  const eventType = `payment.${status}`;
  const kind = razorpayEventKind(eventType, payment.id);
  return {
    provider: "razorpay",
    event_id: `payment:${payment.id}:${status}`,
    event_type: eventType,
    kind,
    subscription_status: null,
    error_reason: kind === "payment_failed" ? (str(payment.error_description) ?? status) : null,
    order_ref: order.receipt,
    provider_order_id: order.provider_subscription_id ? null : order.provider_order_id,
    provider_payment_id: payment.id,
    provider_subscription_id: order.provider_subscription_id,
    provider_refund_id: null,
    amount_paise: Number.isSafeInteger(payment.amount) ? payment.amount : null,
    currency: typeof payment.currency === "string" ? payment.currency : null,
    status,
    method: typeof payment.method === "string" ? payment.method : null,
    occurred_at: unixToIso(payment.created_at),
    payload: { source, payment },
  };
}

/** Razorpay subscription statuses that say something about ours (created, authenticated: nothing yet). */
const RAZORPAY_FETCHED_STATUS: Readonly<Record<string, ProviderSubscriptionStatus>> = {
  active: "active",
  pending: "pending",
  halted: "halted",
  paused: "paused",
  cancelled: "cancelled",
  completed: "completed",
  expired: "expired",
};

/**
 * A Razorpay subscription fetched from the API as a subscription_status event: its status as
 * Razorpay states it at `answeredAt` (the time we asked, which is the event's time: this is the
 * provider's newest word). Null for statuses that say nothing about ours.
 */
export function razorpaySubscriptionStatusEvent(
  sub: RazorpaySubscription,
  ref: ProviderSubscriptionRef,
  answeredAt: Date,
): NormalizedEvent | null {
  const status = Object.hasOwn(RAZORPAY_FETCHED_STATUS, sub.status) ? RAZORPAY_FETCHED_STATUS[sub.status] : null;
  if (!status) return null;
  const at = Math.floor(answeredAt.getTime() / 1000);
  return {
    provider: "razorpay",
    event_id: `subscription.fetched:${sub.id}:${sub.status}:${at}`,
    event_type: `subscription.${sub.status}`,
    kind: "subscription_status",
    subscription_status: status,
    error_reason: null,
    order_ref: ref.receipt,
    provider_order_id: null,
    provider_payment_id: null,
    provider_subscription_id: sub.id,
    provider_refund_id: null,
    amount_paise: null,
    currency: null,
    status: sub.status,
    method: null,
    occurred_at: unixToIso(at),
    payload: { source: "reconcile", subscription: sub },
  };
}

/**
 * What Razorpay says about one of our subscriptions: GET /subscriptions/:id for its status, GET
 * /invoices?subscription_id=:id for its charges (a paid invoice names its payment), and GET
 * /payments/:id for each paid charge we do not know yet (its amount, currency and status). The
 * charges come first, oldest first, then the status when it differs from the one stored.
 */
export async function reconcileRazorpaySubscription(
  client: RazorpayClient,
  ref: ProviderSubscriptionRef,
  now: () => Date = () => new Date(),
): Promise<NormalizedEvent[]> {
  const sub = await client.fetchSubscription(ref.provider_subscription_id);
  const answeredAt = now();
  const known = new Set(ref.known_payment_ids);
  const invoices = (await client.fetchSubscriptionInvoices(ref.provider_subscription_id))
    .filter((i) => i.status === "paid" && typeof i.payment_id === "string" && !known.has(i.payment_id))
    .sort((a, b) => (a.paid_at ?? 0) - (b.paid_at ?? 0));
  const events: NormalizedEvent[] = [];
  const orderRef: ProviderOrderRef = {
    receipt: ref.receipt ?? "",
    provider_order_id: null,
    provider_subscription_id: ref.provider_subscription_id,
  };
  for (const paymentId of new Set(invoices.map((i) => i.payment_id as string))) {
    const event = razorpayPaymentEvent(await client.fetchPayment(paymentId), orderRef, "reconcile");
    events.push({ ...event, order_ref: ref.receipt });
  }
  const status = razorpaySubscriptionStatusEvent(sub, ref, answeredAt);
  if (status && status.status !== ref.provider_status) events.push(status);
  return events;
}

/**
 * The Razorpay adapter. Configuration is read from `env` at each call; `fetch` replaces the global
 * one for the API client.
 */
export function createRazorpayAdapter(
  env: EnvGetter,
  options: { fetch?: typeof fetch; timeoutMs?: number } = {},
): ProviderAdapter {
  const client = () => createRazorpayClient(env, { fetch: options.fetch, timeoutMs: options.timeoutMs });
  return {
    name: "razorpay",
    maxWebhookBytes: RAZORPAY_MAX_BODY_BYTES,
    verifyWebhook: (raw, headers) => verifyRazorpayWebhook(raw, headers, env),
    normalize: normalizeRazorpay,
    createCheckout: (order) => createRazorpayCheckout(order, env, client()),
    assertCheckoutConfigured() {
      requireEnv(env, "RAZORPAY_KEY_ID");
      requireEnv(env, "RAZORPAY_KEY_SECRET");
    },
    async startCheckout(order, context): Promise<StartedCheckout> {
      const amount = Number(order.amount_cents);
      const checkout = await createRazorpayCheckout({
        order_ref: order.receipt,
        amount_paise: amount,
        currency: order.currency,
        plan_name: order.plan_name,
        buyer: { firstname: order.buyer_name, email: order.buyer_email ?? "" },
        notes: { organization_id: context.organization_id, plan_code: order.plan_code },
        // A plan with a Razorpay plan id is paid as a subscription of as many charges as SQL says.
        ...(order.razorpay_plan_id
          ? { razorpay_plan_id: order.razorpay_plan_id, total_count: order.razorpay_total_count ?? undefined }
          : {}),
      }, env, client());
      if (checkout.provider !== "razorpay") throw new Error("unexpected checkout kind");
      const o = checkout.options;
      if (!o.subscription_id && (o.amount !== amount || o.currency !== order.currency)) {
        throw new ProviderError(502, "invalid_upstream_response", "Razorpay created an order for another amount");
      }
      return {
        answer: {
          key_id: o.key,
          ...(o.subscription_id ? { subscription_id: o.subscription_id } : { order_id: o.order_id }),
          amount: o.amount,
          currency: o.currency,
          checkout_options: o,
        },
        attach: { provider_order_id: o.order_id ?? null, provider_subscription_id: o.subscription_id ?? null },
      };
    },
    async reconcileOrder(order) {
      // A subscription checkout has no Razorpay order to ask about: its webhooks settle it, and
      // reconcileSubscription asks about the subscription once it looks stale.
      if (!order.provider_order_id) {
        return {
          skipped: order.provider_subscription_id
            ? "a Razorpay subscription: settled by its webhooks, reconciled as a subscription when stale"
            : "no Razorpay order id attached",
        };
      }
      const payments = await client().fetchOrderPayments(order.provider_order_id);
      return {
        events: payments.map((payment) =>
          razorpayPaymentEvent(
            payment,
            { receipt: order.receipt, provider_order_id: order.provider_order_id, provider_subscription_id: null },
            "reconcile",
          )
        ),
      };
    },
    async reconcileSubscription(subscription) {
      return { events: await reconcileRazorpaySubscription(client(), subscription) };
    },
    verifyCheckoutSignature(order, paymentId, signature) {
      const keySecret = requireEnv(env, "RAZORPAY_KEY_SECRET");
      const ids: CheckoutIds = order.provider_subscription_id
        ? { subscription_id: order.provider_subscription_id, payment_id: paymentId }
        : { order_id: order.provider_order_id ?? "", payment_id: paymentId };
      return verifyPaymentSignature(ids, signature, keySecret);
    },
    async fetchPaymentEvent(paymentId, order, source) {
      return razorpayPaymentEvent(await client().fetchPayment(paymentId), order, source);
    },
    performAction: (action) => performRazorpayAction(action, client()),
    lookupAction: (action) => lookupRazorpayAction(action, client()),
    listRefunds: (payment) => razorpayRefundsOf(client(), payment),
  };
}

// ---------------------------------------------------------------------------------------------------
// Provider actions

/** Our order's references a refund event carries (so it matches our order). */
export interface RefundContext {
  order_ref: string | null;
  provider_order_id: string | null;
  provider_subscription_id: string | null;
}

/**
 * A confirmed (processed) Razorpay refund as the event the SQL entry point takes, whoever found it
 * (the worker's call, its look-up, reconcile): one event id per refund.
 */
export function razorpayRefundEvent(
  refund: RazorpayRefund,
  context: RefundContext,
  payload: Record<string, unknown>,
): NormalizedEvent {
  return {
    provider: "razorpay",
    // The refund and its state: the refund.processed webhook for the same refund dedupes on the
    // refund id in payment_events (billing.apply_refund), so it is a duplicate when it arrives.
    event_id: `refund:${refund.id}:processed`,
    event_type: "refund.processed",
    kind: "refund_processed",
    subscription_status: null,
    error_reason: null,
    order_ref: context.order_ref,
    provider_order_id: context.provider_order_id,
    provider_payment_id: refund.payment_id,
    provider_subscription_id: context.provider_subscription_id,
    provider_refund_id: refund.id,
    amount_paise: Number.isSafeInteger(refund.amount) ? refund.amount : null,
    currency: typeof refund.currency === "string" ? refund.currency : null,
    status: "processed",
    method: null,
    occurred_at: unixToIso(refund.created_at),
    payload: { ...payload, refund },
  };
}

function actionContext(action: ProviderAction): RefundContext {
  return {
    order_ref: action.target.order_ref ?? null,
    provider_order_id: action.target.provider_order_id ?? null,
    provider_subscription_id: action.target.provider_subscription_id ?? null,
  };
}

/** Our reference of a Razorpay refund: its receipt, or notes.refund_id (both set by our refund actions). */
function refundReference(refund: RazorpayRefund): string | null {
  return str(refund.receipt) ?? str(notesOf(refund as Record<string, unknown>).refund_id);
}

/** The refunds Razorpay holds for one of our payments (reconcile), each with the event that records it. */
export async function razorpayRefundsOf(client: RazorpayApiClient, payment: ProviderPaymentRef): Promise<ProviderRefund[]> {
  const context: RefundContext = {
    order_ref: payment.order_ref,
    provider_order_id: payment.provider_order_id,
    provider_subscription_id: payment.provider_subscription_id,
  };
  return (await client.fetchPaymentRefunds(payment.provider_payment_id)).map((refund) => ({
    provider_refund_id: refund.id,
    reference: refundReference(refund),
    amount_paise: refund.amount,
    status: String(refund.status).toLowerCase(),
    event: refund.status === "processed" ? razorpayRefundEvent(refund, context, { source: "reconcile" }) : null,
  }));
}

/**
 * What Razorpay already holds under a refund action's reference (provider-sync, before carrying it
 * out again): the payment's refunds, the one whose receipt or notes.refund_id is ours. null when
 * there is none. X-Refund-Idempotency answers a retry with the first refund too, but Razorpay keeps
 * the key for a limited time; the look-up does not depend on it. Never throws.
 */
export async function lookupRazorpayAction(action: ProviderAction, client: RazorpayApiClient): Promise<ActionOutcome | null> {
  if (action.kind !== "refund") return null;
  const paymentId = str(action.target?.provider_payment_id);
  const refundId = str(action.payload?.refund_id);
  if (!paymentId || !refundId || !ID.test(paymentId)) return null;
  try {
    const mine = (await client.fetchPaymentRefunds(paymentId)).find((r) =>
      r.receipt === refundId || notesOf(r as Record<string, unknown>).refund_id === refundId
    );
    if (!mine) return null;
    return refundOutcome(mine, action, paymentId, "fetchPaymentRefunds");
  } catch (e) {
    const o = actionOutcomeOf(e);
    // Not knowing is never a failure: the action waits until Razorpay can be asked.
    return {
      outcome: "retry",
      error: `Razorpay could not be asked about the earlier attempt: ${o.outcome === "succeeded" ? "no answer" : o.error}`,
      ...(o.outcome === "retry" ? { retryAfterSeconds: o.retryAfterSeconds } : {}),
    };
  }
}

/** A refund Razorpay answered or listed for an action -> the outcome to record. */
function refundOutcome(refund: RazorpayRefund, action: ProviderAction, paymentId: string, foundBy: string | null): ActionOutcome {
  const amount = action.payload?.amount_paise;
  if (refund.payment_id !== paymentId || refund.amount !== amount) {
    return {
      outcome: "failed",
      error: `Razorpay refunded ${refund.amount} paise of ${refund.payment_id}, not ${amount} of ${paymentId}`,
      result: { refund },
    };
  }
  const result = {
    provider_refund_id: refund.id,
    status: refund.status,
    amount_paise: refund.amount,
    currency: refund.currency,
    receipt: refund.receipt,
    ...(foundBy ? { found_by: foundBy } : {}),
  };
  if (refund.status === "failed") {
    return { outcome: "failed", error: `Razorpay reports refund ${refund.id} as failed`, result };
  }
  // A pending refund is accepted, not yet processed: its refund.processed webhook applies it.
  return refund.status === "processed"
    ? {
      outcome: "succeeded",
      result,
      events: [razorpayRefundEvent(refund, actionContext(action), { source: "provider-sync", action_id: action.id })],
    }
    : { outcome: "succeeded", result };
}

function subscriptionResult(sub: RazorpaySubscription): Record<string, unknown> {
  return {
    provider_subscription_id: sub.id,
    status: sub.status,
    plan_id: sub.plan_id,
    current_end: sub.current_end ?? null,
    ended_at: sub.ended_at ?? null,
    has_scheduled_changes: sub.has_scheduled_changes ?? null,
    change_scheduled_at: sub.change_scheduled_at ?? null,
  };
}

/** Carries out one action at Razorpay. Never throws. */
export async function performRazorpayAction(action: ProviderAction, client: RazorpayApiClient): Promise<ActionOutcome> {
  const p = action.payload ?? {};
  const subId = str(action.target?.provider_subscription_id);
  const paymentId = str(action.target?.provider_payment_id);
  const needs = (what: string): ActionOutcome => ({ outcome: "failed", error: `a Razorpay ${action.kind} needs ${what}` });
  try {
    switch (action.kind) {
      case "cancel": {
        if (!subId) return needs("target.provider_subscription_id");
        if (typeof p.at_cycle_end !== "boolean") return needs("payload.at_cycle_end (boolean)");
        return { outcome: "succeeded", result: subscriptionResult(await client.cancelSubscription(subId, p.at_cycle_end)) };
      }
      case "pause":
        if (!subId) return needs("target.provider_subscription_id");
        return { outcome: "succeeded", result: subscriptionResult(await client.pauseSubscription(subId)) };
      case "resume":
        if (!subId) return needs("target.provider_subscription_id");
        return { outcome: "succeeded", result: subscriptionResult(await client.resumeSubscription(subId)) };
      case "change_plan": {
        if (!subId) return needs("target.provider_subscription_id");
        const planId = str(p.razorpay_plan_id);
        if (!planId) return needs("payload.razorpay_plan_id");
        const sub = await client.updateSubscriptionPlan(subId, planId, p.at_cycle_end !== false);
        return { outcome: "succeeded", result: subscriptionResult(sub) };
      }
      case "refund": {
        if (!paymentId) return needs("target.provider_payment_id");
        const amount = p.amount_paise;
        const refundId = str(p.refund_id);
        if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount <= 0) {
          return needs("payload.amount_paise (positive integer paise)");
        }
        if (!refundId) return needs("payload.refund_id");
        if (typeof p.currency === "string" && p.currency !== "INR") {
          return { outcome: "failed", error: `Razorpay refunds here are INR only, got ${p.currency}` };
        }
        const notes: Record<string, string> = { refund_id: refundId, action_id: action.id };
        if (typeof p.reason === "string" && p.reason !== "") notes.reason = p.reason.slice(0, 256);
        const refund = await client.refundPayment(paymentId, {
          amount,
          receipt: refundId,
          notes,
          idempotencyKey: await razorpayIdempotencyKey(action.idempotency_key),
        });
        return refundOutcome(refund, action, paymentId, null);
      }
      case "fetch_payment": {
        if (!paymentId) return needs("target.provider_payment_id");
        const payment = await client.fetchPayment(paymentId);
        const event = razorpayPaymentEvent(payment, {
          receipt: action.target.order_ref ?? "",
          provider_order_id: action.target.provider_order_id ?? null,
          provider_subscription_id: action.target.provider_subscription_id ?? null,
        }, "provider-sync");
        if (!action.target.order_ref) event.order_ref = null;
        return {
          outcome: "succeeded",
          result: { provider_payment_id: payment.id, status: payment.status, amount_paise: payment.amount },
          events: [event],
        };
      }
      default:
        return unsupportedAction("razorpay", action.kind);
    }
  } catch (e) {
    return actionOutcomeOf(e);
  }
}
