"""The write path: plain binary COPY, the conflict-safe merge, dead letters, gateway status."""

from __future__ import annotations

import json

import asyncpg
import numpy as np
import pytest

from domain.messages import GatewayStatus, ReadingBatch, RefusedReading, Rejected, RejectReason
from domain.quality import Quality
from store.copy_format import PG_EPOCH_US
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from store.writer import ReadingWriter, WriteBatch, drop_repeats

T0 = 1_764_400_000_000_000
REGISTRY = """
enterprises: [{id: E1, name: 矿, region: "360100", industry: coal_mine}]
gateways:    [{id: G1, enterprise: E1}]
sensors:     [{id: S1, gateway: G1, kind: methane}, {id: S2, gateway: G1, kind: methane}]
"""


@pytest.fixture
async def pool(db_url, db):
    await import_registry(db, parse_registry_file(REGISTRY))
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    yield p
    await p.close()


def batch(sensor, ts_us, value, quality=None, device_ts_us=None, rejected=(), statuses=()) -> WriteBatch:
    readings = ReadingBatch.build(sensor=sensor, ts_us=ts_us, value=value, quality=quality, device_ts_us=device_ts_us,
                                  received_us=np.full(len(sensor), T0))
    return WriteBatch(readings, list(rejected), list(statuses), mids=[1], messages=1)


async def rows(db):
    return [tuple(r) for r in await db.fetch(
        "SELECT sensor, (extract(epoch FROM ts) * 1e6)::bigint, value, quality FROM readings ORDER BY sensor, ts")]


async def test_copy_stores_columns_exactly(pool, db):
    w = ReadingWriter(pool)
    ts = [T0, T0 + 1, T0 + 999_999]
    result = await w.write(batch([1, 1, 2], ts, [0.1, -2.5, 1e300], [0, Quality.CALIBRATING, Quality.OVER_RANGE]))
    assert (result.inserted, result.duplicates, result.merged) == (3, 0, False)
    assert await rows(db) == [(1, T0, 0.1, 0), (1, T0 + 1, -2.5, 1), (2, T0 + 999_999, 1e300, 256)]


async def test_replay_merges_without_duplicates(pool, db):
    w = ReadingWriter(pool)
    await w.write(batch([1, 2], [T0, T0], [1.0, 2.0]))
    result = await w.write(batch([1, 2, 1], [T0, T0, T0 + 1], [1.0, 2.0, 3.0]))  # two old, one new
    assert (result.inserted, result.duplicates, result.merged) == (1, 2, True)
    assert len(await rows(db)) == 3


async def test_repeats_within_a_batch_keep_the_first_and_refuse_other_values(pool, db):
    w = ReadingWriter(pool)
    result = await w.write(batch([1, 1, 2, 1, 2], [T0, T0, T0, T0, T0], [1.0, 9.0, 2.0, 8.0, 2.0]))
    assert (result.inserted, result.duplicates, result.merged) == (2, 1, False)  # 2.0 again is a duplicate
    assert [(r.sensor, r.value, r.kept, r.reason) for r in result.refused] == [
        (1, 9.0, 1.0, RejectReason.CONFLICTING_VALUE), (1, 8.0, 1.0, RejectReason.CONFLICTING_VALUE)]
    assert await rows(db) == [(1, T0, 1.0, 0), (2, T0, 2.0, 0)]
    dl = await db.fetchrow("SELECT * FROM dead_letters")
    assert (dl["reason"], dl["refused"], dl["enterprise"], dl["gateway"]) == ("conflicting_value", 2, "E1", "G1")
    listed = json.loads(dl["readings"])
    assert [e[1:3] for e in listed] == [["S1", "conflicting_value"]] * 2
    assert "9.0" in listed[0][3] and "kept 1.0" in listed[0][3]


async def test_redelivery_with_another_value_is_a_conflicting_value(pool, db):
    w = ReadingWriter(pool)
    await w.write(batch([1, 2], [T0, T0], [1.0, 2.0]))
    result = await w.write(batch([1, 2, 1], [T0, T0, T0 + 1], [1.5, 2.0, 3.0]))  # S1 at T0 changed
    assert (result.inserted, result.duplicates, result.merged) == (1, 1, True)
    assert [(r.sensor, r.value, r.kept, r.reason) for r in result.refused] == [(1, 1.5, 1.0, RejectReason.CONFLICTING_VALUE)]
    assert await rows(db) == [(1, T0, 1.0, 0), (1, T0 + 1, 3.0, 0), (2, T0, 2.0, 0)]
    assert json.loads(await db.fetchval("SELECT reasons FROM dead_letters")) == {"conflicting_value": 1}


