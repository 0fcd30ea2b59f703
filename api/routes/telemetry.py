"""Telemetry: latest value per sensor, raw readings of a sensor over a range, aggregates per
bucket (min/max/avg/last) from the minute and hour rollups, and CSV export of both."""

import csv
import datetime as dt
import io
import math
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response

from api.auth import reading, require_key
from api.context import MAX_LIST_LIMIT
from api.fastjson import FastJSON
from api.keys import ApiKey
from domain.catalog import effective_setpoints
from store import registry_records, telemetry
from store.telemetry import LATEST_TAIL_S, aggregate_source

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["telemetry"])

INT4_MAX = 2**31 - 1
SensorId = Annotated[int, Path(ge=1, le=INT4_MAX, description="dense sensor id")]
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
MAX_BUCKETS = 100_000
RAW_BUCKET_MAX_RANGE = dt.timedelta(days=2)  # sub-minute buckets read raw rows: keep ranges short
_BUCKET = re.compile(r"^([1-9][0-9]{0,5})(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

LATEST_DESCRIPTION = ("The newest committed reading: exact for sensors that reported in the last 5 minutes; for "
                      "others, as of the rollups, which trail ingest by about a minute. Live values: the WebSocket.")

Start = Annotated[dt.datetime | None, Query(description="ISO 8601; default: end minus a default span")]
End = Annotated[dt.datetime | None, Query(description="ISO 8601, exclusive; default: now")]
Format = Annotated[Literal["json", "csv"], Query()]


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    if not EARLIEST <= t <= LATEST:
        raise HTTPException(422, "times must lie between 1970 and 2200")
    return t


def _span(request: Request, start, end, default: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
    end = _utc(end) or dt.datetime.fromtimestamp(request.app.state.ctx.clock(), dt.UTC)
    start = _utc(start) or max(EARLIEST, end - default)
    if start >= end:
        raise HTTPException(422, "start must be before end")
    return start, end


def _tail_start(request: Request) -> dt.datetime:
    return dt.datetime.fromtimestamp(request.app.state.ctx.clock() - LATEST_TAIL_S, dt.UTC)


def parse_bucket(text: str) -> int:
    m = _BUCKET.match(text)
    if not m:
        raise HTTPException(422, "bucket is a width like 10s, 1m, 15m, 1h, 1d")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


async def sensor_in_scope(conn, key: ApiKey, sensor_id: int):
    row = await registry_records.sensor_in_scope(conn, key.scope.enterprise_sql, sensor_id)
    if row is None:
        raise HTTPException(404, f"sensor {sensor_id} not found")
    return row


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _csv(header: list[str], rows: list[list[Any]], filename: str) -> Response:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/telemetry/latest", summary="Latest reading of each sensor in the key's scope",
            description=LATEST_DESCRIPTION)
async def latest(
    request: Request,
    enterprise: Annotated[str | None, Query(max_length=64)] = None,
    sensor: Annotated[list[int] | None, Query(description="dense sensor ids")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    key: ApiKey = request.state.key
    if sensor and any(not 0 < s <= INT4_MAX for s in sensor):
        raise HTTPException(422, "sensor ids are positive 32-bit integers")
    async with reading(request) as conn:
        rows = await telemetry.latest_of_sensors(conn, key.scope.enterprise_sql, enterprise=enterprise,
                                                 sensors=sensor, tail_start=_tail_start(request), limit=limit,
                                                 offset=offset)
    return FastJSON([{"sensor": r[0], "enterprise": r[1], "code": r[2], "kind": r[3], "unit": r[4],
                      "ts": _iso(r[5]), "value": r[6], "quality": r[7]} for r in rows])


@router.get("/sensors/{sensor_id}/latest", summary="Latest reading of one sensor", description=LATEST_DESCRIPTION,
            responses={404: {"description": "not found in the key's scope"}})
async def sensor_latest(request: Request, sensor_id: SensorId) -> dict[str, Any]:
    async with reading(request) as conn:
        s = await sensor_in_scope(conn, request.state.key, sensor_id)
        r = await telemetry.latest_of_sensor(conn, sensor_id, _tail_start(request))
    return {"sensor": s["id"], "enterprise": s["enterprise"], "code": s["code"], "kind": s["kind"],
            "unit": s["unit"], "ts": _iso(r["ts"]), "value": _num(r["value"]), "quality": r["quality"]}


@router.get("/sensors/{sensor_id}/setpoints", summary="Effective setpoints of a sensor (defaults + overrides)",
            responses={404: {"description": "not found in the key's scope"}})
async def sensor_setpoints(request: Request, sensor_id: SensorId) -> dict[str, Any]:
    import json

    async with reading(request) as conn:
        s = await sensor_in_scope(conn, request.state.key, sensor_id)
    try:
        points = effective_setpoints(s["kind"], s["location_class"], json.loads(s["setpoints"] or "{}"))
    except ValueError:
        points = ()
    return {
        "sensor": s["id"], "kind": s["kind"], "unit": s["unit"], "location_class": s["location_class"],
        "range": [_num(s["range_min"]), _num(s["range_max"])],
        "setpoints": [{"name": p.name, "value": _num(p.value), "side": p.side, "severity": p.severity.name.lower(),
                       "clear": _num(p.clear), "source": p.source, "regulatory": p.regulatory} for p in points],
    }


@router.get("/sensors/{sensor_id}/readings", summary="Raw readings of a sensor over a range (JSON or CSV)",
            responses={404: {"description": "not found in the key's scope"}})
async def readings(
    request: Request, sensor_id: SensorId, start: Start = None, end: End = None,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000)] = None, format: Format = "json",
):
    ctx = request.app.state.ctx
    start, end = _span(request, start, end, dt.timedelta(hours=1))
    limit = min(limit or ctx.settings.max_raw_rows, ctx.settings.max_raw_rows)
    async with reading(request) as conn:
        await sensor_in_scope(conn, request.state.key, sensor_id)
        rows = await telemetry.raw_readings(conn, sensor_id, start, end, limit=limit,
                                            timeout_s=ctx.settings.statement_timeout_s)
    if format == "csv":
        return _csv(["ts", "value", "quality", "device_ts"],
                    [[r["ts"].isoformat(), repr(r["value"]), r["quality"], _iso(r["device_ts"]) or ""] for r in rows],
                    f"sensor-{sensor_id}-readings.csv")
    return FastJSON({
        "sensor": sensor_id, "start": start.isoformat(), "end": end.isoformat(), "truncated": len(rows) == limit,
        "ts": [r[0].isoformat() for r in rows], "value": [r[1] for r in rows], "quality": [r[2] for r in rows],
    })


@router.get("/sensors/{sensor_id}/aggregates",
            summary="min/max/avg/last per bucket, from the hour or minute rollup (JSON or CSV)",
            description="Buckets are aligned to their width (UTC). Whole-hour widths read the hour rollup, "
                        "whole-minute widths the minute rollup; finer widths read raw readings (ranges up to "
                        "2 days). The rollups trail ingest by about a minute.",
            responses={404: {"description": "not found in the key's scope"}})
async def aggregates(
    request: Request, sensor_id: SensorId, start: Start = None, end: End = None,
    bucket: Annotated[str, Query(max_length=10, description="e.g. 1m, 15m, 1h, 1d")] = "1h",
    format: Format = "json",
):
    ctx = request.app.state.ctx
    bucket_s = parse_bucket(bucket)
    start, end = _span(request, start, end, dt.timedelta(days=1))
    if (end - start).total_seconds() / bucket_s > MAX_BUCKETS:
        raise HTTPException(422, f"at most {MAX_BUCKETS} buckets per request; widen the bucket")
    source = aggregate_source(bucket_s)
    if source == "readings" and end - start > RAW_BUCKET_MAX_RANGE:
        raise HTTPException(422, "buckets finer than a minute are limited to 2-day ranges")
    async with reading(request) as conn:
        await sensor_in_scope(conn, request.state.key, sensor_id)
        rows = await telemetry.aggregates(conn, sensor_id, bucket_s, start, end,
                                          timeout_s=ctx.settings.statement_timeout_s)
    if format == "csv":
        return _csv(["bucket", "min", "max", "avg", "last", "count"],
                    [[r["bucket"].isoformat(), r["min"], r["max"], r["avg"], r["last"], r["count"]] for r in rows],
                    f"sensor-{sensor_id}-{bucket}.csv")
    return FastJSON({
        "sensor": sensor_id, "bucket": bucket, "source": source, "start": start.isoformat(), "end": end.isoformat(),
        "buckets": [{"bucket": r[0].isoformat(), "min": r[1], "max": r[2], "avg": r[3], "last": r[4], "count": r[5]}
                    for r in rows],
    })
