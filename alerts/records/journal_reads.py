"""Reads of the audit journal (``alert_journal``) that the alerts need: the feed's next entries,
the latest change of each alert the state updates publish, and one alert's history.

The journal's writes and its verification are :mod:`journal`'s."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

import asyncpg

FEED_BATCH = 10_000


async def head_seq(conn: asyncpg.Connection) -> int | None:
    """The sequence number of the journal's newest entry (``None`` before the first)."""
    return await conn.fetchval("SELECT seq FROM alert_journal_head WHERE singleton")


async def entries_after(conn: asyncpg.Connection, seq: int, limit: int = FEED_BATCH) -> list[dict]:
    """Entries after ``seq``, oldest first, with ``detail`` decoded."""
    rows = await conn.fetch(
        "SELECT seq, at_us, alert_id, alert_key, version, action, actor, detail FROM alert_journal"
        " WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit,
    )
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


async def latest_changes(conn: asyncpg.Connection, told_after: Sequence[tuple[int, int]],
                         skip_actions: Collection[str]) -> dict[int, dict]:
    """Per alert id, the newest entry (action, actor) past its given version, ``skip_actions`` aside."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (j.alert_id) j.alert_id, j.action, j.actor FROM alert_journal j
           JOIN unnest($1::bigint[], $2::int[]) AS u(id, told) ON j.alert_id = u.id
           WHERE j.version > u.told AND NOT (j.action = ANY($3::text[]))
           ORDER BY j.alert_id, j.seq DESC""",
        [a for a, _ in told_after], [v for _, v in told_after], sorted(skip_actions))
    return {r["alert_id"]: dict(r) for r in rows}


async def history(conn: asyncpg.Connection, alert_id: int) -> list[dict]:
    """The alert's journal entries, oldest first."""
    rows = await conn.fetch(
        "SELECT seq, at_us, version, action, actor, detail FROM alert_journal WHERE alert_id = $1 ORDER BY seq",
        alert_id,
    )
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]
