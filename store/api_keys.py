"""The ``api_keys`` table: keys stored as SHA-256 of the plain key, never the key itself.

What a key means (its scope, rate and cap) is the API's (``api.keys``); this module only reads
and writes its rows.
"""

from __future__ import annotations

import asyncpg

KEY_COLUMNS = "id, prefix, name, scope_kind, scope_id, rate_per_s, burst, admin, live_sessions"
INFO_COLUMNS = "id, prefix, name, scope_kind, scope_id, created_at, last_used_at, revoked_at"
TIMEOUT_S = 10


async def insert_key(conn: asyncpg.Connection, *, prefix: str, key_sha256: str, name: str, scope_kind: str,
                     scope_id: str | None, rate_per_s: float, burst: int, admin: bool, live_sessions: int) -> int:
    """Store a new key; its id."""
    return await conn.fetchval(
        """INSERT INTO api_keys (prefix, key_sha256, name, scope_kind, scope_id, rate_per_s, burst, admin,
                                  live_sessions)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id""",
        prefix, key_sha256, name, scope_kind, scope_id, rate_per_s, burst, admin, live_sessions,
    )


async def revoke_key(conn: asyncpg.Connection, key_id: int) -> bool:
    """Revoke a live key; False when there is no such key or it was revoked already."""
    return await conn.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING true", key_id
    ) is not None


async def key_rows(conn: asyncpg.Connection, *, include_revoked: bool) -> list[asyncpg.Record]:
    """Every key (:data:`INFO_COLUMNS`, no hash), by id."""
    return await conn.fetch(f"SELECT {INFO_COLUMNS} FROM api_keys WHERE $1 OR revoked_at IS NULL ORDER BY id",
                            include_revoked)


async def use_key(pool: asyncpg.Pool, key_sha256: str) -> asyncpg.Record | None:
    """The unrevoked key with this hash (:data:`KEY_COLUMNS`), its ``last_used_at`` stamped; None if none."""
    async with pool.acquire(timeout=TIMEOUT_S) as conn:
        return await conn.fetchrow(
            f"""UPDATE api_keys SET last_used_at = now() WHERE key_sha256 = $1 AND revoked_at IS NULL
                RETURNING {KEY_COLUMNS}""",
            key_sha256, timeout=TIMEOUT_S,
        )


async def unrevoked_digests(pool: asyncpg.Pool, digests: list[str]) -> set[str]:
    """Those of ``digests`` that name an unrevoked key."""
    async with pool.acquire(timeout=TIMEOUT_S) as conn:
        rows = await conn.fetch("SELECT key_sha256 FROM api_keys WHERE key_sha256 = ANY($1::text[]) "
                                "AND revoked_at IS NULL", digests, timeout=TIMEOUT_S)
    return {r[0] for r in rows}
