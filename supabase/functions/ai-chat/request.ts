// The ai-chat request: validation of the OpenAI-style body, the prompt token estimate the
// reservation needs, and the cache key (identical requests share one cached answer).
import { sha256Hex } from "../_shared/crypto.ts";
import { AiError } from "./errors.ts";
import type { ResponseFormat } from "./groq.ts";

/** Largest accepted body (bytes); larger is 413 body_too_large. */
export const MAX_BODY_BYTES = 128 * 1024;
const MAX_MESSAGES = 256;
const MAX_TOKENS_CAP = 131072;
const MAX_STOP = 4;
const MAX_TOOLS = 128;
const ROLES = new Set(["system", "user", "assistant", "tool"]);
/**
 * The OpenAI chat fields we take. Any other field is refused (400 naming it) rather than dropped:
 * a client asking for logprobs or n > 1 must not get an answer that silently ignored it.
 */
const BODY_KEYS = new Set([
  "model", "messages", "temperature", "max_tokens", "max_completion_tokens", "stream", "stream_options",
  "top_p", "stop", "seed", "user", "response_format", "n", "frequency_penalty", "presence_penalty",
  "tools", "tool_choice", "parallel_tool_calls",
]);
const TOOL_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const JSON_SCHEMA_KEYS = new Set(["name", "description", "schema", "strict"]);

export type Json = Record<string, unknown>;

/** A tool call the model made, as an assistant message sent back carries it. */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A function the model may call: its name, and the description and JSON schema it reads. */
export interface Tool {
  type: "function";
  function: { name: string; description?: string; parameters?: Json; strict?: boolean };
}

export type ToolChoice = "none" | "auto" | "required" | { type: "function"; function: { name: string } };

/**
 * A message. content is null only on an assistant message with tool_calls; a tool message answers
 * the call tool_call_id names.
 */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | { type: "text"; text: string }[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
}

/** A valid request. Optional fields are absent when the body left them out or null. */
export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  max_tokens?: number;
  top_p?: number;
  /** Always an array (a single string is one stop sequence). */
  stop?: string[];
  seed?: number;
  user?: string;
  response_format?: ResponseFormat;
  frequency_penalty?: number;
  presence_penalty?: number;
  tools?: Tool[];
  tool_choice?: ToolChoice;
  parallel_tool_calls?: boolean;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with no choices and the usage, before [DONE]. */
  include_usage: boolean;
}

/** 400 invalid_body: the body is wrong; `param` names the field (OpenAI's error.param). */
export const invalid = (message: string, param?: string) => new AiError(400, "invalid_body", message, { param });

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** An optional number field within [min, max], or a 400 naming it. */
function numberField(body: Json, name: string, min: number, max: number): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    throw invalid(`${name} must be a number from ${min} to ${max}`, name);
  }
  return v;
}

function parseMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0 || messages.length > MAX_MESSAGES) {
    throw invalid(`messages must be an array of 1 to ${MAX_MESSAGES} messages`, "messages");
  }
  return messages.map((m, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw invalid(`${at} must be an object`, at);
    const { role, content, name, tool_calls: toolCalls, tool_call_id: toolCallId, ...rest } = m;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) throw invalid(`${at}: unsupported field "${extra}"`, `${at}.${extra}`);
    if (typeof role !== "string" || !ROLES.has(role)) {
      throw invalid(`${at}.role must be system, user, assistant or tool`, `${at}.role`);
    }
    const calls = toolCalls === undefined || toolCalls === null ? undefined : parseToolCalls(toolCalls, `${at}.tool_calls`);
    if (calls !== undefined && role !== "assistant") throw invalid(`${at}: only an assistant message has tool_calls`, `${at}.tool_calls`);
    const answers = toolCallId === undefined || toolCallId === null ? undefined : toolCallId;
    if (role === "tool" && (typeof answers !== "string" || answers.length < 1 || answers.length > 256)) {
      throw invalid(`${at}.tool_call_id must name the tool call a tool message answers`, `${at}.tool_call_id`);
    }
    if (role !== "tool" && answers !== undefined) throw invalid(`${at}: only a tool message has tool_call_id`, `${at}.tool_call_id`);
    let text: ChatMessage["content"];
    if ((content === undefined || content === null) && calls !== undefined) {
      text = null;
    } else if (typeof content === "string") {
      text = content;
    } else if (
      Array.isArray(content) && content.length > 0 &&
      content.every((p) => isObject(p) && p.type === "text" && typeof p.text === "string" && Object.keys(p).length === 2)
    ) {
      text = content.map((p) => ({ type: "text" as const, text: (p as Json).text as string }));
    } else {
      throw invalid(`${at}.content must be a string or an array of text parts`, `${at}.content`);
    }
    if (name !== undefined && (typeof name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(name))) {
      throw invalid(`${at}.name must be 1 to 64 letters, digits, _ or -`, `${at}.name`);
    }
    return {
      role: role as ChatMessage["role"],
      content: text,
      ...(name !== undefined ? { name: name as string } : {}),
      ...(calls !== undefined ? { tool_calls: calls } : {}),
      ...(typeof answers === "string" ? { tool_call_id: answers } : {}),
    };
  });
}

