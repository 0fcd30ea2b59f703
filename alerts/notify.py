"""Notification payloads: what a receiver is told, rendered once when the notification is decided.

Every payload carries a stable ``idempotency_key``. For a notification about one alert it is
``{alert_key}#{id}@{version}`` plus the receiver and channel; a group notification's key is built
from the group and the ``alert_key#id@notify_version`` of every alert it reports, so a flush redone after
a crash produces the same key. Each alert in a payload carries its own ``alert_key`` and
``version`` (the transition it reports) for receivers that deduplicate per alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from alerts import render
from alerts.colours import Colour
from alerts.grading import Grader
from alerts.lifecycle import Alert, State
from alerts.records.outbox import NewNotification
from alerts.policy import MqttChannel, Receiver
from domain.registry import RegistrySnapshot
from domain.severity import SubjectKind
from domain.topics import alerts_topic

SCHEMA = "yujing.notification/1"
ALERT_SCHEMA = "yujing.alert/2"  # alerts.mqtt_schema
MAX_LISTED = 20  # alerts listed in a message's text; the JSON carries all of them


def alert_view(alert: Alert, registry: RegistrySnapshot | None, grader: Grader, lang: str, now_us: int,
               escalation: bool = False) -> dict[str, Any]:
    """One alert as channels, the MQTT topic and the live feed show it (see alerts.mqtt_schema)."""
    rule = grader.rule_named(alert.grading_rule)
    unit = ""
    if registry is not None and alert.subject_kind == SubjectKind.SENSOR:
        s = registry.sensors.get(alert.subject)
        unit = s.unit if s else ""
    return {
        "alert_key": alert.alert_key,
        "id": alert.id,
        "version": alert.notify_version,
        "state": alert.state.value,
        "active": alert.active,
        "grade": alert.grade.id,
        "grade_zh": f"{alert.grade.zh}色",
        "level_zh": alert.grade.level_zh,
        "severity": alert.severity.name.lower(),
        "rule": alert.rule,
        "subject": {"kind": SubjectKind(alert.subject_kind).name.lower(), "id": alert.subject,
                    "code": alert.labels.get("subject_code", "")},
        "enterprise": alert.enterprise,
        "region": alert.region,
        "zone": alert.labels.get("zone") or None,
        "gateway": alert.labels.get("gateway") or None,
        "kind": alert.kind or None,
        "value": alert.as_dict()["value"],
        "setpoint": alert.as_dict()["setpoint"],
        "unit": unit or None,
        "flapping": alert.flapping,
        "acknowledged_by": alert.acked_by,
        "started_us": alert.started_us,
        "started_at": render.local_time(alert.started_us),
        "updated_us": alert.updated_us,
        "resolved_us": alert.resolved_us,
        "message": render.describe(alert, registry, rule, lang, now_us, escalation),
        "requirement": render.requirement(rule, lang) or None,
        "findings": [e.view() for e in alert.evidence],  # every contributing finding
        "findings_unlisted": alert.evidence_dropped,
    }


def ref(alert: Alert, version: int) -> str:
    """``{alert_key}#{id}@{version}``: one transition of one incident. The id is there because a
    raise after close opens a new incident under the same key, whose versions start again."""
    return f"{alert.alert_key}#{alert.id}@{version}"


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:24]


def _title(alerts: Sequence[Alert], views: Sequence[dict], registry: RegistrySnapshot | None, lang: str,
           escalation: bool) -> str:
    top = max(alerts, key=lambda a: (a.state not in (State.RESOLVED, State.CLOSED), a.grade))
    head = render.headline(top, lang, escalation)
    ent = registry.enterprises.get(top.enterprise or "") if registry else None
    who = ent.name if ent else (top.enterprise or "")
    if len(alerts) == 1:
        return f"{head}{render.place(top, registry)}"
    return f"{head}{who} {len(alerts)} alerts" if lang == "en" else f"{head}{who} 共 {len(alerts)} 条"


def build(kind: str, key: str, receiver: str, alerts: Sequence[Alert], registry: RegistrySnapshot | None,
          grader: Grader, lang: str, now_us: int, group_labels: dict[str, str] | None = None,
          open_in_group: int | None = None, escalation: dict[str, Any] | None = None) -> dict[str, Any]:
    views = [alert_view(a, registry, grader, lang, now_us, escalation is not None) for a in alerts]
    for v in views:
        v["idempotency_key"] = f"{v['alert_key']}#{v['id']}@{v['version']}"
    firing = any(a.state not in (State.RESOLVED, State.CLOSED) for a in alerts)
    title = _title(alerts, views, registry, lang, escalation is not None)
    lines, md = [], [f"### {title}"]
    for v in views[:MAX_LISTED]:
        lines.append(v["message"])
        md.append(f"- **{v['message']}**")
        extra = [render.local_time(v["started_us"])]
        if v["requirement"]:
            extra.append(v["requirement"])
            lines.append(f"  {v['requirement']}")
        md.append(f"  {' · '.join(extra)}")
    if len(views) > MAX_LISTED:
        more = len(views) - MAX_LISTED
        lines.append(f"… and {more} more" if lang == "en" else f"…… 及其他 {more} 条")
        md.append(lines[-1])
    if escalation is not None:
        mins = int(escalation["unacked_s"] // 60)
        note = (f"Not acknowledged for {mins} min; escalated to {escalation['target']}." if lang == "en"
                else f"已 {mins} 分钟未确认，升级通知：{escalation['target_zh']}。")
        lines.append(note)
        md.append(f"> {note}")
    if open_in_group is not None and open_in_group > len([a for a in alerts if a.state is not State.RESOLVED]):
        note = (f"{open_in_group} open alerts in this group." if lang == "en" else f"本组共 {open_in_group} 条未解除。")
        lines.append(note)
        md.append(f"> {note}")
    md.append(f"> {key}")
    top = max(alerts, key=lambda a: a.grade)
    return {
        "schema": SCHEMA,
        "idempotency_key": key,
        "receiver": receiver,
        "kind": kind,
        "status": "firing" if firing else "resolved",
        "grade": top.grade.id,
        "lang": lang,
        "title": title,
        "text": f"{title}\n" + "\n".join(lines) if len(alerts) > 1 else "\n".join(lines),
        "markdown": "\n".join(md),
        "group_labels": group_labels or {},
        "escalation": escalation,
        "alerts": views,
        "created_us": now_us,
    }


def group_key_for(group_key: str, alerts: Sequence[Alert], repeat: int | None) -> str:
    if len(alerts) == 1 and repeat is None:
        a = alerts[0]
        return ref(a, a.notify_version)
    parts = sorted(ref(a, a.notify_version) for a in alerts)
    base = f"g:{_digest([group_key, *parts])}"
    return base if repeat is None else f"{base}~r{repeat}"


def rows_for_receiver(receiver: Receiver, key: str, payload: dict[str, Any], alerts: Sequence[Alert],
                      mqtt_enabled: bool, gateways: Callable[[Alert], list[str]]) -> list[NewNotification]:
    ids = tuple(a.id for a in alerts)
    out = []
    for ch in receiver.channels:
        if isinstance(ch, MqttChannel):
            if not mqtt_enabled:
                continue
            for a, view in zip(alerts, payload["alerts"], strict=True):
                out.extend(mqtt_rows(a, view, receiver.name, ch, gateways(a), None))
            continue
        out.append(NewNotification(
            idempotency_key=f"{key}:{receiver.name}.{ch.name}", receiver=receiver.name, channel=ch.name,
            channel_type=ch.type, payload={**payload, "idempotency_key": f"{key}:{receiver.name}.{ch.name}"},
            alert_ids=ids,
        ))
    return out


def mqtt_rows(alert: Alert, view: dict[str, Any], receiver: str, ch: MqttChannel, gateways: Sequence[str],
              change: dict[str, Any] | None) -> list[NewNotification]:
    """One ``yujing.alert`` message per gateway that hears the alert (see :mod:`alerts.gateways`).

    ``change`` is the lifecycle change the message reports (action, actor, version) when it is
    not one the router tells (acknowledged, assigned, shelved, closed, …)."""
    if not alert.enterprise:
        return []
    version = alert.notify_version if change is None else change["version"]
    key = ref(alert, version)
    message = {**view, "schema": ALERT_SCHEMA, "idempotency_key": key, "version": version,
               "change": change["action"] if change else None,
               "change_actor": change["actor"] if change else None}
    return [NewNotification(
        idempotency_key=f"{key}:{receiver}.{ch.name}" + (f":{gw}" if len(gateways) > 1 else ""),
        receiver=receiver, channel=ch.name, channel_type="mqtt",
        payload={"topic": alerts_topic(alert.enterprise, gw), "qos": ch.qos, "message": message},
        alert_ids=(alert.id,),
    ) for gw in gateways]


def max_grade(alerts: Sequence[Alert]) -> Colour:
    return max(a.grade for a in alerts)
