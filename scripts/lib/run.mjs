// Small process helpers shared by the scripts: run a command, fail with its output; every child
// started here or by startDeno() is tracked, so an interrupted script stops them all.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const bin = (name) => path.join(root, "node_modules", ".bin", name);

export class ScriptError extends Error {}

/** Every child process this process started and that has not exited yet (run() and startDeno()). */
const children = new Set();

/** Remember a child until it exits, so stopChildren() can stop it. */
export function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/** Stop every child this process started: SIGTERM, then SIGKILL after 3 s. */
export async function stopChildren() {
  await Promise.all([...children].map((c) => new Promise((res) => {
    if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return res();
    c.once("exit", res);
    c.kill("SIGTERM");
    setTimeout(() => c.kill("SIGKILL"), 3000).unref();
  })));
}

let interruptCleanup = null;

/**
 * Run `cleanup` on SIGINT/SIGTERM/SIGHUP and exit 130, so no cluster or server outlives us. The
 * signal handlers are installed once; a later call replaces the cleanup (the one that runs is
 * the one registered last, e.g. the current benchmark section's).
 */
export function onInterrupt(cleanup) {
  const first = interruptCleanup === null;
  interruptCleanup = cleanup;
  if (!first) return;
  let done = false;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, async () => {
      if (done) return;
      done = true;
      try {
        await interruptCleanup();
      } finally {
        process.exit(130);
      }
    });
  }
}

/**
 * Run a command; resolve with its output, reject with a ScriptError carrying stderr. With tee,
 * its stdout is also printed as it arrives (a long stage shows progress instead of holding it back).
 */
export function run(cmd, args, { env, cwd = root, input, quiet = true, allowFail = false, tee = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: [input === undefined ? "ignore" : "pipe", quiet ? "pipe" : "inherit", quiet ? "pipe" : "inherit"],
    }));
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d) => {
      stdout += d;
      if (tee) process.stdout.write(d);
    });
    child.stderr?.on("data", (d) => (stderr += d));
    if (input !== undefined) child.stdin.end(input);
    child.on("error", (e) => reject(new ScriptError(`cannot run ${cmd}: ${e.message}`)));
    child.on("close", (code) => {
      if (code === 0 || allowFail) resolve({ code, stdout, stderr });
      else {
        const tail = (stderr || stdout).trim().split("\n").slice(-30).join("\n");
        reject(new ScriptError(`${path.basename(cmd)} ${args.slice(0, 3).join(" ")} exited with ${code}\n${tail}`));
      }
    });
  });
}

/** Print a ScriptError as one clear message and exit non-zero; rethrow anything else. */
export function main(fn) {
  fn().catch((e) => {
    if (e instanceof ScriptError) {
      console.error(`supabill: ${e.message}`);
      process.exit(1);
    }
    console.error(e);
    process.exit(1);
  });
}
