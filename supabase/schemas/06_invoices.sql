-- =================================================================================================
-- supabill: GST invoices and credit notes
--
-- Tax invoices issued in the same transaction as a captured payment (the payments module calls
-- billing.issue_documents), credit notes for refunds and voids, gapless numbering per financial
-- year, and the JSON document a PDF renderer needs (with the amount in words in the Indian system).
-- The invoice of an order re-runs the order's tax computation (billing.compute_line_tax of the
-- orders module) on the order's quote, never on the settings or profile of the day it is paid, so
-- invoice total = amount charged.
--
-- Credit notes split their gross amount in the invoice's proportions cumulatively: after credit
-- notes for s paise in all, each component credited so far is round_half_up(s x component /
-- invoice total); a note gets the difference from what earlier notes credited. Rounding never
-- piles up, and the note that exhausts the invoice nets every component to zero.
--
-- Numbering (GST rule 46(b): at most 16 characters, letters, digits, '-' and '/', consecutive per
-- financial year): `<prefix>/<YY-YY>/<serial>`, the serial zero-padded so the number is exactly 16
-- characters (prefix 'INV' -> INV/26-27/000123; credit notes 'CN' -> CN/26-27/0000001). The
-- financial year runs 1 April to 31 March in Asia/Kolkata, read from billing.now(). Serials come
-- from billing.invoice_counters (`insert ... on conflict do update ... returning`): the row lock
-- is held to commit, so a rolled-back transaction releases its number and the next one reuses it.
-- Issued invoices, their lines and credit notes are immutable (billing.reject_change). An invoice
-- issued for a captured payment queues the 'payment_captured' email (trigger
-- invoices_queue_payment_captured). public.invoice_document, public.credit_note_document and
-- public.tax_document return the JSON a PDF renderer needs.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- None.

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- Trigger function for issued documents
-- -------------------------------------------------------------------------------------------------

/**
 * Refuses an INSERT that does not come from the issuing functions (which set the transaction-local
 * `billing.issuing` flag), so numbering and tax are always computed by them. A guard against
 * mistakes, not a security boundary: the writers are service_role and the table owner.
 */
create function billing.require_issuing_function()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if coalesce(pg_catalog.current_setting('billing.issuing', true), '') <> tg_table_name then
    raise exception 'rows of %.% are created only by billing.issue_invoice and billing.issue_credit_note', tg_table_schema, tg_table_name
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;
revoke execute on function billing.require_issuing_function() from public;

-- -------------------------------------------------------------------------------------------------
-- billing.invoice_counters (private)
-- -------------------------------------------------------------------------------------------------

/**
 * The last serial used per series (invoice, credit_note) and financial year. Incremented with
 * `insert ... on conflict do update ... returning`, whose row lock is held to commit: concurrent
 * issuers queue, and a rollback gives the number back. No sequences (they leave gaps).
 */
create table billing.invoice_counters (
  series public.document_series not null,
  financial_year integer not null check (financial_year between 2000 and 2999),
  last_number bigint not null check (last_number > 0),
  updated_at timestamptz not null default now(),
  primary key (series, financial_year)
);

revoke all on billing.invoice_counters from public;

grant select on billing.invoice_counters to service_role;

-- -------------------------------------------------------------------------------------------------
-- invoices (immutable)
-- -------------------------------------------------------------------------------------------------

/**
 * AFTER INSERT on invoices: a 'payment_captured' notification for the invoice's organization and
 * the order's subscription, deduplicated per invoice ('payment_captured:<invoice id>').
 */
create function billing.queue_payment_captured()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  insert into public.notifications (organization_id, subscription_id, kind, payload, dedupe_key)
  select new.organization_id, o.subscription_id, 'payment_captured',
         pg_catalog.jsonb_build_object(
           'invoice_id', new.id, 'invoice_number', new.invoice_number, 'invoice_date', new.invoice_date,
           'order_id', o.id, 'receipt', o.receipt, 'plan_id', o.plan_id,
           'amount_cents', new.total_cents, 'currency', new.currency, 'paid_at', new.issued_at)
         || case when o.credit_pack_id is not null then pg_catalog.jsonb_build_object(
              'credit_pack_id', o.credit_pack_id,
              'credit_pack_name', (select cp.name from public.credit_packs cp where cp.id = o.credit_pack_id),
              'credits', (o.metadata ->> 'credits')::bigint) else '{}'::jsonb end,
         pg_catalog.format('payment_captured:%s', new.id)
  from public.orders o
  where o.id = new.order_id
  on conflict (dedupe_key) do nothing;
  return null;
end;
$$;
revoke execute on function billing.queue_payment_captured() from public;

/**
 * A GST tax invoice, one per paid order. `seller` and `buyer` are snapshots of the profiles at
 * issue time (name, GSTIN, state, address). supply_type: intra_state (CGST + SGST), inter_state
 * (IGST) or export (zero-rated under the LUT whose ARN is lut_arn, IGST 0; or, export_with_igst,
 * on payment of IGST at the rate when no LUT covered the order's financial year).
 * place_of_supply_state_code is null for exports. An invoice in a foreign currency states the
 * rupees per unit it was converted at (exchange_rate: the order's, or the provider's rate at
 * capture, exchange_rate_source) and the INR value of its taxable value and total
 * (inr_taxable_paise, inr_total_paise: amount x rate, rounded half up), as Rule 46 asks.
 * Immutable: corrections are credit notes.
 */
