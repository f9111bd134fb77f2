// PayU POSTs whose fields repeat or whose unsigned fields are forged, end to end through the
// functions server and the real database: a validly signed failure with `&status=success` added
// must not pay anything, and re-posts of a signed success with other mihpayid and addedon values
// make no second payment and cannot move its time, on the webhook and on the browser's return POST. The hash is computed with node:crypto from the documented
// formula (not our providers/ code).
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createHash } from "node:crypto";
import { adminSql, env, functionsUrl } from "./helpers.ts";

const sql = adminSql(2);
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const rand = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
const PRICE = 49900;

/** A plan, an organization and one open PayU order for it (txnid = the order's receipt). */
async function payuOrder() {
  const tag = rand();
  const [{ id: planId }] = await sql`insert into public.billing_plans (code, name, tier, interval, price_cents)
    values (${`t_payusec_${tag}`}, 'PayU security test', 'basic', 'month', ${PRICE}) returning id`;
  const [{ id: orgId }] = await sql`insert into public.organizations (name) values (${`PayU security ${tag}`}) returning id`;
  const txnid = `sec_${tag}`;
  await sql`insert into public.orders (organization_id, plan_id, provider, receipt, amount_cents, status, expires_at)
    values (${orgId}, ${planId}, 'payu', ${txnid}, ${PRICE}, 'pending', now() + interval '1 day')`;
  return { orgId: orgId as string, txnid };
}

/** PayU's post for the order with the given status, signed with the reverse hash. */
function signedPost(txnid: string, status: string, mihpayid: string, amount = "499.00"): Record<string, string> {
  const f: Record<string, string> = {
    mihpayid, mode: "UPI", status, unmappedstatus: status === "success" ? "captured" : "failed",
    key: env("PAYU_MERCHANT_KEY"), txnid, amount, productinfo: "PayU security test",
    firstname: "Asha", email: "asha@example.in", udf1: "", udf2: "", udf3: "", udf4: "", udf5: "",
  };
  const s = [
    env("PAYU_MERCHANT_SALT"), f.status, "", "", "", "", "", f.udf5, f.udf4, f.udf3, f.udf2, f.udf1,
    f.email, f.firstname, f.productinfo, f.amount, f.txnid, env("PAYU_MERCHANT_KEY"),
  ].join("|");
  f.hash = createHash("sha512").update(s).digest("hex");
  return f;
}

async function post(name: string, body: string) {
  const res = await fetch(functionsUrl(name), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
    redirect: "manual",
  });
  const text = await res.text();
  let code: unknown;
  try {
    code = JSON.parse(text).code;
  } catch {
    code = undefined;
  }
  return { status: res.status, code };
}

/** Everything a PayU delivery could write for the organization or the txnid. */
async function state(orgId: string, txnid: string) {
  const [row] = await sql`select
    (select json_agg(o.status) from public.orders o where o.organization_id = ${orgId}) as orders,
    (select count(*)::int from public.payment_events where organization_id = ${orgId}) as payment_events,
    (select count(*)::int from public.subscriptions where organization_id = ${orgId}) as subscriptions,
    (select count(*)::int from public.subscription_history where organization_id = ${orgId}) as history,
    (select count(*)::int from billing.webhook_events where provider = 'payu' and event_id like ${txnid + ":%"}) as webhook_events`;
  return row;
}

for (const name of ["payu-webhook", "payu-return"]) {
  Deno.test({
    name: `${name}: a signed failure with a second status=success is 400 malformed_body and changes nothing`,
    ...testOptions,
    fn: async () => {
      const { orgId, txnid } = await payuOrder();
      const mihpayid = `mih${rand()}`;
      const signed = new URLSearchParams(signedPost(txnid, "failure", mihpayid)).toString();
      const before = await state(orgId, txnid);
      assertEquals(before.orders, ["pending"]);

      for (const body of [`${signed}&status=success`, `status=success&${signed}`, `${signed}&amount=1.00`]) {
        assertEquals(await post(name, body), { status: 400, code: "malformed_body" }, body);
        assertEquals(await state(orgId, txnid), before, "nothing written");
      }

      // The same delivery without the repeat is accepted and is what it was signed as: a failure.
      const honest = await post(name, signed);
      assertEquals(honest.status < 400, true, JSON.stringify(honest));
      const after = await state(orgId, txnid);
      assertEquals([after.orders, after.subscriptions], [["failed"], 0]);
    },
  });
}

for (const name of ["payu-return", "payu-webhook"]) {
  Deno.test({
    name: `${name}: 50 concurrent re-posts of one signed success with forged mihpayid and addedon make one payment, at our receipt time`,
    ...testOptions,
    fn: async () => {
      const { orgId, txnid } = await payuOrder();
      const [{ now: before }] = await sql`select now()`;
      // The order's total is the price plus GST (the orders' tax trigger): PayU charges that.
      const [{ amount }] = await sql`select amount_cents::int as amount from public.orders where receipt = ${txnid}`;
      const rupees = (amount / 100).toFixed(2);
      // mihpayid and addedon are outside the reverse hash: whoever posts the form chooses them.
      const bodies = Array.from({ length: 50 }, (_, i) =>
        new URLSearchParams({ ...signedPost(txnid, "success", `FORGED-${i}-${rand()}`, rupees), addedon: "2000-01-01 00:00:00" })
          .toString()
      );
      const answers = await Promise.all(bodies.map((b) => post(name, b)));
      assertEquals(answers.every((a) => a.status < 400), true, JSON.stringify(answers.find((a) => a.status >= 400)));
      const [row] = await sql`select
        (select count(*)::int from public.payment_events where organization_id = ${orgId}) as payments,
        (select provider_payment_id from public.payment_events where organization_id = ${orgId}) as payment_id,
        (select bool_and(occurred_at >= ${before}) from public.payment_events where organization_id = ${orgId}) as receipt_time,
        (select count(*)::int from public.subscription_history where organization_id = ${orgId}) as history,
        (select count(*)::int from billing.webhook_events where provider = 'payu' and event_id = ${`${txnid}:success`}) as deliveries,
        (select attempts from billing.webhook_events where provider = 'payu' and event_id = ${`${txnid}:success`}) as attempts`;
      assertEquals({ ...row }, {
        payments: 1, payment_id: txnid, receipt_time: true, history: 1, deliveries: 1, attempts: 50,
      });
    },
  });
}

Deno.test({ name: "close the test database connection", ...testOptions, fn: () => sql.end() });
