// Money and dates as people read them, shared by the emails (notifications-send/templates.ts) and
// the invoice PDF (invoice-pdf/render.ts), so that an email and the document it sends show the same
// figure and the same date the same way:
//
//   money  paise as rupees, Indian digit grouping, two decimals: 12345678 -> "₹1,23,456.78";
//          a credit (negative) with a leading minus: "-₹1,178.82"; another currency as its code
//          and the same figure: "USD 1,178.82"
//   dates  "4 December 2026": an instant on India's calendar (or the time zone given, e.g. an
//          organization's); a calendar date "YYYY-MM-DD" (an invoice date) is that day as it is
//   times  "4 December 2026 at 1:05 am IST"
//
// Amounts are computed from the digits (BigInt), never through a float, so any number of paise is
// shown exactly.

/** The time zone of the documents and of an organization that has not set its own. */
export const INDIA_TIME_ZONE = "Asia/Kolkata";

/** Indian digit grouping of a whole number's digits: "12345678" -> "1,23,45,678" (thousands, then lakhs, crores ...). */
export function groupIndian(digits: string): string {
  if (digits.length <= 3) return digits;
  return `${digits.slice(0, -3).replace(/\B(?=(\d{2})+(?!\d))/g, ",")},${digits.slice(-3)}`;
}

/**
 * Integer paise (a number, a bigint, or a decimal string as Postgres sends a bigint) as money:
 * "₹1,23,456.78" for INR, "USD 1,23,456.78" for another currency, "-₹0.01" for a negative amount.
 * A fraction of a paisa or a non-number throws (RangeError, SyntaxError), as BigInt does.
 */
export function formatMoney(paise: number | bigint | string, currency = "INR"): string {
  const value = BigInt(paise);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const figure = `${groupIndian((abs / 100n).toString())}.${(abs % 100n).toString().padStart(2, "0")}`;
  return `${negative ? "-" : ""}${currency === "INR" ? "₹" : `${currency} `}${figure}`;
}

const CALENDAR_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

function dateFormat(timeZone: string): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat("en-IN", { timeZone, day: "numeric", month: "long", year: "numeric" });
}

function instant(at: string | Date): Date {
  const d = at instanceof Date ? at : new Date(at);
  if (Number.isNaN(d.getTime())) throw new RangeError(`not a date: ${String(at)}`);
  return d;
}

/**
 * A day as "4 December 2026". A calendar date ("2026-12-04", a `date` column) is that day in any
 * time zone; an instant (a Date or an ISO timestamp) is the day it is on the calendar of
 * `timeZone`, India's unless given. Throws RangeError for anything else.
 */
export function formatDate(at: string | Date, timeZone: string = INDIA_TIME_ZONE): string {
  const day = typeof at === "string" ? CALENDAR_DATE.exec(at) : null;
  if (day) {
    const [y, m, d] = [Number(day[1]), Number(day[2]), Number(day[3])];
    const utc = new Date(Date.UTC(y, m - 1, d));
    // Date.UTC rolls 31 June over to 1 July; such a date is not one.
    if (utc.getUTCFullYear() !== y || utc.getUTCMonth() !== m - 1 || utc.getUTCDate() !== d) {
      throw new RangeError(`not a date: ${at}`);
    }
    return dateFormat("UTC").format(utc);
  }
  return dateFormat(timeZone).format(instant(at));
}

/** An instant as "4 December 2026 at 1:05 am IST", on the clock of `timeZone` (India's unless given). */
export function formatDateTime(at: string | Date, timeZone: string = INDIA_TIME_ZONE): string {
  return new Intl.DateTimeFormat("en-IN", {
    timeZone,
    day: "numeric",
    month: "long",
    year: "numeric",
    hour: "numeric",
    minute: "2-digit",
    timeZoneName: "short",
  }).format(instant(at));
}
