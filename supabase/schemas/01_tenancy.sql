-- =================================================================================================
-- supabill: tenancy: organizations, their members and billing profiles, and who may do what
--
-- Organizations (the tenants, with the buyer block of their GST invoices) and their members. Every
-- organization keeps at least one owner. Authorization has one helper, billing.require_role
-- (organization, roles): every function that acts for a signed-in user on an organization asks it.
--
-- Access: members read their organizations and co-members; every write by a signed-in user goes
-- through a function here (create_organization, add/remove_organization_member, set_member_role,
-- update_billing_profile), each a thin security-invoker wrapper in public over its
-- security-definer implementation in billing. service_role bypasses row level security.
--
-- A user owns at most billing_settings.max_owned_organizations organizations (default 3), checked
-- whoever writes the membership (trigger organization_members_owner_limit).
-- =================================================================================================


-- =================================================================================================
-- 1. Types
-- =================================================================================================

-- The member roles (public.member_role) are a foundation type.

-- =================================================================================================
-- 2. Tables
-- =================================================================================================

-- -------------------------------------------------------------------------------------------------
-- organizations
-- -------------------------------------------------------------------------------------------------

/**
 * A tenant: the customer that subscribes, with the buyer block of its GST invoices:
 * billing_name (legal name), gstin (optional, fully validated), address, state_code (the place of
 * supply; derived from the GSTIN when there is one) and billing_country (ISO 3166-1 alpha-2, 'IN'
 * by default; any other country makes invoices exports).
 */
create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) between 1 and 200),
  billing_name text check (billing_name is null or length(btrim(billing_name)) between 1 and 200),
  billing_email text check (billing_email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  gstin text check (gstin ~ '^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$'),
  state_code text check (state_code ~ '^[0-9]{2}$'),
  timezone text not null default 'Asia/Kolkata',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  billing_address_line1 text check (length(btrim(billing_address_line1)) between 1 and 200),
  billing_address_line2 text check (length(btrim(billing_address_line2)) between 1 and 200),
  billing_city text check (length(btrim(billing_city)) between 1 and 100),
  billing_postal_code text check (billing_postal_code ~ '^[A-Za-z0-9][A-Za-z0-9 -]{1,14}$'),
  billing_country text not null default 'IN' check (billing_country ~ '^[A-Z]{2}$'),
  exports_verified boolean not null default false,
  -- When the billing email was confirmed (its confirmation link followed); null: not confirmed, and
  -- billing emails go to the owners and admins instead. A row the service writes directly
  -- (operators, imports) is trusted (the default); the tenant's path, update_billing_profile,
  -- clears it whenever the address changes and sends a confirmation link.
  billing_email_confirmed_at timestamptz default now(),
  constraint organizations_gstin_matches_state
    check (gstin is null or state_code is null or left(gstin, 2) = state_code),
  constraint organizations_gstin_valid check (gstin is null or public.is_valid_gstin(gstin)),
  constraint organizations_state_code_known
    check (state_code ~ '^(0[1-9]|[12][0-9]|3[0-8]|97|99)$'),
  constraint organizations_indian_pin_code
    check (billing_country <> 'IN' or billing_postal_code ~ '^[1-9][0-9]{5}$'),
  constraint organizations_foreign_buyer_has_no_gst_state
    check (billing_country = 'IN' or (gstin is null and state_code is null))
);

grant select on public.organizations to authenticated;

grant select, insert, update, delete on public.organizations to service_role;

alter table public.organizations enable row level security;

-- -------------------------------------------------------------------------------------------------
-- billing.billing_email_confirmations (private)
-- -------------------------------------------------------------------------------------------------

/**
 * One confirmation link per billing email an owner or admin sets (billing.update_billing_profile):
 * a random token (two random uuids, 244 bits) that public.confirm_billing_email accepts until
 * expires_at, and only while the organization's billing email is still this one. Private: only
 * service_role reads it (the sender puts the token in the email, which goes to `email` only), so
 * a member who can read the organization's notifications cannot confirm an address they do not
 * receive mail at.
 */
