"""Decoding is total: poison payloads, future clocks, repeats and floods all end as readings and at
most one dead letter per message, and every reading sent is accounted for."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.codec import encode_batch
from domain.messages import MAX_LISTED_READINGS, RawMessage, RejectReason
from domain.quality import Quality
from ingest.decode import DecodeLimits, Decoder
from tests.ingest.test_decode import LIMITS, NOW_MS, NOW_US, REGISTRY, decode, msg, up
from tests.support.registry import snapshot

TOPIC = "yj/v1/E1/G1/up"
B = b'{"ts":%d,"readings":[' % NOW_MS
POISON = {
    # The five payloads that each ended `yujing run`; what each must become instead.
    "raw 0xff in a sensor id": (B + b'{"s":"\xff","v":1}]}', RejectReason.BAD_ENCODING, 0),
    "1 followed by 400 zeros": (B + b'{"s":"CH4-01","v":1' + b"0" * 400 + b"}]}", RejectReason.NOT_A_NUMBER, 1),
    "5,000-digit value": (B + b'{"s":"CH4-01","v":' + b"7" * 5000 + b"}]}", RejectReason.NOT_A_NUMBER, 1),
    "5,000-digit ts": (b'{"ts":' + b"7" * 5000 + b',"readings":[{"s":"CH4-01","v":1}]}', RejectReason.BAD_SCHEMA, 0),
    "lone surrogate sensor id": (B + b'{"s":"\\ud800","v":1}]}', RejectReason.BAD_SCHEMA, 1),
}


def test_the_ff_payload_is_49_bytes():
    assert len(b'{"ts":1764400000000,"readings":[{"s":"\xff","v":1}]}') == 49


def test_each_poison_payload_becomes_one_dead_letter_and_spares_the_burst():
    messages = [msg(TOPIC, p, mid=i) for i, (p, _, _) in enumerate(POISON.values())]
    messages.append(up("E1", "G1", ["CH4-01"], [0.5], mid=99))
    c = decode(*messages)
    assert [(r.reason, r.refused) for r in c.rejected] == [(reason, n) for _, reason, n in POISON.values()]
    assert c.readings.value.tolist() == [0.5] and c.mids == [0, 1, 2, 3, 4, 99]
    surrogate = c.rejected[-1]
    assert surrogate.readings[0].sensor == "\ud800"  # kept as sent; the store escapes it


def test_future_readings_are_shifted_together_keeping_spacing_and_device_time():
    # 200 readings of two sensors, a day ahead of the receive time, one second apart: none may
    # collapse onto the receive time (the writer would then keep one of each and drop the rest).
    future_ms = NOW_MS + 86_400_000
    ts = [future_ms - 1000 * (99 - i // 2) for i in range(200)]
    ids = ["CH4-01", "CH4-02"] * 100
    c = decode(up("E1", "G1", ids, np.arange(200.0), reading_ts=ts))
    r = c.readings
    assert c.rejected == [] and len(r) == 200
    assert r.ts_us.max() == NOW_US  # the newest lands at the receive time
    assert (np.diff(r.ts_us) == np.diff(np.asarray(ts) * 1000)).all()  # spacing kept
    assert r.device_ts_us.tolist() == [t * 1000 for t in ts]
    assert (r.quality & Quality.CLOCK_CORRECTED).all()


def test_a_shifted_reading_landing_on_a_kept_one_is_a_time_collision():
    # CH4-01 at the receive time (not corrected) and a day ahead (corrected onto the same time).
    c = decode(up("E1", "G1", ["CH4-01", "CH4-01"], [1.0, 2.0], reading_ts=[NOW_MS, NOW_MS + 86_400_000]))
    assert c.readings.value.tolist() == [1.0]
    [dl] = c.rejected
    assert [(x.index, x.reason) for x in dl.readings] == [(1, RejectReason.TIME_COLLISION)]


def test_repeats_in_a_message_same_value_is_duplicate_another_is_conflicting():
    c = decode(up("E1", "G1", ["CH4-01"] * 3, [1.0, 1.0, 2.0]))
    assert c.readings.value.tolist() == [1.0]
    [dl] = c.rejected
    assert [(x.index, x.reason) for x in dl.readings] == [
        (1, RejectReason.DUPLICATE_IN_MESSAGE), (2, RejectReason.CONFLICTING_VALUE)]


def test_a_flood_of_unknown_sensors_is_one_bounded_dead_letter():
    ids = [f"GHOST-{i}" for i in range(40_000)]
    limits = DecodeLimits(max_payload_bytes=2_000_000, dead_letter_payload_bytes=4096, clock_skew_tolerance_s=300)
    c = Decoder(REGISTRY, limits).decode([up("E1", "G1", ids + ["CH4-01"], [1.0] * 40_001)])
    [dl] = c.rejected
    assert (dl.reason, dl.refused, len(dl.readings), len(dl.payload)) == (
        RejectReason.UNKNOWN_SENSOR, 40_000, MAX_LISTED_READINGS, 4096)
    assert dict(dl.reasons) == {RejectReason.UNKNOWN_SENSOR: 40_000}
    assert c.readings.value.tolist() == [1.0]


def test_a_burst_is_validated_in_parts_bounded_by_bytes_with_the_same_result():
    messages = [up("E1", "G1", ["CH4-01", "NOPE"], [float(i), 1.0], ts_ms=NOW_MS - i, mid=i) for i in range(50)]
    whole = Decoder(REGISTRY, LIMITS).decode(messages)
    small = DecodeLimits(LIMITS.max_payload_bytes, LIMITS.dead_letter_payload_bytes, LIMITS.clock_skew_tolerance_s,
                         max_burst_bytes=200)
    parts = Decoder(REGISTRY, small).decode(messages)
    assert parts.readings.value.tolist() == whole.readings.value.tolist() == [float(i) for i in range(50)]
    assert parts.readings.ts_us.tolist() == whole.readings.ts_us.tolist()
    assert [r.detail for r in parts.rejected] == [r.detail for r in whole.rejected]


# --- every reading accounted for, whatever the message holds -----------------------------------

SENSORS = ["CH4-01", "CH4-02", "T-01", "OLD-01", "NOPE", "\ud800", ""]
OFFSETS_MS = [0, -1, 1, -400_000, 400_000, 86_400_000, 86_400_001, -300 * 86_400_000]
VALUES = [0.0, 1.0, 1.5, float("nan"), float("inf"), 1e300]
reading = st.fixed_dictionaries(
    {"s": st.sampled_from(SENSORS), "v": st.sampled_from(VALUES)},
    optional={"ts": st.sampled_from(OFFSETS_MS), "q": st.sampled_from([0, 1, 0x100])},
)
message = st.tuples(st.sampled_from(OFFSETS_MS), st.lists(reading, max_size=12))


def payload_of(batch_offset_ms: int, readings: list[dict]) -> bytes:
    body = [{**r, **({"ts": NOW_MS + r["ts"]} if "ts" in r else {})} for r in readings]
    return json.dumps({"ts": NOW_MS + batch_offset_ms, "readings": body}).encode("utf-8", "surrogatepass")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message, min_size=1, max_size=6))
def test_every_reading_is_stored_or_refused_never_both(messages):
    raw = [RawMessage(TOPIC, payload_of(o, rs), i + 1, NOW_US) for i, (o, rs) in enumerate(messages)]
    c = Decoder(REGISTRY, LIMITS).decode(raw)
    sent = sum(len(rs) for _, rs in messages)
    refused = sum(r.refused for r in c.rejected)
    whole = [r for r in c.rejected if r.whole_message]
    lost_whole = sum(len(rs) for (_, rs), m in zip(messages, raw) if any(w.payload == m.payload[:100] for w in whole))
    assert len(c.readings) + refused + lost_whole == sent
    assert len(c.rejected) <= len(raw)  # at most one dead letter per message
    r = c.readings
    # Nothing stored in the future, and no two stored readings of a message share (sensor, time).
    assert (r.ts_us <= NOW_US + 300 * 1_000_000).all()
    assert len({(s, t) for s, t in zip(r.sensor.tolist(), r.ts_us.tolist())}) == len(r) or len(raw) > 1


def test_a_decoder_failure_is_isolated_to_its_message(caplog):
    # A registry snapshot that maps a code to no row of its table (a defect the decoder cannot
    # rule out): validating the burst raises; the burst is retried message by message, and only
    # the message naming that sensor becomes an `undecodable` dead letter.
    registry = snapshot([("E1", "G1", "CH4-01", "methane")])
    registry.sensor_ids["E1"]["BROKEN"] = 10_000
    c = Decoder(registry, LIMITS).decode([
        up("E1", "G1", ["CH4-01"], [0.5], mid=1),
        up("E1", "G1", ["BROKEN"], [0.6], mid=2),
        up("E1", "G1", ["CH4-01"], [0.7], ts_ms=NOW_MS + 1, mid=3),
    ])
    assert c.readings.value.tolist() == [0.5, 0.7] and c.mids == [1, 2, 3]
    [dl] = c.rejected
    assert dl.reason is RejectReason.UNDECODABLE and "IndexError" in dl.detail
    assert dl.payload == up("E1", "G1", ["BROKEN"], [0.6]).payload
