// The simulator's invariants, each a pure function of one Snapshot (rows of the database, the
// fakes' ledgers, the mailbox, and what the simulation itself did and expects) returning the
// violations it finds. Pure so that each can be fed a hand-made broken state
// (tests/simulate-invariants.test.ts). docs/simulator.md explains each one.

export type Json = Record<string, unknown>;

/** A row of public.payment_events, as much as the checks read. */
export interface PaymentEventRow {
  id: string;
  organization_id: string;
  /** manual: a free order's zero payment (a discount covering the whole price), no provider. */
  provider: "payu" | "razorpay" | "stripe" | "manual";
  provider_payment_id: string;
  status: string;
  amount_cents: number;
  needs_refund: boolean;
  /** details ->> 'refund_id' of a refund; details ->> 'captured_payment_event_id'. */
  refund_id: string | null;
  captured_payment_event_id: string | null;
}

export interface DocumentRow {
  id: string;
  organization_id: string;
  number: string;
  financial_year: number;
  serial: number;
  total_cents: number;
  /** A credit note's invoice. */
  invoice_id?: string;
}

export interface SubscriptionRow {
  id: string;
  organization_id: string;
  status: string;
  plan_code: string;
  plan_id: string;
  /** Its current period (ms; none before a first payment): the digest's, no invariant reads it. */
  period_start_ms?: number | null;
  period_end_ms?: number | null;
}

export interface HistoryRow {
  subscription_id: string | null;
  organization_id: string;
  action: string;
  new_status: string | null;
  new_plan_id: string | null;
  /** Real creation time (ms): the order rows were written in. */
  created_ms: number;
}

export interface OutboxRow {
  id: string;
  organization_id: string;
  kind: string;
  /** provider_actions: pending, running, succeeded, failed; notifications: pending, sent, failed. */
  state: string;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  /** Simulated ms of its creation. */
  created_ms: number;
}

/** A capture or refund at a fake provider. */
export interface ProviderMoney {
  provider: "payu" | "razorpay" | "stripe";
  /** Razorpay payment id; PayU txnid for a capture, mihpayid's txnid for a refund; Stripe's PaymentIntent (of a charge, of a refund). */
  payment_id: string;
  refund_id?: string;
  amount: number;
  /** Simulated ms when the provider did it. */
  at_ms: number;
}

/** A provider call the fake answered with 2xx, with the key that makes it one action. */
export interface ProviderCall {
  route: string;
  /** What makes two calls the same action: refund idempotency key or token, or the subscription path. */
  action_key: string;
  status: number;
}

export interface Email {
  id: string;
  idempotency_key: string | null;
  to: string[];
  subject: string;
}

/** What the simulation expects of one organization's access at the check. */
export interface AccessExpectation {
  organization_id: string;
  /** The tiers acceptable now (more than one on a boundary day or while a payment is in flight). */
  tiers: string[];
  why: string;
}

/** A usage event the simulation sent: usage-track's answer for it (one per copy of its batch). */
export interface UsageCall {
  organization_id: string;
  metric: string;
  request_id: string;
  amount: number;
  allowed: boolean;
  used: number;
  limit_amount: number | null;
  /** The day window it was counted in (the organization's local date). */
  window_day: string;
}

export interface UsageRow {
  organization_id: string;
  metric: string;
  window_day: string;
  count: number;
}

/** A credit charge the simulation made: consume_credits' first answer, and whether it released it since. */
export interface CreditCall {
  organization_id: string;
  request_id: string;
  credits: number;
  released: boolean;
}

/** A row of public.credit_grants, as much as the checks read. */
export interface CreditGrantRow {
  id: string;
  organization_id: string;
  source: string;
  amount: number;
  remaining: number;
  /** Simulated ms of expires_at; null: never. */
  expires_ms: number | null;
}

/** A paid span's subscription credits: what was granted, against the most any of its plans gives; or the credits live now. */
export interface CreditPeriodRow {
  organization_id: string;
  subscription_id: string;
  period_start: string;
  granted: number;
  /** The largest credits_per_period of the plans the period's grants were made for. */
  most: number;
  /**
   * A row for now (period_start 'now'): the subscription is active and a paid span covers now, and
   * `granted` is its plan credits live now, which must be at least its plan's.
   */
  current: boolean;
  /** credits_per_period of the plan in effect now. */
  per_period: number;
}

