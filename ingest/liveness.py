"""Gateway liveness in the registry: last-seen times and the stale flag.

The collector keeps each gateway's latest receive time in memory; this loop writes them in one
statement per round and marks gateways silent past their expected interval (with a jitter
allowance) as stale. Status messages (online/offline, the Last Will) are committed with the
readings by the writer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

import asyncpg

from store.writer import GATEWAY_LOCK

log = logging.getLogger(__name__)

STALE_FACTOR = 1.5  # silent for 1.5 expected intervals: allows one late report


async def write_liveness(conn: asyncpg.Connection, seen_us: dict[int, int], now: dt.datetime) -> list[int]:
    """Store last-seen times and flag stale gateways. Returns ids that became stale now."""
    ids = sorted(seen_us)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", GATEWAY_LOCK)
        if ids:
            await conn.execute(
                """UPDATE gateways g SET last_seen_at = v.seen, stale = false
                   FROM unnest($1::int[], $2::timestamptz[]) AS v(id, seen)
                   WHERE g.id = v.id AND (g.last_seen_at IS NULL OR g.last_seen_at < v.seen)""",
                ids,
                [dt.datetime.fromtimestamp(seen_us[i] / 1e6, tz=dt.UTC) for i in ids],
            )
        rows = await conn.fetch(
            """UPDATE gateways SET stale = true
               WHERE active AND NOT stale
                 AND coalesce(last_seen_at, updated_at) < $1::timestamptz - make_interval(secs => expected_interval_s * $2::float8)
               RETURNING id""",
            now,
            STALE_FACTOR,
        )
    return [r["id"] for r in rows]


async def run_liveness(
    pool: asyncpg.Pool,
    seen_us: dict[int, int],
    interval_s: float,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> None:
    while True:
        await asyncio.sleep(interval_s)
        snapshot = dict(seen_us)
        try:
            async with pool.acquire(timeout=interval_s) as conn:
                stale = await write_liveness(conn, snapshot, clock())
            if stale:
                log.warning("gateways went stale", extra={"gateways": stale})
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.debug("liveness write failed", extra={"error": str(exc)})