create table public.invoices (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete restrict,
  order_id uuid not null references public.orders (id) on delete restrict,
  -- No foreign key on purpose: payment_events is append-only (its rows never go away), the
  -- issuing function checks the event, and a reference would turn payment_events' TRUNCATE guard
  -- into a foreign-key error.
  payment_event_id uuid,
  invoice_number text not null check (invoice_number ~ '^[A-Z0-9/-]{1,16}$'),
  financial_year integer not null check (financial_year between 2000 and 2999),
  serial bigint not null check (serial > 0),
  issued_at timestamptz not null,
  invoice_date date not null,
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  supply_type public.supply_type not null,
  place_of_supply_state_code text check (place_of_supply_state_code ~ '^[0-9]{2}$'),
  buyer_gstin text,
  seller jsonb not null check (jsonb_typeof(seller) = 'object'),
  buyer jsonb not null check (jsonb_typeof(buyer) = 'object'),
  prices_include_tax boolean not null,
  taxable_cents bigint not null check (taxable_cents >= 0),
  cgst_cents bigint not null check (cgst_cents >= 0),
  sgst_cents bigint not null check (sgst_cents >= 0),
  igst_cents bigint not null check (igst_cents >= 0),
  total_cents bigint not null check (total_cents >= 0),
  created_at timestamptz not null default now(),
  lut_arn text,
  export_with_igst boolean not null default false,
  exchange_rate numeric(18, 6) constraint invoices_exchange_rate_positive check (exchange_rate > 0),
  exchange_rate_source text constraint invoices_exchange_rate_source_known check (exchange_rate_source in ('order', 'provider')),
  inr_taxable_paise bigint constraint invoices_inr_taxable_not_negative check (inr_taxable_paise >= 0),
  inr_total_paise bigint constraint invoices_inr_total_not_negative check (inr_total_paise >= 0),
  constraint invoices_inr_value_with_rate check (
    (exchange_rate is null) = (inr_total_paise is null) and (exchange_rate is null) = (inr_taxable_paise is null)
    and (exchange_rate is null) = (exchange_rate_source is null)),
  constraint invoices_number_unique unique (invoice_number),
  constraint invoices_serial_unique unique (financial_year, serial),
  constraint invoices_one_per_order unique (order_id),
  constraint invoices_total_adds_up check (total_cents = taxable_cents + cgst_cents + sgst_cents + igst_cents),
  constraint invoices_tax_matches_supply check (
    case supply_type
      when 'intra_state' then igst_cents = 0 and cgst_cents = sgst_cents and place_of_supply_state_code is not null
      when 'inter_state' then cgst_cents = 0 and sgst_cents = 0 and place_of_supply_state_code is not null
      else cgst_cents = 0 and sgst_cents = 0 and place_of_supply_state_code is null
        and (export_with_igst or igst_cents = 0) and not (export_with_igst and lut_arn is not null)
    end
  ),
  constraint invoices_export_fields_only_on_exports check (
    supply_type = 'export' or (lut_arn is null and not export_with_igst))
);

comment on table public.invoices is 'GST tax invoices, one per paid order, numbered without gaps per financial year; immutable.';

/** Foreign keys and the policy column; an organization's invoices in time order; a payment's invoice. */
create index invoices_organization_id_idx on public.invoices (organization_id, issued_at);

create index invoices_payment_event_id_idx on public.invoices (payment_event_id);

grant select on public.invoices to authenticated;

grant select, insert, update, delete on public.invoices to service_role;

alter table public.invoices enable row level security;

create trigger invoices_require_issuing_function
  before insert on public.invoices
  for each row execute function billing.require_issuing_function();

create trigger invoices_immutable
  before update or delete on public.invoices
  for each row execute function billing.reject_change('rows are issued tax documents and cannot be changed',
    'Correct an invoice by issuing a credit note (billing.issue_credit_note, public.void_invoice).');

create trigger invoices_no_truncate
  before truncate on public.invoices
  for each statement execute function billing.reject_change('rows are issued tax documents and cannot be changed',
    'Correct an invoice by issuing a credit note (billing.issue_credit_note, public.void_invoice).');

create trigger invoices_queue_payment_captured
  after insert on public.invoices
  for each row execute function billing.queue_payment_captured();

-- -------------------------------------------------------------------------------------------------
-- invoice_lines (immutable)
-- -------------------------------------------------------------------------------------------------

/**
 * The lines of an invoice: SAC code, taxable value, GST rate and its split into CGST, SGST and
 * IGST rates (basis points) and amounts (paise), each amount rounded once, half up. A line sells
 * a plan (plan_id) or a credit pack (credit_pack_id). A discounted line shows the list price
 * (list_cents), the discount (discount_cents, with its discount_code) and the taxable value after
 * it (list - discount; for tax-inclusive prices list and discount are gross amounts and the
 * taxable value is carved out of what is left); null list_cents: no discount.
 */
