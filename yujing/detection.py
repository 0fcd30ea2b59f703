"""Detection inside the ingest pipeline: every decoded chunk goes through the detector engine
before its write is committed, so detection latency never waits for the database."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import tenacity
import yaml
from prometheus_client import Counter, Histogram

from detectors import DetectorConfig, Engine
from domain.errors import FixConfiguration, RetryLater
from domain.messages import FindingBatch
from domain.registry import RegistrySnapshot
from domain.severity import FindingEvent, Severity
from ingest.decode import DecodedChunk
from store.errors import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

detector_seconds = Histogram(
    "yujing_detector_seconds", "Detector engine time per decoded chunk",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
findings_total = Counter("yujing_findings_total", "Findings emitted", ["rule", "severity", "event"])

FindingSink = Callable[[FindingBatch], Awaitable[None]]
SINK_RETRY_MAX_S = 5.0


def load_detector_config(path: Path | None) -> DetectorConfig:
    if path is None:
        return DetectorConfig.from_config(None)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FixConfiguration(f"YUJING_DETECTORS_CONFIG: cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise FixConfiguration(f"YUJING_DETECTORS_CONFIG: {path} must be a mapping with a detectors section")
    return DetectorConfig.from_config(doc.get("detectors"))


def _count(findings: FindingBatch) -> None:
    for f in findings.rows():
        findings_total.labels(f.rule.split(".")[0], Severity(f.severity).name.lower(), FindingEvent(f.event).name.lower()).inc()


class Detection:
    """Owns the engine; turns chunks and clock ticks into findings for the sink."""

    def __init__(self, engine: Engine, sink: FindingSink, registry: Callable[[], RegistrySnapshot]) -> None:
        self.engine = engine
        self._sink = sink
        self._registry = registry

    async def on_chunk(self, chunk: DecodedChunk) -> None:
        started = time.perf_counter()
        parts = [self.engine.update(chunk.readings)] if len(chunk.readings) else []
        if chunk.statuses:
            ids = self._registry().gateway_ids
            parts.append(
                self.engine.gateway_status(
                    np.array([ids.get((s.enterprise, s.gateway), 0) for s in chunk.statuses], dtype=np.int32),
                    np.array([s.online for s in chunk.statuses], dtype=bool),
                    np.array([s.received_us for s in chunk.statuses], dtype=np.int64),
                )
            )
        findings = FindingBatch.concat(parts)
        detector_seconds.observe(time.perf_counter() - started)
        if len(findings):
            _count(findings)
            await self._deliver(findings)

    async def _deliver(self, findings: FindingBatch) -> None:
        """Hand findings to the sink, retrying while the database is unavailable.

        A finding is a state change the engine will not repeat, so it must never be dropped:
        while the sink cannot commit, the pipeline waits here (the writers are waiting for the
        same database anyway), and the backlog stays in the broker."""
        errors: list[str] = []

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = str(state.outcome.exception()) if state.outcome else "?"
            if not errors or errors[-1] != error:
                log.warning("findings not delivered, retrying", extra={"error": error, "findings": len(findings)})
                errors.append(error)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type((*TRANSIENT_ERRORS, RetryLater)),
            wait=tenacity.wait_random_exponential(multiplier=0.05, max=SINK_RETRY_MAX_S),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._sink(findings)
        if errors:
            log.info("findings delivered after retrying", extra={"findings": len(findings)})

    async def run_ticks(self, interval_s: float, clock_us: Callable[[], int]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            findings = self.engine.tick(clock_us())
            if len(findings):
                _count(findings)
                await self._deliver(findings)
