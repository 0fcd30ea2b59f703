"""Live readings for WebSocket and SSE clients: the service publishes every decoded batch here.

:meth:`ReadingHub.publish` is on the ingest path, so it never waits and costs little: one gather
over a dense per-sensor "watched" count picks the rows any client wants (usually a few of a large
batch), one sort groups them by sensor, and each interested client gets one message per batch.
Each client has its own bounded queue; a client whose queue is full has fallen behind and is
dropped at once (its queue ends with a close reason, counted in ``yujing_api_live_dropped_total``)
— ingest never waits for a client. Call :meth:`publish` on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable

import msgspec
import numpy as np
from prometheus_client import Counter, Gauge

from domain.messages import ReadingBatch

DEFAULT_QUEUE = 256

live_clients = Gauge("yujing_api_live_clients", "Live-feed clients connected", ["feed"])
live_dropped = Counter("yujing_api_live_dropped_total", "Live-feed clients dropped", ["reason"])
live_messages = Counter("yujing_api_live_messages_total", "Live-feed messages queued for clients", ["feed"])

FELL_BEHIND = "fell behind: its queue of {n} messages was full; reconnect and reload"

_encoder = msgspec.json.Encoder()


@dataclasses.dataclass(eq=False, slots=True)
class Closed:
    reason: str


class ReadingClient:
    """One subscriber: a bounded queue of JSON messages (bytes), then at most one :class:`Closed`."""

    def __init__(self, hub: ReadingHub, sensors: np.ndarray, maxsize: int) -> None:
        self._hub = hub
        self.sensors = sensors
        self.maxsize = maxsize
        self.queue: asyncio.Queue[bytes | Closed] = asyncio.Queue(maxsize + 1)  # +1 for Closed
        self.closed: str | None = None
        self.wake: Callable[[], None] | None = None  # called after each put (one reader, several queues)

    def offer(self, message: bytes) -> bool:
        if self.closed is not None:
            return False
        if self.queue.qsize() >= self.maxsize:
            self.drop(FELL_BEHIND.format(n=self.maxsize), "fell_behind")
            return False
        self.queue.put_nowait(message)
        if self.wake is not None:
            self.wake()
        return True

    def drop(self, reason: str, counter: str) -> None:
        """End the feed: the queue is emptied and ends with ``Closed(reason)``."""
        if self.closed is not None:
            return
        self.closed = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(Closed(reason))
        if self.wake is not None:
            self.wake()
        live_dropped.labels(counter).inc()
        self._hub._remove(self)

    async def get(self) -> bytes | Closed:
        return await self.queue.get()

    def close(self) -> None:
        if self.closed is None:
            self.closed = "closed by client"
            self._hub._remove(self)

    def __enter__(self) -> ReadingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadingHub:
    def __init__(self, queue_size: int = DEFAULT_QUEUE) -> None:
        self.queue_size = queue_size
        self._clients: set[ReadingClient] = set()
        self._watched = np.zeros(1, np.int32)  # clients per sensor id
        self._by_sensor: dict[int, list[ReadingClient]] = {}
        self.published = 0  # readings offered to publish()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribe(self, sensors: Iterable[int], maxsize: int | None = None) -> ReadingClient:
        """A client for these dense sensor ids (already checked against the key's scope)."""
        ids = np.unique(np.fromiter(sensors, np.int64)).astype(np.int32)
        ids = ids[ids > 0]
        client = ReadingClient(self, ids, maxsize or self.queue_size)
        if ids.size and ids[-1] >= self._watched.size:
            grown = np.zeros(max(int(ids[-1]) + 1, self._watched.size * 2), np.int32)
            grown[: self._watched.size] = self._watched
            self._watched = grown
        self._watched[ids] += 1
        for s in ids.tolist():
            self._by_sensor.setdefault(s, []).append(client)
        self._clients.add(client)
        live_clients.labels("readings").inc()
        return client

    def _remove(self, client: ReadingClient) -> None:
        if client not in self._clients:
            return
        self._clients.discard(client)
        live_clients.labels("readings").dec()
        self._watched[client.sensors] -= 1
        for s in client.sensors.tolist():
            subs = self._by_sensor.get(s)
            if subs is not None:
                subs.remove(client)
                if not subs:
                    del self._by_sensor[s]

    def close_all(self, reason: str = "server shutting down") -> None:
        for client in list(self._clients):
            client.drop(reason, "shutdown")

    def publish(self, batch: ReadingBatch) -> None:
        """Queue the rows each client subscribed to; never waits (see the module docstring).

        batch.sensor int32 (n,), ts_us int64 (n,), value float64 (n,), quality int16 (n,).
        """
        n = len(batch)
        self.published += n
        if n == 0 or not self._clients:
            return
        sensor = batch.sensor
        watched = self._watched
        inside = (sensor >= 0) & (sensor < watched.size)
        hit = np.zeros(n, bool)
        hit[inside] = watched[sensor[inside]] > 0
        rows = np.flatnonzero(hit)
        if rows.size == 0:
            return
        rows = rows[np.argsort(sensor[rows], kind="stable")]  # by sensor, in arrival order within one
        keys = sensor[rows]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        ends = np.r_[starts[1:], keys.size]
        wanted: dict[ReadingClient, list[np.ndarray]] = {}
        for s, a, b in zip(keys[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
            for client in self._by_sensor.get(s, ()):
                wanted.setdefault(client, []).append(rows[a:b])
        for client, parts in wanted.items():
            take = parts[0] if len(parts) == 1 else np.concatenate(parts)
            message = _encoder.encode({
                "type": "readings",
                "sensor": sensor[take].tolist(),
                "ts_us": batch.ts_us[take].tolist(),
                "value": batch.value[take].tolist(),
                "quality": batch.quality[take].tolist(),
            })
            if client.offer(message):
                live_messages.labels("readings").inc()
