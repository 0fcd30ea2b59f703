"""Registry: create, read, update and deactivate regions, enterprises, zones, gateways, sensors
and major hazard sources (重大危险源), and bulk import of the CLI's YAML.

Creates and updates go through ``store.registry.import_registry`` (the CLI's own validation:
kinds, units, setpoints that may only tighten, references) inside the API's transaction, between
two scope checks in SQL (:func:`import_scoped`). Below the province administrator, every region
and enterprise named must already exist within the key's scope, and every other entry's
enterprise too — checked before anything else, so a 404 tells nothing about what exists outside
the scope; regions and enterprises are created, re-parented and moved by the administrator only
(403). After the import every entry must still lie in the scope; anything else rolls back.
Deactivating sets ``active = false`` (regions, which have no such flag, are deleted when unused).
"""

import asyncio
import dataclasses
import json
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel

from api.auth import audit, reading, require_key, writing
from api.context import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
from api.keys import ApiKey
from api.routes.registry_scope import Forbidden, OutOfScope, entry_keys, import_scoped, visible_ids
from api.scope import Scope
from store.registry import REGISTRY_CHANNEL
from store.registry_file import (
    EnterpriseEntry,
    GatewayEntry,
    HazardSourceEntry,
    RegionEntry,
    RegistryFile,
    RegistryFileError,
    SensorEntry,
    ZoneEntry,
    parse_registry_document,
    parse_registry_file,
)
from store.secretbox import redact_url

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)])

