"""The ``alert_outbox`` table: notifications written in the deciding transaction, claimed with a
lease by the deliverer, marked delivered, retried or failed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import asyncpg


@dataclasses.dataclass(frozen=True, slots=True)
class NewNotification:
    idempotency_key: str
    receiver: str
    channel: str
    channel_type: str
    payload: dict[str, Any]
    alert_ids: tuple[int, ...]
    target: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    idempotency_key: str
    receiver: str
    channel: str
    channel_type: str
    target: dict[str, Any] | None
    payload: dict[str, Any]
    attempts: int
    created_us: int


async def enqueue(conn: asyncpg.Connection, rows: Sequence[NewNotification], now_us: int) -> int:
    """Insert notifications (the caller's transaction); an existing key is left alone."""
    if not rows:
        return 0
    result = await conn.fetch(
        """INSERT INTO alert_outbox (idempotency_key, receiver, channel, channel_type, target, payload, alert_ids,
                                     created_us, next_attempt_us)
           SELECT k, r, c, t, tg::jsonb, p::jsonb, string_to_array(a, ',')::bigint[], $8, $8
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                AS u(k, r, c, t, tg, p, a)
           ON CONFLICT (idempotency_key) DO NOTHING RETURNING id""",
        [n.idempotency_key for n in rows], [n.receiver for n in rows], [n.channel for n in rows],
        [n.channel_type for n in rows],
        [json.dumps(n.target, ensure_ascii=False) if n.target is not None else None for n in rows],
        [json.dumps(n.payload, ensure_ascii=False) for n in rows],
        [",".join(map(str, n.alert_ids)) for n in rows], now_us,
    )
    return len(result)


async def claim(conn: asyncpg.Connection, owner: str, now_us: int, lease_s: float, limit: int) -> list[Claimed]:
    rows = await conn.fetch(
        """UPDATE alert_outbox SET lease_until_us = $2, lease_owner = $3, attempts = attempts + 1
           WHERE id IN (SELECT id FROM alert_outbox
                        WHERE state = 'pending' AND next_attempt_us <= $1
                          AND (lease_until_us IS NULL OR lease_until_us <= $1)
                        ORDER BY next_attempt_us, id LIMIT $4 FOR UPDATE SKIP LOCKED)
           RETURNING id, idempotency_key, receiver, channel, channel_type, target::text AS target,
                     payload::text AS payload, attempts, created_us""",
        now_us, now_us + int(lease_s * 1e6), owner, limit,
    )
    out = [
        Claimed(r["id"], r["idempotency_key"], r["receiver"], r["channel"], r["channel_type"],
                json.loads(r["target"]) if r["target"] else None, json.loads(r["payload"]), r["attempts"],
                r["created_us"])
        for r in rows
    ]
    out.sort(key=lambda c: c.id)
    return out


async def mark_delivered(conn: asyncpg.Connection, row_id: int, owner: str, now_us: int) -> None:
    await conn.execute(
        "UPDATE alert_outbox SET state = 'delivered', delivered_us = $3, lease_until_us = NULL, last_error = NULL"
        " WHERE id = $1 AND state = 'pending' AND lease_owner = $2",
        row_id, owner, now_us,
    )


async def mark_retry(conn: asyncpg.Connection, row_id: int, owner: str, next_attempt_us: int, error: str) -> None:
    await conn.execute(
        "UPDATE alert_outbox SET next_attempt_us = $3, lease_until_us = NULL, last_error = $4"
        " WHERE id = $1 AND state = 'pending' AND lease_owner = $2",
        row_id, owner, next_attempt_us, error[:1000],
    )


async def mark_failed(conn: asyncpg.Connection, row_id: int, owner: str, error: str) -> None:
    await conn.execute(
        "UPDATE alert_outbox SET state = 'failed', lease_until_us = NULL, last_error = $3"
        " WHERE id = $1 AND state = 'pending' AND lease_owner = $2",
        row_id, owner, error[:1000],
    )
