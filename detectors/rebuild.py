"""Rebuild detector state after a restart by replaying recent readings silently.

The replay emits nothing, so a restart raises no burst of findings, but every condition still
holding at the end of the replay (a methane excursion, a stuck sensor, an anomaly) is active
again — :meth:`Engine.active` exports them for downstream to reconcile with its open alerts.
Readings redelivered by the broker after the restart are then late for the statistics (their
ts is not newer) and leave the setpoint state unchanged, so they raise nothing new either.
"""

from __future__ import annotations

import numpy as np

from detectors.engine import Engine
from domain.messages import ReadingBatch

REBUILD_CHUNK_ROWS = 50_000

_QUERY = """
SELECT (EXTRACT(EPOCH FROM ts) * 1000000)::bigint AS ts_us, sensor, value, quality
FROM readings
WHERE ts >= to_timestamp($1::double precision / 1e6) AND ts <= to_timestamp($2::double precision / 1e6)
ORDER BY ts
"""


async def rebuild(engine: Engine, conn, now_us: int, lookback_s: float, *,
                  chunk_rows: int = REBUILD_CHUNK_ROWS) -> int:
    """Replay ``readings`` of the last ``lookback_s`` seconds before ``now_us`` into ``engine``
    (already given its registry) without emitting findings; returns the number of rows replayed.

    conn: an asyncpg connection (a cursor needs a transaction; a read-only one is opened here).
    """
    start_us = int(now_us - lookback_s * 1e6)
    total = 0
    async with conn.transaction(readonly=True):
        cursor = await conn.cursor(_QUERY, start_us, int(now_us))
        while True:
            rows = await cursor.fetch(chunk_rows)
            if not rows:
                break
            n = len(rows)
            ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
            sensor = np.fromiter((r[1] for r in rows), dtype=np.int32, count=n)
            value = np.fromiter((r[2] for r in rows), dtype=np.float64, count=n)
            quality = np.fromiter((r[3] for r in rows), dtype=np.int16, count=n)
            engine.replay(ReadingBatch.build(sensor=sensor, ts_us=ts, value=value, quality=quality))
            total += n
    return total
