// A stand-in for PostgREST's /rest/v1 on the local stack, so supabase-js's `rpc()` and
// `from().select()` work against `npm start` (the functions server mounts it on the API URL; no
// Docker, so no real PostgREST). It lives with the other fakes because that is what it is: it
// serves what README.md and docs/ show, and refuses the rest. For anything beyond it, run the real
// thing: `npx supabase start` (Docker) or a hosted project.
//
// Each request runs in one transaction as the caller, the way PostgREST runs it: `role` and
// `request.jwt.claims` set for the transaction (anon, authenticated or service_role), so grants and
// RLS decide exactly as on Supabase. SQL is built from the catalog: table, column, relationship and
// function names are looked up there and quoted, never copied from the request; values are bound
// parameters.
//
// Served (docs/local-stack.md lists the same):
//   POST /rest/v1/rpc/<fn>   named JSON arguments (GET: query-string arguments) -> the result, a
//                            set as an array; any function in `public`, overloads told apart by
//                            their argument names, as PostgREST does
//   GET|HEAD /rest/v1/<table or view>?select=...
//     select     columns (`*`, `a,b`, `alias:a`), embedded resources `rel(...)`, `alias:rel(...)`,
//                `rel!inner(...)`, `rel!<foreign key or column>(...)`, nested, through foreign keys
//                (many-to-one and unique one-to-one as an object, one-to-many as an array) and
//                computed relationships (a function public.<rel>(<table>); `setof ... rows 1` or
//                a single row: an object), a computed relationship replacing the foreign keys
//                of the same name, as PostgREST does
//     filters    <column>=eq|neq|gt|gte|lt|lte.<v>, in.(a,b), is.null|true|false, on the top level
//     modifiers  order=<col>[.asc|.desc][.nullsfirst|.nullslast],...; limit; offset; single()
//                (Accept: application/vnd.pgrst.object+json: PGRST116 unless exactly one row);
//                maybeSingle() (checked by supabase-js); count (Prefer: count=exact|planned|
//                estimated, all exact here, in Content-Range)
// Refused with PGRST127 (feature not implemented) naming the feature, HTTP 400: writes to tables
// (POST/PATCH/PUT/DELETE), filters on embedded resources, other operators (like, fts, cs, ...),
// logical trees (or=, and=), casts and JSON paths in select, spread (`...rel`), other Accept types
// (CSV, explain), filters on rpc results. Errors have PostgREST's shape {code, message, details,
// hint}, with its statuses (PGRST1xx 400, PGRST116 406, PGRST2xx 400 or 404, PGRST301 401, SQL
// errors by SQLSTATE: 42501 403 (401 for anon), 23503/23505 409, 42883/42P01 404, P0001 400, ...).
import * as jose from "jose";

const DOCS = "the local stack serves a subset of PostgREST (docs/local-stack.md); for the rest run `npx supabase start` (Docker) or use a hosted project";

class RestError extends Error {
  constructor(status, code, message, details = null, hint = null) {
    super(message);
    Object.assign(this, { status, code, details, hint });
  }
}
const unsupported = (feature) => new RestError(400, "PGRST127", `not supported by the local stand-in for PostgREST: ${feature}`, feature, DOCS);
const parseError = (message, details = null) => new RestError(400, "PGRST100", message, details);

const quote = (name) => `"${String(name).replaceAll('"', '""')}"`;

