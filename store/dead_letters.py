"""The ``dead_letters`` table (its owner): one row per refused message, committed with the readings.

- A row holds the payload once (truncated by the decoder), the refused readings as a bounded list
  ``[index, sensor, reason(, note)]``, their number in ``refused`` and every one counted per reason.
- Text is made storable before it reaches the server (PostgreSQL text holds no NUL; a lone
  surrogate cannot be encoded), and a row the server still refuses is bisected out and replaced
  by a minimal row that keeps its counts.
- At most ``per_gateway_minute`` rows per gateway and minute: beyond that, messages and readings
  are counted in ``dead_letter_overflow`` (one row per gateway and minute), so a flood of bad
  messages costs a counter, never the count.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

import asyncpg

from domain.messages import Rejected, RefusedReading, RejectReason
from store.errors import DATA_ERRORS

log = logging.getLogger(__name__)

_US_PER_MINUTE = 60_000_000
COLUMNS = ("received_at", "reason", "detail", "topic", "enterprise", "gateway", "payload", "refused", "readings", "reasons")


def storable(text: str | None) -> str | None:
    """``text`` as PostgreSQL can store it: NUL and lone surrogates written as escapes."""
    if text is None or (text.isascii() and "\x00" not in text):
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _at(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


def _listed(r: RefusedReading) -> list:
    entry = [r.index, storable(r.sensor), r.reason.value]
    if r.note:
        entry.append(storable(r.note))
    return entry


def record(r: Rejected) -> tuple:
    return (
        _at(r.received_us), r.reason.value, storable(r.detail) or "", storable(r.topic) or "", storable(r.enterprise),
        storable(r.gateway), r.payload, r.refused,
        json.dumps([_listed(x) for x in r.readings], ensure_ascii=False),
        json.dumps({k.value: n for k, n in r.reasons}),
    )


def _minimal(r: Rejected) -> tuple:
    """What is kept of a dead letter the server refused: its reason and counts (the server's
    error is logged, not stored: it may quote the very text that was refused)."""
    return (
        _at(r.received_us), r.reason.value, "the database refused this dead letter; its counts are kept", "",
        None, None, b"", r.refused, "[]", json.dumps({k.value: n for k, n in r.reasons}),
    )


_UNREGISTERED = (RejectReason.BAD_TOPIC, RejectReason.UNKNOWN_GATEWAY)


def source(r: Rejected) -> tuple[str, str]:
    """Whose allowance a dead letter uses: its gateway's, or one shared by every unregistered
    source (so spraying made-up gateway ids buys no more rows, nor more overflow rows)."""
    if r.reason in _UNREGISTERED:
        return "", ""
    return storable(r.enterprise) or "", storable(r.gateway) or ""


class DeadLetterCap:
    """Admits at most ``per_minute`` dead-letter rows per gateway (and as many for all unregistered
    sources together) in each minute of receive time."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._minute = -1
        self._rows: dict[tuple[str, str], int] = {}

    def admit(self, r: Rejected) -> bool:
        minute = r.received_us // _US_PER_MINUTE
        if minute > self._minute:  # an older message counts against the current minute
            self._minute, self._rows = minute, {}
        key = source(r)
        n = self._rows.get(key, 0)
        if n >= self.per_minute:
            return False
        self._rows[key] = n + 1
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetterOutcome:
    rows: int  # rows written to dead_letters
    capped_messages: int  # beyond the cap: counted in dead_letter_overflow instead
    capped_readings: int
    replaced: int  # rows the server refused, kept as minimal rows


async def write_dead_letters(conn: asyncpg.Connection, rejected: list[Rejected], cap: DeadLetterCap,
                             timeout_s: float) -> DeadLetterOutcome:
    """Insert the admitted dead letters (bisecting out rows the server refuses) and add the capped
    ones to ``dead_letter_overflow``; runs inside the caller's transaction."""
    admit = [cap.admit(r) for r in rejected]
    admitted = [r for r, ok in zip(rejected, admit) if ok]
    capped = [r for r, ok in zip(rejected, admit) if not ok]
    replaced: list[Rejected] = []
    rows = len(admitted)
    if admitted:
        await _insert(conn, admitted, replaced, timeout_s)
    if replaced:
        try:
            async with conn.transaction():
                await conn.copy_records_to_table("dead_letters", records=[_minimal(r) for r in replaced],
                                                 columns=COLUMNS, timeout=timeout_s)
        except DATA_ERRORS as exc:  # even the minimal rows: their counts go to the overflow table
            log.error("database refused minimal dead letters; counting them", extra={"error": str(exc)[:200]})
            capped += replaced
            rows -= len(replaced)
    if capped:
        await _count_overflow(conn, capped, timeout_s)
    return DeadLetterOutcome(rows, len(capped), sum(r.refused for r in capped), len(replaced))


