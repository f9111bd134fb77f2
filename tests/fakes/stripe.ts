// A fake of the Stripe API, served by the fake upstreams (tests/fakes/upstreams.ts) on loopback under
// the path prefix /stripe (STRIPE_API_BASE=<fake url>/stripe): under `npm start` it is where
// checkout creates sessions when STRIPE_SECRET_KEY is unset; in tests it records every call, fails
// on demand, plays what Stripe does when a buyer pays, a subscription renews, a refund or a dispute
// is made in the dashboard, and delivers the resulting events signed to a webhook URL.
//
//   Stripe    (Bearer auth with the secret key; form-encoded bodies; Idempotency-Key honoured on
//             POST: the same key with the same parameters answers the first answer again, with
//             other parameters 400 idempotency_error)
//             POST /stripe/v1/customers                 GET /stripe/v1/customers/:id (deleted: {deleted: true})
//             DELETE /stripe/v1/customers/:id           as in the dashboard: later calls naming it 404
//             POST /stripe/v1/coupons                   GET /stripe/v1/coupons/:id
//             GET  /stripe/v1/prices/:id                (prices seeded by control, or made by price_data)
//             POST /stripe/v1/checkout/sessions         GET /stripe/v1/checkout/sessions/:id
//             POST /stripe/v1/checkout/sessions/:id/expire
//             GET  /stripe/v1/subscriptions/:id         GET /stripe/v1/invoices/:id
//             GET  /stripe/v1/payment_intents/:id       GET /stripe/v1/charges/:id
//             GET  /stripe/v1/refunds?charge=&payment_intent=   GET /stripe/v1/refunds/:id
//             GET  /stripe/v1/disputes/:id
//             GET  /stripe/v1/events?created[gt]=&limit=&starting_after=&type=   (newest first)
//             GET  /stripe/v1/events/:id
//             POST /stripe/v1/subscriptions/:id         {cancel_at_period_end?, items[0][id, price | price_data]?,
//                                                     proration_behavior?, trial_end? (the next charge then),
//                                                     metadata?}: customer.subscription.updated (a new price
//                                                     is what later invoices charge; no proration here)
//             DELETE /stripe/v1/subscriptions/:id       canceled now: customer.subscription.deleted
//             DELETE /stripe/v1/subscriptions/:id/discount   its coupon off (404 when it has none)
//             GET|DELETE /stripe/v1/invoiceitems/:id    (delete: only while no invoice holds it)
//             POST /stripe/v1/invoiceitems              {customer, subscription?, amount, currency, description?,
//                                                     metadata?}: pending until an invoice takes it
//             GET  /stripe/v1/invoices?subscription=&customer=&status=   (newest first)
//             POST /stripe/v1/invoices                  {customer, subscription?, pending_invoice_items_behavior,
//                                                     metadata?}: a draft of the pending items (billing_reason
//                                                     manual); invoice.created
//             POST /stripe/v1/invoices/:id/pay          paid now (PaymentIntent, Charge): invoice.finalized,
//                                                     charge.succeeded, payment_intent.succeeded, invoice.paid,
//                                                     invoice.payment_succeeded; declined (see control
//                                                     decline_invoice_pay): the invoice stays open, 402
//                                                     card_declined, invoice.payment_failed
//             POST /stripe/v1/invoices/:id/void         an open invoice void: invoice.voided
//             DELETE /stripe/v1/invoices/:id            a draft deleted (its items pending again)
//             POST /stripe/v1/refunds                   {payment_intent | charge, amount?, metadata?, reason?}:
//                                                     succeeded at once: refund.created, charge.refunded
//             POST /stripe/v1/billing_portal/configurations   {features, business_profile?, metadata?}
//             GET  /stripe/v1/billing_portal/configurations/:id
//             POST /stripe/v1/billing_portal/sessions   {customer, configuration?, return_url?}: url
//                                                     https://billing.stripe.com/p/session/test_...
//   Control   POST /__control/stripe                   {fail_status, fail_count, fail_message, fail_code,
//                                                     fail_retry_after, fail_routes, webhook_url, reset}
//                                                     (fail_status for the next fail_count calls, every
//                                                     call when omitted, of the routes whose name starts
//                                                     with one of fail_routes (e.g. "checkout.sessions.create",
//                                                     "subscriptions.") or whose path holds one; 429 carries
//                                                     Retry-After: fail_retry_after; answers in Stripe's
//                                                     error shape {error: {type, code, message, param}};
//                                                     fail_after: true does the work first, then fails:
//                                                     Stripe made it and the answer was lost;
//                                                     decline_invoice_pay: n, the card declines the next n
//                                                     invoice payments as Stripe does; delay_ms (0: off)
//                                                     and delay_routes: those calls answer that late)
//             GET  /__control/stripe/calls[?route=prefix]  every API call, in order: {route, method, path,
//                                                     body (the form, decoded), idempotency_key, status, at}
//             GET  /__control/stripe/state              every object the fake holds, and its events
//             POST /__control/stripe/prices             price or [prices] to seed: {id, unit_amount,
//                                                     currency, recurring?: {interval, interval_count?}}
//             POST /__control/stripe/checkout/complete {session_id, outcome?: "paid" | "async_paid" |
//                                                     "async_failed", deliver?}: the buyer paid the session:
//                                                     a payment: its PaymentIntent and Charge; a
//                                                     subscription: the customer's subscription, its
//                                                     first invoice (billing_reason subscription_create)
//                                                     paid, PaymentIntent and Charge. "async_*": the
//                                                     session completes unpaid, then its async event.
//             POST /__control/stripe/subscriptions/renew {subscription_id, outcome?: "paid" | "failed",
//                                                     deliver?}: the next invoice of the cycle (or the
//                                                     open one, retried) paid (the period moves on,
//                                                     active) or failed (past_due, the invoice open)
//             POST /__control/stripe/subscriptions/update {subscription_id, status?, cancel_at_period_end?,
//                                                     deliver?}: changed in the dashboard
//             POST /__control/stripe/refunds           {charge | payment_intent, amount?, deliver?}: a
//                                                     refund made in the dashboard (succeeded)
//             POST /__control/stripe/disputes          {charge | payment_intent, amount?, deliver?} opens
//                                                     one; {dispute_id, status: "won" | "lost", deliver?}
//                                                     closes it
//             POST /__control/stripe/deliver           {event_ids, ...delivery options}: delivers stored events
//
// Every change records Stripe events (stored for GET /v1/events) and answers {events: [ids], ...,
// deliveries?}. Delivery options (`deliver` on a change, or the body of /deliver): {url? (default the
// configured webhook_url), duplicate? (each event twice), reverse? (newest first), same_second?
// (every event's `created` set to the first one's), timestamp_offset? (seconds added to the
// signature's timestamp, e.g. -600: an expired signature), types? (only these event types)}.
// Signatures are made here as Stripe makes them: `Stripe-Signature: t=<seconds>,v1=<hex HMAC-SHA256
// of "<t>.<body>" with the webhook secret>`. Times (created, periods) follow the fakes' clock; the
// signature's t is real time (the webhook's tolerance is checked against the real clock).
import { randomBytes } from "./random.ts";

type Json = Record<string, unknown>;

export interface StripeCall {
  route: string;
  method: string;
  path: string;
  body: Json;
  idempotency_key: string | null;
  status: number | null;
  at: string;
}

export interface DeliveryOptions {
  url?: string;
  duplicate?: boolean;
  reverse?: boolean;
  same_second?: boolean;
  timestamp_offset?: number;
  types?: string[];
}

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const API_VERSION = "2026-11-18.endive";

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "request-id": `req_${rand()}`, ...headers },
  });
}

function rand(n = 14): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return [...randomBytes(n)].map((b) => alphabet[b % alphabet.length]).join("");
}

function stripeError(
  status: number,
  type: string,
  message: string,
  code: string | null = null,
  param: string | null = null,
  headers: Record<string, string> = {},
): Response {
  return json({ error: { type, message, ...(code ? { code } : {}), ...(param ? { param } : {}) } }, status, headers);
}

