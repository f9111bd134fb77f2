// The AI gateway, an OpenAI-compatible endpoint (signed in; verify_jwt = false: requireUser checks the token), metered by the
// organization's plan; header x-organization-id on every route. Point an OpenAI client at
// <functions url>/ai-chat (docs/ai-gateway.md):
//   POST /functions/v1/ai-chat and POST /functions/v1/ai-chat/chat/completions
//     a chat completion through Groq: body {model, messages, temperature?, max_tokens?, top_p?,
//     stop?, seed?, user?, response_format?, n? (1), frequency_penalty?, presence_penalty?,
//     stream?, stream_options?}. Validate the body (request.ts), reserve in ONE SQL call
//     (billing.ai_reserve: membership, models, per-user rate limit, cache, prompt quota, token
//     reservation), call Groq (upstream.ts, stream.ts), answer, then settle in ONE SQL call
//     (billing.ai_settle, which also writes the cache entry) after the response has gone
//     (_shared/after-response.ts), or release the reservation when the upstream failed
//     (billing.ai_release, before the error is answered).
//   GET /functions/v1/ai-chat/models
//     the models the organization's plan allows (ONE SQL call as the user: get_entitlements).
//   groq-sdk's paths, /openai/v1/chat/completions and /openai/v1/models, are the same two routes.
// The SQL calls are in gateway.ts. The rules live in SQL; this folder maps them to HTTP.
//
// Every error, whoever throws it, is an HttpError answered by errors.ts: our {code, message} with
// OpenAI's envelope error: {message, type, code, param} beside it, and x-should-retry: false on
// refusals a retry cannot change. Answers that reached the reservation carry x-ratelimit-*
// (the per-user request limit, also as OpenAI's *-requests) and x-ratelimit-*-tokens (the
// organization's token quota, when the reservation reached it).
//
// Identity: the JWT is verified here (requireUser) and the user id from its claims is passed to
// the SQL functions. An unreachable database is a 503 before anything is sent upstream.
// Identical requests in flight share one upstream call (single-flight.ts).
import { afterResponse } from "../_shared/after-response.ts";
import { type Claims, requireUser } from "../_shared/auth.ts";
import { denoEnv, type EnvGetter } from "../_shared/env.ts";
import { handle, type Handler, HttpError, json, readJson, UUID_RE } from "../_shared/http.ts";
import { AiError, errorResponse } from "./errors.ts";
import { allowedModels, cachedPromptTokens, type Reservation, reserve, settle } from "./gateway.ts";
import { type ChatCompletion, groqClient, type GroqConfig, groqConfig } from "./groq.ts";
import { cacheKeyOf, type ChatRequest, estimatePromptTokens, invalid, type Json, MAX_BODY_BYTES, parseChatBody } from "./request.ts";
import { flights, holdOrganization, isWarm, markWarm, waitForOrganization } from "./single-flight.ts";
import { replayAsStream, streamChat } from "./stream.ts";
import { callUpstream, type Reserved, upstreamParams } from "./upstream.ts";

/**
 * x-ratelimit-* for the per-user rate limit (ai_requests_per_<window>, the tightest window), under
 * our names and OpenAI's *-requests names, and OpenAI's *-tokens for the organization's token
 * quota (groq_tokens_per_<window>, the tightest window) when the reservation reached it. Resets
 * are whole seconds.
 */
function rateHeaders(r: Reservation): Record<string, string> {
  const h: Record<string, string> = {};
  const put = (names: string[], v: number | string | null, f = (x: number) => x) => {
    if (v !== null) for (const name of names) h[name] = String(f(Number(v)));
  };
  const nonNegative = (x: number) => Math.max(0, x);
  put(["x-ratelimit-limit", "x-ratelimit-limit-requests"], r.rate_limit);
  put(["x-ratelimit-remaining", "x-ratelimit-remaining-requests"], r.rate_remaining, nonNegative);
  put(["x-ratelimit-reset", "x-ratelimit-reset-requests"], r.rate_reset_seconds);
  put(["x-ratelimit-limit-tokens"], r.token_limit);
  put(["x-ratelimit-remaining-tokens"], r.token_remaining, nonNegative);
  put(["x-ratelimit-reset-tokens"], r.token_reset_seconds);
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
  spend: {
    code: "ai_spend_cap_reached",
    message: "the organization's AI spend cap has too little left to pay for this call",
    upgrade: "Wait for the cap's window to reset, or upgrade the organization's plan for a higher AI spend cap.",
  },
  credits: {
    code: "insufficient_credits",
    message: "the organization's credits cannot pay for this call",
    upgrade: "Buy credits, or upgrade the organization's plan.",
  },
} as const;

