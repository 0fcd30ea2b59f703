"""Registry snapshots built in memory, for tests of pure stages."""

from __future__ import annotations

import numpy as np

from domain.catalog import get_kind
from domain.registry import EnterpriseInfo, GatewayInfo, RegionInfo, RegistrySnapshot, SensorInfo, SensorTable


def snapshot(
    sensors: list[tuple[str, str, str, str]],
    *,
    inactive: set[tuple[str, str]] = frozenset(),
    retention_days: float = 120.0,
) -> RegistrySnapshot:
    """``sensors`` are (enterprise, gateway, sensor code, kind); ids are given in order from 1."""
    gateway_ids: dict[tuple[str, str], int] = {}
    for enterprise, gateway, _, _ in sensors:
        gateway_ids.setdefault((enterprise, gateway), len(gateway_ids) + 1)
    size = len(sensors) + 1
    string = np.dtypes.StringDType()
    table = SensorTable(
        active=np.zeros(size, bool),
        gateway=np.zeros(size, np.int32),
        zone=np.zeros(size, np.int32),
        kind=np.full(size, "", dtype=string),
        location_class=np.full(size, "", dtype=string),
        expected_interval_s=np.full(size, np.inf),
        range_min=np.full(size, np.nan),
        range_max=np.full(size, np.nan),
        retention_s=np.zeros(size),
    )
    infos: dict[int, SensorInfo] = {}
    sensor_ids: dict[str, dict[str, int]] = {}
    for i, (enterprise, gateway, code, kind_id) in enumerate(sensors, start=1):
        kind = get_kind(kind_id)
        gid = gateway_ids[(enterprise, gateway)]
        table.active[i] = (enterprise, code) not in inactive
        table.gateway[i] = gid
        table.kind[i] = kind_id
        table.expected_interval_s[i] = kind.expected_interval_s
        table.range_min[i] = kind.range_min
        table.range_max[i] = kind.range_max
        table.retention_s[i] = retention_days * 86400
        infos[i] = SensorInfo(i, enterprise, code, gid, 0, kind_id, kind.unit, "", "", {})
        sensor_ids.setdefault(enterprise, {})[code] = i
    enterprises = {e for e, _ in gateway_ids}
    return RegistrySnapshot(
        version=1,
        regions={"360100": RegionInfo("360100", "南昌市", "360000", "city")},
        enterprises={e: EnterpriseInfo(e, e, "360100", "coal_mine", None, True) for e in enterprises},
        gateways={gid: GatewayInfo(gid, e, g, 60.0, True) for (e, g), gid in gateway_ids.items()},
        zones={},
        sensors=infos,
        table=table,
        gateway_ids=gateway_ids,
        sensor_ids=sensor_ids,
    )
