// POST /functions/v1/notifications-send (service key only): claims the notifications due
// (billing.claim_notification_deliveries: for update skip locked, a 5-minute lease, with each one's
// recipients and what its template needs), renders each (templates.ts) and sends it through Resend
// (send.ts) with the notification id as the idempotency key, so a notification is sent once even
// when a lease runs out mid-send and another sender claims it again. Then, per notification:
//   sent                                  billing.mark_notification_sent(id)
//   transient failure (network, 5xx, 429) billing.retry_notification(id, error, retry-after):
//                                         tried again after a backoff, failed at the 10th attempt
//   permanent failure (other 4xx), no recipient, a template that cannot render
//                                         billing.mark_notification_failed(id, reason)
// A payment_captured email attaches the invoice PDF (payload.invoice_id, public.tax_document rendered
// by _shared/invoice-pdf), named after the invoice number, and its text says the discount when the
// invoice has one (the list price and the code, from the same document); an invoice that does not
// exist fails the notification, a database error retries it.
// An organization's notifications are sent one after another in the order claimed (the order of
// their events), organizations side by side. One notification's failure never stops the others. pg_cron calls it every minute where pg_net
// exists (billing.schedule_jobs()); `npm start`'s ticker calls it locally.
// Env: RESEND_API_KEY, EMAIL_FROM (e.g. "Acme Billing <billing@acme.in>", a verified Resend
// domain), RESEND_BASE_URL (read by the client; the fake under `npm start` and in tests), APP_URL
// (optional: the app's base URL for links; else billing_settings.app_success_url's origin).
// Body (optional) {limit} (1 to 1000, default 50).
// 200 {claimed, sent, retried, failed, items: [{id, kind, state, error?}]};
// 401 without a valid key (missing_authorization, invalid_jwt, invalid_api_key), 403 forbidden for
// a publishable key, the anon key or a user's token,
// 503 email_not_configured when RESEND_API_KEY or EMAIL_FROM is not set (nothing is claimed).
import { asService } from "../_shared/db.ts";
import { documentFileName, isDiscounted, renderTaxDocument, type TaxDocument } from "../_shared/invoice-pdf/render.ts";
import { handle, HttpError, json, UUID_RE } from "../_shared/http.ts";
import { inBatches, workerLimit } from "../_shared/worker.ts";
import { sendEmail } from "./send.ts";
import { type Delivery, renderNotification, type RenderOptions, TemplateError } from "./templates.ts";

const CONCURRENCY = 8;

export interface DeliveryOutcome {
  id: string;
  kind: string;
  state: "sent" | "retry" | "failed";
  error?: string;
}

async function record(outcome: DeliveryOutcome, retryAfterSeconds: number | null = null): Promise<void> {
  await asService(async (tx) => {
    if (outcome.state === "sent") {
      await tx`select billing.mark_notification_sent(${outcome.id}::uuid)`;
    } else if (outcome.state === "retry") {
      const [r] = await tx<{ state: string | null }[]>`
        select billing.retry_notification(${outcome.id}::uuid, ${
        outcome.error ?? "failed"
      }, ${retryAfterSeconds}::integer) as state`;
      if (r?.state === "failed") outcome.state = "failed";
    } else {
      await tx`select billing.mark_notification_failed(${outcome.id}::uuid, ${outcome.error ?? "failed"})`;
    }
  });
}

/** A database error while reading what an email needs: the notification is tried again later. */
class TransientError extends Error {
  override name = "TransientError";
}

/** The invoice a payment_captured email is about (public.tax_document), nothing for the others. */
async function invoiceOf(n: Delivery): Promise<TaxDocument | undefined> {
  if (n.kind !== "payment_captured") return undefined;
  const id = n.payload?.invoice_id;
  if (typeof id !== "string" || !UUID_RE.test(id)) {
    throw new TemplateError("payment_captured needs payload.invoice_id");
  }
  let doc: TaxDocument;
  try {
    [{ doc }] = await asService((tx) =>
      tx<{ doc: TaxDocument }[]>`select public.tax_document(${id.toLowerCase()}) as doc`
    );
  } catch (e) {
    if ((e as { code?: string })?.code === "P0002") throw new TemplateError(`invoice ${id} does not exist`);
    throw new TransientError(`reading invoice ${id}: ${(e as Error)?.message ?? String(e)}`);
  }
  return doc;
}