/** A credit pack's grant beside its payment: captured and refunded paise. */
export interface PackGrantRow {
  organization_id: string;
  grant_id: string;
  amount: number;
  remaining: number;
  captured: number;
  refunded: number;
}

/** A discount code the simulation created, with the terms it gave (docs/discounts.md). */
export interface DiscountSpec {
  code: string;
  percent_bps?: number;
  amount_paise?: number;
  duration: "once" | "repeating" | "forever";
  periods?: number;
  /** Absent: no limit. */
  max_redemptions?: number;
  /** Absent: 1 (the default); null: no limit. */
  max_per_organization?: number | null;
  plans?: string[];
}

/** A row of public.discount_redemptions with its order's state. */
export interface RedemptionRow {
  id: string;
  organization_id: string;
  code: string;
  status: string;
  order_id: string;
  order_status: string;
  /** Simulated ms of the reserving order's expires_at; null: none. */
  order_expires_ms: number | null;
}

/** A plan order (not a credit pack) with its price, discount, tax base, invoice and payment. */
export interface PlanOrderRow {
  id: string;
  organization_id: string;
  kind: string;
  status: string;
  plan_code: string;
  list_cents: number | null;
  discount_cents: number;
  taxable_cents: number | null;
  amount_cents: number;
  prices_include_tax: boolean | null;
  discount_redemption_id: string | null;
  /** The invoice issued for it (null: none). */
  invoice_total: number | null;
  /** What its captures applied to it (not recorded for refund) sum to; null: none. */
  captured: number | null;
}

/** What public.preview_checkout quoted just before a checkout made order_id. */
export interface CheckoutQuote {
  organization_id: string;
  order_id: string;
  code: string | null;
  list_paise: number;
  discount_paise: number;
  taxable_paise: number;
  total_paise: number;
}

export interface Snapshot {
  /** Simulated time of the check (ms). */
  now_ms: number;
  /** Grace for a provider's money to reach our ledger (a lost webhook found by reconcile). */
  settle_ms: number;
  /** How long an outbox row may stay open before it breaks its retry budget. */
  outbox_budget_ms: number;
  payment_events: PaymentEventRow[];
  invoices: DocumentRow[];
  credit_notes: DocumentRow[];
  subscriptions: SubscriptionRow[];
  history: HistoryRow[];
  /** billing.effective_plan per simulated organization. */
  effective: { organization_id: string; tier: string; plan_code: string }[];
  /** billing.revenue_summary(today) ->> 'mrr', and the sum over the subscriptions in effect. */
  mrr: { analytics: number; subscriptions: number };
  provider_actions: OutboxRow[];
  notifications: OutboxRow[];
  provider_captures: ProviderMoney[];
  provider_refunds: ProviderMoney[];
  provider_calls: ProviderCall[];
  mailbox: Email[];
  /** Every call to the email API (failed ones too): its idempotency key and answer. */
  email_calls: { idempotency_key: string | null; status: number }[];
  /**
   * Notifications whose sender was killed after the email API accepted the email: the documented
   * case in which the API is called again for it (docs/notifications.md: after a lost answer the
   * next claim sends again with the same idempotency key). Only these may be accepted twice; the
   * mailbox must still hold one email each.
   */
  at_least_once: string[];
  /** Captures the simulation made that must buy what they paid for (provider payment ids). */
  expect_applied: string[];
  /** Provider payment ids the simulation asked to refund (operator, dashboard) or expects refunded. */
  refund_allowed: string[];
  access: AccessExpectation[];
  usage_calls: UsageCall[];
  usage_rows: UsageRow[];
  /** Rows of billing.credit_ledger_problems(): where the ledger and the grants disagree. */
  credit_problems: { organization_id: string; grant_id: string | null; problem: string }[];
  credit_grants: CreditGrantRow[];
  /** public.credit_charges: what is still charged per request id. */
  credit_charges: { organization_id: string; request_id: string; charged: number }[];
  credit_calls: CreditCall[];
  credit_periods: CreditPeriodRow[];
  pack_grants: PackGrantRow[];
  /** The codes the simulation created, as it created them. */
  discount_specs: DiscountSpec[];
  discount_redemptions: RedemptionRow[];
  plan_orders: PlanOrderRow[];
  checkout_quotes: CheckoutQuote[];
}

export interface Violation {
  invariant: string;
  organization_id: string | null;
  detail: string;
}

