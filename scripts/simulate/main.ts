// The simulation: a seeded population of organizations lives through months of billing on the
// stack scripts/simulate.mjs brought up, through the real endpoints (checkout, the webhooks of
// PayU, Razorpay and Stripe, razorpay-verify, reconcile, provider-sync, notifications-send), the
// SQL functions, the jobs
// (called once per simulated day, as pg_cron would) and the fakes, with ONE simulated clock
// (billing.test_clock for every connection, /__control/clock for the fakes) moved a day at a
// time. After each day it takes a snapshot and checks the invariants (invariants.ts); the first
// violation stops it (exit 1) with the seed, day, organization and invariant.
import postgres from "npm:postgres@4.2.0";
import * as jose from "npm:jose@6.2.17";
import { createHash, createHmac } from "node:crypto";
import {
  type AccessExpectation,
  checkAll,
  type Email,
  type ProviderCall,
  type ProviderMoney,
  type Snapshot,
  type CreditCall,
  type CheckoutQuote,
  type DiscountSpec,
  type UsageCall,
} from "./invariants.ts";
import { chain, ledgerLines } from "./digest.ts";

type Json = Record<string, unknown>;
const DAY = 86400e3;
const MIN = 60e3;
const GRACE = 3 * DAY;

// -------------------------------------------------------------------------------------------------
// Flags

const USAGE = `npm run simulate -- --seed <n> --orgs <n> --months <n> [--fault-rate <0..1>] [--start <YYYY-MM-DD>]
  [--no-payu] [--no-razorpay-subscriptions] [--no-stripe] [--no-upgrades] [--no-downgrades] [--no-cancels] [--no-trials]
  [--no-razorpay-orders] [--no-razorpay-plan-changes] [--no-grants] [--no-refunds] [--no-disputes] [--no-usage] [--no-credits] [--no-discounts] [--no-webhook-faults] [--no-provider-faults]
  [--no-email-faults] [--no-crash-faults] [--no-kill-faults] [--no-timeout-faults]`;

function parseFlags(argv: string[]) {
  const f = {
    seed: 1, orgs: 5, months: 2, faultRate: 0.1, start: "2027-01-01", ledger: "",
    payu: true, razorpaySubscriptions: true, stripe: true, upgrades: true, downgrades: true, cancels: true, trials: true,
    refunds: true, disputes: true, usage: true, webhookFaults: true, providerFaults: true, emailFaults: true,
    crashFaults: true, killFaults: true, timeoutFaults: true, razorpayOrders: true, razorpayPlanChanges: true, grants: true, credits: true,
    discounts: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n)) throw new Error(`${a} needs a number`);
      return n;
    };
    if (a === "--seed") f.seed = num();
    else if (a === "--orgs") f.orgs = num();
    else if (a === "--months") f.months = num();
    else if (a === "--fault-rate") f.faultRate = num();
    else if (a === "--start") f.start = argv[++i];
    else if (a === "--ledger") f.ledger = argv[++i] ?? "";
    else if (a.startsWith("--no-")) {
      const key = a.slice(5).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
      if (!(key in f) || typeof (f as Json)[key] !== "boolean") throw new Error(`unknown flag ${a}`);
      (f as Json)[key] = false;
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!f.payu && !f.razorpaySubscriptions && !f.stripe) throw new Error("--no-payu, --no-razorpay-subscriptions and --no-stripe leave no way to pay");
  if (!/^\d{4}-\d{2}-\d{2}$/.test(f.start)) throw new Error("--start must be YYYY-MM-DD");
  return f;
}

let flags: ReturnType<typeof parseFlags>;
try {
  flags = parseFlags(Deno.args);
} catch (e) {
  console.error(`simulate: ${(e as Error).message}\n${USAGE}`);
  Deno.exit(2);
}

// -------------------------------------------------------------------------------------------------
// Seeded randomness (mulberry32): the same seed makes the same choices in the same order.

