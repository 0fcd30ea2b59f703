"""What happens to an alert with no new finding: its deadlines, and the timers that fire on them.

:func:`deadlines` is the one place that says when each timer of an alert is due — shelving ends,
flapping goes quiet, a persisting condition is upgraded, the next escalation step, auto-close
after resolution, and the end of the fold window in which a resolved incident still takes another
sensor of its zone. Intake (joining), :meth:`Timers.settle`, :meth:`Timers.auto_close`,
escalation and the alert's next ``timer_due_us`` all read it.

:meth:`Timers.fire` runs the due timers of one alert in order: shelving expiry → flapping end →
persistence upgrade → escalation steps (postponed while the alert is muted; rendered and written
by the dispatcher) → auto-close; then it sets the alert's next timer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import asyncpg

from alerts import lifecycle
from alerts.alert import OPEN_STATES, Alert, Applied, Change, State
from alerts.dispatch import Dispatcher
from alerts.escalation import Escalator
from alerts.grading import Grader
from alerts.policy import Policy
from alerts.records.outbox import NewNotification
from alerts.silences import Muter
from domain.clock import US_PER_S

MUTED_RECHECK_S = 30.0  # an escalation held by a mute looks again this often
IDLE_RETRY_S = 1.0  # a timer that fired and did nothing is tried again this much later, never at once


def _after(start_us: int, delay_s: float) -> int:
    return start_us + int(delay_s * US_PER_S)


@dataclasses.dataclass(frozen=True, slots=True)
class Deadlines:
    """When each timer of an alert is due (µs), ``None`` where it does not apply."""

    shelve_ends_us: int | None = None
    flapping_quiet_us: int | None = None
    persist_us: int | None = None
    escalation_us: int | None = None
    auto_close_us: int | None = None
    fold_window_ends_us: int | None = None  # not a timer: how long a resolved incident takes other sensors

    def next_us(self) -> int | None:
        """The first timer due (the fold window fires nothing)."""
        due = [t for t in (self.shelve_ends_us, self.flapping_quiet_us, self.persist_us, self.escalation_us,
                           self.auto_close_us) if t is not None]
        return min(due) if due else None


def deadlines(alert: Alert, policy: Policy, grader: Grader) -> Deadlines:
    """The deadlines of ``alert`` under ``policy`` (none for a closed alert)."""
    if alert.state is State.CLOSED:
        return Deadlines()
    lc = policy.lifecycle
    flapping_quiet = None
    if alert.flapping and lc.flapping is not None:
        last = max(alert.flap_changes_us) if alert.flap_changes_us else alert.updated_us
        flapping_quiet = _after(last, lc.flapping.quiet_s)
    persist = None
    rule = grader.rule_named(alert.grading_rule)
    if (rule is not None and rule.persist is not None and alert.active and alert.state in OPEN_STATES
            and alert.grade < rule.persist.colour and alert.base_grade == rule.colour):
        persist = _after(alert.grade_since_us, rule.persist.after_s)
    escalation = None
    chain = policy.escalation.chains.get(alert.grade, ())
    if (alert.acked_us is None and alert.unacked_since_us is not None
            and alert.state in (State.FIRING, State.LATCHED) and alert.escalation_step < len(chain)):
        escalation = _after(alert.unacked_since_us, chain[alert.escalation_step].after_s)
    auto_close = fold_ends = None
    if alert.state is State.RESOLVED:
        resolved_us = alert.resolved_us or alert.updated_us
        fold_ends = _after(resolved_us, lc.fold_window_s)
        if lc.auto_close_after_s is not None and (alert.acked or not lc.auto_close_require_ack):
            auto_close = _after(resolved_us, lc.auto_close_after_s)
    return Deadlines(alert.shelved_until_us, flapping_quiet, persist, escalation, auto_close, fold_ends)


def _due(deadline_us: int | None, now_us: int) -> bool:
    return deadline_us is not None and deadline_us <= now_us


class Timers:
    """The timers of the alerts under one policy; ``latch`` says whether an alert latches (intake).

    :meth:`fire` escalates through ``escalator`` (targets) and ``dispatcher`` (notifications); a
    replay in memory without escalation (``bench/false_alarms.py``) uses :meth:`settle` and
    :meth:`auto_close` only and passes neither."""

    def __init__(self, policy: Policy, grader: Grader, latch: Callable[[Alert], bool],
                 escalator: Escalator | None = None, dispatcher: Dispatcher | None = None) -> None:
        self.policy = policy
        self.grader = grader
        self.latch = latch
        self.escalator = escalator
        self.dispatcher = dispatcher
        self.escalations = 0

    def deadlines(self, alert: Alert) -> Deadlines:
        return deadlines(alert, self.policy, self.grader)

    def next_due_us(self, alert: Alert) -> int | None:
        """The next time something may happen to the alert without a new finding."""
        return self.deadlines(alert).next_us()

    def settle(self, a: Alert, now_us: int) -> list[Change]:
        """The timers that need nothing but the alert and the policy, in order: flapping that has
        gone quiet ends, a persisting condition is upgraded."""
        out = []
        if _due(self.deadlines(a).flapping_quiet_us, now_us):
            out.append(lifecycle.flapping_ended(a, now_us, self.latch(a)))
        if _due(self.deadlines(a).persist_us, now_us):
            rule = self.grader.rule_named(a.grading_rule)
            ch = lifecycle.upgrade(a, rule.persist.colour, "persist", now_us)
            if ch is not None:
                ch.detail["after_s"] = rule.persist.after_s
                out.append(ch)
        return out

    def auto_close(self, a: Alert, now_us: int) -> Change | None:
        if _due(self.deadlines(a).auto_close_us, now_us):
            return lifecycle.auto_closed(a, now_us)
        return None

    async def fire(self, conn: asyncpg.Connection, a: Alert, now_us: int, muter: Muter,
                   applied: list[Applied], outbox: list[NewNotification]) -> None:
        """Fire the alert's due timers (appending what they did) and set its next ``timer_due_us``."""
        if _due(self.deadlines(a).shelve_ends_us, now_us):
            applied.append(Applied.of(a, lifecycle.shelve_expired(a, now_us)))
        applied.extend(Applied.of(a, ch) for ch in self.settle(a, now_us))
        muted_until = None
        while _due(self.deadlines(a).escalation_us, now_us):
            if muter.muted_by(a, now_us):
                muted_until = _after(now_us, MUTED_RECHECK_S)
                break
            applied.append(Applied.of(a, await self._escalate(conn, a, now_us, outbox)))
        ch = self.auto_close(a, now_us)
        if ch is not None:
            applied.append(Applied.of(a, ch))
        nxt = self.next_due_us(a)
        if muted_until is not None:
            nxt = muted_until if nxt is None or nxt <= now_us else min(nxt, muted_until)
        if nxt is not None and nxt <= now_us:  # never spin on a timer that fired and did nothing
            nxt = _after(now_us, IDLE_RETRY_S)
        a.timer_due_us = nxt

    async def _escalate(self, conn: asyncpg.Connection, a: Alert, now_us: int,
                        outbox: list[NewNotification]) -> Change:
        """The next escalation step: journaled on the alert, its notifications from the dispatcher."""
        assert self.escalator is not None and self.dispatcher is not None, "escalation needs both"
        index = a.escalation_step
        targets = await self.escalator.targets(conn, a, index)
        change = lifecycle.escalated(a, index + 1, [t.label for t in targets], now_us)
        self.escalations += 1
        outbox.extend(self.dispatcher.escalation(a, index + 1, targets, now_us))
        return change
