"""The registry's import from a file, in one transaction.

:func:`import_registry` creates or updates every entry of a :class:`RegistryFile`, reporting what
changed, and moves the registry version once if anything did; any error rolls the whole import
back and names the entry.
"""

from __future__ import annotations

import collections
import dataclasses
import json

import asyncpg

from domain.catalog import check_overrides, get_kind
from store import contact_hosts
from store.contact_hosts import seal_contacts
from store.registry_file import RegistryFile, RegistryFileError, region_ancestors
from store.registry_records.upsert import TableChanges, upsert_rows
from store.registry_records.version import bump_version, registry_version
from store.secretbox import SecretKeyError

TABLES = ("regions", "enterprises", "zones", "gateways", "sensors", "hazard_sources")


@dataclasses.dataclass
class ImportReport:
    changes: dict[str, TableChanges] = dataclasses.field(
        default_factory=lambda: {t: TableChanges() for t in TABLES}
    )
    version: int = 0

    @property
    def changed(self) -> bool:
        return any(c.created or c.updated for c in self.changes.values())

    def summary(self) -> str:
        parts = [
            f"{t}: {c.created} created, {c.updated} updated, {c.unchanged} unchanged"
            for t, c in self.changes.items()
            if c.created or c.updated or c.unchanged
        ]
        return "; ".join(parts) or "nothing to import"


async def import_registry(conn: asyncpg.Connection, registry: RegistryFile) -> ImportReport:
    """Create or update everything in ``registry`` in one transaction."""
    report = ImportReport()
    async with conn.transaction():
        await conn.execute("LOCK TABLE registry_version IN EXCLUSIVE MODE")
        await _import_regions(conn, registry, report)
        await _import_enterprises(conn, registry, report)
        zone_ids = await _import_zones(conn, registry, report)
        gateway_ids = await _import_gateways(conn, registry, report, zone_ids)
        sensor_ids = await _import_sensors(conn, registry, report, zone_ids, gateway_ids)
        await _import_hazard_sources(conn, registry, report, sensor_ids)
        if report.changed:
            report.version = await bump_version(conn)
        else:
            report.version = await registry_version(conn)
    return report


async def _import_regions(conn, registry: RegistryFile, report: ImportReport) -> None:
    levels = {r["code"]: r["level"] for r in await conn.fetch("SELECT code, level FROM regions")}
    levels.update({r.code: r.level for r in registry.regions})
    known = set(levels)
    rank = {"province": 0, "city": 1, "county": 2}
    rows = []
    for i, r in enumerate(registry.regions):
        parent = r.parent
        if parent is not None and parent not in known:
            raise RegistryFileError(f"regions[{i}] ({r.code}): parent {parent} is not registered")
        if parent is not None and rank[levels[parent]] >= rank[r.level]:
            # parents are strictly higher levels, so the tree can never have a cycle
            raise RegistryFileError(
                f"regions[{i}] ({r.code}): parent {parent} is a {levels[parent]}, not above a {r.level}")
        if parent is None:
            parent = next((a for a in region_ancestors(r.code) if a in known), None)
        rows.append((r.code, r.name, parent, r.level))
    order = {"province": 0, "city": 1, "county": 2}
    rows.sort(key=lambda row: order[row[3]])
    # Parents first: one upsert per level keeps the foreign key satisfied.
    for level in ("province", "city", "county"):
        level_rows = [row for row in rows if row[3] == level]
        await upsert_rows(
            conn, "regions", ["code"],
            [("code", "text"), ("name", "text"), ("parent", "text"), ("level", "text")],
            level_rows, report.changes["regions"], returning="code",
        )