/** The 403 or 429 error for a denial (thrown: errors.ts answers it like every other error). */
function denialError(r: Reservation, model: string): AiError {
  const headers = rateHeaders(r);
  if (r.denial === "not_a_member") return new AiError(403, "not_a_member", "you are not a member of this organization");
  if (r.denial === "model_not_priced") {
    return new AiError(403, "model_not_priced", `the model ${model} has no price, so the organization's plan cannot charge for it`, {
      headers,
      param: "model",
      fields: { plan_code: r.plan_code },
    });
  }
  if (r.denial === "model_not_allowed") {
    return new AiError(403, "model_not_allowed", `the model ${model} is not included in the organization's plan`, {
      headers,
      param: "model",
      fields: { plan_code: r.plan_code, upgrade: "Upgrade the organization's plan to use this model." },
    });
  }
  const d = DENIALS[r.denial as keyof typeof DENIALS];
  // Credits come back when someone buys them, not when a window resets: no retry-after.
  const retryAfter = r.denial === "rate" ? r.rate_reset_seconds : r.retry_after_seconds;
  return new AiError(429, d.code, d.message, {
    headers: { ...headers, ...(retryAfter !== null ? { "retry-after": String(retryAfter) } : {}) },
    fields: {
      limit: r.denial,
      limit_amount: r.denial === "rate" ? numberOrNull(r.rate_limit) : numberOrNull(r.limit_amount),
      remaining: r.denial === "rate" ? numberOrNull(r.rate_remaining) : numberOrNull(r.remaining),
      retry_after: retryAfter,
      plan_code: r.plan_code,
      upgrade: d.upgrade,
    },
  });
}

const numberOrNull = (v: number | string | null) => (v === null ? null : Number(v));

/** The signed-in user and the organization of x-organization-id (400 when missing or not a uuid). */
async function caller(req: Request, env: EnvGetter): Promise<{ claims: Claims & { sub: string }; organizationId: string }> {
  const claims = await requireUser(req, env);
  const organizationId = req.headers.get("x-organization-id")?.trim();
  if (!organizationId) {
    throw new AiError(400, "missing_organization_id", "the x-organization-id header is required");
  }
  if (!UUID_RE.test(organizationId)) {
    throw new AiError(400, "invalid_organization_id", "x-organization-id must be an organization id (uuid)");
  }
  return { claims, organizationId: organizationId.toLowerCase() };
}

type Route = (req: Request, env: EnvGetter) => Promise<Response>;

/**
 * The routes, by the path after the function's name (locally /functions/v1/ai-chat/..., on
 * Supabase /ai-chat/...): the bare function URL is a chat completion too, as it always was, and
 * Groq's own paths (/openai/v1/...) are there for groq-sdk, which appends them to its base URL.
 */
const ROUTES: Record<string, { method: string; route: Route }> = {
  "": { method: "POST", route: chatCompletion },
  "/chat/completions": { method: "POST", route: chatCompletion },
  "/openai/v1/chat/completions": { method: "POST", route: chatCompletion },
  "/models": { method: "GET", route: listModels },
  "/openai/v1/models": { method: "GET", route: listModels },
};

/** The ai-chat handler, without the CORS/log wrapper: 404 for another path, 405 for another method. */
export async function aiChat(req: Request, env: EnvGetter = denoEnv): Promise<Response> {
  const path = new URL(req.url).pathname.replace(/^\/functions\/v1(?=\/)/, "").replace(/^\/[^/]*/, "").replace(/\/+$/, "");
  const entry = ROUTES[path];
  if (!entry) {
    throw new AiError(404, "not_found", `no route ${path}: use POST /chat/completions or GET /models`);
  }
  if (req.method !== entry.method) {
    throw new AiError(405, "method_not_allowed", `use ${entry.method}`, { headers: { allow: entry.method } });
  }
  return await entry.route(req, env);
}

