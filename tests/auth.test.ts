// _shared/auth.ts verifyJwt in-process, with the env injected: key rotation, HS256 only when a
// legacy secret is set, expiry, and the verified-token cache never handing out mutable claims.
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import * as jose from "npm:jose@6.2.17";
import { verifyJwt } from "../supabase/functions/_shared/auth.ts";
import type { EnvGetter } from "../supabase/functions/_shared/env.ts";
import { codeOf } from "./helpers.ts";

async function es256Key() {
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const kid = crypto.randomUUID();
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  return { privateKey, kid, jwks: JSON.stringify({ keys: [jwk] }) };
}

const envOf = (values: Record<string, string>): EnvGetter => (name) => values[name];

function claims(sub = crypto.randomUUID()) {
  return new jose.SignJWT({ sub, role: "authenticated", aud: "authenticated" }).setIssuedAt();
}

Deno.test("a token verified (and cached) under one JWKS is rejected once SUPABASE_JWKS no longer has its key", async () => {
  const [a, b] = [await es256Key(), await es256Key()];
  const token = await claims().setProtectedHeader({ alg: "ES256", kid: a.kid }).setExpirationTime("1h").sign(a.privateKey);
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABASE_JWKS: a.jwks }))), "ok");
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABASE_JWKS: a.jwks }))), "ok", "cached");
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABASE_JWKS: b.jwks }))), "401 invalid_jwt");
});

Deno.test("an HS256 token is rejected without SUPABILL_JWT_SECRET and accepted with it", async () => {
  const secret = "legacy-secret-of-at-least-32-characters!";
  const token = await claims().setProtectedHeader({ alg: "HS256", typ: "JWT" }).setExpirationTime("1h")
    .sign(new TextEncoder().encode(secret));
  const { jwks } = await es256Key();
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABASE_JWKS: jwks }))), "401 invalid_jwt");
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABASE_JWKS: jwks, SUPABILL_JWT_SECRET: "another secret" }))), "401 invalid_jwt");
  const ok = await verifyJwt(token, envOf({ SUPABASE_JWKS: jwks, SUPABILL_JWT_SECRET: secret }));
  assertEquals(ok.role, "authenticated");
  // Cached under the secret it was checked with: removing the secret rejects it again.
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABASE_JWKS: jwks }))), "401 invalid_jwt");
});

Deno.test("an expired token is 401 jwt_expired", async () => {
  const a = await es256Key();
  const token = await claims().setProtectedHeader({ alg: "ES256", kid: a.kid })
    .setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(a.privateKey);
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABASE_JWKS: a.jwks }))), "401 jwt_expired");
});

Deno.test("the claims of a cached token cannot be changed by one caller for the next", async () => {
  const a = await es256Key();
  const env = envOf({ SUPABASE_JWKS: a.jwks });
  const token = await claims().setProtectedHeader({ alg: "ES256", kid: a.kid }).setExpirationTime("1h").sign(a.privateKey);
  const first = await verifyJwt(token, env);
  throws(() => {
    (first as Record<string, unknown>).role = "service_role";
  }, TypeError);
  const second = await verifyJwt(token, env);
  assertEquals([second.role, first.role], ["authenticated", "authenticated"]);
});
