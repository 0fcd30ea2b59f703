"""Whether the database answers at all (the readiness probe's question)."""

from __future__ import annotations

import asyncpg


async def database_answers(pool: asyncpg.Pool) -> None:
    """Returns when a pooled connection answers a trivial query; raises whatever stopped it."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
