// Sending one email through Resend's HTTP API with the official client, and what its answer means
// for the notification: sent, retry later (network, timeout, 5xx, 429, a concurrent request with
// the same idempotency key), or failed for good (any other 4xx: the provider's message is kept).
// The client reads RESEND_BASE_URL (the fake email API under `npm start` and in tests) and is
// given RESEND_API_KEY.
import { Resend } from "npm:resend@6.38.0";
import type { Email } from "./templates.ts";

export type SendOutcome =
  | { state: "sent"; provider_id: string | null }
  | { state: "retry"; error: string; retry_after_seconds: number | null }
  | { state: "failed"; error: string };

export interface OutgoingEmail extends Email {
  from: string;
  to: string[];
  /** The notification id: Resend answers a repeated key with the first email and sends nothing. */
  idempotencyKey: string;
  tags?: { name: string; value: string }[];
  /** Files attached (the client sends the bytes as base64), e.g. the invoice PDF. */
  attachments?: { filename: string; content: Uint8Array }[];
}

/** How long one call to Resend may take before it counts as a transient failure. */
const SEND_TIMEOUT_MS = 15_000;

let client: Resend | undefined;
function resend(): Resend {
  client ??= new Resend(Deno.env.get("RESEND_API_KEY"));
  return client;
}

interface ResendError {
  statusCode?: number | null;
  name?: string;
  message?: string;
}

/** Whether a Resend error may pass on its own (so the notification is tried again later). */
export function isTransient(error: ResendError): boolean {
  const status = error.statusCode;
  if (status === null || status === undefined) return true; // network error or timeout
  if (status === 429 || status >= 500) return true;
  return status === 409 && error.name === "concurrent_idempotent_requests";
}

function retryAfter(headers: Record<string, string> | null): number | null {
  const v = headers?.["retry-after"];
  if (!v) return null;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.ceil(n) : null;
}

/** Sends one email; never throws. */
export async function sendEmail(email: OutgoingEmail): Promise<SendOutcome> {
  try {
    const { data, error, headers } = await resend().emails.send({
      from: email.from,
      to: email.to,
      subject: email.subject,
      text: email.text,
      html: email.html,
      tags: email.tags,
      attachments: email.attachments,
    }, { idempotencyKey: email.idempotencyKey, signal: AbortSignal.timeout(SEND_TIMEOUT_MS) });
    if (!error) return { state: "sent", provider_id: data?.id ?? null };
    const e = error as ResendError;
    const message = `resend ${e.statusCode ?? "network"} ${e.name ?? "error"}: ${e.message ?? ""}`.trim();
    return isTransient(e)
      ? { state: "retry", error: message, retry_after_seconds: retryAfter(headers) }
      : { state: "failed", error: message };
  } catch (e) {
    // The client turns network errors into an error answer; anything thrown is still transient.
    return {
      state: "retry",
      error: `resend call failed: ${(e as Error)?.message ?? String(e)}`,
      retry_after_seconds: null,
    };
  }
}
