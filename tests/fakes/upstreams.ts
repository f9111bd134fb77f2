// Fake upstreams on loopback: Groq (OpenAI-compatible), the Razorpay API and PayU's command API and
// payment page, Resend's email API (tests/fakes/email.ts: POST /emails, the inbox at /inbox), plus a
// control API for tests. One HTTP server, in-memory state, deterministic answers.
//
//   Groq      GET  /openai/v1/models
//             POST /openai/v1/chat/completions       (stream or not; Bearer auth)
//             /openai/v1/files, /openai/v1/batches   the Batch API (tests/fakes/groq-batches.ts: upload,
//                                                     content, create, retrieve, list, cancel; a delay
//                                                     on the fakes' clock, expiry, failure and partial
//                                                     results through POST /__control/groq/batches)
//   Razorpay  GET|POST /v1/checkout/embedded          {key_id, order_id, callback_url, cancel_url?, name?,
//                                                      description?}: the hosted checkout page, with Pay
//                                                      and Fail buttons (no auth)
//             POST /v1/checkout/embedded/complete     {order_id, outcome: success | failure, callback_url}
//                                                      (the buttons): the payment made, its signed webhook
//                                                      sent to webhook_url, the browser posted back to
//                                                      callback_url with the handler's signed fields
//             POST /v1/orders, POST /v1/subscriptions, GET /v1/orders/:id, GET /v1/orders/:id/payments,
//             GET  /v1/payments/:id, POST /v1/payments/:id/refund (X-Refund-Idempotency honoured),
//             GET  /v1/payments/:id/refunds,
//             GET  /v1/subscriptions/:id, POST /v1/subscriptions/:id/{cancel,pause,resume},
//             PATCH /v1/subscriptions/:id, GET /v1/invoices?subscription_id=:id   (HTTP Basic auth)
//   PayU      POST /merchant/postservice.php?form=2  (verify_payment, cancel_refund_transaction,
//                                                     getAllRefundsFromTxnIds, check_action_status;
//                                                     command hash checked)
//             POST /_payment                          (request hash checked): the payment page, with Pay
//                                                      and Fail buttons
//             POST /_payment/complete                 {txnid, outcome: success | failure} (the buttons):
//                                                      the answer with its reverse hash is posted to the
//                                                      webhook URL, then the browser to surl / furl
//   Control   POST /__control/groq                    {latency_ms, fail_status, fail_count,
//                                                      stream_chunk_delay_ms, reply_tokens,
//                                                      prompt_tokens_per: "char4" | "byte",
//                                                      reply_suffix, reset}
//             POST /__control/razorpay                {latency_ms, fail_status, fail_count, fail_message,
//                                                      fail_retry_after, fail_hang_ms, fail_routes,
//                                                      webhook_url (where the checkout page's webhooks go;
//                                                      none by default),
//                                                      refund_status: "processed" | "pending", reset}
//             POST /__control/razorpay/payments       payment or [payments] to seed
//             POST /__control/razorpay/subscriptions  subscription or [subscriptions] to seed, or fields to
//                                                      change (e.g. status "cancelled"); no webhook
//             POST /__control/razorpay/subscriptions/charge
//                                                     {subscription_id, amount, payment_id?, paid_at?}:
//                                                      a charge Razorpay made (a captured payment and
//                                                      its paid invoice, paid_count + 1, the cycle
//                                                      moved on) whose webhook is never delivered
//             POST /__control/razorpay/refunds        {payment_id, amount, receipt?, notes?, status?}: a refund
//                                                      made in Razorpay's dashboard (no API call, no webhook)
//             GET  /__control/razorpay/orders         orders, subscriptions and refunds so far
//             POST /__control/payu                    {latency_ms, fail_status, fail_count, fail_message,
//                                                      fail_retry_after, fail_hang_ms, fail_routes,
//                                                      webhook_url (null: payu-webhook beside a
//                                                      payu-return surl), reset}
//             POST /__control/payu/transactions       {txnid: details} or [details with txnid]
//             GET  /__control/razorpay/payments       every payment the fake Razorpay holds, and the webhooks
//                                                      its checkout page sent {url, event, payment_id, status}
//             GET  /__control/payu/transactions       every PayU transaction seeded
//             GET  /__control/payu/payments           forms accepted by /_payment, and the webhooks
//                                                      the payment page sent {url, txnid, status}
//             GET  /__control/payu/refunds            refunds PayU holds (cancel_refund_transaction and the
//                                                      dashboard's), with token, request id, amount, status
//             POST /__control/payu/refunds            {txnid, amount_paise, token?}: a refund made in PayU's
//                                                      dashboard; or {request_id, status}: its status moves on
//             GET  /__control/stats                   {calls: {"groq.chat": n, ...}, last: {route: body}}
//             GET  /__control/groq/requests           {requests: [body, ...]}: every chat body received
//                                                      since the reset, oldest first (the last 1000)
//             GET  /__control/calls[?route=prefix]    every Razorpay and PayU call, in order: {route,
//                                                      method, path, body, idempotency_key, receipt,
//                                                      token, status, at}
//             POST /__control/email, GET /__control/email  the email fake's failures and records
//                                                     (tests/fakes/email.ts)
//   Stripe    /stripe/v1/... (STRIPE_API_BASE=<url>/stripe) and /__control/stripe...: the Stripe fake
//             (tests/fakes/stripe.ts: customers, coupons, prices, checkout sessions, subscriptions,
//             invoices, refunds, disputes, events; payments, renewals, refunds and disputes played
//             by control routes and delivered as signed events)
//             POST /__control/clock                   {at: ISO time | null}: the fakes' clock (Razorpay's
//                                                      created_at of orders, payments, refunds and charges,
//                                                      PayU's and the mailbox's times) stands at `at`
//                                                      until set again; null: real time again
//             POST /__control/seed                    {seed: integer | null}: the fakes' ids (random.ts) from
//                                                      a seeded generator; null: crypto's again
//             POST /__control/reset                   everything back to the start state (real time, crypto's
//                                                      ids too)
//
// Failures: `fail_status` for the next `fail_count` calls (every call when omitted) of the routes
// starting with one of `fail_routes`, or whose path (PayU: var1, var2) holds one that has a `_` in
// it, e.g. a subscription id (all of the provider's routes when omitted); a 429 or 503
// carries `Retry-After: fail_retry_after` when set; `fail_message` is the error description (the
// Razorpay error's `description`, PayU's `msg`); `fail_hang_ms` waits that long before answering
// (a client with a shorter timeout sees a timeout). A failed call is still recorded.
//
// Groq token counts are deterministic: prompt_tokens = ceil(characters of all message texts / 4)
// (at least 1), or with prompt_tokens_per "byte" the UTF-8 bytes of all message texts + 4 per message
// (the most a byte-level tokenizer and its chat template can count: above ceil(bytes / 4) + 4 per
// message, the gateway's old estimate); completion_tokens = min(max_completion_tokens ?? max_tokens ?? 64, reply_tokens)
// with reply_tokens 16 by default, one token per streamed piece. finish_reason is "length" when the
// cap cut the reply, else "stop". `fail_status` without `fail_count` fails every chat call until reset;
// failures carry `retry-after-ms: 10`.
//
// Run as a script: reads GROQ_API_KEY, RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET, RAZORPAY_WEBHOOK_SECRET, PAYU_MERCHANT_KEY,
// PAYU_MERCHANT_SALT, RESEND_API_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET and FAKE_UPSTREAMS_PORT (0 = any free port), prints {"url": "..."} on one line.

import { createFakeEmail } from "./email.ts";
import { createFakeGroqBatches } from "./groq-batches.ts";
import { createFakeStripe } from "./stripe.ts";
import { randomBytes, randomFraction, randomUuid, seedRandom } from "./random.ts";

export interface FakeUpstreamsOptions {
  port?: number;
  hostname?: string;
  groqKey: string;
  razorpayKeyId: string;
  razorpayKeySecret: string;
  payuKey: string;
  payuSalt: string;
  /** The secret the Razorpay fake signs the webhooks of its checkout page with (RAZORPAY_WEBHOOK_SECRET). */
  razorpayWebhookSecret?: string;
  /** The key the email fake accepts (default "re_fake"). */
  resendKey?: string;
  /** The secret key the Stripe fake accepts (default "sk_test_fake"). */
  stripeSecretKey?: string;
  /** The webhook endpoint secret the Stripe fake signs its events with (default "whsec_test_fake"). */
  stripeWebhookSecret?: string;
}

