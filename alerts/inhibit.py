"""Inhibition: an open, active source alert suppresses notifications of target alerts.

Evaluated when a group is flushed, against the alerts' durable state, so the outcome does not
depend on the order in which findings arrived or on a restart (Alertmanager #2229, #4064): all
findings of one batch are applied before any routing, and a group waits ``group_wait`` before its
first flush. An alert never inhibits itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from alerts.lifecycle import OPEN_STATES, Alert
from alerts.policy import InhibitRule


class Inhibitor:
    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self.rules = tuple(rules)

    @staticmethod
    def is_source_candidate(alert: Alert) -> bool:
        return alert.active and alert.state in OPEN_STATES

    def inhibited(self, targets: Sequence[Alert], sources: Sequence[Alert]) -> dict[int, str]:
        """``{target alert id: "rule name (by alert key)"}`` for each inhibited target.

        Rules apply in policy order, and an alert inhibited by an earlier rule inhibits nothing
        itself, so two alerts never silence each other (a faulty sensor's yellow value alert,
        inhibited by the fault, does not in turn hide the blue fault under "higher grade wins").
        Inhibition is computed over all candidate alerts, not only this flush's targets, so the
        outcome does not depend on which group flushes first.
        """
        out: dict[int, str] = {}
        if not self.rules or not targets:
            return out
        every = {a.id: a for a in (*sources, *targets)}
        candidates = list(every.values())
        for rule in self.rules:
            index: dict[tuple[str, ...], list[Alert]] = defaultdict(list)
            for s in candidates:
                if s.id in out or not self.is_source_candidate(s):
                    continue
                if rule.source.matches(s.labels, s.regions):
                    key = tuple(s.labels.get(k, "") for k in rule.equal)
                    if all(key):
                        index[key].append(s)
            if not index:
                continue
            for t in candidates:
                if t.id in out or not rule.target.matches(t.labels, t.regions):
                    continue
                key = tuple(t.labels.get(k, "") for k in rule.equal)
                for s in index.get(key, ()):
                    if s.id == t.id or s.id in out:
                        continue
                    if rule.source_grade_higher and not s.grade > t.grade:
                        continue
                    out[t.id] = f"{rule.name} (by {s.alert_key})"
                    break
        wanted = {t.id for t in targets}
        return {k: v for k, v in out.items() if k in wanted}
