"""The collector: MQTT intake → decode → (detectors) → batched commit → acknowledge.

Two kinds of loop run in one task group: one intake loop that decodes bursts of messages and
groups them into write batches (by reading count, message count and age), and N writer loops,
each committing batches over its own connection. Writers commit in parallel and out of order;
acknowledgements leave in receive order (MQTT asks for it): a batch is numbered when intake
hands it on, and a commit acknowledges the longest run of committed batches that follows the
last acknowledged one, so a later batch's acknowledgements wait for every earlier commit.

The queue between the stages is bounded: when the database is slow or down, writers stop taking
batches, intake blocks on the queue and stops taking from the bridge's inbox, the bridge stops
reading from its socket once the inbox is full (ingest/bridge.py), TCP pushes back, and the
backlog waits in the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np
import tenacity

from domain.errors import RetryLater
from domain.messages import ReadingBatch
from ingest import metrics
from ingest.bridge import MqttBridge
from ingest.decode import DecodedChunk, Decoder
from store.writer import ReadingWriter, WriteBatch, WriteResult
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

LAG_SAMPLES_PER_BATCH = 64
MAX_BURST_MESSAGES = 1000  # messages decoded in one pass: bounds the decoder's temporaries

ChunkHook = Callable[[DecodedChunk], Awaitable[None]]


def _now_us() -> int:
    return time.time_ns() // 1000


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


class Collector:
    def __init__(
        self,
        settings: IngestSettings,
        bridge: MqttBridge,
        decoder: Decoder,
        writer: ReadingWriter,
        on_chunk: ChunkHook | None = None,
        clock_us: Callable[[], int] = _now_us,
    ) -> None:
        self._settings = settings
        self._bridge = bridge
        self._decoder = decoder
        self._writer = writer
        self._on_chunk = on_chunk
        self._clock_us = clock_us
        self._queue: asyncio.Queue[tuple[int, WriteBatch] | None] = asyncio.Queue(maxsize=settings.queue_batches)
        self.gateway_seen_us: dict[int, int] = {}  # gateway id -> latest receive time (liveness)
        self.committed_readings = 0
        self.committed_messages = 0
        self._unacked = 0
        self._uncommitted: dict[int, int] = {}  # batch number -> its oldest receive time, µs
        self._next_batch = 0  # number of the next batch intake hands on
        self._next_ack = 0  # number of the oldest batch not yet acknowledged
        self._committed_mids: dict[int, list[int]] = {}  # committed, waiting for earlier batches
        self.watermark_us = 0  # newest reading time taken from the broker so far
        self._behind = True  # until the first take that finds the broker's queue drained

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then flush what was decoded, commit it and acknowledge it."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._run_intake(stop))
            for i in range(self._settings.writer_connections):
                tg.create_task(self._run_writer(i))

    # --- intake ---------------------------------------------------------------------------------

    async def _run_intake(self, stop: asyncio.Event) -> None:
        s = self._settings
        pending: list[DecodedChunk] = []
        readings = messages = 0
        started = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            wait_s = s.batch_max_wait_s if not pending else max(0.0, started + s.batch_max_wait_s - loop.time())
            want = min(MAX_BURST_MESSAGES, s.batch_max_messages - messages)
            taken = await self._bridge.take(want, wait_s)
            metrics.inbox_depth.set(self._bridge.pending())
            # Caught up: the take found less than it could hold and nothing more is waiting.
            self._behind = len(taken) >= want or self._bridge.pending() > 0
            if taken:
                chunk = self._decoder.decode(taken)
                if len(chunk.readings):
                    self.watermark_us = max(self.watermark_us, int(chunk.readings.ts_us.max()))
                self._note_seen(chunk)
                if self._on_chunk is not None:
                    await self._on_chunk(chunk)
                if not pending:
                    started = loop.time()
                pending.append(chunk)
                readings += len(chunk.readings)
                messages += chunk.messages
                metrics.messages.inc(chunk.messages)
            if pending and (
                readings >= s.batch_max_readings
                or messages >= s.batch_max_messages
                or loop.time() - started >= s.batch_max_wait_s
            ):
                await self._enqueue(pending)
                pending, readings, messages = [], 0, 0
        if pending:
            await self._enqueue(pending)
        for _ in range(s.writer_connections):
            await self._queue.put(None)

    def liveness_now_us(self) -> int:
        """The clock against which gateway and sensor silence is judged.

        While the collector keeps up with the broker, silence is real and wall time is right. While
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

    async def _enqueue(self, chunks: list[DecodedChunk]) -> None:
        batch = merge_chunks(chunks)
        number = self._next_batch
        self._next_batch += 1
        received = batch.readings.received_us
        self._uncommitted[number] = int(received.min()) if received.shape[0] else self._clock_us()
        self._unacked += len(batch.mids)
        metrics.unacked.set(self._unacked)
        await self._queue.put((number, batch))  # blocks while writers are busy: the backpressure
        metrics.queue_depth.set(self._queue.qsize())

    def _note_seen(self, chunk: DecodedChunk) -> None:
        seen = self.gateway_seen_us
        for gid, us in zip(chunk.gateway_seen_id.tolist(), chunk.gateway_seen_us.tolist()):
            if seen.get(gid, 0) < us:
                seen[gid] = us

    # --- writers --------------------------------------------------------------------------------

    async def _run_writer(self, number: int) -> None:
        while True:
            item = await self._queue.get()
            metrics.queue_depth.set(self._queue.qsize())
            if item is None:
                return
            number, batch = item
            started = time.perf_counter()
            result = await self._commit(batch)
            self._uncommitted.pop(number, None)
            self._acknowledge_in_order(number, batch.mids)
            self._record(batch, result, time.perf_counter() - started)

    def _acknowledge_in_order(self, number: int, mids: list[int]) -> None:
        """Batch ``number`` is committed: acknowledge it and every committed batch after it, up to
        the first one still being written. Runs on the event loop only, so it needs no lock."""
        held = self._committed_mids
        held[number] = mids
        while self._next_ack in held:
            ready = held.pop(self._next_ack)
            self._next_ack += 1
            self._bridge.ack(ready)
            self._unacked -= len(ready)
        metrics.unacked.set(self._unacked)

    async def _commit(self, batch: WriteBatch) -> WriteResult:
        last_error: list[str] = []

        def before_sleep(state: tenacity.RetryCallState) -> None:
            metrics.write_retries.inc()
            metrics.database_up.set(0)
            error = str(state.outcome.exception()) if state.outcome else "?"
            if not last_error or last_error[-1] != error:  # log when the error changes
                log.warning("write failed, retrying", extra={"error": error, "attempt": state.attempt_number})
                last_error.append(error)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(RetryLater),
            wait=tenacity.wait_random_exponential(multiplier=0.05, max=self._settings.retry_max_s),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                result = await self._writer.write(batch)
        if last_error:
            log.info("write recovered", extra={"attempts": len(last_error) + 1})
        metrics.database_up.set(1)
        return result

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
