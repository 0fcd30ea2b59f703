"""Signal models: physical ranges, no false alarms in a healthy fleet, and the stated statistics."""

from __future__ import annotations

import numpy as np
import pytest

from domain.catalog import KINDS, effective_setpoints
from domain.quality import Quality
from simulators import Emitter, OutMessage
from simulators import signals as sg
from tests.simulators.conftest import START_S


def _run(fleet, hours: float, step_s: float = 60.0, seed: int = 1):
    em = Emitter(fleet, START_S, seed)
    cols = {"sensor": [], "ts_ms": [], "value": [], "quality": []}
    t = START_S
    while t < START_S + hours * 3600:
        t += step_s
        for ev in em.step(t):
            if isinstance(ev, OutMessage) and ev.sort in ("live", "backlog"):
                for k in cols:
                    cols[k].append(getattr(ev, k))
    return {k: np.concatenate(v) for k, v in cols.items()}


def test_healthy_fleet_stays_in_range_and_below_every_setpoint(demo_fleet):
    r = _run(demo_fleet, hours=26)
    good = (r["quality"] & Quality.CALIBRATING) == 0
    assert good.mean() > 0.95
    for i, (_, s) in enumerate(demo_fleet.sensors):
        mine = r["sensor"] == i
        assert mine.any(), s.id
        v = r["value"][mine]
        kind = KINDS[s.kind]
        assert v.min() >= kind.range_min and v.max() <= kind.range_max, s.id
        vg = r["value"][mine & good]
        for sp in effective_setpoints(s.kind, s.location_class or "", s.setpoints):
            if sp.side == "high":
                assert vg.max() < sp.value, (s.id, sp)
            else:
                assert vg.min() > sp.value, (s.id, sp)


def _single(fleet, role=None, kind=None):
    return next(i for i, (_, s) in enumerate(fleet.sensors) if (role is None or s.role == role) and (kind is None or s.kind == kind))


def test_cutting_shifts_raise_methane_by_the_stated_uplift(demo_fleet):
    i = _single(demo_fleet, role="face", kind="methane")
    t = START_S + np.arange(0, 3 * 86400, 10.0)
    idx = np.full(t.shape, i)
    v = sg.finish(demo_fleet.signal, idx, sg.clean_values(demo_fleet.signal, idx, t), t)
    cutting = sg.SHIFTS.cutting(t) == 1
    h = sg.local_hour(t)
    assert np.all(cutting == (h >= 8))  # 三八制: 00-08 maintenance, 08-24 cutting
    settled = (h % 8 >= 1.5) | ((h >= 9.5) & (h < 24))  # the ramps (≈ 25 min) are over
    base = demo_fleet.signal.cols["base"][i]
    uplift = v[cutting & settled].mean() - v[~cutting & settled].mean()
    assert abs(uplift - base * 0.6) < 0.1 * base * 0.6 + 0.005


def _rise_min(t, clean, start_s):
    """Minutes from 10 % to 90 % of the step that starts at ``start_s``."""
    after = t >= start_s
    lo, hi = clean[after][0], clean[after][-1]
    frac = (clean[after] - lo) / (hi - lo)
    return (t[after][np.argmax(frac >= 0.9)] - t[after][np.argmax(frac >= 0.1)]) / 60.0


@pytest.mark.parametrize(("role", "kind", "rise_min"), [("face", "methane", 23.0), (None, "dust", 23.0),
                                                         (None, "temperature", 52.0)])
def test_cutting_starts_as_a_ramp_over_minutes_not_in_one_scan(demo_fleet, role, kind, rise_min):
    """The shearer starts at 08:00: the reading follows the emission's build-up (cut_tau_s) through
    the sensor's own lag (SHIFT_LAG_S), an S-shaped rise with the stated 10–90 % time."""
    i = next(j for j, (_, s) in enumerate(demo_fleet.sensors)
             if s.kind == kind and (role is None or s.role == role) and demo_fleet.signal.cols["shift_amp"][j] != 0
             and demo_fleet.signal.cols["diurnal_amp"][j] == 0)  # nothing else moves it
    start = sg.DAY_S * np.ceil((START_S + sg.LOCAL_UTC_OFFSET_S) / sg.DAY_S) - sg.LOCAL_UTC_OFFSET_S + 8 * 3600
    assert sg.local_hour(np.array([start]))[0] == 8.0
    t = start - 600 + np.arange(0, 4 * 3600, 10.0)
    idx = np.full(t.shape, i)
    amp = demo_fleet.signal.cols["shift_amp"][i]
    clean = sg.clean_values(demo_fleet.signal, idx, t)
    assert abs(_rise_min(t, clean, start) - rise_min) < 2.0
    first_minute = (t > start) & (t <= start + 60)
    assert np.abs(np.diff(clean[first_minute])).max() < 0.01 * amp  # zero slope at the start: no step
    assert np.abs(np.diff(clean)).max() < 0.02 * amp  # never more than 2 % of the uplift in 10 s
    assert abs(clean[-1] - clean[0] - amp) < 0.01 * amp


