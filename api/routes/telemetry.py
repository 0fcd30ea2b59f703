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

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["telemetry"])

INT4_MAX = 2**31 - 1
SensorId = Annotated[int, Path(ge=1, le=INT4_MAX, description="dense sensor id")]
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
MAX_BUCKETS = 100_000
RAW_BUCKET_MAX_RANGE = dt.timedelta(days=2)  # sub-minute buckets read raw rows: keep ranges short
_BUCKET = re.compile(r"^([1-9][0-9]{0,5})(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# The rollup a bucket width reads: whole hours from the hour rollup, whole minutes from the
# minute rollup, anything finer from the raw readings.
AGG_ROLLUP_SQL = """
    SELECT time_bucket($2::interval, bucket) AS bucket, min(min) AS min, max(max) AS max,
           sum(sum) / sum(count) AS avg, last(last_value, last_ts) AS last, sum(count)::bigint AS count
    FROM {table}
    WHERE sensor = $1 AND bucket >= time_bucket($2::interval, $3::timestamptz) AND bucket < $4
    GROUP BY 1 ORDER BY 1"""
AGG_RAW_SQL = """
    SELECT time_bucket($2::interval, ts) AS bucket, min(value) AS min, max(value) AS max,
           avg(value) AS avg, last(value, ts) AS last, count(*) AS count
    FROM readings
    WHERE sensor = $1 AND ts >= time_bucket($2::interval, $3::timestamptz) AND ts < $4
    GROUP BY 1 ORDER BY 1"""

# Latest values: each sensor's row in sensor_latest (kept by the rollup worker, which trails ingest
# by about a minute), overtaken by its newest raw reading of the last LATEST_TAIL_S if there is
# one — an index probe into the newest chunk or two, never a walk over the hypertable.
LATEST_TAIL_S = 300.0
LATEST_JOIN = """
    LEFT JOIN sensor_latest l ON l.sensor = s.id
    LEFT JOIN LATERAL (SELECT ts, value, quality FROM readings
                       WHERE sensor = s.id AND ts >= {since} ORDER BY ts DESC LIMIT 1) t ON true"""
LATEST_COLUMNS = """
    CASE WHEN t.ts IS NULL THEN l.ts ELSE t.ts END AS ts,
    CASE WHEN t.ts IS NULL THEN l.value ELSE t.value END AS value,
    CASE WHEN t.ts IS NULL THEN l.quality ELSE t.quality END AS quality"""
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
    args: list = [sensor_id]
    row = await conn.fetchrow(
        f"""SELECT s.id, s.enterprise, s.code, s.kind, s.unit, s.location, s.location_class,
                   s.setpoints::text AS setpoints, s.range_min, s.range_max, s.active
            FROM sensors s WHERE s.id = $1 AND {key.scope.enterprise_sql('s.enterprise', args)}""",
        *args,
    )
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
    args: list = []
    where = [key.scope.enterprise_sql("s.enterprise", args)]
    if enterprise is not None:
        args.append(enterprise)
        where.append(f"s.enterprise = ${len(args)}")
    if sensor:
        if any(not 0 < s <= INT4_MAX for s in sensor):
            raise HTTPException(422, "sensor ids are positive 32-bit integers")
        args.append(sensor)
        where.append(f"s.id = ANY(${len(args)}::int[])")
    args += [_tail_start(request), limit, offset]
    async with reading(request) as conn:
        rows = await conn.fetch(
            f"""SELECT s.id AS sensor, s.enterprise, s.code, s.kind, s.unit, {LATEST_COLUMNS}
                FROM sensors s {LATEST_JOIN.format(since=f"${len(args) - 2}")}
                WHERE {' AND '.join(where)} ORDER BY s.id LIMIT ${len(args) - 1} OFFSET ${len(args)}""",
            *args,
        )
    return FastJSON([{"sensor": r[0], "enterprise": r[1], "code": r[2], "kind": r[3], "unit": r[4],
                      "ts": _iso(r[5]), "value": r[6], "quality": r[7]} for r in rows])


@router.get("/sensors/{sensor_id}/latest", summary="Latest reading of one sensor", description=LATEST_DESCRIPTION,
            responses={404: {"description": "not found in the key's scope"}})
async def sensor_latest(request: Request, sensor_id: SensorId) -> dict[str, Any]:
    async with reading(request) as conn:
        s = await sensor_in_scope(conn, request.state.key, sensor_id)
        r = await conn.fetchrow(f"SELECT {LATEST_COLUMNS} FROM sensors s {LATEST_JOIN.format(since='$2')}"
                                " WHERE s.id = $1", sensor_id, _tail_start(request))
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
        rows = await conn.fetch(
            "SELECT ts, value, quality, device_ts FROM readings WHERE sensor = $1 AND ts >= $2 AND ts < $3"
            " ORDER BY ts LIMIT $4", sensor_id, start, end, limit,
            timeout=ctx.settings.statement_timeout_s,
        )
    if format == "csv":
        return _csv(["ts", "value", "quality", "device_ts"],
                    [[r["ts"].isoformat(), repr(r["value"]), r["quality"], _iso(r["device_ts"]) or ""] for r in rows],
                    f"sensor-{sensor_id}-readings.csv")
    return FastJSON({
        "sensor": sensor_id, "start": start.isoformat(), "end": end.isoformat(), "truncated": len(rows) == limit,
        "ts": [r[0].isoformat() for r in rows], "value": [r[1] for r in rows], "quality": [r[2] for r in rows],
    })


def aggregate_source(bucket_s: int) -> str:
    """The table a bucket width reads: ``readings_1h``, ``readings_1m`` or ``readings``."""
    if bucket_s % 3600 == 0:
        return "readings_1h"
    if bucket_s % 60 == 0:
        return "readings_1m"
    return "readings"


def aggregate_sql(bucket_s: int) -> str:
    table = aggregate_source(bucket_s)
    return AGG_RAW_SQL if table == "readings" else AGG_ROLLUP_SQL.format(table=table)


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
        rows = await conn.fetch(aggregate_sql(bucket_s), sensor_id, dt.timedelta(seconds=bucket_s), start, end,
                                timeout=ctx.settings.statement_timeout_s)
    if format == "csv":
        return _csv(["bucket", "min", "max", "avg", "last", "count"],
                    [[r["bucket"].isoformat(), r["min"], r["max"], r["avg"], r["last"], r["count"]] for r in rows],
                    f"sensor-{sensor_id}-{bucket}.csv")
    return FastJSON({
        "sensor": sensor_id, "bucket": bucket, "source": source, "start": start.isoformat(), "end": end.isoformat(),
        "buckets": [{"bucket": r[0].isoformat(), "min": r[1], "max": r[2], "avg": r[3], "last": r[4], "count": r[5]}
                    for r in rows],
    })
