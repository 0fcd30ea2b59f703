"""Generate the labelled corpus of bench/detection.py with GutenTAG (runs in its own virtualenv).

    var/gutentag-venv/bin/python bench/gutentag_corpus.py bench/detection_corpus.yaml OUT_DIR

Imports nothing of yujing: it reads the corpus configuration, lists every (anomaly kind, base
oscillation) pair GutenTAG's compatibility table accepts (less ``formula`` and ``custom-input``),
expands the sizes, and writes one ``NAME.csv`` (value,is_anomaly) per series plus ``index.json``
(one entry per series: name, seed, anomaly, oscillation, size_sigma, position).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import yaml
from gutenTAG import GutenTAG
from gutenTAG.utils.compatibility import Compatibility

SKIP_OSCILLATIONS = {"formula", "custom-input"}
SIZED = {"amplitude", "mean", "trend", "variance"}


def _params(template, size: float, noise: float, length: int, k: int):
    def sub(v):
        if isinstance(v, dict):
            return {kk: sub(vv) for kk, vv in v.items()}
        if isinstance(v, list):
            return [sub(vv) for vv in v]
        if v == "SIZE":
            return size * noise * (1 if k % 2 == 0 else -1) if template.get("offset") == "SIZE" else size * noise
        if v == "SIZE_FACTOR":
            return 1.0 + size * noise
        if v == "SIZE_PER_READING":
            return size * noise / length
        if v == "ALTERNATE":
            return k % 2 == 1
        return v
    return sub(template)


def series_specs(cfg: dict) -> list[dict]:
    combos = Compatibility.combinations
    out = []
    for seed in cfg["seeds"]:
        k = 0
        for anomaly, row in combos.iterrows():
            for osc, ok in row.items():
                if not ok or osc in SKIP_OSCILLATIONS:
                    continue
                sizes = cfg["sizes_sigma"] if anomaly in SIZED else [None]
                for size in sizes:
                    name = f"s{seed}-{anomaly}-{osc}" + (f"-{size}sigma" if size else "")
                    params = _params(cfg["anomalies"][anomaly], size or 0.0, cfg["noise"], cfg["anomaly_length"], k)
                    bo = {"kind": osc, **cfg["oscillations"][osc]}
                    if osc != "random-mode-jump":
                        bo["variance"] = cfg["noise"]
                    position = cfg["positions"][k % len(cfg["positions"])]
                    out.append({
                        "name": name, "seed": seed, "anomaly": anomaly, "oscillation": osc, "size_sigma": size,
                        "position": position,
                        "gutentag": {
                            "name": name, "length": cfg["length"], "base-oscillations": [bo],
                            "anomalies": [{"position": position, "length": cfg["anomaly_length"], "channel": 0,
                                           "kinds": [{"kind": anomaly, **params}]}],
                        },
                    })
                    k += 1
    return out


def main() -> None:
    cfg = yaml.safe_load(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    specs = series_specs(cfg)
    index = []
    for seed in cfg["seeds"]:
        mine = [s for s in specs if s["seed"] == seed]
        g = GutenTAG(seed=seed)
        g.load_config_dict({"timeseries": [s["gutentag"] for s in mine]})
        for spec, ts in zip(mine, g.generate(return_timeseries=True), strict=True):
            df = ts.timeseries
            v = df["value-0"].to_numpy(dtype=np.float64)
            lab = df["is_anomaly"].to_numpy(dtype=np.int8)
            np.savetxt(out / f"{spec['name']}.csv", np.column_stack([v, lab]), fmt=["%.9g", "%d"], delimiter=",",
                       header="value,is_anomaly", comments="")
            index.append({k: spec[k] for k in ("name", "seed", "anomaly", "oscillation", "size_sigma", "position")})
    (out / "index.json").write_text(json.dumps(index, indent=0))
    print(f"{len(index)} series in {out}")


if __name__ == "__main__":
    main()
