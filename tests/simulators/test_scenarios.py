"""Every shipped scenario produces its ground truth in the readings, for several seeds."""

from __future__ import annotations

import numpy as np
import pytest

from simulators import Emitter, OutMessage, StatusChange, bind, load_scenario, scenario_names
from simulators.scenarios import GRADES, ScenarioError, ScenarioSpec
from tests.simulators.conftest import START_S

SEEDS = range(5)


def _readings(fleet, inc, until_s, step_s=5.0):
    em = Emitter(fleet, START_S, 1, [inc])
    out, t = [], START_S
    while t < until_s:
        t += step_s
        out += em.step(t)
    return out


def _series(events, fleet, sensor_id, enterprise):
    i = fleet.sensor_index(enterprise, sensor_id)
    ts, vs = [], []
    for e in events:
        if isinstance(e, OutMessage) and e.sort in ("live", "backlog"):
            m = e.sensor == i
            ts.append(e.ts_ms[m]), vs.append(e.value[m])
    ts, vs = np.concatenate(ts), np.concatenate(vs)
    order = np.argsort(ts)
    return ts[order] / 1000.0, vs[order]


def test_shipped_scenarios():
    assert set(scenario_names()) >= {"methane-fan-stop", "ammonia-leak", "pipeline-leak", "tank-overfill",
                                     "sensor-drift", "stuck-sensor", "dead-gateway"}


@pytest.mark.parametrize("name", ["methane-fan-stop", "ammonia-leak", "pipeline-leak", "tank-overfill"])
@pytest.mark.parametrize("seed", SEEDS)
def test_hazard_scenarios_cross_their_milestones_when_the_truth_says(demo_fleet, name, seed):
    inc = bind(load_scenario(name), demo_fleet, START_S, seed)
    tr = inc.truth
    assert tr.onset_s < tr.dangerous_s <= tr.milestones[-1].at_s < tr.deadline_s
    assert tr.expected_grade in GRADES and tr.expected_grade != "blue"
    ev = _readings(demo_fleet, inc, tr.deadline_s + 900)
    t, v = _series(ev, demo_fleet, tr.primary[0], tr.enterprise)
    skew = 5.0  # device clocks are off by up to ±2 s
    period = demo_fleet.gw_interval_s.max()
    for m in tr.milestones:
        first = t[np.flatnonzero(v >= m.threshold)[0]]
        assert m.at_s - 120.0 <= first <= m.at_s + 2 * period + skew, (m, first)  # noise may cross a little early
        assert (v[t < tr.onset_s - skew] < m.threshold).all()
    if name == "methane-fan-stop":
        ft, fv = _series(ev, demo_fleet, next(s for s in tr.sensors if s.startswith("FJ")), tr.enterprise)
        assert (fv[ft < tr.onset_s - skew] == 1).all() and (fv[ft > tr.onset_s + skew] == 0).all()
        kt, kv = _series(ev, demo_fleet, next(s for s in tr.sensors if s.startswith("KD")), tr.enterprise)
        assert kv[-1] == 0  # power cut at 1.5 %
    if name == "ammonia-leak":
        ft, fv = _series(ev, demo_fleet, next(s for s in tr.sensors if s.startswith("PF")), tr.enterprise)
        assert fv[0] == 0 and fv[-1] == 1  # exhaust forced on


@pytest.mark.parametrize("seed", SEEDS)
def test_stuck_sensor_freezes(demo_fleet, seed):
    inc = bind(load_scenario("stuck-sensor"), demo_fleet, START_S, seed)
    tr = inc.truth
    t, v = _series(_readings(demo_fleet, inc, tr.onset_s + 1800), demo_fleet, tr.primary[0], tr.enterprise)
    after = v[t > tr.onset_s + 5]
    assert after.size > 50 and np.ptp(after) == 0 and np.ptp(v[t < tr.onset_s - 5]) > 0
    assert tr.expected_grade == "blue" and tr.dangerous_s is None


@pytest.mark.parametrize("seed", SEEDS)
def test_drift_moves_at_the_drawn_rate(demo_fleet, seed):
    inc = bind(load_scenario("sensor-drift"), demo_fleet, START_S, seed)
    tr = inc.truth
    i = demo_fleet.sensor_index(tr.enterprise, tr.primary[0])
    t, v = _series(_readings(demo_fleet, inc, tr.onset_s + 3 * 3600, step_s=30.0), demo_fleet, tr.primary[0], tr.enterprise)
    from simulators import signals as sg
    clean = sg.clean_values(demo_fleet.signal, np.full(t.shape, i), t)
    late = t > tr.onset_s + 3600
    slope = np.polyfit(t[late], v[late] - clean[late], 1)[0] * 3600
    assert abs(slope - tr.params["amount"]) < 0.1 * abs(tr.params["amount"])


@pytest.mark.parametrize("seed", SEEDS)
def test_dead_gateway_goes_silent_with_its_will(demo_fleet, seed):
    inc = bind(load_scenario("dead-gateway"), demo_fleet, START_S, seed)
    tr = inc.truth
    g = next(k for k, (e, gw) in enumerate(demo_fleet.gateways)
             if gw.id == tr.gateway and demo_fleet.enterprises[e].id == tr.enterprise)
    ev = [e for e in _readings(demo_fleet, inc, tr.deadline_s + 600) if e.gateway == g]
    st = [e for e in ev if isinstance(e, StatusChange)]
    assert st and not st[-1].online and not st[-1].clean
    last = max(e.batch_ts_ms for e in ev if isinstance(e, OutMessage)) / 1000.0
    assert last < tr.onset_s + 5


def test_scenario_errors_name_the_problem(demo_fleet):
    with pytest.raises(ScenarioError, match="type"):
        ScenarioSpec.from_config({"name": "x", "type": "meteor", "industry": "coal_mine"}, "x.yaml")
    with pytest.raises(ScenarioError, match="onset_s"):
        ScenarioSpec.from_config({"name": "x", "type": "stuck", "industry": "coal_mine", "expected_grade": "blue"}, "x.yaml")
    spec = ScenarioSpec.from_config({"name": "x", "type": "gas_accumulation", "industry": "coal_mine",
                                     "target": {"zone_kind": "heading_face", "kind": "methane"},
                                     "params": {"onset_s": 10, "equilibrium": 0.5, "tau_s": 100},
                                     "milestones": [{"threshold": 1.0, "grade": "yellow"}]}, "x.yaml")
    with pytest.raises(ScenarioError, match="never reached"):
        bind(spec, demo_fleet, START_S, 0)
