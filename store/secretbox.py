"""Secrets at rest: contacts' webhook URLs (a robot's ``access_token`` is its password) and
DingTalk signing secrets are stored encrypted with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from the setting ``YUJING_SECRET_KEYS``: Fernet keys separated by commas, the first
encrypts, all decrypt (``MultiFernet``). Rotation: put a new key first, run
``rotate_contacts`` (``yujing registry rotate-secrets``), then drop the old key. A new key:
``python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'``.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

import asyncpg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from domain.errors import FixConfiguration

ENV = "YUJING_SECRET_KEYS"


class SecretKeyError(FixConfiguration):
    """No key, a malformed key, or a token no configured key opens (the message names no secret)."""


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError(f"{ENV} is not set: contacts' webhooks and secrets are stored encrypted; "
                                 "give one or more Fernet keys, comma-separated (the first encrypts)")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError):
            raise SecretKeyError(f"{ENV}: each key is 32 url-safe base64-encoded bytes (Fernet.generate_key())") \
                from None

    @classmethod
    def from_env(cls) -> SecretBox:
        return cls([k for k in os.environ.get(ENV, "").split(",") if k.strip()])

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(f"a stored secret cannot be decrypted with the keys of {ENV} "
                                 "(was a key dropped before rotating?)") from None

    def rotate(self, token: str) -> str:
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(f"a stored secret cannot be decrypted with the keys of {ENV}") from None


def redact_url(url: str) -> str:
    """A webhook as shown: scheme, host and path, without credentials or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "[redacted]"
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


_box: SecretBox | None = None


def configure(keys: list[str] | None) -> None:
    """Set the process's keys (None: read ``YUJING_SECRET_KEYS`` again when next needed)."""
    global _box
    _box = SecretBox(keys) if keys else None


def box() -> SecretBox:
    """The process's box, from :func:`configure` or else the environment."""
    global _box
    if _box is None:
        _box = SecretBox.from_env()
    return _box


def decrypt_optional(token: str | None) -> str | None:
    return box().decrypt(token) if token else None


async def rotate_contacts(conn: asyncpg.Connection) -> int:
    """Re-encrypt every stored contact secret with the first key; returns how many were."""
    b = box()
    n = 0
    async with conn.transaction():
        rows = await conn.fetch("SELECT id, contacts::text AS contacts FROM enterprises "
                                "WHERE contacts::text LIKE '%_enc%' FOR UPDATE")
        for r in rows:
            contacts = json.loads(r["contacts"])
            for c in contacts:
                for field in ("webhook_enc", "secret_enc"):
                    if c.get(field):
                        c[field] = b.rotate(c[field])
                        n += 1
            await conn.execute("UPDATE enterprises SET contacts = $2::text::jsonb WHERE id = $1", r["id"],
                               json.dumps(contacts, ensure_ascii=False))
    return n
