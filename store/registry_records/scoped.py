"""The registry's reads that check an API key's scope: what exists within it, and the entries a
route or a live feed needs before it acts."""

from __future__ import annotations

import asyncpg

from store.scoped import InScope


async def visible_ids(conn: asyncpg.Connection, in_scope: InScope, section: str, keys: list[str]) -> set[str]:
    """Those of ``keys`` (region codes, or enterprise ids) that exist within the scope (``in_scope``
    is the region scope for regions, the enterprise scope for enterprises)."""
    if not keys:
        return set()
    args: list = [keys]
    if section == "regions":
        sql = f"SELECT t.code FROM regions t WHERE t.code = ANY($1::text[]) AND {in_scope('t.code', args)}"
    else:
        sql = f"SELECT t.id FROM enterprises t WHERE t.id = ANY($1::text[]) AND {in_scope('t.id', args)}"
    return {r[0] for r in await conn.fetch(sql, *args)}


async def region_parents(conn: asyncpg.Connection, codes: list[str]) -> dict[str, str | None]:
    """The stored parent of each region of ``codes`` that exists."""
    if not codes:
        return {}
    return {r["code"]: r["parent"] for r in await conn.fetch(
        "SELECT code, parent FROM regions WHERE code = ANY($1::text[])", codes)}


async def enterprise_places(conn: asyncpg.Connection, ids: list[str]) -> dict[str, asyncpg.Record]:
    """(id, region, risk_colour) of each enterprise of ``ids`` that exists."""
    if not ids:
        return {}
    return {r["id"]: r for r in await conn.fetch(
        "SELECT id, region, risk_colour FROM enterprises WHERE id = ANY($1::text[])", ids)}


async def sensor_in_scope(conn: asyncpg.Connection, in_scope: InScope, sensor_id: int) -> asyncpg.Record | None:
    """The sensor's description if it lies in scope."""
    args: list = [sensor_id]
    return await conn.fetchrow(
        f"""SELECT s.id, s.enterprise, s.code, s.kind, s.unit, s.location, s.location_class,
                   s.setpoints::text AS setpoints, s.range_min, s.range_max, s.active
            FROM sensors s WHERE s.id = $1 AND {in_scope('s.enterprise', args)}""",
        *args,
    )


async def gateway_in_scope(conn: asyncpg.Connection, in_scope: InScope, gateway_id: int) -> asyncpg.Record | None:
    """(enterprise, code) of the gateway if it lies in scope."""
    args: list = [gateway_id]
    return await conn.fetchrow(
        f"SELECT t.enterprise, t.code FROM gateways t WHERE t.id = $1 AND {in_scope('t.enterprise', args)}", *args)


async def active_sensor_ids(conn: asyncpg.Connection, in_scope: InScope, *, sensors: list[int],
                            enterprises: list[str], regions: list[str], limit: int) -> list[int]:
    """Ids of the active sensors in scope that are one of ``sensors``, of one of ``enterprises`` or
    within one of ``regions`` (all in scope when none is given), at most ``limit``, by id."""
    args: list = []
    where = [in_scope("s.enterprise", args), "s.active"]
    wanted = []
    if sensors:
        args.append(sensors)
        wanted.append(f"s.id = ANY(${len(args)}::int[])")
    if enterprises:
        args.append(enterprises)
        wanted.append(f"s.enterprise = ANY(${len(args)}::text[])")
    if regions:
        args.append(regions)
        wanted.append(f"s.enterprise IN (SELECT e.id FROM enterprises e WHERE e.region IN "
                      f"(SELECT api_region_subtree(r) FROM unnest(${len(args)}::text[]) r))")
    if wanted:
        where.append("(" + " OR ".join(wanted) + ")")
    args.append(limit)
    rows = await conn.fetch(f"SELECT s.id FROM sensors s WHERE {' AND '.join(where)} ORDER BY s.id "
                            f"LIMIT ${len(args)}", *args)
    return [r["id"] for r in rows]