INT4_MAX = 2**31 - 1
DenseId = Annotated[int, Path(ge=1, le=INT4_MAX, description="dense registry id")]
EnterpriseId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
RegionCode = Annotated[str, Path(pattern=r"^[0-9]{6}$")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


# --------------------------------------------------------------------------- entities


@dataclasses.dataclass(frozen=True)
class Entity:
    section: str  # RegistryFile field, also the URL segment
    singular: str
    table: str
    entry: type[BaseModel]
    select: str  # columns of `t` (and joins) for the JSON view
    joins: str = ""
    dense: bool = True  # keyed by a dense integer id (else by its code / enterprise id)

    def scope_sql(self, scope: Scope, args: list) -> str:
        if self.section == "regions":
            return scope.region_sql("t.code", args)
        if self.section == "enterprises":
            return scope.enterprise_sql("t.id", args)
        return scope.enterprise_sql("t.enterprise", args)


ENTITIES = {
    e.section: e
    for e in (
        Entity("regions", "region", "regions", RegionEntry, "t.code, t.name, t.parent, t.level, t.updated_at",
               dense=False),
        Entity("enterprises", "enterprise", "enterprises", EnterpriseEntry,
               "t.id, t.name, t.region, t.industry, t.risk_colour, t.risk_assessed_on, t.contacts::text AS contacts,"
               " t.active, t.updated_at", dense=False),
        Entity("zones", "zone", "zones", ZoneEntry,
               "t.id, t.enterprise, t.code, t.name, t.kind, t.active, t.updated_at, ARRAY(SELECT z2.code FROM"
               " zone_adjacency a JOIN zones z2 ON z2.id = CASE WHEN a.zone_a = t.id THEN a.zone_b ELSE a.zone_a END"
               " WHERE t.id IN (a.zone_a, a.zone_b) ORDER BY 1) AS adjacent"),
        Entity("gateways", "gateway", "gateways", GatewayEntry,
               "t.id, t.enterprise, t.code, t.name, z.code AS zone, t.expected_interval_s, t.active, t.online,"
               " t.status_at, t.last_seen_at, t.stale, t.updated_at", joins="LEFT JOIN zones z ON z.id = t.zone"),
        Entity("sensors", "sensor", "sensors", SensorEntry,
               "t.id, t.enterprise, t.code, g.code AS gateway, z.code AS zone, t.kind, t.unit, t.location,"
               " t.location_class, t.expected_interval_s, t.range_min, t.range_max, t.setpoints::text AS setpoints,"
               " t.active, t.updated_at",
               joins="JOIN gateways g ON g.id = t.gateway LEFT JOIN zones z ON z.id = t.zone"),
        Entity("hazard_sources", "hazard_source", "hazard_sources", HazardSourceEntry,
               "t.id, t.enterprise, t.code, t.name, t.level, t.active, t.updated_at, ARRAY(SELECT s.code FROM"
               " hazard_source_sensors hs JOIN sensors s ON s.id = hs.sensor WHERE hs.hazard_source = t.id"
               " ORDER BY 1) AS sensors"),
    )
}


def _row(r: asyncpg.Record) -> dict[str, Any]:
    d = dict(r)
    for k in ("contacts", "setpoints"):
        if isinstance(d.get(k), str):
            d[k] = json.loads(d[k])
    if d.get("contacts"):
        d["contacts"] = [_contact_view(c) for c in d["contacts"]]
    return d


def _contact_view(c: dict[str, Any]) -> dict[str, Any]:
    """A stored contact as shown: secrets are write-only (the webhook without its query, whether a
    signing secret is set)."""
    out = {k: v for k, v in c.items() if k not in ("webhook_enc", "secret_enc", "secret", "webhook_host")}
    if c.get("webhook"):
        out["webhook"] = redact_url(c["webhook"])
    out["secret_set"] = bool(c.get("secret_enc") or c.get("secret"))
    return out


async def _get(conn, ent: Entity, scope: Scope, key_value) -> dict[str, Any] | None:
    args: list = [key_value]
    key_col = "t.id" if ent.dense or ent.section == "enterprises" else "t.code"
    row = await conn.fetchrow(
        f"SELECT {ent.select} FROM {ent.table} t {ent.joins} WHERE {key_col} = $1 AND {ent.scope_sql(scope, args)}",
        *args,
    )
    return None if row is None else _row(row)


def _not_found(ent: Entity, key_value) -> HTTPException:
    return HTTPException(404, f"{ent.singular} {key_value} not found")


async def _bump_version(conn) -> int:
    version = await conn.fetchval("UPDATE registry_version SET version = version + 1 RETURNING version")
    await conn.execute("SELECT pg_notify($1, $2)", REGISTRY_CHANNEL, str(version))
    return version


def _report(report) -> dict[str, Any]:
    return {"version": report.version, "summary": report.summary(),
            "changes": {t: dataclasses.asdict(c) for t, c in report.changes.items()}}


# --------------------------------------------------------------------------- routes


def _add_routes(ent: Entity) -> None:
    Entry = ent.entry
    path = f"/{ent.section.replace('_', '-')}"
    if ent.dense:
        IdParam = DenseId
    elif ent.section == "regions":
        IdParam = RegionCode
    else:
        IdParam = EnterpriseId
    tag = ["registry"]

    async def list_entities(
        request: Request,
        enterprise: Annotated[str | None, Query(max_length=64)] = None,
        region: Annotated[str | None, Query(pattern=r"^[0-9]{6}$")] = None,
        active: bool | None = None,
        limit: Limit = DEFAULT_LIST_LIMIT,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        key: ApiKey = request.state.key
        args: list = []
        where = [ent.scope_sql(key.scope, args)]
        if enterprise is not None and ent.section not in ("regions",):
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
        order = "t.code" if ent.section == "regions" else "t.id"
        args += [limit, offset]
        async with reading(request) as conn:
            rows = await conn.fetch(
                f"SELECT {ent.select} FROM {ent.table} t {ent.joins} WHERE {' AND '.join(where)} "
                f"ORDER BY {order} LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args)
        return [_row(r) for r in rows]

    async def get_entity(request: Request, item: IdParam) -> dict[str, Any]:
        async with reading(request) as conn:
            found = await _get(conn, ent, request.state.key.scope, item)
        if found is None:
            raise _not_found(ent, item)
        return found

    async def create_entity(request: Request, response: Response, body: Entry) -> dict[str, Any]:
        key: ApiKey = request.state.key
        ident = _ident(ent, body)
        async with writing(request) as conn:
            await _check_create(conn, ent, key, body, ident)
            report = await import_scoped(conn, key, RegistryFile(**{ent.section: [body]}))
            created = await _by_entry(conn, ent, key.scope, body)
            await audit(conn, key, f"{ent.singular}.create", f"{ent.singular}:{ident}",
                        {"entry": body.model_dump(mode="json")})
        response.status_code = 201
        return {**created, "registry_version": report.version}

    async def update_entity(request: Request, item: IdParam, body: Entry) -> dict[str, Any]:
        key: ApiKey = request.state.key
        async with writing(request) as conn:
            current = await _get(conn, ent, key.scope, item)
            if current is None:
                raise _not_found(ent, item)
            _check_same(ent, current, body)
            report = await import_scoped(conn, key, RegistryFile(**{ent.section: [body]}))
            updated = await _get(conn, ent, key.scope, item)
            await audit(conn, key, f"{ent.singular}.update", f"{ent.singular}:{item}",
                        {"entry": body.model_dump(mode="json"), "changed": report.changed})
        return {**(updated or {}), "registry_version": report.version}

    async def deactivate_entity(request: Request, item: IdParam) -> dict[str, Any]:
        key: ApiKey = request.state.key
        async with writing(request) as conn:
            current = await _get(conn, ent, key.scope, item)
            if current is None:
                raise _not_found(ent, item)
            if ent.section == "regions":
                if not key.admin:
                    raise Forbidden(f"only a province administrator deletes regions ({item})")
                used = await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM regions WHERE parent = $1)"
                    " OR EXISTS (SELECT 1 FROM enterprises WHERE region = $1)", item)
                if used:
                    raise HTTPException(409, f"region {item} has subregions or enterprises; it cannot be removed")
                await conn.execute("DELETE FROM regions WHERE code = $1", item)
                action = "region.delete"
            else:
                key_col = "id"
                await conn.execute(f"UPDATE {ent.table} SET active = false, updated_at = now() "
                                   f"WHERE {key_col} = $1 AND active", item)
                action = f"{ent.singular}.deactivate"
            version = await _bump_version(conn)
            await audit(conn, key, action, f"{ent.singular}:{item}")
        return {**current, "active": False, "registry_version": version}

    name = ent.singular
    router.add_api_route(path, list_entities, methods=["GET"], tags=tag, name=f"list_{ent.section}",
                         summary=f"List {ent.section.replace('_', ' ')} in the key's scope")
    router.add_api_route(path, create_entity, methods=["POST"], tags=tag, name=f"create_{name}", status_code=201,
                         summary=f"Create a {name.replace('_', ' ')} (registry-file entry)",
                         responses={404: {"description": "a referenced entry is not in the key's scope"},
                                    409: {"description": "already exists"}})
    router.add_api_route(f"{path}/{{item}}", get_entity, methods=["GET"], tags=tag, name=f"get_{name}",
                         responses={404: {"description": "not found in the key's scope"}})
    router.add_api_route(f"{path}/{{item}}", update_entity, methods=["PUT"], tags=tag, name=f"update_{name}",
                         summary=f"Replace a {name.replace('_', ' ')} (registry-file entry)",
                         responses={404: {"description": "not found in the key's scope"}})
    router.add_api_route(f"{path}/{{item}}", deactivate_entity, methods=["DELETE"], tags=tag,
                         name=f"deactivate_{name}",
                         summary="Deactivate" if ent.section != "regions" else "Delete an unused region",
                         responses={404: {"description": "not found in the key's scope"}})


def _ident(ent: Entity, body: BaseModel) -> str:
    if ent.section == "regions":
        return body.code
    if ent.section == "enterprises":
        return body.id
    return f"{body.enterprise}/{body.id}"


async def _check_create(conn, ent: Entity, key: ApiKey, body: BaseModel, ident: str) -> None:
    """Before anything else: an id or an enterprise the key cannot see is 404 whether it exists
    or not; regions and enterprises (ids unique province-wide) are created by the administrator
    only; then 409 if the entry exists."""
    if ent.section in ("regions", "enterprises"):
        if not key.admin:
            visible = await visible_ids(conn, key.scope, ent.section, [ident])
            if visible:
                raise HTTPException(409, f"{ent.singular} {ident} already exists; update it with PUT")
            if key.scope.province:
                raise Forbidden(f"only a province administrator creates {ent.section}")
            raise OutOfScope(f"{ent.singular} {ident} not found in this key's scope")
    elif body.enterprise is not None and not await visible_ids(conn, key.scope, "enterprises", [body.enterprise]):
        if not key.scope.province:
            raise OutOfScope(f"enterprise {body.enterprise} not found in this key's scope")
    if await _exists(conn, ent, body):
        raise HTTPException(409, f"{ent.singular} {ident} already exists; update it with PUT")


async def _exists(conn, ent: Entity, body: BaseModel) -> bool:
    if ent.section == "regions":
        return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1)", body.code)
    if ent.section == "enterprises":
        return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM enterprises WHERE id = $1)", body.id)
    if body.enterprise is None:
        raise HTTPException(422, "give the sensor's enterprise")  # the same answer in and out of scope
    return await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {ent.table} WHERE enterprise = $1 AND code = $2)",
                               body.enterprise, body.id)