create table billing.billing_email_confirmations (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  email text not null check (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  token text not null unique default (pg_catalog.replace(gen_random_uuid()::text, '-', '')
                                      || pg_catalog.replace(gen_random_uuid()::text, '-', '')),
  created_at timestamptz not null default billing.now(),
  expires_at timestamptz not null default billing.now() + interval '3 days',
  confirmed_at timestamptz
);

comment on table billing.billing_email_confirmations is 'Confirmation links of billing emails: token, address, expiry; private (service_role).';

create index billing_email_confirmations_organization_id_idx on billing.billing_email_confirmations (organization_id);

grant select, insert, update, delete on billing.billing_email_confirmations to service_role;

comment on table public.organizations is 'A tenant: the customer that subscribes, with the buyer block of its GST invoices.';

create trigger organizations_touch_updated_at
  before update on public.organizations
  for each row execute function billing.touch_updated_at();

create trigger organizations_check_timezone
  before insert or update of timezone on public.organizations
  for each row execute function billing.check_timezone('timezone');

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

comment on column public.organizations.exports_verified is
  'Set by an operator who verified that the buyer''s INR payments are an export of services (a foreign establishment, and RBI permission for INR): only then is an INR order zero-rated.';

-- -------------------------------------------------------------------------------------------------
-- organization_members
-- -------------------------------------------------------------------------------------------------

/**
 * Keeps billing_settings.max_owned_organizations whoever writes the membership: an AFTER trigger,
 * so it counts only rows really written (an insert that ON CONFLICT skips is not counted) and
 * fires for an insert as owner and a promotion to owner; a demotion or any other change passes.
 * Security definer: it counts every owner membership of the user, which the caller's row level
 * security may hide (the same reason as billing.enforce_max_count).
 */
create function billing.enforce_owner_limit()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.role = 'owner' and (tg_op = 'INSERT' or old.role <> 'owner') then
    perform billing.check_owned_organizations(new.user_id, 0);
  end if;
  return null;
end;
$$;
revoke execute on function billing.enforce_owner_limit() from public;

/** Who belongs to an organization, and as what. Every organization keeps at least one owner. */
create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.member_role not null default 'member',
  created_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);

comment on table public.organization_members is 'Who belongs to an organization, and as what (owner, admin, member).';

/** Memberships by user: the foreign key, and the lookup every policy makes. */
create index organization_members_user_id_idx on public.organization_members (user_id);

grant select on public.organization_members to authenticated;

grant select, insert, update, delete on public.organization_members to service_role;

alter table public.organization_members enable row level security;

/**
 * Keeps the last owner: an owner row may be deleted or demoted only while another owner remains.
 * Locks the organization row first, so two concurrent removals of two owners cannot both pass.
 * Allowed when the organization itself is being deleted (its row is gone). Membership rows never
 * move between users or organizations.
 * Security definer: it must lock the organization row and count every owner whatever the
 * caller's privileges (service_role, a security-definer RPC, a cascade from auth.users).
 */
create function billing.protect_last_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and (new.organization_id <> old.organization_id or new.user_id <> old.user_id) then
    raise exception 'a membership cannot move to another organization or user'
      using errcode = 'check_violation';
  end if;

  if old.role <> 'owner' or (tg_op = 'UPDATE' and new.role = 'owner') then
    return case when tg_op = 'DELETE' then old else new end;
  end if;

  perform 1 from public.organizations o where o.id = old.organization_id for update;
  if not found then
    -- The organization is being deleted: its memberships go with it.
    return case when tg_op = 'DELETE' then old else new end;
  end if;

  if not exists (
    select 1
    from public.organization_members m
    where m.organization_id = old.organization_id
      and m.role = 'owner'
      and m.user_id <> old.user_id
  ) then
    raise exception 'cannot remove or demote the last owner of organization %', old.organization_id
      using errcode = 'check_violation',
            hint = 'Make another member owner first.';
  end if;

  return case when tg_op = 'DELETE' then old else new end;
end;
$$;
revoke execute on function billing.protect_last_owner() from public;

