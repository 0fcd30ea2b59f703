"""Alerts: list and filter, detail with the audit trail, operator actions and silences.

Every change goes through the alerts package (``alerts.transitions``, ``alerts.silences``) in the
API's transaction, after a scope check in SQL, and is recorded in the API's write audit with the
key; the alerts journal names the key as the actor (``api-key:{id}:{name}``). Reads are plain
scoped SELECTs over the alerts package's tables.
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from alerts import Alert, records, render, silences, transitions
from alerts.colours import Colour
from alerts.lifecycle import OPEN_STATES, State
from alerts.records import silences as silence_rows
from api.auth import audit, reading, require_key, writing
from api.context import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
from api.keys import ApiKey
from api.scope import Scope

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["alerts"])

ID_MAX = 2**62
AlertId = Annotated[int, Path(ge=1, le=ID_MAX)]
SilenceId = Annotated[int, Path(ge=1, le=ID_MAX)]
Version = Annotated[int | None, Field(ge=1, le=2**31 - 1, description="fail with 409 if the alert moved on")]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
COLOURS = [c.id for c in Colour]
STATES = [s.value for s in State]
SHELVE_MAX_S = transitions.SHELVE_MAX_S


def _view(request: Request, alert: Alert) -> dict[str, Any]:
    """The alert as JSON, with ``display``: its place and finding named as operators read them, in
    Chinese and English (``alerts.render.display``), so a client need not know registry ids."""
    ctx = request.app.state.ctx
    rule = ctx.alerts_policy.grading.rule_named(alert.grading_rule)
    return {**alert.as_dict(), "display": render.display(alert, ctx.registry(), rule)}


def _open_states_sql() -> str:
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(OPEN_STATES)) + ")"


async def _visible_alert(conn, key: ApiKey, alert_id: int) -> None:
    args: list = [alert_id]
    if not await records.visible(conn, alert_id, key.scope.enterprise_sql("enterprise", args), *args[1:]):
        raise HTTPException(404, f"alert {alert_id} not found")


def _us(t: dt.datetime | None) -> int | None:
    if t is None:
        return None
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t
    if not dt.datetime(1970, 1, 1, tzinfo=dt.UTC) <= t <= dt.datetime(2200, 1, 1, tzinfo=dt.UTC):
        raise HTTPException(422, "times must lie between 1970 and 2200")
    return int(t.timestamp() * 1e6)


@router.get("/alerts", summary="Alerts in the key's scope, newest first, filtered")
async def list_alerts(
    request: Request,
    grade: Annotated[list[str] | None, Query(description="colour ids: blue yellow orange red")] = None,
    state: Annotated[list[str] | None, Query(description="firing acknowledged latched resolved closed")] = None,
    open: Annotated[bool | None, Query(description="only open (firing, acknowledged, latched) alerts")] = None,
    region: Annotated[str | None, Query(pattern=r"^[0-9]{6}$")] = None,
    industry: Annotated[str | None, Query(max_length=40)] = None,
    enterprise: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[dt.datetime | None, Query(description="started at or after")] = None,
    until: Annotated[dt.datetime | None, Query(description="started before")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    key: ApiKey = request.state.key
    args: list = []
    where = [key.scope.enterprise_sql("enterprise", args)]
    if grade:
        try:
            ranks = sorted({int(Colour.parse(g)) for g in grade})
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        args.append(ranks)
        where.append(f"grade = ANY(${len(args)}::smallint[])")
    if state:
        bad = [s for s in state if s not in STATES]
        if bad:
            raise HTTPException(422, f"unknown state {bad[0]!r}; use {', '.join(STATES)}")
        args.append(state)
        where.append(f"state = ANY(${len(args)}::text[])")
    if open is not None:
        where.append(("" if open else "NOT ") + f"state IN {_open_states_sql()}")
    for column, value in (("industry", industry), ("enterprise", enterprise)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if region is not None:
        args.append(region)
        where.append(f"${len(args)}::text = ANY(regions)")
    if since is not None:
        args.append(_us(since))
        where.append(f"started_us >= ${len(args)}")
    if until is not None:
        args.append(_us(until))
        where.append(f"started_us < ${len(args)}")
    args += [limit, offset]
    async with reading(request) as conn:
        found = await records.fetch(
            conn, f"{' AND '.join(where)} ORDER BY id DESC LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args)
    return [_view(request, a) for a in found]


@router.get("/alerts/{alert_id}", summary="One alert with its audit trail (the alerts journal)",
            responses={404: {"description": "not found in the key's scope"}})
async def get_alert(request: Request, alert_id: AlertId) -> dict[str, Any]:
    async with reading(request) as conn:
        await _visible_alert(conn, request.state.key, alert_id)
        alert = await transitions.get_alert(conn, alert_id)
        history = await transitions.history(conn, alert_id)
    return {**_view(request, alert), "history": history}


# --------------------------------------------------------------------------- actions


class Note(BaseModel):
    comment: Annotated[str | None, Field(max_length=4000)] = None
    expected_version: Version = None


class CommentBody(BaseModel):
    text: Text
    expected_version: Version = None


class AssignBody(Note):
    assignee: Annotated[str | None, Field(max_length=200, description="null to unassign")] = None


class ShelveBody(BaseModel):
    reason: Text
    duration_s: Annotated[float, Field(gt=0, le=SHELVE_MAX_S)] = 3600.0
    expected_version: Version = None


class ResolveBody(Note):
    force: bool = False


async def _act(request: Request, alert_id: int, action: str, detail: dict, call) -> dict[str, Any]:
    key: ApiKey = request.state.key
    async with writing(request) as conn:
        await _visible_alert(conn, key, alert_id)
        alert = await call(conn, key.actor)
        await audit(conn, key, f"alert.{action}", f"alert:{alert_id}", detail)
    return _view(request, alert)


_NOT_FOUND = {404: {"description": "not found in the key's scope"},
              409: {"description": "not allowed in the alert's state, or expected_version is stale"}}


@router.post("/alerts/{alert_id}/acknowledge", responses=_NOT_FOUND)
async def acknowledge(request: Request, alert_id: AlertId, body: Note) -> dict[str, Any]:
    return await _act(request, alert_id, "acknowledge", body.model_dump(), lambda c, actor: transitions.acknowledge(
        c, alert_id, actor, body.comment, body.expected_version))


@router.post("/alerts/{alert_id}/comment", responses=_NOT_FOUND)
async def comment(request: Request, alert_id: AlertId, body: CommentBody) -> dict[str, Any]:
    return await _act(request, alert_id, "comment", body.model_dump(), lambda c, actor: transitions.comment(
        c, alert_id, actor, body.text, body.expected_version))


@router.post("/alerts/{alert_id}/assign", responses=_NOT_FOUND)
async def assign(request: Request, alert_id: AlertId, body: AssignBody) -> dict[str, Any]:
    return await _act(request, alert_id, "assign", body.model_dump(), lambda c, actor: transitions.assign(
        c, alert_id, actor, body.assignee, body.comment, body.expected_version))


@router.post("/alerts/{alert_id}/shelve", responses=_NOT_FOUND)
async def shelve(request: Request, alert_id: AlertId, body: ShelveBody) -> dict[str, Any]:
    now_us = int(request.app.state.ctx.clock() * 1e6)
    until_us = now_us + int(body.duration_s * 1e6)
    return await _act(request, alert_id, "shelve", body.model_dump(), lambda c, actor: transitions.shelve(
        c, alert_id, actor, body.reason, until_us, body.expected_version, now_us=now_us))


@router.post("/alerts/{alert_id}/unshelve", responses=_NOT_FOUND)
async def unshelve(request: Request, alert_id: AlertId, body: Note) -> dict[str, Any]:
    return await _act(request, alert_id, "unshelve", body.model_dump(), lambda c, actor: transitions.unshelve(
        c, alert_id, actor, body.comment, body.expected_version))


@router.post("/alerts/{alert_id}/reset-latch", responses=_NOT_FOUND)
async def reset_latch(request: Request, alert_id: AlertId, body: Note) -> dict[str, Any]:
    return await _act(request, alert_id, "reset_latch", body.model_dump(), lambda c, actor: transitions.reset_latch(
        c, alert_id, actor, body.comment, body.expected_version))


@router.post("/alerts/{alert_id}/resolve", responses=_NOT_FOUND)
async def resolve(request: Request, alert_id: AlertId, body: ResolveBody) -> dict[str, Any]:
    return await _act(request, alert_id, "resolve", body.model_dump(), lambda c, actor: transitions.resolve(
        c, alert_id, actor, body.comment, body.expected_version, force=body.force))


@router.post("/alerts/{alert_id}/close", responses=_NOT_FOUND)
async def close(request: Request, alert_id: AlertId, body: Note) -> dict[str, Any]:
    return await _act(request, alert_id, "close", body.model_dump(), lambda c, actor: transitions.close(
        c, alert_id, actor, body.comment, body.expected_version))


# --------------------------------------------------------------------------- silences


def silence_scope_sql(scope: Scope, args: list) -> str:
    """A silence is within a scope when every enterprise it names is, or (regional keys) every
    region it names is. Silences naming neither are the province's."""
    if scope.province:
        return "TRUE"
    inside = scope.enterprise_sql("x.v", args)
    by_enterprise = (
        "(jsonb_typeof(matchers->'enterprise') = 'array' AND NOT EXISTS (SELECT 1 FROM "
        f"jsonb_array_elements_text(matchers->'enterprise') x(v) WHERE NOT ({inside})))"
    )
    if not scope.regional:
        return by_enterprise
    region_inside = scope.region_sql("x.v", args)
    by_region = (
        "(jsonb_typeof(matchers->'region') = 'array' AND NOT EXISTS (SELECT 1 FROM "
        f"jsonb_array_elements_text(matchers->'region') x(v) WHERE NOT ({region_inside})))"
    )
    return f"({by_enterprise} OR {by_region})"


