"""API keys: created once (the plain key is shown then and never again), stored as SHA-256.

A key is ``yj_`` + 43 URL-safe characters (256 random bits); its first 11 characters are its
``prefix``, kept in clear to name it in logs and audits. Lookups are cached for a few seconds,
so a revoked key stops working within :data:`CACHE_S`; a lookup that reads the database also
stamps the key's ``last_used_at``. :func:`list_keys` and :func:`revoke_key` are what
``yujing keys list`` and ``yujing keys revoke`` run: they never see or show a secret.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import secrets
import time

import asyncpg

from api.scope import Scope
from store import api_keys

KEY_PREFIX = "yj_"
PREFIX_CHARS = 11
CACHE_S = 10.0
CACHE_MAX = 10_000
DEFAULT_RATE_PER_S = 50.0
DEFAULT_BURST = 200
DEFAULT_LIVE_SESSIONS = 20  # live feeds (WebSocket + SSE) one key may hold open at once


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    prefix: str
    name: str
    scope: Scope
    rate_per_s: float
    burst: int
    admin: bool = False  # a province administrator (regions, enterprises, parents, webhook hosts)
    live_sessions: int = DEFAULT_LIVE_SESSIONS
    digest: str = ""  # SHA-256 of the plain key: how live sessions find their key again

    @property
    def actor(self) -> str:
        """How the key is named in the alerts journal and the write audit."""
        return f"api-key:{self.id}:{self.name}"


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class AdminScopeError(ValueError):
    """A key that cannot exist (an administrator below the province)."""


async def create_key(conn: asyncpg.Connection, scope: Scope, name: str | None = None, *,
                     rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST, admin: bool = False,
                     live_sessions: int = DEFAULT_LIVE_SESSIONS) -> tuple[str, ApiKey]:
    """Store a new key; returns (the plain key, to show once; its record)."""
    if admin and not scope.province:
        raise AdminScopeError("only a province key can be an administrator")
    plain = new_key()
    prefix = plain[:PREFIX_CHARS]
    key_id = await api_keys.insert_key(
        conn, prefix=prefix, key_sha256=hash_key(plain), name=name or f"{scope}", scope_kind=scope.kind,
        scope_id=scope.id, rate_per_s=rate_per_s, burst=burst, admin=admin, live_sessions=live_sessions,
    )
    return plain, ApiKey(key_id, prefix, name or f"{scope}", scope, rate_per_s, burst, admin, live_sessions,
                         hash_key(plain))


revoke_key = api_keys.revoke_key


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown of a key: never its secret nor its hash (the prefix only names it)."""

    id: int
    prefix: str
    name: str
    scope: Scope
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None
    revoked_at: datetime.datetime | None


async def list_keys(conn: asyncpg.Connection, *, include_revoked: bool = True) -> list[KeyInfo]:
    rows = await api_keys.key_rows(conn, include_revoked=include_revoked)
    return [KeyInfo(r["id"], r["prefix"], r["name"], Scope(r["scope_kind"], r["scope_id"]), r["created_at"],
                    r["last_used_at"], r["revoked_at"]) for r in rows]


class KeyStore:
    """Looks keys up by hash, with a short cache (misses are cached too, against key guessing)."""

    def __init__(self, pool: asyncpg.Pool, cache_s: float = CACHE_S) -> None:
        self._pool = pool
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def lookup(self, plain: str) -> ApiKey | None:
        if not plain.startswith(KEY_PREFIX) or len(plain) > 100:
            return None
        return await self.lookup_digest(hash_key(plain))

    async def lookup_digest(self, digest: str) -> ApiKey | None:
        """The key with this SHA-256, if it is still valid (cached for ``cache_s``)."""
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await api_keys.use_key(self._pool, digest)
        key = None if row is None else ApiKey(
            row["id"], row["prefix"], row["name"], Scope(row["scope_kind"], row["scope_id"]),
            float(row["rate_per_s"]), int(row["burst"]), row["admin"], int(row["live_sessions"]), digest,
        )
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_s, key)
        return key
