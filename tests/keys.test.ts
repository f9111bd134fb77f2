// Every Supabase key mode, as on a hosted project: user JWTs (ES256 from SUPABASE_JWKS, legacy
// HS256 with SUPABILL_JWT_SECRET), the new API keys (sb_secret_..., sb_publishable_..., not JWTs)
// and the legacy anon / service_role keys, in `Authorization: Bearer` or `apikey`. Every function
// that checks its caller has verify_jwt = false and answers 401 with our code by itself.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import * as jose from "npm:jose@6.2.17";
import { parse } from "npm:smol-toml@1.9.1";
import { callerOf, requireServiceKey, verifyJwt } from "../supabase/functions/_shared/auth.ts";
import type { EnvGetter } from "../supabase/functions/_shared/env.ts";
import { loadOrCreateKeys } from "../scripts/lib/keys.mjs";
import { codeOf, env, functionsUrl, mintToken } from "./helpers.ts";

const WORKERS = ["reconcile", "provider-sync", "notifications-send", "ai-batch"];
const secretKey = () => JSON.parse(env("SUPABASE_SECRET_KEYS")).default as string;
const publishableKey = () => JSON.parse(env("SUPABASE_PUBLISHABLE_KEYS")).default as string;

/** status and code of a call; `headers` carries the key. */
async function call(name: string, headers: Record<string, string>, init: RequestInit = {}) {
  const res = await fetch(functionsUrl(name), {
    method: "POST",
    ...init,
    headers: { "content-type": "application/json", ...headers },
  });
  const text = await res.text();
  let code = "";
  try {
    code = JSON.parse(text).code ?? "";
  } catch { /* a PDF or another non-JSON answer */ }
  return `${res.status} ${code}`.trim();
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

// {limit: 0} is refused by the worker's own validation (400), which comes only after the key was
// accepted: a 400 proves the key passed, without running a batch.
const worker = (name: string, headers: Record<string, string>) =>
  call(name, headers, { body: JSON.stringify({ limit: 0 }) });

Deno.test("workers accept the sb_secret_ key as apikey and as Bearer, and the service_role key and JWTs", async () => {
  const serviceJwt = await mintToken(crypto.randomUUID(), { role: "service_role" });
  const serviceHs256 = await mintToken(crypto.randomUUID(), { role: "service_role", alg: "HS256" });
  for (const name of WORKERS) {
    assertEquals(
      {
        name,
        apikey: await worker(name, { apikey: secretKey() }),
        bearer: await worker(name, bearer(secretKey())),
        legacy: await worker(name, bearer(env("SUPABASE_SERVICE_ROLE_KEY"))),
        legacyApikey: await worker(name, { apikey: env("SUPABASE_SERVICE_ROLE_KEY") }),
        es256: await worker(name, bearer(serviceJwt)),
        hs256: await worker(name, bearer(serviceHs256)),
      },
      {
        name,
        apikey: "400 invalid_input",
        bearer: "400 invalid_input",
        legacy: "400 invalid_input",
        legacyApikey: "400 invalid_input",
        es256: "400 invalid_input",
        hs256: "400 invalid_input",
      },
    );
  }
});

Deno.test("a worker called with the sb_secret_ key does its work (200)", async () => {
  const res = await fetch(functionsUrl("provider-sync"), {
    method: "POST",
    headers: { apikey: secretKey(), "content-type": "application/json" },
    body: JSON.stringify({ limit: 1 }),
  });
  assertEquals([res.status, typeof (await res.json()).claimed], [200, "number"]);
});

Deno.test("workers refuse every other key: 401 unknown or invalid, 403 publishable, anon or user", async () => {
  const wrongSecret = `sb_secret_${"x".repeat(secretKey().length - 10)}`;
  const user = await mintToken(crypto.randomUUID());
  const userHs256 = await mintToken(crypto.randomUUID(), { alg: "HS256" });
  for (const name of WORKERS) {
    assertEquals(
      {
        name,
        none: await worker(name, {}),
        wrongSecret: await worker(name, { apikey: wrongSecret }),
        wrongSecretBearer: await worker(name, bearer(wrongSecret)),
        secretPrefix: await worker(name, bearer(`${secretKey()}x`)),
        anon: await worker(name, bearer(env("SUPABASE_ANON_KEY"))),
        publishable: await worker(name, { apikey: publishableKey() }),
        publishableBearer: await worker(name, bearer(publishableKey())),
        user: await worker(name, bearer(user)),
        userHs256: await worker(name, bearer(userHs256)),
        // The bearer token names the caller; a secret key beside a user's token does not lift it.
        userWithSecretApikey: await worker(name, { ...bearer(user), apikey: secretKey() }),
        garbage: await worker(name, bearer("not-a-key")),
        forged: await worker(name, bearer(`${env("SUPABASE_SERVICE_ROLE_KEY").slice(0, -4)}AAAA`)),
      },
      {
        name,
        none: "401 missing_authorization",
        wrongSecret: "401 invalid_api_key",
        wrongSecretBearer: "401 invalid_api_key",
        secretPrefix: "401 invalid_api_key",
        anon: "403 forbidden",
        publishable: "403 forbidden",
        publishableBearer: "403 forbidden",
        user: "403 forbidden",
        userHs256: "403 forbidden",
        userWithSecretApikey: "403 forbidden",
        garbage: "401 invalid_jwt",
        forged: "401 invalid_jwt",
      },
    );
  }
});

Deno.test("user functions accept ES256 and HS256 user tokens (their own validation answers) and refuse keys", async () => {
  const es256 = await mintToken(crypto.randomUUID());
  const hs256 = await mintToken(crypto.randomUUID(), { alg: "HS256" });
  const otherSecret = await new jose.SignJWT({ sub: crypto.randomUUID(), role: "authenticated" })
    .setProtectedHeader({ alg: "HS256" }).setExpirationTime("1h").sign(
      new TextEncoder().encode("x".repeat(40)),
    );
  for (const name of ["checkout", "razorpay-verify"]) {
    const post = (headers: Record<string, string>) => call(name, headers, { body: "{}" });
    assertEquals(
      {
        name,
        es256: await post(bearer(es256)),
        hs256: await post(bearer(hs256)),
        otherSecret: await post(bearer(otherSecret)),
        secret: await post(bearer(secretKey())),
        publishable: await post({ apikey: publishableKey() }),
        anon: await post(bearer(env("SUPABASE_ANON_KEY"))),
      },
      {
        name,
        es256: "400 invalid_input",
        hs256: "400 invalid_input",
        otherSecret: "401 invalid_jwt",
        secret: "401 not_a_user",
        publishable: "401 not_a_user",
        anon: "401 not_a_user",
      },
    );
  }
});

Deno.test("invoice-pdf: the sb_secret_ key takes the service path (404 for an unknown id), a publishable key is 401", async () => {
  const get = (headers: Record<string, string>) =>
    call(`invoice-pdf?id=${crypto.randomUUID()}`, headers, { method: "GET" });
  assertEquals(
    {
      secret: await get({ apikey: secretKey() }),
      secretBearer: await get(bearer(secretKey())),
      legacy: await get(bearer(env("SUPABASE_SERVICE_ROLE_KEY"))),
      publishable: await get({ apikey: publishableKey() }),
      wrongSecret: await get({ apikey: "sb_secret_nope" }),
      none: await get({}),
    },
    {
      secret: "404 document_not_found",
      secretBearer: "404 document_not_found",
      legacy: "404 document_not_found",
      publishable: "401 not_a_user",
      wrongSecret: "401 invalid_api_key",
      none: "401 missing_authorization",
    },
  );
});

Deno.test("health: 401 without a valid key, 200 with a user token, the anon key, a publishable key or a secret key", async () => {
  const get = (headers: Record<string, string>) => call("health", headers, { method: "GET" });
  assertEquals(
    {
      none: await get({}),
      garbage: await get(bearer("not-a-jwt")),
      wrongPublishable: await get({ apikey: "sb_publishable_nope" }),
      wrongSecret: await get(bearer("sb_secret_nope")),
      expired: await get(
        bearer(await mintToken(crypto.randomUUID(), { expiresIn: Math.floor(Date.now() / 1000) - 60 })),
      ),
      otherKey: await get(
        bearer(await mintToken(crypto.randomUUID(), { key: (await es256Key()).privateKey })),
      ),
      user: await get(bearer(await mintToken(crypto.randomUUID()))),
      userHs256: await get(bearer(await mintToken(crypto.randomUUID(), { alg: "HS256" }))),
      anon: await get(bearer(env("SUPABASE_ANON_KEY"))),
      anonApikey: await get({ apikey: env("SUPABASE_ANON_KEY") }),
      publishable: await get({ apikey: publishableKey() }),
      publishableBearer: await get(bearer(publishableKey())),
      secret: await get({ apikey: secretKey() }),
      serviceRole: await get(bearer(env("SUPABASE_SERVICE_ROLE_KEY"))),
    },
    {
      none: "401 missing_authorization",
      garbage: "401 invalid_jwt",
      wrongPublishable: "401 invalid_api_key",
      wrongSecret: "401 invalid_api_key",
      expired: "401 jwt_expired",
      otherKey: "401 invalid_jwt",
      user: "200",
      userHs256: "200",
      anon: "200",
      anonApikey: "200",
      publishable: "200",
      publishableBearer: "200",
      secret: "200",
      serviceRole: "200",
    },
  );
});

// The functions that check their caller: all but the provider webhooks (their gate is the
// signature) and billing-email-confirm (the gate is the token of the confirmation email).
const SELF_CHECKING: Record<string, string> = {
  "billing-portal": "POST",
  checkout: "POST",
  "razorpay-verify": "POST",
  "ai-chat": "POST",
  reconcile: "POST",
  "provider-sync": "POST",
  "notifications-send": "POST",
  "ai-batch": "POST",
  "invoice-pdf": "GET",
  health: "GET",
  "usage-track": "POST",
};

Deno.test("every function has verify_jwt = false, and each that checks its caller answers 401 by itself, first", async () => {
  const config = parse(await Deno.readTextFile(new URL("../supabase/config.toml", import.meta.url))) as {
    functions: Record<string, { verify_jwt?: boolean }>;
  };
  const folders: string[] = [];
  for await (const e of Deno.readDir(new URL("../supabase/functions/", import.meta.url))) {
    if (e.isDirectory && !e.name.startsWith("_") && !e.name.startsWith(".")) folders.push(e.name);
  }
  assertEquals(
    folders.sort().map((name) => [name, config.functions[name]?.verify_jwt]),
    folders.map((name) => [name, false]),
  );
  assertEquals(
    Object.keys(SELF_CHECKING).sort(),
    folders.filter((n) =>
      !["payu-webhook", "payu-return", "razorpay-webhook", "stripe-webhook", "billing-email-confirm"].includes(n)
    ),
  );

  // The handlers themselves, no gateway, in a process with no database URL, bodies that never end.
  assertEquals(
    await handlersIn(Object.entries(SELF_CHECKING).map(([n, m]) => `${n}:${m}`), {}),
    Object.keys(SELF_CHECKING).map((name) => ({ name, status: 401, code: "missing_authorization" })),
  );
});

/** What anonymous-calls.ts prints, run with the test env but the given database URLs. */
async function handlersIn(args: string[], urls: Record<string, string>, key?: string) {
  const childEnv = Deno.env.toObject();
  delete childEnv.SUPABASE_DB_URL;
  delete childEnv.SUPABILL_DB_URL;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL("./fixtures/anonymous-calls.ts", import.meta.url).pathname,
      ...args,
    ],
    env: { ...childEnv, ...urls, SUPABILL_LOG: "off", ...(key ? { FIXTURE_KEY: key } : {}) },
    clearEnv: true,
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

Deno.test("SUPABILL_DB_URL, when set, is the database the functions use instead of SUPABASE_DB_URL", async () => {
  const real = env("SUPABASE_DB_URL");
  const nowhere = "postgres://postgres:postgres@127.0.0.1:1/postgres";
  const health = (urls: Record<string, string>) => handlersIn(["health:GET"], urls, secretKey());
  assertEquals(await health({ SUPABASE_DB_URL: nowhere, SUPABILL_DB_URL: real }), [{
    name: "health",
    status: 200,
    code: null,
  }]);
  assertEquals(await health({ SUPABASE_DB_URL: real, SUPABILL_DB_URL: nowhere }), [
    { name: "health", status: 503, code: "database_unavailable" },
  ]);
  assertEquals(await health({ SUPABASE_DB_URL: real }), [{ name: "health", status: 200, code: null }]);
});

// In-process: the same classification with explicit env values, for what the stack does not have.

const envOf = (values: Record<string, string>): EnvGetter => (name) => values[name];
const request = (headers: Record<string, string>) => new Request("http://x/", { headers });

async function es256Key() {
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const kid = crypto.randomUUID();
  return { privateKey, kid, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}

const hs256 = (claims: jose.JWTPayload, secret: string) =>
  new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt().setExpirationTime(
    "1h",
  )
    .sign(new TextEncoder().encode(secret));

Deno.test("HS256: SUPABILL_JWT_SECRET, or SUPABASE_JWT_SECRET as a fallback; refused when neither is set", async () => {
  const secret = "legacy-secret-of-at-least-32-characters!";
  const token = await hs256({ sub: crypto.randomUUID(), role: "authenticated" }, secret);
  assertEquals(await codeOf(verifyJwt(token, envOf({}))), "401 invalid_jwt");
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABILL_JWT_SECRET: secret }))), "ok");
  assertEquals(await codeOf(verifyJwt(token, envOf({ SUPABASE_JWT_SECRET: secret }))), "ok");
  // Ours wins over the CLI's: a wrong SUPABILL_JWT_SECRET is not rescued by SUPABASE_JWT_SECRET.
  assertEquals(
    await codeOf(
      verifyJwt(
        token,
        envOf({
          SUPABILL_JWT_SECRET: "another-secret-of-32-characters-or-more",
          SUPABASE_JWT_SECRET: secret,
        }),
      ),
    ),
    "401 invalid_jwt",
  );
});

