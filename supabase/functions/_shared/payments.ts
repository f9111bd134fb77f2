// Glue shared by the payment functions (checkout, the webhooks, payu-return, razorpay-verify,
// reconcile): the one SQL entry point for provider events, and the mapping of provider and SQL
// failures to HTTP answers. Business rules live in SQL; signatures and provider vocabulary live in
// providers/.
import { sqlError, statement, type Tx } from "./db.ts";
import { HttpError } from "./http.ts";
import { jsonbText } from "./jsonb.ts";
import { type NormalizedEvent, ProviderError, type WebhookErrorCode } from "./providers/types.ts";

/** What billing.apply_payment_event answers (keys present when they apply). */
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
 * Applies one provider event through billing.apply_payment_event. Without `tx`: in one round trip,
 * a single statement on the pooled connection (SUPABASE_DB_URL's role, which owns the function:
 * the privileged path reserved for webhooks and cron), with no `set local role` transaction around
 * it, because webhooks must answer fast. With `tx`: inside the caller's transaction.
 * An unreachable database is a 503: the provider retries later; nothing was applied.
 * The event goes as jsonb-safe text (jsonbText: U+0000 becomes U+FFFD), so a signed event with
 * U+0000 in a free-text field is recorded and answered instead of failing on every delivery.
 */
export async function applyPaymentEvent(event: NormalizedEvent, tx?: Tx): Promise<ApplyResult> {
  const body = jsonbText(event);
  try {
    const [{ r }] = tx
      ? await tx`select billing.apply_payment_event(${body}::text::jsonb) as r`
      : await statement((sql) => sql`select billing.apply_payment_event(${body}::text::jsonb) as r`);
    return r as ApplyResult;
  } catch (e) {
    throw e instanceof HttpError ? e : sqlError(e);
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

/** A ProviderError -> HttpError with the same status and code. */
export function providerHttpError(e: unknown, notConfiguredStatus = 503): unknown {
  if (e instanceof ProviderError) {
    return new HttpError(e.code === "provider_not_configured" ? notConfiguredStatus : e.status, e.code, e.message);
  }
  return e;
}
