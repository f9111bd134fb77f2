// The invoice PDF through the local functions server: every Rule 46 field of an intra-state
// (CGST + SGST), an inter-state (IGST) and an export invoice, and of a credit note, found in the
// text a PDF parser extracts, with the values of the invoice row; who may fetch it (members and
// the service key; a non-member 403, an unknown id 404, a malformed id 400, a POST 405); the same
// invoice renders to identical bytes; and, where pdftoppm is installed, page 1 is not blank.
// A discounted invoice (a code checked out and paid as a customer would) shows the list price, the
// discount with its code, the taxable value left, the GST on that value and the total charged; an
// undiscounted one has no discount row. An export in USD zero-rated under the seller's LUT shows
// the endorsement line with the LUT's ARN, the currency and the INR value at the order's rate.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { extractText, getDocumentProxy } from "npm:unpdf@1.8.1";
import { adminSql, createUser, env, functionsUrl, mintToken } from "./helpers.ts";
import { formatDate, formatMoney } from "../supabase/functions/_shared/format.ts";
import { formatExchangeRate, formatRate, formatState } from "../supabase/functions/_shared/invoice-pdf/render.ts";

const SELLER = {
  seller_legal_name: "Supabill PDF Test Seller Private Limited",
  seller_gstin: "29AAACS1234F1ZO",
  seller_state_code: "29",
  seller_address_line1: "No. 12, 3rd Floor, Residency Road",
  seller_city: "Bengaluru",
  seller_postal_code: "560025",
};

type Row = Record<string, unknown>;

interface Fixture {
  invoiceId: string;
  creditNoteId: string;
  ownerToken: string;
  outsiderToken: string;
  invoices: Record<"intra" | "inter" | "export", string>;
  /** An intra-state invoice of an order checked out with a 12.34 % code and paid. */
  discounted: { invoiceId: string; code: string; ownerToken: string };
  /** A USD order of a buyer in the US, zero-rated under the LUT of the current financial year. */
  usd: { invoiceId: string; ownerToken: string };
}

const sql = adminSql();
let fixture: Promise<Fixture> | undefined;
let settingsBefore: Row | undefined;

/** Three organizations (Karnataka with a GSTIN, Maharashtra with a GSTIN, a US buyer with verified exports), one paid order and invoice each, a credit note on the intra-state one. */
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    [settingsBefore] = await sql`select seller_legal_name, seller_gstin, seller_state_code, seller_address_line1,
      seller_address_line2, seller_city, seller_postal_code from public.billing_settings`;
    await sql`update public.billing_settings set ${sql(SELLER)}, seller_address_line2 = null`;
    const tag = `pdf_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, price_cents)
      values (${tag}, 'Pro Monthly', 'pro', 49900) returning id`;
    const owner = await createUser(sql);
    const outsider = await createUser(sql);
    const orgs = {
      intra: { name: `${tag} intra`, billing_name: "Kaveri Analytics Private Limited", gstin: "29AAPFU0939F1ZR",
        billing_address_line1: "45 MG Road", billing_city: "Bengaluru", billing_postal_code: "560001",
        billing_country: "IN", exports_verified: false },
      inter: { name: `${tag} inter`, billing_name: "Acme Widgets LLP", gstin: "27AAPFU0939F1ZV",
        billing_address_line1: "221B Linking Road, Bandra West", billing_city: "Mumbai", billing_postal_code: "400050",
        billing_country: "IN", exports_verified: false },
      export: { name: `${tag} export`, billing_name: "Globex Corporation", gstin: null,
        billing_address_line1: "1 Market Street", billing_city: "San Francisco", billing_postal_code: "94105",
        billing_country: "US", exports_verified: true },
    };
    const invoices = {} as Record<"intra" | "inter" | "export", string>;
    for (const [kind, org] of Object.entries(orgs) as [keyof typeof orgs, Row][]) {
      const [{ id: orgId }] = await sql`insert into public.organizations ${sql(org)} returning id`;
      await sql`insert into public.organization_members (organization_id, user_id, role) values (${orgId}, ${owner}, 'owner')`;
      const [{ id: orderId }] = await sql`insert into public.orders (organization_id, plan_id, provider, amount_cents, status, paid_at)
        values (${orgId}, ${planId}, 'manual', 49900, 'paid', now()) returning id`;
      const [{ id }] = await sql`select billing.issue_invoice(${orderId}, null) as id`;
      invoices[kind] = id;
    }
    const [{ id: creditNoteId }] = await sql`select billing.issue_credit_note(${invoices.intra}, 10000, 'partial refund') as id`;
    const discounted = await discountedInvoice(tag, orgs.intra);
    const usd = await usdExportInvoice(tag, planId, orgs.export);
    return {
      invoiceId: invoices.intra,
      creditNoteId,
      ownerToken: await mintToken(owner),
      outsiderToken: await mintToken(outsider),
      invoices,
      discounted,
      usd,
    };
  })();
  return fixture;
}

