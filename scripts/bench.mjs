// npm run bench: every benchmark on its own throwaway cluster, each beside its baseline in
// the same run, printing ratios. Sections live in scripts/bench/*.mjs and run in name order;
// each exports `about` ({what, seconds()}), printed as it starts, and its time is printed as it ends.
// `npm run bench -- <part of a section's file name>` runs only the sections that match.
// Sections print their figures and record their correctness checks through scripts/bench/lib.mjs
// (measures, check); the run exits 1 at the end when a check failed or a section threw (the
// other sections still run), never because a target was missed.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import fs from "node:fs";
import path from "node:path";
import { ensureNodeDeps } from "./lib/deps.mjs";
import { ensurePgPackages, tempCluster } from "./lib/pg.mjs";
import { main, onInterrupt, root, stopChildren } from "./lib/run.mjs";
import { check, failedChecks } from "./bench/lib.mjs";

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
    } catch (e) {
      // One broken section does not hide the others' figures: it is reported as a failed check.
      check(`${file} ran to the end`, false, e?.stack ?? String(e));
    } finally {
      await cleanup();
      cleanup = async () => {};
    }
    console.log(`## ${file.replace(/\.mjs$/, "")} took ${((Date.now() - sectionStarted) / 1000).toFixed(0)} s`);
  }
  console.log(`\n## all sections took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const failed = failedChecks();
  if (only && sections.length === 0) {
    console.log(`\n## no section's file name contains "${only}"`);
    process.exitCode = 1;
  } else if (failed.length) {
    console.log(`\n## ${failed.length} check(s) FAILED:\n${failed.map((f) => `- ${f}`).join("\n")}`);
    process.exitCode = 1;
  } else {
    console.log("\n## every check passed");
  }
});
