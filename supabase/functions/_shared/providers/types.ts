// The provider adapter interface. Each payment provider is one file implementing `ProviderAdapter`
// and one entry in the registry (registry.ts); the webhook, checkout, return, verify and reconcile
// functions reach providers only through it, so adding a provider means adding a file (and the
// provider's value of the public.payment_provider enum), not a branch in those functions.
//
// Flow in a webhook function: `verifyWebhook(raw, headers)` (signature on the raw bytes, then parse),
// then `normalize(verified)` into the `NormalizedEvent` jsonb the SQL entry point receives, then,
// for adapters that have it, `refresh(event)` (the provider's current state of what the event is
// about, fetched from its API: Stripe's subscription events).
import { Constants, type Database } from "../database.types.ts";
import { type EnvGetter, requireEnv as requireAnyEnv } from "../env.ts";

export type { EnvGetter } from "../env.ts";

/** A provider's name, as stored in public.payment_provider (registry key and adapter name). */
export type ProviderName = string;

/**
 * What an event means for billing, in words no provider uses: the SQL entry point dispatches on
 * this alone (the enum billing.provider_event_kind). `other` is recorded and otherwise ignored.
 */
export type EventKind = Database["billing"]["Enums"]["provider_event_kind"];

/** Every EventKind, for tests and for checks on what an adapter produced. */
export const EVENT_KINDS: readonly EventKind[] = Constants.billing.Enums.provider_event_kind;

/** The status of the provider's subscription an event stands for, in neutral words. */
export type ProviderSubscriptionStatus =
  | "active"
  | "pending"
  | "halted"
  | "paused"
  | "cancelled"
  | "completed"
  | "expired";

/** What the SQL entry point receives (as jsonb) for one provider event. Amounts are integer paise. */
export interface NormalizedEvent {
  provider: ProviderName;
  /**
   * Idempotency key, from what the provider signed only. Razorpay: `${event}:${entity id}:${created_at}`
   * of the signed body (the x-razorpay-event-id header is not signed); PayU: `${txnid}:${status}`
   * (a txnid is captured once; mihpayid is outside the reverse hash).
   */
  event_id: string;
  /** The provider's own name for the event, kept for the record (SQL never dispatches on it). */
  event_type: string;
  /** What the event means for billing. */
  kind: EventKind;
  /** The provider subscription's status this event stands for, or null when it says nothing about one. */
  subscription_status: ProviderSubscriptionStatus | null;
  /** Why the payment failed (payment_failed only; the provider status when it gives no reason), else null. */
  error_reason: string | null;
  /** Our reference: PayU txnid, Razorpay order receipt (or `notes.order_ref`). */
  order_ref: string | null;
  provider_order_id: string | null;
  provider_payment_id: string | null;
  provider_subscription_id: string | null;
  provider_refund_id: string | null;
  /** The provider's dispute (chargeback) id, for the dispute kinds. */
  provider_dispute_id?: string | null;
  amount_paise: number | null;
  currency: string | null;
  /** The provider's own status of the main entity (payment, refund, subscription or invoice). */
  status: string | null;
  method: string | null;
  /**
   * ISO 8601 (UTC) time of the event when the provider signed it (Razorpay's created_at, or an
   * answer of the provider's API); null otherwise, and the SQL uses its receipt time.
   */
  occurred_at: string | null;
  /**
   * ISO 8601 end of the period a captured recurring charge pays for, when the provider bills the
   * period itself (Stripe's invoice line); SQL uses it instead of the computed end when close to it.
   */
  period_end?: string | null;
  /**
   * Whether the provider will end the subscription at its period end (Stripe's
   * cancel_at_period_end: the customer cancelled or resumed in Stripe's portal), with
   * subscription_status; null or absent when the event does not say. SQL keeps the newest and
   * sets or clears our subscription's cancel_at_period_end when it turns.
   */
  cancel_at_period_end?: boolean | null;
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
  /** What is sold (a plan's or a credit pack's name), shown to the buyer (PayU productinfo, Razorpay description). */
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
  }
  | {
    provider: "stripe";
    kind: "redirect";
    /** Send the browser to Stripe Checkout's hosted page. */
    url: string;
    session_id: string;
  };