/**
 * A discounted invoice made as a customer makes one (as tests/discounts.test.ts does): a 12.34 %
 * code for the plan, an order checked out with it by the owner (create_checkout_order), and its
 * payment applied by the payment path (apply_payment_event), which issues the invoice.
 */
async function discountedInvoice(planCode: string, profile: Row) {
  const owner = await createUser(sql); // the fixture's owner already owns as many organizations as one may
  const code = `PDF${crypto.randomUUID().replaceAll("-", "").slice(0, 8).toUpperCase()}`;
  await sql`select billing.create_discount_code(${code}, ${sql.json({ percent_bps: 1234, plans: [planCode] })})`;
  const [{ id: orgId }] = await sql`insert into public.organizations ${
    sql({ ...profile, name: `${planCode} discounted`, billing_name: "Kaveri Discounted Private Limited" })
  } returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${orgId}, ${owner}, 'owner')`;
  const order = await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${JSON.stringify({ sub: owner, role: "authenticated" })}, true)`;
    const [row] = await tx`select order_id, receipt, amount_cents::bigint as amount
      from public.create_checkout_order(${orgId}, ${planCode}, 'payu', ${code.toLowerCase()})`;
    return row;
  });
  const [{ r }] = await sql`select billing.apply_payment_event(${sql.json({
    provider: "payu", event_id: `${order.receipt}:success`, event_type: "payment.success", kind: "payment_captured",
    subscription_status: null, error_reason: null, order_ref: order.receipt, provider_order_id: null,
    provider_payment_id: `pay_${order.receipt}`, provider_subscription_id: null, provider_refund_id: null,
    amount_paise: Number(order.amount), currency: "INR", status: "success", method: "upi", occurred_at: null, payload: {},
  })}) as r`;
  assertEquals(r.result, "applied", JSON.stringify(r));
  const [{ id: invoiceId }] = await sql`select id from public.invoices where order_id = ${order.order_id}`;
  assert(invoiceId, "the payment issued an invoice");
  return { invoiceId: invoiceId as string, code, ownerToken: await mintToken(owner) };
}

/**
 * A USD export: an LUT for the current financial year and a USD rate are on record (the seed
 * records both; recorded here only when missing), a buyer in the US without verified exports
 * (its own owner: the fixture's owns as many organizations as one may), a $12.00 order, its invoice.
 */
async function usdExportInvoice(tag: string, planId: string, profile: Row) {
  await sql`select billing.operator_record_lut(fy::text || '-' || lpad(((fy + 1) % 100)::text, 2, '0'),
      'AA2904' || lpad((fy % 100)::text, 2, '0') || '000001Z', make_date(fy, 4, 1), 'invoice-pdf test LUT')
    from (select billing.financial_year(billing.now()) as fy) y
    where (billing.lut_for(billing.now())).id is null`;
  await sql`select billing.operator_set_exchange_rate('USD', 84.5, null, 'invoice-pdf test rate')
    where not exists (select 1 from billing.exchange_rates r where r.currency = 'USD' and r.effective_from <= billing.now())`;
  const owner = await createUser(sql);
  const [{ id: orgId }] = await sql`insert into public.organizations ${
    sql({ ...profile, name: `${tag} usd`, billing_name: "Globex Dollar Corporation", exports_verified: false })
  } returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${orgId}, ${owner}, 'owner')`;
  const [{ id: orderId }] = await sql`insert into public.orders (organization_id, plan_id, provider, amount_cents, currency, status, paid_at)
    values (${orgId}, ${planId}, 'manual', 1200, 'USD', 'paid', now()) returning id`;
  const [{ id }] = await sql`select billing.issue_invoice(${orderId}, null) as id`;
  return { invoiceId: id as string, ownerToken: await mintToken(owner) };
}

function get(id: string, token: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${functionsUrl("invoice-pdf")}?id=${encodeURIComponent(id)}`, {
    ...init,
    headers: { authorization: `Bearer ${token}` },
  });
}

