"""Loops that outlive the database going away, written once.

- :func:`retry_until_done` runs one step until it returns, waiting a capped, jittered exponential
  backoff after each retryable error (by default the store's transient errors); it logs when the
  error changes, not on every attempt, and once when the step recovers.
- :func:`run_every` runs a step every ``interval_s``; a retryable error is logged (once per change)
  and the loop goes on at the next interval. Anything else propagates: the caller's supervisor
  decides.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from store.errors import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 30.0

Sleep = Callable[[float], Awaitable[None]]


class _ErrorLog:
    """Logs an error only when its text changes; says once when the step recovered."""

    def __init__(self, name: str, level: int) -> None:
        self._name = name
        self._level = level
        self._last: str | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        text = f"{type(exc).__name__}: {exc}"
        if text != self._last:
            log.log(self._level, "%s failed; will try again", self._name, extra={"error": text, "attempt": self.failures})
            self._last = text

    def succeeded(self) -> None:
        if self.failures:
            log.info("%s recovered", self._name, extra={"attempts": self.failures + 1})
        self.failures = 0
        self._last = None


async def retry_until_done(
    name: str,
    step: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    first_s: float = BACKOFF_FIRST_S,
    max_s: float = BACKOFF_MAX_S,
    on_failure: Callable[[BaseException], None] | None = None,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """The result of ``step()``, retried after each error in ``retry_on`` (capped, jittered backoff)."""
    errors = _ErrorLog(name, logging.WARNING)
    delay_s = first_s
    while True:
        try:
            result = await step()
        except retry_on as exc:
            errors.failed(exc)
            if on_failure is not None:
                on_failure(exc)
            await sleep(random.uniform(0.5, 1.0) * delay_s)
            delay_s = min(delay_s * 2, max_s)
            continue
        errors.succeeded()
        return result


async def run_every(
    name: str,
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    *,
    retry_on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    first_wait: bool = False,
    log_level: int = logging.WARNING,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Call ``step()`` every ``interval_s`` seconds for ever; errors in ``retry_on`` skip one round."""
    errors = _ErrorLog(name, log_level)
    if first_wait:
        await sleep(interval_s)
    while True:
        try:
            await step()
        except retry_on as exc:
            errors.failed(exc)
        else:
            errors.succeeded()
        await sleep(interval_s)
