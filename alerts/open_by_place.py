"""Open alerts counted by grade, per enterprise and per region, within a key's scope (the risk
map's counts). ``in_scope`` gives the scope's condition on a column holding an enterprise id,
appending its parameters to the list it is handed."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from alerts.lifecycle import OPEN_STATES

_OPEN = sorted(s.value for s in OPEN_STATES)


async def open_by_enterprise(conn: asyncpg.Connection, in_scope: Callable[[str, list], str]) -> list[asyncpg.Record]:
    """(place, grade, n): open alerts per enterprise and grade."""
    args: list = [_OPEN]
    return await conn.fetch(
        f"""SELECT a.enterprise AS place, a.grade, count(*) AS n FROM alerts a
            WHERE a.state = ANY($1::text[]) AND {in_scope("a.enterprise", args)} GROUP BY 1, 2""", *args)


async def open_by_region(conn: asyncpg.Connection, in_scope: Callable[[str, list], str]) -> list[asyncpg.Record]:
    """(place, grade, n): open alerts per region (every region an alert names) and grade."""
    args: list = [_OPEN]
    return await conn.fetch(
        f"""SELECT r AS place, a.grade, count(*) AS n FROM alerts a, unnest(a.regions) r
            WHERE a.state = ANY($1::text[]) AND {in_scope("a.enterprise", args)} GROUP BY 1, 2""", *args)
