// Who is calling: every function that is not a provider webhook checks its caller here, itself
// (config.toml sets verify_jwt = false for all of them: the hosted gateway would answer with its
// own body instead of our codes, and it refuses the new non-JWT keys). A request carries one key,
// in `Authorization: Bearer` or, when there is none, in `apikey`:
//   - a secret key: an `sb_secret_...` key of SUPABASE_SECRET_KEYS (or SUPABASE_SECRET_KEY), the
//     legacy SUPABASE_SERVICE_ROLE_KEY, or a JWT with role service_role;
//   - a publishable key: an `sb_publishable_...` key of SUPABASE_PUBLISHABLE_KEYS (or
//     SUPABASE_PUBLISHABLE_KEY), the legacy SUPABASE_ANON_KEY, or a JWT with role anon;
//   - a user: a JWT with role authenticated and a subject;
//   - any other valid JWT of the project.
// The `sb_` keys are not JWTs: they are compared with the injected values, never decoded. The
// legacy keys are compared too, so they work where the legacy JWT secret is not configured.
// JWTs are verified against SUPABASE_JWKS (asymmetric keys, as Supabase publishes them) and, for
// HS256, the legacy JWT secret when it is set (SUPABILL_JWT_SECRET, or SUPABASE_JWT_SECRET, which
// the CLI's local stack injects; a hosted project cannot set names that start with SUPABASE_).
import { createHash, timingSafeEqual } from "node:crypto";
import * as jose from "npm:jose@6.2.17";
import { denoEnv, type EnvGetter, readEnv } from "./env.ts";
import { HttpError } from "./http.ts";

export interface Claims extends jose.JWTPayload {
  sub?: string;
  role?: string;
  email?: string;
}

/** The caller of a request, as callerOf found it. */
export type Caller =
  | { kind: "secret" }
  | { kind: "publishable" }
  | { kind: "user"; claims: Claims & { sub: string } }
  | { kind: "token"; claims: Claims };

const jwksCache = new Map<string, ReturnType<typeof jose.createLocalJWKSet>>();

/** The JWKS of SUPABASE_JWKS: `{"keys": [...]}`, or a bare array of keys. */
function localJwks(json: string) {
  let set = jwksCache.get(json);
  if (!set) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw new HttpError(500, "jwks_not_configured", "SUPABASE_JWKS is not valid JSON");
    }
    set = jose.createLocalJWKSet((Array.isArray(parsed) ? { keys: parsed } : parsed) as jose.JSONWebKeySet);
    jwksCache.set(json, set);
  }
  return set;
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
function bearerOf(req: Request): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "")?.[1];
}

/** The bearer token of a request, or a 401. */
export function bearerToken(req: Request): string {
  const token = bearerOf(req);
  if (!token) {
    throw new HttpError(401, "missing_authorization", "an Authorization: Bearer <jwt> header is required");
  }
  return token;
}

/** The key a request carries: the bearer token, else the apikey header; a 401 without either. */
export function presentedKey(req: Request): string {
  const key = bearerOf(req) ?? req.headers.get("apikey")?.trim();
  if (!key) {
    throw new HttpError(
      401,
      "missing_authorization",
      "an Authorization: Bearer <token> or an apikey header is required",
    );
  }
  return key;
}

/**
 * Tokens already verified, until their exp: an ES256 verification costs 1 to 8 ms of CPU on a
 * small machine, and a client sends the same session JWT with every request. An entry holds
 * what a fresh verification returned for the same key material (a JWT cannot be revoked before
 * its exp anyway); bounded, cleared when full. The claims are frozen: every caller gets the same
 * object, so none may change what the next request sees.
 */
const verified = new Map<string, { claims: Claims; until: number }>();
const VERIFIED_MAX = 10_000;

/** The legacy HS256 secret, when the project has one configured. */
const hs256Secret = (env: EnvGetter) =>
  readEnv(env, "SUPABILL_JWT_SECRET") ?? readEnv(env, "SUPABASE_JWT_SECRET");

/** Verify a JWT against the project's keys; a 401 with a code when it is not valid. */
export async function verifyJwt(token: string, env: EnvGetter = denoEnv): Promise<Claims> {
  let alg: string | undefined;
  try {
    alg = jose.decodeProtectedHeader(token).alg;
  } catch {
    throw new HttpError(401, "invalid_jwt", "the token is not a JWT");
  }
  const keyMaterial = alg === "HS256" ? hs256Secret(env) : readEnv(env, "SUPABASE_JWKS");
  const cacheKey = `${keyMaterial}\n${token}`;
  const hit = verified.get(cacheKey);
  if (hit && hit.until > Date.now()) return hit.claims;
  const claims = Object.freeze(await verifyUncached(token, alg, keyMaterial));
  if (typeof claims.exp === "number") {
    if (verified.size >= VERIFIED_MAX) verified.clear();
    verified.set(cacheKey, { claims, until: claims.exp * 1000 });
  }
  return claims;
}

