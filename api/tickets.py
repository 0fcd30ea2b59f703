"""One-use, short-lived tickets for the live feeds, so an API key never travels in a URL (URLs end
up in access logs, proxies and browser history). ``POST /api/v1/live/ticket`` with the key in a
header returns a ticket; the WebSocket or EventSource passes ``?ticket=``; redeeming it gives back
the key's hash, and the key is looked up again (a key revoked meanwhile is refused).

Tickets live in this process's memory (as the rate limits do): one API process, or sticky
routing of ``/api/v1/live`` to the process that issued the ticket.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

TICKET_PREFIX = "yjt_"
TICKET_TTL_S = 30.0
MAX_TICKETS = 100_000


class TicketBook:
    def __init__(self, ttl_s: float = TICKET_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._tickets: dict[str, tuple[float, str]] = {}  # sha256(ticket) -> (expires, key digest)

    def issue(self, key_digest: str) -> str:
        now = self._clock()
        if len(self._tickets) >= MAX_TICKETS:
            self._tickets = {t: v for t, v in self._tickets.items() if v[0] > now}
            if len(self._tickets) >= MAX_TICKETS:
                self._tickets.clear()
        ticket = TICKET_PREFIX + secrets.token_urlsafe(24)
        self._tickets[hashlib.sha256(ticket.encode()).hexdigest()] = (now + self.ttl_s, key_digest)
        return ticket

    def redeem(self, ticket: str | None) -> str | None:
        """The key digest the ticket was issued for, once; None if unknown, used or expired."""
        if not ticket or not ticket.startswith(TICKET_PREFIX) or len(ticket) > 64:
            return None
        found = self._tickets.pop(hashlib.sha256(ticket.encode()).hexdigest(), None)
        if found is None or found[0] <= self._clock():
            return None
        return found[1]
