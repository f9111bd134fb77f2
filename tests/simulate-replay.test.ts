// A seed replays exactly (docs/simulator.md): `npm run simulate` run twice with one seed prints the
// same digest (scripts/simulate/digest.ts: the day-by-day ledger of payments, refunds, invoices,
// subscriptions, outboxes, counters, credits and the mailbox), and another seed a different one.
// The three runs go side by side, each on its own throwaway cluster and stack (scripts/simulate.mjs),
// so the two runs of one seed also race each other for the machine: a replay must not depend on
// how fast anything answers. Small on purpose (a month of three organizations, every fault on).
import {
  deepStrictEqual as assertEquals,
  notDeepStrictEqual as assertNotEquals,
  ok as assert,
} from "node:assert/strict";

const root = new URL("../", import.meta.url).pathname;
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const SMALL = ["--orgs", "3", "--months", "1"];

/** One run of the simulator: its exit code, its digest line and its output. */
async function simulate(seed: number) {
  const out = await new Deno.Command("node", {
    args: ["scripts/simulate.mjs", "--seed", String(seed), ...SMALL],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const digest = /^digest ([0-9a-f]{64})$/m.exec(text)?.[1] ?? null;
  return { code: out.code, digest, text };
}

Deno.test({
  name: "the simulator replays a seed: the same seed twice gives the same digest, another seed another one",
  ...testOptions,
  fn: async () => {
    const [first, again, other] = await Promise.all([simulate(1), simulate(1), simulate(2)]);
    for (const r of [first, again, other]) {
      assertEquals(r.code, 0, r.text.slice(-3000));
      assert(r.digest, `no digest line in:\n${r.text.slice(-2000)}`);
    }
    assertEquals(again.digest, first.digest, `seed 1 twice:\n${first.text}\n---\n${again.text}`);
    assertNotEquals(other.digest, first.digest);
  },
});

Deno.test("the digest's ledger leaves out random ids and row order, and sees a paisa of difference", async () => {
  const { emptySnapshot } = await import("../scripts/simulate/invariants.ts");
  const { chain, ledgerLines } = await import("../scripts/simulate/digest.ts");
  const org = (id: string | null) => (id === "uuid-a" ? "org1" : id === "uuid-b" ? "org2" : "org-");
  const snapshot = (ids: [string, string], amounts: [number, number]) => {
    const s = emptySnapshot();
    s.payment_events = [
      {
        id: ids[0],
        organization_id: "uuid-a",
        provider: "payu",
        provider_payment_id: `txn_${ids[0]}`,
        status: "captured",
        amount_cents: amounts[0],
        needs_refund: false,
        refund_id: null,
        captured_payment_event_id: null,
      },
      {
        id: ids[1],
        organization_id: "uuid-b",
        provider: "razorpay",
        provider_payment_id: "pay_s1x000001",
        status: "captured",
        amount_cents: amounts[1],
        needs_refund: false,
        refund_id: null,
        captured_payment_event_id: null,
      },
    ];
    return s;
  };
  const a = ledgerLines(snapshot(["e1", "e2"], [49900, 58882]), org);
  assertEquals(a, [
    "mrr 0 0",
    "payment org1 payu captured 49900  -",
    "payment org2 razorpay captured 58882  pay_s1x000001",
  ]);
  // Other product ids, the rows in the other order: the same lines.
  const reordered = snapshot(["f9", "f8"], [49900, 58882]);
  reordered.payment_events.reverse();
  assertEquals(ledgerLines(reordered, org), a);
  // A paisa more: another day hash.
  const b = ledgerLines(snapshot(["e1", "e2"], [49901, 58882]), org);
  assertNotEquals(b, a);
  assertNotEquals(chain("", 1, b), chain("", 1, a));
  assertEquals(chain("", 1, a), chain("", 1, [...a]));
  assertNotEquals(chain("", 2, a), chain("", 1, a), "the day is part of the hash");
});
