"""Implausible jump: one step between consecutive statistical readings larger than ``limit``
(default half the measuring range).

``jump`` raises on the jumping reading and remembers the value before it; it clears when a
reading comes back within ``limit`` of that value (a spike) or after ``hold`` seconds (a real
step, now accepted). Jumps never suppress setpoint findings: an outburst is a real jump.
Cost: ~10 array operations per reading.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import RAISE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.severity import Severity


class Jump(ColumnDetector):
    def __init__(self) -> None:
        self.cfg = Columns(
            {"enabled": (np.bool_, False, 1), "limit": (np.float64, np.inf, 1), "hold_us": (np.int64, 0, 1)}
        )
        self.st = Columns({"on": (np.bool_, False, 1), "ref": (np.float64, np.nan, 1), "since": (np.int64, NO_TS, 1)})

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        m = stat & rd.has_prev
        if not m.any():
            return
        i, s = rd.select(m, self.cfg.enabled)
        cfg, st = self.cfg, self.st
        x, t, px = rd.x[i], rd.t[i], rd.prev_x[i]
        lim = cfg.limit[s]
        was = st.on[s]
        start = ~was & (np.abs(x - px) > lim)
        if not (start.any() or was.any()):
            return
        ref0, since0 = st.ref[s], st.since[s]
        back = was & (np.abs(x - ref0) <= lim)
        held = was & ((t - since0) >= cfg.hold_us[s])
        now = start | (was & ~back & ~held)
        st.on[s] = now
        st.ref[s] = np.where(start, px, ref0)
        st.since[s] = np.where(start, t, since0)
        em.transitions(rules.JUMP, s, was, now, Severity.NOTICE, t, x, lim)

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.on)
        em.emit(rules.JUMP, s, RAISE, Severity.NOTICE, self.st.since[s], setpoint=self.cfg.limit[s])
