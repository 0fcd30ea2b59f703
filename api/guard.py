"""The API's front door (a pure ASGI middleware, so nothing is buffered): before any route reads
a body, per client address a cap on requests open at once and a throttle on failed
authentications (the address is uvicorn's: behind a proxy on loopback, its X-Forwarded-For); then the API key, looked up before the body is read (a request without a valid
key is answered 401 with its body unread); then the body, counted while it streams and cut at
the route's limit (413), each chunk awaited at most ``body_idle_s`` (408).

Paths that need no key: the operations endpoints, the dashboard's files, the API's docs and the
live feeds (which take a one-use ticket, ``api.tickets``, instead of a key in the URL).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
from collections.abc import Callable

from api.keys import ApiKey, KeyStore

log = logging.getLogger("yujing.api.guard")

KIB = 1024
MIB = 1024 * KIB
DEFAULT_BODY_LIMIT = 64 * KIB  # JSON bodies of the API: an entry, an action, a silence
# (method, path prefix) -> bytes; the longest matching prefix wins
BODY_LIMITS = {("POST", "/api/v1/registry/import"): 20 * MIB}
LIVE_PREFIX = "/api/v1/live/"  # feeds held open for hours: capped per key, not per address
NO_KEY_PREFIXES = ("/healthz", "/readyz", "/metrics", "/dashboard", "/api/docs", "/api/openapi.json",
                   "/api/v1/live/ws", "/api/v1/live/sse", "/favicon")


@dataclasses.dataclass(frozen=True, slots=True)
class GuardSettings:
    connections_per_client: int = 64  # requests open at once from one address (live feeds: per key)
    auth_failures_burst: int = 20  # failed authentications from one address before the throttle
    auth_failures_per_s: float = 0.5  # … and how fast it forgives them
    body_idle_s: float = 10.0  # longest wait for the next chunk of a request body
    body_limit: int = DEFAULT_BODY_LIMIT


class FailureThrottle:
    """Failed authentications per source address, a token bucket each: once a bucket is empty,
    the address is refused (429) before its key is even looked up. Logged once per address per
    minute at most."""

    MAX_ADDRESSES = 100_000

    def __init__(self, burst: int, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.per_s, self._clock = burst, per_s, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._logged: dict[str, float] = {}
        self.throttled = 0

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.per_s)

    def wait_s(self, address: str) -> float:
        """0 if the address may try a key now, else the seconds until it may."""
        now = self._clock()
        tokens = self._tokens(address, now)
        if tokens >= 1.0:
            return 0.0
        self.throttled += 1
        if self._logged.get(address, 0.0) + 60.0 <= now:
            self._logged[address] = now
            log.warning("authentication failures from %s throttled (%d refused so far)", address, self.throttled)
        return (1.0 - tokens) / self.per_s

    def failed(self, address: str) -> None:
        now = self._clock()
        if len(self._buckets) >= self.MAX_ADDRESSES:
            self._buckets.clear()
        self._buckets[address] = (self._tokens(address, now) - 1.0, now)


def body_limit(method: str, path: str, default: int) -> int:
    best, limit = -1, default
    for (m, prefix), n in BODY_LIMITS.items():
        if m == method and path.startswith(prefix) and len(prefix) > best:
            best, limit = len(prefix), n
    return limit


def bearer(headers: dict[bytes, bytes]) -> str | None:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    token = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return token or None


def client_address(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def _answer(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app, keys: Callable[[], KeyStore], throttle: FailureThrottle,
                 settings: GuardSettings = GuardSettings()) -> None:
        self.app = app
        self.keys = keys
        self.throttle = throttle
        self.settings = settings
        self.open: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        address = client_address(scope)
        if scope["type"] == "websocket" or scope["path"].startswith(LIVE_PREFIX):
            return await self._live(scope, receive, send, address)  # capped per key (api.sessions)
        if self.open[address] >= self.settings.connections_per_client:
            return await _answer(send, 429, "too many requests open from this address", {"Retry-After": "1"})
        self.open[address] += 1
        try:
            await self._http(scope, receive, send, address)
        finally:
            self.open[address] -= 1
            if not self.open[address]:
                del self.open[address]

    async def _live(self, scope, receive, send, address: str) -> None:
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        return await self._http(scope, receive, send, address)

    async def _http(self, scope, receive, send, address: str) -> None:
        path, method = scope["path"], scope["method"]
        headers = dict(scope["headers"])
        limit = body_limit(method, path, self.settings.body_limit)
        if path.startswith("/api/") and not path.startswith(NO_KEY_PREFIXES):
            key = await self._authenticate(scope, send, headers, address)
            if key is None:
                return
            scope.setdefault("state", {})["key"] = key
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _answer(send, 413, f"request bodies of {method} {path} are limited to {limit} bytes")
        state = {"started": False, "answered": False, "bytes": 0, "body_done": False}

        async def refuse(status: int, detail: str) -> dict:
            """Answer now, and tell the route the client went away (it may catch any error)."""
            if not state["started"]:
                state["started"] = state["answered"] = True
                await _answer(send, status, detail)
            return {"type": "http.disconnect"}

        async def limited_receive():
            if state["body_done"] or state["started"]:  # e.g. a stream waiting for the client to leave
                return await receive()
            try:
                async with asyncio.timeout(self.settings.body_idle_s):
                    message = await receive()
            except TimeoutError:
                return await refuse(408, f"no request body data for {self.settings.body_idle_s:g} s")
            if message["type"] == "http.request":
                state["body_done"] = not message.get("more_body", False)
                state["bytes"] += len(message.get("body", b""))
                if state["bytes"] > limit:
                    return await refuse(413, f"request bodies of {method} {path} are limited to {limit} bytes")
            return message

        async def watched_send(message):
            if state["answered"]:
                return  # the guard answered already
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, limited_receive, watched_send)

    async def _authenticate(self, scope, send, headers, address: str) -> ApiKey | None:
        wait_s = self.throttle.wait_s(address)
        if wait_s > 0:
            await _answer(send, 429, "too many failed authentications from this address",
                          {"Retry-After": str(max(1, int(wait_s + 0.999)))})
            return None
        token = bearer(headers)
        key = await self.keys().lookup(token) if token else None
        if key is None:
            self.throttle.failed(address)
            await _answer(send, 401, "an API key is needed (header X-API-Key or Authorization: Bearer)",
                          {"WWW-Authenticate": "Bearer"})
        return key
