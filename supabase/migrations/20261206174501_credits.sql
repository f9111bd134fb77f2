-- credits: drafted by `npm run db:diff -- credits` from the difference between the database the
-- migrations build and the one supabase/schemas/ builds (supabase db diff, pg-delta). The schema
-- files say what the database is; this file is how a deployed project gets there.
--
-- Added by hand, each with a comment saying why, only what a diff cannot know:
--   - backfills (`update ...`) for new columns and changed rules;
--   - renames (a diff sees a drop and an add, and the data would be lost);
--   - new enum values, in a migration file of their own (a value cannot be used in the
--     transaction that adds it);
--   - data fixes.
--
-- What this migration does: the credits module (supabase/schemas/13_credits.sql): the credit
-- events, grants, charges and the append-only ledger; consume_credits, release_credits,
-- settle_credits, operator_grant_credits, get_credit_balance; a plan's credits_per_period granted
-- by a trigger on subscriptions; the credits-expire job; billing_settings.credit_source_order and
-- credits_low_threshold; the new plan feature keys (credits_per_period, credits_low_threshold,
-- <metric>_overage_event); get_entitlements answers the credits an organization can spend.
--
-- Added by hand: the credits-expire row of billing.jobs (data: a diff sees only the table), and
-- billing.schedule_jobs() to schedule it where pg_cron is installed.
-- Edited by hand: credit_charges.created_at and credit_grants.effective_from in their declared
-- place (the draft put the columns whose default calls billing.now() last).

SET local check_function_bodies = off;

CREATE TABLE "public"."credit_charges" (
  "id"              uuid                     NOT NULL DEFAULT gen_random_uuid(),
  "organization_id" uuid                     NOT NULL,
  "request_id"      text,
  "event_code"      text                     NOT NULL,
  "quantity"        bigint                   NOT NULL,
  "credits"         bigint                   NOT NULL,
  "charged"         bigint                   NOT NULL,
  "created_at"      timestamp with time zone NOT NULL DEFAULT billing.now(),
  "updated_at"      timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "credit_charges_charged_range" CHECK ((charged >= 0)),
  CONSTRAINT "credit_charges_credits_positive" CHECK ((credits > 0)),
  CONSTRAINT "credit_charges_pkey" PRIMARY KEY (id),
  CONSTRAINT "credit_charges_quantity_positive" CHECK ((quantity > 0)),
  CONSTRAINT "credit_charges_request_id_check" CHECK (((length(request_id) >= 1) AND (length(request_id) <= 200)))
);

ALTER TABLE "public"."credit_charges"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."credit_charges" FROM "anon";

CREATE TABLE "public"."credit_events" (
  "code"             text                     NOT NULL,
  "name"             text                     NOT NULL,
  "credits_per_unit" numeric(20,6)            NOT NULL,
  "active"           boolean                  NOT NULL DEFAULT true,
  "created_at"       timestamp with time zone NOT NULL DEFAULT now(),
  "updated_at"       timestamp with time zone NOT NULL DEFAULT now(),
  CONSTRAINT "credit_events_code_check" CHECK ((code ~ '^[a-z][a-z0-9_]{0,62}$'::text)),
  CONSTRAINT "credit_events_credits_per_unit_positive" CHECK ((credits_per_unit > (0)::numeric)),
  CONSTRAINT "credit_events_name_check" CHECK (((length(btrim(name)) >= 1) AND (length(btrim(name)) <= 200))),
  CONSTRAINT "credit_events_pkey" PRIMARY KEY (code)
);

ALTER TABLE "public"."credit_events"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."credit_events" FROM "anon";

CREATE TABLE "public"."credit_grants" (
  "id"              uuid NOT NULL DEFAULT gen_random_uuid(),
  "organization_id" uuid NOT NULL,
  CONSTRAINT "credit_grants_pkey" PRIMARY KEY (id)
);

ALTER TABLE "public"."credit_grants"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."credit_grants" FROM "anon";

CREATE TABLE "public"."credit_ledger" (
  "id"              bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  "organization_id" uuid   NOT NULL,
  "grant_id"        uuid   NOT NULL,
  CONSTRAINT "credit_ledger_pkey" PRIMARY KEY (id)
);

ALTER TABLE "public"."credit_ledger"
  ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON TABLE "public"."credit_ledger" FROM "anon";

REVOKE ALL ON SEQUENCE "public"."credit_ledger_id_seq" FROM "anon";

