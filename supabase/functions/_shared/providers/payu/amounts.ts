// PayU's amounts: a 2-decimal rupee string on the wire, integer paise everywhere else.

import { ProviderError } from "../types.ts";

/** Integer paise -> PayU's 2-decimal rupee string: 49900 -> "499.00". Throws on non-integers/negatives. */
export function paiseToRupees(paise: number): string {
  if (!Number.isSafeInteger(paise) || paise < 0) {
    throw new ProviderError(400, "invalid_amount", `amount must be a non-negative integer of paise`);
  }
  const rupees = Math.floor(paise / 100);
  const rest = paise % 100;
  return `${rupees}.${String(rest).padStart(2, "0")}`;
}

const RUPEES = /^(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?$/;

/**
 * A rupee decimal string -> integer paise, parsed from the digits (never through a float):
 * "499.00" -> 49900, "499" -> 49900, "499.5" -> 49950. Rejects signs, exponents, more than two
 * decimals, leading zeros, blanks. Throws ProviderError("invalid_amount").
 */
export function rupeesToPaise(rupees: string): number {
  const m = typeof rupees === "string" ? RUPEES.exec(rupees) : null;
  if (!m) throw new ProviderError(400, "invalid_amount", `malformed rupee amount`);
  const whole = Number(m[1]);
  const fraction = Number((m[2] ?? "").padEnd(2, "0"));
  return whole * 100 + fraction;
}
