// The very first `npm start` on a machine where the port is taken (another `supabase start`, or
// another checkout's stack): it must stop before creating anything, name SUPABILL_DB_PORT and
// SUPABILL_API_PORT and the likely cause, and leave no half-created database behind.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import process from "node:process";
import postgres from "npm:postgres@4.2.0";

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

/** Start `node scripts/start.mjs` in its own process group; resolves when it says it is running (or exits). */
function startStack(env: Record<string, string>) {
  const child = spawn("node", ["scripts/start.mjs"], { cwd: root, env: { ...Deno.env.toObject(), ...env }, detached: true });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function until(what: string, ok: () => boolean, ms = 120_000) {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: "a first start killed half-way is made again on the next start (seeded), never reported running on an empty database",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const state = await Deno.makeTempDir({ prefix: "supabill-half-start-" });
    await Deno.chmod(state, 0o755); // as root, the postgres user must reach the cluster inside
    const ports = await Promise.all([listen(), listen()]);
    const [dbPort, apiPort] = ports.map((s) => (s.address() as net.AddressInfo).port);
    await Promise.all(ports.map((s) => new Promise((r) => s.close(r))));
    const env = { SUPABILL_STATE_DIR: state, SUPABILL_DB_PORT: String(dbPort), SUPABILL_API_PORT: String(apiPort),
      SUPABILL_TICK_SECONDS: "0", NO_COLOR: "1" };
    const dbUrl = `postgresql://postgres:postgres@127.0.0.1:${dbPort}/postgres`;
    try {
      // The first start is killed once the cluster exists, before its migrations and seed are done.
      const first = startStack(env);
      await until("the cluster", () => fs.existsSync(`${state}/db/data/PG_VERSION`) && fs.existsSync(`${state}/db/creating`));
      process.kill(-first.child.pid!, "SIGKILL");
      await first.exited;
      assert(!first.output().includes("is running"), first.output());

      const second = startStack(env);
      await until("npm start", () => second.output().includes("is running") || second.child.exitCode !== null);
      try {
        assert(second.output().includes("a previous first start did not finish"), second.output());
        assert(second.output().includes("supabill local stack is running"), second.output());
        assert(!fs.existsSync(`${state}/db/creating`));
        const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
        try {
          const [{ plans }] = await sql`select count(*)::int as plans from public.billing_plans`;
          assert(plans > 0, "the database was not seeded");
        } finally {
          await sql.end();
        }
      } finally {
        process.kill(-second.child.pid!, "SIGINT");
        await second.exited;
      }
    } finally {
      spawnSync("node", ["scripts/db.mjs", "stop"], { cwd: root, env: { ...Deno.env.toObject(), ...env } });
      await Deno.remove(state, { recursive: true });
    }
  },
});