const v = (invariant: string, organization_id: string | null, detail: string): Violation => ({
  invariant,
  organization_id,
  detail,
});

function sumBy<T>(rows: T[], key: (r: T) => string, amount: (r: T) => number): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rows) m.set(key(r), (m.get(key(r)) ?? 0) + amount(r));
  return m;
}

/**
 * 1. Our ledger equals the provider's: every capture and refund at the provider is in
 * payment_events exactly once (after settle_ms, time for reconcile to find a lost webhook; a
 * refund as `refunded`, or as a `mismatch` held for an operator), and nothing is there that the
 * provider did not do.
 */
export function checkLedger(s: Snapshot): Violation[] {
  const out: Violation[] = [];
  const name = "1 ledger equals provider";
  // A free order's zero payment (provider manual) has no provider to compare with; one of more than 0 paise is not free.
  for (const e of s.payment_events) {
    if (e.provider === "manual" && e.amount_cents !== 0) out.push(v(name, e.organization_id, `a manual payment ${e.provider_payment_id} of ${e.amount_cents} paise: only a free order is paid without a provider`));
  }
  const captured = s.payment_events.filter((e) => e.status === "captured" && e.provider !== "manual");
  const ours = new Map<string, PaymentEventRow[]>();
  for (const e of captured) ours.set(`${e.provider}:${e.provider_payment_id}`, [...(ours.get(`${e.provider}:${e.provider_payment_id}`) ?? []), e]);
  const theirs = new Map(s.provider_captures.map((c) => [`${c.provider}:${c.payment_id}`, c]));
  for (const c of s.provider_captures) {
    const rows = ours.get(`${c.provider}:${c.payment_id}`) ?? [];
    if (rows.length > 1) out.push(v(name, rows[0].organization_id, `${c.provider} payment ${c.payment_id} is recorded ${rows.length} times`));
    if (rows.length === 0 && s.now_ms - c.at_ms > s.settle_ms) {
      out.push(v(name, null, `${c.provider} captured ${c.amount} paise as ${c.payment_id} ${Math.round((s.now_ms - c.at_ms) / 3600e3)} h ago; payment_events has no capture of it`));
    }
  }
  for (const [key, rows] of ours) {
    if (!theirs.has(key)) out.push(v(name, rows[0].organization_id, `payment_events has a capture of ${key} (${rows[0].amount_cents} paise) that the provider never made`));
    else if (theirs.get(key)!.amount !== rows[0].amount_cents) {
      out.push(v(name, rows[0].organization_id, `${key}: the provider captured ${theirs.get(key)!.amount}, we recorded ${rows[0].amount_cents}`));
    }
  }
  const orgOf = new Map(captured.map((e) => [`${e.provider}:${e.provider_payment_id}`, e.organization_id]));
  // A refund recorded as a mismatch (more than the payment had left, e.g. after a lost dispute) is
  // in our ledger too, held for an operator: it counts as recorded here, not as a document.
  const refundRows = s.payment_events.filter((e) => e.status === "refunded" || (e.status === "mismatch" && e.refund_id !== null));
  const refundedOurs = sumBy(refundRows, (e) => `${e.provider}:${e.provider_payment_id}`, (e) => e.amount_cents);
  const settled = s.provider_refunds.filter((r) => s.now_ms - r.at_ms > s.settle_ms);
  const refundedTheirs = sumBy(s.provider_refunds, (r) => `${r.provider}:${r.payment_id}`, (r) => r.amount);
  const refundedTheirsSettled = sumBy(settled, (r) => `${r.provider}:${r.payment_id}`, (r) => r.amount);
  for (const key of new Set([...refundedOurs.keys(), ...refundedTheirs.keys()])) {
    const o = refundedOurs.get(key) ?? 0;
    const all = refundedTheirs.get(key) ?? 0;
    const settledAmount = refundedTheirsSettled.get(key) ?? 0;
    if (o > all) out.push(v(name, orgOf.get(key) ?? null, `${key}: we recorded ${o} paise refunded, the provider refunded ${all}`));
    else if (o < settledAmount) out.push(v(name, orgOf.get(key) ?? null, `${key}: the provider refunded ${all} paise, our ledger has ${o}`));
  }
  return out;
}

