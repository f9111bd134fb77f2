// /functions/v1/billing-email-confirm (verify_jwt = false, no key: the token of the confirmation
// email is the proof, and whoever reads that mailbox may have no account): the link of a
// 'billing_email_confirmation' email.
//   GET ?token=<token>   a page with one button that confirms (a GET changes nothing, so a mail
//                        scanner that opens links confirms nothing);
//   POST token=<token>   (the button's form, or JSON {token}) confirms through
//                        billing.confirm_billing_email as the service: the organization's billing
//                        emails go to that address from now on. A form gets a page saying so, JSON
//                        200 {organization_id, billing_email, confirmed_at}.
// Errors {code, message} (a form: the same on a page): 400 invalid_token (not a token), 404
// confirmation_not_found, 409 superseded (the address was changed since), 410 expired (3 days).
import { asService } from "../_shared/db.ts";
import { handle, HttpError, json } from "../_shared/http.ts";

const TOKEN_RE = /^[0-9a-f]{64}$/;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string, status = 200): Response {
  return new Response(
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
      `<body style="font-family: sans-serif; max-width: 480px; margin: 40px auto;"><h1>${
        escapeHtml(title)
      }</h1>${body}</body></html>`,
    { status, headers: { "content-type": "text/html; charset=utf-8" } },
  );
}

async function tokenOf(req: Request): Promise<{ token: string; form: boolean }> {
  if (req.method === "GET") return { token: new URL(req.url).searchParams.get("token") ?? "", form: true };
  const type = req.headers.get("content-type") ?? "";
  const text = (await req.text()).slice(0, 4096);
  if (type.includes("application/json")) {
    try {
      const body = JSON.parse(text);
      return { token: typeof body?.token === "string" ? body.token : "", form: false };
    } catch {
      return { token: "", form: false };
    }
  }
  return { token: new URLSearchParams(text).get("token") ?? "", form: true };
}

async function confirm(token: string): Promise<Record<string, unknown>> {
  try {
    const [{ r }] = await asService((tx) =>
      tx<{ r: Record<string, unknown> }[]>`select billing.confirm_billing_email(${token}) as r`
    );
    return r;
  } catch (e) {
    const { code, message } = e as { code?: string; message?: string };
    if (code === "P0002") throw new HttpError(404, "confirmation_not_found", message ?? "not found");
    if (code === "22023" && message?.startsWith("superseded")) {
      throw new HttpError(409, "superseded", message);
    }
    if (code === "22023" && message?.startsWith("expired")) throw new HttpError(410, "expired", message);
    throw e;
  }
}

export const handler = handle("billing-email-confirm", async (req) => {
  if (req.method !== "GET" && req.method !== "POST") {
    throw new HttpError(405, "method_not_allowed", "use GET or POST");
  }
  const { token, form } = await tokenOf(req);
  try {
    if (!TOKEN_RE.test(token)) {
      throw new HttpError(400, "invalid_token", "the link's token is missing or malformed");
    }
    if (req.method === "GET") {
      return page(
        "Confirm this billing email",
        `<p>Confirm this address as the billing email of the organization? Its receipts, invoices and billing notices will come here.</p>` +
          `<form method="post"><input type="hidden" name="token" value="${escapeHtml(token)}">` +
          `<button id="confirm" style="padding: 8px 20px;">Confirm</button></form>`,
      );
    }
    const r = await confirm(token);
    if (!form) return json(r);
    return page(
      "Billing email confirmed",
      `<p>${escapeHtml(String(r.billing_email))} now receives the billing emails.</p>`,
    );
  } catch (e) {
    if (!form || !(e instanceof HttpError)) throw e;
    return page(
      "This link cannot be used",
      `<p>${escapeHtml(e.message)}</p><p>(${escapeHtml(e.code)})</p>`,
      e.status,
    );
  }
});
