// Stripe-Signature checked against the official stripe package as the oracle: headers it makes
// (webhooks.generateTestHeaderStringAsync) pass our check, forged ones, a wrong secret, a
// timestamp outside the 300 s tolerance, a missing header and v0-only are refused (401 through the
// webhook front, before anything is read from the database); and what the fake Stripe signs passes
// the official constructEventAsync.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import Stripe from "npm:stripe@23.2.0";
import { createStripeAdapter, verifyStripeSignature } from "../supabase/functions/_shared/providers/stripe/index.ts";
import { webhookHandler } from "../supabase/functions/_shared/webhook.ts";
import { fakeStripeSignature } from "./fakes/stripe.ts";

const SECRET = "whsec_test_fake";
const stripe = new Stripe("sk_test_fake");
const body = JSON.stringify({
  id: "evt_sig_1",
  object: "event",
  type: "balance.available",
  created: Math.floor(Date.now() / 1000),
  data: { object: { object: "balance" } },
});
const now = () => Math.floor(Date.now() / 1000);

async function header(opts: { secret?: string; timestamp?: number } = {}) {
  return await stripe.webhooks.generateTestHeaderStringAsync({
    payload: body,
    secret: opts.secret ?? SECRET,
    timestamp: opts.timestamp ?? now(),
  });
}

/** The webhook front with the Stripe adapter and an apply that records instead of the database. */
function front(secrets = SECRET) {
  const applied: unknown[] = [];
  const adapter = createStripeAdapter((name) => name === "STRIPE_WEBHOOK_SECRET" ? secrets : undefined);
  const handler = webhookHandler(adapter, {
    apply: (event) => {
      applied.push(event);
      return Promise.resolve({ result: "ignored" });
    },
  });
  return {
    applied,
    async post(signature: string | null, raw = body) {
      const headers = new Headers({ "content-type": "application/json" });
      if (signature !== null) headers.set("stripe-signature", signature);
      const res = await handler(new Request("http://local/functions/v1/stripe-webhook", { method: "POST", headers, body: raw }));
      return { status: res.status, body: await res.json() };
    },
  };
}

Deno.test("a header made by the official package is accepted, and the event is applied", async () => {
  const f = front();
  const res = await f.post(await header());
  assertEquals(res.status, 200);
  assertEquals(f.applied.length, 1);
  assertEquals((f.applied[0] as { event_id: string }).event_id, "evt_sig_1");
  assertEquals((f.applied[0] as { kind: string }).kind, "other");
});

Deno.test("several v1 signatures (a secret roll) pass when one matches; several secrets configured too", async () => {
  const good = await header();
  const t = /t=(\d+)/.exec(good)![1];
  const other = (await header({ secret: "whsec_other" })).split(",").find((p) => p.startsWith("v1="))!;
  const mine = good.split(",").find((p) => p.startsWith("v1="))!;
  assertEquals((await front().post(`t=${t},${other},${mine}`)).status, 200);
  assertEquals((await front(`whsec_new, ${SECRET}`).post(good)).status, 200);
});

Deno.test("forged, wrong secret, outside the tolerance (old and future), missing and v0-only are refused with 401", async () => {
  const f = front();
  const good = await header();
  const t = /t=(\d+)/.exec(good)![1];
  const cases: [string, string | null, string][] = [
    ["forged", `t=${t},v1=${"0".repeat(64)}`, "invalid_signature"],
    ["wrong secret", await header({ secret: "whsec_wrong" }), "invalid_signature"],
    ["old timestamp", await header({ timestamp: now() - 301 - 5 }), "invalid_signature"],
    ["future timestamp", await header({ timestamp: now() + 400 }), "invalid_signature"],
    ["missing header", null, "missing_signature"],
    ["v0 only", good.replace("v1=", "v0="), "invalid_signature"],
    ["body changed", good, "invalid_signature"],
  ];
  for (const [name, sig, code] of cases) {
    const res = await f.post(sig, name === "body changed" ? body.replace("evt_sig_1", "evt_sig_2") : body);
    assertEquals([name, res.status, (res.body as { error?: { code?: string } }).error?.code ?? res.body.code], [name, 401, code]);
  }
  assertEquals(f.applied.length, 0);
});

Deno.test("the check is Stripe's: tolerance boundary at 300 s, signature checked before time", async () => {
  const t = now();
  const sig = await header({ timestamp: t - 300 });
  assertEquals((await verifyStripeSignature(body, sig, [SECRET], t)).ok, true);
  assertEquals(await verifyStripeSignature(body, sig, [SECRET], t + 1), { ok: false, reason: "outside_tolerance" });
  assertEquals(await verifyStripeSignature(body, sig, ["whsec_x"], t + 1), { ok: false, reason: "mismatch" });
});

Deno.test("what the fake Stripe signs passes the official constructEventAsync, and ours", async () => {
  const sig = await fakeStripeSignature(body, SECRET, now());
  const event = await stripe.webhooks.constructEventAsync(body, sig, SECRET);
  assertEquals(event.id, "evt_sig_1");
  assert((await verifyStripeSignature(body, sig, [SECRET])).ok);
  const old = await fakeStripeSignature(body, SECRET, now() - 600);
  await stripe.webhooks.constructEventAsync(body, old, SECRET).then(
    () => assert(false, "an old signature was accepted by the oracle"),
    () => {},
  );
});
