"""Equipment groups: the vectorised detector against its per-reading reference on random streams,
and what it is for: one channel of a machine leaving its relation with the others."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import DetectorConfig, DetectorConfigError, Engine
from domain.messages import ReadingBatch
from tests.detectors.fleet import snapshot
from tests.detectors.naive_equipment import NaiveEquipmentEngine
from tests.detectors.test_reference import FAST, canon, stream


def steady(seed: int, n_batches: int):
    """The reference test's streams (repeats, NaN, ±Inf, quality flags, late and duplicate times)
    with the levels held still between rare shifts, so groups raise and clear again."""
    kinds, classes, batches = stream(seed, n_sensors=40, n_batches=n_batches, batch=120)
    rng = np.random.default_rng(seed + 1000)
    level = np.array([0.9, 0.9, 0.9, 20.0, 20.0, 1.0, 25.0, 95.0, 20.0, 0.4] * 4)
    step = np.array([0.15, 0.15, 0.15, 0.3, 3.0, 0.0, 0.5, 8.0, 3.0, 0.05] * 4)
    out = []
    for s, ts, v, q in batches:
        shifted = rng.random(40) < 0.05
        kick = np.where(shifted, 4.0 * step * rng.choice([-1.0, 1.0], size=40), 0.0)
        fresh = np.round(level[s - 1] + kick[s - 1] + step[s - 1] * rng.standard_normal(s.shape[0]), 1)
        keep = ~np.isfinite(v) | np.array([kinds[i - 1] == "fan_state" for i in s])
        out.append((s, ts, np.where(keep, v, fresh), q))
    return kinds, classes, out

FAST_EQUIPMENT = {"warmup": 4, "alpha": 0.2, "k": 2.0, "k_smooth": 2.5, "beta": 0.3, "clear": 0.6, "spread_k": 2.5}


@pytest.mark.parametrize("seed", [41, 42, 43])
def test_engine_matches_naive_reference(seed):
    """Groups of 3 to 5 channels (a switch among them leaves its group), repeats, NaN, ±Inf,
    quality flags, out-of-order and late times: every finding equal to the reference's."""
    kinds, classes, batches = steady(seed, n_batches=80)
    equipment = [1 + i // 5 if i < 20 else (5 + (i - 20) // 3 if i < 32 else 0) for i in range(40)]
    cfg = DetectorConfig.from_config({**FAST, "compound": [], "equipment": FAST_EQUIPMENT})
    eng = Engine(cfg)
    eng.set_registry(snapshot(kinds, classes, equipment=equipment))
    ref = NaiveEquipmentEngine(cfg, kinds, classes, equipment)
    assert eng.equipment.members.shape[0] == len(ref.groups) >= 6
    assert {int((row > 0).sum()) for row in eng.equipment.members} >= {3, 4}
    raised = cleared = 0
    for j, (s, ts, v, q) in enumerate(batches):
        got = eng.update(ReadingBatch.build(sensor=s, ts_us=ts, value=v, quality=q))
        rows = [(int(f.subject), f.rule, int(f.event), int(f.severity), int(f.ts_us)) for f in got.rows()]
        want = ref.update(s, ts, v, q)
        assert canon(rows) == canon(want), f"seed {seed}, batch {j}"
        raised += sum(1 for r in rows if r[1] == "equipment" and r[2] == 1)
        cleared += sum(1 for r in rows if r[1] == "equipment" and r[2] == 3)
    assert raised >= 5 and cleared >= 1, (raised, cleared)


def pump(n_steps: int, fault_at: int, fault_channel: int, shift_sigma: float, seed: int = 3, step_at: int | None = None):
    """Five channels (two pressures, flow, temperature, level) following one load, noise σ = 5
    resolution steps; optionally a load step of the whole machine, and a shift of one channel."""
    rng = np.random.default_rng(seed)
    level = np.array([0.6, 800.0, 45.0, 5.0, 1.2])
    sigma = np.array([0.005, 0.5, 0.5, 0.05, 0.005])
    gain = np.array([1.0, 0.8, -0.6, 0.5, 1.2]) * 20 * sigma
    load = np.sin(np.arange(n_steps) / 80.0) + (0 if step_at is None else 3.0 * (np.arange(n_steps) >= step_at))
    values = level + load[:, None] * gain + sigma * rng.standard_normal((n_steps, 5))
    values[fault_at:, fault_channel] += shift_sigma * sigma[fault_channel]
    return values


def run_pump(values, config=None):
    kinds = ["pressure", "flow", "temperature", "level", "pressure"]
    eng = Engine(config or DetectorConfig.from_config({"compound": []}))  # two pressures in one zone fall together
    eng.set_registry(snapshot(kinds, interval_s=30.0, equipment=[1] * 5))
    found = []
    for i, v in enumerate(values):
        f = eng.update(ReadingBatch.build(sensor=np.arange(1, 6, dtype=np.int32),
                                          ts_us=np.full(5, i * 30_000_000, np.int64), value=v))
        found += [(i, int(r.subject), r.rule, int(r.event), float(r.setpoint)) for r in f.rows()]
    return eng, found


def test_one_channel_leaving_the_others_is_named_and_cleared():
    values = pump(1200, fault_at=900, fault_channel=2, shift_sigma=6.0)
    values[1000:, 2] -= 6.0 * 0.5  # the temperature comes back
    eng, found = run_pump(values)
    eq = [f for f in found if f[2] == "equipment"]
    assert [(f[1], f[3]) for f in eq] == [(3, 1), (3, 3)], eq  # sensor 3, the temperature: raised, then cleared
    assert 900 <= eq[0][0] <= 905 and 1000 <= eq[1][0] <= 1030
    predicted = eq[0][4]
    assert abs(predicted - (values[eq[0][0], 2] - 3.0)) < 4 * 0.5  # what the others say it should read
    assert {f[2] for f in found} == {"equipment"}  # every channel stayed inside its own range and habits


def test_the_whole_machine_moving_together_is_not_a_fault():
    values = pump(1200, fault_at=1200, fault_channel=0, shift_sigma=0.0, step_at=700)
    _, found = run_pump(values)
    assert [f for f in found if f[2] == "equipment"] == []


def test_groups_keep_their_state_across_registry_reloads_and_need_three_channels():
    values = pump(400, fault_at=400, fault_channel=0, shift_sigma=0.0)
    eng, _ = run_pump(values)
    n = int(eng.equipment.n[0])
    kinds = ["pressure", "flow", "temperature", "level", "pressure"]
    eng.set_registry(snapshot(kinds, interval_s=30.0, equipment=[1] * 5, version=2))
    assert int(eng.equipment.n[0]) == n > 0
    eng.set_registry(snapshot(kinds, interval_s=30.0, equipment=[1, 1, 0, 0, 0], version=3))
    assert eng.equipment.members.shape[0] == 0  # two channels cannot tell which one departed


@pytest.mark.parametrize(("raw", "message"), [
    ({"warm": 3}, "detectors.equipment.warm is not an equipment setting"),
    ({"min_channels": 2}, "min_channels must be at least 3"),
    ({"alpha": 1.5}, "alpha must lie in (0, 1)"),
    ({"k": -1}, "k must be a positive number"),
])
def test_equipment_settings_are_validated(raw, message):
    with pytest.raises(DetectorConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DetectorConfig.from_config({"equipment": raw})
