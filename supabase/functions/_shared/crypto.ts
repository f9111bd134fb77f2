// Hashing helpers: SHA-256 (the AI cache key; node:crypto), SHA-512 and HMAC-SHA256 (provider
// signatures) through crypto.subtle, lowercase hex output, and a constant-time comparison (the providers' official SDKs
// compare with `===`; we do not).

import { createHash } from "node:crypto";

const encoder = new TextEncoder();

/** Lowercase hex of the given bytes. */
export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (const b of view) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * SHA-256 of the UTF-8 bytes of `message`, as 64 lowercase hex characters. node:crypto hashes in
 * place; crypto.subtle.digest is an asynchronous operation that Deno hands to another thread, and
 * the AI gateway computes one per request before it can reserve.
 */
export function sha256Hex(message: string): Promise<string> {
  return Promise.resolve(createHash("sha256").update(message, "utf8").digest("hex"));
}

/** SHA-512 of the UTF-8 bytes of `message`, as 128 lowercase hex characters. */
export async function sha512Hex(message: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-512", encoder.encode(message)));
}

/**
 * Imported HMAC keys by secret: importing took as long as signing a webhook body (about 35 µs
 * each here), and a function signs with the same one or two secrets on every request. A few
 * entries at most (the secrets in the env); cleared if it ever holds more.
 */
const hmacKeys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    if (hmacKeys.size >= 16) hmacKeys.clear();
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    hmacKeys.set(secret, key);
  }
  return key;
}

/** HMAC-SHA256 keyed with the UTF-8 bytes of `secret` over the UTF-8 bytes of `message`, as 64 hex chars. */
export async function hmacSha256Hex(secret: string, message: string): Promise<string> {
  return toHex(await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(message)));
}

/**
 * Compares two strings (as UTF-8 bytes) or byte arrays in time that depends only on their lengths,
 * never on where they first differ. Different lengths are unequal.
 */
export function timingSafeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const x = typeof a === "string" ? encoder.encode(a) : a;
  const y = typeof b === "string" ? encoder.encode(b) : b;
  const len = Math.max(x.length, y.length);
  let diff = x.length ^ y.length;
  for (let i = 0; i < len; i++) {
    // Out-of-range reads yield undefined -> 0 after `| 0`; the length check above already failed them.
    diff |= (x[i] | 0) ^ (y[i] | 0);
  }
  return diff === 0;
}
