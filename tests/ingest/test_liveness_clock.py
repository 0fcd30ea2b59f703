"""Silence is judged on wall time only while the collector keeps up with the broker."""

from __future__ import annotations

import asyncio

from domain.codec import encode_batch
from domain.messages import RawMessage
from ingest.collector import Collector
from ingest.decode import DecodeLimits, Decoder
from tests.support.registry import snapshot
from tests.support.services import wait_for
from ingest.settings import IngestSettings

WALL_US = 1_764_400_000_000_000


class FakeBridge:
    """The bridge's surface the intake uses: take, pending, connected."""

    def __init__(self) -> None:
        self.inbox: list[RawMessage] = []
        self.connected = True

    async def take(self, max_messages: int, timeout_s: float) -> list[RawMessage]:
        taken, self.inbox = self.inbox[:max_messages], self.inbox[max_messages:]
        if not taken:
            await asyncio.sleep(0)
        return taken

    def pending(self) -> int:
        return len(self.inbox)


def message(ts_ms: int) -> RawMessage:
    return RawMessage("yj/v1/E1/G1/up", encode_batch(ts_ms, ["S1"], [1.0]), 1, ts_ms * 1000)


async def test_clock_holds_at_the_newest_reading_while_behind_or_stalled():
    bridge = FakeBridge()
    decoder = Decoder(snapshot([("E1", "G1", "S1", "temperature")]), DecodeLimits(10_000, 100, 300))
    settings = IngestSettings(queue_batches=1, batch_max_messages=1000, batch_max_wait_s=0.01)
    collector = Collector(settings, bridge, decoder, writer=None, clock_us=lambda: WALL_US)
    reading_ms = WALL_US // 1000 - 600_000  # ten minutes behind: a backlog after an outage
    bridge.inbox = [message(reading_ms + i) for i in range(3000)]
    stop = asyncio.Event()
    intake = asyncio.create_task(collector._run_intake(stop))
    # no writer takes batches: the queue fills, intake blocks, a backlog waits
    await wait_for(lambda: collector._queue.full() and collector.watermark_us, 5, interval_s=0.01, what="stall")
    assert bridge.pending() > 0
    assert collector.liveness_now_us() == collector.watermark_us == (reading_ms + 1999) * 1000
    # a writer drains the queue; intake takes the rest and then finds nothing more waiting
    def writer_drains() -> bool:  # a writer takes what is queued; done once nothing is left anywhere
        while not collector._queue.empty():
            collector._queue.get_nowait()
        return bridge.pending() == 0 and collector.liveness_now_us() == WALL_US

    await wait_for(writer_drains, 5, interval_s=0.01, what="intake caught up")
    assert collector.liveness_now_us() == WALL_US
    bridge.connected = False  # the broker connection is down: hold again
    assert collector.liveness_now_us() == collector.watermark_us
    stop.set()

    def stopped() -> bool:
        writer_drains()  # the intake's final flush and end markers go through the queue too
        return intake.done()

    await wait_for(stopped, 5, interval_s=0.01, what="intake stopped")
