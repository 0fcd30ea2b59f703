"""QoS 1 acknowledgements leave in the order the messages came in, whatever order writers commit.

The broker's own debug log is the witness: it records every PUBLISH it sends to the collector
and every PUBACK it receives back, with their packet ids.
"""

from __future__ import annotations

import asyncio
import re

import asyncpg

from domain.codec import encode_status
from domain.topics import status_topic
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from store.writer import GATEWAY_LOCK
from tests.support.fleet import Fleet, now_ms
from tests.support.publisher import Publisher
from tests.support.running import running_service, service_settings
from tests.support.services import Broker, wait_for

MESSAGES = 300


def broker_log_order(broker: Broker, client_id: str) -> tuple[list[int], list[int]]:
    """Packet ids of the PUBLISHes sent to ``client_id`` and of the PUBACKs received from it."""
    text = (broker.data_dir / "mosquitto.log").read_text(errors="replace")
    cid = re.escape(client_id)
    sent = [int(m) for m in re.findall(rf"Sending PUBLISH to {cid} \(d\d, q1, r\d, m(\d+),", text)]
    acked = [int(m) for m in re.findall(rf"Received PUBACK from {cid} \(Mid: (\d+)", text)]
    return sent, acked


async def test_acks_leave_in_receive_order_when_an_earlier_batch_commits_last(db_url, db):
    broker = Broker(overrides={"log_type": "all"})
    broker.start()
    try:
        fleet = Fleet("E1", gateways=4, sensors_per_gateway=50, base_ms=now_ms() - 60_000)
        await import_registry(db, parse_registry_file(fleet.registry_yaml()))
        settings = service_settings(db_url, broker.url)
        settings.ingest.writer_connections = 2
        settings.ingest.batch_max_messages = 50
        # A gateway status is written under an advisory lock; holding it stalls the writer that
        # took the first batch (the one with the status) while the other writer commits the rest.
        blocker = await asyncpg.connect(db_url)
        await blocker.execute("SELECT pg_advisory_lock($1)", GATEWAY_LOCK)
        async with running_service(settings) as service:
            pub = Publisher(broker.port)
            pub.publish_all([(status_topic("E1", "G000"), encode_status(True))])
            await wait_for(lambda: _waiting_on_lock(db), 20, what="a writer waiting on the status lock")
            await asyncio.to_thread(pub.publish_all, fleet.messages(MESSAGES))
            await wait_for(lambda: service.batcher.committed_messages >= MESSAGES, 30,
                           what="later batches committed by the other writer")
            await blocker.execute("SELECT pg_advisory_unlock($1)", GATEWAY_LOCK)
            await wait_for(lambda: service.batcher.committed_messages >= MESSAGES + 1, 30, what="all committed")
            await asyncio.to_thread(pub.wait_acked)
            pub.close()
            client_id = settings.mqtt_client_id
            await wait_for(lambda: len(broker_log_order(broker, client_id)[1]) >= MESSAGES + 1, 10,
                           what="every PUBACK in the broker log")
        await blocker.close()
        sent, acked = broker_log_order(broker, client_id)
        assert len(sent) == MESSAGES + 1
        assert acked == sent, "PUBACKs left out of receive order"
        assert await db.fetchval("SELECT count(*) FROM readings") == MESSAGES * 50
    finally:
        broker.close()


async def _waiting_on_lock(db) -> bool:
    return bool(await db.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
