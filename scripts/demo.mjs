// npm run demo: a narrated walk through the whole product against the running local stack
// (`npm start`): sign-in, an organization, plans and entitlements, a PayU checkout and its signed
// webhook, metered AI through the official `openai` client, a quota counted to its limit and the
// 429, the GST invoice PDF, cancelling at the period end (PayU, then a Razorpay subscription whose
// cancellation reaches the fake Razorpay through the provider-actions outbox) and the emails.
// Each step says what it does and which function does the work, then checks what it saw
// (`✓ ...`); the first failure stops the run with a non-zero exit naming the step.
//
// Where the stack is: <state dir>/stack.json, which `npm start` writes while it runs (URLs, the
// keys file, the fakes' throwaway credentials); SUPABILL_DEMO_STACK=<file> points at another.
// Every run makes a new user and new organizations, so it can run again and again on the same
// database, also while the ticker calls the workers. The plans it buys are read from the catalog
// (the cheapest public monthly plan with PayU, the dearest one with a Razorpay plan id with
// Razorpay), not assumed from the seed. Its files (the invoice PDF) go to a folder of the user
// running it: $XDG_STATE_HOME/supabill/demo, else ~/.local/state/supabill/demo.
// The demo plays the buyer at the payment providers, so PayU and Razorpay must be the fakes; Groq
// and Resend may be real (with a real GROQ_API_KEY the AI step asks Groq; with a real Resend key
// the emails are checked as sent in public.notifications instead of in the fake mailbox).
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import { createHash, createHmac, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import postgres from "postgres";
import { userToken } from "./lib/keys.mjs";
import { stateDir } from "./lib/pg.mjs";

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, s) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const rupees = (paise) => new Intl.NumberFormat("en-IN", { style: "currency", currency: "INR" }).format(Number(paise) / 100);
// Dates as the organizations see them (the demo's keep the default timezone, Asia/Kolkata).
const day = (t) =>
  new Date(t).toLocaleString("en-IN", { timeZone: "Asia/Kolkata", dateStyle: "medium", timeStyle: "short" }) + " IST";
const num = (n) => Number(n).toLocaleString("en-IN");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class StepFailure extends Error {}

/** The demo's files: a folder of the user running it, never a shared one. */
function demoDir() {
  const state = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(state, "supabill", "demo");
}

/** Stop the step: `what` was expected, `got` was seen. */
function expect(ok, what, got) {
  if (!ok) throw new StepFailure(`expected ${what}, got ${typeof got === "string" ? got : JSON.stringify(got)}`);
}

const seen = (s) => console.log(`   ${paint("32", "✓")} ${s}`);

let stepNo = 0;
async function step(title, narration, fn) {
  stepNo++;
  console.log(`\n${paint("1", `${stepNo}. ${title}`)}`);
  for (const line of narration.split("\n")) console.log(`   ${line}`);
  try {
    await fn();
  } catch (e) {
    const why = e instanceof StepFailure ? e.message : (e?.stack ?? String(e));
    console.error(`   ${paint("31", "✗")} step ${stepNo} (${title}) failed: ${why}`);
    process.exit(1);
  }
}

function notRunning(why) {
  console.error(`supabill demo: the local stack is not reachable (${why}).\nrun npm start first (with the same SUPABILL_* ` +
    "variables), then npm run demo in another terminal.");
  process.exit(1);
}

// -------------------------------------------------------------------------------------------------
// The stack

const stackFile = process.env.SUPABILL_DEMO_STACK ?? path.join(stateDir(), "stack.json");
if (!fs.existsSync(stackFile)) notRunning(`${stackFile} does not exist`);
const stack = JSON.parse(fs.readFileSync(stackFile, "utf8"));
const keys = JSON.parse(fs.readFileSync(stack.keys_file, "utf8"));
const fakeCreds = stack.fake_credentials;
const functionsUrl = `${stack.api_url}/functions/v1`;
const probe = (url) => fetch(url, { signal: AbortSignal.timeout(3000) }).then((r) => r.body?.cancel(), (e) => e);
const probes = [["functions server", `${functionsUrl}/health`]];
if (stack.fakes_url) probes.push(["fake upstreams", `${stack.fakes_url}/inbox.json`]);
for (const [what, url] of probes) {
  const e = await probe(url);
  if (e instanceof Error) notRunning(`${what} at ${url}: ${e.cause?.code ?? e.message}`);
}
const sql = postgres(stack.db_url, { max: 2, prepare: false, connect_timeout: 3, onnotice: () => {} });
try {
  await sql`select 1`;
} catch (e) {
  notRunning(`database at ${stack.db_url.replace(/:[^:@/]*@/, ":***@")}: ${e.code ?? e.message}`);
}

