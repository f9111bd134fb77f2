// A fake of PostgREST's /rest/v1, a stand-in for the real server, for supabase-js on the local
// stack. It lives with the other fakes (tests/fakes/) because that is what it is: not PostgREST, and
// not meant to grow into it. The local stack serves only functions (no Docker, so no PostgREST);
// `npm run demo` (scripts/demo.mjs) and tests/usage-alerts.test.ts want to make the calls a frontend
// makes (`supabase.rpc(...)`, `supabase.from(...).select(...)`), so they give supabase-js this
// `fetch`: requests to /rest/v1 are answered here by running the SQL PostgREST would run, as the
// caller (the JWT verified with the stack's public key, then `role` and `request.jwt.claims` set
// for the transaction, so grants and RLS decide exactly as on Supabase); anything else goes to
// the network.
//
// The PostgREST features it covers, and nothing more:
//   POST /rest/v1/rpc/<function>   JSON named arguments -> the result (a set as an array); the
//                                  function must be in `public` and not overloaded
//   GET  /rest/v1/rpc/<function>   the same, without arguments
//   GET  /rest/v1/<table>?select=a,b&<column>=eq.<value>&order=<column>.asc|desc&limit=<n>
//                                  plain column lists (or *), `eq.` filters, one order, a limit
// Not covered, refused loudly (PGRST100 / PGRST105) rather than answered wrongly: embedded
// resources (`select=*,billing_plans!inner(*)`), other operators (`gt.`, `in.`, `is.` ...) and any
// write to a table (POST/PATCH/DELETE /<table>). `Prefer`, `Range` and count headers are ignored.
// Queries that need what it lacks are tested as SQL (pgTAP), not through this fake.
// Errors come back in PostgREST's shape: {code (SQLSTATE), message, details, hint}; the status is
// this fake's own mapping: 401 for a rejected JWT, 403 for 42501, 404 for P0002 / an unknown
// function, otherwise 400.
import * as jose from "jose";

const IDENT = /^[a-z_][a-z0-9_]*$/;

function answer(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function sqlFailure(e) {
  const code = e?.code ?? "XX000";
  const status = code === "42501" ? 403 : code === "P0002" ? 404 : code === "PGRST401" ? 401 : 400;
  return answer(status, { code, message: e?.message ?? String(e), details: e?.detail ?? null, hint: e?.hint ?? null });
}

/**
 * A fetch for createClient's `global.fetch`: /rest/v1 under apiUrl is answered from the database
 * `sql` (a postgres.js connection able to switch to the API roles), checking JWTs against `jwks`.
 */
export function restFetch({ apiUrl, sql, jwks }) {
  const keySet = jose.createLocalJWKSet(jwks);
  const prefix = `${apiUrl.replace(/\/+$/, "")}/rest/v1/`;

  async function claimsOf(req) {
    const auth = req.headers.get("authorization") ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : req.headers.get("apikey");
    if (!token) return { role: "anon" };
    try {
      return (await jose.jwtVerify(token, keySet)).payload;
    } catch (e) {
      throw Object.assign(new Error(`JWT rejected: ${e.message}`), { code: "PGRST401" });
    }
  }

  /** Run fn(tx) in a transaction as the caller, as PostgREST does. */
  function asCaller(claims, fn) {
    if (!["anon", "authenticated", "service_role"].includes(claims.role)) {
      throw Object.assign(new Error(`role ${claims.role} is not an API role`), { code: "PGRST401" });
    }
    return sql.begin(async (tx) => {
      await tx`select set_config('role', ${claims.role}, true), set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      return await fn(tx);
    });
  }

  async function rpc(req, name) {
    if (!IDENT.test(name)) return answer(404, { code: "PGRST202", message: `no function public.${name}` });
    const args = req.method === "POST" ? JSON.parse((await req.text()) || "{}") : {};
    // The function's IN parameters and whether it returns a set, read as the database owner.
    const params = await sql`select p.parameter_name as name, format('%I.%I', p.udt_schema, p.udt_name) as type,
        p.udt_name in ('json', 'jsonb') as is_json
      from information_schema.parameters p join information_schema.routines r using (specific_schema, specific_name)
      where r.routine_schema = 'public' and r.routine_name = ${name} and p.parameter_mode in ('IN', 'INOUT')`;
    const [fn] = await sql`select bool_or(p.proretset) as set, count(*)::int as n from pg_catalog.pg_proc p
      where p.pronamespace = 'public'::regnamespace and p.proname = ${name}`;
    if (fn.n !== 1) return answer(404, { code: "PGRST202", message: `no single function public.${name}` });
    const known = new Map(params.map((p) => [p.name, p]));
    const unknown = Object.keys(args).filter((k) => !known.has(k));
    if (unknown.length) {
      return answer(404, { code: "PGRST202", message: `public.${name} has no parameter ${unknown.join(", ")}` });
    }
    const named = Object.keys(args).map((k) => {
      const p = known.get(k);
      return p.is_json ? `${k} => ($1::text::jsonb -> '${k}')::${p.type}` : `${k} => ($1::text::jsonb ->> '${k}')::${p.type}`;
    });
    const rows = await asCaller(await claimsOf(req), (tx) =>
      tx.unsafe(`select to_jsonb(r) as v from public.${name}(${named.join(", ")}) as r`, [JSON.stringify(args)]));
    return answer(200, fn.set ? rows.map((r) => r.v) : rows[0]?.v ?? null);
  }

  async function select(req, table, query) {
    if (!IDENT.test(table)) return answer(404, { code: "42P01", message: `no table public.${table}` });
    const columns = (query.get("select") ?? "*").split(",").map((c) => c.trim());
    if (!columns.every((c) => c === "*" || IDENT.test(c))) {
      return answer(400, { code: "PGRST100", message: "only plain column lists are supported here" });
    }
    const where = [];
    const values = [];
    let order = "";
    let limit = "";
    for (const [key, value] of query) {
      if (key === "select") continue;
      if (key === "order") {
        const [col, dir = "asc"] = value.split(".");
        if (!IDENT.test(col) || !["asc", "desc"].includes(dir)) return answer(400, { code: "PGRST100", message: `bad order ${value}` });
        order = ` order by ${col} ${dir}`;
      } else if (key === "limit" && /^\d+$/.test(value)) {
        limit = ` limit ${value}`;
      } else if (IDENT.test(key) && value.startsWith("eq.")) {
        values.push(value.slice(3));
        where.push(`${key}::text = $${values.length}`);
      } else {
        return answer(400, { code: "PGRST100", message: `unsupported filter ${key}=${value}` });
      }
    }
    const text = `select coalesce(jsonb_agg(to_jsonb(t)), '[]'::jsonb) as v from (select ${columns.join(", ")} from public.${table}${
      where.length ? ` where ${where.join(" and ")}` : ""
    }${order}${limit}) t`;
    const [{ v }] = await asCaller(await claimsOf(req), (tx) => tx.unsafe(text, values));
    return answer(200, v);
  }

  return async (input, init) => {
    const req = new Request(input, init);
    if (!req.url.startsWith(prefix)) return fetch(req);
    const url = new URL(req.url);
    const path = url.pathname.slice(new URL(prefix).pathname.length);
    try {
      if (path.startsWith("rpc/")) return await rpc(req, path.slice(4));
      if (req.method === "GET") return await select(req, path, url.searchParams);
      return answer(405, { code: "PGRST105", message: `${req.method} /rest/v1/${path} is not supported here` });
    } catch (e) {
      return sqlFailure(e);
    }
  };
}
