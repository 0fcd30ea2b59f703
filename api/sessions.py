"""The live sessions open per API key: a cap per key (``api_keys.live_sessions``), and the check
that closes a revoked key's sessions. Sessions ask :meth:`LiveSessions.valid` after every message
and heartbeat (at most every ``CHECK_S``); one query, for all open keys at once, runs at most every
``CHECK_S``, straight against ``api_keys`` (not the key cache), so a revoked key's feeds close
within ``CHECK_S`` plus a session's wait (both 5 s: within 10 s).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterator

import asyncpg

from api.keys import ApiKey
from store.api_keys import unrevoked_digests

log = logging.getLogger("yujing.api.live")

CHECK_S = 5.0


class TooManySessions(Exception):
    pass


class LiveSessions:
    def __init__(self, pool: asyncpg.Pool, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool = pool
        self._clock = clock
        self.open: collections.Counter[int] = collections.Counter()  # key id -> sessions
        self._digests: collections.Counter[str] = collections.Counter()
        self._valid: set[str] = set()
        self._checked_at = -1e18
        self._lock = asyncio.Lock()

    @contextlib.contextmanager
    def hold(self, key: ApiKey) -> Iterator[None]:
        """One session of ``key`` while inside; :class:`TooManySessions` beyond its cap."""
        if self.open[key.id] >= key.live_sessions:
            raise TooManySessions(f"key {key.prefix}… already has {key.live_sessions} live sessions open")
        self.open[key.id] += 1
        self._digests[key.digest] += 1
        self._valid.add(key.digest)
        try:
            yield
        finally:
            self.open[key.id] -= 1
            self._digests[key.digest] -= 1
            if not self.open[key.id]:
                del self.open[key.id]
            if not self._digests[key.digest]:
                del self._digests[key.digest]

    async def valid(self, key: ApiKey) -> bool:
        """Whether the key was still unrevoked at the last check (checking again if it is due)."""
        if self._clock() - self._checked_at >= CHECK_S:
            async with self._lock:
                if self._clock() - self._checked_at >= CHECK_S:
                    digests = list(self._digests)
                    try:
                        self._valid = await unrevoked_digests(self._pool, digests)
                    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                        log.warning("live sessions: cannot check for revoked keys (%s); checking again in %g s",
                                    type(exc).__name__, CHECK_S)
                    self._checked_at = self._clock()
        return key.digest in self._valid