// The demo plays the buyer at the fake PayU and Razorpay and reads the fake mailbox.
const missing = ["razorpay", "payu"].filter((p) => !stack.faked?.includes(p));
if (missing.length) {
  console.error(`supabill demo: it plays the buyer at the fake payment providers, but ${missing.join(", ")} use real ` +
    "credentials here: run npm start without them (no PayU or Razorpay keys in the shell or supabase/functions/.env).");
  process.exit(1);
}

const { createClient } = await import("@supabase/supabase-js");

/**
 * A supabase-js client as a browser would hold it: the publishable key, the session's token if
 * any. The stack's API URL serves /rest/v1 (a stand-in for PostgREST) and /functions/v1.
 */
function supabaseAs(token) {
  /** @type {import("@supabase/supabase-js").SupabaseClient<import("../supabase/functions/_shared/database.types.ts").Database>} */
  const client = createClient(stack.api_url, keys.publishableKey ?? keys.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { headers: token ? { Authorization: `Bearer ${token}` } : {} },
  });
  return client;
}

/** supabase-js answers {data, error}: the data, or a StepFailure naming the call. */
async function ok(call, what) {
  const { data, error } = await call;
  if (error) {
    const detail = error.context instanceof Response ? await error.context.text() : "";
    throw new StepFailure(`${what} failed: ${error.code ?? error.name}: ${error.message}${detail ? ` ${detail}` : ""}`);
  }
  return data;
}

/** POST a worker with the service role key, as pg_cron (or npm start's ticker) does. */
async function runWorker(name) {
  const res = await fetch(`${functionsUrl}/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${keys.serviceRoleKey}`, "content-type": "application/json" },
    body: "{}",
  });
  const body = await res.json().catch(() => ({}));
  expect(res.status === 200, `${name} to answer 200`, `${res.status} ${JSON.stringify(body)}`);
  return body;
}