export interface FakeUpstreams {
  /** Origin, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  close(): Promise<void>;
}

export const FAKE_GROQ_MODELS = [
  "llama-3.1-8b-instant",
  "llama-3.3-70b-versatile",
  "openai/gpt-oss-20b",
  "openai/gpt-oss-120b",
];

const WORDS = ["This", "is", "a", "fake", "Groq", "reply", "from", "the", "local", "test", "server."];

type Json = Record<string, unknown>;

interface FailureControl {
  latency_ms: number;
  fail_status: number | null;
  /** null = every call fails while fail_status is set. */
  fail_count: number | null;
  /** The error's description; default "fake upstream failure <status>". */
  fail_message?: string | null;
  /** Retry-After seconds sent with a failing 429 / 503. */
  fail_retry_after?: number | null;
  /** Wait this long before answering a failing call. */
  fail_hang_ms?: number;
  /** Only routes starting with one of these fail (null: every route). */
  fail_routes?: string[] | null;
}

interface GroqControl extends FailureControl {
  stream_chunk_delay_ms: number;
  reply_tokens: number;
  prompt_tokens_per: "char4" | "byte";
  /** Appended to the reply's last piece (e.g. text with U+0000); not counted as a token. */
  reply_suffix: string;
}

const groqDefaults = (): GroqControl => ({
  latency_ms: 0,
  fail_status: null,
  fail_count: null,
  stream_chunk_delay_ms: 0,
  reply_tokens: 16,
  prompt_tokens_per: "char4",
  reply_suffix: "",
});
const failureDefaults = (): FailureControl => ({
  latency_ms: 0,
  fail_status: null,
  fail_count: null,
  fail_message: null,
  fail_retry_after: null,
  fail_hang_ms: 0,
  fail_routes: null,
});

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

const sleep = (ms: number) => ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve();

