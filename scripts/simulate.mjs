// npm run simulate -- --seed <n> --orgs <n> --months <n> [flags]: months of billing for a
// population of organizations on a throwaway stack (its own cluster on a free port, the functions
// server and the fakes, removed at the end, as npm test does), one simulated day at a time, every
// invariant checked after each day. The simulation itself is scripts/simulate/main.ts (Deno); this
// script brings the stack up, runs it with the stack's env and exits with its code (0 clean, 1 an
// invariant violated, 2 bad flags or a broken stack). docs/simulator.md says what it checks.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import path from "node:path";
import { spawn } from "node:child_process";
import { ensureNodeDeps } from "./lib/deps.mjs";
import { loadOrCreateKeys } from "./lib/keys.mjs";
import { ensurePgPackages, tempCluster } from "./lib/pg.mjs";
import { bin, main, onInterrupt, root, stopChildren, track } from "./lib/run.mjs";
import { startLocalStack } from "./lib/stack.mjs";

/** Run the Deno simulation with the stack's env; resolves with its exit code. */
function simulate(env, args) {
  return new Promise((resolve) => {
    const child = track(spawn(bin("deno"), ["run", "-A", "--quiet", path.join(root, "scripts", "simulate", "main.ts"), ...args], {
      cwd: root,
      env: { ...process.env, ...env, NO_COLOR: "1" },
      stdio: "inherit",
    }));
    child.on("close", (code) => resolve(code ?? 2));
  });
}

main(async () => {
  const args = process.argv.slice(2);
  await ensureNodeDeps();
  await ensurePgPackages();
  const db = await tempCluster("sim");
  const cleanup = async () => {
    await stopChildren();
    await db.remove();
  };
  onInterrupt(cleanup);
  let code = 2;
  try {
    await db.init();
    await db.start();
    await db.prepare();
    // The simulation calls every job itself once per simulated day, as pg_cron would at that
    // time; pg_cron's own schedule (real time) would run them at moments the seed does not decide.
    await db.psql(["-c", "select cron.unschedule(jobid) from cron.job"]);
    const keys = await loadOrCreateKeys(path.join(db.dir, "keys.json"));
    const { env } = await startLocalStack({
      db,
      keys,
      // The workers one action at a time (their claim order): a replay makes the same provider calls
      // in the same order, so a failure the simulation injects hits the same call.
      extraEnv: {
        SUPABILL_TEST_PRIVATE_JWK: JSON.stringify(keys.privateJwk),
        SUPABILL_DB_POOL_SIZE: "6",
        SUPABILL_WORKER_CONCURRENCY: "1",
      },
    });
    code = await simulate(env, args);
  } finally {
    await cleanup();
  }
  process.exitCode = code;
});
