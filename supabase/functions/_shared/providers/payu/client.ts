// The PayU command API client: configuration from the environment, and one command posted with
// its hash, answered as JSON (verify_payment, cancel_refund_transaction, getAllRefundsFromTxnIds,
// check_action_status).
//
// Env: PAYU_MERCHANT_KEY, PAYU_MERCHANT_SALT, PAYU_BASE_URL (default https://test.payu.in; live
// checkout is https://secure.payu.in and the live command API https://info.payu.in: set
// PAYU_API_BASE_URL for the latter, it defaults to PAYU_BASE_URL).

import { type EnvGetter, envUrl, fetchProviderJson, requireEnv } from "../types.ts";
import { commandHash } from "./signature.ts";

export const PAYU_DEFAULT_BASE_URL = "https://test.payu.in";
const DEFAULT_TIMEOUT_MS = 10_000;

export interface PayuConfig {
  key: string;
  salt: string;
  baseUrl: string;
  apiBaseUrl: string;
}

/** Reads PAYU_MERCHANT_KEY, PAYU_MERCHANT_SALT, PAYU_BASE_URL, PAYU_API_BASE_URL; throws provider_not_configured. */
export function payuConfig(env: EnvGetter): PayuConfig {
  const baseUrl = envUrl(env, "PAYU_BASE_URL", PAYU_DEFAULT_BASE_URL);
  return {
    key: requireEnv(env, "PAYU_MERCHANT_KEY"),
    salt: requireEnv(env, "PAYU_MERCHANT_SALT"),
    baseUrl,
    apiBaseUrl: envUrl(env, "PAYU_API_BASE_URL", baseUrl),
  };
}

/**
 * One command of PayU's command API: a form POST to `${PAYU_API_BASE_URL}/merchant/postservice.php?form=2`
 * with key, command, var1.. and hash = sha512(key|command|var1|SALT); returns the parsed JSON answer.
 * Throws ProviderError: no answer (timeout, unreachable), non-2xx (upstream_error with the status
 * and its Retry-After), non-JSON (invalid_upstream_response).
 */
export async function payuCommand(
  command: string,
  vars: { var1: string; var2?: string; var3?: string },
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<Record<string, unknown>> {
  const config = payuConfig(env);
  const form: Record<string, string> = { key: config.key, command, var1: vars.var1 };
  if (vars.var2 !== undefined) form.var2 = vars.var2;
  if (vars.var3 !== undefined) form.var3 = vars.var3;
  form.hash = await commandHash(config.key, command, vars.var1, config.salt);
  return await fetchProviderJson("PayU", `${config.apiBaseUrl}/merchant/postservice.php?form=2`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams(form),
  }, {
    fetch: options.fetch,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    errorFields: (json) => {
      const msg = (json as { msg?: unknown })?.msg;
      return { message: typeof msg === "string" && msg !== "" ? msg : null, code: null };
    },
    nonJson: "answered with non-JSON",
  });
}

/** A PayU answer of status 0 that refuses the request itself (key, hash, parameters), not "nothing found". */
export const REFUSED_REQUEST = /hash|key|parameter|command|access|authori[sz]/i;
