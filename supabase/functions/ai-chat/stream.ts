// Server-sent events: a cached completion replayed as a stream, and a live Groq stream passed
// through while what it shows is kept, so the settlement counts what was generated however the
// stream ends (completed, failed upstream, or the client went away). With
// stream_options.include_usage both end with OpenAI's usage chunk (no choices, the usage) before
// [DONE]; a failure mid-stream is the stream's last event, an error in ai-chat's error shape.
// The settlement (and cache entry) is sent as the stream ends and commits after it (afterResponse).
import { afterResponse } from "../_shared/after-response.ts";
import { AiError, errorBody } from "./errors.ts";
import { cachedPromptTokens, type Settlement, settle } from "./gateway.ts";
import { type ChatCompletionChunk, groqClient, type GroqConfig } from "./groq.ts";
import type { ChatRequest, Json } from "./request.ts";
import { holdOrganization } from "./single-flight.ts";
import { callUpstream, type Reserved, upstreamParams } from "./upstream.ts";

const encoder = new TextEncoder();
const sse = (data: unknown) => encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };

/** OpenAI's include_usage chunk: the completion's id, created and model, no choices, the usage. */
const usageChunk = (base: Json, usage: unknown) => ({ ...base, object: "chat.completion.chunk", choices: [], usage });

/** A cached completion replayed as a stream: the whole content in one chunk, then usage, then [DONE]. */
export function replayAsStream(completion: Json, includeUsage: boolean, headers: Record<string, string>): Response {
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
      if (includeUsage) controller.enqueue(sse(usageChunk(base, completion.usage ?? null)));
      controller.enqueue(sse("[DONE]"));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...headers } });
}

export async function streamChat(
  chat: ChatRequest,
  config: GroqConfig,
  r: Reserved,
  promptEstimate: number,
  headers: Record<string, string>,
  organizationId: string,
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
  // Settles once, after the stream's last event (afterResponse); the organization's next requests wait for it.
  const finish = async (status: Settlement["status"]) => {
    if (settled) return;
    settled = true;
    const settling = settleAs(status);
    holdOrganization(organizationId, settling);
    await afterResponse("ai-chat settlement", settling);
  };
  const settleAs = (status: Settlement["status"]) => {
    // A streamed tool call is not kept (only the text is): such an answer is not cached.
    const complete = status === "completed" && finishReason !== null && !r.capped && !chat.tools;
    return settle({
      requestId: r.requestId,
      promptTokens: usage?.prompt_tokens ?? promptEstimate,
      completionTokens: usage?.completion_tokens ?? pieces,
      cachedTokens: cachedPromptTokens(usage),
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
        await finish("upstream_error");
        controller.enqueue(sse(errorBody(new AiError(502, "upstream_error", "the upstream stream failed"))));
        controller.close();
        return;
      }
      if (settled) return;
      if (next.done) {
        // The settlement is on its way before the last events: it is not awaited (afterResponse).
        await finish("completed");
        if (chat.include_usage && first) {
          controller.enqueue(sse(usageChunk({ id: first.id, created: first.created, model: first.model }, usage ?? null)));
        }
        controller.enqueue(sse("[DONE]"));
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
