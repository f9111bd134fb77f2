// npm start: the dev database (127.0.0.1:54322, created and seeded on first run, new
// migrations pushed on later runs) and the functions server (127.0.0.1:54321), in the
// foreground. Providers without credentials in the shell or supabase/functions/.env are
// served by the local fakes. A ticker POSTs the HTTP workers (reconcile, provider-sync,
// notifications-send) every SUPABILL_TICK_SECONDS (default 5, 0 = off), as pg_cron does on hosted
// Supabase. While it runs, <state dir>/stack.json says where everything is (for `npm run demo`).
// Ctrl-C stops the functions; `npm run db:stop` stops the database.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ensureNodeDeps } from "./lib/deps.mjs";
import { loadOrCreateKeys } from "./lib/keys.mjs";
import { assertPortFree, devCluster, ensurePgPackages, stateDir } from "./lib/pg.mjs";
import { main, root, ScriptError } from "./lib/run.mjs";
import {
  LOCAL_EMAIL_FROM,
  onInterrupt,
  readEnvFile,
  startFakeUpstreams,
  startFunctions,
  stopChildren,
  supabaseEnv,
} from "./lib/stack.mjs";
import { startTicker, TICK_WORKERS, tickIntervalMs } from "./lib/ticker.mjs";

/** Credentials each provider needs; a provider missing any of them is faked locally. */
const providers = {
  groq: ["GROQ_API_KEY"],
  razorpay: ["RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET"],
  payu: ["PAYU_MERCHANT_KEY", "PAYU_MERCHANT_SALT"],
  resend: ["RESEND_API_KEY"],
  // Faked when STRIPE_SECRET_KEY is unset (the webhook secret then signs the fake's events).
  stripe: ["STRIPE_SECRET_KEY"],
};

