// Private enterprise pricing end to end through the local functions server, the real database and
// the fake PayU / Razorpay: a private plan assigned to one organization (billing.operator_assign_plan)
// with a negotiated price (billing.operator_set_price_override); another organization's checkout of
// it is refused 404 plan_not_found, as an unknown plan, and writes nothing; the assigned organization checks out
// with PayU at the override price plus GST, PayU's signed webhook applies it, and the GST invoice
// names the contract at that price; a Razorpay recurring plan with an override is sold as a
// one-time Razorpay order at the override price, applied by its signed payment.captured webhook.
//
// The providers' official SDKs are the signature oracles: every PayU hash and Razorpay webhook
// signature these tests send is checked with payu-websdk and razorpay first (tests/provider-messages.ts).
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
// @ts-types="./fixtures/types/payu-websdk.d.ts"
import Payu from "npm:payu-websdk@1.3.1";
import { adminSql, callFunction as call, createUser, env, fakeControl as fake, mintToken } from "./helpers.ts";
import { payuPost, rzpEvent, rzpPayment, sendPayu, sendRzp } from "./provider-messages.ts";

type Json = Record<string, unknown>;

const sql = adminSql(4);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

// -------------------------------------------------------------------------------------------------
// Fixture: a private plan and a public Razorpay recurring plan made for this file

const suffix = rand();
const PLANS = { ent: `t_ent_${suffix}`, rzp: `t_ent_rzp_${suffix}` };
/** The private plan's override: 3,990 rupees a month before GST; 18 % on top, seller and buyer in Karnataka. */
const ENT_PRICE = 399000;
const ENT_TOTAL = 470820;
/** The Razorpay plan's override: 799 rupees (list 999). */
const RZP_PRICE = 79900;
const RZP_TOTAL = 94282;

