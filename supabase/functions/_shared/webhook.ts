// The one webhook front for every payment provider: POST only, the raw body once with the
// adapter's size cap, the adapter's signature check on those bytes, its normalization, then one
// SQL call. A provider's webhook function is `Deno.serve(webhookHandler(adapter))`; payu-return
// shares the verification part (verifiedEvent).
import { statement } from "./db.ts";
import { handle, type Handler, HttpError, json, readText } from "./http.ts";
import { type ApplyResult, applyPaymentEvent, providerHttpError, webhookError } from "./payments.ts";
import type { NormalizedEvent, ProviderAdapter } from "./providers/types.ts";

/** Signature refusals not yet written, per provider, and the write in flight (at most one). */
const uncounted = new Map<string, number>();
let counting: Promise<void> | null = null;

/**
 * Counts a delivery refused for its signature (billing.record_signature_failure: one upsert per
 * provider and hour, nothing of the request kept), for the operators' signature_failures_hourly.
 * At most one write is in flight per instance: refusals arriving meanwhile are added to the next
 * write, so a flood of forged deliveries holds one pooled connection, never the whole pool the
 * genuine webhooks need. The request that starts a write waits for it; the others do not.
 * Best effort: the refusal is answered whether or not the count could be written.
 */
async function recordSignatureFailure(provider: string): Promise<void> {
  uncounted.set(provider, (uncounted.get(provider) ?? 0) + 1);
  if (counting) return;
  counting = (async () => {
    try {
      while (uncounted.size > 0) {
        const batch = [...uncounted];
        uncounted.clear();
        for (const [name, count] of batch) {
          await statement((sql) => sql`select billing.record_signature_failure(${name}, ${count})`);
        }
      }
    } catch (e) {
      console.error(`signature failures not counted: ${(e as Error)?.message ?? String(e)}`);
    } finally {
      counting = null;
    }
  })();
  await counting;
}

/**
 * A provider POST verified and normalized by `adapter`. Throws HttpError with a code (405, 413,
 * 400 empty_body / malformed_body, 401 missing_signature / invalid_signature, 503
 * provider_not_configured); nothing has been read from the database yet, and only a signature
 * failure is written (counted per provider and hour).
 */
export async function verifiedEvent(req: Request, adapter: ProviderAdapter): Promise<NormalizedEvent> {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const raw = await readText(req, adapter.maxWebhookBytes);
  if (raw === "") throw webhookError("empty_body", "the body is empty");
  const verified = await adapter.verifyWebhook(raw, req.headers);
  if (!verified.ok) {
    if (verified.code === "missing_signature" || verified.code === "invalid_signature") {
      await recordSignatureFailure(adapter.name);
    }
    throw webhookError(verified.code, verified.message);
  }
  const normalized = adapter.normalize(verified.webhook);
  if (!normalized.ok) throw webhookError(normalized.code, normalized.message);
  if (!adapter.refresh) return normalized.event;
  try {
    return await adapter.refresh(normalized.event);
  } catch (e) {
    // The provider could not be asked: a 5xx, so the provider delivers the event again later.
    throw providerHttpError(e);
  }
}

/**
 * The webhook handler for one provider: 200 {received, result} for every verified event, also
 * duplicates, ignored kinds and mismatches (recorded; a retry would not change them).
 * `apply` replaces the SQL call (tests).
 */
export function webhookHandler(
  adapter: ProviderAdapter,
  { name = `${adapter.name}-webhook`, apply = applyPaymentEvent }: {
    name?: string;
    apply?: (event: NormalizedEvent) => Promise<ApplyResult>;
  } = {},
): Handler {
  return handle(name, async (req) => {
    const event = await verifiedEvent(req, adapter);
    const result = await apply(event);
    return json({ received: true, result: result.result });
  });
}