async def _insert(conn, rows: list[Rejected], replaced: list[Rejected], timeout_s: float) -> None:
    try:
        async with conn.transaction():  # savepoint: a refusal rolls back only this part
            await conn.copy_records_to_table("dead_letters", records=[record(r) for r in rows], columns=COLUMNS,
                                             timeout=timeout_s)
    except DATA_ERRORS as exc:
        if len(rows) == 1:
            log.warning("database refused a dead letter; keeping its counts", extra={"error": str(exc)[:200]})
            replaced.append(rows[0])
            return
        half = len(rows) // 2
        await _insert(conn, rows[:half], replaced, timeout_s)
        await _insert(conn, rows[half:], replaced, timeout_s)


async def _count_overflow(conn, capped: list[Rejected], timeout_s: float) -> None:
    totals: dict[tuple[dt.datetime, str, str], list[int]] = {}
    for r in capped:
        key = (_at(r.received_us - r.received_us % _US_PER_MINUTE), *source(r))
        t = totals.setdefault(key, [0, 0])
        t[0] += 1
        t[1] += r.refused
    keys = sorted(totals)
    await conn.execute(
        """INSERT INTO dead_letter_overflow AS o (minute, enterprise, gateway, messages, readings)
           SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
           ON CONFLICT (minute, enterprise, gateway)
           DO UPDATE SET messages = o.messages + excluded.messages, readings = o.readings + excluded.readings""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        [totals[k][0] for k in keys], [totals[k][1] for k in keys],
        timeout=timeout_s,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class StoreRefusal:
    """A reading the write path refused: a conflicting value, a time collision or a row the
    database refused. ``kept`` is the value already stored (or kept earlier in the batch)."""

    sensor: int
    ts_us: int
    value: float
    reason: RejectReason
    received_us: int
    kept: float | None = None
    device_ts_us: int = 0
    error: str = ""


async def refusals_as_dead_letters(conn, refusals: list[StoreRefusal], timeout_s: float) -> list[Rejected]:
    """One dead letter per gateway for the readings the write path refused (their messages were
    valid, so no payload is kept; the listed readings carry the values)."""
    ids = sorted({r.sensor for r in refusals})
    names = {
        row["id"]: (row["enterprise"], row["gateway"], row["code"])
        for row in await conn.fetch(
            "SELECT s.id, s.enterprise, g.code AS gateway, s.code FROM sensors s JOIN gateways g ON g.id = s.gateway "
            "WHERE s.id = ANY($1::int[])", ids, timeout=timeout_s)
    }
    groups: dict[tuple[str | None, str | None], list[StoreRefusal]] = {}
    for r in refusals:
        e, g, _ = names.get(r.sensor, (None, None, None))
        groups.setdefault((e, g), []).append(r)
    out = []
    for (e, g), rs in groups.items():
        listed = [RefusedReading(None, names.get(r.sensor, (None, None, f"#{r.sensor}"))[2], r.reason, _note(r)) for r in rs]
        counts: dict[RejectReason, int] = {}
        for r in rs:
            counts[r.reason] = counts.get(r.reason, 0) + 1
        out.append(Rejected.of_readings(
            f"yj/v1/{e}/{g}/up" if e else "", b"", min(r.received_us for r in rs), e, g, listed, counts, len(rs),
            f"sensor {listed[0].sensor!r}: {listed[0].note}"))
    return out


def _note(r: StoreRefusal) -> str:
    at = _at(r.ts_us).isoformat()
    device = f" (device time {_at(r.device_ts_us).isoformat()})" if r.device_ts_us else ""
    if r.reason is RejectReason.CONFLICTING_VALUE:
        return f"value {r.value!r} at {at}{device}; kept {r.kept!r}"
    if r.reason is RejectReason.TIME_COLLISION:
        return f"value {r.value!r} corrected to {at}{device}, where the sensor already has a reading"
    return f"value {r.value!r} at {at}: {r.error[:160]}"
