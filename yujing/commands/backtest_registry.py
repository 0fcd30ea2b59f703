"""A registry YAML file (docs/registry.md) as the in-memory snapshot a backtest runs against: dense
ids in the file's order from 1, the defaults the database import applies (a sensor's enterprise
from its gateway, its zone from its gateway's, its interval and range from its kind)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domain.catalog import get_kind
from domain.messages import RULE_DTYPE
from domain.registry import EnterpriseInfo, GatewayInfo, RegionInfo, RegistrySnapshot, SensorInfo, SensorTable, ZoneInfo
from store.registry_file import RegistryFile, RegistryFileError, parse_registry_file


def load_registry_snapshot(path: Path) -> RegistrySnapshot:
    """Raises OSError, UnicodeDecodeError or RegistryFileError (naming the entry)."""
    return snapshot_of(parse_registry_file(path.read_text(encoding="utf-8")))


def snapshot_of(reg: RegistryFile) -> RegistrySnapshot:
    regions = {r.code: RegionInfo(r.code, r.name, r.parent, r.level) for r in reg.regions}
    enterprises = {e.id: EnterpriseInfo(e.id, e.name, e.region, str(e.industry), e.risk_colour, e.active)
                   for e in reg.enterprises}
    zone_ids = {(z.enterprise, z.id): i for i, z in enumerate(reg.zones, start=1)}
    zones = {}
    for i, z in enumerate(reg.zones, start=1):
        adjacent = []
        for a in z.adjacent:
            if (z.enterprise, a) not in zone_ids:
                raise RegistryFileError(f"zones[{i - 1}] ({z.id}): adjacent zone {a} is not registered in {z.enterprise}")
            adjacent.append(zone_ids[(z.enterprise, a)])
        zones[i] = ZoneInfo(i, z.enterprise, z.id, z.name or z.id, tuple(sorted(adjacent)))
    gateway_ids = {(g.enterprise, g.id): i for i, g in enumerate(reg.gateways, start=1)}
    gateways = {i: GatewayInfo(i, g.enterprise, g.id, g.expected_interval_s, g.active)
                for i, g in enumerate(reg.gateways, start=1)}
    gateway_zone = {i: zone_ids.get((g.enterprise, g.zone), 0) for i, g in enumerate(reg.gateways, start=1)}
    size = len(reg.sensors) + 1
    table = SensorTable(
        active=np.zeros(size, dtype=bool), gateway=np.zeros(size, dtype=np.int32), zone=np.zeros(size, dtype=np.int32),
        kind=np.full(size, "", dtype=RULE_DTYPE), location_class=np.full(size, "", dtype=RULE_DTYPE),
        expected_interval_s=np.full(size, np.inf), range_min=np.full(size, np.nan), range_max=np.full(size, np.nan),
        retention_s=np.zeros(size),
    )
    sensors: dict[int, SensorInfo] = {}
    sensor_ids: dict[str, dict[str, int]] = {}
    for i, s in enumerate(reg.sensors, start=1):
        where = f"sensors[{i - 1}] ({s.id})"
        owners = [e for (e, code) in gateway_ids if code == s.gateway]
        enterprise = s.enterprise or (owners[0] if len(owners) == 1 else None)
        if enterprise is None or (enterprise, s.gateway) not in gateway_ids:
            raise RegistryFileError(f"{where}: gateway {s.gateway} is not registered (once) in its enterprise; "
                                    "give the sensor's enterprise and register the gateway")
        if sensor_ids.get(enterprise, {}).get(s.id):
            raise RegistryFileError(f"{where}: sensor {s.id} is listed twice in {enterprise}")
        g = gateway_ids[(enterprise, s.gateway)]
        zone = zone_ids.get((enterprise, s.zone), 0) if s.zone is not None else gateway_zone[g]
        kind = get_kind(s.kind)
        lo, hi = s.range if s.range is not None else (kind.range_min, kind.range_max)
        table.active[i] = s.active and gateways[g].active
        table.gateway[i], table.zone[i] = g, zone
        table.kind[i], table.location_class[i] = kind.id, s.location_class
        table.expected_interval_s[i] = s.expected_interval_s or kind.expected_interval_s
        table.range_min[i], table.range_max[i] = lo, hi
        sensors[i] = SensorInfo(i, enterprise, s.id, g, zone, kind.id, kind.unit, s.location, s.location_class,
                                dict(s.setpoints))
        sensor_ids.setdefault(enterprise, {})[s.id] = i
    return RegistrySnapshot(version=1, regions=regions, enterprises=enterprises, gateways=gateways, zones=zones,
                            sensors=sensors, table=table, gateway_ids=gateway_ids, sensor_ids=sensor_ids)
