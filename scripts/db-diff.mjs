// npm run db:diff -- <name>: draft the migration that brings a database built from
// supabase/migrations to the state supabase/schemas/ declares, as
// supabase/migrations/<UTC YYYYMMDDHHMMSS>_<name>.sql. Nothing is written when they are equal.
// npm run db:diff -- --check: only compare; exit 0 when equal, 1 with the difference printed.
// npm run db:diff -- --release: a release was cut: every migration now in supabase/migrations is
// released; supabase/tests/upgrade/released.sha256 lists them with their sha256 (which moves
// LAST_RELEASED_MIGRATION of scripts/lib/upgrade.mjs to the newest) and npm test fails from then on
// when one of them is edited. Refused while a released migration differs from its manifest line.
//
// Both databases are built on one throwaway cluster on a free port, removed afterwards, also on
// Ctrl-C (scripts/lib/schemas.mjs says how). --schemas-dir <dir> (or SUPABILL_SCHEMAS_DIR) reads
// the schemas from another folder.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import fs from "node:fs";
import path from "node:path";
import { ensureNodeDeps } from "./lib/deps.mjs";
import { ensurePgPackages, tempCluster } from "./lib/pg.mjs";
import { main, onInterrupt, root, ScriptError, stopChildren } from "./lib/run.mjs";
import { buildBoth, defaultMigrationsDir, defaultSchemasDir, migrationHeader, orderDifferences, schemaDiff } from "./lib/schemas.mjs";
import { defaultReleasedFile, readReleased, releasedManifest, releasedProblems } from "./lib/upgrade.mjs";

const USAGE = "usage: npm run db:diff -- <snake_case_name> | --check | --release  [--schemas-dir <dir>]";

/** @param {string[]} argv */
export function parseArgs(argv) {
  let check = false;
  let release = false;
  let schemasDir = defaultSchemasDir();
  /** @type {string | undefined} */
  let name;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--check") check = true;
    else if (a === "--release") release = true;
    else if (a === "--schemas-dir") {
      if (!argv[i + 1]) throw new ScriptError(`--schemas-dir needs a folder\n${USAGE}`);
      schemasDir = path.resolve(argv[++i]);
    } else if (a.startsWith("-")) throw new ScriptError(`unknown option ${a}\n${USAGE}`);
    else if (name === undefined) name = a;
    else throw new ScriptError(`one name only\n${USAGE}`);
  }
  if (check && name !== undefined) throw new ScriptError(`--check takes no name\n${USAGE}`);
  if (release && (check || name !== undefined)) throw new ScriptError(`--release takes no name and no --check\n${USAGE}`);
  if (!check && !release && name === undefined) throw new ScriptError(USAGE);
  if (name !== undefined && !/^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/.test(name)) {
    throw new ScriptError(`"${name}" is not a snake_case name (lowercase letters and digits joined by _, e.g. partial_refunds)`);
  }
  return { check, release, name, schemasDir };
}

/**
 * Cut a release: write the manifest of every migration in `migrationsDir`, after checking that the
 * ones already released are unchanged (an edit is never blessed by a release). Returns what to say.
 * @param {{ migrationsDir?: string, manifestFile?: string }} [opts]
 */
export function cutRelease({ migrationsDir = defaultMigrationsDir(), manifestFile = defaultReleasedFile() } = {}) {
  const first = !fs.existsSync(manifestFile) || readReleased(manifestFile).length === 0;
  const problems = first
    ? []
    : releasedProblems({ migrationsDir, manifestFile }).filter((p) => !/ is not released but sorts before /.test(p));
  if (problems.length) throw new ScriptError(`no release cut:\n  ${problems.join("\n  ")}`);
  const files = fs.readdirSync(migrationsDir).filter((f) => /^\d{14}_.*\.sql$/.test(f)).sort();
  fs.writeFileSync(manifestFile, releasedManifest(migrationsDir, files));
  return `${path.relative(root, manifestFile)}: ${files.length} released migrations, the last ${files.at(-1)}; commit it`;
}

/**
 * The new migration's file name: now in UTC, or one second after the newest migration when the
 * clock is behind it (db push applies files in name order).
 * @param {string} name
 * @param {string} migrationsDir
 * @param {Date} [now]
 */
export function migrationFileName(name, migrationsDir, now = new Date()) {
  const stamp = (/** @type {Date} */ d) => d.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const newest = fs.readdirSync(migrationsDir).filter((f) => /^\d{14}_.*\.sql$/.test(f)).sort().at(-1);
  let ts = stamp(now);
  if (newest && ts <= newest.slice(0, 14)) {
    const n = newest.slice(0, 14);
    const last = Date.UTC(+n.slice(0, 4), +n.slice(4, 6) - 1, +n.slice(6, 8), +n.slice(8, 10), +n.slice(10, 12), +n.slice(12, 14));
    ts = stamp(new Date(last + 1000));
  }
  return `${ts}_${name}.sql`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(async () => {
    const { check, release, name, schemasDir } = parseArgs(process.argv.slice(2));
    if (release) {
      console.log(cutRelease());
      return;
    }
    if (!fs.existsSync(schemasDir)) {
      const shown = schemasDir.startsWith(root + path.sep) ? path.relative(root, schemasDir) : schemasDir;
      throw new ScriptError(`${shown} does not exist: nothing to compare the migrations with`);
    }
    await ensureNodeDeps();
    await ensurePgPackages();
    const cluster = await tempCluster("dbdiff");
    const cleanup = async () => {
      await stopChildren();
      await cluster.remove();
    };
    onInterrupt(cleanup);
    let diff;
    let order;
    try {
      await cluster.init();
      await cluster.start();
      const built = await buildBoth(cluster.url, { schemasDir });
      diff = await schemaDiff(built.migrationsUrl, built.schemasUrl);
      order = await orderDifferences(built.migrationsUrl, built.schemasUrl);
    } finally {
      await cleanup();
    }
    const orderNote = order.length
      ? `\ncolumn or enum value order differs (a diff cannot fix this; declare new columns and values at the end):\n  ${order.join("\n  ")}\n`
      : "";
    if (check) {
      if (!diff && !order.length) {
        console.log("no difference: supabase/schemas/ builds the database the migrations build");
        return;
      }
      if (diff) console.log(`the migrations do not build what supabase/schemas/ declares; the missing migration:\n\n${diff}\n`);
      if (orderNote) console.log(orderNote);
      process.exitCode = 1;
      return;
    }
    if (!diff) {
      console.log("no difference: nothing written");
      if (orderNote) {
        console.error(orderNote);
        process.exitCode = 1;
      }
      return;
    }
    const migrationsDir = defaultMigrationsDir();
    const file = path.join(migrationsDir, migrationFileName(/** @type {string} */ (name), migrationsDir));
    fs.writeFileSync(file, `${migrationHeader(/** @type {string} */ (name))}\n${diff}\n`);
    console.log(`wrote ${path.relative(root, file)}: review it, add by hand what a diff cannot know, commit it with the schema change`);
    if (orderNote) {
      console.error(orderNote);
      process.exitCode = 1;
    }
  });
}
