"""The payload codec: round trips, and any bytes either decode or are refused with a reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.codec import CodecError, encode_batch, encode_status, parse_batch, parse_status
from domain.messages import RejectReason

TS = 1_732_870_000_123


def test_contract_example_decodes():
    payload = b'{"ts": 1732870000123, "readings": [{"s": "CH4-0101", "v": 0.42, "q": 0, "ts": 1732870000100}]}'
    d = parse_batch(payload)
    assert d.sensor_ids == ["CH4-0101"]
    assert d.ts_ms.tolist() == [1732870000100]
    assert d.value.tolist() == [0.42]
    assert d.quality.tolist() == [0]
    assert d.bad == []


def test_reading_defaults_to_batch_time_and_good_quality():
    d = parse_batch(b'{"ts": 5, "readings": [{"s": "A", "v": 1}]}')
    assert d.ts_ms.tolist() == [5] and d.quality.tolist() == [0] and d.value.dtype == np.float64


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xff\xfe", RejectReason.BAD_ENCODING),
        (b"{not json", RejectReason.BAD_ENCODING),
        (b"[1, 2]", RejectReason.BAD_SCHEMA),
        (b'{"readings": []}', RejectReason.BAD_SCHEMA),
        (b'{"ts": "now", "readings": []}', RejectReason.BAD_SCHEMA),
        (b'{"ts": 1, "readings": {}}', RejectReason.BAD_SCHEMA),
        (b'{"ts": -1, "readings": []}', RejectReason.BAD_SCHEMA),
    ],
)
def test_unusable_payloads_are_refused_with_a_reason(payload, reason):
    with pytest.raises(CodecError) as err:
        parse_batch(payload)
    assert err.value.reason is reason
    assert err.value.detail


def test_bad_readings_are_refused_and_the_rest_kept():
    payload = (
        b'{"ts": 10, "readings": ['
        b'{"s": "A", "v": 1.5},'
        b'{"s": "B", "v": NaN},'
        b'{"s": "C", "v": Infinity},'
        b'{"s": "D", "v": "x"},'
        b'{"s": "E", "v": null},'
        b'{"s": "", "v": 1},'
        b'{"s": "F", "v": 1, "q": 4096},'
        b'{"s": "G", "v": 1e999},'
        b'{"s": "H", "v": 2, "ts": 7},'
        b'{"v": 3},'
        b'5]}'
    )
    d = parse_batch(payload)
    assert d.sensor_ids == ["A", "H"]
    assert d.index.tolist() == [0, 8]
    assert d.ts_ms.tolist() == [10, 7]
    reasons = {b.index: b.reason for b in d.bad}
    assert reasons == {
        1: RejectReason.NOT_A_NUMBER,
        2: RejectReason.NOT_A_NUMBER,
        3: RejectReason.BAD_SCHEMA,
        4: RejectReason.NOT_A_NUMBER,
        5: RejectReason.BAD_SCHEMA,
        6: RejectReason.BAD_QUALITY,
        7: RejectReason.NOT_A_NUMBER,
        9: RejectReason.BAD_SCHEMA,
        10: RejectReason.BAD_SCHEMA,
    }


def test_overflowing_literal_on_the_fast_path_is_refused():
    d = parse_batch(b'{"ts": 1, "readings": [{"s": "A", "v": 1e999}, {"s": "B", "v": 2}]}')
    assert d.sensor_ids == ["B"]
    assert [b.reason for b in d.bad] == [RejectReason.NOT_A_NUMBER]


def test_status_payloads():
    assert parse_status(b"online") is True
    assert parse_status(b" OFFLINE\n") is False
    assert parse_status(encode_status(True)) is True
    with pytest.raises(CodecError):
        parse_status(b"maybe")


sensor_ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x9FFF), min_size=1, max_size=64)
finite = st.floats(allow_nan=False, allow_infinity=False)
epoch_ms = st.integers(min_value=0, max_value=253402300799999)


@settings(max_examples=300, deadline=None)
@given(
    ts=epoch_ms,
    readings=st.lists(
        st.tuples(sensor_ids, finite, st.integers(0, 255), st.one_of(st.none(), epoch_ms)), max_size=60
    ),
)
def test_encode_then_parse_round_trips(ts, readings):
    ids = [r[0] for r in readings]
    payload = encode_batch(ts, ids, [r[1] for r in readings], [r[2] for r in readings], [r[3] for r in readings])
    d = parse_batch(payload)
    assert d.bad == []
    assert d.sensor_ids == ids
    assert d.value.tolist() == [r[1] for r in readings]
    assert d.quality.tolist() == [r[2] for r in readings]
    assert d.ts_ms.tolist() == [ts if r[3] is None else r[3] for r in readings]


def _check_decoded(d) -> None:
    n = len(d.sensor_ids)
    assert d.ts_ms.shape == d.value.shape == d.quality.shape == d.index.shape == (n,)
    assert d.ts_ms.dtype == np.int64 and d.value.dtype == np.float64 and d.quality.dtype == np.int16
    assert np.isfinite(d.value).all()
    assert all(1 <= len(s) <= 64 for s in d.sensor_ids)
    assert set(d.index.tolist()).isdisjoint(b.index for b in d.bad)
    for b in d.bad:
        assert isinstance(b.reason, RejectReason) and b.detail


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_refused_with_a_reason(data):
    try:
        d = parse_batch(data)
    except CodecError as exc:
        assert isinstance(exc.reason, RejectReason) and exc.detail
    else:
        _check_decoded(d)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["s", "v", "q", "ts", "x"]), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(ts=st.one_of(epoch_ms, json_values), readings=st.lists(json_values, max_size=8))
def test_any_json_shape_decodes_or_is_refused_with_a_reason(ts, readings):
    data = json.dumps({"ts": ts, "readings": readings}).encode()
    try:
        d = parse_batch(data)
    except CodecError as exc:
        assert isinstance(exc.reason, RejectReason)
    else:
        _check_decoded(d)
        assert len(d.sensor_ids) + len(d.bad) == len(readings)
