// Work a function finishes after its response has gone (the AI gateway's settlement and the cache
// entry it writes): handed to EdgeRuntime.waitUntil. Supabase's Edge Runtime provides it (the
// worker stays alive until the promise settles); the local functions server provides the same
// (installEdgeRuntime: it keeps the work referenced, and on SIGTERM or SIGINT it stops taking
// requests and awaits the work still pending before it exits). Where there is neither (a handler
// imported by a script of its own), nothing would keep the work alive once the response is
// returned, so it is awaited before answering, as the function did before.
//
// What such work may be: nothing the answer depends on, and nothing a crash may lose silently.
// The settlement qualifies: until it commits, the reservation stays counted, and the job
// ai-release-stale-reservations expires it counted if it never does.

interface EdgeRuntimeLike {
  waitUntil(work: Promise<unknown>): unknown;
}

const runtime = () => (globalThis as { EdgeRuntime?: EdgeRuntimeLike }).EdgeRuntime;

/**
 * Finish `work` after the response: returns at once where EdgeRuntime.waitUntil exists, else when
 * the work is done. A failure of the work is logged (the response has gone: nobody else hears it).
 */
export async function afterResponse(what: string, work: Promise<unknown>): Promise<void> {
  const logged = work.catch((e) =>
    console.error(
      JSON.stringify({
        level: "error",
        error: `${what} failed after the response`,
        detail: String((e as Error)?.message ?? e),
      }),
    )
  );
  const edge = runtime();
  if (typeof edge?.waitUntil === "function") edge.waitUntil(logged);
  else await logged;
}

/**
 * The local stand-in for the Edge Runtime's waitUntil, installed by the functions server: the
 * pending work is kept in a set (referenced until it settles); drain() resolves when none is left,
 * including work added while it waits.
 */
export function installEdgeRuntime(): { pending: () => number; drain: () => Promise<void> } {
  const pending = new Set<Promise<unknown>>();
  const edge: EdgeRuntimeLike = {
    waitUntil(work) {
      const held: Promise<unknown> = Promise.resolve(work).catch(() => {}).finally(() =>
        pending.delete(held)
      );
      pending.add(held);
      return work;
    },
  };
  (globalThis as { EdgeRuntime?: EdgeRuntimeLike }).EdgeRuntime = edge;
  return {
    pending: () => pending.size,
    async drain() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}