create table public.invoice_lines (
  id uuid primary key default gen_random_uuid(),
  invoice_id uuid not null references public.invoices (id) on delete restrict,
  organization_id uuid not null references public.organizations (id) on delete restrict,
  line_number integer not null check (line_number > 0),
  plan_id uuid references public.billing_plans (id) on delete restrict,
  description text not null check (length(btrim(description)) between 1 and 500),
  sac_code text not null check (sac_code ~ '^99[0-9]{4}$'),
  quantity integer not null default 1 check (quantity > 0),
  gst_rate_bp integer not null check (gst_rate_bp between 0 and 2800),
  cgst_rate_bp integer not null check (cgst_rate_bp >= 0),
  sgst_rate_bp integer not null check (sgst_rate_bp >= 0),
  igst_rate_bp integer not null check (igst_rate_bp >= 0),
  taxable_cents bigint not null check (taxable_cents >= 0),
  cgst_cents bigint not null check (cgst_cents >= 0),
  sgst_cents bigint not null check (sgst_cents >= 0),
  igst_cents bigint not null check (igst_cents >= 0),
  total_cents bigint not null check (total_cents >= 0),
  created_at timestamptz not null default now(),
  credit_pack_id uuid references public.credit_packs (id) on delete restrict,
  list_cents bigint check (list_cents >= 0),
  discount_cents bigint not null default 0 check (discount_cents >= 0),
  discount_code text,
  constraint invoice_lines_discount_within_list check (discount_cents = 0 or discount_cents <= list_cents),
  constraint invoice_lines_number_unique unique (invoice_id, line_number),
  constraint invoice_lines_total_adds_up check (total_cents = taxable_cents + cgst_cents + sgst_cents + igst_cents)
);

comment on table public.invoice_lines is 'The lines of a GST tax invoice, with their taxable value and tax components; immutable.';

/** Foreign keys and the policy column. (invoice_id leads the unique constraint.) */
create index invoice_lines_organization_id_idx on public.invoice_lines (organization_id);

create index invoice_lines_plan_id_idx on public.invoice_lines (plan_id);

create index invoice_lines_credit_pack_id_idx on public.invoice_lines (credit_pack_id) where credit_pack_id is not null;

grant select on public.invoice_lines to authenticated;

grant select, insert, update, delete on public.invoice_lines to service_role;

alter table public.invoice_lines enable row level security;

create trigger invoice_lines_require_issuing_function
  before insert on public.invoice_lines
  for each row execute function billing.require_issuing_function();

create trigger invoice_lines_immutable
  before update or delete on public.invoice_lines
  for each row execute function billing.reject_change('rows are issued tax documents and cannot be changed',
    'Correct an invoice by issuing a credit note (billing.issue_credit_note, public.void_invoice).');

create trigger invoice_lines_no_truncate
  before truncate on public.invoice_lines
  for each statement execute function billing.reject_change('rows are issued tax documents and cannot be changed',
    'Correct an invoice by issuing a credit note (billing.issue_credit_note, public.void_invoice).');

-- -------------------------------------------------------------------------------------------------
-- credit_notes (immutable)
-- -------------------------------------------------------------------------------------------------

/**
 * A GST credit note against an invoice (a refund, or a void for the whole remaining amount): its
 * own gapless series, the tax split in the invoice's proportions. The credit notes of an invoice
 * never add up to more than the invoice. At most one credit note per refund payment event.
 */
create table public.credit_notes (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete restrict,
  invoice_id uuid not null references public.invoices (id) on delete restrict,
  payment_event_id uuid, -- no foreign key, as on invoices.payment_event_id
  credit_note_number text not null check (credit_note_number ~ '^[A-Z0-9/-]{1,16}$'),
  financial_year integer not null check (financial_year between 2000 and 2999),
  serial bigint not null check (serial > 0),
  issued_at timestamptz not null,
  credit_note_date date not null,
  kind public.credit_note_kind not null,
  reason text not null check (length(btrim(reason)) between 1 and 500),
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  taxable_cents bigint not null check (taxable_cents >= 0),
  cgst_cents bigint not null check (cgst_cents >= 0),
  sgst_cents bigint not null check (sgst_cents >= 0),
  igst_cents bigint not null check (igst_cents >= 0),
  total_cents bigint not null check (total_cents > 0),
  created_at timestamptz not null default now(),
  exchange_rate numeric(18, 6) constraint credit_notes_exchange_rate_positive check (exchange_rate > 0),
  inr_taxable_paise bigint constraint credit_notes_inr_taxable_not_negative check (inr_taxable_paise >= 0),
  inr_total_paise bigint constraint credit_notes_inr_total_not_negative check (inr_total_paise >= 0),
  constraint credit_notes_inr_value_with_rate check (
    (exchange_rate is null) = (inr_total_paise is null) and (exchange_rate is null) = (inr_taxable_paise is null)),
  constraint credit_notes_number_unique unique (credit_note_number),
  constraint credit_notes_serial_unique unique (financial_year, serial),
  constraint credit_notes_one_per_payment_event unique (payment_event_id),
  constraint credit_notes_total_adds_up check (total_cents = taxable_cents + cgst_cents + sgst_cents + igst_cents)
);

comment on table public.credit_notes is 'Credit notes against an invoice, for refunds and voids; immutable.';

/** Foreign keys and the policy column. (payment_event_id leads its unique constraint.) */
create index credit_notes_organization_id_idx on public.credit_notes (organization_id, issued_at);

create index credit_notes_invoice_id_idx on public.credit_notes (invoice_id);

grant select on public.credit_notes to authenticated;

grant select, insert, update, delete on public.credit_notes to service_role;

alter table public.credit_notes enable row level security;

create trigger credit_notes_require_issuing_function
  before insert on public.credit_notes
  for each row execute function billing.require_issuing_function();

create trigger credit_notes_immutable
  before update or delete on public.credit_notes
  for each row execute function billing.reject_change('rows are issued tax documents and cannot be changed',
    'Correct an invoice by issuing a credit note (billing.issue_credit_note, public.void_invoice).');

