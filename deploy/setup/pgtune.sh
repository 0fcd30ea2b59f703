#!/usr/bin/env bash
# Step 3b: load TimescaleDB at server start and tune the server for ingest.
# Each setting is changed with ALTER SYSTEM only when it differs from the wanted value; the
# cluster restarts only when a changed setting needs it (pg_settings.pending_restart). Before
# changing anything, postgresql.auto.conf is backed up; if the restart fails, the backup is put
# back and the cluster started again, so a bad value never leaves the machine without its server.
set -euo pipefail
STEP=pgtune
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_pg_cluster
pg_wait_ready 30 || die "PostgreSQL $PG_MAJOR/$PG_NAME is not running"

# ---- sizes from the machine's memory (cgroup limit if lower) -----------------------------------
mem_kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
if [[ -r /sys/fs/cgroup/memory.max ]]; then
    cg="$(cat /sys/fs/cgroup/memory.max)"
    if [[ "$cg" =~ ^[0-9]+$ ]] && (( cg / 1024 < mem_kb )); then mem_kb=$(( cg / 1024 )); fi
fi
mem_mb=$(( mem_kb / 1024 ))
shared_buffers_mb=$(( mem_mb / 4 )); (( shared_buffers_mb > 4096 )) && shared_buffers_mb=4096
(( shared_buffers_mb < 128 )) && shared_buffers_mb=128
effective_cache_mb=$(( mem_mb / 2 ))   # the machine is shared with other services: half, not 3/4
(( effective_cache_mb < shared_buffers_mb )) && effective_cache_mb=$shared_buffers_mb

wal_compression=on
if pg_sql "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name='wal_compression'" | grep -q t; then
    wal_compression=lz4   # cheaper on CPU than pglz for the same WAL saving
fi

# shared_preload_libraries: keep what is there, add timescaledb.
current_preload="$(pg_sql "SHOW shared_preload_libraries")"
preload_items=()
IFS=',' read -r -a _items <<<"$current_preload"
for it in "${_items[@]}"; do
    it="$(echo "$it" | tr -d " \"'")"
    [[ -n "$it" ]] && preload_items+=("$it")
done
need_preload=1
for it in "${preload_items[@]}"; do [[ "$it" == timescaledb ]] && need_preload=0; done

max_conn="$(pg_sql "SELECT setting FROM pg_settings WHERE name='max_connections'")"
(( max_conn < 200 )) && max_conn=200
max_workers="$(pg_sql "SELECT setting FROM pg_settings WHERE name='max_worker_processes'")"
(( max_workers < 32 )) && max_workers=32   # TimescaleDB: one scheduler per database + its jobs

# name|wanted value|kind (mem = compare as sizes, str = compare as text)
wanted=(
    "shared_buffers|${shared_buffers_mb}MB|mem"
    "effective_cache_size|${effective_cache_mb}MB|mem"
    "maintenance_work_mem|512MB|mem"
    "max_wal_size|4GB|mem"
    "checkpoint_timeout|15min|str"
    "wal_compression|$wal_compression|str"
    "max_connections|$max_conn|str"
    "max_worker_processes|$max_workers|str"
    "synchronous_commit|on|str"
)
# Settings of the extension itself: applied once it is loaded (the server rejects unknown names).
wanted_ext=(
    "timescaledb.telemetry_level|off|str"
)

auto_conf="$(pg_sql "SHOW data_directory")/postgresql.auto.conf"
backup=""
backup_once() {
    [[ -n "$backup" ]] && return 0
    $SUDO mkdir -p "$CACHE_DIR"
    backup="$CACHE_DIR/postgresql.auto.conf.$PG_MAJOR-$PG_NAME.$(date +%Y%m%dT%H%M%S)"
    $SUDO cp -p "$auto_conf" "$backup"
}

changed=()
if (( need_preload )); then
    backup_once
    list="$(printf "'%s'," "${preload_items[@]}" timescaledb)"; list="${list%,}"
    pg_sql "ALTER SYSTEM SET shared_preload_libraries = $list"
    changed+=("shared_preload_libraries+=timescaledb")
fi

apply() {  # apply "name|value|kind"... -> ALTER SYSTEM for those that differ; appends to changed
    local w name value kind cur same
    for w in "$@"; do
        IFS='|' read -r name value kind <<<"$w"
        if [[ "$(pg_sql "SELECT count(*) FROM pg_settings WHERE name='$name'")" != 1 ]]; then
            say "$name: not a parameter of this build (nothing to set)"
            continue
        fi
        cur="$(pg_sql "SELECT current_setting('$name')")"
        if [[ "$kind" == mem ]]; then
            same="$(pg_sql "SELECT pg_size_bytes('$cur') = pg_size_bytes('$value')")"
        else
            [[ "$cur" == "$value" ]] && same=t || same=f
        fi
        if [[ "$same" != t ]]; then
            backup_once
            pg_sql "ALTER SYSTEM SET $name = '$value'"
            changed+=("$name=$value (was $cur)")
        fi
    done
}

restart_if_needed() {
    local pending
    pg_sql "SELECT pg_reload_conf()" >/dev/null
    sleep 1
    pending="$(pg_sql "SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart")"
    if (( need_preload )) || [[ -n "$pending" ]]; then
        say "restarting cluster $PG_MAJOR/$PG_NAME for: ${pending:-shared_preload_libraries}"
        if ! pg_ctl_cluster -m fast restart || ! pg_wait_ready 60; then
            warn "restart failed; restoring $auto_conf from $backup and starting again"
            $SUDO cp -p "$backup" "$auto_conf"
            pg_ctl_cluster start || true
            pg_wait_ready 60 || true
            die "PostgreSQL did not start with the new settings (see /var/log/postgresql/postgresql-$PG_MAJOR-$PG_NAME.log)"
        fi
        need_preload=0
    fi
}

apply "${wanted[@]}"
if (( ${#changed[@]} > 0 )); then
    for c in "${changed[@]}"; do say "set $c"; done
    restart_if_needed
fi
[[ "$(pg_sql "SHOW shared_preload_libraries")" == *timescaledb* ]] \
    || die "timescaledb is not in shared_preload_libraries"

n_before=${#changed[@]}
apply "${wanted_ext[@]}"
if (( ${#changed[@]} > n_before )); then
    for c in "${changed[@]:n_before}"; do say "set $c"; done
    restart_if_needed
fi

if (( ${#changed[@]} == 0 )); then
    say "ok: timescaledb preloaded, ingest settings in place"
else
    say "ok: settings applied (previous postgresql.auto.conf kept as $backup)"
fi