/**
 * 2. Money equals documents, per organization and paise-exact: captured - refunded (leaving out
 * captures recorded for refund, which buy nothing and get no invoice, and their refunds; a lost
 * dispute gets no credit note, so it counts on neither side) equals invoices - credit notes; and
 * the invoice and credit note numbers are gapless per financial year.
 */
export function checkMoneyDocuments(s: Snapshot): Violation[] {
  const out: Violation[] = [];
  const name = "2 money equals documents";
  const byId = new Map(s.payment_events.map((e) => [e.id, e]));
  const counted = (e: PaymentEventRow) => {
    if (e.status === "captured") return !e.needs_refund;
    if (e.status === "refunded") {
      const c = e.captured_payment_event_id ? byId.get(e.captured_payment_event_id) : undefined;
      return !c?.needs_refund;
    }
    return false;
  };
  const money = sumBy(s.payment_events.filter(counted), (e) => e.organization_id, (e) => (e.status === "captured" ? 1 : -1) * e.amount_cents);
  const docs = sumBy([...s.invoices.map((i) => ({ ...i, sign: 1 })), ...s.credit_notes.map((c) => ({ ...c, sign: -1 }))], (d) => d.organization_id, (d) => d.sign * d.total_cents);
  for (const org of new Set([...money.keys(), ...docs.keys()])) {
    const m = money.get(org) ?? 0;
    const d = docs.get(org) ?? 0;
    if (m !== d) out.push(v(name, org, `captured - refunded = ${m} paise, invoices - credit notes = ${d} paise`));
  }
  const invoiceTotals = new Map(s.invoices.map((i) => [i.id, i.total_cents]));
  const credited = sumBy(s.credit_notes, (c) => c.invoice_id ?? "", (c) => c.total_cents);
  for (const [inv, total] of credited) {
    if (invoiceTotals.has(inv) && total > invoiceTotals.get(inv)!) {
      out.push(v(name, s.invoices.find((i) => i.id === inv)!.organization_id, `invoice ${inv} is credited ${total} paise, more than its ${invoiceTotals.get(inv)}`));
    }
  }
  for (const [label, rows] of [["invoice", s.invoices], ["credit note", s.credit_notes]] as const) {
    const years = new Map<number, number[]>();
    for (const r of rows) years.set(r.financial_year, [...(years.get(r.financial_year) ?? []), r.serial]);
    for (const [year, serials] of years) {
      const sorted = [...serials].sort((a, b) => a - b);
      sorted.forEach((n, i) => {
        if (n !== i + 1) out.push(v(name, null, `${label} serials of financial year ${year} are not gapless: ${sorted.slice(Math.max(0, i - 1), i + 2).join(", ")} at position ${i + 1}`));
      });
    }
  }
  return out.filter((x, i, all) => all.findIndex((y) => y.detail === x.detail) === i);
}

/**
 * 3. Access follows payment: each organization's effective tier is one the simulation's own model
 * of what it paid for allows today; a capture that must buy its period is not recorded for
 * refund; no payment is refunded that nobody asked to refund.
 */
export function checkAccess(s: Snapshot): Violation[] {
  const out: Violation[] = [];
  const name = "3 access follows payment";
  const effective = new Map(s.effective.map((e) => [e.organization_id, e]));
  for (const a of s.access) {
    const e = effective.get(a.organization_id);
    const tier = e?.tier ?? "free";
    if (!a.tiers.includes(tier)) {
      out.push(v(name, a.organization_id, `effective plan ${e?.plan_code ?? "free"} (tier ${tier}), but what it paid for gives ${a.tiers.join(" or ")}: ${a.why}`));
    }
  }
  const expect = new Set(s.expect_applied);
  for (const e of s.payment_events) {
    if (e.status === "captured" && e.needs_refund && expect.has(e.provider_payment_id)) {
      out.push(v(name, e.organization_id, `${e.provider} payment ${e.provider_payment_id} (${e.amount_cents} paise) paid a period but was recorded for refund, not applied: a paid period is lost`));
    }
  }
  const allowed = new Set(s.refund_allowed);
  const needsRefund = new Set(s.payment_events.filter((e) => e.status === "captured" && e.needs_refund && !expect.has(e.provider_payment_id)).map((e) => e.provider_payment_id));
  for (const e of s.payment_events) {
    if (e.status === "refunded" && !allowed.has(e.provider_payment_id) && !needsRefund.has(e.provider_payment_id)) {
      out.push(v(name, e.organization_id, `${e.provider} payment ${e.provider_payment_id} was refunded (${e.amount_cents} paise) though nobody asked and it bought a period in use`));
    }
  }
  return out;
}

