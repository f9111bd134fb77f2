// The notifications-send worker end to end: notifications in the outbox (as the jobs and the
// payment path queue them), the worker through the local functions server, the official resend
// client pointed at the fake email API (RESEND_BASE_URL), and the fake's records proving who got
// what and how often. Each test first drains whatever else is due, so the fake's failures on
// demand reach this test's notifications. A payment_captured email carries the invoice PDF and,
// for a discounted payment, the list price and the code's discount.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { extractText, getDocumentProxy } from "npm:unpdf@1.8.1";
import { formatMoney } from "../supabase/functions/_shared/format.ts";
import { NOTIFICATION_KINDS, TEMPLATE_KINDS } from "../supabase/functions/notifications-send/templates.ts";
import { adminSql, createUser, env, functionsUrl, mintToken } from "./helpers.ts";

type Json = Record<string, unknown>;

const sql = adminSql(8);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

const suffix = rand();
const PLAN_CODE = `t_mail_${suffix}`;
const PLAN_NAME = `Mail Pro ${suffix}`;
/** The plan's price, 999.00: plus 18 % GST for a one-time order, GST included for a Razorpay subscription. */
const PRICE = 99900;
const AMOUNT = "₹1,178.82";
const AMOUNT_RECURRING = "₹999.00";

