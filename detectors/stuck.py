"""Stuck (flat-lining) sensor.

A statistical reading that differs from the reference value by more than ``tolerance`` (default
0: any change) resets the reference to itself. ``stuck`` raises once the value has stayed within
tolerance for ``after`` seconds and ``min_count`` readings, unless the value is at the kind's
quiet floor (a gas sensor in clean air reads its floor for hours: range minimum + resolution);
it clears on the first change. Cost: ~10 array operations per reading.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import RAISE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.severity import Severity


class Stuck(ColumnDetector):
    def __init__(self) -> None:
        self.cfg = Columns(
            {
                "enabled": (np.bool_, False, 1),
                "after_us": (np.int64, 0, 1),
                "min_count": (np.int32, 20, 1),
                "tol": (np.float64, 0.0, 1),
                "floor": (np.float64, -np.inf, 1),
            }
        )
        self.st = Columns(
            {
                "ref": (np.float64, np.nan, 1),
                "since": (np.int64, NO_TS, 1),
                "cnt": (np.int32, 0, 1),
                "on": (np.bool_, False, 1),
            }
        )

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        i, s = rd.select(stat, self.cfg.enabled)
        if s.shape[0] == 0:
            return
        cfg, st = self.cfg, self.st
        x, t = rd.x[i], rd.t[i]
        since0 = st.since[s]
        moved = (since0 == NO_TS) | ~(np.abs(x - st.ref[s]) <= cfg.tol[s])
        since = np.where(moved, t, since0)
        cnt = np.where(moved, 0, st.cnt[s] + 1)
        st.ref[s] = np.where(moved, x, st.ref[s])
        st.since[s] = since
        st.cnt[s] = cnt
        was = st.on[s]
        now = ~moved & (was | (((t - since) >= cfg.after_us[s]) & (cnt >= cfg.min_count[s]) & (x > cfg.floor[s])))
        if not (now.any() or was.any()):
            return
        st.on[s] = now
        em.transitions(rules.STUCK, s, was, now, Severity.NOTICE, t, x, st.ref[s])

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.on)
        em.emit(rules.STUCK, s, RAISE, Severity.NOTICE, self.st.since[s], self.st.ref[s], self.st.ref[s])
