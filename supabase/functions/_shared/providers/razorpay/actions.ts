// Razorpay provider actions (the provider-sync worker): cancel, pause, resume, change plan, refund
// and fetch payment carried out through the API, and the look-up of a refund an earlier attempt
// may have made (docs/providers.md).

import {
  type ActionOutcome,
  actionOutcomeOf,
  type ProviderAction,
  unsupportedAction,
} from "../types.ts";
import {
  RAZORPAY_ID,
  type RazorpayApiClient,
  razorpayIdempotencyKey,
  type RazorpayRefund,
  type RazorpaySubscription,
} from "./client.ts";
import { razorpayPaymentEvent, razorpayRefundEvent, type RefundContext } from "./events.ts";
import { notesOf, str } from "./read.ts";

function actionContext(action: ProviderAction): RefundContext {
  return {
    order_ref: action.target.order_ref ?? null,
    provider_order_id: action.target.provider_order_id ?? null,
    provider_subscription_id: action.target.provider_subscription_id ?? null,
  };
}

/**
 * What Razorpay already holds under a refund action's reference (provider-sync, before carrying it
 * out again): the payment's refunds, the one whose receipt or notes.refund_id is ours. null when
 * there is none. X-Refund-Idempotency answers a retry with the first refund too, but Razorpay keeps
 * the key for a limited time; the look-up does not depend on it. Never throws.
 */
export async function lookupRazorpayAction(action: ProviderAction, client: RazorpayApiClient): Promise<ActionOutcome | null> {
  if (action.kind !== "refund") return null;
  const paymentId = str(action.target?.provider_payment_id);
  const refundId = str(action.payload?.refund_id);
  if (!paymentId || !refundId || !RAZORPAY_ID.test(paymentId)) return null;
  try {
    const mine = (await client.fetchPaymentRefunds(paymentId)).find((r) =>
      r.receipt === refundId || notesOf(r as Record<string, unknown>).refund_id === refundId
    );
    if (!mine) return null;
    return refundOutcome(mine, action, paymentId, "fetchPaymentRefunds");
  } catch (e) {
    const o = actionOutcomeOf(e);
    // Not knowing is never a failure: the action waits until Razorpay can be asked.
    return {
      outcome: "retry",
      error: `Razorpay could not be asked about the earlier attempt: ${o.outcome === "succeeded" ? "no answer" : o.error}`,
      ...(o.outcome === "retry" ? { retryAfterSeconds: o.retryAfterSeconds } : {}),
    };
  }
}

/** A refund Razorpay answered or listed for an action -> the outcome to record. */
function refundOutcome(refund: RazorpayRefund, action: ProviderAction, paymentId: string, foundBy: string | null): ActionOutcome {
  const amount = action.payload?.amount_paise;
  if (refund.payment_id !== paymentId || refund.amount !== amount) {
    return {
      outcome: "failed",
      error: `Razorpay refunded ${refund.amount} paise of ${refund.payment_id}, not ${amount} of ${paymentId}`,
      result: { refund },
    };
  }
  const result = {
    provider_refund_id: refund.id,
    status: refund.status,
    amount_paise: refund.amount,
    currency: refund.currency,
    receipt: refund.receipt,
    ...(foundBy ? { found_by: foundBy } : {}),
  };
  if (refund.status === "failed") {
    return { outcome: "failed", error: `Razorpay reports refund ${refund.id} as failed`, result };
  }
  // A pending refund is accepted, not yet processed: its refund.processed webhook applies it.
  return refund.status === "processed"
    ? {
      outcome: "succeeded",
      result,
      events: [razorpayRefundEvent(refund, actionContext(action), { source: "provider-sync", action_id: action.id })],
    }
    : { outcome: "succeeded", result };
}

function subscriptionResult(sub: RazorpaySubscription): Record<string, unknown> {
  return {
    provider_subscription_id: sub.id,
    status: sub.status,
    plan_id: sub.plan_id,
    current_end: sub.current_end ?? null,
    ended_at: sub.ended_at ?? null,
    has_scheduled_changes: sub.has_scheduled_changes ?? null,
    change_scheduled_at: sub.change_scheduled_at ?? null,
  };
}

/** Carries out one action at Razorpay. Never throws. */
export async function performRazorpayAction(action: ProviderAction, client: RazorpayApiClient): Promise<ActionOutcome> {
  const p = action.payload ?? {};
  const subId = str(action.target?.provider_subscription_id);
  const paymentId = str(action.target?.provider_payment_id);
  const needs = (what: string): ActionOutcome => ({ outcome: "failed", error: `a Razorpay ${action.kind} needs ${what}` });
  try {
    switch (action.kind) {
      case "cancel": {
        if (!subId) return needs("target.provider_subscription_id");
        if (typeof p.at_cycle_end !== "boolean") return needs("payload.at_cycle_end (boolean)");
        return { outcome: "succeeded", result: subscriptionResult(await client.cancelSubscription(subId, p.at_cycle_end)) };
      }
      case "pause":
        if (!subId) return needs("target.provider_subscription_id");
        return { outcome: "succeeded", result: subscriptionResult(await client.pauseSubscription(subId)) };
      case "resume":
        if (!subId) return needs("target.provider_subscription_id");
        return { outcome: "succeeded", result: subscriptionResult(await client.resumeSubscription(subId)) };
      case "change_plan": {
        if (!subId) return needs("target.provider_subscription_id");
        const planId = str(p.razorpay_plan_id);
        if (!planId) return needs("payload.razorpay_plan_id");
        const sub = await client.updateSubscriptionPlan(subId, planId, p.at_cycle_end !== false);
        return { outcome: "succeeded", result: subscriptionResult(sub) };
      }
      case "refund": {
        if (!paymentId) return needs("target.provider_payment_id");
        const amount = p.amount_paise;
        const refundId = str(p.refund_id);
        if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount <= 0) {
          return needs("payload.amount_paise (positive integer paise)");
        }
        if (!refundId) return needs("payload.refund_id");
        if (typeof p.currency === "string" && p.currency !== "INR") {
          return { outcome: "failed", error: `Razorpay refunds here are INR only, got ${p.currency}` };
        }
        const notes: Record<string, string> = { refund_id: refundId, action_id: action.id };
        if (typeof p.reason === "string" && p.reason !== "") notes.reason = p.reason.slice(0, 256);
        const refund = await client.refundPayment(paymentId, {
          amount,
          receipt: refundId,
          notes,
          idempotencyKey: await razorpayIdempotencyKey(action.idempotency_key),
        });
        return refundOutcome(refund, action, paymentId, null);
      }
      case "fetch_payment": {
        if (!paymentId) return needs("target.provider_payment_id");
        const payment = await client.fetchPayment(paymentId);
        const event = razorpayPaymentEvent(payment, {
          receipt: action.target.order_ref ?? "",
          provider_order_id: action.target.provider_order_id ?? null,
          provider_subscription_id: action.target.provider_subscription_id ?? null,
        }, "provider-sync");
        if (!action.target.order_ref) event.order_ref = null;
        return {
          outcome: "succeeded",
          result: { provider_payment_id: payment.id, status: payment.status, amount_paise: payment.amount },
          events: [event],
        };
      }
      default:
        return unsupportedAction("razorpay", action.kind);
    }
  } catch (e) {
    return actionOutcomeOf(e);
  }
}
