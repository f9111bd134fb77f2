// Single flight: identical non-streaming requests (same organization and cache key) that arrive
// while one is in flight wait for it instead of calling Groq again, then are answered from the
// cache it filled (a normal reservation cache hit: rate-limited and logged, no prompt, no tokens).
// The settlement commits after the response (_shared/after-response.ts): a flight lands when its
// settlement has committed, not when its response has gone, and every request of an organization
// waits for that organization's settlements still in flight here before it reserves
// (holdOrganization, waitForOrganization): a client that asks again as soon as it has an answer
// is reserved against the settled quotas and credits, and finds the answer in the cache, as when
// the settlement came before the answer. The wait is at most one settlement's commit.
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

const settling = new Map<string, Promise<void>>();

/** The organization's next requests wait for `work` (a settlement committing after its response) before they reserve. */
export function holdOrganization(organizationId: string, work: Promise<unknown>) {
  const before = settling.get(organizationId);
  const held: Promise<void> = Promise.all([before, work]).then(() => {}, () => {}).finally(() => {
    if (settling.get(organizationId) === held) settling.delete(organizationId);
  });
  settling.set(organizationId, held);
}

/**
 * Resolves when the organization's settlements in flight here now have committed (not those that
 * start meanwhile: under steady load a request would otherwise wait for one after another).
 */
export async function waitForOrganization(organizationId: string): Promise<void> {
  await settling.get(organizationId);
}
