"""Rollups: dirty minutes from the writer become minute and hour rows equal to a naive
aggregation of the raw readings, late backfill included, concurrent writers never lost."""

from __future__ import annotations

import asyncio

from pathlib import Path

import asyncpg
import numpy as np
import pytest

import store
from domain.messages import ReadingBatch
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from store.rollups import _ranges, rollup_once, run_rollups
from store.writer import ReadingWriter, WriteBatch

SEED = 20260517
T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC, µs
MIN = 60_000_000
HOUR = 60 * MIN
REGISTRY = """
enterprises: [{id: E1, name: 某煤矿, region: "360100", industry: coal_mine}]
gateways: [{id: G1, enterprise: E1}]
sensors:
  - {id: S1, gateway: G1, kind: methane}
  - {id: S2, gateway: G1, kind: methane}
  - {id: S3, gateway: G1, kind: co}
"""


@pytest.fixture
async def pool(db_url, db):
    await import_registry(db, parse_registry_file(REGISTRY))
    p = await asyncpg.create_pool(db_url, min_size=2, max_size=4)
    yield p
    await p.close()


def write_batch(sensor, ts_us, value, quality=None) -> WriteBatch:
    readings = ReadingBatch.build(sensor=sensor, ts_us=ts_us, value=value, received_us=np.asarray(ts_us),
                                  **({} if quality is None else {"quality": quality}))
    return WriteBatch(readings, [], [], mids=[1], messages=1)


async def naive_latest(db) -> dict:
    rows = await db.fetch("SELECT DISTINCT ON (sensor) sensor, ts, value, quality FROM readings ORDER BY sensor, ts DESC")
    return {r["sensor"]: (r["ts"], r["value"], r["quality"]) for r in rows}


async def kept_latest(db) -> dict:
    return {r["sensor"]: (r["ts"], r["value"], r["quality"])
            for r in await db.fetch("SELECT sensor, ts, value, quality FROM sensor_latest")}


async def naive(db, table_width: str) -> dict:
    """The reference: plain GROUP BY over raw readings, per (sensor, bucket)."""
    rows = await db.fetch(
        f"""SELECT sensor, time_bucket('{table_width}', ts) AS b, min(value), max(value), sum(value), count(*),
                   (array_agg(value ORDER BY ts DESC))[1] AS last
            FROM readings GROUP BY 1, 2""")
    return {(r["sensor"], r["b"]): (r["min"], r["max"], round(r["sum"], 6), r["count"], r["last"]) for r in rows}


async def rolled(db, table: str) -> dict:
    rows = await db.fetch(f"SELECT sensor, bucket, min, max, sum, count, last_value FROM {table}")
    return {(r["sensor"], r["bucket"]): (r["min"], r["max"], round(r["sum"], 6), r["count"], r["last_value"])
            for r in rows}


def test_ranges_merge_contiguous_buckets():
    starts = np.array([0, 60, 120, 300, 360, 900], np.int64)
    assert _ranges(starts, 60) == [(0, 180), (300, 420), (900, 960)]
    assert _ranges(np.array([], np.int64), 60) == []


async def test_rollups_equal_naive_aggregation_with_late_data(pool, db):
    rng = np.random.default_rng(SEED)
    writer = ReadingWriter(pool)
    n = 20_000
    sensor = rng.integers(1, 4, n)
    ts = T0 + rng.integers(0, 3 * HOUR, n)  # out of order across three hours
    ts, keep = np.unique(sensor * 10**17 + ts, return_index=True)
    sensor, ts = sensor[keep], (ts % 10**17)
    value = rng.normal(1.0, 0.3, sensor.size)
    await writer.write(write_batch(sensor, ts, value))
    now_us = T0 + 5 * HOUR
    async with pool.acquire() as conn:
        while (await rollup_once(conn, now_us, max_minutes=50)).minutes:
            pass
    assert await db.fetchval("SELECT count(*) FROM rollup_dirty") == 0
    assert await rolled(db, "readings_1m") == await naive(db, "1 minute")
    assert await rolled(db, "readings_1h") == await naive(db, "1 hour")
    # late backfill after an outage: a gateway replays an old minute with new readings
    late_ts = np.array([T0 + 30 * MIN + 1, T0 + 30 * MIN + 2, T0 + 2 * HOUR + 5], np.int64)
    await writer.write(write_batch([1, 1, 2], late_ts, [99.0, -5.0, 42.0]))
    assert await db.fetchval("SELECT count(*) FROM rollup_dirty") == 2
    async with pool.acquire() as conn:
        done = await rollup_once(conn, now_us)
    assert (done.minutes, done.hours) == (2, 2)
    assert await rolled(db, "readings_1m") == await naive(db, "1 minute")
    assert await rolled(db, "readings_1h") == await naive(db, "1 hour")


