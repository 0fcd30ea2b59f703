"""Who is asking: the API key of a request, its rate limit, and the database work done for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from fastapi import HTTPException, Request, WebSocket

from api.context import ApiContext
from api.keys import ApiKey, KeyStore
from api.ratelimit import RateLimiter
from store.write_audit import record_write

HEADER = "X-API-Key"


def context(request: Request | WebSocket) -> ApiContext:
    return request.app.state.ctx


def _token(request: Request | WebSocket) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth.lower().startswith("bearer "):
        return auth[7:].strip()
    token = request.headers.get(HEADER.lower())
    if token:
        return token.strip()
    return None


async def authenticate(request: Request | WebSocket) -> ApiKey | None:
    """The request's key, or None when it has none or an unknown or revoked one. The front door
    (``api.guard``) has looked it up already for every ``/api/v1`` route that needs one."""
    key = request.scope.get("state", {}).get("key")
    if key is not None:
        return key
    token = _token(request)
    if not token:
        return None
    store: KeyStore = request.app.state.keys
    return await store.lookup(token)


async def redeem_ticket(request: Request | WebSocket) -> ApiKey | None:
    """The key of a live feed's ``?ticket=`` (``api.tickets``): None if the ticket is unknown,
    used, expired, its key revoked, or its address throttled after failed attempts."""
    from api.guard import client_address

    throttle = request.app.state.auth_throttle
    address = client_address(request.scope)
    if throttle.wait_s(address) > 0:
        return None
    digest = request.app.state.tickets.redeem(request.query_params.get("ticket"))
    key = None if digest is None else await request.app.state.keys.lookup_digest(digest)
    if key is None:
        throttle.failed(address)
    return key


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


async def require_ticket(request: Request) -> ApiKey:
    """For the SSE feed: the key of its ``?ticket=`` (POST /api/v1/live/ticket gives one)."""
    key = await redeem_ticket(request)
    if key is None:
        raise HTTPException(401, "a live-feed ticket is needed (?ticket=, from POST /api/v1/live/ticket; "
                                 "tickets are used once, within 30 s)")
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
    """Record a write with the key that made it, in the write's own transaction. Secrets are
    never recorded (:func:`api.redact.scrub_secrets`)."""
    from api.redact import scrub_secrets

    await record_write(conn, key.id, action, target, scrub_secrets(detail or {}) or {})
