"""Retention of raw readings (per industry) and dead letters.

Readings of all industries share one hypertable, so the longest retention is applied by dropping
whole chunks (``drop_chunks`` through ``yujing_drop_chunks``, a SECURITY DEFINER function that
refuses anything younger than 92 days: cheap, no vacuum), and each industry kept for less is trimmed with
a bounded DELETE of its sensors' older rows. Rollups are kept separately and longer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

import asyncpg

from store.errors import LOOP_ERRORS
from store.periodic import run_every
from store.settings import RetentionSettings

log = logging.getLogger(__name__)

INDUSTRIES = ("coal_mine", "non_coal_mine", "hazardous_chemicals", "cold_storage", "gas_pipeline")
DELETE_BATCH_ROWS = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionReport:
    chunks_dropped: int
    rows_deleted: dict[str, int]
    dead_letters_deleted: int


async def apply_retention(conn: asyncpg.Connection, policy: RetentionSettings, now: dt.datetime) -> RetentionReport:
    longest = dt.timedelta(days=policy.longest_days)
    # SECURITY DEFINER (migration 0065): the service role owns no hypertable
    dropped = await conn.fetchval("SELECT yujing_drop_chunks('readings', $1::timestamptz)", now - longest)
    deleted: dict[str, int] = {}
    for industry in INDUSTRIES:
        days = policy.days(industry)
        if days >= policy.longest_days:
            continue
        total = 0
        while True:  # bounded batches: never one huge transaction
            status = await conn.execute(
                # (sensor, ts) is the key: ctid is not, it repeats from chunk to chunk
                """DELETE FROM readings r USING (
                       SELECT r2.sensor, r2.ts FROM readings r2 JOIN sensors s ON s.id = r2.sensor
                       JOIN enterprises e ON e.id = s.enterprise
                       WHERE e.industry = $1 AND r2.ts < $2 LIMIT $3) old
                   WHERE r.sensor = old.sensor AND r.ts = old.ts""",
                industry, now - dt.timedelta(days=days), DELETE_BATCH_ROWS,
            )
            n = int(status.rsplit(" ", 1)[1])
            total += n
            if n < DELETE_BATCH_ROWS:
                break
        deleted[industry] = total
    status = await conn.execute(
        "DELETE FROM dead_letters WHERE received_at < $1", now - dt.timedelta(days=policy.dead_letters)
    )
    await conn.execute("DELETE FROM dead_letter_overflow WHERE minute < $1", now - dt.timedelta(days=policy.dead_letters))
    return RetentionReport(int(dropped), deleted, int(status.rsplit(" ", 1)[1]))


async def run_retention(
    pool: asyncpg.Pool,
    policy: RetentionSettings,
    interval_s: float = 3600.0,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> None:
    async def apply_once() -> None:
        async with pool.acquire() as conn:
            report = await apply_retention(conn, policy, clock())
        if report.chunks_dropped or any(report.rows_deleted.values()) or report.dead_letters_deleted:
            log.info("retention applied", extra=dataclasses.asdict(report))

    await run_every("retention", interval_s, apply_once, retry_on=LOOP_ERRORS)
