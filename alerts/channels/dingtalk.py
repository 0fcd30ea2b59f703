"""DingTalk custom robot (钉钉自定义机器人).

Signing (加签): ``sign = urlencode(base64(hmac_sha256(key=secret, msg=f"{timestamp_ms}\\n{secret}")))``
appended with ``timestamp`` to the webhook URL; DingTalk rejects a timestamp more than an hour
off. Body: ``{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles", "isAtAll"}}``
or ``msgtype: text`` with ``{"text": {"content"}}``. DingTalk answers HTTP 200 with ``errcode``:
0 is success, 130101 (sending too fast) and -1 (busy) are retried, others (310000: bad
signature, keyword or IP) are not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from typing import Any

from alerts.channels.base import DeliveryError, Link, classify_http, cut_utf8, post_json
from alerts.policy import DingTalkChannel

RETRYABLE_ERRCODES = frozenset({-1, 130101})
MARKDOWN_MAX_BYTES = 20000


def sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode("ascii"))


def signed_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    if not secret:
        return url
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


def body(ch: DingTalkChannel, payload: dict[str, Any]) -> dict[str, Any]:
    mentions = " ".join(f"@{m}" for m in ch.at_mobiles)
    at = {"atMobiles": list(ch.at_mobiles), "isAtAll": ch.at_all}
    if ch.msgtype == "text":
        content = payload["text"] + (f"\n{mentions}" if mentions else "")
        return {"msgtype": "text", "text": {"content": cut_utf8(content, MARKDOWN_MAX_BYTES)}, "at": at}
    text = payload["markdown"] + (f"\n\n{mentions}" if mentions else "")
    return {"msgtype": "markdown", "markdown": {"title": payload["title"][:64], "text": cut_utf8(text, MARKDOWN_MAX_BYTES)},
            "at": at}


async def send(link: Link, ch: DingTalkChannel, payload: dict[str, Any]) -> None:
    url = signed_url(payload.get("target_url") or ch.url, ch.secret, link.clock() // 1000)
    data = json.dumps(body(ch, payload), ensure_ascii=False).encode("utf-8")
    resp = await post_json(link.http, url, data, {}, link.timeout_s)
    classify_http(resp)
    try:
        answer = resp.json()
    except ValueError as exc:
        raise DeliveryError(f"DingTalk answered with non-JSON: {resp.text[:200]!r}", retryable=True) from exc
    code = answer.get("errcode", 0)
    if code != 0:
        raise DeliveryError(f"DingTalk errcode {code}: {answer.get('errmsg')}", retryable=code in RETRYABLE_ERRCODES)
