// Reading Razorpay's JSON: plain objects, non-empty strings, and `notes` (an object, or `[]` when
// empty). Shared by the webhook, the client, reconciliation and the provider actions.

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function str(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

/** `notes` is `[]` when empty and an object otherwise. */
export function notesOf(e: Record<string, unknown> | null): Record<string, unknown> {
  return e && isObject(e.notes) ? e.notes : {};
}
