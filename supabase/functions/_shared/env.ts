// Configuration: every function reads its settings through an EnvGetter, so tests pass explicit
// values and the functions pass Deno's env. A missing required value is a typed error naming the
// variable; callers that own a setting (a provider adapter) turn it into their own error code.
import { HttpError } from "./http.ts";

/** Reads one configuration value, e.g. `(name) => Deno.env.get(name)`; tests pass explicit values. */
export type EnvGetter = (name: string) => string | undefined;

/** The function's own env, as Supabase injects it. */
export const denoEnv: EnvGetter = (name) => Deno.env.get(name);

/** A value, trimmed; null when unset or blank. */
export function readEnv(env: EnvGetter, name: string): string | null {
  const value = env(name)?.trim();
  return value ? value : null;
}

/**
 * A required value, trimmed. When it is missing, throws what `missing` makes of the message
 * (by default 503 server_not_configured: the deployment lacks a setting, the caller did nothing wrong).
 */
export function requireEnv(
  env: EnvGetter,
  name: string,
  missing: (message: string) => Error = (message) => new HttpError(503, "server_not_configured", message),
): string {
  const value = readEnv(env, name);
  if (value === null) throw missing(`${name} is not set`);
  return value;
}

/** An optional URL setting, without a trailing slash. */
export function envUrl(env: EnvGetter, name: string, fallback: string): string {
  return (readEnv(env, name) ?? fallback).replace(/\/+$/, "");
}