Pattern = Annotated[str, Field(min_length=1, max_length=200)]


class SilenceBody(BaseModel):
    matchers: Annotated[dict[Annotated[str, Field(max_length=40)], Pattern | list[Pattern]],
                        Field(description="label → pattern(s); keys below the province must name their "
                                          "enterprise(s) or (city/county keys) region(s)")]
    starts: dt.datetime | None = None
    ends: dt.datetime
    reason: Text


class SilenceUpdate(BaseModel):
    matchers: dict[Annotated[str, Field(max_length=40)], Pattern | list[Pattern]] | None = None
    ends: dt.datetime | None = None
    reason: Annotated[str | None, Field(min_length=1, max_length=4000)] = None
    expected_version: Version = None


async def _visible_silence(conn, key: ApiKey, silence_id: int) -> None:
    args: list = [silence_id]
    if not await silence_rows.visible(conn, silence_id, silence_scope_sql(key.scope, args), *args[1:]):
        raise HTTPException(404, f"silence {silence_id} not found")


async def _check_silence_scope(conn, key: ApiKey, silence_id: int) -> None:
    """After a create or update, inside its transaction: the silence must be within the scope."""
    args: list = [silence_id]
    if not await silence_rows.visible(conn, silence_id, silence_scope_sql(key.scope, args), *args[1:]):
        raise HTTPException(403, "a key below the province may only silence alerts of its own enterprises "
                                 "(matcher enterprise: [ids]) or regions (matcher region: [codes])")


