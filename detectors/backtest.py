"""Backtest: run the detectors over recorded readings, one row at a time, strictly causally.

:func:`run_backtest` takes one sensor's history (``timestamp,value``): without a kind, only the
kind-free statistical detectors run (anomaly score, stuck); with one, every detector that needs
neither a clock nor a fleet. :func:`run_fleet_backtest` takes many sensors of a registry (the
long format ``timestamp,enterprise,sensor,value``) and runs the full detector set, no-data,
gateways and compound rules included, with the data's own timestamps as the clock. Both are
pure: rows are fed to a fresh engine one per update in file order, so the output for row i
depends only on rows 0..i (truncating the input leaves earlier rows identical).
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
from domain.severity import FindingEvent, Severity, SubjectKind

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


@dataclasses.dataclass(frozen=True, slots=True)
class FleetRow:
    """One output row: an input row's own (``own``), or a finding about another subject that came
    with input row ``row`` (a no-data raised by the clock, a gateway, a zone's compound rule).
    ``subject`` is the sensor's code, ``gateway:CODE`` or ``zone:CODE``."""

    row: int
    own: bool
    ts_us: int
    enterprise: str
    subject: str
    score: str
    level: str
    event: str
    detector: str


@dataclasses.dataclass(frozen=True, slots=True)
class FleetSummary:
    raises: dict[tuple[str, str], int]  # (rule, severity name) -> raises
    sensor_hours: float  # Σ over sensors of the span between their first and last reading

    @property
    def raises_per_1000_sensor_hours(self) -> float:
        return 1000.0 * sum(self.raises.values()) / self.sensor_hours if self.sensor_hours > 0 else math.nan


def _subject_name(snapshot: RegistrySnapshot, kind: int, subject: int) -> tuple[str, str]:
    if kind == SubjectKind.SENSOR:
        s = snapshot.sensors.get(subject)
        return (s.enterprise, s.code) if s else ("", str(subject))
    if kind == SubjectKind.ZONE:
        z = snapshot.zones.get(subject)
        return (z.enterprise, f"zone:{z.code}") if z else ("", f"zone:{subject}")
    g = snapshot.gateways.get(subject)
    return (g.enterprise, f"gateway:{g.code}") if g else ("", f"gateway:{subject}")


def run_fleet_backtest(snapshot: RegistrySnapshot, sensor: np.ndarray, ts_us: np.ndarray, values: np.ndarray,
                       config: DetectorConfig | None = None, tick_s: float = 1.0) -> tuple[list[FleetRow], FleetSummary]:
    """Run the full detector set over many sensors' readings in file order, one reading per
    update, the clock at the latest timestamp seen (ticked before a reading whenever it has moved
    ``tick_s`` on), strictly causally: the rows of reading i depend only on readings 0..i.
    sensor: (n,) int32 dense ids of ``snapshot``; ts_us: (n,) int64; values: (n,) float64."""
    engine = Engine(config or DetectorConfig.default())
    engine.set_registry(snapshot)
    active: dict[tuple[int, int], dict[str, int]] = {}
    rows: list[FleetRow] = []
    raises: dict[tuple[str, str], int] = {}
    first_ts: dict[int, int] = {}
    last_ts: dict[int, int] = {}
    clock = None
    q = np.zeros(1, dtype=np.int16)
    z = np.zeros(1, dtype=np.int64)
    tick_us = int(tick_s * 1e6)
    for i in range(ts_us.shape[0]):
        sid, t = int(sensor[i]), int(ts_us[i])
        found = []
        if clock is None:
            clock = t
            found.append(engine.tick(t))
        elif t >= clock + tick_us:
            clock = t
            found.append(engine.tick(t))
        before = engine.base.stat_ts[sid]
        found.append(engine.update(ReadingBatch(sensor=sensor[i:i + 1], ts_us=ts_us[i:i + 1], value=values[i:i + 1],
                                                quality=q, device_ts_us=z, received_us=z)))
        first_ts.setdefault(sid, t)
        last_ts[sid] = max(last_ts.get(sid, t), t)
        scored = engine.base.stat_ts[sid] != before and "anomaly" in engine.enabled
        by_subject: dict[tuple[int, int], tuple[list[str], list[str]]] = {(int(SubjectKind.SENSOR), sid): ([], [])}
        for f in found:
            for kind, subj, rule, ev, sev in zip(f.subject_kind.tolist(), f.subject.tolist(), f.rule.tolist(),
                                                 f.event.tolist(), f.severity.tolist(), strict=True):
                key = (kind, subj)
                held = active.setdefault(key, {})
                if ev == FindingEvent.CLEAR:
                    held.pop(rule, None)
                else:
                    held[rule] = sev
                if ev == FindingEvent.RAISE:
                    k = (rule, Severity(sev).name.lower())
                    raises[k] = raises.get(k, 0) + 1
                evs, dets = by_subject.setdefault(key, ([], []))
                evs.append(FindingEvent(ev).name.lower())
                dets.append(rule)
        for (kind, subj), (evs, dets) in by_subject.items():
            mine = kind == SubjectKind.SENSOR and subj == sid
            held = active.get((kind, subj), {})
            ent, name = _subject_name(snapshot, kind, subj)
            rows.append(FleetRow(i, mine, t, ent, name,
                                 f"{float(engine.scores[sid]):.4f}" if mine and scored else "",
                                 Severity(max(held.values())).name.lower() if held else "",
                                 ";".join(evs), ";".join(dets)))
    hours = sum(last_ts[s] - first_ts[s] for s in first_ts) / 3.6e9
    return rows, FleetSummary(dict(sorted(raises.items())), hours)
