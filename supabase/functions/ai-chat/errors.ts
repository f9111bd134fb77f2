// ai-chat's one error mechanism: every error of this function is an HttpError (thrown by ai-chat
// itself, by requireUser, readJson or the SQL mapping) and becomes its answer here, through
// handle()'s toResponse or, mid-stream, as the stream's last event. The body keeps our top-level
// `code` and `message` (and a denial's fields: limit, plan_code, upgrade, ...) and adds OpenAI's
// envelope `error: {message, type, code, param}`, so OpenAI clients read `.code`, `.type` and
// `.param` from it. Other functions keep their plain {code, message}.
import { HttpError, json } from "../_shared/http.ts";

/** An ai-chat error with the body field it is about (`param`) and extra top-level body fields. */
export class AiError extends HttpError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly extra: { headers?: Record<string, string>; param?: string; fields?: Record<string, unknown> } = {},
  ) {
    super(status, code, message, extra.headers ?? {});
  }
}

/** Our codes for a used-up quota: OpenAI calls this insufficient_quota, not a rate limit. */
const QUOTA_CODES = new Set(["prompt_quota_exceeded", "token_quota_exceeded", "ai_spend_cap_reached", "insufficient_credits"]);

/**
 * Refusals that asking again cannot change before a window resets or the plan changes: the openai
 * client retries a 429 (and 5xx) by itself unless told `x-should-retry: false`. The per-user rate
 * limit is left to the client: it waits Retry-After (up to a minute) and tries again.
 */
const NO_RETRY_CODES = new Set([...QUOTA_CODES, "model_not_allowed", "model_not_priced", "not_a_member"]);

/**
 * OpenAI's error type for our status and code. 5xx are `api_error` (the type OpenAI's API
 * reference gives for errors on its side; the openai client picks its InternalServerError by the
 * status anyway); any other 4xx (405, 413) is `invalid_request_error`, a request to fix.
 */
export function openAiType(status: number, code: string): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return QUOTA_CODES.has(code) ? "insufficient_quota" : "rate_limit_error";
  if (status >= 500) return "api_error";
  return "invalid_request_error";
}

/** The body of an ai-chat error: our fields, and OpenAI's envelope beside them. */
export function errorBody(e: HttpError): Record<string, unknown> {
  const extra = e instanceof AiError ? e.extra : {};
  return {
    code: e.code,
    message: e.message,
    ...extra.fields,
    error: { message: e.message, type: openAiType(e.status, e.code), code: e.code, param: extra.param ?? null },
  };
}

/** The answer for an ai-chat error (handle()'s toResponse): the body above, its headers, the retry hint. */
export function errorResponse(e: HttpError): Response {
  const retry: Record<string, string> = NO_RETRY_CODES.has(e.code) ? { "x-should-retry": "false" } : {};
  return json(errorBody(e), e.status, { ...e.headers, ...retry });
}