create trigger credit_notes_no_truncate
  before truncate on public.credit_notes
  for each statement execute function billing.reject_change('rows are issued tax documents and cannot be changed',
    'Correct an invoice by issuing a credit note (billing.issue_credit_note, public.void_invoice).');

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * A whole number in words in the Indian system (crore, lakh, thousand, hundred), title case,
 * compound tens hyphenated, no "and": 123456789 -> 'Twelve Crore Thirty-Four Lakh Fifty-Six
 * Thousand Seven Hundred Eighty-Nine'. Crores above 99 are spelled recursively ('One Thousand
 * Crore'). 0 -> 'Zero'.
 */
create function billing.number_in_words(p_number bigint)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  c_ones constant text[] := array[
    'One', 'Two', 'Three', 'Four', 'Five', 'Six', 'Seven', 'Eight', 'Nine', 'Ten',
    'Eleven', 'Twelve', 'Thirteen', 'Fourteen', 'Fifteen', 'Sixteen', 'Seventeen', 'Eighteen', 'Nineteen'];
  c_tens constant text[] := array['', 'Twenty', 'Thirty', 'Forty', 'Fifty', 'Sixty', 'Seventy', 'Eighty', 'Ninety'];
  v_parts text[] := '{}'::text[];
  v_rest bigint := p_number;
  v_group bigint;
begin
  if p_number is null or p_number < 0 then
    raise exception 'number_in_words needs a non-negative number, got %', p_number
      using errcode = 'invalid_parameter_value';
  end if;
  if p_number = 0 then
    return 'Zero';
  end if;

  if v_rest >= 10000000 then
    v_parts := v_parts || (billing.number_in_words(v_rest / 10000000) || ' Crore');
    v_rest := v_rest % 10000000;
  end if;
  if v_rest >= 100000 then
    v_parts := v_parts || (billing.number_in_words(v_rest / 100000) || ' Lakh');
    v_rest := v_rest % 100000;
  end if;
  if v_rest >= 1000 then
    v_parts := v_parts || (billing.number_in_words(v_rest / 1000) || ' Thousand');
    v_rest := v_rest % 1000;
  end if;
  if v_rest >= 100 then
    v_parts := v_parts || (c_ones[v_rest / 100] || ' Hundred');
    v_rest := v_rest % 100;
  end if;
  if v_rest > 0 then
    if v_rest < 20 then
      v_parts := v_parts || c_ones[v_rest];
    else
      v_group := v_rest % 10;
      v_parts := v_parts || (c_tens[v_rest / 10] || case when v_group > 0 then '-' || c_ones[v_group] else '' end);
    end if;
  end if;
  return pg_catalog.array_to_string(v_parts, ' ');
end;
$$;
revoke execute on function billing.number_in_words(bigint) from public;
grant execute on function billing.number_in_words(bigint) to authenticated, service_role;

/**
 * An amount of paise in words, the way Indian invoices print it:
 * 'Rupees <rupees in words>[ and <paise in words> Paise] Only'. Rupees are always named, even
 * for zero or one ('Rupees Zero Only', 'Rupees One Only'); paise only when there are some.
 * 1234567890 -> 'Rupees One Crore Twenty-Three Lakh Forty-Five Thousand Six Hundred
 * Seventy-Eight and Ninety Paise Only'.
 */
create function billing.amount_in_words(p_paise bigint)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_paise is null or p_paise < 0 then
    raise exception 'amount_in_words needs a non-negative amount in paise, got %', p_paise
      using errcode = 'invalid_parameter_value';
  end if;
  return 'Rupees ' || billing.number_in_words(p_paise / 100)
    || case when p_paise % 100 > 0 then ' and ' || billing.number_in_words(p_paise % 100) || ' Paise' else '' end
    || ' Only';
end;
$$;
revoke execute on function billing.amount_in_words(bigint) from public;
grant execute on function billing.amount_in_words(bigint) to authenticated, service_role;

/** The financial year (1 April to 31 March, Asia/Kolkata) a moment falls in, by its first year: 2026 for 2026-27. */
create function billing.financial_year(p_at timestamptz)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
begin
  return (pg_catalog.date_part('year', p_at at time zone 'Asia/Kolkata')
          - case when pg_catalog.date_part('month', p_at at time zone 'Asia/Kolkata') < 4 then 1 else 0 end)::integer;
end;
$$;
revoke execute on function billing.financial_year(timestamptz) from public;
grant execute on function billing.financial_year(timestamptz) to authenticated, service_role;

/** A financial year's short label: 2026 -> '26-27'. */
create function billing.financial_year_label(p_financial_year integer)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.lpad((p_financial_year % 100)::text, 2, '0') || '-' || pg_catalog.lpad(((p_financial_year + 1) % 100)::text, 2, '0');
end;
$$;
revoke execute on function billing.financial_year_label(integer) from public;
grant execute on function billing.financial_year_label(integer) to authenticated, service_role;

/**
 * The next serial of a series in the financial year of p_at: gapless, because the counter row
 * stays locked until the caller's transaction ends (a rollback returns the number).
 */
create function billing.next_serial(p_series text, p_financial_year integer)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_serial bigint;
begin
  insert into billing.invoice_counters as c (series, financial_year, last_number)
  values (p_series::public.document_series, p_financial_year, 1)
  on conflict (series, financial_year)
    do update set last_number = c.last_number + 1, updated_at = pg_catalog.now()
  returning c.last_number into v_serial;
  return v_serial;
end;
$$;
revoke execute on function billing.next_serial(text, integer) from public;

/**
 * A document number: `<prefix>/<YY-YY>/<serial>`, the serial zero-padded to make exactly 16
 * characters (GST rule 46(b)). Raises when the serial no longer fits.
 */
create function billing.format_document_number(p_prefix text, p_financial_year integer, p_serial bigint)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_head text := p_prefix || '/' || billing.financial_year_label(p_financial_year) || '/';
  v_width integer := 16 - pg_catalog.length(v_head);
