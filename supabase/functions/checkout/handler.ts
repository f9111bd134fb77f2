// POST /functions/v1/checkout (signed in; verify_jwt = false: requireUser checks the token
// first): an owner or admin starts paying for a plan. Body {organization_id, plan_code, provider}, or, to pay an upgrade order that
// public.change_plan created (the prorated charge), {organization_id, order_id, provider}, or, to
// buy a credit pack once, {organization_id, credit_pack_code, provider}; provider names a
// registered adapter ("payu", "razorpay", "stripe"). A plan checkout may carry `discount_code` (any case):
// the order is priced at the list price less the discount, taxed on the rest; an order the
// discount makes free is paid at once and answered without a provider:
// 200 {provider: "manual", billing_order_id, receipt, amount_cents: 0, currency, status: "paid"}.
// A plan checkout may carry `currency` ("USD"): the plan's price in that currency
// (public.plan_prices; absent: the plan's own, or a renewal's), refused before any order when the
// plan is not offered in it or the provider does not collect it here
// (billing_settings.provider_currencies), so no provider is called.
//
// One SQL call (public.create_checkout_order, public.prepare_order_checkout for an order_id, or
// public.create_credit_pack_order for a pack; as the user) checks the caller and what is bought
// and creates or readies the order; then the provider's adapter builds the checkout (a credit pack
// is a one-time payment: a PayU form, or a Razorpay Order, never a subscription):
//   payu      -> 200 {provider, billing_order_id, receipt, amount_cents, currency, action_url, fields}:
//                the browser POSTs `fields` to `action_url`; surl/furl point at payu-return.
//   razorpay  -> a Razorpay Order (or, for plans with provider_config.razorpay.plan_id, a
//                Subscription) through the API; 200 {provider, billing_order_id, receipt, key_id,
//                order_id | subscription_id, amount, currency, checkout_options}.
//   stripe    -> a Checkout Session (mode subscription for a plan with provider_config.stripe.price_id,
//                else payment), the organization's Stripe customer made on its first checkout;
//                200 {provider, billing_order_id, receipt, session_id, url, amount, currency}: send the
//                browser to `url`.
// A checkout with a provider-side order is payable only once attached to ours
// (billing.attach_provider_checkout, one SQL call); when building the checkout fails, our order is
// canceled (billing.cancel_checkout_order), so no open order is left that could be paid.
// amount_cents is the total payable, GST included (the order's tax quote).
// Errors: 400 invalid_input | invalid_provider | malformed_json | plan_and_credit_pack (a credit
// pack with a plan code or an order id), 401 (no user), 403 forbidden, 404 plan_not_found |
// credit_pack_not_found (unknown or inactive; a private plan not assigned
// to the organization), 409 plan_not_purchasable | credit_pack_not_purchasable | use_change_plan (a subscription runs on another
// plan: change plans with public.change_plan) | recurring_subscription_exists (a Razorpay
// subscription checkout is open, or one renews already) | too_many_open_orders (the organization has
// billing_settings.max_open_orders open orders) | paid_ahead (a free renewal or one at a
// negotiated price while the plan is paid more than one period ahead), 422 discount_invalid | discount_expired |
// discount_exhausted | discount_not_applicable | discount_already_used (the code was refused; no
// order was created), 422 currency_not_offered (the plan has no price in that currency) |
// currency_not_accepted (the provider does not collect it here), 409 exchange_rate_missing (no
// rate on record for the currency) | subscription_currency (a renewal in another currency than
// its subscription's), 422 provider_not_configured, 502/504
// upstream_*, 503 server_not_configured (SUPABASE_URL is not set).
import { requireUser } from "../_shared/auth.ts";
import { asService, asUser, sqlError } from "../_shared/db.ts";
import { denoEnv, type EnvGetter, requireEnv } from "../_shared/env.ts";
import { handle, type Handler, HttpError, json, readJson, uuidField } from "../_shared/http.ts";
import { providerHttpError } from "../_shared/payments.ts";
import { providers as builtIn, type ProviderRegistry } from "../_shared/providers/registry.ts";
import type { CheckoutContext, CheckoutOrderRow } from "../_shared/providers/types.ts";

