// An export order in USD through Stripe, end to end (the functions server, the fake Stripe and the
// database), under the test clock in financial years of its own: an organization in the US, a plan
// with a USD price (public.plan_prices), the day's rate and the year's LUT recorded by the
// operator's functions. Checkout with currency USD makes the customer with the organization's
// address and a session in USD for our amount; paid, the invoice is an export zero-rated under the
// LUT (IGST 0, the ARN, the rate and the INR value, also in the invoice PDF); a refund's credit
// note is in USD at the invoice's rate. In a financial year without an LUT the same export is on
// payment of IGST (18% charged, no ARN).
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { extractText, getDocumentProxy } from "npm:unpdf@1.8.1";
import { adminSql, callFunction as call, createUser, fakeControl as fake, functionsUrl, mintToken } from "./helpers.ts";
import { allOk, sellerInKarnataka, setClock, underClock, WEBHOOK } from "./stripe-fixtures.ts";

type Json = Record<string, unknown>;
const sql = adminSql(4);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
const PLAN = `t_str_usd_${rand()}`;

// Two financial years no other test records anything in: one with an LUT, one without.
const WITH_LUT = Date.parse("2032-06-15T06:30:00Z"); // FY 2032-33
const WITHOUT_LUT = Date.parse("2033-06-15T06:30:00Z"); // FY 2033-34
const ARN = "AA2906320000077";
const RATE = 85.25;