async function fake(pathAndQuery, body) {
  const res = await fetch(`${stack.fakes_url}${pathAndQuery}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return await res.json();
}

// -------------------------------------------------------------------------------------------------
// The walk

const tag = `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
const email = `demo-${tag}@supabill.local`;
let userId, token, user, service, orgId, planFeatures, payuPlan, rzpPlan, payuOrder, openai, invoice, rzpOrgId, rzpSubId;

console.log(`supabill demo against ${stack.api_url} (database ${stack.db_url.replace(/:[^:@/]*@/, ":***@")}, fakes ${stack.fakes_url})`);

await step(
  "Sign a user in",
  "Supabase Auth would create the user and issue a session token; the local stack has no Auth server, so the\n" +
    "demo inserts the auth.users row over the database URL and signs the token with the stack's ES256 key.",
  async () => {
    [{ id: userId }] = await sql`insert into auth.users (id, email, role, aud, email_confirmed_at, raw_user_meta_data)
      values (gen_random_uuid(), ${email}, 'authenticated', 'authenticated', now(), ${sql.json({ full_name: "Demo Buyer" })})
      returning id`;
    token = await userToken(keys, userId, { email });
    const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
    expect(claims.sub === userId && claims.role === "authenticated", "a token for the new user", claims);
    user = supabaseAs(token);
    service = supabaseAs(keys.serviceRoleKey);
    seen(`user ${email} (${userId}), token role=${claims.role}, valid 1 hour`);
  },
);

await step(
  "Create an organization",
  "supabase.rpc('create_organization', {p_name}) as the user: billing.create_organization makes the caller its\n" +
    "owner (at most 3 owned organizations per person). The local API URL serves /rest/v1 with a stand-in for\n" +
    "PostgREST (tests/fakes/postgrest.mjs) that runs the same SQL as the caller's role and claims, so RLS applies.",
  async () => {
    orgId = await ok(user.rpc("create_organization", { p_name: `Demo Buyer ${tag}` }), "create_organization");
    expect(/^[0-9a-f-]{36}$/.test(orgId ?? ""), "an organization id", orgId);
    const members = await ok(
      user.from("organization_members").select("user_id, role").eq("organization_id", orgId),
      "organization_members",
    );
    expect(members.length === 1 && members[0].user_id === userId && members[0].role === "owner", "the user as sole owner", members);
    seen(`organization ${orgId}, ${email} is its owner`);
  },
);

await step(
  "Read the plans and the entitlements",
  "supabase.from('billing_plans').select(...) (RLS: active plans) and supabase.rpc('get_entitlements'): the plan in\n" +
    "effect is computed on read by billing.effective_plan, from the subscription row and the clock.",
  async () => {
    const plans = await ok(
      user.from("billing_plans").select("code, name, tier, interval, price_cents, trial_days, features").eq("active", true)
        .order("price_cents"),
      "billing_plans",
    );
    // What the demo buys, from the catalog: monthly, paid, metering Groq tokens. Which plans have a
    // Razorpay plan id is server-side configuration (provider_config), read over the database URL.
    const monthly = plans.filter((p) => p.interval === "month" && p.price_cents > 0 && p.features?.groq_tokens_per_month > 0);
    const withRazorpay = new Set((await sql`select code from public.billing_plans
      where active and not private and provider_config -> 'razorpay' ->> 'plan_id' is not null`).map((r) => r.code));
    payuPlan = monthly[0];
    rzpPlan = monthly.filter((p) => withRazorpay.has(p.code)).at(-1);
    expect(payuPlan && rzpPlan, "a paid monthly plan metering Groq tokens, and one with a Razorpay plan id (npm run db:reset seeds them)",
      plans.map((p) => p.code));
    seen(`plans: ${plans.map((p) => `${p.code} ${rupees(p.price_cents)}/${p.interval}`).join(", ")}`);
    seen(`the demo buys ${payuPlan.name} (${payuPlan.code}) with PayU and ${rzpPlan.name} (${rzpPlan.code}) with Razorpay`);
    const e = await ok(user.rpc("get_entitlements", { p_organization_id: orgId }), "get_entitlements");
    const free = plans.find((p) => p.tier === "free");
    expect(e.plan_code === free?.code && e.reason === "free", "the free plan for a new organization", e);
    seen(`entitlements: ${e.plan_code} (reason ${e.reason}): ${num(e.features.groq_tokens_per_month)} Groq tokens a month, ` +
      `${e.features.ai_prompts_per_day} AI prompts a day, models ${e.features.ai_models.join(", ")}`);
  },
);

await step(
  `Check out ${payuPlan.name} with PayU`,
  "supabase.functions.invoke('checkout', {organization_id, plan_code, provider: 'payu'}): public.create_checkout_order\n" +
    "prices the order (GST fixed on the order by billing.quote_order_tax) and the PayU adapter signs the form; the\n" +
    "browser would POST it to PayU's payment page: here the fake PayU's /_payment, which checks the hash.",
  async () => {
    payuOrder = await ok(
      user.functions.invoke("checkout", { body: { organization_id: orgId, plan_code: payuPlan.code, provider: "payu" } }),
      "checkout",
    );
    expect(payuOrder.action_url === `${stack.fakes_url}/_payment`, "the fake PayU's payment page", payuOrder.action_url);
    const [order] = await ok(
      user.from("orders").select("status, amount_cents, taxable_cents, gst_rate_bp, receipt").eq("id", payuOrder.billing_order_id),
      "orders",
    );
    expect(order?.status === "pending" && order.receipt === payuOrder.fields.txnid, "a pending order for the txnid", order);
    seen(`order ${order.receipt}: ${rupees(order.amount_cents)} = ${rupees(order.taxable_cents)} + ${order.gst_rate_bp / 100} % GST, pending`);
    const page = await fetch(payuOrder.action_url, { method: "POST", body: new URLSearchParams(payuOrder.fields) });
    const html = await page.text();
    expect(page.status === 200 && html.includes(payuOrder.fields.txnid), "the payment page for our txnid", `${page.status} ${html}`);
    seen(`the fake PayU accepted the signed form: "${html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim()}"`);
  },
);

await step(
  "PayU reports the payment (signed webhook)",
  "PayU POSTs the result to payu-webhook, signed with the reverse hash (sha512 of SALT|status|...|key); the demo posts\n" +
    "it as the fake PayU would. The function checks the hash on the raw body, then billing.apply_payment_event applies\n" +
    "it once: order paid, subscription started, GST invoice issued (billing.issue_invoice). The buyer's browser is\n" +
    "sent to payu-return with the same form; applying it again changes nothing.",
  async () => {
    const f = payuOrder.fields;
    const form = {
      mihpayid: `${Date.now()}${randomBytes(2).readUInt16BE()}`,
      mode: "UPI",
      status: "success",
      unmappedstatus: "captured",
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
      addedon: new Date().toISOString().slice(0, 19).replace("T", " "),
    };
    form.hash = createHash("sha512").update([
      fakeCreds.PAYU_MERCHANT_SALT, form.status, "", "", "", "", "", form.udf5, form.udf4, form.udf3, form.udf2, form.udf1,
      form.email, form.firstname, form.productinfo, form.amount, form.txnid, form.key,
    ].join("|")).digest("hex");
    const post = (name) =>
      fetch(`${functionsUrl}/${name}`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(form),
        redirect: "manual",
      });
    const hook = await post("payu-webhook");
    const body = await hook.json();
    expect(hook.status === 200 && body.result === "applied", "200 applied", `${hook.status} ${JSON.stringify(body)}`);
    const [order] = await ok(user.from("orders").select("status, paid_at").eq("id", payuOrder.billing_order_id), "orders");
    expect(order?.status === "paid", "the order paid", order);
    seen(`payu-webhook: 200 ${JSON.stringify(body)}; order ${f.txnid} ${order.status}`);
    const back = await post("payu-return");
    await back.body?.cancel();
    expect([200, 303].includes(back.status), "payu-return to answer 303 (or 200 without app URLs)", back.status);
    seen(`payu-return: ${back.status}${back.headers.get("location") ? ` -> ${back.headers.get("location")}` : ""}`);
  },
);

await step(
  "See the paid plan in the entitlements",
  "supabase.rpc('get_entitlements') again: the paid plan now, with its features (what the app checks).",
  async () => {
    const e = await ok(user.rpc("get_entitlements", { p_organization_id: orgId }), "get_entitlements");
    expect(e.plan_code === payuPlan.code && e.status === "active", `${payuPlan.code}, active`, e);
    planFeatures = e.features;
    seen(`entitlements: ${e.plan_code} (${e.tier}), ${e.status} until ${day(e.current_period_end)}: ` +
      `${num(planFeatures.groq_tokens_per_month)} Groq tokens a month, models ${planFeatures.ai_models.join(", ")}`);
  },
);

await step(
  "Ask the AI with the official openai client",
  "new OpenAI({baseURL: <functions>/ai-chat, apiKey: <user token>, defaultHeaders: {'x-organization-id': org}})\n" +
    ".chat.completions.create(...): ai-chat reserves the prompt and tokens (billing.ai_reserve), calls Groq (here the\n" +
    "fake), and settles what was used (billing.ai_settle) after the answer has gone (EdgeRuntime.waitUntil; the local\n" +
    "server's /__local/after-response waits for it); the call is logged in public.ai_requests.",
  async () => {
    openai = new OpenAI({
      baseURL: `${functionsUrl}/ai-chat`,
      apiKey: token,
      defaultHeaders: { "x-organization-id": orgId },
      maxRetries: 0,
    });
    const { data, response } = await openai.chat.completions.create({
      model: "llama-3.1-8b-instant",
      messages: [{ role: "user", content: `Say hello to the new customer ${tag}.` }],
      max_tokens: 64,
    }).withResponse();
    const reply = data.choices?.[0]?.message?.content ?? "";
    expect(reply.length > 0 && data.usage?.total_tokens > 0, "a reply with usage", data);
    seen(`reply: "${reply}" (${data.usage.prompt_tokens} prompt + ${data.usage.completion_tokens} completion tokens)`);
    const requestId = response.headers.get("x-request-id");
    // The settlement runs after the answer: wait for the local server to finish it before reading.
    await (await fetch(`${stack.api_url}/__local/after-response`)).body?.cancel();
    const [logged] = await ok(
      user.from("ai_requests").select("status, model, counted_tokens").eq("request_id", requestId),
      "ai_requests",
    );
    expect(logged?.status === "completed", "the call logged as completed", logged);
    seen(`ai_requests ${requestId}: ${logged.status}, ${logged.counted_tokens} tokens counted; ` +
      `rate limit ${response.headers.get("x-ratelimit-remaining")}/${response.headers.get("x-ratelimit-limit")} left this minute`);
  },
);

await step(
  "Count usage up to the plan's limit",
  "supabase.rpc('increment_usage', {p_organization_id, p_metric: 'groq_tokens', p_amount}) with the service role key\n" +
    "(server side only): billing.apply_usage_delta counts every window of the metric at once, all or nothing.",
  async () => {
    const count = async (amount) =>
      await ok(
        service.rpc("increment_usage", { p_organization_id: orgId, p_metric: "groq_tokens", p_amount: amount }),
        "increment_usage",
      );
    const first = await count(1);
    expect(first.allowed && Number(first.limit_amount) === planFeatures.groq_tokens_per_month, "1 token allowed under the plan's limit", first);
    seen(`+1: allowed, ${num(first.used)} of ${num(first.limit_amount)} used, ${num(first.remaining)} left until ${day(first.resets_at)}`);
    const rest = await count(Number(first.remaining));
    expect(rest.allowed && Number(rest.remaining) === 0, "the rest allowed, 0 left", rest);
    seen(`+${num(first.remaining)}: allowed, ${num(rest.used)} of ${num(rest.limit_amount)} used, 0 left`);
    const over = await count(1);
    expect(over.allowed === false && Number(over.used) === Number(rest.used), "one more refused, nothing counted", over);
    seen(`+1: refused (allowed = false), still ${num(over.used)} used: a denied call counts nothing`);
  },
);

await step(
  "The AI call over the limit gets a 429",
  "The same openai call: billing.ai_reserve finds no tokens left this month, so ai-chat answers 429 with\n" +
    "Retry-After (the openai client raises RateLimitError); Groq is not called.",
  async () => {
    let failure = null;
    try {
      await openai.chat.completions.create({
        model: "llama-3.1-8b-instant",
        messages: [{ role: "user", content: "One more, please." }],
        max_tokens: 64,
      });
    } catch (e) {
      failure = e;
    }
    expect(failure instanceof OpenAI.RateLimitError, "a RateLimitError (429)", failure ? `${failure.status} ${failure.message}` : "a reply");
    const code = failure.code ?? failure.error?.code;
    expect(code === undefined || code === "token_quota_exceeded", "code token_quota_exceeded", code);
    const retryAfter = Number(failure.headers?.get?.("retry-after"));
    seen(`${failure.status} ${code ?? ""}, Retry-After ${retryAfter} s (the month's end, in ${Math.round(retryAfter / 86400)} days): ` +
      `"${failure.message}"`);
  },
);

await step(
  "Fetch the GST invoice PDF",
  "supabase.from('invoices').select(...) lists the organization's invoices (RLS: members); then\n" +
    "supabase.functions.invoke('invoice-pdf?id=...', {method: 'GET'}): one SQL call (public.tax_document) as the user,\n" +
    "drawn with pdf-lib (every Rule 46 field).",
  async () => {
    const invoices = await ok(
      user.from("invoices").select("id, invoice_number, total_cents").eq("organization_id", orgId),
      "invoices",
    );
    expect(invoices.length === 1 && Number(invoices[0].total_cents) === Number(payuOrder.amount_cents), "one invoice for the amount paid", invoices);
    invoice = invoices[0];
    const blob = await ok(user.functions.invoke(`invoice-pdf?id=${invoice.id}`, { method: "GET" }), "invoice-pdf");
    const bytes = Buffer.from(await blob.arrayBuffer());
    expect(bytes.subarray(0, 5).toString("latin1") === "%PDF-", "a PDF (starting %PDF-)", bytes.subarray(0, 16).toString("latin1"));
    const dir = demoDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, `${invoice.invoice_number.replaceAll("/", "-")}-${tag}.pdf`);
    fs.writeFileSync(file, bytes);
    seen(`invoice ${invoice.invoice_number}, ${rupees(invoice.total_cents)}: ${file} (${bytes.length} bytes, %PDF-)`);
  },
);

