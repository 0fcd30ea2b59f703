#!/usr/bin/env bash
# Step 4: the application's role and database, with the timescaledb extension created in it
# (CREATE EXTENSION timescaledb needs a superuser, so setup does it, not the migrations).
set -euo pipefail
STEP=database
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_pg_cluster
pg_wait_ready 30 || die "PostgreSQL $PG_MAJOR/$PG_NAME is not running"

# The app and the tests connect as postgres over TCP without a password (a development and CI
# machine). Debian's default is password auth on 127.0.0.1: only then, trust loopback TCP.
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
ROLE="${YUJING_DB_ROLE:-yujing}"

if [[ "$(pg_sql "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]]; then
    say "creating role $ROLE"
    pg_sql "CREATE ROLE \"$ROLE\" LOGIN"
fi
if [[ "$(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]]; then
    say "creating database $DB (owner $ROLE, UTF8)"
    pg_sql "CREATE DATABASE \"$DB\" OWNER \"$ROLE\" ENCODING 'UTF8' TEMPLATE template0"
fi
if [[ "$(pg_sql "$DB" "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")" != 1 ]]; then
    say "creating extension timescaledb in $DB"
    pg_sql "$DB" "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS timescaledb"
fi
say "ok: database $DB, timescaledb $(pg_sql "$DB" "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")"
