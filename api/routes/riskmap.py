"""Risk map (四色图): assessed, live and dynamic colours of regions and enterprises in the key's
scope, from the alerts package's colours of places, with open alerts counted by grade."""

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from alerts import open_by_place, places
from alerts.colours import Colour
from api.auth import reading, require_key
from api.keys import ApiKey

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["risk map"])

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
        by_enterprise = await open_by_place.open_by_enterprise(conn, scope.enterprise_sql)
        by_region = await open_by_place.open_by_region(conn, scope.enterprise_sql)

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
