// Installs the project's npm dependencies when they are missing or when package.json or
// package-lock.json changed since the last install, so `npm start` and `npm test` work on a
// fresh clone; silent when nothing is to do.
//
// `npm install`, not `npm ci`: npm 11 writes a lockfile without the other platforms' optional
// binaries of `deno` and `supabase`, and then its own `npm ci` refuses that lockfile.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { root, run } from "./run.mjs";

const stampFile = path.join(root, "node_modules", ".supabill-deps");

function manifestHash() {
  const hash = crypto.createHash("sha256");
  for (const f of ["package.json", "package-lock.json"]) {
    const file = path.join(root, f);
    if (fs.existsSync(file)) hash.update(fs.readFileSync(file));
  }
  return hash.digest("hex");
}

export async function ensureNodeDeps() {
  const have = ["supabase", "deno"].every((b) => fs.existsSync(path.join(root, "node_modules", ".bin", b))) &&
    fs.existsSync(stampFile) && fs.readFileSync(stampFile, "utf8") === manifestHash();
  if (have) return;
  console.error("supabill: installing npm dependencies (npm install) ...");
  await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"]);
  fs.writeFileSync(stampFile, manifestHash());
}
