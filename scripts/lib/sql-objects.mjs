// Which objects a SQL file creates and reshapes, read from its text: shared by
// tests/migrations.test.ts (the baseline modules own their objects) and scripts/lib/schemas.mjs
// (supabase/schemas/ declares each object once).
//
// The parser is deliberately small: comments, string literals and dollar-quoted bodies are
// blanked, the rest is lowercased and split into statements on `;`, and each statement is
// matched by a few regexes at its start. Statements inside function bodies are never seen.

/** @typedef {{ name: string, sql: string }} SqlFile */
/**
 * Object keys: `table public.orders`, `function billing.now`, `trigger x on public.orders`, ...
 * @typedef {string} Key
 */

/**
 * The SQL with comments, string literals and dollar-quoted bodies blanked, lowercased, one
 * statement per entry. Quoted identifiers are kept (a policy name may hold an apostrophe).
 * @param {string} sql
 * @returns {string[]}
 */
export function statements(sql) {
  const blanked = sql.replace(
    /--[^\n]*|\/\*[\s\S]*?\*\/|"(?:[^"]|"")*"|'(?:[^']|'')*'|\$([a-z_][a-z0-9_]*)?\$[\s\S]*?\$\1\$/gi,
    (m) => (m.startsWith('"') ? m : m.startsWith("'") ? "''" : m.startsWith("$") ? "$$" : " "),
  );
  return blanked.toLowerCase().split(";").map((s) => s.replace(/\s+/g, " ").trim()).filter(Boolean);
}

const IDENT = String.raw`(?:"[^"]+"|[a-z_][a-z0-9_$]*)`;
const NAME = String.raw`(${IDENT}(?:\.${IDENT})?)`;

/**
 * A qualified name without quotes; an unqualified name is in public.
 * @param {string} name
 */
export function qualify(name) {
  const parts = name.split(".").map((p) => p.replace(/^"|"$/g, ""));
  return parts.length === 1 ? `public.${parts[0]}` : parts.join(".");
}
/** @param {string} ident */
const unquote = (ident) => ident.replace(/^"|"$/g, "");
/** @param {string} qualified */
const schemaOf = (qualified) => qualified.split(".")[0];

/** @param {string} kind */
const kindOf = (kind) => (kind === "procedure" ? "function" : kind === "materialized view" ? "view" : kind);

/**
 * The text between the parenthesis at `open` and its match, or null when unbalanced.
 * @param {string} s
 * @param {number} open
 */
function parenthesized(s, open) {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === "(") depth++;
    else if (s[i] === ")" && --depth === 0) return s.slice(open + 1, i);
  }
  return null;
}

/** Type words that begin a type of several words, so they are never an argument's name. */
const MULTIWORD_TYPE_START = new Set(["double", "timestamp", "time", "character", "bit", "interval", "national"]);
/** Spellings of one type, as Postgres resolves them. */
const TYPE_ALIASES = /** @type {Record<string, string>} */ ({
  int: "integer",
  int4: "integer",
  int8: "bigint",
  int2: "smallint",
  bool: "boolean",
  float8: "double precision",
  float4: "real",
  varchar: "character varying",
  timestamptz: "timestamp with time zone",
  timestamp: "timestamp without time zone",
  timetz: "time with time zone",
  decimal: "numeric",
});

/**
 * A function's identity as Postgres sees it: the types of its input arguments (names, defaults
 * and OUT arguments left out, common aliases resolved, `public.` dropped), e.g. `integer,text`.
 * @param {string} args the text between the parentheses of `create function f(...)`
 */
