// The baseline modules (the released schema, up to BASELINE_LAST) each own the objects they
// create: no other baseline module alters, drops, replaces or comments on them. A table,
// function, type, view, trigger, index or policy of the baseline is defined in one file, so
// reading that file is enough to know its shape. Migrations after the baseline are upgrades:
// they are the place where released objects are altered or replaced.
//
// The parser is deliberately small: comments, string literals and dollar-quoted bodies are
// blanked, the rest is lowercased and split into statements on `;`, and each statement is
// matched by a few regexes at its start. Statements inside function bodies are never seen.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";

interface MigrationFile {
  name: string;
  sql: string;
}

/**
 * The SQL with comments, string literals and dollar-quoted bodies blanked, lowercased, one
 * statement per entry. Quoted identifiers are kept (a policy name may hold an apostrophe).
 */
function statements(sql: string): string[] {
  const blanked = sql.replace(
    /--[^\n]*|\/\*[\s\S]*?\*\/|"(?:[^"]|"")*"|'(?:[^']|'')*'|\$([a-z_][a-z0-9_]*)?\$[\s\S]*?\$\1\$/gi,
    (m) => (m.startsWith('"') ? m : m.startsWith("'") ? "''" : m.startsWith("$") ? "$$" : " "),
  );
  return blanked.toLowerCase().split(";").map((s) => s.replace(/\s+/g, " ").trim()).filter(Boolean);
}

const IDENT = String.raw`(?:"[^"]+"|[a-z_][a-z0-9_$]*)`;
const NAME = String.raw`(${IDENT}(?:\.${IDENT})?)`;

/** A qualified name without quotes; an unqualified name is in public. */
function qualify(name: string): string {
  const parts = name.split(".").map((p) => p.replace(/^"|"$/g, ""));
  return parts.length === 1 ? `public.${parts[0]}` : parts.join(".");
}
const unquote = (ident: string) => ident.replace(/^"|"$/g, "");
const schemaOf = (qualified: string) => qualified.split(".")[0];

/** Object keys: `table public.orders`, `function billing.now`, `trigger x on public.orders`, ... */
type Key = string;

/** The objects a statement creates, and whether it is `create or replace`. */
function creates(stmt: string): { keys: Key[]; replace: boolean } | null {
  let m: RegExpExecArray | null;
  if ((m = new RegExp(String.raw`^create (?:(?:global |local )?(?:temp|temporary|unlogged) )?table (?:if not exists )?${NAME}`).exec(stmt))) {
    return { keys: [`table ${qualify(m[1])}`], replace: false };
  }
  if ((m = new RegExp(String.raw`^create (or replace )?(?:function|procedure) ${NAME} ?\(`).exec(stmt))) {
    return { keys: [`function ${qualify(m[2])}`], replace: !!m[1] };
  }
  if ((m = new RegExp(String.raw`^create type ${NAME}`).exec(stmt))) {
    return { keys: [`type ${qualify(m[1])}`], replace: false };
  }
  if ((m = new RegExp(String.raw`^create (or replace )?(?:(?:temp|temporary|recursive) )*(?:materialized )?view (?:if not exists )?${NAME}`).exec(stmt))) {
    return { keys: [`view ${qualify(m[2])}`], replace: !!m[1] };
  }
  if ((m = new RegExp(String.raw`^create (or replace )?(?:constraint )?trigger (${IDENT}) .*?\bon ${NAME}`).exec(stmt))) {
    return { keys: [`trigger ${unquote(m[2])} on ${qualify(m[3])}`], replace: !!m[1] };
  }
  if ((m = new RegExp(String.raw`^create (?:unique )?index (?:concurrently )?(?:if not exists )?(${IDENT}) on (?:only )?${NAME}`).exec(stmt))) {
    return { keys: [`index ${schemaOf(qualify(m[2]))}.${unquote(m[1])}`], replace: false };
  }
  if ((m = new RegExp(String.raw`^create policy (${IDENT}) on ${NAME}`).exec(stmt))) {
    return { keys: [`policy ${unquote(m[1])} on ${qualify(m[2])}`], replace: false };
  }
  return null;
}

