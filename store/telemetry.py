"""Reads of the ``readings`` hypertable, its minute and hour rollups and ``sensor_latest``: as the
API answers them (latest values, raw readings over a range, aggregates per bucket), and the recent
readings in column batches that the detectors replay after a restart."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import numpy as np

from domain.messages import ReadingBatch
from store.scoped import InScope

RECENT_CHUNK_ROWS = 50_000
RECENT_SQL = """
SELECT (EXTRACT(EPOCH FROM ts) * 1000000)::bigint AS ts_us, sensor, value, quality
FROM readings
WHERE ts >= to_timestamp($1::double precision / 1e6) AND ts <= to_timestamp($2::double precision / 1e6)
ORDER BY ts
"""

# The rollup a bucket width reads: whole hours from the hour rollup, whole minutes from the
# minute rollup, anything finer from the raw readings.
AGG_ROLLUP_SQL = """
    SELECT time_bucket($2::interval, bucket) AS bucket, min(min) AS min, max(max) AS max,
           sum(sum) / sum(count) AS avg, last(last_value, last_ts) AS last, sum(count)::bigint AS count
    FROM {table}
    WHERE sensor = $1 AND bucket >= time_bucket($2::interval, $3::timestamptz) AND bucket < $4
    GROUP BY 1 ORDER BY 1"""
AGG_RAW_SQL = """
    SELECT time_bucket($2::interval, ts) AS bucket, min(value) AS min, max(value) AS max,
           avg(value) AS avg, last(value, ts) AS last, count(*) AS count
    FROM readings
    WHERE sensor = $1 AND ts >= time_bucket($2::interval, $3::timestamptz) AND ts < $4
    GROUP BY 1 ORDER BY 1"""

# Latest values: each sensor's row in sensor_latest (kept by the rollup worker, which trails ingest
# by about a minute), overtaken by its newest raw reading of the last LATEST_TAIL_S if there is
# one — an index probe into the newest chunk or two, never a walk over the hypertable.
LATEST_TAIL_S = 300.0
LATEST_JOIN = """
    LEFT JOIN sensor_latest l ON l.sensor = s.id
    LEFT JOIN LATERAL (SELECT ts, value, quality FROM readings
                       WHERE sensor = s.id AND ts >= {since} ORDER BY ts DESC LIMIT 1) t ON true"""
LATEST_COLUMNS = """
    CASE WHEN t.ts IS NULL THEN l.ts ELSE t.ts END AS ts,
    CASE WHEN t.ts IS NULL THEN l.value ELSE t.value END AS value,
    CASE WHEN t.ts IS NULL THEN l.quality ELSE t.quality END AS quality"""


def aggregate_source(bucket_s: int) -> str:
    """The table a bucket width reads: ``readings_1h``, ``readings_1m`` or ``readings``."""
    if bucket_s % 3600 == 0:
        return "readings_1h"
    if bucket_s % 60 == 0:
        return "readings_1m"
    return "readings"


def aggregate_sql(bucket_s: int) -> str:
    table = aggregate_source(bucket_s)
    return AGG_RAW_SQL if table == "readings" else AGG_ROLLUP_SQL.format(table=table)


async def latest_of_sensors(conn: asyncpg.Connection, in_scope: InScope, *, enterprise: str | None,
                            sensors: list[int] | None, tail_start: dt.datetime, limit: int,
                            offset: int) -> list[asyncpg.Record]:
    """(sensor, enterprise, code, kind, unit, ts, value, quality) of the sensors in scope, by id."""
    args: list = []
    where = [in_scope("s.enterprise", args)]
    if enterprise is not None:
        args.append(enterprise)
        where.append(f"s.enterprise = ${len(args)}")
    if sensors:
        args.append(sensors)
        where.append(f"s.id = ANY(${len(args)}::int[])")
    args += [tail_start, limit, offset]
    return await conn.fetch(
        f"""SELECT s.id AS sensor, s.enterprise, s.code, s.kind, s.unit, {LATEST_COLUMNS}
            FROM sensors s {LATEST_JOIN.format(since=f"${len(args) - 2}")}
            WHERE {' AND '.join(where)} ORDER BY s.id LIMIT ${len(args) - 1} OFFSET ${len(args)}""",
        *args,
    )


async def latest_of_sensor(conn: asyncpg.Connection, sensor_id: int, tail_start: dt.datetime) -> asyncpg.Record:
    """(ts, value, quality) of one sensor's newest reading (all None if it has none)."""
    return await conn.fetchrow(f"SELECT {LATEST_COLUMNS} FROM sensors s {LATEST_JOIN.format(since='$2')}"
                               " WHERE s.id = $1", sensor_id, tail_start)


async def raw_readings(conn: asyncpg.Connection, sensor_id: int, start: dt.datetime, end: dt.datetime, *,
                       limit: int, timeout_s: float) -> list[asyncpg.Record]:
    """(ts, value, quality, device_ts) of one sensor in [start, end), oldest first, at most ``limit``."""
    return await conn.fetch(
        "SELECT ts, value, quality, device_ts FROM readings WHERE sensor = $1 AND ts >= $2 AND ts < $3"
        " ORDER BY ts LIMIT $4", sensor_id, start, end, limit, timeout=timeout_s,
    )


async def aggregates(conn: asyncpg.Connection, sensor_id: int, bucket_s: int, start: dt.datetime,
                     end: dt.datetime, *, timeout_s: float) -> list[asyncpg.Record]:
    """(bucket, min, max, avg, last, count) per bucket of ``bucket_s`` aligned to its width."""
    return await conn.fetch(aggregate_sql(bucket_s), sensor_id, dt.timedelta(seconds=bucket_s), start, end,
                            timeout=timeout_s)


async def recent_readings(conn: asyncpg.Connection, now_us: int, lookback_s: float, *,
                          chunk_rows: int = RECENT_CHUNK_ROWS) -> AsyncIterator[ReadingBatch]:
    """The readings of the last ``lookback_s`` seconds before ``now_us``, oldest first, as column
    batches of at most ``chunk_rows`` (read through a cursor in a read-only transaction, held
    while the caller iterates)."""
    start_us = int(now_us - lookback_s * 1e6)
    async with conn.transaction(readonly=True):
        cursor = await conn.cursor(RECENT_SQL, start_us, int(now_us))
        while rows := await cursor.fetch(chunk_rows):
            n = len(rows)
            yield ReadingBatch.build(
                sensor=np.fromiter((r[1] for r in rows), dtype=np.int32, count=n),
                ts_us=np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
                value=np.fromiter((r[2] for r in rows), dtype=np.float64, count=n),
                quality=np.fromiter((r[3] for r in rows), dtype=np.int16, count=n),
            )
