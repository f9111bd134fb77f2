// HTTP plumbing shared by every function: typed errors, JSON answers, CORS, one log line
// per request. Business rules never live here.

/** An error the client caused or must see: status, machine-readable code, message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const corsHeaders: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, x-client-info, apikey, content-type, x-organization-id",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  // What a browser client may read: ai-chat's rate-limit headers (OpenAI's names too), its request
  // id and cache status, and the retry hints the openai client obeys.
  "access-control-expose-headers": [
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
    "x-request-id", "x-cache", "retry-after", "x-should-retry",
  ].join(", "),
};

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** An HttpError as its answer: {code, message}, the error's headers. */
export function errorResponse(e: HttpError): Response {
  return json({ code: e.code, message: e.message }, e.status, e.headers);
}

export type Handler = (req: Request) => Promise<Response>;

/**
 * Wrap a function's handler: answer CORS preflight, turn HttpError into its answer (`toResponse`,
 * by default errorResponse; ai-chat words its errors as OpenAI does) and anything else into a 500
 * internal_error without details, add CORS headers, log one JSON line.
 */
export function handle(name: string, fn: Handler, toResponse: (e: HttpError) => Response = errorResponse): Handler {
  return async (req) => {
    const started = performance.now();
    let res: Response;
    if (req.method === "OPTIONS") {
      res = new Response(null, { status: 204 });
    } else {
      try {
        res = await fn(req);
      } catch (e) {
        if (!(e instanceof HttpError)) {
          console.error(JSON.stringify({ fn: name, level: "error", error: String((e as Error)?.message ?? e) }));
        }
        res = toResponse(e instanceof HttpError ? e : new HttpError(500, "internal_error", "internal error"));
      }
    }
    for (const [k, v] of Object.entries(corsHeaders)) if (!res.headers.has(k)) res.headers.set(k, v);
    if (Deno.env.get("SUPABILL_LOG") !== "off") {
      console.log(JSON.stringify({
        fn: name,
        method: req.method,
        status: res.status,
        ms: Math.round((performance.now() - started) * 10) / 10,
      }));
    }
    return res;
  };
}

/**
 * Read a JSON object body with a size cap; 400/413 with a code otherwise. With `allowEmpty`, an
 * empty (or blank) body is the empty object: for endpoints whose body is optional.
 */
export async function readJson(
  req: Request,
  maxBytes = 64 * 1024,
  { allowEmpty = false }: { allowEmpty?: boolean } = {},
): Promise<Record<string, unknown>> {
  const text = await readText(req, maxBytes);
  if (allowEmpty && text.trim() === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, "malformed_json", "the body is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "malformed_json", "the body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/**
 * Read the raw body once, refusing more than maxBytes: a declared content-length over the cap is
 * refused before reading, and a body without one (chunked) is read chunk by chunk and refused
 * as soon as the running total passes the cap, never buffered whole.
 */
export async function readText(req: Request, maxBytes: number): Promise<string> {
  const tooLarge = () => new HttpError(413, "body_too_large", `the body exceeds ${maxBytes} bytes`);
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  const buf = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    buf.set(c, at);
    at += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    throw new HttpError(400, "malformed_body", "the body is not valid UTF-8");
  }
}

/** A UUID in its text form (any case). */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A required UUID field of a JSON body (lowercased), or a 400 naming it. */
export function uuidField(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (typeof v !== "string" || !UUID_RE.test(v)) {
    throw new HttpError(400, "invalid_input", `${name} must be a UUID`);
  }
  return v.toLowerCase();
}
