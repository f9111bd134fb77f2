// The local stack itself: the functions server answers like Supabase's. Which keys each function
// accepts is tests/keys.test.ts.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createClient } from "npm:@supabase/supabase-js@2.119.0";
import { apiUrl, env, functionsUrl } from "./helpers.ts";

Deno.test("supabase-js functions.invoke('health') gets 200 with the anon key and with a publishable key", async () => {
  for (const key of [env("SUPABASE_ANON_KEY"), JSON.parse(env("SUPABASE_PUBLISHABLE_KEYS")).default]) {
    const supabase = createClient(apiUrl(), key);
    const { data, error } = await supabase.functions.invoke("health");
    assertEquals(error, null);
    assertEquals(data.status, "ok");
    assertEquals(data.database, "ok");
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
