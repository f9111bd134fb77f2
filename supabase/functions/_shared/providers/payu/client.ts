// The PayU command API client: configuration from the environment, and one command posted with
// its hash, answered as JSON (verify_payment, cancel_refund_transaction, getAllRefundsFromTxnIds,
// check_action_status).
//
// Env: PAYU_MERCHANT_KEY, PAYU_MERCHANT_SALT, PAYU_BASE_URL (default https://test.payu.in; live
// checkout is https://secure.payu.in and the live command API https://info.payu.in: set
// PAYU_API_BASE_URL for the latter, it defaults to PAYU_BASE_URL).

import { type EnvGetter, envUrl, networkError, ProviderError, requireEnv, retryAfterSeconds } from "../types.ts";
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
  const doFetch = options.fetch ?? fetch;
  let res: Response;
  let text: string;
  try {
    res = await doFetch(`${config.apiBaseUrl}/merchant/postservice.php?form=2`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams(form),
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
    text = await res.text();
  } catch (e) {
    throw networkError(e, "PayU");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const msg = (json as { msg?: unknown })?.msg;
    throw new ProviderError(
      502,
      "upstream_error",
      `PayU answered ${res.status}${typeof msg === "string" && msg !== "" ? `: ${msg}` : ""}`,
      res.status,
      null,
      retryAfterSeconds(res.headers.get("retry-after")),
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ProviderError(502, "invalid_upstream_response", "PayU answered with non-JSON");
  }
  return json as Record<string, unknown>;
}

/** A PayU answer of status 0 that refuses the request itself (key, hash, parameters), not "nothing found". */
export const REFUSED_REQUEST = /hash|key|parameter|command|access|authori[sz]/i;
