"""Robust EWMA anomaly score in [0, 1] that never learns from the points it flags.

State per sensor: mean μ, mean absolute deviation d, count n. For a statistical reading x:

    σ̂ = max(1.2533 d, floor)          (1.2533 = √(π/2): mean absolute deviation → σ, Gaussian)
    z = |x − μ| / σ̂;   score = 1 − exp(−z / z_ref)          (score 0 during the warm-up)
    flagged = warm and score ≥ threshold

Unflagged readings are learnt with an explicit alpha (1/n during the warm-up) and Huber
clipping at ``huber`` σ̂:  e = clip(x − μ, ±huber σ̂);  μ += α e;  d += α (min(|x − μ|, huber σ̂) − d).
Flagged readings are never learnt, so a long excursion never becomes the new normal.

``anomaly`` raises on a flagged reading unless it is within the refractory period after the
last clear, and holds while score ≥ clear. Its setpoint column is the score. Scoring (the score
array, also written by the backtest) is separate from deciding (the finding). Cost: ~25 array
operations per reading.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns, decide_scored, emit_active_scored

MAD_TO_SIGMA = 1.2533141373155001  # √(π/2)


class Anomaly(ColumnDetector):
    def __init__(self) -> None:
        self.cfg = Columns(
            {
                "enabled": (np.bool_, False, 1),
                "alpha": (np.float64, 0.02, 1),
                "th": (np.float64, 0.75, 1),
                "clr": (np.float64, 0.5, 1),
                "zref": (np.float64, 4.0, 1),
                "huber": (np.float64, 3.0, 1),
                "warmup": (np.int32, 30, 1),
                "refr_us": (np.int64, 0, 1),
                "floor": (np.float64, 1e-9, 1),
            }
        )
        self.st = Columns(
            {
                "mu": (np.float64, 0.0, 1),
                "d": (np.float64, 0.0, 1),
                "n": (np.int32, 0, 1),
                "on": (np.bool_, False, 1),
                "last_clear": (np.int64, NO_TS, 1),
                "raised_at": (np.int64, NO_TS, 1),
                "score": (np.float32, 0.0, 1),
            }
        )

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        i, s = rd.select(stat, self.cfg.enabled)
        if s.shape[0] == 0:
            return
        cfg, st = self.cfg, self.st
        x = rd.x[i]
        n0 = st.n[s]
        mu0 = st.mu[s]
        d0 = st.d[s]
        warm = n0 >= cfg.warmup[s]
        sd = np.maximum(d0 * MAD_TO_SIGMA, cfg.floor[s])
        e = x - mu0
        z = np.abs(e) / sd
        score = np.where(warm, -np.expm1(-z / cfg.zref[s]), 0.0)
        flagged = warm & (score >= cfg.th[s])
        learn = ~flagged
        a = np.where(warm, cfg.alpha[s], 1.0 / (n0 + 1.0))
        lim = cfg.huber[s] * sd
        ec = np.where(warm, np.clip(e, -lim, lim), e)
        ad = np.where(warm, np.minimum(np.abs(e), lim), np.where(n0 == 0, 0.0, np.abs(e)))
        st.mu[s] = np.where(learn, mu0 + a * ec, mu0)
        st.d[s] = np.where(learn, d0 + a * (ad - d0), d0)
        st.n[s] = n0 + learn
        decide_scored(rules.ANOMALY, cfg, st, s, rd.t[i], x, score, flagged, warm, em)

    def active(self, em: Emitter) -> None:
        emit_active_scored(rules.ANOMALY, self.st, em)
