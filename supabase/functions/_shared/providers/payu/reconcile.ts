// PayU reconciliation: what PayU says about one of our orders (verify_payment) or a payment's
// refunds (getAllRefundsFromTxnIds) when a webhook or an answer may have been lost, as the events
// to apply.

import {
  type EnvGetter,
  type NormalizedEvent,
  ProviderError,
  type ProviderPaymentRef,
  type ProviderRefund,
} from "../types.ts";
import { rupeesToPaise } from "./amounts.ts";
import { payuCommand, payuConfig, REFUSED_REQUEST } from "./client.ts";
import { type PayuRefundFacts, payuRefundEvent, payuRefundFailed } from "./events.ts";
import { idText, nonEmpty, payuTimeToIso, TXNID } from "./read.ts";
import { normalizePayu } from "./webhook.ts";

/**
 * Asks PayU for the state of `txnid` and returns it as a NormalizedEvent (the same event_id a webhook
 * for the same state would have, so the SQL entry point dedupes them), or null when PayU does not
 * know the txnid. Throws ProviderError.
 */
export async function verifyPayuPayment(
  txnid: string,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<NormalizedEvent | null> {
  payuConfig(env);
  if (!TXNID.test(txnid)) throw new ProviderError(400, "invalid_input", "malformed txnid");
  const json = await payuCommand("verify_payment", { var1: txnid }, env, options);
  const details = (json as { transaction_details?: unknown })?.transaction_details;
  const entry = details && typeof details === "object"
    ? (details as Record<string, unknown>)[txnid]
    : undefined;
  if (!entry || typeof entry !== "object") {
    const msg = (json as { msg?: unknown })?.msg;
    throw new ProviderError(
      502,
      "invalid_upstream_response",
      `PayU verify_payment gave no entry for the txnid${typeof msg === "string" ? `: ${msg}` : ""}`,
    );
  }
  const tx = entry as Record<string, unknown>;
  if (tx.status === "Not Found" || tx.mihpayid === "Not Found") return null;
  const payload: Record<string, unknown> = { ...tx, txnid: nonEmpty(tx.txnid) ?? txnid };
  const normalized = normalizePayu({ provider: "payu", payload, event_id: null }, "api");
  if (!normalized.ok) {
    throw new ProviderError(502, "invalid_upstream_response", `PayU entry: ${normalized.message}`);
  }
  return normalized.event;
}

/**
 * Every refund PayU holds for the payment of `txnid`: getAllRefundsFromTxnIds (var1 = txnid),
 * whose "Refund Details" maps each mihpayid to its refunds (RequestID, RefundToken, Amount,
 * Status, RefundCreationDate). An answer of status 0 is "none" unless it refuses the request
 * itself (key, hash, parameters: ProviderError). Throws ProviderError.
 */
export async function listPayuRefunds(
  txnid: string,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<(PayuRefundFacts & { mihpayid: string | null })[]> {
  if (!TXNID.test(txnid)) throw new ProviderError(400, "invalid_input", "malformed txnid");
  const json = await payuCommand("getAllRefundsFromTxnIds", { var1: txnid }, env, options);
  const msg = nonEmpty(json.msg) ?? "";
  if (Number(json.status) !== 1) {
    if (REFUSED_REQUEST.test(msg)) {
      throw new ProviderError(502, "invalid_upstream_response", `PayU refused getAllRefundsFromTxnIds: ${msg}`);
    }
    return [];
  }
  const details = json["Refund Details"];
  if (typeof details !== "object" || details === null || Array.isArray(details)) {
    throw new ProviderError(502, "invalid_upstream_response", "PayU getAllRefundsFromTxnIds gave no Refund Details");
  }
  const refunds: (PayuRefundFacts & { mihpayid: string | null })[] = [];
  for (const [mihpayid, list] of Object.entries(details as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    for (const entry of list) {
      if (typeof entry !== "object" || entry === null) continue;
      const r = entry as Record<string, unknown>;
      const requestId = idText(r.RequestID);
      const status = nonEmpty(r.Status)?.trim().toLowerCase();
      let amount: number;
      try {
        amount = rupeesToPaise(String(r.Amount ?? "").trim());
      } catch {
        throw new ProviderError(502, "invalid_upstream_response", `PayU listed refund ${requestId} with a malformed amount`);
      }
      if (!requestId || !status) {
        throw new ProviderError(502, "invalid_upstream_response", "PayU listed a refund without RequestID or Status");
      }
      refunds.push({
        mihpayid: idText(r.PayuID) ?? mihpayid,
        request_id: requestId,
        token: idText(r.RefundToken),
        amount_paise: amount,
        status,
        created_at: payuTimeToIso(nonEmpty(r.RefundCreationDate)),
      });
    }
  }
  return refunds;
}

/** The refunds PayU holds for one of our payments (reconcile), each with the event that records it. */
export async function payuRefundsOf(
  payment: ProviderPaymentRef,
  env: EnvGetter,
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<ProviderRefund[]> {
  const txnid = payment.provider_payment_id;
  return (await listPayuRefunds(txnid, env, options)).map((r) => ({
    provider_refund_id: r.request_id,
    reference: r.token,
    amount_paise: r.amount_paise,
    status: r.status,
    event: payuRefundFailed(r.status)
      ? null
      : payuRefundEvent(txnid, r, { source: "reconcile", mihpayid: r.mihpayid, listed: r }),
  }));
}
