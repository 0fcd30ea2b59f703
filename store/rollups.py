"""Minute and hour rollups of readings, maintained off the write path.

The writer records, in the transaction of each batch, the minutes whose raw readings changed
(``rollup_dirty``, late backfill included). :func:`run_rollups` claims those minutes, recomputes
them from ``readings`` into ``readings_1m`` and the hours that contain them from ``readings_1m``
into ``readings_1h``, and drops rollup chunks past their retention. A dashboard's 30-day chart
reads at most 720 hour rows of one sensor instead of millions of raw ones. The same scan keeps
``sensor_latest`` (each sensor's newest reading, only ever moved forward), which the API's latest
values read instead of the hypertable.

Claiming is safe against concurrent writers: the claim takes ``rollup_dirty`` in EXCLUSIVE mode
for a few milliseconds, which waits for every writer transaction that has marked a minute to
commit and holds back new marks until the claim commits; it moves the marks to
``rollup_claimed``. So every reading that a claimed mark stood for is committed before the
recompute takes its snapshot, and a reading committed later marks its minute again. The
recompute runs in its own transaction (writers never wait for it) and deletes the claims it
covered; a crash in between leaves them for the next pass. A minute's recompute reads only that
minute's block ranges (a BRIN index on ``ts``).

Continuous aggregates would do the same on a TimescaleDB with the community licence; Debian's
Apache build has none, and the maintained tables work everywhere, so they are the one path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

import asyncpg
import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from store.errors import LOOP_ERRORS
from store.periodic import run_every

log = logging.getLogger(__name__)

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
DEFAULT_MAX_MINUTES = 240  # minutes claimed per pass
DEFAULT_SETTLE_S = 5.0  # a minute is rolled up this long after it ends (it is still filling before)
DEFAULT_MINUTE_RETENTION_DAYS = 731  # ≥ 2 years; shorten for very large fleets (1 row/sensor/minute)
DEFAULT_HOUR_RETENTION_DAYS = 1096
RETENTION_EVERY_S = 3600.0
LOCK_TIMEOUT_S = 5.0
ADVISORY_KEY = 7_315_020  # one recompute at a time, across processes

rollup_minutes = Counter("yujing_rollup_minutes_total", "Dirty minutes recomputed into the rollups")
rollup_seconds = Histogram("yujing_rollup_pass_seconds", "Time of one rollup pass that had work",
                           buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
rollup_backlog = Gauge("yujing_rollup_dirty_minutes", "Minutes waiting to be rolled up")
rollup_failures = Counter("yujing_rollup_failures_total", "Rollup passes that failed and will be retried")

_CLAIM = """
    WITH claimed AS (
        DELETE FROM rollup_dirty
        WHERE bucket IN (SELECT bucket FROM rollup_dirty WHERE bucket < $1 ORDER BY bucket LIMIT $2)
        RETURNING bucket)
    INSERT INTO rollup_claimed SELECT bucket FROM claimed ON CONFLICT DO NOTHING"""

_TAKE = """
    SELECT (extract(epoch FROM bucket) * 1000000)::bigint AS us FROM rollup_claimed
    ORDER BY bucket LIMIT $1 FOR UPDATE"""

# One scan of the minutes' raw rows feeds both the minute rollup and each sensor's latest
# reading; sensor_latest only moves forward, so a late minute never replaces a newer value.
_MINUTES = """
    WITH m AS MATERIALIZED (
        SELECT time_bucket('1 minute', ts) AS bucket, sensor, min(value) AS min, max(value) AS max,
               sum(value) AS sum, count(*) AS count, last(value, ts) AS last_value, max(ts) AS last_ts,
               last(quality, ts) AS last_quality
        FROM readings
        WHERE ts >= $1 AND ts < $2
        GROUP BY 1, 2),
    minutes AS (
        INSERT INTO readings_1m (bucket, sensor, min, max, sum, count, last_value, last_ts)
        SELECT bucket, sensor, min, max, sum, count, last_value, last_ts FROM m)
    INSERT INTO sensor_latest AS l (sensor, ts, value, quality)
    SELECT sensor, max(last_ts), last(last_value, last_ts), last(last_quality, last_ts)
    FROM m GROUP BY sensor
    ON CONFLICT (sensor) DO UPDATE SET ts = excluded.ts, value = excluded.value, quality = excluded.quality
    WHERE l.ts < excluded.ts"""

_HOURS = """
    INSERT INTO readings_1h (bucket, sensor, min, max, sum, count, last_value, last_ts)
    SELECT time_bucket('1 hour', bucket), sensor, min(min), max(max), sum(sum), sum(count)::integer,
           last(last_value, last_ts), max(last_ts)
    FROM readings_1m
    WHERE bucket >= $1 AND bucket < $2
    GROUP BY 1, 2"""


@dataclasses.dataclass(frozen=True, slots=True)
class RollupPass:
    minutes: int  # dirty minutes recomputed
    hours: int  # hours recomputed
    seconds: float


def _ts(us: int):
    import datetime as dt

    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC)


def _ranges(starts_us: np.ndarray, width_us: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges covering sorted, distinct bucket starts of ``width_us``."""
    if starts_us.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(starts_us) != width_us) + 1
    lo = starts_us[np.r_[0, breaks]]
    hi = starts_us[np.r_[breaks - 1, starts_us.size - 1]] + width_us
    return list(zip(lo.tolist(), hi.tolist(), strict=True))


