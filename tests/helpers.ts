// Shared by the Deno tests: the stack's URLs and keys (set by scripts/test.mjs), a superuser
// connection to the test database for setup and assertions, and token minting.
import postgres from "npm:postgres@4.2.0";
import * as jose from "npm:jose@6.2.17";
import { HttpError } from "../supabase/functions/_shared/http.ts";

export function env(name: string): string {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set: run the tests with npm test`);
  return value;
}

export const apiUrl = () => env("SUPABASE_URL");
export const functionsUrl = (name: string) => `${apiUrl()}/functions/v1/${name}`;

/** A superuser connection to the test database (setup and checks only; never the code under test). */
export function adminSql(max = 4) {
  return postgres(env("SUPABASE_DB_URL"), { max, prepare: false, onnotice: () => {} });
}

/**
 * A token signed by the local stack's key, as Supabase Auth would issue it: ES256 (the key of
 * SUPABASE_JWKS, or `key`), or with alg HS256 the legacy secret the stack sets as SUPABILL_JWT_SECRET.
 */
export async function mintToken(
  sub: string,
  { expiresIn = "1h", role = "authenticated", key, alg = "ES256" }: {
    expiresIn?: string | number;
    role?: string;
    key?: CryptoKey;
    alg?: "ES256" | "HS256";
  } = {},
): Promise<string> {
  const token = new jose.SignJWT({ sub, role, aud: "authenticated" })
    .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
    .setExpirationTime(expiresIn);
  if (alg === "HS256") {
    return await token.setProtectedHeader({ alg, typ: "JWT" }).sign(new TextEncoder().encode(env("SUPABILL_JWT_SECRET")));
  }
  const jwk = JSON.parse(env("SUPABILL_TEST_PRIVATE_JWK"));
  const signingKey = key ?? await jose.importJWK(jwk, "ES256");
  return await token.setProtectedHeader({ alg, kid: jwk.kid, typ: "JWT" }).sign(signingKey);
}

/** A fresh auth.users row; returns its id. */
export async function createUser(sql: postgres.Sql, email = `${crypto.randomUUID()}@test.local`): Promise<string> {
  const [{ id }] = await sql`insert into auth.users (id, email, role, aud)
    values (gen_random_uuid(), ${email}, 'authenticated', 'authenticated') returning id`;
  return id;
}

/** How a promise settles, as a comparable string: "ok", "<status> <code>" for an HttpError, else "error <message>". */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return e instanceof HttpError ? `${e.status} ${e.code}` : `error ${(e as Error).message}`;
  }
}

/**
 * POST to one of the stack's functions as a client would (redirects not followed): the status, the
 * body (parsed JSON, or {text} when it is not JSON) and the headers.
 */
export async function callFunction(name: string, init: RequestInit & { token?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  const res = await fetch(functionsUrl(name), { method: "POST", ...init, headers, redirect: "manual" });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { text };
  }
  return { status: res.status, body, headers: res.headers };
}

/** The fake upstreams' control API (tests/fakes/upstreams.ts): GET without a body, else POST; throws unless 2xx. */
export async function fakeControl(path: string, body?: unknown) {
  const res = await fetch(`${env("FAKE_UPSTREAMS_URL")}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await res.json();
  if (!res.ok) throw new Error(`fake ${path}: ${JSON.stringify(answer)}`);
  return answer;
}

/**
 * Waits until the functions server (the stack's, or the one at `base`) has finished the work its
 * functions handed to EdgeRuntime.waitUntil (the AI gateway settles after answering): read the
 * database after this.
 */
export async function afterResponses(base = apiUrl()): Promise<void> {
  const res = await fetch(`${base}/__local/after-response`);
  await res.body?.cancel();
  if (!res.ok) throw new Error(`functions server: /__local/after-response answered ${res.status}`);
}
