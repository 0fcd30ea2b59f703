"""The simulator's fast encoder writes exactly what domain.codec writes, and ingest decodes it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.codec import CodecError, encode_batch, parse_batch
from domain.messages import RejectReason
from simulators.encoder import MALFORMED_EXPECTED, MALFORMED_KINDS, encode_payloads, malform, sensor_prefix

ids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=64)
reading = st.tuples(ids, st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.integers(0, 0xFF), st.one_of(st.none(), st.integers(0, 2**41)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(reading, min_size=0, max_size=60), min_size=1, max_size=5), st.integers(0, 2**41))
def test_byte_for_byte_equal_to_codec_and_round_trips(messages, batch_ts):
    flat = [r for m in messages for r in m]
    bounds = np.cumsum([0] + [len(m) for m in messages]).astype(np.int64)
    batch = np.array([batch_ts + k for k in range(len(messages))], dtype=np.int64)
    own_ts = np.array([batch[k] if r[3] is None else r[3] for k, m in enumerate(messages) for r in m], dtype=np.int64)
    values = np.array([r[1] for r in flat], dtype=np.float64)
    quality = np.array([r[2] for r in flat], dtype=np.int16)
    got = encode_payloads(batch, bounds, [sensor_prefix(r[0]) for r in flat], values, quality, own_ts)
    for k, m in enumerate(messages):
        a, b = bounds[k], bounds[k + 1]
        want = encode_batch(int(batch[k]), [r[0] for r in m], values[a:b], quality[a:b], own_ts[a:b])
        assert got[k] == want
        decoded = parse_batch(got[k])
        assert decoded.sensor_ids == [r[0] for r in m]
        np.testing.assert_array_equal(decoded.value, values[a:b])
        np.testing.assert_array_equal(decoded.quality, quality[a:b])
        np.testing.assert_array_equal(decoded.ts_ms, own_ts[a:b])


def test_empty_and_plain_batches():
    assert encode_payloads(np.array([5], dtype=np.int64), np.array([0, 0]), [], np.zeros(0)) == [b'{"ts":5,"readings":[]}']
    p = encode_payloads(np.array([7], dtype=np.int64), np.array([0, 2]), [sensor_prefix("A"), sensor_prefix("B")],
                        np.array([0.42, 1.0]))
    assert p == [encode_batch(7, ["A", "B"], [0.42, 1.0])]


def test_columns_must_agree():
    with pytest.raises(ValueError):
        encode_payloads(np.array([1], dtype=np.int64), np.array([0, 3]), [sensor_prefix("A")], np.array([1.0]))


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_payloads_get_the_stated_reason(kind):
    good = encode_batch(1_700_000_000_000, ["CH4-0101", "CH4-0102", "CO-0103"], [0.3, 0.25, 3.0])
    bad = malform(good, kind)
    reason, whole = MALFORMED_EXPECTED[kind]
    if reason is RejectReason.UNKNOWN_SENSOR:  # a registry check, not a codec one
        assert "ZZ-UNREGISTERED" in parse_batch(bad).sensor_ids
        return
    if whole:
        with pytest.raises(CodecError) as err:
            parse_batch(bad)
        assert err.value.reason is reason
    else:
        decoded = parse_batch(bad)
        assert [b.reason for b in decoded.bad] == [reason]
        assert len(decoded) == 2
