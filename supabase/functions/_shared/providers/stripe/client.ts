// The Stripe API client: one `call(method, path, params, {idempotencyKey})` over fetch (form-encoded
// parameters, Bearer auth, the API version pinned, a timeout, errors mapped to ProviderError with
// Stripe's status, code and Retry-After), and typed calls on top of it. A new endpoint is one more
// method here built on `call`.
//
// Env: STRIPE_SECRET_KEY (sk_...), STRIPE_API_BASE (default https://api.stripe.com; the fake
// upstreams serve it under <fake url>/stripe).

import { type EnvGetter, envUrl, fetchProviderJson, ProviderError, requireEnv } from "../types.ts";
import { isObject, str } from "./read.ts";

export const STRIPE_DEFAULT_API_BASE = "https://api.stripe.com";
/**
 * The API version every call pins (Stripe-Version), so object shapes do not move with the
 * account's default: the version of the stripe npm package the tests use as their oracle.
 */
export const STRIPE_API_VERSION = "2026-11-18.endive";
const DEFAULT_TIMEOUT_MS = 10_000;

/** What Stripe ids look like (cus_, cs_, sub_, in_, pi_, ch_, re_, dp_, evt_, price_, coupon ids); anything else is refused before it reaches a URL. */
export const STRIPE_ID = /^[A-Za-z0-9_]{1,255}$/;

export type StripeParams = Record<string, unknown>;
export type StripeObject = Record<string, unknown> & { id: string; object: string };

export interface StripeList<T = StripeObject> {
  object: "list";
  data: T[];
  has_more: boolean;
  [k: string]: unknown;
}

export interface StripeCallOptions {
  /** Sent as Idempotency-Key: a retry with the same key and parameters gets the first answer (24 h). */
  idempotencyKey?: string;
}

/**
 * Form-encodes Stripe parameters: nested objects as `a[b]=`, arrays as `a[0][b]=` (or `a[0]=`),
 * booleans as true/false; undefined is left out, null sent empty (Stripe's "unset").
 */
export function stripeForm(params: StripeParams): URLSearchParams {
  const form = new URLSearchParams();
  const add = (key: string, value: unknown) => {
    if (value === undefined) return;
    if (value === null) form.append(key, "");
    else if (Array.isArray(value)) value.forEach((v, i) => add(`${key}[${i}]`, v));
    else if (isObject(value)) { for (const [k, v] of Object.entries(value)) add(`${key}[${k}]`, v); }
    else form.append(key, String(value));
  };
  for (const [k, v] of Object.entries(params)) add(k, v);
  return form;
}

export interface StripeClient {
  /**
   * One API call: GET/DELETE parameters go in the query, POST parameters in the form body.
   * Non-2xx answers throw ProviderError("upstream_error") carrying Stripe's status, its error
   * `code` (else its `type`) and Retry-After.
   */
  call<T = StripeObject>(
    method: "GET" | "POST" | "DELETE",
    path: string,
    params?: StripeParams,
    options?: StripeCallOptions,
  ): Promise<T>;
  /** POST /v1/customers. */
  createCustomer(params: StripeParams, idempotencyKey: string): Promise<StripeObject>;
  /** POST /v1/coupons. */
  createCoupon(params: StripeParams, idempotencyKey: string): Promise<StripeObject>;
  /** POST /v1/checkout/sessions. */
  createCheckoutSession(params: StripeParams, idempotencyKey: string): Promise<StripeObject>;
  /** GET /v1/checkout/sessions/:id. */
  retrieveCheckoutSession(id: string, expand?: string[]): Promise<StripeObject>;
  /** GET /v1/subscriptions/:id: the subscription as Stripe has it now. */
  retrieveSubscription(id: string, expand?: string[]): Promise<StripeObject>;
  /** GET /v1/invoices/:id. */
  retrieveInvoice(id: string, expand?: string[]): Promise<StripeObject>;
  /** GET /v1/events: newest first; `createdAfter` filters on created[gt]. */
  listEvents(
    query?: { createdAfter?: number; limit?: number; startingAfter?: string; type?: string },
  ): Promise<
    StripeList
  >;
}