/** An assistant message's tool_calls: 1 to 128 of {id, type: "function", function: {name, arguments}}. */
function parseToolCalls(v: unknown, at: string): ToolCall[] {
  if (!Array.isArray(v) || v.length < 1 || v.length > MAX_TOOLS) throw invalid(`${at} must be an array of 1 to ${MAX_TOOLS} tool calls`, at);
  return v.map((c, i) => {
    const fn = isObject(c) ? c.function : undefined;
    if (
      !isObject(c) || typeof c.id !== "string" || c.id.length < 1 || c.id.length > 256 || c.type !== "function" ||
      Object.keys(c).some((k) => !["id", "type", "function"].includes(k)) || !isObject(fn) ||
      typeof fn.name !== "string" || !TOOL_NAME_RE.test(fn.name) || typeof fn.arguments !== "string" ||
      Object.keys(fn).some((k) => !["name", "arguments"].includes(k))
    ) {
      throw invalid(`${at}[${i}] must be {id, type: "function", function: {name, arguments: string}}`, `${at}[${i}]`);
    }
    return { id: c.id, type: "function" as const, function: { name: fn.name, arguments: fn.arguments } };
  });
}

/** tools: 1 to 128 functions {type: "function", function: {name, description?, parameters?, strict?}}, names unique. */
function parseTools(v: unknown): Tool[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length < 1 || v.length > MAX_TOOLS) throw invalid(`tools must be an array of 1 to ${MAX_TOOLS} functions`, "tools");
  const names = new Set<string>();
  return v.map((t, i) => {
    const at = `tools[${i}]`;
    const fn = isObject(t) ? t.function : undefined;
    if (!isObject(t) || t.type !== "function" || Object.keys(t).some((k) => k !== "type" && k !== "function") || !isObject(fn)) {
      throw invalid(`${at} must be {type: "function", function: {...}}`, at);
    }
    for (const key of Object.keys(fn)) {
      if (!["name", "description", "parameters", "strict"].includes(key)) throw invalid(`${at}.function has an unsupported field "${key}"`, `${at}.function.${key}`);
    }
    if (typeof fn.name !== "string" || !TOOL_NAME_RE.test(fn.name) || names.has(fn.name)) {
      throw invalid(`${at}.function.name must be 1 to 64 letters, digits, _ or -, and unique`, `${at}.function.name`);
    }
    names.add(fn.name);
    if (fn.description !== undefined && fn.description !== null && typeof fn.description !== "string") {
      throw invalid(`${at}.function.description must be a string`, `${at}.function.description`);
    }
    if (fn.parameters !== undefined && fn.parameters !== null && !isObject(fn.parameters)) {
      throw invalid(`${at}.function.parameters must be a JSON schema object`, `${at}.function.parameters`);
    }
    if (fn.strict !== undefined && fn.strict !== null && typeof fn.strict !== "boolean") {
      throw invalid(`${at}.function.strict must be a boolean`, `${at}.function.strict`);
    }
    return {
      type: "function" as const,
      function: {
        name: fn.name,
        ...(typeof fn.description === "string" ? { description: fn.description } : {}),
        ...(isObject(fn.parameters) ? { parameters: fn.parameters } : {}),
        ...(typeof fn.strict === "boolean" ? { strict: fn.strict } : {}),
      },
    };
  });
}

/** tool_choice: none, auto, required, or {type: "function", function: {name}} naming one of the tools. */
function parseToolChoice(v: unknown, tools: Tool[] | undefined): ToolChoice | undefined {
  if (v === undefined || v === null) return undefined;
  if (tools === undefined) throw invalid("tool_choice needs tools", "tool_choice");
  if (v === "none" || v === "auto" || v === "required") return v;
  const fn = isObject(v) ? v.function : undefined;
  if (
    isObject(v) && v.type === "function" && Object.keys(v).length === 2 && isObject(fn) && Object.keys(fn).length === 1 &&
    typeof fn.name === "string" && tools.some((t) => t.function.name === fn.name)
  ) {
    return { type: "function", function: { name: fn.name } };
  }
  throw invalid("tool_choice must be none, auto, required or {type: \"function\", function: {name}} naming one of the tools", "tool_choice");
}