type CheckoutOrderType = Database["billing"]["CompositeTypes"]["checkout_order"];
/**
 * The columns of billing.checkout_order that may be null: the rest come from the order and what it
 * sells. A credit pack order has no plan: its plan_name is the pack's name, plan_code and
 * plan_interval are null.
 */
type OptionalCheckoutColumn =
  | "razorpay_plan_id"
  | "razorpay_total_count"
  | "buyer_email"
  | "plan_code"
  | "plan_interval"
  | "provider_plan_id"
  | "provider_customer_id"
  | "buyer_address"
  | "list_cents"
  | "discount_cents"
  | "discount_periods";

/**
 * A checkout order as public.create_checkout_order / public.prepare_order_checkout return it
 * (the composite billing.checkout_order, whose generated fields are all nullable).
 */
export type CheckoutOrderRow = {
  [K in keyof CheckoutOrderType]: K extends OptionalCheckoutColumn ? CheckoutOrderType[K]
    : NonNullable<CheckoutOrderType[K]>;
};

/** What the checkout function knows besides the order. */
export interface CheckoutContext {
  organization_id: string;
  /** The public URL of another function of this project (throws when SUPABASE_URL is not set). */
  functionUrl(name: string): string;
}

/** A checkout the browser can use, and what to attach to our order before it is payable. */
export interface StartedCheckout {
  /** Provider-specific fields of the checkout answer (beside provider, billing_order_id, receipt, ...). */
  answer: Record<string, unknown>;
  /**
   * The provider's order / subscription to record on our order (billing.attach_provider_checkout),
   * and the organization's customer at the provider when the checkout made one (recorded once in
   * billing.provider_customers; replaces_customer_id: the recorded one it replaces, gone at the
   * provider), or null.
   */
  attach: {
    provider_order_id: string | null;
    provider_subscription_id: string | null;
    provider_customer_id?: string | null;
    replaces_customer_id?: string | null;
  } | null;
}

/** Our order, as much as a provider needs to ask about it. */
export interface ProviderOrderRef {
  receipt: string;
  provider_order_id: string | null;
  provider_subscription_id: string | null;
}

/** What asking the provider about one due order found: the events to apply, or why nothing was asked. */
export type ReconcileFinding = { events: NormalizedEvent[] } | { skipped: string };

/** One of our subscriptions with a provider subscription, as much as the provider needs to ask about it. */
export interface ProviderSubscriptionRef {
  /** The provider's subscription id (Razorpay `sub_...`). */
  provider_subscription_id: string;
  /** The receipt of the subscription's first order (so the events match our order), or null. */
  receipt: string | null;
  /** Provider payment ids already captured for this subscription: not fetched again. */
  known_payment_ids: readonly string[];
  /** The provider status we last stored for it (billing.provider_subscription_states), or null. */
  provider_status: string | null;
}

/** Where a payment fetched from the provider API came from (kept in the event's payload). */
export type PaymentSource = "razorpay-verify" | "reconcile" | "provider-sync";

/**
 * What the provider must be told to do (billing.provider_action_kind). A row of
 * billing.provider_actions carries one; the provider-sync worker hands it to the adapter.
 */
export const PROVIDER_ACTION_KINDS = [
  "cancel",
  "pause",
  "resume",
  "change_plan",
  "refund",
  "fetch_payment",
] as const;
export type ProviderActionKind = typeof PROVIDER_ACTION_KINDS[number];

