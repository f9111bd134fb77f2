// Stripe checkout: the customer, the coupon and the Checkout Session for one of our orders.
// Filled in by the checkout work.

import {
  type Checkout,
  type CheckoutContext,
  type CheckoutOrder,
  type CheckoutOrderRow,
  ProviderError,
  type StartedCheckout,
} from "../types.ts";
import type { StripeClient } from "./client.ts";

export function createStripeCheckout(_order: CheckoutOrder, _client: StripeClient): Promise<Checkout> {
  return Promise.reject(new ProviderError(400, "invalid_input", "Stripe checkout starts from an order (startCheckout)"));
}

export function startStripeCheckout(
  _order: CheckoutOrderRow,
  _context: CheckoutContext,
  _client: StripeClient,
): Promise<StartedCheckout> {
  return Promise.reject(new ProviderError(503, "provider_not_configured", "Stripe checkout is not built yet"));
}