let plansReady: Promise<string> | undefined;
function ensurePlan(): Promise<string> {
  plansReady ??= (async () => {
    await sql`update public.billing_settings
      set gst_rate_bp = 1800, prices_include_tax = false,
          seller_legal_name = coalesce(seller_legal_name, 'Supabill Test Seller Pvt Ltd'),
          seller_gstin = case when left(seller_gstin, 2) = '29' then seller_gstin end, seller_state_code = '29'`;
    const [{ id }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, currency, features, active)
      values (${PLAN_CODE}, ${PLAN_NAME}, 'pro', 'month', ${PRICE}, 'INR', '{"max_members": 10}'::jsonb, true) returning id`;
    return id as string;
  })();
  return plansReady;
}

interface Org {
  id: string;
  subscription: string;
  owner: string;
  ownerEmail: string;
  adminEmail: string;
}

/** An organization with an owner, an admin and a member (emails lower-case), on the test plan. */
async function makeOrg({ billingEmail = null as string | null, razorpay = false } = {}): Promise<Org> {
  const planId = await ensurePlan();
  const tag = rand();
  const ownerEmail = `owner-${tag}@mail.test`;
  const adminEmail = `admin-${tag}@mail.test`;
  const owner = await createUser(sql, ownerEmail);
  const admin = await createUser(sql, adminEmail);
  const member = await createUser(sql, `member-${tag}@mail.test`);
  const [{ id }] = await sql`insert into public.organizations (name, billing_email, state_code)
    values (${`Mail ${tag}`}, ${billingEmail}, '29') returning id`;
  const [{ id: subscription }] = await sql`insert into public.subscriptions
      (organization_id, plan_id, status, current_period_start, current_period_end, provider, provider_subscription_id)
    values (${id}, ${planId}, 'active', now() - interval '29 days', now() + interval '1 day',
            ${razorpay ? "razorpay" : "payu"}, ${razorpay ? `sub_mail_${tag}` : null})
    returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role)
    values (${id}, ${owner}, 'owner'), (${id}, ${admin}, 'admin'), (${id}, ${member}, 'member')`;
  return { id, subscription, owner, ownerEmail, adminEmail };
}

const at = () => new Date(Date.now() + 86_400_000).toISOString();

/** A payload like the one SQL queues for each kind. */
function payloadOf(kind: string, org: Org, planId: string): Json {
  const t = at();
  switch (kind) {
    case "renewal_reminder":
      return { reminder: "1d", plan_id: planId, plan_code: PLAN_CODE, plan_name: PLAN_NAME, amount_cents: PRICE, period_end: t };
    case "pre_debit_notice":
      return {
        reminder: "24h",
        plan_id: planId,
        plan_code: PLAN_CODE,
        plan_name: PLAN_NAME,
        period_end: t,
        charge_at: t,
        provider_subscription_id: `sub_mail_${org.id.slice(0, 8)}`,
      };
    case "dunning_reminder":
      return { day: 1, plan_id: planId, plan_code: PLAN_CODE, period_end: t, grace_ends_at: t };
    case "payment_failed":
      return { order_id: crypto.randomUUID(), receipt: `rcpt_${rand()}`, amount_cents: 117882, currency: "INR", plan_code: PLAN_CODE };
    case "subscription_canceled":
    case "trial_ended":
      return { plan_id: planId, ended_at: t, trial_end: t };
    case "subscription_expired":
      return { plan_id: planId, period_end: t, ended_at: t };
    case "plan_downgraded":
      return { old_plan_id: planId, new_plan_id: planId, effective_at: t };
    case "subscription_refunded":
    case "subscription_disputed":
      return { plan_id: planId, ended_at: t, reason: "refund", provider_payment_id: `pay_${rand()}` };
    case "payment_disputed":
      return { provider_payment_id: `pay_${rand()}`, dispute_id: `disp_${rand()}`, amount_cents: 117882, currency: "INR" };
    case "trial_ending":
      return { plan_id: planId, plan_code: PLAN_CODE, plan_name: PLAN_NAME, amount_cents: PRICE, trial_end: t };
    case "cancellation_scheduled":
      return { plan_id: planId, period_end: t, status: "active" };
    case "provider_action_failed":
      return { provider_action_id: crypto.randomUUID(), provider: "razorpay", kind: "cancel", target: "sub_x", error: "HTTP 400" };
  }
  return {};
}

/**
 * Kinds with a test of their own: payment_captured (the invoice PDF, below), quota_threshold
 * (usage-alerts.test.ts), credits_low and ai_batch_completed (below: they name credits or a
 * batch, not a plan and an amount), billing_email_confirmation (customer-emails.test.ts: it goes
 * to the address being confirmed).
 */
const OWN_TESTS = new Set([
  "payment_captured",
  "quota_threshold",
  "credits_low",
  "ai_batch_completed",
  "billing_email_confirmation",
]);

/** Every value of public.notification_kind and its audience, as the database says. */
async function kindsInDatabase(): Promise<{ kind: string; audience: string }[]> {
  const rows = await sql`select k::text as kind, billing.notification_audience(k) as audience
    from unnest(enum_range(null::public.notification_kind)) as k`;
  return rows.map((r) => ({ kind: String(r.kind), audience: String(r.audience) }));
}

async function queue(org: Org, kind: string, payload: Json): Promise<string> {
  const [{ id }] = await sql`insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
    values (${org.id}, ${org.subscription}, ${kind}, ${JSON.stringify(payload)}::text::jsonb, ${`${kind}:${rand()}${rand()}`})
    returning id`;
  return id as string;
}

async function send(token?: string, body: Json = {}) {
  const headers = new Headers({ "content-type": "application/json" });
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  const res = await fetch(functionsUrl("notifications-send"), { method: "POST", headers, body: JSON.stringify(body) });
  const text = await res.text();
  let json: Json = {};
  try {
    json = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body: json };
}

const serviceKey = () => env("SUPABASE_SERVICE_ROLE_KEY");
const fakes = () => env("FAKE_UPSTREAMS_URL");

async function emailControl(body: Json): Promise<void> {
  const res = await fetch(`${fakes()}/__control/email`, { method: "POST", body: JSON.stringify(body) });
  assertEquals(res.status, 200);
  await res.body?.cancel();
}

interface Stored {
  emails: {
    id: string;
    to: string[];
    subject: string;
    text: string;
    html: string;
    idempotency_key: string;
    from: string;
    attachments: { filename: string; content: string }[] | null;
  }[];
  calls: { idempotency_key: string | null; status: number }[];
}
async function stored(): Promise<Stored> {
  return await (await fetch(`${fakes()}/__control/email`)).json();
}

/** Sends whatever is due now (other files' notifications included) until nothing is claimed. */
async function drain(): Promise<void> {
  await emailControl({ fail_status: null });
  for (let i = 0; i < 20; i++) {
    const r = await send(serviceKey(), { limit: 1000 });
    assertEquals(r.status, 200, JSON.stringify(r.body));
    if (r.body.claimed === 0) return;
  }
}

async function row(id: string) {
  const [n] = await sql`select sent_at, failed_at, attempts, last_error, locked_until, locked_until > now() + interval '20 seconds' as backing_off
    from public.notifications where id = ${id}`;
  return n;
}

Deno.test("every notification_kind of the database has a template, and every template a kind", testOptions, async () => {
  const inDatabase = (await kindsInDatabase()).map((k) => k.kind);
  assertEquals([...TEMPLATE_KINDS].sort(), [...inDatabase].sort());
  assertEquals([...NOTIFICATION_KINDS], inDatabase, "database.types.ts has the enum as the database has it");
});

Deno.test("every kind renders (amount in rupees, plan) and goes to the right recipients", testOptions, async () => {
  await drain();
  const planId = await ensurePlan();
  const plain = await makeOrg();
  const billed = await makeOrg({ billingEmail: `Accounts-${rand()}@Billing.Test`, razorpay: true });
  const [{ billing_email }] = await sql`select billing_email from public.organizations where id = ${billed.id}`;
  const kinds = (await kindsInDatabase()).filter((k) => !OWN_TESTS.has(k.kind));
  const ownersOnly = new Set(kinds.filter((k) => k.audience === "owners").map((k) => k.kind));
  assert(ownersOnly.size > 0 && ownersOnly.size < kinds.length, "both audiences are exercised");
  const ids = new Map<string, { org: Org; kind: string }>();
  for (const org of [plain, billed]) {
    for (const { kind } of kinds) ids.set(await queue(org, kind, payloadOf(kind, org, planId)), { org, kind });
  }
  const r = await send(serviceKey(), { limit: 1000 });
  assertEquals(r.status, 200, JSON.stringify(r.body));
  const items = (r.body.items as { id: string; state: string; error?: string }[]).filter((i) => ids.has(i.id));
  assertEquals(items.length, ids.size);
  for (const item of items) assertEquals(item.state, "sent", `${ids.get(item.id)!.kind}: ${item.error}`);

  const { emails } = await stored();
  for (const [id, { org, kind }] of ids) {
    const mine = emails.filter((e) => e.idempotency_key === id);
    assertEquals(mine.length, 1, `${kind} sent once`);
    const email = mine[0];
    const expected = ownersOnly.has(kind)
      ? [org.ownerEmail]
      : org === billed
      ? [String(billing_email).toLowerCase()]
      : [org.adminEmail, org.ownerEmail].sort();
    assertEquals(email.to, expected, `${kind} recipients`);
    assert(email.subject.includes(PLAN_NAME), `${kind} subject names the plan: ${email.subject}`);
    const amount = org === billed && !["payment_failed", "payment_disputed"].includes(kind) ? AMOUNT_RECURRING : AMOUNT;
    assert(email.text.includes(amount), `${kind} text has the amount in rupees: ${email.text}`);
    assert(email.text.includes(PLAN_NAME), `${kind} text names the plan`);
    assert(email.html.includes(amount) && email.html.includes("<a href="), `${kind} html has the amount and the link`);
    assertEquals(email.from, env("EMAIL_FROM"));
    if (kind === "pre_debit_notice") {
      const [{ seller_legal_name }] = await sql`select seller_legal_name from public.billing_settings`;
      assert(email.text.includes(String(seller_legal_name)), "the pre-debit notice names the merchant");
      assert(email.text.includes("sub_mail_"), "and the reference");
      assert(/cancel/i.test(email.text), "and how to cancel");
    }
    const n = await row(id);
    assert(n.sent_at !== null && n.failed_at === null, `${kind} marked sent`);
  }
});

Deno.test("ai_batch_completed: the batch's counts and charge; a released batch says nothing was charged", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  const batch = crypto.randomUUID();
  const done = await queue(org, "ai_batch_completed",
    { batch_id: batch, state: "completed", requests: 50, settled: 49, failed: 1, charged_paise: 1234 });
  const released = await queue(org, "ai_batch_completed",
    { batch_id: batch, state: "released", requests: 50, settled: 0, failed: 50, charged_paise: 0 });
  const r = await send(serviceKey(), { limit: 1000 });
  assertEquals(r.status, 200, JSON.stringify(r.body));
  const { emails } = await stored();
  const [a] = emails.filter((e) => e.idempotency_key === done);
  const [b] = emails.filter((e) => e.idempotency_key === released);
  assert(a.subject.endsWith("AI batch is done: 49 of 50 requests answered"), a.subject);
  assert(a.text.includes("49 answered, 1 failed (not charged)") && a.text.includes("₹12.34") && a.text.includes(batch), a.text);
  assertEquals(a.to, [org.adminEmail, org.ownerEmail].sort());
  assert(b.subject.endsWith("AI batch could not be run"), b.subject);
  assert(b.text.includes("Nothing was charged") && b.text.includes("₹0.00"), b.text);
});

Deno.test("credits_low: a charge crossing the threshold queues one email naming the balance; charges under it, none", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  await sql`select billing.operator_grant_credits(${org.id}, 100, null, 'credits for the mail test')`;
  // The organization's own threshold (a plan feature overrides the setting): its plan is this file's.
  await sql`update public.billing_plans set features = features || '{"credits_low_threshold": 50}'
    where id = (select plan_id from public.subscriptions where id = ${org.subscription})`;
  const notes = () => sql`select id, payload from public.notifications where organization_id = ${org.id} and kind = 'credits_low'`;
  await sql`select public.consume_credits(${org.id}, 'api_call_basic', 40, null)`;
  assertEquals((await notes()).length, 0, "60 left: above the threshold");
  await sql`select public.consume_credits(${org.id}, 'api_call_basic', 22, null)`;
  await sql`select public.consume_credits(${org.id}, 'api_call_basic', 1, null)`;
  const queued = await notes();
  assertEquals(queued.length, 1, "one notification for the crossing, none for the charge under it");
  assertEquals(queued[0].payload, { balance: 38, threshold: 50 });

  const r = await send(serviceKey(), { limit: 1000 });
  assertEquals(r.status, 200, JSON.stringify(r.body));
  const mine = (await stored()).emails.filter((e) => e.idempotency_key === queued[0].id);
  assertEquals(mine.length, 1, "sent once");
  assertEquals(mine[0].to, [org.adminEmail, org.ownerEmail].sort());
  assert(mine[0].subject.includes("38 credits left"), mine[0].subject);
  assert(mine[0].text.includes("fell under 50") && mine[0].text.includes("credit pack"), mine[0].text);
});

Deno.test("payment_captured: the email carries the invoice PDF, named and numbered like the invoice", testOptions, async () => {
  await drain();
  const planId = await ensurePlan();
  const org = await makeOrg();
  const [{ id: orderId }] = await sql`insert into public.orders
      (organization_id, plan_id, subscription_id, provider, amount_cents, status, paid_at)
    values (${org.id}, ${planId}, ${org.subscription}, 'manual', ${PRICE}, 'paid', now()) returning id`;
  const [{ invoice_id }] = await sql`select billing.issue_invoice(${orderId}::uuid, null) as invoice_id`;
  const [invoice] = await sql`select invoice_number, total_cents from public.invoices where id = ${invoice_id}`;
  const [note] = await sql`select id, payload from public.notifications
    where organization_id = ${org.id} and kind = 'payment_captured'`;
  assert(note, "issuing the invoice queued payment_captured");
  assertEquals(note.payload.invoice_id, invoice_id);

  const r = await send(serviceKey(), { limit: 1000 });
  assertEquals(r.status, 200, JSON.stringify(r.body));
  const item = (r.body.items as { id: string; state: string; error?: string }[]).find((i) => i.id === note.id);
  assertEquals(item?.state, "sent", item?.error);

  const mine = (await stored()).emails.filter((e) => e.idempotency_key === note.id);
  assertEquals(mine.length, 1, "sent once");
  const email = mine[0];
  assertEquals(email.to, [org.adminEmail, org.ownerEmail].sort());
  const amount = formatMoney(Number(invoice.total_cents));
  assert(email.subject.includes(PLAN_NAME) && email.subject.includes(String(invoice.invoice_number)), email.subject);
  assert(email.text.includes(amount) && email.text.includes(String(invoice.invoice_number)), email.text);
  assert(email.html.includes(amount) && email.html.includes("<a href="), "html has the amount and the link");
  assert(!/discount|list price/i.test(email.text), `no discount in an undiscounted payment's email:\n${email.text}`);

  assertEquals(email.attachments?.length, 1, "one attachment");
  const [file] = email.attachments!;
  assertEquals(file.filename, `${String(invoice.invoice_number).replaceAll("/", "-")}.pdf`);
  const bytes = Uint8Array.from(atob(file.content), (c) => c.charCodeAt(0));
  assertEquals(new TextDecoder().decode(bytes.slice(0, 4)), "%PDF");
  const { text } = await extractText(await getDocumentProxy(bytes.slice()), { mergePages: true });
  assert(text.includes(String(invoice.invoice_number)), `the PDF names invoice ${invoice.invoice_number}`);
  assert(text.includes(amount), `the PDF writes the total as the email does (${amount})`);
  assert((await row(note.id)).sent_at !== null, "marked sent");
});