async def _by_entry(conn, ent: Entity, scope: Scope, body: BaseModel) -> dict[str, Any]:
    if ent.section == "regions":
        return await _get(conn, ent, scope, body.code) or {}
    if ent.section == "enterprises":
        return await _get(conn, ent, scope, body.id) or {}
    ident = await conn.fetchval(f"SELECT id FROM {ent.table} WHERE enterprise = $1 AND code = $2",
                                body.enterprise, body.id)
    return await _get(conn, ent, scope, ident) or {}


def _check_same(ent: Entity, current: dict[str, Any], body: BaseModel) -> None:
    if ent.section == "regions":
        same = current["code"] == body.code
    elif ent.section == "enterprises":
        same = current["id"] == body.id
    else:
        same = (current["enterprise"], current["code"]) == (body.enterprise, body.id)
    if not same:
        raise HTTPException(422, "the entry's id (and enterprise) must be those of the resource; "
                                 "create a new one instead of renaming")


for _ent in ENTITIES.values():
    _add_routes(_ent)


# --------------------------------------------------------------------------- bulk import

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "description": "the registry file as JSON: "
                                            "regions, enterprises, zones, gateways, sensors, hazard_sources"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def _parse_import(raw: bytes, ctype: str) -> RegistryFile:
    try:
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml", "text/plain"):
            return parse_registry_file(raw.decode("utf-8"))
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryFileError(f"not valid JSON: {str(exc)[:200]}") from None
        return parse_registry_document(doc)
    except UnicodeDecodeError:
        raise RegistryFileError("the file is not UTF-8") from None


@router.post("/registry/import", tags=["registry"], openapi_extra=_IMPORT_BODY,
             summary="Import a registry file (the YAML of `yujing registry import`, or the same as JSON)",
             responses={404: {"description": "an entry lies outside the key's scope"},
                        422: {"description": "the file is invalid (nothing changed)"}})
async def import_file(request: Request) -> dict[str, Any]:
    key: ApiKey = request.state.key
    raw = await request.body()  # at most 20 MiB: the front door's limit for this route (api.guard)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    async with request.app.state.import_slots:  # off the event loop, one file at a time
        reg = await asyncio.to_thread(_parse_import, raw, ctype)
    async with writing(request) as conn:
        report = await import_scoped(conn, key, reg)
        await audit(conn, key, "registry.import", "registry",
                    {"summary": report.summary(), "entries": {k: len(v) for k, v in entry_keys(reg).items()}})
    return _report(report)
