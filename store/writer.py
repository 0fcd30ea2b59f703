"""The write path: readings by binary COPY, dead letters and gateway status, in one transaction.

Idempotency at close to full speed: a batch goes in by plain binary COPY; only a batch that hits
the unique (sensor, ts) index — a redelivery after a crash or reconnect — is rolled back to a
savepoint and merged through a staging table with ``ON CONFLICT DO NOTHING``. Clock-corrected
readings are stored at receive time, which differs on a redelivery, so they always take the
merge path and are matched on the device time they keep.

Errors: a connection problem raises :class:`RetryLater` with the batch untouched (the caller
retries; nothing was acknowledged). A data error bisects the batch so that only the rows the
server refuses become dead letters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging

import asyncpg
import numpy as np

from domain.errors import RetryLater
from domain.messages import GatewayStatus, ReadingBatch, Rejected, RejectReason
from domain.quality import Quality
from store.errors import TRANSIENT_ERRORS
from store.copy_format import READING_COLUMNS, readings_copy_buffer, readings_with_device_ts_copy_buffer

log = logging.getLogger(__name__)

_US_PER_MINUTE = 60_000_000
GATEWAY_LOCK = 7_315_001  # advisory lock serialising gateway-row updates (no deadlocks between writers)

_STAGE_DDL = """CREATE TEMP TABLE IF NOT EXISTS readings_stage (
    ts timestamptz NOT NULL, sensor integer NOT NULL, value double precision NOT NULL,
    quality smallint NOT NULL, device_ts timestamptz) ON COMMIT DELETE ROWS"""

_DEAD_LETTER_COLUMNS = (
    "received_at", "reason", "detail", "topic", "enterprise", "gateway", "sensor", "reading_index", "payload",
)



@dataclasses.dataclass(slots=True)
class WriteBatch:
    """Everything one transaction commits; ``mids`` are acknowledged after the commit."""

    readings: ReadingBatch
    rejected: list[Rejected]
    statuses: list[GatewayStatus]
    mids: list[int]
    messages: int


@dataclasses.dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int  # new rows in readings
    duplicates: int  # readings already stored (redeliveries) or repeated within the batch
    dead_letters: int
    merged: bool  # the batch took the conflict-safe path


def _us_to_datetime(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


def drop_repeats(batch: ReadingBatch) -> tuple[ReadingBatch, int]:
    """Keep the first of readings that share (sensor, ts) within a batch (a gateway's duplicate
    send); a plain COPY would otherwise fail on its own rows."""
    n = len(batch)
    if n < 2:
        return batch, 0
    order = np.lexsort((batch.ts_us, batch.sensor))  # stable: ties keep arrival order
    s, t = batch.sensor[order], batch.ts_us[order]
    repeat = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
    if not repeat.any():
        return batch, 0
    keep = np.ones(n, dtype=bool)
    keep[order[1:][repeat]] = False
    return batch.take(keep), int(repeat.sum())


class ReadingWriter:
    def __init__(self, pool: asyncpg.Pool, timeout_s: float = 30.0) -> None:
        self._pool = pool
        self._timeout_s = timeout_s

    async def write(self, batch: WriteBatch) -> WriteResult:
        """Commit one batch. Raises :class:`RetryLater` on connection problems (nothing committed,
        or — if the commit's reply was lost — committed, which a retry then finds as duplicates)."""
        try:
            async with self._pool.acquire(timeout=self._timeout_s) as conn:
                async with conn.transaction():
                    result = await self._write(conn, batch)
            return result
        except TRANSIENT_ERRORS as exc:
            raise RetryLater(f"database unavailable: {type(exc).__name__}: {exc}") from exc

    async def _write(self, conn: asyncpg.Connection, batch: WriteBatch) -> WriteResult:
        readings, repeats = drop_repeats(batch.readings)
        corrected = (readings.quality & np.int16(Quality.CLOCK_CORRECTED)) != 0
        refused: list[Rejected] = []
        merged = False
        if corrected.any():
            plain, late = readings.take(~corrected), readings.take(corrected)
        else:
            plain, late = readings, None
        inserted = 0
        if len(plain):
            n, merged = await self._insert_plain(conn, plain, refused)
            inserted += n
        if late is not None:
            inserted += await self._insert_corrected(conn, late)
            merged = True
        dead = batch.rejected + refused
        if dead:
            await conn.copy_records_to_table(
                "dead_letters",
                records=[
                    (_us_to_datetime(r.received_us), r.reason.value, r.detail, r.topic, r.enterprise,
                     r.gateway, r.sensor, r.reading_index, r.payload)
                    for r in dead
                ],
                columns=_DEAD_LETTER_COLUMNS,
                timeout=self._timeout_s,
            )
        if batch.statuses:
            await self._apply_statuses(conn, batch.statuses)
        if len(readings):
            await self._mark_dirty_minutes(conn, readings.ts_us)
        stored = len(readings) - len(refused)
        return WriteResult(inserted, repeats + stored - inserted, len(dead), merged)

    async def _insert_plain(self, conn, rows: ReadingBatch, refused: list[Rejected]) -> tuple[int, bool]:
        buf = readings_copy_buffer(rows.ts_us, rows.sensor, rows.value, rows.quality)
        try:
            async with conn.transaction():  # savepoint: a conflict rolls back only the COPY
                await conn.copy_to_table(
                    "readings", source=io.BytesIO(buf), columns=READING_COLUMNS, format="binary",
                    timeout=self._timeout_s,
                )
            return len(rows), False
        except asyncpg.UniqueViolationError:
            return await self._merge(conn, buf), True
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            log.warning("copy refused data, bisecting", extra={"rows": len(rows), "error": str(exc)})
            return await self._bisect(conn, rows, refused), True

    async def _merge(self, conn, buf: bytes) -> int:
        await conn.execute(_STAGE_DDL)
        await conn.execute("TRUNCATE readings_stage")
        await conn.copy_to_table(
            "readings_stage", source=io.BytesIO(buf), columns=READING_COLUMNS, format="binary",
            timeout=self._timeout_s,
        )
        status = await conn.execute(
            "INSERT INTO readings (ts, sensor, value, quality) "
            "SELECT ts, sensor, value, quality FROM readings_stage ON CONFLICT DO NOTHING",
            timeout=self._timeout_s,
        )
        return int(status.rsplit(" ", 1)[1])

    async def _insert_corrected(self, conn, rows: ReadingBatch) -> int:
        buf = readings_with_device_ts_copy_buffer(rows.ts_us, rows.sensor, rows.value, rows.quality, rows.device_ts_us)
        await conn.execute(_STAGE_DDL)
        await conn.execute("TRUNCATE readings_stage")
        await conn.copy_to_table(
            "readings_stage", source=io.BytesIO(buf), columns=(*READING_COLUMNS, "device_ts"), format="binary",
            timeout=self._timeout_s,
        )
        status = await conn.execute(
            """INSERT INTO readings (ts, sensor, value, quality, device_ts)
               SELECT s.ts, s.sensor, s.value, s.quality, s.device_ts FROM readings_stage s
               WHERE NOT EXISTS (SELECT 1 FROM readings r
                                 WHERE r.sensor = s.sensor AND r.device_ts = s.device_ts)
               ON CONFLICT DO NOTHING""",
            timeout=self._timeout_s,
        )
        return int(status.rsplit(" ", 1)[1])

    async def _bisect(self, conn, rows: ReadingBatch, refused: list[Rejected]) -> int:
        """Store what the server accepts; each row it refuses on its own becomes a dead letter."""
        if len(rows) == 1:
            buf = readings_copy_buffer(rows.ts_us, rows.sensor, rows.value, rows.quality)
            try:
                async with conn.transaction():
                    return await self._merge(conn, buf)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                refused.append(
                    Rejected(
                        reason=RejectReason.BAD_SCHEMA,
                        detail=f"the database refused reading of sensor id {int(rows.sensor[0])}: {exc}",
                        topic="",
                        payload=f"sensor={int(rows.sensor[0])} ts_us={int(rows.ts_us[0])} value={float(rows.value[0])!r}".encode(),
                        received_us=int(rows.received_us[0]),
                    )
                )
                return 0
        half = len(rows) // 2
        total = 0
        for part in (rows.take(slice(0, half)), rows.take(slice(half, None))):
            buf = readings_copy_buffer(part.ts_us, part.sensor, part.value, part.quality)
            try:
                async with conn.transaction():
                    total += await self._merge(conn, buf)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                total += await self._bisect(conn, part, refused)
        return total

    async def _mark_dirty_minutes(self, conn, ts_us: np.ndarray) -> None:
        minutes = np.unique(ts_us // _US_PER_MINUTE) * _US_PER_MINUTE
        await conn.execute(
            "INSERT INTO rollup_dirty (bucket) SELECT to_timestamp(m / 1e6) FROM unnest($1::bigint[]) AS m "
            "ON CONFLICT DO NOTHING",
            minutes.tolist(),
            timeout=self._timeout_s,
        )

    async def _apply_statuses(self, conn, statuses: list[GatewayStatus]) -> None:
        latest: dict[tuple[str, str], GatewayStatus] = {}
        for s in statuses:
            key = (s.enterprise, s.gateway)
            if key not in latest or latest[key].received_us <= s.received_us:
                latest[key] = s
        rows = sorted(latest.values(), key=lambda s: (s.enterprise, s.gateway))
        await conn.execute("SELECT pg_advisory_xact_lock($1)", GATEWAY_LOCK)
        await conn.execute(
            """UPDATE gateways g SET online = v.online, status_at = v.at
               FROM unnest($1::text[], $2::text[], $3::boolean[], $4::timestamptz[]) AS v(enterprise, code, online, at)
               WHERE g.enterprise = v.enterprise AND g.code = v.code
                 AND (g.status_at IS NULL OR g.status_at <= v.at)""",
            [s.enterprise for s in rows],
            [s.gateway for s in rows],
            [s.online for s in rows],
            [_us_to_datetime(s.received_us) for s in rows],
        )
