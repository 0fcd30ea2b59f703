"""Collect finding chunks from the detectors of one call and build one :class:`FindingBatch`."""

from __future__ import annotations

import numpy as np

from domain.messages import RULE_DTYPE, FindingBatch
from domain.severity import FindingEvent, SubjectKind

RAISE = np.int8(FindingEvent.RAISE)
UPDATE = np.int8(FindingEvent.UPDATE)
CLEAR = np.int8(FindingEvent.CLEAR)


class Emitter:
    """Chunks of findings, each a rule with equal-length columns. ``silent`` drops everything
    (state replay after a restart)."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self._chunks: list[tuple] = []

    def emit(
        self,
        rule: str,
        subject: np.ndarray,
        event: np.ndarray | int,
        severity: np.ndarray | int,
        ts_us: np.ndarray | int,
        value: np.ndarray | float = np.nan,
        setpoint: np.ndarray | float = np.nan,
        subject_kind: SubjectKind = SubjectKind.SENSOR,
        eta_s: np.ndarray | float = np.nan,
    ) -> None:
        n = subject.shape[0]
        if self.silent or n == 0:
            return

        def col(x, dtype):
            a = np.asarray(x, dtype=dtype)
            return np.full(n, a, dtype=dtype) if a.ndim == 0 else a

        self._chunks.append(
            (
                np.full(n, subject_kind, np.int8),
                subject.astype(np.int32, copy=False),
                rule,
                col(event, np.int8),
                col(severity, np.int8),
                col(ts_us, np.int64),
                col(value, np.float64),
                col(setpoint, np.float64),
                col(eta_s, np.float64),
            )
        )

    def transitions(
        self,
        rule: str,
        subject: np.ndarray,
        was: np.ndarray,
        now: np.ndarray,
        severity: np.ndarray | int,
        ts_us: np.ndarray,
        value: np.ndarray | float = np.nan,
        setpoint: np.ndarray | float = np.nan,
        eta_s: np.ndarray | float = np.nan,
    ) -> None:
        """Emit raise where ``now & ~was`` and clear where ``was & ~now`` (two-state rules)."""
        change = was != now
        if self.silent or not change.any():
            return
        idx = np.flatnonzero(change)
        ev = np.where(now[idx], RAISE, CLEAR)

        def sel(a):
            a = np.asarray(a)
            return a if a.ndim == 0 else a[idx]

        self.emit(rule, subject[idx], ev, sel(severity), sel(ts_us), sel(value), sel(setpoint), eta_s=sel(eta_s))

    def __len__(self) -> int:
        return sum(c[1].shape[0] for c in self._chunks)

    def batch(self) -> FindingBatch:
        if not self._chunks:
            return FindingBatch.empty()
        cols = list(zip(*self._chunks, strict=True))
        rule = np.concatenate([np.full(c[1].shape[0], c[2], dtype=RULE_DTYPE) for c in self._chunks])
        return FindingBatch(
            subject_kind=np.concatenate(cols[0]),
            subject=np.concatenate(cols[1]),
            rule=rule,
            event=np.concatenate(cols[3]),
            severity=np.concatenate(cols[4]),
            ts_us=np.concatenate(cols[5]),
            value=np.concatenate(cols[6]),
            setpoint=np.concatenate(cols[7]),
            eta_s=np.concatenate(cols[8]),
        )
