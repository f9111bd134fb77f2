// Helpers for benchmark sections: pgbench runs with per-transaction logs, percentiles, tables.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { pgBinDir } from "../lib/pg.mjs";
import { run } from "../lib/run.mjs";

export const seconds = () => Number(process.env.BENCH_SECONDS ?? 10);

/**
 * The functions' database pool (SUPABILL_DB_POOL_SIZE) in the HTTP benchmarks: twice the
 * database's cores, the usual sizing rule. More connections than that only queue inside Postgres
 * (with 32 on this 2-core machine the webhook p99 was 160 ms; with 4, about 100 ms).
 */
export const dbPoolSize = () => Number(process.env.BENCH_DB_POOL_SIZE ?? 2 * os.availableParallelism());

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * pgbench a script for `seconds` (default `seconds()`) with `clients` clients, in protocol `mode`
 * (extended: parsed and planned per call; prepared: as PostgREST and most drivers send them);
 * returns tps and latency percentiles (ms) read from pgbench's per-transaction log.
 */
export async function pgbench(
  db,
  script,
  { clients = 16, threads = 2, define = {}, seconds: secs = seconds(), mode = "extended" } = {},
) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "supabill-pgbench-"));
  try {
    const file = path.join(dir, "script.sql");
    fs.writeFileSync(file, script);
    const defines = Object.entries(define).flatMap(([k, v]) => ["-D", `${k}=${v}`]);
    const { stdout } = await run(path.join(pgBinDir(), "pgbench"), [
      "-n", "-M", mode, "-c", String(clients), "-j", String(threads), "-T", String(secs),
      "-l", "--log-prefix", path.join(dir, "log"), ...defines, "-f", file,
      "-h", "127.0.0.1", "-p", String(db.port), "-U", "postgres", "postgres",
    ]);
    const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
    const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
    const latencies = [];
    for (const f of fs.readdirSync(dir).filter((f) => f.startsWith("log"))) {
      for (const line of fs.readFileSync(path.join(dir, f), "utf8").split("\n")) {
        const cols = line.split(" ");
        if (cols.length > 2) latencies.push(Number(cols[2]) / 1000);
      }
    }
    latencies.sort((a, b) => a - b);
    return { tps, failed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), n: latencies.length };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A closed-loop load: `clients` concurrent loops call `call(i)` for i = 0 .. total - 1, each call
 * as soon as the loop's previous one answered. Returns what the calls returned, their latencies
 * in ms (sorted), the HTTP statuses seen (for calls that return `{status}`) and calls per second.
 */
export async function closedLoop(total, clients, call) {
  const results = [];
  const latencies = [];
  const statuses = {};
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < total) {
      const i = next++;
      const t0 = performance.now();
      const result = await call(i);
      latencies.push(performance.now() - t0);
      results.push(result);
      if (result?.status !== undefined) statuses[result.status] = (statuses[result.status] ?? 0) + 1;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { results, latencies, statuses, perSecond: total / seconds };
}

