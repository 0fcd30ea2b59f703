"""The one rule both yujing and the baselines are judged by: the sustained rate.

A trial offers a rate for a while; the system *holds* it when it commits at least 95 % of what
the publisher managed to publish in the measuring window, with end-to-end lag p99 (reading time
→ commit) under 2 s. The search raises the offered rate by 1.3x while trials hold, lowers it by
1.3x while they fail, and bisects once it has one of each; the sustained rate is the highest
committed rate of a trial that held.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

P99_LIMIT_S = 2.0
HOLD_FRACTION = 0.95
STEP = 1.3


def holds(trial: dict) -> bool:
    return trial["lag_p99_s"] < P99_LIMIT_S and trial["committed_readings_s"] >= HOLD_FRACTION * trial["published_readings_s"]


def search(trial: Callable[[float], dict], guess: float, steps: int) -> dict:
    """``trial(rate)`` returns committed_readings_s, published_readings_s and lag_p99_s."""
    lo = hi = None
    rate = guess
    best = 0.0
    trials = []
    for _ in range(steps):
        r = trial(rate)
        r["holds"] = holds(r)
        trials.append(r)
        if r["holds"]:
            best = max(best, r["committed_readings_s"])
            lo = rate
            rate = rate * STEP if hi is None else (lo + hi) / 2
        else:
            hi = rate
            rate = rate / STEP if lo is None else (lo + hi) / 2
    # Held every trial: the search never found the limit, so the figure is a lower bound.
    return {"sustained_readings_s": best, "trials": trials, "lower_bound": all(r["holds"] for r in trials)}


def percentile(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q)) if values else float("inf")
