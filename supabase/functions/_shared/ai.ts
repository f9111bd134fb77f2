// The AI gateway's glue (POST /functions/v1/ai-chat): validate the OpenAI-style body, reserve in
// ONE SQL call (public.ai_reserve: membership, models, per-user rate limit, cache, prompt quota,
// token reservation), call Groq, settle in ONE SQL call (public.ai_settle), or release the
// reservation when the upstream failed (public.ai_release). The rules live in
// supabase/migrations/20261120000600_ai_gateway.sql; this file maps them to HTTP.
//
// Identity: the JWT is verified here (requireUser) and the user id from its claims is passed to
// the SQL functions, which signed-in users cannot execute (nobody can settle their own usage at
// zero through the API). Each SQL call is ONE statement on the pooled connection
// (SUPABASE_DB_URL's role, which owns the functions: the privileged path of DESIGN 3), not a
// role-switching transaction: the counter rows ai_reserve locks are then released when the
// statement commits in the server, not after another round trip through this busy event loop.
// An unreachable database is a 503 before anything is sent upstream.
//
// Single flight: identical non-streaming requests (same organization and cache key) that arrive
// while one is in flight wait for it instead of calling Groq again, then are answered from the
// cache it filled (a normal ai_reserve cache hit: rate-limited and logged, no prompt, no tokens).
// The map is per function instance (one isolate); two instances may each call Groq once.
import { type Claims, requireUser } from "./auth.ts";
import { sqlError, statement } from "./db.ts";
import { type ChatCompletion, type ChatCompletionChunk, groqClient, groqConfig, isUpstreamTimeout, upstreamStatus } from "./groq.ts";
import { denoEnv, type EnvGetter, handle, type Handler, HttpError, json, readJson, UUID_RE } from "./http.ts";

/** Largest accepted body (bytes); larger is 413 body_too_large. */
export const MAX_BODY_BYTES = 128 * 1024;
const MAX_MESSAGES = 256;
const MAX_TOKENS_CAP = 131072;
const ROLES = new Set(["system", "user", "assistant"]);
const BODY_KEYS = new Set(["model", "messages", "temperature", "max_tokens", "max_completion_tokens", "stream"]);

type Json = Record<string, unknown>;

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string | { type: "text"; text: string }[];
  name?: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  max_tokens?: number;
  stream: boolean;
}

const invalid = (message: string) => new HttpError(400, "invalid_body", message);

/** Validate an OpenAI-style chat body; 400 invalid_body naming what is wrong. */
export function parseChatBody(body: Json): ChatRequest {
  for (const key of Object.keys(body)) {
    if (!BODY_KEYS.has(key)) throw invalid(`unsupported field "${key}"`);
  }
  const { model, messages, temperature, stream } = body;
  if (typeof model !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/.test(model)) {
    throw invalid("model must be a model name such as llama-3.1-8b-instant");
  }
  if (!Array.isArray(messages) || messages.length === 0 || messages.length > MAX_MESSAGES) {
    throw invalid(`messages must be an array of 1 to ${MAX_MESSAGES} messages`);
  }
  const parsed: ChatMessage[] = messages.map((m, i) => {
    if (typeof m !== "object" || m === null || Array.isArray(m)) throw invalid(`messages[${i}] must be an object`);
    const { role, content, name, ...rest } = m as Json;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) throw invalid(`messages[${i}]: unsupported field "${extra}"`);
    if (typeof role !== "string" || !ROLES.has(role)) {
      throw invalid(`messages[${i}].role must be system, user or assistant`);
    }
    let text: ChatMessage["content"];
    if (typeof content === "string") {
      text = content;
    } else if (
      Array.isArray(content) && content.length > 0 &&
      content.every((p) =>
        typeof p === "object" && p !== null && (p as Json).type === "text" && typeof (p as Json).text === "string" &&
        Object.keys(p).length === 2
      )
    ) {
      text = content.map((p) => ({ type: "text" as const, text: (p as Json).text as string }));
    } else {
      throw invalid(`messages[${i}].content must be a string or an array of text parts`);
    }
    if (name !== undefined && (typeof name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(name))) {
      throw invalid(`messages[${i}].name must be 1 to 64 letters, digits, _ or -`);
    }
    return { role: role as ChatMessage["role"], content: text, ...(name !== undefined ? { name: name as string } : {}) };
  });
  if (temperature !== undefined && temperature !== null &&
      (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0 || temperature > 2)) {
    throw invalid("temperature must be a number from 0 to 2");
  }
  const maxTokens = body.max_tokens ?? body.max_completion_tokens;
  if (body.max_tokens != null && body.max_completion_tokens != null && body.max_tokens !== body.max_completion_tokens) {
    throw invalid("max_tokens and max_completion_tokens disagree");
  }
  if (maxTokens !== undefined && maxTokens !== null &&
      (!Number.isInteger(maxTokens) || (maxTokens as number) < 1 || (maxTokens as number) > MAX_TOKENS_CAP)) {
    throw invalid(`max_tokens must be an integer from 1 to ${MAX_TOKENS_CAP}`);
  }
  if (stream !== undefined && stream !== null && typeof stream !== "boolean") throw invalid("stream must be a boolean");
  return {
    model,
    messages: parsed,
    ...(typeof temperature === "number" ? { temperature } : {}),
    ...(typeof maxTokens === "number" ? { max_tokens: maxTokens } : {}),
    stream: stream === true,
  };
}

