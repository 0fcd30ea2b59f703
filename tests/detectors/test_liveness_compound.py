from __future__ import annotations

import numpy as np
import pytest

from detectors import DetectorConfig, DetectorConfigError, Engine
from domain.messages import ReadingBatch
from tests.detectors.fleet import snapshot

S = 1_000_000


def rows(f):
    return sorted((r.subject_kind.name, r.subject, r.rule, r.event.name) for r in f.rows())


def live_engine():
    # sensors 1,2 on gateway 1; sensors 3,4 on gateway 2; interval 10 s → stale after 30 s
    e = Engine(DetectorConfig.from_config({"enabled": ["nodata"]}))
    e.set_registry(snapshot(["co"] * 4, gateway=[1, 1, 2, 2], gateway_interval_s=10.0))
    return e


def test_stale_sensor_and_recovery():
    e = live_engine()
    e.tick(0)
    e.update(ReadingBatch.build(sensor=[1, 2, 3, 4], ts_us=[S] * 4, value=[1.0] * 4))
    for t in range(2, 30):
        e.update(ReadingBatch.build(sensor=[1, 3, 4], ts_us=[t * S] * 3, value=[1.0] * 3))
    assert rows(e.tick(30 * S)) == []
    # overdue at 31 s, but its gateway has not been heard since: its silence may be the gateway's
    assert rows(e.tick(32 * S)) == []
    e.update(ReadingBatch.build(sensor=[1], ts_us=[32 * S], value=[1.0]))  # the gateway is alive
    assert rows(e.tick(32 * S)) == [("SENSOR", 2, "nodata", "RAISE")]
    assert rows(e.tick(33 * S)) == []  # a state change, not a repeat
    f = e.update(ReadingBatch.build(sensor=[2], ts_us=[33 * S], value=[1.0]))
    assert rows(f) == [("SENSOR", 2, "nodata", "CLEAR")]


def test_gateway_silence_folds_its_sensors():
    e = live_engine()
    e.tick(0)
    e.update(ReadingBatch.build(sensor=[1, 2, 3, 4], ts_us=[S] * 4, value=[1.0] * 4))
    for t in range(2, 60):
        e.update(ReadingBatch.build(sensor=[1, 2], ts_us=[t * S] * 2, value=[1.0] * 2))
    f = e.tick(60 * S)  # gateway 2 silent for 59 s > 3 × 10 s: one gateway finding, no sensor ones
    assert rows(f) == [("GATEWAY", 2, "gateway_offline", "RAISE")]
    assert rows(e.tick(200 * S)) == [("GATEWAY", 1, "gateway_offline", "RAISE")]
    f = e.update(ReadingBatch.build(sensor=[3], ts_us=[201 * S], value=[1.0]))
    assert rows(f) == [("GATEWAY", 2, "gateway_offline", "CLEAR")]
    # sensor 4 gets a fresh grace period from the gateway's return, then goes stale alone
    for t in range(202, 241, 5):
        e.update(ReadingBatch.build(sensor=[3], ts_us=[t * S], value=[1.0]))
    assert rows(e.tick(225 * S)) == []
    assert rows(e.tick(240 * S)) == [("SENSOR", 4, "nodata", "RAISE")]


def test_last_will_raises_at_once_and_online_clears():
    e = live_engine()
    e.tick(0)
    f = e.gateway_status(np.array([2]), np.array([False]), np.array([5 * S]))
    assert rows(f) == [("GATEWAY", 2, "gateway_offline", "RAISE")]
    assert all(r[1] != 3 and r[1] != 4 for r in rows(e.tick(100 * S)) if r[0] == "SENSOR")
    f = e.gateway_status(np.array([2]), np.array([True]), np.array([101 * S]))
    assert rows(f) == [("GATEWAY", 2, "gateway_offline", "CLEAR")]


def quiet_gateway_engine():
    # the field's usual shape: sensors every 10 s (stale after 30 s), gateways judged on their own
    # 60 s interval (down after 180 s of silence); sensors 1,2 on gateway 1, sensors 3,4 on gateway 2
    e = Engine(DetectorConfig.from_config({"enabled": ["nodata"]}))
    e.set_registry(snapshot(["co"] * 4, gateway=[1, 1, 2, 2], gateway_interval_s=60.0))
    e.tick(0)
    e.update(ReadingBatch.build(sensor=[1, 2, 3, 4], ts_us=[S] * 4, value=[1.0] * 4))
    return e


def run_until(e, end_s, sensors=(1, 2)):
    """Gateway 1's sensors report every 10 s; the engine ticks every second; findings collected."""
    found = []
    for t in range(2, end_s + 1):
        if t % 10 == 0:
            found += rows(e.update(ReadingBatch.build(sensor=list(sensors), ts_us=[t * S] * len(sensors),
                                                      value=[1.0] * len(sensors))))
        found += [(t, *r) for r in rows(e.tick(t * S))]
    return found