/** response_format: {type: "text"}, {type: "json_object"} or {type: "json_schema", json_schema: {name, ...}}. */
function parseResponseFormat(v: unknown): ResponseFormat | undefined {
  if (v === undefined || v === null) return undefined;
  const bad = (why: string) => invalid(`response_format ${why}`, "response_format");
  if (!isObject(v)) throw bad("must be an object such as {\"type\": \"json_object\"}");
  const { type, json_schema: schema, ...rest } = v;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) throw bad(`has an unsupported field "${extra}"`);
  if (type === "text" || type === "json_object") {
    if (schema !== undefined) throw bad(`of type ${type} takes no json_schema`);
    return { type };
  }
  if (type !== "json_schema") throw bad("type must be text, json_object or json_schema");
  if (!isObject(schema)) throw bad("of type json_schema needs a json_schema object");
  for (const key of Object.keys(schema)) {
    if (!JSON_SCHEMA_KEYS.has(key)) throw bad(`json_schema has an unsupported field "${key}"`);
  }
  if (typeof schema.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(schema.name)) {
    throw bad("json_schema.name must be 1 to 64 letters, digits, _ or -");
  }
  if (schema.description !== undefined && typeof schema.description !== "string") {
    throw bad("json_schema.description must be a string");
  }
  if (schema.schema !== undefined && !isObject(schema.schema)) throw bad("json_schema.schema must be an object");
  if (schema.strict !== undefined && schema.strict !== null && typeof schema.strict !== "boolean") {
    throw bad("json_schema.strict must be a boolean");
  }
  return { type, json_schema: schema as { name: string } };
}

/** Validate an OpenAI-style chat body; 400 invalid_body naming what is wrong (message and param). */
export function parseChatBody(body: Json): ChatRequest {
  for (const key of Object.keys(body)) {
    if (!BODY_KEYS.has(key)) throw invalid(`unsupported field "${key}"`, key);
  }
  const { model, stream, stop, seed, user, n } = body;
  if (typeof model !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/.test(model)) {
    throw invalid("model must be a model name such as llama-3.1-8b-instant", "model");
  }
  const messages = parseMessages(body.messages);
  const temperature = numberField(body, "temperature", 0, 2);
  const topP = numberField(body, "top_p", 0, 1);
  const frequencyPenalty = numberField(body, "frequency_penalty", -2, 2);
  const presencePenalty = numberField(body, "presence_penalty", -2, 2);
  const maxTokens = body.max_tokens ?? body.max_completion_tokens;
  if (body.max_tokens != null && body.max_completion_tokens != null && body.max_tokens !== body.max_completion_tokens) {
    throw invalid("max_tokens and max_completion_tokens disagree", "max_tokens");
  }
  if (maxTokens !== undefined && maxTokens !== null &&
      (!Number.isInteger(maxTokens) || (maxTokens as number) < 1 || (maxTokens as number) > MAX_TOKENS_CAP)) {
    throw invalid(`max_tokens must be an integer from 1 to ${MAX_TOKENS_CAP}`, body.max_tokens != null ? "max_tokens" : "max_completion_tokens");
  }
  if (n !== undefined && n !== null && n !== 1) throw invalid("n must be 1: one choice per request", "n");
  let stops: string[] | undefined;
  if (stop !== undefined && stop !== null) {
    stops = typeof stop === "string" ? [stop] : (stop as string[]);
    if (!Array.isArray(stops) || stops.length < 1 || stops.length > MAX_STOP ||
        !stops.every((s) => typeof s === "string" && s.length > 0)) {
      throw invalid(`stop must be a non-empty string or an array of 1 to ${MAX_STOP} of them`, "stop");
    }
  }
  if (seed !== undefined && seed !== null && !Number.isSafeInteger(seed)) throw invalid("seed must be an integer", "seed");
  if (user !== undefined && user !== null && (typeof user !== "string" || user.length > 256)) {
    throw invalid("user must be a string of at most 256 characters", "user");
  }
  const responseFormat = parseResponseFormat(body.response_format);
  const tools = parseTools(body.tools);
  const toolChoice = parseToolChoice(body.tool_choice, tools);
  const parallel = body.parallel_tool_calls;
  if (parallel !== undefined && parallel !== null && (typeof parallel !== "boolean" || tools === undefined)) {
    throw invalid("parallel_tool_calls must be a boolean, with tools", "parallel_tool_calls");
  }
  if (stream !== undefined && stream !== null && typeof stream !== "boolean") throw invalid("stream must be a boolean", "stream");
  let includeUsage = false;
  const options = body.stream_options;
  if (options !== undefined && options !== null) {
    if (stream !== true) throw invalid("stream_options is only allowed with stream: true", "stream_options");
    if (!isObject(options) || Object.keys(options).some((k) => k !== "include_usage") ||
        (options.include_usage !== undefined && options.include_usage !== null && typeof options.include_usage !== "boolean")) {
      throw invalid("stream_options must be {\"include_usage\": boolean}", "stream_options");
    }
    includeUsage = options.include_usage === true;
  }
  return {
    model,
    messages,
    ...(temperature !== undefined ? { temperature } : {}),
    ...(typeof maxTokens === "number" ? { max_tokens: maxTokens } : {}),
    ...(topP !== undefined ? { top_p: topP } : {}),
    ...(stops !== undefined ? { stop: stops } : {}),
    ...(typeof seed === "number" ? { seed } : {}),
    ...(typeof user === "string" ? { user } : {}),
    ...(responseFormat !== undefined ? { response_format: responseFormat } : {}),
    ...(frequencyPenalty !== undefined ? { frequency_penalty: frequencyPenalty } : {}),
    ...(presencePenalty !== undefined ? { presence_penalty: presencePenalty } : {}),
    ...(tools !== undefined ? { tools } : {}),
    ...(toolChoice !== undefined ? { tool_choice: toolChoice } : {}),
    ...(typeof parallel === "boolean" ? { parallel_tool_calls: parallel } : {}),
    stream: stream === true,
    include_usage: includeUsage,
  };
}

