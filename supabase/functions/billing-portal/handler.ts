// POST /functions/v1/billing-portal (signed in; verify_jwt = false: requireUser checks the token
// first): an owner or admin (the rule of checkout: the portal shows the payment method and
// invoices, and cancels) opens the provider's customer portal for the organization. Body
// {organization_id, provider? (default "stripe"), return_url?}. One SQL call, as the user
// (public.get_billing_portal_customer: the role, and the organization's customer at the provider),
// then the adapter's createPortalSession: 200 {url} (send the browser there).
// return_url must be on the origin of billing_settings.app_success_url or of APP_URL (default: the
// first of them), so nobody can use our portal to send a customer elsewhere.
// Errors: 400 invalid_input | malformed_json | invalid_provider (no such provider, or one without a
// portal) | invalid_return_url, 401 (no user), 403 forbidden (not an owner or admin), 404
// no_provider_customer (the organization never checked out with the provider), 422
// provider_not_configured | no_return_url (neither setting is set and no return_url came),
// 502/504 upstream_*.
import { requireUser } from "../_shared/auth.ts";
import { asService, asUser, sqlError } from "../_shared/db.ts";
import { denoEnv, type EnvGetter, readEnv } from "../_shared/env.ts";
import { handle, type Handler, HttpError, json, readJson, uuidField } from "../_shared/http.ts";
import { providerHttpError } from "../_shared/payments.ts";
import { providers as builtIn, type ProviderRegistry } from "../_shared/providers/registry.ts";
import type { ProviderSettings } from "../_shared/providers/types.ts";

function originOf(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    return u.protocol === "https:" || u.protocol === "http:" ? u.origin : null;
  } catch {
    return null;
  }
}

/** billing.provider_settings for one provider, each call its own short transaction. */
function settingsOf(provider: string): ProviderSettings {
  return {
    async get(name) {
      const [row] = await asService((tx) => tx`select billing.provider_setting(${provider}::public.payment_provider, ${name}) as value`);
      return (row?.value as string | null) ?? null;
    },
    async keep(name, value) {
      const [row] = await asService((tx) =>
        tx`select billing.keep_provider_setting(${provider}::public.payment_provider, ${name}, ${value}) as value`
      );
      return row.value as string;
    },
  };
}

export function billingPortalHandler(registry: ProviderRegistry = builtIn, env: EnvGetter = denoEnv): Handler {
  return handle("billing-portal", async (req) => {
    if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
    const claims = await requireUser(req, env);
    const body = await readJson(req, 4 * 1024);
    const organizationId = uuidField(body, "organization_id");
    const adapter = registry.get(body.provider ?? "stripe");
    if (!adapter?.createPortalSession) {
      throw new HttpError(400, "invalid_provider", "provider must name a provider with a customer portal (\"stripe\")");
    }
    if (body.return_url !== undefined && typeof body.return_url !== "string") {
      throw new HttpError(400, "invalid_return_url", "return_url must be a URL");
    }

    let customerId: string;
    try {
      const [row] = await asUser(claims, (tx) =>
        tx`select public.get_billing_portal_customer(${organizationId}, ${adapter.name}) as customer`
      );
      customerId = row.customer as string;
    } catch (e) {
      throw sqlError(e, { P0002: [404, "no_provider_customer"] });
    }

    const [settings] = await asService((tx) => tx`select app_success_url from public.billing_settings where id`);
    const allowed = [originOf(settings?.app_success_url as string | null), originOf(readEnv(env, "APP_URL"))]
      .filter((o): o is string => o !== null);
    let returnUrl: string;
    if (typeof body.return_url === "string") {
      if (!allowed.includes(originOf(body.return_url) ?? "")) {
        throw new HttpError(400, "invalid_return_url", "return_url must be on the app's own origin");
      }
      returnUrl = body.return_url;
    } else {
      const fallback = (settings?.app_success_url as string | null) ?? readEnv(env, "APP_URL");
      if (!fallback) throw new HttpError(422, "no_return_url", "give return_url (no app URL is configured)");
      returnUrl = fallback;
    }

    try {
      const { url } = await adapter.createPortalSession(customerId, returnUrl, settingsOf(adapter.name));
      return json({ url });
    } catch (e) {
      throw providerHttpError(e, 422);
    }
  });
}

export const handler: Handler = billingPortalHandler();
