"""WeCom group robot (企业微信群机器人).

Body: ``{"msgtype": "markdown", "markdown": {"content"}}`` (content at most 4096 bytes of UTF-8)
or ``{"msgtype": "text", "text": {"content", "mentioned_mobile_list"}}`` (at most 2048 bytes).
WeCom answers HTTP 200 with ``errcode``: 0 is success, 45009 (rate limit) and -1 (busy) are
retried, others (93000: bad key) are not.
"""

from __future__ import annotations

import json
from typing import Any

from alerts.channels.base import DeliveryError, Link, classify_http, cut_utf8, post_json
from alerts.policy import WeComChannel

RETRYABLE_ERRCODES = frozenset({-1, 45009})
MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048


def body(ch: WeComChannel, payload: dict[str, Any]) -> dict[str, Any]:
    if ch.msgtype == "text":
        text: dict[str, Any] = {"content": cut_utf8(payload["text"], TEXT_MAX_BYTES)}
        if ch.mentioned_mobiles:
            text["mentioned_mobile_list"] = list(ch.mentioned_mobiles)
        return {"msgtype": "text", "text": text}
    return {"msgtype": "markdown", "markdown": {"content": cut_utf8(payload["markdown"], MARKDOWN_MAX_BYTES)}}


async def send(link: Link, ch: WeComChannel, payload: dict[str, Any]) -> None:
    data = json.dumps(body(ch, payload), ensure_ascii=False).encode("utf-8")
    resp = await post_json(link.http, payload.get("target_url") or ch.url, data, {}, link.timeout_s)
    classify_http(resp)
    try:
        answer = resp.json()
    except ValueError as exc:
        raise DeliveryError(f"WeCom answered with non-JSON: {resp.text[:200]!r}", retryable=True) from exc
    code = answer.get("errcode", 0)
    if code != 0:
        raise DeliveryError(f"WeCom errcode {code}: {answer.get('errmsg')}", retryable=code in RETRYABLE_ERRCODES)
