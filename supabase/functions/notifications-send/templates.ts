// The emails of every notification kind, in one place: a subject, a plain-text body and a simple
// HTML body per kind, from the notification's payload and the context SQL adds
// (billing.notification_context: organization and its time zone, plan, amount payable, merchant
// name). Amounts are rupees with Indian digit grouping (₹1,23,45,678.90), dates are on the
// organization's calendar ("4 December 2026"), both written as the invoice PDF writes them
// (_shared/format.ts), and each email has the one link that matters (the app's billing page).
// A template that cannot be rendered throws TemplateError: the sender marks that notification
// failed and goes on with the others.

import { Constants, type Database } from "../_shared/database.types.ts";
import { formatDate, formatDateTime, formatMoney, INDIA_TIME_ZONE } from "../_shared/format.ts";

type Json = Record<string, unknown>;

/** What a notification is about: the SQL enum public.notification_kind. */
export type NotificationKind = Database["public"]["Enums"]["notification_kind"];

/** Every notification kind, in the enum's order. */
export const NOTIFICATION_KINDS: readonly NotificationKind[] = Constants.public.Enums.notification_kind;

/** A claimed notification as billing.claim_notification_deliveries returns it. */
export interface Delivery {
  id: string;
  organization_id: string;
  subscription_id: string | null;
  kind: string;
  payload: Json;
  attempts: number;
  recipients: string[] | null;
  context: Json | null;
}

export interface RenderOptions {
  /** The app's base URL (APP_URL); else the origin of billing_settings.app_success_url. */
  appUrl?: string | null;
  /** The functions' base URL (SUPABASE_URL + /functions/v1): the billing email confirmation links there. */
  functionsUrl?: string | null;
  /** payment_captured: the invoice's discount (the sender reads it from the invoice document). */
  discount?: { list_cents: number; discount_cents: number; code: string | null; currency: string } | null;
}

export interface Email {
  subject: string;
  text: string;
  html: string;
}

/** A notification whose email cannot be written (unknown kind, data it needs missing). */
export class TemplateError extends Error {
  override name = "TemplateError";
}

/** A payload date on the organization's calendar ("4 December 2026"); a TemplateError when it is not a date. */
function dateOf(at: string, timeZone: string): string {
  return notADate(() => formatDate(at, timeZone));
}

/** A payload instant on the organization's clock ("4 December 2026 at 1:05 am IST"). */
function dateTimeOf(at: string, timeZone: string): string {
  return notADate(() => formatDateTime(at, timeZone));
}

function notADate(format: () => string): string {
  try {
    return format();
  } catch (e) {
    if (e instanceof RangeError) throw new TemplateError(e.message);
    throw e;
  }
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

// Control characters (C0, DEL, C1), bidirectional overrides, embeddings, isolates and marks, and
// the Unicode line and paragraph separators: none belongs in a subject, a header or a line of
// text, and a tenant-written name could use them to forge headers or reverse what a reader sees.
// deno-lint-ignore no-control-regex
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]+/g;

/** The longest value (in characters) a template puts into an email, unless it asks for less. */
export const MAX_VALUE_CHARS = 200;

/**
 * A value fit for a subject, a header or one line of text: unsafe characters become a space,
 * runs of whitespace one space, trimmed, and cut to `max` characters (whole code points, ending
 * with "…" when cut). Every string a template reads from the payload or the context goes
 * through it: names and addresses are written by tenants.
 */
export function cleanText(v: string, max = MAX_VALUE_CHARS): string {
  const one = v.replace(UNSAFE_CHARS, " ").replace(/\s+/g, " ").trim();
  const chars = [...one];
  return chars.length <= max ? one : `${chars.slice(0, max - 1).join("").trimEnd()}…`;
}

const str = (v: unknown): string | null => {
  if (typeof v !== "string") return null;
  const clean = cleanText(v);
  return clean !== "" ? clean : null;
};
const obj = (v: unknown): Json => (typeof v === "object" && v !== null && !Array.isArray(v) ? v as Json : {});

