"""How one finding changes one alert: graded by the policy, then through the lifecycle.

Pure (no I/O, "now" passed in): :class:`AlertsService` applies every finding of a batch with it
inside its transaction, and ``bench/false_alarms.py`` replays a simulated day through the same
steps in memory, so what the bench counts is what the service would open.
"""

from __future__ import annotations

from alerts import lifecycle
from alerts.grading import Grade, Grader
from alerts.labels import labels_for, subject_of
from alerts.lifecycle import Alert, Change, State, alert_key
from alerts.policy import Policy
from domain.messages import Finding
from domain.registry import RegistrySnapshot
from domain.severity import FindingEvent, Severity, SubjectKind


class Intake:
    def __init__(self, policy: Policy, grader: Grader) -> None:
        self.policy = policy
        self.grader = grader

    def grade(self, industry: str | None, kind: str, location_class: str, enterprise: str | None,
              kind_id: int, rule: str, severity: Severity) -> Grade:
        return self.grader.grade(industry or "", kind or "", rule, severity, location_class or "",
                                 SubjectKind(kind_id).name.lower(), enterprise or "")

    def latch(self, alert: Alert) -> bool:
        rule = self.grader.rule_named(alert.grading_rule)
        if rule is not None and rule.latch is not None:
            return rule.latch
        return alert.peak_grade in self.policy.lifecycle.latch_colours

    @staticmethod
    def is_replay(alert: Alert | None, f: Finding) -> bool:
        """A finding older than (or the same as) the last one applied to the alert."""
        return alert is not None and (
            f.ts_us < alert.finding_ts_us
            or (f.ts_us == alert.finding_ts_us and f.event == alert.finding_event and f.severity == alert.severity)
        )

    def open(self, f: Finding, registry: RegistrySnapshot, now_us: int) -> tuple[Alert, Change] | None:
        """A new alert for a raising finding with no open alert (``None`` for a clear)."""
        if f.event is FindingEvent.CLEAR:
            return None
        s = subject_of(registry, f.subject_kind, f.subject)
        key = alert_key(f.subject_kind, f.subject, f.rule)
        g = self.grade(s.industry, s.kind, s.location_class, s.enterprise, f.subject_kind, f.rule, f.severity)
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
        )
        return alert, Change("opened", lifecycle.SYSTEM, {
            "rule": f.rule, "severity": f.severity.name.lower(), "grade": alert.grade.id,
            "grading_rule": alert.grading_rule, "ts_us": f.ts_us,
            "value": alert.value, "setpoint": alert.setpoint}, notify=True)

    def apply(self, alert: Alert, f: Finding, now_us: int) -> Change | None:
        """A finding on an alert that is not closed (mutates it); ``None`` when it changes nothing."""
        g = self.grade(alert.industry, alert.kind, alert.labels.get("location_class", ""), alert.enterprise,
                       f.subject_kind, f.rule, f.severity)
        change = lifecycle.on_finding(alert, f.event, f.severity, f.ts_us, f.value, f.setpoint, g.colour, now_us,
                                      latch=self.latch(alert), flapping=self.policy.lifecycle.flapping)
        if f.event is not FindingEvent.CLEAR and g.rule is not None:
            alert.grading_rule = g.rule.name
        return change

    def settle(self, a: Alert, now_us: int) -> list[Change]:
        """The timers that need nothing but the alert and the policy, in the ticker's order:
        flapping that has gone quiet ends, a persisting condition is upgraded."""
        out = []
        fl = self.policy.lifecycle.flapping
        if a.flapping and fl is not None:
            last = max(a.flap_changes_us) if a.flap_changes_us else a.updated_us
            if last + int(fl.quiet_s * 1e6) <= now_us:
                out.append(lifecycle.flapping_ended(a, now_us, self.latch(a)))
        rule = self.grader.rule_named(a.grading_rule)
        if (rule is not None and rule.persist is not None and a.base_grade == rule.colour
                and a.grade_since_us + int(rule.persist.after_s * 1e6) <= now_us):
            ch = lifecycle.upgrade(a, rule.persist.colour, "persist", now_us)
            if ch is not None:
                ch.detail["after_s"] = rule.persist.after_s
                out.append(ch)
        return out

    def auto_close(self, a: Alert, now_us: int) -> Change | None:
        lc = self.policy.lifecycle
        if (a.state is State.RESOLVED and lc.auto_close_after_s is not None
                and (a.acked or not lc.auto_close_require_ack)
                and (a.resolved_us or a.updated_us) + int(lc.auto_close_after_s * 1e6) <= now_us):
            return lifecycle.auto_closed(a, now_us)
        return None

