// Reconciliation of due checkout orders: each order's provider adapter says what became of it
// (PayU verify_payment; Razorpay the order's payments), and every event found goes through the
// same SQL entry point as the webhooks, so nothing is applied twice.
import type { Database } from "../_shared/database.types.ts";
import { type ApplyResult, applyPaymentEvent } from "../_shared/payments.ts";
import { providers } from "../_shared/providers/registry.ts";
import type { NormalizedEvent, ProviderAdapter } from "../_shared/providers/types.ts";

type DueOrderRow = Database["billing"]["Functions"]["reconcile_due_orders"]["Returns"][number];

/**
 * An order billing.reconcile_due_orders returns, as much of it as reconciliation reads
 * (provider_order_id is null for a checkout never attached, whatever the generated type says).
 */
export type DueOrder =
  & Pick<DueOrderRow, "order_id" | "provider" | "receipt">
  & { provider_order_id: DueOrderRow["provider_order_id"] | null; provider_subscription_id?: string | null };

/** What reconciling one order did: the SQL results, or why it was skipped, or the error code. */
export interface ReconcileOutcome {
  order_id: string;
  provider: string;
  results: string[];
  order_status?: string;
  skipped?: string;
  error?: string;
}

export interface ReconcileOptions {
  /** The adapter for a provider name (default: the functions' registry). */
  adapterOf?: (name: string) => ProviderAdapter | undefined;
  /** Replaces the SQL entry point (tests). */
  apply?: (event: NormalizedEvent) => Promise<ApplyResult>;
}

/** Asks the order's provider about one due order and applies what it says. Never throws. */
export async function reconcileOrder(order: DueOrder, options: ReconcileOptions = {}): Promise<ReconcileOutcome> {
  const adapterOf = options.adapterOf ?? ((name: string) => providers.get(name));
  const apply = options.apply ?? ((event: NormalizedEvent) => applyPaymentEvent(event));
  const outcome: ReconcileOutcome = { order_id: order.order_id, provider: order.provider, results: [] };
  const adapter = adapterOf(order.provider);
  if (!adapter) {
    outcome.error = "provider_not_registered";
    return outcome;
  }
  try {
    const finding = await adapter.reconcileOrder({
      receipt: order.receipt,
      provider_order_id: order.provider_order_id,
      provider_subscription_id: order.provider_subscription_id ?? null,
    });
    if ("skipped" in finding) {
      outcome.skipped = finding.skipped;
      return outcome;
    }
    for (const event of finding.events) {
      const r = await apply(event);
      outcome.results.push(r.result);
      outcome.order_status = r.order_status ?? outcome.order_status;
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
