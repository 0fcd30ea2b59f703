"""Generic webhook: POST the notification as JSON (schema ``yujing.notification/1``).

Headers: ``Idempotency-Key`` (stable across retries: receivers deduplicate on it) and
``X-Yujing-Receiver``. Body: the notification as stored in the outbox — ``idempotency_key``,
``receiver``, ``kind`` (group | escalation), ``status`` (firing | resolved), ``title``, ``text``,
``markdown``, ``lang``, ``group_labels`` and ``alerts`` (each as in :mod:`alerts.mqtt_schema`).
"""

from __future__ import annotations

import json
from typing import Any

from alerts.channels.base import Link, classify_http, post_json
from alerts.policy import WebhookChannel


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def send(link: Link, ch: WebhookChannel, payload: dict[str, Any]) -> None:
    headers = {"Idempotency-Key": payload["idempotency_key"], "X-Yujing-Receiver": payload.get("receiver", ""),
               **dict(ch.headers)}
    url = payload.get("target_url") or ch.url
    classify_http(await post_json(link.http, url, body(payload), headers, link.timeout_s))
