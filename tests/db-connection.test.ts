// A dropped database connection fails the requests that were using it, never the process: the
// functions' pool (supabase/functions/_shared/db.ts) answers them 503 database_unavailable and
// serves the next request on a fresh connection. The simulator's connection-drop fault found the
// driver throwing from a timer on a closed socket, outside any request, which ended the whole
// functions server; this test terminates the backends of queries in flight, three times over.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { statement, transaction } from "../supabase/functions/_shared/db.ts";
import { HttpError } from "../supabase/functions/_shared/http.ts";
import { adminSql } from "./helpers.ts";

Deno.test({
  name: "backends terminated mid-query: those requests get 503 database_unavailable, the next ones are served",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const admin = adminSql(1);
    try {
      for (let round = 0; round < 3; round++) {
        const marker = `drop_me_${round}_${crypto.randomUUID().slice(0, 8)}`;
        const outcome = (p: Promise<unknown>) =>
          p.then(() => "ok", (e) => e instanceof HttpError ? `${e.status} ${e.code}` : `error ${(e as Error).message}`);
        const inFlight = [
          // The marker is in the query text (not a parameter), so pg_stat_activity finds it.
          outcome(statement((sql) => sql.unsafe(`select pg_sleep(3), '${marker}'`))),
          outcome(transaction(async (tx) => {
            await tx.unsafe(`select pg_sleep(3), '${marker}'`);
          })),
        ];
        // Both are running before their backends go.
        for (let i = 0; i < 50; i++) {
          const [{ n }] = await admin`select count(*)::int as n from pg_stat_activity
            where query like ${"%" + marker + "%"} and pid <> pg_backend_pid() and state = 'active'`;
          if (n === 2) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await admin`select pg_terminate_backend(pid) from pg_stat_activity
          where query like ${"%" + marker + "%"} and pid <> pg_backend_pid()`;
        assertEquals(await Promise.all(inFlight), ["503 database_unavailable", "503 database_unavailable"]);
        const [{ answer }] = await statement((sql) => sql`select 42 as answer`);
        assertEquals(answer, 42);
        const inTx = await transaction(async (tx) => (await tx`select 'served' as s`)[0].s);
        assertEquals(inTx, "served");
      }
    } finally {
      await admin.end();
    }
  },
});
