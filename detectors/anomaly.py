"""Calibrated anomaly score: the tail probability of a reading's one-step prediction residual.

Per sensor, two one-step predictors run side by side: a robust Holt line (level ℓ, slope b per
reading, Huber-clipped updates) and the previous reading. Each keeps an EWMA of its clipped absolute
residual (mean absolute deviation d); the predictor with the smaller d predicts, so a white-noise
stream is judged against its smoothed level and a strongly autocorrelated one (AR(1) ρ = 0.95, a
random walk) against its last value:

    r = x − prediction;   σ̂ = max(√(π/2) d, floor);   z = |r| / σ̂

The p-value of z is calibrated on the sensor's own residuals: ``tail`` holds, for the levels
TAIL_Z = 2, 3, 4, 6, 9, 14, 21, 32, an EWMA (memory ``tail_memory`` readings) of how often z
exceeded each level. With f̃ = max(f, the Gaussian tail at the level), p(z) is the log–log
interpolation of f̃ between the levels around z (a Pareto tail of index 3 beyond the last), and
never below the Gaussian tail erfc(z/√2). A sensor whose residuals are Student-t or whose signal
jumps every few hours thus learns that large residuals are ordinary for it. The score is 1 − p.

Deciding: with u = sign(r) Φ⁻¹(1 − p/2) the calibrated normal score, four log-likelihood-ratio
CUSUMs (Page 1954) accumulate evidence of a change: level up and down (a shift of ``shift_sigma``
σ̂: δ(±u − δ/2)), variance up (a doubling: 3u²/8 − ln 2) and variance down (a halving:
ln 2 − 3u²/2, only while σ̂ is at least twice the floor, so a constant signal is not "too quiet").
A single reading's evidence is −ln p. The evidence is the largest of the five; ``anomaly`` raises
when it reaches h after the warm-up, holds while it stays at ``clear`` × h, and cannot raise again
within the refractory period after the last clear. The level is derived, not tuned: with a budget
of B false raises per 1,000 sensor-hours and R readings per hour (from the sensor's expected
interval), the per-reading false-raise probability is ε = B / (1000 R), shared by the five
statistics, and h = ln(5 / ε) (for a log-likelihood-ratio CUSUM the false-alarm rate is at most
e^(−h) per reading; for −ln p it is exactly that). Everything is learnt from every reading: a long
excursion raises once and then becomes the sensor's new normal. ~70 array operations per reading.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from detectors import rules
from detectors.findings import Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns, decide_scored, emit_active_scored

MEAN_ABS_DEV_TO_SIGMA = math.sqrt(math.pi / 2.0)  # mean absolute deviation → σ, Gaussian
TAIL_Z = np.array([2.0, 3.0, 4.0, 6.0, 9.0, 14.0, 21.0, 32.0])
TAIL_LOG_Z = np.log(TAIL_Z)
TAIL_GAUSS = special.erfc(TAIL_Z / math.sqrt(2.0))
PARETO_INDEX = 1.0  # beyond the highest populated level the learnt tail falls at least as z^-1
STATISTICS = 5  # level up, level down, variance up, variance down, single reading
SETTLE = 10  # readings before residuals are scored (the predictors' own start)
LN2 = math.log(2.0)
EVIDENCE_LEVELS = np.array([1.0, 1.5, 2.0, 3.0, 5.0])  # × the decision level
EVIDENCE_FLATTEST = 0.25  # beyond the highest level reached, the evidence tail falls at least as e^(−E/4)


def decision_level(budget_per_1000h: float, interval_s: np.ndarray) -> np.ndarray:
    """h = ln(STATISTICS / ε), ε = budget / (1000 × readings per hour): the evidence level whose
    false-raise probability per reading, shared by the statistics, meets the budget."""
    readings_per_hour = 3600.0 / np.maximum(interval_s, 1e-3)
    eps = budget_per_1000h / (1000.0 * readings_per_hour)
    return np.log(STATISTICS / eps)


def _learnt_tail(position, level_pos, log_rate, populated, continuation) -> np.ndarray:
    """Log tail probability at ``position`` (m,) from log exceedance rates ``log_rate`` (m, K) at
    the levels ``level_pos`` (m, K) (positions on the interpolation axis): log-linear between the
    levels up to the highest ``populated`` one; beyond it, the slope of the last populated
    segment (towards the floor of the next level if only the first is populated), but never
    flatter than ``continuation``. −inf where no level at or below the position is populated."""
    m, k_levels = log_rate.shape
    rows = np.arange(m)
    top = np.where(populated.any(axis=1), k_levels - 1 - np.argmax(populated[:, ::-1], axis=1), -1)
    k = (position[:, None] >= level_pos).sum(axis=1) - 1
    lo = np.clip(np.minimum(k, top - 1), 0, k_levels - 2)
    between = (k >= 0) & (k < top)
    slope = (log_rate[rows, lo + 1] - log_rate[rows, lo]) / (level_pos[rows, lo + 1] - level_pos[rows, lo])
    with np.errstate(invalid="ignore"):  # −inf positions (z = 0) are below every level
        inner = log_rate[rows, lo] + slope * (position - level_pos[rows, lo])
    anchor = np.maximum(top, 0)
    below = np.maximum(anchor - 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fitted = (log_rate[rows, anchor] - log_rate[rows, below]) / (level_pos[rows, anchor] - level_pos[rows, below])
    next_ = np.minimum(anchor + 1, k_levels - 1)
    toward_floor = (log_rate[rows, next_] - log_rate[rows, anchor]) / (level_pos[rows, next_] - level_pos[rows, anchor] + 1e-300)
    decay = np.where(anchor >= 1, np.minimum(fitted, continuation), np.minimum(toward_floor, continuation))
    with np.errstate(invalid="ignore"):
        outer = log_rate[rows, anchor] + decay * (position - level_pos[rows, anchor])
    return np.where(between, inner, np.where((top >= 0) & (k >= top), outer, -np.inf))


def tail_p(z: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Calibrated two-sided p-value of |z| (m,) given each sensor's exceedance rates (m, K) at
    TAIL_Z: never below the Gaussian tail; a level is populated when its rate exceeds the
    Gaussian one; beyond the highest populated level the tail falls at least as fast as z^−3."""
    az = np.abs(z)
    with np.errstate(divide="ignore"):
        log_z = np.log(az)
        log_rate = np.log(np.maximum(tail, TAIL_GAUSS))
    level_pos = np.broadcast_to(TAIL_LOG_Z, tail.shape)
    learnt = _learnt_tail(log_z, level_pos, log_rate, tail > TAIL_GAUSS, -PARETO_INDEX)
    return np.minimum(np.maximum(np.exp(learnt), special.erfc(az / math.sqrt(2.0))), 1.0)


