#!/usr/bin/env bash
# Render yujing's Mosquitto configuration for a port and a data directory, to stdout.
#   deploy/mosquitto/render.sh PORT DATADIR [BIND_ADDRESS] > mosquitto.conf
#   mosquitto -c mosquitto.conf            (add -d to run it in the background)
# DATADIR is made absolute and created; the broker keeps its pid file, persistence file and log
# there. The loopback listener on PORT binds 127.0.0.1 whatever BIND_ADDRESS says; BIND_ADDRESS
# (default 127.0.0.1) is where the gateways' listener listens. MOSQUITTO_USER (default: the user running this) is
# the user a broker started as root switches to.
# The loopback listener takes yujing's own logins only (no anonymous access):
# MOSQUITTO_SERVICE_PASSWORD_FILE (default DATADIR/service.passwd, created with the passwords in
# DATADIR/logins/ by logins.sh when missing) and MOSQUITTO_SERVICE_ACL_FILE (default service.acl
# beside this script). MOSQUITTO_PLUGIN: yujing's plugin (default var/mosquitto/yujing_auth.so in
# the repository, built by plugin/build.sh when missing or older than its source).
# The gateways' authenticated listener: MOSQUITTO_GATEWAY_PORT (default PORT+1) on
# MOSQUITTO_GATEWAY_BIND (default BIND_ADDRESS), with MOSQUITTO_GATEWAY_PASSWORD_FILE and
# MOSQUITTO_GATEWAY_ACL_FILE (default DATADIR/gateways.passwd and DATADIR/gateways.acl; created
# empty if missing, so no gateway can log in until `yujing gateways broker-files` writes them).
set -euo pipefail
if [[ $# -lt 2 || $# -gt 3 || ! "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 PORT DATADIR [BIND_ADDRESS] > mosquitto.conf" >&2
    exit 2
fi
port="$1"
mkdir -p "$2"
datadir="$(cd "$2" && pwd)"
bind=127.0.0.1  # yujing's own listener (service and tool logins): loopback, always
user="${MOSQUITTO_USER:-$(id -un)}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
service_password_file="${MOSQUITTO_SERVICE_PASSWORD_FILE:-$datadir/service.passwd}"
service_acl_file="${MOSQUITTO_SERVICE_ACL_FILE:-$here/service.acl}"
plugin="${MOSQUITTO_PLUGIN:-$(cd "$here/../.." && pwd)/var/mosquitto/yujing_auth.so}"
gateway_port="${MOSQUITTO_GATEWAY_PORT:-$((port + 1))}"
gateway_bind="${MOSQUITTO_GATEWAY_BIND:-${3:-127.0.0.1}}"
password_file="${MOSQUITTO_GATEWAY_PASSWORD_FILE:-$datadir/gateways.passwd}"
acl_file="${MOSQUITTO_GATEWAY_ACL_FILE:-$datadir/gateways.acl}"
if [[ ! "$gateway_port" =~ ^[0-9]+$ || "$gateway_port" == "$port" ]]; then
    echo "$0: MOSQUITTO_GATEWAY_PORT must be a port other than $port (got '$gateway_port')" >&2
    exit 2
fi
for v in "$datadir" "$bind" "$user" "$gateway_bind" "$password_file" "$acl_file" \
         "$service_password_file" "$service_acl_file" "$plugin"; do
    [[ "$v" != *[[:space:]\|]* ]] || { echo "$0: no spaces or '|' allowed in '$v'" >&2; exit 2; }
done
for f in "$password_file" "$acl_file" "$service_password_file" "$service_acl_file" "$plugin"; do
    [[ "$f" == /* ]] || { echo "$0: $f must be an absolute path" >&2; exit 2; }
done
[[ -f "$service_acl_file" ]] || { echo "$0: $service_acl_file does not exist" >&2; exit 2; }
MOSQUITTO_SERVICE_PASSWORD_FILE="$service_password_file" "$here/logins.sh" "$datadir" >&2
"$here/plugin/build.sh" "$plugin" >&2
for f in "$password_file" "$acl_file"; do
    # The broker refuses to start without them; empty files let no gateway in.
    [[ -e "$f" ]] || (umask 077 && : >"$f")
done
sed -e "s|@PORT@|$port|g" -e "s|@DATADIR@|$datadir|g" -e "s|@BIND@|$bind|g" -e "s|@USER@|$user|g" \
    -e "s|@SERVICE_PASSWORD_FILE@|$service_password_file|g" -e "s|@SERVICE_ACL_FILE@|$service_acl_file|g" \
    -e "s|@PLUGIN@|$plugin|g" -e "s|@GATEWAY_PORT@|$gateway_port|g" -e "s|@GATEWAY_BIND@|$gateway_bind|g" \
    -e "s|@GATEWAY_PASSWORD_FILE@|$password_file|g" -e "s|@GATEWAY_ACL_FILE@|$acl_file|g" \
    "$(dirname "${BASH_SOURCE[0]}")/yujing.conf"