/** History rows that record an intent (a change to come), not a change of state. */
export const INTENTS = new Set(["upgrade_ordered", "downgrade_scheduled", "cancel_scheduled"]);

/**
 * 4. Every state change of a subscription has its history row: the latest history row written
 * for each subscription (by whatever path: function, job, trigger) names its current status and
 * plan. And the day's MRR from the analytics equals the sum over the paid subscriptions in effect.
 */
export function checkHistoryAndMrr(s: Snapshot): Violation[] {
  const out: Violation[] = [];
  const name = "4 history and MRR";
  const bySub = new Map<string, HistoryRow[]>();
  for (const h of s.history) {
    if (!h.subscription_id || h.new_status === null || INTENTS.has(h.action)) continue;
    bySub.set(h.subscription_id, [...(bySub.get(h.subscription_id) ?? []), h]);
  }
  for (const sub of s.subscriptions) {
    if (sub.status === "pending_payment") continue;
    const rows = bySub.get(sub.id) ?? [];
    if (rows.length === 0) {
      out.push(v(name, sub.organization_id, `subscription ${sub.id} is ${sub.status} on ${sub.plan_code} with no history row`));
      continue;
    }
    const latest = Math.max(...rows.map((r) => r.created_ms));
    const last = rows.filter((r) => r.created_ms === latest);
    if (!last.some((r) => r.new_status === sub.status && (r.new_plan_id === null || r.new_plan_id === sub.plan_id))) {
      out.push(v(name, sub.organization_id, `subscription ${sub.id} is ${sub.status} on ${sub.plan_code}, but its latest history row (${last.map((r) => `${r.action} -> ${r.new_status}`).join(", ")}) says otherwise: a change without its history row`));
    }
  }
  if (s.mrr.analytics !== s.mrr.subscriptions) {
    out.push(v(name, null, `revenue_summary's mrr is ${s.mrr.analytics} paise, the paid subscriptions in effect sum to ${s.mrr.subscriptions}`));
  }
  return out;
}

/**
 * 5. Every outbox row ends (sent, succeeded, or failed with a reason) within its retry budget; no
 * provider action is carried out twice at the fake; no email is sent twice.
 */
export function checkOutboxes(s: Snapshot): Violation[] {
  const out: Violation[] = [];
  const name = "5 outboxes end, once";
  for (const [label, rows] of [["provider action", s.provider_actions], ["notification", s.notifications]] as const) {
    for (const r of rows) {
      const open = r.state === "pending" || r.state === "running";
      if (open && (r.attempts > r.max_attempts || s.now_ms - r.created_ms > s.outbox_budget_ms)) {
        out.push(v(name, r.organization_id, `${label} ${r.kind} ${r.id} is still ${r.state} after ${r.attempts} attempts and ${Math.round((s.now_ms - r.created_ms) / 3600e3)} h${r.last_error ? ` (${r.last_error})` : ""}`));
      }
      if (r.state === "failed" && !r.last_error) out.push(v(name, r.organization_id, `${label} ${r.kind} ${r.id} failed with no reason`));
    }
  }
  const done = new Map<string, number>();
  for (const c of s.provider_calls) if (c.status >= 200 && c.status < 300) done.set(c.action_key, (done.get(c.action_key) ?? 0) + 1);
  for (const [key, n] of done) if (n > 1) out.push(v(name, null, `the provider carried out ${key} ${n} times`));
  const keys = new Map<string, number>();
  for (const m of s.mailbox) {
    const key = m.idempotency_key ?? `${m.to.join(",")}|${m.subject}|${m.id}`;
    keys.set(key, (keys.get(key) ?? 0) + 1);
  }
  // The idempotency key keeps an email from reaching anyone twice, even after a crash.
  for (const [key, n] of keys) {
    if (n > 1) out.push(v(name, null, `email ${key} was sent ${n} times`));
  }
  // A second accepted send of a notification happens only after its sender died between the email
  // API's acceptance and the record (at_least_once); anywhere else it means a notification was
  // claimed and sent again though its sending was recorded, or two senders shared it.
  const allowed = new Set(s.at_least_once);
  const accepted = new Map<string, number>();
  for (const c of s.email_calls) {
    if (c.idempotency_key !== null && c.status >= 200 && c.status < 300) accepted.set(c.idempotency_key, (accepted.get(c.idempotency_key) ?? 0) + 1);
  }
  for (const [key, n] of accepted) {
    if (n > 1 && !allowed.has(key)) out.push(v(name, null, `the email API accepted notification ${key} ${n} times, though no sender of it died after a send`));
  }
  const notificationIds = new Set(s.notifications.map((n) => n.id));
  for (const m of s.mailbox) {
    if (m.idempotency_key === null || !notificationIds.has(m.idempotency_key)) {
      out.push(v(name, null, `email "${m.subject}" to ${m.to.join(", ")} matches no notification (idempotency key ${m.idempotency_key})`));
    }
  }
  return out;
}

