"""Synthetic registries for detector tests (no database)."""

from __future__ import annotations

import numpy as np

from domain.catalog import KINDS
from domain.messages import RULE_DTYPE
from domain.registry import GatewayInfo, RegistrySnapshot, SensorInfo, SensorTable, ZoneInfo


def snapshot(
    kinds: list[str],
    location_classes: list[str] | None = None,
    *,
    gateway: list[int] | None = None,
    zone: list[int] | None = None,
    adjacency: dict[int, tuple[int, ...]] | None = None,
    interval_s: float | list[float] = 10.0,
    gateway_interval_s: float = 60.0,
    setpoints: dict[int, dict] | None = None,
    version: int = 1,
    equipment: list[int] | None = None,
) -> RegistrySnapshot:
    """Sensors 1..len(kinds) (index 0 is padding), gateways and zones as given (default 1),
    equipment groups as dense ids (0: none; default none)."""
    n = len(kinds) + 1
    loc = location_classes or [""] * len(kinds)
    gw = gateway or [1] * len(kinds)
    zn = zone or [1] * len(kinds)
    iv = interval_s if isinstance(interval_s, list) else [interval_s] * len(kinds)
    table = SensorTable(
        active=np.array([False] + [True] * len(kinds)),
        gateway=np.array([0, *gw], dtype=np.int32),
        zone=np.array([0, *zn], dtype=np.int32),
        kind=np.array(["", *kinds], dtype=RULE_DTYPE),
        location_class=np.array(["", *loc], dtype=RULE_DTYPE),
        expected_interval_s=np.array([0.0, *iv]),
        range_min=np.array([np.nan] + [KINDS[k].range_min if k in KINDS else np.nan for k in kinds]),
        range_max=np.array([np.nan] + [KINDS[k].range_max if k in KINDS else np.nan for k in kinds]),
        retention_s=np.full(n, 86400.0 * 92),
        equipment=None if equipment is None else np.array([0, *equipment], dtype=np.int32),
    )
    adjacency = adjacency or {}
    zones = {z: ZoneInfo(z, "E1", f"Z{z}", f"zone {z}", tuple(adjacency.get(z, ()))) for z in sorted(set(zn)) if z > 0}
    gateways = {g: GatewayInfo(g, "E1", f"G{g}", gateway_interval_s, True) for g in sorted(set(gw)) if g > 0}
    sps = setpoints or {}
    sensors = {
        i + 1: SensorInfo(i + 1, "E1", f"S{i + 1}", gw[i], zn[i], kinds[i], KINDS[kinds[i]].unit if kinds[i] in KINDS else "",
                          "", loc[i], sps.get(i + 1, {}), f"P-{equipment[i]}" if equipment and equipment[i] else "")
        for i in range(len(kinds))
    }
    return RegistrySnapshot(
        version=version, regions={}, enterprises={}, gateways=gateways, zones=zones, sensors=sensors,
        table=table, gateway_ids={("E1", f"G{g}"): g for g in gateways},
        sensor_ids={"E1": {f"S{i}": i for i in sensors}},
    )
