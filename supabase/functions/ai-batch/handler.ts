// POST /functions/v1/ai-batch (service key only): the nightly AI batches' worker (scheduled by
// pg_cron every 10 minutes, job supabill-ai-batch; the local ticker calls it too). Leases batches
// with billing.claim_ai_batches (a lease, committed before Groq is asked), then for each: uploads
// a due batch's JSONL and creates the Groq batch (recorded by billing.record_ai_batch_upload), or
// polls a submitted one and, once Groq has the results, settles them (billing.settle_ai_batch) or
// runs an expired or failed batch once more, then releases it (billing.ai_batch_run_failed).
// Body (optional) {limit} (1-20, default 5). 200 {claimed, uploaded, recovered, waiting, settled,
// retried, released, errors, batches}; 503 groq_not_configured without GROQ_API_KEY; 401/403 as
// every service-key worker (requireServiceKey).
import { asService } from "../_shared/db.ts";
import { denoEnv } from "../_shared/env.ts";
import { handle, HttpError, json } from "../_shared/http.ts";
import { workerLimit } from "../_shared/worker.ts";
import { groqClient, groqConfig } from "../ai-chat/groq.ts";
import { type ClaimedBatch, type Outcome, runBatch } from "./batch.ts";

export const handler = handle("ai-batch", async (req) => {
  const limit = await workerLimit(req, "ai-batch", { defaultLimit: 5, maxLimit: 20 });
  const config = groqConfig(denoEnv);
  if (!config) throw new HttpError(503, "groq_not_configured", "GROQ_API_KEY is not set");
  const client = groqClient(config);

  const claimed = await asService((tx) =>
    tx<ClaimedBatch[]>`select id, organization_id, state::text as state, run, groq_batch_id, recover
      from billing.claim_ai_batches(${limit})`
  );
  // One batch at a time: each is a few calls to Groq and one SQL call, and the lease covers it.
  const outcomes: Outcome[] = [];
  for (const batch of claimed) outcomes.push(await runBatch(client, batch));
  const count = (what: Outcome["outcome"]) => outcomes.filter((o) => o.outcome === what).length;
  return json({
    claimed: claimed.length,
    uploaded: count("uploaded"),
    recovered: count("recovered"),
    waiting: count("waiting"),
    settled: count("settled"),
    retried: count("retried"),
    released: count("released"),
    errors: count("error"),
    batches: outcomes,
  });
});