/** The invoice's discount (its discounted lines summed) for the email's text; null without one. */
function discountOf(doc: TaxDocument | undefined): RenderOptions["discount"] {
  const lines = doc?.lines.filter(isDiscounted) ?? [];
  if (!doc || lines.length === 0) return null;
  const codes = [...new Set(lines.map((l) => l.discount_code).filter((c): c is string => !!c))];
  return {
    list_cents: lines.reduce((sum, l) => sum + Number(l.list_cents), 0),
    discount_cents: lines.reduce((sum, l) => sum + Number(l.discount_cents), 0),
    code: codes.length === 1 ? codes[0] : null,
    currency: doc.currency,
  };
}

/** Renders, sends and records one claimed notification. Never throws. */
export async function deliver(
  n: Delivery,
  from: string,
  appUrl: string | null,
  functionsUrl: string | null = null,
): Promise<DeliveryOutcome> {
  const outcome: DeliveryOutcome = { id: n.id, kind: n.kind, state: "failed" };
  let retryAfter: number | null = null;
  try {
    const to = n.recipients ?? [];
    if (to.length === 0) {
      outcome.error =
        "no recipient: the organization has no billing email and no owner or admin with an email";
    } else {
      const doc = await invoiceOf(n);
      const email = renderNotification(n, { appUrl, functionsUrl, discount: discountOf(doc) });
      const attachments = doc && [{ filename: documentFileName(doc), content: await renderTaxDocument(doc) }];
      const sent = await sendEmail({
        ...email,
        attachments,
        from,
        to,
        idempotencyKey: n.id,
        tags: [{ name: "kind", value: n.kind }],
      });
      outcome.state = sent.state;
      if (sent.state !== "sent") outcome.error = sent.error;
      if (sent.state === "retry") retryAfter = sent.retry_after_seconds;
    }
  } catch (e) {
    outcome.state = e instanceof TransientError ? "retry" : "failed";
    outcome.error = e instanceof TransientError
      ? e.message
      : e instanceof TemplateError
      ? `template: ${e.message}`
      : `template: ${(e as Error)?.message ?? String(e)}`;
  }
  try {
    await record(outcome, retryAfter);
  } catch (e) {
    // Unrecorded: the lease runs out and the next claim tries again (the idempotency key keeps
    // a second send from reaching anyone twice).
    outcome.state = "retry";
    outcome.error = `not recorded: ${(e as Error)?.message ?? String(e)}`;
  }
  return outcome;
}

export const handler = handle("notifications-send", async (req) => {
  const limit = await workerLimit(req, "notifications-send", { defaultLimit: 50, maxLimit: 1000 });
  const from = Deno.env.get("EMAIL_FROM");
  if (!Deno.env.get("RESEND_API_KEY") || !from) {
    throw new HttpError(
      503,
      "email_not_configured",
      "set RESEND_API_KEY and EMAIL_FROM to send notifications",
    );
  }
  const appUrl = Deno.env.get("APP_URL") || null;
  // Links to a function (the billing email confirmation) start here.
  const supabaseUrl = Deno.env.get("SUPABASE_URL");
  const functionsUrl = supabaseUrl ? `${supabaseUrl.replace(/\/+$/, "")}/functions/v1` : null;

  const due = await asService((tx) =>
    tx<Delivery[]>`select id, organization_id, subscription_id, kind, payload, attempts, recipients, context
      from billing.claim_notification_deliveries(${limit})`
  );
  // Per organization, one after another in the order they were claimed (the order of their
  // events: billing.claim_notifications); organizations side by side.
  const byOrganization = new Map<string, Delivery[]>();
  for (const n of due) byOrganization.set(n.organization_id, [...(byOrganization.get(n.organization_id) ?? []), n]);
  const outcomes = new Map<string, DeliveryOutcome>();
  await inBatches([...byOrganization.values()], CONCURRENCY, async (group) => {
    for (const n of group) outcomes.set(n.id, await deliver(n, from, appUrl, functionsUrl));
  });
  const items: DeliveryOutcome[] = due.map((n) => outcomes.get(n.id)!);
  return json({
    claimed: due.length,
    sent: items.filter((o) => o.state === "sent").length,
    retried: items.filter((o) => o.state === "retry").length,
    failed: items.filter((o) => o.state === "failed").length,
    items,
  });
});
