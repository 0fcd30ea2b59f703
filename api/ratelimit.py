"""Per-key request rate limits: a token bucket per key, in memory (one API process)."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens, at)

    def take(self, key_id: int, rate_per_s: float, burst: int) -> float:
        """Take one token; returns 0 if allowed, else the seconds until a token is available."""
        now = self._clock()
        tokens, at = self._buckets.get(key_id, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate_per_s)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / rate_per_s
