"""Silences (ad-hoc, stored in PostgreSQL, journaled) and recurring maintenance windows.

A silence mutes notifications and escalation of the alerts its matchers select between
``starts_us`` and ``ends_us``; the alerts themselves still open, change and show on the live
feed and the map. Silences are durable from the moment they are created (Alertmanager #1673,
#2683, Grafana #36099 lost them on restart) and every change is an audit-journal entry.
Expiring a silence sets its end to now; nothing is ever deleted.

Maintenance windows are declared in the policy (recurring, local time); they mute matching alerts
up to their ``max_colour`` only, so a red alarm during calibration still goes out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

import journal
from alerts.lifecycle import Alert
from alerts.matchers import Matchers, MatcherError
from alerts.policy import Maintenance
from alerts.records import silences as rows
from domain import clock


class SilenceError(ValueError):
    """A silence request is invalid (the message says why)."""


class SilenceNotFound(LookupError):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: Matchers
    starts_us: int
    ends_us: int
    creator: str
    reason: str
    created_us: int
    updated_us: int
    expired_by: str | None
    version: int

    def active(self, now_us: int) -> bool:
        return self.starts_us <= now_us < self.ends_us

    def mutes(self, alert: Alert, now_us: int) -> bool:
        return self.active(now_us) and self.matchers.matches(alert.labels, alert.regions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "matchers": self.matchers.as_dict(), "starts_us": self.starts_us, "ends_us": self.ends_us,
            "creator": self.creator, "reason": self.reason, "created_us": self.created_us,
            "updated_us": self.updated_us, "expired_by": self.expired_by, "version": self.version,
        }


def _parse_matchers(raw: Mapping[str, Any]) -> Matchers:
    try:
        m = Matchers.parse(raw)
    except MatcherError as exc:
        raise SilenceError(str(exc)) from None
    if not m:
        raise SilenceError("a silence needs at least one matcher (it would mute everything)")
    return m


def _from_row(r: asyncpg.Record) -> Silence:
    raw = r["matchers"]
    return Silence(
        id=r["id"], matchers=Matchers.parse(json.loads(raw) if isinstance(raw, str) else raw),
        starts_us=r["starts_us"], ends_us=r["ends_us"], creator=r["creator"], reason=r["reason"],
        created_us=r["created_us"], updated_us=r["updated_us"], expired_by=r["expired_by"], version=r["version"],
    )


def _matchers_json(m: Matchers) -> str:
    return json.dumps(m.as_dict(), ensure_ascii=False, sort_keys=True)


async def _journal(conn, s: Silence, action: str, actor: str, now_us: int) -> None:
    await journal.append(conn, [journal.Entry(now_us, None, f"silence:{s.id}", s.version, action, actor, s.as_dict())])


async def create_silence(
    conn: asyncpg.Connection, matchers: Mapping[str, Any], starts_us: int | None, ends_us: int, creator: str,
    reason: str, *, now_us: int | None = None,
) -> Silence:
    now = clock.now_us() if now_us is None else now_us
    m = _parse_matchers(matchers)
    starts = now if starts_us is None else starts_us
    if not creator or not creator.strip():
        raise SilenceError("a silence needs its creator")
    if not reason or not reason.strip():
        raise SilenceError("a silence needs a reason")
    if ends_us <= max(starts, now):
        raise SilenceError("a silence must end after it starts and in the future")
    async with conn.transaction():
        s = _from_row(await rows.insert(conn, _matchers_json(m), starts, ends_us, creator, reason, now))
        await _journal(conn, s, "silence_created", creator, now)
    return s


async def get_silence(conn: asyncpg.Connection, silence_id: int) -> Silence:
    row = await rows.get(conn, silence_id)
    if row is None:
        raise SilenceNotFound(f"no silence {silence_id}")
    return _from_row(row)


async def list_silences(conn: asyncpg.Connection, *, active_at_us: int | None = None) -> list[Silence]:
    """All silences, newest first; with ``active_at_us`` only those active then."""
    return [_from_row(r) for r in await rows.listed(conn, active_at_us)]


async def update_silence(
    conn: asyncpg.Connection, silence_id: int, actor: str, *, matchers: Mapping[str, Any] | None = None,
    ends_us: int | None = None, reason: str | None = None, expected_version: int | None = None,
    now_us: int | None = None,
) -> Silence:
    now = clock.now_us() if now_us is None else now_us
    async with conn.transaction():
        row = await rows.get(conn, silence_id, for_update=True)
        if row is None:
            raise SilenceNotFound(f"no silence {silence_id}")
        s = _from_row(row)
        if expected_version is not None and s.version != expected_version:
            raise SilenceError(f"silence {silence_id} is at version {s.version}, not {expected_version}")
        if s.ends_us <= now:
            raise SilenceError(f"silence {silence_id} has ended; create a new one")
        m = _parse_matchers(matchers) if matchers is not None else s.matchers
        ends = s.ends_us if ends_us is None else ends_us
        if ends <= now:
            raise SilenceError("use expire_silence to end a silence now")
        if reason is not None and not reason.strip():
            raise SilenceError("a silence needs a reason")
        s = _from_row(await rows.update(conn, silence_id, _matchers_json(m), ends, reason or s.reason, now))
        await _journal(conn, s, "silence_updated", actor, now)
    return s


async def expire_silence(conn: asyncpg.Connection, silence_id: int, actor: str, *, now_us: int | None = None) -> Silence:
    """End a silence now (idempotent: an ended silence is returned unchanged)."""
    now = clock.now_us() if now_us is None else now_us
    async with conn.transaction():
        row = await rows.get(conn, silence_id, for_update=True)
        if row is None:
            raise SilenceNotFound(f"no silence {silence_id}")
        s = _from_row(row)
        if s.ends_us <= now:
            return s
        s = _from_row(await rows.expire(conn, silence_id, actor, now))
        await _journal(conn, s, "silence_expired", actor, now)
    return s


# --------------------------------------------------------------------------- maintenance


def maintenance_active(m: Maintenance, now_us: int) -> bool:
    t = dt.datetime.fromtimestamp(now_us / 1e6, m.timezone)
    minute = t.hour * 60 + t.minute
    for w in m.windows:
        if w.end_min > w.start_min:
            inside, day = w.start_min <= minute < w.end_min, t
        elif minute >= w.start_min:  # past-midnight window, evening part
            inside, day = True, t
        elif minute < w.end_min:  # past-midnight window, morning part: belongs to yesterday
            inside, day = True, t - dt.timedelta(days=1)
        else:
            inside, day = False, t
        if not inside:
            continue
        if w.weekdays and day.weekday() not in w.weekdays:
            continue
        if w.days_of_month and day.day not in w.days_of_month:
            continue
        if w.months and day.month not in w.months:
            continue
        return True
    return False


class Muter:
    """Says why an alert's notifications are muted now: shelved, silenced or in maintenance."""

    def __init__(self, silences: Sequence[Silence], maintenance: Sequence[Maintenance]) -> None:
        self.silences = list(silences)
        self.maintenance = list(maintenance)

    def muted_by(self, alert: Alert, now_us: int, maintenance: bool = True) -> str | None:
        if alert.shelved(now_us):
            return f"shelved by {alert.shelved_by}"
        for s in self.silences:
            if s.mutes(alert, now_us):
                return f"silence {s.id}"
        if maintenance:
            for m in self.maintenance:
                if alert.grade <= m.max_colour and m.matchers.matches(alert.labels, alert.regions) \
                        and maintenance_active(m, now_us):
                    return f"maintenance {m.name}"
        return None