async def claim(conn: asyncpg.Connection, now_us: int, *, max_minutes: int = DEFAULT_MAX_MINUTES,
                settle_s: float = DEFAULT_SETTLE_S) -> None:
    """Move up to ``max_minutes`` dirty minutes that ended ``settle_s`` ago to ``rollup_claimed``.

    Short: the EXCLUSIVE lock waits for writers that marked a minute to commit, and holds back
    new marks only until this commits."""
    cutoff_us = (now_us - int(settle_s * 1e6)) // MINUTE_US * MINUTE_US - MINUTE_US + 1
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT_S * 1000)}ms'")
        await conn.execute("LOCK TABLE rollup_dirty IN EXCLUSIVE MODE")
        await conn.execute(_CLAIM, _ts(cutoff_us), max_minutes)


async def recompute_claimed(conn: asyncpg.Connection, *, max_minutes: int = DEFAULT_MAX_MINUTES) -> tuple[int, int]:
    """Recompute up to ``max_minutes`` claimed minutes and their hours, and drop their claims,
    in one transaction. Returns (minutes, hours) recomputed."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_KEY)
        minutes = np.array([r["us"] for r in await conn.fetch(_TAKE, max_minutes)], np.int64)
        if minutes.size == 0:
            return 0, 0
        for lo, hi in _ranges(minutes, MINUTE_US):
            await conn.execute("DELETE FROM readings_1m WHERE bucket >= $1 AND bucket < $2", _ts(lo), _ts(hi))
            await conn.execute(_MINUTES, _ts(lo), _ts(hi))
        hours = np.unique(minutes // HOUR_US * HOUR_US)
        for lo, hi in _ranges(hours, HOUR_US):
            await conn.execute("DELETE FROM readings_1h WHERE bucket >= $1 AND bucket < $2", _ts(lo), _ts(hi))
            await conn.execute(_HOURS, _ts(lo), _ts(hi))
        await conn.execute("DELETE FROM rollup_claimed WHERE bucket = ANY($1::timestamptz[])",
                           [_ts(m) for m in minutes.tolist()])
    return int(minutes.size), int(hours.size)


async def rollup_once(conn: asyncpg.Connection, now_us: int, *, max_minutes: int = DEFAULT_MAX_MINUTES,
                      settle_s: float = DEFAULT_SETTLE_S) -> RollupPass:
    """One pass: finish what an earlier pass claimed, else claim and recompute new minutes."""
    started = time.perf_counter()
    minutes, hours = await recompute_claimed(conn, max_minutes=max_minutes)
    if minutes == 0:
        await claim(conn, now_us, max_minutes=max_minutes, settle_s=settle_s)
        minutes, hours = await recompute_claimed(conn, max_minutes=max_minutes)
    done = RollupPass(minutes, hours, time.perf_counter() - started)
    if minutes:
        rollup_minutes.inc(minutes)
        rollup_seconds.observe(done.seconds)
    return done


async def drop_expired(conn: asyncpg.Connection, minute_days: int, hour_days: int) -> None:
    """Drop rollup chunks older than their retention (whole chunks, as the raw data's retention)."""
    # SECURITY DEFINER (migration 0065): the service role owns no hypertable
    await conn.execute("SELECT yujing_drop_chunks('readings_1m', now() - make_interval(days => $1))", minute_days)
    await conn.execute("SELECT yujing_drop_chunks('readings_1h', now() - make_interval(days => $1))", hour_days)


async def run_rollups(
    pool: asyncpg.Pool,
    interval_s: float,
    *,
    clock: Callable[[], float] = time.time,
    max_minutes: int = DEFAULT_MAX_MINUTES,
    settle_s: float = DEFAULT_SETTLE_S,
    minute_retention_days: int = DEFAULT_MINUTE_RETENTION_DAYS,
    hour_retention_days: int = DEFAULT_HOUR_RETENTION_DAYS,
    passes: asyncio.Queue[RollupPass] | None = None,
) -> None:
    """Roll up dirty minutes every ``interval_s`` (at once again while a backlog remains), until
    cancelled. Database errors are logged when they change and retried on the next pass; the
    marks of a failed pass stay (its transaction rolled back). ``passes`` receives each pass that
    did work (tests)."""
    if minute_retention_days < 730 or hour_retention_days < 730:
        raise ValueError("rollups are kept for at least 2 years (730 days)")
    next_retention = 0.0

    async def one_pass() -> bool:
        """One pass; whether a backlog remains (the pass did as many minutes as it may)."""
        nonlocal next_retention
        async with pool.acquire(timeout=30) as conn:
            done = await rollup_once(conn, int(clock() * 1e6), max_minutes=max_minutes, settle_s=settle_s)
            rollup_backlog.set(await conn.fetchval("SELECT count(*) FROM rollup_dirty", timeout=30))
            if time.monotonic() >= next_retention:
                await drop_expired(conn, minute_retention_days, hour_retention_days)
                next_retention = time.monotonic() + RETENTION_EVERY_S
        if done.minutes and passes is not None:
            passes.put_nowait(done)
        return done.minutes >= max_minutes

    async def passes_until_caught_up() -> None:
        try:
            while await one_pass():
                await asyncio.sleep(0)
        except LOOP_ERRORS:
            rollup_failures.inc()
            raise

    await run_every("rollup pass", interval_s, passes_until_caught_up, retry_on=LOOP_ERRORS)
