// The digest of a simulated run: after every day, the ledger as canonical lines (payments,
// refunds, invoices, credit notes, subscriptions, access, outboxes, usage counters, credits,
// discounts, orders, the providers' money and the mailbox), sorted, hashed, and chained day by
// day. Two runs of one seed must give the same digest (docs/simulator.md): a difference is a
// nondeterminism, and the day whose lines first differ says where it crept in (--ledger <file>).
//
// Lines name organizations by their number in the run and leave out what the product draws at
// random (uuids, our receipts) and the real time of a row (created_at stamped with now()): what is
// left is what the seed decides, simulated times included (periods, the providers' times of their
// captures and refunds). Ids the simulation makes (pay_s<seed>x..., request ids) are kept.
import { createHash } from "node:crypto";
import type { Snapshot } from "./invariants.ts";

/** The day's ledger as sorted lines; `org` names an organization id by its number in the run. */
export function ledgerLines(s: Snapshot, org: (id: string | null) => string): string[] {
  const lines: string[] = [];
  const add = (...parts: unknown[]) => lines.push(parts.map((p) => String(p)).join(" "));
  const simId = (id: string | null) => (id && /_s\d+x/.test(id) ? id : "-");
  for (const e of s.payment_events) {
    add(
      "payment",
      org(e.organization_id),
      e.provider,
      e.status,
      e.amount_cents,
      e.needs_refund ? "needs_refund" : "",
      simId(e.provider_payment_id),
    );
  }
  const invoiceOrg = new Map(s.invoices.map((i) => [i.id, i]));
  for (const i of s.invoices) {
    add("invoice", org(i.organization_id), i.financial_year, i.serial, i.total_cents);
  }
  for (const c of s.credit_notes) {
    const i = c.invoice_id ? invoiceOrg.get(c.invoice_id) : undefined;
    add(
      "credit_note",
      org(c.organization_id),
      c.financial_year,
      c.serial,
      c.total_cents,
      i ? `of ${i.financial_year}/${i.serial}` : "",
    );
  }
  for (const x of s.subscriptions) {
    add(
      "subscription",
      org(x.organization_id),
      x.status,
      x.plan_code,
      x.period_start_ms ?? "-",
      x.period_end_ms ?? "-",
    );
  }
  for (const h of s.history) add("history", org(h.organization_id), h.action, h.new_status);
  for (const e of s.effective) add("access", org(e.organization_id), e.tier, e.plan_code);
  add("mrr", s.mrr.analytics, s.mrr.subscriptions);
  for (const a of s.provider_actions) {
    add("action", org(a.organization_id), a.kind, a.state, a.attempts, a.last_error ?? "");
  }
  for (const n of s.notifications) {
    add("notification", org(n.organization_id), n.kind, n.state, n.attempts, n.last_error ?? "");
  }
  for (const u of s.usage_rows) add("usage", org(u.organization_id), u.metric, u.window_day, u.count);
  for (const p of s.credit_problems) add("credit_problem", org(p.organization_id), p.problem);
  for (const g of s.credit_grants) {
    add("credit_grant", org(g.organization_id), g.source, g.amount, g.remaining, g.expires_ms ?? "-");
  }
  for (const c of s.credit_charges) add("credit_charge", org(c.organization_id), c.request_id, c.charged);
  for (const r of s.discount_redemptions) {
    add("redemption", org(r.organization_id), r.code, r.status, r.order_status ?? "-");
  }
  for (const o of s.plan_orders) {
    add(
      "order",
      org(o.organization_id),
      o.kind,
      o.status,
      o.plan_code,
      o.list_cents,
      o.discount_cents,
      o.taxable_cents,
      o.amount_cents,
      o.discount_redemption_id ? "discounted" : "",
      o.invoice_total ?? "-",
      o.captured ?? "-",
    );
  }
  for (const c of s.provider_captures) {
    add("provider_capture", c.provider, c.amount, c.at_ms, simId(c.payment_id));
  }
  for (const r of s.provider_refunds) {
    add("provider_refund", r.provider, r.amount, r.at_ms, simId(r.payment_id));
  }
  for (const c of s.provider_calls) add("provider_call", c.route, c.status);
  for (const m of s.mailbox) add("email", m.to.join(","), m.subject);
  for (const c of s.email_calls) add("email_call", c.status);
  return lines.sort();
}

/** The chained digest: each day's hash folds in the previous one, so a run's last value covers all its days. */
export function chain(previous: string, day: number, lines: string[]): string {
  return createHash("sha256").update(`${previous}\nday ${day}\n${lines.join("\n")}`).digest("hex");
}