let ready: Promise<void> | undefined;
function ensureFixtures(): Promise<void> {
  ready ??= (async () => {
    await sellerInKarnataka(sql);
    const [{ id }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, active)
      values (${PLAN}, 'Stripe export plan', 'pro', 'month', 99900, 'INR', true) returning id`;
    await sql`insert into public.plan_prices (plan_id, currency, price_cents) values (${id}, 'USD', 1200)`;
    // The operator records the LUT of FY 2032-33 and the USD rate from its first day (under the clock).
    await underClock(sql, async () => {
      await setClock(sql, WITH_LUT);
      await sql`select billing.operator_record_lut('2032-33', ${ARN}, '2032-04-01', 'stripe exports test LUT')
        where not exists (select 1 from billing.lut_registrations l where l.financial_year = '2032-33')`;
      await sql`select billing.operator_set_exchange_rate('USD', ${RATE}, '2032-04-01T00:00:00+05:30', 'stripe exports test rate')
        where not exists (select 1 from billing.exchange_rates r where r.currency = 'USD' and r.effective_from = '2032-04-01T00:00:00+05:30')`;
    });
  })();
  return ready;
}

async function makeOrg() {
  const owner = await createUser(sql);
  const [{ id }] = await sql`insert into public.organizations
      (name, billing_email, billing_name, billing_address_line1, billing_city, billing_postal_code, billing_country)
    values (${`Stripe export ${rand()}`}, 'ap@globex.example', 'Globex Corporation', '1 Market Street', 'San Francisco',
            '94105', 'US')
    returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${id}, ${owner}, 'owner')`;
  return { id: id as string, owner };
}

async function checkoutUsd(org: { id: string; owner: string }) {
  return await call("checkout", {
    token: await mintToken(org.owner),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_id: org.id, provider: "stripe", plan_code: PLAN, currency: "USD" }),
  });
}

const lastCall = async (route: string) => ((await fake(`/__control/stripe/calls?route=${route}`)).calls as Json[]).at(-1)!;

async function pdfText(invoiceId: string, owner: string): Promise<string> {
  const res = await fetch(`${functionsUrl("invoice-pdf")}?id=${encodeURIComponent(invoiceId)}`, {
    headers: { authorization: `Bearer ${await mintToken(owner)}` },
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  assertEquals(res.status, 200, new TextDecoder().decode(bytes.slice(0, 300)));
  const { text } = await extractText(await getDocumentProxy(bytes.slice()), { mergePages: true });
  return text.replace(/\s+/g, " ");
}

Deno.test({
  name: "Stripe export in USD under the LUT: the customer with the US address, a USD session for our amount, a zero-rated invoice with the ARN, the rate and the INR value (also in the PDF), a partial refund's credit note in USD at the invoice's rate",
  ...testOptions,
  fn: async () => {
    await ensureFixtures();
    await underClock(sql, async () => {
      await setClock(sql, WITH_LUT);
      const org = await makeOrg();
      const res = await checkoutUsd(org);
      assertEquals(res.status, 200, JSON.stringify(res.body));
      assertEquals([res.body.currency, res.body.amount], ["USD", 1200]);
      const [order] = await sql`select id, receipt, currency, amount_cents::int as amount, supply_type::text, lut_arn,
          export_with_igst, exchange_rate::float8 as rate, status::text
        from public.orders where organization_id = ${org.id}`;
      assertEquals({ ...order, id: undefined, receipt: undefined }, {
        id: undefined, receipt: undefined, currency: "USD", amount: 1200, supply_type: "export", lut_arn: ARN,
        export_with_igst: false, rate: RATE, status: "pending",
      });

      // The customer carries the organization's billing name and US address; the session is a
      // one-time payment in USD of exactly our amount.
      const customer = await lastCall("customers.create");
      assertEquals((customer.body as Json).name, "Globex Corporation");
      assertEquals((customer.body as Json).address, {
        line1: "1 Market Street", city: "San Francisco", postal_code: "94105", country: "US",
      });
      const session = await lastCall("checkout.sessions.create");
      assertEquals(session.idempotency_key, `supabill-checkout-${order.id}`);
      const form = session.body as Json;
      assertEquals([form.mode, form.client_reference_id], ["payment", order.receipt]);
      assertEquals((form.line_items as Json[])[0].price_data, {
        currency: "usd", unit_amount: "1200", product_data: { name: "Stripe export plan" },
      });

      const paid = allOk(await fake("/__control/stripe/checkout/complete", {
        session_id: res.body.session_id, deliver: { url: WEBHOOK() },
      }));
      const completed = paid.find((d) => d.type === "checkout.session.completed")!;
      assertEquals((completed.body as Json).result, "applied");
      const [captured] = await sql`select provider_payment_id, amount_cents::int as amount, currency, status::text
        from public.payment_events where organization_id = ${org.id}`;
      assertEquals([captured.amount, captured.currency, captured.status], [1200, "USD", "captured"]);

      const [inv] = await sql`select id, currency, supply_type::text, taxable_cents::int as taxable, igst_cents::int as igst,
          cgst_cents::int as cgst, sgst_cents::int as sgst, total_cents::int as total, lut_arn, export_with_igst,
          exchange_rate::float8 as rate, inr_taxable_paise::int as inr_taxable, inr_total_paise::int as inr_total
        from public.invoices where organization_id = ${org.id}`;
      assertEquals({ ...inv, id: undefined }, {
        id: undefined, currency: "USD", supply_type: "export", taxable: 1200, igst: 0, cgst: 0, sgst: 0, total: 1200,
        lut_arn: ARN, export_with_igst: false, rate: RATE, inr_taxable: 102300, inr_total: 102300,
      });
      const text = await pdfText(inv.id, org.owner);
      for (
        const needle of [
          `SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX, LUT ARN ${ARN}`,
          "Currency USD",
          "Value in INR at 1 USD = ₹85.25",
        ]
      ) assert(text.includes(needle), `"${needle}" is not in the PDF:\n${text}`);

      // A partial refund in Stripe's dashboard: the credit note in USD at the invoice's rate.
      allOk(await fake("/__control/stripe/refunds", {
        payment_intent: captured.provider_payment_id, amount: 500, deliver: { url: WEBHOOK() },
      }));
      const notes = await sql`select invoice_id, currency, taxable_cents::int as taxable, igst_cents::int as igst,
          total_cents::int as total, exchange_rate::float8 as rate, inr_taxable_paise::int as inr_taxable,
          inr_total_paise::int as inr_total
        from public.credit_notes where organization_id = ${org.id}`;
      assertEquals([...notes], [{
        invoice_id: inv.id, currency: "USD", taxable: 500, igst: 0, total: 500, rate: RATE, inr_taxable: 42625,
        inr_total: 42625,
      }]);
      const refunds = await sql`select amount_cents::int as amount, currency from public.payment_events
        where organization_id = ${org.id} and status = 'refunded'`;
      assertEquals([...refunds], [{ amount: 500, currency: "USD" }]);
    });
  },
});

Deno.test({
  name: "Stripe export in USD in a financial year without an LUT: export on payment of IGST (18% on our amount), the session charges it, the invoice has no ARN",
  ...testOptions,
  fn: async () => {
    await ensureFixtures();
    await underClock(sql, async () => {
      await setClock(sql, WITHOUT_LUT);
      const org = await makeOrg();
      const res = await checkoutUsd(org);
      assertEquals(res.status, 200, JSON.stringify(res.body));
      assertEquals([res.body.currency, res.body.amount], ["USD", 1416]);
      const session = await lastCall("checkout.sessions.create");
      assertEquals(((session.body as Json).line_items as Json[])[0].price_data, {
        currency: "usd", unit_amount: "1416", product_data: { name: "Stripe export plan" },
      });
      allOk(await fake("/__control/stripe/checkout/complete", { session_id: res.body.session_id, deliver: { url: WEBHOOK() } }));
      const [inv] = await sql`select currency, supply_type::text, taxable_cents::int as taxable, igst_cents::int as igst,
          total_cents::int as total, lut_arn, export_with_igst, exchange_rate::float8 as rate,
          inr_taxable_paise::int as inr_taxable, inr_total_paise::int as inr_total
        from public.invoices where organization_id = ${org.id}`;
      assertEquals({ ...inv }, {
        currency: "USD", supply_type: "export", taxable: 1200, igst: 216, total: 1416, lut_arn: null,
        export_with_igst: true, rate: RATE, inr_taxable: 102300, inr_total: 120714,
      });
    });
  },
});

Deno.test({ name: "stripe exports: close the connection", ...testOptions, fn: () => sql.end() });
