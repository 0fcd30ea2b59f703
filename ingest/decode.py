"""Messages → validated columns, dead letters and gateway status, for a whole burst at once.

Per message there is a topic look-up (cached), one payload decode and one dictionary look-up per
sensor id; every check after that (registry, gateway ownership, time, range) is a numpy mask over
all the readings of the burst.

Decoding is total: whatever a message holds, it becomes readings and at most one dead letter (the
whole message, or the readings it had to refuse, listed and counted). A defect in the decoder is
isolated to the message that triggers it (``undecodable``), never raised to the intake loop.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from domain.codec import NO_TS, CodecError, FastDecodeError, Reading, decode_fast, parse_status, salvage_batch
from domain.messages import (
    MAX_LISTED_READINGS, GatewayStatus, RawMessage, ReadingBatch, RefusedReading, Rejected, RejectReason,
)
from domain.quality import Quality
from domain.registry import RegistrySnapshot
from domain.topics import Channel, TopicError, parse_topic
from ingest.quota import GatewayQuota
from ingest.refusals import Refusals, merge_refusals, repeats

log = logging.getLogger(__name__)

_US_PER_MS = 1000
_US_PER_S = 1_000_000
MAX_BURST_BYTES = 8 * 1024 * 1024
"""Payload bytes validated in one columnar pass: bounds the decoder's temporaries, whatever the
number of messages taken at once."""

# Reading-level reasons found by the columnar checks, in order of precedence.
_CHECKS = (
    RejectReason.NOT_A_NUMBER, RejectReason.UNKNOWN_SENSOR, RejectReason.WRONG_GATEWAY,
    RejectReason.INACTIVE_SENSOR, RejectReason.DUPLICATE_IN_MESSAGE, RejectReason.CONFLICTING_VALUE,
    RejectReason.TIME_COLLISION, RejectReason.TOO_OLD,
)


@dataclasses.dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_payload_bytes: int
    dead_letter_payload_bytes: int
    clock_skew_tolerance_s: float
    max_burst_bytes: int = MAX_BURST_BYTES
    gateway_messages_per_minute: int = 0  # per-gateway quotas (0: none); see ingest/quota.py
    gateway_bytes_per_minute: int = 0
    quota_burst_minutes: float = 60.0


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
        self._quota = GatewayQuota(
            limits.gateway_messages_per_minute or 1 << 62, limits.gateway_bytes_per_minute or 1 << 62,
            limits.quota_burst_minutes,
        ) if limits.gateway_messages_per_minute or limits.gateway_bytes_per_minute else None
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
        """Readings, dead letters and statuses of a burst; never raises for what a message holds."""
        limits = self._limits
        rejected: dict[int, Rejected] = {}  # by the message's position in the burst
        statuses: list[GatewayStatus] = []
        refusals: dict[int, Refusals] = {}
        seen: dict[int, int] = {}
        parts: list[ReadingBatch] = []
        burst, burst_bytes = _Burst(), 0
        for i, m in enumerate(messages):
            before = len(burst.messages)
            try:
                whole = self._take(i, m, burst, statuses, refusals, seen)
            except Exception as exc:  # one message: a decoder defect must not end the intake
                refusals.pop(i, None)
                whole = self._undecodable(m, exc)
            if whole is not None:
                rejected[i] = whole
            elif len(burst.messages) > before:
                burst_bytes += len(m.payload)
                if burst_bytes >= limits.max_burst_bytes:
                    parts.append(self._validate_isolated(burst, refusals, rejected))
                    burst, burst_bytes = _Burst(), 0
        if burst.messages:
            parts.append(self._validate_isolated(burst, refusals, rejected))
        for i, r in refusals.items():
            rejected[i] = self._partly_refused(messages[i], r)
        seen_ids = np.fromiter(seen.keys(), np.int32, len(seen))
        seen_us = np.fromiter(seen.values(), np.int64, len(seen))
        readings = ReadingBatch.concat(parts) if parts else ReadingBatch.empty()
        return DecodedChunk(readings, [rejected[i] for i in sorted(rejected)], statuses, seen_ids, seen_us,
                            [m.mid for m in messages], len(messages))

    def _rejected(self, m: RawMessage, reason: RejectReason, detail: str, route: _Route | None = None) -> Rejected:
        return Rejected(
            reason=reason, detail=detail, topic=m.topic[:512], payload=m.payload[:self._limits.dead_letter_payload_bytes],
            received_us=m.received_us, enterprise=route.enterprise if route else None,
            gateway=route.gateway if route else None,
        )

    def _undecodable(self, m: RawMessage, exc: Exception) -> Rejected:
        log.exception("decoder failed on a message; kept as a dead letter", extra={"topic": m.topic[:200]})
        route = self._routes.get(m.topic)
        return self._rejected(m, RejectReason.UNDECODABLE, f"the decoder failed on this message "
                              f"({type(exc).__name__}: {str(exc)[:160]})", route if isinstance(route, _Route) else None)

    def _partly_refused(self, m: RawMessage, r: Refusals) -> Rejected:
        route = self._routes.get(m.topic)
        route = route if isinstance(route, _Route) else None
        return Rejected.of_readings(
            m.topic[:512], m.payload[:self._limits.dead_letter_payload_bytes], m.received_us,
            route.enterprise if route else None, route.gateway if route else None,
            r.listed, r.counts, r.total, r.first_detail,
        )

    def _take(self, i: int, m: RawMessage, burst: _Burst, statuses: list[GatewayStatus],
              refusals: dict[int, Refusals], seen: dict[int, int]) -> Rejected | None:
        """Route and decode message ``i``: returns its dead letter when it is refused whole; else
        its refused readings go to ``refusals[i]``, its status to ``statuses``, the rest into ``burst``."""
        limits = self._limits
        route = self._route(m.topic)
        if isinstance(route, TopicError):
            return self._rejected(m, RejectReason.BAD_TOPIC, str(route))

        if not route.gateway_id:
            return self._rejected(m, RejectReason.UNKNOWN_GATEWAY,
                                  f"gateway {route.gateway!r} of enterprise {route.enterprise!r} is not registered", route)
        gid = route.gateway_id
        if seen.get(gid, 0) < m.received_us:
            seen[gid] = m.received_us
        if self._quota is not None:
            over = self._quota.admit(gid, len(m.payload), m.received_us)
            if over is not None:
                return self._rejected(m, RejectReason.OVER_QUOTA, over, route)
        if len(m.payload) > limits.max_payload_bytes:
            return self._rejected(m, RejectReason.OVERSIZE,
                                  f"payload of {len(m.payload)} bytes exceeds the limit of {limits.max_payload_bytes}", route)
        if route.channel is Channel.STATUS:
            try:
                online = parse_status(m.payload)
            except CodecError as exc:
                return self._rejected(m, exc.reason, exc.detail, route)

            statuses.append(GatewayStatus(route.enterprise, route.gateway, online, m.received_us))
            return None
        if route.channel is not Channel.UP:
            return self._rejected(
                m, RejectReason.BAD_TOPIC, f"yujing does not accept messages on channel {route.channel.value!r}", route)
        try:
            batch = decode_fast(m.payload)
        except FastDecodeError:
            # Something in it is wrong: salvage every valid reading, refuse the others.
            try:
                decoded = salvage_batch(m.payload)
            except CodecError as exc:
                return self._rejected(m, exc.reason, exc.detail, route)
            total = len(decoded) + len(decoded.bad)
            if decoded.bad:
                r = refusals[i] = Refusals(total)
                for bad in decoded.bad:
                    r.add(bad.index, bad.sensor, bad.reason, bad.detail)
            if not len(decoded):
                return None
            readings = [
                Reading(s=sid, v=v, q=q, ts=t)
                for sid, v, q, t in zip(decoded.sensor_ids, decoded.value.tolist(),
                                        decoded.quality.tolist(), decoded.ts_ms.tolist())
            ]
            burst.add(i, m, route, decoded.batch_ts_ms, readings, decoded.index, total)
            return None
        if not batch.readings:
            return None
        burst.add(i, m, route, batch.ts, batch.readings, None, len(batch.readings))
        return None

    def _validate_isolated(self, burst: _Burst, refusals: dict[int, Refusals], rejected: dict[int, Rejected]) -> ReadingBatch:
        """:meth:`_validate` over the burst; should it fail (a defect), message by message, so that
        only the message that triggers it becomes an ``undecodable`` dead letter."""
        try:
            return self._validate(burst, refusals)
        except Exception:  # one burst: retried per message below
            log.exception("columnar validation failed; retrying message by message")
        parts = []
        for k, m in enumerate(burst.messages):
            one = _Burst()
            one.add(burst.ordinals[k], m, burst.routes[k], burst.batch_ts_ms[k], burst.lists[k],
                    burst.positions.get(k), burst.totals[k])
            mine: dict[int, Refusals] = {}
            try:
                parts.append(self._validate(one, mine))
            except Exception as exc:  # one message
                refusals.pop(burst.ordinals[k], None)
                rejected[burst.ordinals[k]] = self._undecodable(m, exc)
                continue
            for i, r in mine.items():
                merge_refusals(refusals, i, r)
        return ReadingBatch.concat(parts)

    def _validate(self, burst: _Burst, refusals: dict[int, Refusals]) -> ReadingBatch:
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
        # forward looks exactly like a slow clock, and real times must not be thrown away. Readings
        # still in the future after that are shifted back together, by the newest one's excess over
        # the receive time, so they keep their spacing (and never collapse onto one instant). Both
        # corrections keep the device time.
        device_us = ts_ms * _US_PER_MS
        offset = (msg_received - np.asarray(burst.batch_ts_ms, dtype=np.int64) * _US_PER_MS)[msg_no]
        skewed = offset < -tolerance_us
        ts_us = np.where(skewed, device_us + offset, device_us)
        future = ts_us > received + tolerance_us
        if future.any():
            excess = np.zeros(counts.shape[0], dtype=np.int64)
            np.maximum.at(excess, msg_no[future], (ts_us - received)[future])
            ts_us = np.where(future, ts_us - excess[msg_no], ts_us)
        corrected = skewed | future
        too_old = ~unknown & (ts_us < received - (table.retention_s[safe] * _US_PER_S).astype(np.int64))

        bad = not_finite | unknown | wrong_gateway | inactive | too_old
        if burst.maybe_duplicates:  # only messages naming a sensor twice can repeat a reading
            duplicate, conflicting, collision = repeats(burst.maybe_duplicates, starts, counts, msg_no, idx, ts_us,
                                                        device_us, value, ~unknown & ~not_finite)
            bad |= duplicate | conflicting | collision
        else:
            duplicate = conflicting = collision = np.zeros(n, dtype=bool)
        if bad.any():
            checks = (not_finite, unknown, wrong_gateway, inactive, duplicate, conflicting, collision, too_old)
            position = np.arange(n, dtype=np.int64) - np.repeat(starts, counts)
            for k, pos in burst.positions.items():
                position[starts[k]:starts[k] + counts[k]] = pos
            reason_no = np.select(checks, np.arange(len(checks)), -1)
            self._refuse(burst, refusals, np.flatnonzero(bad), msg_no, reason_no, position, ts_ms, value, idx)
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

    def _refuse(self, burst: _Burst, refusals: dict[int, Refusals], bad: np.ndarray, msg_no: np.ndarray,
                reason_no: np.ndarray, position: np.ndarray, ts_ms: np.ndarray, value: np.ndarray,
                idx: np.ndarray) -> None:
        """Record the refused readings per message: each counted, the first few listed."""
        bad_msg = msg_no[bad]  # non-decreasing: a message's readings are contiguous
        for rows in np.split(bad, np.flatnonzero(np.diff(bad_msg)) + 1):
            k = int(msg_no[rows[0]])
            i = burst.ordinals[k]
            r = refusals.get(i)
            if r is None:
                r = refusals[i] = Refusals(burst.totals[k])
            for reason_k, c in enumerate(np.bincount(reason_no[rows], minlength=len(_CHECKS)).tolist()):
                if c:
                    r.counts[_CHECKS[reason_k]] = r.counts.get(_CHECKS[reason_k], 0) + c
            room = MAX_LISTED_READINGS - len(r.listed)
            for j in rows[:max(room, 1)].tolist():
                reason = _CHECKS[int(reason_no[j])]
                sensor = burst.readings[j].s
                if not r.first_detail:
                    r.first_detail = self._detail(reason, burst.routes[k], int(position[j]), sensor,
                                                  int(ts_ms[j]), float(value[j]), int(idx[j]))
                if room > 0:
                    r.listed.append(RefusedReading(int(position[j]), sensor, reason))

    def _detail(self, reason: RejectReason, route: _Route, position: int, sensor: str, ts_ms: int, value: float,
                idx: int) -> str:
        where = f"reading {position}: sensor {sensor!r}"
        if reason is RejectReason.NOT_A_NUMBER:
            return f"{where} has value {value!r}, not a finite number"
        if reason is RejectReason.UNKNOWN_SENSOR:
            return f"{where} is not registered in enterprise {route.enterprise!r}"
        if reason is RejectReason.WRONG_GATEWAY:
            owner = self.registry.gateways.get(int(self.registry.table.gateway[idx]))
            return f"{where} belongs to gateway {owner.code if owner else '?'!r}, not {route.gateway!r}"
        if reason is RejectReason.INACTIVE_SENSOR:
            return f"{where} is deactivated in the registry"
        if reason is RejectReason.DUPLICATE_IN_MESSAGE:
            return f"{where} appears twice with the same time and value in this message"
        if reason is RejectReason.CONFLICTING_VALUE:
            return f"{where} repeats an earlier reading's time in this message with another value ({value!r})"
        if reason is RejectReason.TIME_COLLISION:
            return f"{where} at {ts_ms} ms lands, once its clock is corrected, on the time of another reading"
        return f"{where} has time {ts_ms} ms, older than its retention window"


class _Burst:
    """The decoded readings of a burst's messages, gathered for one columnar pass."""

    __slots__ = ("messages", "ordinals", "totals", "routes", "idx", "gateway_ids", "received_us", "batch_ts_ms",
                 "lists", "readings", "counts", "positions", "maybe_duplicates")

    def __init__(self) -> None:
        self.messages: list[RawMessage] = []
        self.ordinals: list[int] = []  # each message's position in the decoded burst
        self.totals: list[int] = []  # readings in each message's payload (valid or not)
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

    def add(self, ordinal: int, m: RawMessage, route: _Route, batch_ts_ms: int, readings: list[Reading],
            positions: np.ndarray | None, total: int) -> None:
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
        self.ordinals.append(ordinal)
        self.totals.append(total)
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
