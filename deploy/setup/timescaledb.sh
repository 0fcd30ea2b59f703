#!/usr/bin/env bash
# Step 3: the TimescaleDB extension is available to the server.
#   1. already available (pg_available_extensions)  -> nothing to do
#   2. a Debian package exists for this server major -> apt-get install it
#   3. otherwise build Debian's source package (trixie, Apache-licensed part) against this
#      server's pg_config, using a private apt source list that leaves the system's untouched.
set -euo pipefail
STEP=timescaledb
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_pg_cluster
pg_wait_ready 30 || die "PostgreSQL $PG_MAJOR/$PG_NAME is not running (run deploy/setup/postgres.sh)"

available() {
    [[ "$(pg_sql "SELECT 1 FROM pg_available_extensions WHERE name='timescaledb'")" == 1 ]]
}

if available; then
    say "ok: timescaledb $(pg_sql "SELECT default_version FROM pg_available_extensions WHERE name='timescaledb'") available"
    exit 0
fi

# --- 2. a Debian package for this major --------------------------------------------------------
apt_update_once
for pkg in "postgresql-$PG_MAJOR-timescaledb" "timescaledb-2-postgresql-$PG_MAJOR"; do
    if apt_has_candidate "$pkg"; then
        apt_install "$pkg"
        available || die "installed $pkg but the server does not list timescaledb"
        say "ok: timescaledb from Debian package $pkg"
        exit 0
    fi
done

# --- 3. build from Debian's source package -------------------------------------------------------
SUITE="${YUJING_TIMESCALEDB_SUITE:-trixie}"
BUILD_ROOT="$CACHE_DIR/timescaledb-build"
APT_ROOT="$CACHE_DIR/apt-$SUITE"

# The mirror the machine already uses (first non-security Debian URI), and its keyring.
mirror="" keyring=""
if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    mirror="$(awk 'tolower($1)=="uris:" {$1=""; print}' /etc/apt/sources.list.d/debian.sources \
        | tr ' ' '\n' | grep -v -- '-security' | grep -m1 . || true)"
    keyring="$(awk 'tolower($1)=="signed-by:" {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
fi
if [[ -z "$mirror" && -r /etc/apt/sources.list ]]; then
    mirror="$(awk '$1=="deb" {for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp):\/\//) {print $i; exit}}' \
        /etc/apt/sources.list | grep -v -- '-security' | grep -m1 . || true)"
fi
mirror="${YUJING_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}"
mirror="${mirror%/}"
[[ -n "$keyring" && -r "$keyring" ]] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg

$SUDO mkdir -p "$APT_ROOT/lists/partial" "$APT_ROOT/cache/archives/partial" "$BUILD_ROOT"
printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$SUITE" \
    | $SUDO tee "$APT_ROOT/sources.list" >/dev/null
APT_OPTS=(
    -o "Dir::Etc::sourcelist=$APT_ROOT/sources.list"
    -o "Dir::Etc::sourceparts=/dev/null"
    -o "Dir::State::Lists=$APT_ROOT/lists"
    -o "Dir::Cache=$APT_ROOT/cache"
    -o "APT::Sandbox::User=root"
)

cd "$BUILD_ROOT"
orig="$(ls -1 timescaledb_*.orig.tar.* 2>/dev/null | sort -V | tail -n1 || true)"
if [[ -z "$orig" ]]; then
    say "fetching Debian $SUITE source package timescaledb from $mirror"
    $SUDO apt-get "${APT_OPTS[@]}" update -qq >/dev/null || die "private apt-get update ($SUITE deb-src) failed"
    $SUDO apt-get "${APT_OPTS[@]}" source --download-only -qq timescaledb >/dev/null \
        || die "apt-get source timescaledb failed"
    orig="$(ls -1 timescaledb_*.orig.tar.* | sort -V | tail -n1)"
fi
version="${orig#timescaledb_}"; version="${version%%.orig.tar.*}"
src="$BUILD_ROOT/src-$version-pg$PG_MAJOR"
if [[ ! -x "$src/bootstrap" ]]; then
    say "unpacking $orig"
    $SUDO rm -rf "$src" && $SUDO mkdir -p "$src"
    $SUDO tar -xf "$orig" -C "$src" --strip-components=1
fi

say "building timescaledb $version (Apache-only) for PostgreSQL $PG_MAJOR (about a minute)"
cd "$src"
log="$BUILD_ROOT/build-$version-pg$PG_MAJOR.log"
{
    $SUDO rm -rf build
    $SUDO env PG_CONFIG="$PG_CONFIG" ./bootstrap \
        -DPG_CONFIG="$PG_CONFIG" -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
        -DWARNINGS_AS_ERRORS=OFF -DSEND_TELEMETRY_DEFAULT=NO -DCMAKE_BUILD_TYPE=RelWithDebInfo
    $SUDO make -C build -j"$(nproc)" install
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "build failed, see $log"; }

available || die "built and installed timescaledb $version, but the server does not list it"
say "ok: timescaledb $version built from source and installed (log: $log)"