let plansReady: Promise<void> | undefined;
function ensurePlans(): Promise<void> {
  plansReady ??= (async () => {
    await sql`update public.billing_settings
      set gst_rate_bp = 1800, prices_include_tax = false,
          seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
          seller_gstin = case when left(seller_gstin, 2) = '29' then seller_gstin end, seller_state_code = '29'`;
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, private, provider_config) values
      (${PLANS.ent}, 'Test Enterprise', 'enterprise', 'month', 500000, true, '{}'),
      (${PLANS.rzp}, 'Test Pro Razorpay', 'pro', 'month', 99900, false,
       ${sql.json({ razorpay: { plan_id: `plan_${suffix}` } })})`;
  })();
  return plansReady;
}

async function makeOrg() {
  await ensurePlans();
  const owner = await createUser(sql);
  const [{ id }] = await sql`insert into public.organizations (name, billing_email)
    values (${`Enterprise ${rand()}`}, 'billing@example.in') returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${id}, ${owner}, 'owner')`;
  return { id: id as string, owner };
}

/** An operator's override from an hour ago for thirty days. */
async function override(orgId: string, planCode: string, price: number, contract: string) {
  await sql`select billing.operator_set_price_override(${orgId}, ${planCode}, ${price},
    now() - interval '1 hour', now() + interval '30 days', ${contract}, 'negotiated in the e2e test')`;
}

async function checkout(orgId: string, user: string, body: Json) {
  return await call("checkout", {
    token: await mintToken(user),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_id: orgId, ...body }),
  });
}

async function invoiceLine(orderId: string) {
  const [line] = await sql`select l.description, l.taxable_cents::int, l.cgst_cents::int, l.sgst_cents::int,
      l.total_cents::int, i.total_cents::int as invoice_total
    from public.invoices i join public.invoice_lines l on l.invoice_id = i.id where i.order_id = ${orderId}`;
  return line;
}

/** PayU's SDK, the oracle of the checkout form's request hash. */
const payuSdk = () => new Payu({ key: env("PAYU_MERCHANT_KEY"), salt: env("PAYU_MERCHANT_SALT") });

// -------------------------------------------------------------------------------------------------

Deno.test({
  name: "PayU: a private plan at a price override; unassigned organizations are refused; the signed webhook applies it and the invoice names the contract",
  ...testOptions,
  fn: async () => {
    const [org, other] = await Promise.all([makeOrg(), makeOrg()]);
    await sql`select billing.operator_assign_plan(${org.id}, ${PLANS.ent}, 'enterprise contract, e2e test', 'ENT-E2E')`;
    await override(org.id, PLANS.ent, ENT_PRICE, `ENT-${suffix}`);

    // Another organization: not listed, and refused at checkout with nothing written.
    const refused = await checkout(other.id, other.owner, { plan_code: PLANS.ent, provider: "payu" });
    assertEquals([refused.status, refused.body.code], [404, "plan_not_found"], JSON.stringify(refused.body));
    const [{ n }] = await sql`select count(*)::int as n from public.orders where organization_id = ${other.id}`;
    assertEquals(n, 0, "the refused checkout wrote no order");

    const res = await checkout(org.id, org.owner, { plan_code: PLANS.ent, provider: "payu" });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const fields = res.body.fields as Record<string, string>;
    assertEquals([res.body.amount_cents, fields.amount], [ENT_TOTAL, "4708.20"], "the override price plus GST");
    assertEquals(fields.hash, payuSdk().hasher.generatePaymentHash({ ...fields }), "PayU's SDK computes the same request hash");
    const orderId = res.body.billing_order_id as string;
    const [order] = await sql`select taxable_cents::int, metadata ->> 'contract_ref' as contract from public.orders where id = ${orderId}`;
    assertEquals(order, { taxable_cents: ENT_PRICE, contract: `ENT-${suffix}` });

    const hook = await sendPayu("payu-webhook", payuPost(fields, "success", `mih${rand()}`));
    assertEquals([hook.status, hook.body.result], [200, "applied"], JSON.stringify(hook.body));
    assertEquals(await invoiceLine(orderId), {
      description: `Test Enterprise - subscription (contract price, ENT-${suffix})`,
      taxable_cents: ENT_PRICE,
      cgst_cents: 35910,
      sgst_cents: 35910,
      total_cents: ENT_TOTAL,
      invoice_total: ENT_TOTAL,
    });
    const [sub] = await sql`select s.status::text, p.code from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
      where s.organization_id = ${org.id}`;
    assertEquals(sub, { status: "active", code: PLANS.ent });
  },
});

Deno.test({
  name: "Razorpay: a recurring plan at a price override is a one-time Razorpay order at that price; payment.captured applies it",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    await override(org.id, PLANS.rzp, RZP_PRICE, `RZP-${suffix}`);
    const res = await checkout(org.id, org.owner, { plan_code: PLANS.rzp, provider: "razorpay" });
    assertEquals(res.status, 200, JSON.stringify(res.body));
    const rzpOrderId = res.body.order_id as string;
    assert(/^order_/.test(rzpOrderId) && res.body.subscription_id === undefined, "an order, not a subscription at the list price");
    assertEquals(res.body.amount, RZP_TOTAL);
    const created = ((await fake("/__control/razorpay/orders")).orders as Json[]).find((o) => o.id === rzpOrderId)!;
    assertEquals(created.amount, RZP_TOTAL, "Razorpay was asked for the override price plus GST");

    const payment = rzpPayment(`pay_${rand()}`, RZP_TOTAL, { order_id: rzpOrderId });
    await fake("/__control/razorpay/payments", payment);
    const captured = await sendRzp(rzpEvent("payment.captured", { payment: { entity: payment } }));
    assertEquals([captured.status, captured.body.result], [200, "applied"], JSON.stringify(captured.body));
    const line = await invoiceLine(res.body.billing_order_id as string);
    assertEquals([line.description, line.taxable_cents, line.total_cents],
      [`Test Pro Razorpay - subscription (contract price, RZP-${suffix})`, RZP_PRICE, RZP_TOTAL]);
  },
});
