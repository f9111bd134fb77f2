// POST /functions/v1/checkout (signed in; verify_jwt = true): an owner or admin starts paying for
// a plan. Body {organization_id, plan_code, provider: "payu" | "razorpay"}, or, to pay an upgrade
// order that public.change_plan created (the prorated charge), {organization_id, order_id, provider}.
//
// One SQL call (public.create_checkout_order, or public.prepare_order_checkout for an order_id;
// as the user) checks the caller and the plan and creates or readies the order; then:
//   payu      -> 200 {provider, billing_order_id, receipt, amount_cents, currency, action_url, fields}:
//                the browser POSTs `fields` to `action_url`; surl/furl point at payu-return.
//   razorpay  -> a Razorpay Order (or, for plans with provider_config.razorpay.plan_id, a
//                Subscription) through the API, attached to our order in one SQL call
//                (public.attach_provider_checkout); 200 {provider, billing_order_id, receipt, key_id,
//                order_id | subscription_id, amount, currency, checkout_options}.
// A Razorpay order is payable only once attached: when the Razorpay call fails, our order is
// canceled (public.cancel_checkout_order), so no open order is left that could be paid.
// amount_cents is the total payable, GST included (the order's tax quote).
// Errors: 400 invalid_input | malformed_json, 401 (no user), 403 forbidden, 404 plan_not_found,
// 409 plan_not_purchasable | use_change_plan (a subscription runs on another plan: change plans
// with public.change_plan) | recurring_subscription_exists (a Razorpay subscription checkout is
// open, or one renews already), 422 provider_not_configured, 502/504 upstream_*.
import { requireUser } from "../_shared/auth.ts";
import { asService, asUser, sqlError } from "../_shared/db.ts";
import { handle, HttpError, json, readJson } from "../_shared/http.ts";
import { env, providerHttpError, uuidField } from "../_shared/payments.ts";
import { createPayuCheckout, payuConfig } from "../_shared/providers/payu.ts";
import { createRazorpayCheckout } from "../_shared/providers/razorpay.ts";
import { requireEnv } from "../_shared/providers/types.ts";

interface CheckoutOrderRow {
  order_id: string;
  receipt: string;
  status: string;
  amount_cents: string | number;
  currency: string;
  plan_code: string;
  plan_name: string;
  plan_interval: string;
  razorpay_plan_id: string | null;
  razorpay_total_count: number | null;
  buyer_email: string | null;
  buyer_name: string;
}

/** PayU's firstname: letters, digits, spaces and . ' - only (no '|', which would shift the hash). */
function buyerFirstname(name: string): string {
  return name.replace(/[^\p{L}\p{N} .'-]/gu, "").trim().slice(0, 60) || "Customer";
}

Deno.serve(handle("checkout", async (req) => {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const claims = await requireUser(req);
  const body = await readJson(req, 8 * 1024);
  const organizationId = uuidField(body, "organization_id");
  // An upgrade order from change_plan (lifecycle migration) is paid by its id instead of a plan code.
  const orderId = body.order_id === undefined ? null : uuidField(body, "order_id");
  const planCode = typeof body.plan_code === "string" ? body.plan_code : null;
  if (orderId === null && (planCode === null || !/^[a-z][a-z0-9_]{0,63}$/.test(planCode))) {
    throw new HttpError(400, "invalid_input", "plan_code must be a plan code such as pro_monthly");
  }
  const provider = body.provider;
  if (provider !== "payu" && provider !== "razorpay") {
    throw new HttpError(400, "invalid_provider", 'provider must be "payu" or "razorpay"');
  }

  // The provider must be usable before an order exists.
  let returnUrl = "";
  try {
    if (provider === "payu") {
      payuConfig(env);
      const base = requireEnv(env, "SUPABASE_URL").replace(/\/+$/, "");
      returnUrl = `${base}/functions/v1/payu-return`;
    } else {
      requireEnv(env, "RAZORPAY_KEY_ID");
      requireEnv(env, "RAZORPAY_KEY_SECRET");
    }
  } catch (e) {
    throw providerHttpError(e, 422);
  }

  let order: CheckoutOrderRow;
  try {
    [order] = await asUser(claims, async (tx) =>
      orderId === null
        ? await tx<CheckoutOrderRow[]>`select * from public.create_checkout_order(${organizationId}, ${planCode}, ${provider})`
        : await tx<CheckoutOrderRow[]>`select * from public.prepare_order_checkout(${organizationId}, ${orderId}, ${provider})`
    );
  } catch (e) {
    // create_checkout_order names the refusals checkout must tell apart in the error's HINT.
    const hint = (e as { hint?: string })?.hint;
    const code = hint === "use_change_plan" || hint === "recurring_subscription_exists" ? hint : "plan_not_purchasable";
    throw sqlError(e, { P0002: [404, "plan_not_found"], "55000": [409, code] });
  }
  const amount = Number(order.amount_cents);
  const checkoutOrder = {
    order_ref: order.receipt,
    amount_paise: amount,
    currency: order.currency,
    plan_name: order.plan_name,
    buyer: { firstname: buyerFirstname(order.buyer_name), email: order.buyer_email ?? "" },
  };
  const common = {
    provider,
    billing_order_id: order.order_id,
    receipt: order.receipt,
    amount_cents: amount,
    currency: order.currency,
  };

  try {
    if (provider === "payu") {
      const checkout = await createPayuCheckout({
        ...checkoutOrder,
        surl: returnUrl,
        furl: returnUrl,
        udf: [order.order_id],
      }, env);
      if (checkout.provider !== "payu") throw new Error("unexpected checkout kind");
      return json({ ...common, action_url: checkout.action_url, fields: checkout.fields });
    }

    const checkout = await createRazorpayCheckout({
      ...checkoutOrder,
      notes: { organization_id: organizationId, plan_code: order.plan_code },
      ...(order.razorpay_plan_id
        ? { razorpay_plan_id: order.razorpay_plan_id, total_count: order.razorpay_total_count ?? 120 }
        : {}),
    }, env);
    if (checkout.provider !== "razorpay") throw new Error("unexpected checkout kind");
    const options = checkout.options;
    if (!options.subscription_id && (options.amount !== amount || options.currency !== order.currency)) {
      throw new HttpError(502, "invalid_upstream_response", "Razorpay created an order for another amount");
    }
    await asService((tx) =>
      tx`select public.attach_provider_checkout(${order.order_id}, ${options.order_id ?? null}, ${
        options.subscription_id ?? null
      })`
    );
    return json({
      ...common,
      key_id: options.key,
      ...(options.subscription_id ? { subscription_id: options.subscription_id } : { order_id: options.order_id }),
      amount: options.amount,
      currency: options.currency,
      checkout_options: options,
    });
  } catch (e) {
    // The buyer never got a payable checkout: close our order so nothing can pay it.
    await asService((tx) =>
      tx`select public.cancel_checkout_order(${order.order_id}, ${String((e as Error)?.message ?? e)})`
    ).catch(() => {});
    throw providerHttpError(e);
  }
}));