begin
  if v_width < 1 or pg_catalog.length(p_serial::text) > v_width then
    raise exception 'document series "%" is full for financial year %: serial % does not fit 16 characters', p_prefix,
      billing.financial_year_label(p_financial_year), p_serial
      using errcode = 'program_limit_exceeded', hint = 'Use a shorter prefix in billing_settings.';
  end if;
  return v_head || pg_catalog.lpad(p_serial::text, v_width, '0');
end;
$$;
revoke execute on function billing.format_document_number(text, integer, bigint) from public;
grant execute on function billing.format_document_number(text, integer, bigint) to service_role;

/**
 * The seller or buyer block of an invoice, as issued (a snapshot: a later change of the profile
 * does not change an issued invoice).
 */
create function billing.invoice_party(
  p_legal_name text,
  p_gstin text,
  p_state_code text,
  p_address_line1 text,
  p_address_line2 text,
  p_city text,
  p_postal_code text,
  p_country text,
  p_email text
)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.jsonb_build_object(
    'legal_name', p_legal_name, 'gstin', p_gstin, 'state_code', p_state_code,
    'address_line1', p_address_line1, 'address_line2', p_address_line2, 'city', p_city,
    'postal_code', p_postal_code, 'country', p_country, 'email', p_email);
end;
$$;
revoke execute on function billing.invoice_party(text, text, text, text, text, text, text, text, text) from public;
grant execute on function billing.invoice_party(text, text, text, text, text, text, text, text, text) to service_role;

/**
 * The split of a credit note of p_amount_cents (tax-inclusive) against an invoice of which
 * p_credited (taxable, cgst, sgst, igst and total cents) is already credited. Cumulative: what
 * all credit notes up to this one credit of each component is the rounded proportion of their
 * running total; this note gets the difference. When the running total reaches the invoice total
 * every component reaches the invoice's exactly.
 */
create function billing.credit_note_split(
  p_invoice public.invoices,
  p_credited_total bigint,
  p_credited_cgst bigint,
  p_credited_sgst bigint,
  p_credited_igst bigint,
  p_amount_cents bigint,
  out taxable_cents bigint,
  out cgst_cents bigint,
  out sgst_cents bigint,
  out igst_cents bigint
)
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_running numeric := (p_credited_total + p_amount_cents)::numeric;
begin
  cgst_cents := billing.div_round_half_up(v_running * p_invoice.cgst_cents, p_invoice.total_cents) - p_credited_cgst;
  sgst_cents := billing.div_round_half_up(v_running * p_invoice.sgst_cents, p_invoice.total_cents) - p_credited_sgst;
  igst_cents := billing.div_round_half_up(v_running * p_invoice.igst_cents, p_invoice.total_cents) - p_credited_igst;
  taxable_cents := p_amount_cents - cgst_cents - sgst_cents - igst_cents;
  if taxable_cents < 0 then
    -- Only a 1-paisa note on which CGST and SGST both round up: SGST's paisa waits for the next
    -- note (the cumulative rule hands it over there).
    sgst_cents := sgst_cents + taxable_cents;
    taxable_cents := 0;
  end if;
end;
$$;
revoke execute on function billing.credit_note_split(public.invoices, bigint, bigint, bigint, bigint, bigint) from public;
grant execute on function billing.credit_note_split(public.invoices, bigint, bigint, bigint, bigint, bigint) to service_role;

/**
 * Issues the GST invoice for a paid order, in the caller's transaction; returns its id.
 * Idempotent per order: a second call (also a concurrent one) returns the existing invoice.
 * p_payment_event_id, when given, must be a captured payment of this order.
 * The seller's state (billing_settings.seller_state_code, or the seller GSTIN's) and legal name
 * must be set. Supply type, place of supply, GST rate and taxable value are the order's quote
 * (billing.order_tax_quote, made when the order was created: the buyer's state code, or the
 * seller's location when the buyer has none, IGST Act s. 12(2)(b); a buyer outside India is an
 * export), so the invoice total is exactly the amount the order charged. An order quoted while
 * the seller's state was unknown carries no GST and gets no tax invoice (55000).
 * Security definer: it writes the private counters and the invoice tables, which no API role
 * may write directly; callers are service_role and the payment functions.
 */
create function billing.issue_invoice(p_order_id uuid, p_payment_event_id uuid)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_order public.orders%rowtype;
  v_settings public.billing_settings%rowtype;
  v_org public.organizations%rowtype;
  v_plan public.billing_plans%rowtype;
  v_pack public.credit_packs%rowtype;
  v_description text;
  v_invoice_id uuid;
  v_seller_state text;
  v_supply_type text;
  v_place_of_supply text;
  v_tax record;
  v_now timestamptz := billing.now();
  v_financial_year integer := billing.financial_year(v_now);
  v_serial bigint;
  v_rate numeric;
  v_rate_source text;
