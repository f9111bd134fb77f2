// The fake upstreams answer the real SDKs (groq-sdk, razorpay) and our own provider clients the way
// the real services do, and the control API changes their behaviour.

import Groq from "npm:groq-sdk@1.6.0";
// @ts-types="./fixtures/types/razorpay.d.ts"
import Razorpay from "npm:razorpay@2.9.8";

// @ts-types="./fixtures/types/payu-hasher.d.ts"
import payuHasher from "npm:payu-websdk@1.3.1/utils/hasher.js";
import {
  commandHash,
  createPayuAdapter,
  listPayuRefunds,
  payuActionStatus,
  verifyPayuPayment,
} from "../supabase/functions/_shared/providers/payu/index.ts";
import {
  createRazorpayAdapter,
  createRazorpayClient,
} from "../supabase/functions/_shared/providers/razorpay/index.ts";
import { type EnvGetter, ProviderError } from "../supabase/functions/_shared/providers/types.ts";
import { type FakeUpstreams, startFakeUpstreams } from "./fakes/upstreams.ts";

// Any node: import makes `deno test` type-check against npm:@types/node (not installed), so plain helpers.
function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}
function eq(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

const KEYS = {
  groqKey: "gsk_test_fake",
  razorpayKeyId: "rzp_test_fakeKeyId",
  razorpayKeySecret: "fake_key_secret",
  payuKey: "gtKFFx",
  payuSalt: "eCwWELxi",
};

/** Runs `fn` against a fresh fake server and always closes it. */
async function withFake(fn: (fake: FakeUpstreams) => Promise<void>): Promise<void> {
  const fake = startFakeUpstreams(KEYS);
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

async function control(fake: FakeUpstreams, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${fake.url}/__control/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(res.ok, `control ${path} answered ${res.status}`);
  return await res.json();
}

async function calls(fake: FakeUpstreams): Promise<Record<string, number>> {
  return (await control(fake, "stats")).calls as Record<string, number>;
}

const groqClient = (fake: FakeUpstreams, opts: { apiKey?: string; maxRetries?: number } = {}) =>
  new Groq({ apiKey: opts.apiKey ?? KEYS.groqKey, baseURL: fake.url, maxRetries: opts.maxRetries ?? 0 });

function envFor(fake: FakeUpstreams, extra: Record<string, string> = {}): EnvGetter {
  const values: Record<string, string> = {
    RAZORPAY_KEY_ID: KEYS.razorpayKeyId,
    RAZORPAY_KEY_SECRET: KEYS.razorpayKeySecret,
    RAZORPAY_API_BASE: `${fake.url}/v1`,
    PAYU_MERCHANT_KEY: KEYS.payuKey,
    PAYU_MERCHANT_SALT: KEYS.payuSalt,
    PAYU_BASE_URL: fake.url,
    ...extra,
  };
  return (name) => values[name];
}

// ---------------------------------------------------------------------------------------------------
// Groq

Deno.test("groq-sdk gets a non-streamed completion with deterministic usage from the fake", async () => {
  await withFake(async (fake) => {
    const groq = groqClient(fake);
    const res = await groq.chat.completions.create({
      model: "llama-3.1-8b-instant",
      messages: [{ role: "system", content: "x".repeat(10) }, { role: "user", content: "y".repeat(31) }],
      max_tokens: 5,
    });
    eq(res.object, "chat.completion", "object");
    eq(res.choices[0].message.content, "This is a fake Groq", "content");
    eq(res.choices[0].finish_reason, "length", "finish_reason when capped");
    eq(res.usage, { ...res.usage, prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 }, "usage");
    const uncapped = await groq.chat.completions.create({
      model: "llama-3.1-8b-instant",
      messages: [{ role: "user", content: "hi" }],
    });
    eq(uncapped.usage?.completion_tokens, 16, "default reply length");
    eq(uncapped.choices[0].finish_reason, "stop", "finish_reason when not capped");
    eq((await calls(fake))["groq.chat"], 2, "chat calls counted");
  });
});

Deno.test("groq-sdk streams the same reply and reads usage from the final chunk's x_groq", async () => {
  await withFake(async (fake) => {
    await control(fake, "groq", { stream_chunk_delay_ms: 5, reply_tokens: 8 });
    const groq = groqClient(fake);
    const started = performance.now();
    const stream = await groq.chat.completions.create({
      model: "llama-3.3-70b-versatile",
      messages: [{ role: "user", content: "z".repeat(40) }],
      max_tokens: 100,
      stream: true,
    });
    let text = "";
    let chunks = 0;
    let usage: unknown = null;
    let topLevelUsage: unknown = null;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.x_groq?.usage) usage = chunk.x_groq.usage;
      const top = (chunk as unknown as { usage?: unknown }).usage;
      if (top) topLevelUsage = top;
    }
    const elapsed = performance.now() - started;
    eq(text, "This is a fake Groq reply from the", "streamed text");
    eq(chunks, 1 + 8 + 1, "role chunk, one chunk per token, final chunk");
    check(usage !== null, "x_groq.usage present on the final chunk");
    const u = usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    eq([u.prompt_tokens, u.completion_tokens, u.total_tokens], [10, 8, 18], "usage");
    eq(topLevelUsage, usage, "top-level usage mirrors x_groq.usage");
    check(elapsed >= 9 * 5 - 2, `chunk delay applied (${elapsed.toFixed(1)} ms)`);
  });
});

