// Three rules on supabase/migrations:
//
// 1. Released migrations are never edited. supabase/tests/upgrade/released.sha256 lists every
//    migration of the last release with its sha256 (deployed projects applied exactly those
//    bytes); each must be unchanged, none removed, and no new one may sort before the last of
//    them. `npm run db:diff -- --release` rewrites the list when a release is cut, which also
//    moves LAST_RELEASED_MIGRATION (scripts/lib/upgrade.mjs, the upgrade check's starting point).
// 2. The baseline modules (the first release's one file per module, up to BASELINE_LAST) each own
//    the objects they create: no other baseline module alters, drops, replaces or comments on
//    them. A table, function, type, view, trigger, index or policy of the baseline is defined in
//    one file, so reading that file is enough to know its shape. Later migrations are upgrades:
//    they are the place where released objects are altered or replaced.
//
// 3. Every migration has a version (its 14-digit prefix) of its own: `supabase db push` applies by
//    version, so of two files with one version only one would run.
//
// The parser (scripts/lib/sql-objects.mjs) is shared with the checks of supabase/schemas/.
import { deepStrictEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import { cutRelease } from "../scripts/db-diff.mjs";
import { crossMigrationChanges, type SqlFile } from "../scripts/lib/sql-objects.mjs";
import { LAST_RELEASED_MIGRATION, readReleased, releasedProblems, versionClashes } from "../scripts/lib/upgrade.mjs";

type MigrationFile = SqlFile;

// -------------------------------------------------------------------------------------------------
// The checker itself, on small synthetic migrations
// -------------------------------------------------------------------------------------------------

const a: MigrationFile = {
  name: "001_a.sql",
  sql: `
    -- alter table public.t drop column x;   (a comment: ignored)
    create table public.t (id int primary key, note text default 'alter table public.t;');
    alter table public.t enable row level security;
    comment on table public.t is 'Rows; drop table public.t is only text here.';
    create index t_note_idx on public.t (note);
    create trigger t_touch before update on public.t for each row execute function billing.touch();
    create function billing.f() returns int language plpgsql as $body$
    begin
      drop table if exists public.t;  -- inside a body: not a migration statement
      return 1;
    end $body$;
    create type public.kind as enum ('a', 'b');
    create policy "Members read their organization's rows" on public.t for select using (true);
    create function public.h() returns int language sql as $$ select 1 $$;
  `,
};

Deno.test("the checker accepts a file that alters, comments on and indexes only its own objects", () => {
  assertEquals(crossMigrationChanges([a]), []);
});

Deno.test("the checker reports a migration that alters another migration's table", () => {
  const b = { name: "002_b.sql", sql: "alter table public.t add column extra text;\ncreate table public.u (id int);" };
  const found = crossMigrationChanges([a, b]);
  assertEquals(found.length, 1, found.join("\n"));
  assert(found[0].startsWith("002_b.sql: changes table public.t (created in 001_a.sql)"), found[0]);
});

Deno.test("the checker reports replace, drop and comment on of another migration's objects", () => {
  const b = {
    name: "002_b.sql",
    sql: `
      create or replace function billing.f() returns int language sql as $$ select 2 $$;
      drop trigger if exists t_touch on public.t;
      drop index public.t_note_idx;
      comment on type public.kind is 'Kinds.';
      comment on column public.t.note is 'A note.';
      alter table t enable row level security;
      create function billing.g() returns int language sql as $$ select 3 $$;
    `,
  };
  const found = crossMigrationChanges([b, a]); // given out of order: file names decide
  const keys = found.map((f) => /changes (.*?) \(|replace of (.*?) \(/.exec(f)?.slice(1).find(Boolean));
  assertEquals(keys, [
    "function billing.f",
    "trigger t_touch on public.t",
    "index public.t_note_idx",
    "type public.kind",
    "table public.t",
    "table public.t",
  ], found.join("\n"));
});

// -------------------------------------------------------------------------------------------------
// The real migrations
// -------------------------------------------------------------------------------------------------

/**
 * The last module of the baseline (the first release's layout); later migrations are upgrades.
 * It stays put when a release is cut: what is released is released.sha256's business.
 */
const BASELINE_LAST = "20261120001000_ai_gateway.sql";

Deno.test("no baseline module alters, drops, replaces or comments on another module's objects", async () => {
  const dir = new URL("../supabase/migrations/", import.meta.url);
  const files: MigrationFile[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".sql") && entry.name <= BASELINE_LAST) {
      files.push({ name: entry.name, sql: await Deno.readTextFile(new URL(entry.name, dir)) });
    }
  }
  assert(files.some((f) => f.name === BASELINE_LAST), `the baseline ends at ${BASELINE_LAST}, which is missing`);
  const found = crossMigrationChanges(files);
  assert(found.length === 0, `${found.length} cross-migration change(s):\n${found.join("\n")}`);
});

// -------------------------------------------------------------------------------------------------
// Every migration has a version of its own
// -------------------------------------------------------------------------------------------------

Deno.test("every migration of supabase/migrations has a version of its own", () => {
  const names = [...Deno.readDirSync(new URL("../supabase/migrations", import.meta.url))].map((e) => e.name);
  assertEquals(versionClashes(names), []);
});

Deno.test("two drafts with one version are reported, naming both", () => {
  assertEquals(versionClashes(["20270101000000_a.sql", "20270101000001_b.sql", "20270101000001_c.sql", "notes.txt"]),
    ["version 20270101000001 is shared by 20270101000001_b.sql and 20270101000001_c.sql: only one would be applied"]);
  assertEquals(versionClashes(["20270101000000_a.sql", "20270101000001_b.sql"]), []);
});

// -------------------------------------------------------------------------------------------------
// Released migrations are never edited
// -------------------------------------------------------------------------------------------------

Deno.test("every released migration is byte for byte what released.sha256 lists; the baseline is released", () => {
  const problems = releasedProblems();
  assert(problems.length === 0, problems.join("\n"));
  const released = readReleased().map((r) => r.file);
  assertEquals(released.at(-1), LAST_RELEASED_MIGRATION);
  assert(released.includes(BASELINE_LAST), `${BASELINE_LAST} (the baseline) is not released`);
});

/** A toy supabase/migrations folder and its manifest, cut at the files given. */
async function toyRelease(files: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix: "supabill-released-" });
  const migrationsDir = `${dir}/migrations`;
  const manifestFile = `${dir}/released.sha256`;
  await Deno.mkdir(migrationsDir);
  for (const [name, sql] of Object.entries(files)) await Deno.writeTextFile(`${migrationsDir}/${name}`, sql);
  await Deno.writeTextFile(manifestFile, "");
  const said = cutRelease({ migrationsDir, manifestFile });
  return { dir, migrationsDir, manifestFile, said };
}

