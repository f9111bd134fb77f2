// Installs the project's npm dependencies when they are missing or older than the lockfile,
// so `npm start` and `npm test` work on a fresh clone; silent when nothing is to do.
import fs from "node:fs";
import path from "node:path";
import { root, run } from "./run.mjs";

export async function ensureNodeDeps() {
  const lock = path.join(root, "package-lock.json");
  const installed = path.join(root, "node_modules", ".package-lock.json");
  const have = fs.existsSync(installed) &&
    fs.existsSync(path.join(root, "node_modules", ".bin", "supabase")) &&
    fs.existsSync(path.join(root, "node_modules", ".bin", "deno")) &&
    fs.statSync(installed).mtimeMs >= fs.statSync(lock).mtimeMs;
  if (have) return;
  console.error("supabill: installing npm dependencies (npm ci) ...");
  await run("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
}
