"""How one finding changes one alert: graded by the policy, then through the lifecycle.

Pure (no I/O, "now" passed in): :meth:`Intake.fold` applies every finding of a batch, which
:class:`AlertsService` does inside its transaction, and ``bench/false_alarms.py`` replays a simulated day through the same
steps in memory, so what the bench counts is what the service would open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from alerts import incidents, lifecycle
from alerts.colours import Colour
from alerts.grading import Grade, Grader
from alerts.incidents import Evidence
from alerts.labels import labels_for, subject_of
from alerts.alert import Alert, Applied, Change, State
from alerts.policy import Policy
from alerts.timers import deadlines
from domain.messages import Finding
from domain.registry import RegistrySnapshot
from domain.severity import FindingEvent, Severity, SubjectKind


@dataclasses.dataclass
class Folded:
    """What a batch of findings did: new alerts, changed ones, superseded ids, the changes applied."""

    new: dict[str, Alert] = dataclasses.field(default_factory=dict)  # by key
    touched: dict[int, Alert] = dataclasses.field(default_factory=dict)  # existing alerts changed in any way
    superseded: list[int] = dataclasses.field(default_factory=list)
    applied: list[Applied] = dataclasses.field(default_factory=list)
    replayed: int = 0  # findings ignored as replays of ones already applied
    opened: int = 0


class Intake:
    def __init__(self, policy: Policy, grader: Grader) -> None:
        self.policy = policy
        self.grader = grader

    def grade(self, industry: str | None, kind: str, location_class: str, enterprise: str | None,
              kind_id: int, rule: str, severity: Severity) -> Grade:
        return self.grader.grade(industry or "", kind or "", rule, severity, location_class or "",
                                 SubjectKind(kind_id).name.lower(), enterprise or "")

    def latch(self, alert: Alert) -> bool:
        """Whether the alert latches when its condition clears: any contributing finding's rule
        says ``latch: true``, or it reached a latching colour and its rule does not say false."""
        names = {e.grading_rule for e in alert.evidence} | {alert.grading_rule}
        rules = [self.grader.rule_named(n) for n in names]
        if any(r is not None and r.latch for r in rules):
            return True
        rule = self.grader.rule_named(alert.grading_rule)
        if rule is not None and rule.latch is not None:
            return rule.latch
        return alert.peak_grade in self.policy.lifecycle.latch_colours

    def _latches(self, e: Evidence) -> bool:
        """Whether a piece of evidence, once cleared, keeps grading its (still active) alert."""
        rule = self.grader.rule_named(e.grading_rule)
        if rule is not None and rule.latch is not None:
            return rule.latch
        return Colour(e.grade) in self.policy.lifecycle.latch_colours

    @staticmethod
    def identity(f: Finding, registry: RegistrySnapshot) -> str:
        """The key of the incident the finding belongs to (alerts.incidents)."""
        return incidents.incident_key(f, registry)

    @staticmethod
    def is_replay(alert: Alert | None, f: Finding) -> bool:
        """A finding older than (or the same as) the last one applied to its evidence."""
        if alert is None:
            return False
        if not alert.evidence:  # an alert from before folding
            return f.ts_us < alert.finding_ts_us or (
                f.ts_us == alert.finding_ts_us and f.event == alert.finding_event and f.severity == alert.severity)
        return incidents.is_replay(incidents.find(alert.evidence, f), f)

    def joins(self, alert: Alert, f: Finding, now_us: int) -> bool:
        """Whether a raising finding joins this (not closed) alert rather than open a new incident:
        a sensor already among its evidence always does (a reopening); another sensor of the zone
        does while the alert is open, or within ``fold_window`` of its resolution."""
        if alert.state is not State.RESOLVED or f.event is FindingEvent.CLEAR:
            return True
        if any(e.subject == f.subject and e.subject_kind == int(f.subject_kind) for e in alert.evidence):
            return True
        return deadlines(alert, self.policy, self.grader).fold_window_ends_us > now_us

    def _grade_of(self, f: Finding, registry: RegistrySnapshot | None, alert: Alert | None) -> tuple[Grade, str]:
        if registry is not None:
            s = subject_of(registry, f.subject_kind, f.subject)
            if s.enterprise is not None or alert is None:
                g = self.grade(s.industry, s.kind, s.location_class, s.enterprise, f.subject_kind, f.rule, f.severity)
                return g, s.code
        g = self.grade(alert.industry, alert.kind, alert.labels.get("location_class", ""), alert.enterprise,
                       f.subject_kind, f.rule, f.severity)
        return g, alert.labels.get("subject_code", "") if alert.subject == f.subject else ""

    def open(self, f: Finding, registry: RegistrySnapshot, now_us: int) -> tuple[Alert, Change] | None:
        """A new alert for a raising finding with no open alert (``None`` for a clear)."""
        if f.event is FindingEvent.CLEAR:
            return None
        s = subject_of(registry, f.subject_kind, f.subject)
        key = self.identity(f, registry)
        g = self.grade(s.industry, s.kind, s.location_class, s.enterprise, f.subject_kind, f.rule, f.severity)
        evidence, _ = incidents.updated((), f, s.code, int(g.colour), g.rule.name if g.rule else None, now_us)
        value = f.value if f.value == f.value else None
        setpoint = f.setpoint if f.setpoint == f.setpoint else None
        alert = Alert(
            id=0, alert_key=key, subject_kind=int(f.subject_kind), subject=f.subject, rule=f.rule,
            enterprise=s.enterprise, region=s.region, regions=s.regions, industry=s.industry, kind=s.kind,
            gateway=s.gateway, zone=s.zone,
            labels=labels_for(key, f.subject_kind, f.subject, f.rule, s, g.colour.id, f.severity),
            grading_rule=g.rule.name if g.rule else None, state=State.FIRING, active=True, grade=g.colour,
            base_grade=g.colour, peak_grade=g.colour, upgraded=None, severity=f.severity,
            finding_event=f.event, finding_ts_us=f.ts_us, value=value, setpoint=setpoint, peak_value=value,
            started_us=now_us, grade_since_us=now_us, unacked_since_us=now_us, raised_us=now_us, updated_us=now_us,
            evidence=evidence,
        )
        return alert, Change("opened", lifecycle.SYSTEM, {
            "rule": f.rule, "severity": f.severity.name.lower(), "grade": alert.grade.id,
            "grading_rule": alert.grading_rule, "ts_us": f.ts_us,
            "value": alert.value, "setpoint": alert.setpoint}, notify=True)

    def apply(self, alert: Alert, f: Finding, now_us: int, registry: RegistrySnapshot | None = None) -> Change | None:
        """A finding on an alert that is not closed (mutates it); ``None`` when it changes nothing.

        The finding updates its evidence; the alert then follows its worst active evidence
        (grade, rule, value), raises with the first and clears with the last."""
        g, code = self._grade_of(f, registry, alert)
        if not alert.evidence:  # an alert from before folding: its own state is its one evidence
            alert.evidence = (Evidence(alert.subject_kind, alert.subject, alert.labels.get("subject_code", ""),
                                       alert.rule, alert.active, int(alert.finding_event), int(alert.severity),
                                       int(alert.base_grade), alert.grading_rule, alert.value, alert.setpoint,
                                       alert.finding_ts_us, alert.started_us, alert.excursion_us),)
        if alert.state is State.RESOLVED:  # reset or resolved: latched evidence no longer holds the grade
            alert.evidence = incidents.unlatched(alert.evidence)
        before = len(alert.evidence)
        old = incidents.find(alert.evidence, f)
        evidence, joined = incidents.updated(alert.evidence, f, code, int(g.colour),
                                             g.rule.name if g.rule else None, now_us,
                                             latches=old is not None and self._latches(old))
        if f.event is not FindingEvent.CLEAR and incidents.find(evidence, f) is None or (
                joined and len(evidence) == before):
            alert.evidence_dropped += 1  # a full list: one finding (this one, or the one it replaced) unlisted
        alert.evidence = evidence
        top = incidents.worst(evidence)
        fl, latch = self.policy.lifecycle.flapping, self.latch(alert)
        if top is None or (not alert.active and f.event is FindingEvent.CLEAR):
            if not alert.active:
                change = None  # a clear never reopens
            else:
                change = lifecycle.on_finding(alert, FindingEvent.CLEAR, alert.severity, f.ts_us, f.value, f.setpoint,
                                              alert.base_grade, now_us, latch=latch, flapping=fl)
        else:
            if top.rule != alert.rule or top.grading_rule != alert.grading_rule:
                alert.rule, alert.grading_rule = top.rule, top.grading_rule
                alert.labels = {**alert.labels, "rule": top.rule}
            event = FindingEvent.UPDATE if alert.active else FindingEvent.RAISE
            value = top.value if top.value is not None else float("nan")
            setpoint = top.setpoint if top.setpoint is not None else float("nan")
            change = lifecycle.on_finding(alert, event, Severity(top.severity), f.ts_us, value, setpoint,
                                          Colour(top.grade), now_us, latch=latch, flapping=fl)
            if change is None and alert.value != top.value and top.value is not None:
                alert.value = top.value  # the worst evidence's latest value, without a transition
        alert.finding_ts_us = max(alert.finding_ts_us, f.ts_us)
        if change is None and joined:
            return lifecycle.finding_added(alert, evidence[-1].view(), now_us)
        if change is not None and joined:
            change.detail["finding_added"] = evidence[-1].view()
        return change

    def spread(self, alert: Alert, now_us: int) -> Change | None:
        """Several points of the alert's zone under a spreading rule: raise it; lower it again
        when the condition no longer spreads."""
        best, points = None, 0
        for name in {e.grading_rule for e in alert.evidence if e.active and e.grading_rule}:
            rule = self.grader.rule_named(name)
            if rule is None or rule.spread is None:
                continue
            n = incidents.spread_points(alert.evidence, name)
            if n >= rule.spread.points and (best is None or rule.spread.colour > best):
                best, points = rule.spread.colour, n
        if best is not None:
            ch = lifecycle.upgrade(alert, best, "spread", now_us)
            if ch is not None:
                ch.detail["points"] = points
            return ch
        if alert.upgraded == "spread" and alert.active and alert.grade > alert.base_grade:
            alert.upgraded = None
            return lifecycle._regrade(alert, alert.base_grade, now_us, reason="spread ended")
        return None

    def fold(self, rows: Sequence[Finding], keys: Sequence[str], latest: Mapping[str, Alert],
             registry: RegistrySnapshot, now_us: int) -> Folded:
        """Fold findings (in time order, with their incident keys) into the newest alert of each key:
        supersede a resolved incident past its fold window, skip replays, open, grade and apply,
        then judge spreading once per changed alert."""
        out = Folded()
        for f, key in zip(rows, keys, strict=True):
            alert = out.new.get(key) or latest.get(key)
            if alert is not None and alert.state is not State.CLOSED and not self.joins(alert, f, now_us):
                out.applied.append(Applied.of(alert, lifecycle.superseded(alert, now_us)))
                out.touched[alert.id] = alert
                out.superseded.append(alert.id)
                alert = None
            if self.is_replay(alert, f):
                out.replayed += 1
                continue
            if alert is None or alert.state is State.CLOSED:
                opened = self.open(f, registry, now_us)
                if opened is not None:
                    out.new[key] = opened[0]
                    out.opened += 1
                    out.applied.append(Applied.of(*opened))
                continue
            change = self.apply(alert, f, now_us, registry)
            if alert.id:
                out.touched[alert.id] = alert
            if change is not None:
                out.applied.append(Applied.of(alert, change))
        for alert in [*out.new.values(), *out.touched.values()]:
            if alert.state is not State.CLOSED and (ch := self.spread(alert, now_us)) is not None:
                out.applied.append(Applied.of(alert, ch))
        return out