Deno.test("SUPABASE_JWKS may be a bare array of keys", async () => {
  const k = await es256Key();
  const token = await new jose.SignJWT({ sub: crypto.randomUUID(), role: "authenticated" })
    .setProtectedHeader({ alg: "ES256", kid: k.kid }).setExpirationTime("1h").sign(k.privateKey);
  assertEquals(
    (await verifyJwt(token, envOf({ SUPABASE_JWKS: JSON.stringify([k.jwk]) }))).role,
    "authenticated",
  );
});

Deno.test("the legacy HS256 anon and service_role keys work by equality where no JWT secret is configured", async () => {
  const legacySecret = "the-project-legacy-jwt-secret-32-chars-long";
  const serviceRoleKey = await hs256({ role: "service_role" }, legacySecret);
  const anonKey = await hs256({ role: "anon" }, legacySecret);
  const other = await hs256({ role: "service_role", iss: "another" }, legacySecret);
  const env = envOf({ SUPABASE_SERVICE_ROLE_KEY: serviceRoleKey, SUPABASE_ANON_KEY: anonKey });
  assertEquals(
    await codeOf(requireServiceKey(request({ authorization: `Bearer ${serviceRoleKey}` }), "w", env)),
    "ok",
  );
  assertEquals(await codeOf(requireServiceKey(request({ apikey: serviceRoleKey }), "w", env)), "ok");
  assertEquals(await codeOf(requireServiceKey(request({ apikey: anonKey }), "w", env)), "403 forbidden");
  assertEquals((await callerOf(request({ apikey: anonKey }), env)).kind, "publishable");
  // Another service_role JWT signed with the same secret needs the secret to be verified.
  assertEquals(await codeOf(requireServiceKey(request({ apikey: other }), "w", env)), "401 invalid_jwt");
  assertEquals(
    await codeOf(
      requireServiceKey(request({ apikey: other }), "w", envOf({ SUPABILL_JWT_SECRET: legacySecret })),
    ),
    "ok",
  );
});

