// POST /functions/v1/reconcile (service role key only): asks the providers about checkout orders
// still pending after billing_settings.order_pending_reconcile_after (public.reconcile_due_orders,
// which also expires orders past their expires_at), and applies what they say through the same SQL
// entry point as the webhooks: PayU verify_payment (its answer has the webhook's event key),
// Razorpay GET /orders/:id/payments. Lost webhooks are recovered; nothing is applied twice.
// pg_cron calls it every 10 minutes where pg_net exists (see the payments migration).
// Body (optional) {limit}. 200 {checked, applied, not_found, errors, orders: [...]};
// 401 without a valid token, 403 for any token whose role is not service_role.
import { bearerToken, verifyJwt } from "../_shared/auth.ts";
import { asService } from "../_shared/db.ts";
import { handle, HttpError, json, readText } from "../_shared/http.ts";
import { applyPaymentEvent, env, razorpayPaymentEvent } from "../_shared/payments.ts";
import { verifyPayuPayment } from "../_shared/providers/payu.ts";
import { createRazorpayClient } from "../_shared/providers/razorpay.ts";

interface DueOrder {
  order_id: string;
  provider: "payu" | "razorpay";
  receipt: string;
  provider_order_id: string | null;
}

interface Outcome {
  order_id: string;
  provider: string;
  results: string[];
  order_status?: string;
  error?: string;
}

const CONCURRENCY = 4;

async function reconcileOne(order: DueOrder): Promise<Outcome> {
  const outcome: Outcome = { order_id: order.order_id, provider: order.provider, results: [] };
  try {
    if (order.provider === "payu") {
      const event = await verifyPayuPayment(order.receipt, env);
      if (event) {
        const r = await applyPaymentEvent(event);
        outcome.results.push(r.result);
        outcome.order_status = r.order_status;
      }
    } else if (order.provider_order_id) {
      const payments = await createRazorpayClient(env).fetchOrderPayments(order.provider_order_id);
      for (const payment of payments) {
        const r = await applyPaymentEvent(razorpayPaymentEvent(
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

Deno.serve(handle("reconcile", async (req) => {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const claims = await verifyJwt(bearerToken(req));
  if (claims.role !== "service_role") {
    throw new HttpError(403, "forbidden", "reconcile needs the service role key");
  }
  const raw = await readText(req, 4 * 1024);
  let limit = 50;
  if (raw.trim() !== "") {
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      throw new HttpError(400, "malformed_json", "the body is not valid JSON");
    }
    const l = (body as { limit?: unknown })?.limit;
    if (l !== undefined) {
      if (typeof l !== "number" || !Number.isInteger(l) || l < 1 || l > 1000) {
        throw new HttpError(400, "invalid_input", "limit must be an integer from 1 to 1000");
      }
      limit = l;
    }
  }

  const due = await asService((tx) =>
    tx<DueOrder[]>`select order_id, provider, receipt, provider_order_id from public.reconcile_due_orders(${limit})`
  );
  const outcomes: Outcome[] = [];
  for (let i = 0; i < due.length; i += CONCURRENCY) {
    outcomes.push(...await Promise.all(due.slice(i, i + CONCURRENCY).map(reconcileOne)));
  }
  return json({
    checked: outcomes.length,
    applied: outcomes.filter((o) => o.results.includes("applied")).length,
    not_found: outcomes.filter((o) => !o.error && o.results.length === 0).length,
    errors: outcomes.filter((o) => o.error).length,
    orders: outcomes,
  });
}));
