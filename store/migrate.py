"""Versioned SQL migrations, applied in order and recorded in ``schema_migrations``.

Files are ``store/migrations/NNNN_name.sql``; each runs in its own transaction. A file already
applied with different contents is an error (edit history by adding a migration, never in place).

Migrations run as the owner role (``yujing_owner``, ``YUJING_DATABASE_MIGRATION_URL``), never as the
service's: the role that applies them owns the schema. Run by a superuser (tests, benches), they
first create the roles (``store/roles.sql``), then own the schema as that superuser.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import re

import asyncpg

from domain.errors import FixConfiguration
from store.roles import can_create_roles, ensure_roles

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

TIMESCALEDB_MISSING = (
    "the timescaledb extension is not available in this PostgreSQL server. Install it with "
    "`make setup` (it builds Debian's timescaledb source package against the server when no "
    "binary package exists), or install timescaledb for PostgreSQL {major} and add it to "
    "shared_preload_libraries, then restart the server."
)


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover() -> list[Migration]:
    root = importlib.resources.files("store") / "migrations"
    found = []
    for entry in root.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise FixConfiguration(f"two migrations share a version number: {versions}")
    return found


async def ensure_timescaledb(conn: asyncpg.Connection) -> str:
    """Create the extension if the server has it; raise with install instructions if not."""
    available = await conn.fetchval(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    if available is None:
        major = await conn.fetchval("SHOW server_version_num")
        raise FixConfiguration(TIMESCALEDB_MISSING.format(major=int(major) // 10000))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except asyncpg.PostgresError as exc:
        raise FixConfiguration(
            f"could not create the timescaledb extension ({exc}); it must be listed in "
            "shared_preload_libraries and the server restarted"
        ) from exc
    return await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")


async def apply_migrations(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every migration not yet recorded. Returns those applied now."""
    await ensure_timescaledb(conn)
    if await can_create_roles(conn):
        await ensure_roles(conn)
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version     integer PRIMARY KEY,
               name        text NOT NULL,
               checksum    text NOT NULL,
               applied_at  timestamptz NOT NULL DEFAULT now())"""
    )
    applied_now = []
    # One migrator at a time, even when several processes start together.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('yujing.migrate'))")
        done = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}
        for migration in discover():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise FixConfiguration(
                        f"migration {migration.version:04d}_{migration.name} was changed after it was applied"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(migration)
    return applied_now


def chunk_interval_s(expected_rate: float, target_rows: int) -> int:
    """Chunk interval that keeps the open chunk near ``target_rows`` rows, 1 min … 7 days."""
    return int(min(max(target_rows / expected_rate, 60.0), 7 * 86400.0))


async def set_chunk_interval(conn: asyncpg.Connection, interval_s: int) -> None:
    """Applies to chunks created from now on (through ``yujing_set_chunk_interval``, which the
    service role may call: it owns no table)."""
    await conn.execute("SELECT yujing_set_chunk_interval($1::double precision)", float(interval_s))
