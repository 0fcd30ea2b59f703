"""Stuck (flat-lining) sensor, judged by how improbable the flat run is for this sensor.

A *run* is a stretch of statistical readings whose range (max − min) stays within ``tolerance``
(default: the kind's resolution, so a frozen transducer whose last digit flickers by one step is
one run; ``stuck_tolerance: 0`` asks for exact repeats). A reading that would widen the range
beyond the tolerance is a *change* and starts a new run at itself; otherwise it extends the run
of ``k`` readings. Each sensor learns how often its readings change — its noise seen at its
resolution — as exponentially weighted counts of readings ``n`` and of changes ``m`` (memory
``1/(1 − λ)`` readings). A run of k unchanged readings is judged against

    P(k) = (1 − c_lo / 2)^k

where c_lo is the Wilson lower confidence bound (one-sided 95 %) on the change frequency m/n:
with few readings (a sensor seen for a minute before it froze) the bound is low and a longer run
is needed. The change frequency is halved because quantised noise is not memoryless: a value in
its most likely bin (pair of adjacent bins, with a tolerance of one step) stays there more often
than the average frequency says, and for a quantised Gaussian of any σ/resolution and mean that
stay probability is at most 1 − c/2 (checked numerically over σ/resolution 0.2–10, for both
tolerances; a run measured from a fixed reference value instead of by its range would break this
bound by a factor of up to 80 at σ = 0.4 resolution). The threshold, 1e-9 by default, is small
because every reading starts a new run: about 8,600 chances a day for a sensor read every 10 s.

``stuck`` raises when either holds:

- **improbable**: P(k) ≤ ``probability`` and k ≥ ``min_count``, with the value above the
  bottom of the measuring range (range minimum + resolution: zero flow, clean air, a stopped
  fan read flat by nature). A sensor that has never varied (m = 0) never gets there;
- **floor**: exactly unchanged for ``after`` seconds and ``min_count`` readings (4 h by default;
  12 h for O2), for sensors with no learnt variability, unless a gas sensor is at its floor. Exact
  repeats, not the tolerance: a coarsely quantised sensor whose mean sits between two steps
  flickers between them for hours by nature.

It clears on the first change. A run is learnt (added to n, m) when it ends, so the run being
judged never erodes its own evidence; a run that raised ``stuck`` is never learnt. Cost: ~20
array operations per reading.
"""

from __future__ import annotations

import numpy as np
from detectors import rules
from detectors.findings import RAISE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.severity import Severity


WILSON_Z = 1.6448536269514722  # one-sided 95 %


def log_run_probability(n: np.ndarray, m: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log P(k unchanged readings) = k · log(1 − c_lo/2), c_lo the Wilson lower bound on m/n."""
    z2 = WILSON_Z * WILSON_Z
    nn = np.maximum(n, 1e-12)
    p = np.clip(m / nn, 0.0, 1.0)
    lo = (p + z2 / (2 * nn) - WILSON_Z * np.sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn))) / (1 + z2 / nn)
    return k * np.log1p(-0.5 * np.maximum(lo, 0.0))


class Stuck(ColumnDetector):
    def __init__(self) -> None:
        self.cfg = Columns(
            {
                "enabled": (np.bool_, False, 1),
                "after_us": (np.int64, 0, 1),
                "min_count": (np.int32, 20, 1),
                "tol": (np.float64, 0.0, 1),
                "floor": (np.float64, -np.inf, 1),  # gas floor for the time rule
                "quiet": (np.float64, -np.inf, 1),  # bottom of range for the probability rule
                "lam": (np.float64, 0.999, 1),  # forgetting factor of the change counts
                "logp": (np.float64, -np.inf, 1),  # log of the run probability that raises
            }
        )
        self.st = Columns(
            {
                "ref": (np.float64, np.nan, 1),  # first value of the run
                "lo": (np.float64, np.nan, 1),  # range of the run
                "hi": (np.float64, np.nan, 1),
                "since": (np.int64, NO_TS, 1),
                "xsince": (np.int64, NO_TS, 1),  # start of the current exact repeat
                "cnt": (np.int32, 0, 1),
                "n": (np.float64, 0.0, 1),  # weighted readings compared with their predecessor
                "m": (np.float64, 0.0, 1),  # weighted changes among them
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
        first = since0 == NO_TS
        lo = np.minimum(st.lo[s], x)
        hi = np.maximum(st.hi[s], x)
        moved = first | ~((hi - lo) <= cfg.tol[s])
        exact = ~first & (x == rd.prev_x[i])
        cnt0 = st.cnt[s]
        was = st.on[s]
        # a run that ends here is learnt: cnt0 unchanged readings, then one change
        learn = moved & ~first & ~was
        if learn.any():
            j = s[learn]
            lam = cfg.lam[j]
            decay = np.power(lam, cnt0[learn] + 1.0)
            st.n[j] = decay * st.n[j] + (1.0 - decay) / (1.0 - lam)
            st.m[j] = decay * st.m[j] + 1.0
        since = np.where(moved, t, since0)
        cnt = np.where(moved, 0, cnt0 + 1)
        st.ref[s] = np.where(moved, x, st.ref[s])
        st.lo[s] = np.where(moved, x, lo)
        st.hi[s] = np.where(moved, x, hi)
        st.since[s] = since
        xsince = np.where(exact, st.xsince[s], t)
        st.xsince[s] = xsince
        st.cnt[s] = cnt
        counted = cnt >= cfg.min_count[s]
        by_time = ((t - xsince) >= cfg.after_us[s]) & (x > cfg.floor[s])
        judge = counted & ~moved & ~was & ~by_time & (x > cfg.quiet[s])
        improbable = np.zeros_like(judge)
        if judge.any():
            j = s[judge]
            improbable[judge] = log_run_probability(st.n[j], st.m[j], cnt[judge].astype(np.float64)) <= cfg.logp[j]
        now = ~moved & (was | (counted & (by_time | improbable)))
        if not (now.any() or was.any()):
            return
        st.on[s] = now
        em.transitions(rules.STUCK, s, was, now, Severity.NOTICE, t, x, st.ref[s])

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.on)
        em.emit(rules.STUCK, s, RAISE, Severity.NOTICE, self.st.since[s], self.st.ref[s], self.st.ref[s])
