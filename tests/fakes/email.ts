// A fake of Resend's email API, served by the fake upstreams (tests/fakes/upstreams.ts) on
// loopback: under `npm start` it is where notifications-send's emails go, and its inbox page shows
// them; in tests it records what was sent and fails on demand.
//
//   Resend    POST /emails            {from, to, subject, text?, html?, tags?, attachments?, ...}
//                                     (Bearer auth; attachments [{filename, content (base64)}]);
//                                     answers {id}. An Idempotency-Key already seen answers the
//                                     first email's {id} and stores nothing new.
//             GET  /emails/:id        a stored email
//   Inbox     GET  /inbox             the stored emails, newest first, as a simple HTML page
//             GET  /inbox.json        {count, emails: [...]}, oldest first
//   Control   POST /__control/email   {fail_status, fail_count, fail_message, fail_retry_after,
//                                     answer_delay_ms, reset}
//                                     (fail_status for the next fail_count calls, every call when
//                                     fail_count is omitted; 429 / 503 carry Retry-After when set;
//                                     answer_delay_ms: an accepted email is stored at once and its
//                                     answer sent that much later, a slow answer from the API)
//             GET  /__control/email   {emails, calls}: calls are every POST /emails, failed ones too
//
// Errors have Resend's shape {statusCode, name, message}: 401 missing_api_key, 403
// invalid_api_key, 422 validation_error (a subject with CR, LF or another control character
// among them), and the failures asked for (500 application_error,
// 429 rate_limit_exceeded, 422 validation_error, any other status as application_error).
import { randomUuid } from "./random.ts";

type Json = Record<string, unknown>;

export interface StoredEmail {
  id: string;
  from: string;
  to: string[];
  subject: string;
  text: string | null;
  html: string | null;
  tags: unknown;
  /** As sent: content is base64. */
  attachments: { filename: string | null; content: string | null; content_type: string | null }[] | null;
  idempotency_key: string | null;
  created_at: string;
}