/**
 * 6. No quota window exceeds its limit, and each request id is counted once: every allowed call's
 * `used` is within its limit, and each day window's counter is the sum of the distinct request
 * ids allowed in it.
 */
export function checkUsage(s: Snapshot): Violation[] {
  const out: Violation[] = [];
  const name = "6 quotas";
  const expected = new Map<string, { ids: Set<string>; total: number; org: string }>();
  for (const c of s.usage_calls) {
    if (c.allowed && c.limit_amount !== null && c.used > c.limit_amount) {
      out.push(v(name, c.organization_id, `${c.metric} request ${c.request_id} was allowed at ${c.used} of a limit of ${c.limit_amount}`));
    }
    const key = `${c.organization_id}|${c.metric}|${c.window_day}`;
    const e = expected.get(key) ?? { ids: new Set<string>(), total: 0, org: c.organization_id };
    if (c.allowed && !e.ids.has(c.request_id)) {
      e.ids.add(c.request_id);
      e.total += c.amount;
    }
    expected.set(key, e);
  }
  const rows = new Map(s.usage_rows.map((r) => [`${r.organization_id}|${r.metric}|${r.window_day}`, r.count]));
  for (const [key, e] of expected) {
    const got = rows.get(key) ?? 0;
    if (got !== e.total) out.push(v(name, e.org, `${key.split("|").slice(1).join(" on ")}: the counter holds ${got}, the distinct allowed requests add up to ${e.total}`));
  }
  return out;
}

/**
 * 7. Credits: the ledger sums to the balance (billing.credit_ledger_problems() is empty) and no
 * grant is negative or above its amount; each request id the simulation charged is one charge,
 * holding what the model expects (its credits, or 0 once released); a paid period's credits are
 * granted once (never more than the largest per-period credits of the plans it was granted for) and
 * are there while the period runs; a grant lapsed more than a day ago was expired by the job; a
 * refunded pack keeps at most the credits of its share not refunded (none after a full refund).
 */
export function checkCredits(s: Snapshot): Violation[] {
  const out: Violation[] = [];
  const name = "7 credits";
  for (const p of s.credit_problems) out.push(v(name, p.organization_id, `the ledger disagrees with grant ${p.grant_id ?? "(all)"}: ${p.problem}`));
  for (const g of s.credit_grants) {
    if (g.remaining < 0 || g.remaining > g.amount) out.push(v(name, g.organization_id, `grant ${g.id} holds ${g.remaining} of ${g.amount}`));
    if (g.expires_ms !== null && g.expires_ms <= s.now_ms - 86400e3 && g.remaining > 0) {
      out.push(v(name, g.organization_id, `${g.source} grant ${g.id} lapsed at ${new Date(g.expires_ms).toISOString()} and still holds ${g.remaining}`));
    }
  }
  const charges = new Map<string, number[]>();
  for (const c of s.credit_charges) {
    const key = `${c.organization_id}|${c.request_id}`;
    charges.set(key, [...(charges.get(key) ?? []), c.charged]);
  }
  for (const c of s.credit_calls) {
    const got = charges.get(`${c.organization_id}|${c.request_id}`) ?? [];
    const want = c.released ? 0 : c.credits;
    if (got.length !== 1) out.push(v(name, c.organization_id, `request ${c.request_id} is ${got.length} charges, not one`));
    else if (got[0] !== want) out.push(v(name, c.organization_id, `request ${c.request_id} holds ${got[0]} credits, the model ${want}`));
  }
  for (const g of s.pack_grants) {
    const most = g.refunded >= g.captured ? 0 : g.amount - Math.ceil((g.amount * g.refunded) / g.captured);
    if (g.remaining > most) {
      out.push(v(name, g.organization_id, `pack grant ${g.grant_id} holds ${g.remaining} credits after ${g.refunded} of ${g.captured} paise were refunded (at most ${most})`));
    }
  }
  for (const p of s.credit_periods) {
    if (p.granted > p.most) {
      out.push(v(name, p.organization_id, `subscription ${p.subscription_id}'s period from ${p.period_start} was granted ${p.granted} credits, its plans give at most ${p.most}`));
    }
    if (p.current && p.granted < p.per_period) {
      out.push(v(name, p.organization_id, `subscription ${p.subscription_id}'s paid span running ${p.period_start} has ${p.granted} credits, its plan gives ${p.per_period}`));
    }
  }
  return out;
}

