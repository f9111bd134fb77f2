// Upgrade with data: what the equivalence of supabase/schemas/ and the migrations cannot see, a
// migration that works on an empty database and fails (or loses rows) on a deployed one.
//
// 1. the previous release: the migrations up to LAST_RELEASED_MIGRATION, by `supabase db push`,
//    on a new database (compat.sql and local-settings.sql first, as every local database);
// 2. data on it: supabase/tests/upgrade/fixtures.sql (rows that touch what the newer migrations
//    change, plans included: the current supabase/seed.sql may name what the release lacks);
// 3. the newer migrations, by `supabase db push` again, which applies only those it has not
//    applied: the path a deployed project takes;
//    (none right after a release is cut: then there is nothing to apply, and the steps below
//    check the release itself), then the current supabase/seed.sql, as `npm run db:reset` loads
//    it after the migrations (its inserts do nothing where a row is there already);
// 4. the result equals what supabase/schemas/ declares (schemaDiff and orderDifferences of
//    scripts/lib/schemas.mjs), supabase/tests/upgrade/checks.sql, a query answering rows
//    (check text, ok boolean, detail text), finds the fixture rows intact, and the whole pgTAP
//    suite (supabase/tests/database, scripts/lib/pgtap.mjs) passes on it, rows and all.
//
// Which migrations are released is supabase/tests/upgrade/released.sha256: one line
// "<sha256>  <file>" per released migration, in order (`sha256sum -c` reads it from
// supabase/migrations). It is what deployed projects applied, so those files are never edited:
// releasedProblems() says which one was. It lives here, not in supabase/migrations, because
// `supabase db push` warns about every file there that is not <timestamp>_name.sql.
// `npm run db:diff -- --release` writes it when a release is cut.
//
// Every folder and file is a parameter, so tests/upgrade.test.ts points it at small toy releases.
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { pgTapFailures, pgTapFiles, pgTapHelpers, runPgTap } from "./pgtap.mjs";
import { root, ScriptError } from "./run.mjs";
import {
  buildFromSchemas,
  createDatabase,
  databaseUrl,
  defaultMigrationsDir,
  defaultSchemasDir,
  dropDatabase,
  orderDifferences,
  prepareLocal,
  psql,
  pushMigrations,
  schemaDiff,
} from "./schemas.mjs";

const upgradeDir = path.join(root, "supabase", "tests", "upgrade");
/** The manifest of the released migrations. */
export const defaultReleasedFile = () => path.join(upgradeDir, "released.sha256");
/** What is loaded on the previous release, in order. */
export const defaultDataFiles = () => [path.join(upgradeDir, "fixtures.sql")];
/** What is loaded after the newer migrations: the current seed. */
export const defaultSeedFiles = () => [path.join(root, "supabase", "seed.sql")];
/** The query run after the upgrade: rows (check, ok, detail). */
export const defaultChecksFile = () => path.join(upgradeDir, "checks.sql");

const MIGRATION = /^\d{14}_.*\.sql$/;

/** @param {string} file */
const sha256 = (file) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/**
 * The released migrations a manifest lists, in its order: { sha256, file } each.
 * @param {string} manifestFile
 */
export function readReleased(manifestFile = defaultReleasedFile()) {
  if (!fs.existsSync(manifestFile)) throw new ScriptError(`${manifestFile} (the released migrations) is missing`);
  return fs.readFileSync(manifestFile, "utf8").split("\n").filter((l) => l.trim() !== "").map((line, i) => {
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
    if (!m || !MIGRATION.test(m[2])) {
      throw new ScriptError(`${manifestFile}:${i + 1}: not "<sha256>  <timestamp>_name.sql": ${line}`);
    }
    return { sha256: m[1], file: m[2] };
  });
}

/**
 * The manifest of `files` (migration file names of `migrationsDir`), in name order.
 * @param {string} migrationsDir
 * @param {string[]} files
 */
export function releasedManifest(migrationsDir, files) {
  return [...files].sort().map((f) => `${sha256(path.join(migrationsDir, f))}  ${f}\n`).join("");
}

/**
 * What breaks the rule that a released migration is never edited, removed or followed by an
 * older one: each problem a sentence naming the file. Empty when every migration the manifest
 * lists is in `migrationsDir` byte for byte, in name order, and every other migration sorts after
 * the last released one (a deployed project would never apply a new migration dated before it).
 * @param {{ migrationsDir?: string, manifestFile?: string }} [opts]
 * @returns {string[]}
 */
export function releasedProblems({ migrationsDir = defaultMigrationsDir(), manifestFile = defaultReleasedFile() } = {}) {
  const released = readReleased(manifestFile);
  if (released.length === 0) return [`${path.basename(manifestFile)} lists no migration`];
  const problems = [];
  const names = released.map((r) => r.file);
  if (names.join("\n") !== [...names].sort().join("\n")) problems.push(`${path.basename(manifestFile)} is not in name order`);
  for (const { sha256: expected, file } of released) {
    const at = path.join(migrationsDir, file);
    if (!fs.existsSync(at)) {
      problems.push(`${file} is released and missing from supabase/migrations: released migrations are never removed or renamed`);
    } else if (sha256(at) !== expected) {
      problems.push(`${file} was edited after its release: released migrations are never edited; write a new migration ` +
        `(edit supabase/schemas/, then npm run db:diff -- <name>)`);
    }
  }
  const last = names[names.length - 1];
  const listed = new Set(names);
  for (const f of fs.readdirSync(migrationsDir).filter((f) => MIGRATION.test(f)).sort()) {
    if (f < last && !listed.has(f)) {
      problems.push(`${f} is not released but sorts before ${last}, the last released migration: ` +
        `a deployed project would never apply it; give it a timestamp after that one`);
    }
  }
  return problems;
}