/** The objects a statement reshapes (alter, drop, comment on), each with what the statement does. */
function reshapes(stmt: string): { key: Key; what: string }[] {
  const out: { key: Key; what: string }[] = [];
  const head = stmt.slice(0, 120);
  let m: RegExpExecArray | null;
  if ((m = new RegExp(String.raw`^alter table (?:if exists )?(?:only )?${NAME}`).exec(stmt))) {
    out.push({ key: `table ${qualify(m[1])}`, what: head });
  } else if ((m = new RegExp(String.raw`^alter (function|procedure|type|view|materialized view|index) (?:if exists )?${NAME}`).exec(stmt))) {
    const kind = m[1] === "procedure" ? "function" : m[1] === "materialized view" ? "view" : m[1];
    out.push({ key: `${kind} ${qualify(m[2])}`, what: head });
  } else if ((m = new RegExp(String.raw`^(?:alter|drop) (trigger|policy) (?:if exists )?(${IDENT}) on ${NAME}`).exec(stmt))) {
    out.push({ key: `${m[1]} ${unquote(m[2])} on ${qualify(m[3])}`, what: head });
    out.push({ key: `table ${qualify(m[3])}`, what: head });
  } else if ((m = /^drop (table|function|procedure|type|view|materialized view|index) (?:concurrently )?(?:if exists )?(.*)$/.exec(stmt))) {
    const kind = m[1] === "procedure" ? "function" : m[1] === "materialized view" ? "view" : m[1];
    // A list of names, each possibly with an argument list: drop function a(int), b(text) cascade.
    const names = m[2].replace(/\([^)]*\)/g, "").replace(/\b(cascade|restrict)\b/g, "").split(",");
    for (const n of names.map((s) => s.trim()).filter(Boolean)) {
      const key = kind === "index" ? `index ${qualify(n)}` : `${kind} ${qualify(n)}`;
      out.push({ key, what: head });
    }
  } else if ((m = new RegExp(String.raw`^comment on (table|view|materialized view|function|procedure|type|index) ${NAME}`).exec(stmt))) {
    const kind = m[1] === "procedure" ? "function" : m[1] === "materialized view" ? "view" : m[1];
    out.push({ key: `${kind} ${qualify(m[2])}`, what: head });
  } else if ((m = new RegExp(String.raw`^comment on (trigger|policy) (${IDENT}) on ${NAME}`).exec(stmt))) {
    out.push({ key: `${m[1]} ${unquote(m[2])} on ${qualify(m[3])}`, what: head });
  } else if ((m = new RegExp(String.raw`^comment on column (${IDENT}(?:\.${IDENT}){1,2})`).exec(stmt))) {
    const parts = m[1].split(".");
    out.push({ key: `table ${qualify(parts.slice(0, -1).join("."))}`, what: head });
  }
  return out;
}

/**
 * Every statement of one migration that alters, drops, replaces or comments on an object another
 * migration created. Files are taken in name order; an object belongs to the first file that
 * creates it. Objects no migration creates (auth.users, extensions' objects) are not checked.
 */
function crossMigrationChanges(files: MigrationFile[]): string[] {
  const sorted = [...files].sort((a, b) => a.name.localeCompare(b.name));
  const parsed = sorted.map((f) => ({ name: f.name, stmts: statements(f.sql) }));
  const owner = new Map<Key, string>();
  for (const f of parsed) {
    for (const s of f.stmts) {
      for (const key of creates(s)?.keys ?? []) if (!owner.has(key)) owner.set(key, f.name);
    }
  }
  const found: string[] = [];
  for (const f of parsed) {
    for (const s of f.stmts) {
      const created = creates(s);
      if (created?.replace) {
        for (const key of created.keys) {
          const by = owner.get(key);
          if (by && by !== f.name) found.push(`${f.name}: create or replace of ${key} (created in ${by}): ${s.slice(0, 120)}`);
        }
      }
      // One report per statement: the first object it names that another file created.
      for (const { key, what } of reshapes(s)) {
        const by = owner.get(key);
        if (!by || by === f.name) continue;
        found.push(`${f.name}: changes ${key} (created in ${by}): ${what}`);
        break;
      }
    }
  }
  return found;
}

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
