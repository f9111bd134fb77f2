// Stripe's webhook signature: the `Stripe-Signature` header `t=<unix seconds>,v1=<hex>[,v1=...]`
// (v0 and any other scheme ignored), where v1 is the hex HMAC-SHA256, keyed with the endpoint's
// secret (`whsec_...`), of `<t>.<raw body>`. Accepted when any v1 matches any configured secret
// (compared in constant time, every pair checked) and t is within the tolerance of now (300 s,
// as Stripe's own libraries: it bounds how long a captured delivery can be replayed; the event id
// dedupes a replay inside the window).

import { hmacSha256Hex, timingSafeEqual } from "../../crypto.ts";
import type { EnvGetter } from "../types.ts";

/** Seconds a signature's timestamp may differ from now (either way). */
export const STRIPE_SIGNATURE_TOLERANCE_SECONDS = 300;

/**
 * The accepted endpoint secrets: STRIPE_WEBHOOK_SECRET split on commas, trimmed, blanks dropped.
 * During a secret roll set it to "new,old" and remove the old one once Stripe signs with the new one.
 */
export function stripeWebhookSecrets(env: EnvGetter): string[] {
  return (env("STRIPE_WEBHOOK_SECRET") ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** The parts of a Stripe-Signature header: the timestamp and every v1 signature; null when malformed. */
export function parseStripeSignature(header: string): { t: number; v1: string[] } | null {
  let t: number | null = null;
  const v1: string[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t") {
      if (!/^[0-9]{1,12}$/.test(value)) return null;
      t = Number(value);
    } else if (key === "v1" && /^[0-9a-f]{64}$/.test(value)) {
      v1.push(value);
    }
  }
  return t === null ? null : { t, v1 };
}

export type StripeSignatureCheck =
  | { ok: true; timestamp: number }
  | { ok: false; reason: "no_v1" | "malformed" | "mismatch" | "outside_tolerance" };

/**
 * Checks a Stripe-Signature header against the raw body. The HMAC is checked before the time, so
 * an unsigned header never learns whether its timestamp would pass. `nowSeconds` is for tests.
 */
export async function verifyStripeSignature(
  raw: string,
  header: string,
  secrets: string[],
  nowSeconds = Math.floor(Date.now() / 1000),
  toleranceSeconds = STRIPE_SIGNATURE_TOLERANCE_SECONDS,
): Promise<StripeSignatureCheck> {
  const parsed = parseStripeSignature(header);
  if (!parsed) return { ok: false, reason: "malformed" };
  if (parsed.v1.length === 0) return { ok: false, reason: "no_v1" };
  let ok = false;
  for (const secret of secrets) {
    const expected = await hmacSha256Hex(secret, `${parsed.t}.${raw}`);
    // No short-circuit: the time taken does not say which secret or signature matched.
    for (const candidate of parsed.v1) if (timingSafeEqual(expected, candidate)) ok = true;
  }
  if (!ok) return { ok: false, reason: "mismatch" };
  if (Math.abs(nowSeconds - parsed.t) > toleranceSeconds) return { ok: false, reason: "outside_tolerance" };
  return { ok: true, timestamp: parsed.t };
}

/** A Stripe-Signature header for `raw` signed now (or at `t`) with `secret`: for tests and fakes. */
export async function signStripePayload(raw: string, secret: string, t = Math.floor(Date.now() / 1000)): Promise<string> {
  return `t=${t},v1=${await hmacSha256Hex(secret, `${t}.${raw}`)}`;
}