Deno.test("an edited released migration fails, naming the file and saying what to do instead", async () => {
  const toy = await toyRelease({ "20260101000100_a.sql": "create table t (id int);\n", "20260101000200_b.sql": "select 1;\n" });
  try {
    assert(toy.said.includes("2 released migrations, the last 20260101000200_b.sql"), toy.said);
    assertEquals(releasedProblems(toy), []);
    await Deno.writeTextFile(`${toy.migrationsDir}/20260101000100_a.sql`, "create table t (id bigint);\n");
    assertEquals(releasedProblems(toy), [
      "20260101000100_a.sql was edited after its release: released migrations are never edited; write a new migration " +
      "(edit supabase/schemas/, then npm run db:diff -- <name>)",
    ]);
    // Cutting a release does not bless the edit.
    assertThrows(() => cutRelease(toy), /no release cut:\n {2}20260101000100_a\.sql was edited after its release/);
  } finally {
    await Deno.remove(toy.dir, { recursive: true });
  }
});

Deno.test("a removed released migration, or a new one dated before the release, fails; a newer one is fine", async () => {
  const toy = await toyRelease({ "20260101000100_a.sql": "select 1;\n", "20260101000300_c.sql": "select 3;\n" });
  try {
    await Deno.writeTextFile(`${toy.migrationsDir}/20260102000100_d.sql`, "select 4;\n");
    assertEquals(releasedProblems(toy), []);
    await Deno.writeTextFile(`${toy.migrationsDir}/20260101000200_b.sql`, "select 2;\n");
    await Deno.remove(`${toy.migrationsDir}/20260101000100_a.sql`);
    assertEquals(releasedProblems(toy), [
      "20260101000100_a.sql is released and missing from supabase/migrations: released migrations are never removed or renamed",
      "20260101000200_b.sql is not released but sorts before 20260101000300_c.sql, the last released migration: " +
      "a deployed project would never apply it; give it a timestamp after that one",
    ]);
  } finally {
    await Deno.remove(toy.dir, { recursive: true });
  }
});
