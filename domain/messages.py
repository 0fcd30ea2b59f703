"""Typed messages between stages.

Batches are columns, not objects: each holds parallel numpy arrays whose shapes and dtypes are
checked when the batch is built, so a stage never receives a ragged or mistyped batch.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

import numpy as np

from domain.severity import FindingEvent, Severity, SubjectKind

RULE_DTYPE = np.dtypes.StringDType()


@dataclasses.dataclass(frozen=True, slots=True)
class RawMessage:
    """One MQTT message as the broker delivered it."""

    topic: str
    payload: bytes
    mid: int  # MQTT packet id; 0 for QoS 0
    received_us: int  # receive time, µs since the Unix epoch (UTC)
    qos: int = 1
    retain: bool = False


def _check_columns(name: str, columns: dict[str, tuple[np.ndarray, np.dtype]]) -> None:
    length = None
    for col, (array, dtype) in columns.items():
        if not isinstance(array, np.ndarray) or array.ndim != 1:
            raise TypeError(f"{name}.{col} must be a 1-D numpy array")
        if array.dtype != dtype:
            raise TypeError(f"{name}.{col} has dtype {array.dtype}, expected {dtype}")
        if length is None:
            length = array.shape[0]
        elif array.shape[0] != length:
            raise ValueError(f"{name}.{col} has {array.shape[0]} rows, expected {length}")


def _concat(cls, batches):
    """One batch of ``cls`` (a column dataclass) from several, skipping empty ones."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return cls.empty()
    if len(batches) == 1:
        return batches[0]
    return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in dataclasses.fields(cls)})


def _take(batch, index):
    return type(batch)(**{f.name: getattr(batch, f.name)[index] for f in dataclasses.fields(batch)})


