-- One PostgreSQL role per Tsunagu service, each owning only its own schema (no shared superuser).
-- Run once per database as a superuser (or the database owner), before the services start:
--   psql "postgresql://postgres@host/tsunagu" -f deploy/database-roles.sql
-- Safe to run again. deploy/run.sh and deploy/test.sh run it on their own clusters. Give each role
-- a password (ALTER ROLE tsunagu_registry PASSWORD '…') when PostgreSQL is not on the same host,
-- and point each service at its own role:
--   gateway:  TSUNAGU_DATABASE_URL=postgresql://tsunagu_gateway@host/tsunagu
--   registry: TSUNAGU_DATABASE_URL=postgresql://tsunagu_registry@host/tsunagu
--   meetings: TSUNAGU_DATABASE_URL=postgresql://tsunagu_meetings@host/tsunagu
DO $$
DECLARE
    service text;
    object record;
BEGIN
    FOREACH service IN ARRAY ARRAY['gateway', 'registry', 'meetings'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tsunagu_' || service) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', 'tsunagu_' || service);
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), 'tsunagu_' || service);
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', service, 'tsunagu_' || service);
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', service, 'tsunagu_' || service);
        -- A schema made before the roles existed (an older setup) keeps its data; its objects
        -- change hands so the service can migrate them.
        FOR object IN
            SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = service AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
        LOOP
            EXECUTE format('ALTER %s %I.%I OWNER TO %I',
                           CASE object.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                               WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                           service, object.relname, 'tsunagu_' || service);
        END LOOP;
    END LOOP;
END
$$;

-- Extensions need more than a schema owner may do: made here, in `public`, usable by everyone.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
-- Nobody but the owner creates objects in `public` (PostgreSQL 15's default; older ones need it said).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