const utf8 = new TextEncoder();

/**
 * The prompt's tokens, estimated before the call (the reservation needs a number): a token per
 * 4 bytes of UTF-8 text (about a token per 4 English characters, and more per character for
 * Indian scripts), plus 4 per message for the chat template. Settlement uses Groq's own count.
 */
export function estimatePromptTokens(messages: ChatMessage[]): number {
  let bytes = 0;
  for (const m of messages) {
    const text = typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("");
    bytes += utf8.encode(text).length;
  }
  return Math.min(1_000_000, Math.max(1, Math.ceil(bytes / 4) + 4 * messages.length));
}

/** JSON with object keys sorted at every level: the same request always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.keys(value as Json).sort()
      .filter((k) => (value as Json)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Json)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** sha256 (hex) of what decides the answer: model, messages, temperature, max_tokens (not stream). */
export async function cacheKeyOf(req: ChatRequest): Promise<string> {
  const text = canonicalJson({
    model: req.model,
    messages: req.messages,
    temperature: req.temperature ?? null,
    max_tokens: req.max_tokens ?? null,
  });
  const digest = await crypto.subtle.digest("SHA-256", utf8.encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What public.ai_reserve answers (bigint columns arrive as strings). */
interface Reservation {
  allowed: boolean;
  denial: "not_a_member" | "model_not_allowed" | "rate" | "prompts" | "tokens" | null;
  request_id: string | null;
  plan_code: string | null;
  max_tokens: number | null;
  reserved_tokens: string | null;
  cached_response: Json | null;
  rate_limit: string | null;
  rate_remaining: string | null;
  rate_reset_seconds: number | null;
  limit_amount: string | null;
  remaining: string | null;
  retry_after_seconds: number | null;
}

/** x-ratelimit-* for the per-user rate limit (ai_requests_per_<window>, the tightest window). */
function rateHeaders(r: Reservation): Record<string, string> {
  const h: Record<string, string> = {};
  if (r.rate_limit !== null) h["x-ratelimit-limit"] = String(r.rate_limit);
  if (r.rate_remaining !== null) h["x-ratelimit-remaining"] = String(Math.max(0, Number(r.rate_remaining)));
  if (r.rate_reset_seconds !== null) h["x-ratelimit-reset"] = String(r.rate_reset_seconds);
  return h;
}

const DENIALS = {
  rate: {
    code: "rate_limited",
    message: "too many AI requests from this user: the per-user rate limit of the plan is reached",
    upgrade: "Wait for the window to reset, or upgrade the organization's plan for a higher per-user rate limit.",
  },
  prompts: {
    code: "prompt_quota_exceeded",
    message: "the organization's AI prompt quota is used up",
    upgrade: "Upgrade the organization's plan for more AI prompts.",
  },
  tokens: {
    code: "token_quota_exceeded",
    message: "the organization's Groq token quota has too little left to answer",
    upgrade: "Upgrade the organization's plan for more Groq tokens.",
  },
} as const;

/** 403 and 429 answers for a denial. */
function denialResponse(r: Reservation, model: string): Response {
  const headers = rateHeaders(r);
  if (r.denial === "not_a_member") {
    return json({ code: "not_a_member", message: "you are not a member of this organization" }, 403, headers);
  }
  if (r.denial === "model_not_allowed") {
    return json({
      code: "model_not_allowed",
      message: `the model ${model} is not included in the organization's plan`,
      plan_code: r.plan_code,
      upgrade: "Upgrade the organization's plan to use this model.",
    }, 403, headers);
  }
  const d = DENIALS[r.denial as keyof typeof DENIALS];
  const retryAfter = r.denial === "rate" ? r.rate_reset_seconds : r.retry_after_seconds;
  return json({
    code: d.code,
    message: d.message,
    limit: r.denial,
    limit_amount: r.denial === "rate" ? numberOrNull(r.rate_limit) : numberOrNull(r.limit_amount),
    remaining: r.denial === "rate" ? numberOrNull(r.rate_remaining) : numberOrNull(r.remaining),
    retry_after: retryAfter,
    plan_code: r.plan_code,
    upgrade: d.upgrade,
  }, 429, { ...headers, ...(retryAfter !== null ? { "retry-after": String(retryAfter) } : {}) });
}

const numberOrNull = (v: string | null) => (v === null ? null : Number(v));

/** The shared SQL error mapping, with bad input named as this endpoint names it (invalid_body). */
const sqlToHttp = (e: unknown) => sqlError(e, { "22023": [400, "invalid_body"] });

async function reserve(
  claims: Claims & { sub: string },
  organizationId: string,
  req: ChatRequest,
  promptTokens: number,
  cacheKey: string,
): Promise<Reservation> {
  try {
    const [row] = await statement((sql) =>
      sql<Reservation[]>`select * from public.ai_reserve(${organizationId}, ${claims.sub}, ${req.model},
        ${req.max_tokens ?? null}, ${promptTokens}, ${cacheKey}, ${req.stream})`
    );
    return row;
  } catch (e) {
    throw sqlToHttp(e);
  }
}

interface Settlement {
  requestId: string;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
  status: "completed" | "client_closed" | "upstream_error" | "upstream_timeout";
  response: Json | null;
}

/** One SQL call after the upstream; retried once (a lost settlement would be released later). */
async function settle(s: Settlement): Promise<void> {
  const run = () =>
    statement((sql) =>
      sql`select * from public.ai_settle(${s.requestId}, ${s.promptTokens}, ${s.completionTokens},
        ${Math.round(s.latencyMs)}, ${s.status}, ${s.response === null ? null : JSON.stringify(s.response)}::text::jsonb)`
    );
  try {
    await run();
  } catch {
    try {
      await run();
    } catch (e) {
      console.error(JSON.stringify({ fn: "ai-chat", level: "error", error: "settle failed", request_id: s.requestId, detail: String((e as Error)?.message ?? e) }));
    }
  }
}

async function release(requestId: string, status: "upstream_error" | "upstream_timeout" | "client_closed", errorCode: string, latencyMs: number) {
  try {
    await statement((sql) => sql`select public.ai_release(${requestId}, ${status}, ${errorCode}, ${Math.round(latencyMs)})`);
  } catch (e) {
    console.error(JSON.stringify({ fn: "ai-chat", level: "error", error: "release failed", request_id: requestId, detail: String((e as Error)?.message ?? e) }));
  }
}

function upstreamFailure(e: unknown, timedOut: boolean): { status: "upstream_error" | "upstream_timeout"; error: HttpError } {
  if (timedOut || isUpstreamTimeout(e)) {
    return { status: "upstream_timeout", error: new HttpError(504, "upstream_timeout", "Groq did not answer in time") };
  }
  const status = upstreamStatus(e);
  return {
    status: "upstream_error",
    error: new HttpError(502, "upstream_error", status ? `Groq answered ${status}` : "Groq could not be reached"),
  };
}

function withHeaders(e: HttpError, headers: Record<string, string>): HttpError {
  return new HttpError(e.status, e.code, e.message, { ...e.headers, ...headers });
}

const encoder = new TextEncoder();
const sse = (data: unknown) => encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };

/** A cached completion replayed as a stream: the whole content in one chunk, then usage, then [DONE]. */
function replayAsStream(completion: Json, headers: Record<string, string>): Response {
  const choice = ((completion.choices as Json[] | undefined) ?? [])[0] ?? {};
  const message = (choice.message as Json | undefined) ?? {};
  const base = { id: completion.id, object: "chat.completion.chunk", created: completion.created, model: completion.model };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(sse({ ...base, choices: [{ index: 0, delta: { role: "assistant", content: message.content ?? "" }, finish_reason: null }] }));
      controller.enqueue(sse({
        ...base,
        choices: [{ index: 0, delta: {}, finish_reason: choice.finish_reason ?? "stop" }],
        x_groq: { usage: completion.usage },
        usage: completion.usage,
      }));
      controller.enqueue(sse("[DONE]"));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...headers } });
}