async function pdfOf(id: string, token: string): Promise<Uint8Array> {
  const res = await get(id, token);
  const body = new Uint8Array(await res.arrayBuffer());
  assertEquals(res.status, 200, new TextDecoder().decode(body.slice(0, 300)));
  assertEquals(res.headers.get("content-type"), "application/pdf");
  assertEquals(new TextDecoder().decode(body.slice(0, 5)), "%PDF-");
  return body;
}

/** The text of every page, whitespace collapsed. */
async function textOf(bytes: Uint8Array): Promise<string> {
  const { text } = await extractText(await getDocumentProxy(bytes.slice()), { mergePages: true });
  return text.replace(/\s+/g, " ");
}

function assertHas(text: string, needle: string, what: string) {
  assert(text.includes(needle), `${what}: "${needle}" is not in the PDF's text:\n${text}`);
}

/** Every Rule 46 field of an invoice, with the values of its row, in the PDF's text. */
async function assertRule46(invoiceId: string, token: string) {
  const [inv] = await sql`select * from public.invoices where id = ${invoiceId}`;
  const [line] = await sql`select * from public.invoice_lines where invoice_id = ${invoiceId} order by line_number limit 1`;
  const [{ words, seller_state, buyer_state, pos_state }] = await sql`select billing.amount_in_words(${inv.total_cents}) as words,
    billing.gst_state_name(${inv.seller.state_code}) as seller_state, billing.gst_state_name(${inv.buyer.state_code}) as buyer_state,
    billing.gst_state_name(${inv.place_of_supply_state_code}) as pos_state`;
  const res = await get(invoiceId, token);
  assertEquals(
    res.headers.get("content-disposition"),
    `inline; filename="${String(inv.invoice_number).replaceAll("/", "-")}.pdf"`,
  );
  await res.body?.cancel();
  const text = await textOf(await pdfOf(invoiceId, token));
  const money = (c: unknown) => formatMoney(Number(c), inv.currency);

  assertHas(text, "TAX INVOICE", "title");
  // Supplier: legal name, address, GSTIN, state.
  assertHas(text, inv.seller.legal_name, "supplier's legal name");
  assertHas(text, inv.seller.address_line1, "supplier's address");
  assertHas(text, `${inv.seller.city} - ${inv.seller.postal_code}`, "supplier's city and PIN");
  assertHas(text, `GSTIN: ${inv.seller.gstin}`, "supplier's GSTIN");
  assertHas(text, formatState(seller_state, inv.seller.state_code), "supplier's state");
  // Serial number and date.
  assert(String(inv.invoice_number).length <= 16);
  assertHas(text, `Invoice No. ${inv.invoice_number}`, "serial number");
  assertHas(text, `Invoice Date ${formatDate(inv.invoice_date.toISOString().slice(0, 10))}`, "date");
  // Recipient: name, address, GSTIN where registered.
  assertHas(text, inv.buyer.legal_name, "recipient's name");
  assertHas(text, inv.buyer.address_line1, "recipient's address");
  assertHas(text, `GSTIN: ${inv.buyer.gstin ?? "Unregistered"}`, "recipient's GSTIN");
  if (inv.buyer.state_code) assertHas(text, formatState(buyer_state, inv.buyer.state_code), "recipient's state");
  // Place of supply with state name and code.
  assertHas(
    text,
    `Place of Supply ${inv.supply_type === "export" ? "Outside India" : formatState(pos_state, inv.place_of_supply_state_code)}`,
    "place of supply",
  );
  // SAC, description, taxable value.
  assertHas(text, line.sac_code, "SAC");
  assertHas(text, line.description, "description");
  assertHas(text, `Taxable Value ${money(inv.taxable_cents)}`, "taxable value");
  // CGST + SGST or IGST, rate and amount.
  if (inv.supply_type === "intra_state") {
    assertHas(text, `CGST @ ${formatRate(line.cgst_rate_bp)} ${money(inv.cgst_cents)}`, "CGST rate and amount");
    assertHas(text, `SGST @ ${formatRate(line.sgst_rate_bp)} ${money(inv.sgst_cents)}`, "SGST rate and amount");
    assert(!text.includes("IGST @"), "no IGST on an intra-state invoice");
  } else {
    assertHas(text, `IGST @ ${formatRate(line.igst_rate_bp)} ${money(inv.igst_cents)}`, "IGST rate and amount");
    assert(!text.includes("CGST @"), "no CGST on an inter-state or export invoice");
  }
  // Total in figures and in words.
  assertHas(text, `Total Amount ${money(inv.total_cents)}`, "total in figures");
  // In words for rupees; a foreign currency's total is written in its figures.
  assertHas(text, inv.currency === "INR" ? words : money(inv.total_cents), "total in words");
  // Reverse charge, signature block.
  assertHas(text, "Tax payable on reverse charge: No", "reverse charge");
  assertHas(text, `For ${inv.seller.legal_name}`, "signature: for the supplier");
  assertHas(text, "Authorised Signatory", "signature: authorised signatory");
  return { inv, text };
}