let rngState = flags.seed >>> 0 || 1;
function random(): number {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const chance = (p: number) => random() < p;
const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
let idCounter = 0;
/** Ids the simulation makes (payments, request ids) come from the seed too. */
const simId = (prefix: string) => `${prefix}_s${flags.seed}x${(++idCounter).toString(36).padStart(6, "0")}`;

// -------------------------------------------------------------------------------------------------
// The stack

const env = (name: string) => {
  const v = Deno.env.get(name);
  if (!v) {
    console.error(`simulate: ${name} is not set: run it with npm run simulate`);
    Deno.exit(2);
  }
  return v;
};
const sql = postgres(env("SUPABASE_DB_URL"), { max: 4, prepare: false, onnotice: () => {} });
const fakes = env("FAKE_UPSTREAMS_URL");
const serviceKey = env("SUPABASE_SERVICE_ROLE_KEY");
const privateJwk = JSON.parse(env("SUPABILL_TEST_PRIVATE_JWK"));
const signingKey = await jose.importJWK(privateJwk, "ES256");

async function token(sub: string): Promise<string> {
  return await new jose.SignJWT({ sub, role: "authenticated", aud: "authenticated" })
    .setProtectedHeader({ alg: "ES256", kid: privateJwk.kid, typ: "JWT" })
    .setIssuedAt().setExpirationTime("2h").sign(signingKey);
}

async function call(name: string, body: unknown, opts: { token?: string; headers?: Record<string, string>; raw?: string } = {}) {
  const headers: Record<string, string> = { "content-type": "application/json", ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const res = await fetch(`${env("SUPABASE_URL")}/functions/v1/${name}`, {
    method: "POST", headers, body: opts.raw ?? JSON.stringify(body), redirect: "manual",
  });
  const text = await res.text();
  let json: Json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { text };
  }
  return { status: res.status, body: json };
}

async function fake(path: string, body?: unknown, init: RequestInit = {}): Promise<Json> {
  const res = await fetch(`${fakes}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    ...init,
  });
  const answer = await res.json();
  if (!res.ok) throw new Error(`fake ${path}: ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}

// -------------------------------------------------------------------------------------------------
// The one clock

let now = Date.parse(`${flags.start}T00:00:00+05:30`);
const startMs = now;

async function setClock(ms: number) {
  now = ms;
  const at = new Date(ms).toISOString();
  await sql`insert into billing.test_clock (simulated_at) values (${at}) on conflict (id)
    do update set simulated_at = excluded.simulated_at, updated_at = now()`;
  await fake("/__control/clock", { at });
}
const advance = (minutes: number) => setClock(now + minutes * MIN);
const istDate = (ms: number) => new Date(ms + 5.5 * 3600e3).toISOString().slice(0, 10);

/** One interval later on the India calendar, the day clamped to the month's end. */
function addInterval(ms: number, interval: string): number {
  const d = new Date(ms + 5.5 * 3600e3);
  const y = d.getUTCFullYear() + (interval === "year" ? 1 : 0);
  const m = d.getUTCMonth() + (interval === "month" ? 1 : 0);
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  const t = Date.UTC(y, m, Math.min(d.getUTCDate(), last), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds());
  return t - 5.5 * 3600e3;
}

// -------------------------------------------------------------------------------------------------
// Counters and what the invariants need from the simulation

const counts = { payments: 0, renewals: 0, refunds: 0, faults: 0, discounted: 0, free: 0, refused: 0, stripe: 0, stripeRenewals: 0, stripeFailed: 0 };
const expectApplied: string[] = [];
const refundAllowed: string[] = [];
/** Notifications whose sender was killed after the email API accepted them (the documented second send). */
const atLeastOnce: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const usageCalls: UsageCall[] = [];
const creditCalls: CreditCall[] = [];
/** What preview_checkout quoted for each order a plan checkout made (PayU, one-time Razorpay). */
const checkoutQuotes: CheckoutQuote[] = [];

interface Plan {
  id: string;
  code: string;
  tier: string;
  interval: string;
  price_cents: number;
  trial_days: number;
}
const plans = new Map<string, Plan>();
for (const p of await sql<Plan[]>`select id, code, tier, interval::text, price_cents::int, trial_days from public.billing_plans where active`) {
  plans.set(p.code, p);
}
// One-time Razorpay orders: on this throwaway cluster the yearly plans have no Razorpay plan id, so
// a Razorpay checkout of one is a one-time order (renewed through checkout, like PayU).
if (flags.razorpayOrders) {
  await sql`update public.billing_plans set provider_config = provider_config - 'razorpay' where interval = 'year'`;
}
const rzpRecurring = (code: string) => !(flags.razorpayOrders && plans.get(code)!.interval === "year");
const paidPlans = ["basic_monthly", "basic_monthly", "pro_monthly", "basic_yearly", "pro_yearly"].filter((c) => plans.has(c));

/**
 * The discount codes of the run (docs/discounts.md), created at its start as an operator would:
 * percent and fixed, once, repeating and forever, one with few redemptions, one for the Pro plans
 * only, and one fixed amount above Basic's monthly price, so that some orders are free.
 */
const discountSpecs: DiscountSpec[] = flags.discounts
  ? [
    { code: "SIM10ONCE", percent_bps: 1000, duration: "once" },
    { code: "SIM25X3", percent_bps: 2500, duration: "repeating", periods: 3 },
    { code: "SIMPRO300X2", amount_paise: 30000, duration: "repeating", periods: 2, plans: ["pro_monthly", "pro_yearly"] },
    { code: "SIM5FOREVER", percent_bps: 500, duration: "forever", max_per_organization: null },
    { code: "SIMFEW50", percent_bps: 5000, duration: "once", max_redemptions: 2 },
    { code: "SIMFREE", amount_paise: (plans.get("basic_monthly")?.price_cents ?? 49900) + 10000, duration: "once", max_per_organization: 2 },
  ]
  : [];

/** The simulation's own model of one organization: what it paid for, independent of our rows. */
interface Org {
  n: number;
  id: string;
  owner: string;
  provider: Provider | null;
  plan: string | null;
  periodEnd: number | null;
  trialEnd: number | null;
  trialPlan: string | null;
  everTrialed: boolean;
  cancelAtEnd: boolean;
  endedAt: number | null;
  pendingPlan: string | null;
  rzpSubId: string | null;
  /** The organization's live Stripe subscription (sub_...): Stripe renews it at its period end. */
  stripeSubId: string | null;
  /** A failed Stripe renewal: Stripe's retry at `at` pays it, or (never paid) Stripe gives up and cancels at `at`. */
  stripeRetry: { at: number; pays: boolean; final: boolean } | null;
  /** An upgrade of a Stripe subscription: our prorated order, charged by Stripe through provider-sync. */
  stripeUpgrade: { code: string; receipt: string } | null;
  /** Until when the model is unsure (a payment in flight, a boundary, a dispute): any of `unsure` tiers goes. */
  unsureUntil: number;
  unsure: Set<string>;
  payments: ModelPayment[];
  /** When an operator last granted a plan (docs/payments.md: the period then stands on no payment). */
  operatorAt: number | null;
  disputeOpen: boolean;
  neverRenews: boolean;
  /** A comp from an operator (no payment): the plan runs until periodEnd with no renewal. */
  granted: boolean;
  /** The plan to buy through checkout once a Razorpay subscription ended for a plan change. */
  resubscribe: string | null;
  /** Credit packs bought (provider payment ids): no plan, no span; refunds take back their credits. */
  packs: { id: string; provider: Provider }[];
}
type Provider = "payu" | "razorpay" | "stripe";
const orgs: Org[] = [];

/** A payment in the model, with the span of time it bought (docs/payments.md: refunds and disputes take it back). */
interface ModelPayment {
  id: string;
  /** manual: a free order (a discount covering the price), paid without a provider. */
  provider: Provider | "manual";
  amount: number;
  captureAt: number;
  spanStart?: number;
  spanEnd?: number;
  /** The upgrade payment its unused value was credited into. */
  creditedInto?: ModelPayment;
  /** Its span was taken back already (a full refund, then a lost dispute: taken once). */
  takenBack?: boolean;
  /** A later plan change started inside its span: no longer in the current period. */
  replaced?: boolean;
}

function tierOf(code: string | null) {
  return code ? plans.get(code)!.tier : "free";
}

/** The tier the model says is in effect at `t` (before the slack). */
function modelTier(o: Org, t: number): string {
  if (o.endedAt !== null && (o.periodEnd === null || o.endedAt >= (o.periodEnd ?? 0) - DAY || t >= o.endedAt)) {
    if (t >= o.endedAt) return "free";
  }
  // A paid period first: an upgrade paid during a trial takes effect at once.
  if (o.periodEnd !== null && o.plan && t < o.periodEnd) return tierOf(o.plan);
  if (o.trialEnd !== null && t < o.trialEnd && o.trialPlan) return tierOf(o.trialPlan);
  if (o.periodEnd !== null && o.plan) {
    if (o.pendingPlan && t < o.periodEnd + GRACE && !o.cancelAtEnd) return tierOf(o.pendingPlan);
    if (t < o.periodEnd + GRACE && !o.cancelAtEnd) return tierOf(o.plan);
  }
  return "free";
}

function expectation(o: Org): AccessExpectation {
  const tiers = new Set([modelTier(o, now)]);
  // A boundary within a day either way: the product's period ends on its own anchor and calendar.
  for (const b of [o.periodEnd, o.periodEnd !== null ? o.periodEnd + GRACE : null, o.trialEnd, o.endedAt]) {
    if (b !== null && Math.abs(now - b) < 1.5 * DAY) {
      tiers.add(modelTier(o, b - 2 * DAY));
      tiers.add(modelTier(o, b + 2 * DAY));
    }
  }
  if (now < o.unsureUntil) for (const t of o.unsure) tiers.add(t);
  if (o.pendingPlan) tiers.add(tierOf(o.pendingPlan));
  if (o.disputeOpen) tiers.add("free");
  return {
    organization_id: o.id,
    tiers: [...tiers],
    why: `model: plan ${o.plan ?? "none"} until ${o.periodEnd ? new Date(o.periodEnd).toISOString() : "-"}` +
      `${o.trialEnd ? `, trial until ${new Date(o.trialEnd).toISOString()}` : ""}${o.cancelAtEnd ? ", cancels at period end" : ""}` +
      `${o.endedAt ? `, ended ${new Date(o.endedAt).toISOString()}` : ""}`,
  };
}

/** The model is unsure for a while (a payment on its way, a refund being carried out). */
function unsure(o: Org, days: number, ...tiers: string[]) {
  if (now >= o.unsureUntil) o.unsure = new Set();
  for (const t of [...tiers, modelTier(o, now)]) o.unsure.add(t);
  o.unsureUntil = Math.max(o.unsureUntil, now + days * DAY);
}

/**
 * A full refund or lost dispute of `p`, in the model (docs/payments.md): the unused part of the span
 * it bought (of the upgrade it was credited into, when it was) comes off the period end, and access
 * ends now when nothing paid is left; a span is taken back once, a span a later plan change replaced
 * not at all; a grant since the payment leaves the period alone (an extension keeps its days, and
 * the unused span is still taken off).
 */
function modelTakeBack(o: Org, p: ModelPayment) {
  if (o.endedAt !== null || o.periodEnd === null) return;
  if (o.operatorAt !== null && o.operatorAt >= p.captureAt) return;
  let span: ModelPayment = p;
  while (span.creditedInto) span = span.creditedInto;
  if (p.takenBack || span.takenBack || span.replaced) return;
  if (span.spanStart === undefined || span.spanEnd === undefined) return;
  const unused = Math.max(0, span.spanEnd - Math.max(now, span.spanStart));
  const before = modelTier(o, now);
  if (unused > 0) p.takenBack = span.takenBack = true;
  o.periodEnd -= unused;
  if (o.periodEnd <= now) o.endedAt = now;
  unsure(o, 1.5, before);
}

/** A payment that buys `code` now, in the model: extends a running or grace period, else starts now. */
function modelPaid(o: Org, code: string, kind: "new" | "renewal" | "upgrade") {
  const plan = plans.get(code)!;
  const before = modelTier(o, now);
  // docs/lifecycle.md: a renewal of the current plan paid while a downgrade is scheduled keeps the
  // period it paid for, and the downgrade follows at the end of that period (paid in the grace
  // days too: the renewal extends the period before the downgrade falls due).
  const keepPending = kind === "renewal" && code === o.plan && o.periodEnd !== null && now < o.periodEnd + GRACE;
  const paid = o.payments[o.payments.length - 1];
  let start = now;
  // A new run starting now (a plan change) replaces what is left of the spans it starts inside
  // (the payment credited into an upgrade carries its value there instead).
  const credited = kind === "upgrade" ? o.payments[o.payments.length - 2] : undefined;
  const replaces = (x: ModelPayment) => {
    if (x !== paid && x !== credited && x.spanStart !== undefined && x.spanEnd !== undefined
        && x.spanStart <= now && now < x.spanEnd) x.replaced = true;
  };
  if (kind === "upgrade" || (o.plan !== null && code !== o.plan)) o.payments.forEach(replaces);
  if (kind === "upgrade") {
    // The unused value of the payment applied before the upgrade is credited into it.
    if (credited && o.periodEnd !== null && now < o.periodEnd) credited.creditedInto = paid;
    o.periodEnd = addInterval(now, plan.interval);
  } else if (o.trialEnd !== null && now < o.trialEnd && o.periodEnd === null) {
    start = o.trialEnd;
    o.periodEnd = addInterval(o.trialEnd, plan.interval);
  } else if (kind === "renewal" && o.periodEnd !== null && now < o.periodEnd + GRACE) {
    start = o.periodEnd;
    o.periodEnd = addInterval(o.periodEnd, plan.interval);
  } else {
    o.periodEnd = addInterval(now, plan.interval);
  }
  if (paid) {
    paid.spanStart = start;
    paid.spanEnd = o.periodEnd;
  }
  if (!keepPending) o.pendingPlan = null;
  o.plan = code;
  o.endedAt = null;
  o.cancelAtEnd = false;
  unsure(o, 0.5, before);
}

/** Whether a recorded Razorpay cancel call asked for the cycle end (a form or JSON body). */
function cancelsAtCycleEnd(body: unknown): boolean {
  const value = body && typeof body === "object" ? (body as Json).cancel_at_cycle_end : undefined;
  return value === 1 || value === true || value === "1" || value === "true";
}

// -------------------------------------------------------------------------------------------------
// Webhooks, with faults: duplicated, late (delivered on a later day, so out of order), lost

interface Delivery {
  due: number;
  send: () => Promise<unknown>;
  /** The organization whose event it is (none for a provider's redelivery). */
  org?: Org;
}
let lateQueue: Delivery[] = [];
/** A late webhook arrives one to this many days later. */
const MAX_LATE_DAYS = 3;

async function deliver(o: Org, send: () => Promise<unknown>, { losable = false } = {}) {
  if (flags.webhookFaults && chance(flags.faultRate)) {
    counts.faults++;
    const r = random();
    if (r < 0.35) {
      await send();
      await send();
      return;
    }
    if (r < 0.7 || !losable) {
      lateQueue.push({ due: now + int(1, MAX_LATE_DAYS) * DAY, send, org: o });
      unsure(o, 4);
      return;
    }
    unsure(o, 2.5);
    return; // lost: reconcile must find it
  }
  await send();
}

function rzpWebhook(event: string, payload: Json, createdAt = Math.floor(now / 1000)) {
  const raw = JSON.stringify({ entity: "event", account_id: "acc_sim", event, contains: Object.keys(payload), payload, created_at: createdAt });
  return webhook(`razorpay ${event}`, () =>
    call("razorpay-webhook", null, {
      raw,
      headers: {
        "x-razorpay-signature": createHmac("sha256", env("RAZORPAY_WEBHOOK_SECRET")).update(raw).digest("hex"),
        "x-razorpay-event-id": simId("evt"),
      },
    }));
}

/**
 * One webhook delivery, as a provider makes it: an answer other than 2xx is logged (a signed event
 * should never get one) and delivered again the next day, up to three times, as the providers
 * retry failed deliveries.
 */
async function webhook(label: string, send: () => Promise<{ status: number; body: Json }>, attempt = 1) {
  const res = await send();
  if (res.status >= 300) {
    log.push(`day ${day}: ${label} answered ${res.status} ${String(res.body.code ?? "")} ${String(res.body.message ?? "")}`.trimEnd());
    if (attempt <= 3) lateQueue.push({ due: now + DAY, send: () => webhook(label, send, attempt + 1) });
  }
  return res;
}

function payuWebhook(fields: Record<string, string>, mihpayid: string) {
  const f: Record<string, string> = {
    mihpayid, mode: "UPI", status: "success", unmappedstatus: "captured", key: fields.key, txnid: fields.txnid,
    amount: fields.amount, productinfo: fields.productinfo, firstname: fields.firstname, email: fields.email,
    udf1: fields.udf1 ?? "", udf2: fields.udf2 ?? "", udf3: fields.udf3 ?? "", udf4: fields.udf4 ?? "", udf5: fields.udf5 ?? "",
    addedon: new Date(now + 5.5 * 3600e3).toISOString().slice(0, 19).replace("T", " "),
  };
  f.hash = createHash("sha512").update([
    env("PAYU_MERCHANT_SALT"), f.status, "", "", "", "", "", f.udf5, f.udf4, f.udf3, f.udf2, f.udf1, f.email,
    f.firstname, f.productinfo, f.amount, f.txnid, env("PAYU_MERCHANT_KEY"),
  ].join("|")).digest("hex");
  return webhook(`payu ${f.status}`, () =>
    call("payu-webhook", null, {
      raw: new URLSearchParams(f).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded" },
    }));
}

// -------------------------------------------------------------------------------------------------
// Life events, each through the product's own paths

async function asOwner<T>(o: Org, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
      set_config('request.jwt.claims', ${JSON.stringify({ sub: o.owner, role: "authenticated" })}, true)`;
    return await fn(tx);
  }) as T;
}

async function createOrg(n: number): Promise<Org> {
  const [{ id: owner }] = await sql`insert into auth.users (id, email, role, aud)
    values (gen_random_uuid(), ${`owner${n}.s${flags.seed}@sim.example`}, 'authenticated', 'authenticated') returning id`;
  const id = await asOwner({ owner } as Org, async (tx) => {
    const [{ id }] = await tx`select public.create_organization(${`Sim ${flags.seed}/${n}`}) as id`;
    return id as string;
  });
  await sql`update public.organizations set billing_email = ${`billing${n}@sim.example`} where id = ${id}`;
  return {
    n, id, owner, provider: null, plan: null, periodEnd: null, trialEnd: null, trialPlan: null, everTrialed: false,
    cancelAtEnd: false, endedAt: null, pendingPlan: null, rzpSubId: null, stripeSubId: null, stripeRetry: null, stripeUpgrade: null, unsureUntil: 0, unsure: new Set(), payments: [],
    disputeOpen: false, neverRenews: chance(0.15), granted: false, resubscribe: null, operatorAt: null, packs: [],
  };
}

/**
 * A checkout through the checkout function. A plan checkout sometimes carries one of the run's
 * discount codes (typed in any case), and is previewed first with public.preview_checkout as the
 * owner: the order it makes must be priced as quoted (invariant 8; not for a Razorpay subscription,
 * which preview_checkout cannot know). A refused code (422 discount_*: exhausted, already used,
 * another plan, a Razorpay subscription plan) is an outcome: the customer pays without it.
 */
async function checkout(o: Org, provider: Provider, what: { plan_code?: string; order_id?: string; credit_pack_code?: string },
  t: string, { recurring = false } = {}): Promise<{ status: number; body: Json; free: boolean }> {
  const base = { organization_id: o.id, provider, ...what };
  if (!what.plan_code) {
    const res = await call("checkout", base, { token: t });
    return { ...res, free: false };
  }
  let code: string | null = null;
  if (discountSpecs.length > 0 && chance(recurring ? 0.2 : 0.5)) {
    code = pick(discountSpecs).code;
    if (chance(0.3)) code = code.toLowerCase();
  }
  const preview = async (c: string | null) =>
    await asOwner(o, async (tx) => (await tx`select public.preview_checkout(${o.id}, ${what.plan_code!}, ${c}) as q`)[0].q as Json)
      .catch((e) => ({ refused: (e as { hint?: string }).hint ?? (e as Error).message }) as Json);
  let quote = recurring ? null : await preview(code);
  let res = await call("checkout", code ? { ...base, discount_code: code } : base, { token: t });
  if (code && res.status === 422 && String(res.body.code).startsWith("discount_")) {
    counts.refused++;
    log.push(`day ${day} org ${o.n}: code ${code} refused for ${what.plan_code} on ${provider}: ${res.body.code}` +
      (quote && !quote.refused && !recurring ? " (preview_checkout had accepted it)" : ""));
    code = null;
    quote = recurring ? null : await preview(null);
    res = await call("checkout", base, { token: t });
  }
  if (res.status !== 200) return { ...res, free: false };
  if (quote && !quote.refused) {
    checkoutQuotes.push({
      organization_id: o.id, order_id: res.body.billing_order_id as string, code,
      list_paise: Number(quote.list_paise), discount_paise: Number(quote.discount_paise),
      taxable_paise: Number(quote.taxable_paise), total_paise: Number(quote.total_paise),
    });
    if (Number(quote.discount_paise) > 0) {
      counts.discounted++;
      log.push(`day ${day} org ${o.n}: ${what.plan_code} on ${provider} with ${quote.code}: ${quote.list_paise} - ${quote.discount_paise} (total ${quote.total_paise})`);
    }
  } else if (quote?.refused) {
    log.push(`day ${day} org ${o.n}: preview_checkout of ${what.plan_code} refused (${quote.refused}) but checkout made order ${res.body.billing_order_id}`);
  }
  const free = res.body.provider === "manual" && res.body.status === "paid" && Number(res.body.amount_cents) === 0;
  return { ...res, free };
}

/**
 * A free order (a discount as large as the price): checkout paid it at once, without a provider
 * (payment `free_<receipt>`, provider manual), and it buys its period like any payment.
 */
function paidFree(o: Org, body: Json, kind: Exclude<PaidKind, "pack">, code: string, provider: Provider) {
  const id = `free_${body.receipt}`;
  counts.payments++;
  counts.free++;
  if (kind === "renewal") counts.renewals++;
  expectApplied.push(id);
  o.payments.push({ id, provider: "manual", amount: 0, captureAt: now });
  o.provider ??= provider;
  modelPaid(o, code, kind);
  return "free (the discount covers the price)";
}

/** PayU: checkout (a plan or an upgrade order), the payment page, PayU's record, its signed webhook. */
async function payWithPayu(o: Org, what: { plan_code?: string; order_id?: string; credit_pack_code?: string }, kind: PaidKind, code: string) {
  const res = await checkout(o, "payu", what, await token(o.owner));
  if (res.status !== 200) return `checkout ${res.status} ${res.body.code}`;
  if (res.free && kind !== "pack") return paidFree(o, res.body, kind, code, "payu");
  const fields = res.body.fields as Record<string, string>;
  await fetch(res.body.action_url as string, { method: "POST", body: new URLSearchParams(fields) }).then((r) => r.body?.cancel());
  await advance(int(1, 4));
  const mihpayid = simId("mih");
  await fake("/__control/payu/transactions", {
    [fields.txnid]: {
      mihpayid, status: "success", unmappedstatus: "captured", amt: fields.amount, transaction_amount: fields.amount,
      mode: "UPI", productinfo: fields.productinfo, firstname: fields.firstname, email: fields.email, udf1: fields.udf1,
      addedon: new Date(now + 5.5 * 3600e3).toISOString().slice(0, 19).replace("T", " "), sim_at: new Date(now).toISOString(),
    },
  });
  counts.payments++;
  if (kind === "renewal") counts.renewals++;
  expectApplied.push(fields.txnid);
  if (kind === "pack") o.packs.push({ id: fields.txnid, provider: "payu" });
  else {
    o.payments.push({ id: fields.txnid, provider: "payu", amount: Number(res.body.amount_cents), captureAt: now });
    o.provider ??= "payu";
    modelPaid(o, code, kind);
  }
  await deliver(o, () => payuWebhook(fields, mihpayid), { losable: true });
  return "paid";
}

/** Razorpay subscription: checkout, the first charge at the fake, razorpay-verify from the browser. */
async function subscribeRazorpay(o: Org, code: string) {
  if (!rzpRecurring(code)) return await payRazorpayOrder(o, { plan_code: code }, o.payments.length ? "renewal" : "new", code);
  const t = await token(o.owner);
  const res = await checkout(o, "razorpay", { plan_code: code }, t, { recurring: true });
  if (res.status !== 200) return `checkout ${res.status} ${res.body.code}`;
  const subId = res.body.subscription_id as string;
  await advance(int(1, 4));
  const charge = await fake("/__control/razorpay/subscriptions/charge", { subscription_id: subId, amount: plans.get(code)!.price_cents, payment_id: simId("pay") });
  const payment = charge.payment as Json;
  const payId = payment.id as string;
  await fake("/__control/razorpay/subscriptions", { id: subId, status: "active" });
  counts.payments++;
  expectApplied.push(payId);
  o.payments.push({ id: payId, provider: "razorpay", amount: payment.amount as number, captureAt: now });
  o.provider = "razorpay";
  o.rzpSubId = subId;
  modelPaid(o, code, "new");
  const verify = await call("razorpay-verify", {
    billing_order_id: res.body.billing_order_id, razorpay_payment_id: payId,
    razorpay_signature: createHmac("sha256", env("RAZORPAY_KEY_SECRET")).update(`${payId}|${subId}`).digest("hex"),
  }, { token: t });
  if (verify.status !== 200) return `verify ${verify.status} ${JSON.stringify(verify.body)}`;
  // Razorpay's own webhook for the same charge follows (a duplicate for us).
  await deliver(o, () => rzpWebhook("subscription.charged", { subscription: { entity: charge.subscription }, payment: { entity: payment } }));
  return "subscribed";
}

/** A mandate debit at Razorpay: the charge and its subscription.charged webhook (or a failure, retried). */
async function mandateDebit(o: Org) {
  if (chance(0.15)) {
    counts.faults++;
    const failed = { id: simId("pay"), entity: "payment", amount: plans.get(o.plan!)!.price_cents, currency: "INR", status: "failed",
      method: "upi", captured: false, notes: [], error_description: "mandate debit declined", created_at: Math.floor(now / 1000) };
    await rzpWebhook("payment.failed", { payment: { entity: failed }, subscription: { entity: { id: o.rzpSubId, entity: "subscription", status: "pending" } } });
    unsure(o, 2);
    return "debit failed";
  }
  const charge = await fake("/__control/razorpay/subscriptions/charge", { subscription_id: o.rzpSubId, amount: plans.get(o.plan!)!.price_cents, payment_id: simId("pay") });
  const payment = charge.payment as Json;
  counts.payments++;
  counts.renewals++;
  expectApplied.push(payment.id as string);
  o.payments.push({ id: payment.id as string, provider: "razorpay", amount: payment.amount as number, captureAt: now });
  modelPaid(o, o.plan!, "renewal");
  await deliver(o, () => rzpWebhook("subscription.charged", { subscription: { entity: charge.subscription }, payment: { entity: payment } }), { losable: true });
  return "debited";
}

async function changePlan(o: Org, code: string) {
  const r = await asOwner(o, async (tx) => {
    const [{ r }] = await tx`select public.change_plan(${o.id}, ${code}) as r`;
    return r as Json;
  }).catch((e) => ({ error: (e as Error).message }) as Json);
  if (r.error) return `change_plan refused: ${r.error}`;
  if (r.method === "scheduled") {
    o.pendingPlan = code;
    return "downgrade scheduled";
  }
  if (r.method === "immediate") {
    const before = modelTier(o, now);
    o.plan = code;
    o.periodEnd = addInterval(now, plans.get(code)!.interval);
    unsure(o, 0.5, before);
    return "switched";
  }
  if (r.method === "prorated_order") {
    if (o.stripeSubId) {
      // Stripe charges it on the subscription (provider-sync: invoice item, price switch, invoice
      // paid); its invoice.paid is the payment (stripePump).
      const [order] = await sql`select receipt from public.orders where id = ${r.order_id as string}`;
      o.stripeUpgrade = { code, receipt: order.receipt };
      unsure(o, 2, tierOf(code));
      // pg_cron runs provider-sync every minute: Stripe charges the order within its quote's
      // 30 minutes (the day's worker rounds come hours later).
      await advance(1);
      await worker("provider-sync");
      await stripePump();
      return `upgrade order ${order.receipt}: ${o.stripeUpgrade ? "not charged yet" : "charged by Stripe"}`;
    }
    if (flags.stripe && chance(0.25)) return await payWithStripe(o, { order_id: r.order_id as string }, "upgrade", code);
    if (o.provider === "payu" || !flags.razorpaySubscriptions || chance(0.5)) {
      return await payWithPayu(o, { order_id: r.order_id as string }, "upgrade", code);
    }
    return await payRazorpayOrder(o, { order_id: r.order_id as string }, "upgrade", code);
  }
  if (r.method === "cancel_and_resubscribe") {
    // docs/lifecycle.md: the mandate is cancelled at cycle end (provider-sync), our subscription
    // ends at the period end, and the new plan is bought through checkout (no proration).
    o.cancelAtEnd = true;
    o.pendingPlan = null;
    o.resubscribe = code;
    unsure(o, 0.5);
    return `cancel and resubscribe to ${code}`;
  }
  return `change_plan: ${r.method}`;
}

/**
 * A one-time Razorpay order (a plan without a Razorpay plan id, a renewal of one, or an upgrade
 * order): checkout, the payment at the fake, razorpay-verify from the browser (sometimes the
 * browser never comes back), payment.captured.
 */
async function payRazorpayOrder(o: Org, what: { plan_code?: string; order_id?: string; credit_pack_code?: string }, kind: PaidKind, code: string) {
  const t = await token(o.owner);
  const res = await checkout(o, "razorpay", what, t);
  if (res.status !== 200) return `checkout ${res.status} ${res.body.code}`;
  if (res.free && kind !== "pack") return paidFree(o, res.body, kind, code, "razorpay");
  await advance(int(1, 4));
  const payId = simId("pay");
  const [payment] = (await fake("/__control/razorpay/payments", {
    id: payId, amount: res.body.amount, order_id: res.body.order_id, created_at: Math.floor(now / 1000),
  })).payments as Json[];
  counts.payments++;
  if (kind === "renewal") counts.renewals++;
  expectApplied.push(payId);
  if (kind === "pack") o.packs.push({ id: payId, provider: "razorpay" });
  else {
    o.payments.push({ id: payId, provider: "razorpay", amount: payment.amount as number, captureAt: now });
    o.provider ??= "razorpay";
    modelPaid(o, code, kind);
  }
  if (kind !== "upgrade" && chance(0.7)) {
    const verify = await call("razorpay-verify", {
      billing_order_id: res.body.billing_order_id, razorpay_payment_id: payId,
      razorpay_signature: createHmac("sha256", env("RAZORPAY_KEY_SECRET")).update(`${res.body.order_id}|${payId}`).digest("hex"),
    }, { token: t });
    if (verify.status !== 200) return `verify ${verify.status} ${JSON.stringify(verify.body)}`;
  }
  await deliver(o, () => rzpWebhook("payment.captured", { payment: { entity: payment } }), { losable: true });
  return kind === "upgrade" ? "upgraded" : "paid (one-time order)";
}
/** What a checkout buys: a plan's first period, its renewal, an upgrade, or a credit pack. */
type PaidKind = "new" | "renewal" | "upgrade" | "pack";

/** A credit pack bought through checkout, with PayU, a one-time Razorpay order or a Stripe payment. */
async function buyPack(o: Org) {
  const code = pick(["credits_1000", "credits_5000"]);
  if (flags.stripe && chance(0.33)) return `pack ${code} on Stripe: ${await payWithStripe(o, { credit_pack_code: code }, "pack", code)}`;
  const useRzp = !flags.payu || chance(0.5);
  return useRzp
    ? `pack ${code} on Razorpay: ${await payRazorpayOrder(o, { credit_pack_code: code }, "pack", code)}`
    : `pack ${code} on PayU: ${await payWithPayu(o, { credit_pack_code: code }, "pack", code)}`;
}

/** An operator refunds a credit pack, in full or in part: the unspent share of its credits goes. */
async function refundPack(o: Org) {
  const full = chance(0.5);
  const refused = await queueOperatorRefund(pick(o.packs), full, "pack refund");
  return refused ?? (full ? "pack refund queued (full)" : "pack refund queued (partial)");
}
/**
 * An operator refunds payment p in full or in part (billing.operator_refund; provider-sync carries
 * it out): null when queued, else why not.
 */
async function queueOperatorRefund(p: { id: string; provider: string }, full: boolean, what: string) {
  const [pe] = await sql`select id, amount_cents::int from public.payment_events
    where provider = ${p.provider} and provider_payment_id = ${p.id} and status = 'captured'`;
  if (!pe) return `${what}: not recorded yet`;
  const amount = full ? null : Math.max(100, Math.floor(pe.amount_cents * (0.1 + 0.4 * random())));
  try {
    await sql`select billing.operator_refund(${pe.id}, ${amount}, ${`simulated ${full ? "full" : "partial"} ${what}`})`;
  } catch (e) {
    return `${what} refused: ${(e as Error).message}`;
  }
  refundAllowed.push(p.id);
  counts.refunds++;
  return null;
}
async function operatorRefund(o: Org, full: boolean) {
  const p = o.payments[o.payments.length - 1];
  const refused = await queueOperatorRefund(p, full, "refund");
  if (refused) return refused;
  if (full) modelTakeBack(o, p);
  return full ? "full refund queued" : "partial refund queued";
}

/**
 * A refund made in the provider's dashboard: Razorpay's (the refund at the fake, then
 * refund.processed) or Stripe's (the refund at the fake, refund.created and charge.refunded).
 */
async function dashboardRefund(o: Org) {
  const p = [...o.payments].reverse().find((x) => x.provider === "razorpay" || x.provider === "stripe");
  if (!p) return "no Razorpay or Stripe payment";
  const amount = Math.max(100, Math.floor(p.amount * 0.2));
  if (p.provider === "stripe") {
    const res = await fetch(`${fakes}/__control/stripe/refunds`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ payment_intent: p.id, amount }),
    });
    const made = await res.json();
    if (!res.ok) return `refused: ${JSON.stringify(made)}`;
    refundAllowed.push(p.id);
    counts.refunds++;
    // reconcile's refund pass lists the refunds of the last 30 days' payments (as for Razorpay).
    await stripeDeliver(o, made.events as Json[], { losable: now - p.captureAt < 25 * DAY });
    return "Stripe dashboard refund";
  }
  const res = await fetch(`${env("RAZORPAY_API_BASE")}/payments/${p.id}/refund`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Basic ${btoa(`${env("RAZORPAY_KEY_ID")}:${env("RAZORPAY_KEY_SECRET")}`)}` },
    body: JSON.stringify({ amount }),
  });
  const refund = await res.json();
  if (!res.ok) return `refused: ${JSON.stringify(refund)}`;
  refundAllowed.push(p.id);
  counts.refunds++;
  // A lost refund.processed is found by reconcile's refund pass, which lists the refunds of the
  // payments of the last 30 days (docs/providers.md): lose it only for a payment within them.
  await deliver(o, () => rzpWebhook("refund.processed", { refund: { entity: refund } }), { losable: now - p.captureAt < 25 * DAY });
  return "dashboard refund";
}

