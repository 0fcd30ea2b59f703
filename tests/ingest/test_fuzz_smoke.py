"""A short smoke of bench/fuzz_decode.py: its seeds (every gateway shape the simulators produce)
and a few thousand mutations of them through the same decode-to-dead-letter check."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import fuzz_decode


@pytest.fixture(scope="module")
def harness():
    decoder, shapes = fuzz_decode._setup()
    return decoder, [p for payloads in shapes.values() for p in payloads], shapes


def test_seeds_cover_every_simulator_shape(harness):
    _, _, shapes = harness
    assert {"live:", "single", "backlog", "future", "skewed", "quality"} <= set(shapes)
    assert {f"malformed:{k}" for k in fuzz_decode.MALFORMED_KINDS} <= set(shapes)
    assert {f"poison:{k}" for k in ("ff", "zeros", "digits_v", "digits_ts", "surrogate")} <= set(shapes)


def test_every_seed_passes_the_check(harness):
    decoder, seeds, _ = harness
    for data in seeds:
        fuzz_decode.check_one(decoder, data)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_seeds_pass_the_check(harness, data):
    decoder, seeds, _ = harness
    seed = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(0, len(seed) - 1)))
        cut = data.draw(st.integers(0, 8))
        seed[at:at + cut] = data.draw(st.binary(max_size=8))
    fuzz_decode.check_one(decoder, bytes(seed))
