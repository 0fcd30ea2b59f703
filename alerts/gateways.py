"""Which gateways hear an alert on ``yj/v1/{enterprise}/{gateway}/alerts``.

A sensor alert goes to the sensor's gateway, a gateway alert to that gateway. A zone alert (a
compound rule, or an incident folded over several sensors of a zone) goes to every gateway that
serves a sensor of the zone; a zone with no sensor on any gateway falls back to every gateway of
the enterprise, so no zone alert is silent on MQTT. The codes are taken from the registry at send
time, falling back to the alert's ``gateway`` label.
"""

from __future__ import annotations

import numpy as np

from alerts.lifecycle import Alert
from domain.registry import RegistrySnapshot
from domain.severity import SubjectKind


def gateway_codes(alert: Alert, registry: RegistrySnapshot | None) -> list[str]:
    """Gateway codes of ``alert.enterprise`` to publish the alert to, sorted; [] when none."""
    if not alert.enterprise:
        return []
    label = alert.labels.get("gateway") or ""
    if registry is None:
        return [label] if label else []
    ids: set[int] = set()
    if alert.subject_kind == SubjectKind.GATEWAY:
        ids.add(alert.subject)
    elif alert.subject_kind == SubjectKind.SENSOR:
        for sid in (alert.subject, *alert.sensor_ids()):
            s = registry.sensors.get(sid)
            if s is not None and s.gateway:
                ids.add(s.gateway)
    elif alert.subject_kind == SubjectKind.ZONE:
        t = registry.table
        in_zone = (t.zone == alert.subject) & t.active
        ids |= {int(g) for g in np.unique(t.gateway[in_zone]) if g}
        if not ids:
            ids = {g.id for g in registry.gateways.values() if g.enterprise == alert.enterprise}
    codes = sorted({g.code for g in (registry.gateways.get(i) for i in ids)
                    if g is not None and g.enterprise == alert.enterprise})
    if not codes and label:
        codes = [label]
    return codes
