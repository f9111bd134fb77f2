// _shared/http.ts in-process: the body cap holds for chunked bodies without a content-length.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { readJson, readText } from "../supabase/functions/_shared/http.ts";
import { codeOf } from "./helpers.ts";

/** A body of `chunks` chunks of `size` bytes that then never ends (unless `end`). */
function stalling(chunks: number, size: number, end = false) {
  let sent = 0;
  let pulledAfterLimit = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent < chunks) {
        sent++;
        controller.enqueue(new Uint8Array(size).fill(0x61));
        return;
      }
      pulledAfterLimit = true;
      if (end) controller.close();
      return new Promise(() => {}); // stalls: a reader that waits for the end never returns
    },
  });
  return { stream, sent: () => sent, pulledAfterLimit: () => pulledAfterLimit };
}

const request = (body: ReadableStream<Uint8Array>) =>
  new Request("http://local/x", { method: "POST", body, headers: { "content-type": "text/plain" } });

Deno.test("readText refuses a chunked body with 413 as soon as it passes the cap, without waiting for its end", async () => {
  const body = stalling(10, 1024);
  const result = await Promise.race([
    codeOf(readText(request(body.stream), 4 * 1024)),
    new Promise((res) => setTimeout(() => res("still reading"), 2000)),
  ]);
  assertEquals(result, "413 body_too_large");
  assertEquals(body.sent(), 5, "stops after the chunk that passed 4 KiB");
});

Deno.test("readText and readJson read a chunked body under the cap whole", async () => {
  const body = stalling(3, 1000, true);
  assertEquals((await readText(request(body.stream), 3000)).length, 3000);
  const parts = ['{"a":', '[1,2', ',3]}'];
  const json = new ReadableStream<Uint8Array>({
    start(c) {
      for (const p of parts) c.enqueue(new TextEncoder().encode(p));
      c.close();
    },
  });
  assertEquals(await readJson(request(json)), { a: [1, 2, 3] });
  assertEquals(await codeOf(readText(request(stalling(4, 1000, true).stream), 3999)), "413 body_too_large");
});

Deno.test("readText: a declared content-length over the cap is 413; an empty body is empty; bad UTF-8 is 400", async () => {
  const big = new Request("http://local/x", { method: "POST", body: "x".repeat(100) });
  assertEquals(await codeOf(readText(big, 99)), "413 body_too_large");
  assertEquals(await readText(new Request("http://local/x", { method: "POST" }), 10), "");
  const bad = new Request("http://local/x", { method: "POST", body: new Uint8Array([0xff, 0xfe]) });
  assertEquals(await codeOf(readText(bad, 10)), "400 malformed_body");
});

Deno.test("readJson with allowEmpty takes an empty or blank body as {}, and still refuses bad JSON", async () => {
  const req = (body?: string) => new Request("http://local/x", { method: "POST", body });
  assertEquals(await readJson(req(), 100, { allowEmpty: true }), {});
  assertEquals(await readJson(req("  \n"), 100, { allowEmpty: true }), {});
  assertEquals(await readJson(req('{"limit": 5}'), 100, { allowEmpty: true }), { limit: 5 });
  assertEquals(await codeOf(readJson(req("{"), 100, { allowEmpty: true })), "400 malformed_json");
  assertEquals(await codeOf(readJson(req(""), 100)), "400 malformed_json");
});
