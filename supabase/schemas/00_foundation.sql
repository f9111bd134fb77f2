-- =================================================================================================
-- supabill: foundation: the billing schema, closed sets, the test clock, settings, GST reference
--
-- What every later module builds on: schema `billing` (private: helpers, machinery and service-only
-- tables; PostgREST does not expose it), the types for every closed set of values, the test clock
-- billing.now() (a transaction's pin, or the simulated time of billing.test_clock, where the
-- database enables it), the trigger functions tables share, GSTIN validation, the backoff every
-- outbox retries with (billing.retry_backoff), and the billing settings (one row the operators
-- edit in the SQL editor), and monthly partitions for the tables that grow with traffic
-- (billing.partitioned_tables, billing.maintain_partitions).
--
-- Monthly partitions, the contract (a table opts in without reading the code):
--   1. Declare the table `partition by range (<column>)`, <column> a timestamptz that is never null
--      and never updated (when the row happened). Every primary key and unique
--      constraint must include <column> (Postgres enforces uniqueness per partition only); a
--      foreign key to the table must name <column> too (or be dropped, said why where it was).
--   2. Declare its default partition beside it: `create table billing_partitions.<table>_default
--      partition of <schema>.<table> default;` then `select billing.secure_partition(
--      'billing_partitions', '<table>_default', '<table>');` (no grants, a comment, like the
--      partitions maintenance makes). It catches any row no monthly partition takes, so an insert
--      never fails for want of a partition. Partitions live in schema billing_partitions: no API
--      role uses it, and the generated types and schema diffs leave it out.
--   3. Register it, one row of billing.partitioned_tables in the module's schema file, followed by
--      `select billing.maintain_partitions();` (data, which a diff does not see: the migration
--      does the same two by hand): the table, its column, the billing_settings column holding its
--      retention in days (null: kept forever), and how many months ahead to create.
--   billing.maintain_partitions(p_at) then keeps, for each registered table, one partition
--   billing_partitions.<table>_pYYYYMM per UTC month [YYYY-MM-01, next month), from p_at's month
--   to months_ahead months after it, and one for every month its default partition holds rows of
--   (it creates the partition as a plain table, moves those rows into it, then attaches it); and
--   it drops (detach, then drop; never a DELETE) every partition whose month ended more than the
--   retention before p_at. The daily job billing-partitions (04_operations) runs it, and so does
--   every move of billing.test_clock; both are logged in billing.job_runs.
--   A migration that turns an existing table into a partitioned one renames the old table (and
--   the indexes and sequence whose names the new one takes), makes the new one with its default
--   partition before its indexes (plain CREATE INDEX, not the ON ONLY a diff drafts), copies the
--   rows in (they land in the default partition), drops the old table, and runs
--   billing.maintain_partitions(), which moves each month into its own partition
--   (supabase/migrations/*_partitioned_webhooks_and_job_runs.sql is an example).
--
-- Conventions of every module (same section order in each file): 1. types; 2. tables, each with its
-- grants, row level security and triggers (trigger functions a table attaches come just before it);
-- 3. private functions (schema billing); 4. policies; 5. public functions (the API: what a browser
-- may call through supabase-js, or the fixed contract); 6. jobs and schedules.
--
-- Schema rule: `public` holds the tables a member reads (row level security on every one) and the
-- functions a browser or the fixed contract calls, each with a `comment on`. No `security definer`
-- function in `public` is executable by anon or authenticated: a browser RPC in public is a thin
-- `security invoker` wrapper over its `security definer` implementation in `billing`, which checks
-- who is calling (billing.require_user, billing.require_role) before it writes.
-- Private tables in billing grant nothing to anon or authenticated (supabase/tests/database/
-- 91-exposure checks it) and have no row level security, which is for what the API exposes.
--
-- Every function is plpgsql, one-liners too: each sets search_path = '' (so a caller cannot put
-- its own objects in front of ours), and a sql-language function with a SET clause is never
-- inlined and plans its body again on every call (80 to 100 us a call here), while plpgsql keeps
-- its plans. EXECUTE is revoked from public on every function and granted explicitly.
-- =================================================================================================


-- =================================================================================================
-- 1. Schema and types
-- =================================================================================================

/** Private billing objects: helpers, trigger functions. Not exposed through the API. */
create schema billing;

revoke all on schema billing from public;

/**
 * The partitions of the monthly-partitioned tables (billing.maintain_partitions): no API role may
 * use it (queries go through the parents), and the generated types and the schema diffs (public
 * and billing) leave it out, since monthly partitions come and go with the clock and the rows.
 */
create schema billing_partitions;

revoke all on schema billing_partitions from public;

comment on schema billing_partitions is 'The partitions of supabill''s monthly-partitioned tables (billing.maintain_partitions). Query the parent tables.';

-- Policies call billing.* helpers as the querying role, so signed-in users need usage.
grant usage on schema billing to authenticated, service_role;

/** A member's role in an organization. */
create type public.member_role as enum ('owner', 'admin', 'member');

/** How often a plan bills. */
create type public.billing_interval as enum ('month', 'year');

/** Subscription lifecycle: pending_payment -> trialing | active -> past_due -> expired; canceled. */
create type public.subscription_status as enum (
  'pending_payment', 'trialing', 'active', 'past_due', 'canceled', 'expired'
);

/** The window of a metered limit (`<metric>_per_<window>` in plan features). */
create type public.usage_window as enum ('minute', 'hour', 'day', 'month');

/**
 * The payment providers. Adding one is a value here plus one adapter file in
 * supabase/functions/_shared/providers/. 'manual' is an operator's record of a payment taken
 * outside any provider.
 */
create type public.payment_provider as enum ('payu', 'razorpay', 'manual', 'stripe');

/**
 * What an order buys: a first plan ('new'), a renewal charge of a provider subscription, an
 * upgrade, a credit pack (a one-time purchase of credits, public.credit_packs).
 */
create type public.order_kind as enum ('new', 'renewal', 'upgrade', 'credit_pack');

/**
 * Where an order stands: created (waiting for its provider order), pending (payable), paid,
 * failed, expired (past expires_at unpaid), canceled.
 */
create type public.order_status as enum ('created', 'pending', 'paid', 'failed', 'expired', 'canceled');

/**
 * One observed state of a provider payment (authorized, captured, failed, refunded) or a
 * mismatch against our order (recorded for an operator, never applied).
 */
create type public.payment_status as enum ('authorized', 'captured', 'failed', 'refunded', 'mismatch', 'dispute_opened', 'dispute_won', 'dispute_lost');

/**
 * What a notification is about: each kind has one email template
 * (supabase/functions/notifications-send/templates.ts, a Record over this type, so a kind without
 * a template fails deno check). A new kind is a value at the end, in a migration of its own.
 */
create type public.notification_kind as enum (
  'renewal_reminder', 'pre_debit_notice', 'dunning_reminder', 'payment_failed', 'subscription_canceled',
  'subscription_expired', 'trial_ended', 'plan_downgraded', 'subscription_refunded', 'subscription_disputed',
  'payment_disputed', 'payment_captured', 'trial_ending', 'cancellation_scheduled', 'quota_threshold',
  'provider_action_failed', 'credits_low', 'billing_email_confirmation', 'ai_batch_completed'
);

/**
 * Who made a change: a member ('user'), a job ('system'), a provider's event ('provider'), an
 * operator, or plain SQL with no change context ('sql', subscription history only).
 */
create type public.actor_kind as enum ('user', 'system', 'provider', 'operator', 'sql');

/** The tier of a plan. */
create type public.plan_tier as enum ('free', 'basic', 'pro', 'enterprise');

/** A usage counter row: counted (a reservation or use), settled (made final), released (given back). */
create type public.usage_state as enum ('counted', 'settled', 'released');

/** GST supply type of an order or invoice: intra-state (CGST + SGST), inter-state (IGST), export. */
create type public.supply_type as enum ('intra_state', 'inter_state', 'export');

/** What a credit note undoes: a refund, or a void of the whole invoice. */
create type public.credit_note_kind as enum ('refund', 'void');

/** Where a credit grant came from (credits module): a pack bought, a plan's period, a promotion, an operator. */
create type public.credit_source as enum ('purchase', 'subscription', 'promotion', 'operator');

/** One movement of credits in public.credit_ledger. */
create type public.credit_movement as enum ('granted', 'consumed', 'released', 'expired', 'revoked');

/** A gapless numbering series: tax invoices, credit notes. */
create type public.document_series as enum ('invoice', 'credit_note');

/** How long a discount code's discount lasts: the first paid period, a number of them, or every one. */
create type public.discount_duration as enum ('once', 'repeating', 'forever');

/**
 * A discount redemption: reserved (its order is open), redeemed (its order was paid: it counts),
 * released (its order expired, failed, or was superseded or canceled: it no longer counts).
 */
create type public.discount_redemption_status as enum ('reserved', 'redeemed', 'released');

/**
 * The clock of every time-dependent rule: now(), unless the database enables the test clock; then
 * the transaction's pin, else the simulated time of billing.test_clock, else now() (see
 * billing.simulated_now). Unset (a hosted project), it costs one current_setting.
 */
create function billing.now()
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  if pg_catalog.current_setting('billing.test_clock', true) is distinct from 'on' then
    return pg_catalog.now();
  end if;
  return coalesce(billing.simulated_now(), pg_catalog.now());
end;
$$;
revoke execute on function billing.now() from public;
grant execute on function billing.now() to authenticated, service_role;

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- Trigger and check functions tables share (defined first so tables can attach them)
-- -------------------------------------------------------------------------------------------------

/** Keeps `updated_at` current on every update. */
create function billing.touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end;
$$;
revoke execute on function billing.touch_updated_at() from public;

/** Rejects an unknown time zone name with a clear error (used for `timezone` columns). */
create function billing.check_timezone()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_zone text := pg_catalog.to_jsonb(new) ->> tg_argv[0];
begin
  perform pg_catalog.timezone(v_zone, pg_catalog.now());
  return new;
exception
  when invalid_parameter_value then
    raise exception '%.%: unknown time zone "%"', tg_table_name, tg_argv[0], v_zone
      using errcode = 'invalid_parameter_value',
            hint = 'Use an IANA name such as Asia/Kolkata.';
end;
$$;
revoke execute on function billing.check_timezone() from public;

/**
 * Makes a table append-only: UPDATE, DELETE and TRUNCATE raise for every role. The error says
 * what the rows are (TG_ARGV[0], default 'is an append-only audit log') and, when given, how to
 * correct one instead (TG_ARGV[1], the hint). The audit logs here and the issued GST documents
 * of the invoices module use it.
 */
create function billing.reject_change()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_message text := pg_catalog.format('%s.%s %s: %s is not allowed', tg_table_schema, tg_table_name,
                                      coalesce(tg_argv[0], 'is an append-only audit log'), tg_op);
begin
  if tg_argv[1] is null then
    raise exception using message = v_message, errcode = 'insufficient_privilege';
  end if;
  raise exception using message = v_message, errcode = 'insufficient_privilege', hint = tg_argv[1];
end;
$$;
revoke execute on function billing.reject_change() from public;

-- -------------------------------------------------------------------------------------------------
-- GST reference: state codes and GSTIN validation (the check constraints of the billing profiles use them)
-- -------------------------------------------------------------------------------------------------

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
comment on function public.is_valid_gstin(text) is 'True when a GSTIN is valid: format, state code, PAN, entity number, Z and the check character.';

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

-- -------------------------------------------------------------------------------------------------
-- billing_settings
-- -------------------------------------------------------------------------------------------------

/**
 * The billing settings: one row (id = true), edited by operators in the SQL editor.
 * grace_days: how long a paid plan stays in effect after current_period_end.
 * seller_*: the seller printed on GST invoices (legal name, GSTIN, state, address).
 * order_pending_reconcile_after: when a checkout order still pending is asked about at the provider.
 * sac_code: the SAC code of the service (998314: IT design and development services); gst_rate_bp:
 * the GST rate in basis points (1800 = 18 %; even, so CGST and SGST are whole basis points);
 * prices_include_tax: whether plan prices are gross. Prefixes are 1-5 characters (letters, digits,
 * '-' or '/' inside) so a number fits GST's 16 characters with at least 4 digits of serial;
 * invoice and credit-note prefixes differ (separate series).
 * usage_late_horizon: how late a usage event may arrive through usage-track (billing.track_usage)
 * and still count in the window it belongs to; older events are refused (late_event_closed).
 */
create table public.billing_settings (
  id boolean primary key default true constraint billing_settings_singleton check (id),
  grace_days integer not null default 3 check (grace_days between 0 and 365),
  seller_legal_name text check (seller_legal_name is null or length(btrim(seller_legal_name)) > 0),
  seller_gstin text check (seller_gstin ~ '^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$'),
  seller_state_code text check (seller_state_code ~ '^[0-9]{2}$'),
  invoice_prefix text not null default 'INV' check (invoice_prefix ~ '^[A-Z0-9][A-Z0-9/-]{0,9}$'),
  app_success_url text check (app_success_url ~ '^https?://'),
  app_failure_url text check (app_failure_url ~ '^https?://'),
  order_pending_reconcile_after interval not null default interval '15 minutes'
    check (order_pending_reconcile_after > interval '0'),
  seller_address_line1 text check (length(btrim(seller_address_line1)) between 1 and 200),
  seller_address_line2 text check (length(btrim(seller_address_line2)) between 1 and 200),
  seller_city text check (length(btrim(seller_city)) between 1 and 100),
  seller_postal_code text check (seller_postal_code ~ '^[1-9][0-9]{5}$'),
  seller_email text check (seller_email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  sac_code text not null default '998314' check (sac_code ~ '^99[0-9]{4}$'),
  gst_rate_bp integer not null default 1800 check (gst_rate_bp between 0 and 2800 and gst_rate_bp % 2 = 0),
  prices_include_tax boolean not null default false,
  credit_note_prefix text not null default 'CN',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  upgrade_quote_ttl interval not null default interval '30 minutes'
    check (upgrade_quote_ttl between interval '1 minute' and interval '7 days'),
  checkout_order_ttl interval not null default interval '24 hours'
    check (checkout_order_ttl between interval '5 minutes' and interval '30 days'),
  max_open_orders integer not null default 3 check (max_open_orders between 1 and 100),
  full_refund_ends_period boolean not null default true,
  dispute_suspends_subscription boolean not null default true,
  max_owned_organizations integer default 3
    constraint billing_settings_max_owned_organizations_positive check (max_owned_organizations >= 1),
  webhook_payload_retention_days integer not null default 90
    constraint billing_settings_webhook_payload_retention_days_range
    check (webhook_payload_retention_days between 1 and 3650),
  notification_retention_days integer not null default 90
    constraint billing_settings_notification_retention_days_range
    check (notification_retention_days between 1 and 3650),
  quota_alert_thresholds integer[] not null default '{75,90,100}'
    constraint billing_settings_quota_alert_thresholds_range
    check (pg_catalog.cardinality(quota_alert_thresholds) <= 10
    and pg_catalog.array_position(quota_alert_thresholds, null) is null
    and 1 <= all (quota_alert_thresholds) and 100 >= all (quota_alert_thresholds)),
  quota_alert_windows public.usage_window[] not null default '{day,month}'
    constraint billing_settings_quota_alert_windows_no_null
    check (pg_catalog.array_position(quota_alert_windows, null) is null),
  credit_source_order public.credit_source[] not null default '{purchase,subscription,promotion,operator}'
    constraint billing_settings_credit_source_order_complete
    check (pg_catalog.cardinality(credit_source_order) = 4
    and credit_source_order @> '{purchase,subscription,promotion,operator}'::public.credit_source[]),
  credits_low_threshold bigint
    constraint billing_settings_credits_low_threshold_not_negative check (credits_low_threshold >= 0),
  provider_currencies jsonb not null default '{"payu": ["INR"], "razorpay": ["INR"], "stripe": ["INR", "USD", "EUR", "GBP"]}'
    constraint billing_settings_provider_currencies_shape check (
      jsonb_typeof(provider_currencies) = 'object'
      and not jsonb_path_exists(provider_currencies, 'strict $.* ? (@.type() != "array")')
      and not jsonb_path_exists(provider_currencies, 'strict $.*[*] ? (!(@ like_regex "^[A-Z]{3}$"))', '{}', true)),
  usage_late_horizon interval not null default interval '48 hours'
    constraint billing_settings_usage_late_horizon_range
    check (usage_late_horizon between interval '1 minute' and interval '31 days'),
  ai_batch_hour_ist integer not null default 2
    constraint billing_settings_ai_batch_hour_ist_range check (ai_batch_hour_ist between 0 and 23),
  ai_batch_price_factor numeric(4, 3) not null default 0.5
    constraint billing_settings_ai_batch_price_factor_range check (ai_batch_price_factor > 0 and ai_batch_price_factor <= 1),
  job_run_retention_days integer not null default 30
    constraint billing_settings_job_run_retention_days_range check (job_run_retention_days between 1 and 3650),
  webhook_event_retention_days integer
    constraint billing_settings_webhook_event_retention_days_range check (webhook_event_retention_days between 1 and 36500),
  ai_request_retention_days integer
    constraint billing_settings_ai_request_retention_days_range check (ai_request_retention_days between 1 and 36500),
  usage_metrics_retention_days integer
    constraint billing_settings_usage_metrics_retention_days_range check (usage_metrics_retention_days between 31 and 36500),
  constraint billing_settings_gstin_matches_state
    check (seller_gstin is null or seller_state_code is null or left(seller_gstin, 2) = seller_state_code),
  constraint billing_settings_invoice_prefix_fits
    check (invoice_prefix ~ '^[A-Z0-9]([A-Z0-9/-]{0,3}[A-Z0-9])?$'),
  constraint billing_settings_credit_note_prefix_fits
    check (credit_note_prefix ~ '^[A-Z0-9]([A-Z0-9/-]{0,3}[A-Z0-9])?$'),
  constraint billing_settings_prefixes_differ check (credit_note_prefix <> invoice_prefix),
  constraint billing_settings_seller_gstin_valid check (seller_gstin is null or public.is_valid_gstin(seller_gstin)),
  constraint billing_settings_seller_state_code_known
    check (seller_state_code ~ '^(0[1-9]|[12][0-9]|3[0-8]|97|99)$')
);

grant select on public.billing_settings to authenticated;

grant select, insert, update, delete on public.billing_settings to service_role;

alter table public.billing_settings enable row level security;

comment on table public.billing_settings is 'The billing settings: one row, edited by operators (grace days, seller profile, GST rate, prefixes).';

comment on column public.billing_settings.provider_currencies is
  'The currencies each payment provider collects here, by provider name (default {"payu": ["INR"], "razorpay": ["INR"], "stripe": ["INR", "USD", "EUR", "GBP"]}). A provider not named collects INR only. Checkout refuses an order in another currency before any provider call (HINT currency_not_accepted); add a currency when the provider account is enabled for it.';

comment on type public.payment_status is 'One observed state of a provider payment, or a mismatch against the order.';

comment on type public.order_status is 'Where an order stands: created, pending (payable), paid, failed, expired, canceled.';

comment on type public.order_kind is 'What an order buys: new (a first plan), renewal (a provider subscription charge), upgrade (a prorated plan change), credit_pack (credits bought once).';

comment on type public.payment_provider is 'The payment providers an order or payment goes through.';

comment on type public.notification_kind is 'What a notification is about; each kind has one email template.';

comment on type public.actor_kind is 'Who made a change: user, system (a job), provider, operator, or sql (no change context).';

comment on type public.plan_tier is 'The tier of a plan: free, basic, pro, enterprise.';

comment on type public.usage_state is 'A usage counter row: counted, settled or released.';

comment on type public.supply_type is 'GST supply type: intra_state (CGST + SGST), inter_state (IGST), export (zero-rated).';

comment on type public.credit_note_kind is 'What a credit note undoes: a refund, or a void of the whole invoice.';

comment on type public.document_series is 'A gapless numbering series: invoice, credit_note.';

create trigger billing_settings_touch_updated_at
  before update on public.billing_settings
  for each row execute function billing.touch_updated_at();

comment on column public.billing_settings.upgrade_quote_ttl is 'How long an upgrade order''s prorated quote may be paid.';

comment on column public.billing_settings.checkout_order_ttl is 'How long a checkout order may be paid.';

comment on column public.billing_settings.max_open_orders is 'At most this many open (unpaid, unexpired) orders per organization.';

comment on column public.billing_settings.full_refund_ends_period is 'Whether a full refund of the payment that paid the current period ends it.';

comment on column public.billing_settings.dispute_suspends_subscription is 'Whether a dispute moves the subscription (past_due while open, ended when lost).';

comment on column public.billing_settings.max_owned_organizations is
  'How many organizations one user may own (owner memberships); null for no limit. Default 3.';

comment on column public.billing_settings.webhook_payload_retention_days is
  'Days a provider webhook payload is kept before billing-purge strips it (the event id stays for deduplication). Default 90.';

comment on column public.billing_settings.notification_retention_days is
  'Days a sent or failed notification is kept before billing-purge deletes it. Default 90.';

comment on column public.billing_settings.quota_alert_thresholds is
  'Percentages of a quota window''s limit (1 to 100) at which a quota_threshold notification is queued, once per window. Default {75,90,100}; empty: no alerts.';

comment on column public.billing_settings.usage_metrics_retention_days is
  'Days a month of raw usage rows (public.usage_metrics) is kept after it ends; its monthly partition is then dropped, and a retry of a request id whose row went is counted anew. Null (the default): kept forever.';

comment on column public.billing_settings.quota_alert_windows is
  'The windows that raise quota alerts. Default {day,month}: minute and hour windows reset before anyone could act on an email.';

comment on column public.billing_settings.credit_source_order is
  'The order consume_credits draws grants in, by source. Default {purchase,subscription,promotion,operator}: bought credits (which never lapse) first.';

comment on column public.billing_settings.credits_low_threshold is
  'Balance under which a credits_low notification is queued, once per crossing; a plan''s credits_low_threshold feature overrides it. Null: no warning.';

comment on column public.billing_settings.ai_batch_hour_ist is
  'The hour (0 to 23, India time) at which submitted AI batches are sent to Groq: a batch is due at the first such hour after its submission.';

comment on column public.billing_settings.ai_batch_price_factor is
  'What a request of a nightly AI batch pays of its model''s interactive price (0.5: half), for models whose price row has no batch prices of its own.';

comment on column public.billing_settings.job_run_retention_days is
  'Days billing.job_runs keeps a job run: a month of runs is dropped once it ended this long ago (monthly partitions). Default 30.';

comment on column public.billing_settings.webhook_event_retention_days is
  'Days a provider webhook delivery (billing.webhook_events) is kept: a month of deliveries is dropped once it ended this long ago. Null (default): kept forever. Its event id stays in billing.webhook_event_keys either way, so a re-delivery is still a duplicate.';

comment on column public.billing_settings.ai_request_retention_days is
  'Days the AI gateway''s log (public.ai_requests) is kept: a month of requests is dropped once it ended this long ago. Null (default): kept forever.';

-- The settings row, every column at its default (data, not schema: the operators edit it in the
-- SQL editor).
insert into public.billing_settings (id) values (true);

/**
 * Moving the test clock runs partition maintenance (billing.job_maintain_partitions, the daily
 * job of 04_operations, logged like it) at the new time: a test that moves the clock months or
 * years ahead finds the monthly partitions of that time in place. The job catches its own
 * failure (logged in billing.job_runs), so the clock always moves.
 */
create function billing.test_clock_moved()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform billing.job_maintain_partitions();
  return null;
end;
$$;
revoke execute on function billing.test_clock_moved() from public;

/**
 * The simulated time of a test cluster: at most one row (id is always true). Written by the
 * simulator (`npm run simulate`) as postgres, one simulated day at a time; read by
 * billing.simulated_now() only where the database enables the test clock. Private: no API role
 * reads or writes it.
 */
create table billing.test_clock (
  id boolean primary key default true check (id),
  simulated_at timestamptz not null,
  updated_at timestamptz not null default pg_catalog.now()
);

revoke all on table billing.test_clock from public, anon, authenticated, service_role;

comment on table billing.test_clock is
  'The simulated time of a test cluster (one row at most); billing.now() follows it only where the database sets billing.test_clock = on. Never used on a hosted project.';

create trigger test_clock_moved
  after insert or update on billing.test_clock
  for each row execute function billing.test_clock_moved();

-- -------------------------------------------------------------------------------------------------
-- billing.partitioned_tables (the monthly partitions' registry)
-- -------------------------------------------------------------------------------------------------

/**
 * The tables kept in monthly partitions, one row each (the contract is in this file's header):
 * table_name, schema-qualified ('public.ai_requests'), partitioned by range on partition_column
 * (a timestamptz); retention_setting, the integer column of public.billing_settings holding how
 * many days rows are kept (a partition is dropped once its month ended that long before
 * billing.now()), null or a null setting: kept forever; months_ahead, how many months after the
 * current one have their partition ready. Data, not schema: a module inserts its row beside its
 * table, and the same insert goes in the migration. For postgres only.
 */
create table billing.partitioned_tables (
  table_name text primary key
    constraint partitioned_tables_table_name_qualified check (table_name ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$'),
  partition_column name not null,
  retention_setting name,
  months_ahead integer not null default 3
    constraint partitioned_tables_months_ahead_range check (months_ahead between 0 and 24)
);

revoke all on billing.partitioned_tables from public, anon, authenticated, service_role;

comment on table billing.partitioned_tables is
  'The tables kept in monthly partitions by billing.maintain_partitions: partition column, retention setting (days, a billing_settings column; null: forever), months created ahead.';

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * The grace period after a period end (billing_settings.grace_days; 3 days when the settings
 * row is missing). The one place every rule reads it from.
 */
create function billing.grace_interval()
returns interval
language plpgsql
stable
set search_path = ''
as $$
begin
  return pg_catalog.make_interval(days => coalesce((select s.grace_days from public.billing_settings s), 3));
end;
$$;
revoke execute on function billing.grace_interval() from public;
grant execute on function billing.grace_interval() to authenticated, service_role;

/**
 * The backoff before attempt p_attempt + 1 of an outbox's work (provider actions, notifications):
 * 30 s doubled each attempt, at most an hour, plus up to a fifth of it at random (so workers that
 * failed together do not retry together); the provider's Retry-After when it gave one and it is
 * longer (at most a day).
 */
create function billing.retry_backoff(p_attempt integer, p_retry_after_seconds integer)
returns interval
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_seconds double precision := least(30 * power(2, greatest(coalesce(p_attempt, 1) - 1, 0)), 3600);
begin
  v_seconds := v_seconds * (1 + pg_catalog.random() / 5);
  return pg_catalog.make_interval(secs => greatest(v_seconds, least(coalesce(p_retry_after_seconds, 0), 86400)));
end;
$$;
revoke execute on function billing.retry_backoff(integer, integer) from public;
grant execute on function billing.retry_backoff(integer, integer) to service_role;

/**
 * The test clock's time, or null for "use now()": the transaction's pinned `billing.now`, else the
 * row of billing.test_clock, each only where the database itself sets billing.test_clock = on (a
 * session's or a role's own setting does not count). Called by billing.now() only after the
 * setting reads 'on', so a hosted project never runs it.
 * Security definer: billing.now() runs as the signed-in user inside RLS-checked functions, and
 * neither that user nor service_role may read billing.test_clock.
 */
create function billing.simulated_now()
returns timestamptz
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_pinned text := pg_catalog.current_setting('billing.now', true);
  v_at timestamptz;
begin
  if v_pinned is null or v_pinned = '' then
    select c.simulated_at into v_at from billing.test_clock c;
    if v_at is null then
      return null;
    end if;
  end if;
  if not exists (
    select 1
    from pg_catalog.pg_db_role_setting s
    join pg_catalog.pg_database d on d.oid = s.setdatabase
    where d.datname = pg_catalog.current_database()
      and s.setrole = 0
      and 'billing.test_clock=on' = any (s.setconfig)
  ) then
    return null;
  end if;
  return coalesce(nullif(v_pinned, '')::timestamptz, v_at);
end;
$$;
revoke execute on function billing.simulated_now() from public;
grant execute on function billing.simulated_now() to authenticated, service_role;
comment on function billing.simulated_now() is
  'The test clock: the pinned billing.now, else billing.test_clock, else null; only where the database enables billing.test_clock.';

/**
 * What a partition (a monthly one made by billing.maintain_partitions, or a default one a module
 * declares) is given: no grants (the API roles read the parent, under its policies), row level
 * security if it is in public (as every public table has), and a comment naming its parent.
 * Partitions belong in schema billing_partitions, which no API role may use and the generated
 * types and schema diffs leave out (monthly partitions come and go with the clock).
 */
create function billing.secure_partition(p_schema name, p_partition name, p_parent name)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_parent text := coalesce(
    (select i.inhparent::regclass::text from pg_catalog.pg_inherits i
     where i.inhrelid = pg_catalog.format('%I.%I', p_schema, p_partition)::regclass),
    p_parent);
begin
  execute pg_catalog.format('revoke all on table %I.%I from public, anon, authenticated, service_role', p_schema, p_partition);
  if p_schema = 'public' then
    execute pg_catalog.format('alter table %I.%I enable row level security', p_schema, p_partition);
  end if;
  execute pg_catalog.format('comment on table %I.%I is %L', p_schema, p_partition,
    pg_catalog.format('A partition of %s (billing.maintain_partitions): query the parent.', v_parent));
end;
$$;
revoke execute on function billing.secure_partition(name, name, name) from public;

/**
 * Monthly partitions of every table of billing.partitioned_tables at p_at (the contract is in this
 * file's header). For each table, in one transaction (an advisory lock makes concurrent runs wait
 * for each other; a second run finds nothing to do):
 * - the months to have: p_at's UTC month and months_ahead after it, and every month the default
 *   partition holds rows of (a row inserted before its partition existed: a clock moved ahead, a
 *   table converted by a migration); each missing one is created as a plain table with the
 *   parent's columns and checks, the default partition's rows of that month moved into it, and
 *   attached as billing_partitions.<table>_pYYYYMM FOR VALUES FROM (YYYY-MM-01 00:00 UTC) TO
 *   (next month); it gets the parent's indexes, keys, foreign keys and triggers when attached,
 *   and grants nothing (API roles read the parent, under its row level security);
 * - past retention: each <table>_pYYYYMM whose month ended more than the retention
 *   (retention_setting's days) before p_at is detached, then dropped: whole months go, never a
 *   DELETE, and a table without a retention keeps everything.
 * Returns the partitions created plus those dropped. Raises (nothing changed) when a registered
 * table is missing, not partitioned by range on its column, or names a retention setting
 * billing_settings does not have.
 */
create function billing.maintain_partitions(p_at timestamptz default billing.now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_table billing.partitioned_tables;
  v_parent regclass;
  v_schema name;
  v_name name;
  v_default regclass;
  v_exists boolean;
  v_columns text;
  v_retention_days integer;
  v_month timestamptz;
  v_months timestamptz[];
  v_partition name;
  v_partition_schema name;
  v_changed integer := 0;
  v_current timestamptz := pg_catalog.date_trunc('month', p_at, 'UTC');
begin
  if p_at is null then
    raise exception 'maintain_partitions: p_at is null' using errcode = 'invalid_parameter_value';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('billing.maintain_partitions'));
  for v_table in select * from billing.partitioned_tables t order by t.table_name loop
    v_parent := pg_catalog.to_regclass(v_table.table_name);
    if v_parent is null then
      raise exception 'billing.partitioned_tables: table % does not exist', v_table.table_name
        using errcode = 'undefined_table';
    end if;
    if not exists (
      select from pg_catalog.pg_partitioned_table pt
      join pg_catalog.pg_attribute a on a.attrelid = pt.partrelid and a.attnum = pt.partattrs[0]
      where pt.partrelid = v_parent and pt.partstrat = 'r' and pt.partnatts = 1
        and a.attname = v_table.partition_column and a.atttypid = 'timestamptz'::regtype
    ) then
      raise exception 'billing.partitioned_tables: % is not partitioned by range on its timestamptz column %',
        v_table.table_name, v_table.partition_column
        using errcode = 'invalid_table_definition',
              hint = 'Declare it "partition by range (<column>)" with a default partition; see 00_foundation.sql.';
    end if;
    if v_table.retention_setting is not null and not exists (
      select from pg_catalog.pg_attribute a
      where a.attrelid = 'public.billing_settings'::regclass and a.attname = v_table.retention_setting
        and a.atttypid = 'integer'::regtype and not a.attisdropped
    ) then
      raise exception 'billing.partitioned_tables: % names retention setting %, not an integer column of public.billing_settings',
        v_table.table_name, v_table.retention_setting
        using errcode = 'undefined_column';
    end if;
    select n.nspname, c.relname into v_schema, v_name
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.oid = v_parent;
    -- The default partition, wherever it was declared; made in billing_partitions when missing.
    select nullif(pt.partdefid, 0)::regclass into v_default
    from pg_catalog.pg_partitioned_table pt where pt.partrelid = v_parent;
    if v_default is null then
      execute pg_catalog.format('create table billing_partitions.%I partition of %I.%I default',
                                v_name || '_default', v_schema, v_name);
      perform billing.secure_partition('billing_partitions', v_name || '_default', v_name);
      v_default := pg_catalog.format('billing_partitions.%I', v_name || '_default')::regclass;
      v_changed := v_changed + 1;
    end if;
    select pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' order by a.attnum) into v_columns
    from pg_catalog.pg_attribute a
    where a.attrelid = v_parent and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';

    -- The months to have: from the current one to months_ahead after it, and those in the default.
    execute pg_catalog.format(
      'select pg_catalog.array_agg(distinct pg_catalog.date_trunc(''month'', d.%I, ''UTC'')) from %s d',
      v_table.partition_column, v_default) into v_months;
    v_months := coalesce(v_months, '{}') || array(
      select v_current + pg_catalog.make_interval(months => i) from pg_catalog.generate_series(0, v_table.months_ahead) i);
    for v_month in select distinct m from pg_catalog.unnest(v_months) m order by m loop
      v_partition := v_name || '_p' || pg_catalog.to_char(v_month at time zone 'UTC', 'YYYYMM');
      select exists (select from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
                     where i.inhparent = v_parent and c.relname = v_partition) into v_exists;
      continue when v_exists;
      execute pg_catalog.format(
        'create table billing_partitions.%I (like %I.%I including defaults including constraints including generated including storage)',
        v_partition, v_schema, v_name);
      execute pg_catalog.format(
        'with moved as (delete from %1$s where %2$I >= %3$L and %2$I < %4$L returning *) '
        'insert into billing_partitions.%5$I (%6$s) select %6$s from moved',
        v_default, v_table.partition_column, v_month, v_month + interval '1 month', v_partition, v_columns);
      execute pg_catalog.format('alter table %I.%I attach partition billing_partitions.%I for values from (%L) to (%L)',
        v_schema, v_name, v_partition, v_month, v_month + interval '1 month');
      perform billing.secure_partition('billing_partitions', v_partition, v_name);
      v_changed := v_changed + 1;
    end loop;

    -- Past retention: whole months, detached then dropped.
    if v_table.retention_setting is not null then
      execute pg_catalog.format('select s.%I from public.billing_settings s', v_table.retention_setting)
        into v_retention_days;
    else
      v_retention_days := null;
    end if;
    if v_retention_days is not null then
      for v_partition, v_partition_schema in
        select c.relname, c.relnamespace::regnamespace::name
        from pg_catalog.pg_inherits i
        join pg_catalog.pg_class c on c.oid = i.inhrelid
        where i.inhparent = v_parent
          and c.relname ~ ('^' || v_name || '_p[0-9]{6}$')
          and pg_catalog.to_date(pg_catalog.right(c.relname, 6), 'YYYYMM')::timestamp at time zone 'UTC'
              + interval '1 month' + pg_catalog.make_interval(days => v_retention_days) <= p_at
        order by c.relname
      loop
        execute pg_catalog.format('alter table %I.%I detach partition %I.%I', v_schema, v_name, v_partition_schema, v_partition);
        execute pg_catalog.format('drop table %I.%I', v_partition_schema, v_partition);
        v_changed := v_changed + 1;
      end loop;
    end if;
  end loop;
  return v_changed;
end;
$$;
revoke execute on function billing.maintain_partitions(timestamptz) from public;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** billing_settings: readable by every signed-in user (seller details, grace days). */
create policy "Signed-in users can read the billing settings"
  on public.billing_settings for select to authenticated
  using (true);

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

-- public.is_valid_gstin (section 2) is the only one: a browser may check a GSTIN before saving it.

comment on schema billing is 'supabill internals: helpers, machinery and service-only tables. Not exposed through the API.';
