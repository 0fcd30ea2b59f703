"""Every per-sensor detector against the naive per-reading reference (tests/detectors/naive.py)
on random streams: sensors repeat within a batch, timestamps arrive out of order (within and
across batches, so some readings are late), values include NaN and ±Inf, quality flags vary.
Seeds are fixed and reported in the test id."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import DetectorConfig, Engine
from domain.messages import ReadingBatch
from domain.quality import Quality
from tests.detectors.fleet import snapshot
from tests.detectors.naive import NaiveEngine

KINDS = ["methane", "methane", "methane", "o2", "co", "fan_state", "temperature", "nh3", "combustible_gas", "pressure"]
CLASSES = ["T1", "T2", "T0", "", "coal", "", "", "machine_room", "pipe_gallery", ""]
BASE = {"methane": 0.9, "o2": 20.0, "co": 20.0, "fan_state": 1.0, "temperature": 25.0, "nh3": 95.0,
        "combustible_gas": 20.0, "pressure": 0.4}
STEP = {"methane": 0.15, "o2": 0.3, "co": 3.0, "fan_state": 0.0, "temperature": 0.5, "nh3": 8.0,
        "combustible_gas": 3.0, "pressure": 0.05}

# Short time constants and warm-ups so that every rule changes state many times.
FAST = {
    "defaults": {
        "anomaly_warmup": 5, "anomaly_threshold": 0.45, "anomaly_clear": 0.3, "anomaly_refractory_s": 25.0,
        "trend_warmup": 3, "ttt_horizon_s": 120.0, "stuck_after_s": 30.0, "stuck_min_count": 2,
        "jump_fraction": 0.01, "jump_hold_s": 40.0, "rate_fraction_per_min": 0.5,
        "drift_warmup": 3, "drift_tau_s": 60.0, "drift_k": 3.0, "drift_min_dev": 0.4,
    },
    "kinds": {
        "methane": {"anomaly_warmup": 5, "anomaly_threshold": 0.45, "anomaly_clear": 0.3,
                    "anomaly_refractory_s": 25.0, "trend_warmup": 3, "ttt_horizon_s": 120.0,
                    "stuck_after_s": 30.0, "stuck_min_count": 2, "jump_fraction": 0.01, "jump_hold_s": 40.0,
                    "rate_up_per_min": 0.5, "ladder_on_delay_s": 15.0, "ladder_off_delay_s": 20.0},
        "pressure": {"rate_down_per_min": 0.1, "rate_up_per_min": 0.1},
    },
}


def stream(seed: int, n_sensors: int, n_batches: int, batch: int):
    rng = np.random.default_rng(seed)
    kinds = [KINDS[i % len(KINDS)] for i in range(n_sensors)]
    classes = [CLASSES[i % len(CLASSES)] for i in range(n_sensors)]
    level = np.array([BASE[k] for k in kinds])
    step = np.array([STEP[k] for k in kinds])
    t_now = 1_700_000_000_000_000
    out = []
    for _ in range(n_batches):
        s = rng.integers(1, n_sensors + 1, size=batch)
        level += rng.standard_normal(n_sensors) * step
        v = level[s - 1] + rng.standard_normal(batch) * step[s - 1]
        sw = np.array([kinds[i - 1] == "fan_state" for i in s])
        v[sw] = rng.integers(0, 2, size=sw.sum())
        v = np.round(v, 1)
        r = rng.random(batch)
        v[r < 0.03] = np.nan
        v[(r >= 0.03) & (r < 0.05)] = np.inf
        v[(r >= 0.05) & (r < 0.06)] = -np.inf
        q = np.zeros(batch, dtype=np.int16)
        f = rng.random(batch)
        q[f < 0.03] |= int(Quality.CALIBRATING)
        q[(f >= 0.03) & (f < 0.06)] |= int(Quality.FAULT)
        q[(f >= 0.06) & (f < 0.08)] |= int(Quality.OVER_RANGE)
        q[(f >= 0.08) & (f < 0.09)] |= int(Quality.UNDER_RANGE)
        q[(f >= 0.09) & (f < 0.10)] |= int(Quality.DISCONNECTED)
        q[(f >= 0.10) & (f < 0.11)] |= int(Quality.MAINTENANCE | Quality.OVER_RANGE)
        # out of order: jitter within the batch, some readings far in the past (late)
        ts = t_now + rng.integers(0, 10_000_000, size=batch)
        late = rng.random(batch) < 0.05
        ts[late] -= rng.integers(10_000_000, 60_000_000, size=late.sum())
        dup = rng.random(batch) < 0.02
        ts[dup] = t_now  # exact duplicates of time
        t_now += 10_000_000
        out.append((s.astype(np.int32), ts.astype(np.int64), v, q))
    return kinds, classes, out


def canon(rows):
    return sorted(rows)


@pytest.mark.parametrize("seed", [11, 12, 13, 2024])
def test_engine_matches_naive_reference(seed):
    kinds, classes, batches = stream(seed, n_sensors=40, n_batches=60, batch=120)
    cfg = DetectorConfig.from_config({**FAST, "compound": []})
    eng = Engine(cfg)
    eng.set_registry(snapshot(kinds, classes))
    ref = NaiveEngine(cfg, kinds, classes)
    seen_rules = set()
    for j, (s, ts, v, q) in enumerate(batches):
        got = eng.update(ReadingBatch.build(sensor=s, ts_us=ts, value=v, quality=q))
        rows = [(int(f.subject), f.rule, int(f.event), int(f.severity), int(f.ts_us)) for f in got.rows()]
        want = ref.update(s, ts, v, q)
        assert canon(rows) == canon(want), f"seed {seed}, batch {j}"
        seen_rules |= {r[1] for r in rows}
    # the stream must exercise the rules, or the comparison proves little
    assert {"limit", "limit_low", "fault", "over_range", "under_range", "rate", "ttt", "anomaly",
            "jump", "drift"} <= seen_rules, seen_rules


def test_stuck_matches_reference_on_quantised_stream():
    rng = np.random.default_rng(5)
    kinds = ["temperature"] * 6
    cfg = DetectorConfig.from_config({**FAST, "compound": []})
    eng = Engine(cfg)
    eng.set_registry(snapshot(kinds))
    ref = NaiveEngine(cfg, kinds, [""] * 6)
    t = 0
    raised = 0
    for j in range(80):
        s = rng.integers(1, 7, size=20).astype(np.int32)
        ts = t + rng.integers(0, 10_000_000, size=20)
        v = np.where(rng.random(20) < 0.1, 21.0, 20.0) + (s % 2)
        t += 10_000_000
        got = eng.update(ReadingBatch.build(sensor=s, ts_us=ts, value=v))
        rows = [(int(f.subject), f.rule, int(f.event), int(f.severity), int(f.ts_us)) for f in got.rows()]
        want = ref.update(s, ts, v, np.zeros(20, np.int16))
        assert canon(rows) == canon(want), f"seed 5, batch {j}"
        raised += sum(1 for r in rows if r[1] == "stuck")
    assert raised > 0


@pytest.mark.parametrize(("seed", "size"), [(21, 9), (22, 8), (23, 15)])
def test_window_matches_reference_for_odd_and_even_sizes(seed, size):
    kinds, classes, batches = stream(seed, n_sensors=30, n_batches=50, batch=100)
    win = {"window": True, "window_size": size, "window_threshold": 0.45}
    cfg = DetectorConfig.from_config({
        "enabled": ["window"], "compound": [],
        "defaults": {**FAST["defaults"], **win},
        "kinds": {k: {**v, **win} for k, v in FAST["kinds"].items()},
    })
    eng = Engine(cfg)
    eng.set_registry(snapshot(kinds, classes))
    assert eng.window.W == size
    ref = NaiveEngine(cfg, kinds, classes)
    raised = 0
    for j, (s, ts, v, q) in enumerate(batches):
        got = eng.update(ReadingBatch.build(sensor=s, ts_us=ts, value=v, quality=q))
        rows = [(int(f.subject), f.rule, int(f.event), int(f.severity), int(f.ts_us)) for f in got.rows()]
        want = [w for w in ref.update(s, ts, v, q) if w[1] == "window"]  # the reference runs every rule
        assert canon(rows) == canon(want), f"seed {seed}, W {size}, batch {j}"
        raised += sum(1 for r in rows if r[1] == "window" and r[2] == 1)
    assert raised >= 5, raised


def test_flickering_stuck_matches_reference():
    """Frozen transducers whose last digit flickers by one step, among noisy ones: the default
    tolerance (one resolution step) makes each flicker one run."""
    rng = np.random.default_rng(31)
    kinds = ["methane"] * 4 + ["temperature"] * 4
    cfg = DetectorConfig.from_config({"enabled": ["stuck"], "compound": [],
                                      "defaults": {"stuck_min_count": 5}, "kinds": {"methane": {"stuck_min_count": 5}}})
    eng = Engine(cfg)
    eng.set_registry(snapshot(kinds, ["T1"] * 4 + [""] * 4))
    ref = NaiveEngine(cfg, kinds, ["T1"] * 4 + [""] * 4)
    res = np.array([0.01] * 4 + [0.1] * 4)
    base = np.array([0.3] * 4 + [20.0] * 4)
    t, raised = 0, 0
    for j in range(300):
        s = rng.integers(1, 9, size=12).astype(np.int32)
        ts = t + rng.integers(0, 10_000_000, size=12)
        noisy = base[s - 1] + res[s - 1] * rng.standard_normal(12)
        flicker = base[s - 1] + res[s - 1] * rng.integers(0, 2, size=12)
        v = np.round(np.where((j > 80) & (s % 2 == 0), flicker, noisy) / res[s - 1]) * res[s - 1]
        t += 10_000_000
        got = eng.update(ReadingBatch.build(sensor=s, ts_us=ts, value=v))
        rows = [(int(f.subject), f.rule, int(f.event), int(f.severity), int(f.ts_us)) for f in got.rows()]
        want = [w for w in ref.update(s, ts, v, np.zeros(12, np.int16)) if w[1] == "stuck"]
        assert canon(rows) == canon(want), f"seed 31, batch {j}"
        raised += sum(1 for r in rows if r[1] == "stuck" and r[2] == 1)
    assert raised >= 4
