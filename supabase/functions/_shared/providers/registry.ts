// The provider registry: provider name -> adapter. The payment functions look providers up here
// and never branch on a provider's name. A provider is one adapter (a file, or a folder whose
// index.ts assembles it from its parts, as razorpay/ and payu/ do) plus one line below (and its value of
// the public.payment_provider enum in SQL).
import { denoEnv, type EnvGetter } from "../env.ts";
import { createPayuAdapter } from "./payu/index.ts";
import { createRazorpayAdapter } from "./razorpay/index.ts";
import { createStripeAdapter } from "./stripe/index.ts";
import type { ProviderAdapter, ProviderName } from "./types.ts";

/** Adapters by name: a lookup that answers only for registered providers. */
export class ProviderRegistry {
  readonly #adapters = new Map<ProviderName, ProviderAdapter>();

  constructor(adapters: Iterable<ProviderAdapter> = []) {
    for (const adapter of adapters) this.register(adapter);
  }

  /** Adds (or replaces) the adapter under its own name. */
  register(adapter: ProviderAdapter): this {
    this.#adapters.set(adapter.name, adapter);
    return this;
  }

  /** The adapter for `name`, or undefined (also for non-strings, so a request body can be passed as is). */
  get(name: unknown): ProviderAdapter | undefined {
    return typeof name === "string" ? this.#adapters.get(name) : undefined;
  }

  /** The adapter for `name`; throws when none is registered (a wiring mistake, not a client's). */
  require(name: ProviderName): ProviderAdapter {
    const adapter = this.#adapters.get(name);
    if (!adapter) throw new Error(`no payment provider named ${name} is registered`);
    return adapter;
  }

  /** The registered names, sorted. */
  names(): ProviderName[] {
    return [...this.#adapters.keys()].sort();
  }
}

/** The built-in providers, reading their settings from `env` at each call. */
export function createProviderRegistry(
  env: EnvGetter = denoEnv,
  options: { fetch?: typeof fetch } = {},
): ProviderRegistry {
  return new ProviderRegistry([
    createPayuAdapter(env, options),
    createRazorpayAdapter(env, options),
    createStripeAdapter(env, options),
  ]);
}

/** The functions' registry (Deno's env). */
export const providers: ProviderRegistry = createProviderRegistry();
