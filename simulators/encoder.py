"""Fast encoder of many ``up`` payloads at once, byte for byte what ``domain.codec.encode_batch`` writes.

``encode_batch`` builds one msgspec struct per reading (about 1 µs each); a load run needs 300 k
readings/s, so this encoder formats a whole tick in a few C-level calls: msgspec encodes every
value of the tick as one JSON array (its float formatting is therefore the codec's), the text is
split into per-value tokens, and each message is a ``b"".join`` of precomputed sensor prefixes,
value tokens and suffixes. tests/simulators/test_encoder.py checks equality with ``encode_batch``
and the round trip through ``parse_batch``.

Also here: the malformed payloads a misbehaving gateway sends, each labelled with the dead-letter
reason ingest should give it.
"""

from __future__ import annotations

import msgspec
import numpy as np

from domain.messages import RejectReason

_json = msgspec.json.Encoder()


def sensor_prefix(sensor_id: str) -> bytes:
    """``{"s":"CH4-0101","v":`` — the constant start of every reading of a sensor."""
    return b'{"s":' + _json.encode(sensor_id) + b',"v":'


def encode_payloads(
    batch_ts_ms: np.ndarray,
    bounds: np.ndarray,
    prefixes: list[bytes],
    values: np.ndarray,
    quality: np.ndarray | None = None,
    reading_ts_ms: np.ndarray | None = None,
) -> list[bytes]:
    """Encode m payloads from concatenated reading columns.

    batch_ts_ms:   int64[m]    the batch ``ts`` of each message
    bounds:        int64[m+1]  message k holds readings bounds[k]:bounds[k+1]
    prefixes:      n bytes     :func:`sensor_prefix` of each reading's sensor
    values:        float64[n]  finite (a non-finite value encodes as ``null``, as msgspec does)
    quality:       int16[n]    device quality bits, omitted where 0
    reading_ts_ms: int64[n]    per-reading time, omitted where equal to its batch ``ts``
    """
    n = values.shape[0]
    m = batch_ts_ms.shape[0]
    if len(prefixes) != n or bounds.shape[0] != m + 1 or (m and int(bounds[-1]) != n):
        raise ValueError("encode_payloads: columns and bounds disagree")
    if n == 0:
        return [b'{"ts":%d,"readings":[]}' % t for t in batch_ts_ms.tolist()]
    tokens = _json.encode(values.tolist())[1:-1].split(b",")
    parts: list[bytes] = [b""] * (3 * n)
    parts[0::3] = prefixes
    parts[1::3] = tokens
    parts[2::3] = [b"},"] * n
    counts = np.diff(bounds)
    special = np.zeros(n, dtype=bool)
    if quality is not None:
        special |= quality != 0
    if reading_ts_ms is not None:
        own_ts = reading_ts_ms != np.repeat(batch_ts_ms, counts)
        special |= own_ts
    if special.any():
        qs = quality.tolist() if quality is not None else None
        rts = reading_ts_ms.tolist() if reading_ts_ms is not None else None
        own = own_ts.tolist() if reading_ts_ms is not None else None
        for i in np.flatnonzero(special).tolist():
            tail = b""
            if qs is not None and qs[i]:
                tail += b',"q":%d' % qs[i]
            if own is not None and own[i]:
                tail += b',"ts":%d' % rts[i]
            parts[3 * i + 2] = tail + b"},"
    out = []
    b = bounds.tolist()
    for k, ts in enumerate(batch_ts_ms.tolist()):
        body = b"".join(parts[3 * b[k]: 3 * b[k + 1]])
        out.append(b'{"ts":%d,"readings":[%s]}' % (ts, body[:-1]))
    return out


# ---- malformed payloads ------------------------------------------------------------------------
MALFORMED_KINDS: tuple[str, ...] = (
    "truncated", "not_utf8", "string_value", "nan_value", "bad_quality_bits", "unknown_sensor", "not_an_object",
)

# What ingest should do with each: (reason code, whole message lost?)
MALFORMED_EXPECTED: dict[str, tuple[RejectReason, bool]] = {
    "truncated": (RejectReason.BAD_ENCODING, True),
    "not_utf8": (RejectReason.BAD_ENCODING, True),
    "not_an_object": (RejectReason.BAD_SCHEMA, True),
    "string_value": (RejectReason.BAD_SCHEMA, False),  # the first reading only
    "nan_value": (RejectReason.NOT_A_NUMBER, False),
    "bad_quality_bits": (RejectReason.BAD_QUALITY, False),
    "unknown_sensor": (RejectReason.UNKNOWN_SENSOR, False),
}


def malform(payload: bytes, kind: str) -> bytes:
    """Spoil a good payload the way ``kind`` says. Per-reading kinds spoil the first reading only."""
    if kind == "truncated":
        return payload[: max(1, len(payload) // 2)]
    if kind == "not_utf8":
        return b"\xff\xfe" + payload[2:]
    if kind == "not_an_object":
        return b"[" + payload + b"]"
    head, sep, rest = payload.partition(b'"v":')
    if not sep:
        return payload[:-1]
    value, _, tail = _split_value(rest)
    if kind == "string_value":
        return head + b'"v":"' + value + b'"' + tail
    if kind == "nan_value":
        return head + b'"v":NaN' + tail
    if kind == "bad_quality_bits":
        return head + b'"v":' + value + b',"q":512' + tail
    if kind == "unknown_sensor":
        s_head, _, _ = head.rpartition(b'{"s":')
        return s_head + b'{"s":"ZZ-UNREGISTERED","v":' + value + tail
    raise ValueError(f"unknown malformed kind {kind!r}")


def _split_value(rest: bytes) -> tuple[bytes, bytes, bytes]:
    end = len(rest)
    for stop in (b",", b"}"):
        j = rest.find(stop)
        if 0 <= j < end:
            end = j
    return rest[:end], b"", rest[end:]
