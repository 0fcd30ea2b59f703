"""Robust trend and time-to-threshold (``ttt``).

Estimator: **robust Holt linear smoothing** (Gelper, Fried & Croux 2010, "Robust forecasting with
exponential and Holt–Winters smoothing", J. Forecasting 29:285–300), adapted to irregular
sampling. For a statistical reading x at t, dt seconds after the previous one:

    pred = ℓ + b·dt;  r = x − pred;  σₑ = max(σ, floor)
    ψ = clip(r, −k σₑ, +k σₑ)                      Huber ψ: one outlier moves the state ≤ k σₑ
    a = 1 − exp(−dt/τ_level);  g = 1 − exp(−dt/τ_slope);  λ = 1 − exp(−dt/τ_scale)
    ℓ ← pred + a ψ;   b ← b + g a ψ / dt;   σ ← σ + λ (min(|r|, 2k σₑ) − σ)

ℓ is the level, b the slope (units per second), σ a clipped mean absolute residual. Each reading
moves the slope by at most g·a·k·σₑ/dt whatever its size, so a burst of outliers on 30 % of a
window barely moves the trend (tests/detectors/test_trend.py), while a genuine ramp (residuals
within k σₑ) is followed. O(1) state, ~25 array operations per reading.

Time to threshold: with the next setpoint above (below) the level and b > 0 (b < 0),
ttt = (setpoint − ℓ)/b. ``ttt`` raises when ttt ≤ horizon after the warm-up and holds while
ttt ≤ clear_factor × horizon. Its setpoint column is the setpoint predicted to be crossed.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import RAISE, Emitter
from detectors.ladder import Ladder
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.severity import Severity


class Trend(ColumnDetector):
    def __init__(self, high: Ladder, low: Ladder, ttt: bool = True) -> None:
        self.high, self.low = high, low
        self.ttt_enabled = ttt
        self.cfg = Columns(
            {
                "enabled": (np.bool_, False, 1),
                "tau_l": (np.float64, 60.0, 1),
                "tau_b": (np.float64, 300.0, 1),
                "tau_sc": (np.float64, 1200.0, 1),
                "k": (np.float64, 1.5, 1),
                "floor": (np.float64, 1e-9, 1),
                "warmup": (np.int32, 12, 1),
                "horizon_s": (np.float64, 900.0, 1),
                "clear_factor": (np.float64, 2.0, 1),
            }
        )
        self.st = Columns(
            {
                "lv": (np.float64, np.nan, 1),
                "b": (np.float64, 0.0, 1),
                "sc": (np.float64, 0.0, 1),
                "n": (np.int32, 0, 1),
                "on": (np.bool_, False, 1),
                "target": (np.float64, np.nan, 1),
                "raised_at": (np.int64, NO_TS, 1),
            }
        )

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        i, s = rd.select(stat, self.cfg.enabled)
        if s.shape[0] == 0:
            return
        cfg, st = self.cfg, self.st
        x = rd.x[i]
        n0 = st.n[s]
        first = n0 == 0
        dt = np.where(first, 1.0, rd.dt_s[i])
        dt = np.where(np.isnan(dt), 1.0, dt)
        lv0 = np.where(first, x, st.lv[s])
        b0 = np.where(first, 0.0, st.b[s])
        sc0 = st.sc[s]
        se = np.maximum(sc0, cfg.floor[s])
        k = cfg.k[s]
        pred = lv0 + b0 * dt
        r = x - pred
        lim = k * se
        psi = np.clip(r, -lim, lim)
        a = -np.expm1(-dt / cfg.tau_l[s])
        g = -np.expm1(-dt / cfg.tau_b[s])
        lam = -np.expm1(-dt / cfg.tau_sc[s])
        lv = np.where(first, x, pred + a * psi)
        b = np.where(first, 0.0, b0 + g * a * psi / dt)
        sc = np.where(first, 0.0, sc0 + lam * (np.minimum(np.abs(r), 2.0 * lim) - sc0))
        n1 = n0 + 1
        st.lv[s] = lv
        st.b[s] = b
        st.sc[s] = sc
        st.n[s] = n1
        if not self.ttt_enabled:
            return
        hi = self.high.next_threshold(s)
        lo = self.low.next_threshold(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_hi = np.where((b > 0) & (lv < hi), (hi - lv) / b, np.inf)
            t_lo = np.where((b < 0) & (lv > lo), (lo - lv) / b, np.inf)
        ttt = np.minimum(t_hi, t_lo)
        target = np.where(t_hi <= t_lo, hi, lo)
        hz = cfg.horizon_s[s]
        was = st.on[s]
        warm = n1 >= cfg.warmup[s]
        now = warm & ((ttt <= hz) | (was & (ttt <= hz * cfg.clear_factor[s])))
        if not (now.any() or was.any()):
            return
        st.on[s] = now
        t = rd.t[i]
        new = now & ~was
        st.raised_at[s[new]] = t[new]
        st.target[s[now]] = target[now]
        sp = np.where(now, target, st.target[s])
        em.transitions(rules.TTT, s, was, now, Severity.NOTICE, t, x, sp)

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.on)
        em.emit(rules.TTT, s, RAISE, Severity.NOTICE, self.st.raised_at[s], setpoint=self.st.target[s])
