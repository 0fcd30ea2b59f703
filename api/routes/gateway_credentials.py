"""A gateway's MQTT login, issued, rotated or revoked by a key whose scope holds the gateway.

The password is in the response once and never stored (only its Mosquitto hash); the write is
recorded with the key, without the password. A gateway outside the key's scope answers 404. The
running service rewrites the broker's files within ``gateway_broker.poll_s``.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel

from api.auth import audit, require_key, writing
from api.keys import ApiKey
from store.gateway_credentials import CredentialError, issue_credentials, revoke_credentials
from store.registry_records import gateway_in_scope

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["registry"])

GatewayId = Annotated[int, Path(ge=1, le=2**31 - 1, description="dense gateway id")]
NOT_FOUND = {404: {"description": "no such gateway in the key's scope"}}


class IssueRequest(BaseModel):
    rotate: bool = False  # replace a live password (the old one stops working)


async def _gateway(conn, key: ApiKey, gateway_id: int) -> tuple[str, str]:
    row = await gateway_in_scope(conn, key.scope.enterprise_sql, gateway_id)
    if row is None:
        raise HTTPException(404, f"gateway {gateway_id} not found")
    return row["enterprise"], row["code"]


@router.post("/gateways/{item}/credentials", status_code=201,
             summary="Issue or rotate the gateway's MQTT login; the password is shown once",
             responses={**NOT_FOUND,
                        409: {"description": "the gateway already has a login (rotate it), or is deactivated"}})
async def issue(request: Request, response: Response, item: GatewayId, body: IssueRequest) -> dict[str, Any]:
    key: ApiKey = request.state.key
    async with writing(request) as conn:
        enterprise, gateway = await _gateway(conn, key, item)
        try:
            issued = await issue_credentials(conn, enterprise, gateway, rotate=body.rotate)
        except CredentialError as exc:
            raise HTTPException(409, str(exc)) from None
        await audit(conn, key, f"gateway.credentials.{'rotate' if issued.rotated else 'issue'}",
                    f"gateway:{item}", {"username": issued.username})
    response.headers["Cache-Control"] = "no-store"
    return {"gateway": item, "enterprise": enterprise, "code": gateway, "username": issued.username,
            "client_id": issued.username, "password": issued.password, "rotated": issued.rotated,
            # the read-only monitoring login (alerts and errors topics), its client id is its username
            "monitor_username": issued.monitor_username, "monitor_password": issued.monitor_password}


@router.delete("/gateways/{item}/credentials", summary="Revoke the gateway's MQTT login", responses=NOT_FOUND)
async def revoke(request: Request, item: GatewayId) -> dict[str, Any]:
    key: ApiKey = request.state.key
    async with writing(request) as conn:
        enterprise, gateway = await _gateway(conn, key, item)
        revoked = await revoke_credentials(conn, enterprise, gateway)
        await audit(conn, key, "gateway.credentials.revoke", f"gateway:{item}", {"revoked": revoked})
    return {"gateway": item, "revoked": revoked}
