"""deploy/mosquitto/render.sh PORT DATADIR 0.0.0.0 opens the gateways' authenticated listener to
the network and keeps yujing's own listener on loopback (it used to bind both to 0.0.0.0); neither
takes anonymous logins."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.netns import OutsideHost, outside_host
from tests.support.services import MOSQUITTO, REPO, free_port, wait_port


_CONNECT_RC = """
import sys, paho.mqtt.client as mqtt
host, port = sys.argv[1], int(sys.argv[2])
got = []
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"render-test-{port}", protocol=mqtt.MQTTv311)
c.on_connect = lambda cl, u, f, rc, p: got.append(rc.value)
try:
    c.connect(host, port, keepalive=10)
except ConnectionRefusedError:
    print("refused"); sys.exit(0)
for _ in range(100):
    c.loop(0.05)
    if got:
        break
c.disconnect()
print(got[0] if got else "no connack")
"""


def _connect_rc(host: str, port: int, outside: OutsideHost | None = None) -> int | str:
    """CONNACK reason code of an anonymous MQTT connect, or 'refused' when no listener answers;
    from ``outside`` (a host in a network namespace of the test's own) when given."""
    code = f"import sys; sys.argv = ['', {host!r}, '{port}']\n" + _CONNECT_RC
    out = outside.python(code) if outside else subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    if out == "no connack":
        raise AssertionError(f"no CONNACK from {host}:{port}")
    return out if out == "refused" else int(out)


def test_service_listener_stays_on_loopback_when_bound_to_all(tmp_path):
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
        assert _connect_rc("127.0.0.1", port) not in ("refused", 0)  # yujing's own listener: logins only
        with outside_host() as outside:
            assert _connect_rc(outside.server_address, port, outside) == "refused"  # not on the network
            # reachable from the network, anonymous refused
            assert _connect_rc(outside.server_address, gateway_port, outside) not in ("refused", 0)
    finally:
        proc.terminate()
        proc.wait(20)
