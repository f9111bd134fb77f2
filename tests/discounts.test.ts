// Discount codes under real concurrency and end to end through the local functions server, the
// real database and the fake PayU / Razorpay.
//
// Concurrency: 50 organizations check out at once, over 32 connections, with a code that has 10
// redemptions left: exactly 10 orders are discounted (the code's row lock serves the last
// redemption to one buyer), the 40 others are refused with discount_exhausted and no order; the
// 10 are paid (signed PayU payments applied at once) and the code counts 10 redeemed.
// End to end: a PayU checkout with a repeating code (2 periods), its signed webhook, the invoice's
// discount line, a renewal through checkout at the discounted price, then the full price; the same
// with a one-time Razorpay order and its signed webhook; a refused code answers 422 with its code
// and writes no order; a code that covers the whole price answers paid with a zero invoice.
//
// The providers' official SDKs are the signature oracles (tests/provider-messages.ts).
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { adminSql, callFunction as call, createUser, env, fakeControl as fake, mintToken } from "./helpers.ts";
import { payuPost, rzpEvent, rzpPayment, sendPayu, sendRzp } from "./provider-messages.ts";

type Json = Record<string, unknown>;

const sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

// -------------------------------------------------------------------------------------------------
// Fixture: a monthly plan of 49900 paise, the seller in Karnataka at 18 % on top

const PLAN = `t_disc_${rand()}`;
/** 49900 plus CGST and SGST at 9 % each. */
const FULL_TOTAL = 58882;
/** 49900 less 25 % (12475) = 37425, plus 3368 + 3368. */
const QUARTER_OFF_TOTAL = 44161;

