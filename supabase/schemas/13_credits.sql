-- =================================================================================================
-- supabill: credits: grants with precedence and expiry, an append-only ledger, priced events
--
--   public.consume_credits(org, event, quantity, request_id)      (service_role)
--     prices the event (public.credit_events) and draws it from the organization's live grants in
--     precedence order, all of it or nothing; a retried request id returns its first answer and
--     is charged once (sent again after its release, it is charged anew); concurrent calls never
--     overdraw.
--   public.release_credits(org, request_id) / billing.settle_credits(org, request_id, credits)
--     give a charge back to the grants it came from (all of it, or down to what was really used);
--     what comes back to a grant that lapsed meanwhile lapses again, and to a grant that owes a
--     revoke (a refunded pack whose credits were out in a charge) is revoked, up to what it owes.
--   billing.operator_grant_credits(org, amount, expires_at, reason)  (postgres, service_role)
--   public.get_credit_balance(org)                                  (members and service_role)
--     balance by source, the next expiry and its amount, the last movements.
--   public.create_credit_pack_order(org, pack_code, provider)       (owners and admins)
--     the order of a credit pack (public.credit_packs) the checkout function pays; its captured
--     payment grants the pack's credits (billing.grant_pack_credits, from the payment path) and
--     a refund of it takes back the unspent part (billing.revoke_pack_credits, named on the
--     credit note).
--
-- The model. A grant (public.credit_grants) is credits an organization received from one source:
-- purchase (a credit pack), subscription (a plan's credits_per_period, granted for each paid span
-- and lapsing at its end: billing.grant_period_credits), promotion or operator. `remaining` is what is left of it.
-- Every movement of a grant's credits is one row of public.credit_ledger (granted, consumed,
-- released, expired, revoked) with the organization's balance after it; the ledger is append-only,
-- so for every grant its ledger rows sum to its `remaining`, and for every organization its ledger
-- sums to the balance (billing.credit_ledger_problems() lists where they do not).
--
-- Precedence: purchased credits first, then subscription credits, then promotion and operator
-- grants (billing_settings.credit_source_order changes it); within a source the lower `priority`,
-- then the earliest expiry (never last), then the oldest grant first.
--
-- Every movement of an organization's credits takes one lock (billing.lock_credits), so the ledger
-- is in order and the balance after each row is exact. Nobody writes these tables directly: they
-- grant service_role and members SELECT only, and the functions that write are security definer.
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- public.credit_source and public.credit_movement are foundation types.

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- credit_events
-- -------------------------------------------------------------------------------------------------

/**
 * What one unit of an action costs in credits: `api_call_basic` at 1 credit a call, `ai_inference`
 * at some credits a unit. A DBA edits the rows; a charge keeps the credits it was priced at.
 */
create table public.credit_events (
  code text primary key check (code ~ '^[a-z][a-z0-9_]{0,62}$'),
  name text not null check (length(btrim(name)) between 1 and 200),
  credits_per_unit numeric(20, 6) not null
    constraint credit_events_credits_per_unit_positive check (credits_per_unit > 0),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.credit_events is 'What one unit of an action costs in credits (consume_credits prices a charge with it).';

grant select on public.credit_events to authenticated;

grant select, insert, update, delete on public.credit_events to service_role;

alter table public.credit_events enable row level security;

create trigger credit_events_touch_updated_at
  before update on public.credit_events
  for each row execute function billing.touch_updated_at();

-- -------------------------------------------------------------------------------------------------
-- credit_grants
-- -------------------------------------------------------------------------------------------------

/**
 * Credits an organization received from one source. `remaining` changes only through the functions
 * of this module, each with its ledger row. What created the grant: the order and captured payment
 * of a credit pack, the subscription and period start of a plan's credits, or an operator and a
 * reason. `dedupe_key` makes a grant from the same cause (a payment delivered three times, a period
 * renewed twice) one grant.
 */
create table public.credit_grants (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete restrict,
  source public.credit_source not null,
  amount bigint not null constraint credit_grants_amount_positive check (amount > 0),
  remaining bigint not null,
  priority integer not null default 0,
  effective_from timestamptz not null default billing.now(),
  expires_at timestamptz,
  order_id uuid references public.orders (id) on delete restrict,
  -- No foreign key to payment_events: a reference would turn its TRUNCATE guard into a foreign key
  -- error. The pack's grant function checks the payment.
  payment_event_id uuid,
  subscription_id uuid references public.subscriptions (id) on delete restrict,
  period_start timestamptz,
  reason text check (length(btrim(reason)) between 1 and 500),
  created_by text,
  dedupe_key text unique check (length(dedupe_key) between 1 and 300),
  expired_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz not null default now(),
  revoke_owed bigint not null default 0 constraint credit_grants_revoke_owed_not_negative check (revoke_owed >= 0),
  constraint credit_grants_remaining_range check (remaining between 0 and amount),
  constraint credit_grants_expiry_after_start check (expires_at is null or expires_at >= effective_from),
  constraint credit_grants_subscription_has_period
    check (source <> 'subscription' or (subscription_id is not null and period_start is not null))
);

comment on table public.credit_grants is 'Credits an organization received (purchase, subscription, promotion, operator): amount, remaining, expiry, and what created them.';

/**
 * The grants an organization can draw from, in the order consume_credits reads them. Not partial
 * on `remaining`: an index that names the column would make every draw's update of it a non-HOT
 * update, with a new entry in each of the table's indexes (a spent grant costs one index entry).
 */
create index credit_grants_live_idx on public.credit_grants (organization_id, expires_at, created_at);

/** The expiry job's queue. */
create index credit_grants_expiry_idx on public.credit_grants (expires_at)
  where expired_at is null and expires_at is not null;

/** Foreign keys. */
create index credit_grants_organization_id_idx on public.credit_grants (organization_id);

create index credit_grants_order_id_idx on public.credit_grants (order_id);

create index credit_grants_payment_event_id_idx on public.credit_grants (payment_event_id) where payment_event_id is not null;

create index credit_grants_subscription_id_idx on public.credit_grants (subscription_id, period_start);

revoke all on public.credit_grants from anon, authenticated, service_role;

grant select on public.credit_grants to authenticated, service_role;

alter table public.credit_grants enable row level security;

-- -------------------------------------------------------------------------------------------------
-- credit_charges
-- -------------------------------------------------------------------------------------------------

/**
 * One charge of consume_credits: the event, quantity and credits it was priced at, and what of it
 * is still charged after settlements and releases. A request id makes a retry the same charge.
 */
create table public.credit_charges (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete restrict,
  request_id text check (length(request_id) between 1 and 200),
  event_code text not null references public.credit_events (code) on delete restrict on update cascade,
  quantity bigint not null constraint credit_charges_quantity_positive check (quantity > 0),
  credits bigint not null constraint credit_charges_credits_positive check (credits > 0),
  charged bigint not null,
  created_at timestamptz not null default billing.now(),
  updated_at timestamptz not null default now(),
  constraint credit_charges_charged_range check (charged >= 0)
);

comment on table public.credit_charges is 'Charges of consume_credits: priced credits, and what is still charged after settlement and release.';

/** A request id is one charge per organization. */
create unique index credit_charges_request_unique on public.credit_charges (organization_id, request_id)
  where request_id is not null;

create index credit_charges_organization_id_idx on public.credit_charges (organization_id, created_at);

create index credit_charges_event_code_idx on public.credit_charges (event_code);

revoke all on public.credit_charges from anon, authenticated, service_role;

grant select on public.credit_charges to authenticated, service_role;

alter table public.credit_charges enable row level security;

-- -------------------------------------------------------------------------------------------------
-- credit_ledger
-- -------------------------------------------------------------------------------------------------

/**
 * Every movement of credits, append-only: `amount` is signed (granted and released add, consumed,
 * expired and revoked take away) and `balance_after` is the organization's balance (the sum of its
 * grants' remaining) after the row.
 */
create table public.credit_ledger (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id) on delete restrict,
  grant_id uuid not null references public.credit_grants (id) on delete restrict,
  kind public.credit_movement not null,
  amount bigint not null,
  balance_after bigint not null constraint credit_ledger_balance_not_negative check (balance_after >= 0),
  charge_id uuid references public.credit_charges (id) on delete restrict,
  request_id text,
  event_code text,
  actor_kind public.actor_kind not null default 'system',
  actor text,
  reason text,
  created_at timestamptz not null default billing.now(),
  constraint credit_ledger_sign check (
    case kind when 'granted' then amount > 0 when 'released' then amount > 0 else amount < 0 end)
);

