// npm test: a throwaway cluster on a free port (never the dev database), migrations + seed,
// pgTAP, `supabase db lint`, `supabase db advisors`, the database.types.ts drift check, the
// supabase/schemas/ checks (scripts/lib/schemas.mjs), the upgrade of the previous release with data
// on it (scripts/lib/upgrade.mjs), then
// `deno test` against the local functions server and fake upstreams, and a small fixed seed of the
// simulator (`npm run simulate`, on its own cluster). Each stage prints a line as
// it starts and its count and time as it ends; the run ends with one line `N passed, N failed`.
// Removes its cluster and servers even when interrupted or failing.
//
// `npm test -- <file>...` runs only the pgTAP files (*.sql) and Deno test files (*.ts) named,
// without the checks: for working on one part; CI runs everything.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import fs from "node:fs";
import path from "node:path";
import { ensureNodeDeps } from "./lib/deps.mjs";
import { loadOrCreateKeys } from "./lib/keys.mjs";
import { ensurePgPackages, tempCluster } from "./lib/pg.mjs";
import { pgTapFiles, runPgTap } from "./lib/pgtap.mjs";
import { bin, main, onInterrupt, root, run, ScriptError, stopChildren } from "./lib/run.mjs";
import { buildBoth, declarationProblems, defaultSchemasDir, orderDifferences, ruleMapProblems, schemaDiff } from "./lib/schemas.mjs";
import { startLocalStack } from "./lib/stack.mjs";
import { LAST_RELEASED_MIGRATION, upgradeWithData } from "./lib/upgrade.mjs";

