// Starting the Deno parts of the local stack (the functions server, the fake upstreams) and
// the env Supabase gives functions. Used by `npm start`, `npm test` and `npm run bench`.
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { freePort } from "./pg.mjs";
import { bin, onInterrupt, root, ScriptError, stopChildren, track } from "./run.mjs";

export { onInterrupt, stopChildren };

/** KEY=VALUE lines of a dotenv file (comments and blank lines skipped, quotes removed). */
export function readEnvFile(file) {
  if (!fs.existsSync(file)) return {};
  const env = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || line.trim().startsWith("#")) continue;
    env[m[1]] = m[2].replace(/^(['"])(.*)\1$/, "$2");
  }
  return env;
}

/**
 * The env Supabase injects into every function: the new API keys as JSON objects of named keys
 * (as a hosted project has them), the legacy anon and service_role JWTs, and the JWKS.
 */
export function supabaseEnv({ apiPort, dbUrl, keys }) {
  return {
    SUPABASE_URL: `http://127.0.0.1:${apiPort}`,
    SUPABASE_DB_URL: dbUrl,
    SUPABASE_JWKS: JSON.stringify(keys.jwks),
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: keys.publishableKey }),
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: keys.secretKey }),
    SUPABASE_ANON_KEY: keys.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey,
    SUPABILL_API_PORT: String(apiPort),
  };
}

/**
 * Start `deno run` on a script and wait until it prints a line matching `ready` (stdout or
 * stderr); resolves with the child and the matching line. Output goes to logFile.
 */
export function startDeno(script, { env, ready, logFile, timeoutMs = 60_000 }) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(bin("deno"), ["run", "-A", "--quiet", script], {
      cwd: root,
      env: { ...process.env, ...env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: false,
    }));
    const log = fs.createWriteStream(logFile, { flags: "a" });
    let seen = "";
    const timer = setTimeout(() => fail(`${path.basename(script)} did not start within ${timeoutMs / 1000}s`), timeoutMs);
    function fail(msg) {
      clearTimeout(timer);
      child.kill("SIGTERM");
      reject(new ScriptError(`${msg}\n${seen.split("\n").slice(-20).join("\n")}\n(log: ${logFile})`));
    }
    const onData = (d) => {
      log.write(d);
      if (seen === null) return;
      seen += d;
      const line = seen.split("\n").find((l) => ready.test(l));
      if (line) {
        clearTimeout(timer);
        seen = null;
        resolve({ child, line });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      if (seen !== null) fail(`${path.basename(script)} exited with ${code} before it was ready`);
    });
  });
}

/** The sender address of notifications on the local stack (the fake email API accepts anything). */
export const LOCAL_EMAIL_FROM = "Supabill <billing@supabill.local>";

/** Start the fake Groq / Razorpay / PayU / Resend / Stripe server; resolves with its URL. */
export async function startFakeUpstreams({ env, logFile }) {
  const { line } = await startDeno(path.join(root, "tests", "fakes", "upstreams.ts"), {
    env,
    ready: /"url"\s*:/,
    logFile,
  });
  return JSON.parse(line.slice(line.indexOf("{"))).url;
}

/** Start the functions server; resolves with its process (a deno child) when it listens. */
export async function startFunctions({ env, logFile }) {
  const { child } = await startDeno(path.join(root, "scripts", "functions-server.ts"), { env, ready: /"listening"/, logFile });
  return child;
}

/**
 * The stack `npm test` and the benchmarks run against: fresh random provider secrets, the fake
 * Groq / Razorpay / PayU / Resend server with them, the env Supabase gives functions pointing every
 * provider at the fakes, the legacy HS256 secret as the project's own setting SUPABILL_JWT_SECRET
 * (so HS256 user tokens can be tested), and the functions server on a free port. Logs go to logDir.
 * Resolves with the functions' env, the API URL, the fakes' URL, the provider secrets and the
 * functions server's process id (the AI benchmark reads its CPU time).
 */
export async function startLocalStack({ db, keys, logDir = db.dir, extraEnv = {} }) {
  const secret = () => crypto.randomBytes(12).toString("hex");
  const providers = {
    PAYU_MERCHANT_KEY: `k${secret().slice(0, 6)}`,
    PAYU_MERCHANT_SALT: secret(),
    RAZORPAY_KEY_ID: `rzp_test_${secret().slice(0, 14)}`,
    RAZORPAY_KEY_SECRET: secret(),
    RAZORPAY_WEBHOOK_SECRET: secret(),
    GROQ_API_KEY: `gsk_${secret()}`,
    RESEND_API_KEY: `re_${secret()}`,
    STRIPE_SECRET_KEY: `sk_test_${secret()}`,
    STRIPE_WEBHOOK_SECRET: `whsec_${secret()}`,
  };
  const fakesUrl = await startFakeUpstreams({ env: providers, logFile: path.join(logDir, "fakes.log") });
  const apiPort = await freePort();
  const env = {
    ...supabaseEnv({ apiPort, dbUrl: db.url, keys }),
    SUPABILL_JWT_SECRET: keys.jwtSecret,
    ...providers,
    PAYU_BASE_URL: fakesUrl,
    RAZORPAY_API_BASE: `${fakesUrl}/v1`,
    STRIPE_API_BASE: `${fakesUrl}/stripe`,
    GROQ_BASE_URL: fakesUrl,
    RESEND_BASE_URL: fakesUrl,
    EMAIL_FROM: LOCAL_EMAIL_FROM,
    FAKE_UPSTREAMS_URL: fakesUrl,
    SUPABILL_LOG: "off",
    ...extraEnv,
  };
  const functions = await startFunctions({ env, logFile: path.join(logDir, "functions.log") });
  return { env, apiUrl: env.SUPABASE_URL, fakesUrl, providers, functionsPid: functions.pid };
}
