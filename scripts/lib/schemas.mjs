// supabase/schemas/ is the current state of the database, one file per module; the migrations are
// the upgrades a deployed project receives. This module builds both into databases of one
// cluster and compares them, for `npm run db:diff` (scripts/db-diff.mjs) and for the checks of
// `npm test` (scripts/test.mjs):
//
// - M, from the migrations: compat.sql and local-settings.sql, then `supabase db push`, as every
//   local database is built (scripts/lib/pg.mjs);
// - S, from the schemas: the same two files, then supabase/schemas/*.sql in file-name order;
// - their difference in public and billing: `supabase db diff --from M --to S` (pg-delta, run by
//   the pinned CLI itself, no Docker), which is the migration that brings M to S;
// - what pg-delta does not compare: the order of each table's, view's and composite type's
//   columns and of each enum's values (row types are used positionally: `select * into`,
//   `returns public.subscriptions`, `row(...)::billing.subscription_change`);
// - what the files must say: each object declared once, tables whole (sql-objects.mjs), and the
//   README's "Where each rule lives" table naming schema files and functions declared in them.
//
// Every function takes URLs and folders, so tests point it at small fixtures.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pgBinDir } from "./pg.mjs";
import { bin, root, run, ScriptError } from "./run.mjs";
import { declaredFunctions, declaredTwice, forbiddenInSchemas } from "./sql-objects.mjs";

/** The schemas compared: the API and the rules. */
export const SCHEMAS = ["public", "billing"];

/** supabase/schemas/ of this checkout, or SUPABILL_SCHEMAS_DIR (to try a folder elsewhere). */
export const defaultSchemasDir = () => process.env.SUPABILL_SCHEMAS_DIR ?? path.join(root, "supabase", "schemas");
export const defaultMigrationsDir = () => path.join(root, "supabase", "migrations");

// PGSSLMODE=disable: the local cluster has no TLS, and the CLI would print a banner about it.
const CLI_ENV = { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1", NO_COLOR: "1", PGSSLMODE: "disable" };

/**
 * @param {string} url
 * @param {string[]} args
 * @param {{ allowFail?: boolean }} [opts]
 */
export function psql(url, args, opts) {
  return run(path.join(pgBinDir(), "psql"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, ...args], opts);
}

/**
 * The URL of database `name` on the server of `url`.
 * @param {string} url
 * @param {string} name
 */
export function databaseUrl(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * A new, empty database on the server of `adminUrl` (any database there, usually `postgres`).
 * @param {string} adminUrl
 * @param {string} name
 */
export async function createDatabase(adminUrl, name) {
  await psql(adminUrl, ["-c", `drop database if exists "${name}" with (force)`, "-c", `create database "${name}"`]);
  return databaseUrl(adminUrl, name);
}

/**
 * @param {string} adminUrl
 * @param {string} name
 */
export async function dropDatabase(adminUrl, name) {
  await psql(adminUrl, ["-c", `drop database if exists "${name}" with (force)`], { allowFail: true });
}

/**
 * What every local database gets before its schema: the database-level settings and the
 * Supabase compatibility layer (roles, auth, extensions), as scripts/lib/pg.mjs does.
 * @param {string} url
 */
export async function prepareLocal(url) {
  await psql(url, ["-f", path.join(root, "scripts", "sql", "local-settings.sql"), "-f", path.join(root, "scripts", "sql", "compat.sql")]);
}

/**
 * M: `supabase db push` of a `supabase/migrations` folder, the path a hosted project takes.
 * @param {string} url a database that prepareLocal() has prepared
 * @param {string} migrationsDir a folder named supabase/migrations
 */
export async function pushMigrations(url, migrationsDir) {
  const dir = path.resolve(migrationsDir);
  if (path.basename(dir) !== "migrations" || path.basename(path.dirname(dir)) !== "supabase") {
    throw new ScriptError(`${dir} is not a supabase/migrations folder (supabase db push reads <workdir>/supabase/migrations)`);
  }
  await run(bin("supabase"), ["--workdir", path.dirname(path.dirname(dir)), "db", "push", `--remote=${url}`, "--yes", "--include-all"], {
    env: CLI_ENV,
  });
}

/**
 * The .sql files of a schemas folder, in the order they are applied (by name).
 * @param {string} dir
 */
export function schemaFiles(dir) {
  if (!fs.existsSync(dir)) throw new ScriptError(`${dir} does not exist: the schemas are the current state, one file per module`);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".sql")).sort();
  if (files.length === 0) throw new ScriptError(`${dir} holds no .sql file`);
  return files;
}

