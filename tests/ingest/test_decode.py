"""The decode stage: registry checks, time handling and quality flags, as masks over a burst."""

from __future__ import annotations

import numpy as np
import pytest

from domain.codec import encode_batch
from domain.messages import RawMessage, RejectReason
from domain.quality import Quality
from ingest.decode import DecodeLimits, Decoder
from tests.support.registry import snapshot

NOW_MS = 1_764_400_000_000
NOW_US = NOW_MS * 1000
LIMITS = DecodeLimits(max_payload_bytes=10_000, dead_letter_payload_bytes=100, clock_skew_tolerance_s=300)
REGISTRY = snapshot(
    [
        ("E1", "G1", "CH4-01", "methane"),
        ("E1", "G1", "CH4-02", "methane"),
        ("E1", "G2", "T-01", "temperature"),
        ("E2", "G1", "CH4-01", "methane"),  # the same code in another enterprise
        ("E1", "G1", "OLD-01", "methane"),
    ],
    inactive={("E1", "OLD-01")},
)


def msg(topic: str, payload: bytes, mid: int = 1, received_us: int = NOW_US) -> RawMessage:
    return RawMessage(topic=topic, payload=payload, mid=mid, received_us=received_us)


def up(enterprise, gateway, ids, values, ts_ms=NOW_MS, reading_ts=None, q=None, mid=1):
    return msg(f"yj/v1/{enterprise}/{gateway}/up", encode_batch(ts_ms, ids, values, q, reading_ts), mid)


def decode(*messages):
    return Decoder(REGISTRY, LIMITS).decode(list(messages))


def test_good_batch_becomes_columns():
    c = decode(up("E1", "G1", ["CH4-01", "CH4-02"], [0.3, 0.5]), up("E2", "G1", ["CH4-01"], [0.7], mid=2))
    r = c.readings
    assert r.sensor.tolist() == [1, 2, 4]  # the topic's enterprise scopes the sensor id
    assert r.value.tolist() == [0.3, 0.5, 0.7]
    assert r.ts_us.tolist() == [NOW_US] * 3
    assert r.quality.tolist() == [0, 0, 0]
    assert c.rejected == [] and c.mids == [1, 2]
    assert dict(zip(c.gateway_seen_id.tolist(), c.gateway_seen_us.tolist())) == {1: NOW_US, 3: NOW_US}


@pytest.mark.parametrize(
    "message, reason",
    [
        (msg("yj/v1/E1/G1", b"{}"), RejectReason.BAD_TOPIC),
        (msg("other/E1/G1/up", b"{}"), RejectReason.BAD_TOPIC),
        (msg("yj/v1/E1/G1/down", b"{}"), RejectReason.BAD_TOPIC),
        (msg("yj/v1/E1/G1/alerts", b"{}"), RejectReason.BAD_TOPIC),
        (msg("yj/v1/E9/G1/up", b"{}"), RejectReason.UNKNOWN_GATEWAY),
        (msg("yj/v1/E1/G9/up", b"{}"), RejectReason.UNKNOWN_GATEWAY),
        (msg("yj/v1/E1/G1/up", b"x" * 10_001), RejectReason.OVERSIZE),
        (msg("yj/v1/E1/G1/up", b"\xc3\x28"), RejectReason.BAD_ENCODING),
        (msg("yj/v1/E1/G1/up", b'{"ts": 1'), RejectReason.BAD_ENCODING),
        (msg("yj/v1/E1/G1/up", b'{"ts": 1, "readings": 3}'), RejectReason.BAD_SCHEMA),
        (msg("yj/v1/E1/G1/status", b"sleeping"), RejectReason.BAD_SCHEMA),
    ],
)
def test_whole_message_rejects(message, reason):
    c = decode(message, up("E1", "G1", ["CH4-01"], [0.1], mid=2))
    assert [r.reason for r in c.rejected] == [reason]
    rej = c.rejected[0]
    assert rej.detail and len(rej.payload) <= LIMITS.dead_letter_payload_bytes
    assert c.readings.sensor.tolist() == [1]  # the other message is untouched
    assert c.mids == [1, 2]  # both are acknowledged once committed


