"""Who is asking: the API key of a request, its rate limit, and the database work done for it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from fastapi import HTTPException, Request, WebSocket

from api.context import ApiContext
from api.keys import ApiKey, KeyStore
from api.ratelimit import RateLimiter

HEADER = "X-API-Key"


def context(request: Request | WebSocket) -> ApiContext:
    return request.app.state.ctx


def _token(request: Request | WebSocket, allow_query: bool) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth.lower().startswith("bearer "):
        return auth[7:].strip()
    token = request.headers.get(HEADER.lower())
    if token:
        return token.strip()
    if allow_query:  # browsers cannot set headers on WebSocket or EventSource
        return request.query_params.get("api_key")
    return None


async def authenticate(request: Request | WebSocket, allow_query: bool = False) -> ApiKey | None:
    """The request's key, or None when it has none or an unknown or revoked one."""
    token = _token(request, allow_query)
    if not token:
        return None
    store: KeyStore = request.app.state.keys
    return await store.lookup(token)


def check_rate(request: Request | WebSocket, key: ApiKey) -> None:
    limiter: RateLimiter = request.app.state.limiter
    wait_s = limiter.take(key.id, key.rate_per_s, key.burst)
    if wait_s > 0:
        raise HTTPException(429, f"rate limit of key {key.prefix}… exceeded ({key.rate_per_s:g}/s)",
                            headers={"Retry-After": str(max(1, int(wait_s + 0.999)))})


async def require_key(request: Request) -> ApiKey:
    """FastAPI dependency of every /api route."""
    key = await authenticate(request)
    if key is None:
        raise HTTPException(401, "an API key is needed (header X-API-Key or Authorization: Bearer)",
                            headers={"WWW-Authenticate": "Bearer"})
    check_rate(request, key)
    request.state.key = key
    return key


async def require_stream_key(request: Request) -> ApiKey:
    """As :func:`require_key`, also accepting ``?api_key=`` (for EventSource)."""
    key = await authenticate(request, allow_query=True)
    if key is None:
        raise HTTPException(401, "an API key is needed (header X-API-Key, or ?api_key= for streams)",
                            headers={"WWW-Authenticate": "Bearer"})
    check_rate(request, key)
    return key


@contextlib.asynccontextmanager
async def reading(request: Request) -> AsyncIterator[asyncpg.Connection]:
    ctx = context(request)
    async with ctx.pool.acquire(timeout=10) as conn:
        yield conn


@contextlib.asynccontextmanager
async def writing(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction; record the write with :func:`audit` before leaving."""
    ctx = context(request)
    async with ctx.pool.acquire(timeout=10) as conn, conn.transaction():
        yield conn


async def audit(conn: asyncpg.Connection, key: ApiKey, action: str, target: str,
                detail: dict[str, Any] | None = None) -> None:
    """Record a write with the key that made it, in the write's own transaction."""
    await conn.execute(
        "INSERT INTO api_write_audit (key_id, action, target, detail) VALUES ($1, $2, $3, $4::text::jsonb)",
        key.id, action, target, json.dumps(detail or {}, ensure_ascii=False, default=str),
    )
