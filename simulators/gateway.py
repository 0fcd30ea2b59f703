"""Gateways that behave like real ones: the emitter turns a fleet and a time into MQTT messages.

:meth:`Emitter.step` is pure apart from the emitter's own seeded state: it takes "now" (epoch
seconds, simulated) and returns the events due by then, in order — payloads to publish and status
changes (``offline`` when a link dies, which the publisher turns into an unclean disconnect so the
broker publishes the Last Will; ``online`` when it comes back). Readings are timestamped at their
scheduled scan time, never at the time ``step`` happens to run, and every per-scan random draw
(jitter, noise, duplicates, malformed) is a hash of (gateway or sensor key, counter), so a replay
gives the same bytes however the steps are paced; only outage edges fall on step times. The
emitter's own ``seed`` draws the per-gateway clock skews.

Misbehaviours (each per enterprise, :class:`simulators.fleet.GatewayBehaviour`): jittered scan
periods, device-clock skew (some clocks far off), batching up to ``max_batch`` readings, link
outages with store-and-forward of the backlog (per-reading ``ts``, bounded, oldest dropped and
counted), duplicate sends, calibration sessions (quality CALIBRATING, value = 标校 gas), and a
share of malformed payloads labelled with the reason ingest should give.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from domain.quality import Quality
from simulators import signals as sg
from simulators.encoder import MALFORMED_KINDS, encode_payloads, malform
from simulators.fleet import Fleet

_CALIBRATION_SALT = np.uint64(0xCA1B)
_JITTER_SALT, _DUP_SALT, _BAD_SALT, _KIND_SALT = (np.uint64(x) for x in (0x7177, 0xD0B1, 0xBAD0, 0xB1D5))
_OUT_START_SALT, _OUT_LEN_SALT = np.uint64(0x0A7A), np.uint64(0x0A7B)
_CHUNKS = 1 << 16  # counter space per scan for message-level draws


@dataclasses.dataclass(frozen=True, slots=True)
class OutMessage:
    """One ``up`` payload with the readings it carries (ground truth for tests and drills).

    sensor: int32[k] fleet sensor index; ts_ms: int64[k] device time as sent; value: float64[k];
    quality: int16[k]. ``sort`` is live | backlog | duplicate | malformed.
    """

    gateway: int
    topic: str
    payload: bytes
    batch_ts_ms: int
    sort: str
    sensor: np.ndarray
    ts_ms: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    malformed: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StatusChange:
    gateway: int
    topic: str
    online: bool
    clean: bool  # False: the link died without DISCONNECT, so the broker sends the Last Will


Event = OutMessage | StatusChange


class Incident(Protocol):
    """What the emitter needs of a scenario (simulators.scenarios implements it)."""

    def modify_clean(self, idx: np.ndarray, t_s: np.ndarray, clean: np.ndarray) -> None: ...

    def modify_final(self, idx: np.ndarray, t_s: np.ndarray, value: np.ndarray, quality: np.ndarray) -> None: ...

    def dead_gateways(self) -> dict[int, float]: ...


@dataclasses.dataclass(slots=True)
class EmitterStats:
    scans: int = 0
    messages: int = 0
    readings: int = 0
    duplicates: int = 0
    malformed: int = 0
    backlog_messages: int = 0
    backlog_dropped: int = 0
    outages: int = 0


class Emitter:
    """Steps every gateway of a fleet. Not thread-safe: one owner calls :meth:`step`."""

    def __init__(self, fleet: Fleet, start_s: float, seed: int, incidents: list[Incident] | None = None) -> None:
        self.fleet = fleet
        self.rng = np.random.default_rng([seed, 0x6A7E])
        self.incidents: list[Incident] = list(incidents or [])
        self.stats = EmitterStats()
        n_g = fleet.n_gateways
        beh = [fleet.enterprises[e].behaviour for e, _ in fleet.gateways]
        self._beh = beh
        col = lambda f: np.array([f(b) for b in beh], dtype=np.float64)  # noqa: E731
        self.interval_s = fleet.gw_interval_s.astype(np.float64)
        self.jitter = col(lambda b: b.jitter_share)
        lo, hi = col(lambda b: b.clock_skew_s[0]), col(lambda b: b.clock_skew_s[1])
        self.skew_s = lo + (hi - lo) * self.rng.random(n_g)  # fixed per gateway: drawn once, in order
        bad = self.rng.random(n_g) < col(lambda b: b.bad_clock_share)
        self.skew_s[bad] = np.where(self.rng.random(int(bad.sum())) < 0.5, -1.0, 1.0) * col(lambda b: b.bad_clock_offset_s)[bad]
        self.dup_share = col(lambda b: b.duplicate_share)
        self.mal_share = col(lambda b: b.malformed_share)
        self.outage_rate = col(lambda b: b.outages_per_day) / sg.DAY_S
        # first scan somewhere in the first interval, so gateways do not publish in lockstep
        self.next_due = start_s + self.interval_s * sg.hash_uniform(fleet.gw_key, np.zeros(n_g, dtype=np.int64))
        self.scan_no = np.zeros(n_g, dtype=np.int64)
        self.down = np.zeros(n_g, dtype=bool)
        self.gone = np.zeros(n_g, dtype=bool)
        self.outage_start = np.full(n_g, np.inf)
        self.outage_end = np.full(n_g, np.inf)
        self.outage_no = np.zeros(n_g, dtype=np.int64)
        for g in np.flatnonzero(self.outage_rate > 0):
            self._schedule_outage(int(g), start_s)
        self._backlog: dict[int, list[tuple[np.ndarray, ...]]] = {}
        ent_of_sensor = fleet.gw_enterprise[fleet.sensor_gateway]
        every = np.array([e.behaviour.calibration_every_h * 3600.0 for e in fleet.enterprises])[ent_of_sensor]
        self.cal_every_s = np.where(np.isfinite(fleet.calibration_value), every, 0.0)
        self.cal_s = np.array([e.behaviour.calibration_s for e in fleet.enterprises])[ent_of_sensor]

    # ---- public ---------------------------------------------------------------------------------
    def add_incident(self, incident: Incident) -> None:
        self.incidents.append(incident)

    def remove_incident(self, incident: Incident) -> None:
        """End an incident; a gateway it killed comes back (``online``) at the next step."""
        self.incidents.remove(incident)

    def step(self, now_s: float) -> list[Event]:
        """Every event due at or before ``now_s`` (epoch seconds), in order."""
        events: list[Event] = []
        self._transitions(now_s, events)
        while True:
            due = np.flatnonzero((self.next_due <= now_s) & ~self.gone)
            if due.size == 0:
                break
            self._scan(due, self.next_due[due].copy(), events)
            u = sg.hash_uniform(self.fleet.gw_key[due] ^ _JITTER_SALT, self.scan_no[due])
            jit = (2.0 * u - 1.0) * self.jitter[due]
            self.next_due[due] += self.interval_s[due] * (1.0 + jit)
            self.scan_no[due] += 1
        return events

    def next_event_s(self) -> float:
        """Earliest time a scan is due (for sleeping until then)."""
        alive = ~self.gone
        return float(self.next_due[alive].min()) if alive.any() else float("inf")

    # ---- outages, dead gateways ------------------------------------------------------------------
    def _schedule_outage(self, g: int, after_s: float) -> None:
        beh = self._beh[g]
        k = np.array([self.outage_no[g]])
        key = self.fleet.gw_key[g]
        u1 = float(sg.hash_uniform(key ^ _OUT_START_SALT, k)[0])
        u2 = float(sg.hash_uniform(key ^ _OUT_LEN_SALT, k)[0])
        self.outage_no[g] += 1
        self.outage_start[g] = after_s - np.log1p(-u1) / self.outage_rate[g]
        lo, hi = beh.outage_s
        self.outage_end[g] = self.outage_start[g] + lo + (hi - lo) * u2

    def _transitions(self, now_s: float, events: list[Event]) -> None:
        f = self.fleet
        dead: set[int] = set()
        for inc in self.incidents:
            for g, at in inc.dead_gateways().items():
                if now_s >= at:
                    dead.add(g)
                if now_s >= at and not self.gone[g]:
                    self.gone[g] = True
                    self._backlog.pop(g, None)
                    if not self.down[g]:
                        events.append(StatusChange(g, f.status_topics[g], False, False))
                    self.down[g] = True
        for g in np.flatnonzero(self.gone).tolist():
            if g not in dead:  # its incident ended: the gateway is repaired
                self.gone[g] = self.down[g] = False
                self.next_due[g] = now_s
                events.append(StatusChange(g, f.status_topics[g], True, True))
        for g in np.flatnonzero(~self.down & ~self.gone & (self.outage_start <= now_s)).tolist():
            self.down[g] = True
            self.stats.outages += 1
            events.append(StatusChange(g, f.status_topics[g], False, False))
        for g in np.flatnonzero(self.down & ~self.gone & (self.outage_end <= now_s)).tolist():
            self.down[g] = False
            events.append(StatusChange(g, f.status_topics[g], True, True))
            self._flush_backlog(g, now_s, events)
            self._schedule_outage(g, float(self.outage_end[g]))

    def _flush_backlog(self, g: int, now_s: float, events: list[Event]) -> None:
        parts = self._backlog.pop(g, [])
        if not parts:
            return
        idx, ts_ms, val, q = (np.concatenate(c) for c in zip(*parts, strict=True))
        per = self._beh[g].backlog_batch
        n = idx.shape[0]
        bounds = np.arange(0, n + per, per).clip(max=n)
        bounds = np.unique(bounds)
        m = bounds.shape[0] - 1
        batch_ts = np.full(m, int(round((now_s + self.skew_s[g]) * 1000.0)), dtype=np.int64)
        prefixes = self.fleet.sensor_prefix[idx].tolist()
        payloads = encode_payloads(batch_ts, bounds, prefixes, val, q, ts_ms)
        topic = self.fleet.up_topics[g]
        for k, p in enumerate(payloads):
            a, b = bounds[k], bounds[k + 1]
            events.append(OutMessage(g, topic, p, int(batch_ts[k]), "backlog", idx[a:b], ts_ms[a:b], val[a:b], q[a:b]))
        self.stats.backlog_messages += m
        self.stats.messages += m
        self.stats.readings += n

    def _to_backlog(self, g: int, idx, ts_ms, val, q) -> None:
        parts = self._backlog.setdefault(g, [])
        parts.append((idx, ts_ms, val, q))
        limit = self._beh[g].backlog_max_readings
        total = sum(p[0].shape[0] for p in parts)
        while total > limit and parts:
            over = total - limit
            first = parts[0]
            if first[0].shape[0] <= over:
                parts.pop(0)
                self.stats.backlog_dropped += first[0].shape[0]
                total -= first[0].shape[0]
            else:
                parts[0] = tuple(c[over:] for c in first)
                self.stats.backlog_dropped += over
                total -= over

    # ---- one scan round of the due gateways -------------------------------------------------------
    def _scan(self, due: np.ndarray, t_scan: np.ndarray, events: list[Event]) -> None:
        f = self.fleet
        counts = f.gw_count[due]
        total = int(counts.sum())
        first = np.cumsum(counts) - counts
        idx = np.arange(total, dtype=np.int64) - np.repeat(first, counts) + np.repeat(f.gw_start[due], counts)
        owner = np.repeat(np.arange(due.size), counts)  # position in ``due``
        scan = np.repeat(self.scan_no[due], counts)
        keep = (scan % f.sensor_period_scans[idx]) == f.sensor_phase[idx]
        idx, owner = idx[keep], owner[keep]
        t = t_scan[owner]
        clean = sg.clean_values(f.signal, idx, t)
        for inc in self.incidents:
            inc.modify_clean(idx, t, clean)
        val = sg.finish(f.signal, idx, clean, t)
        q = np.zeros(idx.shape[0], dtype=np.int16)
        self._calibrate(idx, t, val, q)
        for inc in self.incidents:
            inc.modify_final(idx, t, val, q)
        g_of = due[owner]
        ts_ms = np.round((t + self.skew_s[g_of]) * 1000.0).astype(np.int64)
        self.stats.scans += due.size
        kept = np.bincount(owner, minlength=due.size)
        starts = np.cumsum(kept) - kept
        down = self.down[due]
        if down.any():
            for k in np.flatnonzero(down & (kept > 0)).tolist():
                a, b = starts[k], starts[k] + kept[k]
                self._to_backlog(int(due[k]), idx[a:b], ts_ms[a:b], val[a:b], q[a:b])
            live = ~down[owner]
            idx, ts_ms, val, q, owner = idx[live], ts_ms[live], val[live], q[live], owner[live]
            kept = np.where(down, 0, kept)
            starts = np.cumsum(kept) - kept
        # bounds: each live gateway's readings cut into messages of at most max_batch
        bounds = [0]
        msg_gw: list[int] = []
        msg_ctr: list[int] = []
        scan_no = self.scan_no[due].tolist()
        for k in np.flatnonzero(kept > 0).tolist():
            g = int(due[k])
            mb = self._beh[g].max_batch
            a, n = int(starts[k]), int(kept[k])
            for c in range(0, n, mb):
                bounds.append(a + min(c + mb, n))
                msg_gw.append(g)
                msg_ctr.append(scan_no[k] * _CHUNKS + c // mb)
        if not msg_gw:
            return
        b_arr = np.asarray(bounds, dtype=np.int64)
        batch_ts = ts_ms[b_arr[:-1]]
        prefixes = f.sensor_prefix[idx].tolist()
        payloads = encode_payloads(batch_ts, b_arr, prefixes, val, q, None)
        m = len(payloads)
        gw = np.asarray(msg_gw)
        ctr = np.asarray(msg_ctr, dtype=np.int64)
        keys = f.gw_key[gw]
        dup = sg.hash_uniform(keys ^ _DUP_SALT, ctr) < self.dup_share[gw]
        bad = sg.hash_uniform(keys ^ _BAD_SALT, ctr) < self.mal_share[gw]
        kind_u = sg.hash_uniform(keys ^ _KIND_SALT, ctr)
        self.stats.messages += m
        self.stats.readings += idx.shape[0]
        topics = f.up_topics
        for k, p in enumerate(payloads):
            g = msg_gw[k]
            a, b = bounds[k], bounds[k + 1]
            cols = (idx[a:b], ts_ms[a:b], val[a:b], q[a:b])
            if bad[k]:
                kind = MALFORMED_KINDS[int(kind_u[k] * len(MALFORMED_KINDS))]
                events.append(OutMessage(g, topics[g], malform(p, kind), int(batch_ts[k]), "malformed", *cols, malformed=kind))
                self.stats.malformed += 1
                continue
            events.append(OutMessage(g, topics[g], p, int(batch_ts[k]), "live", *cols))
            if dup[k]:
                events.append(OutMessage(g, topics[g], p, int(batch_ts[k]), "duplicate", *cols))
                self.stats.duplicates += 1

    def _calibrate(self, idx: np.ndarray, t: np.ndarray, val: np.ndarray, q: np.ndarray) -> None:
        every = self.cal_every_s[idx]
        on = every > 0
        if not on.any():
            return
        dur = self.cal_s[idx]
        safe_every = np.where(on, every, 1.0)
        slot = np.floor(t / safe_every)
        u = sg.hash_uniform(self.fleet.signal.key[idx] ^ _CALIBRATION_SALT, slot.astype(np.int64))
        start = slot * safe_every + u * np.maximum(safe_every - dur, 0.0)
        active = on & (t >= start) & (t < start + dur)
        if active.any():
            val[active] = self.fleet.calibration_value[idx[active]]
            q[active] |= np.int16(Quality.CALIBRATING)
