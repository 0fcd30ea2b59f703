"""Gateway misbehaviours: batching, jitter, skew, outages with backlog, duplicates, calibration, malformed."""

from __future__ import annotations

import numpy as np

from domain.codec import parse_batch
from domain.quality import Quality
from simulators import Emitter, FleetConfig, OutMessage, StatusChange, build_fleet
from simulators import signals as sg
from simulators.encoder import MALFORMED_KINDS
from tests.simulators.conftest import START_S


def _fleet(**gateway):
    doc = {"name": "g", "seed": 11, "gateway": gateway, "enterprises": [
        {"id": "E1", "name": "m", "region": "360302", "industry": "coal_mine", "site": {"faces": 2, "headings": 2}},
        {"id": "E2", "name": "c", "region": "360102", "industry": "cold_storage"}]}
    return build_fleet(FleetConfig.from_config(doc))


def _events(fleet, hours, step_s=5.0, seed=3):
    em = Emitter(fleet, START_S, seed)
    out, t = [], START_S
    while t < START_S + hours * 3600:
        t += step_s
        out += em.step(t)
    return em, out


def test_same_seed_same_bytes_whatever_the_step_size():
    f = _fleet(duplicate_share=0.05, malformed_share=0.05, outages_per_day=24, calibration_every_h=1)
    _, a = _events(f, 2, step_s=5.0)
    _, b = _events(f, 2, step_s=1.0)
    pa = sorted(e.payload for e in a if isinstance(e, OutMessage) and e.sort == "live")
    pb = sorted(e.payload for e in b if isinstance(e, OutMessage) and e.sort == "live")
    assert len(pa) > 1000 and pa[:50] == pb[:50]


def test_batching_jitter_and_skew():
    f = _fleet(max_batch=4, jitter_share=0.1, clock_skew_s=[-3, 3])
    em, ev = _events(f, 1)
    msgs = [e for e in ev if isinstance(e, OutMessage)]
    assert max(e.sensor.shape[0] for e in msgs) == 4
    g0 = [e.batch_ts_ms for e in msgs if e.gateway == 0]
    periods = np.diff(np.unique(g0)) / 1000.0
    interval = f.gw_interval_s[0]
    assert periods.min() >= interval * 0.9 - 1e-3 and periods.max() <= interval * 1.1 + 1e-3
    assert abs(periods.mean() - interval) < 0.02 * interval
    assert np.all(np.abs(em.skew_s) <= 3.0)


def test_bad_clocks():
    f = _fleet(bad_clock_share=1.0, bad_clock_offset_s=3600)
    em = Emitter(f, START_S, 1)
    assert np.all(np.abs(em.skew_s) == 3600)


def test_duplicate_and_malformed_shares():
    f = _fleet(duplicate_share=0.05, malformed_share=0.02)
    em, ev = _events(f, 3)
    live = sum(1 for e in ev if isinstance(e, OutMessage) and e.sort == "live")
    dup = [e for e in ev if isinstance(e, OutMessage) and e.sort == "duplicate"]
    bad = [e for e in ev if isinstance(e, OutMessage) and e.sort == "malformed"]
    n = live + len(bad)
    assert abs(len(dup) / live - 0.05) < 4 * np.sqrt(0.05 * 0.95 / live)
    assert abs(len(bad) / n - 0.02) < 4 * np.sqrt(0.02 * 0.98 / n)
    for k, e in enumerate(ev):  # a duplicate repeats the message just sent, byte for byte
        if isinstance(e, OutMessage) and e.sort == "duplicate":
            assert ev[k - 1].sort == "live" and ev[k - 1].payload == e.payload
    assert {b.malformed for b in bad} == set(MALFORMED_KINDS)


def test_outage_sends_will_then_online_then_backlog_with_reading_times():
    f = _fleet(outages_per_day=48, outage_s=[60, 120])
    em, ev = _events(f, 6)
    assert em.stats.outages > 0
    for g in range(f.n_gateways):
        seq = [e for e in ev if e.gateway == g]
        for k, e in enumerate(seq):
            if isinstance(e, StatusChange) and not e.online:
                assert not e.clean  # a dead link: the broker publishes the Last Will
                nxt = next(x for x in seq[k + 1:] if isinstance(x, StatusChange) or x.sort != "backlog")
                assert isinstance(nxt, StatusChange) and nxt.online  # nothing live while down
    backlog = [e for e in ev if isinstance(e, OutMessage) and e.sort == "backlog"]
    assert backlog
    for b in backlog:
        d = parse_batch(b.payload)
        np.testing.assert_array_equal(d.ts_ms, b.ts_ms)
        assert d.ts_ms.max() < b.batch_ts_ms  # readings older than the message that carries them


def test_backlog_is_bounded_and_drops_are_counted():
    f = _fleet(outages_per_day=1000, outage_s=[3000, 3000], backlog_max_readings=20)
    em, ev = _events(f, 3)
    assert em.stats.backlog_dropped > 0
    assert all(e.sensor.shape[0] <= 20 for e in ev if isinstance(e, OutMessage) and e.sort == "backlog")


def test_calibration_sessions_flag_calibrating_with_the_calibration_gas():
    f = _fleet(calibration_every_h=1, calibration_s=300)
    _, ev = _events(f, 4)
    sensor = np.concatenate([e.sensor for e in ev if isinstance(e, OutMessage) and e.sort == "live"])
    value = np.concatenate([e.value for e in ev if isinstance(e, OutMessage) and e.sort == "live"])
    q = np.concatenate([e.quality for e in ev if isinstance(e, OutMessage) and e.sort == "live"])
    cal = (q & Quality.CALIBRATING) != 0
    assert cal.any()
    np.testing.assert_array_equal(value[cal], f.calibration_value[sensor[cal]])
    gas = np.isfinite(f.calibration_value[sensor])
    share = cal[gas].mean()
    assert abs(share - 300 / 3600) < 0.03
    assert not cal[~gas].any()
    kinds = {f.sensor_kind[i] for i in sensor[cal]}
    assert kinds <= set(sg.CALIBRATION_GAS)
