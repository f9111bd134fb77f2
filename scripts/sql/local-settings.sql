-- Database-level settings of every local cluster (the dev database and the throwaway clusters of
-- npm test and npm run bench); not a migration, never run against a hosted project. Applied by
-- scripts/lib/pg.mjs on each prepare, before the compatibility layer and the migrations; every
-- statement is idempotent. They take effect in new sessions. `:"DBNAME"` is psql's name of the
-- database it is connected to (`postgres`, or the databases `npm run db:diff` builds).

-- The schemas PostgREST exposes, set at database level as the hosted platform does. The
-- exposure lints of `supabase db advisors` (RLS disabled in public, auth.users exposed,
-- materialized views and foreign tables in the API, sensitive columns, ...) read this setting
-- and report nothing without it; so does supabase/tests/database/91-exposure.test.sql.
alter database :"DBNAME" set pgrst.db_schemas = 'public,graphql_public';

-- The test clock: billing.now() may follow the `billing.now` setting only where this is 'on'.
-- Local clusters only; a hosted project leaves it unset.
alter database :"DBNAME" set billing.test_clock = 'on';
