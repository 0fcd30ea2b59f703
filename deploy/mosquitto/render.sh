#!/usr/bin/env bash
# Render yujing's Mosquitto configuration for a port and a data directory, to stdout.
#   deploy/mosquitto/render.sh PORT DATADIR [BIND_ADDRESS] > mosquitto.conf
#   mosquitto -c mosquitto.conf            (add -d to run it in the background)
# DATADIR is made absolute and created; the broker keeps its pid file, persistence file and log
# there. BIND_ADDRESS defaults to 127.0.0.1. MOSQUITTO_USER (default: the user running this) is
# the user a broker started as root switches to.
set -euo pipefail
if [[ $# -lt 2 || $# -gt 3 || ! "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 PORT DATADIR [BIND_ADDRESS] > mosquitto.conf" >&2
    exit 2
fi
port="$1"
mkdir -p "$2"
datadir="$(cd "$2" && pwd)"
bind="${3:-127.0.0.1}"
user="${MOSQUITTO_USER:-$(id -un)}"
for v in "$datadir" "$bind" "$user"; do
    [[ "$v" != *[[:space:]\|]* ]] || { echo "$0: no spaces or '|' allowed in '$v'" >&2; exit 2; }
done
sed -e "s|@PORT@|$port|g" -e "s|@DATADIR@|$datadir|g" -e "s|@BIND@|$bind|g" -e "s|@USER@|$user|g" \
    "$(dirname "${BASH_SOURCE[0]}")/yujing.conf"
