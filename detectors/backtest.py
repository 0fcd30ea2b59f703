"""Backtest: run the detectors over one sensor's history, one row at a time, strictly causally.

:func:`run_backtest` is pure: rows are fed to a fresh engine one per update in file order, so
the output for row i depends only on rows 0..i (truncating the input leaves earlier rows
identical). Without a kind, only the kind-free statistical detectors run (anomaly score, stuck).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np

from detectors.config import DetectorConfig
from detectors.engine import Engine
from domain.catalog import get_kind
from domain.messages import RULE_DTYPE, ReadingBatch
from domain.registry import GatewayInfo, RegistrySnapshot, SensorInfo, SensorTable, ZoneInfo
from domain.severity import FindingEvent, Severity

KIND_FREE = frozenset({"anomaly", "stuck"})
NO_CLOCK = frozenset({"nodata", "compound"})  # need a clock or a fleet: never in a backtest


class TimestampError(ValueError):
    pass


def parse_timestamp(text: str) -> int:
    """ISO-8601 (naive times are taken as UTC) or epoch seconds / milliseconds / microseconds
    (by magnitude: < 1e11 s, < 1e14 ms, else µs) → µs since the epoch."""
    s = text.strip()
    try:
        x = float(s)
    except ValueError:
        try:
            t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise TimestampError(f"timestamp {text!r} is neither ISO-8601 nor epoch seconds/ms") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not math.isfinite(x):
        raise TimestampError(f"timestamp {text!r} is not finite")
    if abs(x) < 1e11:
        return round(x * 1e6)
    if abs(x) < 1e14:
        return round(x * 1e3)
    return int(x)


def _snapshot(kind: str, location_class: str) -> RegistrySnapshot:
    k = get_kind(kind) if kind else None
    table = SensorTable(
        active=np.array([False, True]),
        gateway=np.array([0, 1], dtype=np.int32),
        zone=np.array([0, 1], dtype=np.int32),
        kind=np.array(["", kind], dtype=RULE_DTYPE),
        location_class=np.array(["", location_class], dtype=RULE_DTYPE),
        expected_interval_s=np.array([0.0, k.expected_interval_s if k else 60.0]),
        range_min=np.array([np.nan, k.range_min if k else np.nan]),
        range_max=np.array([np.nan, k.range_max if k else np.nan]),
        retention_s=np.array([0.0, 0.0]),
    )
    return RegistrySnapshot(
        version=1, regions={}, enterprises={},
        gateways={1: GatewayInfo(1, "backtest", "G", 60.0, True)},
        zones={1: ZoneInfo(1, "backtest", "Z", "zone", ())},
        sensors={1: SensorInfo(1, "backtest", "S", 1, 1, kind, k.unit if k else "", "", location_class, {})},
        table=table, gateway_ids={}, sensor_ids={},
    )


@dataclasses.dataclass(frozen=True, slots=True)
class BacktestRows:
    """One entry per input row: score ("" where the row was not scored), level (severity name of
    the highest finding active after the row, "" if none), event and detector (";"-joined when a
    row changes several findings)."""

    score: list[str]
    level: list[str]
    event: list[str]
    detector: list[str]


def run_backtest(ts_us: np.ndarray, values: np.ndarray, kind: str | None = None,
                 location_class: str | None = None, config: DetectorConfig | None = None) -> BacktestRows:
    """Run the detectors over one series. ts_us: (n,) int64; values: (n,) float64 (NaN = missing)."""
    base = config or DetectorConfig.default()
    enabled = (base.enabled - NO_CLOCK) if kind else (base.enabled & KIND_FREE)
    cfg = dataclasses.replace(base, enabled=frozenset(enabled), compound=())
    engine = Engine(cfg)
    engine.set_registry(_snapshot(kind or "", location_class or ""))
    active: dict[str, int] = {}
    out = BacktestRows([], [], [], [])
    one = np.ones(1, dtype=np.int32)
    q = np.zeros(1, dtype=np.int16)
    z = np.zeros(1, dtype=np.int64)
    for i in range(ts_us.shape[0]):
        before = engine.base.stat_ts[1]
        f = engine.update(ReadingBatch(sensor=one, ts_us=ts_us[i:i + 1], value=values[i:i + 1], quality=q,
                                       device_ts_us=z, received_us=z))
        events, dets = [], []
        for rule, ev, sev in zip(f.rule.tolist(), f.event.tolist(), f.severity.tolist(), strict=True):
            if ev == FindingEvent.CLEAR:
                active.pop(rule, None)
            else:
                active[rule] = sev
            events.append(FindingEvent(ev).name.lower())
            dets.append(rule)
        scored = engine.base.stat_ts[1] != before and "anomaly" in enabled
        out.score.append(f"{float(engine.scores[1]):.4f}" if scored else "")
        out.level.append(Severity(max(active.values())).name.lower() if active else "")
        out.event.append(";".join(events))
        out.detector.append(";".join(dets))
    return out
