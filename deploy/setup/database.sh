#!/usr/bin/env bash
# Step 4: yujing's roles and database, with the timescaledb extension created in it
# (CREATE EXTENSION timescaledb needs a superuser, so setup does it, not the migrations).
# Roles (store/roles.sql): yujing_owner runs `yujing migrate` and owns the schema; the service
# connects as yujing (member of yujing_service), which owns nothing and cannot disable the audit
# journal's triggers. The database belongs to yujing_owner. Every step checks before it acts.
set -euo pipefail
STEP=database
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_pg_cluster
pg_wait_ready 30 || die "PostgreSQL $PG_MAJOR/$PG_NAME is not running"

# The tests' admin URL connects as postgres over TCP without a password, and the service and the
# migrations as yujing / yujing_owner (a development and CI machine). Debian's default is password auth on 127.0.0.1: only then, trust loopback TCP.
if ! PGCONNECT_TIMEOUT=5 psql -X -q -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    hba="$(pg_sql "SHOW hba_file")"
    say "allowing passwordless loopback TCP (trust for 127.0.0.1/32, ::1/128) in $hba: development only"
    $SUDO mkdir -p "$CACHE_DIR"
    $SUDO cp -p "$hba" "$CACHE_DIR/pg_hba.conf.$PG_MAJOR-$PG_NAME.$(date +%Y%m%dT%H%M%S)"
    { printf '# added by yujing setup (development/CI only): passwordless loopback TCP\n'
      printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'
      cat "$hba"; } | $SUDO tee "$hba.yujing-new" >/dev/null
    $SUDO chown --reference="$hba" "$hba.yujing-new" && $SUDO chmod --reference="$hba" "$hba.yujing-new"
    $SUDO mv "$hba.yujing-new" "$hba"
    pg_sql "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
    PGCONNECT_TIMEOUT=5 psql -X -q -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'SELECT 1' >/dev/null \
        || die "still cannot connect as postgres to 127.0.0.1:$PG_PORT"
fi

DB="${YUJING_DB_NAME:-yujing}"
OWNER=yujing_owner   # the names are fixed: migration 0065 grants to yujing_service

pg_sql_file() {  # pg_sql_file DB FILE: run a SQL file as postgres
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$PG_PORT" -d "$1" -f -) < "$2"
    else
        (cd / && sudo -u postgres psql -X -q -At -v ON_ERROR_STOP=1 -p "$PG_PORT" -d "$1" -f -) < "$2"
    fi
}

pg_sql_file postgres "$REPO_ROOT/store/roles.sql" >/dev/null
say "roles: $OWNER (migrations, owns the schema), yujing (the service; member of yujing_service, no ownership)"

if [[ "$(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]]; then
    say "creating database $DB (owner $OWNER, UTF8)"
    pg_sql "CREATE DATABASE \"$DB\" OWNER $OWNER ENCODING 'UTF8' TEMPLATE template0"
elif [[ "$(pg_sql "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '$DB'")" != "$OWNER" ]]; then
    say "database $DB now belongs to $OWNER"
    pg_sql "ALTER DATABASE \"$DB\" OWNER TO $OWNER"
fi
if [[ "$(pg_sql "$DB" "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")" != 1 ]]; then
    say "creating extension timescaledb in $DB"
    pg_sql "$DB" "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS timescaledb"
fi
# Only the owner creates objects (PostgreSQL < 15 lets PUBLIC create in the public schema).
pg_sql "$DB" "REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE, CREATE ON SCHEMA public TO $OWNER" >/dev/null

# A database migrated before the roles existed (as postgres) is handed to the owner, so that
# `yujing migrate` as the owner can apply migration 0065 (its grants and triggers). Extension
# members stay as they are; chunks follow their hypertable.
moved="$(pg_sql "$DB" "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND c.relowner <> '$OWNER'::regrole
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')")"
if [[ "$moved" != 0 ]]; then
    say "handing $moved existing tables and views of $DB to $OWNER"
    pg_sql "$DB" "DO \$\$
    DECLARE o record;
    BEGIN
        FOR o IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                   AND c.relowner <> '$OWNER'::regrole
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
                 ORDER BY c.relkind = 'S'
        LOOP
            EXECUTE format('ALTER %s %s OWNER TO $OWNER',
                CASE o.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                               WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, o.name);
        END LOOP;
        FOR o IN SELECT p.oid::regprocedure AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'public' AND p.proowner <> '$OWNER'::regrole
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
        LOOP
            EXECUTE format('ALTER ROUTINE %s OWNER TO $OWNER', o.name);
        END LOOP;
    END \$\$"
fi
say "ok: database $DB (owner $OWNER), timescaledb $(pg_sql "$DB" "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")"
