// Node.js 22 or newer for every script (package.json `engines`): Node 20 reached its end of life
// in April 2026, and supabase-js needs Node 22's WebSocket for its Realtime client (on Node 20
// `createClient` throws). Imported first by each script in scripts/: on an older Node it fetches
// Node NODE_VERSION from the npm registry (the official binaries, published there as
// `node-<platform>-<arch>`) into a folder of the user running it, then runs the same script again
// with that Node, its folder first on PATH (so `node` in child processes, `npm test`'s Deno tests
// included, is the same Node). Where it cannot, it stops and says what to run.
//
// ES modules evaluate their imports in order but do not wait for this one's top-level await, so
// the scripts' other imports must have no side effects; the scripts' own code runs after it.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const MIN_NODE_MAJOR = 22;
/** The Node fetched where the machine's is older (a 22 LTS release, as published on npm). */
export const NODE_VERSION = "22.23.5";

const major = (v) => Number(/^v?(\d+)/.exec(v)?.[1] ?? 0);

/** The npm package holding the official Node binary for this machine, or null if there is none. */
export function nodePackage(platform = process.platform, arch = process.arch) {
  const os = { linux: "linux", darwin: "darwin" }[platform];
  return os && ["x64", "arm64"].includes(arch) ? `node-${os}-${arch}` : null;
}

/** Where the fetched Node lives: the user's cache folder, never a shared one. */
export function nodeCacheDir(env = process.env) {
  const cache = env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(cache, "supabill", `node-v${NODE_VERSION}-${process.platform}-${process.arch}`);
}

function stop(why) {
  const pkg = nodePackage();
  console.error(
    `supabill: Node.js ${MIN_NODE_MAJOR} or newer is required (this is ${process.version}); ${why}.\n` +
      "install it, then run the command again, e.g. with nvm: nvm install 22 && nvm use 22" +
      (pkg ? `\nor fetch the official binary from the npm registry: npm pack ${pkg}@${NODE_VERSION}` +
        ` && tar xzf ${pkg}-${NODE_VERSION}.tgz package/bin/node && export PATH="$PWD/package/bin:$PATH"` : ""),
  );
  process.exit(1);
}

/** The path of a Node 22 binary, fetched once per user with `npm pack` (the ordinary npm client). */
function ensureNode22() {
  const pkg = nodePackage();
  if (!pkg) stop(`there is no Node.js package on npm for ${process.platform}-${process.arch}`);
  const dir = nodeCacheDir();
  const node = path.join(dir, "bin", "node");
  if (fs.existsSync(node)) return node;
  console.error(`supabill: Node.js ${process.version} is too old; fetching Node.js ${NODE_VERSION} (${pkg}) from the npm registry into ${dir} ...`);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.partial-`);
  try {
    const pack = spawnSync("npm", ["pack", `${pkg}@${NODE_VERSION}`, "--pack-destination", tmp, "--loglevel=error"], {
      cwd: tmp,
      encoding: "utf8",
    });
    if (pack.status !== 0) stop(`npm pack ${pkg}@${NODE_VERSION} failed: ${(pack.stderr || pack.error?.message || "").trim()}`);
    const tar = spawnSync("tar", ["xzf", path.join(tmp, `${pkg}-${NODE_VERSION}.tgz`), "-C", tmp, "package/bin/node"], { encoding: "utf8" });
    if (tar.status !== 0) stop(`unpacking ${pkg} failed: ${(tar.stderr || tar.error?.message || "").trim()}`);
    fs.rmSync(path.join(tmp, `${pkg}-${NODE_VERSION}.tgz`));
    try {
      fs.renameSync(path.join(tmp, "package"), dir); // atomic: a half-fetched Node is never used
    } catch (e) {
      if (!fs.existsSync(node)) throw e; // else another script fetched it at the same time
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return node;
}

if (major(process.version) < MIN_NODE_MAJOR) {
  const node = ensureNode22();
  const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ""}` };
  const child = spawn(node, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit", env });
  // The child gets the terminal's signals itself (same process group); forwarding a signal sent
  // to this process only is for the rest (its handlers ignore a second one).
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
  const code = await new Promise((resolve) =>
    child.on("exit", (c, signal) => resolve(c ?? 128 + (os.constants.signals[signal] ?? 1)))
  );
  process.exit(code);
}