comment on table public.credit_ledger is 'Append-only log of every credit movement (granted, consumed, released, expired, revoked) with the balance after it.';

/** An organization's movements in order (the last row holds its balance). */
create index credit_ledger_organization_id_idx on public.credit_ledger (organization_id, id);

create index credit_ledger_grant_id_idx on public.credit_ledger (grant_id);

create index credit_ledger_charge_id_idx on public.credit_ledger (charge_id) where charge_id is not null;

revoke all on public.credit_ledger from anon, authenticated, service_role;

grant select on public.credit_ledger to authenticated, service_role;

alter table public.credit_ledger enable row level security;

create trigger credit_ledger_immutable
  before update or delete on public.credit_ledger
  for each row execute function billing.reject_change();

create trigger credit_ledger_no_truncate
  before truncate on public.credit_ledger
  for each statement execute function billing.reject_change();

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * Serializes every movement of one organization's credits (transaction-scoped advisory lock):
 * the ledger's order and each balance_after follow from it. Take it before any grant row lock.
 */
create function billing.lock_credits(p_organization_id uuid)
returns void
language plpgsql
volatile
set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('supabill.credits:' || p_organization_id::text, 0));
end;
$$;

revoke execute on function billing.lock_credits(uuid) from public;

/** The organization's balance as the ledger holds it (its last row's balance_after), 0 before any. */
create function billing.credit_ledger_balance(p_organization_id uuid)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_balance bigint;
begin
  select l.balance_after into v_balance
  from public.credit_ledger l
  where l.organization_id = p_organization_id
  order by l.id desc
  limit 1;
  return coalesce(v_balance, 0);
end;
$$;

revoke execute on function billing.credit_ledger_balance(uuid) from public;

/**
 * Appends one ledger row for a grant whose `remaining` the caller just changed by p_amount, with
 * the balance after it (the last row's plus p_amount). The caller holds billing.lock_credits.
 * Returns the row's id.
 */