/**
 * An operator's comp (billing.operator_grant_plan as postgres): the plan until a date, no payment.
 * docs/operations.md: a live Razorpay mandate is cancelled now through the outbox and no longer
 * followed; when the grant ends the customer subscribes again through checkout.
 */
async function operatorGrant(o: Org) {
  const code = pick(["pro_monthly", "basic_monthly"].filter((c) => plans.has(c)));
  const until = now + int(10, 45) * DAY;
  try {
    await sql`select billing.operator_grant_plan(${o.id}, ${code}, ${new Date(until).toISOString()}, 'simulated comp')`;
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  }
  const before = modelTier(o, now);
  const hadMandate = o.rzpSubId ?? o.stripeSubId;
  o.plan = code;
  o.stripeSubId = null;
  o.stripeRetry = null;
  o.stripeUpgrade = null;
  o.periodEnd = until;
  o.operatorAt = now;
  o.granted = true;
  o.rzpSubId = null;
  o.resubscribe = null;
  o.pendingPlan = null;
  o.cancelAtEnd = false;
  o.endedAt = null;
  o.trialEnd = null;
  unsure(o, 0.5, before);
  return `${code} until ${new Date(until).toISOString()}${hadMandate ? ` (mandate ${hadMandate} cancelled)` : ""}`;
}

