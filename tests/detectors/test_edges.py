"""Setpoint edges, hysteresis, delays, quality handling, trend robustness, anomaly learning."""

from __future__ import annotations

import numpy as np

from detectors import DetectorConfig, Engine
from detectors.ordering import NO_TS
from domain.messages import ReadingBatch
from domain.quality import Quality
from tests.detectors.fleet import snapshot

S = 1_000_000


def feed(eng, values, sensor=1, t0=0, dt_s=10, quality=0):
    out = []
    for i, v in enumerate(values):
        f = eng.update(ReadingBatch.build(sensor=[sensor], ts_us=[t0 + i * dt_s * S], value=[v], quality=[quality]))
        out.extend((i, r.rule, r.event.name, r.severity.name) for r in f.rows())
    return out


def engine(kinds, classes=None, cfg=None, **kw):
    e = Engine(cfg or DetectorConfig.from_config({"enabled": ["limit", "fault", "over_range"]}))
    e.set_registry(snapshot(kinds, classes, **kw))
    return e


def test_exactly_at_setpoint_raises_and_restore_is_strict():
    e = engine(["methane"], ["T1"])
    got = feed(e, [0.99, 1.0, 1.49, 1.5, 1.2, 1.0, 0.99, 0.95, 0.94])
    assert got == [
        (1, "limit", "RAISE", "WARNING"),
        (3, "limit", "UPDATE", "ALARM"),  # 断电 at exactly 1.5
        (6, "limit", "UPDATE", "WARNING"),  # 复电 below 1.0 (held at 1.2 and at exactly 1.0)
        (8, "limit", "CLEAR", "WARNING"),  # alarm clears below 0.95
    ]


def test_inside_deadband_holds_and_flapping_emits_once():
    e = engine(["combustible_gas"])  # level1 25 %LEL, clears below 23
    got = feed(e, [24, 25, 24, 23.5, 25, 23.1, 25.2, 23, 22.9])
    assert got == [(1, "limit", "RAISE", "WARNING"), (8, "limit", "CLEAR", "WARNING")]


def test_t2_alarm_and_cut_together():
    e = engine(["methane"], ["T2"])
    assert feed(e, [0.5, 1.0, 0.99]) == [(1, "limit", "RAISE", "ALARM"), (2, "limit", "UPDATE", "WARNING")]


def test_on_and_off_delay():
    cfg = DetectorConfig.from_config({"enabled": ["limit"], "kinds": {"co": {"ladder_on_delay_s": 20, "ladder_off_delay_s": 20}}})
    e = engine(["co"], cfg=cfg)  # level1 17.45 ppm
    got = feed(e, [0, 18, 18, 0, 18, 18, 18, 0, 0, 0])
    assert got == [(6, "limit", "RAISE", "WARNING"), (9, "limit", "CLEAR", "WARNING")]


def test_calibrating_never_raises_and_fault_and_over_range():
    e = engine(["methane"], ["T1"])
    assert feed(e, [3.0, 3.0], quality=int(Quality.CALIBRATING)) == []
    got = feed(e, [0.1], t0=100 * S, quality=int(Quality.FAULT))
    assert got == [(0, "fault", "RAISE", "NOTICE")]
    got = feed(e, [40.0], t0=200 * S, quality=int(Quality.OVER_RANGE))
    assert (0, "fault", "CLEAR", "NOTICE") in got and (0, "over_range", "RAISE", "ALARM") in got
    assert (0, "limit", "RAISE", "ALARM") in got


def test_late_reading_checks_setpoints_but_not_statistics():
    e = Engine(DetectorConfig.from_config({"compound": []}))
    e.set_registry(snapshot(["methane"], ["T1"]))
    feed(e, [0.3] * 5)
    ts_before, n_before = int(e.base.stat_ts[1]), int(e.anomaly.st.n[1])
    f = e.update(ReadingBatch.build(sensor=[1], ts_us=[5 * S], value=[1.2]))  # late
    assert [(r.rule, r.event.name) for r in f.rows()] == [("limit", "RAISE")]
    assert int(e.base.stat_ts[1]) == ts_before and int(e.anomaly.st.n[1]) == n_before