/**
 * The files of a schemas folder with their text, in order.
 * @param {string} dir
 * @returns {import("./sql-objects.mjs").SqlFile[]}
 */
export function readSchemaFiles(dir) {
  return schemaFiles(dir).map((name) => ({ name, sql: fs.readFileSync(path.join(dir, name), "utf8") }));
}

/**
 * S: every file of the schemas folder in order, stopping at the first error.
 * @param {string} url a database that prepareLocal() has prepared
 * @param {string} schemasDir
 */
async function applySchemas(url, schemasDir) {
  const files = schemaFiles(schemasDir);
  await psql(url, files.flatMap((f) => ["-f", path.join(schemasDir, f)]));
}

/**
 * A new database on the server of `adminUrl` built by `build(url)`: its URL and `drop()`. On
 * failure the database is dropped and the error passed on.
 * @param {string} adminUrl
 * @param {string} prefix
 * @param {(url: string) => Promise<unknown>} build
 */
async function buildDatabase(adminUrl, prefix, build) {
  const name = `${prefix}_${randomBytes(4).toString("hex")}`;
  const url = await createDatabase(adminUrl, name);
  const drop = () => dropDatabase(adminUrl, name);
  try {
    await prepareLocal(url);
    await build(url);
  } catch (e) {
    await drop();
    throw e;
  }
  return { url, drop };
}

/**
 * M: a new database on the server of `adminUrl`, built by `supabase db push` of `migrationsDir`.
 * @param {string} adminUrl
 * @param {string} [migrationsDir]
 */
export function buildFromMigrations(adminUrl, migrationsDir = defaultMigrationsDir()) {
  return buildDatabase(adminUrl, "supabill_m", (url) => pushMigrations(url, migrationsDir));
}

/**
 * S: a new database on the server of `adminUrl`, built from the files of `schemasDir` in order.
 * @param {string} adminUrl
 * @param {string} [schemasDir]
 */
export function buildFromSchemas(adminUrl, schemasDir = defaultSchemasDir()) {
  schemaFiles(schemasDir); // fail before building anything
  return buildDatabase(adminUrl, "supabill_s", (url) =>
    applySchemas(url, schemasDir).catch((e) => {
      throw new ScriptError(`supabase/schemas/ does not build: ${e.message}`);
    }));
}

/**
 * Build M and S as two new databases on the server of `adminUrl`. Returns their URLs and
 * `drop()`, which removes both (the caller calls it, also on failure).
 * @param {string} adminUrl
 * @param {{ migrationsDir?: string, schemasDir?: string }} [dirs]
 */
export async function buildBoth(adminUrl, { migrationsDir = defaultMigrationsDir(), schemasDir = defaultSchemasDir() } = {}) {
  // One after the other, the schemas first: roles belong to the cluster, so two builds at once
  // could race to create one, and on a new cluster the schemas must create every role they use.
  const s = await buildFromSchemas(adminUrl, schemasDir);
  let m;
  try {
    m = await buildFromMigrations(adminUrl, migrationsDir);
  } catch (e) {
    await s.drop();
    throw e;
  }
  return {
    migrationsUrl: m.url,
    schemasUrl: s.url,
    drop: async () => {
      await m.drop();
      await s.drop();
    },
  };
}

/** The line pg-delta puts first in every non-empty diff. */
const DIFF_PREAMBLE = "SET local check_function_bodies = off;";

/**
 * The SQL that turns `fromUrl`'s public and billing into `toUrl`'s, "" when they are equal:
 * `supabase db diff --from --to` (pg-delta in the CLI), with --strict-coverage so an object
 * pg-delta cannot manage fails instead of being left out of the comparison.
 * @param {string} fromUrl
 * @param {string} toUrl
 */
