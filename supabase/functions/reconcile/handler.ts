// POST /functions/v1/reconcile (service key only): asks the providers about checkout orders
// still pending after billing_settings.order_pending_reconcile_after (billing.reconcile_due_orders,
// which also expires orders past their expires_at), and about Razorpay subscriptions that look stale
// (billing.reconcile_due_subscriptions: a period end passed without a charge, or a stored provider
// state that disagrees with ours), and applies what they say through the same SQL entry point as the
// webhooks: PayU verify_payment (its answer has the webhook's event key), Razorpay GET
// /orders/:id/payments; for subscriptions GET /subscriptions/:id, GET /invoices?subscription_id=:id
// and GET /payments/:id of each paid charge we do not know. Lost webhooks are recovered; nothing is
// applied twice (a charge dedupes on its payment id, so a late subscription.charged is a duplicate).
// Then the refunds of recent captured payments (billing.reconcile_due_refunds: each payment of the
// last 30 days at most every 6 hours): PayU getAllRefundsFromTxnIds, Razorpay GET
// /payments/:id/refunds; a refund the provider holds that we never recorded (made in the
// dashboard, or its record lost) is recorded once, keyed on the provider's refund id.
// pg_cron calls it every 10 minutes where pg_net exists (billing.schedule_jobs()); `npm start`'s
// ticker calls it locally.
// Body (optional) {limit} (orders, and subscriptions, each at most limit).
// 200 {checked, applied, not_found, skipped, errors, orders: [...],
//      subscriptions: {checked, applied, unchanged, skipped, errors, items: [...]},
//      refunds: {checked, applied, skipped, errors, items: [...]}}
// (skipped: Razorpay orders with no Razorpay order id, e.g. subscriptions, with the reason: those
// are reconciled as subscriptions);
// 401 without a valid key (missing_authorization, invalid_jwt, invalid_api_key), 403 forbidden for
// a publishable key, the anon key or a user's token.
import { asService } from "../_shared/db.ts";
import { handle, json } from "../_shared/http.ts";
import { inBatches, workerLimit } from "../_shared/worker.ts";
import {
  type DueOrder,
  type DuePayment,
  type DueSubscription,
  type ReconcileOutcome,
  reconcileOrder,
  reconcileRefunds,
  reconcileSubscription,
  type RefundsOutcome,
  reconcileSummary,
  type SubscriptionOutcome,
} from "./reconcile.ts";

const CONCURRENCY = 4;

export const handler = handle("reconcile", async (req) => {
  const limit = await workerLimit(req, "reconcile", { defaultLimit: 50, maxLimit: 1000 });

  const due = await asService((tx) =>
    tx<DueOrder[]>`select order_id, provider, receipt, provider_order_id from billing.reconcile_due_orders(${limit})`
  );
  const outcomes: ReconcileOutcome[] = await inBatches(due, CONCURRENCY, (order) => reconcileOrder(order));

  const dueSubscriptions = await asService((tx) =>
    tx<DueSubscription[]>`select subscription_id, provider, provider_subscription_id, receipt, provider_status,
      known_payment_ids, reason from billing.reconcile_due_subscriptions(${limit})`
  );
  const subscriptions: SubscriptionOutcome[] = await inBatches(
    dueSubscriptions,
    CONCURRENCY,
    (sub) => reconcileSubscription(sub),
  );

  const duePayments = await asService((tx) =>
    tx<DuePayment[]>`select payment_event_id, provider, provider_payment_id, receipt, provider_order_id,
      provider_subscription_id, known_refund_ids from billing.reconcile_due_refunds(${limit})`
  );
  const refunds: RefundsOutcome[] = await inBatches(duePayments, CONCURRENCY, (payment) => reconcileRefunds(payment));
  return json(reconcileSummary(outcomes, subscriptions, refunds));
});