create trigger organization_members_protect_last_owner
  before update or delete on public.organization_members
  for each row execute function billing.protect_last_owner();

create trigger organization_members_owner_limit
  after insert or update of role on public.organization_members
  for each row execute function billing.enforce_owner_limit();

/**
 * Serializes ownership changes of p_user_id (an advisory lock until the transaction ends) and
 * refuses (23514, naming the limit) when the user would own more than
 * billing_settings.max_owned_organizations: p_adding is how many owner memberships are about to be
 * written: 1 before create_organization inserts, 0 from the trigger (whose row is already counted).
 * A null limit (or no settings row) allows any number.
 */
create function billing.check_owned_organizations(p_user_id uuid, p_adding integer)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_limit integer;
  v_owned integer;
begin
  if p_user_id is null or p_adding is null or p_adding not in (0, 1) then
    raise exception 'check_owned_organizations needs a user and 0 or 1 memberships to add' using errcode = 'invalid_parameter_value';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('organization_owner:' || p_user_id::text, 0));
  select s.max_owned_organizations into v_limit from public.billing_settings s;
  if v_limit is null then
    return;
  end if;
  select count(*) into v_owned
  from public.organization_members m
  where m.user_id = p_user_id and m.role = 'owner';
  if v_owned + p_adding > v_limit then
    raise exception 'max_owned_organizations limit reached: a user may own at most % organizations and user % already owns %',
      v_limit, p_user_id, v_owned + p_adding - 1  -- without the one being added
      using errcode = 'check_violation',
            hint = 'Make another member owner of one of them and leave it, or ask an operator to raise billing_settings.max_owned_organizations.';
  end if;
end;
$$;
revoke execute on function billing.check_owned_organizations(uuid, integer) from public;

-- =================================================================================================
-- 3. Private functions
-- =================================================================================================

/**
 * The organizations the signed-in user belongs to, optionally only those where the user has one
 * of `p_roles`. Used by policies as `organization_id in (select billing.member_organization_ids())`,
 * which Postgres evaluates once per query.
 * Security definer: it reads organization_members, whose own policy calls it; as invoker that
 * would recurse through RLS.
 */
create function billing.member_organization_ids(p_roles text[] default null)
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return query
  select m.organization_id
    from public.organization_members m
    where m.user_id = (select auth.uid())
      and (p_roles is null or m.role::text = any (p_roles));
end;
$$;
revoke execute on function billing.member_organization_ids(text[]) from public;
grant execute on function billing.member_organization_ids(text[]) to authenticated, service_role;

/** The signed-in user's id, or an error (42501) when nobody is signed in. */
create function billing.require_user()
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  v_user_id uuid := auth.uid();
begin
  if v_user_id is null then
    raise exception 'not signed in' using errcode = 'insufficient_privilege';
  end if;
  return v_user_id;
end;
$$;
revoke execute on function billing.require_user() from public;

/**
 * Who may act on an organization: the signed-in user must hold one of p_roles in it; the error
 * (42501) says what was refused ("only owners and admins of the organization can <p_action>", or
 * "not a member of organization <id>" when every role may), the same for an organization that
 * does not exist (or is null), so nothing leaks about other tenants. Callers on the service side
 * (service_role,
 * the table owner, a DBA in the SQL editor: any role but anon and authenticated) pass for an
 * organization that exists, as 'owner'. Returns the caller's role. The one authorization check:
 * every function acting on an organization for someone calls it.
 * Security definer: reads organization_members without going through its RLS (no recursion).
 */
create function billing.require_role(
  p_organization_id uuid,
  p_roles public.member_role[],
  p_action text default 'do this'
)
returns public.member_role
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_service_side boolean := coalesce(pg_catalog.current_setting('role', true), 'none') not in ('anon', 'authenticated')
                            or auth.role() = 'service_role';
  v_user_id uuid := case when v_service_side then null else billing.require_user() end;
  v_role public.member_role;
