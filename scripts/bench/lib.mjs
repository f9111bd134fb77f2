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
