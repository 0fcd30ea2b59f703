"""The stuck rule judged by the sensor's learnt variability, the peer drift check, and detector
parameters per location class (``kind@class``)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import DetectorConfig, Engine
from detectors.config import DetectorConfigError
from domain.messages import ReadingBatch
from tests.detectors.fleet import snapshot

S = 1_000_000


def run(eng, values: np.ndarray, dt_s: float = 10.0, t0_s: float = 0.0):
    """values: (readings, sensors); sensor j is id j + 1, all read at the same times."""
    out = []
    n = values.shape[1]
    for i, row in enumerate(values):
        ts = int((t0_s + i * dt_s) * S)
        f = eng.update(ReadingBatch.build(sensor=np.arange(1, n + 1), ts_us=[ts] * n, value=row))
        out += [(i, int(r.subject), r.rule, r.event.name) for r in f.rows()]
    return out


def quantised_noise(rng, n, base, sigma, res):
    return np.round((base + sigma * rng.standard_normal(n)) / res) * res


# --- stuck ------------------------------------------------------------------------------------
def stuck_engine(kinds):
    e = Engine(DetectorConfig.from_config({"enabled": ["stuck"]}))
    e.set_registry(snapshot(kinds, ["T1"] * len(kinds)))
    return e


def test_a_noisy_sensor_that_freezes_is_stuck_within_minutes_not_hours():
    rng = np.random.default_rng(3)
    v = quantised_noise(rng, 400, 0.25, 0.01, 0.01)  # methane at the face: σ = resolution
    v[30:] = v[29]  # frozen after 5 minutes of history
    got = [g for g in run(stuck_engine(["methane"]), v[:, None]) if g[2] == "stuck"]
    assert got and got[0][3] == "RAISE"
    # ≥ min_count readings, ≤ 30 min (the 4 h floor is 1,440); a one-step tolerance learns fewer
    # changes than exact repeats (σ = resolution: 0.39 instead of 0.6 a reading), so it takes longer
    assert 30 + 20 <= got[0][0] <= 30 + 180


def test_more_history_means_an_earlier_verdict():
    rng = np.random.default_rng(4)
    firsts = []
    for history in (6, 300):
        v = quantised_noise(rng, history + 400, 0.25, 0.01, 0.01)
        v[history:] = v[history - 1]
        got = [g for g in run(stuck_engine(["methane"]), v[:, None]) if g[2] == "stuck"]
        firsts.append(got[0][0] - history)
    assert firsts[1] < firsts[0]


def test_a_coarsely_quantised_sensor_is_not_stuck_for_its_long_runs():
    # σ = 0.3 resolution: the value sits in one bin for long stretches; a day of it raises nothing
    rng = np.random.default_rng(5)
    v = quantised_noise(rng, 8640, 20.7, 0.03, 0.1)
    assert [g for g in run(stuck_engine(["o2"]), v[:, None]) if g[2] == "stuck"] == []


def test_never_varied_and_range_bottom_wait_for_the_time_floor():
    rng = np.random.default_rng(6)
    flat = np.full(1600, 5.0)  # temperature that never varied: only the 4 h floor (1,440 readings)
    zero = quantised_noise(rng, 1600, 3.0, 0.5, 1.0)
    zero[200:] = 0.0  # flow to 0 (range bottom) after varying: not judged improbable
    e = Engine(DetectorConfig.from_config({"enabled": ["stuck"]}))
    e.set_registry(snapshot(["temperature", "flow"]))
    got = [g for g in run(e, np.stack([flat, zero], axis=1)) if g[2] == "stuck"]
    # the flat thermometer at the 4 h floor; the zero flow would reach it only at reading 1,640
    assert [(i, s, ev) for i, s, _, ev in got] == [(1440, 1, "RAISE")]


# --- drift ------------------------------------------------------------------------------------
def thermometers(hours: float, drift_per_h: float, offsets=(22.0, 23.5, 24.0, 25.0), dt_s: float = 30.0, seed: int = 7):
    """Four tank thermometers of one zone on one diurnal curve; the first drifts from t = 10 min."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, hours * 3600, dt_s)
    common = 3.0 * np.sin(2 * np.pi * t / 86400.0 + 1.0)
    v = np.stack([o + common + 0.08 * rng.standard_normal(t.shape) for o in offsets], axis=1)
    v[:, 0] += drift_per_h * np.maximum(t - 600.0, 0.0) / 3600.0
    return np.round(v, 1)


def drift_engine(n=4, zones=None):
    e = Engine(DetectorConfig.from_config({"enabled": ["drift"]}))
    e.set_registry(snapshot(["temperature"] * n, zone=zones or [1] * n, interval_s=30.0))
    return e


