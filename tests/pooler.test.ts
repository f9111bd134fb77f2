// The functions through a transaction-mode pooler, as on hosted Supabase (Supavisor, port 6543):
// pgbouncer in pool_mode = transaction with 2 server connections in front of the test cluster, a
// second functions server whose SUPABILL_DB_URL points at it with a pool of 8 client connections,
// so one client's transactions land on either server connection, after any other client's.
// Under that mix it runs the webhook path (signed Razorpay payment.captured deliveries, each sent
// twice at once: applied exactly once, the copy acknowledged as a duplicate), the ai-chat path
// (reserve, the fake Groq, settle) and GET ai-chat/models (as the member, with RLS:
// `set_config(..., true)` in a transaction) all at once, each call given 30 s. Then it holds
// every server connection in a transaction at the same time and reads what each one carries: no
// role, claims, search_path or statement_timeout left set, no prepared statement, no temporary
// table, no advisory lock.
//
// What it has caught: with postgres.js's defaults for pipelining and type lookup, calls hung for
// good through the pooler (the options in supabase/functions/_shared/db.ts say why). Session state
// fails it too: with `set_config('role', 'authenticated', false)` in asUser, the role stays on the
// server connection, the next webhook on it runs as authenticated and is refused, and the scan
// reads the role back; with prepare: true (named statements, kept per server connection), the
// member reads of GET ai-chat/models answer 500 about half the time.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import crypto from "node:crypto";
import os from "node:os";
import path from "node:path";
import postgres from "npm:postgres@4.2.0";
import { freePort, startPgbouncer } from "../scripts/lib/pg.mjs";
import { startDeno } from "../scripts/lib/stack.mjs";
import { root } from "../scripts/lib/run.mjs";
import { adminSql, afterResponses, createUser, env, mintToken } from "./helpers.ts";

const testOptions = { sanitizeResources: false, sanitizeOps: false };
const SERVER_CONNECTIONS = 2;
const PAYMENTS = 20;
const CHATS = 20;
const MODEL = "llama-3.1-8b-instant";