async def _import_enterprises(conn, registry: RegistryFile, report: ImportReport) -> None:
    regions = {r["code"] for r in await conn.fetch("SELECT code FROM regions")}
    ids = [e.id for e in registry.enterprises]
    stored = {r["id"]: json.loads(r["contacts"]) for r in await conn.fetch(
        "SELECT id, contacts::text AS contacts FROM enterprises WHERE id = ANY($1::text[])", ids)} if ids else {}
    rows = []
    hosts: set[str] = set()
    for i, e in enumerate(registry.enterprises):
        if e.region not in regions:
            raise RegistryFileError(f"enterprises[{i}] ({e.id}): region {e.region} is not registered")
        try:
            sealed = seal_contacts(e.contacts, stored.get(e.id, []))
        except SecretKeyError as exc:
            raise RegistryFileError(f"enterprises[{i}] ({e.id}).contacts: {exc}") from None
        hosts.update(c["webhook_host"] for c in sealed if c.get("webhook_host"))
        contacts = json.dumps(sealed, ensure_ascii=False)
        rows.append((e.id, e.name, e.region, e.industry.value, e.risk_colour, e.risk_assessed_on, contacts, e.active))
    await upsert_rows(
        conn, "enterprises", ["id"],
        [("id", "text"), ("name", "text"), ("region", "text"), ("industry", "text"), ("risk_colour", "text"),
         ("risk_assessed_on", "date"), ("contacts", "jsonb"), ("active", "boolean")],
        rows, report.changes["enterprises"],
    )
    if hosts:  # proposed for the allow-list; nothing is sent there until an administrator approves
        await contact_hosts.propose(conn, sorted(hosts), "registry import")


async def _enterprises(conn) -> set[str]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM enterprises")}


async def _import_zones(conn, registry: RegistryFile, report: ImportReport) -> dict[tuple[str, str], int]:
    enterprises = await _enterprises(conn)
    rows = []
    for i, z in enumerate(registry.zones):
        if z.enterprise not in enterprises:
            raise RegistryFileError(f"zones[{i}] ({z.id}): enterprise {z.enterprise} is not registered")
        rows.append((z.enterprise, z.id, z.name or z.id, z.kind, z.active))
    await upsert_rows(
        conn, "zones", ["enterprise", "code"],
        [("enterprise", "text"), ("code", "text"), ("name", "text"), ("kind", "text"), ("active", "boolean")],
        rows, report.changes["zones"],
    )
    zone_ids = {(r["enterprise"], r["code"]): r["id"] for r in await conn.fetch("SELECT id, enterprise, code FROM zones")}
    pairs = set()
    for i, z in enumerate(registry.zones):
        me = zone_ids[(z.enterprise, z.id)]
        for other in z.adjacent:
            other_id = zone_ids.get((z.enterprise, other))
            if other_id is None:
                raise RegistryFileError(f"zones[{i}] ({z.id}): adjacent zone {other} is not registered in {z.enterprise}")
            if other_id != me:
                pairs.add((min(me, other_id), max(me, other_id)))
    listed = [zone_ids[(z.enterprise, z.id)] for z in registry.zones if z.adjacent]
    if listed:
        await conn.execute(
            "DELETE FROM zone_adjacency WHERE zone_a = ANY($1::int[]) OR zone_b = ANY($1::int[])", listed
        )
    if pairs:
        a, b = zip(*sorted(pairs))
        await conn.execute(
            "INSERT INTO zone_adjacency SELECT * FROM unnest($1::int[], $2::int[]) ON CONFLICT DO NOTHING",
            list(a), list(b),
        )
    return zone_ids


async def _import_gateways(conn, registry: RegistryFile, report: ImportReport, zone_ids) -> dict[tuple[str, str], tuple[int, int | None]]:
    enterprises = await _enterprises(conn)
    rows = []
    for i, g in enumerate(registry.gateways):
        if g.enterprise not in enterprises:
            raise RegistryFileError(f"gateways[{i}] ({g.id}): enterprise {g.enterprise} is not registered")
        zone = None
        if g.zone is not None:
            zone = zone_ids.get((g.enterprise, g.zone))
            if zone is None:
                raise RegistryFileError(f"gateways[{i}] ({g.id}): zone {g.zone} is not registered in {g.enterprise}")
        rows.append((g.enterprise, g.id, g.name, zone, g.expected_interval_s, g.active))
    await upsert_rows(
        conn, "gateways", ["enterprise", "code"],
        [("enterprise", "text"), ("code", "text"), ("name", "text"), ("zone", "int"),
         ("expected_interval_s", "real"), ("active", "boolean")],
        rows, report.changes["gateways"],
    )
    return {
        (r["enterprise"], r["code"]): (r["id"], r["zone"])
        for r in await conn.fetch("SELECT id, enterprise, code, zone FROM gateways")
    }