async def test_open_minute_waits_until_it_has_settled(pool, db):
    writer = ReadingWriter(pool)
    await writer.write(write_batch([1, 1], [T0 + 10, T0 + MIN + 10], [1.0, 2.0]))
    async with pool.acquire() as conn:
        done = await rollup_once(conn, T0 + MIN + 6_000_000, settle_s=5)  # second minute still filling
    assert done.minutes == 1
    assert await db.fetchval("SELECT count(*) FROM rollup_dirty") == 1


RACING_PASSES = 20  # rollup passes that did work while the writers were writing


async def test_concurrent_writers_lose_no_minute(pool, db):
    """Writers and the rollup worker race on the same minutes; at the end the rollups must equal
    the raw data (a mark deleted after a write it did not cover would leave a stale rollup)."""
    rng = np.random.default_rng(SEED + 1)
    writer = ReadingWriter(pool)
    passes: asyncio.Queue = asyncio.Queue()
    clock_s = (T0 + 10 * HOUR) / 1e6
    worker = asyncio.create_task(run_rollups(pool, 0.01, clock=lambda: clock_s, settle_s=0, passes=passes))

    async def write_loop(seed_offset: int) -> None:
        k = 0
        while passes.qsize() < RACING_PASSES:  # write until the worker has raced them this often
            ts = T0 + rng.integers(0, 5 * MIN, 50) + seed_offset * 1_000_003 + k * 7
            sensor = rng.integers(1, 4, 50)
            await writer.write(write_batch(sensor, ts, rng.normal(size=50)))
            k += 1

    async with asyncio.timeout(60):
        await asyncio.gather(*(write_loop(i) for i in range(2)))
    async with asyncio.timeout(30):
        while await db.fetchval("SELECT count(*) FROM rollup_dirty") or \
                await db.fetchval("SELECT count(*) FROM rollup_claimed"):
            await asyncio.sleep(0.05)
    # the pass that deleted the last claims committed its rollups in the same transaction
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert passes.qsize() > 1
    assert await rolled(db, "readings_1m") == await naive(db, "1 minute")
    assert await rolled(db, "readings_1h") == await naive(db, "1 hour")
    assert await kept_latest(db) == await naive_latest(db)


async def test_sensor_latest_moves_only_forward(pool, db):
    """The rollup keeps each sensor's newest reading (value and quality); a late backfill of older
    minutes never replaces it, a newer reading does; the migration's backfill agrees."""
    rng = np.random.default_rng(SEED + 2)
    writer = ReadingWriter(pool)
    n = 5_000
    ts = T0 + rng.choice(2 * HOUR, n, replace=False)  # out of order over two hours
    sensor = rng.integers(1, 3, n)  # S3 has no reading: no row
    quality = rng.choice(np.array([0, 1, 4], np.int16), n)
    await writer.write(write_batch(sensor, ts, rng.normal(size=n), quality))
    now_us = T0 + 5 * HOUR

    async def roll() -> None:
        async with pool.acquire() as conn:
            while (await rollup_once(conn, now_us)).minutes:
                pass

    await roll()
    expected = await naive_latest(db)
    assert set(expected) == {1, 2} and await kept_latest(db) == expected
    # an outage's backfill, older than what is kept, for both sensors: nothing moves
    await writer.write(write_batch([1, 2, 2], [T0 + 3, T0 + HOUR + 7, T0 + HOUR + 8], [99.0, 98.0, 97.0]))
    await roll()
    assert await kept_latest(db) == expected
    # a newer reading of sensor 2 (its minute recomputed after an older minute of sensor 1's)
    await writer.write(write_batch([2], [T0 + 3 * HOUR], [7.5], np.array([4], np.int16)))
    await writer.write(write_batch([1], [T0 + 60], [-1.0]))
    await roll()
    latest = await kept_latest(db)
    assert latest[1] == expected[1] and latest[2][1:] == (7.5, 4)
    assert latest == await naive_latest(db)
    # the migration's one-off backfill (for databases that had readings before it) gives the same
    migration = (Path(store.__file__).parent / "migrations" / "0022_sensor_latest.sql").read_text()
    await db.execute("DELETE FROM sensor_latest")
    await db.execute(migration[migration.index("INSERT INTO sensor_latest"):])
    assert await kept_latest(db) == latest


async def test_retention_floor_is_two_years(pool):
    with pytest.raises(ValueError, match="2 years"):
        await run_rollups(pool, 1.0, minute_retention_days=365)
