// The upstream call to Groq under the reservation: its parameters, its timeout, and what a
// failure answers (the reservation is released, or on a timeout settled at the prompt, first).
import { HttpError } from "../_shared/http.ts";
import { release, settle } from "./gateway.ts";
import { type Groq, type GroqConfig, isUpstreamTimeout, upstreamStatus } from "./groq.ts";
import type { ChatRequest } from "./request.ts";

/** The reservation as the upstream call uses it. */
export interface Reserved {
  requestId: string;
  maxTokens: number;
  /** max_tokens was lowered to fit the quota: the answer may be cut short, so it is not cached. */
  capped: boolean;
  /** The prompt's estimate (an upper bound): what a call that timed out is settled at. */
  promptEstimate: number;
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

/**
 * What goes to Groq: the request's fields as given, max_tokens as reserved. Not n (always 1, Groq's
 * default) and not stream_options: ai-chat writes the include_usage chunk itself (stream.ts), from
 * the usage Groq reports on its last chunk either way.
 */
export function upstreamParams(chat: ChatRequest, maxTokens: number) {
  const {
    model, messages, temperature, top_p, stop, seed, user, response_format, frequency_penalty, presence_penalty, tools,
    tool_choice, parallel_tool_calls,
  } = chat;
  const optional = {
    temperature, top_p, stop, seed, user, response_format, frequency_penalty, presence_penalty, tools, tool_choice,
    parallel_tool_calls,
  };
  return {
    model,
    // Validated to OpenAI's shapes (request.ts), which groq-sdk types as a union per role.
    messages: messages as unknown as Groq.Chat.ChatCompletionMessageParam[],
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)) as Partial<typeof optional>,
    max_completion_tokens: maxTokens,
  };
}

/**
 * Starts the upstream call under the upstream timeout (aborting `abort` when it passes); on any
 * failure throws the HTTP error (502, or 504 on the timeout) after giving the reservation back:
 * released when Groq failed (it bills nothing for an error), settled at the prompt's estimate
 * (an upper bound) and no answer when it timed out, since Groq may have read the prompt, and
 * billed it, before we stopped waiting.
 */
export async function callUpstream<T>(
  config: GroqConfig,
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
    if (failure.status === "upstream_timeout") {
      await settle({
        requestId: r.requestId,
        promptTokens: r.promptEstimate,
        completionTokens: 0,
        latencyMs: performance.now() - started,
        status: "upstream_timeout",
        response: null,
      });
    } else {
      await release(r.requestId, failure.status, failure.error.code, performance.now() - started);
    }
    throw withHeaders(failure.error, headers);
  } finally {
    clearTimeout(timer);
  }
}