const flights = new Map<string, Promise<void>>();

/**
 * Keys whose answer this instance saw in (or put into) the cache in the last minute: identical
 * requests skip the single-flight wait and go straight to ai_reserve, which answers from the
 * cache, so a popular prompt's cache hits run in parallel instead of one after another.
 */
const warm = new Map<string, number>();
const WARM_MS = 60_000;
const isWarm = (key: string) => (warm.get(key) ?? 0) > Date.now();
function markWarm(key: string) {
  if (warm.size >= 10_000) warm.clear();
  warm.set(key, Date.now() + WARM_MS);
}

/** The ai-chat handler, without the CORS/log wrapper. */
export async function aiChat(req: Request, env: EnvGetter = denoEnv): Promise<Response> {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const claims = await requireUser(req, env);
  const organizationId = req.headers.get("x-organization-id")?.trim();
  if (!organizationId) {
    throw new HttpError(400, "missing_organization_id", "the x-organization-id header is required");
  }
  if (!UUID_RE.test(organizationId)) {
    throw new HttpError(400, "invalid_organization_id", "x-organization-id must be an organization id (uuid)");
  }
  let raw: Json;
  try {
    raw = await readJson(req, MAX_BODY_BYTES);
  } catch (e) {
    if (e instanceof HttpError && e.code !== "body_too_large") throw invalid(e.message);
    throw e;
  }
  const chat = parseChatBody(raw);
  const config = groqConfig(env);
  if (!config) throw new HttpError(503, "ai_not_configured", "GROQ_API_KEY is not set");
  const promptEstimate = estimatePromptTokens(chat.messages);
  const cacheKey = await cacheKeyOf(chat);

  // Single flight: wait for an identical request in flight here, then (non-streaming) lead.
  const flightKey = `${organizationId}:${cacheKey}`;
  for (let p = flights.get(flightKey); p && !isWarm(flightKey); p = flights.get(flightKey)) await p;
  let land: (() => void) | undefined;
  if (!chat.stream && !isWarm(flightKey)) {
    flights.set(flightKey, new Promise<void>((resolve) => (land = resolve)));
  }
  const done = () => {
    if (land) {
      flights.delete(flightKey);
      land();
      land = undefined;
    }
  };

  try {
    const r = await reserve(claims, organizationId, chat, promptEstimate, cacheKey);
    if (!r.allowed) return denialResponse(r, chat.model);
    const headers = { ...rateHeaders(r), "x-request-id": r.request_id as string };
    if (r.cached_response) {
      markWarm(flightKey);
      const hit = { ...headers, "x-cache": "hit" };
      return chat.stream ? replayAsStream(r.cached_response, hit) : json(r.cached_response, 200, hit);
    }
    const miss = { ...headers, "x-cache": "miss" };
    const reservation = { requestId: r.request_id as string, maxTokens: r.max_tokens as number, capped: (r.max_tokens as number) < (chat.max_tokens ?? 1024) };
    if (chat.stream) {
      return await streamChat(chat, config, reservation, promptEstimate, miss);
    }
    const res = await completeChat(chat, config, reservation, promptEstimate, miss);
    if (!reservation.capped) markWarm(flightKey);
    return res;
  } finally {
    done();
  }
}

