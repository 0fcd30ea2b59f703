"""The registry file of a fleet (docs/registry.md format), for ``yujing registry import``.

It lists exactly what the fleet publishes: regions (the province, its cities and counties),
enterprises, zones with symmetric ``adjacent`` links (what compound rules walk: a working face and
its return roadway, a heading with its local fan, a machine room and its cold rooms, adjacent
pipeline stations and the underground spaces beside them), gateways with their scan interval, and
sensors with kind, unit, location, ``location_class`` and setpoint overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from domain.catalog import KINDS
from simulators.fleet import Fleet


def registry_document(fleet: Fleet) -> dict[str, Any]:
    regions = [dict(r) for r in fleet.config.regions]
    known = {str(r["code"]) for r in regions}
    for e in fleet.enterprises:
        if e.region not in known:  # keep the file importable even when the fleet forgot a region
            regions.append({"code": e.region, "name": e.region})
            known.add(e.region)
    enterprises = []
    for e in fleet.enterprises:
        d: dict[str, Any] = {"id": e.id, "name": e.name, "region": e.region, "industry": e.industry}
        if e.risk_colour:
            d["risk_colour"] = e.risk_colour
        if e.contacts:
            d["contacts"] = [dict(c) for c in e.contacts]
        enterprises.append(d)
    adjacency: dict[tuple[int, str], set[str]] = {}
    for ei, z in fleet.zones:
        adjacency.setdefault((ei, z.id), set())
        for a in z.adjacent:
            adjacency[(ei, z.id)].add(a)
            adjacency.setdefault((ei, a), set()).add(z.id)
    zones = [{"id": z.id, "enterprise": fleet.enterprises[ei].id, "name": z.name, "kind": z.kind,
              "adjacent": sorted(adjacency[(ei, z.id)])} for ei, z in fleet.zones]
    gateways = [{"id": g.id, "enterprise": fleet.enterprises[ei].id, "zone": g.zone, "name": g.name,
                 "expected_interval_s": round(float(fleet.gw_interval_s[gi]), 3)}
                for gi, (ei, g) in enumerate(fleet.gateways)]
    sensors = []
    for si, (ei, s) in enumerate(fleet.sensors):
        kind = KINDS.get(s.kind)
        d = {"id": s.id, "gateway": fleet.gateways[int(fleet.sensor_gateway[si])][1].id,
             "enterprise": fleet.enterprises[ei].id, "kind": s.kind}
        if kind is not None:
            d["unit"] = kind.unit
        d["location"] = s.location
        if s.location_class:
            d["location_class"] = s.location_class
        d["zone"] = s.zone
        d["expected_interval_s"] = round(float(fleet.gw_interval_s[fleet.sensor_gateway[si]] * fleet.sensor_period_scans[si]), 3)
        if s.setpoints:
            d["setpoints"] = dict(s.setpoints)
        sensors.append(d)
    return {"regions": regions, "enterprises": enterprises, "zones": zones, "gateways": gateways, "sensors": sensors}


def write_registry(fleet: Fleet, path: Path) -> None:
    text = yaml.safe_dump(registry_document(fleet), allow_unicode=True, sort_keys=False, width=140)
    header = f"# Registry of fleet {fleet.config.name!r}, written by yujing simulate (docs/registry.md format).\n"
    Path(path).write_text(header + text, encoding="utf-8")
