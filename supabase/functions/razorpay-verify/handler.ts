// POST /functions/v1/razorpay-verify (signed in; verify_jwt = false: requireUser checks the
// token first): the result of Razorpay Checkout's handler, sent by the browser. Body {billing_order_id, razorpay_payment_id,
// razorpay_signature} (razorpay_order_id / razorpay_subscription_id may be sent; they are not
// used: the signature is checked against the ids in our database). Then the payment is fetched
// from the Razorpay API (its amount and status, not the browser's word) and applied through the
// same SQL entry point as the webhook: whichever of the two comes second changes nothing.
// 200 {billing_order_id, order_status, subscription_status, current_period_end, result};
// 400 invalid_input | invalid_signature, 404 order_not_found, 409 not_a_razorpay_order |
// payment_mismatch | payment_unmatched, 502/504 upstream_*, 503 provider_not_configured.
import { requireUser } from "../_shared/auth.ts";
import type { Database } from "../_shared/database.types.ts";
import { asUser } from "../_shared/db.ts";
import { handle, type Handler, HttpError, json, readJson, uuidField } from "../_shared/http.ts";
import { applyPaymentEvent, providerHttpError } from "../_shared/payments.ts";
import { providers } from "../_shared/providers/registry.ts";
import type { ProviderAdapter } from "../_shared/providers/types.ts";

type OrderRow = Pick<
  Database["public"]["Tables"]["orders"]["Row"],
  "id" | "receipt" | "provider" | "provider_order_id" | "provider_subscription_id"
>;

/** The handler for the adapter whose Checkout hands back a signed result (Razorpay's by default). */
export function razorpayVerifyHandler(adapter: ProviderAdapter = providers.require("razorpay")): Handler {
  const verifyCheckoutSignature = adapter.verifyCheckoutSignature?.bind(adapter);
  const fetchPaymentEvent = adapter.fetchPaymentEvent?.bind(adapter);
  if (!verifyCheckoutSignature || !fetchPaymentEvent) {
    throw new Error(`the ${adapter.name} adapter cannot verify a checkout result`);
  }
  return handle("razorpay-verify", async (req) => {
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
    try {
      adapter.assertCheckoutConfigured();
    } catch (e) {
      throw providerHttpError(e);
    }

    // The order as the user sees it (RLS: members of its organization only).
    const [order] = await asUser(claims, (tx) =>
      tx<OrderRow[]>`select o.id, o.receipt, o.provider, o.provider_order_id, o.provider_subscription_id
        from public.orders o where o.id = ${orderId}`
    );
    if (!order) throw new HttpError(404, "order_not_found", "no such order among your organizations'");
    if (order.provider !== adapter.name || (!order.provider_order_id && !order.provider_subscription_id)) {
      throw new HttpError(409, "not_a_razorpay_order", "the order has no Razorpay order or subscription");
    }
    const ref = {
      receipt: order.receipt,
      provider_order_id: order.provider_order_id,
      provider_subscription_id: order.provider_subscription_id,
    };

    let event;
    try {
      if (!(await verifyCheckoutSignature(ref, paymentId, signature))) {
        throw new HttpError(400, "invalid_signature", "the signature does not match this order and payment");
      }
      event = await fetchPaymentEvent(paymentId, ref, "razorpay-verify");
    } catch (e) {
      throw providerHttpError(e);
    }
    const result = await applyPaymentEvent(event);
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
  });
}

export const handler: Handler = razorpayVerifyHandler();
