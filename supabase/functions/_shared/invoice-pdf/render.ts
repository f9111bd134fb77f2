// Renders the JSON of public.invoice_document / public.credit_note_document as a GST tax invoice
// (or credit note) PDF with every field of CGST Rule 46: the supplier's legal name, address and
// GSTIN; the serial number and date; the recipient's name, address and GSTIN where registered;
// place of supply with state name and code; SAC and description; taxable value; CGST + SGST or
// IGST rate and amount; the total in figures and in words; reverse charge; a signature block.
// A discounted line (invoice_lines.list_cents, discount_cents, discount_code) shows its list price,
// the discount with its code and the taxable value left, the tax standing on that taxable value;
// the totals repeat them above the taxable value. An undiscounted invoice has no discount rows.
//
// The payment (paid, its reference and date) and the service period it bought are in the
// particulars, the supplier's contact email under its address. Names, addresses and descriptions
// in Devanagari, Bengali, Tamil, Telugu, Kannada, Malayalam, Gujarati and Gurmukhi are shaped and
// drawn in Noto Sans of their script, and copy back as the same text (./text.ts); a word wider
// than its box (a long name without spaces) is broken between its characters to stay inside it.
//
// Deterministic: the same document renders to the same bytes. The PDF's dates are the document's
// issued_at, the producer and creator are fixed, pdf-lib's font subset tags come from its seeded
// generator, and nothing else varies (no ids, no clock). Money and dates are written as the emails
// write them (../format.ts).
import { PDFDocument, type PDFPage, rgb } from "npm:pdf-lib@1.17.1";
import { formatDate, formatMoney } from "../format.ts";
import fontkit from "./fontkit.ts";
import { TextSetter } from "./text.ts";

export interface Party {
  legal_name: string;
  gstin: string | null;
  state_code: string | null;
  state_name: string | null;
  address_line1: string | null;
  address_line2: string | null;
  city: string | null;
  postal_code: string | null;
  country: string | null;
  email: string | null;
}

export interface DocumentLine {
  line_number: number;
  description: string;
  sac_code: string | null;
  quantity: number;
  gst_rate_bp: number | null;
  cgst_rate_bp: number | null;
  sgst_rate_bp: number | null;
  igst_rate_bp: number | null;
  taxable_cents: number;
  cgst_cents: number;
  sgst_cents: number;
  igst_cents: number;
  total_cents: number;
  /** A discounted line only (absent otherwise): the price before the discount, the discount and its code. */
  list_cents?: number | null;
  discount_cents?: number | null;
  discount_code?: string | null;
}

/** The JSON of invoice_document (document_type tax_invoice) or credit_note_document (credit_note). */
export interface TaxDocument {
  document_type: "tax_invoice" | "credit_note";
  title: string;
  invoice_number?: string;
  invoice_date?: string;
  credit_note_number?: string;
  credit_note_date?: string;
  kind?: string;
  reason?: string;
  invoice?: { invoice_id: string; invoice_number: string; invoice_date: string };
  issued_at: string;
  currency: string;
  reverse_charge: boolean;
  supply_type: "intra_state" | "inter_state" | "export";
  /** Tax-inclusive prices: a discounted line's list price and discount are then gross amounts. */
  prices_include_tax?: boolean;
  seller: Party;
  buyer: Party;
  place_of_supply: { state_code: string | null; state_name: string | null };
  lines: DocumentLine[];
  totals: {
    taxable_cents: number;
    cgst_cents: number;
    sgst_cents: number;
    igst_cents: number;
    tax_cents: number;
    total_cents: number;
  };
  amount_in_words: string | null;
  /** An invoice: how it was paid (every invoice is issued for a paid order). */
  payment?: {
    status: string;
    provider: string | null;
    reference: string | null;
    method: string | null;
    paid_at: string | null;
  } | null;
  /** An invoice for a plan: the period the payment bought. */
  service_period?: { start: string; end: string } | null;
  /** An export's endorsement (Rule 46: under LUT with its ARN, or on payment of IGST); null otherwise. */
  endorsement?: string | null;
  lut_arn?: string | null;
  /** A document in a foreign currency: the rupees per unit it was converted at and its INR values. */
  inr_value?: {
    exchange_rate: number | string;
    exchange_rate_source?: string | null;
    taxable_paise: number;
    tax_paise: number;
    total_paise: number;
  } | null;
}

