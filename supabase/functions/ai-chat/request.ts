// The ai-chat request: validation of the OpenAI-style body, the prompt token estimate the
// reservation needs, and the cache key (identical requests share one cached answer).
import { sha256Hex } from "../_shared/crypto.ts";
import { HttpError } from "../_shared/http.ts";

/** Largest accepted body (bytes); larger is 413 body_too_large. */
export const MAX_BODY_BYTES = 128 * 1024;
const MAX_MESSAGES = 256;
const MAX_TOKENS_CAP = 131072;
const ROLES = new Set(["system", "user", "assistant"]);
const BODY_KEYS = new Set(["model", "messages", "temperature", "max_tokens", "max_completion_tokens", "stream"]);

export type Json = Record<string, unknown>;

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

export const invalid = (message: string) => new HttpError(400, "invalid_body", message);

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

/** Tokens allowed per message for the chat template's markers around it (start, end, separators). */
export const MESSAGE_OVERHEAD_TOKENS = 8;
/** Tokens allowed per request for the template's own text: its opening, a default system header, the answer's header. */
export const REQUEST_OVERHEAD_TOKENS = 64;

/**
 * The prompt's tokens, bounded from above before the call (the reservation needs a number that
 * the actual count cannot exceed, or concurrent reservations could together pass the plan's
 * groq_tokens limit): the UTF-8 bytes of every message's text, role and name, plus 8 tokens per
 * message and 64 per request for the chat template. Why this is an upper bound: the tokenizers of
 * the models Groq serves are byte-level BPE, where every token of text stands for at least one
 * byte, so n bytes of text are at most n tokens, whatever the script (an Indian script or an emoji
 * is several bytes a character, never more tokens than bytes); the template adds a fixed number of
 * special tokens per message and a short preamble per request, which the two allowances cover.
 * It is loose for ordinary text (about 4 bytes a token in English), but the surplus is given back
 * when the call is settled at Groq's own count; only concurrent reservations feel it. Should a
 * provider's template ever exceed the allowance, billing.ai_settle still never counts past the
 * quota and the log keeps the true numbers.
 */
export function estimatePromptTokens(messages: ChatMessage[]): number {
  let tokens = REQUEST_OVERHEAD_TOKENS;
  for (const m of messages) {
    const text = typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("");
    tokens += utf8.encode(text).length + utf8.encode(m.role).length + utf8.encode(m.name ?? "").length +
      MESSAGE_OVERHEAD_TOKENS;
  }
  return Math.min(1_000_000, tokens);
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
export function cacheKeyOf(req: ChatRequest): Promise<string> {
  return sha256Hex(canonicalJson({
    model: req.model,
    messages: req.messages,
    temperature: req.temperature ?? null,
    max_tokens: req.max_tokens ?? null,
  }));
}
