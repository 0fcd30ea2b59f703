"""Properties of the calibrated anomaly score on seeded streams (fixed seeds, reported here):

- on anomaly-free Gaussian, Student-t (3 d.o.f.), quantised, AR(1) ρ = 0.95 and daily-cycle streams
  the fraction of readings with p < 10⁻² and p < 10⁻³ is within a factor 2 of nominal (350,000
  scored readings per shape: ~350 expected below 10⁻³), and the rule raises within a few times
  its false-raise budget;
- a level shift of 5 σ (σ of the one-step prediction residual) raises within 10 readings.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors import DetectorConfig, Engine
from domain.messages import ReadingBatch
from domain.severity import FindingEvent
from tests.detectors.fleet import snapshot

INTERVAL_S = 30.0
STREAMS, LENGTH = 100, 4000
RESOLUTION = 0.1  # temperature


def shape(name: str, rng: np.random.Generator) -> np.ndarray:
    """(LENGTH, STREAMS) anomaly-free values in ℃ around 25, noise σ = 0.2 (2 resolution steps)."""
    white = rng.standard_normal((LENGTH, STREAMS))
    if name == "gaussian":
        v = white
    elif name == "student_t3":
        v = rng.standard_t(3, size=(LENGTH, STREAMS))
    elif name == "quantised":
        v = np.round(white * 0.5) / 0.5  # σ = 1 resolution step after rounding below
    elif name == "ar1":
        v = np.empty_like(white)
        v[0] = white[0] / np.sqrt(1 - 0.95**2)
        for i in range(1, LENGTH):
            v[i] = 0.95 * v[i - 1] + white[i]
    else:  # daily cycle of 5 σ with a random phase, read every 30 s
        t = np.arange(LENGTH)[:, None] * INTERVAL_S
        v = white + 5.0 * np.sin(2 * np.pi * t / 86400.0 + rng.uniform(0, 2 * np.pi, STREAMS))
    return np.round((25.0 + 0.2 * v) / RESOLUTION) * RESOLUTION


def run(values: np.ndarray, config: DetectorConfig):
    n = values.shape[1]
    eng = Engine(config)
    eng.set_registry(snapshot(["temperature"] * n, interval_s=INTERVAL_S))
    sensors = np.arange(1, n + 1, dtype=np.int32)
    p_values, raises = [], []
    for i in range(values.shape[0]):
        ts = np.full(n, 1_700_000_000_000_000 + int(i * INTERVAL_S * 1e6), dtype=np.int64)
        f = eng.update(ReadingBatch.build(sensor=sensors, ts_us=ts, value=values[i]))
        scored = eng.anomaly.st.n[1:n + 1] > eng.anomaly.cfg.warmup[1:n + 1]
        p_values.append(np.where(scored, 1.0 - eng.scores[1:n + 1].astype(np.float64), np.nan))
        raises += [(i, int(s)) for s in f.subject[(f.event == FindingEvent.RAISE) & (f.rule == "anomaly")]]
    return np.array(p_values), raises, eng


@pytest.mark.parametrize(("name", "seed"), [("gaussian", 101), ("student_t3", 102), ("quantised", 103),
                                             ("ar1", 104), ("daily_cycle", 105)])
def test_p_values_are_calibrated_on_anomaly_free_streams(name, seed):
    cfg = DetectorConfig.from_config({"enabled": ["anomaly"], "compound": []})
    p, raises, _ = run(shape(name, np.random.default_rng(seed)), cfg)
    p = p[np.isfinite(p)]
    assert p.shape[0] > 300_000
    for nominal in (1e-2, 1e-3):
        frac = float(np.mean(p < nominal))
        assert nominal / 2 <= frac <= 2 * nominal, (name, nominal, frac)
    sensor_hours = p.shape[0] * INTERVAL_S / 3600.0
    # the default budget is 1; a coarse quantisation (four levels) reaches ~5
    assert 1000.0 * len(raises) / sensor_hours <= 6.0, (name, len(raises), sensor_hours)


def test_level_shift_of_5_sigma_raises_within_10_readings():
    rng = np.random.default_rng(106)
    cfg = DetectorConfig.from_config({"enabled": ["anomaly"], "compound": []})
    n = 50
    eng = Engine(cfg)
    eng.set_registry(snapshot(["temperature"] * n, interval_s=INTERVAL_S))
    sensors = np.arange(1, n + 1, dtype=np.int32)
    sign = np.where(np.arange(n) % 2, 1.0, -1.0)
    shift = None
    first = np.full(n, -1)
    for i in range(700):
        if i == 600:  # 5 σ of the one-step residual, as the detector has learnt it
            st = eng.anomaly.st
            dev = np.minimum(st.dev_holt[1:n + 1], st.dev_last[1:n + 1])
            shift = 5.0 * dev * np.sqrt(np.pi / 2) * sign
        v = 25.0 + 0.2 * rng.standard_normal(n) + (shift if shift is not None else 0.0)
        ts = np.full(n, 1_700_000_000_000_000 + int(i * INTERVAL_S * 1e6), dtype=np.int64)
        f = eng.update(ReadingBatch.build(sensor=sensors, ts_us=ts, value=v))
        hit = f.subject[(f.event == FindingEvent.RAISE) & (f.rule == "anomaly")] - 1
        assert i >= 600 or hit.shape[0] == 0, (i, hit)
        first[hit[first[hit] < 0]] = i
    delay = first - 600
    assert (first >= 600).all() and (delay < 10).all(), delay
