// Verifies Supabase JWTs: asymmetric keys from SUPABASE_JWKS (as Supabase publishes them),
// and the legacy HS256 SUPABASE_JWT_SECRET when it is set. Used by the local gateway for
// functions with verify_jwt = true, and by functions that act for a signed-in user.
import * as jose from "npm:jose@6.2.17";
import { denoEnv, type EnvGetter } from "./env.ts";
import { HttpError } from "./http.ts";

export interface Claims extends jose.JWTPayload {
  sub?: string;
  role?: string;
  email?: string;
}

const jwksCache = new Map<string, ReturnType<typeof jose.createLocalJWKSet>>();

function localJwks(json: string) {
  let set = jwksCache.get(json);
  if (!set) {
    set = jose.createLocalJWKSet(JSON.parse(json));
    jwksCache.set(json, set);
  }
  return set;
}

/** The bearer token of a request, or a 401. */
export function bearerToken(req: Request): string {
  const header = req.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new HttpError(401, "missing_authorization", "an Authorization: Bearer <jwt> header is required");
  return match[1];
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

/** Verify a JWT against the project's keys; a 401 with a code when it is not valid. */
export async function verifyJwt(token: string, env: EnvGetter = denoEnv): Promise<Claims> {
  let alg: string | undefined;
  try {
    alg = jose.decodeProtectedHeader(token).alg;
  } catch {
    throw new HttpError(401, "invalid_jwt", "the token is not a JWT");
  }
  const keyMaterial = alg === "HS256" ? env("SUPABASE_JWT_SECRET") : env("SUPABASE_JWKS");
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

async function verifyUncached(token: string, alg: string | undefined, keyMaterial: string | undefined): Promise<Claims> {
  try {
    if (alg === "HS256") {
      if (!keyMaterial) throw new HttpError(401, "invalid_jwt", "HS256 tokens are not accepted by this project");
      const { payload } = await jose.jwtVerify(token, new TextEncoder().encode(keyMaterial), { algorithms: ["HS256"] });
      return payload as Claims;
    }
    if (!keyMaterial) throw new HttpError(500, "jwks_not_configured", "SUPABASE_JWKS is not set");
    const { payload } = await jose.jwtVerify(token, localJwks(keyMaterial), { algorithms: ["ES256", "RS256", "EdDSA"] });
    return payload as Claims;
  } catch (e) {
    if (e instanceof HttpError) throw e;
    if (e instanceof jose.errors.JWTExpired) throw new HttpError(401, "jwt_expired", "the token has expired");
    throw new HttpError(401, "invalid_jwt", "the token's signature or claims are not valid");
  }
}

/** The signed-in user of a request: a valid token whose role is `authenticated` with a subject. */
export async function requireUser(req: Request, env: EnvGetter = denoEnv): Promise<Claims & { sub: string }> {
  const claims = await verifyJwt(bearerToken(req), env);
  if (claims.role !== "authenticated" || !claims.sub) {
    throw new HttpError(401, "not_a_user", "a signed-in user's token is required");
  }
  return claims as Claims & { sub: string };
}
