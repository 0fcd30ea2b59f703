"""deploy/mosquitto/render.sh PORT DATADIR 0.0.0.0 opens the gateways' authenticated listener to
the network and keeps the anonymous listener on loopback (it used to bind both to 0.0.0.0)."""

from __future__ import annotations

import os
import socket
import subprocess

import paho.mqtt.client as mqtt
import psutil

from tests.support.services import MOSQUITTO, REPO, free_port, wait_port


def _outside_address() -> str:
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    raise AssertionError("this host has no non-loopback IPv4 address to test from")


def _connect_rc(host: str, port: int) -> int | str:
    """CONNACK reason code of an anonymous MQTT connect, or 'refused' when no listener answers."""
    got: list[int] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"render-test-{port}", protocol=mqtt.MQTTv311)
    c.on_connect = lambda cl, u, f, rc, p: got.append(rc.value)
    try:
        c.connect(host, port, keepalive=10)
    except ConnectionRefusedError:
        return "refused"
    try:
        for _ in range(100):
            c.loop(0.05)
            if got:
                return got[0]
        raise AssertionError(f"no CONNACK from {host}:{port}")
    finally:
        c.disconnect()


def test_anonymous_listener_stays_on_loopback_when_bound_to_all(tmp_path):
    port, gateway_port = free_port(), free_port()
    conf = subprocess.run(["bash", str(REPO / "deploy/mosquitto/render.sh"), str(port), str(tmp_path), "0.0.0.0"],
                          check=True, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "MOSQUITTO_GATEWAY_PORT": str(gateway_port)}).stdout
    assert f"listener {port} 127.0.0.1" in conf and f"listener {gateway_port} 0.0.0.0" in conf
    path = tmp_path / "mosquitto.conf"
    path.write_text("\n".join(line for line in conf.splitlines() if not line.startswith("pid_file")) + "\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        wait_port(gateway_port)
        outside = _outside_address()
        assert _connect_rc("127.0.0.1", port) == 0  # yujing's own listener, anonymous, local
        assert _connect_rc(outside, port) == "refused"  # not reachable from the network
        assert _connect_rc(outside, gateway_port) not in ("refused", 0)  # reachable, anonymous refused
    finally:
        proc.terminate()
        proc.wait(20)
