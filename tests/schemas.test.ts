// The checks of supabase/schemas/ (scripts/lib/schemas.mjs, run by npm test and npm run db:diff)
// each shown failing on a broken input: text fixtures for the parser and the README's rule map,
// and small toy databases (a table or two, not the product) built as new databases on the test
// cluster for the diff and the order check.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { env } from "./helpers.ts";
import { declaredTwice, forbiddenInSchemas, identityArguments } from "../scripts/lib/sql-objects.mjs";
import { buildFromMigrations, buildFromSchemas, orderDifferences, ruleMapProblems, schemaDiff } from "../scripts/lib/schemas.mjs";
import { migrationFileName, parseArgs } from "../scripts/db-diff.mjs";

const file = (name: string, sql: string) => ({ name, sql });

// -------------------------------------------------------------------------------------------------
// Each object declared once; tables whole
// -------------------------------------------------------------------------------------------------

const foundation = file(
  "00_foundation.sql",
  `
  create schema billing;
  create type billing.kind as enum ('a', 'b');
  create table public.t (id int primary key, note text default 'drop table public.t');
  alter table public.t enable row level security;
  create policy "Members read their rows" on public.t for select using (true);
  create index t_note_idx on public.t (note);
  create function billing.period_end(p_start timestamptz, p_months int) returns timestamptz
    language sql as $$ select p_start $$;
  create function billing.period_end(p_start timestamptz, p_unit text, p_count int default 1) returns timestamptz
    language sql as $$ select p_start $$;
  create view billing.v as select 1 as one;
  create trigger t_touch before update on public.t for each row execute function billing.touch();
`,
);

Deno.test("schemas: a folder that declares each object once, overloads included, passes", () => {
  assertEquals(declaredTwice([foundation]), []);
  assertEquals(forbiddenInSchemas([foundation]), []);
});

Deno.test("schemas: an object declared twice is reported, in whichever file (functions by signature)", () => {
  const again = file(
    "05_orders.sql",
    `
    create table t (id int);
    create function billing.period_end(start timestamp with time zone, months integer, out result timestamptz)
      language sql as $$ select start $$;
    create policy "Members read their rows" on public.t for select using (true);
    create unique index t_note_idx on public.t (note);
    create view billing.v as select 2 as two;
    create type billing.kind as enum ('c');
    create trigger t_touch after insert on t for each row execute function billing.touch();
  `,
  );
  const found = declaredTwice([foundation, again]);
  assertEquals(found, [
    "05_orders.sql: table public.t declared again (first in 00_foundation.sql)",
    "05_orders.sql: function billing.period_end(timestamp with time zone,integer) declared again (first in 00_foundation.sql)",
    "05_orders.sql: policy members read their rows on public.t declared again (first in 00_foundation.sql)",
    "05_orders.sql: index public.t_note_idx declared again (first in 00_foundation.sql)",
    "05_orders.sql: view billing.v declared again (first in 00_foundation.sql)",
    "05_orders.sql: type billing.kind declared again (first in 00_foundation.sql)",
    "05_orders.sql: trigger t_touch on public.t declared again (first in 00_foundation.sql)",
  ]);
});

Deno.test("schemas: identity arguments leave out names, defaults, OUT arguments and spelling", () => {
  assertEquals(identityArguments("p_a int4, inout p_b varchar(10), out p_c text, variadic p_d text[] default '{}'"), "integer,character varying,text[]");
  assertEquals(identityArguments("double precision, timestamptz, public.subscriptions"), "double precision,timestamp with time zone,subscriptions");
  assertEquals(identityArguments(""), "");
});

Deno.test("schemas: alter table, create or replace and drop are refused; enabling RLS is not", () => {
  const found = forbiddenInSchemas([
    file(
      "03_usage.sql",
      `
      alter table public.t add column extra text;
      alter table only public.t force row level security;
      create or replace function billing.f() returns int language sql as $$ select 1 $$;
      create or replace view billing.w as select 1;
      drop function if exists billing.g();
      -- drop table public.t;  (a comment)
    `,
    ),
  ]);
  assertEquals(found.map((f) => f.split(":").slice(0, 2).join(":")), [
    "03_usage.sql: alter table (declare the table whole)",
    "03_usage.sql: create or replace (declare it once with create)",
    "03_usage.sql: create or replace (declare it once with create)",
    "03_usage.sql: drop (leave the object out instead)",
  ]);
});

// -------------------------------------------------------------------------------------------------
// The README's rule map
// -------------------------------------------------------------------------------------------------

