#!/usr/bin/env bash
# yujing's own logins on the broker's loopback listener, created once and kept:
#   deploy/mosquitto/logins.sh DATADIR
# DATADIR/logins/yujing-collector and DATADIR/logins/yujing-tools each hold one password (mode
# 0600, 192 random bits); DATADIR/service.passwd holds their Mosquitto hashes (rewritten only when
# a password file is newer). A password is never put on a command line. Prints nothing.
set -euo pipefail
if [[ $# -ne 1 ]]; then echo "usage: $0 DATADIR" >&2; exit 2; fi
LOGINS=(yujing-collector yujing-tools)
mkdir -p "$1/logins"
datadir="$(cd "$1" && pwd)"
passwd="${MOSQUITTO_SERVICE_PASSWORD_FILE:-$datadir/service.passwd}"
chmod 0700 "$datadir/logins"
stale=0
[[ -f "$passwd" ]] || stale=1
for user in "${LOGINS[@]}"; do
    f="$datadir/logins/$user"
    if [[ ! -s "$f" ]]; then
        (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$f")
        stale=1
    fi
    [[ "$f" -nt "$passwd" ]] && stale=1
done
(( stale )) || exit 0
command -v mosquitto_passwd >/dev/null || { echo "$0: mosquitto_passwd not found (apt-get install mosquitto)" >&2; exit 3; }
tmp="$(mktemp "$(dirname "$passwd")/.service.passwd.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
for user in "${LOGINS[@]}"; do
    printf '%s:%s\n' "$user" "$(tr -d '\n' <"$datadir/logins/$user")" >>"$tmp"
done
mosquitto_passwd -U "$tmp"  # hashes the plain passwords in place
chmod 0600 "$tmp"
mv -f "$tmp" "$passwd"
trap - EXIT
