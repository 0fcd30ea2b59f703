"""The allow-list of hosts escalation may send to (``store.contact_hosts``): an enterprise
proposes a host by naming it in a contact's webhook; the province administrator approves it
(``POST``) or removes it (``DELETE``); province keys read the list. Nothing is sent to a host
until it is approved."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from api.auth import audit, reading, require_key, writing
from api.keys import ApiKey
from store import contact_hosts

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["registry"])

Host = Annotated[str, Path(pattern=r"^[A-Za-z0-9.\-]{1,253}$", description="a host name or IPv4 address")]


def _province(key: ApiKey, admin: bool) -> None:
    if not key.scope.province or (admin and not key.admin):
        raise HTTPException(403, "the webhook hosts are administered by the province administrator")


@router.get("/webhook-hosts", summary="Hosts proposed for, and approved on, the escalation allow-list")
async def list_hosts(request: Request) -> list[dict[str, Any]]:
    _province(request.state.key, admin=False)
    async with reading(request) as conn:
        return await contact_hosts.list_hosts(conn)


@router.post("/webhook-hosts/{host}", summary="Approve a host (province administrator)",
             responses={403: {"description": "not the province administrator"}})
async def approve_host(request: Request, host: Host) -> dict[str, Any]:
    key: ApiKey = request.state.key
    _province(key, admin=True)
    async with writing(request) as conn:
        await contact_hosts.approve(conn, host, key.actor)
        await audit(conn, key, "webhook_host.approve", f"webhook_host:{host.lower()}")
    return {"host": host.lower(), "state": "approved"}


@router.delete("/webhook-hosts/{host}", summary="Remove a host from the allow-list (province administrator)",
               responses={403: {"description": "not the province administrator"}, 404: {"description": "not listed"}})
async def remove_host(request: Request, host: Host) -> dict[str, Any]:
    key: ApiKey = request.state.key
    _province(key, admin=True)
    async with writing(request) as conn:
        if not await contact_hosts.remove(conn, host):
            raise HTTPException(404, f"host {host} is not listed")
        await audit(conn, key, "webhook_host.remove", f"webhook_host:{host.lower()}")
    return {"host": host.lower(), "removed": True}