REVOKE ALL ON SEQUENCE "public"."credit_ledger_id_seq" FROM "authenticated";

CREATE TYPE "public"."credit_movement" AS ENUM (
  'granted',
  'consumed',
  'released',
  'expired',
  'revoked'
);

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "kind" public.credit_movement NOT NULL;

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "amount" bigint NOT NULL;

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "balance_after" bigint NOT NULL;

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "charge_id" uuid;

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "request_id" text;

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "event_code" text;

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "actor_kind" public.actor_kind NOT NULL DEFAULT 'system'::public.actor_kind;

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "actor" text;

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "reason" text;

CREATE TYPE "public"."credit_source" AS ENUM (
  'purchase',
  'subscription',
  'promotion',
  'operator'
);

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "credit_source_order" public.credit_source[] NOT NULL DEFAULT '{purchase,subscription,promotion,operator}'::public.credit_source[];

ALTER TABLE "public"."billing_settings"
  ADD COLUMN "credits_low_threshold" bigint;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "source" public.credit_source NOT NULL;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "amount" bigint NOT NULL;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "remaining" bigint NOT NULL;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "priority" integer NOT NULL DEFAULT 0;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "effective_from" timestamp WITH time zone NOT NULL DEFAULT billing.now();

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "expires_at" timestamp WITH time zone;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "order_id" uuid;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "payment_event_id" uuid;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "subscription_id" uuid;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "period_start" timestamp WITH time zone;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "reason" text;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "created_by" text;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "dedupe_key" text;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "expired_at" timestamp WITH time zone;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "revoked_at" timestamp WITH time zone;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "created_at" timestamp WITH time zone NOT NULL DEFAULT now();

CREATE OR REPLACE FUNCTION billing.add_credit_grant (
  p_organization_id  uuid,
  p_source           public.credit_source,
  p_amount           bigint,
  p_expires_at       timestamp with time zone DEFAULT NULL::timestamp WITH time zone,
  p_reason           text                     DEFAULT NULL::text,
  p_dedupe_key       text                     DEFAULT NULL::text,
  p_actor_kind       public.actor_kind        DEFAULT 'system'::public.actor_kind,
  p_order_id         uuid                     DEFAULT NULL::uuid,
  p_payment_event_id uuid                     DEFAULT NULL::uuid,
  p_subscription_id  uuid                     DEFAULT NULL::uuid,
  p_period_start     timestamp with time zone DEFAULT NULL::timestamp WITH time zone,
  p_effective_from   timestamp with time zone DEFAULT NULL::timestamp WITH time zone
)
  RETURNS public.credit_grants
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.adjust_charge (
  p_function        text,
  p_organization_id uuid,
  p_request_id      text,
  p_credits         bigint,
  OUT               charged boolean,
  OUT               credits bigint,
  OUT               balance bigint,
  OUT               charge_id uuid,
  OUT               grants jsonb
)
  RETURNS record
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
      perform billing.draw_credits(v_charge, v_delta);
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
$function$;