/** An operator's extension of the live period (billing.operator_extend_period as postgres). */
async function operatorExtend(o: Org) {
  const days = int(1, 14);
  try {
    await sql`select billing.operator_extend_period(${o.id}, ${`${days} days`}::interval, 'simulated outage')`;
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  }
  o.periodEnd = o.periodEnd! + days * DAY;
  unsure(o, 0.5);
  return `${days} days`;
}

async function dispute(o: Org) {
  const p = [...o.payments].reverse().find((x) => x.provider === "razorpay" || x.provider === "stripe");
  if (!p) return "no Razorpay or Stripe payment";
  if (p.provider === "stripe") {
    // Stripe: charge.dispute.created (and funds_withdrawn), then closed won or lost days later.
    const opened = await fake("/__control/stripe/disputes", { payment_intent: p.id });
    await stripeDeliver(o, opened.events as Json[]);
    const id = (opened.dispute as Json).id;
    const lost = chance(0.4);
    o.disputeOpen = true;
    lateQueue.push({
      due: now + int(2, 6) * DAY,
      org: o,
      send: async () => {
        const closed = await fake("/__control/stripe/disputes", { dispute_id: id, status: lost ? "lost" : "won" });
        await stripeDeliver(o, closed.events as Json[]);
        o.disputeOpen = false;
        if (lost) modelTakeBack(o, p);
      },
    });
    return lost ? "Stripe dispute (to be lost)" : "Stripe dispute (to be won)";
  }
  const body = (status: string) => ({ dispute: { entity: { id: `disp_${p.id}`, entity: "dispute", payment_id: p.id, amount: p.amount, currency: "INR", status } } });
  await rzpWebhook("payment.dispute.created", body("open"));
  const lost = chance(0.4);
  o.disputeOpen = true;
  lateQueue.push({
    due: now + int(2, 6) * DAY,
    org: o,
    send: async () => {
      await rzpWebhook(`payment.dispute.${lost ? "lost" : "won"}`, body(lost ? "lost" : "won"));
      o.disputeOpen = false;
      if (lost) modelTakeBack(o, p);
    },
  });
  return lost ? "dispute (to be lost)" : "dispute (to be won)";
}

/**
 * Usage through usage-track with the secret key: a batch of 1 to 6 events (a quarter of them
 * repeating a request id of the batch), now and then delivered twice at once or sent again whole
 * (a retry): each request id must be counted once, whatever the copies answer.
 */