interface Reserved {
  requestId: string;
  maxTokens: number;
  /** max_tokens was lowered to fit the quota: the answer may be cut short, so it is not cached. */
  capped: boolean;
}

function upstreamParams(chat: ChatRequest, maxTokens: number) {
  return {
    model: chat.model,
    messages: chat.messages,
    ...(chat.temperature !== undefined ? { temperature: chat.temperature } : {}),
    max_completion_tokens: maxTokens,
  };
}

/**
 * Starts the upstream call under the upstream timeout (aborting `abort` when it passes); on any
 * failure releases the reservation and throws the HTTP error (502, or 504 on the timeout).
 */
async function callUpstream<T>(
  config: NonNullable<ReturnType<typeof groqConfig>>,
  abort: AbortController,
  r: Reserved,
  headers: Record<string, string>,
  started: number,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, config.timeoutMs);
  try {
    return await call(abort.signal);
  } catch (e) {
    const failure = upstreamFailure(e, timedOut);
    await release(r.requestId, failure.status, failure.error.code, performance.now() - started);
    throw withHeaders(failure.error, headers);
  } finally {
    clearTimeout(timer);
  }
}

async function completeChat(
  chat: ChatRequest,
  config: NonNullable<ReturnType<typeof groqConfig>>,
  r: Reserved,
  promptEstimate: number,
  headers: Record<string, string>,
): Promise<Response> {
  const started = performance.now();
  const abort = new AbortController();
  const completion: ChatCompletion = await callUpstream(config, abort, r, headers, started, (signal) =>
    groqClient(config).chat.completions.create(
      { ...upstreamParams(chat, r.maxTokens), stream: false },
      { signal },
    )
  );
  const latency = performance.now() - started;
  const usage = completion.usage;
  await settle({
    requestId: r.requestId,
    promptTokens: usage?.prompt_tokens ?? promptEstimate,
    completionTokens: usage?.completion_tokens ?? r.maxTokens,
    latencyMs: latency,
    status: "completed",
    response: r.capped ? null : completion as unknown as Json,
  });
  return json(completion, 200, headers);
}