begin
  if v_service_side then
    if exists (select 1 from public.organizations o where o.id = p_organization_id) then
      return 'owner'::public.member_role;
    end if;
  else
    select m.role into v_role
    from public.organization_members m
    where m.organization_id = p_organization_id and m.user_id = v_user_id;
    if v_role = any (p_roles) then
      return v_role;
    end if;
  end if;
  if p_roles @> enum_range(null::public.member_role) then
    raise exception 'not a member of organization %', p_organization_id using errcode = 'insufficient_privilege';
  end if;
  raise exception 'only % of the organization can %',
    case when p_roles @> array['owner', 'admin']::public.member_role[] then 'owners and admins' else 'owners' end,
    p_action
    using errcode = 'insufficient_privilege';
end;
$$;
revoke execute on function billing.require_role(uuid, public.member_role[], text) from public;
grant execute on function billing.require_role(uuid, public.member_role[], text) to authenticated, service_role;

/** The roles that manage an organization (owners and admins). */
create function billing.managers()
returns public.member_role[]
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array['owner', 'admin']::public.member_role[];
end;
$$;
revoke execute on function billing.managers() from public;
grant execute on function billing.managers() to authenticated, service_role;

-- -------------------------------------------------------------------------------------------------
-- Implementations of the public functions (security definer; their wrappers are in section 5)
-- -------------------------------------------------------------------------------------------------

/**
 * Creates an organization with the signed-in user as its owner; returns its id. Refused (23514)
 * when the user already owns billing_settings.max_owned_organizations organizations; concurrent
 * creations by one user serialize on the user (billing.check_owned_organizations), and the owner
 * trigger checks the membership again.
 * Security definer: signed-in users have no insert grant on organizations or
 * organization_members; this function is the one way in.
 */
create function billing.create_organization(p_name text)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := billing.require_user();
  v_organization_id uuid;
begin
  if p_name is null or length(btrim(p_name)) not between 1 and 200 then
    raise exception 'organization name must be 1 to 200 characters'
      using errcode = 'invalid_parameter_value';
  end if;
  perform billing.check_owned_organizations(v_user_id, 1);

  insert into public.organizations (name)
  values (btrim(p_name))
  returning id into v_organization_id;

  insert into public.organization_members (organization_id, user_id, role)
  values (v_organization_id, v_user_id, 'owner');

  return v_organization_id;
end;
$$;
revoke execute on function billing.create_organization(text) from public, anon;
grant execute on function billing.create_organization(text) to authenticated, service_role;

/**
 * Adds a user to an organization. Owners and admins only; only an owner can add an owner.
 * Security definer: signed-in users have no write grant on organization_members.
 */
