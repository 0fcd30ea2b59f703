"""The sender: one entry point that routes a notification to its channel's module."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from alerts.policy import (
    Channel,
    DingTalkChannel,
    EmailChannel,
    MqttChannel,
    WebhookChannel,
    WeComChannel,
)


class DeliveryError(Exception):
    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


_ELLIPSIS = "\n…"


def cut_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, on a character boundary, marked with "…"
    (robot webhooks refuse longer messages)."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    room = max_bytes - len(_ELLIPSIS.encode("utf-8"))
    return data[:room].decode("utf-8", errors="ignore") + _ELLIPSIS


def classify_http(resp: httpx.Response) -> None:
    """Raise for a non-2xx response, retryable for 408, 429 and 5xx."""
    if 200 <= resp.status_code < 300:
        return
    retry_after = None
    if "retry-after" in resp.headers:
        try:
            retry_after = float(resp.headers["retry-after"])
        except ValueError:
            pass
    retryable = resp.status_code in (408, 425, 429) or resp.status_code >= 500
    raise DeliveryError(f"HTTP {resp.status_code}: {resp.text[:200]}", retryable, retry_after)


async def post_json(http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                    timeout_s: float) -> httpx.Response:
    try:
        return await http.post(url, content=body, headers={"Content-Type": "application/json; charset=utf-8", **headers},
                               timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"timed out after {timeout_s} s: {exc!r}", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc


class Sender:
    """Delivers one notification payload over one channel."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        mqtt_publish: Callable[[str, bytes], None] | None,
        clock: Callable[[], float],
        timeout_s: float,
    ) -> None:
        self.http = http
        self.mqtt_publish = mqtt_publish
        self.clock = clock
        self.timeout_s = timeout_s

    async def send(self, channel: Channel, payload: dict[str, Any]) -> None:
        from alerts.channels import dingtalk, email, mqtt, webhook, wecom

        if isinstance(channel, WebhookChannel):
            await webhook.send(self.http, channel, payload, self.timeout_s)
        elif isinstance(channel, DingTalkChannel):
            await dingtalk.send(self.http, channel, payload, self.timeout_s, self.clock)
        elif isinstance(channel, WeComChannel):
            await wecom.send(self.http, channel, payload, self.timeout_s)
        elif isinstance(channel, EmailChannel):
            await asyncio.wait_for(asyncio.to_thread(email.send, channel, payload, self.timeout_s), self.timeout_s * 2)
        elif isinstance(channel, MqttChannel):
            if self.mqtt_publish is None:
                raise DeliveryError("no MQTT publisher is wired into the alerts service", retryable=True)
            mqtt.send(self.mqtt_publish, payload)
        else:  # pragma: no cover - the policy builds only the channels above
            raise DeliveryError(f"unknown channel {channel!r}", retryable=False)