export function identityArguments(args) {
  /** @type {string[]} */
  const parts = [];
  let depth = 0;
  let current = "";
  for (const ch of args) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  if (current.trim()) parts.push(current);
  const types = [];
  for (const part of parts) {
    let words = part.replace(/\s+(?:default\b|=).*$/s, "").trim().split(/\s+/);
    let mode = "in";
    if (["in", "out", "inout", "variadic"].includes(words[0]) && words.length > 1) mode = /** @type {string} */ (words.shift());
    if (mode === "out") continue;
    if (words.length > 1 && !MULTIWORD_TYPE_START.has(words[0]) && !words[1].startsWith("(") && !words[1].startsWith("[")) {
      words = words.slice(1); // the argument's name
    }
    let type = words.join(" ").replace(/\s*\(\s*/g, "(").replace(/\s*\)/g, ")").replace(/^(?:pg_catalog|public)\./, "");
    type = type.replace(/"/g, "");
    const base = /^([a-z0-9_]+)(.*)$/.exec(type);
    if (base && TYPE_ALIASES[base[1]] && /^(?:\(.*\))?(?:\[\])*$/.test(base[2])) type = TYPE_ALIASES[base[1]] + base[2];
    if (/^(?:character varying|numeric|character)\(/.test(type)) type = type.replace(/\(.*\)/, ""); // typmods are not identity
    types.push(type.replace(/\s+/g, " "));
  }
  return types.join(",");
}

/**
 * The objects a statement creates, and whether it is `create or replace`. A function's key is its
 * name; `signature` adds its argument types (`function billing.f(integer,text)`), which tell
 * overloads apart.
 * @param {string} stmt
 * @returns {{ keys: Key[], replace: boolean, signature?: Key } | null}
 */
export function creates(stmt) {
  let m;
  if ((m = new RegExp(String.raw`^create (?:(?:global |local )?(?:temp|temporary|unlogged) )?table (?:if not exists )?${NAME}`).exec(stmt))) {
    return { keys: [`table ${qualify(m[1])}`], replace: false };
  }
  if ((m = new RegExp(String.raw`^create (or replace )?(?:function|procedure) ${NAME} ?\(`).exec(stmt))) {
    const key = `function ${qualify(m[2])}`;
    const args = parenthesized(stmt, m[0].length - 1);
    return { keys: [key], replace: !!m[1], signature: `${key}(${identityArguments(args ?? "")})` };
  }
  if ((m = new RegExp(String.raw`^create type ${NAME}`).exec(stmt))) {
    return { keys: [`type ${qualify(m[1])}`], replace: false };
  }
  if ((m = new RegExp(String.raw`^create domain ${NAME}`).exec(stmt))) {
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

/**
 * The objects a statement reshapes (alter, drop, comment on), each with what the statement does.
 * @param {string} stmt
 * @returns {{ key: Key, what: string }[]}
 */
export function reshapes(stmt) {
  /** @type {{ key: Key, what: string }[]} */
  const out = [];
  const head = stmt.slice(0, 120);
  let m;
  if ((m = new RegExp(String.raw`^alter table (?:if exists )?(?:only )?${NAME}`).exec(stmt))) {
    out.push({ key: `table ${qualify(m[1])}`, what: head });
  } else if ((m = new RegExp(String.raw`^alter (function|procedure|type|view|materialized view|index) (?:if exists )?${NAME}`).exec(stmt))) {
    out.push({ key: `${kindOf(m[1])} ${qualify(m[2])}`, what: head });
  } else if ((m = new RegExp(String.raw`^(?:alter|drop) (trigger|policy) (?:if exists )?(${IDENT}) on ${NAME}`).exec(stmt))) {
    out.push({ key: `${m[1]} ${unquote(m[2])} on ${qualify(m[3])}`, what: head });
    out.push({ key: `table ${qualify(m[3])}`, what: head });
  } else if ((m = /^drop (table|function|procedure|type|view|materialized view|index) (?:concurrently )?(?:if exists )?(.*)$/.exec(stmt))) {
    const kind = kindOf(m[1]);
    // A list of names, each possibly with an argument list: drop function a(int), b(text) cascade.
    const names = m[2].replace(/\([^)]*\)/g, "").replace(/\b(cascade|restrict)\b/g, "").split(",");
    for (const n of names.map((s) => s.trim()).filter(Boolean)) {
      out.push({ key: `${kind} ${qualify(n)}`, what: head });
    }
  } else if ((m = new RegExp(String.raw`^comment on (table|view|materialized view|function|procedure|type|index) ${NAME}`).exec(stmt))) {
    out.push({ key: `${kindOf(m[1])} ${qualify(m[2])}`, what: head });
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
 * @param {SqlFile[]} files
 * @returns {string[]}
 */
export function crossMigrationChanges(files) {
  const sorted = [...files].sort((a, b) => a.name.localeCompare(b.name));
  const parsed = sorted.map((f) => ({ name: f.name, stmts: statements(f.sql) }));
  /** @type {Map<Key, string>} */
  const owner = new Map();
  for (const f of parsed) {
    for (const s of f.stmts) {
      for (const key of creates(s)?.keys ?? []) if (!owner.has(key)) owner.set(key, f.name);
    }
  }
  /** @type {string[]} */
  const found = [];
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

/**
 * Statements a file of supabase/schemas/ may not hold: tables are declared whole and every object
 * once, so no `alter table` (but enabling row level security, which has no other spelling), no
 * `create or replace` and no `drop`.
 * @param {SqlFile[]} files
 * @returns {string[]}
 */
export function forbiddenInSchemas(files) {
  /** @type {string[]} */
  const found = [];
  for (const f of files) {
    for (const s of statements(f.sql)) {
      const rls = new RegExp(String.raw`^alter table (?:only )?${NAME} (?:enable|force) row level security$`).test(s);
      if (/^alter table\b/.test(s) && !rls) found.push(`${f.name}: alter table (declare the table whole): ${s.slice(0, 120)}`);
      if (/^create or replace\b/.test(s)) found.push(`${f.name}: create or replace (declare it once with create): ${s.slice(0, 120)}`);
      if (/^drop\b/.test(s)) found.push(`${f.name}: drop (leave the object out instead): ${s.slice(0, 120)}`);
    }
  }
  return found;
}

/**
 * Every object declared a second time, in the files' order (functions by signature, so overloads
 * are distinct objects): `02_plans.sql: function billing.f(integer) again (first in 00_foundation.sql)`.
 * @param {SqlFile[]} files
 * @returns {string[]}
 */
export function declaredTwice(files) {
  /** @type {Map<Key, string>} */
  const first = new Map();
  /** @type {string[]} */
  const found = [];
  for (const f of files) {
    for (const s of statements(f.sql)) {
      const created = creates(s);
      if (!created) continue;
      for (const key of created.signature ? [created.signature] : created.keys) {
        const by = first.get(key);
        if (by) found.push(`${f.name}: ${key} declared again (first in ${by})`);
        else first.set(key, f.name);
      }
    }
  }
  return found;
}

/**
 * The functions a file declares, by qualified name (`billing.apply_refund`).
 * @param {string} sql
 * @returns {Set<string>}
 */
export function declaredFunctions(sql) {
  const names = new Set();
  for (const s of statements(sql)) {
    for (const key of creates(s)?.keys ?? []) if (key.startsWith("function ")) names.add(key.slice("function ".length));
  }
  return names;
}