/** Decodes Stripe's form encoding (`a[b][c]=`, `a[0][b]=`) into nested objects and arrays. */
export function parseStripeForm(params: URLSearchParams): Json {
  const root: Json = {};
  for (const [key, value] of params) {
    const parts = key.replace(/\]/g, "").split("[");
    let cur: Json = root;
    parts.forEach((part, i) => {
      if (i === parts.length - 1) cur[part] = value;
      else {
        if (!isObject(cur[part])) cur[part] = {};
        cur = cur[part] as Json;
      }
    });
  }
  // Objects whose keys are 0..n-1 are arrays.
  const arrays = (v: unknown): unknown => {
    if (!isObject(v)) return v;
    const keys = Object.keys(v);
    const out = Object.fromEntries(keys.map((k) => [k, arrays(v[k])]));
    if (keys.length > 0 && keys.every((k, i) => k === String(i))) return keys.map((k) => out[k]);
    return out;
  };
  return arrays(root) as Json;
}

async function hmacHex(secret: string, message: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(message)));
  return [...sig].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The Stripe-Signature header Stripe sends for `body` at `t` (seconds). */
export async function fakeStripeSignature(body: string, secret: string, t: number): Promise<string> {
  return `t=${t},v1=${await hmacHex(secret, `${t}.${body}`)}`;
}

function addInterval(seconds: number, interval: string, count: number): number {
  const d = new Date(seconds * 1000);
  if (interval === "year") d.setUTCFullYear(d.getUTCFullYear() + count);
  else if (interval === "month") d.setUTCMonth(d.getUTCMonth() + count);
  else if (interval === "week") d.setUTCDate(d.getUTCDate() + 7 * count);
  else d.setUTCDate(d.getUTCDate() + count);
  return Math.floor(d.getTime() / 1000);
}

const int = (v: unknown): number | null =>
  typeof v === "number" ? v : typeof v === "string" && /^-?[0-9]+$/.test(v) ? Number(v) : null;

interface Failure {
  status: number | null;
  count: number | null;
  message: string | null;
  code: string | null;
  retryAfter: number | null;
  routes: string[] | null;
  /** The route does its work first, then the failure is answered (Stripe made it; the answer was lost). */
  after: boolean;
}

type Route = {
  method: string;
  pattern: RegExp;
  name: string;
  run: (m: RegExpExecArray, body: Json, query: URLSearchParams) => Response | Promise<Response>;
};

