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

Deno.test("the local ticker POSTs each worker with the service key, never two calls of one worker at once, 404s quiet, failures one line each", async () => {
  // A tiny functions server: reconcile answers slowly (longer than a tick), provider-sync does not
  // exist yet (404), notifications-send fails (500). The ticker runs for a bounded time, then stops.
  const script = `
    import http from "node:http";
    import { startTicker } from "./scripts/lib/ticker.mjs";
    const calls = {}, running = {}, maxRunning = {}, auth = new Set(), bodies = new Set();
    const server = http.createServer((req, res) => {
      const worker = req.url.replace("/functions/v1/", "");
      calls[worker] = (calls[worker] ?? 0) + 1;
      running[worker] = (running[worker] ?? 0) + 1;
      maxRunning[worker] = Math.max(maxRunning[worker] ?? 0, running[worker]);
      auth.add(req.method + " " + req.headers.authorization);
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        bodies.add(body);
        const answer = (status, text) => setTimeout(() => {
          running[worker]--;
          res.writeHead(status, { "content-type": "application/json" }).end(text);
        }, worker === "reconcile" ? 120 : 0);
        if (worker === "reconcile") answer(200, '{"checked":0}');
        else if (worker === "provider-sync") answer(404, '{"error":"not found"}');
        else if (worker === "ai-batch") answer(200, '{"claimed":0}');
        else answer(500, '{"code":"boom"}');
      });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const lines = [];
    const ticker = startTicker({
      functionsUrl: "http://127.0.0.1:" + server.address().port + "/functions/v1/",
      serviceRoleKey: "service-key",
      intervalMs: 20,
      log: (line) => lines.push(line),
    });
    // Runs until each worker was called often enough (a loaded machine ticks late, never less
    // often per tick), within a deadline; the time it took bounds how often reconcile could run.
    const started = Date.now();
    const enough = () => ["provider-sync", "notifications-send", "ai-batch"].every((w) => (calls[w] ?? 0) >= 5) &&
      (calls.reconcile ?? 0) >= 2;
    while (!enough() && Date.now() - started < 10000) await new Promise((r) => setTimeout(r, 20));
    const elapsed = Date.now() - started;
    await ticker.stop();
    const after = JSON.stringify(calls);
    await new Promise((r) => setTimeout(r, 100));
    server.close();
    console.log(JSON.stringify({ calls, maxRunning, auth: [...auth], bodies: [...bodies], lines, stats: ticker.stats,
                                 stoppedCleanly: after === JSON.stringify(calls), elapsed }));
  `;
  const out = await new Deno.Command(nodeBin, {
    args: ["--input-type=module", "-e", script],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  const ok = (cond: boolean, what: string) => assertEquals(cond, true, `${what}: ${JSON.stringify(r)}`);
  // A reconcile call takes 120 ms and the next starts only after it ends: at most one per 120 ms.
  ok(r.calls.reconcile >= 2 && r.calls.reconcile <= Math.ceil(r.elapsed / 120) + 1,
    "reconcile is called again after each call ends, never more often than its calls take");
  ok(r.calls["provider-sync"] >= 5 && r.calls["notifications-send"] >= 5, "the fast workers are called every tick");
  ok(r.calls["ai-batch"] >= 5, "the AI batch worker is called every tick");
  assertEquals(r.maxRunning, { reconcile: 1, "provider-sync": 1, "notifications-send": 1, "ai-batch": 1 }, "never two calls of one worker");
  assertEquals([r.auth, r.bodies], [["POST Bearer service-key"], ["{}"]]);
  ok(r.lines.length === r.calls["notifications-send"], "one line per failure");
  ok(r.lines.every((l: string) => l === 'ticker: notifications-send answered 500: {"code":"boom"}'), "only the failing worker is logged");
  assertEquals(r.stats.missing["provider-sync"], r.calls["provider-sync"]);
  ok(r.stoppedCleanly, "no call after stop()");
});

Deno.test("SUPABILL_TICK_SECONDS: the default, 0 for off, and a clear error for anything else", async () => {
  const script = `
    import { tickIntervalMs } from "./scripts/lib/ticker.mjs";
    const out = [undefined, "", "0", "2", "0.5"].map((v) => tickIntervalMs(v));
    for (const bad of ["-1", "abc", "5s", "0.01", "7200"]) {
      try { tickIntervalMs(bad); out.push("accepted " + bad); } catch (e) { out.push(e.message); }
    }
    console.log(JSON.stringify(out));
  `;
  const out = await new Deno.Command(nodeBin, {
    args: ["--input-type=module", "-e", script],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals(r.slice(0, 5), [5000, 5000, 0, 2000, 500]);
  for (const [i, bad] of ["-1", "abc", "5s", "0.01", "7200"].entries()) {
    match(r[5 + i], new RegExp(`^SUPABILL_TICK_SECONDS must be a number of seconds .* got "${bad.replace(".", "\\.")}"$`));
  }
});

Deno.test("the local stack's state: the checkout's .supabill, or under /var/tmp when the postgres user cannot enter the checkout", async () => {
  const { chooseStateDir } = await import("../scripts/lib/pg.mjs");
  const asked: string[] = [];
  const can = (answer: boolean) => (dir: string) => {
    asked.push(dir);
    return answer;
  };
  assertEquals(chooseStateDir("/srv/supabill", { override: undefined, asRoot: true, postgresCanEnter: can(true) }),
    "/srv/supabill/.supabill");
  const private1 = chooseStateDir("/root/work/supabill", { override: undefined, asRoot: true, postgresCanEnter: can(false) });
  const private2 = chooseStateDir("/root/other/supabill", { override: undefined, asRoot: true, postgresCanEnter: can(false) });
  match(private1, /^\/var\/tmp\/supabill-[0-9a-f]{12}$/);
  assertEquals(private1 === private2, false, "each checkout keeps its own state");
  assertEquals(
    chooseStateDir("/root/work/supabill", { override: undefined, asRoot: true, postgresCanEnter: can(false) }),
    private1,
    "the same checkout always gets the same folder",
  );
  assertEquals(chooseStateDir("/root/work/supabill", { override: "/data/sb", asRoot: true, postgresCanEnter: can(false) }),
    "/data/sb", "SUPABILL_STATE_DIR wins");
  asked.length = 0;
  assertEquals(chooseStateDir("/home/me/supabill", { override: undefined, asRoot: false, postgresCanEnter: can(false) }),
    "/home/me/supabill/.supabill", "as a normal user the cluster runs as that user: the checkout's folder");
  assertEquals(asked, [], "the postgres user is asked about only as root");
});
