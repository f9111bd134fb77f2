// One batch's step in the ai-batch worker: upload (or recover an upload whose outcome is unknown),
// poll, settle. Groq is asked outside any transaction; each SQL call is one statement.
import { asService } from "../_shared/db.ts";
import { jsonbText } from "../_shared/jsonb.ts";
import type { Groq } from "../ai-chat/groq.ts";
import { cachedPromptTokens } from "../ai-chat/gateway.ts";

/** Groq's time to answer a batch: its shortest completion window. */
export const COMPLETION_WINDOW = "24h";

/** A leased batch, as billing.claim_ai_batches returns it. */
export interface ClaimedBatch {
  id: string;
  organization_id: string;
  state: "uploading" | "submitted";
  run: number;
  groq_batch_id: string | null;
  /** An earlier upload of this run may have reached Groq (the worker died before recording it). */
  recover: boolean;
}

export interface Outcome {
  batch_id: string;
  outcome: "uploaded" | "recovered" | "waiting" | "settled" | "retried" | "released" | "error";
  groq_batch_id?: string | null;
  settled?: number;
  failed?: number;
  error?: string;
}

/** One line of a batch's results, as billing.settle_ai_batch reads it. */
export interface ResultLine {
  custom_id: string;
  ok: boolean;
  prompt_tokens?: number;
  completion_tokens?: number;
  cached_tokens?: number;
  answer?: unknown;
  error?: string;
}

type GroqBatch = { id: string; input_file_id: string; status: string; metadata?: unknown; output_file_id?: string | null; error_file_id?: string | null };

/** The metadata that names our batch and run at Groq: how a lost upload is found again. */
export const batchMetadata = (b: Pick<ClaimedBatch, "id" | "run">) => ({ supabill_batch_id: b.id, supabill_run: String(b.run) });

export async function runBatch(client: Groq, batch: ClaimedBatch): Promise<Outcome> {
  try {
    if (batch.state === "uploading") return await upload(client, batch);
    return await poll(client, batch);
  } catch (e) {
    const error = String((e as Error)?.message ?? e).slice(0, 1000);
    console.error(JSON.stringify({ fn: "ai-batch", level: "error", batch_id: batch.id, error }));
    // A submitted batch is polled again next run; an uploading one keeps its lease, then is
    // recovered (Groq is asked for it first).
    await asService((tx) => tx`select billing.ai_batch_wait(${batch.id}, null, ${error})`).catch(() => {});
    return { batch_id: batch.id, outcome: "error", error };
  }
}

/** Records a Groq batch as this batch's run. */
async function record(batch: ClaimedBatch, groqBatch: GroqBatch): Promise<void> {
  await asService((tx) =>
    tx`select billing.record_ai_batch_upload(${batch.id}, ${batch.run}, ${groqBatch.id}, ${groqBatch.input_file_id})`
  );
}

/**
 * Uploads the JSONL and creates the Groq batch, then records both ids. When an earlier attempt of
 * this run may have got through (recover), Groq's batches are listed first and ours, found by its
 * metadata, is recorded instead: a batch is never submitted twice.
 */
async function upload(client: Groq, batch: ClaimedBatch): Promise<Outcome> {
  const metadata = batchMetadata(batch);
  if (batch.recover) {
    const list = await client.batches.list();
    const found = (list.data as GroqBatch[]).find((b) => {
      const m = b.metadata as Record<string, unknown> | null | undefined;
      return m?.supabill_batch_id === metadata.supabill_batch_id && m?.supabill_run === metadata.supabill_run;
    });
    if (found) {
      await record(batch, found);
      return { batch_id: batch.id, outcome: "recovered", groq_batch_id: found.id };
    }
  }
  const lines = await asService((tx) =>
    tx<{ custom_id: string; body: unknown }[]>`select custom_id, body from billing.ai_batch_lines(${batch.id})`
  );
  const jsonl = lines.map((l) =>
    JSON.stringify({ custom_id: l.custom_id, method: "POST", url: "/v1/chat/completions", body: l.body })
  ).join("\n") + "\n";
  const file = await client.files.create({
    file: new File([jsonl], `supabill-${batch.id}-run${batch.run}.jsonl`, { type: "application/jsonl" }),
    purpose: "batch",
  });
  if (!file.id) throw new Error("Groq answered the upload without a file id");
  const created = await client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: COMPLETION_WINDOW,
    metadata,
  });
  await record(batch, created as GroqBatch);
  return { batch_id: batch.id, outcome: "uploaded", groq_batch_id: created.id };
}

/** The lines of a result file (output or error), as billing.settle_ai_batch reads them. */
export function resultLines(text: string): ResultLine[] {
  const lines: ResultLine[] = [];
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    const line = JSON.parse(raw) as {
      custom_id?: unknown;
      response?: { status_code?: number; body?: Record<string, unknown> } | null;
      error?: { code?: unknown; message?: unknown } | null;
    };
    if (typeof line.custom_id !== "string") continue;
    const body = line.response?.body;
    const usage = body?.usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | undefined;
    if (line.response?.status_code === 200 && usage && Number.isInteger(usage.prompt_tokens) &&
        Number.isInteger(usage.completion_tokens)) {
      lines.push({
        custom_id: line.custom_id,
        ok: true,
        prompt_tokens: usage.prompt_tokens as number,
        completion_tokens: usage.completion_tokens as number,
        cached_tokens: cachedPromptTokens(usage),
        answer: body,
      });
    } else {
      const code = line.error?.code ?? (body?.error as { code?: unknown; type?: unknown } | undefined)?.code;
      lines.push({
        custom_id: line.custom_id,
        ok: false,
        error: typeof code === "string" && code !== "" ? code : `groq_${line.response?.status_code ?? "error"}`,
      });
    }
  }
  return lines;
}

async function fileText(client: Groq, fileId: string | null | undefined): Promise<string> {
  if (!fileId) return "";
  const res = await client.files.content(fileId);
  return await res.text();
}

/** Asks Groq how the batch stands; settles its results, or runs it again, or waits. */
async function poll(client: Groq, batch: ClaimedBatch): Promise<Outcome> {
  const groqBatch = await client.batches.retrieve(batch.groq_batch_id!) as GroqBatch;
  if (groqBatch.status === "completed") {
    const results = [
      ...resultLines(await fileText(client, groqBatch.output_file_id)),
      ...resultLines(await fileText(client, groqBatch.error_file_id)),
    ];
    const [row] = await asService((tx) =>
      tx<{ settled: number; failed: number }[]>`select settled, failed from billing.settle_ai_batch(${batch.id},
        ${batch.run}, ${jsonbText(results)}::text::jsonb, ${groqBatch.output_file_id ?? null}, ${groqBatch.error_file_id ?? null})`
    );
    return { batch_id: batch.id, outcome: "settled", groq_batch_id: groqBatch.id, settled: row.settled, failed: row.failed };
  }
  if (["expired", "failed", "cancelled"].includes(groqBatch.status)) {
    const [{ state }] = await asService((tx) =>
      tx<{ state: string }[]>`select billing.ai_batch_run_failed(${batch.id}, ${batch.run}, ${groqBatch.status})::text as state`
    );
    return { batch_id: batch.id, outcome: state === "queued" ? "retried" : "released", groq_batch_id: groqBatch.id };
  }
  await asService((tx) => tx`select billing.ai_batch_wait(${batch.id}, ${groqBatch.status}, null)`);
  return { batch_id: batch.id, outcome: "waiting", groq_batch_id: groqBatch.id };
}
