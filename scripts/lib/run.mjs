// Small process helpers shared by the scripts: run a command, fail with its output.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const bin = (name) => path.join(root, "node_modules", ".bin", name);

export class ScriptError extends Error {}

/** Run a command; resolve with its output, reject with a ScriptError carrying stderr. */
export function run(cmd, args, { env, cwd = root, input, quiet = true, allowFail = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: [input === undefined ? "ignore" : "pipe", quiet ? "pipe" : "inherit", quiet ? "pipe" : "inherit"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d) => (stdout += d));
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
