// The scripts in a bad environment: they stop with one clear message and a non-zero exit.
import { deepStrictEqual as assertEquals, match } from "node:assert/strict";
import { execPath } from "node:process";

const nodeBin = (() => {
  const out = new Deno.Command("sh", { args: ["-c", "command -v node"] }).outputSync();
  return new TextDecoder().decode(out.stdout).trim() || execPath;
})();

async function runScript(args: string[], env: Record<string, string>, clearEnv = false) {
  const out = await new Deno.Command(nodeBin, {
    args,
    cwd: new URL("..", import.meta.url).pathname,
    env,
    clearEnv,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("a busy database port gives a clear message naming the port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const state = await Deno.makeTempDir({ prefix: "supabill-busy-" });
  try {
    const { code, stderr } = await runScript(["scripts/db.mjs", "reset"], {
      SUPABILL_STATE_DIR: state,
      SUPABILL_DB_PORT: String(port),
    });
    assertEquals(code, 1);
    match(stderr, new RegExp(`port ${port} \\(Postgres\\) is already in use`));
  } finally {
    listener.close();
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("missing Postgres binaries with no way to install them name the Debian packages", async () => {
  const { code, stderr } = await runScript(["scripts/db.mjs", "check"], {
    PATH: "/nonexistent",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    SUPABILL_PG_BINDIR: "/nonexistent/postgresql/bin",
  }, true);
  assertEquals(code, 1);
  match(stderr, /missing Debian packages: .*postgresql-15 /);
  match(stderr, /libtap-parser-sourcehandler-pgtap-perl/);
  match(stderr, /apt-get install -y/);
});

Deno.test("stopChildren stops a command still running under run(), so an interrupted npm test leaves none behind", async () => {
  const script = `
    import { run, stopChildren } from "./scripts/lib/run.mjs";
    const started = Date.now();
    const done = run("sleep", ["30"], { allowFail: true });
    await new Promise((r) => setTimeout(r, 300));
    await Promise.race([stopChildren(), new Promise((r) => setTimeout(r, 5000))]);
    const finished = await Promise.race([done.then(() => "stopped"), new Promise((r) => setTimeout(() => r("still running"), 2000))]);
    console.error(finished, Date.now() - started < 10000);
    process.exit(0);
  `;
  const { code, stderr } = await runScript(["--input-type=module", "-e", script], {});
  assertEquals([code, stderr.trim()], [0, "stopped true"]);
});

Deno.test("an interrupt runs the cleanup registered last (the current benchmark section's), once", async () => {
  const script = `
    import { onInterrupt } from "./scripts/lib/run.mjs";
    onInterrupt(async () => console.error("section 1 cleanup"));
    onInterrupt(async () => console.error("section 2 cleanup"));
    process.kill(process.pid, "SIGTERM");
    await new Promise((r) => setTimeout(r, 5000));
  `;
  const { code, stderr } = await runScript(["--input-type=module", "-e", script], {});
  assertEquals([code, stderr.trim()], [130, "section 2 cleanup"]);
});
