"""Whole-day false-alarm rate: a simulated day of a fleet's normal traffic through the real
decoder, detectors and alert grading, offline.

Issue 6's target: at most one false alarm per 1,000 sensor-hours of normal fleet traffic. The
drills (bench/drills.py) measure it over their own windows, at whatever time of day the wall clock
says; a simulated day has cold-room defrosts, door openings, the gas demand peaks and the coal
shift changes, so this script replays ``--hours`` (default 24) from a stated local start time
(default 00:00 北京时间) instead.

The pipeline is the service's, in memory, with no broker and no database:

    simulators.Emitter (the fleet as shipped: jitter, clock skew, duplicates, malformed payloads,
    link outages with backlog, calibration sessions; no incident)
      ─▶ ingest.decode.Decoder (the payloads as published, against the fleet's registry)
      ─▶ detectors.Engine (shipped config: update, gateway_status, tick every --tick seconds)
      ─▶ alerts.intake.Intake (default policy: grading, lifecycle with flapping, persistence)

Counted as a monitoring centre sees alerts: one per raise of an alert key (opened, or reopened
after it resolved), not one per finding event; an alert held open by the flapping rule does not
re-raise. A gateway-offline or no-data alert raised while its gateway's link was really down (a
simulated outage, up to a minute after it came back) is a true alert and listed apart. Escalation,
routing, silences and inhibition are not applied: they change who is told, not what is raised.
Deterministic by seed (seed k: emitter seed k, on the k-th day after ``--date``, since every
random element of a reading is a hash of the sensor and its time); the wall time of each replay
is printed.

Run:  .venv/bin/python bench/false_alarms.py                       (24 h from 00:00, seeds 0-2)
      .venv/bin/python bench/false_alarms.py --hours 2 --start 07:00 --seeds 0 --list
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alerts.grading import Grader  # noqa: E402
from bench.drills import parse_seeds  # noqa: E402
from alerts.intake import Intake  # noqa: E402
from alerts.lifecycle import Alert, State  # noqa: E402
from alerts.policy import load_policy  # noqa: E402
from alerts.timers import Timers  # noqa: E402
from detectors import DetectorConfig, Engine  # noqa: E402
from domain.codec import encode_status  # noqa: E402
from domain.messages import FindingBatch, RawMessage  # noqa: E402
from domain.severity import FindingEvent, SubjectKind  # noqa: E402
from ingest.decode import DecodeLimits, Decoder  # noqa: E402
from simulators import build_fleet, load_preset  # noqa: E402
from simulators.drill import FALSE_ALARMS_PER_1000H_TARGET  # noqa: E402
from simulators.gateway import Emitter, OutMessage, StatusChange  # noqa: E402
from simulators.registry import registry_snapshot  # noqa: E402
from simulators.signals import local_hour  # noqa: E402
from yujing.settings import IngestSettings  # noqa: E402

BEIJING = dt.timezone(dt.timedelta(hours=8))
DEFAULT_DATE = "2026-01-05"  # a Monday; the models have no weekly pattern, the date only fixes the epoch
OUTAGE_GRACE_S = 60.0  # a gateway/no-data alert this soon after the link came back is the outage's
RAISES = ("opened", "reopened")


@dataclasses.dataclass(frozen=True, slots=True)
class Raise:
    sim_s: float
    alert_key: str
    rule: str
    grade: str
    subject_kind: str
    kind: str  # sensor kind, or "gateway" / "zone"
    enterprise: str
    subject: str
    outage: bool  # a true alert: its gateway's link was really down

    @property
    def hour(self) -> int:
        return int(local_hour(np.array([self.sim_s]))[0])


@dataclasses.dataclass(slots=True)
class Replay:
    seed: int
    start_s: float
    hours: float
    sensors: int
    readings: int
    findings: int
    raise_events: int  # finding raise events (what a detectors-only replay counts)
    raises: list[Raise]
    wall_s: float

    @property
    def false_alarms(self) -> list[Raise]:
        return [r for r in self.raises if not r.outage]

    @property
    def sensor_hours(self) -> float:
        return self.sensors * self.hours


class Alerts:
    """Findings → alerts in memory, through the service's own grading and lifecycle steps."""

    def __init__(self, intake: Intake, registry) -> None:
        self.intake = intake
        self.timers = Timers(intake.policy, intake.grader, intake.latch)
        self.registry = registry
        self.alerts: dict[str, Alert] = {}

    def handle(self, findings: FindingBatch, now_us: int) -> list[Alert]:
        raised = []
        for f in sorted(findings.rows(), key=lambda f: f.ts_us):
            ident = self.intake.identity(f, self.registry)  # one incident per place and cause
            alert = self.alerts.get(ident)
            if alert is not None and alert.state is not State.CLOSED and not self.intake.joins(alert, f, now_us):
                alert.state = State.CLOSED  # superseded: a new incident after the fold window
            if self.intake.is_replay(alert, f):
                continue
            if alert is None or alert.state is State.CLOSED:
                opened = self.intake.open(f, self.registry, now_us)
                if opened is not None:
                    self.alerts[ident] = opened[0]
                    raised.append(opened[0])
                continue
            change = self.intake.apply(alert, f, now_us, self.registry)
            if change is not None and change.action in RAISES:
                raised.append(alert)
        return raised

    def tick(self, now_us: int) -> None:
        for a in self.alerts.values():
            if a.state is not State.CLOSED:
                self.timers.settle(a, now_us)
                self.timers.auto_close(a, now_us)


