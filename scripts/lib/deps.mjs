// Installs the project's npm dependencies with `npm ci` when node_modules does not hold what
// package-lock.json pins, so `npm start` and `npm test` work on a fresh clone; silent when nothing
// is to do.
//
// `npm ci`, not `npm install`: it installs exactly the committed lockfile and never writes it, so
// a fresh clone stays clean. The committed lockfile is the one `npm install` writes (every
// platform's optional binaries of `deno` and `supabase` listed; npm installs only this machine's).
// What is installed is read from npm's own record, node_modules/.package-lock.json: every package
// the lockfile pins (bar the optional ones, which belong to other platforms) must be there at its
// version, and the two binaries the scripts run must exist.
import fs from "node:fs";
import path from "node:path";
import { root, run } from "./run.mjs";

/** Why node_modules does not match package-lock.json, or null when it does. */
export function depsMismatch(dir = root) {
  const lockFile = path.join(dir, "package-lock.json");
  const installedFile = path.join(dir, "node_modules", ".package-lock.json");
  if (!fs.existsSync(installedFile)) return "node_modules is not installed";
  const missingBin = ["supabase", "deno"].find((b) => !fs.existsSync(path.join(dir, "node_modules", ".bin", b)));
  if (missingBin) return `node_modules/.bin/${missingBin} is missing`;
  const pinned = JSON.parse(fs.readFileSync(lockFile, "utf8")).packages ?? {};
  const installed = JSON.parse(fs.readFileSync(installedFile, "utf8")).packages ?? {};
  for (const [name, entry] of Object.entries(pinned)) {
    if (name === "" || entry.optional) continue;
    if (installed[name]?.version !== entry.version) return `${name} ${entry.version} is not installed`;
  }
  return null;
}

export async function ensureNodeDeps() {
  const why = depsMismatch();
  if (why === null) return;
  console.error(`supabill: installing npm dependencies (npm ci: ${why}) ...`);
  await run("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
}
