#!/usr/bin/env bash
# Step 2: the PostgreSQL cluster is running.
set -euo pipefail
STEP=postgres
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_pg_cluster

if [[ "$PG_STATUS" != online* ]] || ! pg_ready; then
    say "starting cluster $PG_MAJOR/$PG_NAME"
    pg_ctl_cluster start
    pg_wait_ready 60 || die "cluster $PG_MAJOR/$PG_NAME did not become ready"
fi
say "ok: cluster $PG_MAJOR/$PG_NAME online on port $PG_PORT"
