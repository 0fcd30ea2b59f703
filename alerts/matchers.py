"""Label matchers shared by grading rules, routes, inhibition rules, silences and maintenance.

An alert's labels are strings (see :mod:`alerts.labels`). A matcher maps a label to the patterns it
accepts: a single pattern or a list (any of them). Patterns are shell globs (``compound.*``), so
an exact string matches itself. Two labels have their own semantics:

- ``region`` matches when the pattern is the alert's region *or any of its ancestors*
  (``region: "360100"`` matches every enterprise in 南昌市 and its counties);
- ``grade_min`` (a colour) matches alerts of that grade or higher.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping

from alerts.colours import Colour

LABELS = (
    "alert_key",
    "subject_kind",  # sensor | gateway | zone
    "subject",  # dense id as a string
    "subject_code",
    "rule",
    "kind",  # sensor kind (catalog id); "" for gateway and zone subjects
    "location_class",
    "enterprise",
    "industry",
    "region",  # the enterprise's region code (ancestors match too)
    "zone",  # zone code
    "gateway",  # gateway code
    "grade",  # colour id: blue | yellow | orange | red
    "severity",  # finding severity: notice | warning | alarm | critical
)
_MATCHABLE = frozenset(LABELS) | {"grade_min"}


class MatcherError(ValueError):
    """A matcher names an unknown label or has a bad pattern."""


@dataclasses.dataclass(frozen=True, slots=True)
class Matchers:
    """Conjunction of label matchers; empty matches everything."""

    patterns: tuple[tuple[str, tuple[str, ...]], ...] = ()
    grade_min: Colour | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, object] | None) -> Matchers:
        if not raw:
            return cls()
        patterns = []
        grade_min = None
        for key, value in raw.items():
            if key not in _MATCHABLE:
                raise MatcherError(f"unknown label {key!r}; known labels: {', '.join(sorted(_MATCHABLE))}")
            if key == "grade_min":
                try:
                    grade_min = Colour.parse(value)  # type: ignore[arg-type]
                except ValueError as exc:
                    raise MatcherError(f"grade_min: {exc}") from None
                continue
            values = value if isinstance(value, list | tuple) else [value]
            if not values:
                raise MatcherError(f"{key}: an empty list matches nothing; leave the label out instead")
            texts = tuple(str(v) for v in values)
            if key == "grade":
                try:
                    texts = tuple(Colour.parse(v).id for v in texts)
                except ValueError as exc:
                    raise MatcherError(f"grade: {exc}") from None
            patterns.append((key, texts))
        return cls(tuple(patterns), grade_min)

    def matches(self, labels: Mapping[str, str], regions: tuple[str, ...] = ()) -> bool:
        """``regions`` is the alert's region chain, the region itself first."""
        if self.grade_min is not None:
            grade = labels.get("grade")
            if not grade or Colour.parse(grade) < self.grade_min:
                return False
        for key, pats in self.patterns:
            if key == "region":
                chain = regions or ((labels.get("region") or ""),)
                if not any(p in chain for p in pats):
                    return False
                continue
            value = labels.get(key, "")
            if not any(fnmatch.fnmatchcase(value, p) for p in pats):
                return False
        return True

    def as_dict(self) -> dict[str, list[str] | str]:
        out: dict[str, list[str] | str] = {k: list(v) for k, v in self.patterns}
        if self.grade_min is not None:
            out["grade_min"] = self.grade_min.id
        return out

    def __bool__(self) -> bool:
        return bool(self.patterns) or self.grade_min is not None
