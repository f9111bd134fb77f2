// POST /functions/v1/ai-chat (signed in; verify_jwt = true): an OpenAI-style chat completion
// through Groq, metered by the organization's plan. Body {model, messages, temperature?,
// max_tokens?, stream?}; header x-organization-id. Validate the body (request.ts), reserve in ONE
// SQL call (billing.ai_reserve: membership, models, per-user rate limit, cache, prompt quota,
// token reservation), call Groq (upstream.ts, stream.ts), settle in ONE SQL call
// (billing.ai_settle), or release the reservation when the upstream failed (billing.ai_release);
// the SQL calls are in gateway.ts. The rules live in SQL; this folder maps them to HTTP.
//
// Identity: the JWT is verified here (requireUser) and the user id from its claims is passed to
// the SQL functions. An unreachable database is a 503 before anything is sent upstream.
// Identical requests in flight share one upstream call (single-flight.ts).
import { requireUser } from "../_shared/auth.ts";
import { denoEnv, type EnvGetter } from "../_shared/env.ts";
import { handle, type Handler, HttpError, json, readJson, UUID_RE } from "../_shared/http.ts";
import { type Reservation, reserve, settle } from "./gateway.ts";
import { type ChatCompletion, groqClient, type GroqConfig, groqConfig } from "./groq.ts";
import { cacheKeyOf, type ChatRequest, estimatePromptTokens, invalid, type Json, MAX_BODY_BYTES, parseChatBody } from "./request.ts";
import { flights, isWarm, markWarm } from "./single-flight.ts";
import { replayAsStream, streamChat } from "./stream.ts";
import { callUpstream, type Reserved, upstreamParams } from "./upstream.ts";

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

const numberOrNull = (v: number | string | null) => (v === null ? null : Number(v));

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
    // A cached answer is the completion object settle stored.
    const cached = r.cached_response as Json | null;
    if (cached) {
      markWarm(flightKey);
      const hit = { ...headers, "x-cache": "hit" };
      return chat.stream ? replayAsStream(cached, hit) : json(cached, 200, hit);
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

async function completeChat(
  chat: ChatRequest,
  config: GroqConfig,
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

/** The handler as mounted: CORS, error mapping and one log line per request. */
export const handler: Handler = handle("ai-chat", (req) => aiChat(req));