def test_drop_repeats_matches_a_naive_loop():
    rng = np.random.default_rng(11)
    s = rng.integers(0, 5, 500)
    t = rng.integers(0, 20, 500)
    b = ReadingBatch.build(sensor=s, ts_us=t, value=np.arange(500.0))
    kept, repeats = drop_repeats(b)
    seen, expect = set(), []
    for i in range(500):
        if (s[i], t[i]) not in seen:
            seen.add((s[i], t[i]))
            expect.append(float(i))
    assert sorted(kept.value.tolist()) == expect and repeats == 500 - len(expect)


async def test_clock_corrected_readings_are_idempotent_by_device_time(pool, db):
    w = ReadingWriter(pool)
    device = T0 - 3_600_000_000
    q = Quality.CLOCK_CORRECTED
    await w.write(batch([1], [T0], [5.0], [q], [device]))
    # The redelivery is stored at another receive time, but carries the same device time.
    result = await w.write(batch([1], [T0 + 2_000_000], [5.0], [q], [device]))
    assert (result.inserted, result.duplicates) == (0, 1)
    stored = await db.fetch("SELECT (extract(epoch FROM device_ts) * 1e6)::bigint AS d FROM readings")
    assert [r["d"] for r in stored] == [device]


async def test_dead_letters_and_statuses_commit_with_the_readings(pool, db):
    w = ReadingWriter(pool)
    rej = Rejected.of_readings("yj/v1/E1/G1/up", b'{"ts":1}', T0, "E1", "G1",
                               [RefusedReading(0, "X", RejectReason.UNKNOWN_SENSOR)],
                               {RejectReason.UNKNOWN_SENSOR: 1}, 2, "reading 0: sensor 'X' is not registered")
    st_old = GatewayStatus("E1", "G1", True, T0)
    st_new = GatewayStatus("E1", "G1", False, T0 + 5)
    result = await w.write(batch([1], [T0], [1.0], rejected=[rej], statuses=[st_new, st_old]))
    assert result.dead_letters == 1
    dl = await db.fetchrow("SELECT * FROM dead_letters")
    assert (dl["reason"], dl["refused"], bytes(dl["payload"])) == ("unknown_sensor", 1, b'{"ts":1}')
    assert json.loads(dl["readings"]) == [[0, "X", "unknown_sensor"]]
    assert json.loads(dl["reasons"]) == {"unknown_sensor": 1}
    assert await db.fetchval("SELECT online FROM gateways WHERE code = 'G1'") is False
    # An older status arriving later never overwrites a newer one.
    await w.write(batch([2], [T0], [1.0], statuses=[GatewayStatus("E1", "G1", True, T0 + 1)]))
    assert await db.fetchval("SELECT online FROM gateways WHERE code = 'G1'") is False


async def test_copy_buffer_epoch_is_postgres_epoch(pool, db):
    await ReadingWriter(pool).write(batch([1], [PG_EPOCH_US], [0.0]))
    assert await db.fetchval("SELECT ts = '2000-01-01T00:00:00Z'::timestamptz FROM readings")


async def test_batches_mark_their_minutes_dirty_for_the_rollups(pool, db):
    w = ReadingWriter(pool)
    minute = 60_000_000
    await w.write(batch([1, 1, 2], [T0, T0 + 1, T0 + 5 * minute + 3], [1.0, 2.0, 3.0]))
    await w.write(batch([2], [T0 - 3600 * 1_000_000], [4.0]))  # late backfill
    got = [int(r["b"]) for r in await db.fetch(
        "SELECT (extract(epoch FROM bucket) * 1e6)::bigint AS b FROM rollup_dirty ORDER BY bucket")]
    assert got == [T0 - 3600 * 1_000_000 - (T0 % minute), T0 - T0 % minute, T0 - T0 % minute + 5 * minute]
