// Upgrade with data: what the equivalence of supabase/schemas/ and the migrations cannot see, a
// migration that works on an empty database and fails (or loses rows) on a deployed one.
//
// 1. the previous release: the migrations up to LAST_RELEASED_MIGRATION, by `supabase db push`,
//    on a new database (compat.sql and local-settings.sql first, as every local database);
// 2. data on it: supabase/seed.sql as that release shipped it and supabase/tests/upgrade/fixtures.sql (rows that touch what
//    the newer migrations change), as psql files;
// 3. the newer migrations, by `supabase db push` again, which applies only those it has not
//    applied: the path a deployed project takes;
// 4. the result equals what supabase/schemas/ declares (schemaDiff and orderDifferences of
//    scripts/lib/schemas.mjs), and supabase/tests/upgrade/checks.sql, a query answering rows
//    (check text, ok boolean, detail text), finds the fixture rows intact.
//
// Every folder and file is a parameter, so tests/upgrade.test.ts points it at small toy releases.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { root, ScriptError } from "./run.mjs";
import {
  buildFromSchemas,
  createDatabase,
  defaultMigrationsDir,
  defaultSchemasDir,
  dropDatabase,
  orderDifferences,
  prepareLocal,
  psql,
  pushMigrations,
  schemaDiff,
} from "./schemas.mjs";

/**
 * The last migration of the previous release: everything after it (by name) is new in this
 * release and is what the upgrade check applies over data. Move it forward when a release is cut.
 */
export const LAST_RELEASED_MIGRATION = "20261201001200_ai_openai_compat.sql";

const upgradeDir = path.join(root, "supabase", "tests", "upgrade");

/**
 * supabase/seed.sql as the previous release shipped it: the seed of the commit that added
 * LAST_RELEASED_MIGRATION, written to a temporary file. Today's seed may fill tables only the
 * newer migrations create (the credit events, the AI model prices), which the previous release
 * cannot take. Without git history (an exported tree) it is today's seed.
 */
function releasedSeed() {
  const current = path.join(root, "supabase", "seed.sql");
  try {
    const git = (...args) => execFileSync("git", ["-C", root, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const commit = git("log", "--diff-filter=A", "--format=%H", "--", `supabase/migrations/${LAST_RELEASED_MIGRATION}`)
      .trim().split("\n").pop();
    if (!commit) return current;
    const file = path.join(os.tmpdir(), `supabill-seed-${commit.slice(0, 12)}.sql`);
    fs.writeFileSync(file, git("show", `${commit}:supabase/seed.sql`));
    return file;
  } catch {
    return current;
  }
}

/** What is loaded on the previous release, in order: its seed, then the fixtures. */
export const defaultDataFiles = () => [releasedSeed(), path.join(upgradeDir, "fixtures.sql")];
/** The query run after the upgrade: rows (check, ok, detail). */
export const defaultChecksFile = () => path.join(upgradeDir, "checks.sql");

/**
 * The migrations of a folder split at `lastReleased` (a file name in it): the released ones, up
 * to and including it, and the newer ones, each in name order.
 * @param {string} migrationsDir
 * @param {string} lastReleased
 */
export function splitMigrations(migrationsDir, lastReleased) {
  const files = fs.readdirSync(migrationsDir).filter((f) => /^\d{14}_.*\.sql$/.test(f)).sort();
  const at = files.indexOf(lastReleased);
  if (at < 0) throw new ScriptError(`${lastReleased} (the last released migration) is not in ${migrationsDir}`);
  return { released: files.slice(0, at + 1), newer: files.slice(at + 1) };
}

/**
 * @typedef {{ name: string, ok: boolean, detail: string }} Outcome
 */

/** @param {unknown} e */
const message = (e) => (e instanceof Error ? e.message : String(e)).trim();

/**
 * Build the previous release, load the data, upgrade, compare with the schemas, run the checks.
 * Returns one outcome per step (a failed step ends the list: what follows it cannot be judged).
 * The databases and the temporary migrations folder are removed in every case.
 * @param {string} adminUrl any database on the server to use (usually postgres)
 * @param {{ migrationsDir?: string, schemasDir?: string, lastReleased?: string, dataFiles?: string[],
 *           checksFile?: string }} [opts]
 * @returns {Promise<Outcome[]>}
 */
export async function upgradeWithData(adminUrl, {
  migrationsDir = defaultMigrationsDir(),
  schemasDir = defaultSchemasDir(),
  lastReleased = LAST_RELEASED_MIGRATION,
  dataFiles = defaultDataFiles(),
  checksFile = defaultChecksFile(),
} = {}) {
  const { released, newer } = splitMigrations(migrationsDir, lastReleased);
  /** @type {Outcome[]} */
  const out = [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "supabill-upgrade-"));
  const stage = path.join(work, "supabase", "migrations");
  fs.mkdirSync(stage, { recursive: true });
  const copy = (/** @type {string[]} */ files) => {
    for (const f of files) fs.copyFileSync(path.join(migrationsDir, f), path.join(stage, f));
  };
  const name = `supabill_u_${randomBytes(4).toString("hex")}`;
  const url = await createDatabase(adminUrl, name);
  /** @type {{ url: string, drop: () => Promise<void> } | undefined} */
  let schemas;
  try {
    const shown = dataFiles.map((f) => path.relative(root, f) || f).join(", ");
    try {
      await prepareLocal(url);
      copy(released);
      await pushMigrations(url, stage);
      await psql(url, dataFiles.flatMap((f) => ["-f", f]));
      out.push({ name: `the previous release (${released.length} migrations up to ${lastReleased}) takes ${shown}`, ok: true, detail: "" });
    } catch (e) {
      out.push({ name: `the previous release (up to ${lastReleased}) builds and takes ${shown}`, ok: false, detail: message(e) });
      return out;
    }
    try {
      copy(newer);
      await pushMigrations(url, stage);
      out.push({ name: `supabase db push applies the ${newer.length} newer migrations over that data`, ok: true, detail: "" });
    } catch (e) {
      out.push({ name: `supabase db push applies the ${newer.length} newer migrations over that data`, ok: false, detail: message(e) });
      return out;
    }
    try {
      schemas = await buildFromSchemas(adminUrl, schemasDir);
      const diff = await schemaDiff(url, schemas.url);
      const order = await orderDifferences(url, schemas.url);
      const ok = diff === "" && order.length === 0;
      out.push({
        name: "the upgraded database is what supabase/schemas/ declares (diff, column and enum value order)",
        ok,
        detail: ok ? "" : [diff, ...order].filter(Boolean).join("\n"),
      });
    } catch (e) {
      out.push({ name: "the upgraded database is what supabase/schemas/ declares", ok: false, detail: message(e) });
    }
    try {
      const { stdout } = await psql(url, ["-A", "-t", "-F", "\t", "-f", checksFile]);
      const rows = stdout.split("\n").filter(Boolean).map((l) => l.split("\t"));
      if (rows.length === 0) throw new ScriptError(`${checksFile} answered no row`);
      for (const [check, ok, detail = ""] of rows) out.push({ name: `after the upgrade: ${check}`, ok: ok === "t", detail });
    } catch (e) {
      out.push({ name: `after the upgrade: ${path.basename(checksFile)} runs`, ok: false, detail: message(e) });
    }
    return out;
  } finally {
    await schemas?.drop();
    await dropDatabase(adminUrl, name);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