async def _import_sensors(conn, registry: RegistryFile, report: ImportReport, zone_ids, gateway_ids) -> dict[tuple[str, str], int]:
    by_code: dict[str, list[str]] = collections.defaultdict(list)
    for enterprise, code in gateway_ids:
        by_code[code].append(enterprise)
    rows = []
    for i, s in enumerate(registry.sensors):
        where = f"sensors[{i}] ({s.id})"
        enterprise = s.enterprise
        if enterprise is None:
            owners = by_code.get(s.gateway, [])
            if len(owners) != 1:
                raise RegistryFileError(
                    f"{where}: gateway {s.gateway} is "
                    + ("not registered" if not owners else f"registered in several enterprises ({', '.join(sorted(owners))})")
                    + "; give the sensor's enterprise"
                )
            enterprise = owners[0]
        gateway = gateway_ids.get((enterprise, s.gateway))
        if gateway is None:
            raise RegistryFileError(f"{where}: gateway {s.gateway} is not registered in {enterprise}")
        gateway_id, gateway_zone = gateway
        kind = get_kind(s.kind)
        if s.unit is not None and s.unit.lower() != kind.unit.lower():
            raise RegistryFileError(f"{where}: unit {s.unit!r} is not the unit of kind {kind.id} ({kind.unit!r})")
        zone = gateway_zone
        if s.zone is not None:
            zone = zone_ids.get((enterprise, s.zone))
            if zone is None:
                raise RegistryFileError(f"{where}: zone {s.zone} is not registered in {enterprise}")
        try:
            check_overrides(kind.id, s.location_class, s.setpoints)
        except ValueError as exc:
            raise RegistryFileError(f"{where}: {exc}") from None
        lo, hi = s.range if s.range is not None else (kind.range_min, kind.range_max)
        rows.append((
            enterprise, s.id, gateway_id, zone, kind.id, kind.unit, s.location, s.location_class,
            s.expected_interval_s or kind.expected_interval_s, lo, hi,
            json.dumps(s.setpoints, sort_keys=True), s.active, s.equipment,
        ))
    await upsert_rows(
        conn, "sensors", ["enterprise", "code"],
        [("enterprise", "text"), ("code", "text"), ("gateway", "int"), ("zone", "int"), ("kind", "text"),
         ("unit", "text"), ("location", "text"), ("location_class", "text"), ("expected_interval_s", "real"),
         ("range_min", "float8"), ("range_max", "float8"), ("setpoints", "jsonb"), ("active", "boolean"),
         ("equipment", "text")],
        rows, report.changes["sensors"],
    )
    return {(r["enterprise"], r["code"]): r["id"] for r in await conn.fetch("SELECT id, enterprise, code FROM sensors")}


async def _import_hazard_sources(conn, registry: RegistryFile, report: ImportReport, sensor_ids) -> None:
    enterprises = await _enterprises(conn)
    rows = []
    for i, h in enumerate(registry.hazard_sources):
        if h.enterprise not in enterprises:
            raise RegistryFileError(f"hazard_sources[{i}] ({h.id}): enterprise {h.enterprise} is not registered")
        for code in h.sensors:
            if (h.enterprise, code) not in sensor_ids:
                raise RegistryFileError(f"hazard_sources[{i}] ({h.id}): sensor {code} is not registered in {h.enterprise}")
        rows.append((h.enterprise, h.id, h.name, h.level, h.active))
    ids = await upsert_rows(
        conn, "hazard_sources", ["enterprise", "code"],
        [("enterprise", "text"), ("code", "text"), ("name", "text"), ("level", "smallint"), ("active", "boolean")],
        rows, report.changes["hazard_sources"],
    )
    for hs_id, h in zip(ids, registry.hazard_sources, strict=True):
        wanted = sorted(sensor_ids[(h.enterprise, c)] for c in h.sensors)
        current = sorted(r["sensor"] for r in await conn.fetch("SELECT sensor FROM hazard_source_sensors WHERE hazard_source = $1", hs_id))
        if wanted != current:
            await conn.execute("DELETE FROM hazard_source_sensors WHERE hazard_source = $1", hs_id)
            await conn.execute(
                "INSERT INTO hazard_source_sensors SELECT $1, unnest($2::int[])", hs_id, wanted
            )
