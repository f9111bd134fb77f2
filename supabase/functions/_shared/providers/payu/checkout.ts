// PayU checkout: the hosted checkout's form (fields and request hash) the browser POSTs, and the
// answer the checkout function returns.

import {
  type Checkout,
  type CheckoutContext,
  type CheckoutOrder,
  type CheckoutOrderRow,
  type EnvGetter,
  ProviderError,
  type StartedCheckout,
} from "../types.ts";
import { paiseToRupees } from "./amounts.ts";
import { payuConfig } from "./client.ts";
import { TXNID } from "./read.ts";
import { type PayuRequestParams, requestHash } from "./signature.ts";

/** Builds the form the browser POSTs to `${PAYU_BASE_URL}/_payment`. Throws ProviderError. */
export async function createPayuCheckout(order: CheckoutOrder, env: EnvGetter): Promise<Checkout> {
  const config = payuConfig(env);
  if (!TXNID.test(order.order_ref)) {
    throw new ProviderError(400, "invalid_input", "txnid must be 1-25 characters of A-Z a-z 0-9 _ -");
  }
  if (order.currency !== "INR") throw new ProviderError(400, "invalid_input", "PayU accepts only INR");
  if (!order.surl || !order.furl) throw new ProviderError(400, "invalid_input", "surl and furl are required");
  if (order.amount_paise <= 0) throw new ProviderError(400, "invalid_amount", "amount must be positive");
  const udf = order.udf ?? [];
  if (udf.length > 5) throw new ProviderError(400, "invalid_input", "at most five udf values");
  const params: PayuRequestParams = {
    txnid: order.order_ref,
    amount: paiseToRupees(order.amount_paise),
    productinfo: order.plan_name,
    firstname: order.buyer.firstname,
    email: order.buyer.email,
    udf1: udf[0] ?? "",
    udf2: udf[1] ?? "",
    udf3: udf[2] ?? "",
    udf4: udf[3] ?? "",
    udf5: udf[4] ?? "",
  };
  // A pipe inside a hashed field would shift the other fields: refuse it rather than sign ambiguity.
  for (const [name, value] of Object.entries(params)) {
    if (typeof value !== "string" || value.includes("|")) {
      throw new ProviderError(400, "invalid_input", `${name} must be a string without '|'`);
    }
  }
  const hash = await requestHash(params, config.key, config.salt);
  const fields: Record<string, string> = {
    key: config.key,
    txnid: params.txnid,
    amount: params.amount,
    productinfo: params.productinfo,
    firstname: params.firstname,
    email: params.email,
    phone: order.buyer.phone ?? "",
    surl: order.surl,
    furl: order.furl,
    udf1: params.udf1!,
    udf2: params.udf2!,
    udf3: params.udf3!,
    udf4: params.udf4!,
    udf5: params.udf5!,
    hash,
  };
  return { provider: "payu", kind: "form_post", action_url: `${config.baseUrl}/_payment`, fields };
}

/** PayU's firstname: letters, digits, spaces and . ' - only (no '|', which would shift the hash). */
export function buyerFirstname(name: string): string {
  return name.replace(/[^\p{L}\p{N} .'-]/gu, "").trim().slice(0, 60) || "Customer";
}

/** The checkout function's answer for a PayU order: the form to POST, returning to payu-return. */
export async function startPayuCheckout(
  order: CheckoutOrderRow,
  context: CheckoutContext,
  env: EnvGetter,
): Promise<StartedCheckout> {
  // The browser comes back to payu-return after paying (surl) or failing (furl).
  const returnUrl = context.functionUrl("payu-return");
  const checkout = await createPayuCheckout({
    order_ref: order.receipt,
    amount_paise: Number(order.amount_cents),
    currency: order.currency,
    plan_name: order.plan_name,
    buyer: { firstname: buyerFirstname(order.buyer_name), email: order.buyer_email ?? "" },
    surl: returnUrl,
    furl: returnUrl,
    udf: [order.order_id],
  }, env);
  if (checkout.provider !== "payu") throw new Error("unexpected checkout kind");
  return { answer: { action_url: checkout.action_url, fields: checkout.fields }, attach: null };
}
