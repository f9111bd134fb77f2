// The fake of Groq's Batch API, mounted by tests/fakes/upstreams.ts beside its chat completions:
//
//   POST /openai/v1/files                 multipart {file, purpose: "batch"} (Bearer auth) -> the file
//   GET  /openai/v1/files/:id             the file's info
//   GET  /openai/v1/files/:id/content     its bytes (input JSONL, or a batch's output / error JSONL)
//   POST /openai/v1/batches               {input_file_id, endpoint, completion_window, metadata}
//   GET  /openai/v1/batches/:id           the batch; once its delay has passed (the fakes' clock) it
//                                         ends as the control said when it was created
//   GET  /openai/v1/batches               {object: "list", data: every batch, newest first}
//   POST /openai/v1/batches/:id/cancel    cancelled (unless it has ended)
//   POST /__control/groq/batches          {completion_delay_ms (0), outcome: "completed" | "expired" |
//                                          "failed" (completed), fail_lines: [line numbers from 1]
//                                          answered in the error file (partial results),
//                                          create_hang_ms: POST /batches makes the batch, then waits
//                                          this long before answering, reset}
//   GET  /__control/groq/batches          {batches, files: [{id, purpose, bytes, filename}], calls:
//                                          [{route, method, path, at}]}
//
// A completed batch answers each input line through `chat` (the fake's own chat completions, so
// token counts follow its rules): a 200 goes to the output file, anything else, and the
// fail_lines, to the error file, each as {id, custom_id, response: {status_code, request_id,
// body}, error: null}.
import { randomUuid } from "./random.ts";

type Json = Record<string, unknown>;

interface BatchControl {
  completion_delay_ms: number;
  outcome: "completed" | "expired" | "failed";
  fail_lines: number[];
  create_hang_ms: number;
}

interface StoredFile {
  id: string;
  bytes: number;
  created_at: number;
  filename: string;
  purpose: "batch" | "batch_output";
  content: string;
}

interface StoredBatch {
  batch: Json;
  outcome: BatchControl["outcome"];
  failLines: number[];
  dueAt: number;
}

const defaults = (): BatchControl => ({ completion_delay_ms: 0, outcome: "completed", fail_lines: [], create_hang_ms: 0 });

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