Deno.test("a client that stops reading a Groq stream midway leaves the fake serving", async () => {
  await withFake(async (fake) => {
    await control(fake, "groq", { stream_chunk_delay_ms: 20, reply_tokens: 50 });
    const stream = await groqClient(fake).chat.completions.create({
      model: "llama-3.1-8b-instant",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    let seen = 0;
    for await (const _chunk of stream) {
      if (++seen === 3) break;
    }
    eq(seen, 3, "read three chunks");
    await control(fake, "groq", { stream_chunk_delay_ms: 0 });
    const next = await groqClient(fake).chat.completions.create({
      model: "llama-3.1-8b-instant",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
    eq(next.choices[0].message.content, "This is", "next call answered");
  });
});

Deno.test("groq-sdk sees a 401 AuthenticationError for a wrong key and a 404 for an unknown model", async () => {
  await withFake(async (fake) => {
    const bad = await rejection(
      groqClient(fake, { apiKey: "gsk_wrong" }).chat.completions.create({
        model: "llama-3.1-8b-instant",
        messages: [{ role: "user", content: "hi" }],
      }),
    );
    check(bad instanceof Groq.AuthenticationError, `expected AuthenticationError, got ${bad}`);
    eq(bad.status, 401, "status");
    const unknown = await rejection(
      groqClient(fake).chat.completions.create({
        model: "gpt-nope",
        messages: [{ role: "user", content: "hi" }],
      }),
    );
    check(unknown instanceof Groq.NotFoundError, `expected NotFoundError, got ${unknown}`);
  });
});

Deno.test("Groq failures set through the control API fail exactly fail_count calls, and groq-sdk retries them", async () => {
  await withFake(async (fake) => {
    const body = { model: "llama-3.1-8b-instant", messages: [{ role: "user" as const, content: "hi" }] };
    await control(fake, "groq", { fail_status: 503, fail_count: 1 });
    const failed = await rejection(groqClient(fake).chat.completions.create(body));
    check(failed instanceof Groq.APIError && failed.status === 503, `expected 503, got ${failed}`);
    const ok = await groqClient(fake).chat.completions.create(body);
    eq(ok.choices[0].finish_reason, "stop", "next call succeeds");

    await control(fake, "groq", { fail_status: 429, fail_count: 2 });
    const retried = await groqClient(fake, { maxRetries: 2 }).chat.completions.create(body);
    eq(retried.object, "chat.completion", "succeeds after two retried 429s");
    eq((await calls(fake))["groq.chat"], 2 + 3, "every attempt reached the fake");

    await control(fake, "groq", { fail_status: 500 });
    for (let i = 0; i < 3; i++) {
      const e = await rejection(groqClient(fake).chat.completions.create(body));
      check(e instanceof Groq.InternalServerError, "fails until reset");
    }
    await control(fake, "groq", { reset: true });
    await groqClient(fake).chat.completions.create(body);
  });
});

Deno.test("Groq latency set through the control API delays the answer", async () => {
  await withFake(async (fake) => {
    await control(fake, "groq", { latency_ms: 150 });
    const started = performance.now();
    await groqClient(fake).chat.completions.create({
      model: "llama-3.1-8b-instant",
      messages: [{ role: "user", content: "hi" }],
    });
    check(performance.now() - started >= 145, "answer came after the configured latency");
  });
});

Deno.test("groq-sdk lists the fake's models", async () => {
  await withFake(async (fake) => {
    const models = await groqClient(fake).models.list();
    eq(models.data.map((m) => m.id).includes("llama-3.1-8b-instant"), true, "model listed");
    eq((await calls(fake))["groq.models"], 1, "models call counted");
  });
});

// ---------------------------------------------------------------------------------------------------
// Razorpay

/** The SDK has no base URL option: its axios instance is re-pointed at the fake. */
function razorpaySdk(fake: FakeUpstreams, keySecret = KEYS.razorpayKeySecret): Razorpay {
  const rzp = new Razorpay({ key_id: KEYS.razorpayKeyId, key_secret: keySecret });
  rzp.api.rq.defaults.baseURL = fake.url;
  return rzp;
}

Deno.test("the razorpay SDK creates an order on the fake, and the fake validates amount, currency and receipt", async () => {
  await withFake(async (fake) => {
    const rzp = razorpaySdk(fake);
    const order = await rzp.orders.create({
      amount: 49900,
      currency: "INR",
      receipt: "ord_42",
      notes: { order_ref: "ord_42" },
    });
    check(/^order_[A-Za-z0-9]{14}$/.test(order.id), `order id ${order.id}`);
    eq(
      [order.entity, order.amount, order.currency, order.receipt, order.status, order.notes],
      ["order", 49900, "INR", "ord_42", "created", { order_ref: "ord_42" }],
      "order",
    );
    eq((await rzp.orders.fetch(order.id)).id, order.id, "fetched back");
    const cases: [Record<string, unknown>, string][] = [
      [{ amount: 99, currency: "INR", receipt: "r" }, "amount"],
      [{ amount: 100.5, currency: "INR", receipt: "r" }, "amount"],
      [{ amount: 100, currency: "rupees", receipt: "r" }, "currency"],
      [{ amount: 100, currency: "INR", receipt: "r".repeat(41) }, "receipt"],
    ];
    for (const [params, field] of cases) {
      const e = await rejection(rzp.orders.create(params as { amount: number }));
      const err = e as { statusCode?: number; error?: { field?: string } };
      eq([err.statusCode, err.error?.field], [400, field], `rejects bad ${field}`);
    }
    const unauth = (await rejection(razorpaySdk(fake, "wrong").orders.create({ amount: 100 }))) as {
      statusCode?: number;
    };
    eq(unauth.statusCode, 401, "wrong key secret");
  });
});

Deno.test("the razorpay SDK fetches seeded payments, an order's payments and creates subscriptions", async () => {
  await withFake(async (fake) => {
    const rzp = razorpaySdk(fake);
    const order = await rzp.orders.create({ amount: 49900, currency: "INR", receipt: "ord_1" });
    await control(fake, "razorpay/payments", [
      { id: "pay_A", amount: 49900, order_id: order.id, status: "failed" },
      { id: "pay_B", amount: 49900, order_id: order.id },
      { id: "pay_C", amount: 100, order_id: "order_other" },
    ]);
    const b = await rzp.payments.fetch("pay_B");
    eq(
      [b.id, b.status, b.amount, b.order_id, b.currency],
      ["pay_B", "captured", 49900, order.id, "INR"],
      "payment",
    );
    const list = await rzp.orders.fetchPayments(order.id);
    eq(list.items.map((p) => p.id).sort(), ["pay_A", "pay_B"], "order payments");
    const missing = (await rejection(rzp.payments.fetch("pay_missing"))) as { statusCode?: number };
    eq(missing.statusCode, 400, "unknown payment");
    const sub = await rzp.subscriptions.create({
      plan_id: "plan_pro",
      total_count: 12,
      notes: { order_ref: "s1" },
    });
    eq(
      [sub.entity, sub.status, sub.plan_id, sub.total_count],
      ["subscription", "created", "plan_pro", 12],
      "sub",
    );
    const counted = await calls(fake);
    eq(
      [
        counted["razorpay.orders.create"],
        counted["razorpay.payments.fetch"],
        counted["razorpay.orders.payments"],
      ],
      [1, 2, 1],
      "calls",
    );
  });
});

Deno.test("our Razorpay client creates orders and subscriptions and fetches payments from the fake", async () => {
  await withFake(async (fake) => {
    const client = createRazorpayClient(envFor(fake));
    const order = await client.createOrder({
      amount: 49900,
      currency: "INR",
      receipt: "ord_7",
      notes: { a: "1" },
    });
    eq([order.amount, order.receipt, order.notes], [49900, "ord_7", { a: "1" }], "order");
    await control(fake, "razorpay/payments", {
      id: "pay_X",
      amount: 49900,
      order_id: order.id,
      method: "card",
    });
    eq((await client.fetchPayment("pay_X")).method, "card", "payment");
    eq((await client.fetchOrderPayments(order.id)).map((p) => p.id), ["pay_X"], "order payments");
    const sub = await client.createSubscription({ plan_id: "plan_1", total_count: 6 });
    eq(sub.remaining_count, 6, "subscription");
    const sent = (await control(fake, "stats")).last as Record<string, unknown>;
    eq(sent["razorpay.orders.create"], {
      amount: 49900,
      currency: "INR",
      receipt: "ord_7",
      notes: { a: "1" },
    }, "body");
  });
});

Deno.test("our Razorpay client turns 4xx, timeouts and missing keys into typed errors", async () => {
  await withFake(async (fake) => {
    const client = createRazorpayClient(envFor(fake), { timeoutMs: 100 });
    const missing = await rejection(client.fetchPayment("pay_nope"));
    check(missing instanceof ProviderError, "ProviderError");
    eq([missing.code, missing.status, missing.upstream_status, missing.upstream_code], [
      "upstream_error",
      502,
      400,
      "BAD_REQUEST_ERROR",
    ], "not found");
    const wrongKey = await rejection(
      createRazorpayClient(envFor(fake, { RAZORPAY_KEY_SECRET: "nope" })).createOrder({
        amount: 100,
        currency: "INR",
        receipt: "r",
      }),
    );
    check(wrongKey instanceof ProviderError && wrongKey.upstream_status === 401, "401 surfaces");
    const tooSmall = await rejection(client.createOrder({ amount: 99, currency: "INR", receipt: "r" }));
    check(tooSmall instanceof ProviderError && tooSmall.code === "invalid_amount", "checked before calling");
    await control(fake, "razorpay", { latency_ms: 400 });
    const slow = await rejection(client.fetchPayment("pay_nope"));
    check(
      slow instanceof ProviderError && slow.code === "upstream_timeout" && slow.status === 504,
      `${slow}`,
    );
    await control(fake, "razorpay", { reset: true });
    const unconfigured = await rejection(
      createRazorpayClient(envFor(fake, { RAZORPAY_KEY_ID: "" })).fetchPayment("pay_1"),
    );
    check(
      unconfigured instanceof ProviderError && unconfigured.code === "provider_not_configured",
      "not configured",
    );
    // Let the slow request's server side finish before the server closes.
    await new Promise((r) => setTimeout(r, 450));
  });
});

Deno.test("Razorpay checkout creates the order on the fake and returns Checkout.js options for it", async () => {
  await withFake(async (fake) => {
    const adapter = createRazorpayAdapter(envFor(fake));
    const checkout = await adapter.createCheckout({
      order_ref: "ord_2024_000123",
      amount_paise: 49900,
      currency: "INR",
      plan_name: "Pro Plan - Monthly",
      buyer: { firstname: "Asha", email: "asha@example.in" },
    });
    check(checkout.provider === "razorpay", "razorpay checkout");
    const created = (await control(fake, "razorpay/orders")).orders as Record<string, unknown>[];
    eq(created.length, 1, "one order created");
    eq(checkout.options.order_id, created[0].id, "order id");
    eq(created[0].receipt, "ord_2024_000123", "receipt is our order_ref");
    eq(checkout.options.key, KEYS.razorpayKeyId, "key id (never the secret)");
    eq(checkout.options.notes, { order_ref: "ord_2024_000123" }, "notes");
    const sub = await adapter.createCheckout({
      order_ref: "ord_sub_1",
      amount_paise: 49900,
      currency: "INR",
      plan_name: "Pro",
      buyer: { firstname: "Asha", email: "asha@example.in" },
      razorpay_plan_id: "plan_pro",
      total_count: 12,
    });
    check(
      sub.provider === "razorpay" && sub.options.subscription_id?.startsWith("sub_"),
      "subscription checkout",
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// PayU

Deno.test("our PayU verify_payment client reads a seeded transaction from the fake as a normalized event", async () => {
  await withFake(async (fake) => {
    await control(fake, "payu/transactions", {
      inv_1: {
        mihpayid: "403993715531077182",
        status: "success",
        unmappedstatus: "captured",
        amt: "499.00",
        transaction_amount: "499.00",
        mode: "UPI",
        addedon: "2024-07-01 12:34:56",
        productinfo: "Pro",
      },
    });
    const event = await verifyPayuPayment("inv_1", envFor(fake));
    check(event !== null, "found");
    eq(
      [event.event_id, event.event_type, event.amount_paise, event.method, event.occurred_at],
      ["inv_1:success", "payment.success", 49900, "UPI", "2024-07-01T07:04:56.000Z"],
      "event",
    );
    eq(await verifyPayuPayment("inv_unknown", envFor(fake)), null, "unknown txnid");
    const sent =
      ((await control(fake, "stats")).last as Record<string, Record<string, string>>)["payu.command"];
    eq([sent.command, sent.var1], ["verify_payment", "inv_unknown"], "form fields");
    const badSalt = await rejection(
      verifyPayuPayment("inv_1", envFor(fake, { PAYU_MERCHANT_SALT: "wrong" })),
    );
    check(badSalt instanceof ProviderError && /Invalid Hash/.test(badSalt.message), `${badSalt}`);
    eq((await calls(fake))["payu.verify_payment"], 2, "only correctly hashed commands answered");
  });
});

Deno.test("the fake PayU lists a payment's refunds (getAllRefundsFromTxnIds) and one request (check_action_status), hashed as payu-websdk hashes them", async () => {
  await withFake(async (fake) => {
    await control(fake, "payu/transactions", {
      rf_tx_1: { mihpayid: "403993715531077190", status: "success", amt: "589.00", mode: "UPI" },
    });
    const env = envFor(fake);
    const credes = { key: KEYS.payuKey, salt: KEYS.payuSalt };
    /** A command form as payu-websdk builds it (its own apiHasher), posted to the fake. */
    const post = async (command: string, vars: Record<string, string>) => {
      const hash = payuHasher.apiHasher(credes, { command, var1: vars.var1 });
      eq(await commandHash(KEYS.payuKey, command, vars.var1, KEYS.payuSalt), hash, `our ${command} hash is the SDK's`);
      const res = await fetch(`${fake.url}/merchant/postservice.php?form=2`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ key: KEYS.payuKey, command, ...vars, hash }),
      });
      return await res.json() as Record<string, unknown>;
    };
    const refund = await post("cancel_refund_transaction", { var1: "403993715531077190", var2: "tok_1", var3: "100.00" });
    eq([refund.status, refund.msg], [1, "Refund Request Queued"], "refund accepted");
    const requestId = refund.request_id as string;
    await control(fake, "payu/refunds", { txnid: "rf_tx_1", amount_paise: 2500, token: "dash_1" });
    // A reused token is refused, as PayU refuses it.
    const again = await post("cancel_refund_transaction", { var1: "403993715531077190", var2: "tok_1", var3: "100.00" });
    eq([again.status, again.msg], [0, "Request for this token has already been processed"], "token reuse refused");

    const all = await post("getAllRefundsFromTxnIds", { var1: "rf_tx_1" });
    eq([all.status, all.msg], [1, "Refunds fetched successfully."], "listed");
    const listed = (all["Refund Details"] as Record<string, Record<string, unknown>[]>)["403993715531077190"];
    eq(
      listed.map((r) => [r.PayuID, r.RefundToken, r.Amount, r.Status, typeof r.RequestID, typeof r.RefundCreationDate]),
      [
        ["403993715531077190", "tok_1", "100.00", "queued", "string", "string"],
        ["403993715531077190", "dash_1", "25.00", "queued", "string", "string"],
      ],
      "Refund Details by mihpayid",
    );
    eq(listed[0].RequestID, requestId, "the request id cancel_refund_transaction answered");
    eq((await post("getAllRefundsFromTxnIds", { var1: "rf_tx_none" })).status, 0, "no refunds: status 0");

    const one = await post("check_action_status", { var1: requestId });
    const details = (one.transaction_details as Record<string, Record<string, Record<string, unknown>>>)[requestId][requestId];
    eq([one.status, details.request_id, details.token, details.amt, details.action, details.status], [
      1, requestId, "tok_1", "100.00", "refund", "queued",
    ], "check_action_status by request id");
    const unknown = await post("check_action_status", { var1: "999" });
    eq([unknown.status, unknown.transaction_details], [0, { "999": "No action status found" }], "unknown request");

    // Our clients read the same answers.
    const ours = await listPayuRefunds("rf_tx_1", env);
    eq(ours.map((r) => [r.token, r.amount_paise, r.status, r.mihpayid]), [
      ["tok_1", 10000, "queued", "403993715531077190"],
      ["dash_1", 2500, "queued", "403993715531077190"],
    ], "listPayuRefunds");
    eq(await listPayuRefunds("rf_tx_none", env), [], "none listed");
    await control(fake, "payu/refunds", { request_id: requestId, status: "success" });
    eq(await payuActionStatus(requestId, env), { status: "success", amount_paise: 10000, token: "tok_1", mihpayid: "403993715531077190" }, "payuActionStatus");
    eq(await payuActionStatus("999", env), null, "unknown request id");

    // A wrong salt is refused, and our client says so instead of reading it as "no refunds".
    const badSalt = await rejection(listPayuRefunds("rf_tx_1", envFor(fake, { PAYU_MERCHANT_SALT: "wrong" })));
    check(badSalt instanceof ProviderError && /Invalid Hash/.test(badSalt.message), `${badSalt}`);
    eq((await calls(fake))["payu.getAllRefundsFromTxnIds"], 4, "every listing reached the fake");
  });
});

Deno.test("the fake PayU _payment page accepts our checkout form and rejects a changed amount", async () => {
  await withFake(async (fake) => {
    const checkout = await createPayuAdapter(envFor(fake)).createCheckout({
      order_ref: "ord_9",
      amount_paise: 49950,
      currency: "INR",
      plan_name: "Pro Plan",
      buyer: { firstname: "Zoë", email: "z@example.in" },
      surl: "https://example.in/s",
      furl: "https://example.in/f",
    });
    check(checkout.provider === "payu", "payu checkout");
    eq(checkout.action_url, `${fake.url}/_payment`, "action url");
    const ok = await fetch(checkout.action_url, {
      method: "POST",
      body: new URLSearchParams(checkout.fields),
    });
    eq([ok.status, await ok.text()].map(String)[0], "200", "accepted");
    const tampered = await fetch(checkout.action_url, {
      method: "POST",
      body: new URLSearchParams({ ...checkout.fields, amount: "1.00" }),
    });
    eq(tampered.status, 400, "tampered amount rejected");
    await tampered.body?.cancel();
    const accepted = (await control(fake, "payu/payments")).payments as Record<string, string>[];
    eq(accepted.map((p) => [p.txnid, p.amount]), [["ord_9", "499.50"]], "recorded form");
  });
});

// ---------------------------------------------------------------------------------------------------
// Control and script mode

Deno.test("POST /__control/reset clears counters, seeded data and failure settings", async () => {
  await withFake(async (fake) => {
    await control(fake, "groq", { fail_status: 500 });
    await control(fake, "razorpay/payments", { id: "pay_R", amount: 100 });
    await groqClient(fake).models.list();
    await control(fake, "reset", {});
    eq(await calls(fake), {}, "no calls after reset");
    const client = createRazorpayClient(envFor(fake));
    check((await rejection(client.fetchPayment("pay_R"))) instanceof ProviderError, "seeded payment gone");
    const res = await groqClient(fake).chat.completions.create({
      model: "llama-3.1-8b-instant",
      messages: [{ role: "user", content: "hi" }],
    });
    eq(res.object, "chat.completion", "failure setting gone");
  });
});

Deno.test("run as a script, the fake prints its URL as one JSON line and serves with the keys from env", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./fakes/upstreams.ts", import.meta.url).pathname],
    env: { GROQ_API_KEY: "gsk_from_env", FAKE_UPSTREAMS_PORT: "0" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    reader.releaseLock();
    const { url } = JSON.parse(out.split("\n")[0]);
    check(/^http:\/\/127\.0\.0\.1:\d+$/.test(url), `url ${url}`);
    const ok = await fetch(`${url}/openai/v1/models`, { headers: { authorization: "Bearer gsk_from_env" } });
    eq(ok.status, 200, "key from env accepted");
    await ok.body?.cancel();
    const bad = await fetch(`${url}/openai/v1/models`, {
      headers: { authorization: "Bearer gsk_test_fake" },
    });
    eq(bad.status, 401, "other key refused");
    await bad.body?.cancel();
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
});

Deno.test("seeded (/__control/seed), the fakes draw the same ids again; with the clock set, their times stand still at it", async () => {
  await withFake(async (fake) => {
    const client = createRazorpayClient(envFor(fake));
    const at = "2027-03-01T04:30:00.000Z";
    const run = async () => {
      await control(fake, "reset", {});
      await control(fake, "seed", { seed: 7 });
      await control(fake, "clock", { at });
      const first = await client.createOrder({ amount: 49900, currency: "INR", receipt: "ord_a" });
      await new Promise((r) => setTimeout(r, 1100)); // real time passes; the simulated time does not
      const second = await client.createOrder({ amount: 49900, currency: "INR", receipt: "ord_b" });
      return [first.id, second.id, first.created_at, second.created_at];
    };
    const a = await run();
    const b = await run();
    eq(b, a, "the same ids and times after the same seed");
    eq([a[2], a[3]], [Date.parse(at) / 1000, Date.parse(at) / 1000], "created_at is the set time, a second later too");
    check(a[0] !== a[1], "two orders, two ids");
    await control(fake, "reset", {});
    const unseeded = await client.createOrder({ amount: 49900, currency: "INR", receipt: "ord_c" });
    check(unseeded.id !== a[0], `after a reset the ids are crypto's again: ${unseeded.id}`);
    await control(fake, "seed", { seed: 8 });
    const other = await client.createOrder({ amount: 49900, currency: "INR", receipt: "ord_d" });
    check(other.id !== a[0], "another seed, another id");
  });
});
