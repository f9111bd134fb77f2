// The baseline modules (the released schema, up to BASELINE_LAST) each own the objects they
// create: no other baseline module alters, drops, replaces or comments on them. A table,
// function, type, view, trigger, index or policy of the baseline is defined in one file, so
// reading that file is enough to know its shape. Migrations after the baseline are upgrades:
// they are the place where released objects are altered or replaced.
//
// The parser (scripts/lib/sql-objects.mjs) is shared with the checks of supabase/schemas/.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { crossMigrationChanges, type SqlFile } from "../scripts/lib/sql-objects.mjs";

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

/** The last module of the released baseline; later migrations are upgrades. */
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