const utf8 = new TextEncoder();

/** Tokens allowed per message for the chat template's markers around it (start, end, separators). */
export const MESSAGE_OVERHEAD_TOKENS = 8;
/** Tokens allowed per request for the template's own text: its opening, a default system header, the answer's header. */
export const REQUEST_OVERHEAD_TOKENS = 64;

/** Tokens allowed for the template's text around the tool definitions, and around a JSON schema to answer in. */
export const TOOLS_OVERHEAD_TOKENS = 64;

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
 *
 * The model reads more than the messages, and all of it is counted the same way: an assistant
 * message's tool calls and a tool message's call id (their JSON), the tools with their JSON
 * schemas (the template writes them into the prompt as JSON text) and a response_format's JSON
 * schema (Groq turns it into instructions with the schema), each as the UTF-8 bytes of its JSON,
 * plus 64 tokens for the template's text around the tools and 64 around the schema.
 */
export function estimatePromptTokens(
  chat: Pick<ChatRequest, "messages" | "tools" | "tool_choice" | "response_format">,
): number {
  const bytes = (v: unknown) => utf8.encode(typeof v === "string" ? v : JSON.stringify(v)).length;
  let tokens = REQUEST_OVERHEAD_TOKENS;
  for (const m of chat.messages) {
    const text = m.content === null ? "" : typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("");
    tokens += bytes(text) + bytes(m.role) + bytes(m.name ?? "") + MESSAGE_OVERHEAD_TOKENS;
    if (m.tool_calls) tokens += bytes(m.tool_calls);
    if (m.tool_call_id) tokens += bytes(m.tool_call_id);
  }
  if (chat.tools) tokens += bytes(chat.tools) + TOOLS_OVERHEAD_TOKENS;
  if (chat.tool_choice) tokens += bytes(chat.tool_choice);
  const format = chat.response_format;
  if (format && format.type === "json_schema") tokens += bytes(format) + TOOLS_OVERHEAD_TOKENS;
  else if (format && format.type === "json_object") tokens += TOOLS_OVERHEAD_TOKENS;
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

/**
 * sha256 (hex) of what decides the answer: model, messages, temperature, max_tokens, and the
 * sampling, format and tool fields when given (top_p, stop, seed, response_format, the penalties,
 * tools, tool_choice, parallel_tool_calls; absent
 * ones are left out, so a request without them keeps the key it always had). Not stream,
 * stream_options or user: they change how the answer is delivered or who asked, not the answer.
 */
export function cacheKeyOf(req: ChatRequest): Promise<string> {
  return sha256Hex(canonicalJson({
    model: req.model,
    messages: req.messages,
    temperature: req.temperature ?? null,
    max_tokens: req.max_tokens ?? null,
    top_p: req.top_p,
    stop: req.stop,
    seed: req.seed,
    response_format: req.response_format,
    frequency_penalty: req.frequency_penalty,
    presence_penalty: req.presence_penalty,
    tools: req.tools,
    tool_choice: req.tool_choice,
    parallel_tool_calls: req.parallel_tool_calls,
  }));
}
