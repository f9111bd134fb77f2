// POST /functions/v1/provider-sync (service key only): carries out due provider actions
// (billing.provider_actions: cancel, pause, resume, change plan, refund, fetch payment at Razorpay
// and PayU). Claims a batch with billing.claim_provider_actions (for update skip locked, a lease,
// attempts + 1: concurrent workers never get the same action), commits, then asks each action's
// provider through the registry and records the outcome with billing.complete_provider_action
// (succeeded; retry: network, timeout, 5xx, 429 with Retry-After, backoff in SQL; failed: 4xx with
// the provider's message). No transaction is open while a provider is asked.
// Body (optional) {limit} (1-100, default 20). 200 {claimed, succeeded, retried, failed, unrecorded, actions};
// 401 without a valid key (missing_authorization, invalid_jwt, invalid_api_key), 403 forbidden for
// a publishable key, the anon key or a user's token.
import { asService } from "../_shared/db.ts";
import { handle, json } from "../_shared/http.ts";
import { inBatches, workerLimit } from "../_shared/worker.ts";
import type { ProviderAction } from "../_shared/providers/types.ts";
import { type SyncOutcome, syncAction, syncSummary } from "./sync.ts";

const CONCURRENCY = 4;

export const handler = handle("provider-sync", async (req) => {
  const limit = await workerLimit(req, "provider-sync", { defaultLimit: 20, maxLimit: 100 });

  // The claim commits before any provider is asked: the lease, not a lock, keeps others away.
  const claimed = await asService((tx) =>
    tx<ProviderAction[]>`select id, organization_id, provider::text as provider, kind::text as kind,
      coalesce(target, '{}'::jsonb) as target, coalesce(payload, '{}'::jsonb) as payload, idempotency_key, attempts
      from billing.claim_provider_actions(${limit})`
  );
  const outcomes: SyncOutcome[] = await inBatches(claimed, CONCURRENCY, (action) => syncAction(action));
  return json(syncSummary(outcomes));
});
