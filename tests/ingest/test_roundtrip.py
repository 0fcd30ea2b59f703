"""Gateways → real Mosquitto → yujing → real PostgreSQL/TimescaleDB, end to end."""

from __future__ import annotations

import asyncio
import json


from domain.codec import encode_batch, encode_status
from domain.topics import status_topic, up_topic
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from tests.support.fleet import Fleet, now_ms, stored
from tests.support.publisher import Publisher
from tests.support.running import running_service, service_settings
from tests.support.services import wait_for


async def count(db, sql="SELECT count(*) FROM readings"):
    return await db.fetchval(sql)


async def test_published_readings_are_stored_once(db_url, db, broker):
    fleet = Fleet("E1", gateways=4, sensors_per_gateway=50, base_ms=now_ms() - 60_000)
    await import_registry(db, parse_registry_file(fleet.registry_yaml()))
    messages = fleet.messages(200)
    async with running_service(service_settings(db_url, broker.url)):
        pub = Publisher(broker.port)
        await asyncio.to_thread(pub.publish_all, messages)
        await asyncio.to_thread(pub.wait_acked)
        await wait_for(lambda: _equals(db, 10_000), 30, what="10,000 readings stored")
        pub.close()
    assert set(await stored(db)) == fleet.expected(200)
    # A replay of everything (a gateway resending its backlog) stores nothing new.
    async with running_service(service_settings(db_url, broker.url)) as service:
        pub = Publisher(broker.port)
        await asyncio.to_thread(pub.publish_all, messages)
        await asyncio.to_thread(pub.wait_acked)
        await wait_for(lambda: service.batcher.committed_messages >= 200, 30, what="replay processed")
        pub.close()
    assert await count(db) == 10_000


async def _equals(db, n):
    return await count(db) == n


async def test_bad_input_becomes_dead_letters_and_the_rest_is_stored(db_url, db, broker):
    fleet = Fleet("E1", gateways=1, sensors_per_gateway=3, base_ms=now_ms())
    await import_registry(db, parse_registry_file(fleet.registry_yaml()))
    t = now_ms()
    good = up_topic("E1", "G000")
    messages = [
        (good, b"not json at all"),
        ("yj/v1/E1/G999/up", encode_batch(t, ["S000-000"], [1.0])),
        ("yj/v1/E1/G 0/up", b"{}"),  # matches the subscription, invalid gateway id
        (good, b'{"ts": %d, "readings": [{"s": "S000-000", "v": 1.5}, {"s": "S000-001", "v": NaN},'
               b' {"s": "GHOST", "v": 2}, {"s": "S000-002", "v": 1e6}]}' % t),
        (good, b"{" * 5_000),
        (status_topic("E1", "G000"), encode_status(False)),
        (good, encode_batch(t + 1, ["S000-000"], [2.5])),
    ]
    settings = service_settings(db_url, broker.url)
    settings.ingest.max_payload_bytes = 4096
    async with running_service(settings) as service:
        pub = Publisher(broker.port)
        await asyncio.to_thread(pub.publish_all, messages)
        await asyncio.to_thread(pub.wait_acked)
        await wait_for(lambda: service.batcher.committed_messages >= len(messages), 30, what="messages committed")
        pub.close()
    rows = sorted(await stored(db))
    assert [(code, v) for code, _, v in rows] == [("S000-000", 1.5), ("S000-000", 2.5), ("S000-002", 1e6)]
    rows = await db.fetch("SELECT reason, refused, reasons FROM dead_letters ORDER BY reason")
    # One dead letter per message: the partly refused one lists its two refused readings.
    assert [r["reason"] for r in rows] == ["bad_encoding", "bad_topic", "not_a_number", "oversize", "unknown_gateway"]
    partly = next(r for r in rows if r["refused"])
    assert json.loads(partly["reasons"]) == {"not_a_number": 1, "unknown_sensor": 1}
    over = await db.fetchval("SELECT quality FROM readings WHERE value = 1e6")
    assert over & 0x0100
    assert await db.fetchval("SELECT online FROM gateways WHERE code = 'G000'") is False


async def test_sensor_registered_while_running_is_accepted(db_url, db, broker):
    fleet = Fleet("E1", gateways=1, sensors_per_gateway=1, base_ms=now_ms())
    await import_registry(db, parse_registry_file(fleet.registry_yaml()))
    settings = service_settings(db_url, broker.url)
    settings.ingest.registry_poll_s = 0.2
    async with running_service(settings) as service:
        pub = Publisher(broker.port)
        await import_registry(db, parse_registry_file(
            "sensors: [{id: NEW-1, gateway: G000, enterprise: E1, kind: methane}]"))
        await wait_for(lambda: _registered(service), 10, what="registry reload")
        pub.publish_all([(up_topic("E1", "G000"), encode_batch(now_ms(), ["NEW-1"], [0.3]))])
        await asyncio.to_thread(pub.wait_acked)
        await wait_for(lambda: _equals(db, 1), 10, what="reading stored")
        pub.close()


def _registered(service) -> bool:
    return "NEW-1" in service.decoder.registry.sensor_ids.get("E1", {})