/** round(x / d) half up, for the non-negative integers of money. */
const roundHalfUp = (x: number, d: number) => Math.floor((2 * x + d) / (2 * d));

/**
 * 8. Discounts: no code counts more redemptions than its max_redemptions, nor an organization more
 * than max_per_organization (redeemed ones, and reserved ones whose order is still open and
 * unexpired); a redemption is paid for at most its periods (once: one order, repeating: `periods`);
 * every discounted plan order (but an upgrade, whose list price is prorated) takes off what the
 * code's terms as the simulation made them say (a percentage of the list price rounded half up, a
 * fixed amount at most the list price), is taxed on list - discount (prices without tax) and, paid,
 * has an invoice whose total is what was captured for it (0 for a free order); and every order a
 * checkout made is priced as public.preview_checkout quoted it just before.
 */
export function checkDiscounts(s: Snapshot): Violation[] {
  const out: Violation[] = [];
  const name = "8 discounts";
  const specs = new Map(s.discount_specs.map((d) => [d.code.toLowerCase(), d]));
  const counted = s.discount_redemptions.filter((r) =>
    r.status === "redeemed" ||
    (r.status === "reserved" && ["created", "pending"].includes(r.order_status) && (r.order_expires_ms === null || r.order_expires_ms > s.now_ms))
  );
  for (const [code, n] of sumBy(counted, (r) => r.code.toLowerCase(), () => 1)) {
    const spec = specs.get(code);
    if (spec?.max_redemptions !== undefined && n > spec.max_redemptions) {
      out.push(v(name, null, `discount code ${spec.code} counts ${n} redemptions, its max_redemptions is ${spec.max_redemptions}`));
    }
  }
  for (const [key, n] of sumBy(counted, (r) => `${r.code.toLowerCase()}|${r.organization_id}`, () => 1)) {
    const [code, org] = key.split("|");
    const spec = specs.get(code);
    const most = spec === undefined ? undefined : spec.max_per_organization === undefined ? 1 : spec.max_per_organization;
    if (spec && most !== null && most !== undefined && n > most) {
      out.push(v(name, org, `discount code ${spec.code} counts ${n} redemptions for this organization, ${most} allowed`));
    }
  }
  const redemptions = new Map(s.discount_redemptions.map((r) => [r.id, r]));
  const paidUses = sumBy(s.plan_orders.filter((o) => o.status === "paid" && o.discount_redemption_id !== null), (o) => o.discount_redemption_id!, () => 1);
  for (const [id, n] of paidUses) {
    const r = redemptions.get(id);
    const spec = r ? specs.get(r.code.toLowerCase()) : undefined;
    if (!r || !spec) continue;
    const most = spec.duration === "once" ? 1 : spec.duration === "repeating" ? spec.periods! : Infinity;
    if (n > most) out.push(v(name, r.organization_id, `redemption ${id} of ${spec.code} (${spec.duration}${spec.periods ? ` ${spec.periods}` : ""}) discounted ${n} paid orders, at most ${most}`));
  }
  for (const o of s.plan_orders) {
    const what = `${o.kind} order ${o.id} (${o.plan_code}, ${o.status})`;
    if (o.discount_redemption_id !== null) {
      const r = redemptions.get(o.discount_redemption_id);
      const spec = r ? specs.get(r.code.toLowerCase()) : undefined;
      if (!r) out.push(v(name, o.organization_id, `${what} names redemption ${o.discount_redemption_id}, which is not there`));
      else if (r.organization_id !== o.organization_id) out.push(v(name, o.organization_id, `${what} carries another organization's redemption ${r.id}`));
      if (o.list_cents === null) out.push(v(name, o.organization_id, `${what} is discounted but has no list price`));
      else if (spec && o.kind !== "upgrade") {
        const want = spec.percent_bps !== undefined ? roundHalfUp(o.list_cents * spec.percent_bps, 10000) : Math.min(spec.amount_paise!, o.list_cents);
        if (o.discount_cents !== want) out.push(v(name, o.organization_id, `${what}: ${spec.code} takes ${want} paise off ${o.list_cents}, the order ${o.discount_cents}`));
      }
    } else if (o.discount_cents !== 0) {
      out.push(v(name, o.organization_id, `${what} takes ${o.discount_cents} paise off without a redemption`));
    }
    if (o.list_cents !== null && o.discount_cents > 0) {
      if (o.discount_cents > o.list_cents) out.push(v(name, o.organization_id, `${what}: discount ${o.discount_cents} above its list price ${o.list_cents}`));
      if (o.prices_include_tax === false && o.taxable_cents !== o.list_cents - o.discount_cents) {
        out.push(v(name, o.organization_id, `${what}: list ${o.list_cents} - discount ${o.discount_cents} = ${o.list_cents - o.discount_cents}, taxed on ${o.taxable_cents}`));
      }
      if (o.list_cents === o.discount_cents && o.amount_cents !== 0) out.push(v(name, o.organization_id, `${what}: the discount covers the price, yet it charges ${o.amount_cents}`));
    }
    if (o.status === "paid" && (o.discount_cents > 0 || o.amount_cents === 0)) {
      if (o.invoice_total === null) out.push(v(name, o.organization_id, `${what} was paid and has no invoice`));
      else if (o.invoice_total !== o.amount_cents) out.push(v(name, o.organization_id, `${what} charges ${o.amount_cents}, its invoice totals ${o.invoice_total}`));
      if (o.captured !== null && o.captured !== o.invoice_total) out.push(v(name, o.organization_id, `${what}: ${o.captured} paise captured, its invoice totals ${o.invoice_total}`));
    }
  }
  const orders = new Map(s.plan_orders.map((o) => [o.id, o]));
  for (const q of s.checkout_quotes) {
    const o = orders.get(q.order_id);
    if (!o) {
      out.push(v(name, q.organization_id, `checkout made order ${q.order_id}, which is not there`));
      continue;
    }
    const got = { list: o.list_cents ?? (o.prices_include_tax ? o.amount_cents : o.taxable_cents), discount: o.discount_cents, taxable: o.taxable_cents, total: o.amount_cents };
    const want = { list: q.list_paise, discount: q.discount_paise, taxable: q.taxable_paise, total: q.total_paise };
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      out.push(v(name, q.organization_id, `order ${o.id} (${o.plan_code}${q.code ? `, code ${q.code}` : ""}) is ${JSON.stringify(got)}, preview_checkout quoted ${JSON.stringify(want)}`));
    }
  }
  return out;
}

