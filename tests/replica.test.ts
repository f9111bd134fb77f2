// The read paths on a read replica: a streaming physical replica of the test cluster
// (pg_basebackup -R, its own port, hot standby: every transaction read-only), caught up with the
// primary, answers the analytics (billing.revenue_summary as service_role; revenue_analytics,
// revenue_monthly and revenue_current as billing_analyst), the monitoring views of
// 11_monitoring.sql (as service_role) and public.get_usage (as the member, with RLS) exactly as
// the primary does. A read path that writes (a volatile function that logs, a counter bumped on
// read) fails on the replica with "cannot execute ... in a read-only transaction", so this test
// is also the check that these paths write nothing. Each query runs in a transaction with the
// test clock pinned (billing.now) to one instant on both servers, so windows relative to now()
// agree.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import postgres from "npm:postgres@4.2.0";
import { startReplica } from "../scripts/lib/pg.mjs";
import { adminSql, createUser, env } from "./helpers.ts";

const testOptions = { sanitizeResources: false, sanitizeOps: false };

/** One read as `role` (with `claims` for authenticated) at the pinned instant, as JSON text. */
async function read(
  sql: postgres.Sql,
  at: string,
  role: string,
  query: string,
  claims = {},
): Promise<string> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('billing.now', ${at}, true), set_config('request.jwt.claims', ${
      JSON.stringify({ role, ...claims })
    }, true),
      set_config('role', ${role}, true)`;
    const [{ answer }] = await tx.unsafe(
      `select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text), '[]')::text as answer
      from (${query}) t`,
    );
    return answer as string;
  }) as string;
}

Deno.test(
  "the analytics, the monitoring views and get_usage answer on a streaming replica as on the primary",
  testOptions,
  async () => {
    const sql = adminSql();
    let replica: { url: string; remove: () => Promise<void> } | undefined;
    let standby: postgres.Sql | undefined;
    try {
      // Something for each read to find: an organization on the seed's free plan with usage
      // counted, and the analytics stored for the last days.
      const [{ id: org }] =
        await sql`insert into public.organizations (name) values ('replica reads') returning id`;
      const [{ id: plan }] = await sql`select id from public.billing_plans where code = 'free'`;
      await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
      values (${org}, ${plan}, 'active', now() - interval '1 day', now() + interval '29 days')`;
      const member = await createUser(sql);
      await sql`insert into public.organization_members (organization_id, user_id, role) values (${org}, ${member}, 'owner')`;
      for (
        let i = 0;
        i < 3;
        i++
      ) await sql`select public.increment_usage(${org}, 'report_exports', 1, ${`replica-${org}-${i}`})`;
      await sql`select billing.refresh_revenue_analytics(current_date - 3, current_date)`;

      replica = await startReplica(env("SUPABASE_DB_URL"));
      const onStandby = postgres(replica.url, { max: 2, prepare: false, onnotice: () => {} });
      standby = onStandby;
      const [{ lsn }] = await sql`select pg_current_wal_lsn()::text as lsn`;
      for (let i = 0;; i++) {
        const [{ caught_up, in_recovery }] = await onStandby`select pg_is_in_recovery() as in_recovery,
        coalesce(pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn, false) as caught_up`;
        assertEquals(in_recovery, true, "the replica is a standby");
        if (caught_up) break;
        if (i > 300) throw new Error(`the replica did not replay up to ${lsn} within 30 s`);
        await new Promise((r) => setTimeout(r, 100));
      }

      const [{ at, today }] =
        await sql`select now()::text as at, (now() at time zone 'Asia/Kolkata')::date::text as today`;
      const reads: [string, string, Record<string, unknown>?][] = [
        ["service_role", `select billing.revenue_summary('${today}'::date) as summary`],
        ["service_role", `select billing.revenue_summary('${today}'::date - 1) as summary`],
        ["billing_analyst", "select * from billing.revenue_analytics"],
        ["billing_analyst", "select * from billing.revenue_monthly"],
        ["billing_analyst", "select * from billing.revenue_current"],
        ...[
          "failed_deliveries",
          "signature_failures_hourly",
          "unapplied_payments",
          "overdue_orders",
          "job_problems",
          "notification_problems",
          "provider_action_problems",
          "quota_pressure",
        ]
          .map((v): [string, string] => ["service_role", `select * from billing.${v}`]),
        ["authenticated", `select * from public.get_usage('${org}')`, { sub: member }],
      ];
      for (const [role, query, claims] of reads) {
        const primary = await read(sql, at, role, query, claims);
        const onReplica: string = await read(onStandby, at, role, query, claims).catch((e) =>
          `error ${(e as Error).message}`
        );
        assertEquals(onReplica, primary, `${role}: ${query}`);
      }
      // The reads found what they were meant to: the member's usage, and today's summary.
      const usage = JSON.parse(
        await read(onStandby, at, "authenticated", `select metric, used from public.get_usage('${org}')`, {
          sub: member,
        }),
      );
      assertEquals(usage.find((u: { metric: string }) => u.metric === "report_exports"), {
        metric: "report_exports",
        used: 3,
      });
      const [summary] = JSON.parse(
        await read(
          onStandby,
          at,
          "service_role",
          `select billing.revenue_summary('${today}'::date) ->> 'day' as day`,
        ),
      );
      assertEquals(summary, { day: today });
      // And a write is refused there (as postgres, who may run the refresh): a read path that wrote
      // would have failed the comparisons above the same way.
      const refused = await read(
        onStandby,
        at,
        "postgres",
        "select billing.refresh_revenue_analytics() as n",
      )
        .then(() => "ok", (e) => (e as { code?: string }).code);
      assertEquals(refused, "25006", "read_only_sql_transaction");
    } finally {
      await standby?.end();
      await replica?.remove();
      await sql.end();
    }
  },
);
