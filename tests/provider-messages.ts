// Provider messages as the providers send them, for tests that pay through the real functions:
// PayU's POST back for a checkout form (its reverse hash made and checked by PayU's SDK) and
// Razorpay's webhooks (signed with the webhook secret, the signature checked by Razorpay's SDK).
import { ok as assert } from "node:assert/strict";
import { createHmac } from "node:crypto";
// @ts-types="./fixtures/types/payu-websdk.d.ts"
import Payu from "npm:payu-websdk@1.3.1";
// @ts-types="./fixtures/types/razorpay.d.ts"
import Razorpay from "npm:razorpay@2.9.8";
import { callFunction as call, env } from "./helpers.ts";

type Json = Record<string, unknown>;

const payuSdk = () => new Payu({ key: env("PAYU_MERCHANT_KEY"), salt: env("PAYU_MERCHANT_SALT") });

/**
 * PayU's POST for a checkout form: the form's fields, PayU's additions, and the reverse hash (which
 * covers the status). `status` is usually success or failure; any other is sent as PayU would send
 * a status we do not know.
 */
export function payuPost(fields: Record<string, string>, status: string, mihpayid: string) {
  const f: Record<string, string> = {
    mihpayid,
    mode: "UPI",
    status,
    unmappedstatus: status === "success" ? "captured" : status === "failure" ? "failed" : status,
    key: fields.key,
    txnid: fields.txnid,
    amount: fields.amount,
    productinfo: fields.productinfo,
    firstname: fields.firstname,
    email: fields.email,
    udf1: fields.udf1,
    udf2: fields.udf2,
    udf3: fields.udf3,
    udf4: fields.udf4,
    udf5: fields.udf5,
    addedon: "2026-12-10 10:00:00",
  };
  f.hash = payuSdk().hasher.generateResponseHash({ ...f });
  assert(payuSdk().hasher.validateResponseHash({ ...f }), "PayU's SDK accepts the reverse hash");
  return f;
}

/** Posts a PayU form (fields, or an already encoded body) to the webhook or the browser's return. */
export function sendPayu(name: "payu-webhook" | "payu-return", form: Record<string, string> | string) {
  return call(name, {
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: typeof form === "string" ? form : new URLSearchParams(form).toString(),
  });
}

/** Razorpay's webhook signature: HMAC-SHA256 of the raw body with the webhook secret, in hex. */
export function rzpSign(raw: string, secret = env("RAZORPAY_WEBHOOK_SECRET")): string {
  return createHmac("sha256", secret).update(raw).digest("hex");
}

/** A Razorpay webhook event around its payload (created_at in Unix seconds, now by default). */
export function rzpEvent(event: string, payload: Json, createdAt = Math.floor(Date.now() / 1000)): Json {
  return { entity: "event", account_id: "acc_test", event, contains: Object.keys(payload), payload, created_at: createdAt };
}

/** A captured Razorpay payment entity (UPI, no order unless `extra` names one). */
export function rzpPayment(id: string, amount: number, extra: Json = {}): Json {
  return {
    id,
    entity: "payment",
    amount,
    currency: "INR",
    status: "captured",
    order_id: null,
    method: "upi",
    captured: true,
    notes: [],
    created_at: Math.floor(Date.now() / 1000),
    ...extra,
  };
}

/**
 * Sends a Razorpay webhook: the body (an event, or raw text sent as is) signed with the webhook
 * secret unless `signature` is given (or `signedRaw`, other bytes than those sent, is signed), under
 * a fresh event id unless `eventId` is given. A signature made here is first checked by Razorpay's
 * SDK, so the test and the provider agree on what a valid signature is.
 */
export async function sendRzp(
  body: Json | string,
  opts: { eventId?: string; signature?: string; signedRaw?: string } = {},
) {
  const raw = typeof body === "string" ? body : JSON.stringify(body);
  let signature = opts.signature;
  if (signature === undefined) {
    const signed = opts.signedRaw ?? raw;
    signature = rzpSign(signed);
    assert(
      Razorpay.validateWebhookSignature(signed, signature, env("RAZORPAY_WEBHOOK_SECRET")),
      "Razorpay's SDK accepts the signature",
    );
  }
  return await call("razorpay-webhook", {
    headers: {
      "content-type": "application/json",
      "x-razorpay-signature": signature,
      "x-razorpay-event-id": opts.eventId ?? `evt_${crypto.randomUUID().replaceAll("-", "").slice(0, 14)}`,
    },
    body: raw,
  });
}
