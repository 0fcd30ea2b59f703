"""PostgreSQL binary COPY buffers built from numpy columns (no per-row Python).

Rows of ``readings (ts, sensor, value, quality)`` are fixed-width in binary COPY: a big-endian
structured array with the field count and each field's length laid out beside the data.
"""

from __future__ import annotations

import numpy as np

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in µs since the Unix epoch
HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
READING_COLUMNS = ("ts", "sensor", "value", "quality")

_ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("ts_len", ">i4"), ("ts", ">i8"),
        ("sensor_len", ">i4"), ("sensor", ">i4"),
        ("value_len", ">i4"), ("value", ">f8"),
        ("quality_len", ">i4"), ("quality", ">i2"),
    ]
)
_TEMPLATE = np.zeros(1, dtype=_ROW)
_TEMPLATE["nfields"] = 4
_TEMPLATE["ts_len"] = 8
_TEMPLATE["sensor_len"] = 4
_TEMPLATE["value_len"] = 8
_TEMPLATE["quality_len"] = 2

_STAGE_ROW = np.dtype(_ROW.descr[:-2] + [("quality_len", ">i4"), ("quality", ">i2"), ("device_ts_len", ">i4"), ("device_ts", ">i8")])


def readings_copy_buffer(ts_us: np.ndarray, sensor: np.ndarray, value: np.ndarray, quality: np.ndarray) -> bytes:
    """Binary COPY data for columns ``(ts, sensor, value, quality)``.

    ts_us: int64[n] µs since the Unix epoch; sensor: int32[n]; value: float64[n]; quality: int16[n].
    """
    rows = np.empty(ts_us.shape[0], dtype=_ROW)
    rows[:] = _TEMPLATE[0]
    rows["ts"] = ts_us - PG_EPOCH_US
    rows["sensor"] = sensor
    rows["value"] = value
    rows["quality"] = quality
    return b"".join((HEADER, rows.tobytes(), TRAILER))


def readings_with_device_ts_copy_buffer(
    ts_us: np.ndarray, sensor: np.ndarray, value: np.ndarray, quality: np.ndarray, device_ts_us: np.ndarray
) -> bytes:
    """Binary COPY data for ``(ts, sensor, value, quality, device_ts)``; device_ts is never NULL here."""
    rows = np.zeros(ts_us.shape[0], dtype=_STAGE_ROW)
    rows["nfields"] = 5
    rows["ts_len"], rows["sensor_len"], rows["value_len"] = 8, 4, 8
    rows["quality_len"], rows["device_ts_len"] = 2, 8
    rows["ts"] = ts_us - PG_EPOCH_US
    rows["sensor"] = sensor
    rows["value"] = value
    rows["quality"] = quality
    rows["device_ts"] = device_ts_us - PG_EPOCH_US
    return b"".join((HEADER, rows.tobytes(), TRAILER))
