// PayU provider actions (the provider-sync worker): a PayU checkout is a one-time payment, so
// refunds and payment look-ups only, and the look-up of a refund an earlier attempt may have made
// (docs/providers.md).

import {
  type ActionOutcome,
  actionOutcomeOf,
  type EnvGetter,
  ProviderError,
  type ProviderAction,
  unsupportedAction,
} from "../types.ts";
import { paiseToRupees, rupeesToPaise } from "./amounts.ts";
import { payuCommand, REFUSED_REQUEST } from "./client.ts";
import { type PayuRefundFacts, payuRefundEvent, payuRefundFailed } from "./events.ts";
import { idText, nonEmpty, TXNID } from "./read.ts";
import { listPayuRefunds, verifyPayuPayment } from "./reconcile.ts";

/**
 * The current status of one PayU request (a refund) by its request id: check_action_status
 * (var1 = request id), whose transaction_details maps the request id to the request's details;
 * null when PayU knows no such request. Throws ProviderError.
 */
export async function payuActionStatus(
  requestId: string,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<{ status: string; amount_paise: number | null; token: string | null; mihpayid: string | null } | null> {
  const json = await payuCommand("check_action_status", { var1: requestId }, env, options);
  const msg = nonEmpty(json.msg) ?? "";
  const details = json.transaction_details;
  const outer = typeof details === "object" && details !== null ? (details as Record<string, unknown>)[requestId] : undefined;
  const inner = typeof outer === "object" && outer !== null ? (outer as Record<string, unknown>)[requestId] : undefined;
  if (Number(json.status) !== 1 || typeof inner !== "object" || inner === null) {
    if (REFUSED_REQUEST.test(msg)) {
      throw new ProviderError(502, "invalid_upstream_response", `PayU refused check_action_status: ${msg}`);
    }
    return null;
  }
  const r = inner as Record<string, unknown>;
  const status = nonEmpty(r.status)?.trim().toLowerCase();
  if (!status) throw new ProviderError(502, "invalid_upstream_response", "PayU check_action_status gave no status");
  let amount: number | null = null;
  try {
    amount = rupeesToPaise(String(r.amt ?? "").trim());
  } catch {
    amount = null;
  }
  return { status, amount_paise: amount, token: idText(r.token), mihpayid: idText(r.mihpayid) };
}

/**
 * What PayU already holds under a refund action's token (provider-sync, before carrying it out
 * again): getAllRefundsFromTxnIds for the txnid, the refund whose RefundToken is ours, then
 * check_action_status for its current state. null when PayU lists none under the token. Never throws.
 */
export async function lookupPayuAction(
  action: ProviderAction,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<ActionOutcome | null> {
  if (action.kind !== "refund") return null;
  const txnid = nonEmpty(action.target?.provider_payment_id) ?? nonEmpty(action.target?.order_ref);
  const token = nonEmpty(action.payload?.refund_id);
  // Without them nothing can have been sent: performPayuAction fails the action with its reason.
  if (!txnid || !TXNID.test(txnid) || !token) return null;
  try {
    const mine = (await listPayuRefunds(txnid, env, options)).find((r) => r.token === token);
    if (!mine) return null;
    const current = await payuActionStatus(mine.request_id, env, options);
    const refund: PayuRefundFacts = { ...mine, status: current?.status ?? mine.status };
    const result = {
      txnid,
      mihpayid: mine.mihpayid,
      token,
      request_id: refund.request_id,
      amount_paise: refund.amount_paise,
      status: refund.status,
      found_by: "getAllRefundsFromTxnIds",
    };
    if (payuRefundFailed(refund.status)) {
      return { outcome: "failed", error: `PayU reports the refund under token ${token} as ${refund.status}`, result };
    }
    return {
      outcome: "succeeded",
      result,
      events: [payuRefundEvent(txnid, refund, { source: "provider-sync", action_id: action.id, mihpayid: mine.mihpayid })],
    };
  } catch (e) {
    const o = actionOutcomeOf(e);
    // Not knowing is never a failure: the action waits until PayU can be asked.
    return {
      outcome: "retry",
      error: `PayU could not be asked about the earlier attempt: ${o.outcome === "succeeded" ? "no answer" : o.error}`,
      ...(o.outcome === "retry" ? { retryAfterSeconds: o.retryAfterSeconds } : {}),
    };
  }
}

/**
 * Carries out one action at PayU. Never throws. refund: verify_payment (var1 = txnid) for the
 * payment's confirmed mihpayid, then cancel_refund_transaction (var1 = mihpayid, var2 = our refund
 * id as the token, var3 = the amount in rupees); PayU's acceptance (status 1) is applied as the
 * refund (PayU's refund callbacks carry no hash). fetch_payment: verify_payment.
 */
export async function performPayuAction(
  action: ProviderAction,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<ActionOutcome> {
  const txnid = nonEmpty(action.target?.provider_payment_id) ?? nonEmpty(action.target?.order_ref);
  const p = action.payload ?? {};
  try {
    if (action.kind === "fetch_payment" || action.kind === "refund") {
      if (!txnid) return { outcome: "failed", error: `a PayU ${action.kind} needs target.provider_payment_id (the txnid)` };
      if (!TXNID.test(txnid)) return { outcome: "failed", error: "malformed PayU txnid" };
    }
    if (action.kind === "fetch_payment") {
      const event = await verifyPayuPayment(txnid!, env, options);
      if (!event) return { outcome: "failed", error: `PayU does not know txnid ${txnid}` };
      return {
        outcome: "succeeded",
        result: { txnid, mihpayid: event.payload.mihpayid ?? null, status: event.status, amount_paise: event.amount_paise },
        events: [event],
      };
    }
    if (action.kind !== "refund") return unsupportedAction("payu", action.kind);

    const amount = p.amount_paise;
    const token = nonEmpty(p.refund_id);
    if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount <= 0) {
      return { outcome: "failed", error: "a PayU refund needs payload.amount_paise (positive integer paise)" };
    }
    if (!token) return { outcome: "failed", error: "a PayU refund needs payload.refund_id (the token)" };
    if (typeof p.currency === "string" && p.currency !== "INR") {
      return { outcome: "failed", error: `PayU refunds are INR only, got ${p.currency}` };
    }
    const payment = await verifyPayuPayment(txnid!, env, options);
    if (!payment) return { outcome: "failed", error: `PayU does not know txnid ${txnid}` };
    const mihpayid = nonEmpty(payment.payload.mihpayid) ??
      (typeof payment.payload.mihpayid === "number" ? String(payment.payload.mihpayid) : null);
    if (payment.status !== "success" || !mihpayid) {
      return { outcome: "failed", error: `PayU reports txnid ${txnid} as ${payment.status}: not refundable` };
    }
    const answer = await payuCommand(
      "cancel_refund_transaction",
      { var1: mihpayid, var2: token, var3: paiseToRupees(amount) },
      env,
      options,
    );
    const result = { txnid, mihpayid, token, amount_paise: amount, answer };
    if (Number(answer.status) !== 1) {
      const msg = nonEmpty(answer.msg) ?? "no message";
      if (/already been processed/i.test(msg)) {
        // PayU holds a request under our token: an earlier attempt reached it. Never a failure;
        // the next attempt asks PayU for it first (lookupPayuAction) and records it.
        return { outcome: "retry", error: `PayU already holds a refund under token ${token}: ${msg}`, result };
      }
      return { outcome: "failed", error: `PayU refused the refund: ${msg}`, result };
    }
    // PayU's request id names the refund; our token when PayU names none.
    const requestId = idText(answer.request_id) ?? idText(answer.txn_update_id) ?? token;
    const refund: PayuRefundFacts = { request_id: requestId, token, amount_paise: amount, status: "queued", created_at: null };
    return {
      outcome: "succeeded",
      result,
      events: [payuRefundEvent(txnid!, refund, { source: "provider-sync", action_id: action.id, answer })],
    };
  } catch (e) {
    return actionOutcomeOf(e);
  }
}
