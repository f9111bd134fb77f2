// What the service-key workers (reconcile, provider-sync, notifications-send) share: the request
// they accept, and running their batch a few at a time.
import { requireServiceKey } from "./auth.ts";
import { HttpError, readJson } from "./http.ts";

/**
 * A worker's request: POST with the service key (requireServiceKey: a secret key sb_secret_...
 * or the service_role key, in Authorization: Bearer or apikey; 401 without a valid key, 403 for a
 * publishable key, the anon key or a user's token), checked before the body is read, and an
 * optional JSON body {limit} (an integer from 1 to maxLimit; 400 otherwise). Returns the batch size.
 */
export async function workerLimit(
  req: Request,
  name: string,
  { defaultLimit, maxLimit }: { defaultLimit: number; maxLimit: number },
): Promise<number> {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  await requireServiceKey(req, name);
  const body = await readJson(req, 4 * 1024, { allowEmpty: true });
  if (body.limit === undefined) return defaultLimit;
  const l = body.limit;
  if (typeof l !== "number" || !Number.isInteger(l) || l < 1 || l > maxLimit) {
    throw new HttpError(400, "invalid_input", `limit must be an integer from 1 to ${maxLimit}`);
  }
  return l;
}

/**
 * fn over items, at most `concurrency` at a time, the results in the items' order.
 * SUPABILL_WORKER_CONCURRENCY (a positive integer) overrides `concurrency`: the simulator sets 1, so
 * that a worker makes its provider calls one after another in its claim order and a seed replays
 * the same calls, the injected failures hitting the same ones (docs/simulator.md).
 */
export async function inBatches<T, R>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const override = Number(Deno.env.get("SUPABILL_WORKER_CONCURRENCY"));
  if (Number.isInteger(override) && override >= 1) concurrency = override;
  const results: R[] = [];
  for (let i = 0; i < items.length; i += concurrency) {
    results.push(...await Promise.all(items.slice(i, i + concurrency).map(fn)));
  }
  return results;
}
