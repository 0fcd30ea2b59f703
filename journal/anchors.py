"""The journal's head outside the database: the anchor file, a notary's webhook, ``audit head``.

The **anchor file** ``{anchor_dir}/{system id}-{database}.anchor`` gets one ``seq hash at_us``
line, appended and fsynced whenever the head moves (:class:`Anchor`, run by the alerts service
every tick). ``anchor_dir`` is an absolute path from the alerts policy (``audit.anchor_dir``), so
the service and ``yujing audit verify`` find the same file from any directory. It lives outside
the database's trust domain (another owner; shippable to WORM storage or a log host), so a chain
rewritten or cut together with its head row is still caught. It lags the journal by at most one
tick.

A configured **webhook** (``audit.anchor_webhook``) receives each new head as JSON
(:meth:`Head.as_dict`) — an external notary keeps what the host cannot rewrite. A failed POST is
retried on the next tick with the then-current head (the notary gets the newest head, never an
older one after a newer). ``yujing audit head`` prints the same JSON for a notary to copy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

import asyncpg
import httpx

log = logging.getLogger("yujing.journal")

WEBHOOK_TIMEOUT_S = 5.0


async def database_id(conn: asyncpg.Connection) -> str:
    """Names the anchor file: the cluster's system identifier and the database name."""
    name = await conn.fetchval("SELECT current_database()")
    system = await conn.fetchval("SELECT system_identifier FROM pg_control_system()")
    return f"{system}-{name}"


def anchor_path(anchor_dir: Path, db_id: str) -> Path:
    return Path(anchor_dir) / f"{db_id}.anchor"


def read_anchors(path: Path) -> list[tuple[int, str]]:
    """``(seq, hash)`` of each line; ``[]`` when the file does not exist."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            out.append((int(parts[0]), parts[1]))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Head:
    """The journal's head: the last entry's seq and hash, and that entry's time."""

    database: str
    seq: int
    hash: str
    at_us: int | None

    def as_dict(self) -> dict[str, Any]:
        at = None if self.at_us is None else dt.datetime.fromtimestamp(self.at_us / 1e6, dt.UTC).isoformat()
        return {"database": self.database, "seq": self.seq, "hash": self.hash, "at_us": self.at_us, "at": at}


async def read_head(conn: asyncpg.Connection, db_id: str | None = None) -> Head:
    row = await conn.fetchrow(
        "SELECT h.seq, h.hash, j.at_us FROM alert_journal_head h LEFT JOIN alert_journal j ON j.seq = h.seq"
        " WHERE h.singleton"
    )
    return Head(db_id or await database_id(conn), int(row["seq"]), row["hash"], row["at_us"])


class Anchor:
    """Appends the journal head to the anchor file and ships it to the webhook when it moves
    (one writer per database). ``anchor_dir`` must be absolute (the policy checks it)."""

    def __init__(self, anchor_dir: Path | None, webhook: str | None = None,
                 timeout_s: float = WEBHOOK_TIMEOUT_S) -> None:
        self.anchor_dir = Path(anchor_dir) if anchor_dir is not None else None
        self.webhook = webhook
        self.timeout_s = timeout_s
        self.shipped = 0  # heads the webhook accepted
        self._db_id: str | None = None
        self._path: Path | None = None
        self._last: tuple[int, str] | None = None
        self._shipped: tuple[int, str] | None = None
        self._ship_error: str | None = None

    @classmethod
    def from_policy(cls, policy) -> Anchor | None:
        """The alerts policy's ``audit`` section; ``None`` when it neither writes nor ships."""
        if policy.anchor_dir is None and policy.anchor_webhook is None:
            return None
        return cls(policy.anchor_dir, policy.anchor_webhook, policy.anchor_webhook_timeout_s)

    async def write(self, conn: asyncpg.Connection, at_us: int) -> int:
        """Anchor the current head (if it moved); returns its seq."""
        if self._db_id is None:
            self._db_id = await database_id(conn)
            if self.anchor_dir is not None:
                self._path = anchor_path(self.anchor_dir, self._db_id)
                self.anchor_dir.mkdir(parents=True, exist_ok=True)
                anchors = read_anchors(self._path)
                self._last = anchors[-1] if anchors else None
        head = await read_head(conn, self._db_id)
        current = (head.seq, head.hash)
        if current[0] == 0:
            return 0
        if self._path is not None and current != self._last:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, f"{current[0]} {current[1]} {at_us}\n".encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            self._last = current
        if self.webhook is not None and current != self._shipped:
            await self._ship(head)
        return current[0]

    async def _ship(self, head: Head) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(self.webhook, json=head.as_dict())
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # the URL may carry a token: name the failure, never the URL
            error = (f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError)
                     else type(exc).__name__)
            if error != self._ship_error:  # log when the error changes, not on every tick
                log.warning("journal anchor not shipped to the webhook; retrying next tick: %s", error)
                self._ship_error = error
            return
        if self._ship_error is not None:
            log.info("journal anchors reach the webhook again")
            self._ship_error = None
        self._shipped = (head.seq, head.hash)
        self.shipped += 1


async def write_anchor(conn: asyncpg.Connection, anchor_dir: Path, at_us: int) -> int:
    """One-shot anchor write (for tools and tests); returns the anchored seq."""
    return await Anchor(anchor_dir).write(conn, at_us)
