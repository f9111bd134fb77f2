// Reading Stripe's JSON: plain objects, non-empty strings, `metadata` (always an object, possibly
// empty), expandable fields (an id string, or the object itself when expanded) and lists
// ({object: "list", data: [...]}). Shared by the webhook, the client and the checkout.

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function str(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

/** `metadata` of a Stripe object ({} when absent). */
export function metadataOf(e: Record<string, unknown> | null | undefined): Record<string, unknown> {
  return e && isObject(e.metadata) ? e.metadata : {};
}

/** The id of an expandable field: the string itself, or the expanded object's id. */
export function idOf(v: unknown): string | null {
  if (typeof v === "string") return str(v);
  return isObject(v) ? str(v.id) : null;
}

/** The expanded object of an expandable field, or null when it is only an id. */
export function expanded(v: unknown): Record<string, unknown> | null {
  return isObject(v) ? v : null;
}

/** The items of a Stripe list ({object: "list", data}); [] when it is not one. */
export function listData(v: unknown): Record<string, unknown>[] {
  return isObject(v) && Array.isArray(v.data) ? v.data.filter(isObject) : [];
}

/** A path through nested objects, e.g. at(invoice, "parent", "subscription_details"); null when missing. */
export function at(v: unknown, ...path: string[]): unknown {
  let cur: unknown = v;
  for (const key of path) {
    if (!isObject(cur)) return null;
    cur = cur[key];
  }
  return cur ?? null;
}