/** The checkout handler over a registry (tests pass their own) and an env. */
export function checkoutHandler(registry: ProviderRegistry = builtIn, env: EnvGetter = denoEnv): Handler {
  return handle("checkout", async (req) => {
    if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
    const claims = await requireUser(req, env);
    const body = await readJson(req, 8 * 1024);
    const organizationId = uuidField(body, "organization_id");
    // An upgrade order from change_plan is paid by its id instead of a plan code.
    const orderId = body.order_id === undefined ? null : uuidField(body, "order_id");
    const packCode = body.credit_pack_code === undefined ? null : body.credit_pack_code;
    if (packCode !== null && (body.plan_code !== undefined || orderId !== null)) {
      throw new HttpError(
        400,
        "plan_and_credit_pack",
        "a checkout buys a plan (plan_code or order_id) or a credit pack (credit_pack_code), not both",
      );
    }
    if (packCode !== null && (typeof packCode !== "string" || !/^[a-z][a-z0-9_]{0,63}$/.test(packCode))) {
      throw new HttpError(400, "invalid_input", "credit_pack_code must be a credit pack code such as credits_1000");
    }
    const planCode = typeof body.plan_code === "string" ? body.plan_code : null;
    if (packCode === null && orderId === null && (planCode === null || !/^[a-z][a-z0-9_]{0,63}$/.test(planCode))) {
      throw new HttpError(400, "invalid_input", "plan_code must be a plan code such as pro_monthly");
    }
    const discountCode = body.discount_code === undefined || body.discount_code === null ? null : body.discount_code;
    if (
      discountCode !== null &&
      (typeof discountCode !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/.test(discountCode.trim()))
    ) {
      throw new HttpError(400, "invalid_input", "discount_code must be a code of letters, digits, '_' or '-'");
    }
    if (discountCode !== null && (packCode !== null || orderId !== null)) {
      throw new HttpError(
        400,
        "invalid_input",
        "discount_code goes with a plan_code (an upgrade's code is given to change_plan)",
      );
    }
    const currency = body.currency === undefined || body.currency === null ? null : body.currency;
    if (currency !== null && (typeof currency !== "string" || !/^[A-Z]{3}$/.test(currency))) {
      throw new HttpError(400, "invalid_input", "currency must be a three-letter ISO code such as USD");
    }
    if (currency !== null && (packCode !== null || orderId !== null)) {
      throw new HttpError(
        400,
        "invalid_input",
        "currency goes with a plan_code (credit packs are sold in INR; an upgrade order has its currency)",
      );
    }
    const adapter = registry.get(body.provider);
    if (!adapter) {
      throw new HttpError(
        400,
        "invalid_provider",
        `provider must be one of ${registry.names().map((n) => JSON.stringify(n)).join(", ")}`,
      );
    }

    // The deployment and the provider must be usable before an order exists.
    const functionsBase = `${requireEnv(env, "SUPABASE_URL").replace(/\/+$/, "")}/functions/v1`;
    try {
      adapter.assertCheckoutConfigured();
    } catch (e) {
      throw providerHttpError(e, 422);
    }
    const context: CheckoutContext = {
      organization_id: organizationId,
      functionUrl: (name) => `${functionsBase}/${name}`,
    };

    let order: CheckoutOrderRow;
    try {
      [order] = await asUser(claims, async (tx) =>
        packCode !== null
          ? await tx<CheckoutOrderRow[]>`select * from public.create_credit_pack_order(${organizationId}, ${packCode}, ${adapter.name})`
          : orderId === null
          ? await tx<CheckoutOrderRow[]>`select * from public.create_checkout_order(${organizationId}, ${planCode}, ${adapter.name}, ${discountCode}, ${currency})`
          : await tx<CheckoutOrderRow[]>`select * from public.prepare_order_checkout(${organizationId}, ${orderId}, ${adapter.name})`
      );
    } catch (e) {
      // create_checkout_order and create_credit_pack_order name the refusals checkout must tell
      // apart in the error's HINT.
      const hint = (e as { hint?: string })?.hint;
      if (hint && (hint.startsWith("discount_") || hint === "currency_not_offered" || hint === "currency_not_accepted")) {
        throw new HttpError(422, hint, String((e as Error)?.message ?? e));
      }
      const known = [
        "exchange_rate_missing",
        "subscription_currency",
        "use_change_plan",
        "recurring_subscription_exists",
        "too_many_open_orders",
        "credit_pack_not_purchasable",
        "paid_ahead",
      ];
      const code = hint && known.includes(hint)
        ? hint
        : packCode !== null
        ? "credit_pack_not_purchasable"
        : "plan_not_purchasable";
      // A private plan the organization is not assigned to answers as an unknown plan (no leak).
      const notFound = packCode !== null ? "credit_pack_not_found" : "plan_not_found";
      throw sqlError(e, { P0002: [404, notFound], "55000": [409, code] });
    }
    const common = {
      provider: adapter.name,
      billing_order_id: order.order_id,
      receipt: order.receipt,
      amount_cents: Number(order.amount_cents),
      currency: order.currency,
    };

    // A discount that covers the whole price: the order was paid at once (its zero invoice too).
    if (order.status === "paid" && Number(order.amount_cents) === 0) {
      return json({ ...common, provider: "manual", status: "paid" });
    }

    try {
      const started = await adapter.startCheckout(order, context);
      if (started.attach) {
        const { provider_order_id, provider_subscription_id, provider_customer_id = null, replaces_customer_id = null } =
          started.attach;
        // A newer checkout of the organization may have superseded this order while the provider's
        // checkout was being made (55000: no longer waiting for it): 409, and the provider's
        // checkout is never handed out, so nobody can pay it.
        await asService((tx) =>
          tx`select billing.attach_provider_checkout(${order.order_id}, ${provider_order_id}, ${provider_subscription_id},
            ${provider_customer_id}, ${replaces_customer_id})`
        ).catch((e) => {
          throw sqlError(e, {
            "55000": [409, "checkout_superseded"],
          });
        });
      }
      return json({ ...common, ...started.answer });
    } catch (e) {
      // The buyer never got a payable checkout: close our order so nothing can pay it.
      await asService((tx) =>
        tx`select billing.cancel_checkout_order(${order.order_id}, ${String((e as Error)?.message ?? e)})`
      ).catch(() => {});
      throw providerHttpError(e);
    }
  });
}

export const handler: Handler = checkoutHandler();