begin
  select * into v_order from public.orders o where o.id = p_order_id for update;
  if not found then
    raise exception 'order % does not exist', p_order_id using errcode = 'no_data_found';
  end if;

  select i.id into v_invoice_id from public.invoices i where i.order_id = p_order_id;
  if found then
    return v_invoice_id;
  end if;

  if p_payment_event_id is not null and not exists (
    select 1 from public.payment_events e
    where e.id = p_payment_event_id and e.order_id = p_order_id and e.status = 'captured'
  ) then
    raise exception 'payment event % is not a captured payment of order %', p_payment_event_id, p_order_id
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_settings from public.billing_settings s where s.id;
  v_seller_state := coalesce(v_settings.seller_state_code, pg_catalog.left(v_settings.seller_gstin, 2));
  if v_settings.seller_legal_name is null or v_seller_state is null then
    raise exception 'billing_settings.seller_legal_name and seller_state_code (or seller_gstin) must be set before invoices can be issued'
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  select * into strict v_org from public.organizations o where o.id = v_order.organization_id;
  -- What the order sold, as its line says it: a plan, or a credit pack with its credits.
  if v_order.credit_pack_id is not null then
    select * into strict v_pack from public.credit_packs cp where cp.id = v_order.credit_pack_id;
    v_description := pg_catalog.format('%s - credit pack (%s credits%s)', v_pack.name,
      coalesce(v_order.metadata ->> 'credits', v_pack.credits::text),
      case when v_order.metadata ->> 'credit_validity' is not null
           then ', valid for ' || (v_order.metadata ->> 'credit_validity') else '' end);
  else
    select * into strict v_plan from public.billing_plans p where p.id = v_order.plan_id;
    v_description := v_plan.name || case v_order.kind
      when 'renewal' then ' - subscription renewal'
      when 'upgrade' then ' - plan upgrade (prorated)'
      else ' - subscription'
    end;
    -- A price negotiated under a contract (a price override, billing.plan_price_for): named on the line.
    if coalesce(v_order.metadata ->> 'contract_ref', v_order.metadata #>> '{quote,to_contract_ref}') is not null then
      v_description := v_description || pg_catalog.format(' (contract price, %s)',
        coalesce(v_order.metadata ->> 'contract_ref', v_order.metadata #>> '{quote,to_contract_ref}'));
    end if;
  end if;

  -- The tax is the order's quote (billing.quote_order_tax), recomputed the same way: the invoice
  -- total is what the order charged, whatever changed in the settings or the profile since.
  if v_order.supply_type is null or v_order.taxable_cents is null then
    raise exception 'order % was priced without GST (the seller''s state was not set when it was created): no tax invoice', v_order.receipt
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  v_supply_type := v_order.supply_type;
  v_place_of_supply := v_order.place_of_supply_state_code;
  select * into v_tax
  from billing.compute_line_tax(case when v_order.prices_include_tax then v_order.amount_cents else v_order.taxable_cents end,
                                v_order.gst_rate_bp,
                                case when v_order.export_with_igst then 'export_with_igst' else v_supply_type end,
                                v_order.prices_include_tax);
  -- A foreign currency: the provider's rate of this payment when its event carried one, else the
  -- rate the order recorded; the INR values are fixed here with the invoice. (An order made
  -- before rates were recorded has none: its invoice states no INR value.)
  if v_order.currency <> 'INR' then
    select (e.details ->> 'exchange_rate')::numeric into v_rate
    from public.payment_events e where e.id = p_payment_event_id and e.details ? 'exchange_rate';
    v_rate_source := case when v_rate is not null then 'provider' when v_order.exchange_rate is not null then 'order' end;
    v_rate := coalesce(v_rate, v_order.exchange_rate);
  end if;
  if v_tax.total_cents <> v_order.amount_cents then
    raise exception 'order % charges % but its tax quote totals %', v_order.receipt, v_order.amount_cents, v_tax.total_cents
      using errcode = 'data_exception';
  end if;

  v_serial := billing.next_serial('invoice', v_financial_year);

  perform pg_catalog.set_config('billing.issuing', 'invoices', true);
  insert into public.invoices (
    organization_id, order_id, payment_event_id, invoice_number, financial_year, serial,
    issued_at, invoice_date, currency, supply_type, place_of_supply_state_code, buyer_gstin,
    seller, buyer, prices_include_tax,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents,
    lut_arn, export_with_igst, exchange_rate, exchange_rate_source, inr_taxable_paise, inr_total_paise
  ) values (
    v_org.id, v_order.id, p_payment_event_id,
    billing.format_document_number(v_settings.invoice_prefix, v_financial_year, v_serial), v_financial_year, v_serial,
    v_now, (v_now at time zone 'Asia/Kolkata')::date, v_order.currency, v_supply_type::public.supply_type, v_place_of_supply, v_org.gstin,
    billing.invoice_party(v_settings.seller_legal_name, v_settings.seller_gstin, v_seller_state,
                          v_settings.seller_address_line1, v_settings.seller_address_line2, v_settings.seller_city,
                          v_settings.seller_postal_code, 'IN', v_settings.seller_email),
    billing.invoice_party(coalesce(v_org.billing_name, v_org.name), v_org.gstin, v_org.state_code,
                          v_org.billing_address_line1, v_org.billing_address_line2, v_org.billing_city,
                          v_org.billing_postal_code, v_org.billing_country, v_org.billing_email),
    v_order.prices_include_tax,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents,
    v_order.lut_arn, v_order.export_with_igst, v_rate, v_rate_source,
    billing.div_round_half_up(v_tax.taxable_cents * v_rate, 1), billing.div_round_half_up(v_tax.total_cents * v_rate, 1)
  )
  returning id into v_invoice_id;

  perform pg_catalog.set_config('billing.issuing', 'invoice_lines', true);
  insert into public.invoice_lines (
    invoice_id, organization_id, line_number, plan_id, credit_pack_id, description, sac_code, quantity,
    gst_rate_bp, cgst_rate_bp, sgst_rate_bp, igst_rate_bp,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents,
    list_cents, discount_cents, discount_code
  ) values (
    v_invoice_id, v_org.id, 1, v_plan.id, v_pack.id, v_description,
    v_settings.sac_code, 1,
    case when v_supply_type = 'export' and not v_order.export_with_igst then 0 else v_order.gst_rate_bp end,
    v_tax.cgst_rate_bp, v_tax.sgst_rate_bp, v_tax.igst_rate_bp,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents,
    v_order.list_cents, v_order.discount_cents, v_order.metadata ->> 'discount_code'
  );
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_invoice_id;
end;
$$;
revoke execute on function billing.issue_invoice(uuid, uuid) from public;
grant execute on function billing.issue_invoice(uuid, uuid) to service_role;

/**
 * Issues a credit note against an invoice for p_amount_cents (the gross amount credited, tax
 * included); returns its id. The tax is split in the invoice's proportions, cumulatively (see the
 * banner); the credit notes of an invoice never exceed its total, and the one that exhausts it
 * nets every component to zero.
 * p_payment_event_id, when given, is the refund's payment event (of the invoice's order); a
 * second call with the same event returns the existing credit note. p_kind is 'refund' or 'void'.
 * Security definer: it writes the private counters and credit_notes, which no API role may write
 * directly; callers are service_role and the payment functions.
 */
create function billing.issue_credit_note(
  p_invoice_id uuid,
  p_amount_cents bigint,
  p_reason text,
  p_payment_event_id uuid default null,
  p_kind text default 'refund'
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_invoice public.invoices%rowtype;
  v_settings public.billing_settings%rowtype;
  v_credit_note_id uuid;
  v_credited record;
  v_remaining bigint;
  v_split record;
  v_now timestamptz := billing.now();
  v_financial_year integer := billing.financial_year(v_now);
  v_serial bigint;
begin
  if p_kind is null or p_kind not in ('refund', 'void') then
    raise exception 'credit note kind must be refund or void, got %', p_kind using errcode = 'invalid_parameter_value';
  end if;
  if p_reason is null or length(btrim(p_reason)) not between 1 and 500 then
    raise exception 'a credit note needs a reason of 1 to 500 characters' using errcode = 'invalid_parameter_value';
  end if;
  if p_amount_cents is null or p_amount_cents <= 0 then
    raise exception 'credit note amount must be a positive number of paise, got %', p_amount_cents
      using errcode = 'invalid_parameter_value';
  end if;

  -- Serializes credit notes of one invoice, so two refunds cannot both pass the remaining check.
  select * into v_invoice from public.invoices i where i.id = p_invoice_id for update;
  if not found then
    raise exception 'invoice % does not exist', p_invoice_id using errcode = 'no_data_found';
  end if;

  if p_payment_event_id is not null then
    select c.id into v_credit_note_id from public.credit_notes c where c.payment_event_id = p_payment_event_id;
    if found then
      return v_credit_note_id;
    end if;
    if not exists (
      select 1 from public.payment_events e where e.id = p_payment_event_id and e.order_id = v_invoice.order_id
    ) then
      -- Also catches an event that does not exist (payment_event_id has no foreign key).
      raise exception 'payment event % is not a payment of invoice %''s order', p_payment_event_id, v_invoice.invoice_number
        using errcode = 'invalid_parameter_value';
    end if;
  end if;

  select
    coalesce(sum(c.taxable_cents), 0)::bigint as taxable_cents,
    coalesce(sum(c.cgst_cents), 0)::bigint as cgst_cents,
    coalesce(sum(c.sgst_cents), 0)::bigint as sgst_cents,
    coalesce(sum(c.igst_cents), 0)::bigint as igst_cents,
    coalesce(sum(c.total_cents), 0)::bigint as total_cents
  into v_credited
  from public.credit_notes c
  where c.invoice_id = p_invoice_id;

  v_remaining := v_invoice.total_cents - v_credited.total_cents;
  if p_amount_cents > v_remaining then
    raise exception 'credit note amount % exceeds the remaining creditable amount % of invoice %',
      p_amount_cents, v_remaining, v_invoice.invoice_number
      using errcode = 'invalid_parameter_value';
  end if;

  v_split := billing.credit_note_split(v_invoice, v_credited.total_cents, v_credited.cgst_cents, v_credited.sgst_cents,
                                       v_credited.igst_cents, p_amount_cents);

  select * into v_settings from public.billing_settings s where s.id;
  v_serial := billing.next_serial('credit_note', v_financial_year);

  perform pg_catalog.set_config('billing.issuing', 'credit_notes', true);
  insert into public.credit_notes (
    organization_id, invoice_id, payment_event_id, credit_note_number, financial_year, serial,
    issued_at, credit_note_date, kind, reason, currency,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents,
    exchange_rate, inr_taxable_paise, inr_total_paise
  ) values (
    v_invoice.organization_id, v_invoice.id, p_payment_event_id,
    billing.format_document_number(v_settings.credit_note_prefix, v_financial_year, v_serial), v_financial_year, v_serial,
    v_now, (v_now at time zone 'Asia/Kolkata')::date, p_kind::public.credit_note_kind, btrim(p_reason), v_invoice.currency,
    v_split.taxable_cents, v_split.cgst_cents, v_split.sgst_cents, v_split.igst_cents, p_amount_cents,
    -- A credit note of an invoice in a foreign currency is converted at the invoice's rate.
    v_invoice.exchange_rate,
    billing.div_round_half_up(v_split.taxable_cents * v_invoice.exchange_rate, 1),
    billing.div_round_half_up(p_amount_cents * v_invoice.exchange_rate, 1)
  )
  returning id into v_credit_note_id;
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_credit_note_id;
end;
$$;
revoke execute on function billing.issue_credit_note(uuid, bigint, text, uuid, text) from public;
grant execute on function billing.issue_credit_note(uuid, bigint, text, uuid, text) to service_role;

/**
 * What the payment path calls: the invoice of a paid order and, with p_refund_amount_cents, a
 * credit note for a refund of it. Never fails the payment: an error (say, the seller's details
 * are not set yet) comes back in `error` and apply_payment_event records it in
 * webhook_events.last_error; issue_invoice is idempotent per order, so an operator can issue the
 * invoice later.
 */
create function billing.issue_documents(
  p_order_id uuid,
  p_payment_event_id uuid,
  p_refund_amount_cents bigint default null,
  p_refund_reason text default null,
  p_refund_event_id uuid default null,
  out invoice_id uuid,
  out credit_note_id uuid,
  out error text
)
language plpgsql
set search_path = ''
as $$
begin
  if p_order_id is null then
    return;
  end if;
  begin
    invoice_id := billing.issue_invoice(p_order_id, p_payment_event_id);
    if p_refund_amount_cents is not null and invoice_id is not null then
      credit_note_id := billing.issue_credit_note(invoice_id, p_refund_amount_cents, p_refund_reason, p_refund_event_id);
    end if;
  exception
    when others then
      invoice_id := null;
      credit_note_id := null;
      error := pg_catalog.format('%s not issued: %s', case when p_refund_amount_cents is null then 'invoice'
                                                           else 'credit note' end, sqlerrm);
  end;
end;
$$;
revoke execute on function billing.issue_documents(uuid, uuid, bigint, text, uuid) from public;
grant execute on function billing.issue_documents(uuid, uuid, bigint, text, uuid) to service_role;

/**
 * Voids an invoice: a credit note (kind 'void') for everything not yet credited; returns its id.
 * Invoices are never deleted. Raises when the invoice is already fully credited. service_role only.
 */
create function billing.void_invoice(p_invoice_id uuid, p_reason text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_remaining bigint;
begin
  select i.total_cents - coalesce((select sum(c.total_cents) from public.credit_notes c where c.invoice_id = i.id), 0)
  into v_remaining
  from public.invoices i
  where i.id = p_invoice_id;
  if not found then
    raise exception 'invoice % does not exist', p_invoice_id using errcode = 'no_data_found';
  end if;
  if v_remaining <= 0 then
    raise exception 'invoice % is already fully credited', p_invoice_id using errcode = 'invalid_parameter_value';
  end if;
  -- issue_credit_note locks the invoice and re-checks: a concurrent refund makes this fail, never over-credit.
  return billing.issue_credit_note(p_invoice_id, v_remaining, p_reason, null, 'void');
end;
$$;
revoke execute on function billing.void_invoice(uuid, text) from public, anon, authenticated;
grant execute on function billing.void_invoice(uuid, text) to service_role;

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

/** invoices: members read their organization's. */
create policy "Members can read their organization's invoices"
  on public.invoices for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** invoice_lines: members read their organization's. */
create policy "Members can read their organization's invoice lines"
  on public.invoice_lines for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

/** credit_notes: members read their organization's. */
create policy "Members can read their organization's credit notes"
  on public.credit_notes for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * The endorsement an export invoice (and its credit notes) carries, as Rule 46 asks: 'SUPPLY
 * MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX, LUT ARN <arn>'
 * for a zero-rated export (without the ARN for one invoiced before LUTs were recorded here), or
 * 'SUPPLY MEANT FOR EXPORT ON PAYMENT OF INTEGRATED TAX'; null for any other supply.
 */
create function billing.export_endorsement(p_invoice public.invoices)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_invoice.supply_type is distinct from 'export' then
    return null;
  end if;
  if p_invoice.export_with_igst then
    return 'SUPPLY MEANT FOR EXPORT ON PAYMENT OF INTEGRATED TAX';
  end if;
  return 'SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX'
    || coalesce(', LUT ARN ' || p_invoice.lut_arn, '');
end;
$$;
revoke execute on function billing.export_endorsement(public.invoices) from public;
grant execute on function billing.export_endorsement(public.invoices) to authenticated, service_role;

/**
 * Everything a PDF renderer needs for one invoice, as JSON: document type and number, dates,
 * seller and buyer blocks (GSTINs, state codes and names, addresses), place of supply, supply
 * type, lines with SAC and tax split, totals, the amount in words (INR), the credit notes issued
 * against it, the payment {status 'paid', provider, reference (the provider's payment id, else
 * the order's receipt), method, paid_at} and the service period it paid for {start, end} (null
 * for a credit pack). Runs as the caller: members of the invoice's organization and service_role
 * see it; anyone else gets "invoice not found".
 */
create function public.invoice_document(p_invoice_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
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
$$;
revoke execute on function public.invoice_document(uuid) from public, anon;
grant execute on function public.invoice_document(uuid) to authenticated, service_role;
comment on function public.invoice_document(uuid) is 'Everything a renderer needs to print an invoice (seller, buyer, lines, tax, amount in words). Members and service_role.';

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
    'endorsement', billing.export_endorsement(v_invoice),
    'lut_arn', v_invoice.lut_arn,
    'inr_value', case when v_note.exchange_rate is not null then pg_catalog.jsonb_build_object(
      'exchange_rate', v_note.exchange_rate,
      'taxable_paise', v_note.inr_taxable_paise, 'tax_paise', v_note.inr_total_paise - v_note.inr_taxable_paise,
      'total_paise', v_note.inr_total_paise) end,
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
