// The pgTAP tests feed billing.apply_payment_event events made by tests.adapted
// (scripts/sql/test-helpers.sql), a SQL copy of the adapters' event vocabulary. This test ties that
// copy to the adapters' own tables: every event type an adapter maps, and one it does not, must get
// the same neutral kind and subscription status from tests.adapted as from the adapter.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { PAYU_EVENT_KINDS } from "../supabase/functions/_shared/providers/payu/index.ts";
import {
  RAZORPAY_SUBSCRIPTION_STATUS,
  razorpayEventKind,
} from "../supabase/functions/_shared/providers/razorpay/index.ts";
import { RAZORPAY_EVENT_KINDS } from "../supabase/functions/_shared/providers/razorpay/events.ts";
import { adminSql } from "./helpers.ts";

const helpersFile = new URL("../scripts/sql/test-helpers.sql", import.meta.url);

Deno.test("tests.adapted gives every Razorpay and PayU event type the kind and status its adapter gives", async () => {
  const sql = adminSql(1);
  try {
    // npm test loads the pgTAP helpers before the Deno tests; a run of this file alone loads them.
    const [{ loaded }] = await sql`select to_regnamespace('tests') is not null as loaded`;
    if (!loaded) await sql.unsafe(await Deno.readTextFile(helpersFile));
    const razorpayTypes = [...Object.keys(RAZORPAY_EVENT_KINDS), "settlement.processed"];
    const want = razorpayTypes.map((t) => [t, razorpayEventKind(t, "pay_1"), RAZORPAY_SUBSCRIPTION_STATUS[t] ?? null]);
    const have = [];
    for (const t of razorpayTypes) {
      const [{ e }] = await sql`select tests.adapted(jsonb_build_object('provider', 'razorpay', 'event_type', ${t}::text,
        'provider_payment_id', 'pay_1')) as e`;
      have.push([t, e.kind, e.subscription_status]);
    }
    assertEquals(have, want);

    const payuStatuses = [...Object.keys(PAYU_EVENT_KINDS), "bounced"];
    const payuHave = [];
    for (const status of payuStatuses) {
      const [{ e }] = await sql`select tests.adapted(jsonb_build_object('provider', 'payu', 'event_type', ${`payment.${status}`}::text)) as e`;
      payuHave.push([status, e.kind]);
    }
    assertEquals(payuHave, payuStatuses.map((s) => [s, PAYU_EVENT_KINDS[s] ?? "other"]));
  } finally {
    await sql.end();
  }
});