Deno.test("invoice-pdf: an intra-state invoice shows every Rule 46 field, with CGST + SGST", async () => {
  const f = await setup();
  const { inv } = await assertRule46(f.invoices.intra, f.ownerToken);
  assertEquals(inv.supply_type, "intra_state");
  assert(Number(inv.cgst_cents) > 0 && inv.cgst_cents === inv.sgst_cents);
});

Deno.test("invoice-pdf: an inter-state invoice shows every Rule 46 field, with IGST", async () => {
  const f = await setup();
  const { inv } = await assertRule46(f.invoices.inter, f.ownerToken);
  assertEquals(inv.supply_type, "inter_state");
  assert(Number(inv.igst_cents) > 0);
});

Deno.test("invoice-pdf: an export invoice shows every Rule 46 field, zero-rated under LUT, place of supply outside India", async () => {
  const f = await setup();
  const { inv, text } = await assertRule46(f.invoices.export, f.ownerToken);
  assertEquals(inv.supply_type, "export");
  assertEquals(Number(inv.igst_cents), 0);
  assertHas(text, "Supply meant for export under LUT without payment of IGST", "export endorsement");
  assertHas(text, "Country: US", "recipient's country");
});

Deno.test("invoice-pdf: a USD export under LUT shows the endorsement with the ARN, the currency and the INR value at the rate", async () => {
  const f = await setup();
  const { inv, text } = await assertRule46(f.usd.invoiceId, f.usd.ownerToken);
  assertEquals([inv.currency, inv.supply_type, Number(inv.igst_cents), Number(inv.total_cents)], ["USD", "export", 0, 1200]);
  assert(inv.lut_arn && /^AA[0-9]{12}[0-9A-Z]$/.test(inv.lut_arn), `the invoice has the LUT's ARN: ${inv.lut_arn}`);
  // The INR value is the total at the order's rate, rounded half up to the paisa.
  const rate = Number(inv.exchange_rate);
  assertEquals(Number(inv.inr_total_paise), Math.round(1200 * rate));
  assertHas(
    text,
    `SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX, LUT ARN ${inv.lut_arn}`,
    "the endorsement line with the ARN",
  );
  assertHas(text, "Currency USD", "the currency");
  assertHas(text, `Total Amount ${formatMoney(1200, "USD")}`, "the total in dollars");
  assertHas(
    text,
    `Value in INR at 1 USD = ₹${formatExchangeRate(inv.exchange_rate)}: taxable value ${formatMoney(Number(inv.inr_taxable_paise))}, ` +
      `tax ₹0.00, total ${formatMoney(Number(inv.inr_total_paise))}`,
    "the INR value at the rate",
  );
});

