"""A reading's trip from MQTT to the acknowledgement, in one function.

    bridge inbox ─▶ decode ─▶ live feed ─▶ detectors ─▶ alerts ─▶ batch ─▶ writers: commit ─▶ ack

Every step runs on the event loop in this order for each burst; the writers (one per database
connection) commit batches in parallel and acknowledge them in receive order. The stages between
are bounded, so a slow database holds the pipeline, the bridge stops reading its socket and the
backlog waits in the broker (ingest/batcher.py, ingest/bridge.py).
"""

from __future__ import annotations

import asyncio
import dataclasses

from api import ReadingHub
from ingest.batcher import Batcher
from ingest.decode import Decoder
from yujing.detection import Detection, FindingSink, deliver_findings


@dataclasses.dataclass(frozen=True, slots=True)
class Pipeline:
    batcher: Batcher  # bursts from the bridge in, write batches to the writers, acks out in order
    decoder: Decoder
    reading_hub: ReadingHub  # the API's live feed
    detection: Detection
    alerts: FindingSink  # the alerts stage's entry point (AlertsService.handle)


async def run_pipeline(p: Pipeline, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; then hand on what was decoded, commit it and acknowledge it."""
    batcher = p.batcher

    async def intake() -> None:
        while not stop.is_set():
            burst = await batcher.take()  # from the bridge's inbox, at most until the pending batch is due
            if burst:
                chunk = p.decoder.decode(burst)  # columns, refusals, gateway status
                batcher.note_received(chunk)  # watermark and gateway liveness
                if len(chunk.readings):
                    p.reading_hub.publish(chunk.readings)
                findings = p.detection.findings(chunk)
                if len(findings):
                    await deliver_findings(p.alerts, findings)  # committed by alerts before the readings are
                batcher.add(chunk)
            await batcher.hand_on_if_due()  # to the writers' bounded queue: blocks while they are busy
        await batcher.close()  # the last partial batch, then each writer ends after its batches

    async def commit_and_acknowledge() -> None:  # one per writer connection
        while (batch := await batcher.next_batch()) is not None:
            await batcher.commit(batch)  # one transaction, retried while the database is away
            batcher.acknowledge(batch)  # this batch and the committed ones after it, in receive order

    async with asyncio.TaskGroup() as tg:
        tg.create_task(intake())
        for _ in range(batcher.writer_connections):
            tg.create_task(commit_and_acknowledge())