CREATE OR REPLACE FUNCTION billing.available_credits (
  p_organization_id uuid
)
  RETURNS bigint
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
begin
  return coalesce((
    select sum(g.remaining)::bigint from public.credit_grants g
    where g.organization_id = p_organization_id and g.remaining > 0
      and g.effective_from <= v_now and (g.expires_at is null or g.expires_at > v_now)), 0);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.charge_grants (
  p_charge_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.check_credit_request_id (
  p_function   text,
  p_request_id text
)
  RETURNS void
  LANGUAGE plpgsql
  IMMUTABLE
  SET search_path TO ''
  AS $function$
begin
  if p_request_id is not null and length(p_request_id) not between 1 and 200 then
    raise exception '%: request id must be 1 to 200 characters', p_function using errcode = 'invalid_parameter_value';
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.consume_credits (
  p_organization_id uuid,
  p_event           text,
  p_quantity        bigint,
  p_request_id      text,
  OUT               charged boolean,
  OUT               credits bigint,
  OUT               balance bigint,
  OUT               charge_id uuid,
  OUT               grants jsonb
)
  RETURNS record
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_event public.credit_events;
  v_charge public.credit_charges;
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

  perform billing.lock_credits(p_organization_id);
  if p_request_id is not null then
    select c.* into v_charge from public.credit_charges c
    where c.organization_id = p_organization_id and c.request_id = p_request_id;
    if v_charge.id is not null then
      if v_charge.event_code <> p_event or v_charge.quantity <> p_quantity then
        raise exception 'consume_credits: request id % was charged for % x % already', p_request_id,
          v_charge.quantity, v_charge.event_code using errcode = 'invalid_parameter_value';
      end if;
      -- A retry: the first answer, charged once.
      charged := true;
      credits := v_charge.credits;
      balance := billing.available_credits(p_organization_id);
      charge_id := v_charge.id;
      grants := billing.charge_grants(v_charge.id);
      return;
    end if;
  end if;

  perform billing.expire_lapsed_grants(p_organization_id);
  if billing.available_credits(p_organization_id) < credits then
    charged := false;
    balance := billing.available_credits(p_organization_id);
    grants := '[]'::jsonb;
    return;
  end if;
  insert into public.credit_charges (organization_id, request_id, event_code, quantity, credits, charged)
  values (p_organization_id, p_request_id, p_event, p_quantity, credits, credits)
  returning * into v_charge;
  perform billing.draw_credits(v_charge, credits);
  charged := true;
  balance := billing.available_credits(p_organization_id);
  charge_id := v_charge.id;
  grants := billing.charge_grants(v_charge.id);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.credit_ledger_balance (
  p_organization_id uuid
)
  RETURNS bigint
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.credit_ledger_problems()
  RETURNS TABLE (
    organization_id uuid,
    grant_id        uuid,
    problem         text
  )
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.credits_low_threshold (
  p_organization_id uuid
)
  RETURNS bigint
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_features jsonb := (billing.effective_plan(p_organization_id, billing.now())).features;
begin
  if v_features ? 'credits_low_threshold' then
    return (v_features ->> 'credits_low_threshold')::bigint;
  end if;
  return (select s.credits_low_threshold from public.billing_settings s where s.id);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.draw_credits (
  p_charge  public.credit_charges,
  p_credits bigint
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_order public.credit_source[] := (select s.credit_source_order from public.billing_settings s where s.id);
  v_before bigint := billing.credit_ledger_balance(p_charge.organization_id);
  v_left bigint := p_credits;
  v_take bigint;
  v_grant public.credit_grants;
  v_ledger_id bigint;
begin
  for v_grant in
    select g.* from public.credit_grants g
    where g.organization_id = p_charge.organization_id and g.remaining > 0
      and g.effective_from <= v_now and (g.expires_at is null or g.expires_at > v_now)
    order by pg_catalog.array_position(v_order, g.source), g.priority, g.expires_at nulls last, g.created_at, g.id
    for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants g set remaining = g.remaining - v_take where g.id = v_grant.id
    returning g.* into v_grant;
    v_ledger_id := billing.record_credit_movement(v_grant, 'consumed', -v_take, p_charge);
    v_left := v_left - v_take;
  end loop;
  if v_left > 0 then
    raise exception 'draw_credits: % credits short for charge %', v_left, p_charge.id
      using errcode = 'check_violation';
  end if;
  perform billing.queue_credits_low(p_charge.organization_id, v_before, v_before - p_credits, v_ledger_id);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.expire_credits_batch (
  p_limit integer
)
  RETURNS integer
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.expire_lapsed_grants (
  p_organization_id uuid
)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.get_credit_balance (
  p_organization_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.grant_period_credits()
  RETURNS TRIGGER
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
declare
  v_per_period bigint;
  v_granted bigint;
begin
  if new.current_period_start is null or new.current_period_end is null then
    return null;
  end if;
  if tg_op = 'UPDATE' and new.current_period_start = old.current_period_start
     and new.current_period_end <> old.current_period_end then
    update public.credit_grants g set expires_at = new.current_period_end
    where g.subscription_id = new.id and g.period_start = new.current_period_start and g.source = 'subscription'
      and g.expired_at is null and g.expires_at is distinct from new.current_period_end;
  end if;
  if new.status <> 'active' or new.current_period_end <= billing.now() then
    return null;
  end if;
  select (p.features ->> 'credits_per_period')::bigint into v_per_period
  from public.billing_plans p where p.id = new.plan_id;
  if coalesce(v_per_period, 0) <= 0 then
    return null;
  end if;
  select coalesce(sum(g.amount), 0) into v_granted
  from public.credit_grants g
  where g.subscription_id = new.id and g.period_start = new.current_period_start and g.source = 'subscription';
  if v_granted >= v_per_period then
    return null;
  end if;
  perform billing.add_credit_grant(new.organization_id, 'subscription', v_per_period - v_granted,
    p_expires_at => new.current_period_end,
    p_reason => 'credits of the period',
    p_dedupe_key => pg_catalog.format('period:%s:%s:%s', new.id, extract(epoch from new.current_period_start), new.plan_id),
    p_subscription_id => new.id,
    p_period_start => new.current_period_start,
    p_effective_from => new.current_period_start);
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.job_expire_credits (
  p_limit integer DEFAULT 1000
)
  RETURNS integer
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  return billing.run_job('credits-expire', 'billing.expire_credits_batch(integer)', p_limit);
end;
$function$;

CREATE OR REPLACE FUNCTION billing.lock_credits (
  p_organization_id uuid
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('supabill.credits:' || p_organization_id::text, 0));
end;
$function$;

CREATE OR REPLACE FUNCTION billing.operator_grant_credits (
  p_organization_id uuid,
  p_amount          bigint,
  p_expires_at      timestamp with time zone,
  p_reason          text,
  p_source          public.credit_source     DEFAULT 'operator'::public.credit_source
)
  RETURNS public.credit_grants
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.queue_credits_low (
  p_organization_id uuid,
  p_before          bigint,
  p_after           bigint,
  p_ledger_id       bigint
)
  RETURNS void
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_threshold bigint;
begin
  if p_after >= p_before then
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
$function$;

CREATE OR REPLACE FUNCTION billing.record_credit_movement (
  p_grant      public.credit_grants,
  p_kind       public.credit_movement,
  p_amount     bigint,
  p_charge     public.credit_charges  DEFAULT NULL::public.credit_charges,
  p_actor_kind public.actor_kind      DEFAULT 'system'::public.actor_kind,
  p_reason     text                   DEFAULT NULL::text
)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.return_credits (
  p_charge  public.credit_charges,
  p_credits bigint
)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
declare
  v_now timestamptz := billing.now();
  v_left bigint := p_credits;
  v_part record;
  v_take bigint;
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
    if v_grant.expires_at <= v_now or v_grant.revoked_at is not null then
      perform billing.record_credit_movement(v_grant, 'released', v_take, p_charge);
      perform billing.record_credit_movement(v_grant,
        case when v_grant.revoked_at is not null then 'revoked' else 'expired' end::public.credit_movement,
        -v_take, p_charge);
    else
      update public.credit_grants g set remaining = g.remaining + v_take where g.id = v_grant.id
      returning g.* into v_grant;
      perform billing.record_credit_movement(v_grant, 'released', v_take, p_charge);
    end if;
    v_left := v_left - v_take;
  end loop;
  return p_credits - v_left;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.revoke_credits (
  p_grant_id   uuid,
  p_amount     bigint,
  p_reason     text,
  p_actor_kind public.actor_kind DEFAULT 'system'::public.actor_kind
)
  RETURNS bigint
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
  if v_take = 0 then
    return 0;
  end if;
  update public.credit_grants g set remaining = g.remaining - v_take, revoked_at = coalesce(g.revoked_at, billing.now())
  where g.id = p_grant_id
  returning g.* into v_grant;
  perform billing.record_credit_movement(v_grant, 'revoked', -v_take, null, p_actor_kind, p_reason);
  return v_take;
end;
$function$;

CREATE OR REPLACE FUNCTION billing.settle_credits (
  p_organization_id uuid,
  p_request_id      text,
  p_credits         bigint,
  OUT               charged boolean,
  OUT               credits bigint,
  OUT               balance bigint,
  OUT               charge_id uuid,
  OUT               grants jsonb
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION billing.validate_plan_features (
  p_features jsonb
)
  RETURNS void
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  v_key text;
  v_value jsonb;
  v_window text;
begin
  if p_features is null or pg_catalog.jsonb_typeof(p_features) <> 'object' then
    raise exception 'plan features must be a JSON object'
      using errcode = 'invalid_parameter_value';
  end if;

  for v_key, v_value in select e.key, e.value from pg_catalog.jsonb_each(p_features) as e loop
    if v_key in ('credits_per_period', 'credits_low_threshold') then
      if not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a number of credits must be a non-negative integer, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '_overage_event$' then
      if v_key !~ '^[a-z][a-z0-9_]*_overage_event$' or pg_catalog.jsonb_typeof(v_value) <> 'string' then
        raise exception 'plan features key "%": an overage is <metric>_overage_event naming a credit event, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
      if not exists (select from public.credit_events e where e.code = v_value #>> '{}') then
        raise exception 'plan features key "%": no credit event "%" (public.credit_events)', v_key, v_value #>> '{}'
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '_per_[^_]+$' then
      v_window := pg_catalog.substring(v_key, '_per_([^_]+)$');
      if v_key !~ '^[a-z][a-z0-9_]*_per_[a-z]+$' then
        raise exception 'plan features key "%": a metered limit is <metric>_per_<window> in lowercase snake_case', v_key
          using errcode = 'invalid_parameter_value';
      end if;
      if v_window not in ('minute', 'hour', 'day', 'month') then
        raise exception 'plan features key "%": unknown window "%" (use minute, hour, day or month)', v_key, v_window
          using errcode = 'invalid_parameter_value';
      end if;
      if pg_catalog.jsonb_typeof(v_value) <> 'null' and not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a metered limit must be a non-negative integer or null, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    elsif v_key ~ '^max_' then
      if v_key !~ '^max_[a-z][a-z0-9_]*$' then
        raise exception 'plan features key "%": a count limit is max_<thing> in lowercase snake_case', v_key
          using errcode = 'invalid_parameter_value';
      end if;
      if not billing.is_non_negative_integer(v_value) then
        raise exception 'plan features key "%": a count limit must be a non-negative integer, got %', v_key, v_value
          using errcode = 'invalid_parameter_value';
      end if;
    end if;
  end loop;
end;
$function$;

CREATE OR REPLACE FUNCTION public.consume_credits (
  p_organization_id uuid,
  p_event           text,
  p_quantity        bigint          DEFAULT 1,
  p_request_id      text            DEFAULT NULL::text,
  OUT               charged boolean,
  OUT               credits bigint,
  OUT               balance bigint,
  OUT               charge_id uuid,
  OUT               grants jsonb
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

REVOKE ALL ON FUNCTION "public"."consume_credits"(uuid, text, bigint, text) FROM PUBLIC, "anon", "authenticated";

CREATE OR REPLACE FUNCTION public.get_credit_balance (
  p_organization_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
begin
  return billing.get_credit_balance(p_organization_id);
end;
$function$;

REVOKE ALL ON FUNCTION "public"."get_credit_balance"(uuid) FROM PUBLIC, "anon";

CREATE OR REPLACE FUNCTION public.get_entitlements (
  p_organization_id uuid
)
  RETURNS jsonb
  LANGUAGE plpgsql
  STABLE
  SET search_path TO ''
  AS $function$
declare
  e record;
begin
  perform billing.require_role(p_organization_id, enum_range(null::public.member_role));
  e := billing.effective_plan(p_organization_id, billing.now());
  return pg_catalog.jsonb_build_object(
    'organization_id', e.organization_id,
    'plan_code', e.plan_code,
    'tier', coalesce(e.tier, 'free'),
    'status', coalesce(e.subscription_status::text, 'free'),
    'reason', e.reason,
    'in_grace', e.in_grace,
    'current_period_end', e.current_period_end,
    'grace_ends_at', e.grace_ends_at,
    'features', coalesce(e.features, '{}'::jsonb),
    'credits', billing.available_credits(p_organization_id));
end;
$function$;

CREATE OR REPLACE FUNCTION public.release_credits (
  p_organization_id uuid,
  p_request_id      text,
  OUT               charged boolean,
  OUT               credits bigint,
  OUT               balance bigint,
  OUT               charge_id uuid,
  OUT               grants jsonb
)
  RETURNS record
  LANGUAGE plpgsql
  SET search_path TO ''
  AS $function$
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
$function$;

REVOKE ALL ON FUNCTION "public"."release_credits"(uuid, text) FROM PUBLIC, "anon", "authenticated";

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_credit_source_order_complete"
    CHECK (((cardinality(credit_source_order) = 4) AND (credit_source_order @> '{purchase,subscription,promotion,operator}'::public.credit_source[])));

ALTER TABLE "public"."billing_settings"
  ADD CONSTRAINT "billing_settings_credits_low_threshold_not_negative" CHECK ((credits_low_threshold >= 0));

ALTER TABLE "public"."credit_charges"
  ADD CONSTRAINT "credit_charges_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE RESTRICT;

ALTER TABLE "public"."credit_charges"
  ADD CONSTRAINT "credit_charges_event_code_fkey" FOREIGN KEY (event_code) REFERENCES public.credit_events(code) ON UPDATE CASCADE ON DELETE RESTRICT;

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_amount_positive" CHECK ((amount > 0));

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_dedupe_key_check" CHECK (((length(dedupe_key) >= 1) AND (length(dedupe_key) <= 300)));

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_dedupe_key_key" UNIQUE (dedupe_key);

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_order_id_fkey" FOREIGN KEY (order_id) REFERENCES public.orders(id) ON DELETE RESTRICT;

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE RESTRICT;


ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_reason_check" CHECK (((length(btrim(reason)) >= 1) AND (length(btrim(reason)) <= 500)));

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_remaining_range" CHECK (((remaining >= 0) AND (remaining <= amount)));

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_subscription_has_period" CHECK (((source <> 'subscription'::public.credit_source) OR ((subscription_id IS NOT NULL) AND (period_start IS
    NOT NULL))));

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_subscription_id_fkey" FOREIGN KEY (subscription_id) REFERENCES public.subscriptions(id) ON DELETE RESTRICT;

ALTER TABLE "public"."credit_ledger"
  ADD CONSTRAINT "credit_ledger_balance_not_negative" CHECK ((balance_after >= 0));

ALTER TABLE "public"."credit_ledger"
  ADD CONSTRAINT "credit_ledger_charge_id_fkey" FOREIGN KEY (charge_id) REFERENCES public.credit_charges(id) ON DELETE RESTRICT;

ALTER TABLE "public"."credit_ledger"
  ADD CONSTRAINT "credit_ledger_grant_id_fkey" FOREIGN KEY (grant_id) REFERENCES public.credit_grants(id) ON DELETE RESTRICT;

ALTER TABLE "public"."credit_ledger"
  ADD CONSTRAINT "credit_ledger_organization_id_fkey" FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE RESTRICT;

ALTER TABLE "public"."credit_ledger"
  ADD CONSTRAINT "credit_ledger_sign" CHECK (
CASE kind
    WHEN 'granted'::public.credit_movement THEN (amount > 0)
    WHEN 'released'::public.credit_movement THEN (amount > 0)
    ELSE (amount < 0)
END);

CREATE INDEX credit_charges_event_code_idx ON public.credit_charges USING btree (event_code);

CREATE UNIQUE INDEX credit_charges_request_unique ON public.credit_charges USING btree (organization_id, request_id)
  WHERE (request_id IS NOT NULL);

CREATE INDEX credit_grants_expiry_idx ON public.credit_grants USING btree (expires_at)
  WHERE ((expired_at IS NULL) AND (expires_at IS NOT NULL));

CREATE INDEX credit_grants_live_idx ON public.credit_grants USING btree (organization_id, expires_at, created_at)
  WHERE (remaining > 0);

CREATE INDEX credit_grants_order_id_idx ON public.credit_grants USING btree (order_id);

CREATE INDEX credit_grants_organization_id_idx ON public.credit_grants USING btree (organization_id);

CREATE INDEX credit_grants_payment_event_id_idx ON public.credit_grants USING btree (payment_event_id)
  WHERE (payment_event_id IS NOT NULL);

CREATE INDEX credit_grants_subscription_id_idx ON public.credit_grants USING btree (subscription_id, period_start);

CREATE INDEX credit_ledger_charge_id_idx ON public.credit_ledger USING btree (charge_id)
  WHERE (charge_id IS NOT NULL);

CREATE INDEX credit_ledger_grant_id_idx ON public.credit_ledger USING btree (grant_id);

CREATE INDEX credit_ledger_organization_id_idx ON public.credit_ledger USING btree (organization_id, id);

CREATE TRIGGER credit_events_touch_updated_at
  BEFORE UPDATE ON public.credit_events
  FOR EACH ROW
  EXECUTE FUNCTION billing.touch_updated_at();

CREATE TRIGGER credit_ledger_immutable
  BEFORE DELETE OR UPDATE ON public.credit_ledger
  FOR EACH ROW
  EXECUTE FUNCTION billing.reject_change();

CREATE TRIGGER credit_ledger_no_truncate
  BEFORE TRUNCATE ON public.credit_ledger
  FOR EACH STATEMENT
  EXECUTE FUNCTION billing.reject_change();

CREATE TRIGGER subscriptions_grant_period_credits
  AFTER INSERT OR UPDATE OF status, plan_id, current_period_start, current_period_end ON public.subscriptions
  FOR EACH ROW
  EXECUTE FUNCTION billing.grant_period_credits();

CREATE POLICY "Members can read their organization's credit charges" ON "public"."credit_charges"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids() AS member_organization_ids)));

