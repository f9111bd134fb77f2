// The local Postgres: Debian's Postgres 15 with pg_cron (preloaded),
// pgTAP and plpgsql_check, one cluster per folder, the Supabase compatibility layer,
// migrations through the Supabase CLI and the seed.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { bin, root, run, ScriptError, track } from "./run.mjs";

const PG_MAJOR = 15;
export const pgBinDir = () => process.env.SUPABILL_PG_BINDIR ?? `/usr/lib/postgresql/${PG_MAJOR}/bin`;
const pgShareDir = () => `/usr/share/postgresql/${PG_MAJOR}/extension`;
const pgLibDir = () => `/usr/lib/postgresql/${PG_MAJOR}/lib`;
const isRoot = () => process.getuid?.() === 0;

/** Debian package -> the file that proves it is installed. */
function requiredPackages() {
  return [
    [`postgresql-${PG_MAJOR}`, path.join(pgBinDir(), "postgres")],
    [`postgresql-client-${PG_MAJOR}`, path.join(pgBinDir(), "psql")],
    [`postgresql-${PG_MAJOR}-cron`, path.join(pgLibDir(), "pg_cron.so")],
    [`postgresql-${PG_MAJOR}-pgtap`, path.join(pgShareDir(), "pgtap.control")],
    [`postgresql-${PG_MAJOR}-plpgsql-check`, path.join(pgLibDir(), "plpgsql_check.so")],
    ["libtap-parser-sourcehandler-pgtap-perl", "pg_prove"],
    // tests/pooler.test.ts puts it in transaction mode in front of the test cluster, as hosted
    // Supabase puts Supavisor in front of Postgres for the functions.
    ["pgbouncer", "/usr/sbin/pgbouncer"],
  ];
}

function onPath(name) {
  if (name.includes("/")) return fs.existsSync(name);
  return (process.env.PATH ?? "").split(":").some((d) => d && fs.existsSync(path.join(d, name)));
}

/**
 * Debian packages the scripts install along with the required ones when they can (as root), and
 * never insist on: tests/invoice-pdf.test.ts renders an invoice's page 1 with poppler's pdftoppm
 * where it is installed, and says it skipped that check where it is not; tests/payu-click.test.ts
 * clicks through the fake PayU page in headless chromium (and fails, naming it, without it).
 */
function optionalPackages() {
  return [["poppler-utils", "pdftoppm"], ["chromium", "chromium"]];
}

/** Install missing Debian packages when we can (root + apt-get); otherwise stop naming them. */
export async function ensurePgPackages() {
  const missing = requiredPackages().filter(([, file]) => !onPath(file)).map(([pkg]) => pkg);
  const optional = optionalPackages().filter(([, file]) => !onPath(file)).map(([pkg]) => pkg);
  if (missing.length === 0) {
    if (optional.length && isRoot() && onPath("apt-get")) {
      console.error(`supabill: installing ${optional.join(" ")} with apt-get (optional) ...`);
      const env = { DEBIAN_FRONTEND: "noninteractive" };
      await run("apt-get", ["update", "-qq"], { env, allowFail: true });
      await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...optional], { env, allowFail: true });
    }
    return;
  }
  if (!isRoot() || !onPath("apt-get")) {
    throw new ScriptError(
      `missing Debian packages: ${missing.join(" ")}\n` +
        `install them with: sudo apt-get install -y ${missing.join(" ")}`,
    );
  }
  console.error(`supabill: installing ${missing.join(" ")} with apt-get ...`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update", "-qq"], { env });
  await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing, ...optional], { env });
  const still = requiredPackages().filter(([, file]) => !onPath(file)).map(([pkg]) => pkg);
  if (still.length) throw new ScriptError(`apt-get could not install: ${still.join(" ")}`);
}

/** Fail with a clear message when something already listens on the port. */
export function assertPortFree(port, what) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", (e) =>
      reject(new ScriptError(
        e.code === "EADDRINUSE"
          ? `port ${port} (${what}) is already in use by another process; stop it or free the port`
          : `cannot bind port ${port} (${what}): ${e.message}`,
      )));
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => srv.close(resolve));
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Postgres refuses to run as root: as root, run the server tools as the `postgres` user. */
function asPgUser(tool, args, opts) {
  const cmd = path.join(pgBinDir(), tool);
  return isRoot() ? run("runuser", ["-u", "postgres", "--", cmd, ...args], opts) : run(cmd, args, opts);
}

