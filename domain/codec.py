"""The gateway payload codec: the JSON batch of DESIGN.md, and the status message.

``{"ts": 1732870000123, "readings": [{"s": "CH4-0101", "v": 0.42, "q": 0, "ts": 1732870000100}]}``

``ts`` is milliseconds since the Unix epoch; a reading's ``ts`` defaults to the batch's and its
``q`` (device quality bits) to 0. Ingest decodes with :func:`parse_batch`, simulators encode with
:func:`encode_batch`, so the two cannot drift apart.

Decoding has a fast path (one typed msgspec decode, then columns) and a slow path taken only when
the fast one fails: it salvages every valid reading of a message in which some readings are bad,
and reports each bad one with a reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
import numpy as np

from domain.messages import RejectReason
from domain.quality import DEVICE_QUALITY_MASK

MAX_SENSOR_ID_LEN = 64
_TS_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z

SensorId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SENSOR_ID_LEN)]
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=_TS_MAX_MS)]
DeviceQuality = Annotated[int, msgspec.Meta(ge=0, le=DEVICE_QUALITY_MASK)]


NO_TS = -1  # a reading without its own ts (takes the batch's); never valid when sent


class Reading(msgspec.Struct, omit_defaults=True, gc=False):
    """One reading as decoded on the fast path (``ts`` is :data:`NO_TS` when absent)."""

    s: SensorId
    v: float
    q: DeviceQuality = 0
    ts: EpochMs = NO_TS


class Batch(msgspec.Struct, omit_defaults=True, gc=False):
    ts: EpochMs
    readings: list[Reading]


_decoder = msgspec.json.Decoder(Batch)
FastDecodeError = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)
"""What the typed decode raises for a payload it refuses (msgspec raises UnicodeDecodeError for a
string that is not UTF-8)."""
MAX_INT_DIGITS = 18
"""Longer JSON integers are read as floats on the slow path (a 5,000-digit literal would otherwise
exceed Python's digit limit, and ``1`` followed by 400 zeros overflow ``float()``)."""


def decode_fast(payload: bytes) -> Batch:
    """The typed decode alone: raises one of :data:`FastDecodeError` for anything not perfectly
    formed (then :func:`parse_batch` salvages what it can, reading by reading). Values may be
    non-finite (``1e999``); callers mask them."""
    return _decoder.decode(payload)
def _numpy_scalar(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_numpy_scalar)


class CodecError(ValueError):
    """The whole payload is unusable. ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True, slots=True)
class BadReading:
    index: int  # position in the payload's readings list
    reason: RejectReason
    detail: str
    sensor: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A decoded payload as columns (valid readings only) plus the readings it had to refuse.

    sensor_ids: list[str]          n valid readings, in payload order
    ts_ms:      int64[n]           reading time (its own or the batch's), ms since epoch
    value:      float64[n]         finite values only
    quality:    int16[n]           device quality bits
    index:      int32[n]           position of each valid reading in the payload
    """

    batch_ts_ms: int
    sensor_ids: list[str]
    ts_ms: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    index: np.ndarray
    bad: list[BadReading]

    def __len__(self) -> int:
        return len(self.sensor_ids)


def parse_batch(payload: bytes) -> DecodedBatch:
    """Decode one ``up`` payload. Raises :class:`CodecError` when nothing in it is usable."""
    try:
        batch = _decoder.decode(payload)
    except FastDecodeError:
        return _parse_batch_slow(payload)
    readings = batch.readings
    n = len(readings)
    batch_ts = batch.ts
    value = np.array([r.v for r in readings], dtype=np.float64).reshape(n)
    ts_ms = np.array([r.ts for r in readings], dtype=np.int64).reshape(n)
    ts_ms[ts_ms == NO_TS] = batch_ts
    quality = np.array([r.q for r in readings], dtype=np.int16).reshape(n)
    sensor_ids = [r.s for r in readings]
    finite = np.isfinite(value)
    if finite.all():
        return DecodedBatch(batch_ts, sensor_ids, ts_ms, value, quality, np.arange(n, dtype=np.int32), [])
    # Overflowing literals such as 1e999 decode to inf: refuse those readings, keep the rest.
    bad_index = np.flatnonzero(~finite)
    bad = [
        BadReading(int(i), RejectReason.NOT_A_NUMBER, f"value {value[i]!r} of sensor {sensor_ids[i]!r} is not a finite number", sensor_ids[i])
        for i in bad_index
    ]
    keep = np.flatnonzero(finite).astype(np.int32)
    return DecodedBatch(
        batch_ts,
        [sensor_ids[i] for i in keep],
        ts_ms[keep],
        value[keep],
        quality[keep],
        keep,
        bad,
    )


def salvage_batch(payload: bytes) -> DecodedBatch:
    """Reading-by-reading validation, used only for payloads the fast path refused. Raises
    :class:`CodecError` when nothing in the payload is usable."""
    return _parse_batch_slow(payload)


def _parse_batch_slow(payload: bytes) -> DecodedBatch:
    """Reading-by-reading validation, used only for payloads the fast path refused."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(RejectReason.BAD_ENCODING, f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        # json accepts the NaN/Infinity literals that some gateways emit; they are refused per reading.
        doc = json.loads(text, parse_int=_bounded_int)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise CodecError(RejectReason.BAD_ENCODING, f"payload is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(doc, dict):
        raise CodecError(RejectReason.BAD_SCHEMA, f"payload is a JSON {type(doc).__name__}, expected an object with ts and readings")
    batch_ts = doc.get("ts")
    if not _is_epoch_ms(batch_ts):
        raise CodecError(RejectReason.BAD_SCHEMA, "payload field ts must be an integer of milliseconds since the epoch")
    readings = doc.get("readings")
    if not isinstance(readings, list):
        raise CodecError(RejectReason.BAD_SCHEMA, "payload field readings must be a list")
    ids: list[str] = []
    ts_ms: list[int] = []
    values: list[float] = []
    qualities: list[int] = []
    index: list[int] = []
    bad: list[BadReading] = []
    for i, r in enumerate(readings):
        problem = _reading_problem(r)
        if problem is not None:
            reason, detail = problem
            sensor = r.get("s") if isinstance(r, dict) and isinstance(r.get("s"), str) else None
            bad.append(BadReading(i, reason, f"reading {i}: {detail}", sensor[:MAX_SENSOR_ID_LEN] if sensor else None))
            continue
        ids.append(r["s"])
        ts_ms.append(batch_ts if r.get("ts") is None else r["ts"])
        values.append(float(r["v"]))
        qualities.append(r.get("q", 0) or 0)
        index.append(i)
    return DecodedBatch(
        batch_ts,
        ids,
        np.asarray(ts_ms, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
        np.asarray(qualities, dtype=np.int16),
        np.asarray(index, dtype=np.int32),
        bad,
    )


def _bounded_int(literal: str) -> int | float:
    return int(literal) if len(literal) <= MAX_INT_DIGITS else float(literal)  # float("1"*5000) is inf


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_epoch_ms(x: Any) -> bool:
    return _is_int(x) and 0 <= x <= _TS_MAX_MS


def _reading_problem(r: Any) -> tuple[RejectReason, str] | None:
    if not isinstance(r, dict):
        return RejectReason.BAD_SCHEMA, f"is a JSON {type(r).__name__}, expected an object"
    s = r.get("s")
    if not isinstance(s, str) or not 1 <= len(s) <= MAX_SENSOR_ID_LEN:
        return RejectReason.BAD_SCHEMA, f"sensor id s must be a string of 1-{MAX_SENSOR_ID_LEN} characters"
    if not s.isprintable():
        return RejectReason.BAD_SCHEMA, f"sensor id {s!r} holds control characters or lone surrogates"
    if "v" not in r:
        return RejectReason.BAD_SCHEMA, f"sensor {s!r} has no value v"
    v = r["v"]
    if v is None:
        return RejectReason.NOT_A_NUMBER, f"value of sensor {s!r} is null"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return RejectReason.BAD_SCHEMA, f"value of sensor {s!r} is a {type(v).__name__}, expected a number"
    if not math.isfinite(float(v)):
        return RejectReason.NOT_A_NUMBER, f"value {v!r} of sensor {s!r} is not a finite number"
    q = r.get("q", 0)
    if q is not None and (not _is_int(q) or not 0 <= q <= 0x7FFF):
        return RejectReason.BAD_SCHEMA, f"quality q of sensor {s!r} must be a small non-negative integer"
    if q and q & ~DEVICE_QUALITY_MASK:
        return RejectReason.BAD_QUALITY, f"quality q={q} of sensor {s!r} sets bits a gateway may not set (allowed mask 0x{DEVICE_QUALITY_MASK:02x})"
    ts = r.get("ts")
    if ts is not None and not _is_epoch_ms(ts):
        return RejectReason.BAD_SCHEMA, f"time ts of sensor {s!r} must be an integer of milliseconds since the epoch"
    return None


def encode_batch(
    ts_ms: int,
    sensor_ids: Sequence[str],
    values: Sequence[float] | np.ndarray,
    qualities: Sequence[int] | np.ndarray | None = None,
    reading_ts_ms: Sequence[int | None] | np.ndarray | None = None,
) -> bytes:
    """Encode one ``up`` payload. ``qualities`` and ``reading_ts_ms`` are optional per reading."""
    vals = values.tolist() if isinstance(values, np.ndarray) else values
    qs = qualities.tolist() if isinstance(qualities, np.ndarray) else qualities
    tss = reading_ts_ms.tolist() if isinstance(reading_ts_ms, np.ndarray) else reading_ts_ms
    readings = [
        Reading(
            s=s,
            v=v,
            q=0 if qs is None else qs[i],
            ts=NO_TS if tss is None or tss[i] is None or tss[i] == ts_ms else tss[i],
        )
        for i, (s, v) in enumerate(zip(sensor_ids, vals, strict=True))
    ]
    return _encoder.encode(Batch(ts=ts_ms, readings=readings))


STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"


def parse_status(payload: bytes) -> bool:
    """``online`` → True, ``offline`` → False (case and surrounding space ignored)."""
    text = payload.strip().lower()
    if text == STATUS_ONLINE:
        return True
    if text == STATUS_OFFLINE:
        return False
    raise CodecError(RejectReason.BAD_SCHEMA, f"status payload must be 'online' or 'offline', got {payload[:40]!r}")


def encode_status(online: bool) -> bytes:
    return STATUS_ONLINE if online else STATUS_OFFLINE