Deno.test("payment_captured of a discounted payment says the list price and the code's discount, as the invoice does", testOptions, async () => {
  await drain();
  await ensurePlan();
  const org = await makeOrg();
  const code = `MAIL${rand().toUpperCase()}`;
  await sql`select billing.create_discount_code(${code}, ${sql.json({ percent_bps: 1000, plans: [PLAN_CODE] })})`;
  // Checked out with the code by the owner and paid, as tests/discounts.test.ts does.
  const order = await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${JSON.stringify({ sub: org.owner, role: "authenticated" })}, true)`;
    const [row] = await tx`select order_id, receipt, amount_cents::bigint as amount
      from public.create_checkout_order(${org.id}, ${PLAN_CODE}, 'payu', ${code})`;
    return row;
  });
  const [{ r }] = await sql`select billing.apply_payment_event(${sql.json({
    provider: "payu", event_id: `${order.receipt}:success`, event_type: "payment.success", kind: "payment_captured",
    subscription_status: null, error_reason: null, order_ref: order.receipt, provider_order_id: null,
    provider_payment_id: `pay_${order.receipt}`, provider_subscription_id: null, provider_refund_id: null,
    amount_paise: Number(order.amount), currency: "INR", status: "success", method: "upi", occurred_at: null, payload: {},
  })}) as r`;
  assertEquals(r.result, "applied", JSON.stringify(r));
  const [line] = await sql`select l.list_cents, l.discount_cents, i.total_cents from public.invoices i
    join public.invoice_lines l on l.invoice_id = i.id where i.order_id = ${order.order_id}`;
  assertEquals([Number(line.list_cents), Number(line.discount_cents)], [PRICE, 9990], "10 % off 999.00");
  const [note] = await sql`select id from public.notifications where organization_id = ${org.id} and kind = 'payment_captured'`;

  const res = await send(serviceKey(), { limit: 1000 });
  assertEquals(res.status, 200, JSON.stringify(res.body));
  const [email] = (await stored()).emails.filter((e) => e.idempotency_key === note.id);
  assert(email, "sent");
  for (
    const needle of [
      `we received ${formatMoney(Number(line.total_cents))}`,
      `The code ${code} took ₹99.90 off the list price of ₹999.00`,
      "List price: ₹999.00",
      `Discount (${code}): -₹99.90`,
      `Amount paid: ${formatMoney(Number(line.total_cents))}`,
    ]
  ) assert(email.text.includes(needle), `"${needle}" is not in the email:\n${email.text}`);
  assert(email.html.includes(`Discount (${code})`), "the html has the discount too");
  assertEquals(email.attachments?.length, 1, "the invoice PDF is attached");
});

Deno.test("payment_captured for an invoice that does not exist is marked failed, not sent", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  const id = await queue(org, "payment_captured", {
    invoice_id: crypto.randomUUID(),
    invoice_number: "NOPE/1",
    amount_cents: 117882,
    currency: "INR",
    plan_code: PLAN_CODE,
    paid_at: at(),
  });
  const r = await send(serviceKey(), { limit: 1000 });
  assertEquals(r.status, 200, JSON.stringify(r.body));
  const item = (r.body.items as { id: string; state: string; error?: string }[]).find((i) => i.id === id);
  assertEquals(item?.state, "failed");
  assert(/does not exist/.test(item?.error ?? ""), item?.error);
  assertEquals((await stored()).emails.filter((e) => e.idempotency_key === id).length, 0);
});

Deno.test("5 concurrent senders over 200 due notifications send each exactly once", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  const ids = new Set<string>();
  const payload = payloadOf("payment_failed", org, await ensurePlan());
  await Promise.all(Array.from({ length: 200 }, async () => ids.add(await queue(org, "payment_failed", payload))));
  assertEquals(ids.size, 200);
  for (let round = 0; round < 10; round++) {
    const answers = await Promise.all(Array.from({ length: 5 }, () => send(serviceKey(), { limit: 25 })));
    for (const a of answers) assertEquals(a.status, 200, JSON.stringify(a.body));
    const [{ left }] = await sql`select count(*)::int as left from public.notifications
      where id = any (${[...ids]}::uuid[]) and sent_at is null`;
    if (left === 0) break;
  }
  const { emails, calls } = await stored();
  const mine = emails.filter((e) => ids.has(e.idempotency_key));
  assertEquals(mine.length, 200, "200 emails");
  assertEquals(new Set(mine.map((e) => e.idempotency_key)).size, 200, "one per notification");
  assertEquals(calls.filter((c) => c.idempotency_key !== null && ids.has(c.idempotency_key)).length, 200, "one call each");
  const [{ sent, once }] = await sql`select count(*) filter (where sent_at is not null)::int as sent,
      count(*) filter (where attempts = 1)::int as once
    from public.notifications where id = any (${[...ids]}::uuid[])`;
  assertEquals([sent, once], [200, 200]);
});

Deno.test("a 500 then success: retried after a backoff, sent once", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  const id = await queue(org, "payment_failed", payloadOf("payment_failed", org, await ensurePlan()));
  await emailControl({ fail_status: 500, fail_count: 1 });
  const first = await send(serviceKey());
  const item = (first.body.items as { id: string; state: string }[]).find((i) => i.id === id);
  assertEquals(item?.state, "retry");
  assertEquals(first.body.retried, 1);
  let n = await row(id);
  assert(n.sent_at === null && n.failed_at === null && n.backing_off, "not sent, not failed, backing off");
  assert(String(n.last_error).includes("500"), String(n.last_error));

  const soon = await send(serviceKey());
  assert(!(soon.body.items as { id: string }[]).some((i) => i.id === id), "not tried again before the backoff ends");

  await sql`update public.notifications set locked_until = now() - interval '1 second' where id = ${id}`;
  const later = await send(serviceKey());
  assertEquals((later.body.items as { id: string; state: string }[]).find((i) => i.id === id)?.state, "sent");
  n = await row(id);
  assert(n.sent_at !== null && n.attempts === 2);
  const { emails, calls } = await stored();
  assertEquals(emails.filter((e) => e.idempotency_key === id).length, 1, "one email");
  assertEquals(calls.filter((c) => c.idempotency_key === id).map((c) => c.status), [500, 200]);
});

Deno.test("a 429 is retried like a 500, after the provider's Retry-After", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  const id = await queue(org, "payment_failed", payloadOf("payment_failed", org, await ensurePlan()));
  await emailControl({ fail_status: 429, fail_count: 1, fail_retry_after: 120 });
  const r = await send(serviceKey());
  assertEquals((r.body.items as { id: string; state: string }[]).find((i) => i.id === id)?.state, "retry");
  const [{ wait }] = await sql`select extract(epoch from locked_until - now())::int as wait from public.notifications where id = ${id}`;
  assert(wait > 100 && wait <= 120, `waits the Retry-After (${wait}s)`);
  await emailControl({ fail_retry_after: null });
});

Deno.test("a permanent 422 marks the notification failed with the provider's message", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  const id = await queue(org, "payment_failed", payloadOf("payment_failed", org, await ensurePlan()));
  await emailControl({ fail_status: 422, fail_count: 1, fail_message: "Invalid `to` field." });
  const r = await send(serviceKey());
  assertEquals((r.body.items as { id: string; state: string }[]).find((i) => i.id === id)?.state, "failed");
  const n = await row(id);
  assert(n.failed_at !== null && n.sent_at === null);
  assert(String(n.last_error).includes("422 validation_error: Invalid `to` field."), String(n.last_error));
  const again = await send(serviceKey());
  assert(!(again.body.items as { id: string }[]).some((i) => i.id === id), "never claimed again");
  assertEquals((await stored()).emails.filter((e) => e.idempotency_key === id).length, 0);
});

Deno.test("no recipient: failed with a reason, not retried", testOptions, async () => {
  await drain();
  const planId = await ensurePlan();
  const member = await createUser(sql);
  const [{ id: orgId }] = await sql`insert into public.organizations (name) values (${`Mail lonely ${rand()}`}) returning id`;
  await sql`insert into public.organization_members (organization_id, user_id, role) values (${orgId}, ${member}, 'member')`;
  const [{ id }] = await sql`insert into public.notifications (organization_id, kind, payload, dedupe_key)
    values (${orgId}, 'trial_ended', ${JSON.stringify({ plan_id: planId, trial_end: at() })}::text::jsonb, ${`lonely:${rand()}`})
    returning id`;
  const r = await send(serviceKey());
  const item = (r.body.items as { id: string; state: string; error: string }[]).find((i) => i.id === id);
  assertEquals(item?.state, "failed");
  const n = await row(id);
  assert(n.failed_at !== null && String(n.last_error).startsWith("no recipient"), String(n.last_error));
  assert(!((await send(serviceKey())).body.items as { id: string }[]).some((i) => i.id === id));
});

Deno.test("the outbox refuses a kind that is not a notification_kind", testOptions, async () => {
  const org = await makeOrg();
  const error = await queue(org, "mystery_kind", {}).then(() => null, (e) => e as { code?: string });
  assertEquals(error?.code, "22P02");
});

Deno.test("one notification whose template cannot render does not stop the others", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  const planId = await ensurePlan();
  const broken = await queue(org, "trial_ended", { plan_id: planId, trial_end: "not a date" });
  const good = [
    await queue(org, "payment_failed", payloadOf("payment_failed", org, planId)),
    await queue(org, "subscription_canceled", payloadOf("subscription_canceled", org, planId)),
  ];
  const r = await send(serviceKey());
  assertEquals(r.status, 200);
  const state = (id: string) => (r.body.items as { id: string; state: string }[]).find((i) => i.id === id)?.state;
  assertEquals([state(broken), ...good.map(state)], ["failed", "sent", "sent"]);
  assert(String((await row(broken)).last_error).startsWith("template: "));
});

Deno.test("without the service key: 401 or 403 and nothing is sent", testOptions, async () => {
  await drain();
  const org = await makeOrg();
  const id = await queue(org, "payment_failed", payloadOf("payment_failed", org, await ensurePlan()));
  assertEquals((await send()).status, 401);
  assertEquals((await send("not-a-token")).status, 401);
  assertEquals((await send(env("SUPABASE_ANON_KEY"))).status, 403);
  assertEquals((await send(await mintToken(org.owner))).status, 403);
  const n = await row(id);
  assert(n.sent_at === null && n.attempts === 0, "not claimed");
  assertEquals((await stored()).emails.filter((e) => e.idempotency_key === id).length, 0);
  await drain();
});

Deno.test({
  name: "close the test database pool",
  fn: async () => await sql.end(),
  ...testOptions,
});