Deno.test(
  "webhooks, ai-chat and RLS reads through pgbouncer in transaction mode: exact answers, no session state left",
  testOptions,
  async () => {
    const sql = adminSql();
    const upstreamPort = Number(new URL(env("SUPABASE_DB_URL")).port);
    const bouncer = await startPgbouncer({ upstreamPort, mode: "transaction", poolSize: SERVER_CONNECTIONS });
    let server:
      | { child: { kill: (s: string) => void; once: (e: string, f: () => void) => void } }
      | undefined;
    try {
      const apiPort = await freePort();
      server = await startDeno(path.join(root, "scripts", "functions-server.ts"), {
        env: {
          SUPABILL_DB_URL: bouncer.url,
          SUPABILL_DB_POOL_SIZE: "8",
          SUPABILL_API_PORT: String(apiPort),
          SUPABASE_URL: `http://127.0.0.1:${apiPort}`,
        },
        ready: /"listening"/,
        logFile: path.join(os.tmpdir(), `supabill-pooler-functions-${apiPort}.log`),
      });
      const fn = (name: string) => `http://127.0.0.1:${apiPort}/functions/v1/${name}`;

      // Fixtures, written directly (not through the pooler).
      const tag = crypto.randomUUID().slice(0, 8);
      const [{ id: planId }] =
        await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, features)
      values (${`pool_${tag}`}, 'Pooler', 'pro', 'month', 49900, ${
          JSON.stringify({
            max_members: 10,
            ai_requests_per_minute: 1000,
            ai_prompts_per_day: 10000,
            groq_tokens_per_month: 10_000_000,
            ai_models: [MODEL],
          })
        }::text::jsonb) returning id`;
      const orgs: string[] = [];
      for (let i = 0; i < PAYMENTS; i++) {
        const [{ id }] =
          await sql`insert into public.organizations (name) values (${`pool ${tag} ${i}`}) returning id`;
        orgs.push(id);
        await sql`insert into public.orders (organization_id, plan_id, provider, receipt, provider_order_id, amount_cents, status)
        values (${id}, ${planId}, 'razorpay', ${`pool_rcpt_${tag}_${i}`}, ${`order_pool${tag}${i}`}, 49900, 'pending')`;
      }
      const [{ amount }] =
        await sql`select amount_cents::int as amount from public.orders where receipt = ${`pool_rcpt_${tag}_0`}`;
      const [{ id: aiOrg }] =
        await sql`insert into public.organizations (name) values (${`pool ai ${tag}`}) returning id`;
      await sql`insert into public.subscriptions (organization_id, plan_id, status, current_period_start, current_period_end)
      values (${aiOrg}, ${planId}, 'active', now() - interval '1 day', now() + interval '29 days')`;
      const owner = await createUser(sql);
      await sql`insert into public.organization_members (organization_id, user_id, role) values (${aiOrg}, ${owner}, 'owner')`;
      const token = await mintToken(owner);
      await fetch(`${env("FAKE_UPSTREAMS_URL")}/__control/groq`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ reset: true }),
      }).then((r) => r.arrayBuffer());

      const now = Math.floor(Date.now() / 1000);
      const delivery = (i: number) => {
        const body = JSON.stringify({
          entity: "event",
          account_id: "acc_pool",
          event: "payment.captured",
          contains: ["payment"],
          payload: {
            payment: {
              entity: {
                id: `pay_pool${tag}${i}`,
                entity: "payment",
                amount,
                currency: "INR",
                status: "captured",
                order_id: `order_pool${tag}${i}`,
                method: "upi",
                captured: true,
                notes: [],
                created_at: now,
              },
            },
          },
          created_at: now,
        });
        const signature = crypto.createHmac("sha256", env("RAZORPAY_WEBHOOK_SECRET")).update(body).digest(
          "hex",
        );
        return async () => {
          const res = await fetch(fn("razorpay-webhook"), {
            signal: AbortSignal.timeout(30_000),
            method: "POST",
            headers: {
              "content-type": "application/json",
              "x-razorpay-signature": signature,
              "x-razorpay-event-id": `evt_pool_${tag}_${i}`,
            },
            body,
          });
          const text = await res.text();
          return `webhook ${res.status} ${res.ok ? JSON.parse(text).result : text}`;
        };
      };
      const chat = (i: number) => async () => {
        const res = await fetch(fn("ai-chat"), {
          signal: AbortSignal.timeout(30_000),
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${token}`,
            "x-organization-id": aiOrg,
          },
          body: JSON.stringify({
            model: MODEL,
            messages: [{ role: "user", content: `pooler question ${tag} ${i}` }],
          }),
        });
        const body = await res.json();
        return res.ok ? `chat 200 ${body.usage.total_tokens}` : `chat ${res.status} ${JSON.stringify(body)}`;
      };
      const models = () => async () => {
        const res = await fetch(fn("ai-chat/models"), {
          signal: AbortSignal.timeout(30_000),
          headers: { authorization: `Bearer ${token}`, "x-organization-id": aiOrg },
        });
        const body = await res.json();
        return `models ${res.status} ${
          res.ok ? body.data.map((m: { id: string }) => m.id).join(",") : JSON.stringify(body)
        }`;
      };

      // Everything at once: each delivery twice (the copies race), chats and model lists between them.
      const calls: (() => Promise<string>)[] = [];
      for (let i = 0; i < PAYMENTS; i++) calls.push(delivery(i), delivery(i), chat(i), models());
      // A call that hangs (a transaction the pooler never gives a connection to) fails the test by name.
      const answers = await Promise.all(
        calls.map((c) =>
          c().catch((e) =>
            `error ${(e as Error).name === "TimeoutError" ? "no answer within 30 s" : (e as Error).message}`
          )
        ),
      );

      const webhooks = answers.filter((a) => a.startsWith("webhook")).sort();
      assertEquals(webhooks, [
        ...Array(PAYMENTS).fill("webhook 200 applied"),
        ...Array(PAYMENTS).fill("webhook 200 duplicate"),
      ]);
      assertEquals(
        answers.filter((a) => a.startsWith("models")),
        Array(PAYMENTS).fill(`models 200 ${MODEL}`),
      );
      assertEquals(answers.filter((a) => a.startsWith("error")), [], "every call answered");
      const chats = answers.filter((a) => a.startsWith("chat"));
      assertEquals(chats.filter((a) => !/^chat 200 \d+$/.test(a)), [], "every chat answered 200");
      assertEquals(chats.length, CHATS);
      const tokens = chats.reduce((n, a) => n + Number(a.split(" ")[2]), 0);
      // ai-chat settles after answering: this server's settlements, through the pooler too, first.
      await afterResponses(`http://127.0.0.1:${apiPort}`);

      const [rows] = await sql`select
      (select count(*)::int from public.payment_events where provider_payment_id like ${`pay_pool${tag}%`}) as payment_events,
      (select count(*)::int from public.orders where receipt like ${`pool_rcpt_${tag}_%`} and status = 'paid') as paid_orders,
      (select count(*)::int from public.subscriptions where organization_id = any(${orgs}::uuid[]) and status = 'active') as active,
      (select count(*)::int from public.ai_requests where organization_id = ${aiOrg} and status = 'completed') as ai_completed,
      (select count(*)::int from public.ai_requests where organization_id = ${aiOrg} and status <> 'completed') as ai_other,
      (select coalesce(sum(counted_tokens), 0)::int from public.ai_requests where organization_id = ${aiOrg}) as ai_tokens,
      (select coalesce(max(count), 0)::int from public.usage_quotas where organization_id = ${aiOrg}
         and metric = 'groq_tokens' and window_unit = 'month') as month_tokens`;
      assertEquals(rows, {
        payment_events: PAYMENTS,
        paid_orders: PAYMENTS,
        active: PAYMENTS,
        ai_completed: CHATS,
        ai_other: 0,
        ai_tokens: tokens,
        month_tokens: tokens,
      });

      // Every server connection at once, each held in a transaction until all have answered: what
      // it carries into the next client's transaction.
      const probe = postgres(bouncer.url, { max: SERVER_CONNECTIONS, prepare: false, onnotice: () => {} });
      try {
        let arrived = 0;
        let release!: () => void;
        const all = new Promise<void>((r) => (release = r));
        const states = await Promise.all(
          Array.from({ length: SERVER_CONNECTIONS }, () =>
            probe.begin(async (tx) => {
              const [state] = await tx`select pg_backend_pid() as pid, current_user::text as "user",
              current_setting('role') as role, coalesce(current_setting('request.jwt.claims', true), '') as claims,
              current_setting('search_path') as search_path, current_setting('statement_timeout') as statement_timeout,
              (select count(*)::int from pg_prepared_statements) as prepared,
              (select count(*)::int from pg_catalog.pg_class where relnamespace = pg_my_temp_schema()) as temp_tables,
              (select count(*)::int from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) as advisory_locks`;
              if (++arrived === SERVER_CONNECTIONS) release();
              await all;
              return state;
            })),
        );
        assertEquals(
          new Set(states.map((s) => s.pid)).size,
          SERVER_CONNECTIONS,
          "every server connection was read",
        );
        for (const { pid: _pid, ...state } of states) {
          assertEquals(state, {
            user: "postgres",
            role: "none",
            claims: "",
            search_path: '"$user", public, extensions',
            statement_timeout: "0",
            prepared: 0,
            temp_tables: 0,
            advisory_locks: 0,
          });
        }
      } finally {
        await probe.end();
      }
    } finally {
      if (server) {
        const exited = new Promise<void>((r) => server!.child.once("exit", () => r()));
        server.child.kill("SIGTERM");
        await exited;
      }
      await bouncer.stop();
      await sql.end();
    }
  },
);
