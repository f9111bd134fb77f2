// POST /functions/v1/payu-return (verify_jwt = false): where PayU sends the buyer's browser
// after paying (surl) or failing (furl), with the same form fields and reverse hash as the
// webhook. Verified and applied exactly like payu-webhook (same event key, so the two race to one
// application), then a 303 to billing_settings.app_success_url when the order is paid, else to
// app_failure_url, with ?order=<txnid>&status=<order status>. Without those settings: 200 JSON.
import { asService } from "../_shared/db.ts";
import { handle, json } from "../_shared/http.ts";
import { applyPaymentEvent } from "../_shared/payments.ts";
import { providers } from "../_shared/providers/registry.ts";
import { verifiedEvent } from "../_shared/webhook.ts";

const payu = providers.require("payu");

export const handler = handle("payu-return", async (req) => {
  const event = await verifiedEvent(req, payu);

  const { result, success_url, failure_url } = await asService(async (tx) => {
    const result = await applyPaymentEvent(event, tx);
    const [urls] = await tx`select s.app_success_url as success_url, s.app_failure_url as failure_url
      from public.billing_settings s where s.id`;
    return { result, success_url: urls?.success_url as string | null, failure_url: urls?.failure_url as string | null };
  });

  const paid = result.order_status === "paid";
  const target = paid ? success_url : failure_url;
  if (!target) return json({ order: event.order_ref, status: result.order_status ?? "unknown", result: result.result });
  const url = new URL(target);
  url.searchParams.set("order", event.order_ref ?? "");
  url.searchParams.set("status", result.order_status ?? "unknown");
  return new Response(null, { status: 303, headers: { location: url.toString() } });
});