def test_trend_resists_outlier_burst_on_30_percent_of_window():
    """Robust Holt slope on a ramp with 30 % of the readings replaced by large spikes stays close to
    the true slope; the same smoother without the Huber clip (k = 1e9) is thrown far off."""
    rng = np.random.default_rng(3)
    n, slope = 400, 0.002  # units per second at 10 s spacing
    t = np.arange(n) * 10.0
    x = 0.2 + slope * t + 0.01 * rng.standard_normal(n)
    w = 90  # a window of 90 readings (15 min) ending at the end; a 30 % burst inside it
    burst = rng.choice(np.arange(n - w, n), size=int(0.3 * w), replace=False)
    y = x.copy()
    y[burst] += 2.0
    results = {}
    for k in (1.5, 1e9):
        cfg = DetectorConfig.from_config({"enabled": ["ttt"], "compound": [], "kinds": {"temperature": {"trend_huber_k": k}}})
        for name, series in (("clean", x), ("burst", y)):
            e = Engine(cfg)
            e.set_registry(snapshot(["temperature"]))
            feed(e, series)
            results[(k, name)] = float(e.trend.st.b[1])
    robust_err = abs(results[(1.5, "burst")] - slope)
    plain_err = abs(results[(1e9, "burst")] - slope)
    assert abs(results[(1.5, "clean")] - slope) < 0.15 * slope
    assert robust_err < 0.35 * slope, results
    assert plain_err > 3 * robust_err, results


def test_ttt_warns_before_the_alarm():
    cfg = DetectorConfig.from_config({"enabled": ["limit", "ttt"], "compound": []})
    e = Engine(cfg)
    e.set_registry(snapshot(["methane"], ["T1"]))
    rng = np.random.default_rng(1)
    v = np.r_[np.full(100, 0.3), 0.3 + 0.002 * np.arange(1, 400)] + 0.01 * rng.standard_normal(499)
    got = feed(e, v)
    first_ttt = next(i for i, r, ev, _ in got if r == "ttt" and ev == "RAISE")
    first_alarm = next(i for i, r, ev, _ in got if r == "limit" and ev == "RAISE")
    assert first_alarm - first_ttt >= 60  # ≥ 10 min of warning at 10 s spacing


def test_anomaly_long_excursion_never_becomes_normal_and_refractory():
    cfg = DetectorConfig.from_config({"enabled": ["anomaly"], "compound": []})
    e = Engine(cfg)
    e.set_registry(snapshot(["temperature"]))
    rng = np.random.default_rng(9)
    base = 20 + 0.2 * rng.standard_normal(200)
    got = feed(e, base)
    assert got == []
    excursion = 26 + 0.2 * rng.standard_normal(5000)  # ~30 σ, for 14 h
    got = feed(e, excursion, t0=200 * 10 * S)
    assert got == [(0, "anomaly", "RAISE", "NOTICE")]
    assert float(e.scores[1]) > 0.9 and abs(float(e.anomaly.st.mu[1]) - 20) < 0.2
    got = feed(e, [20.0, 26.0, 20.0, 26.0], t0=6000 * 10 * S, dt_s=60)
    # back to normal clears; a new excursion within the 10-min refractory period raises nothing
    assert got == [(0, "anomaly", "CLEAR", "NOTICE")]
    got = feed(e, [26.0], t0=6000 * 10 * S + 700 * S)
    assert got == [(0, "anomaly", "RAISE", "NOTICE")]


def test_jump_spike_and_step():
    cfg = DetectorConfig.from_config({"enabled": ["jump"], "compound": []})
    e = Engine(cfg)
    e.set_registry(snapshot(["temperature"]))  # range −40..200: jump limit 120
    got = feed(e, [20, 150, 21, 20])
    assert got == [(1, "jump", "RAISE", "NOTICE"), (2, "jump", "CLEAR", "NOTICE")]


def test_stuck_ignores_gas_floor_but_flags_a_flat_value():
    cfg = DetectorConfig.from_config({"enabled": ["stuck"], "compound": []})
    e = Engine(cfg)
    e.set_registry(snapshot(["methane", "methane"], ["T1", "T1"]))
    assert feed(e, [0.0] * 2000, sensor=1) == []  # clean air reads its floor for hours
    got = feed(e, [0.37] * 2000, sensor=2)
    assert [g[1:] for g in got] == [("stuck", "RAISE", "NOTICE")]
    assert got[0][0] == 4 * 360  # 4 h at 10 s
    assert e.stuck.st.since[2] != NO_TS
