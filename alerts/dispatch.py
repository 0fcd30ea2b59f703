"""The routing tree and aggregation groups (Alertmanager's dispatcher, made durable).

An alert change worth notifying is *routed*: the tree picks routes (depth first, first matching
child wins unless it says ``continue``), each route's ``group_by`` labels pick a group, and the
alert becomes a pending member of that group — in the same transaction as the change. A group is
*flushed* when due: ``group_wait`` after its first pending member, then no more often than every
``group_interval``, and every ``repeat_interval`` while it has open alerts. A rise in grade marks
the group urgent: it flushes at once, bypassing the timers. A flush applies the mute stages
(shelved, silenced, maintenance window, inhibited), renders the notification and writes it to the
outbox, all in one transaction, so a crash neither loses nor repeats it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence

import asyncpg

from alerts import notify, records
from alerts.colours import Colour
from alerts.gateways import gateway_codes
from alerts.grading import Grader
from alerts.inhibit import Inhibitor
from alerts.lifecycle import Alert, State
from alerts.outbox import NewNotification, enqueue
from alerts.policy import Policy, Route
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
        keys = list(groups)
        rows = await conn.fetch(
            """INSERT INTO alert_groups (group_key, route, receiver, labels, created_us, pending_since_us, urgent)
               SELECT k, r, rc, l::jsonb, $5, $5, u
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::boolean[]) AS t(k, r, rc, l, u)
               ON CONFLICT (group_key) DO UPDATE
                   SET pending_since_us = coalesce(alert_groups.pending_since_us, EXCLUDED.pending_since_us),
                       urgent = alert_groups.urgent OR EXCLUDED.urgent
               RETURNING id, group_key, route, last_flush_us, pending_since_us, urgent, next_due_us""",
            keys, [groups[k][0].id for k in keys], [groups[k][0].receiver for k in keys],
            [json.dumps(groups[k][1], ensure_ascii=False, sort_keys=True) for k in keys], now_us,
            [groups[k][2] for k in keys],
        )
        ids: dict[str, int] = {}
        dues: list[tuple[int, int]] = []
        due_now: set[int] = set()
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
            if due <= now_us:
                due_now.add(row["id"])
        await conn.execute(
            "UPDATE alert_groups g SET next_due_us = u.d FROM unnest($1::bigint[], $2::bigint[]) AS u(id, d)"
            " WHERE g.id = u.id",
            [d[0] for d in dues], [d[1] for d in dues],
        )
        await conn.execute(
            """INSERT INTO alert_group_members (group_id, alert_id)
               SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING""",
            [ids[gk] for gk, _ in members], [aid for _, aid in members],
        )
        return due_now

    async def flush_due(self, conn: asyncpg.Connection, now_us: int, muter: Muter,
                        limit: int = 500) -> tuple[int, int]:
        """Flush up to ``limit`` due groups (the caller holds the transaction).

        Returns (groups looked at, outbox rows written)."""
        groups = await conn.fetch(
            """SELECT id, group_key, route, receiver, labels::text AS labels, last_flush_us, urgent, flushes
               FROM alert_groups WHERE next_due_us <= $1 ORDER BY next_due_us LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now_us, limit,
        )
        if not groups:
            return 0, 0
        gids = [g["id"] for g in groups]
        mrows = await conn.fetch(
            "SELECT group_id, alert_id, notified_version, notified_grade, notified_state FROM alert_group_members"
            " WHERE group_id = ANY($1::bigint[])", gids,
        )
        alert_ids = sorted({m["alert_id"] for m in mrows})
        alerts = {a.id: a for a in await records.fetch(conn, "id = ANY($1::bigint[])", alert_ids)} if alert_ids else {}
        enterprises = sorted({a.enterprise for a in alerts.values() if a.enterprise})
        sources = await records.fetch(
            conn, "state IN ('firing', 'acknowledged', 'latched') AND active AND enterprise = ANY($1::text[])",
            enterprises,
        ) if enterprises and self.policy.inhibit else []
        inhibited = self.inhibitor.inhibited(list(alerts.values()), sources)
        by_group: dict[int, list] = {}
        for m in mrows:
            if m["alert_id"] in alerts:
                by_group.setdefault(m["group_id"], []).append(m)
        registry = self.registry()
        outbox: list[NewNotification] = []
        member_updates: list[tuple[int, int, int, int, str]] = []
        group_updates: list[tuple[int, int | None, int | None, bool, bool]] = []  # id, last_flush, next_due, sent, delete
        for g in groups:
            route = self.routes.get(g["route"])
            receiver = self.policy.receivers.get(g["receiver"])
            members = by_group.get(g["id"], [])
            if route is None or receiver is None or not members:
                group_updates.append((g["id"], g["last_flush_us"], None, False, True))
                continue
            send: list[Alert] = []
            held = 0
            open_unmuted: list[Alert] = []
            for m in members:
                a = alerts[m["alert_id"]]
                muted = muter.muted_by(a, now_us, maintenance=route.mute_maintenance) or inhibited.get(a.id)
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
                    member_updates.append((g["id"], a.id, a.notify_version, int(a.grade), a.state.value))
                    continue
                send.append(a)
            repeat = None
            if not send and route.repeat_interval_s is not None and open_unmuted and g["last_flush_us"] is not None \
                    and now_us >= g["last_flush_us"] + int(route.repeat_interval_s * 1e6):
                send = open_unmuted
                repeat = g["flushes"]
            last_flush = g["last_flush_us"]
            if send:
                send.sort(key=lambda a: (-int(a.grade), a.started_us, a.id))
                key = notify.group_key_for(g["group_key"], send, repeat)
                payload = notify.build("group", key, receiver.name, send, registry, self.grader, self.policy.language,
                                       now_us, group_labels=json.loads(g["labels"]), open_in_group=len(open_unmuted))
                payload["repeat"] = repeat is not None
                payload["group_key"] = g["group_key"]
                outbox.extend(notify.rows_for_receiver(receiver, key, payload, send, self.mqtt_enabled,
                                                       lambda a: gateway_codes(a, registry)))
                self.stats.notifications += 1
                last_flush = now_us
                for a in send:
                    member_updates.append((g["id"], a.id, a.notify_version, int(a.grade), a.state.value))
            next_due = None
            if held:
                next_due = now_us + int(max(route.group_interval_s, RECHECK_MUTED_S) * 1e6)
            if open_unmuted and route.repeat_interval_s is not None and last_flush is not None:
                rep = last_flush + int(route.repeat_interval_s * 1e6)
                next_due = rep if next_due is None else min(next_due, rep)
            group_updates.append((g["id"], last_flush, next_due, bool(send), False))
        self.stats.groups += len(groups)
        written = await enqueue(conn, outbox, now_us)
        self.stats.outbox_rows += written
        if member_updates:
            await conn.execute(
                """UPDATE alert_group_members m SET notified_version = u.v, notified_grade = u.gr, notified_state = u.s
                   FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::smallint[], $5::text[]) AS u(g, a, v, gr, s)
                   WHERE m.group_id = u.g AND m.alert_id = u.a""",
                *map(list, zip(*member_updates, strict=True)),
            )
        keep = [u for u in group_updates if not u[4]]
        drop = [u[0] for u in group_updates if u[4]]
        if keep:
            await conn.execute(
                """UPDATE alert_groups g SET last_flush_us = u.lf, next_due_us = u.nd, urgent = false,
                          pending_since_us = CASE WHEN u.nd IS NULL OR u.sent THEN NULL ELSE g.pending_since_us END,
                          flushes = g.flushes + CASE WHEN u.sent THEN 1 ELSE 0 END
                   FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::boolean[]) AS u(id, lf, nd, sent)
                   WHERE g.id = u.id""",
                [u[0] for u in keep], [u[1] for u in keep], [u[2] for u in keep], [u[3] for u in keep],
            )
        # members whose alert is over and told: leave the group; empty groups go
        await conn.execute(
            """DELETE FROM alert_group_members m USING alerts a
               WHERE m.group_id = ANY($1::bigint[]) AND a.id = m.alert_id
                 AND a.state IN ('resolved', 'closed') AND m.notified_version >= a.notify_version""",
            gids,
        )
        await conn.execute(
            """DELETE FROM alert_groups g WHERE g.id = ANY($1::bigint[])
                 AND (g.id = ANY($2::bigint[]) OR NOT EXISTS (SELECT 1 FROM alert_group_members m WHERE m.group_id = g.id))""",
            gids, drop,
        )
        return len(groups), written