export const CHECKS = [checkLedger, checkMoneyDocuments, checkAccess, checkHistoryAndMrr, checkOutboxes, checkUsage, checkCredits, checkDiscounts];

/** Every invariant's violations, in invariant order. */
export function checkAll(s: Snapshot): Violation[] {
  return CHECKS.flatMap((check) => check(s));
}

/** An empty, consistent snapshot to build test states from. */
export function emptySnapshot(now_ms = Date.UTC(2027, 0, 1)): Snapshot {
  return {
    now_ms,
    settle_ms: 2 * 86400e3,
    outbox_budget_ms: 3 * 86400e3,
    payment_events: [],
    invoices: [],
    credit_notes: [],
    subscriptions: [],
    history: [],
    effective: [],
    mrr: { analytics: 0, subscriptions: 0 },
    provider_actions: [],
    notifications: [],
    provider_captures: [],
    provider_refunds: [],
    provider_calls: [],
    mailbox: [],
    email_calls: [],
    at_least_once: [],
    expect_applied: [],
    refund_allowed: [],
    access: [],
    usage_calls: [],
    usage_rows: [],
    credit_problems: [],
    credit_grants: [],
    credit_charges: [],
    credit_calls: [],
    credit_periods: [],
    pack_grants: [],
    discount_specs: [],
    discount_redemptions: [],
    plan_orders: [],
    checkout_quotes: [],
  };
}