export async function schemaDiff(fromUrl, toUrl) {
  const args = [
    "db", "diff", "--strict-coverage", "--from", fromUrl, "--to", toUrl,
    "--schema", SCHEMAS.join(","), "--output-format", "json",
  ];
  const { code, stdout, stderr } = await run(bin("supabase"), args, { env: CLI_ENV, allowFail: true });
  /** @type {{ diff?: unknown, error?: { message?: string } } | undefined} */
  let out;
  try {
    out = JSON.parse(stdout);
  } catch {
    out = undefined;
  }
  if (code !== 0 || typeof out?.diff !== "string") {
    throw new ScriptError(`supabase db diff failed (exit ${code}): ${out?.error?.message ?? (stdout + stderr).trim().slice(-2000)}`);
  }
  const diff = out.diff.trim();
  return diff === DIFF_PREAMBLE ? "" : diff;
}

/** Each table's, view's and composite type's columns by attnum, and each enum's values in order. */
const ORDER_SQL = `
select format('%s %I.%I', case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                          when 'c' then 'type' when 'f' then 'foreign table' else 'table' end,
              n.nspname, c.relname) || ' columns',
       json_agg(a.attname::text order by a.attnum)::text
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid
 where n.nspname in (${SCHEMAS.map((s) => `'${s}'`).join(", ")})
   and c.relkind in ('r', 'p', 'v', 'm', 'c', 'f') and a.attnum > 0 and not a.attisdropped
 group by 1
union all
select format('enum %I.%I', n.nspname, t.typname) || ' values',
       json_agg(e.enumlabel::text order by e.enumsortorder)::text
  from pg_catalog.pg_type t
  join pg_catalog.pg_namespace n on n.oid = t.typnamespace
  join pg_catalog.pg_enum e on e.enumtypid = t.oid
 where n.nspname in (${SCHEMAS.map((s) => `'${s}'`).join(", ")})
 group by 1
 order by 1`;

/**
 * @param {string} url
 * @returns {Promise<Map<string, string[]>>}
 */
async function orders(url) {
  const { stdout } = await psql(url, ["-A", "-t", "-F", "\t", "-c", ORDER_SQL]);
  const map = new Map();
  for (const line of stdout.split("\n").filter(Boolean)) {
    const [what, items] = line.split("\t");
    map.set(what, JSON.parse(items));
  }
  return map;
}

/**
 * Every table, view or composite type whose columns, and every enum whose values, both databases
 * have in a different order: `table billing.t columns: (a, b, c) from the migrations, (a, c, b)
 * from the schemas`. A column or value only the schemas have counts as added at the end, where
 * the drafted migration will put it; what only one side has is otherwise the diff's to report.
 * @param {string} migrationsUrl
 * @param {string} schemasUrl
 */
export async function orderDifferences(migrationsUrl, schemasUrl) {
  const [m, s] = await Promise.all([orders(migrationsUrl), orders(schemasUrl)]);
  /** @type {string[]} */
  const found = [];
  for (const [what, fromMigrations] of m) {
    const fromSchemas = s.get(what);
    if (!fromSchemas) continue;
    // A view is replaced whole when its columns change, so only a reordering of the same columns counts.
    const sameSet = fromMigrations.length === fromSchemas.length && fromMigrations.every((x) => fromSchemas.includes(x));
    if (/^(?:materialized )?view /.test(what) && !sameSet) continue;
    // What the migrations' database will have once the diff is applied: its own columns (or
    // values) less the dropped ones, then the new ones at the end, where `add column` puts them.
    const expected = [
      ...fromMigrations.filter((x) => fromSchemas.includes(x)),
      ...fromSchemas.filter((x) => !fromMigrations.includes(x)),
    ];
    if (expected.join("\n") !== fromSchemas.join("\n")) {
      found.push(`${what}: (${fromMigrations.join(", ")}) from the migrations, (${fromSchemas.join(", ")}) from the schemas`);
    }
  }
  return found;
}

/**
 * The static checks of a schemas folder: each object declared once, tables whole.
 * @param {string} schemasDir
 */
export function declarationProblems(schemasDir) {
  const files = readSchemaFiles(schemasDir);
  return [...forbiddenInSchemas(files), ...declaredTwice(files)];
}

