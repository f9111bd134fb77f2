// The very first `npm start` on a machine where the port is taken (another `supabase start`, or
// another checkout's stack): it must stop before creating anything, name SUPABILL_DB_PORT and
// SUPABILL_API_PORT and the likely cause, and leave no half-created database behind.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";

const root = new URL("../", import.meta.url).pathname;

function listen(): Promise<net.Server> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

for (const busy of ["db", "api"] as const) {
  Deno.test({
    name: `first npm start with the ${busy === "db" ? "Postgres" : "API"} port taken: stops at once, names SUPABILL_DB_PORT/SUPABILL_API_PORT, creates nothing`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const state = await Deno.makeTempDir({ prefix: "supabill-first-start-" });
      const taken = await listen();
      const free = await listen();
      const takenPort = (taken.address() as net.AddressInfo).port;
      const freePort = (free.address() as net.AddressInfo).port;
      await new Promise((r) => free.close(r));
      try {
        const out = await new Deno.Command("node", {
          args: ["scripts/start.mjs"],
          cwd: root,
          env: {
            SUPABILL_STATE_DIR: state,
            SUPABILL_DB_PORT: String(busy === "db" ? takenPort : freePort),
            SUPABILL_API_PORT: String(busy === "api" ? takenPort : freePort),
            SUPABILL_TICK_SECONDS: "0",
            NO_COLOR: "1",
          },
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(60_000),
        }).output();
        const stdout = new TextDecoder().decode(out.stdout);
        const stderr = new TextDecoder().decode(out.stderr);
        assertEquals(out.code, 1, stdout + stderr);
        assert(!stdout.includes("is running"), stdout);
        assert(stderr.includes(`port ${takenPort} (${busy === "db" ? "Postgres" : "functions API"}) is already in use`), stderr);
        for (const word of ["SUPABILL_DB_PORT=", "SUPABILL_API_PORT=", "supabase start"]) assert(stderr.includes(word), stderr);
        // Nothing was created: no cluster, no keys, no stack file.
        assertEquals(fs.readdirSync(state), []);
      } finally {
        await new Promise((r) => taken.close(r));
        await Deno.remove(state, { recursive: true });
      }
    },
  });
}