/** The app's billing page: APP_URL + /billing, else app_success_url's origin + /billing; null when neither. */
export function billingLink(context: Json, appUrl?: string | null): string | null {
  const base = str(appUrl) ?? str(context.app_success_url);
  if (!base) return null;
  try {
    const url = new URL(base);
    return str(appUrl) ? `${base.replace(/\/+$/, "")}/billing` : `${url.origin}/billing`;
  } catch {
    return null;
  }
}

/** What every template reads, checked once. */
interface Facts {
  orgName: string;
  /** The recipient's name when the email goes to one person whose name is known. */
  greetingName: string | null;
  timeZone: string;
  planName: string | null;
  interval: string | null;
  amount: string | null;
  seller: string | null;
  link: string | null;
  functionsUrl: string | null;
  discount: RenderOptions["discount"];
  payload: Json;
  context: Json;
  date(key: string, ...more: string[]): string;
  dateTime(key: string): string;
  need<T>(value: T | null | undefined, what: string): T;
}

function factsOf(n: Delivery, options: RenderOptions): Facts {
  const context = obj(n.context);
  const org = obj(context.organization);
  const plan = obj(context.plan);
  const payload = obj(n.payload);
  const timeZone = str(org.timezone) ?? INDIA_TIME_ZONE;
  const amountCents = context.amount_cents;
  const amount = typeof amountCents === "number" || typeof amountCents === "string"
    ? formatMoney(amountCents, str(context.currency) ?? "INR")
    : null;
  const need = <T>(value: T | null | undefined, what: string): T => {
    if (value === null || value === undefined || value === "") {
      throw new TemplateError(`${n.kind} needs ${what}`);
    }
    return value;
  };
  const pick = (keys: string[]) => keys.map((k) => str(payload[k])).find((v) => v !== null) ?? null;
  return {
    orgName: cleanText(str(org.billing_name) ?? str(org.name) ?? "your organization", 100),
    greetingName: (() => {
      const name = str(context.greeting_name);
      return name && cleanText(name, 60);
    })(),
    timeZone,
    planName: str(plan.name) ?? str(payload.plan_name),
    interval: str(plan.interval),
    amount,
    seller: str(context.seller_legal_name),
    link: billingLink(context, options.appUrl),
    functionsUrl: options.functionsUrl ? options.functionsUrl.replace(/\/+$/, "") : null,
    discount: options.discount ?? null,
    payload,
    context,
    date: (key, ...more) => dateOf(need(pick([key, ...more]), `payload.${key}`), timeZone),
    dateTime: (key) => dateTimeOf(need(pick([key]), `payload.${key}`), timeZone),
    need,
  };
}

/** One email's parts before they are laid out as text and HTML. */
interface Draft {
  subject: string;
  /** Paragraphs. */
  lines: string[];
  /** Label: value rows (plan, amount, date...). */
  details: [string, string][];
  /** The link's label (the link is the billing page). */
  action: string;
  /** A closing paragraph after the link. */
  footer?: string;
  /** The link when it is not the billing page. */
  link?: string | null;
}

const per = (interval: string | null) => (interval ? ` per ${interval}` : "");