def replay(fleet, registry, policy, config: DetectorConfig, start_s: float, hours: float, seed: int,
           step_s: float, tick_s: float) -> Replay:
    t0 = time.perf_counter()
    limits = IngestSettings()
    decoder = Decoder(registry, DecodeLimits(limits.max_payload_bytes, limits.dead_letter_payload_bytes,
                                             limits.clock_skew_tolerance_s))
    engine = Engine(config)
    engine.set_registry(registry)
    alerts = Alerts(Intake(policy, Grader(policy.grading)), registry)
    emitter = Emitter(fleet, start_s, seed)
    gw_code = {i + 1: g.id for i, (_, g) in enumerate(fleet.gateways)}
    down_since: dict[int, float] = {}
    outages: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    end_s = start_s + hours * 3600.0
    readings = findings_n = raise_events = 0
    raised: list[tuple[float, Alert]] = []
    t, next_tick = start_s, start_s + tick_s
    while t < end_s:
        t = min(t + step_s, end_s)
        now_us = int(t * 1e6)
        msgs = []
        for ev in emitter.step(t):
            if isinstance(ev, OutMessage):
                msgs.append(RawMessage(ev.topic, ev.payload, 0, now_us))
            elif isinstance(ev, StatusChange):
                msgs.append(RawMessage(ev.topic, encode_status(ev.online), 0, now_us, retain=True))
                if ev.online:
                    outages[ev.gateway + 1].append((down_since.pop(ev.gateway + 1, start_s), t))
                else:
                    down_since.setdefault(ev.gateway + 1, t)
        parts = []
        if msgs:
            chunk = decoder.decode(msgs)
            readings += len(chunk.readings)
            if len(chunk.readings):
                parts.append(engine.update(chunk.readings))
            if chunk.statuses:
                ids = registry.gateway_ids
                parts.append(engine.gateway_status(
                    np.array([ids.get((s.enterprise, s.gateway), 0) for s in chunk.statuses], dtype=np.int32),
                    np.array([s.online for s in chunk.statuses], dtype=bool),
                    np.array([s.received_us for s in chunk.statuses], dtype=np.int64)))
        while next_tick <= t:
            parts.append(engine.tick(int(next_tick * 1e6)))
            next_tick += tick_s
        found = FindingBatch.concat(parts)
        if len(found):
            findings_n += len(found)
            raise_events += int((found.event == FindingEvent.RAISE).sum())
            raised += [(t, a) for a in alerts.handle(found, now_us)]
        alerts.tick(now_us)
    for g, since in down_since.items():
        outages[g].append((since, end_s))

    def outage(a: Alert, at_s: float) -> bool:
        if not (a.subject_kind == SubjectKind.GATEWAY or a.rule.startswith("nodata")):
            return False
        return any(lo <= at_s <= hi + OUTAGE_GRACE_S for lo, hi in outages.get(a.gateway or 0, ()))

    out = []
    for at_s, a in raised:
        s = registry.sensors.get(a.subject) if a.subject_kind == SubjectKind.SENSOR else None
        kind = s.kind if s else SubjectKind(a.subject_kind).name.lower()
        code = s.code if s else (gw_code.get(a.subject, str(a.subject)) if a.subject_kind == SubjectKind.GATEWAY
                                 else registry.zones[a.subject].code if a.subject in registry.zones else str(a.subject))
        out.append(Raise(at_s, a.alert_key, a.rule, a.grade.id, SubjectKind(a.subject_kind).name.lower(), kind,
                         a.enterprise or "", code, outage(a, at_s)))
    return Replay(seed, start_s, hours, fleet.n_sensors, readings, findings_n, raise_events, out,
                  time.perf_counter() - t0)


def _start_s(date: str, hhmm: str) -> float:
    h, _, m = hhmm.partition(":")
    day = dt.date.fromisoformat(date)
    return dt.datetime(day.year, day.month, day.day, int(h), int(m or 0), tzinfo=BEIJING).timestamp()


def _rate(n: int, hours: float) -> str:
    return f"{1000.0 * n / hours:.2f}" if hours else "—"


