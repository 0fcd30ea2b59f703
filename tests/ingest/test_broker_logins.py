"""yujing's own logins on the broker's loopback listener, the collector's session, failed-login
throttling and log rotation, against a real Mosquitto from the project's configuration (with
deploy/mosquitto/plugin/yujing_auth.c loaded)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import time

import httpx

from ingest.broker_files import BrokerFiles
from store.gateway_credentials import issue_credentials
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from tests.ingest.test_gateway_auth import NOT_AUTHORIZED, REGISTRY, Client, login_when, pid_file
from tests.support.running import running_service, service_settings
from tests.support.services import COLLECTOR_LOGIN, REPO, TOOLS_LOGIN, Broker, wait_for

async def test_only_the_collectors_login_can_use_its_client_id(db_url, broker):
    settings = service_settings(db_url, broker.url, mqtt_client_id=COLLECTOR_LOGIN)
    async with running_service(settings) as service:
        for username, password, client_id in (
            (None, None, COLLECTOR_LOGIN),  # anonymous, as the intruder of the security review
            (*broker.tools_login, COLLECTOR_LOGIN),  # another valid login
            (*broker.tools_login, f"{COLLECTOR_LOGIN}/2"),  # the collector's whole id space
        ):
            intruder = Client(broker.port, username, password, client_id=client_id)
            assert (await intruder.connect()).value == NOT_AUTHORIZED, (username, client_id)
            intruder.close()
        tools = Client(broker.port, *broker.tools_login, client_id="some-tool")  # any other id is free
        assert await tools.connect() == 0
        tools.close()
        assert service.bridge.takeovers == 0 and service.bridge.connects == 1
    log = (broker.data_dir / "mosquitto.log").read_text()
    assert (f"client id '{COLLECTOR_LOGIN}' is reserved for login '{COLLECTOR_LOGIN}';"
            f" refused to user '{TOOLS_LOGIN}'") in log


async def test_readiness_fails_when_someone_else_tries_the_collectors_session(db_url, broker, caplog):
    """Someone with the collector's own login (a second collector, a leaked password) connects with
    its client id. Mosquitto 2.0.11 would close the collector's connection without a word (no
    DISCONNECT 0x8E) and hand the session over; the plugin refuses the intruder instead and tells
    the collector, whose /readyz then fails with a log line that says why."""
    settings = service_settings(db_url, broker.url, mqtt_client_id=COLLECTOR_LOGIN)
    caplog.set_level(logging.ERROR, logger="ingest.bridge")
    async with running_service(settings) as service:
        url = f"http://127.0.0.1:{settings.http_port}/readyz"
        async with httpx.AsyncClient(timeout=5) as http:
            before = await http.get(url)
            assert before.status_code == 200, before.text
            intruder = Client(broker.port, *broker.login(COLLECTOR_LOGIN), client_id=COLLECTOR_LOGIN)
            assert (await intruder.connect()).value == NOT_AUTHORIZED
            intruder.close()
            await wait_for(lambda: service.bridge.takeovers > 0, 10, what="the service told of the attempt")
            after = await http.get(url)
        assert after.status_code == 503, after.text
        assert after.json()["mqtt_session_held"] is False and after.json()["broker"] is True
        assert service.bridge.connects == 1  # the session never left the service
    assert any("mqtt session contested" in r.getMessage() for r in caplog.records), caplog.text
    log = (broker.data_dir / "mosquitto.log").read_text()
    assert f"client id '{COLLECTOR_LOGIN}' is connected from 127.0.0.1; refused a second connection" in log


def raw_connect(port: int, username: str, password: str, source: str, client_id: str = "") -> int:
    """One MQTT 3.1.1 CONNECT from ``source`` (another loopback address is another client host);
    returns the CONNACK return code (0 accepted, 5 not authorised)."""
    fields = [client_id.encode(), username.encode(), password.encode()]
    body = b"\x00\x04MQTT\x04\xc2\x00\x3c" + b"".join(len(f).to_bytes(2, "big") + f for f in fields)
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        s.sendall(b"\x10" + bytes([len(body)]) + body)
        connack = s.recv(4)
    assert connack[:2] == b"\x20\x02", connack
    return connack[3]


async def test_failed_logins_are_throttled_per_source(db):
    """A bounded brute force: 300 wrong passwords for one gateway from one address, then a spray
    of 40 usernames from another. The plugin blocks the pair after 5 failures and the address
    after 30 (block shortened to 3 s here); the right password is refused while blocked, and
    the gateway logs in from its own address throughout."""
    broker = Broker(overrides={"plugin_opt_block_s": "3"})
    broker.start()
    try:
        await import_registry(db, parse_registry_file(REGISTRY))
        right = {g: (await issue_credentials(db, "E1", g)).password for g in ("G1", "G2")}
        await BrokerFiles(broker.password_file, broker.acl_file, pid_file(broker)).sync(db)
        await login_when(broker, "E1.G1", right["G1"], accepted=True)  # the reload took effect
        port = broker.gateway_port

        start = time.perf_counter()
        codes = [raw_connect(port, "E1.G1", f"guess-{i}", "127.0.0.2") for i in range(300)]
        elapsed = time.perf_counter() - start
        assert set(codes) == {5}
        assert raw_connect(port, "E1.G1", right["G1"], "127.0.0.2") == 5  # blocked: not even checked
        assert raw_connect(port, "E1.G1", right["G1"], "127.0.0.1") == 0  # the gateway, from its own address
        print(f"\n300 wrong logins from one address in {elapsed:.2f} s ({300 / elapsed:.0f}/s): "
              "5 reached the password check, the rest were refused by the block")

        assert {raw_connect(port, f"E1.X{i}", "guess", "127.0.0.3") for i in range(40)} == {5}
        assert raw_connect(port, "E1.G2", right["G2"], "127.0.0.3") == 5  # the whole address is blocked
        assert raw_connect(port, "E1.G2", right["G2"], "127.0.0.1") == 0

        log = broker.data_dir / "mosquitto.log"
        text = log.read_text()
        assert text.count("yujing-auth: user 'E1.G1' from 127.0.0.2 refused for 3 s after 5 failed logins") == 1
        assert text.count("yujing-auth: address 127.0.0.3 refused for 3 s after 30 failed logins") == 1
        await wait_for(lambda: raw_connect(port, "E1.G1", right["G1"], "127.0.0.2") == 0, 10, interval_s=0.5,
                       what="the end of the block")
        await wait_for(lambda: raw_connect(port, "E1.G2", right["G2"], "127.0.0.3") == 0, 10, interval_s=0.5,
                       what="the end of the address's block")
        # One line per block at its end, with what it refused (296 above, and the polls for its end).
        ended = dict(re.findall(r"yujing-auth: block of (.+) ended; (\d+) logins refused during it", log.read_text()))
        assert ended.keys() == {"user 'E1.G1' from 127.0.0.2", "address 127.0.0.3"}, ended
        assert int(ended["user 'E1.G1' from 127.0.0.2"]) >= 296 and int(ended["address 127.0.0.3"]) >= 11
    finally:
        broker.close()


async def test_the_broker_log_is_rotated(broker):
    """deploy/mosquitto/logrotate.conf as broker.sh installs it: logrotate moves the log and
    Mosquitto, sent SIGHUP, writes a new one."""
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    pid = broker.data_dir / "mosquitto.pid"
    pid.write_text(f"{broker.proc.pid}\n")
    conf = broker.data_dir / "logrotate.conf"
    template = (REPO / "deploy/mosquitto/logrotate.conf").read_text()
    conf.write_text(template.replace("@DATADIR@", str(broker.data_dir))
                    .replace("@USER@", subprocess.check_output(["id", "-un"], text=True).strip())
                    .replace("@GROUP@", subprocess.check_output(["id", "-gn"], text=True).strip()))
    os.chmod(conf, 0o644)
    log = broker.data_dir / "mosquitto.log"
    assert "mosquitto version" in log.read_text()
    done = subprocess.run([logrotate, "-f", "-s", str(broker.data_dir / "logrotate.state"), str(conf)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    rotated = broker.data_dir / "mosquitto.log.1"
    assert rotated.exists() and "mosquitto version" in rotated.read_text()
    client = Client(broker.port, *broker.tools_login, client_id="after-rotation")
    assert await client.connect() == 0
    client.close()
    await wait_for(lambda: log.exists() and "after-rotation" in log.read_text(), 10, what="a fresh log")
