// GET /functions/v1/health: the stack is up and the database answers. Any key of the project will
// do (a user's token, the anon or a publishable key, the service_role or a secret key): the caller
// is checked here (verify_jwt = false), before the database is asked, so an anonymous request is
// a 401 that costs no connection. 401 missing_authorization | invalid_jwt | jwt_expired |
// invalid_api_key.
import { callerOf } from "../_shared/auth.ts";
import { transaction } from "../_shared/db.ts";
import { handle, json } from "../_shared/http.ts";

export const handler = handle("health", async (req) => {
  await callerOf(req);
  const [{ now }] = await transaction((tx) => tx`select now()::text as now`);
  return json({ status: "ok", database: "ok", time: now });
});
