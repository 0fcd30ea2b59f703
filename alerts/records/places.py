"""Colours of places for the 四色图: assessed risk colour, live warning colour, dynamic colour.

- **assessed** (风险, 静态评估): the enterprise's risk colour from the registry; for a region, the
  highest assessed colour among its active enterprises (yujing's choice: a region is as risky as
  its riskiest enterprise).
- **live** (预警): the highest grade of the open alerts (firing, acknowledged or latched, shelved
  ones included — shelving hides an alarm from a screen, not from the map) beneath the place.
- **dynamic**: the higher of the two, what the map shows by default.

They are views over ``alerts``, ``enterprises`` and ``regions`` (migration 0010), so they are
current the moment an alert transition commits; the API reads them through these functions.
"""

from __future__ import annotations

import dataclasses

import asyncpg


@dataclasses.dataclass(frozen=True, slots=True)
class PlaceColour:
    kind: str  # enterprise | region
    id: str
    name: str
    level: str  # enterprise | province | city | county
    parent: str | None  # region of an enterprise, parent region of a region
    assessed: str | None
    live: str | None
    dynamic: str | None
    open_alerts: int


async def enterprise_colours(conn: asyncpg.Connection, enterprises: list[str] | None = None,
                             region: str | None = None) -> list[PlaceColour]:
    """Enterprises (optionally only those listed, or those within ``region`` and its subregions)."""
    sql = "SELECT c.* FROM alert_enterprise_colours c"
    args: list = []
    where = []
    if enterprises is not None:
        args.append(list(enterprises))
        where.append(f"c.enterprise = ANY(${len(args)}::text[])")
    if region is not None:
        args.append(region)
        where.append(
            f"""c.region IN (WITH RECURSIVE sub(code) AS (SELECT ${len(args)}::text UNION
                 SELECT r.code FROM regions r JOIN sub ON r.parent = sub.code) SELECT code FROM sub)"""
        )
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = await conn.fetch(sql + " ORDER BY c.enterprise", *args)
    return [PlaceColour("enterprise", r["enterprise"], r["name"], "enterprise", r["region"], r["assessed"], r["live"],
                        r["dynamic"], r["open_alerts"]) for r in rows]


async def region_colours(conn: asyncpg.Connection, level: str | None = None,
                         parent: str | None = None) -> list[PlaceColour]:
    """Regions, optionally of one level (province | city | county) or the children of ``parent``."""
    sql = "SELECT * FROM alert_region_colours"
    args: list = []
    where = []
    if level is not None:
        args.append(level)
        where.append(f"level = ${len(args)}")
    if parent is not None:
        args.append(parent)
        where.append(f"parent = ${len(args)}")
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = await conn.fetch(sql + " ORDER BY region", *args)
    return [PlaceColour("region", r["region"], r["name"], r["level"], r["parent"], r["assessed"], r["live"],
                        r["dynamic"], r["open_alerts"]) for r in rows]


async def place_colour(conn: asyncpg.Connection, kind: str, place_id: str) -> PlaceColour | None:
    if kind == "enterprise":
        found = await enterprise_colours(conn, [place_id])
    elif kind == "region":
        rows = await conn.fetch("SELECT * FROM alert_region_colours WHERE region = $1", place_id)
        found = [PlaceColour("region", r["region"], r["name"], r["level"], r["parent"], r["assessed"], r["live"],
                             r["dynamic"], r["open_alerts"]) for r in rows]
    else:
        raise ValueError(f"kind must be enterprise or region, not {kind!r}")
    return found[0] if found else None
