// The local stack's signing key (ES256, made on first start) and the keys it prints:
// anon and service_role JWTs like `supabase status`, and user tokens for trying endpoints.
// jose is loaded when first needed: the entry points import this module before they have
// installed the npm dependencies on a fresh clone.
import fs from "node:fs";
import path from "node:path";

const loadJose = () => import("jose");

export async function loadOrCreateKeys(file) {
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8"));
  const jose = await loadJose();
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const kid = crypto.randomUUID();
  const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: "ES256", use: "sig" };
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const keys = { privateJwk, jwks: { keys: [publicJwk] } };
  keys.anonKey = await sign(keys, { role: "anon" }, "10y");
  keys.serviceRoleKey = await sign(keys, { role: "service_role" }, "10y");
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
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
