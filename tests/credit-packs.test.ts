// Credit packs end to end through the local functions server, the real database and the fake
// PayU / Razorpay: a pack bought through checkout with PayU (the signed form, then PayU's signed
// webhook and return POST) and with Razorpay (a one-time Razorpay order, then signed webhooks);
// the grant, the GST invoice naming the pack, the balance through get_credit_balance; duplicate
// deliveries grant once; an operator's refund after a partial spend, carried out by
// provider-sync at the fake Razorpay, revokes the unspent credits and the credit note says so;
// refusals (an inactive or unknown pack, a pack with a plan code, a member who is not an owner or
// admin) answer their code and write nothing.
//
// The providers' official SDKs are the signature oracles: every PayU hash and Razorpay webhook
// signature these tests send or receive is checked with payu-websdk and razorpay first
// (tests/provider-messages.ts).
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
// @ts-types="./fixtures/types/payu-websdk.d.ts"
import Payu from "npm:payu-websdk@1.3.1";
import { adminSql, callFunction as call, createUser, env, fakeControl as fake, mintToken } from "./helpers.ts";
import { payuPost, rzpEvent, rzpPayment, sendPayu, sendRzp } from "./provider-messages.ts";

type Json = Record<string, unknown>;

const sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

// -------------------------------------------------------------------------------------------------
// Fixture: packs made for this file, an organization with an owner and a member

const suffix = rand();
const PACKS = { small: `t_pack_s_${suffix}`, big: `t_pack_b_${suffix}`, off: `t_pack_off_${suffix}` };
/** What the small pack (1,000 credits for 49900 paise) charges: 18 % GST on top, seller and buyer in Karnataka. */
const SMALL_TOTAL = 58882;
/** The big pack: 5,000 credits for 199900 paise, never lapsing. */
const BIG_TOTAL = 235882;

let packsReady: Promise<void> | undefined;
function ensurePacks(): Promise<void> {
  packsReady ??= (async () => {
    await sql`update public.billing_settings
      set gst_rate_bp = 1800, prices_include_tax = false,
          seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
          seller_gstin = case when left(seller_gstin, 2) = '29' then seller_gstin end, seller_state_code = '29'`;
    await sql`insert into public.credit_packs (code, name, credits, price_paise, validity, active) values
      (${PACKS.small}, 'Test 1,000 credits', 1000, 49900, interval '1 year', true),
      (${PACKS.big}, 'Test 5,000 credits', 5000, 199900, null, true),
      (${PACKS.off}, 'Test retired pack', 10, 1000, null, false)`;
  })();
  return packsReady;
}

async function makeOrg() {
  await ensurePacks();
  const [owner, member] = await Promise.all([createUser(sql), createUser(sql)]);
  const [{ id }] = await sql`insert into public.organizations (name, billing_email)
    values (${`Packs ${rand()}`}, 'billing@example.in') returning id`;
  await sql.begin(async (tx) => {
    // Two members in a free organization (past the free plan's max_members): this file is about
    // who may buy, so the fixture skips the limit's trigger.
    await tx`set local session_replication_role = replica`;
    await tx`insert into public.organization_members (organization_id, user_id, role)
      values (${id}, ${owner}, 'owner'), (${id}, ${member}, 'member')`;
  });
  return { id: id as string, owner, member };
}

async function checkout(orgId: string, user: string, body: Json) {
  return await call("checkout", {
    token: await mintToken(user),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_id: orgId, ...body }),
  });
}

