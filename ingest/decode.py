"""Messages → validated columns, dead letters and gateway status, for a whole burst at once.

Per message there is a topic look-up (cached), one payload decode and one dictionary look-up per
sensor id; every check after that (registry, gateway ownership, time, range) is a numpy mask over
all the readings of the burst.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from domain.codec import NO_TS, CodecError, FastDecodeError, Reading, decode_fast, parse_batch, parse_status
from domain.messages import GatewayStatus, RawMessage, ReadingBatch, Rejected, RejectReason
from domain.quality import Quality
from domain.registry import RegistrySnapshot
from domain.topics import Channel, TopicError, parse_topic

_US_PER_MS = 1000
_US_PER_S = 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_payload_bytes: int
    dead_letter_payload_bytes: int
    clock_skew_tolerance_s: float


@dataclasses.dataclass(slots=True)
class DecodedChunk:
    """What one burst of messages became. Every message's ``mid`` is in ``mids``: all of them are
    acknowledged once this chunk (readings, dead letters and statuses) is committed."""

    readings: ReadingBatch
    rejected: list[Rejected]
    statuses: list[GatewayStatus]
    gateway_seen_id: np.ndarray  # int32 gateway ids that sent anything
    gateway_seen_us: np.ndarray  # int64 latest receive time per id
    mids: list[int]
    messages: int


class _Layout:
    """The sensor ids of a gateway's last message and their registry indices.

    Gateways send the same sensors in the same order message after message; comparing the id list
    with the last one (a C-level list comparison) saves a dictionary look-up per reading."""

    __slots__ = ("ids", "idx", "repeats")

    def __init__(self) -> None:
        self.ids: list[str] | None = None
        self.idx: list[int] = []
        self.repeats = False


@dataclasses.dataclass(frozen=True, slots=True)
class _Route:
    enterprise: str
    gateway: str
    channel: Channel
    gateway_id: int  # 0 when the gateway is not registered
    sensor_codes: dict[str, int]
    layout: _Layout = dataclasses.field(default_factory=_Layout)


class Decoder:
    """Decodes bursts against one registry snapshot; replace the snapshot with :meth:`use`."""

    def __init__(self, registry: RegistrySnapshot, limits: DecodeLimits) -> None:
        self._limits = limits
        self._routes: dict[str, _Route | TopicError] = {}
        self.registry = registry
        self.use(registry)

    def use(self, registry: RegistrySnapshot) -> None:
        self.registry = registry
        self._routes.clear()

    def _route(self, topic: str) -> _Route | TopicError:
        route = self._routes.get(topic)
        if route is None:
            try:
                t = parse_topic(topic)
            except TopicError as exc:
                route = exc
            else:
                reg = self.registry
                route = _Route(
                    t.enterprise,
                    t.gateway,
                    t.channel,
                    reg.gateway_ids.get((t.enterprise, t.gateway), 0),
                    reg.sensor_ids.get(t.enterprise, {}),
                )
            if len(self._routes) > 100_000:  # bound the cache against topic spraying
                self._routes.clear()
            self._routes[topic] = route
        return route

    def decode(self, messages: Sequence[RawMessage]) -> DecodedChunk:
        limits = self._limits
        keep = limits.dead_letter_payload_bytes
        rejected: list[Rejected] = []
        statuses: list[GatewayStatus] = []
        mids = [m.mid for m in messages]
        seen: dict[int, int] = {}
        burst = _Burst()

        def reject(m: RawMessage, reason: RejectReason, detail: str, route: _Route | None = None, **extra) -> None:
            rejected.append(
                Rejected(
                    reason=reason,
                    detail=detail,
                    topic=m.topic[:512],
                    payload=m.payload[:keep],
                    received_us=m.received_us,
                    enterprise=route.enterprise if route else None,
                    gateway=route.gateway if route else None,
                    **extra,
                )
            )

        for m in messages:
            route = self._route(m.topic)
            if isinstance(route, TopicError):
                reject(m, RejectReason.BAD_TOPIC, str(route))
                continue
            if not route.gateway_id:
                reject(m, RejectReason.UNKNOWN_GATEWAY,
                       f"gateway {route.gateway!r} of enterprise {route.enterprise!r} is not registered", route)
                continue
            gid = route.gateway_id
            if seen.get(gid, 0) < m.received_us:
                seen[gid] = m.received_us
            if len(m.payload) > limits.max_payload_bytes:
                reject(m, RejectReason.OVERSIZE,
                       f"payload of {len(m.payload)} bytes exceeds the limit of {limits.max_payload_bytes}", route)
                continue
            if route.channel is Channel.STATUS:
                try:
                    online = parse_status(m.payload)
                except CodecError as exc:
                    reject(m, exc.reason, exc.detail, route)
                    continue
                statuses.append(GatewayStatus(route.enterprise, route.gateway, online, m.received_us))
                continue
            if route.channel is not Channel.UP:
                reject(m, RejectReason.BAD_TOPIC, f"yujing does not accept messages on channel {route.channel.value!r}", route)
                continue
            try:
                batch = decode_fast(m.payload)
                readings, positions = batch.readings, None
            except FastDecodeError:
                # Something in it is wrong: salvage every valid reading, refuse the others.
                try:
                    decoded = parse_batch(m.payload)
                except CodecError as exc:
                    reject(m, exc.reason, exc.detail, route)
                    continue
                for bad in decoded.bad:
                    reject(m, bad.reason, bad.detail, route, sensor=bad.sensor, reading_index=bad.index)
                readings = [
                    Reading(s=sid, v=v, q=q, ts=t)
                    for sid, v, q, t in zip(decoded.sensor_ids, decoded.value.tolist(),
                                            decoded.quality.tolist(), decoded.ts_ms.tolist())
                ]
                positions = decoded.index
                batch = None
            if readings:
                burst.add(m, route, batch.ts if batch is not None else decoded.batch_ts_ms, readings, positions)

        readings = self._validate(burst, reject) if burst.messages else ReadingBatch.empty()
        seen_ids = np.fromiter(seen.keys(), np.int32, len(seen))
        seen_us = np.fromiter(seen.values(), np.int64, len(seen))
        return DecodedChunk(readings, rejected, statuses, seen_ids, seen_us, mids, len(messages))

    def _validate(self, burst: _Burst, reject) -> ReadingBatch:
        """Columns for the whole burst at once, then every check as a mask."""
        table = self.registry.table
        tolerance_us = int(self._limits.clock_skew_tolerance_s * _US_PER_S)
        flat = burst.readings
        n = len(flat)
        counts = np.asarray(burst.counts, dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        msg_no = np.repeat(np.arange(counts.shape[0]), counts)
        idx = np.array(burst.idx, dtype=np.int32).reshape(n)
        value = np.array([r.v for r in flat], dtype=np.float64).reshape(n)
        quality = np.array([r.q for r in flat], dtype=np.int16).reshape(n)
        ts_ms = np.array([r.ts for r in flat], dtype=np.int64).reshape(n)
        absent = ts_ms == NO_TS
        ts_ms[absent] = np.repeat(np.asarray(burst.batch_ts_ms, dtype=np.int64), counts)[absent]
        position = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
        for k, pos in burst.positions.items():
            position[starts[k]:starts[k] + counts[k]] = pos
        msg_received = np.asarray(burst.received_us, dtype=np.int64)
        received = msg_received[msg_no]

        unknown = idx < 0
        safe = np.where(unknown, 0, idx)
        wrong_gateway = ~unknown & (table.gateway[safe] != np.asarray(burst.gateway_ids, dtype=np.int32)[msg_no])
        inactive = ~unknown & ~wrong_gateway & ~table.active[safe]
        not_finite = ~np.isfinite(value)  # overflowing literals such as 1e999

        # Time: a message cannot arrive before it was sent, so a batch ``ts`` (its send time) ahead
        # of the receive time by more than the tolerance is a gateway clock running fast: every
        # reading of the message is shifted back by the offset. A batch ts in the past is kept as
        # it is: a message delayed in the broker (an outage backlog) or a gateway's store-and-
        # forward looks exactly like a slow clock, and real times must not be thrown away. A
        # reading still in the future after that is put at receive time. Both keep the device time.
        device_us = ts_ms * _US_PER_MS
        offset = (msg_received - np.asarray(burst.batch_ts_ms, dtype=np.int64) * _US_PER_MS)[msg_no]
        skewed = offset < -tolerance_us
        ts_us = np.where(skewed, device_us + offset, device_us)
        future = ts_us > received + tolerance_us
        ts_us = np.where(future, received, ts_us)
        corrected = skewed | future
        too_old = ~unknown & (ts_us < received - (table.retention_s[safe] * _US_PER_S).astype(np.int64))

        duplicate = np.zeros(n, dtype=bool)
        for k in burst.maybe_duplicates:
            rs = burst.lists[k]
            duplicate[starts[k] + _duplicates([r.s for r in rs], ts_ms[starts[k]:starts[k] + counts[k]])] = True

        bad = not_finite | unknown | wrong_gateway | inactive | too_old | duplicate
        if bad.any():
            for i in np.flatnonzero(bad):
                k = msg_no[i]
                m, route = burst.messages[k], burst.routes[k]
                sensor = flat[i].s
                where = f"reading {int(position[i])}: sensor {sensor!r}"
                if not_finite[i]:
                    reason, detail = RejectReason.NOT_A_NUMBER, f"{where} has value {value[i]!r}, not a finite number"
                elif unknown[i]:
                    reason, detail = RejectReason.UNKNOWN_SENSOR, f"{where} is not registered in enterprise {route.enterprise!r}"
                elif wrong_gateway[i]:
                    owner = self.registry.gateways.get(int(table.gateway[idx[i]]))
                    reason, detail = RejectReason.WRONG_GATEWAY, (
                        f"{where} belongs to gateway {owner.code if owner else '?'!r}, not {route.gateway!r}")
                elif inactive[i]:
                    reason, detail = RejectReason.INACTIVE_SENSOR, f"{where} is deactivated in the registry"
                elif duplicate[i]:
                    reason, detail = RejectReason.DUPLICATE_IN_MESSAGE, f"{where} appears twice with the same time in this message"
                else:
                    reason, detail = RejectReason.TOO_OLD, (
                        f"{where} has time {int(ts_ms[i])} ms, older than its retention window")
                reject(m, reason, detail, route, sensor=sensor, reading_index=int(position[i]))
            good = ~bad
            idx, ts_us, value, quality, received = idx[good], ts_us[good], value[good], quality[good], received[good]
            corrected, device_us, safe = corrected[good], device_us[good], safe[good]

        flags = np.where(value > table.range_max[safe], np.int16(Quality.OVER_RANGE), np.int16(0))
        flags |= np.where(value < table.range_min[safe], np.int16(Quality.UNDER_RANGE), np.int16(0))
        flags |= np.where(corrected, np.int16(Quality.CLOCK_CORRECTED), np.int16(0))
        return ReadingBatch(
            sensor=idx,
            ts_us=ts_us,
            value=value,
            quality=(quality | flags).astype(np.int16),
            device_ts_us=np.where(corrected, device_us, 0),
            received_us=received,
        )


class _Burst:
    """The decoded readings of a burst's messages, gathered for one columnar pass."""

    __slots__ = ("messages", "routes", "idx", "gateway_ids", "received_us", "batch_ts_ms", "lists",
                 "readings", "counts", "positions", "maybe_duplicates")

    def __init__(self) -> None:
        self.messages: list[RawMessage] = []
        self.routes: list[_Route] = []
        self.idx: list[int] = []  # registry index of every reading (-1: unknown)
        self.gateway_ids: list[int] = []
        self.received_us: list[int] = []
        self.batch_ts_ms: list[int] = []
        self.lists: list[list[Reading]] = []
        self.readings: list[Reading] = []
        self.counts: list[int] = []
        self.positions: dict[int, np.ndarray] = {}  # salvaged messages: original positions
        self.maybe_duplicates: list[int] = []

    def add(self, m: RawMessage, route: _Route, batch_ts_ms: int, readings: list[Reading],
            positions: np.ndarray | None) -> None:
        k = len(self.messages)
        n = len(readings)
        ids = [r.s for r in readings]
        layout = route.layout
        if ids != layout.ids:
            codes = route.sensor_codes
            layout.ids = ids
            layout.idx = [codes.get(s, -1) for s in ids]
            layout.repeats = n > 1 and len(set(ids)) < n
        self.idx.extend(layout.idx)
        self.messages.append(m)
        self.routes.append(route)
        self.gateway_ids.append(route.gateway_id)
        self.received_us.append(m.received_us)
        self.batch_ts_ms.append(batch_ts_ms)
        self.lists.append(readings)
        self.readings.extend(readings)
        self.counts.append(n)
        if positions is not None:
            self.positions[k] = positions
        if layout.repeats:
            self.maybe_duplicates.append(k)


def _duplicates(ids: list[str], ts_ms: np.ndarray) -> np.ndarray:
    """Positions (within the message) of readings repeating an earlier (sensor, time)."""
    seen: set[tuple[str, int]] = set()
    dup = []
    for i, key in enumerate(zip(ids, ts_ms.tolist())):
        if key in seen:
            dup.append(i)
        else:
            seen.add(key)
    return np.asarray(dup, dtype=np.int64)
