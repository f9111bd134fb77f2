// npm run db:reset | db:stop: the dev database on 127.0.0.1:54322.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import { ensureNodeDeps } from "./lib/deps.mjs";
import { assertPortFree, devCluster, ensurePgPackages } from "./lib/pg.mjs";
import { main, ScriptError } from "./lib/run.mjs";

export async function resetDevDb() {
  await ensureNodeDeps();
  await ensurePgPackages();
  const db = devCluster();
  await db.remove();
  await assertPortFree(db.port, "Postgres");
  await db.init();
  await db.start();
  await db.prepare();
  return db;
}

const commands = {
  async reset() {
    const db = await resetDevDb();
    console.log(`dev database reset: ${db.url}`);
  },
  async stop() {
    await devCluster().stop();
    console.log("dev database stopped");
  },
  async check() {
    await ensurePgPackages();
    console.log("all Postgres packages present");
  },
};

if (import.meta.url === `file://${process.argv[1]}`) {
  main(async () => {
    const cmd = commands[process.argv[2]];
    if (!cmd) throw new ScriptError(`usage: node scripts/db.mjs ${Object.keys(commands).join("|")}`);
    await cmd();
  });
}