def evidence_p(evidence: np.ndarray, levels: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Probability of ``evidence`` (m,) given how often the sensor reached ``levels`` (m, J):
    e^(−E) where it never did more often than that, else learnt as in :func:`tail_p` with the
    theoretical slope e^(−ΔE) beyond the highest level reached."""
    log_rate = np.log(np.maximum(seen, np.exp(-levels)))
    learnt = _learnt_tail(evidence, levels, log_rate, seen > np.exp(-levels), -EVIDENCE_FLATTEST)
    return np.maximum(np.exp(learnt), np.exp(-evidence))


class Anomaly(ColumnDetector):
    def __init__(self) -> None:
        self.cfg = Columns(
            {
                "enabled": (np.bool_, False, 1),
                "level_alpha": (np.float64, 0.1, 1),
                "slope_alpha": (np.float64, 0.01, 1),
                "scale_alpha": (np.float64, 0.02, 1),
                "tail_alpha": (np.float64, 1.0 / 5000, 1),
                "huber": (np.float64, 3.0, 1),
                "shift_sigma": (np.float64, 2.0, 1),
                "warmup": (np.int32, 500, 1),
                "raise_level": (np.float64, 20.0, 1),
                "clear_level": (np.float64, 10.0, 1),
                "refractory_us": (np.int64, 0, 1),
                "floor": (np.float64, 1e-9, 1),
            }
        )
        self.st = Columns(
            {
                "level": (np.float64, 0.0, 1),
                "slope": (np.float64, 0.0, 1),
                "dev_holt": (np.float64, 0.0, 1),
                "dev_last": (np.float64, 0.0, 1),
                "n": (np.int32, 0, 1),
                "tail": (np.float32, 0.0, TAIL_Z.shape[0]),
                "shift_up": (np.float64, 0.0, 1),
                "shift_down": (np.float64, 0.0, 1),
                "spread_up": (np.float64, 0.0, 1),
                "spread_down": (np.float64, 0.0, 1),
                "evidence_tail": (np.float32, 0.0, EVIDENCE_LEVELS.shape[0]),
                "residual_z": (np.float32, 0.0, 1),
                "on": (np.bool_, False, 1),
                "last_clear": (np.int64, NO_TS, 1),
                "raised_at": (np.int64, NO_TS, 1),
                "score": (np.float32, 0.0, 1),
            }
        )

    def configure_kind(self, rows: np.ndarray, p, interval_s: np.ndarray, enabled: bool) -> None:
        """Parameters of the sensors ``rows`` (a mask) from their kind's ``p``; the decision level
        from the false-raise budget and each sensor's expected interval."""
        n = rows.shape[0]
        cfg = self.cfg
        cfg.enabled[:n][rows] = enabled
        cfg.level_alpha[:n][rows] = p.anomaly_alpha
        cfg.slope_alpha[:n][rows] = p.anomaly_slope_alpha
        cfg.scale_alpha[:n][rows] = p.anomaly_scale_alpha
        cfg.tail_alpha[:n][rows] = 1.0 / p.anomaly_tail_memory
        cfg.huber[:n][rows] = p.anomaly_huber
        cfg.shift_sigma[:n][rows] = p.anomaly_shift_sigma
        cfg.warmup[:n][rows] = p.anomaly_warmup
        level = decision_level(p.anomaly_budget_per_1000h, interval_s)
        cfg.raise_level[:n][rows] = level
        cfg.clear_level[:n][rows] = p.anomaly_clear * level
        cfg.refractory_us[:n][rows] = int(p.anomaly_refractory_s * 1e6)

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        rows, s = rd.select(stat, self.cfg.enabled)
        if s.shape[0] == 0:
            return
        cfg, st = self.cfg, self.st
        x = rd.x[rows]
        count = st.n[s]
        first = count == 0
        level0 = np.where(first, x, st.level[s])
        slope0 = st.slope[s]
        dev_holt, dev_last = st.dev_holt[s], st.dev_last[s]
        floor = cfg.floor[s]
        prev_x = np.where(rd.has_prev[rows], rd.prev_x[rows], x)
        # the two predictors' residuals, each judged on its own scale
        pred_holt = level0 + slope0
        r_holt, r_last = x - pred_holt, x - prev_x
        use_last = (dev_last < dev_holt) & (count >= 2)
        residual = np.where(use_last, r_last, r_holt)
        sigma = np.maximum(np.where(use_last, dev_last, dev_holt) * MEAN_ABS_DEV_TO_SIGMA, floor)
        z = residual / sigma
        scored = count >= SETTLE
        tail = st.tail[s]
        p = np.where(scored, tail_p(z, tail), 1.0)
        # learning: robust Holt line and both scales (1/n weights while starting)
        start = 1.0 / (count + 1.0)
        a_level = np.maximum(cfg.level_alpha[s], start)
        a_scale = np.maximum(cfg.scale_alpha[s], start)
        lim_holt = cfg.huber[s] * np.maximum(dev_holt * MEAN_ABS_DEV_TO_SIGMA, floor)
        lim_last = cfg.huber[s] * np.maximum(dev_last * MEAN_ABS_DEV_TO_SIGMA, floor)
        settled = count >= 2
        psi = np.where(settled, np.clip(r_holt, -lim_holt, lim_holt), r_holt)
        st.level[s] = np.where(first, x, pred_holt + a_level * psi)
        st.slope[s] = np.where(count >= 1, slope0 + cfg.slope_alpha[s] * a_level * psi, 0.0)
        abs_holt = np.where(settled, np.minimum(np.abs(r_holt), lim_holt), np.abs(r_holt))
        abs_last = np.where(settled, np.minimum(np.abs(r_last), lim_last), np.abs(r_last))
        st.dev_holt[s] = np.where(first, 0.0, dev_holt + a_scale * (abs_holt - dev_holt))
        st.dev_last[s] = np.where(first, 0.0, dev_last + a_scale * (abs_last - dev_last))
        a_tail = np.maximum(cfg.tail_alpha[s], 1.0 / np.maximum(count - SETTLE + 1.0, 1.0))[:, None]
        exceeded = np.abs(z)[:, None] > TAIL_Z
        st.tail[s] = np.where(scored[:, None], tail + a_tail * (exceeded - tail), tail)
        st.n[s] = count + 1
        # deciding: CUSUMs on the calibrated normal score (one reading gives at most half the
        # decision level: a spike is judged by its own p), and the reading's own −ln p
        p = np.maximum(p, 1e-300)
        delta = cfg.shift_sigma[s]
        level = cfg.raise_level[s]
        cap = 0.5 * delta + 0.5 * level / delta
        u = np.where(scored, np.clip(np.copysign(-special.ndtri(0.5 * p), z), -cap, cap), 0.0)
        up = np.maximum(0.0, st.shift_up[s] + delta * (u - 0.5 * delta))
        down = np.maximum(0.0, st.shift_down[s] + delta * (-u - 0.5 * delta))
        u2 = u * u
        spread_up = np.maximum(0.0, st.spread_up[s] + 0.375 * u2 - LN2)
        quiet_ok = sigma >= 2.0 * floor
        spread_down = np.where(quiet_ok, np.maximum(0.0, st.spread_down[s] + LN2 - 1.5 * u2), 0.0)
        st.shift_up[s], st.shift_down[s] = up, down
        st.spread_up[s], st.spread_down[s] = spread_up, spread_down
        st.residual_z[s] = np.where(scored, z, 0.0)
        evidence = np.maximum(np.maximum(np.maximum(up, down), np.maximum(spread_up, spread_down)), -np.log(p))
        # the evidence is calibrated on the sensor's own history too: a pattern that reaches
        # this evidence every few hours (a heartbeat, a square wave's edges) is not news
        levels = level[:, None] * EVIDENCE_LEVELS
        seen = st.evidence_tail[s]
        surprise = -np.log(evidence_p(evidence, levels, seen))
        st.evidence_tail[s] = np.where(scored[:, None], seen + a_tail * ((evidence[:, None] >= levels) - seen), seen)
        warm = count >= cfg.warmup[s]
        flagged = warm & (surprise >= level)
        decide_scored(rules.ANOMALY, cfg, st, s, rd.t[rows], x, 1.0 - p, evidence, flagged, warm, em)

    def active(self, em: Emitter) -> None:
        emit_active_scored(rules.ANOMALY, self.st, em)
