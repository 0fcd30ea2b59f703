"""One incident per place and cause: how findings fold into alerts (pure, no I/O).

Identity (the alert key):

- a value finding on a sensor (``limit``, ``over_range``, ``rate``, ``ttt``, ``anomaly``, ``window``
  and every other rule not listed below) belongs to ``zone:{zone}:{kind}`` — the sensor's zone and
  what it measures — or ``sensor:{id}:{kind}`` for a sensor without a zone;
- a finding on the instrument itself (:data:`HEALTH_RULES`: fault, stuck, jump, drift, no data,
  under range) belongs to ``sensor:{id}:health``: an instrument's health is a cause of its own, and
  one sensor's fault never hides a zone's alarm;
- gateway and zone findings (``gateway_offline``, ``compound.*``) keep ``{gateway|zone}:{id}:{rule}``.

Each alert keeps its contributing findings (:class:`Evidence` rows, one per (subject, rule),
at most :data:`MAX_EVIDENCE`): their own state, grade, value and setpoint. The alert is active
while any of them is; its grade is the worst active evidence (ties: the later one), and its
``rule``, ``grading_rule``, ``value`` and ``setpoint`` are that evidence's. Persistence is judged on
that worst evidence's grading rule over the current excursion; spreading counts the distinct
sensors of the alert whose active evidence is under a rule with ``spread``; the alert latches
when its last evidence clears if any evidence's rule latches, or if it reached a latching colour
(unless its worst rule says ``latch: false``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from domain.messages import Finding
from domain.registry import RegistrySnapshot
from domain.severity import FindingEvent, Severity, SubjectKind

HEALTH_RULES = frozenset({"fault", "stuck", "jump", "drift", "nodata", "under_range"})
MAX_EVIDENCE = 64  # (subject, rule) pairs listed per alert; findings left out are counted (``evidence_dropped``)


def family(rule: str) -> str:
    return rule.split(".", 1)[0]


def incident_key(f: Finding, registry: RegistrySnapshot) -> str:
    """The alert key a finding belongs to (see the module's docstring)."""
    kind = SubjectKind(f.subject_kind)
    if kind is not SubjectKind.SENSOR:
        return f"{kind.name.lower()}:{f.subject}:{f.rule}"
    if family(f.rule) in HEALTH_RULES:
        return f"sensor:{f.subject}:health"
    s = registry.sensors.get(f.subject)
    if s is None or not s.kind:
        return f"sensor:{f.subject}:{f.rule}"  # unknown sensor: alone, never lost
    return f"zone:{s.zone}:{s.kind}" if s.zone else f"sensor:{f.subject}:{s.kind}"


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    """One contributing finding of an alert: the latest state of one (subject, rule)."""

    subject_kind: int
    subject: int
    code: str
    rule: str
    active: bool
    event: int
    severity: int
    grade: int
    grading_rule: str | None
    value: float | None
    setpoint: float | None
    ts_us: int  # the last finding applied (replay guard)
    first_us: int  # joined the alert
    raised_us: int  # its current excursion began
    latched: bool = False  # cleared, but its rule latches: it keeps grading the alert until a reset
    eta_s: float | None = None  # ``ttt``: seconds to the predicted crossing, as predicted at the warning

    @property
    def ident(self) -> tuple[int, int, str]:
        return (self.subject_kind, self.subject, self.rule)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def view(self) -> dict[str, Any]:
        """As the API, the MQTT message and the journal show it."""
        from alerts.colours import Colour

        return {
            "subject": {"kind": SubjectKind(self.subject_kind).name.lower(), "id": self.subject, "code": self.code},
            "rule": self.rule, "active": self.active, "severity": Severity(self.severity).name.lower(),
            "grade": Colour(self.grade).id, "grading_rule": self.grading_rule, "value": self.value,
            "setpoint": self.setpoint, "ts_us": self.ts_us, "first_us": self.first_us, "raised_us": self.raised_us,
            "latched": self.latched,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        return cls(*(d.get(name, default) for name, default in _DEFAULTS))


_FIELDS = tuple(f.name for f in dataclasses.fields(Evidence))
_DEFAULTS = tuple((f.name, None if f.default is dataclasses.MISSING else f.default)
                  for f in dataclasses.fields(Evidence))


def find(evidence: tuple[Evidence, ...], f: Finding) -> Evidence | None:
    ident = (int(f.subject_kind), f.subject, f.rule)
    return next((e for e in evidence if e.ident == ident), None)


def is_replay(e: Evidence | None, f: Finding) -> bool:
    """A finding older than (or the same as) the last one applied to its evidence."""
    return e is not None and (
        f.ts_us < e.ts_us or (f.ts_us == e.ts_us and int(f.event) == e.event and int(f.severity) == e.severity))


def _num(x: float) -> float | None:
    return float(x) if x == x and abs(x) != float("inf") else None


def updated(evidence: tuple[Evidence, ...], f: Finding, code: str, grade: int, grading_rule: str | None,
            now_us: int, latches: bool = False) -> tuple[tuple[Evidence, ...], bool]:
    """The evidence after applying ``f`` (``grade``/``grading_rule`` are the policy's for it;
    ``latches``: the evidence being cleared latches), and whether a new (subject, rule) joined.
    A clear of an unknown pair changes nothing."""
    old = find(evidence, f)
    active = f.event is not FindingEvent.CLEAR
    if old is None:
        if not active:
            return evidence, False
        e = Evidence(int(f.subject_kind), f.subject, code, f.rule, True, int(f.event), int(f.severity), grade,
                     grading_rule, _num(f.value), _num(f.setpoint), f.ts_us, now_us, now_us,
                     eta_s=_num(f.eta_s))
        if len(evidence) >= MAX_EVIDENCE:
            # full: the new finding takes the place of the least telling one (cleared first, then
            # the lowest grade, then the oldest) if it tells more; the one left out is counted
            # by the caller (``evidence_dropped``), so every finding is accounted for
            out = min(evidence, key=lambda x: (x.active, x.grade, x.ts_us))
            if out.active and out.grade >= grade:
                return evidence, False
            evidence = tuple(x for x in evidence if x is not out)
        return (*evidence, e), True
    if active:
        e = dataclasses.replace(
            old, active=True, event=int(f.event), severity=int(f.severity), grade=grade, grading_rule=grading_rule,
            value=_num(f.value) if f.value == f.value else old.value,
            setpoint=_num(f.setpoint) if f.setpoint == f.setpoint else old.setpoint,
            ts_us=f.ts_us, raised_us=old.raised_us if old.active else now_us, latched=False,
            eta_s=_num(f.eta_s) if f.eta_s == f.eta_s else old.eta_s)
    else:
        e = dataclasses.replace(old, active=False, event=int(f.event), ts_us=f.ts_us, latched=old.active and latches,
                                value=_num(f.value) if f.value == f.value else old.value)
    return tuple(e if x.ident == old.ident else x for x in evidence), False


def worst(evidence: tuple[Evidence, ...]) -> Evidence | None:
    """The evidence that grades an active alert: the highest grade among the active and the
    latched ones, then severity, then the latest; ``None`` when none is active."""
    if not any(e.active for e in evidence):
        return None
    live = [e for e in evidence if e.active or e.latched]
    return max(live, key=lambda e: (e.grade, e.severity, e.ts_us))


def unlatched(evidence: tuple[Evidence, ...]) -> tuple[Evidence, ...]:
    """After a reset or a resolution: no evidence holds the grade any more."""
    if not any(e.latched for e in evidence):
        return evidence
    return tuple(dataclasses.replace(e, latched=False) for e in evidence)


def spread_points(evidence: tuple[Evidence, ...], rule_name: str) -> int:
    """Distinct sensors whose active evidence is graded by ``rule_name``."""
    return len({e.subject for e in evidence
                if e.active and e.grading_rule == rule_name and e.subject_kind == SubjectKind.SENSOR})
