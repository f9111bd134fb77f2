// What the service-key workers (reconcile, provider-sync, notifications-send) share: the request
// they accept, and running their batch a few at a time.
import { bearerToken, verifyJwt } from "./auth.ts";
import { HttpError, readJson } from "./http.ts";

/**
 * A worker's request: POST with the service role key (401 without a valid token, 403 for any
 * other role), and an optional JSON body {limit} (an integer from 1 to maxLimit; 400 otherwise).
 * Returns the batch size.
 */
export async function workerLimit(
  req: Request,
  name: string,
  { defaultLimit, maxLimit }: { defaultLimit: number; maxLimit: number },
): Promise<number> {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const claims = await verifyJwt(bearerToken(req));
  if (claims.role !== "service_role") {
    throw new HttpError(403, "forbidden", `${name} needs the service role key`);
  }
  const body = await readJson(req, 4 * 1024, { allowEmpty: true });
  if (body.limit === undefined) return defaultLimit;
  const l = body.limit;
  if (typeof l !== "number" || !Number.isInteger(l) || l < 1 || l > maxLimit) {
    throw new HttpError(400, "invalid_input", `limit must be an integer from 1 to ${maxLimit}`);
  }
  return l;
}

/** fn over items, at most `concurrency` at a time, the results in the items' order. */
export async function inBatches<T, R>(items: T[], concurrency: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += concurrency) {
    results.push(...await Promise.all(items.slice(i, i + concurrency).map(fn)));
  }
  return results;
}
