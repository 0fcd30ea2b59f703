"""The in-process live feed of alert changes that the API serves (WebSocket / SSE).

Each subscriber gets its own bounded queue. Publishing never waits: a subscriber whose queue is
full has fallen behind and is dropped (its queue is emptied and ends with :data:`CLOSED`), and the
drop is counted in :attr:`AlertFeed.dropped`. A dropped client reconnects and reloads the alert
list from the API. Events are the audit journal's entries, in ``seq`` order, so a client can tell
a gap (``seq`` jumps) and resync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from alerts.records import journal_reads

FEED_QUEUE = 1000

CLOSED: dict[str, Any] = {"type": "closed", "reason": "fell behind; reload and subscribe again"}


class Subscription:
    def __init__(self, feed: AlertFeed, maxsize: int, accept: Callable[[dict[str, Any]], bool] | None) -> None:
        self._feed = feed
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=maxsize + 1)  # +1 for CLOSED
        self.maxsize = maxsize
        self.accept = accept
        self.closed = False
        self.wake: Callable[[], None] | None = None  # called after each put (one reader, several queues)

    def _offer(self, event: dict[str, Any]) -> bool:
        if self.closed:
            return False
        if self.accept is not None and not self.accept(event):
            return True
        if self.queue.qsize() >= self.maxsize:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSED)
            self.closed = True
            if self.wake is not None:
                self.wake()
            return False
        self.queue.put_nowait(event)
        if self.wake is not None:
            self.wake()
        return True

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self.closed and self.queue.empty():
            raise StopAsyncIteration
        event = await self.queue.get()
        if event is CLOSED:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self.closed = True
        self._feed._subs.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AlertFeed:
    def __init__(self, queue_size: int = FEED_QUEUE) -> None:
        self.queue_size = queue_size
        self._subs: set[Subscription] = set()
        self.published = 0
        self.dropped = 0  # subscribers dropped for falling behind

    def subscribe(self, accept: Callable[[dict[str, Any]], bool] | None = None,
                  maxsize: int | None = None) -> Subscription:
        """A new subscription; ``accept`` filters events (e.g. to one enterprise's alerts)."""
        sub = Subscription(self, maxsize or self.queue_size, accept)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, event: dict[str, Any]) -> None:
        self.published += 1
        for sub in list(self._subs):
            if not sub._offer(event):
                self._subs.discard(sub)
                self.dropped += 1


class JournalFollower:
    """Publishes the audit journal's new entries to a live feed, starting at the head it first sees."""

    def __init__(self, feed: AlertFeed) -> None:
        self.feed = feed
        self.seq: int | None = None

    async def start(self, conn: asyncpg.Connection) -> None:
        """Begin at the journal's current head (once)."""
        if self.seq is None:
            self.seq = await journal_reads.head_seq(conn)

    async def publish(self, conn: asyncpg.Connection) -> int:
        """Publish the entries after the last one published; returns how many."""
        if self.seq is None:
            await self.start(conn)
            return 0
        entries = await journal_reads.entries_after(conn, self.seq)
        for r in entries:
            detail = r["detail"]
            self.feed.publish({
                "type": "alert" if r["alert_id"] is not None else "silence",
                "seq": r["seq"], "at_us": r["at_us"], "alert_id": r["alert_id"], "alert_key": r["alert_key"],
                "version": r["version"], "action": r["action"], "actor": r["actor"],
                "enterprise": (detail.get("alert") or {}).get("enterprise"), "detail": detail,
            })
        if entries:
            self.seq = entries[-1]["seq"]
        return len(entries)
