"""Enterprises' escalation contacts: stored sealed (:func:`seal_contacts`), and the allow-list
of hosts escalation may send to (issue 12, SSRF through contacts).

A contact's webhook names a host; storing it proposes the host (``webhook_hosts``, state
``proposed``). A province administrator approves or removes hosts (``/api/v1/webhook-hosts``).
:func:`escalation_contacts` is the one place escalation reads contacts: it returns only those
whose host is approved, with the URL decrypted and the signing secret still encrypted (the
channel decrypts it as it sends: ``alerts.outbox.contact_channel``).
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlsplit

import asyncpg

from store import secretbox
from store.secretbox import redact_url

log = logging.getLogger("yujing.store.contacts")
_logged: dict[str, float] = {}


def _log_refused(enterprise: str, host: str) -> None:
    now = time.monotonic()
    key = f"{enterprise}/{host}"
    if _logged.get(key, 0.0) + 300.0 <= now:  # at most once per 5 min per contact host
        if len(_logged) > 10_000:
            _logged.clear()
        _logged[key] = now
        log.warning("escalation contact of %s not sent: host %s is not approved (webhook-hosts)", enterprise, host)


async def escalation_contacts(conn: asyncpg.Connection, enterprise: str) -> list[dict]:
    """The enterprise's contacts that escalation may send to: ``role``, ``name``, ``webhook`` (the
    URL, decrypted), ``webhook_enc`` (as stored), ``secret_enc``. Contacts of hosts not approved are left out (and logged)."""
    raw = await conn.fetchval("SELECT contacts::text FROM enterprises WHERE id = $1", enterprise)
    contacts = json.loads(raw or "[]")
    hosts = {c.get("webhook_host") or (urlsplit(c.get("webhook") or "").hostname or "").lower() for c in contacts}
    approved = {r["host"] for r in await conn.fetch(
        "SELECT host FROM webhook_hosts WHERE host = ANY($1::text[]) AND state = 'approved'", sorted(hosts))}
    out = []
    for c in contacts:
        if not c.get("webhook") and not c.get("webhook_enc"):
            continue
        url = secretbox.box().decrypt(c["webhook_enc"]) if c.get("webhook_enc") else c["webhook"]
        host = (urlsplit(url).hostname or "").lower()
        if host not in approved:
            _log_refused(enterprise, host)
            continue
        out.append({"role": c.get("role"), "name": c.get("name"), "webhook": url,
                    "webhook_enc": c.get("webhook_enc"), "secret_enc": c.get("secret_enc"),
                    "secret": c.get("secret")})
    return out


def seal_contacts(contacts, stored: list[dict]) -> list[dict]:
    """Contacts as stored: the webhook URL and the signing secret encrypted (``webhook_enc``,
    ``secret_enc``), the URL shown only as scheme, host and path (``webhook``), its host kept for
    the allow-list (``webhook_host``). Secrets are write-only: a contact given back with its
    webhook as shown keeps the stored URL, one given without ``secret`` keeps the stored secret
    (``secret: ""`` removes it); a value equal to the stored one keeps its stored token, so a
    re-import changes nothing."""
    out = []
    for c in contacts:
        d = c.model_dump(exclude_none=True, exclude={"webhook", "secret"})
        same_role = [s for s in stored if s.get("role") == c.role and s.get("webhook_enc")]
        old = None
        if c.webhook is not None:
            old = next((s for s in same_role if s.get("webhook") == c.webhook), None) or next(
                (s for s in same_role if s.get("webhook") == redact_url(c.webhook)
                 and secretbox.box().decrypt(s["webhook_enc"]) == c.webhook), None)
            url = c.webhook if old is None else secretbox.box().decrypt(old["webhook_enc"])
            d["webhook"] = redact_url(url)
            d["webhook_host"] = (urlsplit(url).hostname or "").lower()
            d["webhook_enc"] = old["webhook_enc"] if old is not None else secretbox.box().encrypt(url)
        if c.secret:
            keep = old is not None and old.get("secret_enc") and secretbox.box().decrypt(old["secret_enc"]) == c.secret
            d["secret_enc"] = old["secret_enc"] if keep else secretbox.box().encrypt(c.secret)
        elif c.secret is None and old is not None and old.get("secret_enc"):
            d["secret_enc"] = old["secret_enc"]
        out.append(d)
    return out


async def propose(conn: asyncpg.Connection, hosts: list[str], proposed_by: str) -> None:
    """Put hosts on the list as proposed (those listed already stay as they are); nothing is sent
    to a host until an administrator approves it."""
    await conn.execute("INSERT INTO webhook_hosts (host, proposed_by) SELECT unnest($1::text[]), $2"
                       " ON CONFLICT (host) DO NOTHING", hosts, proposed_by)


async def approve(conn: asyncpg.Connection, host: str, actor: str) -> None:
    await conn.execute(
        """INSERT INTO webhook_hosts (host, state, proposed_by, approved_by, approved_at)
           VALUES ($1, 'approved', $2, $2, now())
           ON CONFLICT (host) DO UPDATE SET state = 'approved', approved_by = $2, approved_at = now()""",
        host.lower(), actor)


async def remove(conn: asyncpg.Connection, host: str) -> bool:
    return await conn.fetchval("DELETE FROM webhook_hosts WHERE host = $1 RETURNING true", host.lower()) is not None


async def list_hosts(conn: asyncpg.Connection) -> list[dict]:
    return [dict(r) for r in await conn.fetch(
        "SELECT host, state, proposed_by, proposed_at, approved_by, approved_at FROM webhook_hosts ORDER BY host")]
