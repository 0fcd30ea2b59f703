"""The registry's bulk import: the YAML of ``yujing registry import``, or the same as JSON, within
the key's scope (``api.routes.registry_scope``), in one transaction."""

import asyncio
import dataclasses
import json
from typing import Any

from fastapi import APIRouter, Depends, Request

from api.auth import audit, require_key, writing
from api.keys import ApiKey
from api.routes.registry_scope import entry_keys, import_scoped
from store.registry_file import RegistryFile, RegistryFileError, parse_registry_document, parse_registry_file

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)])


def _report(report) -> dict[str, Any]:
    return {"version": report.version, "summary": report.summary(),
            "changes": {t: dataclasses.asdict(c) for t, c in report.changes.items()}}


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