main(async () => {
  await ensureNodeDeps();
  await ensurePgPackages();
  const apiPort = Number(process.env.SUPABILL_API_PORT ?? 54321);
  // Checked before anything starts: a bad value stops here with one message.
  const tickMs = tickIntervalMs(process.env.SUPABILL_TICK_SECONDS);
  const db = devCluster();
  // Both ports before anything is created: a busy port on the first start leaves nothing behind.
  const wantDbPort = !db.exists() || !(await db.running());
  for (const [port, what] of [[apiPort, "functions API"], ...(wantDbPort ? [[db.port, "Postgres"]] : [])]) {
    await assertPortFree(port, what).catch((e) => {
      throw new ScriptError(`${e.message}.\nLikely another local stack: \`supabase start\` (Docker) uses 54321/54322 too, or another ` +
        "supabill checkout's npm start. Stop it, or give this one other ports, e.g.\n" +
        `  SUPABILL_DB_PORT=${db.port + 1000} SUPABILL_API_PORT=${apiPort + 1000} npm start\n` +
        "(use the same variables for npm run demo, db:stop and the rest).");
    });
  }

  // A first start that did not finish (killed, or a failure mid-way) left its marker: that
  // database is not a seeded one, so it is made again rather than reported as running.
  const creating = path.join(db.dir, "creating");
  if (db.exists() && fs.existsSync(creating)) {
    console.error("supabill: a previous first start did not finish; creating the dev database again ...");
    await db.remove();
  }
  if (!db.exists()) {
    fs.mkdirSync(db.dir, { recursive: true });
    fs.writeFileSync(creating, "");
    await db.init();
    await db.start();
    await db.prepare();
    fs.rmSync(creating);
  } else {
    if (!(await db.running())) await db.start();
    await db.prepare({ seed: false });
  }

  const keys = await loadOrCreateKeys(path.join(stateDir(), "keys.json"));
  const env = { ...process.env, ...readEnvFile(path.join(root, "supabase", "functions", ".env")) };
  const faked = Object.keys(providers).filter((p) => providers[p].some((name) => !env[name]));
  const logs = path.join(stateDir(), "logs");
  fs.mkdirSync(logs, { recursive: true });
  if (faked.length) {
    const local = (prefix) => `${prefix}${crypto.randomBytes(8).toString("hex")}`;
    const fakeCreds = {
      GROQ_API_KEY: local("gsk_local_"),
      RAZORPAY_KEY_ID: local("rzp_test_"),
      RAZORPAY_KEY_SECRET: local(""),
      RAZORPAY_WEBHOOK_SECRET: local(""),
      PAYU_MERCHANT_KEY: local("").slice(0, 6),
      PAYU_MERCHANT_SALT: local(""),
      RESEND_API_KEY: local("re_local_"),
      STRIPE_SECRET_KEY: local("sk_test_local_"),
    };
    for (const p of faked) for (const name of providers[p]) env[name] = fakeCreds[name];
    // The fake Stripe signs its events with the endpoint secret the function checks.
    if (faked.includes("stripe")) env.STRIPE_WEBHOOK_SECRET = local("whsec_local_");
    const url = await startFakeUpstreams({ env, logFile: path.join(logs, "fakes.log") });
    if (faked.includes("groq")) env.GROQ_BASE_URL = url;
    if (faked.includes("razorpay")) env.RAZORPAY_API_BASE = `${url}/v1`;
    if (faked.includes("payu")) env.PAYU_BASE_URL = url;
    if (faked.includes("stripe")) env.STRIPE_API_BASE = `${url}/stripe`;
    if (faked.includes("resend")) {
      env.RESEND_BASE_URL = url;
      env.EMAIL_FROM ||= LOCAL_EMAIL_FROM;
    }
    env.FAKE_UPSTREAMS_URL = url;
  }
  Object.assign(env, supabaseEnv({ apiPort, dbUrl: db.url, keys }));
  onInterrupt(stopChildren);
  await startFunctions({ env, logFile: path.join(logs, "functions.log") });
  // The fake checkout pages (Razorpay's Pay and Fail buttons) and the fake Stripe send their
  // signed webhooks to this stack's functions, as the real providers send them to a deployment.
  for (const p of ["razorpay", "stripe"].filter((name) => faked.includes(name))) {
    const res = await fetch(`${env.FAKE_UPSTREAMS_URL}/__control/${p}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ webhook_url: `http://127.0.0.1:${apiPort}/functions/v1/${p}-webhook` }),
    });
    if (!res.ok) throw new ScriptError(`the fake ${p} did not take its webhook URL: ${res.status} ${await res.text()}`);
  }
  const ticker = tickMs > 0
    ? startTicker({
      functionsUrl: `http://127.0.0.1:${apiPort}/functions/v1`,
      serviceRoleKey: keys.serviceRoleKey,
      intervalMs: tickMs,
    })
    : null;
  // Where the running stack is, for clients on this machine (`npm run demo`); it holds the fakes'
  // throwaway credentials (the demo signs what the fake PayU and Razorpay would), hence mode 0600.
  // Removed on the way out, so a stale file means a stack that was killed.
  const stackFile = path.join(stateDir(), "stack.json");
  const stack = {
    api_url: `http://127.0.0.1:${apiPort}`,
    db_url: db.url,
    keys_file: path.join(stateDir(), "keys.json"),
    fakes_url: env.FAKE_UPSTREAMS_URL ?? null,
    faked,
    fake_credentials: Object.fromEntries(faked.flatMap((p) => providers[p].map((name) => [name, env[name]]))),
  };
  fs.rmSync(stackFile, { force: true });
  fs.writeFileSync(stackFile, `${JSON.stringify(stack, null, 2)}\n`, { mode: 0o600 });
  onInterrupt(async () => {
    ticker?.stop(); // no new calls; the ones running end with the functions server
    fs.rmSync(stackFile, { force: true });
    await stopChildren();
  });

  console.log(`supabill local stack is running.

         API URL: http://127.0.0.1:${apiPort}
   Functions URL: http://127.0.0.1:${apiPort}/functions/v1/<name>
          DB URL: ${db.url}
 publishable key: ${keys.publishableKey}
      secret key: ${keys.secretKey}
        anon key: ${keys.anonKey} (legacy)
service_role key: ${keys.serviceRoleKey} (legacy)
${faked.length ? `  faked upstreams: ${faked.join(", ")} at ${env.FAKE_UPSTREAMS_URL}\n` : ""}${
    faked.includes("resend") ? `           emails: ${env.FAKE_UPSTREAMS_URL}/inbox (what notifications-send would have sent)\n` : ""
  }${
    ticker
      ? `           ticker: POSTs ${TICK_WORKERS.join(", ")} every ${tickMs / 1000}s (SUPABILL_TICK_SECONDS, 0 = off)`
      : "           ticker: off (SUPABILL_TICK_SECONDS=0)"
  }

A user and a token for trying endpoints: npm run user -- <email>
A narrated walk through the product against this stack: npm run demo
Logs: ${logs}. Ctrl-C stops the functions server; npm run db:stop stops the database.`);
  await new Promise(() => {});
});
