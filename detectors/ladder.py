"""Limit ladders: HH/H/L/LL and the coal alarm / power-cut / restore triple, with hysteresis.

Each side (high, low) of a sensor has up to D = LADDER_DEPTH rungs sorted by severity. A low side
is stored negated (value ↦ −value) so one code path serves both. For a reading x (every trusted
reading, late or not — setpoint checks act on each reading as it arrives):

    up   = number of rungs with x ≥ raise[k]                      (rungs sorted ascending)
    hold = highest rung k ≤ raw with x ≥ clear[k]                 (clear = restore / value − deadband)
    raw' = max(up, hold); since' = t if raw' ≠ raw
    level' = raw' once it has held for the on-delay (rising) or off-delay (falling); both default 0

The finding's severity is the rung's severity (cumulative maximum up the ladder); an event is
emitted only when the severity changes. Cost: O(D) comparisons per reading.
"""

from __future__ import annotations

import numpy as np

from detectors.findings import CLEAR, RAISE, UPDATE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.setpoints import LADDER_DEPTH

D = LADDER_DEPTH
_K = np.arange(1, D + 1, dtype=np.int8)


class Ladder(ColumnDetector):
    def __init__(self, rule: str, sign: float) -> None:
        self.rule = rule
        self.sign = sign
        self.depth = D  # rungs in use by any sensor (set by the engine); the rest are padding  # +1 high side, −1 low side (values negated)
        self.cfg = Columns(
            {
                "thr": (np.float64, np.inf, D),  # raise values (negated for low), ascending
                "clr": (np.float64, np.inf, D),  # clear values (negated for low)
                "sev": (np.int8, 0, D + 1),  # severity per level, column 0 = none
                "on_delay_us": (np.int64, 0, 1),
                "off_delay_us": (np.int64, 0, 1),
            }
        )
        self.st = Columns(
            {
                "raw": (np.int8, 0, 1),
                "lvl": (np.int8, 0, 1),
                "since": (np.int64, NO_TS, 1),
                "raised_at": (np.int64, NO_TS, 1),
                "value": (np.float64, np.nan, 1),
            }
        )

    def step(self, rd: Round, em: Emitter) -> None:
        m = rd.ladder
        if not m.any():
            return
        if m.all():
            s, t, xs, xo = rd.s, rd.t, rd.xl, rd.x
        else:
            idx = np.flatnonzero(m)
            s, t, xs, xo = rd.s[idx], rd.t[idx], rd.xl[idx], rd.x[idx]
        x = xs if self.sign > 0 else -xs
        cfg, st = self.cfg, self.st
        dp = self.depth
        thr = cfg.thr[:, :dp][s]
        raw0 = st.raw[s]
        up = (x[:, None] >= thr).sum(axis=1, dtype=np.int8)
        any_raw0 = raw0.any()
        if any_raw0:
            k = _K[None, :dp]
            held = (k <= raw0[:, None]) & (x[:, None] >= cfg.clr[:, :dp][s])
            hold = np.where(held, k, np.int8(0)).max(axis=1)
            raw = np.maximum(up, hold)
        else:
            raw = up
        lvl0 = st.lvl[s]
        if not (raw.any() or lvl0.any() or any_raw0):
            return
        since = np.where(raw != raw0, t, st.since[s])
        el = t - since
        on_d = cfg.on_delay_us[s]
        off_d = cfg.off_delay_us[s]
        go = ((raw > lvl0) & ((on_d <= 0) | (el >= on_d))) | ((raw < lvl0) & ((off_d <= 0) | (el >= off_d)))
        lvl = np.where(go, raw, lvl0)
        st.raw[s] = raw
        st.since[s] = since
        st.lvl[s] = lvl
        sev = cfg.sev[s]
        rows = np.arange(s.shape[0])
        sev0 = sev[rows, lvl0]
        sev1 = sev[rows, lvl]
        ch = sev0 != sev1
        if not ch.any():
            return
        i = np.flatnonzero(ch)
        si, s0, s1, li, l0 = s[i], sev0[i], sev1[i], lvl[i], lvl0[i]
        ev = np.where(s0 == 0, RAISE, np.where(s1 == 0, CLEAR, UPDATE))
        level = np.where(s1 == 0, l0, li)
        setpoint = self.sign * cfg.thr[si, np.maximum(level, 1) - 1]
        raised = s0 == 0
        st.raised_at[si[raised]] = t[i][raised]
        st.value[si] = xo[i]
        em.emit(self.rule, si, ev, np.where(s1 == 0, s0, s1), t[i], xo[i], setpoint)

    def next_threshold(self, s: np.ndarray) -> np.ndarray:
        """The raise value of the next rung above each sensor's current level (±inf if none),
        in the original sign."""
        lvl = self.st.lvl[s].astype(np.int64)
        thr = np.where(lvl < D, self.cfg.thr[s, np.minimum(lvl, D - 1)], np.inf)
        return self.sign * thr

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.lvl)
        sev = self.cfg.sev[s, self.st.lvl[s]]
        keep = sev > 0
        s, lvl = s[keep], self.st.lvl[s[keep]]
        em.emit(self.rule, s, RAISE, sev[keep], self.st.raised_at[s], self.st.value[s],
                self.sign * self.cfg.thr[s, lvl - 1])
