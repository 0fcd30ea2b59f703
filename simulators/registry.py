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

import numpy as np
import yaml

from domain.catalog import KINDS
from domain.registry import EnterpriseInfo, GatewayInfo, RegionInfo, RegistrySnapshot, SensorInfo, SensorTable, ZoneInfo
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


def registry_snapshot(fleet: Fleet, retention_days: float = 92.0) -> RegistrySnapshot:
    """The snapshot ``store.registry_records.load_snapshot`` would read after importing the fleet's
    registry file, built in memory (offline replays: no database). Dense ids follow the file's
    order from 1: gateways, zones and sensors as :func:`registry_document` lists them."""
    doc = registry_document(fleet)
    regions = {str(r["code"]): RegionInfo(str(r["code"]), str(r.get("name", r["code"])), r.get("parent"),
                                          str(r.get("level", ""))) for r in doc["regions"]}
    enterprises = {e["id"]: EnterpriseInfo(e["id"], e["name"], e["region"], e["industry"], e.get("risk_colour"), True)
                   for e in doc["enterprises"]}
    zone_ids = {(z["enterprise"], z["id"]): i for i, z in enumerate(doc["zones"], start=1)}
    zones = {i: ZoneInfo(i, z["enterprise"], z["id"], z["name"], tuple(sorted(zone_ids[(z["enterprise"], a)] for a in z["adjacent"])))
             for i, z in enumerate(doc["zones"], start=1)}
    gateway_ids = {(g["enterprise"], g["id"]): i for i, g in enumerate(doc["gateways"], start=1)}
    gateways = {i: GatewayInfo(i, g["enterprise"], g["id"], float(g["expected_interval_s"]), True)
                for i, g in enumerate(doc["gateways"], start=1)}
    size = len(doc["sensors"]) + 1
    table = SensorTable(
        active=np.zeros(size, dtype=bool), gateway=np.zeros(size, dtype=np.int32), zone=np.zeros(size, dtype=np.int32),
        kind=np.full(size, "", dtype=np.dtypes.StringDType()),
        location_class=np.full(size, "", dtype=np.dtypes.StringDType()),
        expected_interval_s=np.full(size, np.inf), range_min=np.full(size, np.nan), range_max=np.full(size, np.nan),
        retention_s=np.zeros(size),
    )
    sensors: dict[int, SensorInfo] = {}
    sensor_ids: dict[str, dict[str, int]] = {}
    for i, s in enumerate(doc["sensors"], start=1):
        kind = KINDS.get(s["kind"])
        g, z = gateway_ids[(s["enterprise"], s["gateway"])], zone_ids.get((s["enterprise"], s.get("zone")), 0)
        table.active[i] = True
        table.gateway[i], table.zone[i] = g, z
        table.kind[i], table.location_class[i] = s["kind"], s.get("location_class", "")
        table.expected_interval_s[i] = s["expected_interval_s"]
        if kind is not None:
            table.range_min[i], table.range_max[i] = kind.range_min, kind.range_max
        table.retention_s[i] = retention_days * 86400.0
        sensors[i] = SensorInfo(i, s["enterprise"], s["id"], g, z, s["kind"], s.get("unit", ""), s.get("location", ""),
                                s.get("location_class", ""), dict(s.get("setpoints", {})))
        sensor_ids.setdefault(s["enterprise"], {})[s["id"]] = i
    return RegistrySnapshot(version=1, regions=regions, enterprises=enterprises, gateways=gateways, zones=zones,
                            sensors=sensors, table=table, gateway_ids=gateway_ids, sensor_ids=sensor_ids)
