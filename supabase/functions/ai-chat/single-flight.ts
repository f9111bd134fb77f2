// Single flight: identical non-streaming requests (same organization and cache key) that arrive
// while one is in flight wait for it instead of calling Groq again, then are answered from the
// cache it filled (a normal reservation cache hit: rate-limited and logged, no prompt, no tokens).
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
