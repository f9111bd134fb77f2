// Provider adapters checked against the providers' official SDKs (payu-websdk, razorpay) as
// independent oracles, plus the documented vectors in tests/fixtures/provider-vectors.json.

// @ts-types="./fixtures/types/payu-websdk.d.ts"
import Payu from "npm:payu-websdk@1.3.1";
// @ts-types="./fixtures/types/payu-hasher.d.ts"
import payuHasher from "npm:payu-websdk@1.3.1/utils/hasher.js";
// @ts-types="./fixtures/types/razorpay.d.ts"
import Razorpay from "npm:razorpay@2.9.8";
// @ts-types="./fixtures/types/razorpay-utils.d.ts"
import { validatePaymentVerification } from "npm:razorpay@2.9.8/dist/utils/razorpay-utils.js";

import { hmacSha256Hex, sha512Hex, timingSafeEqual } from "../supabase/functions/_shared/crypto.ts";
import {
  commandHash,
  createPayuAdapter,
  paiseToRupees,
  type PayuRequestParams,
  requestHash,
  reverseHash,
  rupeesToPaise,
  verifyReverseHash,
} from "../supabase/functions/_shared/providers/payu/index.ts";
import {
  createRazorpayAdapter,
  createRazorpayCheckout,
  normalizeRazorpay,
  type RazorpayClient,
  RAZORPAY_EVENT_KINDS,
  verifyPaymentSignature,
  verifyWebhookSignature,
} from "../supabase/functions/_shared/providers/razorpay/index.ts";
import { type EnvGetter, ProviderError } from "../supabase/functions/_shared/providers/types.ts";

const vectors = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/provider-vectors.json", import.meta.url)),
);

// ---------------------------------------------------------------------------------------------------
// Assertions. Any node: import makes `deno test` type-check against npm:@types/node, which is not
// installed (nodeModulesDir "manual"), so the few assertions needed are written here.

function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    Object.hasOwn(b, k) && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}

type ErrorCheck = (e: unknown) => boolean;
interface Assert {
  ok(value: unknown, message?: string): asserts value;
  equal<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
  deepEqual<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
  throws(fn: () => unknown, check: ErrorCheck, message?: string): void;
  rejects(p: Promise<unknown>, check: ErrorCheck, message?: string): Promise<void>;
}

const show = (v: unknown) => {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
};

const assert: Assert = {
  ok(value, message) {
    if (!value) throw new Error(`expected a truthy value${message ? `: ${message}` : ""}`);
  },
  equal(actual, expected, message) {
    if (!Object.is(actual, expected)) {
      throw new Error(`${message ? `${message}: ` : ""}expected ${show(expected)}, got ${show(actual)}`);
    }
  },
  deepEqual(actual, expected, message) {
    if (!same(actual, expected)) {
      throw new Error(`${message ? `${message}: ` : ""}expected ${show(expected)}, got ${show(actual)}`);
    }
  },
  throws(fn, check, message) {
    try {
      fn();
    } catch (e) {
      if (!check(e)) throw new Error(`${message ?? "throws"}: unexpected error ${String(e)}`);
      return;
    }
    throw new Error(`${message ?? "throws"}: did not throw`);
  },
  async rejects(p, check, message) {
    try {
      await p;
    } catch (e) {
      if (!check(e)) throw new Error(`${message ?? "rejects"}: unexpected error ${String(e)}`);
      return;
    }
    throw new Error(`${message ?? "rejects"}: did not reject`);
  },
};

/** SHA-512 hex by the PayU SDK (node:crypto inside): the oracle for our crypto.subtle version. */
const sdkSha512 = (s: string): string => payuHasher.generateHash(s);

// ---------------------------------------------------------------------------------------------------
// Deterministic generators

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "a",
  "Z",
  "9",
  " ",
  "  ",
  "-",
  "_",
  ".",
  "@",
  "+",
  "&",
  "=",
  "%",
  "%20",
  "/",
  "\\",
  '"',
  "'",
  ":",
  ",",
  "Ásha",
  "Zoë",
  "नमस्ते",
  "数据",
  "😀",
  "Ω",
  "ß",
  "\t",
  "#",
  "?",
  "<b>",
  "{}",
  "[]",
  "null",
];

function randomText(r: () => number, maxPieces: number): string {
  const n = Math.floor(r() * (maxPieces + 1));
  let s = "";
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
  return s;
}

function randomAmount(r: () => number): string {
  const paise = Math.floor(r() * 10_000_000);
  return r() < 0.3 ? String(Math.floor(paise / 100)) : paiseToRupees(paise);
}

/** PayU request params: unicode names, spaces, udfs set or unset. */
function randomRequestParams(r: () => number): PayuRequestParams {
  const p: PayuRequestParams = {
    txnid: `t${Math.floor(r() * 1e12)}`,
    amount: randomAmount(r),
    productinfo: randomText(r, 6) || "Plan",
    firstname: randomText(r, 3) || "Asha",
    email: `${randomText(r, 2).replace(/\s/g, "")}u@example.in`,
  };
  for (const k of ["udf1", "udf2", "udf3", "udf4", "udf5"] as const) {
    if (r() < 0.5) p[k] = randomText(r, 3);
  }
  return p;
}

function randomPosted(r: () => number): Record<string, string> {
  const p = randomRequestParams(r);
  const posted: Record<string, string> = {
    mihpayid: String(Math.floor(r() * 1e15)),
    mode: ["CC", "DC", "NB", "UPI"][Math.floor(r() * 4)],
    status: ["success", "failure", "pending"][Math.floor(r() * 3)],
    unmappedstatus: "captured",
    key: "gtKFFx",
    txnid: p.txnid,
    amount: p.amount.includes(".") ? p.amount : `${p.amount}.00`,
    productinfo: p.productinfo,
    firstname: p.firstname,
    email: p.email,
    udf1: p.udf1 ?? "",
    udf2: p.udf2 ?? "",
    udf3: p.udf3 ?? "",
    udf4: p.udf4 ?? "",
    udf5: p.udf5 ?? "",
  };
  if (r() < 0.25) posted.additionalCharges = paiseToRupees(Math.floor(r() * 10_000));
  return posted;
}

