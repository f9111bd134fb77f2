// The upgrade-with-data check (scripts/lib/upgrade.mjs, a stage of npm test) on toy releases built
// as new databases on the test cluster: it passes when the newer migrations keep the rows, and
// fails when one breaks on existing data (a not-null column added with no default to a table
// with rows, which an empty database accepts) or loses rows the checks count.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { env } from "./helpers.ts";
import { splitMigrations, upgradeWithData } from "../scripts/lib/upgrade.mjs";

const RELEASED = {
  "20260101000100_base.sql": `
    create schema billing;
    create table billing.t (id int primary key, label text not null);`,
};
const DATA = "insert into billing.t values (1, 'one'), (2, 'two');";
const CHECKS = `select 'both rows are there', count(*) = 2, count(*)::text from billing.t;`;

async function writeFiles(dir: string, files: Record<string, string>) {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, sql] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${name}`, sql);
}

/**
 * The check on a toy release: RELEASED, then `newer` over DATA, against `schema`; `pgTap` the
 * pgTAP files run last (none unless given).
 */
async function upgradeToy(newer: Record<string, string>, schema: string, pgTap: Record<string, string> = {}) {
  const work = await Deno.makeTempDir({ prefix: "supabill-upgrade-toy-" });
  try {
    await writeFiles(`${work}/supabase/migrations`, { ...RELEASED, ...newer });
    await writeFiles(`${work}/schemas`, { "00_toy.sql": schema });
    await writeFiles(work, { "data.sql": DATA, "checks.sql": CHECKS, ...pgTap });
    return await upgradeWithData(env("SUPABASE_DB_URL"), {
      migrationsDir: `${work}/supabase/migrations`,
      schemasDir: `${work}/schemas`,
      lastReleased: "20260101000100_base.sql",
      dataFiles: [`${work}/data.sql`],
      seedFiles: [],
      checksFile: `${work}/checks.sql`,
      pgTapFiles: Object.keys(pgTap).map((f) => `${work}/${f}`),
      pgTapHelpers: null,
    });
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

const failed = (outcomes: { name: string; ok: boolean; detail: string }[]) => outcomes.filter((o) => !o.ok);

Deno.test("upgrade: the released migrations end at the constant; the newer ones follow", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFiles(dir, { "20260101000100_a.sql": "", "20260101000200_b.sql": "", "20260102000100_c.sql": "" });
    assertEquals(splitMigrations(dir, "20260101000200_b.sql"), {
      released: ["20260101000100_a.sql", "20260101000200_b.sql"],
      newer: ["20260102000100_c.sql"],
    });
    let message = "";
    try {
      splitMigrations(dir, "20251231000000_gone.sql");
    } catch (e) {
      message = (e as Error).message;
    }
    assert(message.includes("is not in"), message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("upgrade: a column added with a default keeps the rows and passes", async () => {
  const outcomes = await upgradeToy(
    { "20260201000100_note.sql": "alter table billing.t add column note text not null default '';" },
    "create schema billing;\ncreate table billing.t (id int primary key, label text not null, note text not null default '');",
  );
  assertEquals(failed(outcomes), []);
  assertEquals(outcomes.length, 4);
});

Deno.test("upgrade: a not-null column added with no default fails on a table with rows", async () => {
  const outcomes = await upgradeToy(
    { "20260201000100_note.sql": "alter table billing.t add column note text not null;" },
    "create schema billing;\ncreate table billing.t (id int primary key, label text not null, note text not null);",
  );
  const bad = failed(outcomes);
  assertEquals(bad.length, 1, JSON.stringify(outcomes));
  assert(bad[0].name.startsWith("supabase db push applies the 1 newer migrations"), bad[0].name);
  assert(/contains null values/.test(bad[0].detail), bad[0].detail);
});

Deno.test("upgrade: a migration that loses rows builds the right schema and still fails the checks", async () => {
  const outcomes = await upgradeToy(
    { "20260201000100_dedupe.sql": "delete from billing.t where id > 1;" },
    "create schema billing;\ncreate table billing.t (id int primary key, label text not null);",
  );
  assertEquals(failed(outcomes).map((o) => [o.name, o.detail]), [["after the upgrade: both rows are there", "1"]]);
});

Deno.test("upgrade: a newer migration the schemas do not declare is reported", async () => {
  const outcomes = await upgradeToy(
    { "20260201000100_extra.sql": "create table billing.u (id int);" },
    "create schema billing;\ncreate table billing.t (id int primary key, label text not null);",
  );
  const bad = failed(outcomes);
  assertEquals(bad.length, 1, JSON.stringify(outcomes));
  assert(bad[0].name.startsWith("the upgraded database is what supabase/schemas/ declares"), bad[0].name);
});

const TOY_SCHEMA = "create schema billing;\ncreate table billing.t (id int primary key, label text not null);";

Deno.test("upgrade: right after a release is cut (no newer migration) the check passes and says there was nothing to apply", async () => {
  const outcomes = await upgradeToy({}, TOY_SCHEMA);
  assertEquals(failed(outcomes), []);
  assert(/^no migration is newer than 20260101000100_base\.sql: supabase db push has nothing to apply/.test(outcomes[1].name), outcomes[1].name);
  assertEquals(outcomes.length, 4);
});

/** A pgTAP file: the rows of billing.t as the upgraded database has them. */
const toyPgTap = (rows: number) => `
begin;
set local search_path = public, extensions;
select plan(1);
select is((select count(*)::int from billing.t), ${rows}, 'billing.t has ${rows} rows');
select * from finish();
rollback;
`;

Deno.test("upgrade: the pgTAP files run on the upgraded database, rows and all, and a failed assertion is reported", async () => {
  const passing = await upgradeToy({}, TOY_SCHEMA, { "rows.test.sql": toyPgTap(2) });
  assertEquals(failed(passing), []);
  assert(passing.at(-1)!.name.startsWith("after the upgrade: the pgTAP suite passes on it (1 files, 1 of 1 assertions)"), passing.at(-1)!.name);

  // A test written for an empty database (it expects no row) fails on one with rows in it.
  const outcomes = await upgradeToy({}, TOY_SCHEMA, { "rows.test.sql": toyPgTap(0) });
  const bad = failed(outcomes);
  assertEquals(bad.length, 1, JSON.stringify(outcomes));
  assert(bad[0].name.startsWith("after the upgrade: the pgTAP suite passes on it (1 files, 0 of 1 assertions)"), bad[0].name);
  assert(bad[0].detail.includes("billing.t has 0 rows"), bad[0].detail);
});
