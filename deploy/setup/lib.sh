# shellcheck shell=bash
# Shared helpers for the setup steps. Source it; do not run it.
# Every step checks before it acts, so running setup twice changes nothing.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VAR_DIR="${YUJING_VAR_DIR:-$REPO_ROOT/var}"
# Build and download cache that survives `make clean` (system state, like the installed extension).
CACHE_DIR="${YUJING_CACHE_DIR:-/var/cache/yujing}"
export DEBIAN_FRONTEND=noninteractive

# One setup step at a time on this machine (several work trees or a CI run may set up at once:
# apt, the extension build, ALTER SYSTEM and pip into one .venv must not run concurrently).
if [[ -z "${YUJING_SETUP_NO_LOCK:-}" ]] && command -v flock >/dev/null 2>&1; then
    exec 9>>"/tmp/yujing-setup.$(id -u).lock"
    if ! flock -n 9; then
        printf '  %-15s waiting for another setup to finish\n' "[${STEP:-setup}]"
        flock -w 900 9 || { echo "setup lock not released within 15 min" >&2; exit 1; }
    fi
fi

say()  { printf '  %-15s %s\n' "[$STEP]" "$*"; }
warn() { printf '  %-15s WARNING: %s\n' "[$STEP]" "$*" >&2; }
die()  { printf '  %-15s ERROR: %s\n' "[$STEP]" "$*" >&2; exit 1; }

# Run as root, or through sudo when it is there (a developer's own machine).
SUDO=""
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install system packages"
    SUDO="sudo"
fi

pkg_installed() {  # pkg_installed NAME -> true when dpkg has it installed
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# `apt-get update` runs only when something must be installed, at most once per setup run.
# The Makefile exports YUJING_SETUP_ID so that all steps of one `make setup` share the marker.
_apt_marker="/tmp/yujing-apt-updated.${YUJING_SETUP_ID:-$$}"
[[ -n "${YUJING_SETUP_ID:-}" ]] || trap 'rm -f "$_apt_marker"' EXIT   # a step run on its own
apt_update_once() {
    if [[ ! -e "$_apt_marker" ]]; then
        say "apt-get update"
        $SUDO apt-get update -qq >/dev/null || die "apt-get update failed"
        : > "$_apt_marker"
    fi
}

apt_install() {  # apt_install PKG... -> installs the ones that are missing
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    apt_update_once
    say "apt-get install ${missing[*]}"
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

apt_has_candidate() {  # apt_has_candidate PKG -> true when apt can install PKG
    local c
    c="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [[ -n "$c" && "$c" != "(none)" ]]
}

# ---- PostgreSQL cluster detection ---------------------------------------------------------
# YUJING_PG_CLUSTER=VERSION/NAME picks one; otherwise the cluster on port 5432, else the first.
pg_cluster() {  # prints "VERSION NAME PORT STATUS"
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    local want="${YUJING_PG_CLUSTER:-}" out
    if [[ -n "$want" ]]; then
        pg_lsclusters -h | awk -v v="${want%/*}" -v n="${want#*/}" '$1==v && $2==n {print $1, $2, $3, $4; exit}'
        return 0
    fi
    out="$(pg_lsclusters -h | awk '$3==5432 {print $1, $2, $3, $4; exit}')"
    [[ -n "$out" ]] || out="$(pg_lsclusters -h | awk 'NR==1 {print $1, $2, $3, $4}')"
    printf '%s\n' "$out"
}

load_pg_cluster() {  # sets PG_MAJOR PG_NAME PG_PORT PG_STATUS PG_CONFIG PG_BIN
    local line
    line="$(pg_cluster)" || true
    [[ -n "$line" ]] || die "no PostgreSQL cluster found (pg_lsclusters)"
    read -r PG_MAJOR PG_NAME PG_PORT PG_STATUS <<<"$line"
    PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
    PG_CONFIG="$PG_BIN/pg_config"
    export PG_MAJOR PG_NAME PG_PORT PG_STATUS PG_BIN PG_CONFIG
}

# psql as the postgres superuser over the Unix socket (works whatever pg_hba says for TCP).
pg_sql() {  # pg_sql [DB] SQL -> prints unaligned tuples
    local db="postgres"
    if [[ $# -ge 2 ]]; then db="$1"; shift; fi
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$PG_PORT" -d "$db" -c "$1")
    else
        (cd / && sudo -u postgres psql -X -q -At -v ON_ERROR_STOP=1 -p "$PG_PORT" -d "$db" -c "$1")
    fi
}

pg_ready() { "$PG_BIN/pg_isready" -q -p "$PG_PORT" -h /var/run/postgresql; }

pg_wait_ready() {  # pg_wait_ready SECONDS
    local i
    for ((i = 0; i < ${1:-30} * 10; i++)); do pg_ready && return 0; sleep 0.1; done
    return 1
}

pg_ctl_cluster() {  # pg_ctl_cluster [OPTIONS] start|stop|restart
    local action="${*: -1}" opts=("${@:1:$#-1}")
    # 9>&-: the server must not inherit (and hold) the setup lock
    $SUDO pg_ctlcluster --skip-systemctl-redirect "${opts[@]}" "$PG_MAJOR" "$PG_NAME" "$action" 9>&-
}

# ---- the `yujing` command on PATH ---------------------------------------------------------
# A two-line wrapper in $YUJING_BIN_DIR (default /usr/local/bin) that execs the venv's console
# script, so `yujing` works after `make setup` without activating the venv. Written only when its
# content differs (a second run changes nothing); a `yujing` there that this setup did not write
# is left alone with a warning. Several checkouts on one machine: the last one set up wins.
WRAPPER_MARK="# yujing wrapper, written by deploy/setup (python step)"
install_cli_wrapper() {  # install_cli_wrapper VENV_DIR
    local venv="$1" dir="${YUJING_BIN_DIR:-/usr/local/bin}" target want
    target="$dir/yujing"
    [[ -x "$venv/bin/yujing" ]] || die "$venv/bin/yujing is missing: the project is not installed in the venv"
    want="$(printf '#!/bin/sh\n%s of %s\nexec "%s" "$@"\n' "$WRAPPER_MARK" "$REPO_ROOT" "$venv/bin/yujing")"
    if [[ -e "$target" || -L "$target" ]] && ! grep -qF "$WRAPPER_MARK" "$target" 2>/dev/null; then
        warn "$target exists and was not written by this setup: left alone (use $venv/bin/yujing)"
        return 0
    fi
    if [[ "$(cat "$target" 2>/dev/null || true)" == "$want" ]]; then
        say "ok: $target runs $venv/bin/yujing"
        return 0
    fi
    $SUDO mkdir -p "$dir"
    printf '%s\n' "$want" | $SUDO tee "$target.tmp.$$" >/dev/null
    $SUDO chmod 0755 "$target.tmp.$$"
    $SUDO mv -f "$target.tmp.$$" "$target"
    say "installed $target -> $venv/bin/yujing"
}
