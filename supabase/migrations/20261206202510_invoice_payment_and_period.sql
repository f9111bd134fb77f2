-- What this migration does: public.invoice_document adds `payment` (paid, the provider's payment
-- reference or the order's receipt, method, paid_at) and `service_period` (the period the payment
-- bought, from the subscription history of its capture), which the invoice PDF prints (issue 28).
-- invoice_payment_and_period: drafted by `npm run db:diff -- invoice_payment_and_period` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.

SET local check_function_bodies = off;

CREATE OR REPLACE FUNCTION public.invoice_document (
  p_invoice_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_invoice public.invoices%rowtype;
  v_lines jsonb;
  v_credit_notes jsonb;
  v_credited bigint;
  v_payment jsonb;
  v_period jsonb;
begin
  select * into v_invoice from public.invoices i where i.id = p_invoice_id;
  if not found then
    raise exception 'invoice % not found', p_invoice_id using errcode = 'no_data_found';
  end if;
  -- How it was paid: the captured payment it was issued for (an order paid without a provider
  -- payment, e.g. a manual one, by its receipt). Every invoice is issued for a paid order.
  select pg_catalog.jsonb_build_object(
           'status', 'paid', 'provider', coalesce(pe.provider, o.provider),
           'reference', coalesce(pe.provider_payment_id, o.receipt), 'method', pe.method,
           'paid_at', coalesce(pe.occurred_at, o.paid_at, v_invoice.issued_at))
  into v_payment
  from public.orders o left join public.payment_events pe on pe.id = v_invoice.payment_event_id
  where o.id = v_invoice.order_id;
  -- The service period the payment bought (the subscription history of its capture); none for a
  -- credit pack.
  select pg_catalog.jsonb_build_object('start', h.metadata ->> 'period_start', 'end', h.metadata ->> 'period_end')
  into v_period
  from public.subscription_history h
  where v_invoice.payment_event_id is not null
    and h.metadata ->> 'payment_event_id' = v_invoice.payment_event_id::text
    and h.metadata ? 'period_start' and h.metadata ? 'period_end'
  order by h.effective_at desc, h.created_at desc
  limit 1;

  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'line_number', l.line_number,
           'description', l.description,
           'sac_code', l.sac_code,
           'quantity', l.quantity,
           'gst_rate_bp', l.gst_rate_bp,
           'cgst_rate_bp', l.cgst_rate_bp,
           'sgst_rate_bp', l.sgst_rate_bp,
           'igst_rate_bp', l.igst_rate_bp,
           'taxable_cents', l.taxable_cents,
           'cgst_cents', l.cgst_cents,
           'sgst_cents', l.sgst_cents,
           'igst_cents', l.igst_cents,
           'total_cents', l.total_cents
         ) || case when l.list_cents is not null
                   then pg_catalog.jsonb_build_object('list_cents', l.list_cents, 'discount_cents', l.discount_cents,
                                                      'discount_code', l.discount_code)
                   else '{}'::jsonb end
         order by l.line_number), '[]'::jsonb)
  into v_lines
  from public.invoice_lines l
  where l.invoice_id = p_invoice_id;

  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'credit_note_number', c.credit_note_number,
           'credit_note_date', c.credit_note_date,
           'kind', c.kind,
           'reason', c.reason,
           'taxable_cents', c.taxable_cents,
           'cgst_cents', c.cgst_cents,
           'sgst_cents', c.sgst_cents,
           'igst_cents', c.igst_cents,
           'total_cents', c.total_cents
         ) order by c.serial), '[]'::jsonb),
         coalesce(sum(c.total_cents), 0)
  into v_credit_notes, v_credited
  from public.credit_notes c
  where c.invoice_id = p_invoice_id;

  return pg_catalog.jsonb_build_object(
    'document_type', 'tax_invoice',
    'title', case when v_invoice.supply_type = 'export' and v_invoice.export_with_igst
                  then 'Tax Invoice (supply meant for export on payment of IGST)'
                  when v_invoice.supply_type = 'export'
                  then 'Tax Invoice (supply meant for export under LUT without payment of IGST)'
                  else 'Tax Invoice' end,
    'endorsement', billing.export_endorsement(v_invoice),
    'lut_arn', v_invoice.lut_arn,
    'inr_value', case when v_invoice.exchange_rate is not null then pg_catalog.jsonb_build_object(
      'exchange_rate', v_invoice.exchange_rate, 'exchange_rate_source', v_invoice.exchange_rate_source,
      'taxable_paise', v_invoice.inr_taxable_paise, 'tax_paise', v_invoice.inr_total_paise - v_invoice.inr_taxable_paise,
      'total_paise', v_invoice.inr_total_paise) end,
    'invoice_id', v_invoice.id,
    'invoice_number', v_invoice.invoice_number,
    'invoice_date', v_invoice.invoice_date,
    'issued_at', v_invoice.issued_at,
    'financial_year', billing.financial_year_label(v_invoice.financial_year),
    'order_id', v_invoice.order_id,
    'currency', v_invoice.currency,
    'reverse_charge', false,
    'supply_type', v_invoice.supply_type,
    'prices_include_tax', v_invoice.prices_include_tax,
    'seller', v_invoice.seller
      || pg_catalog.jsonb_build_object('state_name', billing.gst_state_name(v_invoice.seller ->> 'state_code')),
    'buyer', v_invoice.buyer
      || pg_catalog.jsonb_build_object('state_name', billing.gst_state_name(v_invoice.buyer ->> 'state_code')),
    'place_of_supply', pg_catalog.jsonb_build_object(
      'state_code', v_invoice.place_of_supply_state_code,
      'state_name', case when v_invoice.supply_type = 'export' then 'Outside India'
                         else billing.gst_state_name(v_invoice.place_of_supply_state_code) end
    ),
    'lines', v_lines,
    'totals', pg_catalog.jsonb_build_object(
      'taxable_cents', v_invoice.taxable_cents,
      'cgst_cents', v_invoice.cgst_cents,
      'sgst_cents', v_invoice.sgst_cents,
      'igst_cents', v_invoice.igst_cents,
      'tax_cents', v_invoice.cgst_cents + v_invoice.sgst_cents + v_invoice.igst_cents,
      'total_cents', v_invoice.total_cents
    ),
    'amount_in_words', case when v_invoice.currency = 'INR' then billing.amount_in_words(v_invoice.total_cents) end,
    'credit_notes', v_credit_notes,
    'credited_cents', v_credited,
    'outstanding_cents', v_invoice.total_cents - v_credited,
    'payment', v_payment,
    'service_period', v_period
  );
end;
$function$;