await step(
  "Cancel the PayU plan at the period end",
  "supabase.rpc('cancel_subscription', {p_organization_id, p_at_period_end: true}) as the owner: the plan stays until\n" +
    "the period ends, then falls to free. A PayU checkout is a one-time payment: PayU holds no subscription to cancel,\n" +
    "so nothing is sent to PayU (no provider action is queued); the plan is simply not renewed.",
  async () => {
    const answer = await ok(user.rpc("cancel_subscription", { p_organization_id: orgId, p_at_period_end: true }), "cancel_subscription");
    const [sub] = await ok(
      user.from("subscriptions").select("status, cancel_at_period_end, current_period_end").eq("organization_id", orgId),
      "subscriptions",
    );
    expect(sub?.cancel_at_period_end === true && sub.status === "active", "active, cancelling at the period end", sub);
    seen(`subscription ${sub.status}, cancel_at_period_end = true, ends ${day(sub.current_period_end)}`);
    const actions = await ok(user.rpc("get_provider_actions", { p_organization_id: orgId }), "get_provider_actions");
    expect(!answer?.provider_action && actions.length === 0, "no provider action for PayU", { answer, actions });
    seen("provider actions: none (PayU has nothing to cancel)");
  },
);

await step(
  "Subscribe a second organization with Razorpay (a recurring subscription)",
  `${rzpPlan.name} has a Razorpay plan id, so checkout creates a Razorpay Subscription (the fake's POST /v1/subscriptions).\n` +
    "The buyer authorises the mandate in Razorpay Checkout (the demo seeds that payment at the fake), whose handler\n" +
    "sends the signed result to razorpay-verify: it checks the signature, fetches the payment from Razorpay and\n" +
    "applies it through billing.apply_payment_event.",
  async () => {
    rzpOrgId = await ok(user.rpc("create_organization", { p_name: `Demo Team ${tag}` }), "create_organization");
    const started = await ok(
      user.functions.invoke("checkout", { body: { organization_id: rzpOrgId, plan_code: rzpPlan.code, provider: "razorpay" } }),
      "checkout",
    );
    rzpSubId = started.subscription_id;
    expect(/^sub_/.test(rzpSubId ?? ""), "a Razorpay subscription id", started);
    seen(`checkout: Razorpay subscription ${rzpSubId}, ${rupees(started.amount_cents)} a month (GST included)`);
    const paymentId = `pay_demo${randomBytes(6).toString("hex")}`;
    await fake("/__control/razorpay/payments", { id: paymentId, amount: Number(started.amount_cents), invoice_id: `inv_demo${tag}` });
    await fake("/__control/razorpay/subscriptions", { id: rzpSubId, status: "active" });
    const signature = createHmac("sha256", fakeCreds.RAZORPAY_KEY_SECRET).update(`${paymentId}|${rzpSubId}`).digest("hex");
    const verified = await ok(
      user.functions.invoke("razorpay-verify", {
        body: { billing_order_id: started.billing_order_id, razorpay_payment_id: paymentId, razorpay_signature: signature },
      }),
      "razorpay-verify",
    );
    expect(verified.result === "applied" && verified.subscription_status === "active", "applied, active", verified);
    const e = await ok(user.rpc("get_entitlements", { p_organization_id: rzpOrgId }), "get_entitlements");
    expect(e.plan_code === rzpPlan.code, `${rzpPlan.code} in effect`, e);
    seen(`razorpay-verify: ${verified.result}; ${e.plan_code} ${e.status} until ${day(e.current_period_end)}`);
  },
);

