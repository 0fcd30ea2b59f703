"""Operator transitions: the only way the API (or anyone) changes an alert.

Each function locks the alert, applies the pure transition of :mod:`alerts.lifecycle`, saves it
with a new ``version`` and appends an audit-journal entry, in one transaction (a savepoint when
the caller already holds one). They are idempotent: repeating a transition that is already in
effect (acknowledging an acknowledged alert, closing a closed one) changes nothing and returns
the alert as it is, even with a stale ``expected_version``; a *different* change against a stale
``expected_version`` raises :class:`~alerts.lifecycle.VersionConflict`. Not-allowed transitions
raise :class:`~alerts.lifecycle.TransitionError`; an unknown id raises
:class:`~alerts.lifecycle.AlertNotFound`.

The alerts service notices the change through the journal (live feed) and ``timer_due_us``
(escalation stops on acknowledgement, resumes after unshelving) within one tick, and routes the
notifications a change deserves (a latch reset or a manual resolve) through ``notify_version``.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

import journal
from alerts import lifecycle, records
from alerts.lifecycle import Alert, AlertNotFound, Change, VersionConflict
from alerts.records import journal_reads
from domain import clock

SHELVE_MAX_S = 7 * 86400.0  # ISA-18.2 shelving is timed; a week is the longest yujing allows


def _check_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise lifecycle.TransitionError("every transition needs the actor who made it")


async def _apply(conn: asyncpg.Connection, alert_id: int, expected_version: int | None, now_us: int | None,
                 actor: str, fn: Callable[[Alert, int], Change | None]) -> Alert:
    _check_actor(actor)
    now = clock.now_us() if now_us is None else now_us
    async with conn.transaction():
        alert = await records.get(conn, alert_id, for_update=True)
        if alert is None:
            raise AlertNotFound(alert_id)
        candidate = alert.copy()
        change = fn(candidate, now)
        if change is None:
            return alert
        if expected_version is not None and expected_version != alert.version:
            raise VersionConflict(alert_id, expected_version, alert.version)
        await records.update(conn, [candidate])
        await journal.append(conn, [journal.Entry(now, candidate.id, candidate.alert_key, candidate.version,
                                                  change.action, change.actor,
                                                  {**change.detail, "alert": candidate.snapshot()})])
        return candidate


async def get_alert(conn: asyncpg.Connection, alert_id: int) -> Alert:
    alert = await records.get(conn, alert_id)
    if alert is None:
        raise AlertNotFound(alert_id)
    return alert


async def acknowledge(conn: asyncpg.Connection, alert_id: int, actor: str, comment: str | None = None,
                      expected_version: int | None = None, *, now_us: int | None = None) -> Alert:
    return await _apply(conn, alert_id, expected_version, now_us, actor,
                        lambda a, now: lifecycle.acknowledge(a, actor, comment, now))


async def comment(conn: asyncpg.Connection, alert_id: int, actor: str, text: str,
                  expected_version: int | None = None, *, now_us: int | None = None) -> Alert:
    """A comment is always a new entry (not idempotent by content: two equal comments are two)."""
    return await _apply(conn, alert_id, expected_version, now_us, actor,
                        lambda a, now: lifecycle.comment(a, actor, text, now))


async def assign(conn: asyncpg.Connection, alert_id: int, actor: str, assignee: str | None,
                 comment: str | None = None, expected_version: int | None = None, *,
                 now_us: int | None = None) -> Alert:
    return await _apply(conn, alert_id, expected_version, now_us, actor,
                        lambda a, now: lifecycle.assign(a, actor, assignee, comment, now))


async def shelve(conn: asyncpg.Connection, alert_id: int, actor: str, reason: str, until_us: int,
                 expected_version: int | None = None, *, now_us: int | None = None) -> Alert:
    return await _apply(conn, alert_id, expected_version, now_us, actor,
                        lambda a, now: lifecycle.shelve(a, actor, reason, until_us, now, SHELVE_MAX_S))


async def unshelve(conn: asyncpg.Connection, alert_id: int, actor: str, comment: str | None = None,
                   expected_version: int | None = None, *, now_us: int | None = None) -> Alert:
    return await _apply(conn, alert_id, expected_version, now_us, actor,
                        lambda a, now: lifecycle.unshelve(a, actor, comment, now))


async def reset_latch(conn: asyncpg.Connection, alert_id: int, actor: str, comment: str | None = None,
                      expected_version: int | None = None, *, now_us: int | None = None) -> Alert:
    return await _apply(conn, alert_id, expected_version, now_us, actor,
                        lambda a, now: lifecycle.reset_latch(a, actor, comment, now))


async def resolve(conn: asyncpg.Connection, alert_id: int, actor: str, comment: str | None = None,
                  expected_version: int | None = None, *, force: bool = False, now_us: int | None = None) -> Alert:
    return await _apply(conn, alert_id, expected_version, now_us, actor,
                        lambda a, now: lifecycle.resolve(a, actor, comment, now, force))


async def close(conn: asyncpg.Connection, alert_id: int, actor: str, comment: str | None = None,
                expected_version: int | None = None, *, now_us: int | None = None) -> Alert:
    return await _apply(conn, alert_id, expected_version, now_us, actor,
                        lambda a, now: lifecycle.close(a, actor, comment, now))


async def history(conn: asyncpg.Connection, alert_id: int) -> list[dict]:
    """The alert's journal entries, oldest first."""
    return await journal_reads.history(conn, alert_id)
