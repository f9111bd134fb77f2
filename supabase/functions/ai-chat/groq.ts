// The Groq client for the AI gateway: groq-sdk with no retries of its own (every retry would be
// another upstream call, billed by Groq, after one reservation), a timeout, and the base URL
// from GROQ_BASE_URL when set (the local fake in tests and `npm start` without a key).
import Groq, { APIConnectionTimeoutError, APIError } from "npm:groq-sdk@1.6.0";
import type { EnvGetter } from "../_shared/env.ts";

export { Groq };
export type ChatCompletion = Groq.Chat.ChatCompletion;
export type ChatCompletionChunk = Groq.Chat.ChatCompletionChunk;
export type ResponseFormat = NonNullable<Parameters<Groq["chat"]["completions"]["create"]>[0]["response_format"]>;

export interface GroqConfig {
  apiKey: string;
  baseURL?: string;
  timeoutMs: number;
}

/** The Groq settings from env, or null when GROQ_API_KEY is not set. */
export function groqConfig(env: EnvGetter): GroqConfig | null {
  const apiKey = env("GROQ_API_KEY");
  if (!apiKey) return null;
  const timeout = Number(env("AI_UPSTREAM_TIMEOUT_MS") ?? "");
  return {
    apiKey,
    baseURL: env("GROQ_BASE_URL") || undefined,
    timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : 30_000,
  };
}

const clients = new Map<string, Groq>();

/** One client per configuration (keeps its connection pool warm). */
export function groqClient(config: GroqConfig): Groq {
  const key = `${config.baseURL ?? ""}\n${config.timeoutMs}\n${config.apiKey}`;
  let client = clients.get(key);
  if (!client) {
    client = new Groq({
      apiKey: config.apiKey,
      baseURL: config.baseURL,
      maxRetries: 0,
      timeout: config.timeoutMs,
    });
    clients.set(key, client);
  }
  return client;
}

/** True when a groq-sdk error is its own timeout. */
export function isUpstreamTimeout(e: unknown): boolean {
  return e instanceof APIConnectionTimeoutError;
}

/** The HTTP status Groq answered with, when the error carries one. */
export function upstreamStatus(e: unknown): number | undefined {
  return e instanceof APIError && typeof e.status === "number" ? e.status : undefined;
}
