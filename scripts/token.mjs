// npm run token -- <user-id> [--expires 1h]: prints a user JWT signed by the local stack's key.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import path from "node:path";
import { loadOrCreateKeys, userToken } from "./lib/keys.mjs";
import { stateDir } from "./lib/pg.mjs";
import { main, ScriptError } from "./lib/run.mjs";

main(async () => {
  const [userId, flag, expires] = process.argv.slice(2);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(userId ?? "")) {
    throw new ScriptError("usage: npm run token -- <user-id (uuid)> [--expires 1h]");
  }
  const keys = await loadOrCreateKeys(path.join(stateDir(), "keys.json"));
  console.log(await userToken(keys, userId, { expiresIn: flag === "--expires" ? expires : "1h" }));
});
