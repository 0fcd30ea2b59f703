"""Registry entries: create, read, update and deactivate regions, enterprises, zones, gateways,
sensors and major hazard sources (重大危险源), one at a time (the bulk import of the CLI's YAML is
``api.routes.registry_import``).

Creates and updates go through ``store.registry_records.import_registry`` (the CLI's own validation:
kinds, units, setpoints that may only tighten, references) inside the API's transaction, between
two scope checks in SQL (:func:`import_scoped`). Below the province administrator, every region
and enterprise named must already exist within the key's scope, and every other entry's
enterprise too — checked before anything else, so a 404 tells nothing about what exists outside
the scope; regions and enterprises are created, re-parented and moved by the administrator only
(403). After the import every entry must still lie in the scope; anything else rolls back.
Deactivating sets ``active = false`` (regions, which have no such flag, are deleted when unused).
"""

import dataclasses
import json
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel

from api.auth import audit, reading, require_key, writing
from api.context import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
from api.keys import ApiKey
from api.routes.registry_scope import Forbidden, OutOfScope, import_scoped
from api.scope import Scope
from store.registry_file import (
    EnterpriseEntry,
    GatewayEntry,
    HazardSourceEntry,
    RegionEntry,
    RegistryFile,
    SensorEntry,
    ZoneEntry,
)
from store.registry_records import entities, visible_ids
from store.registry_records.entities import ENTITY_TABLES, EntityTable
from store.scoped import InScope
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
    entry: type[BaseModel]

    @property
    def table(self) -> EntityTable:
        return ENTITY_TABLES[self.section]

    def in_scope(self, scope: Scope) -> InScope:
        return scope.region_sql if self.table.by_region else scope.enterprise_sql


ENTITIES = {
    e.section: e
    for e in (
        Entity("regions", "region", RegionEntry),
        Entity("enterprises", "enterprise", EnterpriseEntry),
        Entity("zones", "zone", ZoneEntry),
        Entity("gateways", "gateway", GatewayEntry),
        Entity("sensors", "sensor", SensorEntry),
        Entity("hazard_sources", "hazard_source", HazardSourceEntry),
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
    row = await entities.get_entity(conn, ent.table, ent.in_scope(scope), key_value)
    return None if row is None else _row(row)


def _not_found(ent: Entity, key_value) -> HTTPException:
    return HTTPException(404, f"{ent.singular} {key_value} not found")


# --------------------------------------------------------------------------- routes


def _add_routes(ent: Entity) -> None:
    Entry = ent.entry
    path = f"/{ent.section.replace('_', '-')}"
    if ent.table.dense:
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
        async with reading(request) as conn:
            rows = await entities.list_entities(conn, ent.table, ent.in_scope(key.scope), enterprise=enterprise,
                                                region=region, active=active, limit=limit, offset=offset)
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
                try:
                    version = await entities.delete_region(conn, item)
                except entities.RegionInUse:
                    raise HTTPException(409, f"region {item} has subregions or enterprises; it cannot be removed") from None
                action = "region.delete"
            else:
                version = await entities.deactivate(conn, ent.table, item)
                action = f"{ent.singular}.deactivate"
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
            visible = await visible_ids(conn, ent.in_scope(key.scope), ent.section, [ident])
            if visible:
                raise HTTPException(409, f"{ent.singular} {ident} already exists; update it with PUT")
            if key.scope.province:
                raise Forbidden(f"only a province administrator creates {ent.section}")
            raise OutOfScope(f"{ent.singular} {ident} not found in this key's scope")
    elif body.enterprise is not None and not await visible_ids(conn, key.scope.enterprise_sql, "enterprises",
                                                               [body.enterprise]):
        if not key.scope.province:
            raise OutOfScope(f"enterprise {body.enterprise} not found in this key's scope")
    if await _exists(conn, ent, body):
        raise HTTPException(409, f"{ent.singular} {ident} already exists; update it with PUT")


async def _exists(conn, ent: Entity, body: BaseModel) -> bool:
    if ent.section == "regions":
        return await entities.entry_exists(conn, ent.table, None, body.code)
    if ent.section == "enterprises":
        return await entities.entry_exists(conn, ent.table, None, body.id)
    if body.enterprise is None:
        raise HTTPException(422, "give the sensor's enterprise")  # the same answer in and out of scope
    return await entities.entry_exists(conn, ent.table, body.enterprise, body.id)


async def _by_entry(conn, ent: Entity, scope: Scope, body: BaseModel) -> dict[str, Any]:
    if ent.section == "regions":
        return await _get(conn, ent, scope, body.code) or {}
    if ent.section == "enterprises":
        return await _get(conn, ent, scope, body.id) or {}
    ident = await entities.dense_id(conn, ent.table, body.enterprise, body.id)
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
