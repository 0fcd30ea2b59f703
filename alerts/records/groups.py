"""The aggregation groups: ``alert_groups`` (one row per route, receiver and ``group_by`` labels,
with its timers) and ``alert_group_members`` (which version of each alert the group has told)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

GroupRow = tuple[str, str, str, str, bool]  # group key, route id, receiver, labels as JSON, urgent
MemberUpdate = tuple[int, int, int, int, str]  # group id, alert id, notified version, grade, state
FlushUpdate = tuple[int, int | None, int | None, bool]  # group id, last flush, next due, sent


async def upsert(conn: asyncpg.Connection, groups: Sequence[GroupRow], now_us: int) -> list[asyncpg.Record]:
    """Create the groups or mark them pending (and urgent); returns their timers."""
    return await conn.fetch(
        """INSERT INTO alert_groups (group_key, route, receiver, labels, created_us, pending_since_us, urgent)
           SELECT k, r, rc, l::jsonb, $5, $5, u
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::boolean[]) AS t(k, r, rc, l, u)
           ON CONFLICT (group_key) DO UPDATE
               SET pending_since_us = coalesce(alert_groups.pending_since_us, EXCLUDED.pending_since_us),
                   urgent = alert_groups.urgent OR EXCLUDED.urgent
           RETURNING id, group_key, route, last_flush_us, pending_since_us, urgent, next_due_us""",
        [g[0] for g in groups], [g[1] for g in groups], [g[2] for g in groups], [g[3] for g in groups], now_us,
        [g[4] for g in groups],
    )


async def set_next_due(conn: asyncpg.Connection, dues: Sequence[tuple[int, int]]) -> None:
    await conn.execute(
        "UPDATE alert_groups g SET next_due_us = u.d FROM unnest($1::bigint[], $2::bigint[]) AS u(id, d)"
        " WHERE g.id = u.id",
        [d[0] for d in dues], [d[1] for d in dues],
    )


async def add_members(conn: asyncpg.Connection, members: Sequence[tuple[int, int]]) -> None:
    """(group id, alert id) pairs; a member already there stays as it is."""
    await conn.execute(
        """INSERT INTO alert_group_members (group_id, alert_id)
           SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING""",
        [g for g, _ in members], [a for _, a in members],
    )


async def due(conn: asyncpg.Connection, now_us: int, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` groups due by ``now_us``, locked (others skip them)."""
    return await conn.fetch(
        """SELECT id, group_key, route, receiver, labels::text AS labels, last_flush_us, urgent, flushes
           FROM alert_groups WHERE next_due_us <= $1 ORDER BY next_due_us LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now_us, limit,
    )


async def members(conn: asyncpg.Connection, group_ids: Sequence[int]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT group_id, alert_id, notified_version, notified_grade, notified_state FROM alert_group_members"
        " WHERE group_id = ANY($1::bigint[])", list(group_ids),
    )


async def mark_notified(conn: asyncpg.Connection, updates: Sequence[MemberUpdate]) -> None:
    if not updates:
        return
    await conn.execute(
        """UPDATE alert_group_members m SET notified_version = u.v, notified_grade = u.gr, notified_state = u.s
           FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::smallint[], $5::text[]) AS u(g, a, v, gr, s)
           WHERE m.group_id = u.g AND m.alert_id = u.a""",
        *map(list, zip(*updates, strict=True)),
    )


async def save_flushed(conn: asyncpg.Connection, updates: Sequence[FlushUpdate]) -> None:
    if not updates:
        return
    await conn.execute(
        """UPDATE alert_groups g SET last_flush_us = u.lf, next_due_us = u.nd, urgent = false,
                  pending_since_us = CASE WHEN u.nd IS NULL OR u.sent THEN NULL ELSE g.pending_since_us END,
                  flushes = g.flushes + CASE WHEN u.sent THEN 1 ELSE 0 END
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::boolean[]) AS u(id, lf, nd, sent)
           WHERE g.id = u.id""",
        *map(list, zip(*updates, strict=True)),
    )


async def prune(conn: asyncpg.Connection, group_ids: Sequence[int], drop: Sequence[int]) -> None:
    """Members whose alert is over and told leave their group; empty groups and ``drop`` go."""
    await conn.execute(
        """DELETE FROM alert_group_members m USING alerts a
           WHERE m.group_id = ANY($1::bigint[]) AND a.id = m.alert_id
             AND a.state IN ('resolved', 'closed') AND m.notified_version >= a.notify_version""",
        list(group_ids),
    )
    await conn.execute(
        """DELETE FROM alert_groups g WHERE g.id = ANY($1::bigint[])
             AND (g.id = ANY($2::bigint[]) OR NOT EXISTS (SELECT 1 FROM alert_group_members m WHERE m.group_id = g.id))""",
        list(group_ids), list(drop),
    )


async def release_held(conn: asyncpg.Connection, now_us: int) -> None:
    """Make due now every group holding a change it has not told (a silence or window ended)."""
    await conn.execute(
        """UPDATE alert_groups g SET next_due_us = $1 WHERE (g.next_due_us IS NULL OR g.next_due_us > $1)
             AND EXISTS (SELECT 1 FROM alert_group_members m JOIN alerts a ON a.id = m.alert_id
                         WHERE m.group_id = g.id AND a.notify_version > m.notified_version)""", now_us)
