// The local ticker of `npm start`: what pg_cron and pg_net do on hosted Supabase
// (billing.schedule_jobs()), done by the dev stack. Every few seconds it POSTs `{}` with the
// service role key to each HTTP worker. A worker whose call is still running is not called again
// (never two calls of one worker at once); a worker that does not exist yet (404) is skipped
// quietly; any other failure (another non-2xx answer, a network error, a timeout) is one log line.
// Tests never use it: they call the workers directly.
import { ScriptError } from "./run.mjs";

/** The HTTP workers the ticker calls, in order. */
export const TICK_WORKERS = ["reconcile", "provider-sync", "notifications-send", "ai-batch"];

/** Seconds between ticks when SUPABILL_TICK_SECONDS is not set. */
export const DEFAULT_TICK_SECONDS = 5;

/**
 * The tick interval in milliseconds from SUPABILL_TICK_SECONDS: unset or empty is the default, 0
 * turns the ticker off, anything else must be a number of seconds from 0.1 to 3600.
 */
export function tickIntervalMs(value) {
  if (value === undefined || value === null || String(value).trim() === "") return DEFAULT_TICK_SECONDS * 1000;
  const text = String(value).trim();
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (seconds === 0) return 0;
  if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 3600) {
    throw new ScriptError(
      `SUPABILL_TICK_SECONDS must be a number of seconds from 0.1 to 3600, or 0 to turn the ticker off; got "${text}"`,
    );
  }
  return Math.round(seconds * 1000);
}

/**
 * Starts the ticker: every intervalMs, POST `${functionsUrl}/<worker>` for each worker not already
 * being called. Resolves nothing; returns {stop(), stats}. stop() clears the timer and waits for
 * calls still running. stats: {calls, failures, missing} by worker.
 */
export function startTicker({
  functionsUrl,
  serviceRoleKey,
  intervalMs,
  workers = TICK_WORKERS,
  log = (line) => console.error(line),
  fetch: fetchFn = globalThis.fetch,
  timeoutMs = 60_000,
}) {
  if (typeof functionsUrl !== "string" || !/^https?:\/\//.test(functionsUrl)) {
    throw new ScriptError(`the ticker needs the functions URL (http://...), got ${JSON.stringify(functionsUrl)}`);
  }
  if (typeof serviceRoleKey !== "string" || serviceRoleKey === "") {
    throw new ScriptError("the ticker needs the service role key");
  }
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new ScriptError(`the ticker needs an interval above 0 ms, got ${intervalMs}`);
  }
  const base = functionsUrl.replace(/\/+$/, "");
  const running = new Map();
  const stats = { calls: {}, failures: {}, missing: {} };
  const bump = (table, worker) => (table[worker] = (table[worker] ?? 0) + 1);

  async function call(worker) {
    bump(stats.calls, worker);
    try {
      const res = await fetchFn(`${base}/${worker}`, {
        method: "POST",
        headers: { authorization: `Bearer ${serviceRoleKey}`, "content-type": "application/json" },
        body: "{}",
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text().catch(() => "");
      if (res.status === 404) {
        bump(stats.missing, worker);
      } else if (!res.ok) {
        bump(stats.failures, worker);
        log(`ticker: ${worker} answered ${res.status}: ${text.replace(/\s+/g, " ").slice(0, 200)}`);
      }
    } catch (e) {
      bump(stats.failures, worker);
      const reason = e?.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000}s` : (e?.message ?? String(e));
      log(`ticker: ${worker} failed: ${reason}`);
    }
  }

  function tick() {
    for (const worker of workers) {
      if (running.has(worker)) continue;
      running.set(worker, call(worker).finally(() => running.delete(worker)));
    }
  }

  const timer = setInterval(tick, intervalMs);
  return {
    stats,
    async stop() {
      clearInterval(timer);
      await Promise.all(running.values());
    },
  };
}
