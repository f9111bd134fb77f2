// npm run bench: every benchmark on its own throwaway cluster, each beside its baseline in
// the same run, printing ratios. Sections live in scripts/bench/*.mjs and run in name order.
import fs from "node:fs";
import path from "node:path";
import { ensureNodeDeps } from "./lib/deps.mjs";
import { ensurePgPackages, tempCluster } from "./lib/pg.mjs";
import { main, onInterrupt, root, stopChildren } from "./lib/run.mjs";

main(async () => {
  await ensureNodeDeps();
  await ensurePgPackages();
  const only = process.argv[2];
  const dir = path.join(root, "scripts", "bench");
  const sections = fs.readdirSync(dir).filter((f) => /^\d+-.*\.mjs$/.test(f) && (!only || f.includes(only))).sort();
  // One interrupt handler for the whole run: it cleans up whichever section is running.
  let cleanup = async () => {};
  onInterrupt(() => cleanup());
  for (const file of sections) {
    const db = await tempCluster("bench");
    cleanup = async () => {
      await stopChildren();
      await db.remove();
    };
    try {
      await db.init();
      await db.start();
      await db.prepare();
      const { default: bench } = await import(path.join(dir, file));
      await bench(db);
    } finally {
      await cleanup();
      cleanup = async () => {};
    }
  }
});
