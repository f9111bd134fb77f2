// GET /functions/v1/health: the stack is up and the database answers.
import { transaction } from "../_shared/db.ts";
import { handle, json } from "../_shared/http.ts";

export const handler = handle("health", async () => {
  const [{ now }] = await transaction((tx) => tx`select now()::text as now`);
  return json({ status: "ok", database: "ok", time: now });
});