/** One claimed row of billing.provider_actions, as much of it as an adapter reads. */
export interface ProviderAction {
  id: string;
  organization_id: string;
  provider: ProviderName;
  /** A ProviderActionKind; typed as text so an adapter can refuse one it does not know. */
  kind: string;
  /** The provider's ids the action is about. */
  target: {
    provider_subscription_id?: string | null;
    provider_payment_id?: string | null;
    provider_order_id?: string | null;
    order_ref?: string | null;
  };
  /**
   * cancel: {at_cycle_end}; change_plan: {razorpay_plan_id, at_cycle_end}; refund: {amount_paise,
   * currency, refund_id (our refund reference, unique), reason}; pause, resume, fetch_payment: {}.
   */
  payload: Record<string, unknown>;
  /** Unique per action: sent to the provider where it takes one (Razorpay's X-Refund-Idempotency). */
  idempotency_key: string;
  /** Attempts so far, this one included (claim_provider_actions counts it). */
  attempts: number;
}

/**
 * What carrying out one action came to (billing.complete_provider_action's p_outcome):
 * `succeeded` with the provider's answer (and events to apply: a refund the provider confirmed);
 * `retry` for a transient failure (network, timeout, 5xx, 429 with its Retry-After); `failed` for a
 * permanent one (4xx, an action the provider cannot do), with the provider's message.
 */
export type ActionOutcome =
  | { outcome: "succeeded"; result: Record<string, unknown>; events?: NormalizedEvent[] }
  | { outcome: "retry"; error: string; retryAfterSeconds?: number | null; result?: Record<string, unknown> }
  | { outcome: "failed"; error: string; result?: Record<string, unknown> };

/** One captured payment at its provider, as much as the provider needs to list its refunds. */
export interface ProviderPaymentRef {
  /** Our payment id at the provider: PayU's txnid, Razorpay's `pay_...`. */
  provider_payment_id: string;
  /** Our order's reference (PayU txnid, Razorpay receipt), or null. */
  order_ref: string | null;
  provider_order_id: string | null;
  provider_subscription_id: string | null;
}

/** One refund the provider holds for a payment. */
export interface ProviderRefund {
  /** The provider's id of the refund (PayU's request id, Razorpay's `rfnd_...`): the dedupe key of its record. */
  provider_refund_id: string;
  /** Our reference when we asked for it (PayU's token, Razorpay's receipt or notes.refund_id), else null. */
  reference: string | null;
  amount_paise: number;
  /** The provider's status of the refund, lowercased. */
  status: string;
  /**
   * The event that records it (billing.apply_payment_event, kind refund_processed), or null when
   * it does not count (failed at the provider) or not yet (Razorpay's pending: its
   * refund.processed webhook or a later pass records it).
   */
  event: NormalizedEvent | null;
}

