// Money and dates as the emails and the invoice PDF write them (supabase/functions/_shared/format.ts):
// Indian digit grouping through lakhs and crores, two decimals, the rupee sign, negatives (credit
// notes), amounts past a float's precision; dates on India's calendar, a calendar date the same in
// any time zone, and what is not a date refused.
import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  formatDate,
  formatDateTime,
  formatMoney,
  groupIndian,
  INDIA_TIME_ZONE,
} from "../supabase/functions/_shared/format.ts";

Deno.test("Indian digit grouping: thousands, then every two digits (lakh, crore)", () => {
  assertEquals(groupIndian("0"), "0");
  assertEquals(groupIndian("999"), "999");
  assertEquals(groupIndian("1000"), "1,000");
  assertEquals(groupIndian("99999"), "99,999");
  assertEquals(groupIndian("100000"), "1,00,000");
  assertEquals(groupIndian("12345678"), "1,23,45,678");
  assertEquals(groupIndian("1000000000"), "1,00,00,00,000");
});

Deno.test("money: paise as rupees with the rupee sign, Indian grouping and two decimals", () => {
  assertEquals(formatMoney(0), "₹0.00");
  assertEquals(formatMoney(1), "₹0.01", "one paisa");
  assertEquals(formatMoney(5), "₹0.05");
  assertEquals(formatMoney(100), "₹1.00");
  assertEquals(formatMoney(99999), "₹999.99");
  assertEquals(formatMoney(117882), "₹1,178.82");
  assertEquals(formatMoney(12345678), "₹1,23,456.78");
  assertEquals(formatMoney(10000000), "₹1,00,000.00", "one lakh");
  assertEquals(formatMoney(1000000000), "₹1,00,00,000.00", "one crore");
  assertEquals(formatMoney(1234567890), "₹1,23,45,678.90");
});

Deno.test("money: a negative amount (a credit note) carries the minus before the sign", () => {
  assertEquals(formatMoney(-1), "-₹0.01");
  assertEquals(formatMoney(-117882), "-₹1,178.82");
  assertEquals(formatMoney(-1000000000), "-₹1,00,00,000.00");
  assertEquals(formatMoney(-0), "₹0.00", "no minus on zero");
});

Deno.test("money: a bigint or a decimal string (Postgres bigint) is exact past a float's precision", () => {
  assertEquals(formatMoney(117882n), "₹1,178.82");
  assertEquals(formatMoney("117882"), "₹1,178.82");
  assertEquals(formatMoney("-117882"), "-₹1,178.82");
  // 2^53 + 1 paise: a float would round it.
  assertEquals(formatMoney("9007199254740993"), "₹9,00,71,99,25,47,409.93");
});

Deno.test("money: another currency is its code and the same figure", () => {
  assertEquals(formatMoney(117882, "USD"), "USD 1,178.82");
  assertEquals(formatMoney(-50, "USD"), "-USD 0.50");
  assertEquals(formatMoney(117882, "INR"), formatMoney(117882));
});

Deno.test("money: a fraction of a paisa or a non-number is refused", () => {
  assertThrows(() => formatMoney(1.5), RangeError);
  assertThrows(() => formatMoney("12.50"), SyntaxError);
  assertThrows(() => formatMoney("abc"), SyntaxError);
});

Deno.test("dates: an instant is the day it is in India unless another time zone is given", () => {
  assertEquals(INDIA_TIME_ZONE, "Asia/Kolkata");
  // 18:29:59 UTC is 23:59:59 IST; 18:30 UTC is midnight IST, the next day.
  assertEquals(formatDate("2026-12-03T18:29:59Z"), "3 December 2026");
  assertEquals(formatDate("2026-12-03T18:30:00Z"), "4 December 2026");
  assertEquals(formatDate(new Date("2026-12-03T18:30:00Z")), "4 December 2026");
  assertEquals(formatDate("2026-12-03T18:30:00Z", "America/New_York"), "3 December 2026");
  assertEquals(formatDate("2027-03-31T18:29:59Z"), "31 March 2027", "the last second of a financial year");
});

Deno.test("dates: a calendar date (an invoice date) is that day in every time zone", () => {
  assertEquals(formatDate("2026-06-15"), "15 June 2026");
  assertEquals(formatDate("2026-06-15", "America/Los_Angeles"), "15 June 2026");
  assertEquals(formatDate("2026-06-15", "Pacific/Kiritimati"), "15 June 2026");
  assertEquals(formatDate("2028-02-29"), "29 February 2028", "a leap day");
  assertEquals(formatDate("2026-09-30"), "30 September 2026");
});

Deno.test("dates and times: what is not a date is refused", () => {
  assertThrows(() => formatDate("2026-02-30"), RangeError, "30 February");
  assertThrows(() => formatDate("2027-02-29"), RangeError, "29 February of a common year");
  assertThrows(() => formatDate("not a date"), RangeError);
  assertThrows(() => formatDate(new Date(Number.NaN)), RangeError);
  assertThrows(() => formatDateTime("not a date"), RangeError);
});

Deno.test("date and time: on India's clock, with its zone named", () => {
  assertEquals(formatDateTime("2026-12-03T19:35:00Z"), "4 December 2026 at 1:05 am IST");
  assertEquals(formatDateTime("2026-12-03T19:35:00Z", INDIA_TIME_ZONE), "4 December 2026 at 1:05 am IST");
});