/** @param {string} line */
const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
/** @param {string} cell */
const backticked = (cell) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

/**
 * Every row of the README's "Where each rule lives" table must name, in its file column, a
 * `supabase/schemas/<file>.sql` that exists (or a path under supabase/functions/ that exists, for
 * the rules that live in TypeScript), and every schema-qualified function it names in backticks
 * (`billing.apply_refund`, `billing.operator_*`) must be declared in one of the row's schema files.
 * @param {string} readme the README's text
 * @param {{ schemasDir?: string, repoRoot?: string }} [where]
 * @returns {string[]}
 */
export function ruleMapProblems(readme, { schemasDir = defaultSchemasDir(), repoRoot = root } = {}) {
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => /^#+\s+Where each rule lives\s*$/.test(l));
  if (start < 0) return ['the README has no "Where each rule lives" section'];
  const tableStart = lines.findIndex((l, i) => i > start && l.trim().startsWith("|"));
  if (tableStart < 0) return ['the README\'s "Where each rule lives" section has no table'];
  const table = [];
  for (let i = tableStart; i < lines.length && lines[i].trim().startsWith("|"); i++) table.push(cells(lines[i]));
  const header = table[0].map((h) => h.toLowerCase());
  const fileCol = header.findIndex((h) => /^(file|schema|module|where)s?$/.test(h));
  const fnCol = header.findIndex((h) => /^functions?$/.test(h));
  const col = { file: fileCol >= 0 ? fileCol : 1, fn: fnCol >= 0 ? fnCol : 2 };
  /** @type {string[]} */
  const found = [];
  for (const row of table.slice(2)) {
    const rule = row[0];
    const named = backticked(row[col.file] ?? "");
    const code = named.filter((p) => p.startsWith("supabase/functions/"));
    for (const p of code) {
      if (!fs.existsSync(path.join(repoRoot, p))) found.push(`rule "${rule}": ${p} does not exist`);
    }
    const schemaFilesNamed = named.filter((p) => !p.startsWith("supabase/functions/"));
    /** @type {Set<string>} */
    const declared = new Set();
    let readable = 0;
    for (const p of schemaFilesNamed) {
      const m = /^(?:supabase\/)?(?:schemas\/)?([^/]+\.sql)$/.exec(p);
      if (!m) {
        found.push(`rule "${rule}": \`${p}\` is not a supabase/schemas/<file>.sql`);
        continue;
      }
      const file = path.join(schemasDir, m[1]);
      if (!fs.existsSync(file)) {
        found.push(`rule "${rule}": supabase/schemas/${m[1]} does not exist`);
        continue;
      }
      for (const f of declaredFunctions(fs.readFileSync(file, "utf8"))) declared.add(f);
      readable++;
    }
    if (named.length === 0) found.push(`rule "${rule}": names no supabase/schemas/<file>.sql`);
    if (readable === 0) continue; // nothing to look the functions up in: the file is reported above
    const functions = backticked(row[col.fn] ?? "")
      .map((f) => f.replace(/\(.*\)$/, ""))
      .filter((f) => /^(?:public|billing)\.[a-z0-9_*]+$/.test(f));
    for (const f of functions) {
      const pattern = new RegExp(`^${f.replace(/\./g, "\\.").replace(/\*/g, "[a-z0-9_]*")}$`);
      if (![...declared].some((d) => pattern.test(d))) {
        found.push(`rule "${rule}": ${f} is not declared in ${schemaFilesNamed.join(", ")}`);
      }
    }
  }
  return found;
}

/**
 * The header of a drafted migration.
 * @param {string} name
 */
export function migrationHeader(name) {
  return [
    `-- ${name}: drafted by \`npm run db:diff -- ${name}\` from the difference between the database the`,
    "-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema",
    "-- files say what the database is; this file is how a deployed project gets there.",
    "--",
    "-- Added by hand, each with a comment saying why, only what a diff cannot know:",
    "--   - backfills (`update ...`) for new columns and changed rules;",
    "--   - renames (a diff sees a drop and an add, and the data would be lost);",
    "--   - new enum values, in a migration file of their own (a value cannot be used in the",
    "--     transaction that adds it);",
    "--   - data fixes.",
    "",
  ].join("\n");
}
