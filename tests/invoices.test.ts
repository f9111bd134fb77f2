// Gapless invoice numbering under real concurrency: 20 connections issue invoices at once, some
// inside transactions that roll back; the committed invoices of the financial year are numbered
// exactly 1..N (after whatever the year already had), with no gap and no duplicate.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { adminSql, env } from "./helpers.ts";

const CONNECTIONS = 20;
const COMMITTED = 2000;
const ROLLED_BACK = 300;
// A financial year no other test uses (FY 2041-42), pinned per transaction through the test clock.
const PINNED_NOW = "2041-06-15 12:00:00+05:30";
const FINANCIAL_YEAR = 2041;

class Rollback extends Error {}

Deno.test("20 connections issue 2,000 invoices at once, with rollbacks among them: numbered 1..N, no gap, no duplicate", async () => {
  const sql = adminSql();
  const pool = postgres(env("SUPABASE_DB_URL"), { max: CONNECTIONS, prepare: false, onnotice: () => {} });
  const [settingsBefore] = await sql`select seller_legal_name, seller_state_code from public.billing_settings`;
  try {
    // The seller must be known to issue invoices; keep any configured seller.
    await sql`update public.billing_settings
      set seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
          seller_state_code = coalesce(seller_state_code, left(seller_gstin, 2), '29')`;

    const tag = `inv_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, price_cents)
      values (${tag}, ${tag}, 'pro', 99900) returning id`;
    const [{ id: orgId }] = await sql`insert into public.organizations (name, billing_name, state_code)
      values (${tag}, ${tag}, '27') returning id`;
    const orders: string[] = (await sql`
      insert into public.orders (organization_id, plan_id, provider, amount_cents, status, paid_at)
      select ${orgId}, ${planId}, 'manual', 99900 + g, 'paid', now()
      from generate_series(1, ${COMMITTED + ROLLED_BACK}) g
      returning id`).map((r) => r.id as string);

    const [{ base }] = await sql`select coalesce(
        (select last_number from billing.invoice_counters where series = 'invoice' and financial_year = ${FINANCIAL_YEAR}),
        0)::int as base`;

    // Each transaction invoices a batch of 4 orders; every 7th batch among the first 525 (75
    // batches, 300 invoices) rolls back after issuing all four.
    const BATCH = 4;
    const batches = Array.from({ length: orders.length / BATCH }, (_, b) => orders.slice(b * BATCH, (b + 1) * BATCH));
    const rollsBack = (b: number) => b % 7 === 3 && b < 7 * (ROLLED_BACK / BATCH);
    const rolledBackOrders = new Set(batches.filter((_, b) => rollsBack(b)).flat());
    assertEquals(rolledBackOrders.size, ROLLED_BACK);

    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const b = next++;
        try {
          await pool.begin(async (tx) => {
            await tx`select set_config('billing.now', ${PINNED_NOW}, true)`;
            for (const orderId of batches[b]) await tx`select billing.issue_invoice(${orderId}, null)`;
            if (rollsBack(b)) throw new Rollback();
          });
        } catch (e) {
          if (!(e instanceof Rollback)) throw e;
        }
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));

    const invoices = await sql`select order_id, serial::int as serial, invoice_number, financial_year
      from public.invoices where organization_id = ${orgId} order by serial`;
    assertEquals(invoices.length, COMMITTED, "one invoice per committed order");

    const serials = invoices.map((r) => r.serial as number);
    assertEquals(serials, Array.from({ length: COMMITTED }, (_, k) => base + k + 1), "serials are base+1..base+N");

    const [{ last_number }] = await sql`select last_number::int from billing.invoice_counters
      where series = 'invoice' and financial_year = ${FINANCIAL_YEAR}`;
    assertEquals(last_number, base + COMMITTED, "the counter ends at the last committed serial");

    const numbers = new Set(invoices.map((r) => r.invoice_number as string));
    assertEquals(numbers.size, COMMITTED, "no duplicate invoice number");
    const [{ invoice_prefix: prefix }] = await sql`select invoice_prefix from public.billing_settings`;
    const head = `${prefix}/41-42/`;
    for (const r of invoices) {
      assertEquals(r.invoice_number, head + String(r.serial).padStart(16 - head.length, "0"));
      assertEquals(r.financial_year, FINANCIAL_YEAR);
    }

    const invoiced = new Set(invoices.map((r) => r.order_id as string));
    assertEquals(orders.filter((id) => rolledBackOrders.has(id) && invoiced.has(id)).length, 0, "rolled-back invoices are gone");
    assertEquals(orders.filter((id) => !rolledBackOrders.has(id) && !invoiced.has(id)).length, 0, "every committed order has its invoice");
  } finally {
    await sql`update public.billing_settings
      set seller_legal_name = ${settingsBefore.seller_legal_name}, seller_state_code = ${settingsBefore.seller_state_code}`;
    await pool.end();
    await sql.end();
  }
});