@router.get("/silences", tags=["silences"], summary="Silences within the key's scope, newest first")
async def list_silences(
    request: Request, active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
) -> list[dict[str, Any]]:
    key: ApiKey = request.state.key
    now_us = int(request.app.state.ctx.clock() * 1e6)
    args: list = []
    where = [silence_scope_sql(key.scope, args)]
    if active is not None:
        args.append(now_us)
        cond = f"(starts_us <= ${len(args)} AND ends_us > ${len(args)})"
        where.append(cond if active else f"NOT {cond}")
    async with reading(request) as conn:
        ids = await silence_rows.ids_where(conn, " AND ".join(where), args, limit)
        found = [await silences.get_silence(conn, i) for i in ids]
    return [s.as_dict() for s in found]


@router.post("/silences", tags=["silences"], status_code=201,
             responses={403: {"description": "the matchers reach beyond the key's scope"}})
async def create_silence(request: Request, body: SilenceBody) -> dict[str, Any]:
    key: ApiKey = request.state.key
    async with writing(request) as conn:
        s = await silences.create_silence(conn, body.matchers, _us(body.starts), _us(body.ends), key.actor,
                                          body.reason, now_us=int(request.app.state.ctx.clock() * 1e6))
        await _check_silence_scope(conn, key, s.id)
        await audit(conn, key, "silence.create", f"silence:{s.id}", body.model_dump(mode="json"))
    return s.as_dict()


@router.get("/silences/{silence_id}", tags=["silences"], responses={404: {"description": "not in scope"}})
async def get_silence(request: Request, silence_id: SilenceId) -> dict[str, Any]:
    async with reading(request) as conn:
        await _visible_silence(conn, request.state.key, silence_id)
        s = await silences.get_silence(conn, silence_id)
    return s.as_dict()


@router.put("/silences/{silence_id}", tags=["silences"], responses={404: {"description": "not in scope"}})
async def update_silence(request: Request, silence_id: SilenceId, body: SilenceUpdate) -> dict[str, Any]:
    key: ApiKey = request.state.key
    async with writing(request) as conn:
        await _visible_silence(conn, key, silence_id)
        s = await silences.update_silence(conn, silence_id, key.actor, matchers=body.matchers,
                                          ends_us=_us(body.ends), reason=body.reason,
                                          expected_version=body.expected_version,
                                          now_us=int(request.app.state.ctx.clock() * 1e6))
        await _check_silence_scope(conn, key, silence_id)
        await audit(conn, key, "silence.update", f"silence:{silence_id}", body.model_dump(mode="json"))
    return s.as_dict()


@router.delete("/silences/{silence_id}", tags=["silences"], summary="Expire a silence now",
               responses={404: {"description": "not in scope"}})
async def expire_silence(request: Request, silence_id: SilenceId) -> dict[str, Any]:
    key: ApiKey = request.state.key
    async with writing(request) as conn:
        await _visible_silence(conn, key, silence_id)
        s = await silences.expire_silence(conn, silence_id, key.actor,
                                          now_us=int(request.app.state.ctx.clock() * 1e6))
        await audit(conn, key, "silence.expire", f"silence:{silence_id}")
    return s.as_dict()
