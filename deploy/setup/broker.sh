#!/usr/bin/env bash
# Step 6: the project's Mosquitto broker (deploy/mosquitto/yujing.conf) on 127.0.0.1:$YUJING_BROKER_PORT
# (default 1884), data under var/mosquitto/. The machine's own broker on 1883 is left alone.
# Gateways log in on the authenticated listener, 127.0.0.1:$YUJING_GATEWAY_PORT (default the port
# after), with var/mosquitto/gateways.passwd and gateways.acl (`yujing gateways broker-files`).
# No anonymous access: the service and the local tools log in as yujing-collector and yujing-tools,
# passwords in var/mosquitto/logins/ (created once by deploy/mosquitto/logins.sh). yujing's plugin
# (deploy/mosquitto/plugin) is built against Debian's mosquitto-dev headers; the broker log is
# rotated by /etc/logrotate.d/yujing-mosquitto (deploy/mosquitto/logrotate.conf).
#   broker.sh          start it unless something already listens on the port
#   broker.sh stop     stop it (only the broker this project started, found by its pid file)
set -euo pipefail
STEP=broker
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${YUJING_BROKER_PORT:-1884}"
GATEWAY_PORT="${YUJING_GATEWAY_PORT:-$((PORT + 1))}"
DATA="$VAR_DIR/mosquitto"
CONF="$DATA/mosquitto.conf"
PIDFILE="$DATA/mosquitto.pid"
PLUGIN="$DATA/yujing_auth.so"
MOSQUITTO="${YUJING_TEST_MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}"

listening() { [[ -n "$(ss -ltnH "sport = :$PORT" 2>/dev/null)" ]]; }
our_pid() {  # prints the pid of the broker started from $CONF, if it runs
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$CONF" && echo "$pid"
    return 0
}

stop() {
    local pid i
    pid="$(our_pid)"
    if [[ -z "$pid" ]]; then say "not running (no live pid in $PIDFILE)"; return 0; fi
    say "stopping broker pid $pid (it saves its queues to $DATA/mosquitto.db)"
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && die "broker pid $pid did not stop within 10 s"
    rm -f "$PIDFILE"
    say "stopped"
}

if [[ "${1:-start}" == stop ]]; then stop; exit 0; fi

[[ -x "$MOSQUITTO" ]] || die "mosquitto not found (run deploy/setup/apt.sh)"
# Headers for yujing's broker plugin (deploy/mosquitto/plugin/build.sh, run by render.sh).
apt_install mosquitto-dev libmosquitto-dev
mkdir -p "$DATA"
if [[ -d /etc/logrotate.d ]]; then
    rotate="$(sed -e "s|@DATADIR@|$DATA|g" -e "s|@USER@|$(id -un)|g" -e "s|@GROUP@|$(id -gn)|g" \
        "$REPO_ROOT/deploy/mosquitto/logrotate.conf")"
    if [[ "$(cat /etc/logrotate.d/yujing-mosquitto 2>/dev/null)" != "$rotate" ]]; then
        printf '%s\n' "$rotate" | $SUDO tee /etc/logrotate.d/yujing-mosquitto >/dev/null
        say "broker log rotation: /etc/logrotate.d/yujing-mosquitto"
    fi
else
    say "warning: no /etc/logrotate.d; rotate $DATA/mosquitto.log yourself (deploy/mosquitto/logrotate.conf)"
fi
new="$(MOSQUITTO_GATEWAY_PORT="$GATEWAY_PORT" MOSQUITTO_PLUGIN="$PLUGIN" "$REPO_ROOT/deploy/mosquitto/render.sh" "$PORT" "$DATA")" \
    || die "rendering the broker configuration failed"
plugin_changed=0
[[ -f "$CONF" && "$PLUGIN" -nt "$CONF" ]] && plugin_changed=1  # rebuilt: restart to load it
# The service's and the tools' URLs with their logins, for `make run`, `make bench` and a shell
# (`set -a; . var/mosquitto/mqtt.env; set +a`); mode 0600 like the passwords themselves.
env_file="$DATA/mqtt.env"
env_text="$(printf 'YUJING_MQTT_URL=mqtt://yujing-collector:%s@127.0.0.1:%s\nYUJING_TOOLS_MQTT_URL=mqtt://yujing-tools:%s@127.0.0.1:%s' \
    "$(cat "$DATA/logins/yujing-collector")" "$PORT" "$(cat "$DATA/logins/yujing-tools")" "$PORT")"
if [[ "$(cat "$env_file" 2>/dev/null)" != "$env_text" ]]; then
    (umask 077 && printf '%s\n' "$env_text" >"$env_file")
fi
conf_changed=0
if [[ ! -f "$CONF" || "$(cat "$CONF")" != "$new" ]] || (( plugin_changed )); then
    printf '%s\n' "$new" >"$CONF"
    conf_changed=1
fi

if listening; then
    pid="$(our_pid)"
    if [[ -z "$pid" ]]; then
        say "ok: something else already listens on 127.0.0.1:$PORT; using it (not started by this project)"
        exit 0
    fi
    if (( conf_changed )); then
        say "configuration changed: restarting the project broker"
        stop
    else
        say "ok: project broker running on 127.0.0.1:$PORT (pid $pid)"
        exit 0
    fi
fi

say "starting mosquitto on 127.0.0.1:$PORT (config $CONF, log $DATA/mosquitto.log)"
rm -f "$PIDFILE"
# 9>&-: the daemon must not inherit (and hold) the setup lock
"$MOSQUITTO" -d -c "$CONF" 2>"$DATA/mosquitto.stderr" 9>&- || {
    tail -n 20 "$DATA/mosquitto.stderr" "$DATA/mosquitto.log" >&2 2>/dev/null || true
    die "mosquitto failed to start"
}
for ((i = 0; i < 50; i++)); do listening && break; sleep 0.1; done
if ! listening; then
    tail -n 20 "$DATA/mosquitto.stderr" "$DATA/mosquitto.log" >&2 2>/dev/null || true
    die "mosquitto did not listen on 127.0.0.1:$PORT"
fi
say "ok: project broker running on 127.0.0.1:$PORT, gateways on 127.0.0.1:$GATEWAY_PORT (pid $(cat "$PIDFILE" 2>/dev/null))"
say "logins: yujing-collector and yujing-tools, passwords in $DATA/logins/"
