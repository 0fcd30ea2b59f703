"""The write path: readings by binary COPY, dead letters and gateway status, in one transaction.

Idempotency at close to full speed: a batch goes in by plain binary COPY; only a batch that hits
the unique (sensor, ts) index — a redelivery after a crash or reconnect — is rolled back to a
savepoint and merged through a staging table with ``ON CONFLICT DO NOTHING``. Clock-corrected
readings are stored at a corrected time, which differs on a redelivery, so they always take the
merge path and are matched on the device time they keep.

Every reading is accounted for: ``inserted + duplicates + len(refused) == len(readings)``. A
duplicate is the same reading again (same sensor, time and value); the same sensor and time with
another value is refused as ``conflicting_value`` (the first is kept), and a corrected reading
landing where its sensor already has another is refused as ``time_collision``.

Errors: a connection problem raises :class:`RetryLater` with the batch untouched (the caller
retries; nothing was acknowledged). A data error on any path (plain COPY, merge, corrected insert,
dead letters) bisects that part so that only the rows the server refuses are set aside.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
from collections.abc import Awaitable, Callable

import asyncpg
import numpy as np

from domain.errors import RetryLater
from domain.messages import GatewayStatus, ReadingBatch, Rejected, RejectReason
from domain.quality import Quality
from store.copy_format import READING_COLUMNS, readings_copy_buffer, readings_with_device_ts_copy_buffer
from store.dead_letters import DeadLetterCap, StoreRefusal, refusals_as_dead_letters, write_dead_letters
from store.errors import DATA_ERRORS, TRANSIENT_ERRORS

log = logging.getLogger(__name__)

_US_PER_MINUTE = 60_000_000
GATEWAY_LOCK = 7_315_001  # advisory lock serialising gateway-row updates (no deadlocks between writers)
DEAD_LETTERS_PER_GATEWAY_MINUTE = 60

_STAGE_DDL = """CREATE TEMP TABLE IF NOT EXISTS readings_stage (
    ts timestamptz NOT NULL, sensor integer NOT NULL, value double precision NOT NULL,
    quality smallint NOT NULL, device_ts timestamptz) ON COMMIT DELETE ROWS"""
_EPOCH_US = "(extract(epoch FROM {0}) * 1000000)::bigint"


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
    duplicates: int  # the same readings already stored (redeliveries) or repeated within the batch
    dead_letters: int  # dead-letter rows written
    merged: bool  # the batch took the conflict-safe path
    refused: tuple[StoreRefusal, ...] = ()  # readings the write path refused (now dead letters)
    capped_messages: int = 0  # dead letters beyond the per-gateway cap: counted, not written
    capped_readings: int = 0


def _us_to_datetime(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


def first_of(batch: ReadingBatch, key_us: np.ndarray) -> tuple[ReadingBatch, int, list[StoreRefusal]]:
    """Keep the first of readings sharing (sensor, ``key_us``) in a batch (a plain COPY would
    otherwise fail on its own rows). A later one is a duplicate when its device time and value
    match the kept one's; another value is a ``conflicting_value``, another device time a
    ``time_collision``. Returns (kept rows, duplicates, refusals)."""
    n = len(batch)
    if n < 2:
        return batch, 0, []
    order = np.lexsort((key_us, batch.sensor))  # stable: ties keep arrival order
    s, t = batch.sensor[order], key_us[order]
    repeat = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
    if not repeat.any():
        return batch, 0, []
    starts = np.concatenate(([True], ~repeat))
    first = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]  # each sorted row's group head
    later = np.flatnonzero(~starts)
    rep, head = order[later], first[later]
    same_device = batch.device_ts_us[rep] == batch.device_ts_us[head]
    same_value = batch.value[rep] == batch.value[head]
    keep = np.ones(n, dtype=bool)
    keep[rep] = False
    odd = np.flatnonzero(~(same_device & same_value))
    refusals = [
        StoreRefusal(int(batch.sensor[i]), int(batch.ts_us[i]), float(batch.value[i]),
                     RejectReason.CONFLICTING_VALUE if same_device[j] else RejectReason.TIME_COLLISION,
                     int(batch.received_us[i]), kept=float(batch.value[h]), device_ts_us=int(batch.device_ts_us[i]))
        for j, i, h in zip(odd.tolist(), rep[odd].tolist(), head[odd].tolist())
    ]
    return batch.take(keep), int(rep.shape[0]) - len(refusals), refusals


def drop_repeats(batch: ReadingBatch) -> tuple[ReadingBatch, int]:
    """Rows kept and rows set aside by :func:`first_of` on (sensor, ts)."""
    kept, duplicates, refusals = first_of(batch, batch.ts_us)
    return kept, duplicates + len(refusals)


@dataclasses.dataclass(slots=True)
class _Tally:
    inserted: int = 0
    duplicates: int = 0
    merged: bool = False
    refused: list[StoreRefusal] = dataclasses.field(default_factory=list)


_Attempt = Callable[[asyncpg.Connection, ReadingBatch, _Tally], Awaitable[None]]


class ReadingWriter:
    def __init__(self, pool: asyncpg.Pool, timeout_s: float = 30.0,
                 dead_letters_per_gateway_minute: int = DEAD_LETTERS_PER_GATEWAY_MINUTE) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._cap = DeadLetterCap(dead_letters_per_gateway_minute)

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
        readings = batch.readings
        corrected = (readings.quality & np.int16(Quality.CLOCK_CORRECTED)) != 0
        tally = _Tally()
        if corrected.any():
            plain, late = readings.take(~corrected), readings.take(corrected)
        else:
            plain, late = readings, None
        plain, tally.duplicates, tally.refused = first_of(plain, plain.ts_us)
        if len(plain):
            await self._isolate(conn, plain, self._copy_or_merge, tally)
        if late is not None:
            late, dup, refused = first_of(late, late.device_ts_us)
            tally.duplicates += dup
            tally.refused += refused
            await self._isolate(conn, late, self._insert_corrected, tally)
            tally.merged = True
        dead = list(batch.rejected)
        if tally.refused:
            dead += await refusals_as_dead_letters(conn, tally.refused, self._timeout_s)
        outcome = await write_dead_letters(conn, dead, self._cap, self._timeout_s) if dead else None
        if batch.statuses:
            await self._apply_statuses(conn, batch.statuses)
        if len(readings):
            await self._mark_dirty_minutes(conn, readings.ts_us)
        return WriteResult(
            tally.inserted, tally.duplicates, outcome.rows if outcome else 0, tally.merged, tuple(tally.refused),
            outcome.capped_messages if outcome else 0, outcome.capped_readings if outcome else 0,
        )

    async def _isolate(self, conn, rows: ReadingBatch, attempt: _Attempt, tally: _Tally) -> None:
        """Run ``attempt`` on ``rows`` under a savepoint; on a data error, bisect until each row the
        server refuses on its own is set aside as a ``database_refused`` refusal."""
        part = _Tally()
        try:
            async with conn.transaction():
                await attempt(conn, rows, part)
        except DATA_ERRORS as exc:
            if len(rows) == 1:
                log.warning("database refused a reading", extra={"sensor": int(rows.sensor[0]), "error": str(exc)[:200]})
                tally.refused.append(StoreRefusal(
                    int(rows.sensor[0]), int(rows.ts_us[0]), float(rows.value[0]), RejectReason.DATABASE_REFUSED,
                    int(rows.received_us[0]), device_ts_us=int(rows.device_ts_us[0]), error=str(exc)))
                tally.merged = True
                return
            half = len(rows) // 2
            await self._isolate(conn, rows.take(slice(0, half)), attempt, tally)
            await self._isolate(conn, rows.take(slice(half, None)), attempt, tally)
            return
        tally.inserted += part.inserted
        tally.duplicates += part.duplicates
        tally.merged |= part.merged
        tally.refused += part.refused

    async def _copy_or_merge(self, conn, rows: ReadingBatch, tally: _Tally) -> None:
        buf = readings_copy_buffer(rows.ts_us, rows.sensor, rows.value, rows.quality)
        try:
            async with conn.transaction():  # savepoint: a conflict rolls back only the COPY
                await conn.copy_to_table(
                    "readings", source=io.BytesIO(buf), columns=READING_COLUMNS, format="binary",
                    timeout=self._timeout_s,
                )
            tally.inserted += len(rows)
        except asyncpg.UniqueViolationError:
            await self._merge(conn, rows, buf, tally)

    async def _stage(self, conn, buf: bytes, columns: tuple[str, ...]) -> None:
        await conn.execute(_STAGE_DDL)
        await conn.execute("TRUNCATE readings_stage")
        await conn.copy_to_table("readings_stage", source=io.BytesIO(buf), columns=columns, format="binary",
                                 timeout=self._timeout_s)

    async def _merge(self, conn, rows: ReadingBatch, buf: bytes, tally: _Tally) -> None:
        """A redelivery: store what is new; the same (sensor, ts) with another value, or where a
        clock-corrected reading sits, is refused with the value kept."""
        await self._stage(conn, buf, READING_COLUMNS)
        clashes = await conn.fetch(
            f"""SELECT s.sensor, {_EPOCH_US.format('s.ts')} AS ts_us, s.value, r.value AS kept,
                       r.device_ts IS NOT NULL AS corrected
                FROM readings_stage s JOIN readings r ON r.sensor = s.sensor AND r.ts = s.ts
                WHERE r.value IS DISTINCT FROM s.value OR r.device_ts IS NOT NULL""",
            timeout=self._timeout_s,
        )
        status = await conn.execute(
            "INSERT INTO readings (ts, sensor, value, quality) "
            "SELECT ts, sensor, value, quality FROM readings_stage ON CONFLICT DO NOTHING",
            timeout=self._timeout_s,
        )
        inserted = int(status.rsplit(" ", 1)[1])
        received = int(rows.received_us.max())
        tally.refused += [
            StoreRefusal(c["sensor"], c["ts_us"], c["value"],
                         RejectReason.TIME_COLLISION if c["corrected"] else RejectReason.CONFLICTING_VALUE,
                         received, kept=c["kept"])
            for c in clashes
        ]
        tally.inserted += inserted
        tally.duplicates += len(rows) - inserted - len(clashes)
        tally.merged = True

    async def _insert_corrected(self, conn, rows: ReadingBatch, tally: _Tally) -> None:
        """Clock-corrected readings, identified by (sensor, device time): the same again is a
        duplicate, another value a conflict; one whose corrected time is taken is a collision."""
        buf = readings_with_device_ts_copy_buffer(rows.ts_us, rows.sensor, rows.value, rows.quality, rows.device_ts_us)
        await self._stage(conn, buf, (*READING_COLUMNS, "device_ts"))
        known = await conn.fetch(
            f"""SELECT DISTINCT ON (s.sensor, s.device_ts) s.sensor, {_EPOCH_US.format('s.ts')} AS ts_us, s.value,
                       {_EPOCH_US.format('s.device_ts')} AS device_us, r.value AS kept
                FROM readings_stage s JOIN readings r ON r.sensor = s.sensor AND r.device_ts = s.device_ts""",
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
        inserted = int(status.rsplit(" ", 1)[1])
        received = int(rows.received_us.max())
        conflicts = [k for k in known if k["kept"] != k["value"]]
        tally.refused += [
            StoreRefusal(k["sensor"], k["ts_us"], k["value"], RejectReason.CONFLICTING_VALUE, received,
                         kept=k["kept"], device_ts_us=k["device_us"])
            for k in conflicts
        ]
        tally.duplicates += len(known) - len(conflicts)
        if inserted + len(known) < len(rows):
            collided = await conn.fetch(
                f"""SELECT s.sensor, {_EPOCH_US.format('s.ts')} AS ts_us, s.value,
                           {_EPOCH_US.format('s.device_ts')} AS device_us,
                           (SELECT r.value FROM readings r WHERE r.sensor = s.sensor AND r.ts = s.ts) AS kept
                    FROM readings_stage s
                    WHERE NOT EXISTS (SELECT 1 FROM readings r WHERE r.sensor = s.sensor AND r.device_ts = s.device_ts)""",
                timeout=self._timeout_s,
            )
            tally.refused += [
                StoreRefusal(c["sensor"], c["ts_us"], c["value"], RejectReason.TIME_COLLISION, received,
                             kept=c["kept"], device_ts_us=c["device_us"])
                for c in collided
            ]
        tally.inserted += inserted
        tally.merged = True

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
