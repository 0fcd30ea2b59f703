"""MQTT: one message per alert on ``yj/v1/{enterprise}/{gateway}/alerts`` (QoS from the channel).

The payload is the alert message of :mod:`alerts.mqtt_schema`. The service's ``mqtt_publish``
callable (wired by the application shell) must raise when the broker does not take the message,
so the outbox retries it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from alerts.channels.base import DeliveryError


def send(publish: Callable[[str, bytes], None], payload: dict[str, Any]) -> None:
    topic = payload["topic"]
    data = json.dumps(payload["message"], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    try:
        publish(topic, data)
    except Exception as exc:  # the publisher is the lead's; any failure of it is retried
        raise DeliveryError(f"MQTT publish to {topic} failed: {exc!r}", retryable=True) from exc