def test_cutting_stops_with_the_emission_dying_away(demo_fleet):
    i = _single(demo_fleet, role="face", kind="methane")
    midnight = sg.DAY_S * np.ceil((START_S + sg.LOCAL_UTC_OFFSET_S) / sg.DAY_S) - sg.LOCAL_UTC_OFFSET_S
    t = midnight + np.array([-60.0, 0.0, 10.0, 600.0, 3600.0, 7200.0])
    idx = np.full(t.shape, i)
    clean = sg.clean_values(demo_fleet.signal, idx, t)
    amp = demo_fleet.signal.cols["shift_amp"][i]
    left = (clean - clean[-1]) / amp
    assert left[0] > 0.99 and left[1] > 0.99 and left[2] > 0.99  # still desorbing right after the stop
    assert 0.4 < left[3] < 0.9 and left[4] < 0.02  # ≈ 25 min to die away


def test_defrost_gives_a_spectral_peak_at_its_period(demo_fleet):
    i = _single(demo_fleet, role="room_temp")
    dt = 60.0
    t = START_S + np.arange(0, 8 * 86400, dt)
    idx = np.full(t.shape, i)
    v = sg.finish(demo_fleet.signal, idx, sg.clean_values(demo_fleet.signal, idx, t), t)
    spec = np.abs(np.fft.rfft(v - v.mean()))
    freq = np.fft.rfftfreq(v.shape[0], dt)
    peak_period_s = 1.0 / freq[1:][np.argmax(spec[1:])]
    assert abs(peak_period_s - sg.DEFROST.period_s) / sg.DEFROST.period_s < 0.02


def test_gas_flow_follows_the_daily_demand_curve(demo_fleet):
    i = _single(demo_fleet, role="line_flow")
    t = START_S + np.arange(0, 86400, 60.0)
    idx = np.full(t.shape, i)
    v = sg.finish(demo_fleet.signal, idx, sg.clean_values(demo_fleet.signal, idx, t), t)
    peak_h = sg.local_hour(t[np.argmax(v)])
    biggest = max(sg.DEMAND.peaks, key=lambda p: p[1])[0]
    assert abs(peak_h - biggest) < 0.75
    assert abs(v.mean() / demo_fleet.signal.cols["base"][i] - 1.0) < 0.05  # daily mean = base flow
    trough_h = sg.local_hour(t[np.argmin(v)])
    assert trough_h < 5 or trough_h > 23  # night minimum


def test_noise_std_and_resolution_hold():
    from simulators import FleetConfig, build_fleet

    doc = {"name": "n", "seed": 4, "enterprises": [{"id": "E", "name": "e", "region": "360100", "industry": "coal_mine",
                                                     "site": {"template": "uniform", "gateways": 2, "sensors_per_gateway": 10}}]}
    fleet = build_fleet(FleetConfig.from_config(doc))
    rng = np.random.default_rng(9)
    for i, kind in enumerate(fleet.sensor_kind[:10]):
        t = START_S + np.arange(0, 20000, 1.0)
        idx = np.full(t.shape, i)
        clean = sg.clean_values(fleet.signal, idx, t)
        v = sg.finish(fleet.signal, idx, clean, t)
        res = fleet.signal.cols["resolution"][i]
        assert np.allclose(v / res, np.round(v / res), atol=1e-6), kind
        inside = (clean > sg.KIND_SIGNALS[kind].lo + 5 * sg.NOISE_STD[kind])  # clipping at zero hides noise
        if inside.mean() < 0.99:
            continue
        want = np.sqrt(sg.NOISE_STD[kind] ** 2 + res**2 / 12)
        assert abs((v - clean).std() / want - 1) < 0.15, kind


def test_hash_uniform_is_uniform_and_deterministic():
    u = sg.hash_uniform(np.uint64(12345), np.arange(100_000))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(u, sg.hash_uniform(np.uint64(12345), np.arange(100_000)))