def test_reading_level_rejects_keep_the_rest_of_the_batch():
    payload = (
        b'{"ts": %d, "readings": [' % NOW_MS
        + b'{"s": "CH4-01", "v": 0.4},'
        + b'{"s": "CH4-02", "v": NaN},'
        + b'{"s": "NOPE", "v": 1},'
        + b'{"s": "T-01", "v": 20},'
        + b'{"s": "OLD-01", "v": 0.1},'
        + b'{"s": "CH4-02", "v": 0.2, "ts": %d},' % (NOW_MS - 200 * 86400 * 1000)
        + b'{"s": "CH4-01", "v": 0.5},'
        + b'{"s": "CH4-02", "v": 0.6}]}'
    )
    c = decode(msg("yj/v1/E1/G1/up", payload))
    assert c.readings.sensor.tolist() == [1, 2]
    assert c.readings.value.tolist() == [0.4, 0.6]
    [dl] = c.rejected  # one dead letter for the message, its refused readings listed
    assert (dl.refused, dl.enterprise, dl.gateway) == (6, "E1", "G1")
    got = {(r.index, r.reason) for r in dl.readings}
    assert got == {
        (1, RejectReason.NOT_A_NUMBER),
        (2, RejectReason.UNKNOWN_SENSOR),
        (3, RejectReason.WRONG_GATEWAY),
        (4, RejectReason.INACTIVE_SENSOR),
        (5, RejectReason.TOO_OLD),
        (6, RejectReason.CONFLICTING_VALUE),  # CH4-01 again at the batch time, another value
    }
    assert dict(dl.reasons) == {r: 1 for _, r in got}
    wrong = next(r for r in dl.readings if r.reason is RejectReason.WRONG_GATEWAY)
    assert wrong.sensor == "T-01"
    assert dl.payload == payload[:LIMITS.dead_letter_payload_bytes]


def test_over_and_under_range_are_stored_flagged():
    c = decode(up("E1", "G1", ["CH4-01", "CH4-02"], [100.0, -5.0]))
    assert c.rejected == []
    assert c.readings.quality.tolist() == [Quality.OVER_RANGE, Quality.UNDER_RANGE]


def test_device_quality_bits_pass_through():
    c = decode(up("E1", "G1", ["CH4-01", "CH4-02"], [1.0, 2.0], q=[Quality.CALIBRATING, Quality.FAULT]))
    assert c.readings.quality.tolist() == [Quality.CALIBRATING, Quality.FAULT]


def test_skewed_gateway_clock_is_corrected_keeping_device_time_and_spacing():
    skew_ms = 3_600_000  # gateway clock one hour fast
    m = up("E1", "G1", ["CH4-01", "CH4-01"], [1.0, 2.0], ts_ms=NOW_MS + skew_ms,
           reading_ts=[NOW_MS + skew_ms - 10_000, NOW_MS + skew_ms])
    r = decode(m).readings
    assert r.ts_us.tolist() == [NOW_US - 10_000_000, NOW_US]
    assert r.device_ts_us.tolist() == [(NOW_MS + skew_ms - 10_000) * 1000, (NOW_MS + skew_ms) * 1000]
    assert (r.quality & Quality.CLOCK_CORRECTED).all()


def test_message_delayed_in_the_broker_keeps_its_times():
    sent_ms = NOW_MS - 3_600_000  # queued an hour in the broker during an outage
    r = decode(up("E1", "G1", ["CH4-01"], [1.0], ts_ms=sent_ms)).readings
    assert r.ts_us.tolist() == [sent_ms * 1000] and r.quality.tolist() == [0]


def test_clock_within_tolerance_and_backfill_are_not_corrected():
    backlog = [NOW_MS - 3_600_000, NOW_MS - 1_800_000]  # store-and-forward after an outage
    r = decode(up("E1", "G1", ["CH4-01", "CH4-01"], [1.0, 2.0], ts_ms=NOW_MS + 1000, reading_ts=backlog)).readings
    assert r.ts_us.tolist() == [t * 1000 for t in backlog]
    assert r.quality.tolist() == [0, 0] and r.device_ts_us.tolist() == [0, 0]


def test_reading_in_the_future_is_put_at_receive_time():
    r = decode(up("E1", "G1", ["CH4-01"], [1.0], reading_ts=[NOW_MS + 86_400_000])).readings
    assert r.ts_us.tolist() == [NOW_US]
    assert r.device_ts_us.tolist() == [(NOW_MS + 86_400_000) * 1000]
    assert r.quality.tolist() == [Quality.CLOCK_CORRECTED]


def test_status_messages():
    c = decode(msg("yj/v1/E1/G1/status", b"offline", mid=5), msg("yj/v1/E1/G2/status", b"online", mid=6))
    assert [(s.gateway, s.online) for s in c.statuses] == [("G1", False), ("G2", True)]
    assert len(c.readings) == 0 and c.mids == [5, 6]


def test_registry_update_is_picked_up():
    decoder = Decoder(snapshot([("E1", "G1", "A", "methane")]), LIMITS)
    assert decoder.decode([up("E1", "G1", ["B"], [1.0])]).rejected[0].reason is RejectReason.UNKNOWN_SENSOR
    decoder.use(snapshot([("E1", "G1", "A", "methane"), ("E1", "G1", "B", "methane")]))
    assert decoder.decode([up("E1", "G1", ["B"], [1.0])]).readings.sensor.tolist() == [2]


def test_burst_columns_have_contract_dtypes():
    rng = np.random.default_rng(7)
    msgs = [up("E1", "G1", ["CH4-01", "CH4-02"], rng.random(2), reading_ts=[NOW_MS - i, NOW_MS - i - 1], mid=i) for i in range(1, 200)]
    r = decode(*msgs).readings
    assert len(r) == 398
    assert (r.sensor.dtype, r.ts_us.dtype, r.value.dtype, r.quality.dtype) == (np.int32, np.int64, np.float64, np.int16)
