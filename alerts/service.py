"""The alerts service: findings in, graded alerts and notifications out — the alerts' order in one place.

    handle(findings), one transaction:
        intake ─▶ grade ─▶ lifecycle ─▶ spread   (Intake.fold: one incident per place and cause)
               ─▶ route into groups ─▶ save ─▶ journal                          (_commit)
    tick(), in order:
        mute       silences and maintenance windows now; release what an ended one held
        route      operator changes (acknowledge … resolve) that deserve a notification
        timers     shelving expiry, flapping end, persistence upgrade, escalation, auto-close
                   (Timers.fire; an escalation step is rendered by the dispatcher) ─▶ route ─▶ journal
        flush      due groups ─▶ mute (shelved, silenced, maintenance) ─▶ inhibit ─▶ render ─▶ outbox
        tell       changes the router does not tell (ack, assign, shelve, close) ─▶ MQTT outbox
        feed       journal ─▶ live feed; journal head ─▶ anchor
    deliverer: outbox ─▶ channel ─▶ delivered | retry with capped jittered backoff | failed

``handle`` returns once its transaction is committed; it never waits for a delivery. ``run()``
runs the ticker and the deliverer in one TaskGroup until cancelled. "Now" comes from the injected
clock (integer µs); tests drive :meth:`tick` and :meth:`deliver` with a fake one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
from collections.abc import Callable, Sequence

import asyncpg
import httpx

import journal
from alerts import records
from alerts.alert import Alert, Applied
from alerts.channels import Sender
from alerts.colours import Colour
from alerts.dispatch import Dispatcher
from alerts.escalation import Escalator
from alerts.feed import AlertFeed, JournalFollower
from alerts.grading import Grader
from alerts.intake import Intake
from alerts.outbox import Deliverer, woken_or_after
from alerts.policy import Policy
from alerts.records import groups as group_rows
from alerts.records.outbox import NewNotification
from alerts.silences import Muter, list_silences, maintenance_active
from alerts.timers import Timers
from alerts.updates import StateUpdates
from domain.clock import Clock
from domain.messages import FindingBatch
from domain.registry import RegistrySnapshot
from store.errors import TRANSIENT_ERRORS
from store.periodic import run_every

log = logging.getLogger("yujing.alerts")

TIMER_BATCH = 1000
FLUSH_BATCH = 500
ROUTE_BATCH = 1000


@dataclasses.dataclass
class ServiceStats:
    findings: int = 0
    replayed: int = 0  # findings ignored as replays of ones already applied
    opened: int = 0
    transitions: int = 0
    escalations: int = 0
    feed_events: int = 0


class AlertsService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        policy: Policy,
        registry: Callable[[], RegistrySnapshot],
        clock: Clock,
        feed: AlertFeed,
        mqtt_publish: Callable[[str, bytes], None] | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        owner: str | None = None,
    ) -> None:
        self.pool = pool
        self.policy = policy
        self.registry = registry
        self.clock = clock
        self.feed = feed
        self.mqtt_publish = mqtt_publish
        self.grader = Grader(policy.grading)
        self.intake = Intake(policy, self.grader)
        self.dispatcher = Dispatcher(policy, self.grader, registry, mqtt_enabled=mqtt_publish is not None)
        self.escalator = Escalator(policy, registry)
        self.timers = Timers(policy, self.grader, self.intake.latch, self.escalator, self.dispatcher)
        self.updates = StateUpdates(policy, self.grader, registry)
        self.follower = JournalFollower(feed)
        self.stats = ServiceStats()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._http = http
        self._own_http = http is None
        self._sender: Sender | None = None
        self.deliverer: Deliverer | None = None
        self._wake_tick = asyncio.Event()
        self._wake_outbox = asyncio.Event()
        self._muting: frozenset = frozenset()
        self._anchor = journal.Anchor.from_policy(policy)
        for w in policy.warnings:
            log.warning("alerts policy: %s", w)

    def now_us(self) -> int:
        return self.clock()

    # ------------------------------------------------------------------ findings

    async def handle(self, findings: FindingBatch) -> None:
        """Apply a batch of findings durably; returns once committed (never waits on delivery)."""
        n = len(findings)
        if n == 0:
            return
        self.stats.findings += n
        now_us = self.now_us()
        registry = self.registry()
        rows = sorted(findings.rows(), key=lambda f: f.ts_us)  # stable: same-ts findings keep their order
        keys = [self.intake.identity(f, registry) for f in rows]
        async with self.pool.acquire() as conn, conn.transaction():
            latest = await records.latest_for_keys(conn, list(dict.fromkeys(keys)))
            folded = self.intake.fold(rows, keys, latest, registry, now_us)
            self.stats.replayed += folded.replayed
            self.stats.opened += folded.opened
            if folded.superseded:  # free their keys (one open incident per key) before the new ones go in
                await records.close_superseded(conn, folded.superseded)
            new, touched = list(folded.new.values()), list(folded.touched.values())
            for a in [*new, *touched]:
                a.timer_due_us = self.timers.next_due_us(a)
            await self._commit(conn, new, touched, folded.applied, now_us)
        self._wake_tick.set()

    async def _commit(self, conn: asyncpg.Connection, new: Sequence[Alert], touched: Sequence[Alert],
                      applied: Sequence[Applied], now_us: int) -> None:
        """Save what a pass did: insert new alerts, route the changes worth a notification (urgent when
        any of an alert's was), update the changed alerts, journal every change."""
        await records.insert(conn, new)
        notify_changes: dict[int, tuple[Alert, bool]] = {}
        for ap in applied:
            if ap.change.notify:
                prev = notify_changes.get(id(ap.alert))
                notify_changes[id(ap.alert)] = (ap.alert, ap.change.urgent or (prev[1] if prev else False))
        await self.dispatcher.route(conn, list(notify_changes.values()), now_us)
        await records.update(conn, touched)
        await journal.append(conn, [
            journal.Entry(now_us, ap.alert.id, ap.alert.alert_key, ap.version, ap.change.action, ap.change.actor,
                          {**ap.change.detail, "alert": ap.snapshot})
            for ap in applied
        ])
        self.stats.transitions += len(applied)

    # ------------------------------------------------------------------ ticker

    async def tick(self, now_us: int | None = None) -> dict[str, int]:
        """One pass of the ticker loop; returns what it did (for tests and metrics)."""
        now = self.now_us() if now_us is None else now_us
        done = {"routed": 0, "timers": 0, "outbox": 0, "feed": 0}
        async with self.pool.acquire() as conn:
            muter = await self._muter(conn, now)
            done["routed"] = await self._route_pending(conn, now)
            done["timers"] = await self._fire_timers(conn, now, muter)
            done["outbox"] = await self._flush(conn, now, muter)
            done["outbox"] += await self.updates.run(conn, now, enabled=self.mqtt_publish is not None)
            done["feed"] = await self.follower.publish(conn)
            self.stats.feed_events += done["feed"]
            if self._anchor is not None:
                await self._anchor.write(conn, now)
        if done["outbox"]:
            self._wake_outbox.set()
        return done

    async def _muter(self, conn: asyncpg.Connection, now_us: int) -> Muter:
        """What mutes notifications now; when a silence or window has ended, release what it held, now."""
        silences = await list_silences(conn, active_at_us=now_us)
        muting = frozenset(s.id for s in silences) | frozenset(
            m.name for m in self.policy.maintenance if maintenance_active(m, now_us))
        if self._muting - muting:
            await group_rows.release_held(conn, now_us)
        self._muting = muting
        return Muter(silences, self.policy.maintenance)

    async def _route_pending(self, conn: asyncpg.Connection, now_us: int) -> int:
        """Route changes made by operator transitions (they bump notify_version, not groups)."""
        total = 0
        while True:
            async with conn.transaction():
                alerts = await records.unrouted(conn, ROUTE_BATCH)
                if not alerts:
                    return total
                await self.dispatcher.route(conn, [(a, False) for a in alerts], now_us)
                await records.mark_routed(conn, alerts)
                total += len(alerts)

    async def _fire_timers(self, conn: asyncpg.Connection, now_us: int, muter: Muter) -> int:
        """Fire the due timers of alerts, a batch per transaction: changes routed and journaled,
        escalations written to the outbox by the dispatcher."""
        total = 0
        while True:
            async with conn.transaction():
                alerts = await records.timers_due(conn, now_us, TIMER_BATCH)
                if not alerts:
                    return total
                applied: list[Applied] = []
                outbox: list[NewNotification] = []
                escalations = self.timers.escalations
                for a in alerts:
                    await self.timers.fire(conn, a, now_us, muter, applied, outbox)
                self.stats.escalations += self.timers.escalations - escalations
                await self._commit(conn, [], alerts, applied, now_us)
                if await self.dispatcher.enqueue(conn, outbox, now_us):
                    self._wake_outbox.set()
                total += len(alerts)

    async def _flush(self, conn: asyncpg.Connection, now_us: int, muter: Muter) -> int:
        """Flush due groups, a batch per transaction; returns outbox rows written."""
        written = 0
        while True:
            async with conn.transaction():
                groups, rows = await self.dispatcher.flush_due(conn, now_us, muter, FLUSH_BATCH)
            written += rows
            if groups < FLUSH_BATCH:
                return written

    # ------------------------------------------------------------------ loops

    def _deliverer(self) -> Deliverer:
        if self.deliverer is None:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=self.policy.outbox.timeout_s)
            self._sender = Sender(self._http, self.mqtt_publish, self.clock, self.policy.outbox.timeout_s)
            self.deliverer = Deliverer(self.pool, self.policy, self._sender, self.clock, self.owner)
        return self.deliverer

    async def deliver(self) -> int:
        """One outbox pass (tests); returns how many rows were attempted."""
        return await self._deliverer().deliver_due()

    async def _tick_once(self) -> None:
        """One ticker pass for the loop: its transactions roll back on an error, the next pass retries."""
        self._wake_tick.clear()
        try:
            async with self.pool.acquire() as conn:  # start the feed at the current head
                await self.follower.start(conn)
            await self.tick()
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            log.exception("alerts tick failed unexpectedly")

    async def run(self) -> None:
        """Run the ticker and the outbox deliverer until cancelled."""
        deliverer = self._deliverer()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_every("alerts tick", self.policy.tick_s, self._tick_once,
                                         sleep=woken_or_after(self._wake_tick)), name="alerts-ticker")
                tg.create_task(deliverer.run(self._wake_outbox, idle_s=self.policy.tick_s), name="alerts-outbox")
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
            self.deliverer = None


def colour_of(grade: int) -> Colour:
    return Colour(grade)
