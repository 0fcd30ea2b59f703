#!/usr/bin/env bash
# Step 1: system packages, each installed only when missing.
set -euo pipefail
STEP=apt
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# PostgreSQL server: only when none is installed (keep whatever server the machine has).
if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    apt_install postgresql
fi
load_pg_cluster

pkgs=(mosquitto mosquitto-clients build-essential cmake "postgresql-server-dev-$PG_MAJOR" libssl-dev chromium fonts-wqy-microhei)
# chromium: Debian's browser, driven headless by the dashboard test (a downloaded browser is never used);
# fonts-wqy-microhei: a small CJK font, so the Chinese dashboard renders in it

# python3-venv only when the python3 on PATH cannot make a venv with pip (Debian's own python).
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    pkgs+=(python3-venv)
fi
# Node.js and npm only when missing (the API's dashboard assets come from npm).
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

apt_install "${pkgs[@]}"
say "ok: PostgreSQL $PG_MAJOR/$PG_NAME, mosquitto $(dpkg-query -W -f='${Version}' mosquitto), build tools"
