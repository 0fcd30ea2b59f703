-- yujing's PostgreSQL roles. Run by a superuser (deploy/setup/database.sh; the tests' database
-- support; `yujing migrate` when it connects as a superuser). Idempotent: a second run changes
-- nothing, and every run puts the attributes back to these.
--
--   yujing_owner    LOGIN. Runs the migrations, so it owns the schema: tables, the journal and its
--                   triggers, the SECURITY DEFINER functions. Not a superuser; used only by
--                   `yujing migrate` (YUJING_DATABASE_MIGRATION_URL).
--   yujing_service  NOLOGIN group that holds the service's rights (granted by migration 0065):
--                   read and write the data tables, only SELECT and INSERT on the audit journal,
--                   EXECUTE on the retention and chunk-interval functions. No ownership, so no
--                   ALTER TABLE … DISABLE TRIGGER, no TRUNCATE, no DROP.
--   yujing          LOGIN, member of yujing_service: what the service connects as
--                   (YUJING_DATABASE_URL). Never a member of yujing_owner.
BEGIN;
-- several test runs may create them at once: one at a time, until each one's changes are committed
SELECT pg_advisory_xact_lock(hashtext('yujing.roles'));
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'yujing_owner') THEN
        CREATE ROLE yujing_owner LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'yujing_service') THEN
        CREATE ROLE yujing_service NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'yujing') THEN
        CREATE ROLE yujing LOGIN;
    END IF;
    ALTER ROLE yujing_owner NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    ALTER ROLE yujing_service NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOLOGIN;
    ALTER ROLE yujing NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    IF NOT pg_has_role('yujing', 'yujing_service', 'MEMBER') THEN
        GRANT yujing_service TO yujing;
    END IF;
    -- The service must never become the owner: no membership, direct or inherited.
    IF pg_has_role('yujing', 'yujing_owner', 'MEMBER') OR pg_has_role('yujing_service', 'yujing_owner', 'MEMBER') THEN
        REVOKE yujing_owner FROM yujing, yujing_service;
    END IF;
END $$;
COMMIT;
