// Glue shared by the payment functions (checkout, payu-webhook, payu-return, razorpay-webhook,
// razorpay-verify, reconcile): the one SQL entry point for provider events, and the mapping of
// provider and SQL failures to HTTP answers. Business rules live in SQL
// (supabase/migrations/20261120000300_payments.sql), signatures in providers/.
import { sqlError, statement, type Tx } from "./db.ts";
import { denoEnv, HttpError, readText, UUID_RE } from "./http.ts";
import { normalizePayu, verifyPayuPayment, verifyPayuWebhook } from "./providers/payu.ts";
import { createRazorpayClient, type RazorpayPayment } from "./providers/razorpay.ts";
import {
  type EnvGetter,
  type NormalizedEvent,
  ProviderError,
  unixToIso,
  type WebhookErrorCode,
} from "./providers/types.ts";

/** The functions' env (the same getter as auth.ts and ai.ts use). */
export const env = denoEnv;

/** What public.apply_payment_event answers (keys present when they apply). */
export interface ApplyResult {
  result: "applied" | "duplicate" | "ignored" | "recorded" | "mismatch" | "unmatched";
  webhook_event_id?: string;
  order_id?: string;
  order_status?: string;
  payment_event_id?: string;
  subscription_id?: string;
  subscription_status?: string;
  current_period_end?: string;
  invoice_id?: string;
  reason?: string;
}

/**
 * Applies one provider event through public.apply_payment_event in one round trip: a single
 * statement on the pooled connection (SUPABASE_DB_URL's role, which owns the function; the
 * privileged path DESIGN reserves for webhooks and cron). No `set local role` transaction
 * around it: that took four round trips, and webhooks must answer fast.
 */
export async function applyPaymentEvent(event: NormalizedEvent): Promise<ApplyResult> {
  // An unreachable database is a 503: the provider retries later; nothing was applied.
  try {
    const [{ r }] = await statement((sql) =>
      sql`select public.apply_payment_event(${JSON.stringify(event)}::text::jsonb) as r`
    );
    return r as ApplyResult;
  } catch (e) {
    throw e instanceof HttpError ? e : sqlError(e);
  }
}

/** The same, inside a transaction the caller already opened as service_role. */
export async function applyIn(tx: Tx, event: NormalizedEvent): Promise<ApplyResult> {
  try {
    const [{ r }] = await tx`select public.apply_payment_event(${JSON.stringify(event)}::text::jsonb) as r`;
    return r as ApplyResult;
  } catch (e) {
    throw sqlError(e);
  }
}

/** A provider webhook that failed verification or normalization -> 4xx (503 when we lack a secret). */
export function webhookError(code: WebhookErrorCode | "empty_body", message: string): HttpError {
  const status = code === "provider_not_configured"
    ? 503
    : code === "missing_signature" || code === "invalid_signature"
    ? 401
    : 400;
  return new HttpError(status, code, message);
}

/** Largest PayU POST accepted (payu-webhook, payu-return). */
export const PAYU_MAX_BODY_BYTES = 64 * 1024;

/**
 * The start shared by PayU's two POSTs (the server-to-server webhook and the browser's return to
 * surl/furl): POST only, the raw body once with a size cap, the reverse hash over exactly the
 * posted values (a field posted twice is 400 malformed_body), then the normalized event. Throws
 * HttpError with a code; nothing has been read from or written to the database yet.
 */
export async function verifiedPayuEvent(req: Request): Promise<NormalizedEvent> {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const raw = await readText(req, PAYU_MAX_BODY_BYTES);
  if (raw === "") throw webhookError("empty_body", "the body is empty");
  const verified = await verifyPayuWebhook(raw, env);
  if (!verified.ok) throw webhookError(verified.code, verified.message);
  const normalized = normalizePayu(verified.webhook);
  if (!normalized.ok) throw webhookError(normalized.code, normalized.message);
  return normalized.event;
}