// A Record over the enum: a kind SQL can queue without a template here fails deno check.
const TEMPLATES: Record<NotificationKind, (f: Facts) => Draft> = {
  renewal_reminder(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const ends = f.date("period_end");
    const days = f.payload.reminder === "1d" ? "tomorrow" : "in 7 days";
    return {
      subject: `Your ${plan} plan ends ${days}: renew for ${amount}`,
      lines: [
        `The ${plan} plan of ${f.orgName} ends on ${ends}. It does not renew by itself: pay ${amount} before then to keep it without a break.`,
        "After that date your organization moves to the free plan until you renew.",
      ],
      details: [["Plan", plan], ["Amount", amount], ["Ends on", ends]],
      action: "Renew now",
    };
  },

  pre_debit_notice(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const merchant = f.need(f.seller, "billing_settings.seller_legal_name (the merchant name)");
    const at = f.dateTime("charge_at");
    const reference = f.need(
      str(f.payload.provider_subscription_id) ?? str(obj(f.context.subscription).provider_subscription_id),
      "the subscription reference",
    );
    return {
      subject: `${merchant} will charge ${amount} on ${f.date("charge_at")} for ${plan}`,
      lines: [
        `${merchant} will charge ${amount} on ${at} to the payment method of your ${plan} subscription (${f.orgName}), under the mandate you approved.`,
        `To stop this charge, cancel the subscription before ${at} in your billing settings (the link below); it then ends at the close of the period already paid for. You can also revoke the mandate in your bank or UPI app.`,
      ],
      details: [["Merchant", merchant], ["Amount", amount], ["Date", at], ["Plan", plan], [
        "Reference",
        reference,
      ]],
      action: "Manage or cancel the subscription",
    };
  },

  dunning_reminder(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const grace = f.date("grace_ends_at");
    return {
      subject: f.payload.day === 3
        ? `Reminder: ${amount} for ${plan} is still unpaid`
        : `Payment due: ${amount} for ${plan}`,
      lines: [
        `The ${plan} plan of ${f.orgName} was due for renewal on ${
          f.date("period_end")
        } and we have not received ${amount}.`,
        `Pay or update your payment method by ${grace} to keep the plan; after that the free plan applies.`,
      ],
      details: [["Plan", plan], ["Amount due", amount], ["Pay by", grace]],
      action: "Pay now",
    };
  },

  payment_failed(f) {
    const amount = f.need(f.amount, "the amount");
    const reason = str(f.payload.error_reason);
    const pack = str(f.payload.credit_pack_name);
    if (pack) {
      return {
        subject: `Your payment of ${amount} for ${pack} failed`,
        lines: [
          `A payment of ${amount} for the credit pack ${pack} of ${f.orgName} did not go through${
            reason ? ` (${reason})` : ""
          }.`,
          "Nothing was charged and no credits were added. Try again, or use another payment method.",
        ],
        details: [
          ["Credit pack", pack],
          ["Amount", amount],
          ...(str(f.payload.receipt) ? [["Reference", str(f.payload.receipt)!] as [string, string]] : []),
        ],
        action: "Try the payment again",
      };
    }
    const plan = f.need(f.planName, "the plan");
    return {
      subject: `Your payment of ${amount} for ${plan} failed`,
      lines: [
        `A payment of ${amount} for the ${plan} plan of ${f.orgName} did not go through${
          reason ? ` (${reason})` : ""
        }.`,
        "Nothing was charged. Try again, or use another payment method.",
      ],
      details: [
        ["Plan", plan],
        ["Amount", amount],
        ...(str(f.payload.receipt) ? [["Reference", str(f.payload.receipt)!] as [string, string]] : []),
      ],
      action: "Try the payment again",
    };
  },

  subscription_canceled(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const ended = f.date("ended_at");
    return {
      subject: `Your ${plan} subscription is cancelled`,
      lines: [
        `The ${plan} subscription of ${f.orgName} (${amount}${
          per(f.interval)
        }) ended on ${ended}, as requested. You will not be charged again.`,
        "Your organization is on the free plan now; you can subscribe again at any time.",
      ],
      details: [["Plan", plan], ["Price", `${amount}${per(f.interval)}`], ["Ended on", ended]],
      action: "Subscribe again",
    };
  },

  subscription_expired(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const ended = f.date("ended_at", "period_end");
    return {
      subject: `Your ${plan} plan has expired`,
      lines: [
        `The ${plan} plan of ${f.orgName} expired on ${ended} without a renewal payment; the free plan applies now.`,
        `Renew for ${amount} to get it back.`,
      ],
      details: [["Plan", plan], ["Renewal", amount], ["Expired on", ended]],
      action: "Renew now",
    };
  },

  trial_ended(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const ended = f.date("trial_end");
    return {
      subject: `Your ${plan} trial has ended`,
      lines: [
        `The free trial of ${plan} for ${f.orgName} ended on ${ended}; the free plan applies now.`,
        `Subscribe for ${amount}${per(f.interval)} to keep everything ${plan} includes.`,
      ],
      details: [["Plan", plan], ["Price", `${amount}${per(f.interval)}`], ["Trial ended", ended]],
      action: "Subscribe",
    };
  },

  plan_downgraded(f) {
    const plan = f.need(f.planName, "the new plan");
    const amount = f.need(f.amount, "the amount");
    const old = str(obj(f.context.old_plan).name);
    const at = f.date("effective_at");
    return {
      subject: `Your plan is now ${plan}`,
      lines: [
        `As scheduled, ${f.orgName} moved${old ? ` from ${old}` : ""} to the ${plan} plan on ${at}.`,
        `Renewals are ${amount}${per(f.interval)} from now on.`,
      ],
      details: [...(old ? [["Previous plan", old] as [string, string]] : []), ["Plan", plan], [
        "Price",
        `${amount}${per(f.interval)}`,
      ], ["Since", at]],
      action: "View your plan",
    };
  },

  subscription_refunded(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const ended = f.date("ended_at");
    return {
      subject: `Your ${plan} payment was refunded`,
      lines: [
        `The payment for the ${plan} plan of ${f.orgName} (${amount}${
          per(f.interval)
        }) was refunded in full, so the paid period ended on ${ended}.`,
        "The refund reaches your account in the usual time for your payment method; the free plan applies now.",
      ],
      details: [["Plan", plan], ["Price", `${amount}${per(f.interval)}`], ["Ended on", ended]],
      action: "View billing",
    };
  },

  subscription_disputed(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const ended = f.date("ended_at");
    return {
      subject: `A dispute ended your ${plan} subscription`,
      lines: [
        `A chargeback on the payment for the ${plan} plan of ${f.orgName} (${amount}${
          per(f.interval)
        }) was decided against us, so the paid period ended on ${ended}.`,
        "If this is a mistake, reply to this email.",
      ],
      details: [["Plan", plan], ["Price", `${amount}${per(f.interval)}`], ["Ended on", ended]],
      action: "View billing",
    };
  },

  payment_disputed(f) {
    const amount = f.need(f.amount, "the amount");
    const plan = f.planName ?? "your subscription";
    return {
      subject: `A payment of ${amount} for ${plan} was disputed`,
      lines: [
        `Your bank or card issuer told us that a payment of ${amount} from ${f.orgName} (${plan}) is disputed. While the dispute is open the subscription is on hold.`,
        "If you did not mean to dispute it, contact your bank, or reply to this email.",
      ],
      details: [["Plan", plan], ["Amount", amount], [
        "Payment",
        f.need(str(f.payload.provider_payment_id), "the payment id"),
      ]],
      action: "View billing",
    };
  },

  payment_captured(f) {
    const amount = f.need(f.amount, "the amount");
    const invoice = f.need(str(f.payload.invoice_number), "payload.invoice_number");
    const paid = f.date("paid_at", "invoice_date");
    const pack = str(f.payload.credit_pack_name);
    if (pack) {
      const given = f.payload.credits;
      const credits = typeof given === "number" ? given.toLocaleString("en-IN") : str(given);
      return {
        subject: `Payment received: ${amount} for ${pack} (invoice ${invoice})`,
        lines: [
          `Thank you: we received ${amount} from ${f.orgName} for the credit pack ${pack} on ${paid}${
            credits ? `; ${credits} credits were added` : ""
          }.`,
          `The GST tax invoice ${invoice} is attached as a PDF; you can also download it from your billing settings.`,
        ],
        details: [
          ["Credit pack", pack],
          ...(credits ? [["Credits", credits] as [string, string]] : []),
          ["Amount paid", amount],
          ["Paid on", paid],
          ["Invoice", invoice],
        ],
        action: "View your invoices",
      };
    }
    const plan = f.need(f.planName, "the plan");
    // The receipt: how it was paid, the period it paid for and what happens at its end.
    const receipt = obj(f.context.receipt);
    const method = str(receipt.method);
    const paidWith = method ? `${method.replaceAll("_", " ")}${str(receipt.provider) ? ` via ${receipt.provider}` : ""}` : null;
    const sub = obj(f.context.subscription);
    const from = str(sub.current_period_start);
    const until = str(sub.current_period_end);
    const period = from && until ? `${dateOf(from, f.timeZone)} to ${dateOf(until, f.timeZone)}` : null;
    const renews = until && !sub.cancel_at_period_end
      ? (str(sub.provider_subscription_id)
        ? [["Next renewal", dateOf(until, f.timeZone)] as [string, string]]
        : [["Renew by", dateOf(until, f.timeZone)] as [string, string]])
      : until
      ? [["Ends on (will not renew)", dateOf(until, f.timeZone)] as [string, string]]
      : [];
    // A discounted payment: what the code took off the list price (the invoice shows the same).
    const d = f.discount;
    const list = d && formatMoney(d.list_cents, d.currency);
    const off = d && formatMoney(d.discount_cents, d.currency);
    const code = d?.code ? `Discount (${d.code})` : "Discount";
    return {
      subject: `Payment received: ${amount} for ${plan} (invoice ${invoice})`,
      lines: [
        `Thank you: we received ${amount} from ${f.orgName} for the ${plan} plan on ${paid}.`,
        ...(d
          ? [`${d.code ? `The code ${d.code}` : "A discount"} took ${off} off the list price of ${list}; GST is on the price after the discount.`]
          : []),
        `The GST tax invoice ${invoice} is attached as a PDF; you can also download it from your billing settings.`,
      ],
      details: [
        ["Plan", plan],
        ...(d ? [["List price", list!], [code, `-${off}`]] as [string, string][] : []),
        ["Amount paid", amount],
        ["Paid on", paid],
        ...(paidWith ? [["Payment method", paidWith] as [string, string]] : []),
        ...(str(receipt.provider_payment_id) ? [["Payment reference", str(receipt.provider_payment_id)!] as [string, string]] : []),
        ...(period ? [["Period paid for", period] as [string, string]] : []),
        ...renews,
        ["Invoice", invoice],
      ],
      action: "View your invoices",
    };
  },

  trial_ending(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const ends = f.date("trial_end");
    return {
      subject: `Your ${plan} trial ends on ${ends}`,
      lines: [
        `The free trial of ${plan} for ${f.orgName} ends on ${ends}.`,
        `Subscribe for ${amount}${per(f.interval)} before then to keep everything ${plan} includes; otherwise the free plan applies after that date.`,
      ],
      details: [["Plan", plan], ["Price", `${amount}${per(f.interval)}`], ["Trial ends", ends]],
      action: "Subscribe",
    };
  },

  cancellation_scheduled(f) {
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    const ends = f.date("period_end");
    return {
      subject: `Your ${plan} subscription will end on ${ends}`,
      lines: [
        `As requested, the ${plan} subscription of ${f.orgName} (${amount}${
          per(f.interval)
        }) is set to cancel. It stays active until ${ends} and will not renew; you will not be charged again.`,
        "Changed your mind? Resume the subscription before that date in your billing settings.",
      ],
      details: [["Plan", plan], ["Price", `${amount}${per(f.interval)}`], ["Ends on", ends]],
      action: "Keep your subscription",
    };
  },

  quota_threshold(f) {
    const metricName = f.need(str(f.payload.metric), "payload.metric");
    // The AI spend cap is counted in paise: its amounts are money. The name people read is the
    // catalog's (public.usage_metric_catalog, in the context), never the metric's code.
    const spend = metricName === "ai_spend_paise";
    const metric = str(f.context.metric_name) ?? metricName.replaceAll("_", " ");
    const window = f.need(str(f.payload.window), "payload.window");
    const threshold = Number(f.payload.threshold);
    const used = Number(f.payload.used);
    const limit = Number(f.payload.limit);
    if (![threshold, used, limit].every(Number.isFinite) || limit <= 0) {
      throw new TemplateError("quota_threshold needs payload.threshold, used and limit");
    }
    const count = (n: number) => spend ? formatMoney(n) : new Intl.NumberFormat("en-IN").format(n);
    const resets = f.dateTime("resets_at");
    const plan = f.planName ? `the ${f.planName} plan` : "your plan";
    const full = threshold >= 100;
    return {
      subject: full
        ? `${f.orgName} has used all of its ${metric} for this ${window}`
        : `${f.orgName} has used ${threshold}% of its ${metric} for this ${window}`,
      lines: [
        `${f.orgName} has used ${count(used)} of the ${count(limit)} ${metric} ${plan} allows per ${window} (${threshold}%).`,
        full
          ? `Further requests are refused until the ${window} resets on ${resets}. Upgrade the plan to keep going now.`
          : `The count starts again on ${resets}. If you expect to need more before then, upgrade the plan.`,
      ],
      details: [["Usage", `${count(used)} of ${count(limit)}`], ["Threshold", `${threshold}%`], ["Window", `per ${window}`], [
        "Resets on",
        resets,
      ]],
      action: "View usage and plans",
    };
  },

  credits_low(f) {
    const balance = Number(f.payload.balance);
    const threshold = Number(f.payload.threshold);
    if (![balance, threshold].every(Number.isFinite)) {
      throw new TemplateError("credits_low needs payload.balance and threshold");
    }
    const count = (n: number) => new Intl.NumberFormat("en-IN").format(n);
    return {
      subject: `${f.orgName} has ${count(balance)} credits left`,
      lines: [
        `The credit balance of ${f.orgName} fell under ${count(threshold)}: ${count(balance)} credits are left.`,
        "When they run out, usage paid in credits is refused. Buy a credit pack to keep going.",
      ],
      details: [["Balance", `${count(balance)} credits`], ["Warning under", `${count(threshold)} credits`]],
      action: "Buy credits",
    };
  },

  ai_batch_completed(f) {
    const requests = Number(f.payload.requests);
    const settled = Number(f.payload.settled);
    const failed = Number(f.payload.failed);
    const paise = Number(f.payload.charged_paise);
    if (![requests, settled, failed, paise].every(Number.isInteger)) {
      throw new TemplateError("ai_batch_completed needs payload.requests, settled, failed and charged_paise");
    }
    const batch = str(f.payload.batch_id) ?? "";
    const count = (n: number) => new Intl.NumberFormat("en-IN").format(n);
    if (f.payload.state === "released") {
      return {
        subject: `${f.orgName}'s AI batch could not be run`,
        lines: [
          `Groq did not run the AI batch of ${count(requests)} requests, twice. Nothing was charged: every request's reservation was given back.`,
          "Submit the requests again, or send them one by one.",
        ],
        details: [["Batch", batch], ["Requests", count(requests)], ["Charged", formatMoney(0, "INR")]],
        action: "View AI usage",
      };
    }
    return {
      subject: `${f.orgName}'s AI batch is done: ${count(settled)} of ${count(requests)} requests answered`,
      lines: [
        `The nightly AI batch of ${count(requests)} requests is done: ${count(settled)} answered, ${count(failed)} failed (not charged).`,
        "The answers are ready to read; each answered request was charged at the batch price.",
      ],
      details: [["Batch", batch], ["Answered", count(settled)], ["Failed", count(failed)], ["Charged", formatMoney(paise, "INR")]],
      action: "Read the answers",
    };
  },

  provider_action_failed(f) {
    const what = (str(f.payload.kind) ?? "update").replaceAll("_", " ");
    const provider = str(f.payload.provider) ?? "the payment provider";
    const error = str(f.payload.error) ? `: ${str(f.payload.error)}` : "";
    if (f.payload.kind === "refund") {
      // A refund is about a payment, not a plan: its payment id and amount (the context's refund).
      const refund = obj(f.context.refund);
      const payment = f.need(str(refund.provider_payment_id) ?? str(obj(f.payload.target).provider_payment_id), "the payment");
      const amount = f.need(f.amount, "the refund amount");
      return {
        subject: `Refund failed at ${provider}: ${amount} of payment ${payment}`,
        lines: [
          `We tried to refund ${amount} of payment ${payment} of ${f.orgName} at ${provider} and it kept failing${error}.`,
          "Our team has been told. Reply to this email if a refund you expected has not reached you.",
        ],
        details: [["Payment", payment], ["Refund", amount], ["Action", what], ["Provider", provider]],
        action: "Check your payments",
      };
    }
    const plan = f.need(f.planName, "the plan");
    const amount = f.need(f.amount, "the amount");
    return {
      subject: `Action failed at ${provider}: ${what} of your ${plan} subscription`,
      lines: [
        `We tried to carry out "${what}" on the ${plan} subscription (${amount}${
          per(f.interval)
        }) of ${f.orgName} at ${provider} and it kept failing${error}.`,
        "Our team has been told. Check your subscription in the billing settings; reply to this email if a charge looks wrong.",
      ],
      details: [["Plan", plan], ["Price", `${amount}${per(f.interval)}`], ["Action", what], [
        "Provider",
        provider,
      ]],
      action: "Check your subscription",
    };
  },

  billing_email_confirmation(f) {
    const c = obj(f.context.confirmation);
    const email = f.need(str(c.email), "the address to confirm");
    const token = f.need(str(c.token), "the confirmation token");
    const expires = dateTimeOf(f.need(str(c.expires_at), "the link's expiry"), f.timeZone);
    return {
      subject: `Confirm ${email} as the billing email of ${f.orgName}`,
      lines: [
        `Someone set ${email} as the billing email of ${f.orgName}. Confirm it to receive its receipts, invoices and billing notices here.`,
        `Until it is confirmed they go to the organization's owners and admins. The link works until ${expires}. If you did not expect this, ignore this email: nothing is sent here without the confirmation.`,
      ],
      details: [["Billing email", email], ["Link valid until", expires]],
      action: "Confirm this billing email",
      // The billing-email-confirm function: it needs no account and no app.
      link: f.functionsUrl ? `${f.functionsUrl}/billing-email-confirm?token=${encodeURIComponent(token)}` : null,
      footer: `Confirmation code: ${token}`,
    };
  },
};

