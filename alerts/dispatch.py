"""The routing tree and aggregation groups (Alertmanager's dispatcher, made durable).

An alert change worth notifying is *routed*: the tree picks routes (depth first, first matching
child wins unless it says ``continue``), each route's ``group_by`` labels pick a group, and the
alert becomes a pending member of that group — in the same transaction as the change. A group is
*flushed* when due: ``group_wait`` after its first pending member, then no more often than every
``group_interval``, and every ``repeat_interval`` while it has open alerts. A rise in grade marks
the group urgent: it flushes at once, bypassing the timers. A flush applies the mute stages
(shelved, silenced, maintenance window, inhibited), renders the notification and writes it to the
outbox, all in one transaction, so a crash neither loses nor repeats it. An escalation step is
rendered here too and written to the outbox by :meth:`Dispatcher.enqueue`, so every notification
leaves through the dispatcher. The SQL is :mod:`alerts.records.groups`'.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence

import asyncpg

from alerts import notify, records
from alerts.colours import Colour
from alerts.escalation import Target
from alerts.gateways import gateway_codes
from alerts.grading import Grader
from alerts.inhibit import Inhibitor
from alerts.lifecycle import Alert, State
from alerts.policy import Policy, Receiver, Route
from alerts.records import groups as group_rows
from alerts.records.groups import FlushUpdate, MemberUpdate
from alerts.records.outbox import NewNotification, enqueue
from alerts.silences import Muter
from domain.registry import RegistrySnapshot

log = logging.getLogger("yujing.alerts.dispatch")

RECHECK_MUTED_S = 30.0  # a group holding muted changes looks again this often (silence expiry)
FIRING_STATES = (State.FIRING, State.ACKNOWLEDGED, State.LATCHED)


def match_routes(route: Route, labels: dict[str, str], regions: tuple[str, ...]) -> list[Route]:
    def walk(node: Route) -> list[Route]:
        if not node.matchers.matches(labels, regions):
            return []
        found: list[Route] = []
        for child in node.routes:
            m = walk(child)
            if m:
                found.extend(m)
                if not child.continue_:
                    break
        return found or [node]

    return walk(route) or [route]


@dataclasses.dataclass
class FlushStats:
    groups: int = 0
    notifications: int = 0
    outbox_rows: int = 0
    muted: int = 0


class Dispatcher:
    def __init__(self, policy: Policy, grader: Grader, registry: Callable[[], RegistrySnapshot],
                 mqtt_enabled: bool) -> None:
        self.policy = policy
        self.grader = grader
        self.registry = registry
        self.mqtt_enabled = mqtt_enabled
        self.routes = policy.routes()
        self.inhibitor = Inhibitor(policy.inhibit)
        self.stats = FlushStats()

    def group_key(self, route: Route, alert: Alert) -> tuple[str, dict[str, str]]:
        labels = {k: alert.labels.get(k, "") for k in route.group_by}
        return f"{route.id}|{route.receiver}|{json.dumps(labels, sort_keys=True, ensure_ascii=False)}", labels

    async def route(self, conn: asyncpg.Connection, changed: Sequence[tuple[Alert, bool]], now_us: int) -> set[int]:
        """Make changed alerts pending members of their groups; returns ids of groups now due.

        The caller holds the transaction and saves ``routed_version`` with the alerts.
        """
        groups: dict[str, list] = {}
        members: list[tuple[str, int]] = []
        for alert, urgent in changed:
            for r in match_routes(self.policy.route, alert.labels, alert.regions):
                gk, labels = self.group_key(r, alert)
                g = groups.setdefault(gk, [r, labels, False])
                g[2] = g[2] or urgent
                members.append((gk, alert.id))
            alert.routed_version = alert.notify_version
        if not groups:
            return set()
        rows = await group_rows.upsert(conn, [
            (k, r.id, r.receiver, json.dumps(labels, ensure_ascii=False, sort_keys=True), urgent)
            for k, (r, labels, urgent) in groups.items()
        ], now_us)
        ids: dict[str, int] = {}
        dues: list[tuple[int, int]] = []
        for row in rows:
            ids[row["group_key"]] = row["id"]
            r = self.routes.get(row["route"]) or groups[row["group_key"]][0]
            if row["urgent"]:
                due = now_us
            elif row["last_flush_us"] is None:
                due = row["pending_since_us"] + int(r.group_wait_s * 1e6)
            else:
                due = row["last_flush_us"] + int(r.group_interval_s * 1e6)
            if row["next_due_us"] is not None:
                due = min(due, row["next_due_us"])
            dues.append((row["id"], due))
        await group_rows.set_next_due(conn, dues)
        await group_rows.add_members(conn, [(ids[gk], aid) for gk, aid in members])
        return {gid for gid, due in dues if due <= now_us}

    async def flush_due(self, conn: asyncpg.Connection, now_us: int, muter: Muter,
                        limit: int = 500) -> tuple[int, int]:
        """Flush up to ``limit`` due groups (the caller holds the transaction).

        Returns (groups looked at, outbox rows written)."""
        groups = await group_rows.due(conn, now_us, limit)
        if not groups:
            return 0, 0
        gids = [g["id"] for g in groups]
        mrows = await group_rows.members(conn, gids)
        alert_ids = sorted({m["alert_id"] for m in mrows})
        alerts = await records.by_ids(conn, alert_ids)
        inhibited = await self._inhibited(conn, alerts)
        by_group: dict[int, list] = {}
        for m in mrows:
            if m["alert_id"] in alerts:
                by_group.setdefault(m["group_id"], []).append(m)
        flush = _Flush(now_us, muter, self.registry(), alerts, inhibited)
        flushed: list[FlushUpdate] = []
        dropped: list[int] = []
        for g in groups:
            update = self._flush_group(g, by_group.get(g["id"], []), flush)
            if update is None:
                dropped.append(g["id"])
            else:
                flushed.append(update)
        self.stats.groups += len(groups)
        written = await self.enqueue(conn, flush.outbox, now_us)
        await group_rows.mark_notified(conn, flush.told)
        await group_rows.save_flushed(conn, flushed)
        await group_rows.prune(conn, gids, dropped)
        return len(groups), written

    async def enqueue(self, conn: asyncpg.Connection, rows: Sequence[NewNotification], now_us: int) -> int:
        """Write notifications to the outbox (the caller's transaction); returns rows written."""
        written = await enqueue(conn, rows, now_us)
        self.stats.outbox_rows += written
        return written

    async def _inhibited(self, conn: asyncpg.Connection, alerts: dict[int, Alert]) -> dict[int, str]:
        """Why each of ``alerts`` is inhibited, judged over the open alerts of their enterprises."""
        enterprises = sorted({a.enterprise for a in alerts.values() if a.enterprise})
        sources = await records.open_active_of(conn, enterprises) if enterprises and self.policy.inhibit else []
        return self.inhibitor.inhibited(list(alerts.values()), sources)

    def _flush_group(self, g: asyncpg.Record, members: list, flush: _Flush) -> FlushUpdate | None:
        """One due group: what it tells now and when it is due next; ``None`` drops the group."""
        route = self.routes.get(g["route"])
        receiver = self.policy.receivers.get(g["receiver"])
        if route is None or receiver is None or not members:
            return None
        now_us = flush.now_us
        send, held, open_unmuted = self._pick(g["id"], members, route, receiver, flush)
        repeat = None
        if not send and route.repeat_interval_s is not None and open_unmuted and g["last_flush_us"] is not None \
                and now_us >= g["last_flush_us"] + int(route.repeat_interval_s * 1e6):
            send = open_unmuted
            repeat = g["flushes"]
        last_flush = g["last_flush_us"]
        if send:
            self._render_group(g, receiver, send, repeat, len(open_unmuted), flush)
            last_flush = now_us
        next_due = None
        if held:
            next_due = now_us + int(max(route.group_interval_s, RECHECK_MUTED_S) * 1e6)
        if open_unmuted and route.repeat_interval_s is not None and last_flush is not None:
            rep = last_flush + int(route.repeat_interval_s * 1e6)
            next_due = rep if next_due is None else min(next_due, rep)
        return g["id"], last_flush, next_due, bool(send)

    def _pick(self, group_id: int, members: list, route: Route, receiver: Receiver,
              flush: _Flush) -> tuple[list[Alert], int, list[Alert]]:
        """The group's members to tell now, how many changes are held (muted), and its open unmuted alerts."""
        send: list[Alert] = []
        held = 0
        open_unmuted: list[Alert] = []
        for m in members:
            a = flush.alerts[m["alert_id"]]
            muted = flush.muter.muted_by(a, flush.now_us, maintenance=route.mute_maintenance) \
                or flush.inhibited.get(a.id)
            if a.state in FIRING_STATES and not muted:
                open_unmuted.append(a)
            if a.notify_version <= m["notified_version"]:
                continue
            if muted:
                held += 1
                self.stats.muted += 1
                continue
            resolved = a.state in (State.RESOLVED, State.CLOSED)
            was_told = m["notified_state"] in {s.value for s in FIRING_STATES}
            # An orange or red event that cleared before its group flushed (a spike inside one
            # ingest batch, or within group_wait) is still told once: it happened, and the
            # standards require a report of every alarm and power cut. Lesser ones that came
            # and went are not (Alertmanager's behaviour).
            untold_serious = not was_told and a.peak_grade >= Colour.ORANGE
            if resolved and not untold_serious and (not receiver.send_resolved or not was_told):
                flush.told.append((group_id, a.id, a.notify_version, int(a.grade), a.state.value))
                continue
            send.append(a)
        return send, held, open_unmuted

    def _render_group(self, g: asyncpg.Record, receiver: Receiver, send: list[Alert], repeat: int | None,
                      open_in_group: int, flush: _Flush) -> None:
        send.sort(key=lambda a: (-int(a.grade), a.started_us, a.id))
        key = notify.group_key_for(g["group_key"], send, repeat)
        payload = notify.build("group", key, receiver.name, send, flush.registry, self.grader, self.policy.language,
                               flush.now_us, group_labels=json.loads(g["labels"]), open_in_group=open_in_group)
        payload["repeat"] = repeat is not None
        payload["group_key"] = g["group_key"]
        flush.outbox.extend(notify.rows_for_receiver(receiver, key, payload, send, self.mqtt_enabled,
                                                     lambda a: gateway_codes(a, flush.registry)))
        self.stats.notifications += 1
        flush.told.extend((g["id"], a.id, a.notify_version, int(a.grade), a.state.value) for a in send)

    def escalation(self, a: Alert, step: int, targets: Sequence[Target], now_us: int) -> list[NewNotification]:
        """The notifications of escalation step ``step`` (1-based) of ``a``, one per target channel.

        Rendered with the alert as it is after the step; :meth:`enqueue` writes them."""
        registry = self.registry()
        base = f"{notify.ref(a, a.version)}:esc{step}"
        unacked_s = (now_us - (a.unacked_since_us or now_us)) / 1e6
        out: list[NewNotification] = []
        for t in targets:
            esc = {"step": step, "target": t.label, "target_zh": t.label_zh, "unacked_s": unacked_s}
            if t.receiver is not None:
                receiver = self.policy.receivers[t.receiver]
                payload = notify.build("escalation", base, receiver.name, [a], registry, self.grader,
                                       self.policy.language, now_us, escalation=esc)
                out.extend(notify.rows_for_receiver(receiver, base, payload, [a], False, lambda _a: []))
            elif t.contact is not None:
                key = f"{base}:contact:{t.contact['url_sha256'][:16]}"
                payload = notify.build("escalation", key, f"enterprise:{a.enterprise}", [a], registry, self.grader,
                                       self.policy.language, now_us, escalation=esc)
                out.append(NewNotification(
                    idempotency_key=key, receiver=f"enterprise:{a.enterprise}", channel=f"contact:{t.contact['role']}",
                    channel_type=t.contact["type"], payload=payload, alert_ids=(a.id,), target=t.contact,
                ))
        return out


@dataclasses.dataclass
class _Flush:
    """One flush pass: its inputs and what it collects for the outbox and the members."""

    now_us: int
    muter: Muter
    registry: RegistrySnapshot
    alerts: dict[int, Alert]
    inhibited: dict[int, str]
    outbox: list[NewNotification] = dataclasses.field(default_factory=list)
    told: list[MemberUpdate] = dataclasses.field(default_factory=list)
