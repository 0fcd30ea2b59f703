"""MQTT: one message per alert on ``yj/v1/{enterprise}/{gateway}/alerts`` (QoS from the channel).

The payload is the alert message of :mod:`alerts.mqtt_schema`. The service's ``mqtt_publish``
callable (wired by the application shell) must raise when the broker does not take the message,
so the outbox retries it.
"""

from __future__ import annotations

import json
from typing import Any

from alerts.channels.base import DeliveryError, Link
from alerts.policy import MqttChannel


async def send(link: Link, ch: MqttChannel, payload: dict[str, Any]) -> None:
    if link.mqtt_publish is None:
        raise DeliveryError("no MQTT publisher is wired into the alerts service", retryable=True)
    topic = payload["topic"]
    data = json.dumps(payload["message"], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    try:
        link.mqtt_publish(topic, data)
    except Exception as exc:  # the publisher is the lead's; any failure of it is retried
        raise DeliveryError(f"MQTT publish to {topic} failed: {exc!r}", retryable=True) from exc
