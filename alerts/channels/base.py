"""What every channel shares: the delivery error, the link a channel sends over, HTTP helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx

from domain.clock import Clock


class DeliveryError(Exception):
    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """What a channel sends over: the HTTP client, the MQTT publisher, the clock, the timeout."""

    http: httpx.AsyncClient
    mqtt_publish: Callable[[str, bytes], None] | None
    clock: Clock  # integer µs (DingTalk signs with the time)
    timeout_s: float


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
