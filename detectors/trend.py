"""Trend that keeps up with the ramp, and time-to-threshold (``ttt``).

Two parts per sensor, both O(1) state and vectorised over sensors.

**Robust Holt linear smoothing** (Gelper, Fried & Croux 2010, "Robust forecasting with
exponential and Holt–Winters smoothing", J. Forecasting 29:285–300), adapted to irregular
sampling, follows slow trends and shrugs off outliers. For a statistical reading x at t, dt
seconds after the previous one:

    pred = ℓ + b·dt;  r = x − pred;  σₑ = max(σ, floor)
    ψ = clip(r, −k σₑ, +k σₑ)                      Huber ψ: one outlier moves the state ≤ k σₑ
    a = 1 − exp(−dt/τ_level);  g = 1 − exp(−dt/τ_slope);  λ = max(1 − exp(−dt/τ_scale), 1/n)
    ℓ ← pred + a ψ;   b ← b + g a ψ / dt;   σ ← σ + λ (min(|r|, 2k σₑ) − σ)

Each reading moves the slope by at most g·a·k·σₑ/dt, so the Holt alone lags a fast ramp by
minutes. **Re-anchoring** removes the lag: a two-sided CUSUM (Page 1954) of the standardised
residuals z = r / (1.2533 σₑ) (σₑ is a mean absolute residual),

    u ← max(0, u + z − κ);   d ← max(0, d − z − κ),

finds residuals that stay on one side. While either sum is positive the readings since it last
left zero form a *run*, anchored at the Holt level ℓ₀ where it began; the run keeps the sums of
a least-squares line through (0, ℓ₀) and its readings (times and values relative to the anchor).
When a sum reaches h and the run holds at least two readings beyond the anchor, the line is fitted
and, if it explains the run (residual variance ≤ fit_tol·σ², so a burst of spikes or a lone
outlier is not taken for a ramp), the Holt state is set to it: ℓ ← the line at t, b ← its slope.
The sums and the run then restart. A ramp is told from a spike by its second reading: a 10 σ per
reading rise is followed from its second reading, a 0.01 σ per reading one by the Holt alone.

Before ``warmup`` readings the CUSUM does not run (the residual scale is still being learnt, by a
running mean), and ``ttt`` does not warn.

Time to threshold: with the next setpoint above (below) the level and b > 0 (b < 0),
ttt = (setpoint − ℓ)/b. ``ttt`` raises when ttt ≤ horizon after the warm-up and holds while
ttt ≤ clear_factor × horizon. Its setpoint column is the setpoint predicted to be crossed, its
``eta_s`` column the predicted seconds left (at the raise).
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import RAISE, Emitter
from detectors.ladder import Ladder
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.severity import Severity

MEAN_ABS_TO_SD = 1.2533141373155001  # σ / E|e| for a normal residual


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
                "kappa": (np.float64, 1.0, 1),
                "h": (np.float64, 8.0, 1),
                "fit_tol": (np.float64, 16.0, 1),
                "slope_z": (np.float64, 4.0, 1),
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
                # CUSUM of the residuals and the run since it left zero
                "up": (np.float64, 0.0, 1),
                "dn": (np.float64, 0.0, 1),
                "t0": (np.int64, 0, 1),  # anchor time, µs
                "x0": (np.float64, 0.0, 1),  # anchor level
                "s0": (np.float64, 1.0, 1),  # points in the run, the anchor included
                "st": (np.float64, 0.0, 1),  # Σ Δt (s)
                "stt": (np.float64, 0.0, 1),  # Σ Δt²
                "sx": (np.float64, 0.0, 1),  # Σ Δx
                "stx": (np.float64, 0.0, 1),  # Σ Δt Δx
                "sxx": (np.float64, 0.0, 1),  # Σ Δx²
                "on": (np.bool_, False, 1),
                "target": (np.float64, np.nan, 1),
                "eta_s": (np.float64, np.nan, 1),
                "raised_at": (np.int64, NO_TS, 1),
            }
        )

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        i, s = rd.select(stat, self.cfg.enabled)
        if s.shape[0] == 0:
            return
        cfg, st = self.cfg, self.st
        x = rd.x[i]
        t = rd.t[i]
        n0 = st.n[s]
        n1 = n0 + 1
        first = n0 == 0
        cold = bool(first.any())  # the where()s for a first reading only when there is one
        dt = rd.dt_s[i]
        if cold:
            dt = np.where(first | np.isnan(dt), 1.0, dt)
            lv0 = np.where(first, x, st.lv[s])
            b0 = np.where(first, 0.0, st.b[s])
        else:
            lv0, b0 = st.lv[s], st.b[s]
        sc0 = st.sc[s]
        se = np.maximum(sc0, cfg.floor[s])
        pred = lv0 + b0 * dt
        r = x - pred
        lim = cfg.k[s] * se
        psi = np.clip(r, -lim, lim)
        a = -np.expm1(-dt / cfg.tau_l[s])
        apsi = a * psi
        lv = pred + apsi
        b = b0 + (-np.expm1(-dt / cfg.tau_b[s])) * apsi / dt
        lam = np.maximum(-np.expm1(-dt / cfg.tau_sc[s]), 1.0 / n1)
        sc = sc0 + lam * (np.minimum(np.abs(r), 2.0 * lim) - sc0)
        if cold:
            lv = np.where(first, x, lv)
            b = np.where(first, 0.0, b)
            sc = np.where(first, 0.0, sc)
        warm = n1 >= cfg.warmup[s]
        self._reanchor(s, t, rd.prev_t[i], x, r / (MEAN_ABS_TO_SD * se), warm, lv0, lv, b, se)
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
        hz = cfg.horizon_s[s]
        was = st.on[s]
        now = warm & ((ttt <= hz) | (was & (ttt <= hz * cfg.clear_factor[s])))
        if not (now.any() or was.any()):
            return
        target = np.where(t_hi <= t_lo, hi, lo)
        st.on[s] = now
        new = now & ~was
        st.raised_at[s[new]] = t[new]
        st.eta_s[s[new]] = ttt[new]
        st.target[s[now]] = target[now]
        sp = np.where(now, target, st.target[s])
        em.transitions(rules.TTT, s, was, now, Severity.NOTICE, t, x, sp, eta_s=np.where(new, ttt, np.nan))

    def _reanchor(self, s, t, t_prev, x, z, warm, lv0, lv, b, se) -> None:
        """CUSUM and run update; where a run is a ramp, ``lv`` and ``b`` are set to its line (in
        place). Stores lv and b. Only sensors whose CUSUM is off zero keep a run: one that starts
        now is anchored at the previous reading's Holt level (lv0 at t_prev)."""
        cfg, st = self.cfg, self.st
        kappa = cfg.kappa[s]
        up0, dn0 = st.up[s], st.dn[s]
        up = np.maximum(up0 + z - kappa, 0.0)
        dn = np.maximum(dn0 - z - kappa, 0.0)
        if not warm.all():
            up = np.where(warm, up, 0.0)
            dn = np.where(warm, dn, 0.0)
        j = np.flatnonzero((up > 0.0) | (dn > 0.0))
        if j.shape[0]:
            self._run(s, j, t, t_prev, x, lv0, lv, b, se, up, dn, up0, dn0)
        st.up[s] = up
        st.dn[s] = dn
        st.lv[s] = lv
        st.b[s] = b

    def _run(self, s, j, t, t_prev, x, lv0, lv, b, se, up, dn, up0, dn0) -> None:
        """The runs of rows ``j``: add the reading (times and values relative to the anchor), and
        where a CUSUM reached h with two readings beyond the anchor, fit the line."""
        cfg, st = self.cfg, self.st
        sj = s[j]
        fresh = (up0[j] <= 0.0) & (dn0[j] <= 0.0)
        if fresh.any():
            f, jf = sj[fresh], j[fresh]
            st.t0[f] = t_prev[jf]
            st.x0[f] = lv0[jf]
            st.s0[f] = 1.0
            for col in (st.st, st.stt, st.sx, st.stx, st.sxx):
                col[f] = 0.0
        dts = (t[j] - st.t0[sj]) * 1e-6
        dx = x[j] - st.x0[sj]
        s0 = st.s0[sj] + 1.0
        sum_t = st.st[sj] + dts
        stt = st.stt[sj] + dts * dts
        sx = st.sx[sj] + dx
        stx = st.stx[sj] + dts * dx
        sxx = st.sxx[sj] + dx * dx
        st.s0[sj], st.st[sj], st.stt[sj], st.sx[sj], st.stx[sj], st.sxx[sj] = s0, sum_t, stt, sx, stx, sxx
        h = cfg.h[sj]
        alarm = ((up[j] >= h) | (dn[j] >= h)) & (s0 >= 3.0)
        if not alarm.any():
            return
        a = np.flatnonzero(alarm)
        ja, sa = j[a], sj[a]
        m = s0[a]
        tm, xm = sum_t[a] / m, sx[a] / m
        vtt = stt[a] - sum_t[a] * tm
        vtx = stx[a] - sum_t[a] * xm
        vxx = sxx[a] - sx[a] * xm
        slope = vtx / vtt
        rss = np.maximum(vxx - slope * vtx, 0.0)
        sd = MEAN_ABS_TO_SD * se[ja]
        line = rss <= cfg.fit_tol[sa] * sd * sd * (m - 2.0)
        zb = cfg.slope_z[sa]
        ramp = line & (slope * slope * vtt >= zb * zb * sd * sd)
        k = ja[ramp]
        lv[k] = st.x0[sa[ramp]] + xm[ramp] + slope[ramp] * (dts[a[ramp]] - tm[ramp])
        b[k] = slope[ramp]
        done = ja[ramp | ~line]  # a ramp re-anchors; a run that is no line is dropped; else it goes on
        up[done] = 0.0
        dn[done] = 0.0

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.on)
        em.emit(rules.TTT, s, RAISE, Severity.NOTICE, self.st.raised_at[s], setpoint=self.st.target[s],
                eta_s=self.st.eta_s[s])