/** Refuses an id that is not a Stripe id before it is put in a path. */
export function checkStripeId(id: string): string {
  if (!STRIPE_ID.test(id)) throw new ProviderError(400, "invalid_input", "malformed Stripe id");
  return id;
}

/**
 * The Stripe client over fetch. Reads STRIPE_SECRET_KEY and STRIPE_API_BASE when called (a
 * missing key -> provider_not_configured).
 */
export function createStripeClient(
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): StripeClient {
  async function call<T>(
    method: "GET" | "POST" | "DELETE",
    path: string,
    params: StripeParams = {},
    callOptions: StripeCallOptions = {},
  ): Promise<T> {
    const key = requireEnv(env, "STRIPE_SECRET_KEY");
    const base = envUrl(env, "STRIPE_API_BASE", STRIPE_DEFAULT_API_BASE);
    const headers: Record<string, string> = {
      authorization: `Bearer ${key}`,
      accept: "application/json",
      "stripe-version": STRIPE_API_VERSION,
    };
    const form = stripeForm(params);
    let url = `${base}${path}`;
    let body: string | undefined;
    if (method === "POST") {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = form.toString();
    } else if ([...form.keys()].length > 0) {
      url += `${path.includes("?") ? "&" : "?"}${form.toString()}`;
    }
    if (callOptions.idempotencyKey) headers["idempotency-key"] = callOptions.idempotencyKey;
    return await fetchProviderJson("Stripe", url, { method, headers, body }, {
      fetch: options.fetch,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      errorFields: (json) => {
        const err = isObject(json) && isObject(json.error) ? json.error : {};
        return {
          message: typeof err.message === "string" ? err.message : null,
          code: str(err.code) ?? str(err.type),
        };
      },
    }) as T;
  }

  async function retrieve(kind: string, path: string, id: string, expand?: string[]): Promise<StripeObject> {
    const object = await call<StripeObject>("GET", `${path}/${checkStripeId(id)}`, expand ? { expand } : {});
    if (object.id !== id || object.object !== kind) {
      throw new ProviderError(502, "invalid_upstream_response", `Stripe answered another ${kind}`);
    }
    return object;
  }

  async function create(kind: string, path: string, params: StripeParams, idempotencyKey: string) {
    const object = await call<StripeObject>("POST", path, params, { idempotencyKey });
    if (typeof object.id !== "string" || object.object !== kind) {
      throw new ProviderError(
        502,
        "invalid_upstream_response",
        `Stripe answered something other than a ${kind}`,
      );
    }
    return object;
  }

  return {
    call,
    createCustomer: (params, key) => create("customer", "/v1/customers", params, key),
    createCoupon: (params, key) => create("coupon", "/v1/coupons", params, key),
    createCheckoutSession: (params, key) => create("checkout.session", "/v1/checkout/sessions", params, key),
    retrieveCheckoutSession: (id, expand) =>
      retrieve("checkout.session", "/v1/checkout/sessions", id, expand),
    retrieveSubscription: (id, expand) => retrieve("subscription", "/v1/subscriptions", id, expand),
    retrieveInvoice: (id, expand) => retrieve("invoice", "/v1/invoices", id, expand),
    async listEvents(query = {}) {
      const list = await call<StripeList>("GET", "/v1/events", {
        ...(query.createdAfter !== undefined ? { created: { gt: query.createdAfter } } : {}),
        limit: query.limit ?? 100,
        ...(query.startingAfter ? { starting_after: query.startingAfter } : {}),
        ...(query.type ? { type: query.type } : {}),
      });
      if (!Array.isArray(list.data)) {
        throw new ProviderError(502, "invalid_upstream_response", "Stripe list has no data");
      }
      return list;
    },
  };
}
