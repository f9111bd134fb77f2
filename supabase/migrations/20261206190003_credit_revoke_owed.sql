-- credit_revoke_owed: drafted by `npm run db:diff -- credit_revoke_owed` from the difference between the database the
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
-- What this migration does: a revoke takes what a grant holds now and owes the rest
-- (credit_grants.revoke_owed), revoked as the grant's unsettled charges give credits back. Before,
-- a full refund of a pack whose credits were all out in a reservation revoked nothing and marked
-- nothing, so releasing the reservation refilled the refunded pack (simulator, seed 11, day 116).
-- A pack refund revokes the refunded share of the grant's amount, not of what it holds. No
-- backfill: the column starts at 0, and no release has these tables yet.

SET local check_function_bodies = off;

ALTER TABLE "public"."credit_grants"
  ADD COLUMN "revoke_owed" bigint NOT NULL DEFAULT 0;

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
$function$;

CREATE OR REPLACE FUNCTION billing.revoke_pack_credits (
  p_captured     public.payment_events,
  p_amount       bigint,
  p_taken_before bigint,
  p_reason       text,
  OUT            grant_id uuid,
  OUT            revoked bigint,
  OUT            granted bigint,
  OUT            used bigint,
  OUT            note text
)
  RETURNS record
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET search_path TO ''
  AS $function$
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
$function$;

ALTER TABLE "public"."credit_grants"
  ADD CONSTRAINT "credit_grants_revoke_owed_not_negative" CHECK ((revoke_owed >= 0));