async function streamChat(
  chat: ChatRequest,
  config: NonNullable<ReturnType<typeof groqConfig>>,
  r: Reserved,
  promptEstimate: number,
  headers: Record<string, string>,
): Promise<Response> {
  const started = performance.now();
  const abort = new AbortController();
  // The timeout covers the wait for Groq's answer to begin; the stream itself may take longer.
  const stream = await callUpstream(config, abort, r, headers, started, (signal) =>
    groqClient(config).chat.completions.create(
      { ...upstreamParams(chat, r.maxTokens), stream: true },
      { signal },
    )
  );
  const upstream: AsyncIterator<ChatCompletionChunk> = stream[Symbol.asyncIterator]();

  // What the stream has shown so far: enough to settle if it ends early, and to cache it if not.
  let usage: { prompt_tokens?: number; completion_tokens?: number } | undefined;
  let pieces = 0;
  let content = "";
  let finishReason: string | null = null;
  let first: ChatCompletionChunk | undefined;
  let settled = false;
  const finish = async (status: Settlement["status"]) => {
    if (settled) return;
    settled = true;
    const complete = status === "completed" && finishReason !== null && !r.capped;
    await settle({
      requestId: r.requestId,
      promptTokens: usage?.prompt_tokens ?? promptEstimate,
      completionTokens: usage?.completion_tokens ?? pieces,
      latencyMs: performance.now() - started,
      status,
      response: complete && first
        ? {
          id: first.id,
          object: "chat.completion",
          created: first.created,
          model: first.model,
          choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: finishReason }],
          usage: usage ?? null,
        }
        : null,
    });
  };

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: IteratorResult<ChatCompletionChunk>;
      try {
        next = await upstream.next();
      } catch {
        if (settled) return;
        // Groq failed mid-stream: say so in the stream, settle what was generated.
        controller.enqueue(sse({ error: { code: "upstream_error", message: "the upstream stream failed" } }));
        await finish("upstream_error");
        controller.close();
        return;
      }
      if (settled) return;
      if (next.done) {
        controller.enqueue(sse("[DONE]"));
        await finish("completed");
        controller.close();
        return;
      }
      const chunk = next.value;
      first ??= chunk;
      const choice = chunk.choices?.[0];
      const piece = choice?.delta?.content;
      if (typeof piece === "string" && piece.length > 0) {
        pieces++;
        content += piece;
      }
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      const chunkUsage = chunk.x_groq?.usage ?? (chunk as { usage?: typeof usage }).usage;
      if (chunkUsage) usage = chunkUsage;
      controller.enqueue(sse(chunk));
    },
    async cancel() {
      // The client went away: stop Groq, settle what it generated.
      abort.abort();
      await finish("client_closed");
    },
  });
  return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...headers } });
}

/** The handler as mounted: CORS, error mapping and one log line per request. */
export const aiChatHandler: Handler = handle("ai-chat", (req) => aiChat(req));
