// Foreign-currency checkouts through the local functions server and the real database: a plan's
// USD price (public.plan_prices) through a provider that collects USD gives an order in USD at
// that price with the day's rate, zero-rated for a buyer abroad under the seller's LUT; PayU
// (INR only here) refuses it with 422 currency_not_accepted before any provider call, a currency
// the plan has no price in answers 422 currency_not_offered, one without a rate 409
// exchange_rate_missing (the SQL call refuses before the adapter is called), a malformed one 400
// invalid_input; none of them writes an order.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { adminSql, callFunction as call, createUser, mintToken } from "./helpers.ts";

type Json = Record<string, unknown>;

const sql = adminSql(4);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

const PLAN = `t_export_${rand()}`;
/** A currency no other test records a rate for, so "no rate on record" holds whatever ran before. */
const NO_RATE = "XTS";

let ready: Promise<void> | undefined;
function ensurePlan(): Promise<void> {
  ready ??= (async () => {
    await sql`update public.billing_settings
      set gst_rate_bp = 1800, prices_include_tax = false,
          seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
          seller_gstin = case when left(seller_gstin, 2) = '29' then seller_gstin end, seller_state_code = '29'`;
    const [{ id }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents)
      values (${PLAN}, 'Test export plan', 'pro', 'month', 99900) returning id`;
    await sql`insert into public.plan_prices (plan_id, currency, price_cents)
      values (${id}, 'USD', 1200), (${id}, ${NO_RATE}, 1000)`;
    // The seed records an LUT of the current year and a USD rate; recorded here only when missing.
    await sql`select billing.operator_record_lut(fy::text || '-' || lpad(((fy + 1) % 100)::text, 2, '0'),
        'AA2904' || lpad((fy % 100)::text, 2, '0') || '000001Z', make_date(fy, 4, 1), 'exports test LUT')
      from (select billing.financial_year(billing.now()) as fy) y
      where (billing.lut_for(billing.now())).id is null`;
    await sql`select billing.operator_set_exchange_rate('USD', 84.5, null, 'exports test rate')
      where not exists (select 1 from billing.exchange_rates r where r.currency = 'USD' and r.effective_from <= billing.now())`;
  })();
  return ready;
}

async function makeOrg() {
  await ensurePlan();
  const owner = await createUser(sql);
  const [{ id }] = await sql`insert into public.organizations (name, billing_email, billing_country)
    values (${`Exports ${rand()}`}, 'billing@example.com', 'US') returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${id}, ${owner}, 'owner')`;
  return { id: id as string, owner };
}

async function checkout(orgId: string, user: string, body: Json) {
  return await call("checkout", {
    token: await mintToken(user),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_id: orgId, plan_code: PLAN, ...body }),
  });
}

async function ordersOf(orgId: string): Promise<number> {
  const [{ n }] = await sql`select count(*)::int as n from public.orders where organization_id = ${orgId}`;
  return n;
}

Deno.test({
  name: "checkout: a currency refused answers its code and writes no order; PayU (INR only here) refuses USD",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const payu = await checkout(org.id, org.owner, { provider: "payu", currency: "USD" });
    assertEquals([payu.status, payu.body.code], [422, "currency_not_accepted"]);
    const other = await checkout(org.id, org.owner, { provider: "payu", currency: "GBP" });
    assertEquals([other.status, other.body.code], [422, "currency_not_offered"]);
    const malformed = await checkout(org.id, org.owner, { provider: "payu", currency: "usd" });
    assertEquals([malformed.status, malformed.body.code], [400, "invalid_input"]);
    const pack = await checkout(org.id, org.owner, { provider: "payu", currency: "USD", plan_code: undefined, credit_pack_code: "credits_1000" });
    assertEquals([pack.status, pack.body.code], [400, "invalid_input"]);
    assertEquals(await ordersOf(org.id), 0, "no order for a refused currency");
  },
});

Deno.test({
  name: "checkout: a currency without a rate answers 409 exchange_rate_missing; USD through a provider that collects it is an order in USD",
  ...testOptions,
  fn: async () => {
    const org = await makeOrg();
    const before = await sql`select provider_currencies from public.billing_settings`;
    // Razorpay enabled for USD and the test currency here (as an account with international payments).
    await sql`update public.billing_settings
      set provider_currencies = provider_currencies || ${sql.json({ razorpay: ["INR", "USD", NO_RATE] })}`;
    try {
      const noRate = await checkout(org.id, org.owner, { provider: "razorpay", currency: NO_RATE });
      assertEquals([noRate.status, noRate.body.code], [409, "exchange_rate_missing"]);
      assertEquals(await ordersOf(org.id), 0, "no order without a rate");

      const res = await checkout(org.id, org.owner, { provider: "razorpay", currency: "USD" });
      assertEquals([res.status, res.body.currency, res.body.amount_cents], [200, "USD", 1200], JSON.stringify(res.body));
      const [order] = await sql`select currency, amount_cents::int, supply_type::text, lut_arn is not null as under_lut,
          export_with_igst, exchange_rate is not null as has_rate
        from public.orders where id = ${res.body.billing_order_id as string}`;
      assertEquals(order, {
        currency: "USD", amount_cents: 1200, supply_type: "export", under_lut: true, export_with_igst: false, has_rate: true,
      });
    } finally {
      await sql`update public.billing_settings set provider_currencies = ${sql.json(before[0].provider_currencies)}`;
    }
  },
});

Deno.test({
  name: "exports: close the connection",
  ...testOptions,
  fn: async () => {
    await sql.end();
  },
});
