// Stripe's customer portal: a portal session for the organization's customer, under one portal
// configuration of ours: the payment method, invoices and cancel at the period end; plan
// switching off (it would bypass our proration and GST: plans change through change_plan).
//
// The configuration: STRIPE_PORTAL_CONFIGURATION (bpc_...) when set; else the one this deployment
// made and kept (billing.provider_settings 'portal_configuration'), else made now (POST
// /v1/billing_portal/configurations) and kept, so it is made once, not once per session (an
// Idempotency-Key alone would only cover Stripe's 24 hours).

import { type EnvGetter, readEnv } from "../../env.ts";
import { ProviderError, type ProviderSettings } from "../types.ts";
import { checkStripeId, type StripeClient, type StripeParams } from "./client.ts";
import { str } from "./read.ts";

/** What our portal configuration allows (sent as is when it is made). */
export const STRIPE_PORTAL_FEATURES: StripeParams = {
  customer_update: { enabled: true, allowed_updates: ["email", "address", "name", "phone"] },
  invoice_history: { enabled: true },
  payment_method_update: { enabled: true },
  subscription_cancel: { enabled: true, mode: "at_period_end", proration_behavior: "none" },
  subscription_update: { enabled: false },
};

export const STRIPE_PORTAL_SETTING = "portal_configuration";

async function portalConfiguration(client: StripeClient, env: EnvGetter, settings: ProviderSettings): Promise<string> {
  const fromEnv = readEnv(env, "STRIPE_PORTAL_CONFIGURATION");
  if (fromEnv) return checkStripeId(fromEnv);
  const kept = await settings.get(STRIPE_PORTAL_SETTING);
  if (kept) return kept;
  const made = await client.call("POST", "/v1/billing_portal/configurations", {
    business_profile: { headline: "Manage your payment method and invoices" },
    features: STRIPE_PORTAL_FEATURES,
    metadata: { made_by: "supabill" },
  }, { idempotencyKey: "supabill-portal-configuration" });
  if (typeof made.id !== "string" || made.object !== "billing_portal.configuration") {
    throw new ProviderError(502, "invalid_upstream_response", "Stripe answered something other than a portal configuration");
  }
  return await settings.keep(STRIPE_PORTAL_SETTING, made.id);
}

/** A portal session for `customerId` returning to `returnUrl`: its URL. Throws ProviderError. */
export async function createStripePortalSession(
  customerId: string,
  returnUrl: string,
  settings: ProviderSettings,
  client: StripeClient,
  env: EnvGetter,
): Promise<{ url: string }> {
  const configuration = await portalConfiguration(client, env, settings);
  const session = await client.call("POST", "/v1/billing_portal/sessions", {
    customer: checkStripeId(customerId),
    configuration,
    return_url: returnUrl,
  });
  const url = str(session.url);
  if (!url || !url.startsWith("https://")) {
    throw new ProviderError(502, "invalid_upstream_response", "Stripe answered a portal session without a URL");
  }
  return { url };
}