/** The fake's state and routes; handle() answers null for a path that is not its own. */
export function createFakeStripe(
  { secretKey, webhookSecret, now = () => Date.now() }: {
    secretKey: string;
    webhookSecret: string;
    now?: () => number;
  },
) {
  const secs = () => Math.floor(now() / 1000);
  let objects = new Map<string, Json>();
  let events: Json[] = [];
  let calls: StripeCall[] = [];
  let idempotency = new Map<string, { fingerprint: string; status: number; body: string }>();
  let failure: Failure = { status: null, count: null, message: null, code: null, retryAfter: null, routes: null, after: false };
  let webhookUrl: string | null = null;
  // How many of the next invoice payments (POST /v1/invoices/:id/pay) the card declines.
  let invoiceDeclines = 0;
  // Customers deleted (in the dashboard, DELETE /v1/customers/:id): other calls no longer find them.
  let deletedCustomers = new Set<string>();
  // A slow Stripe: API calls of these routes (all when null) answer after delay.ms.
  let delay: { ms: number; routes: string[] | null } = { ms: 0, routes: null };

  function reset() {
    objects = new Map();
    events = [];
    calls = [];
    idempotency = new Map();
    failure = { status: null, count: null, message: null, code: null, retryAfter: null, routes: null, after: false };
    webhookUrl = null;
    invoiceDeclines = 0;
    deletedCustomers = new Set();
    delay = { ms: 0, routes: null };
  }

  const put = (o: Json) => {
    objects.set(o.id as string, o);
    return o;
  };
  const get = (id: string, object?: string): Json | null => {
    const o = objects.get(id);
    return o && (!object || o.object === object) ? o : null;
  };
  const all = (object: string) => [...objects.values()].filter((o) => o.object === object);
  const missing = (what: string, id: string, param = "id") =>
    stripeError(404, "invalid_request_error", `No such ${what}: '${id}'`, "resource_missing", param);
  const snapshot = (o: Json) => structuredClone(o);

  /** Records one event of `type` with a snapshot of `object`. */
  function emit(type: string, object: Json, previous?: Json): Json {
    const event: Json = {
      id: `evt_${rand(24)}`,
      object: "event",
      api_version: API_VERSION,
      created: secs(),
      data: { object: snapshot(object), ...(previous ? { previous_attributes: previous } : {}) },
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      type,
    };
    events.push(event);
    return event;
  }

  // ---------------------------------------------------------------------------------------------
  // Objects Stripe makes when money moves

  function paymentIntentAndCharge(
    amount: number,
    currency: string,
    customer: string | null,
    metadata: Json,
    description: string | null,
  ): { pi: Json; charge: Json } {
    const piId = `pi_${rand(24)}`;
    const charge = put({
      id: `ch_${rand(24)}`,
      object: "charge",
      amount,
      amount_captured: amount,
      amount_refunded: 0,
      captured: true,
      created: secs(),
      currency,
      customer,
      description,
      disputed: false,
      metadata,
      paid: true,
      payment_intent: piId,
      payment_method_details: { type: "card" },
      refunded: false,
      status: "succeeded",
    });
    const pi = put({
      id: piId,
      object: "payment_intent",
      amount,
      amount_received: amount,
      created: secs(),
      currency,
      customer,
      latest_charge: charge.id,
      metadata,
      payment_method_types: ["card"],
      status: "succeeded",
    });
    return { pi, charge };
  }

  function failedPaymentIntent(amount: number, currency: string, customer: string | null, metadata: Json): Json {
    return put({
      id: `pi_${rand(24)}`,
      object: "payment_intent",
      amount,
      amount_received: 0,
      created: secs(),
      currency,
      customer,
      latest_charge: null,
      metadata,
      last_payment_error: { code: "card_declined", decline_code: "insufficient_funds", message: "Your card has insufficient funds." },
      status: "requires_payment_method",
    });
  }

  function subscriptionItem(sub: Json): Json {
    return ((sub.items as Json).data as Json[])[0];
  }

  /**
   * The subscription's next invoice, for the period starting at `start`: `amount` for the price, and,
   * as Stripe does, every invoice item of the subscription still pending (no invoice holds it).
   */
  function newInvoice(sub: Json, reason: string, start: number, amount: number): Json {
    const item = subscriptionItem(sub);
    const price = item.price as Json;
    const recurring = price.recurring as Json;
    const end = addInterval(start, recurring.interval as string, Number(recurring.interval_count ?? 1));
    const pending = all("invoiceitem").filter((ii) => ii.invoice === null && ii.subscription === sub.id);
    const extra = pending.reduce((n, ii) => n + (ii.amount as number), 0);
    const id = `in_${rand(24)}`;
    for (const ii of pending) ii.invoice = id;
    return put({
      id,
      object: "invoice",
      amount_due: amount + extra,
      amount_paid: 0,
      amount_remaining: amount + extra,
      attempt_count: 0,
      attempted: false,
      billing_reason: reason,
      collection_method: "charge_automatically",
      created: secs(),
      currency: price.currency,
      customer: sub.customer,
      lines: {
        object: "list",
        data: [{
          id: `il_${rand(24)}`,
          object: "line_item",
          amount: price.unit_amount,
          currency: price.currency,
          description: `1 × ${String((sub.metadata as Json)?.plan_code ?? "plan")}`,
          period: { start, end },
          pricing: { price_details: { price: price.id } },
          quantity: 1,
        }, ...pending.map((ii) => ({
          id: `il_${rand(24)}`,
          object: "line_item",
          amount: ii.amount,
          currency: ii.currency,
          description: ii.description,
          metadata: ii.metadata,
          pricing: { invoice_item_details: { invoice_item: ii.id } },
          quantity: 1,
        }))],
        has_more: false,
      },
      parent: {
        type: "subscription_details",
        subscription_details: { subscription: sub.id, metadata: snapshot(sub.metadata as Json) },
      },
      payments: { object: "list", data: [], has_more: false },
      period_start: start,
      period_end: end,
      status: "open",
      status_transitions: { finalized_at: secs(), paid_at: null },
      subtotal: (price.unit_amount as number) + extra,
      total: amount + extra,
    });
  }

  /** Pays (or fails) an invoice: its PaymentIntent, the subscription's period and status. Events. */
  function settleInvoice(invoice: Json, sub: Json, paid: boolean): Json[] {
    const out: Json[] = [];
    const metadata = snapshot(sub.metadata as Json);
    invoice.attempt_count = Number(invoice.attempt_count) + 1;
    invoice.attempted = true;
    const line = ((invoice.lines as Json).data as Json[])[0];
    const period = line.period as Json;
    const item = subscriptionItem(sub);
    const before = { status: sub.status };
    if (paid) {
      const { pi, charge } = paymentIntentAndCharge(
        invoice.amount_due as number,
        invoice.currency as string,
        sub.customer as string,
        metadata,
        "Subscription update",
      );
      (invoice.payments as Json).data = [{
        id: `inpay_${rand(20)}`,
        object: "invoice_payment",
        amount_paid: invoice.amount_due,
        invoice: invoice.id,
        is_default: true,
        payment: { type: "payment_intent", payment_intent: pi.id },
        status: "paid",
      }];
      invoice.amount_paid = invoice.amount_due;
      invoice.amount_remaining = 0;
      invoice.status = "paid";
      (invoice.status_transitions as Json).paid_at = secs();
      item.current_period_start = period.start;
      item.current_period_end = period.end;
      sub.status = "active";
      sub.latest_invoice = invoice.id;
      out.push(emit("charge.succeeded", charge), emit("payment_intent.succeeded", pi));
      out.push(emit("invoice.paid", invoice), emit("invoice.payment_succeeded", invoice));
    } else {
      const pi = failedPaymentIntent(invoice.amount_due as number, invoice.currency as string, sub.customer as string, metadata);
      (invoice.payments as Json).data = [{
        id: `inpay_${rand(20)}`,
        object: "invoice_payment",
        amount_paid: null,
        invoice: invoice.id,
        is_default: true,
        payment: { type: "payment_intent", payment_intent: pi.id },
        status: "open",
      }];
      invoice.next_payment_attempt = secs() + 3 * 86400;
      sub.status = sub.status === "incomplete" ? "incomplete" : "past_due";
      sub.latest_invoice = invoice.id;
      out.push(emit("payment_intent.payment_failed", pi), emit("invoice.payment_failed", invoice));
    }
    if (before.status !== sub.status || paid) {
      out.push(emit("customer.subscription.updated", sub, before.status !== sub.status ? before : { items: {} }));
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // Control: what happens at Stripe outside our API calls

  function completeSession(body: Json): Response | Promise<Response> {
    const session = get(String(body.session_id ?? ""), "checkout.session");
    if (!session) return json({ error: "no such session" }, 404);
    if (session.status !== "open") return json({ error: `session is ${session.status}` }, 409);
    const outcome = typeof body.outcome === "string" ? body.outcome : "paid";
    const made: Json[] = [];
    let customer = session.customer as string | null;
    if (!customer) {
      const c = put({ id: `cus_${rand()}`, object: "customer", created: secs(), email: null, metadata: {}, name: null });
      customer = c.id as string;
      session.customer = customer;
      made.push(emit("customer.created", c));
    }
    const amount = session.amount_total as number;
    const currency = session.currency as string;
    session.status = "complete";
    if (session.mode === "subscription") {
      const line = (session.line_items as Json[])[0];
      const price = get(line.price as string, "price")!;
      const sub = put({
        id: `sub_${rand(24)}`,
        object: "subscription",
        cancel_at: null,
        cancel_at_period_end: false,
        canceled_at: null,
        created: secs(),
        currency,
        customer,
        discounts: session.discount_coupon ? [`di_${rand()}`] : [],
        ended_at: null,
        items: {
          object: "list",
          data: [{
            id: `si_${rand()}`,
            object: "subscription_item",
            current_period_start: secs(),
            current_period_end: addInterval(
              secs(),
              (price.recurring as Json).interval as string,
              Number((price.recurring as Json).interval_count ?? 1),
            ),
            price: snapshot(price),
            quantity: 1,
          }],
          has_more: false,
        },
        latest_invoice: null,
        metadata: snapshot((session.subscription_data_metadata as Json) ?? {}),
        status: "incomplete",
        // What later invoices charge: the price, less the coupon while it lasts (forever, or a
        // repeating coupon's duration_in_months from now; a once coupon only the first invoice).
        renewal_amount: session.renewal_amount,
        discount: session.discount_coupon
          ? {
            coupon: session.discount_coupon,
            amount: (session.total_details as Json).amount_discount,
            duration: get(session.discount_coupon as string, "coupon")?.duration,
            end: get(session.discount_coupon as string, "coupon")?.duration === "repeating"
              ? addInterval(secs(), "month", Number(get(session.discount_coupon as string, "coupon")?.duration_in_months ?? 0))
              : null,
          }
          : null,
      });
      session.subscription = sub.id;
      made.push(emit("customer.subscription.created", sub));
      const invoice = newInvoice(sub, "subscription_create", secs(), amount);
      session.invoice = invoice.id;
      if (outcome === "paid") {
        session.payment_status = "paid";
        made.push(...settleInvoice(invoice, sub, true));
        made.push(emit("checkout.session.completed", session));
      } else {
        made.push(emit("checkout.session.completed", session));
      }
    } else {
      const metadata = snapshot((session.payment_intent_data_metadata as Json) ?? session.metadata as Json);
      if (outcome === "paid" || outcome === "async_paid") {
        const { pi, charge } = paymentIntentAndCharge(amount, currency, customer, metadata, null);
        session.payment_intent = pi.id;
        if (outcome === "paid") {
          session.payment_status = "paid";
          made.push(emit("charge.succeeded", charge), emit("payment_intent.succeeded", pi));
          made.push(emit("checkout.session.completed", session));
        } else {
          session.payment_status = "unpaid";
          made.push(emit("checkout.session.completed", session));
          session.payment_status = "paid";
          made.push(emit("charge.succeeded", charge), emit("payment_intent.succeeded", pi));
          made.push(emit("checkout.session.async_payment_succeeded", session));
        }
      } else {
        const pi = failedPaymentIntent(amount, currency, customer, metadata);
        session.payment_intent = pi.id;
        session.payment_status = "unpaid";
        made.push(emit("checkout.session.completed", session));
        made.push(emit("payment_intent.payment_failed", pi));
        made.push(emit("checkout.session.async_payment_failed", session));
      }
    }
    return changed(made, body, { session: snapshot(session) });
  }

  function renew(body: Json): Response | Promise<Response> {
    const sub = get(String(body.subscription_id ?? ""), "subscription");
    if (!sub) return json({ error: "no such subscription" }, 404);
    const paid = body.outcome !== "failed";
    const open = all("invoice").find((i) =>
      i.status === "open" && ((i.parent as Json).subscription_details as Json).subscription === sub.id
    );
    const made: Json[] = [];
    let invoice = open;
    if (!invoice) {
      const start = subscriptionItem(sub).current_period_end as number;
      const d = sub.discount as Json | null;
      const discounted = d !== null && (d.duration === "forever" || (d.duration === "repeating" && start < Number(d.end)));
      invoice = newInvoice(sub, "subscription_cycle", start, (sub.renewal_amount as number) - (discounted ? Number(d.amount) : 0));
      made.push(emit("invoice.created", invoice));
    }
    made.push(...settleInvoice(invoice, sub, paid));
    return changed(made, body, { invoice: snapshot(invoice), subscription: snapshot(sub) });
  }

  function updateSubscription(body: Json): Response | Promise<Response> {
    const sub = get(String(body.subscription_id ?? ""), "subscription");
    if (!sub) return json({ error: "no such subscription" }, 404);
    const previous: Json = {};
    if (typeof body.status === "string") {
      previous.status = sub.status;
      sub.status = body.status;
      if (body.status === "canceled") {
        sub.canceled_at = secs();
        sub.ended_at = secs();
      }
    }
    if (typeof body.cancel_at_period_end === "boolean") {
      previous.cancel_at_period_end = sub.cancel_at_period_end;
      sub.cancel_at_period_end = body.cancel_at_period_end;
    }
    const type = sub.status === "canceled" ? "customer.subscription.deleted" : "customer.subscription.updated";
    return changed([emit(type, sub, previous)], body, { subscription: snapshot(sub) });
  }

  function chargeOf(body: Json): Json | null {
    if (typeof body.charge === "string") return get(body.charge, "charge");
    if (typeof body.payment_intent === "string") {
      const pi = get(body.payment_intent, "payment_intent");
      return pi && typeof pi.latest_charge === "string" ? get(pi.latest_charge, "charge") : null;
    }
    return null;
  }

  function refund(body: Json): Response | Promise<Response> {
    const charge = chargeOf(body);
    if (!charge) return json({ error: "no such charge" }, 404);
    const left = (charge.amount as number) - (charge.amount_refunded as number);
    const amount = int(body.amount) ?? left;
    if (amount <= 0 || amount > left) return json({ error: `refund of ${amount} exceeds ${left}` }, 400);
    const { r, made } = makeRefund(charge, amount, body);
    return changed(made, body, { refund: snapshot(r) });
  }

  /** A refund of `amount` of a charge, succeeded at once, and its events. */
  function makeRefund(charge: Json, amount: number, body: Json): { r: Json; made: Json[] } {
    const r = put({
      id: `re_${rand(24)}`,
      object: "refund",
      amount,
      charge: charge.id,
      created: secs(),
      currency: charge.currency,
      metadata: isObject(body.metadata) ? body.metadata : {},
      payment_intent: charge.payment_intent,
      reason: typeof body.reason === "string" ? body.reason : null,
      status: "succeeded",
    });
    const before = { amount_refunded: charge.amount_refunded, refunded: charge.refunded };
    charge.amount_refunded = (charge.amount_refunded as number) + amount;
    charge.refunded = charge.amount_refunded === charge.amount;
    return { r, made: [emit("refund.created", r), emit("charge.refunded", charge, before)] };
  }

  function dispute(body: Json): Response | Promise<Response> {
    if (typeof body.dispute_id === "string") {
      const d = get(body.dispute_id, "dispute");
      if (!d) return json({ error: "no such dispute" }, 404);
      const status = body.status === "won" ? "won" : "lost";
      const before = { status: d.status };
      d.status = status;
      const made = [emit("charge.dispute.updated", d, before), emit("charge.dispute.closed", d, before)];
      if (status === "lost") {
        const charge = get(d.charge as string, "charge");
        if (charge) charge.disputed = true;
      } else made.push(emit("charge.dispute.funds_reinstated", d));
      return changed(made, body, { dispute: snapshot(d) });
    }
    const charge = chargeOf(body);
    if (!charge) return json({ error: "no such charge" }, 404);
    const d = put({
      id: `dp_${rand(24)}`,
      object: "dispute",
      amount: int(body.amount) ?? charge.amount,
      charge: charge.id,
      created: secs(),
      currency: charge.currency,
      metadata: {},
      payment_intent: charge.payment_intent,
      reason: typeof body.reason === "string" ? body.reason : "fraudulent",
      status: "needs_response",
    });
    charge.disputed = true;
    return changed([emit("charge.dispute.created", d), emit("charge.dispute.funds_withdrawn", d)], body, {
      dispute: snapshot(d),
    });
  }

  /** Delivers events, signed, to a webhook URL; answers what each delivery got. */
  async function deliver(list: Json[], options: DeliveryOptions): Promise<Json[]> {
    const url = options.url ?? webhookUrl;
    if (!url) throw new Error("no webhook url: pass url or configure webhook_url");
    let todo = list.filter((e) => !options.types || options.types.includes(e.type as string)).map((e) => snapshot(e));
    if (options.same_second && todo.length > 0) {
      const first = todo[0].created;
      for (const e of todo) e.created = first;
    }
    if (options.reverse) todo = todo.reverse();
    if (options.duplicate) todo = todo.flatMap((e) => [e, e]);
    const out: Json[] = [];
    for (const event of todo) {
      const raw = JSON.stringify(event);
      // Signed at real time, whatever the fakes' clock says: the receiving function checks the
      // timestamp against its own clock, which no test clock moves (a renewal a simulated month
      // later is still delivered now).
      const t = Math.floor(Date.now() / 1000) + (options.timestamp_offset ?? 0);
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": await fakeStripeSignature(raw, webhookSecret, t) },
        body: raw,
      });
      const text = await res.text();
      let answer: unknown = text;
      try {
        answer = JSON.parse(text);
      } catch {
        // kept as text
      }
      out.push({ event_id: event.id, type: event.type, status: res.status, body: answer });
    }
    return out;
  }

  function deliveryOptions(v: unknown): DeliveryOptions | null {
    if (v === true) return {};
    return isObject(v) ? v as DeliveryOptions : null;
  }

  /** The answer of a change: the events it made, delivered when asked. */
  async function changed(made: Json[], body: Json, extra: Json): Promise<Response> {
    const answer = { ...extra, events: made.map((e) => ({ id: e.id, type: e.type })) };
    const options = deliveryOptions(body.deliver);
    if (!options) return json(answer);
    try {
      return json({ ...answer, deliveries: await deliver(made, options) });
    } catch (e) {
      return json({ ...answer, error: (e as Error).message }, 502);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The API

  function lineAmount(line: Json): { unit: number; currency: string; price: Json } | Response {
    if (typeof line.price === "string") {
      const price = get(line.price, "price");
      if (!price) return missing("price", line.price, "line_items[0][price]");
      return { unit: price.unit_amount as number, currency: price.currency as string, price };
    }
    const data = line.price_data;
    if (!isObject(data)) {
      return stripeError(400, "invalid_request_error", "You must specify either `price` or `price_data` for each line item.", "parameter_missing", "line_items[0][price]");
    }
    const unit = int(data.unit_amount);
    if (unit === null || unit < 0) {
      return stripeError(400, "invalid_request_error", "Invalid integer: unit_amount", "parameter_invalid_integer", "line_items[0][price_data][unit_amount]");
    }
    if (typeof data.currency !== "string") {
      return stripeError(400, "invalid_request_error", "Missing required param: line_items[0][price_data][currency].", "parameter_missing", "line_items[0][price_data][currency]");
    }
    const recurring = isObject(data.recurring)
      ? { interval: data.recurring.interval, interval_count: int(data.recurring.interval_count) ?? 1 }
      : null;
    const price = put({
      id: `price_${rand(24)}`,
      object: "price",
      active: false,
      currency: data.currency,
      product: typeof data.product === "string" ? data.product : `prod_${rand()}`,
      product_name: isObject(data.product_data) ? data.product_data.name : null,
      recurring,
      type: recurring ? "recurring" : "one_time",
      unit_amount: unit,
    });
    return { unit, currency: data.currency as string, price };
  }

  function createSession(body: Json): Response {
    const mode = body.mode;
    if (mode !== "payment" && mode !== "subscription") {
      return stripeError(400, "invalid_request_error", "Invalid mode: must be one of payment, setup, or subscription", "parameter_invalid", "mode");
    }
    const lines = Array.isArray(body.line_items) ? body.line_items.filter(isObject) : [];
    if (lines.length !== 1) {
      return stripeError(400, "invalid_request_error", "The fake takes exactly one line item.", "parameter_invalid", "line_items");
    }
    const priced = lineAmount(lines[0]);
    if (priced instanceof Response) return priced;
    if (mode === "subscription" && !priced.price.recurring) {
      return stripeError(400, "invalid_request_error", "You must provide at least one recurring price in `subscription` mode when using prices.", "parameter_invalid", "line_items[0]");
    }
    if (mode === "payment" && priced.price.recurring) {
      return stripeError(400, "invalid_request_error", "You specified `payment` mode but passed a recurring price.", "parameter_invalid", "line_items[0]");
    }
    const quantity = int(lines[0].quantity) ?? 1;
    const subtotal = priced.unit * quantity;
    let discount = 0;
    let coupon: Json | null = null;
    if (Array.isArray(body.discounts) && body.discounts.length > 0) {
      const d = body.discounts[0] as Json;
      coupon = get(String(d.coupon ?? ""), "coupon");
      if (!coupon) return missing("coupon", String(d.coupon ?? ""), "discounts[0][coupon]");
      if (coupon.currency && coupon.currency !== priced.currency) {
        return stripeError(400, "invalid_request_error", "The coupon's currency does not match the line items'.", "parameter_invalid", "discounts[0][coupon]");
      }
      discount = Math.min(subtotal, coupon.amount_off !== null && coupon.amount_off !== undefined
        ? coupon.amount_off as number
        : Math.round(subtotal * Number(coupon.percent_off ?? 0) / 100));
    }
    if (typeof body.customer === "string" && !get(body.customer, "customer")) {
      return missing("customer", body.customer, "customer");
    }
    const sd = isObject(body.subscription_data) ? body.subscription_data : {};
    const pid = isObject(body.payment_intent_data) ? body.payment_intent_data : {};
    const id = `cs_test_${rand(40)}`;
    const session = put({
      id,
      object: "checkout.session",
      amount_subtotal: subtotal,
      amount_total: subtotal - discount,
      cancel_url: body.cancel_url ?? null,
      client_reference_id: body.client_reference_id ?? null,
      created: secs(),
      currency: priced.currency,
      customer: body.customer ?? null,
      customer_email: body.customer_email ?? null,
      expires_at: int(body.expires_at) ?? secs() + 86400,
      invoice: null,
      line_items: lines.map(() => ({ price: priced.price.id, quantity })),
      metadata: isObject(body.metadata) ? body.metadata : {},
      mode,
      payment_intent: null,
      payment_status: "unpaid",
      status: "open",
      subscription: null,
      success_url: body.success_url ?? null,
      total_details: { amount_discount: discount, amount_shipping: 0, amount_tax: 0 },
      url: `https://checkout.stripe.com/c/pay/${id}`,
      // Kept for the fake's own use (what the subscription and PaymentIntent will carry).
      subscription_data_metadata: isObject(sd.metadata) ? sd.metadata : {},
      payment_intent_data_metadata: isObject(pid.metadata) ? pid.metadata : null,
      discount_coupon: coupon?.id ?? null,
      renewal_amount: subtotal,
    });
    return json(session);
  }

  const routes: Route[] = [
    {
      method: "POST",
      pattern: /^\/v1\/customers$/,
      name: "customers.create",
      run: (_m, body) =>
        json(put({
          id: `cus_${rand()}`,
          object: "customer",
          address: isObject(body.address) ? body.address : null,
          created: secs(),
          email: body.email ?? null,
          metadata: isObject(body.metadata) ? body.metadata : {},
          name: body.name ?? null,
          phone: body.phone ?? null,
        })),
    },
    {
      method: "GET",
      pattern: /^\/v1\/customers\/([^/]+)$/,
      name: "customers.retrieve",
      // As Stripe: a deleted customer is still found, as {id, object, deleted: true}.
      run: (m) => deletedCustomers.has(m[1]) ? json({ id: m[1], object: "customer", deleted: true }) : found(m[1], "customer"),
    },
    {
      method: "DELETE",
      pattern: /^\/v1\/customers\/([^/]+)$/,
      name: "customers.delete",
      run: (m) => {
        if (!get(m[1], "customer")) return missing("customer", m[1]);
        objects.delete(m[1]);
        deletedCustomers.add(m[1]);
        emit("customer.deleted", { id: m[1], object: "customer", deleted: true });
        return json({ id: m[1], object: "customer", deleted: true });
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/coupons$/,
      name: "coupons.create",
      run: (_m, body) => {
        const amountOff = int(body.amount_off);
        const percentOff = body.percent_off === undefined ? null : Number(body.percent_off);
        if ((amountOff === null) === (percentOff === null)) {
          return stripeError(400, "invalid_request_error", "Coupons require exactly one of amount_off and percent_off.", "parameter_missing", "amount_off");
        }
        if (body.duration === "repeating" && int(body.duration_in_months) === null) {
          return stripeError(400, "invalid_request_error", "Coupons with duration=repeating require duration_in_months.", "parameter_missing", "duration_in_months");
        }
        if (amountOff !== null && typeof body.currency !== "string") {
          return stripeError(400, "invalid_request_error", "You must pass currency when passing amount_off.", "parameter_missing", "currency");
        }
        return json(put({
          id: typeof body.id === "string" ? body.id : rand(8),
          object: "coupon",
          amount_off: amountOff,
          created: secs(),
          currency: body.currency ?? null,
          duration: body.duration ?? "once",
          duration_in_months: body.duration === "repeating" ? int(body.duration_in_months) : null,
          max_redemptions: int(body.max_redemptions),
          metadata: isObject(body.metadata) ? body.metadata : {},
          name: body.name ?? null,
          percent_off: percentOff,
          valid: true,
        }));
      },
    },
    { method: "GET", pattern: /^\/v1\/coupons\/([^/]+)$/, name: "coupons.retrieve", run: (m) => found(m[1], "coupon") },
    { method: "GET", pattern: /^\/v1\/prices\/([^/]+)$/, name: "prices.retrieve", run: (m) => found(m[1], "price") },
    { method: "POST", pattern: /^\/v1\/checkout\/sessions$/, name: "checkout.sessions.create", run: (_m, body) => createSession(body) },
    {
      method: "GET",
      pattern: /^\/v1\/checkout\/sessions\/([^/]+)$/,
      name: "checkout.sessions.retrieve",
      run: (m) => found(m[1], "checkout.session"),
    },
    {
      method: "POST",
      pattern: /^\/v1\/checkout\/sessions\/([^/]+)\/expire$/,
      name: "checkout.sessions.expire",
      run: (m) => {
        const s = get(m[1], "checkout.session");
        if (!s) return missing("checkout.session", m[1]);
        if (s.status !== "open") {
          return stripeError(400, "invalid_request_error", `Only Checkout Sessions with a status in ["open"] can be expired.`, "checkout_session_not_open");
        }
        s.status = "expired";
        emit("checkout.session.expired", s);
        return json(s);
      },
    },
    {
      method: "GET",
      pattern: /^\/v1\/subscriptions\/([^/]+)$/,
      name: "subscriptions.retrieve",
      run: (m) => found(m[1], "subscription"),
    },
    { method: "GET", pattern: /^\/v1\/invoices\/([^/]+)$/, name: "invoices.retrieve", run: (m) => found(m[1], "invoice") },
    {
      method: "GET",
      pattern: /^\/v1\/payment_intents\/([^/]+)$/,
      name: "payment_intents.retrieve",
      run: (m) => found(m[1], "payment_intent"),
    },
    { method: "GET", pattern: /^\/v1\/charges\/([^/]+)$/, name: "charges.retrieve", run: (m) => found(m[1], "charge") },
    {
      method: "GET",
      pattern: /^\/v1\/refunds$/,
      name: "refunds.list",
      run: (_m, _b, q) => {
        const data = all("refund")
          .filter((r) => (!q.get("charge") || r.charge === q.get("charge")) &&
            (!q.get("payment_intent") || r.payment_intent === q.get("payment_intent")))
          .reverse();
        return json({ object: "list", data: data.slice(0, Number(q.get("limit") ?? 10)), has_more: false, url: "/v1/refunds" });
      },
    },
    { method: "GET", pattern: /^\/v1\/refunds\/([^/]+)$/, name: "refunds.retrieve", run: (m) => found(m[1], "refund") },
    { method: "GET", pattern: /^\/v1\/disputes\/([^/]+)$/, name: "disputes.retrieve", run: (m) => found(m[1], "dispute") },
    {
      method: "GET",
      pattern: /^\/v1\/events$/,
      name: "events.list",
      run: (_m, _b, q) => {
        const gt = int(q.get("created[gt]"));
        const limit = Math.min(100, int(q.get("limit")) ?? 10);
        let list = [...events].reverse().filter((e) =>
          (gt === null || (e.created as number) > gt) && (!q.get("type") || e.type === q.get("type"))
        );
        const after = q.get("starting_after");
        if (after) {
          const i = list.findIndex((e) => e.id === after);
          list = i < 0 ? [] : list.slice(i + 1);
        }
        return json({ object: "list", data: list.slice(0, limit), has_more: list.length > limit, url: "/v1/events" });
      },
    },
    {
      method: "GET",
      pattern: /^\/v1\/events\/([^/]+)$/,
      name: "events.retrieve",
      run: (m) => {
        const e = events.find((x) => x.id === m[1]);
        return e ? json(e) : missing("event", m[1]);
      },
    },
  ];

  function found(id: string, object: string): Response {
    const o = get(id, object);
    return o ? json(o) : missing(object, id);
  }

  /**
   * Adds routes (the next parts of the fake: subscription changes, refunds through the API, the
   * portal). A route's name is what fail_routes and the call log use.
   */
  function addRoutes(more: Route[]) {
    routes.push(...more);
  }

  function takeFailure(route: string, path: string): number | null {
    if (failure.status === null) return null;
    if (failure.routes && !failure.routes.some((r) => route.startsWith(r) || path.includes(r))) return null;
    if (failure.count === null) return failure.status;
    if (failure.count <= 0) return null;
    failure.count--;
    return failure.status;
  }

  function failureAnswer(status: number): Response {
    const message = failure.message ?? `fake Stripe failure ${status}`;
    if (status === 429) {
      return stripeError(429, "invalid_request_error", message, failure.code ?? "rate_limit", null,
        failure.retryAfter !== null ? { "retry-after": String(failure.retryAfter) } : {});
    }
    if (status >= 500) return stripeError(status, "api_error", message, failure.code);
    if (status === 402) return stripeError(402, "card_error", message, failure.code ?? "card_declined");
    return stripeError(status, "invalid_request_error", message, failure.code ?? "parameter_invalid");
  }

  async function api(req: Request, path: string, query: URLSearchParams): Promise<Response> {
    const route = routes.find((r) => r.method === req.method && r.pattern.test(path));
    if (delay.ms > 0 && route && (!delay.routes || delay.routes.some((r) => route.name.startsWith(r)))) {
      await new Promise((resolve) => setTimeout(resolve, delay.ms));
    }
    const raw = req.method === "POST" ? await req.text() : "";
    const body = req.method === "POST" ? parseStripeForm(new URLSearchParams(raw)) : parseStripeForm(query);
    const key = req.headers.get("idempotency-key");
    const call: StripeCall = {
      route: route?.name ?? "unknown",
      method: req.method,
      path,
      body,
      idempotency_key: key,
      status: null,
      at: new Date(now()).toISOString(),
    };
    calls.push(call);
    const answer = await (async () => {
      const auth = req.headers.get("authorization") ?? "";
      if (auth !== `Bearer ${secretKey}`) {
        return stripeError(401, "invalid_request_error", auth ? "Invalid API Key provided: sk_****" : "You did not provide an API key.");
      }
      if (!route) return stripeError(404, "invalid_request_error", `Unrecognized request URL (${req.method}: ${path}).`);
      const fail = takeFailure(route.name, path);
      if (fail !== null && !failure.after) return failureAnswer(fail);
      if (fail !== null) {
        // fail_after: the work is done (and, as at Stripe, a 5xx answer is not kept for its key).
        const done = await route.run(route.pattern.exec(path)!, body, query);
        if (done.ok) return failureAnswer(fail);
        return done;
      }
      if (key && req.method === "POST") {
        const fingerprint = `${req.method} ${path} ${[...new URLSearchParams(raw)].sort().join("&")}`;
        const seen = idempotency.get(key);
        if (seen) {
          if (seen.fingerprint !== fingerprint) {
            return stripeError(400, "idempotency_error", `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`);
          }
          return new Response(seen.body, {
            status: seen.status,
            headers: { "content-type": "application/json", "idempotent-replayed": "true" },
          });
        }
        const res = await route.run(route.pattern.exec(path)!, body, query);
        const text = await res.text();
        // Stripe keeps what the first request answered, errors of its own (not 5xx) included.
        if (res.status < 500) idempotency.set(key, { fingerprint, status: res.status, body: text });
        return new Response(text, { status: res.status, headers: res.headers });
      }
      return await route.run(route.pattern.exec(path)!, body, query);
    })();
    call.status = answer.status;
    return answer;
  }

  async function control(req: Request, path: string, query: URLSearchParams): Promise<Response> {
    if (req.method === "GET" && path === "/__control/stripe/calls") {
      const prefix = query.get("route");
      return json({ calls: prefix ? calls.filter((c) => c.route.startsWith(prefix)) : calls });
    }
    if (req.method === "GET" && path === "/__control/stripe/state") {
      return json({ objects: [...objects.values()], events, webhook_url: webhookUrl });
    }
    if (req.method !== "POST") return json({ error: "not found" }, 404);
    const text = await req.text();
    let body: unknown = {};
    try {
      body = text === "" ? {} : JSON.parse(text);
    } catch {
      return json({ error: "body is not JSON" }, 400);
    }
    const b = (isObject(body) ? body : {}) as Json;
    let res: Response | Promise<Response>;
    if (path === "/__control/stripe") {
      if (b.reset === true) reset();
      if ("fail_status" in b) {
        failure.status = typeof b.fail_status === "number" ? b.fail_status : null;
        failure.count = typeof b.fail_count === "number" ? b.fail_count : null;
      } else if (typeof b.fail_count === "number") failure.count = b.fail_count;
      if ("fail_message" in b) failure.message = typeof b.fail_message === "string" ? b.fail_message : null;
      if ("fail_code" in b) failure.code = typeof b.fail_code === "string" ? b.fail_code : null;
      if ("fail_retry_after" in b) failure.retryAfter = typeof b.fail_retry_after === "number" ? b.fail_retry_after : null;
      if ("fail_after" in b) failure.after = b.fail_after === true;
      if ("fail_routes" in b) {
        failure.routes = Array.isArray(b.fail_routes) ? b.fail_routes.filter((r): r is string => typeof r === "string") : null;
      }
      if ("webhook_url" in b) webhookUrl = typeof b.webhook_url === "string" ? b.webhook_url : null;
      if ("decline_invoice_pay" in b) invoiceDeclines = typeof b.decline_invoice_pay === "number" ? b.decline_invoice_pay : 0;
      if ("delay_ms" in b) {
        delay = {
          ms: typeof b.delay_ms === "number" ? b.delay_ms : 0,
          routes: Array.isArray(b.delay_routes) ? b.delay_routes.filter((r): r is string => typeof r === "string") : null,
        };
      }
      return json({ ok: true });
    }
    if (path === "/__control/stripe/prices") {
      const list = Array.isArray(body) ? body : [body];
      for (const p of list) {
        if (!isObject(p) || typeof p.id !== "string" || typeof p.unit_amount !== "number" || typeof p.currency !== "string") {
          return json({ error: "each price needs id, unit_amount and currency" }, 400);
        }
        put({
          object: "price",
          active: true,
          product: `prod_${rand()}`,
          type: p.recurring ? "recurring" : "one_time",
          recurring: isObject(p.recurring) ? { interval_count: 1, ...p.recurring } : null,
          ...p,
        });
      }
      return json({ ok: true, count: list.length });
    }
    if (path === "/__control/stripe/checkout/complete") res = completeSession(b);
    else if (path === "/__control/stripe/subscriptions/renew") res = renew(b);
    else if (path === "/__control/stripe/subscriptions/update") res = updateSubscription(b);
    else if (path === "/__control/stripe/refunds") res = refund(b);
    else if (path === "/__control/stripe/disputes") res = dispute(b);
    else if (path === "/__control/stripe/deliver") {
      const ids = Array.isArray(b.event_ids) ? b.event_ids : [];
      const list = ids.map((id) => events.find((e) => e.id === id)).filter(isObject);
      if (list.length !== ids.length) return json({ error: "unknown event id" }, 404);
      try {
        return json({ deliveries: await deliver(list, b as DeliveryOptions) });
      } catch (e) {
        return json({ error: (e as Error).message }, 502);
      }
    } else return json({ error: "not found" }, 404);
    return await res;
  }

  /** Answers the fake's own paths (/stripe/v1/..., /__control/stripe...); null for any other. */
  async function handle(req: Request, path: string, query: URLSearchParams): Promise<Response | null> {
    if (path.startsWith("/stripe/v1/")) return await api(req, path.slice("/stripe".length), query);
    if (path === "/__control/stripe" || path.startsWith("/__control/stripe/")) return await control(req, path, query);
    return null;
  }

  // ---------------------------------------------------------------------------------------------
  // Our API calls that change things: subscription updates and cancels, invoice items and invoices
  // paid now, refunds, the customer portal.

  const missingParam = (param: string) =>
    stripeError(400, "invalid_request_error", `Missing required param: ${param}.`, "parameter_missing", param);

  addRoutes([
    {
      method: "DELETE",
      pattern: /^\/v1\/subscriptions\/([^/]+)\/discount$/,
      name: "subscriptions.discount.delete",
      run: (m) => {
        const sub = get(m[1], "subscription");
        if (!sub) return missing("subscription", m[1]);
        const d = sub.discount as Json | null;
        if (!d) return stripeError(404, "invalid_request_error", `No active discount for subscription: '${m[1]}'`, "resource_missing");
        sub.discount = null;
        sub.discounts = [];
        emit("customer.discount.deleted", { object: "discount", coupon: d.coupon, subscription: sub.id });
        return json({ object: "discount", deleted: true, coupon: { id: d.coupon }, subscription: sub.id });
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/subscriptions\/([^/]+)$/,
      name: "subscriptions.update",
      run: (m, body) => {
        const sub = get(m[1], "subscription");
        if (!sub) return missing("subscription", m[1]);
        if (sub.status === "canceled") {
          return stripeError(400, "invalid_request_error", "A canceled subscription can only update its cancellation_details and metadata.", "resource_missing");
        }
        const previous: Json = {};
        if (body.cancel_at_period_end !== undefined) {
          previous.cancel_at_period_end = sub.cancel_at_period_end;
          sub.cancel_at_period_end = body.cancel_at_period_end === "true";
          sub.cancel_at = sub.cancel_at_period_end ? subscriptionItem(sub).current_period_end : null;
          sub.canceled_at = sub.cancel_at_period_end ? secs() : null;
        }
        const items = Array.isArray(body.items) ? body.items.filter(isObject) : [];
        if (items.length > 0) {
          const item = subscriptionItem(sub);
          if (items[0].id !== item.id) return stripeError(400, "invalid_request_error", "No such subscription item", "resource_missing", "items[0][id]");
          const priced = lineAmount(items[0]);
          if (priced instanceof Response) return priced;
          if (!priced.price.recurring) return stripeError(400, "invalid_request_error", "The price must be recurring.", "parameter_invalid", "items[0]");
          previous.items = { data: [{ price: { id: (item.price as Json).id } }] };
          item.price = snapshot(priced.price);
          // Later invoices charge the new price, less the subscription's coupon while it lasts (as at
          // Stripe, a coupon stays on the subscription through a price change until it is deleted).
          sub.renewal_amount = priced.unit;
        }
        if (body.trial_end !== undefined) {
          const end = int(body.trial_end);
          if (end === null || end <= secs()) return stripeError(400, "invalid_request_error", "trial_end must be in the future.", "parameter_invalid", "trial_end");
          previous.status = sub.status;
          sub.trial_end = end;
          subscriptionItem(sub).current_period_end = end;
          sub.status = "trialing";
        }
        if (isObject(body.metadata)) sub.metadata = { ...(sub.metadata as Json), ...body.metadata };
        sub.last_proration_behavior = body.proration_behavior ?? "create_prorations";
        emit("customer.subscription.updated", sub, previous);
        return json(sub);
      },
    },
    {
      method: "DELETE",
      pattern: /^\/v1\/subscriptions\/([^/]+)$/,
      name: "subscriptions.cancel",
      run: (m) => {
        const sub = get(m[1], "subscription");
        if (!sub) return missing("subscription", m[1]);
        if (sub.status === "canceled") {
          return stripeError(400, "invalid_request_error", `No such subscription: '${m[1]}'`, "resource_missing");
        }
        const previous = { status: sub.status };
        sub.status = "canceled";
        sub.canceled_at = secs();
        sub.ended_at = secs();
        emit("customer.subscription.deleted", sub, previous);
        return json(sub);
      },
    },
    { method: "GET", pattern: /^\/v1\/invoiceitems\/([^/]+)$/, name: "invoiceitems.retrieve", run: (m) => found(m[1], "invoiceitem") },
    {
      method: "DELETE",
      pattern: /^\/v1\/invoiceitems\/([^/]+)$/,
      name: "invoiceitems.delete",
      run: (m) => {
        const ii = get(m[1], "invoiceitem");
        if (!ii) return missing("invoiceitem", m[1]);
        if (ii.invoice !== null) {
          return stripeError(400, "invalid_request_error", "You can only delete invoice items that are not on an invoice", "invoice_item_on_invoice");
        }
        objects.delete(ii.id as string);
        return json({ id: ii.id, object: "invoiceitem", deleted: true });
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/invoiceitems$/,
      name: "invoiceitems.create",
      run: (_m, body) => {
        if (typeof body.customer !== "string" || !get(body.customer, "customer")) return missing("customer", String(body.customer ?? ""), "customer");
        const amount = int(body.amount);
        if (amount === null) return missingParam("amount");
        if (typeof body.currency !== "string") return missingParam("currency");
        const ii = put({
          id: `ii_${rand(24)}`,
          object: "invoiceitem",
          amount,
          currency: body.currency,
          customer: body.customer,
          date: secs(),
          description: body.description ?? null,
          invoice: null,
          metadata: isObject(body.metadata) ? body.metadata : {},
          period: { start: secs(), end: secs() },
          subscription: body.subscription ?? null,
        });
        emit("invoiceitem.created", ii);
        return json(ii);
      },
    },
    {
      method: "GET",
      pattern: /^\/v1\/invoices$/,
      name: "invoices.list",
      run: (_m, _b, q) => {
        const data = all("invoice").filter((i) =>
          (!q.get("subscription") || ((i.parent as Json)?.subscription_details as Json)?.subscription === q.get("subscription")) &&
          (!q.get("customer") || i.customer === q.get("customer")) &&
          (!q.get("status") || i.status === q.get("status"))
        ).reverse();
        return json({ object: "list", data: data.slice(0, Number(q.get("limit") ?? 10)), has_more: false, url: "/v1/invoices" });
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/invoices$/,
      name: "invoices.create",
      run: (_m, body) => {
        if (typeof body.customer !== "string" || !get(body.customer, "customer")) return missing("customer", String(body.customer ?? ""), "customer");
        const sub = typeof body.subscription === "string" ? get(body.subscription, "subscription") : null;
        if (typeof body.subscription === "string" && !sub) return missing("subscription", body.subscription, "subscription");
        const pending = body.pending_invoice_items_behavior === "include"
          ? all("invoiceitem").filter((ii) => ii.invoice === null && ii.customer === body.customer &&
            (!sub || ii.subscription === null || ii.subscription === sub.id))
          : [];
        const amount = pending.reduce((n, ii) => n + (ii.amount as number), 0);
        const invoice = put({
          id: `in_${rand(24)}`,
          object: "invoice",
          amount_due: amount,
          amount_paid: 0,
          amount_remaining: amount,
          attempt_count: 0,
          attempted: false,
          auto_advance: body.auto_advance === "true",
          billing_reason: "manual",
          collection_method: "charge_automatically",
          created: secs(),
          currency: pending[0]?.currency ?? (sub ? (subscriptionItem(sub).price as Json).currency : "inr"),
          customer: body.customer,
          lines: {
            object: "list",
            data: pending.map((ii) => ({
              id: `il_${rand(24)}`,
              object: "line_item",
              amount: ii.amount,
              currency: ii.currency,
              description: ii.description,
              metadata: ii.metadata,
              period: ii.period,
              pricing: { invoice_item_details: { invoice_item: ii.id } },
              quantity: 1,
            })),
            has_more: false,
          },
          metadata: isObject(body.metadata) ? body.metadata : {},
          parent: sub
            ? { type: "subscription_details", subscription_details: { subscription: sub.id, metadata: snapshot(sub.metadata as Json) } }
            : null,
          payments: { object: "list", data: [], has_more: false },
          period_start: secs(),
          period_end: secs(),
          status: "draft",
          status_transitions: { finalized_at: null, paid_at: null },
          subtotal: amount,
          total: amount,
        });
        for (const ii of pending) ii.invoice = invoice.id;
        emit("invoice.created", invoice);
        return json(invoice);
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/invoices\/([^/]+)\/pay$/,
      name: "invoices.pay",
      run: (m) => {
        const invoice = get(m[1], "invoice");
        if (!invoice) return missing("invoice", m[1]);
        if (invoice.status === "paid") return stripeError(400, "invalid_request_error", "Invoice is already paid", "invoice_already_paid");
        if (invoice.status !== "draft" && invoice.status !== "open") {
          return stripeError(400, "invalid_request_error", `Invoice is ${invoice.status}`, "invoice_not_open");
        }
        const details = (invoice.parent as Json | null)?.subscription_details as Json | undefined;
        const metadata = { ...(details?.metadata as Json ?? {}), ...(invoice.metadata as Json) };
        const wasDraft = invoice.status === "draft";
        invoice.status = "open";
        (invoice.status_transitions as Json).finalized_at = secs();
        const made = wasDraft ? [emit("invoice.finalized", invoice)] : [];
        if (invoiceDeclines > 0) {
          // As Stripe: the invoice stays finalized and open, its attempt failed, and the call answers 402.
          invoiceDeclines--;
          const pi = failedPaymentIntent(invoice.amount_due as number, invoice.currency as string, invoice.customer as string, metadata);
          (invoice.payments as Json).data = [{
            id: `inpay_${rand(20)}`,
            object: "invoice_payment",
            amount_paid: null,
            invoice: invoice.id,
            is_default: true,
            payment: { type: "payment_intent", payment_intent: pi.id },
            status: "open",
          }];
          invoice.attempt_count = (invoice.attempt_count as number) + 1;
          invoice.attempted = true;
          made.push(emit("payment_intent.payment_failed", pi), emit("invoice.payment_failed", invoice));
          return stripeError(402, "card_error", "Your card was declined.", "card_declined");
        }
        const { pi, charge } = paymentIntentAndCharge(invoice.amount_due as number, invoice.currency as string,
          invoice.customer as string, metadata, "Invoice payment");
        (invoice.payments as Json).data = [{
          id: `inpay_${rand(20)}`,
          object: "invoice_payment",
          amount_paid: invoice.amount_due,
          invoice: invoice.id,
          is_default: true,
          payment: { type: "payment_intent", payment_intent: pi.id },
          status: "paid",
        }];
        invoice.amount_paid = invoice.amount_due;
        invoice.amount_remaining = 0;
        invoice.attempt_count = 1;
        invoice.attempted = true;
        invoice.status = "paid";
        (invoice.status_transitions as Json).paid_at = secs();
        made.push(emit("charge.succeeded", charge), emit("payment_intent.succeeded", pi));
        made.push(emit("invoice.paid", invoice), emit("invoice.payment_succeeded", invoice));
        return json(invoice);
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/invoices\/([^/]+)\/void$/,
      name: "invoices.void",
      run: (m) => {
        const invoice = get(m[1], "invoice");
        if (!invoice) return missing("invoice", m[1]);
        if (invoice.status !== "open") {
          return stripeError(400, "invalid_request_error", `You can only void an open invoice; this one is ${invoice.status}`, "invoice_not_open");
        }
        invoice.status = "void";
        invoice.amount_remaining = 0;
        emit("invoice.voided", invoice);
        return json(invoice);
      },
    },
    {
      method: "DELETE",
      pattern: /^\/v1\/invoices\/([^/]+)$/,
      name: "invoices.delete",
      run: (m) => {
        const invoice = get(m[1], "invoice");
        if (!invoice) return missing("invoice", m[1]);
        if (invoice.status !== "draft") {
          return stripeError(400, "invalid_request_error", `You can only delete a draft invoice; this one is ${invoice.status}`, "invoice_not_editable");
        }
        objects.delete(invoice.id as string);
        for (const ii of all("invoiceitem").filter((ii) => ii.invoice === invoice.id)) ii.invoice = null;
        return json({ id: invoice.id, object: "invoice", deleted: true });
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/refunds$/,
      name: "refunds.create",
      run: (_m, body) => {
        const charge = chargeOf(body);
        if (!charge) {
          return typeof body.payment_intent === "string"
            ? missing("payment_intent", body.payment_intent, "payment_intent")
            : missingParam("payment_intent");
        }
        const left = (charge.amount as number) - (charge.amount_refunded as number);
        const amount = int(body.amount) ?? left;
        if (amount <= 0 || amount > left) {
          return stripeError(400, "invalid_request_error", `Refund amount (${amount}) is greater than unrefunded amount on charge (${left})`, "amount_too_large", "amount");
        }
        return json(makeRefund(charge, amount, body).r);
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/billing_portal\/configurations$/,
      name: "billing_portal.configurations.create",
      run: (_m, body) => {
        if (!isObject(body.features)) return missingParam("features");
        return json(put({
          id: `bpc_${rand(24)}`,
          object: "billing_portal.configuration",
          active: true,
          business_profile: isObject(body.business_profile) ? body.business_profile : {},
          created: secs(),
          features: body.features,
          is_default: false,
          metadata: isObject(body.metadata) ? body.metadata : {},
        }));
      },
    },
    {
      method: "GET",
      pattern: /^\/v1\/billing_portal\/configurations\/([^/]+)$/,
      name: "billing_portal.configurations.retrieve",
      run: (m) => found(m[1], "billing_portal.configuration"),
    },
    {
      method: "POST",
      pattern: /^\/v1\/billing_portal\/sessions$/,
      name: "billing_portal.sessions.create",
      run: (_m, body) => {
        if (typeof body.customer !== "string" || !get(body.customer, "customer")) return missing("customer", String(body.customer ?? ""), "customer");
        if (typeof body.configuration === "string" && !get(body.configuration, "billing_portal.configuration")) {
          return missing("billing_portal.configuration", body.configuration, "configuration");
        }
        const id = `bps_${rand(24)}`;
        return json(put({
          id,
          object: "billing_portal.session",
          configuration: body.configuration ?? null,
          created: secs(),
          customer: body.customer,
          return_url: body.return_url ?? null,
          url: `https://billing.stripe.com/p/session/test_${id}`,
        }));
      },
    },
  ]);

  return { handle, reset, addRoutes, emit, get, put, deliver };
}
