"""Gateways on the broker's authenticated listener: a real Mosquitto started from the project's
configuration, with password and ACL files rendered from the database.

What Mosquitto 2.0.11 does, as checked here: a refused login gets CONNACK 0x87 (MQTT 5); a QoS 1
PUBLISH outside the gateway's ACL gets PUBACK 0x87 and goes nowhere; a Last Will outside it is
accepted at CONNECT but never published; a SUBSCRIBE to another gateway's alerts is granted but
nothing is delivered on it (the read ACL is checked per message, retained ones included); SIGHUP
re-reads both files and drops live connections whose login no longer holds.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from ingest.broker_files import BrokerFiles, BrokerFilesWriter
from store.gateway_credentials import issue_credentials, revoke_credentials
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from tests.support.services import COLLECTOR_LOGIN, TOOLS_LOGIN, wait_for

NOT_AUTHORIZED = 0x87
TIMEOUT_S = 10.0

REGISTRY = """
enterprises: [{id: E1, name: 一号矿, region: "360100", industry: coal_mine}]
gateways: [{id: G1, enterprise: E1}, {id: G2, enterprise: E1}]
"""


class Client:
    """A paho MQTT 5 client whose acknowledgements and messages the test can wait on."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None,
                 client_id: str = "", will: tuple[str, bytes] | None = None) -> None:
        self.port = port
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.reconnect_delay_set(60, 60)  # a refused login is not retried during a test
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            self.c.will_set(will[0], will[1], qos=1, retain=True)
        self._lock = threading.Lock()
        self.connack: ReasonCode | None = None
        self.disconnects = 0
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_publish = lambda c, u, mid, rc, p: self._put(self.pubacks, mid, rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self._put(self.subacks, mid, rcs)
        self.c.on_message = lambda c, u, m: self._append((m.topic, m.payload))

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        with self._lock:
            if self.connack is None:
                self.connack = rc

    def _on_disconnect(self, client, userdata, flags, rc, props) -> None:
        with self._lock:
            self.disconnects += 1

    def _put(self, d: dict, key, value) -> None:
        with self._lock:
            d[key] = value

    def _append(self, item) -> None:
        with self._lock:
            self.messages.append(item)

    async def connect(self) -> ReasonCode:
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        await wait_for(lambda: self.connack is not None, TIMEOUT_S, what="CONNACK")
        return self.connack

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> ReasonCode:
        mid = self.c.publish(topic, payload, qos=1, retain=retain).mid
        return await wait_for(lambda: self.pubacks.get(mid), TIMEOUT_S, what=f"PUBACK of {topic}")

    async def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.c.subscribe(topic, qos=1)
        return (await wait_for(lambda: self.subacks.get(mid), TIMEOUT_S, what=f"SUBACK of {topic}"))[0]

    async def received(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Wait for ``payload`` (a marker); returns everything received up to and including it."""
        def seen():
            with self._lock:
                for i, (_, p) in enumerate(self.messages):
                    if p == payload:
                        return self.messages[: i + 1]
            return None
        return await wait_for(seen, TIMEOUT_S, what=f"message {payload!r}")

    def drop_connection(self) -> None:
        """Close the socket without DISCONNECT, as a gateway losing power: its Will is sent."""
        self.c.loop_stop()
        self.c.socket().close()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def login(broker, username: str, password: str, **kw) -> tuple[Client, ReasonCode]:
    client = Client(broker.gateway_port, username, password, **kw)
    return client, await client.connect()


async def login_when(broker, username: str, password: str, accepted: bool, **kw) -> Client | None:
    """Log in until the broker's answer is ``accepted`` (a reload after SIGHUP is asynchronous)."""
    result: list[Client] = []

    async def attempt() -> bool:
        client, rc = await login(broker, username, password, **kw)
        if (rc == 0) == accepted:
            result.append(client)
            return True
        client.close()
        return False

    await wait_for(attempt, TIMEOUT_S, interval_s=0.1, what=f"{username} {'accepted' if accepted else 'refused'}")
    return result[0]


def pid_file(broker) -> Path:
    """The test broker runs in the foreground without a pid file; write one as a daemon would."""
    path = broker.data_dir / "test-mosquitto.pid"
    path.write_text(f"{broker.proc.pid}\n")
    return path


async def setup_gateways(db, broker) -> dict[str, str]:
    await import_registry(db, parse_registry_file(REGISTRY))
    passwords = {g: (await issue_credentials(db, "E1", g)).password for g in ("G1", "G2")}
    await BrokerFiles(broker.password_file, broker.acl_file, pid_file(broker)).sync(db)
    return passwords


async def test_a_gateway_uses_its_own_topics_only(db, broker):
    passwords = await setup_gateways(db, broker)
    monitor = Client(broker.port, *broker.tools_login)  # the loopback listener, as local tools use it
    assert await monitor.connect() == 0
    assert await monitor.subscribe("yj/v1/#") == 1
    yujing = Client(broker.port, *broker.login(COLLECTOR_LOGIN))  # publishes alerts, as the service does
    assert await yujing.connect() == 0
    assert await yujing.publish("yj/v1/E1/G2/alerts", b"retained alert of G2", retain=True) == 0

    g1 = await login_when(broker, "E1.G1", passwords["G1"], accepted=True, will=("yj/v1/E1/G1/status", b"offline"))
    try:
        assert await g1.publish("yj/v1/E1/G1/up", b"reading of G1") == 0
        assert await g1.publish("yj/v1/E1/G1/status", b"online", retain=True) == 0
        for topic in ("yj/v1/E1/G2/up", "yj/v1/E1/G2/status", "yj/v1/E1/G1/alerts", "yj/v1/E1/G1/other",
                      "yj/v1/E2/G1/up"):
            assert (await g1.publish(topic, b"forged " + topic.encode())).value == NOT_AUTHORIZED, topic
        assert await g1.publish("yj/v1/E1/G1/up", b"marker") == 0
        seen = await monitor.received(b"marker")
        assert [p for _, p in seen if p.startswith(b"forged")] == []
        assert ("yj/v1/E1/G1/up", b"reading of G1") in seen and ("yj/v1/E1/G1/status", b"online") in seen

        assert await g1.subscribe("yj/v1/E1/G1/alerts") == 1
        # Another gateway's alerts: granted by 2.0.11, but nothing arrives on it, retained or live.
        await g1.subscribe("yj/v1/E1/G2/alerts")
        await g1.subscribe("yj/v1/E1/+/alerts")
        await g1.subscribe("yj/#")
        assert await yujing.publish("yj/v1/E1/G2/alerts", b"live alert of G2") == 0
        assert await yujing.publish("yj/v1/E1/G1/alerts", b"alert of G1") == 0
        seen = await g1.received(b"alert of G1")
        assert {t for t, _ in seen} == {"yj/v1/E1/G1/alerts"}, seen
    finally:
        g1.close()
        monitor.close()
        yujing.close()


async def test_last_will_only_on_the_gateways_own_status(db, broker):
    passwords = await setup_gateways(db, broker)
    monitor = Client(broker.port, *broker.tools_login)
    assert await monitor.connect() == 0
    assert await monitor.subscribe("yj/v1/E1/+/status") == 1
    try:
        forger = await login_when(broker, "E1.G1", passwords["G1"], accepted=True,
                                  will=("yj/v1/E1/G2/status", b"forged offline"))
        forger.drop_connection()
        log = broker.data_dir / "mosquitto.log"
        await wait_for(lambda: "Client E1.G1 closed its connection" in log.read_text(), TIMEOUT_S, what="the close")
        honest, rc = await login(broker, "E1.G2", passwords["G2"], will=("yj/v1/E1/G2/status", b"offline"))
        assert rc == 0
        honest.drop_connection()
        seen = await monitor.received(b"offline")
        assert seen == [("yj/v1/E1/G2/status", b"offline")]  # one Will, the honest one
        late = Client(broker.port, *broker.tools_login)
        assert await late.connect() == 0
        await late.subscribe("yj/v1/E1/G2/status")
        assert await late.received(b"offline") == [("yj/v1/E1/G2/status", b"offline")]  # retained
        late.close()
    finally:
        monitor.close()


async def test_bad_logins_are_refused_on_both_listeners(db, broker):
    passwords = await setup_gateways(db, broker)
    g1 = await login_when(broker, "E1.G1", passwords["G1"], accepted=True)
    g1.close()
    for username, password in (("E1.G1", passwords["G2"]), ("E1.G1", ""), ("E1.G3", passwords["G1"]), (None, None)):
        client = Client(broker.gateway_port, username, password)
        assert (await client.connect()).value == NOT_AUTHORIZED, username
        client.close()
    # The loopback listener takes yujing's own logins only: no anonymous access, no gateway login.
    for username, password in ((None, None), ("E1.G1", passwords["G1"]), (TOOLS_LOGIN, "wrong")):
        client = Client(broker.port, username, password)
        assert (await client.connect()).value == NOT_AUTHORIZED, username
        client.close()
    local = Client(broker.port, *broker.tools_login)
    assert await local.connect() == 0
    assert await local.subscribe("yj/#") == 1
    assert await local.publish("yj/v1/E1/G2/up", b"a simulated reading") == 0
    await local.received(b"a simulated reading")
    # Its ACL: the tools may play gateways but not publish alerts to them.
    assert (await local.publish("yj/v1/E1/G2/alerts", b"forged alert")).value == NOT_AUTHORIZED
    local.close()


async def test_a_gateway_cannot_take_over_another_clients_session(db, broker):
    passwords = await setup_gateways(db, broker)
    collector = Client(broker.port, *broker.login(COLLECTOR_LOGIN), client_id=COLLECTOR_LOGIN)
    assert await collector.connect() == 0
    assert await collector.subscribe("yj/v1/+/+/up") == 1
    g2 = await login_when(broker, "E1.G2", passwords["G2"], accepted=True)
    try:
        # The broker makes the username the client id, whatever the gateway asks for.
        for stolen in ("yujing-collector", "E1.G2"):
            thief, rc = await login(broker, "E1.G1", passwords["G1"], client_id=stolen)
            assert rc == 0
            assert await thief.publish("yj/v1/E1/G1/up", stolen.encode()) == 0
            await collector.received(stolen.encode())
            thief.close()
        assert await g2.publish("yj/v1/E1/G2/up", b"G2 still connected") == 0
        await collector.received(b"G2 still connected")
        assert collector.disconnects == 0 and g2.disconnects == 0
    finally:
        g2.close()
        collector.close()


async def test_the_monitoring_login_reads_its_gateways_alerts_only(db, broker):
    await import_registry(db, parse_registry_file(REGISTRY))
    issued = {g: await issue_credentials(db, "E1", g) for g in ("G1", "G2")}
    await BrokerFiles(broker.password_file, broker.acl_file, pid_file(broker)).sync(db)
    g1 = await login_when(broker, "E1.G1", issued["G1"].password, accepted=True)
    watch = await login_when(broker, "E1.G1.monitor", issued["G1"].monitor_password, accepted=True)
    yujing = Client(broker.port, *broker.login(COLLECTOR_LOGIN))
    assert await yujing.connect() == 0
    try:
        for topic in ("yj/v1/E1/G1/up", "yj/v1/E1/G1/status", "yj/v1/E1/G1/alerts"):
            assert (await watch.publish(topic, b"from the monitor")).value == NOT_AUTHORIZED, topic
        await watch.subscribe("yj/v1/E1/#")
        for topic in ("yj/v1/E1/G2/alerts", "yj/v1/E1/G1/errors", "yj/v1/E1/G1/alerts"):
            assert await yujing.publish(topic, topic.encode()) == 0
        seen = await watch.received(b"yj/v1/E1/G1/alerts")
        assert [t for t, _ in seen] == ["yj/v1/E1/G1/errors", "yj/v1/E1/G1/alerts"]
        assert await g1.publish("yj/v1/E1/G1/up", b"still connected") == 0  # neither kicked the other
        assert g1.disconnects == 0 and watch.disconnects == 0
        # The gateway's password is not the monitor's, and the other way round.
        for username, password in (("E1.G1.monitor", issued["G1"].password),
                                   ("E1.G2.monitor", issued["G1"].monitor_password)):
            client, rc = await login(broker, username, password)
            assert rc.value == NOT_AUTHORIZED, username
            client.close()
    finally:
        for c in (g1, watch, yujing):
            c.close()


async def test_the_service_loop_applies_issue_rotate_and_revoke(db, db_url, broker):
    """No manual step: BrokerFilesWriter (run by the service) follows the database."""
    await import_registry(db, parse_registry_file(REGISTRY))
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    writer = BrokerFilesWriter(pool, BrokerFiles(broker.password_file, broker.acl_file, pid_file(broker)), poll_s=0.1)
    task = asyncio.create_task(writer.run())
    clients: list[Client] = []
    try:
        first = await issue_credentials(db, "E1", "G1")
        other = await issue_credentials(db, "E1", "G2")
        g1 = await login_when(broker, "E1.G1", first.password, accepted=True)
        clients.append(g1)
        rotated = await issue_credentials(db, "E1", "G1", rotate=True)
        clients.append(await login_when(broker, "E1.G1", first.password, accepted=False))
        # The reload dropped the session that logged in with the old password.
        await wait_for(lambda: g1.disconnects > 0, TIMEOUT_S, what="old session dropped")
        g1 = await login_when(broker, "E1.G1", rotated.password, accepted=True)
        clients.append(g1)
        await revoke_credentials(db, "E1", "G1")
        await wait_for(lambda: g1.disconnects > 0, TIMEOUT_S, what="revoked session dropped")
        clients.append(await login_when(broker, "E1.G1", rotated.password, accepted=False))
        await db.execute("UPDATE gateways SET active = false WHERE code = 'G2'")
        clients.append(await login_when(broker, "E1.G2", other.password, accepted=False))
    finally:
        task.cancel()
        for c in clients:
            c.close()
        await pool.close()


def test_cli_issues_a_working_login(db_url, broker, monkeypatch):
    from yujing.cli import app

    async def seed():
        conn = await asyncpg.connect(db_url)
        try:
            await import_registry(conn, parse_registry_file(REGISTRY))
        finally:
            await conn.close()

    asyncio.run(seed())
    monkeypatch.setenv("YUJING_DATABASE_URL", db_url)
    monkeypatch.setenv("YUJING_GATEWAY_BROKER__PASSWORD_FILE", str(broker.password_file))
    monkeypatch.setenv("YUJING_GATEWAY_BROKER__ACL_FILE", str(broker.acl_file))
    monkeypatch.setenv("YUJING_GATEWAY_BROKER__PID_FILE", str(pid_file(broker)))
    runner = CliRunner()
    result = runner.invoke(app, ["gateways", "credentials", "E1", "G1"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["username"] == "E1.G1" and "broker reloaded" in result.stderr
    assert lines["password"] not in broker.password_file.read_text()

    async def connects(password: str) -> bool:
        client = await login_when(broker, "E1.G1", password, accepted=True)
        client.close()
        return True

    assert asyncio.run(connects(lines["password"]))
    again = runner.invoke(app, ["gateways", "credentials", "E1", "G1"])
    assert again.exit_code == 2 and "rotate" in again.stderr
    out = runner.invoke(app, ["gateways", "broker-files", "--password-file", str(broker.data_dir / "p"),
                              "--acl-file", str(broker.data_dir / "a")])
    assert out.exit_code == 0 and "1 gateway logins" in out.stdout and "reloaded" in out.stdout
    assert (broker.data_dir / "a").read_text() == broker.acl_file.read_text()
    # A broker that cannot be told does not hide the new password (it is committed already).
    monkeypatch.setenv("YUJING_GATEWAY_BROKER__PID_FILE", str(broker.data_dir / "no-such.pid"))
    rotated = runner.invoke(app, ["gateways", "credentials", "E1", "G1", "--rotate"])
    assert rotated.exit_code == 0 and "password: " in rotated.stdout and "no broker pid" in rotated.stderr
