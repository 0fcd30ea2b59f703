"""The alerts service: findings in, graded alerts and notifications out.

``handle(findings)`` is what the ingest pipeline calls: it applies one batch of findings to the
alerts in one transaction (grading, lifecycle, spread upgrades, routing into groups, journal) and
returns once that is committed — it never waits for a notification to be delivered. ``run()``
runs the loops until cancelled, in one TaskGroup: the *ticker* (route operator changes, fire due
timers — shelving expiry, flapping end, persistence upgrades, escalation, auto-close — flush due
groups, publish journal entries to the live feed, write the journal anchor) and the *outbox
deliverer*. ``tick(now_us)`` runs one ticker pass, which is what tests drive with a fake clock.

The pipeline, in order (one place, as Alertmanager's ``notify.BuildPipeline``):

    findings ─▶ grade ─▶ lifecycle ─▶ spread ─▶ route into groups            (handle, one tx)
    timers   ─▶ lifecycle ─▶ escalate (outbox) ─▶ route                      (tick, one tx)
    groups   ─▶ mute (shelved, silenced, maintenance) ─▶ inhibit ─▶ render ─▶ outbox   (tick, one tx)
    changes the router does not tell (ack, assign, shelve, close) ─▶ MQTT outbox     (tick, one tx)
    outbox   ─▶ channel ─▶ mark delivered | retry with backoff | failed       (deliverer)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
from collections.abc import Callable, Sequence

import asyncpg
import httpx

import journal
from alerts import lifecycle, notify, records
from alerts.channels import Sender
from alerts.colours import Colour
from alerts.dispatch import Dispatcher
from alerts.escalation import Escalator
from alerts.feed import AlertFeed
from alerts.grading import Grader
from alerts.intake import Intake
from alerts.lifecycle import OPEN_STATES, Alert, Change, State
from alerts.outbox import Deliverer, NewNotification, enqueue
from alerts.policy import Policy
from alerts.silences import Muter, list_silences, maintenance_active
from alerts.updates import StateUpdates
from domain.messages import FindingBatch
from domain.registry import RegistrySnapshot

log = logging.getLogger("yujing.alerts")

MUTED_RECHECK_S = 30.0
TIMER_BATCH = 1000
FLUSH_BATCH = 500

_Rec = tuple[Alert, Change, int, dict]  # alert, change, version after it, snapshot after it


def _record(out: list[_Rec], alert: Alert, change: Change) -> None:
    out.append((alert, change, alert.version, alert.snapshot()))


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
        clock: Callable[[], float],
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
        self.updates = StateUpdates(policy, self.grader, registry)
        self.stats = ServiceStats()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._http = http
        self._own_http = http is None
        self._sender: Sender | None = None
        self.deliverer: Deliverer | None = None
        self._wake_tick = asyncio.Event()
        self._wake_outbox = asyncio.Event()
        self._feed_seq: int | None = None
        self._muting: frozenset = frozenset()
        self._anchor = journal.Anchor.from_policy(policy)
        for w in policy.warnings:
            log.warning("alerts policy: %s", w)

    # ------------------------------------------------------------------ helpers

    def now_us(self) -> int:
        return int(self.clock() * 1e6)

    def _latch(self, alert: Alert) -> bool:
        return self.intake.latch(alert)

    def _next_timer(self, alert: Alert) -> int | None:
        """The next time something may happen to the alert without a new finding."""
        if alert.state is State.CLOSED:
            return None
        due: list[int] = []
        if alert.shelved_until_us is not None:
            due.append(alert.shelved_until_us)
        fl = self.policy.lifecycle.flapping
        if alert.flapping and fl is not None:
            last = max(alert.flap_changes_us) if alert.flap_changes_us else alert.updated_us
            due.append(last + int(fl.quiet_s * 1e6))
        rule = self.grader.rule_named(alert.grading_rule)
        if (rule is not None and rule.persist is not None and alert.active and alert.state in OPEN_STATES
                and alert.grade < rule.persist.colour and alert.base_grade == rule.colour):
            due.append(alert.grade_since_us + int(rule.persist.after_s * 1e6))
        esc = self.escalator.due_us(alert)
        if esc is not None:
            due.append(esc)
        lc = self.policy.lifecycle
        if alert.state is State.RESOLVED and lc.auto_close_after_s is not None and (alert.acked or not lc.auto_close_require_ack):
            due.append((alert.resolved_us or alert.updated_us) + int(lc.auto_close_after_s * 1e6))
        return min(due) if due else None

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
            new: dict[str, Alert] = {}
            touched: dict[int, Alert] = {}  # existing alerts changed in any way
            superseded: list[int] = []
            changes: list[_Rec] = []
            for f, key in zip(rows, keys, strict=True):
                alert = new.get(key) or latest.get(key)
                if alert is not None and alert.state is not State.CLOSED and not self.intake.joins(alert, f, now_us):
                    _record(changes, alert, lifecycle.superseded(alert, now_us))
                    touched[alert.id] = alert
                    superseded.append(alert.id)
                    alert = None
                if self.intake.is_replay(alert, f):
                    self.stats.replayed += 1
                    continue
                if alert is None or alert.state is State.CLOSED:
                    opened = self.intake.open(f, registry, now_us)
                    if opened is None:
                        continue
                    alert, change = opened
                    new[key] = alert
                    self.stats.opened += 1
                    _record(changes, alert, change)
                    continue
                change = self.intake.apply(alert, f, now_us, registry)
                if alert.id:
                    touched[alert.id] = alert
                if change is not None:
                    _record(changes, alert, change)
            for alert in [*new.values(), *touched.values()]:
                if alert.state is not State.CLOSED and (ch := self.intake.spread(alert, now_us)) is not None:
                    _record(changes, alert, ch)
            if superseded:  # free their keys (one open incident per key) before the new ones go in
                await conn.execute("UPDATE alerts SET state = 'closed' WHERE id = ANY($1::bigint[])", superseded)
            await self._commit(conn, list(new.values()), list(touched.values()), changes, now_us)
        self._wake_tick.set()

    async def _commit(self, conn: asyncpg.Connection, new: Sequence[Alert], touched: Sequence[Alert],
                      changes: Sequence[_Rec], now_us: int, schedule: bool = True) -> None:
        if schedule:
            for a in [*new, *touched]:
                a.timer_due_us = self._next_timer(a)
        await records.insert(conn, new)
        notify_changes = {}
        for a, c, _, _ in changes:
            if c.notify:
                prev = notify_changes.get(id(a))
                notify_changes[id(a)] = (a, c.urgent or (prev[1] if prev else False))
        await self.dispatcher.route(conn, list(notify_changes.values()), now_us)
        await records.update(conn, touched)
        await journal.append(conn, [
            journal.Entry(now_us, a.id, a.alert_key, version, c.action, c.actor, {**c.detail, "alert": snap})
            for a, c, version, snap in changes
        ])
        self.stats.transitions += len(changes)

    # ------------------------------------------------------------------ ticker

    async def tick(self, now_us: int | None = None) -> dict[str, int]:
        """One pass of the ticker loop; returns what it did (for tests and metrics)."""
        now = self.now_us() if now_us is None else now_us
        done = {"routed": 0, "timers": 0, "outbox": 0, "feed": 0}
        async with self.pool.acquire() as conn:
            silences = await list_silences(conn, active_at_us=now)
            muter = Muter(silences, self.policy.maintenance)
            muting = frozenset(s.id for s in silences) | frozenset(
                m.name for m in self.policy.maintenance if maintenance_active(m, now))
            if self._muting - muting:  # a silence or window ended: release what it held, now
                await conn.execute(
                    """UPDATE alert_groups g SET next_due_us = $1 WHERE (g.next_due_us IS NULL OR g.next_due_us > $1)
                         AND EXISTS (SELECT 1 FROM alert_group_members m JOIN alerts a ON a.id = m.alert_id
                                     WHERE m.group_id = g.id AND a.notify_version > m.notified_version)""", now)
            self._muting = muting
            done["routed"] = await self._route_pending(conn, now)
            done["timers"] = await self._timers(conn, now, muter)
            while True:
                async with conn.transaction():
                    groups, written = await self.dispatcher.flush_due(conn, now, muter, FLUSH_BATCH)
                done["outbox"] += written
                if groups < FLUSH_BATCH:
                    break
            done["outbox"] += await self.updates.run(conn, now, enabled=self.mqtt_publish is not None)
            done["feed"] = await self._publish_feed(conn)
            if self._anchor is not None:
                await self._anchor.write(conn, now)
        if done["outbox"]:
            self._wake_outbox.set()
        return done

    async def _route_pending(self, conn: asyncpg.Connection, now_us: int) -> int:
        """Route changes made by operator transitions (they bump notify_version, not groups)."""
        total = 0
        while True:
            async with conn.transaction():
                alerts = await records.fetch(conn, "notify_version > routed_version ORDER BY id LIMIT 1000",
                                             for_update=True)
                if not alerts:
                    return total
                await self.dispatcher.route(conn, [(a, False) for a in alerts], now_us)
                await conn.execute(
                    "UPDATE alerts a SET routed_version = u.v FROM unnest($1::bigint[], $2::int[]) AS u(id, v)"
                    " WHERE a.id = u.id",
                    [a.id for a in alerts], [a.notify_version for a in alerts],
                )
                total += len(alerts)

    async def _timers(self, conn: asyncpg.Connection, now_us: int, muter: Muter) -> int:
        total = 0
        while True:
            async with conn.transaction():
                alerts = await records.fetch(
                    conn, "state <> 'closed' AND timer_due_us <= $1 ORDER BY id LIMIT $2", now_us, TIMER_BATCH,
                    for_update=True,
                )
                if not alerts:
                    return total
                changes: list[_Rec] = []
                outbox: list[NewNotification] = []
                for a in alerts:
                    await self._fire_timers(conn, a, now_us, muter, outbox, changes)
                await self._commit(conn, [], alerts, changes, now_us, schedule=False)
                if outbox:
                    await enqueue(conn, outbox, now_us)
                    self._wake_outbox.set()
                total += len(alerts)

    async def _fire_timers(self, conn: asyncpg.Connection, a: Alert, now_us: int, muter: Muter,
                           outbox: list[NewNotification], out: list[_Rec]) -> None:
        if a.shelved_until_us is not None and a.shelved_until_us <= now_us:
            _record(out, a, lifecycle.shelve_expired(a, now_us))
        for ch in self.intake.settle(a, now_us):
            _record(out, a, ch)
        muted_until = None
        while (due := self.escalator.due_us(a)) is not None and due <= now_us:
            why = muter.muted_by(a, now_us)
            if why:
                muted_until = now_us + int(MUTED_RECHECK_S * 1e6)
                break
            _record(out, a, await self._escalate(conn, a, now_us, outbox))
        ch = self.intake.auto_close(a, now_us)
        if ch is not None:
            _record(out, a, ch)
        nxt = self._next_timer(a)
        if muted_until is not None:
            nxt = muted_until if nxt is None or nxt <= now_us else min(nxt, muted_until)
        if nxt is not None and nxt <= now_us:  # never spin on a timer that fired and did nothing
            nxt = now_us + 1_000_000
        a.timer_due_us = nxt

    async def _escalate(self, conn: asyncpg.Connection, a: Alert, now_us: int,
                        outbox: list[NewNotification]) -> Change:
        index = a.escalation_step
        targets = await self.escalator.targets(conn, a, index)
        change = lifecycle.escalated(a, index + 1, [t.label for t in targets], now_us)
        self.stats.escalations += 1
        if not targets:
            return change
        registry = self.registry()
        base = f"{notify.ref(a, a.version)}:esc{index + 1}"
        unacked_s = (now_us - (a.unacked_since_us or now_us)) / 1e6
        for t in targets:
            esc = {"step": index + 1, "target": t.label, "target_zh": t.label_zh, "unacked_s": unacked_s}
            if t.receiver is not None:
                receiver = self.policy.receivers[t.receiver]
                payload = notify.build("escalation", base, receiver.name, [a], registry, self.grader,
                                       self.policy.language, now_us, escalation=esc)
                outbox.extend(notify.rows_for_receiver(receiver, base, payload, [a], False, lambda _a: []))
            elif t.contact is not None:
                key = f"{base}:contact:{t.contact['url_sha256'][:16]}"
                payload = notify.build("escalation", key, f"enterprise:{a.enterprise}", [a], registry, self.grader,
                                       self.policy.language, now_us, escalation=esc)
                outbox.append(NewNotification(
                    idempotency_key=key, receiver=f"enterprise:{a.enterprise}", channel=f"contact:{t.contact['role']}",
                    channel_type=t.contact["type"], payload=payload, alert_ids=(a.id,), target=t.contact,
                ))
        return change

    async def _publish_feed(self, conn: asyncpg.Connection) -> int:
        if self._feed_seq is None:
            self._feed_seq = await conn.fetchval("SELECT seq FROM alert_journal_head WHERE singleton")
            return 0
        rows = await conn.fetch(
            "SELECT seq, at_us, alert_id, alert_key, version, action, actor, detail FROM alert_journal"
            " WHERE seq > $1 ORDER BY seq LIMIT 10000", self._feed_seq,
        )
        for r in rows:
            detail = json.loads(r["detail"])
            self.feed.publish({
                "type": "alert" if r["alert_id"] is not None else "silence",
                "seq": r["seq"], "at_us": r["at_us"], "alert_id": r["alert_id"], "alert_key": r["alert_key"],
                "version": r["version"], "action": r["action"], "actor": r["actor"],
                "enterprise": (detail.get("alert") or {}).get("enterprise"), "detail": detail,
            })
        if rows:
            self._feed_seq = rows[-1]["seq"]
            self.stats.feed_events += len(rows)
        return len(rows)

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

    async def _run_ticker(self) -> None:
        while True:
            self._wake_tick.clear()
            try:
                if self._feed_seq is None:  # start the feed at the current head (the database may be down)
                    async with self.pool.acquire() as conn:
                        self._feed_seq = await conn.fetchval("SELECT seq FROM alert_journal_head WHERE singleton")
                await self.tick()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("alerts tick failed, retrying: %s", exc)
            except Exception:  # one pass; its transactions rolled back, the next pass retries
                log.exception("alerts tick failed unexpectedly")
            try:
                await asyncio.wait_for(self._wake_tick.wait(), self.policy.tick_s)
            except TimeoutError:
                pass

    async def run(self) -> None:
        """Run the ticker and the outbox deliverer until cancelled."""
        deliverer = self._deliverer()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._run_ticker(), name="alerts-ticker")
                tg.create_task(deliverer.run(self._wake_outbox, idle_s=self.policy.tick_s), name="alerts-outbox")
        finally:
            if self._own_http and self._http is not None:
                await self._http.aclose()
                self._http = None
                self.deliverer = None

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
            self.deliverer = None


def colour_of(grade: int) -> Colour:
    return Colour(grade)
