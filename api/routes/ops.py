"""Operations: liveness, readiness (database, broker, ingest lag) and Prometheus metrics."""

import asyncio
from typing import Any

import prometheus_client
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.keyless import metrics_access
from store.probe import database_answers

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to serve: database reachable, broker connected, ingest lag",
            responses={503: {"description": "not ready; the body says what is wrong"}})
async def readyz(request: Request) -> Any:
    ctx = request.app.state.ctx
    facts: dict[str, Any] = {}
    try:
        facts.update(ctx.ready() or {})
    except Exception as exc:  # a readiness probe must answer, whatever the service's state
        facts["service"] = False
        facts["service_error"] = str(exc)[:200]
    try:
        async with asyncio.timeout(2.0):
            await database_answers(ctx.pool)
        facts["database"] = facts.get("database", True) and True
    except (OSError, TimeoutError, Exception) as exc:  # noqa: BLE001 — any failure means not ready
        facts["database"] = False
        facts["database_error"] = str(exc)[:200]
    ready = all(v for v in facts.values() if isinstance(v, bool))
    return JSONResponse({"ready": ready, **facts}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics (the process's default registry)",
            dependencies=[Depends(metrics_access)],
            description="Without a key from loopback clients by default; elsewhere a province key "
                        "(setting `http_keyless_ops`: loopback, everyone or nobody).")
async def metrics() -> Response:
    return Response(prometheus_client.generate_latest(), media_type=prometheus_client.CONTENT_TYPE_LATEST)
