"""The registry's entries one at a time, as the API reads and deactivates them.

Each :class:`EntityTable` says how one section of the registry file is stored: its table, the
columns (and joins) of its view, and the column a key's scope limits. Every read takes an
:data:`~store.scoped.InScope` for that column (the region scope for regions, the enterprise scope
for the rest). Deactivating and deleting move the registry version
(:func:`~store.registry_records.version.bump_version`); creates and updates go through the import.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from store.registry_records.version import bump_version
from store.scoped import InScope


@dataclasses.dataclass(frozen=True)
class EntityTable:
    section: str  # the registry file's section, also the URL segment
    table: str
    select: str  # columns of `t` (and joins) for the JSON view
    joins: str = ""
    dense: bool = True  # keyed by a dense integer id (else by its code / enterprise id)

    @property
    def by_region(self) -> bool:
        """Limited by a region scope (regions) rather than an enterprise scope."""
        return self.section == "regions"

    @property
    def scope_column(self) -> str:
        return {"regions": "t.code", "enterprises": "t.id"}.get(self.section, "t.enterprise")

    @property
    def key_column(self) -> str:
        return "t.code" if self.section == "regions" else "t.id"


ENTITY_TABLES = {
    e.section: e
    for e in (
        EntityTable("regions", "regions", "t.code, t.name, t.parent, t.level, t.updated_at", dense=False),
        EntityTable("enterprises", "enterprises",
                    "t.id, t.name, t.region, t.industry, t.risk_colour, t.risk_assessed_on,"
                    " t.contacts::text AS contacts, t.active, t.updated_at", dense=False),
        EntityTable("zones", "zones",
                    "t.id, t.enterprise, t.code, t.name, t.kind, t.active, t.updated_at, ARRAY(SELECT z2.code FROM"
                    " zone_adjacency a JOIN zones z2 ON z2.id = CASE WHEN a.zone_a = t.id THEN a.zone_b ELSE"
                    " a.zone_a END WHERE t.id IN (a.zone_a, a.zone_b) ORDER BY 1) AS adjacent"),
        EntityTable("gateways", "gateways",
                    "t.id, t.enterprise, t.code, t.name, z.code AS zone, t.expected_interval_s, t.active, t.online,"
                    " t.status_at, t.last_seen_at, t.stale, t.updated_at",
                    joins="LEFT JOIN zones z ON z.id = t.zone"),
        EntityTable("sensors", "sensors",
                    "t.id, t.enterprise, t.code, g.code AS gateway, z.code AS zone, t.kind, t.unit, t.location,"
                    " t.location_class, t.expected_interval_s, t.range_min, t.range_max,"
                    " t.setpoints::text AS setpoints, t.active, t.updated_at",
                    joins="JOIN gateways g ON g.id = t.gateway LEFT JOIN zones z ON z.id = t.zone"),
        EntityTable("hazard_sources", "hazard_sources",
                    "t.id, t.enterprise, t.code, t.name, t.level, t.active, t.updated_at, ARRAY(SELECT s.code FROM"
                    " hazard_source_sensors hs JOIN sensors s ON s.id = hs.sensor WHERE hs.hazard_source = t.id"
                    " ORDER BY 1) AS sensors"),
    )
}


async def get_entity(conn: asyncpg.Connection, ent: EntityTable, in_scope: InScope,
                     key_value: Any) -> asyncpg.Record | None:
    """The entry keyed ``key_value`` if it lies in scope."""
    args: list = [key_value]
    return await conn.fetchrow(
        f"SELECT {ent.select} FROM {ent.table} t {ent.joins} "
        f"WHERE {ent.key_column} = $1 AND {in_scope(ent.scope_column, args)}", *args)


async def list_entities(conn: asyncpg.Connection, ent: EntityTable, in_scope: InScope, *,
                        enterprise: str | None, region: str | None, active: bool | None,
                        limit: int, offset: int) -> list[asyncpg.Record]:
    """The entries in scope, filtered by enterprise, region subtree and active flag, by key."""
    args: list = []
    where = [in_scope(ent.scope_column, args)]
    if enterprise is not None and ent.section != "regions":
        args.append(enterprise)
        where.append(f"t.{'id' if ent.section == 'enterprises' else 'enterprise'} = ${len(args)}")
    if region is not None:
        args.append(region)
        if ent.section == "regions":
            where.append(f"(t.code = ${len(args)} OR t.parent = ${len(args)})")
        elif ent.section == "enterprises":
            where.append(f"t.region IN (SELECT api_region_subtree(${len(args)}::text))")
        else:
            where.append(f"t.enterprise IN (SELECT id FROM enterprises WHERE region IN "
                         f"(SELECT api_region_subtree(${len(args)}::text)))")
    if active is not None and ent.section != "regions":
        args.append(active)
        where.append(f"t.active = ${len(args)}")
    args += [limit, offset]
    return await conn.fetch(
        f"SELECT {ent.select} FROM {ent.table} t {ent.joins} WHERE {' AND '.join(where)} "
        f"ORDER BY {ent.key_column} LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args)


async def entry_exists(conn: asyncpg.Connection, ent: EntityTable, enterprise: str | None, code: str) -> bool:
    """Whether the entry exists anywhere (regions by code, enterprises by id, the rest by both)."""
    if ent.section == "regions":
        return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1)", code)
    if ent.section == "enterprises":
        return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM enterprises WHERE id = $1)", code)
    return await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {ent.table} WHERE enterprise = $1 AND code = $2)",
                               enterprise, code)


async def dense_id(conn: asyncpg.Connection, ent: EntityTable, enterprise: str, code: str) -> int | None:
    """The dense id of an enterprise's entry."""
    return await conn.fetchval(f"SELECT id FROM {ent.table} WHERE enterprise = $1 AND code = $2", enterprise, code)


class RegionInUse(Exception):
    """The region has subregions or enterprises."""


async def delete_region(conn: asyncpg.Connection, code: str) -> int:
    """Delete an unused region (:class:`RegionInUse` otherwise); the new registry version."""
    used = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM regions WHERE parent = $1)"
                               " OR EXISTS (SELECT 1 FROM enterprises WHERE region = $1)", code)
    if used:
        raise RegionInUse(code)
    await conn.execute("DELETE FROM regions WHERE code = $1", code)
    return await bump_version(conn)


async def deactivate(conn: asyncpg.Connection, ent: EntityTable, dense: Any) -> int:
    """Set the entry inactive (if it is not already); the new registry version."""
    await conn.execute(f"UPDATE {ent.table} SET active = false, updated_at = now() WHERE id = $1 AND active", dense)
    return await bump_version(conn)