export interface EmailCall {
  idempotency_key: string | null;
  to: unknown;
  status: number;
  at: string;
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

function resendError(status: number, name: string, message: string, headers: Record<string, string> = {}) {
  return json({ statusCode: status, name, message }, status, headers);
}

const errorName = (status: number) =>
  status === 429
    ? "rate_limit_exceeded"
    : status === 422
    ? "validation_error"
    : status === 401
    ? "missing_api_key"
    : status === 403
    ? "invalid_api_key"
    : "application_error";

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** The fake's state and routes; handle() answers null for a path that is not its own. */
export function createFakeEmail({ apiKey, now = Date.now }: { apiKey: string; now?: () => number }) {
  let emails: StoredEmail[] = [];
  let byKey = new Map<string, StoredEmail>();
  let calls: EmailCall[] = [];
  let failStatus: number | null = null;
  let failCount: number | null = null;
  let failMessage: string | null = null;
  let failRetryAfter: number | null = null;
  let answerDelayMs = 0;

  function reset() {
    answerDelayMs = 0;
    emails = [];
    byKey = new Map();
    calls = [];
    failStatus = null;
    failCount = null;
    failMessage = null;
    failRetryAfter = null;
  }

  function takeFailure(): number | null {
    if (failStatus === null) return null;
    if (failCount === null) return failStatus;
    if (failCount <= 0) return null;
    failCount--;
    return failStatus;
  }

  async function send(req: Request): Promise<Response> {
    const key = req.headers.get("idempotency-key");
    const at = new Date(now()).toISOString();
    const text = await req.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const note = (status: number) =>
      calls.push({ idempotency_key: key, to: isObject(body) ? body.to : null, status, at });
    const auth = req.headers.get("authorization") ?? "";
    if (!auth.startsWith("Bearer ")) {
      note(401);
      return resendError(401, "missing_api_key", "Missing API key in the authorization header");
    }
    if (auth.slice(7) !== apiKey) {
      note(403);
      return resendError(403, "invalid_api_key", "API key is invalid");
    }
    const failure = takeFailure();
    if (failure !== null) {
      note(failure);
      const headers: Record<string, string> = (failure === 429 || failure === 503) && failRetryAfter !== null
        ? { "retry-after": String(failRetryAfter) }
        : {};
      return resendError(failure, errorName(failure), failMessage ?? `fake email API failure ${failure}`, headers);
    }
    const problem = !isObject(body)
      ? "the body must be a JSON object"
      : typeof body.from !== "string" || body.from === ""
      ? "The `from` field is required."
      : !(typeof body.to === "string" || (Array.isArray(body.to) && body.to.length > 0 && body.to.length <= 50 &&
        body.to.every((t) => typeof t === "string" && /^[^@\s]+@[^@\s]+$/.test(t))))
      ? "The `to` field must be an email address or an array of 1 to 50 of them."
      : typeof body.subject !== "string" || body.subject === ""
      ? "The `subject` field is required."
      // A header is one line: the fake refuses what could split it (CR, LF and other control
      // characters), so a sender that forgets to clean a subject fails here, not in an inbox.
      // deno-lint-ignore no-control-regex
      : /[\u0000-\u001f\u007f]/.test(body.subject)
      ? "The `subject` field must be one line without control characters."
      : typeof body.html !== "string" && typeof body.text !== "string"
      ? "Either `html` or `text` is required."
      : body.attachments !== undefined && !(Array.isArray(body.attachments) &&
          body.attachments.every((a) =>
            isObject(a) && typeof a.filename === "string" && a.filename !== "" &&
            typeof a.content === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(a.content)
          ))
      ? "Each attachment needs a `filename` and base64 `content`."
      : null;
    if (problem) {
      note(422);
      return resendError(422, "validation_error", problem);
    }
    const b = body as Json;
    if (key !== null && byKey.has(key)) {
      note(200);
      return json({ id: byKey.get(key)!.id });
    }
    const email: StoredEmail = {
      id: randomUuid(),
      from: b.from as string,
      to: typeof b.to === "string" ? [b.to] : b.to as string[],
      subject: b.subject as string,
      text: typeof b.text === "string" ? b.text : null,
      html: typeof b.html === "string" ? b.html : null,
      tags: b.tags ?? null,
      attachments: Array.isArray(b.attachments)
        ? (b.attachments as Json[]).map((a) => ({
          filename: typeof a.filename === "string" ? a.filename : null,
          content: typeof a.content === "string" ? a.content : null,
          content_type: typeof a.content_type === "string" ? a.content_type : null,
        }))
        : null,
      idempotency_key: key,
      created_at: at,
    };
    emails.push(email);
    if (key !== null) byKey.set(key, email);
    note(200);
    if (answerDelayMs > 0) await new Promise((r) => setTimeout(r, answerDelayMs));
    return json({ id: email.id });
  }

  function inboxHtml(): Response {
    const rows = [...emails].reverse().map((m) =>
      `<article style="border: 1px solid #ddd; border-radius: 6px; padding: 12px; margin: 12px 0;">
<div style="color: #666; font-size: 13px;">${escapeHtml(m.created_at)} · from ${escapeHtml(m.from)} · to ${
        escapeHtml(m.to.join(", "))
      }</div>
<h3 style="margin: 6px 0;">${escapeHtml(m.subject)}</h3>
<details><summary>HTML</summary>${
        m.html ? `<iframe sandbox srcdoc="${escapeHtml(m.html)}" style="width: 100%; height: 360px; border: 0;"></iframe>` : ""
      }</details>
<pre style="white-space: pre-wrap; font-family: inherit;">${escapeHtml(m.text ?? "")}</pre>${
        m.attachments?.length
          ? `\n<div style="color: #666; font-size: 13px;">Attached: ${
            escapeHtml(m.attachments.map((a) => a.filename ?? "(unnamed)").join(", "))
          }</div>`
          : ""
      }
</article>`
    ).join("\n");
    const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>supabill: emails (${emails.length})</title></head>
<body style="font-family: sans-serif; max-width: 820px; margin: 24px auto;">
<h1>Emails that would have gone out (${emails.length})</h1>
<p style="color: #666;">The local fake of Resend's API; nothing here left this machine. JSON: <a href="/inbox.json">/inbox.json</a>. Reload for new ones.</p>
${rows || "<p>None yet.</p>"}
</body></html>`;
    return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
  }

  async function control(req: Request): Promise<Response> {
    if (req.method === "GET") return json({ emails, calls });
    const text = await req.text();
    let body: unknown = {};
    try {
      body = text === "" ? {} : JSON.parse(text);
    } catch {
      return json({ error: "invalid JSON" }, 400);
    }
    if (!isObject(body)) return json({ error: "expected an object" }, 400);
    if (body.reset === true) reset();
    if ("fail_status" in body) {
      failStatus = typeof body.fail_status === "number" ? body.fail_status : null;
      failCount = typeof body.fail_count === "number" ? body.fail_count : null;
    }
    if ("answer_delay_ms" in body) answerDelayMs = typeof body.answer_delay_ms === "number" ? body.answer_delay_ms : 0;
    if ("fail_message" in body) failMessage = typeof body.fail_message === "string" ? body.fail_message : null;
    if ("fail_retry_after" in body) {
      failRetryAfter = typeof body.fail_retry_after === "number" ? body.fail_retry_after : null;
    }
    return json({ ok: true });
  }

  async function handle(req: Request, path: string): Promise<Response | null> {
    if (path === "/emails" && req.method === "POST") return await send(req);
    const one = /^\/emails\/([^/]+)$/.exec(path);
    if (one && req.method === "GET") {
      const m = emails.find((e) => e.id === one[1]);
      return m ? json({ object: "email", ...m }) : resendError(404, "not_found", "Email not found");
    }
    if (path === "/inbox" && req.method === "GET") return inboxHtml();
    if (path === "/inbox.json" && req.method === "GET") return json({ count: emails.length, emails });
    if (path === "/__control/email") return await control(req);
    return null;
  }

  return { handle, reset };
}