export interface ProviderAdapter {
  readonly name: ProviderName;
  /** Largest webhook body accepted, in bytes. */
  readonly maxWebhookBytes: number;
  /** Checks the signature on the raw body, then parses it. Never throws. */
  verifyWebhook(raw: string, headers: Headers): Promise<VerifyResult>;
  /** Maps a verified webhook to a NormalizedEvent. Never throws. */
  normalize(webhook: VerifiedWebhook): NormalizeResult;
  /**
   * Optional, for providers whose events are snapshots that may arrive in any order (Stripe: many
   * share a second, retries come days later): the normalized event completed from the provider's
   * API as it is now (Stripe fetches the subscription, so every subscription event applies the
   * subscription's current status, whatever order they arrive in). Called by the webhook front
   * after normalize, before the SQL call. Throws ProviderError when the provider cannot be asked
   * (the webhook answers 5xx and the provider retries the delivery).
   */
  refresh?(event: NormalizedEvent): Promise<NormalizedEvent>;
  /** Builds what the browser needs to pay (low level). Throws ProviderError. */
  createCheckout(order: CheckoutOrder): Promise<Checkout>;
  /** Throws ProviderError("provider_not_configured") when checkout cannot work; called before an order exists. */
  assertCheckoutConfigured(): void;
  /** The checkout for one of our orders, as the checkout function answers it. Throws ProviderError. */
  startCheckout(order: CheckoutOrderRow, context: CheckoutContext): Promise<StartedCheckout>;
  /** Asks the provider what became of one of our orders (lost webhooks). Throws ProviderError. */
  reconcileOrder(order: ProviderOrderRef): Promise<ReconcileFinding>;
  /**
   * Optional, for providers with recurring subscriptions (Razorpay): asks the provider about one
   * subscription that looks stale (a lost renewal webhook, a state that disagrees with ours) and
   * returns the events to apply: each charge we do not know as payment_captured (with the
   * subscription id and the payment id), then the subscription's status as subscription_status
   * when it differs from the stored one. Throws ProviderError.
   */
  reconcileSubscription?(subscription: ProviderSubscriptionRef): Promise<ReconcileFinding>;
  /**
   * Optional, for providers whose browser checkout hands back a signed result (Razorpay Checkout):
   * true when `signature` proves `payment_id` paid `order`. Throws provider_not_configured.
   */
  verifyCheckoutSignature?(order: ProviderOrderRef, paymentId: string, signature: string): Promise<boolean>;
  /** Optional: one payment as the provider API reports it, as the event SQL takes. Throws ProviderError. */
  fetchPaymentEvent?(
    paymentId: string,
    order: ProviderOrderRef,
    source: PaymentSource,
  ): Promise<NormalizedEvent>;
  /**
   * Optional: carries out one provider action (the provider-sync worker) through the provider's
   * API, with the action's idempotency key where the API takes one. Never throws: every failure is
   * an outcome (actionOutcomeOf maps errors). A provider without it fails its actions with a reason.
   */
  performAction?(action: ProviderAction): Promise<ActionOutcome>;
  /**
   * Optional: what the provider already holds under an action's key, asked before carrying the
   * action out again (provider-sync, on every attempt after the first: an earlier attempt may have
   * reached the provider and died before its outcome was recorded). null: the provider holds
   * nothing made under the key, so the action may be carried out; else the outcome to record
   * instead of calling again (succeeded with the events that record what the provider made;
   * retry when the provider could not be asked; failed when what it holds failed there). Only
   * refunds need it (PayU refuses a reused token; Razorpay answers the first refund again, but
   * only for 24 hours). Never throws.
   */
  lookupAction?(action: ProviderAction): Promise<ActionOutcome | null>;
  /**
   * Optional: every refund the provider holds for one of our captured payments (reconcile: a
   * refund made in the provider's dashboard, or one whose record was lost). Throws ProviderError.
   */
  listRefunds?(payment: ProviderPaymentRef): Promise<ProviderRefund[]>;
  /**
   * Optional, for providers with a hosted customer portal (Stripe): a portal session for the
   * organization's customer at the provider, returning to `returnUrl` (already checked against
   * the allowed origins by the caller); `settings` keeps what the adapter makes once (Stripe's
   * portal configuration). Answers the URL to send the browser to. Throws ProviderError.
   */
  createPortalSession?(
    customerId: string,
    returnUrl: string,
    settings: ProviderSettings,
  ): Promise<{ url: string }>;
}

/**
 * What a provider adapter made once and keeps (billing.provider_settings, one value per provider
 * and name): `get` the stored value or null; `keep` stores a value unless one is stored already and
 * answers the stored one.
 */
export interface ProviderSettings {
  get(name: string): Promise<string | null>;
  keep(name: string, value: string): Promise<string>;
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
    /** The provider's Retry-After, in seconds, when it sent one (429, 503). */
    readonly retry_after_seconds: number | null = null,
  ) {
    super(message);
  }
}

/** A Retry-After header (delay-seconds or an HTTP date) -> whole seconds from now, or null. */
export function retryAfterSeconds(value: string | null, now = Date.now()): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^[0-9]{1,9}$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * A failure while carrying out an action -> its outcome. Transient (retry): no answer in time,
 * unreachable, a non-JSON answer, 5xx, 429 (with its Retry-After), 409 (Razorpay: the same refund
 * is still being processed), and a missing setting (a deployment can be fixed; retries end in
 * failed). Everything else (4xx, bad input) is permanent, with the provider's message.
 */