/** A rate of rupees per unit without trailing zeros: "83.25" for 83.250000. */
export function formatExchangeRate(rate: number | string): string {
  const [whole, fraction = ""] = String(rate).split(".");
  const trimmed = fraction.replace(/0+$/, "");
  return trimmed ? `${whole}.${trimmed}` : whole;
}

/** The INR value line of a document in a foreign currency, as the PDF prints it. */
export function inrValueLine(doc: TaxDocument): string | null {
  const v = doc.inr_value;
  if (!v) return null;
  return `Value in INR at 1 ${doc.currency} = ₹${formatExchangeRate(v.exchange_rate)}` +
    `${v.exchange_rate_source === "provider" ? " (the payment provider's rate)" : ""}: ` +
    `taxable value ${formatMoney(Number(v.taxable_paise), "INR")}, tax ${formatMoney(Number(v.tax_paise), "INR")}, ` +
    `total ${formatMoney(Number(v.total_paise), "INR")}`;
}

/** The document's number: the invoice number or the credit note number. */
export function documentNumber(doc: TaxDocument): string {
  return (doc.document_type === "credit_note" ? doc.credit_note_number : doc.invoice_number) ?? "";
}

/** A file name for the document: its number with "/" as "-", e.g. INV-26-27-000123.pdf. */
export function documentFileName(doc: TaxDocument): string {
  return `${documentNumber(doc).replaceAll("/", "-")}.pdf`;
}

/** Basis points as a percentage: 900 -> 9%, 250 -> 2.5%. */
export function formatRate(bp: number | null | undefined): string {
  const v = Number(bp ?? 0);
  const whole = Math.trunc(v / 100);
  const frac = String(v % 100).padStart(2, "0").replace(/0+$/, "");
  return `${whole}${frac ? `.${frac}` : ""}%`;
}

/** A document's date (a `date` column, "YYYY-MM-DD") as "15 June 2026"; "" when it has none. */
function documentDate(iso: string | undefined): string {
  return iso ? formatDate(iso) : "";
}

/** A line with a discount (list_cents present and a discount above zero). */
export function isDiscounted(line: DocumentLine): boolean {
  return line.list_cents !== null && line.list_cents !== undefined && Number(line.discount_cents ?? 0) > 0;
}

/** A discount's label: "Discount (DIWALI20)", or "Discount" without a code. */
export function discountLabel(code: string | null | undefined): string {
  return code ? `Discount (${code})` : "Discount";
}

/** A state as "Karnataka (29)"; an export's place of supply as "Outside India". */
export function formatState(name: string | null | undefined, code: string | null | undefined): string {
  if (name && code) return `${name} (${code})`;
  return name ?? (code ? `State code ${code}` : "");
}

/** The address lines of a party, without empty parts. */
export function addressLines(p: Party): string[] {
  const lines: string[] = [];
  if (p.address_line1) lines.push(p.address_line1);
  if (p.address_line2) lines.push(p.address_line2);
  const cityPin = [p.city, p.postal_code].filter(Boolean).join(" - ");
  if (cityPin) lines.push(cityPin);
  if (p.country && p.country !== "IN") lines.push(`Country: ${p.country}`);
  return lines;
}

let fonts: Promise<[Uint8Array, Uint8Array]> | undefined;

/** DejaVu Sans regular and bold (bundled in ./fonts: they have the rupee sign U+20B9). */
function loadFonts(): Promise<[Uint8Array, Uint8Array]> {
  fonts ??= Promise.all([
    Deno.readFile(new URL("./fonts/DejaVuSans.ttf", import.meta.url)),
    Deno.readFile(new URL("./fonts/DejaVuSans-Bold.ttf", import.meta.url)),
  ]);
  return fonts;
}

const PAGE_W = 595.28; // A4
const PAGE_H = 841.89;
const MARGIN = 40;
const INK = rgb(0.1, 0.1, 0.1);
const MUTED = rgb(0.35, 0.35, 0.35);
const RULE = rgb(0.7, 0.7, 0.7);
const SHADE = rgb(0.93, 0.93, 0.93);
/** The Total box: its height (from 6 under the Total row's baseline), and its gap under the row above. */
export const TOTAL_BOX_H = 19;
const TOTAL_GAP = 5;