await step(
  "Cancel the Razorpay subscription at the period end: the provider is told",
  "cancel_subscription queues a row in the provider-actions outbox (billing.queue_provider_action) in the same\n" +
    "transaction; the provider-sync worker (POSTed here with the service role key, as pg_cron would) claims it and\n" +
    "calls Razorpay's POST /v1/subscriptions/:id/cancel {cancel_at_cycle_end: 1}; the outcome is recorded.",
  async () => {
    const answer = await ok(user.rpc("cancel_subscription", { p_organization_id: rzpOrgId, p_at_period_end: true }), "cancel_subscription");
    expect(answer?.provider_action?.provider_subscription_id === rzpSubId, "a provider action for the subscription", answer);
    const queued = await ok(user.rpc("get_provider_actions", { p_organization_id: rzpOrgId }), "get_provider_actions");
    // The ticker may have carried it out already: then it is no longer listed as pending.
    seen(`outbox: ${queued.length ? queued.map((a) => `${a.kind} ${a.state}`).join(", ") : "already carried out by the ticker"}`);
    let action;
    for (let i = 0; i < 20; i++) {
      [action] = await sql`select state, attempts, last_error from billing.provider_actions
        where organization_id = ${rzpOrgId} and kind = 'cancel'`;
      if (action?.state === "succeeded" || action?.state === "failed") break;
      await runWorker("provider-sync");
      await sleep(250);
    }
    expect(action?.state === "succeeded", "the cancel action succeeded", action);
    const { calls } = await fake(`/__control/calls?route=razorpay.subscriptions.cancel`);
    const sent = calls.filter((c) => c.path === `/v1/subscriptions/${rzpSubId}/cancel`);
    expect(sent.length === 1 && sent[0].status === 200, "one cancel call at the fake Razorpay", sent);
    seen(`provider-sync: cancel succeeded after ${action.attempts} attempt(s); the fake Razorpay got ` +
      `${sent[0].method} ${sent[0].path} ${JSON.stringify(sent[0].body)} -> ${sent[0].status}`);
  },
);