async function useQuota(o: Org) {
  const ids: string[] = [];
  const events: { organization_id: string; metric: string; quantity: number; request_id: string }[] = [];
  for (let i = 0; i < int(1, 6); i++) {
    const rid = ids.length && chance(0.25) ? pick(ids) : simId("req");
    ids.push(rid);
    events.push({ organization_id: o.id, metric: "ai_prompts", quantity: 1, request_id: rid });
  }
  const send = () => call("usage-track", { events }, { headers: { apikey: serviceKey } });
  const copies = chance(0.2) ? await Promise.all([send(), send()]) : [await send()];
  if (chance(0.2)) copies.push(await send());
  for (const res of copies) {
    const results = res.body.results as Json[] | undefined;
    if (res.status !== 200 || !results || results.some((r) => r.error)) {
      throw new Error(`usage-track answered ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    }
    results.forEach((r, i) =>
      usageCalls.push({ organization_id: o.id, metric: "ai_prompts", request_id: events[i].request_id, amount: 1,
        allowed: r.allowed as boolean, used: r.used as number, limit_amount: (r.limit_amount ?? null) as number | null,
        window_day: istDate(now) })
    );
  }
}

/**
 * Credits: a few charges (a quarter of them retries of an earlier request id, which must charge
 * nothing more, unless it was released: then it is charged anew), now and then a release of an
 * earlier charge, and a promotion that lapses.
 */
async function useCredits(o: Org) {
  const mine = creditCalls.filter((c) => c.organization_id === o.id);
  for (let i = 0; i < int(1, 4); i++) {
    const again = mine.length > 0 && chance(0.25) ? pick(mine) : null;
    const rid = again?.request_id ?? simId("cr");
    const quantity = again ? again.credits : int(1, 60);
    const [r] = await sql`select charged, credits::int from public.consume_credits(${o.id}, 'api_call_basic', ${quantity}, ${rid})`;
    if (again?.released) {
      // Sent again after its release: charged anew when the balance covers it.
      if (r.charged) again.released = false;
    } else if (again) {
      if (!r.charged || r.credits !== again.credits) throw new Error(`credits: the retry of ${rid} answered ${JSON.stringify(r)}, not its first charge`);
    } else if (r.charged) {
      const call = { organization_id: o.id, request_id: rid, credits: r.credits as number, released: false };
      creditCalls.push(call);
      mine.push(call);
    }
  }
  const open = mine.filter((c) => !c.released);
  if (open.length > 0 && chance(0.15)) {
    const c = pick(open);
    await sql`select * from public.release_credits(${o.id}, ${c.request_id})`;
    c.released = true;
  }
  if (chance(0.03)) {
    await sql`select billing.operator_grant_credits(${o.id}, ${int(50, 500)}, ${new Date(now + int(1, 40) * DAY)},
                'simulated promotion', 'promotion')`;
  }
}

/** One organization's day: at most one decision, drawn from what its state allows. */
async function live(o: Org): Promise<string | null> {
  const tier = modelTier(o, now);
  const live = o.plan !== null && o.periodEnd !== null && now < o.periodEnd + GRACE && o.endedAt === null;
  if (flags.usage && chance(0.4)) await useQuota(o);
  if (flags.credits && chance(0.4)) await useCredits(o);
  if (flags.credits && chance(0.02)) return await buyPack(o);
  if (flags.credits && flags.refunds && o.packs.length > 0 && chance(0.01)) return await refundPack(o);
  if (o.disputeOpen) return null;
  if (o.resubscribe && o.periodEnd !== null && now >= o.periodEnd && o.endedAt === null) {
    const code = o.resubscribe;
    o.rzpSubId = null;
    const what = await subscribeRazorpay(o, code);
    if (what === "subscribed" || what.startsWith("paid")) o.resubscribe = null;
    return `resubscribe ${code} on Razorpay: ${what}`;
  }
  if (!live && !(o.trialEnd && now < o.trialEnd)) {
    // The subscription is over: a Razorpay mandate ended with it (cancelled at the cycle end, or by
    // the expiry), so nothing debits it any more; a new subscription comes through checkout. A
    // Stripe subscription past its grace is Stripe's to end (stripeCycle), not the model's.
    o.rzpSubId = null;
    if (o.stripeSubId) {
      const what = o.stripeRetry && now < o.stripeRetry.at ? null : await stripeCycle(o);
      return what ? `stripe: ${what}` : null;
    }
    if (o.payments.length > 0 && o.endedAt !== null) return null; // refunded or charged back: gone for good
    if (!chance(o.payments.length ? 0.05 : 0.25)) return null;
    const code = pick(paidPlans);
    if (flags.trials && !o.everTrialed && plans.get(code)!.trial_days > 0 && chance(0.3)) {
      const r = await asOwner(o, async (tx) => (await tx`select public.start_trial(${o.id}, ${code}) as r`)[0].r as Json)
        .catch((e) => ({ error: (e as Error).message }) as Json);
      o.everTrialed = true;
      if (r.error) return `trial refused: ${r.error}`;
      o.trialEnd = now + plans.get(code)!.trial_days * DAY;
      o.trialPlan = code;
      unsure(o, 0.5, "free");
      return `trial ${code}`;
    }
    // A Stripe subscription is for a customer with no trial running (Stripe would bill from now).
    if (flags.stripe && (!flags.payu && !flags.razorpaySubscriptions || chance(0.33))) {
      return `stripe ${o.trialPlan ?? code}: ${await payWithStripe(o, { plan_code: o.trialPlan ?? code }, o.payments.length ? "renewal" : "new", o.trialPlan ?? code)}`;
    }
    const useRzp = flags.razorpaySubscriptions && (!flags.payu || chance(0.5));
    if (useRzp && o.payments.length === 0) return `razorpay ${code}: ${await subscribeRazorpay(o, o.trialPlan ?? code)}`;
    if (!flags.payu) return null;
    return `payu ${o.trialPlan ?? code}: ${await payWithPayu(o, { plan_code: o.trialPlan ?? code }, o.payments.length ? "renewal" : "new", o.trialPlan ?? code)}`;
  }
  if (o.trialEnd && now < o.trialEnd && o.periodEnd === null) {
    if (!chance(0.2)) return null;
    if (flags.razorpaySubscriptions && (!flags.payu || chance(0.5))) return `razorpay during trial: ${await subscribeRazorpay(o, o.trialPlan!)}`;
    if (!flags.payu) return null;
    return `payu during trial: ${await payWithPayu(o, { plan_code: o.trialPlan! }, "new", o.trialPlan!)}`;
  }
  // A paid subscription runs (or is in grace).
  if (o.rzpSubId && !o.cancelAtEnd && o.periodEnd !== null && now >= o.periodEnd) {
    return `mandate debit: ${await mandateDebit(o)}`;
  }
  if (o.stripeSubId && o.periodEnd !== null && (o.stripeRetry ? now >= o.stripeRetry.at : now >= o.periodEnd)) {
    const what = await stripeCycle(o);
    if (what) return `stripe: ${what}`;
  }
  if (o.stripeSubId && (o.stripeRetry || o.stripeUpgrade)) return null;
  const billsItself = !o.rzpSubId && !o.stripeSubId && !o.granted; // PayU, a one-time Razorpay order: renewed through checkout
  if (billsItself && !o.cancelAtEnd && !o.neverRenews && o.periodEnd !== null && now >= o.periodEnd - 2 * DAY && chance(0.45)) {
    const code = o.pendingPlan && now >= o.periodEnd ? o.pendingPlan : o.plan!;
    const last = o.payments[o.payments.length - 1]?.provider ?? "payu";
    if ((last === "razorpay" || !flags.payu) && !rzpRecurring(code)) {
      return `razorpay order renewal ${code}: ${await payRazorpayOrder(o, { plan_code: code }, "renewal", code)}`;
    }
    if (!flags.payu) return null;
    return `payu renewal ${code}: ${await payWithPayu(o, { plan_code: code }, "renewal", code)}`;
  }
  const r = random();
  if (flags.refunds && r < 0.006) return `operator refund: ${await operatorRefund(o, chance(0.4))}`;
  if (flags.refunds && r < 0.01 && o.provider === "razorpay") return `dashboard refund: ${await dashboardRefund(o)}`;
  if (flags.refunds && r < 0.01 && o.provider === "stripe") return `dashboard refund: ${await dashboardRefund(o)}`;
  if (flags.disputes && r < 0.013 && (o.provider === "razorpay" || o.provider === "stripe")) return await dispute(o);
  if (flags.cancels && r < 0.02 && o.stripeSubId && o.periodEnd !== null && now < o.periodEnd - DAY) return `stripe: ${await stripePortal(o)}`;
  if (flags.cancels && r < 0.03 && !o.cancelAtEnd) {
    const res = await asOwner(o, async (tx) => (await tx`select public.cancel_subscription(${o.id}, true) as r`)[0].r as Json)
      .catch((e) => ({ error: (e as Error).message }) as Json);
    if (res.error) return `cancel refused: ${res.error}`;
    o.cancelAtEnd = true;
    // A cancel drops a scheduled downgrade here; a Stripe subscription's price, already switched
    // for it, is not switched back, so after a resume Stripe renews at it and the renewal moves
    // our subscription to that plan (the mandate's).
    if (!o.stripeSubId) o.pendingPlan = null;
    unsure(o, 0.5);
    return "cancel at period end";
  }
  if (flags.cancels && r < 0.1 && o.cancelAtEnd && (o.provider === "payu" || o.stripeSubId) && o.periodEnd !== null && now < o.periodEnd - DAY) {
    const res = await asOwner(o, async (tx) => (await tx`select public.resume_subscription(${o.id}) as r`)[0].r as Json)
      .catch((e) => ({ error: (e as Error).message }) as Json);
    if (res.error) return `resume refused: ${res.error}`;
    o.cancelAtEnd = false;
    return "resumed";
  }
  const changeable = o.rzpSubId ? flags.razorpayPlanChanges : !o.granted;
  if (flags.grants && r < 0.018 && now >= o.unsureUntil && !lateQueue.some((d) => d.org === o)) return `operator grant: ${await operatorGrant(o)}`;
  if (flags.grants && r < 0.022 && now < (o.periodEnd ?? 0) - DAY && !(o.trialEnd && now < o.trialEnd)) return `operator extension: ${await operatorExtend(o)}`;
  if (flags.upgrades && r < 0.13 && tier === "basic" && o.periodEnd !== null && now < o.periodEnd - DAY && !o.cancelAtEnd && changeable) {
    const to = o.plan!.endsWith("yearly") ? "pro_yearly" : pick(["pro_monthly", "pro_yearly"]);
    return `upgrade to ${to}: ${await changePlan(o, to)}`;
  }
  if (flags.downgrades && r < 0.15 && tier === "pro" && !o.pendingPlan && o.periodEnd !== null && now < o.periodEnd - DAY && !o.cancelAtEnd && changeable) {
    return `downgrade: ${await changePlan(o, o.plan!.replace("pro_", "basic_"))}`;
  }
  return null;
}


// -------------------------------------------------------------------------------------------------
// Stripe, as Stripe drives it: Checkout (the buyer pays at the fake), renewals the fake makes at the
// subscription's period end (sometimes failing first), changes in the dashboard or the customer
// portal, and every event delivered signed to stripe-webhook through the functions server (the
// fake's /__control/stripe/deliver), with the same faults as the other providers' webhooks.

const stripeWebhookUrl = `${env("SUPABASE_URL")}/functions/v1/stripe-webhook`;
/** Events delivered (or deliberately lost): the rest, made by provider-sync's calls, are delivered after each round. */
const stripeHandled = new Set<string>();
/** Stripe customer -> organization, for the events of provider-sync's calls. */
const stripeCustomers = new Map<string, Org>();
/** How many of the fake's events (oldest first) the last look for events Stripe made on our calls saw. */
let stripeEventsSeen = 0;

/** A GET of Stripe's API at the fake, with the secret key (what the adapter reads too). */
async function stripeGet(path: string): Promise<Json> {
  const res = await fetch(`${env("STRIPE_API_BASE")}${path}`, { headers: { authorization: `Bearer ${env("STRIPE_SECRET_KEY")}` } });
  const body = await res.json();
  if (!res.ok) throw new Error(`stripe GET ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/**
 * Stripe's delivery of events to stripe-webhook (the fake signs them); an answer other than 2xx is
 * logged and delivered again the next day, up to three times, as Stripe retries.
 */
async function stripeSend(ids: string[], options: Json = {}, attempt = 1): Promise<void> {
  if (ids.length === 0) return;
  const answer = await fake("/__control/stripe/deliver", { event_ids: ids, url: stripeWebhookUrl, ...options });
  const failed = (answer.deliveries as Json[]).filter((d) => Number(d.status) >= 300);
  for (const d of failed) log.push(`day ${day}: stripe ${d.type} answered ${d.status} ${JSON.stringify(d.body).slice(0, 200)}`);
  const again = [...new Set(failed.map((d) => String(d.event_id)))];
  if (again.length > 0 && attempt <= 3) lateQueue.push({ due: now + DAY, send: () => stripeSend(again, {}, attempt + 1) });
}

/**
 * Delivers Stripe's events of one change, with the webhook faults: each event twice, newest first
 * in one second, late (a later day, so out of order with what follows), or lost (`losable`: what
 * reconcile finds: a checkout session, a renewal of a stale subscription, a refund).
 */
async function stripeDeliver(o: Org | undefined, events: Json[] | undefined, { losable = false, punctual = false } = {}) {
  const ids = (events ?? []).map((e) => String(e.id)).filter((id) => !stripeHandled.has(id));
  for (const id of ids) stripeHandled.add(id);
  if (ids.length === 0) return;
  if (flags.webhookFaults && chance(flags.faultRate)) {
    counts.faults++;
    const r = random();
    if (r < 0.2) return await stripeSend(ids, { duplicate: true });
    if (r < 0.4) {
      if (o) unsure(o, 1);
      return await stripeSend(ids, { reverse: true, same_second: true, duplicate: chance(0.5) });
    }
    if (punctual) return await stripeSend(ids, { duplicate: true, reverse: true });
    if (r < 0.7 || !losable) {
      lateQueue.push({ due: now + int(1, MAX_LATE_DAYS) * DAY, send: () => stripeSend(ids), org: o });
      if (o) unsure(o, 4);
      return;
    }
    if (o) unsure(o, 2.5);
    log.push(`day ${day}${o ? ` org ${o.n}` : ""}: stripe events lost: ${(events ?? []).map((e) => e.type).join(", ")}`);
    return;
  }
  await stripeSend(ids);
}

/**
 * The events Stripe made on our own calls (provider-sync's cancels, resumes, plan changes,
 * refunds), delivered as Stripe would; an upgrade's invoice paid is the payment the model waited for.
 */
async function stripePump() {
  if (!flags.stripe) return;
  // The fake's own ledger (not its API, which the provider faults of the round may be failing).
  const events = (await fake("/__control/stripe/state")).events as Json[];
  const fresh = events.slice(stripeEventsSeen).filter((e) => !stripeHandled.has(String(e.id)));
  stripeEventsSeen = events.length;
  const byOrg = new Map<Org | undefined, Json[]>();
  const upgraded = new Set<Org>();
  for (const e of fresh) {
    const object = (e.data as Json).object as Json;
    const o = stripeCustomers.get(String(object.customer ?? "")) ??
      orgs.find((x) => x.payments.some((p) => p.id === object.payment_intent));
    byOrg.set(o, [...(byOrg.get(o) ?? []), e]);
    if (e.type === "invoice.paid" && o?.stripeUpgrade && (object.metadata as Json)?.order_ref === o.stripeUpgrade.receipt) {
      const pi = ((((object.payments as Json).data as Json[])[0]).payment as Json).payment_intent as string;
      counts.payments++;
      counts.stripe++;
      expectApplied.push(pi);
      o.payments.push({ id: pi, provider: "stripe", amount: Number(object.amount_paid), captureAt: now });
      modelPaid(o, o.stripeUpgrade.code, "upgrade");
      log.push(`day ${day} org ${o.n}: upgrade to ${o.stripeUpgrade.code} charged by Stripe (${object.amount_paid})`);
      o.stripeUpgrade = null;
      upgraded.add(o);
    }
  }
  // An upgrade's invoice.paid delivered days late starts the upgraded period at its delivery
  // (ours then ends days after Stripe's next charge): its events come duplicated or reversed, not late.
  for (const [o, events] of byOrg) await stripeDeliver(o, events, { punctual: o !== undefined && upgraded.has(o) });
}

/** Stripe Checkout: the session for our order, the buyer pays at the fake, Stripe's events. */
async function payWithStripe(o: Org, what: { plan_code?: string; order_id?: string; credit_pack_code?: string }, kind: PaidKind, code: string) {
  // A plan is a Stripe subscription (every seed plan has a Stripe price id): like a Razorpay
  // subscription it is priced as a provider subscription (GST carved out of the price), which
  // preview_checkout, knowing no provider, cannot quote.
  const res = await checkout(o, "stripe", what, await token(o.owner), { recurring: what.plan_code !== undefined });
  if (res.status !== 200) return `checkout ${res.status} ${res.body.code}`;
  if (res.free && kind !== "pack") return paidFree(o, res.body, kind, code, "stripe");
  await advance(int(1, 4));
  const done = await fake("/__control/stripe/checkout/complete", { session_id: res.body.session_id });
  const session = done.session as Json;
  stripeCustomers.set(String(session.customer), o);
  let pi = session.payment_intent as string | null;
  let amount = Number(session.amount_total);
  let sub: Json | null = null;
  if (session.mode === "subscription") {
    const invoice = await stripeGet(`/v1/invoices/${session.invoice}`);
    pi = (((invoice.payments as Json).data as Json[])[0].payment as Json).payment_intent as string;
    amount = Number(invoice.amount_paid);
    sub = await stripeGet(`/v1/subscriptions/${session.subscription}`);
  }
  counts.payments++;
  counts.stripe++;
  if (kind === "renewal") counts.renewals++;
  expectApplied.push(pi!);
  if (kind === "pack") o.packs.push({ id: pi!, provider: "stripe" });
  else {
    o.payments.push({ id: pi!, provider: "stripe", amount, captureAt: now });
    o.provider ??= "stripe";
    modelPaid(o, code, kind);
    if (sub) {
      // Stripe's period (its own calendar) is what it renews on and what our subscription follows.
      o.stripeSubId = sub.id as string;
      o.stripeRetry = null;
      o.provider = "stripe";
      o.periodEnd = Number((((sub.items as Json).data as Json[])[0]).current_period_end) * 1000;
      o.payments[o.payments.length - 1].spanEnd = o.periodEnd;
    }
  }
  await stripeDeliver(o, done.events as Json[], { losable: true });
  return sub ? "subscribed" : "paid (one-time payment)";
}

/**
 * Stripe renews the subscription at its period end (the fake's next invoice of the cycle): paid
 * (the period moves on from the last one's end), or failed (past_due; Stripe retries a day or two
 * later, and either that retry pays or, never paid, Stripe cancels it after its retries). A
 * downgrade scheduled at Stripe (the price switched by provider-sync) is what the renewal charges.
 */
async function stripeRenew(o: Org, outcome: "paid" | "failed") {
  const res = await fake("/__control/stripe/subscriptions/renew", { subscription_id: o.stripeSubId, outcome });
  const invoice = res.invoice as Json;
  if (outcome === "failed") {
    counts.stripeFailed++;
    await stripeDeliver(o, res.events as Json[]);
    return invoice;
  }
  const pi = (((invoice.payments as Json).data as Json[])[0].payment as Json).payment_intent as string;
  const period = (((invoice.lines as Json).data as Json[])[0]).period as Json;
  counts.payments++;
  counts.renewals++;
  counts.stripe++;
  counts.stripeRenewals++;
  expectApplied.push(pi);
  o.payments.push({ id: pi, provider: "stripe", amount: Number(invoice.amount_paid), captureAt: now });
  modelPaid(o, o.pendingPlan ?? o.plan!, "renewal");
  // Stripe's invoice line is the period while within two days of ours (its calendar); further off
  // (an operator extended ours) ours stands, as the product decides.
  if (Math.abs(Number(period.end) * 1000 - o.periodEnd!) <= 2 * DAY) o.periodEnd = Number(period.end) * 1000;
  const paid = o.payments[o.payments.length - 1];
  paid.spanEnd = o.periodEnd!;
  o.stripeRetry = null;
  await stripeDeliver(o, res.events as Json[], { losable: true });
  return invoice;
}

/** A Stripe subscription whose period ended: renewed, failed, retried, given up, or ended as scheduled. */
/** null: Stripe's own period has not ended (nothing happens at Stripe yet). */
async function stripeCycle(o: Org): Promise<string | null> {
  const sub = await stripeGet(`/v1/subscriptions/${o.stripeSubId}`);
  if (sub.status === "canceled") {
    // Ended at Stripe already (cancelled now by provider-sync: a grant, a refund): nothing renews.
    const id = o.stripeSubId;
    o.stripeSubId = null;
    o.stripeRetry = null;
    return `${id} was canceled at Stripe`;
  }
  const stripeEnd = Number((((sub.items as Json).data as Json[])[0]).current_period_end) * 1000;
  if (!o.stripeRetry && stripeEnd > now) {
    // Stripe renews on its own period end, not the model's (a refund or lost dispute took the
    // model's back; an extension moved ours on): nothing happens at Stripe before it.
    return null;
  }
  if (o.stripeRetry?.final) {
    // Stripe's retries ran out: unpaid, then canceled.
    const unpaid = await fake("/__control/stripe/subscriptions/update", { subscription_id: o.stripeSubId, status: "unpaid" });
    const canceled = await fake("/__control/stripe/subscriptions/update", { subscription_id: o.stripeSubId, status: "canceled" });
    await stripeDeliver(o, [...(unpaid.events as Json[]), ...(canceled.events as Json[])]);
    o.stripeSubId = null;
    o.stripeRetry = null;
    unsure(o, 0.5);
    return "never paid: Stripe canceled it after its retries";
  }
  if (o.stripeRetry) {
    if (o.stripeRetry.pays) {
      await stripeRenew(o, "paid");
      return "Stripe's retry paid the renewal";
    }
    o.stripeRetry = { at: now + int(2, 4) * DAY, pays: false, final: true };
    await stripeRenew(o, "failed");
    return "Stripe's retry failed again";
  }
  if (o.cancelAtEnd) {
    // Cancelled at the period end (ours through provider-sync, or the portal's): Stripe ends it now.
    const canceled = await fake("/__control/stripe/subscriptions/update", { subscription_id: o.stripeSubId, status: "canceled" });
    await stripeDeliver(o, canceled.events as Json[]);
    o.stripeSubId = null;
    return "ended at the period end (customer.subscription.deleted)";
  }
  if (chance(0.15)) {
    counts.faults++;
    o.stripeRetry = { at: now + int(1, 2) * DAY, pays: chance(0.6), final: false };
    await stripeRenew(o, "failed");
    unsure(o, 3);
    return `renewal failed (past_due; ${o.stripeRetry.pays ? "the retry will pay" : "never paid"})`;
  }
  const invoice = await stripeRenew(o, "paid");
  return `renewed (${invoice.amount_paid})`;
}

/** The customer cancels at the period end, or takes it back, in Stripe's customer portal. */
async function stripePortal(o: Org) {
  const flag = !o.cancelAtEnd;
  const res = await fake("/__control/stripe/subscriptions/update", { subscription_id: o.stripeSubId, cancel_at_period_end: flag });
  // Stripe's price, switched for a scheduled downgrade, stays what its next renewal charges.
  o.cancelAtEnd = flag;
  unsure(o, 0.5);
  await stripeDeliver(o, res.events as Json[]);
  return flag ? "cancel at period end in Stripe's portal" : "resumed in Stripe's portal";
}

// -------------------------------------------------------------------------------------------------
// Jobs and workers

const JOBS = [
  "billing.job_expire()", "billing.job_renewal_reminders()", "billing.job_dunning()", "billing.job_purge()",
  "billing.job_revenue_analytics()", "billing.job_ai_release_stale_reservations()", "billing.job_ai_purge_cache()",
  "billing.job_expire_credits()",
];
async function runJobs() {
  for (const j of JOBS) await sql.unsafe(`select ${j}`);
}

async function worker(name: string) {
  const r = await call(name, {}, { token: serviceKey });
  if (r.status !== 200) throw new Error(`${name} answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function providerFaults() {
  if (!flags.providerFaults || !chance(flags.faultRate)) return;
  counts.faults++;
  const status = pick([500, 502, 503, 429]);
  const provider = pick(flags.stripe ? ["razorpay", "payu", "stripe"] : ["razorpay", "payu"]);
  // Stripe sometimes does the work and the answer is lost (fail_after): the retry must look it up.
  const after = provider === "stripe" && status !== 429 && chance(0.5) ? { fail_after: true } : {};
  await fake(`/__control/${provider}`, { fail_status: status, fail_count: int(1, 3), fail_retry_after: status === 429 ? 1 : null, ...after });
}

async function emailFaults() {
  if (!flags.emailFaults || !chance(flags.faultRate)) return;
  counts.faults++;
  await fake("/__control/email", { fail_status: pick([500, 503, 429]), fail_count: int(1, 2) });
}

/**
 * The database connection of provider-sync dropped after the provider's call, before the outcome
 * is recorded: the refund action's order is held locked, provider-sync runs, and once the fake
 * has answered the refund the worker's backend (waiting for that lock) is terminated.
 */
async function dropWorkerConnection() {
  if (!flags.crashFaults || !chance(flags.faultRate)) return;
  const [action] = await sql`select a.id, pe.order_id from billing.provider_actions a
    join public.payment_events pe on pe.id = a.payment_event_id
    where a.kind = 'refund' and a.state = 'pending' and a.next_attempt_at <= billing.now() and a.provider in ('razorpay', 'payu')
    order by a.created_at, a.seq limit 1`;
  if (!action) return;
  counts.faults++;
  const callsNow = async () =>
    ((await fake("/__control/calls")).calls as Json[]).filter((c) => c.route === "razorpay.payments.refund" || c.route === "payu.cancel_refund_transaction").length;
  const before = await callsNow();
  let terminated = 0;
  let sync: Promise<unknown> = Promise.resolve();
  await sql.begin(async (tx) => {
    await tx`select 1 from public.orders where id = ${action.order_id} for update`;
    sync = worker("provider-sync").catch(() => null);
    // Waits on events, not for fixed whiles (a loaded machine is slower, a replay must not differ):
    // the refund call at the fake, then the worker blocked behind the lock, unless it ends first.
    await until(async () => (await callsNow()) !== before, sync);
    await until(async () => {
      const blocked = await sql`select pid from pg_stat_activity where datname = current_database()
        and wait_event_type = 'Lock' and pid <> pg_backend_pid()`;
      for (const b of blocked) {
        await sql`select pg_terminate_backend(${b.pid})`;
        terminated++;
      }
      return terminated > 0;
    }, sync);
    await tx`select 1`;
  });
  // The rest of that worker's batch runs to its end before the day goes on.
  await sync;
  log.push(`day ${day}: provider-sync's connection dropped while applying refund action ${action.id} (${terminated} backend(s) terminated)`);
}

/**
 * Cancels the statement of every backend waiting for a lock (the simulation's, in these faults);
 * how many. A cancel, not a terminate: the worker's statement fails as the dead process's would
 * never have run, and its connection stays usable (terminating a pooled connection while the
 * client writes to it can crash the whole functions server: see docs/simulator.md).
 */
async function cancelLockWaiters(): Promise<number> {
  const blocked = await sql`select pid from pg_stat_activity where datname = current_database()
    and wait_event_type = 'Lock' and pid <> pg_backend_pid()`;
  for (const b of blocked) await sql`select pg_cancel_backend(${b.pid})`;
  return blocked.length;
}

/**
 * While `run` (a worker's HTTP call) is under way, hold `lock` in a transaction and terminate every
 * backend that waits for it (its statement is cancelled), until the call returns: whatever the worker tries to write behind
 * that lock never happens, as if its process had died there. Returns how many backends died.
 */
async function killWhileHeld(lock: (tx: postgres.TransactionSql) => Promise<unknown>, run: Promise<unknown>): Promise<number> {
  let finished = false;
  const done = run.then(() => (finished = true), () => (finished = true));
  let terminated = 0;
  await sql.begin(async (tx) => {
    await lock(tx);
    while (!finished) {
      terminated += await cancelLockWaiters();
      await sleep(25);
    }
  });
  await done;
  return terminated;
}

/** Until the fake Razorpay and PayU have answered every call they received (a slowed answer is on its way). */
async function providerCallsAnswered() {
  for (let i = 0; i < 600; i++) {
    if (((await fake("/__control/calls")).calls as Json[]).every((c) => c.status !== null)) return;
    await sleep(25);
  }
  throw new Error("the fake providers left a call unanswered for 15 s");
}

/**
 * Polls `done` every 25 ms until it is true or `running` (a worker's call) has settled; true when
 * `done` was. Fails the simulation after 60 s: a fault's wait must end the same way in a replay,
 * never by a timeout that a slow machine would hit and a fast one would not.
 */
async function until(done: () => Promise<boolean>, running: Promise<unknown>): Promise<boolean> {
  let settled = false;
  running.then(() => (settled = true), () => (settled = true));
  for (let i = 0; i < 2400; i++) {
    if (await done()) return true;
    if (settled) return await done();
    await sleep(25);
  }
  throw new Error("a fault waited 60 s for a worker that neither got there nor ended");
}

const REFUND_ROUTES = ["razorpay.payments.refund", "payu.cancel_refund_transaction"];
const refundCalls = async () =>
  ((await fake("/__control/calls")).calls as Json[]).filter((c) => REFUND_ROUTES.includes(c.route as string)).length;

/**
 * provider-sync killed mid-action: a due refund action is claimed and sent to the provider (its
 * answer slowed down by the fake), and once the fake has the call the worker "dies": its writes
 * behind the action's row (and, half the time, the order's, where the refund is applied) never
 * happen. The action is left `running` with its lease; a later round, past the lease, claims it
 * again and must ask the provider first (docs/operations.md), not refund twice.
 */
async function killProviderSync() {
  if (!flags.killFaults || !chance(flags.faultRate)) return;
  const [action] = await sql`select a.id, a.provider::text, pe.order_id from billing.provider_actions a
    join public.payment_events pe on pe.id = a.payment_event_id
    where a.kind = 'refund' and a.state = 'pending' and a.attempts = 0 and a.next_attempt_at <= billing.now()
      and a.provider in ('razorpay', 'payu')
    order by a.created_at, a.seq limit 1`;
  if (!action) return;
  counts.faults++;
  const beforeApply = chance(0.5);
  const before = await refundCalls();
  await fake(`/__control/${action.provider}`, { latency_ms: 1500 });
  const run = worker("provider-sync");
  await until(async () => (await refundCalls()) !== before, run);
  const terminated = await killWhileHeld(async (tx) => {
    await tx`select 1 from billing.provider_actions where id = ${action.id} for update`;
    if (beforeApply) await tx`select 1 from public.orders where id = ${action.order_id} for update`;
  }, run);
  await fake(`/__control/${action.provider}`, { latency_ms: 0 });
  const [after] = await sql`select state::text, attempts from billing.provider_actions where id = ${action.id}`;
  log.push(`day ${day}: provider-sync killed after the ${action.provider} refund call of action ${action.id}, ` +
    `${beforeApply ? "before" : "after"} applying it (${terminated} statement(s) cancelled; left ${after.state}, attempt ${after.attempts})`);
}

/**
 * notifications-send killed after the email API accepted an email (its answer slowed down by the
 * fake): the sender never records it, the lease runs out and the next round sends it again with
 * the same idempotency key. docs/notifications.md: Resend answers that key with the first email, so
 * the API is called twice for that notification (at_least_once) and the mailbox still holds one.
 */
async function killNotificationsSend() {
  if (!flags.killFaults || !chance(flags.faultRate)) return;
  const accepted = async () => ((await fake("/__control/email")).calls as Json[]).filter((c) => c.status === 200).map((c) => c.idempotency_key as string);
  const before = new Set(await accepted());
  await fake("/__control/email", { answer_delay_ms: 1500 });
  const run = worker("notifications-send");
  let found: string | undefined;
  await until(async () => (found = (await accepted()).find((k) => !before.has(k))) !== undefined, run);
  if (found === undefined) {
    await run.catch(() => null);
    await fake("/__control/email", { answer_delay_ms: 0 });
    return;
  }
  const key = found;
  counts.faults++;
  atLeastOnce.push(key);
  const terminated = await killWhileHeld((tx) => tx`select 1 from public.notifications where id = ${key} for update`, run);
  await fake("/__control/email", { answer_delay_ms: 0 });
  log.push(`day ${day}: notifications-send killed after the email API accepted notification ${key} (${terminated} statement(s) cancelled)`);
}

/**
 * A provider that answers after the client's timeout (the adapters wait 10 s): a refund the
 * provider carries out but whose answer never arrives, or a look-up of a capture that hangs
 * (reconcile, razorpay-verify) and fails.
 */
async function timeoutFaults() {
  if (!flags.timeoutFaults || !chance(flags.faultRate / 2)) return;
  const [action] = await sql`select a.id, a.provider::text from billing.provider_actions a
    where a.kind = 'refund' and a.state = 'pending' and a.next_attempt_at <= billing.now() and a.provider in ('razorpay', 'payu')
    order by a.created_at, a.seq limit 1`;
  counts.faults++;
  if (action && chance(0.6)) {
    await fake(`/__control/${action.provider}`, { latency_ms: 10_500 });
    const r = await worker("provider-sync").catch((e) => ({ error: String(e) }));
    await fake(`/__control/${action.provider}`, { latency_ms: 0 });
    // The provider finishes what it was asked: wait until the fake has answered every call (not a
    // fixed while, which a loaded machine could outrun), so the next step sees the refund made.
    await providerCallsAnswered();
    log.push(`day ${day}: ${action.provider} answered refund action ${action.id} after provider-sync's timeout: ${JSON.stringify(r).slice(0, 200)}`);
    return;
  }
  const provider = pick(["razorpay", "payu"]);
  await fake(`/__control/${provider}`, {
    fail_status: 504, fail_count: 1, fail_hang_ms: 10_500,
    fail_routes: provider === "razorpay" ? ["razorpay.orders.payments", "razorpay.payments.fetch", "razorpay.invoices.list"] : ["payu.verify_payment"],
  });
  log.push(`day ${day}: the next ${provider} capture look-up hangs past the client's timeout`);
}

async function workers() {
  await providerFaults();
  await emailFaults();
  await timeoutFaults();
  await dropWorkerConnection();
  await killProviderSync();
  await killNotificationsSend();
  for (let round = 0; round < 4; round++) {
    await worker("reconcile");
    const sync = await worker("provider-sync");
    await stripePump();
    const sent = await worker("notifications-send");
    if (sync.claimed === 0 && (sent.claimed ?? 0) === 0 && round > 0) break;
    await advance(61); // past the backoff of a retried call
  }
  await fake("/__control/razorpay", { reset: true });
  await fake("/__control/payu", { reset: true });
  // Only the failures: a reset of the fake Stripe would forget its customers, subscriptions and events.
  if (flags.stripe) await fake("/__control/stripe", { fail_status: null, fail_after: false, fail_routes: null });
  // Only the failures: the mailbox and the idempotency keys it saw stay (a reset would forget them).
  await fake("/__control/email", { fail_status: null, answer_delay_ms: 0 }).catch(() => {});
}

// -------------------------------------------------------------------------------------------------
// The snapshot and the checks

const ms = (t: unknown) => (t instanceof Date ? t.getTime() : Date.parse(String(t)));

async function snapshot(): Promise<Snapshot> {
  const ids = orgs.map((o) => o.id);
  const [payment_events, invoices, credit_notes, subscriptions, history, effective, [mrrRow], actions, notifications, usage_rows,
    credit_problems, credit_grants, credit_charges, credit_periods, pack_grants, redemptions, plan_orders] =
    await Promise.all([
      sql`select id, organization_id, provider::text, provider_payment_id, status::text, amount_cents::int, needs_refund,
            details ->> 'refund_id' as refund_id, details ->> 'captured_payment_event_id' as captured_payment_event_id
          from public.payment_events where organization_id = any(${ids})`,
      sql`select id, organization_id, invoice_number as number, financial_year::int, serial::int, total_cents::int from public.invoices`,
      sql`select id, organization_id, credit_note_number as number, financial_year::int, serial::int, total_cents::int, invoice_id
          from public.credit_notes`,
      sql`select s.id, s.organization_id, s.status::text, p.code as plan_code, s.plan_id,
            (extract(epoch from s.current_period_start) * 1000)::bigint::float8 as period_start_ms,
            (extract(epoch from s.current_period_end) * 1000)::bigint::float8 as period_end_ms from public.subscriptions s
          join public.billing_plans p on p.id = s.plan_id where s.organization_id = any(${ids})`,
      sql`select subscription_id, organization_id, action, new_status::text, new_plan_id, created_at
          from public.subscription_history where organization_id = any(${ids})`,
      sql`select o.id as organization_id, public.effective_tier(o.id) as tier,
            public.get_entitlements(o.id) ->> 'plan_code' as plan_code from public.organizations o where o.id = any(${ids})`,
      sql`select (billing.revenue_summary(${istDate(now)}::date) ->> 'mrr')::bigint as analytics,
            coalesce(sum(case when p.interval = 'year' then round(p.price_cents / 12.0) else p.price_cents end), 0)::bigint as subscriptions
          from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
          where s.status in ('active', 'past_due') and p.price_cents > 0`,
      sql`select id, organization_id, kind::text, state::text, attempts, max_attempts, last_error, created_at
          from billing.provider_actions where organization_id = any(${ids})`,
      sql`select id, organization_id, kind, case when sent_at is not null then 'sent' when failed_at is not null then 'failed' else 'pending' end as state,
            attempts, 10 as max_attempts, last_error, created_at from public.notifications where organization_id = any(${ids})`,
      sql`select organization_id, metric, (window_start at time zone 'Asia/Kolkata')::date::text as window_day, count::int
          from public.usage_quotas where window_unit = 'day' and organization_id = any(${ids})`,
      sql`select organization_id, grant_id, problem from billing.credit_ledger_problems() where organization_id = any(${ids})`,
      sql`select id, organization_id, source::text, amount::int, remaining::int, expires_at
          from public.credit_grants where organization_id = any(${ids})`,
      sql`select organization_id, request_id, charged::int from public.credit_charges
          where organization_id = any(${ids}) and request_id is not null`,
      // At most: a paid span's grants (they name the plan they were made for in their dedupe key,
      // period:<sub>:<start>:<plan>) add up to no more than the largest credits of those plans.
      // At least: an active subscription whose paid span covers now (after its trial, when paid
      // during one) has live plan credits of at least its plan's credits_per_period.
      sql`select s.organization_id, s.id as subscription_id, g.period_start::text,
            coalesce(sum(g.amount), 0)::int as granted,
            coalesce((select max((p.features ->> 'credits_per_period')::int) from public.billing_plans p
                      where p.id::text in (select split_part(x.dedupe_key, ':', 4) from public.credit_grants x
                                           where x.subscription_id = s.id and x.period_start = g.period_start)), 0) as most,
            false as current, 0 as per_period
          from public.credit_grants g
          join public.subscriptions s on s.id = g.subscription_id
          where g.source = 'subscription' and s.organization_id = any(${ids})
          group by s.organization_id, s.id, g.period_start
          union all
          select s.organization_id, s.id, 'now', coalesce((select sum(g.amount) from public.credit_grants g
            where g.subscription_id = s.id and g.source = 'subscription'
              and g.effective_from <= billing.now() and g.expires_at > billing.now()), 0)::int,
            2147483647, true, (p.features ->> 'credits_per_period')::int
          from public.subscriptions s join public.billing_plans p on p.id = s.plan_id
          where s.organization_id = any(${ids}) and s.status = 'active' and (p.features ->> 'credits_per_period')::int > 0
            and greatest(s.current_period_start, coalesce(s.trial_end, s.current_period_start)) <= billing.now()
            and s.current_period_end > billing.now()`,
      sql`select g.organization_id, g.id as grant_id, g.amount::int, g.remaining::int, pe.amount_cents::int as captured,
            coalesce((select sum(r.amount_cents) from public.payment_events r where r.status = 'refunded'
                      and r.details ->> 'captured_payment_event_id' = pe.id::text), 0)::int as refunded
          from public.credit_grants g join public.payment_events pe on pe.id = g.payment_event_id
          where g.source = 'purchase' and g.organization_id = any(${ids})`,
      sql`select r.id, r.organization_id, r.code, r.status::text, r.order_id, o.status::text as order_status, o.expires_at
          from public.discount_redemptions r left join public.orders o on o.id = r.order_id
          where r.organization_id = any(${ids})`,
      sql`select o.id, o.organization_id, o.kind::text, o.status::text, p.code as plan_code, o.list_cents::int,
            o.discount_cents::int, o.taxable_cents::int, o.amount_cents::int, o.prices_include_tax, o.discount_redemption_id,
            (select i.total_cents::int from public.invoices i where i.order_id = o.id) as invoice_total,
            (select sum(e.amount_cents)::int from public.payment_events e
             where e.order_id = o.id and e.status = 'captured' and not e.needs_refund) as captured
          from public.orders o join public.billing_plans p on p.id = o.plan_id
          where o.organization_id = any(${ids})`,
    ]);
  const rzp = (await fake("/__control/razorpay/payments")).payments as Json[];
  const rzpAll = await fake("/__control/razorpay/orders");
  const payuTx = (await fake("/__control/payu/transactions")).transactions as Json[];
  const payuRefunds = (await fake("/__control/payu/refunds")).refunds as Json[];
  const calls = (await fake("/__control/calls?route=razorpay.subscriptions")).calls as Json[];
  const mail = await fake("/__control/email");
  // Stripe's objects: its charges (a PaymentIntent's, the id our ledger keeps), refunds and invoices.
  const stripeObjects = flags.stripe ? (await fake("/__control/stripe/state")).objects as Json[] : [];
  const stripeOf = (object: string) => stripeObjects.filter((x) => x.object === object);
  const provider_captures: ProviderMoney[] = [
    ...stripeOf("charge").filter((c) => c.captured === true && c.status === "succeeded").map((c) => ({
      provider: "stripe" as const, payment_id: c.payment_intent as string, amount: c.amount as number, at_ms: (c.created as number) * 1000,
    })),
    ...rzp.filter((p) => p.captured === true).map((p) => ({ provider: "razorpay" as const, payment_id: p.id as string, amount: p.amount as number, at_ms: (p.created_at as number) * 1000 })),
    ...payuTx.filter((t) => t.status === "success").map((t) => ({
      provider: "payu" as const, payment_id: t.txnid as string, amount: Math.round(Number(t.amt) * 100), at_ms: Date.parse(String(t.sim_at)),
    })),
  ];
  const rzpRefunds = rzpAll.refunds as Json[];
  const provider_refunds: ProviderMoney[] = [
    ...stripeOf("refund").filter((r) => r.status === "succeeded").map((r) => ({
      provider: "stripe" as const, payment_id: r.payment_intent as string, refund_id: r.id as string, amount: r.amount as number,
      at_ms: (r.created as number) * 1000,
    })),
    ...rzpRefunds.map((r) => ({ provider: "razorpay" as const, payment_id: r.payment_id as string, refund_id: r.id as string, amount: r.amount as number, at_ms: (r.created_at as number) * 1000 })),
    ...payuRefunds.map((r) => ({ provider: "payu" as const, payment_id: r.txnid as string, refund_id: r.token as string, amount: r.amount_paise as number, at_ms: Date.parse(String(r.at)) })),
  ];
  const provider_calls: ProviderCall[] = [
    ...calls.filter((c) => c.route !== "razorpay.subscriptions.fetch" && c.route !== "razorpay.subscriptions.create")
      // A cancel at the cycle end and a later cancel now (an operator's grant) are two actions.
      .map((c) => ({
        route: c.route as string,
        action_key: `${c.route} ${c.path}${c.route === "razorpay.subscriptions.cancel" ? ` at_cycle_end=${cancelsAtCycleEnd(c.body)}` : ""}`,
        status: c.status as number,
      })),
    ...rzpRefunds.filter((r) => r.receipt).map((r) => ({ route: "razorpay.payments.refund", action_key: `refund ${r.receipt}`, status: 200 })),
    // Stripe: what our actions made there (a retried call with its key is answered, not made again):
    // a refund per our refund id, a paid invoice per upgrade order.
    ...stripeOf("refund").filter((r) => (r.metadata as Json)?.refund_id).map((r) => ({
      route: "stripe.refunds.create", action_key: `stripe refund ${(r.metadata as Json).refund_id}`, status: 200,
    })),
    ...stripeOf("invoice").filter((i) => i.status === "paid" && (i.metadata as Json)?.order_ref).map((i) => ({
      route: "stripe.invoices.pay", action_key: `stripe invoice paid for ${(i.metadata as Json).order_ref}`, status: 200,
    })),
  ];
  // billing-purge deletes sent notifications after 90 days: the emails of the last 60 are checked.
  const recent = (at: unknown) => Date.parse(String(at)) >= now - 60 * DAY;
  const mailbox: Email[] = (mail.emails as Json[]).filter((m) => recent(m.created_at))
    .map((m) => ({ id: m.id as string, idempotency_key: m.idempotency_key as string | null, to: m.to as string[], subject: m.subject as string }));
  const email_calls = (mail.calls as Json[]).filter((c) => recent(c.at))
    .map((c) => ({ idempotency_key: c.idempotency_key as string | null, status: c.status as number }));
  return {
    now_ms: now,
    // A late webhook may come MAX_LATE_DAYS later, and only then a day's worker round records it.
    settle_ms: (MAX_LATE_DAYS + 1) * DAY,
    outbox_budget_ms: 3 * DAY,
    payment_events: payment_events as unknown as Snapshot["payment_events"],
    invoices: invoices as unknown as Snapshot["invoices"],
    credit_notes: credit_notes as unknown as Snapshot["credit_notes"],
    subscriptions: subscriptions as unknown as Snapshot["subscriptions"],
    history: history.map((h) => ({ ...h, created_ms: ms(h.created_at) })) as unknown as Snapshot["history"],
    effective: effective as unknown as Snapshot["effective"],
    mrr: { analytics: Number(mrrRow.analytics), subscriptions: Number(mrrRow.subscriptions) },
    provider_actions: actions.map((a) => ({ ...a, created_ms: ms(a.created_at) })) as unknown as Snapshot["provider_actions"],
    notifications: notifications.map((n) => ({ ...n, created_ms: ms(n.created_at) })) as unknown as Snapshot["notifications"],
    provider_captures,
    provider_refunds,
    provider_calls,
    mailbox,
    email_calls,
    at_least_once: atLeastOnce,
    expect_applied: expectApplied,
    refund_allowed: refundAllowed,
    access: orgs.map(expectation),
    // billing-purge drops day counters 35 days after their window: compare the last 30 days.
    usage_calls: usageCalls.filter((c) => c.window_day >= istDate(now - 30 * DAY)),
    usage_rows: usage_rows as unknown as Snapshot["usage_rows"],
    credit_problems: credit_problems as unknown as Snapshot["credit_problems"],
    credit_grants: credit_grants.map((g) => ({ ...g, expires_ms: g.expires_at === null ? null : ms(g.expires_at) })) as unknown as Snapshot["credit_grants"],
    credit_charges: credit_charges as unknown as Snapshot["credit_charges"],
    credit_calls: creditCalls,
    credit_periods: credit_periods as unknown as Snapshot["credit_periods"],
    pack_grants: pack_grants as unknown as Snapshot["pack_grants"],
    discount_specs: discountSpecs,
    discount_redemptions: redemptions.map((r) => ({ ...r, order_expires_ms: r.expires_at === null ? null : ms(r.expires_at) })) as unknown as Snapshot["discount_redemptions"],
    plan_orders: plan_orders as unknown as Snapshot["plan_orders"],
    checkout_quotes: checkoutQuotes,
  };
}

// -------------------------------------------------------------------------------------------------
// The run

function discountSummary() {
  const stripe = flags.stripe ? `${counts.stripe} on Stripe (${counts.stripeRenewals} renewals, ${counts.stripeFailed} failed), ` : "";
  return stripe + (flags.discounts ? `${counts.discounted} discounted (${counts.free} free), ${counts.refused} codes refused, ` : "");
}

const days = Math.round(flags.months * 30);
const started = Date.now();
let day = 0;
/** The run's digest (digest.ts), chained over the days' ledgers: the same seed and flags give the same one. */
let digest = "";
const log: string[] = [];
try {
  // The fakes' ids (Razorpay's orders, Stripe's objects, PayU's mihpayid) from the seed too.
  await fake("/__control/seed", { seed: flags.seed });
  await setClock(now);
  for (const { code, ...spec } of discountSpecs) await sql`select billing.create_discount_code(${code}, ${sql.json(spec)})`;
  for (let i = 0; i < flags.orgs; i++) orgs.push(await createOrg(i + 1));
  for (day = 1; day <= days; day++) {
    const dayStart = startMs + (day - 1) * DAY;
    const logAtDayStart = log.length;
    await setClock(dayStart + 10 * MIN);
    await runJobs();
    await setClock(dayStart + 9 * 3600e3);
    const due = lateQueue.filter((d) => d.due <= now);
    lateQueue = lateQueue.filter((d) => d.due > now);
    for (const d of due) await d.send();
    const order = [...orgs].sort(() => random() - 0.5);
    for (const o of order) {
      const what = await live(o);
      if (what) log.push(`day ${day} org ${o.n}: ${what}`);
      await advance(int(1, 5));
    }
    await setClock(dayStart + 18 * 3600e3);
    await workers();
    await setClock(dayStart + 23 * 3600e3 + 30 * MIN);
    await runJobs();
    const snap = await snapshot();
    const lines = ledgerLines(snap, (id) => `org${orgs.find((o) => o.id === id)?.n ?? "-"}`);
    lines.push(`counts ${JSON.stringify(counts)}`);
    digest = chain(digest, day, lines);
    if (flags.ledger) {
      // The day's events too (not hashed: they name the product's random ids), to see what led there.
      const events = log.slice(logAtDayStart).map((l) => `  event: ${l}\n`).join("");
      await Deno.writeTextFile(flags.ledger, `day ${day} ${digest}\n${events}${lines.map((l) => `  ${l}\n`).join("")}`, { append: day > 1 });
    }
    const violations = checkAll(snap);
    if (violations.length) {
      const first = violations[0];
      // A provider-level finding names a payment id: the organization that made it.
      const o = orgs.find((x) => x.id === first.organization_id) ??
        orgs.find((x) => x.payments.some((p) => first.detail.includes(p.id)));
      console.log(log.filter((l) => !o || l.includes(`org ${o.n}:`) || !l.includes(" org ")).slice(-15).join("\n"));
      console.log(`\nINVARIANT VIOLATED: seed ${flags.seed}, day ${day} (${istDate(now)}), organization ${o ? `${o.n} (${o.id})` : "-"}, invariant ${first.invariant}`);
      for (const x of violations.slice(0, 8)) console.log(`  [${x.invariant}] org ${orgs.find((y) => y.id === x.organization_id)?.n ?? "-"}: ${x.detail}`);
      if (violations.length > 8) console.log(`  ... and ${violations.length - 8} more`);
      if (o) {
        // Its subscriptions' history as the product wrote it, for the replay's first look.
        const rows = await sql`select h.action, h.new_status::text as status, p.code, h.actor_kind::text as actor, h.effective_at
          from public.subscription_history h left join public.billing_plans p on p.id = h.new_plan_id
          where h.organization_id = ${o.id} order by h.created_at`;
        console.log(`history of organization ${o.n}:`);
        for (const h of rows) console.log(`  ${new Date(h.effective_at).toISOString()} ${h.action} -> ${h.status} ${h.code ?? ""} (${h.actor})`);
      }
      console.log(`digest up to day ${day}: ${digest}`);
      console.log(`replay: npm run simulate -- ${Deno.args.join(" ")}`);
      await sql.end();
      Deno.exit(1);
    }
    if (day % 30 === 0 || day === days) {
      console.log(`month ${Math.ceil(day / 30)} (day ${day}, ${istDate(now)}): ${counts.payments} payments, ${counts.renewals} renewals, ` +
        `${counts.refunds} refunds, ${discountSummary()}${counts.faults} faults (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  }
} catch (e) {
  console.log(log.slice(-10).join("\n"));
  console.error(`simulate: seed ${flags.seed}, day ${day}: the simulation itself failed: ${(e as Error).stack ?? e}`);
  await sql.end();
  Deno.exit(2);
}
await sql.end();
console.log(`simulated ${flags.orgs} organizations over ${flags.months} months (seed ${flags.seed}): ${counts.payments} payments, ` +
  `${counts.renewals} renewals, ${counts.refunds} refunds, ${discountSummary()}${counts.faults} faults, 0 invariant violations`);
console.log(`digest ${digest}`);
