// An invoice that reads right for Indian buyers, through the invoice-pdf function: a Devanagari
// and a Tamil recipient (name and address) come back from a PDF parser as the same text, and
// page 1 rendered by pdftoppm is not blank where the name is; a 200-character name without
// spaces stays inside the page; the invoice shows that it is paid, the payment reference, the
// service period and the supplier's contact email; the Total box leaves the Total Tax row clear.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { extractText, getDocumentProxy } from "npm:unpdf@1.8.1";
import { formatDate } from "../supabase/functions/_shared/format.ts";
import { adminSql, createUser, functionsUrl, mintToken } from "./helpers.ts";

const sql = adminSql(2);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

const HINDI = "भारत ट्रेडिंग प्राइवेट लिमिटेड";
const TAMIL = "தமிழ்நாடு கைத்தறி நெசவாளர் கூட்டுறவு";
const TAMIL_ADDRESS = "எண் 12, அண்ணா சாலை";
const LONG = "W".repeat(200);

const PAGE_W = 595.28;
const PAGE_H = 841.89;
const MARGIN = 40;

let plan: Promise<string> | undefined;
function planCode(): Promise<string> {
  plan ??= (async () => {
    const code = `scripts_${rand()}`;
    await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, active)
      values (${code}, 'Scripts Monthly', 'pro', 'month', 49900, true)`;
    await sql`update public.billing_settings set seller_email = coalesce(seller_email, 'accounts@seller.test')`;
    return code;
  })();
  return plan;
}

/** An organization with this billing name and address, its plan paid through PayU as a buyer pays: its invoice and the owner's token. */
async function paidInvoice(billingName: string, address: string | null) {
  const code = await planCode();
  const owner = await createUser(sql);
  const [{ id: org }] = await sql`insert into public.organizations
      (name, billing_name, billing_address_line1, billing_city, billing_postal_code, state_code)
    values (${`Scripts ${rand()}`}, ${billingName}, ${address}, 'Chennai', '600002', '33') returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${owner}, 'owner')`;
  const order = await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${JSON.stringify({ sub: owner, role: "authenticated" })}, true)`;
    const [row] = await tx`select order_id, receipt, amount_cents::bigint as amount
      from public.create_checkout_order(${org}, ${code}, 'payu')`;
    return row;
  });
  const payment = `pay_${order.receipt}`;
  const [{ r }] = await sql`select billing.apply_payment_event(${
    sql.json({
      provider: "payu",
      event_id: `${order.receipt}:success`,
      event_type: "payment.success",
      kind: "payment_captured",
      subscription_status: null,
      error_reason: null,
      order_ref: order.receipt,
      provider_order_id: null,
      provider_payment_id: payment,
      provider_subscription_id: null,
      provider_refund_id: null,
      amount_paise: Number(order.amount),
      currency: "INR",
      status: "success",
      method: "upi",
      occurred_at: null,
      payload: {},
    })
  }) as r`;
  assertEquals(r.result, "applied", JSON.stringify(r));
  const [{ id }] = await sql`select id from public.invoices where order_id = ${order.order_id}`;
  const res = await fetch(`${functionsUrl("invoice-pdf")}?id=${id}`, {
    headers: { authorization: `Bearer ${await mintToken(owner)}` },
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  assertEquals(res.status, 200, new TextDecoder().decode(bytes.slice(0, 300)));
  return { bytes, payment, org: org as string, invoiceId: id as string };
}

interface Item {
  str: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The text items of page 1 with their positions (PDF points, y up), and the page's text. */
async function itemsOf(bytes: Uint8Array): Promise<{ items: Item[]; text: string }> {
  const doc = await getDocumentProxy(bytes.slice());
  const page = await doc.getPage(1);
  const content = await page.getTextContent();
  // deno-lint-ignore no-explicit-any
  const items = (content.items as any[]).filter((i) => typeof i.str === "string" && i.str !== "").map((
    i,
  ) => ({
    str: i.str as string,
    x: i.transform[4] as number,
    y: i.transform[5] as number,
    width: i.width as number,
    height: i.height as number,
  }));
  const { text } = await extractText(await getDocumentProxy(bytes.slice()), { mergePages: true });
  return { items, text };
}

/** Page 1 as grayscale pixels at `dpi` (pdftoppm). */
async function raster(bytes: Uint8Array, dpi: number) {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/p.pdf`, bytes);
    const out = await new Deno.Command("pdftoppm", {
      args: ["-gray", "-r", String(dpi), "-f", "1", "-l", "1", "-singlefile", `${dir}/p.pdf`, `${dir}/p`],
    }).output();
    assert(
      out.success,
      `pdftoppm (poppler-utils, installed by the scripts): ${new TextDecoder().decode(out.stderr)}`,
    );
    const pgm = await Deno.readFile(`${dir}/p.pgm`);
    const header = new TextDecoder().decode(pgm.slice(0, 20)).split(/\s+/);
    const [w, h] = [Number(header[1]), Number(header[2])];
    const pixels = pgm.slice(pgm.length - w * h);
    const k = dpi / 72;
    /** The pixels in a box of PDF points (x, y up). */
    const box = (x1: number, y1: number, x2: number, y2: number) => {
      const out: number[] = [];
      for (
        let py = Math.max(0, Math.floor((PAGE_H - y2) * k));
        py < Math.min(h, Math.ceil((PAGE_H - y1) * k));
        py++
      ) {
        for (let px = Math.max(0, Math.floor(x1 * k)); px < Math.min(w, Math.ceil(x2 * k)); px++) {
          out.push(pixels[py * w + px]);
        }
      }
      return out;
    };
    return { box };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const find = (items: Item[], s: string) => {
  const item = items.find((i) => i.str.includes(s));
  assert(item, `"${s}" among the page's text: ${JSON.stringify(items.map((i) => i.str))}`);
  return item;
};

Deno.test(
  "a Devanagari name and a Tamil address come back as the same text, and are drawn (pdftoppm)",
  testOptions,
  async () => {
    const { bytes } = await paidInvoice(HINDI, TAMIL_ADDRESS);
    const { items, text } = await itemsOf(bytes);
    assert(text.includes(HINDI), `the Devanagari name copies back as written:\n${text}`);
    assert(text.includes(TAMIL_ADDRESS), `the Tamil address copies back as written:\n${text}`);
    const name = find(items, HINDI);
    const { box } = await raster(bytes, 100);
    const ink = box(name.x, name.y - 3, name.x + name.width, name.y + 10).filter((p) => p < 128).length;
    assert(ink > 150, `the name's area has ink (${ink} dark pixels)`);
    const address = find(items, TAMIL_ADDRESS);
    const inkAddress =
      box(address.x, address.y - 3, address.x + address.width, address.y + 9).filter((p) => p < 128).length;
    assert(inkAddress > 100, `the address's area has ink (${inkAddress} dark pixels)`);
    // Small: the Indic fonts are embedded as subsets (a full Noto Sans Devanagari alone is 229 KB).
    assert(bytes.length < 120_000, `${bytes.length} bytes`);
  },
);

Deno.test("a Tamil name comes back as the same text", testOptions, async () => {
  const { bytes } = await paidInvoice(TAMIL, "12 Anna Salai");
  const { text } = await itemsOf(bytes);
  assert(text.includes(TAMIL), `the Tamil name copies back as written:\n${text}`);
});

Deno.test("a 200-character name without spaces wraps inside the page", testOptions, async () => {
  const { bytes } = await paidInvoice(LONG, null);
  const { items, text } = await itemsOf(bytes);
  const lines = items.filter((i) => /^W+$/.test(i.str));
  assertEquals(lines.map((i) => i.str).join("").length, 200, "every character is drawn");
  assert(lines.length > 1, "on several lines");
  for (const l of lines) {
    assert(
      l.x >= MARGIN - 0.5 && l.x + l.width <= PAGE_W - MARGIN + 0.5,
      `inside the margins: ${l.x} + ${l.width}`,
    );
  }
  assert(text.replace(/\s+/g, "").includes(LONG), "and reads back whole");
  const { box } = await raster(bytes, 72);
  const outside = box(PAGE_W - MARGIN + 2, 0, PAGE_W, PAGE_H).filter((p) => p < 200).length;
  assertEquals(outside, 0, "nothing is drawn in the right margin");
});

Deno.test(
  "the invoice shows it is paid, the payment reference, the service period and the supplier's email; the Total box clears the row above",
  testOptions,
  async () => {
    const { bytes, payment, org } = await paidInvoice("Kaveri Textiles Private Limited", "45 MG Road");
    const { items, text } = await itemsOf(bytes);
    const flat = text.replace(/\s+/g, " ");
    const [sub] = await sql`select current_period_start, current_period_end from public.subscriptions
    where organization_id = ${org} and status = 'active'`;
    const [{ seller_email }] = await sql`select seller_email from public.billing_settings`;
    const paidOn = formatDate(new Date().toISOString());
    assert(flat.includes(`Paid on ${paidOn} (upi via payu)`), flat);
    // The reference is long and without spaces: it may wrap inside its column.
    assert(flat.replace(/\s+/g, "").includes(`PaymentRef.${payment}`), flat);
    assert(
      flat.includes(
        `Service Period ${formatDate(sub.current_period_start.toISOString())} to ${
          formatDate(sub.current_period_end.toISOString())
        }`,
      ),
      flat,
    );
    assert(flat.includes(`Email: ${seller_email}`), flat);

    // The Total box (shaded, grey 237) must not reach the Total Tax row: its glyphs, descenders included.
    const tax = find(items, "Total Tax");
    const { box } = await raster(bytes, 300);
    // Between the label and its amount, where no glyph is (their edges are grey too), from the
    // row's descenders (2.5 pt under its baseline) up.
    const gap = [tax.x + tax.width + 4, tax.x + tax.width + 40] as const;
    const shade = box(gap[0], tax.y - 2.5, gap[1], tax.y + 7).filter((p) => p >= 232 && p <= 242).length;
    assertEquals(shade, 0, "no shade behind the Total Tax row");
    const total = find(items, "Total Amount");
    const underTotal = box(gap[0], total.y - 2, gap[1], total.y).filter((p) => p >= 232 && p <= 242).length;
    assert(underTotal > 0, "the Total Amount row is on the shade");
  },
);

Deno.test("close the pool", testOptions, async () => {
  await sql.end();
});
