// npm run bench: every benchmark on its own throwaway cluster, each beside its baseline in
// the same run, printing ratios. Sections live in scripts/bench/*.mjs and run in name order;
// each exports `about` ({what, seconds()}), printed as it starts, and its time is printed as it ends.
// `npm run bench -- <part of a section's file name>` runs only the sections that match.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
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
  const started = Date.now();
  for (const [i, file] of sections.entries()) {
    const section = await import(path.join(dir, file));
    const { what = "", seconds: estimate } = section.about ?? {};
    const about = estimate ? `, about ${Math.ceil(estimate() / 10) * 10} s` : "";
    console.log(`\n## [${i + 1}/${sections.length}] ${file.replace(/\.mjs$/, "")}: ${what}${about}`);
    const sectionStarted = Date.now();
    const db = await tempCluster("bench");
    cleanup = async () => {
      await stopChildren();
      await db.remove();
    };
    try {
      await db.init();
      await db.start();
      await db.prepare();
      await section.default(db);
    } finally {
      await cleanup();
      cleanup = async () => {};
    }
    console.log(`## ${file.replace(/\.mjs$/, "")} took ${((Date.now() - sectionStarted) / 1000).toFixed(0)} s`);
  }
  console.log(`\n## all sections took ${((Date.now() - started) / 1000).toFixed(0)} s`);
});
