// The invoice PDF through the local functions server: every Rule 46 field of an intra-state
// (CGST + SGST), an inter-state (IGST) and an export invoice, and of a credit note, found in the
// text a PDF parser extracts, with the values of the invoice row; who may fetch it (members and
// the service key; a non-member 403, an unknown id 404, a malformed id 400, a POST 405); the same
// invoice renders to identical bytes; and, where pdftoppm is installed, page 1 is not blank.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { extractText, getDocumentProxy } from "npm:unpdf@1.8.1";
import { adminSql, createUser, env, functionsUrl, mintToken } from "./helpers.ts";
import { formatDate, formatMoney } from "../supabase/functions/_shared/format.ts";
import { formatRate, formatState } from "../supabase/functions/_shared/invoice-pdf/render.ts";

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
    return {
      invoiceId: invoices.intra,
      creditNoteId,
      ownerToken: await mintToken(owner),
      outsiderToken: await mintToken(outsider),
      invoices,
    };
  })();
  return fixture;
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
  assertHas(text, words, "total in words");
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
    ? "invoice-pdf: page 1 renders to a PNG that is not blank (pdftoppm)"
    : "invoice-pdf: page 1 renders to a PNG that is not blank (SKIPPED: pdftoppm is not installed; apt-get install poppler-utils)",
  ignore: !pdftoppm,
  fn: async () => {
    const f = await setup();
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/invoice.pdf`, await pdfOf(f.invoiceId, f.ownerToken));
      // Grayscale PGM: one byte a pixel after a text header, easy to count without a PNG decoder.
      for (const args of [["-png"], ["-gray"]]) {
        const out = await new Deno.Command("pdftoppm", {
          args: [...args, "-r", "50", "-f", "1", "-l", "1", "-singlefile", `${dir}/invoice.pdf`, `${dir}/page`],
        }).output();
        assert(out.success, new TextDecoder().decode(out.stderr));
      }
      const png = await Deno.readFile(`${dir}/page.png`);
      assertEquals([...png.slice(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
      const pgm = await Deno.readFile(`${dir}/page.pgm`);
      const header = new TextDecoder().decode(pgm.slice(0, 20)).split(/\s+/);
      const [w, h] = [Number(header[1]), Number(header[2])];
      const pixels = pgm.slice(pgm.length - w * h);
      const dark = pixels.filter((p) => p < 128).length;
      assert(dark > w * h * 0.005, `only ${dark} dark pixels of ${w * h}: the page looks blank`);
      assert(dark < w * h * 0.5, `${dark} dark pixels of ${w * h}: the page looks filled`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("invoice-pdf: restore the seller settings and close the connection", async () => {
  if (settingsBefore) await sql`update public.billing_settings set ${sql(settingsBefore)}`;
  await sql.end();
});
