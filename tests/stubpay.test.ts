// A provider the functions have never heard of, registered by the test: an adapter under the name
// "stubpay" with its own signature scheme (HMAC-SHA256 over "<timestamp>.<raw body>", sent as
// `x-stubpay-signature: t=<timestamp>,v1=<hex>`). Its deliveries go through the same generic
// webhook handler as PayU's and Razorpay's and reach billing.apply_payment_event unchanged: the
// only database change a new provider needs is its value of public.payment_provider.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { hmacSha256Hex, timingSafeEqual } from "../supabase/functions/_shared/crypto.ts";
import { createProviderRegistry } from "../supabase/functions/_shared/providers/registry.ts";
import {
  type EventKind,
  type NormalizedEvent,
  type ProviderAdapter,
  ProviderError,
} from "../supabase/functions/_shared/providers/types.ts";
import { webhookHandler } from "../supabase/functions/_shared/webhook.ts";
import { adminSql } from "./helpers.ts";

const testOptions = { sanitizeOps: false, sanitizeResources: false };
const SECRET = "stubpay_test_secret";
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

const STUBPAY_KINDS: Record<string, EventKind> = {
  "charge.succeeded": "payment_captured",
  "charge.failed": "payment_failed",
};

const noCheckout = () => Promise.reject(new ProviderError(400, "invalid_input", "stubpay has no checkout"));

/** The stub provider: webhooks only. */
const stubpay: ProviderAdapter = {
  name: "stubpay",
  maxWebhookBytes: 16 * 1024,
  async verifyWebhook(raw, headers) {
    const header = headers.get("x-stubpay-signature");
    const m = header ? /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header) : null;
    if (!m) return { ok: false, code: "missing_signature", message: "x-stubpay-signature is missing" };
    if (!timingSafeEqual(await hmacSha256Hex(SECRET, `${m[1]}.${raw}`), m[2])) {
      return { ok: false, code: "invalid_signature", message: "signature does not match" };
    }
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      return { ok: false, code: "malformed_body", message: "body is not JSON" };
    }
    const id = (body as { id?: unknown })?.id;
    if (typeof id !== "string") return { ok: false, code: "missing_event_id", message: "id is missing" };
    return { ok: true, webhook: { provider: "stubpay", payload: body as Record<string, unknown>, event_id: id } };
  },
  normalize(webhook) {
    const p = webhook.payload as {
      type?: string;
      created?: string;
      charge?: { id?: string; reference?: string; amount?: number; currency?: string; status?: string; reason?: string };
    };
    const charge = p.charge;
    if (!webhook.event_id || typeof p.type !== "string" || !charge) {
      return { ok: false, code: "malformed_body", message: "type and charge are required" };
    }
    if (charge.amount !== undefined && !Number.isSafeInteger(charge.amount)) {
      return { ok: false, code: "invalid_amount", message: "amount is not integer paise" };
    }
    const kind = STUBPAY_KINDS[p.type] ?? "other";
    const event: NormalizedEvent = {
      provider: "stubpay",
      event_id: webhook.event_id,
      event_type: p.type,
      kind,
      subscription_status: null,
      error_reason: kind === "payment_failed" ? (charge.reason ?? charge.status ?? null) : null,
      order_ref: charge.reference ?? null,
      provider_order_id: null,
      provider_payment_id: charge.id ?? null,
      provider_subscription_id: null,
      provider_refund_id: null,
      amount_paise: charge.amount ?? null,
      currency: charge.currency ?? null,
      status: charge.status ?? null,
      method: null,
      occurred_at: p.created ?? null,
      payload: webhook.payload,
    };
    return { ok: true, event };
  },
  createCheckout: noCheckout,
  assertCheckoutConfigured() {
    throw new ProviderError(503, "provider_not_configured", "stubpay has no checkout");
  },
  startCheckout: noCheckout,
  reconcileOrder: () => Promise.resolve({ skipped: "stubpay has no API" }),
};

const registry = createProviderRegistry().register(stubpay);
const handler = webhookHandler(registry.require("stubpay"));

async function deliver(body: Record<string, unknown>, secret = SECRET) {
  const raw = JSON.stringify(body);
  const t = String(Math.floor(Date.now() / 1000));
  const res = await handler(new Request("http://local/functions/v1/stubpay-webhook", {
    method: "POST",
    headers: { "content-type": "application/json", "x-stubpay-signature": `t=${t},v1=${await hmacSha256Hex(secret, `${t}.${raw}`)}` },
    body: raw,
  }));
  return { status: res.status, body: await res.json() };
}

Deno.test("the registry knows the stub provider beside the built-in ones", () => {
  assertEquals(registry.names(), ["payu", "razorpay", "stripe", "stubpay"]);
  assertEquals(registry.get("stubpay") === stubpay, true);
});

Deno.test("a stub provider's signed delivery goes through the generic webhook handler to billing.apply_payment_event", testOptions, async () => {
  const sql = adminSql();
  try {
    // A new enum value cannot be used in the transaction that adds it: its own statement, committed.
    await sql.unsafe("alter type public.payment_provider add value if not exists 'stubpay'");
    const tag = rand();
    const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents)
      values (${`t_stubpay_${tag}`}, 'Stubpay test', 'basic', 'month', 49900) returning id`;
    const [{ id: orgId }] = await sql`insert into public.organizations (name) values (${`Stubpay ${tag}`}) returning id`;
    const receipt = `stub_${tag}`;
    // The order's amount is the total payable: the tax trigger adds GST to the price inserted.
    const [{ id: orderId, amount_cents: amount }] = await sql`insert into public.orders
      (organization_id, plan_id, provider, receipt, amount_cents, status, expires_at)
      values (${orgId}, ${planId}, 'stubpay', ${receipt}, 49900, 'pending', now() + interval '1 day')
      returning id, amount_cents`;

    const charge = { id: `ch_${tag}`, reference: receipt, amount: Number(amount), currency: "INR", status: "succeeded" };
    const forged = await deliver({ id: `evt_forged_${tag}`, type: "charge.succeeded", charge }, "not the secret");
    assertEquals([forged.status, forged.body.code], [401, "invalid_signature"]);

    const first = await deliver({ id: `evt_${tag}`, type: "charge.succeeded", created: new Date().toISOString(), charge });
    assertEquals([first.status, first.body], [200, { received: true, result: "applied" }]);
    const again = await deliver({ id: `evt_${tag}`, type: "charge.succeeded", created: new Date().toISOString(), charge });
    assertEquals([again.status, again.body], [200, { received: true, result: "duplicate" }]);

    const deliveries = await sql`select provider::text as provider, event_id, event_type, attempts
      from billing.webhook_events where event_id like ${`evt_%${tag}`} order by event_id`;
    assertEquals(deliveries.map((d) => [d.provider, d.event_id, d.event_type, d.attempts]), [
      ["stubpay", `evt_${tag}`, "charge.succeeded", 2],
    ]);
    const [order] = await sql`select status::text as status from public.orders where id = ${orderId}`;
    assertEquals(order.status, "paid");
    const payments = await sql`select provider::text as provider, provider_payment_id, status::text as status, amount_cents::int as amount
      from public.payment_events where order_id = ${orderId}`;
    assertEquals(payments.map((p) => [p.provider, p.provider_payment_id, p.status, p.amount]), [
      ["stubpay", `ch_${tag}`, "captured", Number(amount)],
    ]);
  } finally {
    await sql.end();
  }
});
