// npm test: a throwaway cluster on a free port (never the dev database), migrations + seed,
// pgTAP, `supabase db lint`, `supabase db advisors`, the database.types.ts drift check, then
// `deno test` against the local functions server and fake upstreams. Ends with one line
// `N passed, N failed`; removes its cluster and servers even when interrupted or failing.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ensureNodeDeps } from "./lib/deps.mjs";
import { loadOrCreateKeys } from "./lib/keys.mjs";
import { ensurePgPackages, freePort, tempCluster } from "./lib/pg.mjs";
import { bin, main, root, run } from "./lib/run.mjs";
import { onInterrupt, startFakeUpstreams, startFunctions, stopChildren, supabaseEnv } from "./lib/stack.mjs";

const tally = { passed: 0, failed: 0 };
// PGSSLMODE=disable: the local cluster has no TLS, and the CLI would print a banner about it into stdout.
const cli = { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1", NO_COLOR: "1", PGSSLMODE: "disable" };

function record(name, ok, detail = "") {
  tally[ok ? "passed" : "failed"]++;
  console.log(`${ok ? "ok" : "not ok"} - ${name}${detail ? `\n${detail}` : ""}`);
}

/** pgTAP over supabase/tests/database with pg_prove; every assertion counts. */
async function pgTap(db) {
  const dir = path.join(root, "supabase", "tests", "database");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".test.sql")).sort().map((f) => path.join(dir, f));
  const { code, stdout, stderr } = await run("pg_prove", ["-d", db.url, "--timer", ...files], { allowFail: true });
  process.stdout.write(stdout);
  const total = Number(/Tests=(\d+)/.exec(stdout)?.[1] ?? 0);
  let failed = [...stdout.matchAll(/Failed (\d+)\/\d+ subtests/g)].reduce((n, m) => n + Number(m[1]), 0);
  if (code !== 0 && failed === 0) failed = 1; // a file died (bad plan, SQL error) without a failed assertion
  if (code !== 0) process.stdout.write(stderr);
  tally.passed += Math.max(total - failed, 0);
  tally.failed += failed;
}

async function lint(db) {
  const { code, stdout, stderr } = await run(bin("supabase"), [
    "db", "lint", "--db-url", db.url, "--schema", "public,billing", "--level", "warning", "--fail-on", "warning",
  ], { env: cli, allowFail: true });
  record("supabase db lint reports nothing at ERROR or WARN", code === 0 && !/"level"/.test(stdout), code ? stdout + stderr : "");
}

async function advisors(db) {
  const { code, stdout, stderr } = await run(bin("supabase"), ["db", "advisors", "--db-url", db.url], {
    env: cli,
    allowFail: true,
  });
  const clean = code === 0 && /No issues found/i.test(stdout + stderr);
  record("supabase db advisors reports nothing at ERROR or WARN", clean, clean ? "" : stdout + stderr);
}

async function typesDrift(db) {
  const file = path.join(root, "supabase", "functions", "_shared", "database.types.ts");
  const { stdout } = await run(bin("supabase"), ["gen", "types", "typescript", "--db-url", db.url, "--schema", "public"], {
    env: cli,
  });
  const committed = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  const same = committed.trim() === stdout.trim();
  record(
    "database.types.ts matches `supabase gen types typescript`",
    same,
    same ? "" : "  regenerate: npx supabase gen types typescript --db-url <url> --schema public > supabase/functions/_shared/database.types.ts",
  );
}

/** Every function type-checks and lints clean, as `supabase functions deploy` would bundle it. */
async function denoCheck() {
  const check = await run(bin("deno"), ["check", "supabase/functions", "scripts/functions-server.ts"], {
    env: { NO_COLOR: "1" },
    allowFail: true,
  });
  record("deno check: every function type-checks", check.code === 0, check.code ? check.stderr.slice(-3000) : "");
  const lint = await run(bin("deno"), ["lint", "supabase/functions", "tests", "scripts"], {
    env: { NO_COLOR: "1" },
    allowFail: true,
  });
  record("deno lint: functions, tests and scripts are clean", lint.code === 0, lint.code ? lint.stdout + lint.stderr : "");
}

async function denoTests(env) {
  const { code, stdout, stderr } = await run(bin("deno"), ["test", "-A", "tests/"], {
    env: { ...env, NO_COLOR: "1" },
    allowFail: true,
  });
  process.stdout.write(stdout);
  if (code !== 0) process.stdout.write(stderr);
  const summary = /(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(stdout);
  const passed = Number(summary?.[1] ?? 0);
  let failed = Number(summary?.[2] ?? 0);
  if (code !== 0 && failed === 0) failed = 1;
  tally.passed += passed;
  tally.failed += failed;
}

main(async () => {
  await ensureNodeDeps();
  await ensurePgPackages();
  const db = await tempCluster("test");
  const cleanup = async () => {
    await stopChildren();
    await db.remove();
  };
  onInterrupt(cleanup);
  try {
    await db.init();
    await db.start();
    await db.prepare();
    console.log(`# test database ${db.url}`);

    await pgTap(db);
    await lint(db);
    await advisors(db);
    await typesDrift(db);
    await denoCheck();

    const keys = await loadOrCreateKeys(path.join(db.dir, "keys.json"));
    const apiPort = await freePort();
    const secret = () => crypto.randomBytes(12).toString("hex");
    const providers = {
      PAYU_MERCHANT_KEY: `k${secret().slice(0, 6)}`,
      PAYU_MERCHANT_SALT: secret(),
      RAZORPAY_KEY_ID: `rzp_test_${secret().slice(0, 14)}`,
      RAZORPAY_KEY_SECRET: secret(),
      RAZORPAY_WEBHOOK_SECRET: secret(),
      GROQ_API_KEY: `gsk_${secret()}`,
    };
    const fakes = await startFakeUpstreams({ env: providers, logFile: path.join(db.dir, "fakes.log") });
    const env = {
      ...supabaseEnv({ apiPort, dbUrl: db.url, keys }),
      ...providers,
      PAYU_BASE_URL: fakes,
      RAZORPAY_API_BASE: `${fakes}/v1`,
      GROQ_BASE_URL: fakes,
      FAKE_UPSTREAMS_URL: fakes,
      SUPABILL_TEST_PRIVATE_JWK: JSON.stringify(keys.privateJwk),
      SUPABILL_LOG: "off",
    };
    await startFunctions({ env, logFile: path.join(db.dir, "functions.log") });
    await denoTests(env);
  } finally {
    await cleanup();
  }
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exitCode = tally.failed > 0 ? 1 : 0;
});
