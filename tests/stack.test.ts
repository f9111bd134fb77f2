// The local stack itself: the functions server answers like Supabase's, JWTs are checked the
// way the gateway checks them for verify_jwt functions.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import * as jose from "npm:jose@6.2.17";
import { adminSql, apiUrl, createUser, env, functionsUrl, mintToken } from "./helpers.ts";

Deno.test("supabase-js functions.invoke('health') gets 200 from the local functions server", async () => {
  const supabase = createClient(apiUrl(), env("SUPABASE_ANON_KEY"));
  const { data, error } = await supabase.functions.invoke("health");
  assertEquals(error, null);
  assertEquals(data.status, "ok");
  assertEquals(data.database, "ok");
});

async function healthStatus(authorization?: string) {
  const res = await fetch(functionsUrl("health"), { headers: authorization ? { authorization } : {} });
  const body = await res.json();
  return { status: res.status, code: body.code };
}

Deno.test("a verify_jwt function answers 401 without a token", async () => {
  assertEquals(await healthStatus(), { status: 401, code: "missing_authorization" });
});

Deno.test("a verify_jwt function answers 401 to an expired token", async () => {
  const token = await mintToken(crypto.randomUUID(), { expiresIn: Math.floor(Date.now() / 1000) - 60 });
  assertEquals(await healthStatus(`Bearer ${token}`), { status: 401, code: "jwt_expired" });
});

Deno.test("a verify_jwt function answers 401 to a token signed by another key", async () => {
  const { privateKey } = await jose.generateKeyPair("ES256");
  const token = await mintToken(crypto.randomUUID(), { key: privateKey as CryptoKey });
  assertEquals(await healthStatus(`Bearer ${token}`), { status: 401, code: "invalid_jwt" });
});

Deno.test("a verify_jwt function answers 401 to a token that is not a JWT", async () => {
  assertEquals(await healthStatus("Bearer not-a-jwt"), { status: 401, code: "invalid_jwt" });
});

Deno.test("a verify_jwt function answers 200 to a user token minted by the local stack", async () => {
  const sql = adminSql(1);
  try {
    const user = await createUser(sql);
    assertEquals((await healthStatus(`Bearer ${await mintToken(user)}`)).status, 200);
  } finally {
    await sql.end();
  }
});

Deno.test("CORS preflight is answered with 204 and the allowed headers", async () => {
  const res = await fetch(functionsUrl("health"), {
    method: "OPTIONS",
    headers: { origin: "http://localhost:3000", "access-control-request-method": "POST" },
  });
  await res.body?.cancel();
  assertEquals(res.status, 204);
  assertEquals(res.headers.get("access-control-allow-origin"), "*");
  assertEquals(res.headers.get("access-control-allow-headers")?.includes("authorization"), true);
});

Deno.test("an unknown function is a 404 with a code", async () => {
  const res = await fetch(functionsUrl("no-such-function"));
  assertEquals(res.status, 404);
  assertEquals((await res.json()).code, "not_found");
});

Deno.test({
  name: "a chunked body (no content-length) over a function's cap is refused with 413 before it ends",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // 80 KiB to payu-webhook (cap 64 KiB), then the stream stalls: only a reader that stops at the
    // cap can answer.
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 20) return controller.enqueue(new Uint8Array(4096).fill(0x61));
        return new Promise(() => {});
      },
    });
    const res = await fetch(functionsUrl("payu-webhook"), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body,
      duplex: "half",
      signal: AbortSignal.timeout(10_000),
    } as RequestInit);
    assertEquals([res.status, (await res.json()).code], [413, "body_too_large"]);
  },
});
