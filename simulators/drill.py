"""Drills: run one incident against a live deployment and score what it raised (``yujing drill``).

A drill publishes a fleet (a preset or a fleet file) with one scenario bound to it by seed, listens
to every alert the service publishes on ``yj/v1/+/+/alerts`` (the default policy sends every alert
change there) and scores the alerts against the scenario's :class:`GroundTruth`:

- **detected**: an alert on the incident (a sensor the incident changes, its zone, its gateway)
  opens after the onset and before the observation ends (one before the onset is scored like any
  other alert in the fleet);
- **delay**: from the reference time (the first milestone crossing, or the onset for sensor and
  gateway faults) to the first incident alert, and to the first alert at the expected grade;
- **grade**: the highest grade raised on the incident by the deadline, against the expected one
  (higher is reported, and passes: the default policy may escalate a persisting alarm);
- **false alarms**: alerts opened anywhere else in the fleet (outside the incident's zone and the
  zones adjacent to it), per 1,000 sensor-hours of normal traffic. Gateway-offline and no-data
  alerts on a gateway whose link the fleet really dropped (a simulated outage: its ``offline``
  status is heard on ``yj/v1/+/+/status``) are true alerts and listed apart; so are alerts opened
  after the fleet stopped publishing (its gateways announce ``offline`` as the drill ends).

Simulated time runs ``speed`` times faster than the wall clock. Readings carry simulated
timestamps, so the run starts far enough in the past that the simulated clock never passes the
wall clock (ingest shifts readings from the future); alerts are stamped by the service with wall
time, so each alert's receipt is mapped back to simulated time (``sim = sim0 + (wall − wall0) ·
speed``). Pipeline latency is therefore counted ``speed`` times over: the delays reported are an
upper bound, never flattering.

Scoring (:func:`score`) is pure: it takes the ground truth and the alerts seen and can be tested
without a broker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from domain.codec import encode_status
from domain.errors import RetryLater
from simulators.fleet import Fleet
from simulators.publisher import PublisherOptions, parse_mqtt_url
from simulators.run import RunOptions, RunReport, run_simulation
from simulators.scenarios import GRADES, GroundTruth, ScenarioSpec, bind

log = logging.getLogger(__name__)

ALERTS_FILTER = "yj/v1/+/+/alerts"
STATUS_FILTER = "yj/v1/+/+/status"
FIRING_STATES = frozenset({"firing", "acknowledged", "latched"})
FALSE_ALARMS_PER_1000H_TARGET = 1.0  # issue 6: at most one false alarm per 1,000 sensor-hours
MAX_ALERT_MESSAGES = 200_000  # the listener keeps at most this many (the rest are counted, not kept)


@dataclasses.dataclass(frozen=True, slots=True)
class DrillOptions:
    speed: float = 1.0  # simulated seconds per wall second
    grace_s: float = 30.0  # simulated seconds observed after the deadline
    stop_when_scored: bool = False  # stop as soon as the expected grade is seen (tests)
    linger_s: float = 5.0  # wall seconds to keep listening after the publisher stops
    connect_timeout_s: float = 10.0
    connections: int | None = None  # None: one MQTT client per gateway (real Last Wills)


@dataclasses.dataclass(frozen=True, slots=True)
class AlertSeen:
    """One message from ``yj/v1/{e}/{g}/alerts``, parsed at the edge (alerts.mqtt_schema)."""

    received_s: float  # wall clock, epoch seconds
    sim_s: float  # the same instant in simulated time
    alert_key: str
    alert_id: int
    version: int
    state: str
    grade: str
    rule: str
    subject_kind: str
    subject_code: str
    enterprise: str
    zone: str
    gateway: str

    @property
    def firing(self) -> bool:
        return self.state in FIRING_STATES

    @classmethod
    def parse(cls, payload: bytes, received_s: float, sim_s: float) -> AlertSeen | None:
        try:
            d = json.loads(payload)
            subject = d.get("subject") or {}
            return cls(received_s, sim_s, str(d["alert_key"]), int(d.get("id") or 0), int(d.get("version") or 0),
                       str(d["state"]), str(d["grade"]), str(d.get("rule") or ""), str(subject.get("kind") or ""),
                       str(subject.get("code") or ""), str(d.get("enterprise") or ""), str(d.get("zone") or ""),
                       str(d.get("gateway") or ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("alert message skipped (not yujing.alert/1): %r", payload[:200])
            return None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class AlertListener:
    """A paho client on its own network thread, recording every alert message with its receipt time.

    Messages cross from paho's thread through one lock; at most :data:`MAX_ALERT_MESSAGES` are
    kept, the rest are counted in ``dropped``.
    """

    def __init__(self, mqtt_url: str, topic_filter: str = ALERTS_FILTER, clock: Callable[[], float] = time.time) -> None:
        self.host, self.port, user, password = parse_mqtt_url(mqtt_url)
        self.topic_filter = topic_filter
        self.clock = clock
        self._lock = threading.Lock()
        self._got: list[tuple[float, bytes]] = []
        self.dropped = 0
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"yj-drill-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311, clean_session=True)
        if user:
            self.client.username_pw_set(user, password)
        self.statuses: list[tuple[float, str, str, bool]] = []  # (received, enterprise, gateway, online)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(self.topic_filter, 1), (STATUS_FILTER, 1)])
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, msg) -> None:
        now = self.clock()
        if msg.topic.endswith("/status"):  # a retained 'offline' (a gateway down as the drill starts) counts too
            parts = msg.topic.split("/")
            if len(parts) == 5:
                with self._lock:
                    self.statuses.append((now, parts[2], parts[3], msg.payload == encode_status(True)))
            return
        with self._lock:
            if len(self._got) < MAX_ALERT_MESSAGES:
                self._got.append((now, msg.payload))
            else:
                self.dropped += 1

    def start(self, timeout_s: float = 10.0) -> AlertListener:
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise RetryLater(f"MQTT broker {self.host}:{self.port} is not reachable ({exc})") from exc
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.close()
            raise RetryLater(f"no SUBACK for {self.topic_filter} from {self.host}:{self.port} within {timeout_s} s")
        return self

    def messages(self) -> list[tuple[float, bytes]]:
        with self._lock:
            return list(self._got)

    def offline_gateways(self) -> dict[tuple[str, str], float]:
        """(enterprise, gateway) → first time it was heard offline (a Last Will, a clean offline, or
        the retained status of a gateway already down when the drill started)."""
        with self._lock:
            out: dict[tuple[str, str], float] = {}
            for t, e, g, online in self.statuses:
                if not online:
                    out.setdefault((e, g), t)
            return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> AlertListener:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass(frozen=True, slots=True)
class DrillScore:
    scenario: str
    seed: int
    enterprise: str
    zone: str | None
    reference: str  # "dangerous" (first milestone) or "onset" (faults)
    reference_s: float
    deadline_s: float
    expected_grade: str
    raised_grade: str | None  # highest grade on the incident by the deadline
    detected: bool  # any incident alert firing before the observation ended
    grade_ok: bool  # raised ≥ expected by the deadline
    in_time: bool  # the expected grade (or higher) was seen by the deadline
    delay_s: float | None  # reference → first incident alert (simulated seconds)
    grade_delay_s: float | None  # reference → first alert at the expected grade or higher
    incident_alerts: tuple[dict, ...]
    related_alerts: tuple[dict, ...]  # same or adjacent zone, not on the incident's sensors
    outage_alerts: tuple[dict, ...]  # gateways the fleet really took offline (simulated link outages)
    false_alarms: tuple[dict, ...]
    normal_sensor_hours: float
    observed_sim_s: float

    @property
    def passed(self) -> bool:
        return self.detected and self.grade_ok and self.in_time

    @property
    def false_alarms_per_1000h(self) -> float:
        return 1000.0 * len(self.false_alarms) / self.normal_sensor_hours if self.normal_sensor_hours > 0 else 0.0

    @property
    def verdict(self) -> str:
        if not self.detected:
            return "missed"
        if not self.grade_ok:
            return "under-graded"
        if not self.in_time:
            return "late"
        return "passed"

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(passed=self.passed, verdict=self.verdict, false_alarms_per_1000h=round(self.false_alarms_per_1000h, 3))
        return d


def _grade_index(grade: str | None) -> int:
    return GRADES.index(grade) if grade in GRADES else -1


def _openings(alerts: Sequence[AlertSeen]) -> list[AlertSeen]:
    """The messages that open (or reopen, or raise the grade of) an alert, in receipt order.

    An alert already open when the drill started shows up first as an update or a resolve; it is
    counted only when it fires again after having been seen resolved.
    """
    last: dict[str, AlertSeen] = {}
    out = []
    for a in sorted(alerts, key=lambda a: a.received_s):
        prev = last.get(a.alert_key)
        if a.firing and (prev is None or not prev.firing or _grade_index(a.grade) > _grade_index(prev.grade)):
            out.append(a)
        last[a.alert_key] = a
    return out


def score(truth: GroundTruth, fleet: Fleet, alerts: Sequence[AlertSeen], observed_sim_s: float,
          sim_span_s: float, traffic_end_sim_s: float | None = None,
          offline: dict[tuple[str, str], float] | None = None) -> DrillScore:
    """Score the alerts seen against the ground truth.

    ``observed_sim_s``: the simulated time the observation ended; ``sim_span_s``: simulated
    seconds of fleet traffic (for sensor-hours); ``traffic_end_sim_s``: when the fleet stopped
    publishing — alerts elsewhere opened after it (gateways going offline as the drill ends) are
    the drill's own doing and not false alarms; ``offline``: (enterprise, gateway) → sim time the
    gateway went offline (the fleet's simulated link outages): a gateway or no-data alert on a
    gateway that really went offline before it is a true alert, not a false one.
    """
    offline = offline or {}
    adjacent = {truth.zone} if truth.zone else set()
    ent_index = next(i for i, e in enumerate(fleet.enterprises) if e.id == truth.enterprise)
    for ei, z in fleet.zones:
        if ei == ent_index and (z.id == truth.zone or truth.zone in z.adjacent):
            adjacent.add(z.id)
            adjacent.update(z.adjacent)
    sensors = set(truth.sensors)
    incident, related, outage, false = [], [], [], []
    for a in _openings(alerts):
        mine = a.enterprise == truth.enterprise
        on_incident = mine and a.sim_s >= truth.onset_s and (
            (a.subject_kind == "sensor" and a.subject_code in sensors)
            or (a.subject_kind == "gateway" and truth.gateway is not None and a.subject_code == truth.gateway)
            or (a.subject_kind == "zone" and a.subject_code == truth.zone))
        if on_incident:
            incident.append(a)
        elif mine and (a.zone in adjacent or (a.subject_kind == "zone" and a.subject_code in adjacent)):
            related.append(a)
        elif ((a.subject_kind == "gateway" or a.rule.startswith("nodata"))
              and offline.get((a.enterprise, a.gateway or a.subject_code), float("inf")) <= a.sim_s):
            outage.append(a)
        elif traffic_end_sim_s is None or a.sim_s <= traffic_end_sim_s:
            false.append(a)
    reference, ref_s = ("dangerous", truth.dangerous_s) if truth.dangerous_s is not None else ("onset", truth.onset_s)
    want = _grade_index(truth.expected_grade)
    by_deadline = [a for a in incident if a.sim_s <= truth.deadline_s]
    raised = max((a.grade for a in by_deadline), key=_grade_index, default=None)
    at_grade = [a for a in incident if _grade_index(a.grade) >= want]
    first = min((a.sim_s for a in incident), default=None)
    first_grade = min((a.sim_s for a in at_grade), default=None)
    if raised is None and incident:  # detected only after the deadline: report what it reached
        raised = max((a.grade for a in incident), key=_grade_index)
    n_normal = fleet.n_sensors - len(sensors)
    return DrillScore(
        scenario=truth.scenario, seed=truth.seed, enterprise=truth.enterprise, zone=truth.zone,
        reference=reference, reference_s=ref_s, deadline_s=truth.deadline_s, expected_grade=truth.expected_grade,
        raised_grade=raised, detected=bool(incident), grade_ok=_grade_index(raised) >= want,
        in_time=first_grade is not None and first_grade <= truth.deadline_s,
        delay_s=None if first is None else first - ref_s,
        grade_delay_s=None if first_grade is None else first_grade - ref_s,
        incident_alerts=tuple(_brief(a) for a in incident), related_alerts=tuple(_brief(a) for a in related),
        outage_alerts=tuple(_brief(a) for a in outage),
        false_alarms=tuple(_brief(a) for a in false), normal_sensor_hours=n_normal * sim_span_s / 3600.0,
        observed_sim_s=observed_sim_s,
    )


def _brief(a: AlertSeen) -> dict[str, Any]:
    return {"alert_key": a.alert_key, "grade": a.grade, "state": a.state, "rule": a.rule, "enterprise": a.enterprise,
            "subject": f"{a.subject_kind}:{a.subject_code}", "zone": a.zone, "gateway": a.gateway, "sim_s": round(a.sim_s, 3),
            "received_s": round(a.received_s, 3)}


@dataclasses.dataclass(slots=True)
class DrillReport:
    truth: GroundTruth
    score: DrillScore
    run: RunReport | None
    speed: float
    sim0_s: float
    wall0_s: float
    alert_messages: int
    dropped_messages: int

    def as_dict(self) -> dict[str, Any]:
        out = {"score": self.score.as_dict(), "ground_truth": self.truth.as_dict(), "speed": self.speed,
               "sim_start_s": self.sim0_s, "wall_start_s": self.wall0_s, "alert_messages": self.alert_messages,
               "dropped_alert_messages": self.dropped_messages}
        if self.run is not None:
            p = self.run.publisher
            out["publisher"] = {"messages": p.published, "acked": p.acked, "readings": p.readings,
                                "wall_s": round(self.run.wall_s, 3), "max_lag_s": round(self.run.max_lag_s, 3),
                                "drained": self.run.drained}
        return out


def plan(spec: ScenarioSpec, fleet: Fleet, seed: int, speed: float, grace_s: float,
         wall_now_s: float) -> tuple[float, GroundTruth, float]:
    """(simulated start, ground truth, simulated span) so that simulated time never passes the wall clock."""
    span = 1800.0
    for _ in range(3):  # crossing times depend a little on the start (shifts, daily curves)
        lead = span * (1.0 - 1.0 / speed) + 5.0 if speed > 1.0 else 0.0
        sim0 = wall_now_s - lead
        truth = bind(spec, fleet, sim0, seed).truth
        span = truth.deadline_s - sim0 + grace_s
    return sim0, truth, span


def run_drill(fleet: Fleet, spec: ScenarioSpec, mqtt_url: str, *, seed: int = 0,
              options: DrillOptions = DrillOptions(), stop: threading.Event | None = None,
              progress: Callable[[float, float], None] | None = None) -> DrillReport:
    """Publish the fleet with the scenario until its deadline (+ grace) and score the alerts seen.

    Blocking; call from a thread beside an event loop (``asyncio.to_thread``). ``progress`` gets
    (simulated seconds done, simulated seconds planned).
    """
    stop = stop or threading.Event()
    listener = AlertListener(mqtt_url).start(options.connect_timeout_s)
    try:
        wall0 = time.time()
        sim0, truth, span = plan(spec, fleet, seed, options.speed, options.grace_s, wall0)
        to_sim = lambda w: sim0 + (w - wall0) * options.speed  # noqa: E731
        end_sim = sim0 + span
        result: dict[str, Any] = {}
        run_stop = threading.Event()

        def publish() -> None:
            try:
                result["report"] = run_simulation(
                    fleet, PublisherOptions(mqtt_url=mqtt_url, connections=options.connections,
                                            connect_timeout_s=options.connect_timeout_s),
                    scenarios=[spec], seed=seed, stop=run_stop, clock=_first_call_at(wall0),
                    options=RunOptions(speed=options.speed, start_s=sim0, duration_s=span / options.speed,
                                       drain_s=5.0))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                result["error"] = exc

        runner = threading.Thread(target=publish, name="drill-publisher", daemon=True)
        runner.start()
        want = _grade_index(truth.expected_grade)
        while runner.is_alive():
            runner.join(0.25)
            now_sim = to_sim(time.time())
            if progress:
                progress(min(now_sim, end_sim) - sim0, span)
            if stop.is_set():
                run_stop.set()
            if options.stop_when_scored:
                seen = [AlertSeen.parse(p, w, to_sim(w)) for w, p in listener.messages()]
                s = score(truth, fleet, [a for a in seen if a], now_sim, now_sim - sim0)
                if s.detected and _grade_index(s.raised_grade) >= want:
                    run_stop.set()
        if "error" in result:
            raise result["error"]
        stop.wait(options.linger_s)  # alerts still in the pipeline
        observed = to_sim(time.time())
        seen = [a for a in (AlertSeen.parse(p, w, to_sim(w)) for w, p in listener.messages()) if a is not None]
        report = result.get("report")
        sim_span = report.sim_s if report is not None else min(observed, end_sim) - sim0
        traffic_end = to_sim(wall0 + report.run_s) if report is not None else None
        offline = {k: to_sim(t) for k, t in listener.offline_gateways().items()}
        return DrillReport(truth, score(truth, fleet, seen, observed, sim_span, traffic_end, offline), report,
                           options.speed, sim0, wall0, len(seen), listener.dropped)
    finally:
        listener.close()


def _first_call_at(wall0: float) -> Callable[[], float]:
    """A clock whose first reading is ``wall0``, so run_simulation's start matches the drill's mapping."""
    first = [True]

    def clock() -> float:
        if first[0]:
            first[0] = False
            return wall0
        return time.time()

    return clock


# ---- the printed report --------------------------------------------------------------------------
_GRADE_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色", None: "无"}
_VERDICT_ZH = {"passed": "通过", "missed": "漏报", "under-graded": "定级偏低", "late": "超时"}


def format_report(report: DrillReport) -> str:
    s, t = report.score, report.truth

    def rel(x: float | None) -> str:
        return "—" if x is None else f"{x:+.1f} s"

    lines = [
        f"演练 drill: {t.scenario}  seed={t.seed}  speed={report.speed:g}x",
        f"  企业 enterprise      {t.enterprise}   区域 zone {t.zone}   网关 gateway {t.gateway or '—'}",
        f"  测点 sensors         {', '.join(t.primary or t.sensors[:6])}",
        f"  基准 reference       {s.reference} at {_clock(s.reference_s)} (onset {_clock(t.onset_s)}, "
        f"deadline {_clock(t.deadline_s)} = reference {rel(t.deadline_s - s.reference_s)})",
        f"  结论 verdict         {s.verdict} ({_VERDICT_ZH[s.verdict]})",
        f"  检出 detected        {'yes 是' if s.detected else 'no 否'}; delay {rel(s.delay_s)} "
        f"(to expected grade {rel(s.grade_delay_s)}; simulated seconds, pipeline latency × speed included)",
        f"  等级 grade           raised {s.raised_grade or '—'} ({_GRADE_ZH.get(s.raised_grade, '?')}), "
        f"expected {s.expected_grade} ({_GRADE_ZH[s.expected_grade]})"
        + ("" if _grade_index(s.raised_grade) <= _grade_index(s.expected_grade) else "  [higher than expected]"),
        f"  时限 in time         {'yes 是' if s.in_time else 'no 否'}",
        f"  误报 false alarms    {len(s.false_alarms)} over {s.normal_sensor_hours:.1f} sensor-hours of normal traffic "
        f"= {s.false_alarms_per_1000h:.2f} per 1,000 sensor-hours (target ≤ {FALSE_ALARMS_PER_1000H_TARGET:g})",
    ]
    for title, items in (("incident alerts 事件告警", s.incident_alerts), ("related 相邻区域", s.related_alerts),
                         ("simulated link outages 模拟断线 (true alerts)", s.outage_alerts),
                         ("false alarms 误报", s.false_alarms)):
        if items:
            lines.append(f"  {title}:")
            for a in items[:20]:
                lines.append(f"    {_clock(a['sim_s'])} ({rel(a['sim_s'] - s.reference_s)})  {a['grade']:<6} {a['state']:<9} "
                             f"{a['enterprise']} {a['subject']} {a['rule']}")
            if len(items) > 20:
                lines.append(f"    … {len(items) - 20} more")
    return "\n".join(lines)


def _clock(epoch_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_s))
