"""Rebuild detector state after a restart by replaying recent readings silently.

The replay emits nothing, so a restart raises no burst of findings, but every condition still
holding at the end of the replay (a methane excursion, a stuck sensor, an anomaly) is active
again — :meth:`Engine.active` exports them for downstream to reconcile with its open alerts.
Readings redelivered by the broker after the restart are then late for the statistics (their
ts is not newer) and leave the setpoint state unchanged, so they raise nothing new either.
The readings are handed in (``store.telemetry.recent_readings`` reads them).
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from detectors.engine import Engine
from domain.messages import ReadingBatch


async def rebuild(engine: Engine, batches: AsyncIterable[ReadingBatch]) -> int:
    """Replay ``batches`` (oldest first) into ``engine`` (already given its registry) without
    emitting findings; returns the number of readings replayed."""
    total = 0
    async for batch in batches:
        engine.replay(batch)
        total += len(batch)
    return total
