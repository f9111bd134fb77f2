// The fake Razorpay Checkout page, as a frontend developer uses it locally: the checkout
// function's order opened on the hosted page (/v1/checkout/embedded), Pay sends Razorpay's signed
// payment.captured webhook to razorpay-webhook and posts the browser back to callback_url with
// the handler's fields, whose signature razorpay-verify accepts: the plan is active once. Fail
// sends payment.failed and posts back the error fields; nothing is paid.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { adminSql, callFunction, createUser, env, functionsUrl, mintToken } from "./helpers.ts";

const sql = adminSql(2);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
const fakes = () => env("FAKE_UPSTREAMS_URL");
const CALLBACK = "http://127.0.0.1:9/app/billing/razorpay-callback";

async function control(body: Record<string, unknown>) {
  const res = await fetch(`${fakes()}/__control/razorpay`, { method: "POST", body: JSON.stringify(body) });
  assertEquals(res.status, 200);
  await res.body?.cancel();
}

/** A Razorpay one-time checkout of a fresh plan by a new organization's owner. */
async function checkout() {
  const code = `rzp_page_${rand()}`;
  await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, features, active)
    values (${code}, ${`Page ${code}`}, 'pro', 'month', 49900, 'INR', '{"max_members": 5}'::jsonb, true)`;
  const owner = await createUser(sql);
  const [{ id: org }] =
    await sql`insert into public.organizations (name, state_code) values (${code}, '29') returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${owner}, 'owner')`;
  const token = await mintToken(owner);
  const res = await callFunction("checkout", {
    token,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_id: org, plan_code: code, provider: "razorpay" }),
  });
  assertEquals(res.status, 200, JSON.stringify(res.body));
  return { org: org as string, code, token, body: res.body };
}

/** The hidden fields of the page's auto-submitted form, and where it posts. */
function form(html: string): { action: string; fields: Record<string, string> } {
  const unescape = (s: string) =>
    s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n))).replace(/&amp;/g, "&");
  const action = unescape(/<form method="post" action="([^"]*)"/.exec(html)?.[1] ?? "");
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    fields[unescape(m[1])] = unescape(m[2]);
  }
  return { action, fields };
}

async function page(orderId: string, outcome: "success" | "failure") {
  const open = await fetch(`${fakes()}/v1/checkout/embedded`, {
    method: "POST",
    body: new URLSearchParams({
      key_id: env("RAZORPAY_KEY_ID"),
      order_id: orderId,
      callback_url: CALLBACK,
      name: "Supabill",
    }),
  });
  const html = await open.text();
  assertEquals(open.status, 200, html);
  assert(
    html.includes('id="pay"') && html.includes('id="fail"') && html.includes(orderId),
    "Pay and Fail for the order",
  );
  const done = await fetch(`${fakes()}/v1/checkout/embedded/complete`, {
    method: "POST",
    body: new URLSearchParams({ ...form(html).fields, outcome }),
  });
  const back = await done.text();
  assertEquals(done.status, 200, back);
  return form(back);
}

async function webhooksFor(orderId: string) {
  const { payments, webhooks } = await (await fetch(`${fakes()}/__control/razorpay/payments`)).json();
  const ids = new Set(
    (payments as { id: string; order_id: string }[]).filter((p) => p.order_id === orderId).map((p) => p.id),
  );
  return (webhooks as { url: string; event: string; payment_id: string; status: number }[]).filter((w) =>
    ids.has(w.payment_id)
  );
}

Deno.test(
  "Pay on the fake Razorpay Checkout page: signed webhook, handler fields razorpay-verify accepts, the plan active once",
  testOptions,
  async () => {
    await control({ webhook_url: functionsUrl("razorpay-webhook") });
    try {
      const { org, code, token, body } = await checkout();
      const orderId = body.order_id as string;
      const back = await page(orderId, "success");
      assertEquals(back.action, CALLBACK, "posted back to callback_url");
      assertEquals(Object.keys(back.fields).sort(), [
        "razorpay_order_id",
        "razorpay_payment_id",
        "razorpay_signature",
      ]);
      assertEquals(back.fields.razorpay_order_id, orderId);
      const hooks = await webhooksFor(orderId);
      assertEquals(hooks.map((h) => [new URL(h.url).pathname, h.event, h.payment_id, h.status]), [[
        "/functions/v1/razorpay-webhook",
        "payment.captured",
        back.fields.razorpay_payment_id,
        200,
      ]]);

      // The app sends Checkout's handler result to razorpay-verify.
      const verify = await callFunction("razorpay-verify", {
        token,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ billing_order_id: body.billing_order_id, ...back.fields }),
      });
      assertEquals(verify.status, 200, JSON.stringify(verify.body));
      assertEquals(verify.body.order_status, "paid");
      const [sub] =
        await sql`select p.code, s.status from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
      where s.organization_id = ${org} and s.status = 'active'`;
      assertEquals([sub?.code, sub?.status], [code, "active"]);
      const events =
        await sql`select status, provider_payment_id from public.payment_events where organization_id = ${org}`;
      assertEquals(events.map((e) => [e.status, e.provider_payment_id]), [[
        "captured",
        back.fields.razorpay_payment_id,
      ]], "the webhook and the handler's result apply one payment");
    } finally {
      await control({ webhook_url: null });
    }
  },
);

Deno.test(
  "Fail on the fake Razorpay Checkout page: payment.failed is sent, the error fields come back, nothing is paid",
  testOptions,
  async () => {
    await control({ webhook_url: functionsUrl("razorpay-webhook") });
    try {
      const { org, body } = await checkout();
      const orderId = body.order_id as string;
      const back = await page(orderId, "failure");
      assertEquals(back.action, CALLBACK);
      assertEquals(back.fields["error[code]"], "BAD_REQUEST_ERROR");
      assertEquals(JSON.parse(back.fields["error[metadata]"]).order_id, orderId);
      const hooks = await webhooksFor(orderId);
      assertEquals(hooks.map((h) => [h.event, h.status]), [["payment.failed", 200]]);
      const [order] = await sql`select status from public.orders where id = ${body
        .billing_order_id as string}`;
      assert(order.status !== "paid", `the order is ${order.status}`);
      const active =
        await sql`select 1 from public.subscriptions where organization_id = ${org} and status = 'active'`;
      assertEquals(active.length, 0, "no plan");
    } finally {
      await control({ webhook_url: null });
    }
  },
);

Deno.test("close the pool", testOptions, async () => {
  await sql.end();
});
