"""Faults under load: every published reading stored once and none twice.

Each test offers 100,000 readings (2,000 messages of 50) at about 42,000 readings/s — over 30 %
of the ingest capacity that bench/ingest.py measures on these machines — and strikes while
messages are in flight (published but not yet committed and acknowledged).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import uuid

import asyncpg
import pytest
from prometheus_client import REGISTRY

from domain.codec import encode_batch
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from tests.support.fleet import Fleet, now_ms, stored
from tests.support.postgres import PrivateCluster
from tests.support.publisher import Publisher
from tests.support.running import ServiceProcess, running_service, service_settings
from tests.support.services import wait_for

MESSAGES = 2_000
READINGS = MESSAGES * 50
RATE_MSGS_S = 840  # ≈ 42,000 readings/s

pytestmark = pytest.mark.slow


def fleet() -> Fleet:
    return Fleet("E1", gateways=40, sensors_per_gateway=50, base_ms=now_ms() - 3_600_000)


async def wait_until_subscribed(port: int, db) -> None:
    """A status probe, repeated until the service has stored it: its session exists from then on."""
    probe = Publisher(port)

    async def stored_online():
        probe.publish_all([("yj/v1/E1/G000/status", b"online")])
        await asyncio.sleep(0.2)
        return await db.fetchval("SELECT online FROM gateways WHERE code = 'G000'")

    await wait_for(stored_online, 30, what="service subscribed")
    probe.close()


async def count(conn) -> int:
    return await conn.fetchval("SELECT count(*) FROM readings")


class Offered:
    """Publishes the fleet's messages at the test rate from a thread."""

    def __init__(self, port: int, messages) -> None:
        self.publisher = Publisher(port)
        self.thread = threading.Thread(target=self.publisher.publish_all, args=(messages, RATE_MSGS_S), daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def readings(self) -> int:
        return self.publisher.published * 50

    async def finish(self) -> None:
        await asyncio.to_thread(self.thread.join, 120)
        await asyncio.to_thread(self.publisher.wait_acked, 120)
        self.publisher.close()


async def strike_while_in_flight(offered: Offered, committed, fault) -> tuple[int, int]:
    """Wait until a third of the readings are committed, then run ``fault`` at once."""
    await wait_for(lambda: _at_least(committed, READINGS // 3), 60, interval_s=0.01, what="a third committed")
    published, stored_now = offered.readings, await committed()
    await fault()
    return published, stored_now


async def _at_least(committed, n) -> bool:
    return await committed() >= n


async def assert_exactly_once(conn, f: Fleet) -> None:
    await wait_for(lambda: _at_least(lambda: count(conn), READINGS), 120, what="every reading stored")
    await asyncio.sleep(0.5)  # anything still arriving would be a duplicate attempt
    rows = await stored(conn)
    assert len(rows) == READINGS
    assert set(rows) == f.expected(MESSAGES)


async def test_collector_killed_with_sigkill_then_restarted(db_url, db, broker, tmp_path):
    f = fleet()
    await import_registry(db, parse_registry_file(f.registry_yaml()))
    proc = ServiceProcess(db_url, broker.url, f"yj-kill-{uuid.uuid4().hex[:6]}", tmp_path / "service.log")
    proc.start()
    try:
        await wait_until_subscribed(broker.port, db)
        offered = Offered(broker.port, f.messages(MESSAGES))
        offered.start()

        async def kill_and_restart():
            proc.kill()
            await asyncio.sleep(0.5)
            proc.start()

        published, committed = await strike_while_in_flight(offered, lambda: count(db), kill_and_restart)
        assert published > committed, "the fault must strike while readings are in flight"
        await offered.finish()
        await assert_exactly_once(db, f)
        assert proc.terminate() == 0
    finally:
        if proc.alive():
            proc.kill()
    log = (tmp_path / "service.log").read_text()
    assert "Traceback" not in log


@pytest.fixture
async def cluster():
    """A private PostgreSQL cluster (so restarting it disturbs no other test) with a migrated
    database ``yujing``."""
    c = PrivateCluster()
    c.init()
    c.start()
    try:
        await c.create_app_database("yujing")
        yield c
    finally:
        c.close()


async def import_into(cluster: PrivateCluster, registry_yaml: str) -> None:
    conn = await asyncpg.connect(cluster.url("yujing"))
    try:
        await import_registry(conn, parse_registry_file(registry_yaml))
    finally:
        await conn.close()


async def test_postgresql_restarted_under_load(broker, cluster):
    f = fleet()
    await import_into(cluster, f.registry_yaml())

    async def committed():
        c = await asyncpg.connect(cluster.url("yujing"))
        try:
            return await count(c)
        finally:
            await c.close()

    async with running_service(service_settings(cluster.service_url("yujing"), broker.url)) as service:
        offered = Offered(broker.port, f.messages(MESSAGES))
        offered.start()

        async def restart():
            await asyncio.to_thread(cluster.restart, "immediate")

        published, stored_now = await strike_while_in_flight(offered, committed, restart)
        assert published > stored_now
        await offered.finish()
        conn = await asyncpg.connect(cluster.url("yujing"))
        try:
            await assert_exactly_once(conn, f)
        finally:
            await conn.close()
        # The table holds each reading once (above). The counter of new rows may fall short: a commit
        # whose reply the crash swallowed is retried, and its rows are then found already stored.
        assert service.batcher.committed_readings <= READINGS


async def test_broker_restarted_under_load(db_url, db, broker):
    f = fleet()
    await import_registry(db, parse_registry_file(f.registry_yaml()))
    async with running_service(service_settings(db_url, broker.url)):
        offered = Offered(broker.port, f.messages(MESSAGES))
        offered.start()

        async def restart():
            await asyncio.to_thread(broker.restart)  # SIGTERM: the broker saves its sessions and queues

        published, committed = await strike_while_in_flight(offered, lambda: count(db), restart)
        assert published > committed
        await offered.finish()
        await assert_exactly_once(db, f)


async def test_findings_raised_while_the_database_is_down_reach_the_alerts(broker, cluster):
    """The detectors keep working during an outage; their findings wait for the database."""
    await import_into(cluster, 'enterprises: [{id: E1, name: 某煤矿, region: "360100", industry: coal_mine}]\n'
                               "gateways: [{id: G1, enterprise: E1}]\n"
                               "sensors: [{id: CH4-01, gateway: G1, kind: methane, location_class: T1}]\n")
    async with running_service(service_settings(cluster.service_url("yujing"), broker.url)) as service:
        await asyncio.to_thread(cluster.stop, "immediate")
        before = _raised()
        pub = Publisher(broker.port)
        t = now_ms()
        pub.publish_all([
            ("yj/v1/E1/G1/up", encode_batch(t, ["CH4-01"], [1.7])),  # above the power-cut setpoint
            ("yj/v1/E1/G1/status", b"offline"),
        ])
        await asyncio.to_thread(pub.wait_acked)
        # the detectors raise findings now, and delivering them waits for the database (which holds
        # up the pipeline: a message decoded after the first findings waits in the broker)
        await wait_for(lambda: any(_raised()[r] > before[r] for r in ("limit", "gateway_offline")), 30,
                       what="findings raised while the database is down")
        assert service.batcher.committed_messages == 0
        await asyncio.to_thread(cluster.start)

        async def alerted():
            c = await asyncpg.connect(cluster.url("yujing"))
            try:
                return {r["rule"] for r in await c.fetch("SELECT rule FROM alerts")}
            finally:
                await c.close()

        rules = await wait_for(lambda: _has(alerted, {"limit", "gateway_offline"}), 60, what="alerts after recovery")
        assert {"limit", "gateway_offline"} <= rules
        await wait_for(lambda: service.batcher.committed_messages >= 2, 30, what="messages committed")
        pub.close()


def _raised() -> collections.Counter:
    """Findings raised so far in this process, by rule (the detection stage's own counter)."""
    out: collections.Counter = collections.Counter()
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "yujing_findings_total" and sample.labels.get("event") == "raise":
                out[sample.labels["rule"]] += sample.value
    return out


async def _has(fetch, wanted: set[str]):
    got = await fetch()
    return got if wanted <= got else None