/**
 * Split text into lines no wider than width at size, on spaces; a word wider than the width by
 * itself (a long name without spaces) is broken between its characters (grapheme clusters).
 */
function wrap(text: string, t: TextSetter, bold: boolean, size: number, width: number): string[] {
  const fits = (s: string) => t.width(s, size, bold) <= width;
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const next = line ? `${line} ${word}` : word;
    if (fits(next)) {
      line = next;
      continue;
    }
    if (line) out.push(line);
    line = word;
    if (!fits(line)) {
      // Too wide alone: as many characters a line as fit (at least one).
      const graphemes = [...new Intl.Segmenter("en", { granularity: "grapheme" }).segment(word)].map((g) => g.segment);
      line = "";
      for (const g of graphemes) {
        if (line && !fits(line + g)) {
          out.push(line);
          line = g;
        } else {
          line += g;
        }
      }
    }
  }
  if (line) out.push(line);
  return out.length ? out : [""];
}

/** size, or smaller when text at size is wider than width (a long discount code). */
function fitSize(text: string, t: TextSetter, size: number, width: number, bold = false): number {
  const at = t.width(text, size, bold);
  return at <= width ? size : Math.max(5, Math.floor((size * width / at) * 10) / 10);
}

class Writer {
  constructor(readonly page: PDFPage, readonly t: TextSetter) {}

  text(s: string, x: number, y: number, { size = 9, bold = false, color = INK } = {}) {
    this.t.draw(this.page, s, x, y, { size, bold, color });
  }

  width(s: string, size = 9, bold = false): number {
    return this.t.width(s, size, bold);
  }

  right(s: string, xRight: number, y: number, { size = 9, bold = false, color = INK } = {}) {
    this.text(s, xRight - this.width(s, size, bold), y, { size, bold, color });
  }

  center(s: string, y: number, { size = 9, bold = false, color = INK } = {}) {
    this.text(s, (PAGE_W - this.width(s, size, bold)) / 2, y, { size, bold, color });
  }

  hr(y: number, x1 = MARGIN, x2 = PAGE_W - MARGIN) {
    this.page.drawLine({ start: { x: x1, y }, end: { x: x2, y }, thickness: 0.6, color: RULE });
  }

  /** Label: value pairs, one a line, from y down; returns the y under the last. */
  pairs(rows: [string, string][], x: number, y: number, labelWidth: number, valueWidth: number): number {
    for (const [label, value] of rows) {
      this.text(label, x, y, { color: MUTED });
      const lines = wrap(value, this.t, true, 9, valueWidth);
      for (const [i, l] of lines.entries()) this.text(l, x + labelWidth, y - i * 12, { bold: true });
      y -= 12 * lines.length + 2;
    }
    return y;
  }

  /** A party block: heading, bold name, address, state, GSTIN; returns the y under it. */
  party(heading: string, p: Party, x: number, y: number, width: number, unregistered: string, withEmail = false): number {
    this.text(heading, x, y, { size: 8, bold: true, color: MUTED });
    y -= 14;
    for (const l of wrap(p.legal_name, this.t, true, 10.5, width)) {
      this.text(l, x, y, { size: 10.5, bold: true });
      y -= 13;
    }
    for (const a of addressLines(p)) {
      for (const l of wrap(a, this.t, false, 9, width)) {
        this.text(l, x, y);
        y -= 11.5;
      }
    }
    if (p.state_code || p.state_name) {
      this.text(`State: ${formatState(p.state_name, p.state_code)}`, x, y);
      y -= 11.5;
    }
    for (const l of wrap(`GSTIN: ${p.gstin ?? unregistered}`, this.t, true, 9, width)) {
      this.text(l, x, y, { bold: true });
      y -= 11.5;
    }
    if (withEmail && p.email) {
      for (const l of wrap(`Email: ${p.email}`, this.t, false, 9, width)) {
        this.text(l, x, y);
        y -= 11.5;
      }
    }
    return y;
  }
}

/** An invoice's payment and service period rows for the particulars ("Paid", reference, date, period). */
export function paymentRows(doc: TaxDocument): [string, string][] {
  const rows: [string, string][] = [];
  const p = doc.payment;
  if (p) {
    const via = [p.method, p.provider].filter(Boolean).join(" via ");
    rows.push(["Payment", `${p.status === "paid" ? "Paid" : p.status}${p.paid_at ? ` on ${formatDate(p.paid_at)}` : ""}${via ? ` (${via})` : ""}`]);
    if (p.reference) rows.push(["Payment Ref.", p.reference]);
  }
  const sp = doc.service_period;
  if (sp?.start && sp?.end) rows.push(["Service Period", `${formatDate(sp.start)} to ${formatDate(sp.end)}`]);
  return rows;
}