CREATE POLICY "Signed-in users can read the credit events" ON "public"."credit_events"
  FOR SELECT
  TO "authenticated"
  USING (true);

CREATE POLICY "Members can read their organization's credit grants" ON "public"."credit_grants"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids() AS member_organization_ids)));

CREATE POLICY "Members can read their organization's credit ledger" ON "public"."credit_ledger"
  FOR SELECT
  TO "authenticated"
  USING ((organization_id IN ( SELECT billing.member_organization_ids() AS member_organization_ids)));

COMMENT ON COLUMN "public"."billing_settings"."credit_source_order" IS 'The order consume_credits draws grants in, by source. Default {purchase,subscription,promotion,operator}: bought credits (which never lapse) first.';

COMMENT ON COLUMN "public"."billing_settings"."credits_low_threshold" IS 'Balance under which a credits_low notification is queued, once per crossing; a plan''s credits_low_threshold feature overrides it. Null: no warning.';

COMMENT ON FUNCTION "public"."consume_credits"(uuid, text, bigint, text) IS 'Charges a credit event to an organization from its grants in precedence order, all or nothing; a repeated request id is charged once. service_role only.';

COMMENT ON FUNCTION "public"."get_credit_balance"(uuid) IS 'An organization''s credits: balance by source, pending, the next expiry and its amount, the last 20 movements. Members and service_role.';

