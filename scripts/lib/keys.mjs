// The local stack's keys, made on first start and kept in keys.json: the ES256 signing key (its
// public half is SUPABASE_JWKS), the keys it prints like `supabase status` (the new API keys
// sb_secret_... and sb_publishable_..., which are random strings, not JWTs, and the legacy anon and
// service_role JWTs), a legacy HS256 JWT secret, and user tokens for trying endpoints. A keys.json
// written before a kind of key existed gets the missing ones added; the others stay as they were.
// jose is loaded when first needed: the entry points import this module before they have
// installed the npm dependencies on a fresh clone.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const loadJose = () => import("jose");

const random = (bytes) => crypto.randomBytes(bytes).toString("base64url");

export async function loadOrCreateKeys(file) {
  const keys = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {};
  const before = JSON.stringify(keys);
  if (!keys.privateJwk) {
    const jose = await loadJose();
    const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
    const kid = crypto.randomUUID();
    keys.privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: "ES256", use: "sig" };
    keys.jwks = { keys: [{ ...(await jose.exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }] };
    keys.anonKey = await sign(keys, { role: "anon" }, "10y");
    keys.serviceRoleKey = await sign(keys, { role: "service_role" }, "10y");
  }
  keys.secretKey ??= `sb_secret_${random(24)}`;
  keys.publishableKey ??= `sb_publishable_${random(24)}`;
  keys.jwtSecret ??= random(40);
  if (JSON.stringify(keys) !== before) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
  }
  return keys;
}

export async function sign(keys, claims, expiresIn = "1h") {
  const jose = await loadJose();
  const key = await jose.importJWK(keys.privateJwk, "ES256");
  return await new jose.SignJWT({ iss: "supabill-local", ...claims })
    .setProtectedHeader({ alg: "ES256", kid: keys.privateJwk.kid, typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(key);
}

/** A signed-in user's token, as Supabase Auth would issue it. */
export function userToken(keys, userId, { email, expiresIn = "1h" } = {}) {
  return sign(keys, { sub: userId, role: "authenticated", aud: "authenticated", ...(email ? { email } : {}) }, expiresIn);
}
