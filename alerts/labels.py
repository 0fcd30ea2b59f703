"""An alert's labels, taken from the registry when it opens: what routes, silences and inhibition
match on, and what messages name. A subject missing from the registry still gets an alert (with
empty place labels), so it is routed by the root route and never lost."""

from __future__ import annotations

import dataclasses

from domain.registry import RegistrySnapshot
from domain.severity import Severity, SubjectKind


@dataclasses.dataclass(frozen=True, slots=True)
class Subject:
    enterprise: str | None = None
    region: str | None = None
    regions: tuple[str, ...] = ()
    industry: str | None = None
    kind: str = ""
    location_class: str = ""
    gateway: int | None = None
    gateway_code: str = ""
    zone: int | None = None
    zone_code: str = ""
    code: str = ""


def region_chain(registry: RegistrySnapshot, code: str | None) -> tuple[str, ...]:
    chain: list[str] = []
    while code and code not in chain:
        chain.append(code)
        info = registry.regions.get(code)
        code = info.parent if info else None
    return tuple(chain)


def subject_of(registry: RegistrySnapshot, subject_kind: int, subject: int) -> Subject:
    enterprise = None
    fields: dict = {}
    if subject_kind == SubjectKind.SENSOR:
        s = registry.sensors.get(subject)
        if s is None:
            return Subject()
        enterprise = s.enterprise
        g = registry.gateways.get(s.gateway)
        z = registry.zones.get(s.zone)
        fields = dict(kind=s.kind, location_class=s.location_class, gateway=s.gateway or None,
                      gateway_code=g.code if g else "", zone=s.zone or None, zone_code=z.code if z else "", code=s.code)
    elif subject_kind == SubjectKind.GATEWAY:
        g = registry.gateways.get(subject)
        if g is None:
            return Subject()
        enterprise = g.enterprise
        fields = dict(gateway=g.id, gateway_code=g.code, code=g.code)
    elif subject_kind == SubjectKind.ZONE:
        z = registry.zones.get(subject)
        if z is None:
            return Subject()
        enterprise = z.enterprise
        fields = dict(zone=z.id, zone_code=z.code, code=z.code)
    e = registry.enterprises.get(enterprise or "")
    region = e.region if e else None
    return Subject(enterprise=enterprise, region=region, regions=region_chain(registry, region),
                   industry=e.industry if e else None, **fields)


def labels_for(key: str, subject_kind: int, subject: int, rule: str, s: Subject, grade: str,
               severity: Severity) -> dict[str, str]:
    return {
        "alert_key": key,
        "subject_kind": SubjectKind(subject_kind).name.lower(),
        "subject": str(subject),
        "subject_code": s.code,
        "rule": rule,
        "kind": s.kind,
        "location_class": s.location_class,
        "enterprise": s.enterprise or "",
        "industry": s.industry or "",
        "region": s.region or "",
        "zone": s.zone_code,
        "gateway": s.gateway_code,
        "grade": grade,
        "severity": severity.name.lower(),
    }
