"""Notification channels: each turns a stored notification into its wire format and sends it.

``SENDERS`` maps a channel's ``type`` to its module's ``send(link, channel, payload)``; the
channel modules share :mod:`alerts.channels.base` and import nothing of each other. A channel
raises :class:`DeliveryError` saying whether the failure is worth retrying (network errors,
timeouts, HTTP 408/429/5xx, robot rate limits, SMTP 4xx) or not (other 4xx, a rejected
signature, SMTP 5xx); the outbox retries the first kind with capped, jittered backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from alerts.channels import dingtalk, email, mqtt, webhook, wecom
from alerts.channels.base import DeliveryError, Link
from alerts.policy import Channel
from domain.clock import Clock

SENDERS: dict[str, Callable[[Link, Any, dict[str, Any]], Awaitable[None]]] = {
    "webhook": webhook.send,
    "dingtalk": dingtalk.send,
    "wecom": wecom.send,
    "email": email.send,
    "mqtt": mqtt.send,
}


class Sender:
    """Delivers one notification payload over one channel, by the channel's type."""

    def __init__(self, http: httpx.AsyncClient, mqtt_publish: Callable[[str, bytes], None] | None,
                 clock: Clock, timeout_s: float) -> None:
        self.link = Link(http, mqtt_publish, clock, timeout_s)

    async def send(self, channel: Channel, payload: dict[str, Any]) -> None:
        send = SENDERS.get(channel.type)
        if send is None:  # pragma: no cover - the policy builds only the channels above
            raise DeliveryError(f"unknown channel {channel!r}", retryable=False)
        await send(self.link, channel, payload)


__all__ = ["SENDERS", "DeliveryError", "Link", "Sender"]
