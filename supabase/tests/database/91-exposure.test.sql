-- What the API exposes, read from the catalog rather than from a list kept by hand: the schemas
-- in pgrst.db_schemas hold no security definer function that anon or authenticated can execute,
-- every table, view and function in public is documented with `comment on`, every table in
-- public has RLS enabled, and no table or view in the private schema billing is readable or
-- writable by anon or authenticated. Each failure lists the offending objects.
begin;
set local search_path = public, extensions;
select plan(7);

-- The exposed schemas, as PostgREST reads them: pgrst.db_schemas split on commas, trimmed.
create temp view exposed_schemas as
  select btrim(s) as nspname
  from unnest(string_to_array(coalesce(current_setting('pgrst.db_schemas', true), ''), ',')) as s
  where btrim(s) <> '';

-- Objects that belong to an extension are the extension's business, not the migrations'.
create function pg_temp.from_extension(p_classid regclass, p_objid oid)
returns boolean language sql stable as $$
  select exists (select 1 from pg_depend d where d.classid = p_classid and d.objid = p_objid and d.deptype = 'e')
$$;

select ok(
  exists (select 1 from exposed_schemas where nspname = 'public'),
  'The database sets pgrst.db_schemas at database level, as a hosted project does, and it exposes public.'
);

-- -------------------------------------------------------------------------------------------------
-- (a) No security definer function in an exposed schema is executable by anon or authenticated
-- -------------------------------------------------------------------------------------------------

select is_empty(
  $$
    select format('%I.%I(%s) executable by %s', n.nspname, p.proname, oidvectortypes(p.proargtypes),
                  string_agg(r.rolname, ', ' order by r.rolname))
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    cross join (values ('anon'), ('authenticated')) as r(rolname)
    where p.prosecdef
      and n.nspname in (select nspname from exposed_schemas)
      and not pg_temp.from_extension('pg_proc', p.oid)
      and has_function_privilege(r.rolname, p.oid, 'execute')
    group by n.nspname, p.proname, p.oid
    order by 1
  $$,
  'No security definer function in an exposed schema can be executed by anon or authenticated.'
);

-- -------------------------------------------------------------------------------------------------
-- (b) The public surface is documented
-- -------------------------------------------------------------------------------------------------

select is_empty(
  $$
    select format('%s %I.%I has no comment',
                  case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                 when 'f' then 'foreign table' else 'table' end,
                  n.nspname, c.relname)
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public'
      and c.relkind in ('r', 'p', 'v', 'm', 'f')
      and not pg_temp.from_extension('pg_class', c.oid)
      and coalesce(btrim(obj_description(c.oid, 'pg_class')), '') = ''
    order by 1
  $$,
  'Every table and view in public has a comment that says what it holds.'
);

select is_empty(
  $$
    select format('function %I.%I(%s) has no comment', n.nspname, p.proname, oidvectortypes(p.proargtypes))
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public'
      and not pg_temp.from_extension('pg_proc', p.oid)
      and coalesce(btrim(obj_description(p.oid, 'pg_proc')), '') = ''
    order by 1
  $$,
  'Every function in public has a comment that says what it does.'
);

-- -------------------------------------------------------------------------------------------------
-- (c) Row level security on every table in public
-- -------------------------------------------------------------------------------------------------

select is_empty(
  $$
    select format('table %I.%I has RLS disabled', n.nspname, c.relname)
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public'
      and c.relkind in ('r', 'p')
      and not c.relrowsecurity
      and not pg_temp.from_extension('pg_class', c.oid)
    order by 1
  $$,
  'No table in public has row level security disabled.'
);

-- -------------------------------------------------------------------------------------------------
-- (d) The private schema billing is out of reach of the API roles
-- -------------------------------------------------------------------------------------------------

select ok(
  exists (select 1 from pg_class c where c.relnamespace = 'billing'::regnamespace and c.relkind in ('r', 'p')),
  'Schema billing has tables, so the privilege check below is not vacuous.'
);

-- Column grants count too: has_any_column_privilege is true for a table-level grant or a grant
-- on any one column.
select is_empty(
  $$
    select format('%I.%I: %s can %s', n.nspname, c.relname, r.rolname, string_agg(a.privilege, ', ' order by a.ord))
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    cross join (values ('anon'), ('authenticated')) as r(rolname)
    cross join (values (1, 'select'), (2, 'insert'), (3, 'update'), (4, 'delete')) as a(ord, privilege)
    where n.nspname = 'billing'
      and c.relkind in ('r', 'p', 'v', 'm', 'f')
      and not pg_temp.from_extension('pg_class', c.oid)
      and case when a.privilege = 'delete' then has_table_privilege(r.rolname, c.oid, a.privilege)
               else has_table_privilege(r.rolname, c.oid, a.privilege)
                    or has_any_column_privilege(r.rolname, c.oid, a.privilege) end
    group by n.nspname, c.relname, r.rolname
    order by 1
  $$,
  'No table or view in billing can be selected, inserted, updated or deleted by anon or authenticated.'
);

select * from finish();
rollback;
