// PayU's vocabulary (what each transaction status means for billing) and a PayU refund as the
// NormalizedEvent the SQL entry point takes, whoever found it: the provider actions or
// reconciliation. Posted transactions are read in webhook.ts.

import { type EventKind, type NormalizedEvent } from "../types.ts";

/** What a PayU transaction status means for billing (any other status is `other`). */
export const PAYU_EVENT_KINDS: Readonly<Record<string, EventKind>> = {
  success: "payment_captured",
  failure: "payment_failed",
  pending: "payment_pending",
};

/** One PayU refund, as its answers name it (cancel_refund_transaction, getAllRefundsFromTxnIds). */
export interface PayuRefundFacts {
  /** PayU's request id of the refund. */
  request_id: string;
  /** Our token (var2 of cancel_refund_transaction), or null when PayU names none. */
  token: string | null;
  amount_paise: number;
  /** PayU's status of the refund, lowercased: queued, success, failure, in progress, requested, pending. */
  status: string;
  /** When PayU created it (ISO, from its India-time RefundCreationDate), or null. */
  created_at: string | null;
}

/**
 * A refund PayU holds as the event the SQL entry point takes. Its event id and refund id are PayU's
 * request id whatever the source (the worker's own call, its look-up after a lost answer,
 * reconcile), so each refund is recorded once (billing.apply_refund dedupes on the refund id).
 */
export function payuRefundEvent(txnid: string, refund: PayuRefundFacts, payload: Record<string, unknown>): NormalizedEvent {
  return {
    provider: "payu",
    // "queued" is the first state of every PayU refund: one record whatever state it reached since.
    event_id: `refund:${refund.request_id}:queued`,
    event_type: `refund.${refund.status.replace(/[^a-z_]+/g, "_")}`,
    kind: "refund_processed",
    subscription_status: null,
    error_reason: null,
    order_ref: txnid,
    provider_order_id: null,
    // Our payment id for PayU is the txnid (mihpayid is outside the reverse hash).
    provider_payment_id: txnid,
    provider_subscription_id: null,
    provider_refund_id: refund.request_id,
    amount_paise: refund.amount_paise,
    currency: "INR",
    status: refund.status,
    method: null,
    occurred_at: refund.created_at,
    payload: { token: refund.token, ...payload },
  };
}

/** A PayU refund status that means the refund did not happen (no money moved). */
export function payuRefundFailed(status: string): boolean {
  return /^fail/.test(status) || status === "cancelled";
}