create function billing.record_credit_movement(
  p_grant public.credit_grants,
  p_kind public.credit_movement,
  p_amount bigint,
  p_charge public.credit_charges default null,
  p_actor_kind public.actor_kind default 'system',
  p_reason text default null
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into public.credit_ledger
    (organization_id, grant_id, kind, amount, balance_after, charge_id, request_id, event_code,
     actor_kind, actor, reason)
  values (p_grant.organization_id, p_grant.id, p_kind, p_amount,
          billing.credit_ledger_balance(p_grant.organization_id) + p_amount,
          p_charge.id, p_charge.request_id, p_charge.event_code, p_actor_kind,
          coalesce((select auth.uid())::text, session_user::text), p_reason)
  returning id into v_id;
  return v_id;
end;
$$;

revoke execute on function billing.record_credit_movement(public.credit_grants, public.credit_movement, bigint, public.credit_charges, public.actor_kind, text) from public;

/**
 * Creates a grant with its 'granted' ledger row, once per dedupe key: a second call with the same
 * key (a payment delivered again, a period renewed twice) returns the first grant and writes
 * nothing. Takes the organization's credit lock.
 */
create function billing.add_credit_grant(
  p_organization_id uuid,
  p_source public.credit_source,
  p_amount bigint,
  p_expires_at timestamptz default null,
  p_reason text default null,
  p_dedupe_key text default null,
  p_actor_kind public.actor_kind default 'system',
  p_order_id uuid default null,
  p_payment_event_id uuid default null,
  p_subscription_id uuid default null,
  p_period_start timestamptz default null,
  p_effective_from timestamptz default null
)
returns public.credit_grants
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_grant public.credit_grants;
begin
  if p_amount is null or p_amount <= 0 or p_amount > 1000000000000 then
    raise exception 'a credit grant must be 1 to 1000000000000 credits, got %', coalesce(p_amount::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  perform billing.lock_credits(p_organization_id);
  insert into public.credit_grants as g
    (organization_id, source, amount, remaining, effective_from, expires_at, order_id, payment_event_id,
     subscription_id, period_start, reason, created_by, dedupe_key)
  values (p_organization_id, p_source, p_amount, p_amount, coalesce(p_effective_from, billing.now()), p_expires_at,
          p_order_id, p_payment_event_id, p_subscription_id, p_period_start, p_reason,
          coalesce((select auth.uid())::text, session_user::text), p_dedupe_key)
  on conflict (dedupe_key) do nothing
  returning g.* into v_grant;
  if v_grant.id is null then
    select g.* into v_grant from public.credit_grants g where g.dedupe_key = p_dedupe_key;
    return v_grant;
  end if;
  perform billing.record_credit_movement(v_grant, 'granted', p_amount, null, p_actor_kind, p_reason);
  return v_grant;
end;
$$;

revoke execute on function billing.add_credit_grant(uuid, public.credit_source, bigint, timestamptz, text, text, public.actor_kind, uuid, uuid, uuid, timestamptz, timestamptz) from public, anon, authenticated;
grant execute on function billing.add_credit_grant(uuid, public.credit_source, bigint, timestamptz, text, text, public.actor_kind, uuid, uuid, uuid, timestamptz, timestamptz) to service_role;

/**
 * Takes p_amount of a grant's credits away for good, as a refund of the payment that bought it
 * does: what the grant holds now at once ('revoked'), and the rest (credits out in charges that are
 * not settled yet) as they come back (`revoke_owed`, billing.return_credits), so a charge released
 * after the refund does not refill a refunded grant. p_amount at least the grant's amount takes
 * everything, now and later. Returns what was taken now. Takes the organization's credit lock.
 */
create function billing.revoke_credits(
  p_grant_id uuid,
  p_amount bigint,
  p_reason text,
  p_actor_kind public.actor_kind default 'system'
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_grant public.credit_grants;
  v_take bigint;
begin
  select g.* into v_grant from public.credit_grants g where g.id = p_grant_id;
  if v_grant.id is null then
    raise exception 'revoke_credits: no credit grant %', p_grant_id using errcode = 'no_data_found';
  end if;
  if p_amount is null or p_amount < 0 then
    raise exception 'revoke_credits: amount must be zero or more, got %', coalesce(p_amount::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  perform billing.lock_credits(v_grant.organization_id);
  select g.* into v_grant from public.credit_grants g where g.id = p_grant_id for update;
  v_take := least(p_amount, v_grant.remaining);
  if p_amount = 0 then
    return 0;
  end if;
  update public.credit_grants g
  set remaining = g.remaining - v_take, revoke_owed = least(g.revoke_owed + p_amount - v_take, g.amount),
      revoked_at = coalesce(g.revoked_at, billing.now())
  where g.id = p_grant_id
  returning g.* into v_grant;
  if v_take > 0 then
    perform billing.record_credit_movement(v_grant, 'revoked', -v_take, null, p_actor_kind, p_reason);
  end if;
  return v_take;
end;
$$;

revoke execute on function billing.revoke_credits(uuid, bigint, text, public.actor_kind) from public, anon, authenticated;
grant execute on function billing.revoke_credits(uuid, bigint, text, public.actor_kind) to service_role;

/**
 * Expires what is left of the organization's grants that lapsed (expires_at at or before now):
 * one 'expired' ledger row each. The caller holds billing.lock_credits. Returns the credits expired.
 */
create function billing.expire_lapsed_grants(p_organization_id uuid)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_grant public.credit_grants;
  v_total bigint := 0;
  v_left bigint;
begin
  for v_grant in
    select g.* from public.credit_grants g
    where g.organization_id = p_organization_id and g.expired_at is null and g.expires_at <= billing.now()
    order by g.expires_at, g.id
    for update
  loop
    v_left := v_grant.remaining;
    update public.credit_grants g set remaining = 0, expired_at = billing.now()
    where g.id = v_grant.id
    returning g.* into v_grant;
    if v_left > 0 then
      perform billing.record_credit_movement(v_grant, 'expired', -v_left);
      v_total := v_total + v_left;
    end if;
  end loop;
  return v_total;
end;
$$;

revoke execute on function billing.expire_lapsed_grants(uuid) from public;

/**
 * The credit threshold under which an organization is warned: the plan's `credits_low_threshold`,
 * else billing_settings.credits_low_threshold; null when neither is set.
 */
create function billing.credits_low_threshold(p_organization_id uuid)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_features jsonb := (billing.effective_plan(p_organization_id, billing.now())).features;
begin
  if v_features ? 'credits_low_threshold' then
    return (v_features ->> 'credits_low_threshold')::bigint;
  end if;
  return (select s.credits_low_threshold from public.billing_settings s where s.id);
end;
$$;

revoke execute on function billing.credits_low_threshold(uuid) from public;

/**
 * Queues one 'credits_low' notification when a consumption took the balance from at or above the
 * threshold to under it: once per crossing (the ledger row of the crossing names it), not per call.
 * Most consumptions leave the balance above every threshold: the highest one any plan or the
 * settings set bounds the organization's, so its plan in effect is looked up only under it.
 */
create function billing.queue_credits_low(p_organization_id uuid, p_before bigint, p_after bigint, p_ledger_id bigint)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_threshold bigint;
begin
  if p_after >= p_before then
    return;
  end if;
  select greatest(s.credits_low_threshold,
                  (select max((p.features ->> 'credits_low_threshold')::bigint) from public.billing_plans p
                   where p.features ? 'credits_low_threshold'))
  into v_threshold
  from public.billing_settings s where s.id;
  if v_threshold is null or p_after >= v_threshold then
    return;
  end if;
  v_threshold := billing.credits_low_threshold(p_organization_id);
  if v_threshold is null or not (p_before >= v_threshold and p_after < v_threshold) then
    return;
  end if;
  insert into public.notifications (organization_id, kind, payload, dedupe_key)
  values (p_organization_id, 'credits_low',
          pg_catalog.jsonb_build_object('balance', p_after, 'threshold', v_threshold),
          pg_catalog.format('credits_low:%s:%s', p_organization_id, p_ledger_id))
  on conflict (dedupe_key) do nothing;
end;
$$;

revoke execute on function billing.queue_credits_low(uuid, bigint, bigint, bigint) from public;

/**
 * What a charge's answer lists: for each grant it still holds credits of, the grant, its source
 * and the credits (consumed less released), in the order they were drawn.
 */
create function billing.charge_grants(p_charge_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce((
    select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('grant_id', x.grant_id, 'source', x.source,
                                                               'credits', x.credits) order by x.first_id)
    from (
      select l.grant_id, g.source, -sum(l.amount) filter (where l.kind in ('consumed', 'released')) as credits,
             min(l.id) as first_id
      from public.credit_ledger l
      join public.credit_grants g on g.id = l.grant_id
      where l.charge_id = p_charge_id
      group by l.grant_id, g.source
    ) x
    where x.credits > 0), '[]'::jsonb);
end;
$$;

revoke execute on function billing.charge_grants(uuid) from public;

/**
 * Draws p_credits for a charge from the organization's live grants in precedence order; the caller
 * holds billing.lock_credits, checked that enough is available, and passes p_held, the balance the
 * ledger holds (the sum of the grants' remaining). Each draw is one ledger row with the balance
 * after it. Queues the low-balance notification when the draw crosses the threshold. Returns the
 * grants drawn from: grant_id, source, credits.
 */
create function billing.draw_credits(p_charge public.credit_charges, p_credits bigint, p_held bigint)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_order public.credit_source[] := (select s.credit_source_order from public.billing_settings s where s.id);
  v_actor text := coalesce((select auth.uid())::text, session_user::text);
  v_left bigint := p_credits;
  v_take bigint;
  v_grant record;
  v_ledger_id bigint;
  v_drawn jsonb := '[]'::jsonb;
begin
  for v_grant in
    select g.id, g.source, g.remaining from public.credit_grants g
    where g.organization_id = p_charge.organization_id and g.remaining > 0
      and g.effective_from <= v_now and (g.expires_at is null or g.expires_at > v_now)
    order by pg_catalog.array_position(v_order, g.source), g.priority, g.expires_at nulls last, g.created_at, g.id
    for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants g set remaining = g.remaining - v_take where g.id = v_grant.id;
    v_left := v_left - v_take;
    insert into public.credit_ledger
      (organization_id, grant_id, kind, amount, balance_after, charge_id, request_id, event_code, actor)
    values (p_charge.organization_id, v_grant.id, 'consumed', -v_take, p_held - (p_credits - v_left),
            p_charge.id, p_charge.request_id, p_charge.event_code, v_actor)
    returning id into v_ledger_id;
    v_drawn := v_drawn || pg_catalog.jsonb_build_object('grant_id', v_grant.id, 'source', v_grant.source,
                                                        'credits', v_take);
  end loop;
  if v_left > 0 then
    raise exception 'draw_credits: % credits short for charge %', v_left, p_charge.id
      using errcode = 'check_violation';
  end if;
  perform billing.queue_credits_low(p_charge.organization_id, p_held, p_held - p_credits, v_ledger_id);
  return v_drawn;
end;
$$;

revoke execute on function billing.draw_credits(public.credit_charges, bigint, bigint) from public;

/** Credits the organization can draw now: live grants (effective, not lapsed). */
create function billing.available_credits(p_organization_id uuid)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
begin
  return coalesce((
    select sum(g.remaining)::bigint from public.credit_grants g
    where g.organization_id = p_organization_id and g.remaining > 0
      and g.effective_from <= v_now and (g.expires_at is null or g.expires_at > v_now)), 0);
end;
$$;

revoke execute on function billing.available_credits(uuid) from public, anon;
grant execute on function billing.available_credits(uuid) to authenticated, service_role;

/**
 * Gives back up to p_credits of a charge to the grants it came from, the last drawn first; credits
 * that come back to a grant that lapsed expire again, and to a grant that still owes a revoke
 * (`revoke_owed`) are revoked, up to what it owes. The caller holds billing.lock_credits. Returns
 * what was given back.
 */
create function billing.return_credits(p_charge public.credit_charges, p_credits bigint)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_left bigint := p_credits;
  v_part record;
  v_take bigint;
  v_owed bigint;
  v_grant public.credit_grants;
begin
  for v_part in
    select l.grant_id, -sum(l.amount)::bigint as held, min(l.id) as first_id
    from public.credit_ledger l
    where l.charge_id = p_charge.id and l.kind in ('consumed', 'released')
    group by l.grant_id
    having -sum(l.amount) > 0
    order by min(l.id) desc
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_part.held);
    select g.* into v_grant from public.credit_grants g where g.id = v_part.grant_id for update;
    v_owed := least(v_take, v_grant.revoke_owed);
    perform billing.record_credit_movement(v_grant, 'released', v_take, p_charge);
    if v_owed > 0 then
      update public.credit_grants g set revoke_owed = g.revoke_owed - v_owed where g.id = v_grant.id
      returning g.* into v_grant;
      perform billing.record_credit_movement(v_grant, 'revoked', -v_owed, p_charge);
    end if;
    if v_take > v_owed and v_grant.expires_at <= v_now then
      perform billing.record_credit_movement(v_grant, 'expired', -(v_take - v_owed), p_charge);
    elsif v_take > v_owed then
      update public.credit_grants g set remaining = g.remaining + (v_take - v_owed) where g.id = v_grant.id;
    end if;
    v_left := v_left - v_take;
  end loop;
  return p_credits - v_left;
end;
$$;

revoke execute on function billing.return_credits(public.credit_charges, bigint) from public;

/** Checks a request id (null, or 1 to 200 characters) for the credit functions. */
create function billing.check_credit_request_id(p_function text, p_request_id text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_request_id is not null and length(p_request_id) not between 1 and 200 then
    raise exception '%: request id must be 1 to 200 characters', p_function using errcode = 'invalid_parameter_value';
  end if;
end;
$$;

revoke execute on function billing.check_credit_request_id(text, text) from public;

/**
 * Moves a charge to p_credits still charged: less gives the difference back (billing.return_credits),
 * more draws it (all of it, or nothing when the balance cannot cover it). Shared by
 * billing.settle_credits and public.release_credits; the answer is theirs.
 */
create function billing.adjust_charge(
  p_function text,
  p_organization_id uuid,
  p_request_id text,
  p_credits bigint,
  out charged boolean,
  out credits bigint,
  out balance bigint,
  out charge_id uuid,
  out grants jsonb
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_charge public.credit_charges;
  v_delta bigint;
begin
  perform billing.check_credit_request_id(p_function, p_request_id);
  if p_request_id is null then
    raise exception '%: a request id is required', p_function using errcode = 'invalid_parameter_value';
  end if;
  if p_credits is null or p_credits < 0 then
    raise exception '%: credits must be zero or more, got %', p_function, coalesce(p_credits::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  perform billing.lock_credits(p_organization_id);
  select c.* into v_charge from public.credit_charges c
  where c.organization_id = p_organization_id and c.request_id = p_request_id
  for update;
  if v_charge.id is null then
    raise exception '%: no charge with request id % for organization %', p_function, p_request_id, p_organization_id
      using errcode = 'no_data_found';
  end if;
  perform billing.expire_lapsed_grants(p_organization_id);
  v_delta := p_credits - v_charge.charged;
  charged := true;
  if v_delta < 0 then
    perform billing.return_credits(v_charge, -v_delta);
  elsif v_delta > 0 then
    if billing.available_credits(p_organization_id) < v_delta then
      charged := false;
    else
      perform billing.draw_credits(v_charge, v_delta, billing.credit_ledger_balance(p_organization_id));
    end if;
  end if;
  if charged and v_delta <> 0 then
    update public.credit_charges c set charged = p_credits, updated_at = pg_catalog.now() where c.id = v_charge.id
    returning c.* into v_charge;
  end if;
  credits := v_charge.charged;
  balance := billing.available_credits(p_organization_id);
  charge_id := v_charge.id;
  grants := billing.charge_grants(v_charge.id);
end;
$$;

revoke execute on function billing.adjust_charge(text, uuid, text, bigint) from public, anon, authenticated;
grant execute on function billing.adjust_charge(text, uuid, text, bigint) to service_role;

/** Implementation of public.consume_credits (security definer: the tables grant no writes). */
create function billing.consume_credits(
  p_organization_id uuid,
  p_event text,
  p_quantity bigint,
  p_request_id text,
  out charged boolean,
  out credits bigint,
  out balance bigint,
  out charge_id uuid,
  out grants jsonb
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
  v_event public.credit_events;
  v_charge public.credit_charges;
  v_held bigint;
  v_lapsed boolean;
begin
  if p_quantity is null or p_quantity <= 0 then
    raise exception 'consume_credits: quantity must be a positive integer, got %', coalesce(p_quantity::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  perform billing.check_credit_request_id('consume_credits', p_request_id);
  select e.* into v_event from public.credit_events e where e.code = p_event;
  if v_event.code is null or not v_event.active then
    raise exception 'consume_credits: unknown or inactive credit event "%"', p_event
      using errcode = 'invalid_parameter_value', hint = 'the events are the active rows of public.credit_events';
  end if;
  if not exists (select from public.organizations o where o.id = p_organization_id) then
    raise exception 'consume_credits: unknown organization %', p_organization_id using errcode = 'no_data_found';
  end if;
  credits := pg_catalog.ceil(p_quantity * v_event.credits_per_unit)::bigint;

  -- The charge is written before the organization's credit lock is taken, so the lock is held for
  -- the draw alone. A request id claims its charge here: a concurrent duplicate waits on the
  -- unique index until the first commits, then answers the first charge.
  insert into public.credit_charges as c (organization_id, request_id, event_code, quantity, credits, charged)
  values (p_organization_id, p_request_id, p_event, p_quantity, credits, credits)
  on conflict (organization_id, request_id) where request_id is not null do nothing
  returning c.* into v_charge;
  if v_charge.id is null then
    select c.* into v_charge from public.credit_charges c
    where c.organization_id = p_organization_id and c.request_id = p_request_id;
    if v_charge.event_code <> p_event or v_charge.quantity <> p_quantity then
      raise exception 'consume_credits: request id % was charged for % x % already', p_request_id,
        v_charge.quantity, v_charge.event_code using errcode = 'invalid_parameter_value';
    end if;
    if v_charge.charged = 0 then
      -- Sent again after it was released: charged anew, as a released usage request is counted anew.
      select a.charged, a.credits, a.balance, a.charge_id, a.grants into charged, credits, balance, charge_id, grants
      from billing.adjust_charge('consume_credits', p_organization_id, p_request_id, v_charge.credits) a;
      return;
    end if;
    -- A retry: the first answer, charged once.
    charged := true;
    credits := v_charge.credits;
    balance := billing.available_credits(p_organization_id);
    charge_id := v_charge.id;
    grants := billing.charge_grants(v_charge.id);
    return;
  end if;

  perform billing.lock_credits(p_organization_id);
  -- One read of the grants holding credits: what the ledger holds, what can be drawn now, and
  -- whether any lapsed (then it is expired into the ledger first).
  select coalesce(sum(g.remaining), 0),
         coalesce(sum(g.remaining) filter (where g.effective_from <= v_now and (g.expires_at is null or g.expires_at > v_now)), 0),
         coalesce(bool_or(g.expires_at <= v_now), false)
  into v_held, balance, v_lapsed
  from public.credit_grants g
  where g.organization_id = p_organization_id and g.remaining > 0;
  if v_lapsed then
    v_held := v_held - billing.expire_lapsed_grants(p_organization_id);
  end if;
  if balance < credits then
    -- Not charged: the charge goes, so nothing is written (a retry may charge when credits came).
    delete from public.credit_charges c where c.id = v_charge.id;
    charged := false;
    charge_id := null;
    grants := '[]'::jsonb;
    return;
  end if;
  grants := billing.draw_credits(v_charge, credits, v_held);
  charged := true;
  balance := balance - credits;
  charge_id := v_charge.id;
end;
$$;

revoke execute on function billing.consume_credits(uuid, text, bigint, text) from public, anon, authenticated;
grant execute on function billing.consume_credits(uuid, text, bigint, text) to service_role;

/**
 * Settles a charge at the credits really used (an AI call's cost once known): less than charged
 * gives the rest back to its grants; more draws the difference, or leaves the charge as it is and
 * answers charged = false when the balance cannot cover it. service_role.
 */
create function billing.settle_credits(
  p_organization_id uuid,
  p_request_id text,
  p_credits bigint,
  out charged boolean,
  out credits bigint,
  out balance bigint,
  out charge_id uuid,
  out grants jsonb
)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_answer record;
begin
  v_answer := billing.adjust_charge('settle_credits', p_organization_id, p_request_id, p_credits);
  charged := v_answer.charged;
  credits := v_answer.credits;
  balance := v_answer.balance;
  charge_id := v_answer.charge_id;
  grants := v_answer.grants;
end;
$$;

revoke execute on function billing.settle_credits(uuid, text, bigint) from public, anon, authenticated;
grant execute on function billing.settle_credits(uuid, text, bigint) to service_role;

/**
 * Grants credits to an organization by hand, with a reason, recorded in the ledger with the
 * operator's name: source 'operator' (or 'promotion'), never expiring unless p_expires_at says when.
 * postgres and service_role. Returns the grant.
 */
create function billing.operator_grant_credits(
  p_organization_id uuid,
  p_amount bigint,
  p_expires_at timestamptz,
  p_reason text,
  p_source public.credit_source default 'operator'
)
returns public.credit_grants
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_reason text := billing.require_operator_reason(p_reason);
begin
  if p_source not in ('operator', 'promotion') then
    raise exception 'an operator grants operator or promotion credits, not %', p_source
      using errcode = 'invalid_parameter_value';
  end if;
  if p_expires_at is not null and p_expires_at <= billing.now() then
    raise exception 'the credits would expire at %, which is not in the future', p_expires_at
      using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select from public.organizations o where o.id = p_organization_id) then
    raise exception 'unknown organization %', p_organization_id using errcode = 'no_data_found';
  end if;
  return billing.add_credit_grant(p_organization_id, p_source, p_amount, p_expires_at, v_reason,
                                  p_actor_kind => 'operator');
end;
$$;

revoke execute on function billing.operator_grant_credits(uuid, bigint, timestamptz, text, public.credit_source) from public, anon, authenticated;
grant execute on function billing.operator_grant_credits(uuid, bigint, timestamptz, text, public.credit_source) to service_role;

/**
 * Cuts a subscription's plan credits at p_at: its subscription grants still live after p_at lapse
 * then (a grant whose span starts after p_at never becomes live); the expiry job or the next
 * charge expires what is left into the ledger. Takes the organization's credit lock first.
 */
create function billing.cut_period_credits(p_subscription public.subscriptions, p_at timestamptz)
returns void
language plpgsql
volatile
set search_path = ''
as $$
begin
  perform billing.lock_credits(p_subscription.organization_id);
  update public.credit_grants g set expires_at = greatest(p_at, g.effective_from)
  where g.subscription_id = p_subscription.id and g.source = 'subscription' and g.expired_at is null
    and (g.expires_at is null or g.expires_at > p_at);
end;
$$;

revoke execute on function billing.cut_period_credits(public.subscriptions, timestamptz) from public;

/**
 * A plan's credits follow the spans a subscription is paid for (a trigger on subscriptions, so
 * every path that changes a period is covered: a webhook, reconcile, an operator, the jobs):
 * - a paid span gets the plan's `credits_per_period`, granted once per span and plan (a payment
 *   delivered three times is one grant), effective from the span's start and lapsing at its end.
 *   A span is the period from `current_period_start`, or, when a renewal paid before the period
 *   ended stacks a period on it (`renewed`, same start, a later end), the new period from the old
 *   end; an upgrade within a span tops it up to the new plan's credits, a downgrade takes nothing;
 * - a new run of periods (the period start moves: a plan change that starts a new period, an
 *   activation) cuts the previous span's credits at the new start; a period end moved earlier (a
 *   refund) cuts them at the new end; a subscription that stops running (cancelled, expired)
 *   cuts them now; an end moved later by anything but a paid renewal (an operator's extension)
 *   moves their expiry with it.
 */
create function billing.grant_period_credits()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_context text := pg_catalog.current_setting('billing.change_context', true);
  v_action text;
  v_span_start timestamptz := new.current_period_start;
  v_per_period bigint;
  v_granted bigint;
  v_running constant public.subscription_status[] := '{trialing,active,past_due}';
begin
  if coalesce(v_context, '') <> ''
     and (v_context::jsonb ->> 'command_at')::timestamptz = pg_catalog.statement_timestamp() then
    v_action := v_context::jsonb ->> 'action';
  end if;
  if tg_op = 'UPDATE' then
    if old.status = any (v_running) and not (new.status = any (v_running)) then
      perform billing.cut_period_credits(new, billing.now());
      return null;
    elsif new.current_period_start is distinct from old.current_period_start and new.current_period_start is not null then
      perform billing.cut_period_credits(old, new.current_period_start);
    elsif new.current_period_end < old.current_period_end then
      perform billing.cut_period_credits(new, new.current_period_end);
    elsif new.current_period_end > old.current_period_end then
      if v_action = 'renewed' then
        v_span_start := old.current_period_end;
      else
        perform billing.lock_credits(new.organization_id);
        update public.credit_grants g set expires_at = new.current_period_end
        where g.subscription_id = new.id and g.source = 'subscription' and g.expired_at is null
          and g.expires_at = old.current_period_end;
      end if;
    end if;
  end if;
  if new.status <> 'active' or v_span_start is null or new.current_period_end is null
     or new.current_period_end <= billing.now() then
    return null;
  end if;
  select (p.features ->> 'credits_per_period')::bigint into v_per_period
  from public.billing_plans p where p.id = new.plan_id;
  if coalesce(v_per_period, 0) <= 0 then
    return null;
  end if;
  select coalesce(sum(g.amount), 0) into v_granted
  from public.credit_grants g
  where g.subscription_id = new.id and g.period_start = v_span_start and g.source = 'subscription';
  if v_granted >= v_per_period then
    return null;
  end if;
  perform billing.add_credit_grant(new.organization_id, 'subscription', v_per_period - v_granted,
    p_expires_at => new.current_period_end,
    p_reason => 'credits of the period',
    p_dedupe_key => pg_catalog.format('period:%s:%s:%s', new.id, extract(epoch from v_span_start), new.plan_id),
    p_subscription_id => new.id,
    p_period_start => v_span_start,
    p_effective_from => v_span_start);
  return null;
end;
$$;

revoke execute on function billing.grant_period_credits() from public;

create trigger subscriptions_grant_period_credits
  after insert or update of status, plan_id, current_period_start, current_period_end on public.subscriptions
  for each row execute function billing.grant_period_credits();

/**
 * The expiry job's batch: expires into the ledger what is left of up to p_limit lapsed grants
 * (billing.expire_lapsed_grants, organization by organization, under each one's credit lock).
 * Idempotent and safe to run late: a grant is expired once, at whatever time the job comes.
 */
create function billing.expire_credits_batch(p_limit integer)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_org uuid;
  v_n integer := 0;
begin
  for v_org in
    select distinct x.organization_id from (
      select g.organization_id from public.credit_grants g
      where g.expired_at is null and g.expires_at <= billing.now()
      order by g.expires_at
      limit greatest(coalesce(p_limit, 1000), 0)) x
  loop
    perform billing.lock_credits(v_org);
    perform billing.expire_lapsed_grants(v_org);
    v_n := v_n + 1;
  end loop;
  return v_n;
end;
$$;

revoke execute on function billing.expire_credits_batch(integer) from public, anon, authenticated;
grant execute on function billing.expire_credits_batch(integer) to service_role;

/** The pg_cron entry point of billing.expire_credits_batch, logged in billing.job_runs. */
create function billing.job_expire_credits(p_limit integer default 1000)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  return billing.run_job('credits-expire', 'billing.expire_credits_batch(integer)', p_limit);
end;
$$;

revoke execute on function billing.job_expire_credits(integer) from public, anon, authenticated;

/**
 * Where the credit ledger disagrees with the grants: a grant whose ledger rows do not sum to its
 * remaining, or an organization whose last balance_after is not the sum of its grants. Empty when
 * all is well; the tests and the simulator call it after every step.
 */
create function billing.credit_ledger_problems()
returns table (organization_id uuid, grant_id uuid, problem text)
language plpgsql
stable
set search_path = ''
as $$
begin
  return query
  select g.organization_id, g.id,
         pg_catalog.format('grant remaining %s, ledger sum %s', g.remaining, coalesce(l.total, 0))
  from public.credit_grants g
  left join (select x.grant_id, sum(x.amount) as total from public.credit_ledger x group by x.grant_id) l
    on l.grant_id = g.id
  where coalesce(l.total, 0) <> g.remaining or g.remaining < 0
  union all
  select o.organization_id, null::uuid,
         pg_catalog.format('balance after the last row %s, grants remaining %s', o.last_balance, o.held)
  from (
    select gg.organization_id, sum(gg.remaining) as held,
           billing.credit_ledger_balance(gg.organization_id) as last_balance
    from public.credit_grants gg group by gg.organization_id
  ) o
  where o.held <> o.last_balance;
end;
$$;

revoke execute on function billing.credit_ledger_problems() from public, anon, authenticated;
grant execute on function billing.credit_ledger_problems() to service_role;

/**
 * Starts the checkout of a credit pack: the signed-in owner or admin of the organization buys an
 * active pack (public.credit_packs) once, through a provider. Creates the order (kind
 * 'credit_pack', the pack's price before GST: the orders module's trigger quotes the GST and sets
 * the total payable) with the credits and validity it is sold with in its metadata, and returns
 * what the checkout function needs (billing.checkout_answer: plan_name is the pack's name). PayU
 * orders are payable at once ('pending'); Razorpay orders stay 'created' until the Razorpay order
 * is attached (a one-time order, never a subscription). A new pack checkout supersedes the
 * organization's other open pack orders, never its plan orders.
 * Errors: 42501 not signed in / not an owner or admin; 22023 bad provider; P0002 no such active
 * pack; 55000 the pack cannot be paid through the provider (hint 'credit_pack_not_purchasable'),
 * or too many open orders (hint 'too_many_open_orders').
 * Security definer: signed-in users have no insert grant on orders, and the buyer's email comes
 * from auth.users.
 */
create function billing.create_credit_pack_order(p_organization_id uuid, p_credit_pack_code text, p_provider text)
returns setof billing.checkout_order
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_now timestamptz := billing.now();
  v_pack public.credit_packs;
  v_order public.orders;
begin
  perform billing.checkout_provider(p_provider);
  perform billing.require_role(p_organization_id, billing.managers(), 'buy credits');
  select * into v_pack from public.credit_packs cp where cp.code = p_credit_pack_code and cp.active;
  if v_pack.id is null then
    raise exception 'no active credit pack "%"', coalesce(p_credit_pack_code, '') using errcode = 'no_data_found';
  end if;
  if p_provider = 'razorpay' and v_pack.price_paise < 100 then
    raise exception 'credit pack "%" costs less than Razorpay''s minimum of 100 paise', v_pack.code
      using errcode = 'object_not_in_prerequisite_state', hint = 'credit_pack_not_purchasable';
  end if;

  -- One checkout of an organization at a time (the payment path takes the same lock).
  perform 1 from public.organizations o where o.id = p_organization_id for no key update;
  insert into public.orders
    (organization_id, credit_pack_id, provider, kind, amount_cents, currency, status, created_by, expires_at, metadata)
  values
    (p_organization_id, v_pack.id, p_provider::public.payment_provider, 'credit_pack', v_pack.price_paise, v_pack.currency,
     case when p_provider = 'payu' then 'pending' else 'created' end::public.order_status, v_user_id, v_now + interval '1 day',
     pg_catalog.jsonb_build_object('credit_pack_code', v_pack.code, 'credits', v_pack.credits,
                                   'credit_validity', v_pack.validity::text))
  returning * into v_order;

  return next billing.checkout_answer(v_order, v_user_id, null);
end;
$$;
revoke execute on function billing.create_credit_pack_order(uuid, text, text) from public, anon;
grant execute on function billing.create_credit_pack_order(uuid, text, text) to authenticated;

/**
 * The credits a captured payment of a credit pack order buys (billing.apply_captured_payment
 * calls it, in the payment's transaction, after marking the order paid): a 'purchase' grant of
 * the credits the order was sold with, lapsing the pack's validity after the payment (never when
 * it has none), naming the order and the payment. Once per payment event (dedupe key
 * 'purchase:<payment event id>'): a payment delivered again grants nothing more. p_payment_event_id
 * must be a captured payment of this order (22023 otherwise).
 */
create function billing.grant_pack_credits(p_order public.orders, p_payment_event_id uuid)
returns public.credit_grants
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_pack public.credit_packs;
  v_credits bigint;
  v_validity interval;
  v_paid_at timestamptz := coalesce(p_order.paid_at, billing.now());
begin
  if p_order.kind <> 'credit_pack' or p_order.credit_pack_id is null then
    raise exception 'order % is not a credit pack order', p_order.receipt using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from public.payment_events pe
                 where pe.id = p_payment_event_id and pe.order_id = p_order.id and pe.status = 'captured') then
    raise exception 'payment event % is not a captured payment of order %', p_payment_event_id, p_order.receipt
      using errcode = 'invalid_parameter_value';
  end if;
  select * into strict v_pack from public.credit_packs cp where cp.id = p_order.credit_pack_id;
  -- What the buyer was sold at checkout, whatever the pack says now.
  if p_order.metadata ? 'credits' then
    v_credits := (p_order.metadata ->> 'credits')::bigint;
    v_validity := (p_order.metadata ->> 'credit_validity')::interval;
  else
    v_credits := v_pack.credits;
    v_validity := v_pack.validity;
  end if;
  return billing.add_credit_grant(p_order.organization_id, 'purchase', v_credits,
    p_expires_at => v_paid_at + v_validity,
    p_reason => pg_catalog.format('credit pack %s (order %s)', v_pack.code, p_order.receipt),
    p_dedupe_key => pg_catalog.format('purchase:%s', p_payment_event_id),
    p_actor_kind => 'provider',
    p_order_id => p_order.id,
    p_payment_event_id => p_payment_event_id,
    p_effective_from => v_paid_at);
end;
$$;

revoke execute on function billing.grant_pack_credits(public.orders, uuid) from public, anon, authenticated;
grant execute on function billing.grant_pack_credits(public.orders, uuid) to service_role;

/**
 * Takes back the unspent credits a refunded (or charged back) credit pack payment bought, in the
 * refund's transaction, before its credit note is issued: for a refund that makes the payment
 * refunded in full (p_taken_before, the refunds recorded and disputes lost before it, plus
 * p_amount reach the captured amount; p_amount null: a lost dispute), all that remains of the
 * grant, and what its unsettled charges give back later; for a partial refund the same share of
 * the grant's credits as of the payment, rounded up: what remains of it now, the rest as charges
 * give credits back (billing.revoke_credits). Credits already used stay used; a grant that lapsed is expired
 * first, so nothing of it is revoked. Returns the grant, what was revoked now, its amount, what
 * of it was used, and the sentence the credit note carries ("Credits revoked: N of M (K already
 * used)"); all null when the payment granted no credits.
 */
create function billing.revoke_pack_credits(
  p_captured public.payment_events,
  p_amount bigint,
  p_taken_before bigint,
  p_reason text,
  out grant_id uuid,
  out revoked bigint,
  out granted bigint,
  out used bigint,
  out note text
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_grant public.credit_grants;
  v_want bigint;
  v_expired bigint;
begin
  select g.* into v_grant from public.credit_grants g
  where g.payment_event_id = p_captured.id and g.source = 'purchase'
  order by g.created_at
  limit 1;
  if v_grant.id is null then
    return;
  end if;
  perform billing.lock_credits(v_grant.organization_id);
  perform billing.expire_lapsed_grants(v_grant.organization_id);
  select g.* into v_grant from public.credit_grants g where g.id = v_grant.id;
  -- The refunded share of the credits (all of them once the payment is refunded in full): what the
  -- grant holds now goes at once, the rest as charges not yet settled give credits back.
  if p_amount is null or coalesce(p_taken_before, 0) + p_amount >= p_captured.amount_cents then
    v_want := v_grant.amount;
  else
    v_want := pg_catalog.ceil(v_grant.amount::numeric * p_amount / p_captured.amount_cents)::bigint;
  end if;
  grant_id := v_grant.id;
  granted := v_grant.amount;
  revoked := billing.revoke_credits(v_grant.id, v_want, p_reason, 'provider');
  select coalesce(-sum(l.amount) filter (where l.kind in ('consumed', 'released')), 0)::bigint,
         coalesce(-sum(l.amount) filter (where l.kind = 'expired'), 0)::bigint
  into used, v_expired
  from public.credit_ledger l
  where l.grant_id = v_grant.id;
  note := pg_catalog.format('Credits revoked: %s of %s (%s already used%s)', revoked, granted, used,
                            case when v_expired > 0 then pg_catalog.format(', %s expired', v_expired) else '' end);
end;
$$;

revoke execute on function billing.revoke_pack_credits(public.payment_events, bigint, bigint, text) from public, anon, authenticated;
grant execute on function billing.revoke_pack_credits(public.payment_events, bigint, bigint, text) to service_role;

/** Implementation of public.get_credit_balance: members of the organization and service_role. */
create function billing.get_credit_balance(p_organization_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := billing.now();
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  return (
    with live as (
      select g.* from public.credit_grants g
      where g.organization_id = p_organization_id and g.remaining > 0
        and (g.expires_at is null or g.expires_at > v_now)
    ),
    next_expiry as (
      select l.expires_at, sum(l.remaining) as credits from live l
      where l.expires_at is not null and l.effective_from <= v_now
      group by l.expires_at order by l.expires_at limit 1
    )
    select pg_catalog.jsonb_build_object(
      'organization_id', p_organization_id,
      'balance', coalesce((select sum(l.remaining) from live l where l.effective_from <= v_now), 0),
      'pending', coalesce((select sum(l.remaining) from live l where l.effective_from > v_now), 0),
      'by_source', (select pg_catalog.jsonb_object_agg(s.source, coalesce(
                      (select sum(l.remaining) from live l where l.source = s.source and l.effective_from <= v_now), 0))
                    from pg_catalog.unnest(enum_range(null::public.credit_source)) as s(source)),
      'next_expiry', (select pg_catalog.jsonb_build_object('at', n.expires_at, 'credits', n.credits) from next_expiry n),
      'recent', coalesce((
        select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                 'at', r.created_at, 'kind', r.kind, 'amount', r.amount, 'balance_after', r.balance_after,
                 'source', r.source, 'event', r.event_code, 'request_id', r.request_id, 'reason', r.reason)
               order by r.id desc)
        from (select l.*, g.source from public.credit_ledger l join public.credit_grants g on g.id = l.grant_id
              where l.organization_id = p_organization_id order by l.id desc limit 20) r), '[]'::jsonb)));
end;
$$;

revoke execute on function billing.get_credit_balance(uuid) from public, anon;
grant execute on function billing.get_credit_balance(uuid) to authenticated, service_role;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

create policy "Signed-in users can read the credit events"
  on public.credit_events for select to authenticated
  using (true);

create policy "Members can read their organization's credit grants"
  on public.credit_grants for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

create policy "Members can read their organization's credit charges"
  on public.credit_charges for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

create policy "Members can read their organization's credit ledger"
  on public.credit_ledger for select to authenticated
  using (organization_id in (select billing.member_organization_ids()));

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * Charges p_quantity units of a credit event to the organization, all of it or nothing: charged,
 * the credits, the balance after, the charge and the grants it was drawn from. service_role.
 */
create function public.consume_credits(
  p_organization_id uuid,
  p_event text,
  p_quantity bigint default 1,
  p_request_id text default null,
  out charged boolean,
  out credits bigint,
  out balance bigint,
  out charge_id uuid,
  out grants jsonb
)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_answer record;
begin
  v_answer := billing.consume_credits(p_organization_id, p_event, p_quantity, p_request_id);
  charged := v_answer.charged;
  credits := v_answer.credits;
  balance := v_answer.balance;
  charge_id := v_answer.charge_id;
  grants := v_answer.grants;
end;
$$;

revoke execute on function public.consume_credits(uuid, text, bigint, text) from public, anon, authenticated;
grant execute on function public.consume_credits(uuid, text, bigint, text) to service_role;
comment on function public.consume_credits(uuid, text, bigint, text) is 'Charges a credit event to an organization from its grants in precedence order, all or nothing; a repeated request id is charged once. service_role only.';

/**
 * Gives a charge back to the grants it came from: credits is what is still charged (0), with the
 * balance after. A second release gives nothing more. service_role.
 */
create function public.release_credits(
  p_organization_id uuid,
  p_request_id text,
  out charged boolean,
  out credits bigint,
  out balance bigint,
  out charge_id uuid,
  out grants jsonb
)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_answer record;
begin
  v_answer := billing.adjust_charge('release_credits', p_organization_id, p_request_id, 0);
  charged := v_answer.charged;
  credits := v_answer.credits;
  balance := v_answer.balance;
  charge_id := v_answer.charge_id;
  grants := v_answer.grants;
end;
$$;

revoke execute on function public.release_credits(uuid, text) from public, anon, authenticated;
grant execute on function public.release_credits(uuid, text) to service_role;
comment on function public.release_credits(uuid, text) is 'Gives a charge of consume_credits back to the grants it came from (a lapsed grant lapses again). service_role only.';

/** The organization's credits: balance by source, the next expiry, the last movements. */
create function public.get_credit_balance(p_organization_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return billing.get_credit_balance(p_organization_id);
end;
$$;

revoke execute on function public.get_credit_balance(uuid) from public, anon;
grant execute on function public.get_credit_balance(uuid) to authenticated, service_role;
comment on function public.get_credit_balance(uuid) is 'An organization''s credits: balance by source, pending, the next expiry and its amount, the last 20 movements. Members and service_role.';

/**
 * Starts the checkout of a credit pack: the signed-in owner or admin of the organization buys an
 * active pack once, through a provider. A thin wrapper: billing.create_credit_pack_order does the
 * work and checks who is calling.
 */
create function public.create_credit_pack_order(p_organization_id uuid, p_credit_pack_code text, p_provider text)
returns setof billing.checkout_order
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return query select * from billing.create_credit_pack_order(p_organization_id, p_credit_pack_code, p_provider);
end;
$$;
revoke execute on function public.create_credit_pack_order(uuid, text, text) from public, anon;
grant execute on function public.create_credit_pack_order(uuid, text, text) to authenticated;
comment on function public.create_credit_pack_order(uuid, text, text) is 'Starts the checkout of a credit pack: the signed-in owner or admin of the organization buys an active pack once, through a provider.';

-- =================================================================================================
-- 6. Jobs
-- =================================================================================================

insert into billing.jobs (name, schedule, command, worker, doc) values
  ('credits-expire', '*/5 * * * *', 'select billing.job_expire_credits()', null,
   'Expires into the ledger what is left of credit grants that lapsed (billing.expire_credits_batch).');
