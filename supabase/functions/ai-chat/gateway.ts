// The AI gateway's SQL calls. The three metering calls are each ONE statement on the pooled
// connection (SUPABASE_DB_URL's role, which owns the functions), not a role-switching transaction:
// the counter rows billing.ai_reserve locks are then released when the statement commits in the
// server, not after another round trip through this busy event loop. The user id comes from the
// verified JWT; signed-in users cannot execute these functions (nobody can settle their own usage
// at zero). The model list reads nothing hot and runs as the user (get_entitlements checks the
// membership).
import type { Claims } from "../_shared/auth.ts";
import type { Database } from "../_shared/database.types.ts";
import { asUser, type Sql, sqlError, statement } from "../_shared/db.ts";
import { jsonbText } from "../_shared/jsonb.ts";
import type { ChatRequest, Json } from "./request.ts";

/**
 * What billing.ai_reserve answers (the composite billing.ai_reservation): every column may be
 * null, and bigint columns arrive as strings: read numbers through Number().
 */
export type Reservation = Database["billing"]["CompositeTypes"]["ai_reservation"];

/** The shared SQL error mapping, with bad input named as this endpoint names it (invalid_body). */
const sqlToHttp = (e: unknown) => sqlError(e, { "22023": [400, "invalid_body"] });

/**
 * Parameters with their types named (uuid, text, int4, bool): postgres.js sends a statement whose
 * parameter types it knows as Parse, Bind, Execute and Sync at once, ONE round trip to the
 * database; with a string or number of unknown type it first asks the server to describe the
 * statement, and waits for the answer: two.
 */
const OID = { uuid: 2950, text: 25, int4: 23, bool: 16 } as const;
const typed = (sql: Sql, value: unknown, type: keyof typeof OID) => sql.typed(value ?? null, OID[type]);

/** One SQL call before the upstream, one round trip: membership, model, rate limit, cache, prompt quota, tokens. */
export async function reserve(
  claims: Claims & { sub: string },
  organizationId: string,
  req: ChatRequest,
  promptTokens: number,
  cacheKey: string,
): Promise<Reservation> {
  try {
    const [row] = await statement((sql) =>
      sql<Reservation[]>`select * from billing.ai_reserve(${typed(sql, organizationId, "uuid")}, ${typed(sql, claims.sub, "uuid")},
        ${typed(sql, req.model, "text")}, ${typed(sql, req.max_tokens, "int4")}, ${typed(sql, promptTokens, "int4")},
        ${typed(sql, cacheKey, "text")}, ${typed(sql, req.stream, "bool")})`
    );
    return row;
  } catch (e) {
    throw sqlToHttp(e);
  }
}

/**
 * The models the organization's plan allows now (its `ai_models` feature, as billing.ai_reserve
 * checks them), read as the user: 403 not_a_member for a stranger or an unknown organization.
 */
export async function allowedModels(claims: Claims, organizationId: string): Promise<string[]> {
  try {
    const [row] = await asUser(claims, (tx) =>
      tx<{ models: unknown }[]>`select public.get_entitlements(${organizationId}) -> 'features' -> 'ai_models' as models`
    );
    const models = row?.models;
    return Array.isArray(models) ? [...new Set(models.filter((m): m is string => typeof m === "string"))] : [];
  } catch (e) {
    throw sqlError(e, { "42501": [403, "not_a_member"] });
  }
}

export interface Settlement {
  requestId: string;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
  status: "completed" | "client_closed" | "upstream_error" | "upstream_timeout";
  response: Json | null;
  /** Prompt tokens Groq served from its prompt cache (usage.prompt_tokens_details.cached_tokens), priced lower. */
  cachedTokens?: number;
}

/** The prompt tokens Groq served from its cache, when its usage says (OpenAI's prompt_tokens_details). */
export function cachedPromptTokens(usage: unknown): number {
  const details = (usage as { prompt_tokens_details?: { cached_tokens?: unknown } } | null | undefined)?.prompt_tokens_details;
  const n = details?.cached_tokens;
  return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : 0;
}

/**
 * One SQL call after the upstream answered, tried up to three times: as asked, once more (the
 * pool may have lost a connection), then without the answer to cache (a cache entry the database
 * refuses must not cost the settlement). The answer goes as jsonb-safe text (jsonbText: U+0000
 * becomes U+FFFD, so the cache holds U+FFFD where Groq sent U+0000). Returns whether the
 * settlement was recorded (also when the request was no longer pending: settled or expired).
 *
 * A settlement that could not be recorded is never followed by a release: Groq answered and
 * bills the call. The reservation stays pending, counted at what it reserved (an upper bound of
 * the call), and the job ai-release-stale-reservations expires it counted (billing.ai_expire).
 */
export async function settle(s: Settlement): Promise<boolean> {
  const run = (response: Json | null) =>
    statement((sql) =>
      sql`select * from billing.ai_settle(${typed(sql, s.requestId, "text")}, ${typed(sql, s.promptTokens, "int4")},
        ${typed(sql, s.completionTokens, "int4")}, ${typed(sql, Math.round(s.latencyMs), "int4")},
        ${typed(sql, s.status, "text")}::public.ai_request_status,
        ${typed(sql, response === null ? null : jsonbText(response), "text")}::jsonb, ${typed(sql, s.cachedTokens ?? 0, "int4")})`
    );
  const attempts = s.response === null ? [null, null] : [s.response, s.response, null];
  let error: unknown;
  for (const response of attempts) {
    try {
      await run(response);
      return true;
    } catch (e) {
      error = e;
    }
  }
  console.error(JSON.stringify({
    fn: "ai-chat",
    level: "error",
    error: "settle failed: the reservation stays counted and expires counted",
    request_id: s.requestId,
    detail: String((error as Error)?.message ?? error),
  }));
  return false;
}

/**
 * Gives the reservation back when the upstream failed or timed out before it answered (callUpstream
 * only). Never after an answer: that is settled, or expires counted.
 */
export async function release(
  requestId: string,
  status: "upstream_error" | "upstream_timeout" | "client_closed",
  errorCode: string,
  latencyMs: number,
) {
  try {
    await statement((sql) => sql`select billing.ai_release(${requestId}, ${status}, ${errorCode}, ${Math.round(latencyMs)})`);
  } catch (e) {
    console.error(JSON.stringify({ fn: "ai-chat", level: "error", error: "release failed", request_id: requestId, detail: String((e as Error)?.message ?? e) }));
  }
}
