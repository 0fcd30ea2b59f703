"""Per-reading reference of the calibrated anomaly score (detectors/anomaly.py), in plain Python
floats, re-derived from the formulas in that module's docstring; the float32 state columns (the
two tails) are rounded to float32 as the engine stores them."""

from __future__ import annotations

import math
import struct

from scipy import special

SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
Z_LEVELS = [2.0, 3.0, 4.0, 6.0, 9.0, 14.0, 21.0, 32.0]
EVIDENCE_LEVELS = [1.0, 1.5, 2.0, 3.0, 5.0]
SETTLE = 10


def f32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


def learnt_log_tail(pos: float, level_pos: list[float], log_rate: list[float], populated: list[bool],
                    flattest: float) -> float:
    """Log-linear between levels up to the highest populated one, beyond it the last populated
    segment's slope (or the slope towards the next level's floor), never flatter than ``flattest``."""
    if not any(populated):
        return -math.inf
    top = max(i for i, ok in enumerate(populated) if ok)
    k = sum(1 for lv in level_pos if pos >= lv) - 1
    if k < 0:
        return -math.inf
    if k < top:
        slope = (log_rate[k + 1] - log_rate[k]) / (level_pos[k + 1] - level_pos[k])
        return log_rate[k] + slope * (pos - level_pos[k])
    if top >= 1:
        slope = (log_rate[top] - log_rate[top - 1]) / (level_pos[top] - level_pos[top - 1])
    else:
        slope = (log_rate[1] - log_rate[0]) / (level_pos[1] - level_pos[0])
    return log_rate[top] + min(slope, flattest) * (pos - level_pos[top])


def tail_p(z: float, tail: list[float]) -> float:
    az = abs(z)
    gauss_levels = [math.erfc(v / math.sqrt(2.0)) for v in Z_LEVELS]
    log_rate = [math.log(max(f, g)) for f, g in zip(tail, gauss_levels, strict=True)]
    populated = [f > g for f, g in zip(tail, gauss_levels, strict=True)]
    log_z = math.log(az) if az > 0 else -math.inf
    learnt = learnt_log_tail(log_z, [math.log(v) for v in Z_LEVELS], log_rate, populated, -1.0)
    return min(max(math.exp(learnt), math.erfc(az / math.sqrt(2.0))), 1.0)


def evidence_p(e: float, levels: list[float], seen: list[float]) -> float:
    log_rate = [math.log(max(g, math.exp(-lv))) for g, lv in zip(seen, levels, strict=True)]
    populated = [g > math.exp(-lv) for g, lv in zip(seen, levels, strict=True)]
    learnt = learnt_log_tail(e, levels, log_rate, populated, -0.25)
    return max(math.exp(learnt), math.exp(-e))


def decision_level(p, interval_s: float) -> float:
    eps = p.anomaly_budget_per_1000h / (1000.0 * 3600.0 / max(interval_s, 1e-3))
    return math.log(5.0 / eps)


def anomaly_step(st: dict, p, x: float, prev_x: float | None, floor: float,
                 interval_s: float) -> tuple[bool, float, bool]:
    """Update the state dict ``st`` with one statistical reading; returns (flagged, evidence, warm)."""
    n = st.get("an.n", 0)
    level0 = x if n == 0 else st["an.level"]
    slope0 = st.get("an.slope", 0.0)
    dev_holt, dev_last = st.get("an.dev_holt", 0.0), st.get("an.dev_last", 0.0)
    px = x if prev_x is None else prev_x
    pred = level0 + slope0
    r_holt, r_last = x - pred, x - px
    use_last = dev_last < dev_holt and n >= 2
    residual = r_last if use_last else r_holt
    sigma = max((dev_last if use_last else dev_holt) * SQRT_HALF_PI, floor)
    z = residual / sigma
    scored = n >= SETTLE
    tail = st.get("an.tail", [0.0] * len(Z_LEVELS))
    pv = tail_p(z, tail) if scored else 1.0
    a_level = max(p.anomaly_alpha, 1.0 / (n + 1.0))
    a_scale = max(p.anomaly_scale_alpha, 1.0 / (n + 1.0))
    lim_holt = p.anomaly_huber * max(dev_holt * SQRT_HALF_PI, floor)
    lim_last = p.anomaly_huber * max(dev_last * SQRT_HALF_PI, floor)
    psi = min(max(r_holt, -lim_holt), lim_holt) if n >= 2 else r_holt
    st["an.level"] = x if n == 0 else pred + a_level * psi
    st["an.slope"] = slope0 + p.anomaly_slope_alpha * a_level * psi if n >= 1 else 0.0
    abs_holt = min(abs(r_holt), lim_holt) if n >= 2 else abs(r_holt)
    abs_last = min(abs(r_last), lim_last) if n >= 2 else abs(r_last)
    st["an.dev_holt"] = 0.0 if n == 0 else dev_holt + a_scale * (abs_holt - dev_holt)
    st["an.dev_last"] = 0.0 if n == 0 else dev_last + a_scale * (abs_last - dev_last)
    a_tail = max(1.0 / p.anomaly_tail_memory, 1.0 / max(n - SETTLE + 1.0, 1.0))
    if scored:
        st["an.tail"] = [f32(f + a_tail * ((1.0 if abs(z) > lv else 0.0) - f)) for f, lv in zip(tail, Z_LEVELS, strict=True)]
    st["an.n"] = n + 1
    pv = max(pv, 1e-300)
    delta = p.anomaly_shift_sigma
    h = decision_level(p, interval_s)
    cap = 0.5 * delta + 0.5 * h / delta
    u = min(max(math.copysign(-float(special.ndtri(0.5 * pv)), z), -cap), cap) if scored else 0.0
    up = max(0.0, st.get("an.up", 0.0) + delta * (u - 0.5 * delta))
    down = max(0.0, st.get("an.down", 0.0) + delta * (-u - 0.5 * delta))
    spread_up = max(0.0, st.get("an.vup", 0.0) + 0.375 * u * u - math.log(2.0))
    spread_down = max(0.0, st.get("an.vdown", 0.0) + math.log(2.0) - 1.5 * u * u) if sigma >= 2.0 * floor else 0.0
    st["an.up"], st["an.down"], st["an.vup"], st["an.vdown"] = up, down, spread_up, spread_down
    evidence = max(up, down, spread_up, spread_down, -math.log(pv))
    levels = [h * m for m in EVIDENCE_LEVELS]
    seen = st.get("an.seen", [0.0] * len(levels))
    surprise = -math.log(evidence_p(evidence, levels, seen))
    if scored:
        st["an.seen"] = [f32(g + a_tail * ((1.0 if evidence >= lv else 0.0) - g)) for g, lv in zip(seen, levels, strict=True)]
    warm = n >= p.anomaly_warmup
    return warm and surprise >= h, evidence, warm
