// PayU's hashes: the request hash of the checkout form, the reverse hash of a posted answer
// (webhook and the browser's return), and the command API hash.

import { sha512Hex, timingSafeEqual } from "../../crypto.ts";

export interface PayuRequestParams {
  txnid: string;
  amount: string;
  productinfo: string;
  firstname: string;
  email: string;
  udf1?: string;
  udf2?: string;
  udf3?: string;
  udf4?: string;
  udf5?: string;
}

/** sha512(key|txnid|amount|productinfo|firstname|email|udf1|udf2|udf3|udf4|udf5||||||SALT). */
export function requestHash(params: PayuRequestParams, key: string, salt: string): Promise<string> {
  const p = params;
  const s = [
    key,
    p.txnid,
    p.amount,
    p.productinfo,
    p.firstname,
    p.email,
    p.udf1 ?? "",
    p.udf2 ?? "",
    p.udf3 ?? "",
    p.udf4 ?? "",
    p.udf5 ?? "",
    "",
    "",
    "",
    "",
    "",
    salt,
  ].join("|");
  return sha512Hex(s);
}

type Posted = URLSearchParams | Record<string, string | undefined>;

function field(posted: Posted, name: string): string | undefined {
  return posted instanceof URLSearchParams ? (posted.get(name) ?? undefined) : posted[name];
}

/**
 * Reverse (response) hash over the values exactly as posted:
 * sha512([additionalCharges|]SALT|status||||||udf5|udf4|udf3|udf2|udf1|email|firstname|productinfo|amount|txnid|key).
 * `additionalCharges` or `additional_charges`, when present in the POST, is prefixed.
 */
export function reverseHash(posted: Posted, key: string, salt: string): Promise<string> {
  const f = (name: string) => field(posted, name) ?? "";
  const parts = [
    salt,
    f("status"),
    "",
    "",
    "",
    "",
    "",
    f("udf5"),
    f("udf4"),
    f("udf3"),
    f("udf2"),
    f("udf1"),
    f("email"),
    f("firstname"),
    f("productinfo"),
    f("amount"),
    f("txnid"),
    key,
  ];
  const charges = field(posted, "additionalCharges") ?? field(posted, "additional_charges");
  if (charges !== undefined) parts.unshift(charges);
  return sha512Hex(parts.join("|"));
}

/** True when the posted `hash` equals the reverse hash (constant-time comparison). */
export async function verifyReverseHash(posted: Posted, key: string, salt: string): Promise<boolean> {
  const given = field(posted, "hash");
  if (!given) return false;
  return timingSafeEqual(await reverseHash(posted, key, salt), given);
}

/** Command API hash: sha512(key|command|var1|SALT). */
export function commandHash(key: string, command: string, var1: string, salt: string): Promise<string> {
  return sha512Hex(`${key}|${command}|${var1}|${salt}`);
}