Deno.test("invoice-pdf: a credit note renders with its number, date, the invoice it refers to and its tax split", async () => {
  const f = await setup();
  const [cn] = await sql`select * from public.credit_notes where id = ${f.creditNoteId}`;
  const [inv] = await sql`select * from public.invoices where id = ${cn.invoice_id}`;
  const [{ words }] = await sql`select billing.amount_in_words(${cn.total_cents}) as words`;
  const text = await textOf(await pdfOf(f.creditNoteId, f.ownerToken));
  const money = (c: unknown) => formatMoney(Number(c), cn.currency);
  assertHas(text, "CREDIT NOTE", "title");
  assertHas(text, `Credit Note No. ${cn.credit_note_number}`, "credit note number");
  assertHas(text, `Credit Note Date ${formatDate(cn.credit_note_date.toISOString().slice(0, 10))}`, "date");
  assertHas(text, `Against Invoice ${inv.invoice_number}`, "the invoice it refers to");
  assertHas(text, `GSTIN: ${inv.seller.gstin}`, "supplier's GSTIN");
  assertHas(text, `GSTIN: ${inv.buyer.gstin}`, "recipient's GSTIN");
  assertHas(text, `Taxable Value ${money(cn.taxable_cents)}`, "taxable value");
  assertHas(text, `CGST @ 9% ${money(cn.cgst_cents)}`, "CGST");
  assertHas(text, `SGST @ 9% ${money(cn.sgst_cents)}`, "SGST");
  assertHas(text, `Total Credit ${money(cn.total_cents)}`, "total");
  assertHas(text, words, "total in words");
  assertHas(text, "Authorised Signatory", "signature");
});

Deno.test("invoice-pdf: a discounted invoice shows the list price, the discount with its code, the taxable value, the GST on it and the total", async () => {
  const f = await setup();
  const [line] = await sql`select * from public.invoice_lines where invoice_id = ${f.discounted.invoiceId}`;
  const [order] = await sql`select o.amount_cents from public.orders o join public.invoices i on i.order_id = o.id
    where i.id = ${f.discounted.invoiceId}`;
  // 12.34 % of 499.00 is 61.58 (half up); CGST and SGST at 9 % on the 437.42 left; 516.16 charged.
  assertEquals(
    [line.list_cents, line.discount_cents, line.taxable_cents, line.cgst_cents, line.sgst_cents, line.total_cents]
      .map(Number),
    [49900, 6158, 43742, 3937, 3937, 51616],
  );
  assertEquals(line.discount_code, f.discounted.code);
  const { inv, text } = await assertRule46(f.discounted.invoiceId, f.discounted.ownerToken);
  assertEquals(Number(inv.total_cents), Number(order.amount_cents), "the invoice's total is what the order charged");
  const money = (c: unknown) => formatMoney(Number(c), inv.currency);
  // The line: the list price, the discount with its code, the taxable value and the tax on it.
  assertHas(
    text,
    `List price ₹499.00 Discount (${f.discounted.code}) -₹61.58 Taxable value ₹437.42 ₹39.37 ₹39.37 ₹516.16 @ 9% @ 9%`,
    "the discounted line",
  );
  // The totals: the same, in order, down to the total charged.
  assertHas(
    text,
    `List Price ${money(line.list_cents)} Discount (${f.discounted.code}) ${money(-Number(line.discount_cents))} ` +
      `Taxable Value ${money(inv.taxable_cents)} CGST @ 9% ${money(inv.cgst_cents)} SGST @ 9% ${money(inv.sgst_cents)} ` +
      `Total Tax ${money(Number(inv.cgst_cents) + Number(inv.sgst_cents))} Total Amount ${money(inv.total_cents)}`,
    "the discounted totals",
  );
  assertHas(text, "Rupees Five Hundred Sixteen and Sixteen Paise Only", "the total charged in words");
});

Deno.test("invoice-pdf: an undiscounted invoice has no discount rows", async () => {
  const f = await setup();
  for (const id of [...Object.values(f.invoices), f.creditNoteId]) {
    const text = await textOf(await pdfOf(id, f.ownerToken));
    for (const absent of ["Discount", "List price", "List Price", "Taxable value"]) {
      assert(!text.includes(absent), `"${absent}" on an undiscounted document:\n${text}`);
    }
  }
});

Deno.test("invoice-pdf: the service role key may fetch any invoice", async () => {
  const f = await setup();
  await pdfOf(f.invoices.inter, env("SUPABASE_SERVICE_ROLE_KEY"));
});

