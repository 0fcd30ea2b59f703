"""Silence is judged on wall time only while the pipeline keeps up with the broker; acknowledgements
leave in receive order."""

from __future__ import annotations

import asyncio

from api import ReadingHub
from detectors import Engine
from domain.codec import encode_batch
from domain.messages import FindingBatch, RawMessage
from ingest.batcher import Batcher
from ingest.decode import DecodeLimits, Decoder
from ingest.settings import IngestSettings
from store.writer import WriteBatch, WriteResult
from tests.support.registry import snapshot
from tests.support.services import wait_for
from yujing.detection import Detection
from yujing.pipeline import Pipeline, run_pipeline

WALL_US = 1_764_400_000_000_000
MESSAGES = 4000


class FakeBridge:
    """The bridge's surface the batcher uses: take, pending, connected, ack."""

    def __init__(self) -> None:
        self.inbox: list[RawMessage] = []
        self.connected = True
        self.acked: list[int] = []

    async def take(self, max_messages: int, timeout_s: float) -> list[RawMessage]:
        taken, self.inbox = self.inbox[:max_messages], self.inbox[max_messages:]
        if not taken:
            await asyncio.sleep(0)
        return taken

    def pending(self) -> int:
        return len(self.inbox)

    def ack(self, mids: list[int]) -> None:
        self.acked.extend(mids)


class GatedWriter:
    """Commits nothing until the gate opens: a database that is away."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def write(self, batch: WriteBatch) -> WriteResult:
        await self.gate.wait()
        return WriteResult(inserted=len(batch.readings), duplicates=0, dead_letters=0, merged=False)


def message(mid: int, ts_ms: int) -> RawMessage:
    return RawMessage("yj/v1/E1/G1/up", encode_batch(ts_ms, ["S1"], [1.0]), mid, ts_ms * 1000)


async def test_clock_holds_at_the_newest_reading_while_behind_or_stalled():
    registry = snapshot([("E1", "G1", "S1", "temperature")])
    bridge, writer = FakeBridge(), GatedWriter()
    settings = IngestSettings(queue_batches=1, writer_connections=1, batch_max_messages=1000, batch_max_wait_s=0.01)
    batcher = Batcher(settings, bridge, writer, clock_us=lambda: WALL_US)
    engine = Engine()
    engine.set_registry(registry)
    findings: list[FindingBatch] = []

    async def alerts(batch: FindingBatch) -> None:
        findings.append(batch)

    pipeline = Pipeline(batcher, Decoder(registry, DecodeLimits(10_000, 100, 300)), ReadingHub(),
                        Detection(engine, lambda: registry), alerts)
    reading_ms = WALL_US // 1000 - 600_000  # ten minutes behind: a backlog after an outage
    bridge.inbox = [message(i + 1, reading_ms + i) for i in range(MESSAGES)]
    stop = asyncio.Event()
    running = asyncio.create_task(run_pipeline(pipeline, stop))
    # the writer holds batch 1, batch 2 fills the queue, intake blocks with batch 3: a backlog waits
    await wait_for(lambda: batcher.liveness_now_us() == (reading_ms + 2999) * 1000, 5, interval_s=0.01, what="stall")
    assert bridge.pending() == MESSAGES - 3000 and not bridge.acked
    assert batcher.watermark_us == (reading_ms + 2999) * 1000
    # the database is back: the writer drains the queue, intake takes the rest and finds nothing more
    writer.gate.set()
    await wait_for(lambda: bridge.pending() == 0 and batcher.liveness_now_us() == WALL_US, 5, interval_s=0.01,
                   what="intake caught up")
    bridge.connected = False  # the broker connection is down: hold again
    assert batcher.liveness_now_us() == batcher.watermark_us
    stop.set()
    await asyncio.wait_for(running, 5)
    assert bridge.acked == list(range(1, MESSAGES + 1))  # every message, in receive order
    assert batcher.committed_messages == MESSAGES
