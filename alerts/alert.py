"""An alert as the lifecycle sees it: the :class:`Alert` record, its :class:`State`, the
:class:`Change` a transition makes, and the errors a transition raises.

Plain data: :mod:`alerts.lifecycle` changes it, :mod:`alerts.records` stores it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

from alerts.colours import Colour
from alerts.incidents import Evidence
from domain.severity import FindingEvent, Severity, SubjectKind


class State(enum.StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    LATCHED = "latched"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATES = frozenset({State.FIRING, State.ACKNOWLEDGED, State.LATCHED})
"""States in which an alert counts towards the live warning colour of its place."""


class TransitionError(ValueError):
    """The transition is not allowed in the alert's current state (the message says why)."""


class VersionConflict(TransitionError):
    """``expected_version`` did not match: someone else changed the alert first."""

    def __init__(self, alert_id: int, expected: int, actual: int) -> None:
        super().__init__(f"alert {alert_id} is at version {actual}, not {expected}; reload and retry")
        self.alert_id, self.expected, self.actual = alert_id, expected, actual


class AlertNotFound(LookupError):
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"no alert {alert_id}")
        self.alert_id = alert_id


def alert_key(subject_kind: int, subject: int, rule: str) -> str:
    return f"{SubjectKind(subject_kind).name.lower()}:{subject}:{rule}"


@dataclasses.dataclass(slots=True)
class Alert:
    id: int
    alert_key: str
    subject_kind: int
    subject: int
    rule: str
    enterprise: str | None
    region: str | None
    regions: tuple[str, ...]
    industry: str | None
    kind: str
    gateway: int | None
    zone: int | None
    labels: dict[str, str]
    grading_rule: str | None
    state: State
    active: bool
    grade: Colour
    base_grade: Colour
    peak_grade: Colour
    upgraded: str | None
    severity: Severity
    finding_event: FindingEvent
    finding_ts_us: int
    value: float | None
    setpoint: float | None
    peak_value: float | None
    started_us: int  # the incident opened
    grade_since_us: int  # the grade took its value, within the current excursion
    unacked_since_us: int | None
    raised_us: int = 0  # the current excursion began (the latest raise); 0 = started_us
    cleared_us: int | None = None
    resolved_us: int | None = None
    closed_us: int | None = None
    acked_us: int | None = None
    acked_by: str | None = None
    assignee: str | None = None
    shelved_until_us: int | None = None
    shelved_by: str | None = None
    shelve_reason: str | None = None
    flapping: bool = False
    flap_changes_us: tuple[int, ...] = ()
    reopened: int = 0
    escalation_step: int = 0
    timer_due_us: int | None = None
    version: int = 1
    notify_version: int = 1
    routed_version: int = 0
    told_version: int = 0  # the last version published as a state update (alerts.updates)
    evidence: tuple[Evidence, ...] = ()  # contributing findings (alerts.incidents)
    evidence_dropped: int = 0  # contributing findings left out of a full list (counted, never silent)
    updated_us: int = 0

    def copy(self) -> Alert:
        return dataclasses.replace(self)

    def sensor_ids(self) -> tuple[int, ...]:
        """Sensors whose findings contribute to this alert, sorted."""
        return tuple(sorted({e.subject for e in self.evidence if e.subject_kind == SubjectKind.SENSOR}))

    @property
    def excursion_us(self) -> int:
        """When the current excursion of the condition began: persistence and the durations in
        messages count from here, never across a resolved gap."""
        return self.raised_us or self.started_us

    @property
    def acked(self) -> bool:
        return self.acked_us is not None

    def shelved(self, now_us: int) -> bool:
        return self.shelved_until_us is not None and self.shelved_until_us > now_us

    def snapshot(self) -> dict[str, Any]:
        """What a journal entry and a feed event carry about the alert after a transition."""
        return {
            "enterprise": self.enterprise,
            "region": self.region,
            "state": self.state.value,
            "active": self.active,
            "grade": self.grade.id,
            "severity": self.severity.name.lower(),
            "value": _num(self.value),
            "setpoint": _num(self.setpoint),
            "acked_by": self.acked_by,
            "assignee": self.assignee,
            "shelved_until_us": self.shelved_until_us,
            "flapping": self.flapping,
            "escalation_step": self.escalation_step,
            "notify_version": self.notify_version,
            "rule": self.rule,
            "sensors": sorted({*self.sensor_ids(), *((self.subject,) if self.subject_kind == SubjectKind.SENSOR else ())}),
            "findings": len(self.evidence),
            "active_findings": sum(e.active for e in self.evidence),
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view for the API and channels."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["state"] = self.state.value
        d["grade"] = self.grade.id
        d["base_grade"] = self.base_grade.id
        d["peak_grade"] = self.peak_grade.id
        d["severity"] = self.severity.name.lower()
        d["finding_event"] = self.finding_event.name.lower()
        d["subject_kind"] = SubjectKind(self.subject_kind).name.lower()
        d["regions"] = list(self.regions)
        d["flap_changes_us"] = list(self.flap_changes_us)
        d["findings"] = [e.view() for e in self.evidence]  # every contributing finding
        del d["evidence"]
        for k in ("value", "setpoint", "peak_value"):
            d[k] = _num(d[k])
        return d


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One transition applied to an alert: what is journaled and what the router must do."""

    action: str
    actor: str
    detail: dict[str, Any]
    notify: bool = False  # a change worth a notification
    urgent: bool = False  # a rise in grade: flush its groups now, bypassing group timers


SYSTEM = "system"


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    """A change as applied: the alert, the change, and the alert's version and snapshot right after
    it (what the journal entry carries, even when later changes in the same pass follow)."""

    alert: Alert
    change: Change
    version: int
    snapshot: dict[str, Any]

    @classmethod
    def of(cls, alert: Alert, change: Change) -> Applied:
        return cls(alert, change, alert.version, alert.snapshot())
