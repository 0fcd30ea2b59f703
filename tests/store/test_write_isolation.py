"""Rows the database refuses are isolated on every write path; dead letters are bounded per gateway.

The refusals are real: a CHECK constraint added to the test's own database refuses a value (or a
dead letter's text), exactly as the server refuses bad data in production.
"""

from __future__ import annotations

import json

import asyncpg
import numpy as np
import pytest

from domain.messages import ReadingBatch, RefusedReading, Rejected, RejectReason
from domain.quality import Quality
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from store.writer import ReadingWriter, WriteBatch

T0 = 1_764_400_000_000_000
POISON = 666.0
REGISTRY = """
enterprises: [{id: E1, name: 矿, region: "360100", industry: coal_mine}]
gateways:    [{id: G1, enterprise: E1}, {id: G2, enterprise: E1}]
sensors:     [{id: S1, gateway: G1, kind: methane}, {id: S2, gateway: G1, kind: methane}]
"""


async def _as_owner(admin_db_url: str, sql: str) -> None:
    """A constraint the database refuses rows with: only the table's owner (or a superuser) adds it;
    the service's role cannot."""
    conn = await asyncpg.connect(admin_db_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def pool(db_url, db, admin_db_url):
    await import_registry(db, parse_registry_file(REGISTRY))
    await _as_owner(admin_db_url, f"ALTER TABLE readings ADD CONSTRAINT refuse_poison CHECK (value <> {POISON})")
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    yield p
    await p.close()


def batch(sensor, ts_us, value, quality=None, device_ts_us=None, rejected=()) -> WriteBatch:
    readings = ReadingBatch.build(sensor=sensor, ts_us=ts_us, value=value, quality=quality,
                                  device_ts_us=device_ts_us, received_us=np.full(len(sensor), T0))
    return WriteBatch(readings, list(rejected), [], mids=[1], messages=1)


async def stored(db):
    return sorted((r["sensor"], r["value"]) for r in await db.fetch("SELECT sensor, value FROM readings"))


async def refused_dead_letter(db):
    row = await db.fetchrow("SELECT reason, refused, readings FROM dead_letters WHERE reason = 'database_refused'")
    return row["refused"], [e[1] for e in json.loads(row["readings"])]


async def test_plain_copy_bisects_out_the_refused_row(pool, db):
    result = await ReadingWriter(pool).write(batch([1, 1, 2, 2], [T0, T0 + 1, T0, T0 + 1], [1.0, POISON, 2.0, 3.0]))
    assert (result.inserted, result.duplicates, len(result.refused)) == (3, 0, 1)
    assert result.refused[0].reason is RejectReason.DATABASE_REFUSED and "refuse_poison" in result.refused[0].error
    assert await stored(db) == [(1, 1.0), (2, 2.0), (2, 3.0)]
    assert await refused_dead_letter(db) == (1, ["S1"])


async def test_redelivery_merge_bisects_out_the_refused_row(pool, db):
    w = ReadingWriter(pool)
    await w.write(batch([1], [T0], [1.0]))
    # The plain COPY hits the unique index (a redelivery), the merge then hits the refused value.
    result = await w.write(batch([1, 2, 2], [T0, T0, T0 + 1], [1.0, POISON, 5.0]))
    assert (result.inserted, result.duplicates, len(result.refused), result.merged) == (1, 1, 1, True)
    assert await stored(db) == [(1, 1.0), (2, 5.0)]
    assert await refused_dead_letter(db) == (1, ["S2"])


async def test_clock_corrected_insert_bisects_out_the_refused_row(pool, db):
    q = Quality.CLOCK_CORRECTED
    result = await ReadingWriter(pool).write(
        batch([1, 2], [T0, T0], [POISON, 3.0], [q, q], [T0 + 3_600_000_000, T0 + 3_600_000_000]))
    assert (result.inserted, result.duplicates, len(result.refused)) == (1, 0, 1)
    assert await stored(db) == [(2, 3.0)]
    assert await refused_dead_letter(db) == (1, ["S1"])


def rejected(detail: str, gateway: str = "G1", sensor: str = "X", received_us: int = T0) -> Rejected:
    return Rejected.of_readings(f"yj/v1/E1/{gateway}/up", b'{"ts":1}', received_us, "E1", gateway,
                                [RefusedReading(0, sensor, RejectReason.UNKNOWN_SENSOR)],
                                {RejectReason.UNKNOWN_SENSOR: 3}, 5, detail)


async def test_dead_letter_insert_bisects_and_keeps_the_counts_of_a_refused_row(pool, db, admin_db_url):
    await _as_owner(admin_db_url, "ALTER TABLE dead_letters ADD CONSTRAINT refuse_poison CHECK (detail NOT LIKE '%poison%')")
    dead = [rejected("fine"), rejected("poison here"), rejected("also fine", sensor="\ud800\x00")]
    result = await ReadingWriter(pool).write(batch([1], [T0], [1.0], rejected=dead))
    assert result.dead_letters == 3 and result.inserted == 1
    rows = await db.fetch("SELECT detail, refused, reasons, readings FROM dead_letters ORDER BY id")
    assert [r["refused"] for r in rows] == [3, 3, 3]  # counts survive, even of the refused row
    assert sorted(r["detail"][:13] for r in rows) == ["3 of 5 readin", "3 of 5 readin", "the database "]
    # A lone surrogate and a NUL are stored as escapes, never refused by the server.
    assert [json.loads(r["readings"])[0][1] for r in rows if "also" in r["detail"]] == ["\\ud800\\x00"]


async def test_dead_letters_beyond_the_per_gateway_cap_are_counted_not_written(pool, db):
    w = ReadingWriter(pool, dead_letters_per_gateway_minute=2)
    dead = [rejected(f"m{i}") for i in range(5)] + [rejected("other gateway", gateway="G2")]
    result = await w.write(batch([1], [T0], [1.0], rejected=dead))
    assert (result.dead_letters, result.capped_messages, result.capped_readings) == (3, 3, 9)
    assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE gateway = 'G1'") == 2
    over = await db.fetchrow("SELECT gateway, messages, readings FROM dead_letter_overflow")
    assert tuple(over) == ("G1", 3, 9)
    # The next minute the gateway has its allowance again; the overflow count only grows.
    nxt = [rejected("later", received_us=T0 + 60_000_000) for _ in range(3)]
    result = await w.write(batch([2], [T0], [1.0], rejected=nxt))
    assert (result.dead_letters, result.capped_messages) == (2, 1)
    assert await db.fetchval("SELECT sum(messages) FROM dead_letter_overflow") == 4


async def test_made_up_gateways_share_one_allowance(pool, db):
    w = ReadingWriter(pool, dead_letters_per_gateway_minute=2)
    sprayed = [Rejected(RejectReason.UNKNOWN_GATEWAY, "not registered", f"yj/v1/E1/FAKE{i}/up", b"{}", T0, "E1",
                        f"FAKE{i}") for i in range(10)]
    result = await w.write(batch([1], [T0], [1.0], rejected=sprayed))
    assert (result.dead_letters, result.capped_messages) == (2, 8)
    assert [tuple(r) for r in await db.fetch("SELECT enterprise, gateway, messages FROM dead_letter_overflow")] == [
        ("", "", 8)]
