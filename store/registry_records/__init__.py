"""The registry's tables (regions, enterprises, zones and their adjacency, gateways, sensors,
hazard sources, the registry version): the one package that reads and writes them.

- :mod:`.importer` — :func:`import_registry`, a registry file in one transaction;
- :mod:`.snapshot` — :func:`load_snapshot`, the column form every stage works from;
- :mod:`.version` — the version, moved once per change with its notification;
- :mod:`.entities` — single entries as the API reads and deactivates them;
- :mod:`.scoped` — reads checked against an API key's scope.
"""

from store.registry_records.importer import ImportReport, import_registry
from store.registry_records.scoped import gateway_in_scope, sensor_in_scope, visible_ids
from store.registry_records.snapshot import load_snapshot
from store.registry_records.upsert import TableChanges
from store.registry_records.version import REGISTRY_CHANNEL, bump_version, registry_version

__all__ = [
    "REGISTRY_CHANNEL", "ImportReport", "TableChanges", "bump_version", "gateway_in_scope", "import_registry",
    "load_snapshot", "registry_version", "sensor_in_scope", "visible_ids",
]