create function billing.add_organization_member(
  p_organization_id uuid,
  p_user_id uuid,
  p_role public.member_role default 'member'
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_caller_role public.member_role := billing.require_role(p_organization_id, billing.managers());
begin
  if p_user_id is null or p_role is null then
    raise exception 'user and role are required' using errcode = 'invalid_parameter_value';
  end if;
  if p_role = 'owner' and v_caller_role <> 'owner' then
    raise exception 'only an owner can add an owner' using errcode = 'insufficient_privilege';
  end if;
  if not exists (select 1 from auth.users u where u.id = p_user_id) then
    raise exception 'no such user %', p_user_id using errcode = 'no_data_found';
  end if;

  insert into public.organization_members (organization_id, user_id, role)
  values (p_organization_id, p_user_id, p_role)
  on conflict (organization_id, user_id) do nothing;
  if not found then
    raise exception 'user % is already a member of the organization', p_user_id
      using errcode = 'unique_violation', hint = 'Use set_member_role to change a member''s role.';
  end if;
end;
$$;
revoke execute on function billing.add_organization_member(uuid, uuid, public.member_role) from public, anon;
grant execute on function billing.add_organization_member(uuid, uuid, public.member_role) to authenticated, service_role;

/**
 * Removes a member. Owners and admins may remove others (an admin never an owner); any member
 * may remove themselves (leave). The last owner can never be removed (enforced by a trigger).
 * Security definer: signed-in users have no write grant on organization_members.
 */
create function billing.remove_organization_member(p_organization_id uuid, p_user_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_caller_id uuid := billing.require_user();
  v_caller_role public.member_role;
  v_target_role public.member_role;
begin
  if p_user_id is distinct from v_caller_id then
    v_caller_role := billing.require_role(p_organization_id, billing.managers());
  end if;

  select m.role into v_target_role
  from public.organization_members m
  where m.organization_id = p_organization_id and m.user_id = p_user_id
  for update;
  if v_target_role is null then
    if p_user_id = v_caller_id then
      -- Not a member of it: same answer as for a stranger's organization.
      raise exception 'only owners and admins of the organization can do this'
        using errcode = 'insufficient_privilege';
    end if;
    raise exception 'user % is not a member of the organization', p_user_id using errcode = 'no_data_found';
  end if;
  if v_target_role = 'owner' and v_caller_role = 'admin' then
    raise exception 'an admin cannot remove an owner' using errcode = 'insufficient_privilege';
  end if;

  delete from public.organization_members m
  where m.organization_id = p_organization_id and m.user_id = p_user_id;
end;
$$;
revoke execute on function billing.remove_organization_member(uuid, uuid) from public, anon;
grant execute on function billing.remove_organization_member(uuid, uuid) to authenticated, service_role;

/**
 * Changes a member's role. Owners and admins only; an admin can neither change an owner's role
 * nor make anyone owner. The last owner can never be demoted (enforced by a trigger).
 * Security definer: signed-in users have no write grant on organization_members.
 */
create function billing.set_member_role(p_organization_id uuid, p_user_id uuid, p_role public.member_role)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_caller_role public.member_role := billing.require_role(p_organization_id, billing.managers());
  v_target_role public.member_role;
begin
  if p_role is null then
    raise exception 'role is required' using errcode = 'invalid_parameter_value';
  end if;

  select m.role into v_target_role
  from public.organization_members m
  where m.organization_id = p_organization_id and m.user_id = p_user_id
  for update;
  if v_target_role is null then
    raise exception 'user % is not a member of the organization', p_user_id using errcode = 'no_data_found';
  end if;
  if v_caller_role = 'admin' and (v_target_role = 'owner' or p_role = 'owner') then
    raise exception 'only an owner can change an owner''s role or make someone owner'
      using errcode = 'insufficient_privilege';
  end if;

  update public.organization_members m
  set role = p_role
  where m.organization_id = p_organization_id and m.user_id = p_user_id
    and m.role <> p_role;
end;
$$;
revoke execute on function billing.set_member_role(uuid, uuid, public.member_role) from public, anon;
grant execute on function billing.set_member_role(uuid, uuid, public.member_role) to authenticated, service_role;

/**
 * Replaces an organization's billing profile (the buyer block of its invoices); returns the
 * organization. Owners and admins of the organization, and service_role. Every problem is named:
 * a GSTIN is checked for length, state code, PAN, entity number, 'Z' and check character; the
 * state code is derived from the GSTIN (a different p_state_code is refused); a buyer outside
 * India has neither GSTIN nor state; an Indian postal code is a 6-digit PIN.
 * A billing email that changes is unconfirmed until the link sent to it (a
 * 'billing_email_confirmation' notification, billing.billing_email_confirmations) is followed
 * (public.confirm_billing_email); until then billing emails go to the owners and admins.
 * Security definer: signed-in users have no update grant on organizations.
 */
create function billing.update_billing_profile(
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
  v_old_email text;
  v_confirmation_id uuid;
begin
  perform billing.require_role(p_organization_id, billing.managers(), 'update its billing profile');

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

  select o.billing_email into v_old_email from public.organizations o where o.id = p_organization_id;
  update public.organizations o
  set billing_name = btrim(p_billing_name),
      billing_email = nullif(btrim(p_billing_email), ''),
      -- A new address is not trusted until its confirmation link is followed.
      billing_email_confirmed_at = case
        when lower(o.billing_email) is not distinct from lower(nullif(btrim(p_billing_email), ''))
        then o.billing_email_confirmed_at end,
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
  if v_result.billing_email is not null and v_result.billing_email_confirmed_at is null
     and lower(v_result.billing_email) is distinct from lower(v_old_email) then
    -- The confirmation link goes to the new address only (billing.notification_recipients).
    insert into billing.billing_email_confirmations (organization_id, email)
    values (p_organization_id, v_result.billing_email)
    returning id into v_confirmation_id;
    insert into public.notifications (organization_id, kind, payload, dedupe_key)
    values (p_organization_id, 'billing_email_confirmation',
            pg_catalog.jsonb_build_object('email', v_result.billing_email, 'confirmation_id', v_confirmation_id),
            pg_catalog.format('billing_email_confirmation:%s', v_confirmation_id));
  end if;
  return v_result;
end;
$$;
revoke execute on function billing.update_billing_profile(uuid, text, text, text, text, text, text, text, text, text) from public, anon;
grant execute on function billing.update_billing_profile(uuid, text, text, text, text, text, text, text, text, text)
  to authenticated, service_role;

-- =================================================================================================
-- 4. Policies
-- =================================================================================================

/** organizations: members read their own. */
create policy "Members can read their organizations"
  on public.organizations for select to authenticated
  using (id in (select billing.member_organization_ids()));

/** organization_members: a user reads their own memberships and their co-members. */
create policy "Members can read the members of their organizations"
  on public.organization_members for select to authenticated
  using (
    user_id = (select auth.uid())
    or organization_id in (select billing.member_organization_ids())
  );

-- =================================================================================================
-- 5. Public functions
-- =================================================================================================

/**
 * Creates an organization with the signed-in user as its owner; returns its id.
 * A thin wrapper: billing.create_organization does the work and checks who is calling.
 */
create function public.create_organization(p_name text)
returns uuid
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return billing.create_organization(p_name);
end;
$$;
revoke execute on function public.create_organization(text) from public, anon;
grant execute on function public.create_organization(text) to authenticated, service_role;
comment on function public.create_organization(text) is
  'Creates an organization with the signed-in user as its owner; returns its id. A user owns at most billing_settings.max_owned_organizations organizations.';

/**
 * Adds a user to an organization: owners and admins, and only an owner adds an owner.
 * A thin wrapper: billing.add_organization_member does the work and checks who is calling.
 */
create function public.add_organization_member(
  p_organization_id uuid,
  p_user_id uuid,
  p_role public.member_role default 'member'
)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform billing.add_organization_member(p_organization_id, p_user_id, p_role);
end;
$$;
revoke execute on function public.add_organization_member(uuid, uuid, public.member_role) from public, anon;
grant execute on function public.add_organization_member(uuid, uuid, public.member_role) to authenticated, service_role;
comment on function public.add_organization_member(uuid, uuid, public.member_role) is
  'Adds a user to an organization: owners and admins, and only an owner adds an owner (who may own at most billing_settings.max_owned_organizations organizations).';

/**
 * Removes a member: owners and admins remove others (an admin never an owner), any member may leave; the last owner stays.
 * A thin wrapper: billing.remove_organization_member does the work and checks who is calling.
 */
create function public.remove_organization_member(p_organization_id uuid, p_user_id uuid)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform billing.remove_organization_member(p_organization_id, p_user_id);
end;
$$;
revoke execute on function public.remove_organization_member(uuid, uuid) from public, anon;
grant execute on function public.remove_organization_member(uuid, uuid) to authenticated, service_role;
comment on function public.remove_organization_member(uuid, uuid) is 'Removes a member: owners and admins remove others (an admin never an owner), any member may leave; the last owner stays.';

/**
 * Changes a member's role: owners and admins (an admin neither changes an owner's role nor makes an owner); the last owner stays.
 * A thin wrapper: billing.set_member_role does the work and checks who is calling.
 */
create function public.set_member_role(p_organization_id uuid, p_user_id uuid, p_role public.member_role)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform billing.set_member_role(p_organization_id, p_user_id, p_role);
end;
$$;
revoke execute on function public.set_member_role(uuid, uuid, public.member_role) from public, anon;
grant execute on function public.set_member_role(uuid, uuid, public.member_role) to authenticated, service_role;
comment on function public.set_member_role(uuid, uuid, public.member_role) is
  'Changes a member''s role: owners and admins (an admin neither changes an owner''s role nor makes an owner); the last owner stays; a new owner may own at most billing_settings.max_owned_organizations organizations.';

/**
 * Replaces an organization's billing profile (the buyer block of its invoices); returns the
 * organization.
 * A thin wrapper: billing.update_billing_profile does the work and checks who is calling.
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
security invoker
set search_path = ''
as $$
begin
  return billing.update_billing_profile(p_organization_id, p_billing_name, p_billing_email, p_gstin, p_address_line1,
                                        p_address_line2, p_city, p_state_code, p_postal_code, p_country);
end;
$$;
revoke execute on function public.update_billing_profile(uuid, text, text, text, text, text, text, text, text, text) from public, anon;
grant execute on function public.update_billing_profile(uuid, text, text, text, text, text, text, text, text, text) to authenticated, service_role;
comment on function public.update_billing_profile(uuid, text, text, text, text, text, text, text, text, text) is 'Replaces an organization''s billing profile (the buyer block of its invoices); returns the organization.';


/**
 * Confirms a billing email with the token of its confirmation link; returns {organization_id,
 * billing_email, confirmed_at}. The token is the proof, so whoever holds it may confirm: the
 * email's link is the billing-email-confirm function (no account needed, it calls this as the
 * service); a signed-in user may call public.confirm_billing_email. Following a link twice
 * answers the same.
 * Refused, naming why: an unknown token (P0002), an expired one (22023 'expired'), or one for an
 * address the organization no longer uses (22023 'superseded'). Security definer: it reads the
 * private confirmations and updates organizations, which no caller can write.
 */
create function billing.confirm_billing_email(p_token text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_c billing.billing_email_confirmations;
  v_org public.organizations;
begin
  select * into v_c from billing.billing_email_confirmations c where c.token = btrim(coalesce(p_token, '')) for update;
  if not found then
    raise exception 'this confirmation link is not valid' using errcode = 'no_data_found';
  end if;
  select * into v_org from public.organizations o where o.id = v_c.organization_id for update;
  if lower(v_org.billing_email) is distinct from lower(v_c.email) then
    raise exception 'superseded: the billing email was changed after this link was sent; use the newest link'
      using errcode = 'invalid_parameter_value';
  end if;
  if v_c.confirmed_at is null then
    if v_c.expires_at <= billing.now() then
      raise exception 'expired: this confirmation link expired at %; save the billing email again for a new link',
        v_c.expires_at using errcode = 'invalid_parameter_value';
    end if;
    update billing.billing_email_confirmations c set confirmed_at = billing.now() where c.id = v_c.id
    returning * into v_c;
    update public.organizations o set billing_email_confirmed_at = v_c.confirmed_at
    where o.id = v_org.id and o.billing_email_confirmed_at is null;
  end if;
  return pg_catalog.jsonb_build_object('organization_id', v_org.id, 'billing_email', v_org.billing_email,
                                       'confirmed_at', v_c.confirmed_at);
end;
$$;
revoke execute on function billing.confirm_billing_email(text) from public, anon;
grant execute on function billing.confirm_billing_email(text) to authenticated, service_role;

/**
 * Confirms a billing email with the token of its confirmation link.
 * A thin wrapper: billing.confirm_billing_email does the work.
 */
create function public.confirm_billing_email(p_token text)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return billing.confirm_billing_email(p_token);
end;
$$;
revoke execute on function public.confirm_billing_email(text) from public, anon;
grant execute on function public.confirm_billing_email(text) to authenticated, service_role;
comment on function public.confirm_billing_email(text) is 'Confirms a billing email with its link''s token, for an app''s signed-in page (the email''s link, the billing-email-confirm function, needs no account); until then billing emails go to owners and admins.';