const sleep = (ms: number) => ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve();

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export function createFakeGroqBatches(options: {
  apiKey: string;
  now: () => number;
  /** One chat completion of a line's body, as POST /openai/v1/chat/completions answers it. */
  chat: (body: unknown) => Promise<{ status: number; body: unknown }>;
}) {
  let control = defaults();
  let files = new Map<string, StoredFile>();
  let batches = new Map<string, StoredBatch>();
  let calls: Json[] = [];
  let seq = 0;
  const secs = () => Math.floor(options.now() / 1000);
  const id = (prefix: string) => `${prefix}_${(++seq).toString().padStart(6, "0")}${randomUuid().slice(0, 8)}`;
  const error = (status: number, message: string) =>
    json({ error: { message, type: "invalid_request_error" } }, status);

  function storeFile(filename: string, purpose: StoredFile["purpose"], content: string): StoredFile {
    const file = {
      id: id("file"),
      bytes: new TextEncoder().encode(content).length,
      created_at: secs(),
      filename,
      purpose,
      content,
    };
    files.set(file.id, file);
    return file;
  }

  const fileInfo = (f: StoredFile) => ({
    id: f.id,
    object: "file",
    bytes: f.bytes,
    created_at: f.created_at,
    filename: f.filename,
    purpose: f.purpose,
  });

  /** Ends the batch when its delay has passed: expired, failed, or completed with its files. */
  async function settle(stored: StoredBatch): Promise<void> {
    const b = stored.batch;
    if (!["validating", "in_progress"].includes(b.status as string) || options.now() < stored.dueAt) return;
    const at = secs();
    if (stored.outcome === "expired") {
      Object.assign(b, { status: "expired", expired_at: at });
      return;
    }
    if (stored.outcome === "failed") {
      Object.assign(b, {
        status: "failed",
        failed_at: at,
        errors: { object: "list", data: [{ code: "invalid_request", message: "fake batch failure", line: null, param: null }] },
      });
      return;
    }
    const input = files.get(b.input_file_id as string)?.content ?? "";
    const out: string[] = [];
    const err: string[] = [];
    const lines = input.split("\n").filter((l) => l.trim() !== "");
    for (const [i, text] of lines.entries()) {
      const line = JSON.parse(text) as Json;
      const requestId = `req_${randomUuid().replaceAll("-", "")}`;
      const answer = stored.failLines.includes(i + 1)
        ? { status: 400, body: { error: { message: "fake failure of this line", type: "invalid_request_error" } } }
        : await options.chat(line.body);
      const record = JSON.stringify({
        id: `batch_req_${randomUuid().replaceAll("-", "")}`,
        custom_id: line.custom_id,
        response: { status_code: answer.status, request_id: requestId, body: answer.body },
        error: null,
      });
      (answer.status === 200 ? out : err).push(record);
    }
    const output = out.length > 0 ? storeFile(`${b.id}_output.jsonl`, "batch_output", out.join("\n") + "\n") : null;
    const errors = err.length > 0 ? storeFile(`${b.id}_error.jsonl`, "batch_output", err.join("\n") + "\n") : null;
    Object.assign(b, {
      status: "completed",
      in_progress_at: b.created_at,
      finalizing_at: at,
      completed_at: at,
      output_file_id: output?.id ?? null,
      error_file_id: errors?.id ?? null,
      request_counts: { total: lines.length, completed: out.length, failed: err.length },
    });
  }

  async function handle(req: Request, path: string): Promise<Response | null> {
    if (path === "/__control/groq/batches") {
      if (req.method === "GET") {
        return json({
          batches: [...batches.values()].map((s) => s.batch),
          files: [...files.values()].map(fileInfo),
          calls,
        });
      }
      const body = await req.json().catch(() => ({}));
      if (!isObject(body)) return json({ error: "body must be an object" }, 400);
      if (body.reset) reset();
      if (typeof body.completion_delay_ms === "number") control.completion_delay_ms = body.completion_delay_ms;
      if (body.outcome === "completed" || body.outcome === "expired" || body.outcome === "failed") control.outcome = body.outcome;
      if (Array.isArray(body.fail_lines)) control.fail_lines = body.fail_lines.filter((n): n is number => Number.isInteger(n));
      if (typeof body.create_hang_ms === "number") control.create_hang_ms = body.create_hang_ms;
      return json({ ok: true, control });
    }
    const files_ = path.match(/^\/openai\/v1\/files(?:\/([^/]+))?(\/content)?$/);
    const batches_ = path.match(/^\/openai\/v1\/batches(?:\/([^/]+))?(\/cancel)?$/);
    if (!files_ && !batches_) return null;
    const route = `${files_ ? "files" : "batches"}.${req.method.toLowerCase()}${(files_ ?? batches_)![2] ?? ""}`;
    calls.push({ route, method: req.method, path, at: new Date(options.now()).toISOString() });
    if (req.headers.get("authorization") !== `Bearer ${options.apiKey}`) return error(401, "Invalid API Key");

    if (files_) {
      const [, fileId, content] = files_;
      if (!fileId && req.method === "POST") {
        const form = await req.formData().catch(() => null);
        const file = form?.get("file");
        if (!form || !(file instanceof File) || form.get("purpose") !== "batch") {
          return error(400, "a multipart body with file and purpose \"batch\" is required");
        }
        return json(fileInfo(storeFile(file.name, "batch", await file.text())));
      }
      const stored = fileId ? files.get(fileId) : undefined;
      if (req.method !== "GET" || !stored) return error(404, `no file ${fileId}`);
      if (content) return new Response(stored.content, { headers: { "content-type": "application/octet-stream" } });
      return json(fileInfo(stored));
    }

    const [, batchId, cancel] = batches_!;
    if (!batchId && req.method === "POST") {
      const body = await req.json().catch(() => null);
      if (!isObject(body)) return error(400, "body must be JSON");
      const input = files.get(String(body.input_file_id));
      if (!input || input.purpose !== "batch") return error(400, `no batch input file ${body.input_file_id}`);
      if (body.endpoint !== "/v1/chat/completions") return error(400, "endpoint must be /v1/chat/completions");
      if (typeof body.completion_window !== "string") return error(400, "completion_window is required");
      const created = secs();
      const batch: Json = {
        id: id("batch"),
        object: "batch",
        endpoint: body.endpoint,
        errors: null,
        input_file_id: input.id,
        completion_window: body.completion_window,
        status: "validating",
        output_file_id: null,
        error_file_id: null,
        created_at: created,
        expires_at: created + 24 * 3600,
        request_counts: { total: input.content.split("\n").filter((l) => l.trim() !== "").length, completed: 0, failed: 0 },
        metadata: isObject(body.metadata) ? body.metadata : null,
      };
      batches.set(batch.id as string, {
        batch,
        outcome: control.outcome,
        failLines: [...control.fail_lines],
        dueAt: options.now() + control.completion_delay_ms,
      });
      // The batch exists at Groq before the answer leaves: a client that dies now never hears of it.
      await sleep(control.create_hang_ms);
      return json(batch);
    }
    if (!batchId && req.method === "GET") {
      const data = [...batches.values()].map((s) => s.batch).reverse();
      return json({ object: "list", data });
    }
    const stored = batchId ? batches.get(batchId) : undefined;
    if (!stored) return error(404, `no batch ${batchId}`);
    if (cancel && req.method === "POST") {
      if (["validating", "in_progress"].includes(stored.batch.status as string)) {
        Object.assign(stored.batch, { status: "cancelled", cancelled_at: secs() });
      }
      return json(stored.batch);
    }
    if (req.method !== "GET") return error(405, "method not allowed");
    await settle(stored);
    return json(stored.batch);
  }

  function reset() {
    control = defaults();
    files = new Map();
    batches = new Map();
    calls = [];
  }

  return { handle, reset };
}
