"""Notification channels: each turns a stored notification into its wire format and sends it.

A channel raises :class:`DeliveryError` saying whether the failure is worth retrying (network
errors, timeouts, HTTP 408/429/5xx, robot rate limits, SMTP 4xx) or not (other 4xx, a rejected
signature, SMTP 5xx); the outbox retries the first kind with capped, jittered backoff.
"""

from __future__ import annotations

from alerts.channels.base import DeliveryError, Sender

__all__ = ["DeliveryError", "Sender"]
