"""The registry version: one number that moves with every change to the registry, and the
notification that tells the running service to reload its snapshot."""

from __future__ import annotations

import asyncpg

REGISTRY_CHANNEL = "yujing_registry"


async def registry_version(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT version FROM registry_version")


async def bump_version(conn: asyncpg.Connection) -> int:
    """Move the version by one and notify :data:`REGISTRY_CHANNEL` (sent when the caller's
    transaction commits); the new version."""
    version = await conn.fetchval("UPDATE registry_version SET version = version + 1 RETURNING version")
    await conn.execute("SELECT pg_notify($1, $2)", REGISTRY_CHANNEL, str(version))
    return version