let ready: Promise<void> | undefined;
function ensurePlan(): Promise<void> {
  ready ??= (async () => {
    await sql`update public.billing_settings
      set gst_rate_bp = 1800, prices_include_tax = false,
          seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
          seller_gstin = case when left(seller_gstin, 2) = '29' then seller_gstin end, seller_state_code = '29'`;
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents)
      values (${PLAN}, 'Test discounted plan', 'basic', 'month', 49900)`;
  })();
  return ready;
}

async function makeOrg() {
  await ensurePlan();
  const owner = await createUser(sql);
  const [{ id }] = await sql`insert into public.organizations (name, billing_email)
    values (${`Discounts ${rand()}`}, 'billing@example.in') returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${id}, ${owner}, 'owner')`;
  return { id: id as string, owner };
}

async function newCode(spec: Json) {
  const code = `T${rand().toUpperCase()}`;
  await sql`select billing.create_discount_code(${code}, ${sql.json(spec as postgres.JSONValue)})`;
  return code;
}

async function checkout(orgId: string, user: string, body: Json) {
  return await call("checkout", {
    token: await mintToken(user),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_id: orgId, ...body }),
  });
}

async function invoiceLine(orderId: string) {
  const [line] = await sql`select l.list_cents::int, l.discount_cents::int, l.discount_code, l.taxable_cents::int,
      l.cgst_cents::int, l.sgst_cents::int, l.total_cents::int, i.total_cents::int as invoice_total
    from public.invoices i join public.invoice_lines l on l.invoice_id = i.id where i.order_id = ${orderId}`;
  return line;
}

// -------------------------------------------------------------------------------------------------
// Paying through the providers

/** Checks out with PayU and pays through the signed webhook; returns the checkout answer. */
async function buyWithPayu(org: { id: string; owner: string }, body: Json) {
  const res = await checkout(org.id, org.owner, { plan_code: PLAN, provider: "payu", ...body });
  assertEquals(res.status, 200, JSON.stringify(res.body));
  const hook = await sendPayu("payu-webhook", payuPost(res.body.fields as Record<string, string>, "success", `mih${rand()}`));
  assertEquals([hook.status, hook.body.result], [200, "applied"], JSON.stringify(hook.body));
  return res.body;
}

/** Checks out with a one-time Razorpay order and pays through the signed payment.captured webhook. */
async function buyWithRazorpay(org: { id: string; owner: string }, body: Json) {
  const res = await checkout(org.id, org.owner, { plan_code: PLAN, provider: "razorpay", ...body });
  assertEquals(res.status, 200, JSON.stringify(res.body));
  const rzpOrderId = res.body.order_id as string;
  const created = ((await fake("/__control/razorpay/orders")).orders as Json[]).find((o) => o.id === rzpOrderId)!;
  assertEquals(created.amount, res.body.amount, "Razorpay's order is for the discounted total");
  const payment = rzpPayment(`pay_${rand()}`, res.body.amount as number, { order_id: rzpOrderId });
  await fake("/__control/razorpay/payments", payment);
  const hook = await sendRzp(rzpEvent("payment.captured", { payment: { entity: payment } }));
  assertEquals([hook.status, hook.body.result], [200, "applied"], JSON.stringify(hook.body));
  return res.body;
}

// -------------------------------------------------------------------------------------------------
// The last redemptions under concurrency

Deno.test({
  name: "50 parallel checkouts over 32 connections for a code with 10 redemptions left: exactly 10 discounted",
  ...testOptions,
  fn: async () => {
    const code = await newCode({ percent_bps: 2500, max_redemptions: 10 });
    const orgs = await Promise.all(Array.from({ length: 50 }, () => makeOrg()));
    const pool = postgres(env("SUPABASE_DB_URL"), { max: 32, prepare: false, onnotice: () => {} });
    let answers: { ok: boolean; hint?: string; receipt?: string; amount?: number }[];
    try {
      answers = await Promise.all(orgs.map((org) =>
        pool.begin(async (tx) => {
          await tx`select set_config('role', 'authenticated', true),
            set_config('request.jwt.claims', ${JSON.stringify({ sub: org.owner, role: "authenticated" })}, true)`;
          const [row] = await tx`select receipt, amount_cents::int as amount
            from public.create_checkout_order(${org.id}, ${PLAN}, 'payu', ${code.toLowerCase()})`;
          return { ok: true, receipt: row.receipt as string, amount: row.amount as number };
        }).catch((e) => ({ ok: false, hint: (e as { hint?: string }).hint }))
      ));
      // The ten orders are paid at once, as signed payments applied by the payment path.
      await Promise.all(answers.filter((a) => a.ok).map((a) =>
        pool`select billing.apply_payment_event(${pool.json({
          provider: "payu", event_id: `${a.receipt}:success`, event_type: "payment.success", kind: "payment_captured",
          subscription_status: null, error_reason: null, order_ref: a.receipt, provider_order_id: null,
          provider_payment_id: a.receipt, provider_subscription_id: null, provider_refund_id: null,
          amount_paise: a.amount, currency: "INR", status: "success", method: "upi", occurred_at: null, payload: {},
        } as postgres.JSONValue)}) as r`
      ));
    } finally {
      await pool.end();
    }
    const won = answers.filter((a) => a.ok);
    assertEquals(won.length, 10, "ten buyers got the code");
    assertEquals(new Set(won.map((a) => a.amount)), new Set([QUARTER_OFF_TOTAL]), "at the discounted price");
    assertEquals(answers.filter((a) => !a.ok).map((a) => a.hint), Array(40).fill("discount_exhausted"));
    const ids = orgs.map((o) => o.id);
    const [books] = await sql`select
        (select count(*)::int from public.orders where organization_id = any(${ids}) ) as orders,
        (select count(*)::int from public.orders where organization_id = any(${ids}) and status = 'paid' and discount_cents > 0) as discounted_paid,
        (select count(*)::int from public.discount_redemptions r join billing.discount_codes c on c.id = r.discount_code_id
          where c.code = ${code} and r.status = 'redeemed') as redeemed`;
    assertEquals(books, { orders: 10, discounted_paid: 10, redeemed: 10 }, "the refused buyers have no order");
  },
});

// -------------------------------------------------------------------------------------------------
// End to end

Deno.test({
  name: "PayU: a repeating code through checkout, its signed webhook, the invoice's discount line, a renewal at the discounted price, then the full price",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const code = await newCode({ percent_bps: 2500, duration: "repeating", periods: 2 });
    const first = await buyWithPayu(org, { discount_code: code.toLowerCase() });
    assertEquals([first.amount_cents, (first.fields as Json).amount], [QUARTER_OFF_TOTAL, "441.61"]);
    assertEquals(await invoiceLine(first.billing_order_id as string), {
      list_cents: 49900, discount_cents: 12475, discount_code: code, taxable_cents: 37425,
      cgst_cents: 3368, sgst_cents: 3368, total_cents: QUARTER_OFF_TOTAL, invoice_total: QUARTER_OFF_TOTAL,
    });
    // The next period, bought through checkout without the code: the redemption carries.
    const renewal = await buyWithPayu(org, {});
    assertEquals(renewal.amount_cents, QUARTER_OFF_TOTAL, "the second period is discounted");
    assertEquals((await invoiceLine(renewal.billing_order_id as string)).discount_cents, 12475);
    const third = await buyWithPayu(org, {});
    assertEquals(third.amount_cents, FULL_TOTAL, "after its two periods, the full price");
    const [sub] = await sql`select status::text, current_period_end > now() + interval '80 days' as three_months
      from public.subscriptions where organization_id = ${org.id}`;
    assertEquals(sub, { status: "active", three_months: true });
    const [r] = await sql`select status::text, code from public.discount_redemptions where organization_id = ${org.id}`;
    assertEquals(r, { status: "redeemed", code });
  },
});

Deno.test({
  name: "Razorpay: a repeating code on a one-time Razorpay order, its signed webhook, the invoice's discount line, and a discounted renewal",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const code = await newCode({ percent_bps: 2500, duration: "repeating", periods: 2 });
    const first = await buyWithRazorpay(org, { discount_code: code });
    assertEquals(first.amount, QUARTER_OFF_TOTAL);
    assertEquals((await invoiceLine(first.billing_order_id as string)).discount_code, code);
    assertEquals((await invoiceLine(first.billing_order_id as string)).total_cents, QUARTER_OFF_TOTAL);
    const renewal = await buyWithRazorpay(org, {});
    assertEquals(renewal.amount, QUARTER_OFF_TOTAL, "the renewal order carries the discount");
  },
});

Deno.test({
  name: "checkout: refused codes answer 422 with their code and write no order; a code covering the price answers paid with a zero invoice",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const unknown = await checkout(org.id, org.owner, { plan_code: PLAN, provider: "payu", discount_code: "NOPE123" });
    assertEquals([unknown.status, unknown.body.code], [422, "discount_invalid"]);
    const expired = await newCode({ percent_bps: 1000, valid_until: "2020-01-01T00:00:00Z", valid_from: "2019-01-01T00:00:00Z" });
    const late = await checkout(org.id, org.owner, { plan_code: PLAN, provider: "payu", discount_code: expired });
    assertEquals([late.status, late.body.code], [422, "discount_expired"]);
    const scoped = await newCode({ percent_bps: 1000, plans: ["pro_monthly"] });
    const other = await checkout(org.id, org.owner, { plan_code: PLAN, provider: "payu", discount_code: scoped });
    assertEquals([other.status, other.body.code], [422, "discount_not_applicable"]);
    const [{ n }] = await sql`select count(*)::int as n from public.orders where organization_id = ${org.id}`;
    assertEquals(n, 0, "no order for a refused code");

    const free = await newCode({ amount_paise: 1000000 });
    const res = await checkout(org.id, org.owner, { plan_code: PLAN, provider: "razorpay", discount_code: free });
    assertEquals([res.status, res.body.status, res.body.amount_cents, res.body.provider], [200, "paid", 0, "manual"]);
    assertEquals(await invoiceLine(res.body.billing_order_id as string), {
      list_cents: 49900, discount_cents: 49900, discount_code: free, taxable_cents: 0,
      cgst_cents: 0, sgst_cents: 0, total_cents: 0, invoice_total: 0,
    });
    const [{ status }] = await sql`select status::text from public.subscriptions where organization_id = ${org.id}`;
    assertEquals(status, "active");
  },
});
