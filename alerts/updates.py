"""State updates: every lifecycle change of an alert reaches the MQTT channels, not only the ones
the router tells.

The router notifies the changes worth a notification (opened, reopened, grade raised or lowered,
latched, latch reset, resolved), with its groups, mutes and inhibition. The other changes —
acknowledged, assigned, shelved, unshelved, closed, flapping ended, severity changed — are state
that a gateway's display must follow too. Each ticker pass takes the alerts whose ``version`` is
past ``told_version`` and, for a change the router did not tell (``version > notify_version``),
writes one ``yujing.alert`` message per gateway that hears the alert to the outbox, for each MQTT
channel of the routes the alert matches; then ``told_version = version``, in the same transaction.
Several changes between two passes are reported once, with the alert's latest state and the
latest change (``change``, ``change_actor``). Comments and escalation steps are not published
(the live feed carries them). State updates are not muted: they describe an alert, they do not
raise one.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from alerts import notify, records
from alerts.dispatch import match_routes
from alerts.gateways import gateway_codes
from alerts.grading import Grader
from alerts.records import journal_reads
from alerts.records.outbox import NewNotification, enqueue
from alerts.policy import MqttChannel, Policy
from domain.registry import RegistrySnapshot

BATCH = 1000
SILENT_ACTIONS = frozenset({"commented", "escalated"})


class StateUpdates:
    def __init__(self, policy: Policy, grader: Grader, registry: Callable[[], RegistrySnapshot]) -> None:
        self.policy = policy
        self.grader = grader
        self.registry = registry
        self.published = 0

    def _channels(self, labels: dict[str, str], regions: tuple[str, ...]) -> list[tuple[str, MqttChannel]]:
        out = []
        for r in match_routes(self.policy.route, labels, regions):
            receiver = self.policy.receivers.get(r.receiver)
            if receiver is None:
                continue
            out.extend((receiver.name, ch) for ch in receiver.channels if isinstance(ch, MqttChannel))
        return list(dict.fromkeys(out))

    async def run(self, conn: asyncpg.Connection, now_us: int, enabled: bool) -> int:
        """One pass (the caller holds no transaction); returns outbox rows written."""
        written = 0
        while True:
            async with conn.transaction():
                alerts = await records.untold(conn, BATCH)
                if not alerts:
                    return written
                untold = [a for a in alerts if enabled and a.version > a.notify_version]
                changes = {}
                if untold:  # the latest change worth showing since the last one told, per alert
                    changes = await journal_reads.latest_changes(
                        conn, [(a.id, max(a.told_version, a.notify_version)) for a in untold], SILENT_ACTIONS)
                registry = self.registry()
                outbox: list[NewNotification] = []
                for a in untold:
                    change = changes.get(a.id)
                    if change is None:
                        continue
                    change["version"] = a.version
                    view = notify.alert_view(a, registry, self.grader, self.policy.language, now_us)
                    gws = gateway_codes(a, registry)
                    for receiver, ch in self._channels(a.labels, a.regions):
                        outbox.extend(notify.mqtt_rows(a, view, receiver, ch, gws, change))
                written += await enqueue(conn, outbox, now_us)
                self.published += len(outbox)
                await records.mark_told(conn, alerts)