@dataclasses.dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Readings as columns.

    sensor:    int32  dense registry index (``sensors.id``)
    ts_us:     int64  reading time, µs since the epoch, UTC (receive time if the clock was corrected)
    value:     float64
    quality:   int16  :class:`domain.quality.Quality` bits
    device_ts_us: int64 the device's own time where the clock was corrected, else 0
    received_us: int64 when the carrying message reached yujing (for lag measurement)
    """

    sensor: np.ndarray
    ts_us: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    device_ts_us: np.ndarray
    received_us: np.ndarray

    def __post_init__(self) -> None:
        _check_columns(
            "ReadingBatch",
            {
                "sensor": (self.sensor, np.dtype(np.int32)),
                "ts_us": (self.ts_us, np.dtype(np.int64)),
                "value": (self.value, np.dtype(np.float64)),
                "quality": (self.quality, np.dtype(np.int16)),
                "device_ts_us": (self.device_ts_us, np.dtype(np.int64)),
                "received_us": (self.received_us, np.dtype(np.int64)),
            },
        )

    def __len__(self) -> int:
        return int(self.sensor.shape[0])

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls.build(sensor=[], ts_us=[], value=[], quality=[])

    @classmethod
    def build(
        cls,
        *,
        sensor: Sequence[int] | np.ndarray,
        ts_us: Sequence[int] | np.ndarray,
        value: Sequence[float] | np.ndarray,
        quality: Sequence[int] | np.ndarray | None = None,
        device_ts_us: Sequence[int] | np.ndarray | None = None,
        received_us: Sequence[int] | np.ndarray | None = None,
    ) -> ReadingBatch:
        """Build from any sequences, converting to the column dtypes (for tests and simulators)."""
        sensor_a = np.asarray(sensor, dtype=np.int32)
        n = sensor_a.shape[0]
        zeros = np.zeros(n, dtype=np.int64)
        return cls(
            sensor=sensor_a,
            ts_us=np.asarray(ts_us, dtype=np.int64),
            value=np.asarray(value, dtype=np.float64),
            quality=np.zeros(n, np.int16) if quality is None else np.asarray(quality, np.int16),
            device_ts_us=zeros if device_ts_us is None else np.asarray(device_ts_us, np.int64),
            received_us=zeros.copy() if received_us is None else np.asarray(received_us, np.int64),
        )

    @classmethod
    def concat(cls, batches: Sequence[ReadingBatch]) -> ReadingBatch:
        return _concat(cls, batches)

    def take(self, index: np.ndarray | slice) -> ReadingBatch:
        """Rows selected by an index array, boolean mask or slice."""
        return _take(self, index)


class RejectReason(enum.StrEnum):
    """Machine-readable reason codes for dead letters."""

    BAD_TOPIC = "bad_topic"  # topic not of the yj/v1/{enterprise}/{gateway}/{up|status} form
    UNKNOWN_GATEWAY = "unknown_gateway"  # topic's enterprise/gateway not in the registry
    BAD_ENCODING = "bad_encoding"  # not UTF-8 or not JSON
    BAD_SCHEMA = "bad_schema"  # JSON of the wrong shape or types
    OVERSIZE = "oversize"  # payload larger than the configured bound
    NOT_A_NUMBER = "not_a_number"  # value NaN, Inf or null
    BAD_QUALITY = "bad_quality"  # quality bits a gateway may not set
    UNKNOWN_SENSOR = "unknown_sensor"  # sensor id not registered in the topic's enterprise
    WRONG_GATEWAY = "wrong_gateway"  # sensor registered under another gateway
    INACTIVE_SENSOR = "inactive_sensor"  # sensor deactivated in the registry
    TOO_OLD = "too_old"  # timestamp older than the retention window
    DUPLICATE_IN_MESSAGE = "duplicate_in_message"  # same sensor and time twice in one message
    CONFLICTING_VALUE = "conflicting_value"  # same sensor and time as a kept reading, another value
    TIME_COLLISION = "time_collision"  # a clock-corrected reading lands on a time its sensor already has
    DATABASE_REFUSED = "database_refused"  # the database refused the row on its own (bisected out)
    UNDECODABLE = "undecodable"  # the decoder failed on this message (a defect; the message is kept)
    OVER_QUOTA = "over_quota"  # the gateway sent more messages or bytes per minute than its quota


MAX_LISTED_READINGS = 100
"""A dead letter lists at most this many refused readings; ``refused`` and ``reasons`` count all."""


@dataclasses.dataclass(frozen=True, slots=True)
class RefusedReading:
    """One refused reading of a message: its position in the payload's ``readings`` (None where
    unknown), the sensor id as sent, the reason, and for conflicts the values involved."""

    index: int | None
    sensor: str | None
    reason: RejectReason
    note: str | None = None  # e.g. "value 2.0 at 1764400000000000 µs; kept 1.0"


@dataclasses.dataclass(frozen=True, slots=True)
class Rejected:
    """One message kept as a dead letter: refused whole (``refused == 0``, ``readings`` empty), or
    partly (``refused`` readings, the first :data:`MAX_LISTED_READINGS` of them listed and every
    one counted in ``reasons``). ``reason`` is the message's reason or its readings' most common."""

    reason: RejectReason
    detail: str  # one human sentence
    topic: str
    payload: bytes  # truncated to a bound by whoever builds it
    received_us: int
    enterprise: str | None = None
    gateway: str | None = None
    refused: int = 0  # readings refused
    readings: tuple[RefusedReading, ...] = ()  # bounded list (index, sensor, reason)
    reasons: tuple[tuple[RejectReason, int], ...] = ()  # refused readings per reason, all of them

    @property
    def whole_message(self) -> bool:
        return self.refused == 0

    @classmethod
    def of_readings(cls, topic: str, payload: bytes, received_us: int, enterprise: str | None,
                    gateway: str | None, listed: Sequence[RefusedReading],
                    counts: dict[RejectReason, int], total: int, first_detail: str) -> Rejected:
        """A partly refused message: ``counts`` holds every refused reading per reason."""
        reasons = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].value)))
        summary = ", ".join(f"{r.value} {n}" for r, n in reasons)
        return cls(
            reason=reasons[0][0],
            detail=f"{sum(counts.values())} of {total} readings refused ({summary}); first: {first_detail}",
            topic=topic, payload=payload, received_us=received_us, enterprise=enterprise, gateway=gateway,
            refused=sum(counts.values()), readings=tuple(listed[:MAX_LISTED_READINGS]), reasons=reasons,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A gateway's ``status`` message (retained ``online``/``offline``, its Last Will)."""

    enterprise: str
    gateway: str
    online: bool
    received_us: int


