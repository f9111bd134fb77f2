// The local stand-in for Supabase's edge runtime and gateway: serves every folder of
// supabase/functions (but _shared) at /functions/v1/<name>, checks the JWT first for functions
// whose verify_jwt is true (config.toml; true by default, as on Supabase) and answers a failure
// the way the hosted gateway does (its own body, {"code":401,"message":...}, not our codes), and
// passes the request to the function's handler, the `handler` export of <name>/handler.ts (its
// index.ts only hands that handler to Deno.serve, as it does on Supabase). Every function of
// supabill sets verify_jwt = false and checks its caller itself.
//
// /rest/v1 is answered by tests/fakes/postgrest.mjs, the stand-in for PostgREST (what it serves
// is listed there and in docs/local-stack.md), as the caller the API key or JWT names: an
// sb_secret_ key or the service_role key is service_role, a publishable or anon key is anon, a
// user's JWT is its own claims. Any other path answers 404 with a pointer to the docs.
//
// Work a function hands to EdgeRuntime.waitUntil (the AI gateway's settlement) runs after its
// response as on Supabase: the server installs a compatible EdgeRuntime (_shared/after-response.ts)
// and on SIGTERM or SIGINT stops taking requests, awaits that work, then exits.
//
// Env: SUPABILL_API_PORT (default 54321), plus everything the functions read.
import { parse } from "npm:smol-toml@1.9.1";
import { installEdgeRuntime } from "../supabase/functions/_shared/after-response.ts";
import { bearerToken, callerOf, type Claims, verifyJwt } from "../supabase/functions/_shared/auth.ts";
import { db } from "../supabase/functions/_shared/db.ts";
import { postgrest } from "../tests/fakes/postgrest.mjs";
import { corsHeaders, HttpError, json } from "../supabase/functions/_shared/http.ts";

type Handler = (req: Request) => Response | Promise<Response>;

const edgeRuntime = installEdgeRuntime();

const functionsDir = new URL("../supabase/functions/", import.meta.url);
const config = parse(await Deno.readTextFile(new URL("../config.toml", functionsDir))) as {
  functions?: Record<string, { verify_jwt?: boolean }>;
};

async function mount(name: string): Promise<Handler> {
  const module = await import(new URL(`${name}/handler.ts`, functionsDir).href);
  if (typeof module.handler !== "function") {
    throw new Error(`supabase/functions/${name}/handler.ts does not export a handler`);
  }
  return module.handler as Handler;
}

const handlers = new Map<string, { handler: Handler; verifyJwt: boolean }>();
for await (const entry of Deno.readDir(functionsDir)) {
  if (!entry.isDirectory || entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
  handlers.set(entry.name, {
    handler: await mount(entry.name),
    verifyJwt: config.functions?.[entry.name]?.verify_jwt ?? true,
  });
}

function withCors(res: Response): Response {
  for (const [k, v] of Object.entries(corsHeaders)) if (!res.headers.has(k)) res.headers.set(k, v);
  return res;
}

const rest = postgrest({ sql: db() });

/** The claims PostgREST would run a /rest/v1 request with; a 401 in PostgREST's shape if the key is not the project's. */
async function restClaims(req: Request): Promise<Claims | Response> {
  try {
    const caller = await callerOf(req);
    if (caller.kind === "secret") return { role: "service_role" };
    if (caller.kind === "publishable") return { role: "anon" };
    return caller.claims;
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    // As Supabase's gateway: no key at all is refused before PostgREST.
    const code = e.code === "missing_authorization" ? "no_api_key" : "PGRST301";
    return json({ code, message: e.message, details: null, hint: null }, 401);
  }
}

const port = Number(Deno.env.get("SUPABILL_API_PORT") ?? 54321);
const server = Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: () => console.error(JSON.stringify({ listening: `http://127.0.0.1:${port}`, functions: [...handlers.keys()].sort() })),
}, async (req) => {
  const { pathname } = new URL(req.url);
  // The local stack's own: answers once the work functions handed to EdgeRuntime.waitUntil (the AI
  // gateway's settlements) is done, so a test or script that reads the database right after an
  // answer sees what that answer settled. Not a Supabase route.
  if (pathname === "/__local/after-response" && req.method === "GET") {
    const pending = edgeRuntime.pending();
    await edgeRuntime.drain();
    return json({ drained: pending });
  }
  if (pathname === "/rest/v1" || pathname.startsWith("/rest/v1/")) {
    if (req.method === "OPTIONS") return withCors(new Response(null, { status: 204 }));
    const claims = await restClaims(req);
    return withCors(claims instanceof Response ? claims : await rest(req, claims));
  }
  const match = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(pathname);
  const fn = match && handlers.get(match[1]);
  if (!fn) {
    return withCors(json({
      code: "not_found",
      message: `no function at ${pathname}: the local stack serves /functions/v1/<name> and a stand-in for PostgREST at ` +
        "/rest/v1 (docs/local-stack.md); Auth, Storage and Realtime need `npx supabase start` or a hosted project",
    }, 404));
  }
  if (fn.verifyJwt && req.method !== "OPTIONS") {
    try {
      await verifyJwt(bearerToken(req));
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      const message = e.code === "missing_authorization" ? "Missing authorization header" : "Invalid JWT";
      return withCors(json({ code: 401, message }, 401));
    }
  }
  return await fn.handler(req);
});

// Shutdown: no new requests, then the work still pending after responses (settlements), then exit.
let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, async () => {
    if (stopping) return;
    stopping = true;
    const pending = edgeRuntime.pending();
    await server.shutdown().catch(() => {});
    await edgeRuntime.drain();
    if (pending > 0) console.error(JSON.stringify({ stopped: signal, finished_after_response: pending }));
    Deno.exit(0);
  });
}
