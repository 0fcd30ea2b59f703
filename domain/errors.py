"""One error tree, grouped by what the caller can do about it.

Library exceptions are translated at the boundary (``raise RetryLater(...) from exc``).
"""

from __future__ import annotations


class YujingError(Exception):
    """Base of every error yujing raises on purpose."""


class RetryLater(YujingError):
    """A dependency (database, broker, receiver) is unavailable; the same call may succeed later."""


class Quarantine(YujingError):
    """The data is bad; keep it aside (dead letter) and go on with the rest."""


class FixConfiguration(YujingError):
    """Settings, registry or policy files are wrong; start-up stops with a message naming the key."""
