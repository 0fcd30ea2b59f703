"""E-mail over SMTP (stdlib ``smtplib``, run in a worker thread).

The ``Message-ID`` is derived from the idempotency key, so a mail client or archive can drop
the duplicate a crash may cause; ``X-Yujing-Idempotency-Key`` carries the key itself. SMTP 4xx
replies and connection errors are retried, 5xx replies are not.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from alerts.channels.base import DeliveryError, Link
from alerts.policy import EmailChannel


def message(ch: EmailChannel, payload: dict[str, Any]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = payload["title"]
    msg["From"] = ch.sender
    msg["To"] = ", ".join(ch.to)
    msg["Date"] = formatdate(localtime=False)
    key = payload["idempotency_key"]
    msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@yujing>"
    msg["X-Yujing-Idempotency-Key"] = key
    msg.set_content(payload["text"], charset="utf-8")
    return msg


async def send(link: Link, ch: EmailChannel, payload: dict[str, Any]) -> None:
    """Send in a worker thread (smtplib blocks), bounded by twice the timeout."""
    await asyncio.wait_for(asyncio.to_thread(send_blocking, ch, payload, link.timeout_s), link.timeout_s * 2)


def send_blocking(ch: EmailChannel, payload: dict[str, Any], timeout_s: float) -> None:
    msg = message(ch, payload)
    to = list(payload.get("target_to") or ch.to)
    try:
        if ch.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(ch.smtp_host, ch.smtp_port, timeout=timeout_s,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(ch.smtp_host, ch.smtp_port, timeout=timeout_s)
        with client:
            if ch.starttls:
                client.starttls(context=ssl.create_default_context())
            if ch.username:
                client.login(ch.username, ch.password or "")
            refused = client.send_message(msg, from_addr=ch.sender, to_addrs=to)
            if refused and len(refused) == len(to):
                codes = [c for c, _ in refused.values()]
                raise DeliveryError(f"all recipients refused: {refused}", retryable=all(400 <= c < 500 for c in codes))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [c for c, _ in exc.recipients.values()]
        raise DeliveryError(f"recipients refused: {exc.recipients}", retryable=all(400 <= c < 500 for c in codes)) from exc
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=400 <= exc.smtp_code < 500) from exc
    except (smtplib.SMTPException, OSError, socket.timeout) as exc:
        raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}", retryable=True) from exc