/** The kinds that have a template. */
export const TEMPLATE_KINDS = Object.keys(TEMPLATES) as NotificationKind[];

/** The email of one notification; throws TemplateError when it cannot be written. */
export function renderNotification(n: Delivery, options: RenderOptions = {}): Email {
  const template = Object.hasOwn(TEMPLATES, n.kind) ? TEMPLATES[n.kind as NotificationKind] : undefined;
  if (!template) throw new TemplateError(`no template for kind ${n.kind}`);
  const f = factsOf(n, options);
  const d = template(f);
  const link = d.link !== undefined ? d.link : f.link;
  // The subject is one line whatever went into it.
  const subject = cleanText(d.subject, 250);
  const greeting = f.greetingName ? `Hello ${f.greetingName},` : "Hello,";
  const text = [
    greeting,
    "",
    ...d.lines.flatMap((l) => [l, ""]),
    ...d.details.map(([k, v]) => `${k}: ${v}`),
    "",
    link ? `${d.action}: ${link}` : `${d.action}: open the billing settings of your organization.`,
    ...(d.footer ? ["", d.footer] : []),
    "",
    f.seller ? `— ${f.seller}` : "",
  ].join("\n").trimEnd() + "\n";
  const e = escapeHtml;
  const html = [
    "<!doctype html>",
    `<html><head><meta charset="utf-8"><title>${e(subject)}</title></head>`,
    '<body style="font-family: sans-serif; line-height: 1.5; color: #222; max-width: 560px;">',
    `<p>${e(greeting)}</p>`,
    ...d.lines.map((l) => `<p>${e(l)}</p>`),
    '<table style="border-collapse: collapse;">',
    ...d.details.map(([k, v]) =>
      `<tr><td style="padding: 2px 12px 2px 0; color: #666;">${
        e(k)
      }</td><td style="padding: 2px 0;"><strong>${e(v)}</strong></td></tr>`
    ),
    "</table>",
    link
      ? `<p><a href="${
        e(link)
      }" style="display: inline-block; padding: 8px 16px; background: #1a56db; color: #fff; text-decoration: none; border-radius: 4px;">${
        e(d.action)
      }</a></p>`
      : `<p>${e(d.action)}: open the billing settings of your organization.</p>`,
    ...(d.footer ? [`<p>${e(d.footer)}</p>`] : []),
    f.seller ? `<p style="color: #666;">— ${e(f.seller)}</p>` : "",
    "</body></html>",
  ].filter((l) => l !== "").join("\n");
  return { subject, text, html };
}