export function actionOutcomeOf(e: unknown): ActionOutcome {
  if (e instanceof ProviderError) {
    const s = e.upstream_status;
    const transient = e.code === "upstream_timeout" || e.code === "upstream_unreachable" ||
      e.code === "invalid_upstream_response" || e.code === "provider_not_configured" ||
      (s !== null && (s >= 500 || s === 429 || s === 409));
    if (transient) return { outcome: "retry", error: e.message, retryAfterSeconds: e.retry_after_seconds };
    return { outcome: "failed", error: e.message };
  }
  return { outcome: "retry", error: `unexpected error: ${(e as Error)?.message ?? String(e)}` };
}

/** The refusal of an action kind an adapter does not carry out (nothing is sent). */
export function unsupportedAction(provider: ProviderName, kind: unknown): ActionOutcome {
  return {
    outcome: "failed",
    error: typeof kind === "string" && (PROVIDER_ACTION_KINDS as readonly string[]).includes(kind)
      ? `${provider} cannot carry out a ${kind} action`
      : `unknown provider action kind ${JSON.stringify(kind)}`,
  };
}

/** Reads a required provider setting or throws ProviderError("provider_not_configured") naming it. */
export function requireEnv(env: EnvGetter, name: string): string {
  return requireAnyEnv(env, name, (message) => new ProviderError(503, "provider_not_configured", message));
}

export { envUrl } from "../env.ts";

/** Unix seconds -> ISO string, or null when not a finite number. */
export function unixToIso(value: unknown): string | null {
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  const d = new Date(value * 1000);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** What a provider's error answer says: its message and its machine-readable code, when present. */
export interface UpstreamErrorFields {
  message: string | null;
  code: string | null;
}

/**
 * One call to a provider's JSON API, the same for every provider: fetch with a timeout, the answer
 * read whole and parsed. Throws ProviderError: no answer in time or no connection (networkError),
 * a non-2xx answer (upstream_error with the status, what `errorFields` reads of the provider's
 * error body, and its Retry-After), an answer that is not a JSON object (invalid_upstream_response,
 * `${who} ${nonJson}`).
 */
export async function fetchProviderJson(
  who: string,
  url: string,
  init: RequestInit,
  options: {
    fetch?: typeof fetch;
    timeoutMs: number;
    errorFields: (body: unknown) => UpstreamErrorFields;
    nonJson?: string;
  },
): Promise<Record<string, unknown>> {
  let res: Response;
  let text: string;
  try {
    res = await (options.fetch ?? fetch)(url, { ...init, signal: AbortSignal.timeout(options.timeoutMs) });
    text = await res.text();
  } catch (e) {
    throw networkError(e, who);
  }
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: an error answer keeps its status, a 2xx one is refused below
  }
  if (!res.ok) {
    const { message, code } = options.errorFields(json);
    throw new ProviderError(
      502,
      "upstream_error",
      `${who} answered ${res.status}${message !== null ? `: ${message}` : ""}`,
      res.status,
      code,
      retryAfterSeconds(res.headers.get("retry-after")),
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ProviderError(
      502,
      "invalid_upstream_response",
      `${who} ${options.nonJson ?? "answered non-JSON"}`,
    );
  }
  return json as Record<string, unknown>;
}

/** Maps a fetch failure to a typed error (timeout vs unreachable). */
export function networkError(e: unknown, who: string): ProviderError {
  const name = (e as { name?: string })?.name;
  if (name === "TimeoutError" || name === "AbortError") {
    return new ProviderError(504, "upstream_timeout", `${who} did not answer in time`);
  }
  return new ProviderError(502, "upstream_unreachable", `${who} could not be reached`);
}
