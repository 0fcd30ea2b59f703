"""Per-gateway quotas: messages and payload bytes per minute (issue 12, item 10).

A token bucket per gateway for each dimension, refilled by receive time at the quota's rate and
holding at most ``burst_minutes`` of it. A gateway that was quiet — its link was down and it now
sends its store-and-forward backlog, or yujing was down and the broker now drains what it held —
has credit for what it did not send, so a backlog of normal traffic passes; a gateway that sends
more than its quota for longer than that is refused, message by message, until it slows down.
"""

from __future__ import annotations

_US_PER_MINUTE = 60_000_000


class GatewayQuota:
    """``admit`` returns None when a message fits its gateway's quotas (and takes its share), else
    a sentence saying which quota it exceeds (and takes nothing)."""

    __slots__ = ("messages_per_minute", "bytes_per_minute", "burst_minutes", "_buckets")

    def __init__(self, messages_per_minute: int, bytes_per_minute: int, burst_minutes: float) -> None:
        self.messages_per_minute = messages_per_minute
        self.bytes_per_minute = bytes_per_minute
        self.burst_minutes = burst_minutes
        self._buckets: dict[int, list[float]] = {}  # gateway id -> [last µs, message tokens, byte tokens]

    def admit(self, gateway_id: int, size: int, now_us: int) -> str | None:
        cap_m = self.messages_per_minute * self.burst_minutes
        cap_b = self.bytes_per_minute * self.burst_minutes
        b = self._buckets.get(gateway_id)
        if b is None:
            b = self._buckets[gateway_id] = [now_us, cap_m, cap_b]
        elif now_us > b[0]:
            minutes = (now_us - b[0]) / _US_PER_MINUTE
            b[0] = now_us
            b[1] = min(cap_m, b[1] + minutes * self.messages_per_minute)
            b[2] = min(cap_b, b[2] + minutes * self.bytes_per_minute)
        if b[1] < 1:
            return f"gateway exceeds its quota of {self.messages_per_minute} messages per minute"
        if b[2] < size:
            return f"gateway exceeds its quota of {self.bytes_per_minute} payload bytes per minute"
        b[1] -= 1
        b[2] -= size
        return None
