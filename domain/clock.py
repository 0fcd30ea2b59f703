"""The one clock: integer microseconds since the Unix epoch (UTC).

Every stage that needs "now" takes a ``Clock`` (a callable returning µs) so tests can pass their own;
the default is :func:`now_us`. Wall-clock datetimes are built from it at the edges that need them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

Clock = Callable[[], int]
"""A source of "now" as integer microseconds since the epoch."""

US_PER_S = 1_000_000


def now_us() -> int:
    """Wall-clock time, integer microseconds since the epoch."""
    return time.time_ns() // 1_000


def utc_from_us(ts_us: int) -> dt.datetime:
    """The aware UTC datetime of ``ts_us`` (microseconds since the epoch)."""
    return dt.datetime.fromtimestamp(ts_us / US_PER_S, dt.UTC)
