// The pgTAP suite of supabase/tests/database run with pg_prove on one database: the pgTAP stage of
// npm test (scripts/test.mjs) on the database the migrations and the seed build, and the upgrade
// check (scripts/lib/upgrade.mjs) on the database a previous release upgraded with rows in it.
import fs from "node:fs";
import path from "node:path";
import { root, run } from "./run.mjs";
import { psql } from "./schemas.mjs";

export const pgTapDir = path.join(root, "supabase", "tests", "database");

/** Every pgTAP file of supabase/tests/database, in name order. */
export const pgTapFiles = () =>
  fs.readdirSync(pgTapDir).filter((f) => f.endsWith(".test.sql")).sort().map((f) => path.join(pgTapDir, f));

/**
 * @typedef {{ total: number, passed: number, failed: number, ok: boolean, stdout: string, stderr: string }} PgTapResult
 */

/** The shared helper schema `tests` of the pgTAP files, applied to test databases only. */
export const pgTapHelpers = () => path.join(root, "scripts", "sql", "test-helpers.sql");

/**
 * pg_prove over `files` on the database at `url`, after `helpers` (scripts/sql/test-helpers.sql;
 * null for none). Every assertion counts; a file that dies (bad plan, SQL error) without a failed
 * assertion counts as one failure.
 * @param {string} url
 * @param {string[]} files
 * @param {{ tee?: boolean, helpers?: string | null }} [opts] tee: print pg_prove's output as it runs
 * @returns {Promise<PgTapResult>}
 */
export async function runPgTap(url, files, { tee = false, helpers = pgTapHelpers() } = {}) {
  if (helpers) await psql(url, ["-f", helpers]);
  const { code, stdout, stderr } = await run("pg_prove", ["-d", url, "--timer", ...files], { allowFail: true, tee });
  const total = Number(/Tests=(\d+)/.exec(stdout)?.[1] ?? 0);
  let failed = [...stdout.matchAll(/Failed (\d+)\/\d+ subtests/g)].reduce((n, m) => n + Number(m[1]), 0);
  if (code !== 0 && failed === 0) failed = 1;
  return { total, passed: Math.max(total - failed, 0), failed, ok: code === 0, stdout, stderr };
}

/**
 * What to show of a failed run: pg_prove's lines about the files that did not pass (its per-file
 * lines other than "ok", the diagnostics, the summary report) and its stderr.
 * @param {PgTapResult} result
 */
export function pgTapFailures(result) {
  const lines = result.stdout.split("\n").filter((l) => l.trim() !== "" && !/\.\. ok\b/.test(l) && !/^(All tests successful|Files=|Result:)/.test(l));
  return [...lines, result.stderr.trim()].filter(Boolean).join("\n");
}
