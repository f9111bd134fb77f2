// Reconciliation of due checkout orders, stale provider subscriptions and the refunds of recent
// payments: each one's provider adapter says what became of it (PayU verify_payment; Razorpay the
// order's payments, or the subscription, its invoices and their payments; for refunds PayU
// getAllRefundsFromTxnIds and Razorpay the payment's refunds), and every event found goes through
// the same SQL entry point as the webhooks, so nothing is applied twice.
import type { Database } from "../_shared/database.types.ts";
import { type ApplyResult, applyPaymentEvent } from "../_shared/payments.ts";
import { providers } from "../_shared/providers/registry.ts";
import type { NormalizedEvent, ProviderAdapter } from "../_shared/providers/types.ts";

type DueOrderRow = Database["billing"]["Functions"]["reconcile_due_orders"]["Returns"][number];
type DueSubscriptionRow = Database["billing"]["Functions"]["reconcile_due_subscriptions"]["Returns"][number];

/**
 * A subscription billing.reconcile_due_subscriptions returns, as much of it as reconciliation
 * reads (receipt and provider_status are null when there is none, whatever the generated type says).
 */
export type DueSubscription =
  & Pick<DueSubscriptionRow, "subscription_id" | "provider" | "provider_subscription_id" | "reason">
  & {
    receipt: string | null;
    provider_status: string | null;
    known_payment_ids: string[] | null;
  };

/** What reconciling one subscription did: the SQL results, or why it was skipped, or the error code. */
export interface SubscriptionOutcome {
  subscription_id: string;
  provider: string;
  provider_subscription_id: string;
  reason: string;
  /** The event kinds applied, in order, beside results. */
  kinds: string[];
  results: string[];
  subscription_status?: string;
  current_period_end?: string;
  skipped?: string;
  error?: string;
}

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

/**
 * Asks the subscription's provider about one stale subscription and applies what it says (the
 * charges we did not know, then its status). Never throws.
 */
export async function reconcileSubscription(
  sub: DueSubscription,
  options: ReconcileOptions = {},
): Promise<SubscriptionOutcome> {
  const adapterOf = options.adapterOf ?? ((name: string) => providers.get(name));
  const apply = options.apply ?? ((event: NormalizedEvent) => applyPaymentEvent(event));
  const outcome: SubscriptionOutcome = {
    subscription_id: sub.subscription_id,
    provider: sub.provider,
    provider_subscription_id: sub.provider_subscription_id,
    reason: sub.reason,
    kinds: [],
    results: [],
  };
  const adapter = adapterOf(sub.provider);
  if (!adapter) {
    outcome.error = "provider_not_registered";
    return outcome;
  }
  if (!adapter.reconcileSubscription) {
    outcome.skipped = `${sub.provider} has no subscriptions to ask about`;
    return outcome;
  }
  try {
    const finding = await adapter.reconcileSubscription({
      provider_subscription_id: sub.provider_subscription_id,
      receipt: sub.receipt,
      known_payment_ids: sub.known_payment_ids ?? [],
      provider_status: sub.provider_status,
    });
    if ("skipped" in finding) {
      outcome.skipped = finding.skipped;
      return outcome;
    }
    for (const event of finding.events) {
      const r = await apply(event);
      outcome.kinds.push(event.kind);
      outcome.results.push(r.result);
      outcome.subscription_status = r.subscription_status ?? outcome.subscription_status;
      outcome.current_period_end = r.current_period_end ?? outcome.current_period_end;
    }
  } catch (e) {
    outcome.error = (e as { code?: string })?.code ?? "error";
  }
  return outcome;
}

/**
 * A captured payment billing.reconcile_due_refunds returns, as much of it as reconciliation reads
 * (the order's references are null when there is none, whatever the generated type says).
 */
export interface DuePayment {
  payment_event_id: string;
  provider: string;
  provider_payment_id: string;
  receipt: string | null;
  provider_order_id: string | null;
  provider_subscription_id: string | null;
  /** Provider refund ids already recorded for the payment. */
  known_refund_ids: string[] | null;
}

/** What comparing one payment's refunds at its provider with ours did. */
export interface RefundsOutcome {
  payment_event_id: string;
  provider: string;
  provider_payment_id: string;
  /** Refunds the provider holds for the payment. */
  listed: number;
  /** apply_payment_event's result for each refund we had not recorded. */
  results: string[];
  skipped?: string;
  error?: string;
}

/**
 * Asks the payment's provider for the payment's refunds and records each one that counts
 * (accepted or processed at the provider) and that we have not recorded, through the same SQL
 * entry point as the webhooks: a refund is recorded once per provider refund id, so one found
 * twice, or found here while provider-sync records it, is a duplicate. Never throws.
 */
export async function reconcileRefunds(payment: DuePayment, options: ReconcileOptions = {}): Promise<RefundsOutcome> {
  const adapterOf = options.adapterOf ?? ((name: string) => providers.get(name));
  const apply = options.apply ?? ((event: NormalizedEvent) => applyPaymentEvent(event));
  const outcome: RefundsOutcome = {
    payment_event_id: payment.payment_event_id,
    provider: payment.provider,
    provider_payment_id: payment.provider_payment_id,
    listed: 0,
    results: [],
  };
  const adapter = adapterOf(payment.provider);
  if (!adapter) {
    outcome.error = "provider_not_registered";
    return outcome;
  }
  if (!adapter.listRefunds) {
    outcome.skipped = `${payment.provider} cannot list a payment's refunds`;
    return outcome;
  }
  try {
    const refunds = await adapter.listRefunds({
      provider_payment_id: payment.provider_payment_id,
      order_ref: payment.receipt,
      provider_order_id: payment.provider_order_id,
      provider_subscription_id: payment.provider_subscription_id,
    });
    outcome.listed = refunds.length;
    const known = new Set(payment.known_refund_ids ?? []);
    for (const refund of refunds) {
      if (!refund.event || known.has(refund.provider_refund_id)) continue;
      outcome.results.push((await apply(refund.event)).result);
    }
  } catch (e) {
    outcome.error = (e as { code?: string })?.code ?? "error";
  }
  return outcome;
}

/**
 * The reconcile function's answer: counts over the order outcomes, the outcomes, and (when
 * subscriptions were checked) the same counts and outcomes for subscriptions.
 */
export function reconcileSummary(
  outcomes: ReconcileOutcome[],
  subscriptions?: SubscriptionOutcome[],
  refunds?: RefundsOutcome[],
) {
  return {
    checked: outcomes.length,
    applied: outcomes.filter((o) => o.results.includes("applied")).length,
    not_found: outcomes.filter((o) => !o.error && !o.skipped && o.results.length === 0).length,
    skipped: outcomes.filter((o) => o.skipped).length,
    errors: outcomes.filter((o) => o.error).length,
    orders: outcomes,
    ...(subscriptions
      ? {
        subscriptions: {
          checked: subscriptions.length,
          applied: subscriptions.filter((o) => o.results.includes("applied")).length,
          unchanged: subscriptions.filter((o) => !o.error && !o.skipped && !o.results.includes("applied")).length,
          skipped: subscriptions.filter((o) => o.skipped).length,
          errors: subscriptions.filter((o) => o.error).length,
          items: subscriptions,
        },
      }
      : {}),
    ...(refunds
      ? {
        refunds: {
          checked: refunds.length,
          applied: refunds.reduce((n, o) => n + o.results.filter((r) => r === "applied").length, 0),
          skipped: refunds.filter((o) => o.skipped).length,
          errors: refunds.filter((o) => o.error).length,
          items: refunds,
        },
      }
      : {}),
  };
}