async function schemasFixture(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "supabill-schemas-" });
  for (const [name, sql] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${name}`, sql);
  return dir;
}

const readme = (rows: string[]) =>
  [
    "# x",
    "",
    "## Where each rule lives",
    "",
    "| rule | file | function |",
    "| --- | --- | --- |",
    ...rows,
    "",
    "## Next",
  ].join("\n");

Deno.test("schemas: the rule map passes when each row names an existing schema file declaring its functions", async () => {
  const dir = await schemasFixture({
    "03_usage.sql": "create function billing.apply_usage_delta(p int) returns int language sql as $$ select 1 $$;",
    "08_provider_actions.sql":
      "create function billing.operator_refund() returns int language sql as $$ select 1 $$;\ncreate function public.get_usage() returns int language sql as $$ select 1 $$;",
  });
  try {
    const found = ruleMapProblems(
      readme([
        "| quotas | `supabase/schemas/03_usage.sql` | `billing.apply_usage_delta` |",
        "| operator actions | `supabase/schemas/08_provider_actions.sql` | `billing.operator_*`, `public.get_usage()`, `lookupAction` in `providers/*.ts` |",
        "| who is calling | `supabase/functions/_shared/auth.ts` | `requireUser` |",
      ]),
      { schemasDir: dir },
    );
    assertEquals(found, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("schemas: a rule map row naming a missing function, a missing file or a migration is reported", async () => {
  const dir = await schemasFixture({
    "03_usage.sql": "create function billing.apply_usage_delta(p int) returns int language sql as $$ select 1 $$;",
  });
  try {
    const found = ruleMapProblems(
      readme([
        "| quotas | `supabase/schemas/03_usage.sql` | `billing.apply_usage_delta`, `billing.enforce_max_count` |",
        "| plans | `supabase/schemas/02_plans.sql` | `billing.effective_plan` |",
        "| tenancy | `0200_tenancy` | `billing.require_role` |",
        "| nowhere | `supabase/functions/_shared/nope.ts` | `x` |",
      ]),
      { schemasDir: dir },
    );
    assertEquals(found, [
      'rule "quotas": billing.enforce_max_count is not declared in supabase/schemas/03_usage.sql',
      'rule "plans": supabase/schemas/02_plans.sql does not exist',
      'rule "tenancy": `0200_tenancy` is not a supabase/schemas/<file>.sql',
      'rule "nowhere": supabase/functions/_shared/nope.ts does not exist',
    ]);
    assertEquals(ruleMapProblems("# no map here", { schemasDir: dir }), ['the README has no "Where each rule lives" section']);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// npm run db:diff's arguments and file name
// -------------------------------------------------------------------------------------------------

Deno.test("db:diff: a snake_case name or --check, nothing else", () => {
  assertEquals(parseArgs(["partial_refunds"]).name, "partial_refunds");
  assertEquals(parseArgs(["--check"]).check, true);
  for (const bad of [["Partial-Refunds"], ["partial refunds"], ["_x"], ["x__y"], [], ["--check", "x"], ["a", "b"], ["--force"]]) {
    let threw = false;
    try {
      parseArgs(bad);
    } catch {
      threw = true;
    }
    assert(threw, `accepted ${JSON.stringify(bad)}`);
  }
});

Deno.test("db:diff: the file is named by UTC time, after the newest migration", async () => {
  const dir = await Deno.makeTempDir({ prefix: "supabill-migrations-" });
  try {
    await Deno.writeTextFile(`${dir}/20261206000500_last.sql`, "");
    assertEquals(migrationFileName("x", dir, new Date(Date.UTC(2026, 11, 7, 1, 2, 3))), "20261207010203_x.sql");
    assertEquals(migrationFileName("x", dir, new Date(Date.UTC(2026, 0, 1))), "20261206000501_x.sql");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// -------------------------------------------------------------------------------------------------
// The two databases: toy migrations and schemas on the test cluster
// -------------------------------------------------------------------------------------------------

/** The migrations every toy case starts from: a table, then an upgrade that adds a column. */
const TOY_MIGRATIONS = {
  "20260101000100_base.sql": `
    create schema billing;
    create type billing.state as enum ('active', 'ended');
    create table billing.t (id int primary key, state billing.state not null default 'active');
    create function billing.f() returns int language sql as $$ select 1 $$;`,
  "20260101000200_upgrade.sql": `
    alter table billing.t add column note text;
    alter type billing.state add value 'paused';`,
};
/** The same state, declared whole. */
const TOY_SCHEMA = `
  create schema billing;
  create type billing.state as enum ('active', 'ended', 'paused');
  create table billing.t (id int primary key, state billing.state not null default 'active', note text);
  create function billing.f() returns int language sql as $$ select 1 $$;`;

async function writeFiles(dir: string, files: Record<string, string>) {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, sql] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${name}`, sql);
}

/**
 * The migrations' database of TOY_MIGRATIONS is built once for the cases that share it (db push is
 * the slow part) and dropped by the last test of this file.
 */
let toyMigrations: Promise<{ url: string; drop: () => Promise<unknown> }> | undefined;

async function compareToy(migrations: Record<string, string>, schemas: Record<string, string>) {
  const work = await Deno.makeTempDir({ prefix: "supabill-toy-" });
  const admin = env("SUPABASE_DB_URL");
  try {
    await writeFiles(`${work}/supabase/migrations`, migrations);
    await writeFiles(`${work}/schemas`, schemas);
    const s = await buildFromSchemas(admin, `${work}/schemas`);
    const shared = migrations === TOY_MIGRATIONS;
    if (shared) toyMigrations ??= buildFromMigrations(admin, `${work}/supabase/migrations`);
    const m = await (shared ? toyMigrations! : buildFromMigrations(admin, `${work}/supabase/migrations`)).catch(async (e) => {
      await s.drop();
      throw e;
    });
    try {
      return { diff: await schemaDiff(m.url, s.url), order: await orderDifferences(m.url, s.url) };
    } finally {
      await s.drop();
      if (!shared) await m.drop();
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test("diff: migrations and schemas that build the same database have no difference", async () => {
  assertEquals(await compareToy(TOY_MIGRATIONS, { "00_toy.sql": TOY_SCHEMA }), { diff: "", order: [] });
});

Deno.test("diff: a schema edit with no migration (a column in the schemas only) is the missing migration", async () => {
  const schema = TOY_SCHEMA.replace("note text)", "note text, refunded_paise bigint)");
  const { diff, order } = await compareToy(TOY_MIGRATIONS, { "00_toy.sql": schema });
  assert(/ALTER TABLE "billing"\."t"\s+ADD COLUMN "refunded_paise" bigint/.test(diff), diff);
  assertEquals(order, []);
});

Deno.test("diff: a migration with no schema edit is reported too", async () => {
  const migrations = {
    ...TOY_MIGRATIONS,
    "20260101000300_more.sql": "create function billing.g() returns int language sql as $$ select 2 $$;",
  };
  const { diff } = await compareToy(migrations, { "00_toy.sql": TOY_SCHEMA });
  assert(/DROP FUNCTION "?billing"?\."?g"?/.test(diff), diff);
});

Deno.test("order: columns declared in another order are reported, which the diff misses", async () => {
  const schema = TOY_SCHEMA.replace(
    "(id int primary key, state billing.state not null default 'active', note text)",
    "(id int primary key, note text, state billing.state not null default 'active')",
  );
  const { diff, order } = await compareToy(TOY_MIGRATIONS, { "00_toy.sql": schema });
  assertEquals(diff, "", "pg-delta does not compare column order");
  assertEquals(order, ["table billing.t columns: (id, state, note) from the migrations, (id, note, state) from the schemas"]);
});

Deno.test("order: enum values declared in another order are reported (the diff replaces the type)", async () => {
  const schema = TOY_SCHEMA.replace("('active', 'ended', 'paused')", "('active', 'paused', 'ended')");
  const { diff, order } = await compareToy(TOY_MIGRATIONS, { "00_toy.sql": schema });
  assert(diff.includes(`CREATE TYPE "billing"."state"`), diff);
  assertEquals(order, ["enum billing.state values: (active, ended, paused) from the migrations, (active, paused, ended) from the schemas"]);
});

Deno.test("order: a new column declared in the middle is reported before its migration exists", async () => {
  const schema = TOY_SCHEMA.replace("(id int primary key,", "(id int primary key, label text,");
  const { diff, order } = await compareToy(TOY_MIGRATIONS, { "00_toy.sql": schema });
  assert(diff.includes(`ADD COLUMN "label" text`), diff);
  assertEquals(order, ["table billing.t columns: (id, state, note) from the migrations, (id, label, state, note) from the schemas"]);
});

Deno.test("build: schemas that do not build fail clearly", async () => {
  let message = "";
  try {
    await compareToy(TOY_MIGRATIONS, { "00_toy.sql": TOY_SCHEMA, "01_broken.sql": "create table billing.u (id nosuchtype);" });
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.startsWith("supabase/schemas/ does not build") && message.includes("nosuchtype"), message);
});

Deno.test("toy databases: the shared one is dropped", async () => {
  await (await toyMigrations)?.drop();
});
