"""The registry read into the column form every stage works from (:class:`domain.registry.RegistrySnapshot`)."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable

import asyncpg
import numpy as np

from domain.registry import (
    EnterpriseInfo,
    GatewayInfo,
    RegionInfo,
    RegistrySnapshot,
    SensorInfo,
    SensorTable,
    ZoneInfo,
)
from store.registry_records.version import registry_version


async def load_snapshot(conn: asyncpg.Connection, retention_days: Callable[[str], int]) -> RegistrySnapshot:
    """Read the whole registry in one repeatable-read transaction."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await registry_version(conn)
        regions = {
            r["code"]: RegionInfo(r["code"], r["name"], r["parent"], r["level"])
            for r in await conn.fetch("SELECT code, name, parent, level FROM regions")
        }
        enterprises = {
            r["id"]: EnterpriseInfo(r["id"], r["name"], r["region"], r["industry"], r["risk_colour"], r["active"])
            for r in await conn.fetch("SELECT id, name, region, industry, risk_colour, active FROM enterprises")
        }
        gateways = {
            r["id"]: GatewayInfo(r["id"], r["enterprise"], r["code"], float(r["expected_interval_s"]), r["active"])
            for r in await conn.fetch("SELECT id, enterprise, code, expected_interval_s, active FROM gateways")
        }
        adjacency: dict[int, list[int]] = collections.defaultdict(list)
        for r in await conn.fetch("SELECT zone_a, zone_b FROM zone_adjacency"):
            adjacency[r["zone_a"]].append(r["zone_b"])
            adjacency[r["zone_b"]].append(r["zone_a"])
        zones = {
            r["id"]: ZoneInfo(r["id"], r["enterprise"], r["code"], r["name"], tuple(sorted(adjacency[r["id"]])))
            for r in await conn.fetch("SELECT id, enterprise, code, name FROM zones")
        }
        sensor_rows = await conn.fetch(
            """SELECT s.id, s.enterprise, s.code, s.gateway, coalesce(s.zone, 0) AS zone, s.kind, s.unit,
                      s.location, s.location_class, s.expected_interval_s, s.range_min, s.range_max,
                      s.setpoints, s.active AND g.active AND e.active AS active, e.industry, s.equipment
               FROM sensors s JOIN gateways g ON g.id = s.gateway JOIN enterprises e ON e.id = s.enterprise
               ORDER BY s.id"""
        )
    size = (sensor_rows[-1]["id"] + 1) if sensor_rows else 1
    table = SensorTable(
        active=np.zeros(size, dtype=bool),
        gateway=np.zeros(size, dtype=np.int32),
        zone=np.zeros(size, dtype=np.int32),
        kind=np.full(size, "", dtype=np.dtypes.StringDType()),
        location_class=np.full(size, "", dtype=np.dtypes.StringDType()),
        expected_interval_s=np.full(size, np.inf),
        range_min=np.full(size, np.nan),
        range_max=np.full(size, np.nan),
        retention_s=np.zeros(size),
        equipment=np.zeros(size, dtype=np.int32),
    )
    equipment_ids: dict[tuple[str, str], int] = {}  # (enterprise, equipment code) -> dense id from 1
    sensors: dict[int, SensorInfo] = {}
    sensor_ids: dict[str, dict[str, int]] = collections.defaultdict(dict)
    retention_cache: dict[str, float] = {}
    for r in sensor_rows:
        i = r["id"]
        table.active[i] = r["active"]
        table.gateway[i] = r["gateway"]
        table.zone[i] = r["zone"]
        table.kind[i] = r["kind"]
        table.location_class[i] = r["location_class"]
        table.expected_interval_s[i] = r["expected_interval_s"]
        table.range_min[i] = np.nan if r["range_min"] is None else r["range_min"]
        table.range_max[i] = np.nan if r["range_max"] is None else r["range_max"]
        industry = r["industry"]
        if industry not in retention_cache:
            retention_cache[industry] = retention_days(industry) * 86400.0
        table.retention_s[i] = retention_cache[industry]
        setpoints = r["setpoints"]
        if r["equipment"]:
            table.equipment[i] = equipment_ids.setdefault((r["enterprise"], r["equipment"]), len(equipment_ids) + 1)
        sensors[i] = SensorInfo(
            i, r["enterprise"], r["code"], r["gateway"], r["zone"], r["kind"], r["unit"],
            r["location"], r["location_class"], json.loads(setpoints) if isinstance(setpoints, str) else dict(setpoints),
            r["equipment"] or "",
        )
        sensor_ids[r["enterprise"]][r["code"]] = i
    return RegistrySnapshot(
        version=version,
        regions=regions,
        enterprises=enterprises,
        gateways=gateways,
        zones=zones,
        sensors=sensors,
        table=table,
        gateway_ids={(g.enterprise, g.code): g.id for g in gateways.values()},
        sensor_ids=dict(sensor_ids),
    )
