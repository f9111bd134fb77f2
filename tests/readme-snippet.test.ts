// README.md's "Use it from your app" snippet, verbatim (read from README.md at test time, so the
// README and this test cannot drift), run by Node with the real @supabase/supabase-js against the
// stack npm test started: the same functions server `npm start` runs, serving /rest/v1 with the
// stand-in for PostgREST (tests/fakes/postgrest.mjs). The app's user is made with `npm run user`
// and its session put where supabase-js keeps a signed-in browser's (localStorage), so the
// snippet runs as written: createClient(url, publishable key) and nothing else.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { adminSql, env } from "./helpers.ts";

const root = new URL("../", import.meta.url).pathname;
const testOptions = { sanitizeOps: false, sanitizeResources: false };

/**
 * The ```ts blocks under the "## Use it from your app" heading, in order, as one program: the
 * first is the app's page code, the next ones (usage-track) continue it.
 */
export async function readmeSnippet(): Promise<string> {
  const readme = await Deno.readTextFile(`${root}README.md`);
  const section = readme.split(/^## /m).find((s) => s.startsWith("Use it from your app"));
  assert(section, "README.md has no 'Use it from your app' section");
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert(blocks.length >= 2, "the section has no ```ts blocks for the app and for usage-track");
  return blocks.join("\n");
}

/**
 * A state folder holding the test stack's keys (as `npm start` keeps its own), so `npm run user`
 * signs tokens the test stack accepts, and the env that points the scripts at the test database.
 */
async function scriptsAgainstTestStack() {
  const dir = await Deno.makeTempDir({ prefix: "supabill-user-test-" });
  await Deno.writeTextFile(`${dir}/keys.json`, JSON.stringify({
    privateJwk: JSON.parse(env("SUPABILL_TEST_PRIVATE_JWK")),
    jwks: JSON.parse(env("SUPABASE_JWKS")),
    anonKey: env("SUPABASE_ANON_KEY"),
    serviceRoleKey: env("SUPABASE_SERVICE_ROLE_KEY"),
    publishableKey: Object.values(JSON.parse(env("SUPABASE_PUBLISHABLE_KEYS")))[0],
    secretKey: Object.values(JSON.parse(env("SUPABASE_SECRET_KEYS")))[0],
  }));
  const port = new URL(env("SUPABASE_DB_URL")).port;
  return { dir, env: { SUPABILL_STATE_DIR: dir, SUPABILL_DB_PORT: port, NO_COLOR: "1" } };
}

async function npmRun(args: string[], extraEnv: Record<string, string>) {
  const out = await new Deno.Command("npm", {
    args: ["run", "-s", ...args],
    cwd: root,
    env: extraEnv,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** `npm run user -- <email>`: its id and token. */
export async function npmRunUser(email: string, extraEnv: Record<string, string>) {
  const r = await npmRun(["user", "--", email], extraEnv);
  assertEquals(r.code, 0, r.stderr);
  const id = /^id: (\S+)$/m.exec(r.stdout)?.[1];
  const token = /^token: (\S+)$/m.exec(r.stdout)?.[1];
  assert(id && token, r.stdout);
  return { id, token, stdout: r.stdout };
}

Deno.test({
  name: "npm run user -- <email>: a confirmed user with its id and a token the API accepts; the same email again is the same user",
  ...testOptions,
  fn: async () => {
    const { dir, env: scriptEnv } = await scriptsAgainstTestStack();
    const sql = adminSql(1);
    try {
      const email = `Newbie-${crypto.randomUUID().slice(0, 8)}@Example.com`;
      const first = await npmRunUser(email, scriptEnv);
      assert(first.stdout.includes(`email: ${email.toLowerCase()}`), first.stdout);
      const rows = await sql`select id::text, email, role, aud, email_confirmed_at is not null as confirmed
        from auth.users where email = ${email.toLowerCase()}`;
      assertEquals(rows.map((r) => ({ ...r })), [
        { id: first.id, email: email.toLowerCase(), role: "authenticated", aud: "authenticated", confirmed: true },
      ]);
      // The token is the user's: /rest/v1 runs create_organization as them.
      const res = await fetch(`${env("SUPABASE_URL")}/rest/v1/rpc/create_organization`, {
        method: "POST",
        headers: { authorization: `Bearer ${first.token}`, "content-type": "application/json" },
        body: JSON.stringify({ p_name: "Made by npm run user" }),
      });
      const orgId = await res.json();
      assertEquals(res.status, 200, JSON.stringify(orgId));
      const [owner] = await sql`select user_id::text, role from public.organization_members where organization_id = ${orgId}`;
      assertEquals({ ...owner }, { user_id: first.id, role: "owner" });

      const again = await npmRunUser(email, scriptEnv);
      assertEquals(again.id, first.id);
      const bad = await npmRun(["user", "--", "not-an-email"], scriptEnv);
      assert(bad.code !== 0 && bad.stderr.includes("usage: npm run user -- <email>"), bad.stderr);
    } finally {
      await sql.end();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "README 'Use it from your app': the snippet, verbatim, runs on Node with supabase-js against the local stack",
  ...testOptions,
  fn: async () => {
    const snippet = await readmeSnippet();
    const { dir, env: scriptEnv } = await scriptsAgainstTestStack();
    const sql = adminSql(1);
    try {
      const { id: userId, token } = await npmRunUser(`snippet-${crypto.randomUUID().slice(0, 8)}@example.com`, scriptEnv);
      const apiUrl = env("SUPABASE_URL");
      const session = {
        access_token: token,
        refresh_token: "local-stack-has-no-auth-server",
        token_type: "bearer",
        expires_in: 3600,
        expires_at: Math.floor(Date.now() / 1000) + 3600,
        user: { id: userId, aud: "authenticated", role: "authenticated" },
      };
      // What the app has where the snippet starts: its URL and publishable key, and, as in a browser
      // after sign-in, the user's session in localStorage under supabase-js's default key.
      const prelude = `
const SUPABASE_URL = ${JSON.stringify(apiUrl)};
const SUPABASE_PUBLISHABLE_KEY = ${JSON.stringify(Object.values(JSON.parse(env("SUPABASE_PUBLISHABLE_KEYS")))[0])};
const stored = new Map([[${JSON.stringify(`sb-${new URL(apiUrl).hostname.split(".")[0]}-auth-token`)}, ${JSON.stringify(JSON.stringify(session))}]]);
globalThis.localStorage = {
  getItem: (k) => stored.get(k) ?? null, setItem: (k, v) => void stored.set(k, String(v)), removeItem: (k) => void stored.delete(k),
};
// supabase-js keeps the session in localStorage only in a browser (window and document defined).
const noEvents = { addEventListener() {}, removeEventListener() {} };
globalThis.window = { ...noEvents, location: new URL("http://localhost:3000/billing"), localStorage: globalThis.localStorage };
globalThis.document = { ...noEvents, visibilityState: "visible" };
`;
      const epilogue = `
console.log(JSON.stringify({ orgId, plan, usage, subscription, payments, checkout, error: error ?? null, track }));
process.exit(0); // the browser-mode auth client keeps a refresh timer
`;
      await Deno.writeTextFile(`${dir}/database.types.ts`, await Deno.readTextFile(`${root}supabase/functions/_shared/database.types.ts`));
      await Deno.writeTextFile(`${dir}/app.ts`, prelude + snippet + epilogue);
      await Deno.symlink(`${root}node_modules`, `${dir}/node_modules`);
      await Deno.writeTextFile(`${dir}/package.json`, JSON.stringify({ type: "module" }));
      const out = await new Deno.Command("node", {
        args: ["app.ts"],
        cwd: dir,
        env: { NODE_NO_WARNINGS: "1" },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, `node app.ts exited with ${out.code}\n${stdout}\n${stderr}`);
      assert(!/deprecated|WebSocket/i.test(stderr), stderr);
      const r = JSON.parse(stdout.trim().split("\n").at(-1)!);

      // create_organization made the user its owner; get_entitlements is the free plan.
      assert(/^[0-9a-f-]{36}$/.test(r.orgId), stdout);
      const [member] = await sql`select user_id::text, role from public.organization_members where organization_id = ${r.orgId}`;
      assertEquals({ ...member }, { user_id: userId, role: "owner" });
      assertEquals([r.plan.plan_code, r.plan.status, r.plan.in_grace], ["free", "free", false]);
      const [{ features }] = await sql`select features from public.billing_plans where code = 'free'`;
      assertEquals(r.plan.features, features);
      // get_usage: one row per metered window of the free plan, nothing used yet.
      assert(Array.isArray(r.usage) && r.usage.length > 0, stdout);
      for (const u of r.usage) {
        assertEquals(Object.keys(u).sort(), ["limit_amount", "metric", "percent", "remaining", "resets_at", "scope", "used", "window_start", "window_unit"]);
        assertEquals(Number(u.used), 0);
      }
      // No subscription and no payments yet: maybeSingle gives null, the list [].
      assertEquals([r.subscription, r.payments], [null, []]);
      // checkout: a pending PayU order for pro_monthly, whose form posts to the fake PayU.
      assertEquals(r.error, null);
      assertEquals([r.checkout.provider, r.checkout.currency, r.checkout.action_url], ["payu", "INR", `${env("FAKE_UPSTREAMS_URL")}/_payment`]);
      const orders = await sql`select o.status, p.code from public.orders o join public.billing_plans p on p.id = o.plan_id
        where o.organization_id = ${r.orgId}`;
      assertEquals(orders.map((o) => ({ ...o })), [{ status: "pending", code: "pro_monthly" }]);
      // usage-track: the signed-in member reports one export (a client metric of the free plan),
      // counted once in today's window.
      assertEquals(r.track.results.length, 1, stdout);
      const [tracked] = r.track.results;
      assertEquals([tracked.allowed, Number(tracked.used), tracked.duplicate], [true, 1, false]);
      const [{ count }] = await sql`select count(*)::int as count from public.usage_metrics
        where organization_id = ${r.orgId} and metric = 'report_exports'`;
      assertEquals(count, 1);
    } finally {
      await sql.end();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
