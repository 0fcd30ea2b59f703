"""Compound rules read the same trend as ``ttt``: a fast ramp or drop is seen as it happens."""

from __future__ import annotations

import numpy as np

from detectors import DetectorConfig, Engine
from domain.messages import ReadingBatch
from tests.detectors.fleet import snapshot

S = 1_000_000


def zone_raises(f):
    return [(int(z), str(r)) for z, r, k, e in zip(f.subject, f.rule, f.subject_kind, f.event, strict=True)
            if k == 3 and e == 1]


def test_pressure_drop_of_a_fifth_within_a_minute_at_two_adjacent_stations_raises_before_ten_percent():
    """Stations 1 and 2 (adjacent zones) lose 20 % of 0.4 MPa in 60 s; station 3 (not adjacent to
    either) drifts down slowly. Readings every 10 s with 0.002 MPa of noise."""
    e = Engine(DetectorConfig.default())
    e.set_registry(snapshot(["pressure"] * 3, zone=[1, 2, 3], adjacency={1: (2,), 2: (1,)}))
    rng = np.random.default_rng(5)
    raised_at, values = None, []
    for i in range(140):
        drop = 0.08 * np.clip((i - 100) / 6.0, 0.0, 1.0)  # from reading 100, over 6 readings (60 s)
        v = np.array([0.4 - drop, 0.4 - drop, 0.4 - 0.00001 * i]) + 0.002 * rng.standard_normal(3)
        v = np.round(v, 3)
        values.append(v)
        f = e.update(ReadingBatch.build(sensor=[1, 2, 3], ts_us=[i * 10 * S] * 3, value=v))
        got = [z for z, r in zone_raises(f) if r == "compound.pressure_falling_adjacent_stations"]
        if got and raised_at is None:
            raised_at, zones = i, set(got)
    assert raised_at is not None and zones == {1, 2}
    lost = 1.0 - values[raised_at][:2] / 0.4
    assert raised_at >= 100 and (lost < 0.10).all(), (raised_at, lost)


def test_ordinary_demand_ramp_does_not_raise_the_pipeline_rule():
    """A peak-hour demand ramp lowers every station by 0.002 MPa/min for 40 min: not a leak."""
    e = Engine(DetectorConfig.default())
    e.set_registry(snapshot(["pressure"] * 3, zone=[1, 2, 3], adjacency={1: (2,), 2: (1, 3), 3: (2,)}))
    rng = np.random.default_rng(6)
    for i in range(400):
        ramp = 0.002 / 6.0 * np.clip(i - 100, 0, 240)
        v = np.round(0.4 - ramp + 0.001 * rng.standard_normal(3), 3)
        f = e.update(ReadingBatch.build(sensor=[1, 2, 3], ts_us=[i * 10 * S] * 3, value=v))
        assert not zone_raises(f), i


def test_methane_rising_while_fan_off_fires_with_the_ramp_before_the_alarm():
    """Methane climbs 0.3 → 1.6 %VOL in 3 min after the local fan stops (readings every 10 s):
    the compound rule fires while methane is still under its 1.0 %VOL alarm."""
    e = Engine(DetectorConfig.default())
    e.set_registry(snapshot(["methane", "fan_state"], ["T1", ""], zone=[1, 1]))
    rng = np.random.default_rng(8)
    fired = None
    for i in range(120):
        ch4 = 0.3 + (1.3 / 18.0) * max(0, min(i - 80, 18)) + 0.01 * rng.standard_normal()
        fan = 1.0 if i < 80 else 0.0
        f = e.update(ReadingBatch.build(sensor=[1, 2], ts_us=[i * 10 * S] * 2, value=[round(ch4, 2), fan]))
        if fired is None and ("compound.methane_rising_fan_off") in [r for _, r in zone_raises(f)]:
            fired = (i, ch4)
    assert fired is not None and fired[0] > 80 and fired[1] < 1.0, fired
