// GET /functions/v1/invoice-pdf?id=<invoice or credit note id> (verify_jwt = false: the caller is
// checked here, _shared/auth.ts): the GST tax invoice or credit note as a PDF, for members of its
// organization and the service key (a secret key sb_secret_... or the service_role key).
//
// One SQL call (public.tax_document, as the user, so RLS decides; as service_role for the service
// key) returns the document's JSON; _shared/invoice-pdf/render.ts draws it. The same document renders to the same
// bytes, so the answer can be cached and compared.
//   200 application/pdf, content-disposition: inline; filename="INV-26-27-000123.pdf"
// Errors: 400 invalid_id (no id, or not a UUID), 401 (no valid key, or not_a_user: a key that is
// neither a user's token nor the service key), 403 forbidden (the document belongs to an
// organization the caller is not a member of), 404 document_not_found (no invoice or credit note
// has the id), 405 method_not_allowed (anything but GET).
import { callerOf } from "../_shared/auth.ts";
import { asService, asUser, sqlError } from "../_shared/db.ts";
import { handle, HttpError, UUID_RE } from "../_shared/http.ts";
import { documentFileName, renderTaxDocument, type TaxDocument } from "../_shared/invoice-pdf/render.ts";

export const handler = handle("invoice-pdf", async (req) => {
  if (req.method !== "GET") {
    throw new HttpError(405, "method_not_allowed", "use GET", { allow: "GET, OPTIONS" });
  }
  const caller = await callerOf(req);
  if (caller.kind !== "secret" && caller.kind !== "user") {
    throw new HttpError(401, "not_a_user", "a signed-in user's token or the service key is required");
  }
  const id = new URL(req.url).searchParams.get("id") ?? "";
  if (!UUID_RE.test(id)) throw new HttpError(400, "invalid_id", "id must be the UUID of an invoice or a credit note");

  let doc: TaxDocument;
  try {
    const query = (tx: Parameters<Parameters<typeof asService>[0]>[0]) =>
      tx<{ doc: TaxDocument }[]>`select public.tax_document(${id.toLowerCase()}) as doc`;
    [{ doc }] = caller.kind === "secret" ? await asService(query) : await asUser(caller.claims, query);
  } catch (e) {
    throw sqlError(e, { P0002: [404, "document_not_found"], "42501": [403, "forbidden"] });
  }

  const bytes = await renderTaxDocument(doc);
  return new Response(bytes as Uint8Array<ArrayBuffer>, {
    headers: {
      "content-type": "application/pdf",
      "content-disposition": `inline; filename="${documentFileName(doc)}"`,
      "content-length": String(bytes.byteLength),
      "cache-control": "private, max-age=3600",
    },
  });
});
