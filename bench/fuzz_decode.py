"""Fuzz the decode-to-dead-letter path: ``python bench/fuzz_decode.py [--runs N] [--workdir DIR]``.

A coverage-guided fuzzer (atheris, libFuzzer's engine for Python) feeds generated payloads to the
real decoder (topic routing, fast and salvage decode, the columnar checks) and turns every dead
letter into the row the store would write. A run fails on any exception, on a reading that is
neither stored nor refused, on more than one dead letter per message, and on text PostgreSQL
would refuse (a NUL or a lone surrogate) in a dead-letter row.

Seeds are real payloads of every gateway shape the simulators produce (simulators/gateway.py and
simulators/encoder.py: live scans, store-and-forward backlogs, duplicates, each malformed kind,
skewed clocks, status messages) over the jiangxi-demo fleet, plus the five payloads of issue 10.
After the fuzzing process ends, the corpus it grew is replayed under coverage.py to report the
branch coverage of ingest/ and domain/codec.py.

Not in CI (≥ 10⁶ payloads take minutes); tests/ingest/test_fuzz_smoke.py runs the seeds and a few
thousand random mutations through the same check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import contextlib  # noqa: E402

import numpy as np  # noqa: E402

if "--fuzz-child" in sys.argv:  # the fuzzing process: coverage feedback from the code under test only
    import atheris

    _instrumented = atheris.instrument_imports(include=["domain", "ingest", "store"])
else:
    _instrumented = contextlib.nullcontext()
with _instrumented:
    from domain.codec import encode_batch, encode_status
    from domain.messages import RawMessage
    from ingest.decode import DecodeLimits, Decoder
    from store.dead_letters import record
from simulators.encoder import MALFORMED_KINDS, malform  # noqa: E402
from simulators.fleet import build_fleet  # noqa: E402
from simulators.gateway import Emitter, OutMessage, StatusChange  # noqa: E402
from simulators.presets import load_preset  # noqa: E402
from simulators.registry import registry_snapshot  # noqa: E402

NOW_US = 1_764_400_000_000_000
LIMITS = DecodeLimits(max_payload_bytes=65_536, dead_letter_payload_bytes=4096, clock_skew_tolerance_s=300)
DICTIONARY = ['"ts"', '"readings"', '"s"', '"v"', '"q"', "NaN", "Infinity", "-Infinity", "1e999", "null", "true",
              '"\\ud800"', '"\\u0000"', "\\xff", "[]", "{}", "-0", "1" + "0" * 30, "9223372036854775808",
              "253402300799999", "255", "256", "1764400000000"]


def _fleet():
    fleet = build_fleet(load_preset("jiangxi-demo", seed=7))
    return fleet, registry_snapshot(fleet)


def seed_payloads(fleet, budget_s: float = 5.0) -> dict[str, list[bytes]]:
    """Payloads by shape: what the simulated gateways send, each malformed kind, and crafted ones."""
    shapes: dict[str, list[bytes]] = {}

    def keep(shape: str, topic: str, payload: bytes) -> None:
        got = shapes.setdefault(shape, [])
        if len(got) < 3:
            got.append(_frame(topic, payload))

    for extra in ("yj/v1/NOPE/G9/up", "not/a/yujing/topic", "yj/v1/E1/G1/alerts"):
        _TOPICS.append(extra)  # unknown gateway, bad topic, a channel yujing does not take
    start_s = NOW_US / 1e6
    emitter = Emitter(fleet, start_s, seed=11)
    t, deadline = start_s, time.monotonic() + budget_s
    while time.monotonic() < deadline and t < start_s + 6 * 3600:
        t += 5.0
        for ev in emitter.step(t):
            if isinstance(ev, OutMessage):
                keep(f"{ev.sort}:{ev.malformed or ''}", ev.topic, ev.payload)
            elif isinstance(ev, StatusChange):
                keep(f"status:{ev.online}", ev.topic, encode_status(ev.online))
    live = next(iter(shapes.get("live:", [])), None)
    if live is not None:
        topic, payload = _unframe(live)
        for kind in MALFORMED_KINDS:
            keep(f"malformed:{kind}", topic, malform(payload, kind))
    topic = fleet.up_topics[0]
    start = int(fleet.gw_start[0])
    ids = [spec.id for _, spec in fleet.sensors[start:start + min(5, int(fleet.gw_count[0]))]]
    ms = NOW_US // 1000
    keep("single", topic, encode_batch(ms, ids[:1], [0.4]))
    keep("backlog", topic, encode_batch(ms, ids * 3, np.arange(len(ids) * 3.0), reading_ts_ms=[ms - 60_000 * i for i in range(len(ids) * 3)]))
    keep("future", topic, encode_batch(ms, ids * 2, np.ones(len(ids) * 2), reading_ts_ms=[ms + 86_400_000 + i for i in range(len(ids) * 2)]))
    keep("skewed", topic, encode_batch(ms + 3_600_000, ids, np.ones(len(ids))))
    keep("quality", topic, encode_batch(ms, ids, np.ones(len(ids)), qualities=[1, 2, 4, 8, 0][:len(ids)]))
    b = b'{"ts":%d,"readings":[' % ms
    for name, p in {
        "ff": b + b'{"s":"\xff","v":1}]}', "zeros": b + b'{"s":"%s","v":1' % ids[0].encode() + b"0" * 400 + b"}]}",
        "digits_v": b + b'{"s":"A","v":' + b"7" * 5000 + b"}]}", "digits_ts": b'{"ts":' + b"7" * 5000 + b',"readings":[]}',
        "surrogate": b + b'{"s":"\\ud800","v":1}]}',
    }.items():
        keep(f"poison:{name}", topic, p)
    keep("status:bad", topic.replace("/up", "/status"), b"sleeping")
    return shapes


# A fuzz input is a topic selector byte and a payload: the selector picks one of these topics.
_TOPICS: list[str] = []


def _frame(topic: str, payload: bytes) -> bytes:
    if topic not in _TOPICS:
        _TOPICS.append(topic)
    return bytes([_TOPICS.index(topic) % 256]) + payload


def _unframe(data: bytes) -> tuple[str, bytes]:
    if not data:
        return "yj/v1/x/y/up", b""
    return _TOPICS[data[0] % len(_TOPICS)] if _TOPICS else "yj/v1/x/y/up", data[1:]


def check_one(decoder: Decoder, data: bytes) -> None:
    """Decode one fuzz input (beside a good message) and check every invariant of the path."""
    topic, payload = _unframe(data)
    messages = [RawMessage(topic, payload, 1, NOW_US), RawMessage(GOOD_TOPIC, GOOD, 2, NOW_US)]
    chunk = decoder.decode(messages)
    assert chunk.mids == [m.mid for m in messages]
    assert len(chunk.rejected) <= len(messages), "more than one dead letter per message"
    good_n = GOOD_N
    assert len(chunk.readings) >= good_n, "the good message lost readings"
    sent = _readings_sent(payload)
    if sent is not None and not any(r.whole_message for r in chunk.rejected):
        refused = sum(r.refused for r in chunk.rejected)
        assert len(chunk.readings) + refused == sent + good_n, "a reading neither stored nor refused"
    for r in chunk.rejected:
        row = record(r)
        for text in (x for x in row if isinstance(x, str)):
            assert "\x00" not in text
            text.encode("utf-8")  # raises on a lone surrogate
        json.loads(row[8]), json.loads(row[9])
        assert len(r.readings) <= 100 and r.refused >= len(r.readings)
    assert (chunk.readings.ts_us <= NOW_US + int(LIMITS.clock_skew_tolerance_s * 1e6)).all()


def _readings_sent(payload: bytes) -> int | None:
    """How many readings the payload holds, when it is a JSON object with a readings list."""
    try:
        doc = json.loads(payload, parse_int=lambda s: 0)
    except (ValueError, RecursionError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("readings"), list):
        return len(doc["readings"])
    return None


GOOD_TOPIC, GOOD, GOOD_N = "", b"", 0


def _setup():
    global GOOD_TOPIC, GOOD, GOOD_N
    _TOPICS.clear()
    fleet, registry = _fleet()
    shapes = seed_payloads(fleet)
    GOOD_TOPIC, GOOD = _unframe(shapes["single"][0])  # a good message beside each input
    GOOD_N = len(json.loads(GOOD)["readings"])
    return Decoder(registry, LIMITS), shapes


def _load(work: Path) -> Decoder:
    """The decoder and the topic table the seeds were framed with (written by the parent), so that
    the fuzzing process and the coverage replay read every input exactly alike."""
    global GOOD_TOPIC, GOOD, GOOD_N
    frame = json.loads((work / "frame.json").read_text())
    _TOPICS[:] = frame["topics"]
    GOOD_TOPIC, GOOD = frame["good_topic"], frame["good"].encode()
    GOOD_N = len(json.loads(GOOD)["readings"])
    _, registry = _fleet()
    return Decoder(registry, LIMITS)


def _fuzz(corpus: Path, seeds: Path, runs: int, dict_path: Path) -> None:
    decoder = _load(corpus.parent)

    def one(data: bytes) -> None:
        check_one(decoder, data)

    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-dict={dict_path}", "-max_len=8192", "-timeout=10",
                   "-print_final_stats=1", str(corpus), str(seeds)], one)
    atheris.Fuzz()


def _replay(work: Path) -> None:
    """Every seed and corpus input through the check once (run under coverage.py)."""
    decoder = _load(work)
    for d in (work / "seeds", work / "corpus"):
        for f in sorted(d.iterdir()):
            check_one(decoder, f.read_bytes())


def _coverage(work: Path) -> str:
    """Replays seeds and corpus in a fresh process under ``coverage run --branch`` (so imports and
    definitions count too) and returns coverage.py's report."""
    data = work / ".coverage"
    include = f"{REPO}/ingest/*,{REPO}/domain/codec.py"
    subprocess.run([sys.executable, "-m", "coverage", "run", "--branch", f"--include={include}",
                    f"--data-file={data}", __file__, "--replay", "--workdir", str(work)], cwd=REPO, check=True)
    return subprocess.run([sys.executable, "-m", "coverage", "report", f"--data-file={data}"], cwd=REPO,
                          check=True, capture_output=True, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--fuzz-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--replay", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="yj-fuzz-"))
    corpus, seeds, dict_path = work / "corpus", work / "seeds", work / "json.dict"
    if args.fuzz_child:
        _fuzz(corpus, seeds, args.runs, dict_path)
        return
    if args.replay:
        _replay(work)
        return
    corpus.mkdir(parents=True, exist_ok=True)
    seeds.mkdir(parents=True, exist_ok=True)
    _, shapes = _setup()
    for shape, payloads in shapes.items():
        for i, p in enumerate(payloads):
            (seeds / f"{shape.replace(':', '_')}_{i}").write_bytes(p)
    dict_path.write_text("\n".join(json.dumps(t) for t in DICTIONARY) + "\n")
    (work / "frame.json").write_text(json.dumps({"topics": _TOPICS, "good_topic": GOOD_TOPIC, "good": GOOD.decode()}))
    print(f"seeds: {sum(len(p) for p in shapes.values())} payloads of {len(shapes)} shapes: {', '.join(sorted(shapes))}")
    started = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--fuzz-child", "--runs", str(args.runs), "--workdir", str(work)],
                           cwd=REPO)
    elapsed = time.perf_counter() - started
    print(f"fuzzing: {args.runs:,} runs in {elapsed:.0f} s, exit {child.returncode}; corpus {len(list(corpus.iterdir()))} inputs in {corpus}")
    if child.returncode != 0:
        sys.exit(f"the fuzzer found a failing input (crash-* file in {REPO})")
    print("coverage.py --branch of the decode path over seeds and corpus (Cover counts statements and branches):")
    print(_coverage(work))


if __name__ == "__main__":
    main()
