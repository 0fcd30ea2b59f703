"""Rate of change: an EWMA of first differences, per second, against up/down limits.

For consecutive statistical readings (x₀, t₀), (x, t) with dt = t − t₀ seconds:

    slope = (x − x₀) / dt;  a = 1 − exp(−dt / τ);  r ← r + a (slope − r)      (r starts at 0)

``rate`` raises when r ≥ up or r ≤ −down (units per second; a NaN limit disables that side) and
holds while r stays beyond ``clear_fraction`` of the limit. The default up limit of a kind with
a high setpoint is 20 % of its first setpoint per minute (methane: 0.2 %VOL/min). The finding's
setpoint column is the limit in units per minute. Cost: ~10 array operations per reading.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import RAISE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.severity import Severity


class Rate(ColumnDetector):
    def __init__(self) -> None:
        self.cfg = Columns(
            {
                "enabled": (np.bool_, False, 1),
                "up": (np.float64, np.nan, 1),  # units/s, NaN = off
                "down": (np.float64, np.nan, 1),  # units/s (positive), NaN = off
                "tau_s": (np.float64, 60.0, 1),
                "clear_frac": (np.float64, 0.5, 1),
            }
        )
        self.st = Columns(
            {"r": (np.float64, 0.0, 1), "on": (np.bool_, False, 1), "raised_at": (np.int64, NO_TS, 1)}
        )

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        m = stat & rd.has_prev
        if not m.any():
            return
        i, s = rd.select(m, self.cfg.enabled)
        dt = rd.dt_s[i]
        slope = (rd.x[i] - rd.prev_x[i]) / dt
        a = -np.expm1(-dt / self.cfg.tau_s[s])
        r0 = self.st.r[s]
        r = r0 + a * (slope - r0)
        self.st.r[s] = r
        up = self.cfg.up[s]
        down = -self.cfg.down[s]
        cf = self.cfg.clear_frac[s]
        was = self.st.on[s]
        now = (r >= up) | (r <= down) | (was & ((r >= up * cf) | (r <= down * cf)))
        if not (now.any() or was.any()):
            return
        self.st.on[s] = now
        t = rd.t[i]
        new = now & ~was
        self.st.raised_at[s[new]] = t[new]
        limit = np.where(r >= 0, up, -down) * 60.0
        em.transitions(rules.RATE, s, was, now, Severity.NOTICE, t, rd.x[i], limit)

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.on)
        em.emit(rules.RATE, s, RAISE, Severity.NOTICE, self.st.raised_at[s], setpoint=self.cfg.up[s] * 60.0)