await step(
  "Read the emails",
  "The payment path and the cancellations queued notifications (public.notifications, in the same transactions);\n" +
    "notifications-send (POSTed with the service role key) renders and sends them through Resend's API, here the\n" +
    "fake's mailbox (<fakes>/inbox). They go to the organization's owners (no billing email set).",
  async () => {
    const wanted = { payment_captured: 2, cancellation_scheduled: 2 };
    if (!stack.faked?.includes("resend")) {
      // Real Resend: the emails left for the owner's inbox; what notifications-send recorded is the proof.
      let sent = [];
      for (let i = 0; i < 30; i++) {
        await runWorker("notifications-send");
        sent = await sql`select kind::text, count(*)::int as n from public.notifications
          where organization_id in (${orgId}, ${rzpOrgId}) and sent_at is not null group by kind`;
        if (Object.entries(wanted).every(([k, n]) => (sent.find((r) => r.kind === k)?.n ?? 0) >= n)) break;
        await sleep(500);
      }
      expect(Object.entries(wanted).every(([k, n]) => (sent.find((r) => r.kind === k)?.n ?? 0) >= n),
        `${JSON.stringify(wanted)} sent through Resend`, sent);
      seen(`sent through Resend to ${email}: ${sent.map((r) => `${r.n} ${r.kind}`).join(", ")} (public.notifications.sent_at)`);
      return;
    }
    let mine = [];
    for (let i = 0; i < 30; i++) {
      await runWorker("notifications-send");
      mine = (await fake("/inbox.json")).emails.filter((m) => m.to.includes(email));
      const kinds = mine.map((m) => m.tags?.find((t) => t.name === "kind")?.value);
      if (Object.entries(wanted).every(([k, n]) => kinds.filter((x) => x === k).length >= n)) break;
      mine = null;
      await sleep(500);
    }
    expect(mine !== null, `${JSON.stringify(wanted)} emails to ${email}`, "fewer after 15 s");
    for (const m of mine) {
      const files = (m.attachments ?? []).map((a) => a.filename).join(", ");
      seen(`to ${m.to.join(", ")}: "${m.subject}"${files ? ` [attached: ${files}]` : ""}`);
    }
    const receipt = mine.find((m) => m.subject.includes(invoice.invoice_number));
    expect(receipt?.attachments?.some((a) => a.filename?.endsWith(".pdf")), "the PayU receipt with its invoice PDF attached", receipt);
    seen(`${mine.length} emails; the mailbox page: ${stack.fakes_url}/inbox`);
  },
);

console.log(`\nDone: ${stepNo} steps. The demo's user ${email} and its two organizations stay in the database.`);
await sql.end({ timeout: 5 });