/** Text for an HTML page (the fake payment pages). */
function esc(s: unknown): string {
  return String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function hmacSha256Hex(secret: string, data: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(data)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** An auto-submitted form: how a payment page sends the browser back to the merchant with a POST. */
function postBack(target: string, fields: Record<string, string>): Response {
  const inputs = Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join("\n");
  return html(`<!doctype html><html><head><meta charset="utf-8"><title>Redirecting</title></head>
<body onload="document.forms[0].submit()"><p>Taking you back to the merchant…</p>
<form method="post" action="${esc(target)}">${inputs}<noscript><button>Continue</button></noscript></form></body></html>`);
}

function html(body: string): Response {
  return new Response(body, { headers: { "content-type": "text/html; charset=utf-8" } });
}

async function sha512Hex(s: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(s));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function randomId(prefix: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(14);
  return `${prefix}_${[...bytes].map((b) => alphabet[b % alphabet.length]).join("")}`;
}

/**
 * The fakes' clock: real time, or a simulated time set through POST /__control/clock, which stands
 * still until set again: the times the fakes write depend on the simulated time alone, not on how
 * fast the machine answered since (a simulation replays the same times: docs/simulator.md). Calls
 * made at one simulated time are told apart by their order, as in the fakes' lists.
 */
export class FakeClock {
  #at: number | null = null;
  /** Milliseconds since the epoch, simulated or real. */
  now(): number {
    return this.#at ?? Date.now();
  }
  /** Follow a simulated time (ms since the epoch), or real time again with null. */
  set(at: number | null): void {
    this.#at = at;
  }
  get simulated(): boolean {
    return this.#at !== null;
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function readJson(req: Request): Promise<unknown> {
  const text = await req.text();
  if (text === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => (isObject(part) && typeof part.text === "string" ? part.text : "")).join("");
  }
  return "";
}

/** Applies `fail_status`/`fail_count` for one call of `route`; returns the status to fail with, or null. */
function takeFailure(control: FailureControl, route?: string, path = ""): number | null {
  if (control.fail_status === null) return null;
  if (
    route !== undefined && control.fail_routes &&
    !control.fail_routes.some((r) => route.startsWith(r) || (r.includes("_") && path.includes(r)))
  ) {
    return null;
  }
  if (control.fail_count === null) return control.fail_status;
  if (control.fail_count <= 0) return null;
  control.fail_count--;
  return control.fail_status;
}

function applyFailureControl(control: FailureControl, body: Json): void {
  if (typeof body.latency_ms === "number") control.latency_ms = body.latency_ms;
  // Setting fail_status always sets fail_count too: omitted means "every call until reset".
  if ("fail_status" in body) {
    control.fail_status = typeof body.fail_status === "number" ? body.fail_status : null;
    control.fail_count = typeof body.fail_count === "number" ? body.fail_count : null;
  } else if (typeof body.fail_count === "number") {
    control.fail_count = body.fail_count;
  }
  if ("fail_message" in body) control.fail_message = typeof body.fail_message === "string" ? body.fail_message : null;
  if ("fail_retry_after" in body) {
    control.fail_retry_after = typeof body.fail_retry_after === "number" ? body.fail_retry_after : null;
  }
  if (typeof body.fail_hang_ms === "number") control.fail_hang_ms = body.fail_hang_ms;
  if ("fail_routes" in body) {
    control.fail_routes = Array.isArray(body.fail_routes)
      ? body.fail_routes.filter((r): r is string => typeof r === "string")
      : null;
  }
}

/** Headers for a failing answer: Retry-After on 429 / 503 when set. */
function failureHeaders(control: FailureControl, status: number): Record<string, string> {
  return (status === 429 || status === 503) && typeof control.fail_retry_after === "number"
    ? { "retry-after": String(control.fail_retry_after) }
    : {};
}

/** One recorded call of the Razorpay or PayU fake. */
export interface RecordedCall {
  route: string;
  method: string;
  path: string;
  body: unknown;
  /** Razorpay's X-Refund-Idempotency header. */
  idempotency_key: string | null;
  /** The Razorpay body's receipt. */
  receipt: string | null;
  /** PayU's var2 of cancel_refund_transaction (the merchant's refund token). */
  token: string | null;
  /** The HTTP status answered (null while the call is in flight). */
  status: number | null;
  at: string;
}

export function startFakeUpstreams(options: FakeUpstreamsOptions): FakeUpstreams {
  let groq = groqDefaults();
  let rzpControl = failureDefaults();
  let payuControl = failureDefaults();
  let refundStatus: "processed" | "pending" = "processed";
  let callLog: RecordedCall[] = [];
  let refunds = new Map<string, Json>();
  let refundsByKey = new Map<string, { body: string; refund: Json }>();
  let payuRefunds: Json[] = [];
  let calls: Record<string, number> = {};
  let last: Record<string, unknown> = {};
  let groqRequests: unknown[] = [];
  let orders = new Map<string, Json>();
  let subscriptions = new Map<string, Json>();
  let payments = new Map<string, Json>();
  let invoices = new Map<string, Json>();
  let payuTransactions = new Map<string, Json>();
  let payuPayments: Json[] = [];
  let payuWebhooks: Json[] = [];
  let payuWebhookUrl: string | null = null;
  let rzpWebhookUrl: string | null = null;
  let rzpWebhooks: Json[] = [];
  const clock = new FakeClock();
  const nowSecs = () => Math.floor(clock.now() / 1000);
  const email = createFakeEmail({ apiKey: options.resendKey ?? "re_fake", now: () => clock.now() });
  const stripe = createFakeStripe({
    secretKey: options.stripeSecretKey ?? "sk_test_fake",
    webhookSecret: options.stripeWebhookSecret ?? "whsec_test_fake",
    now: () => clock.now(),
  });

  const groqBatches = createFakeGroqBatches({
    apiKey: options.groqKey,
    now: () => clock.now(),
    // Each line of a batch is answered by this fake's own chat completions (same token rules).
    chat: async (body) => {
      const res = await groqChat(new Request("http://fake/openai/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${options.groqKey}`, "content-type": "application/json" },
        body: JSON.stringify(isObject(body) ? { ...body, stream: false } : body),
      }));
      return { status: res.status, body: await res.json() };
    },
  });

  const count = (route: string, body?: unknown) => {
    calls[route] = (calls[route] ?? 0) + 1;
    if (body !== undefined) last[route] = body;
  };

  function reset() {
    email.reset();
    stripe.reset();
    groqBatches.reset();
    clock.set(null);
    seedRandom(null);
    groq = groqDefaults();
    rzpControl = failureDefaults();
    payuControl = failureDefaults();
    refundStatus = "processed";
    callLog = [];
    refunds = new Map();
    refundsByKey = new Map();
    payuRefunds = [];
    calls = {};
    last = {};
    groqRequests = [];
    orders = new Map();
    subscriptions = new Map();
    payments = new Map();
    invoices = new Map();
    payuTransactions = new Map();
    payuPayments = [];
    payuWebhooks = [];
    payuWebhookUrl = null;
    rzpWebhookUrl = null;
    rzpWebhooks = [];
  }

  // ------------------------------------------------------------------------------------------------
  // Groq

  const groqError = (status: number, message: string, type: string, code?: string, headers = {}) =>
    json({ error: { message, type, ...(code ? { code } : {}) } }, status, headers);

  function groqAuthorized(req: Request): boolean {
    return req.headers.get("authorization") === `Bearer ${options.groqKey}`;
  }

  function groqModels(req: Request): Response {
    count("groq.models");
    if (!groqAuthorized(req)) {
      return groqError(401, "Invalid API Key", "invalid_request_error", "invalid_api_key");
    }
    return json({
      object: "list",
      data: FAKE_GROQ_MODELS.map((id) => ({
        id,
        object: "model",
        created: 1700000000,
        owned_by: "Fake",
        active: true,
        context_window: 131072,
      })),
    });
  }

  async function groqChat(req: Request): Promise<Response> {
    const body = await readJson(req);
    count("groq.chat", body);
    groqRequests.push(body);
    if (groqRequests.length > 1000) groqRequests.shift();
    if (!groqAuthorized(req)) {
      return groqError(401, "Invalid API Key", "invalid_request_error", "invalid_api_key");
    }
    await sleep(groq.latency_ms);
    const failure = takeFailure(groq);
    if (failure !== null) {
      const type = failure === 429
        ? "tokens"
        : failure >= 500
        ? "internal_server_error"
        : "invalid_request_error";
      // retry-after-ms keeps groq-sdk's own retries fast (it honours this header before its backoff).
      return groqError(
        failure,
        `fake upstream failure ${failure}`,
        type,
        failure === 429 ? "rate_limit_exceeded" : undefined,
        { "retry-after-ms": "10" },
      );
    }
    if (!isObject(body)) return groqError(400, "request body is not JSON", "invalid_request_error");
    if (typeof body.model !== "string") return groqError(400, "'model' is required", "invalid_request_error");
    if (!FAKE_GROQ_MODELS.includes(body.model)) {
      return groqError(
        404,
        `The model \`${body.model}\` does not exist or you do not have access to it.`,
        "invalid_request_error",
        "model_not_found",
      );
    }
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      return groqError(400, "'messages' must be a non-empty array", "invalid_request_error");
    }
    const cap = body.max_completion_tokens ?? body.max_tokens;
    if (cap !== undefined && cap !== null && (!Number.isInteger(cap) || (cap as number) < 1)) {
      return groqError(400, "'max_tokens' must be a positive integer", "invalid_request_error");
    }
    const texts = body.messages.map((m: unknown) => (isObject(m) ? messageText(m.content) : ""));
    const promptTokens = groq.prompt_tokens_per === "byte"
      ? texts.reduce((n: number, t: string) => n + new TextEncoder().encode(t).length + 4, 0)
      : Math.max(1, Math.ceil(texts.reduce((n: number, t: string) => n + t.length, 0) / 4));
    const limit = typeof cap === "number" ? cap : 64;
    const completionTokens = Math.min(limit, groq.reply_tokens);
    const finishReason = completionTokens < groq.reply_tokens ? "length" : "stop";
    const pieces = Array.from(
      { length: completionTokens },
      (_, i) => (i === 0 ? "" : " ") + WORDS[i % WORDS.length],
    );
    if (groq.reply_suffix && pieces.length > 0) pieces[pieces.length - 1] += groq.reply_suffix;
    const usage = {
      queue_time: 0.001,
      prompt_tokens: promptTokens,
      prompt_time: 0.001,
      completion_tokens: completionTokens,
      completion_time: 0.01,
      total_tokens: promptTokens + completionTokens,
      total_time: 0.011,
    };
    const id = `chatcmpl-${randomUuid()}`;
    const created = nowSecs();
    const model = body.model;

    if (body.stream !== true) {
      return json({
        id,
        object: "chat.completion",
        created,
        model,
        choices: [{
          index: 0,
          message: { role: "assistant", content: pieces.join("") },
          logprobs: null,
          finish_reason: finishReason,
        }],
        usage,
        system_fingerprint: "fp_fake",
        x_groq: { id: `req_${id}` },
      });
    }

    const delay = groq.stream_chunk_delay_ms;
    const encoder = new TextEncoder();
    let cancelled = false;
    const chunk = (delta: Json, finish: string | null, extra: Json = {}) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      system_fingerprint: "fp_fake",
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...extra,
    });
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        const send = (data: unknown) => {
          if (cancelled) return;
          controller.enqueue(
            encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`),
          );
        };
        try {
          send(chunk({ role: "assistant", content: "" }, null, { x_groq: { id: `req_${id}` } }));
          for (const piece of pieces) {
            await sleep(delay);
            if (cancelled) return;
            send(chunk({ content: piece }, null));
          }
          await sleep(delay);
          // Groq reports usage in x_groq.usage on the final chunk; OpenAI-style clients look for usage.
          send(chunk({}, finishReason, { x_groq: { id: `req_${id}`, usage }, usage }));
          send("[DONE]");
          if (!cancelled) controller.close();
        } catch {
          // The client went away.
        }
      },
      cancel() {
        cancelled = true;
      },
    });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  }

  // ------------------------------------------------------------------------------------------------
  // Razorpay

  const rzpError = (status: number, description: string, field?: string, headers: Record<string, string> = {}) =>
    json({
      error: {
        code: status === 401 ? "BAD_REQUEST_ERROR" : status >= 500 ? "SERVER_ERROR" : "BAD_REQUEST_ERROR",
        description,
        source: "business",
        step: "payment_initiation",
        reason: "input_validation_failed",
        metadata: {},
        ...(field ? { field } : {}),
      },
    }, status, headers);

  function rzpAuthorized(req: Request): boolean {
    return req.headers.get("authorization") ===
      `Basic ${btoa(`${options.razorpayKeyId}:${options.razorpayKeySecret}`)}`;
  }

  function notesOk(notes: unknown): notes is Json | [] | undefined {
    if (notes === undefined) return true;
    if (Array.isArray(notes)) return notes.length === 0;
    return isObject(notes) && Object.keys(notes).length <= 15 &&
      Object.values(notes).every((v) => typeof v === "string" || typeof v === "number");
  }

  function record(route: string, req: Request, path: string, body: unknown, extra: Partial<RecordedCall> = {}) {
    const entry: RecordedCall = {
      route,
      method: req.method,
      path,
      body,
      idempotency_key: null,
      receipt: null,
      token: null,
      status: null,
      at: new Date(clock.now()).toISOString(),
      ...extra,
    };
    callLog.push(entry);
    return entry;
  }

  async function razorpay(req: Request, path: string, query: URLSearchParams): Promise<Response> {
    const method = req.method;
    const body = method === "POST" || method === "PATCH" ? await readJson(req) : undefined;
    let route = "razorpay.unknown";
    if (method === "POST" && path === "/v1/orders") route = "razorpay.orders.create";
    else if (method === "POST" && path === "/v1/subscriptions") route = "razorpay.subscriptions.create";
    else if (method === "GET" && /^\/v1\/orders\/[^/]+\/payments$/.test(path)) {
      route = "razorpay.orders.payments";
    } else if (method === "GET" && /^\/v1\/orders\/[^/]+$/.test(path)) route = "razorpay.orders.fetch";
    else if (method === "GET" && /^\/v1\/payments\/[^/]+$/.test(path)) route = "razorpay.payments.fetch";
    else if (method === "POST" && /^\/v1\/payments\/[^/]+\/refund$/.test(path)) route = "razorpay.payments.refund";
    else if (method === "GET" && /^\/v1\/payments\/[^/]+\/refunds$/.test(path)) route = "razorpay.payments.refunds";
    else if (method === "GET" && /^\/v1\/subscriptions\/[^/]+$/.test(path)) route = "razorpay.subscriptions.fetch";
    else if (method === "GET" && path === "/v1/invoices") route = "razorpay.invoices.list";
    else if (method === "PATCH" && /^\/v1\/subscriptions\/[^/]+$/.test(path)) route = "razorpay.subscriptions.update";
    else if (method === "POST" && /^\/v1\/subscriptions\/[^/]+\/(cancel|pause|resume)$/.test(path)) {
      route = `razorpay.subscriptions.${path.split("/")[4]}`;
    }
    count(route, body);
    const entry = record(route, req, path, body, {
      idempotency_key: req.headers.get("x-refund-idempotency"),
      receipt: isObject(body) && typeof body.receipt === "string" ? body.receipt : null,
    });
    const res = await razorpayAnswer(req, route, path, body, query);
    entry.status = res.status;
    return res;
  }

  async function razorpayAnswer(
    req: Request,
    route: string,
    path: string,
    body: unknown,
    query: URLSearchParams,
  ): Promise<Response> {
    if (!rzpAuthorized(req)) return rzpError(401, "The api key provided is invalid");
    await sleep(rzpControl.latency_ms);
    const failure = takeFailure(rzpControl, route, path);
    if (failure !== null) {
      await sleep(rzpControl.fail_hang_ms ?? 0);
      return rzpError(
        failure,
        rzpControl.fail_message ?? `fake upstream failure ${failure}`,
        undefined,
        failureHeaders(rzpControl, failure),
      );
    }
    if (route === "razorpay.unknown") return rzpError(404, "The requested URL was not found on the server.");
    const id = decodeURIComponent(path.split("/")[3] ?? "");

    if (route === "razorpay.payments.refund") return refundPayment(req, id, body);
    if (route === "razorpay.payments.refunds") {
      if (!payments.has(id)) return rzpError(400, "The id provided does not exist");
      const limit = Math.min(Math.max(Number(query.get("count") ?? 10) || 10, 1), 100);
      const skip = Math.max(Number(query.get("skip") ?? 0) || 0, 0);
      const items = [...refunds.values()]
        .filter((r) => r.payment_id === id)
        .reverse()
        .slice(skip, skip + limit);
      return json({ entity: "collection", count: items.length, items });
    }
    if (route === "razorpay.invoices.list") {
      const subId = query.get("subscription_id");
      const items = [...invoices.values()]
        .filter((i) => subId === null || i.subscription_id === subId)
        .sort((a, b) => (b.created_at as number) - (a.created_at as number));
      return json({ entity: "collection", count: items.length, items });
    }
    if (route.startsWith("razorpay.subscriptions.") && route !== "razorpay.subscriptions.create") {
      return subscriptionAction(route, id, body);
    }

    if (route === "razorpay.orders.create") {
      if (!isObject(body)) return rzpError(400, "The request body is invalid");
      const { amount, currency, receipt, notes } = body;
      if (typeof amount !== "number" || !Number.isInteger(amount)) {
        return rzpError(400, "The amount must be an integer.", "amount");
      }
      if (amount < 100) return rzpError(400, "Order amount less than minimum amount allowed", "amount");
      if (typeof currency !== "string" || !/^[A-Z]{3}$/.test(currency)) {
        return rzpError(400, "The currency field is invalid.", "currency");
      }
      if (receipt !== undefined && (typeof receipt !== "string" || receipt.length > 40)) {
        return rzpError(400, "The receipt may not be greater than 40 characters.", "receipt");
      }
      if (!notesOk(notes)) return rzpError(400, "The notes field is invalid.", "notes");
      const order = {
        id: randomId("order"),
        entity: "order",
        amount,
        amount_paid: 0,
        amount_due: amount,
        currency,
        receipt: receipt ?? null,
        offer_id: null,
        status: "created",
        attempts: 0,
        notes: notes && !Array.isArray(notes) && Object.keys(notes).length > 0 ? notes : [],
        created_at: nowSecs(),
      };
      orders.set(order.id, order);
      return json(order);
    }

    if (route === "razorpay.subscriptions.create") {
      if (!isObject(body)) return rzpError(400, "The request body is invalid");
      const { plan_id, total_count, notes } = body;
      if (typeof plan_id !== "string" || !plan_id.startsWith("plan_")) {
        return rzpError(400, "The plan id provided is invalid", "plan_id");
      }
      if (typeof total_count !== "number" || !Number.isInteger(total_count) || total_count < 1) {
        return rzpError(400, "The total count must be at least 1.", "total_count");
      }
      if (!notesOk(notes)) return rzpError(400, "The notes field is invalid.", "notes");
      const sub = {
        id: randomId("sub"),
        entity: "subscription",
        plan_id,
        customer_id: null,
        status: "created",
        current_start: null,
        current_end: null,
        ended_at: null,
        quantity: 1,
        notes: notes && !Array.isArray(notes) && Object.keys(notes).length > 0 ? notes : [],
        charge_at: null,
        start_at: null,
        end_at: null,
        auth_attempts: 0,
        total_count,
        paid_count: 0,
        customer_notify: true,
        created_at: nowSecs(),
        expire_by: null,
        short_url: `https://rzp.io/i/${randomId("x").slice(2, 10)}`,
        has_scheduled_changes: false,
        change_scheduled_at: null,
        source: "api",
        remaining_count: total_count,
      };
      subscriptions.set(sub.id, sub);
      return json(sub);
    }

    if (route === "razorpay.orders.fetch") {
      const order = orders.get(id);
      return order ? json(order) : rzpError(400, "The id provided does not exist");
    }

    if (route === "razorpay.orders.payments") {
      const items = [...payments.values()].filter((p) => p.order_id === id);
      if (!orders.has(id) && items.length === 0) return rzpError(400, "The id provided does not exist");
      return json({ entity: "collection", count: items.length, items });
    }

    // razorpay.payments.fetch
    const payment = payments.get(id);
    return payment ? json(payment) : rzpError(400, "The id provided does not exist");
  }

  /** POST /v1/payments/:id/refund: a refund of a captured payment, at most what is left of it. */
  function refundPayment(req: Request, paymentId: string, body: unknown): Response {
    if (!isObject(body)) return rzpError(400, "The request body is invalid");
    const key = req.headers.get("x-refund-idempotency");
    const canonical = JSON.stringify(body);
    if (key !== null) {
      if (!/^[A-Za-z0-9_-]{10,}$/.test(key)) return rzpError(400, "The idempotency key is invalid");
      const seen = refundsByKey.get(key);
      if (seen) {
        return seen.body === canonical
          ? json(seen.refund)
          : rzpError(400, "Different request with the same idempotency key has already been processed.");
      }
    }
    const payment = payments.get(paymentId);
    if (!payment) return rzpError(400, "The id provided does not exist");
    if (payment.status !== "captured" && payment.status !== "refunded") {
      return rzpError(400, "Only payments which have been captured can be refunded", "id");
    }
    const captured = payment.amount as number;
    const already = (payment.amount_refunded as number) ?? 0;
    const amount = body.amount === undefined ? captured - already : body.amount;
    if (typeof amount !== "number" || !Number.isInteger(amount)) {
      return rzpError(400, "The amount must be an integer.", "amount");
    }
    if (amount < 100) return rzpError(400, "The amount must be at least INR 1.00", "amount");
    if (already + amount > captured) {
      return rzpError(400, "The refund amount provided is greater than amount captured", "amount");
    }
    if (body.receipt !== undefined && (typeof body.receipt !== "string" || body.receipt.length > 40)) {
      return rzpError(400, "The receipt may not be greater than 40 characters.", "receipt");
    }
    if (!notesOk(body.notes)) return rzpError(400, "The notes field is invalid.", "notes");
    const refund = makeRefund(payment, amount, body.notes, body.receipt ?? null, refundStatus);
    if (key !== null) refundsByKey.set(key, { body: canonical, refund });
    return json(refund);
  }

  /** A refund of `payment` Razorpay holds (the API's or the dashboard's); the payment's refunded amount moves on. */
  function makeRefund(payment: Json, amount: number, notes: unknown, receipt: unknown, status: string): Json {
    const captured = payment.amount as number;
    const already = (payment.amount_refunded as number) ?? 0;
    const refund: Json = {
      id: randomId("rfnd"),
      entity: "refund",
      amount,
      currency: payment.currency,
      payment_id: payment.id,
      notes: isObject(notes) && Object.keys(notes).length > 0 ? notes : [],
      receipt: receipt ?? null,
      acquirer_data: { arn: null },
      created_at: nowSecs(),
      batch_id: null,
      status,
      speed_processed: "normal",
      speed_requested: "normal",
    };
    refunds.set(refund.id as string, refund);
    payment.amount_refunded = already + amount;
    payment.refund_status = already + amount === captured ? "full" : "partial";
    if (already + amount === captured) payment.status = "refunded";
    return refund;
  }

  /** GET / PATCH /v1/subscriptions/:id and its cancel, pause and resume. */
  function subscriptionAction(route: string, id: string, body: unknown): Response {
    const sub = subscriptions.get(id);
    if (!sub) return rzpError(400, "The id provided does not exist");
    const status = sub.status as string;
    const b = isObject(body) ? body : {};
    switch (route) {
      case "razorpay.subscriptions.fetch":
        return json(sub);
      case "razorpay.subscriptions.cancel": {
        if (!["created", "authenticated", "active", "pending", "halted", "paused"].includes(status)) {
          return rzpError(400, `Subscription is not cancellable in ${status} status.`, "status");
        }
        const atEnd = b.cancel_at_cycle_end === 1 || b.cancel_at_cycle_end === true;
        if (atEnd && status === "active") {
          // Cancelled when the current cycle ends; until then the subscription stays active.
          sub.cancel_at_cycle_end = true;
        } else {
          sub.status = "cancelled";
          sub.ended_at = nowSecs();
          sub.charge_at = null;
        }
        return json(sub);
      }
      case "razorpay.subscriptions.pause":
        if (status !== "active") return rzpError(400, `Subscription cannot be paused in ${status} status.`, "status");
        if (b.pause_at !== undefined && b.pause_at !== "now") return rzpError(400, "pause_at must be now", "pause_at");
        Object.assign(sub, { status: "paused", paused_at: nowSecs(), pause_initiated_by: "self", charge_at: null });
        return json(sub);
      case "razorpay.subscriptions.resume":
        if (status !== "paused") return rzpError(400, `Subscription cannot be resumed in ${status} status.`, "status");
        if (b.resume_at !== undefined && b.resume_at !== "now") return rzpError(400, "resume_at must be now", "resume_at");
        Object.assign(sub, { status: "active", paused_at: null, pause_initiated_by: null });
        return json(sub);
      default: {
        // razorpay.subscriptions.update
        if (!["authenticated", "active"].includes(status)) {
          return rzpError(400, `Subscription cannot be updated in ${status} status.`, "status");
        }
        if (b.plan_id !== undefined && (typeof b.plan_id !== "string" || !b.plan_id.startsWith("plan_"))) {
          return rzpError(400, "The plan id provided is invalid", "plan_id");
        }
        const at = b.schedule_change_at ?? "now";
        if (at !== "now" && at !== "cycle_end") {
          return rzpError(400, "The schedule change at field is invalid.", "schedule_change_at");
        }
        if (at === "now") {
          if (typeof b.plan_id === "string") sub.plan_id = b.plan_id;
        } else {
          sub.has_scheduled_changes = true;
          sub.change_scheduled_at = (sub.current_end as number | null) ?? nowSecs() + 30 * 86400;
          sub.scheduled_plan_id = b.plan_id ?? sub.plan_id;
        }
        return json(sub);
      }
    }
  }

  /** Seeds a subscription, or changes fields of one the fake already has (e.g. `status: "active"`). */
  function seedSubscription(s: Json): Json {
    if (typeof s.id !== "string") throw new Error("a seeded subscription needs a string id");
    const now = nowSecs();
    const sub: Json = {
      entity: "subscription",
      plan_id: "plan_seeded",
      customer_id: "cust_seeded",
      status: "active",
      current_start: now,
      current_end: now + 30 * 86400,
      ended_at: null,
      quantity: 1,
      notes: [],
      charge_at: now + 30 * 86400,
      start_at: now,
      end_at: null,
      auth_attempts: 0,
      total_count: 12,
      paid_count: 1,
      customer_notify: true,
      created_at: now,
      expire_by: null,
      has_scheduled_changes: false,
      change_scheduled_at: null,
      source: "api",
      remaining_count: 11,
      ...subscriptions.get(s.id),
      ...s,
    };
    subscriptions.set(s.id, sub);
    return sub;
  }

  /** A renewal charge Razorpay made: the payment, its paid invoice, the subscription moved on a cycle. */
  function chargeSubscription(body: Json): Json {
    const sub = typeof body.subscription_id === "string" ? subscriptions.get(body.subscription_id) : undefined;
    if (!sub) throw new Error("subscription_id must name a subscription the fake knows");
    // Razorpay charges nothing on a subscription that has ended, or that ends at this cycle's end
    // (a charge is made at a cycle boundary: that cycle was the last).
    if (sub.cancel_at_cycle_end === true && sub.status === "active") {
      sub.status = "cancelled";
      sub.ended_at = nowSecs();
      sub.charge_at = null;
    }
    if (["cancelled", "completed", "expired"].includes(String(sub.status))) {
      throw new Error(`subscription ${sub.id} is ${sub.status}: Razorpay does not charge it`);
    }
    if (!Number.isInteger(body.amount)) throw new Error("amount must be integer paise");
    const paidAt = typeof body.paid_at === "number" ? body.paid_at : nowSecs();
    const invoiceId = randomId("inv");
    const payment = seedPayment({
      id: typeof body.payment_id === "string" ? body.payment_id : randomId("pay"),
      amount: body.amount,
      invoice_id: invoiceId,
      created_at: paidAt,
      notes: sub.notes,
    });
    const invoice: Json = {
      id: invoiceId,
      entity: "invoice",
      receipt: null,
      customer_id: sub.customer_id,
      order_id: randomId("order"),
      subscription_id: sub.id,
      payment_id: payment.id,
      status: "paid",
      amount: body.amount,
      amount_paid: body.amount,
      amount_due: 0,
      currency: payment.currency,
      issued_at: paidAt,
      paid_at: paidAt,
      billing_start: paidAt,
      billing_end: paidAt + 30 * 86400,
      created_at: paidAt,
    };
    invoices.set(invoiceId, invoice);
    Object.assign(sub, {
      status: "active",
      paid_count: (sub.paid_count as number) + 1,
      remaining_count: (sub.total_count as number) - (sub.paid_count as number) - 1,
      current_start: invoice.billing_start,
      current_end: invoice.billing_end,
      charge_at: invoice.billing_end,
    });
    return { payment, invoice, subscription: sub };
  }

  function seedPayment(p: Json): Json {
    if (typeof p.id !== "string" || !Number.isInteger(p.amount)) {
      throw new Error("a seeded payment needs a string id and an integer amount");
    }
    const payment: Json = {
      entity: "payment",
      currency: "INR",
      status: "captured",
      order_id: null,
      invoice_id: null,
      international: false,
      method: "upi",
      amount_refunded: 0,
      refund_status: null,
      captured: (p.status ?? "captured") === "captured",
      description: null,
      email: "buyer@example.in",
      contact: "+919999999999",
      notes: [],
      fee: 0,
      tax: 0,
      error_code: null,
      error_description: null,
      created_at: nowSecs(),
      ...p,
    };
    payments.set(p.id, payment);
    return payment;
  }

  // ------------------------------------------------------------------------------------------------
  // PayU

  async function payuCommand(req: Request): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    const fields = Object.fromEntries(form);
    count("payu.command", fields);
    const route = `payu.${fields.command ?? "unknown"}`;
    const entry = record(route, req, "/merchant/postservice.php", fields, {
      token: fields.command === "cancel_refund_transaction" ? (fields.var2 ?? null) : null,
    });
    const res = await payuCommandAnswer(fields, route);
    entry.status = res.status;
    return res;
  }

  async function payuCommandAnswer(fields: Record<string, string>, route: string): Promise<Response> {
    const { key = "", command = "", var1 = "", hash = "" } = fields;
    await sleep(payuControl.latency_ms);
    const failure = takeFailure(payuControl, route, `${fields.var1 ?? ""} ${fields.var2 ?? ""}`);
    if (failure !== null) {
      await sleep(payuControl.fail_hang_ms ?? 0);
      return json(
        { status: 0, msg: payuControl.fail_message ?? `fake upstream failure ${failure}` },
        failure,
        failureHeaders(payuControl, failure),
      );
    }
    if (key !== options.payuKey) return json({ status: 0, msg: "Invalid key" });
    if (hash !== await sha512Hex(`${key}|${command}|${var1}|${options.payuSalt}`)) {
      return json({ status: 0, msg: "Invalid Hash." });
    }
    if (command === "cancel_refund_transaction") {
      count("payu.cancel_refund_transaction");
      return payuRefund(fields);
    }
    if (command === "getAllRefundsFromTxnIds") {
      count("payu.getAllRefundsFromTxnIds");
      return payuRefundsOfTxnids(var1);
    }
    if (command === "check_action_status") {
      count("payu.check_action_status");
      return payuActionStatus(var1, fields.var2 ?? "");
    }
    if (command !== "verify_payment") return json({ status: 0, msg: "Invalid command" });
    count("payu.verify_payment");
    const txnids = var1.split("|").filter((t) => t !== "");
    const details: Record<string, Json> = {};
    let found = 0;
    for (const txnid of txnids) {
      const tx = payuTransactions.get(txnid);
      if (tx) found++;
      details[txnid] = tx ?? { mihpayid: "Not Found", status: "Not Found" };
    }
    return json({
      status: found > 0 ? 1 : 0,
      msg: `${found} out of ${txnids.length} Transactions Fetched Successfully`,
      transaction_details: details,
    });
  }

  /**
   * cancel_refund_transaction: var1 the mihpayid of a captured transaction, var2 the merchant's token
   * (unique per refund request), var3 the amount in rupees (at most what is left). The wording of
   * the refusals is the fake's own (status 0 with a msg, as PayU answers).
   */
  function payuRefund(f: Record<string, string>): Response {
    const { var1 = "", var2 = "", var3 = "" } = f;
    const tx = [...payuTransactions.values()].find((t) => String(t.mihpayid) === var1);
    if (!tx) return json({ status: 0, msg: "Invalid payuid", mihpayid: var1 });
    if (!var2) return json({ status: 0, msg: "Token is mandatory", mihpayid: var1 });
    if (payuRefunds.some((r) => r.token === var2)) {
      return json({ status: 0, msg: "Request for this token has already been processed", mihpayid: var1 });
    }
    if (tx.status !== "success") return json({ status: 0, msg: "Transaction is not captured", mihpayid: var1 });
    const m = /^([0-9]+)(?:\.([0-9]{1,2}))?$/.exec(var3);
    if (!m) return json({ status: 0, msg: "Invalid amount", mihpayid: var1 });
    const paise = Number(m[1]) * 100 + Number((m[2] ?? "").padEnd(2, "0"));
    const amt = String(tx.amt ?? tx.amount ?? tx.transaction_amount ?? "0");
    const am = /^([0-9]+)(?:\.([0-9]{1,2}))?$/.exec(amt);
    const captured = am ? Number(am[1]) * 100 + Number((am[2] ?? "").padEnd(2, "0")) : 0;
    const refunded = payuRefunds.filter((r) => r.mihpayid === var1).reduce((n, r) => n + (r.amount_paise as number), 0);
    if (paise <= 0 || refunded + paise > captured) {
      return json({ status: 0, msg: "Refund amount is greater than the transaction amount", mihpayid: var1 });
    }
    const requestId = addPayuRefund(tx, var2, paise);
    return json({
      status: 1,
      msg: "Refund Request Queued",
      request_id: requestId,
      bank_ref_num: tx.bank_ref_num ?? null,
      mihpayid: var1,
    });
  }

  /** A refund PayU holds for the captured transaction `tx` under `token`, queued; returns its request id. */
  function addPayuRefund(tx: Json, token: string, paise: number): string {
    const requestId = String(100000000 + payuRefunds.length * 7919 + Math.floor(randomFraction() * 7000));
    payuRefunds.push({
      request_id: requestId,
      token,
      mihpayid: String(tx.mihpayid),
      txnid: tx.txnid,
      amount_paise: paise,
      amt: `${Math.floor(paise / 100)}.${String(paise % 100).padStart(2, "0")}`,
      status: "queued",
      bank_ref_num: tx.bank_ref_num ?? null,
      mode: tx.mode ?? null,
      created_at: payuTime(new Date(clock.now())),
      at: new Date(clock.now()).toISOString(),
    });
    return requestId;
  }

  /** PayU's "YYYY-MM-DD HH:MM:SS" in India time. */
  function payuTime(d: Date): string {
    return new Date(d.getTime() + 5.5 * 3600_000).toISOString().slice(0, 19).replace("T", " ");
  }

  /**
   * getAllRefundsFromTxnIds: var1 a txnid (or several joined by '|'); "Refund Details" maps the
   * mihpayid of each transaction with refunds to its refunds (PayuID, RequestID, RefundToken,
   * PaymentGateway, Amount, Status, RefundCreationDate, bank_ref_no, bank_arn, success_at). The
   * answer when there are none is the fake's own wording (status 0 with a msg, as PayU answers).
   */
  function payuRefundsOfTxnids(var1: string): Response {
    const txnids = new Set(var1.split("|").filter((t) => t !== ""));
    const details: Record<string, Json[]> = {};
    for (const r of payuRefunds) {
      if (!txnids.has(r.txnid as string)) continue;
      (details[r.mihpayid as string] ??= []).push({
        PayuID: r.mihpayid,
        RequestID: r.request_id,
        RefundToken: r.token,
        PaymentGateway: "FAKEPG",
        Amount: r.amt,
        Status: r.status,
        RefundCreationDate: r.created_at,
        bank_ref_no: r.bank_ref_num,
        bank_arn: null,
        success_at: r.status === "success" ? r.created_at : null,
      });
    }
    if (Object.keys(details).length === 0) return json({ status: 0, msg: "No refunds found for the given transaction ids" });
    return json({ status: 1, msg: "Refunds fetched successfully.", "Refund Details": details });
  }

  /**
   * check_action_status: var1 a request id, answered as transaction_details[request id][request id]
   * = the request's details; with var2 "payuid", var1 a mihpayid and every refund request of it
   * under transaction_details[mihpayid]. Unknown: status 0 and "No action status found".
   */
  function payuActionStatus(var1: string, var2: string): Response {
    const matches = payuRefunds.filter((r) => (var2 === "payuid" ? r.mihpayid === var1 : r.request_id === var1));
    if (matches.length === 0) {
      return json({
        status: 0,
        msg: "0 out of 1 Transactions Fetched Successfully",
        transaction_details: { [var1]: "No action status found" },
      });
    }
    const requests: Record<string, Json> = {};
    for (const r of matches) {
      requests[r.request_id as string] = {
        mihpayid: r.mihpayid,
        bank_ref_num: r.bank_ref_num,
        request_id: r.request_id,
        amt: r.amt,
        mode: r.mode,
        action: "refund",
        token: r.token,
        status: r.status,
        bank_arn: null,
        settlement_id: null,
        amount_settled: null,
        UTR_no: null,
        value_date: null,
        refund_mode: "Back to Source",
      };
    }
    return json({
      status: 1,
      msg: "1 out of 1 Transactions Fetched Successfully",
      transaction_details: { [var1]: requests },
    });
  }

  async function payuPayment(req: Request): Promise<Response> {
    const f = Object.fromEntries(new URLSearchParams(await req.text()));
    count("payu.payment", f);
    for (
      const name of ["key", "txnid", "amount", "productinfo", "firstname", "email", "surl", "furl", "hash"]
    ) {
      if (!f[name]) return new Response(`missing ${name}`, { status: 400 });
    }
    if (f.key !== options.payuKey) return new Response("invalid key", { status: 400 });
    const s = [
      f.key,
      f.txnid,
      f.amount,
      f.productinfo,
      f.firstname,
      f.email,
      f.udf1 ?? "",
      f.udf2 ?? "",
      f.udf3 ?? "",
      f.udf4 ?? "",
      f.udf5 ?? "",
      "",
      "",
      "",
      "",
      "",
      options.payuSalt,
    ].join("|");
    if (f.hash !== await sha512Hex(s)) {
      return new Response("Transaction failed due to incorrectly calculated hash parameter", { status: 400 });
    }
    payuPayments.push(f);
    return html(`<!doctype html><html><head><meta charset="utf-8"><title>Fake PayU</title></head>
<body style="font-family: sans-serif; max-width: 480px; margin: 40px auto;">
<h1>Fake PayU</h1>
<p>${esc(f.firstname)} (${esc(f.email)}) pays <strong>₹${esc(f.amount)}</strong> for ${esc(f.productinfo)}.</p>
<p>Transaction <code>${esc(f.txnid)}</code>. Nothing is charged: this is the local fake.</p>
<form method="post" action="/_payment/complete">
<input type="hidden" name="txnid" value="${esc(f.txnid)}">
<button id="pay" name="outcome" value="success" style="padding: 8px 20px;">Pay</button>
<button id="fail" name="outcome" value="failure" style="padding: 8px 20px;">Fail</button>
</form></body></html>`);
  }

  /**
   * The buyer clicked Pay or Fail on the fake payment page: as PayU does, the answer (the form's
   * fields, PayU's additions and the reverse hash) goes to the merchant's webhook server to server,
   * then the browser posts it to surl or furl (an auto-submitted form). The webhook URL is
   * POST /__control/payu {webhook_url}; by default the payu-webhook function beside an surl that
   * is the payu-return function (so `npm start` needs no setting). The transaction is then known
   * to verify_payment too.
   */
  async function payuComplete(req: Request): Promise<Response> {
    const { txnid = "", outcome = "" } = Object.fromEntries(new URLSearchParams(await req.text()));
    const f = [...payuPayments].reverse().find((p) => p.txnid === txnid) as Record<string, string> | undefined;
    if (!f || !["success", "failure"].includes(outcome)) {
      return new Response("unknown transaction, or outcome is not success or failure", { status: 400 });
    }
    count("payu.complete", { txnid, outcome });
    const mihpayid = String(Math.floor(1e11 + randomFraction() * 9e11));
    const answer: Record<string, string> = {
      mihpayid,
      mode: "UPI",
      status: outcome,
      unmappedstatus: outcome === "success" ? "captured" : "failed",
      key: f.key,
      txnid: f.txnid,
      amount: f.amount,
      productinfo: f.productinfo,
      firstname: f.firstname,
      email: f.email,
      udf1: f.udf1 ?? "",
      udf2: f.udf2 ?? "",
      udf3: f.udf3 ?? "",
      udf4: f.udf4 ?? "",
      udf5: f.udf5 ?? "",
      addedon: new Date(clock.now()).toISOString().slice(0, 19).replace("T", " "),
      ...(outcome === "failure" ? { error: "E000", error_Message: "Declined on the fake payment page" } : {}),
    };
    answer.hash = await sha512Hex([
      options.payuSalt, answer.status, "", "", "", "", "", answer.udf5, answer.udf4, answer.udf3, answer.udf2,
      answer.udf1, answer.email, answer.firstname, answer.productinfo, answer.amount, answer.txnid, answer.key,
    ].join("|"));
    payuTransactions.set(txnid, {
      mihpayid, txnid, status: outcome, unmappedstatus: answer.unmappedstatus, amt: f.amount,
      transaction_amount: f.amount, mode: "UPI", productinfo: f.productinfo, firstname: f.firstname,
      email: f.email, udf1: answer.udf1, addedon: answer.addedon, error_Message: answer.error_Message ?? "No Error",
    });
    const webhook = payuWebhookUrl ?? (f.surl.endsWith("/payu-return") ? f.surl.replace(/\/payu-return$/, "/payu-webhook") : null);
    if (webhook) {
      try {
        const res = await fetch(webhook, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams(answer).toString(),
        });
        payuWebhooks.push({ url: webhook, txnid, status: res.status });
        await res.body?.cancel();
      } catch (e) {
        payuWebhooks.push({ url: webhook, txnid, status: null, error: (e as Error).message });
      }
    }
    return postBack(outcome === "success" ? f.surl : f.furl, answer);
  }

  // ------------------------------------------------------------------------------------------------
  // Razorpay's hosted checkout: the page a browser is sent to with the key and an order, and what
  // Pay and Fail do there, as Razorpay does them.

  async function razorpayCheckoutPage(req: Request, query: URLSearchParams): Promise<Response> {
    const f = req.method === "POST" ? new URLSearchParams(await req.text()) : query;
    const order = orders.get(f.get("order_id") ?? "");
    const callback = f.get("callback_url") ?? "";
    if (f.get("key_id") !== options.razorpayKeyId) return new Response("invalid key_id", { status: 400 });
    if (!order) return new Response("order_id must name an order created through the API", { status: 400 });
    if (!/^https?:\/\//.test(callback)) return new Response("callback_url is required", { status: 400 });
    count("razorpay.checkout", { order_id: order.id });
    const hidden = (name: string, value: string) => `<input type="hidden" name="${esc(name)}" value="${esc(value)}">`;
    return html(`<!doctype html><html><head><meta charset="utf-8"><title>Fake Razorpay Checkout</title></head>
<body style="font-family: sans-serif; max-width: 480px; margin: 40px auto;">
<h1>Fake Razorpay Checkout</h1>
<p>${esc(f.get("name") ?? "")} ${esc(f.get("description") ?? "")}</p>
<p>Pay <strong>${esc(order.currency)} ${esc(((order.amount as number) / 100).toFixed(2))}</strong> for order <code>${esc(order.id)}</code>.
Nothing is charged: this is the local fake.</p>
<form method="post" action="/v1/checkout/embedded/complete">
${hidden("order_id", String(order.id))}${hidden("callback_url", callback)}${hidden("cancel_url", f.get("cancel_url") ?? "")}
<button id="pay" name="outcome" value="success" style="padding: 8px 20px;">Pay</button>
<button id="fail" name="outcome" value="failure" style="padding: 8px 20px;">Fail</button>
</form></body></html>`);
  }

  /**
   * Pay or Fail on the fake checkout page: the payment (captured, or failed) is made on the order,
   * Razorpay's webhook (payment.captured or payment.failed, signed with the webhook secret) goes
   * to POST /__control/razorpay {webhook_url} when one is set, and the browser is posted back to
   * callback_url with what Checkout's handler gets: razorpay_payment_id, razorpay_order_id and
   * razorpay_signature (HMAC-SHA256 of "order_id|payment_id" with the key secret), or error[...]
   * fields for a failure.
   */
  async function razorpayCheckoutComplete(req: Request): Promise<Response> {
    const f = new URLSearchParams(await req.text());
    const order = orders.get(f.get("order_id") ?? "");
    const outcome = f.get("outcome");
    const callback = f.get("callback_url") ?? "";
    if (!order || !["success", "failure"].includes(outcome ?? "") || !/^https?:\/\//.test(callback)) {
      return new Response("unknown order, or outcome is not success or failure", { status: 400 });
    }
    count("razorpay.checkout.complete", { order_id: order.id, outcome });
    const success = outcome === "success";
    const payment = seedPayment({
      id: randomId("pay"),
      amount: order.amount,
      currency: order.currency,
      order_id: order.id,
      notes: order.notes,
      status: success ? "captured" : "failed",
      captured: success,
      ...(success ? {} : { error_code: "BAD_REQUEST_ERROR", error_description: "Payment failed on the fake checkout page", error_reason: "payment_failed" }),
    });
    order.attempts = (order.attempts as number) + 1;
    if (success) Object.assign(order, { status: "paid", amount_paid: order.amount, amount_due: 0 });
    else order.status = "attempted";
    if (rzpWebhookUrl) {
      const event = success ? "payment.captured" : "payment.failed";
      const raw = JSON.stringify({
        entity: "event",
        account_id: "acc_fake",
        event,
        contains: ["payment"],
        payload: { payment: { entity: payment } },
        created_at: nowSecs(),
      });
      try {
        const res = await fetch(rzpWebhookUrl, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-razorpay-signature": await hmacSha256Hex(options.razorpayWebhookSecret ?? "fake_webhook_secret", raw),
            "x-razorpay-event-id": randomId("evt"),
          },
          body: raw,
        });
        rzpWebhooks.push({ url: rzpWebhookUrl, event, payment_id: payment.id, status: res.status });
        await res.body?.cancel();
      } catch (e) {
        rzpWebhooks.push({ url: rzpWebhookUrl, event, payment_id: payment.id, status: null, error: (e as Error).message });
      }
    }
    if (!success) {
      return postBack(callback, {
        "error[code]": "BAD_REQUEST_ERROR",
        "error[description]": "Payment failed",
        "error[source]": "customer",
        "error[step]": "payment_authorization",
        "error[reason]": "payment_failed",
        "error[metadata]": JSON.stringify({ payment_id: payment.id, order_id: order.id }),
      });
    }
    return postBack(callback, {
      razorpay_payment_id: String(payment.id),
      razorpay_order_id: String(order.id),
      razorpay_signature: await hmacSha256Hex(options.razorpayKeySecret, `${order.id}|${payment.id}`),
    });
  }

  // ------------------------------------------------------------------------------------------------
  // Control API

  async function control(req: Request, path: string): Promise<Response> {
    if (req.method === "GET" && path === "/__control/stats") return json({ calls, last });
    if (req.method === "GET" && path === "/__control/groq/requests") return json({ requests: groqRequests });
    if (req.method === "GET" && path === "/__control/razorpay/orders") {
      return json({ orders: [...orders.values()], subscriptions: [...subscriptions.values()], refunds: [...refunds.values()] });
    }
    if (req.method === "GET" && path === "/__control/razorpay/payments") {
      return json({ payments: [...payments.values()], webhooks: rzpWebhooks });
    }
    if (req.method === "GET" && path === "/__control/payu/transactions") {
      return json({ transactions: [...payuTransactions.values()] });
    }
    if (req.method === "GET" && path === "/__control/payu/payments") return json({ payments: payuPayments, webhooks: payuWebhooks });
    if (req.method === "GET" && path === "/__control/payu/refunds") return json({ refunds: payuRefunds });
    if (req.method === "GET" && path === "/__control/calls") {
      const prefix = new URL(req.url).searchParams.get("route") ?? "";
      return json({ calls: callLog.filter((c) => c.route.startsWith(prefix)) });
    }
    if (req.method !== "POST") return json({ error: "not found" }, 404);
    const body = await readJson(req);
    if (path === "/__control/reset") {
      reset();
      return json({ ok: true });
    }
    if (path === "/__control/seed" && isObject(body) && (body.seed === null || Number.isInteger(body.seed))) {
      seedRandom(body.seed as number | null);
      return json({ ok: true });
    }
    if (path === "/__control/clock" && isObject(body)) {
      if (body.at === null) clock.set(null);
      else if (typeof body.at === "string" && !Number.isNaN(Date.parse(body.at))) clock.set(Date.parse(body.at));
      else return json({ error: "at must be an ISO time or null" }, 400);
      return json({ ok: true, at: new Date(clock.now()).toISOString(), simulated: clock.simulated });
    }
    if (path === "/__control/groq" && isObject(body)) {
      if (body.reset === true) groq = groqDefaults();
      applyFailureControl(groq, body);
      if (typeof body.stream_chunk_delay_ms === "number") {
        groq.stream_chunk_delay_ms = body.stream_chunk_delay_ms;
      }
      if (typeof body.reply_tokens === "number") groq.reply_tokens = body.reply_tokens;
      if (typeof body.reply_suffix === "string") groq.reply_suffix = body.reply_suffix;
      if (body.prompt_tokens_per === "byte" || body.prompt_tokens_per === "char4") {
        groq.prompt_tokens_per = body.prompt_tokens_per;
      }
      return json({ ok: true, groq });
    }
    if (path === "/__control/razorpay" && isObject(body)) {
      if (body.reset === true) rzpControl = failureDefaults();
      applyFailureControl(rzpControl, body);
      if (typeof body.webhook_url === "string" || body.webhook_url === null) rzpWebhookUrl = body.webhook_url as string | null;
      if (body.refund_status === "processed" || body.refund_status === "pending") refundStatus = body.refund_status;
      if (body.reset === true) refundStatus = "processed";
      return json({ ok: true, razorpay: rzpControl, refund_status: refundStatus });
    }
    if (path === "/__control/payu" && isObject(body)) {
      if (body.reset === true) payuControl = failureDefaults();
      if (typeof body.webhook_url === "string" || body.webhook_url === null) payuWebhookUrl = body.webhook_url as string | null;
      applyFailureControl(payuControl, body);
      return json({ ok: true, payu: payuControl });
    }
    if (path === "/__control/razorpay/subscriptions/charge") {
      try {
        if (!isObject(body)) throw new Error("the body must be a JSON object");
        return json({ ok: true, ...chargeSubscription(body) });
      } catch (e) {
        return json({ error: (e as Error).message }, 400);
      }
    }
    if (path === "/__control/razorpay/subscriptions") {
      const list = Array.isArray(body) ? body : [body];
      try {
        return json({ ok: true, subscriptions: list.map((s) => seedSubscription(isObject(s) ? s : {})) });
      } catch (e) {
        return json({ error: (e as Error).message }, 400);
      }
    }
    if (path === "/__control/razorpay/payments") {
      const list = Array.isArray(body) ? body : [body];
      try {
        return json({ ok: true, payments: list.map((p) => seedPayment(isObject(p) ? p : {})) });
      } catch (e) {
        return json({ error: (e as Error).message }, 400);
      }
    }
    if (path === "/__control/payu/refunds" && isObject(body)) {
      if (typeof body.request_id === "string") {
        const r = payuRefunds.find((x) => x.request_id === body.request_id);
        if (!r || typeof body.status !== "string") return json({ error: "request_id must name a refund; status is required" }, 400);
        r.status = body.status;
        return json({ ok: true, refund: r });
      }
      const tx = typeof body.txnid === "string" ? payuTransactions.get(body.txnid) : undefined;
      if (!tx || !Number.isInteger(body.amount_paise)) return json({ error: "txnid of a known transaction and amount_paise are required" }, 400);
      const token = typeof body.token === "string" ? body.token : `dash_${randomId("t").slice(2, 14)}`;
      const requestId = addPayuRefund(tx, token, body.amount_paise as number);
      return json({ ok: true, refund: payuRefunds.find((x) => x.request_id === requestId) });
    }
    if (path === "/__control/razorpay/refunds" && isObject(body)) {
      const payment = typeof body.payment_id === "string" ? payments.get(body.payment_id) : undefined;
      if (!payment || !Number.isInteger(body.amount)) return json({ error: "payment_id of a known payment and amount are required" }, 400);
      const status = typeof body.status === "string" ? body.status : "processed";
      return json({ ok: true, refund: makeRefund(payment, body.amount as number, body.notes, body.receipt ?? null, status) });
    }
    if (path === "/__control/payu/transactions") {
      const entries: [string, unknown][] = Array.isArray(body)
        ? body.map((t) => [isObject(t) && typeof t.txnid === "string" ? t.txnid : "", t])
        : isObject(body)
        ? Object.entries(body)
        : [];
      for (const [txnid, tx] of entries) {
        if (!txnid || !isObject(tx)) return json({ error: "each transaction needs a txnid" }, 400);
        payuTransactions.set(txnid, { txnid, ...tx });
      }
      return json({ ok: true, count: entries.length });
    }
    return json({ error: "not found" }, 404);
  }

  // ------------------------------------------------------------------------------------------------

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    try {
      const emailAnswer = await email.handle(req, path);
      if (emailAnswer) return emailAnswer;
      const stripeAnswer = await stripe.handle(req, path, url.searchParams);
      if (stripeAnswer) return stripeAnswer;
      const batchAnswer = await groqBatches.handle(req, path);
      if (batchAnswer) return batchAnswer;
      if (path.startsWith("/__control/")) return await control(req, path);
      if (path === "/openai/v1/models" && req.method === "GET") return groqModels(req);
      if (path === "/openai/v1/chat/completions" && req.method === "POST") return await groqChat(req);
      if (path === "/v1/checkout/embedded") return await razorpayCheckoutPage(req, url.searchParams);
      if (path === "/v1/checkout/embedded/complete" && req.method === "POST") return await razorpayCheckoutComplete(req);
      if (path.startsWith("/v1/")) return await razorpay(req, path, url.searchParams);
      if (path === "/merchant/postservice.php" && req.method === "POST") return await payuCommand(req);
      if (path === "/_payment" && req.method === "POST") return await payuPayment(req);
      if (path === "/_payment/complete" && req.method === "POST") return await payuComplete(req);
      return json({ error: "not found" }, 404);
    } catch (e) {
      return json({ error: `fake upstream crashed: ${(e as Error).message}` }, 500);
    }
  }

  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen() {},
  }, handle);
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://${addr.hostname}:${addr.port}`,
    close: () => server.shutdown(),
  };
}

if (import.meta.main) {
  const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
  const fake = startFakeUpstreams({
    port: Number(env("FAKE_UPSTREAMS_PORT", "0")),
    groqKey: env("GROQ_API_KEY", "gsk_fake"),
    razorpayKeyId: env("RAZORPAY_KEY_ID", "rzp_test_fake"),
    razorpayKeySecret: env("RAZORPAY_KEY_SECRET", "fake_secret"),
    razorpayWebhookSecret: env("RAZORPAY_WEBHOOK_SECRET", "fake_webhook_secret"),
    payuKey: env("PAYU_MERCHANT_KEY", "fakekey"),
    payuSalt: env("PAYU_MERCHANT_SALT", "fakesalt"),
    resendKey: env("RESEND_API_KEY", "re_fake"),
    stripeSecretKey: env("STRIPE_SECRET_KEY", "sk_test_fake"),
    stripeWebhookSecret: env("STRIPE_WEBHOOK_SECRET", "whsec_test_fake"),
  });
  console.log(JSON.stringify({ url: fake.url }));
  const stop = async () => {
    await fake.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