/** PostgREST's HTTP status for a SQLSTATE. */
export function statusOf(sqlstate, role) {
  const c = sqlstate ?? "XX000";
  if (c === "42501") return role === "anon" ? 401 : 403;
  const exact = { "23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404, "42P17": 500, P0001: 400 };
  if (exact[c]) return exact[c];
  const byClass = { "08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500, "38": 500, "39": 500,
    "3B": 500, "40": 500, "53": 503, "54": 413, "55": 500, "57": 500, "58": 500, F0: 500, HV: 500, P0: 500, XX: 500 };
  return byClass[c.slice(0, 2)] ?? 400;
}

function reply(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

// ----------------------------------------------------------------------------------------------
// select=... parsing (the PostgREST grammar this stand-in knows)

/** Split on commas outside parentheses. */
function splitTop(s) {
  const parts = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (depth < 0) throw parseError(`unbalanced parentheses in select=${s}`);
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (depth !== 0) throw parseError(`unbalanced parentheses in select=${s}`);
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

const NAME = "[A-Za-z_][A-Za-z0-9_]*";
const COLUMN = new RegExp(`^(?:(${NAME}):)?(${NAME}|\\*)$`);
const EMBED = new RegExp(`^(?:(${NAME}):)?(${NAME})((?:!${NAME})*)\\((.*)\\)$`, "s");

/** The select tree: [{kind: "star"} | {kind: "column", name, alias} | {kind: "embed", name, alias, hint, inner, items}]. */
export function parseSelect(s) {
  return splitTop(s).map((item) => {
    if (item.startsWith("...")) throw unsupported(`spread embedding (${item})`);
    if (item.includes("::")) throw unsupported(`casts in select (${item})`);
    if (/->/.test(item)) throw unsupported(`JSON paths in select (${item})`);
    const col = COLUMN.exec(item);
    if (col) return col[2] === "*" ? { kind: "star" } : { kind: "column", name: col[2], alias: col[1] ?? col[2] };
    const emb = EMBED.exec(item);
    if (!emb) throw parseError(`cannot parse select item "${item}"`);
    const marks = emb[3].split("!").filter(Boolean);
    const inner = marks.includes("inner");
    if (marks.includes("left")) marks.splice(marks.indexOf("left"), 1);
    const hints = marks.filter((m) => m !== "inner");
    if (hints.length > 1) throw parseError(`more than one hint in "${item}"`);
    return { kind: "embed", name: emb[2], alias: emb[1] ?? emb[2], hint: hints[0] ?? null, inner, items: parseSelect(emb[4] || "*") };
  });
}

// ----------------------------------------------------------------------------------------------
// The catalog: what PostgREST's schema cache would hold, read as the database owner

async function loadCatalog(sql) {
  const relations = await sql`
    select c.oid::int as oid, c.relname as name, c.relkind as kind,
      coalesce((select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) order by a.attnum)
        from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]') as columns
    from pg_catalog.pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'v', 'm', 'p', 'f')`;
  const fks = await sql`
    select con.conname as name, src.relname as from_table, dst.relname as to_table,
      (select array_agg(a.attname order by k.i) from unnest(con.conkey) with ordinality k(n, i)
        join pg_catalog.pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n) as from_cols,
      (select array_agg(a.attname order by k.i) from unnest(con.confkey) with ordinality k(n, i)
        join pg_catalog.pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n) as to_cols,
      exists (select 1 from pg_catalog.pg_index ix where ix.indrelid = con.conrelid and ix.indisunique
        and ix.indpred is null and (select array_agg(x::int2 order by x) from unnest(ix.indkey::int2[]) x)
          = (select array_agg(x order by x) from unnest(con.conkey) x)) as from_unique
    from pg_catalog.pg_constraint con
    join pg_catalog.pg_class src on src.oid = con.conrelid
    join pg_catalog.pg_class dst on dst.oid = con.confrelid
    where con.contype = 'f' and src.relnamespace = 'public'::regnamespace and dst.relnamespace = 'public'::regnamespace`;
  // Computed relationships: public.<name>(<a public table's row type>) returning a public table's rows.
  const computed = await sql`
    select p.proname as name, src.relname as from_table, dst.relname as to_table,
      (not p.proretset or p.prorows = 1) as to_one
    from pg_catalog.pg_proc p
    join pg_catalog.pg_type argt on argt.oid = p.proargtypes[0]
    join pg_catalog.pg_class src on src.oid = argt.typrelid and src.relnamespace = 'public'::regnamespace
    join pg_catalog.pg_type rett on rett.oid = p.prorettype
    join pg_catalog.pg_class dst on dst.oid = rett.typrelid and dst.relnamespace = 'public'::regnamespace
    where p.pronamespace = 'public'::regnamespace and p.pronargs = 1`;
  const functions = await sql`
    select p.oid::int as oid, p.proname as name, p.proretset as returns_set, p.pronargdefaults as defaults,
      coalesce((select json_agg(json_build_object('name', a.name, 'type', format_type(a.type, null), 'mode', a.mode) order by a.i)
        from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), coalesce(p.proargmodes, array_fill('i'::"char", array[p.pronargs])),
          p.proargnames) with ordinality a(type, mode, name, i)
        where a.mode in ('i', 'b', 'v')), '[]') as args
    from pg_catalog.pg_proc p where p.pronamespace = 'public'::regnamespace and p.prokind = 'f'`;
  return {
    relations: new Map(relations.map((r) => [r.name, r])),
    fks,
    computed,
    functions,
  };
}

// ----------------------------------------------------------------------------------------------
// Building the SQL

/** The relationships from table `from` named `name` (a table, a computed function, a column). */
function relationships(cat, from, name, hint) {
  const found = [];
  const computed = cat.computed.filter((c) => c.from_table === from && c.name === name);
  for (const c of computed) found.push({ kind: "computed", fn: c.name, target: c.to_table, toOne: c.to_one });
  for (const fk of cat.fks) {
    // many-to-one: from.cols -> name; the name may be the target table or the foreign key column
    if (fk.from_table === from && (fk.to_table === name || (fk.from_cols.length === 1 && fk.from_cols[0] === name))) {
      found.push({ kind: "fk", fk, target: fk.to_table, toOne: true, outward: true });
    }
    // one-to-many (one-to-one when the referencing columns are unique): name.cols -> from
    if (fk.to_table === from && fk.from_table === name) {
      found.push({ kind: "fk", fk, target: fk.from_table, toOne: fk.from_unique, outward: false });
    }
  }
  let picked;
  if (!hint) {
    // A computed relationship replaces the detected ones with the same name (PostgREST's rule).
    picked = computed.length ? found.filter((r) => r.kind === "computed") : found;
  } else {
    picked = found.filter((r) =>
      r.kind === "fk" ? r.fk.name === hint || r.fk.from_cols.includes(hint) || r.fk.to_cols.includes(hint) : r.fn === hint
    );
    // The foreign keys a computed relationship of this name replaced are gone: a hint naming one
    // of them resolves to the computed relationship (docs/monitoring.md).
    const replaced = found.find((r) => r.kind === "computed");
    if (replaced && picked.length === 1 && picked[0].kind === "fk" && picked[0].outward) picked = [replaced];
  }
  if (picked.length === 0) {
    throw new RestError(400, "PGRST200", `Could not find a relationship between '${from}' and '${name}' in the schema cache`,
      `Searched for a foreign key relationship between '${from}' and '${name}'${hint ? ` using the hint '${hint}'` : ""}`);
  }
  if (picked.length > 1) {
    throw new RestError(300, "PGRST201", `Could not embed because more than one relationship was found for '${from}' and '${name}'`,
      picked.map((r) => (r.kind === "fk" ? r.fk.name : r.fn)).join(", "),
      `Try changing '${name}' to one of the foreign keys (${picked.map((r) => (r.kind === "fk" ? r.fk.name : r.fn)).join(", ")})`);
  }
  return picked[0];
}

function relation(cat, name) {
  const rel = cat.relations.get(name);
  if (!rel) {
    throw new RestError(404, "PGRST205", `Could not find the table 'public.${name}' in the schema cache`, null, null);
  }
  return rel;
}

function columnOf(rel, name) {
  const col = rel.columns.find((c) => c.name === name);
  if (!col) throw new RestError(400, "42703", `column ${rel.name}.${name} does not exist`);
  return col;
}

/**
 * The SQL of one row of `rel` (alias `t`) as JSON, with its embeds; `wheres` collects the
 * conditions that !inner embeds add to the row's own query.
 */
function rowJson(cat, rel, t, items, depth, wheres) {
  const list = [];
  for (const item of items) {
    if (item.kind === "star") for (const c of rel.columns) list.push(`${t}.${quote(c.name)} as ${quote(c.name)}`);
    else if (item.kind === "column") list.push(`${t}.${quote(columnOf(rel, item.name).name)} as ${quote(item.alias)}`);
    else {
      const r = relationships(cat, rel.name, item.name, item.hint);
      const target = relation(cat, r.target);
      const u = `t${depth + 1}`;
      const innerWheres = [];
      const inner = rowJson(cat, target, u, item.items, depth + 1, innerWheres);
      let from;
      let on;
      if (r.kind === "computed") {
        from = `public.${quote(r.fn)}(${t}) ${u}`;
        on = "true";
      } else {
        from = `public.${quote(target.name)} ${u}`;
        const [mine, theirs] = r.outward ? [r.fk.from_cols, r.fk.to_cols] : [r.fk.to_cols, r.fk.from_cols];
        on = mine.map((c, i) => `${u}.${quote(theirs[i])} = ${t}.${quote(c)}`).join(" and ");
      }
      const cond = [on, ...innerWheres].join(" and ");
      const sub = r.toOne
        ? `(select ${inner} from ${from} where ${cond} limit 1)`
        : `(select coalesce(json_agg(${inner}), '[]'::json) from ${from} where ${cond})`;
      list.push(`${sub} as ${quote(item.alias)}`);
      if (item.inner) wheres.push(r.toOne ? `${sub} is not null` : `json_array_length(${sub}) > 0`);
    }
  }
  return `(select to_json(_r) from (select ${list.join(", ")}) _r)`;
}

const OPS = { eq: "=", neq: "<>", gt: ">", gte: ">=", lt: "<", lte: "<=" };

/** The WHERE conditions, ORDER BY, LIMIT and OFFSET of a table read, values as parameters. */
function modifiers(rel, query, values) {
  const wheres = [];
  let order = "";
  let limit = "";
  let offset = "";
  const param = (v) => {
    values.push(v);
    return `$${values.length}`;
  };
  for (const [key, raw] of query) {
    if (key === "select" || key === "columns") continue;
    if (key === "order") {
      const terms = raw.split(",").map((term) => {
        const [name, ...mods] = term.split(".");
        const col = columnOf(rel, name);
        const dir = mods.find((m) => m === "asc" || m === "desc") ?? "asc";
        const nulls = mods.find((m) => m === "nullsfirst" || m === "nullslast");
        if (mods.some((m) => !["asc", "desc", "nullsfirst", "nullslast"].includes(m))) throw parseError(`bad order term "${term}"`);
        return `t0.${quote(col.name)} ${dir}${nulls ? ` nulls ${nulls.slice(5)}` : ""}`;
      });
      order = ` order by ${terms.join(", ")}`;
    } else if (key === "limit" || key === "offset") {
      if (!/^\d+$/.test(raw)) throw parseError(`${key} must be a non-negative integer, got "${raw}"`);
      if (key === "limit") limit = ` limit ${param(Number(raw))}::bigint`;
      else offset = ` offset ${param(Number(raw))}::bigint`;
    } else if (key === "or" || key === "and" || key === "not.or" || key === "not.and") {
      throw unsupported(`logical filters (${key}=)`);
    } else if (key.includes(".")) {
      throw unsupported(`filters on embedded resources (${key}=)`);
    } else {
      const col = columnOf(rel, key);
      const m = /^(not\.)?([a-z]+)\.(.*)$/s.exec(raw);
      if (!m) throw parseError(`"${key}=${raw}" is not a filter (operator.value)`);
      const [, not, op, v] = m;
      const c = `t0.${quote(col.name)}`;
      let cond;
      if (OPS[op]) cond = `${c} ${OPS[op]} cast(${param(v)}::text as ${col.type})`;
      else if (op === "in") {
        const inner = /^\((.*)\)$/s.exec(v);
        if (!inner) throw parseError(`in. takes a list in parentheses, got "${v}"`);
        const items = inner[1] === "" ? [] : inner[1].split(",").map((x) => x.trim().replace(/^"(.*)"$/s, "$1"));
        cond = `${c} = any(array(select cast(x as ${col.type}) from jsonb_array_elements_text(${param(JSON.stringify(items))}::text::jsonb) x))`;
      } else if (op === "is") {
        const known = { null: "null", true: "true", false: "false", unknown: "unknown" }[v];
        if (!known) throw parseError(`is. takes null, true, false or unknown, got "${v}"`);
        cond = `${c} is ${known}`;
      } else throw unsupported(`the ${op}. operator (${key}=${raw})`);
      wheres.push(not ? `not (${cond})` : cond);
    }
  }
  return { wheres, order, limit, offset };
}

// ----------------------------------------------------------------------------------------------
// The handler

/**
 * The /rest/v1 handler: `handle(req, claims)` answers a request under /rest/v1/ for the caller
 * whose JWT claims are `claims` (the caller's role is claims.role). `sql` is a postgres.js
 * connection as a role able to switch to the API roles (the database owner).
 */
export function postgrest({ sql }) {
  // The schema cache, read again after a few seconds (PostgREST reloads on a NOTIFY instead).
  let catalog = null;
  let loadedAt = 0;
  const cat = async () => {
    if (!catalog || Date.now() - loadedAt > 5000) [catalog, loadedAt] = [await loadCatalog(sql), Date.now()];
    return catalog;
  };

  function asCaller(claims, fn) {
    if (!["anon", "authenticated", "service_role"].includes(claims.role)) {
      throw new RestError(401, "PGRST301", `role ${claims.role} is not one the API serves`);
    }
    return sql.begin(async (tx) => {
      await tx`select set_config('role', ${claims.role}, true), set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      return await fn(tx);
    });
  }

  async function rpc(req, name, claims) {
    const c = await cat();
    const url = new URL(req.url);
    let args = {};
    if (req.method === "POST") {
      const text = await req.text();
      try {
        args = text ? JSON.parse(text) : {};
      } catch {
        throw new RestError(400, "PGRST102", "Empty or invalid json");
      }
      if (args === null || typeof args !== "object" || Array.isArray(args)) throw unsupported("rpc with a non-object body");
      for (const key of url.searchParams.keys()) throw unsupported(`filters and modifiers on rpc results (${key}=)`);
    } else if (req.method === "GET" || req.method === "HEAD") {
      for (const [k, v] of url.searchParams) args[k] = v;
    } else throw unsupported(`${req.method} on rpc`);
    const keys = Object.keys(args);
    // The overload whose argument names match, as PostgREST chooses (required ones all given).
    const candidates = c.functions.filter((f) => f.name === name).filter((f) => {
      const names = f.args.map((a) => a.name);
      const required = f.args.slice(0, f.args.length - f.defaults).map((a) => a.name);
      return keys.every((k) => names.includes(k)) && required.every((n) => keys.includes(n));
    });
    if (candidates.length !== 1) {
      throw new RestError(404, candidates.length ? "PGRST203" : "PGRST202",
        candidates.length
          ? `Could not choose the best candidate function between: ${candidates.map((f) => `public.${f.name}`).join(", ")}`
          : `Could not find the function public.${name}(${keys.join(", ")}) in the schema cache`);
    }
    const f = candidates[0];
    // Argument names and types come from the catalog (a client's key only selects one of them).
    const named = keys.map((k) => {
      const a = f.args.find((x) => x.name === k);
      const literal = `'${a.name.replaceAll("'", "''")}'`;
      const v = ["json", "jsonb"].includes(a.type) ? `($1::text::jsonb -> ${literal})` : `($1::text::jsonb ->> ${literal})`;
      return `${quote(a.name)} => cast(${v} as ${a.type})`;
    });
    const rows = await asCaller(claims, (tx) =>
      tx.unsafe(`select to_json(r) as v from public.${quote(f.name)}(${named.join(", ")}) as r`, [JSON.stringify(args)]));
    return reply(200, f.returns_set ? rows.map((r) => r.v) : rows[0]?.v ?? null);
  }

  async function read(req, name, claims) {
    const c = await cat();
    const rel = relation(c, name);
    const url = new URL(req.url);
    const items = parseSelect(url.searchParams.get("select") ?? "*");
    const values = [];
    const { wheres, order, limit, offset } = modifiers(rel, url.searchParams, values);
    const row = rowJson(c, rel, "t0", items, 0, wheres);
    const where = wheres.length ? ` where ${wheres.join(" and ")}` : "";
    const accept = req.headers.get("accept") ?? "application/json";
    const single = accept.startsWith("application/vnd.pgrst.object+json");
    if (!single && !/application\/json|\*\/\*/.test(accept)) throw unsupported(`Accept: ${accept}`);
    const prefer = req.headers.get("prefer") ?? "";
    const wantCount = /count=(exact|planned|estimated)/.test(prefer);
    const text = `select coalesce(json_agg(_s.v), '[]'::json) as v,
        ${wantCount ? `(select count(*) from public.${quote(rel.name)} t0${where})` : "null"}::int as total
      from (select ${row} as v from public.${quote(rel.name)} t0${where}${order}${limit}${offset}) _s`;
    const [{ v, total }] = await asCaller(claims, (tx) => tx.unsafe(text, values));
    const first = Number(url.searchParams.get("offset") ?? 0);
    const range = v.length ? `${first}-${first + v.length - 1}/${total ?? "*"}` : `*/${total ?? "*"}`;
    if (single && v.length !== 1) {
      throw new RestError(406, "PGRST116", "JSON object requested, multiple (or no) rows returned",
        `The result contains ${v.length} rows`);
    }
    const headers = { "content-range": range };
    if (req.method === "HEAD") return new Response(null, { status: 200, headers });
    return reply(200, single ? v[0] : v, headers);
  }

  return async function handle(req, claims) {
    const url = new URL(req.url);
    const path = url.pathname.replace(/^\/rest\/v1\/?/, "");
    try {
      const schema = req.headers.get("accept-profile") ?? req.headers.get("content-profile");
      if (schema && schema !== "public") throw unsupported(`schema ${schema} (only public is exposed)`);
      if (path === "") throw unsupported("the OpenAPI description (GET /rest/v1/)");
      if (path.startsWith("rpc/")) return await rpc(req, decodeURIComponent(path.slice(4)), claims);
      if (path.includes("/")) throw new RestError(404, "PGRST125", `Invalid path /rest/v1/${path}`);
      if (req.method !== "GET" && req.method !== "HEAD") throw unsupported(`${req.method} on a table (writes go through rpc and the functions here)`);
      return await read(req, decodeURIComponent(path), claims);
    } catch (e) {
      if (e instanceof RestError) {
        return reply(e.status, { code: e.code, message: e.message, details: e.details, hint: e.hint });
      }
      if (typeof e?.code === "string" && /^[0-9A-Z]{5}$/.test(e.code)) {
        return reply(statusOf(e.code, claims.role), { code: e.code, message: e.message, details: e.detail ?? null, hint: e.hint ?? null });
      }
      throw e;
    }
  };
}

/**
 * A fetch for createClient's `global.fetch` (tests that talk to the database directly): /rest/v1
 * under apiUrl is answered in-process by the same stand-in, checking JWTs against `jwks`;
 * anything else goes to the network. The stack's API URL serves the same on its own.
 */
export function restFetch({ apiUrl, sql, jwks }) {
  const keySet = jose.createLocalJWKSet(jwks);
  const prefix = `${apiUrl.replace(/\/+$/, "")}/rest/v1/`;
  const handle = postgrest({ sql });
  return async (input, init) => {
    const req = new Request(input, init);
    if (!req.url.startsWith(prefix)) return fetch(req);
    const auth = req.headers.get("authorization") ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : req.headers.get("apikey");
    let claims = { role: "anon" };
    if (token) {
      try {
        claims = (await jose.jwtVerify(token, keySet)).payload;
      } catch (e) {
        return reply(401, { code: "PGRST301", message: `JWT rejected: ${e.message}`, details: null, hint: null });
      }
    }
    return await handle(req, claims);
  };
}