def test_gateway_silent_without_will_gives_one_gateway_finding_and_no_nodata_storm():
    """Clean disconnect or cut cable: no status message at all. Before the fix, sensors 3 and 4
    raised "no data" at 31 s and the gateway only at 181 s."""
    e = quiet_gateway_engine()
    found = run_until(e, 400)
    assert found == [(182, "GATEWAY", 2, "gateway_offline", "RAISE")]
    # it comes back: one clear, and its sensors start a fresh grace period
    f = e.update(ReadingBatch.build(sensor=[3, 4], ts_us=[401 * S] * 2, value=[1.0] * 2))
    assert rows(f) == [("GATEWAY", 2, "gateway_offline", "CLEAR")]


def test_gateway_with_a_late_will_gives_one_gateway_finding_and_no_nodata_storm():
    """The broker publishes the Will 1.5 × keepalive after the link died (90 s for a 60 s
    keepalive), well after the sensors' 30 s deadline: still one gateway finding, no sensor one."""
    e = quiet_gateway_engine()
    found = run_until(e, 90)
    assert found == []
    f = e.gateway_status(np.array([2]), np.array([False]), np.array([91 * S]))
    assert rows(f) == [("GATEWAY", 2, "gateway_offline", "RAISE")]
    found = run_until(e, 400)
    assert found == []


def test_a_sensor_that_stops_alone_is_still_raised_once_its_gateway_speaks():
    e = quiet_gateway_engine()
    found = run_until(e, 120, sensors=(1, 3))  # sensor 2 (gateway 1) and sensor 4 (gateway 2) stop
    assert found == [(40, "SENSOR", 2, "nodata", "RAISE"), (40, "SENSOR", 4, "nodata", "RAISE")]


def test_compound_methane_rising_while_fan_off():
    cfg = DetectorConfig.from_config({"enabled": ["ttt", "compound"], "kinds": {"methane": {"trend_warmup": 5}}})
    e = Engine(cfg)
    # zone 1: methane + fan; zone 2: methane + fan (fan stays on)
    e.set_registry(snapshot(["methane", "fan_state", "methane", "fan_state"], ["T1", "", "T1", ""], zone=[1, 1, 2, 2]))
    found = []
    for i in range(60):
        v = 0.3 + 0.01 * i
        fan1 = 1.0 if i < 40 else 0.0
        f = e.update(ReadingBatch.build(sensor=[1, 2, 3, 4], ts_us=[i * 10 * S] * 4, value=[v, fan1, v, 1.0]))
        found += [(i, *r) for r in rows(f)]
    zone = [r for r in found if r[1] == "ZONE"]
    assert zone and all(r[2] == 1 for r in zone)
    assert zone[0][3] == "compound.methane_rising_fan_off" and zone[0][4] == "RAISE" and zone[0][0] == 40


def test_compound_adjacent_pressure_falling():
    cfg = DetectorConfig.from_config({"enabled": ["ttt", "compound"], "kinds": {"pressure": {"trend_warmup": 5}}})
    e = Engine(cfg)
    e.set_registry(snapshot(["pressure"] * 3, zone=[1, 2, 3], adjacency={1: (2,), 2: (1,)}))
    out = []
    for i in range(80):  # falling 0.012 MPa/min: 3 × the rule's 0.004, above any demand ramp
        p1 = 0.4 - 0.002 * i
        p3 = 0.4 - 0.002 * i  # falling, but zone 3 has no falling neighbour
        f = e.update(ReadingBatch.build(sensor=[1, 2, 3], ts_us=[i * 10 * S] * 3, value=[p1, 0.4 - 0.002 * i if i > 10 else 0.4, p3]))
        out += rows(f)
    raised = {r[1] for r in out if r[0] == "ZONE" and r[3] == "RAISE"}
    assert raised == {1, 2}


def test_config_errors_name_the_key():
    with pytest.raises(DetectorConfigError, match=r"detectors.kinds.methane.rate_tau"):
        DetectorConfig.from_config({"kinds": {"methane": {"rate_tau": 1}}})
    with pytest.raises(DetectorConfigError, match=r"compound\[0\].when\[0\].condition"):
        DetectorConfig.from_config({"compound": [{"name": "x", "when": [{"kind": "methane", "condition": "up"}]}]})
    with pytest.raises(DetectorConfigError, match="enabled"):
        DetectorConfig.from_config({"enabled": ["limit", "magic"]})


def test_registry_growth_keeps_state():
    e = Engine(DetectorConfig.from_config({"enabled": ["limit"]}))
    e.set_registry(snapshot(["methane"], ["T1"]))
    e.update(ReadingBatch.build(sensor=[1], ts_us=[0], value=[1.2]))
    e.set_registry(snapshot(["methane", "co"], ["T1", ""], version=2))
    assert e.size == 3
    a = e.active()
    assert [(r.subject, r.rule) for r in a.rows()] == [(1, "limit")]
    f = e.update(ReadingBatch.build(sensor=[1, 2], ts_us=[S, S], value=[1.2, 40.0]))
    assert [(r.subject, r.rule, r.event.name) for r in f.rows()] == [(2, "limit", "RAISE")]