def test_the_drifting_thermometer_and_only_it_is_flagged_before_two_hours():
    got = [g for g in run(drift_engine(), thermometers(3.0, -1.0), dt_s=30.0) if g[2] == "drift"]
    assert got and {s for _, s, _, _ in got} == {1}
    assert got[0][3] == "RAISE" and got[0][0] * 30.0 < 600.0 + 7200.0


def test_the_weather_moving_every_thermometer_is_not_drift():
    v = thermometers(12.0, 0.0)
    v += np.linspace(0.0, 8.0, v.shape[0])[:, None]  # a warm front: +8 ℃ for all of them
    assert [g for g in run(drift_engine(), v, dt_s=30.0) if g[2] == "drift"] == []


def test_two_thermometers_are_no_peer_group_and_other_zones_do_not_count():
    v = thermometers(3.0, 3.0)
    assert [g for g in run(drift_engine(2), v[:, :2], dt_s=30.0) if g[2] == "drift"] == []
    assert [g for g in run(drift_engine(4, zones=[1, 1, 2, 2]), v, dt_s=30.0) if g[2] == "drift"] == []


def test_a_flagged_drift_is_never_learnt_and_clears_when_the_sensor_returns():
    v = thermometers(4.0, 3.0)
    back = int(3.0 * 3600 / 30)
    v[back:, 0] = thermometers(4.0, 0.0)[back:, 0]  # recalibrated after 3 h
    got = [(i, ev) for i, s, r, ev in run(drift_engine(), v, dt_s=30.0) if r == "drift" and s == 1]
    assert [ev for _, ev in got] == ["RAISE", "CLEAR"] and got[1][0] == back


# --- per location class -----------------------------------------------------------------------
def test_kind_at_class_parameters_build_on_the_kind():
    cfg = DetectorConfig.from_config({"kinds": {"temperature": {"anomaly_warmup": 7}}})
    room = cfg.params_for("temperature", False, "cold_room")
    assert room.anomaly is False and room.anomaly_warmup == 7 and room.drift is True
    assert cfg.params_for("temperature", False, "").anomaly is True
    with pytest.raises(DetectorConfigError, match="kinds.nosuch@x"):
        DetectorConfig.from_config({"kinds": {"nosuch@x": {}}})


def test_cold_room_defrost_raises_no_anomaly_but_a_tank_thermometer_would():
    t = np.arange(0.0, 4 * 3600, 30.0)
    x = np.where(t % 21600 < 1800, (t % 21600) / 1800 * 9.0, 0.0)
    v = np.round(-18.0 + x + 0.08 * np.random.default_rng(8).standard_normal(t.shape), 1)
    v = np.roll(v, -2000 // 30)  # the defrost falls after the warm-up
    e = Engine(DetectorConfig.from_config({"enabled": ["anomaly"]}))
    e.set_registry(snapshot(["temperature", "temperature"], ["cold_room", ""], interval_s=30.0))
    got = {s for _, s, r, _ in run(e, np.stack([v, v], axis=1), dt_s=30.0) if r == "anomaly"}
    assert got == {2}


def test_a_frozen_sensor_whose_last_digit_flickers_is_stuck():
    """Fails with an exact-repeat tolerance: the flicker resets every run."""
    rng = np.random.default_rng(8)
    v = quantised_noise(rng, 600, 0.25, 0.01, 0.01)  # methane, σ = resolution
    v[60:] = np.round((v[59] + 0.01 * rng.integers(0, 2, size=540)) / 0.01) * 0.01  # v or v + 1 step
    got = [g for g in run(stuck_engine(["methane"]), v[:, None]) if g[2] == "stuck"]
    assert got and got[0][3] == "RAISE"
    assert 60 + 20 <= got[0][0] <= 60 + 180


@pytest.mark.parametrize("sigma_res", [0.3, 0.4, 0.5, 1.0])
@pytest.mark.parametrize("mean_frac", [0.0, 0.25, 0.5])
def test_quantised_noise_with_one_step_tolerance_raises_nothing_in_a_day(sigma_res, mean_frac):
    # a mean between two steps flickers between them by nature: neither rule may call it stuck
    rng = np.random.default_rng(int(sigma_res * 100 + mean_frac * 10))
    v = quantised_noise(rng, 8640, 20.0 + mean_frac * 0.1, sigma_res * 0.1, 0.1)
    assert [g for g in run(stuck_engine(["temperature"]), v[:, None]) if g[2] == "stuck"] == []