/** Render a tax invoice or credit note document to PDF bytes. */
export async function renderTaxDocument(doc: TaxDocument): Promise<Uint8Array> {
  const [regularBytes, boldBytes] = await loadFonts();
  const pdf = await PDFDocument.create({ updateMetadata: false });
  pdf.registerFontkit(fontkit);
  const regular = await pdf.embedFont(regularBytes, { subset: true });
  const bold = await pdf.embedFont(boldBytes, { subset: true });
  // The Indic fonts the document's text needs (none for an all-Latin one).
  const ts = await TextSetter.create(pdf, regular, bold, [JSON.stringify(doc)]);

  const isCredit = doc.document_type === "credit_note";
  const number = documentNumber(doc);
  const issued = new Date(doc.issued_at);
  pdf.setTitle(`${isCredit ? "Credit Note" : "Tax Invoice"} ${number}`);
  pdf.setAuthor(doc.seller.legal_name);
  pdf.setSubject(`${doc.title} ${number}`);
  pdf.setProducer("supabill invoice-pdf");
  pdf.setCreator("supabill");
  pdf.setCreationDate(issued);
  pdf.setModificationDate(issued);

  const page = pdf.addPage([PAGE_W, PAGE_H]);
  const w = new Writer(page, ts);
  const currency = doc.currency;
  const money = (c: number) => formatMoney(c, currency);
  const right = PAGE_W - MARGIN;

  // Title.
  let y = PAGE_H - MARGIN - 8;
  w.center(isCredit ? "CREDIT NOTE" : "TAX INVOICE", y, { size: 16, bold: true });
  y -= 15;
  if (doc.supply_type === "export" && !isCredit) {
    w.center("Supply meant for export under LUT without payment of IGST", y, { size: 9, color: MUTED });
    y -= 12;
  }
  w.center("Original for Recipient", y, { size: 8, color: MUTED });
  y -= 12;
  w.hr(y);
  y -= 18;

  // Supplier (left) and the document's particulars (right).
  const top = y;
  const leftWidth = 270;
  const yParty = w.party("SUPPLIER", doc.seller, MARGIN, y, leftWidth, "Not registered", true);
  const rx = MARGIN + leftWidth + 25;
  const particulars: [string, string][] = isCredit
    ? [
      ["Credit Note No.", number],
      ["Credit Note Date", documentDate(doc.credit_note_date)],
      ["Against Invoice", doc.invoice?.invoice_number ?? ""],
      ["Invoice Date", documentDate(doc.invoice?.invoice_date)],
      ["Reason", `${doc.kind === "void" ? "Void" : "Refund"}: ${doc.reason ?? ""}`],
    ]
    : [
      ["Invoice No.", number],
      ["Invoice Date", documentDate(doc.invoice_date)],
      ...paymentRows(doc),
    ];
  particulars.push(
    ["Place of Supply", formatState(doc.place_of_supply.state_name, doc.place_of_supply.state_code)],
    [
      "Supply Type",
      doc.supply_type === "intra_state"
        ? "Intra-state (CGST+SGST)"
        : doc.supply_type === "inter_state"
        ? "Inter-state (IGST)"
        : "Export of services (zero-rated)",
    ],
    ["Reverse Charge", doc.reverse_charge ? "Yes" : "No"],
    ["Currency", currency],
  );
  const yParticulars = w.pairs(particulars, rx, top, 92, right - rx - 92);
  y = Math.min(yParty, yParticulars) - 8;
  w.hr(y);
  y -= 18;

  // Recipient.
  y = w.party("RECIPIENT (BILL TO)", doc.buyer, MARGIN, y, right - MARGIN, "Unregistered");
  y -= 8;

  // Lines.
  const intra = doc.supply_type === "intra_state";
  type Col = { title: string; x: number; w: number; align: "left" | "right" };
  const cols: Col[] = intra
    ? [
      { title: "#", x: MARGIN + 4, w: 14, align: "left" },
      { title: "Description", x: MARGIN + 20, w: 150, align: "left" },
      { title: "SAC", x: MARGIN + 174, w: 40, align: "left" },
      { title: "Taxable Value", x: MARGIN + 216, w: 70, align: "right" },
      { title: "CGST", x: MARGIN + 290, w: 70, align: "right" },
      { title: "SGST", x: MARGIN + 364, w: 70, align: "right" },
      { title: "Total", x: MARGIN + 438, w: 73, align: "right" },
    ]
    : [
      { title: "#", x: MARGIN + 4, w: 14, align: "left" },
      { title: "Description", x: MARGIN + 20, w: 200, align: "left" },
      { title: "SAC", x: MARGIN + 224, w: 46, align: "left" },
      { title: "Taxable Value", x: MARGIN + 272, w: 80, align: "right" },
      { title: "IGST", x: MARGIN + 356, w: 75, align: "right" },
      { title: "Total", x: MARGIN + 435, w: 76, align: "right" },
    ];
  const cell = (c: Col, s: string, yy: number, opts: { bold?: boolean; size?: number; color?: typeof INK } = {}) =>
    c.align === "right" ? w.right(s, c.x + c.w, yy, opts) : w.text(s, c.x, yy, opts);

  page.drawRectangle({ x: MARGIN, y: y - 6, width: right - MARGIN, height: 20, color: SHADE });
  for (const c of cols) cell(c, c.title, y, { bold: true, size: 8.5 });
  y -= 22;
  const incl = doc.prices_include_tax ? " (incl. GST)" : "";
  for (const line of doc.lines) {
    const desc = wrap(line.description, ts, false, 9, cols[1].w);
    const values = intra
      ? [
        String(line.line_number),
        "",
        line.sac_code ?? "",
        money(line.taxable_cents),
        money(line.cgst_cents),
        money(line.sgst_cents),
        money(line.total_cents),
      ]
      : [String(line.line_number), "", line.sac_code ?? "", money(line.taxable_cents), money(line.igst_cents), money(line.total_cents)];
    // A discounted line: under its description, the list price, the discount with its code and
    // the taxable value left, stacked in the Taxable Value column; the tax and the total stand on
    // the taxable value's row. An undiscounted line is one row, as it always was.
    let rowY = y;
    let rows = Math.max(desc.length, 2);
    if (isDiscounted(line)) {
      for (const [i, c] of cols.entries()) if (i === 0 || i === 2) cell(c, values[i], y);
      for (const [i, l] of desc.entries()) w.text(l, cols[1].x, y - i * 11.5);
      let sy = y - desc.length * 11.5;
      const sub = (label: string, value: string, strong = false) => {
        const size = fitSize(label, ts, 8.5, cols[1].w - 8, strong);
        w.text(label, cols[1].x + 8, sy, { size, bold: strong, color: strong ? INK : MUTED });
        cell(cols[3], value, sy, { bold: strong });
        sy -= 11.5;
      };
      sub(`List price${incl}`, money(Number(line.list_cents)));
      sub(discountLabel(line.discount_code), money(-Number(line.discount_cents)));
      rowY = sy;
      sub("Taxable value", money(line.taxable_cents), true);
      for (const [i, c] of cols.entries()) if (i > 3) cell(c, values[i], rowY);
      rows = Math.round((y - sy) / 11.5) + 1;
    } else {
      for (const [i, c] of cols.entries()) if (i !== 1) cell(c, values[i], y);
      for (const [i, l] of desc.entries()) w.text(l, cols[1].x, y - i * 11.5);
    }
    // Rates under the tax amounts.
    const rateY = rowY - 11.5;
    if (intra) {
      cell(cols[4], `@ ${formatRate(line.cgst_rate_bp)}`, rateY, { size: 8, color: MUTED });
      cell(cols[5], `@ ${formatRate(line.sgst_rate_bp)}`, rateY, { size: 8, color: MUTED });
    } else {
      cell(cols[4], `@ ${formatRate(line.igst_rate_bp)}`, rateY, { size: 8, color: MUTED });
    }
    y -= rows * 11.5 + 6;
    w.hr(y + 6);
  }
  y -= 10;

  // Totals.
  const t = doc.totals;
  const firstLine = doc.lines[0];
  const totals: [string, string][] = [];
  const discounted = doc.lines.filter(isDiscounted);
  if (discounted.length) {
    // The list price of the discounted lines with the others' price (their taxable value, or
    // their total when prices include tax), then the discount.
    const priceOf = (l: DocumentLine) =>
      Number(isDiscounted(l) ? l.list_cents : doc.prices_include_tax ? l.total_cents : l.taxable_cents);
    const list = doc.lines.reduce((sum, l) => sum + priceOf(l), 0);
    const codes = [...new Set(discounted.map((l) => l.discount_code).filter(Boolean))];
    totals.push([`List Price${incl}`, money(list)]);
    totals.push([
      discountLabel(codes.length === 1 ? codes[0] : null),
      money(-discounted.reduce((sum, l) => sum + Number(l.discount_cents), 0)),
    ]);
  }
  totals.push(["Taxable Value", money(t.taxable_cents)]);
  if (intra) {
    totals.push([`CGST @ ${formatRate(firstLine?.cgst_rate_bp)}`, money(t.cgst_cents)]);
    totals.push([`SGST @ ${formatRate(firstLine?.sgst_rate_bp)}`, money(t.sgst_cents)]);
  } else {
    totals.push([`IGST @ ${formatRate(firstLine?.igst_rate_bp)}`, money(t.igst_cents)]);
  }
  totals.push(["Total Tax", money(t.tax_cents)]);
  const tx = MARGIN + 300;
  for (const [label, value] of totals) {
    w.text(label, tx, y, { size: fitSize(label, ts, 9, right - 4 - tx - 8 - w.width(value)) });
    w.right(value, right - 4, y);
    y -= 14;
  }
  // The Total box starts under the last row's descenders (a gap of TOTAL_GAP below them).
  y -= TOTAL_GAP;
  page.drawRectangle({ x: tx - 6, y: y - 6, width: right - tx + 6, height: TOTAL_BOX_H, color: SHADE });
  w.text(isCredit ? "Total Credit" : "Total Amount", tx, y, { bold: true, size: 10.5 });
  w.right(money(t.total_cents), right - 4, y, { bold: true, size: 10.5 });
  y -= 28;

  // Amount in words.
  w.text("Amount in words", MARGIN, y, { size: 8, bold: true, color: MUTED });
  y -= 13;
  const words = doc.amount_in_words ?? `${currency} ${formatMoney(t.total_cents, currency).replace(/^\D+ /, "")}`;
  for (const l of wrap(words, ts, true, 9.5, right - MARGIN)) {
    w.text(l, MARGIN, y, { bold: true, size: 9.5 });
    y -= 12.5;
  }
  y -= 6;
  w.text(`Tax payable on reverse charge: ${doc.reverse_charge ? "Yes" : "No"}`, MARGIN, y);
  y -= 12;
  // An export: the endorsement Rule 46 asks for (under LUT with its ARN, or on payment of IGST).
  if (doc.supply_type === "export") {
    const endorsement = doc.endorsement ?? "SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX";
    for (const l of wrap(endorsement, ts, true, 8.5, right - MARGIN)) {
      w.text(l, MARGIN, y, { bold: true, size: 8.5 });
      y -= 11;
    }
    y -= 1;
  }
  // A foreign currency: the rate it was converted at and the INR values.
  const inr = inrValueLine(doc);
  if (inr) {
    for (const l of wrap(inr, ts, false, 8.5, right - MARGIN)) {
      w.text(l, MARGIN, y, { size: 8.5 });
      y -= 11;
    }
    y -= 1;
  }
  if (isCredit) {
    w.text(`This credit note reduces invoice ${doc.invoice?.invoice_number ?? ""} dated ${documentDate(doc.invoice?.invoice_date)}.`, MARGIN, y, {
      color: MUTED,
    });
    y -= 12;
  }

  // Signature block.
  y -= 24;
  const sx = right - 200;
  for (const l of wrap(`For ${doc.seller.legal_name}`, ts, true, 9.5, 200)) {
    w.text(l, sx, y, { bold: true, size: 9.5 });
    y -= 12;
  }
  y -= 34;
  page.drawLine({ start: { x: sx, y: y + 10 }, end: { x: right, y: y + 10 }, thickness: 0.6, color: RULE });
  w.text("Authorised Signatory", sx, y);

  w.hr(MARGIN + 12);
  w.center("This is a computer-generated document.", MARGIN, { size: 7.5, color: MUTED });

  return await pdf.save({ useObjectStreams: false });
}
