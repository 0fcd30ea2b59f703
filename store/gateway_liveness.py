"""Gateway liveness in the registry's ``gateways`` rows: last-seen times and the stale flag.

Written under the writer's gateway lock (:data:`store.writer.GATEWAY_LOCK`), so a status change
committed with readings and a liveness round never interleave.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from store.writer import GATEWAY_LOCK

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