async function verifyUncached(
  token: string,
  alg: string | undefined,
  keyMaterial: string | null,
): Promise<Claims> {
  try {
    if (alg === "HS256") {
      if (!keyMaterial) {
        throw new HttpError(401, "invalid_jwt", "HS256 tokens are not accepted by this project");
      }
      const { payload } = await jose.jwtVerify(token, new TextEncoder().encode(keyMaterial), {
        algorithms: ["HS256"],
      });
      return payload as Claims;
    }
    if (!keyMaterial) throw new HttpError(500, "jwks_not_configured", "SUPABASE_JWKS is not set");
    const { payload } = await jose.jwtVerify(token, localJwks(keyMaterial), {
      algorithms: ["ES256", "RS256", "EdDSA"],
    });
    return payload as Claims;
  } catch (e) {
    if (e instanceof HttpError) throw e;
    if (e instanceof jose.errors.JWTExpired) throw new HttpError(401, "jwt_expired", "the token has expired");
    throw new HttpError(401, "invalid_jwt", "the token's signature or claims are not valid");
  }
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Whether key equals one of the values, in time that depends on neither (digests: equal lengths). */
function oneOf(key: string, values: string[]): boolean {
  const k = digest(key);
  let found = false;
  for (const v of values) found = timingSafeEqual(k, digest(v)) || found;
  return found;
}

/**
 * The configured keys of one kind: the values of `<PLURAL>` (a JSON object of named keys, as
 * Supabase injects SUPABASE_SECRET_KEYS, or an array) and the single `<SINGULAR>`.
 */
function configuredKeys(env: EnvGetter, plural: string, singular: string): string[] {
  const keys: string[] = [];
  const json = readEnv(env, plural);
  if (json !== null) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw new HttpError(500, "keys_not_configured", `${plural} is not valid JSON`);
    }
    if (parsed && typeof parsed === "object") {
      for (const v of Object.values(parsed)) if (typeof v === "string" && v !== "") keys.push(v);
    }
  }
  const single = readEnv(env, singular);
  if (single !== null) keys.push(single);
  return keys;
}

/** Who sent the request (see the top of this file); a 401 with a code when the key is not the project's. */
export async function callerOf(req: Request, env: EnvGetter = denoEnv): Promise<Caller> {
  const key = presentedKey(req);
  for (
    const [prefix, kind, plural, singular] of [
      ["sb_secret_", "secret", "SUPABASE_SECRET_KEYS", "SUPABASE_SECRET_KEY"],
      ["sb_publishable_", "publishable", "SUPABASE_PUBLISHABLE_KEYS", "SUPABASE_PUBLISHABLE_KEY"],
    ] as const
  ) {
    if (!key.startsWith(prefix)) continue;
    if (oneOf(key, configuredKeys(env, plural, singular))) return { kind };
    throw new HttpError(401, "invalid_api_key", "the API key is not one of this project's keys");
  }
  const legacy = (name: string) => {
    const value = readEnv(env, name);
    return value === null ? [] : [value];
  };
  if (oneOf(key, legacy("SUPABASE_SERVICE_ROLE_KEY"))) return { kind: "secret" };
  if (oneOf(key, legacy("SUPABASE_ANON_KEY"))) return { kind: "publishable" };
  const claims = await verifyJwt(key, env);
  if (claims.role === "service_role") return { kind: "secret" };
  if (claims.role === "anon") return { kind: "publishable" };
  if (claims.role === "authenticated" && claims.sub) {
    return { kind: "user", claims: claims as Claims & { sub: string } };
  }
  return { kind: "token", claims };
}

/** The signed-in user of a request: a valid token whose role is `authenticated` with a subject. */
export async function requireUser(req: Request, env: EnvGetter = denoEnv): Promise<Claims & { sub: string }> {
  const caller = await callerOf(req, env);
  if (caller.kind !== "user") throw new HttpError(401, "not_a_user", "a signed-in user's token is required");
  return caller.claims;
}

/**
 * A request from the server side: a secret key (an sb_secret_ key, the service_role key or JWT).
 * 401 without a key or with one that is not the project's, 403 for a publishable key, the anon
 * key or a user's token.
 */
export async function requireServiceKey(
  req: Request,
  name = "this function",
  env: EnvGetter = denoEnv,
): Promise<void> {
  const caller = await callerOf(req, env);
  if (caller.kind !== "secret") {
    throw new HttpError(
      403,
      "forbidden",
      `${name} needs the service key: a secret key (sb_secret_...) or the service_role key`,
    );
  }
}
