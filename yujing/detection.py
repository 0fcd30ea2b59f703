"""Detection inside the pipeline (yujing/pipeline.py): every decoded chunk goes through the
detector engine before its write is committed, so detection latency never waits for the database."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import yaml
from prometheus_client import Counter, Histogram

from detectors import DetectorConfig, Engine
from domain.clock import Clock
from domain.errors import FixConfiguration, RetryLater
from domain.messages import FindingBatch
from domain.registry import RegistrySnapshot
from domain.severity import FindingEvent, Severity
from ingest.decode import DecodedChunk
from store.errors import TRANSIENT_ERRORS
from store.periodic import retry_until_done

log = logging.getLogger(__name__)

detector_seconds = Histogram(
    "yujing_detector_seconds", "Detector engine time per decoded chunk",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
findings_total = Counter("yujing_findings_total", "Findings emitted", ["rule", "severity", "event"])

FindingSink = Callable[[FindingBatch], Awaitable[None]]
SINK_RETRY_FIRST_S = 0.05
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


async def deliver_findings(alerts: FindingSink, findings: FindingBatch) -> None:
    """Hand findings to the alerts stage, retrying while the database is unavailable.

    A finding is a state change the engine will not repeat, so it must never be dropped: while
    the alerts stage cannot commit, the caller waits here (the writers are waiting for the same
    database anyway), and the backlog stays in the broker."""
    await retry_until_done("findings delivery", lambda: alerts(findings), retry_on=(*TRANSIENT_ERRORS, RetryLater),
                           first_s=SINK_RETRY_FIRST_S, max_s=SINK_RETRY_MAX_S)


class Detection:
    """Owns the engine; turns decoded chunks and clock ticks into findings."""

    def __init__(self, engine: Engine, registry: Callable[[], RegistrySnapshot]) -> None:
        self.engine = engine
        self._registry = registry

    def findings(self, chunk: DecodedChunk) -> FindingBatch:
        """The findings of one decoded chunk: its readings and its gateways' status messages."""
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
        _count(findings)
        return findings

    async def run_ticks(self, interval_s: float, clock_us: Clock, alerts: FindingSink) -> None:
        """No-data and gateway-silence checks every ``interval_s``, judged on ``clock_us``."""
        while True:
            await asyncio.sleep(interval_s)
            findings = self.engine.tick(clock_us())
            _count(findings)
            if len(findings):
                await deliver_findings(alerts, findings)
