"""Batching, commits and ordered acknowledgements between the bridge and the database.

The pipeline (``yujing.pipeline``) takes bursts through :meth:`Batcher.take`, hands each decoded
chunk to :meth:`Batcher.note_received` and, once detected, to :meth:`Batcher.add`, and calls :meth:`Batcher.hand_on_if_due`, which merges the pending
chunks into one write batch once it is big enough (readings, messages) or old enough, numbers it
and puts it on a bounded queue. Writers (one per connection) take batches with
:meth:`Batcher.next_batch`, :meth:`Batcher.commit` them and call :meth:`Batcher.acknowledge`.
Writers commit in parallel and out of order; acknowledgements leave in receive order (MQTT asks
for it): a commit acknowledges the longest run of committed batches that follows the last
acknowledged one, so a later batch's acknowledgements wait for every earlier commit.

The queue is bounded: when the database is slow or down, writers stop taking batches,
:meth:`hand_on_if_due` blocks and the pipeline stops taking from the bridge's inbox, the bridge
stops reading from its socket once the inbox is full (ingest/bridge.py), TCP pushes back, and the
backlog waits in the broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import numpy as np

from domain.clock import Clock, now_us
from domain.errors import RetryLater
from domain.messages import RawMessage, ReadingBatch
from ingest import metrics
from ingest.bridge import MqttBridge
from ingest.decode import DecodedChunk
from ingest.settings import IngestSettings
from store.periodic import retry_until_done
from store.writer import ReadingWriter, WriteBatch, WriteResult

log = logging.getLogger(__name__)

LAG_SAMPLES_PER_BATCH = 64
MAX_BURST_MESSAGES = 1000  # messages decoded in one pass: bounds the decoder's temporaries
FIRST_RETRY_S = 0.05


def merge_chunks(chunks: list[DecodedChunk]) -> WriteBatch:
    if len(chunks) == 1:
        c = chunks[0]
        return WriteBatch(c.readings, c.rejected, c.statuses, c.mids, c.messages)
    return WriteBatch(
        readings=ReadingBatch.concat([c.readings for c in chunks]),
        rejected=[r for c in chunks for r in c.rejected],
        statuses=[s for c in chunks for s in c.statuses],
        mids=[m for c in chunks for m in c.mids],
        messages=sum(c.messages for c in chunks),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class NumberedBatch:
    """A write batch with its place in receive order (acknowledgements follow the numbers)."""

    number: int
    batch: WriteBatch


class Batcher:
    def __init__(
        self,
        settings: IngestSettings,
        bridge: MqttBridge,
        writer: ReadingWriter,
        clock_us: Clock = now_us,
    ) -> None:
        self._settings = settings
        self._bridge = bridge
        self._writer = writer
        self._clock_us = clock_us
        self._queue: asyncio.Queue[NumberedBatch | None] = asyncio.Queue(maxsize=settings.queue_batches)
        self.writer_connections = settings.writer_connections
        self.gateway_seen_us: dict[int, int] = {}  # gateway id -> latest receive time (liveness)
        self.committed_readings = 0
        self.committed_messages = 0
        self._pending: list[DecodedChunk] = []  # decoded, not yet handed on
        self._pending_readings = 0
        self._pending_messages = 0
        self._pending_since = 0.0  # loop time of the first pending chunk
        self._unacked = 0
        self._uncommitted: dict[int, int] = {}  # batch number -> its oldest receive time, µs
        self._next_batch = 0  # number of the next batch handed on
        self._next_ack = 0  # number of the oldest batch not yet acknowledged
        self._committed_mids: dict[int, list[int]] = {}  # committed, waiting for earlier batches
        self.watermark_us = 0  # newest reading time taken from the broker so far
        self._behind = True  # until the first take that finds the broker's queue drained

    # --- intake side ----------------------------------------------------------------------------

    async def take(self) -> list[RawMessage]:
        """A burst from the bridge's inbox: as many messages as the pending batch still holds (at
        most a decoder pass), waiting no longer than the pending batch may age."""
        s = self._settings
        loop_time = asyncio.get_running_loop().time()
        wait_s = s.batch_max_wait_s if not self._pending else max(0.0, self._pending_since + s.batch_max_wait_s - loop_time)
        want = min(MAX_BURST_MESSAGES, s.batch_max_messages - self._pending_messages)
        taken = await self._bridge.take(want, wait_s)
        metrics.inbox_depth.set(self._bridge.pending())
        # Caught up: the take found less than it could hold and nothing more is waiting.
        self._behind = len(taken) >= want or self._bridge.pending() > 0
        return taken

    def note_received(self, chunk: DecodedChunk) -> None:
        """A decoded chunk's times: the newest reading (the watermark) and each gateway's last receive."""
        if len(chunk.readings):
            self.watermark_us = max(self.watermark_us, int(chunk.readings.ts_us.max()))
        seen = self.gateway_seen_us
        for gid, us in zip(chunk.gateway_seen_id.tolist(), chunk.gateway_seen_us.tolist()):
            if seen.get(gid, 0) < us:
                seen[gid] = us

    def add(self, chunk: DecodedChunk) -> None:
        """A decoded chunk joins the pending batch."""
        if not self._pending:
            self._pending_since = asyncio.get_running_loop().time()
        self._pending.append(chunk)
        self._pending_readings += len(chunk.readings)
        self._pending_messages += chunk.messages
        metrics.messages.inc(chunk.messages)

    async def hand_on_if_due(self) -> None:
        """Queue the pending batch for the writers once it is full or old enough (blocks while the
        queue is full: the backpressure)."""
        s = self._settings
        if self._pending and (
            self._pending_readings >= s.batch_max_readings
            or self._pending_messages >= s.batch_max_messages
            or asyncio.get_running_loop().time() - self._pending_since >= s.batch_max_wait_s
        ):
            await self._hand_on()

    async def close(self) -> None:
        """Hand on what is pending, then tell each writer to finish after the batches before it."""
        if self._pending:
            await self._hand_on()
        for _ in range(self.writer_connections):
            await self._queue.put(None)

    async def _hand_on(self) -> None:
        batch = merge_chunks(self._pending)
        self._pending, self._pending_readings, self._pending_messages = [], 0, 0
        number = self._next_batch
        self._next_batch += 1
        received = batch.readings.received_us
        self._uncommitted[number] = int(received.min()) if received.shape[0] else self._clock_us()
        self._unacked += len(batch.mids)
        metrics.unacked.set(self._unacked)
        await self._queue.put(NumberedBatch(number, batch))
        metrics.queue_depth.set(self._queue.qsize())

    def liveness_now_us(self) -> int:
        """The clock against which gateway and sensor silence is judged.

        While the pipeline keeps up with the broker, silence is real and wall time is right. While
        it is behind — the database is slow or down and intake is blocked, the MQTT connection is
        down, or a backlog is draining — a sensor can look silent only because yujing is not
        reading, so the clock is held at the newest reading time taken so far: a DB outage never
        becomes a province-wide storm of no-data alerts."""
        now = self._clock_us()
        stalled = self._queue.full() or not self._bridge.connected
        if (self._behind or stalled) and self.watermark_us:
            return min(now, self.watermark_us)
        return now

    @property
    def oldest_unacked_s(self) -> float | None:
        """Receive time (epoch seconds) of the oldest message not yet committed, if any."""
        return min(self._uncommitted.values()) / 1e6 if self._uncommitted else None

    # --- writer side ----------------------------------------------------------------------------

    async def next_batch(self) -> NumberedBatch | None:
        """The next batch to commit; None: the pipeline is closing and this writer is done."""
        item = await self._queue.get()
        metrics.queue_depth.set(self._queue.qsize())
        return item

    async def commit(self, item: NumberedBatch) -> WriteResult:
        """Write the batch in one transaction, retrying while the database is unavailable."""
        started = time.perf_counter()

        def failed(_exc: BaseException) -> None:
            metrics.write_retries.inc()
            metrics.database_up.set(0)

        result = await retry_until_done(
            "reading write", lambda: self._writer.write(item.batch), retry_on=(RetryLater,),
            first_s=FIRST_RETRY_S, max_s=self._settings.retry_max_s, on_failure=failed,
        )
        metrics.database_up.set(1)
        self._record(item.batch, result, time.perf_counter() - started)
        return result

    def acknowledge(self, item: NumberedBatch) -> None:
        """Batch ``item`` is committed: acknowledge it and every committed batch after it, up to
        the first one still being written. Runs on the event loop only, so it needs no lock."""
        self._uncommitted.pop(item.number, None)
        held = self._committed_mids
        held[item.number] = item.batch.mids
        while self._next_ack in held:
            ready = held.pop(self._next_ack)
            self._next_ack += 1
            self._bridge.ack(ready)
            self._unacked -= len(ready)
        metrics.unacked.set(self._unacked)

    def _record(self, batch: WriteBatch, result: WriteResult, elapsed_s: float) -> None:
        self.committed_readings += result.inserted
        self.committed_messages += batch.messages
        metrics.readings_committed.inc(result.inserted)
        if result.duplicates:
            metrics.readings_duplicate.inc(result.duplicates)
        metrics.record_refusals(batch.rejected, result)
        metrics.batches.labels("merge" if result.merged else "copy").inc()
        metrics.commit_seconds.observe(elapsed_s)
        n = len(batch.readings)
        if n:
            now = self._clock_us()
            sample = np.linspace(0, n - 1, min(n, LAG_SAMPLES_PER_BATCH)).astype(np.int64)
            for lag in ((now - batch.readings.received_us[sample]) / 1e6).tolist():
                metrics.ingest_lag.observe(lag)
            for lag in ((now - batch.readings.ts_us[sample]) / 1e6).tolist():
                metrics.end_to_end_lag.observe(lag)
