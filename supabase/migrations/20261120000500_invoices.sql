-- =================================================================================================
-- supabill: GST invoices and credit notes
--
-- The organization's billing profile (buyer) and the seller's profile in billing_settings, GSTIN
-- validation with the official check character, tax invoices issued in the same transaction as a
-- captured payment (CGST + SGST within the seller's state, IGST across states, zero-rated exports),
-- credit notes for refunds and voids, gapless numbering per financial year, and the JSON document
-- a PDF renderer needs (with the amount in words in the Indian system).
--
-- Sections, in order: 1. GST reference helpers (state codes, GSTIN, money, words); 2. the billing
-- profiles (ALTER organizations and billing_settings); 3. tables (each with grants, row level
-- security and triggers); 4. issuing functions; 5. policies; 6. public functions.
--
-- Money is bigint paise. The tax is fixed when an ORDER is created, so the amount charged and the
-- invoice total are the same number, always. A trigger on orders (billing.quote_order_tax) reads
-- the amount the inserting code gives as the price and stores the quote: taxable_cents, the GST
-- rate, supply type and place of supply, and amount_cents = the total payable. Every order takes
-- this path (checkout, change_plan's upgrade orders, renewal orders of Razorpay subscriptions).
-- Tax is rounded once per line and per tax component, half up:
--   tax-exclusive prices (the default): taxable = the price;
--     each component (CGST, SGST or IGST) = round_half_up(taxable * component_rate_bp / 10000);
--     total payable = taxable + components.
--   tax-inclusive prices (billing_settings.prices_include_tax): the price is the gross;
--     each component = round_half_up(gross * component_rate_bp / (10000 + gst_rate_bp));
--     taxable = gross - components, total payable = the price.
--   Razorpay recurring orders are always tax-inclusive: Razorpay charges the amount of its plan
--     (the plan's price_cents) whoever the buyer is, so the GST is carved out of that amount.
--   CGST and SGST are each half the GST rate, so they are always equal.
--   Exports (buyer country <> 'IN') are zero-rated: IGST at 0 %, taxable = total = the price.
--   Until the seller's state is set (billing_settings.seller_state_code or seller_gstin) no GST is
--     charged (the order has no supply type) and such an order gets no tax invoice.
--   The invoice of an order re-runs the same computation on the order's quote (never on the
--     settings or profile of the day it is paid), so invoice total = amount charged.
--   Credit notes split their gross amount in the invoice's proportions cumulatively: after credit
--     notes for s paise in all, each component credited so far is round_half_up(s x component /
--     invoice total); a note gets the difference from what earlier notes credited. Rounding never
--     piles up, and the note that exhausts the invoice nets every component to zero.
--
-- Numbering (GST rule 46(b): at most 16 characters, letters, digits, '-' and '/', consecutive per
-- financial year): `<prefix>/<YY-YY>/<serial>`, the serial zero-padded so the number is exactly 16
-- characters (prefix 'INV' -> INV/26-27/000123; credit notes 'CN' -> CN/26-27/0000001). The
-- financial year runs 1 April to 31 March in Asia/Kolkata, read from billing.now(). Serials come
-- from billing.invoice_counters (`insert ... on conflict do update ... returning`): the row lock
-- is held to commit, so a rolled-back transaction releases its number and the next one reuses it.
-- =================================================================================================


-- =================================================================================================
-- 1. GST reference helpers
-- =================================================================================================

/**
 * The name of a GST state code (the first two digits of a GSTIN), or null for an unknown code.
 * 01-38 are states and union territories, 97 "Other Territory", 99 "Centre Jurisdiction".
 */
create function billing.gst_state_name(p_code text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_code
    when '01' then 'Jammu and Kashmir'
    when '02' then 'Himachal Pradesh'
    when '03' then 'Punjab'
    when '04' then 'Chandigarh'
    when '05' then 'Uttarakhand'
    when '06' then 'Haryana'
    when '07' then 'Delhi'
    when '08' then 'Rajasthan'
    when '09' then 'Uttar Pradesh'
    when '10' then 'Bihar'
    when '11' then 'Sikkim'
    when '12' then 'Arunachal Pradesh'
    when '13' then 'Nagaland'
    when '14' then 'Manipur'
    when '15' then 'Mizoram'
    when '16' then 'Tripura'
    when '17' then 'Meghalaya'
    when '18' then 'Assam'
    when '19' then 'West Bengal'
    when '20' then 'Jharkhand'
    when '21' then 'Odisha'
    when '22' then 'Chhattisgarh'
    when '23' then 'Madhya Pradesh'
    when '24' then 'Gujarat'
    when '25' then 'Daman and Diu'
    when '26' then 'Dadra and Nagar Haveli and Daman and Diu'
    when '27' then 'Maharashtra'
    when '28' then 'Andhra Pradesh (before division)'
    when '29' then 'Karnataka'
    when '30' then 'Goa'
    when '31' then 'Lakshadweep'
    when '32' then 'Kerala'
    when '33' then 'Tamil Nadu'
    when '34' then 'Puducherry'
    when '35' then 'Andaman and Nicobar Islands'
    when '36' then 'Telangana'
    when '37' then 'Andhra Pradesh'
    when '38' then 'Ladakh'
    when '97' then 'Other Territory'
    when '99' then 'Centre Jurisdiction'
  end;
end;
$$;
revoke execute on function billing.gst_state_name(text) from public;
grant execute on function billing.gst_state_name(text) to authenticated, service_role;

/**
 * The GSTIN check character (15th) of the first 14 characters, by the official mod-36 algorithm
 * (Luhn mod N over 0-9A-Z): from the left, characters at odd positions (1st, 3rd ...) weigh 1 and
 * the others 2; each product p adds p / 36 + p % 36; the check character is (36 - sum % 36) % 36.
 * Null when the input has fewer than 14 characters or a character outside 0-9A-Z.
 */
create function billing.gstin_check_char(p_gstin text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  c_alphabet constant text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  v_sum integer := 0;
  v_value integer;
  v_product integer;
begin
  if p_gstin is null or pg_catalog.length(p_gstin) < 14 then
    return null;
  end if;
  for i in 1..14 loop
    v_value := pg_catalog.strpos(c_alphabet, pg_catalog.substr(p_gstin, i, 1)) - 1;
    if v_value < 0 then
      return null;
    end if;
    v_product := v_value * (case when i % 2 = 1 then 1 else 2 end);
    v_sum := v_sum + v_product / 36 + v_product % 36;
  end loop;
  return pg_catalog.substr(c_alphabet, (36 - v_sum % 36) % 36 + 1, 1);
end;
$$;
revoke execute on function billing.gstin_check_char(text) from public;
grant execute on function billing.gstin_check_char(text) to authenticated, service_role;

/**
 * What is wrong with a GSTIN, in words, or null when it is valid. Checks, in order: 15
 * characters; a state code 01-38, 97 or 99; a PAN (5 letters, 4 digits, 1 letter); the entity
 * number (13th, 1-9 or A-Z); 'Z' as 14th character; the check character (15th).
 */
create function billing.gstin_problem(p_gstin text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_expected text;
begin
  if p_gstin is null then
    return 'GSTIN is missing';
  end if;
  if pg_catalog.length(p_gstin) <> 15 then
    return pg_catalog.format('GSTIN must be 15 characters, got %s', pg_catalog.length(p_gstin));
  end if;
  if p_gstin !~ '^[0-9A-Z]{15}$' then
    return 'GSTIN may contain only digits and capital letters';
  end if;
  if billing.gst_state_name(pg_catalog.left(p_gstin, 2)) is null then
    return pg_catalog.format('GSTIN state code "%s" is not a GST state code (01-38, 97 or 99)', pg_catalog.left(p_gstin, 2));
  end if;
  if pg_catalog.substr(p_gstin, 3, 10) !~ '^[A-Z]{5}[0-9]{4}[A-Z]$' then
    return pg_catalog.format('GSTIN characters 3-12 "%s" are not a PAN (5 letters, 4 digits, 1 letter)', pg_catalog.substr(p_gstin, 3, 10));
  end if;
  if pg_catalog.substr(p_gstin, 13, 1) !~ '^[1-9A-Z]$' then
    return 'GSTIN 13th character (entity number) must be 1-9 or A-Z';
  end if;
  if pg_catalog.substr(p_gstin, 14, 1) <> 'Z' then
    return 'GSTIN 14th character must be Z';
  end if;
  v_expected := billing.gstin_check_char(p_gstin);
  if pg_catalog.substr(p_gstin, 15, 1) <> v_expected then
    return pg_catalog.format('GSTIN check character is "%s", expected "%s"', pg_catalog.substr(p_gstin, 15, 1), v_expected);
  end if;
  return null;
end;
$$;
revoke execute on function billing.gstin_problem(text) from public;
grant execute on function billing.gstin_problem(text) to authenticated, service_role;

/** True when the GSTIN is valid (format, state code, PAN, entity number, 'Z', check character). */
create function public.is_valid_gstin(p_gstin text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  return p_gstin is not null and billing.gstin_problem(p_gstin) is null;
end;
$$;
revoke execute on function public.is_valid_gstin(text) from public;
grant execute on function public.is_valid_gstin(text) to authenticated, service_role;

/** round_half_up(p_numerator / p_denominator) for a non-negative numerator and a positive denominator. */
create function billing.div_round_half_up(p_numerator numeric, p_denominator numeric)
returns bigint
language plpgsql
immutable
set search_path = ''
as $$
begin
  return pg_catalog.div(2 * p_numerator + p_denominator, 2 * p_denominator)::bigint;
end;
$$;
revoke execute on function billing.div_round_half_up(numeric, numeric) from public;
grant execute on function billing.div_round_half_up(numeric, numeric) to service_role;

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


-- =================================================================================================
-- 2. The billing profiles
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- organizations: the buyer's billing profile
-- -------------------------------------------------------------------------------------------------

/**
 * The buyer block of an invoice: billing_name (legal name), gstin (optional, fully validated),
 * address, state_code (the place of supply; derived from the GSTIN when there is one) and
 * billing_country (ISO 3166-1 alpha-2, 'IN' by default; any other country makes invoices exports).
 */
alter table public.organizations
  add column billing_address_line1 text check (length(btrim(billing_address_line1)) between 1 and 200),
  add column billing_address_line2 text check (length(btrim(billing_address_line2)) between 1 and 200),
  add column billing_city text check (length(btrim(billing_city)) between 1 and 100),
  add column billing_postal_code text check (billing_postal_code ~ '^[A-Za-z0-9][A-Za-z0-9 -]{1,14}$'),
  add column billing_country text not null default 'IN' check (billing_country ~ '^[A-Z]{2}$'),
  add constraint organizations_gstin_valid check (gstin is null or public.is_valid_gstin(gstin)),
  add constraint organizations_state_code_known
    check (state_code ~ '^(0[1-9]|[12][0-9]|3[0-8]|97|99)$'),
  add constraint organizations_indian_pin_code
    check (billing_country <> 'IN' or billing_postal_code ~ '^[1-9][0-9]{5}$'),
  add constraint organizations_foreign_buyer_has_no_gst_state
    check (billing_country = 'IN' or (gstin is null and state_code is null));

/** Derives the state code (place of supply) from the GSTIN whenever there is one. */
create function billing.derive_state_code_from_gstin()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.gstin is not null then
    new.state_code := pg_catalog.left(new.gstin, 2);
  end if;
  return new;
end;
$$;
revoke execute on function billing.derive_state_code_from_gstin() from public;

create trigger organizations_derive_state_code
  before insert or update of gstin, state_code on public.organizations
  for each row execute function billing.derive_state_code_from_gstin();

-- -------------------------------------------------------------------------------------------------
-- billing_settings: the seller's profile and the tax settings
-- -------------------------------------------------------------------------------------------------

/**
 * Seller address (printed on invoices), the SAC code of the service (998314: IT design and
 * development services), the GST rate in basis points (1800 = 18 %; even, so CGST and SGST are
 * whole basis points), whether plan prices include tax, and the credit-note prefix. Prefixes are
 * 1-5 characters (letters, digits, '-' or '/' inside) so a number fits GST's 16 characters with
 * at least 4 digits of serial; invoice and credit-note prefixes differ (separate series).
 */
alter table public.billing_settings
  add column seller_address_line1 text check (length(btrim(seller_address_line1)) between 1 and 200),
  add column seller_address_line2 text check (length(btrim(seller_address_line2)) between 1 and 200),
  add column seller_city text check (length(btrim(seller_city)) between 1 and 100),
  add column seller_postal_code text check (seller_postal_code ~ '^[1-9][0-9]{5}$'),
  add column seller_email text check (seller_email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  add column sac_code text not null default '998314' check (sac_code ~ '^99[0-9]{4}$'),
  add column gst_rate_bp integer not null default 1800 check (gst_rate_bp between 0 and 2800 and gst_rate_bp % 2 = 0),
  add column prices_include_tax boolean not null default false,
  add column credit_note_prefix text not null default 'CN',
  add constraint billing_settings_invoice_prefix_fits
    check (invoice_prefix ~ '^[A-Z0-9]([A-Z0-9/-]{0,3}[A-Z0-9])?$'),
  add constraint billing_settings_credit_note_prefix_fits
    check (credit_note_prefix ~ '^[A-Z0-9]([A-Z0-9/-]{0,3}[A-Z0-9])?$'),
  add constraint billing_settings_prefixes_differ check (credit_note_prefix <> invoice_prefix),
  add constraint billing_settings_seller_gstin_valid check (seller_gstin is null or public.is_valid_gstin(seller_gstin)),
  add constraint billing_settings_seller_state_code_known
    check (seller_state_code ~ '^(0[1-9]|[12][0-9]|3[0-8]|97|99)$');


-- -------------------------------------------------------------------------------------------------
-- orders: the tax quote
-- -------------------------------------------------------------------------------------------------

/**
 * The GST quote of an order, set once on insert by billing.quote_order_tax: taxable_cents (the
 * taxable value), gst_rate_bp, supply_type (intra_state, inter_state or export; null when the
 * seller's state was not set, then no GST is charged), place_of_supply_state_code and
 * prices_include_tax (whether the price was the gross). amount_cents is the total payable.
 */
alter table public.orders
  add column taxable_cents bigint check (taxable_cents >= 0),
  add column gst_rate_bp integer check (gst_rate_bp between 0 and 2800),
  add column supply_type text check (supply_type in ('intra_state', 'inter_state', 'export')),
  add column place_of_supply_state_code text check (place_of_supply_state_code ~ '^[0-9]{2}$'),
  add column prices_include_tax boolean,
  add constraint orders_taxable_within_amount check (taxable_cents <= amount_cents);


-- =================================================================================================
-- 3. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- Trigger functions for issued documents (issued invoices, their lines and credit notes are
-- immutable through billing.reject_change of the tenancy migration)
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
  series text not null check (series in ('invoice', 'credit_note')),
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
 * A GST tax invoice, one per paid order. `seller` and `buyer` are snapshots of the profiles at
 * issue time (name, GSTIN, state, address). supply_type: intra_state (CGST + SGST), inter_state
 * (IGST) or export (zero-rated, IGST 0). place_of_supply_state_code is null for exports.
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
  supply_type text not null check (supply_type in ('intra_state', 'inter_state', 'export')),
  place_of_supply_state_code text check (place_of_supply_state_code ~ '^[0-9]{2}$'),
  buyer_gstin text,
  seller jsonb not null check (jsonb_typeof(seller) = 'object'),
  buyer jsonb not null check (jsonb_typeof(buyer) = 'object'),
  prices_include_tax boolean not null,
  taxable_cents bigint not null check (taxable_cents >= 0),
  cgst_cents bigint not null check (cgst_cents >= 0),
  sgst_cents bigint not null check (sgst_cents >= 0),
  igst_cents bigint not null check (igst_cents >= 0),
  total_cents bigint not null check (total_cents > 0),
  created_at timestamptz not null default now(),
  constraint invoices_number_unique unique (invoice_number),
  constraint invoices_serial_unique unique (financial_year, serial),
  constraint invoices_one_per_order unique (order_id),
  constraint invoices_total_adds_up check (total_cents = taxable_cents + cgst_cents + sgst_cents + igst_cents),
  constraint invoices_tax_matches_supply check (
    case supply_type
      when 'intra_state' then igst_cents = 0 and cgst_cents = sgst_cents and place_of_supply_state_code is not null
      when 'inter_state' then cgst_cents = 0 and sgst_cents = 0 and place_of_supply_state_code is not null
      else cgst_cents = 0 and sgst_cents = 0 and igst_cents = 0 and place_of_supply_state_code is null
    end
  )
);
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

-- -------------------------------------------------------------------------------------------------
-- invoice_lines (immutable)
-- -------------------------------------------------------------------------------------------------

/**
 * The lines of an invoice: SAC code, taxable value, GST rate and its split into CGST, SGST and
 * IGST rates (basis points) and amounts (paise), each amount rounded once, half up.
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
  constraint invoice_lines_number_unique unique (invoice_id, line_number),
  constraint invoice_lines_total_adds_up check (total_cents = taxable_cents + cgst_cents + sgst_cents + igst_cents)
);
/** Foreign keys and the policy column. (invoice_id leads the unique constraint.) */
create index invoice_lines_organization_id_idx on public.invoice_lines (organization_id);
create index invoice_lines_plan_id_idx on public.invoice_lines (plan_id);
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
  kind text not null check (kind in ('refund', 'void')),
  reason text not null check (length(btrim(reason)) between 1 and 500),
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  taxable_cents bigint not null check (taxable_cents >= 0),
  cgst_cents bigint not null check (cgst_cents >= 0),
  sgst_cents bigint not null check (sgst_cents >= 0),
  igst_cents bigint not null check (igst_cents >= 0),
  total_cents bigint not null check (total_cents > 0),
  created_at timestamptz not null default now(),
  constraint credit_notes_number_unique unique (credit_note_number),
  constraint credit_notes_serial_unique unique (financial_year, serial),
  constraint credit_notes_one_per_payment_event unique (payment_event_id),
  constraint credit_notes_total_adds_up check (total_cents = taxable_cents + cgst_cents + sgst_cents + igst_cents)
);
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
-- 4. Issuing functions
-- =================================================================================================

/**
 * The tax on one line (see the rounding rule in the banner): p_amount_cents is the taxable value
 * when p_includes_tax is false and the gross when it is true. supply_type export is zero-rated.
 */
create function billing.compute_line_tax(
  p_amount_cents bigint,
  p_gst_rate_bp integer,
  p_supply_type text,
  p_includes_tax boolean,
  out taxable_cents bigint,
  out cgst_rate_bp integer,
  out sgst_rate_bp integer,
  out igst_rate_bp integer,
  out cgst_cents bigint,
  out sgst_cents bigint,
  out igst_cents bigint,
  out total_cents bigint
)
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_denominator numeric := case when p_includes_tax then 10000 + p_gst_rate_bp else 10000 end;
begin
  if p_amount_cents is null or p_amount_cents < 0 then
    raise exception 'a line amount must be a non-negative number of paise, got %', p_amount_cents
      using errcode = 'invalid_parameter_value';
  end if;
  cgst_rate_bp := 0;
  sgst_rate_bp := 0;
  igst_rate_bp := 0;
  cgst_cents := 0;
  sgst_cents := 0;
  igst_cents := 0;
  if p_supply_type = 'intra_state' then
    cgst_rate_bp := p_gst_rate_bp / 2;
    sgst_rate_bp := p_gst_rate_bp / 2;
    cgst_cents := billing.div_round_half_up(p_amount_cents::numeric * cgst_rate_bp, v_denominator);
    sgst_cents := billing.div_round_half_up(p_amount_cents::numeric * sgst_rate_bp, v_denominator);
  elsif p_supply_type = 'inter_state' then
    igst_rate_bp := p_gst_rate_bp;
    igst_cents := billing.div_round_half_up(p_amount_cents::numeric * igst_rate_bp, v_denominator);
  elsif p_supply_type is distinct from 'export' then
    raise exception 'unknown supply type %', p_supply_type using errcode = 'invalid_parameter_value';
  end if;

  if p_includes_tax then
    taxable_cents := p_amount_cents - cgst_cents - sgst_cents - igst_cents;
    total_cents := p_amount_cents;
  else
    taxable_cents := p_amount_cents;
    total_cents := p_amount_cents + cgst_cents + sgst_cents + igst_cents;
  end if;
end;
$$;
revoke execute on function billing.compute_line_tax(bigint, integer, text, boolean) from public;
grant execute on function billing.compute_line_tax(bigint, integer, text, boolean) to service_role;

/**
 * The GST quote of an order (see the banner): p_price_cents is the taxable value, or the gross
 * when p_includes_tax. The supply type comes from the buyer's profile against the seller's state:
 * a buyer outside India is an export; otherwise the place of supply is the buyer's state code (the
 * seller's when the buyer has none). Null supply type (and no tax) while the seller's state is
 * not set. One computation (compute_line_tax) shared with the invoice.
 */
create function billing.order_tax_quote(
  p_organization_id uuid,
  p_price_cents bigint,
  p_includes_tax boolean,
  out taxable_cents bigint,
  out amount_cents bigint,
  out gst_rate_bp integer,
  out supply_type text,
  out place_of_supply_state_code text,
  out prices_include_tax boolean
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_settings public.billing_settings%rowtype;
  v_org public.organizations%rowtype;
  v_seller_state text;
  v_tax record;
begin
  select * into v_settings from public.billing_settings s where s.id;
  select * into v_org from public.organizations o where o.id = p_organization_id;
  v_seller_state := coalesce(v_settings.seller_state_code, pg_catalog.left(v_settings.seller_gstin, 2));
  prices_include_tax := coalesce(p_includes_tax, false);
  gst_rate_bp := coalesce(v_settings.gst_rate_bp, 0);
  if v_seller_state is null then
    -- No GST registration on record: nothing is charged on top, no tax invoice can be issued.
    taxable_cents := p_price_cents;
    amount_cents := p_price_cents;
    gst_rate_bp := 0;
    return;
  end if;
  if coalesce(v_org.billing_country, 'IN') <> 'IN' then
    supply_type := 'export';
  else
    place_of_supply_state_code := coalesce(v_org.state_code, v_seller_state);
    supply_type := case when place_of_supply_state_code = v_seller_state then 'intra_state' else 'inter_state' end;
  end if;
  select * into v_tax from billing.compute_line_tax(p_price_cents, gst_rate_bp, supply_type, prices_include_tax);
  taxable_cents := v_tax.taxable_cents;
  amount_cents := v_tax.total_cents;
end;
$$;
revoke execute on function billing.order_tax_quote(uuid, bigint, boolean) from public;
grant execute on function billing.order_tax_quote(uuid, bigint, boolean) to service_role;

/**
 * BEFORE INSERT on orders: the inserted amount_cents is the price (tax-exclusive, or the gross
 * when billing_settings.prices_include_tax, or for a Razorpay recurring order: one with a provider
 * subscription or metadata.recurring = true); stores the quote and sets amount_cents to the total
 * payable. Whatever code inserts the order (checkout, change_plan, renewals, operators) gets the
 * same tax.
 */
create function billing.quote_order_tax()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_quote record;
  v_includes boolean;
begin
  v_includes := coalesce((select s.prices_include_tax from public.billing_settings s where s.id), false)
    or new.provider_subscription_id is not null
    or coalesce(new.metadata ->> 'recurring', '') = 'true';
  select * into v_quote from billing.order_tax_quote(new.organization_id, new.amount_cents, v_includes);
  new.taxable_cents := v_quote.taxable_cents;
  new.amount_cents := v_quote.amount_cents;
  new.gst_rate_bp := v_quote.gst_rate_bp;
  new.supply_type := v_quote.supply_type;
  new.place_of_supply_state_code := v_quote.place_of_supply_state_code;
  new.prices_include_tax := v_quote.prices_include_tax;
  return new;
end;
$$;
revoke execute on function billing.quote_order_tax() from public;

create trigger orders_quote_tax
  before insert on public.orders
  for each row execute function billing.quote_order_tax();

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
  values (p_series, p_financial_year, 1)
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
  v_invoice_id uuid;
  v_seller_state text;
  v_supply_type text;
  v_place_of_supply text;
  v_tax record;
  v_now timestamptz := billing.now();
  v_financial_year integer := billing.financial_year(v_now);
  v_serial bigint;
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
  select * into strict v_plan from public.billing_plans p where p.id = v_order.plan_id;

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
                                v_order.gst_rate_bp, v_supply_type, v_order.prices_include_tax);
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
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents
  ) values (
    v_org.id, v_order.id, p_payment_event_id,
    billing.format_document_number(v_settings.invoice_prefix, v_financial_year, v_serial), v_financial_year, v_serial,
    v_now, (v_now at time zone 'Asia/Kolkata')::date, v_order.currency, v_supply_type, v_place_of_supply, v_org.gstin,
    pg_catalog.jsonb_build_object(
      'legal_name', v_settings.seller_legal_name,
      'gstin', v_settings.seller_gstin,
      'state_code', v_seller_state,
      'address_line1', v_settings.seller_address_line1,
      'address_line2', v_settings.seller_address_line2,
      'city', v_settings.seller_city,
      'postal_code', v_settings.seller_postal_code,
      'country', 'IN',
      'email', v_settings.seller_email
    ),
    pg_catalog.jsonb_build_object(
      'legal_name', coalesce(v_org.billing_name, v_org.name),
      'gstin', v_org.gstin,
      'state_code', v_org.state_code,
      'address_line1', v_org.billing_address_line1,
      'address_line2', v_org.billing_address_line2,
      'city', v_org.billing_city,
      'postal_code', v_org.billing_postal_code,
      'country', v_org.billing_country,
      'email', v_org.billing_email
    ),
    v_order.prices_include_tax,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents
  )
  returning id into v_invoice_id;

  perform pg_catalog.set_config('billing.issuing', 'invoice_lines', true);
  insert into public.invoice_lines (
    invoice_id, organization_id, line_number, plan_id, description, sac_code, quantity,
    gst_rate_bp, cgst_rate_bp, sgst_rate_bp, igst_rate_bp,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents
  ) values (
    v_invoice_id, v_org.id, 1, v_plan.id,
    v_plan.name || case v_order.kind
      when 'renewal' then ' - subscription renewal'
      when 'upgrade' then ' - plan upgrade (prorated)'
      else ' - subscription'
    end,
    v_settings.sac_code, 1,
    case when v_supply_type = 'export' then 0 else v_order.gst_rate_bp end,
    v_tax.cgst_rate_bp, v_tax.sgst_rate_bp, v_tax.igst_rate_bp,
    v_tax.taxable_cents, v_tax.cgst_cents, v_tax.sgst_cents, v_tax.igst_cents, v_tax.total_cents
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
  v_cgst bigint;
  v_sgst bigint;
  v_igst bigint;
  v_taxable bigint;
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
    coalesce(sum(c.taxable_cents), 0) as taxable_cents,
    coalesce(sum(c.cgst_cents), 0) as cgst_cents,
    coalesce(sum(c.sgst_cents), 0) as sgst_cents,
    coalesce(sum(c.igst_cents), 0) as igst_cents,
    coalesce(sum(c.total_cents), 0) as total_cents
  into v_credited
  from public.credit_notes c
  where c.invoice_id = p_invoice_id;

  v_remaining := v_invoice.total_cents - v_credited.total_cents;
  if p_amount_cents > v_remaining then
    raise exception 'credit note amount % exceeds the remaining creditable amount % of invoice %',
      p_amount_cents, v_remaining, v_invoice.invoice_number
      using errcode = 'invalid_parameter_value';
  end if;

  -- Cumulative allocation: what all credit notes up to this one credit of each component is the
  -- rounded proportion of their running total; this note gets the difference. When the running
  -- total reaches the invoice total every component reaches the invoice's exactly.
  v_cgst := billing.div_round_half_up((v_credited.total_cents + p_amount_cents)::numeric * v_invoice.cgst_cents,
                                      v_invoice.total_cents) - v_credited.cgst_cents;
  v_sgst := billing.div_round_half_up((v_credited.total_cents + p_amount_cents)::numeric * v_invoice.sgst_cents,
                                      v_invoice.total_cents) - v_credited.sgst_cents;
  v_igst := billing.div_round_half_up((v_credited.total_cents + p_amount_cents)::numeric * v_invoice.igst_cents,
                                      v_invoice.total_cents) - v_credited.igst_cents;
  v_taxable := p_amount_cents - v_cgst - v_sgst - v_igst;
  if v_taxable < 0 then
    -- Only a 1-paisa note on which CGST and SGST both round up: SGST's paisa waits for the next
    -- note (the cumulative rule hands it over there).
    v_sgst := v_sgst + v_taxable;
    v_taxable := 0;
  end if;

  select * into v_settings from public.billing_settings s where s.id;
  v_serial := billing.next_serial('credit_note', v_financial_year);

  perform pg_catalog.set_config('billing.issuing', 'credit_notes', true);
  insert into public.credit_notes (
    organization_id, invoice_id, payment_event_id, credit_note_number, financial_year, serial,
    issued_at, credit_note_date, kind, reason, currency,
    taxable_cents, cgst_cents, sgst_cents, igst_cents, total_cents
  ) values (
    v_invoice.organization_id, v_invoice.id, p_payment_event_id,
    billing.format_document_number(v_settings.credit_note_prefix, v_financial_year, v_serial), v_financial_year, v_serial,
    v_now, (v_now at time zone 'Asia/Kolkata')::date, p_kind, btrim(p_reason), v_invoice.currency,
    v_taxable, v_cgst, v_sgst, v_igst, p_amount_cents
  )
  returning id into v_credit_note_id;
  perform pg_catalog.set_config('billing.issuing', '', true);

  return v_credit_note_id;
end;
$$;
revoke execute on function billing.issue_credit_note(uuid, bigint, text, uuid, text) from public;
grant execute on function billing.issue_credit_note(uuid, bigint, text, uuid, text) to service_role;

/**
 * The payments migration's hook, now issuing: the invoice of a paid order and, with
 * p_refund_amount_cents, a credit note for a refund of it. Never fails the payment: an error
 * (say, the seller's details are not set yet) comes back in `error` and apply_payment_event
 * records it in webhook_events.last_error; issue_invoice is idempotent per order, so an operator
 * can issue the invoice later.
 */
create or replace function billing.issue_documents(
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


-- =================================================================================================
-- 5. Policies
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
-- 6. Public functions
-- =================================================================================================

/**
 * Replaces an organization's billing profile (the buyer block of its invoices); returns the
 * organization. Owners and admins of the organization, and service_role. Every problem is named:
 * a GSTIN is checked for length, state code, PAN, entity number, 'Z' and check character; the
 * state code is derived from the GSTIN (a different p_state_code is refused); a buyer outside
 * India has neither GSTIN nor state; an Indian postal code is a 6-digit PIN.
 * Security definer: signed-in users have no update grant on organizations.
 */
create function public.update_billing_profile(
  p_organization_id uuid,
  p_billing_name text,
  p_billing_email text default null,
  p_gstin text default null,
  p_address_line1 text default null,
  p_address_line2 text default null,
  p_city text default null,
  p_state_code text default null,
  p_postal_code text default null,
  p_country text default 'IN'
)
returns public.organizations
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_gstin text := nullif(pg_catalog.upper(pg_catalog.regexp_replace(coalesce(p_gstin, ''), '\s', '', 'g')), '');
  v_country text := pg_catalog.upper(btrim(coalesce(p_country, 'IN')));
  v_state_code text := nullif(btrim(coalesce(p_state_code, '')), '');
  v_postal_code text := nullif(btrim(coalesce(p_postal_code, '')), '');
  v_problem text;
  v_result public.organizations%rowtype;
begin
  if coalesce(auth.role(), '') <> 'service_role' then
    perform billing.require_user();
    if not billing.has_role(p_organization_id, array['owner', 'admin']) then
      raise exception 'only owners and admins of the organization can update its billing profile'
        using errcode = 'insufficient_privilege';
    end if;
  end if;

  if p_billing_name is null or length(btrim(p_billing_name)) not between 1 and 200 then
    raise exception 'billing name (legal name) must be 1 to 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  if nullif(btrim(p_billing_email), '') !~ '^[^@[:space:]]+@[^@[:space:]]+$' then
    raise exception 'billing email "%" is not an email address', p_billing_email using errcode = 'invalid_parameter_value';
  end if;
  if v_country !~ '^[A-Z]{2}$' then
    raise exception 'country must be a two-letter ISO 3166 code such as IN, got "%"', p_country
      using errcode = 'invalid_parameter_value';
  end if;

  if v_country <> 'IN' then
    if v_gstin is not null or v_state_code is not null then
      raise exception 'a buyer outside India (country %) has no GSTIN or GST state code', v_country
        using errcode = 'invalid_parameter_value';
    end if;
  else
    if v_gstin is not null then
      v_problem := billing.gstin_problem(v_gstin);
      if v_problem is not null then
        raise exception '%', v_problem using errcode = 'invalid_parameter_value';
      end if;
      if v_state_code is not null and v_state_code <> pg_catalog.left(v_gstin, 2) then
        raise exception 'state code % does not match the GSTIN''s state code %', v_state_code, pg_catalog.left(v_gstin, 2)
          using errcode = 'invalid_parameter_value';
      end if;
      v_state_code := pg_catalog.left(v_gstin, 2);
    elsif v_state_code is not null and billing.gst_state_name(v_state_code) is null then
      raise exception 'state code "%" is not a GST state code (01-38, 97 or 99)', v_state_code
        using errcode = 'invalid_parameter_value';
    end if;
    if v_postal_code !~ '^[1-9][0-9]{5}$' then
      raise exception 'postal code "%" is not an Indian PIN code (6 digits)', v_postal_code
        using errcode = 'invalid_parameter_value';
    end if;
  end if;
  if v_postal_code !~ '^[A-Za-z0-9][A-Za-z0-9 -]{1,14}$' then
    raise exception 'postal code "%" must be 2 to 15 letters, digits, spaces or hyphens', v_postal_code
      using errcode = 'invalid_parameter_value';
  end if;
  if length(btrim(p_address_line1)) > 200 or length(btrim(p_address_line2)) > 200 then
    raise exception 'address lines must be at most 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  if length(btrim(p_city)) > 100 then
    raise exception 'city must be at most 100 characters' using errcode = 'invalid_parameter_value';
  end if;

  update public.organizations o
  set billing_name = btrim(p_billing_name),
      billing_email = nullif(btrim(p_billing_email), ''),
      gstin = v_gstin,
      state_code = v_state_code,
      billing_address_line1 = nullif(btrim(p_address_line1), ''),
      billing_address_line2 = nullif(btrim(p_address_line2), ''),
      billing_city = nullif(btrim(p_city), ''),
      billing_postal_code = v_postal_code,
      billing_country = v_country
  where o.id = p_organization_id
  returning * into v_result;
  if not found then
    raise exception 'organization % does not exist', p_organization_id using errcode = 'no_data_found';
  end if;
  return v_result;
end;
$$;
revoke execute on function public.update_billing_profile(uuid, text, text, text, text, text, text, text, text, text) from public, anon;
grant execute on function public.update_billing_profile(uuid, text, text, text, text, text, text, text, text, text)
  to authenticated, service_role;

/**
 * Voids an invoice: a credit note (kind 'void') for everything not yet credited; returns its id.
 * Invoices are never deleted. Raises when the invoice is already fully credited. service_role only.
 */
create function public.void_invoice(p_invoice_id uuid, p_reason text)
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
revoke execute on function public.void_invoice(uuid, text) from public, anon, authenticated;
grant execute on function public.void_invoice(uuid, text) to service_role;

/**
 * Everything a PDF renderer needs for one invoice, as JSON: document type and number, dates,
 * seller and buyer blocks (GSTINs, state codes and names, addresses), place of supply, supply
 * type, lines with SAC and tax split, totals, the amount in words (INR), and the credit notes
 * issued against it. Runs as the caller: members of the invoice's organization and service_role
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
begin
  select * into v_invoice from public.invoices i where i.id = p_invoice_id;
  if not found then
    raise exception 'invoice % not found', p_invoice_id using errcode = 'no_data_found';
  end if;

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
         ) order by l.line_number), '[]'::jsonb)
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
    'title', case when v_invoice.supply_type = 'export'
                  then 'Tax Invoice (supply meant for export under LUT without payment of IGST)'
                  else 'Tax Invoice' end,
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
    'outstanding_cents', v_invoice.total_cents - v_credited
  );
end;
$$;
revoke execute on function public.invoice_document(uuid) from public, anon;
grant execute on function public.invoice_document(uuid) to authenticated, service_role;
