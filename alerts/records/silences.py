"""The ``alert_silences`` table: silences are inserted, updated and expired, never deleted.

Rows come back as they are stored; :mod:`alerts.silences` turns them into ``Silence`` values."""

from __future__ import annotations

import asyncpg

_COLUMNS = ("id, matchers::text AS matchers, starts_us, ends_us, creator, reason, created_us, updated_us, "
            "expired_by, version")
_SELECT = f"SELECT {_COLUMNS} FROM alert_silences"


async def insert(conn: asyncpg.Connection, matchers_json: str, starts_us: int, ends_us: int, creator: str,
                 reason: str, now_us: int) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO alert_silences (matchers, starts_us, ends_us, creator, reason, created_us, updated_us)
            VALUES ($1::text::jsonb, $2, $3, $4, $5, $6, $6) RETURNING {_COLUMNS}""",
        matchers_json, starts_us, ends_us, creator, reason, now_us,
    )


async def get(conn: asyncpg.Connection, silence_id: int, *, for_update: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{_SELECT} WHERE id = $1{' FOR UPDATE' if for_update else ''}", silence_id)


async def listed(conn: asyncpg.Connection, active_at_us: int | None = None) -> list[asyncpg.Record]:
    """All silences, newest first; with ``active_at_us`` only those active then."""
    if active_at_us is None:
        return await conn.fetch(f"{_SELECT} ORDER BY id DESC")
    return await conn.fetch(f"{_SELECT} WHERE starts_us <= $1 AND ends_us > $1 ORDER BY id DESC", active_at_us)


async def update(conn: asyncpg.Connection, silence_id: int, matchers_json: str, ends_us: int, reason: str,
                 now_us: int) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""UPDATE alert_silences SET matchers = $2::text::jsonb, ends_us = $3, reason = $4, updated_us = $5,
                   version = version + 1 WHERE id = $1 RETURNING {_COLUMNS}""",
        silence_id, matchers_json, ends_us, reason, now_us,
    )


async def expire(conn: asyncpg.Connection, silence_id: int, actor: str, now_us: int) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""UPDATE alert_silences SET ends_us = greatest($2, starts_us), expired_by = $3, updated_us = $2,
                   version = version + 1 WHERE id = $1 RETURNING {_COLUMNS}""",
        silence_id, now_us, actor,
    )


async def visible(conn: asyncpg.Connection, silence_id: int, scope_sql: str, *args) -> bool:
    """Whether the silence exists within a caller's scope (``scope_sql`` uses ``$2``… for ``args``)."""
    found = await conn.fetchval(f"SELECT id FROM alert_silences WHERE id = $1 AND {scope_sql}", silence_id, *args)
    return found is not None


async def ids_where(conn: asyncpg.Connection, where_sql: str, args: list, limit: int) -> list[int]:
    """Ids of at most ``limit`` silences matching ``where_sql`` (``$1``… for ``args``), newest first."""
    rows = await conn.fetch(f"SELECT id FROM alert_silences WHERE {where_sql} ORDER BY id DESC LIMIT ${len(args) + 1}",
                            *args, limit)
    return [r["id"] for r in rows]