/** A ProviderError -> HttpError with the same status and code. */
export function providerHttpError(e: unknown, notConfiguredStatus = 503): unknown {
  if (e instanceof ProviderError) {
    return new HttpError(e.code === "provider_not_configured" ? notConfiguredStatus : e.status, e.code, e.message);
  }
  return e;
}

/** A required UUID field of a JSON body, or a 400 naming it. */
export function uuidField(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (typeof v !== "string" || !UUID_RE.test(v)) {
    throw new HttpError(400, "invalid_input", `${name} must be a UUID`);
  }
  return v.toLowerCase();
}

/**
 * A Razorpay payment fetched from the API (Checkout verification, reconciliation) as the event
 * the SQL entry point takes. Its event id names the payment and its state, so the verify call and
 * reconciliation seeing the same state dedupe on webhook_events; a webhook for the same payment
 * dedupes on payment_events (provider, payment id, status).
 */
export function razorpayPaymentEvent(
  payment: RazorpayPayment,
  order: { receipt: string; provider_order_id: string | null; provider_subscription_id: string | null },
  source: "razorpay-verify" | "reconcile",
): NormalizedEvent {
  const status = typeof payment.status === "string" ? payment.status : "unknown";
  return {
    provider: "razorpay",
    event_id: `payment:${payment.id}:${status}`,
    event_type: `payment.${status}`,
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

/** An order public.reconcile_due_orders returns. */
export interface DueOrder {
  order_id: string;
  provider: "payu" | "razorpay";
  receipt: string;
  provider_order_id: string | null;
  provider_subscription_id?: string | null;
}

/** What reconciling one order did: the SQL results, or why it was skipped, or the error code. */
export interface ReconcileOutcome {
  order_id: string;
  provider: string;
  results: string[];
  order_status?: string;
  skipped?: string;
  error?: string;
}

/**
 * Asks the provider about one due order and applies what it says (PayU verify_payment; Razorpay
 * the order's payments). A Razorpay order without a Razorpay order id (a subscription checkout)
 * is skipped with a reason: the client has no subscription fetch, its webhooks settle it.
 */
export async function reconcileOrder(
  order: DueOrder,
  options: { env?: EnvGetter; apply?: (event: NormalizedEvent) => Promise<ApplyResult>; fetch?: typeof fetch } = {},
): Promise<ReconcileOutcome> {
  const useEnv = options.env ?? env;
  const apply = options.apply ?? applyPaymentEvent;
  const outcome: ReconcileOutcome = { order_id: order.order_id, provider: order.provider, results: [] };
  if (order.provider === "razorpay" && !order.provider_order_id) {
    outcome.skipped = order.provider_subscription_id
      ? "a Razorpay subscription: settled by its webhooks (no subscription fetch here)"
      : "no Razorpay order id attached";
    return outcome;
  }
  try {
    if (order.provider === "payu") {
      const event = await verifyPayuPayment(order.receipt, useEnv, { fetch: options.fetch });
      if (event) {
        const r = await apply(event);
        outcome.results.push(r.result);
        outcome.order_status = r.order_status;
      }
    } else {
      const client = createRazorpayClient(useEnv, { fetch: options.fetch });
      for (const payment of await client.fetchOrderPayments(order.provider_order_id!)) {
        const r = await apply(razorpayPaymentEvent(
          payment,
          { receipt: order.receipt, provider_order_id: order.provider_order_id, provider_subscription_id: null },
          "reconcile",
        ));
        outcome.results.push(r.result);
        outcome.order_status = r.order_status ?? outcome.order_status;
      }
    }
  } catch (e) {
    outcome.error = (e as { code?: string })?.code ?? "error";
  }
  return outcome;
}

/** The reconcile function's answer: counts over the outcomes, and the outcomes. */
export function reconcileSummary(outcomes: ReconcileOutcome[]) {
  return {
    checked: outcomes.length,
    applied: outcomes.filter((o) => o.results.includes("applied")).length,
    not_found: outcomes.filter((o) => !o.error && !o.skipped && o.results.length === 0).length,
    skipped: outcomes.filter((o) => o.skipped).length,
    errors: outcomes.filter((o) => o.error).length,
    orders: outcomes,
  };
}
