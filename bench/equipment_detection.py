"""Equipment-group detection on a GutenTAG multivariate corpus: ``python bench/equipment_detection.py``.

The corpus (bench/equipment_corpus.yaml, made by bench/gutentag_equipment_corpus.py in GutenTAG's
own venv, as bench/detection.py does) is one five-channel machine per series: a load and four
channels that follow it, one anomaly on one channel. Each channel becomes a catalog kind (the
configuration's ``channels``), all channels of all machines are fed one time step per batch, and
the machines are equipment groups. Only the ``equipment`` rule runs, with its defaults (or
``--detectors-config``).

Reported per half of the seeds (odd: defaults chosen there; even: held out): event recall (a
raise of the machine inside its label widened by max(10 readings, 10 %)), whether the finding
named the anomalous channel, delay, and false raises per 1,000 group-hours outside the widened
labels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.detection import VENV, widened  # noqa: E402
from detectors import DetectorConfig, Engine  # noqa: E402
from domain.catalog import KINDS  # noqa: E402
from domain.messages import ReadingBatch  # noqa: E402
from domain.severity import FindingEvent  # noqa: E402
from tests.detectors.fleet import snapshot  # noqa: E402

CORPUS = ROOT / "var" / "equipment-corpus"
GENERATOR = ROOT / "bench" / "gutentag_equipment_corpus.py"


def ensure_corpus(config_path: Path) -> list[dict]:
    cfg = yaml.safe_load(config_path.read_text())
    digest = hashlib.sha256(config_path.read_bytes() + GENERATOR.read_bytes()).hexdigest()
    stamp = CORPUS / "config.sha256"
    if stamp.exists() and stamp.read_text() == digest and (CORPUS / "index.json").exists():
        return json.loads((CORPUS / "index.json").read_text())
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(py), "-c", "import gutenTAG"], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", cfg["gutentag"]], check=True)
    subprocess.run([str(py), str(GENERATOR), str(config_path), str(CORPUS)], check=True, stderr=subprocess.DEVNULL)
    stamp.write_text(digest)
    return json.loads((CORPUS / "index.json").read_text())


def build_fleet(cfg: dict, index: list[dict]):
    """Values (T, machines × channels) in the kinds' units, labels (T, machines), kinds per column."""
    chans = cfg["channels"]
    c = len(chans)
    T = int(cfg["length"])
    values = np.empty((T, len(index) * c))
    labels = np.zeros((T, len(index)), dtype=bool)
    for m, e in enumerate(index):
        raw = np.loadtxt(CORPUS / f"{e['name']}.csv", delimiter=",", skiprows=1)
        labels[:, m] = raw[:, c] > 0
        for j, ch in enumerate(chans):
            res = KINDS[ch["kind"]].resolution
            unit = cfg["sigma_in_resolutions"] * res / cfg["noise"]
            values[:, m * c + j] = np.round((ch["level"] + unit * raw[:, j]) / res) * res
    return values, labels, [ch["kind"] for ch in chans] * len(index)


def run(values: np.ndarray, kinds: list[str], channels: int, dt_s: float, config: DetectorConfig):
    T, n = values.shape
    eng = Engine(config)
    eng.set_registry(snapshot(kinds, zone=[1 + j // channels for j in range(n)], interval_s=dt_s,
                              equipment=[1 + j // channels for j in range(n)]))
    sensors = np.arange(1, n + 1, dtype=np.int32)
    t0 = 1_700_000_000_000_000
    raises = []
    started = time.perf_counter()
    for i in range(T):
        f = eng.update(ReadingBatch.build(sensor=sensors, ts_us=np.full(n, t0 + int(i * dt_s * 1e6), np.int64),
                                          value=values[i]))
        r = (f.event == FindingEvent.RAISE) & (f.rule == "equipment")
        raises += [(i, int(s) - 1) for s in f.subject[r]]
    return raises, T * n / (time.perf_counter() - started)


def score(index, labels, raises, channels: int, dt_s: float, machines: list[int], warmup: int) -> dict:
    by = defaultdict(list)
    for i, col in raises:
        by[col // channels].append((i, col % channels))
    T = labels.shape[0]
    hits, named, delays, fp, free = [], [], [], 0, 0
    by_cat: dict[str, list[bool]] = defaultdict(list)
    for m in machines:
        lab = np.flatnonzero(labels[:, m])
        a, b = int(lab[0]), int(lab[-1])
        lo, hi = widened(a, b)
        first = None
        for i, ch in sorted(by[m]):
            if lo <= i <= hi:
                first = first or (i, ch)
            else:
                fp += 1
        free += max(0, lo - warmup) + max(0, T - 1 - hi)
        e = index[m]
        hits.append(first is not None)
        by_cat[e["anomaly"] + (f" {e['size_sigma']}σ" if e["size_sigma"] else "")].append(first is not None)
        if first is not None:
            delays.append(max(0, first[0] - a))
            named.append(first[1] == e["channel"])
    hours = free * dt_s / 3600.0
    return {
        "machines": len(machines), "recall": float(np.mean(hits)),
        "named_right": float(np.mean(named)) if named else float("nan"),
        "delay_median": float(np.median(delays)) if delays else float("nan"),
        "delay_p90": float(np.percentile(delays, 90)) if delays else float("nan"),
        "false_raises": fp, "group_hours": hours, "false_per_1000_group_h": 1000.0 * fp / max(hours, 1e-9),
        "recall_by_category": {k: round(float(np.mean(v)), 3) for k, v in sorted(by_cat.items())},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=ROOT / "bench/equipment_corpus.yaml")
    ap.add_argument("--detectors-config", type=Path, default=None, help="YAML of the `detectors` section to try")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/out/equipment_detection.json")
    a = ap.parse_args()
    cfg = yaml.safe_load(a.config.read_text())
    index = ensure_corpus(a.config)
    raw = yaml.safe_load(a.detectors_config.read_text()) if a.detectors_config else {}
    det = DetectorConfig.from_config({"enabled": ["equipment"], **raw})
    values, labels, kinds = build_fleet(cfg, index)
    c = len(cfg["channels"])
    dt = float(cfg["interval_s"])
    raises, rate = run(values, kinds, c, dt, det)
    print(f"{len(index)} machines × {c} channels × {values.shape[0]:,} readings at {dt:g} s "
          f"({values.size:,} readings), equipment alone at {rate / 1e6:.2f} M readings/s in one-step batches")
    out = {}
    for name, odd in (("choose (odd seeds)", 1), ("held out (even seeds)", 0)):
        machines = [m for m, e in enumerate(index) if e["seed"] % 2 == odd]
        r = out[name] = score(index, labels, raises, c, dt, machines, det.equipment.warmup)
        print(f"\n== {name}: {r['machines']} machines ==")
        print(f"event recall {r['recall']:.3f}, the anomalous channel named in {r['named_right']:.3f} of the hits")
        print(f"delay median {r['delay_median']:.0f} readings, p90 {r['delay_p90']:.0f}")
        print(f"false raises {r['false_raises']} in {r['group_hours']:,.0f} group-hours: "
              f"{r['false_per_1000_group_h']:.2f} per 1,000 group-hours")
        print("recall by category: " + ", ".join(f"{k} {v:.2f}" for k, v in r["recall_by_category"].items()))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
