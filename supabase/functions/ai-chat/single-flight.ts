// Single flight: identical non-streaming requests (same organization and cache key) that arrive
// while one is in flight wait for it instead of calling Groq again, then are answered from the
// cache it filled (a normal reservation cache hit: rate-limited and logged, no prompt, no tokens).
// The settlement that writes the cache commits after the response (_shared/after-response.ts), so
// a flight lands when its settlement has committed, not when its response has gone, and a stream,
// which leads no flight, holds one from its end until its settlement commits (holdFlight): a
// client that asks again as soon as it has the answer finds it in the cache.
// The maps are per function instance (one isolate); two instances may each call Groq once.

export const flights = new Map<string, Promise<void>>();

/**
 * Keys whose answer this instance saw in (or put into) the cache in the last minute: identical
 * requests skip the single-flight wait and go straight to ai_reserve, which answers from the
 * cache, so a popular prompt's cache hits run in parallel instead of one after another.
 */
const warm = new Map<string, number>();
const WARM_MS = 60_000;
export const isWarm = (key: string) => (warm.get(key) ?? 0) > Date.now();
export function markWarm(key: string) {
  if (warm.size >= 10_000) warm.clear();
  warm.set(key, Date.now() + WARM_MS);
}

/**
 * Identical requests wait for `work` (a settlement committing after its response) before they
 * reserve; with a flight already there, for both.
 */
export function holdFlight(key: string, work: Promise<unknown>) {
  const before = flights.get(key);
  const held: Promise<void> = Promise.all([before, work]).then(() => {}, () => {}).finally(() => {
    if (flights.get(key) === held) flights.delete(key);
  });
  flights.set(key, held);
}
