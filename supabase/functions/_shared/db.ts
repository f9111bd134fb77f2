// Postgres access for functions, through SUPABILL_DB_URL when it is set, else SUPABASE_DB_URL
// (which Supabase injects; SUPABILL_DB_URL lets a hosted project point the functions at the
// transaction pooler, port 6543, hence the pool's options below). SQL acting for a user runs the
// way PostgREST runs it: `set local role authenticated` and the user's claims in request.jwt.claims,
// so RLS applies.
import postgres from "npm:postgres@4.2.0";
import type { Claims } from "./auth.ts";
import { denoEnv, readEnv } from "./env.ts";
import { HttpError } from "./http.ts";
import { jsonbText } from "./jsonb.ts";

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;

let pool: Sql | undefined;

/** The shared connection pool, made on first use. */
export function db(): Sql {
  if (!pool) {
    const url = readEnv(denoEnv, "SUPABILL_DB_URL") ?? readEnv(denoEnv, "SUPABASE_DB_URL");
    if (!url) throw new HttpError(503, "database_unavailable", "neither SUPABILL_DB_URL nor SUPABASE_DB_URL is set");
    pool = postgres(url, {
      // Through a pooler in transaction mode a server connection is ours for one transaction:
      // no named prepared statements (they stay on the server connection we leave), and one
      // query in flight per client connection (postgres.js pipelines up to 100 by default;
      // pipelined queries with parameters hung for good through pgbouncer 1.18 in
      // tests/pooler.test.ts, and Supavisor before 2.10 hangs on them too). One in flight also
      // keeps a query that waits on a row lock from holding up unrelated ones queued behind it.
      prepare: false,
      max_pipeline: 1,
      // No lookup of the database's own types: postgres.js would read them the first time a
      // result holds one it does not know (ai_settle's enum), on another connection while the
      // first one waits holding its server connection; with every server connection of the
      // pooler held that way, the lookup never gets one and the pool hangs for good (a cold
      // start under load, tests/pooler.test.ts; eager_types hung there too). Without it an array
      // of an enum or domain would arrive as its text form: the functions read none (the /rest/v1
      // stand-in builds its JSON in SQL).
      fetch_types: false,
      max: Number(Deno.env.get("SUPABILL_DB_POOL_SIZE") ?? 10),
      connect_timeout: 5,
      idle_timeout: 30,
      onnotice: () => {},
      connection: { application_name: "supabill-functions" },
    });
  }
  return pool;
}

/** True when the error means the database could not be reached at all. */
function unreachable(e: unknown): boolean {
  const code = (e as { code?: string })?.code ?? "";
  return ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED",
    "CONNECTION_DESTROYED", "57P01", "57P03", "53300"].includes(code);
}

/** Run fn against the pool; an unreachable database becomes a 503 (never a silent pass). */
async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (unreachable(e)) throw new HttpError(503, "database_unavailable", "the database cannot be reached");
    throw e;
  }
}

/**
 * One statement on the pooled connection, in its own (auto-committed) transaction: the one round
 * trip that webhooks and the AI gateway use for their privileged SQL entry points, as the role of
 * the database URL. Row locks are never held across a client round trip.
 */
export function statement<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
  return guarded(() => fn(db()));
}

/** Run fn in a transaction. */
export function transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
  return guarded(async () => await db().begin(fn) as T);
}

/** Run fn in a transaction as the signed-in user, with RLS, as PostgREST does. */
export function asUser<T>(claims: Claims, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return transaction(async (tx) => {
    await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${jsonbText(claims)}, true)`;
    return fn(tx);
  });
}

/** Run fn in a transaction as service_role (webhooks, cron paths). */
export function asService<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
  return transaction(async (tx) => {
    await tx`select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
    return fn(tx);
  });
}

/** SQL errors a caller can cause -> 4xx with a code; anything else stays a 500. */
export function sqlError(e: unknown, codes: Record<string, [number, string]> = {}): unknown {
  const sqlState = (e as { code?: string })?.code;
  const message = (e as { message?: string })?.message ?? "database error";
  const known: Record<string, [number, string]> = {
    "22023": [400, "invalid_input"],
    "42501": [403, "forbidden"],
    "P0002": [404, "not_found"],
    "55000": [409, "invalid_state"],
    ...codes,
  };
  const hit = sqlState ? known[sqlState] : undefined;
  return hit ? new HttpError(hit[0], hit[1], message) : e;
}