COMMENT ON FUNCTION "public"."get_entitlements"(uuid) IS 'What an organization may use now: plan, tier, status, reason, grace, features and the credits it can spend. Members and service_role.';

COMMENT ON FUNCTION "public"."release_credits"(uuid, text) IS 'Gives a charge of consume_credits back to the grants it came from (a lapsed grant lapses again). service_role only.';

COMMENT ON TABLE "public"."credit_charges" IS 'Charges of consume_credits: priced credits, and what is still charged after settlement and release.';

COMMENT ON TABLE "public"."credit_events" IS 'What one unit of an action costs in credits (consume_credits prices a charge with it).';

COMMENT ON TABLE "public"."credit_grants" IS 'Credits an organization received (purchase, subscription, promotion, operator): amount, remaining, expiry, and what created them.';

COMMENT ON TABLE "public"."credit_ledger" IS 'Append-only log of every credit movement (granted, consumed, released, expired, revoked) with the balance after it.';

REVOKE ALL
  ON FUNCTION "billing"."add_credit_grant"(uuid, public.credit_source, bigint, timestamp WITH time zone, text, text, public.actor_kind, uuid, uuid, uuid, timestamp
    WITH time zone, timestamp WITH time zone)
  FROM PUBLIC;

GRANT EXECUTE
  ON FUNCTION "billing"."add_credit_grant"(uuid, public.credit_source, bigint, timestamp WITH time zone, text, text, public.actor_kind, uuid, uuid, uuid, timestamp
    WITH time zone, timestamp WITH time zone)
  TO "service_role";

