// npm run user -- <email> [--name "Full Name"] [--expires 1h]: a confirmed user on the dev
// database, as Supabase Auth would make one at sign-up (the local stack has no Auth server), and a
// token for it signed with the local stack's key. Prints `id: <uuid>` and `token: <jwt>` (and
// the email); the same email again is the same user, with a fresh token.
import "./lib/node-version.mjs"; // first: Node 22 or newer, fetched if need be
import path from "node:path";
import postgres from "postgres";
import { loadOrCreateKeys, userToken } from "./lib/keys.mjs";
import { devCluster, stateDir } from "./lib/pg.mjs";
import { main, ScriptError } from "./lib/run.mjs";

const USAGE = 'usage: npm run user -- <email> [--name "Full Name"] [--expires 1h]';

main(async () => {
  const [email, ...rest] = process.argv.slice(2);
  const flags = {};
  for (let i = 0; i < rest.length; i += 2) {
    if (!["--name", "--expires"].includes(rest[i]) || rest[i + 1] === undefined) throw new ScriptError(USAGE);
    flags[rest[i].slice(2)] = rest[i + 1];
  }
  if (!/^[^\s@]+@[^\s@]+$/.test(email ?? "")) throw new ScriptError(USAGE);
  const db = devCluster();
  const sql = postgres(db.url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  let user;
  try {
    [user] = await sql`insert into auth.users (id, email, role, aud, email_confirmed_at, raw_user_meta_data)
      values (gen_random_uuid(), ${email.toLowerCase()}, 'authenticated', 'authenticated', now(),
        ${sql.json(flags.name ? { full_name: flags.name } : {})})
      on conflict (email) do update set email_confirmed_at = coalesce(auth.users.email_confirmed_at, excluded.email_confirmed_at)
      returning id, email`;
  } catch (e) {
    if (["ECONNREFUSED", "CONNECT_TIMEOUT"].includes(e.code)) {
      throw new ScriptError(`the dev database at 127.0.0.1:${db.port} is not running: run npm start first (with the same SUPABILL_* variables)`);
    }
    throw new ScriptError(`cannot create the user: ${e.message}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  const keys = await loadOrCreateKeys(path.join(stateDir(), "keys.json"));
  const token = await userToken(keys, user.id, { email: user.email, expiresIn: flags.expires ?? "1h" });
  console.log(`id: ${user.id}\nemail: ${user.email}\ntoken: ${token}`);
});
