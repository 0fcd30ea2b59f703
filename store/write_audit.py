"""The ``api_write_audit`` table: one row per write made through the API, with the key that made it."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def record_write(conn: asyncpg.Connection, key_id: int, action: str, target: str,
                       detail: dict[str, Any]) -> None:
    """Record a write in the caller's transaction (the caller has scrubbed ``detail`` of secrets)."""
    await conn.execute(
        "INSERT INTO api_write_audit (key_id, action, target, detail) VALUES ($1, $2, $3, $4::text::jsonb)",
        key_id, action, target, json.dumps(detail, ensure_ascii=False, default=str),
    )