/**
 * The load generators' HTTP client: node:http over kept-alive connections. The client shares the
 * two cores with the functions server and Postgres, which a provider's or a browser's client
 * never does, so it must cost as little as it can: Node's fetch spent 0.8 to 1.0 ms of CPU per
 * request here against 0.2 to 0.3 ms for node:http, and in the webhook floor it took more CPU
 * than the server it measured. Resolves with the status and the body as text.
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
export function post(url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      agent,
      headers: { ...headers, "content-length": Buffer.byteLength(body) },
    }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    // A request that hangs fails the run instead of stalling it (fetch gave up after 300 s).
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer from ${url} within 30 s`)));
    req.end(body);
  });
}

export function printTable(title, rows) {
  const keys = Object.keys(rows[0]);
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => String(r[k]).length)));
  const line = (vals) => "| " + vals.map((v, i) => String(v).padEnd(widths[i])).join(" | ") + " |";
  console.log(`\n${title}\n`);
  console.log(line(keys));
  console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
  for (const r of rows) console.log(line(keys.map((k) => r[k])));
}

export const fmt = (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "-");

// -------------------------------------------------------------------------------------------------
// Printing a section's figures, and its correctness checks: the one way every section reports.
//
//   measures("Webhooks (32 in flight)", [
//     { measure: "p99 of a delivery", unit: "ms", floor: 12.1, ours: 48.3, target: { max: 100 } },
//     { measure: "deliveries per second", unit: "/s", floor: 2400, ours: 800, target: { minRatio: 0.25 } },
//   ]);
//   check("every payment applied exactly once", applied === PAYMENTS, `applied ${applied} of ${PAYMENTS}`);
//
// measures() prints one table: each measure with its floor (the same work without the part
// measured, in the same run: the machine is shared, so only the ratio travels between runs),
// ours, the ratio ours / floor, the target and whether it is met. A target is one of:
//   { max: n }       ours <= n (in the measure's unit)
//   { min: n }       ours >= n
//   { ratio: n }     ours / floor <= n (a cost: latency, time)
//   { minRatio: n }  ours / floor >= n (a rate: per second)
//   { added: n }     ours - floor <= n (what a layer adds to a latency)
// or none. A missed target is printed "NOT met" and never fails the run: figures are noisy.
// check() records a wrong result (a correctness check after the load): npm run bench runs the
// other sections, then prints the failed checks and exits 1. A section that throws counts as a
// failed check too (scripts/bench.mjs).
// -------------------------------------------------------------------------------------------------

/** What a target says, for the table. */
function targetText(target, unit) {
  if (!target) return "-";
  const u = unit === "/s" ? "/s" : unit ? ` ${unit}` : "";
  if (target.max !== undefined) return `<= ${target.max}${u}`;
  if (target.min !== undefined) return `>= ${target.min}${u}`;
  if (target.ratio !== undefined) return `<= ${target.ratio}x floor`;
  if (target.minRatio !== undefined) return `>= ${target.minRatio}x floor`;
  if (target.added !== undefined) return `<= floor + ${target.added}${u}`;
  throw new Error(`unknown target ${JSON.stringify(target)}: use max, min, ratio, minRatio or added`);
}

/** Whether ours meets the target (true when there is none). */
export function targetMet({ floor, ours, target }) {
  if (!target) return true;
  if (target.max !== undefined) return ours <= target.max;
  if (target.min !== undefined) return ours >= target.min;
  if (target.ratio !== undefined) return ours / floor <= target.ratio;
  if (target.minRatio !== undefined) return ours / floor >= target.minRatio;
  return ours - floor <= target.added;
}

/**
 * Print measures side by side with their floors: measure, unit, floor, ours, ratio, target, met.
 * A row: { measure, unit, floor, ours, target, digits }; `digits` (the row's, else the option's,
 * default 1) rounds floor and ours; a measure without a floor prints "-" for its floor and ratio.
 * Returns how many targets were missed (for a summary line; never a reason to fail).
 */
export function measures(title, rows, { digits = 1 } = {}) {
  let missed = 0;
  printTable(title, rows.map((r) => {
    const met = targetMet(r);
    if (!met) missed++;
    const hasFloor = Number.isFinite(r.floor);
    return {
      measure: r.measure,
      unit: r.unit ?? "",
      floor: hasFloor ? fmt(r.floor, r.digits ?? digits) : "-",
      ours: fmt(r.ours, r.digits ?? digits),
      ratio: hasFloor && r.floor !== 0 ? `${fmt(r.ours / r.floor, 2)}x` : "-",
      target: targetText(r.target, r.unit),
      met: r.target ? (met ? "met" : "NOT met") : "-",
    };
  }));
  return missed;
}

const failures = [];

/**
 * A correctness check after the load: prints `check ok: name` or `check FAILED: name` with the
 * detail, and remembers a failure so npm run bench exits 1 once every section has run.
 */
export function check(name, ok, detail = "") {
  console.log(ok ? `check ok: ${name}` : `check FAILED: ${name}${detail ? `\n  ${detail}` : ""}`);
  if (!ok) failures.push(name);
  return ok;
}

/** The failed checks so far (scripts/bench.mjs prints them at the end and exits 1). */
export const failedChecks = () => [...failures];
