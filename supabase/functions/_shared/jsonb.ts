// JSON text that Postgres' jsonb accepts, for every value the functions send to SQL as jsonb.
//
// JSON.stringify writes U+0000 as the escape \u0000 and a lone UTF-16 surrogate as \udXXX, both
// valid JSON, but jsonb refuses them ("unsupported Unicode escape sequence"; a text value cannot
// hold NUL, and a lone surrogate is no character). A completion that echoes U+0000, or a signed
// provider event carrying it in a free-text field, would then never be stored: the settlement
// would fail, a webhook would answer 500 on every delivery.

/** The replacement for what jsonb cannot hold: U+FFFD REPLACEMENT CHARACTER. */
export const JSONB_REPLACEMENT = "\uFFFD";

// deno-lint-ignore no-control-regex
const UNSAFE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const UNSAFE_ALL = new RegExp(UNSAFE.source, "g");
/** What JSON.stringify writes for U+0000 or a lone surrogate (and, rarely, an escaped backslash before such letters). */
const MAYBE_UNSAFE_ESCAPE = /\\u(?:0000|d[89a-f])/i;

/** s with every U+0000 and every lone surrogate replaced by U+FFFD (s itself when there is none). */
export function jsonbSafeString(s: string): string {
  return UNSAFE.test(s) ? s.replace(UNSAFE_ALL, JSONB_REPLACEMENT) : s;
}

/**
 * JSON.stringify(value) made safe for a `::jsonb` cast: in every string, object keys included,
 * U+0000 and lone surrogates become U+FFFD (so the stored text differs from the original only
 * there). Everything else is exactly JSON.stringify's output (toJSON, undefined, order of keys).
 * A signature is always checked on the raw bytes before this: only what is stored changes.
 */
export function jsonbText(value: unknown): string {
  // The common case first: JSON.stringify writes both as escapes (\u0000, \udXXX), so text
  // without one needs nothing (an escaped backslash before "u0000" only takes the slow path).
  const text = JSON.stringify(value);
  if (text === undefined || !MAYBE_UNSAFE_ESCAPE.test(text)) return text;
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "string") return jsonbSafeString(v);
    if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).some((k) => UNSAFE.test(k))) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [jsonbSafeString(k), x]));
    }
    return v;
  });
}
