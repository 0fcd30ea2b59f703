#!/usr/bin/env bash
# Build yujing's Mosquitto plugin (yujing_auth.c) into OUT, only when OUT is missing or older than
# the source or this script:  deploy/mosquitto/plugin/build.sh OUT.so
# Needs a C compiler and Debian's mosquitto-dev and libmosquitto-dev headers (deploy/setup/broker.sh
# installs them). Atomic: built beside OUT, then renamed, so concurrent builds never load half a file.
set -euo pipefail
if [[ $# -ne 1 ]]; then echo "usage: $0 OUT.so" >&2; exit 2; fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/yujing_auth.c"
out="$1"
if [[ -f "$out" && "$out" -nt "$src" && "$out" -nt "${BASH_SOURCE[0]}" ]]; then exit 0; fi
for h in mosquitto.h mosquitto_broker.h mosquitto_plugin.h; do
    [[ -f "/usr/include/$h" ]] || {
        echo "$0: /usr/include/$h missing: apt-get install mosquitto-dev libmosquitto-dev (make setup does)" >&2
        exit 3
    }
done
mkdir -p "$(dirname "$out")"
tmp="$(mktemp "$(dirname "$out")/.yujing_auth.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
"${CC:-cc}" -shared -fPIC -O2 -Wall -Wextra -Werror -std=gnu11 -o "$tmp" "$src"
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
