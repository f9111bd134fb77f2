// `npm run demo` (scripts/demo.mjs) as a newcomer runs it, against the stack npm test started: a
// stack.json in a temporary folder says where that stack is (as `npm start` writes one for the dev
// stack). Every numbered step must end with its check passed, and what the demo says it did must be
// true in the database. Against a stack that is not running it must stop with "run npm start first".
// The demo makes its own user and organizations, so it cannot disturb other tests.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { adminSql, env } from "./helpers.ts";

const root = new URL("../", import.meta.url).pathname;
const testOptions = { sanitizeOps: false, sanitizeResources: false };
const stateHome = await Deno.makeTempDir({ prefix: "supabill-demo-state-" });

/** Run the demo with a stack.json describing `stack`; its exit code and output. */
async function runDemo(stack: Record<string, unknown>) {
  const dir = await Deno.makeTempDir({ prefix: "supabill-demo-test-" });
  try {
    const keysFile = `${dir}/keys.json`;
    await Deno.writeTextFile(keysFile, JSON.stringify({
      privateJwk: JSON.parse(env("SUPABILL_TEST_PRIVATE_JWK")),
      jwks: JSON.parse(env("SUPABASE_JWKS")),
      anonKey: env("SUPABASE_ANON_KEY"),
      serviceRoleKey: env("SUPABASE_SERVICE_ROLE_KEY"),
    }));
    const stackFile = `${dir}/stack.json`;
    await Deno.writeTextFile(stackFile, JSON.stringify({ keys_file: keysFile, ...stack }));
    const out = await new Deno.Command("node", {
      args: ["scripts/demo.mjs"],
      cwd: root,
      env: { SUPABILL_DEMO_STACK: stackFile, NO_COLOR: "1", XDG_STATE_HOME: stateHome },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(180_000),
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const testStack = () => ({
  api_url: env("SUPABASE_URL"),
  db_url: env("SUPABASE_DB_URL"),
  fakes_url: env("FAKE_UPSTREAMS_URL"),
  // Groq is not listed as faked: the demo must run as it does with a real GROQ_API_KEY configured
  // (only the payment providers must be the fakes); the test stack's Groq is the fake all the same.
  faked: ["razorpay", "payu", "resend"],
  fake_credentials: Object.fromEntries(
    ["PAYU_MERCHANT_KEY", "PAYU_MERCHANT_SALT", "RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET", "GROQ_API_KEY", "RESEND_API_KEY"]
      .map((name) => [name, env(name)]),
  ),
});

/**
 * Run fn with only the seed's plans (and `keep`) on sale: the demo buys from the catalog, and other
 * tests' plans on this shared database would otherwise be the cheapest. Test files run one at a
 * time, so hiding them for the demo's run disturbs no other test; they are put back after.
 */
async function withSeedCatalog<T>(keep: string[], fn: () => Promise<T>): Promise<T> {
  const sql = adminSql(1);
  const seed = ["free", "basic_monthly", "basic_yearly", "pro_monthly", "pro_yearly", "enterprise_yearly", ...keep];
  const hidden = (await sql`update public.billing_plans set active = false
    where active and not (code = any(${seed}::text[])) returning id`).map((r) => r.id as string);
  try {
    return await fn();
  } finally {
    await sql`update public.billing_plans set active = true where id = any(${hidden}::uuid[])`;
    await sql.end();
  }
}

/** A port nothing listens on (taken and released). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test({
  name: "npm run demo: every numbered step passes its check against the running stack, and what it shows is in the database",
  ...testOptions,
  fn: async () => {
    const { code, stdout, stderr } = await withSeedCatalog([], () => runDemo(testStack()));
    assertEquals(code, 0, `demo exited with ${code}\n${stdout}\n${stderr}`);
    assert(!stdout.includes("✗") && !stderr.includes("✗"), stdout + stderr);

    // Steps 1..N, each with its narration and at least one check passed.
    const steps = stdout.split(/^(?=\d+\. )/m).slice(1);
    assertEquals(steps.map((s) => Number(/^(\d+)\. /.exec(s)![1])), steps.map((_, i) => i + 1));
    assertEquals(steps.length, 14, stdout);
    for (const s of steps) assert(/^ {3}✓ /m.test(s), `no check passed in step:\n${s}`);
    assert(stdout.includes(`Done: ${steps.length} steps.`), stdout);

    // What it says it did happened: the user owns two organizations, both cancelling at the period
    // end, the Razorpay one told Razorpay; the PDF it wrote is one.
    const email = /user (demo-\S+@supabill\.local) \(/.exec(stdout)?.[1];
    assert(email, stdout);
    const sql = adminSql(1);
    try {
      const orgs = await sql`select s.provider, s.status, s.cancel_at_period_end, p.code as plan_code,
          (select count(*)::int from billing.provider_actions a where a.organization_id = o.id and a.kind = 'cancel' and a.state = 'succeeded') as cancels,
          (select count(*)::int from public.invoices i where i.organization_id = o.id) as invoices
        from auth.users u join public.organization_members m on m.user_id = u.id and m.role = 'owner'
        join public.organizations o on o.id = m.organization_id
        join public.subscriptions s on s.organization_id = o.id join public.billing_plans p on p.id = s.plan_id
        where u.email = ${email} order by p.code`;
      assertEquals(orgs.map((r) => ({ ...r })), [
        { provider: "payu", status: "active", cancel_at_period_end: true, plan_code: "basic_monthly", cancels: 0, invoices: 1 },
        { provider: "razorpay", status: "active", cancel_at_period_end: true, plan_code: "pro_monthly", cancels: 1, invoices: 1 },
      ]);
      const [usage] = await sql`select count(*)::int as n from public.ai_requests r join auth.users u on u.id = r.user_id
        where u.email = ${email} and r.status = 'completed'`;
      assertEquals(usage.n, 1);
    } finally {
      await sql.end();
    }
    const pdf = /: (\/\S+\.pdf) \((\d+) bytes, %PDF-\)/.exec(stdout);
    assert(pdf, stdout);
    // In the folder of the user running it (XDG_STATE_HOME is set for the run), not a shared one.
    assert(pdf[1].startsWith(`${stateHome}/supabill/demo/`), pdf[1]);
    const bytes = await Deno.readFile(pdf[1]);
    assertEquals([bytes.length, new TextDecoder().decode(bytes.subarray(0, 5))], [Number(pdf[2]), "%PDF-"]);
    await Deno.remove(pdf[1]);
  },
});

Deno.test({
  name: "npm run demo: against a stack that is not running it stops at once with 'run npm start first'",
  ...testOptions,
  fn: async () => {
    const down = {
      ...testStack(),
      api_url: `http://127.0.0.1:${closedPort()}`,
      fakes_url: `http://127.0.0.1:${closedPort()}`,
      db_url: `postgresql://postgres:postgres@127.0.0.1:${closedPort()}/postgres`,
    };
    const { code, stdout, stderr } = await runDemo(down);
    assert(code !== 0, `exit code ${code}`);
    assert(stderr.includes("run npm start first"), stderr);
    assert(!/^1\. /m.test(stdout), `no step ran:\n${stdout}`);

    // No stack.json at all (npm start never ran, or it stopped and removed its file) says the same.
    const missing = await new Deno.Command("node", {
      args: ["scripts/demo.mjs"],
      cwd: root,
      env: { SUPABILL_DEMO_STACK: `/nonexistent-${crypto.randomUUID()}/stack.json`, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(missing.stderr);
    assert(missing.code !== 0 && said.includes("run npm start first") && said.includes("does not exist"), said);
  },
});

Deno.test({
  name: "npm run demo buys what the catalog offers, not the seed's codes: a cheaper monthly plan added is the one it pays with PayU",
  ...testOptions,
  fn: async () => {
    const sql = adminSql(1);
    const code = `t_demo_starter_${crypto.randomUUID().slice(0, 8).replaceAll("-", "")}`;
    try {
      // Cheaper than any other paid monthly plan, metering Groq tokens, no Razorpay plan id.
      await sql`insert into public.billing_plans (code, name, tier, interval, price_cents, features)
        select ${code}, 'Starter (demo test)', 'basic', 'month', 100, features || '{"groq_tokens_per_month": 5000}'::jsonb
        from public.billing_plans where code = 'basic_monthly'`;
      const { code: exit, stdout, stderr } = await withSeedCatalog([code], () => runDemo(testStack()));
      assertEquals(exit, 0, `demo exited with ${exit}\n${stdout}\n${stderr}`);
      assert(stdout.includes(`the demo buys Starter (demo test) (${code}) with PayU and Pro (monthly) (pro_monthly) with Razorpay`), stdout);
      const email = /user (demo-\S+@supabill\.local) \(/.exec(stdout)![1];
      const plans = await sql`select s.provider, p.code from auth.users u
        join public.organization_members m on m.user_id = u.id and m.role = 'owner'
        join public.subscriptions s on s.organization_id = m.organization_id join public.billing_plans p on p.id = s.plan_id
        where u.email = ${email} order by s.provider`;
      assertEquals(plans.map((r) => ({ ...r })), [{ provider: "payu", code }, { provider: "razorpay", code: "pro_monthly" }]);
    } finally {
      await sql`update public.billing_plans set active = false where code = ${code}`;
      await sql.end();
    }
  },
});
