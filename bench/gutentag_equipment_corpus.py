"""Generate the equipment corpus of bench/equipment_detection.py with GutenTAG's multivariate mode.

    var/gutentag-venv/bin/python bench/gutentag_equipment_corpus.py bench/equipment_corpus.yaml OUT_DIR

Imports nothing of yujing. One series per (seed, load oscillation, anomaly kind, size): five
channels, channel 0 the load, channels 1-4 GutenTAG ``formula`` channels (gain × channel 0), each
with its own noise; one anomaly on one channel. Writes ``NAME.csv`` (value-0..value-4,is_anomaly)
and ``index.json`` (name, seed, anomaly, load, size_sigma, channel, position).
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

from gutentag_corpus import _params

SIZED = {"mean", "trend", "variance"}
CHANNELS = 5


def series_specs(cfg: dict) -> list[dict]:
    accepted = Compatibility.combinations["formula"]
    out = []
    for seed in cfg["seeds"]:
        k = 0
        for load, load_params in cfg["loads"].items():
            for anomaly, template in cfg["anomalies"].items():
                assert accepted[anomaly], anomaly
                for size in cfg["sizes_sigma"] if anomaly in SIZED else [None]:
                    name = f"s{seed}-{load}-{anomaly}" + (f"-{size}sigma" if size else "")
                    params = _params(template, size or 0.0, cfg["noise"], cfg["anomaly_length"], k)
                    channel = k % CHANNELS
                    position = cfg["positions"][k % len(cfg["positions"])]
                    bos = [{"kind": load, **load_params, "variance": cfg["noise"]}]
                    bos += [{"kind": "formula", "formula": {"base": 0, "operation": {"kind": "*", "operand": float(g)}},
                             "variance": cfg["noise"]} for g in cfg["gains"]]
                    out.append({
                        "name": name, "seed": seed, "anomaly": anomaly, "load": load, "size_sigma": size,
                        "channel": channel, "position": position,
                        "gutentag": {
                            "name": name, "length": cfg["length"], "base-oscillations": bos,
                            "anomalies": [{"position": position, "length": cfg["anomaly_length"], "channel": channel,
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
            cols = [df[f"value-{c}"].to_numpy(dtype=np.float64) for c in range(CHANNELS)]
            lab = df["is_anomaly"].to_numpy(dtype=np.int8)
            np.savetxt(out / f"{spec['name']}.csv", np.column_stack([*cols, lab]),
                       fmt=["%.9g"] * CHANNELS + ["%d"], delimiter=",",
                       header=",".join(f"value-{c}" for c in range(CHANNELS)) + ",is_anomaly", comments="")
            index.append({k: spec[k] for k in ("name", "seed", "anomaly", "load", "size_sigma", "channel", "position")})
    (out / "index.json").write_text(json.dumps(index, indent=0))
    print(f"{len(index)} series in {out}")


if __name__ == "__main__":
    main()