const tally = { passed: 0, failed: 0 };
// PGSSLMODE=disable: the local cluster has no TLS, and the CLI would print a banner about it into stdout.
const cli = { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1", NO_COLOR: "1", PGSSLMODE: "disable" };

/**
 * Run one stage: a line as it starts, then its own count and time as it ends (the counts are
 * what the stage added to the tally).
 */
async function stage(name, fn) {
  const before = { ...tally };
  const started = Date.now();
  console.log(`\n# ${name} ...`);
  await fn();
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const passed = tally.passed - before.passed;
  const failed = tally.failed - before.failed;
  console.log(`# ${name}: ${passed} passed, ${failed} failed (${seconds} s)`);
}

function record(name, ok, detail = "") {
  tally[ok ? "passed" : "failed"]++;
  console.log(`${ok ? "ok" : "not ok"} - ${name}${detail ? `\n${detail}` : ""}`);
}

/** pgTAP over supabase/tests/database (scripts/lib/pgtap.mjs); every assertion counts. */
async function pgTap(db, files) {
  const result = await runPgTap(db.url, files, { tee: true });
  if (!result.ok) process.stdout.write(result.stderr);
  tally.passed += result.passed;
  tally.failed += result.failed;
}

/** A finding at level WARN or ERROR in the CLI's JSON output (lint: warning/error; advisors: WARN/ERROR). */
const SERIOUS_FINDING = /"level"\s*:\s*"(warn|warning|error)"/i;

/**
 * `supabase db lint` and `supabase db advisors` ask the CLI itself to fail at WARN (--level and
 * --fail-on): the exit code decides, and a WARN/ERROR finding in the output fails too, in case a
 * CLI version stops honouring --fail-on.
 */
async function cliCheck(name, args) {
  const { code, stdout, stderr } = await run(bin("supabase"), args, { env: cli, allowFail: true });
  const clean = code === 0 && !SERIOUS_FINDING.test(stdout + stderr);
  record(name, clean, clean ? "" : stdout + stderr);
}

const lint = (db) =>
  cliCheck("supabase db lint reports nothing at ERROR or WARN", [
    "db", "lint", `--remote=${db.url}`, "--schema", "public,billing", "--level", "warning", "--fail-on", "warning",
  ]);

/**
 * The advisors' findings accepted on purpose, each for one object, with why (the object's own
 * comment says more). Any other finding at WARN or ERROR fails the check.
 */
const ACCEPTED_ADVISOR_FINDINGS = [
  {
    name: "function_search_path_mutable",
    object: "billing.effective_plan_rows",
    why: "PostgreSQL inlines no function that has a SET clause, and the plan in effect is inlined into every reader; " +
      "its names are schema-qualified and its operators the built-in ones",
  },
];

/** The findings in the CLI's JSON output (an array, its "[" at the start of a line), or null. */
function advisorFindings(output) {
  const start = output.search(/^\[/m);
  const end = output.lastIndexOf("]");
  if (start < 0 || end < start) return null;
  try {
    return JSON.parse(output.slice(start, end + 1));
  } catch {
    return null;
  }
}

const accepted = (f) =>
  ACCEPTED_ADVISOR_FINDINGS.some((a) => a.name === f.name && a.object === `${f.metadata?.schema}.${f.metadata?.name}`);

/**
 * `supabase db advisors` at WARN, failing at WARN (--fail-on): clean when the CLI passes, or when
 * every WARN or ERROR finding it printed is an accepted one (ACCEPTED_ADVISOR_FINDINGS).
 */
async function advisors(db) {
  const { code, stdout, stderr } = await run(bin("supabase"), [
    "db", "advisors", `--remote=${db.url}`, "--level", "warn", "--fail-on", "warn",
  ], { env: cli, allowFail: true });
  const output = stdout + stderr;
  const serious = (advisorFindings(output) ?? []).filter((f) => /^(warn|warning|error)$/i.test(String(f.level)));
  const clean = code === 0
    ? !serious.some((f) => !accepted(f)) && (serious.length > 0 || !SERIOUS_FINDING.test(output))
    : serious.length > 0 && serious.every(accepted);
  record("supabase db advisors reports nothing at ERROR or WARN but the accepted findings", clean, clean ? "" : output);
}

/**
 * The INFO findings that are about the schema's layout, not about a fresh database's statistics
 * (unused indexes are INFO on every new database): a table with RLS and no policy means a
 * service-only table sits where the API looks.
 */
async function advisorsLayout(db) {
  const { stdout, stderr } = await run(bin("supabase"), ["db", "advisors", `--remote=${db.url}`, "--level", "info"], {
    env: cli,
    allowFail: true,
  });
  const found = /"name"\s*:\s*"rls_enabled_no_policy"/.test(stdout + stderr);
  record("supabase db advisors reports no table with RLS but no policy (INFO)", !found, found ? stdout + stderr : "");
}

async function typesDrift(db) {
  const file = path.join(root, "supabase", "functions", "_shared", "database.types.ts");
  const { stdout } = await run(bin("supabase"), ["gen", "types", "typescript", `--remote=${db.url}`, "--schema", "public,billing"], {
    env: cli,
  });
  const committed = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  const same = committed.trim() === stdout.trim();
  record(
    "database.types.ts matches `supabase gen types typescript`",
    same,
    same ? "" : "  regenerate: npx supabase gen types typescript --remote=<db url> --schema public,billing > supabase/functions/_shared/database.types.ts",
  );
}

/** Every function type-checks and lints clean, as `supabase functions deploy` would bundle it. */
async function denoCheck() {
  const check = await run(bin("deno"), ["check", "supabase/functions", "scripts/functions-server.ts"], {
    env: { NO_COLOR: "1" },
    allowFail: true,
  });
  record("deno check: every function type-checks", check.code === 0, check.code ? check.stderr.slice(-3000) : "");
  const lint = await run(bin("deno"), ["lint", "supabase/functions", "tests", "scripts"], {
    env: { NO_COLOR: "1" },
    allowFail: true,
  });
  record("deno lint: functions, tests and scripts are clean", lint.code === 0, lint.code ? lint.stdout + lint.stderr : "");
}

async function denoTests(env, files) {
  const { code, stdout, stderr } = await run(bin("deno"), ["test", "-A", ...files], {
    env: { ...env, NO_COLOR: "1" },
    allowFail: true,
    tee: true,
  });
  if (code !== 0) process.stdout.write(stderr);
  const summary = /(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(stdout);
  const passed = Number(summary?.[1] ?? 0);
  let failed = Number(summary?.[2] ?? 0);
  if (code !== 0 && failed === 0) failed = 1;
  tally.passed += passed;
  tally.failed += failed;
}

/**
 * A small fixed seed of the simulator (scripts/simulate.mjs, its own cluster and stack): one
 * test, passed when it ends with no invariant violated. The flags leave out what the current
 * code is known to get wrong (docs/simulator.md, "Known violations"); drop them once fixed.
 */
export const SIMULATION_ARGS = [
  "--seed", "3", "--orgs", "5", "--months", "3",
];

async function simulation() {
  const { code, stdout, stderr } = await run("node", [path.join(root, "scripts", "simulate.mjs"), ...SIMULATION_ARGS], {
    allowFail: true,
    tee: true,
  });
  record(`npm run simulate -- ${SIMULATION_ARGS.join(" ")}: no invariant violated`, code === 0, code ? stderr.slice(-3000) : "");
  return stdout;
}

/**
 * supabase/schemas/ against the migrations (scripts/lib/schemas.mjs, shared with npm run db:diff):
 * both built as new databases of the test cluster; their diff empty; column and enum value order
 * equal; each object declared once and no alter table, create or replace or drop in the schemas;
 * the README's rule map naming schema files and the functions declared in them.
 */
async function schemas(db) {
  const dir = defaultSchemasDir();
  const declared = declarationProblems(dir);
  record(
    "supabase/schemas/ declares each object once, tables whole (no alter table, create or replace, drop)",
    declared.length === 0,
    declared.join("\n"),
  );
  const rules = ruleMapProblems(fs.readFileSync(path.join(root, "README.md"), "utf8"), { schemasDir: dir });
  record("README's \"Where each rule lives\" names schema files and functions declared in them", rules.length === 0, rules.join("\n"));
  let built;
  try {
    built = await buildBoth(db.url, { schemasDir: dir });
  } catch (e) {
    if (!(e instanceof ScriptError)) throw e;
    record("supabase/schemas/ and the migrations each build a database", false, e.message);
    return;
  }
  try {
    const diff = await schemaDiff(built.migrationsUrl, built.schemasUrl);
    record(
      "the migrations build what supabase/schemas/ declares (supabase db diff, public and billing)",
      diff === "",
      diff && `  the migration that is missing (npm run db:diff -- <name> writes it):\n${diff}`,
    );
    const order = await orderDifferences(built.migrationsUrl, built.schemasUrl);
    record(
      "column and enum value order equal in both databases",
      order.length === 0,
      order.length ? `  ${order[0]}${order.length > 1 ? `\n  (and ${order.length - 1} more)` : ""}` : "",
    );
  } finally {
    await built.drop();
  }
}

/** @type {import("./lib/pg.mjs").Cluster | undefined} */
let upgradeCluster;

/**
 * Upgrade with data (scripts/lib/upgrade.mjs): the previous release (migrations up to
 * LAST_RELEASED_MIGRATION) with the seed and supabase/tests/upgrade/fixtures.sql on it, then the
 * newer migrations by supabase db push; the result must equal supabase/schemas/ and keep the
 * fixture rows (supabase/tests/upgrade/checks.sql) and pass the whole pgTAP suite. One record per
 * step. A cluster of its own, so that the upgraded database is the one pg_cron works in
 * (cron.database_name), as on a hosted project: the pgTAP suite checks the jobs.
 */
async function upgrade() {
  upgradeCluster = await tempCluster("upgrade");
  try {
    await upgradeCluster.init();
    await upgradeCluster.start();
    const outcomes = await upgradeWithData(upgradeCluster.url, { database: "postgres" });
    for (const o of outcomes) record(o.name, o.ok, o.ok ? "" : `  ${o.detail.split("\n").join("\n  ")}`);
  } finally {
    await upgradeCluster.remove();
    upgradeCluster = undefined;
  }
}

/** What to run: everything, or only the files named on the command line (no checks then). */
function selection(args) {
  if (args.length === 0) {
    return { sql: pgTapFiles(), ts: ["tests/"], checks: true };
  }
  const files = args.map((a) => path.resolve(a));
  for (const f of files) {
    if (!fs.existsSync(f) || !/\.(sql|ts)$/.test(f)) throw new ScriptError(`not a pgTAP (.sql) or Deno test (.ts) file: ${f}`);
  }
  return { sql: files.filter((f) => f.endsWith(".sql")), ts: files.filter((f) => f.endsWith(".ts")), checks: false };
}

main(async () => {
  const only = selection(process.argv.slice(2));
  await ensureNodeDeps();
  await ensurePgPackages();
  const db = await tempCluster("test");
  const cleanup = async () => {
    await stopChildren();
    await upgradeCluster?.remove();
    await db.remove();
  };
  onInterrupt(cleanup);
  try {
    await db.init();
    await db.start();
    await db.prepare();
    console.log(`# test database ${db.url}`);

    if (only.sql.length) await stage(`pgTAP (${only.sql.length} files)`, () => pgTap(db, only.sql));
    if (only.checks) {
      await stage("checks (lint, advisors, types, deno check and lint)", async () => {
        await lint(db);
        await advisors(db);
        await advisorsLayout(db);
        await typesDrift(db);
        await denoCheck();
      });
      await stage("schemas (supabase/schemas/ against the migrations)", () => schemas(db));
      await stage(`upgrade with data (from the release ending ${LAST_RELEASED_MIGRATION})`, upgrade);
    }
    if (only.checks) await stage("simulation (a small fixed seed)", simulation);
    if (only.ts.length === 0) return;

    const keys = await loadOrCreateKeys(path.join(db.dir, "keys.json"));
    const { env } = await startLocalStack({
      db,
      keys,
      extraEnv: { SUPABILL_TEST_PRIVATE_JWK: JSON.stringify(keys.privateJwk) },
    });
    await stage("Deno tests (functions, scripts, fakes)", () => denoTests(env, only.ts));
  } finally {
    await cleanup();
  }
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exitCode = tally.failed > 0 ? 1 : 0;
});
