"""Detector throughput and memory: ``python bench/detectors.py [--sensors N] [--batch B] [--batches K]
[--equipment-fraction F]``.

Prints points/s for the default detector set over N sensors fed batches of B readings (sensors
drawn with replacement, so a sensor repeats within a batch), for the window detector alone, and
for a baseline in the same run: one exact EWMA update, sorted into occurrence-rank rounds
(MEASUREMENTS.md). Also the engine's bytes per sensor. ``--equipment-fraction`` puts that share of the
sensors (statistical kinds) into equipment groups of five.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import DetectorConfig, Engine  # noqa: E402
from detectors.ordering import rounds  # noqa: E402
from domain.messages import ReadingBatch  # noqa: E402
from tests.detectors.fleet import snapshot  # noqa: E402

MIX = ["methane"] * 4 + ["co", "o2", "temperature", "pressure", "fan_state", "nh3", "combustible_gas", "h2s"]


def make_batches(n_sensors: int, batch: int, k: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    out = []
    t0 = 1_700_000_000_000_000
    for j in range(k):
        s = rng.integers(1, n_sensors + 1, size=batch).astype(np.int32)
        ts = t0 + j * 1_000_000 + rng.integers(0, 1_000_000, size=batch)
        v = 0.3 + 0.05 * rng.standard_normal(batch)
        out.append(ReadingBatch.build(sensor=s, ts_us=ts, value=v))
    return out


def baseline(n_sensors: int, batches) -> float:
    mu = np.zeros(n_sensors + 1)
    t = time.perf_counter()
    for b in batches:
        perm, bounds = rounds(b.sensor, b.ts_us)
        S, X = b.sensor[perm], b.value[perm]
        for r in range(bounds.shape[0] - 1):
            s, x = S[bounds[r]:bounds[r + 1]], X[bounds[r]:bounds[r + 1]]
            mu[s] += 0.02 * (x - mu[s])
    return sum(len(b) for b in batches) / (time.perf_counter() - t)


def run(engine: Engine, batches) -> float:
    t = time.perf_counter()
    for b in batches:
        engine.update(b)
    return sum(len(b) for b in batches) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sensors", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--equipment-fraction", type=float, default=0.0, help="share of sensors in groups of five")
    a = ap.parse_args()
    kinds = [MIX[i % len(MIX)] for i in range(a.sensors)]
    loc = ["T1" if k == "methane" else "" for k in kinds]
    grouped = [i for i, k in enumerate(kinds) if k != "fan_state"][: int(a.equipment_fraction * a.sensors)]
    equipment = [0] * a.sensors
    for j, i in enumerate(grouped):
        equipment[i] = 1 + j // 5
    snap = snapshot(kinds, loc, gateway=[1 + i // 50 for i in range(a.sensors)], zone=[1 + i // 20 for i in range(a.sensors)],
                    equipment=equipment)
    warm = make_batches(a.sensors, a.batch, 3, seed=1)
    batches = make_batches(a.sensors, a.batch, a.batches, seed=2)
    base = baseline(a.sensors, batches)
    eng = Engine(DetectorConfig.default())
    eng.set_registry(snap)
    run(eng, warm)
    dflt = run(eng, batches)
    print(f"sensors {a.sensors:,}  batch {a.batch:,}  batches {a.batches}  "
          f"in equipment groups {len(grouped):,} ({eng.equipment.members.shape[0]:,} groups)")
    print(f"baseline exact EWMA (rounds)  {base / 1e6:6.2f} M readings/s")
    print(f"default detector set          {dflt / 1e6:6.2f} M readings/s  ({dflt / base:.2f} × baseline)")
    print(f"  state per sensor            {eng.state_nbytes() / eng.size:6.0f} B")
    cfg = DetectorConfig.from_config({
        "enabled": ["window"],
        "kinds": {k: {"window": True} for k in set(MIX) if k != "fan_state"},
    })
    weng = Engine(cfg)
    weng.set_registry(snap)
    rng = np.random.default_rng(5)  # start with full windows, as after a long run
    weng.window.buf[:] = (0.3 + 0.05 * rng.standard_normal(weng.window.buf.shape)).astype(np.float32)
    weng.window.cnt[:] = weng.window.W
    run(weng, warm)
    win = run(weng, batches)
    print(f"window median/MAD (W={weng.window.W}) alone {win / 1e6:6.2f} M readings/s  ({win / base:.2f} × baseline)")
    print(f"  window state per sensor     {weng.state_nbytes() / weng.size:6.0f} B")


if __name__ == "__main__":
    main()
