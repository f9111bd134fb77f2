// Signed Razorpay webhooks through the local functions server: 32 deliveries in flight at once,
// half of them duplicates (each payment.captured event is delivered twice, the two copies at
// about the same time, as Razorpay's retries race their originals). Reports deliveries per
// second and latency percentiles as the provider sees them (HTTP round trip), then checks in the
// database that every payment was applied exactly once. Beside it, the floor: the same
// deliveries with a forged signature, which the server rejects before reading the database (the
// refusals are counted, batched, at most one write in flight). Target: p99 < 100 ms.
import crypto from "node:crypto";
import path from "node:path";
import postgres from "postgres";
import { loadOrCreateKeys } from "../lib/keys.mjs";
import { startLocalStack } from "../lib/stack.mjs";
import { check, closedLoop, dbPoolSize, fmt, measures, percentile, post, printTable } from "./lib.mjs";

const PAYMENTS = Number(process.env.BENCH_WEBHOOK_PAYMENTS ?? 2000);
const CONCURRENCY = 32;
const PRICE = 49900;

/** What `npm run bench` says before the section runs: what it measures and about how long it takes. */
export const about = { what: "signed Razorpay webhooks through the functions server against forged ones (the floor)", seconds: () => 60 };

export default async function webhooks(db) {
  const keys = await loadOrCreateKeys(path.join(db.dir, "keys.json"));
  const { env, providers } = await startLocalStack({
    db,
    keys,
    extraEnv: { SUPABILL_DB_POOL_SIZE: String(dbPoolSize()) },
  });
  const url = `${env.SUPABASE_URL}/functions/v1/razorpay-webhook`;

  // One organization and one open Razorpay order per payment, so deliveries for different
  // payments do not wait on each other's locks (and the duplicates do).
  const sql = postgres(db.url, { max: 4, prepare: false, onnotice: () => {} });
  try {
    await sql`insert into public.billing_plans (id, code, name, tier, interval, price_cents)
      values ('00000000-0000-4000-8000-00000000b020', 'bench_webhooks', 'Bench webhooks', 'pro', 'month', ${PRICE})`;
    await sql`insert into public.organizations (id, name)
      select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'bench webhooks ' || i
      from generate_series(1, ${PAYMENTS}) i`;
    await sql`insert into public.orders (organization_id, plan_id, provider, receipt, provider_order_id, amount_cents, status)
      select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '00000000-0000-4000-8000-00000000b020',
             'razorpay', 'bench_rcpt_' || i, 'order_bench' || i, ${PRICE}, 'pending'
      from generate_series(1, ${PAYMENTS}) i`;

    // What each order charges (the plan price plus GST, as the orders trigger computes it).
    const [{ amount }] = await sql`select amount_cents::int as amount from public.orders where receipt = 'bench_rcpt_1'`;
    const now = Math.floor(Date.now() / 1000);
    const deliveries = [];
    for (let i = 1; i <= PAYMENTS; i++) {
      const body = JSON.stringify({
        entity: "event",
        account_id: "acc_bench",
        event: "payment.captured",
        contains: ["payment"],
        payload: {
          payment: {
            entity: {
              id: `pay_bench${i}`, entity: "payment", amount, currency: "INR", status: "captured",
              order_id: `order_bench${i}`, method: "upi", captured: true, notes: [], created_at: now,
            },
          },
        },
        created_at: now,
      });
      const signature = crypto.createHmac("sha256", providers.RAZORPAY_WEBHOOK_SECRET).update(body).digest("hex");
      const delivery = { body, signature, eventId: `evt_bench_${i}` };
      deliveries.push(delivery, delivery); // the duplicate right behind its original
    }

    const send = async (d) => {
      const res = await post(url, {
        "content-type": "application/json",
        "x-razorpay-signature": d.signature,
        "x-razorpay-event-id": d.eventId,
      }, d.body);
      return { status: res.status, result: JSON.parse(res.text).result };
    };

    // Warm up the connection pool and the server: signed events of a type we do not handle.
    const warmBody = JSON.stringify({ entity: "event", event: "bench.warmup", contains: [], payload: {}, created_at: now });
    const warmSignature = crypto.createHmac("sha256", providers.RAZORPAY_WEBHOOK_SECRET).update(warmBody).digest("hex");
    await Promise.all(Array.from({ length: CONCURRENCY * 4 }, (_, i) =>
      send({ body: warmBody, signature: warmSignature, eventId: `evt_warmup_${i}` })
    ));

    const deliver = (list) => closedLoop(list.length, CONCURRENCY, (i) => send(list[i]));
    const row = (name, run, extra) => ({
      run: name,
      deliveries: run.results.length,
      statuses: Object.entries(run.statuses).map(([k, v]) => `${k}: ${v}`).join(", "),
      ...extra,
      "per second": Math.round(run.perSecond),
      "p50 ms": fmt(percentile(run.latencies, 50), 1),
      "p99 ms": fmt(percentile(run.latencies, 99), 1),
      "max ms": fmt(run.latencies.at(-1), 1),
    });

    // The floor: the same deliveries with one signature byte changed. The server reads the body
    // and checks the HMAC, then answers 401 without touching the database: what HTTP and the
    // signature check cost on this machine, beside the full path.
    const forged = deliveries.map((d) => ({ ...d, signature: (d.signature[0] === "0" ? "1" : "0") + d.signature.slice(1) }));
    const floor = await deliver(forged);
    const signed = await deliver(deliveries);
    const { results } = signed;
    const count = (result) => results.filter((r) => r.result === result).length;
    printTable(`Razorpay webhooks through the functions server (${CONCURRENCY} in flight, half duplicates)`, [
      row("forged signature: 401, refusals counted in batches (floor)", floor, { applied: 0, duplicate: 0 }),
      row("signed: applied, or duplicate", signed, {
        applied: count("applied"),
        duplicate: count("duplicate"),
      }),
    ]);
    measures("Signed deliveries against forged ones (the floor), same deliveries, same run", [
      { measure: "p50 of a delivery", unit: "ms", floor: percentile(floor.latencies, 50), ours: percentile(signed.latencies, 50) },
      {
        measure: "p99 of a delivery",
        unit: "ms",
        floor: percentile(floor.latencies, 99),
        ours: percentile(signed.latencies, 99),
        target: { max: 100 },
      },
      { measure: "deliveries per second", unit: "/s", floor: floor.perSecond, ours: signed.perSecond, digits: 0 },
    ]);

    const [rows] = await sql`select
      (select count(*)::int from billing.webhook_events where payload ->> 'provider_payment_id' like 'pay_bench%') as webhook_events,
      (select coalesce(sum(attempts), 0)::int from billing.webhook_events
        where payload ->> 'provider_payment_id' like 'pay_bench%') as attempts,
      (select count(*)::int from public.payment_events where provider_payment_id like 'pay_bench%') as payment_events,
      (select count(*)::int from (select provider_payment_id from public.payment_events
         where provider_payment_id like 'pay_bench%' group by 1 having count(*) > 1) d) as payments_twice,
      (select count(*)::int from public.subscription_history h join public.organizations o on o.id = h.organization_id
         where o.name like 'bench webhooks %') as history,
      (select count(*)::int from public.subscriptions s join public.organizations o on o.id = s.organization_id
         where o.name like 'bench webhooks %' and s.status = 'active'
           and s.current_period_end = s.current_period_start + interval '1 month') as one_period,
      (select count(*)::int from public.orders where receipt like 'bench_rcpt_%' and status = 'paid') as paid_orders`;
    printTable("Applied exactly once? (rows in the database after the run)", [{ payments: PAYMENTS, ...rows }]);
    const expected = {
      webhook_events: PAYMENTS,
      attempts: 2 * PAYMENTS,
      payment_events: PAYMENTS,
      payments_twice: 0,
      history: PAYMENTS,
      one_period: PAYMENTS,
      paid_orders: PAYMENTS,
    };
    const wrong = Object.entries(expected).filter(([k, v]) => rows[k] !== v).map(([k, v]) => `${k} ${rows[k]} (expected ${v})`);
    check(`each of ${PAYMENTS} payments applied once, its duplicate acknowledged without effect`, wrong.length === 0, wrong.join(", "));
    const answers = `${count("applied")} applied, ${count("duplicate")} duplicate, ${results.filter((r) => r.status !== 200).length} not 200`;
    check(
      "every signed delivery answered 200, half applied, half duplicate",
      count("applied") === PAYMENTS && count("duplicate") === PAYMENTS && results.every((r) => r.status === 200),
      answers,
    );
    check("every forged delivery refused 401", floor.statuses[401] === floor.results.length, JSON.stringify(floor.statuses));
  } finally {
    await sql.end();
  }
}
