"""Poison messages through the real service: Mosquitto → `yujing run` → PostgreSQL.

Each of these payloads ended `yujing run` (and again on every restart, as the broker redelivered
it). Now each becomes a dead letter, the message is acknowledged, and the service keeps storing
what follows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest

from domain.codec import encode_batch
from domain.topics import up_topic
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from tests.ingest.test_failures import wait_until_subscribed
from tests.support.fleet import Fleet, now_ms, stored
from tests.support.publisher import Publisher
from tests.support.running import ServiceProcess, running_service, service_settings
from tests.support.services import wait_for


def poison(t: int) -> dict[str, tuple[bytes, str, list]]:
    """name → (payload, dead-letter reason, listed refused readings [index, sensor, reason])."""
    b = b'{"ts":%d,"readings":[' % t
    return {
        "ff": (b + b'{"s":"\xff","v":1}]}', "bad_encoding", []),
        "overflow": (b + b'{"s":"S000-000","v":1' + b"0" * 400 + b"}]}", "not_a_number", [[0, "S000-000", "not_a_number"]]),
        "digits_v": (b + b'{"s":"S000-000","v":' + b"9" * 5000 + b"}]}", "not_a_number", [[0, "S000-000", "not_a_number"]]),
        "digits_ts": (b'{"ts":' + b"9" * 5000 + b',"readings":[{"s":"S000-000","v":1}]}', "bad_schema", []),
        "surrogate": (b + b'{"s":"\\ud800","v":1}]}', "bad_schema", [[0, "\\ud800", "bad_schema"]]),
    }


async def prepare(db) -> str:
    fleet = Fleet("E1", gateways=1, sensors_per_gateway=2, base_ms=now_ms())
    await import_registry(db, parse_registry_file(fleet.registry_yaml()))
    return up_topic("E1", "G000")


@pytest.mark.parametrize("name", ["ff", "overflow", "digits_v", "digits_ts", "surrogate"])
async def test_poison_message_is_a_dead_letter_and_the_service_keeps_running(db_url, db, broker, name, caplog):
    topic = await prepare(db)
    t = now_ms()
    payload, reason, listed = poison(t)[name]
    messages = [(topic, payload), (topic, encode_batch(t + 1, ["S000-001"], [2.5]))]
    caplog.set_level(logging.WARNING)
    async with running_service(service_settings(db_url, broker.url)) as service:
        pub = Publisher(broker.port)
        await asyncio.to_thread(pub.publish_all, messages)
        await asyncio.to_thread(pub.wait_acked)
        await wait_for(lambda: service.batcher.committed_messages >= 2, 30, what="both messages committed")
        pub.close()
    assert [(code, v) for code, _, v in await stored(db)] == [("S000-001", 2.5)]
    [dl] = await db.fetch("SELECT reason, refused, readings, payload, gateway FROM dead_letters")
    assert (dl["reason"], dl["refused"], json.loads(dl["readings"]), dl["gateway"]) == (reason, len(listed), listed, "G000")
    assert bytes(dl["payload"]) == payload[:4096]
    assert not [r for r in caplog.records if "stage failed" in r.getMessage()]


async def test_all_poison_messages_leave_yujing_run_up(db_url, db, broker, tmp_path):
    topic = await prepare(db)
    t = now_ms()
    messages = [(topic, p) for p, _, _ in poison(t).values()] + [(topic, encode_batch(t + 1, ["S000-001"], [2.5]))]
    proc = ServiceProcess(db_url, broker.url, f"yj-poison-{uuid.uuid4().hex[:6]}", tmp_path / "service.log")
    proc.start()
    try:
        await wait_until_subscribed(broker.port, db)
        pub = Publisher(broker.port)
        await asyncio.to_thread(pub.publish_all, messages)
        await asyncio.to_thread(pub.wait_acked)
        await wait_for(lambda: _count(db, "SELECT count(*) FROM readings", 1), 60, what="the good reading stored")
        await wait_for(lambda: _count(db, "SELECT count(*) FROM dead_letters", 5), 30, what="five dead letters")
        pub.close()
        assert proc.alive()
        assert proc.terminate() == 0
    finally:
        if proc.alive():
            proc.kill()
    assert "Traceback" not in (tmp_path / "service.log").read_text()


async def _count(db, sql: str, n: int) -> bool:
    return await db.fetchval(sql) == n