export class Cluster {
  constructor(dir, port) {
    this.dir = path.resolve(dir);
    this.port = port;
    this.url = `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
  }

  get data() {
    return path.join(this.dir, "data");
  }

  exists() {
    return fs.existsSync(path.join(this.data, "PG_VERSION"));
  }

  async running() {
    const { code } = await asPgUser("pg_ctl", ["-D", this.data, "status"], { allowFail: true });
    return code === 0;
  }

  async init() {
    fs.mkdirSync(this.dir, { recursive: true });
    if (isRoot()) {
      await run("chown", ["-R", "postgres:postgres", this.dir]);
      const { code } = await run("runuser", ["-u", "postgres", "--", "test", "-w", this.dir], { allowFail: true });
      if (code !== 0) {
        throw new ScriptError(
          `the postgres user cannot reach ${this.dir} (a parent folder such as /root is private): ` +
            "clone the repo elsewhere or set SUPABILL_STATE_DIR=/var/tmp/supabill",
        );
      }
    }
    await asPgUser("initdb", ["-D", this.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"]);
  }

  async start() {
    await assertPortFree(this.port, "Postgres");
    const opts = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      "-c listen_addresses=127.0.0.1",
      // As Supabase's own Postgres image preloads them. plpgsql_check's hooks make every plpgsql
      // statement dearer (see the README's Benchmarks); kept so the figures match hosted projects.
      "-c shared_preload_libraries=pg_cron,plpgsql_check",
      "-c cron.database_name=postgres",
      "-c max_connections=200",
      "-c fsync=off",
    ].join(" ");
    await asPgUser("pg_ctl", ["-D", this.data, "-l", path.join(this.dir, "postgres.log"), "-o", opts, "-w", "-t", "60", "start"]);
  }

  async stop() {
    if (!this.exists() || !(await this.running())) return;
    await asPgUser("pg_ctl", ["-D", this.data, "-m", "fast", "-w", "stop"], { allowFail: true });
  }

  async remove() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  psql(args, opts) {
    return run(path.join(pgBinDir(), "psql"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", this.url, ...args], opts);
  }

  /**
   * The local database-level settings (exposed schemas, test clock), the compatibility layer,
   * then `supabase db push --remote=<url>` (--db-url is deprecated in CLI 3), then the seed.
   */
  async prepare({ seed = true } = {}) {
    await this.psql(["-f", path.join(root, "scripts", "sql", "local-settings.sql")]);
    await this.psql(["-f", path.join(root, "scripts", "sql", "compat.sql")]);
    await run(bin("supabase"), ["db", "push", `--remote=${this.url}`, "--yes", "--include-all"], {
      env: { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
    });
    if (seed) await this.psql(["-f", path.join(root, "supabase", "seed.sql")]);
  }
}

/**
 * Where the local stack keeps its state for a checkout at `checkout`: SUPABILL_STATE_DIR when set;
 * else the git-ignored `.supabill/` inside it, unless the scripts run as root and the postgres
 * user cannot enter the checkout (a clone under /root or a private temporary folder): then a folder
 * under /var/tmp named after the checkout's path, so each checkout keeps its own. `postgresCanEnter`
 * is asked only as root.
 */
export function chooseStateDir(checkout, { override, asRoot, postgresCanEnter }) {
  if (override) return override;
  if (!asRoot || postgresCanEnter(checkout)) return path.join(checkout, ".supabill");
  const key = createHash("sha256").update(path.resolve(checkout)).digest("hex").slice(0, 12);
  return path.join("/var/tmp", `supabill-${key}`);
}

let chosenStateDir;
/** Where the local stack keeps its state (see chooseStateDir); says so when it is not the checkout's. */
export function stateDir() {
  if (chosenStateDir === undefined) {
    chosenStateDir = chooseStateDir(root, {
      override: process.env.SUPABILL_STATE_DIR,
      asRoot: isRoot(),
      postgresCanEnter: (dir) =>
        spawnSync("runuser", ["-u", "postgres", "--", "test", "-x", dir], { stdio: "ignore" }).status === 0,
    });
    if (!process.env.SUPABILL_STATE_DIR && chosenStateDir !== path.join(root, ".supabill")) {
      console.error(`supabill: the postgres user cannot enter ${root}: the local stack's state is in ${chosenStateDir}` +
        " (SUPABILL_STATE_DIR chooses another)");
    }
  }
  return chosenStateDir;
}

