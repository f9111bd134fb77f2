-- =================================================================================================
-- supabill: credit note documents, and one entry point for the invoice-pdf function
--
--   public.credit_note_document(credit_note_id)
--     everything a renderer needs to print a credit note, in the shape of invoice_document: the
--     seller and buyer of the invoice it reduces, place of supply, a line with the invoice's SAC,
--     description and rates and the credit note's amounts, totals, the amount in words, and the
--     invoice it refers to (CGST Act, section 34: a credit note names the original invoice).
--   public.tax_document(document_id)
--     the invoice_document or credit_note_document of an id, whichever it is, as the caller:
--     one SQL call for the invoice-pdf function. An id that exists but belongs to an
--     organization the caller is not a member of is refused with 42501 (insufficient_privilege),
--     an id that does not exist with P0002 (no_data_found), so the function can answer 403 and 404.
--   billing.tax_document_exists(document_id)
--     whether an invoice or credit note with that id exists (security definer: the only thing it
--     tells a caller who cannot read the document is that the id is taken).
--
-- An upgrade of the invoices module (20261120000700_invoices.sql): adds three functions, changes
-- nothing it created.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.


-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- None.


-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Whether an invoice or a credit note has this id, whoever may read it. Security definer so that
 * tax_document can tell "not yours" (403) from "no such document" (404); it reveals nothing about
 * the document but its existence, and ids are random UUIDs.
 */
create function billing.tax_document_exists(p_document_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.invoices i where i.id = p_document_id)
      or exists (select 1 from public.credit_notes c where c.id = p_document_id);
end;
$$;
revoke execute on function billing.tax_document_exists(uuid) from public;
grant execute on function billing.tax_document_exists(uuid) to authenticated, service_role;


-- =================================================================================================
-- 4. Policies
-- =================================================================================================

-- None: both public functions run as the caller, under the policies of the invoices module.


-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * Everything a PDF renderer needs for one credit note, as JSON, in the shape of invoice_document:
 * seller and buyer blocks of the invoice it reduces (GSTINs, state codes and names, addresses),
 * place of supply, supply type, one line (the invoice's first line's SAC, description and rates
 * with the credit note's amounts; an invoice has one line per order), totals, the amount in words
 * (INR), kind and reason, and the original invoice (id, number, date). Runs as the caller: members
 * of the organization and service_role see it; anyone else gets "credit note not found".
 */
create function public.credit_note_document(p_credit_note_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_note public.credit_notes%rowtype;
  v_invoice public.invoices%rowtype;
  v_line public.invoice_lines%rowtype;
begin
  select * into v_note from public.credit_notes c where c.id = p_credit_note_id;
  if not found then
    raise exception 'credit note % not found', p_credit_note_id using errcode = 'no_data_found';
  end if;
  select * into v_invoice from public.invoices i where i.id = v_note.invoice_id;
  if not found then
    raise exception 'the invoice of credit note % is not visible', p_credit_note_id using errcode = 'no_data_found';
  end if;
  select * into v_line from public.invoice_lines l where l.invoice_id = v_invoice.id order by l.line_number limit 1;

  return pg_catalog.jsonb_build_object(
    'document_type', 'credit_note',
    'title', 'Credit Note',
    'credit_note_id', v_note.id,
    'credit_note_number', v_note.credit_note_number,
    'credit_note_date', v_note.credit_note_date,
    'issued_at', v_note.issued_at,
    'financial_year', billing.financial_year_label(v_note.financial_year),
    'kind', v_note.kind,
    'reason', v_note.reason,
    'invoice', pg_catalog.jsonb_build_object(
      'invoice_id', v_invoice.id,
      'invoice_number', v_invoice.invoice_number,
      'invoice_date', v_invoice.invoice_date
    ),
    'currency', v_note.currency,
    'reverse_charge', false,
    'supply_type', v_invoice.supply_type,
    'seller', v_invoice.seller
      || pg_catalog.jsonb_build_object('state_name', billing.gst_state_name(v_invoice.seller ->> 'state_code')),
    'buyer', v_invoice.buyer
      || pg_catalog.jsonb_build_object('state_name', billing.gst_state_name(v_invoice.buyer ->> 'state_code')),
    'place_of_supply', pg_catalog.jsonb_build_object(
      'state_code', v_invoice.place_of_supply_state_code,
      'state_name', case when v_invoice.supply_type = 'export' then 'Outside India'
                         else billing.gst_state_name(v_invoice.place_of_supply_state_code) end
    ),
    'lines', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'line_number', 1,
      'description', coalesce(v_line.description, 'Credit against invoice ' || v_invoice.invoice_number),
      'sac_code', v_line.sac_code,
      'quantity', 1,
      'gst_rate_bp', v_line.gst_rate_bp,
      'cgst_rate_bp', v_line.cgst_rate_bp,
      'sgst_rate_bp', v_line.sgst_rate_bp,
      'igst_rate_bp', v_line.igst_rate_bp,
      'taxable_cents', v_note.taxable_cents,
      'cgst_cents', v_note.cgst_cents,
      'sgst_cents', v_note.sgst_cents,
      'igst_cents', v_note.igst_cents,
      'total_cents', v_note.total_cents
    )),
    'totals', pg_catalog.jsonb_build_object(
      'taxable_cents', v_note.taxable_cents,
      'cgst_cents', v_note.cgst_cents,
      'sgst_cents', v_note.sgst_cents,
      'igst_cents', v_note.igst_cents,
      'tax_cents', v_note.cgst_cents + v_note.sgst_cents + v_note.igst_cents,
      'total_cents', v_note.total_cents
    ),
    'amount_in_words', case when v_note.currency = 'INR' then billing.amount_in_words(v_note.total_cents) end
  );
end;
$$;
revoke execute on function public.credit_note_document(uuid) from public, anon;
grant execute on function public.credit_note_document(uuid) to authenticated, service_role;
comment on function public.credit_note_document(uuid) is 'Everything a renderer needs to print a credit note (seller, buyer, the invoice it refers to, tax, amount in words). Members and service_role.';

/**
 * The document of an invoice or credit note id, as the caller: invoice_document or
 * credit_note_document. Refuses an id the caller cannot read with 42501 when it exists (another
 * organization's document) and P0002 when it does not.
 */
create function public.tax_document(p_document_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  if exists (select 1 from public.invoices i where i.id = p_document_id) then
    return public.invoice_document(p_document_id);
  end if;
  if exists (select 1 from public.credit_notes c where c.id = p_document_id) then
    return public.credit_note_document(p_document_id);
  end if;
  if billing.tax_document_exists(p_document_id) then
    raise exception 'document % belongs to an organization you are not a member of', p_document_id
      using errcode = 'insufficient_privilege';
  end if;
  raise exception 'document % not found', p_document_id using errcode = 'no_data_found';
end;
$$;
revoke execute on function public.tax_document(uuid) from public, anon;
grant execute on function public.tax_document(uuid) to authenticated, service_role;
comment on function public.tax_document(uuid) is 'The invoice_document or credit_note_document of an id; 42501 for another organization''s document, P0002 for an unknown id. Members and service_role.';
