// The provider adapter interface. Each payment provider is one file implementing `ProviderAdapter`;
// adding a provider means adding a file, not a branch in the webhook or checkout functions.
//
// Flow in a webhook function: `verifyWebhook(raw, headers)` (signature on the raw bytes, then parse),
// then `normalize(verified)` into the `NormalizedEvent` jsonb the SQL entry point receives.

export type ProviderName = "payu" | "razorpay";

/** Reads one configuration value (defined with the other shared plumbing in ../http.ts). */
export type { EnvGetter } from "../http.ts";
import type { EnvGetter } from "../http.ts";

/** What the SQL entry point receives (as jsonb) for one provider event. Amounts are integer paise. */
export interface NormalizedEvent {
  provider: ProviderName;
  /** Idempotency key. Razorpay: `x-razorpay-event-id`; PayU: `${txnid}:${mihpayid}:${status}`. */
  event_id: string;
  /** Razorpay: body.event; PayU: `payment.<status>` (payment.success | payment.failure | payment.pending). */
  event_type: string;
  /** Our reference: PayU txnid, Razorpay order receipt (or `notes.order_ref`). */
  order_ref: string | null;
  provider_order_id: string | null;
  provider_payment_id: string | null;
  provider_subscription_id: string | null;
  provider_refund_id: string | null;
  amount_paise: number | null;
  currency: string | null;
  /** The provider's own status of the main entity (payment, refund, subscription or invoice). */
  status: string | null;
  method: string | null;
  /** ISO 8601 (UTC) time the provider gives for the event, when it gives one. */
  occurred_at: string | null;
  /** The parsed body, as the provider sent it. */
  payload: Record<string, unknown>;
}

/** Machine-readable reasons a webhook is rejected. */
export type WebhookErrorCode =
  | "provider_not_configured"
  | "missing_signature"
  | "invalid_signature"
  | "malformed_body"
  | "missing_event_id"
  | "invalid_amount";

/** A webhook whose signature checked out, parsed but not yet normalized. */
export interface VerifiedWebhook {
  provider: ProviderName;
  /** Parsed body: JSON object (Razorpay) or the form fields as posted (PayU). */
  payload: Record<string, unknown>;
  /** Provider's event id when it sends one in a header (Razorpay), else null. */
  event_id: string | null;
}

export type VerifyResult =
  | { ok: true; webhook: VerifiedWebhook }
  | { ok: false; code: WebhookErrorCode; message: string };

export type NormalizeResult =
  | { ok: true; event: NormalizedEvent }
  | { ok: false; code: "malformed_body" | "invalid_amount" | "missing_event_id"; message: string };

/** One payment attempt for which the browser needs a checkout. */
export interface CheckoutOrder {
  /** Our reference: becomes the PayU txnid (<= 25 chars) / the Razorpay receipt (<= 40 chars). */
  order_ref: string;
  amount_paise: number;
  /** ISO currency; PayU accepts only INR. */
  currency: string;
  /** Plan name, shown to the buyer (PayU productinfo, Razorpay description). */
  plan_name: string;
  buyer: { firstname: string; email: string; phone?: string };
  /** PayU: where the browser POSTs back after success / failure. */
  surl?: string;
  furl?: string;
  /** PayU udf1..udf5 (missing entries are sent empty). */
  udf?: string[];
  /** Razorpay notes (order_ref is always added). */
  notes?: Record<string, string>;
  /** Razorpay subscriptions: a plan id makes a subscription instead of an order. */
  razorpay_plan_id?: string;
  total_count?: number;
}

/** What the browser needs to start paying. */
export type Checkout =
  | {
    provider: "payu";
    kind: "form_post";
    /** POST `fields` as application/x-www-form-urlencoded to this URL. */
    action_url: string;
    fields: Record<string, string>;
  }
  | {
    provider: "razorpay";
    kind: "razorpay_checkout";
    /** Options for Razorpay Checkout.js: exactly one of order_id / subscription_id is set. */
    options: {
      key: string;
      order_id?: string;
      subscription_id?: string;
      amount: number;
      currency: string;
      description: string;
      prefill: { name: string; email: string; contact?: string };
      notes: Record<string, string>;
    };
  };

export interface ProviderAdapter {
  readonly name: ProviderName;
  /** Checks the signature on the raw body, then parses it. Never throws. */
  verifyWebhook(raw: string, headers: Headers): Promise<VerifyResult>;
  /** Maps a verified webhook to a NormalizedEvent. Never throws. */
  normalize(webhook: VerifiedWebhook): NormalizeResult;
  /** Builds what the browser needs to pay. Throws ProviderError. */
  createCheckout(order: CheckoutOrder): Promise<Checkout>;
}

export type ProviderErrorCode =
  | "provider_not_configured"
  | "invalid_input"
  | "invalid_amount"
  | "upstream_error"
  | "upstream_timeout"
  | "upstream_unreachable"
  | "invalid_upstream_response";

/**
 * A typed failure from provider code. `status` is the HTTP status a function should answer with;
 * `upstream_status` / `upstream_code` carry what the provider said, when it said something.
 */
export class ProviderError extends Error {
  override readonly name = "ProviderError";
  constructor(
    readonly status: number,
    readonly code: ProviderErrorCode,
    message: string,
    readonly upstream_status: number | null = null,
    readonly upstream_code: string | null = null,
  ) {
    super(message);
  }
}

/** Reads a required configuration value or throws `provider_not_configured` naming the variable. */
export function requireEnv(env: EnvGetter, name: string): string {
  const value = env(name)?.trim();
  if (!value) throw new ProviderError(503, "provider_not_configured", `${name} is not set`);
  return value;
}

/** Reads an optional URL setting, without a trailing slash. */
export function envUrl(env: EnvGetter, name: string, fallback: string): string {
  const value = env(name)?.trim() || fallback;
  return value.replace(/\/+$/, "");
}

/** Unix seconds -> ISO string, or null when not a finite number. */
export function unixToIso(value: unknown): string | null {
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  const d = new Date(value * 1000);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Maps a fetch failure to a typed error (timeout vs unreachable). */
export function networkError(e: unknown, who: string): ProviderError {
  const name = (e as { name?: string })?.name;
  if (name === "TimeoutError" || name === "AbortError") {
    return new ProviderError(504, "upstream_timeout", `${who} did not answer in time`);
  }
  return new ProviderError(502, "upstream_unreachable", `${who} could not be reached`);
}