/**
 * The last migration of the previous release (the last line of released.sha256): everything
 * after it (by name) is new in this release and is what the upgrade check applies over data.
 * `npm run db:diff -- --release` moves it when a release is cut.
 */
export const LAST_RELEASED_MIGRATION = readReleased().at(-1)?.file ?? "";

/**
 * Migration files that share a version (the 14-digit prefix `supabase db push` applies them by):
 * of two files with one version only one is ever applied. Branches drafted side by side by
 * `npm run db:diff` can draw the same version; rename the later one to a version after both.
 * Returns one line per clash, empty when every version is unique.
 * @param {string[]} files migration file names
 */
export function versionClashes(files) {
  /** @type {Map<string, string[]>} */
  const byVersion = new Map();
  for (const f of files.filter((x) => /^\d{14}_.*\.sql$/.test(x)).sort()) {
    byVersion.set(f.slice(0, 14), [...(byVersion.get(f.slice(0, 14)) ?? []), f]);
  }
  return [...byVersion].filter(([, names]) => names.length > 1)
    .map(([version, names]) => `version ${version} is shared by ${names.join(" and ")}: only one would be applied`);
}

/**
 * The migrations of a folder split at `lastReleased` (a file name in it): the released ones, up
 * to and including it, and the newer ones, each in name order.
 * @param {string} migrationsDir
 * @param {string} lastReleased
 */
export function splitMigrations(migrationsDir, lastReleased) {
  const files = fs.readdirSync(migrationsDir).filter((f) => MIGRATION.test(f)).sort();
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
 * Build the previous release, load the data, upgrade, compare with the schemas, run the checks,
 * then `pgTapFiles` ([] for none), after `pgTapHelpers` (null for none). Returns one outcome per
 * step (a failed step ends the list: what follows it cannot be judged). The release is built in
 * a new database of the server, dropped afterwards, or in `database`, an empty one that is kept
 * (a cluster's `postgres`, the one pg_cron works in, which the pgTAP suite needs: npm test gives
 * the stage a cluster of its own). The temporary migrations folder is removed in every case.
 * @param {string} adminUrl any database on the server to use (usually postgres)
 * @param {{ migrationsDir?: string, schemasDir?: string, lastReleased?: string, dataFiles?: string[],
 *           seedFiles?: string[], checksFile?: string, pgTapFiles?: string[], pgTapHelpers?: string | null,
 *           database?: string }} [opts]
 * @returns {Promise<Outcome[]>}
 */
export async function upgradeWithData(adminUrl, {
  migrationsDir = defaultMigrationsDir(),
  schemasDir = defaultSchemasDir(),
  lastReleased = LAST_RELEASED_MIGRATION,
  dataFiles = defaultDataFiles(),
  seedFiles = defaultSeedFiles(),
  checksFile = defaultChecksFile(),
  pgTapFiles: pgTap = pgTapFiles(),
  pgTapHelpers: helpers = pgTapHelpers(),
  database,
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
  const name = database ?? `supabill_u_${randomBytes(4).toString("hex")}`;
  const url = database ? databaseUrl(adminUrl, database) : await createDatabase(adminUrl, name);
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
    if (newer.length === 0) {
      // Right after a release is cut: nothing to apply; the steps below check the release itself.
      out.push({
        name: `no migration is newer than ${lastReleased}: supabase db push has nothing to apply (the release itself is checked)`,
        ok: true,
        detail: "",
      });
    } else {
      const pushed = `supabase db push applies the ${newer.length} newer migrations over that data`;
      try {
        copy(newer);
        await pushMigrations(url, stage);
        out.push({ name: pushed, ok: true, detail: "" });
      } catch (e) {
        out.push({ name: pushed, ok: false, detail: message(e) });
        return out;
      }
    }
    if (seedFiles.length > 0) {
      const seeded = `the current ${seedFiles.map((f) => path.relative(root, f) || f).join(", ")} loads on the upgraded database`;
      try {
        await psql(url, seedFiles.flatMap((f) => ["-f", f]));
        out.push({ name: seeded, ok: true, detail: "" });
      } catch (e) {
        out.push({ name: seeded, ok: false, detail: message(e) });
        return out;
      }
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
    if (pgTap.length > 0) {
      try {
        const result = await runPgTap(url, pgTap, { helpers });
        out.push({
          name: `after the upgrade: the pgTAP suite passes on it (${pgTap.length} files, ${result.passed} of ${result.total} assertions)`,
          ok: result.ok,
          detail: result.ok ? "" : pgTapFailures(result),
        });
      } catch (e) {
        out.push({ name: "after the upgrade: the pgTAP suite runs on it", ok: false, detail: message(e) });
      }
    }
    return out;
  } finally {
    await schemas?.drop();
    if (!database) await dropDatabase(adminUrl, name);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
