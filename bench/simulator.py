"""Simulator throughput: can one process offer ≥300,000 readings/s in 50-reading batches?

    .venv/bin/python bench/simulator.py [--mqtt-url mqtt://127.0.0.1:1884] [--duration-s 10]
        [--rate 400000] [--connections 4]

Measured in the same run, so the machine's noise cancels in the ratios:
  1. baseline: domain.codec.encode_batch, one 50-reading payload at a time (readings/s)
  2. simulators.encoder.encode_payloads over whole ticks (readings/s)
  3. the emitter: generate + misbehave + encode, no network (readings/s)
  4. end to end: emitter + paho QoS 1 publishing to the broker; readings in acknowledged messages/s
Prints one JSON line per stage and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.codec import encode_batch  # noqa: E402
from simulators.encoder import encode_payloads, sensor_prefix  # noqa: E402
from simulators.fleet import FleetConfig, build_fleet  # noqa: E402
from simulators.gateway import Emitter  # noqa: E402
from simulators.publisher import PublisherOptions  # noqa: E402
from simulators.run import RunOptions, run_simulation  # noqa: E402

BATCH = 50


def load_fleet(gateways: int, interval_s: float, seed: int = 1):
    doc = {"name": "bench", "seed": seed,
           "gateway": {"jitter_share": 0.02, "max_batch": BATCH},
           "enterprises": [{"id": "BENCH", "name": "bench", "region": "360100", "industry": "coal_mine",
                            "site": {"template": "uniform", "gateways": gateways, "sensors_per_gateway": BATCH,
                                     "interval_s": interval_s}}]}
    return build_fleet(FleetConfig.from_config(doc))


def bench_baseline(seconds: float) -> float:
    rng = np.random.default_rng(0)
    ids = [f"CH4-{i:04d}" for i in range(BATCH)]
    vals = np.round(rng.random(BATCH) * 2, 2)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            encode_batch(1732870000123, ids, vals)
        n += 200 * BATCH
    return n / (time.perf_counter() - t0)


def bench_fast(seconds: float, messages: int = 200) -> float:
    rng = np.random.default_rng(0)
    n_r = messages * BATCH
    prefixes = [sensor_prefix(f"CH4-{i:04d}") for i in range(BATCH)] * messages
    vals = np.round(rng.random(n_r) * 2, 2)
    ts = np.full(messages, 1732870000123, dtype=np.int64)
    bounds = np.arange(0, n_r + 1, BATCH, dtype=np.int64)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        encode_payloads(ts, bounds, prefixes, vals)
        n += n_r
    return n / (time.perf_counter() - t0)


def bench_emitter(fleet, seconds: float) -> float:
    em = Emitter(fleet, 1.7e9, 1)
    t, n, t0 = 1.7e9, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t += 0.05
        for ev in em.step(t):
            n += ev.sensor.shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mqtt-url", default=os.environ.get("YUJING_TOOLS_MQTT_URL", "mqtt://127.0.0.1:1884"),
                    help="the tools login: YUJING_TOOLS_MQTT_URL from var/mosquitto/mqtt.env")
    ap.add_argument("--duration-s", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=400_000.0, help="offered readings/s")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--max-inflight", type=int, default=0, help="paho window per client (0: unbounded)")
    args = ap.parse_args()
    gateways = int(args.rate / BATCH)  # one 50-reading message per gateway per second
    fleet = load_fleet(gateways, 1.0)
    out = {}
    out["baseline_encode_batch"] = bench_baseline(2.0)
    out["fast_encoder"] = bench_fast(2.0)
    out["emitter_no_network"] = bench_emitter(fleet, 3.0)
    rep = run_simulation(fleet, PublisherOptions(args.mqtt_url, connections=args.connections, max_inflight=args.max_inflight,
                                                 client_id_prefix="yj-bench"),
                         options=RunOptions(duration_s=args.duration_s))
    p = rep.publisher
    # every up message carries BATCH readings; the status messages (one per gateway) are acked first
    acked_up = max(0, rep.acked_in_run - fleet.n_gateways)
    out["publish_offered"] = p.readings / rep.run_s
    out["publish_acked"] = acked_up * BATCH / rep.run_s
    for k, v in out.items():
        print(json.dumps({"stage": k, "readings_per_s": round(v), "ratio_to_baseline": round(v / out["baseline_encode_batch"], 2)}))
    print(json.dumps({"gateways": gateways, "connections": args.connections, "run_s": round(rep.run_s, 2),
                      "messages_per_s": round(p.published / rep.run_s), "final_lag_s": round(rep.final_lag_s, 3),
                      "max_lag_s": round(rep.max_lag_s, 3),
                      "drained": rep.drained, "target_300k_met": out["publish_acked"] >= 300_000}))


if __name__ == "__main__":
    main()
