"""Risk map (四色图): assessed, live and dynamic colours of regions and enterprises in the key's
scope, from the alerts package's colours of places, with open alerts counted by grade."""

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from alerts import places
from alerts.colours import Colour
from alerts.lifecycle import OPEN_STATES
from api.auth import reading, require_key
from api.keys import ApiKey

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["risk map"])

_OPEN = sorted(s.value for s in OPEN_STATES)


def _zero() -> dict[str, int]:
    return {c.id: 0 for c in Colour}


@router.get("/riskmap", summary="Colours of every region and enterprise in scope, open alerts by grade")
async def riskmap(
    request: Request,
    level: Annotated[Literal["province", "city", "county"] | None, Query(description="regions of one level")] = None,
) -> dict[str, Any]:
    key: ApiKey = request.state.key
    scope = key.scope
    async with reading(request) as conn:
        if scope.province:
            regions = await places.region_colours(conn, level=level)
            enterprises = await places.enterprise_colours(conn)
        elif scope.regional:
            own = await places.place_colour(conn, "region", scope.id)
            below = await places.region_colours(conn, parent=scope.id)
            regions = [r for r in [own, *below] if r is not None and (level is None or r.level == level)]
            enterprises = await places.enterprise_colours(conn, region=scope.id)
        else:
            regions = []
            enterprises = await places.enterprise_colours(conn, [scope.id])
        args: list = [_OPEN]
        inside = scope.enterprise_sql("a.enterprise", args)
        by_enterprise = await conn.fetch(
            f"""SELECT a.enterprise AS place, a.grade, count(*) AS n FROM alerts a
                WHERE a.state = ANY($1::text[]) AND {inside} GROUP BY 1, 2""", *args)
        args = [_OPEN]
        inside = scope.enterprise_sql("a.enterprise", args)
        by_region = await conn.fetch(
            f"""SELECT r AS place, a.grade, count(*) AS n FROM alerts a, unnest(a.regions) r
                WHERE a.state = ANY($1::text[]) AND {inside} GROUP BY 1, 2""", *args)

    def counts(rows) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["place"], _zero())[Colour(r["grade"]).id] = r["n"]
        return out

    ce, cr = counts(by_enterprise), counts(by_region)
    return {
        "scope": str(scope),
        "regions": [{**dataclasses.asdict(p), "open_by_grade": cr.get(p.id, _zero())} for p in regions],
        "enterprises": [{**dataclasses.asdict(p), "open_by_grade": ce.get(p.id, _zero())} for p in enterprises],
    }