@dataclasses.dataclass(frozen=True, slots=True)
class FindingBatch:
    """Findings as columns. A finding is a state change with identity (subject, rule).

    subject_kind: int8   :class:`SubjectKind`
    subject:      int32  sensor index, gateway index or zone index
    rule:         StringDType  rule id, e.g. ``"limit.methane"``
    event:        int8   :class:`FindingEvent`
    severity:     int8   :class:`Severity` (on clear: the severity that was active)
    ts_us:        int64  time of the reading that caused the event
    value:        float64 the value that caused it (NaN where none, e.g. no-data)
    setpoint:     float64 the setpoint crossed, or the score for statistical rules
    eta_s:        float64 seconds until the setpoint is predicted to be crossed (``ttt``), else NaN;
                  optional when building (defaults to NaN)
    """

    subject_kind: np.ndarray
    subject: np.ndarray
    rule: np.ndarray
    event: np.ndarray
    severity: np.ndarray
    ts_us: np.ndarray
    value: np.ndarray
    setpoint: np.ndarray
    eta_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.eta_s is None:
            object.__setattr__(self, "eta_s", np.full(self.subject.shape[0], np.nan))
        _check_columns(
            "FindingBatch",
            {
                "subject_kind": (self.subject_kind, np.dtype(np.int8)),
                "subject": (self.subject, np.dtype(np.int32)),
                "rule": (self.rule, RULE_DTYPE),
                "event": (self.event, np.dtype(np.int8)),
                "severity": (self.severity, np.dtype(np.int8)),
                "ts_us": (self.ts_us, np.dtype(np.int64)),
                "value": (self.value, np.dtype(np.float64)),
                "setpoint": (self.setpoint, np.dtype(np.float64)),
                "eta_s": (self.eta_s, np.dtype(np.float64)),
            },
        )

    def __len__(self) -> int:
        return int(self.subject.shape[0])

    @classmethod
    def build(
        cls,
        *,
        subject_kind: Sequence[int] | np.ndarray | int,
        subject: Sequence[int] | np.ndarray,
        rule: Sequence[str] | np.ndarray | str,
        event: Sequence[int] | np.ndarray | int,
        severity: Sequence[int] | np.ndarray | int,
        ts_us: Sequence[int] | np.ndarray,
        value: Sequence[float] | np.ndarray | float = np.nan,
        setpoint: Sequence[float] | np.ndarray | float = np.nan,
        eta_s: Sequence[float] | np.ndarray | float = np.nan,
    ) -> FindingBatch:
        """Build from sequences or scalars (broadcast to the subject column's length)."""
        subject_a = np.asarray(subject, dtype=np.int32).reshape(-1)
        n = subject_a.shape[0]

        def col(x, dtype):
            a = np.asarray(x, dtype=dtype)
            return np.full(n, a, dtype=dtype) if a.ndim == 0 else a.reshape(-1)

        return cls(
            subject_kind=col(subject_kind, np.int8),
            subject=subject_a,
            rule=col(rule, RULE_DTYPE),
            event=col(event, np.int8),
            severity=col(severity, np.int8),
            ts_us=col(ts_us, np.int64),
            value=col(value, np.float64),
            setpoint=col(setpoint, np.float64),
            eta_s=col(eta_s, np.float64),
        )

    @classmethod
    def empty(cls) -> FindingBatch:
        return cls.build(subject_kind=[], subject=[], rule=[], event=[], severity=[], ts_us=[])

    @classmethod
    def concat(cls, batches: Sequence[FindingBatch]) -> FindingBatch:
        return _concat(cls, batches)

    def take(self, index: np.ndarray | slice) -> FindingBatch:
        """Rows selected by an index array, boolean mask or slice."""
        return _take(self, index)

    def rows(self) -> list[Finding]:
        """Per-finding objects, for the (rare) consumers that work one finding at a time."""
        return [
            Finding(
                subject_kind=SubjectKind(int(self.subject_kind[i])),
                subject=int(self.subject[i]),
                rule=str(self.rule[i]),
                event=FindingEvent(int(self.event[i])),
                severity=Severity(int(self.severity[i])),
                ts_us=int(self.ts_us[i]),
                value=float(self.value[i]),
                setpoint=float(self.setpoint[i]),
                eta_s=float(self.eta_s[i]),
            )
            for i in range(len(self))
        ]


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One row of a :class:`FindingBatch`."""

    subject_kind: SubjectKind
    subject: int
    rule: str
    event: FindingEvent
    severity: Severity
    ts_us: int
    value: float
    setpoint: float
    eta_s: float = float("nan")  # seconds until the predicted crossing (``ttt``)