/** GET /models: OpenAI's model list, the plan's `ai_models` (created is unknown: 0). */
async function listModels(req: Request, env: EnvGetter): Promise<Response> {
  const { claims, organizationId } = await caller(req, env);
  const models = await allowedModels(claims, organizationId);
  return json({ object: "list", data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "groq" })) });
}

/** POST (/chat/completions): a chat completion, metered. */
async function chatCompletion(req: Request, env: EnvGetter): Promise<Response> {
  const { claims, organizationId } = await caller(req, env);
  let raw: Json;
  try {
    raw = await readJson(req, MAX_BODY_BYTES);
  } catch (e) {
    if (e instanceof HttpError && e.code !== "body_too_large") throw invalid(e.message);
    throw e;
  }
  const chat = parseChatBody(raw);
  const config = groqConfig(env);
  if (!config) throw new AiError(503, "ai_not_configured", "GROQ_API_KEY is not set");
  const promptEstimate = estimatePromptTokens(chat);
  const cacheKey = await cacheKeyOf(chat);

  // Settlements of this organization still committing after their answers come first (single-flight.ts).
  await waitForOrganization(organizationId);
  // Single flight: wait for an identical request in flight here, then (non-streaming) lead.
  const flightKey = `${organizationId}:${cacheKey}`;
  for (let p = flights.get(flightKey); p && !isWarm(flightKey); p = flights.get(flightKey)) await p;
  let land: (() => void) | undefined;
  if (!chat.stream && !isWarm(flightKey)) {
    flights.set(flightKey, new Promise<void>((resolve) => (land = resolve)));
  }
  const leading = land ? flights.get(flightKey) : undefined;
  const done = () => {
    if (land) {
      if (flights.get(flightKey) === leading) flights.delete(flightKey);
      land();
      land = undefined;
    }
  };

  // The flight lands when the leader's settlement has committed (its cache entry with it), which
  // is after its response: identical requests waiting here then find the answer in the cache.
  let landsLater = false;
  try {
    const r = await reserve(claims, organizationId, chat, promptEstimate, cacheKey);
    if (!r.allowed) throw denialError(r, chat.model);
    const headers = { ...rateHeaders(r), "x-request-id": r.request_id as string };
    // A cached answer is the completion object settle stored.
    const cached = r.cached_response as Json | null;
    if (cached) {
      markWarm(flightKey);
      const hit = { ...headers, "x-cache": "hit" };
      return chat.stream ? replayAsStream(cached, chat.include_usage, hit) : json(cached, 200, hit);
    }
    const miss = { ...headers, "x-cache": "miss" };
    const reservation = {
      requestId: r.request_id as string,
      maxTokens: r.max_tokens as number,
      capped: (r.max_tokens as number) < (chat.max_tokens ?? 1024),
      promptEstimate,
    };
    if (chat.stream) {
      return await streamChat(chat, config, reservation, promptEstimate, miss, organizationId);
    }
    const { response, settled } = await completeChat(chat, config, reservation, promptEstimate, miss);
    landsLater = true;
    holdOrganization(organizationId, settled);
    await afterResponse(
      "ai-chat settlement",
      settled.then((ok) => {
        if (ok && !reservation.capped) markWarm(flightKey);
      }).finally(done),
    );
    return response;
  } finally {
    if (!landsLater) done();
  }
}

/**
 * The upstream call, and its settlement started but not awaited: the caller answers with the
 * completion and hands `settled` to afterResponse (the settlement and the cache entry commit after
 * the response; until then the reservation stays counted).
 */
async function completeChat(
  chat: ChatRequest,
  config: GroqConfig,
  r: Reserved,
  promptEstimate: number,
  headers: Record<string, string>,
): Promise<{ response: Response; settled: Promise<boolean> }> {
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
  const response = json(completion, 200, headers);
  const settled = settle({
    requestId: r.requestId,
    promptTokens: usage?.prompt_tokens ?? promptEstimate,
    completionTokens: usage?.completion_tokens ?? r.maxTokens,
    cachedTokens: cachedPromptTokens(usage),
    latencyMs: latency,
    status: "completed",
    response: r.capped ? null : completion as unknown as Json,
  });
  return { response, settled };
}

/** The handler as mounted: CORS, error mapping and one log line per request. */
export const handler: Handler = handle("ai-chat", (req) => aiChat(req), errorResponse);
