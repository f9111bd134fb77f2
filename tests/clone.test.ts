// A newcomer's first run, as root, from a clone the postgres user cannot enter (what `mktemp -d`
// or a folder under /root gives): `npm start` must choose a state folder postgres can reach, say
// where, and serve; `npm run db:stop` must stop what it started. The clone is of this
// repository's committed HEAD, and shares this checkout's node_modules (a symlink) so the test
// does not download them again; the lockfile check of a fresh install is the CI's own clean clone.
// The clone stays clean: `git status --porcelain` is empty after npm start and after an npm test
// run (a subset: one pgTAP file and one Deno file, to keep the test short).
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { assertPortFree, freePort } from "../scripts/lib/pg.mjs";

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const isRoot = process.getuid?.() === 0;

/** `git status --porcelain` of a checkout: empty when clean. */
function gitStatus(dir: string): string {
  const r = spawnSync("git", ["status", "--porcelain", "--ignored=no"], { cwd: dir, encoding: "utf8" });
  assertEquals(r.status, 0, r.stderr);
  return r.stdout.trim();
}

Deno.test({
  name: "as root, npm start from a clone postgres cannot enter serves health (401 without a key, 200 with one); db:stop stops it",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), "supabill-clone-"));
    fs.chmodSync(parent, 0o700);
    const clone = path.join(parent, "supabill");
    const git = spawnSync("git", ["clone", "--quiet", repo, clone], { encoding: "utf8" });
    assertEquals(git.status, 0, git.stderr);
    fs.symlinkSync(path.join(repo, "node_modules"), path.join(clone, "node_modules"));
    const cannotEnter = spawnSync("runuser", ["-u", "postgres", "--", "test", "-x", clone]).status !== 0;
    assert(cannotEnter, "the postgres user can enter the clone, so this test proves nothing");

    const [dbPort, apiPort] = [await freePort(), await freePort()];
    const env: Record<string, string> = {
      ...Deno.env.toObject(),
      SUPABILL_DB_PORT: String(dbPort),
      SUPABILL_API_PORT: String(apiPort),
      SUPABILL_TICK_SECONDS: "0",
      NO_COLOR: "1",
    };
    delete env.SUPABILL_STATE_DIR;
    const start = spawn("npm", ["start"], { cwd: clone, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    start.stdout.on("data", (d) => (output += d));
    start.stderr.on("data", (d) => (output += d));
    let stateDir = "";
    try {
      const ready = await new Promise<boolean>((resolve) => {
        const timer = setInterval(() => {
          if (output.includes("supabill local stack is running")) done(true);
        }, 200);
        const limit = setTimeout(() => done(false), 240_000);
        start.once("exit", () => done(false));
        function done(ok: boolean) {
          clearInterval(timer);
          clearTimeout(limit);
          resolve(ok);
        }
      });
      assert(ready, `npm start did not come up:\n${output.slice(-3000)}`);

      // It says where the state went, and that folder is one postgres can enter.
      const said = /the local stack's state is in (\S+)/.exec(output);
      assert(said, `npm start did not say where its state is:\n${output.slice(-2000)}`);
      stateDir = said[1];
      assert(stateDir.startsWith("/var/tmp/supabill-"), stateDir);
      assert(fs.existsSync(path.join(stateDir, "db", "data", "PG_VERSION")), "the dev cluster is not in the state folder");

      const health = `http://127.0.0.1:${apiPort}/functions/v1/health`;
      const anonymous = await fetch(health);
      assertEquals(anonymous.status, 401);
      assertEquals((await anonymous.json()).code, "missing_authorization");
      const anonKey = /anon key: (\S+)/.exec(output)?.[1];
      assert(anonKey, "npm start did not print the anon key");
      const signedIn = await fetch(health, { headers: { authorization: `Bearer ${anonKey}` } });
      assertEquals(signedIn.status, 200);
      assertEquals((await signedIn.json()).status, "ok");
      assertEquals(gitStatus(clone), "", "npm start left the clone dirty");
    } finally {
      try {
        process.kill(-start.pid!, "SIGINT");
      } catch { /* already gone */ }
      await new Promise((resolve) => start.exitCode !== null ? resolve(null) : start.once("exit", resolve));
      const stop = spawnSync("npm", ["run", "db:stop"], { cwd: clone, env, encoding: "utf8" });
      const stopped = await assertPortFree(dbPort, "the clone's database").then(() => true, () => false);
      if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
      assertEquals(stop.status, 0, stop.stderr);
      assert(stopped, "the dev database still listens after npm run db:stop");
    }
    const test = spawnSync("npm", ["test", "--", "supabase/tests/database/00-foundation.test.sql", "tests/first-start.test.ts"], {
      cwd: clone,
      env,
      encoding: "utf8",
    });
    try {
      assertEquals(test.status, 0, test.stdout.slice(-3000) + test.stderr.slice(-2000));
      assertEquals(gitStatus(clone), "", "npm test left the clone dirty");
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  },
});