const PAYU_KEY = "gtKFFx";
const PAYU_SALT = "eCwWELxi";
const payuSdk = new Payu({ key: PAYU_KEY, salt: PAYU_SALT });

function sdkResponseHash(posted: Record<string, string>): string {
  return payuSdk.hasher.generateResponseHash({ ...posted });
}

function envOf(values: Record<string, string>): EnvGetter {
  return (name) => values[name];
}

const payuEnv = envOf({ PAYU_MERCHANT_KEY: PAYU_KEY, PAYU_MERCHANT_SALT: PAYU_SALT });

function formBody(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

// ---------------------------------------------------------------------------------------------------
// crypto.ts

Deno.test("sha512Hex equals the PayU SDK's node:crypto SHA-512 on unicode and empty input", async () => {
  const r = rng(1);
  for (let i = 0; i < 200; i++) {
    const s = i === 0 ? "" : randomText(r, 12);
    assert.equal(await sha512Hex(s), sdkSha512(s));
  }
});

Deno.test("hmacSha256Hex output is what the Razorpay SDK's node:crypto HMAC expects for unicode keys and messages", async () => {
  const r = rng(2);
  for (let i = 0; i < 200; i++) {
    const key = randomText(r, 4) || "k";
    const msg = randomText(r, 12);
    const ours = await hmacSha256Hex(key, msg);
    assert.ok(/^[0-9a-f]{64}$/.test(ours));
    assert.equal(Razorpay.validateWebhookSignature(msg, ours, key), true, show({ key, msg }));
    assert.equal(Razorpay.validateWebhookSignature(msg + " ", ours, key), false);
  }
});

Deno.test("hmacSha256Hex keeps each secret's key apart when secrets take turns (imported keys are reused)", async () => {
  // Two secrets one character apart, in turns, then 20 more secrets (past the cache's 16) and the
  // first two again: every signature is the SDK's for that secret and message.
  const secrets = ["whsec_rotation_new", "whsec_rotation_nex", ...Array.from({ length: 20 }, (_, i) => `s${i}`)];
  const order = [0, 1, 0, 1, ...secrets.map((_, i) => i), 1, 0];
  for (const [n, i] of order.entries()) {
    const msg = `{"event":"payment.captured","n":${n}}`;
    const ours = await hmacSha256Hex(secrets[i], msg);
    assert.equal(Razorpay.validateWebhookSignature(msg, ours, secrets[i]), true, show({ secret: secrets[i], msg }));
    if (i < 2) assert.equal(Razorpay.validateWebhookSignature(msg, ours, secrets[1 - i]), false);
  }
});

Deno.test("timingSafeEqual is true only for identical strings or bytes", () => {
  assert.equal(timingSafeEqual("abc", "abc"), true);
  assert.equal(timingSafeEqual("", ""), true);
  assert.equal(timingSafeEqual("abc", "abd"), false);
  assert.equal(timingSafeEqual("abc", "ab"), false);
  assert.equal(timingSafeEqual("ab", "abc"), false);
  assert.equal(timingSafeEqual("", "a"), false);
  assert.equal(timingSafeEqual("a\u0000", "a"), false);
  assert.equal(timingSafeEqual("é", "e\u0301"), false);
  assert.equal(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
  assert.equal(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  assert.equal(timingSafeEqual(new Uint8Array([0]), new Uint8Array([])), false);
  assert.equal(timingSafeEqual("A", new Uint8Array([65])), true);
});

// ---------------------------------------------------------------------------------------------------
// Amounts

Deno.test("paiseToRupees writes integer paise as a two-decimal rupee string", () => {
  assert.equal(paiseToRupees(49900), "499.00");
  assert.equal(paiseToRupees(49950), "499.50");
  assert.equal(paiseToRupees(49901), "499.01");
  assert.equal(paiseToRupees(0), "0.00");
  assert.equal(paiseToRupees(5), "0.05");
  assert.equal(paiseToRupees(100), "1.00");
  assert.equal(paiseToRupees(123456789012), "1234567890.12");
});

Deno.test("paiseToRupees rejects fractional, negative, non-finite and unsafe paise", () => {
  for (const bad of [1.5, -1, NaN, Infinity, Number.MAX_SAFE_INTEGER + 1]) {
    assert.throws(() => paiseToRupees(bad), (e) => e instanceof ProviderError && e.code === "invalid_amount");
  }
});

Deno.test("rupeesToPaise parses rupee strings exactly into integer paise", () => {
  const cases: [string, number][] = [
    ["499.00", 49900],
    ["499", 49900],
    ["499.5", 49950],
    ["499.05", 49905],
    ["0.01", 1],
    ["0", 0],
    ["0.10", 10],
    ["1234567890.12", 123456789012],
    // 0.29 * 100 is 28.999999999999996 as a float: parsing the digits must give 29.
    ["0.29", 29],
    ["1.13", 113],
  ];
  for (const [text, paise] of cases) assert.equal(rupeesToPaise(text), paise, text);
});

Deno.test("rupeesToPaise rejects malformed amounts", () => {
  const bad = [
    "abc",
    "-1",
    "1.234",
    "1e3",
    "",
    " 1",
    "1 ",
    "1.",
    ".5",
    "01",
    "+1",
    "1,000",
    "Infinity",
    "NaN",
    "0x10",
    "१२",
    "1.2.3",
    "-0.00",
    "12345678901234",
  ];
  for (const text of bad) {
    assert.throws(
      () => rupeesToPaise(text),
      (e) => e instanceof ProviderError && e.code === "invalid_amount",
      JSON.stringify(text),
    );
  }
});

Deno.test("rupeesToPaise inverts paiseToRupees for many amounts", () => {
  const r = rng(3);
  for (let i = 0; i < 2000; i++) {
    const paise = Math.floor(r() * 1e11);
    assert.equal(rupeesToPaise(paiseToRupees(paise)), paise);
  }
});

// ---------------------------------------------------------------------------------------------------
// PayU hashes against payu-websdk

Deno.test("PayU request hash equals the documented vector P1 and the SDK", async () => {
  const v = vectors.payu.P1_request_hash_doc_example;
  const ours = await requestHash(v.params, v.key, v.salt);
  assert.equal(ours, v.sdk);
  assert.equal(ours, sdkSha512(v.hashString));
  assert.equal(ours, new Payu({ key: v.key, salt: v.salt }).hasher.generatePaymentHash({ ...v.params }));
});

Deno.test("PayU request hash equals the SDK's on 500 generated parameter sets", async () => {
  const r = rng(4);
  for (let i = 0; i < 500; i++) {
    const p = randomRequestParams(r);
    const sdk = payuSdk.hasher.generatePaymentHash({ ...p });
    assert.equal(await requestHash(p, PAYU_KEY, PAYU_SALT), sdk, JSON.stringify(p));
  }
});

Deno.test("PayU reverse hash equals the documented vector P3", async () => {
  const v = vectors.payu.P3_reverse_hash;
  assert.equal(await reverseHash(v.params, v.key, v.salt), v.sdk);
  assert.equal(await verifyReverseHash({ ...v.params, hash: v.sdk }, v.key, v.salt), true);
});

Deno.test("PayU reverse-hash check accepts what the SDK's response hash produces on 500 posts", async () => {
  const r = rng(5);
  let withCharges = 0;
  for (let i = 0; i < 500; i++) {
    const posted = randomPosted(r);
    if (posted.additionalCharges) withCharges++;
    const hash = sdkResponseHash(posted);
    assert.equal(await reverseHash(posted, PAYU_KEY, PAYU_SALT), hash);
    assert.equal(await verifyReverseHash({ ...posted, hash }, PAYU_KEY, PAYU_SALT), true);
    assert.equal(payuSdk.hasher.validateResponseHash({ ...posted, hash }), true);
    // Through the form encoding PayU uses, too.
    const form = new URLSearchParams(formBody({ ...posted, hash }));
    assert.equal(await verifyReverseHash(form, PAYU_KEY, PAYU_SALT), true);
  }
  assert.ok(withCharges > 50, "generator covers additionalCharges");
});

Deno.test("PayU reverse-hash check rejects any single changed character of any hashed field or of the hash", async () => {
  const posted: Record<string, string> = {
    ...vectors.payu.P3_reverse_hash.params,
    udf4: "x",
    udf5: "Zoë",
    additionalCharges: "10.00",
  };
  const hash = sdkResponseHash(posted);
  const good: Record<string, string> = { ...posted, hash };
  assert.equal(await verifyReverseHash(good, PAYU_KEY, PAYU_SALT), true);
  let checked = 0;
  for (const name of Object.keys(good)) {
    const value = good[name];
    const chars = [...value];
    for (let i = 0; i < chars.length; i++) {
      const changed = [...chars];
      changed[i] = chars[i] === "a" ? "b" : "a";
      const tampered = { ...good, [name]: changed.join("") };
      assert.equal(await verifyReverseHash(tampered, PAYU_KEY, PAYU_SALT), false, `${name}[${i}]`);
      checked++;
    }
    // One extra character at the end is a change too.
    assert.equal(await verifyReverseHash({ ...good, [name]: value + "a" }, PAYU_KEY, PAYU_SALT), false, name);
  }
  const totalChars = Object.values(good).reduce((n, v) => n + [...v].length, 0);
  assert.equal(checked, totalChars);
  assert.ok(checked > 128 + 80, "covers the whole hash and the field values");
  // Dropping additionalCharges, or using another key or salt, breaks it.
  const { additionalCharges: _drop, ...withoutCharges } = good;
  assert.equal(await verifyReverseHash(withoutCharges, PAYU_KEY, PAYU_SALT), false);
  assert.equal(await verifyReverseHash(good, "gtKFFy", PAYU_SALT), false);
  assert.equal(await verifyReverseHash(good, PAYU_KEY, "eCwWELxj"), false);
  assert.equal(await verifyReverseHash({ ...good, hash: hash.toUpperCase() }, PAYU_KEY, PAYU_SALT), false);
});

Deno.test("PayU reverse hash accepts the additional_charges spelling like additionalCharges", async () => {
  const posted = { ...vectors.payu.P3_reverse_hash.params, additionalCharges: "12.50" };
  const hash = sdkResponseHash(posted);
  const { additionalCharges, ...rest } = posted;
  assert.equal(
    await verifyReverseHash({ ...rest, additional_charges: additionalCharges, hash }, PAYU_KEY, PAYU_SALT),
    true,
  );
});

Deno.test("PayU command hash equals the documented vector P5 and the SDK's apiHasher", async () => {
  const v = vectors.payu.P5_verify_payment_doc_example;
  const ours = await commandHash(v.key, v.command, v.var1, v.salt);
  assert.equal(ours, v.sdk);
  assert.equal(
    ours,
    payuHasher.apiHasher({ key: v.key, salt: v.salt }, { command: v.command, var1: v.var1 }),
  );
});

// ---------------------------------------------------------------------------------------------------
// PayU adapter

Deno.test("PayU webhook signed by the SDK verifies from the form-encoded body", async () => {
  const adapter = createPayuAdapter(payuEnv);
  const r = rng(6);
  for (let i = 0; i < 100; i++) {
    const posted = randomPosted(r);
    const raw = formBody({ ...posted, hash: sdkResponseHash(posted) });
    const result = await adapter.verifyWebhook(raw, new Headers());
    assert.ok(result.ok, raw);
    assert.equal(result.webhook.payload.productinfo, posted.productinfo);
  }
});

Deno.test("PayU webhook hashes the values as posted: '+' decodes to a space before hashing", async () => {
  const posted = { ...vectors.payu.P3_reverse_hash.params, mihpayid: "403993715531077182" };
  const hash = sdkResponseHash(posted);
  // Hand-encoded as a browser would: spaces as '+', '@' as %40.
  const raw = `mihpayid=403993715531077182&status=success&txnid=inv_2024_000123&amount=499.00` +
    `&productinfo=Pro+Plan+-+Monthly&firstname=Asha&email=asha%40example.in&udf1=tenant_42` +
    `&udf2=sub_7&udf3=cycle_2024_07&udf4=&udf5=&hash=${hash}`;
  const result = await createPayuAdapter(payuEnv).verifyWebhook(raw, new Headers());
  assert.ok(result.ok);
});

Deno.test("PayU webhook without hash, with a wrong hash, or missing fields is rejected with a code", async () => {
  const adapter = createPayuAdapter(payuEnv);
  const posted = { ...vectors.payu.P3_reverse_hash.params, mihpayid: "1" };
  const hash = sdkResponseHash(posted);
  const noHash = await adapter.verifyWebhook(formBody(posted), new Headers());
  assert.deepEqual(noHash.ok ? null : noHash.code, "missing_signature");
  const wrong = await adapter.verifyWebhook(formBody({ ...posted, hash: "0".repeat(128) }), new Headers());
  assert.deepEqual(wrong.ok ? null : wrong.code, "invalid_signature");
  // A signed form without an amount (the hash covers it, empty) is malformed; mihpayid is not
  // signed, so it is not required (the event's identity is the txnid).
  const noAmount = { ...posted, amount: "" };
  const missing = await adapter.verifyWebhook(formBody({ ...noAmount, hash: sdkResponseHash(noAmount) }), new Headers());
  assert.deepEqual(missing.ok ? null : missing.code, "malformed_body");
  const { mihpayid: _m, ...noMihpayid } = posted;
  const unsignedMissing = await adapter.verifyWebhook(formBody({ ...noMihpayid, hash: sdkResponseHash(noMihpayid) }), new Headers());
  assert.deepEqual(unsignedMissing.ok, true);
  const garbage = await adapter.verifyWebhook("%%%&&&==", new Headers());
  assert.deepEqual(garbage.ok ? null : garbage.code, "missing_signature");
  const unconfigured = await createPayuAdapter(envOf({ PAYU_MERCHANT_KEY: PAYU_KEY })).verifyWebhook(
    formBody({ ...posted, hash }),
    new Headers(),
  );
  assert.deepEqual(unconfigured.ok ? null : unconfigured.code, "provider_not_configured");
});

Deno.test("PayU webhook with any field posted twice is malformed_body, so a signed failure cannot become a success", async () => {
  const adapter = createPayuAdapter(payuEnv);
  const failure = { ...vectors.payu.P3_reverse_hash.params, status: "failure", mihpayid: "77", mode: "UPI" };
  const signed = formBody({ ...failure, hash: sdkResponseHash(failure) });
  // The honest post verifies and is a failure: the tampered ones below differ only by the repeat.
  const honest = await adapter.verifyWebhook(signed, new Headers());
  assert.ok(honest.ok);
  const honestEvent = adapter.normalize(honest.webhook);
  assert.ok(honestEvent.ok);
  assert.equal(honestEvent.event.status, "failure");
  for (const appended of ["status=success", "amount=1.00", "txnid=other_txn", "mode=CC", "hash=" + "0".repeat(128)]) {
    const tampered = await adapter.verifyWebhook(`${signed}&${appended}`, new Headers());
    assert.deepEqual(tampered.ok ? tampered.webhook.payload : tampered.code, "malformed_body", appended);
  }
  // Repeated first, too (a hash over the last copy would vouch for the first).
  const prepended = await adapter.verifyWebhook(`status=success&${signed}`, new Headers());
  assert.deepEqual(prepended.ok ? prepended.webhook.payload : prepended.code, "malformed_body");
});

Deno.test("PayU webhook payload carries exactly the values the hash was checked over", async () => {
  const adapter = createPayuAdapter(payuEnv);
  const r = rng(61);
  for (let i = 0; i < 50; i++) {
    const posted = randomPosted(r);
    const raw = formBody({ ...posted, hash: sdkResponseHash(posted) });
    const result = await adapter.verifyWebhook(raw, new Headers());
    assert.ok(result.ok, raw);
    const payload = result.webhook.payload as Record<string, string>;
    assert.equal(await reverseHash(payload, PAYU_KEY, PAYU_SALT), payload.hash);
    assert.deepEqual({ ...payload }, Object.fromEntries(new URLSearchParams(raw)));
  }
});

Deno.test("PayU webhook normalizes success, failure and pending into payment.<status> events of their kinds", async () => {
  const adapter = createPayuAdapter(payuEnv);
  const kinds: Record<string, string> = { success: "payment_captured", failure: "payment_failed", pending: "payment_pending" };
  for (const status of ["success", "failure", "pending"]) {
    const posted: Record<string, string> = {
      ...vectors.payu.P3_reverse_hash.params,
      status,
      mihpayid: "403993715531077182",
      mode: "UPI",
      unmappedstatus: status === "success" ? "captured" : "failed",
      addedon: "2024-07-01 12:34:56",
    };
    const verified = await adapter.verifyWebhook(
      formBody({ ...posted, hash: sdkResponseHash(posted) }),
      new Headers(),
    );
    assert.ok(verified.ok);
    const normalized = adapter.normalize(verified.webhook);
    assert.ok(normalized.ok);
    const { payload, ...event } = normalized.event;
    assert.deepEqual(event, {
      provider: "payu",
      // Only what the reverse hash covers decides identity and time: not mihpayid, addedon or mode.
      event_id: `inv_2024_000123:${status}`,
      event_type: `payment.${status}`,
      kind: kinds[status],
      subscription_status: null,
      // No error_Message posted: a failure's reason is PayU's status.
      error_reason: status === "failure" ? "failure" : null,
      order_ref: "inv_2024_000123",
      provider_order_id: null,
      provider_payment_id: "inv_2024_000123",
      provider_subscription_id: null,
      provider_refund_id: null,
      amount_paise: 49900,
      currency: "INR",
      status,
      method: null,
      occurred_at: null,
    });
    // The unsigned fields are kept in the payload, for the record only.
    assert.deepEqual([payload.mihpayid, payload.addedon, payload.mode], ["403993715531077182", "2024-07-01 12:34:56", "UPI"]);
    assert.equal(payload.udf1, "tenant_42");
  }
});

Deno.test("PayU webhook with a validly signed but malformed amount normalizes to invalid_amount", async () => {
  const adapter = createPayuAdapter(payuEnv);
  const posted = { ...vectors.payu.P3_reverse_hash.params, amount: "4.99e2", mihpayid: "9" };
  const verified = await adapter.verifyWebhook(
    formBody({ ...posted, hash: sdkResponseHash(posted) }),
    new Headers(),
  );
  assert.ok(verified.ok);
  const normalized = adapter.normalize(verified.webhook);
  assert.deepEqual(normalized.ok ? null : normalized.code, "invalid_amount");
});

Deno.test("PayU checkout builds every _payment form field with the SDK's request hash", async () => {
  const checkout = await createPayuAdapter(payuEnv).createCheckout({
    order_ref: "ord_2024_000123",
    amount_paise: 49900,
    currency: "INR",
    plan_name: "Pro Plan - Monthly",
    buyer: { firstname: "Ásha", email: "asha@example.in", phone: "9999999999" },
    surl: "https://example.in/functions/v1/payu-return",
    furl: "https://example.in/functions/v1/payu-return",
    udf: ["tenant_42", "", "cycle_1"],
  });
  assert.equal(checkout.provider, "payu");
  if (checkout.provider !== "payu") return;
  assert.equal(checkout.action_url, "https://test.payu.in/_payment");
  assert.deepEqual(Object.keys(checkout.fields).sort(), [
    "amount",
    "email",
    "firstname",
    "furl",
    "hash",
    "key",
    "phone",
    "productinfo",
    "surl",
    "txnid",
    "udf1",
    "udf2",
    "udf3",
    "udf4",
    "udf5",
  ]);
  assert.equal(checkout.fields.amount, "499.00");
  assert.equal(checkout.fields.key, PAYU_KEY);
  assert.equal(checkout.fields.udf3, "cycle_1");
  assert.equal(checkout.fields.udf5, "");
  assert.equal(checkout.fields.hash, payuSdk.hasher.generatePaymentHash({ ...checkout.fields }));
});

Deno.test("PayU checkout uses PAYU_BASE_URL and refuses bad txnids, currencies, pipes and missing config", async () => {
  const order = {
    order_ref: "ord_1",
    amount_paise: 100,
    currency: "INR",
    plan_name: "Pro",
    buyer: { firstname: "A", email: "a@example.in" },
    surl: "https://x/s",
    furl: "https://x/f",
  };
  const custom = await createPayuAdapter(envOf({
    PAYU_MERCHANT_KEY: PAYU_KEY,
    PAYU_MERCHANT_SALT: PAYU_SALT,
    PAYU_BASE_URL: "http://127.0.0.1:9/",
  })).createCheckout(order);
  assert.equal(custom.provider === "payu" && custom.action_url, "http://127.0.0.1:9/_payment");
  const adapter = createPayuAdapter(payuEnv);
  const rejects = async (o: typeof order, code: string) =>
    await assert.rejects(adapter.createCheckout(o), (e) => e instanceof ProviderError && e.code === code);
  await rejects({ ...order, order_ref: "x".repeat(26) }, "invalid_input");
  await rejects({ ...order, order_ref: "a b" }, "invalid_input");
  await rejects({ ...order, currency: "USD" }, "invalid_input");
  await rejects({ ...order, plan_name: "Pro|Max" }, "invalid_input");
  await rejects({ ...order, amount_paise: 0 }, "invalid_amount");
  await rejects({ ...order, amount_paise: 10.5 }, "invalid_amount");
  await assert.rejects(
    createPayuAdapter(envOf({ PAYU_MERCHANT_SALT: PAYU_SALT })).createCheckout(order),
    (e) =>
      e instanceof ProviderError && e.code === "provider_not_configured" &&
      e.message.includes("PAYU_MERCHANT_KEY"),
  );
});

// ---------------------------------------------------------------------------------------------------
// Razorpay signatures against the razorpay SDK

Deno.test("Razorpay webhook signature matches the documented vector R1 and the SDK", async () => {
  const v = vectors.razorpay.R1;
  assert.equal(await hmacSha256Hex(v.secret, v.body), v.expected);
  assert.equal(await verifyWebhookSignature(v.body, v.expected, [v.secret]), true);
  assert.equal(Razorpay.validateWebhookSignature(v.body, v.expected, v.secret), true);
});

Deno.test("Razorpay checkout signature matches vector R3 and fails with the ids swapped", async () => {
  const v = vectors.razorpay.R3;
  const ids = { order_id: v.order_id, payment_id: v.payment_id };
  assert.equal(await verifyPaymentSignature(ids, v.expected, v.secret), true);
  assert.equal(validatePaymentVerification(ids, v.expected, v.secret), true);
  const swapped = { order_id: v.payment_id, payment_id: v.order_id };
  assert.equal(await verifyPaymentSignature(swapped, v.expected, v.secret), false);
  assert.equal(validatePaymentVerification(swapped, v.expected, v.secret), false);
});

function randomJsonValue(r: () => number, depth: number): unknown {
  const k = r();
  if (depth <= 0 || k < 0.35) {
    const leaf = Math.floor(r() * 6);
    return [randomText(r, 5), Math.floor(r() * 1e9), r() < 0.5, null, [], "a/b\\c\"d'"][leaf];
  }
  if (k < 0.55) return Array.from({ length: Math.floor(r() * 4) }, () => randomJsonValue(r, depth - 1));
  const obj: Record<string, unknown> = {};
  const n = Math.floor(r() * 5);
  for (let i = 0; i < n; i++) obj[randomText(r, 2) || `k${i}`] = randomJsonValue(r, depth - 1);
  return obj;
}

const RAZORPAY_EVENTS = [...Object.keys(RAZORPAY_EVENT_KINDS), "settlement.processed"];

function randomEventBody(r: () => number, large: boolean): string {
  const body = {
    entity: "event",
    account_id: "acc_BFQ7uQEaa7j2z7",
    event: RAZORPAY_EVENTS[Math.floor(r() * RAZORPAY_EVENTS.length)],
    contains: ["payment"],
    payload: {
      payment: {
        entity: {
          id: `pay_${Math.floor(r() * 1e14)}`,
          amount: Math.floor(r() * 1e7),
          currency: "INR",
          notes: r() < 0.5 ? [] : { order_ref: randomText(r, 3), extra: randomJsonValue(r, 3) },
          description: large ? randomText(r, 20).repeat(2000) : randomText(r, 8),
        },
      },
    },
    created_at: 1700000000 + Math.floor(r() * 1e6),
  };
  return JSON.stringify(body);
}

Deno.test("Razorpay webhook check agrees with the SDK on 300 generated bodies and their tampered variants", async () => {
  const r = rng(7);
  const secret = "whsec_Ω_test";
  let positives = 0;
  let negatives = 0;
  const agree = async (body: string, sig: string, expected: boolean, label: string) => {
    const sdk = Razorpay.validateWebhookSignature(body, sig, secret);
    const ours = await verifyWebhookSignature(body, sig, [secret]);
    assert.equal(sdk, expected, `sdk ${label}`);
    assert.equal(ours, expected, `ours ${label}`);
    if (expected) positives++;
    else negatives++;
  };
  for (let i = 0; i < 300; i++) {
    const body = randomEventBody(r, i % 50 === 0);
    const sig = await hmacSha256Hex(secret, body);
    await agree(body, sig, true, "valid");
    // One ASCII character changed somewhere in the body.
    let pos = Math.floor(r() * body.length);
    while (body.charCodeAt(pos) > 0x7e) pos = (pos + 1) % body.length;
    const tampered = body.slice(0, pos) + (body[pos] === "x" ? "y" : "x") + body.slice(pos + 1);
    await agree(tampered, sig, false, "tampered");
    // The same JSON re-serialised with other whitespace.
    await agree(JSON.stringify(JSON.parse(body), null, 1), sig, false, "reserialised");
    await agree(body + "\n", sig, false, "trailing newline");
    // Wrong secret, truncated and upper-cased signatures.
    await agree(body, await hmacSha256Hex(secret + "x", body), false, "wrong secret");
    await agree(body, sig.slice(0, 63), false, "truncated");
    await agree(body, sig.toUpperCase(), false, "uppercase");
  }
  assert.equal(positives, 300);
  assert.equal(negatives, 1800);
});

Deno.test("Razorpay checkout check agrees with the SDK for orders and subscriptions, swapped ids and wrong secrets", async () => {
  const r = rng(8);
  const keySecret = "EnLs21M47BllR3X8PSFtjtbd";
  const id = (prefix: string) => `${prefix}_${Math.floor(r() * 1e14).toString(36)}`;
  for (let i = 0; i < 200; i++) {
    const order = { order_id: id("order"), payment_id: id("pay") };
    const sub = { subscription_id: id("sub"), payment_id: order.payment_id };
    const orderSig = await hmacSha256Hex(keySecret, `${order.order_id}|${order.payment_id}`);
    const subSig = await hmacSha256Hex(keySecret, `${sub.payment_id}|${sub.subscription_id}`);
    const cases: [typeof order | typeof sub, string, string, boolean][] = [
      [order, orderSig, keySecret, true],
      [sub, subSig, keySecret, true],
      [{ order_id: order.payment_id, payment_id: order.order_id }, orderSig, keySecret, false],
      [{ subscription_id: sub.payment_id, payment_id: sub.subscription_id }, subSig, keySecret, false],
      [order, subSig, keySecret, false],
      [sub, orderSig, keySecret, false],
      [order, orderSig, keySecret + "x", false],
      [{ ...order, payment_id: id("pay") }, orderSig, keySecret, false],
    ];
    for (const [ids, sig, secret, expected] of cases) {
      assert.equal(validatePaymentVerification(ids, sig, secret), expected);
      assert.equal(await verifyPaymentSignature(ids, sig, secret), expected);
    }
  }
});

// ---------------------------------------------------------------------------------------------------
// Razorpay adapter

const RZP_SECRET = "whsec_new";
const RZP_OLD_SECRET = "whsec_old";

async function signedHeaders(
  body: string,
  secret: string,
  eventId: string | null = "evt_1",
): Promise<Headers> {
  const sig = await hmacSha256Hex(secret, body);
  // The SDK is the judge of what a valid signature is.
  assert.equal(Razorpay.validateWebhookSignature(body, sig, secret), true);
  const h = new Headers({ "x-razorpay-signature": sig });
  if (eventId) h.set("x-razorpay-event-id", eventId);
  return h;
}

Deno.test("Razorpay webhook rejects a missing, wrong or unconfigured signature and a missing event id", async () => {
  const adapter = createRazorpayAdapter(envOf({ RAZORPAY_WEBHOOK_SECRET: RZP_SECRET }));
  const body = JSON.stringify({ entity: "event", event: "payment.captured", payload: {}, created_at: 1 });
  const code = (res: Awaited<ReturnType<typeof adapter.verifyWebhook>>) => res.ok ? "ok" : res.code;
  assert.equal(code(await adapter.verifyWebhook(body, await signedHeaders(body, RZP_SECRET))), "ok");
  assert.equal(
    code(await adapter.verifyWebhook(body, new Headers({ "x-razorpay-event-id": "e" }))),
    "missing_signature",
  );
  assert.equal(
    code(await adapter.verifyWebhook(body, await signedHeaders(body, "other"))),
    "invalid_signature",
  );
  assert.equal(
    code(await adapter.verifyWebhook(body, await signedHeaders(body, RZP_SECRET, null))),
    "missing_event_id",
  );
  assert.equal(
    code(await adapter.verifyWebhook("not json", await signedHeaders("not json", RZP_SECRET))),
    "malformed_body",
  );
  assert.equal(
    code(await adapter.verifyWebhook("[1]", await signedHeaders("[1]", RZP_SECRET))),
    "malformed_body",
  );
  const unconfigured = createRazorpayAdapter(envOf({ RAZORPAY_WEBHOOK_SECRET: " , " }));
  assert.equal(
    code(await unconfigured.verifyWebhook(body, await signedHeaders(body, RZP_SECRET))),
    "provider_not_configured",
  );
});

Deno.test("Razorpay webhook accepts the old secret during rotation and nothing else", async () => {
  const adapter = createRazorpayAdapter(
    envOf({ RAZORPAY_WEBHOOK_SECRET: `${RZP_SECRET}, ${RZP_OLD_SECRET}` }),
  );
  const body = JSON.stringify({ entity: "event", event: "order.paid", payload: {}, created_at: 1 });
  assert.equal((await adapter.verifyWebhook(body, await signedHeaders(body, RZP_SECRET))).ok, true);
  assert.equal((await adapter.verifyWebhook(body, await signedHeaders(body, RZP_OLD_SECRET))).ok, true);
  assert.equal((await adapter.verifyWebhook(body, await signedHeaders(body, "whsec_older"))).ok, false);
  const newOnly = createRazorpayAdapter(envOf({ RAZORPAY_WEBHOOK_SECRET: RZP_SECRET }));
  assert.equal((await newOnly.verifyWebhook(body, await signedHeaders(body, RZP_OLD_SECRET))).ok, false);
});

const payment = {
  id: "pay_29QQoUBi66xm2f",
  entity: "payment",
  amount: 49900,
  currency: "INR",
  status: "captured",
  order_id: "order_9A33XWu170gUtm",
  invoice_id: null,
  method: "upi",
  captured: true,
  notes: [],
  created_at: 1719830000,
};
const order = {
  id: "order_9A33XWu170gUtm",
  entity: "order",
  amount: 49900,
  amount_paid: 49900,
  amount_due: 0,
  currency: "INR",
  receipt: "ord_42",
  status: "paid",
  notes: { plan: "pro" },
};
const refund = {
  id: "rfnd_FP8QHiV938haTz",
  entity: "refund",
  amount: 10000,
  currency: "INR",
  payment_id: "pay_29QQoUBi66xm2f",
  notes: [],
  status: "processed",
  created_at: 1719830100,
};
const subscription = {
  id: "sub_00000000000001",
  entity: "subscription",
  plan_id: "plan_00000000000001",
  status: "active",
  notes: { order_ref: "ord_sub_7" },
  current_start: 1719830000,
  current_end: 1722508400,
};
const invoice = {
  id: "inv_00000000000001",
  entity: "invoice",
  subscription_id: "sub_00000000000001",
  order_id: "order_9A33XWu170gUtm",
  payment_id: "pay_29QQoUBi66xm2f",
  amount: 49900,
  amount_paid: 49900,
  currency: "INR",
  status: "paid",
  receipt: null,
};

function envelope(event: string, entities: Record<string, unknown>) {
  const payload: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entities)) payload[k] = { entity: v };
  return {
    entity: "event",
    account_id: "acc_BFQ7uQEaa7j2z7",
    event,
    contains: Object.keys(entities),
    payload,
    created_at: 1719830400,
  };
}

type Expect = Partial<Record<string, string | number | null>>;

const normalizeCases: [string, Record<string, unknown>, Expect][] = [
  ["payment.captured", { payment }, {
    provider_payment_id: payment.id,
    provider_order_id: order.id,
    amount_paise: 49900,
    status: "captured",
    method: "upi",
    order_ref: null,
    kind: "payment_captured",
    subscription_status: null,
    error_reason: null,
  }],
  ["payment.captured", { payment: { ...payment, notes: { order_ref: "ord_from_notes" } } }, {
    order_ref: "ord_from_notes",
  }],
  ["payment.failed", { payment: { ...payment, status: "failed", captured: false } }, {
    status: "failed",
    amount_paise: 49900,
    kind: "payment_failed",
    // No error_description: the reason is Razorpay's status.
    error_reason: "failed",
  }],
  ["payment.failed", {
    payment: { ...payment, status: "failed", captured: false, error_description: "The UPI PIN was wrong." },
  }, {
    kind: "payment_failed",
    error_reason: "The UPI PIN was wrong.",
  }],
  ["payment.authorized", { payment: { ...payment, status: "authorized", captured: false } }, {
    kind: "payment_authorized",
    status: "authorized",
    error_reason: null,
  }],
  ["order.paid", { payment, order }, {
    order_ref: "ord_42",
    provider_order_id: order.id,
    provider_payment_id: payment.id,
    status: "captured",
    amount_paise: 49900,
    kind: "payment_captured",
  }],
  ["refund.processed", { refund, payment }, {
    provider_refund_id: refund.id,
    provider_payment_id: payment.id,
    amount_paise: 10000,
    status: "processed",
    kind: "refund_processed",
  }],
  ["refund.failed", { refund: { ...refund, status: "failed" } }, {
    provider_refund_id: refund.id,
    provider_payment_id: payment.id,
    status: "failed",
    method: null,
    kind: "refund_failed",
  }],
  ["subscription.activated", { subscription }, {
    provider_subscription_id: subscription.id,
    status: "active",
    amount_paise: null,
    order_ref: "ord_sub_7",
    provider_payment_id: null,
    kind: "subscription_status",
    subscription_status: "active",
  }],
  ["subscription.charged", { subscription, payment }, {
    provider_subscription_id: subscription.id,
    provider_payment_id: payment.id,
    amount_paise: 49900,
    currency: "INR",
    status: "active",
    kind: "payment_captured",
    subscription_status: "active",
  }],
  ...(["pending", "halted", "cancelled", "completed", "paused"] as const).map((
    s,
  ): [string, Record<string, unknown>, Expect] => [
    `subscription.${s}`,
    { subscription: { ...subscription, status: s } },
    { provider_subscription_id: subscription.id, status: s, kind: "subscription_status", subscription_status: s },
  ]),
  ["subscription.resumed", { subscription }, { status: "active", kind: "subscription_status", subscription_status: "active" }],
  ["invoice.paid", { invoice, payment, order }, {
    provider_subscription_id: subscription.id,
    provider_payment_id: payment.id,
    provider_order_id: order.id,
    amount_paise: 49900,
    status: "paid",
    order_ref: "ord_42",
    kind: "payment_captured",
    subscription_status: null,
  }],
  // An invoice paid with no payment named is recorded, not applied.
  ["invoice.paid", { invoice: { ...invoice, payment_id: null } }, { provider_payment_id: null, kind: "other" }],
  ["payment.dispute.created", { payment }, { kind: "dispute_opened", subscription_status: null, error_reason: null }],
  ...(["won", "lost"] as const).map((outcome): [string, Record<string, unknown>, Expect] => [
    `payment.dispute.${outcome}`,
    { payment, dispute: { id: `disp_${outcome}`, entity: "dispute", payment_id: payment.id, amount: 10000, currency: "INR", status: outcome } },
    { kind: `dispute_${outcome}`, provider_payment_id: payment.id, provider_dispute_id: `disp_${outcome}`, amount_paise: 10000, status: outcome },
  ]),
  // A closed dispute is read from the dispute's status: won stays won, anything else is lost.
  ["payment.dispute.closed", { payment, dispute: { id: "disp_c", entity: "dispute", payment_id: payment.id, amount: 10000, currency: "INR", status: "closed" } },
    { kind: "dispute_lost", provider_dispute_id: "disp_c" }],
];

Deno.test("Razorpay checkout options carry the amount and currency of the order Razorpay created, not ours", async () => {
  const env = envOf({ RAZORPAY_KEY_ID: "rzp_test_k", RAZORPAY_KEY_SECRET: "s" });
  const answering = (amount: number, currency: string): RazorpayClient => ({
    createOrder: (input) =>
      Promise.resolve({ id: "order_x", entity: "order", amount, currency, receipt: input.receipt, status: "created", notes: [] }),
    createSubscription: () => Promise.reject(new Error("not used")),
    fetchPayment: () => Promise.reject(new Error("not used")),
    fetchOrderPayments: () => Promise.reject(new Error("not used")),
    fetchSubscription: () => Promise.reject(new Error("not used")),
    fetchSubscriptionInvoices: () => Promise.reject(new Error("not used")),
  });
  const order = {
    order_ref: "ord_cur_1",
    amount_paise: 49900,
    currency: "INR",
    plan_name: "Pro",
    buyer: { firstname: "Asha", email: "asha@example.in" },
  };
  for (const [amount, currency] of [[49900, "USD"], [100, "INR"], [49900, "INR"]] as const) {
    const checkout = await createRazorpayCheckout(order, env, answering(amount, currency));
    assert.ok(checkout.provider === "razorpay");
    assert.deepEqual([checkout.options.order_id, checkout.options.amount, checkout.options.currency], [
      "order_x",
      amount,
      currency,
    ]);
  }
});

Deno.test("Razorpay normalize pulls ids, amount, currency, status, receipt and the neutral kind for every mapped event", async () => {
  const adapter = createRazorpayAdapter(envOf({ RAZORPAY_WEBHOOK_SECRET: RZP_SECRET }));
  const seen = new Set<string>();
  for (const [event, entities, expected] of normalizeCases) {
    const body = JSON.stringify(envelope(event, entities));
    const verified = await adapter.verifyWebhook(body, await signedHeaders(body, RZP_SECRET, `evt_${event}`));
    assert.ok(verified.ok, event);
    const normalized = adapter.normalize(verified.webhook);
    assert.ok(normalized.ok, event);
    const e = normalized.event;
    assert.equal(e.provider, "razorpay");
    // The identity comes from the signed body (event, entity, created_at), not the header.
    assert.ok(new RegExp(`^${event.replaceAll(".", "\\.")}:[A-Za-z0-9_]+:1719830400$`).test(e.event_id), `${event}: ${e.event_id}`);
    assert.equal(e.event_type, event);
    assert.equal(e.occurred_at, "2024-07-01T10:40:00.000Z");
    assert.deepEqual(e.payload, JSON.parse(body));
    for (const [k, v] of Object.entries(expected)) {
      assert.equal((e as unknown as Record<string, unknown>)[k], v, `${event}.${k}`);
    }
    seen.add(event);
  }
  // Every event the mapping names has a case here.
  assert.deepEqual(Object.keys(RAZORPAY_EVENT_KINDS).filter((e) => !seen.has(e)), []);
});

Deno.test("Razorpay normalize rejects non-integer amounts and events without a payload", () => {
  const bad = normalizeRazorpay({
    provider: "razorpay",
    event_id: "evt_1",
    payload: envelope("payment.captured", { payment: { ...payment, amount: 499.5 } }),
  });
  assert.deepEqual(bad.ok ? null : bad.code, "invalid_amount");
  const asString = normalizeRazorpay({
    provider: "razorpay",
    event_id: "evt_1",
    payload: envelope("payment.captured", { payment: { ...payment, amount: "49900" } }),
  });
  assert.deepEqual(asString.ok ? null : asString.code, "invalid_amount");
  const noPayload = normalizeRazorpay({ provider: "razorpay", event_id: "evt_1", payload: { event: "x" } });
  assert.deepEqual(noPayload.ok ? null : noPayload.code, "malformed_body");
  const noId = normalizeRazorpay({
    provider: "razorpay",
    event_id: null,
    payload: envelope("order.paid", {}),
  });
  assert.deepEqual(noId.ok ? null : noId.code, "missing_event_id");
});
