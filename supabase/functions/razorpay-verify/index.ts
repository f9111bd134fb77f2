// POST /functions/v1/razorpay-verify (signed in; verify_jwt = true): the result of Razorpay
// Checkout's handler, sent by the browser. Body {billing_order_id, razorpay_payment_id,
// razorpay_signature} (razorpay_order_id / razorpay_subscription_id may be sent; they are not
// used: the signature is checked against the ids in our database). Then the payment is fetched
// from the Razorpay API (its amount and status, not the browser's word) and applied through the
// same SQL entry point as the webhook: whichever of the two comes second changes nothing.
// 200 {billing_order_id, order_status, subscription_status, current_period_end, result};
// 400 invalid_input | invalid_signature, 404 order_not_found, 409 not_a_razorpay_order |
// payment_mismatch, 502/504 upstream_*, 503 provider_not_configured.
import { requireUser } from "../_shared/auth.ts";
import { asUser } from "../_shared/db.ts";
import { handle, HttpError, json, readJson } from "../_shared/http.ts";
import { applyPaymentEvent, env, providerHttpError, razorpayPaymentEvent, uuidField } from "../_shared/payments.ts";
import { createRazorpayClient, verifyPaymentSignature } from "../_shared/providers/razorpay.ts";
import { requireEnv } from "../_shared/providers/types.ts";

interface OrderRow {
  id: string;
  receipt: string;
  provider: string;
  provider_order_id: string | null;
  provider_subscription_id: string | null;
}

Deno.serve(handle("razorpay-verify", async (req) => {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const claims = await requireUser(req);
  const body = await readJson(req, 8 * 1024);
  const orderId = uuidField(body, "billing_order_id");
  const paymentId = body.razorpay_payment_id;
  const signature = body.razorpay_signature;
  if (typeof paymentId !== "string" || !/^pay_[A-Za-z0-9]{1,40}$/.test(paymentId)) {
    throw new HttpError(400, "invalid_input", "razorpay_payment_id must be a Razorpay payment id (pay_...)");
  }
  if (typeof signature !== "string" || !/^[0-9a-f]{64}$/.test(signature)) {
    throw new HttpError(400, "invalid_input", "razorpay_signature must be 64 lowercase hex characters");
  }
  let keySecret: string;
  try {
    keySecret = requireEnv(env, "RAZORPAY_KEY_SECRET");
  } catch (e) {
    throw providerHttpError(e);
  }

  // The order as the user sees it (RLS: members of its organization only).
  const [order] = await asUser(claims, (tx) =>
    tx<OrderRow[]>`select o.id, o.receipt, o.provider, o.provider_order_id, o.provider_subscription_id
      from public.orders o where o.id = ${orderId}`
  );
  if (!order) throw new HttpError(404, "order_not_found", "no such order among your organizations'");
  if (order.provider !== "razorpay" || (!order.provider_order_id && !order.provider_subscription_id)) {
    throw new HttpError(409, "not_a_razorpay_order", "the order has no Razorpay order or subscription");
  }
  const ids = order.provider_subscription_id
    ? { subscription_id: order.provider_subscription_id, payment_id: paymentId }
    : { order_id: order.provider_order_id!, payment_id: paymentId };
  if (!(await verifyPaymentSignature(ids, signature, keySecret))) {
    throw new HttpError(400, "invalid_signature", "the signature does not match this order and payment");
  }

  let payment;
  try {
    payment = await createRazorpayClient(env).fetchPayment(paymentId);
  } catch (e) {
    throw providerHttpError(e);
  }
  const result = await applyPaymentEvent(razorpayPaymentEvent(payment, order, "razorpay-verify"));
  if (result.result === "mismatch") {
    throw new HttpError(409, "payment_mismatch", result.reason ?? "the payment does not match the order");
  }
  if (result.result === "unmatched") {
    throw new HttpError(409, "payment_unmatched", result.reason ?? "the payment does not belong to the order");
  }
  return json({
    billing_order_id: order.id,
    order_status: result.order_status ?? null,
    subscription_status: result.subscription_status ?? null,
    current_period_end: result.current_period_end ?? null,
    result: result.result,
  });
}));