REVOKE ALL ON FUNCTION "billing"."adjust_charge"(text, uuid, text, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."adjust_charge"(text, uuid, text, bigint) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."available_credits"(uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."available_credits"(uuid) TO "authenticated", "service_role";

REVOKE ALL ON FUNCTION "billing"."charge_grants"(uuid) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."check_credit_request_id"(text, text) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."consume_credits"(uuid, text, bigint, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."consume_credits"(uuid, text, bigint, text) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."credit_ledger_balance"(uuid) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."credit_ledger_problems"() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."credit_ledger_problems"() TO "service_role";

REVOKE ALL ON FUNCTION "billing"."credits_low_threshold"(uuid) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."draw_credits"(public.credit_charges, bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."expire_credits_batch"(integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."expire_credits_batch"(integer) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."expire_lapsed_grants"(uuid) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."get_credit_balance"(uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."get_credit_balance"(uuid) TO "authenticated", "service_role";

REVOKE ALL ON FUNCTION "billing"."grant_period_credits"() FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."job_expire_credits"(integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."lock_credits"(uuid) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."operator_grant_credits"(uuid, bigint, timestamp WITH time zone, text, public.credit_source) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."operator_grant_credits"(uuid, bigint, timestamp WITH time zone, text, public.credit_source) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."queue_credits_low"(uuid, bigint, bigint, bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."record_credit_movement"(public.credit_grants, public.credit_movement, bigint, public.credit_charges, public.actor_kind, text) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."return_credits"(public.credit_charges, bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION "billing"."revoke_credits"(uuid, bigint, text, public.actor_kind) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."revoke_credits"(uuid, bigint, text, public.actor_kind) TO "service_role";

REVOKE ALL ON FUNCTION "billing"."settle_credits"(uuid, text, bigint) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION "billing"."settle_credits"(uuid, text, bigint) TO "service_role";

REVOKE ALL ON FUNCTION "public"."consume_credits"(uuid, text, bigint, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."consume_credits"(uuid, text, bigint, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."consume_credits"(uuid, text, bigint, text) TO "service_role";

GRANT EXECUTE ON FUNCTION "public"."get_credit_balance"(uuid) TO "authenticated";

REVOKE ALL ON FUNCTION "public"."get_credit_balance"(uuid) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."get_credit_balance"(uuid) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."get_credit_balance"(uuid) TO "service_role";

REVOKE ALL ON FUNCTION "public"."release_credits"(uuid, text) FROM "postgres";

GRANT EXECUTE ON FUNCTION "public"."release_credits"(uuid, text) TO "postgres";

GRANT EXECUTE ON FUNCTION "public"."release_credits"(uuid, text) TO "service_role";

REVOKE ALL ON SEQUENCE "public"."credit_ledger_id_seq" FROM "postgres";

GRANT SELECT, UPDATE, USAGE ON SEQUENCE "public"."credit_ledger_id_seq" TO "postgres";

REVOKE ALL ON SEQUENCE "public"."credit_ledger_id_seq" FROM "service_role";

GRANT SELECT, UPDATE, USAGE ON SEQUENCE "public"."credit_ledger_id_seq" TO "service_role";

REVOKE ALL ON TABLE "public"."credit_charges" FROM "authenticated";

GRANT SELECT ON TABLE "public"."credit_charges" TO "authenticated";

REVOKE ALL ON TABLE "public"."credit_charges" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."credit_charges" TO "postgres";

REVOKE ALL ON TABLE "public"."credit_charges" FROM "service_role";

GRANT SELECT ON TABLE "public"."credit_charges" TO "service_role";

REVOKE ALL ON TABLE "public"."credit_events" FROM "authenticated";

GRANT SELECT ON TABLE "public"."credit_events" TO "authenticated";

REVOKE ALL ON TABLE "public"."credit_events" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."credit_events" TO "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."credit_events" TO "service_role";

REVOKE ALL ON TABLE "public"."credit_grants" FROM "authenticated";

GRANT SELECT ON TABLE "public"."credit_grants" TO "authenticated";

REVOKE ALL ON TABLE "public"."credit_grants" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."credit_grants" TO "postgres";

REVOKE ALL ON TABLE "public"."credit_grants" FROM "service_role";

GRANT SELECT ON TABLE "public"."credit_grants" TO "service_role";

REVOKE ALL ON TABLE "public"."credit_ledger" FROM "authenticated";

GRANT SELECT ON TABLE "public"."credit_ledger" TO "authenticated";

REVOKE ALL ON TABLE "public"."credit_ledger" FROM "postgres";

GRANT DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE ON TABLE "public"."credit_ledger" TO "postgres";

REVOKE ALL ON TABLE "public"."credit_ledger" FROM "service_role";

GRANT SELECT ON TABLE "public"."credit_ledger" TO "service_role";

CREATE INDEX credit_charges_organization_id_idx ON public.credit_charges USING btree (organization_id, created_at);


ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_expiry_after_start" CHECK (((expires_at IS NULL) OR (expires_at > effective_from)));

ALTER TABLE "public"."credit_ledger"
  ADD COLUMN "created_at" timestamp WITH time zone NOT NULL DEFAULT billing.now();

-- By hand: the expiry job (a row of billing.jobs), scheduled like the others.
insert into billing.jobs (name, schedule, command, worker, doc) values
  ('credits-expire', '*/5 * * * *', 'select billing.job_expire_credits()', null,
   'Expires into the ledger what is left of credit grants that lapsed (billing.expire_credits_batch).');

select billing.schedule_jobs();