def report(runs: list[Replay]) -> str:
    hours = sum(r.sensor_hours for r in runs)
    fa = [a for r in runs for a in r.false_alarms]
    lines = ["| seed | readings | findings | finding raises | alerts raised | outage alerts | false alarms "
             "| per 1,000 sensor-h | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.seed} | {r.readings:,} | {r.findings:,} | {r.raise_events:,} | {len(r.raises)} "
                     f"| {len(r.raises) - len(r.false_alarms)} | {len(r.false_alarms)} "
                     f"| {_rate(len(r.false_alarms), r.sensor_hours)} | {r.wall_s:.0f} |")
    lines += ["", f"**{len(fa)} false alarms over {hours:,.0f} sensor-hours = {_rate(len(fa), hours)} per 1,000 "
              f"sensor-hours** (target ≤ {FALSE_ALARMS_PER_1000H_TARGET:g}); "
              f"{'met' if 1000.0 * len(fa) / max(hours, 1e-9) <= FALSE_ALARMS_PER_1000H_TARGET else 'NOT met'}"]
    for title, key in (("by rule", lambda a: f"{a.rule} ({a.grade})"), ("by sensor kind", lambda a: a.kind)):
        c = collections.Counter(key(a) for a in fa)
        lines.append(f"- {title}: " + (", ".join(f"{k} ×{n} ({_rate(n, hours)})" for k, n in c.most_common()) or "none"))
    by_hour = collections.Counter(a.hour for a in fa)
    per_hour = _sensor_hours_by_hour(runs)
    lines.append("- by hour of day (北京时间; per 1,000 sensor-hours of that hour): " + (
        ", ".join(f"{h:02d}h ×{by_hour[h]} ({_rate(by_hour[h], per_hour[h])})" for h in sorted(by_hour)) or "none"))
    return "\n".join(lines)


def _sensor_hours_by_hour(runs: list[Replay]) -> np.ndarray:
    """float64[24]: sensor-hours of traffic replayed in each local hour of day."""
    out = np.zeros(24)
    for r in runs:
        minutes = r.start_s + 60.0 * np.arange(int(round(r.hours * 60))) + 30.0
        out += np.bincount(local_hour(minutes).astype(np.int64), minlength=24)[:24] / 60.0 * r.sensors
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="jiangxi-demo")
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours per seed")
    ap.add_argument("--date", default=DEFAULT_DATE, help="simulated local date (北京时间)")
    ap.add_argument("--start", default="00:00", help="simulated local start time, HH:MM 北京时间")
    ap.add_argument("--seeds", default="0-2", help="e.g. 0-4 or 0,3,7; seed k replays the k-th day after --date")
    ap.add_argument("--step", type=float, default=5.0, help="simulated seconds per emitter step (one decoded chunk)")
    ap.add_argument("--tick", type=float, default=1.0, help="simulated seconds between detector ticks")
    ap.add_argument("--list", action="store_true", help="also list every false alarm")
    ap.add_argument("--json", type=Path, help="also write every raise here")
    args = ap.parse_args()

    fleet = build_fleet(load_preset(args.preset))
    registry = registry_snapshot(fleet)
    policy = load_policy(None)
    config = DetectorConfig.default()
    start_s = _start_s(args.date, args.start)
    print(f"fleet {args.preset}: {fleet.n_sensors} sensors, {fleet.n_gateways} gateways; {args.hours:g} h from "
          f"{args.date} {args.start} 北京时间; seeds {args.seeds}; shipped detectors and alerts policy", flush=True)
    runs = []
    for seed in parse_seeds(args.seeds):
        # Every random element of a reading is a hash of the sensor and its time, and the emitter's
        # seed only draws clock skews: seed k replays the k-th day after --date, so seeds differ in
        # noise, door openings, outages and calibrations, not only in skews.
        r = replay(fleet, registry, policy, config, start_s + seed * 86400.0, args.hours, seed, args.step, args.tick)
        runs.append(r)
        day = dt.datetime.fromtimestamp(r.start_s, BEIJING).strftime("%Y-%m-%d %H:%M")
        print(f"seed {seed} (from {day}): {r.readings:,} readings, {len(r.raises)} alerts raised, {len(r.false_alarms)} false "
              f"({_rate(len(r.false_alarms), r.sensor_hours)} per 1,000 sensor-h) in {r.wall_s:.0f} s wall", flush=True)
        if args.list:
            for a in r.false_alarms:
                t = dt.datetime.fromtimestamp(a.sim_s, BEIJING).strftime("%H:%M:%S")
                print(f"  {t} {a.enterprise}/{a.subject} {a.kind} {a.rule} {a.grade}")
    print()
    print(report(runs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([{**{k: v for k, v in dataclasses.asdict(r).items() if k != "raises"},
                                          "raises": [dataclasses.asdict(a) for a in r.raises]} for r in runs],
                                        ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
