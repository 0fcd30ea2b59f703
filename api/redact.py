"""Secrets kept out of logs, audits and answers.

- :class:`RedactingFilter` on the log handler rewrites every line (message, arguments and
  traceback) so that API keys (``yj_…``), live-feed tickets (``yjt_…``), DingTalk signing secrets
  (``SEC…``), Fernet tokens, passwords in URLs and secret-looking query parameters
  (``api_key``, ``ticket``, ``access_token``, ``sign``, ``secret``, ``password``, ``token``) never
  reach it — uvicorn logs each WebSocket handshake with its query string.
- :func:`scrub_secrets` is what the write audit records of a request body.
- :func:`redact_url` shows a webhook as scheme, host and path, without its query (a robot's
  ``access_token`` is its password).
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

from store.secretbox import redact_url

REDACTED = "[redacted]"
_PATTERNS = (
    (re.compile(r"\byjt?_[A-Za-z0-9_\-]{8,}"), lambda m: m.group(0)[:4] + REDACTED),
    (re.compile(r"(?i)\b((?:api_key|ticket|access_token|sign|secret|password|token|key)=)[^&\s\"'<>]+"),
     lambda m: m.group(1) + REDACTED),
    (re.compile(r"\bSEC[0-9a-fA-F]{16,}"), lambda m: REDACTED),
    (re.compile(r"\bgAAAAA[A-Za-z0-9_\-]{16,}=*"), lambda m: REDACTED),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+@"), lambda m: m.group(1) + REDACTED + "@"),
)
SECRET_FIELDS = frozenset({"secret", "password", "api_key", "ticket", "token", "secret_enc", "webhook_enc"})


def scrub(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def scrub_secrets(value: Any) -> Any:
    """A copy of a JSON-like value with secret fields replaced and webhooks shown without query."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in SECRET_FIELDS:
                out[k] = REDACTED if v else v
            elif k == "webhook" and isinstance(v, str):
                out[k] = redact_url(v)
            else:
                out[k] = scrub_secrets(v)
        return out
    if isinstance(value, list | tuple):
        return [scrub_secrets(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


class RedactingFilter(logging.Filter):
    """Put on a handler: every record it emits is scrubbed, its traceback included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = None
            record.exc_text = None
        record.msg = scrub(message)
        record.args = None
        for name in ("scope", "url", "path"):
            if isinstance(getattr(record, name, None), str):
                setattr(record, name, scrub(getattr(record, name)))
        return True
