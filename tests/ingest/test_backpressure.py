"""The collector bounds its own intake: a broker backlog larger than its credit stays in the broker.

Mosquitto 2.0.11 (the broker the project ships) sends a reconnecting MQTT 5 client its whole
queue once the client acknowledges, whatever Receive Maximum the client announced, so the bound
must come from the collector: it stops reading from its socket while its inbox is full.
"""

from __future__ import annotations

import asyncio

import asyncpg

from domain.codec import encode_status
from domain.topics import status_topic
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from store.writer import GATEWAY_LOCK
from tests.support.fleet import Fleet, now_ms
from tests.support.publisher import Publisher
from tests.support.running import running_service, service_settings
from tests.support.services import wait_for
from ingest.settings import IngestSettings

CREDIT = 300
BACKLOG = 4_000  # messages of 10 readings, queued in the broker while the collector is away
KEEPALIVE_S = 5


async def _sample_inbox(service, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], service.bridge.pending())
        await asyncio.sleep(0.002)


async def test_a_backlog_larger_than_the_credit_waits_in_the_broker_and_nothing_is_lost(db_url, db, broker):
    fleet = Fleet("E1", gateways=10, sensors_per_gateway=10, base_ms=now_ms() - 3_600_000)
    await import_registry(db, parse_registry_file(fleet.registry_yaml()))
    settings = service_settings(db_url, broker.url, mqtt_receive_maximum=CREDIT, mqtt_keepalive_s=KEEPALIVE_S,
                                ingest=IngestSettings(batch_max_messages=100, writer_connections=1))
    async with running_service(settings):
        pass  # the persistent session now exists: the broker queues for it
    pub = Publisher(broker.port)
    messages = fleet.messages(BACKLOG)
    # Mosquitto honours Receive Maximum until the client acknowledges: the first 1,000 messages
    # commit and are acknowledged, then the status message stalls the writer.
    pub.publish_all([*messages[:1000], (status_topic("E1", "G000"), encode_status(True)), *messages[1000:]])
    await asyncio.to_thread(pub.wait_acked)
    pub.close()

    # The one writer stalls on the batch that holds the gateway status for three keepalives: the queue fills, intake stops, the inbox fills to its credit and reads stop.
    blocker = await asyncpg.connect(db_url)
    await blocker.execute("SELECT pg_advisory_lock($1)", GATEWAY_LOCK)
    peak, stop = [0], asyncio.Event()
    async with running_service(settings) as service:
        sampler = asyncio.create_task(_sample_inbox(service, peak, stop))
        await wait_for(lambda: service.bridge.pending() >= CREDIT, 20, what="inbox full")
        await asyncio.sleep(3 * KEEPALIVE_S)  # the broker drops a silent client after 1.5 keepalives
        assert service.bridge.pending() == CREDIT
        assert service.bridge.connected and service.bridge.connects == 1
        assert service.bridge.held_pings >= 2  # the broker heard from the collector while it did not read
        await blocker.execute("SELECT pg_advisory_unlock($1)", GATEWAY_LOCK)
        await wait_for(lambda: service.batcher.committed_messages >= BACKLOG + 1, 60, what="backlog drained")
        stop.set()
        await sampler
        assert service.bridge.connects == 1, "the connection was lost while reads were held"
        assert service.bridge.fast_messages > BACKLOG / 2  # most came through the read-ahead fast path
    await blocker.close()
    assert 0 < peak[0] <= CREDIT
    assert await db.fetchval("SELECT count(*) FROM readings") == BACKLOG * 10
    assert await db.fetchval("SELECT count(DISTINCT (sensor, ts)) FROM readings") == BACKLOG * 10
