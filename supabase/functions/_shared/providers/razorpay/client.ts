// The Razorpay API client: orders, subscriptions, payments, invoices and refunds over fetch with
// HTTP Basic auth, and the X-Refund-Idempotency key of a refund.
//
// Env: RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET, RAZORPAY_API_BASE (default https://api.razorpay.com/v1).

import { type EnvGetter, envUrl, fetchProviderJson, ProviderError, requireEnv } from "../types.ts";
import { isObject } from "./read.ts";

export const RAZORPAY_DEFAULT_API_BASE = "https://api.razorpay.com/v1";
const DEFAULT_TIMEOUT_MS = 10_000;

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

/** What Razorpay ids look like; anything else is refused before it reaches a URL. */
export const RAZORPAY_ID = /^[A-Za-z0-9_]{1,64}$/;

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
    return await fetchProviderJson("Razorpay", `${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }, {
      fetch: options.fetch,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      errorFields: (json) => {
        const err = isObject(json) && isObject(json.error) ? json.error : {};
        return {
          message: typeof err.description === "string" ? err.description : null,
          code: typeof err.code === "string" ? err.code : null,
        };
      },
    }) as T;
  }

  function checkId(id: string): string {
    if (!RAZORPAY_ID.test(id)) throw new ProviderError(400, "invalid_input", "malformed Razorpay id");
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
      return (list.items as RazorpayInvoice[]).filter((i) =>
        isObject(i) && i.subscription_id === subscriptionId
      );
    },
    async cancelSubscription(id, atCycleEnd) {
      return await call<RazorpaySubscription>("POST", `/subscriptions/${checkId(id)}/cancel`, {
        cancel_at_cycle_end: atCycleEnd ? 1 : 0,
      });
    },
    async pauseSubscription(id) {
      return await call<RazorpaySubscription>("POST", `/subscriptions/${checkId(id)}/pause`, {
        pause_at: "now",
      });
    },
    async resumeSubscription(id) {
      return await call<RazorpaySubscription>("POST", `/subscriptions/${checkId(id)}/resume`, {
        resume_at: "now",
      });
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
        throw new ProviderError(
          400,
          "invalid_input",
          "the idempotency key must be 10+ characters of A-Z a-z 0-9 _ -",
        );
      }
      return await call<RazorpayRefund>(
        "POST",
        `/payments/${checkId(paymentId)}/refund`,
        { amount: input.amount, receipt: input.receipt, notes: input.notes ?? {} },
        { "x-refund-idempotency": input.idempotencyKey },
      );
    },
    async fetchPaymentRefunds(paymentId) {
      const list = await call<{ items?: unknown }>(
        "GET",
        `/payments/${checkId(paymentId)}/refunds?count=100`,
      );
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