/** The dev cluster: 127.0.0.1:54322 (SUPABILL_DB_PORT), kept in the state folder. */
export const devCluster = () => new Cluster(path.join(stateDir(), "db"), Number(process.env.SUPABILL_DB_PORT ?? 54322));

/**
 * A streaming physical replica of the cluster at `primaryUrl` (pg_basebackup -R: a standby that
 * follows the primary's WAL, read-only), in a temporary folder on a free port, started; the
 * caller removes it. The primary must accept replication connections (initdb --auth=trust does).
 */
export async function startReplica(primaryUrl, prefix = "replica") {
  const replica = await tempCluster(prefix);
  if (isRoot()) await run("chown", ["-R", "postgres:postgres", replica.dir]);
  await asPgUser("pg_basebackup", ["-d", primaryUrl, "-D", replica.data, "-R", "-X", "stream", "-c", "fast"]);
  await replica.start();
  return replica;
}

/** Wait until the server at `url` accepts TCP connections (a child that just started). */
async function waitForPort(port, what, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise((resolve) => {
      const socket = net.connect({ port, host: "127.0.0.1" }, () => {
        socket.end();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > until) throw new ScriptError(`${what} did not listen on port ${port} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * pgbouncer in front of the cluster at `upstreamPort` (database postgres, user postgres), in
 * `mode` (transaction: a server connection is lent for one transaction, then given to whichever
 * client asks next, as Supavisor's transaction mode on port 6543 does) with `poolSize` server
 * connections. Resolves with its URL and stop(). Runs as the postgres user when we are root
 * (pgbouncer will not run as root). Debian 12's pgbouncer 1.18 has no protocol-level prepared
 * statements: a client's named statement is lost when its next transaction lands on another
 * server connection, as on Supavisor in transaction mode.
 */
export async function startPgbouncer({ upstreamPort, mode = "transaction", poolSize = 4 }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "supabill-pgbouncer-"));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, "userlist.txt"), '"postgres" "postgres"\n');
  fs.writeFileSync(path.join(dir, "pgbouncer.ini"), [
    "[databases]",
    `postgres = host=127.0.0.1 port=${upstreamPort} dbname=postgres user=postgres`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    "auth_type = trust",
    `auth_file = ${path.join(dir, "userlist.txt")}`,
    `pool_mode = ${mode}`,
    `default_pool_size = ${poolSize}`,
    "max_client_conn = 500",
    // SHOW POOLS, SHOW CLIENTS ... on the console database `pgbouncer`, to see who waits for what.
    "admin_users = postgres",
    // postgres.js and psql may send these at startup; pgbouncer refuses unknown ones otherwise.
    "ignore_startup_parameters = extra_float_digits,options",
    `logfile = ${path.join(dir, "pgbouncer.log")}`,
    "",
  ].join("\n"));
  if (isRoot()) await run("chown", ["-R", "postgres:postgres", dir]);
  const cmd = ["/usr/sbin/pgbouncer", path.join(dir, "pgbouncer.ini")];
  const child = track(isRoot()
    ? spawn("runuser", ["-u", "postgres", "--", ...cmd], { stdio: "ignore" })
    : spawn(cmd[0], cmd.slice(1), { stdio: "ignore" }));
  try {
    await waitForPort(port, "pgbouncer");
  } catch (e) {
    child.kill("SIGTERM");
    const log = fs.existsSync(path.join(dir, "pgbouncer.log")) ? fs.readFileSync(path.join(dir, "pgbouncer.log"), "utf8") : "";
    throw new ScriptError(`${e.message}\n${log.split("\n").slice(-20).join("\n")}`);
  }
  return {
    url: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        // runuser passes SIGTERM on to pgbouncer, which closes its connections and exits.
        child.kill("SIGTERM");
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A throwaway cluster for a test or benchmark run, on a free port, removed by the caller. */
export async function tempCluster(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `supabill-${prefix}-`));
  return new Cluster(dir, await freePort());
}