Deno.test("secret keys: every value of SUPABASE_SECRET_KEYS and SUPABASE_SECRET_KEY, a malformed list is a 500", async () => {
  const [a, b, c] = [
    "sb_secret_aaaaaaaaaaaaaaaa",
    "sb_secret_bbbbbbbbbbbbbbbb",
    "sb_secret_cccccccccccccccc",
  ];
  const env = envOf({
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: a, rotated: b }),
    SUPABASE_SECRET_KEY: c,
  });
  for (const key of [a, b, c]) {
    assertEquals(await codeOf(requireServiceKey(request({ apikey: key }), "w", env)), "ok");
  }
  assertEquals(
    await codeOf(requireServiceKey(request({ apikey: `${a}a` }), "w", env)),
    "401 invalid_api_key",
  );
  assertEquals(
    await codeOf(requireServiceKey(request({ apikey: a.slice(0, -1) }), "w", env)),
    "401 invalid_api_key",
  );
  assertEquals(
    await codeOf(requireServiceKey(request({ apikey: a }), "w", envOf({}))),
    "401 invalid_api_key",
  );
  assertEquals(
    await codeOf(
      requireServiceKey(request({ apikey: a }), "w", envOf({ SUPABASE_SECRET_KEYS: "sb_secret_" })),
    ),
    "500 keys_not_configured",
  );
  // A publishable key that happens to equal nothing else is still only publishable.
  const p = "sb_publishable_pppppppppppppppp";
  const withPublishable = envOf({ SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: p }) });
  assertEquals((await callerOf(request({ apikey: p }), withPublishable)).kind, "publishable");
  assertEquals(
    await codeOf(requireServiceKey(request({ apikey: p }), "w", withPublishable)),
    "403 forbidden",
  );
});

Deno.test("keys.json: a file from before the new keys keeps its keys and gets an sb_secret_, an sb_publishable_ key and an HS256 secret", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/keys.json`;
    const fresh = await loadOrCreateKeys(file);
    const { secretKey: _s, publishableKey: _p, jwtSecret: _j, ...old } = fresh;
    await Deno.writeTextFile(file, JSON.stringify(old));
    const upgraded = await loadOrCreateKeys(file);
    assertEquals(
      [upgraded.anonKey, upgraded.serviceRoleKey, upgraded.privateJwk],
      [old.anonKey, old.serviceRoleKey, old.privateJwk],
    );
    assertEquals(
      [
        /^sb_secret_[A-Za-z0-9_-]{32}$/.test(upgraded.secretKey),
        /^sb_publishable_[A-Za-z0-9_-]{32}$/.test(upgraded.publishableKey),
      ],
      [true, true],
    );
    assertEquals(upgraded.secretKey === fresh.secretKey, false, "new random keys");
    assertEquals(typeof upgraded.jwtSecret === "string" && upgraded.jwtSecret.length >= 32, true);
    assertEquals(await loadOrCreateKeys(file), upgraded, "stored: the next start reads the same keys");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
