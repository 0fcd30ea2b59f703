"""The alert state machine, pure: the transitions that change an :class:`~alerts.alert.Alert`.

States: ``firing`` → ``acknowledged`` → ``resolved`` → ``closed``, plus ``latched`` (the condition
has cleared but the alert's grade requires an operator reset) and two orthogonal conditions,
*shelved* (timed, with a reason) and *flapping* (held open, not re-notified). ``active`` says
whether the detector's condition holds. Every transition increments ``version``; those worth
notifying also set ``notify_version``. Nothing here touches the database or reads a clock:
:mod:`alerts.records` persists, :mod:`alerts.transitions` and :mod:`alerts.service` call these
with "now" passed in.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from alerts.alert import (  # noqa: F401 - the record and its vocabulary, importable from here as before
    OPEN_STATES,
    SYSTEM,
    Alert,
    AlertNotFound,
    Applied,
    Change,
    State,
    TransitionError,
    VersionConflict,
    alert_key,
)
from alerts.colours import Colour
from alerts.policy import Flapping
from domain.severity import FindingEvent, Severity


def _bump(alert: Alert, now_us: int, notify: bool) -> None:
    alert.version += 1
    alert.updated_us = now_us
    if notify:
        alert.notify_version = alert.version
    alert.timer_due_us = now_us  # the service re-evaluates its timers with the policy


def _set_grade(alert: Alert, grade: Colour, now_us: int) -> None:
    alert.grade = grade
    alert.grade_since_us = now_us
    alert.peak_grade = max(alert.peak_grade, grade)
    alert.labels = {**alert.labels, "grade": grade.id}


def _set_severity(alert: Alert, severity: Severity) -> None:
    alert.severity = severity
    alert.labels = {**alert.labels, "severity": severity.name.lower()}


def _flap(alert: Alert, now_us: int, flapping: Flapping | None) -> bool:
    """Record a raise/clear change; returns True when the alert is (now) flapping."""
    if flapping is None:
        return False
    recent = tuple(t for t in alert.flap_changes_us if t > now_us - int(flapping.window_s * 1e6))
    alert.flap_changes_us = (recent + (now_us,))[-64:]
    if not alert.flapping and len(alert.flap_changes_us) >= flapping.changes:
        alert.flapping = True
    return alert.flapping


# --------------------------------------------------------------------------- findings


def on_finding(
    alert: Alert,
    event: FindingEvent,
    severity: Severity,
    ts_us: int,
    value: float,
    setpoint: float,
    base_grade: Colour,
    now_us: int,
    *,
    latch: bool,
    flapping: Flapping | None,
) -> Change | None:
    """Apply a finding to an open alert (mutates it); ``None`` when it changes nothing.

    ``base_grade`` is the policy's grade for the finding's severity; ``latch`` says whether this
    alert must latch when its condition clears (decided from the policy by the caller).
    """
    alert.finding_ts_us = max(alert.finding_ts_us, ts_us)
    if event is FindingEvent.CLEAR:
        if not alert.active:
            return None
        alert.active = False
        alert.cleared_us = now_us
        alert.finding_event = event
        if _flap(alert, now_us, flapping):
            _bump(alert, now_us, notify=False)
            return Change("condition_cleared", SYSTEM, {"flapping": True, "ts_us": ts_us})
        if latch and alert.state is not State.RESOLVED:
            alert.state = State.LATCHED
            _bump(alert, now_us, notify=True)
            return Change("latched", SYSTEM, {"ts_us": ts_us, "reason": "condition cleared; reset required"}, notify=True)
        alert.state = State.RESOLVED
        alert.resolved_us = now_us
        _bump(alert, now_us, notify=True)
        return Change("resolved", SYSTEM, {"ts_us": ts_us, "by": "condition cleared"}, notify=True)

    # raise or update
    if math.isfinite(value):
        alert.value = value
        if alert.peak_value is None or value > alert.peak_value:
            alert.peak_value = value
    if math.isfinite(setpoint):
        alert.setpoint = setpoint
    if not alert.active:
        return _returned(alert, event, severity, ts_us, base_grade, now_us, flapping)
    if severity == alert.severity and base_grade == alert.base_grade:
        return None  # a repeat (e.g. a detector restart re-raising): nothing changed
    old = alert.grade
    _set_severity(alert, severity)
    alert.finding_event = event
    alert.base_grade = base_grade
    alert.upgraded = None
    if base_grade == old:
        _bump(alert, now_us, notify=False)
        return Change("severity_changed", SYSTEM, {"severity": severity.name.lower(), "ts_us": ts_us})
    return _regrade(alert, base_grade, now_us, reason="severity", ts_us=ts_us)


def _returned(alert: Alert, event: FindingEvent, severity: Severity, ts_us: int, base_grade: Colour, now_us: int,
              flapping: Flapping | None) -> Change:
    """The condition of a cleared alert holds again: a new excursion (held open while flapping)."""
    alert.active = True
    alert.finding_event = event
    _set_severity(alert, severity)
    holding = _flap(alert, now_us, flapping)
    rose = base_grade > alert.grade
    alert.base_grade = base_grade
    alert.upgraded = None
    # a new excursion: persistence and "持续 N 分钟" start again from now
    alert.raised_us = now_us
    _set_grade(alert, base_grade, now_us)
    if holding and not rose:
        if alert.state is State.RESOLVED:
            alert.state = State.ACKNOWLEDGED if alert.acked else State.FIRING
            alert.resolved_us = None
        elif alert.state is State.LATCHED:
            alert.state = State.ACKNOWLEDGED if alert.acked else State.FIRING
        _bump(alert, now_us, notify=False)
        return Change("condition_returned", SYSTEM, {"flapping": True, "ts_us": ts_us})
    # a new occurrence of the condition: needs a new acknowledgement
    alert.reopened += 1
    alert.state = State.FIRING
    alert.resolved_us = None
    alert.acked_us = alert.acked_by = None
    alert.unacked_since_us = now_us
    alert.escalation_step = 0
    _bump(alert, now_us, notify=True)
    return Change("reopened", SYSTEM, {"ts_us": ts_us, "grade": alert.grade.id}, notify=True, urgent=rose)


def _regrade(alert: Alert, grade: Colour, now_us: int, reason: str, ts_us: int | None = None) -> Change:
    old = alert.grade
    _set_grade(alert, grade, now_us)
    rose = grade > old
    if rose and alert.acked:
        # a higher grade needs its own acknowledgement, and escalation starts over
        alert.acked_us = alert.acked_by = None
        if alert.state is State.ACKNOWLEDGED:
            alert.state = State.FIRING
    if rose:
        alert.unacked_since_us = now_us if alert.acked_us is None else alert.unacked_since_us
        alert.escalation_step = 0
    _bump(alert, now_us, notify=True)
    detail = {"from": old.id, "to": grade.id, "reason": reason}
    if ts_us is not None:
        detail["ts_us"] = ts_us
    return Change("grade_raised" if rose else "grade_lowered", SYSTEM, detail, notify=True, urgent=rose)


def upgrade(alert: Alert, grade: Colour, why: str, now_us: int) -> Change | None:
    """Raise the grade for a persisting or spreading condition (policy upgrade)."""
    if not alert.active or grade <= alert.grade or alert.state not in OPEN_STATES:
        return None
    alert.upgraded = why
    return _regrade(alert, grade, now_us, reason=why)


def flapping_ended(alert: Alert, now_us: int, latch: bool) -> Change:
    alert.flapping = False
    alert.flap_changes_us = ()
    if alert.active:
        _bump(alert, now_us, notify=False)
        return Change("flapping_ended", SYSTEM, {"active": True})
    if latch:
        alert.state = State.LATCHED
        _bump(alert, now_us, notify=True)
        return Change("latched", SYSTEM, {"reason": "flapping ended with the condition clear; reset required"}, notify=True)
    alert.state = State.RESOLVED
    alert.resolved_us = now_us
    _bump(alert, now_us, notify=True)
    return Change("resolved", SYSTEM, {"by": "flapping ended with the condition clear"}, notify=True)


def finding_added(alert: Alert, finding: dict[str, Any], now_us: int) -> Change:
    """Another finding (another rule, or another sensor of the zone) joined the incident without
    changing its grade: journaled and shown, not notified."""
    _bump(alert, now_us, notify=False)
    return Change("finding_added", SYSTEM, {"finding": finding})


def superseded(alert: Alert, now_us: int) -> Change:
    """A resolved incident is closed because a later raise in its place opens a new one."""
    alert.state = State.CLOSED
    alert.closed_us = now_us
    _bump(alert, now_us, notify=False)
    alert.timer_due_us = None
    return Change("closed", SYSTEM, {"by": "a new incident in the same place, after the fold window"})


def escalated(alert: Alert, step: int, targets: list[str], now_us: int) -> Change:
    alert.escalation_step = step
    _bump(alert, now_us, notify=False)
    return Change("escalated", SYSTEM, {"step": step, "targets": targets})


def auto_closed(alert: Alert, now_us: int) -> Change:
    alert.state = State.CLOSED
    alert.closed_us = now_us
    _bump(alert, now_us, notify=False)
    alert.timer_due_us = None
    return Change("closed", SYSTEM, {"by": "auto-close after resolution"})


def shelve_expired(alert: Alert, now_us: int) -> Change:
    alert.shelved_until_us = None
    alert.shelved_by = alert.shelve_reason = None
    _bump(alert, now_us, notify=False)
    return Change("unshelved", SYSTEM, {"by": "shelve expired"})


# --------------------------------------------------------------------------- operators


def _require_open(alert: Alert, what: str) -> None:
    if alert.state is State.CLOSED:
        raise TransitionError(f"alert {alert.id} is closed; cannot {what}")


def acknowledge(alert: Alert, actor: str, comment: str | None, now_us: int) -> Change | None:
    _require_open(alert, "acknowledge it")
    if alert.acked:
        return None
    alert.acked_us, alert.acked_by = now_us, actor
    alert.unacked_since_us = None
    if alert.state is State.FIRING:
        alert.state = State.ACKNOWLEDGED
    _bump(alert, now_us, notify=False)
    return Change("acknowledged", actor, {"comment": comment})


def comment(alert: Alert, actor: str, text: str, now_us: int) -> Change:
    if not text or not text.strip():
        raise TransitionError("a comment needs text")
    _bump(alert, now_us, notify=False)
    return Change("commented", actor, {"comment": text})


def assign(alert: Alert, actor: str, assignee: str | None, comment: str | None, now_us: int) -> Change | None:
    _require_open(alert, "assign it")
    if alert.assignee == assignee:
        return None
    old, alert.assignee = alert.assignee, assignee
    _bump(alert, now_us, notify=False)
    return Change("assigned", actor, {"from": old, "to": assignee, "comment": comment})


def shelve(alert: Alert, actor: str, reason: str, until_us: int, now_us: int, max_s: float) -> Change | None:
    _require_open(alert, "shelve it")
    if alert.state is State.RESOLVED:
        raise TransitionError(f"alert {alert.id} is resolved; nothing to shelve")
    if not reason or not reason.strip():
        raise TransitionError("shelving needs a reason")
    if until_us <= now_us:
        raise TransitionError("shelving must end in the future")
    if until_us - now_us > max_s * 1e6:
        raise TransitionError(f"shelving is limited to {max_s / 3600:g} h")
    if alert.shelved_until_us == until_us and alert.shelve_reason == reason:
        return None
    alert.shelved_until_us, alert.shelved_by, alert.shelve_reason = until_us, actor, reason
    _bump(alert, now_us, notify=False)
    return Change("shelved", actor, {"reason": reason, "until_us": until_us})


def unshelve(alert: Alert, actor: str, comment: str | None, now_us: int) -> Change | None:
    _require_open(alert, "unshelve it")
    if alert.shelved_until_us is None:
        return None
    alert.shelved_until_us = None
    alert.shelved_by = alert.shelve_reason = None
    _bump(alert, now_us, notify=False)
    return Change("unshelved", actor, {"comment": comment})


def reset_latch(alert: Alert, actor: str, comment: str | None, now_us: int) -> Change | None:
    if alert.state is State.RESOLVED or alert.state is State.CLOSED:
        return None
    if alert.state is not State.LATCHED:
        raise TransitionError(f"alert {alert.id} is {alert.state.value}, not latched")
    if alert.active:
        raise TransitionError(f"alert {alert.id}: the condition is present again; cannot reset")
    alert.state = State.RESOLVED
    alert.resolved_us = now_us
    _bump(alert, now_us, notify=True)
    return Change("latch_reset", actor, {"comment": comment}, notify=True)


def resolve(alert: Alert, actor: str, comment: str | None, now_us: int, force: bool = False) -> Change | None:
    if alert.state is State.RESOLVED or alert.state is State.CLOSED:
        return None
    if alert.state is State.LATCHED:
        return reset_latch(alert, actor, comment, now_us)
    if alert.active and not force:
        raise TransitionError(
            f"alert {alert.id}: the condition still holds; shelve it instead, or resolve with force "
            "(e.g. the sensor was removed)"
        )
    alert.state = State.RESOLVED
    alert.resolved_us = now_us
    alert.active = False
    alert.flapping = False
    # its evidence ends with it: only a new raise reopens it, never a clear of one of its findings
    alert.evidence = tuple(dataclasses.replace(e, active=False, latched=False) for e in alert.evidence)
    _bump(alert, now_us, notify=True)
    return Change("resolved", actor, {"comment": comment, "force": force}, notify=True)


def close(alert: Alert, actor: str, comment: str | None, now_us: int) -> Change | None:
    if alert.state is State.CLOSED:
        return None
    if alert.state is not State.RESOLVED:
        raise TransitionError(f"alert {alert.id} is {alert.state.value}; only a resolved alert can be closed")
    alert.state = State.CLOSED
    alert.closed_us = now_us
    _bump(alert, now_us, notify=False)
    alert.timer_due_us = None
    return Change("closed", actor, {"comment": comment})