async function balance(orgId: string, user: string): Promise<Json> {
  // As the member would read it (get_credit_balance is a members' function).
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
                    set_config('request.jwt.claims', ${JSON.stringify({ sub: user, role: "authenticated" })}, true)`;
    const [{ b }] = await tx`select public.get_credit_balance(${orgId}) as b`;
    return b as Json;
  });
}

async function grantsOf(orgId: string) {
  return await sql`select g.source::text, g.amount::int, g.remaining::int, g.expires_at, o.receipt,
      (select pe.provider_payment_id from public.payment_events pe where pe.id = g.payment_event_id) as payment
    from public.credit_grants g join public.orders o on o.id = g.order_id
    where g.organization_id = ${orgId} order by g.created_at`;
}

async function invoiceLines(orderId: string) {
  return await sql`select l.description, l.total_cents::int, i.total_cents::int as invoice_total
    from public.invoices i join public.invoice_lines l on l.invoice_id = i.id where i.order_id = ${orderId}`;
}

async function orgRows(orgId: string) {
  const [r] = await sql`select
    (select count(*)::int from public.orders where organization_id = ${orgId}) as orders,
    (select count(*)::int from public.credit_grants where organization_id = ${orgId}) as grants`;
  return r;
}

// -------------------------------------------------------------------------------------------------
// PayU's SDK, the oracle of the checkout form's request hash

const payuSdk = () => new Payu({ key: env("PAYU_MERCHANT_KEY"), salt: env("PAYU_MERCHANT_SALT") });

// -------------------------------------------------------------------------------------------------
// Buying a pack

Deno.test({
  name: "PayU: a credit pack bought through checkout; the signed webhook grants its credits once, with the invoice",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const res = await checkout(org.id, org.owner, { credit_pack_code: PACKS.small, provider: "payu" });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const fields = res.body.fields as Record<string, string>;
    assertEquals([res.body.amount_cents, fields.amount, fields.productinfo], [SMALL_TOTAL, "588.82", "Test 1,000 credits"]);
    assertEquals(fields.hash, payuSdk().hasher.generatePaymentHash({ ...fields }), "PayU's SDK computes the same request hash");
    const orderId = res.body.billing_order_id as string;
    const [order] = await sql`select kind::text, status::text, plan_id from public.orders where id = ${orderId}`;
    assertEquals(order, { kind: "credit_pack", status: "pending", plan_id: null });

    const post = payuPost(fields, "success", `mih${rand()}`);
    const hook = await sendPayu("payu-webhook", post);
    assertEquals([hook.status, hook.body.result], [200, "applied"], JSON.stringify(hook.body));
    // Delivered again: the webhook retried, and the buyer's browser posting the same form back.
    const again = await sendPayu("payu-webhook", post);
    assertEquals([again.status, again.body.result], [200, "duplicate"], JSON.stringify(again.body));
    const back = await sendPayu("payu-return", post);
    assert(back.status === 303 || back.status === 200, JSON.stringify(back.body));

    const grants = await grantsOf(org.id);
    assertEquals(grants.length, 1, "granted once");
    assertEquals([grants[0].source, grants[0].amount, grants[0].remaining, grants[0].receipt, grants[0].payment],
      ["purchase", 1000, 1000, fields.txnid, fields.txnid]); // PayU's payment is its txnid
    assert(grants[0].expires_at instanceof Date && grants[0].expires_at.getTime() > Date.now() + 360 * 86400_000,
      "the pack's credits lapse a year after the payment");
    assertEquals([...await invoiceLines(orderId)], [{
      description: "Test 1,000 credits - credit pack (1000 credits, valid for 1 year)",
      total_cents: SMALL_TOTAL,
      invoice_total: SMALL_TOTAL,
    }]);
    const b = await balance(org.id, org.member);
    assertEquals([b.balance, (b.by_source as Json).purchase], [1000, 1000]);
    const [{ n }] = await sql`select count(*)::int as n from public.subscriptions where organization_id = ${org.id}`;
    assertEquals(n, 0, "buying credits changes no subscription");
  },
});

Deno.test({
  name: "Razorpay: a credit pack is a one-time Razorpay order; payment.captured and order.paid grant once; an operator's refund revokes the unspent credits",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const res = await checkout(org.id, org.owner, { credit_pack_code: PACKS.big, provider: "razorpay" });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const rzpOrderId = res.body.order_id as string;
    assert(/^order_/.test(rzpOrderId) && res.body.subscription_id === undefined, "an order, not a subscription");
    assertEquals([res.body.amount, (res.body.checkout_options as Json).description], [BIG_TOTAL, "Test 5,000 credits"]);
    const created = ((await fake("/__control/razorpay/orders")).orders as Json[]).find((o) => o.id === rzpOrderId)!;
    assertEquals(created.amount, BIG_TOTAL);

    const payId = `pay_${rand()}`;
    const payment = rzpPayment(payId, BIG_TOTAL, { order_id: rzpOrderId });
    await fake("/__control/razorpay/payments", payment);
    const captured = await sendRzp(rzpEvent("payment.captured", { payment: { entity: payment } }));
    assertEquals([captured.status, captured.body.result], [200, "applied"], JSON.stringify(captured.body));
    const paid = await sendRzp(rzpEvent("order.paid", {
      payment: { entity: payment },
      order: { entity: { ...created, status: "paid", amount_paid: BIG_TOTAL } },
    }));
    assertEquals([paid.status, paid.body.result], [200, "duplicate"], JSON.stringify(paid.body));
    const grants = await grantsOf(org.id);
    assertEquals(grants.map((g) => [g.amount, g.remaining, g.payment, g.expires_at]), [[5000, 5000, payId, null]]);
    assertEquals((await invoiceLines(res.body.billing_order_id as string))[0].description,
      "Test 5,000 credits - credit pack (5000 credits)");
    assertEquals((await balance(org.id, org.owner)).balance, 5000);

    // 1,200 credits are spent, then an operator refunds the payment in full; provider-sync asks the
    // fake Razorpay, records its refund, and the unspent 3,800 are revoked.
    const [{ charged }] = await sql`select charged from public.consume_credits(${org.id}, 'api_call_basic', 1200, ${`spend-${rand()}`})`;
    assert(charged);
    const [{ id: paymentEventId }] = await sql`select id from public.payment_events
      where provider_payment_id = ${payId} and status = 'captured'`;
    await sql`select billing.operator_refund(${paymentEventId}, null, 'the customer asked for a refund')`;
    for (let i = 0; i < 20; i++) {
      const r = await call("provider-sync", {
        token: env("SUPABASE_SERVICE_ROLE_KEY"),
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      assertEquals(r.status, 200, JSON.stringify(r.body));
      if (r.body.claimed === 0) break;
    }
    const [refunded] = await sql`select g.remaining::int, (select -sum(l.amount)::int from public.credit_ledger l
        where l.grant_id = g.id and l.kind = 'revoked') as revoked
      from public.credit_grants g where g.organization_id = ${org.id}`;
    assertEquals(refunded, { remaining: 0, revoked: 3800 });
    const [note] = await sql`select c.reason, c.total_cents::int, c.taxable_cents::int
      from public.credit_notes c where c.organization_id = ${org.id}`;
    assert(note.reason.endsWith("Credits revoked: 3800 of 5000 (1200 already used)"), note.reason);
    assertEquals([note.total_cents, note.taxable_cents], [BIG_TOTAL, 199900]);
    assertEquals((await balance(org.id, org.owner)).balance, 0);
    const [{ problems }] = await sql`select count(*)::int as problems from billing.credit_ledger_problems()
      where organization_id = ${org.id}`;
    assertEquals(problems, 0);
  },
});

// -------------------------------------------------------------------------------------------------
// Refusals: a code, and nothing written

Deno.test({
  name: "checkout refuses an inactive or unknown pack, a pack with a plan code, and a member: a code each, nothing written",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const cases: [string, Json, number, string][] = [
      [org.owner, { credit_pack_code: PACKS.off, provider: "payu" }, 404, "credit_pack_not_found"],
      [org.owner, { credit_pack_code: `t_pack_none_${suffix}`, provider: "razorpay" }, 404, "credit_pack_not_found"],
      [org.owner, { credit_pack_code: PACKS.small, plan_code: "basic_monthly", provider: "payu" }, 400, "plan_and_credit_pack"],
      [org.owner, { credit_pack_code: "Not A Code", provider: "payu" }, 400, "invalid_input"],
      [org.member, { credit_pack_code: PACKS.small, provider: "payu" }, 403, "forbidden"],
    ];
    for (const [user, body, status, code] of cases) {
      const res = await checkout(org.id, user, body);
      assertEquals([res.status, res.body.code], [status, code], JSON.stringify({ body, answer: res.body }));
    }
    assertEquals(await orgRows(org.id), { orders: 0, grants: 0 });
  },
});
