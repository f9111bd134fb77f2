// Reading PayU's answers and posts: non-empty strings, ids (text or numbers), India-time
// timestamps, and the txnid shape we send and accept. Shared by the webhook, checkout,
// reconciliation and the provider actions.

/** PayU `addedon` ("2024-07-01 12:34:56", India time) -> ISO UTC, else null. */
export function payuTimeToIso(value: string | undefined | null): string | null {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$/.exec(value ?? "");
  if (!m) return null;
  const d = new Date(`${m[1]}T${m[2]}+05:30`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function nonEmpty(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

export function idText(v: unknown): string | null {
  return typeof v === "string" && v.trim() !== "" ? v.trim() : typeof v === "number" && Number.isFinite(v) ? String(v) : null;
}

/** Our txnid (the order's receipt): 1-25 characters of A-Z a-z 0-9 _ -. */
export const TXNID = /^[A-Za-z0-9_\-]{1,25}$/;
