-- The service's database role: it reads and writes rows, and nothing else — no DDL, no ownership, no
-- superuser. Migrations run as the owner role instead: `o2o migrate up` with the owner's
-- DATABASE_URL, as a step before each rollout (the Kubernetes manifests' Job), and the service runs
-- with MIGRATE_ON_START=false. Create both roles first (with passwords, or through your operator:
-- CloudNativePG makes the owner), run the migrations as the owner, then apply this as the owner or a
-- superuser:
--
--   psql "$OWNER_DATABASE_URL" -v app=o2o_app -v owner=o2o_owner -v db=o2o -f deploy/postgres/roles.sql
--
-- The defaults below extend the grants to what later migrations create, so this is applied once.
-- make test applies exactly this file and runs the whole service as such a role
-- (TestServiceRunsWithTheLeastPrivileges).
GRANT CONNECT ON DATABASE :"db" TO :"app";
GRANT USAGE ON SCHEMA public TO :"app";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"app";
