"""Grading: a finding's (industry, sensor kind, rule, severity) → warning colour.

Pure and cached: the policy's rules are tried top-down and the first match wins; with none, the
colour follows the finding's severity (``grading.defaults``). Upgrades for persisting and spreading
conditions are carried on the matched rule and applied by the lifecycle (time) and the service
(zone counts), never here.
"""

from __future__ import annotations

import dataclasses
import functools

from alerts.colours import Colour
from alerts.policy import Grading, GradingRule
from domain.severity import Severity

_GRADING_LABELS = ("industry", "kind", "rule", "severity", "location_class", "subject_kind", "enterprise")


@dataclasses.dataclass(frozen=True, slots=True)
class Grade:
    colour: Colour
    rule: GradingRule | None  # None: graded by the severity default


class Grader:
    def __init__(self, grading: Grading) -> None:
        self._grading = grading
        self.grade = functools.lru_cache(maxsize=65536)(self._grade)

    def _grade(
        self,
        industry: str,
        kind: str,
        rule: str,
        severity: Severity,
        location_class: str = "",
        subject_kind: str = "sensor",
        enterprise: str = "",
    ) -> Grade:
        labels = dict(
            zip(_GRADING_LABELS, (industry, kind, rule, severity.name.lower(), location_class, subject_kind, enterprise))
        )
        for r in self._grading.rules:
            if r.matchers.matches(labels):
                return Grade(r.colour, r)
        return Grade(self._grading.defaults.get(severity, Colour.BLUE), None)

    def rule_named(self, name: str | None) -> GradingRule | None:
        return self._grading.rule_named(name)
