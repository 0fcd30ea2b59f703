"""Decode speed before and after a change, in one run: ``python bench/decode_speed.py [--base REV]``.

Loads ``ingest/decode.py`` as it was at ``--base`` (git) beside the current one and times both on
the same bursts (1,000 messages of 50 readings from 100 gateways, as the collector takes them),
alternating, and prints readings/s per round and the median ratio. Only good messages: the hot
path. Add ``--bad-share`` to mix in refused readings (unknown sensors).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from domain.codec import encode_batch  # noqa: E402
from domain.messages import RawMessage  # noqa: E402
from ingest.decode import DecodeLimits, Decoder  # noqa: E402
from tests.support.registry import snapshot  # noqa: E402
from yujing.settings import IngestSettings  # noqa: E402

GATEWAYS, SENSORS, BURST = 100, 50, 1000
NOW_MS = 1_764_400_000_000


def load_base(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:ingest/decode.py"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="yj-decode-")) / "decode_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("decode_base", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["decode_base"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def bursts(n: int, bad_share: float, seed: int = 5) -> list[list[RawMessage]]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n):
        msgs = []
        for k in range(BURST):
            g = k % GATEWAYS
            ids = [f"S{g:03d}-{s:03d}" for s in range(SENSORS)]
            if bad_share:
                ids = [f"GHOST-{i}" if rng.random() < bad_share else s for i, s in enumerate(ids)]
            ts = NOW_MS + b * BURST + k
            payload = encode_batch(ts, ids, np.round(rng.random(SENSORS) * 100, 2))
            msgs.append(RawMessage(f"yj/v1/E1/G{g:03d}/up", payload, k + 1, ts * 1000 + 5000))
        out.append(msgs)
    return out


def rate(decoder, data: list[list[RawMessage]]) -> float:
    started = time.perf_counter()
    readings = sum(len(decoder.decode(msgs).readings) for msgs in data)
    return readings / (time.perf_counter() - started)


def interleaved(before, after, data: list[list[RawMessage]]) -> tuple[float, float]:
    """Readings/s of each, timing them burst by burst in turn (machine noise hits both alike)."""
    spent = [0.0, 0.0]
    readings = [0, 0]
    for msgs in data:
        for k, decoder in ((0, before), (1, after)):
            started = time.perf_counter()
            n = len(decoder.decode(msgs).readings)
            spent[k] += time.perf_counter() - started
            readings[k] += n
    return readings[0] / spent[0], readings[1] / spent[1]


def flood(messages: int = 10, ids: int = 40_000) -> None:
    """The dead-letter amplification case of issue 10 (3b): messages of ~0.9 MB naming 40,000
    unknown sensors each. Prints the decoder's peak traced memory and the dead letters made."""
    import tracemalloc

    registry = snapshot([("E1", "G000", "S000-000", "methane")])
    decoder = Decoder(registry, DecodeLimits(1_048_576, 4096, 300.0))
    raw = [RawMessage("yj/v1/E1/G000/up", encode_batch(NOW_MS + k, [f"X{i:05d}" for i in range(ids)],
                                                       np.ones(ids)), k + 1, NOW_MS * 1000)
           for k in range(messages)]
    tracemalloc.start()
    chunk = decoder.decode(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"flood: {messages} messages of {len(raw[0].payload) / 1e6:.2f} MB, {ids:,} unknown sensors each: "
          f"{len(chunk.rejected)} dead letters ({sum(r.refused for r in chunk.rejected):,} readings refused, "
          f"{sum(len(r.readings) for r in chunk.rejected)} listed), decoder peak {peak / 1e6:.0f} MB traced")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="4d1c9c4")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bursts", type=int, default=10)
    ap.add_argument("--bad-share", type=float, default=0.0)
    ap.add_argument("--no-quota", action="store_true", help="the current decoder without per-gateway quotas")
    ap.add_argument("--flood", action="store_true", help="the dead-letter amplification case instead")
    args = ap.parse_args()
    if args.flood:
        flood()
        return
    base = load_base(args.base)
    registry = snapshot([("E1", f"G{g:03d}", f"S{g:03d}-{s:03d}", "methane") for g in range(GATEWAYS) for s in range(SENSORS)])
    before = base.Decoder(registry, base.DecodeLimits(1_048_576, 4096, 300.0))
    ingest = IngestSettings()  # the service's configuration, quotas included (unless --no-quota)
    if args.no_quota:
        ingest.gateway_messages_per_minute = ingest.gateway_bytes_per_minute = 0
    after = Decoder(registry, DecodeLimits(
        ingest.max_payload_bytes, ingest.dead_letter_payload_bytes, ingest.clock_skew_tolerance_s,
        ingest.max_burst_bytes, ingest.gateway_messages_per_minute, ingest.gateway_bytes_per_minute,
        ingest.gateway_quota_burst_minutes))
    data = bursts(args.bursts, args.bad_share)
    rate(before, data[:2]), rate(after, data[:2])  # warm up (layout caches, allocator)
    ratios = []
    for r in range(args.rounds):
        b, a = interleaved(before, after, data)
        ratios.append(a / b)
        print(f"round {r + 1}: before {b:,.0f} readings/s, after {a:,.0f} readings/s, ratio {a / b:.3f}")
    print(f"median after/before: {statistics.median(ratios):.3f} over {args.rounds} rounds of "
          f"{args.bursts} bursts x {BURST} messages x {SENSORS} readings (bad share {args.bad_share})")


if __name__ == "__main__":
    main()