Deno.test("invoice-pdf: a non-member gets 403, an unknown id 404, a malformed id 400, a POST 405, no token 401", async () => {
  const f = await setup();
  const codeOf = async (res: Response) => `${res.status} ${(await res.json()).code}`;
  assertEquals(await codeOf(await get(f.invoiceId, f.outsiderToken)), "403 forbidden");
  assertEquals(await codeOf(await get(f.creditNoteId, f.outsiderToken)), "403 forbidden");
  assertEquals(await codeOf(await get(crypto.randomUUID(), f.ownerToken)), "404 document_not_found");
  assertEquals(await codeOf(await get(crypto.randomUUID(), env("SUPABASE_SERVICE_ROLE_KEY"))), "404 document_not_found");
  assertEquals(await codeOf(await get("not-a-uuid", f.ownerToken)), "400 invalid_id");
  assertEquals(await codeOf(await get("", f.ownerToken)), "400 invalid_id");
  assertEquals(await codeOf(await get(f.invoiceId, f.ownerToken, { method: "POST" })), "405 method_not_allowed");
  const anonymous = await fetch(`${functionsUrl("invoice-pdf")}?id=${f.invoiceId}`);
  assertEquals(anonymous.status, 401);
  await anonymous.body?.cancel();
});

Deno.test("invoice-pdf: the same invoice renders to identical bytes twice, dated by its issue time", async () => {
  const f = await setup();
  const a = await pdfOf(f.invoiceId, f.ownerToken);
  const b = await pdfOf(f.invoiceId, env("SUPABASE_SERVICE_ROLE_KEY"));
  assertEquals(a.byteLength, b.byteLength);
  assert(a.every((x, i) => x === b[i]), "the two renderings differ");
  const [inv] = await sql`select to_char(issued_at at time zone 'UTC', 'YYYYMMDDHH24MISS') as at from public.invoices where id = ${f.invoiceId}`;
  const raw = new TextDecoder("latin1").decode(a);
  assert(raw.includes(`/CreationDate (D:${inv.at}Z)`), "CreationDate is the invoice's issued_at");
});

const pdftoppm = (() => {
  try {
    return new Deno.Command("pdftoppm", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: pdftoppm
    ? "invoice-pdf: page 1 of an invoice and of a discounted one renders to a PNG that is not blank (pdftoppm)"
    : "invoice-pdf: page 1 of an invoice and of a discounted one renders to a PNG that is not blank (SKIPPED: pdftoppm is not installed; apt-get install poppler-utils)",
  ignore: !pdftoppm,
  fn: async () => {
    const f = await setup();
    const dir = await Deno.makeTempDir();
    // INVOICE_PDF_PNG_DIR=<folder> keeps the pages as PNGs there, to look at the layout.
    const keep = Deno.env.get("INVOICE_PDF_PNG_DIR");
    try {
      for (const [name, id] of [["invoice", f.invoiceId], ["discounted", f.discounted.invoiceId]]) {
        await Deno.writeFile(`${dir}/${name}.pdf`, await pdfOf(id, env("SUPABASE_SERVICE_ROLE_KEY")));
        // Grayscale PGM: one byte a pixel after a text header, easy to count without a PNG decoder.
        for (const args of [["-png"], ["-gray"]]) {
          const out = await new Deno.Command("pdftoppm", {
            args: [...args, "-r", "50", "-f", "1", "-l", "1", "-singlefile", `${dir}/${name}.pdf`, `${dir}/${name}`],
          }).output();
          assert(out.success, new TextDecoder().decode(out.stderr));
        }
        const png = await Deno.readFile(`${dir}/${name}.png`);
        assertEquals([...png.slice(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
        if (keep) await Deno.writeFile(`${keep}/${name}.png`, png);
        const pgm = await Deno.readFile(`${dir}/${name}.pgm`);
        const header = new TextDecoder().decode(pgm.slice(0, 20)).split(/\s+/);
        const [w, h] = [Number(header[1]), Number(header[2])];
        const pixels = pgm.slice(pgm.length - w * h);
        const dark = pixels.filter((p) => p < 128).length;
        assert(dark > w * h * 0.005, `${name}: only ${dark} dark pixels of ${w * h}: the page looks blank`);
        assert(dark < w * h * 0.5, `${name}: ${dark} dark pixels of ${w * h}: the page looks filled`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("invoice-pdf: restore the seller settings and close the connection", async () => {
  if (settingsBefore) await sql`update public.billing_settings set ${sql(settingsBefore)}`;
  await sql.end();
});
